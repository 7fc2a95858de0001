import EvidenceIO
import Foundation
import Manifest
import Seal
import Testing
import Verify
import WireTestSupport

@testable import Replay

/// Export written during deep verification (``StagedExport``) against export after it.
@Suite struct StagedExportTests {
  /// Twelve segments in three streams of two signals and tenants, so both verifier threads
  /// hand over blobs of the same file and must take turns.
  func sealMany(_ lab: ReplayLab, name: String = "many.sfb.tar") throws -> String {
    var segments: [SealedSegment] = []
    let streams = [
      SegmentHeader(signal: .traces, tenant: "t1", node: "n1"), SegmentHeader(signal: .logs, tenant: "t2", node: "n1"),
      SegmentHeader(signal: .metrics, tenant: "t1", node: "n2"),
    ]
    for header in streams {
      for part in 0..<4 {
        let records = (0..<5).map { index in
          let seq = UInt64(part * 5 + index)
          let request: [UInt8] =
            switch header.signal {
            case .traces: Wire.traces([(100 + seq, 200 + seq)])
            case .logs: Wire.logs([(300 + seq, 0)])
            case .metrics: Wire.gauge([400 + seq])
            }
          return SegmentRecord(seq: seq, receivedUnixNano: 10 + seq, request: request)
        }
        segments.append(try SegmentSealer.seal(header: header, records: records))
      }
    }
    try BundleSealer.seal(
      segments: segments, facts: ReplayLab.facts, signingKeys: [lab.key], outputPath: lab.path(name))
    return lab.path(name)
  }

  func verify(_ lab: ReplayLab, _ bundle: String, consumer: StagedExport) throws -> VerificationResult {
    var verifier = BundleVerifier(policy: try TrustPolicy(trustedKeys: [lab.key.publicKey], threshold: 1), depth: .deep)
    verifier.segmentConsumer = consumer
    return try verifier.verify(path: bundle)
  }

  func files(in directory: String) throws -> [String: Data] {
    var files: [String: Data] = [:]
    for name in try FileManager.default.contentsOfDirectory(atPath: directory) {
      files[name] = try Data(contentsOf: URL(fileURLWithPath: directory + "/" + name))
    }
    return files
  }

  @Test(arguments: ExportFormat.allCases)
  func writesTheFilesOfAnExportAfterVerification(format: ExportFormat) throws {
    let lab = try ReplayLab()
    let bundle = try sealMany(lab)
    let after = try BundleExport.run(
      bundle: DeeplyVerifiedBundle(lab.verified(bundle)), format: format, directory: lab.path("after"))

    let staged = StagedExport(bundle: bundle, format: format, directory: lab.path("staged"))
    guard case .verified(let verified) = try verify(lab, bundle, consumer: staged) else {
      Issue.record("the bundle did not verify")
      return
    }
    let report = try staged.publish(DeeplyVerifiedBundle(verified))

    #expect(report.files == after.files)
    #expect(report.files.map(\.records).reduce(0, +) == (format == .openMetrics ? 20 : 60))
    let written = try files(in: lab.path("staged"))
    #expect(written == (try files(in: lab.path("after"))))
    #expect(written.keys.allSatisfy { !$0.hasPrefix(".") })
  }

  @Test func aRejectedBundleLeavesNoFileAndNoDirectory() throws {
    let lab = try ReplayLab()
    let bundle = try sealMany(lab)
    // Damage a blob in the middle of the traces file's order, so the blobs after it are passed.
    let verified = try lab.verified(bundle)
    let traces = verified.manifest.blobs.filter { $0.signal == .traces }.sorted { $0.firstSeq < $1.firstSeq }
    let member = try #require(verified.blobMembers[traces[1].path])
    var bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: bundle)))
    bytes[member.dataOffset + member.size / 2] ^= 0x01
    try Data(bytes).write(to: URL(fileURLWithPath: bundle))

    for directory in [lab.path("new/out"), lab.directory] {
      let before = try files(in: lab.directory).keys.sorted()
      let staged = StagedExport(bundle: bundle, format: .otlpProto, directory: directory)
      guard case .rejected(let finding) = try verify(lab, bundle, consumer: staged) else {
        Issue.record("a damaged bundle verified")
        return
      }
      #expect(finding.code == .blobDigestMismatch)
      staged.abandon()
      #expect(!FileManager.default.fileExists(atPath: lab.path("new")))
      #expect(try files(in: lab.directory).keys.sorted() == before)
    }
  }

  @Test func publishesOnlyForTheBundleItWasStagedFrom() throws {
    let lab = try ReplayLab()
    let staged = StagedExport(bundle: "many", format: .otlpProto, directory: lab.path("out"))
    guard case .verified = try verify(lab, try sealMany(lab), consumer: staged) else {
      Issue.record("the bundle did not verify")
      return
    }
    let other = try DeeplyVerifiedBundle(lab.verified(try lab.seal()))
    let error = #expect(throws: ReplayError.self) { try staged.publish(other) }
    #expect(error?.code == .outputFailed)
    staged.abandon()
    #expect(!FileManager.default.fileExists(atPath: lab.path("out")))
  }

  @Test func existingFilesAreRefusedWithoutReplacing() throws {
    let lab = try ReplayLab()
    let bundle = try sealMany(lab)
    let first = StagedExport(bundle: bundle, format: .otlpProto, directory: lab.path("out"))
    guard case .verified(let verified) = try verify(lab, bundle, consumer: first) else {
      Issue.record("the bundle did not verify")
      return
    }
    _ = try first.publish(DeeplyVerifiedBundle(verified))
    let exported = try files(in: lab.path("out"))

    let second = StagedExport(bundle: bundle, format: .otlpProto, directory: lab.path("out"))
    _ = try verify(lab, bundle, consumer: second)
    let error = #expect(throws: ReplayError.self) { try second.publish(DeeplyVerifiedBundle(verified)) }
    #expect(error?.code == .outputExists)
    second.abandon()
    #expect(try files(in: lab.path("out")) == exported)

    let replacing = StagedExport(bundle: bundle, format: .otlpProto, directory: lab.path("out"), replacing: true)
    _ = try verify(lab, bundle, consumer: replacing)
    _ = try replacing.publish(DeeplyVerifiedBundle(verified))
    #expect(try files(in: lab.path("out")) == exported)
  }
}
