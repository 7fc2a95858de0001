/// The three OTLP v1 signals, numbered like the segment-header signal byte (BUNDLE-FORMAT.md §6.2).
public enum WireSignal: UInt8, Sendable, CaseIterable {
  case traces = 1
  case logs = 2
  case metrics = 3

  /// The lowercase signal name, as it appears in manifests and error messages.
  public var name: String {
    switch self {
    case .traces: return "traces"
    case .logs: return "logs"
    case .metrics: return "metrics"
    }
  }
}

/// An OTLP request the reader refuses: where, and why.
public struct OTLPWireError: Error, CustomStringConvertible, Equatable, Sendable {
  /// Offset in the request bytes.
  public var offset: Int
  /// What is wrong; when the full check finds it, prefixed by the message and field it was in,
  /// e.g. `Span.name: invalid UTF-8`.
  public var message: String

  public init(offset: Int, message: String) {
    self.offset = offset
    self.message = message
  }

  public var description: String { "\(message) at request byte \(offset)" }
}

/// What a walk over one OTLP export request found (BUNDLE-FORMAT.md §6.3).
public struct OTLPTimeSummary: Sendable, Equatable {
  /// Spans, log records or metric data points seen.
  public var itemCount: UInt64 = 0
  /// The smallest first-time over all items; `UInt64.max` while there are none.
  public var minTime: UInt64 = .max
  /// The largest last-time over all items; 0 while there are none.
  public var maxTime: UInt64 = 0

  public init() {}

  /// `(first, last)` as the manifest records them: `(0, 0)` when there are no items.
  public var range: (first: UInt64, last: UInt64) {
    itemCount == 0 ? (0, 0) : (minTime, maxTime)
  }

  /// Adds another summary's items and times.
  public mutating func merge(_ other: OTLPTimeSummary) {
    itemCount += other.itemCount
    minTime = min(minTime, other.minTime)
    maxTime = max(maxTime, other.maxTime)
  }

  /// Adds one item whose times run from `first` to `last`.
  public mutating func add(first: UInt64, last: UInt64) {
    itemCount += 1
    minTime = min(minTime, first)
    maxTime = max(maxTime, last)
  }
}
