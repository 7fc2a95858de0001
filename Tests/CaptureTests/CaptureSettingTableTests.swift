import Foundation
import Receivers
import Testing

@testable import Capture
@testable import Journal
@testable import Settings

/// The capture configuration's key table: one row per setting, read the same from a file and
/// from a flag, and no configured duration or size able to overflow.
@Suite struct CaptureSettingTableTests {
  static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent().path

  static let table = CaptureConfiguration.settingTable

  @Test func everyKeyAndEveryFlagHasExactlyOneRow() {
    let keys = Self.table.map(\.key)
    #expect(
      Set(keys).count == keys.count, "duplicate keys: \(keys.filter { key in keys.filter { $0 == key }.count > 1 })")
    let flags = Self.table.compactMap(\.flag)
    #expect(Set(flags).count == flags.count)
    for flag in flags { #expect(flag.hasPrefix("--"), "\(flag)") }
    #expect(CaptureConfiguration.setting(flag: "--sync-interval")?.key == "journal.sync-interval")
    #expect(CaptureConfiguration.setting(key: "journal.sync-interval")?.flag == "--sync-interval")
  }

  /// Every key the example configuration sets (uncommented) has its row, and every file key of
  /// the table is documented in the example (some only as comments inside comments).
  @Test func theExampleDocumentsEveryFileKeyOfTheTable() throws {
    let path = Self.repository + "/config/capture.example.yaml"
    let text = try String(contentsOfFile: path, encoding: .utf8)
    let uncommented = text.split(separator: "\n", omittingEmptySubsequences: false).map { line in
      line.wholeMatch(of: /# ( *[a-z][a-z-]*:( .*)?)/).map { String($0.1) } ?? String(line)
    }.joined(separator: "\n")
    var configuration = CaptureConfiguration()
    try configuration.apply(yaml: uncommented, path: path)
    #expect(configuration.effectiveSettings.filter { $0.origin == .file(path) }.count > 30)
    // `hooks:` has an example of its own (config/hooks.example.yaml).
    for row in Self.table where row.isFileKey && row.key != "hooks" {
      for part in row.key.split(separator: ".") {
        #expect(text.contains("\(part):"), "\(row.key) is not in config/capture.example.yaml")
      }
    }
  }

  /// The text a file would give each kind of setting, and the value a flag's parser makes of the
  /// same text (the CLI's `ExpressibleByArgument` conformances call these same initializers).
  static func sample(_ row: CaptureSetting) -> (yaml: String, flag: SettingValue)? {
    switch row.kind {
    case .text: return ("node-7", .text("node-7"))
    case .path: return ("/etc/stella/file.yaml", .text("/etc/stella/file.yaml"))
    case .choice(let words): return words.last.map { ($0, .text($0)) }
    case .size: return ByteCount(parsing: "3MiB").map { ("3MiB", .size($0)) }
    case .duration: return ConfiguredDuration(parsing: "90s").map { ("90s", .duration($0)) }
    case .address, .optionalAddress:
      return (try? ListenAddress(parsing: "127.0.0.1:9")).map { ("127.0.0.1:9", .address($0)) }
    case .count: return ("12", .count(12))
    case .bool: return ("true", .bool(true))
    case .names: return ("[a.example, b.example]", .names(["a.example", "b.example"]))
    case .section: return nil
    }
  }

  @Test func aFlagAndTheFileGiveTheSameValue() throws {
    let flagged = Self.table.filter { $0.flag != nil }
    #expect(flagged.count >= 28)
    for row in flagged {
      guard let flag = row.flag, let (text, flagValue) = Self.sample(row).map({ ($0.yaml, $0.flag) }) else {
        Issue.record("\(row.key): no sample")
        continue
      }
      #expect(try CaptureConfiguration.fileValue(key: row.key, text: text) == flagValue, "\(row.key)")
      // A file's tls section is whole (see tlsFromTheFileNeedsCertAndKey); the value is enough.
      if row.key.hasPrefix("tls.") { continue }
      var fromFile = CaptureConfiguration()
      let parts = row.key.split(separator: ".", maxSplits: 1).map(String.init)
      let document = parts.count == 2 ? "\(parts[0]):\n  \(parts[1]): \(text)\n" : "\(row.key): \(text)\n"
      try fromFile.apply(yaml: document, path: "/etc/stella/capture.yaml")
      var fromFlag = CaptureConfiguration()
      try fromFlag.apply(flag: flag, flagValue)
      #expect(row.render(fromFile) == row.render(fromFlag), "\(row.key)")
      #expect(fromFile.effectiveSettings.map(\.value) == fromFlag.effectiveSettings.map(\.value), "\(row.key)")
      #expect(fromFlag.effectiveSettings.first { $0.key == row.key }?.origin == .flag(flag))
    }
  }

  @Test func tlsFromTheFileNeedsCertAndKey() throws {
    var configuration = CaptureConfiguration()
    #expect(throws: CaptureConfigurationError.self) {
      try configuration.apply(yaml: "tls:\n  cert: a.pem\n", path: "c.yaml")
    }
    try configuration.apply(yaml: "tls:\n  cert: a.pem\n  key: a.key\n", path: "/etc/c.yaml")
    #expect(configuration.tls == TLSFiles(certificatePath: "/etc/a.pem", keyPath: "/etc/a.key", clientCAPath: nil))
    try configuration.apply(flag: "--tls-client-ca", .text("ca.pem"))
    #expect(configuration.tls?.clientCAPath == "ca.pem")
    #expect(configuration.tls?.certificatePath == "/etc/a.pem")
  }

  @Test func aDottedKeyWrittenFlatIsUnknown() {
    var configuration = CaptureConfiguration()
    #expect {
      try configuration.apply(yaml: "journal.durability: interval\n", path: "c.yaml")
    } throws: { error in
      (error as? CaptureConfigurationError)?.message
        == "c.yaml: unknown key journal.durability (see config/capture.example.yaml)"
    }
  }

  @Test func aFlagOfTheWrongKindOrNoSettingIsAnErrorNotATrap() {
    var configuration = CaptureConfiguration()
    #expect(throws: CaptureConfigurationError.self) { try configuration.apply(flag: "--sync-interval", .text("5s")) }
    #expect(throws: CaptureConfigurationError.self) { try configuration.apply(flag: "--no-such-flag", .bool(true)) }
    #expect(configuration.journal.syncIntervalMillis == 200)
  }

  /// Sub-second values of settings kept in whole seconds: the same from both sources, and never
  /// 0 where 0 would stop the service working.
  @Test func secondsSettingsRoundTheSameFromBothSources() throws {
    var fromFile = CaptureConfiguration()
    try fromFile.apply(yaml: "journal:\n  segment-max-age: 500ms\nincidents:\n  default-lookback: 1500ms\n", path: "c")
    var fromFlag = CaptureConfiguration()
    try fromFlag.apply(flag: "--segment-max-age", .duration(try #require(ConfiguredDuration(parsing: "500ms"))))
    try fromFlag.apply(flag: "--default-lookback", .duration(try #require(ConfiguredDuration(parsing: "1500ms"))))
    #expect(fromFile.journal.maxSegmentAgeSeconds == 1)
    #expect(fromFlag.journal.maxSegmentAgeSeconds == 1)
    #expect(fromFile.defaultLookbackSeconds == 1)
    #expect(fromFlag.defaultLookbackSeconds == 1)
  }

  @Test(arguments: ["9999999999999999", "9999999999999999ms", "9223372036854775807h", "876001h", "-1s"])
  func overlongDurationsAreRefusedByEverySource(text: String) {
    #expect(ConfiguredDuration(parsing: text) == nil)
    #expect(throws: CaptureConfigurationError.self) {
      _ = try CaptureConfiguration.fileValue(key: "journal.sync-interval", text: text)
    }
    var configuration = CaptureConfiguration()
    #expect {
      try configuration.apply(yaml: "journal:\n  sync-interval: \(text)\n", path: "c.yaml")
    } throws: { error in
      (error as? CaptureConfigurationError)?.message.contains("journal.sync-interval: \"\(text)\" is not a duration")
        == true
    }
  }

  @Test(arguments: ["99999999999TiB", "9223372036854775808", "-1", "8EiB"])
  func overlongSizesAreRefusedByEverySource(text: String) {
    #expect(ByteCount(parsing: text) == nil)
    var configuration = CaptureConfiguration()
    #expect {
      try configuration.apply(yaml: "ring:\n  max-bytes: \(text)\n", path: "c.yaml")
    } throws: { error in
      (error as? CaptureConfigurationError)?.message.contains("ring.max-bytes: \"\(text)\" is not a size") == true
    }
  }

  /// Values set through the API rather than parsed are range-checked by `validate()`, so the
  /// service's nanosecond conversions cannot overflow or trap on them either.
  @Test func validationRefusesDurationsAndSizesOutOfRange() {
    var configuration = CaptureConfiguration()
    configuration.defaultLookbackSeconds = Int.max
    configuration.journal.ringMaxAgeSeconds = nil
    #expect {
      try configuration.validate()
    } throws: { error in
      (error as? CaptureConfigurationError)?.message.hasPrefix("incidents.default-lookback: ") == true
    }
    var negative = CaptureConfiguration()
    negative.journal.minFreeBytes = -1
    #expect(throws: CaptureConfigurationError.self) { try negative.validate() }
    #expect(DurationText.nanoseconds(seconds: Int.max) == nil)
    #expect(DurationText.nanoseconds(seconds: -1) == nil)
    #expect(DurationText.nanoseconds(milliseconds: DurationText.maximumMilliseconds) == 3_153_600_000_000_000_000)
    #expect(
      ConfiguredDuration(milliseconds: DurationText.maximumMilliseconds)?.nanoseconds == 3_153_600_000_000_000_000)
    var options = JournalOptions()
    options.maxSegmentAgeSeconds = Int.max
    options.syncIntervalMillis = -5
    #expect(options.maxSegmentAgeNanos == UInt64.max)
    #expect(options.syncIntervalNanos == 0)
  }

  @Test func valuesPrintAsTheyAreWritten() {
    #expect(ByteCount(parsing: "64MiB")?.description == "64MiB")
    #expect(ByteCount(parsing: "1000")?.description == "1000")
    #expect(ConfiguredDuration(parsing: "1500ms")?.description == "1500ms")
    #expect(ConfiguredDuration(parsing: "7200s")?.description == "2h")
    #expect(CaptureSetting.alternatives(["a", "b", "c"]) == "a, b or c")
  }
}
