import Foundation

// The value syntax every configuration file and flag shares: sizes and durations. Parsing
// returns nil instead of trapping on overflow, so no configured value can stop the service.

/// Sizes written as plain bytes or with a binary (`KiB`, `MiB`, `GiB`) or decimal (`KB`, `MB`,
/// `GB`) suffix.
public enum ByteSize {
  public static func parse(_ text: String) -> Int64? {
    let trimmed = text.trimmingCharacters(in: .whitespaces)
    let units: [(String, Int64)] = [
      ("KiB", 1 << 10), ("MiB", 1 << 20), ("GiB", 1 << 30), ("TiB", 1 << 40),
      ("KB", 1000), ("MB", 1_000_000), ("GB", 1_000_000_000), ("TB", 1_000_000_000_000), ("B", 1),
    ]
    for (suffix, factor) in units where trimmed.hasSuffix(suffix) {
      guard let number = Int64(trimmed.dropLast(suffix.count).trimmingCharacters(in: .whitespaces)), number >= 0
      else { return nil }
      let (product, overflow) = number.multipliedReportingOverflow(by: factor)
      return overflow ? nil : product
    }
    guard let number = Int64(trimmed), number >= 0 else { return nil }
    return number
  }
}

/// Durations written as `250ms`, `30s`, `5m`, `1h` (or plain seconds).
public enum DurationText {
  /// The longest duration any setting takes: 100 years. Every consumer turns durations into
  /// nanoseconds, and 100 years of them still fit a signed 64-bit integer, so no configured
  /// value can overflow that arithmetic (a trap would stop the service on a typo).
  public static let maximumMilliseconds = 100 * 365 * 86_400_000

  /// How a duration's rules read in error messages.
  public static let hint = "like 200ms, 30s, 5m, 1h; at most 876000h"

  /// The duration in milliseconds; `nil` for text that is not a duration or is longer than
  /// ``maximumMilliseconds``.
  public static func milliseconds(_ text: String) -> Int? {
    let trimmed = text.trimmingCharacters(in: .whitespaces)
    let units: [(String, Int)] = [("ms", 1), ("s", 1000), ("m", 60_000), ("h", 3_600_000)]
    let number: Int
    let factor: Int
    if let unit = units.first(where: { trimmed.hasSuffix($0.0) }) {
      guard let value = Int(trimmed.dropLast(unit.0.count)) else { return nil }
      (number, factor) = (value, unit.1)
    } else {
      guard let seconds = Int(trimmed) else { return nil }
      (number, factor) = (seconds, 1000)
    }
    let (product, overflow) = number.multipliedReportingOverflow(by: factor)
    guard number >= 0, !overflow, product <= maximumMilliseconds else { return nil }
    return product
  }
}

/// A configuration that cannot be used, with what and where.
public struct CaptureConfigurationError: Error, Sendable, CustomStringConvertible {
  public var message: String
  public init(_ message: String) { self.message = message }
  public var description: String { message }
}

/// A `HOST:PORT` a listener binds to.
public struct ListenAddress: Sendable, Equatable, CustomStringConvertible {
  public var host: String
  /// 0 picks a free port.
  public var port: Int

  public init(host: String, port: Int) {
    self.host = host
    self.port = port
  }

  /// Parses `HOST:PORT` (`[::1]:4318` for IPv6).
  public init(parsing text: String) throws(CaptureConfigurationError) {
    guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]),
      (0...65535).contains(port)
    else {
      throw CaptureConfigurationError("\"\(text)\" is not HOST:PORT with a port from 0 to 65535")
    }
    var host = String(text[..<colon])
    if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
    guard !host.isEmpty else { throw CaptureConfigurationError("\"\(text)\" has no host") }
    self.host = host
    self.port = port
  }

  public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }

  /// The word that turns an optional listener off instead of naming an address (`--metrics off`).
  public static let off = "off"

  /// Whether the host is a loopback address (`127.0.0.0/8`, `::1`, `localhost`).
  public var isLoopback: Bool {
    host == "localhost" || host == "::1" || host.hasPrefix("127.")
  }
}
