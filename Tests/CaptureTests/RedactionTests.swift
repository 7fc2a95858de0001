import EvidenceIO
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

/// Values planted in every place redaction must reach; none may survive in the output bytes.
private enum Planted {
  static let emails = ["alice.smith@example.com", "bob+ops@mail.example.org"]
  static let cards = ["4111 1111 1111 1111", "5500-0000-0000-0004", "378282246310005"]
  static let jwt =
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U"
  static let opaqueToken = "ghp_0123456789abcdefABCDEF0123456789"
  /// The values as planted.
  static let originals: [String] = emails + cards + [jwt, opaqueToken]
  /// Every string a reader must not find, including the card digits without separators.
  static let secrets: [String] =
    emails + cards + ["4111111111111111", "5500000000000004", jwt, "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9", opaqueToken]

  /// Free text holding one of each kind.
  static func text(_ index: Int) -> String {
    let email = emails[index % emails.count]
    let card = cards[index % cards.count]
    return "user \(email) paid with \(card); Authorization: Bearer \(jwt); retry with bearer \(opaqueToken)"
  }

  /// Attributes holding secrets as a string, inside an array and inside a kvlist, plus a clean one.
  static func attributes(_ index: Int) -> [KeyValue] {
    [
      .string("note", text(index)),
      .string("service.tier", "gold"),
      .init("tags", .array([.string(text(index + 1)), .int(7)])),
      .init("context", .kvlist([.string("who", emails[(index + 1) % emails.count]), .string("ok", "fine")])),
    ]
  }

  static func contains(_ haystack: [UInt8], _ needle: String) -> Bool {
    let needle = Array(needle.utf8)
    guard needle.count <= haystack.count else { return false }
    return (0...(haystack.count - needle.count)).contains { haystack[$0..<$0 + needle.count].elementsEqual(needle) }
  }

  static func survivors(in bytes: [UInt8]) -> [String] {
    secrets.filter { contains(bytes, $0) }
  }
}

extension KeyValue {
  fileprivate init(_ key: String, _ value: AnyValue) {
    self.init()
    self.key = key
    self.value = value
  }

  fileprivate static func string(_ key: String, _ text: String) -> KeyValue { KeyValue(key, .string(text)) }
}

extension AnyValue {
  fileprivate static func string(_ text: String) -> AnyValue {
    var value = AnyValue()
    value.stringValue = text
    return value
  }

  fileprivate static func int(_ number: Int64) -> AnyValue {
    var value = AnyValue()
    value.intValue = number
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

// MARK: - Requests with secrets everywhere

private func resource(_ index: Int) -> Opentelemetry_Proto_Resource_V1_Resource {
  var resource = Opentelemetry_Proto_Resource_V1_Resource()
  resource.attributes = [.string("service.name", "checkout")] + Planted.attributes(index)
  return resource
}

private func scope(_ index: Int) -> Opentelemetry_Proto_Common_V1_InstrumentationScope {
  var scope = Opentelemetry_Proto_Common_V1_InstrumentationScope()
  scope.name = "shop.payments"
  scope.attributes = Planted.attributes(index)
  return scope
}

private func tracesRequest() throws -> [UInt8] {
  var span = Opentelemetry_Proto_Trace_V1_Span()
  span.traceID = Data(repeating: 0x11, count: 16)
  span.spanID = Data(repeating: 0x22, count: 8)
  span.name = "POST /checkout"
  span.startTimeUnixNano = 1_700_000_000_000_000_000
  span.endTimeUnixNano = 1_700_000_000_500_000_000
  span.attributes = Planted.attributes(2)
  var event = Opentelemetry_Proto_Trace_V1_Span.Event()
  event.name = "payment.attempt"
  event.timeUnixNano = 1_700_000_000_100_000_000
  event.attributes = Planted.attributes(3)
  span.events = [event]
  var link = Opentelemetry_Proto_Trace_V1_Span.Link()
  link.traceID = Data(repeating: 0x33, count: 16)
  link.spanID = Data(repeating: 0x44, count: 8)
  link.attributes = Planted.attributes(4)
  span.links = [link]
  span.status.code = .error
  span.status.message = "card declined for \(Planted.emails[0])"
  var scopeSpans = Opentelemetry_Proto_Trace_V1_ScopeSpans()
  scopeSpans.scope = scope(1)
  scopeSpans.spans = [span]
  var resourceSpans = Opentelemetry_Proto_Trace_V1_ResourceSpans()
  resourceSpans.resource = resource(0)
  resourceSpans.scopeSpans = [scopeSpans]
  var request = TraceRequest()
  request.resourceSpans = [resourceSpans]
  return try request.serializedBytes()
}

private func logsRequest() throws -> [UInt8] {
  var plain = Opentelemetry_Proto_Logs_V1_LogRecord()
  plain.timeUnixNano = 1_700_000_000_000_000_000
  plain.body = .string("login failed: " + Planted.text(0))
  plain.attributes = Planted.attributes(1)
  var structured = Opentelemetry_Proto_Logs_V1_LogRecord()
  structured.timeUnixNano = 1_700_000_000_000_000_001
  structured.body = .kvlist([
    .string("event", "payment"),
    .string("customer", Planted.emails[1]),
    .init("cards", .array([.string(Planted.cards[0]), .string(Planted.cards[1]), .string(Planted.cards[2])])),
    .init("request", .kvlist([.string("headers", "Authorization: Bearer \(Planted.jwt)")])),
  ])
  var arrayBody = Opentelemetry_Proto_Logs_V1_LogRecord()
  arrayBody.timeUnixNano = 1_700_000_000_000_000_002
  arrayBody.body = .array([.string(Planted.text(1)), .array([.string(Planted.text(2))])])
  var scopeLogs = Opentelemetry_Proto_Logs_V1_ScopeLogs()
  scopeLogs.scope = scope(2)
  scopeLogs.logRecords = [plain, structured, arrayBody]
  var resourceLogs = Opentelemetry_Proto_Logs_V1_ResourceLogs()
  resourceLogs.resource = resource(3)
  resourceLogs.scopeLogs = [scopeLogs]
  var request = LogsRequest()
  request.resourceLogs = [resourceLogs]
  return try request.serializedBytes()
}

private func metricsRequest() throws -> [UInt8] {
  var exemplar = Opentelemetry_Proto_Metrics_V1_Exemplar()
  exemplar.timeUnixNano = 1_700_000_000_000_000_000
  exemplar.asDouble = 1
  exemplar.filteredAttributes = Planted.attributes(0)
  var number = Opentelemetry_Proto_Metrics_V1_NumberDataPoint()
  number.timeUnixNano = 1_700_000_000_000_000_000
  number.asInt = 3
  number.attributes = Planted.attributes(1)
  number.exemplars = [exemplar]
  var gauge = Opentelemetry_Proto_Metrics_V1_Metric()
  gauge.name = "queue.depth"
  gauge.gauge.dataPoints = [number]
  var sum = Opentelemetry_Proto_Metrics_V1_Metric()
  sum.name = "orders.total"
  sum.sum.dataPoints = [number]
  sum.sum.aggregationTemporality = .cumulative
  var histogramPoint = Opentelemetry_Proto_Metrics_V1_HistogramDataPoint()
  histogramPoint.timeUnixNano = 1_700_000_000_000_000_000
  histogramPoint.count = 1
  histogramPoint.attributes = Planted.attributes(2)
  var histogram = Opentelemetry_Proto_Metrics_V1_Metric()
  histogram.name = "request.duration"
  histogram.histogram.dataPoints = [histogramPoint]
  var exponentialPoint = Opentelemetry_Proto_Metrics_V1_ExponentialHistogramDataPoint()
  exponentialPoint.timeUnixNano = 1_700_000_000_000_000_000
  exponentialPoint.attributes = Planted.attributes(0)
  var exponential = Opentelemetry_Proto_Metrics_V1_Metric()
  exponential.name = "request.size"
  exponential.exponentialHistogram.dataPoints = [exponentialPoint]
  var summaryPoint = Opentelemetry_Proto_Metrics_V1_SummaryDataPoint()
  summaryPoint.timeUnixNano = 1_700_000_000_000_000_000
  summaryPoint.attributes = Planted.attributes(1)
  var summary = Opentelemetry_Proto_Metrics_V1_Metric()
  summary.name = "latency.summary"
  summary.summary.dataPoints = [summaryPoint]
  summary.metadata = [.string("owner", Planted.emails[0])]
  var scopeMetrics = Opentelemetry_Proto_Metrics_V1_ScopeMetrics()
  scopeMetrics.scope = scope(0)
  scopeMetrics.metrics = [gauge, sum, histogram, exponential, summary]
  var resourceMetrics = Opentelemetry_Proto_Metrics_V1_ResourceMetrics()
  resourceMetrics.resource = resource(1)
  resourceMetrics.scopeMetrics = [scopeMetrics]
  var request = MetricsRequest()
  request.resourceMetrics = [resourceMetrics]
  return try request.serializedBytes()
}

// MARK: - Policies

/// A directory of its own for policy and key files, removed when the test ends.
private final class Scratch {
  let directory: URL

  init() throws {
    directory = FileManager.default.temporaryDirectory.appendingPathComponent("redaction-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
  }

  deinit { try? FileManager.default.removeItem(at: directory) }

  /// Writes `bytes` as `name` with `mode` (0600 by default: what a hash key file must have).
  func write(_ name: String, _ bytes: [UInt8], mode: mode_t = 0o600) throws -> String {
    let url = directory.appendingPathComponent(name)
    try Data(bytes).write(to: url)
    chmod(url.path, mode)
    return url.path
  }

  func policy(_ yaml: String, keyBytes: [UInt8]? = nil) throws -> RedactionPolicy {
    if let keyBytes { _ = try write("policy.key", keyBytes) }
    let path = try write("policy.yaml", Array(yaml.utf8))
    return try RedactionPolicy(contentsOfFile: path)
  }
}

private let masksOnly = "id: masks\nbuiltin: [email, card-number, bearer-token]\n"
private let testKey = Array("0123456789abcdef0123456789abcdef".utf8)

private func redact(_ request: [UInt8], _ signal: Signal, _ policy: RedactionPolicy) throws -> [UInt8] {
  try Redactor(policy: policy).redact(request, signal: signal)
}

private func allStrings<M: SwiftProtobuf.Message>(_ message: M) throws -> String {
  try message.jsonString()
}

@Suite struct RedactionTests {
  static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent()

  // MARK: Secrets are gone

  @Test func plantedSecretsAreGoneFromEveryPlaceOfATraceRequest() throws {
    let scratch = try Scratch()
    let input = try tracesRequest()
    #expect(Set(Planted.survivors(in: input)).isSuperset(of: Planted.originals), "every value must be planted")
    let output = try redact(input, .traces, try scratch.policy(masksOnly))
    #expect(Planted.survivors(in: output).isEmpty)
    let request = try TraceRequest(serializedBytes: output)
    let span = try #require(request.resourceSpans.first?.scopeSpans.first?.spans.first)
    #expect(span.name == "POST /checkout")
    #expect(span.events.first?.name == "payment.attempt")
    #expect(span.status.message == "card declined for [REDACTED:email]")
    #expect(span.attributes.first { $0.key == "service.tier" }?.value.stringValue == "gold")
    #expect(
      span.attributes.first { $0.key == "note" }?.value.stringValue
        == "user [REDACTED:email] paid with [REDACTED:card-number]; [REDACTED:bearer-token]; "
        + "retry with [REDACTED:bearer-token]")
    #expect(span.attributes.first { $0.key == "tags" }?.value.arrayValue.values.last?.intValue == 7)
    #expect(span.attributes.first { $0.key == "context" }?.value.kvlistValue.values.last?.value.stringValue == "fine")
    #expect(request.resourceSpans.first?.resource.attributes.first?.value.stringValue == "checkout")
  }

  @Test func plantedSecretsAreGoneFromLogAttributesAndBodies() throws {
    let scratch = try Scratch()
    let input = try logsRequest()
    #expect(Set(Planted.survivors(in: input)).isSuperset(of: Planted.originals))
    let output = try redact(input, .logs, try scratch.policy(masksOnly))
    #expect(Planted.survivors(in: output).isEmpty)
    let records = try #require(LogsRequest(serializedBytes: output).resourceLogs.first?.scopeLogs.first?.logRecords)
    #expect(records.count == 3)
    #expect(records[0].body.stringValue.hasPrefix("login failed: user [REDACTED:email] paid with "))
    let body = records[1].body.kvlistValue.values
    #expect(body.map(\.key) == ["event", "customer", "cards", "request"])
    #expect(body[0].value.stringValue == "payment")
    #expect(body[2].value.arrayValue.values.map(\.stringValue) == Array(repeating: "[REDACTED:card-number]", count: 3))
  }

  @Test func plantedSecretsAreGoneFromEveryKindOfMetricDataPoint() throws {
    let scratch = try Scratch()
    let input = try metricsRequest()
    #expect(Set(Planted.survivors(in: input)).isSuperset(of: Planted.originals))
    let output = try redact(input, .metrics, try scratch.policy(masksOnly))
    #expect(Planted.survivors(in: output).isEmpty)
    let metrics = try #require(
      MetricsRequest(serializedBytes: output).resourceMetrics.first?.scopeMetrics.first?.metrics)
    #expect(
      metrics.map(\.name) == ["queue.depth", "orders.total", "request.duration", "request.size", "latency.summary"])
    #expect(metrics[0].gauge.dataPoints.first?.asInt == 3)
  }

  @Test func theCommentedExamplePolicyLoadsAndRedacts() throws {
    let scratch = try Scratch()
    let example = Array(try Data(contentsOf: Self.repository.appendingPathComponent("config/redaction.example.yaml")))
    _ = try scratch.write("redaction.key", testKey)
    let path = try scratch.write("redaction.example.yaml", example)
    let policy = try RedactionPolicy(contentsOfFile: path)
    #expect(policy.reference.id == "example-pii-v1")
    #expect(policy.reference.sha256 == SHA256Digest.hex(of: example))
    #expect(policy.masks.map(\.name) == ["email", "card-number", "bearer-token", "iban", "api-key"])
    for (signal, input) in [
      (Signal.traces, try tracesRequest()), (.logs, try logsRequest()), (.metrics, try metricsRequest()),
    ] {
      let output = try redact(input, signal, policy)
      #expect(Planted.survivors(in: output).isEmpty, "\(signal)")
    }
    // Its own masks work too, with their replacement texts.
    var span = Opentelemetry_Proto_Trace_V1_Span()
    span.traceID = Data(repeating: 1, count: 16)
    span.spanID = Data(repeating: 2, count: 8)
    span.attributes = [.string("note", "pay to DE89 3704 0044 0532 0130 00 using sk_live_abcdefghijklmnop1234")]
    let output = try redact(try traceRequest(with: span), .traces, policy)
    let note = try TraceRequest(serializedBytes: output).resourceSpans[0].scopeSpans[0].spans[0].attributes[0]
    #expect(note.value.stringValue == "pay to [REDACTED:iban] using sk_[REDACTED]")
  }

  // MARK: Built-in masks, case by case

  @Test(arguments: [
    ("mail jane.doe+ops@mail.example.com now", "mail [REDACTED:email] now"),
    ("<ALICE@EXAMPLE.CO.UK>", "<[REDACTED:email]>"),
    ("a@b.cd and x_y@sub-domain.example.io", "[REDACTED:email] and [REDACTED:email]"),
    ("no address: user@localhost or @handle", "no address: user@localhost or @handle"),
    ("card 4111 1111 1111 1111 ok", "card [REDACTED:card-number] ok"),
    ("5500-0000-0000-0004", "[REDACTED:card-number]"),
    ("amex 378282246310005.", "amex [REDACTED:card-number]."),
    ("cc:4111111111111111", "cc:[REDACTED:card-number]"),
    ("1 4111 1111 1111 1111", "1 [REDACTED:card-number]"),
    ("4111 1111 1111 1111 12/29", "[REDACTED:card-number] 12/29"),
    // Not cards: Luhn fails, too long, or a timestamp.
    ("order 4111 1111 1111 1112", "order 4111 1111 1111 1112"),
    ("t=1700000000123456789", "t=1700000000123456789"),
    ("id 41111111111111110000", "id 41111111111111110000"),
    ("Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2ln", "[REDACTED:bearer-token]"),
    ("authorization=Basic dXNlcjpwYXNzd29yZA==", "[REDACTED:bearer-token]"),
    ("Proxy-Authorization: Negotiate YIIBhwYGKwYBBQUC", "[REDACTED:bearer-token]"),
    ("got bearer  abcdef0123456789 from idp", "got [REDACTED:bearer-token] from idp"),
    ("jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2ln end", "jwt [REDACTED:bearer-token] end"),
    ("the bearer of bad news", "the bearer of bad news"),
  ])
  func builtinMasks(input: String, expected: String) throws {
    let policy = try Scratch().policy(masksOnly)
    var current = input
    for mask in policy.masks {
      if let next = mask.apply(to: current) { current = next }
    }
    #expect(current == expected)
  }

  @Test func masksRunInOrderWithLiteralReplacements() throws {
    let policy = try Scratch().policy(
      """
      id: order
      mask:
        - name: ticket
          pattern: 'TICKET-[0-9]+'
          replacement: '$1 TICKET-?'
        - name: question
          pattern: '\\?'
      """)
    var span = Opentelemetry_Proto_Trace_V1_Span()
    span.attributes = [.string("t", "see TICKET-42 and TICKET-7")]
    let output = try redact(try traceRequest(with: span), .traces, policy)
    let value = try TraceRequest(serializedBytes: output).resourceSpans[0].scopeSpans[0].spans[0].attributes[0].value
    #expect(value.stringValue == "see $1 TICKET-[REDACTED:question] and $1 TICKET-[REDACTED:question]")
  }

  // MARK: Allow and block

  @Test func allowKeepsOnlyListedKeysAndBlockDropsAtEveryDepth() throws {
    let policy = try Scratch().policy(
      """
      id: filter
      attributes:
        allow: [http.*, service.name, body]
        block: [http.request.header.authorization, secret]
      """)
    var span = Opentelemetry_Proto_Trace_V1_Span()
    span.attributes = [
      .string("http.method", "GET"),
      .string("http.request.header.authorization", "Bearer abc"),
      .string("user.email", Planted.emails[0]),
      .string("service.name", "checkout"),
      .string("service.namespace", "shop"),
      .init("body", .kvlist([.string("secret", "s3cr3t"), .string("user.email", "dropped: allow is at every depth")])),
    ]
    span.droppedAttributesCount = 2
    var event = Opentelemetry_Proto_Trace_V1_Span.Event()
    event.attributes = [.string("secret", "x"), .string("http.status_code", "500")]
    span.events = [event]
    let output = try redact(try traceRequest(with: span), .traces, policy)
    let redacted = try TraceRequest(serializedBytes: output).resourceSpans[0].scopeSpans[0].spans[0]
    #expect(redacted.attributes.map(\.key) == ["http.method", "service.name", "body"])
    #expect(redacted.droppedAttributesCount == 2 + 3)
    #expect(redacted.attributes[2].value.kvlistValue.values.map(\.key) == [])
    #expect(redacted.events[0].attributes.map(\.key) == ["http.status_code"])
    #expect(redacted.events[0].droppedAttributesCount == 1)
    #expect(!Planted.contains(output, "s3cr3t"))
    #expect(!Planted.contains(output, "Bearer abc"))
  }

  @Test func blockWorksWithoutAllowAndDropsResourceAndLogAttributes() throws {
    let policy = try Scratch().policy("id: block\nattributes:\n  block: [\"user.*\", host.name]\n")
    var record = Opentelemetry_Proto_Logs_V1_LogRecord()
    record.attributes = [.string("user.id", "u-1"), .string("user.email", "e"), .string("level", "info")]
    record.body = .kvlist([.string("user.name", "jane"), .string("action", "login")])
    var request = LogsRequest()
    var resourceLogs = Opentelemetry_Proto_Logs_V1_ResourceLogs()
    resourceLogs.resource.attributes = [.string("host.name", "db-7"), .string("service.name", "auth")]
    resourceLogs.scopeLogs = [Opentelemetry_Proto_Logs_V1_ScopeLogs()]
    resourceLogs.scopeLogs[0].logRecords = [record]
    request.resourceLogs = [resourceLogs]
    let output = try redact(try request.serializedBytes(), .logs, policy)
    let redacted = try LogsRequest(serializedBytes: output).resourceLogs[0]
    #expect(redacted.resource.attributes.map(\.key) == ["service.name"])
    #expect(redacted.resource.droppedAttributesCount == 1)
    #expect(redacted.scopeLogs[0].logRecords[0].attributes.map(\.key) == ["level"])
    #expect(redacted.scopeLogs[0].logRecords[0].droppedAttributesCount == 2)
    #expect(redacted.scopeLogs[0].logRecords[0].body.kvlistValue.values.map(\.key) == ["action"])
  }

  // MARK: Keyed hashing

  @Test func hmacSHA256MatchesRFC4231() {
    // RFC 4231 test case 2.
    let code = HMACSHA256.hex(of: Array("what do ya want for nothing?".utf8), key: Array("Jefe".utf8))
    #expect(code == "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")
    // Test case 6: a key longer than the block size is hashed first.
    let long = HMACSHA256.hex(
      of: Array("Test Using Larger Than Block-Size Key - Hash Key First".utf8),
      key: [UInt8](repeating: 0xAA, count: 131))
    #expect(long == "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54")
    #expect(HMACSHA256.code(of: [], key: []) != nil)
  }

  @Test func hashedValuesAreKeyedStableAndCorrelate() throws {
    let document = "id: hash\nhash:\n  keys: [enduser.id, \"card.*\"]\n  key-file: policy.key\n"
    let scratch = try Scratch()
    let policy = try scratch.policy(document, keyBytes: testKey)
    var span = Opentelemetry_Proto_Trace_V1_Span()
    span.attributes = [
      .string("enduser.id", "jane@example.com"), .string("card.last4", "1111"), .init("card.bin", .int(411_111)),
      .string("other", "jane@example.com"),
    ]
    let input = try traceRequest(with: span)
    let first = try redact(input, .traces, policy)
    let again = try redact(input, .traces, try scratch.policy(document, keyBytes: testKey))
    #expect(first == again)
    let attributes = try TraceRequest(serializedBytes: first).resourceSpans[0].scopeSpans[0].spans[0].attributes
    let expected = try #require(HMACSHA256.hex(of: Array("jane@example.com".utf8), key: testKey))
    #expect(attributes[0].value.stringValue == "hmac-sha256:" + expected)
    #expect(
      attributes[1].value.stringValue == "hmac-sha256:" + (HMACSHA256.hex(of: Array("1111".utf8), key: testKey) ?? ""))
    #expect(
      attributes[2].value.stringValue == "hmac-sha256:" + (HMACSHA256.hex(of: Array("411111".utf8), key: testKey) ?? "")
    )
    // Not a listed key: left alone (no mask configured).
    #expect(attributes[3].value.stringValue == "jane@example.com")

    // Another key gives other hashes: the hash is keyed, not a plain digest.
    let otherKey = Array("fedcba9876543210fedcba9876543210".utf8)
    let other = try redact(input, .traces, try scratch.policy(document, keyBytes: otherKey))
    let otherValue = try TraceRequest(serializedBytes: other).resourceSpans[0].scopeSpans[0].spans[0].attributes[0]
    #expect(otherValue.value.stringValue.hasPrefix("hmac-sha256:"))
    #expect(otherValue.value.stringValue != attributes[0].value.stringValue)
    #expect(!otherValue.value.stringValue.contains(SHA256Digest.hex(of: Array("jane@example.com".utf8))))
  }

  @Test func theKeyFileIsResolvedAgainstThePolicyDirectory() throws {
    let scratch = try Scratch()
    try FileManager.default.createDirectory(
      at: scratch.directory.appendingPathComponent("keys"), withIntermediateDirectories: true)
    _ = try scratch.write("keys/k.bin", testKey)
    let path = try scratch.write("p.yaml", Array("id: k\nhash:\n  keys: [a]\n  key-file: keys/k.bin\n".utf8))
    let policy = try RedactionPolicy(contentsOfFile: path)
    #expect(policy.hashKey == testKey)
    // The same document read from elsewhere does not find the key.
    #expect(throws: RedactionPolicyError.self) {
      _ = try RedactionPolicy(
        yaml: Array("id: k\nhash:\n  keys: [a]\n  key-file: keys/k.bin\n".utf8), path: "/nonexistent/p.yaml")
    }
  }

  @Test func aKeyFileOthersCanReadIsRefusedNamingItsMode() throws {
    let scratch = try Scratch()
    let document = "id: k\nhash:\n  keys: [a]\n  key-file: policy.key\n"
    let keyPath = try scratch.write("policy.key", testKey, mode: 0o644)
    let path = try scratch.write("p.yaml", Array(document.utf8))
    do {
      _ = try RedactionPolicy(contentsOfFile: path)
      Issue.record("a 0644 key file was accepted")
    } catch {
      #expect(error.key == "hash.key-file")
      #expect(error.message.contains(keyPath) && error.message.contains("mode 0644"))
      #expect(error.message.contains("chmod 600"))
    }
    // Group-readable only is refused too; 0600 is accepted.
    chmod(keyPath, 0o640)
    #expect(throws: RedactionPolicyError.self) { _ = try RedactionPolicy(contentsOfFile: path) }
    chmod(keyPath, 0o600)
    #expect(try RedactionPolicy(contentsOfFile: path).hashKey == testKey)
    // A symlink to a 0600 key is refused: the file checked must be the file read.
    let link = scratch.directory.appendingPathComponent("link.key").path
    try FileManager.default.createSymbolicLink(atPath: link, withDestinationPath: keyPath)
    let linked = try scratch.write("l.yaml", Array("id: k\nhash:\n  keys: [a]\n  key-file: link.key\n".utf8))
    #expect(throws: RedactionPolicyError.self) { _ = try RedactionPolicy(contentsOfFile: linked) }
  }

  // MARK: Bad documents

  @Test(arguments: [
    ("", "id"),
    ("attributes: {}\n", "id"),
    ("id: ~\n", "id"),
    ("id: \"\"\n", "id"),
    ("id: \(String(repeating: "x", count: 257))\n", "id"),
    ("id: \"tab\\there\"\n", "id"),
    ("id: [a]\n", "id"),
    ("id: x\ncolour: red\n", "colour"),
    ("id: x\nattributes:\n  allow: http.*\n", "attributes.allow"),
    ("id: x\nattributes:\n  allow: [ok, \"a*b\"]\n", "attributes.allow[1]"),
    ("id: x\nattributes:\n  block: [\"\"]\n", "attributes.block[0]"),
    ("id: x\nattributes:\n  deny: [a]\n", "attributes.deny"),
    ("id: x\nbuiltin: [email, phone]\n", "builtin[1]"),
    ("id: x\nbuiltin: [email, email]\n", "builtin[1]"),
    ("id: x\nmask:\n  - pattern: abc\n", "mask[0].name"),
    ("id: x\nmask:\n  - name: bad name\n    pattern: abc\n", "mask[0].name"),
    ("id: x\nmask:\n  - name: a\n", "mask[0].pattern"),
    ("id: x\nmask:\n  - name: a\n    pattern: '(unclosed'\n", "mask[0].pattern"),
    ("id: x\nmask:\n  - name: a\n    pattern: 'x*'\n", "mask[0].pattern"),
    ("id: x\nmask:\n  - name: a\n    pattern: b\n    flags: i\n", "mask[0].flags"),
    ("id: x\nbuiltin: [email]\nmask:\n  - name: z\n    pattern: z\n  - name: email\n    pattern: e\n", "mask[1].name"),
    ("id: x\nmask: {name: a}\n", "mask"),
    ("id: x\nhash:\n  key-file: policy.key\n", "hash.keys"),
    ("id: x\nhash:\n  keys: [a]\n", "hash.key-file"),
    ("id: x\nhash:\n  keys: [a]\n  key-file: missing.key\n", "hash.key-file"),
    ("id: x\nhash:\n  keys: [a]\n  key-file: short.key\n", "hash.key-file"),
  ])
  func badDocumentsNameTheFileAndTheKey(document: String, key: String) throws {
    let scratch = try Scratch()
    _ = try scratch.write("policy.key", testKey)
    _ = try scratch.write("short.key", Array("tooshort".utf8))
    let path = scratch.directory.appendingPathComponent("bad.yaml").path
    do {
      _ = try RedactionPolicy(yaml: Array(document.utf8), path: path)
      Issue.record("accepted \(document)")
    } catch {
      #expect(error.path == path)
      #expect(error.key == key)
      #expect(error.description.hasPrefix("\(path): \(key): "))
    }
  }

  @Test(arguments: ["id: [unclosed\n", "id: x\n\tbad: indentation\n", "- just\n- a list\n"])
  func documentsThatAreNotPolicyMappingsNameTheFile(document: String) {
    #expect {
      _ = try RedactionPolicy(yaml: Array(document.utf8), path: "p.yaml")
    } throws: { error in
      guard let error = error as? RedactionPolicyError else { return false }
      return error.path == "p.yaml" && error.description.hasPrefix("p.yaml: ")
    }
  }

  @Test func unreadableFilesAndNonUTF8AreErrorsNamingTheFile() {
    #expect(throws: RedactionPolicyError.self) { _ = try RedactionPolicy(contentsOfFile: "/nonexistent/policy.yaml") }
    do {
      _ = try RedactionPolicy(yaml: [0x69, 0x64, 0x3A, 0x20, 0xFF, 0x0A], path: "latin1.yaml")
      Issue.record("accepted invalid UTF-8")
    } catch {
      #expect(error.path == "latin1.yaml")
      #expect(error.key == nil)
    }
  }

  // MARK: Digest and identity

  @Test func theReferenceIsTheIDAndTheSHA256OfTheExactBytes() throws {
    let policy = try RedactionPolicy(yaml: Array("id: t\n".utf8), path: "t.yaml")
    // `printf 'id: t\n' | sha256sum`
    #expect(policy.reference.id == "t")
    #expect(policy.reference.sha256 == "2e566221e03e1953041db43bab6e17991ffd31e84dfa17b3ec9312aa6151f28e")
    // A comment is part of the document: another digest, same rules.
    let commented = try RedactionPolicy(yaml: Array("# c\nid: t\n".utf8), path: "t.yaml")
    #expect(commented.reference.id == "t")
    #expect(commented.reference.sha256 != policy.reference.sha256)
    #expect(policy.isEmpty)
  }

  @Test func unchangedRequestsStayByteIdentical() throws {
    let policy = try Scratch().policy(
      "id: untouched\nattributes:\n  block: [no.such.key]\nbuiltin: [email, card-number, bearer-token]\n")
    for (signal, request) in try OTLPFixtures.protobufRequests() {
      #expect(try redact(request, signal, policy) == request, "\(signal)")
    }
    // Bytes a re-serialization would change (resource after scope_spans): returned as they
    // came, not re-encoded.
    var scopeSpans = Opentelemetry_Proto_Trace_V1_ScopeSpans()
    var span = Opentelemetry_Proto_Trace_V1_Span()
    span.traceID = Data(repeating: 9, count: 16)
    span.spanID = Data(repeating: 8, count: 8)
    span.name = "clean"
    span.attributes = [.string("http.method", "GET")]
    scopeSpans.spans = [span]
    var resource = Opentelemetry_Proto_Resource_V1_Resource()
    resource.attributes = [.string("service.name", "svc")]
    let resourceSpans =
      Wire.field(2, bytes: try scopeSpans.serializedBytes()) + Wire.field(1, bytes: try resource.serializedBytes())
    let odd = Wire.field(1, bytes: resourceSpans)
    let reencoded: [UInt8] = try TraceRequest(serializedBytes: odd).serializedBytes()
    #expect(reencoded != odd, "the test bytes must be ones re-encoding changes")
    #expect(try redact(odd, .traces, policy) == odd)
    // An unknown field is the one thing a policy without masks still removes.
    let future = Wire.field(1, bytes: resourceSpans + Wire.field(99, bytes: Array("future".utf8)))
    #expect(try redact(future, .traces, policy) == odd)
  }

  @Test func aPolicyWithoutRulesStillReadsTheRequestToDropUnknownFields() throws {
    let policy = try RedactionPolicy(yaml: Array("id: nothing\n".utf8), path: "n.yaml")
    #expect(policy.isEmpty)
    let garbage: [UInt8] = [0xFF, 0xFF, 0xFF]
    #expect(throws: RejectedRequest.self) { try redact(garbage, .traces, policy) }
    for (signal, request) in try OTLPFixtures.protobufRequests() {
      #expect(try redact(request, signal, policy) == request, "\(signal)")
    }
  }

  @Test func aRequestThatDoesNotDecodeIsMalformed() throws {
    let policy = try Scratch().policy(masksOnly)
    do {
      _ = try Redactor(policy: policy).redact([0x0A, 0x05, 0x01], signal: .logs)
      Issue.record("accepted a truncated request")
    } catch {
      #expect(error.kind == .malformed)
      #expect(error.message.contains("redaction"))
    }
  }

  @Test func redactedOutputIsDeterministicAndPassesTheVerifierWireWalk() throws {
    let policy = try Scratch().policy(masksOnly)
    for (signal, input) in [
      (Signal.traces, try tracesRequest()), (.logs, try logsRequest()), (.metrics, try metricsRequest()),
    ] {
      let first = try redact(input, signal, policy)
      #expect(try redact(input, signal, policy) == first)
      #expect(first != input)
      // What the journal gets must still be a request the verifier's walk accepts.
      #expect(throws: Never.self) { _ = try SegmentSealer.checkRequest(first, signal: signal, limits: .init()) }
      // Redacting redacted data changes nothing more.
      #expect(try redact(first, signal, policy) == first)
    }
  }
}

private func traceRequest(with span: Opentelemetry_Proto_Trace_V1_Span) throws -> [UInt8] {
  var request = TraceRequest()
  var resourceSpans = Opentelemetry_Proto_Trace_V1_ResourceSpans()
  var scopeSpans = Opentelemetry_Proto_Trace_V1_ScopeSpans()
  scopeSpans.spans = [span]
  resourceSpans.scopeSpans = [scopeSpans]
  request.resourceSpans = [resourceSpans]
  return try request.serializedBytes()
}
