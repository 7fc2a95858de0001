public import CodedErrors
public import Ingest
public import NIOCore
public import NIOSSL
import Synchronization

/// The PEM files a TLS listener is configured with (`--tls-cert`, `--tls-key`, `--tls-client-ca`).
public struct TLSFiles: Sendable, Equatable {
  /// The server's certificate chain, leaf first.
  public var certificatePath: String
  /// The server certificate's private key.
  public var keyPath: String
  /// With it, every client must present a certificate signed by one of these CAs (mTLS).
  public var clientCAPath: String?

  public init(certificatePath: String, keyPath: String, clientCAPath: String? = nil) {
    self.certificatePath = certificatePath
    self.keyPath = keyPath
    self.clientCAPath = clientCAPath
  }

  /// Whether clients must present a certificate.
  public var requiresClientCertificate: Bool { clientCAPath != nil }
}

/// Why a TLS context could not be built from its files, naming the file.
public typealias TLSSetupError = CodedError<TLSSetupErrorCode>

/// The codes of ``TLSSetupError``: what kind of failure it is.
public enum TLSSetupErrorCode: Sendable, Hashable {
  /// A certificate, key or CA file could not be read or holds no usable PEM.
  case unreadableFile
  /// The files were read but BoringSSL refused them together (key not matching the certificate...).
  case invalidConfiguration
}

/// Which application protocol a TLS listener speaks; it is negotiated with ALPN, so a client
/// offering `h2` to an HTTP/1.1 listener (Go's HTTP client does) falls back to HTTP/1.1, and
/// gRPC clients that insist on ALPN (grpc-core does) get `h2`.
public enum TLSApplicationProtocol: Sendable {
  case http1
  case http2

  var alpnIdentifiers: [String] {
    switch self {
    case .http1: return ["http/1.1"]
    case .http2: return ["h2"]
    }
  }
}

/// Builds server TLS contexts: TLS 1.2 or newer, the certificate chain and key from PEM files, and,
/// with a client CA, a required client certificate verified against that CA alone.
public enum ServerTLSContextFactory {
  /// A new context from the files as they are on disk now.
  public static func makeContext(
    files: TLSFiles, applicationProtocol: TLSApplicationProtocol
  ) throws(TLSSetupError) -> NIOSSLContext {
    let chain = try certificates(at: files.certificatePath, role: "certificate (--tls-cert)")
    let key: NIOSSLPrivateKey
    do {
      key = try NIOSSLPrivateKey(file: files.keyPath, format: .pem)
    } catch {
      throw TLSSetupError(
        .unreadableFile, "TLS key (--tls-key) \(files.keyPath): not a readable PEM private key (\(error))")
    }
    var configuration = TLSConfiguration.makeServerConfiguration(
      certificateChain: chain.map { .certificate($0) }, privateKey: .privateKey(key))
    configuration.minimumTLSVersion = .tlsv12
    configuration.applicationProtocols = applicationProtocol.alpnIdentifiers
    if let caPath = files.clientCAPath {
      let authorities = try certificates(at: caPath, role: "client CA (--tls-client-ca)")
      // Clients are identified by their certificate, not by a host name: there is none to check.
      configuration.certificateVerification = .noHostnameVerification
      // Only the configured CA: the system's roots must not vouch for a client.
      configuration.trustRoots = .certificates(authorities)
      configuration.sendCANameList = true
    }
    do {
      return try NIOSSLContext(configuration: configuration)
    } catch {
      throw TLSSetupError(
        .invalidConfiguration,
        "TLS: \(files.certificatePath) and \(files.keyPath) do not make a usable server context (does the key match the certificate?): \(error)"
      )
    }
  }

  private static func certificates(at path: String, role: String) throws(TLSSetupError) -> [NIOSSLCertificate] {
    let certificates: [NIOSSLCertificate]
    do {
      certificates = try NIOSSLCertificate.fromPEMFile(path)
    } catch {
      throw TLSSetupError(.unreadableFile, "TLS \(role) \(path): not a readable PEM certificate file (\(error))")
    }
    guard !certificates.isEmpty else {
      throw TLSSetupError(.unreadableFile, "TLS \(role) \(path): holds no PEM certificate")
    }
    return certificates
  }
}

/// The TLS context a listener gives each new connection, replaceable while it serves: a reload
/// builds a complete new context from the files and swaps it in at once, so a connection
/// accepted after the swap uses the new certificate and one accepted before keeps its own
/// (NIO's TLS handler holds its context for the life of the connection), and no connection is
/// dropped. A reload that fails leaves the previous context in place.
public final class ReloadableServerTLSContext: Sendable {
  public let files: TLSFiles
  public let applicationProtocol: TLSApplicationProtocol
  private let context: Mutex<NIOSSLContext>

  /// Builds the first context; fails when the files are unusable now.
  public init(files: TLSFiles, applicationProtocol: TLSApplicationProtocol) throws(TLSSetupError) {
    self.files = files
    self.applicationProtocol = applicationProtocol
    self.context = Mutex(
      try ServerTLSContextFactory.makeContext(files: files, applicationProtocol: applicationProtocol))
  }

  /// The context for the next accepted connection.
  public var current: NIOSSLContext { context.withLock { $0 } }

  /// Rereads the files and swaps the new context in; on failure the current one stays.
  public func reload() throws(TLSSetupError) {
    replace(with: try makeFreshContext())
  }

  /// A context from the files as they are now, not yet in use.
  func makeFreshContext() throws(TLSSetupError) -> NIOSSLContext {
    try ServerTLSContextFactory.makeContext(files: files, applicationProtocol: applicationProtocol)
  }

  /// Makes `fresh` the context of the connections accepted from now on.
  func replace(with fresh: NIOSSLContext) {
    context.withLock { $0 = fresh }
  }

  /// A TLS handler for one accepted connection, with the context current now.
  public func makeHandler() -> NIOSSLServerHandler {
    NIOSSLServerHandler(context: current)
  }
}

/// The TLS contexts of all the service's listeners, reloaded together (SIGHUP).
public struct ServerTLSContexts: Sendable {
  /// OTLP/HTTP and admin (HTTP/1.1).
  public let http1: ReloadableServerTLSContext
  /// OTLP/gRPC (HTTP/2).
  public let http2: ReloadableServerTLSContext

  public init(files: TLSFiles) throws(TLSSetupError) {
    self.http1 = try ReloadableServerTLSContext(files: files, applicationProtocol: .http1)
    self.http2 = try ReloadableServerTLSContext(files: files, applicationProtocol: .http2)
  }

  /// Rereads the certificate, key and client CA; both contexts change or neither does.
  public func reload() throws(TLSSetupError) {
    // Both built before either is swapped in, so a bad file leaves every listener as it was.
    let freshHTTP1 = try http1.makeFreshContext()
    let freshHTTP2 = try http2.makeFreshContext()
    http1.replace(with: freshHTTP1)
    http2.replace(with: freshHTTP2)
  }
}

/// Who a client certificate names: `CN=...` and its subject alternative names, for custody
/// records beside the token's principal and for tenancy's identity mapping.
public enum PeerCertificateIdentity {
  /// `CN=alice, SAN=DNS:alice.example,email:alice@example.org`; empty when the certificate
  /// names nobody.
  public static func describe(_ certificate: NIOSSLCertificate) -> String {
    identity(of: certificate).description
  }

  /// The common names and subject alternative names (DNS, IP, URI, email) of `certificate`.
  public static func identity(of certificate: NIOSSLCertificate) -> ClientIdentity {
    let commonNames = certificate.subjectName.filter { $0.type == .commonName }.map(\.value)
    var alternatives: [String] = []
    for name in certificate._subjectAlternativeNames() {
      let bytes = Array(name.contents)
      switch name.nameType {
      case .dnsName: alternatives.append("DNS:\(String(decoding: bytes, as: UTF8.self))")
      case .email: alternatives.append("email:\(String(decoding: bytes, as: UTF8.self))")
      case .uri: alternatives.append("URI:\(String(decoding: bytes, as: UTF8.self))")
      case .ipAddress:
        if let address = ipAddressText(bytes) { alternatives.append("IP:\(address)") }
      default: continue
      }
    }
    return ClientIdentity(commonNames: commonNames, alternativeNames: alternatives)
  }

  /// Dotted IPv4 or RFC 5952 IPv6 (what `inet_ntop` prints) for a SAN's raw address bytes.
  private static func ipAddressText(_ bytes: [UInt8]) -> String? {
    if bytes.count == 4 { return bytes.map(String.init).joined(separator: ".") }
    guard bytes.count == 16,
      let address = try? SocketAddress(packedIPAddress: ByteBuffer(bytes: bytes), port: 0),
      let text = address.ipAddress
    else { return nil }
    return text
  }

  /// The identity of the verified client certificate of `channel`'s TLS connection; `nil`
  /// without TLS or without a client certificate. Must run on `channel`'s event loop.
  public static func ofPeer(on channel: any Channel) -> String? {
    guard let identity = clientIdentity(on: channel) else { return nil }
    return identity.isEmpty ? nil : identity.description
  }

  /// What the verified client certificate of `channel`'s TLS connection names; `nil` without TLS
  /// or without a client certificate. Must run on `channel`'s event loop.
  public static func clientIdentity(on channel: any Channel) -> ClientIdentity? {
    guard let certificate = try? channel.pipeline.syncOperations.nioSSL_peerCertificate() else { return nil }
    return identity(of: certificate)
  }
}
