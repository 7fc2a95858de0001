import EvidenceIO
import Foundation
import Keys
import Manifest
import Seal
import Signing
import Testing
import WireTestSupport

@testable import Verify

/// Bundles built in a temporary directory (removed afterwards) with keys generated inside the test.
final class BundleLab {
  let directory: String
  let analyst = Ed25519PrivateKey.generate()
  let auditor = Ed25519PrivateKey.generate()

  init() throws {
    directory = NSTemporaryDirectory() + "verify-tests-" + UUID().uuidString
    try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
  }

  deinit { try? FileManager.default.removeItem(atPath: directory) }

  func path(_ name: String) -> String { directory + "/" + name }

  static let facts = BundleFacts(
    incident: IncidentFacts(
      id: "INC-1", reason: "test", declaredBy: "tester", declaredAtUnixNano: 1_718_000_000_000_000_000),
    captureStartUnixNano: 100, captureEndUnixNano: 1_718_000_000_000_000_000,
    redactionPolicy: .none, tool: .current)

  func segments() throws -> [SealedSegment] {
    let traces = SegmentHeader(signal: .traces, tenant: "acme", node: "node-a")
    let logs = SegmentHeader(signal: .logs, tenant: "globex", node: "node-b")
    return [
      try SegmentSealer.seal(
        header: traces,
        records: (0..<3).map {
          SegmentRecord(seq: UInt64($0), receivedUnixNano: 5, request: Wire.traces([(100 + UInt64($0), 200)]))
        }),
      try SegmentSealer.seal(
        header: traces, records: [SegmentRecord(seq: 3, receivedUnixNano: 6, request: Wire.traces([(300, 400)]))]),
      try SegmentSealer.seal(
        header: logs, records: [SegmentRecord(seq: 0, receivedUnixNano: 0, request: Wire.logs([(0, 250)]))]),
    ]
  }

  @discardableResult
  func seal(_ name: String, keys: [Ed25519PrivateKey]) throws -> String {
    try BundleSealer.seal(segments: try segments(), facts: BundleLab.facts, signingKeys: keys, outputPath: path(name))
    return path(name)
  }

  func verify(
    _ path: String, trusting keys: [Ed25519PrivateKey], threshold: Int = 1, ignoreUntrusted: Bool = false,
    depth: VerificationDepth = .deep
  ) throws -> VerificationResult {
    let policy = try TrustPolicy(
      trustedKeys: keys.map(\.publicKey), threshold: threshold, ignoreUntrustedSignatures: ignoreUntrusted)
    return try BundleVerifier(policy: policy, depth: depth).verify(path: path)
  }
}

func code(_ result: VerificationResult) -> ReasonCode? {
  if case .rejected(let finding) = result { return finding.code }
  return nil
}

@Suite struct VerifierTests {
  @Test func sealedBundleVerifiesQuickAndDeep() throws {
    let lab = try BundleLab()
    let path = try lab.seal("a.sfb.tar", keys: [lab.analyst])
    for depth in [VerificationDepth.quick, .deep] {
      guard case .verified(let bundle) = try lab.verify(path, trusting: [lab.analyst], depth: depth) else {
        Issue.record("bundle did not verify at \(depth)")
        return
      }
      #expect(bundle.manifest.blobs.count == 3)
      #expect(bundle.streamCount == 2)
      #expect(bundle.recordCount == 5)
      #expect(bundle.signerKeyIDs == [lab.analyst.publicKey.keyID])
      #expect(bundle.isDeep == (depth == .deep))
    }
  }

  @Test func archiveHeadersAreTheCanonicalOnesAndEndWithTwoZeroBlocks() throws {
    let lab = try BundleLab()
    let bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: try lab.seal("a.sfb.tar", keys: [lab.analyst]))))
    let members = try TarStructureChecker(limits: .init()).members(of: MemoryByteSource(bytes))
    #expect(members.map(\.name).prefix(2) == ["manifest.json", "manifest.dsse.json"])
    for member in members {
      let header = Array(bytes[member.headerOffset..<member.headerOffset + 512])
      #expect(header == BundleTar.canonicalHeader(name: member.name, size: UInt64(member.size)))
    }
    #expect(bytes.count % 512 == 0)
    #expect(bytes.suffix(1024).allSatisfy { $0 == 0 })
  }

  @Test func coSigningEqualsSigningWithBothKeysAtOnce() throws {
    let lab = try BundleLab()
    let both = try lab.seal("both.sfb.tar", keys: [lab.analyst, lab.auditor])
    let later = try lab.seal("later.sfb.tar", keys: [lab.analyst])
    let before = try Data(contentsOf: URL(fileURLWithPath: later))
    #expect(
      try BundleCoSigner.coSign(bundlePath: later, key: lab.auditor).get() == .added(keyID: lab.auditor.publicKey.keyID)
    )
    #expect(try Data(contentsOf: URL(fileURLWithPath: later)) == Data(contentsOf: URL(fileURLWithPath: both)))
    #expect(
      try BundleCoSigner.coSign(bundlePath: later, key: lab.auditor).get()
        == .alreadySigned(keyID: lab.auditor.publicKey.keyID))
    #expect(try Data(contentsOf: URL(fileURLWithPath: later)) == Data(contentsOf: URL(fileURLWithPath: both)))
    // The manifest member is byte-identical before and after.
    let manifestBefore = before.prefix(1024)
    #expect(try Data(contentsOf: URL(fileURLWithPath: later)).prefix(1024) == manifestBefore)
  }

  @Test func thresholdCountsDistinctTrustedKeys() throws {
    let lab = try BundleLab()
    let path = try lab.seal("a.sfb.tar", keys: [lab.analyst, lab.auditor])
    if case .rejected(let finding) = try lab.verify(path, trusting: [lab.analyst, lab.auditor], threshold: 2) {
      Issue.record("threshold 2 with both keys failed: \(finding)")
    }
    #expect(code(try lab.verify(path, trusting: [lab.analyst])) == .sigUntrustedKey)
    if case .rejected(let finding) = try lab.verify(path, trusting: [lab.analyst], ignoreUntrusted: true) {
      Issue.record("--ignore-untrusted with one trusted signer failed: \(finding)")
    }
    let single = try lab.seal("one.sfb.tar", keys: [lab.analyst])
    #expect(code(try lab.verify(single, trusting: [lab.analyst, lab.auditor], threshold: 2)) == .sigThresholdNotMet)
    // The same key given twice is one key: threshold 2 is a configuration error.
    #expect(throws: VerifyConfigurationError.self) {
      _ = try TrustPolicy(trustedKeys: [lab.analyst.publicKey, lab.analyst.publicKey], threshold: 2)
    }
  }

  @Test func anUntrustedCoSignerNamesIgnoreUntrustedWhenATrustedSignatureVerifies() throws {
    let lab = try BundleLab()
    let path = try lab.seal("a.sfb.tar", keys: [lab.analyst, lab.auditor])
    guard case .rejected(let finding) = try lab.verify(path, trusting: [lab.analyst]) else {
      Issue.record("an untrusted co-signer was accepted")
      return
    }
    #expect(finding.code == .sigUntrustedKey)
    #expect(finding.detail.contains("--ignore-untrusted"))
    #expect(finding.detail.contains(lab.analyst.publicKey.keyID))
    // Nothing trusted verified: the hint would be wrong, so it is not given.
    let stranger = Ed25519PrivateKey.generate()
    guard case .rejected(let alone) = try lab.verify(path, trusting: [stranger]) else {
      Issue.record("a bundle signed by no trusted key was accepted")
      return
    }
    #expect(alone.code == .sigUntrustedKey)
    #expect(!alone.detail.contains("--ignore-untrusted"))
  }

  @Test func sameInputsGiveTheSameBytes() throws {
    let lab = try BundleLab()
    let first = try Data(contentsOf: URL(fileURLWithPath: try lab.seal("1.sfb.tar", keys: [lab.analyst])))
    let second = try Data(contentsOf: URL(fileURLWithPath: try lab.seal("2.sfb.tar", keys: [lab.analyst])))
    #expect(first == second)
  }

  @Test func everyChangedByteIsRejectedAndNoneCrashes() throws {
    let lab = try BundleLab()
    let original = try [UInt8](Data(contentsOf: URL(fileURLWithPath: try lab.seal("a.sfb.tar", keys: [lab.analyst]))))
    let policy = try TrustPolicy(trustedKeys: [lab.analyst.publicKey])
    let verifier = BundleVerifier(policy: policy, depth: .deep)
    var codes: Set<ReasonCode> = []
    // Every byte of the (small) archive, flipped one at a time.
    for offset in stride(from: 0, to: original.count, by: 1) {
      var tampered = original
      tampered[offset] ^= 0x20
      guard case .rejected(let finding) = try verifier.verify(source: MemoryByteSource(tampered), path: "t") else {
        Issue.record("flip at byte \(offset) was accepted")
        continue
      }
      codes.insert(finding.code)
    }
    #expect(
      codes.isSuperset(of: [.tarBadHeader, .envelopePayloadMismatch, .blobDigestMismatch, .tarNoncanonicalPadding]))
  }

  @Test func truncationAndExtensionAreRejected() throws {
    let lab = try BundleLab()
    let original = try [UInt8](Data(contentsOf: URL(fileURLWithPath: try lab.seal("a.sfb.tar", keys: [lab.analyst]))))
    let verifier = BundleVerifier(policy: try TrustPolicy(trustedKeys: [lab.analyst.publicKey]), depth: .deep)
    func verdict(_ bytes: [UInt8]) throws -> ReasonCode? {
      code(try verifier.verify(source: MemoryByteSource(bytes), path: "t"))
    }
    #expect(try verdict(Array(original.dropLast(512))) == .tarTruncated)
    #expect(try verdict(original + [UInt8](repeating: 0, count: 512)) == .tarTrailingData)
    #expect(try verdict(original + [UInt8](repeating: 0, count: 10240 - original.count % 10240)) == .tarTrailingData)
    #expect(try verdict([]) == .tarTruncated)
    #expect(try verdict(Array("not a tar".utf8)) == .tarTruncated)
  }
}

@Suite struct ConcurrentCheckOrderTests {
  /// Blobs are checked several at once, largest first; the finding must still be the one of the
  /// first damaged blob in manifest order, for every pair of damaged blobs.
  @Test func theFindingIsTheFirstDamagedBlobInManifestOrderWhateverTheSchedule() throws {
    let lab = try BundleLab()
    let header = SegmentHeader(signal: .traces, tenant: "acme", node: "node-a")
    var segments: [SealedSegment] = []
    var seq: UInt64 = 0
    // Sizes out of step with any order the manifest could have.
    for count in [1, 40, 3, 80, 2, 20] {
      let records = (0..<count).map { index -> SegmentRecord in
        defer { seq += 1 }
        return SegmentRecord(
          seq: seq, receivedUnixNano: 5, request: Wire.traces([(100 + seq, 200 + seq + UInt64(index) * 7)]))
      }
      segments.append(try SegmentSealer.seal(header: header, records: records))
    }
    let path = lab.path("many.sfb.tar")
    try BundleSealer.seal(segments: segments, facts: BundleLab.facts, signingKeys: [lab.analyst], outputPath: path)
    guard case .verified(let clean) = try lab.verify(path, trusting: [lab.analyst]) else {
      Issue.record("the undamaged bundle must verify")
      return
    }
    let original = try [UInt8](Data(contentsOf: URL(fileURLWithPath: path)))
    let blobs = clean.manifest.blobs
    #expect(Set(blobs.map(\.size)).count > 3, "blobs of different sizes")
    func dataOffset(_ blob: BlobEntry) throws -> Int {
      let name = Array(blob.path.utf8)
      let header = try #require(ByteSearch.find(name, in: original))
      return header + 512
    }
    for first in blobs.indices {
      for second in blobs.indices where second > first {
        var damaged = original
        for blob in [blobs[first], blobs[second]] {
          damaged[try dataOffset(blob) + Int(blob.size) / 2] ^= 0x01
        }
        let damagedPath = lab.path("damaged.sfb.tar")
        try Data(damaged).write(to: URL(fileURLWithPath: damagedPath))
        let result = try lab.verify(damagedPath, trusting: [lab.analyst])
        guard case .rejected(let finding) = result else {
          Issue.record("damage in blobs \(first) and \(second) was accepted")
          continue
        }
        #expect(finding.code == .blobDigestMismatch)
        #expect(finding.detail.hasPrefix(blobs[first].path), "blobs \(first), \(second): \(finding.detail)")
      }
    }
  }
}

/// Finds a tar member header by its name (headers start on 512-byte blocks; the same name also
/// appears inside manifest.json).
enum ByteSearch {
  static func find(_ needle: [UInt8], in haystack: [UInt8]) -> Int? {
    guard needle.count <= haystack.count else { return nil }
    for start in stride(from: 0, through: haystack.count - needle.count, by: 512) {
      if haystack[start..<(start + needle.count)].elementsEqual(needle) { return start }
    }
    return nil
  }
}
