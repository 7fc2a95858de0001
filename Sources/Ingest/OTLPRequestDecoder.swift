public import Manifest
public import OTLPWire

/// Turns one OTLP export request body, as a transport received it, into the protobuf bytes the
/// journal keeps, or says precisely why it cannot.
///
/// One pass of the OTLP wire reader (``OTLPWireReader/check(_:signal:tenantAttribute:)``) does
/// what a record the verifier will accept later needs: the record size limit, the §6.3 path the
/// verifier walks (resource → scope → item framing and time fields), and everything a full
/// decode as the signal's `Export…ServiceRequest` would refuse (wire types, nested framing,
/// invalid UTF-8 in strings, nesting deeper than swift-protobuf's limit of 100). No message is
/// decoded: the pass reads the bytes once and returns the times and tenant values on the way.
///
/// Empty requests: a zero-length protobuf body is the encoding of an empty
/// `Export…ServiceRequest`, which OTLP allows; it is returned as zero bytes and the journal stores
/// it as a 16-byte record (seq and arrival time only, the §6.2 minimum). For JSON the empty
/// request is `{}`; a zero-length JSON body is not JSON and is malformed.
public enum OTLPRequestDecoder {
  /// A request that passed admission's checks, with what the check learned on the way.
  public struct Decoded: Sendable {
    /// The protobuf bytes to journal (the client's own for protobuf bodies).
    public var request: [UInt8]
    /// The request's §6.3 time summary, for the journal.
    public var times: Manifest.OTLPTimeSummary
    /// The distinct string values of the tenant resource attribute, when one was asked for.
    public var resourceTenants: [String]
    /// Whether more distinct tenant values exist than ``resourceTenants`` holds.
    public var moreResourceTenants: Bool
  }

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
    try check(body: body, signal: signal, encoding: encoding, limits: limits).request
  }

  /// As ``decode(body:signal:encoding:limits:)``, and returns the facts the one pass over the
  /// request found: its times for the journal and the values of `tenantAttribute` on its
  /// resources for the tenant resolver, so nothing downstream reads the request again.
  public static func check(
    body: [UInt8], signal: Signal, encoding: OTLPEncoding, tenantAttribute: String? = nil,
    limits: VerificationLimits = .init()
  ) throws(RejectedRequest) -> Decoded {
    switch encoding {
    case .protobuf:
      try checkSize(body, limits: limits, prefix: "protobuf")
      return try checkWire(body, signal: signal, tenantAttribute: tenantAttribute, prefix: "protobuf")
    case .json:
      let request: [UInt8]
      do {
        request = try OTLPJSON.decodeRequest(body[...], expected: signal).request
      } catch {
        throw RejectedRequest(.malformed, jsonMessage(error, in: body))
      }
      // The JSON decoder produced this protobuf itself, so a failure here is a document whose
      // protobuf is too big for a record or that the verifier's walk would refuse.
      try checkSize(request, limits: limits, prefix: "JSON")
      return try checkWire(request, signal: signal, tenantAttribute: tenantAttribute, prefix: "JSON")
    }
  }

  private static func checkSize(_ request: [UInt8], limits: VerificationLimits, prefix: String)
    throws(RejectedRequest)
  {
    guard request.count + SegmentRecord.bodyPrefixSize <= limits.maxRecordSize else {
      throw RejectedRequest(
        .payloadTooLarge,
        "\(prefix): request of \(request.count) bytes exceeds the record limit of "
          + "\(limits.maxRecordSize - SegmentRecord.bodyPrefixSize) bytes")
    }
  }

  /// One pass of the OTLP wire reader: every field's wire type, nested framing, UTF-8 of
  /// strings and the nesting limit, exactly as a full swift-protobuf decode judges them, plus
  /// the §6.3 walk the verifier repeats later.
  private static func checkWire(_ request: [UInt8], signal: Signal, tenantAttribute: String?, prefix: String)
    throws(RejectedRequest) -> Decoded
  {
    do {
      var tenants: [String] = []
      var more = false
      let facts = try request.withUnsafeBytes { raw throws(OTLPWire.OTLPWireError) in
        let facts = try OTLPWireReader.check(raw, signal: signal.wire, tenantAttribute: tenantAttribute)
        if tenantAttribute != nil {
          tenants = facts.tenantValues.strings(in: raw)
          more = facts.tenantValues.hasMore
        }
        return facts
      }
      return Decoded(request: request, times: facts.times, resourceTenants: tenants, moreResourceTenants: more)
    } catch {
      throw RejectedRequest(.malformed, "\(prefix): not a valid \(signal.requestMessageName): \(error)")
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

extension Signal {
  /// The wire reader's name for this signal.
  var wire: WireSignal {
    switch self {
    case .traces: return .traces
    case .logs: return .logs
    case .metrics: return .metrics
    }
  }

  /// The protobuf message an export request of this signal is.
  var requestMessageName: String {
    switch self {
    case .traces: return "opentelemetry.proto.collector.trace.v1.ExportTraceServiceRequest"
    case .logs: return "opentelemetry.proto.collector.logs.v1.ExportLogsServiceRequest"
    case .metrics: return "opentelemetry.proto.collector.metrics.v1.ExportMetricsServiceRequest"
    }
  }
}
