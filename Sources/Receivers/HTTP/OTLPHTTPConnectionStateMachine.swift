import Ingest
internal import Manifest
internal import NIOCore
internal import NIOHTTP1

/// What one OTLP/HTTP connection is doing, and what it must do next: the decisions of
/// ``OTLPHTTPHandler`` without its I/O, so they can be tested by feeding events (swift-nio's
/// `NIOTypedHTTPServerUpgraderStateMachine` is the model).
///
/// Every event is a mutating method that returns an ``Action`` for the handler to perform
/// (write, close, arm a timer, ask the ingest). The handler owns the channel, the timers and the
/// ingest; this struct owns the phase of the connection and the body being received. It holds
/// no closures or classes, so feeding it costs no allocation beyond the body itself.
///
/// States (``Phase``):
/// - `idle`: between requests; the idle timer runs and closes the connection when it fires.
/// - `awaitingHead`: bytes of a request arrived, its head is not parsed yet; the read deadline
///   runs (it started with the first byte).
/// - `admitting`: the head passed every check of its own; the handler is asking the ingest for
///   admission and in-flight memory (``Action/admit(reserving:)``) and answers with
///   ``admissionDecided(_:)`` before any other event.
/// - `receiving`: the head was accepted and in-flight memory reserved; the body is buffered, the
///   read deadline still runs.
/// - `discarding`: an answer was already written before the request ended; the rest of the
///   request is dropped (deadline still runs), then the connection is idle again.
/// - `exporting`: the body is with the ingest; no timer runs, the response is written when the
///   completion arrives.
/// - `closed`: the connection is closing; everything is ignored.
///
/// In-flight memory: every action that gives a reservation back says how many bytes
/// (`release`), exactly once per reservation; an exported body's reservation is released by the
/// export completion instead, once the ingest is done with the body.
struct OTLPHTTPConnectionStateMachine {
  /// The granularity of in-flight reservations for bodies without a usable `Content-Length`,
  /// so a chunked or compressed body costs one reservation per 64 KiB, not one per chunk.
  static let reservationStep = 64 << 10

  /// A request whose head was accepted.
  struct Receiving {
    var signal: Signal
    var encoding: OTLPEncoding
    var tenant: String?
    var keepAlive: Bool
    var version: HTTPVersion
    var maxBytes: Int
    var body: [UInt8]
    /// In-flight bytes reserved for the body so far.
    var reserved: Int
  }

  /// A request whose body is with the ingest.
  struct Exporting {
    var id: UInt64
    var signal: Signal
    var encoding: OTLPEncoding
    var keepAlive: Bool
    var version: HTTPVersion
  }

  enum Phase {
    case idle
    case awaitingHead
    case admitting(Receiving, expectsContinue: Bool)
    case receiving(Receiving)
    case discarding
    case exporting(Exporting)
    case closed
  }

  /// An answer written before the request has ended.
  struct Rejection: Equatable {
    var rejection: OTLPHTTPRejection
    var signal: Signal?
    var encoding: OTLPEncoding
    var version: HTTPVersion
    /// Close the connection after the answer (else the rest of the request is discarded).
    var close: Bool
    /// In-flight bytes to give back.
    var release: Int
  }

  /// A body to hand to the ingest.
  struct Export: Equatable {
    /// Matches the completion to this request (``exportFinished(id:result:)``).
    var id: UInt64
    var body: [UInt8]
    var signal: Signal
    var encoding: OTLPEncoding
    var tenant: String?
    /// In-flight bytes held by the body, released by the completion.
    var reserved: Int
  }

  /// The answer to an exported request.
  struct Response: Equatable {
    enum Outcome: Equatable {
      case accepted
      case rejected(OTLPHTTPRejection)
    }
    var outcome: Outcome
    var signal: Signal
    var encoding: OTLPEncoding
    var version: HTTPVersion
    /// Close after the answer; otherwise the connection is idle again (arm the idle timer before
    /// writing: writing the end lets the pipelining handler deliver a queued request at once).
    var close: Bool
  }

  /// What the ingest said when asked to admit a request (``Action/admit(reserving:)``).
  enum AdmissionDecision {
    /// Admitted, and the requested in-flight bytes are reserved.
    case admitted
    /// The ingest's admission problem (disk full, stopping); nothing reserved.
    case refused(RejectedRequest)
    /// The in-flight memory bound refused the reservation.
    case overloaded
  }

  /// What the handler does after an event.
  enum Action: Equatable {
    case none
    /// The first bytes of a request arrived: start the read deadline.
    case armReadDeadline
    /// The connection is idle: start the idle timer.
    case armIdleTimer
    /// Ask the ingest for admission, reserving this many in-flight bytes (none when 0), then
    /// report with ``admissionDecided(_:)``.
    case admit(reserving: Int)
    /// The body outgrew its reservation: reserve this many more bytes, then report with
    /// ``inFlightReserved(_:body:)`` (passing the same body part) or ``inFlightRefused()``.
    case reserveInFlight(Int)
    /// Write `100 Continue`: the client waits for it before sending the body.
    case sendContinue(HTTPVersion)
    /// Answer before the request has ended (from a new event loop task, see the handler).
    case reject(Rejection)
    /// Hand the body to the ingest; no timer runs until it answers.
    case export(Export)
    /// Write the answer to an exported request.
    case respond(Response)
    /// The channel is gone: give back `release` bytes and stop the timers.
    case forget(release: Int)
    /// Malformed HTTP (NIO's protocol error handler answered 400): count it, give back
    /// `release` bytes, close.
    case closeMalformed(signal: Signal?, release: Int)
    /// Another channel error: give back `release` bytes, close.
    case closeAfterError(release: Int)
    /// The idle timer fired: close.
    case closeIdle
    /// The read deadline passed before the request was received: count it, give back `release`
    /// bytes, answer 408 and close.
    case answerTimeoutAndClose(signal: Signal?, release: Int)
    /// The read deadline passed while a rejected request was being discarded: close.
    case closeDiscarding
  }

  private(set) var phase: Phase = .idle
  private var nextExportID: UInt64 = 0
  /// The header naming the tenant.
  let tenantHeader: String
  /// `Retry-After` for a 429 when the in-flight reservation is refused.
  let overloadedRetryAfterSeconds: Int

  init(tenantHeader: String, overloadedRetryAfterSeconds: Int) {
    self.tenantHeader = tenantHeader
    self.overloadedRetryAfterSeconds = overloadedRetryAfterSeconds
  }

  // MARK: - Connection events

  /// The channel became active (or the handler was added to an active one).
  mutating func channelActive() -> Action {
    if case .idle = phase { return .armIdleTimer }
    return .none
  }

  /// Bytes arrived on the connection. The handler reports this before every request head too:
  /// NIO's pipelining handler delivers a queued request without new bytes arriving.
  mutating func bytesReceived() -> Action {
    guard case .idle = phase else { return .none }
    phase = .awaitingHead
    return .armReadDeadline
  }

  /// The channel closed or the handler was removed.
  mutating func channelClosed() -> Action {
    let release = reservedBody
    phase = .closed
    return .forget(release: release)
  }

  /// The read deadline or the idle timer passed.
  mutating func deadlinePassed() -> Action {
    switch phase {
    case .idle:
      phase = .closed
      return .closeIdle
    case .awaitingHead, .admitting, .receiving:
      let signal = receivingSignal
      let release = reservedBody
      phase = .closed
      return .answerTimeoutAndClose(signal: signal, release: release)
    case .discarding:
      phase = .closed
      return .closeDiscarding
    case .exporting, .closed:
      return .none
    }
  }

  /// NIO's HTTP decoder refused the bytes.
  mutating func malformedRequest() -> Action {
    let signal = receivingSignal
    let release = reservedBody
    phase = .closed
    return .closeMalformed(signal: signal, release: release)
  }

  /// The request body could not be decompressed (or inflated past the limit): `rejection` says
  /// how to answer.
  mutating func bodyUndecodable(_ rejection: OTLPHTTPRejection) -> Action {
    switch phase {
    case .receiving(let request):
      return reject(
        rejection, signal: request.signal, encoding: request.encoding, version: request.version, keepAlive: false,
        release: request.reserved)
    case .closed:
      // An answer is already on its way and closes the connection after it (the decompressor
      // can report more than one error for one body).
      return .none
    case .idle, .awaitingHead, .admitting, .discarding, .exporting:
      return connectionFailed()
    }
  }

  /// Any other channel error.
  mutating func connectionFailed() -> Action {
    let release = reservedBody
    phase = .closed
    return .closeAfterError(release: release)
  }

  // MARK: - Request events

  /// A request head arrived. `maxRequestBytes` is the ingest's body limit.
  mutating func receivedHead(_ head: HTTPRequestHead, maxRequestBytes limit: Int) -> Action {
    switch phase {
    case .idle, .awaitingHead:
      break
    case .admitting, .receiving, .discarding, .exporting, .closed:
      // NIO's pipelining handler delivers one request at a time; nothing to do if it did not.
      return .none
    }
    let contentType = head.headers.first(name: "Content-Type")
    let encoding = OTLPHTTPProtocol.encoding(forContentType: contentType)
    let expectsContinue = head.headers[canonicalForm: "Expect"].contains { $0.lowercased() == "100-continue" }
    // A client waiting for 100 Continue sends no body after a final answer, so the request's end
    // never comes: such an exchange can only end by closing.
    let keepAliveAfterRejection = head.isKeepAlive && !expectsContinue
    let answerEncoding = encoding ?? .protobuf

    guard let signal = OTLPHTTPProtocol.signal(forURI: head.uri) else {
      return reject(
        OTLPHTTPRejection(
          status: .notFound, grpcCode: OTLPHTTPRejection.GRPCCode.notFound,
          message:
            "no OTLP endpoint at \(OTLPHTTPProtocol.printable(head.uri)); use /v1/traces, /v1/logs or /v1/metrics",
          reason: .notFound),
        signal: nil, encoding: answerEncoding, version: head.version, keepAlive: keepAliveAfterRejection)
    }
    guard head.method == .POST else {
      return reject(
        OTLPHTTPRejection(
          status: .methodNotAllowed, grpcCode: OTLPHTTPRejection.GRPCCode.unimplemented,
          message: "method \(head.method) not allowed on \(OTLPHTTPProtocol.printable(head.uri)); use POST",
          reason: .methodNotAllowed, headers: [("Allow", "POST")]),
        signal: signal, encoding: answerEncoding, version: head.version, keepAlive: keepAliveAfterRejection)
    }
    guard let encoding else {
      let given = contentType.map { "\"\(OTLPHTTPProtocol.printable($0))\"" } ?? "none"
      return reject(
        OTLPHTTPRejection(
          RejectedRequest(
            .unsupportedMediaType,
            "unsupported Content-Type \(given); use application/x-protobuf or application/json")),
        signal: signal, encoding: answerEncoding, version: head.version, keepAlive: keepAliveAfterRejection)
    }
    if case .unsupported(let coding) = OTLPHTTPProtocol.contentCoding(head.headers) {
      return reject(
        OTLPHTTPRejection(
          RejectedRequest(
            .unsupportedMediaType,
            "unsupported Content-Encoding \"\(OTLPHTTPProtocol.printable(coding))\"; use gzip, deflate, zstd or identity"
          )),
        signal: signal, encoding: encoding, version: head.version, keepAlive: keepAliveAfterRejection)
    }
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
        signal: signal, encoding: encoding, version: head.version, keepAlive: false)
    }
    // The body buffer is allocated only once the ingest has admitted the request.
    phase = .admitting(
      Receiving(
        signal: signal, encoding: encoding, tenant: head.headers.first(name: tenantHeader),
        keepAlive: head.isKeepAlive, version: head.version, maxBytes: limit, body: [], reserved: contentLength),
      expectsContinue: expectsContinue)
    return .admit(reserving: contentLength)
  }

  /// The ingest's answer to ``Action/admit(reserving:)``.
  mutating func admissionDecided(_ decision: AdmissionDecision) -> Action {
    guard case .admitting(var request, let expectsContinue) = phase else { return .none }
    let keepAliveAfterRejection = request.keepAlive && !expectsContinue
    switch decision {
    case .refused(let problem):
      return reject(
        OTLPHTTPRejection(problem), signal: request.signal, encoding: request.encoding, version: request.version,
        keepAlive: keepAliveAfterRejection)
    case .overloaded:
      return reject(
        overloaded(), signal: request.signal, encoding: request.encoding, version: request.version,
        keepAlive: keepAliveAfterRejection)
    case .admitted:
      request.body.reserveCapacity(request.reserved)
      let version = request.version
      phase = .receiving(request)
      return expectsContinue ? .sendContinue(version) : .none
    }
  }

  /// A part of the request body arrived.
  mutating func receivedBody(_ buffer: ByteBuffer) -> Action {
    guard case .receiving(var request) = phase else { return .none }
    let total = request.body.count + buffer.readableBytes
    if total > request.maxBytes {
      return reject(
        OTLPHTTPRejection(
          RejectedRequest(.payloadTooLarge, "body exceeds the request limit of \(request.maxBytes) bytes"),
          closeConnection: true),
        signal: request.signal, encoding: request.encoding, version: request.version, keepAlive: false,
        release: request.reserved)
    }
    if total > request.reserved {
      let target = min(
        request.maxBytes, (total + Self.reservationStep - 1) / Self.reservationStep * Self.reservationStep)
      return .reserveInFlight(max(target, total) - request.reserved)
    }
    // Avoid a copy-on-write of the body: take it out of the enum before appending (and append
    // here, not in a helper, so no second copy of the request holds the body meanwhile).
    phase = .closed
    buffer.withUnsafeReadableBytes { request.body.append(contentsOf: $0) }
    phase = .receiving(request)
    return .none
  }

  /// The ingest reserved the `bytes` asked for by ``Action/reserveInFlight(_:)``; `body` is the
  /// body part that asked.
  mutating func inFlightReserved(_ bytes: Int, body: ByteBuffer) -> Action {
    guard case .receiving(var request) = phase else { return .none }
    request.reserved += bytes
    phase = .closed
    body.withUnsafeReadableBytes { request.body.append(contentsOf: $0) }
    phase = .receiving(request)
    return .none
  }

  /// The ingest refused the reservation asked for by ``Action/reserveInFlight(_:)``.
  mutating func inFlightRefused() -> Action {
    guard case .receiving(let request) = phase else { return .none }
    return reject(
      overloaded(), signal: request.signal, encoding: request.encoding, version: request.version,
      keepAlive: request.keepAlive, release: request.reserved)
  }

  /// The request ended.
  mutating func receivedEnd() -> Action {
    switch phase {
    case .receiving(let request):
      nextExportID &+= 1
      phase = .exporting(
        Exporting(
          id: nextExportID, signal: request.signal, encoding: request.encoding, keepAlive: request.keepAlive,
          version: request.version))
      return .export(
        Export(
          id: nextExportID, body: request.body, signal: request.signal, encoding: request.encoding,
          tenant: request.tenant, reserved: request.reserved))
    case .discarding:
      phase = .idle
      return .armIdleTimer
    case .idle, .awaitingHead, .admitting, .exporting, .closed:
      return .none
    }
  }

  /// The ingest answered export `id`.
  mutating func exportFinished(id: UInt64, result: Result<IngestReceipt, RejectedRequest>) -> Action {
    guard case .exporting(let exporting) = phase, exporting.id == id else { return .none }
    let outcome: Response.Outcome
    var close = !exporting.keepAlive
    switch result {
    case .success:
      outcome = .accepted
    case .failure(let rejected):
      let rejection = OTLPHTTPRejection(rejected)
      close = close || rejection.closeConnection
      outcome = .rejected(rejection)
    }
    phase = close ? .closed : .idle
    return .respond(
      Response(
        outcome: outcome, signal: exporting.signal, encoding: exporting.encoding, version: exporting.version,
        close: close))
  }

  // MARK: - Helpers

  /// Answers before the request has ended: the connection closes after the answer, or the rest
  /// of the request is discarded.
  private mutating func reject(
    _ rejection: OTLPHTTPRejection, signal: Signal?, encoding: OTLPEncoding, version: HTTPVersion, keepAlive: Bool,
    release: Int = 0
  ) -> Action {
    let close = rejection.closeConnection || !keepAlive
    phase = close ? .closed : .discarding
    return .reject(
      Rejection(
        rejection: rejection, signal: signal, encoding: encoding, version: version, close: close, release: release))
  }

  private func overloaded() -> OTLPHTTPRejection {
    OTLPHTTPRejection(
      RejectedRequest(
        .overloaded, "in-flight memory bound reached; retry later", retryAfterSeconds: overloadedRetryAfterSeconds))
  }

  /// In-flight bytes the request being received holds (0 in every other phase: an exported
  /// body's reservation is released by its completion).
  private var reservedBody: Int {
    if case .receiving(let request) = phase { return request.reserved }
    return 0
  }

  private var receivingSignal: Signal? {
    if case .receiving(let request) = phase { return request.signal }
    return nil
  }
}
