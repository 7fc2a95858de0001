import Capture
import Foundation
import Logging
import Manifest
import Synchronization
import Testing

@testable import Incidents

#if canImport(Glibc)
  import Glibc
#endif

// MARK: - A real HTTP server for the hooks to post to

/// A minimal HTTP/1.1 server on 127.0.0.1 (its own accept thread, blocking sockets), written
/// apart from the client under test: it records each request and answers from a script.
final class HookReceiver: Sendable {
  struct Request: Sendable {
    var requestLine: String
    /// Lowercased names.
    var headers: [String: String]
    var body: [UInt8]
    var receivedAt: ContinuousClock.Instant
  }

  struct Answer: Sendable {
    var status: Int
    var headers: [String: String] = [:]
  }

  private struct State {
    var requests: [Request] = []
    var script: [Answer]
  }

  let port: Int
  private let listener: Int32
  private let state: Mutex<State>

  init(script: [Answer] = []) throws {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
    guard fd >= 0 else { throw TestFailure("socket: errno \(errno)") }
    var one: Int32 = 1
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = 0
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    let bound = withUnsafePointer(to: &address) {
      $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    }
    guard bound == 0, listen(fd, 64) == 0 else {
      close(fd)
      throw TestFailure("bind/listen: errno \(errno)")
    }
    self.listener = fd
    self.port = try Self.localPort(fd)
    self.state = Mutex(State(script: script))
    let thread = Thread { [self] in acceptLoop() }
    thread.start()
  }

  static func localPort(_ fd: Int32) throws -> Int {
    var address = sockaddr_in()
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    let named = withUnsafeMutablePointer(to: &address) {
      $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
    }
    guard named == 0 else { throw TestFailure("getsockname: errno \(errno)") }
    return Int(UInt16(bigEndian: address.sin_port))
  }

  var url: String { "http://127.0.0.1:\(port)/hook" }
  var requests: [Request] { state.withLock { $0.requests } }

  /// Waits until `count` requests arrived, or `timeout`.
  func waitFor(_ count: Int, timeout: Duration = .seconds(10)) async -> [Request] {
    let deadline = ContinuousClock.now + timeout
    while ContinuousClock.now < deadline {
      let seen = requests
      if seen.count >= count { return seen }
      try? await Task.sleep(for: .milliseconds(10))
    }
    return requests
  }

  func stop() {
    shutdown(listener, Int32(SHUT_RDWR))
    close(listener)
  }

  private func acceptLoop() {
    while true {
      let connection = accept(listener, nil, nil)
      if connection < 0 {
        if errno == EINTR { continue }
        return
      }
      // One thread per connection: a stray or stalled peer (another suite's client that still
      // knows this port from an earlier listener) must not hold up the hook under test.
      let thread = Thread { [self] in
        serve(connection)
        close(connection)
      }
      thread.start()
    }
  }

  private func serve(_ fd: Int32) {
    var timeout = timeval(tv_sec: 5, tv_usec: 0)
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    var buffer: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 4096)
    var headEnd: Int?
    var contentLength = 0
    var head = ""
    while true {
      if headEnd == nil, let range = buffer.firstRange(of: Array("\r\n\r\n".utf8)) {
        headEnd = range.upperBound
        head = String(decoding: buffer[..<range.lowerBound], as: UTF8.self)
        for line in head.components(separatedBy: "\r\n").dropFirst() {
          let parts = line.split(separator: ":", maxSplits: 1)
          if parts.count == 2, parts[0].lowercased() == "content-length" {
            contentLength = Int(parts[1].trimmingCharacters(in: .whitespaces)) ?? 0
          }
        }
      }
      if let headEnd, buffer.count - headEnd >= contentLength { break }
      let count = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
      guard count > 0 else { return }
      buffer += chunk[..<count]
    }
    let lines = head.components(separatedBy: "\r\n")
    var headers: [String: String] = [:]
    for line in lines.dropFirst() {
      guard let colon = line.firstIndex(of: ":") else { continue }
      headers[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
    }
    let start = headEnd ?? buffer.count
    let request = Request(
      requestLine: lines.first ?? "", headers: headers, body: Array(buffer[start..<(start + contentLength)]),
      receivedAt: .now)
    // Only the webhook client's requests count; anything else reaching the port is not ours.
    guard request.headers["user-agent"] == "stella-forensics-notify" else { return }
    let answer = state.withLock { state -> Answer in
      state.requests.append(request)
      return state.script.isEmpty ? Answer(status: 200) : state.script.removeFirst()
    }
    var response = "HTTP/1.1 \(answer.status) Scripted\r\nContent-Length: 2\r\nConnection: close\r\n"
    for (name, value) in answer.headers { response += "\(name): \(value)\r\n" }
    response += "\r\nok"
    let bytes = Array(response.utf8)
    _ = bytes.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
  }
}

struct TestFailure: Error, CustomStringConvertible {
  var description: String
  init(_ description: String) { self.description = description }
}

/// A port nothing listens on: bound, then closed, so connecting is refused.
private func closedPort() throws -> Int {
  let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
  var address = sockaddr_in()
  address.sin_family = sa_family_t(AF_INET)
  address.sin_addr.s_addr = inet_addr("127.0.0.1")
  _ = withUnsafePointer(to: &address) {
    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
  }
  let port = try HookReceiver.localPort(fd)
  close(fd)
  return port
}

/// A listener that never accepts or answers: connections complete in the kernel's backlog and
/// then hear nothing, so every attempt runs into its timeout.
private final class SilentListener {
  let fd: Int32
  let port: Int
  init() throws {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    _ = withUnsafePointer(to: &address) {
      $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    }
    listen(fd, 16)
    self.fd = fd
    port = try HookReceiver.localPort(fd)
  }
  deinit { close(fd) }
}

/// Collects log messages so tests can check what was logged.
final class CapturedLogs: Sendable {
  struct Entry: Sendable {
    var level: Logger.Level
    var message: String
  }
  let entries = Mutex<[Entry]>([])

  var logger: Logger {
    var logger = Logger(label: "notify-test") { _ in CapturingHandler(sink: self) }
    logger.logLevel = .debug
    return logger
  }

  func messages(_ level: Logger.Level) -> [String] {
    entries.withLock { $0.filter { $0.level == level }.map(\.message) }
  }
}

private struct CapturingHandler: LogHandler {
  let sink: CapturedLogs
  var metadata: Logger.Metadata = [:]
  var logLevel: Logger.Level = .debug
  subscript(metadataKey key: String) -> Logger.Metadata.Value? {
    get { metadata[key] }
    set { metadata[key] = newValue }
  }
  func log(event: LogEvent) {
    sink.entries.withLock { $0.append(CapturedLogs.Entry(level: event.level, message: "\(event.message)")) }
  }
}

private func config(_ yaml: String) throws -> HookConfiguration {
  try HookConfiguration(yaml: yaml, path: "test.yaml")
}

private let incident = NotifyEvent.Incident(
  id: "INC-42", reason: "suspicious logins", declaredBy: "alice@soc-laptop", tenants: ["acme"],
  startedAtUnixNano: 1_764_064_800_000_000_000, expiresAtUnixNano: 1_764_068_400_000_000_000)

private func event(_ kind: NotifyEvent.Kind, bundle: NotifyEvent.Bundle? = nil) -> NotifyEvent {
  var facts = incident
  if kind != .incidentStarted { facts.stoppedAtUnixNano = 1_764_065_000_000_000_000 }
  return NotifyEvent(kind: kind, incident: facts, nodeID: "node-test", bundle: bundle)
}

/// Time taken by `body`, in milliseconds.
private func millis(_ body: () -> Void) -> Double {
  let start = ContinuousClock.now
  body()
  let elapsed = ContinuousClock.now - start
  return Double(elapsed.components.seconds) * 1000 + Double(elapsed.components.attoseconds) / 1e15
}

// MARK: - Delivery

@Suite(.serialized, .timeLimit(.minutes(2))) struct NotifyHookDeliveryTests {
  @Test func webhooksReceiveTheEventsTheySubscribeTo() async throws {
    let all = try HookReceiver()
    let sealedOnly = try HookReceiver()
    defer {
      all.stop()
      sealedOnly.stop()
    }
    let hooks = NotifyHooks(
      configuration: try config(
        """
        hooks:
          webhooks:
            - url: \(all.url)?team=soc
              headers: {Authorization: Bearer t0k3n}
            - url: \(sealedOnly.url)
              events: [bundle.sealed]
        """), enabled: true, logger: CapturedLogs().logger)
    let bundle = NotifyEvent.Bundle(
      path: "/evidence/INC-42.tar", sha256: String(repeating: "1", count: 64),
      manifestSha256: String(repeating: "2", count: 64), records: 99, blobs: 3)
    let started = event(.incidentStarted)
    let stopped = event(.incidentStopped)
    let sealed = event(.bundleSealed, bundle: bundle)
    for item in [started, stopped, sealed] { hooks.notify(item) }
    await hooks.drain(timeout: .seconds(10))

    let received = all.requests
    #expect(received.map(\.requestLine) == Array(repeating: "POST /hook?team=soc HTTP/1.1", count: 3))
    let bodies = try received.map { try CanonicalJSON.parse($0.body) }
    #expect(
      bodies.map { $0["event"] } == [
        .string("incident.started"), .string("incident.stopped"), .string("bundle.sealed"),
      ])
    #expect(bodies.map { $0["eventId"] } == [started, stopped, sealed].map { .string($0.eventID) })
    for (request, body) in zip(received, bodies) {
      #expect(request.headers["content-type"] == "application/json")
      #expect(request.headers["authorization"] == "Bearer t0k3n")
      #expect(request.headers["host"] == "127.0.0.1:\(all.port)")
      #expect(request.headers["x-stella-delivery-attempt"] == "1")
      #expect(
        request.headers["x-stella-event"] == body["event"].flatMap { if case .string(let s) = $0 { s } else { nil } })
      #expect(body["node"] == .string("node-test"))
      #expect(body["incident"]?["id"] == .string("INC-42"))
      #expect(body["incident"]?["reason"] == .string("suspicious logins"))
      #expect(body["incident"]?["declaredBy"] == .string("alice@soc-laptop"))
      #expect(body["incident"]?["tenants"] == .array([.string("acme")]))
      #expect(body["incident"]?["startedAtUnixNano"] == .string("1764064800000000000"))
    }
    #expect(bodies.first?["incident"]?["stoppedAt"] == .null)
    #expect(bodies.dropFirst().first?["incident"]?["stoppedAt"] == .string("2025-11-25T10:03:20.000000000Z"))
    #expect(bodies.last?["bundle"]?["sha256"] == .string(String(repeating: "1", count: 64)))
    #expect(bodies.last?["bundle"]?["manifestSha256"] == .string(String(repeating: "2", count: 64)))
    #expect(bodies.last?["bundle"]?["records"] == .number("99"))

    let onlySealed = sealedOnly.requests
    #expect(onlySealed.count == 1)
    #expect(onlySealed.first?.body == received.last?.body)
    let counters = hooks.counters
    #expect(counters.delivered == 4)
    #expect(counters.attempts == 4)
    #expect(counters.failed == 0)
    #expect(counters.dropped == 0)
  }

  /// A configuration reload (SIGHUP) moves events to the new hooks; the old hook still gets what
  /// was queued for it before the reload.
  @Test func aReloadSendsLaterEventsToTheNewHooksOnly() async throws {
    let before = try HookReceiver()
    let after = try HookReceiver()
    defer {
      before.stop()
      after.stop()
    }
    let hooks = NotifyHooks(
      configuration: try config("hooks:\n  webhooks:\n    - url: \(before.url)\n"), enabled: true,
      logger: CapturedLogs().logger)
    hooks.notify(event(.incidentStarted))
    hooks.reload(configuration: try config("hooks:\n  webhooks:\n    - url: \(after.url)\n"))
    hooks.notify(event(.incidentStopped))
    let old = await before.waitFor(1)
    let new = await after.waitFor(1)
    await hooks.drain(timeout: .seconds(10))
    #expect(old.count == 1 && before.requests.count == 1)
    #expect(new.count == 1 && after.requests.count == 1)
    #expect(try CanonicalJSON.parse(old[0].body)["event"] == .string("incident.started"))
    #expect(try CanonicalJSON.parse(new[0].body)["event"] == .string("incident.stopped"))
    #expect(hooks.hooks.map(\.hook) == ["POST \(after.url)"])
  }

  @Test func a503WithRetryAfterIsRetriedUntilAccepted() async throws {
    let receiver = try HookReceiver(script: [
      .init(status: 503, headers: ["Retry-After": "1"]), .init(status: 429, headers: ["Retry-After": "0"]),
      .init(status: 200),
    ])
    defer { receiver.stop() }
    // A backoff of 20 s would exceed the test's wait: the delays seen must be Retry-After's.
    let hooks = NotifyHooks(
      configuration: try config("hooks:\n  webhooks:\n    - url: \(receiver.url)\n      backoff: 20s\n"),
      enabled: true, logger: CapturedLogs().logger)
    hooks.notify(event(.incidentStarted))
    let seen = await receiver.waitFor(3)
    #expect(seen.count == 3)
    #expect(seen.map { $0.headers["x-stella-delivery-attempt"] } == ["1", "2", "3"])
    #expect(Set(seen.map(\.body)).count == 1, "every retry carries the same body (same eventId)")
    if seen.count == 3 {
      let firstGap = seen[1].receivedAt - seen[0].receivedAt
      let secondGap = seen[2].receivedAt - seen[1].receivedAt
      #expect(firstGap >= .milliseconds(950), "Retry-After: 1 honoured, waited \(firstGap)")
      #expect(firstGap < .seconds(5))
      #expect(secondGap < .milliseconds(900), "Retry-After: 0 means at once, waited \(secondGap)")
    }
    await hooks.drain(timeout: .seconds(5))
    #expect(hooks.counters == counters(delivered: 1, attempts: 3))
  }

  @Test func aFinalStatusIsNotRetried() async throws {
    let receiver = try HookReceiver(script: [.init(status: 404)])
    defer { receiver.stop() }
    let logs = CapturedLogs()
    let hooks = NotifyHooks(
      configuration: try config("hooks:\n  webhooks:\n    - url: \(receiver.url)\n      backoff: 10ms\n"),
      enabled: true, logger: logs.logger)
    hooks.notify(event(.incidentStopped))
    await hooks.drain(timeout: .seconds(5))
    #expect(receiver.requests.count == 1)
    #expect(hooks.counters == counters(failed: 1, attempts: 1))
    #expect(logs.messages(.error).contains { $0.contains("HTTP 404") })
  }

  @Test func aDownEndpointDelaysNeitherTheCallerNorOtherHooks() async throws {
    let live = try HookReceiver()
    defer { live.stop() }
    let down = try closedPort()
    let logs = CapturedLogs()
    let hooks = NotifyHooks(
      configuration: try config(
        """
        hooks:
          webhooks:
            - url: http://127.0.0.1:\(down)/hook
              max-attempts: 3
              backoff: 300ms
            - url: \(live.url)
        """), enabled: true, logger: logs.logger)
    let start = ContinuousClock.now
    var slowest = 0.0
    for kind in [NotifyEvent.Kind.incidentStarted, .incidentStopped, .bundleSealed] {
      slowest = max(slowest, millis { hooks.notify(event(kind)) })
    }
    #expect(slowest < 250, "notify took \(slowest) ms")
    let seen = await live.waitFor(3)
    let liveDone = ContinuousClock.now - start
    #expect(seen.count == 3)
    // The down hook needs 3 × (300 ms + 600 ms) of backoff for its three events; the live hook
    // must not wait behind it.
    // Behind the down hook, the last live event would arrive after about 2.7 s.
    #expect(liveDone < .milliseconds(2000), "live hook took \(liveDone)")

    await hooks.drain(timeout: .seconds(20))
    let perHook = hooks.hooks
    #expect(perHook.map(\.hook) == ["POST http://127.0.0.1:\(down)/hook", "POST \(live.url)"])
    #expect(perHook.first?.counters == counters(failed: 3, attempts: 9))
    #expect(perHook.last?.counters == counters(delivered: 3, attempts: 3))
    #expect(logs.messages(.error).filter { $0.contains("gave up after 3 attempts") }.count == 3)
    #expect(logs.messages(.warning).contains { $0.contains("Connection refused") })
  }

  @Test func aSilentReceiverTimesOut() async throws {
    let silent = try SilentListener()
    let hooks = NotifyHooks(
      configuration: try config(
        "hooks:\n  webhooks:\n    - url: http://127.0.0.1:\(silent.port)/\n      timeout: 200ms\n      max-attempts: 2\n      backoff: 10ms\n"
      ), enabled: true, logger: CapturedLogs().logger)
    let start = ContinuousClock.now
    hooks.notify(event(.incidentStarted))
    await hooks.drain(timeout: .seconds(10))
    let elapsed = ContinuousClock.now - start
    #expect(hooks.counters == counters(failed: 1, attempts: 2))
    #expect(elapsed >= .milliseconds(400) && elapsed < .seconds(3), "took \(elapsed)")
  }

  @Test func aFullQueueDropsTheOldestEvent() async throws {
    let silent = try SilentListener()
    let logs = CapturedLogs()
    let hooks = NotifyHooks(
      configuration: try config(
        "hooks:\n  queue-size: 2\n  webhooks:\n    - url: http://127.0.0.1:\(silent.port)/\n      timeout: 2s\n      max-attempts: 1\n"
      ), enabled: true, logger: logs.logger)
    hooks.notify(event(.incidentStarted))
    // Wait until the worker holds the first event, so the queue is empty again.
    for _ in 0..<200 where hooks.hooks.first?.queued != 0 { try await Task.sleep(for: .milliseconds(5)) }
    try await Task.sleep(for: .milliseconds(20))
    for _ in 0..<4 { hooks.notify(event(.incidentStopped)) }
    #expect(hooks.hooks.first?.queued == 2)
    #expect(hooks.counters.dropped == 2)
    #expect(logs.messages(.error).filter { $0.contains("oldest event dropped") }.count == 2)
    // Draining for less than the attempt's timeout abandons the two still queued.
    await hooks.drain(timeout: .milliseconds(100))
    #expect(hooks.counters.dropped == 4)
    // Events after drain are dropped too.
    hooks.notify(event(.bundleSealed))
    #expect(hooks.counters.dropped == 5)
  }

  @Test func disabledHooksSendAndRunNothing() async throws {
    let receiver = try HookReceiver()
    defer { receiver.stop() }
    let directory = try temporaryDirectory()
    let marker = directory.appendingPathComponent("ran").path
    let logs = CapturedLogs()
    let hooks = NotifyHooks(
      configuration: try config(
        """
        hooks:
          webhooks:
            - url: \(receiver.url)
          commands:
            - argv: [/bin/sh, -c, 'touch "$0"', \(marker)]
        """), enabled: false, logger: logs.logger)
    for kind in NotifyEvent.Kind.allCases { hooks.notify(event(kind)) }
    try await Task.sleep(for: .milliseconds(300))
    await hooks.drain(timeout: .seconds(1))
    #expect(receiver.requests.isEmpty)
    #expect(!FileManager.default.fileExists(atPath: marker))
    #expect(hooks.counters == NotifyCounters())
    #expect(hooks.hooks.isEmpty)
    let warnings = logs.messages(.warning)
    #expect(warnings.count == 1)
    #expect(warnings.first?.contains("disabled") == true)
    #expect(hooks.statusJSON["enabled"] == .bool(false))
  }

  // MARK: - Commands

  @Test func aCommandGetsTheBodyOnStdinAndTheEventInItsEnvironment() async throws {
    let directory = try temporaryDirectory()
    let output = directory.appendingPathComponent("body.json").path
    let hooks = NotifyHooks(
      configuration: try config(
        """
        hooks:
          commands:
            - argv: [/bin/sh, -c, 'cat > "$0" && printf %s "$STELLA_EVENT $STELLA_EVENT_ID" > "$0.env"', \(output)]
              events: [incident.expired]
        """), enabled: true, logger: CapturedLogs().logger)
    let expired = event(.incidentExpired)
    hooks.notify(event(.incidentStarted))  // not subscribed
    hooks.notify(expired)
    await hooks.drain(timeout: .seconds(10))
    let body = try CanonicalJSON.parse(Array(try Data(contentsOf: URL(fileURLWithPath: output))))
    #expect(body["event"] == .string("incident.expired"))
    #expect(body["eventId"] == .string(expired.eventID))
    #expect(body["incident"]?["id"] == .string("INC-42"))
    let environment = try String(contentsOfFile: output + ".env", encoding: .utf8)
    #expect(environment == "incident.expired \(expired.eventID)")
    #expect(hooks.counters == counters(delivered: 1, attempts: 1))
  }

  @Test func failingAndHangingCommandsAreCountedAndKilled() async throws {
    let logs = CapturedLogs()
    let hooks = NotifyHooks(
      configuration: try config(
        """
        hooks:
          commands:
            - argv: [/bin/sh, -c, 'echo refused by policy >&2; exit 3']
            - argv: [/bin/sh, -c, 'sleep 30; echo never']
              timeout: 300ms
            - argv: [/nonexistent/notifier]
        """), enabled: true, logger: logs.logger)
    let start = ContinuousClock.now
    hooks.notify(event(.incidentStarted))
    await hooks.drain(timeout: .seconds(10))
    let elapsed = ContinuousClock.now - start
    #expect(elapsed < .seconds(5), "the hanging command was not killed at its timeout (\(elapsed))")
    #expect(hooks.hooks.map(\.counters) == Array(repeating: counters(failed: 1, attempts: 1), count: 3))
    let errors = logs.messages(.error)
    #expect(errors.contains { $0.contains("exited with status 3") && $0.contains("refused by policy") })
    #expect(errors.contains { $0.contains("past its timeout of 300 ms") })
    #expect(errors.contains { $0.contains("cannot run /nonexistent/notifier") })
  }

  @Test func aCommandThatIgnoresStdinStillRuns() async throws {
    let directory = try temporaryDirectory()
    let marker = directory.appendingPathComponent("ran").path
    // A body larger than a socket buffer, to a command that never reads it.
    var big = event(.incidentStarted)
    big.incident.reason = String(repeating: "r", count: 1 << 20)
    let hooks = NotifyHooks(
      configuration: try config("hooks:\n  commands:\n    - argv: [/bin/sh, -c, 'touch \"$0\"', \(marker)]\n"),
      enabled: true, logger: CapturedLogs().logger)
    hooks.notify(big)
    await hooks.drain(timeout: .seconds(10))
    #expect(FileManager.default.fileExists(atPath: marker))
    #expect(hooks.counters == counters(delivered: 1, attempts: 1))
  }
}

private func counters(delivered: UInt64 = 0, failed: UInt64 = 0, dropped: UInt64 = 0, attempts: UInt64)
  -> NotifyCounters
{
  var counters = NotifyCounters()
  counters.delivered = delivered
  counters.failed = failed
  counters.dropped = dropped
  counters.attempts = attempts
  return counters
}

private func temporaryDirectory() throws -> URL {
  let url = FileManager.default.temporaryDirectory.appendingPathComponent("notify-\(UUID().uuidString)")
  try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
  return url
}
