public import CodedErrors
public import Foundation
import Manifest

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
    let (year, month, day) = CivilDate.from(daysSince1970: days)
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

  private static func digits(_ value: Int64, _ width: Int) -> String {
    let text = String(value)
    return String(repeating: "0", count: max(0, width - text.count)) + text
  }
}
