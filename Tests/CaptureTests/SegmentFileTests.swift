import EvidenceIO
import Foundation
import Manifest
import Testing
import WireTestSupport

@testable import Capture
@testable import Journal

/// A temporary directory removed when the test ends.
final class ScratchDirectory {
  let path: String

  init() throws {
    path = NSTemporaryDirectory() + "segment-file-tests-" + UUID().uuidString
    try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
  }

  deinit { try? FileManager.default.removeItem(atPath: path) }

  func file(_ name: String) -> String { path + "/" + name }
}

@Suite struct SegmentFileTests {
  let header = SegmentHeader(signal: .traces, tenant: "acme", node: "node-1")

  func writeSegment(in scratch: ScratchDirectory, records: Int, firstSeq: UInt64 = 0) throws -> SegmentFileWriter {
    let writer = try SegmentFileWriter(creating: scratch.file("open.seg"), header: header, firstSeq: firstSeq)
    for index in 0..<records {
      try writer.append(request: Wire.traces([(UInt64(100 + index), UInt64(200 + index))]), receivedUnixNano: 42)
    }
    try writer.sync()
    return writer
  }

  @Test func appendedRecordsAreReadBackAndSealIntoAVerifiableBlob() throws {
    let scratch = try ScratchDirectory()
    let writer = try writeSegment(in: scratch, records: 5, firstSeq: 7)
    let recovered = try SegmentFileRecovery.scan(path: writer.path)
    #expect(recovered.header == header)
    #expect(recovered.firstSeq == 7 && recovered.recordCount == 5 && recovered.tornTailBytes == 0)
    #expect(recovered.times.range.first == 100 && recovered.times.range.last == 204)

    let sealed = try writer.seal(to: scratch.file("sealed.zst"))
    #expect(sealed.entry.firstSeq == 7 && sealed.entry.lastSeq == 11 && sealed.entry.recordCount == 5)
    #expect(sealed.entry.firstTimeUnixNano == 100 && sealed.entry.lastTimeUnixNano == 204)
    let compressed = try [UInt8](Data(contentsOf: URL(fileURLWithPath: scratch.file("sealed.zst"))))
    #expect(SHA256Digest.hex(of: compressed) == sealed.entry.sha256)
    let segment = try Zstd.decompress(compressed, maxOutputBytes: Int(sealed.entry.uncompressedSize))
    #expect(segment == (try [UInt8](Data(contentsOf: URL(fileURLWithPath: writer.path)))))
  }

  /// A batch larger than the writer's chunk is written in several writes, and reads back whole.
  @Test func aBatchLargerThanTheWriteChunkIsWrittenInPartsAndReadBackWhole() throws {
    let scratch = try ScratchDirectory()
    let writer = try SegmentFileWriter(creating: scratch.file("open.seg"), header: header, firstSeq: 0)
    let requests = (0..<3).map { batch in
      Wire.traces((0..<60_000).map { (UInt64(1_000 + batch), UInt64(2_000 + $0)) })
    }
    #expect(requests.map(\.count).reduce(0, +) > SegmentFileWriter.writeChunkBytes)
    #expect(try writer.append(batch: requests.map { ($0, 42) }) == 0)
    try writer.sync()
    let recovered = try SegmentFileRecovery.scan(path: writer.path)
    #expect(recovered.recordCount == 3 && recovered.tornTailBytes == 0)
    #expect(recovered.validLength == writer.byteCount)
    #expect(JournalFiles.size(of: writer.path) == Int64(writer.byteCount))
  }

  @Test func invalidRequestsAreRefusedBeforeTheyReachTheFile() throws {
    let scratch = try ScratchDirectory()
    let writer = try writeSegment(in: scratch, records: 1)
    let before = writer.byteCount
    #expect { try writer.append(request: [0x0A, 0x05, 0x01], receivedUnixNano: 0) } throws: {
      ($0 as? SegmentFileError)?.kind == .invalidRecord
    }
    #expect(writer.byteCount == before && writer.recordCount == 1)
  }

  @Test func everyCutInsideTheLastRecordIsATornTailThatRecoveryCuts() throws {
    let scratch = try ScratchDirectory()
    let writer = try writeSegment(in: scratch, records: 3)
    let full = try [UInt8](Data(contentsOf: URL(fileURLWithPath: writer.path)))
    let twoRecords = try SegmentFileRecovery.scan(
      Array(
        full.prefix(
          full.count - SegmentRecord(seq: 2, receivedUnixNano: 42, request: Wire.traces([(102, 202)])).framed().count)),
      path: "x", expectedFirstSeq: 0, limits: .init())
    for cut in 1..<(full.count - twoRecords.validLength) {
      let path = scratch.file("torn-\(cut).seg")
      try Data(full.dropLast(cut)).write(to: URL(fileURLWithPath: path))
      let recovered = try SegmentFileRecovery.recover(path: path, expectedFirstSeq: 0)
      #expect(recovered.recordCount == 2, "cut \(cut)")
      #expect(recovered.tornTailBytes == full.count - cut - twoRecords.validLength, "cut \(cut)")
      #expect(try FileManager.default.attributesOfItem(atPath: path)[.size] as? Int == twoRecords.validLength)
    }
    // A crash can also leave zeros where the body should be.
    var zeroed = full
    for index in twoRecords.validLength + 12..<zeroed.count { zeroed[index] = 0 }
    #expect(try SegmentFileRecovery.scan(zeroed, path: "z", expectedFirstSeq: 0, limits: .init()).recordCount == 2)
  }

  @Test func recoveredFileContinuesWithTheNextSeq() throws {
    let scratch = try ScratchDirectory()
    let writer = try writeSegment(in: scratch, records: 2, firstSeq: 10)
    let full = try [UInt8](Data(contentsOf: URL(fileURLWithPath: writer.path)))
    try Data(full.dropLast(3)).write(to: URL(fileURLWithPath: writer.path))
    let recovered = try SegmentFileRecovery.recover(path: writer.path, expectedFirstSeq: 10)
    let continued = try SegmentFileWriter(continuing: recovered)
    #expect(try continued.append(request: Wire.traces([(1, 2)]), receivedUnixNano: 0) == 11)
    try continued.sync()
    let again = try SegmentFileRecovery.scan(path: writer.path, expectedFirstSeq: 10)
    #expect(again.recordCount == 2 && again.tornTailBytes == 0)
  }

  @Test func aCorruptMiddleIsNeverCut() throws {
    let scratch = try ScratchDirectory()
    let writer = try writeSegment(in: scratch, records: 3)
    var bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: writer.path)))
    let firstRecordBody = header.encoded().count + 12
    bytes[firstRecordBody + 20] ^= 0xFF
    try Data(bytes).write(to: URL(fileURLWithPath: writer.path))
    #expect { _ = try SegmentFileRecovery.recover(path: writer.path) } throws: {
      ($0 as? SegmentFileError)?.kind == .corruptMiddle
    }
    #expect(try [UInt8](Data(contentsOf: URL(fileURLWithPath: writer.path))) == bytes)
  }
}
