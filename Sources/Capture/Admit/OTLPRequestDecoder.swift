public import Manifest
internal import OTLPProto
internal import SwiftProtobuf

/// Turns one OTLP export request body, as a transport received it, into the protobuf bytes the
/// journal keeps, or says precisely why it cannot.
///
/// Two checks, both required for a record the verifier will accept later:
/// 1. the §6.3 wire path the verifier walks (``SegmentSealer/checkRequest(_:signal:limits:)``:
///    record size limit, resource → scope → item framing and time fields), which also gives a
///    byte offset for the error message;
/// 2. a full decode as the signal's `Export…ServiceRequest`, which catches what the wire walk does
///    not look at (invalid UTF-8 in strings, broken nested messages, nesting deeper than
///    swift-protobuf's limit of 100).
///
/// Empty requests: a zero-length protobuf body is the encoding of an empty
/// `Export…ServiceRequest`, which OTLP allows; it is returned as zero bytes and the journal stores
/// it as a 16-byte record (seq and arrival time only, the §6.2 minimum). For JSON the empty
/// request is `{}`; a zero-length JSON body is not JSON and is malformed.
public enum OTLPRequestDecoder {
  /// Validates `body` as an OTLP request of `signal` and returns the protobuf bytes to journal.
  ///
  /// - Parameters:
  ///   - body: the request body, already decompressed.
  ///   - signal: the signal of the endpoint the body was sent to.
  ///   - encoding: `protobuf` returns the client's exact bytes; `json` returns the deterministic
  ///     protobuf serialization of the decoded document (hex ids checked, nesting ≤ 512).
  ///   - limits: the record size limit a verifier applies (§7).
  /// - Throws: ``RejectedRequest`` of kind ``RejectedRequest/Kind/malformed`` naming the problem
  ///   and where it is, or ``RejectedRequest/Kind/payloadTooLarge`` when the request would not fit
  ///   in one record.
  public static func decode(
    body: [UInt8], signal: Signal, encoding: OTLPEncoding, limits: VerificationLimits = .init()
  ) throws(RejectedRequest) -> [UInt8] {
    switch encoding {
    case .protobuf:
      try checkWirePath(body, signal: signal, limits: limits, prefix: "protobuf")
      try fullDecode(body, signal: signal)
      return body
    case .json:
      let request: [UInt8]
      do {
        request = try OTLPJSON.decodeRequest(body[...], expected: signal).request
      } catch {
        throw RejectedRequest(.malformed, jsonMessage(error, in: body))
      }
      // The JSON decoder produced this protobuf itself, so a failure here is a document whose
      // protobuf is too big for a record or that the verifier's walk would refuse.
      try checkWirePath(request, signal: signal, limits: limits, prefix: "JSON")
      return request
    }
  }

  private static func checkWirePath(
    _ request: [UInt8], signal: Signal, limits: VerificationLimits, prefix: String
  ) throws(RejectedRequest) {
    guard request.count + SegmentRecord.bodyPrefixSize <= limits.maxRecordSize else {
      throw RejectedRequest(
        .payloadTooLarge,
        "\(prefix): request of \(request.count) bytes exceeds the record limit of "
          + "\(limits.maxRecordSize - SegmentRecord.bodyPrefixSize) bytes")
    }
    do {
      _ = try SegmentSealer.checkRequest(request, signal: signal, limits: limits)
    } catch {
      throw RejectedRequest(.malformed, "\(prefix): \(error.message)")
    }
  }

  private static func fullDecode(_ body: [UInt8], signal: Signal) throws(RejectedRequest) {
    let outcome: String?
    switch signal {
    case .traces:
      outcome = decodeError(body, as: Opentelemetry_Proto_Collector_Trace_V1_ExportTraceServiceRequest.self)
    case .logs:
      outcome = decodeError(body, as: Opentelemetry_Proto_Collector_Logs_V1_ExportLogsServiceRequest.self)
    case .metrics:
      outcome = decodeError(body, as: Opentelemetry_Proto_Collector_Metrics_V1_ExportMetricsServiceRequest.self)
    }
    if let outcome { throw RejectedRequest(.malformed, "protobuf: \(outcome)") }
  }

  /// `nil` when `bytes` decodes as `M`, else why not.
  private static func decodeError<M: SwiftProtobuf.Message>(_ bytes: [UInt8], as type: M.Type) -> String? {
    do {
      _ = try M(serializedBytes: bytes)
      return nil
    } catch let error as BinaryDecodingError {
      let what: String
      switch error {
      case .truncated: what = "truncated field inside a nested message"
      case .invalidUTF8: what = "a string field holds invalid UTF-8"
      case .malformedProtobuf: what = "malformed protobuf inside a nested message"
      case .messageDepthLimit: what = "messages nested deeper than 100 levels"
      default: what = "\(error)"
      }
      return "not a valid \(M.protoMessageName): \(what)"
    } catch {
      return "not a valid \(M.protoMessageName): \(error)"
    }
  }

  /// "JSON line L column C: message", counting lines and byte columns in the body.
  private static func jsonMessage(_ error: OTLPJSONError, in body: [UInt8]) -> String {
    guard let column = error.column, column >= 1 else { return "JSON: \(error.message)" }
    let offset = min(column - 1, body.count)
    var line = 1
    var lineStart = 0
    for index in 0..<offset where body[index] == UInt8(ascii: "\n") {
      line += 1
      lineStart = index + 1
    }
    return "JSON line \(line) column \(offset - lineStart + 1): \(error.message)"
  }
}
