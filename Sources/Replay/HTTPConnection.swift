#if canImport(Glibc)
  import Glibc
#elseif canImport(Musl)
  import Musl
#endif

/// Why an exchange on an ``HTTPConnection`` failed. Every case is worth a new connection and
/// another attempt: the endpoint did not give a usable answer.
struct HTTPConnectionFailure: Error, CustomStringConvertible {
  let description: String
  init(_ description: String) { self.description = description }
}

/// An HTTP/1.1 response, as replay needs it.
struct HTTPResponse {
  var status: Int
  /// Whether the connection may carry the next request.
  var keepAlive: Bool
  var retryAfter: String?
  /// The body, cut at ``HTTPConnection/maxKeptBody`` bytes (the rest is read and dropped).
  var body: [UInt8]
}

/// One HTTP/1.1 client connection on a socket of its own, used by one thread at a time.
///
/// Replay sends hundreds of megabytes to a local endpoint, so the request body goes from the
/// decompressed segment to the kernel in one `sendmsg` with the head, never copied into a
/// buffer of its own, and the calling thread waits in `poll` for the answer: no event loop, no
/// thread hop per request. Every wait has the connection's deadline.
final class HTTPConnection {
  /// Error bodies are kept only this long; success bodies are small OTLP responses.
  static let maxKeptBody = 1 << 20
  /// A response head longer than this is refused (the endpoint is not speaking OTLP/HTTP).
  static let maxHead = 64 << 10

  private let descriptor: Int32
  private let timeoutMillis: Int32
  /// Bytes read but not yet parsed; `inboxStart` is where the unparsed part begins.
  private var inbox: [UInt8] = []
  private var inboxStart = 0
  /// What one `recv` reads into, allocated once per connection.
  private var receiveBuffer = [UInt8](repeating: 0, count: 64 << 10)

  /// Connects to `address:port` within `timeoutSeconds`.
  init(address: IPAddress, port: Int, timeoutSeconds: Int64) throws(HTTPConnectionFailure) {
    timeoutMillis = Int32(clamping: max(timeoutSeconds, 1) * 1000)
    var storage = sockaddr_storage()
    let length: socklen_t
    let family: Int32
    switch address {
    case .v4(let value):
      family = AF_INET
      var socketAddress = sockaddr_in()
      socketAddress.sin_family = sa_family_t(AF_INET)
      socketAddress.sin_port = in_port_t(UInt16(truncatingIfNeeded: port)).bigEndian
      socketAddress.sin_addr = in_addr(s_addr: value.bigEndian)
      withUnsafeBytes(of: socketAddress) { source in
        withUnsafeMutableBytes(of: &storage) { $0.copyMemory(from: source) }
      }
      length = socklen_t(MemoryLayout<sockaddr_in>.size)
    case .v6(let bytes):
      family = AF_INET6
      var socketAddress = sockaddr_in6()
      socketAddress.sin6_family = sa_family_t(AF_INET6)
      socketAddress.sin6_port = in_port_t(UInt16(truncatingIfNeeded: port)).bigEndian
      withUnsafeMutableBytes(of: &socketAddress.sin6_addr) { $0.copyBytes(from: bytes.prefix(16)) }
      withUnsafeBytes(of: socketAddress) { source in
        withUnsafeMutableBytes(of: &storage) { $0.copyMemory(from: source) }
      }
      length = socklen_t(MemoryLayout<sockaddr_in6>.size)
    }
    let fd = socket(
      family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
    guard fd >= 0 else { throw HTTPConnectionFailure("socket: \(Self.errnoText())") }
    descriptor = fd
    var one: Int32 = 1
    _ = setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
    let connected = withUnsafePointer(to: &storage) { pointer in
      pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, length) }
    }
    if connected != 0 {
      guard errno == EINPROGRESS else {
        let why = Self.errnoText()
        closeDescriptor(fd)
        throw HTTPConnectionFailure("connect: \(why)")
      }
      do {
        try wait(for: Int16(POLLOUT), deadline: deadline())
      } catch {
        closeDescriptor(fd)
        throw HTTPConnectionFailure("connect: \(error.description)")
      }
      var failure: Int32 = 0
      var size = socklen_t(MemoryLayout<Int32>.size)
      _ = getsockopt(fd, SOL_SOCKET, SO_ERROR, &failure, &size)
      guard failure == 0 else {
        closeDescriptor(fd)
        throw HTTPConnectionFailure("connect: \(String(cString: strerror(failure)))")
      }
    }
  }

  deinit { closeDescriptor(descriptor) }

  /// Sends `head` and `body` as one request and reads the final response to it.
  func exchange(head: [UInt8], body: UnsafeRawBufferPointer) throws(HTTPConnectionFailure) -> HTTPResponse {
    let deadline = deadline()
    do {
      try send(head: head, body: body, deadline: deadline)
    } catch {
      // An endpoint may answer (413, 400) and close before it read the whole body; that answer
      // is the outcome, when it arrived complete.
      if let early = try? readResponse(deadline: Self.monotonicMillis()) { return early }
      throw error
    }
    return try readResponse(deadline: deadline)
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
        guard errno == EAGAIN || errno == EWOULDBLOCK else { throw HTTPConnectionFailure("send: \(Self.errnoText())") }
        try wait(for: Int16(POLLOUT), deadline: deadline)
        continue
      }
      let fromHead = min(sent, head.count - headSent)
      headSent += fromHead
      bodySent += sent - fromHead
    }
  }

  /// Reads one final response (1xx heads are skipped).
  private func readResponse(deadline: Int64) throws(HTTPConnectionFailure) -> HTTPResponse {
    while true {
      let head = try Self.parseHead(readHead(deadline: deadline))
      if head.status < 200 { continue }
      var response = HTTPResponse(status: head.status, keepAlive: head.keepAlive, retryAfter: head.retryAfter, body: [])
      if head.status == 204 || head.status == 304 {
        // No body, whatever the head says.
      } else if head.chunked {
        response.body = try readChunkedBody(deadline: deadline)
      } else if let length = head.contentLength {
        response.body = try readBody(length: length, deadline: deadline)
      } else {
        response.keepAlive = false
        response.body = try readUntilClose(deadline: deadline)
      }
      compactInbox()
      return response
    }
  }

  /// What a response head says.
  struct ResponseHead: Equatable {
    var status: Int
    var keepAlive: Bool
    var retryAfter: String?
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
        throw HTTPConnectionFailure("response head longer than \(Self.maxHead) bytes")
      }
      searched = inbox.count
      guard try fill(deadline: deadline) else {
        throw HTTPConnectionFailure("connection closed before the response")
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
          throw HTTPConnectionFailure("connection closed inside the response body")
        }
      }
      let take = min(left, inbox.count - inboxStart)
      let keep = min(take, Self.maxKeptBody - kept.count)
      if keep > 0 { kept.append(contentsOf: inbox[inboxStart..<(inboxStart + keep)]) }
      inboxStart += take
      left -= take
    }
    return kept
  }

  private func readChunkedBody(deadline: Int64) throws(HTTPConnectionFailure) -> [UInt8] {
    var kept: [UInt8] = []
    while true {
      let line = try readLine(deadline: deadline)
      let sizeText = line.prefix { $0 != UInt8(ascii: ";") }
      guard let size = Int(String(decoding: Self.trimmed(sizeText), as: UTF8.self), radix: 16), size >= 0 else {
        throw HTTPConnectionFailure("response has an invalid chunk size")
      }
      if size == 0 {
        // Trailer fields, up to the empty line.
        while try !readLine(deadline: deadline).isEmpty {}
        return kept
      }
      let chunk = try readBody(length: size, deadline: deadline)
      kept.append(contentsOf: chunk.prefix(Self.maxKeptBody - kept.count))
      guard try readLine(deadline: deadline).isEmpty else {
        throw HTTPConnectionFailure("response chunk is not followed by CRLF")
      }
    }
  }

  private func readUntilClose(deadline: Int64) throws(HTTPConnectionFailure) -> [UInt8] {
    var kept: [UInt8] = []
    while true {
      let available = inbox[inboxStart...]
      kept.append(contentsOf: available.prefix(Self.maxKeptBody - kept.count))
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
      guard inbox.count - inboxStart <= Self.maxHead else { throw HTTPConnectionFailure("response line too long") }
      guard try fill(deadline: deadline) else { throw HTTPConnectionFailure("connection closed inside a chunked body") }
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
        throw HTTPConnectionFailure("recv: \(String(cString: strerror(failure)))")
      }
      try wait(for: Int16(POLLIN), deadline: deadline)
    }
  }

  private func compactInbox() {
    if inboxStart == inbox.count {
      inbox.removeAll(keepingCapacity: true)
      inboxStart = 0
    }
  }

  private func wait(for events: Int16, deadline: Int64) throws(HTTPConnectionFailure) {
    while true {
      let left = deadline - Self.monotonicMillis()
      guard left > 0 else { throw HTTPConnectionFailure("no response in time") }
      var entry = pollfd(fd: descriptor, events: events, revents: 0)
      let ready = poll(&entry, 1, Int32(clamping: left))
      if ready > 0 { return }
      if ready < 0 && errno != EINTR { throw HTTPConnectionFailure("poll: \(Self.errnoText())") }
    }
  }

  private func deadline() -> Int64 { Self.monotonicMillis() + Int64(timeoutMillis) }

  static func monotonicMillis() -> Int64 {
    var now = timespec()
    clock_gettime(CLOCK_MONOTONIC, &now)
    return Int64(now.tv_sec) * 1000 + Int64(now.tv_nsec) / 1_000_000
  }

  private static func errnoText() -> String { String(cString: strerror(errno)) }

  /// Reads a response head: status line, then the fields replay needs.
  static func parseHead(_ head: ArraySlice<UInt8>) throws(HTTPConnectionFailure) -> ResponseHead {
    var lines = headerLines(head).makeIterator()
    guard let statusLine = lines.next() else { throw HTTPConnectionFailure("empty response head") }
    let parts = statusLine.split(separator: UInt8(ascii: " "), maxSplits: 2, omittingEmptySubsequences: true)
    guard parts.count >= 2, parts[0].starts(with: "HTTP/1.".utf8), parts[0].count == 8,
      parts[1].count == 3, let status = Int(String(decoding: parts[1], as: UTF8.self)), status >= 100
    else {
      throw HTTPConnectionFailure("not an HTTP/1.x response: \(String(decoding: statusLine.prefix(80), as: UTF8.self))")
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
      } else if name.elementsEqual("retry-after".utf8) {
        result.retryAfter = String(decoding: value, as: UTF8.self)
      } else if name.elementsEqual("content-length".utf8) {
        guard let length = Int(String(decoding: value, as: UTF8.self)), length >= 0,
          result.contentLength == nil || result.contentLength == length
        else { throw HTTPConnectionFailure("response has an invalid Content-Length") }
        result.contentLength = length
      } else if name.elementsEqual("transfer-encoding".utf8) {
        result.chunked = tokens.last?.elementsEqual("chunked".utf8) ?? false
      }
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

private func closeDescriptor(_ fd: Int32) { _ = close(fd) }
private let crlfcrlf: [UInt8] = [13, 10, 13, 10]
