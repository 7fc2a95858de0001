/// The journal writer's decisions without its file I/O: how a batch is made durable under the
/// durability policy, when a segment rotates (by size, by age), when the `interval` policy
/// syncs, when the ring is pruned, when an idle segment gives its descriptor back, and what a
/// client is told after a sync. ``Journal``'s writer thread asks it and does the I/O; tests
/// drive it with plain numbers (swift-nio's and grpc-swift-2's state machines are the model).
///
/// A plain struct owned by the writer thread alone (no lock): its only state is when the
/// `interval` sync and the ring prune last ran, in monotonic nanoseconds.
struct JournalWriterStateMachine {
  /// How the appends of one batch are made durable before they are acknowledged.
  enum Commit: Equatable {
    /// `fsync-per-batch`: each request is written and synced on its own, then acknowledged.
    case syncEachRequest
    /// `group-commit`: one write per stream, one sync per touched file, then every
    /// acknowledgement; a failed sync fails the requests written to that file.
    case syncEachFile
    /// `interval`: acknowledged once written; touched files are synced on the writer's tick.
    case syncOnTick
    /// A journal of copies: never synced, made durable by its seals
    /// (``JournalOptions/syncsAppends``).
    case none
  }

  /// What the writer does after a batch (several at once).
  struct TickActions: OptionSet, Equatable {
    let rawValue: UInt8
    /// Sync every file written since the last tick (`interval`).
    static let syncWrittenFiles = TickActions(rawValue: 1 << 0)
    /// Rotate every open segment with records, whatever its age: the journal is stopping or a
    /// seal of everything was asked for.
    static let rotateEverySegment = TickActions(rawValue: 1 << 1)
    /// Prune the ring against its bounds (on the seal queue).
    static let pruneRing = TickActions(rawValue: 1 << 2)
  }

  /// Why a file is being given up after a failed sync.
  enum SyncFailure: Equatable {
    /// The sync after a write of `fsync-per-batch` or `group-commit`: nothing written since the
    /// last good sync was acknowledged.
    case afterWrite
    /// The tick's sync of the `interval` policy: what was written was acknowledged already.
    case onTick
    /// The sync before an idle segment's descriptor is closed.
    case beforeSuspend
  }

  /// The ring's prune period: once a second.
  static let pruneIntervalNanos: UInt64 = 1_000_000_000
  /// Streams quiet for this long give their descriptor back until their next record.
  static let idleDescriptorNanos: UInt64 = 5_000_000_000

  let commit: Commit
  let durability: DurabilityPolicy
  let syncIntervalNanos: UInt64
  let maxSegmentBytes: Int
  let maxSegmentAgeNanos: UInt64
  let maxSealBacklogBytes: Int64
  /// Whether the ring has an age or byte bound to prune against.
  let prunesRing: Bool
  /// When the `interval` policy last synced, and the ring was last pruned (monotonic).
  private(set) var lastIntervalSync: UInt64 = 0
  private(set) var lastPruneAt: UInt64 = 0

  init(options: JournalOptions) {
    durability = options.durability
    if !options.syncsAppends {
      commit = .none
    } else {
      switch options.durability {
      case .fsyncPerBatch: commit = .syncEachRequest
      case .groupCommit: commit = .syncEachFile
      case .interval: commit = .syncOnTick
      }
    }
    syncIntervalNanos = options.syncIntervalNanos
    maxSegmentBytes = options.maxSegmentBytes
    maxSegmentAgeNanos = options.maxSegmentAgeNanos
    maxSealBacklogBytes = options.maxSealBacklogBytes
    prunesRing = options.ringMaxAgeSeconds != nil || options.ringMaxBytes != nil
  }

  /// Whether queued appends wait before being written: compression is more than half its bound
  /// behind, and waiting (clients held within the in-flight bound) costs less than refusing
  /// them at admission and taking their retries.
  func holdsAppendsBack(sealBacklogBytes: Int64) -> Bool {
    sealBacklogBytes > maxSealBacklogBytes / 2
  }

  /// Whether a segment holding `records` records in `bytes` bytes rotates before `incoming`
  /// more bytes are appended. A segment with no record never rotates, so a record larger than
  /// the segment size still gets a segment of its own.
  func rotatesBeforeAppend(records: UInt64, bytes: Int, incoming: Int) -> Bool {
    records > 0 && bytes + incoming > maxSegmentBytes
  }

  /// Whether a segment opened at `openedAt` with `records` records rotates at `now`.
  func rotatesAged(records: UInt64, openedAt: UInt64, now: UInt64, force: Bool) -> Bool {
    records > 0 && (force || now &- openedAt >= maxSegmentAgeNanos)
  }

  /// Whether a segment last appended to at `lastAppendAt` gives its descriptor back at `now`.
  func suspendsIdle(lastAppendAt: UInt64, now: UInt64) -> Bool {
    now &- lastAppendAt >= Self.idleDescriptorNanos
  }

  /// What the writer does after writing a batch at `now`.
  mutating func tick(now: UInt64, stopping: Bool, sealRequested: Bool) -> TickActions {
    var actions: TickActions = []
    if commit == .syncOnTick, now &- lastIntervalSync >= syncIntervalNanos || stopping {
      actions.insert(.syncWrittenFiles)
      lastIntervalSync = now
    }
    if stopping || sealRequested { actions.insert(.rotateEverySegment) }
    if prunesRing, now &- lastPruneAt >= Self.pruneIntervalNanos {
      actions.insert(.pruneRing)
      lastPruneAt = now
    }
    return actions
  }

  /// Whether a file whose sync failed is cut back to its last good sync before it is sealed
  /// (records after it were not acknowledged), or kept whole for the seal's scan to judge
  /// (they may have been acknowledged already: `interval`).
  func cutsToLastSync(after failure: SyncFailure) -> Bool {
    switch failure {
    case .afterWrite: return true
    case .onTick: return false
    case .beforeSuspend: return durability != .interval
    }
  }

  /// What a client is told for a written record once its file was synced: an unsynced write is
  /// not acknowledged (its client retries, and at worst the journal holds the record twice,
  /// never zero times).
  static func acknowledgement(
    _ written: Result<JournalReceipt, JournalError>, syncFailure: JournalError?
  ) -> Result<JournalReceipt, JournalError> {
    guard case .success = written, let syncFailure else { return written }
    return .failure(syncFailure)
  }
}
