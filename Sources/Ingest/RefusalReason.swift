/// Why an export request was refused: the `reason` label of
/// `stella_receiver_refused_requests_total`.
///
/// Client errors (``isClientError``) are the sender's mistake and do not spend the availability
/// budget of the refused-request SLO; every other reason is capture failing a well-formed request.
public enum RefusalReason: String, Sendable, CaseIterable {
  /// Not a valid OTLP request of the endpoint's signal, or an undecodable compressed body.
  case malformed
  /// Over the request size limit, compressed or decompressed (413 / `RESOURCE_EXHAUSTED`).
  case tooLarge = "too_large"
  /// A `Content-Type` or `Content-Encoding` the endpoint does not take (415).
  case unsupportedMediaType = "unsupported_media_type"
  /// The tenant is reserved, not configured, or not one the client certificate may write (403).
  case unauthorized
  /// An OTLP/HTTP path that is no OTLP endpoint (404).
  case notFound = "not_found"
  /// A method other than POST on an OTLP endpoint (405).
  case methodNotAllowed = "method_not_allowed"
  /// The request did not arrive within the request read timeout (408).
  case timeout
  /// The in-flight memory bound is reached (429 / `RESOURCE_EXHAUSTED`, retryable).
  case backpressure
  /// The journal's disk bound or free-space floor is reached, or sealing is too far behind (503).
  case disk
  /// A new tenant past `limits.max-tenants` (403).
  case tenantLimit = "tenant_limit"
  /// A connection past `limits.max-connections` (HTTP 503 before any request is read; gRPC
  /// connections are closed), counted once per connection with signal `unknown`.
  case connectionLimit = "connection_limit"
  /// The service is stopping (503).
  case stopping
  /// A journal write or sync failed (503).
  case journalError = "journal_error"
  /// An unexpected failure inside the service (500 / `INTERNAL`).
  case `internal`

  /// Whether the sender caused the refusal; these do not spend the SLO's error budget.
  public var isClientError: Bool {
    switch self {
    case .malformed, .tooLarge, .unsupportedMediaType, .unauthorized, .notFound, .methodNotAllowed, .timeout:
      return true
    case .backpressure, .disk, .tenantLimit, .connectionLimit, .stopping, .journalError, .internal:
      return false
    }
  }

  /// The reason of an admission rejection that names none of its own: the one its kind implies.
  public init(kind: RejectedRequest.Kind) {
    switch kind {
    case .malformed: self = .malformed
    case .unsupportedMediaType: self = .unsupportedMediaType
    case .payloadTooLarge: self = .tooLarge
    case .overloaded: self = .backpressure
    case .unavailable: self = .disk
    case .tenantRejected: self = .unauthorized
    case .internalError: self = .internal
    }
  }
}

/// The transport an export request came in by: the `transport` label.
public enum IngestTransport: String, Sendable, CaseIterable {
  case http
  case grpc
}
