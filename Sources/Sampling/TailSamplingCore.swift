internal import Foundation
import Journal
internal import Manifest
internal import OTLPWire

/// A trace within a tenant: trace ids are only unique per tenant as far as the sampler trusts them.
struct TraceKey: Hashable {
  var tenant: String
  var traceID: TraceID
}

/// What the rules look at, accumulated as spans arrive so a decision costs nothing.
struct TraceSummary: Equatable {
  var hasError = false
  var longestSpanNanos: UInt64 = 0
  var earliestStart: UInt64 = .max
  var latestEnd: UInt64 = 0
  var hasAlwaysKeptService = false

  mutating func add(start: UInt64, end: UInt64, isError: Bool, alwaysKeptService: Bool) {
    if isError { hasError = true }
    if start > 0, end >= start {
      longestSpanNanos = max(longestSpanNanos, end - start)
      earliestStart = min(earliestStart, start)
      latestEnd = max(latestEnd, end)
    }
    if alwaysKeptService { hasAlwaysKeptService = true }
  }

  /// The summary of both summaries' spans together.
  mutating func merge(_ other: TraceSummary) {
    hasError = hasError || other.hasError
    longestSpanNanos = max(longestSpanNanos, other.longestSpanNanos)
    earliestStart = min(earliestStart, other.earliestStart)
    latestEnd = max(latestEnd, other.latestEnd)
    hasAlwaysKeptService = hasAlwaysKeptService || other.hasAlwaysKeptService
  }

  /// First start to last end over the spans with valid times; 0 without any.
  var traceSpanNanos: UInt64 { latestEnd > earliestStart ? latestEnd - earliestStart : 0 }
}

/// A trace waiting for its decision.
struct BufferedTrace {
  var firstArrival: UInt64
  /// One group per request its spans came in, in arrival order.
  var groups: [SliceGroup] = []
  var summary = TraceSummary()
  var spanCount = 0
  /// What it costs besides the requests it points into (those are charged once each, apart).
  var bookkeepingBytes = 0
  /// The newest `receivedUnixNano` of the requests its spans came in.
  var newestReceived: UInt64 = 0
}

/// A request some buffered trace still points into: its bytes stay in memory until the last of
/// those traces is decided, so they are charged once, for that whole time.
struct HeldRequest {
  var bytes: Int
  var traces: Int
}

/// The spans of one request, by trace, as the wire reader found them.
struct RequestSpans {
  struct Trace {
    var id: TraceID
    var slices: [ItemSlice] = []
    var summary = TraceSummary()
  }

  /// In order of each trace's first span in the request.
  var traces: [Trace] = []
  var spanCount = 0
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
///
/// Requests are read with the OTLP wire reader, never decoded: buffered spans are byte ranges
/// into their request, and what is kept is spliced from the client's own bytes.
struct TailSamplingCore {
  /// Replaced on a configuration reload; traces buffered then are decided by the new policy.
  /// The decision cache keeps the size it was made with.
  var policy: SamplingPolicy
  private(set) var counters = TailSamplingCounters()
  private var buffered: [TraceKey: BufferedTrace] = [:]
  /// Buffered traces in order of first arrival, which is also decision-deadline order (the wait
  /// is the same for all), so the front is both the next due and the first to decide early.
  private var arrivals = FIFO<TraceKey>()
  private var decisions: DecisionCache
  /// Requests buffered traces point into, by serial.
  private var held: [UInt64: HeldRequest] = [:]
  private var nextSerial: UInt64 = 0
  /// Spans per emitted request are bounded by this many wire bytes, far below the journal's
  /// 16 MiB record limit.
  let maxOutputBytes: Int

  /// What buffering costs besides the requests pointed into, estimated from the sizes of what is
  /// stored (an array's heap header counted as 32 bytes; hash-table slack not counted), so a
  /// flood of one-span traces is bounded by `max-buffered-bytes` too.
  static func bookkeepingCharge(traces: Int, groups: Int, spans: Int) -> Int {
    let arrayHeader = 32
    // A trace: its key in the table and in the arrival queue, its entry, its groups array.
    let trace = 2 * MemoryLayout<TraceKey>.stride + MemoryLayout<BufferedTrace>.stride + arrayHeader
    // A group: its entry in the trace's groups, its slices array.
    let group = MemoryLayout<SliceGroup>.stride + arrayHeader
    return traces * trace + groups * group + spans * MemoryLayout<ItemSlice>.stride
  }

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
    var groups: [SliceGroup]
    var newestReceived: UInt64
  }

  private mutating func observeTraces(
    _ request: AdmittedRequest, now: UInt64, keptInFull: Bool, isKeptInFull: (String) -> Bool
  ) -> [AdmittedRequest] {
    guard let spans = readSpans(request.request) else {
      counters.requestsUndecodable += 1
      return []
    }
    if keptInFull {
      // Kept in full: the request is copied unchanged, straight away (no buffering); its traces
      // are remembered as kept so late spans follow them.
      counters.spansKept += UInt64(spans.spanCount)
      for trace in spans.traces {
        let key = TraceKey(tenant: request.tenant, traceID: trace.id)
        if buffered[key] == nil, decisions[key] != true {
          decisions.record(key, keeps: true)
          counters.keptIncident += 1
        }
      }
      return [request]
    }
    guard spans.spanCount > 0 else { return [] }

    let serial = nextSerial
    nextSerial &+= 1
    var holders = 0
    var late: [SliceGroup] = []
    for trace in spans.traces {
      let key = TraceKey(tenant: request.tenant, traceID: trace.id)
      let group = SliceGroup(request: request.request, serial: serial, slices: trace.slices)
      let index = buffered.index(forKey: key)
      if index == nil, let keeps = decisions[key] {
        // A late span of a decided trace follows its trace's decision.
        if keeps {
          late.append(group)
          counters.spansKept += UInt64(trace.slices.count)
        } else {
          counters.spansDropped += UInt64(trace.slices.count)
        }
        continue
      }
      let charge = Self.bookkeepingCharge(traces: index == nil ? 1 : 0, groups: 1, spans: trace.slices.count)
      // Through the index, the trace is changed in place: no copy of its groups.
      func add(to target: inout BufferedTrace) {
        target.groups.append(group)
        target.summary.merge(trace.summary)
        target.spanCount += trace.slices.count
        target.bookkeepingBytes += charge
        target.newestReceived = max(target.newestReceived, request.receivedUnixNano)
      }
      if let index {
        add(to: &buffered.values[index])
      } else {
        var fresh = BufferedTrace(firstArrival: now)
        add(to: &fresh)
        buffered[key] = fresh
        arrivals.append(key)
      }
      holders += 1
      counters.bufferedSpans += trace.slices.count
      counters.bufferedBytes += charge
    }
    if holders > 0 {
      held[serial] = HeldRequest(bytes: request.request.count, traces: holders)
      counters.bufferedBytes += request.request.count
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

  /// The request's spans grouped by trace, with the facts the rules need; `nil` when the wire
  /// reader refuses the request (then nothing of it is used, not even the spans before the fault).
  func readSpans(_ request: [UInt8]) -> RequestSpans? {
    let services = policy.traces.alwaysKeepServices
    var result = RequestSpans()
    var traceIndex: [TraceID: Int] = [:]
    var serviceResource = -1
    var serviceKept = false
    var inRange = true
    let read: Bool = request.withUnsafeBytes { raw in
      do {
        try OTLPWireReader.forEachSpan(raw) { facts in
          guard facts.traceID.upperBound <= raw.count else {
            inRange = false
            return
          }
          let id =
            facts.traceID.count == 16
            ? TraceID(high: facts.traceIDHigh, low: facts.traceIDLow)
            : TraceID(UnsafeRawBufferPointer(rebasing: raw[facts.traceID]))
          // Spans come resource by resource, so the allowlist is asked once per resource.
          if facts.resourceIndex != serviceResource {
            serviceResource = facts.resourceIndex
            serviceKept = false
            if !services.isEmpty, let name = facts.serviceName, name.upperBound <= raw.count {
              serviceKept = services.contains(
                String(decoding: UnsafeRawBufferPointer(rebasing: raw[name]), as: UTF8.self))
            }
          }
          let index: Int
          if let known = traceIndex[id] {
            index = known
          } else {
            index = result.traces.count
            traceIndex[id] = index
            result.traces.append(RequestSpans.Trace(id: id))
          }
          result.traces[index].slices.append(
            ItemSlice(resource: facts.resourceSpans, scope: facts.scopeSpans, item: facts.span))
          result.traces[index].summary.add(
            start: facts.startTime, end: facts.endTime, isError: facts.statusCode == Self.statusCodeError,
            alwaysKeptService: serviceKept)
          result.spanCount += 1
        }
        return true
      } catch {
        return false
      }
    }
    return read && inRange ? result : nil
  }

  /// `Status.StatusCode.STATUS_CODE_ERROR`.
  static let statusCodeError: Int32 = 2

  /// Decides the trace at the front of the arrival queue.
  private mutating func decideOldest(isKeptInFull: (String) -> Bool, early: Bool, into kept: inout [KeptSpans]) {
    guard let key = arrivals.popFirst(), let trace = buffered.removeValue(forKey: key) else { return }
    counters.bufferedSpans -= trace.spanCount
    counters.bufferedBytes -= trace.bookkeepingBytes
    for group in trace.groups { release(group.serial) }
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

  /// One trace no longer points into the request of `serial`; the last one frees its charge.
  private mutating func release(_ serial: UInt64) {
    guard let index = held.index(forKey: serial) else { return }
    held.values[index].traces -= 1
    if held.values[index].traces <= 0 {
      counters.bufferedBytes -= held.values[index].bytes
      held.remove(at: index)
    }
  }

  /// The rules, in the documented order; the first that matches names the decision.
  static func decide(
    _ summary: TraceSummary, traceID: TraceID, policy: SamplingPolicy.Traces, keptInFull: Bool
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
    if probabilisticKeeps(traceID.prefix, ratio: policy.probabilistic) { return .keptProbabilistic }
    return .dropped
  }

  /// Keeps when the id's first 8 bytes, as a big-endian integer, are below `ratio` × 2^64, so every
  /// node decides a trace the same way. Shorter ids are padded with zero bytes on the right.
  static func probabilisticKeeps(_ traceID: some Sequence<UInt8>, ratio: Double) -> Bool {
    probabilisticKeeps(TraceID.prefix(of: traceID), ratio: ratio)
  }

  static func probabilisticKeeps(_ value: UInt64, ratio: Double) -> Bool {
    guard ratio > 0 else { return false }
    guard ratio < 1 else { return true }
    // ratio × 2^64 is below 2^64 for ratio < 1, but rounding can reach it exactly.
    let threshold = ratio * 18_446_744_073_709_551_616.0
    guard let bound = UInt64(exactly: threshold.rounded(.down)) else { return true }
    return value < bound
  }

  /// Splices kept spans into export requests: one tenant per request (tenants in name order),
  /// spans under their original resource and scope (byte-equal ones merged, in first-seen order),
  /// spans in arrival order, split so no request carries more than `maxOutputBytes` of spans.
  mutating func buildTraceRequests(_ kept: [KeptSpans]) -> [AdmittedRequest] {
    guard !kept.isEmpty else { return [] }
    var tenants: [String] = []
    var byTenant: [String: [KeptSpans]] = [:]
    for entry in kept {
      if byTenant[entry.tenant] == nil { tenants.append(entry.tenant) }
      byTenant[entry.tenant, default: []].append(entry)
    }
    var outputs: [AdmittedRequest] = []
    var unspliceable = false
    defer { if unspliceable { counters.requestsUndecodable += 1 } }
    for tenant in tenants.sorted() {
      var builder = SpliceBuilder()
      for entry in byTenant[tenant] ?? [] {
        for group in entry.groups {
          for slice in group.slices {
            if builder.itemBytes > 0, builder.itemBytes + slice.item.count > maxOutputBytes {
              if let request = builder.request(signal: .traces, tenant: tenant) { outputs.append(request) }
              builder = SpliceBuilder()
            }
            if !builder.add(slice, from: group.request, serial: group.serial, received: entry.newestReceived) {
              unspliceable = true
            }
          }
        }
      }
      if let request = builder.request(signal: .traces, tenant: tenant) { outputs.append(request) }
    }
    return outputs
  }

  // MARK: - Logs

  private mutating func observeLogs(_ request: AdmittedRequest, keptInFull: Bool) -> [AdmittedRequest] {
    var total = 0
    var kept: [ItemSlice] = []
    var inRange = true
    let read: Bool = request.request.withUnsafeBytes { raw in
      do {
        try OTLPWireReader.forEachLogRecord(raw) { facts in
          total += 1
          guard facts.record.upperBound <= raw.count, facts.traceID.upperBound <= raw.count else {
            inRange = false
            return
          }
          if keptInFull || keepsLog(facts, in: raw, tenant: request.tenant) {
            kept.append(ItemSlice(resource: facts.resourceLogs, scope: facts.scopeLogs, item: facts.record))
          }
        }
        return true
      } catch {
        return false
      }
    }
    guard read, inRange else {
      counters.requestsUndecodable += 1
      return []
    }
    counters.logRecordsKept += UInt64(kept.count)
    counters.logRecordsDropped += UInt64(total - kept.count)
    guard !kept.isEmpty else { return [] }
    // Everything kept: the request's own bytes, unchanged.
    if kept.count == total { return [request] }
    var builder = SpliceBuilder()
    var unspliceable = false
    for slice in kept {
      if !builder.add(slice, from: request.request, serial: 0, received: request.receivedUnixNano) {
        unspliceable = true
      }
    }
    if unspliceable { counters.requestsUndecodable += 1 }
    return builder.request(signal: .logs, tenant: request.tenant).map { [$0] } ?? []
  }

  /// The logs policy for one record: severity, then the record's trace decision, then the ratio.
  func keepsLog(_ record: LogRecordFacts, in request: UnsafeRawBufferPointer, tenant: String) -> Bool {
    if let minimum = policy.logs.minSeverity {
      // The text is only made a string when the number does not say.
      var text = ""
      if record.severityNumber <= 0, let range = record.severityText, range.upperBound <= request.count {
        text = String(decoding: UnsafeRawBufferPointer(rebasing: request[range]), as: UTF8.self)
      }
      if let severity = Self.severity(number: Int(record.severityNumber), text: text),
        severity >= minimum.rawValue
      {
        return true
      }
    }
    guard !record.traceID.isEmpty else {
      let payload = SpliceBuilder.payload(of: record.record, in: request) ?? record.record
      return Self.probabilisticKeeps(
        Self.fnv1a(UnsafeRawBufferPointer(rebasing: request[payload])), ratio: policy.logs.probabilistic)
    }
    let traceID = TraceID(UnsafeRawBufferPointer(rebasing: request[record.traceID]))
    if policy.logs.keepWithKeptTraces, decisions[TraceKey(tenant: tenant, traceID: traceID)] == true {
      return true
    }
    return Self.probabilisticKeeps(traceID.prefix, ratio: policy.logs.probabilistic)
  }

  /// The record's severity number, or the one its severity text names when the number is
  /// unspecified (`WARN`, `warning`, `Error2`, ...); `nil` when neither says.
  static func severity(number: Int, text: String) -> Int? {
    if number > 0 { return number }
    let text = text.trimmingCharacters(in: .whitespaces)
    let name = String(text.prefix { !$0.isNumber })
    guard let level = LogSeverityLevel(name: name) else { return nil }
    let offset = Int(text.dropFirst(name.count)).map { min(max($0, 1), 4) - 1 } ?? 0
    return level.rawValue + offset
  }

  /// FNV-1a, 64 bit: a stable hash, the same on every node and every run.
  static func fnv1a(_ bytes: some Sequence<UInt8>) -> UInt64 {
    var hash: UInt64 = 0xcbf2_9ce4_8422_2325
    for byte in bytes {
      hash ^= UInt64(byte)
      hash = hash &* 0x0000_0100_0000_01b3
    }
    return hash
  }

  // MARK: - Metrics

  /// Metrics are kept or dropped whole, so the request is only walked to count its data points.
  private mutating func observeMetrics(_ request: AdmittedRequest, keptInFull: Bool) -> [AdmittedRequest] {
    let points: UInt64
    do {
      points = try OTLPWireReader.scanTimes(request.request, signal: .metrics).itemCount
    } catch {
      counters.requestsUndecodable += 1
      return []
    }
    if keptInFull || policy.metrics == .all {
      counters.dataPointsKept += points
      return [request]
    }
    counters.dataPointsDropped += points
    return []
  }
}
