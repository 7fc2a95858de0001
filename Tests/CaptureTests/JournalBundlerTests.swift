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
    var options = JournalOptions()
    options.minFreeBytes = 0
    let journal = try Journal(dataDirectory: scratch.path, nodeID: "node-b", options: options, logger: logger)
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
}
