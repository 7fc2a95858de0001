import Foundation
import Logging
import Manifest
import Seal
import Testing
import WireTestSupport

@testable import Capture
@testable import Journal

/// What the journal leaves on disk: owner-only modes, and bundle windows no wider than what it
/// held.
@Suite struct JournalFileSafetyTests {
  let logger = Logger(label: "journal-file-safety-tests")

  func journal(_ dataDirectory: String, maxSegmentBytes: Int? = nil) throws -> Journal {
    var options = JournalOptions()
    options.minFreeBytes = 0
    if let maxSegmentBytes { options.maxSegmentBytes = maxSegmentBytes }
    return try Journal(dataDirectory: dataDirectory, nodeID: "node-a", options: options, logger: logger)
  }

  func append(_ journal: Journal, _ request: AdmittedRequest) async throws {
    let result = await withCheckedContinuation { continuation in
      journal.append(request) { continuation.resume(returning: $0) }
    }
    _ = try result.get()
  }

  func traces(_ index: Int, tenant: String = "acme", received: UInt64) -> AdmittedRequest {
    AdmittedRequest(
      signal: .traces, tenant: tenant, request: Wire.traces([(UInt64(100 + index), UInt64(200 + index))]),
      receivedUnixNano: received)
  }

  /// Every path under `root` (itself included) with its permission bits, by lstat.
  func modes(under root: String) throws -> [String: Int] {
    var result: [String: Int] = [:]
    func visit(_ path: String) throws {
      var info = stat()
      guard lstat(path, &info) == 0 else { return }
      result[path] = Int(info.st_mode & 0o7777)
      if info.st_mode & S_IFMT == S_IFDIR {
        for name in try FileManager.default.contentsOfDirectory(atPath: path) { try visit(path + "/" + name) }
      }
    }
    try visit(root)
    return result
  }

  @Test func everyDirectoryIs0700AndEveryFile0600() async throws {
    let scratch = try ScratchDirectory()
    let data = scratch.file("data")
    // One record per segment: sealed segments and sidecars are made too.
    let journal = try journal(data, maxSegmentBytes: 1)
    for index in 0..<3 {
      try await append(journal, traces(index, received: 1_000 + UInt64(index)))
      try await append(journal, traces(index, tenant: "globex", received: 1_000 + UInt64(index)))
    }
    await journal.stop()
    let found = try modes(under: data)
    let names = Set(found.keys.map { ($0 as NSString).lastPathComponent })
    #expect(names.contains("node-id") && names.contains("LOCK"))
    #expect(found.keys.contains { $0.hasSuffix(".zst") } && found.keys.contains { $0.hasSuffix(".json") })
    for (path, mode) in found {
      var info = stat()
      _ = lstat(path, &info)
      let isDirectory = info.st_mode & S_IFMT == S_IFDIR
      #expect(mode == (isDirectory ? 0o700 : 0o600), "\(path) has mode \(String(mode, radix: 8))")
    }
  }

  @Test func aWindowNeverStartsBeforeTheOldestRecordHeld() async throws {
    let scratch = try ScratchDirectory()
    let journal = try journal(scratch.path)
    try await append(journal, traces(0, received: 5_000))
    try await append(journal, traces(1, received: 7_000))
    await journal.stop()
    // Asked from 1_000, as a look-back reaching past what the node held would: the records
    // start at 5_000, and so does the window.
    let early = try JournalSelection.select(
      dataDirectory: scratch.path, fromUnixNano: 1_000, toUnixNano: 9_000, tenants: nil)
    #expect(early.firstArrivalUnixNano == 5_000)
    #expect(early.captureStart(requested: 1_000) == 5_000)
    // A window starting after the first selected record keeps its start.
    #expect(early.captureStart(requested: 6_000) == 6_000)
    let none = try JournalSelection.select(
      dataDirectory: scratch.path, fromUnixNano: 8_000, toUnixNano: 9_000, tenants: nil)
    #expect(none.segments.isEmpty && none.firstArrivalUnixNano == nil)
    #expect(none.captureStart(requested: 8_000) == 8_000)
  }
}
