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
      Several nodes: give --data once per capture node's data directory. The bundle lists every
      node with records in the window, with each node's streams (and audit stream) over the same
      window. Each directory must be a different node (its node-id file); the same directory
      twice, or two of one node id, is refused. With --incident, the incident must be in at least
      one directory's incident log; where several logs record it, their reason, declarer and
      tenants must agree (else it is refused: bundle the nodes separately), and the bundle takes
      the earliest declaration as its declared time and the window from the earliest look-back
      start to the latest end (to now while it is active on any node).
      A stream whose segments in the window do not join (a segment file missing between two
      others) is refused, naming the node, stream and missing seqs, rather than sealed with a hole.
      Defaults: incident id "capture-" + the window's two times in compact UTC form; reason
      "captured OTLP from FROM to TO"; declared by "stella-forensics bundle"; declared at --to.
      """)

  @Option(help: "Capture data directory; repeat it for one bundle of several capture nodes.")
  var data: [String] = []

  @Option(help: "Bundle this incident (from the data directories' incident logs).")
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
    if data.isEmpty { throw ValidationError("give --data DIR (once per capture node)") }
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
    let journalData = data.map { archive ? JournalLayout(dataDirectory: $0).archiveDataDirectory : $0 }
    for (directory, journal) in zip(data, journalData)
    where !FileManager.default.fileExists(atPath: JournalLayout(dataDirectory: journal).journalDirectory) {
      throw CLIFailure.usage("--data: \(directory) holds no capture \(archive ? "archive" : "journal")")
    }
    let incidentRecords = try incident.map { try Self.findIncident($0, in: data) }
    let scope = try incidentRecords.map(incidentScope) ?? rangeScope()
    let signingKey = try KeyLoading.privateKey(key)
    let manifest: BundleManifest
    do {
      manifest = try JournalBundler.seal(
        dataDirectories: journalData, scope: scope, signingKeys: [signingKey], outputPath: out, replacing: force)
    } catch {
      switch error.code {
      case .unreadableJournal, .sequenceGap: throw CLIFailure.runtime(error.message)
      case .unusableWindow, .nodeIdentity: throw CLIFailure.usage(error.message)
      case .emptyWindow: throw CLIFailure.usage("\(error.message) in \(data.joined(separator: ", "))")
      case .sealing:
        guard let sealError = error.cause as? SealError else { throw CLIFailure.runtime(error.message) }
        throw CLIFailure.sealing(sealError, out: out)
      }
    }
    let records = manifest.blobs.reduce(UInt64(0)) { $0 + $1.recordCount }
    if let hooks {
      let described =
        incidentRecords.map { NotifyEvent.Incident($0) }
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

  /// The incident as the data directories' incident logs record it (see ``NodesIncident``).
  static func findIncident(_ id: String, in data: [String]) throws -> NodesIncident {
    do {
      return try NodesIncident.find(id: id, in: data)
    } catch {
      switch error.code {
      case .notFound, .conflict, .invalid: throw CLIFailure.usage(error.message)
      case .io: throw CLIFailure.runtime(error.message)
      }
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
  private func incidentScope(_ incident: NodesIncident) throws -> BundleScope {
    // An active incident is bundled up to now; its bundle says so in the capture window's end.
    let end = incident.endUnixNano ?? IncidentManager.wallClock()
    var tenants: [String]? = incident.tenants.isEmpty ? nil : incident.tenants
    if let tenant {
      guard incident.covers(tenant: tenant) else {
        throw CLIFailure.usage("incident \(incident.id) does not cover tenant \(tenant)")
      }
      tenants = [tenant]
    }
    // An incident bundle of the flight recorder carries each node's audit stream (README, "The
    // audit stream"); the archive holds no audit stream of its own.
    return .incident(
      IncidentFacts(
        id: incident.id, reason: incident.reason, declaredBy: incident.declaredBy,
        declaredAtUnixNano: incident.declaredAtUnixNano),
      windowStart: incident.windowStartUnixNano, end: end, tenants: tenants, carriesAuditStream: !archive)
  }
}
