import BlockingHTTP
import CodedErrors
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
typealias HookHTTPError = CodedError<HookHTTPErrorCode>

/// The codes of ``HookHTTPError``: what kind of failure it is.
enum HookHTTPErrorCode: Sendable, Hashable {
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

/// Webhook POSTs: one per connection (`Connection: close`), the whole exchange (resolving,
/// connecting to each address in turn, sending, reading) bounded by one deadline, the answer
/// bounded in size. The exchange itself is ``BlockingHTTP/HTTPConnection``.
///
/// Blocking is deliberate: each hook owns a thread (``NotifyHooks``), so a slow receiver only
/// ever holds up its own hook, and the code stays a straight line that is easy to audit.
enum HookHTTPClient {
  /// Largest body kept (the rest is not read; the connection is closed anyway).
  static let maxBodyBytes = 4096

  /// The hooks' clock (milliseconds of `CLOCK_MONOTONIC`), the one exchange deadlines use.
  static func monotonicMillis() -> UInt64 { UInt64(HTTPConnection.monotonicMillis()) }

  /// Sends `body` as a POST to `url` with `headers` (plus Host, Content-Type, Content-Length,
  /// Connection) and returns the status and headers of the answer.
  static func post(
    url: HookURL, headers: [(name: String, value: String)], body: [UInt8], timeoutMillis: Int
  ) throws(HookHTTPError) -> HookHTTPResponse {
    let deadline = HTTPConnection.monotonicMillis() + Int64(max(1, timeoutMillis))
    let connection = try connect(host: url.host, port: url.port, deadline: deadline)
    var head = "POST \(url.target) HTTP/1.1\r\nHost: \(url.hostHeader)\r\n"
    head += "User-Agent: stella-forensics-notify\r\nContent-Type: application/json\r\n"
    head += "Content-Length: \(body.count)\r\nConnection: close\r\n"
    for header in headers { head += "\(header.name): \(header.value)\r\n" }
    head += "\r\n"
    let exchanged = body.withUnsafeBytes { raw in
      Result { () throws(HTTPConnectionFailure) in
        try connection.exchange(head: Array(head.utf8), body: raw, deadline: deadline, readWholeBody: false)
      }
    }
    switch exchanged {
    case .success(let response):
      return HookHTTPResponse(status: response.status, headers: response.headers, body: response.body)
    case .failure(let failure):
      throw HookHTTPError(failure, doing: "waiting for the answer")
    }
  }

  /// Connects to the first address of `host` that answers; the deadline covers them all.
  private static func connect(host: String, port: Int, deadline: Int64) throws(HookHTTPError) -> HTTPConnection {
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
      throw HookHTTPError(.resolve, "cannot resolve \(host): \(reason)")
    }
    defer { freeaddrinfo(first) }
    var lastError = HookHTTPError(.connect, "no address for \(host)")
    var entry: UnsafeMutablePointer<addrinfo>? = first
    while let current = entry {
      entry = current.pointee.ai_next
      guard let address = current.pointee.ai_addr else { continue }
      do throws(HTTPConnectionFailure) {
        return try HTTPConnection(
          address: address, length: current.pointee.ai_addrlen, deadline: deadline, maxKeptBody: maxBodyBytes)
      } catch {
        lastError = HookHTTPError(error, doing: "connecting to \(host):\(port)")
        // A timeout ends the attempt: the deadline covers every address together.
        if error.kind == .timeout { throw lastError }
      }
    }
    throw lastError
  }
}

extension HookHTTPError {
  init(kind: HookHTTPErrorCode, message: String) { self.init(kind, message) }

  /// The hook's view of a failed exchange.
  init(_ failure: HTTPConnectionFailure, doing what: String) {
    let kind: Kind =
      switch failure.kind {
      case .connect: .connect
      case .timeout: .timeout
      case .io: .io
      case .malformedResponse: .malformedResponse
      }
    self.init(kind, "\(what): \(failure.description)", cause: failure)
  }
}
