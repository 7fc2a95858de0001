internal import Foundation
internal import Manifest
internal import OTLPProto
internal import SwiftProtobuf

typealias TraceExport = Opentelemetry_Proto_Collector_Trace_V1_ExportTraceServiceRequest
typealias LogsExport = Opentelemetry_Proto_Collector_Logs_V1_ExportLogsServiceRequest
typealias MetricsExport = Opentelemetry_Proto_Collector_Metrics_V1_ExportMetricsServiceRequest
typealias ResourceSpans = Opentelemetry_Proto_Trace_V1_ResourceSpans
typealias ScopeSpans = Opentelemetry_Proto_Trace_V1_ScopeSpans
typealias OTLPSpan = Opentelemetry_Proto_Trace_V1_Span

/// A trace within a tenant: trace ids are only unique per tenant as far as the sampler trusts them.
struct TraceKey: Hashable {
  var tenant: String
  var traceID: Data
}

/// The spans of one trace that arrived in one scope of one request, with the resource and scope
/// they came with (as "shells": the messages with their children removed), so a kept trace is
/// re-emitted with exactly its context.
struct SpanGroup {
  var resourceShell: ResourceSpans
  /// The deterministic serialization of `resourceShell`: groups with equal keys share one
  /// `ResourceSpans` in the output.
  var resourceKey: [UInt8]
  var scopeShell: ScopeSpans
  var scopeKey: [UInt8]
  var spans: [OTLPSpan]
  /// Wire bytes charged to these spans (their request's bytes shared equally among its spans).
  var bytes: Int
}

/// What the rules look at, accumulated as spans arrive so a decision costs nothing.
struct TraceSummary: Equatable {
  var hasError = false
  var longestSpanNanos: UInt64 = 0
  var earliestStart: UInt64 = .max
  var latestEnd: UInt64 = 0
  var hasAlwaysKeptService = false

  mutating func add(_ span: OTLPSpan, alwaysKeptService: Bool) {
    if span.status.code == .error { hasError = true }
    if span.startTimeUnixNano > 0, span.endTimeUnixNano >= span.startTimeUnixNano {
      longestSpanNanos = max(longestSpanNanos, span.endTimeUnixNano - span.startTimeUnixNano)
      earliestStart = min(earliestStart, span.startTimeUnixNano)
      latestEnd = max(latestEnd, span.endTimeUnixNano)
    }
    if alwaysKeptService { hasAlwaysKeptService = true }
  }

  /// First start to last end over the spans with valid times; 0 without any.
  var traceSpanNanos: UInt64 { latestEnd > earliestStart ? latestEnd - earliestStart : 0 }
}

/// A trace waiting for its decision.
struct BufferedTrace {
  var firstArrival: UInt64
  var groups: [SpanGroup] = []
  var summary = TraceSummary()
  var spanCount = 0
  var bytes = 0
  /// The newest `receivedUnixNano` of the requests its spans came in.
  var newestReceived: UInt64 = 0
}

/// A first-in first-out queue with amortized O(1) removal at the front.
struct FIFO<Element> {
  private var storage: [Element] = []
  private var head = 0

  var isEmpty: Bool { head == storage.count }
  var count: Int { storage.count - head }
  var first: Element? { isEmpty ? nil : storage[head] }

  mutating func append(_ element: Element) { storage.append(element) }

  mutating func popFirst() -> Element? {
    guard head < storage.count else { return nil }
    let element = storage[head]
    head += 1
    // Compacting only when the dead prefix is at least half keeps removal amortized O(1).
    if head >= 1024, head * 2 >= storage.count {
      storage.removeFirst(head)
      head = 0
    }
    return element
  }
}

/// Recent trace decisions, bounded: the oldest decision is forgotten first.
struct DecisionCache {
  let capacity: Int
  private var kept: [TraceKey: Bool] = [:]
  private var order = FIFO<TraceKey>()

  init(capacity: Int) { self.capacity = capacity }

  subscript(key: TraceKey) -> Bool? { kept[key] }

  mutating func record(_ key: TraceKey, keeps: Bool) {
    guard capacity > 0 else { return }
    if kept.updateValue(keeps, forKey: key) == nil {
      order.append(key)
      while order.count > capacity, let oldest = order.popFirst() { kept[oldest] = nil }
    }
  }
}

/// The tail-sampling state machine: buffers spans per (tenant, trace id), decides traces when
/// told the time, decides logs and metrics on arrival, and returns the export requests to copy
/// into the archive. No threads, no clock: the caller passes `now` (monotonic nanoseconds) and
/// whether tenants are kept in full, so every outcome is a function of its inputs.
struct TailSamplingCore {
  let policy: SamplingPolicy
  private(set) var counters = TailSamplingCounters()
  private var buffered: [TraceKey: BufferedTrace] = [:]
  /// Buffered traces in order of first arrival, which is also decision-deadline order (the wait
  /// is the same for all), so the front is both the next due and the first to decide early.
  private var arrivals = FIFO<TraceKey>()
  private var decisions: DecisionCache
  /// Spans per emitted request are bounded by this many estimated wire bytes, far below the
  /// journal's 16 MiB record limit.
  let maxOutputBytes: Int

  init(policy: SamplingPolicy, maxOutputBytes: Int = 4 << 20) {
    self.policy = policy
    self.decisions = DecisionCache(capacity: policy.limits.decisionCacheSize)
    self.maxOutputBytes = maxOutputBytes
  }

  private var waitNanos: UInt64 { Self.nanos(millis: policy.traces.decisionWaitMillis) }

  /// Milliseconds as nanoseconds, saturating: a policy built in code is not necessarily validated,
  /// and no setting may trap.
  static func nanos(millis: Int) -> UInt64 {
    let (product, overflow) = UInt64(max(0, millis)).multipliedReportingOverflow(by: 1_000_000)
    return overflow ? .max : product
  }

  /// When the oldest buffered trace is due; `nil` when nothing is buffered.
  var nextDeadline: UInt64? {
    guard let key = arrivals.first, let trace = buffered[key] else { return nil }
    let (deadline, overflow) = trace.firstArrival.addingReportingOverflow(waitNanos)
    return overflow ? .max : deadline
  }

  /// Whether the trace of `key` was decided (and is still remembered): `true` kept, `false` dropped.
  func decision(for key: TraceKey) -> Bool? { decisions[key] }

  // MARK: - Input

  /// Takes one journaled request. Returns what is copied to the archive right away: logs and
  /// metrics the policy keeps, late spans of kept traces, a kept-in-full tenant's requests,
  /// and traces decided early because a bound was reached.
  mutating func observe(
    _ request: AdmittedRequest, now: UInt64, keptInFull: Bool, isKeptInFull: (String) -> Bool
  ) -> [AdmittedRequest] {
    let outputs: [AdmittedRequest]
    switch request.signal {
    case .traces: outputs = observeTraces(request, now: now, keptInFull: keptInFull, isKeptInFull: isKeptInFull)
    case .logs: outputs = observeLogs(request, keptInFull: keptInFull)
    case .metrics: outputs = observeMetrics(request, keptInFull: keptInFull)
    }
    counters.requestsEmitted += UInt64(outputs.count)
    updateBufferCounters()
    return outputs
  }

  /// Decides every trace whose decision wait has elapsed at `now`.
  mutating func decideDue(now: UInt64, isKeptInFull: (String) -> Bool) -> [AdmittedRequest] {
    var kept: [KeptSpans] = []
    while let deadline = nextDeadline, deadline <= now {
      decideOldest(isKeptInFull: isKeptInFull, early: false, into: &kept)
    }
    return finish(kept)
  }

  /// Decides every buffered trace now (on stop).
  mutating func decideAll(isKeptInFull: (String) -> Bool) -> [AdmittedRequest] {
    var kept: [KeptSpans] = []
    while !arrivals.isEmpty {
      decideOldest(isKeptInFull: isKeptInFull, early: false, into: &kept)
    }
    return finish(kept)
  }

  private mutating func finish(_ kept: [KeptSpans]) -> [AdmittedRequest] {
    let outputs = buildTraceRequests(kept)
    counters.requestsEmitted += UInt64(outputs.count)
    updateBufferCounters()
    return outputs
  }

  private mutating func updateBufferCounters() {
    counters.bufferedTraces = buffered.count
  }

  // MARK: - Traces

  /// Spans to copy out, with where they came from.
  struct KeptSpans {
    var tenant: String
    var groups: [SpanGroup]
    var newestReceived: UInt64
  }

  private mutating func observeTraces(
    _ request: AdmittedRequest, now: UInt64, keptInFull: Bool, isKeptInFull: (String) -> Bool
  ) -> [AdmittedRequest] {
    guard let export = try? TraceExport(serializedBytes: request.request) else {
      counters.requestsUndecodable += 1
      return []
    }
    if keptInFull {
      // Kept in full: the request is copied unchanged, straight away (no buffering, no
      // re-serialization); its traces are remembered as kept so late spans follow them.
      var seen = Set<Data>()
      for resourceSpans in export.resourceSpans {
        for scopeSpans in resourceSpans.scopeSpans {
          counters.spansKept += UInt64(scopeSpans.spans.count)
          for span in scopeSpans.spans where seen.insert(span.traceID).inserted {
            let key = TraceKey(tenant: request.tenant, traceID: span.traceID)
            if buffered[key] == nil, decisions[key] != true {
              decisions.record(key, keeps: true)
              counters.keptIncident += 1
            }
          }
        }
      }
      return [request]
    }

    let spanTotal = export.resourceSpans.reduce(0) { total, resource in
      resource.scopeSpans.reduce(total) { $0 + $1.spans.count }
    }
    guard spanTotal > 0 else { return [] }
    let bytesPerSpan = max(1, request.request.count / spanTotal)
    var late: [SpanGroup] = []

    for resourceSpans in export.resourceSpans {
      var resourceShell = resourceSpans
      resourceShell.scopeSpans = []
      let resourceKey = Self.key(resourceShell)
      let alwaysKept =
        Self.serviceName(of: resourceSpans).map { policy.traces.alwaysKeepServices.contains($0) } ?? false
      for scopeSpans in resourceSpans.scopeSpans {
        var scopeShell = scopeSpans
        scopeShell.spans = []
        let scopeKey = Self.key(scopeShell)
        // Spans of one scope, split by trace, in arrival order.
        var byTrace: [Data: [OTLPSpan]] = [:]
        var traceOrder: [Data] = []
        for span in scopeSpans.spans {
          if byTrace[span.traceID] == nil { traceOrder.append(span.traceID) }
          byTrace[span.traceID, default: []].append(span)
        }
        for traceID in traceOrder {
          let spans = byTrace[traceID] ?? []
          let group = SpanGroup(
            resourceShell: resourceShell, resourceKey: resourceKey, scopeShell: scopeShell, scopeKey: scopeKey,
            spans: spans, bytes: bytesPerSpan * spans.count)
          let key = TraceKey(tenant: request.tenant, traceID: traceID)
          if buffered[key] == nil, let keeps = decisions[key] {
            // A late span of a decided trace follows its trace's decision.
            if keeps {
              late.append(group)
              counters.spansKept += UInt64(spans.count)
            } else {
              counters.spansDropped += UInt64(spans.count)
            }
            continue
          }
          var trace: BufferedTrace
          if let existing = buffered.removeValue(forKey: key) {
            trace = existing
          } else {
            trace = BufferedTrace(firstArrival: now)
            arrivals.append(key)
          }
          trace.groups.append(group)
          for span in spans { trace.summary.add(span, alwaysKeptService: alwaysKept) }
          trace.spanCount += spans.count
          trace.bytes += group.bytes
          trace.newestReceived = max(trace.newestReceived, request.receivedUnixNano)
          buffered[key] = trace
          counters.bufferedSpans += spans.count
          counters.bufferedBytes += group.bytes
        }
      }
    }

    var kept: [KeptSpans] = []
    if !late.isEmpty {
      kept.append(KeptSpans(tenant: request.tenant, groups: late, newestReceived: request.receivedUnixNano))
    }
    // Never unbounded: past a bound the oldest traces are decided now, as they are.
    while counters.bufferedSpans > policy.limits.maxBufferedSpans
      || counters.bufferedBytes > policy.limits.maxBufferedBytes,
      !arrivals.isEmpty
    {
      decideOldest(isKeptInFull: isKeptInFull, early: true, into: &kept)
    }
    return buildTraceRequests(kept)
  }

  /// Decides the trace at the front of the arrival queue.
  private mutating func decideOldest(isKeptInFull: (String) -> Bool, early: Bool, into kept: inout [KeptSpans]) {
    guard let key = arrivals.popFirst(), let trace = buffered.removeValue(forKey: key) else { return }
    counters.bufferedSpans -= trace.spanCount
    counters.bufferedBytes -= trace.bytes
    let decision = Self.decide(
      trace.summary, traceID: key.traceID, policy: policy.traces, keptInFull: isKeptInFull(key.tenant))
    counters[decision] += 1
    if early { counters.decidedEarly += 1 }
    decisions.record(key, keeps: decision.keeps)
    if decision.keeps {
      counters.spansKept += UInt64(trace.spanCount)
      kept.append(KeptSpans(tenant: key.tenant, groups: trace.groups, newestReceived: trace.newestReceived))
    } else {
      counters.spansDropped += UInt64(trace.spanCount)
    }
  }

  /// The rules, in the documented order; the first that matches names the decision.
  static func decide(
    _ summary: TraceSummary, traceID: Data, policy: SamplingPolicy.Traces, keptInFull: Bool
  ) -> TraceDecision {
    if keptInFull { return .keptIncident }
    if policy.keepErrors, summary.hasError { return .keptError }
    if let threshold = policy.latencyThresholdMillis {
      let thresholdNanos = nanos(millis: threshold)
      if summary.longestSpanNanos >= thresholdNanos || summary.traceSpanNanos >= thresholdNanos {
        return .keptLatency
      }
    }
    if summary.hasAlwaysKeptService { return .keptService }
    if probabilisticKeeps(traceID, ratio: policy.probabilistic) { return .keptProbabilistic }
    return .dropped
  }

  /// Keeps when the id's first 8 bytes, as a big-endian integer, are below `ratio` × 2^64, so every
  /// node decides a trace the same way. Shorter ids are padded with zero bytes on the right.
  static func probabilisticKeeps(_ traceID: Data, ratio: Double) -> Bool {
    var prefix: UInt64 = 0
    var index = traceID.startIndex
    for _ in 0..<8 {
      prefix <<= 8
      if index < traceID.endIndex {
        prefix |= UInt64(traceID[index])
        index = traceID.index(after: index)
      }
    }
    return probabilisticKeeps(prefix, ratio: ratio)
  }

  static func probabilisticKeeps(_ value: UInt64, ratio: Double) -> Bool {
    guard ratio > 0 else { return false }
    guard ratio < 1 else { return true }
    // ratio × 2^64 is below 2^64 for ratio < 1, but rounding can reach it exactly.
    let threshold = ratio * 18_446_744_073_709_551_616.0
    guard let bound = UInt64(exactly: threshold.rounded(.down)) else { return true }
    return value < bound
  }

  static func serviceName(of resourceSpans: ResourceSpans) -> String? {
    resourceSpans.resource.attributes.first { $0.key == "service.name" }.flatMap {
      if case .stringValue(let name)? = $0.value.value { return name }
      return nil
    }
  }

  static func key(_ message: some SwiftProtobuf.Message) -> [UInt8] {
    // A message that cannot be serialized gets an empty key: it then shares output with other
    // such shells, which changes grouping only, never content (the shell itself is emitted).
    (try? message.serializedBytes(options: OTLPSerialization.deterministic)) ?? []
  }

  /// Re-emits kept spans as export requests: one tenant per request (tenants in name order),
  /// spans under their original resource and scope (equal ones merged, in first-seen order),
  /// spans in arrival order, split so no request carries more than `maxOutputBytes` of spans.
  func buildTraceRequests(_ kept: [KeptSpans]) -> [AdmittedRequest] {
    guard !kept.isEmpty else { return [] }
    var tenants: [String] = []
    var byTenant: [String: [KeptSpans]] = [:]
    for entry in kept {
      if byTenant[entry.tenant] == nil { tenants.append(entry.tenant) }
      byTenant[entry.tenant, default: []].append(entry)
    }
    var outputs: [AdmittedRequest] = []
    for tenant in tenants.sorted() {
      var builder = TraceRequestBuilder()
      for entry in byTenant[tenant] ?? [] {
        for group in entry.groups {
          if builder.bytes > 0, builder.bytes + group.bytes > maxOutputBytes {
            if let request = builder.request(tenant: tenant) { outputs.append(request) }
            builder = TraceRequestBuilder()
          }
          builder.add(group, received: entry.newestReceived)
        }
      }
      if let request = builder.request(tenant: tenant) { outputs.append(request) }
    }
    return outputs
  }

  // MARK: - Logs

  private mutating func observeLogs(_ request: AdmittedRequest, keptInFull: Bool) -> [AdmittedRequest] {
    guard var export = try? LogsExport(serializedBytes: request.request) else {
      counters.requestsUndecodable += 1
      return []
    }
    var total = 0
    var keptCount = 0
    for resourceIndex in export.resourceLogs.indices {
      for scopeIndex in export.resourceLogs[resourceIndex].scopeLogs.indices {
        let records = export.resourceLogs[resourceIndex].scopeLogs[scopeIndex].logRecords
        total += records.count
        let keptRecords = keptInFull ? records : records.filter { keepsLog($0, tenant: request.tenant) }
        keptCount += keptRecords.count
        export.resourceLogs[resourceIndex].scopeLogs[scopeIndex].logRecords = keptRecords
      }
    }
    counters.logRecordsKept += UInt64(keptCount)
    counters.logRecordsDropped += UInt64(total - keptCount)
    guard keptCount > 0 else { return [] }
    // Everything kept: the request's own bytes, unchanged.
    if keptCount == total { return [request] }
    for resourceIndex in export.resourceLogs.indices {
      export.resourceLogs[resourceIndex].scopeLogs.removeAll { $0.logRecords.isEmpty }
    }
    export.resourceLogs.removeAll { $0.scopeLogs.isEmpty }
    guard let bytes = try? export.serializedBytes(options: OTLPSerialization.deterministic) as [UInt8] else {
      counters.requestsUndecodable += 1
      return []
    }
    return [
      AdmittedRequest(signal: .logs, tenant: request.tenant, request: bytes, receivedUnixNano: request.receivedUnixNano)
    ]
  }

  /// The logs policy for one record: severity, then the record's trace decision, then the ratio.
  func keepsLog(_ record: Opentelemetry_Proto_Logs_V1_LogRecord, tenant: String) -> Bool {
    if let minimum = policy.logs.minSeverity, let severity = Self.severity(of: record), severity >= minimum.rawValue {
      return true
    }
    if policy.logs.keepWithKeptTraces, !record.traceID.isEmpty,
      decisions[TraceKey(tenant: tenant, traceID: record.traceID)] == true
    {
      return true
    }
    if record.traceID.isEmpty {
      let bytes = (try? record.serializedBytes(options: OTLPSerialization.deterministic) as [UInt8]) ?? []
      return Self.probabilisticKeeps(Self.fnv1a(bytes), ratio: policy.logs.probabilistic)
    }
    return Self.probabilisticKeeps(record.traceID, ratio: policy.logs.probabilistic)
  }

  /// The record's severity number, or the one its severity text names when the number is
  /// unspecified (`WARN`, `warning`, `Error2`, ...); `nil` when neither says.
  static func severity(of record: Opentelemetry_Proto_Logs_V1_LogRecord) -> Int? {
    let number = record.severityNumber.rawValue
    if number > 0 { return number }
    let text = record.severityText.trimmingCharacters(in: .whitespaces)
    let name = String(text.prefix { !$0.isNumber })
    guard let level = LogSeverityLevel(name: name) else { return nil }
    let offset = Int(text.dropFirst(name.count)).map { min(max($0, 1), 4) - 1 } ?? 0
    return level.rawValue + offset
  }

  /// FNV-1a, 64 bit: a stable hash, the same on every node and every run.
  static func fnv1a(_ bytes: [UInt8]) -> UInt64 {
    var hash: UInt64 = 0xcbf2_9ce4_8422_2325
    for byte in bytes {
      hash ^= UInt64(byte)
      hash = hash &* 0x0000_0100_0000_01b3
    }
    return hash
  }

  // MARK: - Metrics

  private mutating func observeMetrics(_ request: AdmittedRequest, keptInFull: Bool) -> [AdmittedRequest] {
    guard let export = try? MetricsExport(serializedBytes: request.request) else {
      counters.requestsUndecodable += 1
      return []
    }
    var points = 0
    for resource in export.resourceMetrics {
      for scope in resource.scopeMetrics {
        for metric in scope.metrics { points += Self.pointCount(metric) }
      }
    }
    if keptInFull || policy.metrics == .all {
      counters.dataPointsKept += UInt64(points)
      return [request]
    }
    counters.dataPointsDropped += UInt64(points)
    return []
  }

  static func pointCount(_ metric: Opentelemetry_Proto_Metrics_V1_Metric) -> Int {
    switch metric.data {
    case .gauge(let gauge): return gauge.dataPoints.count
    case .sum(let sum): return sum.dataPoints.count
    case .histogram(let histogram): return histogram.dataPoints.count
    case .exponentialHistogram(let histogram): return histogram.dataPoints.count
    case .summary(let summary): return summary.dataPoints.count
    case nil: return 0
    }
  }
}

/// Collects span groups of one tenant into one `ExportTraceServiceRequest`.
private struct TraceRequestBuilder {
  private var resources: [ResourceSpans] = []
  private var resourceIndex: [[UInt8]: Int] = [:]
  /// Per resource: scope key → index in its `scopeSpans`.
  private var scopeIndex: [[[UInt8]: Int]] = []
  private(set) var bytes = 0
  private var newestReceived: UInt64 = 0

  mutating func add(_ group: SpanGroup, received: UInt64) {
    let r: Int
    if let existing = resourceIndex[group.resourceKey] {
      r = existing
    } else {
      r = resources.count
      resources.append(group.resourceShell)
      resourceIndex[group.resourceKey] = r
      scopeIndex.append([:])
    }
    if let s = scopeIndex[r][group.scopeKey] {
      resources[r].scopeSpans[s].spans.append(contentsOf: group.spans)
    } else {
      var scope = group.scopeShell
      scope.spans = group.spans
      scopeIndex[r][group.scopeKey] = resources[r].scopeSpans.count
      resources[r].scopeSpans.append(scope)
    }
    bytes += group.bytes
    newestReceived = max(newestReceived, received)
  }

  /// The request, or `nil` when empty. Serialization of decoded OTLP cannot fail in practice;
  /// if it did, the spans would be missing from the archive only (the ring holds them).
  func request(tenant: String) -> AdmittedRequest? {
    guard !resources.isEmpty else { return nil }
    var export = TraceExport()
    export.resourceSpans = resources
    guard let bytes = try? export.serializedBytes(options: OTLPSerialization.deterministic) as [UInt8] else {
      return nil
    }
    return AdmittedRequest(signal: .traces, tenant: tenant, request: bytes, receivedUnixNano: newestReceived)
  }
}
