import ArgumentParser
import Foundation
import Manifest
import Replay
import Verify

struct ReplayCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "replay",
    abstract: "Send a verified bundle to an OTLP endpoint (sealed mode: allowed destinations only).",
    discussion: """
      The bundle is verified in full (as verify --deep) before anything is sent; a bundle that fails
      is refused with exit 1 and its reason code. The endpoint is an OTLP base URL
      (http://HOST:PORT[/BASE]; /v1/traces, /v1/logs, /v1/metrics are appended for HTTP); without
      --endpoint, OTEL_EXPORTER_OTLP_ENDPOINT is used, and without --protocol,
      OTEL_EXPORTER_OTLP_PROTOCOL (as OpenTelemetry SDKs read them). Its host is
      resolved once and every address must be loopback (127.0.0.0/8, ::1) or match an --allow entry,
      else exit 2 before any connection. Each archived record is sent as one export request, in
      sequence order per stream, with retries and backoff on HTTP 429/502/503/504 and gRPC
      UNAVAILABLE/RESOURCE_EXHAUSTED (Retry-After honoured); a permanent rejection stops with exit 3
      naming the stream and seq. With --checkpoint, progress is made durable after every batch of
      --batch-records acknowledged records; a replay killed at any moment and run again with the same
      checkpoint resends at most that one batch.
      """)

  @Argument(help: "The bundle (.sfb.tar).")
  var bundle: String

  @OptionGroup var trust: TrustOptions

  @Option(
    name: .customLong("endpoint"),
    help: "OTLP base URL, e.g. http://127.0.0.1:4318 (default: $OTEL_EXPORTER_OTLP_ENDPOINT).")
  var endpointOption: String?

  @Option(
    name: .customLong("protocol"),
    help: "http/protobuf (default), http/json or grpc (default: $OTEL_EXPORTER_OTLP_PROTOCOL if set).")
  var protocolOption: String?

  /// --endpoint, else the OpenTelemetry SDK variable; `validate()` makes sure one is there.
  var endpoint: String {
    endpointOption ?? Self.environment("OTEL_EXPORTER_OTLP_ENDPOINT") ?? ""
  }

  /// --protocol, else the OpenTelemetry SDK variable, else http/protobuf.
  var wireProtocol: String {
    protocolOption ?? Self.environment("OTEL_EXPORTER_OTLP_PROTOCOL") ?? "http/protobuf"
  }

  /// An environment variable, when set and not empty.
  private static func environment(_ name: String) -> String? {
    guard let value = ProcessInfo.processInfo.environment[name]?.trimmingCharacters(in: .whitespaces),
      !value.isEmpty
    else { return nil }
    return value
  }

  @Option(help: "max (as fast as accepted), 1x (recorded spacing) or Nx (N times faster).")
  var speed = "max"

  @Option(name: .customLong("time-shift"), help: "none (archived bytes) or now (newest timestamp lands at now).")
  var timeShift = "none"

  @Option(name: .customLong("allow"), help: "Also allow HOST:PORT, [IPV6]:PORT or ADDRESS/BITS:PORT (PORT may be *).")
  var allow: [String] = []

  @Option(help: "Durable progress file; resume by running again with the same file.")
  var checkpoint: String?

  @Option(name: .customLong("tenant"), help: "Replay only this tenant. Repeat for several.")
  var tenants: [String] = []

  @Option(name: .customLong("signal"), help: "Replay only traces, logs or metrics. Repeat for several.")
  var signals: [String] = []

  @Option(name: .customLong("batch-records"), help: "Records per checkpointed batch.")
  var batchRecords = 64

  @Option(name: .customLong("max-attempts"), help: "Attempts per request before giving up (exit 3).")
  var maxAttempts = 10

  @Option(
    help: ArgumentHelp(
      "At --speed max, streams sent at once, each on its own connection (1: one after another).",
      discussion: "Within a stream, one request is in flight at a time, so order is kept exactly."))
  var connections = 4

  @Flag(help: "Print one JSON object instead of text.")
  var json = false

  func validate() throws {
    try trust.validate()
    if endpoint.isEmpty {
      throw ValidationError("give --endpoint URL, or set OTEL_EXPORTER_OTLP_ENDPOINT")
    }
    if OTLPProtocol(rawValue: wireProtocol) == nil {
      let source = protocolOption == nil ? "OTEL_EXPORTER_OTLP_PROTOCOL" : "--protocol"
      throw ValidationError("\(source) must be http/protobuf, http/json or grpc, not \(wireProtocol)")
    }
    if ReplaySpeed(speed) == nil { throw ValidationError("--speed must be max or a factor such as 1x, 10x, 0.5x") }
    if TimeShiftMode(rawValue: timeShift) == nil { throw ValidationError("--time-shift must be none or now") }
    for signal in signals where Signal(rawValue: signal) == nil {
      throw ValidationError("--signal must be traces, logs or metrics")
    }
    if batchRecords < 1 { throw ValidationError("--batch-records must be at least 1") }
    if maxAttempts < 1 { throw ValidationError("--max-attempts must be at least 1") }
    if !(1...64).contains(connections) { throw ValidationError("--connections must be between 1 and 64") }
  }

  func run() async throws {
    // Sealed mode first: a refused destination costs nothing and nothing is contacted.
    let destination: SealedDestination
    do {
      let url = try EndpointURL(endpoint)
      let allowlist = try Allowlist(rules: allow.map { (text: String) throws(ReplayError) in try AllowRule(text) })
      destination = try SealedDestination(endpoint: url, allowlist: allowlist)
    } catch {
      if json { try printRefusal(error) }
      throw CLIFailure.usage("\(error.description); nothing was sent")
    }
    let verified = try DeepVerification.verify(
      bundle: bundle, trustedKeys: trust.trustedKeys, threshold: trust.threshold, json: json, command: "replay")

    var options = ReplayOptions()
    options.wireProtocol = OTLPProtocol(rawValue: wireProtocol) ?? .httpProtobuf
    options.speed = ReplaySpeed(speed) ?? .max
    options.timeShift = TimeShiftMode(rawValue: timeShift) ?? .none
    options.signals = Set(signals.compactMap(Signal.init(rawValue:)))
    options.tenants = Set(tenants)
    options.batchRecords = batchRecords
    options.checkpointPath = checkpoint
    options.retry.maxAttempts = maxAttempts
    options.connections = connections

    let display = json ? nil : ReplayProgressDisplay.ifTerminal()
    let report = await ReplayEngine.run(
      bundle: verified, destination: destination, options: options, nowUnixNano: WallClock.unixNano(),
      progress: display.map { display in { @Sendable progress in display.update(progress) } })
    display?.finish()

    if json {
      try Output.printJSON(summaryJSON(report, verified: verified))
    } else {
      print(summaryText(report, destination: destination))
    }
    if let failure = report.failure {
      if failure.isConfigurationError { throw CLIFailure.usage(failure.description) }
      if failure.isEvidenceError { throw CLIFailure.evidence(failure.description) }
      throw CLIFailure.runtime(failure.description)
    }
  }

  private func printRefusal(_ error: ReplayError) throws {
    try Output.printJSON(
      .object([
        ("result", .string("refused")), ("bundle", .string(bundle)), ("endpoint", .string(endpoint)),
        ("code", .string(error.code.rawValue)), ("detail", .string(error.description)),
      ]))
  }

  func summaryJSON(_ report: ReplayReport, verified: DeeplyVerifiedBundle) -> JSONValue {
    let summary = report.summary
    var fields: [(key: String, value: JSONValue)] = [
      ("result", .string(report.failure == nil ? "completed" : "failed")),
      ("bundle", .string(bundle)), ("manifestSha256", .string(verified.manifestSHA256)),
      ("endpoint", .string(endpoint)), ("protocol", .string(wireProtocol)),
      ("speed", .string(speed)), ("timeShift", .string(timeShift)),
      ("timeShiftNanos", summary.timeShiftNanos.map { .string(String($0)) } ?? .null),
      ("recordsTotal", .number(String(summary.recordsTotal))),
      ("recordsSent", .number(String(summary.recordsSent))),
      ("recordsAlreadyDone", .number(String(summary.recordsAlreadyDone))),
      ("requests", .number(String(summary.requests))), ("retries", .number(String(summary.retries))),
      ("payloadBytes", .number(String(summary.payloadBytes))),
      ("rejectedItems", .number(String(summary.rejectedItems))),
      ("durationMillis", .number(String(summary.durationNanos / 1_000_000))),
      (
        "streams",
        .array(
          summary.streams.map { stream in
            .object([
              ("node", .string(stream.stream.node)), ("signal", .string(stream.stream.signal.rawValue)),
              ("tenant", .string(stream.stream.tenant)), ("records", .number(String(stream.records))),
              ("sent", .number(String(stream.sent))), ("alreadyDone", .number(String(stream.alreadyDone))),
              ("nextSeq", .string(String(stream.nextSeq))),
            ])
          })
      ),
    ]
    if let failure = report.failure {
      fields.append(("code", .string(failure.code.rawValue)))
      fields.append(("detail", .string(failure.description)))
      if let stream = failure.stream {
        fields.append(
          (
            "failedStream",
            .object([
              ("node", .string(stream.node)), ("signal", .string(stream.signal.rawValue)),
              ("tenant", .string(stream.tenant)),
            ])
          ))
      }
      if let seq = failure.seq { fields.append(("failedSeq", .string(String(seq)))) }
    }
    return .object(fields)
  }

  func summaryText(_ report: ReplayReport, destination: SealedDestination) -> String {
    let summary = report.summary
    let seconds = Double(summary.durationNanos) / 1e9
    var lines = [
      "\(report.failure == nil ? "replayed" : "stopped after") \(summary.recordsSent) record(s) to \(destination.endpoint) (\(wireProtocol), \(destination.addresses.map(\.description).joined(separator: ", "))) in \(String(format: "%.2f", seconds)) s: \(summary.requests) request(s), \(summary.retries) retry(ies), \(summary.payloadBytes) payload byte(s)"
    ]
    if summary.recordsAlreadyDone > 0 {
      lines.append("\(summary.recordsAlreadyDone) record(s) were already sent according to the checkpoint")
    }
    if let shift = summary.timeShiftNanos { lines.append("timestamps shifted by \(shift) ns") }
    if summary.rejectedItems > 0 {
      lines.append("the endpoint reported \(summary.rejectedItems) rejected item(s) (partial success)")
    }
    for stream in summary.streams {
      lines.append(
        "  \(stream.stream.signal.rawValue) tenant=\(stream.stream.tenant) node=\(stream.stream.node): sent \(stream.sent), already done \(stream.alreadyDone), of \(stream.records)"
      )
    }
    return lines.joined(separator: "\n")
  }
}

/// Deep verification shared by replay and export: refusal prints the finding and exits 1.
enum DeepVerification {
  /// Decompressed segments kept between verification and replay or export: a quarter of the
  /// physical memory, at most 1 GiB. Blobs beyond it are read from the file a second time.
  static var segmentBudgetBytes: Int {
    let physical = Int(ProcessInfo.processInfo.physicalMemory / 4)
    return min(physical, 1 << 30)
  }

  /// - Parameter consumer: takes each checked segment while verification runs (export); without
  ///   one, the segments are kept for the command that follows (replay).
  static func verify(
    bundle: String, trustedKeys: [String], threshold: Int, json: Bool, command: String,
    consumer: (any CheckedSegmentConsumer)? = nil
  ) throws -> DeeplyVerifiedBundle {
    let keys = try KeyLoading.publicKeys(trustedKeys)
    let policy: TrustPolicy
    do {
      policy = try TrustPolicy(trustedKeys: keys, threshold: threshold)
    } catch {
      throw CLIFailure.usage(error.message)
    }
    // The segments the verifier decompresses are kept (within a memory budget) for the command
    // that follows, so each blob is read and decompressed once.
    var verifier = BundleVerifier(policy: policy, depth: .deep)
    let segments = consumer == nil ? VerifiedSegments(budgetBytes: segmentBudgetBytes) : nil
    if let segments {
      verifier.segmentSink = { blob, segment in segments.keep(blob, segment: segment) }
    }
    verifier.segmentConsumer = consumer
    let result = try verifier.verifyShowingProgress(path: bundle, quiet: json)
    switch result {
    case .verified(let verified):
      do {
        return try DeeplyVerifiedBundle(verified, segments: segments)
      } catch {
        throw CLIFailure.evidence(error.description)
      }
    case .rejected(let finding):
      if json {
        try Output.printJSON(
          .object([
            ("result", .string("rejected")), ("bundle", .string(bundle)), ("code", .string(finding.code.rawValue)),
            ("detail", .string(finding.detail)),
          ]))
      } else {
        print(finding.description)
      }
      throw CLIFailure.evidence(
        "\(bundle) failed verification (\(finding.code.rawValue)); \(command) refused, nothing was sent")
    }
  }
}

/// Unix time in nanoseconds from the system's real-time clock.
enum WallClock {
  static func unixNano() -> UInt64 {
    var spec = timespec()
    clock_gettime(CLOCK_REALTIME, &spec)
    return UInt64(spec.tv_sec) * 1_000_000_000 + UInt64(spec.tv_nsec)
  }
}

/// Records/s and ETA on standard error, only when it is a terminal.
final class ReplayProgressDisplay: @unchecked Sendable {
  // @unchecked: all state is guarded by `lock`.
  private let lock = NSLock()
  private let start = Date()
  private var lastDraw = Date.distantPast
  private var drewAnything = false

  static func ifTerminal() -> ReplayProgressDisplay? {
    isatty(STDERR_FILENO) != 0 ? ReplayProgressDisplay() : nil
  }

  func update(_ progress: ReplayProgress) {
    lock.lock()
    defer { lock.unlock() }
    let now = Date()
    guard now.timeIntervalSince(lastDraw) >= 0.1 || progress.recordsDone >= progress.recordsTotal else { return }
    lastDraw = now
    drewAnything = true
    let elapsed = max(now.timeIntervalSince(start), 0.001)
    let rate = Double(progress.recordsSentThisRun) / elapsed
    let left = Double(progress.recordsTotal &- min(progress.recordsDone, progress.recordsTotal))
    let fraction = progress.recordsTotal == 0 ? 1 : Double(progress.recordsDone) / Double(progress.recordsTotal)
    let line = String(
      format: "\rreplaying %3.0f%%  %llu/%llu records  %.0f records/s  ETA %.0fs\u{1B}[K", fraction * 100,
      progress.recordsDone, progress.recordsTotal, rate, rate > 0 ? left / rate : 0)
    FileHandle.standardError.write(Data(line.utf8))
  }

  func finish() {
    lock.lock()
    defer { lock.unlock() }
    if drewAnything { FileHandle.standardError.write(Data("\r\u{1B}[K".utf8)) }
  }
}
