public import Manifest

/// The fixed64 timestamp fields of OTLP v1 requests, found on the protobuf wire without decoding.
///
/// Timestamps are fixed64, so a time shift rewrites them in place (same length) and the rest of
/// each request stays byte for byte what was archived. Field numbers are OTLP v1's, stable:
/// - traces: request 1 → ResourceSpans 2 → ScopeSpans 2 → Span: start 7, end 8; Span 11 → Event: time 1
/// - logs: request 1 → ResourceLogs 2 → ScopeLogs 2 → LogRecord: time 1, observed time 11
/// - metrics: request 1 → ResourceMetrics 2 → ScopeMetrics 2 → Metric 5 gauge / 7 sum / 9 histogram /
///   10 exponential histogram / 11 summary → 1 data point: start 2, time 3; exemplars (number point 5,
///   histogram point 8, exponential histogram point 11) → Exemplar: time 2
public enum OTLPWire {
  /// A problem walking the wire format, with the byte offset within the request.
  public struct WalkError: Error, CustomStringConvertible, Sendable, Equatable {
    public var offset: Int
    public var message: String
    public var description: String { "\(message) at request byte \(offset)" }
  }

  /// Message types on the timestamp paths.
  enum Level {
    case request(Signal)
    case resourceItems, scopeItems
    case span, event, logRecord
    case metric, pointContainer, numberPoint, histogramPoint, exponentialPoint, summaryPoint, exemplar

    /// The child message type carried in length-delimited field `field`, if it is on a path.
    @inline(__always)
    func child(_ field: UInt64) -> Level? {
      switch self {
      case .request: field == 1 ? .resourceItems : nil
      case .resourceItems: field == 2 ? .scopeItems : nil
      case .scopeItems: nil  // resolved by the caller, which knows the signal
      case .span: field == 11 ? .event : nil
      case .metric:
        switch field {
        case 5, 7, 9, 10, 11: .pointContainer
        default: nil
        }
      case .numberPoint: field == 5 ? .exemplar : nil
      case .histogramPoint: field == 8 ? .exemplar : nil
      case .exponentialPoint: field == 11 ? .exemplar : nil
      default: nil
      }
    }

    /// Whether fixed64 field `field` of this message is a timestamp.
    @inline(__always)
    func isTime(_ field: UInt64) -> Bool {
      switch self {
      case .span: field == 7 || field == 8
      case .event: field == 1
      case .logRecord: field == 1 || field == 11
      case .numberPoint, .histogramPoint, .exponentialPoint, .summaryPoint: field == 2 || field == 3
      case .exemplar: field == 2
      default: false
      }
    }
  }

  /// Calls `visit` with the offset of every timestamp field's 8 little-endian bytes, zero ones included.
  public static func forEachTimestamp(
    in request: UnsafeRawBufferPointer, signal: Signal, _ visit: (Int) -> Void
  ) throws(WalkError) {
    try walk(request, 0..<request.count, level: .request(signal), signal: signal, metricKind: 0, visit)
  }

  /// Shifts every non-zero timestamp of `request` by `offsetNanos`, in place.
  /// - Throws: ``WalkError`` for malformed wire data or a shifted time outside 1...UInt64.max.
  public static func shiftTimestamps(
    in request: UnsafeMutableRawBufferPointer, signal: Signal, by offsetNanos: Int64
  ) throws(WalkError) {
    guard offsetNanos != 0 else { return }
    var overflowAt: Int?
    try forEachTimestamp(in: UnsafeRawBufferPointer(request), signal: signal) { offset in
      let value = request.loadUnaligned(fromByteOffset: offset, as: UInt64.self).littleEndian
      guard value != 0 else { return }  // 0 means "not set" in OTLP and stays so
      let shifted: UInt64?
      if offsetNanos >= 0 {
        let (sum, overflow) = value.addingReportingOverflow(UInt64(offsetNanos))
        shifted = overflow ? nil : sum
      } else {
        let magnitude = offsetNanos.magnitude
        shifted = value > magnitude ? value - magnitude : nil
      }
      guard let shifted else {
        if overflowAt == nil { overflowAt = offset }
        return
      }
      request.storeBytes(of: shifted.littleEndian, toByteOffset: offset, as: UInt64.self)
    }
    if let overflowAt {
      throw WalkError(offset: overflowAt, message: "timestamp shifted by \(offsetNanos) ns leaves the u64 range")
    }
  }

  /// The largest timestamp in `request` (0 if it has none).
  public static func newestTimestamp(in request: UnsafeRawBufferPointer, signal: Signal) throws(WalkError) -> UInt64 {
    var newest: UInt64 = 0
    try forEachTimestamp(in: request, signal: signal) { offset in
      newest = max(newest, request.loadUnaligned(fromByteOffset: offset, as: UInt64.self).littleEndian)
    }
    return newest
  }

  private static func walk(
    _ bytes: UnsafeRawBufferPointer, _ range: Range<Int>, level: Level, signal: Signal, metricKind: UInt64,
    _ visit: (Int) -> Void
  ) throws(WalkError) {
    var position = range.lowerBound
    let end = range.upperBound
    while position < end {
      let tagStart = position
      let tag = try readVarint(bytes, &position, end)
      let field = tag >> 3
      guard field != 0 else { throw WalkError(offset: tagStart, message: "field number 0") }
      switch tag & 7 {
      case 0:
        _ = try readVarint(bytes, &position, end)
      case 1:
        guard end - position >= 8 else { throw WalkError(offset: position, message: "fixed64 runs past the end") }
        if level.isTime(field) { visit(position) }
        position += 8
      case 2:
        let length = try readVarint(bytes, &position, end)
        guard length <= UInt64(end - position) else {
          throw WalkError(offset: position, message: "length \(length) runs past the end")
        }
        let body = position..<position + Int(length)
        if let child = childLevel(level, field, signal: signal, metricKind: metricKind) {
          let kind = level == .metric ? field : metricKind
          try walk(bytes, body, level: child, signal: signal, metricKind: kind, visit)
        }
        position = body.upperBound
      case 3:
        try skipGroup(bytes, &position, end, field: field)
      case 5:
        guard end - position >= 4 else { throw WalkError(offset: position, message: "fixed32 runs past the end") }
        position += 4
      default:
        throw WalkError(offset: tagStart, message: "invalid wire type \(tag & 7)")
      }
    }
  }

  @inline(__always)
  private static func childLevel(_ level: Level, _ field: UInt64, signal: Signal, metricKind: UInt64) -> Level? {
    switch level {
    case .scopeItems:
      guard field == 2 else { return nil }
      switch signal {
      case .traces: return .span
      case .logs: return .logRecord
      case .metrics: return .metric
      }
    case .pointContainer:
      guard field == 1 else { return nil }
      switch metricKind {
      case 5, 7: return .numberPoint
      case 9: return .histogramPoint
      case 10: return .exponentialPoint
      default: return .summaryPoint
      }
    default:
      return level.child(field)
    }
  }

  private static func skipGroup(_ bytes: UnsafeRawBufferPointer, _ position: inout Int, _ end: Int, field: UInt64)
    throws(WalkError)
  {
    var depth = 1
    while depth > 0 {
      guard position < end else { throw WalkError(offset: position, message: "group \(field) is not closed") }
      let tag = try readVarint(bytes, &position, end)
      switch tag & 7 {
      case 0: _ = try readVarint(bytes, &position, end)
      case 1:
        guard end - position >= 8 else { throw WalkError(offset: position, message: "fixed64 runs past the end") }
        position += 8
      case 2:
        let length = try readVarint(bytes, &position, end)
        guard length <= UInt64(end - position) else {
          throw WalkError(offset: position, message: "length \(length) runs past the end")
        }
        position += Int(length)
      case 3: depth += 1
      case 4: depth -= 1
      case 5:
        guard end - position >= 4 else { throw WalkError(offset: position, message: "fixed32 runs past the end") }
        position += 4
      default: throw WalkError(offset: position, message: "invalid wire type \(tag & 7)")
      }
    }
  }

  @inline(__always)
  private static func readVarint(_ bytes: UnsafeRawBufferPointer, _ position: inout Int, _ end: Int)
    throws(WalkError) -> UInt64
  {
    var value: UInt64 = 0
    var shift: UInt64 = 0
    let start = position
    while position < end {
      let byte = bytes[position]
      position += 1
      if shift == 63 && byte > 1 { break }
      value |= UInt64(byte & 0x7F) << shift
      if byte & 0x80 == 0 { return value }
      shift += 7
      if shift > 63 { break }
    }
    throw WalkError(offset: start, message: "malformed varint")
  }
}

extension OTLPWire.Level: Equatable {}
