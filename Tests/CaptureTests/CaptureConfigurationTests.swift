import Foundation
import Testing

@testable import Capture

@Suite struct CaptureConfigurationTests {
  static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent().path

  @Test func theCommentedExampleParsesToTheDefaults() throws {
    let path = Self.repository + "/config/capture.example.yaml"
    let text = try String(contentsOfFile: path, encoding: .utf8)
    #expect(try CaptureConfiguration.profile(inYAML: text, path: path) == .default)
    var configuration = CaptureConfiguration()
    try configuration.apply(yaml: text, path: path)
    try configuration.validate()
    let defaults = CaptureConfiguration()
    #expect(configuration.journal == defaults.journal)
    #expect(configuration.otlpHTTP == defaults.otlpHTTP)
    #expect(configuration.otlpGRPC == defaults.otlpGRPC)
    #expect(configuration.admin == defaults.admin)
    #expect(configuration.maxInFlightBytes == defaults.maxInFlightBytes)
    #expect(configuration.maxRequestBytes == defaults.maxRequestBytes)
    #expect(configuration.tenantHeader == defaults.tenantHeader)
  }

  @Test func profilesArePresetsThatTheFileOverrides() throws {
    var forensic = CaptureConfiguration(profile: .forensic)
    #expect(forensic.journal.durability == .fsyncPerBatch)
    try forensic.apply(yaml: "journal:\n  durability: interval\n  sync-interval: 50ms\n", path: "c.yaml")
    #expect(forensic.journal.durability == .interval)
    #expect(forensic.journal.syncIntervalMillis == 50)
    #expect(CaptureConfiguration(profile: .airgap).hooksAllowed == false)
  }

  @Test func airgapRefusesNonLoopbackListeners() throws {
    var configuration = CaptureConfiguration(profile: .airgap)
    try configuration.apply(yaml: "listeners:\n  otlp-http: 0.0.0.0:4318\n", path: "c.yaml")
    #expect(throws: CaptureConfigurationError.self) { try configuration.validate() }
  }

  @Test(arguments: [
    "unknown: 1", "journal:\n  durability: sometimes", "limits:\n  max-request-bytes: lots",
    "listeners:\n  admin: nowhere", "journal: [1, 2]", "listeners:\n  smtp: 127.0.0.1:25",
  ])
  func badDocumentsNameTheKey(document: String) {
    var configuration = CaptureConfiguration()
    #expect {
      try configuration.apply(yaml: document, path: "bad.yaml")
    } throws: { error in
      (error as? CaptureConfigurationError)?.message.hasPrefix("bad.yaml: ") == true
    }
  }

  @Test func sizesAndDurations() {
    #expect(ByteSize.parse("64MiB") == 64 << 20)
    #expect(ByteSize.parse("1GB") == 1_000_000_000)
    #expect(ByteSize.parse("4096") == 4096)
    #expect(ByteSize.parse("-1") == nil)
    #expect(ByteSize.parse("99999999999TiB") == nil)
    #expect(DurationText.milliseconds("250ms") == 250)
    #expect(DurationText.milliseconds("5m") == 300_000)
    #expect(DurationText.milliseconds("soon") == nil)
  }

  @Test func rfc3339KeepsNanosecondsAndOffsets() {
    #expect(RFC3339Time.unixNano("1970-01-01T00:00:00Z") == 0)
    #expect(RFC3339Time.unixNano("2026-11-25T10:00:00Z") == 1_795_600_800_000_000_000)
    #expect(RFC3339Time.unixNano("2026-11-25T11:00:00.000000001+01:00") == 1_795_600_800_000_000_001)
    #expect(RFC3339Time.unixNano("2026-11-25T10:00:00.5Z") == 1_795_600_800_500_000_000)
    #expect(RFC3339Time.unixNano("2026-11-25T10:00:00.1234567891Z") == 1_795_600_800_123_456_789)
    #expect(RFC3339Time.unixNano("2026-02-30T10:00:00Z") == nil)
    #expect(RFC3339Time.unixNano("2026-11-25 10:00") == nil)
    #expect(RFC3339Time.unixNano("1969-12-31T23:59:59Z") == nil)
    let now: UInt64 = 1_795_600_800_123_456_789
    #expect(RFC3339Time.unixNano(RFC3339Time.format(now)) == now)
  }
}
