/// Calendar dates of day counts, for every UTC time text the product writes (RFC 3339 in the
/// journal and reports, SigV4's `YYYYMMDD`): one conversion instead of one per format, and no
/// Foundation calendar or locale in the way.
public enum CivilDate {
  /// The proleptic Gregorian year, month (1–12) and day (1–31) of day `daysSince1970`, counted
  /// from 1970-01-01 (negative before it), after Howard Hinnant's days-to-civil algorithm.
  public static func from(daysSince1970: Int64) -> (year: Int64, month: Int64, day: Int64) {
    let shifted = daysSince1970 + 719_468  // days since 0000-03-01
    // Integer division truncates toward zero; eras before year 0 need the floor.
    let era = (shifted >= 0 ? shifted : shifted - 146_096) / 146_097
    let dayOfEra = shifted - era * 146_097
    let yearOfEra = (dayOfEra - dayOfEra / 1460 + dayOfEra / 36_524 - dayOfEra / 146_096) / 365
    let dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100)
    let monthFromMarch = (5 * dayOfYear + 2) / 153
    let day = dayOfYear - (153 * monthFromMarch + 2) / 5 + 1
    let month = monthFromMarch < 10 ? monthFromMarch + 3 : monthFromMarch - 9
    let year = yearOfEra + era * 400 + (month <= 2 ? 1 : 0)
    return (year, month, day)
  }
}
