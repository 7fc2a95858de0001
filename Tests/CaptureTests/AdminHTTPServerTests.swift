import Capture
import EvidenceIO
import Foundation
import Logging
import Manifest
import NIOCore
import NIOPosix
import Synchronization
import Testing

@testable import Incidents
@testable import Receivers

/// Records the requests the admin handler saw.
private final class SeenRequests: Sendable {
  let requests = Mutex<[AdminRequest]>([])
}

@Suite(.serialized, .timeLimit(.minutes(1))) struct AdminHTTPServerTests {
  private static let ok: AdminHTTPServer.Handler = { _ in .text(200, "ok") }

  private func withAdmin(
    options: AdminHTTPServer.Options = .init(port: 0),
    handler: @escaping AdminHTTPServer.Handler,
    _ body: (AdminHTTPServer, Int) async throws -> Void
  ) async throws {
    let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
    let server = AdminHTTPServer(options: options, group: group, logger: Logger(label: "test"), handler: handler)
    let port = try #require(try await server.start().port)
    do {
      try await body(server, port)
    } catch {
      await server.stop()
      try await group.shutdownGracefully()
      throw error
    }
    await server.stop()
    try await group.shutdownGracefully()
  }

  @Test func requestsReachTheHandlerAndItsAnswerIsWritten() async throws {
    let seen = SeenRequests()
    let handler: AdminHTTPServer.Handler = { request in
      seen.requests.withLock { $0.append(request) }
      switch request.path {
      case "/healthz": return .text(200, "ok\n")
      case "/status":
        return AdminResponse(
          status: 503, contentType: "application/json", body: Array("{\"ready\":false}".utf8),
          headers: ["Retry-After": "5"])
      default: return .text(404, "no such endpoint\n")
      }
    }
    try await withAdmin(handler: handler) { _, port in
      let client = try BlockingClient(port: port)
      try client.send(
        Array("GET /healthz?verbose=1&name=a%20b HTTP/1.1\r\nHost: x\r\nX-Test: 1\r\nX-Test: 2\r\n\r\n".utf8)
          + Array("POST /status HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello".utf8)
          + Array("GET /other HTTP/1.1\r\nHost: x\r\n\r\n".utf8))
      let responses = await client.readOffPool(responses: 3)
      #expect(responses.map(\.status) == [200, 503, 404])
      #expect(responses.first?.body == Array("ok\n".utf8))
      #expect(responses.first?.header("Content-Type") == "text/plain; charset=utf-8")
      #expect(responses.dropFirst().first?.header("Retry-After") == "5")
      #expect(responses.dropFirst().first?.header("Content-Type") == "application/json")
      let requests = seen.requests.withLock { $0 }
      #expect(requests.map(\.method) == ["GET", "POST", "GET"])
      #expect(requests.map(\.path) == ["/healthz", "/status", "/other"])
      #expect(requests.first?.query == "verbose=1&name=a%20b")
      #expect(requests.first?.queryValue("name") == "a b")
      #expect(requests.first?.queryValue("verbose") == "1")
      #expect(requests.first?.queryValue("missing") == nil)
      #expect(requests.first?.headers["x-test"] == "1, 2")
      #expect(requests.dropFirst().first?.body == Array("hello".utf8))
    }
  }

  @Test func bodiesOverTheLimitGet413() async throws {
    try await withAdmin(options: .init(port: 0, maxBodyBytes: 1024), handler: Self.ok) { _, port in
      let client = try BlockingClient(port: port)
      try client.send(Array("POST /incident HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n".utf8))
      #expect(await client.readOffPool(responses: 1).map(\.status) == [413])
    }
  }

  @Test func aSlowHandlerDoesNotReorderAnswers() async throws {
    let handler: AdminHTTPServer.Handler = { request in
      if request.path == "/slow" { try? await Task.sleep(for: .milliseconds(200)) }
      return .text(200, request.path)
    }
    try await withAdmin(handler: handler) { _, port in
      let client = try BlockingClient(port: port)
      try client.send(
        Array("GET /slow HTTP/1.1\r\nHost: x\r\n\r\nGET /fast HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".utf8))
      let responses = await client.readOffPool(responses: 2)
      #expect(responses.map { String(decoding: $0.body, as: UTF8.self) } == ["/slow", "/fast"])
      #expect(responses.last?.header("Connection") == "close")
      #expect(await client.waitForCloseOffPool())
    }
  }

  @Test func malformedHTTPGets400() async throws {
    try await withAdmin(handler: Self.ok) { _, port in
      let client = try BlockingClient(port: port)
      try client.send(Array("\u{00}\u{01} nonsense\r\n\r\n".utf8))
      #expect(await client.readOffPool(responses: 1).map(\.status) == [400])
      #expect(await client.waitForCloseOffPool())
    }
  }
}

// MARK: - The authenticated admin API

/// Tokens, an incident manager and a server wired as the capture service wires them: the gate in
/// front of the incident routes (and a stub `/status`, `/seal`).
private struct GuardedAdmin {
  static let aliceToken = "alice-secret-token"
  static let veraToken = "vera-viewer-token"
  let scratch: ScratchDirectory
  let incidents: IncidentManager
  let gate: AdminGate
  let seen: EventBox

  init(maxLookbackNanos: UInt64? = nil) throws {
    scratch = try ScratchDirectory()
    incidents = try IncidentManager(dataDirectory: scratch.path, maxLookbackNanos: maxLookbackNanos)
    let tokens = AdminTokens(
      path: "test",
      entries: [
        .init(name: "alice", role: .responder, digest: SHA256Digest.of(Array(Self.aliceToken.utf8))),
        .init(name: "vera", role: .viewer, digest: SHA256Digest.of(Array(Self.veraToken.utf8))),
      ])
    let seen = EventBox()
    gate = AdminGate(
      tokens: tokens, listenHost: "127.0.0.1", hostNames: ["capture.example.internal"],
      events: AdminEventLog(logger: Logger(label: "test"), sink: { event in seen.events.withLock { $0.append(event) } })
    )
    self.seen = seen
  }

  var handler: AdminHTTPServer.Handler {
    let gate = gate
    let incidents = incidents
    return { request in
      await gate.handle(request) { principal in
        if request.path.hasPrefix("/incidents") {
          return IncidentRoutes(incidents: incidents).handle(request, principal: principal)
        }
        return .text(200, "ok \(principal.name)\n")
      }
    }
  }

  /// The incident log's lines, parsed.
  func logLines() throws -> [[String: Any]] {
    guard let text = try? String(contentsOfFile: incidents.log.path, encoding: .utf8) else { return [] }
    return try text.split(separator: "\n").map {
      try #require(try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any])
    }
  }
}

private final class EventBox: Sendable {
  let events = Mutex<[AdminEvent]>([])
}

private func request(
  _ method: String, _ path: String, token: String?, contentType: String? = "application/json", body: String = "",
  extra: [(String, String)] = []
) -> [UInt8] {
  var headers = extra
  if let token { headers.append(("Authorization", "Bearer \(token)")) }
  return HTTPText.request(method, path: path, contentType: contentType, headers: headers, body: Array(body.utf8))
}

@Suite(.serialized, .timeLimit(.minutes(1))) struct AdminAuthorizationTests {
  private func exchange(_ admin: GuardedAdmin, options: AdminHTTPServer.Options = .init(port: 0), _ bytes: [UInt8])
    async throws -> ParsedResponse
  {
    let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
    let server = AdminHTTPServer(options: options, group: group, logger: Logger(label: "test"), handler: admin.handler)
    let port = try #require(try await server.start().port)
    let client = try BlockingClient(port: port)
    try client.send(bytes)
    let response = await client.readOffPool(responses: 1).first
    await server.stop()
    try await group.shutdownGracefully()
    return try #require(response)
  }

  @Test func noTokenOrAnUnknownOneGets401WithWWWAuthenticate() async throws {
    let admin = try GuardedAdmin()
    let body = #"{"reason":"r","id":"INC-1"}"#
    for token in [nil, "wrong-token"] as [String?] {
      let response = try await exchange(admin, request("POST", "/incidents", token: token, body: body))
      #expect(response.status == 401)
      #expect(response.header("WWW-Authenticate")?.hasPrefix("Bearer") == true)
    }
    let malformed = try await exchange(
      admin, request("GET", "/status", token: nil, extra: [("Authorization", "Basic YWxpY2U6eA==")]))
    #expect(malformed.status == 401)
    #expect(admin.incidents.list().isEmpty)
    let refusals = admin.seen.events.withLock { $0 }
    #expect(refusals.count == 3)
    #expect(refusals.allSatisfy { $0.principal == nil && $0.peer.hasPrefix("127.0.0.1:") })
    #expect(refusals.first?.outcome == .refused(status: 401, reason: "no Authorization header"))
  }

  @Test func rolesLimitWhatAPrincipalMayDo() async throws {
    let admin = try GuardedAdmin()
    let start = #"{"reason":"r","id":"INC-1"}"#
    let viewerStart = try await exchange(
      admin, request("POST", "/incidents", token: GuardedAdmin.veraToken, body: start))
    #expect(viewerStart.status == 403)
    #expect(String(decoding: viewerStart.body, as: UTF8.self).contains("needs role responder"))
    #expect(try await exchange(admin, request("POST", "/seal", token: GuardedAdmin.veraToken)).status == 403)
    #expect(admin.incidents.list().isEmpty)
    #expect(try await exchange(admin, request("GET", "/incidents", token: GuardedAdmin.veraToken)).status == 200)
    #expect(try await exchange(admin, request("GET", "/status", token: GuardedAdmin.veraToken)).status == 200)
    let started = try await exchange(admin, request("POST", "/incidents", token: GuardedAdmin.aliceToken, body: start))
    #expect(started.status == 201)
    let viewerStop = try await exchange(
      admin, request("POST", "/incidents/INC-1/stop", token: GuardedAdmin.veraToken, body: "{}"))
    #expect(viewerStop.status == 403)
    #expect(admin.incidents.incident(id: "INC-1")?.state == .active)
    #expect(admin.seen.events.withLock { $0 }.last?.principal == "vera")
  }

  @Test func aStateChangeThatIsNotJSONGets415() async throws {
    let admin = try GuardedAdmin()
    for contentType in ["text/plain", "application/x-www-form-urlencoded", nil] as [String?] {
      let response = try await exchange(
        admin,
        request(
          "POST", "/incidents", token: GuardedAdmin.aliceToken, contentType: contentType,
          body: #"{"reason":"r"}"#))
      #expect(response.status == 415)
    }
    #expect(
      try await exchange(
        admin,
        request(
          "POST", "/incidents", token: GuardedAdmin.aliceToken, contentType: "application/json; charset=utf-8",
          body: #"{"reason":"r"}"#)
      ).status == 201)
    #expect(admin.incidents.list().count == 1)
  }

  @Test func anyOriginHeaderIsRefusedEvenWithAToken() async throws {
    let admin = try GuardedAdmin()
    let response = try await exchange(
      admin,
      request(
        "POST", "/incidents", token: GuardedAdmin.aliceToken, contentType: "text/plain", body: #"{"reason":"r"}"#,
        extra: [("Origin", "http://evil.example")]))
    #expect(response.status == 403)
    let withJSON = try await exchange(
      admin,
      request(
        "POST", "/incidents", token: GuardedAdmin.aliceToken, body: #"{"reason":"r"}"#,
        extra: [("Origin", "http://127.0.0.1:4320")]))
    #expect(withJSON.status == 403)
    #expect(admin.incidents.list().isEmpty)
  }

  @Test func aForeignHostIsRefusedAndKnownNamesAreServed() async throws {
    let admin = try GuardedAdmin()
    func get(host: String) -> [UInt8] {
      Array("GET /status HTTP/1.1\r\nHost: \(host)\r\nAuthorization: Bearer \(GuardedAdmin.veraToken)\r\n\r\n".utf8)
    }
    #expect(try await exchange(admin, get(host: "evil.example:4320")).status == 421)
    #expect(try await exchange(admin, get(host: "127.0.0.1.evil.example")).status == 421)
    for host in ["127.0.0.1:4320", "localhost", "LOCALHOST:1", "[::1]:4320", "capture.example.internal:4320"] {
      #expect(try await exchange(admin, get(host: host)).status == 200, "Host \(host)")
    }
    let noHost = Array("GET /status HTTP/1.0\r\nAuthorization: Bearer \(GuardedAdmin.veraToken)\r\n\r\n".utf8)
    #expect(try await exchange(admin, noHost).status == 421)
  }

  @Test func healthAndReadinessStayOpenThroughTheImmediateHandler() async throws {
    let admin = try GuardedAdmin()
    let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
    let server = AdminHTTPServer(
      options: .init(port: 0), group: group, logger: Logger(label: "test"),
      immediate: { $0.path == "/healthz" ? .text(200, "ok\n") : nil }, handler: admin.handler)
    let port = try #require(try await server.start().port)
    let client = try BlockingClient(port: port)
    try client.send(Array("GET /healthz HTTP/1.1\r\nHost: anything\r\n\r\n".utf8))
    #expect(await client.readOffPool(responses: 1).map(\.status) == [200])
    await server.stop()
    try await group.shutdownGracefully()
  }

  @Test func aSlowClientIsCutOffAtTheRequestDeadline() async throws {
    let admin = try GuardedAdmin()
    let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
    let server = AdminHTTPServer(
      options: .init(port: 0, idleTimeout: .seconds(30), requestDeadline: .milliseconds(300)), group: group,
      logger: Logger(label: "test"), handler: admin.handler)
    let port = try #require(try await server.start().port)
    let client = try BlockingClient(port: port)
    let started = ContinuousClock.now
    // Headers trickled in, one piece every 100 ms: the idle timeout alone would never fire.
    try client.send(Array("POST /incidents HTTP/1.1\r\n".utf8))
    for _ in 0..<5 {
      try await Task.sleep(for: .milliseconds(100))
      try? client.send(Array("X-Slow: 1\r\n".utf8))
    }
    let responses = await client.readOffPool(responses: 1)
    #expect(responses.map(\.status) == [408])
    #expect(await client.waitForCloseOffPool())
    #expect(ContinuousClock.now - started < .seconds(3))
    #expect(admin.incidents.list().isEmpty)
    await server.stop()
    try await group.shutdownGracefully()
  }

  @Test func custodyIsThePrincipalAndTheBodysNameOnlyANote() async throws {
    let admin = try GuardedAdmin()
    let started = try await exchange(
      admin,
      request(
        "POST", "/incidents", token: GuardedAdmin.aliceToken,
        body: #"{"reason":"fraud","id":"INC-7","declaredBy":"mallory"}"#))
    #expect(started.status == 201)
    let stopped = try await exchange(
      admin,
      request("POST", "/incidents/INC-7/stop", token: GuardedAdmin.aliceToken, body: #"{"stoppedBy":"mallory"}"#))
    #expect(stopped.status == 200)
    let lines = try admin.logLines()
    #expect(lines.count == 2)
    #expect(lines.first?["declaredBy"] as? String == "alice")
    #expect(lines.first?["note"] as? String == "mallory")
    #expect(lines.last?["endedBy"] as? String == "alice")
    #expect(lines.last?["stopNote"] as? String == "mallory")
    let reopened = try IncidentManager(dataDirectory: admin.scratch.path)
    #expect(reopened.incident(id: "INC-7")?.declaredBy == "alice")
    #expect(reopened.incident(id: "INC-7")?.note == "mallory")
  }
}

@Suite struct IncidentFieldValidationTests {
  private let alice = AdminPrincipal(name: "alice", role: .responder)

  private func post(_ routes: IncidentRoutes, _ path: String, _ body: String) -> AdminResponse {
    routes.handle(AdminRequest(method: "POST", path: path, body: Array(body.utf8)), principal: alice)
  }

  private func message(_ response: AdminResponse) -> String { String(decoding: response.body, as: UTF8.self) }

  @Test func freeTextIsBoundedAndFreeOfControlCharacters() throws {
    let scratch = try ScratchDirectory()
    let routes = IncidentRoutes(incidents: try IncidentManager(dataDirectory: scratch.path))
    let escape = #"{"reason":"r\u001b[31m","id":"A"}"#
    #expect(post(routes, "/incidents", escape).status == 400)
    let longNote = String(repeating: "m", count: 300)
    let note = post(routes, "/incidents", #"{"reason":"r","id":"A","declaredBy":"\#(longNote)"}"#)
    #expect(note.status == 400 && message(note).contains("256 bytes"))
    #expect(post(routes, "/incidents", #"{"reason":"r","id":"A","declaredBy":7}"#).status == 400)
    let unknown = post(routes, "/incidents", #"{"reason":"r","id":"A","declared_by":"x"}"#)
    #expect(unknown.status == 400 && message(unknown).contains("unknown field declared_by"))
    #expect(post(routes, "/incidents", #"{"reason":"r","id":"A"}"#).status == 201)
    let huge = String(repeating: "x", count: 200_000)
    let stop = post(routes, "/incidents/A/stop", #"{"stoppedBy":"\#(huge)\n\u001b"}"#)
    #expect(stop.status == 400)
    #expect(post(routes, "/incidents/A/stop", #"{"stoppedBy":"a\nb"}"#).status == 400)
    #expect(post(routes, "/incidents/A/stop", #"{"stoppedBy":"bob@laptop"}"#).status == 200)
  }

  @Test func theLookbackIsBoundedByTheRingsAge() throws {
    let scratch = try ScratchDirectory()
    let routes = IncidentRoutes(
      incidents: try IncidentManager(dataDirectory: scratch.path, maxLookbackNanos: 3600 * 1_000_000_000))
    let tooFar = post(routes, "/incidents", #"{"reason":"r","lookback":"2h"}"#)
    #expect(tooFar.status == 400)
    #expect(message(tooFar).contains("max age is 1h"))
    #expect(post(routes, "/incidents", #"{"reason":"r","lookback":"1000000h"}"#).status == 400)
    // Too large for 64-bit nanoseconds: a 400, not a trap.
    #expect(post(routes, "/incidents", #"{"reason":"r","lookback":"100000000h"}"#).status == 400)
    #expect(post(routes, "/incidents", #"{"reason":"r","id":"B","lookback":"60m"}"#).status == 201)
  }
}
