import EvidenceIO
import Foundation
import Journal
import Logging
import Manifest
import Seal
import Signing
import Testing
import Verify
import WireTestSupport

/// The `bundle` step of a capture journal, without the CLI: scope defaults, the window's
/// selection and the errors a user sees.
@Suite struct JournalBundlerTests {
  let logger = Logger(label: "journal-bundler-tests")

  func journal(in scratch: ScratchDirectory, receivedAt times: [UInt64], tenant: String = "acme") async throws {
    try await journal(in: scratch.path, nodeID: "node-b", receivedAt: times, tenant: tenant)
  }

  /// A capture node's journal in `dataDirectory`; with `segmentPerRecord` each record rotates
  /// its own segment, so a stream has a segment file per seq.
  func journal(
    in dataDirectory: String, nodeID: String, receivedAt times: [UInt64], tenant: String = "acme",
    segmentPerRecord: Bool = false
  ) async throws {
    var options = JournalOptions()
    options.minFreeBytes = 0
    if segmentPerRecord { options.maxSegmentBytes = 1 }
    let journal = try Journal(dataDirectory: dataDirectory, nodeID: nodeID, options: options, logger: logger)
    for (index, time) in times.enumerated() {
      let request = AdmittedRequest(
        signal: .traces, tenant: tenant, request: Wire.traces([(UInt64(100 + index), UInt64(200 + index))]),
        receivedUnixNano: time)
      let result = await withCheckedContinuation { continuation in
        journal.append(request) { continuation.resume(returning: $0) }
      }
      _ = try result.get()
    }
    await journal.stop()
  }

  @Test func aTimeRangeScopeStatesTheDocumentedDefaults() {
    let from: UInt64 = 1_764_064_800_000_000_000  // 2025-11-25T10:00:00Z
    let to = from + 3_600_000_000_000
    let scope = BundleScope.timeRange(from: from, to: to, id: nil, reason: nil, declaredBy: nil, tenant: "acme")
    #expect(scope.window == from...to)
    #expect(scope.tenants == ["acme"])
    #expect(!scope.carriesAuditStream)
    #expect(scope.facts.incident.id == "capture-20251125T100000Z-20251125T110000Z")
    #expect(
      scope.facts.incident.reason
        == "captured OTLP from 2025-11-25T10:00:00.000000000Z to 2025-11-25T11:00:00.000000000Z")
    #expect(scope.facts.incident.declaredBy == "stella-forensics bundle")
    #expect(scope.facts.incident.declaredAtUnixNano == to)
    #expect(BundleScope.compactUTC(from + 5) == "20251125T100000000000005Z")
  }

  @Test func anIncidentEndingBeforeItsLookBackStillMakesAWindow() {
    let facts = IncidentFacts(id: "inc-1", reason: "r", declaredBy: "soc", declaredAtUnixNano: 50)
    let scope = BundleScope.incident(facts, windowStart: 100, end: 40, tenants: nil, carriesAuditStream: true)
    #expect(scope.window == 100...100)
  }

  @Test func sealsOnlyTheWindowAndTheBundleVerifies() async throws {
    let scratch = try ScratchDirectory()
    try await journal(in: scratch, receivedAt: [1_000, 2_000, 3_000])
    let key = Ed25519PrivateKey.generate()
    let out = scratch.file("window.sfb.tar")
    let scope = BundleScope.timeRange(from: 1_500, to: 3_000, id: "w", reason: nil, declaredBy: nil, tenant: nil)
    let manifest = try JournalBundler.seal(
      dataDirectory: scratch.path, scope: scope, signingKeys: [key], outputPath: out, replacing: false)
    // Whole segments are taken: the one open segment holds all three records.
    #expect(manifest.blobs.map(\.recordCount).reduce(0, +) == 3)
    #expect(manifest.incident.id == "w")
    #expect(manifest.capture.nodes == ["node-b"])
    let policy = try TrustPolicy(trustedKeys: [key.publicKey], threshold: 1)
    let result = try BundleVerifier(policy: policy, depth: .deep).verify(path: out)
    guard case .verified = result else {
      Issue.record("bundle of the window rejected: \(result)")
      return
    }
  }

  @Test func anEmptyWindowNamesItsTimesAndTenants() async throws {
    let scratch = try ScratchDirectory()
    try await journal(in: scratch, receivedAt: [1_000])
    let scope = BundleScope.timeRange(
      from: 5_000, to: 6_000, id: nil, reason: nil, declaredBy: nil, tenant: "acme")
    #expect {
      _ = try JournalBundler.seal(
        dataDirectory: scratch.path, scope: scope, signingKeys: [Ed25519PrivateKey.generate()],
        outputPath: scratch.file("empty.sfb.tar"), replacing: false)
    } throws: { error in
      guard let error = error as? JournalBundleError else { return false }
      return error.code == .emptyWindow
        && error.message
          == "no captured records arrived between 1970-01-01T00:00:00.000005000Z and 1970-01-01T00:00:00.000006000Z for tenant(s) acme"
    }
    #expect(!FileManager.default.fileExists(atPath: scratch.file("empty.sfb.tar")))
  }

  // MARK: - Several capture nodes

  func verifiesDeeply(_ path: String, key: Ed25519PrivateKey) throws -> Bool {
    let policy = try TrustPolicy(trustedKeys: [key.publicKey], threshold: 1)
    guard case .verified = try BundleVerifier(policy: policy, depth: .deep).verify(path: path) else { return false }
    return true
  }

  func everything(_ id: String) -> BundleScope {
    BundleScope.timeRange(from: 0, to: 1_000_000, id: id, reason: nil, declaredBy: nil, tenant: nil)
  }

  @Test func twoNodesMakeOneBundleListingBothWhateverTheirOrder() async throws {
    let scratch = try ScratchDirectory()
    let nodeA = scratch.file("a")
    let nodeB = scratch.file("b")
    try await journal(in: nodeA, nodeID: "node-a", receivedAt: [1_000, 2_000, 3_000])
    try await journal(
      in: nodeB, nodeID: "node-b", receivedAt: [1_500, 2_500], tenant: "globex", segmentPerRecord: true)
    let key = Ed25519PrivateKey.generate()
    let manifest = try JournalBundler.seal(
      dataDirectories: [nodeB, nodeA], scope: everything("two"), signingKeys: [key],
      outputPath: scratch.file("ba.sfb.tar"), replacing: false)
    #expect(manifest.capture.nodes == ["node-a", "node-b"])
    #expect(Set(manifest.blobs.map(\.stream.description)) == ["node-a/traces/acme", "node-b/traces/globex"])
    #expect(manifest.blobs.filter { $0.node == "node-a" }.map(\.recordCount).reduce(0, +) == 3)
    #expect(manifest.blobs.filter { $0.node == "node-b" }.map(\.recordCount).reduce(0, +) == 2)
    // The earliest arrival over both nodes starts the capture window.
    #expect(manifest.capture.startUnixNano == 1_000)
    #expect(try verifiesDeeply(scratch.file("ba.sfb.tar"), key: key))
    // The manifest orders nodes and blobs (§3, §4), so the order of --data changes no byte.
    _ = try JournalBundler.seal(
      dataDirectories: [nodeA, nodeB], scope: everything("two"), signingKeys: [key],
      outputPath: scratch.file("ab.sfb.tar"), replacing: false)
    #expect(
      FileManager.default.contents(atPath: scratch.file("ab.sfb.tar"))
        == FileManager.default.contents(atPath: scratch.file("ba.sfb.tar")))
  }

  @Test func aNodeWithoutRecordsInTheWindowIsLeftOutOfTheManifest() async throws {
    let scratch = try ScratchDirectory()
    try await journal(in: scratch.file("a"), nodeID: "node-a", receivedAt: [1_000])
    try await journal(in: scratch.file("b"), nodeID: "node-b", receivedAt: [9_000_000])
    let manifest = try JournalBundler.seal(
      dataDirectories: [scratch.file("a"), scratch.file("b")], scope: everything("one-of-two"),
      signingKeys: [Ed25519PrivateKey.generate()], outputPath: scratch.file("out.sfb.tar"), replacing: false)
    // §4: capture.nodes equals the nodes of the blobs.
    #expect(manifest.capture.nodes == ["node-a"])
  }

  @Test func twoDirectoriesOfOneNodeAreRefused() async throws {
    let scratch = try ScratchDirectory()
    try await journal(in: scratch.file("a"), nodeID: "node-a", receivedAt: [1_000])
    try await journal(in: scratch.file("copy"), nodeID: "node-a", receivedAt: [2_000])
    let out = scratch.file("out.sfb.tar")
    #expect {
      try JournalBundler.seal(
        dataDirectories: [scratch.file("a"), scratch.file("copy")], scope: everything("dup"),
        signingKeys: [Ed25519PrivateKey.generate()], outputPath: out, replacing: false)
    } throws: { error in
      guard let error = error as? JournalBundleError else { return false }
      return error.code == .nodeIdentity
        && error.message.hasPrefix(
          "\(scratch.file("a")) and \(scratch.file("copy")) both hold the journal of node \"node-a\"")
    }
    #expect(!FileManager.default.fileExists(atPath: out))
  }

  @Test func theSameDirectoryTwiceIsRefusedHoweverItIsSpelled() async throws {
    let scratch = try ScratchDirectory()
    try await journal(in: scratch.file("a"), nodeID: "node-a", receivedAt: [1_000])
    let again = scratch.path + "/./a"
    #expect {
      try JournalBundler.seal(
        dataDirectories: [scratch.file("a"), again], scope: everything("twice"),
        signingKeys: [Ed25519PrivateKey.generate()], outputPath: scratch.file("out.sfb.tar"), replacing: false)
    } throws: { error in
      guard let error = error as? JournalBundleError else { return false }
      return error.code == .nodeIdentity && error.message.hasPrefix("data directory \(again) is given twice")
    }
  }

  @Test func aDirectoryWithoutANodeIDIsRefusedAmongSeveral() async throws {
    let scratch = try ScratchDirectory()
    try await journal(in: scratch.file("a"), nodeID: "node-a", receivedAt: [1_000])
    try await journal(in: scratch.file("b"), nodeID: "node-b", receivedAt: [1_000])
    try FileManager.default.removeItem(atPath: scratch.file("b/node-id"))
    #expect {
      try JournalBundler.seal(
        dataDirectories: [scratch.file("a"), scratch.file("b")], scope: everything("no-id"),
        signingKeys: [Ed25519PrivateKey.generate()], outputPath: scratch.file("out.sfb.tar"), replacing: false)
    } throws: { error in
      (error as? JournalBundleError)?.code == .nodeIdentity
        && (error as? JournalBundleError)?.message.hasPrefix("\(scratch.file("b")) names no capture node") == true
    }
  }

  /// Deletes the sealed segment file holding `seq` of node `nodeID`'s traces of `tenant`.
  func deleteSegment(holding seq: UInt64, in dataDirectory: String, tenant: String) throws {
    let stream = JournalLayout(dataDirectory: dataDirectory).streamDirectory(signal: .traces, tenant: tenant)
    let name = String(repeating: "0", count: 20 - String(seq).count) + String(seq) + ".zst"
    try FileManager.default.removeItem(atPath: stream + "/" + name)
  }

  @Test func aDeletedMiddleSegmentNamesTheNodeStreamAndMissingSeqs() async throws {
    let scratch = try ScratchDirectory()
    try await journal(in: scratch.file("a"), nodeID: "node-a", receivedAt: [1_000, 2_000])
    try await journal(
      in: scratch.file("b"), nodeID: "node-b", receivedAt: [1_000, 2_000, 3_000, 4_000, 5_000], tenant: "globex",
      segmentPerRecord: true)
    try deleteSegment(holding: 2, in: scratch.file("b"), tenant: "globex")
    let out = scratch.file("gap.sfb.tar")
    #expect {
      try JournalBundler.seal(
        dataDirectories: [scratch.file("a"), scratch.file("b")], scope: everything("gap"),
        signingKeys: [Ed25519PrivateKey.generate()], outputPath: out, replacing: false)
    } throws: { error in
      guard let error = error as? JournalBundleError, error.code == .sequenceGap,
        let missing = error.cause as? MissingRecords
      else { return false }
      return missing
        == MissingRecords(
          dataDirectory: scratch.file("b"), stream: StreamKey(node: "node-b", signal: .traces, tenant: "globex"),
          seqs: 2...2)
        && error.message.hasPrefix(
          "node node-b, stream traces of tenant globex: records 2...2 are missing from \(scratch.file("b"))")
    }
    #expect(!FileManager.default.fileExists(atPath: out))
  }

  @Test func aSingleDirectoryWithADeletedMiddleSegmentIsRefusedToo() async throws {
    let scratch = try ScratchDirectory()
    try await journal(
      in: scratch.path, nodeID: "node-b", receivedAt: [1_000, 2_000, 3_000, 4_000, 5_000, 6_000],
      segmentPerRecord: true)
    try deleteSegment(holding: 2, in: scratch.path, tenant: "acme")
    try deleteSegment(holding: 3, in: scratch.path, tenant: "acme")
    #expect {
      try JournalBundler.seal(
        dataDirectory: scratch.path, scope: everything("gap"), signingKeys: [Ed25519PrivateKey.generate()],
        outputPath: scratch.file("gap.sfb.tar"), replacing: false)
    } throws: { error in
      ((error as? JournalBundleError)?.cause as? MissingRecords)?.seqs == 2...3
    }
    // A window after the hole holds no gap, and bundles.
    let after = BundleScope.timeRange(from: 4_000, to: 6_000, id: "after", reason: nil, declaredBy: nil, tenant: nil)
    let manifest = try JournalBundler.seal(
      dataDirectory: scratch.path, scope: after, signingKeys: [Ed25519PrivateKey.generate()],
      outputPath: scratch.file("after.sfb.tar"), replacing: false)
    #expect(manifest.blobs.map(\.firstSeq).sorted() == [4, 5])
  }
}
