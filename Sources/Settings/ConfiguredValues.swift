// Typed configured values: what a size or a duration setting holds once its text is parsed.
// Flags and configuration files both produce these, so a value means the same wherever it was
// written, and every conversion a consumer needs is checked here once instead of at each use.

/// A configured size in bytes, never negative (`64MiB`, `1GB`, `4096`).
public struct ByteCount: Sendable, Hashable, CustomStringConvertible {
  /// The size in bytes; at least 0.
  public let bytes: Int64

  /// How a size's syntax reads in error messages.
  public static let hint = "like 1048576, 512KiB, 64MiB, 1GiB"

  /// Parses size text (see ``ByteSize``); `nil` for anything else, negative sizes and sizes
  /// past `Int64.max`.
  public init?(parsing text: String) {
    guard let bytes = ByteSize.parse(text) else { return nil }
    self.bytes = bytes
  }

  /// A size already in bytes; `nil` when negative.
  public init?(bytes: Int64) {
    guard bytes >= 0 else { return nil }
    self.bytes = bytes
  }

  /// The size as an `Int`, `nil` where it does not fit (32-bit platforms).
  public var intValue: Int? { Int(exactly: bytes) }

  /// The size as written in a configuration file: the largest binary unit that divides it.
  public var description: String { ByteSize.text(bytes) }
}

/// A configured duration, from 0 to ``DurationText/maximumMilliseconds`` (`200ms`, `30s`, `1h`).
public struct ConfiguredDuration: Sendable, Hashable, CustomStringConvertible {
  /// The duration in milliseconds; never negative and never longer than 100 years.
  public let milliseconds: Int

  /// Parses duration text (see ``DurationText``); `nil` for anything else and for durations
  /// longer than 100 years.
  public init?(parsing text: String) {
    guard let milliseconds = DurationText.milliseconds(text) else { return nil }
    self.milliseconds = milliseconds
  }

  /// A duration already in milliseconds; `nil` when negative or longer than 100 years.
  public init?(milliseconds: Int) {
    guard (0...DurationText.maximumMilliseconds).contains(milliseconds) else { return nil }
    self.milliseconds = milliseconds
  }

  /// Whole seconds, the remainder dropped (settings kept in seconds).
  public var wholeSeconds: Int { milliseconds / 1000 }

  /// The duration in nanoseconds. Always fits: 100 years of nanoseconds are below `UInt64.max`.
  public var nanoseconds: UInt64 { UInt64(milliseconds) &* 1_000_000 }

  /// The duration as written in a configuration file (`200ms`, `30s`, `15m`, `1h`).
  public var description: String { DurationText.text(milliseconds: milliseconds) }
}

extension ByteSize {
  /// `bytes` in the largest binary unit that divides it (`64MiB`, `1GiB`), else plain bytes.
  public static func text(_ bytes: Int64) -> String {
    for (suffix, shift) in [("TiB", 40), ("GiB", 30), ("MiB", 20), ("KiB", 10)]
    where bytes >= Int64(1) << shift && bytes % (Int64(1) << shift) == 0 {
      return "\(bytes >> shift)\(suffix)"
    }
    return "\(bytes)"
  }
}

extension DurationText {
  /// `seconds` in the largest unit that divides it (`1h`, `15m`, `30s`).
  public static func text(seconds value: Int) -> String {
    if value > 0, value % 3600 == 0 { return "\(value / 3600)h" }
    if value > 0, value % 60 == 0 { return "\(value / 60)m" }
    return "\(value)s"
  }

  /// `milliseconds` in the largest unit that divides it (`200ms`, `30s`, `1h`).
  public static func text(milliseconds value: Int) -> String {
    value > 0 && value % 1000 == 0 ? text(seconds: value / 1000) : "\(value)ms"
  }

  /// `seconds` in nanoseconds, `nil` when negative or past `UInt64`: settings kept in seconds
  /// can be set through the API as well as parsed, so their conversion is checked where it is
  /// made rather than trusted.
  public static func nanoseconds(seconds: Int) -> UInt64? { nanoseconds(seconds, per: 1_000_000_000) }

  /// `milliseconds` in nanoseconds, `nil` when negative or past `UInt64`.
  public static func nanoseconds(milliseconds: Int) -> UInt64? { nanoseconds(milliseconds, per: 1_000_000) }

  /// ``nanoseconds(seconds:)`` for a consumer that must always have a number (a writer thread's
  /// timer): below 0 reads as 0 (at once), past `UInt64` as `UInt64.max` (never).
  public static func saturatingNanoseconds(seconds: Int) -> UInt64 {
    nanoseconds(seconds: seconds) ?? (seconds < 0 ? 0 : .max)
  }

  /// ``nanoseconds(milliseconds:)``, saturating as ``saturatingNanoseconds(seconds:)`` does.
  public static func saturatingNanoseconds(milliseconds: Int) -> UInt64 {
    nanoseconds(milliseconds: milliseconds) ?? (milliseconds < 0 ? 0 : .max)
  }

  private static func nanoseconds(_ value: Int, per unit: UInt64) -> UInt64? {
    guard value >= 0 else { return nil }
    let (product, overflow) = UInt64(value).multipliedReportingOverflow(by: unit)
    return overflow ? nil : product
  }
}
