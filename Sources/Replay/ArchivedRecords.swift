import EvidenceIO
public import Manifest
import OTLPWire

/// One decompressed segment of a verified bundle, with its records located.
///
/// The segment's bytes are this value's own copy, so a time shift can patch requests in place.
public struct ArchivedSegment: Sendable {
  /// Where one record sits in ``bytes``.
  public struct Record: Sendable, Equatable {
    public var seq: UInt64
    /// When the capture node received the request; 0 when unknown.
    public var receivedUnixNano: UInt64
    /// The `Export…ServiceRequest` bytes within ``ArchivedSegment/bytes``.
    public var request: Range<Int>
  }

  /// The blob this segment came from.
  public let blob: BlobEntry
  /// The decompressed segment.
  public var bytes: [UInt8]
  /// Its records, in order.
  public let records: [Record]

  /// Adds `offset` to every non-zero timestamp of every record, in place (see
  /// `OTLPWireReader.shiftTimestamps(in:signal:by:)`).
  public mutating func shiftTimestamps(by offset: Int64) throws(ReplayError) {
    let signal = blob.signal
    let stream = blob.stream
    let records = records
    let result = bytes.withUnsafeMutableBytes { raw in
      Result { () throws(ReplayError) in
        for record in records {
          do throws(OTLPWireError) {
            try OTLPWireReader.shiftTimestamps(
              in: UnsafeMutableRawBufferPointer(rebasing: raw[record.request]), signal: signal.wireSignal, by: offset)
          } catch {
            throw ReplayError(.timeShiftOutOfRange, error.description, stream: stream, seq: record.seq)
          }
        }
      }
    }
    try result.get()
  }

  /// The request bytes of record `index`.
  public func request(at index: Int) -> ArraySlice<UInt8> { bytes[records[index].request] }
}

/// Reads the blobs of a deeply verified bundle back.
///
/// Segments the verifier kept (``DeeplyVerifiedBundle/segments``) are used as they are. Other
/// blobs are read from the file again, and each one's SHA-256 is checked again as it is read,
/// so a file changed after verification is caught (``ReplayError/Code/bundleChanged``)
/// instead of replayed.
public struct ArchivedRecordReader: Sendable {
  private let bundle: DeeplyVerifiedBundle
  private let source: FileByteSource

  /// Opens the verified bundle's file again.
  public init(_ bundle: DeeplyVerifiedBundle) throws(ReplayError) {
    self.bundle = bundle
    do {
      source = try FileByteSource(path: bundle.path)
    } catch {
      throw ReplayError(.bundleUnreadable, error.description)
    }
  }

  /// Reads, checks and decompresses one blob, and locates its records.
  public func segment(_ blob: BlobEntry) throws(ReplayError) -> ArchivedSegment {
    // The verifier's own bytes, when it kept them: checked moments ago, nothing to read again.
    if let kept = bundle.segments?.take(blob.path) {
      let records = try Self.locateRecords(in: kept, blob: blob, bundlePath: bundle.path)
      return ArchivedSegment(blob: blob, bytes: kept, records: records)
    }
    guard let member = bundle.verified.blobMembers[blob.path], member.size == Int(blob.size) else {
      throw ReplayError(.bundleChanged, "\(bundle.path): \(blob.path) is not where verification found it")
    }
    let compressed: [UInt8]
    do {
      compressed = try source.bytes(at: member.dataOffset, count: member.size)
    } catch {
      throw ReplayError(.bundleUnreadable, error.description)
    }
    guard SHA256Digest.hex(of: compressed) == blob.sha256 else {
      throw ReplayError(
        .bundleChanged, "\(bundle.path): \(blob.path) changed after verification (SHA-256 differs)")
    }
    let expected = Int(blob.uncompressedSize)
    // Decompressed in one pass straight into the segment's own array (sized from the verified
    // manifest, plus one byte to notice longer data), which the records then slice: no piece
    // of the segment is copied on its way to the network.
    let decompressed = compressed.withUnsafeBytes { input in
      Result { () throws(ZstdError) in try Zstd.decompress(input, declaredSize: expected) }
    }
    let bytes: [UInt8]
    switch decompressed {
    case .success(let segment): bytes = segment
    case .failure(let error): throw ReplayError(.bundleChanged, "\(bundle.path): \(blob.path): \(error.message)")
    }
    guard bytes.count == expected else {
      throw ReplayError(.bundleChanged, "\(bundle.path): \(blob.path): decompressed size differs from the manifest")
    }
    let records = try Self.locateRecords(in: bytes, blob: blob, bundlePath: bundle.path)
    return ArchivedSegment(blob: blob, bytes: bytes, records: records)
  }

  /// Walks the framing of a segment whose content the verifier already checked (CRCs included),
  /// so only bounds and sequence numbers are checked again, defensively.
  static func locateRecords(in bytes: [UInt8], blob: BlobEntry, bundlePath: String) throws(ReplayError)
    -> [ArchivedSegment.Record]
  {
    let result = bytes.withUnsafeBytes { raw in
      Result { () throws(ReplayError) -> [ArchivedSegment.Record] in
        try locateRecords(in: raw, blob: blob, bundlePath: bundlePath)
      }
    }
    return try result.get()
  }

  /// ``locateRecords(in:blob:bundlePath:)`` over bytes held elsewhere.
  static func locateRecords(in raw: UnsafeRawBufferPointer, blob: BlobEntry, bundlePath: String) throws(ReplayError)
    -> [ArchivedSegment.Record]
  {
    let location = "\(bundlePath): \(blob.path)"
    let parsed: (SegmentHeader, Int)?
    do {
      parsed = try SegmentHeader.read(from: raw)
    } catch {
      throw ReplayError(.bundleChanged, "\(location): \(error)")
    }
    guard let (header, headerLength) = parsed else {
      throw ReplayError(.bundleChanged, "\(location): segment header is incomplete")
    }
    var position = headerLength
    guard header.signal == blob.signal, header.tenant == blob.tenant, header.node == blob.node else {
      throw ReplayError(.bundleChanged, "\(location): segment header does not match the manifest")
    }
    var records: [ArchivedSegment.Record] = []
    records.reserveCapacity(Int(min(blob.recordCount, 1 << 20)))
    var expectedSeq = blob.firstSeq
    while position < raw.count {
      guard raw.count - position >= SegmentRecord.frameHeaderSize + SegmentRecord.bodyPrefixSize else {
        throw ReplayError(.bundleChanged, "\(location): record frame truncated at byte \(position)")
      }
      let length = Int(bigEndian(UInt32.self, raw, position + 4))
      let bodyStart = position + SegmentRecord.frameHeaderSize
      guard length >= SegmentRecord.bodyPrefixSize, raw.count - bodyStart >= length else {
        throw ReplayError(.bundleChanged, "\(location): record length out of bounds at byte \(position)")
      }
      let seq = bigEndian(UInt64.self, raw, bodyStart)
      guard seq == expectedSeq else {
        throw ReplayError(.bundleChanged, "\(location): record seq \(seq) where \(expectedSeq) was expected")
      }
      let received = bigEndian(UInt64.self, raw, bodyStart + 8)
      records.append(
        .init(
          seq: seq, receivedUnixNano: received,
          request: (bodyStart + SegmentRecord.bodyPrefixSize)..<(bodyStart + length)))
      expectedSeq &+= 1
      position = bodyStart + length
    }
    guard UInt64(records.count) == blob.recordCount else {
      throw ReplayError(.bundleChanged, "\(location): \(records.count) records, manifest says \(blob.recordCount)")
    }
    return records
  }
}

@inline(__always)
func bigEndian<T: FixedWidthInteger>(_ type: T.Type, _ bytes: UnsafeRawBufferPointer, _ offset: Int) -> T {
  var value: T = 0
  for index in 0..<MemoryLayout<T>.size { value = value << 8 | T(bytes[offset + index]) }
  return value
}
