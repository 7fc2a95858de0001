public import Ingest
public import Logging
public import NIOCore
internal import NIOHTTP1
internal import NIOHTTPCompression

/// The OTLP/HTTP receiver: `POST /v1/traces`, `/v1/logs` and `/v1/metrics` with protobuf or JSON
/// bodies, optionally gzip-, deflate- or zstd-compressed, handed to an ``OTLPIngest``.
///
/// Answers follow the OTLP/HTTP specification: 200 with an empty `Export…ServiceResponse` in the
/// request's encoding once the ingest has journaled the request; otherwise the status of the
/// ``RejectedRequest/Kind`` (400, 403, 413, 415, 429, 500, 503) with a `google.rpc.Status` body
/// in the request's encoding and `Retry-After` on retryable answers. Other paths get 404, other
/// methods 405 with `Allow: POST`.
///
/// Protection against clients: a `Content-Length` over ``OTLPIngest/maxRequestBytes`` is refused
/// (413) before the body is read; chunked and decompressed bodies are counted as they arrive;
/// bodies are only buffered against a successful ``OTLPIngest/reserveInFlight(_:)`` (else 429);
/// a request must arrive completely within ``Options/requestReadTimeout`` (else 408 and close);
/// idle keep-alive connections close after ``Options/idleTimeout``; connections over
/// ``Options/maxConnections`` get 503 and are closed; malformed HTTP gets 400 and is closed.
public final class OTLPHTTPReceiver: Sendable {
  /// Where and how the receiver listens.
  public struct Options: Sendable {
    /// The address to bind; loopback by default.
    public var host: String
    /// The port; 0 binds an ephemeral port (``OTLPHTTPReceiver/start()`` returns it).
    public var port: Int
    /// Open connections beyond this are answered 503 (`Retry-After`) and closed.
    public var maxConnections: Int
    /// A keep-alive connection with no request for this long is closed.
    public var idleTimeout: TimeAmount
    /// A request's head and body must arrive within this time of its first byte, or it is
    /// answered 408 and the connection closed (slowloris).
    public var requestReadTimeout: TimeAmount
    /// The header whose value is passed to the ingest as the request's tenant
    /// (``OTLPIngest/export(body:signal:encoding:tenantHeader:completion:)``'s `tenantHeader`).
    public var tenantHeader: String
    /// `Retry-After` seconds on a 429 when in-flight memory cannot be reserved, and on the 503 for
    /// connections over the limit.
    public var retryAfterSeconds: Int
    /// How long ``OTLPHTTPReceiver/stop()`` lets open exchanges finish before closing them.
    public var shutdownGracePeriod: TimeAmount
    /// A connection budget shared with other listeners (OTLP/gRPC); `nil`: one of
    /// ``maxConnections`` for this receiver alone.
    public var connections: ConnectionBudget?
    /// TLS for every connection (`nil`: plaintext); reloading it changes new connections only.
    public var tls: ReloadableServerTLSContext?
    /// Where refused requests are counted (`nil`: not counted).
    public var metrics: CaptureMetrics?

    /// The defaults: 127.0.0.1:4318, 1024 connections, 60 s idle, 30 s per request, tenant header
    /// `X-Scope-OrgID`, retry after 1 s, 5 s grace on stop.
    public init(
      host: String = "127.0.0.1", port: Int = 4318, maxConnections: Int = 1024,
      idleTimeout: TimeAmount = .seconds(60), requestReadTimeout: TimeAmount = .seconds(30),
      tenantHeader: String = "X-Scope-OrgID", retryAfterSeconds: Int = 1,
      shutdownGracePeriod: TimeAmount = .seconds(5), connections: ConnectionBudget? = nil,
      tls: ReloadableServerTLSContext? = nil, metrics: CaptureMetrics? = nil
    ) {
      self.connections = connections
      self.tls = tls
      self.metrics = metrics
      self.host = host
      self.port = port
      self.maxConnections = maxConnections
      self.idleTimeout = idleTimeout
      self.requestReadTimeout = requestReadTimeout
      self.tenantHeader = tenantHeader
      self.retryAfterSeconds = retryAfterSeconds
      self.shutdownGracePeriod = shutdownGracePeriod
    }
  }

  private let ingest: any OTLPIngest
  private let options: Options
  private let logger: Logger
  private let server: HTTPServerCore

  /// A receiver that serves on `group` once started.
  public init(ingest: any OTLPIngest, options: Options = Options(), group: any EventLoopGroup, logger: Logger) {
    self.ingest = ingest
    self.options = options
    self.logger = logger
    var onRefusedConnection: (@Sendable () -> Void)?
    if let metrics = options.metrics {
      onRefusedConnection = { metrics.refused(signal: nil, reason: .connectionLimit) }
    }
    self.server = HTTPServerCore(
      name: "OTLP/HTTP", group: group, budget: options.connections ?? ConnectionBudget(limit: options.maxConnections),
      retryAfterSeconds: options.retryAfterSeconds, logger: logger, onRefusedConnection: onRefusedConnection)
  }

  /// Binds the listening socket and starts serving.
  /// - Returns: the bound address (with the actual port when ``Options/port`` was 0).
  /// - Throws: ``HTTPServerError`` when already started or the address cannot be bound.
  public func start() async throws -> SocketAddress {
    let ingest = ingest
    let options = options
    let logger = logger
    return try await server.start(host: options.host, port: options.port, tls: options.tls) { channel in
      try Self.configure(channel: channel, ingest: ingest, options: options, logger: logger)
    }
  }

  /// Stops accepting connections, lets requests in progress finish for up to
  /// ``Options/shutdownGracePeriod``, then closes every connection. Exports already handed to the
  /// ingest still complete there; only their answers may be lost.
  public func stop() async {
    await server.stop(gracePeriod: options.shutdownGracePeriod)
  }

  /// The connections open now.
  public var connectionCount: Int { server.connectionCount }

  /// Adds the receiver's per-connection handlers to `channel`'s pipeline: raw-byte activity
  /// tracking, HTTP/1.1 decoding and encoding with pipelining assistance and protocol-error
  /// answers, request decompression (gzip and deflate by NIO's decompressor, zstd by our own)
  /// limited to ``OTLPIngest/maxRequestBytes``, and the OTLP request handler. ``start()`` does
  /// this for every accepted connection; tests and fuzzers call it on an `EmbeddedChannel`. Must
  /// run on `channel`'s event loop.
  public static func configure(
    channel: any Channel, ingest: any OTLPIngest, options: Options = Options(), logger: Logger
  ) throws {
    let pipeline = channel.pipeline.syncOperations
    try pipeline.addHandler(ConnectionActivityHandler())
    try pipeline.configureHTTPServerPipeline(withPipeliningAssistance: true, withErrorHandling: true)
    try pipeline.addHandler(NIOHTTPRequestDecompressor(limit: .size(max(0, ingest.maxRequestBytes))))
    try pipeline.addHandler(ZstdRequestDecompressor(maxOutputBytes: max(0, ingest.maxRequestBytes)))
    try pipeline.addHandler(
      OTLPHTTPHandler(
        configuration: OTLPHTTPHandlerConfiguration(
          ingest: ingest, tenantHeader: options.tenantHeader, idleTimeout: options.idleTimeout,
          requestReadTimeout: options.requestReadTimeout,
          overloadedRetryAfterSeconds: options.retryAfterSeconds, logger: logger, metrics: options.metrics)))
  }
}
