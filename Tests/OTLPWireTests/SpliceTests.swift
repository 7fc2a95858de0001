import OTLPWire
import Testing

@Suite struct SpliceShellTests {
  /// Facts of every span of a request.
  func spans(_ request: [UInt8]) throws -> [SpanFacts] {
    var facts: [SpanFacts] = []
    try request.withUnsafeBytes { raw in try OTLPWireReader.forEachSpan(raw) { facts.append($0) } }
    return facts
  }

  func shell(_ container: Range<Int>, _ request: [UInt8]) throws -> [UInt8] {
    var output: [UInt8] = []
    try request.withUnsafeBytes { raw in try OTLPSplice.appendShell(of: container, in: raw, to: &output) }
    return output
  }

  @Test(arguments: [false, true])
  func theShellIsEveryFieldButTheChildrenAsSent(descending: Bool) throws {
    // The order is built here rather than with `PB.descending`, a global other tests switch.
    func message(_ fields: [[UInt8]]) -> [UInt8] { (descending ? fields.reversed() : fields).flatMap { $0 } }
    let resource = PB.ld(1, PB.keyValue("service.name", PB.stringValue("shop")))
    let unknown = PB.varintField(9, 42)
    let spanFields = [PB.ld(2, PB.span()), PB.ld(2, PB.span())]
    let scope = message([PB.ld(1, PB.string(1, "http"))] + spanFields + [PB.string(3, "s")])
    let resourceSpans = message([PB.ld(1, resource), PB.ld(2, scope), PB.ld(2, scope), unknown])
    let request = PB.ld(1, resourceSpans)
    let facts = try spans(request)
    #expect(facts.count == 4)
    let first = try #require(facts.first)

    #expect(try shell(first.resourceSpans, request) == message([PB.ld(1, resource), unknown]))
    let expectedScope = message([PB.ld(1, PB.string(1, "http")), PB.string(3, "s")])
    #expect(try shell(first.scopeSpans, request) == expectedScope)
    // The second scope_spans is another field with an equal shell.
    #expect(facts[2].scopeSpans != first.scopeSpans)
    #expect(try shell(facts[2].scopeSpans, request) == expectedScope)
  }

  @Test func rangesOutsideTheRequestAreRefused() throws {
    let request = PB.traces([PB.resourceSpans(scopes: [PB.scopeSpans(spans: [PB.span()])])])
    for range in [0..<0, request.count..<request.count + 2, -1..<3] {
      #expect(throws: OTLPWireError.self) { try shell(range, request) }
    }
  }

  @Test func logRecordFactsCarryTheSeverityText() throws {
    let request = PB.logs([
      PB.message([PB.varintField(2, 13), PB.string(3, "WARN")]),
      PB.message([PB.string(3, "first"), PB.string(3, "Error2")]),
      PB.message([PB.fixed64(1, 5)]),
    ])
    var texts: [String?] = []
    var numbers: [Int32] = []
    try request.withUnsafeBytes { raw in
      try OTLPWireReader.forEachLogRecord(raw) { facts in
        numbers.append(facts.severityNumber)
        texts.append(facts.severityText.map { String(decoding: raw[$0], as: UTF8.self) })
      }
    }
    #expect(numbers == [13, 0, 0])
    #expect(texts == ["WARN", "Error2", nil])
  }
}
