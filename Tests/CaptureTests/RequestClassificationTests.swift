import Manifest
import Testing

@testable import Capture
@testable import Ingest
@testable import Receivers

/// The per-request classifiers that compare bytes instead of building strings (they run for every
/// request): they must still accept exactly what the string-based versions accepted.
@Suite struct RequestClassificationTests {
  @Test func contentTypeIsMatchedCaseInsensitivelyWithParametersAndSpacesIgnored() {
    let cases: [(String?, OTLPEncoding?)] = [
      ("application/x-protobuf", .protobuf),
      ("Application/X-Protobuf", .protobuf),
      ("application/x-protobuf; charset=binary", .protobuf),
      ("\tapplication/x-protobuf \t", .protobuf),
      ("application/json", .json),
      (" APPLICATION/JSON ; charset=utf-8", .json),
      ("application/json;", .json),
      ("application/jsonx", nil),
      ("application/x-protobu", nil),
      ("application/ json", nil),
      ("text/plain", nil),
      ("", nil),
      (";application/json", nil),
      (nil, nil),
    ]
    for (value, expected) in cases {
      #expect(OTLPHTTPProtocol.encoding(forContentType: value) == expected, "Content-Type \(value ?? "nil")")
    }
  }

  @Test func signalPathIgnoresTheQueryAndNothingElse() {
    let cases: [(String, Signal?)] = [
      ("/v1/traces", .traces),
      ("/v1/logs?tenant=a", .logs),
      ("/v1/metrics?", .metrics),
      ("/v1/traces/", nil),
      ("/V1/traces", nil),
      ("/v1/trace", nil),
      ("/v1/tracesx?a", nil),
      ("?/v1/traces", nil),
      ("", nil),
    ]
    for (uri, expected) in cases {
      #expect(OTLPHTTPProtocol.signal(forURI: uri) == expected, "URI \(uri)")
    }
  }

  @Test func namesAreCheckedByteForByte() {
    #expect(TenantName.problem(with: "acme.prod_eu-1:team@x") == nil)
    #expect(TenantName.problem(with: String(repeating: "a", count: 255)) == nil)
    #expect(TenantName.problem(with: String(repeating: "a", count: 256)) == "must be 1...255 bytes long")
    #expect(TenantName.problem(with: "") == "must be 1...255 bytes long")
    #expect(TenantName.problem(with: "a/b") == "\"a/b\" may hold only letters, digits and . _ - : @")
    #expect(TenantName.problem(with: "café") != nil)
    #expect(NodeID.problem(with: "node:1") == "\"node:1\" may hold only letters, digits and . _ -")
    #expect(NodeID.problem(with: "node-1.eu_west") == nil)
  }
}
