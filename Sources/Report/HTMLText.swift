import Manifest

/// Turning untrusted text into HTML text. Every string that comes from a bundle (tenant and node
/// names, incident facts, audit records, finding details) is attacker-controlled and passes
/// through here before it reaches the page.
enum HTMLText {
  /// `text` as HTML character data or a quoted attribute value: the five markup characters are
  /// written as character references, and control and Unicode format characters (bidirectional
  /// overrides, zero-width joiners…) as visible `\u{…}`, so a name cannot hide or reorder what
  /// the reader sees next to it.
  static func escaped(_ text: String) -> String {
    var out = ""
    out.reserveCapacity(text.utf8.count)
    for scalar in text.unicodeScalars {
      switch scalar {
      case "&": out += "&amp;"
      case "<": out += "&lt;"
      case ">": out += "&gt;"
      case "\"": out += "&quot;"
      case "'": out += "&#39;"
      case "\n", "\t": out.unicodeScalars.append(scalar)
      default:
        let value = scalar.value
        if value < 0x20 || (0x7F...0x9F).contains(value) || scalar.properties.generalCategory == .format {
          out += "\\u{\(String(value, radix: 16))}"
        } else {
          out.unicodeScalars.append(scalar)
        }
      }
    }
    return out
  }

  /// `text` as one POSIX shell word: single-quoted unless it is made only of characters that
  /// are never special to the shell.
  static func shellQuoted(_ text: String) -> String {
    let plain =
      !text.isEmpty
      && text.unicodeScalars.allSatisfy { scalar in
        ("a"..."z").contains(scalar) || ("A"..."Z").contains(scalar) || ("0"..."9").contains(scalar)
          || "._-/+=:,@".unicodeScalars.contains(scalar)
      }
    if plain { return text }
    return "'" + text.replacingAll("'", with: "'\\''") + "'"
  }
}

extension String {
  /// `self` with every occurrence of `target` replaced, without Foundation.
  fileprivate func replacingAll(_ target: Character, with replacement: String) -> String {
    var out = ""
    for character in self {
      if character == target { out += replacement } else { out.append(character) }
    }
    return out
  }
}

/// Unix nanoseconds as RFC 3339 UTC text, computed without a calendar library or time zone so
/// the same bundle always gives the same report.
enum UTCTime {
  /// `2026-12-03T17:42:38.123456789Z`; the fraction is left out when it is zero.
  static func format(_ unixNano: UInt64) -> String {
    let seconds = unixNano / 1_000_000_000
    let nanos = unixNano % 1_000_000_000
    let (year, month, day) = CivilDate.from(daysSince1970: Int64(seconds / 86_400))
    let secondOfDay = Int(seconds % 86_400)
    var text =
      "\(year)-\(padded(Int(month), 2))-\(padded(Int(day), 2))T\(padded(secondOfDay / 3600, 2)):\(padded(secondOfDay / 60 % 60, 2)):\(padded(secondOfDay % 60, 2))"
    if nanos != 0 { text += "." + padded(Int(nanos), 9) }
    return text + "Z"
  }

  /// A short form for chart axes: `2026-12-03 17:42:38Z`.
  static func formatShort(_ unixNano: UInt64) -> String {
    let full = format(unixNano / 1_000_000_000 * 1_000_000_000)
    return full.replacingAll("T", with: " ")
  }

  /// A duration in nanoseconds as a short human reading (`1.5 s`, `12 min`, `3 h`).
  static func duration(_ nanos: UInt64) -> String {
    let seconds = Double(nanos) / 1e9
    if seconds < 1 { return "\(Int((seconds * 1000).rounded())) ms" }
    if seconds < 120 { return "\(Int(seconds.rounded())) s" }
    if seconds < 7200 { return "\(Int((seconds / 60).rounded())) min" }
    if seconds < 172_800 { return "\(Int((seconds / 3600).rounded())) h" }
    return "\(Int((seconds / 86_400).rounded())) d"
  }

  private static func padded(_ value: Int, _ width: Int) -> String {
    let digits = String(value)
    return String(repeating: "0", count: max(0, width - digits.count)) + digits
  }
}
