import Foundation
import OTLPProto
import OTLPWire
import SwiftProtobuf
import Testing

/// Hand-built protobuf: one function per wire shape, so a test reads like the bytes it sends.
enum PB {
  static func varint(_ value: UInt64) -> [UInt8] {
    var value = value
    var out: [UInt8] = []
    while value >= 0x80 {
      out.append(UInt8(truncatingIfNeeded: value) | 0x80)
      value >>= 7
    }
    out.append(UInt8(value))
    return out
  }

  static func tag(_ field: UInt64, _ wire: UInt64) -> [UInt8] { varint(field << 3 | wire) }

  static func ld(_ field: UInt64, _ body: [UInt8]) -> [UInt8] {
    tag(field, 2) + varint(UInt64(body.count)) + body
  }

  static func string(_ field: UInt64, _ text: String) -> [UInt8] { ld(field, Array(text.utf8)) }

  static func varintField(_ field: UInt64, _ value: UInt64) -> [UInt8] { tag(field, 0) + varint(value) }

  static func fixed64(_ field: UInt64, _ value: UInt64) -> [UInt8] {
    tag(field, 1) + (0..<8).map { UInt8(truncatingIfNeeded: value >> (8 * $0)) }
  }

  static func fixed32(_ field: UInt64, _ value: UInt32) -> [UInt8] {
    tag(field, 5) + (0..<4).map { UInt8(truncatingIfNeeded: value >> (8 * $0)) }
  }

  static func group(_ field: UInt64, _ body: [UInt8]) -> [UInt8] { tag(field, 3) + body + tag(field, 4) }

  /// `depth` groups nested in each other, innermost empty.
  static func nestedGroups(_ field: UInt64, depth: Int) -> [UInt8] {
    var body: [UInt8] = []
    for _ in 0..<depth { body = group(field, body) }
    return body
  }

  /// A message from fields, in reverse order when `PB.descending` is on (as pdata writes them).
  static func message(_ fields: [[UInt8]]) -> [UInt8] {
    (descending ? fields.reversed() : fields).flatMap { $0 }
  }

  nonisolated(unsafe) static var descending = false

  // The request path, each level from its fields.
  static func traces(_ resources: [[UInt8]]) -> [UInt8] { message(resources.map { ld(1, $0) }) }
  static func resourceSpans(resource: [UInt8]? = nil, scopes: [[UInt8]], schemaURL: String? = nil) -> [UInt8] {
    var fields: [[UInt8]] = []
    if let resource { fields.append(ld(1, resource)) }
    fields += scopes.map { ld(2, $0) }
    if let schemaURL { fields.append(string(3, schemaURL)) }
    return message(fields)
  }
  static func scopeSpans(scope: [UInt8]? = nil, spans: [[UInt8]], schemaURL: String? = nil) -> [UInt8] {
    var fields: [[UInt8]] = []
    if let scope { fields.append(ld(1, scope)) }
    fields += spans.map { ld(2, $0) }
    if let schemaURL { fields.append(string(3, schemaURL)) }
    return message(fields)
  }
  static func span(start: UInt64 = 10, end: UInt64 = 20, extra: [[UInt8]] = []) -> [UInt8] {
    message(
      [ld(1, Array(repeating: 0xAB, count: 16)), ld(2, Array(repeating: 0xCD, count: 8)), string(5, "GET /")]
        + [fixed64(7, start), fixed64(8, end)] + extra)
  }
  static func keyValue(_ key: String, _ value: [UInt8]) -> [UInt8] { message([string(1, key), ld(2, value)]) }
  static func stringValue(_ text: String) -> [UInt8] { string(1, text) }

  /// A request with one span carrying `spanFields` besides its times.
  static func oneSpan(_ spanFields: [[UInt8]]) -> [UInt8] {
    traces([resourceSpans(scopes: [scopeSpans(spans: [span(extra: spanFields)])])])
  }

  static func logs(_ records: [[UInt8]]) -> [UInt8] {
    message([ld(1, message([ld(2, message(records.map { ld(2, $0) }))]))])
  }

  static func metrics(_ metrics: [[UInt8]]) -> [UInt8] {
    message([ld(1, message([ld(2, message(metrics.map { ld(2, $0) }))]))])
  }
}

enum Oracle {
  /// Whether swift-protobuf 1.39 decodes `bytes` as the signal's request.
  static func protobufAccepts(_ bytes: [UInt8], _ signal: WireSignal) -> Bool {
    let data = Data(bytes)
    do {
      switch signal {
      case .traces: _ = try Opentelemetry_Proto_Collector_Trace_V1_ExportTraceServiceRequest(serializedBytes: data)
      case .logs: _ = try Opentelemetry_Proto_Collector_Logs_V1_ExportLogsServiceRequest(serializedBytes: data)
      case .metrics: _ = try Opentelemetry_Proto_Collector_Metrics_V1_ExportMetricsServiceRequest(serializedBytes: data)
      }
      return true
    } catch {
      return false
    }
  }

  static func timeWalkAccepts(_ bytes: [UInt8], _ signal: WireSignal) -> Bool {
    (try? OTLPWireReader.scanTimes(bytes, signal: signal)) != nil
  }

  static func checkResult(_ bytes: [UInt8], _ signal: WireSignal) -> Result<OTLPRequestFacts, OTLPWireError> {
    do throws(OTLPWireError) {
      return .success(try OTLPWireReader.check(bytes, signal: signal))
    } catch {
      return .failure(error)
    }
  }
}

/// Asserts that `check` accepts `bytes` exactly when `accepted`, and that this is what
/// swift-protobuf and the §6.3 walk together say; returns the check's error, if any.
@discardableResult
func expectCheck(
  _ bytes: [UInt8], _ signal: WireSignal = .traces, accepted: Bool, sourceLocation: SourceLocation = #_sourceLocation
) -> OTLPWireError? {
  let oracle = Oracle.protobufAccepts(bytes, signal) && Oracle.timeWalkAccepts(bytes, signal)
  #expect(oracle == accepted, "swift-protobuf + time walk say \(oracle)", sourceLocation: sourceLocation)
  switch Oracle.checkResult(bytes, signal) {
  case .success(let facts):
    #expect(accepted, "check accepted", sourceLocation: sourceLocation)
    if let times = try? OTLPWireReader.scanTimes(bytes, signal: signal) {
      #expect(facts.times == times, sourceLocation: sourceLocation)
    }
    return nil
  case .failure(let error):
    #expect(!accepted, "check refused: \(error)", sourceLocation: sourceLocation)
    return error
  }
}

/// The reader's buffer-pointer entry points over arrays (a `throws(OTLPWireError)` closure
/// passed to `withUnsafeBytes` crashes the 6.3 compiler, so these go through a `Result`).
enum Read {
  static func spans(_ bytes: [UInt8]) throws -> [SpanFacts] {
    var result: Result<[SpanFacts], OTLPWireError> = .success([])
    bytes.withUnsafeBytes { raw in
      var all: [SpanFacts] = []
      do throws(OTLPWireError) {
        try OTLPWireReader.forEachSpan(raw) { all.append($0) }
        result = .success(all)
      } catch {
        result = .failure(error)
      }
    }
    return try result.get()
  }

  static func logRecords(_ bytes: [UInt8]) throws -> [LogRecordFacts] {
    var result: Result<[LogRecordFacts], OTLPWireError> = .success([])
    bytes.withUnsafeBytes { raw in
      var all: [LogRecordFacts] = []
      do throws(OTLPWireError) {
        try OTLPWireReader.forEachLogRecord(raw) { all.append($0) }
        result = .success(all)
      } catch {
        result = .failure(error)
      }
    }
    return try result.get()
  }

  static func splice(_ bytes: [UInt8], keeping spans: [SpanFacts]) throws -> [UInt8] {
    var result: Result<[UInt8], OTLPWireError> = .success([])
    bytes.withUnsafeBytes { raw in
      do throws(OTLPWireError) {
        result = .success(try OTLPTraceSplice.request(from: raw, keeping: spans))
      } catch {
        result = .failure(error)
      }
    }
    return try result.get()
  }
}
