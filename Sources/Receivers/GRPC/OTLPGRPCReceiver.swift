import GRPCCore
import GRPCNIOTransportHTTP2Posix
public import Ingest
public import Logging
import Manifest
import NIOCore
public import NIOPosix
import Settings
import Synchronization

/// The OTLP/gRPC receiver: the three `Export` services of OTLP v1 over gRPC Swift 2's HTTP/2
/// transport, in front of the same admission pipeline as OTLP/HTTP.
///
/// The methods are registered with a byte-preserving (de)serializer instead of generated stubs,
/// so the journal holds exactly the bytes the client sent: generated stubs would decode and
/// re-encode, and evidence should not depend on a re-encoding.
public final class OTLPGRPCReceiver: Sendable {
  /// Where and how the receiver listens.
  public struct Options: Sendable {
    public var host: String
    /// 0 picks a free port.
    public var port: Int
    /// Header (metadata key) naming the tenant, matched case-insensitively.
    public var tenantMetadataKey: String
    /// Calls one connection may have open at once (HTTP/2 `SETTINGS_MAX_CONCURRENT_STREAMS`).
    public var maxConcurrentStreams: Int
    /// HTTP/2 flow-control window of each call (and of the connection): how much a client may
    /// send before capture has read it. gRPC's default of 64 KiB makes a typical exporter batch
    /// (hundreds of KiB) wait for several window updates; a window of one such batch lets it
    /// arrive in one go. Memory stays bounded: the in-flight gate reserves every message from
    /// its length prefix, so the window only lets reserved bytes arrive sooner.
    public var targetWindowSize: Int
    /// A connection without calls for this long is closed (with `GOAWAY`).
    public var idleTimeoutSeconds: Int
    /// A connection older than this is asked to go away once its calls finish, so no client
    /// holds a connection (and its share of the budget) forever.
    public var maxConnectionAgeSeconds: Int
    /// Open connections, shared with OTLP/HTTP; a connection past it is closed at once.
    public var connections: ConnectionBudget
    /// The delay asked of clients refused for the in-flight bound.
    public var retryAfterSeconds: Int
    /// TLS for every connection (`nil`: plaintext); reloading it changes new connections only.
    public var tls: ReloadableServerTLSContext?
    /// Where refused calls are counted (`nil`: not counted).
    public var metrics: CaptureMetrics?

    public init(
      host: String = "127.0.0.1", port: Int = 4317, tenantMetadataKey: String = "x-scope-orgid",
      maxConcurrentStreams: Int = 32, targetWindowSize: Int = 256 * 1024, idleTimeoutSeconds: Int = 60,
      maxConnectionAgeSeconds: Int = 1800,
      connections: ConnectionBudget = ConnectionBudget(limit: 1024), retryAfterSeconds: Int = 1,
      tls: ReloadableServerTLSContext? = nil, metrics: CaptureMetrics? = nil
    ) {
      self.tls = tls
      self.metrics = metrics
      self.host = host
      self.port = port
      self.tenantMetadataKey = tenantMetadataKey.lowercased()
      self.maxConcurrentStreams = maxConcurrentStreams
      self.targetWindowSize = targetWindowSize
      self.idleTimeoutSeconds = idleTimeoutSeconds
      self.maxConnectionAgeSeconds = maxConnectionAgeSeconds
      self.connections = connections
      self.retryAfterSeconds = retryAfterSeconds
    }
  }

  private let server: GRPCServer<HTTP2ServerTransport.Custom<GRPCListenerFactory>>
  private let transport: HTTP2ServerTransport.Custom<GRPCListenerFactory>
  private let logger: Logger
  private let serving = Mutex<Task<Void, Never>?>(nil)
  private let listenAddress: ListenAddress

  public init(ingest: any OTLPIngest, options: Options, group: MultiThreadedEventLoopGroup, logger: Logger) {
    let reservations = GRPCReservations(ingest: ingest)
    // Only a listener that verifies client certificates has identities to hand on.
    let identities = options.tls?.files.requiresClientCertificate == true ? GRPCClientIdentities() : nil
    var config = HTTP2ServerTransport.Custom<GRPCListenerFactory>.Config.defaults
    config.rpc.maxRequestPayloadSize = ingest.maxRequestBytes
    config.compression.enabledAlgorithms = .all
    config.http2.maxConcurrentStreams = options.maxConcurrentStreams
    config.http2.targetWindowSize = options.targetWindowSize
    config.connection.maxIdleTime = .seconds(options.idleTimeoutSeconds)
    config.connection.maxAge = .seconds(options.maxConnectionAgeSeconds)
    config.connection.maxGraceTime = .seconds(30)
    config.channelDebuggingCallbacks.onAcceptTCPConnection = { channel in
      Self.admit(channel, budget: options.connections, metrics: options.metrics, logger: logger)
    }
    config.channelDebuggingCallbacks.onAcceptHTTP2Stream = { stream in
      stream.eventLoop.makeCompletedFuture {
        try stream.pipeline.syncOperations.addHandler(
          GRPCInFlightGate(
            ingest: ingest, reservations: reservations, retryAfterSeconds: options.retryAfterSeconds,
            identities: identities, metrics: options.metrics),
          position: .first)
      }
    }
    let transport = HTTP2ServerTransport.Custom(
      listenerFactory: GRPCListenerFactory(
        host: options.host, port: options.port, tls: options.tls, eventLoopGroup: group),
      config: config)
    self.transport = transport
    self.logger = logger
    self.listenAddress = ListenAddress(host: options.host, port: options.port)
    let service = OTLPExportService(
      ingest: ingest, tenantKey: options.tenantMetadataKey, reservations: reservations, identities: identities,
      metrics: options.metrics, logger: logger)
    self.server = GRPCServer(transport: transport, services: [service])
  }

  /// Starts serving in the background and returns the bound address.
  public func start() async throws -> String {
    let server = self.server
    let logger = self.logger
    let failure = Mutex<String?>(nil)
    let task = Task {
      do {
        try await server.serve()
      } catch {
        logger.error("OTLP/gRPC server stopped: \(error)")
        failure.withLock { $0 = "\(error)" }
      }
    }
    serving.withLock { $0 = task }
    guard let address = await transport.listeningAddress else {
      // No address: the server failed before it listened, and its task ends with the reason.
      await task.value
      let reason = failure.withLock { $0 } ?? "it stopped before listening"
      throw HTTPServerError(.bindFailed, "OTLP/gRPC server cannot listen on \(listenAddress): \(reason)")
    }
    if let ipv4 = address.ipv4 { return "\(ipv4.host):\(ipv4.port)" }
    if let ipv6 = address.ipv6 { return "[\(ipv6.host)]:\(ipv6.port)" }
    return "\(address)"
  }

  /// Counts an accepted connection against the shared budget, or closes it when the budget is
  /// spent (the client sees the connection fail and retries with backoff).
  private static func admit(
    _ channel: any Channel, budget: ConnectionBudget, metrics: CaptureMetrics?, logger: Logger
  ) -> EventLoopFuture<Void> {
    if budget.acquire() {
      channel.closeFuture.whenComplete { _ in budget.release() }
      // Receive buffers freed after every read, not kept per connection (see
      // TransientRecvByteBufferAllocator).
      return channel.useTransientReceiveBuffers()
    } else {
      metrics?.refused(signal: nil, reason: .connectionLimit)
      logger.info(
        "OTLP/gRPC server refused a connection: limit of \(budget.limit) open connections reached",
        metadata: ["peer": "\(channel.remoteAddress.map { "\($0)" } ?? "?")"])
      channel.close(promise: nil)
    }
    return channel.eventLoop.makeSucceededVoidFuture()
  }

  /// Stops accepting calls, lets running ones finish for up to `grace`, then closes whatever
  /// is left, and returns when the server has stopped.
  ///
  /// The bound matters: a graceful close waits for each client to acknowledge the server's
  /// GOAWAY ping, and a client that never reads (an idle or hostile connection) would otherwise
  /// hold shutdown, and the journal's final seal behind it, for the whole connection grace time.
  public func stop(grace: Duration = .seconds(5)) async {
    server.beginGracefulShutdown()
    guard let task = serving.withLock({ $0 }) else { return }
    let logger = self.logger
    let deadline = Task {
      guard (try? await Task.sleep(for: grace)) != nil else { return }
      logger.notice("OTLP/gRPC: closing the connections still open after the shutdown grace of \(grace)")
      task.cancel()
    }
    await task.value
    deadline.cancel()
  }
}

/// The three OTLP `Export` methods, each handing the raw request message to admission.
struct OTLPExportService: RegistrableRPCService {
  let ingest: any OTLPIngest
  let tenantKey: String
  /// Reservations the in-flight gate made for these calls.
  let reservations: GRPCReservations
  /// Client certificate identities the gate found for these calls; `nil`: the listener does not
  /// verify client certificates.
  var identities: GRPCClientIdentities? = nil
  /// Where refused calls are counted (`nil`: not counted).
  var metrics: CaptureMetrics? = nil
  let logger: Logger

  static let methods: [(Signal, MethodDescriptor)] = [
    (
      .traces,
      MethodDescriptor(fullyQualifiedService: "opentelemetry.proto.collector.trace.v1.TraceService", method: "Export")
    ),
    (
      .logs,
      MethodDescriptor(fullyQualifiedService: "opentelemetry.proto.collector.logs.v1.LogsService", method: "Export")
    ),
    (
      .metrics,
      MethodDescriptor(
        fullyQualifiedService: "opentelemetry.proto.collector.metrics.v1.MetricsService", method: "Export")
    ),
  ]

  /// The signal of an OTLP `Export` method's HTTP/2 `:path` (`/SERVICE/Export`); `nil` for others.
  static func signal(forPath path: String) -> Signal? {
    methods.first { "/\($0.1.fullyQualifiedMethod)" == path }?.0
  }

  func registerMethods<Transport: ServerTransport>(with router: inout RPCRouter<Transport>) {
    for (signal, descriptor) in Self.methods {
      router.registerHandler(
        forMethod: descriptor, deserializer: RawBytesCoder(), serializer: RawBytesCoder()
      ) { request, _ in
        let single = try await ServerRequest(stream: request)
        let tenant = single.metadata[stringValues: tenantKey].first(where: { _ in true })
        let reserved =
          single.metadata[stringValues: GRPCReservations.metadataKey].first(where: { _ in true })
          .flatMap { UInt64($0) }.flatMap { reservations.take($0) } ?? 0
        let identity = single.metadata[stringValues: GRPCClientIdentities.metadataKey].first(where: { _ in true })
          .flatMap { UInt64($0) }.flatMap { identities?.take($0) }
        let response = await export(
          single.message, signal: signal, tenant: tenant, clientIdentity: identity, reserved: reserved)
        return StreamingServerResponse(single: response)
      }
    }
  }

  /// - Parameter reserved: in-flight bytes the gate already reserved for this call from the
  ///   message prefix (room for gRPC's buffer of the message and for `body`). Once `body`
  ///   exists gRPC's buffer is gone, so exactly `body.count` stays reserved until the ingest is
  ///   done: the excess is given back here, and a compressed message that decompressed to more
  ///   reserves the difference.
  func export(
    _ body: [UInt8], signal: Signal, tenant: String?, clientIdentity: ClientIdentity? = nil, reserved: Int
  ) async -> ServerResponse<[UInt8]> {
    if reserved > body.count {
      ingest.releaseInFlight(reserved - body.count)
    } else if reserved < body.count, !ingest.reserveInFlight(body.count - reserved) {
      if reserved > 0 { ingest.releaseInFlight(reserved) }
      metrics?.refused(signal: signal, reason: .backpressure)
      return ServerResponse(
        error: RPCError(
          code: .resourceExhausted, message: "capture is over its in-flight memory bound; retry later",
          metadata: Self.retryMetadata(seconds: 1)))
    }
    defer { if !body.isEmpty { ingest.releaseInFlight(body.count) } }
    if let problem = ingest.admissionProblem() {
      metrics?.refused(signal: signal, reason: problem.reason)
      return ServerResponse(error: Self.rpcError(for: problem))
    }
    let result = await withCheckedContinuation {
      (continuation: CheckedContinuation<Result<IngestReceipt, RejectedRequest>, Never>) in
      ingest.export(
        body: body, signal: signal, encoding: .protobuf, tenantHeader: tenant, clientIdentity: clientIdentity,
        transport: .grpc
      ) { result in
        continuation.resume(returning: result)
      }
    }
    switch result {
    case .success:
      // Every Export…ServiceResponse without partial_success serializes to zero bytes.
      return ServerResponse(message: [])
    case .failure(let rejection):
      logger.debug(
        "gRPC export rejected", metadata: ["signal": "\(signal.rawValue)", "reason": "\(rejection.message)"])
      metrics?.refused(signal: signal, reason: rejection.reason)
      return ServerResponse(error: Self.rpcError(for: rejection))
    }
  }

  /// The gRPC status for a rejection, per the OTLP/gRPC retry rules: `UNAVAILABLE` and
  /// `RESOURCE_EXHAUSTED` (with retry info) are retried by exporters, `INVALID_ARGUMENT` is not.
  static func rpcError(for rejection: RejectedRequest) -> RPCError {
    let code: RPCError.Code
    switch rejection.kind {
    case .malformed, .unsupportedMediaType: code = .invalidArgument
    case .payloadTooLarge: code = .resourceExhausted
    case .overloaded: code = .resourceExhausted
    case .unavailable: code = .unavailable
    case .tenantRejected: code = .permissionDenied
    case .internalError: code = .internalError
    }
    let metadata = rejection.retryAfterSeconds.map { retryMetadata(seconds: $0) } ?? [:]
    return RPCError(code: code, message: rejection.message, metadata: metadata)
  }

  /// `google.rpc.RetryInfo` in the `grpc-status-details-bin` trailer is how OTLP/gRPC servers
  /// ask for a delay; this carries the delay as a plain trailer too, for humans and tests.
  static func retryMetadata(seconds: Int) -> Metadata {
    var metadata: Metadata = [:]
    metadata.addString(String(seconds), forKey: "retry-after")
    metadata.addBinary(retryInfoStatusDetails(seconds: seconds), forKey: "grpc-status-details-bin")
    return metadata
  }

  /// A `google.rpc.Status` holding one `google.rpc.RetryInfo` detail, hand-encoded: Status{3:
  /// Any{1: type_url, 2: RetryInfo{1: Duration{1: seconds}}}}. The status code and message are
  /// left out; gRPC carries them in its own trailers.
  static func retryInfoStatusDetails(seconds: Int) -> [UInt8] {
    func lengthDelimited(_ field: UInt8, _ bytes: [UInt8]) -> [UInt8] {
      [field << 3 | 2] + varint(UInt64(bytes.count)) + bytes
    }
    func varint(_ value: UInt64) -> [UInt8] {
      var value = value
      var out: [UInt8] = []
      repeat {
        let low = UInt8(value & 0x7F)
        value >>= 7
        out.append(value == 0 ? low : low | 0x80)
      } while value != 0
      return out
    }
    let duration = [UInt8(1 << 3)] + varint(UInt64(max(0, seconds)))
    let retryInfo = lengthDelimited(1, duration)
    let any = lengthDelimited(1, Array("type.googleapis.com/google.rpc.RetryInfo".utf8)) + lengthDelimited(2, retryInfo)
    return lengthDelimited(3, any)
  }
}

/// Passes gRPC message bytes through unchanged in both directions.
struct RawBytesCoder: MessageSerializer, MessageDeserializer {
  func serialize<Bytes: GRPCContiguousBytes>(_ message: [UInt8]) throws -> Bytes {
    Bytes(message)
  }

  func deserialize<Bytes: GRPCContiguousBytes>(_ serializedMessageBytes: Bytes) throws -> [UInt8] {
    serializedMessageBytes.withUnsafeBytes { Array($0) }
  }
}
