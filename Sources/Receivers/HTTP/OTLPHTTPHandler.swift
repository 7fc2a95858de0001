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
/// A thin shell around ``OTLPHTTPConnectionStateMachine``, which holds the connection's phase and
/// decides every answer: this class feeds it the channel's events and performs the actions it
/// returns (writes, closes, timers, asking the ingest, logging and counting refusals).
///
/// In-flight memory: reserved before buffering and grown as the body arrives; released exactly
/// once, by the export completion once the ingest is done with the body, or here when the state
/// machine says the request is abandoned (rejected mid-body, deadline, connection closed).
final class OTLPHTTPHandler: ChannelInboundHandler, RemovableChannelHandler {
  typealias InboundIn = HTTPServerRequestPart
  typealias OutboundOut = HTTPServerResponsePart

  private let configuration: OTLPHTTPHandlerConfiguration
  private var logger: Logger
  private var state: OTLPHTTPConnectionStateMachine
  private var timer: Scheduled<Void>?
  /// When the scheduled task fires, and the deadline it enforces (which may be later: the task
  /// then re-arms itself).
  private var timerFiresAt: NIODeadline?
  private var deadline: NIODeadline?
  /// Bumped on every rescheduling so a stale firing does nothing.
  private var timerGeneration: UInt64 = 0
  private var context: ChannelHandlerContext?
  /// What the connection's verified client certificate names, read at the first request (the TLS
  /// handshake is over by then) and kept: it cannot change on an open connection. The outer
  /// `nil`: not read yet.
  private var clientIdentity: ClientIdentity??

  init(configuration: OTLPHTTPHandlerConfiguration) {
    self.configuration = configuration
    self.logger = configuration.logger
    self.state = OTLPHTTPConnectionStateMachine(
      tenantHeader: configuration.tenantHeader,
      overloadedRetryAfterSeconds: configuration.overloadedRetryAfterSeconds)
  }

  // MARK: - Lifecycle

  func handlerAdded(context: ChannelHandlerContext) {
    self.context = context
    if let remote = context.channel.remoteAddress {
      logger[metadataKey: "otlp.http.peer"] = "\(remote)"
    }
    if context.channel.isActive { perform(state.channelActive(), context: context) }
  }

  func channelActive(context: ChannelHandlerContext) {
    perform(state.channelActive(), context: context)
    context.fireChannelActive()
  }

  func handlerRemoved(context: ChannelHandlerContext) {
    perform(state.channelClosed(), context: context)
    self.context = nil
  }

  func channelInactive(context: ChannelHandlerContext) {
    perform(state.channelClosed(), context: context)
    context.fireChannelInactive()
  }

  // MARK: - Inbound

  func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
    if event is ConnectionBytesReceived {
      perform(state.bytesReceived(), context: context)
      return
    }
    context.fireUserInboundEventTriggered(event)
  }

  func channelRead(context: ChannelHandlerContext, data: NIOAny) {
    switch unwrapInboundIn(data) {
    case .head(let head):
      // A request queued by the pipelining handler arrives without new bytes: its head starts
      // the read deadline as the first bytes of a request do.
      perform(state.bytesReceived(), context: context)
      perform(state.receivedHead(head, maxRequestBytes: maxRequestBytes), context: context)
    case .body(let buffer):
      var action = state.receivedBody(buffer)
      if case .reserveInFlight(let more) = action {
        action =
          configuration.ingest.reserveInFlight(more)
          ? state.inFlightReserved(more, body: buffer) : state.inFlightRefused()
      }
      perform(action, context: context)
    case .end:
      perform(state.receivedEnd(), context: context)
    }
  }

  func errorCaught(context: ChannelHandlerContext, error: any Error) {
    if error is HTTPParserError {
      // HTTPServerProtocolErrorHandler already answered 400 and the decoder closes the channel.
      logger.debug("rejected malformed HTTP", metadata: ["error": "\(error)"])
      perform(state.malformedRequest(), context: context)
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
      perform(state.connectionFailed(), context: context)
      return
    }
    perform(state.bodyUndecodable(rejection), context: context)
  }

  private var maxRequestBytes: Int { configuration.ingest.maxRequestBytes }

  // MARK: - Actions

  private func perform(_ action: OTLPHTTPConnectionStateMachine.Action, context: ChannelHandlerContext) {
    switch action {
    case .none:
      break
    case .armReadDeadline:
      schedule(after: configuration.requestReadTimeout, context: context)
    case .armIdleTimer:
      schedule(after: configuration.idleTimeout, context: context)
    case .admit(let bytes):
      let ingest = configuration.ingest
      let decision: OTLPHTTPConnectionStateMachine.AdmissionDecision
      if let problem = ingest.admissionProblem() {
        decision = .refused(problem)
      } else if bytes > 0, !ingest.reserveInFlight(bytes) {
        decision = .overloaded
      } else {
        decision = .admitted
      }
      perform(state.admissionDecided(decision), context: context)
    case .reserveInFlight:
      // Answered in `channelRead`, which holds the body part the reservation is for.
      break
    case .sendContinue(let version):
      context.writeAndFlush(
        wrapOutboundOut(.head(HTTPResponseHead(version: version, status: .continue))), promise: nil)
    case .reject(let answer):
      releaseReservation(answer.release)
      reject(answer, context: context)
    case .export(let export):
      cancelTimer()
      startExport(export, context: context)
    case .respond(let response):
      respond(response, context: context)
    case .forget(let release):
      releaseReservation(release)
      stopTimers()
    case .closeMalformed(let signal, let release):
      configuration.metrics?.refused(signal: signal, reason: .malformed)
      releaseReservation(release)
      stopTimers()
      context.close(promise: nil)
    case .closeAfterError(let release):
      releaseReservation(release)
      stopTimers()
      context.close(promise: nil)
    case .closeIdle:
      logger.debug("closing idle OTLP/HTTP connection")
      context.close(promise: nil)
    case .answerTimeoutAndClose(let signal, let release):
      logger.info("OTLP/HTTP request not received within the read deadline; answering 408")
      configuration.metrics?.refused(signal: signal, reason: .timeout)
      releaseReservation(release)
      stopTimers()
      context.triggerUserOutboundEvent(SendRawAnswerAndClose(answer: .requestTimeout), promise: nil)
    case .closeDiscarding:
      logger.info("OTLP/HTTP request not received within the read deadline; closing")
      stopTimers()
      context.close(promise: nil)
    }
  }

  // MARK: - Export

  private func peerIdentity(context: ChannelHandlerContext) -> ClientIdentity? {
    if let clientIdentity { return clientIdentity }
    let identity = PeerCertificateIdentity.clientIdentity(on: context.channel)
    clientIdentity = .some(identity)
    return identity
  }

  private func startExport(_ export: OTLPHTTPConnectionStateMachine.Export, context: ChannelHandlerContext) {
    let ingest = configuration.ingest
    let reserved = export.reserved
    let eventLoop = context.eventLoop
    let loopBound = NIOLoopBound(self, eventLoop: eventLoop)
    let id = export.id
    ingest.export(
      body: export.body, signal: export.signal, encoding: export.encoding, tenantHeader: export.tenant,
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
    guard let context else { return }
    perform(state.exportFinished(id: id, result: result), context: context)
  }

  private func respond(_ response: OTLPHTTPConnectionStateMachine.Response, context: ChannelHandlerContext) {
    // The state machine is already in its next phase; the idle timer is armed before `.end` is
    // written: writing it lets the pipelining handler deliver a queued request re-entrantly.
    if !response.close { schedule(after: configuration.idleTimeout, context: context) }
    switch response.outcome {
    case .accepted:
      writeResponse(
        status: .ok, contentType: OTLPHTTPProtocol.contentType(response.encoding),
        body: OTLPHTTPProtocol.successBody(response.encoding), headers: [], version: response.version,
        close: response.close, context: context)
    case .rejected(let rejection):
      log(rejection, signal: response.signal)
      configuration.metrics?.refused(signal: response.signal, reason: rejection.reason)
      writeRejection(
        rejection, encoding: response.encoding, version: response.version, close: response.close, context: context)
    }
  }

  // MARK: - Answers

  /// Answers before the request has ended; the rest of it is then discarded, or the connection
  /// closed (as the state machine decided).
  ///
  /// The answer is written from a new event loop task, not from inside this read: writing a
  /// response's end makes NIO's pipelining handler deliver the next queued request at once, so
  /// answering synchronously would nest one call level per queued request (thousands for a
  /// single read full of tiny pipelined requests behind an export) and could exhaust the stack.
  private func reject(_ answer: OTLPHTTPConnectionStateMachine.Rejection, context: ChannelHandlerContext) {
    log(answer.rejection, signal: answer.signal)
    configuration.metrics?.refused(signal: answer.signal, reason: answer.rejection.reason)
    if answer.close { cancelTimer() }
    context.eventLoop.assumeIsolated().execute {
      // Malformed HTTP closes the connection at once (NIO's protocol error handler has answered
      // 400 by then): the pending answer must not follow it.
      guard let context = self.context, context.channel.isActive else { return }
      self.writeRejection(
        answer.rejection, encoding: answer.encoding, version: answer.version, close: answer.close, context: context)
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

  // MARK: - Timers

  /// Forgets the deadline and drops the scheduled task too: the connection is going, and the
  /// task must not keep this handler alive.
  private func stopTimers() {
    cancelTimer()
    timer?.cancel()
    timer = nil
    timerFiresAt = nil
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
    timerFired()
  }

  private func timerFired() {
    guard let context else { return }
    perform(state.deadlinePassed(), context: context)
  }
}

@available(*, unavailable)
extension OTLPHTTPHandler: Sendable {}
