import Foundation
import Manifest
import OTLPProto
import SwiftProtobuf
import Testing
import WireTestSupport

@testable import Capture
@testable import Ingest

private typealias KeyValue = Opentelemetry_Proto_Common_V1_KeyValue
private typealias AnyValue = Opentelemetry_Proto_Common_V1_AnyValue
private typealias TraceRequest = Opentelemetry_Proto_Collector_Trace_V1_ExportTraceServiceRequest
private typealias LogsRequest = Opentelemetry_Proto_Collector_Logs_V1_ExportLogsServiceRequest
private typealias MetricsRequest = Opentelemetry_Proto_Collector_Metrics_V1_ExportMetricsServiceRequest

/// One secret as an attacker would send it, and what must not be found after redaction.
private struct Secret: CustomStringConvertible, Sendable {
  var planted: String
  /// Text that must not survive (case-insensitively): the planted form and what it decodes to.
  var needles: [String]

  var description: String { planted }

  static let all: [Secret] = [
    Secret(planted: "alice.smith@example.com", needles: ["alice.smith@example.com", "alice.smith"]),
    Secret(planted: "IVAN.PETROV@EXAMPLE.COM", needles: ["ivan.petrov@example.com"]),
    Secret(planted: "ivan%40example.com", needles: ["ivan%40example.com", "ivan@example.com"]),
    Secret(planted: "ivan%2540example.com", needles: ["ivan%2540example.com", "ivan%40example.com", "ivan@example"]),
    Secret(planted: "mallory@exämple.com", needles: ["mallory@exämple.com", "exämple"]),
    Secret(planted: "иван@пример.рф", needles: ["иван@пример.рф", "иван"]),
    Secret(planted: "josé.garcía@correo.example.es", needles: ["josé.garcía", "correo.example.es"]),
    Secret(planted: "eve＠example.net", needles: ["eve＠example.net", "example.net"]),
    Secret(planted: "4111 1111 1111 1111", needles: ["4111 1111 1111 1111", "4111111111111111"]),
    Secret(planted: "4111.1111.1111.1111", needles: ["4111.1111.1111.1111", "4111111111111111"]),
    Secret(planted: "4111  1111  1111  1111", needles: ["4111  1111  1111  1111", "4111111111111111"]),
    Secret(planted: "4111-1111-1111-1111", needles: ["4111-1111-1111-1111", "4111111111111111"]),
    Secret(planted: "4111111111111111", needles: ["4111111111111111"]),
    Secret(planted: "4111%201111%201111%201111", needles: ["4111%201111", "4111 1111 1111 1111"]),
    Secret(planted: "5500-0000-0000-0004", needles: ["5500-0000-0000-0004", "5500000000000004"]),
    Secret(planted: "Bearer abcDEF0123456789xyz", needles: ["abcDEF0123456789xyz"]),
    Secret(planted: "BEARER ghp_0123456789abcdefABCDEF", needles: ["ghp_0123456789abcdefABCDEF"]),
    Secret(planted: "Authorization: Basic dXNlcjpwYXNzd29yZA==", needles: ["dXNlcjpwYXNzd29yZA"]),
    Secret(planted: "Bearer%20tok3nTOK3Ntok3nTOK3N", needles: ["tok3nTOK3Ntok3nTOK3N"]),
    Secret(
      planted:
        "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
      needles: ["eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9", "eyJzdWIiOiIxMjM0NTY3ODkwIn0", "dozjgNryP4J3jVmNHl0w5N"]),
  ]

  /// Whether any needle is in `text`, ignoring case.
  func survives(in text: String) -> [String] {
    let haystack = text.lowercased()
    return needles.filter { haystack.contains($0.lowercased()) }
  }
}

extension KeyValue {
  fileprivate init(_ key: String, _ value: AnyValue) {
    self.init()
    self.key = key
    self.value = value
  }
}

extension AnyValue {
  fileprivate static func string(_ text: String) -> AnyValue {
    var value = AnyValue()
    value.stringValue = text
    return value
  }

  fileprivate static func bytes(_ text: String) -> AnyValue {
    var value = AnyValue()
    value.bytesValue = Data(text.utf8)
    return value
  }

  fileprivate static func int(_ number: Int64) -> AnyValue {
    var value = AnyValue()
    value.intValue = number
    return value
  }

  fileprivate static func double(_ number: Double) -> AnyValue {
    var value = AnyValue()
    value.doubleValue = number
    return value
  }

  fileprivate static func array(_ values: [AnyValue]) -> AnyValue {
    var value = AnyValue()
    value.arrayValue.values = values
    return value
  }

  fileprivate static func kvlist(_ values: [KeyValue]) -> AnyValue {
    var value = AnyValue()
    value.kvlistValue.values = values
    return value
  }
}

/// Requests with `text` in every field of the README's table that holds text or bytes.
private enum Everywhere {
  /// An attribute list holding `text` as a key (top level and nested), as a string, inside an
  /// array, inside a kvlist (key and value), as bytes, and — when `text` is a number — as an
  /// integer and a double.
  static func attributes(_ text: String) -> [KeyValue] {
    var list: [KeyValue] = [
      KeyValue("note", .string("before \(text) after")),
      KeyValue("http.\(text)", .string("key")),
      KeyValue("message", .array([.string(text), .array([.string("x \(text)")])])),
      KeyValue("http.body", .kvlist([KeyValue("http.\(text)", .string(text)), KeyValue("note", .string(text))])),
      KeyValue("http.raw", .bytes("raw \(text) raw")),
    ]
    if let number = Int64(text) {
      list.append(KeyValue("http.number", .int(number)))
      list.append(KeyValue("http.double", .double(Double(number))))
    }
    return list
  }

  static func resource(_ text: String) -> Opentelemetry_Proto_Resource_V1_Resource {
    var resource = Opentelemetry_Proto_Resource_V1_Resource()
    resource.attributes = [KeyValue("service.name", .string("svc"))] + attributes(text)
    var entity = Opentelemetry_Proto_Common_V1_EntityRef()
    entity.schemaURL = "https://example.com/\(text)"
    entity.type = "service \(text)"
    entity.idKeys = ["service.\(text)"]
    entity.descriptionKeys = ["note.\(text)"]
    resource.entityRefs = [entity]
    return resource
  }

  static func scope(_ text: String) -> Opentelemetry_Proto_Common_V1_InstrumentationScope {
    var scope = Opentelemetry_Proto_Common_V1_InstrumentationScope()
    scope.name = "lib \(text)"
    scope.version = "1.0+\(text)"
    scope.attributes = attributes(text)
    return scope
  }

  static func traces(_ text: String) throws -> [UInt8] {
    var span = Opentelemetry_Proto_Trace_V1_Span()
    span.traceID = Data(repeating: 0x11, count: 16)
    span.spanID = Data(repeating: 0x22, count: 8)
    span.traceState = "vendor=\(text)"
    span.name = "GET /users/\(text)"
    span.startTimeUnixNano = 1_700_000_000_000_000_000
    span.endTimeUnixNano = 1_700_000_000_500_000_000
    span.attributes = attributes(text)
    var event = Opentelemetry_Proto_Trace_V1_Span.Event()
    event.name = "event \(text)"
    event.timeUnixNano = 1_700_000_000_100_000_000
    event.attributes = attributes(text)
    span.events = [event]
    var link = Opentelemetry_Proto_Trace_V1_Span.Link()
    link.traceID = Data(repeating: 0x33, count: 16)
    link.spanID = Data(repeating: 0x44, count: 8)
    link.traceState = "vendor=\(text)"
    link.attributes = attributes(text)
    span.links = [link]
    span.status.code = .error
    span.status.message = "failed for \(text)"
    var scopeSpans = Opentelemetry_Proto_Trace_V1_ScopeSpans()
    scopeSpans.scope = scope(text)
    scopeSpans.schemaURL = "https://example.com/scope/\(text)"
    scopeSpans.spans = [span]
    var resourceSpans = Opentelemetry_Proto_Trace_V1_ResourceSpans()
    resourceSpans.resource = resource(text)
    resourceSpans.schemaURL = "https://example.com/resource/\(text)"
    resourceSpans.scopeSpans = [scopeSpans]
    var request = TraceRequest()
    request.resourceSpans = [resourceSpans]
    return try request.serializedBytes()
  }

  static func logs(_ text: String) throws -> [UInt8] {
    var bodies: [AnyValue] = [
      .string("login failed: \(text)"),
      .kvlist([KeyValue("http.\(text)", .string(text)), KeyValue("message", .kvlist(attributes(text)))]),
      .array([.string(text), .bytes(text)]),
      .bytes("blob \(text)"),
    ]
    if let number = Int64(text) { bodies += [.int(number), .double(Double(number))] }
    let records = bodies.enumerated().map { index, body in
      var record = Opentelemetry_Proto_Logs_V1_LogRecord()
      record.timeUnixNano = 1_700_000_000_000_000_000 + UInt64(index)
      record.severityText = "WARN \(text)"
      record.eventName = "event.\(text)"
      record.body = body
      record.attributes = attributes(text)
      return record
    }
    var scopeLogs = Opentelemetry_Proto_Logs_V1_ScopeLogs()
    scopeLogs.scope = scope(text)
    scopeLogs.schemaURL = "https://example.com/\(text)"
    scopeLogs.logRecords = records
    var resourceLogs = Opentelemetry_Proto_Logs_V1_ResourceLogs()
    resourceLogs.resource = resource(text)
    resourceLogs.schemaURL = "https://example.com/\(text)"
    resourceLogs.scopeLogs = [scopeLogs]
    var request = LogsRequest()
    request.resourceLogs = [resourceLogs]
    return try request.serializedBytes()
  }

  static func metrics(_ text: String) throws -> [UInt8] {
    var exemplar = Opentelemetry_Proto_Metrics_V1_Exemplar()
    exemplar.timeUnixNano = 1_700_000_000_000_000_000
    exemplar.asDouble = 1
    exemplar.filteredAttributes = attributes(text)
    var number = Opentelemetry_Proto_Metrics_V1_NumberDataPoint()
    number.timeUnixNano = 1_700_000_000_000_000_000
    number.asInt = 3
    number.attributes = attributes(text)
    number.exemplars = [exemplar]
    func metric(_ name: String) -> Opentelemetry_Proto_Metrics_V1_Metric {
      var metric = Opentelemetry_Proto_Metrics_V1_Metric()
      metric.name = "\(name).\(text)"
      metric.description_p = "about \(text)"
      metric.unit = "{\(text)}"
      metric.metadata = attributes(text)
      return metric
    }
    var gauge = metric("gauge")
    gauge.gauge.dataPoints = [number]
    var sum = metric("sum")
    sum.sum.dataPoints = [number]
    var histogramPoint = Opentelemetry_Proto_Metrics_V1_HistogramDataPoint()
    histogramPoint.timeUnixNano = 1_700_000_000_000_000_000
    histogramPoint.attributes = attributes(text)
    histogramPoint.exemplars = [exemplar]
    var histogram = metric("histogram")
    histogram.histogram.dataPoints = [histogramPoint]
    var exponentialPoint = Opentelemetry_Proto_Metrics_V1_ExponentialHistogramDataPoint()
    exponentialPoint.timeUnixNano = 1_700_000_000_000_000_000
    exponentialPoint.attributes = attributes(text)
    exponentialPoint.exemplars = [exemplar]
    var exponential = metric("exponential")
    exponential.exponentialHistogram.dataPoints = [exponentialPoint]
    var summaryPoint = Opentelemetry_Proto_Metrics_V1_SummaryDataPoint()
    summaryPoint.timeUnixNano = 1_700_000_000_000_000_000
    summaryPoint.attributes = attributes(text)
    var summary = metric("summary")
    summary.summary.dataPoints = [summaryPoint]
    var scopeMetrics = Opentelemetry_Proto_Metrics_V1_ScopeMetrics()
    scopeMetrics.scope = scope(text)
    scopeMetrics.schemaURL = "https://example.com/\(text)"
    scopeMetrics.metrics = [gauge, sum, histogram, exponential, summary]
    var resourceMetrics = Opentelemetry_Proto_Metrics_V1_ResourceMetrics()
    resourceMetrics.resource = resource(text)
    resourceMetrics.schemaURL = "https://example.com/\(text)"
    resourceMetrics.scopeMetrics = [scopeMetrics]
    var request = MetricsRequest()
    request.resourceMetrics = [resourceMetrics]
    return try request.serializedBytes()
  }

  static func request(_ signal: Signal, _ text: String) throws -> [UInt8] {
    switch signal {
    case .traces: return try traces(text)
    case .logs: return try logs(text)
    case .metrics: return try metrics(text)
    }
  }
}

/// Everything a reader of the output could see: the raw bytes as text and the decoded request
/// as JSON (integers as decimal text).
private func visibleText(_ output: [UInt8], _ signal: Signal) throws -> String {
  let json: String
  switch signal {
  case .traces: json = try TraceRequest(serializedBytes: output).jsonString()
  case .logs: json = try LogsRequest(serializedBytes: output).jsonString()
  case .metrics: json = try MetricsRequest(serializedBytes: output).jsonString()
  }
  return String(decoding: output, as: UTF8.self) + "\n" + json
}

private final class PolicyFiles {
  let directory: URL

  init() throws {
    directory = FileManager.default.temporaryDirectory.appendingPathComponent("coverage-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
  }

  deinit { try? FileManager.default.removeItem(at: directory) }

  func policy(_ yaml: String) throws -> RedactionPolicy {
    let url = directory.appendingPathComponent("policy.yaml")
    try Data(yaml.utf8).write(to: url)
    return try RedactionPolicy(contentsOfFile: url.path)
  }

  /// The commented example policy of the repository, with a key file beside it.
  func example() throws -> RedactionPolicy {
    let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
      .deletingLastPathComponent()
    let key = directory.appendingPathComponent("redaction.key")
    try Data("0123456789abcdef0123456789abcdef".utf8).write(to: key)
    chmod(key.path, 0o600)
    let url = directory.appendingPathComponent("redaction.example.yaml")
    try Data(contentsOf: repository.appendingPathComponent("config/redaction.example.yaml")).write(to: url)
    return try RedactionPolicy(contentsOfFile: url.path)
  }
}

private let builtinsOnly = "id: builtins\nbuiltin: [email, card-number, bearer-token]\n"

@Suite struct RedactionCoverageTests {
  @Test(arguments: Secret.all)
  fileprivate func noSecretSurvivesInAnyFieldOfAnySignal(secret: Secret) throws {
    let files = try PolicyFiles()
    for policy in [try files.policy(builtinsOnly), try files.example()] {
      for signal in Signal.allCases {
        let input = try Everywhere.request(signal, secret.planted)
        #expect(!secret.survives(in: try visibleText(input, signal)).isEmpty, "the planted request holds it")
        let outcome = try Redactor(policy: policy).redaction(of: input, signal: signal)
        let survivors = secret.survives(in: try visibleText(outcome.request, signal))
        #expect(survivors.isEmpty, "\(signal) \(policy.reference.id): \(survivors)")
        #expect(outcome.unknownFieldsDropped == 0)
        // Still a request the journal and the verifier take.
        #expect(throws: Never.self) {
          _ = try OTLPRequestDecoder.check(body: outcome.request, signal: signal, encoding: .protobuf)
        }
      }
    }
  }

  @Test func masksReachEveryTextFieldWithBuiltinsOnly() throws {
    let policy = try PolicyFiles().policy(builtinsOnly)
    let email = "alice@example.com"
    let output = try Redactor(policy: policy).redact(try Everywhere.traces(email), signal: .traces)
    let request = try TraceRequest(serializedBytes: output)
    let resourceSpans = request.resourceSpans[0]
    let span = resourceSpans.scopeSpans[0].spans[0]
    // The local part of an address may hold `/`, `=`, `+`, `.`, `{`: a mask reaches back over them.
    #expect(resourceSpans.schemaURL == "https:[REDACTED:email]")
    #expect(resourceSpans.scopeSpans[0].schemaURL == "https:[REDACTED:email]")
    #expect(resourceSpans.scopeSpans[0].scope.name == "lib [REDACTED:email]")
    #expect(resourceSpans.scopeSpans[0].scope.version == "[REDACTED:email]")
    #expect(resourceSpans.resource.entityRefs[0].idKeys == ["[REDACTED:email]"])
    #expect(span.name == "GET [REDACTED:email]")
    #expect(span.traceState == "[REDACTED:email]")
    #expect(span.links[0].traceState == "[REDACTED:email]")
    #expect(span.events[0].name == "event [REDACTED:email]")
    #expect(span.status.message == "failed for [REDACTED:email]")
    #expect(span.attributes.map(\.key) == ["note", "[REDACTED:email]", "message", "http.body", "http.raw"])
    #expect(span.attributes[3].value.kvlistValue.values.map(\.key) == ["[REDACTED:email]", "note"])
    #expect(span.attributes[4].value.bytesValue == Data("raw [REDACTED:email] raw".utf8))
    // Ids and times are copied as they are.
    #expect(span.traceID == Data(repeating: 0x11, count: 16))
    #expect(span.endTimeUnixNano == 1_700_000_000_500_000_000)
  }

  @Test func logAndMetricTextFieldsAreMasked() throws {
    let policy = try PolicyFiles().policy(builtinsOnly)
    let logs = try LogsRequest(
      serializedBytes: try Redactor(policy: policy).redact(try Everywhere.logs("a@b.example"), signal: .logs))
    let record = logs.resourceLogs[0].scopeLogs[0].logRecords[0]
    #expect(record.severityText == "WARN [REDACTED:email]")
    #expect(record.eventName == "[REDACTED:email]")
    #expect(record.body.stringValue == "login failed: [REDACTED:email]")
    let metrics = try MetricsRequest(
      serializedBytes: try Redactor(policy: policy).redact(try Everywhere.metrics("a@b.example"), signal: .metrics))
    let metric = metrics.resourceMetrics[0].scopeMetrics[0].metrics[0]
    #expect(metric.name == "[REDACTED:email]")
    #expect(metric.description_p == "about [REDACTED:email]")
    #expect(metric.unit == "[REDACTED:email]}")
    #expect(metric.gauge.dataPoints[0].asInt == 3)
  }

  @Test func aCardNumberSentAsAnIntegerBecomesAMaskedString() throws {
    let policy = try PolicyFiles().policy(builtinsOnly)
    var span = Opentelemetry_Proto_Trace_V1_Span()
    span.attributes = [
      KeyValue("card", .int(4_111_111_111_111_111)), KeyValue("count", .int(4_111_111_111_111_112)),
      KeyValue("amount", .double(4_111_111_111_111_111)), KeyValue("ratio", .double(0.5)),
    ]
    let output = try Redactor(policy: policy).redact(try traceRequest(span), signal: .traces)
    let values = try TraceRequest(serializedBytes: output).resourceSpans[0].scopeSpans[0].spans[0].attributes.map(
      \.value)
    #expect(values[0].stringValue == "[REDACTED:card-number]")
    #expect(values[1].intValue == 4_111_111_111_111_112, "Luhn fails: a number, not a card")
    #expect(values[2].stringValue == "[REDACTED:card-number]")
    #expect(values[3].doubleValue == 0.5)
  }

  @Test(arguments: [
    ("ivan%40example.com", "[REDACTED:email]"),
    ("mail=ivan%40example.com&x=1", "[REDACTED:email]&x=1"),
    ("MALLORY@EXÄMPLE.COM", "[REDACTED:email]"),
    ("to: иван@пример.рф.", "to: [REDACTED:email]."),
    ("xn: user@example.xn--p1ai", "xn: [REDACTED:email]"),
    ("eve＠example.net", "[REDACTED:email]"),
    ("4111.1111.1111.1111", "[REDACTED:card-number]"),
    ("4111  1111  1111  1111", "[REDACTED:card-number]"),
    ("4111--1111--1111--1111", "[REDACTED:card-number]"),
    ("pay 4111111111111111!", "pay [REDACTED:card-number]!"),
    ("version 1.2.3 build 20240101", "version 1.2.3 build 20240101"),
    ("q=Bearer%20abcdefgh12345678", "q=[REDACTED:bearer-token]"),
    ("u a%2540b.example.com", "u [REDACTED:email]"),
    ("100%25 fine", "100%25 fine"),
  ])
  func masksSurviveEncodings(input: String, expected: String) throws {
    let policy = try PolicyFiles().policy(builtinsOnly)
    #expect((policy.mask(input) ?? input) == expected)
  }

  @Test func allowAppliesInsideKvlistsAndMaskedKeysStayUnique() throws {
    let policy = try PolicyFiles().policy(
      "id: allow\nattributes:\n  allow: [http.*, note]\nbuiltin: [email]\n")
    var span = Opentelemetry_Proto_Trace_V1_Span()
    span.attributes = [
      KeyValue("http.a@example.com", .string("1")),
      KeyValue("http.b@example.com", .string("2")),
      KeyValue("http.[REDACTED:email]x", .string("3")),
      KeyValue(
        "note",
        .kvlist([
          KeyValue("secret", .string("s3cr3t")), KeyValue("http.ok", .string("kept")),
          KeyValue("note", .kvlist([KeyValue("deeper", .string("gone")), KeyValue("note", .string("kept too"))])),
        ])),
    ]
    span.droppedAttributesCount = 1
    let output = try Redactor(policy: policy).redact(try traceRequest(span), signal: .traces)
    let redacted = try TraceRequest(serializedBytes: output).resourceSpans[0].scopeSpans[0].spans[0]
    #expect(redacted.attributes.map(\.key) == ["[REDACTED:email]", "http.[REDACTED:email]x", "note"])
    #expect(redacted.droppedAttributesCount == 2)
    let nested = redacted.attributes[2].value.kvlistValue.values
    #expect(nested.map(\.key) == ["http.ok", "note"])
    #expect(nested[1].value.kvlistValue.values.map(\.key) == ["note"])
    #expect(!String(decoding: output, as: UTF8.self).contains("s3cr3t"))
  }

  @Test func unknownFieldsAreDroppedAtEveryDepthWhenAPolicyIsActive() throws {
    let policy = try PolicyFiles().policy("id: only-unknown-fields\n")
    let marker = Array("future-field".utf8)
    let unknown = Wire.field(99, bytes: marker)
    let anyValue = Wire.field(1, bytes: Array("v".utf8)) + unknown
    let keyValue = Wire.field(1, bytes: Array("k".utf8)) + Wire.field(2, bytes: anyValue) + unknown
    // A known field with a wire type it does not have (name as a varint) is unknown to decoders.
    let wrongType: [UInt8] = [5 << 3 | 0, 7]
    let span =
      Wire.field(1, bytes: [UInt8](repeating: 1, count: 16)) + Wire.field(2, bytes: [UInt8](repeating: 2, count: 8))
      + Wire.field(5, bytes: Array("span".utf8)) + Wire.fixed64(7, 1) + Wire.fixed64(8, 2)
      + Wire.field(9, bytes: keyValue) + unknown + wrongType
      // An unknown group, as old encoders could write.
      + Wire.varint(98 << 3 | 3) + [0x08, 0x01] + Wire.varint(98 << 3 | 4)
    let scopeSpans = Wire.field(2, bytes: span) + unknown
    let resource = Wire.field(1, bytes: keyValue) + unknown
    let request = Wire.field(1, bytes: Wire.field(1, bytes: resource) + Wire.field(2, bytes: scopeSpans)) + unknown
    // The request is valid OTLP: admission takes it as it is.
    #expect(try OTLPRequestDecoder.check(body: request, signal: .traces, encoding: .protobuf).request == request)

    let outcome = try Redactor(policy: policy).redaction(of: request, signal: .traces)
    #expect(outcome.unknownFieldsDropped == 10)
    #expect(!Planted(outcome.request).contains(marker))
    let decoded = try TraceRequest(serializedBytes: outcome.request)
    #expect(decoded.unknownFields.data.isEmpty)
    let decodedSpan = decoded.resourceSpans[0].scopeSpans[0].spans[0]
    #expect(decodedSpan.unknownFields.data.isEmpty)
    #expect(decodedSpan.name == "span")
    #expect(decodedSpan.attributes[0].unknownFields.data.isEmpty)
    #expect(decodedSpan.attributes[0].value.unknownFields.data.isEmpty)
    #expect(decodedSpan.attributes[0].value.stringValue == "v")
    #expect(decoded.resourceSpans[0].resource.attributes[0].unknownFields.data.isEmpty)
    // Nothing left to drop the second time.
    #expect(try Redactor(policy: policy).redaction(of: outcome.request, signal: .traces).changed == false)
  }

  @Test func unknownFieldsInsideAHashedAttributeAreCountedAndKeptOutOfTheHash() throws {
    let files = try PolicyFiles()
    let key = files.directory.appendingPathComponent("hash.key")
    try Data("0123456789abcdef0123456789abcdef".utf8).write(to: key)
    chmod(key.path, 0o600)
    let policy = try files.policy("id: hash\nhash:\n  keys: [user.id]\n  key-file: hash.key\n")
    let marker = Array("future-field".utf8)
    let unknown = Wire.field(99, bytes: marker)
    /// `user.id` holding a kvlist {k: [v]}, with `unknown` (when given) on every message of it.
    func request(_ extra: [UInt8]) -> [UInt8] {
      let string = Wire.field(1, bytes: Array("v".utf8)) + extra
      let array = Wire.field(1, bytes: string) + extra
      let arrayValue = Wire.field(5, bytes: array) + extra
      let nested = Wire.field(1, bytes: Array("k".utf8)) + Wire.field(2, bytes: arrayValue) + extra
      let kvlist = Wire.field(1, bytes: nested) + extra
      let value = Wire.field(6, bytes: kvlist) + extra
      let attribute = Wire.field(1, bytes: Array("user.id".utf8)) + Wire.field(2, bytes: value) + extra
      let span =
        Wire.field(1, bytes: [UInt8](repeating: 1, count: 16)) + Wire.field(2, bytes: [UInt8](repeating: 2, count: 8))
        + Wire.fixed64(7, 1) + Wire.fixed64(8, 2) + Wire.field(9, bytes: attribute)
      return Wire.field(1, bytes: Wire.field(2, bytes: Wire.field(2, bytes: span)))
    }
    let clean = try Redactor(policy: policy).redaction(of: request([]), signal: .traces)
    #expect(clean.unknownFieldsDropped == 0)
    #expect(clean.valuesRewritten == 1)

    let planted = request(unknown)
    #expect(try OTLPRequestDecoder.check(body: planted, signal: .traces, encoding: .protobuf).request == planted)
    let outcome = try Redactor(policy: policy).redaction(of: planted, signal: .traces)
    // The attribute, its AnyValue, the kvlist, its entry, the entry's AnyValue, the array and
    // the string AnyValue inside it: seven messages with one unknown field each.
    #expect(outcome.unknownFieldsDropped == 7)
    #expect(!Planted(outcome.request).contains(marker))
    #expect(outcome.request == clean.request, "unknown fields must not change the hash of a value")
  }

  @Test func droppedAttributesAddToTheHoldersCount() throws {
    let policy = try PolicyFiles().policy("id: block\nattributes:\n  block: [secret]\n")
    var record = Opentelemetry_Proto_Logs_V1_LogRecord()
    record.attributes = [KeyValue("secret", .string("x")), KeyValue("level", .string("info"))]
    record.droppedAttributesCount = 4
    var request = LogsRequest()
    request.resourceLogs = [Opentelemetry_Proto_Logs_V1_ResourceLogs()]
    request.resourceLogs[0].scopeLogs = [Opentelemetry_Proto_Logs_V1_ScopeLogs()]
    request.resourceLogs[0].scopeLogs[0].logRecords = [record]
    let outcome = try Redactor(policy: policy).redaction(of: try request.serializedBytes(), signal: .logs)
    #expect(outcome.attributesDropped == 1)
    let redacted = try LogsRequest(serializedBytes: outcome.request).resourceLogs[0].scopeLogs[0].logRecords[0]
    #expect(redacted.attributes.map(\.key) == ["level"])
    #expect(redacted.droppedAttributesCount == 5)
  }

  @Test func ownMaskPrefiltersNeverHideAMatch() throws {
    let patterns = [
      #"\b[A-Z]{2}[0-9]{2}(?: ?[A-Z0-9]{4}){3,7}(?: ?[A-Z0-9]{1,3})?\b"#, #"\bsk_(?:live|test)_[A-Za-z0-9]{16,}"#,
      #"TICKET-[0-9]+"#, #"\?"#, #"a.c\d+x?"#, #"[^a-c]{2}z"#, #"ab|cd"#, #"(?i)secret"#, #"[\w.-]+@x"#,
      #"\d{3}-\d{2}-\d{4}"#, #"x{2,}y"#, #"[]a]b"#,
    ]
    let texts = [
      "pay DE89 3704 0044 0532 0130 00 now", "sk_live_abcdefghijklmnop1234", "see TICKET-42", "why?", "abc12",
      "a\u{e9}c٣x", "xxz", "\u{e9}\u{e9}z", "cd", "SECRET", "me.too@x", "123-45-6789", "xxy", "]b",
      "DE89370400440532013000",
      "plain words only", "",
    ]
    for pattern in patterns {
      let regex = try NSRegularExpression(pattern: pattern)
      let prefilter = PatternPrefix.prefilter(for: pattern)
      for text in texts {
        let matched = regex.firstMatch(in: text, range: NSRange(text.startIndex..., in: text)) != nil
        if matched { #expect(prefilter.admits(text.utf8), "\(pattern) on \(text)") }
      }
    }
    if case .asciiSequence(let classes) = PatternPrefix.prefilter(for: patterns[0]) {
      #expect(classes.count == 4)
    } else {
      Issue.record("the IBAN pattern has a prefix")
    }
    #expect(!PatternPrefix.prefilter(for: patterns[1]).admits("GET /api/cart".utf8))
  }

  @Test func untouchedRequestsComeBackAsTheSameBytes() throws {
    let files = try PolicyFiles()
    for policy in [try files.policy(builtinsOnly), try files.example()] {
      for (signal, request) in try OTLPFixtures.protobufRequests() {
        let outcome = try Redactor(policy: policy).redaction(of: request, signal: signal)
        if !outcome.changed { #expect(outcome.request == request) }
      }
    }
    var span = Opentelemetry_Proto_Trace_V1_Span()
    span.name = "clean"
    span.attributes = [KeyValue("http.method", .string("GET")), KeyValue("note", .int(12))]
    let clean = try traceRequest(span)
    let outcome = try Redactor(policy: try files.example()).redaction(of: clean, signal: .traces)
    #expect(!outcome.changed)
    #expect(outcome.request == clean)
  }
}

private struct Planted {
  let bytes: [UInt8]
  init(_ bytes: [UInt8]) { self.bytes = bytes }

  func contains(_ needle: [UInt8]) -> Bool {
    guard needle.count <= bytes.count else { return false }
    return (0...(bytes.count - needle.count)).contains { bytes[$0..<$0 + needle.count].elementsEqual(needle) }
  }
}

private func traceRequest(_ span: Opentelemetry_Proto_Trace_V1_Span) throws -> [UInt8] {
  var request = TraceRequest()
  var resourceSpans = Opentelemetry_Proto_Trace_V1_ResourceSpans()
  var scopeSpans = Opentelemetry_Proto_Trace_V1_ScopeSpans()
  scopeSpans.spans = [span]
  resourceSpans.scopeSpans = [scopeSpans]
  request.resourceSpans = [resourceSpans]
  return try request.serializedBytes()
}
