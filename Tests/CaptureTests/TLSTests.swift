import Capture
import EvidenceIO
import Foundation
import Logging
import Manifest
import NIOCore
import NIOPosix
import NIOSSL
import Synchronization
import Testing

@testable import Ingest
@testable import Receivers
@testable import Settings

/// A CA, server and client certificates made by `openssl` in a fresh directory.
private struct TestPKI {
  let directory: String

  init() throws {
    directory = NSTemporaryDirectory() + "tls-tests-" + UUID().uuidString
    try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
  }

  func path(_ name: String) -> String { directory + "/" + name }

  /// `name.pem` and `name.key`: a self-signed CA.
  func makeCA(_ name: String) throws {
    try openssl([
      "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", path("\(name).key"),
      "-out", path("\(name).pem"), "-days", "2", "-subj", "/CN=\(name)",
    ])
  }

  /// `name.pem` and `name.key`, signed by `ca`, with `subjectAltName` `san` (`-days -1`: expired).
  func makeLeaf(_ name: String, ca: String, commonName: String, san: String, days: Int = 2) throws {
    try openssl([
      "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", path("\(name).key"),
      "-out", path("\(name).csr"), "-subj", "/CN=\(commonName)",
    ])
    try Data("subjectAltName=\(san)\n".utf8).write(to: URL(fileURLWithPath: path("\(name).ext")))
    try openssl([
      "x509", "-req", "-in", path("\(name).csr"), "-CA", path("\(ca).pem"), "-CAkey", path("\(ca).key"),
      "-CAcreateserial", "-out", path("\(name).pem"), "-days", "\(days)", "-extfile", path("\(name).ext"),
    ])
  }

  private func openssl(_ arguments: [String]) throws {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/openssl")
    process.arguments = arguments
    process.standardOutput = FileHandle.nullDevice
    process.standardError = FileHandle.nullDevice
    try process.run()
    process.waitUntilExit()
    guard process.terminationStatus == 0 else {
      throw CaptureConfigurationError("openssl \(arguments.joined(separator: " ")) exited \(process.terminationStatus)")
    }
  }

  func remove() { try? FileManager.default.removeItem(atPath: directory) }
}

private final class SeenIdentities: Sendable {
  let values = Mutex<[String?]>([])
}

private final class SeenEvents: Sendable {
  let events = Mutex<[AdminEvent]>([])
}

@Suite(.serialized, .timeLimit(.minutes(1))) struct TLSTests {
  @Test func yamlTLSKeysAreReadRelativeToTheFile() throws {
    var configuration = CaptureConfiguration()
    try configuration.apply(
      yaml: "tls:\n  cert: server.pem\n  key: /abs/server.key\n  client-ca: ca.pem\ninsecure-listen: true\n",
      path: "/etc/stella/capture.yaml")
    #expect(
      configuration.tls
        == TLSFiles(
          certificatePath: "/etc/stella/server.pem", keyPath: "/abs/server.key", clientCAPath: "/etc/stella/ca.pem"))
    #expect(configuration.insecureListen)
  }

  @Test(arguments: [
    "tls:\n  cert: a.pem\n", "tls:\n  cert: a.pem\n  key: b.key\n  ca: c.pem\n", "insecure-listen: maybe",
  ])
  func badTLSDocumentsAreRefused(document: String) {
    var configuration = CaptureConfiguration()
    #expect(throws: CaptureConfigurationError.self) { try configuration.apply(yaml: document, path: "c.yaml") }
  }

  @Test func aNonLoopbackListenerNeedsTLSOrTheInsecureFlag() throws {
    var configuration = CaptureConfiguration()
    try configuration.validate()
    configuration.otlpGRPC = ListenAddress(host: "0.0.0.0", port: 4317)
    #expect {
      try configuration.validate()
    } throws: { error in
      let message = (error as? CaptureConfigurationError)?.message ?? ""
      return message.contains("otlp-grpc listens on 0.0.0.0:4317") && message.contains("--insecure-listen")
    }
    configuration.insecureListen = true
    try configuration.validate()
    configuration.insecureListen = false
    configuration.tls = TLSFiles(certificatePath: "s.pem", keyPath: "s.key")
    try configuration.validate()
  }

  @Test func unusableFilesNameTheFile() throws {
    let pki = try TestPKI()
    defer { pki.remove() }
    try pki.makeCA("ca")
    let missing = TLSFiles(certificatePath: pki.path("nope.pem"), keyPath: pki.path("ca.key"))
    #expect {
      _ = try ServerTLSContexts(files: missing)
    } throws: { error in
      (error as? TLSSetupError)?.code == .unreadableFile
        && (error as? TLSSetupError)?.message.contains("nope.pem") == true
    }
  }

  @Test func adminOverMutualTLSSeesTheClientIdentityAndReloadsForNewConnections() async throws {
    let pki = try TestPKI()
    defer { pki.remove() }
    try pki.makeCA("ca")
    try pki.makeCA("other-ca")
    try pki.makeLeaf("server", ca: "ca", commonName: "capture", san: "IP:127.0.0.1,DNS:localhost")
    try pki.makeLeaf("server2", ca: "other-ca", commonName: "capture2", san: "IP:127.0.0.1,DNS:localhost")
    try pki.makeLeaf("alice", ca: "ca", commonName: "alice", san: "DNS:alice.example")
    try pki.makeLeaf("mallory", ca: "other-ca", commonName: "mallory", san: "DNS:mallory.example")
    try pki.makeLeaf("expired", ca: "ca", commonName: "old", san: "DNS:old.example", days: -1)

    // The server's files are a copy the test overwrites to rotate the certificate.
    let live = TLSFiles(
      certificatePath: pki.path("live.pem"), keyPath: pki.path("live.key"), clientCAPath: pki.path("ca.pem"))
    try FileManager.default.copyItem(atPath: pki.path("server.pem"), toPath: live.certificatePath)
    try FileManager.default.copyItem(atPath: pki.path("server.key"), toPath: live.keyPath)
    let contexts = try ServerTLSContexts(files: live)

    let seen = SeenIdentities()
    let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
    let server = AdminHTTPServer(
      options: .init(port: 0, tls: contexts.http1), group: group, logger: Logger(label: "test")
    ) { request in
      seen.values.withLock { $0.append(request.certificateIdentity) }
      return .text(200, "ok")
    }
    let port = try #require(try await server.start().port)
    func call(ca: String, client: String?) async throws -> Int {
      let endpoint = try AdminEndpoint(parsing: "https://127.0.0.1:\(port)")
      let files = AdminClientTLSFiles(
        caPath: pki.path("\(ca).pem"), certificatePath: client.map { pki.path("\($0).pem") },
        keyPath: client.map { pki.path("\($0).key") })
      let client = try AdminAPIClient(endpoint: endpoint, tls: files, timeoutSeconds: 10)
      return try await client.send(method: "GET", path: "/status", headers: [], body: nil).status
    }
    do {
      #expect(try await call(ca: "ca", client: "alice") == 200)
      #expect(seen.values.withLock { $0 } == ["CN=alice, SAN=DNS:alice.example"])
      for refused in [nil, "mallory", "expired"] {
        await #expect(throws: AdminClientError.self, "client \(refused ?? "without a certificate")") {
          _ = try await call(ca: "ca", client: refused)
        }
      }
      #expect(seen.values.withLock { $0.count } == 1, "no refused client reached the handler")

      // A failed reload (a key that does not match) keeps the old certificate.
      try FileManager.default.removeItem(atPath: live.keyPath)
      try FileManager.default.copyItem(atPath: pki.path("alice.key"), toPath: live.keyPath)
      #expect(throws: TLSSetupError.self) { try contexts.reload() }
      #expect(try await call(ca: "ca", client: "alice") == 200)

      // Rotation: a certificate from another CA; new connections see it.
      for (source, target) in [("server2.pem", live.certificatePath), ("server2.key", live.keyPath)] {
        try FileManager.default.removeItem(atPath: target)
        try FileManager.default.copyItem(atPath: pki.path(source), toPath: target)
      }
      try contexts.reload()
      #expect(try await call(ca: "other-ca", client: "alice") == 200)
      await #expect(throws: AdminClientError.self) { _ = try await call(ca: "ca", client: "alice") }
    } catch {
      await server.stop()
      try await group.shutdownGracefully()
      throw error
    }
    await server.stop()
    try await group.shutdownGracefully()
  }

  @Test func theGateReportsTheCertificateIdentityBesideTheTokenPrincipal() async throws {
    let seen = SeenEvents()
    let tokens = AdminTokens(
      path: "test",
      entries: [.init(name: "alice", role: .responder, digest: SHA256Digest.of(Array("alice-token".utf8)))])
    let gate = AdminGate(
      tokens: tokens, listenHost: "127.0.0.1",
      events: AdminEventLog(logger: Logger(label: "test"), sink: { event in seen.events.withLock { $0.append(event) } })
    )
    let identity = "CN=alice, SAN=DNS:alice.example"
    var request = AdminRequest(
      method: "POST", path: "/seal",
      headers: ["host": "127.0.0.1:4320", "authorization": "Bearer alice-token", "content-type": "application/json"],
      peer: "127.0.0.1:5000", certificateIdentity: identity)
    _ = await gate.handle(request) { _ in .text(200, "sealed") }
    request.headers["authorization"] = "Bearer wrong"
    _ = await gate.handle(request) { _ in .text(200, "never") }
    let events = seen.events.withLock { $0 }
    #expect(
      events == [
        AdminEvent(
          action: "POST /seal", principal: "alice", certificateIdentity: identity, peer: "127.0.0.1:5000",
          outcome: .done(status: 200)),
        AdminEvent(
          action: "POST /seal", principal: nil, certificateIdentity: identity, peer: "127.0.0.1:5000",
          outcome: .refused(status: 401, reason: "unknown token")),
      ])
  }

  @Test func overTheConnectionLimitATLSListenerClosesAtOnce() async throws {
    let pki = try TestPKI()
    defer { pki.remove() }
    try pki.makeCA("ca")
    try pki.makeLeaf("server", ca: "ca", commonName: "capture", san: "IP:127.0.0.1")
    let contexts = try ServerTLSContexts(
      files: TLSFiles(certificatePath: pki.path("server.pem"), keyPath: pki.path("server.key")))
    let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
    let server = AdminHTTPServer(
      options: .init(port: 0, maxConnections: 1, tls: contexts.http1), group: group, logger: Logger(label: "test")
    ) { _ in .text(200, "ok") }
    let port = try #require(try await server.start().port)
    // Holds the one connection without ever starting a handshake.
    let holder = try BlockingClient(port: port, receiveTimeoutSeconds: 1)
    try await Task.sleep(for: .milliseconds(100))
    let refused = try BlockingClient(port: port, receiveTimeoutSeconds: 5)
    let closed = await refused.waitForCloseOffPool()
    #expect(closed, "the connection over the limit was closed")
    #expect(refused.text.isEmpty, "no plaintext answer on a TLS port")
    _ = holder
    await server.stop()
    try await group.shutdownGracefully()
  }

  @Test func aCertificatesIdentityListsEveryNameTenancyCanSelect() throws {
    let pki = try TestPKI()
    defer { pki.remove() }
    try pki.makeCA("ca")
    try pki.makeLeaf(
      "collector", ca: "ca", commonName: "collector-b",
      san: "DNS:collector-b.example,IP:10.0.0.5,IP:2001:db8:0:0::1,URI:spiffe://example/b,email:ops@example.org")
    let certificate = try #require(try NIOSSLCertificate.fromPEMFile(pki.path("collector.pem")).first)
    let identity = PeerCertificateIdentity.identity(of: certificate)
    #expect(identity.commonNames == ["collector-b"])
    #expect(
      identity.alternativeNames == [
        "DNS:collector-b.example", "IP:10.0.0.5", "IP:2001:db8::1", "URI:spiffe://example/b", "email:ops@example.org",
      ])
    for selector in ["collector-b", "DNS:COLLECTOR-B.example", "IP:2001:db8::1", "URI:spiffe://example/b"] {
      #expect(IdentityTenants(certificate: selector, tenants: ["globex"]).selects(identity), "\(selector)")
    }
  }

  @Test func adminEndpointsParse() throws {
    #expect(
      try AdminEndpoint(parsing: "127.0.0.1:4320") == AdminEndpoint(usesTLS: false, host: "127.0.0.1", port: 4320))
    #expect(try AdminEndpoint(parsing: "https://[::1]:9/") == AdminEndpoint(usesTLS: true, host: "::1", port: 9))
    #expect(
      try AdminEndpoint(parsing: "http://admin.example")
        == AdminEndpoint(usesTLS: false, host: "admin.example", port: 4320))
    for bad in ["ftp://x:1", "x:port", "https://:1", "http://a/b:1"] {
      #expect(throws: AdminClientError.self, "\(bad)") { _ = try AdminEndpoint(parsing: bad) }
    }
    // TLS files make no sense for a plaintext endpoint.
    #expect(throws: AdminClientError.self) {
      _ = try AdminAPIClient(
        endpoint: AdminEndpoint(usesTLS: false, host: "127.0.0.1", port: 1), tls: AdminClientTLSFiles(caPath: "ca.pem"))
    }
  }
}
