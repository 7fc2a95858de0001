import Foundation
import Manifest
import Testing

@testable import Capture
@testable import Seal

@Suite struct EvidenceImportTests {
  static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent()
  static let jsonLines = repository.appendingPathComponent("fixtures/otlp/app.otlp.jsonl").path
  static let protoStream = repository.appendingPathComponent("fixtures/otlp/app.otlp.pb.zst").path

  @Test func smallSegmentsTileEachStreamWithoutGapOrOverlap() throws {
    var options = ImportOptions(tenant: "acme")
    options.maxSegmentBytes = 1
    let evidence = try EvidenceImport.prepare(paths: [Self.jsonLines], options: options)
    let whole = try EvidenceImport.prepare(paths: [Self.jsonLines], options: ImportOptions(tenant: "acme"))
    #expect(whole.segments.count == 3)
    #expect(evidence.segments.count == evidence.recordCounts.values.reduce(0, +))
    for signal in Signal.allCases {
      let entries = evidence.segments.map(\.entry).filter { $0.signal == signal }.sorted { $0.firstSeq < $1.firstSeq }
      #expect(entries.map(\.firstSeq) == (0..<UInt64(entries.count)).map { $0 })
      #expect(entries.allSatisfy { $0.recordCount == 1 && $0.firstSeq == $0.lastSeq && $0.tenant == "acme" })
    }
    // Cutting changes the segments, never the evidence facts.
    #expect(evidence.facts.incident == whole.facts.incident)
    #expect(evidence.facts.captureStartUnixNano == whole.facts.captureStartUnixNano)
  }

  @Test func theSameRecordsGiveTheSameFactsWhateverTheFileFormat() throws {
    let fromJSON = try EvidenceImport.prepare(paths: [Self.jsonLines], options: ImportOptions())
    let fromProto = try EvidenceImport.prepare(paths: [Self.protoStream], options: ImportOptions())
    #expect(fromJSON.facts.incident.id.hasPrefix("import-"))
    #expect(fromJSON.facts.incident == fromProto.facts.incident)
    #expect(fromJSON.segments.map(\.entry) == fromProto.segments.map(\.entry))
  }

  @Test func invalidTenantIsAnOptionError() {
    #expect {
      _ = try EvidenceImport.prepare(paths: [Self.jsonLines], options: ImportOptions(tenant: "../etc"))
    } throws: { error in
      if case .invalidOption = error as? EvidenceImportError { return true }
      return false
    }
  }
}
