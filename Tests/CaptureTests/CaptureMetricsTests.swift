import Foundation
import Logging
import Manifest
import Testing
import WireTestSupport

@testable import Capture
@testable import Ingest
@testable import Journal
@testable import Receivers
@testable import Settings

@Suite struct CaptureMetricsTests {
  private func exposition(_ metrics: CaptureMetrics, _ snapshot: CaptureMetricsSnapshot = .init()) -> String {
    String(decoding: metrics.render(snapshot), as: UTF8.self)
  }

  /// The sample lines of `name` (with labels), without comments.
  private func samples(_ text: String, _ name: String) -> [String] {
    text.split(separator: "\n").map(String.init).filter { $0.hasPrefix(name + "{") || $0.hasPrefix(name + " ") }
  }

  @Test func everyRefusalSeriesExistsFromTheStartAndCountsUnderItsOwnLabels() {
    let metrics = CaptureMetrics()
    let before = samples(exposition(metrics), CaptureMetrics.Name.refusedRequests)
    #expect(before.count == (Signal.allCases.count + 1) * RefusalReason.allCases.count)
    #expect(before.allSatisfy { $0.hasSuffix(" 0") })
    metrics.refused(signal: .traces, reason: .backpressure)
    metrics.refused(signal: .traces, reason: .backpressure)
    metrics.refused(signal: nil, reason: .notFound)
    let after = exposition(metrics)
    #expect(after.contains(#"stella_receiver_refused_requests_total{signal="traces",reason="backpressure"} 2"#))
    #expect(after.contains(#"stella_receiver_refused_requests_total{signal="unknown",reason="not_found"} 1"#))
    #expect(after.contains(#"stella_receiver_refused_requests_total{signal="logs",reason="backpressure"} 0"#))
    #expect(after.contains("# TYPE stella_receiver_refused_requests_total counter"))
  }

  @Test func acceptedRequestsCountRecordsByTransportAndItemsBySignal() {
    let metrics = CaptureMetrics()
    let acme = metrics.tenantCounters("acme")
    acme.accepted(signal: .traces, transport: .grpc, items: 5)
    acme.accepted(signal: .traces, transport: .http, items: 7)
    acme.accepted(signal: .logs, transport: .http, items: 0)
    let text = exposition(metrics)
    #expect(
      text.contains(#"stella_receiver_accepted_records_total{signal="traces",tenant="acme",transport="grpc"} 1"#))
    #expect(
      text.contains(#"stella_receiver_accepted_records_total{signal="traces",tenant="acme",transport="http"} 1"#))
    #expect(text.contains(#"stella_receiver_accepted_records_total{signal="logs",tenant="acme",transport="http"} 1"#))
    #expect(text.contains(#"stella_receiver_accepted_items_total{signal="traces",tenant="acme"} 12"#))
    #expect(text.contains(#"stella_receiver_accepted_items_total{signal="logs",tenant="acme"} 0"#))
  }

  @Test func clientErrorsAreExactlyTheReasonsTheAlertRulesLeaveOut() throws {
    let clientErrors = Set(RefusalReason.allCases.filter(\.isClientError).map(\.rawValue))
    #expect(
      clientErrors == [
        "malformed", "too_large", "unsupported_media_type", "unauthorized", "not_found", "method_not_allowed",
        "timeout",
      ])
    let rules = try String(
      contentsOfFile: CaptureConfigurationTests.repository + "/deploy/prometheus/stella-alerts.yaml", encoding: .utf8)
    #expect(
      rules.contains(
        #"reason!~"\#(RefusalReason.allCases.filter(\.isClientError).map(\.rawValue).joined(separator: "|"))""#))
  }

  @Test func rejectionsCarryTheReasonTheirCauseImplies() {
    #expect(RejectedRequest(.malformed, "x").reason == .malformed)
    #expect(RejectedRequest(.payloadTooLarge, "x").reason == .tooLarge)
    #expect(RejectedRequest(.overloaded, "x").reason == .backpressure)
    #expect(RejectedRequest(.tenantRejected, "x").reason == .unauthorized)
    #expect(CapturePipeline.rejection(for: JournalError(.full, "x"), retryAfterSeconds: 1).reason == .disk)
    #expect(CapturePipeline.rejection(for: JournalError(.stopped, "x"), retryAfterSeconds: 1).reason == .stopping)
    #expect(CapturePipeline.rejection(for: JournalError(.io, "x"), retryAfterSeconds: 1).reason == .journalError)
    #expect(
      CapturePipeline.rejection(for: JournalError(.invalidRecord, "x"), retryAfterSeconds: 1).reason == .malformed)
  }

  @Test func scrapesMirrorCountsKeptElsewhereWithoutCountingThemTwice() {
    let metrics = CaptureMetrics()
    var snapshot = CaptureMetricsSnapshot()
    snapshot.samplerDecisions = [("kept-error", 3), ("dropped", 0)]
    snapshot.hookDeliveries = [.init(hook: "command notify", result: "failed", count: 2)]
    _ = metrics.render(snapshot)
    snapshot.samplerDecisions = [("kept-error", 5), ("dropped", 0)]
    let text = exposition(metrics, snapshot)
    #expect(text.contains(#"stella_sampler_decisions_total{decision="kept-error"} 5"#))
    #expect(text.contains(#"stella_sampler_decisions_total{decision="dropped"} 0"#))
    #expect(text.contains(#"stella_hook_deliveries_total{hook="command notify",result="failed"} 2"#))
  }

  @Test func gaugesShowTheSnapshot() {
    let metrics = CaptureMetrics()
    var snapshot = CaptureMetricsSnapshot()
    snapshot.journalBytes = 1234
    snapshot.journalMaxBytes = 8 << 30
    snapshot.segments = [(.open, 2), (.sealed, 7)]
    snapshot.ringOldestAgeSeconds = 61.5
    snapshot.defaultLookbackSeconds = 900
    snapshot.activeIncidents = 1
    snapshot.process = ProcessStatistics(
      residentBytes: 4096, virtualBytes: 8192, cpuSeconds: 1.5, startTimeSeconds: 100)
    let text = exposition(metrics, snapshot)
    #expect(text.contains("stella_journal_bytes 1234"))
    #expect(text.contains("stella_journal_max_bytes 8589934592"))
    #expect(text.contains(#"stella_journal_segments{state="open"} 2"#))
    #expect(text.contains(#"stella_journal_segments{state="sealed"} 7"#))
    #expect(text.contains("stella_ring_oldest_age_seconds 61.5"))
    #expect(text.contains("stella_incidents_default_lookback_seconds 900"))
    #expect(text.contains("stella_incidents_active 1"))
    #expect(text.contains("process_resident_memory_bytes 4096"))
    #expect(text.contains("process_cpu_seconds_total 1.5"))
    #expect(text.contains("# TYPE process_cpu_seconds_total counter"))
    // No free-space reading: no series rather than a made-up 0.
    #expect(!text.contains("stella_journal_free_bytes"))
  }

  @Test func fsyncDurationsFillTheHistogramInSeconds() {
    let metrics = CaptureMetrics()
    metrics.observeFsync(nanoseconds: 300_000)
    metrics.observeFsync(nanoseconds: 40_000_000)
    let text = exposition(metrics)
    #expect(text.contains(#"stella_journal_fsync_duration_seconds_bucket{le="0.0005"} 1"#))
    #expect(text.contains(#"stella_journal_fsync_duration_seconds_bucket{le="0.05"} 2"#))
    #expect(text.contains("stella_journal_fsync_duration_seconds_count 2"))
    #expect(text.contains("# TYPE stella_journal_fsync_duration_seconds histogram"))
  }

  @Test func procStatIsReadPastACommandNameWithSpacesAndParentheses() throws {
    // proc(5): pid (comm) state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt
    // utime stime cutime cstime priority nice threads itrealvalue starttime vsize rss ...
    let line =
      "4242 (stella (x) y) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 8 0 12345 1048576 300 18446744073709551615"
    let stats = try #require(
      ProcessStatistics.parse(stat: line, bootTimeSeconds: 1_700_000_000, clockTicksPerSecond: 100, pageSize: 4096))
    #expect(stats.cpuSeconds == 3.0)
    #expect(stats.startTimeSeconds == 1_700_000_123.45)
    #expect(stats.virtualBytes == 1_048_576)
    #expect(stats.residentBytes == 300 * 4096)
    #expect(
      ProcessStatistics.parse(stat: "garbage", bootTimeSeconds: 0, clockTicksPerSecond: 100, pageSize: 4096) == nil)
    #expect(ProcessStatistics.current() != nil)
  }

  @Test func theListenerServesOnlyGetMetrics() {
    let render: @Sendable () -> [UInt8] = { Array("up 1\n".utf8) }
    let ok = MetricsHTTPServer.respond(to: AdminRequest(method: "GET", path: "/metrics", query: "x=1"), render: render)
    #expect(ok.status == 200)
    #expect(ok.contentType.hasPrefix("text/plain; version=0.0.4"))
    #expect(ok.body == Array("up 1\n".utf8))
    #expect(MetricsHTTPServer.respond(to: AdminRequest(method: "POST", path: "/metrics"), render: render).status == 405)
    #expect(MetricsHTTPServer.respond(to: AdminRequest(method: "GET", path: "/status"), render: render).status == 404)
    #expect(MetricsHTTPServer.respond(to: AdminRequest(method: "GET", path: "/metrics/"), render: render).status == 404)
  }

  @Test func theRingsReachIsWhereAgePruningStoppedNotAnOlderPinnedWindowNorTheAuditStream() async throws {
    let ring = JournalRingTests()
    let second = JournalRingTests.second
    let scratch = try ScratchDirectory()
    let clock = JournalRingTests.ManualClock()
    var options = ring.options()
    options.ringMaxAgeSeconds = 60
    let journal = try Journal(
      dataDirectory: scratch.path, nodeID: "node-a", options: options, logger: Logger(label: "metrics-tests"),
      clock: clock.journalClock)
    // An incident window 1000 s ..< 1010 s of acme pins its segment long after the bound.
    journal.setRetentionPin { tenant, from, to in tenant == "acme" && from < 1_010 * second && to >= 1_000 * second }
    let ownStream = "node-own-stream"
    try await ring.sealSegment(journal, tenant: ownStream, receivedSeconds: 500)
    try await ring.sealSegment(journal, tenant: "acme", receivedSeconds: 1_000)
    // Before any pruning: everything since the oldest client record (the node's own stream left out).
    #expect(journal.ringStatus(excluding: { $0 == ownStream }).holdsEverythingSinceUnixNano == 1_000 * second)
    #expect(journal.ringStatus().holdsEverythingSinceUnixNano == 500 * second)
    try await ring.sealSegment(journal, tenant: "globex", receivedSeconds: 1_500)
    try await ring.sealSegment(journal, tenant: "globex", receivedSeconds: 1_950)
    clock.setWall(seconds: 2_000)
    journal.pruneRingNow()
    // globex/1500 (last record 1501 s) was pruned; acme/1000 stays pinned but does not count.
    let status = journal.ringStatus(excluding: { $0 == ownStream })
    #expect(status.holdsEverythingSinceUnixNano == 1_501 * second)
    #expect(status.sealedSegments == 2)
    #expect(status.pinnedBytes > 0 && status.pinnedBytes < status.sealedBytes)
    await journal.stop()
  }

  @Test func theMetricsListenerIsConfiguredLikeTheOthers() throws {
    #expect(CaptureConfiguration().metrics == ListenAddress(host: "127.0.0.1", port: 9464))
    var configuration = CaptureConfiguration()
    try configuration.apply(yaml: "listeners:\n  metrics: 127.0.0.1:0\n", path: "c.yaml")
    #expect(configuration.metrics == ListenAddress(host: "127.0.0.1", port: 0))
    try configuration.apply(yaml: "listeners:\n  metrics: off\n", path: "c.yaml")
    #expect(configuration.metrics == nil)
    try configuration.validate()
    var exposed = CaptureConfiguration()
    exposed.metrics = ListenAddress(host: "0.0.0.0", port: 9464)
    #expect(throws: CaptureConfigurationError.self) { try exposed.validate() }
    exposed.insecureListen = true
    try exposed.validate()
    var airgap = CaptureConfiguration(profile: .airgap)
    airgap.metrics = ListenAddress(host: "0.0.0.0", port: 9464)
    airgap.insecureListen = true
    #expect(throws: CaptureConfigurationError.self) { try airgap.validate() }
  }
}
