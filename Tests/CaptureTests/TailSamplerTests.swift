import Foundation
import Manifest
import OTLPProto
import OTLPWire
import Synchronization
import Testing
import WireTestSupport

@testable import Capture
@testable import Journal
@testable import Sampling

/// Builds real OTLP requests with the generated messages.
enum SampleOTLP {
  static let second: UInt64 = 1_000_000_000
  static let millisecond: UInt64 = 1_000_000

  static func traceID(_ prefix: UInt64, _ low: UInt64 = 0x0102_0304_0506_0708) -> Data {
    var bytes: [UInt8] = []
    for shift in stride(from: 56, through: 0, by: -8) {
      bytes.append(UInt8(truncatingIfNeeded: prefix >> UInt64(shift)))
    }
    for shift in stride(from: 56, through: 0, by: -8) { bytes.append(UInt8(truncatingIfNeeded: low >> UInt64(shift))) }
    return Data(bytes)
  }

  static func span(
    trace: Data, id: UInt8, name: String = "op", durationMillis: UInt64 = 10, error: Bool = false,
    start: UInt64 = 1_700_000_000 * second
  ) -> Opentelemetry_Proto_Trace_V1_Span {
    var span = Opentelemetry_Proto_Trace_V1_Span()
    span.traceID = trace
    span.spanID = Data([0, 0, 0, 0, 0, 0, 0, id])
    span.name = name
    span.startTimeUnixNano = start
    span.endTimeUnixNano = start + durationMillis * millisecond
    if error { span.status.code = .error }
    return span
  }

  static func attribute(_ key: String, _ value: String) -> Opentelemetry_Proto_Common_V1_KeyValue {
    var attribute = Opentelemetry_Proto_Common_V1_KeyValue()
    attribute.key = key
    attribute.value.stringValue = value
    return attribute
  }

  static func resourceSpans(
    service: String, scope: String = "lib", spans: [Opentelemetry_Proto_Trace_V1_Span]
  ) -> Opentelemetry_Proto_Trace_V1_ResourceSpans {
    var resource = Opentelemetry_Proto_Trace_V1_ResourceSpans()
    resource.resource.attributes = [attribute("service.name", service), attribute("host.name", "h1")]
    resource.schemaURL = "https://opentelemetry.io/schemas/1.26.0"
    var scopeSpans = Opentelemetry_Proto_Trace_V1_ScopeSpans()
    scopeSpans.scope.name = scope
    scopeSpans.scope.version = "1.0"
    scopeSpans.spans = spans
    resource.scopeSpans = [scopeSpans]
    return resource
  }

  static func traces(
    _ resources: [Opentelemetry_Proto_Trace_V1_ResourceSpans], tenant: String = "acme", received: UInt64 = 1
  ) throws -> AdmittedRequest {
    var export = Opentelemetry_Proto_Collector_Trace_V1_ExportTraceServiceRequest()
    export.resourceSpans = resources
    return AdmittedRequest(
      signal: .traces, tenant: tenant, request: try export.serializedBytes(), receivedUnixNano: received)
  }

  static func traces(
    service: String = "checkout", spans: [Opentelemetry_Proto_Trace_V1_Span], tenant: String = "acme"
  ) throws -> AdmittedRequest {
    try traces([resourceSpans(service: service, spans: spans)], tenant: tenant)
  }

  static func logs(
    _ records: [(severity: Opentelemetry_Proto_Logs_V1_SeverityNumber, text: String, trace: Data)],
    tenant: String = "acme"
  ) throws -> AdmittedRequest {
    var export = Opentelemetry_Proto_Collector_Logs_V1_ExportLogsServiceRequest()
    var resource = Opentelemetry_Proto_Logs_V1_ResourceLogs()
    resource.resource.attributes = [attribute("service.name", "checkout")]
    var scope = Opentelemetry_Proto_Logs_V1_ScopeLogs()
    scope.scope.name = "logger"
    scope.logRecords = records.enumerated().map { index, entry in
      var record = Opentelemetry_Proto_Logs_V1_LogRecord()
      record.severityNumber = entry.severity
      record.severityText = entry.text
      record.body.stringValue = "record \(index)"
      record.traceID = entry.trace
      return record
    }
    resource.scopeLogs = [scope]
    export.resourceLogs = [resource]
    return AdmittedRequest(signal: .logs, tenant: tenant, request: try export.serializedBytes(), receivedUnixNano: 1)
  }

  static func metrics(points: Int, tenant: String = "acme") throws -> AdmittedRequest {
    var export = Opentelemetry_Proto_Collector_Metrics_V1_ExportMetricsServiceRequest()
    var resource = Opentelemetry_Proto_Metrics_V1_ResourceMetrics()
    var scope = Opentelemetry_Proto_Metrics_V1_ScopeMetrics()
    var metric = Opentelemetry_Proto_Metrics_V1_Metric()
    metric.name = "requests"
    var sum = Opentelemetry_Proto_Metrics_V1_Sum()
    sum.dataPoints = (0..<points).map { index in
      var point = Opentelemetry_Proto_Metrics_V1_NumberDataPoint()
      point.asInt = Int64(index)
      point.timeUnixNano = 1_700_000_000 * second
      return point
    }
    metric.sum = sum
    scope.metrics = [metric]
    resource.scopeMetrics = [scope]
    export.resourceMetrics = [resource]
    return AdmittedRequest(signal: .metrics, tenant: tenant, request: try export.serializedBytes(), receivedUnixNano: 1)
  }

  /// Every span in emitted trace requests, with its service and scope names.
  static func spans(in requests: [AdmittedRequest]) throws -> [(
    tenant: String, service: String, scope: String, span: Opentelemetry_Proto_Trace_V1_Span
  )] {
    var result: [(String, String, String, Opentelemetry_Proto_Trace_V1_Span)] = []
    for request in requests where request.signal == .traces {
      let export = try Opentelemetry_Proto_Collector_Trace_V1_ExportTraceServiceRequest(
        serializedBytes: request.request)
      for resource in export.resourceSpans {
        let service =
          resource.resource.attributes.first { $0.key == "service.name" }?.value.stringValue ?? ""
        for scope in resource.scopeSpans {
          for span in scope.spans { result.append((request.tenant, service, scope.scope.name, span)) }
        }
      }
    }
    return result
  }
}

/// Builds policies that isolate one rule.
extension SamplingPolicy {
  static func only(
    errors: Bool = false, latencyMillis: Int? = nil, ratio: Double = 0, services: Set<String> = []
  ) -> SamplingPolicy {
    var policy = SamplingPolicy()
    policy.traces.keepErrors = errors
    policy.traces.latencyThresholdMillis = latencyMillis
    policy.traces.probabilistic = ratio
    policy.traces.alwaysKeepServices = services
    return policy
  }
}

@Suite struct TailSamplerCoreTests {
  typealias O = SampleOTLP
  let never: @Sendable (String) -> Bool = { _ in false }
  let wait = 10 * SampleOTLP.second

  /// Feeds requests at time 0 and decides them after the wait.
  func run(_ policy: SamplingPolicy, _ requests: [AdmittedRequest]) -> (
    outputs: [AdmittedRequest], counters: TailSamplingCounters
  ) {
    var core = TailSamplingCore(policy: policy)
    var outputs: [AdmittedRequest] = []
    for request in requests { outputs += core.observe(request, now: 0, keptInFull: false, isKeptInFull: never) }
    outputs += core.decideDue(now: wait, isKeptInFull: never)
    return (outputs, core.counters)
  }

  @Test func errorTracesAreKeptAndOkTracesDropped() throws {
    let failing = O.traceID(0xFFFF_0000_0000_0000)
    let fine = O.traceID(0xFFFF_0000_0000_0001)
    let (outputs, counters) = run(
      .only(errors: true),
      [
        try O.traces(spans: [O.span(trace: failing, id: 1), O.span(trace: fine, id: 2)]),
        try O.traces(spans: [O.span(trace: failing, id: 3, error: true), O.span(trace: fine, id: 4)]),
      ])
    let kept = try O.spans(in: outputs)
    #expect(kept.map(\.span.spanID.last) == [1, 3])
    #expect(kept.allSatisfy { $0.span.traceID == failing })
    #expect(counters.keptError == 1)
    #expect(counters.dropped == 1)
    #expect(counters.spansKept == 2)
    #expect(counters.spansDropped == 2)
    #expect(counters.bufferedSpans == 0 && counters.bufferedBytes == 0 && counters.bufferedTraces == 0)
  }

  @Test func slowSpansAndSlowTracesAreKept() throws {
    let slowSpan = O.traceID(0xF000_0000_0000_0001)
    let slowTrace = O.traceID(0xF000_0000_0000_0002)
    let fast = O.traceID(0xF000_0000_0000_0003)
    let start: UInt64 = 1_700_000_000 * O.second
    let (outputs, counters) = run(
      .only(latencyMillis: 500),
      [
        try O.traces(spans: [
          O.span(trace: slowSpan, id: 1, durationMillis: 500),
          // Two quick spans 600 ms apart: no span is slow, the trace is.
          O.span(trace: slowTrace, id: 2, durationMillis: 50, start: start),
          O.span(trace: slowTrace, id: 3, durationMillis: 50, start: start + 550 * O.millisecond),
          O.span(trace: fast, id: 4, durationMillis: 499),
        ])
      ])
    #expect(Set(try O.spans(in: outputs).map(\.span.spanID.last)) == [1, 2, 3])
    #expect(counters.keptLatency == 2)
    #expect(counters.dropped == 1)
  }

  @Test func probabilityZeroDropsAndOneKeeps() throws {
    let spans = (0..<20).map { O.span(trace: O.traceID(UInt64($0) << 58), id: UInt8($0)) }
    let dropped = run(.only(ratio: 0), [try O.traces(spans: spans)])
    #expect(dropped.outputs.isEmpty)
    #expect(dropped.counters.dropped == 20)
    let kept = run(.only(ratio: 1), [try O.traces(spans: spans)])
    #expect(try O.spans(in: kept.outputs).count == 20)
    #expect(kept.counters.keptProbabilistic == 20)
  }

  @Test func probabilisticDecisionsFollowTheTraceIDPrefix() {
    // 0.25 × 2^64 = 0x4000…: below keeps, at or above drops, whatever the low 8 bytes.
    #expect(TailSamplingCore.probabilisticKeeps(O.traceID(0x3FFF_FFFF_FFFF_FFFF, 0xFFFF), ratio: 0.25))
    #expect(!TailSamplingCore.probabilisticKeeps(O.traceID(0x4000_0000_0000_0000, 0), ratio: 0.25))
    #expect(TailSamplingCore.probabilisticKeeps(O.traceID(UInt64.max), ratio: 1))
    #expect(!TailSamplingCore.probabilisticKeeps(O.traceID(0), ratio: 0))
    // A short (invalid) id is padded with zeros rather than refused.
    #expect(TailSamplingCore.probabilisticKeeps(Data([0x10]), ratio: 0.25))
  }

  @Test func probabilisticDecisionsAgreeAcrossInstancesAndMatchTheRatio() throws {
    var generator = SystemRandomNumberGenerator()
    let ids = (0..<4000).map { _ in O.traceID(generator.next(), generator.next()) }
    let requests = try stride(from: 0, to: ids.count, by: 100).map { offset in
      try O.traces(spans: ids[offset..<offset + 100].enumerated().map { O.span(trace: $1, id: UInt8($0)) })
    }
    let first = run(.only(ratio: 0.3), requests)
    let second = run(.only(ratio: 0.3), requests.reversed())
    let firstKept = Set(try O.spans(in: first.outputs).map(\.span.traceID))
    let secondKept = Set(try O.spans(in: second.outputs).map(\.span.traceID))
    #expect(firstKept == secondKept)
    // 4000 draws at p = 0.3: the standard deviation is 29, so ±200 is about 7 sigma.
    #expect(abs(firstKept.count - 1200) < 200)
    #expect(first.counters.keptProbabilistic == UInt64(firstKept.count))
  }

  @Test func idsOfOtherLengthsAreTracesOfTheirOwn() throws {
    // OTLP does not enforce 16-byte ids on the wire: an empty or short id still names one trace,
    // distinct from a 16-byte id with the same leading bytes, and is sampled by its padded prefix.
    let short = Data([0x10])
    let padded = Data([0x10] + [UInt8](repeating: 0, count: 15))
    let (outputs, counters) = run(
      .only(ratio: 0.25),
      [
        try O.traces(spans: [
          O.span(trace: Data(), id: 1), O.span(trace: short, id: 2), O.span(trace: padded, id: 3),
          O.span(trace: short, id: 4), O.span(trace: O.traceID(0x8000_0000_0000_0000), id: 5),
        ])
      ])
    #expect(counters.keptProbabilistic == 3 && counters.dropped == 1)
    #expect(try O.spans(in: outputs).map(\.span.spanID.last) == [1, 2, 4, 3])
  }

  @Test func servicesOnTheAllowlistAreKept() throws {
    let audit = O.traceID(0xF000_0000_0000_0001)
    let other = O.traceID(0xF000_0000_0000_0002)
    let (outputs, counters) = run(
      .only(services: ["payments"]),
      [
        try O.traces([
          O.resourceSpans(service: "payments", spans: [O.span(trace: audit, id: 1)]),
          O.resourceSpans(service: "frontend", spans: [O.span(trace: other, id: 2)]),
        ]),
        // The trace's frontend span arrives separately and is kept with it.
        try O.traces(service: "frontend", spans: [O.span(trace: audit, id: 3)]),
      ])
    let kept = try O.spans(in: outputs)
    #expect(kept.map(\.span.spanID.last) == [1, 3])
    #expect(kept.map(\.service) == ["payments", "frontend"])
    #expect(counters.keptService == 1 && counters.dropped == 1)
  }

  @Test func anIncidentTenantIsKeptInFullStraightAway() throws {
    var core = TailSamplingCore(policy: .only())
    let incident: (String) -> Bool = { $0 == "blue" }
    let blue = try O.traces(
      spans: [O.span(trace: O.traceID(0xF1), id: 1), O.span(trace: O.traceID(0xF2), id: 2)], tenant: "blue")
    let red = try O.traces(spans: [O.span(trace: O.traceID(0xF3), id: 3)], tenant: "red")
    let now = core.observe(blue, now: 0, keptInFull: true, isKeptInFull: incident)
    // Copied unchanged, before any wait.
    #expect(now.count == 1 && now.first?.request == blue.request && now.first?.tenant == "blue")
    #expect(core.observe(red, now: 0, keptInFull: false, isKeptInFull: incident).isEmpty)
    #expect(core.decideAll(isKeptInFull: incident).isEmpty)
    #expect(core.counters.keptIncident == 2 && core.counters.dropped == 1)
    #expect(core.counters.spansKept == 2 && core.counters.spansDropped == 1)
    // A late span of an incident trace follows it after the incident too.
    let late = core.observe(
      try O.traces(spans: [O.span(trace: O.traceID(0xF1), id: 4)], tenant: "blue"), now: 1, keptInFull: false,
      isKeptInFull: never)
    #expect(try O.spans(in: late).map(\.span.spanID.last) == [4])
  }

  @Test func aTraceBufferedWhenAnIncidentStartsIsKept() throws {
    var core = TailSamplingCore(policy: .only())
    _ = core.observe(
      try O.traces(spans: [O.span(trace: O.traceID(0xF1), id: 1)], tenant: "blue"), now: 0, keptInFull: false,
      isKeptInFull: never)
    let decided = core.decideDue(now: wait, isKeptInFull: { $0 == "blue" })
    #expect(try O.spans(in: decided).map(\.span.spanID.last) == [1])
    #expect(core.counters.keptIncident == 1)
  }

  @Test func tracesWaitForTheirDecision() throws {
    var core = TailSamplingCore(policy: .only(errors: true))
    let trace = O.traceID(0xF1)
    #expect(
      core.observe(try O.traces(spans: [O.span(trace: trace, id: 1)]), now: 0, keptInFull: false, isKeptInFull: never)
        .isEmpty)
    #expect(core.nextDeadline == wait)
    // An error span arriving before the deadline changes the decision.
    _ = core.observe(
      try O.traces(spans: [O.span(trace: trace, id: 2, error: true)]), now: wait - 1, keptInFull: false,
      isKeptInFull: never)
    #expect(core.decideDue(now: wait - 1, isKeptInFull: never).isEmpty)
    #expect(core.counters.bufferedSpans == 2)
    let decided = core.decideDue(now: wait, isKeptInFull: never)
    #expect(try O.spans(in: decided).map(\.span.spanID.last) == [1, 2])
    #expect(core.nextDeadline == nil)
    // Late spans follow the decision: kept now, without a new wait.
    let late = core.observe(
      try O.traces(spans: [O.span(trace: trace, id: 3)]), now: wait + 1, keptInFull: false, isKeptInFull: never)
    #expect(try O.spans(in: late).map(\.span.spanID.last) == [3])
    #expect(core.counters.keptError == 1 && core.counters.spansKept == 3)
  }

  @Test func theMemoryBoundDecidesTheOldestTracesEarly() throws {
    var policy = SamplingPolicy.only(errors: true)
    policy.limits.maxBufferedSpans = 3
    var core = TailSamplingCore(policy: policy)
    var outputs: [AdmittedRequest] = []
    for index in 0..<5 {
      let request = try O.traces(spans: [
        O.span(trace: O.traceID(UInt64(index) + 1), id: UInt8(index), error: index == 0)
      ])
      outputs += core.observe(request, now: UInt64(index), keptInFull: false, isKeptInFull: never)
      #expect(core.counters.bufferedSpans <= 3)
    }
    // Traces 0 and 1 (the oldest) were decided early, long before their wait: 0 kept, 1 dropped.
    #expect(core.counters.decidedEarly == 2)
    #expect(try O.spans(in: outputs).map(\.span.spanID.last) == [0])
    #expect(core.counters.keptError == 1 && core.counters.dropped == 1)
    #expect(core.counters.bufferedTraces == 3)

    var bytePolicy = SamplingPolicy.only()
    bytePolicy.limits.maxBufferedBytes = 2048
    var byBytes = TailSamplingCore(policy: bytePolicy)
    for index in 0..<100 {
      let request = try O.traces(spans: [
        O.span(trace: O.traceID(UInt64(index) + 1), id: 1, name: String(repeating: "x", count: 100))
      ])
      _ = byBytes.observe(request, now: 0, keptInFull: false, isKeptInFull: never)
      #expect(byBytes.counters.bufferedBytes <= 2048)
    }
    #expect(byBytes.counters.decidedEarly > 80)
  }

  @Test func reEmittedRequestsHoldExactlyTheKeptSpansInTheirContext() throws {
    let kept = O.traceID(0xF000_0000_0000_0001)
    let dropped = O.traceID(0xF000_0000_0000_0002)
    var shop = O.resourceSpans(
      service: "shop", scope: "http", spans: [O.span(trace: kept, id: 1, error: true), O.span(trace: dropped, id: 2)])
    var db = Opentelemetry_Proto_Trace_V1_ScopeSpans()
    db.scope.name = "db"
    db.scope.attributes = [O.attribute("db.system", "postgresql")]
    db.spans = [O.span(trace: kept, id: 3), O.span(trace: dropped, id: 4)]
    shop.scopeSpans.append(db)
    let first = try O.traces([shop, O.resourceSpans(service: "auth", spans: [O.span(trace: kept, id: 5)])])
    // The same resource and scope again in a later request: merged under one ResourceSpans.
    let second = try O.traces([O.resourceSpans(service: "shop", scope: "http", spans: [O.span(trace: kept, id: 6)])])
    let (outputs, _) = run(.only(errors: true), [first, second])
    #expect(outputs.count == 1)
    let request = try #require(outputs.first)
    #expect(request.signal == .traces && request.tenant == "acme")
    let export = try Opentelemetry_Proto_Collector_Trace_V1_ExportTraceServiceRequest(serializedBytes: request.request)
    #expect(export.resourceSpans.count == 2)
    let shopOut = try #require(export.resourceSpans.first)
    #expect(shopOut.resource == shop.resource)
    #expect(shopOut.schemaURL == shop.schemaURL)
    #expect(shopOut.scopeSpans.map(\.scope.name) == ["http", "db"])
    #expect(shopOut.scopeSpans[0].spans.map(\.spanID.last) == [1, 6])
    #expect(shopOut.scopeSpans[1].scope == db.scope)
    #expect(shopOut.scopeSpans[1].spans.map(\.spanID.last) == [3])
    #expect(shopOut.scopeSpans[0].spans[0] == shop.scopeSpans[0].spans[0])
    #expect(export.resourceSpans[1].resource.attributes.first?.value.stringValue == "auth")
    #expect(export.resourceSpans[1].scopeSpans.first?.spans.map(\.spanID.last) == [5])

    // Deterministic: the same input gives the same bytes.
    #expect(run(.only(errors: true), [first, second]).outputs.first?.request == request.request)
  }

  @Test func keptTracesAreSplitByTenantAndSize() throws {
    var core = TailSamplingCore(policy: .only(ratio: 1), maxOutputBytes: 4096)
    for index in 0..<40 {
      let tenant = index % 2 == 0 ? "zeta" : "alpha"
      let request = try O.traces(
        spans: [O.span(trace: O.traceID(UInt64(index) + 1), id: 1, name: String(repeating: "n", count: 300))],
        tenant: tenant)
      _ = core.observe(request, now: 0, keptInFull: false, isKeptInFull: never)
    }
    let outputs = core.decideAll(isKeptInFull: never)
    #expect(outputs.count > 2)
    #expect(outputs.allSatisfy { $0.request.count < 2 * 4096 })
    // Tenants in name order, never mixed.
    let tenants = outputs.map(\.tenant)
    #expect(tenants == tenants.sorted())
    let spans = try O.spans(in: outputs)
    #expect(spans.count == 40)
    #expect(spans.filter { $0.tenant == "alpha" }.count == 20)
  }

  @Test func logsAreKeptBySeverityTraceAndRatio() throws {
    var policy = SamplingPolicy.only(errors: true)
    policy.logs.probabilistic = 0
    var core = TailSamplingCore(policy: policy)
    let keptTrace = O.traceID(0xF1)
    _ = core.observe(
      try O.traces(spans: [O.span(trace: keptTrace, id: 1, error: true)]), now: 0, keptInFull: false,
      isKeptInFull: never)
    _ = core.decideAll(isKeptInFull: never)
    let request = try O.logs([
      (.info, "INFO", Data()),
      (.warn, "WARN", Data()),
      (.unspecified, "error", Data()),
      (.debug, "DEBUG", keptTrace),
      (.unspecified, "", O.traceID(0xF2)),
      (.fatal, "FATAL", Data()),
    ])
    let outputs = core.observe(request, now: 1, keptInFull: false, isKeptInFull: never)
    #expect(outputs.count == 1)
    let export = try Opentelemetry_Proto_Collector_Logs_V1_ExportLogsServiceRequest(
      serializedBytes: try #require(outputs.first).request)
    let bodies = export.resourceLogs.flatMap(\.scopeLogs).flatMap(\.logRecords).map(\.body.stringValue)
    #expect(bodies == ["record 1", "record 2", "record 3", "record 5"])
    #expect(export.resourceLogs.first?.resource.attributes.first?.value.stringValue == "checkout")
    #expect(export.resourceLogs.first?.scopeLogs.first?.scope.name == "logger")
    #expect(core.counters.logRecordsKept == 4 && core.counters.logRecordsDropped == 2)

    // All kept: the request's own bytes; none kept: nothing.
    let allWarn = try O.logs([(.error, "ERROR", Data())])
    #expect(core.observe(allWarn, now: 2, keptInFull: false, isKeptInFull: never).first?.request == allWarn.request)
    #expect(core.observe(try O.logs([(.info, "INFO", Data())]), now: 2, keptInFull: false, isKeptInFull: never).isEmpty)
    // Kept in full: everything.
    let quiet = try O.logs([(.trace, "TRACE", Data())])
    #expect(core.observe(quiet, now: 3, keptInFull: true, isKeptInFull: never).first?.request == quiet.request)
  }

  @Test func logRatioFollowsTheTraceIDLikeTraces() throws {
    var policy = SamplingPolicy.only()
    policy.logs.minSeverity = nil
    policy.logs.probabilistic = 0.5
    var core = TailSamplingCore(policy: policy)
    let below = O.traceID(0x7FFF_FFFF_FFFF_FFFF)
    let above = O.traceID(0x8000_0000_0000_0000)
    let outputs = core.observe(
      try O.logs([(.info, "", below), (.info, "", above)]), now: 0, keptInFull: false, isKeptInFull: never)
    let export = try Opentelemetry_Proto_Collector_Logs_V1_ExportLogsServiceRequest(
      serializedBytes: try #require(outputs.first).request)
    #expect(export.resourceLogs.flatMap(\.scopeLogs).flatMap(\.logRecords).map(\.traceID) == [below])
  }

  @Test func metricsAreKeptOrDroppedWhole() throws {
    let request = try O.metrics(points: 7)
    var all = TailSamplingCore(policy: SamplingPolicy())
    #expect(all.observe(request, now: 0, keptInFull: false, isKeptInFull: never).first?.request == request.request)
    #expect(all.counters.dataPointsKept == 7)
    var policy = SamplingPolicy()
    policy.metrics = .none
    var none = TailSamplingCore(policy: policy)
    #expect(none.observe(request, now: 0, keptInFull: false, isKeptInFull: never).isEmpty)
    #expect(none.counters.dataPointsDropped == 7)
    #expect(none.observe(request, now: 0, keptInFull: true, isKeptInFull: never).count == 1)
  }

  @Test func undecodableRequestsAreCountedNotFatal() {
    var core = TailSamplingCore(policy: SamplingPolicy())
    let garbage = AdmittedRequest(signal: .traces, tenant: "acme", request: [0xFF, 0xFF, 0xFF], receivedUnixNano: 0)
    #expect(core.observe(garbage, now: 0, keptInFull: false, isKeptInFull: never).isEmpty)
    #expect(core.counters.requestsUndecodable == 1)
  }

  @Test func severityTextIsReadWhenTheNumberIsMissing() {
    #expect(TailSamplingCore.severity(number: 0, text: "Warning") == 13)
    #expect(TailSamplingCore.severity(number: 0, text: "ERROR3") == 19)
    #expect(TailSamplingCore.severity(number: 0, text: "chatty") == nil)
    #expect(TailSamplingCore.severity(number: 10, text: "chatty") == 10)
  }

  @Test func severityTextIsReadOffTheWireWhenTheNumberIsMissing() throws {
    var policy = SamplingPolicy.only()
    policy.logs.probabilistic = 0
    var core = TailSamplingCore(policy: policy)
    let outputs = core.observe(
      try O.logs([(.unspecified, "Warning", Data()), (.unspecified, "chatty", Data()), (.info2, "ERROR", Data())]),
      now: 0, keptInFull: false, isKeptInFull: never)
    let export = try Opentelemetry_Proto_Collector_Logs_V1_ExportLogsServiceRequest(
      serializedBytes: try #require(outputs.first).request)
    #expect(export.resourceLogs.flatMap(\.scopeLogs).flatMap(\.logRecords).map(\.body.stringValue) == ["record 0"])
  }

  @Test func eachHeldRequestIsChargedOnceUntilItsLastTraceIsDecided() throws {
    var core = TailSamplingCore(policy: .only())
    let (a, b, c) = (O.traceID(0xA1), O.traceID(0xB1), O.traceID(0xC1))
    let first = try O.traces(spans: [O.span(trace: a, id: 1), O.span(trace: b, id: 2), O.span(trace: a, id: 3)])
    let second = try O.traces(spans: [O.span(trace: b, id: 4), O.span(trace: c, id: 5)])
    let charge = TailSamplingCore.bookkeepingCharge
    _ = core.observe(first, now: 0, keptInFull: false, isKeptInFull: never)
    #expect(core.counters.bufferedBytes == first.request.count + charge(2, 2, 3))
    _ = core.observe(second, now: 5 * O.second, keptInFull: false, isKeptInFull: never)
    #expect(core.counters.bufferedBytes == first.request.count + second.request.count + charge(3, 4, 5))
    // a and b are due: the first request is free; c still holds the whole second one.
    _ = core.decideDue(now: wait, isKeptInFull: never)
    #expect(core.counters.bufferedTraces == 1 && core.counters.bufferedSpans == 1)
    #expect(core.counters.bufferedBytes == second.request.count + charge(1, 1, 1))
    _ = core.decideAll(isKeptInFull: never)
    #expect(core.counters.bufferedBytes == 0)
  }

  @Test func keptSpansReachTheArchiveAsTheClientSentThem() throws {
    // pdata-style requests: fields in descending order, unknown fields at every level, so any
    // decode and re-serialization would change the bytes.
    func ld(_ number: UInt64, _ body: [UInt8]) -> [UInt8] { Wire.field(number, bytes: body) }
    func string(_ number: UInt64, _ text: String) -> [UInt8] { ld(number, Array(text.utf8)) }
    func unknown(_ number: UInt64, _ value: UInt64) -> [UInt8] { Wire.varint(number << 3) + Wire.varint(value) }
    func span(_ trace: Data, _ id: UInt8, error: Bool = false) -> [UInt8] {
      let start: UInt64 = 1_700_000_000 * O.second
      var fields = [unknown(1000, UInt64(id))]
      if error { fields.append(ld(15, unknown(3, 2))) }
      fields += [
        Wire.fixed64(8, start + 10 * O.millisecond), Wire.fixed64(7, start), string(5, "op \(id)"),
        ld(2, [0, 0, 0, 0, 0, 0, 0, id]), ld(1, Array(trace)),
      ]
      return ld(2, fields.flatMap { $0 })
    }
    func resource(_ service: String, scope: String, spans: [[UInt8]]) -> [UInt8] {
      let attribute = ld(1, string(1, "service.name") + ld(2, string(1, service)))
      let scopeSpans = ld(
        2, string(3, "https://schemas/\(scope)") + spans.flatMap { $0 } + ld(1, string(1, scope) + unknown(77, 7)))
      return ld(1, unknown(9, 1) + string(3, "https://schemas/1.26.0") + scopeSpans + ld(1, attribute))
    }
    let (kept, dropped, lucky) = (
      O.traceID(0xF000_0000_0000_0001), O.traceID(0xF000_0000_0000_0002), O.traceID(0x0000_0000_0000_0003)
    )
    var clientSpans: [UInt8: [UInt8]] = [:]
    func remember(_ trace: Data, _ id: UInt8, error: Bool = false) -> [UInt8] {
      let bytes = span(trace, id, error: error)
      clientSpans[id] = bytes
      return bytes
    }
    let first =
      resource(
        "shop", scope: "http",
        spans: [remember(kept, 1), remember(dropped, 2), remember(kept, 3, error: true)])
      + resource("db", scope: "sql", spans: [remember(dropped, 4), remember(kept, 5)])
    let second = resource("shop", scope: "http", spans: [remember(kept, 6), remember(lucky, 7)])
    let requests = [first, second].map {
      AdmittedRequest(signal: .traces, tenant: "acme", request: $0, receivedUnixNano: 1)
    }
    let (outputs, counters) = run(.only(errors: true, ratio: 0.5), requests)
    #expect(counters.keptError == 1 && counters.keptProbabilistic == 1 && counters.dropped == 1)

    // Decoded, the archive holds exactly the kept spans, in their resources and scopes.
    let decoded = try O.spans(in: outputs)
    #expect(decoded.map(\.span.spanID.last) == [1, 3, 6, 7, 5])
    #expect(decoded.map(\.service) == ["shop", "shop", "shop", "shop", "db"])
    #expect(decoded.map(\.scope) == ["http", "http", "http", "http", "sql"])
    // On the wire, every span (its whole `spans` field) is byte for byte one the client sent.
    var archived: [[UInt8]] = []
    for output in outputs {
      try output.request.withUnsafeBytes { raw in
        try OTLPWireReader.forEachSpan(raw) { facts in archived.append(Array(raw[facts.span])) }
      }
    }
    let matched = archived.map { bytes in clientSpans.filter { $0.value == bytes }.map(\.key) }
    #expect(matched == [[1], [3], [6], [7], [5]])
    // Resources and scopes keep their unknown fields and schema URLs.
    let export = try Opentelemetry_Proto_Collector_Trace_V1_ExportTraceServiceRequest(
      serializedBytes: try #require(outputs.first).request)
    #expect(export.resourceSpans.map(\.schemaURL) == ["https://schemas/1.26.0", "https://schemas/1.26.0"])
    #expect(export.resourceSpans.allSatisfy { !$0.unknownFields.data.isEmpty })
    #expect(
      export.resourceSpans.flatMap(\.scopeSpans).map(\.schemaURL) == ["https://schemas/http", "https://schemas/sql"])
    #expect(export.resourceSpans.flatMap(\.scopeSpans).allSatisfy { !$0.scope.unknownFields.data.isEmpty })
  }
}

@Suite struct TailSamplerPolicyTests {
  static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent().path

  @Test func theExampleFileIsTheDefaults() throws {
    let policy = try SamplingPolicy.load(path: Self.repository + "/config/sampling.example.yaml")
    #expect(policy == SamplingPolicy())
  }

  @Test func documentedDefaults() {
    let policy = SamplingPolicy()
    #expect(policy.traces.decisionWaitMillis == 10_000)
    #expect(policy.traces.keepErrors)
    #expect(policy.traces.latencyThresholdMillis == 500)
    #expect(policy.traces.probabilistic == 0.1)
    #expect(policy.logs.minSeverity == .warn)
    #expect(policy.metrics == .all)
    #expect(policy.limits.maxBufferedBytes == 16 << 20)
  }

  @Test func aDocumentOverridesTheDefaults() throws {
    var policy = SamplingPolicy()
    try policy.apply(
      yaml: """
        traces:
          decision-wait: 30s
          errors: false
          latency-threshold: off
          probabilistic: 5%
          always-keep-services: [payments, auth]
        logs:
          min-severity: error
          with-kept-traces: false
          probabilistic: 0
        metrics:
          keep: none
        limits:
          max-buffered-spans: 1_000
          max-buffered-bytes: 8MiB
          max-queued-bytes: 1MiB
          decision-cache: 0
        """, path: "s.yaml")
    #expect(policy.traces.decisionWaitMillis == 30_000)
    #expect(!policy.traces.keepErrors)
    #expect(policy.traces.latencyThresholdMillis == nil)
    #expect(policy.traces.probabilistic == 0.05)
    #expect(policy.traces.alwaysKeepServices == ["payments", "auth"])
    #expect(policy.logs.minSeverity == .error && !policy.logs.keepWithKeptTraces)
    #expect(policy.metrics == .none)
    #expect(policy.limits.maxBufferedSpans == 1000 && policy.limits.maxBufferedBytes == 8 << 20)
    #expect(policy.limits.maxQueuedBytes == 1 << 20 && policy.limits.decisionCacheSize == 0)
  }

  @Test(arguments: [
    ("bogus: 1", "bogus"),
    ("traces:\n  probabilistic: 1.5", "traces.probabilistic"),
    ("traces:\n  decision-wait: soon", "traces.decision-wait"),
    ("traces:\n  decision-wait: 0s", "traces.decision-wait"),
    ("traces:\n  errors: maybe", "traces.errors"),
    ("traces:\n  sample-everything: true", "traces.sample-everything"),
    ("traces:\n  always-keep-services: payments", "traces.always-keep-services"),
    ("logs:\n  min-severity: LOUD", "logs.min-severity"),
    ("metrics:\n  keep: some", "metrics.keep"),
    ("limits:\n  max-buffered-bytes: lots", "limits.max-buffered-bytes"),
    ("limits: [1]", "limits"),
    ("- 1", "the document"),
  ])
  func badDocumentsNameTheFileAndKey(document: String, key: String) {
    var policy = SamplingPolicy()
    #expect {
      try policy.apply(yaml: document, path: "bad.yaml")
    } throws: { error in
      guard let error = error as? SamplingPolicyError else { return false }
      return error.path == "bad.yaml" && error.key == key && error.description.hasPrefix("bad.yaml: \(key): ")
    }
  }
}

@Suite struct TailSamplerThreadTests {
  typealias O = SampleOTLP

  final class Collected: Sendable {
    let requests = Mutex<[AdmittedRequest]>([])
    let now = Mutex<UInt64>(0)
    let incident = Mutex<Set<String>>([])
    var all: [AdmittedRequest] { requests.withLock { $0 } }
  }

  func sampler(_ policy: SamplingPolicy, _ collected: Collected) -> TailSampler {
    TailSampler(
      policy: policy, isKeptInFull: { tenant in collected.incident.withLock { $0.contains(tenant) } },
      output: { request in collected.requests.withLock { $0.append(request) } },
      clock: { collected.now.withLock { $0 } })
  }

  @Test func decidesAfterTheWaitOnTheInjectedClock() throws {
    let collected = Collected()
    let sampler = sampler(.only(errors: true), collected)
    defer { sampler.stop() }
    sampler.observe(try O.traces(spans: [O.span(trace: O.traceID(0xF1), id: 1, error: true)]))
    sampler.observe(try O.traces(spans: [O.span(trace: O.traceID(0xF2), id: 2)]))
    sampler.tick()
    #expect(collected.all.isEmpty)
    #expect(sampler.counters.bufferedSpans == 2)
    collected.now.withLock { $0 = 10 * O.second }
    sampler.tick()
    #expect(try O.spans(in: collected.all).map(\.span.spanID.last) == [1])
    let counters = sampler.counters
    #expect(counters.keptError == 1 && counters.dropped == 1 && counters.bufferedSpans == 0)
    #expect(counters.decisions["kept-error"] == 1 && counters.requestsEmitted == 1)
  }

  @Test func theSamplerThreadDecidesByItself() async throws {
    let collected = Collected()
    var policy = SamplingPolicy.only(ratio: 1)
    policy.traces.decisionWaitMillis = 50
    let sampler = TailSampler(
      policy: policy, isKeptInFull: { _ in false },
      output: { request in collected.requests.withLock { $0.append(request) } })
    defer { sampler.stop() }
    sampler.observe(try O.traces(spans: [O.span(trace: O.traceID(0xF1), id: 1)]))
    sampler.observe(try O.metrics(points: 3))
    for _ in 0..<200 where collected.all.count < 2 { try await Task.sleep(for: .milliseconds(10)) }
    #expect(collected.all.map(\.signal).sorted() == [.traces, .metrics].sorted())
  }

  @Test func incidentTenantsAreKeptAtFullRate() throws {
    let collected = Collected()
    collected.incident.withLock { $0 = ["blue"] }
    let sampler = sampler(.only(), collected)
    defer { sampler.stop() }
    for index in 0..<50 {
      sampler.observe(try O.traces(spans: [O.span(trace: O.traceID(UInt64(index) + 1), id: 1)], tenant: "blue"))
      sampler.observe(try O.traces(spans: [O.span(trace: O.traceID(UInt64(index) + 1), id: 2)], tenant: "red"))
      sampler.observe(try O.logs([(.debug, "DEBUG", Data())], tenant: "blue"))
    }
    sampler.flush()
    let spans = try O.spans(in: collected.all)
    #expect(spans.count == 50 && spans.allSatisfy { $0.tenant == "blue" })
    #expect(collected.all.filter { $0.signal == .logs }.count == 50)
    #expect(sampler.counters.keptIncident == 50 && sampler.counters.dropped == 50)
  }

  @Test func theQueueBoundSkipsInsteadOfGrowing() throws {
    let collected = Collected()
    var policy = SamplingPolicy.only(ratio: 1)
    policy.limits.maxQueuedBytes = 1024
    let gate = NSLock()
    gate.lock()
    // The output blocks until released, so the queue fills behind the first request.
    let sampler = TailSampler(
      policy: policy, isKeptInFull: { _ in false },
      output: { request in
        gate.lock()
        gate.unlock()
        collected.requests.withLock { $0.append(request) }
      })
    let request = try O.metrics(points: 20)
    sampler.observe(request)
    Thread.sleep(forTimeInterval: 0.2)
    for _ in 0..<100 { sampler.observe(request) }
    let counters = sampler.counters
    #expect(counters.requestsSkipped > 0)
    #expect(counters.queuedBytes <= 1024)
    gate.unlock()
    sampler.stop()
    #expect(UInt64(collected.all.count) + sampler.counters.requestsSkipped == 101)
  }

  @Test func afterStopRequestsAreSkipped() throws {
    let collected = Collected()
    let sampler = sampler(SamplingPolicy(), collected)
    sampler.observe(try O.traces(spans: [O.span(trace: O.traceID(0x01), id: 1, error: true)]))
    sampler.stop()
    #expect(try O.spans(in: collected.all).count == 1)
    sampler.observe(try O.metrics(points: 1))
    #expect(sampler.counters.requestsSkipped == 1)
  }
}
