import ArgumentParser
import Capture
import Foundation
import Journal
import Logging
import Receivers
import Settings

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
      With --tls-cert/--tls-key every listener serves TLS 1.2+ (with --tls-client-ca, mTLS). A
      non-loopback listen address without TLS is refused unless --insecure-listen is given.
      SIGHUP rereads --config and the files it names: the tail-sampling policy and the notify hooks
      are replaced, and the TLS certificate, key and CA are reread for new connections; other
      changes (listeners, data directory, redaction policy, limits) are logged as needing a restart
      and ignored; a configuration that does not load is logged and the running one kept.
      --validate checks all of it without starting; --print-config shows the effective settings.
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

  @Option(name: .customLong("log-format"), help: "text (default) or json: one JSON object per line on standard error.")
  var logFormat: LogFormat = .text

  @Flag(
    name: .customLong("validate"),
    help:
      "Check the whole configuration (profile, --config, flags, and the TLS, policy and token files they name) without opening or binding anything; exit 0, or 2 naming the offending setting."
  )
  var validateOnly = false

  @Flag(
    name: .customLong("print-config"),
    help: "Print the effective configuration as YAML, each value with where it came from, and exit.")
  var printConfig = false

  func run() async throws {
    if printConfig {
      let configuration = try assembledConfiguration()
      Self.say(configuration.effectiveYAML, terminator: "")
      // Printed first, so the offending value can be seen next to the error.
      do {
        try configuration.validate()
      } catch {
        throw CLIFailure.usage(error.message)
      }
      return
    }
    guard let level = Logger.Level(rawValue: logLevel) else {
      throw CLIFailure.usage("--log-level: unknown level \(logLevel)")
    }
    let configuration = try resolvedConfiguration()
    if validateOnly {
      do {
        try CaptureService.check(configuration)
      } catch {
        throw CLIFailure.usage(error.message)
      }
      let source = config.map { " from \($0)" } ?? ""
      Self.say(
        "configuration OK\(source): profile \(configuration.profile.rawValue), durability \(configuration.journal.durability.rawValue)"
      )
      return
    }
    let format = logFormat
    LoggingSystem.bootstrap { label in
      switch format {
      case .text:
        var handler = StreamLogHandler.standardError(label: label)
        handler.logLevel = level
        return handler
      case .json:
        var handler = JSONLinesLogHandler(label: label)
        handler.logLevel = level
        return handler
      }
    }
    let logger = Logger(label: "stella-forensics.capture")
    let service: CaptureService
    do {
      service = try CaptureService(configuration: configuration, logger: logger, source: reloadSource())
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

  /// Rereads the `--config` file with the same flags over it, for SIGHUP.
  private func reloadSource() -> CaptureConfigurationSource {
    let command = self
    return { () throws(CaptureConfigurationError) -> CaptureConfiguration in
      do {
        return try command.assembledConfiguration()
      } catch let failure as CLIFailure {
        throw CaptureConfigurationError(failure.message)
      } catch {
        throw CaptureConfigurationError("\(error)")
      }
    }
  }

  static func say(_ text: String, terminator: String = "\n") {
    FileHandle.standardOutput.write(Data((text + terminator).utf8))
  }

  /// Profile preset, then the YAML file, then flags; validated.
  func resolvedConfiguration() throws -> CaptureConfiguration {
    let configuration = try assembledConfiguration()
    do {
      try configuration.validate()
    } catch {
      throw CLIFailure.usage(error.message)
    }
    return configuration
  }

  /// Profile preset, then the YAML file, then flags, each setting recording where it came from;
  /// not yet validated as a whole.
  func assembledConfiguration() throws -> CaptureConfiguration {
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
    } catch {
      throw CLIFailure.usage(error.message)
    }
    if profile != nil { configuration.noteFlag("--profile", setting: "profile") }
    try applyFlags(to: &configuration)
    return configuration
  }

  /// Every flag given, over the profile and the file; kept in the order of the option list.
  private func applyFlags(to configuration: inout CaptureConfiguration) throws {
    if let data { configuration.set(\.dataDirectory, to: data, key: "data", flag: "--data") }
    if let nodeID { configuration.set(\.nodeID, to: nodeID, key: "node-id", flag: "--node-id") }
    if let otlpHTTP {
      configuration.set(
        \.otlpHTTP, to: try Self.address(otlpHTTP, "--otlp-http"), key: "listeners.otlp-http", flag: "--otlp-http")
    }
    if let otlpGRPC {
      configuration.set(
        \.otlpGRPC, to: try Self.address(otlpGRPC, "--otlp-grpc"), key: "listeners.otlp-grpc", flag: "--otlp-grpc")
    }
    if let admin {
      configuration.set(\.admin, to: try Self.address(admin, "--admin"), key: "listeners.admin", flag: "--admin")
    }
    if let metrics {
      let address = metrics == ListenAddress.off ? nil : try Self.address(metrics, "--metrics")
      configuration.set(\.metrics, to: address, key: "listeners.metrics", flag: "--metrics")
    }
    if let adminTokens {
      configuration.set(\.adminTokensPath, to: adminTokens, key: "admin.tokens", flag: "--admin-tokens")
    }
    if !adminHostName.isEmpty {
      configuration.set(\.adminHostNames, to: adminHostName, key: "admin.host-names", flag: "--admin-host-name")
    }
    if insecureListen {
      configuration.set(\.insecureListen, to: true, key: "insecure-listen", flag: "--insecure-listen")
    }
    if tlsCert != nil || tlsKey != nil || tlsClientCA != nil {
      let certificate = tlsCert ?? configuration.tls?.certificatePath
      let key = tlsKey ?? configuration.tls?.keyPath
      guard let certificate, let key else {
        throw CLIFailure.usage("--tls-cert and --tls-key go together (and --tls-client-ca needs both)")
      }
      configuration.tls = TLSFiles(
        certificatePath: certificate, keyPath: key, clientCAPath: tlsClientCA ?? configuration.tls?.clientCAPath)
      if tlsCert != nil { configuration.noteFlag("--tls-cert", setting: "tls.cert") }
      if tlsKey != nil { configuration.noteFlag("--tls-key", setting: "tls.key") }
      if tlsClientCA != nil { configuration.noteFlag("--tls-client-ca", setting: "tls.client-ca") }
    }
    if let durability {
      guard let policy = DurabilityPolicy(rawValue: durability) else {
        throw CLIFailure.usage("--durability must be fsync-per-batch, group-commit or interval, not \(durability)")
      }
      configuration.set(\.journal.durability, to: policy, key: "journal.durability", flag: "--durability")
    }
    if let syncInterval {
      configuration.set(
        \.journal.syncIntervalMillis, to: try Self.milliseconds(syncInterval, "--sync-interval"),
        key: "journal.sync-interval", flag: "--sync-interval")
    }
    if let maxInFlightBytes {
      configuration.set(
        \.maxInFlightBytes, to: Int(try Self.size(maxInFlightBytes, "--max-inflight-bytes")),
        key: "limits.max-inflight-bytes", flag: "--max-inflight-bytes")
    }
    if let maxJournalBytes {
      configuration.set(
        \.journal.maxJournalBytes, to: try Self.size(maxJournalBytes, "--max-journal-bytes"),
        key: "journal.max-bytes", flag: "--max-journal-bytes")
    }
    if let minFreeBytes {
      configuration.set(
        \.journal.minFreeBytes, to: try Self.size(minFreeBytes, "--min-free-bytes"),
        key: "journal.min-free-bytes", flag: "--min-free-bytes")
    }
    if let maxRequestBytes {
      configuration.set(
        \.maxRequestBytes, to: Int(try Self.size(maxRequestBytes, "--max-request-bytes")),
        key: "limits.max-request-bytes", flag: "--max-request-bytes")
    }
    if let maxConnections {
      configuration.set(
        \.maxConnections, to: maxConnections, key: "limits.max-connections", flag: "--max-connections")
    }
    if let maxTenants {
      configuration.set(\.maxTenants, to: maxTenants, key: "limits.max-tenants", flag: "--max-tenants")
    }
    if let segmentMaxBytes {
      configuration.set(
        \.journal.maxSegmentBytes, to: Int(try Self.size(segmentMaxBytes, "--segment-max-bytes")),
        key: "journal.segment-max-bytes", flag: "--segment-max-bytes")
    }
    if let segmentMaxAge {
      configuration.set(
        \.journal.maxSegmentAgeSeconds, to: max(1, try Self.milliseconds(segmentMaxAge, "--segment-max-age") / 1000),
        key: "journal.segment-max-age", flag: "--segment-max-age")
    }
    if let redactionPolicy {
      configuration.set(\.redactionPolicyPath, to: redactionPolicy, key: "redaction", flag: "--redaction-policy")
    }
    if let samplingPolicy {
      configuration.set(\.samplingPolicyPath, to: samplingPolicy, key: "sampling", flag: "--sampling-policy")
    }
    if let ringMaxAge {
      configuration.set(
        \.journal.ringMaxAgeSeconds, to: max(1, try Self.milliseconds(ringMaxAge, "--ring-max-age") / 1000),
        key: "ring.max-age", flag: "--ring-max-age")
    }
    if let ringMaxBytes {
      configuration.set(
        \.journal.ringMaxBytes, to: try Self.size(ringMaxBytes, "--ring-max-bytes"), key: "ring.max-bytes",
        flag: "--ring-max-bytes")
    }
    if let defaultLookback {
      configuration.set(
        \.defaultLookbackSeconds, to: try Self.milliseconds(defaultLookback, "--default-lookback") / 1000,
        key: "incidents.default-lookback", flag: "--default-lookback")
    }
    if let requestTimeout {
      configuration.set(
        \.requestTimeoutSeconds, to: max(1, try Self.milliseconds(requestTimeout, "--request-timeout") / 1000),
        key: "limits.request-timeout", flag: "--request-timeout")
    }
  }

  static func address(_ text: String, _ flag: String) throws -> ListenAddress {
    do {
      return try ListenAddress(parsing: text)
    } catch {
      throw CLIFailure.usage("\(flag): \(error.message)")
    }
  }

  static func size(_ text: String, _ flag: String) throws -> Int64 {
    guard let value = ByteSize.parse(text) else {
      throw CLIFailure.usage("\(flag): \"\(text)\" is not a size (like 1048576, 512KiB, 64MiB, 1GiB)")
    }
    return value
  }

  static func milliseconds(_ text: String, _ flag: String) throws -> Int {
    guard let value = DurationText.milliseconds(text) else {
      throw CLIFailure.usage("\(flag): \"\(text)\" is not a duration (\(DurationText.hint))")
    }
    return value
  }
}
