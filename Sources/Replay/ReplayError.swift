public import Manifest

/// Why a replay or an export failed, with the context that locates the problem.
///
/// One error type for the module (the swift-certificates pattern): callers switch on ``code``,
/// people read ``description``, which names the bundle, stream, record, endpoint or file involved.
public struct ReplayError: Error, CustomStringConvertible, Sendable {
  /// What went wrong. New codes may be added.
  /// Raw values are in the casing of the bundle format's reason codes (`SIG_UNTRUSTED_KEY`), so
  /// every `--json` output spells its codes one way.
  public enum Code: String, Sendable, Equatable, CaseIterable {
    /// The bundle was verified only quickly; replay and export need every record checked.
    case notDeeplyVerified = "NOT_DEEPLY_VERIFIED"
    /// A blob's bytes differ from what verification saw (the file changed after verifying).
    case bundleChanged = "BUNDLE_CHANGED"
    /// The bundle file could not be read.
    case bundleUnreadable = "BUNDLE_UNREADABLE"
    /// An archived request could not be walked or converted (cannot happen for a verified bundle
    /// unless the conversion needs more than the verifier checks, such as a full protobuf decode).
    case requestUnconvertible = "REQUEST_UNCONVERTIBLE"
    /// Shifting a timestamp would leave the range of an unsigned 64-bit nanosecond time.
    case timeShiftOutOfRange = "TIME_SHIFT_OUT_OF_RANGE"
    /// The endpoint URL or an `--allow` entry is malformed or unsupported.
    case invalidEndpoint = "INVALID_ENDPOINT"
    /// The endpoint resolves to an address outside the allowlist (sealed mode).
    case endpointNotAllowed = "ENDPOINT_NOT_ALLOWED"
    /// The endpoint's host name could not be resolved.
    case unresolvableHost = "UNRESOLVABLE_HOST"
    /// The checkpoint file is unreadable, malformed, or belongs to another bundle or time shift.
    case checkpointInvalid = "CHECKPOINT_INVALID"
    /// The checkpoint file could not be written durably.
    case checkpointWriteFailed = "CHECKPOINT_WRITE_FAILED"
    /// The endpoint refused a request permanently (HTTP 4xx other than 429, gRPC INVALID_ARGUMENT…).
    case rejectedPermanently = "REJECTED_PERMANENTLY"
    /// The endpoint stayed unavailable through every retry.
    case retriesExhausted = "RETRIES_EXHAUSTED"
    /// An export output file could not be written.
    case outputFailed = "OUTPUT_FAILED"
    /// An export output file already exists and replacing it was not asked for.
    case outputExists = "OUTPUT_EXISTS"
  }

  /// What went wrong.
  public var code: Code
  /// Where and why, for people.
  public var message: String
  /// The stream involved, when there is one.
  public var stream: StreamKey?
  /// The sequence number of the record involved, when there is one.
  public var seq: UInt64?

  /// An error with its code, a message for people, and where it happened.
  public init(_ code: Code, _ message: String, stream: StreamKey? = nil, seq: UInt64? = nil) {
    self.code = code
    self.message = message
    self.stream = stream
    self.seq = seq
  }

  /// Whether the problem lies in how the command was configured (sealed-mode refusals, bad
  /// URLs, a checkpoint of another bundle) rather than in the evidence or at run time.
  public var isConfigurationError: Bool {
    switch code {
    case .invalidEndpoint, .endpointNotAllowed, .unresolvableHost, .checkpointInvalid, .outputExists: true
    default: false
    }
  }

  /// Whether the evidence itself is at fault (the bundle changed after it was verified).
  public var isEvidenceError: Bool { code == .bundleChanged || code == .notDeeplyVerified }

  public var description: String {
    var location: [String] = []
    if let stream { location.append("stream \(stream)") }
    if let seq { location.append("seq \(seq)") }
    return location.isEmpty ? message : "\(location.joined(separator: " ")): \(message)"
  }
}
