import CoreMetrics
public import Ingest
public import Manifest
public import Prometheus
import Synchronization

/// The capture service's Prometheus metrics: every name and label set in one place, so the
/// receivers, admission and the journal call small typed methods instead of naming series.
///
/// Metrics are made through swift-metrics' API with a ``PrometheusMetricsFactory`` over this
/// object's own ``registry`` (never the process-wide `MetricsSystem`), so several services in one
/// process (tests) keep separate counts. Counters on the request path are made once per label
/// set and kept: refusals for every (signal, reason) at init, accepted counts per tenant when
/// admission first takes the tenant (``tenantCounters(_:)``), so counting costs an atomic add.
public final class CaptureMetrics: Sendable {
  /// Metric names, exactly as dashboards and alert rules use them.
  public enum Name {
    public static let acceptedRecords = "stella_receiver_accepted_records_total"
    public static let acceptedItems = "stella_receiver_accepted_items_total"
    public static let refusedRequests = "stella_receiver_refused_requests_total"
    public static let fsyncDuration = "stella_journal_fsync_duration_seconds"
    public static let journalBytes = "stella_journal_bytes"
    public static let journalFreeBytes = "stella_journal_free_bytes"
    public static let journalMaxBytes = "stella_journal_max_bytes"
    public static let journalMinFreeBytes = "stella_journal_min_free_bytes"
    public static let journalSegments = "stella_journal_segments"
    public static let ringBytes = "stella_ring_bytes"
    public static let ringPinnedBytes = "stella_ring_pinned_bytes"
    public static let ringOldestAge = "stella_ring_oldest_age_seconds"
    public static let incidentsActive = "stella_incidents_active"
    public static let incidentsDefaultLookback = "stella_incidents_default_lookback_seconds"
    public static let samplerDecisions = "stella_sampler_decisions_total"
    public static let hookDeliveries = "stella_hook_deliveries_total"
    public static let redactionUnknownFields = "stella_redaction_unknown_fields_dropped_total"
    public static let inflightBytes = "stella_inflight_bytes"
    public static let inflightLimitBytes = "stella_inflight_limit_bytes"
    public static let residentMemory = "process_resident_memory_bytes"
    public static let virtualMemory = "process_virtual_memory_bytes"
    public static let openFDs = "process_open_fds"
    public static let maxFDs = "process_max_fds"
    public static let cpuSeconds = "process_cpu_seconds_total"
    public static let startTime = "process_start_time_seconds"
  }

  /// The `signal` label of a refusal whose signal is not known (an unknown path).
  public static let unknownSignal = "unknown"

  /// fsync latency buckets: from a cached-write flush (~100 µs) to a disk in trouble (seconds).
  public static let fsyncBuckets: [Duration] = [
    .microseconds(100), .microseconds(250), .microseconds(500), .milliseconds(1), .microseconds(2500),
    .milliseconds(5), .milliseconds(10), .milliseconds(25), .milliseconds(50), .milliseconds(100),
    .milliseconds(250), .milliseconds(500), .seconds(1), .microseconds(2_500_000), .seconds(5),
  ]

  /// Where every series of this service lives; ``render()`` writes it as text exposition.
  public let registry: PrometheusCollectorRegistry
  private let factory: PrometheusMetricsFactory
  /// Refusal counters indexed by ``refusalIndex(signal:reason:)``.
  private let refusals: [CoreMetrics.Counter]
  private let fsync: CoreMetrics.Timer
  /// Scrape-time state: mirrors of counts kept elsewhere and the last process CPU reading.
  private let scrape = Mutex(ScrapeState())

  public init(registry: PrometheusCollectorRegistry = PrometheusCollectorRegistry()) {
    self.registry = registry
    var factory = PrometheusMetricsFactory(registry: registry)
    factory.durationHistogramBuckets[Name.fsyncDuration] = Self.fsyncBuckets
    self.factory = factory
    var refusals: [CoreMetrics.Counter] = []
    for signal in Self.refusalSignals {
      for reason in RefusalReason.allCases {
        refusals.append(
          CoreMetrics.Counter(
            label: Name.refusedRequests, dimensions: [("signal", signal), ("reason", reason.rawValue)],
            factory: factory))
      }
    }
    self.refusals = refusals
    self.fsync = CoreMetrics.Timer(label: Name.fsyncDuration, dimensions: [], factory: factory)
  }

  private static let refusalSignals = Signal.allCases.map(\.rawValue) + [unknownSignal]

  private static func refusalIndex(signal: Signal?, reason: RefusalReason) -> Int {
    let signalIndex = signal.flatMap { Signal.allCases.firstIndex(of: $0) } ?? Signal.allCases.count
    let reasonIndex = RefusalReason.allCases.firstIndex(of: reason) ?? 0
    return signalIndex * RefusalReason.allCases.count + reasonIndex
  }

  // MARK: - Request path

  /// Counts one refused export request; `signal` is `nil` when the request named no endpoint.
  public func refused(signal: Signal?, reason: RefusalReason) {
    refusals[Self.refusalIndex(signal: signal, reason: reason)].increment()
  }

  /// The accepted-request counters of `tenant`, made once when admission first takes the
  /// tenant; the number of tenants is bounded by `limits.max-tenants`, so is the label set.
  public func tenantCounters(_ tenant: String) -> TenantIngestCounters {
    TenantIngestCounters(tenant: tenant, factory: factory)
  }

  /// Records how long one `fdatasync` of a journal segment took.
  public func observeFsync(nanoseconds: Int64) {
    fsync.recordNanoseconds(nanoseconds)
  }

  // MARK: - Scrape

  /// Refreshes every gauge and mirrored counter from `snapshot` and returns the text exposition
  /// (`text/plain; version=0.0.4`). Scrapes are serialized, so mirrored counters never double count.
  public func render(_ snapshot: CaptureMetricsSnapshot) -> [UInt8] {
    scrape.withLock { state in
      update(&state, from: snapshot)
      return registry.emitToBuffer()
    }
  }

  private func gauge(_ name: String, _ dimensions: [(String, String)] = []) -> CoreMetrics.Gauge {
    CoreMetrics.Gauge(label: name, dimensions: dimensions, factory: factory)
  }

  private func update(_ state: inout ScrapeState, from snapshot: CaptureMetricsSnapshot) {
    gauge(Name.journalBytes).record(snapshot.journalBytes)
    if let free = snapshot.journalFreeBytes { gauge(Name.journalFreeBytes).record(free) }
    gauge(Name.journalMaxBytes).record(snapshot.journalMaxBytes)
    gauge(Name.journalMinFreeBytes).record(snapshot.journalMinFreeBytes)
    for (segmentState, count) in snapshot.segments {
      gauge(Name.journalSegments, [("state", segmentState.rawValue)]).record(count)
    }
    gauge(Name.ringBytes).record(snapshot.ringBytes)
    gauge(Name.ringPinnedBytes).record(snapshot.ringPinnedBytes)
    if let reach = snapshot.ringOldestAgeSeconds { gauge(Name.ringOldestAge).record(reach) }
    gauge(Name.incidentsActive).record(snapshot.activeIncidents)
    gauge(Name.incidentsDefaultLookback).record(snapshot.defaultLookbackSeconds)
    gauge(Name.inflightBytes).record(snapshot.inflightBytes)
    gauge(Name.inflightLimitBytes).record(snapshot.inflightLimitBytes)
    for (decision, count) in snapshot.samplerDecisions {
      mirror(&state, Name.samplerDecisions, [("decision", decision)], count)
    }
    if let dropped = snapshot.redactionUnknownFieldsDropped {
      mirror(&state, Name.redactionUnknownFields, [], dropped)
    }
    for delivery in snapshot.hookDeliveries {
      mirror(&state, Name.hookDeliveries, [("hook", delivery.hook), ("result", delivery.result)], delivery.count)
    }
    if let process = snapshot.process {
      gauge(Name.residentMemory).record(process.residentBytes)
      gauge(Name.virtualMemory).record(process.virtualBytes)
      gauge(Name.startTime).record(process.startTimeSeconds)
      // A counter that can only be incremented: add what the kernel counted since the last scrape.
      let cpu = CoreMetrics.FloatingPointCounter(label: Name.cpuSeconds, dimensions: [], factory: factory)
      if process.cpuSeconds > state.cpuSeconds {
        cpu.increment(by: process.cpuSeconds - state.cpuSeconds)
        state.cpuSeconds = process.cpuSeconds
      }
    }
    if let open = snapshot.openDescriptors { gauge(Name.openFDs).record(open) }
    gauge(Name.maxFDs).record(snapshot.maxDescriptors)
  }

  /// Adds to a counter what a count kept elsewhere grew by since the last scrape.
  private func mirror(_ state: inout ScrapeState, _ name: String, _ dimensions: [(String, String)], _ total: UInt64) {
    let key = ([name] + dimensions.map { "\($0.0)=\($0.1)" }).joined(separator: "\u{0}")
    let last = state.mirrored[key]
    let counter = CoreMetrics.Counter(label: name, dimensions: dimensions, factory: factory)
    if total > (last ?? 0) {
      counter.increment(by: Int64(clamping: total - (last ?? 0)))
    }
    state.mirrored[key] = max(total, last ?? 0)
  }

  private struct ScrapeState {
    var mirrored: [String: UInt64] = [:]
    var cpuSeconds: Double = 0
  }
}

/// One tenant's accepted-request counters for every signal and transport, made once.
public final class TenantIngestCounters: Sendable {
  public let tenant: String
  /// Indexed by signal, then transport.
  private let records: [CoreMetrics.Counter]
  /// Indexed by signal.
  private let items: [CoreMetrics.Counter]

  init(tenant: String, factory: PrometheusMetricsFactory) {
    self.tenant = tenant
    var records: [CoreMetrics.Counter] = []
    var items: [CoreMetrics.Counter] = []
    for signal in Signal.allCases {
      for transport in IngestTransport.allCases {
        records.append(
          CoreMetrics.Counter(
            label: CaptureMetrics.Name.acceptedRecords,
            dimensions: [("signal", signal.rawValue), ("tenant", tenant), ("transport", transport.rawValue)],
            factory: factory))
      }
      items.append(
        CoreMetrics.Counter(
          label: CaptureMetrics.Name.acceptedItems, dimensions: [("signal", signal.rawValue), ("tenant", tenant)],
          factory: factory))
    }
    self.records = records
    self.items = items
  }

  /// Counts one journaled request of `signal` holding `items` spans, log records or data points.
  public func accepted(signal: Signal, transport: IngestTransport, items itemCount: UInt64) {
    let signalIndex = Signal.allCases.firstIndex(of: signal) ?? 0
    let transportIndex = IngestTransport.allCases.firstIndex(of: transport) ?? 0
    records[signalIndex * IngestTransport.allCases.count + transportIndex].increment()
    if itemCount > 0 { items[signalIndex].increment(by: Int64(clamping: itemCount)) }
  }
}

/// The state `/metrics` shows, read at scrape time from the same sources `/status` reads.
public struct CaptureMetricsSnapshot: Sendable {
  /// A segment's place in its life: the `state` label of `stella_journal_segments`.
  public enum SegmentState: String, Sendable, CaseIterable {
    /// Being appended to.
    case open
    /// Rotated, waiting for (or in) compression.
    case sealing
    /// Sealed and on disk in the ring.
    case sealed
  }

  /// One hook's count of one delivery outcome (`delivered`, `failed`, `dropped`).
  public struct HookDeliveryCount: Sendable, Equatable {
    public var hook: String
    public var result: String
    public var count: UInt64

    public init(hook: String, result: String, count: UInt64) {
      self.hook = hook
      self.result = result
      self.count = count
    }
  }

  public var journalBytes: Int64 = 0
  public var journalFreeBytes: Int64?
  public var journalMaxBytes: Int64 = 0
  public var journalMinFreeBytes: Int64 = 0
  public var segments: [(SegmentState, Int)] = []
  public var ringBytes: Int64 = 0
  public var ringPinnedBytes: Int64 = 0
  /// How far back the ring holds every record; `nil` (no series) before the first record.
  public var ringOldestAgeSeconds: Double?
  public var activeIncidents = 0
  public var defaultLookbackSeconds = 0
  public var inflightBytes = 0
  public var inflightLimitBytes = 0
  public var samplerDecisions: [(String, UInt64)] = []
  public var hookDeliveries: [HookDeliveryCount] = []
  /// Unknown fields the redaction policy dropped since start; `nil` without a policy (no series).
  public var redactionUnknownFieldsDropped: UInt64?
  public var process: ProcessStatistics?
  public var openDescriptors: Int?
  public var maxDescriptors = 0

  public init() {}
}
