import Testing

@testable import Replay

@Suite struct HTTPExporterTests {
  @Test func aTenantThatWouldBreakTheHeadIsRefused() throws {
    let destination = try SealedDestination(
      endpoint: EndpointURL("http://127.0.0.1:4318"), allowlist: Allowlist(rules: []))

    let exporter = HTTPExporter(destination: destination, json: false, timeoutSeconds: 1)
    #expect(throws: HTTPExporter.RequestHeadError.self) {
      try exporter.requestHead(signal: .traces, tenant: "a\r\nX-Injected: 1", length: 1)
    }
    let head = String(decoding: try exporter.requestHead(signal: .logs, tenant: "acme", length: 5), as: UTF8.self)
    #expect(head.hasPrefix("POST /v1/logs HTTP/1.1\r\n") && head.contains("\r\nX-Scope-OrgID: acme\r\n"))
    #expect(
      head.hasSuffix("Content-Length: 5\r\nUser-Agent: stella-forensics-replay/0.1.0\r\nX-Scope-OrgID: acme\r\n\r\n"))
  }
}
