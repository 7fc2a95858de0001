public import Manifest
import OTLPProto
import SwiftProtobuf

/// Turns an export request body into the protobuf bytes the journal keeps.
public enum OTLPRequestDecoder {
  /// Validates `body` as the signal's `Export*ServiceRequest` and returns the bytes to journal.
  public static func decode(body: [UInt8], signal: Signal, encoding: OTLPEncoding) throws(RejectedRequest) -> [UInt8] {
    let request: [UInt8]
    switch encoding {
    case .json:
      do {
        request = try OTLPJSON.decodeRequest(body[...], expected: signal).request
      } catch {
        throw RejectedRequest(.malformed, "OTLP/JSON: \(error.message)")
      }
    case .protobuf:
      do {
        switch signal {
        case .traces: _ = try Opentelemetry_Proto_Collector_Trace_V1_ExportTraceServiceRequest(serializedBytes: body)
        case .logs: _ = try Opentelemetry_Proto_Collector_Logs_V1_ExportLogsServiceRequest(serializedBytes: body)
        case .metrics: _ = try Opentelemetry_Proto_Collector_Metrics_V1_ExportMetricsServiceRequest(serializedBytes: body)
        }
      } catch {
        throw RejectedRequest(.malformed, "protobuf: not a valid \(signal.rawValue) export request: \(error)")
      }
      request = body
    }
    do {
      _ = try SegmentSealer.checkRequest(request, signal: signal, limits: VerificationLimits())
    } catch {
      throw RejectedRequest(.malformed, "protobuf: \(error.message)")
    }
    return request
  }
}
