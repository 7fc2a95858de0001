import Foundation

#if canImport(Glibc)
  import Glibc
#endif

/// The answer to a webhook POST, as far as delivery decisions need it.
struct HookHTTPResponse: Sendable, Equatable {
  var status: Int
  /// Header names lowercased; repeated headers keep the first value.
  var headers: [String: String]
  /// At most ``HookHTTPClient/maxBodyBytes`` of the body, for logs.
  var body: [UInt8]
}

/// Why a POST did not produce a response.
struct HookHTTPError: Error, Sendable, CustomStringConvertible {
  enum Kind: Sendable, Equatable {
    /// Name resolution failed.
    case resolve
    /// The connection was refused, reset or could not be made.
    case connect
    /// The attempt ran past its deadline.
    case timeout
    /// The connection broke while sending or receiving.
    case io
    /// The answer was not HTTP/1.x.
    case malformedResponse
  }

  var kind: Kind
  var message: String
  var description: String { message }
}

/// A small blocking HTTP/1.1 client for webhooks: one POST per connection (`Connection: close`),
/// the whole exchange bounded by one deadline, the answer bounded in size.
///
/// Blocking is deliberate: each hook owns a thread (``NotifyHooks``), so a slow receiver only
/// ever holds up its own hook, and the code stays a straight line that is easy to audit.
/// Sockets are non-blocking underneath so every wait is a `poll` against the deadline.
enum HookHTTPClient {
  /// Largest status line plus headers read.
  static let maxHeaderBytes = 64 << 10
  /// Largest body kept (the rest is not read; the connection is closed anyway).
  static let maxBodyBytes = 4096

  /// Sends `body` as a POST to `url` with `headers` (plus Host, Content-Type, Content-Length,
  /// Connection) and returns the status and headers of the answer.
  static func post(
    url: HookURL, headers: [(name: String, value: String)], body: [UInt8], timeoutMillis: Int
  ) throws(HookHTTPError) -> HookHTTPResponse {
    let deadline = monotonicMillis() + UInt64(max(1, timeoutMillis))
    let fd = try connect(host: url.host, port: url.port, deadline: deadline)
    defer { close(fd) }
    var head = "POST \(url.target) HTTP/1.1\r\nHost: \(url.hostHeader)\r\n"
    head += "User-Agent: stella-forensics-notify\r\nContent-Type: application/json\r\n"
    head += "Content-Length: \(body.count)\r\nConnection: close\r\n"
    for header in headers { head += "\(header.name): \(header.value)\r\n" }
    head += "\r\n"
    try send(fd, Array(head.utf8) + body, deadline: deadline)
    return try readResponse(fd, deadline: deadline)
  }

  // MARK: - Connecting

  private static func connect(host: String, port: Int, deadline: UInt64) throws(HookHTTPError) -> Int32 {
    var hints = addrinfo()
    hints.ai_family = AF_UNSPEC
    hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
    hints.ai_flags = AI_NUMERICSERV
    var list: UnsafeMutablePointer<addrinfo>?
    // getaddrinfo has no timeout of its own; it runs on the hook's thread, so a slow resolver
    // delays only this hook.
    let status = getaddrinfo(host, String(port), &hints, &list)
    guard status == 0, let first = list else {
      let reason = status == 0 ? "no address" : String(cString: gai_strerror(status))
      throw HookHTTPError(kind: .resolve, message: "cannot resolve \(host): \(reason)")
    }
    defer { freeaddrinfo(first) }
    var lastError = HookHTTPError(kind: .connect, message: "no address for \(host)")
    var entry: UnsafeMutablePointer<addrinfo>? = first
    while let current = entry {
      entry = current.pointee.ai_next
      let fd = socket(
        current.pointee.ai_family,
        Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue)
          | Int32(SOCK_CLOEXEC.rawValue), 0)
      guard fd >= 0 else {
        lastError = HookHTTPError(kind: .connect, message: "socket(): \(errnoText())")
        continue
      }
      let result = Glibc.connect(fd, current.pointee.ai_addr, current.pointee.ai_addrlen)
      if result == 0 { return fd }
      guard errno == EINPROGRESS else {
        lastError = HookHTTPError(kind: .connect, message: "connect to \(host):\(port): \(errnoText())")
        close(fd)
        continue
      }
      do {
        try wait(fd, for: Int16(POLLOUT), deadline: deadline, doing: "connecting to \(host):\(port)")
      } catch {
        close(fd)
        // A timeout ends the attempt: the deadline covers every address together.
        if error.kind == .timeout { throw error }
        lastError = error
        continue
      }
      var socketError: Int32 = 0
      var length = socklen_t(MemoryLayout<Int32>.size)
      getsockopt(fd, SOL_SOCKET, SO_ERROR, &socketError, &length)
      if socketError == 0 { return fd }
      lastError = HookHTTPError(
        kind: .connect, message: "connect to \(host):\(port): \(String(cString: strerror(socketError)))")
      close(fd)
    }
    throw lastError
  }

  // MARK: - Sending and receiving

  private static func send(_ fd: Int32, _ bytes: [UInt8], deadline: UInt64) throws(HookHTTPError) {
    var offset = 0
    while offset < bytes.count {
      // MSG_NOSIGNAL: a receiver that hangs up must not raise SIGPIPE in the capture process.
      let sent = bytes.withUnsafeBytes { raw in
        Glibc.send(fd, raw.baseAddress.map { $0 + offset }, bytes.count - offset, Int32(MSG_NOSIGNAL))
      }
      if sent > 0 {
        offset += sent
      } else if sent < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
        try wait(fd, for: Int16(POLLOUT), deadline: deadline, doing: "sending the request")
      } else {
        throw HookHTTPError(kind: .io, message: "sending the request: \(errnoText())")
      }
    }
  }

  /// Reads until the headers are complete, then as much of the body as `Content-Length` says
  /// (or until the peer closes), keeping at most ``maxBodyBytes``.
  private static func readResponse(_ fd: Int32, deadline: UInt64) throws(HookHTTPError) -> HookHTTPResponse {
    var buffer: [UInt8] = []
    var headerEnd: Int?
    var parsed: (status: Int, headers: [String: String])?
    var closed = false
    while true {
      if headerEnd == nil, let end = findHeaderEnd(buffer) {
        headerEnd = end
        parsed = try parseHead(Array(buffer[..<end]))
      }
      if let end = headerEnd, let head = parsed {
        let bodyBytes = buffer.count - end
        let expected = head.headers["content-length"].flatMap { Int($0.trimmingCharacters(in: .whitespaces)) }
        let enough = expected.map { bodyBytes >= min($0, maxBodyBytes) } ?? (bodyBytes >= maxBodyBytes)
        if closed || enough {
          let body = Array(buffer[end..<min(buffer.count, end + min(expected ?? maxBodyBytes, maxBodyBytes))])
          return HookHTTPResponse(status: head.status, headers: head.headers, body: body)
        }
      } else if closed {
        throw HookHTTPError(
          kind: buffer.isEmpty ? .io : .malformedResponse,
          message: buffer.isEmpty
            ? "the receiver closed the connection without answering" : "the answer ended inside its headers")
      } else if buffer.count > maxHeaderBytes {
        throw HookHTTPError(kind: .malformedResponse, message: "the answer's headers exceed \(maxHeaderBytes) bytes")
      }
      var chunk = [UInt8](repeating: 0, count: 16 << 10)
      let count = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
      if count > 0 {
        buffer += chunk[..<count]
      } else if count == 0 {
        closed = true
      } else if errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR {
        try wait(fd, for: Int16(POLLIN), deadline: deadline, doing: "waiting for the answer")
      } else {
        throw HookHTTPError(kind: .io, message: "reading the answer: \(errnoText())")
      }
    }
  }

  private static func findHeaderEnd(_ buffer: [UInt8]) -> Int? {
    guard buffer.count >= 4 else { return nil }
    for index in 0...(buffer.count - 4)
    where buffer[index] == 13 && buffer[index + 1] == 10 && buffer[index + 2] == 13 && buffer[index + 3] == 10 {
      return index + 4
    }
    return nil
  }

  /// Parses `HTTP/1.x NNN reason` and the header lines.
  static func parseHead(_ bytes: [UInt8]) throws(HookHTTPError) -> (status: Int, headers: [String: String]) {
    let text = String(decoding: bytes, as: UTF8.self)
    var lines = text.components(separatedBy: "\r\n")
    let statusLine = lines.removeFirst()
    let parts = statusLine.split(separator: " ", maxSplits: 2, omittingEmptySubsequences: false)
    guard parts.count >= 2, parts[0].hasPrefix("HTTP/1."), parts[1].count == 3, let status = Int(parts[1]),
      (100...599).contains(status)
    else {
      throw HookHTTPError(
        kind: .malformedResponse, message: "not an HTTP/1.x status line: \"\(statusLine.prefix(80))\"")
    }
    var headers: [String: String] = [:]
    for line in lines where !line.isEmpty {
      guard let colon = line.firstIndex(of: ":") else { continue }
      let name = line[..<colon].lowercased()
      if headers[name] == nil {
        headers[name] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
      }
    }
    return (status, headers)
  }

  private static func wait(_ fd: Int32, for events: Int16, deadline: UInt64, doing what: String)
    throws(HookHTTPError)
  {
    while true {
      let now = monotonicMillis()
      guard now < deadline else { throw HookHTTPError(kind: .timeout, message: "timed out \(what)") }
      var entry = pollfd(fd: fd, events: events, revents: 0)
      let ready = poll(&entry, 1, Int32(min(deadline - now, UInt64(Int32.max))))
      if ready > 0 { return }
      if ready < 0 && errno != EINTR {
        throw HookHTTPError(kind: .io, message: "poll while \(what): \(errnoText())")
      }
    }
  }

  static func monotonicMillis() -> UInt64 {
    var spec = timespec()
    clock_gettime(CLOCK_MONOTONIC, &spec)
    return UInt64(spec.tv_sec) * 1000 + UInt64(spec.tv_nsec) / 1_000_000
  }

  private static func errnoText() -> String { String(cString: strerror(errno)) }
}
