/// Standard base64 (RFC 4648 §4, `+` `/` alphabet, `=` padding) with a strict decoder.
///
/// The decoder accepts exactly one spelling per byte string — the one ``encode(_:)`` produces — so
/// a signed envelope cannot be re-encoded into different bytes that decode to the same content
/// (BUNDLE-FORMAT.md §5).
public enum StrictBase64 {
  private static let alphabet = Array(
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)

  /// Maps an ASCII byte to its 6-bit value, or 0xff for bytes outside the alphabet.
  private static let decodeTable: [UInt8] = {
    var table = [UInt8](repeating: 0xff, count: 256)
    for (value, byte) in alphabet.enumerated() { table[Int(byte)] = UInt8(value) }
    return table
  }()

  private static let pad = UInt8(ascii: "=")

  /// Encodes `bytes` with the standard alphabet and `=` padding, without line breaks.
  public static func encode(_ bytes: [UInt8]) -> String {
    var out: [UInt8] = []
    out.reserveCapacity((bytes.count + 2) / 3 * 4)
    var index = 0
    while index + 3 <= bytes.count {
      let group =
        UInt32(bytes[index]) << 16 | UInt32(bytes[index + 1]) << 8 | UInt32(bytes[index + 2])
      out.append(alphabet[Int(group >> 18 & 0x3f)])
      out.append(alphabet[Int(group >> 12 & 0x3f)])
      out.append(alphabet[Int(group >> 6 & 0x3f)])
      out.append(alphabet[Int(group & 0x3f)])
      index += 3
    }
    switch bytes.count - index {
    case 1:
      let group = UInt32(bytes[index]) << 16
      out.append(alphabet[Int(group >> 18 & 0x3f)])
      out.append(alphabet[Int(group >> 12 & 0x3f)])
      out.append(pad)
      out.append(pad)
    case 2:
      let group = UInt32(bytes[index]) << 16 | UInt32(bytes[index + 1]) << 8
      out.append(alphabet[Int(group >> 18 & 0x3f)])
      out.append(alphabet[Int(group >> 12 & 0x3f)])
      out.append(alphabet[Int(group >> 6 & 0x3f)])
      out.append(pad)
    default:
      break
    }
    return String(decoding: out, as: UTF8.self)
  }

  /// Decodes canonical standard base64, or returns `nil`.
  ///
  /// Rejected: a length that is not a multiple of 4, any byte outside the standard alphabet
  /// (including URL-safe `-` `_`, whitespace and line breaks), `=` anywhere but the last one or
  /// two positions, and non-zero unused bits before the padding (`QR==` is rejected, only `QQ==`
  /// spells the byte 0x41).
  public static func decode(_ text: String) -> [UInt8]? {
    let input = Array(text.utf8)
    guard input.count % 4 == 0 else { return nil }
    var out: [UInt8] = []
    out.reserveCapacity(input.count / 4 * 3)
    var index = 0
    while index < input.count {
      let isLast = index + 4 == input.count
      let padding: Int
      if isLast && input[index + 3] == pad {
        padding = input[index + 2] == pad ? 2 : 1
      } else {
        padding = 0
      }
      var group: UInt32 = 0
      for offset in 0..<(4 - padding) {
        let value = decodeTable[Int(input[index + offset])]
        guard value != 0xff else { return nil }
        group = group << 6 | UInt32(value)
      }
      switch padding {
      case 0:
        out.append(UInt8(truncatingIfNeeded: group >> 16))
        out.append(UInt8(truncatingIfNeeded: group >> 8))
        out.append(UInt8(truncatingIfNeeded: group))
      case 1:
        // 18 bits carry 2 bytes; the low 2 bits must be zero for the spelling to be canonical.
        guard group & 0x3 == 0 else { return nil }
        out.append(UInt8(truncatingIfNeeded: group >> 10))
        out.append(UInt8(truncatingIfNeeded: group >> 2))
      default:
        // 12 bits carry 1 byte; the low 4 bits must be zero.
        guard group & 0xf == 0 else { return nil }
        out.append(UInt8(truncatingIfNeeded: group >> 4))
      }
      index += 4
    }
    return out
  }
}
