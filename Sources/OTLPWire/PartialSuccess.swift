extension OTLPWireReader {
  /// The partial-success rejected count of a serialized `Export…ServiceResponse`: field 1
  /// `partial_success` → field 1 `rejected_spans` / `rejected_log_records` /
  /// `rejected_data_points`.
  ///
  /// An endpoint's count is advice for the replay report, never a reason to fail a delivery the
  /// endpoint accepted, so anything unexpected reads as 0: no `partial_success`, no count, a
  /// field 1 of another wire type, or a response (or `partial_success`) that is not well-formed
  /// protobuf: a truncated varint or one over 10 bytes, a length past the end, or a group or
  /// wire type 6/7 anywhere. Varints read as swift-protobuf reads them. Where a field 1 occurs
  /// more than once, the first one sent as a varint or length-delimited counts.
  public static func partialSuccessRejected(inResponse response: UnsafeRawBufferPointer) -> UInt64 {
    guard let base = response.baseAddress, response.count > 0 else { return 0 }
    let input = WireInput(base: base, count: response.count)
    guard let partial = try? input.firstScalarOrBytes(field: 1, in: 0..<response.count), partial.wire == 2,
      let rejected = try? input.firstScalarOrBytes(field: 1, in: partial.value), rejected.wire == 0
    else { return 0 }
    var position = rejected.value.lowerBound
    return (try? input.readVarint(&position, rejected.value.upperBound, strict: false)) ?? 0
  }

  /// The partial-success rejected count of a response held in an array, read as the
  /// buffer-pointer form reads it.
  public static func partialSuccessRejected(inResponse response: [UInt8]) -> UInt64 {
    response.withUnsafeBytes { partialSuccessRejected(inResponse: $0) }
  }
}

extension WireInput {
  /// The first occurrence of field `number` sent as a varint (wire type 0) or length-delimited
  /// (2) in the message in `range`, with the value's bytes (after the length prefix), once the
  /// whole message has been read as well-formed. Any field number is accepted, 0 included;
  /// groups are not (OTLP responses have none).
  func firstScalarOrBytes(field number: UInt64, in range: Range<Int>) throws(Fault)
    -> (wire: UInt8, value: Range<Int>)?
  {
    var found: (wire: UInt8, value: Range<Int>)?
    var position = range.lowerBound
    let end = range.upperBound
    while position < end {
      let tagStart = position
      let tag = try readVarint(&position, end, strict: false)
      let wire = UInt8(truncatingIfNeeded: tag & 7)
      let valueStart = position
      switch wire {
      case 0:
        _ = try readVarint(&position, end, strict: false)
        if found == nil && tag >> 3 == number { found = (0, valueStart..<position) }
      case 1:
        try skipFixed(&position, end, width: 8)
      case 2:
        let value = try readLength(&position, end, strict: false, bounded: false)
        if found == nil && tag >> 3 == number { found = (2, value) }
      case 5:
        try skipFixed(&position, end, width: 4)
      default:
        throw Fault(tagStart, .invalidWireType(wire))
      }
    }
    return found
  }
}
