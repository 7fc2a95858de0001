import Foundation
import Manifest
import Testing

@testable import Replay

@Suite struct CheckpointTests {
  let digest = String(repeating: "ab", count: 32)

  func temporaryPath() -> String { NSTemporaryDirectory() + "checkpoint-" + UUID().uuidString + ".json" }

  @Test func storeThenLoadGivesTheSameCheckpointAndLeavesNoTemporaryFile() throws {
    let path = temporaryPath()
    defer { try? FileManager.default.removeItem(atPath: path) }
    let checkpoint = ReplayCheckpoint(
      manifestSHA256: digest, timeShiftNanos: -42,
      nextSeq: [
        StreamKey(node: "n", signal: .traces, tenant: "t\u{e9}/x"): 7,
        StreamKey(node: "n", signal: .logs, tenant: "a"): UInt64.max,
      ])
    try CheckpointFile.store(checkpoint, path: path)
    #expect(try CheckpointFile.load(path: path) == checkpoint)
    #expect(!FileManager.default.fileExists(atPath: path + ".partial"))
    // A checkpoint names the streams of a bundle: readable by its owner only.
    #expect(try FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? Int == 0o600)
    // Replacing keeps exactly the newest content.
    var next = checkpoint
    next.nextSeq[StreamKey(node: "n", signal: .logs, tenant: "a")] = 3
    try CheckpointFile.store(next, path: path)
    #expect(try CheckpointFile.load(path: path) == next)
  }

  @Test func encodingIsCanonicalAndStable() throws {
    let checkpoint = ReplayCheckpoint(
      manifestSHA256: digest, timeShiftNanos: nil, nextSeq: [StreamKey(node: "n", signal: .metrics, tenant: "t"): 1])
    #expect(
      String(decoding: try checkpoint.encoded(), as: UTF8.self)
        == #"{"kind":"stella-forensics replay checkpoint","manifestSha256":"\#(digest)","streams":[{"nextSeq":"1","node":"n","signal":"metrics","tenant":"t"}],"timeShiftNanos":null,"version":1}"#
    )
  }

  @Test func aMissingFileIsNoCheckpoint() throws {
    #expect(try CheckpointFile.load(path: temporaryPath()) == nil)
  }

  @Test func damagedOrForeignFilesAreRefused() throws {
    for text in ["", "{", #"{"kind":"other"}"#, #"{"kind":"stella-forensics replay checkpoint","version":2}"#] {
      let error = #expect(throws: ReplayError.self, "\(text)") {
        try ReplayCheckpoint.decode(Array(text.utf8), path: "c.json")
      }
      #expect(error?.code == .checkpointInvalid)
    }
  }
}
