/// The header of a segment: who numbered its records, for which signal and tenant (§6.2).
public struct SegmentHeader: Sendable, Equatable {
  /// `SFSG`.
  public static let magic: [UInt8] = [0x53, 0x46, 0x53, 0x47]
  public static let version: UInt8 = 1

  public var signal: Signal
  public var tenant: String
  public var node: String

  public init(signal: Signal, tenant: String, node: String) {
    self.signal = signal
    self.tenant = tenant
    self.node = node
  }

  /// The encoded header. Tenant and node must be 1...255 UTF-8 bytes (callers validate names).
  public func encoded() -> [UInt8] {
    var out = SegmentHeader.magic
    out.append(SegmentHeader.version)
    out.append(signal.code)
    appendLengthPrefixed(Array(tenant.utf8), to: &out)
    appendLengthPrefixed(Array(node.utf8), to: &out)
    return out
  }

  private func appendLengthPrefixed(_ bytes: [UInt8], to out: inout [UInt8]) {
    out.append(UInt8(truncatingIfNeeded: bytes.count >> 8))
    out.append(UInt8(truncatingIfNeeded: bytes.count))
    out.append(contentsOf: bytes)
  }

  /// Reads a header from the start of `bytes`.
  /// - Returns: the header and its encoded length, or `nil` if `bytes` is too short to hold it.
  /// - Throws: ``SegmentFormatError`` with kind `.badHeader` for bad magic, version, signal,
  ///   lengths outside 1...255 or invalid UTF-8.
  public static func read(from bytes: UnsafeRawBufferPointer) throws(SegmentFormatError) -> (SegmentHeader, Int)? {
    guard bytes.count >= 8 else { return nil }
    guard bytes.prefix(4).elementsEqual(magic) else {
      throw SegmentFormatError(.badHeader, offset: 0, "segment magic is not SFSG")
    }
    guard bytes[4] == version else {
      throw SegmentFormatError(.badHeader, offset: 4, "segment version \(bytes[4]) is not 1")
    }
    guard let signal = Signal(code: bytes[5]) else {
      throw SegmentFormatError(.badHeader, offset: 5, "signal code \(bytes[5]) is not 1, 2 or 3")
    }
    var offset = 6
    var fields: [String] = []
    for name in ["tenant", "node"] {
      guard bytes.count >= offset + 2 else { return nil }
      let length = Int(bytes[offset]) << 8 | Int(bytes[offset + 1])
      guard (1...255).contains(length) else {
        throw SegmentFormatError(.badHeader, offset: offset, "\(name)Len \(length) is outside 1...255")
      }
      offset += 2
      guard bytes.count >= offset + length else { return nil }
      guard let text = String(validating: bytes[offset..<offset + length], as: UTF8.self) else {
        throw SegmentFormatError(.badHeader, offset: offset, "\(name) is not valid UTF-8")
      }
      fields.append(text)
      offset += length
    }
    return (SegmentHeader(signal: signal, tenant: fields[0], node: fields[1]), offset)
  }
}

/// One framed record of a segment (§6.2).
public struct SegmentRecord: Sendable, Equatable {
  /// `SFR` then version 1.
  public static let prefix: [UInt8] = [0x53, 0x46, 0x52, 0x01]
  /// Magic, version, length and CRC.
  public static let frameHeaderSize = 12
  /// `seq` and `receivedUnixNano` precede the request in the body.
  public static let bodyPrefixSize = 16

  /// The record's sequence number in its stream.
  public var seq: UInt64
  /// When the capture node received the request; 0 when unknown.
  public var receivedUnixNano: UInt64
  /// The serialized `Export…ServiceRequest`.
  public var request: [UInt8]

  public init(seq: UInt64, receivedUnixNano: UInt64, request: [UInt8]) {
    self.seq = seq
    self.receivedUnixNano = receivedUnixNano
    self.request = request
  }

  /// The framed bytes: magic, version, length, CRC-32C of the body, body.
  public func framed() -> [UInt8] {
    var body: [UInt8] = []
    body.reserveCapacity(SegmentRecord.bodyPrefixSize + request.count)
    appendBigEndian(seq, to: &body)
    appendBigEndian(receivedUnixNano, to: &body)
    body.append(contentsOf: request)
    var out = SegmentRecord.prefix
    out.reserveCapacity(SegmentRecord.frameHeaderSize + body.count)
    appendBigEndian(UInt32(body.count), to: &out)
    appendBigEndian(CRC32C.checksum(body), to: &out)
    out.append(contentsOf: body)
    return out
  }
}

extension SegmentRecord {
  /// Appends the framed record of `request` to `out` without building the record first: the
  /// request is copied once, and its CRC runs over the 16-byte body prefix and then the request
  /// in place. Byte-identical to ``framed()``.
  public static func appendFramed(
    seq: UInt64, receivedUnixNano: UInt64, request: UnsafeRawBufferPointer, to out: inout [UInt8]
  ) {
    var prefix = (seq.bigEndian, receivedUnixNano.bigEndian)
    let crc = withUnsafeBytes(of: &prefix) { prefixBytes in
      CRC32C.finish(CRC32C.update(CRC32C.update(CRC32C.start, prefixBytes), request))
    }
    out.append(contentsOf: SegmentRecord.prefix)
    appendBigEndian(UInt32(bodyPrefixSize + request.count), to: &out)
    appendBigEndian(crc, to: &out)
    withUnsafeBytes(of: &prefix) { out.append(contentsOf: $0) }
    out.append(contentsOf: request)
  }
}

func appendBigEndian<T: FixedWidthInteger>(_ value: T, to out: inout [UInt8]) {
  var big = value.bigEndian
  withUnsafeBytes(of: &big) { out.append(contentsOf: $0) }
}

func readBigEndian<T: FixedWidthInteger>(_ type: T.Type, _ bytes: UnsafeRawBufferPointer, at offset: Int) -> T {
  var value: T = 0
  for index in 0..<MemoryLayout<T>.size {
    value = value << 8 | T(bytes[offset + index])
  }
  return value
}

/// A segment's framing broke a §6.2 rule.
public struct SegmentFormatError: Error, CustomStringConvertible, Equatable, Sendable {
  public enum Kind: Sendable, Equatable {
    /// Bad magic, version, signal code, tenantLen, nodeLen or UTF-8 in the segment header.
    case badHeader
    /// Bad record magic or version, or a body shorter than 16 bytes.
    case badRecord
    /// A record body longer than the limit.
    case recordTooLarge
    /// The data ends inside a header or record.
    case truncated
    /// A record's CRC-32C does not match its body.
    case crcMismatch
  }

  public var kind: Kind
  /// Offset in the decompressed segment where the problem starts.
  public var offset: Int
  public var message: String

  public init(_ kind: Kind, offset: Int, _ message: String) {
    self.kind = kind
    self.offset = offset
    self.message = message
  }

  public var description: String { "\(message) (segment byte \(offset))" }
}

/// Parses a decompressed segment fed in arbitrary pieces, checking framing and CRCs.
///
/// It holds at most one record (bounded by `maxRecordSize`) plus one incoming piece, so a
/// segment never needs to be in memory whole.
public struct SegmentStreamParser {
  /// One record as the parser hands it over; `request` is valid only during the call.
  public struct RecordView {
    /// Position of the record in the segment, counting from 0.
    public var index: UInt64
    /// Offset of the record's frame in the decompressed segment.
    public var offset: Int
    public var seq: UInt64
    public var receivedUnixNano: UInt64
    public var request: UnsafeRawBufferPointer
  }

  /// Called for each record in order. Handlers that find a problem keep it and ignore later
  /// records; framing errors are the parser's to throw.
  public typealias RecordHandler = (RecordView) -> Void

  private let maxRecordSize: Int
  private var buffer: [UInt8] = []
  /// Offset in the segment of `buffer[0]`.
  private var bufferOffset = 0
  public private(set) var header: SegmentHeader?
  public private(set) var recordCount: UInt64 = 0

  /// A parser refusing record bodies longer than `maxRecordSize` (default 16 MiB, §7).
  public init(maxRecordSize: Int = 16 << 20) {
    self.maxRecordSize = maxRecordSize
  }

  /// Feeds the next piece of the segment. Header errors surface as soon as the header is whole.
  public mutating func consume(_ piece: UnsafeRawBufferPointer, onRecord: RecordHandler) throws(SegmentFormatError) {
    if buffer.isEmpty {
      // Nothing held back: records are parsed where they lie in `piece` (a whole segment given
      // at once is never copied), and only an incomplete tail is kept for the next piece.
      let consumed = try parseAvailable(piece, onRecord: onRecord)
      bufferOffset += consumed
      if consumed < piece.count { buffer.append(contentsOf: UnsafeRawBufferPointer(rebasing: piece[consumed...])) }
      return
    }
    buffer.append(contentsOf: piece)
    var consumed = 0
    var failure: SegmentFormatError?
    buffer.withUnsafeBytes { all in
      do throws(SegmentFormatError) {
        consumed = try parseAvailable(all, onRecord: onRecord)
      } catch {
        failure = error
      }
    }
    if let failure { throw failure }
    if consumed > 0 {
      buffer.removeFirst(consumed)
      bufferOffset += consumed
    }
  }

  /// Declares the end of the segment: anything left over is a torn or truncated tail.
  public func finish() throws(SegmentFormatError) {
    if header == nil {
      throw SegmentFormatError(.badHeader, offset: 0, "segment ends before its header is complete")
    }
    if !buffer.isEmpty {
      throw SegmentFormatError(
        .truncated, offset: bufferOffset, "segment ends inside record \(recordCount) (\(buffer.count) bytes left)")
    }
  }

  private mutating func parseAvailable(_ bytes: UnsafeRawBufferPointer, onRecord: RecordHandler)
    throws(SegmentFormatError)
    -> Int
  {
    var position = 0
    if header == nil {
      guard let (parsed, length) = try SegmentHeader.read(from: bytes) else { return 0 }
      header = parsed
      position = length
    }
    while true {
      let remaining = bytes.count - position
      guard remaining >= SegmentRecord.frameHeaderSize else { return position }
      let recordOffset = bufferOffset + position
      let frame = UnsafeRawBufferPointer(rebasing: bytes[position..<position + SegmentRecord.frameHeaderSize])
      guard frame.prefix(4).elementsEqual(SegmentRecord.prefix) else {
        throw SegmentFormatError(.badRecord, offset: recordOffset, "record \(recordCount): bad magic or version")
      }
      let length = Int(readBigEndian(UInt32.self, frame, at: 4))
      guard length >= SegmentRecord.bodyPrefixSize else {
        throw SegmentFormatError(.badRecord, offset: recordOffset, "record \(recordCount): length \(length) < 16")
      }
      guard length <= maxRecordSize else {
        throw SegmentFormatError(
          .recordTooLarge, offset: recordOffset,
          "record \(recordCount): length \(length) exceeds the limit of \(maxRecordSize)")
      }
      guard remaining >= SegmentRecord.frameHeaderSize + length else { return position }
      let bodyStart = position + SegmentRecord.frameHeaderSize
      let body = UnsafeRawBufferPointer(rebasing: bytes[bodyStart..<bodyStart + length])
      let expected = readBigEndian(UInt32.self, frame, at: 8)
      guard CRC32C.checksum(body) == expected else {
        throw SegmentFormatError(.crcMismatch, offset: recordOffset, "record \(recordCount): CRC-32C mismatch")
      }
      let seq = readBigEndian(UInt64.self, body, at: 0)
      let received = readBigEndian(UInt64.self, body, at: 8)
      onRecord(
        RecordView(
          index: recordCount, offset: recordOffset, seq: seq, receivedUnixNano: received,
          request: UnsafeRawBufferPointer(rebasing: body[SegmentRecord.bodyPrefixSize...])))
      recordCount += 1
      position = bodyStart + length
    }
  }
}
