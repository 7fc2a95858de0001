import ArgumentParser
import Capture
import EvidenceIO
import Foundation
import Incidents
import Journal
import Logging
import Manifest
import Seal
import Verify

struct BundleCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "bundle",
    abstract: "Seal captured data into a signed bundle.",
    discussion: """
      With --incident ID: everything the incident's tenants sent from its start minus its
      look-back to its end (to now for an active incident), with the incident's facts (id,
      reason, who declared it and when) as the chain of custody, and the node's audit stream
      (tenant stella-forensics:audit: every admin action and refusal from a minute before the
      window to a minute after it).
      With --from/--to: every journal segment of the data directory whose records arrived
      between --from and --to (RFC 3339), whole: the bundle may hold a few records just outside the window, never
      fewer than are inside it; the audit stream only with --tenant stella-forensics:audit.
      Sealed segments are copied as they are; records still in an open segment are sealed from
      the file's valid prefix, so this works while capture runs.
      Defaults: incident id "capture-" + the window's two times in compact UTC form; reason
      "captured OTLP from FROM to TO"; declared by "stella-forensics bundle"; declared at --to.
      """)

  @Option(help: "Capture data directory.")
  var data: String

  @Option(help: "Bundle this incident (from the data directory's incident log).")
  var incident: String?

  @Option(help: "Window start (RFC 3339, e.g. 2026-11-25T10:00:00Z).")
  var from: String?

  @Option(help: "Window end (RFC 3339).")
  var to: String?

  @Option(help: "Incident id.")
  var id: String?

  @Option(help: "Why the evidence is being sealed.")
  var reason: String?

  @Option(name: .customLong("declared-by"), help: "Who declared the incident.")
  var declaredBy: String?

  @Flag(help: "Bundle the long-term archive (what tail sampling kept) instead of the flight recorder.")
  var archive = false

  @Option(help: "Only this tenant's streams.")
  var tenant: String?

  @Option(help: "Private key file to sign with.")
  var key: String

  @Option(
    name: .customLong("notify-config"),
    help: "A YAML file with a hooks: section (as capture's); its hooks are told bundle.sealed.")
  var notifyConfig: String?

  @Option(help: "Bundle file to write (mode 0600); an existing file is refused unless --force.")
  var out: String

  @Flag(help: "Replace an existing --out file (atomically; a symlink there is replaced, never followed).")
  var force = false

  func validate() throws {
    if incident != nil {
      if from != nil || to != nil { throw ValidationError("give either --incident or --from/--to, not both") }
      if id != nil || reason != nil || declaredBy != nil {
        throw ValidationError("--id, --reason and --declared-by come from the incident with --incident")
      }
    } else if from == nil || to == nil {
      throw ValidationError("give --incident ID, or both --from and --to")
    }
  }

  func run() async throws {
    try CLIFailure.refuseExisting(out, force: force)
    let hooks = try notifyConfig.map(Self.loadHooks)
    if let tenant, let problem = TenantName.problem(with: tenant) { throw CLIFailure.usage("--tenant: \(problem)") }
    let journalData = archive ? JournalLayout(dataDirectory: data).archiveDataDirectory : data
    guard FileManager.default.fileExists(atPath: JournalLayout(dataDirectory: journalData).journalDirectory) else {
      throw CLIFailure.usage("--data: \(data) holds no capture \(archive ? "archive" : "journal")")
    }
    let scope = try incident.map(incidentScope) ?? rangeScope()
    let signingKey = try KeyLoading.privateKey(key)
    let manifest: BundleManifest
    do {
      manifest = try JournalBundler.seal(
        dataDirectory: journalData, scope: scope, signingKeys: [signingKey], outputPath: out, replacing: force)
    } catch {
      switch error.code {
      case .unreadableJournal: throw CLIFailure.runtime(error.message)
      case .unusableWindow: throw CLIFailure.usage(error.message)
      case .emptyWindow: throw CLIFailure.usage("\(error.message) in \(data)")
      case .sealing:
        guard let sealError = error.cause as? SealError else { throw CLIFailure.runtime(error.message) }
        throw CLIFailure.sealing(sealError, out: out)
      }
    }
    let records = manifest.blobs.reduce(UInt64(0)) { $0 + $1.recordCount }
    if let hooks {
      let incidentRecord = try incident.flatMap { id in try Self.readIncidents(data).first { $0.id == id } }
      let described =
        incidentRecord.map { NotifyEvent.Incident($0) }
        ?? NotifyEvent.Incident(
          id: manifest.incident.id, reason: manifest.incident.reason, declaredBy: manifest.incident.declaredBy,
          tenants: scope.tenants ?? [], startedAtUnixNano: manifest.incident.declaredAtUnixNano,
          stoppedAtUnixNano: manifest.capture.endUnixNano)
      await Self.announce(manifest, incident: described, out: out, records: records, through: hooks)
    }
    print(
      "wrote \(out): incident \(manifest.incident.id), \(manifest.blobs.count) blob(s), \(records) record(s), \(Set(manifest.blobs.map(\.stream)).count) stream(s)"
    )
  }

  static func readIncidents(_ data: String) throws -> [Incident] {
    do {
      return try IncidentLog(dataDirectory: data).read()
    } catch {
      throw CLIFailure.runtime(error.message)
    }
  }

  /// Hooks from a `--notify-config` file; none run when the file names the airgap profile.
  static func loadHooks(_ path: String) throws -> NotifyHooks {
    let text: String
    do {
      text = try String(contentsOfFile: path, encoding: .utf8)
    } catch {
      throw CLIFailure.usage("--notify-config: cannot read \(path): \(error.localizedDescription)")
    }
    do {
      let configuration = try HookConfiguration(yaml: text, path: path)
      let profile = try CaptureConfiguration.profile(inYAML: text, path: path) ?? .default
      return NotifyHooks(
        configuration: configuration, enabled: CaptureConfiguration(profile: profile).hooksAllowed,
        logger: Logger(label: "stella-forensics.bundle"))
    } catch {
      throw CLIFailure.usage(error.message)
    }
  }

  /// Tells the hooks a bundle was sealed, and waits (a bounded time) for them to be told.
  static func announce(
    _ manifest: BundleManifest, incident: NotifyEvent.Incident, out: String, records: UInt64, through hooks: NotifyHooks
  ) async {
    let manifestSHA256 = (try? manifest.canonicalBytes()).map { SHA256Digest.hex(of: $0) } ?? ""
    let fileSHA256: String
    do {
      let source = try FileByteSource(path: out)
      fileSHA256 = try SHA256Digest.hex(of: source, offset: 0, count: source.count)
    } catch {
      FileHandle.standardError.write(Data("warning: bundle.sealed not sent: cannot hash \(out): \(error)\n".utf8))
      return
    }
    let path = URL(fileURLWithPath: out).standardizedFileURL.path
    hooks.notify(
      NotifyEvent(
        kind: .bundleSealed, incident: incident, nodeID: manifest.capture.nodes.joined(separator: ","),
        bundle: NotifyEvent.Bundle(
          path: path, sha256: fileSHA256, manifestSha256: manifestSHA256, records: records,
          blobs: manifest.blobs.count)))
    await hooks.drain(timeout: .seconds(30))
  }

  /// The scope of a `--from`/`--to` bundle.
  private func rangeScope() throws -> BundleScope {
    let fromText = from ?? ""
    let toText = to ?? ""
    guard let fromNano = RFC3339Time.unixNano(fromText) else {
      throw CLIFailure.usage("--from: \"\(fromText)\" is not an RFC 3339 time (like 2026-11-25T10:00:00Z)")
    }
    guard let toNano = RFC3339Time.unixNano(toText) else {
      throw CLIFailure.usage("--to: \"\(toText)\" is not an RFC 3339 time (like 2026-11-25T11:00:00Z)")
    }
    guard fromNano <= toNano else { throw CLIFailure.usage("--from \(fromText) is after --to \(toText)") }
    return .timeRange(from: fromNano, to: toNano, id: id, reason: reason, declaredBy: declaredBy, tenant: tenant)
  }

  /// The scope of an incident's bundle.
  private func incidentScope(_ incidentID: String) throws -> BundleScope {
    let incidents = try Self.readIncidents(data)
    guard let incident = incidents.first(where: { $0.id == incidentID }) else {
      throw CLIFailure.usage(
        "no incident \(incidentID) in \(data) (known: \(incidents.map(\.id).joined(separator: ", ")))")
    }
    // An active incident is bundled up to now; its bundle says so in the capture window's end.
    let end = incident.endUnixNano ?? IncidentManager.wallClock()
    var tenants: [String]? = incident.tenants.isEmpty ? nil : incident.tenants
    if let tenant {
      guard incident.covers(tenant: tenant) else {
        throw CLIFailure.usage("incident \(incident.id) does not cover tenant \(tenant)")
      }
      tenants = [tenant]
    }
    // An incident bundle of the flight recorder carries the node's audit stream (README, "The
    // audit stream"); the archive holds no audit stream of its own.
    return .incident(
      IncidentFacts(
        id: incident.id, reason: incident.reason, declaredBy: incident.declaredBy,
        declaredAtUnixNano: incident.startUnixNano),
      windowStart: incident.windowStartUnixNano, end: end, tenants: tenants, carriesAuditStream: !archive)
  }
}
