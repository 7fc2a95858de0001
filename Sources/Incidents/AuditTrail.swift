public import Audit
import Dispatch
public import Journal
public import Logging
import Manifest
import Synchronization

/// Writes the capture node's audit stream: one OTLP log record per admin action or refusal,
/// journaled under the reserved tenant ``AuditStream/tenant`` like any other logs stream (same
/// segments, same per-stream seqs), each naming the SHA-256 of the record before it.
///
/// A record is chained and queued under one lock, so chain order is journal order; ``record(_:)``
/// returns once the journal made it durable under its durability policy, so an admin action is
/// answered only after its audit record can no longer be lost to a crash.
public final class AuditTrail: Sendable {
  /// How many refusals of unauthenticated requests are recorded one by one: a burst, then a
  /// steady rate. Anyone who can reach the admin port can cause them, and the audit stream is
  /// never pruned, so a flood must not fill the disk; the ones over budget are counted in the
  /// next record (`stella.audit.suppressed_refusals`). Authenticated actions and refusals are
  /// always recorded.
  public struct RefusalBudget: Sendable {
    public var burst: Int
    public var perSecond: Double

    public init(burst: Int = 100, perSecond: Double = 10) {
      self.burst = burst
      self.perSecond = perSecond
    }
  }

  /// What became of one record.
  public enum Outcome: Sendable, Equatable {
    /// Journaled and durable.
    case journaled(JournalReceipt)
    /// An unauthenticated refusal over the ``RefusalBudget``: counted in the next record.
    case suppressed
    /// Not written (logged as an error: a custody gap).
    case failed(JournalError)

    public static func == (lhs: Outcome, rhs: Outcome) -> Bool {
      switch (lhs, rhs) {
      case (.journaled(let a), .journaled(let b)): a == b
      case (.suppressed, .suppressed): true
      case (.failed(let a), .failed(let b)): a.kind == b.kind && a.message == b.message
      default: false
      }
    }
  }

  private let journal: Journal
  private let logger: Logger
  private let clock: @Sendable () -> UInt64
  private let budget: RefusalBudget
  private struct ChainState {
    /// The chain hash of the last record queued (genesis before the first).
    var lastHash: String
    /// The time of the last record, so times never run backwards along the chain.
    var lastTime: UInt64 = 0
    /// The refusal budget's tokens, and when (monotonic) they were last refilled.
    var tokens: Double
    var refilledAt: UInt64
    /// Refusals over budget since the last record.
    var suppressed = 0
  }
  private let state: Mutex<ChainState>

  /// Starts the audit trail on `journal`, continuing the chain from the last audit record the
  /// journal holds (so it survives a restart), or from the genesis hash on a new node.
  /// - Throws: ``JournalError`` when the last audit record exists but cannot be read: writing on
  ///   would break the chain.
  public init(
    journal: Journal, logger: Logger, refusalBudget: RefusalBudget = RefusalBudget(),
    clock: @escaping @Sendable () -> UInt64 = IncidentManager.wallClock
  ) throws(JournalError) {
    self.journal = journal
    self.logger = logger
    self.clock = clock
    self.budget = refusalBudget
    let last = try journal.layout.lastRecordRequest(signal: AuditStream.signal, tenant: AuditStream.tenant)
    self.state = Mutex(
      ChainState(
        lastHash: last.map(AuditStream.chainHash(ofRequest:)) ?? AuditStream.genesisSHA256,
        tokens: Double(refusalBudget.burst), refilledAt: JournalClock.monotonicNanos()))
  }

  /// The chain hash the next record will name as its predecessor.
  public var lastHash: String { state.withLock { $0.lastHash } }

  /// Journals `draft` as the next audit record (its time, predecessor hash and suppressed count
  /// are set here) and returns when it is durable, or why it was not written.
  @discardableResult
  public func record(_ draft: AuditRecord) async -> Outcome {
    await withCheckedContinuation { (continuation: CheckedContinuation<Outcome, Never>) in
      let nodeID = journal.nodeID
      let budget = self.budget
      enum Queued {
        case queued, suppressed
        case failed(AuditRecordError)
      }
      let queued: Queued = state.withLock { chain in
        if draft.result == .refused && draft.principal == nil {
          let now = JournalClock.monotonicNanos()
          let refill = Double(now &- chain.refilledAt) / 1e9 * budget.perSecond
          chain.tokens = min(Double(budget.burst), chain.tokens + refill)
          chain.refilledAt = now
          guard chain.tokens >= 1 else {
            chain.suppressed += 1
            return .suppressed
          }
          chain.tokens -= 1
        }
        var record = draft
        record.timeUnixNano = max(clock(), chain.lastTime)
        record.previousSHA256 = chain.lastHash
        record.suppressedRefusals = chain.suppressed
        let bytes: [UInt8]
        do throws(AuditRecordError) {
          bytes = try record.serializedRequest(node: nodeID)
        } catch {
          return .failed(error)
        }
        let hash = AuditStream.chainHash(ofRequest: bytes)
        let previous = chain.lastHash
        chain.lastHash = hash
        chain.lastTime = record.timeUnixNano
        chain.suppressed = 0
        let request = AdmittedRequest(
          signal: AuditStream.signal, tenant: AuditStream.tenant, request: bytes, receivedUnixNano: record.timeUnixNano)
        // Queued while the lock is held: the journal's queue order is the chain order.
        journal.append(request) { [self] result in finish(result, previous: previous, hash: hash, continuation) }
        return .queued
      }
      switch queued {
      case .queued:
        break
      case .suppressed:
        continuation.resume(returning: .suppressed)
      case .failed(let failure):
        logger.error("audit record of \(draft.action) not written: \(failure.message)")
        continuation.resume(returning: .failed(JournalError(.invalidRecord, failure.message)))
      }
    }
  }

  private func finish(
    _ result: Result<JournalReceipt, JournalError>, previous: String, hash: String,
    _ continuation: CheckedContinuation<Outcome, Never>
  ) {
    switch result {
    case .success(let receipt):
      continuation.resume(returning: .journaled(receipt))
    case .failure(let error):
      logger.error("audit record not journaled (a custody gap): \(error.message)")
      // The record never reached the journal, so the next one must chain to its predecessor.
      // The journal may call back while `record` still holds the lock (when it is stopping),
      // hence the hop; a record queued in between would name the lost hash, which verification
      // then reports as the gap it is.
      DispatchQueue.global().async { [self] in
        state.withLock { chain in if chain.lastHash == hash { chain.lastHash = previous } }
      }
      continuation.resume(returning: .failed(error))
    }
  }
}
