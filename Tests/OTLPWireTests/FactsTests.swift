import Foundation
import OTLPProto
import OTLPWire
import SwiftProtobuf
import Testing

/// Span and log record facts, tenant values and splicing, checked against swift-protobuf's decode.
@Suite struct FactsTests {
  typealias TraceRequest = Opentelemetry_Proto_Collector_Trace_V1_ExportTraceServiceRequest
  typealias LogsRequest = Opentelemetry_Proto_Collector_Logs_V1_ExportLogsServiceRequest

  static func spans(_ request: [UInt8]) throws -> [SpanFacts] { try Read.spans(request) }

  /// The message inside a field range (tag, length, then the message).
  static func payload(_ request: [UInt8], _ field: Range<Int>) -> Data {
    var position = field.lowerBound
    while request[position] & 0x80 != 0 { position += 1 }
    position += 1
    var length = 0
    var shift = 0
    while true {
      let byte = request[position]
      position += 1
      length |= Int(byte & 0x7F) << shift
      shift += 7
      if byte & 0x80 == 0 { break }
    }
    #expect(position + length == field.upperBound)
    return Data(request[position..<field.upperBound])
  }

  static func string(_ request: [UInt8], _ range: Range<Int>?) -> String? {
    range.map { String(decoding: request[$0], as: UTF8.self) }
  }

  @Test(arguments: [false, true])
  func spanFactsMatchTheDecodedSpans(descending: Bool) throws {
    var bytes = SDKRequests.bytes(SDKRequests.traces(resources: 3, scopesPerResource: 2, spansPerScope: 5, seed: 7))
    if descending { bytes = Reverse.request(bytes, .traces) }
    let decoded = try TraceRequest(serializedBytes: bytes)
    let facts = try Self.spans(bytes)
    var index = 0
    for (resourceIndex, resourceSpans) in decoded.resourceSpans.enumerated() {
      for (scopeIndex, scopeSpans) in resourceSpans.scopeSpans.enumerated() {
        for span in scopeSpans.spans {
          let fact = facts[index]
          index += 1
          #expect(Data(bytes[fact.traceID]) == span.traceID)
          let hex = span.traceID.map { UInt64($0) }
          #expect(fact.traceIDHigh == hex[0..<8].reduce(0) { $0 << 8 | $1 })
          #expect(fact.traceIDLow == hex[8..<16].reduce(0) { $0 << 8 | $1 })
          #expect(fact.statusCode == Int32(span.status.code.rawValue))
          #expect(fact.startTime == span.startTimeUnixNano && fact.endTime == span.endTimeUnixNano)
          #expect(try Opentelemetry_Proto_Trace_V1_Span(serializedBytes: Self.payload(bytes, fact.span)) == span)
          let scope = try Opentelemetry_Proto_Trace_V1_ScopeSpans(serializedBytes: Self.payload(bytes, fact.scopeSpans))
          #expect(scope == scopeSpans)
          let resource = try Opentelemetry_Proto_Trace_V1_ResourceSpans(
            serializedBytes: Self.payload(bytes, fact.resourceSpans))
          #expect(resource == resourceSpans)
          #expect(fact.resourceIndex == resourceIndex && fact.scopeIndex == scopeIndex)
          let decodedResource = try fact.resource.map {
            try Opentelemetry_Proto_Resource_V1_Resource(serializedBytes: Self.payload(bytes, $0))
          }
          #expect(decodedResource == resourceSpans.resource)
          #expect(
            fact.resourceSchemaURL.map { Self.string(bytes, $0) ?? "" }?.hasSuffix(resourceSpans.schemaURL) == true)
          let decodedScope = try fact.scope.map {
            try Opentelemetry_Proto_Common_V1_InstrumentationScope(serializedBytes: Self.payload(bytes, $0))
          }
          #expect(decodedScope == scopeSpans.scope)
          #expect(fact.scopeSchemaURL == nil)
          #expect(Self.string(bytes, fact.serviceName) == "shop-\(resourceIndex)")
        }
      }
    }
    #expect(index == facts.count)
  }

  @Test func spanFactsFollowSwiftProtobufsMergeRules() throws {
    // Two trace_ids (last wins), a trace_id sent as a varint (an unknown field), status merged
    // from two occurrences, and an odd-length trace id.
    let request = PB.oneSpan([
      PB.ld(1, [1, 2, 3]), PB.varintField(1, 9), PB.ld(15, PB.varintField(3, 2) + PB.string(2, "x")),
      PB.ld(15, PB.string(2, "y")), PB.ld(15, PB.ld(3, [])),
    ])
    expectCheck(request, accepted: true)
    let decoded = try TraceRequest(serializedBytes: request).resourceSpans[0].scopeSpans[0].spans[0]
    let fact = try #require(try Self.spans(request).first)
    #expect(Data(request[fact.traceID]) == decoded.traceID)
    #expect(fact.traceID.count == 3 && fact.traceIDHigh == 0 && fact.traceIDLow == 0)
    #expect(fact.statusCode == Int32(decoded.status.code.rawValue) && fact.statusCode == 2)
    let noIDs = try #require(try Self.spans(PB.traces([PB.ld(2, PB.ld(2, PB.fixed64(7, 3)))])).first)
    #expect(noIDs.traceID.isEmpty && noIDs.startTime == 3 && noIDs.resource == nil && noIDs.serviceName == nil)
  }

  @Test func serviceNameTakesTheStringValueAsDecoded() throws {
    let value = PB.stringValue("first") + PB.varintField(3, 1) + PB.stringValue("svc")
    let resource = PB.message([
      PB.ld(1, PB.keyValue("service.name", value)), PB.ld(1, PB.keyValue("other", PB.stringValue("x"))),
    ])
    let request = PB.traces([PB.resourceSpans(resource: resource, scopes: [PB.scopeSpans(spans: [PB.span()])])])
    let fact = try #require(try Self.spans(request).first)
    #expect(Self.string(request, fact.serviceName) == "svc")
    let notString = PB.message([PB.ld(1, PB.keyValue("service.name", PB.stringValue("a") + PB.varintField(2, 1)))])
    let other = PB.traces([PB.resourceSpans(resource: notString, scopes: [PB.scopeSpans(spans: [PB.span()])])])
    #expect(try Self.spans(other).first?.serviceName == nil)
  }

  @Test(arguments: [false, true])
  func logRecordFactsMatchTheDecodedRecords(descending: Bool) throws {
    var bytes = SDKRequests.bytes(SDKRequests.logs(records: 20))
    if descending { bytes = Reverse.request(bytes, .logs) }
    let decoded = try LogsRequest(serializedBytes: bytes).resourceLogs[0].scopeLogs[0].logRecords
    let facts = try Read.logRecords(bytes)
    #expect(facts.count == decoded.count)
    for (fact, record) in zip(facts, decoded) {
      #expect(fact.severityNumber == Int32(record.severityNumber.rawValue))
      #expect(Data(bytes[fact.traceID]) == record.traceID)
      #expect(fact.time == record.timeUnixNano && fact.observedTime == record.observedTimeUnixNano)
      #expect(try Opentelemetry_Proto_Logs_V1_LogRecord(serializedBytes: Self.payload(bytes, fact.record)) == record)
      #expect(fact.resource != nil && fact.scope != nil && fact.resourceIndex == 0 && fact.scopeIndex == 0)
    }
  }

  @Test func tenantValuesAreDistinctStringValues() throws {
    let request = SDKRequests.bytes(SDKRequests.traces(resources: 4))
    let facts = try OTLPWireReader.check(request, signal: .traces, tenantAttribute: "tenant.id")
    let values = request.withUnsafeBytes { facts.tenantValues.strings(in: $0) }
    #expect(values == ["tenant-0", "tenant-1"] && !facts.tenantValues.hasMore)
    #expect(try OTLPWireReader.check(request, signal: .traces).tenantValues.count == 0)
    #expect(try OTLPWireReader.check(request, signal: .traces, tenantAttribute: "nope").tenantValues.count == 0)

    // Six distinct values: four kept, the rest flagged. A value overridden by an int, and one in
    // a span attribute (not a resource), do not count.
    let resources = (0..<6).map {
      PB.resourceSpans(resource: PB.ld(1, PB.keyValue("t", PB.stringValue("v\($0)"))), scopes: [])
    }
    let overridden = PB.resourceSpans(
      resource: PB.ld(1, PB.keyValue("t", PB.stringValue("gone") + PB.varintField(3, 1))), scopes: [])
    let inSpan = PB.resourceSpans(scopes: [
      PB.scopeSpans(spans: [PB.span(extra: [PB.ld(9, PB.keyValue("t", PB.stringValue("span")))])])
    ])
    let many = PB.traces(resources + [overridden, inSpan, resources[0]])
    let manyFacts = try OTLPWireReader.check(many, signal: .traces, tenantAttribute: "t")
    #expect(many.withUnsafeBytes { manyFacts.tenantValues.strings(in: $0) } == ["v0", "v1", "v2", "v3"])
    #expect(manyFacts.tenantValues.hasMore)
    // Key after value (descending order) and an empty key.
    let reversed = PB.traces([
      PB.resourceSpans(resource: PB.ld(1, PB.ld(2, PB.stringValue("late")) + PB.string(1, "t")), scopes: [])
    ])
    let reversedFacts = try OTLPWireReader.check(reversed, signal: .traces, tenantAttribute: "t")
    #expect(reversed.withUnsafeBytes { reversedFacts.tenantValues.strings(in: $0) } == ["late"])
    let keyless = PB.traces([PB.resourceSpans(resource: PB.ld(1, PB.ld(2, PB.stringValue("anon"))), scopes: [])])
    let keylessFacts = try OTLPWireReader.check(keyless, signal: .traces, tenantAttribute: "")
    #expect(keyless.withUnsafeBytes { keylessFacts.tenantValues.strings(in: $0) } == ["anon"])
  }

  @Test(arguments: [false, true])
  func spliceKeepsExactlyTheChosenSpans(descending: Bool) throws {
    var bytes = SDKRequests.bytes(SDKRequests.traces(resources: 3, scopesPerResource: 2, spansPerScope: 4, seed: 11))
    if descending { bytes = Reverse.request(bytes, .traces) }
    let decoded = try TraceRequest(serializedBytes: bytes)
    let facts = try Self.spans(bytes)
    // Keep every third span, in reverse wire order.
    let kept = facts.enumerated().filter { $0.offset % 3 == 1 }.map(\.element).reversed()
    let spliced = try Read.splice(bytes, keeping: Array(kept))
    expectCheck(spliced, accepted: true)
    let result = try TraceRequest(serializedBytes: spliced)
    // Expected: resources and scopes in first-seen order of the kept list, spans in list order.
    var expected = TraceRequest()
    for fact in kept {
      let resource = decoded.resourceSpans[fact.resourceIndex]
      let scope = resource.scopeSpans[fact.scopeIndex]
      let span = try Opentelemetry_Proto_Trace_V1_Span(serializedBytes: Self.payload(bytes, fact.span))
      var resourcePosition = expected.resourceSpans.firstIndex { $0.resource == resource.resource }
      if resourcePosition == nil {
        var copy = resource
        copy.scopeSpans = []
        expected.resourceSpans.append(copy)
        resourcePosition = expected.resourceSpans.count - 1
      }
      let r = resourcePosition ?? 0
      var scopePosition = expected.resourceSpans[r].scopeSpans.firstIndex { $0.scope == scope.scope }
      if scopePosition == nil {
        var copy = scope
        copy.spans = []
        expected.resourceSpans[r].scopeSpans.append(copy)
        scopePosition = expected.resourceSpans[r].scopeSpans.count - 1
      }
      expected.resourceSpans[r].scopeSpans[scopePosition ?? 0].spans.append(span)
    }
    #expect(result == expected)
    #expect(result.resourceSpans.flatMap { $0.scopeSpans.flatMap(\.spans) }.count == kept.count)
    let again = try Read.splice(bytes, keeping: Array(kept))
    #expect(again == spliced)
    #expect(try Read.splice(bytes, keeping: []).isEmpty)
  }

  @Test func spliceRefusesRangesOutsideTheRequest() throws {
    let bytes = PB.oneSpan([])
    var fact = try #require(try Self.spans(bytes).first)
    fact.span = 0..<(bytes.count + 1)
    #expect(throws: OTLPWireError.self) { try Read.splice(bytes, keeping: [fact]) }
  }
}

/// Rewrites a request with every message's fields in descending field-number order, as pdata
/// writes them.
enum Reverse {
  static func request(_ bytes: [UInt8], _ signal: WireSignal) -> [UInt8] {
    reversed(bytes, depth: 0, itemDepth: 3)
  }

  /// Reverses the fields of this message and, down to the items and their sub-messages, of the
  /// length-delimited fields that parse as messages (strings that happen to parse are reversed
  /// too, so only use this on requests whose strings do not look like messages).
  private static func reversed(_ bytes: [UInt8], depth: Int, itemDepth: Int) -> [UInt8] {
    var fields: [(number: UInt64, bytes: [UInt8])] = []
    var position = 0
    func varint() -> UInt64? {
      var value: UInt64 = 0
      var shift: UInt64 = 0
      while position < bytes.count && shift < 64 {
        let byte = bytes[position]
        position += 1
        value |= UInt64(byte & 0x7F) << shift
        if byte & 0x80 == 0 { return value }
        shift += 7
      }
      return nil
    }
    while position < bytes.count {
      let start = position
      guard let tag = varint() else { return bytes }
      switch tag & 7 {
      case 0: guard varint() != nil else { return bytes }
      case 1: position += 8
      case 5: position += 4
      case 2:
        guard let length = varint(), position + Int(length) <= bytes.count else { return bytes }
        let body = Array(bytes[position..<position + Int(length)])
        position += Int(length)
        // Only the request path is reversed below the items, to keep strings intact.
        if depth < itemDepth && (tag >> 3 == 1 || tag >> 3 == 2) {
          let inner = reversed(body, depth: depth + 1, itemDepth: itemDepth)
          fields.append((tag >> 3, PB.ld(tag >> 3, inner)))
          continue
        }
      default: return bytes
      }
      guard position <= bytes.count else { return bytes }
      fields.append((tag >> 3, Array(bytes[start..<position])))
    }
    let order = fields.enumerated().sorted { ($0.element.number, $0.offset) > ($1.element.number, $1.offset) }
    // Descending field numbers, but repeated fields keep their relative order.
    let stable = order.sorted { lhs, rhs in
      lhs.element.number != rhs.element.number ? lhs.element.number > rhs.element.number : lhs.offset < rhs.offset
    }
    return stable.flatMap(\.element.bytes)
  }
}
