import Foundation
import Testing

@testable import Capture
@testable import Journal
@testable import Settings

@Suite struct CaptureConfigurationTests {
  static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent().path

  @Test func theExampleSetsNothingSoProfilesApply() throws {
    let path = Self.repository + "/config/capture.example.yaml"
    let text = try String(contentsOfFile: path, encoding: .utf8)
    #expect(try CaptureConfiguration.profile(inYAML: text, path: path) == nil)
    var forensic = CaptureConfiguration(profile: .forensic)
    try forensic.apply(yaml: text, path: path)
    try forensic.validate()
    #expect(forensic.journal.durability == .fsyncPerBatch)
    #expect(forensic.effectiveSettings.allSatisfy { $0.origin != .file(path) })
  }

  /// Uncommenting every commented-out setting of the example gives the default profile's values:
  /// the example documents the defaults truthfully (apart from the sample paths and node id it names).
  @Test func theExamplesCommentedValuesAreTheDefaults() throws {
    let path = Self.repository + "/config/capture.example.yaml"
    let text = try String(contentsOfFile: path, encoding: .utf8)
    let uncommented = text.split(separator: "\n", omittingEmptySubsequences: false).map { line in
      line.wholeMatch(of: /# ( *[a-z][a-z-]*:( .*)?)/).map { String($0.1) } ?? String(line)
    }.joined(separator: "\n")
    var configuration = CaptureConfiguration()
    try configuration.apply(yaml: uncommented, path: path)
    let defaults = Dictionary(uniqueKeysWithValues: CaptureConfiguration().effectiveSettings.map { ($0.key, $0.value) })
    let examples: Set<String> = ["node-id", "redaction", "sampling", "tls.cert", "tls.key", "tls.client-ca"]
    let fromFile = configuration.effectiveSettings.filter { $0.origin == .file(path) }
    #expect(fromFile.count > 30)
    for setting in fromFile where !examples.contains(setting.key) {
      #expect(setting.value == defaults[setting.key], "\(setting.key)")
    }
  }

  @Test func everySettingSaysWhereItCameFrom() throws {
    var configuration = CaptureConfiguration(profile: .forensic)
    try configuration.apply(yaml: "limits:\n  max-tenants: 7\nring:\n  max-age: 2h\n", path: "c.yaml")
    configuration.set(\.journal.durability, to: .interval, key: "journal.durability", flag: "--durability")
    let settings = Dictionary(uniqueKeysWithValues: configuration.effectiveSettings.map { ($0.key, $0) })
    #expect(settings["limits.max-tenants"]?.value == "7")
    #expect(settings["limits.max-tenants"]?.origin == .file("c.yaml"))
    #expect(settings["ring.max-age"]?.value == "2h")
    #expect(settings["journal.durability"]?.value == "interval")
    #expect(settings["journal.durability"]?.origin == .flag("--durability"))
    #expect(settings["journal.min-free-bytes"]?.value == "1GiB")
    #expect(settings["journal.min-free-bytes"]?.origin == .profile(.forensic))
    #expect(settings["limits.max-connections"]?.origin == .default)
    let yaml = configuration.effectiveYAML
    #expect(yaml.contains("  durability: interval  # flag --durability\n"))
    #expect(yaml.contains("  max-tenants: 7  # file c.yaml\n"))
    // The printed configuration loads back to the same values.
    var reloaded = CaptureConfiguration(profile: .forensic)
    try reloaded.apply(yaml: yaml, path: "printed.yaml")
    #expect(reloaded.effectiveSettings.map(\.value) == configuration.effectiveSettings.map(\.value))
  }

  @Test func validationNamesTheKeyAndTheFlagOrFileThatSetIt() throws {
    var configuration = CaptureConfiguration()
    configuration.set(\.maxRequestBytes, to: 10, key: "limits.max-request-bytes", flag: "--max-request-bytes")
    #expect {
      try configuration.validate()
    } throws: { error in
      (error as? CaptureConfigurationError)?.message.hasPrefix("limits.max-request-bytes (--max-request-bytes): ")
        == true
    }
    var fromFile = CaptureConfiguration()
    try fromFile.apply(yaml: "ring:\n  max-age: 1m\n", path: "c.yaml")
    #expect {
      try fromFile.validate()
    } throws: { error in
      (error as? CaptureConfigurationError)?.message.hasPrefix("ring.max-age (in c.yaml): ") == true
    }
  }

  @Test func profileDifferencesListBothValues() {
    let differences = CaptureConfiguration.differences(between: .default, and: .forensic)
    let byKey = Dictionary(uniqueKeysWithValues: differences.map { ($0.key, $0) })
    #expect(
      byKey["journal.durability"]
        == ProfileDifference(key: "journal.durability", first: "group-commit", second: "fsync-per-batch"))
    #expect(byKey["journal.segment-max-age"]?.second == "30s")
    #expect(byKey["ring.max-bytes"]?.second == "null")
    #expect(byKey["limits.max-connections"] == nil)
    #expect(byKey["profile"] == nil)
    let airgap = CaptureConfiguration.differences(between: .default, and: .airgap)
    #expect(airgap == [ProfileDifference(key: "outbound hooks", first: "allowed", second: "refused")])
    #expect(CaptureConfiguration.differences(between: .forensic, and: .forensic).isEmpty)
  }

  @Test func aSectionWithEveryEntryCommentedOutIsEmpty() throws {
    var configuration = CaptureConfiguration()
    try configuration.apply(yaml: "journal:\n#  durability: interval\nlisteners:\n", path: "c.yaml")
    #expect(configuration.journal.durability == .groupCommit)
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

  /// `incident --admin` takes the admin address exactly as capture prints it.
  @Test(arguments: ["127.0.0.1:4320", "[::1]:9", "localhost:65535"])
  func theAdminClientReadsAListenAddressAsCapturePrintsIt(printed: String) throws {
    let listen = try ListenAddress(parsing: printed)
    let plain = try AdminEndpoint(parsing: listen.description)
    #expect(plain == AdminEndpoint(usesTLS: false, host: listen.host, port: listen.port))
    let secured = try AdminEndpoint(parsing: listen.description, bareUsesTLS: true)
    #expect(secured == AdminEndpoint(usesTLS: true, host: listen.host, port: listen.port))
    // A scheme, when given, wins over the TLS files' hint.
    #expect(try AdminEndpoint(parsing: "http://\(listen.description)", bareUsesTLS: true).usesTLS == false)
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
    #expect(DurationText.milliseconds("45") == 45_000)
    #expect(DurationText.milliseconds("-1s") == nil)
    // Past 100 years, and past Int's range, is refused rather than trapping on overflow.
    #expect(DurationText.milliseconds("876000h") == DurationText.maximumMilliseconds)
    #expect(DurationText.milliseconds("876001h") == nil)
    #expect(DurationText.milliseconds("9999999999999999") == nil)
    #expect(DurationText.milliseconds("9999999999999999ms") == nil)
    #expect(DurationText.milliseconds("9223372036854775807h") == nil)
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
