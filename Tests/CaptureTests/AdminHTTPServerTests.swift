import Capture
import Foundation
import Logging
import NIOCore
import NIOPosix
import Synchronization
import Testing

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
