import Capture
import Manifest
import OTLPProto
import Testing
import WireTestSupport

@testable import Ingest

private func rejection(_ body: () throws(RejectedRequest) -> Void) -> RejectedRequest? {
  do {
    try body()
    return nil
  } catch {
    return error
  }
}

@Suite struct OTLPRequestDecoderTests {
  @Test func protobufReturnsTheClientsExactBytes() throws {
    for (signal, request) in try OTLPFixtures.protobufRequests() {
      #expect(try OTLPRequestDecoder.decode(body: request, signal: signal, encoding: .protobuf) == request)
    }
    let handMade = Wire.traces([(10, 20), (30, 40)])
    #expect(try OTLPRequestDecoder.decode(body: handMade, signal: .traces, encoding: .protobuf) == handMade)
  }

  @Test func emptyProtobufIsAValidEmptyRequest() throws {
    for signal in Signal.allCases {
      #expect(try OTLPRequestDecoder.decode(body: [], signal: signal, encoding: .protobuf) == [])
    }
  }

  @Test func truncatedProtobufNamesTheByteOffset() {
    let request = Wire.logs([(1, 2)])
    let error = rejection { () throws(RejectedRequest) in
      _ = try OTLPRequestDecoder.decode(body: Array(request.dropLast(3)), signal: .logs, encoding: .protobuf)
    }
    #expect(error?.kind == .malformed)
    #expect(error?.message.hasPrefix("protobuf: ") == true)
    #expect(error?.message.contains("at request byte") == true)
  }

  @Test func protobufOfTheWrongSignalIsMalformed() throws {
    // A span's fixed64 start time (field 7) where a metric expects the `sum` message.
    let error = rejection { () throws(RejectedRequest) in
      _ = try OTLPRequestDecoder.decode(body: Wire.traces([(5, 6)]), signal: .metrics, encoding: .protobuf)
    }
    #expect(error?.kind == .malformed)
  }

  @Test func invalidUTF8InAStringIsCaughtByTheFullDecode() {
    // resource_spans { scope_spans { spans { name: "\xff\xfe" } } }: the §6.3 walk does not read
    // span names, swift-protobuf does.
    let span = Wire.field(5, bytes: [0xFF, 0xFE])
    let request = Wire.field(1, bytes: Wire.field(2, bytes: Wire.field(2, bytes: span)))
    let error = rejection { () throws(RejectedRequest) in
      _ = try OTLPRequestDecoder.decode(body: request, signal: .traces, encoding: .protobuf)
    }
    #expect(error?.kind == .malformed)
    #expect(error?.message.contains("UTF-8") == true)
  }

  @Test func garbageBytesAreMalformed() {
    for garbage: [UInt8] in [[0xFF], [0x0A, 0x05, 0x01], Array("hello world".utf8), [0x0B]] {
      let error = rejection { () throws(RejectedRequest) in
        _ = try OTLPRequestDecoder.decode(body: garbage, signal: .traces, encoding: .protobuf)
      }
      #expect(error?.kind == .malformed, "\(garbage)")
    }
  }

  @Test func jsonOfEachSignalBecomesItsProtobuf() throws {
    for signal in Signal.allCases {
      for line in try OTLPFixtures.jsonLines(signal) {
        let request = try OTLPRequestDecoder.decode(body: line, signal: signal, encoding: .json)
        #expect(!request.isEmpty)
        // The result is protobuf of the right signal: it passes the protobuf path unchanged.
        #expect(try OTLPRequestDecoder.decode(body: request, signal: signal, encoding: .protobuf) == request)
      }
    }
    let request = try OTLPRequestDecoder.decode(body: Array("{}".utf8), signal: .logs, encoding: .json)
    #expect(request == [])
  }

  @Test func jsonOfAnotherSignalIsMalformed() throws {
    let line = try #require(try OTLPFixtures.jsonLines(.traces).first)
    let error = rejection { () throws(RejectedRequest) in
      _ = try OTLPRequestDecoder.decode(body: line, signal: .logs, encoding: .json)
    }
    #expect(error?.kind == .malformed)
    #expect(error?.message.contains("resourceSpans") == true)
  }

  @Test func jsonErrorsNameLineAndColumn() {
    let body = Array("{\n  \"resourceSpans\": [\n    {]\n}".utf8)
    let error = rejection { () throws(RejectedRequest) in
      _ = try OTLPRequestDecoder.decode(body: body, signal: .traces, encoding: .json)
    }
    #expect(error?.kind == .malformed)
    #expect(error?.message.hasPrefix("JSON line 3 column ") == true, "\(error?.message ?? "")")
  }

  @Test func deeplyNestedJSONIsRefused() {
    let depth = 10_000
    let body = Array(
      ("{\"resourceLogs\":" + String(repeating: "[", count: depth) + String(repeating: "]", count: depth) + "}").utf8)
    let error = rejection { () throws(RejectedRequest) in
      _ = try OTLPRequestDecoder.decode(body: body, signal: .logs, encoding: .json)
    }
    #expect(error?.kind == .malformed)
  }

  @Test func hexIDsOfTheWrongLengthAreRefused() {
    let body = Array(
      #"{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"abcd","spanId":"0011223344556677","name":"x"}]}]}]}"#
        .utf8)
    let error = rejection { () throws(RejectedRequest) in
      _ = try OTLPRequestDecoder.decode(body: body, signal: .traces, encoding: .json)
    }
    #expect(error?.kind == .malformed)
    #expect(error?.message.hasPrefix("JSON line 1 column ") == true)
  }

  @Test func emptyJSONBodyIsMalformed() {
    let error = rejection { () throws(RejectedRequest) in
      _ = try OTLPRequestDecoder.decode(body: [], signal: .traces, encoding: .json)
    }
    #expect(error?.kind == .malformed)
  }

  @Test func requestsOverTheRecordLimitAreTooLarge() throws {
    var limits = VerificationLimits()
    limits.maxRecordSize = 64
    let request = Wire.traces([(1, 2), (3, 4), (5, 6)])
    #expect(request.count > 48)
    let error = rejection { () throws(RejectedRequest) in
      _ = try OTLPRequestDecoder.decode(body: request, signal: .traces, encoding: .protobuf, limits: limits)
    }
    #expect(error?.kind == .payloadTooLarge)
  }
}
