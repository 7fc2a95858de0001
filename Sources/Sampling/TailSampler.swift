import Foundation
public import Journal
import Synchronization

#if canImport(Glibc)
  import Glibc
#endif

/// Tail sampling into the long-term archive: fed every request after the journal acknowledged it,
/// it copies what the ``SamplingPolicy`` keeps to `output` as new OTLP export requests.
///
/// Acknowledgement never waits for it: ``observe(_:)`` only queues the request (bounded by
/// `limits.max-queued-bytes`; past it the request is skipped and counted, the journal ring
/// still has it). A sampler thread reads queued requests straight off the wire (no decoding), keeps
/// logs and metrics at once, buffers spans per (tenant, trace id) as byte ranges into their
/// request and decides each trace `decision-wait` after its first span arrived; what is kept is
/// spliced from the client's own bytes. Tenants for which `isKeptInFull` is true (an incident is
/// active) are kept at 100%: their requests are copied unchanged, straight away.
///
/// Thread safety: the queue and the stopping flag are guarded by `condition`; the state machine
/// is touched only by whoever holds `processLock` (the sampler thread, ``tick()``, ``flush()``),
/// which also keeps `output` calls in order and never concurrent. `output` and `isKeptInFull`
/// run with `processLock` held: they must not call back into the sampler.
public final class TailSampler: @unchecked Sendable {
  private let isKeptInFull: @Sendable (String) -> Bool
  private let output: @Sendable (AdmittedRequest) -> Void
  private let clock: @Sendable () -> UInt64

  private let condition = NSCondition()
  // Guarded by `condition`.
  private var queue: [AdmittedRequest] = []
  private var queuedBytes = 0
  private var skipped: UInt64 = 0
  private var stopping = false
  private var threadFinished = false
  private var currentPolicy: SamplingPolicy

  private let processLock = NSLock()
  // Guarded by `processLock`.
  private var core: TailSamplingCore

  /// The last counters published by a processing pass; read without waiting for one.
  private let published = Mutex(TailSamplingCounters())
  /// Bytes of requests queued plus those buffered traces point into; written under `condition`,
  /// read without a lock by whoever bounds memory (``heldBytes``).
  private let held = Atomic<Int>(0)

  /// Starts the sampler thread.
  ///
  /// - Parameters:
  ///   - policy: what to keep; check it with ``SamplingPolicy/validate(path:)`` first.
  ///   - isKeptInFull: whether everything of a tenant is kept now (an incident covers it).
  ///     Asked when a request is read and when a trace is decided; must be quick.
  ///   - output: receives each kept export request, in order, on one thread at a time.
  ///   - clock: monotonic nanoseconds, for decision waits (injected by tests).
  public init(
    policy: SamplingPolicy,
    isKeptInFull: @escaping @Sendable (String) -> Bool,
    output: @escaping @Sendable (AdmittedRequest) -> Void,
    clock: @escaping @Sendable () -> UInt64 = JournalClock.monotonicNanos
  ) {
    self.currentPolicy = policy
    self.isKeptInFull = isKeptInFull
    self.output = output
    self.clock = clock
    self.core = TailSamplingCore(policy: policy)
    let thread = Thread { [self] in samplerLoop() }
    thread.name = "stella-forensics tail sampler"
    thread.start()
  }

  /// Queues a journaled request for sampling and returns at once.
  public func observe(_ request: AdmittedRequest) {
    condition.lock()
    defer { condition.unlock() }
    // A request larger than the whole bound is taken when the queue is empty, so a legal
    // request is never starved; anything else past the bound is skipped, not waited for.
    guard !stopping, queue.isEmpty || queuedBytes + request.request.count <= currentPolicy.limits.maxQueuedBytes else {
      skipped += 1
      return
    }
    let wasEmpty = queue.isEmpty
    queue.append(request)
    queuedBytes += request.request.count
    held.add(request.request.count, ordering: .relaxed)
    // The thread gathers requests for a moment once woken (see `gatherNanos`): wake it for the
    // first one, and again only when the queue fills up.
    if wasEmpty || queuedBytes >= currentPolicy.limits.maxQueuedBytes / 2 { condition.signal() }
  }

  /// What the sampler keeps now.
  public var policy: SamplingPolicy {
    condition.lock()
    defer { condition.unlock() }
    return currentPolicy
  }

  /// Samples by `policy` from now on: requests already queued and traces still buffered are
  /// decided by it too (a configuration reload). The decision cache keeps its size.
  public func replace(policy: SamplingPolicy) {
    condition.lock()
    currentPolicy = policy
    condition.unlock()
    processLock.lock()
    core.policy = policy
    processLock.unlock()
  }

  /// Samples everything queued and decides the traces due now, on the caller's thread.
  public func tick() {
    process(decidingAll: false)
  }

  /// Samples everything queued and decides every buffered trace now, whatever its wait.
  public func flush() {
    process(decidingAll: true)
  }

  /// Ends the sampler thread, then flushes. Requests observed afterwards are skipped (counted).
  public func stop() {
    condition.lock()
    stopping = true
    condition.broadcast()
    while !threadFinished { condition.wait() }
    condition.unlock()
    flush()
  }

  /// Bytes of acknowledged requests the sampler keeps alive now: queued, or pointed into by
  /// traces waiting for their decision. The capture pipeline counts them against its in-flight
  /// bound, since they are the same memory the requests were received into.
  public var heldBytes: Int { held.load(ordering: .relaxed) }

  /// What the sampler did so far.
  public var counters: TailSamplingCounters {
    var snapshot = published.withLock { $0 }
    condition.lock()
    snapshot.queuedBytes = queuedBytes
    snapshot.requestsSkipped = skipped
    condition.unlock()
    return snapshot
  }

  // MARK: - Processing

  private func process(decidingAll: Bool) {
    processLock.lock()
    defer { processLock.unlock() }
    condition.lock()
    let batch = queue
    queue = []
    queuedBytes = 0
    condition.unlock()

    let keptInFull = isKeptInFull
    for request in batch {
      let full = keptInFull(request.tenant)
      for kept in core.observe(request, now: clock(), keptInFull: full, isKeptInFull: keptInFull) {
        output(kept)
      }
    }
    let decided =
      decidingAll
      ? core.decideAll(isKeptInFull: keptInFull) : core.decideDue(now: clock(), isKeptInFull: keptInFull)
    for kept in decided { output(kept) }
    let snapshot = core.counters
    published.withLock { $0 = snapshot }
    condition.lock()
    held.store(queuedBytes + max(0, snapshot.bufferedBytes), ordering: .relaxed)
    condition.unlock()
  }

  /// How long the sampler thread may sleep: until the next trace is due, at most a second (the
  /// clock may be one the thread cannot wait on, like a test's), at least a millisecond.
  private func sleepNanos() -> UInt64 {
    processLock.lock()
    let deadline = core.nextDeadline
    processLock.unlock()
    guard let deadline else { return 1_000_000_000 }
    let now = clock()
    return deadline > now ? min(max(deadline - now, 1_000_000), 1_000_000_000) : 0
  }

  /// How long the thread lets requests gather before it takes them: one wake-up per few
  /// milliseconds instead of one per request (a context switch each, on the cores that answer
  /// clients), at no cost to decisions, which wait seconds for a trace's last spans anyway.
  static let gatherNanos: UInt64 = 5_000_000

  private func samplerLoop() {
    while true {
      let sleep = sleepNanos()
      condition.lock()
      if !stopping {
        let wait = queue.isEmpty ? sleep : min(sleep, Self.gatherNanos)
        if wait > 0 { _ = condition.wait(until: Date(timeIntervalSinceNow: Double(wait) / 1e9)) }
      }
      let done = stopping
      condition.unlock()
      if done { break }
      process(decidingAll: false)
    }
    condition.lock()
    threadFinished = true
    condition.broadcast()
    condition.unlock()
  }
}
