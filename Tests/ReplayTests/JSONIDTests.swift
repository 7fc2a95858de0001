import Manifest
import Testing

@testable import Replay

@Suite struct JSONIDTests {
  func text(_ bytes: [UInt8]) -> String { String(decoding: bytes, as: UTF8.self) }

  @Test func idValuesBecomeHexAndNothingElseChanges() throws {
    // 16 bytes 00..0f as base64, 8 bytes ff as base64.
    let input =
      #"{"traceId":"AAECAwQFBgcICQoLDA0ODw==","spanId":"//////////8=","name":"traceId","x":{"parentSpanId":""}}"#
    let output = text(try OTLPJSONEncoding.hexIDs(Array(input.utf8)))
    #expect(
      output
        == #"{"traceId":"000102030405060708090a0b0c0d0e0f","spanId":"ffffffffffffffff","name":"traceId","x":{"parentSpanId":""}}"#
    )
  }

  @Test func keysInsideStringsAndEscapesDoNotMatch() throws {
    let input = #"{"body":"{\"traceId\":\"AAAA\"}","attributes":[{"key":"spanId","value":{"stringValue":"AAAA"}}]}"#
    #expect(text(try OTLPJSONEncoding.hexIDs(Array(input.utf8))) == input)
  }

  @Test func invalidBase64InAnIdIsAnError() {
    #expect(throws: ReplayError.self) { try OTLPJSONEncoding.hexIDs(Array(#"{"spanId":"!!"}"#.utf8)) }
  }

  @Test func base64DecodesStandardAndPaddedForms() {
    #expect(Base64.decode(Array("TWFu".utf8)) == Array("Man".utf8))
    #expect(Base64.decode(Array("TWE=".utf8)) == Array("Ma".utf8))
    #expect(Base64.decode(Array("TQ==".utf8)) == Array("M".utf8))
    #expect(Base64.decode(Array("T".utf8)) == nil)
    #expect(Base64.decode(Array("TQ=a".utf8)) == nil)
  }

  @Test func aRealRequestConvertsWithHexIdsAndStringInt64s() throws {
    // ExportTraceServiceRequest → ResourceSpans → ScopeSpans → Span(trace_id, span_id, name, start).
    func field(_ number: UInt8, _ bytes: [UInt8]) -> [UInt8] { [number << 3 | 2, UInt8(bytes.count)] + bytes }
    var start: [UInt8] = [7 << 3 | 1]
    for shift in stride(from: 0, to: 64, by: 8) {
      start.append(UInt8(truncatingIfNeeded: UInt64(1_700_000_000_000_000_001) >> UInt64(shift)))
    }
    let span =
      field(1, Array(0..<16)) + field(2, [UInt8](repeating: 0xEE, count: 8)) + field(5, Array("op".utf8)) + start
    let request = field(1, field(2, field(2, span)))
    let json = text(try OTLPJSONEncoding.json(request: request, signal: .traces))
    #expect(json.contains(#""traceId":"000102030405060708090a0b0c0d0e0f""#))
    #expect(json.contains(#""spanId":"eeeeeeeeeeeeeeee""#))
    #expect(json.contains(#""startTimeUnixNano":"1700000000000000001""#))
    #expect(json.hasPrefix(#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"#))
  }
}
