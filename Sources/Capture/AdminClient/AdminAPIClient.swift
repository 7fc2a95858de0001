public import CodedErrors
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL

/// Where the admin API is: `http://HOST:PORT`, `https://HOST:PORT` or plain `HOST:PORT` (http).
public struct AdminEndpoint: Sendable, Equatable, CustomStringConvertible {
  public var usesTLS: Bool
  /// The host as given (an IPv6 address without brackets).
  public var host: String
  public var port: Int

  public init(usesTLS: Bool, host: String, port: Int) {
    self.usesTLS = usesTLS
    self.host = host
    self.port = port
  }

  /// Parses `--admin`; a missing port is the admin default, 4320. A bare `HOST:PORT`, as capture
  /// prints its listeners, is https when `bareUsesTLS` (the caller was given TLS files), else http.
  public init(parsing text: String, bareUsesTLS: Bool = false) throws(AdminClientError) {
    var rest = Substring(text)
    var usesTLS = bareUsesTLS
    if let range = rest.range(of: "://") {
      switch rest[..<range.lowerBound].lowercased() {
      case "http": usesTLS = false
      case "https": usesTLS = true
      default:
        throw AdminClientError(.usage, "--admin: \"\(text)\" is not http://HOST:PORT, https://HOST:PORT or HOST:PORT")
      }
      rest = rest[range.upperBound...]
    }
    while rest.hasSuffix("/") { rest = rest.dropLast() }
    var host = rest
    var port = 4320
    if rest.hasPrefix("["), let close = rest.firstIndex(of: "]") {
      host = rest[rest.index(after: rest.startIndex)..<close]
      let tail = rest[rest.index(after: close)...]
      if !tail.isEmpty {
        guard tail.hasPrefix(":"), let number = Int(tail.dropFirst()) else {
          throw AdminClientError(.usage, "--admin: \"\(text)\" has no valid port")
        }
        port = number
      }
    } else if let colon = rest.lastIndex(of: ":") {
      guard let number = Int(rest[rest.index(after: colon)...]) else {
        throw AdminClientError(.usage, "--admin: \"\(text)\" has no valid port")
      }
      host = rest[..<colon]
      port = number
    }
    guard !host.isEmpty, !host.contains("/"), (1...65535).contains(port) else {
      throw AdminClientError(.usage, "--admin: \"\(text)\" is not http://HOST:PORT, https://HOST:PORT or HOST:PORT")
    }
    self.init(usesTLS: usesTLS, host: String(host), port: port)
  }

  public var description: String {
    let shownHost = host.contains(":") ? "[\(host)]" : host
    return "\(usesTLS ? "https" : "http")://\(shownHost):\(port)"
  }
}

/// The files of the admin client's TLS: the CA that signed the server's certificate, and the
/// client's own certificate and key for mTLS.
public struct AdminClientTLSFiles: Sendable, Equatable {
  /// `nil`: the system's trust roots.
  public var caPath: String?
  public var certificatePath: String?
  public var keyPath: String?

  public init(caPath: String? = nil, certificatePath: String? = nil, keyPath: String? = nil) {
    self.caPath = caPath
    self.certificatePath = certificatePath
    self.keyPath = keyPath
  }
}

/// Why an admin API call failed before an answer came.
public typealias AdminClientError = CodedError<AdminClientErrorCode>

/// The codes of ``AdminClientError``: what kind of failure it is.
public enum AdminClientErrorCode: Sendable, Hashable {
  /// A bad endpoint or bad TLS files: the caller's to fix.
  case usage
  /// The endpoint could not be reached, the TLS handshake failed, or no complete answer came.
  case connection
}

/// One answer of the admin API.
public struct AdminAPIResponse: Sendable, Equatable {
  public var status: Int
  public var body: [UInt8]
}

/// A small HTTP/1.1 client for the admin API, over plaintext or TLS (a custom CA, a client
/// certificate), one connection per call. URLSession on Linux can neither trust a CA from a file
/// nor present a client certificate, so the CLI talks through this instead.
public struct AdminAPIClient: Sendable {
  public let endpoint: AdminEndpoint
  private let sslContext: NIOSSLContext?
  private let timeout: TimeAmount

  /// - Parameter timeoutSeconds: the whole call (connect, handshake, answer) must end within this.
  /// - Throws: ``AdminClientError`` (`.usage`) when TLS files are given for a plain http
  ///   endpoint, a certificate comes without its key, or a file is unusable.
  public init(
    endpoint: AdminEndpoint, tls: AdminClientTLSFiles = AdminClientTLSFiles(), timeoutSeconds: Int64 = 30
  ) throws(AdminClientError) {
    self.endpoint = endpoint
    self.timeout = .seconds(timeoutSeconds)
    let anyTLSFile = tls.caPath != nil || tls.certificatePath != nil || tls.keyPath != nil
    guard endpoint.usesTLS else {
      if anyTLSFile {
        throw AdminClientError(
          .usage, "--tls-ca, --tls-cert and --tls-key need an https:// admin endpoint, not \(endpoint)")
      }
      self.sslContext = nil
      return
    }
    guard (tls.certificatePath == nil) == (tls.keyPath == nil) else {
      throw AdminClientError(.usage, "--tls-cert and --tls-key go together")
    }
    var configuration = TLSConfiguration.makeClientConfiguration()
    configuration.minimumTLSVersion = .tlsv12
    configuration.applicationProtocols = ["http/1.1"]
    do {
      if let caPath = tls.caPath {
        configuration.trustRoots = .certificates(try NIOSSLCertificate.fromPEMFile(caPath))
      }
      if let certificatePath = tls.certificatePath, let keyPath = tls.keyPath {
        configuration.certificateChain = try NIOSSLCertificate.fromPEMFile(certificatePath).map { .certificate($0) }
        configuration.privateKey = .privateKey(try NIOSSLPrivateKey(file: keyPath, format: .pem))
      }
      self.sslContext = try NIOSSLContext(configuration: configuration)
    } catch {
      throw AdminClientError(.usage, "admin TLS files (--tls-ca, --tls-cert, --tls-key) are not usable PEM: \(error)")
    }
  }

  /// Sends one request and returns the answer, whatever its status.
  public func send(
    method: String, path: String, headers: [(String, String)], body: [UInt8]?
  ) async throws(AdminClientError) -> AdminAPIResponse {
    let endpoint = self.endpoint
    let sslContext = self.sslContext
    let group = MultiThreadedEventLoopGroup.singleton
    let eventLoop = group.next()
    let answer = eventLoop.makePromise(of: AdminAPIResponse.self)
    let bootstrap = ClientBootstrap(group: eventLoop)
      .connectTimeout(.seconds(10))
      .channelInitializer { channel in
        channel.eventLoop.makeCompletedFuture {
          let pipeline = channel.pipeline.syncOperations
          if let sslContext {
            // SNI takes names only; for an address the certificate is checked against the
            // connected IP instead.
            let isAddress = (try? SocketAddress(ipAddress: endpoint.host, port: 0)) != nil
            try pipeline.addHandler(
              try NIOSSLClientHandler(context: sslContext, serverHostname: isAddress ? nil : endpoint.host))
          }
          try pipeline.addHTTPClientHandlers()
          try pipeline.addHandler(AdminResponseCollector(answer: answer))
        }
      }
    let channel: any Channel
    do {
      channel = try await bootstrap.connect(host: endpoint.host, port: endpoint.port).get()
    } catch {
      answer.fail(error)
      throw AdminClientError(.connection, "cannot reach the capture service at \(endpoint): \(error)")
    }
    var head = HTTPRequestHead(version: .http1_1, method: HTTPMethod(rawValue: method), uri: path)
    let hostHeader =
      endpoint.host.contains(":") ? "[\(endpoint.host)]:\(endpoint.port)" : "\(endpoint.host):\(endpoint.port)"
    head.headers.add(name: "Host", value: hostHeader)
    head.headers.add(name: "Connection", value: "close")
    for (name, value) in headers { head.headers.add(name: name, value: value) }
    head.headers.add(name: "Content-Length", value: "\(body?.count ?? 0)")
    channel.write(HTTPClientRequestPart.head(head), promise: nil)
    if let body, !body.isEmpty {
      channel.write(HTTPClientRequestPart.body(.byteBuffer(channel.allocator.buffer(bytes: body))), promise: nil)
    }
    channel.writeAndFlush(HTTPClientRequestPart.end(nil), promise: nil)
    let deadline = eventLoop.scheduleTask(in: timeout) {
      answer.fail(AdminClientError(.connection, "no answer from \(endpoint) within \(timeout)"))
    }
    defer {
      deadline.cancel()
      channel.close(promise: nil)
    }
    do {
      return try await answer.futureResult.get()
    } catch let error as AdminClientError {
      throw error
    } catch let error as NIOSSLError {
      throw AdminClientError(
        .connection,
        "TLS handshake with \(endpoint) failed (a plain http endpoint, an untrusted certificate, or a refused client certificate?): \(error)"
      )
    } catch {
      throw AdminClientError(.connection, "the capture service at \(endpoint) gave no answer: \(error)")
    }
  }
}

/// Gathers one response and fulfills the promise; a connection that closes or fails first
/// (a refused TLS handshake, a dropped connection) fails it.
private final class AdminResponseCollector: ChannelInboundHandler {
  typealias InboundIn = HTTPClientResponsePart

  private let answer: EventLoopPromise<AdminAPIResponse>
  private var status = 0
  private var body: [UInt8] = []
  /// An answer larger than this is cut off: the admin API's documents are small.
  private static let maxBodyBytes = 16 << 20

  init(answer: EventLoopPromise<AdminAPIResponse>) {
    self.answer = answer
  }

  func channelRead(context: ChannelHandlerContext, data: NIOAny) {
    switch unwrapInboundIn(data) {
    case .head(let head):
      status = Int(head.status.code)
    case .body(let buffer):
      guard body.count + buffer.readableBytes <= Self.maxBodyBytes else {
        answer.fail(AdminClientError(.connection, "the admin answer is larger than \(Self.maxBodyBytes) bytes"))
        context.close(promise: nil)
        return
      }
      body += buffer.readableBytesView
    case .end:
      answer.succeed(AdminAPIResponse(status: status, body: body))
      context.close(promise: nil)
    }
  }

  func errorCaught(context: ChannelHandlerContext, error: any Error) {
    answer.fail(error)
    context.close(promise: nil)
  }

  func channelInactive(context: ChannelHandlerContext) {
    answer.fail(AdminClientError(.connection, "the connection closed before a complete answer"))
    context.fireChannelInactive()
  }
}

@available(*, unavailable)
extension AdminResponseCollector: Sendable {}
