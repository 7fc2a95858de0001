import Manifest
import Synchronization

/// The wire protocols replay speaks (the OTLP exporter protocol names).
public enum OTLPProtocol: String, Sendable, CaseIterable {
  case httpProtobuf = "http/protobuf"
  case httpJSON = "http/json"
  case grpc
}

/// What an endpoint said about one export request.
public enum ExportOutcome: Sendable, Equatable {
  /// Accepted (HTTP 2xx, gRPC OK). `rejectedItems` is the partial-success count the endpoint
  /// reported, when it reported one.
  case accepted(rejectedItems: UInt64)
  /// Worth trying again: HTTP 429/502/503/504, gRPC UNAVAILABLE/RESOURCE_EXHAUSTED/…, or a
  /// connection failure. `retryAfter` is the endpoint's requested delay in seconds, if any.
  case retryable(reason: String, retryAfterSeconds: Double?)
  /// Refused for good (HTTP 400 and other 4xx, gRPC INVALID_ARGUMENT…).
  case rejected(reason: String)
}

/// The header naming the tenant of every replayed request: the convention of Tempo, Loki and
/// Mimir, and what `capture` reads by default, so a replayed bundle keeps its tenants.
let tenantHeader = "X-Scope-OrgID"

/// One record ready to send.
struct PreparedRecord: Sendable {
  var stream: StreamKey
  var seq: UInt64
  var payload: ArraySlice<UInt8>
}

/// How a batch went: the first `accepted` records were acknowledged; `failure` stopped the rest.
struct BatchOutcome: Sendable {
  var accepted = 0
  var retries: UInt64 = 0
  var rejectedItems: UInt64 = 0
  var failure: ReplayError?
}

/// Sends archived requests to an endpoint. Implementations keep their connection between calls.
protocol OTLPExporter: Sendable {
  /// Sends `records` in order, one request each and one at a time, retrying as `retry` says;
  /// stops at the first record that cannot be delivered, and before any record once `stop` is
  /// raised. The tenant of each record travels as ``tenantHeader`` (HTTP) or its lowercase form
  /// (gRPC metadata), as multi-tenant sinks expect.
  func exportAll(_ records: [PreparedRecord], retry: RetryPolicy, stop: ReplayStop) async -> BatchOutcome
  func close() async
}

/// Raised when one sending lane failed, so the others start nothing more.
final class ReplayStop: Sendable {
  private let raised = Atomic(false)

  init() {}

  var isRaised: Bool { raised.load(ordering: .acquiring) }

  func raise() { raised.store(true, ordering: .releasing) }
}

/// The bookkeeping of one batch's delivery, shared by the exporters' loops: what an attempt's
/// outcome means for the batch, and whether to go on.
struct DeliveryLedger {
  enum Step {
    /// The record is done; go on with the next.
    case next
    /// Try the same record again after this many seconds.
    case retry(afterSeconds: Double)
    /// Stop the batch; ``outcome`` says why.
    case stop
  }

  let retry: RetryPolicy
  var outcome = BatchOutcome()

  init(retry: RetryPolicy) { self.retry = retry }

  /// Records the outcome of attempt `attempt` (from 1) of `record`.
  mutating func record(_ result: ExportOutcome, of record: PreparedRecord, attempt: Int) -> Step {
    switch result {
    case .accepted(let rejected):
      outcome.accepted += 1
      outcome.rejectedItems += rejected
      return .next
    case .rejected(let reason):
      outcome.failure = ReplayError(
        .rejectedPermanently, "the endpoint refused the record: \(reason)", stream: record.stream, seq: record.seq)
      return .stop
    case .retryable(let reason, let retryAfter):
      guard attempt < retry.maxAttempts else {
        outcome.failure = ReplayError(
          .retriesExhausted, "gave up after \(attempt) attempts; last: \(reason)", stream: record.stream,
          seq: record.seq)
        return .stop
      }
      outcome.retries += 1
      return .retry(afterSeconds: retry.delay(afterAttempt: attempt, retryAfterSeconds: retryAfter))
    }
  }
}

/// The delivery loop for exporters whose requests are async (gRPC).
func deliverInOrder(
  _ records: [PreparedRecord], retry: RetryPolicy, stop: ReplayStop,
  send: (Signal, String, ArraySlice<UInt8>) async -> ExportOutcome
) async -> BatchOutcome {
  var ledger = DeliveryLedger(retry: retry)
  for record in records {
    var attempt = 1
    delivery: while !stop.isRaised {
      switch ledger.record(
        await send(record.stream.signal, record.stream.tenant, record.payload), of: record, attempt: attempt)
      {
      case .next: break delivery
      case .stop: return ledger.outcome
      case .retry(let seconds):
        attempt += 1
        try? await Task.sleep(for: .nanoseconds(Int64(seconds * 1e9)))
      }
    }
    if stop.isRaised { break }
  }
  return ledger.outcome
}

/// The OTLP service of each signal, for gRPC method names and HTTP paths.
extension Signal {
  var grpcService: String {
    switch self {
    case .traces: "opentelemetry.proto.collector.trace.v1.TraceService"
    case .logs: "opentelemetry.proto.collector.logs.v1.LogsService"
    case .metrics: "opentelemetry.proto.collector.metrics.v1.MetricsService"
    }
  }
}
