import Manifest
import NIOCore
import NIOHTTP1
import Testing

@testable import Ingest
@testable import Receivers

/// The OTLP/HTTP connection's decisions, driven event by event with no channel: every test feeds
/// the state machine what NIO would deliver and checks the exact action it returns.
@Suite struct OTLPHTTPConnectionStateMachineTests {
  typealias Machine = OTLPHTTPConnectionStateMachine
  static let limit = 1 << 20
  static let receipt = IngestReceipt(seq: 0, signal: .traces, tenant: "")

  func machine() -> Machine {
    Machine(tenantHeader: "X-Tenant", overloadedRetryAfterSeconds: 7)
  }

  func head(
    _ uri: String = "/v1/traces", method: HTTPMethod = .POST, version: HTTPVersion = .http1_1,
    headers: [(String, String)] = [("Content-Type", "application/x-protobuf")]
  ) -> HTTPRequestHead {
    HTTPRequestHead(version: version, method: method, uri: uri, headers: HTTPHeaders(headers))
  }

  func bytes(_ count: Int, _ value: UInt8 = 0x2A) -> ByteBuffer {
    ByteBuffer(bytes: [UInt8](repeating: value, count: count))
  }

  /// Feeds a head after its first bytes, as the handler does.
  func start(_ machine: inout Machine, _ head: HTTPRequestHead) -> Machine.Action {
    _ = machine.bytesReceived()
    return machine.receivedHead(head, maxRequestBytes: Self.limit)
  }

  func rejection(_ action: Machine.Action) -> Machine.Rejection? {
    if case .reject(let rejection) = action { return rejection }
    return nil
  }

  @Test func aNormalRequestIsAdmittedBufferedExportedAndAnsweredThenTheConnectionIsIdle() {
    var machine = machine()
    #expect(machine.channelActive() == .armIdleTimer)
    #expect(machine.bytesReceived() == .armReadDeadline)
    // More bytes of the same request do not restart the deadline.
    #expect(machine.bytesReceived() == .none)
    let request = head(headers: [
      ("Content-Type", "application/x-protobuf"), ("Content-Length", "5"), ("X-Tenant", "acme"),
    ])
    #expect(machine.receivedHead(request, maxRequestBytes: Self.limit) == .admit(reserving: 5))
    #expect(machine.admissionDecided(.admitted) == .none)
    #expect(machine.receivedBody(ByteBuffer(bytes: [1, 2])) == .none)
    #expect(machine.receivedBody(ByteBuffer(bytes: [3, 4, 5])) == .none)
    let export = Machine.Export(
      id: 1, body: [1, 2, 3, 4, 5], signal: .traces, encoding: .protobuf, tenant: "acme", reserved: 5)
    #expect(machine.receivedEnd() == .export(export))
    // Timers and late events change nothing while the ingest holds the body.
    #expect(machine.deadlinePassed() == .none)
    #expect(machine.receivedEnd() == .none)
    #expect(
      machine.exportFinished(id: 1, result: .success(IngestReceipt(seq: 0, signal: .traces, tenant: "acme")))
        == .respond(
          Machine.Response(outcome: .accepted, signal: .traces, encoding: .protobuf, version: .http1_1, close: false)))
    guard case .idle = machine.phase else {
      Issue.record("expected idle, got \(machine.phase)")
      return
    }
    #expect(machine.deadlinePassed() == .closeIdle)
  }

  @Test func keepAliveRequestsFollowEachOtherAndAStaleCompletionIsIgnored() {
    var machine = machine()
    for id in 1...3 {
      // A pipelined request arrives without new bytes: its head starts the read deadline.
      #expect(machine.bytesReceived() == .armReadDeadline)
      #expect(
        machine.receivedHead(head("/v1/logs", headers: [("Content-Type", "application/json")]), maxRequestBytes: 100)
          == .admit(reserving: 0))
      #expect(machine.admissionDecided(.admitted) == .none)
      // No Content-Length: the reservation grows in 64 KiB steps, bounded by the limit.
      #expect(machine.receivedBody(bytes(3)) == .reserveInFlight(100))
      #expect(machine.inFlightReserved(100, body: bytes(3)) == .none)
      #expect(machine.receivedBody(bytes(4)) == .none)
      guard case .export(let export) = machine.receivedEnd() else {
        Issue.record("no export")
        return
      }
      #expect(export.id == UInt64(id) && export.body.count == 7 && export.reserved == 100)
      #expect(machine.exportFinished(id: UInt64(id) + 100, result: .success(Self.receipt)) == .none)
      guard case .respond(let response) = machine.exportFinished(id: export.id, result: .success(Self.receipt))
      else {
        Issue.record("no response")
        return
      }
      #expect(!response.close && response.encoding == .json && response.signal == .logs)
    }
  }

  @Test func anHTTP10RequestWithoutKeepAliveClosesAfterItsAnswer() {
    var machine = machine()
    #expect(start(&machine, head(version: .http1_0)) == .admit(reserving: 0))
    #expect(machine.admissionDecided(.admitted) == .none)
    guard case .export(let export) = machine.receivedEnd() else {
      Issue.record("no export")
      return
    }
    guard case .respond(let response) = machine.exportFinished(id: export.id, result: .success(Self.receipt))
    else {
      Issue.record("no response")
      return
    }
    #expect(response.close && response.version == .http1_0)
    #expect(machine.bytesReceived() == .none)
  }

  @Test func aContentLengthOverTheLimitIsRefusedAtOnceAndCloses() {
    var machine = machine()
    let action = start(
      &machine, head(headers: [("Content-Type", "application/x-protobuf"), ("Content-Length", "2000000")]))
    let answer = rejection(action)
    #expect(answer?.rejection.status == .payloadTooLarge)
    #expect(answer?.rejection.message == "Content-Length 2000000 exceeds the request limit of 1048576 bytes")
    #expect(answer?.close == true && answer?.release == 0 && answer?.signal == .traces)
    #expect(machine.receivedBody(bytes(10)) == .none)
    #expect(machine.receivedEnd() == .none)
  }

  @Test func aBodyGrowingPastTheLimitGivesItsReservationBackAndCloses() {
    var machine = machine()
    #expect(
      start(&machine, head(headers: [("Content-Type", "application/x-protobuf"), ("Content-Length", "10")]))
        == .admit(reserving: 10))
    #expect(machine.admissionDecided(.admitted) == .none)
    #expect(machine.receivedBody(bytes(10)) == .none)
    // More body than announced: grown in a 64 KiB step first...
    #expect(machine.receivedBody(bytes(10)) == .reserveInFlight(Machine.reservationStep - 10))
    #expect(machine.inFlightReserved(Machine.reservationStep - 10, body: bytes(10)) == .none)
    // ...then past the limit: every reserved byte is given back, once.
    let answer = rejection(machine.receivedBody(bytes(Self.limit)))
    #expect(answer?.rejection.status == .payloadTooLarge)
    #expect(answer?.rejection.message == "body exceeds the request limit of 1048576 bytes")
    #expect(answer?.close == true && answer?.release == Machine.reservationStep)
    #expect(machine.channelClosed() == .forget(release: 0))
  }

  @Test func aRefusedReservationMidBodyAnswers429AndDiscardsTheRest() {
    var machine = machine()
    _ = start(&machine, head(headers: [("Content-Type", "application/x-protobuf"), ("Content-Length", "4")]))
    _ = machine.admissionDecided(.admitted)
    #expect(machine.receivedBody(bytes(8)) == .reserveInFlight(Machine.reservationStep - 4))
    let answer = rejection(machine.inFlightRefused())
    #expect(answer?.rejection.status == .tooManyRequests && answer?.rejection.retryAfterSeconds == 7)
    #expect(answer?.close == false && answer?.release == 4)
    #expect(machine.receivedBody(bytes(8)) == .none)
    // The discarded request's end makes the connection idle again.
    #expect(machine.receivedEnd() == .armIdleTimer)
    #expect(machine.bytesReceived() == .armReadDeadline)
  }

  @Test func headsThatCannotBeServedAreAnsweredFromTheHeadAlone() {
    var machine = machine()
    var answer = rejection(start(&machine, head("/v1/spans")))
    #expect(answer?.rejection.status == .notFound && answer?.signal == nil && answer?.close == false)
    #expect(
      answer?.rejection.message == "no OTLP endpoint at /v1/spans; use /v1/traces, /v1/logs or /v1/metrics")
    #expect(machine.receivedEnd() == .armIdleTimer)

    answer = rejection(start(&machine, head(method: .GET)))
    #expect(answer?.rejection.status == .methodNotAllowed)
    #expect(answer?.rejection.headers.first?.0 == "Allow")
    #expect(machine.receivedEnd() == .armIdleTimer)

    answer = rejection(start(&machine, head(headers: [("Content-Type", "text/plain")])))
    #expect(answer?.rejection.status == .unsupportedMediaType && answer?.encoding == .protobuf)
    #expect(machine.receivedEnd() == .armIdleTimer)

    answer = rejection(
      start(&machine, head(headers: [("Content-Type", "application/json"), ("Content-Encoding", "br")])))
    #expect(answer?.rejection.status == .unsupportedMediaType && answer?.encoding == .json)
    #expect(answer?.rejection.message == "unsupported Content-Encoding \"br\"; use gzip, deflate, zstd or identity")
    #expect(machine.receivedEnd() == .armIdleTimer)

    // A client waiting for 100 Continue sends no body after a refusal: close instead.
    answer = rejection(
      start(&machine, head(headers: [("Content-Type", "application/x-protobuf"), ("Expect", "100-continue")])))
    #expect(answer == nil)
    answer = rejection(machine.admissionDecided(.refused(RejectedRequest(.unavailable, "journal is stopping"))))
    #expect(answer?.rejection.status == .serviceUnavailable && answer?.close == true)
    #expect(machine.receivedEnd() == .none)
  }

  @Test func anExpectContinueRequestIsToldToContinueOnceAdmitted() {
    var machine = machine()
    let request = head(
      version: .http1_1, headers: [("Content-Type", "application/x-protobuf"), ("Expect", "100-Continue")])
    #expect(start(&machine, request) == .admit(reserving: 0))
    #expect(machine.admissionDecided(.admitted) == .sendContinue(.http1_1))
  }

  @Test func anOverloadedAdmissionAnswers429WithRetryAfterAndKeepsTheConnection() {
    var machine = machine()
    _ = start(&machine, head(headers: [("Content-Type", "application/x-protobuf"), ("Content-Length", "9")]))
    let answer = rejection(machine.admissionDecided(.overloaded))
    #expect(answer?.rejection.status == .tooManyRequests && answer?.rejection.retryAfterSeconds == 7)
    // Nothing was reserved, so nothing is given back.
    #expect(answer?.close == false && answer?.release == 0)
  }

  @Test func malformedHTTPClosesAndGivesTheReservationBack() {
    var machine = machine()
    _ = start(&machine, head(headers: [("Content-Type", "application/x-protobuf"), ("Content-Length", "9")]))
    _ = machine.admissionDecided(.admitted)
    #expect(machine.malformedRequest() == .closeMalformed(signal: .traces, release: 9))
    #expect(machine.receivedEnd() == .none)
    #expect(machine.channelClosed() == .forget(release: 0))

    var idle = self.machine()
    #expect(idle.malformedRequest() == .closeMalformed(signal: nil, release: 0))
  }

  @Test func anUndecodableBodyIsAnsweredOnceAndCloses() {
    var machine = machine()
    _ = start(&machine, head(headers: [("Content-Type", "application/x-protobuf"), ("Content-Length", "9")]))
    _ = machine.admissionDecided(.admitted)
    let undecodable = OTLPHTTPRejection(RejectedRequest(.malformed, "not gzip"), closeConnection: true)
    let answer = rejection(machine.bodyUndecodable(undecodable))
    #expect(answer?.rejection == undecodable && answer?.close == true && answer?.release == 9)
    // The decompressor may report again for the same body: the answer is already on its way.
    #expect(machine.bodyUndecodable(undecodable) == .none)
    // Outside a body, a decompression error just closes.
    var idle = self.machine()
    #expect(idle.bodyUndecodable(undecodable) == .closeAfterError(release: 0))
  }

  @Test func aJournalFailureIsAnsweredWithItsStatusAndClosesWhenItMust() {
    var machine = machine()
    _ = start(&machine, head(headers: [("Content-Type", "application/x-protobuf")]))
    _ = machine.admissionDecided(.admitted)
    guard case .export(let export) = machine.receivedEnd() else {
      Issue.record("no export")
      return
    }
    let full = RejectedRequest(.unavailable, "journal disk bound reached", retryAfterSeconds: 5)
    guard case .respond(let response) = machine.exportFinished(id: export.id, result: .failure(full)) else {
      Issue.record("no response")
      return
    }
    #expect(response.outcome == .rejected(OTLPHTTPRejection(full)) && !response.close)
    #expect(machine.bytesReceived() == .armReadDeadline)

    // An HTTP/1.0 client without keep-alive is answered, then the connection closes.
    _ = machine.receivedHead(head(version: .http1_0), maxRequestBytes: Self.limit)
    _ = machine.admissionDecided(.admitted)
    guard case .export(let second) = machine.receivedEnd() else {
      Issue.record("no export")
      return
    }
    let failed = RejectedRequest(.internalError, "journal write failed")
    #expect(
      machine.exportFinished(id: second.id, result: .failure(failed))
        == .respond(
          Machine.Response(
            outcome: .rejected(OTLPHTTPRejection(failed)), signal: .traces, encoding: .protobuf, version: .http1_0,
            close: true)))
    #expect(machine.bytesReceived() == .none)
  }

  @Test func theConnectionClosingMidRequestGivesTheReservationBackOnce() {
    var machine = machine()
    _ = start(&machine, head(headers: [("Content-Type", "application/x-protobuf"), ("Content-Length", "100")]))
    _ = machine.admissionDecided(.admitted)
    #expect(machine.receivedBody(bytes(40)) == .none)
    #expect(machine.channelClosed() == .forget(release: 100))
    // Removing the handler after the channel closed gives nothing back a second time.
    #expect(machine.channelClosed() == .forget(release: 0))
    #expect(machine.receivedBody(bytes(40)) == .none)
    #expect(machine.receivedEnd() == .none)
    #expect(machine.deadlinePassed() == .none)
  }

  @Test func theConnectionClosingDuringAnExportLeavesTheReservationToTheCompletion() {
    var machine = machine()
    _ = start(&machine, head(headers: [("Content-Type", "application/x-protobuf"), ("Content-Length", "3")]))
    _ = machine.admissionDecided(.admitted)
    _ = machine.receivedBody(bytes(3))
    guard case .export(let export) = machine.receivedEnd() else {
      Issue.record("no export")
      return
    }
    #expect(machine.channelClosed() == .forget(release: 0))
    #expect(machine.exportFinished(id: export.id, result: .success(Self.receipt)) == .none)
  }

  @Test func theReadDeadlineAnswers408WhileReceivingAndClosesWhileDiscarding() {
    var machine = machine()
    #expect(machine.bytesReceived() == .armReadDeadline)
    #expect(machine.deadlinePassed() == .answerTimeoutAndClose(signal: nil, release: 0))

    var receiving = self.machine()
    _ = start(&receiving, head(headers: [("Content-Type", "application/x-protobuf"), ("Content-Length", "6")]))
    _ = receiving.admissionDecided(.admitted)
    #expect(receiving.deadlinePassed() == .answerTimeoutAndClose(signal: .traces, release: 6))

    var discarding = self.machine()
    _ = start(&discarding, head("/nowhere"))
    #expect(discarding.deadlinePassed() == .closeDiscarding)
  }

  @Test func aSecondHeadWhileARequestIsOpenIsIgnored() {
    var machine = machine()
    _ = start(&machine, head())
    _ = machine.admissionDecided(.admitted)
    #expect(machine.receivedHead(head(), maxRequestBytes: Self.limit) == .none)
    #expect(machine.connectionFailed() == .closeAfterError(release: 0))
  }
}
