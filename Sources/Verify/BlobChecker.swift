import Audit
import EvidenceIO
import Manifest

/// What one blob's check keeps for the checks after step 7.
struct CheckedBlobFacts: Sendable {
  var keptRequests: [(seq: UInt64, request: [UInt8])] = []
  /// `nil` when not kept (quick mode, no budget, or more records than the whole budget).
  var keptReceiveTimes: [UInt64]?
}

/// Buffers one thread reuses from blob to blob while checking deeply.
final class BlobScratch {
  let compressed = AlignedBuffer(capacity: 1 << 20)
  let decompressed = AlignedBuffer(capacity: 1 << 20)
}

/// Step 7 of §9 for one blob: size and digest, then (deep) the bomb limits, decompression,
/// segment header, every record, and the counts, sequences and times the manifest declares.
struct BlobChecker<Source: ByteSource> {
  let source: Source
  let limits: VerificationLimits
  let depth: VerificationDepth
  /// The records of each node's audit stream (deep mode), in seq order, for the chain check
  /// after every blob has passed step 7.
  private(set) var auditRecords: [String: [(seq: UInt64, request: [UInt8])]] = [:]
  /// Every record's `receivedUnixNano` by stream (deep mode), while the total stays within the
  /// budget; `nil` once it would exceed it, so a huge bundle costs no more than the budget.
  private(set) var receiveTimes: [StreamKey: [UInt64]]?
  private var receiveTimeBudget: Int
  /// Gets each segment that passed (deep mode), see ``BundleVerifier/segmentSink``.
  let segmentSink: (@Sendable (BlobEntry, [UInt8]) -> Void)?
  /// Gets each segment that passed (deep mode) from the worker's own buffer, see
  /// ``CheckedSegmentConsumer``.
  let segmentConsumer: (any CheckedSegmentConsumer)?

  init(
    source: Source, limits: VerificationLimits, depth: VerificationDepth, receiveTimeLimit: Int = 0,
    segmentSink: (@Sendable (BlobEntry, [UInt8]) -> Void)? = nil, segmentConsumer: (any CheckedSegmentConsumer)? = nil
  ) {
    self.segmentSink = segmentSink
    self.segmentConsumer = segmentConsumer
    self.source = source
    self.limits = limits
    self.depth = depth
    self.receiveTimeBudget = receiveTimeLimit
    self.receiveTimes = depth == .deep && receiveTimeLimit > 0 ? [:] : nil
  }

  /// Checks one blob (step 7) and keeps what it found for the later checks.
  mutating func check(_ entry: BlobEntry, member: TarMember, scratch: BlobScratch) throws {
    merge(
      try examine(entry, member: member, keepsReceiveTimes: mayKeepReceiveTimes(entry), scratch: scratch),
      of: entry)
  }

  /// Keeps one checked blob's facts. Blobs must be merged in manifest order, so the receive
  /// time budget runs out at the same blob whatever order they were checked in.
  mutating func merge(_ facts: CheckedBlobFacts, of entry: BlobEntry) {
    if !facts.keptRequests.isEmpty { auditRecords[entry.node, default: []] += facts.keptRequests }
    keepReceiveTimes(facts.keptReceiveTimes, of: entry)
  }

  /// Whether a blob checked out of order should keep its receive times: when it fits in the
  /// whole budget (``merge(_:of:)`` then drops them if the budget left is smaller).
  func mayKeepReceiveTimes(_ entry: BlobEntry) -> Bool {
    receiveTimes != nil && entry.recordCount <= UInt64(receiveTimeBudget)
  }

  /// Step 7 for one blob, changing nothing: safe to run for several blobs at once.
  func examine(_ entry: BlobEntry, member: TarMember, keepsReceiveTimes: Bool, scratch: BlobScratch) throws
    -> CheckedBlobFacts
  {
    // 7.1
    guard UInt64(member.size) == entry.size else {
      throw Finding(.blobSizeMismatch, "\(entry.path): member is \(member.size) bytes, manifest says \(entry.size)")
    }
    guard depth == .deep else {
      try checkDigestStreaming(entry, member: member)
      return CheckedBlobFacts()
    }
    // The compressed blob, and (when nobody keeps segments) the decompressed one, go into the
    // worker's own buffers, reused from blob to blob: a fresh buffer of tens of megabytes per
    // blob costs more in page faults than the SHA-256 of its bytes.
    scratch.compressed.reserve(member.size)
    let blob = UnsafeMutableRawBufferPointer(start: scratch.compressed.pointer, count: member.size)
    try source.read(into: blob, at: member.dataOffset)
    let digest = SHA256Digest.hex(of: UnsafeRawBufferPointer(blob))
    guard digest == entry.sha256 else {
      throw Finding(.blobDigestMismatch, "\(entry.path): SHA-256 is \(digest), manifest says \(entry.sha256)")
    }

    // 7.2
    guard entry.uncompressedSize <= limits.maxUncompressedSize else {
      throw Finding(
        .limitUncompressedSize,
        "\(entry.path): uncompressedSize \(entry.uncompressedSize) exceeds the limit of \(limits.maxUncompressedSize)")
    }
    guard entry.uncompressedSize <= limits.maxRatio * entry.size else {
      throw Finding(
        .limitRatio,
        "\(entry.path): uncompressedSize \(entry.uncompressedSize) is over \(limits.maxRatio) × size \(entry.size)")
    }

    // 7.3: decompress the whole segment in one pass into memory sized from the declared size
    // (just checked against the limits), plus one byte to notice a bomb; then 7.4–7.6 parse it
    // where it lies. Decompression finishes before any segment finding, as 7.3 comes first.
    var segment = SegmentCheck(
      entry: entry, limits: limits,
      keepsRequests: entry.signal == AuditStream.signal && AuditStream.isReserved(tenant: entry.tenant),
      keepsReceiveTimes: keepsReceiveTimes)
    let declared = Int(entry.uncompressedSize)
    let decompressed: [UInt8]?
    let produced: Int
    do throws(ZstdError) {
      if segmentSink != nil {
        // Handed over: the segment needs memory of its own.
        let kept = try Zstd.decompress(UnsafeRawBufferPointer(blob), declaredSize: declared)
        decompressed = kept
        produced = kept.count
      } else {
        scratch.decompressed.reserve(declared + 1)
        produced = try Zstd.decompress(
          UnsafeRawBufferPointer(blob),
          into: UnsafeMutableRawBufferPointer(start: scratch.decompressed.pointer, count: declared + 1))
        decompressed = nil
      }
    } catch {
      switch error.kind {
      case .outputLimitExceeded:
        throw Finding(
          .blobBomb, "\(entry.path): decompresses to more than the declared \(entry.uncompressedSize) bytes")
      case .corrupt, .windowTooLarge, .library:
        throw Finding(.blobDecompressError, "\(entry.path): \(error.message)")
      }
    }
    guard UInt64(produced) == entry.uncompressedSize else {
      throw Finding(
        .blobUncompressedSizeMismatch,
        "\(entry.path): decompresses to \(produced) bytes, manifest says \(entry.uncompressedSize)")
    }
    if let decompressed {
      decompressed.withUnsafeBytes { segment.consume($0) }
    } else {
      segment.consume(UnsafeRawBufferPointer(start: scratch.decompressed.pointer, count: produced))
    }
    try segment.finish()
    if let decompressed {
      segmentSink?(entry, decompressed)
      decompressed.withUnsafeBytes { segmentConsumer?.consume(entry, segment: $0) }
    } else {
      segmentConsumer?.consume(
        entry, segment: UnsafeRawBufferPointer(start: scratch.decompressed.pointer, count: produced))
    }
    return CheckedBlobFacts(keptRequests: segment.keptRequests, keptReceiveTimes: segment.keptReceiveTimes)
  }

  private mutating func keepReceiveTimes(_ times: [UInt64]?, of entry: BlobEntry) {
    guard receiveTimes != nil else { return }
    guard let times, times.count <= receiveTimeBudget else {
      receiveTimes = nil
      return
    }
    receiveTimeBudget -= times.count
    receiveTimes?[entry.stream, default: []] += times
  }

  /// The custody timeline of the audit records kept for the chain check, in time order.
  func custodyTimeline() -> [CustodyEvent] {
    CustodyTimeline.events(auditRecords.flatMap { node, records in records.map { (node, $0.seq, $0.request) } })
  }

  /// The audit chain check after step 7: every node's audit stream links record to record
  /// (``AuditChain``). The manifest's sequence checks already proved each stream's seqs tile, so
  /// the records, sorted by seq, are consecutive.
  func checkAuditChains() throws(Finding) {
    for node in auditRecords.keys.sorted() {
      let records = (auditRecords[node] ?? []).sorted { $0.seq < $1.seq }
      if let broken = AuditChain.firstBreak(in: records) {
        throw Finding(.auditChainBroken, "node \(node), stream logs/\(AuditStream.tenant): \(broken)")
      }
    }
  }
}

/// Shared by the threads of a concurrent deep check, which only call ``examine(_:member:keepsReceiveTimes:scratch:)``, each with its own scratch.
extension BlobChecker: Sendable where Source: Sendable {}

extension BlobChecker {
  /// Quick mode hashes the blob in fixed-size chunks, so memory stays flat whatever the blob size.
  fileprivate func checkDigestStreaming(_ entry: BlobEntry, member: TarMember) throws {
    let digest = try SHA256Digest.hex(of: source, offset: member.dataOffset, count: member.size)
    guard digest == entry.sha256 else {
      throw Finding(.blobDigestMismatch, "\(entry.path): SHA-256 is \(digest), manifest says \(entry.sha256)")
    }
  }
}

/// Checks one decompressed segment against its manifest entry (§9 steps 7.4–7.6).
struct SegmentCheck {
  let entry: BlobEntry
  private var parser: SegmentStreamParser
  /// The first framing error, from the parser.
  private var framingError: SegmentFormatError?
  /// The first record-level finding (sequence or protobuf), from the record handler.
  private var recordFinding: Finding?
  private var times = OTLPTimeSummary()
  /// Whether records' requests are kept (the audit stream's, for its chain check).
  private let keepsRequests: Bool
  private(set) var keptRequests: [(seq: UInt64, request: [UInt8])] = []
  /// Each record's `receivedUnixNano`, when asked for; `nil` otherwise.
  private(set) var keptReceiveTimes: [UInt64]?

  init(entry: BlobEntry, limits: VerificationLimits, keepsRequests: Bool = false, keepsReceiveTimes: Bool = false) {
    self.entry = entry
    self.parser = SegmentStreamParser(maxRecordSize: limits.maxRecordSize)
    self.keepsRequests = keepsRequests
    self.keptReceiveTimes = keepsReceiveTimes ? [] : nil
  }

  mutating func consume(_ piece: UnsafeRawBufferPointer) {
    guard framingError == nil, recordFinding == nil else { return }
    let entry = self.entry
    var finding: Finding?
    var summary = times
    var kept: [(seq: UInt64, request: [UInt8])] = []
    var receiveTimes: [UInt64] = []
    let keepsRequests = self.keepsRequests
    let keepsReceiveTimes = keptReceiveTimes != nil
    do {
      try parser.consume(piece) { record in
        guard finding == nil else { return }
        let expectedSeq = entry.firstSeq &+ record.index
        guard record.seq == expectedSeq, expectedSeq >= entry.firstSeq else {
          finding = Finding(
            .segmentSequenceMismatch,
            "\(entry.path): record \(record.index) (segment byte \(record.offset)) has seq \(record.seq), expected \(expectedSeq)"
          )
          return
        }
        do {
          summary.merge(try OTLPTimeScan.scan(record.request, signal: entry.signal))
          if keepsRequests { kept.append((record.seq, Array(record.request))) }
          if keepsReceiveTimes { receiveTimes.append(record.receivedUnixNano) }
        } catch {
          finding = Finding(
            .segmentProtobufInvalid,
            "\(entry.path): record \(record.index) (seq \(record.seq), segment byte \(record.offset)): \(error)")
        }
      }
    } catch {
      framingError = error
    }
    times = summary
    keptRequests += kept
    if keepsReceiveTimes { keptReceiveTimes? += receiveTimes }
    if recordFinding == nil { recordFinding = finding }
  }

  func finish() throws(Finding) {
    // 7.4 comes before any record-level finding.
    if let framingError, framingError.kind == .badHeader {
      throw Finding(.segmentBadHeader, "\(entry.path): \(framingError)")
    }
    if let header = parser.header,
      header.signal != entry.signal || header.tenant != entry.tenant || header.node != entry.node
    {
      throw Finding(
        .segmentMismatch,
        "\(entry.path): segment header says \(header.node)/\(header.signal.rawValue)/\(header.tenant), manifest says \(entry.stream)"
      )
    }
    // 7.5, in record order: a handler finding is on an earlier record than a framing error.
    if let recordFinding { throw recordFinding }
    if let framingError { throw Finding(Self.code(for: framingError), "\(entry.path): \(framingError)") }
    do {
      try parser.finish()
    } catch {
      throw Finding(Self.code(for: error), "\(entry.path): \(error)")
    }
    // 7.6
    guard parser.recordCount == entry.recordCount else {
      throw Finding(
        .segmentRecordCountMismatch,
        "\(entry.path): segment has \(parser.recordCount) records, manifest says \(entry.recordCount)")
    }
    let (declaredSpan, overflow) = entry.lastSeq.subtractingReportingOverflow(entry.firstSeq)
    guard !overflow, declaredSpan < UInt64.max, entry.recordCount == declaredSpan + 1 else {
      throw Finding(
        .segmentSequenceMismatch,
        "\(entry.path): \(entry.recordCount) records cannot span seqs \(entry.firstSeq)...\(entry.lastSeq)")
    }
    let (first, last) = times.range
    guard first == entry.firstTimeUnixNano, last == entry.lastTimeUnixNano else {
      throw Finding(
        .segmentTimeMismatch,
        "\(entry.path): records span times \(first)...\(last), manifest says \(entry.firstTimeUnixNano)...\(entry.lastTimeUnixNano)"
      )
    }
  }

  private static func code(for error: SegmentFormatError) -> ReasonCode {
    switch error.kind {
    case .badHeader: return .segmentBadHeader
    case .badRecord: return .segmentBadRecord
    case .recordTooLarge: return .limitRecordSize
    case .truncated: return .segmentTruncated
    case .crcMismatch: return .segmentCRCMismatch
    }
  }
}
