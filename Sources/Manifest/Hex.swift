/// Lowercase hexadecimal, the only hex form the bundle format allows (`hex64`, key ids).
public enum Hex {
  private static let digits = Array("0123456789abcdef".utf8)

  /// The lowercase hex text of `bytes`.
  public static func encode<Bytes: Sequence<UInt8>>(_ bytes: Bytes) -> String {
    var out: [UInt8] = []
    out.reserveCapacity(bytes.underestimatedCount * 2)
    for byte in bytes {
      out.append(digits[Int(byte >> 4)])
      out.append(digits[Int(byte & 0x0F)])
    }
    return String(decoding: out, as: UTF8.self)
  }

  /// The bytes of hex `text`, or `nil` for odd length or a non-hex character. Upper-case digits
  /// are refused unless `acceptingUppercase` (the bundle format allows only lower case).
  public static func decode(_ text: String, acceptingUppercase: Bool = false) -> [UInt8]? {
    let utf8 = Array(text.utf8)
    guard utf8.count % 2 == 0 else { return nil }
    var out: [UInt8] = []
    out.reserveCapacity(utf8.count / 2)
    var index = 0
    while index < utf8.count {
      guard let high = value(ofDigit: utf8[index], acceptingUppercase: acceptingUppercase),
        let low = value(ofDigit: utf8[index + 1], acceptingUppercase: acceptingUppercase)
      else { return nil }
      out.append(high << 4 | low)
      index += 2
    }
    return out
  }

  /// Whether `text` is exactly 64 lowercase hex digits (a SHA-256 in the manifest).
  public static func isHex64(_ text: String) -> Bool {
    text.utf8.count == 64 && text.utf8.allSatisfy { value(ofDigit: $0) != nil }
  }

  /// The value of one hex digit, or `nil`.
  public static func value(ofDigit c: UInt8, acceptingUppercase: Bool = false) -> UInt8? {
    switch c {
    case UInt8(ascii: "0")...UInt8(ascii: "9"): return c - UInt8(ascii: "0")
    case UInt8(ascii: "a")...UInt8(ascii: "f"): return c - UInt8(ascii: "a") + 10
    case UInt8(ascii: "A")...UInt8(ascii: "F") where acceptingUppercase: return c - UInt8(ascii: "A") + 10
    default: return nil
    }
  }
}
