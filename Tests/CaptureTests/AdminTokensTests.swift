import EvidenceIO
import Foundation
import Manifest
import Testing

@testable import Capture
@testable import Receivers
@testable import Settings

@Suite struct AdminTokensTests {
  private func write(_ text: String, mode: mode_t, in scratch: ScratchDirectory) throws -> String {
    let path = scratch.file("tokens.yaml")
    try text.write(toFile: path, atomically: false, encoding: .utf8)
    chmod(path, mode)
    return path
  }

  private static let aliceYAML = """
    tokens:
      - name: alice
        role: responder
        sha256: \(SHA256Digest.hex(of: Array("alice-token".utf8)))
      - name: vera
        role: viewer
        sha256: \(SHA256Digest.hex(of: Array("vera-token".utf8)))
    """

  @Test func aPrivateFileIsReadAndTokensAuthenticateTheirPrincipal() throws {
    let scratch = try ScratchDirectory()
    let tokens = try AdminTokens.load(path: try write(Self.aliceYAML, mode: 0o600, in: scratch))
    #expect(tokens.authenticate(token: Array("alice-token".utf8)) == AdminPrincipal(name: "alice", role: .responder))
    #expect(tokens.authenticate(token: Array("vera-token".utf8))?.role == .viewer)
    #expect(tokens.authenticate(token: Array("alice-token ".utf8)) == nil)
    #expect(tokens.authenticate(token: []) == nil)
  }

  @Test func aFileOthersCanReadOrWriteIsRefused() throws {
    let scratch = try ScratchDirectory()
    for mode: mode_t in [0o644, 0o640, 0o660, 0o700, 0o606] {
      let path = try write(Self.aliceYAML, mode: mode, in: scratch)
      #expect(throws: AdminTokensError.self, "mode \(String(mode, radix: 8))") { try AdminTokens.load(path: path) }
      do {
        _ = try AdminTokens.load(path: path)
      } catch {
        #expect(error.kind == .insecure)
        #expect(error.message.contains("must be 0600"))
      }
    }
    // A symlink to a private file is not followed.
    let target = try write(Self.aliceYAML, mode: 0o600, in: scratch)
    let link = scratch.file("link.yaml")
    try FileManager.default.createSymbolicLink(atPath: link, withDestinationPath: target)
    #expect(throws: AdminTokensError.self) { try AdminTokens.load(path: link) }
  }

  @Test func badEntriesAreNamed() {
    let digest = SHA256Digest.hex(of: Array("t".utf8))
    let cases: [(String, String)] = [
      ("tokens:\n  - name: a\n    role: root\n    sha256: \(digest)\n", "tokens[0].role"),
      ("tokens:\n  - name: a\n    role: admin\n    sha256: abc\n", "tokens[0].sha256"),
      ("tokens:\n  - name: a b\n    role: admin\n    sha256: \(digest)\n", "tokens[0].name"),
      ("tokens:\n  - name: a\n    role: admin\n", "needs name, role and sha256"),
      (
        "tokens:\n  - name: a\n    role: admin\n    sha256: \(digest)\n  - name: b\n    role: viewer\n    sha256: \(digest)\n",
        "also another entry's"
      ),
      ("tokens: []\n", "at least one token"),
      ("users: []\n", "unknown key users"),
    ]
    for (yaml, expected) in cases {
      do {
        _ = try AdminTokens.parse(yaml: yaml, path: "t.yaml")
        Issue.record("accepted: \(yaml)")
      } catch {
        #expect(error.kind == .invalid)
        #expect(error.description.contains(expected), "\(error) should mention \(expected)")
      }
    }
  }

  @Test func theLocalOperatorsTokenIsMadeOnceInTheDataDirectory() throws {
    let scratch = try ScratchDirectory()
    let made = try AdminTokens.loadOrCreateLocal(dataDirectory: scratch.path)
    let tokenPath = scratch.file(AdminTokens.generatedTokenFile)
    let tokensPath = scratch.file(AdminTokens.generatedTokensFile)
    for path in [tokenPath, tokensPath] {
      let mode = try #require(try FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? Int)
      #expect(mode == 0o600, "\(path)")
    }
    let token = try String(contentsOfFile: tokenPath, encoding: .utf8).trimmingCharacters(in: .newlines)
    #expect(token.count == 64)
    #expect(made.authenticate(token: Array(token.utf8)) == AdminPrincipal(name: "local-operator", role: .admin))
    #expect(!(try String(contentsOfFile: tokensPath, encoding: .utf8)).contains(token))
    let again = try AdminTokens.loadOrCreateLocal(dataDirectory: scratch.path)
    #expect(again.entries == made.entries)
  }

  @Test func rolesIncludeTheRightsOfTheLesserOnes() {
    #expect(AdminRole.viewer.allows(.view) && !AdminRole.viewer.allows(.respond))
    #expect(AdminRole.responder.allows(.respond) && !AdminRole.responder.allows(.administer))
    #expect(AdminRole.admin.allows(.administer) && AdminRole.admin.allows(.view))
  }

  @Test func theAdminSectionOfTheConfiguration() throws {
    var configuration = CaptureConfiguration()
    try configuration.apply(
      yaml: "admin:\n  tokens: secrets/tokens.yaml\n  host-names: [capture.internal]\n  request-deadline: 5s\n",
      path: "/etc/stella/capture.yaml")
    #expect(configuration.adminTokensPath == "/etc/stella/secrets/tokens.yaml")
    #expect(configuration.adminHostNames == ["capture.internal"])
    #expect(configuration.adminRequestDeadlineMillis == 5000)
    #expect(throws: CaptureConfigurationError.self) {
      var other = CaptureConfiguration()
      try other.apply(yaml: "admin:\n  token: x\n", path: "c.yaml")
    }
  }
}
