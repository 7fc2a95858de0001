import ArgumentParser
import Manifest
import Replay

struct ExportCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "export",
    abstract: "Write a verified bundle as files other tools read.",
    discussion: """
      The bundle is verified in full (as verify --deep) while the files are written under
      temporary names; they appear only once every check has passed, and a bundle that fails is
      refused with exit 1 and leaves nothing behind. Formats: otlp-json (OTLP/JSON lines, one Export…ServiceRequest per line, as the
      Collector's otlpjsonfile receiver reads), otlp-proto (the Collector file exporter's stream: a
      4-byte big-endian length before each serialized request), openmetrics (metrics only, for
      promtool tsdb create-blocks-from openmetrics). One file per signal and tenant, named
      <signal>.tenant-<16 hex of SHA-256(tenant)>.<ext>, plus index.json mapping files to tenants.
      The same bundle always gives byte-identical files. Files are 0600 and appear only when
      complete; a file of the same name already in --out is refused (exit 2) unless --force.
      """)

  @Argument(help: "The bundle (.sfb.tar).")
  var bundle: String

  @OptionGroup var trust: TrustOptions

  @Option(help: "otlp-json, otlp-proto or openmetrics.")
  var format: String

  @Option(
    help: "Output directory (made 0700 if missing); files already in it that the export writes need --force."
  )
  var out: String

  @Flag(help: "Replace files of an earlier export in --out (atomically; a symlink there is replaced, never followed).")
  var force = false

  @Flag(help: "Print one JSON object instead of text.")
  var json = false

  func validate() throws {
    try trust.validate()
    if ExportFormat(rawValue: format) == nil {
      throw ValidationError("--format must be otlp-json, otlp-proto or openmetrics")
    }
  }

  func run() throws {
    // The files are written while the bundle is verified and appear only once it has passed.
    let staged = StagedExport(
      bundle: bundle, format: ExportFormat(rawValue: format) ?? .otlpJSON, directory: out, replacing: force)
    let verified: DeeplyVerifiedBundle
    do {
      verified = try DeepVerification.verify(
        bundle: bundle, trustedKeys: trust.trustedKeys, threshold: trust.threshold, json: json, command: "export",
        consumer: staged)
    } catch {
      staged.abandon()
      throw error
    }
    let report: ExportReport
    do {
      report = try staged.publish(verified)
    } catch {
      staged.abandon()
      if error.isEvidenceError { throw CLIFailure.evidence(error.description) }
      if error.code == .outputExists { throw CLIFailure.usage("--out: \(error.description)") }
      throw CLIFailure.runtime(error.description)
    }
    if json {
      var fields: [(key: String, value: JSONValue)] = [
        ("result", .string("exported")), ("bundle", .string(bundle)), ("format", .string(format)),
        ("out", .string(out)), ("manifestSha256", .string(verified.manifestSHA256)),
        ("files", report.filesJSON),
      ]
      if format == ExportFormat.openMetrics.rawValue {
        fields.append(("renderedPoints", .number(String(report.renderedPoints))))
        fields.append(("skippedPoints", .number(String(report.skippedPoints))))
      }
      try Output.printJSON(.object(fields))
    } else {
      print("exported \(bundle) as \(format) into \(out): \(report.files.count) file(s)")
      for file in report.files {
        print(
          "  \(file.name)  \(file.signal.rawValue) tenant=\(file.tenant): \(file.records) record(s), \(file.bytes) byte(s)"
        )
      }
      if format == ExportFormat.openMetrics.rawValue {
        print("\(report.renderedPoints) point(s) written, \(report.skippedPoints) without an OpenMetrics form skipped")
      }
    }
  }
}
