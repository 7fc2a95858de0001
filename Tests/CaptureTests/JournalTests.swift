import EvidenceIO
import Foundation
import Keys
import Logging
import Manifest
import Seal
import Signing
import Synchronization
import Testing
import Verify
import WireTestSupport

@testable import Capture
@testable import Journal

@Suite struct JournalTests {
  let logger = Logger(label: "journal-tests")

  func options(_ durability: DurabilityPolicy = .groupCommit) -> JournalOptions {
    var options = JournalOptions()
    options.durability = durability
    options.minFreeBytes = 0
    return options
  }

  /// Appends and waits for every acknowledgement.
  func append(_ journal: Journal, _ requests: [AdmittedRequest]) async -> [Result<JournalReceipt, JournalError>] {
    await withTaskGroup(of: (Int, Result<JournalReceipt, JournalError>).self) { group in
      for (index, request) in requests.enumerated() {
        group.addTask {
          await withCheckedContinuation { continuation in
            journal.append(request) { continuation.resume(returning: (index, $0)) }
          }
        }
      }
      var results = [Result<JournalReceipt, JournalError>?](repeating: nil, count: requests.count)
      for await (index, result) in group { results[index] = result }
      return results.compactMap { $0 }
    }
  }

  func traces(_ index: Int, tenant: String = "acme", received: UInt64 = 1_000) -> AdmittedRequest {
    AdmittedRequest(
      signal: .traces, tenant: tenant, request: Wire.traces([(UInt64(100 + index), UInt64(200 + index))]),
      receivedUnixNano: received + UInt64(index))
  }

  @Test(arguments: DurabilityPolicy.allCases)
  func numbersEachStreamFromZeroAndSealsIntoVerifiableBlobs(durability: DurabilityPolicy) async throws {
    let scratch = try ScratchDirectory()
    let journal = try Journal(
      dataDirectory: scratch.path, nodeID: "node-a", options: options(durability), logger: logger)
    let requests = (0..<20).map { traces($0, tenant: $0 % 2 == 0 ? "acme" : "globex") }
    let results = await append(journal, requests)
    let seqs = try results.map { try $0.get().seq }
    #expect(seqs.count == 20)
    #expect(Set(zip(requests, seqs).filter { $0.0.tenant == "acme" }.map(\.1)) == Set(0..<10))
    #expect(Set(zip(requests, seqs).filter { $0.0.tenant == "globex" }.map(\.1)) == Set(0..<10))
    await journal.stop()

    let segments = try JournalSelection.select(
      dataDirectory: scratch.path, fromUnixNano: 0, toUnixNano: .max, tenants: nil
    ).segments
    #expect(segments.map(\.entry.recordCount).reduce(0, +) == 20)
    #expect(Set(segments.map(\.entry.tenant)) == ["acme", "globex"])
    #expect(segments.allSatisfy { $0.entry.node == "node-a" })
    try sealAndVerify(segments, in: scratch)
  }

  /// The sampler's archive: appends are never synced, the seal makes them durable, and every
  /// record is still in a sealed, verifiable segment; small segments rotate many times, so
  /// seals run on both compression lanes at once.
  @Test func aJournalOfCopiesSyncsOnlyAtTheSealAndSealsOnBothLanes() async throws {
    let scratch = try ScratchDirectory()
    var copies = options(.groupCommit)
    copies.syncsAppends = false
    copies.maxSegmentBytes = 1
    let journal = try Journal(dataDirectory: scratch.path, nodeID: "node-a", options: copies, logger: logger)
    var seqs: [UInt64] = []
    for index in 0..<12 {
      // One at a time, so each record rotates its own segment.
      seqs += try await append(journal, [traces(index)]).map { try $0.get().seq }
    }
    #expect(seqs == Array(0..<12))
    #expect(journal.status().syncs == 0)
    await journal.stop()

    let segments = try JournalSelection.select(
      dataDirectory: scratch.path, fromUnixNano: 0, toUnixNano: .max, tenants: nil
    ).segments
    #expect(segments.count >= 11)
    #expect(segments.map(\.entry.recordCount).reduce(0, +) == 12)
    let ranges = segments.map { ($0.entry.firstSeq, $0.entry.firstSeq + $0.entry.recordCount) }.sorted { $0.0 < $1.0 }
    #expect(zip(ranges, ranges.dropFirst()).allSatisfy { $0.1 == $1.0 })
    try sealAndVerify(segments, in: scratch)
  }

  @Test func continuesNumberingAfterReopenAndKeepsTheNodeID() async throws {
    let scratch = try ScratchDirectory()
    var journal = try Journal(dataDirectory: scratch.path, nodeID: nil, options: options(), logger: logger)
    let node = journal.nodeID
    _ = await append(journal, (0..<3).map { traces($0) })
    await journal.stop()
    journal = try Journal(dataDirectory: scratch.path, nodeID: nil, options: options(), logger: logger)
    #expect(journal.nodeID == node)
    let results = await append(journal, [traces(3)])
    #expect(try results[0].get().seq == 3)
    await journal.stop()
    #expect(throws: JournalError.self) {
      _ = try Journal(dataDirectory: scratch.path, nodeID: "other-node", options: options(), logger: logger)
    }
  }

  @Test func refusesASecondProcessOnTheSameDataDirectory() async throws {
    let scratch = try ScratchDirectory()
    let journal = try Journal(dataDirectory: scratch.path, nodeID: "n", options: options(), logger: logger)
    // flock locks are per open file description, so a second open in this process conflicts too.
    #expect(throws: JournalError.self) {
      _ = try Journal(dataDirectory: scratch.path, nodeID: "n", options: options(), logger: logger)
    }
    await journal.stop()
  }

  @Test func recoveryCutsATornTailAndContinuesAfterTheLastWholeRecord() async throws {
    let scratch = try ScratchDirectory()
    let directory = JournalLayout(dataDirectory: scratch.path).streamDirectory(signal: .traces, tenant: "acme")
    try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    try "node-a\n".write(toFile: scratch.path + "/node-id", atomically: true, encoding: .utf8)
    let path = directory + "/00000000000000000000.open"
    let writer = try SegmentFileWriter(
      creating: path, header: SegmentHeader(signal: .traces, tenant: "acme", node: "node-a"), firstSeq: 0)
    for index in 0..<5 { try writer.append(request: traces(index).request, receivedUnixNano: 7) }
    try writer.sync()
    let whole = try Data(contentsOf: URL(fileURLWithPath: path))
    // A crash mid-append: the sixth record's first 10 bytes.
    let sixth = SegmentRecord(seq: 5, receivedUnixNano: 7, request: traces(5).request).framed()
    try (whole + Data(sixth.prefix(10))).write(to: URL(fileURLWithPath: path))

    let journal = try Journal(dataDirectory: scratch.path, nodeID: nil, options: options(), logger: logger)
    #expect(journal.recovery == [RecoveryReport(path: path, records: 5, cutBytes: 10)])
    let results = await append(journal, [traces(5)])
    #expect(try results[0].get().seq == 5)
    await journal.stop()
    let segments = try JournalSelection.select(
      dataDirectory: scratch.path, fromUnixNano: 0, toUnixNano: .max, tenants: ["acme"]
    ).segments
    #expect(segments.map(\.entry.recordCount) == [6])
    try sealAndVerify(segments, in: scratch)
  }

  @Test func aPolicyChangeSealsOpenSegmentsAndABundleNeverMixesPolicies() async throws {
    let scratch = try ScratchDirectory()
    let directory = JournalLayout(dataDirectory: scratch.path).streamDirectory(signal: .traces, tenant: "acme")
    try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    try "node-a\n".write(toFile: scratch.path + "/node-id", atomically: true, encoding: .utf8)
    // An open segment left by a run without redaction (a crash: nothing sealed it).
    let writer = try SegmentFileWriter(
      creating: directory + "/00000000000000000000.open",
      header: SegmentHeader(signal: .traces, tenant: "acme", node: "node-a"), firstSeq: 0)
    try writer.append(request: traces(0).request, receivedUnixNano: 1_000)
    try writer.sync()
    let policy = RedactionPolicyReference(id: "pii", sha256: String(repeating: "ab", count: 32))
    let journal = try Journal(
      dataDirectory: scratch.path, nodeID: nil, options: options(), redactionPolicy: policy, logger: logger)
    let results = await append(journal, [traces(1, received: 2_000)])
    #expect(try results[0].get().seq == 1)
    await journal.stop()
    let before = try JournalSelection.select(
      dataDirectory: scratch.path, fromUnixNano: 0, toUnixNano: 1_500, tenants: nil)
    #expect(before.redactionPolicy == .none)
    #expect(before.segments.map(\.entry.lastSeq) == [0])
    let after = try JournalSelection.select(
      dataDirectory: scratch.path, fromUnixNano: 1_500, toUnixNano: .max, tenants: nil)
    #expect(after.redactionPolicy == policy)
    #expect(after.segments.map(\.entry.firstSeq) == [1])
    #expect {
      _ = try JournalSelection.select(dataDirectory: scratch.path, fromUnixNano: 0, toUnixNano: .max, tenants: nil)
    } throws: { error in
      (error as? JournalError)?.kind == .configuration
    }
  }

  @Test func refusesToStartOnACorruptMiddle() throws {
    let scratch = try ScratchDirectory()
    let directory = JournalLayout(dataDirectory: scratch.path).streamDirectory(signal: .traces, tenant: "acme")
    try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    let path = directory + "/00000000000000000000.open"
    let writer = try SegmentFileWriter(
      creating: path, header: SegmentHeader(signal: .traces, tenant: "acme", node: "node-a"), firstSeq: 0)
    for index in 0..<3 { try writer.append(request: traces(index).request, receivedUnixNano: 7) }
    try writer.sync()
    var bytes = try Data(contentsOf: URL(fileURLWithPath: path))
    let headerLength = SegmentHeader(signal: .traces, tenant: "acme", node: "node-a").encoded().count
    bytes[headerLength + 20] ^= 0xFF
    try bytes.write(to: URL(fileURLWithPath: path))
    #expect {
      _ = try Journal(dataDirectory: scratch.path, nodeID: "node-a", options: options(), logger: logger)
    } throws: { error in
      (error as? JournalError)?.kind == .corrupt
    }
  }

  @Test func rotatesBySizeAndSelectsByArrivalTime() async throws {
    let scratch = try ScratchDirectory()
    var small = options()
    small.maxSegmentBytes = 64 << 10
    let journal = try Journal(dataDirectory: scratch.path, nodeID: "node-a", options: small, logger: logger)
    let big = [UInt8](repeating: 0x41, count: 30_000)
    for index in 0..<8 {
      var request = traces(index, received: UInt64(index) * 1_000_000_000)
      // A span with a 30 KB name keeps each record well over a tenth of the segment bound.
      request.request = Wire.field(1, bytes: Wire.field(2, bytes: Wire.field(2, bytes: Wire.field(5, bytes: big))))
      _ = await append(journal, [request])
    }
    await journal.stop()
    let all = try JournalSelection.select(dataDirectory: scratch.path, fromUnixNano: 0, toUnixNano: .max, tenants: nil)
      .segments
    #expect(all.count >= 3)
    #expect(all.map(\.entry.recordCount).reduce(0, +) == 8)
    let late = try JournalSelection.select(
      dataDirectory: scratch.path, fromUnixNano: 6_000_000_000, toUnixNano: .max, tenants: nil
    ).segments
    #expect(late.map(\.entry.lastSeq).max() == 7)
    #expect((late.map(\.entry.firstSeq).min() ?? 0) > 0)
    try sealAndVerify(late, in: scratch)
    #expect(
      try JournalSelection.select(dataDirectory: scratch.path, fromUnixNano: 0, toUnixNano: .max, tenants: ["nobody"])
        .segments.isEmpty)
  }

  @Test func refusesAppendsPastTheDiskBoundAndRecovers() async throws {
    let scratch = try ScratchDirectory()
    var bounded = options()
    bounded.maxJournalBytes = 2_000
    let journal = try Journal(dataDirectory: scratch.path, nodeID: "node-a", options: bounded, logger: logger)
    var accepted = 0
    var refused: JournalError?
    for index in 0..<100 {
      switch await append(journal, [traces(index)])[0] {
      case .success: accepted += 1
      case .failure(let error): refused = error
      }
      if refused != nil { break }
    }
    #expect(accepted > 0)
    #expect(refused?.kind == .full)
    #expect(journal.admissionProblem()?.kind == .full)
    #expect(journal.status().accepting == false)
    await journal.stop()
  }

  func sealAndVerify(_ segments: [SealedSegment], in scratch: ScratchDirectory) throws {
    let key = Ed25519PrivateKey.generate()
    let out = scratch.file("bundle.sfb.tar")
    try BundleSealer.seal(
      segments: segments,
      facts: BundleFacts(
        incident: IncidentFacts(id: "t", reason: "test", declaredBy: "tests", declaredAtUnixNano: 1),
        captureStartUnixNano: 0, captureEndUnixNano: 1, redactionPolicy: .none, tool: .current),
      signingKeys: [key], outputPath: out)
    let policy = try TrustPolicy(trustedKeys: [key.publicKey], threshold: 1)
    let result = try BundleVerifier(policy: policy, depth: .deep).verify(path: out)
    guard case .verified = result else {
      Issue.record("bundle of journal segments rejected: \(result)")
      return
    }
  }
}
