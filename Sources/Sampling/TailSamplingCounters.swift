/// Why a trace was kept, or that it was dropped. The raw values are the documented counter names.
public enum TraceDecision: String, Sendable, CaseIterable {
  /// The tenant was kept in full (an incident was active for it) when the trace was decided.
  case keptIncident = "kept-incident"
  /// A span had status code ERROR.
  case keptError = "kept-error"
  /// A span, or the whole trace, lasted at least the latency threshold.
  case keptLatency = "kept-latency"
  /// A span's resource had a `service.name` on the always-keep list.
  case keptService = "kept-service"
  /// The trace id fell under the probabilistic ratio.
  case keptProbabilistic = "kept-probabilistic"
  /// No rule matched.
  case dropped

  /// Whether the trace goes to the archive.
  public var keeps: Bool { self != .dropped }
}

/// What the sampler did since it started, for `/status`. Trace decisions count each trace once,
/// under the first rule that matched in the order of ``TraceDecision``'s cases.
public struct TailSamplingCounters: Sendable, Equatable {
  /// Trace decisions by rule.
  public var keptIncident: UInt64 = 0
  public var keptError: UInt64 = 0
  public var keptLatency: UInt64 = 0
  public var keptService: UInt64 = 0
  public var keptProbabilistic: UInt64 = 0
  public var dropped: UInt64 = 0
  /// Traces decided before their decision wait because a buffer bound was reached (also counted
  /// under their decision).
  public var decidedEarly: UInt64 = 0

  /// Spans copied to the archive (late spans of kept traces included) and not copied.
  public var spansKept: UInt64 = 0
  public var spansDropped: UInt64 = 0
  /// Log records copied to the archive and not copied.
  public var logRecordsKept: UInt64 = 0
  public var logRecordsDropped: UInt64 = 0
  /// Metric data points copied to the archive and not copied.
  public var dataPointsKept: UInt64 = 0
  public var dataPointsDropped: UInt64 = 0

  /// Export requests handed to the output.
  public var requestsEmitted: UInt64 = 0
  /// Requests never sampled because the queue bound was reached or the sampler was stopped
  /// (they are still in the journal ring).
  public var requestsSkipped: UInt64 = 0
  /// Requests the sampler could not read, or whose kept items it could not splice (admission
  /// validated them, so this stays 0).
  public var requestsUndecodable: UInt64 = 0

  /// Traces and spans waiting for a decision now.
  public var bufferedTraces = 0
  public var bufferedSpans = 0
  /// Memory held for them: each request they point into, whole, once (until its last buffered
  /// trace is decided), plus a small fixed charge per span.
  public var bufferedBytes = 0
  /// Request bytes handed to the sampler and not yet read.
  public var queuedBytes = 0

  public init() {}

  /// Trace decisions keyed by their counter name (`kept-error`, ..., `dropped`).
  public var decisions: [String: UInt64] {
    var result: [String: UInt64] = [:]
    for decision in TraceDecision.allCases { result[decision.rawValue] = self[decision] }
    return result
  }

  /// The count of one decision.
  public subscript(decision: TraceDecision) -> UInt64 {
    get {
      switch decision {
      case .keptIncident: return keptIncident
      case .keptError: return keptError
      case .keptLatency: return keptLatency
      case .keptService: return keptService
      case .keptProbabilistic: return keptProbabilistic
      case .dropped: return dropped
      }
    }
    set {
      switch decision {
      case .keptIncident: keptIncident = newValue
      case .keptError: keptError = newValue
      case .keptLatency: keptLatency = newValue
      case .keptService: keptService = newValue
      case .keptProbabilistic: keptProbabilistic = newValue
      case .dropped: dropped = newValue
      }
    }
  }
}
