public import Logging
package import Manifest
public import NIOCore
internal import NIOHTTP1

/// One request to the admin endpoint, fully read.
public struct AdminRequest: Sendable, Equatable {
  /// The method as sent (`GET`, `POST`, ...).
  public var method: String
  /// The path, without the query (`/status`).
  public var path: String
  /// The raw query after `?`, still percent-encoded; empty when there is none.
  public var query: String
  /// Header values by lowercased name; repeated headers are joined with `", "`.
  public var headers: [String: String]
  public var body: [UInt8]
  /// The peer's address (`127.0.0.1:50412`), for logs and custody; empty when unknown.
  public var peer: String
  /// Who the verified client certificate names (`CN=alice, SAN=DNS:alice.example`) on an mTLS
  /// connection; `nil` without one.
  public var certificateIdentity: String?

  public init(
    method: String, path: String, query: String = "", headers: [String: String] = [:], body: [UInt8] = [],
    peer: String = "", certificateIdentity: String? = nil
  ) {
    self.certificateIdentity = certificateIdentity
    self.method = method
    self.path = path
    self.query = query
    self.headers = headers
    self.body = body
    self.peer = peer
  }

  /// The first value of query parameter `name`, percent-decoded (`+` as space); `nil` if absent
  /// or not valid percent-encoded UTF-8.
  public func queryValue(_ name: String) -> String? {
    for pair in query.split(separator: "&", omittingEmptySubsequences: true) {
      let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
      guard let key = parts.first.flatMap({ Self.percentDecoded($0) }), key == name else { continue }
      return parts.count > 1 ? Self.percentDecoded(parts[1]) : ""
    }
    return nil
  }

  private static func percentDecoded(_ text: Substring) -> String? {
    var bytes: [UInt8] = []
    var iterator = Array(text.utf8).makeIterator()
    while let byte = iterator.next() {
      switch byte {
      case UInt8(ascii: "+"): bytes.append(UInt8(ascii: " "))
      case UInt8(ascii: "%"):
        guard let high = iterator.next().flatMap(hexValue), let low = iterator.next().flatMap(hexValue) else {
          return nil
        }
        bytes.append(high << 4 | low)
      default: bytes.append(byte)
      }
    }
    return String(validating: bytes, as: UTF8.self)
  }

  private static func hexValue(_ byte: UInt8) -> UInt8? {
    switch byte {
    case UInt8(ascii: "0")...UInt8(ascii: "9"): return byte - UInt8(ascii: "0")
    case UInt8(ascii: "a")...UInt8(ascii: "f"): return byte - UInt8(ascii: "a") + 10
    case UInt8(ascii: "A")...UInt8(ascii: "F"): return byte - UInt8(ascii: "A") + 10
    default: return nil
    }
  }
}

/// The admin endpoint's answer to one request.
public struct AdminResponse: Sendable, Equatable {
  /// The HTTP status code (200, 404, 503, ...).
  public var status: Int
  public var contentType: String
  public var body: [UInt8]
  /// Further headers (`Retry-After`, `Allow`, ...). `Content-Type`, `Content-Length` and
  /// `Connection` are set by the server.
  public var headers: [String: String]

  public init(
    status: Int, contentType: String = "text/plain; charset=utf-8", body: [UInt8] = [], headers: [String: String] = [:]
  ) {
    self.status = status
    self.contentType = contentType
    self.body = body
    self.headers = headers
  }

  /// A UTF-8 plain-text answer.
  public static func text(_ status: Int, _ text: String) -> AdminResponse {
    AdminResponse(status: status, body: Array(text.utf8))
  }

  /// A JSON answer; `json` must already be serialized.
  public static func json(_ status: Int, _ json: [UInt8]) -> AdminResponse {
    AdminResponse(status: status, contentType: "application/json", body: json)
  }
}

/// The small HTTP/1.1 server of the admin endpoint (health, readiness, journal status, incident
/// control): every complete request goes to one async handler, whose answer is written back in
/// request order. Bodies over ``Options/maxBodyBytes`` get 413 (NIO's request aggregator); a
/// request not fully received within ``Options/requestDeadline`` of its first byte gets 408 and
/// the connection is closed, so a slow client cannot hold a connection or a handler.
public final class AdminHTTPServer: Sendable {
  /// Where and how the admin server listens.
  public struct Options: Sendable {
    public var host: String
    /// 0 binds an ephemeral port.
    public var port: Int
    /// The largest request body read; larger ones get 413.
    public var maxBodyBytes: Int
    public var maxConnections: Int
    /// Connections with no complete request for this long are closed (also bounds slow clients).
    public var idleTimeout: TimeAmount
    /// How long ``AdminHTTPServer/stop()`` lets open exchanges finish.
    public var shutdownGracePeriod: TimeAmount
    /// A request must be fully received within this of its first byte (else 408 and close).
    public var requestDeadline: TimeAmount
    /// TLS for every connection (`nil`: plaintext); with a client CA, the client certificate's
    /// identity reaches the handler as ``AdminRequest/certificateIdentity``.
    public var tls: ReloadableServerTLSContext?

    /// The defaults: 127.0.0.1:4320, 1 MiB bodies, 64 connections, 30 s idle, 2 s grace, 10 s
    /// to send a request, plaintext.
    public init(
      host: String = "127.0.0.1", port: Int = 4320, maxBodyBytes: Int = 1 << 20, maxConnections: Int = 64,
      idleTimeout: TimeAmount = .seconds(30), shutdownGracePeriod: TimeAmount = .seconds(2),
      requestDeadline: TimeAmount = .seconds(10), tls: ReloadableServerTLSContext? = nil
    ) {
      self.tls = tls
      self.host = host
      self.port = port
      self.maxBodyBytes = maxBodyBytes
      self.maxConnections = maxConnections
      self.idleTimeout = idleTimeout
      self.shutdownGracePeriod = shutdownGracePeriod
      self.requestDeadline = requestDeadline
    }
  }

  /// Answers one admin request.
  public typealias Handler = @Sendable (AdminRequest) async -> AdminResponse
  /// Answers the requests it knows at once, on the admin event loop (`nil`: not one of them).
  ///
  /// ``Handler`` runs in a Swift concurrency task, that is on the shared cooperative thread
  /// pool (one thread per core), where gRPC Swift also runs the OTLP/gRPC handlers; a flood of
  /// large gRPC calls whose decoding keeps every pool thread busy would then hold back
  /// `/healthz` for as long as the flood lasts. Cheap, non-blocking routes (health, readiness)
  /// belong here, so they answer whatever the pool is doing.
  public typealias ImmediateHandler = @Sendable (AdminRequest) -> AdminResponse?

  private let options: Options
  private let handler: Handler
  private let immediate: ImmediateHandler?
  private let server: HTTPServerCore

  /// - Parameter name: what the server is called in its log lines (another small listener, such
  ///   as `/metrics`, reuses this server under its own name).
  public init(
    options: Options = Options(), group: any EventLoopGroup, logger: Logger, name: String = "admin",
    immediate: ImmediateHandler? = nil, handler: @escaping Handler
  ) {
    self.options = options
    self.handler = handler
    self.immediate = immediate
    self.server = HTTPServerCore(
      name: name, group: group, budget: ConnectionBudget(limit: options.maxConnections), retryAfterSeconds: 1,
      logger: logger)
  }

  /// Binds and starts serving; returns the bound address (the actual port when the option is 0).
  /// - Throws: ``HTTPServerError``.
  public func start() async throws -> SocketAddress {
    let options = options
    let handler = handler
    let immediate = immediate
    return try await server.start(host: options.host, port: options.port, tls: options.tls) { channel in
      try Self.configure(channel: channel, options: options, immediate: immediate, handler: handler)
    }
  }

  /// Stops accepting, lets exchanges in progress finish for the grace period, closes the rest.
  public func stop() async {
    await server.stop(gracePeriod: options.shutdownGracePeriod)
  }

  /// Adds the admin server's per-connection handlers to `channel` (for tests on an
  /// `EmbeddedChannel`). Must run on `channel`'s event loop.
  public static func configure(
    channel: any Channel, options: Options = Options(), immediate: ImmediateHandler? = nil,
    handler: @escaping Handler
  ) throws {
    let pipeline = channel.pipeline.syncOperations
    // First, on raw bytes: tells the request handler when bytes arrive (the HTTP decoder reports
    // nothing of a request whose head is still trickling in) and writes the raw 408.
    try pipeline.addHandler(ConnectionActivityHandler())
    try pipeline.addHandler(IdleStateHandler(readTimeout: options.idleTimeout))
    try pipeline.configureHTTPServerPipeline(withPipeliningAssistance: true, withErrorHandling: true)
    try pipeline.addHandler(NIOHTTPServerRequestAggregator(maxContentLength: options.maxBodyBytes))
    try pipeline.addHandler(
      AdminRequestHandler(requestDeadline: options.requestDeadline, immediate: immediate, handler: handler))
  }
}

/// Calls the admin handler for each aggregated request and writes its answer on the event loop.
final class AdminRequestHandler: ChannelInboundHandler {
  typealias InboundIn = NIOHTTPServerRequestFull
  typealias OutboundOut = HTTPServerResponsePart

  private let handler: AdminHTTPServer.Handler
  private let immediate: AdminHTTPServer.ImmediateHandler?
  private let requestDeadline: TimeAmount
  private var inFlight = false
  private var closeWhenIdle = false
  /// Armed by the first bytes of a request, cancelled when the request is complete.
  private var deadline: Scheduled<Void>?

  init(
    requestDeadline: TimeAmount = .seconds(10), immediate: AdminHTTPServer.ImmediateHandler? = nil,
    handler: @escaping AdminHTTPServer.Handler
  ) {
    self.requestDeadline = requestDeadline
    self.immediate = immediate
    self.handler = handler
  }

  func handlerRemoved(context: ChannelHandlerContext) {
    deadline?.cancel()
    deadline = nil
  }

  private func armDeadline(context: ChannelHandlerContext) {
    guard deadline == nil else { return }
    let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
    deadline = context.eventLoop.scheduleTask(in: requestDeadline) {
      let (this, context) = loopBound.value
      this.deadline = nil
      this.deadlinePassed(context: context)
    }
  }

  private func deadlinePassed(context: ChannelHandlerContext) {
    guard context.channel.isActive else { return }
    if inFlight {
      // The answer to the previous request is still being made: close once it is written.
      closeWhenIdle = true
      return
    }
    context.triggerUserOutboundEvent(SendRawAnswerAndClose(answer: .requestTimeout), promise: nil)
  }

  func channelRead(context: ChannelHandlerContext, data: NIOAny) {
    deadline?.cancel()
    deadline = nil
    let full = unwrapInboundIn(data)
    let uri = full.head.uri
    let parts = uri.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false)
    var headers: [String: String] = [:]
    for (name, value) in full.head.headers {
      let key = name.lowercased()
      headers[key] = headers[key].map { "\($0), \(value)" } ?? value
    }
    let request = AdminRequest(
      method: full.head.method.rawValue, path: String(parts.first ?? ""),
      query: parts.count > 1 ? String(parts[1]) : "", headers: headers,
      body: full.body.map { Array($0.readableBytesView) } ?? [], peer: Self.describe(context.channel.remoteAddress),
      certificateIdentity: PeerCertificateIdentity.ofPeer(on: context.channel))
    let keepAlive = full.head.isKeepAlive
    let version = full.head.version
    inFlight = true
    if let immediate, let response = immediate(request) {
      write(response, keepAlive: keepAlive, version: version, context: context)
      return
    }
    let handler = handler
    let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
    let eventLoop = context.eventLoop
    Task {
      let response = await handler(request)
      eventLoop.execute {
        let (this, context) = loopBound.value
        this.write(response, keepAlive: keepAlive, version: version, context: context)
      }
    }
  }

  private func write(_ response: AdminResponse, keepAlive: Bool, version: HTTPVersion, context: ChannelHandlerContext) {
    inFlight = false
    guard context.channel.isActive else { return }
    var headers = HTTPHeaders()
    headers.add(name: "Content-Type", value: response.contentType)
    headers.add(name: "Content-Length", value: "\(response.body.count)")
    for (name, value) in response.headers.sorted(by: { $0.key < $1.key }) {
      let lowered = name.lowercased()
      if lowered == "content-type" || lowered == "content-length" || lowered == "connection" { continue }
      headers.add(name: name, value: value)
    }
    let close = !keepAlive || closeWhenIdle
    if close { headers.add(name: "Connection", value: "close") }
    let status = HTTPResponseStatus(statusCode: response.status)
    let responseVersion = version.major == 1 && version.minor == 0 ? version : .http1_1
    context.write(
      wrapOutboundOut(.head(HTTPResponseHead(version: responseVersion, status: status, headers: headers))), promise: nil
    )
    if !response.body.isEmpty {
      context.write(
        wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(bytes: response.body)))), promise: nil)
    }
    let future = context.writeAndFlush(wrapOutboundOut(.end(nil)))
    if close {
      let loopBound = context.loopBound
      future.whenComplete { _ in loopBound.value.close(promise: nil) }
    }
  }

  func errorCaught(context: ChannelHandlerContext, error: any Error) {
    // Malformed HTTP (already answered 400 by HTTPServerProtocolErrorHandler) or a broken
    // connection: nothing more can be read from it.
    context.close(promise: nil)
  }

  func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
    if event is ConnectionBytesReceived {
      armDeadline(context: context)
      return
    }
    if let idle = event as? IdleStateHandler.IdleStateEvent, idle == .read {
      if inFlight {
        closeWhenIdle = true
      } else {
        context.close(promise: nil)
      }
      return
    }
    context.fireUserInboundEventTriggered(event)
  }
}

extension AdminRequestHandler {
  /// `ip:port` (`[ip]:port` for IPv6), or empty.
  static func describe(_ address: SocketAddress?) -> String {
    guard let address, let ip = address.ipAddress, let port = address.port else { return "" }
    return ip.contains(":") ? "[\(ip)]:\(port)" : "\(ip):\(port)"
  }
}

@available(*, unavailable)
extension AdminRequestHandler: Sendable {}

extension AdminResponse {
  /// A JSON response: canonical JSON and a newline.
  package static func json(_ status: Int, _ value: JSONValue) -> AdminResponse {
    let body = (try? CanonicalJSON.serialize(value)) ?? Array("{}".utf8)
    return AdminResponse(status: status, contentType: "application/json", body: body + [0x0A])
  }

  /// A JSON error body `{"error": message}`.
  package static func error(_ status: Int, _ message: String) -> AdminResponse {
    json(status, .object([("error", .string(message))]))
  }
}
