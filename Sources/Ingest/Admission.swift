public import Manifest

/// How an OTLP export request's body is encoded on the wire.
public enum OTLPEncoding: String, Sendable, Equatable {
  /// `application/x-protobuf` (OTLP/HTTP) and every OTLP/gRPC message.
  case protobuf
  /// `application/json`: OTLP/JSON, with hex trace and span ids.
  case json
}

/// What a client is told when its export request is not journaled. Each kind maps to one
/// OTLP/HTTP status and one gRPC status code, so a client knows whether to retry.
public struct RejectedRequest: Error, Sendable, CustomStringConvertible {
  public enum Kind: Sendable, Equatable {
    /// The body is not a valid OTLP request of the signal (HTTP 400, gRPC `INVALID_ARGUMENT`);
    /// permanent: retrying the same bytes fails the same way.
    case malformed
    /// A content type or encoding the endpoint does not take (HTTP 415, gRPC `INVALID_ARGUMENT`).
    case unsupportedMediaType
    /// The body, compressed or decompressed, is over the request size limit (HTTP 413, gRPC
    /// `RESOURCE_EXHAUSTED`).
    case payloadTooLarge
    /// The in-flight memory bound is reached (HTTP 429, gRPC `RESOURCE_EXHAUSTED`); retryable.
    case overloaded
    /// The journal cannot take records now: its disk bound or free-space floor is reached, or
    /// the service is stopping (HTTP 503, gRPC `UNAVAILABLE`); retryable.
    case unavailable
    /// The tenant is not allowed by the configuration (HTTP 403, gRPC `PERMISSION_DENIED`).
    case tenantRejected
    /// An unexpected failure inside the service (HTTP 500, gRPC `INTERNAL`).
    case internalError
  }

  public var kind: Kind
  /// One line saying what was wrong, for the response body and the log.
  public var message: String
  /// For retryable kinds: how long the client should wait before retrying.
  public var retryAfterSeconds: Int?
  /// What the refusal is counted as in the metrics; finer than ``kind`` where one answer has
  /// several causes (a 503 for a full disk or a failed write, a 403 for a tenant limit).
  public var reason: RefusalReason

  /// - Parameter reason: the metrics reason; `nil` takes the one `kind` implies.
  public init(_ kind: Kind, _ message: String, retryAfterSeconds: Int? = nil, reason: RefusalReason? = nil) {
    self.kind = kind
    self.message = message
    self.retryAfterSeconds = retryAfterSeconds
    self.reason = reason ?? RefusalReason(kind: kind)
  }

  public var description: String { message }

  /// Whether the client should retry the same request later.
  public var isRetryable: Bool { kind == .overloaded || kind == .unavailable }
}

/// What a client is told when its request was journaled.
public struct IngestReceipt: Sendable, Equatable {
  /// The seq the journal gave the request's record in its stream.
  public var seq: UInt64
  public var signal: Signal
  public var tenant: String

  public init(seq: UInt64, signal: Signal, tenant: String) {
    self.seq = seq
    self.signal = signal
    self.tenant = tenant
  }
}

/// Where the receivers hand export requests: one admission pipeline behind every transport.
///
/// Receivers reserve in-flight memory for a body before they buffer it, decode nothing
/// themselves, and answer the client only when `export` completes.
public protocol OTLPIngest: Sendable {
  /// Reserves `bytes` of the in-flight memory bound for a request body being received.
  /// - Returns: `false` when the bound would be exceeded; answer ``RejectedRequest/Kind/overloaded``.
  func reserveInFlight(_ bytes: Int) -> Bool

  /// Returns memory reserved with ``reserveInFlight(_:)``.
  func releaseInFlight(_ bytes: Int)

  /// The largest request body, compressed or decompressed, that admission takes.
  var maxRequestBytes: Int { get }

  /// A cheap check before reading a body: `nil` when the journal can take records now, else the
  /// rejection to answer with (disk full, stopping).
  func admissionProblem() -> RejectedRequest?

  /// Decodes, admits and journals one export request. `completion` is called exactly once: after
  /// the record is durable under the journal's durability policy, or with the reason it is not.
  ///
  /// - Parameters:
  ///   - body: the request body, already decompressed (`Content-Encoding` / gRPC compression).
  ///   - signal: the signal the endpoint or gRPC service is for.
  ///   - encoding: how `body` is encoded.
  ///   - tenantHeader: the tenant the transport found (HTTP header or gRPC metadata), if any.
  func export(
    body: [UInt8], signal: Signal, encoding: OTLPEncoding, tenantHeader: String?,
    completion: @escaping @Sendable (Result<IngestReceipt, RejectedRequest>) -> Void)

  /// ``export(body:signal:encoding:tenantHeader:completion:)`` for a client whose connection
  /// presented a verified certificate: `clientIdentity` is what that certificate names (`nil`:
  /// no TLS or no client certificate), which the tenant policy's identity mapping checks the
  /// tenant against (`tenancy.identities`).
  func export(
    body: [UInt8], signal: Signal, encoding: OTLPEncoding, tenantHeader: String?, clientIdentity: ClientIdentity?,
    completion: @escaping @Sendable (Result<IngestReceipt, RejectedRequest>) -> Void)

  /// ``export(body:signal:encoding:tenantHeader:clientIdentity:completion:)`` from a receiver
  /// that names its `transport`, so what is accepted is counted by transport.
  func export(
    body: [UInt8], signal: Signal, encoding: OTLPEncoding, tenantHeader: String?, clientIdentity: ClientIdentity?,
    transport: IngestTransport, completion: @escaping @Sendable (Result<IngestReceipt, RejectedRequest>) -> Void)
}

extension OTLPIngest {
  /// An ingest that does not tie tenants to client identities ignores the identity.
  public func export(
    body: [UInt8], signal: Signal, encoding: OTLPEncoding, tenantHeader: String?, clientIdentity: ClientIdentity?,
    completion: @escaping @Sendable (Result<IngestReceipt, RejectedRequest>) -> Void
  ) {
    export(body: body, signal: signal, encoding: encoding, tenantHeader: tenantHeader, completion: completion)
  }

  /// An ingest that counts nothing by transport ignores it.
  public func export(
    body: [UInt8], signal: Signal, encoding: OTLPEncoding, tenantHeader: String?, clientIdentity: ClientIdentity?,
    transport: IngestTransport, completion: @escaping @Sendable (Result<IngestReceipt, RejectedRequest>) -> Void
  ) {
    export(
      body: body, signal: signal, encoding: encoding, tenantHeader: tenantHeader, clientIdentity: clientIdentity,
      completion: completion)
  }
}
