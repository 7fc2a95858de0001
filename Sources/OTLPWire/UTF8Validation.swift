extension WireInput {
  /// Whether `range` is well-formed UTF-8, exactly as `Unicode.UTF8.ForwardParser` (which
  /// swift-protobuf uses for `string` fields) decides: no overlong forms, no surrogates, nothing
  /// above U+10FFFF, no truncated sequence.
  @inline(__always)
  func isValidUTF8(_ range: Range<Int>) -> Bool {
    let count = range.count
    let start = range.lowerBound
    // Attribute keys and values are nearly always ASCII and short: test them with a few
    // (overlapping) word loads, and validate byte by byte only when a high bit shows up.
    var highBits: UInt64
    if count >= 8 {
      highBits = base.loadUnaligned(fromByteOffset: range.upperBound - 8, as: UInt64.self)
      var index = start
      while range.upperBound - index > 8 {
        highBits |= base.loadUnaligned(fromByteOffset: index, as: UInt64.self)
        index += 8
      }
    } else if count >= 4 {
      highBits = UInt64(
        base.loadUnaligned(fromByteOffset: start, as: UInt32.self)
          | base.loadUnaligned(fromByteOffset: range.upperBound - 4, as: UInt32.self))
    } else if count > 0 {
      highBits = UInt64(byte(start) | byte(start + count / 2) | byte(range.upperBound - 1))
    } else {
      return true
    }
    if highBits & 0x8080_8080_8080_8080 == 0 { return true }
    return validateFromNonASCII(start, range.upperBound)
  }

  @inline(never)
  func validateFromNonASCII(_ start: Int, _ end: Int) -> Bool {
    var index = start
    while index < end {
      while end - index >= 8,
        base.loadUnaligned(fromByteOffset: index, as: UInt64.self) & 0x8080_8080_8080_8080 == 0
      {
        index += 8
      }
      guard index < end else { return true }
      let lead = byte(index)
      if lead < 0x80 {
        index += 1
        continue
      }
      // The second byte's range depends on the lead (Unicode Table 3-7); later bytes are 80–BF.
      let width: Int
      var low: UInt8 = 0x80
      var high: UInt8 = 0xBF
      switch lead {
      case 0xC2...0xDF: width = 2
      case 0xE0:
        width = 3
        low = 0xA0
      case 0xE1...0xEC, 0xEE...0xEF: width = 3
      case 0xED:
        width = 3
        high = 0x9F
      case 0xF0:
        width = 4
        low = 0x90
      case 0xF1...0xF3: width = 4
      case 0xF4:
        width = 4
        high = 0x8F
      default: return false
      }
      guard end - index >= width else { return false }
      let second = byte(index + 1)
      guard second >= low && second <= high else { return false }
      for offset in 2..<width where byte(index + offset) & 0xC0 != 0x80 { return false }
      index += width
    }
    return true
  }
}
