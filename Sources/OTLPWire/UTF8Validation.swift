extension WireInput {
  /// Whether `range` is well-formed UTF-8, exactly as `Unicode.UTF8.ForwardParser` (which
  /// swift-protobuf uses for `string` fields) decides: no overlong forms, no surrogates, nothing
  /// above U+10FFFF, no truncated sequence.
  @inline(__always)
  func isValidUTF8(_ range: Range<Int>) -> Bool {
    var index = range.lowerBound
    let end = range.upperBound
    // Attribute keys and values are nearly always ASCII: test 8 bytes per step first.
    while end - index >= 8 {
      if base.loadUnaligned(fromByteOffset: index, as: UInt64.self) & 0x8080_8080_8080_8080 != 0 { break }
      index += 8
    }
    while index < end {
      if byte(index) < 0x80 {
        index += 1
        continue
      }
      return validateFromNonASCII(index, end)
    }
    return true
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
