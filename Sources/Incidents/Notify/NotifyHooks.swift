import Dispatch
import Foundation
public import Logging
public import Manifest
import Synchronization

#if canImport(Glibc)
  import Glibc
#endif

/// Delivery counts, summed over hooks: each (event, hook) pair ends as exactly one of
/// delivered, failed or dropped.
public struct NotifyCounters: Sendable, Equatable {
  /// Deliveries a hook accepted (webhook 2xx, command exit 0).
  public var delivered: UInt64 = 0
  /// Deliveries given up: attempts used up, a final HTTP status, a command failing or timing out.
  public var failed: UInt64 = 0
  /// Deliveries never completed: pushed out of a full queue, or still queued or waiting for a
  /// retry when ``NotifyHooks/drain(timeout:)`` gave up, or notified after it.
  public var dropped: UInt64 = 0
  /// HTTP requests sent and commands started.
  public var attempts: UInt64 = 0

  public init() {}

  static func + (lhs: NotifyCounters, rhs: NotifyCounters) -> NotifyCounters {
    var sum = lhs
    sum.delivered += rhs.delivered
    sum.failed += rhs.failed
    sum.dropped += rhs.dropped
    sum.attempts += rhs.attempts
    return sum
  }
}

/// One hook's state, for `/status`.
public struct NotifyHookStatus: Sendable, Equatable {
  /// `POST http://host:port/path` or `command NAME`.
  public var hook: String
  /// Events waiting in its queue (not counting the one being delivered).
  public var queued: Int
  public var counters: NotifyCounters
}

/// Sends notify events to the configured webhooks and commands without ever making the caller
/// wait.
///
/// Every hook has its own bounded queue and its own delivery thread, so a receiver that is down,
/// slow or retrying holds up nothing but its own later events: not capture, not the caller of
/// ``notify(_:)``, not the other hooks. A full queue drops its oldest event (logged, counted)
/// rather than grow without bound or block.
///
/// When `enabled` is false (the `airgap` profile) no thread is started, nothing is ever sent or
/// run, and if hooks were configured a warning says so once, at creation.
///
/// Thread safety: each worker's queue and counters are guarded by its own `NSCondition`; the
/// closed flag and the worker list (replaced by ``reload(configuration:)``) by `Mutex`es; the
/// rest is immutable.
public final class NotifyHooks: Sendable {
  private let workerList: Mutex<[HookWorker]>
  private let logger: Logger
  /// Whether ``drain(timeout:)`` has run, after which events are dropped.
  private let closed = Mutex(false)
  /// Whether hooks may run at all.
  public let enabled: Bool

  /// Starts one delivery thread per configured hook (none when `enabled` is false).
  public init(configuration: HookConfiguration, enabled: Bool, logger: Logger) {
    self.logger = logger
    self.enabled = enabled
    guard enabled else {
      self.workerList = Mutex([])
      Self.warnDisabled(configuration, logger: logger)
      return
    }
    let workers = Self.workers(for: configuration, logger: logger)
    self.workerList = Mutex(workers)
    for worker in workers { worker.start() }
  }

  deinit {
    for worker in workers { worker.stop() }
  }

  private var workers: [HookWorker] { workerList.withLock { $0 } }

  private static func workers(for configuration: HookConfiguration, logger: Logger) -> [HookWorker] {
    configuration.webhooks.map { webhook in
      HookWorker(target: .webhook(webhook), events: webhook.events, capacity: configuration.queueSize, logger: logger)
    }
      + configuration.commands.map { command in
        HookWorker(
          target: .command(command), events: command.events, capacity: configuration.queueSize, logger: logger)
      }
  }

  private static func warnDisabled(_ configuration: HookConfiguration, logger: Logger) {
    guard !configuration.isEmpty else { return }
    logger.warning(
      "notify hooks are configured but disabled (profile airgap): no webhook will be called and no command run",
      metadata: [
        "webhooks": "\(configuration.webhooks.count)", "commands": "\(configuration.commands.count)",
      ])
  }

  /// Replaces every hook with those of `configuration` (a configuration reload): events from now
  /// on go to the new hooks, while the old ones finish what they had queued (retries included)
  /// for at most `drainTimeout` on a background thread, then stop. Counters start again at zero.
  public func reload(configuration: HookConfiguration, drainTimeout: Duration = .seconds(30)) {
    guard enabled else {
      Self.warnDisabled(configuration, logger: logger)
      return
    }
    guard !closed.withLock({ $0 }) else { return }
    let fresh = Self.workers(for: configuration, logger: logger)
    for worker in fresh { worker.start() }
    let old = workerList.withLock { workers in
      defer { workers = fresh }
      return workers
    }
    guard !old.isEmpty else { return }
    let deadline = HookHTTPClient.monotonicMillis() + Self.millis(drainTimeout)
    DispatchQueue.global().async {
      for worker in old { worker.waitUntilIdle(deadlineMillis: deadline) }
      for worker in old { worker.stop() }
    }
  }

  /// A duration in whole milliseconds, clamped to a day so the arithmetic cannot overflow.
  private static func millis(_ duration: Duration) -> UInt64 {
    let (seconds, attoseconds) = duration.components
    return UInt64(min(max(0, seconds), 86_400) * 1000 + max(0, attoseconds) / 1_000_000_000_000_000)
  }

  /// Queues `event` for every hook that subscribes to its kind and returns at once; delivery
  /// happens on the hooks' own threads.
  public func notify(_ event: NotifyEvent) {
    let targets = workers.filter { $0.events.contains(event.kind) }
    guard !targets.isEmpty else { return }
    let metadata: Logger.Metadata = ["event": "\(event.kind.rawValue)", "event-id": "\(event.eventID)"]
    if closed.withLock({ $0 }) {
      logger.error("notify hooks are shut down; event dropped", metadata: metadata)
      for worker in targets { worker.countDropped() }
      return
    }
    let body: [UInt8]
    do {
      body = try event.body(sentAtUnixNano: Self.realtimeNanos())
    } catch {
      logger.error("cannot encode the notify event, dropped: \(error)", metadata: metadata)
      for worker in targets { worker.countDropped() }
      return
    }
    let delivery = HookDelivery(kind: event.kind, eventID: event.eventID, body: body)
    for worker in targets { worker.enqueue(delivery) }
  }

  /// Lets queued deliveries (retries included) finish for at most `timeout`, then stops every
  /// hook: events still queued or waiting for a retry are dropped (logged, counted), a running
  /// command is killed. Events notified afterwards are dropped. For shutdown.
  ///
  /// An HTTP attempt in progress at the deadline is not interrupted; it ends within its own
  /// timeout, after this returns.
  public func drain(timeout: Duration) async {
    closed.withLock { $0 = true }
    guard !workers.isEmpty else { return }
    let deadline = HookHTTPClient.monotonicMillis() + Self.millis(timeout)
    let workers = self.workers
    await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
      // Waiting blocks, so it happens on a dispatch thread, never on the cooperative pool.
      DispatchQueue.global().async {
        for worker in workers { worker.waitUntilIdle(deadlineMillis: deadline) }
        for worker in workers { worker.stop() }
        continuation.resume()
      }
    }
  }

  /// Totals over every hook.
  public var counters: NotifyCounters {
    workers.reduce(NotifyCounters()) { $0 + $1.status().counters }
  }

  /// Each hook's queue length and counters, in configuration order (webhooks, then commands).
  public var hooks: [NotifyHookStatus] { workers.map { $0.status() } }

  /// The `/status` view: `{"attempts":N,"delivered":N,"dropped":N,"enabled":B,"failed":N,
  /// "hooks":[{"attempts":N,"delivered":N,"dropped":N,"failed":N,"hook":"…","queued":N},…]}`.
  public var statusJSON: JSONValue {
    func count(_ value: UInt64) -> JSONValue { .number(String(min(value, CanonicalJSON.maxSafeInteger))) }
    func counterMembers(_ counters: NotifyCounters) -> [(key: String, value: JSONValue)] {
      [
        ("attempts", count(counters.attempts)), ("delivered", count(counters.delivered)),
        ("dropped", count(counters.dropped)), ("failed", count(counters.failed)),
      ]
    }
    let hooks = self.hooks
    let total = hooks.reduce(NotifyCounters()) { $0 + $1.counters }
    return .object(
      counterMembers(total) + [
        ("enabled", .bool(enabled)),
        (
          "hooks",
          .array(
            hooks.map { hook in
              .object(
                counterMembers(hook.counters) + [("hook", .string(hook.hook)), ("queued", .integer(hook.queued))])
            })
        ),
      ])
  }

  static func realtimeNanos() -> UInt64 {
    var spec = timespec()
    clock_gettime(CLOCK_REALTIME, &spec)
    return UInt64(max(0, spec.tv_sec)) * 1_000_000_000 + UInt64(max(0, spec.tv_nsec))
  }
}

/// One event as every hook gets it: the body is encoded once.
struct HookDelivery: Sendable {
  var kind: NotifyEvent.Kind
  var eventID: String
  var body: [UInt8]
}

/// One hook's queue and delivery thread.
///
/// Thread safety: `queue`, `busy`, `stopping` and `counters` are guarded by `condition`; the
/// delivery thread holds it only to take work and to count, never during I/O or waits for a
/// process, so `enqueue` never blocks on delivery.
final class HookWorker: @unchecked Sendable {
  enum Target {
    case webhook(WebhookConfiguration)
    case command(CommandHookConfiguration)
  }

  let target: Target
  let events: Set<NotifyEvent.Kind>
  let capacity: Int
  let name: String
  private let logger: Logger

  private let condition = NSCondition()
  // Guarded by `condition`.
  private var queue: [HookDelivery] = []
  private var busy = false
  private var stopping = false
  private var counters = NotifyCounters()

  init(target: Target, events: Set<NotifyEvent.Kind>, capacity: Int, logger: Logger) {
    self.target = target
    self.events = events
    self.capacity = max(1, capacity)
    switch target {
    case .webhook(let webhook): name = "POST \(webhook.url)"
    case .command(let command): name = "command \(command.argv.first ?? "")"
    }
    var logger = logger
    logger[metadataKey: "hook"] = "\(name)"
    self.logger = logger
  }

  func start() {
    let thread = Thread { [self] in run() }
    thread.name = "stella-forensics notify \(name)"
    thread.start()
  }

  func enqueue(_ delivery: HookDelivery) {
    condition.lock()
    if stopping {
      counters.dropped += 1
      condition.unlock()
      logger.error("hook stopped; event dropped", metadata: ["event": "\(delivery.kind.rawValue)"])
      return
    }
    var pushedOut: HookDelivery?
    if queue.count >= capacity {
      pushedOut = queue.removeFirst()
      counters.dropped += 1
    }
    queue.append(delivery)
    condition.broadcast()
    condition.unlock()
    if let pushedOut {
      logger.error(
        "hook queue full (\(capacity) events); oldest event dropped",
        metadata: ["event": "\(pushedOut.kind.rawValue)", "event-id": "\(pushedOut.eventID)"])
    }
  }

  func countDropped() {
    condition.lock()
    counters.dropped += 1
    condition.unlock()
  }

  func status() -> NotifyHookStatus {
    condition.lock()
    defer { condition.unlock() }
    return NotifyHookStatus(hook: name, queued: queue.count, counters: counters)
  }

  /// Waits until nothing is queued or being delivered, or until the monotonic deadline.
  func waitUntilIdle(deadlineMillis: UInt64) {
    condition.lock()
    defer { condition.unlock() }
    while (busy || !queue.isEmpty) && !stopping {
      let now = HookHTTPClient.monotonicMillis()
      guard now < deadlineMillis else { return }
      _ = condition.wait(until: Date(timeIntervalSinceNow: Double(deadlineMillis - now) / 1000))
    }
  }

  /// Ends the thread: what is queued is dropped (counted), a retry wait or a running command is
  /// cut short. Idempotent.
  func stop() {
    condition.lock()
    guard !stopping else {
      condition.unlock()
      return
    }
    stopping = true
    let abandoned = queue.count
    counters.dropped += UInt64(abandoned)
    queue.removeAll()
    condition.broadcast()
    condition.unlock()
    if abandoned > 0 {
      logger.error("hooks shut down with \(abandoned) event(s) still queued; dropped")
    }
  }

  private var isStopping: Bool {
    condition.lock()
    defer { condition.unlock() }
    return stopping
  }

  private func run() {
    while true {
      condition.lock()
      while queue.isEmpty && !stopping { condition.wait() }
      if stopping {
        busy = false
        condition.broadcast()
        condition.unlock()
        return
      }
      let delivery = queue.removeFirst()
      busy = true
      condition.unlock()

      let outcome: Outcome
      switch target {
      case .webhook(let webhook): outcome = post(delivery, webhook)
      case .command(let command): outcome = runCommand(delivery, command)
      }

      condition.lock()
      switch outcome {
      case .delivered: counters.delivered += 1
      case .failed: counters.failed += 1
      case .abandoned: counters.dropped += 1
      }
      busy = false
      condition.broadcast()
      condition.unlock()
    }
  }

  private enum Outcome {
    case delivered
    case failed
    case abandoned
  }

  private func countAttempt() {
    condition.lock()
    counters.attempts += 1
    condition.unlock()
  }

  // MARK: - Webhooks

  private func post(_ delivery: HookDelivery, _ webhook: WebhookConfiguration) -> Outcome {
    let metadata: Logger.Metadata = ["event": "\(delivery.kind.rawValue)", "event-id": "\(delivery.eventID)"]
    var attempt = 1
    while true {
      countAttempt()
      let headers =
        [
          ("X-Stella-Event", delivery.kind.rawValue), ("X-Stella-Event-Id", delivery.eventID),
          ("X-Stella-Delivery-Attempt", String(attempt)),
        ] + webhook.headers
      let result: Result<HookHTTPResponse, HookHTTPError>
      do {
        result = .success(
          try HookHTTPClient.post(
            url: webhook.url, headers: headers, body: delivery.body, timeoutMillis: webhook.timeoutMillis))
      } catch {
        result = .failure(error)
      }
      let decision = WebhookRetryPolicy.decide(
        attempt: attempt, maxAttempts: webhook.maxAttempts, backoffMillis: webhook.backoffMillis, outcome: result)
      switch decision {
      case .delivered:
        logger.debug("event delivered", metadata: metadata.merging(["attempt": "\(attempt)"]) { $1 })
        return .delivered
      case .giveUp(let why):
        logger.error("event not delivered: \(why)", metadata: metadata.merging(["attempt": "\(attempt)"]) { $1 })
        return .failed
      case .retry(let delay, let why):
        logger.warning(
          "delivery attempt \(attempt) of \(webhook.maxAttempts) failed: \(why); retrying in \(delay) ms",
          metadata: metadata)
        guard sleep(millis: delay) else {
          logger.error("hooks shut down while waiting to retry; event dropped", metadata: metadata)
          return .abandoned
        }
        attempt += 1
      }
    }
  }

  /// Waits `millis` unless the worker is stopped first; `false` when stopped.
  private func sleep(millis: Int) -> Bool {
    let until = Date(timeIntervalSinceNow: Double(millis) / 1000)
    condition.lock()
    defer { condition.unlock() }
    while !stopping {
      if !condition.wait(until: until) { return !stopping }
    }
    return false
  }

  // MARK: - Commands

  private func runCommand(_ delivery: HookDelivery, _ command: CommandHookConfiguration) -> Outcome {
    let metadata: Logger.Metadata = ["event": "\(delivery.kind.rawValue)", "event-id": "\(delivery.eventID)"]
    countAttempt()
    let outcome: HookCommandOutcome
    do {
      outcome = try HookCommandRunner.run(
        argv: command.argv, environment: ["STELLA_EVENT": delivery.kind.rawValue, "STELLA_EVENT_ID": delivery.eventID],
        stdin: delivery.body, timeoutMillis: command.timeoutMillis, shouldAbandon: { [self] in isStopping })
    } catch {
      logger.error("command hook failed: \(error)", metadata: metadata)
      return .failed
    }
    let output = String(decoding: outcome.output, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
    let said = output.isEmpty ? "" : "; output: \(output)"
    switch outcome.ending {
    case .exited(0):
      logger.debug("command hook succeeded", metadata: metadata)
      return .delivered
    case .exited(let code):
      logger.error("command hook exited with status \(code)\(said)", metadata: metadata)
      return .failed
    case .signalled(let signal):
      logger.error("command hook killed by signal \(signal)\(said)", metadata: metadata)
      return .failed
    case .timedOut:
      logger.error(
        "command hook ran past its timeout of \(command.timeoutMillis) ms; killed\(said)", metadata: metadata)
      return .failed
    case .abandoned:
      logger.error("hooks shut down while the command ran; killed, event dropped", metadata: metadata)
      return .abandoned
    }
  }
}
