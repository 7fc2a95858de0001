public import Manifest
import OTLPProto
import SwiftProtobuf

/// Protobuf requests rendered as OTLP/JSON (the OTLP specification's JSON encoding).
///
/// The generated messages give the proto3 JSON mapping (lowerCamelCase names, 64-bit integers
/// as strings); OTLP/JSON differs in two ways that are fixed here: enums are integers, and the
/// trace and span ids (`traceId`, `spanId`, `parentSpanId`, in spans, links, log records and
/// exemplars) are hex, not base64. Fields the generated code does not know are dropped, as any
/// decoder of this OTLP version would drop them.
public enum OTLPJSONEncoding {
  /// The JSON object keys that hold ids; in OTLP v1 these names are used by id fields only.
  static let idKeys: [[UInt8]] = [Array("traceId".utf8), Array("spanId".utf8), Array("parentSpanId".utf8)]

  /// One request as a single line of OTLP/JSON (no newline).
  public static func json(request: some Collection<UInt8>, signal: Signal) throws(ReplayError) -> [UInt8] {
    let bytes = Array(request)
    var options = JSONEncodingOptions()
    options.alwaysPrintEnumsAsInts = true
    options.useDeterministicOrdering = true
    let proto3JSON: [UInt8]
    do {
      switch signal {
      case .traces:
        proto3JSON = try Opentelemetry_Proto_Collector_Trace_V1_ExportTraceServiceRequest(serializedBytes: bytes)
          .jsonUTF8Bytes(options: options)
      case .logs:
        proto3JSON = try Opentelemetry_Proto_Collector_Logs_V1_ExportLogsServiceRequest(serializedBytes: bytes)
          .jsonUTF8Bytes(options: options)
      case .metrics:
        proto3JSON = try Opentelemetry_Proto_Collector_Metrics_V1_ExportMetricsServiceRequest(serializedBytes: bytes)
          .jsonUTF8Bytes(options: options)
      }
    } catch {
      throw ReplayError(.requestUnconvertible, "cannot convert the \(signal.rawValue) request to JSON: \(error)")
    }
    // proto3 JSON leaves an empty list out, so an empty request would be `{}`, which names no
    // signal and which no OTLP/JSON reader (our import included) can file under one.
    guard proto3JSON != Array("{}".utf8) else { return Array(#"{"\#(resourceKey(signal))":[]}"#.utf8) }
    return try hexIDs(proto3JSON)
  }

  /// The top-level key of a signal's export request in OTLP/JSON.
  static func resourceKey(_ signal: Signal) -> String {
    switch signal {
    case .traces: "resourceSpans"
    case .logs: "resourceLogs"
    case .metrics: "resourceMetrics"
    }
  }

  /// Rewrites the base64 values of id keys as lowercase hex, leaving every other byte as it is.
  ///
  /// A small scanner rather than a JSON round trip, so numbers and escapes keep the exact form
  /// the encoder gave them. It tracks strings and escapes, so text inside values never matches.
  public static func hexIDs(_ json: [UInt8]) throws(ReplayError) -> [UInt8] {
    var out: [UInt8] = []
    out.reserveCapacity(json.count + json.count / 8)
    var index = 0
    var pendingIDKey = false
    while index < json.count {
      let byte = json[index]
      guard byte == UInt8(ascii: "\"") else {
        out.append(byte)
        if byte != UInt8(ascii: ":") && byte != 0x20 && byte != 0x0A && byte != 0x09 && byte != 0x0D {
          pendingIDKey = false
        }
        index += 1
        continue
      }
      // A string from index to its closing quote.
      var end = index + 1
      while end < json.count && json[end] != UInt8(ascii: "\"") {
        end += json[end] == UInt8(ascii: "\\") ? 2 : 1
      }
      guard end < json.count else {
        throw ReplayError(.requestUnconvertible, "unterminated string in JSON at byte \(index)")
      }
      let content = json[(index + 1)..<end]
      if pendingIDKey {
        // This string is the value of an id key: base64 → hex.
        guard let raw = Base64.decode(content) else {
          throw ReplayError(.requestUnconvertible, "id value at JSON byte \(index) is not base64")
        }
        out.append(UInt8(ascii: "\""))
        out.append(contentsOf: Array(Hex.encode(raw).utf8))
        out.append(UInt8(ascii: "\""))
        pendingIDKey = false
      } else {
        out.append(contentsOf: json[index...end])
        var next = end + 1
        while next < json.count, json[next] == 0x20 || json[next] == 0x0A || json[next] == 0x09 || json[next] == 0x0D {
          next += 1
        }
        if next < json.count, json[next] == UInt8(ascii: ":"), idKeys.contains(where: { $0.elementsEqual(content) }) {
          pendingIDKey = true
        }
      }
      index = end + 1
    }
    return out
  }
}

/// Standard base64 (RFC 4648 §4) decoding, as the proto3 JSON mapping writes bytes.
enum Base64 {
  private static let values: [UInt8] = {
    var table = [UInt8](repeating: 0xFF, count: 256)
    for (index, char) in "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8.enumerated() {
      table[Int(char)] = UInt8(index)
    }
    // The JSON mapping accepts the URL-safe alphabet too.
    table[Int(UInt8(ascii: "-"))] = 62
    table[Int(UInt8(ascii: "_"))] = 63
    return table
  }()

  static func decode(_ text: some Collection<UInt8>) -> [UInt8]? {
    var out: [UInt8] = []
    out.reserveCapacity(text.count * 3 / 4)
    var accumulator: UInt32 = 0
    var bits = 0
    var padding = 0
    for char in text {
      if char == UInt8(ascii: "=") {
        padding += 1
        continue
      }
      guard padding == 0 else { return nil }
      let value = values[Int(char)]
      guard value != 0xFF else { return nil }
      accumulator = accumulator << 6 | UInt32(value)
      bits += 6
      if bits >= 8 {
        bits -= 8
        out.append(UInt8(truncatingIfNeeded: accumulator >> UInt32(bits)))
      }
    }
    guard padding <= 2, bits < 6 else { return nil }
    return out
  }
}
