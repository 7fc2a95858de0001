import Manifest

/// RFC 3339 timestamps (`2026-11-25T10:00:00Z`, `2026-11-25T11:00:00.123456789+01:00`) as Unix
/// nanoseconds, exactly: fractions keep all nine digits, unlike Foundation's ISO 8601 parser.
public enum RFC3339Time {
  /// The Unix nanoseconds of `text`, or `nil` when it is not an RFC 3339 date-time at or after
  /// the Unix epoch.
  public static func unixNano(_ text: String) -> UInt64? {
    let bytes = Array(text.utf8)
    var index = 0
    func digits(_ count: Int) -> Int? {
      guard index + count <= bytes.count else { return nil }
      var value = 0
      for byte in bytes[index..<index + count] {
        guard byte >= 0x30, byte <= 0x39 else { return nil }
        value = value * 10 + Int(byte - 0x30)
      }
      index += count
      return value
    }
    func expect(_ allowed: Set<UInt8>) -> Bool {
      guard index < bytes.count, allowed.contains(bytes[index]) else { return false }
      index += 1
      return true
    }
    guard let year = digits(4), expect([0x2D]), let month = digits(2), expect([0x2D]), let day = digits(2),
      expect([0x54, 0x74, 0x20]), let hour = digits(2), expect([0x3A]), let minute = digits(2), expect([0x3A]),
      let second = digits(2)
    else { return nil }
    guard (1...12).contains(month), (1...daysIn(month: month, year: year)).contains(day), hour < 24, minute < 60,
      second < 61
    else { return nil }
    var nanos = 0
    if index < bytes.count, bytes[index] == 0x2E {
      index += 1
      var count = 0
      while index < bytes.count, bytes[index] >= 0x30, bytes[index] <= 0x39 {
        if count < 9 { nanos = nanos * 10 + Int(bytes[index] - 0x30) }
        count += 1
        index += 1
      }
      guard count > 0 else { return nil }
      if count < 9 { for _ in count..<9 { nanos *= 10 } }
    }
    var offsetSeconds = 0
    if expect([0x5A, 0x7A]) {
      offsetSeconds = 0
    } else if index < bytes.count, bytes[index] == 0x2B || bytes[index] == 0x2D {
      let sign = bytes[index] == 0x2D ? -1 : 1
      index += 1
      guard let offsetHours = digits(2), expect([0x3A]), let offsetMinutes = digits(2), offsetHours < 24,
        offsetMinutes < 60
      else { return nil }
      offsetSeconds = sign * (offsetHours * 3600 + offsetMinutes * 60)
    } else {
      return nil
    }
    guard index == bytes.count else { return nil }
    let seconds =
      daysFromEpoch(year: year, month: month, day: day) * 86_400 + hour * 3600 + minute * 60
      + min(second, 59) - offsetSeconds
    guard seconds >= 0 else { return nil }
    let (product, overflow) = UInt64(seconds).multipliedReportingOverflow(by: 1_000_000_000)
    guard !overflow else { return nil }
    let (total, overflowSum) = product.addingReportingOverflow(UInt64(nanos))
    return overflowSum ? nil : total
  }

  /// `unixNano` as RFC 3339 UTC with nine fraction digits (`2026-11-25T10:00:00.000000000Z`).
  public static func format(_ unixNano: UInt64) -> String {
    let seconds = Int64(unixNano / 1_000_000_000)
    let nanos = unixNano % 1_000_000_000
    let days = seconds / 86_400
    let secondOfDay = seconds % 86_400
    let (year, month, day) = CivilDate.from(daysSince1970: days)
    func pad(_ value: Int64, _ width: Int) -> String {
      let text = String(value)
      return String(repeating: "0", count: max(0, width - text.count)) + text
    }
    return
      "\(pad(year, 4))-\(pad(month, 2))-\(pad(day, 2))T\(pad(secondOfDay / 3600, 2)):\(pad(secondOfDay / 60 % 60, 2)):\(pad(secondOfDay % 60, 2)).\(pad(Int64(nanos), 9))Z"
  }

  private static func daysIn(month: Int, year: Int) -> Int {
    switch month {
    case 2: (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 ? 29 : 28
    case 4, 6, 9, 11: 30
    default: 31
    }
  }

  /// Days from 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's civil algorithm).
  private static func daysFromEpoch(year: Int, month: Int, day: Int) -> Int {
    let shiftedYear = month <= 2 ? year - 1 : year
    let era = (shiftedYear >= 0 ? shiftedYear : shiftedYear - 399) / 400
    let yearOfEra = shiftedYear - era * 400
    let dayOfYear = (153 * (month + (month > 2 ? -3 : 9)) + 2) / 5 + day - 1
    let dayOfEra = yearOfEra * 365 + yearOfEra / 4 - yearOfEra / 100 + dayOfYear
    return era * 146_097 + dayOfEra - 719_468
  }
}
