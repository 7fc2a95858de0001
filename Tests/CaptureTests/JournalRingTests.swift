import Foundation
import Logging
import Manifest
import Seal
import Synchronization
import Testing
import WireTestSupport

@testable import Capture
@testable import Journal

/// The flight recorder's ring, judged on an injected clock: these tests pin down what ring
/// pruning deletes and what it must never delete, whatever the journal's internals become.
@Suite struct JournalRingTests {
  let logger = Logger(label: "journal-ring-tests")
  static let second: UInt64 = 1_000_000_000

  /// A clock the test moves by hand; the journal never sees real time.
  final class ManualClock: Sendable {
    let wallNanos = Mutex<UInt64>(0)
    let monotonicNanos = Mutex<UInt64>(0)

    var journalClock: JournalClock {
      JournalClock(
        wall: { self.wallNanos.withLock { $0 } }, monotonic: { self.monotonicNanos.withLock { $0 } })
    }

    func setWall(seconds: UInt64) { wallNanos.withLock { $0 = seconds * JournalRingTests.second } }
    func advanceMonotonic(seconds: UInt64) { monotonicNanos.withLock { $0 += seconds * JournalRingTests.second } }
  }

  func options() -> JournalOptions {
    var options = JournalOptions()
    options.minFreeBytes = 0
    return options
  }

  func request(_ index: Int, tenant: String, receivedSeconds: UInt64) -> AdmittedRequest {
    AdmittedRequest(
      signal: .traces, tenant: tenant, request: Wire.traces([(UInt64(100 + index), UInt64(200 + index))]),
      receivedUnixNano: receivedSeconds * Self.second)
  }

  /// Appends one request and waits for its acknowledgement.
  func append(_ journal: Journal, _ request: AdmittedRequest) async throws -> UInt64 {
    let result = await withCheckedContinuation { continuation in
      journal.append(request) { continuation.resume(returning: $0) }
    }
    return try result.get().seq
  }

  /// Appends two records of `tenant` arriving at `receivedSeconds` (and one second later) and seals
  /// them into a segment of their own.
  func sealSegment(_ journal: Journal, tenant: String, receivedSeconds: UInt64) async throws {
    _ = try await append(journal, request(0, tenant: tenant, receivedSeconds: receivedSeconds))
    _ = try await append(journal, request(1, tenant: tenant, receivedSeconds: receivedSeconds + 1))
    await journal.sealOpenSegments()
  }

  /// The sealed segments (blob and sidecar) on disk, as "tenant/<firstSeq>", one per complete
  /// pair; a blob or sidecar left alone is reported as such so a half-pruned segment fails.
  func segmentsOnDisk(_ scratch: ScratchDirectory, tenants: [String]) throws -> Set<String> {
    let layout = JournalLayout(dataDirectory: scratch.path)
    var found: Set<String> = []
    for tenant in tenants {
      let directory = layout.streamDirectory(signal: .traces, tenant: tenant)
      let names = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
      let blobs = Set(names.filter { $0.hasSuffix(".zst") }.map { String($0.dropLast(4)) })
      let sidecars = Set(names.filter { $0.hasSuffix(".json") }.map { String($0.dropLast(5)) })
      #expect(!names.contains { $0.hasSuffix(".open") }, "\(tenant) still has an open segment: \(names)")
      for stem in blobs.union(sidecars) {
        let seq = UInt64(stem).map(String.init) ?? stem
        switch (blobs.contains(stem), sidecars.contains(stem)) {
        case (true, true): found.insert("\(tenant)/\(seq)")
        case (true, false): found.insert("\(tenant)/\(seq) blob without sidecar")
        default: found.insert("\(tenant)/\(seq) sidecar without blob")
        }
      }
    }
    return found
  }

  @Test func theAgeBoundPrunesUnpinnedAndOtherTenantsSegmentsButNeverAPinnedOne() async throws {
    let scratch = try ScratchDirectory()
    let clock = ManualClock()
    var ringOptions = options()
    ringOptions.ringMaxAgeSeconds = 60
    let journal = try Journal(
      dataDirectory: scratch.path, nodeID: "node-a", options: ringOptions, logger: logger,
      clock: clock.journalClock)
    // An incident of tenant acme whose window is 1100 s ..< 1200 s (unix time), as
    // IncidentManager.pins answers: the segment's arrival span overlaps the window.
    journal.setRetentionPin { tenant, from, to in
      tenant == "acme" && from < 1_200 * Self.second && to >= 1_100 * Self.second
    }
    try await sealSegment(journal, tenant: "acme", receivedSeconds: 1_000)  // acme/0: before the window
    try await sealSegment(journal, tenant: "acme", receivedSeconds: 1_150)  // acme/2: in it, pinned
    try await sealSegment(journal, tenant: "globex", receivedSeconds: 1_150)  // globex/0: in it, not its tenant
    try await sealSegment(journal, tenant: "acme", receivedSeconds: 1_300)  // acme/4: after it
    try await sealSegment(journal, tenant: "acme", receivedSeconds: 1_990)  // acme/6: recent
    try await sealSegment(journal, tenant: "globex", receivedSeconds: 1_990)  // globex/2: recent
    let tenants = ["acme", "globex"]
    let all: Set = ["acme/0", "acme/2", "acme/4", "acme/6", "globex/0", "globex/2"]
    #expect(try segmentsOnDisk(scratch, tenants: tenants) == all)

    // 1031 s: the oldest segment's last record (1001 s) is 30 s old, under the bound.
    clock.setWall(seconds: 1_031)
    journal.pruneRingNow()
    #expect(try segmentsOnDisk(scratch, tenants: tenants) == all)
    #expect(journal.status().prunedSegments == 0)

    // 2000 s: everything but the two recent segments is past the bound; the pin saves acme/2 only.
    clock.setWall(seconds: 2_000)
    journal.pruneRingNow()
    #expect(try segmentsOnDisk(scratch, tenants: tenants) == ["acme/2", "acme/6", "globex/2"])
    #expect(journal.status().prunedSegments == 3)

    // An hour later the recent ones age out too, and the pinned one still stays.
    clock.setWall(seconds: 2_000 + 3_600)
    journal.pruneRingNow()
    #expect(try segmentsOnDisk(scratch, tenants: tenants) == ["acme/2"])

    // The pin, and nothing else, kept it: once the incident no longer pins it, it goes.
    journal.setRetentionPin { _, _, _ in false }
    journal.pruneRingNow()
    #expect(try segmentsOnDisk(scratch, tenants: tenants).isEmpty)
    #expect(journal.status().prunedSegments == 6)

    // Pruning removed files only: numbering goes on after the pruned seqs.
    #expect(try await append(journal, request(0, tenant: "acme", receivedSeconds: 5_600)) == 8)
    await journal.stop()
  }

  @Test func theByteBoundSkipsAPinnedSegmentAndPrunesTheNextOldestOfAnyTenantAfterReopening() async throws {
    let scratch = try ScratchDirectory()
    let clock = ManualClock()
    clock.setWall(seconds: 10_000)
    let unbounded = try Journal(
      dataDirectory: scratch.path, nodeID: "node-a", options: options(), logger: logger, clock: clock.journalClock)
    // Oldest first by arrival: acme/0, globex/0, acme/2, acme/4, globex/2.
    try await sealSegment(unbounded, tenant: "acme", receivedSeconds: 100)
    try await sealSegment(unbounded, tenant: "globex", receivedSeconds: 200)
    try await sealSegment(unbounded, tenant: "acme", receivedSeconds: 300)
    try await sealSegment(unbounded, tenant: "acme", receivedSeconds: 400)
    try await sealSegment(unbounded, tenant: "globex", receivedSeconds: 500)
    await unbounded.stop()
    let tenants = ["acme", "globex"]
    #expect(
      try segmentsOnDisk(scratch, tenants: tenants) == ["acme/0", "acme/2", "acme/4", "globex/0", "globex/2"])

    // Sizes on disk (blob and sidecar) before anything is pruned.
    let layout = JournalLayout(dataDirectory: scratch.path)
    var sizes: [String: Int64] = [:]
    for (tenant, firstSeq) in [("acme", 0), ("acme", 2), ("acme", 4), ("globex", 0), ("globex", 2)] {
      let directory = layout.streamDirectory(signal: .traces, tenant: tenant)
      sizes["\(tenant)/\(firstSeq)"] =
        JournalFiles.size(of: JournalLayout.sealedPath(in: directory, firstSeq: UInt64(firstSeq)))
        + JournalFiles.size(of: JournalLayout.sidecarPath(in: directory, firstSeq: UInt64(firstSeq)))
    }
    #expect(sizes.values.allSatisfy { $0 > 0 })
    let total = sizes.values.reduce(0, +)
    let pruned = (sizes["globex/0"] ?? 0) + (sizes["acme/2"] ?? 0)
    // The bound is met exactly once globex/0 and acme/2 are gone (the ring keeps one segment's
    // worth of headroom for the open segment), so an implementation that counted the pinned
    // acme/0 as freed, or pruned it, stops at a different set.
    var bounded = options()
    bounded.maxSegmentBytes = 64 << 10
    bounded.ringMaxBytes = Int64(bounded.maxSegmentBytes) + total - pruned
    let journal = try Journal(
      dataDirectory: scratch.path, nodeID: "node-a", options: bounded, logger: logger, clock: clock.journalClock)
    journal.setRetentionPin { tenant, from, to in
      tenant == "acme" && from <= 101 * Self.second && to >= 100 * Self.second
    }
    #expect(journal.status().bytes == total)
    journal.pruneRingNow()
    #expect(try segmentsOnDisk(scratch, tenants: tenants) == ["acme/0", "acme/4", "globex/2"])
    #expect(journal.status().prunedSegments == 2)
    #expect(journal.status().bytes == total - pruned)
    await journal.stop()
  }

  /// A request of about `bytes` bytes that zstd cannot shrink much (letters from a fixed
  /// xorshift sequence in a span name), so the disk holds roughly what was appended.
  func bulky(_ index: Int, bytes: Int, receivedSeconds: UInt64) -> AdmittedRequest {
    var state = UInt64(index + 1) &* 0x9E37_79B9_7F4A_7C15
    let name = (0..<bytes).map { _ -> UInt8 in
      state ^= state << 13
      state ^= state >> 7
      state ^= state << 17
      return 0x41 + UInt8(state % 26)
    }
    return AdmittedRequest(
      signal: .traces, tenant: "acme",
      request: Wire.field(1, bytes: Wire.field(2, bytes: Wire.field(2, bytes: Wire.field(5, bytes: name)))),
      receivedUnixNano: receivedSeconds * Self.second)
  }

  @Test func theDiskBoundCountsBytesOnDiskSoWhatTheRingPrunedMakesRoomAgain() async throws {
    let scratch = try ScratchDirectory()
    let clock = ManualClock()
    var bounded = options()
    bounded.ringMaxAgeSeconds = 60
    bounded.maxJournalBytes = 200_000
    let journal = try Journal(
      dataDirectory: scratch.path, nodeID: "node-a", options: bounded, logger: logger, clock: clock.journalClock)
    // 150 kB appended one request at a time: under the bound throughout.
    for index in 0..<10 {
      #expect(try await append(journal, bulky(index, bytes: 15_000, receivedSeconds: 100)) == UInt64(index))
    }
    await journal.sealOpenSegments()
    clock.setWall(seconds: 1_000)
    journal.pruneRingNow()
    #expect(try segmentsOnDisk(scratch, tenants: ["acme"]).isEmpty)
    #expect(journal.status().bytes == 0)
    #expect(journal.admissionProblem() == nil)
    // Another 150 kB fits as well: what was pruned no longer counts, whatever was appended since start.
    for index in 10..<20 {
      #expect(try await append(journal, bulky(index, bytes: 15_000, receivedSeconds: 1_000)) == UInt64(index))
    }
    #expect(journal.status().accepting)
    await journal.stop()
  }

  @Test func anOpenSegmentIsRotatedByAgeOnTheInjectedMonotonicClock() async throws {
    let scratch = try ScratchDirectory()
    let clock = ManualClock()
    var aging = options()
    aging.maxSegmentAgeSeconds = 60
    let journal = try Journal(
      dataDirectory: scratch.path, nodeID: "node-a", options: aging, logger: logger, clock: clock.journalClock)
    #expect(try await append(journal, request(0, tenant: "acme", receivedSeconds: 1)) == 0)
    clock.advanceMonotonic(seconds: 61)
    // The writer rotates the aged segment either when it next wakes or right after writing seq 1
    // into it; either way seq 0 and seq 2 cannot share a segment, while without age rotation
    // (or on the real clock, 60 s away) all three would.
    #expect(try await append(journal, request(1, tenant: "acme", receivedSeconds: 2)) == 1)
    #expect(try await append(journal, request(2, tenant: "acme", receivedSeconds: 3)) == 2)
    await journal.stop()
    let segments = try JournalSelection.select(
      dataDirectory: scratch.path, fromUnixNano: 0, toUnixNano: .max, tenants: ["acme"]
    ).segments
    #expect(segments.map(\.entry.recordCount).reduce(0, +) == 3)
    let first = segments.first { $0.entry.firstSeq == 0 }
    #expect(first != nil)
    #expect((first?.entry.lastSeq ?? 2) < 2)
  }
}
