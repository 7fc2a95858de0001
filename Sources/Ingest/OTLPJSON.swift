package import Manifest
internal import OTLPProto
internal import SwiftProtobuf

/// Why one OTLP/JSON document could not be turned into a protobuf request.
package struct OTLPJSONError: Error, Sendable, Equatable {
  package enum Kind: Sendable, Equatable {
    /// Not well-formed JSON, or not a single JSON object.
    case syntax
    /// A trace or span id that is not hex of the right length.
    case invalidID
    /// No `resourceSpans`/`resourceLogs`/`resourceMetrics` key (and no signal was expected).
    case noSignal
    /// Keys of two different signals, or a signal other than the expected one.
    case conflictingSignals
    /// Well-formed JSON that the OTLP messages reject (unknown field, wrong type, ...).
    case schema
  }

  package var kind: Kind
  /// 1-based byte column in the document where the problem was found, when known.
  package var column: Int?
  package var message: String
}

/// OTLP/JSON ("JSON Protobuf Encoding" in the OTLP specification) to protobuf.
///
/// swift-protobuf's decoder already follows the proto3 JSON mapping that OTLP/JSON builds on:
/// lowerCamelCase and original snake_case field names, 64-bit integers as strings or numbers
/// (parsed from the token text, so values above 2^53 stay exact), enums as names or numbers.
/// The one OTLP deviation is that trace and span ids are hex, not base64; swift-protobuf would
/// read the 32 hex digits of a trace id as base64 without complaint and produce 24 wrong bytes.
/// So a first pass walks the document along the OTLP schema, finds every id field, checks its hex
/// and splices the base64 of the decoded bytes in its place; every other byte of the document is
/// passed through untouched, so numbers and strings reach swift-protobuf exactly as written.
package enum OTLPJSON {
  /// JSON nesting deeper than this is refused before swift-protobuf sees it; its own message
  /// depth limit (100) is reached earlier for any real OTLP document.
  package static let maxNesting = 512

  /// Decodes one OTLP/JSON `Export*ServiceRequest` document and serializes it deterministically.
  ///
  /// - Parameters:
  ///   - document: the UTF-8 JSON text of one request (one line of a JSON-lines file).
  ///   - expected: the signal the caller requires (an HTTP path, say), or `nil` to take it from
  ///     the top-level key.
  /// - Returns: the signal and the deterministic protobuf serialization of the request.
  package static func decodeRequest(
    _ document: ArraySlice<UInt8>,
    expected: Signal? = nil
  ) throws(OTLPJSONError) -> (signal: Signal, request: [UInt8]) {
    var rewriter = IDRewriter(input: Array(document), expected: expected)
    try rewriter.run()
    guard let signal = rewriter.signal ?? expected else {
      throw OTLPJSONError(
        kind: .noSignal, column: nil,
        message: "no resourceSpans, resourceLogs or resourceMetrics key in the JSON object")
    }
    let json = rewriter.rewritten()
    switch signal {
    case .traces:
      return (
        signal,
        try reserialize(
          json, as: Opentelemetry_Proto_Collector_Trace_V1_ExportTraceServiceRequest.self)
      )
    case .logs:
      return (
        signal,
        try reserialize(
          json, as: Opentelemetry_Proto_Collector_Logs_V1_ExportLogsServiceRequest.self)
      )
    case .metrics:
      return (
        signal,
        try reserialize(
          json, as: Opentelemetry_Proto_Collector_Metrics_V1_ExportMetricsServiceRequest.self)
      )
    }
  }

  private static func reserialize<M: SwiftProtobuf.Message>(
    _ json: [UInt8], as type: M.Type
  ) throws(OTLPJSONError) -> [UInt8] {
    var options = JSONDecodingOptions()
    // Strict on purpose: a field this tool does not know cannot be carried into the protobuf
    // evidence, and dropping it silently would make the bundle claim less than the input said.
    options.ignoreUnknownFields = false
    let message: M
    do {
      message = try M(jsonUTF8Bytes: json, options: options)
    } catch {
      throw OTLPJSONError(
        kind: .schema, column: nil,
        message: "not a valid \(M.protoMessageName): \(describe(error))")
    }
    do {
      return try message.serializedBytes(options: OTLPSerialization.deterministic)
    } catch {
      throw OTLPJSONError(
        kind: .schema, column: nil,
        message: "cannot serialize \(M.protoMessageName): \(error)")
    }
  }

  private static func describe(_ error: any Error) -> String {
    guard let jsonError = error as? JSONDecodingError else { return "\(error)" }
    switch jsonError {
    case .unknownField(let name): return "unknown field \"\(name)\""
    case .malformedNumber: return "malformed number"
    case .numberRange: return "number out of range for its field"
    case .malformedString: return "malformed string or base64 bytes"
    case .invalidUTF8: return "invalid UTF-8"
    case .unrecognizedEnumValue: return "unrecognized enum value"
    case .illegalNull: return "null where a value is required"
    case .leadingZero: return "number with a leading zero"
    case .truncated: return "truncated JSON"
    case .trailingGarbage: return "data after the JSON object"
    case .conflictingOneOf: return "two members of the same oneof (e.g. two AnyValue kinds)"
    case .messageDepthLimit: return "messages nested too deeply"
    case .schemaMismatch: return "a value of the wrong JSON type for its field"
    default: return "\(jsonError)"
    }
  }
}

/// Serialization settings shared by every path that produces a record's `request` bytes.
enum OTLPSerialization {
  /// OTLP has no map fields, so this changes nothing today; it keeps output byte-stable if one
  /// is ever added.
  static let deterministic: BinaryEncodingOptions = {
    var options = BinaryEncodingOptions()
    options.useDeterministicOrdering = true
    return options
  }()
}

// MARK: - The id-rewriting pass

/// Where a JSON value sits in the OTLP schema, as far as id fields are concerned.
private enum SchemaNode: Equatable {
  case request
  case resourceEntry(Signal)
  case scopeEntry(Signal)
  case span
  case spanLink
  case logRecord
  case metric
  case metricData
  case dataPoint
  case exemplar
  /// Anything that cannot contain an id field; only checked for well-formedness.
  case opaque
}

/// What is expected for the value of one object member.
private enum Expectation {
  case object(SchemaNode)
  case array(SchemaNode)
  case id(name: String, byteCount: Int)
  case opaque
}

private enum PathComponent {
  case key(String)
  case index(Int)
}

/// A validating single-pass JSON scanner that records where hex ids must be replaced.
private struct IDRewriter {
  let input: [UInt8]
  let expected: Signal?
  var index = 0
  var depth = 0
  var path: [PathComponent] = []
  var signal: Signal?
  var signalKey = ""
  var replacements: [(range: Range<Int>, text: [UInt8])] = []

  init(input: [UInt8], expected: Signal?) {
    self.input = input
    self.expected = expected
  }

  mutating func run() throws(OTLPJSONError) {
    skipWhitespace()
    guard index < input.count, input[index] == UInt8(ascii: "{") else {
      throw syntaxError("expected a JSON object ('{')")
    }
    try parseObject(.request)
    skipWhitespace()
    if index < input.count {
      throw syntaxError("unexpected data after the JSON object")
    }
  }

  /// The input with every id string replaced by its base64 form.
  func rewritten() -> [UInt8] {
    if replacements.isEmpty { return input }
    var out: [UInt8] = []
    out.reserveCapacity(input.count)
    var cursor = 0
    for replacement in replacements {
      out.append(contentsOf: input[cursor..<replacement.range.lowerBound])
      out.append(contentsOf: replacement.text)
      cursor = replacement.range.upperBound
    }
    out.append(contentsOf: input[cursor...])
    return out
  }

  // MARK: Schema

  private mutating func expectation(in node: SchemaNode, key: String) throws(OTLPJSONError)
    -> Expectation
  {
    switch node {
    case .request:
      let found: Signal?
      switch key {
      case "resourceSpans", "resource_spans": found = .traces
      case "resourceLogs", "resource_logs": found = .logs
      case "resourceMetrics", "resource_metrics": found = .metrics
      default: found = nil
      }
      guard let found else { return .opaque }
      if let signal, signal != found {
        throw OTLPJSONError(
          kind: .conflictingSignals, column: column,
          message: "both \"\(signalKey)\" and \"\(key)\" in one request")
      }
      if let expected, expected != found {
        throw OTLPJSONError(
          kind: .conflictingSignals, column: column,
          message: "\"\(key)\" in a request that must carry \(expected.rawValue)")
      }
      signal = found
      signalKey = key
      return .array(.resourceEntry(found))
    case .resourceEntry(let signal):
      switch (signal, key) {
      case (.traces, "scopeSpans"), (.traces, "scope_spans"),
        (.logs, "scopeLogs"), (.logs, "scope_logs"),
        (.metrics, "scopeMetrics"), (.metrics, "scope_metrics"):
        return .array(.scopeEntry(signal))
      default: return .opaque
      }
    case .scopeEntry(let signal):
      switch (signal, key) {
      case (.traces, "spans"): return .array(.span)
      case (.logs, "logRecords"), (.logs, "log_records"): return .array(.logRecord)
      case (.metrics, "metrics"): return .array(.metric)
      default: return .opaque
      }
    case .span:
      switch key {
      case "links": return .array(.spanLink)
      case "parentSpanId", "parent_span_id": return .id(name: key, byteCount: 8)
      default: return Self.traceOrSpanID(key)
      }
    case .spanLink, .logRecord, .exemplar:
      return Self.traceOrSpanID(key)
    case .metric:
      switch key {
      case "gauge", "sum", "histogram", "exponentialHistogram", "exponential_histogram", "summary":
        return .object(.metricData)
      default: return .opaque
      }
    case .metricData:
      switch key {
      case "dataPoints", "data_points": return .array(.dataPoint)
      default: return .opaque
      }
    case .dataPoint:
      return key == "exemplars" ? .array(.exemplar) : .opaque
    case .opaque:
      return .opaque
    }
  }

  private static func traceOrSpanID(_ key: String) -> Expectation {
    switch key {
    case "traceId", "trace_id": return .id(name: key, byteCount: 16)
    case "spanId", "span_id": return .id(name: key, byteCount: 8)
    default: return .opaque
    }
  }

  // MARK: Values

  private mutating func parseValue(_ expectation: Expectation) throws(OTLPJSONError) {
    skipWhitespace()
    guard index < input.count else { throw syntaxError("unexpected end of input") }
    let byte = input[index]
    switch expectation {
    case .object(let node) where byte == UInt8(ascii: "{"):
      try parseObject(node)
    case .array(let node) where byte == UInt8(ascii: "["):
      try parseArray(of: node)
    case .id(let name, let byteCount) where byte == UInt8(ascii: "\""):
      try parseID(name: name, byteCount: byteCount)
    default:
      // A value of another JSON type than the schema wants (null for a list, say) is left for
      // swift-protobuf to accept or reject with its own message.
      try parseAny()
    }
  }

  private mutating func parseAny() throws(OTLPJSONError) {
    guard index < input.count else { throw syntaxError("unexpected end of input") }
    switch input[index] {
    case UInt8(ascii: "{"): try parseObject(.opaque)
    case UInt8(ascii: "["): try parseArray(of: .opaque)
    case UInt8(ascii: "\""): _ = try scanString()
    case UInt8(ascii: "t"): try parseLiteral("true")
    case UInt8(ascii: "f"): try parseLiteral("false")
    case UInt8(ascii: "n"): try parseLiteral("null")
    case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): try parseNumber()
    default: throw syntaxError("unexpected character \(Self.show(input[index]))")
    }
  }

  private mutating func enter() throws(OTLPJSONError) {
    depth += 1
    if depth > OTLPJSON.maxNesting {
      throw syntaxError("JSON nested deeper than \(OTLPJSON.maxNesting) levels")
    }
  }

  private mutating func parseObject(_ node: SchemaNode) throws(OTLPJSONError) {
    try enter()
    index += 1  // "{"
    skipWhitespace()
    if index < input.count, input[index] == UInt8(ascii: "}") {
      index += 1
      depth -= 1
      return
    }
    while true {
      skipWhitespace()
      guard index < input.count, input[index] == UInt8(ascii: "\"") else {
        throw syntaxError("expected a member name (a string)")
      }
      let keyRange = try scanString()
      skipWhitespace()
      guard index < input.count, input[index] == UInt8(ascii: ":") else {
        throw syntaxError("expected ':' after a member name")
      }
      index += 1
      if node == .opaque {
        try parseValue(.opaque)
      } else {
        let key = try decodeString(keyRange)
        let expectation = try expectation(in: node, key: key)
        path.append(.key(key))
        try parseValue(expectation)
        path.removeLast()
      }
      skipWhitespace()
      guard index < input.count else { throw syntaxError("unexpected end of input in an object") }
      if input[index] == UInt8(ascii: ",") {
        index += 1
        continue
      }
      if input[index] == UInt8(ascii: "}") {
        index += 1
        depth -= 1
        return
      }
      throw syntaxError("expected ',' or '}' in an object")
    }
  }

  private mutating func parseArray(of node: SchemaNode) throws(OTLPJSONError) {
    try enter()
    index += 1  // "["
    skipWhitespace()
    if index < input.count, input[index] == UInt8(ascii: "]") {
      index += 1
      depth -= 1
      return
    }
    var element = 0
    while true {
      if node == .opaque {
        try parseValue(.opaque)
      } else {
        path.append(.index(element))
        try parseValue(.object(node))
        path.removeLast()
      }
      element += 1
      skipWhitespace()
      guard index < input.count else { throw syntaxError("unexpected end of input in an array") }
      if input[index] == UInt8(ascii: ",") {
        index += 1
        continue
      }
      if input[index] == UInt8(ascii: "]") {
        index += 1
        depth -= 1
        return
      }
      throw syntaxError("expected ',' or ']' in an array")
    }
  }

  private mutating func parseID(name: String, byteCount: Int) throws(OTLPJSONError) {
    let start = index
    let contents = try scanString()
    let text = try decodeString(contents)
    guard let bytes = Hex.decode(text, acceptingUppercase: true), bytes.isEmpty || bytes.count == byteCount else {
      let shown = text.count > 80 ? String(text.prefix(80)) + "..." : text
      throw OTLPJSONError(
        kind: .invalidID, column: start + 1,
        message:
          "\(pathDescription()): \"\(shown)\" is not a \(byteCount)-byte hex id "
          + "(\(byteCount * 2) hex digits, or empty)")
    }
    var token: [UInt8] = [UInt8(ascii: "\"")]
    token.append(contentsOf: Self.base64(bytes))
    token.append(UInt8(ascii: "\""))
    replacements.append((start..<index, token))
  }

  private mutating func parseLiteral(_ word: String) throws(OTLPJSONError) {
    let expected = Array(word.utf8)
    let end = index + expected.count
    guard end <= input.count, input[index..<end].elementsEqual(expected) else {
      throw syntaxError("invalid literal (expected \(word))")
    }
    index = end
  }

  /// Checks the JSON number grammar; the text itself is passed through unchanged.
  private mutating func parseNumber() throws(OTLPJSONError) {
    if input[index] == UInt8(ascii: "-") { index += 1 }
    guard index < input.count, Self.isDigit(input[index]) else {
      throw syntaxError("malformed number")
    }
    if input[index] == UInt8(ascii: "0") {
      index += 1
    } else {
      skipDigits()
    }
    if index < input.count, input[index] == UInt8(ascii: ".") {
      index += 1
      guard index < input.count, Self.isDigit(input[index]) else {
        throw syntaxError("malformed number (no digit after '.')")
      }
      skipDigits()
    }
    if index < input.count, input[index] == UInt8(ascii: "e") || input[index] == UInt8(ascii: "E") {
      index += 1
      if index < input.count, input[index] == UInt8(ascii: "+") || input[index] == UInt8(ascii: "-") {
        index += 1
      }
      guard index < input.count, Self.isDigit(input[index]) else {
        throw syntaxError("malformed number (no digit in the exponent)")
      }
      skipDigits()
    }
  }

  private mutating func skipDigits() {
    while index < input.count, Self.isDigit(input[index]) { index += 1 }
  }

  /// Scans a string token starting at its opening quote; returns the range between the quotes.
  private mutating func scanString() throws(OTLPJSONError) -> Range<Int> {
    index += 1  // opening quote
    let start = index
    while index < input.count {
      let byte = input[index]
      switch byte {
      case UInt8(ascii: "\""):
        let range = start..<index
        index += 1
        return range
      case UInt8(ascii: "\\"):
        index += 1
        guard index < input.count else { break }
        switch input[index] {
        case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"), UInt8(ascii: "b"),
          UInt8(ascii: "f"), UInt8(ascii: "n"), UInt8(ascii: "r"), UInt8(ascii: "t"):
          index += 1
        case UInt8(ascii: "u"):
          guard index + 4 < input.count,
            input[(index + 1)...(index + 4)].allSatisfy({ Hex.value(ofDigit: $0, acceptingUppercase: true) != nil })
          else {
            throw syntaxError("malformed \\u escape in a string")
          }
          index += 5
        default:
          throw syntaxError("invalid escape \\\(Self.show(input[index])) in a string")
        }
      case 0..<0x20:
        throw syntaxError("control character \(Self.show(byte)) inside a string")
      default:
        index += 1
      }
    }
    throw syntaxError("unterminated string")
  }

  /// The text of a scanned string, escapes resolved (the common no-escape case is a plain copy).
  private func decodeString(_ range: Range<Int>) throws(OTLPJSONError) -> String {
    let raw = input[range]
    guard raw.contains(UInt8(ascii: "\\")) else { return String(decoding: raw, as: UTF8.self) }
    var scalars = String.UnicodeScalarView()
    var utf8Run: [UInt8] = []
    var i = range.lowerBound
    func flush() {
      scalars.append(contentsOf: String(decoding: utf8Run, as: UTF8.self).unicodeScalars)
      utf8Run.removeAll(keepingCapacity: true)
    }
    while i < range.upperBound {
      let byte = input[i]
      guard byte == UInt8(ascii: "\\") else {
        utf8Run.append(byte)
        i += 1
        continue
      }
      flush()
      let escaped = input[i + 1]
      i += 2
      switch escaped {
      case UInt8(ascii: "b"): scalars.append("\u{8}")
      case UInt8(ascii: "f"): scalars.append("\u{C}")
      case UInt8(ascii: "n"): scalars.append("\n")
      case UInt8(ascii: "r"): scalars.append("\r")
      case UInt8(ascii: "t"): scalars.append("\t")
      case UInt8(ascii: "u"):
        var unit = hex4(at: i)
        i += 4
        if (0xD800..<0xDC00).contains(unit), i + 5 < range.upperBound,
          input[i] == UInt8(ascii: "\\"), input[i + 1] == UInt8(ascii: "u")
        {
          let low = hex4(at: i + 2)
          if (0xDC00..<0xE000).contains(low) {
            unit = 0x10000 + ((unit - 0xD800) << 10) + (low - 0xDC00)
            i += 6
          }
        }
        guard let scalar = Unicode.Scalar(unit) else {
          throw OTLPJSONError(
            kind: .syntax, column: i + 1, message: "\\u escape of an unpaired surrogate")
        }
        scalars.append(scalar)
      default: scalars.append(Unicode.Scalar(escaped))  // \" \\ \/
      }
    }
    flush()
    return String(scalars)
  }

  /// The value of four hex digits that `scanString` already checked.
  private func hex4(at start: Int) -> UInt32 {
    var value: UInt32 = 0
    for offset in 0..<4 {
      value = value << 4 | UInt32(Hex.value(ofDigit: input[start + offset], acceptingUppercase: true) ?? 0)
    }
    return value
  }

  private mutating func skipWhitespace() {
    while index < input.count {
      switch input[index] {
      case UInt8(ascii: " "), UInt8(ascii: "\t"), UInt8(ascii: "\n"), UInt8(ascii: "\r"):
        index += 1
      default:
        return
      }
    }
  }

  // MARK: Helpers

  private var column: Int { index + 1 }

  private func syntaxError(_ message: String) -> OTLPJSONError {
    OTLPJSONError(kind: .syntax, column: column, message: "malformed JSON: \(message)")
  }

  private func pathDescription() -> String {
    var out = ""
    for component in path {
      switch component {
      case .key(let key): out += out.isEmpty ? key : "." + key
      case .index(let element): out += "[\(element)]"
      }
    }
    return out
  }

  private static func isDigit(_ byte: UInt8) -> Bool {
    byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9")
  }

  private static let base64Alphabet = Array(
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)

  /// Standard base64 with padding, the form swift-protobuf's JSON decoder reads for `bytes`.
  private static func base64(_ bytes: [UInt8]) -> [UInt8] {
    var out: [UInt8] = []
    out.reserveCapacity((bytes.count + 2) / 3 * 4)
    var i = 0
    while i < bytes.count {
      let b0 = UInt32(bytes[i])
      let b1 = i + 1 < bytes.count ? UInt32(bytes[i + 1]) : 0
      let b2 = i + 2 < bytes.count ? UInt32(bytes[i + 2]) : 0
      let group = b0 << 16 | b1 << 8 | b2
      out.append(base64Alphabet[Int(group >> 18 & 0x3F)])
      out.append(base64Alphabet[Int(group >> 12 & 0x3F)])
      out.append(i + 1 < bytes.count ? base64Alphabet[Int(group >> 6 & 0x3F)] : UInt8(ascii: "="))
      out.append(i + 2 < bytes.count ? base64Alphabet[Int(group & 0x3F)] : UInt8(ascii: "="))
      i += 3
    }
    return out
  }

  private static func show(_ byte: UInt8) -> String {
    if byte >= 0x21 && byte < 0x7F { return "'\(Character(Unicode.Scalar(byte)))'" }
    return "0x" + String(byte, radix: 16, uppercase: false)
  }
}
