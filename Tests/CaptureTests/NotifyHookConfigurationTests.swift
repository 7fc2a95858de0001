import Foundation
import Manifest
import Testing

@testable import Capture
@testable import Incidents

@Suite struct NotifyHookConfigurationTests {
  private let fullYAML = """
    profile: default
    listeners:
      admin: 127.0.0.1:4320
    hooks:
      queue-size: 50
      webhooks:
        - url: http://127.0.0.1:9000/hooks/stella?src=capture
          events: [incident.started, bundle.sealed]
          headers:
            Authorization: Bearer abc
            X-Team: soc
          timeout: 2s
          max-attempts: 3
          backoff: 250ms
        - url: http://[::1]/x
      commands:
        - argv: [/usr/local/bin/page-oncall, --severity, high]
          events: [incident.expired]
          timeout: 10s
        - argv: [logger, -t, stella]
    """

  @Test func readsEveryKeyAndAppliesDefaults() throws {
    let configuration = try HookConfiguration(yaml: fullYAML, path: "capture.yaml")
    #expect(configuration.queueSize == 50)
    #expect(configuration.webhooks.count == 2)
    let first = try #require(configuration.webhooks.first)
    #expect(first.url.host == "127.0.0.1")
    #expect(first.url.port == 9000)
    #expect(first.url.target == "/hooks/stella?src=capture")
    #expect(first.events == [.incidentStarted, .bundleSealed])
    #expect(first.headers.map(\.name) == ["Authorization", "X-Team"])
    #expect(first.headers.map(\.value) == ["Bearer abc", "soc"])
    #expect(first.timeoutMillis == 2000)
    #expect(first.maxAttempts == 3)
    #expect(first.backoffMillis == 250)
    let second = try #require(configuration.webhooks.last)
    #expect(second.url.host == "::1")
    #expect(second.url.port == 80)
    #expect(second.url.hostHeader == "[::1]")
    #expect(second.events == Set(NotifyEvent.Kind.allCases))
    #expect(second.timeoutMillis == 5000)
    #expect(second.maxAttempts == 5)
    #expect(second.backoffMillis == 1000)
    #expect(
      configuration.commands.map(\.argv) == [
        ["/usr/local/bin/page-oncall", "--severity", "high"], ["logger", "-t", "stella"],
      ])
    #expect(configuration.commands.first?.events == [.incidentExpired])
    #expect(configuration.commands.first?.timeoutMillis == 10_000)
    #expect(configuration.commands.last?.timeoutMillis == 30_000)
    #expect(configuration.commands.last?.events == Set(NotifyEvent.Kind.allCases))
  }

  @Test func aDocumentWithoutHooksHasNone() throws {
    #expect(try HookConfiguration(yaml: "profile: airgap\n", path: "c.yaml").isEmpty)
    #expect(try HookConfiguration(yaml: "", path: "c.yaml").isEmpty)
    #expect(try HookConfiguration(yaml: "hooks:\n", path: "c.yaml").isEmpty)
  }

  @Test func theExampleFileParses() throws {
    let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
      .deletingLastPathComponent()
    let path = repository.appendingPathComponent("config/hooks.example.yaml").path
    let text = try String(contentsOfFile: path, encoding: .utf8)
    let configuration = try HookConfiguration(yaml: text, path: path)
    #expect(!configuration.webhooks.isEmpty)
    #expect(!configuration.commands.isEmpty)
  }

  /// Each bad document, and words its error must contain: the file, the key, and why.
  @Test(arguments: [
    ("hooks:\n  webhooks:\n    - url: https://h/x\n", ["f.yaml", "hooks.webhooks[0].url", "https is not supported"]),
    ("hooks:\n  webhooks:\n    - url: ftp://h/x\n", ["f.yaml", "hooks.webhooks[0].url", "not an http:// URL"]),
    ("hooks:\n  webhooks:\n    - url: http://u:p@h/x\n", ["hooks.webhooks[0].url", "credentials"]),
    ("hooks:\n  webhooks:\n    - url: http://h:99999/\n", ["hooks.webhooks[0].url", "port"]),
    ("hooks:\n  webhooks:\n    - url: http://:80/\n", ["hooks.webhooks[0].url", "no host"]),
    ("hooks:\n  webhooks:\n    - events: [bundle.sealed]\n", ["f.yaml", "hooks.webhooks[0].url is missing"]),
    ("hooks:\n  webhooks:\n    - url: http://h/\n      retries: 3\n", ["unknown key hooks.webhooks[0].retries"]),
    (
      "hooks:\n  webhooks:\n    - url: http://h/\n      events: [incident.begun]\n",
      ["hooks.webhooks[0].events[0]", "unknown event \"incident.begun\""]
    ),
    ("hooks:\n  webhooks:\n    - url: http://h/\n      events: []\n", ["hooks.webhooks[0].events is empty"]),
    (
      "hooks:\n  webhooks:\n    - url: http://h/\n      timeout: soon\n",
      ["hooks.webhooks[0].timeout", "not a duration"]
    ),
    ("hooks:\n  webhooks:\n    - url: http://h/\n      timeout: 0s\n", ["hooks.webhooks[0].timeout", "outside"]),
    ("hooks:\n  webhooks:\n    - url: http://h/\n      max-attempts: 0\n", ["hooks.webhooks[0].max-attempts"]),
    (
      "hooks:\n  webhooks:\n    - url: http://h/\n      headers:\n        Content-Length: \"5\"\n",
      ["hooks.webhooks[0].headers.Content-Length", "set by the hook client"]
    ),
    (
      "hooks:\n  webhooks:\n    - url: http://h/\n      headers:\n        \"Bad Name\": x\n",
      ["hooks.webhooks[0].headers.Bad Name", "not a valid header name"]
    ),
    (
      "hooks:\n  webhooks:\n    - url: http://h/\n      headers:\n        X-A: \"a\\r\\nInjected: 1\"\n",
      ["hooks.webhooks[0].headers.X-A", "control character"]
    ),
    ("hooks:\n  webhooks:\n    url: http://h/\n", ["hooks.webhooks must be a list"]),
    ("hooks:\n  commands:\n    - events: [bundle.sealed]\n", ["hooks.commands[0].argv is missing"]),
    ("hooks:\n  commands:\n    - argv: []\n", ["hooks.commands[0].argv must name a program"]),
    ("hooks:\n  commands:\n    - argv: [x]\n      timeout: 1d\n", ["hooks.commands[0].timeout", "not a duration"]),
    ("hooks:\n  queue-size: 0\n", ["hooks.queue-size"]),
    ("hooks:\n  webhook:\n    - url: http://h/\n", ["unknown key hooks.webhook"]),
    ("hooks: [1, 2]\n", ["f.yaml", "hooks must be a mapping"]),
    ("hooks:\n  webhooks: [\n", ["f.yaml", "not valid YAML"]),
  ])
  func badConfigurationsAreErrorsNamingFileAndKey(yaml: String, expected: [String]) {
    do {
      let configuration = try HookConfiguration(yaml: yaml, path: "f.yaml")
      Issue.record("accepted: \(configuration)")
    } catch {
      for fragment in expected {
        #expect(error.message.contains(fragment), "\(error.message) lacks \(fragment)")
      }
    }
  }

  @Test func urlsAreSplitForTheRequest() throws {
    let plain = try HookURL(parsing: "http://example.org")
    #expect(plain.host == "example.org")
    #expect(plain.port == 80)
    #expect(plain.target == "/")
    #expect(plain.description == "http://example.org/")
    let query = try HookURL(parsing: "HTTP://10.0.0.1:8080?a=1#frag")
    #expect(query.target == "/?a=1")
    #expect(query.hostHeader == "10.0.0.1:8080")
    let v6 = try HookURL(parsing: "http://[fe80::1]:81/p")
    #expect(v6.host == "fe80::1")
    #expect(v6.hostHeader == "[fe80::1]:81")
  }
}

@Suite struct NotifyHookRetryPolicyTests {
  private func response(_ status: Int, _ headers: [String: String] = [:]) -> Result<HookHTTPResponse, HookHTTPError> {
    .success(HookHTTPResponse(status: status, headers: headers, body: []))
  }

  @Test func backoffDoublesAndIsCapped() {
    #expect((1...5).map { WebhookRetryPolicy.backoff(attempt: $0, base: 1000) } == [1000, 2000, 4000, 8000, 16_000])
    #expect(WebhookRetryPolicy.backoff(attempt: 7, base: 1000) == 60_000)
    #expect(WebhookRetryPolicy.backoff(attempt: 100, base: 1000) == 60_000)
    #expect(WebhookRetryPolicy.backoff(attempt: 1, base: 3_600_000) == 60_000)
  }

  @Test func decisionsFollowTheStatus() {
    func decide(_ attempt: Int, _ outcome: Result<HookHTTPResponse, HookHTTPError>) -> WebhookRetryPolicy.Decision {
      WebhookRetryPolicy.decide(attempt: attempt, maxAttempts: 3, backoffMillis: 100, outcome: outcome)
    }
    #expect(decide(1, response(200)) == .delivered)
    #expect(decide(1, response(204)) == .delivered)
    #expect(decide(1, response(503)) == .retry(afterMillis: 100, why: "HTTP 503"))
    #expect(decide(2, response(500)) == .retry(afterMillis: 200, why: "HTTP 500"))
    #expect(decide(1, response(429, ["retry-after": "7"])) == .retry(afterMillis: 7000, why: "HTTP 429"))
    #expect(decide(1, response(408)) == .retry(afterMillis: 100, why: "HTTP 408"))
    #expect(decide(1, response(404)) == .giveUp(why: "HTTP 404 (not retried)"))
    #expect(decide(1, response(301)) == .giveUp(why: "HTTP 301 (not retried)"))
    #expect(decide(3, response(503)) == .giveUp(why: "HTTP 503; gave up after 3 attempts"))
    let refused = HookHTTPError(kind: .connect, message: "connect to h:1: Connection refused")
    #expect(decide(1, .failure(refused)) == .retry(afterMillis: 100, why: "connect to h:1: Connection refused"))
    #expect(
      decide(3, .failure(refused)) == .giveUp(why: "connect to h:1: Connection refused; gave up after 3 attempts"))
  }

  @Test func retryAfterTakesSecondsOrADateAndIsBounded() {
    let now = 1_700_000_000.0  // Tue, 14 Nov 2023 22:13:20 GMT
    #expect(WebhookRetryPolicy.parseRetryAfter("3", nowUnixSeconds: now) == 3000)
    #expect(WebhookRetryPolicy.parseRetryAfter(" 0 ", nowUnixSeconds: now) == 0)
    #expect(WebhookRetryPolicy.parseRetryAfter("86400", nowUnixSeconds: now) == WebhookRetryPolicy.maxRetryAfterMillis)
    #expect(WebhookRetryPolicy.parseRetryAfter("Tue, 14 Nov 2023 22:13:30 GMT", nowUnixSeconds: now) == 10_000)
    #expect(WebhookRetryPolicy.parseRetryAfter("Tue, 14 Nov 2023 22:00:00 GMT", nowUnixSeconds: now) == 0)
    #expect(WebhookRetryPolicy.parseRetryAfter("-1", nowUnixSeconds: now) == nil)
    #expect(WebhookRetryPolicy.parseRetryAfter("soon", nowUnixSeconds: now) == nil)
  }
}

@Suite struct NotifyEventBodyTests {
  private let incident = NotifyEvent.Incident(
    id: "INC-7", reason: "exfiltration \"suspected\"", declaredBy: "alice@host", tenants: ["acme", "beta"],
    startedAtUnixNano: 1_764_064_800_123_456_789, expiresAtUnixNano: 1_764_068_400_123_456_789)

  @Test func startedBodyIsCanonicalAndCarriesTheIncident() throws {
    let event = NotifyEvent(kind: .incidentStarted, incident: incident, nodeID: "node-a", eventID: "e-1")
    let body = try event.body(sentAtUnixNano: 1_764_064_801_000_000_000)
    // Canonical: parsing and re-serializing gives the same bytes.
    let parsed = try CanonicalJSON.parse(body)
    #expect(try CanonicalJSON.serialize(parsed) == body)
    #expect(parsed["schema"] == .string("stella-forensics.notify.v1"))
    #expect(parsed["event"] == .string("incident.started"))
    #expect(parsed["eventId"] == .string("e-1"))
    #expect(parsed["sentAt"] == .string("2025-11-25T10:00:01.000000000Z"))
    #expect(parsed["sentAtUnixNano"] == .string("1764064801000000000"))
    #expect(parsed["node"] == .string("node-a"))
    #expect(parsed["bundle"] == .null)
    let facts = try #require(parsed["incident"])
    #expect(facts["id"] == .string("INC-7"))
    #expect(facts["reason"] == .string("exfiltration \"suspected\""))
    #expect(facts["declaredBy"] == .string("alice@host"))
    #expect(facts["tenants"] == .array([.string("acme"), .string("beta")]))
    #expect(facts["startedAt"] == .string("2025-11-25T10:00:00.123456789Z"))
    #expect(facts["startedAtUnixNano"] == .string("1764064800123456789"))
    #expect(facts["stoppedAt"] == .null)
    #expect(facts["stoppedAtUnixNano"] == .null)
    #expect(facts["expiresAt"] == .string("2025-11-25T11:00:00.123456789Z"))
    #expect(facts["expiresAtUnixNano"] == .string("1764068400123456789"))
  }

  @Test func sealedBodyCarriesTheBundleDigests() throws {
    var stopped = incident
    stopped.stoppedAtUnixNano = 1_764_065_000_000_000_000
    let bundle = NotifyEvent.Bundle(
      path: "/tmp/b.tar", sha256: String(repeating: "a", count: 64), manifestSha256: String(repeating: "b", count: 64),
      records: 1234, blobs: 6)
    let event = NotifyEvent(kind: .bundleSealed, incident: stopped, nodeID: "node-a", bundle: bundle)
    let parsed = try CanonicalJSON.parse(try event.body(sentAtUnixNano: 0))
    #expect(parsed["event"] == .string("bundle.sealed"))
    #expect(parsed["incident"]?["stoppedAtUnixNano"] == .string("1764065000000000000"))
    let facts = try #require(parsed["bundle"])
    #expect(facts["path"] == .string("/tmp/b.tar"))
    #expect(facts["sha256"] == .string(String(repeating: "a", count: 64)))
    #expect(facts["manifestSha256"] == .string(String(repeating: "b", count: 64)))
    #expect(facts["records"] == .number("1234"))
    #expect(facts["blobs"] == .number("6"))
  }

  @Test func eventIdsAreUniqueUnlessGiven() {
    let ids = Set((0..<100).map { _ in NotifyEvent(kind: .incidentStopped, incident: incident, nodeID: "n").eventID })
    #expect(ids.count == 100)
  }
}
