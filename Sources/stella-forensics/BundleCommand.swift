import ArgumentParser
import Capture
import Foundation
import Manifest
import Verify

struct BundleCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "bundle",
    abstract: "Seal captured data into a signed bundle.",
    discussion: """
      Takes every journal segment of the data directory whose records arrived between --from and
      --to (RFC 3339), whole: the bundle may hold a few records just outside the window, never
      fewer than are inside it. Sealed segments are copied as they are; records still in an open
      segment are sealed from the file's valid prefix, so this works while capture runs.
      Defaults: incident id "capture-" + the window's two times in compact UTC form; reason
      "captured OTLP from FROM to TO"; declared by "stella-forensics bundle"; declared at --to.
      """)

  @Option(help: "Capture data directory.")
  var data: String

  @Option(help: "Window start (RFC 3339, e.g. 2026-11-25T10:00:00Z).")
  var from: String

  @Option(help: "Window end (RFC 3339).")
  var to: String

  @Option(help: "Incident id.")
  var id: String?

  @Option(help: "Why the evidence is being sealed.")
  var reason: String?

  @Option(name: .customLong("declared-by"), help: "Who declared the incident.")
  var declaredBy: String?

  @Option(help: "Only this tenant's streams.")
  var tenant: String?

  @Option(help: "Private key file to sign with.")
  var key: String

  @Option(help: "Bundle file to write.")
  var out: String

  func run() throws {
    guard let fromNano = RFC3339Time.unixNano(from) else {
      throw CLIFailure.usage("--from: \"\(from)\" is not an RFC 3339 time (like 2026-11-25T10:00:00Z)")
    }
    guard let toNano = RFC3339Time.unixNano(to) else {
      throw CLIFailure.usage("--to: \"\(to)\" is not an RFC 3339 time (like 2026-11-25T11:00:00Z)")
    }
    guard fromNano <= toNano else { throw CLIFailure.usage("--from \(from) is after --to \(to)") }
    if let tenant, let problem = TenantName.problem(with: tenant) { throw CLIFailure.usage("--tenant: \(problem)") }
    guard FileManager.default.fileExists(atPath: JournalLayout(dataDirectory: data).journalDirectory) else {
      throw CLIFailure.usage("--data: \(data) holds no capture journal")
    }
    let signingKey = try KeyLoading.privateKey(key)
    let segments: [SealedSegment]
    do {
      segments = try JournalSelection.select(dataDirectory: data, fromUnixNano: fromNano, toUnixNano: toNano, tenant: tenant)
    } catch {
      throw error.kind == .io ? CLIFailure.runtime(error.message) : CLIFailure.usage(error.message)
    }
    guard !segments.isEmpty else {
      throw CLIFailure.usage(
        "no captured records arrived between \(from) and \(to)\(tenant.map { " for tenant \($0)" } ?? "") in \(data)")
    }
    let facts = BundleFacts(
      incident: IncidentFacts(
        id: id ?? "capture-\(Self.compact(fromNano))-\(Self.compact(toNano))",
        reason: reason ?? "captured OTLP from \(RFC3339.format(fromNano)) to \(RFC3339.format(toNano))",
        declaredBy: declaredBy ?? "stella-forensics bundle", declaredAtUnixNano: toNano),
      captureStartUnixNano: fromNano, captureEndUnixNano: toNano, redactionPolicy: .none, tool: .current)
    let manifest: BundleManifest
    do {
      manifest = try BundleSealer.seal(segments: segments, facts: facts, signingKeys: [signingKey], outputPath: out)
    } catch {
      throw error.kind == .io ? CLIFailure.runtime(error.message) : CLIFailure.usage("\(out): \(error.message)")
    }
    let records = manifest.blobs.reduce(UInt64(0)) { $0 + $1.recordCount }
    print(
      "wrote \(out): incident \(manifest.incident.id), \(manifest.blobs.count) blob(s), \(records) record(s), \(Set(manifest.blobs.map(\.stream)).count) stream(s)"
    )
  }

  /// `20261125T100000Z`-style UTC, fit for an id.
  static func compact(_ unixNano: UInt64) -> String {
    let full = RFC3339.format(unixNano).filter { $0 != "-" && $0 != ":" }
    // 20261125T100000.000000000Z: drop an all-zero fraction.
    return full.hasSuffix(".000000000Z") ? String(full.dropLast(11)) + "Z" : full.replacingOccurrences(of: ".", with: "")
  }
}
