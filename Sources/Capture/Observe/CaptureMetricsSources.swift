import Audit
import Incidents
import Journal
import Receivers
import Sampling

/// Where a scrape reads the service's state: the same objects `/status` reads, asked only when
/// Prometheus scrapes, so mirroring state into gauges costs the request path nothing.
struct CaptureMetricsSources: Sendable {
  let journal: Journal
  let pipeline: CapturePipeline
  let incidents: IncidentManager
  let hooks: NotifyHooks
  let sampler: TailSampler
  let defaultLookbackSeconds: Int

  func snapshot() -> CaptureMetricsSnapshot {
    var snapshot = CaptureMetricsSnapshot()
    let status = journal.status()
    snapshot.journalBytes = status.bytes
    snapshot.journalFreeBytes = status.freeBytes
    snapshot.journalMaxBytes = status.maxBytes
    snapshot.journalMinFreeBytes = status.minFreeBytes
    let ring = journal.ringStatus(excluding: AuditStream.isReserved(tenant:))
    snapshot.segments = [(.open, ring.openSegments), (.sealing, ring.sealingSegments), (.sealed, ring.sealedSegments)]
    snapshot.ringBytes = ring.sealedBytes
    snapshot.ringPinnedBytes = ring.pinnedBytes
    let now = JournalClock.wallNanos()
    if let since = ring.holdsEverythingSinceUnixNano, since < now {
      snapshot.ringOldestAgeSeconds = Double(now - since) / 1e9
    }
    snapshot.activeIncidents = incidents.list().filter { $0.state == .active }.count
    snapshot.defaultLookbackSeconds = defaultLookbackSeconds
    snapshot.inflightBytes = pipeline.inFlightBytes + pipeline.heldAfterAcknowledgementBytes
    snapshot.inflightLimitBytes = pipeline.maxInFlightBytes
    if pipeline.redactor != nil {
      snapshot.redactionUnknownFieldsDropped = pipeline.counterSnapshot.redaction.unknownFieldsDropped
    }
    snapshot.samplerDecisions = sampler.counters.decisions.sorted { $0.key < $1.key }.map { ($0.key, $0.value) }
    snapshot.hookDeliveries = hooks.hooks.flatMap { hook in
      [
        ("delivered", hook.counters.delivered), ("failed", hook.counters.failed),
        ("dropped", hook.counters.dropped),
      ].map { CaptureMetricsSnapshot.HookDeliveryCount(hook: hook.hook, result: $0.0, count: $0.1) }
    }
    snapshot.process = ProcessStatistics.current()
    snapshot.openDescriptors = ProcessResources.openDescriptors()
    snapshot.maxDescriptors = ProcessResources.descriptorLimit
    return snapshot
  }
}
