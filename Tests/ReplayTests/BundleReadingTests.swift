import EvidenceIO
import Foundation
import Keys
import Manifest
import Seal
import Signing
import Testing
import Verify
import WireTestSupport

@testable import Replay

/// A sealed, deeply verified bundle in a temporary directory.
final class ReplayLab {
  let directory: String
  let key = Ed25519PrivateKey.generate()

  init() throws {
    directory = NSTemporaryDirectory() + "replay-tests-" + UUID().uuidString
    try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
  }

  deinit { try? FileManager.default.removeItem(atPath: directory) }

  func path(_ name: String) -> String { directory + "/" + name }

  static let facts = BundleFacts(
    incident: IncidentFacts(id: "INC-R", reason: "test", declaredBy: "tester", declaredAtUnixNano: 1_000),
    captureStartUnixNano: 1, captureEndUnixNano: 1_000, redactionPolicy: .none, tool: .current)

  /// Traces of tenant "a/../b" in two segments (seq 0-2, 3-4), logs of tenant "acme".
  func seal(_ name: String = "b.sfb.tar") throws -> String {
    let traces = SegmentHeader(signal: .traces, tenant: "a/../b", node: "n1")
    let logs = SegmentHeader(signal: .logs, tenant: "acme", node: "n1")
    func span(_ seq: Int) -> SegmentRecord {
      SegmentRecord(
        seq: UInt64(seq), receivedUnixNano: UInt64(10 + seq), request: Wire.traces([(UInt64(100 + seq), 500)]))
    }
    let segments = [
      try SegmentSealer.seal(header: traces, records: (0..<3).map(span)),
      try SegmentSealer.seal(header: traces, records: (3..<5).map(span)),
      try SegmentSealer.seal(
        header: logs, records: [SegmentRecord(seq: 0, receivedUnixNano: 0, request: Wire.logs([(0, 250)]))]),
    ]
    try BundleSealer.seal(segments: segments, facts: Self.facts, signingKeys: [key], outputPath: path(name))
    return path(name)
  }

  func verified(_ bundle: String, depth: VerificationDepth = .deep) throws -> VerifiedBundle {
    let policy = try TrustPolicy(trustedKeys: [key.publicKey], threshold: 1)
    guard case .verified(let verified) = try BundleVerifier(policy: policy, depth: depth).verify(path: bundle) else {
      throw ReplayError(.bundleChanged, "fixture bundle did not verify")
    }
    return verified
  }
}

@Suite struct BundleReadingTests {
  @Test func onlyADeepVerificationIsAccepted() throws {
    let lab = try ReplayLab()
    let bundle = try lab.seal()
    let error = #expect(throws: ReplayError.self) { try DeeplyVerifiedBundle(lab.verified(bundle, depth: .quick)) }
    #expect(error?.code == .notDeeplyVerified)
    #expect(try DeeplyVerifiedBundle(lab.verified(bundle)).streams.count == 2)
  }

  @Test func recordsComeBackInSequenceOrderWithTheirArchivedBytes() throws {
    let lab = try ReplayLab()
    let bundle = try DeeplyVerifiedBundle(lab.verified(try lab.seal()))
    let reader = try ArchivedRecordReader(bundle)
    let traces = try #require(bundle.streams.first { $0.key.signal == .traces })
    var seqs: [UInt64] = []
    for blob in traces.blobs {
      let segment = try reader.segment(blob)
      for index in segment.records.indices {
        seqs.append(segment.records[index].seq)
        let seq = Int(segment.records[index].seq)
        #expect(Array(segment.request(at: index)) == Wire.traces([(UInt64(100 + seq), 500)]))
        #expect(segment.records[index].receivedUnixNano == UInt64(10 + seq))
      }
    }
    #expect(seqs == [0, 1, 2, 3, 4])
  }

  @Test func aBundleChangedAfterVerificationIsCaughtWhenRead() throws {
    let lab = try ReplayLab()
    let path = try lab.seal()
    let bundle = try DeeplyVerifiedBundle(lab.verified(path))
    let blob = try #require(bundle.manifest.blobs.first)
    let member = try #require(bundle.verified.blobMembers[blob.path])
    var bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: path)))
    bytes[member.dataOffset + member.size / 2] ^= 0x01
    try Data(bytes).write(to: URL(fileURLWithPath: path))
    let error = #expect(throws: ReplayError.self) { try ArchivedRecordReader(bundle).segment(blob) }
    #expect(error?.code == .bundleChanged)
  }

  @Test func exportsAreDeterministicAndNameFilesWithoutTenantText() throws {
    let lab = try ReplayLab()
    let bundle = try DeeplyVerifiedBundle(lab.verified(try lab.seal()))
    let first = try BundleExport.run(bundle: bundle, format: .otlpProto, directory: lab.path("one"))
    let second = try BundleExport.run(bundle: bundle, format: .otlpProto, directory: lab.path("two"))
    #expect(first.files == second.files)
    #expect(first.files.map(\.records) == [5, 1])
    for file in first.files {
      #expect(!file.name.contains("/") && !file.name.contains(file.tenant))
      #expect(
        try Data(contentsOf: URL(fileURLWithPath: lab.path("one/" + file.name)))
          == Data(contentsOf: URL(fileURLWithPath: lab.path("two/" + file.name))))
    }
    // The proto stream is length-prefixed records in sequence order.
    let traces = try [UInt8](Data(contentsOf: URL(fileURLWithPath: lab.path("one/" + first.files[0].name))))
    var expected: [UInt8] = []
    for seq in 0..<5 {
      let request = Wire.traces([(UInt64(100 + seq), 500)])
      let length = UInt32(request.count)
      expected += [UInt8(length >> 24), UInt8(length >> 16 & 0xFF), UInt8(length >> 8 & 0xFF), UInt8(length & 0xFF)]
      expected += request
    }
    #expect(traces == expected)
    let index = try Data(contentsOf: URL(fileURLWithPath: lab.path("one/index.json")))
    #expect(String(decoding: index, as: UTF8.self).contains(#""tenant":"a/../b""#))
  }

  @Test func aSegmentShiftsEveryRecordOnceAndKeepsItsFraming() throws {
    let lab = try ReplayLab()
    let bundle = try DeeplyVerifiedBundle(lab.verified(try lab.seal()))
    let blob = try #require(bundle.manifest.blobs.first { $0.signal == .traces && $0.firstSeq == 0 })
    var segment = try ArchivedRecordReader(bundle).segment(blob)
    let before = segment.bytes.count
    try segment.shiftTimestamps(by: 1_000)
    #expect(segment.bytes.count == before)
    for index in segment.records.indices {
      let seq = segment.records[index].seq
      #expect(Array(segment.request(at: index)) == Wire.traces([(1_100 + seq, 1_500)]))
    }
    let error = #expect(throws: ReplayError.self) { try segment.shiftTimestamps(by: -5_000) }
    #expect(error?.code == .timeShiftOutOfRange && error?.seq == 0)
  }

  @Test func timeShiftPutsTheNewestManifestTimeAtNow() throws {
    let lab = try ReplayLab()
    let bundle = try DeeplyVerifiedBundle(lab.verified(try lab.seal()))
    #expect(ReplayEngine.timeShift(for: bundle.manifest, nowUnixNano: 10_500) == 10_000)
    #expect(ReplayEngine.timeShift(for: bundle.manifest, nowUnixNano: 100) == -400)
  }
}
