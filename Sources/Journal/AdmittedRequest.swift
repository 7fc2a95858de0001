public import Manifest

/// One OTLP export request that passed admission and is ready for the journal.
public struct AdmittedRequest: Sendable {
  public var signal: Signal
  /// The tenant the request belongs to; always a valid tenant name (see ``TenantName``).
  public var tenant: String
  /// The request as protobuf: exactly the client's bytes for protobuf bodies, the deterministic
  /// serialization of the decoded document for JSON bodies.
  public var request: [UInt8]
  /// When the service received the request (Unix nanoseconds).
  public var receivedUnixNano: UInt64
  /// The request's §6.3 time summary, when admission computed it while checking the request
  /// (so the journal does not walk it again); `nil`: the journal computes it.
  public var times: OTLPTimeSummary?

  public init(
    signal: Signal, tenant: String, request: [UInt8], receivedUnixNano: UInt64, times: OTLPTimeSummary? = nil
  ) {
    self.signal = signal
    self.tenant = tenant
    self.request = request
    self.receivedUnixNano = receivedUnixNano
    self.times = times
  }
}
