// Replay's timestamp walk: it finds every fixed64 timestamp of an archived request, so a time
// shift can rewrite them in place (same length) and the rest of the request stays byte for byte
// what was archived. Its accept rule is the one replay has always applied, kept apart from the
// §6.3 walk and the full check: changing it would change which existing bundles replay.
//
// Paths, all OTLP v1 field numbers (the same schema as `MessageKind.rule`):
// - traces: request 1 → ResourceSpans 2 → ScopeSpans 2 → Span: start 7, end 8; Span 11 → Event: time 1
// - logs: request 1 → ResourceLogs 2 → ScopeLogs 2 → LogRecord: time 1, observed time 11
// - metrics: request 1 → ResourceMetrics 2 → ScopeMetrics 2 → Metric 5 gauge / 7 sum / 9 histogram /
//   10 exponential histogram / 11 summary → 1 data point: start 2, time 3; exemplars (number point 5,
//   histogram point 8, exponential histogram point 11) → Exemplar: time 2

extension OTLPWireReader {
  /// Calls `visit` with the offset in `request` of every timestamp's 8 little-endian bytes, zero
  /// ones included, in wire order.
  ///
  /// A timestamp is a field on one of the paths above sent as fixed64; the same field with
  /// another wire type is skipped, not refused. Every message on the paths must be well-formed
  /// protobuf: varints at most 10 bytes (the tenth 0 or 1), field numbers not 0, lengths inside
  /// their message, no end-group outside a group, groups closed. Messages off the paths are
  /// skipped whole, unread. Nothing is allocated.
  ///
  /// - Throws: ``OTLPWireError`` at the first malformed byte; `visit` may have been called for
  ///   timestamps before it.
  public static func forEachTimestamp(
    in request: UnsafeRawBufferPointer, signal: WireSignal, _ visit: (Int) -> Void
  ) throws(OTLPWireError) {
    guard let base = request.baseAddress, request.count > 0 else { return }
    let input = WireInput(base: base, count: request.count)
    do throws(Fault) {
      try input.walkTimestamps(MessageKind(request: signal), 0..<request.count, visit)
    } catch {
      throw error.publicError
    }
  }

  /// Adds `offsetNanos` to every non-zero timestamp of `request` (see
  /// ``forEachTimestamp(in:signal:_:)``), in place.
  ///
  /// Zero means "not set" in OTLP and stays zero. A shifted time must stay within
  /// 1...`UInt64.max`: one that would not is left as it was, the others are still shifted, and
  /// the first such timestamp's offset is thrown once the walk is done.
  ///
  /// - Throws: ``OTLPWireError`` for malformed wire data or a shift out of range.
  public static func shiftTimestamps(
    in request: UnsafeMutableRawBufferPointer, signal: WireSignal, by offsetNanos: Int64
  ) throws(OTLPWireError) {
    guard offsetNanos != 0 else { return }
    var outOfRangeAt: Int?
    try forEachTimestamp(in: UnsafeRawBufferPointer(request), signal: signal) { offset in
      let value = UInt64(littleEndian: request.loadUnaligned(fromByteOffset: offset, as: UInt64.self))
      guard value != 0 else { return }
      let shifted: UInt64?
      if offsetNanos >= 0 {
        let (sum, overflow) = value.addingReportingOverflow(UInt64(offsetNanos))
        shifted = overflow ? nil : sum
      } else {
        let magnitude = offsetNanos.magnitude
        shifted = value > magnitude ? value - magnitude : nil
      }
      guard let shifted else {
        if outOfRangeAt == nil { outOfRangeAt = offset }
        return
      }
      request.storeBytes(of: shifted.littleEndian, toByteOffset: offset, as: UInt64.self)
    }
    if let outOfRangeAt {
      throw Fault(outOfRangeAt, .shiftOutOfRange(offsetNanos)).publicError
    }
  }

  /// The largest timestamp of `request` (see ``forEachTimestamp(in:signal:_:)``); 0 if it has none.
  public static func newestTimestamp(in request: UnsafeRawBufferPointer, signal: WireSignal) throws(OTLPWireError)
    -> UInt64
  {
    var newest: UInt64 = 0
    try forEachTimestamp(in: request, signal: signal) { offset in
      newest = max(newest, UInt64(littleEndian: request.loadUnaligned(fromByteOffset: offset, as: UInt64.self)))
    }
    return newest
  }
}

extension MessageKind {
  /// The request message of `signal`.
  init(request signal: WireSignal) {
    switch signal {
    case .traces: self = .traceRequest
    case .logs: self = .logsRequest
    case .metrics: self = .metricsRequest
    }
  }

  /// The message in length-delimited field `field` of this one that may hold timestamps: the
  /// §6.3 path, plus span events and exemplars.
  @inline(__always)
  func timestampChild(_ field: UInt64) -> MessageKind? {
    // Field numbers come from a full 64-bit varint here; larger ones are never in the schema.
    guard field <= UInt64(UInt32.max) else { return nil }
    switch rule(UInt32(field)) {
    case .timeWalkedMessage(let kind): return kind
    case .message(let kind) where kind == .event || kind == .exemplar: return kind
    default: return nil
    }
  }

  /// Whether fixed64 field `field` of this message is a timestamp.
  @inline(__always)
  func isTimestamp(_ field: UInt64) -> Bool {
    switch self {
    case .span: return field == 7 || field == 8
    case .event: return field == 1
    case .logRecord: return field == 1 || field == 11
    case .numberDataPoint, .histogramDataPoint, .exponentialHistogramDataPoint, .summaryDataPoint:
      return field == 2 || field == 3
    case .exemplar: return field == 2
    default: return false
    }
  }
}

extension WireInput {
  /// One message of the timestamp walk (at most 7 deep: request to exemplar).
  ///
  /// Tags are read as plain strict varints, not by `readTag`: the walk has always accepted any
  /// field number above 0 and tags of up to 10 bytes, which bundles already verified may hold.
  func walkTimestamps(_ kind: MessageKind, _ range: Range<Int>, _ visit: (Int) -> Void) throws(Fault) {
    var position = range.lowerBound
    let end = range.upperBound
    while position < end {
      let tagStart = position
      var field: UInt64 = 0
      do throws(Fault) {
        let tag = try readVarint(&position, end, strict: true)
        field = tag >> 3
        guard field != 0 else { throw Fault(tagStart, .fieldNumberZero) }
        switch tag & 7 {
        case 0:
          _ = try readVarint(&position, end, strict: true)
        case 1:
          guard end - position >= 8 else { throw Fault(position, .truncatedFixed) }
          if kind.isTimestamp(field) { visit(position) }
          position += 8
        case 2:
          let body = try readLength(&position, end, strict: true, bounded: false)
          if let child = kind.timestampChild(field) { try walkTimestamps(child, body, visit) }
        case 3:
          try skipOpenGroups(&position, end)
        case 4:
          throw Fault(tagStart, .endGroupOutsideGroup)
        case 5:
          try skipFixed(&position, end, width: 4)
        default:
          throw Fault(tagStart, .invalidWireType(UInt8(truncatingIfNeeded: tag & 7)))
        }
      } catch {
        throw error.naming(kind, field <= UInt64(UInt32.max) ? UInt32(field) : 0)
      }
    }
  }

  /// Skips from just after a start-group tag to the end-group that closes it, the timestamp
  /// walk's way: any end-group closes the innermost open group whatever its field number, field
  /// number 0 is allowed inside, and nesting is only counted (a loop, not recursion, so any
  /// depth is safe).
  func skipOpenGroups(_ position: inout Int, _ end: Int) throws(Fault) {
    let groupStart = position
    var open = 1
    while open > 0 {
      guard position < end else { throw Fault(groupStart, .unterminatedGroup) }
      let tagStart = position
      let tag = try readVarint(&position, end, strict: true)
      let wire = UInt8(truncatingIfNeeded: tag & 7)
      switch wire {
      case 3: open += 1
      case 4: open -= 1
      case 0, 1, 2, 5:
        try skipValue(&position, end, field: tag >> 3, wire: wire, depth: 0, groupDepth: 0, strict: true)
      default: throw Fault(tagStart, .invalidWireType(wire))
      }
    }
  }
}
