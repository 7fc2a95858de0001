/// Bounds-checked reads over the request bytes. Positions are offsets from the start of the whole
/// request, so every error points at a byte of the client's request; `end` is the end of the
/// message being read.
struct WireInput {
  let base: UnsafeRawPointer
  let count: Int

  @inline(__always)
  func byte(_ offset: Int) -> UInt8 {
    base.load(fromByteOffset: offset, as: UInt8.self)
  }

  @inline(__always)
  func fixed64(_ offset: Int) -> UInt64 {
    UInt64(littleEndian: base.loadUnaligned(fromByteOffset: offset, as: UInt64.self))
  }

  /// A varint. swift-protobuf reads at most 10 bytes and drops what the tenth byte holds beyond
  /// bit 63; with `strict` (the §6.3 walk) a tenth byte above 1 is refused instead.
  @inline(__always)
  func readVarint(_ position: inout Int, _ end: Int, strict: Bool) throws(Fault) -> UInt64 {
    guard position < end else { throw Fault(position, .truncatedVarint) }
    let first = byte(position)
    if first < 0x80 {
      position += 1
      return UInt64(first)
    }
    return try readLongVarint(&position, end, strict: strict)
  }

  @inline(never)
  func readLongVarint(_ position: inout Int, _ end: Int, strict: Bool) throws(Fault) -> UInt64 {
    let start = position
    var index = position
    var value: UInt64 = 0
    var shift: UInt64 = 0
    while true {
      guard index < end else { throw Fault(start, .truncatedVarint) }
      let next = byte(index)
      index += 1
      if shift == 63 {
        if strict && next > 1 { throw Fault(start, .varintOverflow) }
        guard next < 0x80 else { throw Fault(start, .varintTooLong) }
        position = index
        return value | UInt64(next) &<< 63
      }
      value |= UInt64(next & 0x7F) << shift
      if next < 0x80 {
        position = index
        return value
      }
      shift += 7
    }
  }

  /// A field tag at message level, read the way swift-protobuf's `nextFieldNumber()` does: at
  /// most 5 bytes (the fifth at most 15), wire type 0–5, field number not 0, and no end-group
  /// (messages are never groups in OTLP, so an end-group here closes nothing).
  @inline(__always)
  func readTag(_ position: inout Int, _ end: Int) throws(Fault) -> (field: UInt32, wire: UInt8) {
    let start = position
    let first = byte(position)
    let wire = first & 7
    var field: UInt32
    if first < 0x80 {
      field = UInt32(first >> 3)
      position += 1
    } else {
      field = try readLongTag(&position, end, first: first)
    }
    guard wire <= 5 else { throw Fault(start, .invalidWireType(wire)) }
    guard field != 0 else { throw Fault(start, .fieldNumberZero) }
    guard wire != 4 else { throw Fault(start, .endGroupOutsideGroup) }
    return (field, wire)
  }

  @inline(never)
  func readLongTag(_ position: inout Int, _ end: Int, first: UInt8) throws(Fault) -> UInt32 {
    let start = position
    guard first & 7 <= 5 else { throw Fault(start, .invalidWireType(first & 7)) }
    var field = UInt32(first & 0x7F) >> 3
    for index in 1...4 {
      guard start + index < end else { throw Fault(start, .truncatedVarint) }
      let next = byte(start + index)
      if index == 4 {
        guard next <= 15 else { throw Fault(start, .tagTooLong) }
        field |= UInt32(next) << 25
        position = start + 5
        return field
      }
      field |= UInt32(next & 0x7F) << UInt32(7 * index - 3)
      if next < 0x80 {
        position = start + index + 1
        return field
      }
    }
    // The loop returns on its fifth byte.
    throw Fault(start, .tagTooLong)
  }

  /// A length prefix, then the range of `length` bytes after it.
  @inline(__always)
  func readLength(_ position: inout Int, _ end: Int, strict: Bool, bounded: Bool) throws(Fault) -> Range<Int> {
    let lengthStart = position
    let length = try readVarint(&position, end, strict: strict)
    if bounded && length >= WireLimits.maxFieldLength {
      throw Fault(lengthStart, .lengthOver2GiB(length))
    }
    guard length <= UInt64(end - position) else { throw Fault(lengthStart, .lengthPastEnd(length)) }
    let start = position
    position += Int(length)
    return start..<position
  }

  @inline(__always)
  func skipFixed(_ position: inout Int, _ end: Int, width: Int) throws(Fault) {
    guard end - position >= width else { throw Fault(position, .truncatedFixed) }
    position += width
  }

  /// Skips one field's value as swift-protobuf skips an unknown field (`skipOver(tag:)`):
  /// well-formed, nothing more. `depth` is the depth of the message holding the field;
  /// `groupDepth` the groups already open around it in that message.
  func skipValue(
    _ position: inout Int, _ end: Int, field: UInt64, wire: UInt8, depth: Int, groupDepth: Int, strict: Bool
  ) throws(Fault) {
    switch wire {
    case 0: _ = try readVarint(&position, end, strict: strict)
    case 1: try skipFixed(&position, end, width: 8)
    case 2: _ = try readLength(&position, end, strict: strict, bounded: false)
    case 3: try skipGroup(&position, end, field: field, depth: depth + 1, groupDepth: groupDepth + 1, strict: strict)
    case 5: try skipFixed(&position, end, width: 4)
    default: throw Fault(position, .invalidWireType(wire))
    }
  }

  /// Skips a group's fields up to its end-group tag. Inside a group swift-protobuf reads tags as
  /// plain varints (up to 10 bytes, value below 2^32 - 1); each group counts toward the message
  /// depth limit, and on the §6.3 path also toward the walk's own group bound.
  func skipGroup(_ position: inout Int, _ end: Int, field: UInt64, depth: Int, groupDepth: Int, strict: Bool)
    throws(Fault)
  {
    let groupStart = position
    guard depth <= WireLimits.messageDepth else { throw Fault(groupStart, .depthLimit) }
    if strict && groupDepth > WireLimits.timeWalkGroupDepth { throw Fault(groupStart, .groupsTooDeep) }
    while position < end {
      let tagStart = position
      let tag = try readVarint(&position, end, strict: strict)
      let wire = UInt8(truncatingIfNeeded: tag & 7)
      let inner = tag >> 3
      guard tag < 0xFFFF_FFFF, inner != 0, wire <= 5 else { throw Fault(tagStart, .invalidTag(tag)) }
      if wire == 4 {
        guard inner == field else { throw Fault(tagStart, .mismatchedEndGroup(inner)) }
        return
      }
      try skipValue(&position, end, field: inner, wire: wire, depth: depth, groupDepth: groupDepth, strict: strict)
    }
    throw Fault(groupStart, .unterminatedGroup)
  }
}
