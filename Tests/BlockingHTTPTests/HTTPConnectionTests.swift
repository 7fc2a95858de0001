import Foundation
import Testing

@testable import BlockingHTTP

/// A one-connection HTTP server on 127.0.0.1 that reads one request (head and `Content-Length`
/// body) and writes a scripted answer, so the client is tested against real sockets.
final class ScriptedServer: @unchecked Sendable {
  // @unchecked: `received` is written by the server thread before `done` is signalled and read after.
  let port: Int
  private let listener: Int32
  private let done = DispatchSemaphore(value: 0)
  private(set) var received: [UInt8] = []

  /// `answer` is written once the whole request is read; `closeAfter` closes the connection then.
  init(answer: [UInt8], closeAfter: Bool = false, readRequest: Bool = true, ipv6: Bool = false) throws {
    let listener = socket(ipv6 ? AF_INET6 : AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    self.listener = listener
    var (storage, length) = loopback(ipv6: ipv6, port: 0)
    let bound = withUnsafePointer(to: &storage) {
      $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(listener, $0, length) }
    }
    guard bound == 0, listen(listener, 4) == 0 else { throw POSIXError(.EADDRNOTAVAIL) }
    _ = withUnsafeMutablePointer(to: &storage) {
      $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(listener, $0, &length) }
    }
    // The port sits at the same place in both address forms.
    port = Int(UInt16(bigEndian: withUnsafeBytes(of: storage) { $0.load(fromByteOffset: 2, as: UInt16.self) }))
    Thread.detachNewThread { [self] in
      let client = accept(listener, nil, nil)
      defer {
        close(client)
        done.signal()
      }
      guard client >= 0 else { return }
      if readRequest { received = Self.readRequest(client) }
      answer.withUnsafeBytes { _ = send(client, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
      if !closeAfter { Thread.sleep(forTimeInterval: 1.5) }
    }
  }

  deinit { close(listener) }

  /// Waits for the server thread to finish.
  func finish() { done.wait() }

  private static func readRequest(_ client: Int32) -> [UInt8] {
    var bytes: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 65536)
    while true {
      if let end = HTTPConnection.find([13, 10, 13, 10], in: bytes, from: 0) {
        let head = String(decoding: bytes[..<end], as: UTF8.self).lowercased()
        let length =
          head.split(separator: "\r\n").first { $0.hasPrefix("content-length:") }
          .flatMap { Int($0.dropFirst("content-length:".count).trimmingCharacters(in: .whitespaces)) } ?? 0
        if bytes.count >= end + 4 + length { return bytes }
      }
      let got = chunk.withUnsafeMutableBytes { recv(client, $0.baseAddress, $0.count, 0) }
      if got <= 0 { return bytes }
      bytes += chunk[0..<got]
    }
  }
}

@Suite struct HTTPConnectionTests {

  func exchange(_ server: ScriptedServer, body: [UInt8] = Array("payload".utf8), ipv6: Bool = false) throws
    -> HTTPResponse
  {
    let deadline = HTTPConnection.monotonicMillis() + 1000
    var (storage, length) = loopback(ipv6: ipv6, port: server.port)
    let connection = try withUnsafePointer(to: &storage) { pointer throws(HTTPConnectionFailure) in
      try pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { address throws(HTTPConnectionFailure) in
        try HTTPConnection(address: address, length: length, deadline: deadline, maxKeptBody: 1 << 20)
      }
    }
    let head = Array("POST /v1/traces HTTP/1.1\r\nHost: x\r\nContent-Length: \(body.count)\r\n\r\n".utf8)
    return try body.withUnsafeBytes { raw throws(HTTPConnectionFailure) in
      try connection.exchange(head: head, body: raw, deadline: deadline)
    }
  }

  @Test func theRequestArrivesAsHeadThenBodyAndALengthDelimitedAnswerIsRead() throws {
    let body = [UInt8]((0..<300_000).map { UInt8(truncatingIfNeeded: $0 &* 31) })
    let server = try ScriptedServer(answer: Array("HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc".utf8))
    let response = try exchange(server, body: body)
    server.finish()
    #expect(response.status == 200 && response.keepAlive && response.body == Array("abc".utf8))
    let head = Array("POST /v1/traces HTTP/1.1\r\nHost: x\r\nContent-Length: \(body.count)\r\n\r\n".utf8)
    #expect(server.received == head + body)
  }

  @Test func ipv6LoopbackWorksToo() throws {
    guard
      let server = try? ScriptedServer(answer: Array("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n".utf8), ipv6: true)
    else { return }  // no IPv6 on this machine
    let response = try exchange(server, ipv6: true)
    server.finish()
    #expect(response.status == 200 && server.received.count > 0)
  }

  @Test func chunkedBodiesWithExtensionsAndTrailersAreReadWhole() throws {
    let answer =
      "HTTP/1.1 400 Bad Request\r\nTransfer-Encoding: chunked\r\n\r\n4;note=x\r\nbad \r\n7\r\nrequest\r\n0\r\nX-Trailer: 1\r\n\r\n"
    let server = try ScriptedServer(answer: Array(answer.utf8))
    let response = try exchange(server)
    server.finish()
    #expect(response.status == 400 && response.body == Array("bad request".utf8) && response.keepAlive)
  }

  @Test func informationalHeadsAreSkippedAndRetryAfterIsKept() throws {
    let answer = "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 503 Busy\r\nRetry-After: 7\r\nContent-Length: 0\r\n\r\n"
    let server = try ScriptedServer(answer: Array(answer.utf8))
    let response = try exchange(server)
    server.finish()
    #expect(response.status == 503 && response.headers["retry-after"] == "7" && response.body.isEmpty)
  }

  @Test func anHTTP10AnswerWithoutLengthIsReadToTheCloseAndEndsTheConnection() throws {
    let server = try ScriptedServer(answer: Array("HTTP/1.0 200 OK\r\n\r\nall of it".utf8), closeAfter: true)
    let response = try exchange(server)
    server.finish()
    #expect(response.status == 200 && !response.keepAlive && response.body == Array("all of it".utf8))
  }

  @Test func aCloseBeforeTheAnswerAndASilentServerAreFailures() throws {
    let closing = try ScriptedServer(answer: [], closeAfter: true)
    #expect(throws: HTTPConnectionFailure.self) { try exchange(closing) }
    closing.finish()
    let silent = try ScriptedServer(answer: [])
    let started = Date()
    #expect(throws: HTTPConnectionFailure.self) { try exchange(silent) }
    #expect(Date().timeIntervalSince(started) >= 0.9, "waited for the deadline")
    silent.finish()
  }

  @Test func aGarbledAnswerIsRefused() throws {
    let server = try ScriptedServer(answer: Array("SSH-2.0-OpenSSH\r\n\r\n".utf8), closeAfter: true)
    #expect(throws: HTTPConnectionFailure.self) { try exchange(server) }
    server.finish()
  }

  @Test func headsAreParsedAsRFC9112Says() throws {
    func head(_ text: String) throws -> HTTPConnection.ResponseHead {
      try HTTPConnection.parseHead(ArraySlice(text.utf8))
    }
    #expect(try head("HTTP/1.1 204 No Content").keepAlive)
    #expect(try !head("HTTP/1.0 200 OK").keepAlive)
    #expect(try head("HTTP/1.0 200 OK\r\nConnection: Keep-Alive").keepAlive)
    #expect(try !head("HTTP/1.1 200 OK\r\nconnection: upgrade, close").keepAlive)
    #expect(try head("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked").chunked)
    #expect(try !head("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip").chunked)
    #expect(try head("HTTP/1.1 200 OK\r\nContent-Length:  12 ").contentLength == 12)
    #expect(throws: HTTPConnectionFailure.self) {
      try head("HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2")
    }
    #expect(throws: HTTPConnectionFailure.self) { try head("HTTP/1.1 200 OK\r\nContent-Length: -1") }
    #expect(throws: HTTPConnectionFailure.self) { try head("HTTP/2 200") }
  }

  @Test func statusLinesAndHeadersAreParsed() throws {
    let head = try HTTPConnection.parseHead(
      ArraySlice("HTTP/1.0 503 Service Unavailable\r\nRetry-After: 2\r\nX-A: 1\r\nx-a: 2\r\n\r\n".utf8))
    #expect(head.status == 503)
    #expect(head.headers["retry-after"] == "2")
    #expect(head.headers["x-a"] == "1")
    #expect(throws: HTTPConnectionFailure.self) {
      try HTTPConnection.parseHead(ArraySlice("SSH-2.0-OpenSSH\r\n\r\n".utf8))
    }
    #expect(throws: HTTPConnectionFailure.self) {
      try HTTPConnection.parseHead(ArraySlice("HTTP/1.1 20 OK\r\n\r\n".utf8))
    }
  }
}

/// The loopback address of either family with `port`, as a C socket address.
func loopback(ipv6: Bool, port: Int) -> (sockaddr_storage, socklen_t) {
  var storage = sockaddr_storage()
  if ipv6 {
    var address = sockaddr_in6()
    address.sin6_family = sa_family_t(AF_INET6)
    address.sin6_port = in_port_t(UInt16(port)).bigEndian
    address.sin6_addr = in6addr_loopback
    withUnsafeBytes(of: address) { source in withUnsafeMutableBytes(of: &storage) { $0.copyMemory(from: source) } }
    return (storage, socklen_t(MemoryLayout<sockaddr_in6>.size))
  }
  var address = sockaddr_in()
  address.sin_family = sa_family_t(AF_INET)
  address.sin_port = in_port_t(UInt16(port)).bigEndian
  address.sin_addr = in_addr(s_addr: UInt32(0x7f00_0001).bigEndian)
  withUnsafeBytes(of: address) { source in withUnsafeMutableBytes(of: &storage) { $0.copyMemory(from: source) } }
  return (storage, socklen_t(MemoryLayout<sockaddr_in>.size))
}
