import Foundation
import Logging
import Manifest
import Testing
import WireTestSupport

@testable import Capture
@testable import Ingest
@testable import Journal
@testable import Receivers
@testable import Sampling

/// Bounds that keep one client from taking what others need: tenants, connections, descriptors.
@Suite struct ResourceLimitTests {
  let logger = Logger(label: "resource-limit-tests")

  func journal(_ scratch: ScratchDirectory) throws -> Journal {
    var options = JournalOptions()
    options.minFreeBytes = 0
    return try Journal(dataDirectory: scratch.path, nodeID: "node-a", options: options, logger: logger)
  }

  func export(_ pipeline: CapturePipeline, tenant: String) async -> Result<IngestReceipt, RejectedRequest> {
    await withCheckedContinuation { continuation in
      pipeline.export(
        body: Wire.traces([(100, 200)]), signal: .traces, encoding: .protobuf, tenantHeader: tenant
      ) { continuation.resume(returning: $0) }
    }
  }

  @Test func newTenantsPastTheLimitAreRefusedWhileKnownOnesAreServed() async throws {
    let scratch = try ScratchDirectory()
    let journal = try journal(scratch)
    let pipeline = CapturePipeline(
      journal: journal, maxInFlightBytes: 1 << 20, maxRequestBytes: 1 << 20, tenants: TenantPolicy(), maxTenants: 2)
    #expect((try? await export(pipeline, tenant: "acme").get()) != nil)
    #expect((try? await export(pipeline, tenant: "globex").get()) != nil)
    guard case .failure(let refused) = await export(pipeline, tenant: "initech") else {
      Issue.record("a third tenant was taken past a limit of 2")
      return
    }
    #expect(refused.kind == .tenantRejected)
    #expect(refused.message.contains("initech") && refused.message.contains("max-tenants"))
    // Known tenants keep being served after the refusal.
    #expect((try? await export(pipeline, tenant: "acme").get())?.seq == 1)
    #expect((try? await export(pipeline, tenant: "globex").get())?.seq == 1)
    #expect(pipeline.tenantCount == 2)
    let counted = pipeline.counterSnapshot
    #expect(counted.rejected["tenantRejected"] == 1)
    // Four acknowledged trace requests, no other signal.
    #expect(counted.accepted == [.traces: 4])
    #expect(counted.acceptedBytes == 4 * UInt64(Wire.traces([(100, 200)]).count))
    await journal.stop()
  }

  @Test func tenantsTheJournalAlreadyHoldsCountAfterARestart() async throws {
    let scratch = try ScratchDirectory()
    let first = try journal(scratch)
    let before = CapturePipeline(
      journal: first, maxInFlightBytes: 1 << 20, maxRequestBytes: 1 << 20, tenants: TenantPolicy(), maxTenants: 1)
    #expect((try? await export(before, tenant: "acme").get()) != nil)
    await first.stop()

    let second = try journal(scratch)
    let after = CapturePipeline(
      journal: second, maxInFlightBytes: 1 << 20, maxRequestBytes: 1 << 20, tenants: TenantPolicy(), maxTenants: 1)
    #expect(after.tenantCount == 1)
    #expect((try? await export(after, tenant: "acme").get())?.seq == 1)
    guard case .failure(let refused) = await export(after, tenant: "globex") else {
      Issue.record("a new tenant was taken although the journal already held the limit")
      return
    }
    #expect(refused.kind == .tenantRejected)
    await second.stop()
  }

  /// A traces request of `spans` spans of one trace, each with a name of `nameBytes` bytes.
  static func oneTrace(_ traceByte: UInt8, spans: Int, nameBytes: Int) -> [UInt8] {
    let traceID = [UInt8](repeating: traceByte, count: 16)
    let spanBytes = (0..<spans).flatMap { index in
      Wire.field(
        2,
        bytes: Wire.field(1, bytes: traceID) + Wire.field(2, bytes: [UInt8](repeating: UInt8(index + 1), count: 8))
          + Wire.field(5, bytes: [UInt8](repeating: 0x61, count: nameBytes)) + Wire.fixed64(7, 100)
          + Wire.fixed64(8, 200))
    }
    return Wire.field(1, bytes: Wire.field(1, bytes: []) + Wire.field(2, bytes: spanBytes))
  }

  @Test func bytesTheSamplerStillHoldsCountAgainstTheInFlightBound() async throws {
    let scratch = try ScratchDirectory()
    let journal = try journal(scratch)
    var policy = SamplingPolicy()
    // Traces wait for their decision far longer than this test runs, so the sampler keeps them.
    policy.traces.decisionWaitMillis = 600_000
    let sampler = TailSampler(policy: policy, isKeptInFull: { _ in false }, output: { _ in })
    let bound = 64 << 10
    let pipeline = CapturePipeline(
      journal: journal, maxInFlightBytes: bound, maxRequestBytes: bound, tenants: TenantPolicy(),
      observer: { sampler.observe($0) }, heldAfterAcknowledgement: { sampler.heldBytes })
    var held = 0
    for trace in UInt8(1)...3 {
      let body = Self.oneTrace(trace, spans: 8, nameBytes: 1000)
      let answer = await withCheckedContinuation { continuation in
        pipeline.export(body: body, signal: .traces, encoding: .protobuf, tenantHeader: nil) {
          continuation.resume(returning: $0)
        }
      }
      #expect((try? answer.get()) != nil)
      held += body.count
    }
    sampler.tick()
    #expect(sampler.heldBytes >= held, "the sampler buffers all three traces (\(sampler.heldBytes) < \(held))")
    #expect(pipeline.heldAfterAcknowledgementBytes == sampler.heldBytes)
    // Room for a request of 1 KiB, then not for one that fits only if the sampler's bytes are
    // ignored.
    #expect(pipeline.reserveInFlight(1024))
    #expect(!pipeline.reserveInFlight(bound - 1024 - sampler.heldBytes + 1))
    #expect(pipeline.reserveInFlight(bound - 1024 - sampler.heldBytes))
    // Decided and released, the sampler's bytes no longer count.
    sampler.flush()
    #expect(sampler.heldBytes == 0)
    pipeline.releaseInFlight(bound)
    sampler.stop()
    await journal.stop()
  }

  @Test func theSamplerGetsAtMostHalfOfASmallInFlightBound() {
    let defaults = SamplingPolicy.Limits()
    let small = CaptureService.samplerMemory(defaults, maxInFlightBytes: 32 << 20, logger: logger)
    #expect(small.limits.maxQueuedBytes == 8 << 20 && small.limits.maxBufferedBytes == 8 << 20)
    #expect(small.archiveQueueBytes == 4 << 20)
    let large = CaptureService.samplerMemory(defaults, maxInFlightBytes: 256 << 20, logger: logger)
    #expect(large.limits == defaults)
    #expect(large.archiveQueueBytes == 32 << 20)
  }

  @Test func connectionBudgetIsSharedAndReleased() {
    let budget = ConnectionBudget(limit: 2)
    #expect(budget.acquire())
    #expect(budget.acquire())
    #expect(!budget.acquire())
    #expect(budget.inUse == 2)
    budget.release()
    #expect(budget.acquire())
    budget.release()
    budget.release()
    budget.release()
    // Releasing more than was taken never makes room past the limit.
    #expect(budget.inUse == 0)
    #expect(budget.acquire() && budget.acquire() && !budget.acquire())
  }

  @Test func descriptorLimitIsRaisedAndOpenDescriptorsAreCounted() throws {
    let limit = ProcessResources.raiseDescriptorLimit()
    #expect(limit == ProcessResources.descriptorLimit)
    // Suites running in parallel open and close descriptors of their own: the count is taken
    // around one open() until no other descriptor changed in between (at most 50 tries).
    var counted = false
    for _ in 0..<50 where !counted {
      let before = try #require(ProcessResources.openDescriptors())
      let fd = open("/dev/null", O_RDONLY)
      let after = ProcessResources.openDescriptors()
      close(fd)
      counted = after == before + 1 && ProcessResources.openDescriptors() == before
    }
    #expect(counted)
  }

  @Test func framingInPlaceMatchesTheRecordFraming() {
    for request in [[], Wire.traces([(1, 2)]), [UInt8](repeating: 0xAB, count: 100_003)] {
      var out: [UInt8] = [9]
      request.withUnsafeBytes { raw in
        SegmentRecord.appendFramed(seq: 77, receivedUnixNano: 1_718_000_000_000_000_001, request: raw, to: &out)
      }
      let expected = SegmentRecord(seq: 77, receivedUnixNano: 1_718_000_000_000_000_001, request: request).framed()
      #expect(out == [9] + expected)
    }
  }
}

/// Idle segments give their descriptor back; a failed sync ends a segment at its last sync.
@Suite struct SegmentFileDescriptorTests {
  @Test func suspendedSegmentReopensOnAppendAndSealsWhole() throws {
    let scratch = try ScratchDirectory()
    let path = scratch.path + "/open-0.seg"
    let writer = try SegmentFileWriter(
      creating: path, header: SegmentHeader(signal: .traces, tenant: "acme", node: "node-a"), firstSeq: 0)
    try writer.append(request: Wire.traces([(10, 20)]), receivedUnixNano: 1)
    // This process's descriptors naming the segment file (not a count of all descriptors:
    // tests running in parallel open and close their own).
    func descriptorsOnSegment() throws -> Int {
      let target = URL(fileURLWithPath: path).resolvingSymlinksInPath().path
      return try FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd").filter {
        (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/fd/" + $0)) == target
      }.count
    }
    #expect(try descriptorsOnSegment() == 1)
    try writer.suspend()
    #expect(writer.isSuspended)
    #expect(try descriptorsOnSegment() == 0)
    try writer.append(request: Wire.traces([(30, 40)]), receivedUnixNano: 2)
    #expect(!writer.isSuspended)
    #expect(try descriptorsOnSegment() == 1)
    let sealed = try writer.seal(to: scratch.path + "/sealed.zst")
    #expect(sealed.entry.recordCount == 2)
    #expect(sealed.entry.firstTimeUnixNano == 10 && sealed.entry.lastTimeUnixNano == 40)
  }

  @Test func poisonCutsBackToTheLastSyncedRecord() throws {
    let scratch = try ScratchDirectory()
    let path = scratch.path + "/open-0.seg"
    let writer = try SegmentFileWriter(
      creating: path, header: SegmentHeader(signal: .traces, tenant: "acme", node: "node-a"), firstSeq: 5)
    try writer.append(request: Wire.traces([(10, 20)]), receivedUnixNano: 1)
    try writer.sync()
    let synced = writer.byteCount
    try writer.append(request: Wire.traces([(30, 40)]), receivedUnixNano: 2)
    #expect(writer.byteCount > synced)
    #expect(writer.poison(cutToLastSync: true))
    #expect(writer.syncedNextSeq == 6)
    let recovered = try SegmentFileRecovery.scan(path: path, expectedFirstSeq: 5, limits: VerificationLimits())
    #expect(recovered.recordCount == 1)
    #expect(recovered.validLength == synced)
    #expect(recovered.tornTailBytes == 0)
    #expect(throws: SegmentFileError.self) { try writer.append(request: Wire.traces([(1, 2)]), receivedUnixNano: 3) }
  }
}
