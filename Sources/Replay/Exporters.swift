import Manifest

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
  /// Sends one archived request of `tenant`'s stream; the tenant travels as
  /// ``tenantHeader`` (HTTP) or its lowercase form (gRPC metadata), as multi-tenant sinks expect.
  func export(signal: Signal, tenant: String, request: ArraySlice<UInt8>) async -> ExportOutcome
  /// Sends `records` in order, one request each, retrying as `retry` says; stops at the first
  /// record that cannot be delivered.
  func exportAll(_ records: [PreparedRecord], retry: RetryPolicy) async -> BatchOutcome
  func close() async
}

/// The delivery loop shared by the exporters. It runs on the caller's executor (for the HTTP
/// exporter, its event loop), so consecutive requests need no thread hops in between.
nonisolated(nonsending) func deliverInOrder(
  _ records: [PreparedRecord], retry: RetryPolicy,
  send: (Signal, String, ArraySlice<UInt8>) async -> ExportOutcome
) async -> BatchOutcome {
  var outcome = BatchOutcome()
  for record in records {
    var attempt = 1
    delivery: while true {
      switch await send(record.stream.signal, record.stream.tenant, record.payload) {
      case .accepted(let rejected):
        outcome.accepted += 1
        outcome.rejectedItems += rejected
        break delivery
      case .rejected(let reason):
        outcome.failure = ReplayError(
          .rejectedPermanently, "the endpoint refused the record: \(reason)", stream: record.stream, seq: record.seq)
        return outcome
      case .retryable(let reason, let retryAfter):
        guard attempt < retry.maxAttempts else {
          outcome.failure = ReplayError(
            .retriesExhausted, "gave up after \(attempt) attempts; last: \(reason)", stream: record.stream,
            seq: record.seq)
          return outcome
        }
        let delay = retry.delay(afterAttempt: attempt, retryAfterSeconds: retryAfter)
        outcome.retries += 1
        attempt += 1
        try? await Task.sleep(for: .nanoseconds(Int64(delay * 1e9)))
      }
    }
  }
  return outcome
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
