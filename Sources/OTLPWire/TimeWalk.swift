// BUNDLE-FORMAT.md §6.3, unchanged from the walk Manifest's OTLPTimeScan ran before this module:
// the verifier's SEGMENT_PROTOBUF_INVALID rule and the fixtures' expected codes depend on exactly
// what it accepts, so it is kept apart from the stricter full check.

/// Computes item times straight from the protobuf wire format, without decoding messages.
///
/// The walk follows only the stable OTLP v1 field numbers the format names: request → 1
/// resource_* → 2 scope_* → 2 spans / log_records / metrics; Span 7/8, LogRecord 1/11, Metric
/// 5/7/9/10/11 → 1 data_points → 3; every timestamp fixed64. Other fields are skipped, but must
/// still be well-formed wire data.
extension OTLPWireReader {
  /// BUNDLE-FORMAT.md §6.3's time walk over one serialized `Export…ServiceRequest` of `signal`:
  /// the verifier's rule, deliberately looser than ``check(_:signal:tenantAttribute:)``.
  public static func scanTimes(_ request: UnsafeRawBufferPointer, signal: WireSignal) throws(OTLPWireError)
    -> OTLPTimeSummary
  {
    var summary = OTLPTimeSummary()
    try forEachField(request, base: 0) { (field, wire, value, offset) throws(OTLPWireError) in
      guard field == 1 else { return }
      let resource = try lengthDelimited(wire, value, offset, "resource_\(signal.name)")
      try forEachField(resource, base: offset) { (field, wire, value, offset) throws(OTLPWireError) in
        guard field == 2 else { return }
        let scope = try lengthDelimited(wire, value, offset, "scope_\(signal.name)")
        try forEachField(scope, base: offset) { (field, wire, value, offset) throws(OTLPWireError) in
          guard field == 2 else { return }
          let item = try lengthDelimited(wire, value, offset, "item")
          switch signal {
          case .traces: try scanSpan(item, base: offset, into: &summary)
          case .logs: try scanLogRecord(item, base: offset, into: &summary)
          case .metrics: try scanMetric(item, base: offset, into: &summary)
          }
        }
      }
    }
    return summary
  }

  /// The time walk over one serialized request held in an array.
  public static func scanTimes(_ request: [UInt8], signal: WireSignal) throws(OTLPWireError) -> OTLPTimeSummary {
    var result: Result<OTLPTimeSummary, OTLPWireError> = .success(OTLPTimeSummary())
    request.withUnsafeBytes { raw in
      do throws(OTLPWireError) {
        result = .success(try scanTimes(raw, signal: signal))
      } catch {
        result = .failure(error)
      }
    }
    return try result.get()
  }

  private static func scanSpan(_ span: UnsafeRawBufferPointer, base: Int, into summary: inout OTLPTimeSummary)
    throws(OTLPWireError)
  {
    var start: UInt64 = 0
    var end: UInt64 = 0
    try forEachField(span, base: base) { (field, wire, value, offset) throws(OTLPWireError) in
      switch field {
      case 7: start = try fixed64(wire, value, offset, "span start_time_unix_nano")
      case 8: end = try fixed64(wire, value, offset, "span end_time_unix_nano")
      default: break
      }
    }
    summary.add(first: start, last: end)
  }

  private static func scanLogRecord(
    _ record: UnsafeRawBufferPointer, base: Int, into summary: inout OTLPTimeSummary
  ) throws(OTLPWireError) {
    var time: UInt64 = 0
    var observed: UInt64 = 0
    try forEachField(record, base: base) { (field, wire, value, offset) throws(OTLPWireError) in
      switch field {
      case 1: time = try fixed64(wire, value, offset, "log time_unix_nano")
      case 11: observed = try fixed64(wire, value, offset, "log observed_time_unix_nano")
      default: break
      }
    }
    let effective = time != 0 ? time : observed
    summary.add(first: effective, last: effective)
  }

  private static func scanMetric(_ metric: UnsafeRawBufferPointer, base: Int, into summary: inout OTLPTimeSummary)
    throws(OTLPWireError)
  {
    try forEachField(metric, base: base) { (field, wire, value, offset) throws(OTLPWireError) in
      // gauge 5, sum 7, histogram 9, exponential_histogram 10, summary 11.
      switch field {
      case 5, 7, 9, 10, 11: break
      default: return
      }
      let data = try lengthDelimited(wire, value, offset, "metric data")
      try forEachField(data, base: offset) { (field, wire, value, offset) throws(OTLPWireError) in
        guard field == 1 else { return }
        let point = try lengthDelimited(wire, value, offset, "data point")
        var time: UInt64 = 0
        try forEachField(point, base: offset) { (field, wire, value, offset) throws(OTLPWireError) in
          if field == 3 { time = try fixed64(wire, value, offset, "data point time_unix_nano") }
        }
        summary.add(first: time, last: time)
      }
    }
  }

  /// A field's payload: a varint value, the 8 or 4 bytes of a fixed field, or the bytes of a
  /// length-delimited one.
  private enum TimeWalkValue {
    case varint(UInt64)
    case bytes(UnsafeRawBufferPointer)
    /// A (deprecated but valid) group; its contents were checked and skipped.
    case group
  }

  private enum TimeWalkWireType: UInt64 {
    case varint = 0
    case fixed64 = 1
    case lengthDelimited = 2
    case startGroup = 3
    case endGroup = 4
    case fixed32 = 5
  }

  /// Groups nested deeper than this are refused, so hostile input cannot exhaust the stack.
  private static let maxGroupDepth = WireLimits.timeWalkGroupDepth

  // `what` is an autoclosure so the interpolated names are only built for an error.
  private static func lengthDelimited(
    _ wire: TimeWalkWireType, _ value: TimeWalkValue, _ offset: Int, _ what: @autoclosure () -> String
  ) throws(OTLPWireError) -> UnsafeRawBufferPointer {
    guard wire == .lengthDelimited, case .bytes(let bytes) = value else {
      throw OTLPWireError(offset: offset, message: "\(what()) is not length-delimited")
    }
    return bytes
  }

  private static func fixed64(
    _ wire: TimeWalkWireType, _ value: TimeWalkValue, _ offset: Int, _ what: @autoclosure () -> String
  ) throws(OTLPWireError) -> UInt64 {
    guard wire == .fixed64, case .bytes(let bytes) = value else {
      throw OTLPWireError(offset: offset, message: "\(what()) is not fixed64")
    }
    // fixed64 is little-endian on the wire; `forEachField` made `bytes` exactly 8 long.
    return UInt64(littleEndian: bytes.loadUnaligned(as: UInt64.self))
  }

  /// Calls `body` for each field of a message; `offset` is where the field's payload starts,
  /// counted from the start of the whole request.
  private static func forEachField(
    _ message: UnsafeRawBufferPointer, base: Int,
    _ body: (UInt64, TimeWalkWireType, TimeWalkValue, Int) throws(OTLPWireError) -> Void
  ) throws(OTLPWireError) {
    var position = 0
    while position < message.count {
      let tagOffset = base + position
      let (fieldNumber, wire) = try readTag(message, &position, base: base)
      if wire == .endGroup {
        throw OTLPWireError(offset: tagOffset, message: "end-group tag \(fieldNumber) without a matching start")
      }
      let payloadOffset = base + position
      // Where the field's content starts: after the length prefix for length-delimited fields.
      var contentOffset = payloadOffset
      let value: TimeWalkValue
      // Tested most frequent first (nested messages, then timestamps and ids, then varints):
      // a jump table here mispredicted on most fields.
      if wire == .lengthDelimited {
        let length = try readVarint(message, &position, base: base)
        guard length <= UInt64(message.count - position) else {
          throw OTLPWireError(offset: payloadOffset, message: "length \(length) runs past the end of its message")
        }
        contentOffset = base + position
        let end = position + Int(length)
        value = .bytes(UnsafeRawBufferPointer(rebasing: message[position..<end]))
        position = end
      } else if wire == .fixed64 || wire == .fixed32 {
        let width = wire == .fixed64 ? 8 : 4
        guard message.count - position >= width else {
          throw OTLPWireError(offset: payloadOffset, message: "truncated fixed-width field")
        }
        value = .bytes(UnsafeRawBufferPointer(rebasing: message[position..<position + width]))
        position += width
      } else if wire == .varint {
        value = .varint(try readVarint(message, &position, base: base))
      } else if wire == .startGroup {
        try skipGroup(message, &position, base: base, fieldNumber: fieldNumber, depth: 1)
        value = .group
      } else {
        throw OTLPWireError(offset: tagOffset, message: "unexpected end-group tag")
      }
      try body(fieldNumber, wire, value, contentOffset)
    }
  }

  @inline(__always)
  private static func readTag(_ message: UnsafeRawBufferPointer, _ position: inout Int, base: Int)
    throws(OTLPWireError) -> (UInt64, TimeWalkWireType)
  {
    let tagOffset = base + position
    let tag = try readVarint(message, &position, base: base)
    let fieldNumber = tag >> 3
    guard fieldNumber >= 1, fieldNumber <= 536_870_911 else {
      throw OTLPWireError(offset: tagOffset, message: "invalid field number \(fieldNumber)")
    }
    guard let wire = TimeWalkWireType(rawValue: tag & 7) else {
      throw OTLPWireError(offset: tagOffset, message: "invalid wire type \(tag & 7)")
    }
    return (fieldNumber, wire)
  }

  /// Skips a group's fields up to its end-group tag, checking that every field is well-formed.
  private static func skipGroup(
    _ message: UnsafeRawBufferPointer, _ position: inout Int, base: Int, fieldNumber: UInt64, depth: Int
  ) throws(OTLPWireError) {
    let groupOffset = base + position
    guard depth <= maxGroupDepth else {
      throw OTLPWireError(offset: groupOffset, message: "groups nested deeper than \(maxGroupDepth)")
    }
    while position < message.count {
      let tagOffset = base + position
      let (innerField, wire) = try readTag(message, &position, base: base)
      switch wire {
      case .endGroup:
        guard innerField == fieldNumber else {
          throw OTLPWireError(offset: tagOffset, message: "end-group \(innerField) closes group \(fieldNumber)")
        }
        return
      case .startGroup:
        try skipGroup(message, &position, base: base, fieldNumber: innerField, depth: depth + 1)
      case .varint:
        _ = try readVarint(message, &position, base: base)
      case .fixed64, .fixed32:
        let width = wire == .fixed64 ? 8 : 4
        guard message.count - position >= width else {
          throw OTLPWireError(offset: base + position, message: "truncated fixed-width field")
        }
        position += width
      case .lengthDelimited:
        let length = try readVarint(message, &position, base: base)
        guard length <= UInt64(message.count - position) else {
          throw OTLPWireError(offset: base + position, message: "length \(length) runs past the end of its message")
        }
        position += Int(length)
      }
    }
    throw OTLPWireError(offset: groupOffset, message: "group \(fieldNumber) has no end-group tag")
  }

  @inline(__always)
  private static func readVarint(_ bytes: UnsafeRawBufferPointer, _ position: inout Int, base: Int)
    throws(OTLPWireError) -> UInt64
  {
    // Most tags and lengths fit in one byte: take those without entering the loop.
    if position < bytes.count {
      let first = bytes[position]
      if first < 0x80 {
        position += 1
        return UInt64(first)
      }
    }
    return try readLongVarint(bytes, &position, base: base)
  }

  private static func readLongVarint(_ bytes: UnsafeRawBufferPointer, _ position: inout Int, base: Int)
    throws(OTLPWireError) -> UInt64
  {
    var result: UInt64 = 0
    var shift: UInt64 = 0
    let start = position
    while true {
      guard position < bytes.count else {
        throw OTLPWireError(offset: base + start, message: "truncated varint")
      }
      let byte = bytes[position]
      position += 1
      if shift == 63 && byte > 1 {
        throw OTLPWireError(offset: base + start, message: "varint overflows 64 bits")
      }
      result |= UInt64(byte & 0x7F) << shift
      if byte & 0x80 == 0 { return result }
      shift += 7
      if shift > 63 {
        throw OTLPWireError(offset: base + start, message: "varint longer than 10 bytes")
      }
    }
  }
}
