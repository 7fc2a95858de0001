internal import Foundation
internal import Manifest
internal import OTLPProto
internal import SwiftProtobuf

/// Why a serialized request could not be attributed to exactly one signal.
struct OTLPProtoSignalError: Error, Sendable, Equatable {
  var message: String
  /// The signals the message fits equally well: set only when it holds no span, log record or
  /// metric, so that nothing in it decides.
  var candidates: [Signal] = []
}

/// Tells which `Export*ServiceRequest` a serialized protobuf message is, when nothing else says.
///
/// The three requests are wire-identical down to the item level: field 1 is a repeated
/// `Resource{Spans,Logs,Metrics}` whose field 1 is a `Resource` and field 2 a repeated
/// `Scope{Spans,Logs,Metrics}`, whose field 1 is an `InstrumentationScope` and field 2 the repeated
/// items. Only the items (`Span`, `LogRecord`, `Metric`) differ, and they differ in wire types
/// (`Span` 7/8 are fixed64 times, `Metric` 7 is the `sum` message, `LogRecord` 1 is a fixed64 time
/// where `Span` 1 is the bytes trace id, ...). swift-protobuf does not fail on a known field
/// number with the wrong wire type; it keeps such a field as an unknown field.
///
/// Heuristic: decode the message as each of the three requests; a request type *fits* when
/// decoding succeeds and no message anywhere in the decoded tree has unknown fields. Exactly one
/// fitting type is the signal. None fitting is an error (not an OTLP request, or one from a newer
/// OTLP version with fields this build does not know). More than one fitting is an error too:
/// it happens for requests without any span, log record or metric (their bytes are valid as all
/// three), where the signal cannot be known, and refusing is safer for evidence than guessing.
enum OTLPProtoSignal {
  /// Classifies `message` and returns its signal and deterministic re-serialization.
  /// - Parameter ambiguousAs: the signal to take when the message fits several (it holds no
  ///   items) and this is one of them; the caller knows it from elsewhere (the other messages of
  ///   the same file, or the operator).
  static func classify(_ message: [UInt8], ambiguousAs: Signal? = nil) throws(OTLPProtoSignalError) -> (
    signal: Signal, request: [UInt8]
  ) {
    var fits: [(signal: Signal, request: [UInt8])] = []
    var reasons: [String] = []
    for signal in Signal.allCases {
      // A request that fits a signal has the right wire types on that signal's time path, so
      // the cheap wire scan rules out the other two before any full decode (the decodes were
      // three quarters of import time). The verdict is the same as decoding all three.
      do {
        _ = try OTLPTimeScan.scan(message, signal: signal)
      } catch {
        reasons.append("as \(signal.rawValue): \(error)")
        continue
      }
      let outcome: Result<[UInt8], OTLPProtoSignalError>
      switch signal {
      case .traces:
        outcome = attempt(
          message, as: Opentelemetry_Proto_Collector_Trace_V1_ExportTraceServiceRequest.self)
      case .logs:
        outcome = attempt(
          message, as: Opentelemetry_Proto_Collector_Logs_V1_ExportLogsServiceRequest.self)
      case .metrics:
        outcome = attempt(
          message, as: Opentelemetry_Proto_Collector_Metrics_V1_ExportMetricsServiceRequest.self)
      }
      switch outcome {
      case .success(let request): fits.append((signal, request))
      case .failure(let failure): reasons.append("as \(signal.rawValue): \(failure.message)")
      }
    }
    if fits.count == 1, let only = fits.first { return only }
    if let ambiguousAs, let chosen = fits.first(where: { $0.signal == ambiguousAs }) { return chosen }
    if fits.isEmpty {
      throw OTLPProtoSignalError(
        message: "not an OTLP ExportTrace/Logs/MetricsServiceRequest ("
          + reasons.joined(separator: "; ")
          + ")")
    }
    throw OTLPProtoSignalError(
      message: "cannot tell the signal: the request decodes cleanly as "
        + fits.map(\.signal.rawValue).joined(separator: ", ")
        + " (it holds no span, log record or metric)",
      candidates: fits.map(\.signal))
  }

  private static func attempt<M: SwiftProtobuf.Message>(
    _ bytes: [UInt8], as type: M.Type
  ) -> Result<[UInt8], OTLPProtoSignalError> {
    let message: M
    do {
      message = try M(serializedBytes: bytes)
    } catch {
      return .failure(OTLPProtoSignalError(message: "\(error)"))
    }
    var scan = UnknownFieldScan()
    do {
      try message.traverse(visitor: &scan)
    } catch {
      return .failure(OTLPProtoSignalError(message: "\(error)"))
    }
    if let location = scan.firstUnknownIn {
      return .failure(OTLPProtoSignalError(message: "unknown fields in \(location)"))
    }
    do {
      return .success(try message.serializedBytes(options: OTLPSerialization.deterministic))
    } catch {
      return .failure(OTLPProtoSignalError(message: "cannot serialize: \(error)"))
    }
  }
}

/// Walks a decoded message tree and notes the first message that carries unknown fields.
///
/// Only message-valued fields matter; scalar visits do nothing.
private struct UnknownFieldScan: SwiftProtobuf.Visitor {
  /// The proto name of the first message found with unknown fields.
  var firstUnknownIn: String?
  private var current: [String] = []

  mutating func visitSingularMessageField<M: SwiftProtobuf.Message>(value: M, fieldNumber: Int)
    throws
  {
    guard firstUnknownIn == nil else { return }
    current.append(M.protoMessageName)
    try value.traverse(visitor: &self)
    current.removeLast()
  }

  mutating func visitUnknown(bytes: Data) throws {
    if firstUnknownIn == nil, !bytes.isEmpty {
      firstUnknownIn = current.last ?? "the request"
    }
  }

  mutating func visitSingularDoubleField(value: Double, fieldNumber: Int) throws {}
  mutating func visitSingularInt64Field(value: Int64, fieldNumber: Int) throws {}
  mutating func visitSingularUInt64Field(value: UInt64, fieldNumber: Int) throws {}
  mutating func visitSingularBoolField(value: Bool, fieldNumber: Int) throws {}
  mutating func visitSingularStringField(value: String, fieldNumber: Int) throws {}
  mutating func visitSingularBytesField(value: Data, fieldNumber: Int) throws {}
  mutating func visitSingularEnumField<E: SwiftProtobuf.Enum>(value: E, fieldNumber: Int) throws {}

  // OTLP v1 has no map fields; these exist because the protocol requires them.
  mutating func visitMapField<KeyType, ValueType: MapValueType>(
    fieldType: _ProtobufMap<KeyType, ValueType>.Type,
    value: _ProtobufMap<KeyType, ValueType>.BaseType,
    fieldNumber: Int
  ) throws {}

  mutating func visitMapField<KeyType, ValueType>(
    fieldType: _ProtobufEnumMap<KeyType, ValueType>.Type,
    value: _ProtobufEnumMap<KeyType, ValueType>.BaseType,
    fieldNumber: Int
  ) throws where ValueType.RawValue == Int {}

  mutating func visitMapField<KeyType, ValueType>(
    fieldType: _ProtobufMessageMap<KeyType, ValueType>.Type,
    value: _ProtobufMessageMap<KeyType, ValueType>.BaseType,
    fieldNumber: Int
  ) throws {
    for message in value.values where firstUnknownIn == nil {
      current.append(ValueType.protoMessageName)
      try message.traverse(visitor: &self)
      current.removeLast()
    }
  }
}
