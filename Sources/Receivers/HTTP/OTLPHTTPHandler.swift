import Ingest
internal import Logging
internal import Manifest
internal import NIOCore
internal import NIOHTTP1
internal import NIOHTTPCompression

/// What one connection's request handler needs from the receiver.
struct OTLPHTTPHandlerConfiguration: Sendable {
  var ingest: any OTLPIngest
  var tenantHeader: String
  var idleTimeout: TimeAmount
  var requestReadTimeout: TimeAmount
  /// `Retry-After` for a 429 when the in-flight reservation is refused.
  var overloadedRetryAfterSeconds: Int
  var logger: Logger
  /// Where refused requests are counted; `nil`: not counted.
  var metrics: CaptureMetrics? = nil
}

/// Serves OTLP/HTTP export requests on one connection, behind NIO's HTTP/1.1 decoder, pipelining
/// handler (one request at a time, responses in order) and request decompressor.
///
/// States (`Phase`):
/// - `idle`: between requests; the idle timer runs and closes the connection when it fires.
/// - `awaitingHead`: bytes of a request arrived, its head is not parsed yet; the read deadline
///   runs (it started with the first byte).
/// - `receiving`: the head was accepted and in-flight memory reserved; the body is buffered, the
///   read deadline still runs.
/// - `discarding`: an answer was already written before the request ended; the rest of the
///   request is dropped (deadline still runs), then the connection is idle again.
/// - `exporting`: the body is with the ingest; no timer runs, the response is written when the
///   completion arrives (hopped onto this event loop).
/// - `closed`: the connection is closing; everything is ignored.
///
/// In-flight memory: reserved before buffering and grown as the body arrives; released exactly
/// once, by the export completion once the ingest is done with the body, or here when the request
/// is abandoned (rejected mid-body, deadline, connection closed).
final class OTLPHTTPHandler: ChannelInboundHandler, RemovableChannelHandler {
  typealias InboundIn = HTTPServerRequestPart
  typealias OutboundOut = HTTPServerResponsePart

  /// The granularity of in-flight reservations for bodies without a usable `Content-Length`,
  /// so a chunked or compressed body costs one reservation per 64 KiB, not one per chunk.
  static let reservationStep = 64 << 10

  private struct Receiving {
    var signal: Signal
    var encoding: OTLPEncoding
    var tenant: String?
    var keepAlive: Bool
    var version: HTTPVersion
    var maxBytes: Int
    var body: [UInt8]
    var reserved: Int
  }

  private struct Exporting {
    var id: UInt64
    var signal: Signal
    var encoding: OTLPEncoding
    var keepAlive: Bool
    var version: HTTPVersion
  }

  private enum Phase {
    case idle
    case awaitingHead
    case receiving(Receiving)
    case discarding(closeAtEnd: Bool)
    case exporting(Exporting)
    case closed
  }

  private let configuration: OTLPHTTPHandlerConfiguration
  private var logger: Logger
  private var phase: Phase = .idle
  private var timer: Scheduled<Void>?
  /// When the scheduled task fires, and the deadline it enforces (which may be later: the task
  /// then re-arms itself).
  private var timerFiresAt: NIODeadline?
  private var deadline: NIODeadline?
  /// Bumped on every rescheduling so a stale firing does nothing.
  private var timerGeneration: UInt64 = 0
  private var nextExportID: UInt64 = 0
  private var context: ChannelHandlerContext?
  /// What the connection's verified client certificate names, read at the first request (the TLS
  /// handshake is over by then) and kept: it cannot change on an open connection. The outer
  /// `nil`: not read yet.
  private var clientIdentity: ClientIdentity??

  init(configuration: OTLPHTTPHandlerConfiguration) {
    self.configuration = configuration
    self.logger = configuration.logger
  }

  // MARK: - Lifecycle

  func handlerAdded(context: ChannelHandlerContext) {
    self.context = context
    if let remote = context.channel.remoteAddress {
      logger[metadataKey: "otlp.http.peer"] = "\(remote)"
    }
    if context.channel.isActive { armIdleTimer(context: context) }
  }

  func channelActive(context: ChannelHandlerContext) {
    if case .idle = phase { armIdleTimer(context: context) }
    context.fireChannelActive()
  }

  func handlerRemoved(context: ChannelHandlerContext) {
    abandon()
    self.context = nil
  }

  func channelInactive(context: ChannelHandlerContext) {
    abandon()
    context.fireChannelInactive()
  }

  /// Forgets the current request: releases its reservation if the body was still ours, cancels
  /// the timer. An export in progress releases its own reservation when it completes.
  private func abandon() {
    if case .receiving(let request) = phase, request.reserved > 0 {
      configuration.ingest.releaseInFlight(request.reserved)
    }
    phase = .closed
    cancelTimer()
    // The connection is going: drop the task too, so it does not keep this handler alive.
    timer?.cancel()
    timer = nil
    timerFiresAt = nil
  }

  // MARK: - Inbound

  func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
    if event is ConnectionBytesReceived {
      if case .idle = phase {
        phase = .awaitingHead
        armDeadline(context: context)
      }
      return
    }
    context.fireUserInboundEventTriggered(event)
  }

  func channelRead(context: ChannelHandlerContext, data: NIOAny) {
    switch unwrapInboundIn(data) {
    case .head(let head): receivedHead(head, context: context)
    case .body(let buffer): receivedBody(buffer, context: context)
    case .end: receivedEnd(context: context)
    }
  }

  func errorCaught(context: ChannelHandlerContext, error: any Error) {
    if error is HTTPParserError {
      // HTTPServerProtocolErrorHandler already answered 400 and the decoder closes the channel.
      logger.debug("rejected malformed HTTP", metadata: ["error": "\(error)"])
      var signal: Signal?
      if case .receiving(let request) = phase { signal = request.signal }
      configuration.metrics?.refused(signal: signal, reason: .malformed)
      abandon()
      context.close(promise: nil)
      return
    }
    let rejection: OTLPHTTPRejection
    switch error {
    case let error as NIOHTTPDecompression.DecompressionError where error == .limit:
      rejection = OTLPHTTPRejection(
        RejectedRequest(.payloadTooLarge, "decompressed body exceeds the limit of \(maxRequestBytes) bytes"),
        closeConnection: true)
    case is NIOHTTPDecompression.DecompressionError, is NIOHTTPDecompression.ExtraDecompressionError:
      rejection = OTLPHTTPRejection(
        RejectedRequest(.malformed, "Content-Encoding: the body is not valid compressed data (\(error))"),
        closeConnection: true)
    case let error as ZstdRequestBodyError:
      rejection = error.rejection(limit: maxRequestBytes)
    default:
      logger.debug("closing connection after error", metadata: ["error": "\(error)"])
      abandon()
      context.close(promise: nil)
      return
    }
    switch phase {
    case .receiving(let request):
      releaseReservation(request.reserved)
      phase = .closed
      reject(
        rejection, signal: request.signal, encoding: request.encoding, version: request.version, keepAlive: false,
        context: context)
    case .closed:
      // An answer is already on its way and closes the connection after it (the decompressor
      // can report more than one error for one body).
      break
    case .idle, .awaitingHead, .discarding, .exporting:
      abandon()
      context.close(promise: nil)
    }
  }

  private var maxRequestBytes: Int { configuration.ingest.maxRequestBytes }

  private func receivedHead(_ head: HTTPRequestHead, context: ChannelHandlerContext) {
    switch phase {
    case .idle:
      armDeadline(context: context)
    case .awaitingHead:
      break
    case .receiving, .discarding, .exporting, .closed:
      // NIO's pipelining handler delivers one request at a time; nothing to do if it did not.
      return
    }
    let encoding = OTLPHTTPProtocol.encoding(forContentType: head.headers.first(name: "Content-Type"))
    let expectsContinue = head.headers[canonicalForm: "Expect"].contains { $0.lowercased() == "100-continue" }
    // A client waiting for 100 Continue sends no body after a final answer, so the request's end
    // never comes: such an exchange can only end by closing.
    let keepAliveAfterRejection = head.isKeepAlive && !expectsContinue
    let answerEncoding = encoding ?? .protobuf

    guard let signal = OTLPHTTPProtocol.signal(forURI: head.uri) else {
      return reject(
        OTLPHTTPRejection(
          status: .notFound, grpcCode: OTLPHTTPRejection.GRPCCode.notFound,
          message: "no OTLP endpoint at \(Self.printable(head.uri)); use /v1/traces, /v1/logs or /v1/metrics",
          reason: .notFound),
        signal: nil, encoding: answerEncoding, version: head.version, keepAlive: keepAliveAfterRejection,
        context: context)
    }
    guard head.method == .POST else {
      return reject(
        OTLPHTTPRejection(
          status: .methodNotAllowed, grpcCode: OTLPHTTPRejection.GRPCCode.unimplemented,
          message: "method \(head.method) not allowed on \(Self.printable(head.uri)); use POST",
          reason: .methodNotAllowed, headers: [("Allow", "POST")]),
        signal: signal, encoding: answerEncoding, version: head.version, keepAlive: keepAliveAfterRejection,
        context: context)
    }
    guard let encoding else {
      let given = head.headers.first(name: "Content-Type").map { "\"\(Self.printable($0))\"" } ?? "none"
      return reject(
        OTLPHTTPRejection(
          RejectedRequest(
            .unsupportedMediaType,
            "unsupported Content-Type \(given); use application/x-protobuf or application/json")),
        signal: signal, encoding: answerEncoding, version: head.version, keepAlive: keepAliveAfterRejection,
        context: context)
    }
    if case .unsupported(let coding) = OTLPHTTPProtocol.contentCoding(head.headers) {
      return reject(
        OTLPHTTPRejection(
          RejectedRequest(
            .unsupportedMediaType,
            "unsupported Content-Encoding \"\(Self.printable(coding))\"; use gzip, deflate, zstd or identity")),
        signal: signal, encoding: encoding, version: head.version, keepAlive: keepAliveAfterRejection, context: context)
    }
    let limit = maxRequestBytes
    var contentLength = 0
    if let value = head.headers.first(name: "Content-Length") {
      // The HTTP decoder has already refused values that are not a decimal number.
      contentLength = Int(value) ?? Int.max
    }
    if contentLength > limit {
      // Reading a body known to be too large only wastes bandwidth: answer and close at once.
      return reject(
        OTLPHTTPRejection(
          RejectedRequest(
            .payloadTooLarge, "Content-Length \(contentLength) exceeds the request limit of \(limit) bytes"),
          closeConnection: true),
        signal: signal, encoding: encoding, version: head.version, keepAlive: false, context: context)
    }
    if let problem = configuration.ingest.admissionProblem() {
      return reject(
        OTLPHTTPRejection(problem), signal: signal, encoding: encoding, version: head.version,
        keepAlive: keepAliveAfterRejection, context: context)
    }
    if contentLength > 0, !configuration.ingest.reserveInFlight(contentLength) {
      return reject(
        overloaded(), signal: signal, encoding: encoding, version: head.version, keepAlive: keepAliveAfterRejection,
        context: context)
    }
    var body: [UInt8] = []
    body.reserveCapacity(contentLength)
    phase = .receiving(
      Receiving(
        signal: signal, encoding: encoding, tenant: head.headers.first(name: configuration.tenantHeader),
        keepAlive: head.isKeepAlive, version: head.version, maxBytes: limit, body: body, reserved: contentLength))
    if expectsContinue {
      context.writeAndFlush(
        wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: .continue))), promise: nil)
    }
  }

  private func receivedBody(_ buffer: ByteBuffer, context: ChannelHandlerContext) {
    guard case .receiving(var request) = phase else { return }
    let total = request.body.count + buffer.readableBytes
    if total > request.maxBytes {
      releaseReservation(request.reserved)
      phase = .closed
      return reject(
        OTLPHTTPRejection(
          RejectedRequest(.payloadTooLarge, "body exceeds the request limit of \(request.maxBytes) bytes"),
          closeConnection: true),
        signal: request.signal, encoding: request.encoding, version: request.version, keepAlive: false,
        context: context)
    }
    if total > request.reserved {
      let target = min(
        request.maxBytes, (total + Self.reservationStep - 1) / Self.reservationStep * Self.reservationStep)
      let more = max(target, total) - request.reserved
      guard configuration.ingest.reserveInFlight(more) else {
        releaseReservation(request.reserved)
        phase = .discarding(closeAtEnd: false)
        return reject(
          overloaded(), signal: request.signal, encoding: request.encoding, version: request.version,
          keepAlive: request.keepAlive, context: context)
      }
      request.reserved += more
    }
    // Avoid a copy-on-write of the body: take it out of the enum before appending.
    phase = .closed
    buffer.withUnsafeReadableBytes { request.body.append(contentsOf: $0) }
    phase = .receiving(request)
  }

  private func receivedEnd(context: ChannelHandlerContext) {
    switch phase {
    case .receiving(let request):
      startExport(request, context: context)
    case .discarding(let closeAtEnd):
      if closeAtEnd {
        phase = .closed
        cancelTimer()
      } else {
        becomeIdle(context: context)
      }
    case .idle, .awaitingHead, .exporting, .closed:
      break
    }
  }

  // MARK: - Export

  private func peerIdentity(context: ChannelHandlerContext) -> ClientIdentity? {
    if let clientIdentity { return clientIdentity }
    let identity = PeerCertificateIdentity.clientIdentity(on: context.channel)
    clientIdentity = .some(identity)
    return identity
  }

  private func startExport(_ request: Receiving, context: ChannelHandlerContext) {
    cancelTimer()
    nextExportID &+= 1
    let exporting = Exporting(
      id: nextExportID, signal: request.signal, encoding: request.encoding, keepAlive: request.keepAlive,
      version: request.version)
    phase = .exporting(exporting)
    let ingest = configuration.ingest
    let reserved = request.reserved
    let eventLoop = context.eventLoop
    let loopBound = NIOLoopBound(self, eventLoop: eventLoop)
    let id = exporting.id
    ingest.export(
      body: request.body, signal: request.signal, encoding: request.encoding, tenantHeader: request.tenant,
      clientIdentity: peerIdentity(context: context), transport: .http
    ) { result in
      // The ingest no longer holds the body once it has answered.
      if reserved > 0 { ingest.releaseInFlight(reserved) }
      eventLoop.execute {
        loopBound.value.exportFinished(id: id, result: result)
      }
    }
  }

  private func exportFinished(id: UInt64, result: Result<IngestReceipt, RejectedRequest>) {
    guard case .exporting(let exporting) = phase, exporting.id == id, let context else { return }
    switch result {
    case .success:
      let close = !exporting.keepAlive
      // The next state is set before `.end` is written: writing it lets the pipelining handler
      // deliver a queued request re-entrantly.
      if close { phase = .closed } else { becomeIdle(context: context) }
      writeResponse(
        status: .ok, contentType: OTLPHTTPProtocol.contentType(exporting.encoding),
        body: OTLPHTTPProtocol.successBody(exporting.encoding), headers: [], version: exporting.version,
        close: close, context: context)
    case .failure(let rejected):
      let rejection = OTLPHTTPRejection(rejected)
      log(rejection, signal: exporting.signal)
      configuration.metrics?.refused(signal: exporting.signal, reason: rejection.reason)
      let close = !exporting.keepAlive || rejection.closeConnection
      if close { phase = .closed } else { becomeIdle(context: context) }
      writeRejection(
        rejection, encoding: exporting.encoding, version: exporting.version, close: close, context: context)
    }
  }

  // MARK: - Answers

  private func overloaded() -> OTLPHTTPRejection {
    OTLPHTTPRejection(
      RejectedRequest(
        .overloaded, "in-flight memory bound reached; retry later",
        retryAfterSeconds: configuration.overloadedRetryAfterSeconds))
  }

  /// Answers before the request has ended; the rest of it is then discarded, or the connection
  /// closed.
  ///
  /// The answer is written from a new event loop task, not from inside this read: writing a
  /// response's end makes NIO's pipelining handler deliver the next queued request at once, so
  /// answering synchronously would nest one call level per queued request (thousands for a
  /// single read full of tiny pipelined requests behind an export) and could exhaust the stack.
  private func reject(
    _ rejection: OTLPHTTPRejection, signal: Signal?, encoding: OTLPEncoding, version: HTTPVersion, keepAlive: Bool,
    context: ChannelHandlerContext
  ) {
    log(rejection, signal: signal)
    configuration.metrics?.refused(signal: signal, reason: rejection.reason)
    let close = rejection.closeConnection || !keepAlive
    if close {
      phase = .closed
      cancelTimer()
    } else {
      phase = .discarding(closeAtEnd: false)
    }
    context.eventLoop.assumeIsolated().execute {
      // Malformed HTTP closes the connection at once (NIO's protocol error handler has answered
      // 400 by then): the pending answer must not follow it.
      guard let context = self.context, context.channel.isActive else { return }
      self.writeRejection(rejection, encoding: encoding, version: version, close: close, context: context)
    }
  }

  private func writeRejection(
    _ rejection: OTLPHTTPRejection, encoding: OTLPEncoding, version: HTTPVersion, close: Bool,
    context: ChannelHandlerContext
  ) {
    var headers = rejection.headers
    if let seconds = rejection.retryAfterSeconds { headers.append(("Retry-After", "\(seconds)")) }
    writeResponse(
      status: rejection.status, contentType: OTLPHTTPProtocol.contentType(encoding),
      body: OTLPHTTPProtocol.statusBody(code: rejection.grpcCode, message: rejection.message, encoding: encoding),
      headers: headers, version: version, close: close, context: context)
  }

  private func writeResponse(
    status: HTTPResponseStatus, contentType: String, body: [UInt8], headers extra: [(String, String)],
    version: HTTPVersion, close: Bool, context: ChannelHandlerContext
  ) {
    var headers = HTTPHeaders()
    headers.add(name: "Content-Type", value: contentType)
    headers.add(name: "Content-Length", value: "\(body.count)")
    for (name, value) in extra { headers.add(name: name, value: value) }
    if close {
      headers.add(name: "Connection", value: "close")
    } else if version.major == 1 && version.minor == 0 {
      headers.add(name: "Connection", value: "keep-alive")
    }
    let responseVersion = version.major == 1 && version.minor == 0 ? version : .http1_1
    context.write(
      wrapOutboundOut(.head(HTTPResponseHead(version: responseVersion, status: status, headers: headers))), promise: nil
    )
    if !body.isEmpty {
      context.write(wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(bytes: body)))), promise: nil)
    }
    if close {
      let loopBound = context.loopBound
      context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { _ in
        loopBound.value.close(promise: nil)
      }
    } else {
      context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
    }
  }

  private func log(_ rejection: OTLPHTTPRejection, signal: Signal?) {
    var metadata: Logger.Metadata = ["status": "\(rejection.status.code)"]
    if let signal { metadata["signal"] = "\(signal.rawValue)" }
    // Client mistakes are the client's business (debug); capacity and service problems are the
    // operator's (info). The body is never logged.
    let level: Logger.Level = rejection.status.code >= 500 || rejection.retryAfterSeconds != nil ? .info : .debug
    logger.log(level: level, "rejected OTLP/HTTP request: \(rejection.message)", metadata: metadata)
  }

  private func releaseReservation(_ bytes: Int) {
    if bytes > 0 { configuration.ingest.releaseInFlight(bytes) }
  }

  /// A request line can hold any bytes the decoder let through; keep log lines and answers short
  /// and printable.
  static func printable(_ text: String) -> String {
    let cut = text.unicodeScalars.prefix(200).map { $0.value >= 0x20 && $0.value < 0x7F ? Character($0) : "?" }
    return String(cut) + (text.unicodeScalars.count > 200 ? "…" : "")
  }

  // MARK: - Timers

  private func becomeIdle(context: ChannelHandlerContext) {
    phase = .idle
    armIdleTimer(context: context)
  }

  private func armIdleTimer(context: ChannelHandlerContext) {
    schedule(after: configuration.idleTimeout, context: context)
  }

  private func armDeadline(context: ChannelHandlerContext) {
    schedule(after: configuration.requestReadTimeout, context: context)
  }

  /// Forgets the pending deadline. The scheduled task, if any, stays: when it fires it finds no
  /// deadline and does nothing, which is cheaper than cancelling and rescheduling around every
  /// request of a busy keep-alive connection.
  private func cancelTimer() {
    deadline = nil
  }

  /// Sets the deadline `delay` from now. A task is scheduled only when none is due at or before
  /// the new deadline: an earlier task re-arms itself for the rest when it fires, so a connection
  /// serving back-to-back requests schedules about one task per timeout, not two per request.
  private func schedule(after delay: TimeAmount, context: ChannelHandlerContext) {
    let newDeadline = context.eventLoop.now + delay
    deadline = newDeadline
    if let firesAt = timerFiresAt, firesAt <= newDeadline { return }
    arm(at: newDeadline, context: context)
  }

  private func arm(at time: NIODeadline, context: ChannelHandlerContext) {
    timerGeneration &+= 1
    timer?.cancel()
    let generation = timerGeneration
    timerFiresAt = time
    timer = context.eventLoop.assumeIsolated().scheduleTask(deadline: time) {
      self.timerTicked(generation: generation)
    }
  }

  private func timerTicked(generation: UInt64) {
    guard generation == timerGeneration, let context else { return }
    timer = nil
    timerFiresAt = nil
    guard let due = deadline else { return }
    if due > context.eventLoop.now {
      arm(at: due, context: context)
      return
    }
    deadline = nil
    timerFired(generation: generation)
  }

  private func timerFired(generation: UInt64) {
    guard let context else { return }
    switch phase {
    case .idle:
      logger.debug("closing idle OTLP/HTTP connection")
      phase = .closed
      context.close(promise: nil)
    case .awaitingHead, .receiving:
      logger.info("OTLP/HTTP request not received within the read deadline; answering 408")
      var signal: Signal?
      if case .receiving(let request) = phase { signal = request.signal }
      configuration.metrics?.refused(signal: signal, reason: .timeout)
      abandon()
      context.triggerUserOutboundEvent(SendRawAnswerAndClose(answer: .requestTimeout), promise: nil)
    case .discarding:
      logger.info("OTLP/HTTP request not received within the read deadline; closing")
      abandon()
      context.close(promise: nil)
    case .exporting, .closed:
      break
    }
  }
}

@available(*, unavailable)
extension OTLPHTTPHandler: Sendable {}
