import EvidenceIO
import Foundation
import Testing

@testable import Manifest

/// Bytes whose content shows where they came from (so a member copied from the wrong offset fails).
private func pattern(_ count: Int, seed: UInt8) -> [UInt8] {
  (0..<count).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ Int(seed)) }
}

@Suite struct BundleArchiveWriterTests {
  private let directory = NSTemporaryDirectory() + "archive-writer-tests-" + UUID().uuidString

  private func setUp() throws {
    try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
  }

  private func contents(_ path: String) throws -> [UInt8] {
    [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
  }

  /// The archive a reader expects, built here from §2.1's rules.
  private func expectedArchive(_ members: [(String, [UInt8])]) throws -> [UInt8] {
    var out: [UInt8] = []
    for (name, data) in members {
      out += try #require(BundleTar.canonicalHeader(name: name, size: UInt64(data.count)))
      out += data
      out += [UInt8](repeating: 0, count: (512 - data.count % 512) % 512)
    }
    return out + [UInt8](repeating: 0, count: 1024)
  }

  @Test func membersFromMemoryCachedAndUncachedFilesGiveTheSameCanonicalArchive() throws {
    try setUp()
    defer { try? FileManager.default.removeItem(atPath: directory) }
    // A spill-like file: the second piece at an aligned offset, as import writes it; sizes that
    // are not multiples of a block or of the writer's 4 MiB buffer.
    let first = pattern(5000, seed: 1)
    let second = pattern((4 << 20) + 777, seed: 2)
    let third = pattern(1, seed: 3)
    let secondOffset = UncachedFile.aligned(first.count)
    var spill = first + [UInt8](repeating: 0xEE, count: secondOffset - first.count) + second
    spill += [UInt8](repeating: 0xEE, count: UncachedFile.aligned(spill.count) - spill.count)
    let spillPath = directory + "/spill"
    try Data(spill).write(to: URL(fileURLWithPath: spillPath))

    let viaFiles = directory + "/files.tar"
    try BundleArchiveWriter.write(
      members: [
        ("manifest.json", .bytes(third)),
        ("blobs/a", .uncachedFileRange(path: spillPath, offset: 0, count: first.count)),
        ("blobs/b", .uncachedFileRange(path: spillPath, offset: secondOffset, count: second.count)),
        // Unaligned: read through the cache instead.
        ("blobs/c", .uncachedFileRange(path: spillPath, offset: 1, count: 10)),
        ("blobs/d", .fileRange(path: spillPath, offset: secondOffset, count: second.count)),
      ], to: viaFiles, replacing: false)
    let expected = try expectedArchive([
      ("manifest.json", third), ("blobs/a", first), ("blobs/b", second), ("blobs/c", Array(first[1..<11])),
      ("blobs/d", second),
    ])
    #expect(try contents(viaFiles) == expected)
    #expect(try BundleTarCheck.memberNames(viaFiles) == ["manifest.json", "blobs/a", "blobs/b", "blobs/c", "blobs/d"])
  }

  @Test func aRangePastTheEndOfItsFileIsAnErrorAndLeavesNoOutput() throws {
    try setUp()
    defer { try? FileManager.default.removeItem(atPath: directory) }
    let spillPath = directory + "/spill"
    try Data(pattern(4096, seed: 4)).write(to: URL(fileURLWithPath: spillPath))
    let out = directory + "/short.tar"
    #expect(throws: BundleIOError.self) {
      try BundleArchiveWriter.write(
        members: [("blobs/a", .uncachedFileRange(path: spillPath, offset: 0, count: 9000))], to: out,
        replacing: false)
    }
    #expect(!FileManager.default.fileExists(atPath: out))
  }
}

/// The member names the project's own tar checker finds in `path`.
private enum BundleTarCheck {
  static func memberNames(_ path: String) throws -> [String] {
    try TarStructureChecker(limits: VerificationLimits()).members(of: try FileByteSource(path: path)).map(\.name)
  }
}
