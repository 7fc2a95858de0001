#if canImport(Glibc)
  public import Glibc
#elseif canImport(Musl)
  public import Musl
#endif

/// Why connecting or an exchange on an ``HTTPConnection`` failed. Every case is worth a new
/// connection and another attempt: the endpoint did not give a usable answer.
public struct HTTPConnectionFailure: Error, CustomStringConvertible, Sendable {
  public enum Kind: Sendable, Equatable {
    /// The connection was refused, reset or could not be made.
    case connect
    /// The deadline passed.
    case timeout
    /// The connection broke while sending or receiving.
    case io
    /// The answer was not HTTP/1.x, or broke its own framing.
    case malformedResponse
  }

  public let kind: Kind
  public let description: String

  init(_ kind: Kind, _ description: String) {
    self.kind = kind
    self.description = description
  }
}

/// A final HTTP/1.1 response.
public struct HTTPResponse: Sendable, Equatable {
  public var status: Int
  /// Whether the connection may carry the next request.
  public var keepAlive: Bool
  /// Field names lowercased; a repeated field keeps its first value.
  public var headers: [String: String]
  /// The body, cut at the connection's `maxKeptBody` bytes.
  public var body: [UInt8]

  public init(status: Int, keepAlive: Bool, headers: [String: String], body: [UInt8]) {
    self.status = status
    self.keepAlive = keepAlive
    self.headers = headers
    self.body = body
  }
}

/// One HTTP/1.1 client connection on a socket of its own, used by one thread at a time.
///
/// Why blocking: its callers (a webhook's own thread, a replay lane) send one request at a time
/// and wait for the answer, so a straight line of `sendmsg`, `poll` and `recv` is both the
/// cheapest and the easiest to audit. The request body goes to the kernel from where the caller
/// holds it, in one `sendmsg` with the head, never copied into a buffer of its own. The socket is
/// non-blocking underneath, so every wait is a `poll` against the caller's deadline.
public final class HTTPConnection {
  /// A response head longer than this is refused.
  public static let maxHead = 64 << 10

  private let descriptor: Int32
  /// Body bytes kept per response; the rest is read (or, with `readWholeBody: false`, left).
  private let maxKeptBody: Int
  /// Bytes read but not yet parsed; `inboxStart` is where the unparsed part begins.
  private var inbox: [UInt8] = []
  private var inboxStart = 0
  /// What one `recv` reads into, allocated once per connection.
  private var receiveBuffer = [UInt8](repeating: 0, count: 64 << 10)

  /// Connects to the socket address `address` (`length` bytes) before `deadline`
  /// (``monotonicMillis()``), with `TCP_NODELAY`.
  public init(address: UnsafePointer<sockaddr>, length: socklen_t, deadline: Int64, maxKeptBody: Int)
    throws(HTTPConnectionFailure)
  {
    self.maxKeptBody = maxKeptBody
    // The descriptor is stored only once connected: a failed initializer that had stored it
    // would run `deinit`, and a second `close` could hit a number another thread reuses.
    descriptor = try Self.connected(to: address, length: length, deadline: deadline)
  }

  /// A connected non-blocking socket, or a failure with nothing left open.
  private static func connected(to address: UnsafePointer<sockaddr>, length: socklen_t, deadline: Int64)
    throws(HTTPConnectionFailure) -> Int32
  {
    let fd = socket(
      Int32(address.pointee.sa_family),
      Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
    guard fd >= 0 else { throw HTTPConnectionFailure(.connect, "socket: \(errnoText())") }
    var one: Int32 = 1
    _ = setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
    if connect(fd, address, length) != 0 {
      guard errno == EINPROGRESS else {
        let why = errnoText()
        closeDescriptor(fd)
        throw HTTPConnectionFailure(.connect, "connect: \(why)")
      }
      do {
        try wait(fd, for: Int16(POLLOUT), deadline: deadline)
      } catch {
        closeDescriptor(fd)
        throw HTTPConnectionFailure(error.kind, "connect: \(error.description)")
      }
      var failure: Int32 = 0
      var size = socklen_t(MemoryLayout<Int32>.size)
      _ = getsockopt(fd, SOL_SOCKET, SO_ERROR, &failure, &size)
      guard failure == 0 else {
        closeDescriptor(fd)
        throw HTTPConnectionFailure(.connect, "connect: \(String(cString: strerror(failure)))")
      }
    }
    return fd
  }

  deinit { closeDescriptor(descriptor) }

  /// Sends `head` and `body` as one request and reads the final response to it, all before
  /// `deadline` (``monotonicMillis()``).
  /// - Parameter readWholeBody: `false` when the connection is not used again: reading stops
  ///   once the kept part of the body is in.
  public func exchange(head: [UInt8], body: UnsafeRawBufferPointer, deadline: Int64, readWholeBody: Bool = true)
    throws(HTTPConnectionFailure) -> HTTPResponse
  {
    do {
      try send(head: head, body: body, deadline: deadline)
    } catch {
      // An endpoint may answer (413, 400) and close before it read the whole body; that answer
      // is the outcome, when it arrived complete.
      if let early = try? readResponse(deadline: Self.monotonicMillis(), readWholeBody: readWholeBody) {
        return early
      }
      throw error
    }
    return try readResponse(deadline: deadline, readWholeBody: readWholeBody)
  }

  private func send(head: [UInt8], body: UnsafeRawBufferPointer, deadline: Int64) throws(HTTPConnectionFailure) {
    var headSent = 0
    var bodySent = 0
    while headSent < head.count || bodySent < body.count {
      let sent = head.withUnsafeBytes { headBytes -> Int in
        var parts = [
          iovec(
            iov_base: UnsafeMutableRawPointer(mutating: headBytes.baseAddress.map { $0 + headSent }),
            iov_len: headBytes.count - headSent),
          iovec(
            iov_base: UnsafeMutableRawPointer(mutating: body.baseAddress.map { $0 + bodySent }),
            iov_len: body.count - bodySent),
        ]
        return parts.withUnsafeMutableBufferPointer { vectors in
          var message = msghdr()
          message.msg_iov = vectors.baseAddress
          message.msg_iovlen = vectors.count
          return sendmsg(descriptor, &message, Int32(MSG_NOSIGNAL))
        }
      }
      if sent < 0 {
        if errno == EINTR { continue }
        guard errno == EAGAIN || errno == EWOULDBLOCK else {
          throw HTTPConnectionFailure(.io, "send: \(Self.errnoText())")
        }
        try Self.wait(descriptor, for: Int16(POLLOUT), deadline: deadline)
        continue
      }
      let fromHead = min(sent, head.count - headSent)
      headSent += fromHead
      bodySent += sent - fromHead
    }
  }

  /// Reads one final response (1xx heads are skipped).
  private func readResponse(deadline: Int64, readWholeBody: Bool) throws(HTTPConnectionFailure) -> HTTPResponse {
    while true {
      let head = try Self.parseHead(readHead(deadline: deadline))
      if head.status < 200 { continue }
      var response = HTTPResponse(status: head.status, keepAlive: head.keepAlive, headers: head.headers, body: [])
      // Reading stops at the kept part only when nothing else will use the connection.
      let limit = readWholeBody ? Int.max : maxKeptBody
      if head.status == 204 || head.status == 304 {
        // No body, whatever the head says.
      } else if head.chunked {
        response.body = try readChunkedBody(deadline: deadline, stopAfter: limit)
      } else if let length = head.contentLength {
        response.body = try readBody(length: min(length, limit), deadline: deadline)
      } else {
        response.keepAlive = false
        response.body = try readUntilClose(deadline: deadline, stopAfter: limit)
      }
      if !readWholeBody { response.keepAlive = false }
      compactInbox()
      return response
    }
  }

  /// What a response head says.
  struct ResponseHead: Equatable {
    var status: Int
    var keepAlive: Bool
    var headers: [String: String] = [:]
    var contentLength: Int?
    var chunked = false
  }

  /// The bytes of the next head, without its final empty line.
  private func readHead(deadline: Int64) throws(HTTPConnectionFailure) -> ArraySlice<UInt8> {
    var searched = inboxStart
    while true {
      if let end = Self.find(crlfcrlf, in: inbox, from: max(inboxStart, searched - 3)) {
        let bytes = inbox[inboxStart..<end]
        inboxStart = end + 4
        return bytes
      }
      guard inbox.count - inboxStart <= Self.maxHead else {
        throw HTTPConnectionFailure(.malformedResponse, "response head longer than \(Self.maxHead) bytes")
      }
      searched = inbox.count
      guard try fill(deadline: deadline) else {
        throw HTTPConnectionFailure(.io, "connection closed before the response")
      }
    }
  }

  private func readBody(length: Int, deadline: Int64) throws(HTTPConnectionFailure) -> [UInt8] {
    var kept: [UInt8] = []
    var left = length
    while left > 0 {
      if inbox.count == inboxStart {
        compactInbox()
        guard try fill(deadline: deadline) else {
          throw HTTPConnectionFailure(.io, "connection closed inside the response body")
        }
      }
      let take = min(left, inbox.count - inboxStart)
      let keep = min(take, maxKeptBody - kept.count)
      if keep > 0 { kept.append(contentsOf: inbox[inboxStart..<(inboxStart + keep)]) }
      inboxStart += take
      left -= take
    }
    return kept
  }

  private func readChunkedBody(deadline: Int64, stopAfter limit: Int) throws(HTTPConnectionFailure) -> [UInt8] {
    var kept: [UInt8] = []
    while kept.count < limit {
      let line = try readLine(deadline: deadline)
      let sizeText = line.prefix { $0 != UInt8(ascii: ";") }
      guard let size = Int(String(decoding: Self.trimmed(sizeText), as: UTF8.self), radix: 16), size >= 0 else {
        throw HTTPConnectionFailure(.malformedResponse, "response has an invalid chunk size")
      }
      if size == 0 {
        // Trailer fields, up to the empty line.
        while try !readLine(deadline: deadline).isEmpty {}
        return kept
      }
      let chunk = try readBody(length: size, deadline: deadline)
      kept.append(contentsOf: chunk.prefix(maxKeptBody - kept.count))
      guard try readLine(deadline: deadline).isEmpty else {
        throw HTTPConnectionFailure(.malformedResponse, "response chunk is not followed by CRLF")
      }
    }
    return kept
  }

  private func readUntilClose(deadline: Int64, stopAfter limit: Int) throws(HTTPConnectionFailure) -> [UInt8] {
    var kept: [UInt8] = []
    while true {
      let available = inbox[inboxStart...]
      kept.append(contentsOf: available.prefix(maxKeptBody - kept.count))
      if kept.count >= limit { return kept }
      inboxStart = inbox.count
      compactInbox()
      guard try fill(deadline: deadline) else { return kept }
    }
  }

  private func readLine(deadline: Int64) throws(HTTPConnectionFailure) -> ArraySlice<UInt8> {
    while true {
      if let end = Self.find(crlf, in: inbox, from: inboxStart) {
        let line = inbox[inboxStart..<end]
        inboxStart = end + 2
        return line
      }
      guard inbox.count - inboxStart <= Self.maxHead else {
        throw HTTPConnectionFailure(.malformedResponse, "response line too long")
      }
      guard try fill(deadline: deadline) else {
        throw HTTPConnectionFailure(.io, "connection closed inside a chunked body")
      }
    }
  }

  /// Reads what the socket has (waiting until the deadline). Returns `false` at end of stream.
  private func fill(deadline: Int64) throws(HTTPConnectionFailure) -> Bool {
    while true {
      let fd = descriptor
      let got = receiveBuffer.withUnsafeMutableBytes { raw in recv(fd, raw.baseAddress, raw.count, 0) }
      let failure = errno
      if got > 0 {
        inbox.append(contentsOf: receiveBuffer[0..<got])
        return true
      }
      if got == 0 { return false }
      if failure == EINTR { continue }
      guard failure == EAGAIN || failure == EWOULDBLOCK else {
        throw HTTPConnectionFailure(.io, "recv: \(String(cString: strerror(failure)))")
      }
      try Self.wait(descriptor, for: Int16(POLLIN), deadline: deadline)
    }
  }

  private func compactInbox() {
    if inboxStart == inbox.count {
      inbox.removeAll(keepingCapacity: true)
      inboxStart = 0
    }
  }

  private static func wait(_ fd: Int32, for events: Int16, deadline: Int64) throws(HTTPConnectionFailure) {
    while true {
      let left = deadline - monotonicMillis()
      guard left > 0 else { throw HTTPConnectionFailure(.timeout, "no response in time") }
      var entry = pollfd(fd: fd, events: events, revents: 0)
      let ready = poll(&entry, 1, Int32(clamping: left))
      if ready > 0 { return }
      if ready < 0 && errno != EINTR { throw HTTPConnectionFailure(.io, "poll: \(errnoText())") }
    }
  }

  /// `CLOCK_MONOTONIC` in milliseconds: the clock deadlines are given in.
  public static func monotonicMillis() -> Int64 {
    var now = timespec()
    clock_gettime(CLOCK_MONOTONIC, &now)
    return Int64(now.tv_sec) * 1000 + Int64(now.tv_nsec) / 1_000_000
  }

  private static func errnoText() -> String { String(cString: strerror(errno)) }

  /// Reads a response head: status line, framing, keep-alive and every field.
  static func parseHead(_ head: ArraySlice<UInt8>) throws(HTTPConnectionFailure) -> ResponseHead {
    var lines = headerLines(head).makeIterator()
    guard let statusLine = lines.next() else { throw HTTPConnectionFailure(.malformedResponse, "empty response head") }
    let parts = statusLine.split(separator: UInt8(ascii: " "), maxSplits: 2, omittingEmptySubsequences: true)
    guard parts.count >= 2, parts[0].starts(with: "HTTP/1.".utf8), parts[0].count == 8,
      parts[1].count == 3, let status = Int(String(decoding: parts[1], as: UTF8.self)), status >= 100
    else {
      throw HTTPConnectionFailure(
        .malformedResponse, "not an HTTP/1.x response: \(String(decoding: statusLine.prefix(80), as: UTF8.self))")
    }
    var result = ResponseHead(status: status, keepAlive: parts[0].last == UInt8(ascii: "1"))
    while let line = lines.next() {
      guard let colon = line.firstIndex(of: UInt8(ascii: ":")) else { continue }
      let name = lowercased(line[line.startIndex..<colon])
      let value = trimmed(line[(colon + 1)...])
      let tokens = lowercased(value).split(separator: UInt8(ascii: ",")).map(trimmed)
      if name.elementsEqual("connection".utf8) {
        if tokens.contains(where: { $0.elementsEqual("close".utf8) }) { result.keepAlive = false }
        if tokens.contains(where: { $0.elementsEqual("keep-alive".utf8) }) { result.keepAlive = true }
      } else if name.elementsEqual("content-length".utf8) {
        guard let length = Int(String(decoding: value, as: UTF8.self)), length >= 0,
          result.contentLength == nil || result.contentLength == length
        else { throw HTTPConnectionFailure(.malformedResponse, "response has an invalid Content-Length") }
        result.contentLength = length
      } else if name.elementsEqual("transfer-encoding".utf8) {
        result.chunked = tokens.last?.elementsEqual("chunked".utf8) ?? false
      }
      let key = String(decoding: name, as: UTF8.self)
      if result.headers[key] == nil { result.headers[key] = String(decoding: value, as: UTF8.self) }
    }
    return result
  }

  /// The lines of a head, the status line first.
  static func headerLines(_ head: ArraySlice<UInt8>) -> [ArraySlice<UInt8>] {
    var lines: [ArraySlice<UInt8>] = []
    var start = head.startIndex
    var index = head.startIndex
    while index < head.endIndex {
      if head[index] == UInt8(ascii: "\n") {
        let end = index > start && head[index - 1] == UInt8(ascii: "\r") ? index - 1 : index
        lines.append(head[start..<end])
        start = index + 1
      }
      index += 1
    }
    if start < head.endIndex { lines.append(head[start...]) }
    return lines
  }

  static func lowercased(_ bytes: ArraySlice<UInt8>) -> [UInt8] {
    bytes.map { $0 >= UInt8(ascii: "A") && $0 <= UInt8(ascii: "Z") ? $0 | 0x20 : $0 }
  }

  static func trimmed(_ bytes: ArraySlice<UInt8>) -> ArraySlice<UInt8> {
    let isSpace = { (byte: UInt8) in byte == UInt8(ascii: " ") || byte == UInt8(ascii: "\t") }
    var start = bytes.startIndex
    var end = bytes.endIndex
    while start < end && isSpace(bytes[start]) { start += 1 }
    while end > start && isSpace(bytes[end - 1]) { end -= 1 }
    return bytes[start..<end]
  }

  static func find(_ needle: [UInt8], in haystack: [UInt8], from start: Int) -> Int? {
    guard haystack.count >= needle.count, start <= haystack.count - needle.count else { return nil }
    var index = start
    let last = haystack.count - needle.count
    while index <= last {
      if haystack[index] == needle[0] && haystack[index..<(index + needle.count)].elementsEqual(needle) {
        return index
      }
      index += 1
    }
    return nil
  }
}

private let crlf: [UInt8] = [13, 10]
private let crlfcrlf: [UInt8] = [13, 10, 13, 10]

private func closeDescriptor(_ fd: Int32) { _ = close(fd) }
