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

  @Option(
    name: .customLong("otlp-http"),
    help: ArgumentHelp("OTLP/HTTP listen address (default 127.0.0.1:4318).", valueName: "host:port"))
  var otlpHTTP: ListenAddress?

  @Option(
    name: .customLong("otlp-grpc"),
    help: ArgumentHelp("OTLP/gRPC listen address (default 127.0.0.1:4317).", valueName: "host:port"))
  var otlpGRPC: ListenAddress?

  @Option(help: ArgumentHelp("Admin endpoint listen address (default 127.0.0.1:4320).", valueName: "host:port"))
  var admin: ListenAddress?

  @Option(
    help: ArgumentHelp(
      "Prometheus GET /metrics listen address, or off (default 127.0.0.1:9464).", valueName: "host:port|off"))
  var metrics: OptionalListenAddress?

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
  var profile: CaptureProfile?

  @Option(name: .customLong("node-id"), help: "Node id (default: the one stored in the data directory, or a new one).")
  var nodeID: String?

  @Option(help: "fsync-per-batch, group-commit (default) or interval.")
  var durability: DurabilityPolicy?

  @Option(name: .customLong("sync-interval"), help: duration("Sync period of the interval policy (default 200ms)."))
  var syncInterval: ConfiguredDuration?

  @Option(name: .customLong("max-inflight-bytes"), help: size("In-flight request memory bound (default 256MiB)."))
  var maxInFlightBytes: ByteCount?

  @Option(name: .customLong("max-journal-bytes"), help: size("Journal disk bound (default 8GiB)."))
  var maxJournalBytes: ByteCount?

  @Option(
    name: .customLong("min-free-bytes"), help: size("Free space left on the journal's file system (default 256MiB)."))
  var minFreeBytes: ByteCount?

  @Option(
    name: .customLong("max-request-bytes"), help: size("Largest request body, compressed or not (default 16MiB)."))
  var maxRequestBytes: ByteCount?

  @Option(
    name: .customLong("max-connections"), help: "Open OTLP connections, HTTP and gRPC together (default 1024).")
  var maxConnections: Int?

  @Option(name: .customLong("max-tenants"), help: "Tenants taken; new ones past this are refused (default 1000).")
  var maxTenants: Int?

  @Option(
    name: .customLong("segment-max-bytes"), help: size("Seal a segment at this uncompressed size (default 32MiB)."))
  var segmentMaxBytes: ByteCount?

  @Option(name: .customLong("segment-max-age"), help: duration("Seal a segment at this age (default 60s)."))
  var segmentMaxAge: ConfiguredDuration?

  @Option(name: .customLong("request-timeout"), help: duration("A request must arrive within this (default 30s)."))
  var requestTimeout: ConfiguredDuration?

  @Option(name: .customLong("redaction-policy"), help: "Redaction policy applied before anything reaches disk.")
  var redactionPolicy: String?

  @Option(name: .customLong("sampling-policy"), help: "Tail-sampling policy for the long-term archive.")
  var samplingPolicy: String?

  @Option(name: .customLong("ring-max-age"), help: duration("Flight recorder age bound (default 1h)."))
  var ringMaxAge: ConfiguredDuration?

  @Option(name: .customLong("ring-max-bytes"), help: size("Flight recorder byte bound (default 4GiB)."))
  var ringMaxBytes: ByteCount?

  @Option(
    name: .customLong("default-lookback"), help: duration("Look-back of incidents that name none (default 15m)."))
  var defaultLookback: ConfiguredDuration?

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
    if let profile { profileChoice = profile }
    var configuration = CaptureConfiguration(profile: profileChoice)
    do {
      if let yamlText { try configuration.apply(yaml: yamlText, path: config ?? "") }
    } catch {
      throw CLIFailure.usage(error.message)
    }
    try applyFlags(to: &configuration)
    return configuration
  }

  /// The value each flag was given, in the order of the option list: the key table
  /// (`CaptureConfiguration.apply(flag:_:)`) says which setting each one sets.
  private var flagValues: [(flag: String, value: SettingValue?)] {
    [
      ("--profile", profile.map { .text($0.rawValue) }),
      ("--data", data.map { .text($0) }),
      ("--node-id", nodeID.map { .text($0) }),
      ("--otlp-http", otlpHTTP.map { .address($0) }),
      ("--otlp-grpc", otlpGRPC.map { .address($0) }),
      ("--admin", admin.map { .address($0) }),
      ("--metrics", metrics.map { .address($0.address) }),
      ("--admin-tokens", adminTokens.map { .text($0) }),
      ("--admin-host-name", adminHostName.isEmpty ? nil : .names(adminHostName)),
      ("--insecure-listen", insecureListen ? .bool(true) : nil),
      ("--tls-cert", tlsCert.map { .text($0) }),
      ("--tls-key", tlsKey.map { .text($0) }),
      ("--tls-client-ca", tlsClientCA.map { .text($0) }),
      ("--durability", durability.map { .text($0.rawValue) }),
      ("--sync-interval", syncInterval.map { .duration($0) }),
      ("--max-inflight-bytes", maxInFlightBytes.map { .size($0) }),
      ("--max-journal-bytes", maxJournalBytes.map { .size($0) }),
      ("--min-free-bytes", minFreeBytes.map { .size($0) }),
      ("--max-request-bytes", maxRequestBytes.map { .size($0) }),
      ("--max-connections", maxConnections.map { .count($0) }),
      ("--max-tenants", maxTenants.map { .count($0) }),
      ("--segment-max-bytes", segmentMaxBytes.map { .size($0) }),
      ("--segment-max-age", segmentMaxAge.map { .duration($0) }),
      ("--redaction-policy", redactionPolicy.map { .text($0) }),
      ("--sampling-policy", samplingPolicy.map { .text($0) }),
      ("--ring-max-age", ringMaxAge.map { .duration($0) }),
      ("--ring-max-bytes", ringMaxBytes.map { .size($0) }),
      ("--default-lookback", defaultLookback.map { .duration($0) }),
      ("--request-timeout", requestTimeout.map { .duration($0) }),
    ]
  }

  /// Every flag given, over the profile and the file.
  private func applyFlags(to configuration: inout CaptureConfiguration) throws {
    for case (let flag, let value?) in flagValues {
      do {
        try configuration.apply(flag: flag, value)
      } catch {
        throw CLIFailure.usage(error.message)
      }
    }
    // A certificate without its key (or a CA without both) is no TLS setup, whichever of the
    // file and the flags named each part.
    if tlsCert != nil || tlsKey != nil || tlsClientCA != nil,
      configuration.tls.map({ $0.certificatePath.isEmpty || $0.keyPath.isEmpty }) ?? true
    {
      throw CLIFailure.usage("--tls-cert and --tls-key go together (and --tls-client-ca needs both)")
    }
  }

  /// Help for a size option, naming the syntax: ArgumentParser shows this line with a value it
  /// refuses, so the error says what a size looks like.
  private static func size(_ text: String) -> ArgumentHelp {
    ArgumentHelp("\(text) A size, \(ByteCount.hint).", valueName: "size")
  }

  /// Help for a duration option, naming the syntax and its bound (as `size(_:)` does).
  private static func duration(_ text: String) -> ArgumentHelp {
    ArgumentHelp("\(text) A duration, \(DurationText.hint).", valueName: "duration")
  }
}
