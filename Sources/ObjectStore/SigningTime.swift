public import CodedErrors
public import Foundation

/// The instant a request is signed, as SigV4 writes it: `YYYYMMDD'T'HHMMSS'Z'` in UTC.
///
/// Formatted by hand from seconds since 1970 rather than with `DateFormatter`, whose output
/// follows the locale and calendar of the process (a Buddhist-calendar or 12-hour locale signs
/// the wrong date).
public struct SigningTime: Sendable, Hashable {
  /// `YYYYMMDD'T'HHMMSS'Z'`, the `X-Amz-Date` value.
  public let amzDate: String
  /// `YYYYMMDD`, the date part of the credential scope.
  public let dateStamp: String

  /// The time `secondsSince1970` whole seconds after 1970-01-01T00:00:00Z.
  ///
  /// - Throws: ``SigV4Error`` with ``SigV4ErrorCode/invalidTime`` for a time before 1970 or
  ///   after 9999, which the four-digit year cannot hold.
  public init(secondsSince1970: Int64) throws(SigV4Error) {
    // 253402300799 is 9999-12-31T23:59:59Z.
    guard secondsSince1970 >= 0, secondsSince1970 <= 253_402_300_799 else {
      throw SigV4Error(.invalidTime, "signing time \(secondsSince1970) s since 1970 is outside 1970...9999")
    }
    let days = secondsSince1970 / 86_400
    let secondOfDay = secondsSince1970 % 86_400
    let (year, month, day) = Self.civilDate(daysSince1970: days)
    let date = Self.digits(year, 4) + Self.digits(month, 2) + Self.digits(day, 2)
    dateStamp = date
    amzDate =
      date + "T" + Self.digits(secondOfDay / 3600, 2) + Self.digits(secondOfDay / 60 % 60, 2)
      + Self.digits(secondOfDay % 60, 2) + "Z"
  }

  /// The whole second of `date` (fractions are dropped, as `X-Amz-Date` has none).
  public init(_ date: Date) throws(SigV4Error) {
    let seconds = date.timeIntervalSince1970.rounded(.down)
    guard let whole = Int64(exactly: seconds) else {
      throw SigV4Error(.invalidTime, "signing time \(date.timeIntervalSince1970) cannot be written as a date")
    }
    try self.init(secondsSince1970: whole)
  }

  /// The proleptic Gregorian year, month and day of a day count from 1970-01-01 (the
  /// era-based conversion in Howard Hinnant's "chrono-compatible low-level date algorithms",
  /// here only for non-negative counts).
  static func civilDate(daysSince1970: Int64) -> (year: Int64, month: Int64, day: Int64) {
    let shifted = daysSince1970 + 719_468  // days since 0000-03-01
    let era = shifted / 146_097
    let dayOfEra = shifted - era * 146_097
    let yearOfEra = (dayOfEra - dayOfEra / 1460 + dayOfEra / 36_524 - dayOfEra / 146_096) / 365
    let dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100)
    let monthFromMarch = (5 * dayOfYear + 2) / 153
    let day = dayOfYear - (153 * monthFromMarch + 2) / 5 + 1
    let month = monthFromMarch < 10 ? monthFromMarch + 3 : monthFromMarch - 9
    let year = yearOfEra + era * 400 + (month <= 2 ? 1 : 0)
    return (year, month, day)
  }

  private static func digits(_ value: Int64, _ width: Int) -> String {
    let text = String(value)
    return String(repeating: "0", count: max(0, width - text.count)) + text
  }
}
