/// The three OpenTelemetry signals a bundle can hold.
///
/// The raw value is the manifest's `signal` string; ``code`` is the byte in a segment header
/// (BUNDLE-FORMAT.md §6.2).
public enum Signal: String, Sendable, CaseIterable, Comparable, Codable {
  case traces
  case logs
  case metrics

  /// The segment-header signal byte: 1 traces, 2 logs, 3 metrics.
  public var code: UInt8 {
    switch self {
    case .traces: return 1
    case .logs: return 2
    case .metrics: return 3
    }
  }

  /// The signal for a segment-header byte, or `nil` for any other value.
  public init?(code: UInt8) {
    switch code {
    case 1: self = .traces
    case 2: self = .logs
    case 3: self = .metrics
    default: return nil
    }
  }

  public static func < (lhs: Signal, rhs: Signal) -> Bool { lhs.code < rhs.code }
}
