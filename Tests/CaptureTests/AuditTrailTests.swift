import Audit
import EvidenceIO
import Foundation
import Keys
import Logging
import Manifest
import OTLPProto
import Seal
import Signing
import Testing
import Verify

@testable import Capture
@testable import Incidents
@testable import Ingest
@testable import Journal
@testable import Receivers

/// The audit stream: the record layout the README documents, the hash chain, the trail's
/// journaling through the admin gate, its restart, and the verifier's chain check.
@Suite struct AuditTrailTests {
  let logger = Logger(label: "audit-tests")

  func journalOptions() -> JournalOptions {
    var options = JournalOptions()
    options.durability = .groupCommit
    options.minFreeBytes = 0
    return options
  }

  func record(_ action: String, previous: String = AuditStream.genesisSHA256, time: UInt64 = 1_000) -> AuditRecord {
    AuditRecord(
      action: action, request: "POST /incidents", principal: "alice", certificateIdentity: "CN=alice",
      peer: "127.0.0.1:5",
      parameters: #"{"declaredBy":"mallory","reason":"r"}"#, result: .done, status: 201, note: "mallory",
      incidentID: "INC-1", timeUnixNano: time, previousSHA256: previous)
  }

  @Test func aRecordIsOneLogRecordWithTheDocumentedAttributesAndReadsBack() throws {
    let original = record("incident.start")
    let bytes = try original.serializedRequest(node: "node-a")
    #expect(try AuditRecord(request: bytes) == original)

    // The layout as an independent reader sees it: generated OTLP types, attribute by attribute.
    let export = try Opentelemetry_Proto_Collector_Logs_V1_ExportLogsServiceRequest(serializedBytes: bytes)
    let logs = export.resourceLogs.flatMap(\.scopeLogs).flatMap(\.logRecords)
    #expect(logs.count == 1)
    #expect(export.resourceLogs.first?.scopeLogs.first?.scope.name == "stella-forensics.audit")
    let log = try #require(logs.first)
    #expect(log.timeUnixNano == 1_000)
    var attributes: [String: String] = [:]
    for pair in log.attributes {
      switch pair.value.value {
      case .stringValue(let text)?: attributes[pair.key] = text
      case .intValue(let number)?: attributes[pair.key] = String(number)
      default: Issue.record("attribute \(pair.key) is neither a string nor an int")
      }
    }
    #expect(
      attributes == [
        "stella.audit.action": "incident.start", "stella.audit.request": "POST /incidents",
        "stella.audit.principal": "alice", "stella.audit.certificate_identity": "CN=alice",
        "stella.audit.peer": "127.0.0.1:5", "stella.audit.parameters": #"{"declaredBy":"mallory","reason":"r"}"#,
        "stella.audit.result": "done", "stella.audit.status": "201", "stella.audit.note": "mallory",
        "stella.audit.incident_id": "INC-1", "stella.audit.prev_sha256": AuditStream.genesisSHA256,
      ])
  }

  @Test func theChainHoldsAndNamesTheRecordAfterAWithheldOne() throws {
    var requests: [[UInt8]] = []
    var previous = AuditStream.genesisSHA256
    for index in 0..<4 {
      let bytes = try record("incident.start", previous: previous, time: UInt64(index)).serializedRequest(node: "n")
      requests.append(bytes)
      previous = AuditStream.chainHash(ofRequest: bytes)
    }
    let whole = requests.enumerated().map { (seq: UInt64($0.offset), request: $0.element) }
    #expect(AuditChain.firstBreak(in: whole) == nil)
    // A bundle starting mid-stream links to a record outside it: nothing to check for its first.
    #expect(AuditChain.firstBreak(in: Array(whole.dropFirst(2))) == nil)

    // Record 1 withheld and the rest renumbered, so the seqs alone look whole.
    let withheld = [requests[0], requests[2], requests[3]].enumerated().map {
      (seq: UInt64($0.offset), request: $0.element)
    }
    #expect(AuditChain.firstBreak(in: withheld)?.seq == 1)
    // The stream's first record must chain to the genesis hash.
    let headless = [requests[1]].map { (seq: UInt64(0), request: $0) }
    #expect(AuditChain.firstBreak(in: headless)?.seq == 0)
  }

  @Test func reservedTenantIsRefusedToClientsConfigurationAndImport() {
    let resolver = TenantResolver(policy: TenantPolicy())
    #expect(throws: RejectedRequest.self) {
      try resolver.resolve(transportTenant: AuditStream.tenant, resourceTenants: [])
    }
    #expect(throws: (any Error).self) {
      var configuration = CaptureConfiguration(profile: .default)
      configuration.tenancy.defaultTenant = AuditStream.tenant
      try configuration.validate()
    }
    // Nor can `import` make a stream that poses as a capture node's audit stream.
    let refused = #expect(throws: EvidenceImportError.self) {
      try EvidenceImport.prepare(paths: [], options: ImportOptions(tenant: AuditStream.tenant))
    }
    #expect(refused?.description.contains("reserved") == true)
  }

  /// The gate's refusals and actions become chained records of the audit stream, durable when
  /// the gate answers; the chain continues across a restart; a bundle of the stream verifies
  /// deeply, and the same bundle with one record withheld (renumbered, re-signed) does not.
  @Test func refusalsAndActionsAreJournaledChainedAcrossARestartAndVerified() async throws {
    let scratch = try ScratchDirectory()
    let tokens = AdminTokens(
      path: "test",
      entries: [
        .init(name: "alice", role: .responder, digest: SHA256Digest.of(Array("alice-token".utf8))),
        .init(name: "vera", role: .viewer, digest: SHA256Digest.of(Array("vera-token".utf8))),
      ])
    func gate(_ journal: Journal) throws -> AdminGate {
      AdminGate(
        tokens: tokens, listenHost: "127.0.0.1",
        events: AdminEventLog(logger: logger, audit: try AuditTrail(journal: journal, logger: logger)))
    }
    func post(_ path: String, token: String?, body: String) -> AdminRequest {
      var headers = ["host": "127.0.0.1:4320", "content-type": "application/json"]
      if let token { headers["authorization"] = "Bearer \(token)" }
      return AdminRequest(method: "POST", path: path, headers: headers, body: Array(body.utf8), peer: "127.0.0.1:999")
    }
    let started = AdminResponse.json(201, .object([("id", .string("INC-7"))]))

    var journal = try Journal(dataDirectory: scratch.path, nodeID: "node-a", options: journalOptions(), logger: logger)
    var admin = try gate(journal)
    let anonymous = await admin.handle(post("/incidents", token: nil, body: #"{"reason":"x"}"#)) { _ in started }
    #expect(anonymous.status == 401)
    let viewer = await admin.handle(post("/incidents", token: "vera-token", body: #"{"reason":"x"}"#)) { _ in started }
    #expect(viewer.status == 403)
    let alice = await admin.handle(
      post("/incidents", token: "alice-token", body: #"{"reason":"x","declaredBy":"mallory"}"#)
    ) { principal in
      #expect(principal.name == "alice")
      return started
    }
    #expect(alice.status == 201)
    // Reads are not audited.
    _ = await admin.handle(
      AdminRequest(
        method: "GET", path: "/status", headers: ["host": "127.0.0.1", "authorization": "Bearer vera-token"])
    ) { _ in .text(200, "ok") }
    await journal.stop()

    journal = try Journal(dataDirectory: scratch.path, nodeID: "node-a", options: journalOptions(), logger: logger)
    admin = try gate(journal)
    _ = await admin.handle(post("/incidents/INC-7/stop", token: "alice-token", body: "{}")) { _ in
      .json(200, .object([("id", .string("INC-7"))]))
    }
    await journal.stop()

    let records = try Self.auditStream(in: scratch)
    #expect(records.map(\.seq) == [0, 1, 2, 3])
    let decoded = try records.map { try AuditRecord(request: $0.request) }
    #expect(decoded.map(\.action) == ["incident.start", "incident.start", "incident.start", "incident.stop"])
    #expect(decoded.map(\.result) == [.refused, .refused, .done, .done])
    #expect(decoded.map(\.status) == [401, 403, 201, 200])
    #expect(decoded.map(\.principal) == [nil, "vera", "alice", "alice"])
    #expect(decoded[2].note == "mallory")
    #expect(decoded[2].incidentID == "INC-7")
    #expect(decoded[3].incidentID == "INC-7")
    #expect(decoded.allSatisfy { $0.peer == "127.0.0.1:999" })
    #expect(AuditChain.firstBreak(in: records.map { ($0.seq, $0.request) }) == nil)

    let key = Ed25519PrivateKey.generate()
    let policy = try TrustPolicy(trustedKeys: [key.publicKey], threshold: 1)
    func bundle(_ kept: [SegmentRecord], name: String) throws -> VerificationResult {
      let segment = try SegmentSealer.seal(
        header: SegmentHeader(signal: .logs, tenant: AuditStream.tenant, node: "node-a"), records: kept)
      let out = scratch.file(name)
      try BundleSealer.seal(
        segments: [segment],
        facts: BundleFacts(
          incident: IncidentFacts(id: "INC-7", reason: "test", declaredBy: "alice", declaredAtUnixNano: 1),
          captureStartUnixNano: 0, captureEndUnixNano: 1, redactionPolicy: .none, tool: .current),
        signingKeys: [key], outputPath: out)
      return try BundleVerifier(policy: policy, depth: .deep).verify(path: out)
    }
    guard case .verified = try bundle(records, name: "whole.sfb.tar") else {
      Issue.record("the whole audit stream did not verify")
      return
    }
    var withheld = records
    withheld.remove(at: 1)
    for index in withheld.indices { withheld[index].seq = UInt64(index) }
    guard case .rejected(let finding) = try bundle(withheld, name: "withheld.sfb.tar") else {
      Issue.record("a bundle with an audit record withheld verified")
      return
    }
    #expect(finding.code == .auditChainBroken)
    #expect(finding.detail.contains("seq 1"))
  }

  @Test func unauthenticatedRefusalsOverBudgetAreCountedInTheNextRecord() async throws {
    let scratch = try ScratchDirectory()
    let journal = try Journal(dataDirectory: scratch.path, nodeID: "node-a", options: journalOptions(), logger: logger)
    let trail = try AuditTrail(journal: journal, logger: logger, refusalBudget: .init(burst: 2, perSecond: 0))
    let anonymous = AuditRecord(
      action: "incident.start", principal: nil, peer: "127.0.0.1:9", result: .refused, status: 401,
      reason: "no Authorization header", timeUnixNano: 0, previousSHA256: AuditStream.genesisSHA256)
    var outcomes: [AuditTrail.Outcome] = []
    for _ in 0..<5 { outcomes.append(await trail.record(anonymous)) }
    #expect(outcomes.filter { $0 == .suppressed }.count == 3)
    // A refusal of an authenticated principal is always recorded, and carries the count.
    var viewer = anonymous
    viewer.principal = "vera"
    viewer.status = 403
    #expect(await trail.record(viewer) == .journaled(JournalReceipt(seq: 2)))
    await journal.stop()

    let records = try Self.auditStream(in: scratch).map { try AuditRecord(request: $0.request) }
    #expect(records.map(\.suppressedRefusals) == [0, 0, 3])
    #expect(records.map(\.principal) == [nil, nil, "vera"])
  }

  /// Every record of the audit stream journaled in `scratch`, in seq order.
  static func auditStream(in scratch: ScratchDirectory) throws -> [SegmentRecord] {
    let segments = try JournalSelection.select(
      dataDirectory: scratch.path, fromUnixNano: 0, toUnixNano: .max, tenants: [AuditStream.tenant]
    ).segments
    var records: [SegmentRecord] = []
    for segment in segments {
      guard case .bytes(let blob) = segment.data else {
        let source = try FileByteSource(path: try #require(Self.path(of: segment.data)))
        records += try Self.records(of: try source.bytes(at: 0, count: source.count), segment.entry)
        continue
      }
      records += try Self.records(of: blob, segment.entry)
    }
    return records
  }

  static func path(of data: MemberData) -> String? {
    if case .fileRange(let path, _, _) = data { return path }
    return nil
  }

  static func records(of blob: [UInt8], _ entry: BlobEntry) throws -> [SegmentRecord] {
    let segment = try Zstd.decompress(blob, maxOutputBytes: Int(entry.uncompressedSize))
    var parser = SegmentStreamParser()
    var records: [SegmentRecord] = []
    try segment.withUnsafeBytes { raw in
      try parser.consume(raw) {
        records.append(SegmentRecord(seq: $0.seq, receivedUnixNano: $0.receivedUnixNano, request: Array($0.request)))
      }
    }
    try parser.finish()
    return records
  }
}
