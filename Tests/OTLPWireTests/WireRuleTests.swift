import OTLPWire
import Testing

/// Each case: the exact verdict, and swift-protobuf (with the §6.3 walk) agreeing with it.
@Suite struct WireRuleTests {
  @Test func emptyAndMinimalRequestsAreAccepted() {
    for signal in WireSignal.allCases {
      expectCheck([], signal, accepted: true)
      expectCheck(PB.ld(1, []), signal, accepted: true)
    }
    expectCheck(PB.oneSpan([]), accepted: true)
  }

  @Test func descendingFieldOrderIsAccepted() throws {
    PB.descending = true
    defer { PB.descending = false }
    let request = PB.traces([
      PB.resourceSpans(
        resource: PB.message([PB.ld(1, PB.keyValue("service.name", PB.stringValue("shop")))]),
        scopes: [
          PB.scopeSpans(scope: PB.string(1, "lib"), spans: [PB.span(), PB.span(start: 5, end: 50)], schemaURL: "s")
        ],
        schemaURL: "r")
    ])
    expectCheck(request, accepted: true)
    #expect(try OTLPWireReader.check(request, signal: .traces).times.range == (5, 50))
  }

  @Test func knownFieldWithAnotherWireTypeIsAnUnknownField() {
    expectCheck(PB.oneSpan([PB.varintField(5, 3)]), accepted: true)  // name as a varint
    expectCheck(PB.oneSpan([PB.fixed32(9, 1)]), accepted: true)  // attributes as fixed32
    expectCheck(PB.oneSpan([PB.ld(6, [1, 2, 3])]), accepted: true)  // kind as bytes
    expectCheck(PB.oneSpan([PB.ld(16, [])]), accepted: true)  // flags as bytes
    expectCheck(PB.oneSpan([PB.ld(15, PB.ld(3, [0xFF]))]), accepted: true)  // Status.code as bytes
    expectCheck(PB.oneSpan([PB.fixed64(1, 7)]), accepted: true)  // trace_id as fixed64
  }

  @Test func timeWalkPathFieldsMustHaveTheirWireType() {
    // The §6.3 walk refuses what swift-protobuf would keep as unknown fields.
    expectCheck(PB.varintField(1, 1), accepted: false)
    expectCheck(PB.traces([PB.varintField(2, 1)]), accepted: false)
    expectCheck(PB.traces([PB.ld(2, PB.fixed64(2, 1))]), accepted: false)
    expectCheck(PB.traces([PB.resourceSpans(scopes: [PB.varintField(2, 0)])]), accepted: false)
    let varintStart = PB.traces([PB.resourceSpans(scopes: [PB.scopeSpans(spans: [PB.varintField(7, 5)])])])
    let error = expectCheck(varintStart, accepted: false)
    #expect(error?.message == "Span.start_time_unix_nano: not fixed64")
    expectCheck(PB.logs([PB.varintField(11, 5)]), .logs, accepted: false)
    expectCheck(PB.logs([PB.fixed32(1, 5)]), .logs, accepted: false)
    expectCheck(PB.metrics([PB.varintField(5, 0)]), .metrics, accepted: false)
    expectCheck(PB.metrics([PB.ld(7, PB.varintField(1, 0))]), .metrics, accepted: false)
    expectCheck(PB.metrics([PB.ld(9, PB.ld(1, PB.ld(3, [])))]), .metrics, accepted: false)
    // Not on the path: swift-protobuf's rule alone.
    expectCheck(PB.metrics([PB.varintField(1, 0)]), .metrics, accepted: true)
    expectCheck(PB.metrics([PB.ld(7, PB.ld(1, PB.varintField(2, 5)))]), .metrics, accepted: true)
    expectCheck(PB.oneSpan([PB.ld(11, PB.varintField(1, 5))]), accepted: true)  // Event.time_unix_nano
  }

  @Test func packedAndUnpackedRepeatedScalars() {
    func histogramPoint(_ fields: [[UInt8]]) -> [UInt8] { PB.metrics([PB.ld(9, PB.ld(1, PB.message(fields)))]) }
    expectCheck(histogramPoint([PB.ld(6, Array(repeating: 1, count: 16))]), .metrics, accepted: true)
    expectCheck(histogramPoint([PB.ld(6, [])]), .metrics, accepted: true)
    expectCheck(histogramPoint([PB.ld(6, Array(repeating: 1, count: 12))]), .metrics, accepted: false)
    expectCheck(histogramPoint([PB.fixed64(6, 3), PB.fixed64(6, 4)]), .metrics, accepted: true)
    expectCheck(histogramPoint([PB.varintField(6, 3)]), .metrics, accepted: true)  // unknown then
    expectCheck(histogramPoint([PB.ld(7, Array(repeating: 0, count: 8))]), .metrics, accepted: true)
    expectCheck(histogramPoint([PB.ld(7, Array(repeating: 0, count: 7))]), .metrics, accepted: false)
    expectCheck(histogramPoint([PB.fixed32(7, 0)]), .metrics, accepted: true)
    func buckets(_ fields: [[UInt8]]) -> [UInt8] {
      PB.metrics([PB.ld(10, PB.ld(1, PB.ld(8, PB.message(fields))))])
    }
    expectCheck(buckets([PB.ld(2, PB.varint(1) + PB.varint(300) + PB.varint(UInt64.max))]), .metrics, accepted: true)
    expectCheck(buckets([PB.ld(2, [0x01, 0x80])]), .metrics, accepted: false)
    expectCheck(buckets([PB.varintField(2, 7), PB.varintField(2, 8)]), .metrics, accepted: true)
    expectCheck(buckets([PB.fixed64(2, 7)]), .metrics, accepted: true)
    // Not on the §6.3 path, so the tenth byte only has to end the varint.
    expectCheck(buckets([PB.ld(2, Array(repeating: 0xFF, count: 9) + [0x7F])]), .metrics, accepted: true)
    expectCheck(buckets([PB.ld(2, Array(repeating: 0xFF, count: 10) + [0x01])]), .metrics, accepted: false)
  }

  @Test func stringsMustBeUTF8AndBytesNeedNot() {
    let invalid: [[UInt8]] = [
      [0xFF], [0xC0, 0x80], [0xC1, 0xBF], [0xE0, 0x80, 0x80], [0xED, 0xA0, 0x80], [0xF4, 0x90, 0x80, 0x80],
      [0xF5, 0x80, 0x80, 0x80], [0xE2, 0x82], [0x80], Array("abcdefgh".utf8) + [0xE2, 0x82],
      Array("12345678abcdefgh".utf8) + [0xF0, 0x9F, 0x98] + Array("xyz".utf8),
    ]
    for bytes in invalid {
      let error = expectCheck(PB.oneSpan([PB.ld(5, bytes)]), accepted: false)
      #expect(error?.message == "Span.name: invalid UTF-8")
      expectCheck(PB.oneSpan([PB.ld(4, bytes)]), accepted: true)  // parent_span_id is bytes
      expectCheck(PB.oneSpan([PB.ld(99, bytes)]), accepted: true)  // unknown
    }
    let valid: [[UInt8]] = [
      Array("grüße, 世界, 🙂 ok".utf8), [0xED, 0x9F, 0xBF], [0xF4, 0x8F, 0xBF, 0xBF], [0xEE, 0x80, 0x80],
      [0xC2, 0x80], [], Array("an ASCII run longer than eight bytes".utf8),
    ]
    for bytes in valid { expectCheck(PB.oneSpan([PB.ld(5, bytes)]), accepted: true) }
    let deepString = PB.oneSpan([PB.ld(9, PB.keyValue("k", PB.ld(5, PB.ld(1, PB.ld(1, [0xFF])))))])
    expectCheck(deepString, accepted: false)
    expectCheck(PB.oneSpan([PB.ld(9, PB.keyValue("k", PB.ld(7, [0xFF])))]), accepted: true)
    expectCheck(PB.logs([PB.ld(12, [0xC0])]), .logs, accepted: false)  // event_name
    let entityRef = PB.traces([PB.resourceSpans(resource: PB.ld(3, PB.ld(3, [0xFF])), scopes: [])])
    expectCheck(entityRef, accepted: false)  // EntityRef.id_keys, a repeated string
  }

  @Test func varintRules() {
    let tenByteOne: [UInt8] = Array(repeating: 0xFF, count: 9) + [0x01]
    let tenByteTwo: [UInt8] = Array(repeating: 0xFF, count: 9) + [0x02]
    let tenByteBig: [UInt8] = Array(repeating: 0x80, count: 9) + [0x7F]
    let elevenBytes: [UInt8] = Array(repeating: 0x80, count: 10) + [0x00]
    // Span.kind lies on the §6.3 path: the walk refuses a tenth byte above 1.
    expectCheck(PB.oneSpan([PB.tag(6, 0) + tenByteOne]), accepted: true)
    expectCheck(PB.oneSpan([PB.tag(6, 0) + tenByteTwo]), accepted: false)
    expectCheck(PB.oneSpan([PB.tag(6, 0) + elevenBytes]), accepted: false)
    // Status.code does not: swift-protobuf drops the overflowing bits.
    expectCheck(PB.oneSpan([PB.ld(15, PB.tag(3, 0) + tenByteTwo)]), accepted: true)
    expectCheck(PB.oneSpan([PB.ld(15, PB.tag(3, 0) + tenByteBig)]), accepted: true)
    expectCheck(PB.oneSpan([PB.ld(15, PB.tag(3, 0) + elevenBytes)]), accepted: false)
    expectCheck(PB.oneSpan([PB.ld(15, PB.tag(3, 0) + [0x80])]), accepted: false)
    // A length prefix padded to 10 bytes.
    let paddedLength: [UInt8] = [0x83] + Array(repeating: 0x80, count: 8) + [0x00]
    expectCheck(PB.oneSpan([PB.tag(5, 2) + paddedLength + Array("abc".utf8)]), accepted: true)
    let overflowLength: [UInt8] = [0x83] + Array(repeating: 0x80, count: 8) + [0x02]
    expectCheck(PB.oneSpan([PB.tag(5, 2) + overflowLength + Array("abc".utf8)]), accepted: false)
    expectCheck(PB.oneSpan([PB.ld(15, PB.tag(2, 2) + overflowLength + Array("abc".utf8))]), accepted: true)
  }

  @Test func tagRules() {
    expectCheck(PB.oneSpan([[0x00, 0x00]]), accepted: false)  // field 0
    expectCheck(PB.oneSpan([[0x80, 0x00, 0x00]]), accepted: false)  // field 0, two-byte tag
    expectCheck(PB.oneSpan([[0x0E]]), accepted: false)  // wire type 6
    expectCheck(PB.oneSpan([[0x0F]]), accepted: false)  // wire type 7
    expectCheck(PB.oneSpan([[0x0C]]), accepted: false)  // end-group outside a group
    expectCheck(PB.oneSpan([PB.tag(536_870_911, 0) + [1]]), accepted: true)  // the largest field number
    expectCheck(PB.oneSpan([[0xF8, 0xFF, 0xFF, 0xFF, 0x1F, 0x01]]), accepted: false)  // 2^29
    expectCheck(PB.oneSpan([[0xAA, 0x80, 0x00, 0x01, 0x41]]), accepted: true)  // name, padded tag
    expectCheck(PB.oneSpan([[0xA8, 0x80, 0x80, 0x80, 0x00, 0x01]]), accepted: true)  // kind, 5-byte tag
    expectCheck(PB.oneSpan([[0xA8, 0x80, 0x80, 0x80, 0x80, 0x00, 0x01]]), accepted: false)  // 6-byte tag
    expectCheck(PB.oneSpan([[0xA8]]), accepted: false)  // truncated tag
  }

  @Test func groupsInUnknownFields() {
    expectCheck(PB.oneSpan([PB.group(20, PB.varintField(1, 1) + PB.string(2, "x") + PB.group(3, []))]), accepted: true)
    expectCheck(PB.oneSpan([PB.tag(20, 3) + PB.tag(21, 4)]), accepted: false)  // mismatched end
    expectCheck(PB.oneSpan([PB.tag(20, 3) + PB.varintField(1, 1)]), accepted: false)  // unterminated
    expectCheck(PB.group(5, []), accepted: true)  // a group at request level
    expectCheck(PB.oneSpan([PB.group(5, [])]), accepted: true)  // name sent as a group
    // Inside a group, tags are plain varints: 10 bytes is fine, the walk still bounds the tenth byte.
    let tenByteTag: [UInt8] = [0x88] + Array(repeating: 0x80, count: 8) + [0x00] + [0x01]
    expectCheck(PB.oneSpan([PB.group(20, tenByteTag)]), accepted: true)
    let overflowTag: [UInt8] = [0x88] + Array(repeating: 0x80, count: 8) + [0x02] + [0x01]
    expectCheck(PB.oneSpan([PB.group(20, overflowTag)]), accepted: false)
    expectCheck(PB.oneSpan([PB.ld(15, PB.group(20, overflowTag))]), accepted: true)
    expectCheck(PB.oneSpan([PB.group(20, [0x00])]), accepted: false)  // field 0 inside
    expectCheck(PB.oneSpan([PB.group(20, [0x0F])]), accepted: false)  // wire 7 inside
  }

  @Test func groupDepthLimits() {
    // Span (depth 4): the walk allows 64 nested groups, swift-protobuf 96.
    expectCheck(PB.oneSpan([PB.nestedGroups(20, depth: 64)]), accepted: true)
    expectCheck(PB.oneSpan([PB.nestedGroups(20, depth: 65)]), accepted: false)
    // Status (depth 5) is not on the walk: 95 groups reach depth 100, 96 pass it.
    expectCheck(PB.oneSpan([PB.ld(15, PB.nestedGroups(20, depth: 95))]), accepted: true)
    expectCheck(PB.oneSpan([PB.ld(15, PB.nestedGroups(20, depth: 96))]), accepted: false)
  }

  @Test func messageDepthLimitCountsEveryMessage() {
    // Span attributes: request 1, ResourceSpans 2, ScopeSpans 3, Span 4, KeyValue 5, AnyValue 6;
    // each ArrayValue + AnyValue pair adds 2, each KeyValueList + KeyValue + AnyValue 3.
    func arrays(_ pairs: Int, innermost: [UInt8] = []) -> [UInt8] {
      var value = innermost
      for _ in 0..<pairs { value = PB.ld(5, PB.ld(1, value)) }
      return PB.oneSpan([PB.ld(9, PB.keyValue("k", value))])
    }
    expectCheck(arrays(47), accepted: true)  // depth 100
    expectCheck(arrays(48), accepted: false)  // depth 102
    expectCheck(arrays(46, innermost: PB.ld(5, [])), accepted: true)  // empty ArrayValue at 99
    expectCheck(arrays(47, innermost: PB.ld(5, [])), accepted: false)  // empty ArrayValue at 101
    expectCheck(arrays(47, innermost: PB.group(20, [])), accepted: false)  // a group at 101
    expectCheck(arrays(46, innermost: PB.group(20, PB.group(21, []))), accepted: true)  // groups 99, 100
    func lists(_ triples: Int) -> [UInt8] {
      var value: [UInt8] = []
      for _ in 0..<triples { value = PB.ld(6, PB.ld(1, PB.message([PB.string(1, "k"), PB.ld(2, value)]))) }
      return PB.oneSpan([PB.ld(9, PB.keyValue("k", value))])
    }
    expectCheck(lists(31), accepted: true)  // depth 99
    expectCheck(lists(32), accepted: false)  // depth 102
  }

  @Test func oneofAndSingularFieldsSetTwice() throws {
    let kv = PB.keyValue("k", PB.stringValue("a") + PB.varintField(3, 5) + PB.ld(5, []) + PB.stringValue("b"))
    expectCheck(PB.oneSpan([PB.ld(9, kv)]), accepted: true)
    let metric = PB.ld(5, PB.ld(1, PB.fixed64(3, 7))) + PB.ld(7, PB.ld(1, PB.fixed64(3, 9)))
    expectCheck(PB.metrics([metric]), .metrics, accepted: true)
    let twice = PB.oneSpan([PB.fixed64(7, 1), PB.fixed64(8, 99), PB.ld(15, PB.varintField(3, 2)), PB.ld(15, [])])
    expectCheck(twice, accepted: true)
    #expect(try OTLPWireReader.check(twice, signal: .traces).times.range == (1, 99))
  }

  @Test func unknownFieldsAnywhere() {
    let unknown = PB.varintField(1000, 1) + PB.fixed32(77, 1) + PB.ld(3000, [0xFF, 0xFE]) + PB.fixed64(55, 2)
    let request = PB.traces([
      PB.resourceSpans(
        resource: PB.ld(1, PB.message([PB.string(1, "k"), PB.ld(2, unknown)])) + unknown,
        scopes: [PB.scopeSpans(scope: unknown, spans: [PB.span(extra: [unknown])]) + unknown]) + unknown
    ])
    expectCheck(request + unknown, accepted: true)
  }

  @Test func truncationAndLengths() {
    let request = PB.oneSpan([PB.string(3, "tracestate")])
    for cut in 1..<request.count { expectCheck(Array(request[0..<cut]), accepted: false) }
    expectCheck(PB.oneSpan([PB.tag(5, 2) + PB.varint(100) + [0x41]]), accepted: false)
    expectCheck(PB.oneSpan([PB.tag(40, 1) + [1, 2, 3]]), accepted: false)
    expectCheck(PB.oneSpan([PB.tag(40, 5) + [1, 2, 3]]), accepted: false)
  }

  @Test func errorsNameTheFieldPath() {
    let error = expectCheck(
      PB.oneSpan([PB.ld(9, PB.keyValue("k", PB.stringValue("\u{1}") + PB.ld(1, [0xFF])))]), accepted: false)
    #expect(error?.message == "AnyValue.string_value: invalid UTF-8")
    #expect(error?.description.hasSuffix("at request byte \(error?.offset ?? -1)") == true)
  }
}

@Suite struct FastPathTests {
  /// The attribute fast path reads a one-byte length; a string_value whose multi-byte length
  /// happens to equal the AnyValue's size minus 2 must not be taken for it.
  @Test func attributeStringWithAMultiByteLengthIsReadAsSuch() {
    // AnyValue of 135 bytes: 0x0A, length 0x85 0x01 (133), then only 132 bytes.
    let value: [UInt8] = [0x0A, 0x85, 0x01] + Array(repeating: 0x41, count: 132)
    expectCheck(PB.oneSpan([PB.ld(9, PB.message([PB.string(1, "k"), PB.ld(2, value)]))]), accepted: false)
    let fits: [UInt8] = [0x0A, 0x84, 0x01] + Array(repeating: 0x41, count: 132)
    expectCheck(PB.oneSpan([PB.ld(9, PB.message([PB.string(1, "k"), PB.ld(2, fits)]))]), accepted: true)
  }

  @Test func shortAndLongStringsAtEveryLengthAndPosition() {
    for length in 0..<40 {
      for bad in [-1] + Array(0..<length) {
        var text = Array(repeating: UInt8(ascii: "a"), count: length)
        if bad >= 0 { text[bad] = 0xFF }
        let accepted = bad < 0
        expectCheck(PB.oneSpan([PB.ld(9, PB.keyValue("k", PB.ld(1, text)))]), accepted: accepted)
        expectCheck(PB.oneSpan([PB.ld(9, PB.message([PB.ld(1, text), PB.ld(2, [])]))]), accepted: accepted)
        expectCheck(PB.oneSpan([PB.ld(5, text)]), accepted: accepted)
      }
    }
  }
}
