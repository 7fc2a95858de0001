import Audit
public import CodedErrors
import Dispatch
import Foundation
public import Incidents
import Ingest
import Journal
public import Logging
import Manifest
import NIOCore
import NIOPosix
public import Receivers
import Sampling
public import Settings
import Synchronization

/// The addresses the service's listeners are bound to (ports resolved when 0 was asked for).
public struct CaptureListeners: Sendable, Equatable {
  public var otlpHTTP: String
  public var otlpGRPC: String
  public var admin: String
  /// The Prometheus `/metrics` listener; `nil` when it is off.
  public var metrics: String? = nil
}

/// The long-running capture service: journal, admission pipeline, OTLP/HTTP and OTLP/gRPC
/// receivers, and the admin endpoint.
public final class CaptureService: Sendable {
  public let configuration: CaptureConfiguration
  private let logger: Logger
  private let journal: Journal
  /// The long-term archive: what tail sampling keeps, under its own node id.
  private let archive: Journal
  private let sampler: TailSampler
  /// The node's audit stream: admin actions, and what the node does by itself (expiries, reloads).
  private let audit: AuditTrail
  private let pipeline: CapturePipeline
  private let group: MultiThreadedEventLoopGroup
  private let adminGroup: MultiThreadedEventLoopGroup
  private let http: OTLPHTTPReceiver
  private let grpc: OTLPGRPCReceiver
  private let admin: AdminHTTPServer
  /// The service's Prometheus metrics, counted by the receivers, admission and the journal.
  public let metrics: CaptureMetrics
  /// The `/metrics` listener; `nil` when it is off.
  private let metricsServer: MetricsHTTPServer?
  /// Declared incidents; their windows pin the ring and their tenants are kept in full.
  public let incidents: IncidentManager
  /// Webhooks and commands told of incident changes.
  public let hooks: NotifyHooks
  private let ready = ReadyFlag()
  /// The listeners' TLS contexts, reloaded on SIGHUP; `nil` when the service is plaintext.
  private let tls: ServerTLSContexts?
  /// Rereads the configuration on SIGHUP (`nil`: only the files the configuration names).
  private let source: CaptureConfigurationSource?
  /// The configuration in effect: ``configuration`` with the reloadable parts of each reload.
  private let running: Mutex<CaptureConfiguration>
  /// The in-flight bound the sampler's limits are held to (see ``samplerMemory``).
  private let maxInFlightBytes: Int

  /// Opens the journal (recovering it) and prepares the listeners; nothing listens yet.
  ///
  /// - Parameter source: rereads the configuration (the `--config` file and flags) on SIGHUP;
  ///   `nil` rereads only the policy and certificate files `configuration` names.
  public init(
    configuration: CaptureConfiguration, logger: Logger, source: CaptureConfigurationSource? = nil
  ) throws(CaptureServiceError) {
    do {
      try configuration.validate()
    } catch {
      throw CaptureServiceError(.configuration, error.message)
    }
    self.configuration = configuration
    self.logger = logger
    self.source = source
    self.running = Mutex(configuration)
    self.maxInFlightBytes = configuration.maxInFlightBytes
    // Before the journal opens: unusable certificate or policy files are a configuration error
    // that should not leave a locked data directory behind.
    let files = try Self.loadFiles(of: configuration)
    tls = files.tls
    let redactor = files.redaction.map { Redactor(policy: $0) }
    var samplingPolicy = files.sampling
    let policyReference = redactor?.policy.reference ?? .none
    let metrics = CaptureMetrics()
    self.metrics = metrics
    let journal: Journal
    let archive: Journal
    do {
      journal = try Journal(
        dataDirectory: configuration.dataDirectory, nodeID: configuration.nodeID, options: configuration.journal,
        redactionPolicy: policyReference, logger: logger,
        syncObserver: { nanoseconds in metrics.observeFsync(nanoseconds: nanoseconds) })
      var archiveOptions = configuration.journal
      archiveOptions.ringMaxAgeSeconds = nil
      archiveOptions.ringMaxBytes = nil
      archiveOptions.maxJournalBytes = configuration.archiveMaxBytes
      archiveOptions.syncsAppends = false
      archive = try Journal(
        dataDirectory: JournalLayout(dataDirectory: configuration.dataDirectory).archiveDataDirectory,
        nodeID: journal.nodeID + ".archive", options: archiveOptions, redactionPolicy: policyReference,
        logger: logger)
    } catch {
      let kind: CaptureServiceError.Kind =
        error.kind == .configuration || error.kind == .locked ? .configuration : .journal
      throw CaptureServiceError(kind, error.message)
    }
    self.journal = journal
    self.archive = archive
    // Before anything can act: the chain continues from the last audit record on disk.
    let audit: AuditTrail
    do {
      audit = try AuditTrail(journal: journal, logger: logger)
    } catch {
      throw CaptureServiceError(.journal, error.message)
    }
    self.audit = audit
    let hooks = NotifyHooks(configuration: configuration.hooks, enabled: configuration.hooksAllowed, logger: logger)
    self.hooks = hooks
    let nodeID = journal.nodeID
    let incidents: IncidentManager
    do {
      incidents = try IncidentManager(
        dataDirectory: configuration.dataDirectory,
        // `validate()` above keeps every duration within 100 years, so none of these saturates.
        defaultLookbackNanos: DurationText.nanoseconds(seconds: configuration.defaultLookbackSeconds) ?? .max,
        maxLookbackNanos: configuration.journal.ringMaxAgeNanos,
        maxActiveIncidents: configuration.maxActiveIncidents,
        maxTTLNanos: DurationText.nanoseconds(seconds: configuration.maxIncidentTTLSeconds) ?? .max,
        onChange: { change in
          hooks.notify(NotifyEvent(change: change, nodeID: nodeID))
          // Starts and stops are audited by the admin gate, with their principal; an expiry
          // has no request, so the node records it itself.
          if change.kind == .expired {
            let event = AdminEvent(
              action: "incident.expire", principal: "system", peer: "", outcome: .done(status: 0),
              incidentID: change.incident.id)
            Task { await audit.record(event.auditRecord) }
          }
        })
    } catch {
      throw CaptureServiceError(.journal, error.message)
    }
    if let line = incidents.skippedTornLine {
      logger.warning(
        "skipped the torn last line of the incident log (a crash mid-write; that change never took effect)",
        metadata: ["path": "\(incidents.log.path)", "line": "\(line)"])
    }
    self.incidents = incidents
    // After the journal opened: it holds the data directory's lock, so two services never race
    // to generate the local operator's token.
    let tokens: AdminTokens
    do {
      if let path = configuration.adminTokensPath {
        tokens = try AdminTokens.load(path: path)
      } else {
        tokens = try AdminTokens.loadOrCreateLocal(dataDirectory: configuration.dataDirectory)
      }
    } catch {
      throw CaptureServiceError(error.kind == .io ? .journal : .configuration, "admin tokens: \(error)")
    }
    if configuration.adminTokensPath == nil {
      logger.info(
        "admin API tokens: \(tokens.path) (the local operator's token is in \(configuration.dataDirectory)/\(AdminTokens.generatedTokenFile))"
      )
    }
    // The audit stream is custody evidence of every incident to come, and small: never pruned.
    journal.setRetentionPin { tenant, from, to in
      AuditStream.isReserved(tenant: tenant) || incidents.pins(tenant: tenant, fromUnixNano: from, toUnixNano: to)
    }
    let archiveLogger = logger
    let samplerBounds = Self.samplerMemory(
      samplingPolicy.limits, maxInFlightBytes: configuration.maxInFlightBytes, logger: logger)
    samplingPolicy.limits = samplerBounds.limits
    let sampler = TailSampler(
      policy: samplingPolicy, isKeptInFull: { tenant in incidents.isKeptInFull(tenant: tenant) },
      output: { kept in
        // The archive is a copy: a failed copy is logged and counted, and the record stays in
        // the flight recorder; the client was acknowledged long ago.
        archive.append(kept) { result in
          if case .failure(let error) = result {
            archiveLogger.warning("archive copy dropped: \(error.message)")
          }
        }
        // Kept copies wait for the archive's writer past this, holding the sampler (whose own
        // queue then skips, counted) rather than memory without bound; while queued they count
        // against the in-flight bound like the sampler's own bytes.
        archive.waitForWrites(downTo: samplerBounds.archiveQueueBytes)
      })
    self.sampler = sampler
    let pipeline = CapturePipeline(
      journal: journal, maxInFlightBytes: configuration.maxInFlightBytes,
      maxRequestBytes: configuration.maxRequestBytes, tenants: configuration.tenancy, redactor: redactor,
      maxTenants: configuration.maxTenants, observer: { admitted in sampler.observe(admitted) },
      heldAfterAcknowledgement: { sampler.heldBytes + archive.unwrittenByteCount }, metrics: metrics)
    self.pipeline = pipeline
    let connections = ConnectionBudget(limit: Self.connectionLimit(configuration.maxConnections, logger: logger))
    let group = MultiThreadedEventLoopGroup(numberOfThreads: System.coreCount)
    self.group = group
    // The admin API has a loop of its own, so /healthz and /readyz answer however busy the OTLP
    // loops are.
    let adminGroup = MultiThreadedEventLoopGroup(numberOfThreads: 1)
    self.adminGroup = adminGroup
    self.http = OTLPHTTPReceiver(
      ingest: pipeline,
      options: OTLPHTTPReceiver.Options(
        host: configuration.otlpHTTP.host, port: configuration.otlpHTTP.port,
        maxConnections: configuration.maxConnections, idleTimeout: .seconds(Int64(configuration.idleTimeoutSeconds)),
        requestReadTimeout: .seconds(Int64(configuration.requestTimeoutSeconds)),
        tenantHeader: configuration.tenancy.header, retryAfterSeconds: pipeline.retryAfterSeconds,
        connections: connections, tls: tls?.http1, metrics: metrics),
      group: group, logger: logger)
    self.grpc = OTLPGRPCReceiver(
      ingest: pipeline,
      options: OTLPGRPCReceiver.Options(
        host: configuration.otlpGRPC.host, port: configuration.otlpGRPC.port,
        tenantMetadataKey: configuration.tenancy.header,
        maxConcurrentStreams: configuration.grpcMaxConcurrentStreams,
        idleTimeoutSeconds: configuration.idleTimeoutSeconds,
        maxConnectionAgeSeconds: configuration.maxConnectionAgeSeconds, connections: connections,
        retryAfterSeconds: pipeline.retryAfterSeconds, tls: tls?.http2, metrics: metrics),
      group: group, logger: logger)
    let gate = AdminGate(
      tokens: tokens, listenHost: configuration.admin.host, hostNames: configuration.adminHostNames,
      events: AdminEventLog(logger: logger, audit: audit))
    let routes = AdminRoutes(
      gate: gate, journal: journal, pipeline: pipeline, ready: ready, configuration: configuration,
      incidents: incidents, hooks: hooks, archive: archive, sampler: sampler, connections: connections)
    self.admin = AdminHTTPServer(
      options: AdminHTTPServer.Options(
        host: configuration.admin.host, port: configuration.admin.port,
        requestDeadline: .milliseconds(Int64(configuration.adminRequestDeadlineMillis)), tls: tls?.http1),
      group: adminGroup, logger: logger, immediate: { request in routes.immediate(request) },
      handler: { request in await routes.handle(request) })
    if let address = configuration.metrics {
      let sources = CaptureMetricsSources(
        journal: journal, pipeline: pipeline, incidents: incidents, hooks: hooks, sampler: sampler,
        defaultLookbackSeconds: configuration.defaultLookbackSeconds)
      // Scrapes have a loop of their own, like the admin API: metrics keep flowing however busy
      // the OTLP loops are, and a slow scrape never holds back /healthz.
      self.metricsServer = MetricsHTTPServer(
        host: address.host, port: address.port, tls: tls?.http1,
        group: MultiThreadedEventLoopGroup(numberOfThreads: 1), logger: logger,
        render: { metrics.render(sources.snapshot()) })
    } else {
      self.metricsServer = nil
    }
  }

  /// The files a configuration names, read and checked.
  struct LoadedFiles {
    var tls: ServerTLSContexts?
    var redaction: RedactionPolicy?
    var sampling: SamplingPolicy
  }

  /// Reads the TLS, redaction and sampling files the configuration names; each error names the
  /// setting (and the flag or file that set it).
  static func loadFiles(of configuration: CaptureConfiguration) throws(CaptureServiceError) -> LoadedFiles {
    func failure(_ key: String, _ message: String) -> CaptureServiceError {
      CaptureServiceError(.configuration, configuration.problem(key, message).message)
    }
    let tls: ServerTLSContexts?
    do {
      tls = try configuration.tls.map { files throws(TLSSetupError) in try ServerTLSContexts(files: files) }
    } catch {
      throw failure("tls.cert", error.message)
    }
    var redaction: RedactionPolicy?
    if let path = configuration.redactionPolicyPath {
      do {
        redaction = try RedactionPolicy(contentsOfFile: path)
      } catch {
        throw failure("redaction", "redaction policy: \(error)")
      }
    }
    var sampling = SamplingPolicy()
    if let path = configuration.samplingPolicyPath {
      do {
        sampling = try SamplingPolicy.load(path: path)
      } catch {
        throw failure("sampling", "sampling policy: \(error)")
      }
    }
    return LoadedFiles(tls: tls, redaction: redaction, sampling: sampling)
  }

  /// Everything the service checks before it opens the journal, without opening or binding
  /// anything: the configuration's own rules, then the TLS, redaction, sampling and admin
  /// tokens files it names (`capture --validate`).
  public static func check(_ configuration: CaptureConfiguration) throws(CaptureServiceError) {
    do {
      try configuration.validate()
    } catch {
      throw CaptureServiceError(.configuration, error.message)
    }
    _ = try loadFiles(of: configuration)
    if let path = configuration.adminTokensPath {
      do {
        _ = try AdminTokens.load(path: path)
      } catch {
        throw CaptureServiceError(.configuration, configuration.problem("admin.tokens", "\(error)").message)
      }
    }
  }

  /// The tail sampler's share of the in-flight bound: what it holds after acknowledgement counts
  /// against `max-inflight-bytes`, so its queue and its buffered traces are each held to a quarter
  /// of the bound (receiving keeps at least half), and kept copies queued for the archive to an
  /// eighth. A policy asking for more is lowered, with a notice saying so.
  static func samplerMemory(
    _ limits: SamplingPolicy.Limits, maxInFlightBytes: Int, logger: Logger
  ) -> (limits: SamplingPolicy.Limits, archiveQueueBytes: Int) {
    var bounded = limits
    let quarter = max(1 << 10, maxInFlightBytes / 4)
    if bounded.maxQueuedBytes > quarter || bounded.maxBufferedBytes > quarter {
      bounded.maxQueuedBytes = min(bounded.maxQueuedBytes, quarter)
      bounded.maxBufferedBytes = min(bounded.maxBufferedBytes, quarter)
      logger.notice(
        "tail sampling limits lowered to max-queued-bytes \(bounded.maxQueuedBytes) and max-buffered-bytes \(bounded.maxBufferedBytes): each is at most a quarter of max-inflight-bytes \(maxInFlightBytes)"
      )
    }
    return (bounded, max(1 << 20, maxInFlightBytes / 8))
  }

  /// The OTLP connection budget the descriptor limit allows: the limit is raised to its hard
  /// maximum first, and the configured budget is lowered (with a warning) when even that leaves
  /// too few descriptors for the journal and the runtime.
  private static func connectionLimit(_ configured: Int, logger: Logger) -> Int {
    ProcessResources.tuneAllocator()
    let descriptors = ProcessResources.raiseDescriptorLimit()
    let affordable = max(1, descriptors - ProcessResources.reservedDescriptors)
    guard configured > affordable else { return configured }
    logger.warning(
      "max-connections \(configured) lowered to \(affordable): the descriptor limit (RLIMIT_NOFILE) is \(descriptors) and \(ProcessResources.reservedDescriptors) are kept for the journal"
    )
    return affordable
  }

  /// The node id the journal captures under.
  public var nodeID: String { journal.nodeID }

  /// Binds every listener and returns their addresses; the service is ready when this returns.
  public func start() async throws(CaptureServiceError) -> CaptureListeners {
    do {
      let adminAddress = try await admin.start()
      let httpAddress = try await http.start()
      let grpcAddress = try await grpc.start()
      let metricsAddress = try await metricsServer?.start()
      startIncidentClock()
      reloadOnHangup()
      ready.set(true)
      return CaptureListeners(
        otlpHTTP: Self.describe(httpAddress), otlpGRPC: grpcAddress, admin: Self.describe(adminAddress),
        metrics: metricsAddress.map { Self.describe($0) })
    } catch {
      await stop()
      throw CaptureServiceError(.listen, "cannot listen: \(error)")
    }
  }

  /// Ends incidents whose TTL ran out, on time (checked five times a second).
  private func startIncidentClock() {
    let incidents = self.incidents
    incidents.expireDue()
    Task.detached {
      while !Task.isCancelled {
        try? await Task.sleep(nanoseconds: 200_000_000)
        incidents.expireDue()
      }
    }
  }

  /// Stops the listeners (letting running exchanges finish), then the journal: queued records
  /// are written and synced and every open segment is sealed.
  public func stop() async {
    ready.set(false)
    await grpc.stop()
    await http.stop()
    await admin.stop()
    await metricsServer?.stop()
    await journal.stop()
    sampler.stop()
    await archive.stop()
    await hooks.drain(timeout: .seconds(5))
    // The event loop group is left to the process exit: NIO and gRPC still schedule channel
    // clean-up work on it after their stop calls return, and a shut-down group refuses that.
  }

  /// Whether the listeners serve TLS.
  public var servesTLS: Bool { tls != nil }

  /// Rereads the TLS certificate, key and client CA and gives them to every connection accepted
  /// from now on, on all listeners; connections already open keep the certificate they began
  /// with, so none is dropped and no record in flight is lost. A failed reload changes nothing.
  /// Without TLS there is nothing to reload.
  public func reloadTLS() throws(TLSSetupError) {
    guard let tls else { return }
    try tls.reload()
    logger.notice("TLS certificate, key and client CA reloaded; new connections use them")
  }

  /// Settings a reload applies to the running service; every other change needs a restart.
  /// The redaction policy is not among them: the journal binds it into every segment it seals
  /// (and into `DATA/redaction-policy.json`), so a new one takes effect at the next start.
  public static let reloadableSettings: Set<String> = ["sampling", "hooks"]

  /// Applies the reloadable parts of `candidate` (tail-sampling policy, notify hooks) and rereads
  /// the TLS files; all or nothing: a candidate that does not validate, or a file that does not
  /// load, changes nothing. Settings that changed but are not reloadable are listed in the
  /// outcome and left as they are.
  public func reload(_ candidate: CaptureConfiguration) throws(CaptureServiceError) -> ReloadOutcome {
    do {
      try candidate.validate()
    } catch {
      throw CaptureServiceError(.configuration, error.message)
    }
    let current = running.withLock { $0 }
    let before = Dictionary(uniqueKeysWithValues: current.effectiveSettings.map { ($0.key, $0.value) })
    var outcome = ReloadOutcome()
    for setting in candidate.effectiveSettings
    where !Self.reloadableSettings.contains(setting.key) && before[setting.key] != setting.value {
      outcome.needsRestart.append(setting.key)
    }
    var sampling = SamplingPolicy()
    if let path = candidate.samplingPolicyPath {
      do {
        sampling = try SamplingPolicy.load(path: path)
      } catch {
        throw CaptureServiceError(.configuration, candidate.problem("sampling", "sampling policy: \(error)").message)
      }
    }
    sampling.limits = Self.samplerMemory(sampling.limits, maxInFlightBytes: maxInFlightBytes, logger: logger).limits
    if let path = candidate.redactionPolicyPath, candidate.redactionPolicyPath == current.redactionPolicyPath {
      do {
        if try RedactionPolicy(contentsOfFile: path).reference != journal.redactionPolicy {
          outcome.needsRestart.append("redaction (the policy file changed)")
        }
      } catch {
        throw CaptureServiceError(
          .configuration, candidate.problem("redaction", "redaction policy: \(error)").message)
      }
    }
    if tls != nil {
      do {
        try reloadTLS()
      } catch {
        throw CaptureServiceError(.configuration, "TLS not reloaded: \(error)")
      }
      outcome.tlsReloaded = true
    }
    if sampling != sampler.policy {
      sampler.replace(policy: sampling)
      outcome.samplingReloaded = true
    }
    if candidate.hooks != current.hooks {
      hooks.reload(configuration: candidate.hooks)
      outcome.hooksReloaded = true
    }
    running.withLock { running in
      running.samplingPolicyPath = candidate.samplingPolicyPath
      running.hooks = candidate.hooks
    }
    return outcome
  }

  /// From now on SIGHUP rereads the configuration and applies its reloadable parts
  /// (``reload(_:)``) instead of ending the process; a configuration that does not load is
  /// logged and the running one kept. Set before the service reports ready, so an operator's
  /// SIGHUP right after start cannot kill it.
  private func reloadOnHangup() {
    let hangup = DispatchSource.makeSignalSource(signal: SIGHUP, queue: .global())
    signal(SIGHUP, SIG_IGN)
    hangup.setEventHandler { [self] in
      // A reload changes what is kept, who is told and what clients are shown: custody evidence
      // like any admin action, recorded by the node itself (a signal has no principal of its own).
      var record = AdminEvent(action: "config.reload", principal: "system", peer: "", outcome: .done(status: 0))
        .auditRecord
      var parameters: [(key: String, value: JSONValue)] = [("signal", .string("SIGHUP"))]
      do throws(CaptureServiceError) {
        var candidate = running.withLock { $0 }
        do throws(CaptureConfigurationError) {
          if let source { candidate = try source() }
        } catch {
          throw CaptureServiceError(.configuration, error.message)
        }
        let outcome = try reload(candidate)
        if outcome.tlsReloaded { parameters.append(("tls", .string("reloaded"))) }
        if outcome.samplingReloaded { parameters.append(("sampling", .string("reloaded"))) }
        if outcome.hooksReloaded { parameters.append(("hooks", .string("reloaded"))) }
        if !outcome.needsRestart.isEmpty {
          parameters.append(("needsRestart", .array(outcome.needsRestart.map(JSONValue.string))))
          logger.warning(
            "SIGHUP: these settings changed but need a restart; the running values stay: \(outcome.needsRestart.joined(separator: ", "))"
          )
        }
        logger.notice(
          "SIGHUP: configuration reloaded (sampling policy \(outcome.samplingReloaded ? "replaced" : "unchanged"), notify hooks \(outcome.hooksReloaded ? "replaced" : "unchanged"))"
        )
      } catch {
        logger.error("SIGHUP: configuration not reloaded, the running one stays in use: \(error.message)")
        parameters.append(("config", .string("kept")))
        if tls != nil { parameters.append(("tls", .string("kept"))) }
        record.result = .failed
        record.reason = error.message
      }
      parameters.sort { $0.key < $1.key }
      if let canonical = try? CanonicalJSON.serialize(.object(parameters)) {
        record.parameters = String(decoding: canonical, as: UTF8.self)
      }
      let audited = record
      Task { await audit.record(audited) }
    }
    hangup.resume()
    SignalSources.keep([hangup])
  }

  /// Runs until SIGTERM or SIGINT, then stops cleanly.
  public func runUntilSignalled() async {
    await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
      let fired = Mutex(false)
      var sources: [any DispatchSourceSignal] = []
      for signalNumber in [SIGTERM, SIGINT] {
        signal(signalNumber, SIG_IGN)
        let source = DispatchSource.makeSignalSource(signal: signalNumber, queue: .global())
        source.setEventHandler {
          let first = fired.withLock { value in
            defer { value = true }
            return !value
          }
          if first { continuation.resume() }
        }
        source.resume()
        sources.append(source)
      }
      SignalSources.keep(sources)
    }
    logger.info("stopping: finishing open exchanges, syncing and sealing the journal")
    await stop()
  }

  private static func describe(_ address: SocketAddress) -> String {
    guard let ip = address.ipAddress, let port = address.port else { return "\(address)" }
    return ip.contains(":") ? "[\(ip)]:\(port)" : "\(ip):\(port)"
  }
}

/// Keeps signal sources alive for the life of the process.
private enum SignalSources {
  /// A dispatch source is not Sendable; once kept here nothing touches it again.
  private struct Kept: @unchecked Sendable { let source: any DispatchSourceSignal }
  private static let held = Mutex<[Kept]>([])
  static func keep(_ sources: [any DispatchSourceSignal]) {
    held.withLock { $0 += sources.map(Kept.init) }
  }
}

/// Rereads the configuration (the `--config` file and the flags) for a reload; its error says
/// which setting is wrong.
public typealias CaptureConfigurationSource = @Sendable () throws(CaptureConfigurationError) -> CaptureConfiguration

/// What one configuration reload changed.
public struct ReloadOutcome: Sendable, Equatable {
  /// The tail-sampling policy differed and was replaced.
  public var samplingReloaded = false
  /// The notify hooks differed and were replaced.
  public var hooksReloaded = false
  /// The TLS files were reread.
  public var tlsReloaded = false
  /// Settings that changed but take effect only at the next start.
  public var needsRestart: [String] = []

  public init() {}
}

/// Why the capture service could not start.
public typealias CaptureServiceError = CodedError<CaptureServiceErrorCode>

/// The codes of ``CaptureServiceError``: what kind of failure it is.
public enum CaptureServiceErrorCode: Sendable, Hashable {
  /// A bad option or configuration file, or a data directory in use or of another node.
  case configuration
  /// The journal could not be opened or recovered.
  case journal
  /// A listener could not bind.
  case listen
}
