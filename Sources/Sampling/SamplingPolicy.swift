import Foundation
import Settings
import Yams

/// A sampling policy that cannot be used: the file, the key and what is wrong with it.
public struct SamplingPolicyError: Error, Sendable, Equatable, CustomStringConvertible {
  /// The file (or other source name) the policy came from.
  public var path: String
  /// The dotted key that is wrong (`traces.probabilistic`), or `the document`.
  public var key: String
  public var message: String

  public init(path: String, key: String, _ message: String) {
    self.path = path
    self.key = key
    self.message = message
  }

  public var description: String { "\(path): \(key): \(message)" }
}

/// OTLP log severities by name; the raw value is the lowest `SeverityNumber` of the range
/// (`WARN` is 13, covering `WARN`…`WARN4`, 13–16).
public enum LogSeverityLevel: Int, Sendable, CaseIterable, Comparable {
  case trace = 1
  case debug = 5
  case info = 9
  case warn = 13
  case error = 17
  case fatal = 21

  /// `TRACE`, `DEBUG`, `INFO`, `WARN` (or `WARNING`), `ERROR`, `FATAL`, any case.
  public init?(name: String) {
    switch name.uppercased() {
    case "TRACE": self = .trace
    case "DEBUG": self = .debug
    case "INFO": self = .info
    case "WARN", "WARNING": self = .warn
    case "ERROR": self = .error
    case "FATAL": self = .fatal
    default: return nil
    }
  }

  public var name: String {
    switch self {
    case .trace: return "TRACE"
    case .debug: return "DEBUG"
    case .info: return "INFO"
    case .warn: return "WARN"
    case .error: return "ERROR"
    case .fatal: return "FATAL"
    }
  }

  public static func < (lhs: Self, rhs: Self) -> Bool { lhs.rawValue < rhs.rawValue }
}

/// What tail sampling copies into the long-term archive outside incidents. The defaults are the
/// documented ones (README "Sampling", `config/sampling.example.yaml`).
public struct SamplingPolicy: Sendable, Equatable {
  /// Per-trace decisions. A trace is kept when ANY enabled rule matches.
  public struct Traces: Sendable, Equatable {
    /// A trace is decided this long after its first span reached the sampler.
    public var decisionWaitMillis = 10_000
    /// Keep traces with any span whose status code is ERROR.
    public var keepErrors = true
    /// Keep traces with a span, or a whole trace (first start to last end), at least this long;
    /// `nil` turns the rule off.
    public var latencyThresholdMillis: Int? = 500
    /// Keep this fraction of traces, decided by trace id alone (the same on every node).
    public var probabilistic = 0.1
    /// Keep every trace with a span whose resource has one of these `service.name` values.
    public var alwaysKeepServices: Set<String> = []

    public init() {}
  }

  /// Per-record decisions, made as soon as a record arrives. A record is kept when ANY rule matches.
  public struct Logs: Sendable, Equatable {
    /// Keep records at least this severe (the severity number, or the severity text when the
    /// number is unspecified); `nil` turns the rule off.
    public var minSeverity: LogSeverityLevel? = .warn
    /// Keep records whose trace id belongs to a trace already decided as kept.
    public var keepWithKeptTraces = true
    /// Keep this fraction of records: by trace id when the record has one (so with the same
    /// ratio as traces, the logs of probabilistically kept traces are kept), else by a hash of
    /// the record's bytes as sent.
    public var probabilistic = 0.1

    public init() {}
  }

  /// Whether metrics reach the archive (aggregates are small, so by default all do).
  public enum Metrics: String, Sendable, Equatable {
    case all
    case none
  }

  /// Memory bounds of the sampler.
  public struct Limits: Sendable, Equatable {
    /// Spans waiting for their trace's decision; past it the oldest traces are decided early.
    public var maxBufferedSpans = 200_000
    /// Bytes held for spans waiting for a decision (the requests they point into, each whole and
    /// once); past it the oldest traces are decided early.
    public var maxBufferedBytes = 16 << 20
    /// Bytes of requests handed to the sampler and not yet read; past it requests are skipped
    /// (counted; the journal ring still holds them).
    public var maxQueuedBytes = 16 << 20
    /// Trace decisions remembered after they are made, for late spans and for logs.
    public var decisionCacheSize = 100_000

    public init() {}
  }

  public var traces = Traces()
  public var logs = Logs()
  public var metrics = Metrics.all
  public var limits = Limits()

  /// The documented defaults.
  public init() {}

  /// Checks ranges; ``apply(yaml:path:)`` calls it, call it after setting fields by hand.
  public func validate(path: String = "sampling policy") throws(SamplingPolicyError) {
    func fail(_ key: String, _ message: String) -> SamplingPolicyError {
      SamplingPolicyError(path: path, key: key, message)
    }
    guard traces.decisionWaitMillis >= 1, traces.decisionWaitMillis <= 3_600_000 else {
      throw fail("traces.decision-wait", "must be from 1ms to 1h")
    }
    guard (0...1).contains(traces.probabilistic) else { throw fail("traces.probabilistic", "must be from 0 to 1") }
    guard (0...1).contains(logs.probabilistic) else { throw fail("logs.probabilistic", "must be from 0 to 1") }
    if let threshold = traces.latencyThresholdMillis, threshold < 0 {
      throw fail("traces.latency-threshold", "must not be negative")
    }
    guard limits.maxBufferedSpans >= 1 else { throw fail("limits.max-buffered-spans", "must be at least 1") }
    guard limits.maxBufferedBytes >= 1 << 10 else { throw fail("limits.max-buffered-bytes", "must be at least 1KiB") }
    guard limits.maxQueuedBytes >= 1 << 10 else { throw fail("limits.max-queued-bytes", "must be at least 1KiB") }
    guard limits.decisionCacheSize >= 0 else { throw fail("limits.decision-cache", "must not be negative") }
  }

  /// Reads a policy file: applies a YAML document over the defaults. Unknown keys are errors.
  public static func load(path: String) throws(SamplingPolicyError) -> SamplingPolicy {
    let text: String
    do {
      text = try String(contentsOfFile: path, encoding: .utf8)
    } catch {
      throw SamplingPolicyError(path: path, key: "the document", "cannot read: \(error.localizedDescription)")
    }
    var policy = SamplingPolicy()
    try policy.apply(yaml: text, path: path)
    return policy
  }

  /// Applies a YAML document (the mapping of `traces`, `logs`, `metrics`, `limits`) over this
  /// policy, then validates it. Unknown keys are errors naming the file and the key.
  public mutating func apply(yaml text: String, path: String) throws(SamplingPolicyError) {
    let reader = PolicyYAML(path: path)
    guard let node = try reader.yaml.document(text) else { return }
    for (key, value) in try reader.mapping(node, "the document") {
      switch key {
      case "traces":
        for (name, entry) in try reader.mapping(value, key) {
          let field = "traces.\(name)"
          switch name {
          case "decision-wait": traces.decisionWaitMillis = try reader.milliseconds(entry, field)
          case "errors": traces.keepErrors = try reader.bool(entry, field)
          case "latency-threshold":
            traces.latencyThresholdMillis = try reader.isOff(entry) ? nil : try reader.milliseconds(entry, field)
          case "probabilistic": traces.probabilistic = try reader.ratio(entry, field)
          case "always-keep-services": traces.alwaysKeepServices = Set(try reader.strings(entry, field))
          default: throw reader.unknown(field)
          }
        }
      case "logs":
        for (name, entry) in try reader.mapping(value, key) {
          let field = "logs.\(name)"
          switch name {
          case "min-severity":
            if try reader.isOff(entry) {
              logs.minSeverity = nil
            } else {
              let text = try reader.string(entry, field)
              guard let level = LogSeverityLevel(name: text) else {
                throw reader.error(field, "\"\(text)\" is not one of TRACE, DEBUG, INFO, WARN, ERROR, FATAL, off")
              }
              logs.minSeverity = level
            }
          case "with-kept-traces": logs.keepWithKeptTraces = try reader.bool(entry, field)
          case "probabilistic": logs.probabilistic = try reader.ratio(entry, field)
          default: throw reader.unknown(field)
          }
        }
      case "metrics":
        for (name, entry) in try reader.mapping(value, key) {
          let field = "metrics.\(name)"
          switch name {
          case "keep":
            let text = try reader.string(entry, field)
            guard let keep = Metrics(rawValue: text) else { throw reader.error(field, "must be all or none") }
            metrics = keep
          default: throw reader.unknown(field)
          }
        }
      case "limits":
        for (name, entry) in try reader.mapping(value, key) {
          let field = "limits.\(name)"
          switch name {
          case "max-buffered-spans": limits.maxBufferedSpans = try reader.count(entry, field)
          case "max-buffered-bytes": limits.maxBufferedBytes = try reader.size(entry, field)
          case "max-queued-bytes": limits.maxQueuedBytes = try reader.size(entry, field)
          case "decision-cache": limits.decisionCacheSize = try reader.count(entry, field)
          default: throw reader.unknown(field)
          }
        }
      default:
        throw reader.unknown(key)
      }
    }
    try validate(path: path)
  }
}

/// Typed readers of YAML scalars whose errors name the file and the key: the shared
/// configuration reader in this file's wording, and the value kinds only a policy has.
private struct PolicyYAML {
  let yaml: ConfigurationYAML<SamplingPolicyError>

  init(path: String) {
    yaml = ConfigurationYAML(path: path) { key, problem in
      let message =
        switch problem {
        case .invalidYAML(let description): "not valid YAML: \(description)"
        case .notMapping: "must be a mapping"
        case .nonStringKey: "has a non-string key"
        case .notScalar: "must be a scalar"
        case .notList: "must be a list"
        case .notDuration(let text): "\"\(text)\" is not a duration (\(DurationText.hint))"
        case .notSize(let text): "\"\(text)\" is not a size (like 1048576, 512KiB, 64MiB)"
        case .unknownKey: "unknown key (see config/sampling.example.yaml)"
        }
      return SamplingPolicyError(path: path, key: key, message)
    }
  }

  func error(_ key: String, _ message: String) -> SamplingPolicyError {
    SamplingPolicyError(path: yaml.path, key: key, message)
  }

  func unknown(_ key: String) -> SamplingPolicyError { yaml.unknown(key) }

  func mapping(_ node: Node, _ key: String) throws(SamplingPolicyError) -> [(String, Node)] {
    try yaml.mapping(node, key)
  }

  func string(_ node: Node, _ key: String) throws(SamplingPolicyError) -> String { try yaml.string(node, key) }

  /// `off`, `none`, `null` or `~`: the rule is turned off.
  func isOff(_ node: Node) throws(SamplingPolicyError) -> Bool {
    guard let scalar = node.scalar else { return false }
    return ["off", "none", "null", "~", ""].contains(scalar.string.lowercased())
  }

  func bool(_ node: Node, _ key: String) throws(SamplingPolicyError) -> Bool {
    switch try string(node, key).lowercased() {
    case "true", "yes", "on": return true
    case "false", "no", "off": return false
    default: throw error(key, "must be true or false")
    }
  }

  func ratio(_ node: Node, _ key: String) throws(SamplingPolicyError) -> Double {
    let text = try string(node, key).trimmingCharacters(in: .whitespaces)
    let value: Double?
    if text.hasSuffix("%") {
      value = Double(text.dropLast()).map { $0 / 100 }
    } else {
      value = Double(text)
    }
    guard let value, value.isFinite, (0...1).contains(value) else {
      throw error(key, "\"\(text)\" is not a ratio from 0 to 1 (or a percentage like 10%)")
    }
    return value
  }

  func strings(_ node: Node, _ key: String) throws(SamplingPolicyError) -> [String] {
    var result: [String] = []
    for item in try yaml.sequence(node, key) {
      guard let scalar = item.scalar else { throw error(key, "must be a list of names") }
      result.append(scalar.string)
    }
    return result
  }

  func milliseconds(_ node: Node, _ key: String) throws(SamplingPolicyError) -> Int {
    try yaml.duration(node, key).milliseconds
  }

  func size(_ node: Node, _ key: String) throws(SamplingPolicyError) -> Int {
    let text = try string(node, key)
    guard let bytes = try yaml.size(node, key).intValue else { throw yaml.error(key, .notSize(text)) }
    return bytes
  }

  func count(_ node: Node, _ key: String) throws(SamplingPolicyError) -> Int {
    let text = try string(node, key).trimmingCharacters(in: .whitespaces)
    guard let value = Int(text.replacingOccurrences(of: "_", with: "")), value >= 0 else {
      throw error(key, "\"\(text)\" is not a whole number")
    }
    return value
  }
}
