import ArgumentParser
import Capture
import Foundation
import Incidents
import Manifest
import Seal
import Verify

struct ImportCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "import",
    abstract: "Seal OTLP files into a signed bundle.",
    discussion: """
      Reads OTLP/JSON (Export…ServiceRequest documents one after another: one per line, or each
      spread over several lines) or the Collector file exporter's length-prefixed protobuf stream,
      either optionally zstd-compressed; the format is detected. Files are streamed: protobuf
      messages are checked and sealed byte for byte, and memory stays bounded whatever the size.
      Records are numbered per signal from 0 in input order under node "import".
      Defaults: incident id "import-" + 16 hex digits of a digest over the records; reason
      "imported from OTLP files"; declared by "stella-forensics import"; declared at the end of
      the capture window, which spans the records' own timestamps; tenant "default".
      """)

  @Argument(help: "OTLP files to import, in order.")
  var files: [String]

  @Option(help: "Private key file to sign with.")
  var key: String

  @Option(help: "Bundle file to write (mode 0600); an existing file is refused unless --force.")
  var out: String

  @Flag(help: "Replace an existing --out file (atomically; a symlink there is replaced, never followed).")
  var force = false

  @Option(help: "Incident id.")
  var incident: String?

  @Option(help: "Why the evidence is being sealed.")
  var reason: String?

  @Option(name: .customLong("declared-by"), help: "Who declared the incident.")
  var declaredBy: String?

  @Option(help: "Tenant of the imported records.")
  var tenant: String?

  @Option(
    help: """
      The signal (traces, logs or metrics) of protobuf requests that hold no span, log record or \
      metric, in a file where no other request tells it.
      """)
  var signal: String?

  func validate() throws {
    if files.isEmpty { throw ValidationError("give at least one OTLP file") }
  }

  func run() throws {
    try CLIFailure.refuseExisting(out, force: force)
    let signingKey = try KeyLoading.privateKey(key)
    var options = ImportOptions(incidentID: incident, reason: reason, declaredBy: declaredBy, tenant: tenant)
    // Compressed segments wait beside the output (the same file system as the bundle, which is
    // about their size), so memory stays bounded whatever the input's size.
    let outDirectory = (out as NSString).deletingLastPathComponent
    options.spillDirectory = outDirectory.isEmpty ? "." : outDirectory
    if let signal {
      guard let known = Signal(rawValue: signal) else {
        throw CLIFailure.usage("--signal must be traces, logs or metrics, not \(signal)")
      }
      options.emptyRequestSignal = known
    }
    let display = ProgressDisplay.ifTerminal("importing")
    if let display {
      let sizes = files.map { (try? FileManager.default.attributesOfItem(atPath: $0)[.size] as? UInt64) ?? 0 }
      let total = sizes.reduce(0, +)
      let fileCount = files.count
      options.onFileDone = { @Sendable done, _ in
        display.update(
          bytesDone: sizes.prefix(done).reduce(0, +), bytesTotal: total, detail: "\(done)/\(fileCount) files")
      }
    }
    let evidence: ImportedEvidence
    do {
      evidence = try EvidenceImport.prepare(paths: files, options: options)
      display?.finish()
    } catch {
      display?.finish()
      throw CLIFailure.usage(error.description)
    }
    let manifest: BundleManifest
    defer { evidence.removeSpill() }
    do {
      manifest = try BundleSealer.seal(
        segments: evidence.segments, facts: evidence.facts, signingKeys: [signingKey], outputPath: out,
        replacing: force)
    } catch {
      throw CLIFailure.sealing(error, out: out)
    }
    let counts = Signal.allCases.compactMap { signal in
      evidence.recordCounts[signal].map { "\($0) \(signal.rawValue)" }
    }
    print(
      "wrote \(out): incident \(manifest.incident.id), \(manifest.blobs.count) blob(s), records: \(counts.joined(separator: ", "))"
    )
  }
}
