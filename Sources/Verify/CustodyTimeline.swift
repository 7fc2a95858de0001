public import Audit
import EvidenceIO
import Manifest

/// One record of a bundle's audit stream, as `inspect` shows it.
public struct CustodyEvent: Sendable, Equatable {
  /// The capture node whose audit stream holds the record.
  public var node: String
  public var seq: UInt64
  /// The decoded record, or why the record could not be read as one.
  public var record: Result<AuditRecord, AuditRecordError>
}

/// Reads the reserved audit streams of a bundle (README, "The audit stream") into the custody
/// timeline: every admin action and refusal the bundle's capture nodes recorded, in time order.
enum CustodyTimeline {
  /// The audit records of `manifest`'s audit blobs, read from `source`, ordered by time, then
  /// node and seq. Blobs whose declared sizes break the limits are skipped, not decompressed.
  static func read(
    source: some ByteSource, manifest: BundleManifest, members: [String: TarMember], limits: VerificationLimits
  ) -> [CustodyEvent] {
    var records: [(node: String, seq: UInt64, request: [UInt8])] = []
    for entry in manifest.blobs
    where entry.signal == AuditStream.signal && AuditStream.isReserved(tenant: entry.tenant) {
      guard let member = members[entry.path], entry.uncompressedSize <= limits.maxUncompressedSize,
        entry.uncompressedSize <= limits.maxRatio * entry.size,
        let blob = try? source.bytes(at: member.dataOffset, count: member.size),
        let segment = try? Zstd.decompress(blob, maxOutputBytes: Int(entry.uncompressedSize))
      else { continue }
      var parser = SegmentStreamParser(maxRecordSize: limits.maxRecordSize)
      try? segment.withUnsafeBytes { raw in
        try parser.consume(raw) { records.append((entry.node, $0.seq, Array($0.request))) }
      }
    }
    return events(records)
  }

  /// Decodes audit records (node, seq, the record's `request` bytes) into events ordered by time,
  /// then node and seq.
  static func events(_ records: [(node: String, seq: UInt64, request: [UInt8])]) -> [CustodyEvent] {
    var events: [CustodyEvent] = []
    events.reserveCapacity(records.count)
    for (node, seq, request) in records {
      let record: Result<AuditRecord, AuditRecordError>
      do throws(AuditRecordError) {
        record = .success(try AuditRecord(request: request))
      } catch {
        record = .failure(error)
      }
      events.append(CustodyEvent(node: node, seq: seq, record: record))
    }
    func time(_ event: CustodyEvent) -> UInt64 { (try? event.record.get())?.timeUnixNano ?? 0 }
    return events.sorted { (time($0), $0.node, $0.seq) < (time($1), $1.node, $1.seq) }
  }
}
