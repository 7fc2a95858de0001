import Incidents
import Journal
import Manifest
import Receivers
import Sampling
import Synchronization

/// Whether the service is ready to take requests (set once every listener is bound).
final class ReadyFlag: Sendable {
  private let value = Mutex(false)
  var isReady: Bool { value.withLock { $0 } }
  func set(_ ready: Bool) { value.withLock { $0 = ready } }
}

/// The admin endpoint's routes: health, readiness, status, sealing, incidents. Everything but
/// health and readiness passes the ``AdminGate`` first (authentication, role, Origin, Host,
/// content type).
struct AdminRoutes: Sendable {
  let gate: AdminGate
  let journal: Journal
  let pipeline: CapturePipeline
  let ready: ReadyFlag
  let configuration: CaptureConfiguration
  let incidents: IncidentManager
  let hooks: NotifyHooks
  let archive: Journal
  let sampler: TailSampler
  let connections: ConnectionBudget

  /// The routes answered on the admin event loop itself, never waiting for a thread of the
  /// cooperative pool that OTLP/gRPC handlers may be keeping busy (see
  /// ``AdminHTTPServer/ImmediateHandler``): health and readiness.
  func immediate(_ request: AdminRequest) -> AdminResponse? {
    switch (request.method, request.path) {
    case ("GET", "/healthz"):
      return AdminResponse(status: 200, body: Array("ok\n".utf8))
    case ("GET", "/readyz"):
      if !ready.isReady { return AdminResponse(status: 503, body: Array("starting or stopping\n".utf8)) }
      if let problem = notReadyReason() {
        return AdminResponse(status: 503, body: Array("not accepting: \(problem)\n".utf8))
      }
      return AdminResponse(status: 200, body: Array("ready\n".utf8))
    default:
      return nil
    }
  }

  func handle(_ request: AdminRequest) async -> AdminResponse {
    if let response = immediate(request) { return response }
    let response = await gate.handle(request) { principal in await route(request, principal: principal) }
    // The seal's own audit record is written after the seal and before this answer; sealing
    // again seals it too, so after POST /seal no open segment holds a record.
    if request.method == "POST", request.path == "/seal", response.status == 200 {
      await journal.sealOpenSegments()
    }
    return response
  }

  private func route(_ request: AdminRequest, principal: AdminPrincipal) async -> AdminResponse {
    switch (request.method, request.path) {
    case ("GET", "/status"):
      return json(200, statusValue())
    case ("POST", "/seal"):
      await journal.sealOpenSegments()
      return json(200, statusValue())
    case (_, _) where request.path == "/incidents" || request.path.hasPrefix("/incidents/"):
      return IncidentRoutes(incidents: incidents).handle(request, principal: principal)
    case (_, "/healthz"), (_, "/readyz"), (_, "/status"), (_, "/seal"):
      return AdminResponse(status: 405, body: Array("method not allowed\n".utf8))
    default:
      return AdminResponse(status: 404, body: Array("not found: \(request.path)\n".utf8))
    }
  }

  /// Why a new request would be refused now, if it would: the journal's disk bounds, the
  /// in-flight memory bound, the connection budget or the descriptor limit. A load balancer
  /// polling `/readyz` then sends traffic elsewhere instead of into refusals.
  func notReadyReason() -> String? {
    if let problem = journal.admissionProblem() { return problem.message }
    // Less room than a typical large batch: the next request of any size would likely get 429.
    let held = pipeline.inFlightBytes + pipeline.heldAfterAcknowledgementBytes
    let room = pipeline.maxInFlightBytes - held
    if room < min(1 << 20, pipeline.maxInFlightBytes / 8) {
      return "in-flight memory bound reached (\(held) of \(pipeline.maxInFlightBytes) bytes)"
    }
    if connections.inUse >= connections.limit {
      return "OTLP connection limit reached (\(connections.limit) open)"
    }
    let limit = ProcessResources.descriptorLimit
    if let open = ProcessResources.openDescriptors(), open >= limit - ProcessResources.reservedDescriptors / 4 {
      return "file descriptors nearly exhausted (\(open) of \(limit) open)"
    }
    return nil
  }

  /// Tail-sampling decisions and the archive they feed.
  func samplingValue() -> JSONValue {
    let counters = sampler.counters
    let archiveStatus = archive.status()
    func text(_ value: some BinaryInteger) -> JSONValue { .string(String(value)) }
    return .object([
      (
        "archive",
        .object([
          ("accepting", .bool(archiveStatus.accepting)), ("appendedRecords", text(archiveStatus.appendedRecords)),
          ("bytes", text(archiveStatus.bytes)), ("nodeId", .string(archiveStatus.nodeID)),
        ])
      ),
      (
        "buffered",
        .object([
          ("bytes", text(counters.bufferedBytes)), ("spans", text(counters.bufferedSpans)),
          ("traces", text(counters.bufferedTraces)), ("queuedBytes", text(counters.queuedBytes)),
        ])
      ),
      ("decisions", .object(counters.decisions.sorted { $0.key < $1.key }.map { ($0.key, text($0.value)) })),
      ("decidedEarly", text(counters.decidedEarly)),
      (
        "items",
        .object([
          ("dataPointsDropped", text(counters.dataPointsDropped)), ("dataPointsKept", text(counters.dataPointsKept)),
          ("logRecordsDropped", text(counters.logRecordsDropped)), ("logRecordsKept", text(counters.logRecordsKept)),
          ("spansDropped", text(counters.spansDropped)), ("spansKept", text(counters.spansKept)),
        ])
      ),
      (
        "requests",
        .object([
          ("emitted", text(counters.requestsEmitted)), ("skipped", text(counters.requestsSkipped)),
          ("undecodable", text(counters.requestsUndecodable)),
        ])
      ),
    ])
  }

  private func json(_ status: Int, _ value: JSONValue) -> AdminResponse { AdminResponse.json(status, value) }

  /// The `/status` document (its schema is in the README).
  func statusValue() -> JSONValue {
    let status = journal.status()
    let counters = pipeline.counterSnapshot
    func number(_ value: some BinaryInteger) -> JSONValue { .number(String(value)) }
    let streams = status.streams.map { stream in
      JSONValue.object([
        ("nextSeq", .string(String(stream.nextSeq))), ("openRecords", number(stream.openRecords)),
        ("signal", .string(stream.signal.rawValue)), ("tenant", .string(stream.tenant)),
      ])
    }
    let recovery = status.recovery.map { report in
      JSONValue.object([
        ("cutBytes", number(report.cutBytes)), ("path", .string(report.path)), ("records", number(report.records)),
      ])
    }
    let accepted = Signal.allCases.map { ($0.rawValue, number(counters.accepted[$0] ?? 0)) }
    let rejected = counters.rejected.sorted { $0.key < $1.key }.map { ($0.key, number($0.value)) }
    let journalValue = JSONValue.object([
      ("accepting", .bool(status.accepting)), ("appendedBytes", .string(String(status.appendedBytes))),
      ("appendedRecords", .string(String(status.appendedRecords))), ("bytes", .string(String(status.bytes))),
      ("durability", .string(status.durability.rawValue)),
      ("freeBytes", status.freeBytes.map { .string(String($0)) } ?? .null),
      ("maxBytes", .string(String(status.maxBytes))), ("minFreeBytes", .string(String(status.minFreeBytes))),
      ("poisonedSegments", .string(String(status.poisonedSegments))),
      ("prunedSegments", .string(String(status.prunedSegments))),
      ("sealBacklogBytes", .string(String(status.sealBacklogBytes))),
      ("sealedSegments", .string(String(status.sealedSegments))), ("streams", .array(streams)),
      ("syncs", .string(String(status.syncs))),
    ])
    let ingestValue = JSONValue.object([
      ("accepted", .object(accepted)), ("acceptedBytes", .string(String(counters.acceptedBytes))),
      ("inFlightBytes", number(pipeline.inFlightBytes)),
      ("heldAfterAcknowledgementBytes", number(pipeline.heldAfterAcknowledgementBytes)),
      ("maxInFlightBytes", number(pipeline.maxInFlightBytes)),
      ("maxTenants", number(pipeline.maxTenants)), ("rejected", .object(rejected)),
      ("tenants", number(pipeline.tenantCount)),
      (
        "redaction",
        .object([
          ("active", .bool(pipeline.redactor != nil)),
          ("attributesDropped", .string(String(counters.redaction.attributesDropped))),
          ("requestsChanged", .string(String(counters.redaction.requestsChanged))),
          ("unknownFieldsDropped", .string(String(counters.redaction.unknownFieldsDropped))),
          ("valuesRewritten", .string(String(counters.redaction.valuesRewritten))),
        ])
      ),
    ])
    let connectionsValue = JSONValue.object([
      ("descriptorLimit", number(ProcessResources.descriptorLimit)),
      ("descriptorsOpen", number(ProcessResources.openDescriptors() ?? 0)),
      ("limit", number(connections.limit)), ("open", number(connections.inUse)),
    ])
    let activeIncidents = incidents.list().filter { $0.state == .active }.count
    return .object([
      ("nodeId", .string(status.nodeID)),
      ("profile", .string(configuration.profile.rawValue)),
      ("ready", .bool(ready.isReady)),
      ("journal", journalValue),
      ("recovery", .array(recovery)),
      ("incidents", .object([("active", number(activeIncidents))])),
      ("hooks", hooks.statusJSON),
      ("sampling", samplingValue()),
      ("ingest", ingestValue),
      ("connections", connectionsValue),
    ])
  }
}
