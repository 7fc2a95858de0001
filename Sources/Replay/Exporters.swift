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

/// Sends one archived request to an endpoint. Implementations keep their connection between calls.
protocol OTLPExporter: Sendable {
  func export(signal: Signal, request: ArraySlice<UInt8>) async -> ExportOutcome
  func close() async
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

/// Reads the partial-success rejected count from an `Export…ServiceResponse` on the wire:
/// field 1 `partial_success` → field 1 `rejected_spans` / `rejected_log_records` / `rejected_data_points`.
func partialSuccessRejected(_ response: [UInt8]) -> UInt64 {
  func fields(_ bytes: ArraySlice<UInt8>) -> [(UInt64, UInt64, ArraySlice<UInt8>)]? {
    var result: [(UInt64, UInt64, ArraySlice<UInt8>)] = []
    var index = bytes.startIndex
    func varint() -> UInt64? {
      var value: UInt64 = 0
      var shift: UInt64 = 0
      while index < bytes.endIndex, shift < 64 {
        let byte = bytes[index]
        index += 1
        value |= UInt64(byte & 0x7F) << shift
        if byte & 0x80 == 0 { return value }
        shift += 7
      }
      return nil
    }
    while index < bytes.endIndex {
      guard let tag = varint() else { return nil }
      switch tag & 7 {
      case 0:
        guard let value = varint() else { return nil }
        result.append((tag >> 3, value, []))
      case 1:
        guard bytes.endIndex - index >= 8 else { return nil }
        index += 8
      case 2:
        guard let length = varint(), length <= UInt64(bytes.endIndex - index) else { return nil }
        result.append((tag >> 3, 0, bytes[index..<index + Int(length)]))
        index += Int(length)
      case 5:
        guard bytes.endIndex - index >= 4 else { return nil }
        index += 4
      default: return nil
      }
    }
    return result
  }
  guard let top = fields(response[...]), let partial = top.first(where: { $0.0 == 1 }),
    let inner = fields(partial.2), let rejected = inner.first(where: { $0.0 == 1 })
  else { return 0 }
  return rejected.1
}
