import ArgumentParser
import Capture
import Foundation
import Logging

struct CaptureCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "capture",
    abstract: "Run the capture service: receive OTLP and journal it durably.",
    discussion: """
      Listens for OTLP/HTTP (POST /v1/traces, /v1/logs, /v1/metrics; protobuf or JSON; gzip) and
      OTLP/gRPC, and writes every accepted request to the append-only journal in the data
      directory before acknowledging it. The admin endpoint serves /healthz, /readyz, /status,
      POST /seal and the incident routes; all but /healthz and /readyz need an admin token
      (Authorization: Bearer TOKEN; see --admin-tokens; without it DATA/admin-token holds the
      local operator's token). Settings come from the profile's preset, then --config, then these flags.
      SIGTERM or SIGINT stops it cleanly (queued records synced, open segments sealed).
      With --tls-cert/--tls-key every listener serves TLS 1.2+ (with --tls-client-ca, mTLS), and
      SIGHUP rereads the certificate, key and CA for new connections. A non-loopback listen address
      without TLS is refused unless --insecure-listen is given.
      Sizes take plain bytes or KiB/MiB/GiB; durations ms/s/m/h.
      """)

  @Option(help: "YAML configuration file (see config/capture.example.yaml).")
  var config: String?

  @Option(help: "Data directory holding the journal (default ./stella-data).")
  var data: String?

  @Option(name: .customLong("otlp-http"), help: "OTLP/HTTP listen address (default 127.0.0.1:4318).")
  var otlpHTTP: String?

  @Option(name: .customLong("otlp-grpc"), help: "OTLP/gRPC listen address (default 127.0.0.1:4317).")
  var otlpGRPC: String?

  @Option(help: "Admin endpoint listen address (default 127.0.0.1:4320).")
  var admin: String?

  @Option(help: "Prometheus GET /metrics listen address, or off (default 127.0.0.1:9464).")
  var metrics: String?

  @Option(
    name: .customLong("admin-tokens"),
    help: "Admin API tokens file, mode 0600 (default: DATA/admin-tokens.yaml, made at first start).")
  var adminTokens: String?

  @Option(
    name: .customLong("admin-host-name"),
    help: "A name the admin API may be reached by besides its listen host and loopback (repeat).")
  var adminHostName: [String] = []

  @Option(
    name: .customLong("tls-cert"), help: "PEM certificate chain (leaf first) served by every listener; needs --tls-key."
  )
  var tlsCert: String?

  @Option(name: .customLong("tls-key"), help: "PEM private key of --tls-cert.")
  var tlsKey: String?

  @Option(
    name: .customLong("tls-client-ca"),
    help: "PEM CA file: every listener then requires a client certificate signed by it (mTLS).")
  var tlsClientCA: String?

  @Flag(
    name: .customLong("insecure-listen"),
    help: "Allow a non-loopback listen address without TLS (plaintext on the network).")
  var insecureListen = false

  @Option(help: "Preset: default, forensic or airgap.")
  var profile: String?

  @Option(name: .customLong("node-id"), help: "Node id (default: the one stored in the data directory, or a new one).")
  var nodeID: String?

  @Option(help: "fsync-per-batch, group-commit (default) or interval.")
  var durability: String?

  @Option(name: .customLong("sync-interval"), help: "Sync period of the interval policy (default 200ms).")
  var syncInterval: String?

  @Option(name: .customLong("max-inflight-bytes"), help: "In-flight request memory bound (default 256MiB).")
  var maxInFlightBytes: String?

  @Option(name: .customLong("max-journal-bytes"), help: "Journal disk bound (default 8GiB).")
  var maxJournalBytes: String?

  @Option(name: .customLong("min-free-bytes"), help: "Free space left on the journal's file system (default 256MiB).")
  var minFreeBytes: String?

  @Option(name: .customLong("max-request-bytes"), help: "Largest request body, compressed or not (default 16MiB).")
  var maxRequestBytes: String?

  @Option(
    name: .customLong("max-connections"), help: "Open OTLP connections, HTTP and gRPC together (default 1024).")
  var maxConnections: Int?

  @Option(name: .customLong("max-tenants"), help: "Tenants taken; new ones past this are refused (default 1000).")
  var maxTenants: Int?

  @Option(name: .customLong("segment-max-bytes"), help: "Seal a segment at this uncompressed size (default 32MiB).")
  var segmentMaxBytes: String?

  @Option(name: .customLong("segment-max-age"), help: "Seal a segment at this age (default 60s).")
  var segmentMaxAge: String?

  @Option(name: .customLong("request-timeout"), help: "A request must arrive within this (default 30s).")
  var requestTimeout: String?

  @Option(name: .customLong("redaction-policy"), help: "Redaction policy applied before anything reaches disk.")
  var redactionPolicy: String?

  @Option(name: .customLong("sampling-policy"), help: "Tail-sampling policy for the long-term archive.")
  var samplingPolicy: String?

  @Option(name: .customLong("ring-max-age"), help: "Flight recorder age bound (default 1h).")
  var ringMaxAge: String?

  @Option(name: .customLong("ring-max-bytes"), help: "Flight recorder byte bound (default 4GiB).")
  var ringMaxBytes: String?

  @Option(name: .customLong("default-lookback"), help: "Look-back of incidents that name none (default 15m).")
  var defaultLookback: String?

  @Option(name: .customLong("log-level"), help: "trace, debug, info (default), notice, warning, error.")
  var logLevel: String = "info"

  func run() async throws {
    let configuration = try resolvedConfiguration()
    guard let level = Logger.Level(rawValue: logLevel) else {
      throw CLIFailure.usage("--log-level: unknown level \(logLevel)")
    }
    LoggingSystem.bootstrap { label in
      var handler = StreamLogHandler.standardError(label: label)
      handler.logLevel = level
      return handler
    }
    let logger = Logger(label: "stella-forensics.capture")
    let service: CaptureService
    do {
      service = try CaptureService(configuration: configuration, logger: logger)
    } catch {
      throw error.kind == .configuration ? CLIFailure.usage(error.message) : CLIFailure.runtime(error.message)
    }
    let listeners: CaptureListeners
    do {
      listeners = try await service.start()
    } catch {
      throw CLIFailure.runtime(error.message)
    }
    // Written unbuffered: scripts wait for these lines on a pipe.
    Self.say(
      """
      listening otlp-http \(listeners.otlpHTTP)
      listening otlp-grpc \(listeners.otlpGRPC)
      listening admin \(listeners.admin)\(listeners.metrics.map { "\nlistening metrics \($0)" } ?? "")
      capturing into \(configuration.dataDirectory) as node \(service.nodeID) (profile \(configuration.profile.rawValue), durability \(configuration.journal.durability.rawValue))
      """)
    await service.runUntilSignalled()
    Self.say("stopped")
  }

  static func say(_ text: String) {
    FileHandle.standardOutput.write(Data((text + "\n").utf8))
  }

  /// Profile preset, then the YAML file, then flags.
  func resolvedConfiguration() throws -> CaptureConfiguration {
    var yamlText: String?
    if let config {
      do {
        yamlText = try String(contentsOfFile: config, encoding: .utf8)
      } catch {
        throw CLIFailure.usage("--config: cannot read \(config): \(error.localizedDescription)")
      }
    }
    var profileChoice = CaptureProfile.default
    do {
      if let yamlText, let named = try CaptureConfiguration.profile(inYAML: yamlText, path: config ?? "") {
        profileChoice = named
      }
    } catch {
      throw CLIFailure.usage(error.message)
    }
    if let profile {
      guard let chosen = CaptureProfile(rawValue: profile) else {
        throw CLIFailure.usage("--profile must be default, forensic or airgap, not \(profile)")
      }
      profileChoice = chosen
    }
    var configuration = CaptureConfiguration(profile: profileChoice)
    do {
      if let yamlText { try configuration.apply(yaml: yamlText, path: config ?? "") }
      if let data { configuration.dataDirectory = data }
      if let nodeID { configuration.nodeID = nodeID }
      if let otlpHTTP { configuration.otlpHTTP = try ListenAddress(parsing: otlpHTTP) }
      if let otlpGRPC { configuration.otlpGRPC = try ListenAddress(parsing: otlpGRPC) }
      if let admin { configuration.admin = try ListenAddress(parsing: admin) }
      if let metrics {
        configuration.metrics = metrics == ListenAddress.off ? nil : try ListenAddress(parsing: metrics)
      }
      if let adminTokens { configuration.adminTokensPath = adminTokens }
      if !adminHostName.isEmpty { configuration.adminHostNames = adminHostName }
    } catch {
      throw CLIFailure.usage(error.message)
    }
    if insecureListen { configuration.insecureListen = true }
    if tlsCert != nil || tlsKey != nil || tlsClientCA != nil {
      let certificate = tlsCert ?? configuration.tls?.certificatePath
      let key = tlsKey ?? configuration.tls?.keyPath
      guard let certificate, let key else {
        throw CLIFailure.usage("--tls-cert and --tls-key go together (and --tls-client-ca needs both)")
      }
      configuration.tls = TLSFiles(
        certificatePath: certificate, keyPath: key, clientCAPath: tlsClientCA ?? configuration.tls?.clientCAPath)
    }
    if let durability {
      guard let policy = DurabilityPolicy(rawValue: durability) else {
        throw CLIFailure.usage("--durability must be fsync-per-batch, group-commit or interval, not \(durability)")
      }
      configuration.journal.durability = policy
    }
    if let syncInterval {
      configuration.journal.syncIntervalMillis = try Self.milliseconds(syncInterval, "--sync-interval")
    }
    if let maxInFlightBytes {
      configuration.maxInFlightBytes = Int(try Self.size(maxInFlightBytes, "--max-inflight-bytes"))
    }
    if let maxJournalBytes {
      configuration.journal.maxJournalBytes = try Self.size(maxJournalBytes, "--max-journal-bytes")
    }
    if let minFreeBytes { configuration.journal.minFreeBytes = try Self.size(minFreeBytes, "--min-free-bytes") }
    if let maxRequestBytes {
      configuration.maxRequestBytes = Int(try Self.size(maxRequestBytes, "--max-request-bytes"))
    }
    if let maxConnections { configuration.maxConnections = maxConnections }
    if let maxTenants { configuration.maxTenants = maxTenants }
    if let segmentMaxBytes {
      configuration.journal.maxSegmentBytes = Int(try Self.size(segmentMaxBytes, "--segment-max-bytes"))
    }
    if let segmentMaxAge {
      configuration.journal.maxSegmentAgeSeconds = max(
        1, try Self.milliseconds(segmentMaxAge, "--segment-max-age") / 1000)
    }
    if let redactionPolicy { configuration.redactionPolicyPath = redactionPolicy }
    if let samplingPolicy { configuration.samplingPolicyPath = samplingPolicy }
    if let ringMaxAge {
      configuration.journal.ringMaxAgeSeconds = max(1, try Self.milliseconds(ringMaxAge, "--ring-max-age") / 1000)
    }
    if let ringMaxBytes { configuration.journal.ringMaxBytes = try Self.size(ringMaxBytes, "--ring-max-bytes") }
    if let defaultLookback {
      configuration.defaultLookbackSeconds = try Self.milliseconds(defaultLookback, "--default-lookback") / 1000
    }
    if let requestTimeout {
      configuration.requestTimeoutSeconds = max(1, try Self.milliseconds(requestTimeout, "--request-timeout") / 1000)
    }
    do {
      try configuration.validate()
    } catch {
      throw CLIFailure.usage(error.message)
    }
    return configuration
  }

  static func size(_ text: String, _ flag: String) throws -> Int64 {
    guard let value = ByteSize.parse(text) else {
      throw CLIFailure.usage("\(flag): \"\(text)\" is not a size (like 1048576, 512KiB, 64MiB, 1GiB)")
    }
    return value
  }

  static func milliseconds(_ text: String, _ flag: String) throws -> Int {
    guard let value = DurationText.milliseconds(text) else {
      throw CLIFailure.usage("\(flag): \"\(text)\" is not a duration (like 200ms, 30s, 5m)")
    }
    return value
  }
}
