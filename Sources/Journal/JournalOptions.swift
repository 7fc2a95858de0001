public import CodedErrors
public import Manifest
import Settings

/// When the journal makes appended records durable, and so when a client is acknowledged.
///
/// Every policy acknowledges only after the record was written to its segment file, so a
/// killed process (`kill -9`) loses nothing acknowledged under any of them: written bytes live in
/// the kernel's page cache. The policies differ for a crash of the whole machine.
public enum DurabilityPolicy: String, Sendable, CaseIterable, Equatable {
  /// Each export request is synced (`fdatasync`) on its own before it is acknowledged: the
  /// lowest throughput, and no request's latency depends on another's.
  case fsyncPerBatch = "fsync-per-batch"
  /// Requests that arrive while a sync runs are written together and share the next sync, then
  /// all are acknowledged: the same guarantee as `fsync-per-batch` (nothing acknowledged is lost
  /// even on power loss) at a fraction of the syncs. The default.
  case groupCommit = "group-commit"
  /// Acknowledged after the write; files are synced every ``JournalOptions/syncIntervalMillis``.
  /// A machine crash may lose up to that much acknowledged data; a process crash loses none.
  case interval
}

/// How the journal writes, rotates and bounds its segment files.
public struct JournalOptions: Sendable, Equatable {
  public var durability: DurabilityPolicy = .groupCommit
  /// `false` for a journal of copies (the tail sampler's archive): appends are never synced and
  /// a segment becomes durable only when it is sealed (the compressed file is synced before the
  /// open one is removed). Its records are already durable in the flight recorder, so a machine
  /// crash costs at most the archive's open segments; in exchange the uncompressed copy usually
  /// never reaches the disk (sealed and removed before the kernel writes it back), which halves
  /// the disk bandwidth capture needs while the sampler keeps most traces.
  public var syncsAppends = true
  /// Sync period of the `interval` policy.
  public var syncIntervalMillis: Int = 200
  /// An open segment is sealed once its uncompressed size reaches this.
  public var maxSegmentBytes: Int = 32 << 20
  /// An open segment is sealed once it is this old, so recent data is soon in immutable,
  /// compressed segments (and the flight recorder's ring has fine steps).
  public var maxSegmentAgeSeconds: Int = 60
  /// Journal disk bound: segment files of every stream, open and sealed, together.
  public var maxJournalBytes: Int64 = 8 << 30
  /// Free space the journal leaves on its file system; below it, appends are refused.
  public var minFreeBytes: Int64 = 256 << 20
  /// The flight recorder's ring: sealed segments whose last record arrived longer ago than this
  /// are deleted, unless an incident pins them. `nil` keeps everything (until the disk bound).
  public var ringMaxAgeSeconds: Int?
  /// The ring's byte bound: the oldest unpinned sealed segments are deleted while the journal is
  /// over it. `nil`: no byte bound besides ``maxJournalBytes``.
  public var ringMaxBytes: Int64?
  /// Rotated segments waiting to be compressed, in uncompressed bytes; past it, appends are
  /// refused (503 / `UNAVAILABLE`) until sealing catches up, so a burst cannot grow an unbounded
  /// backlog of open files that are not yet evidence.
  public var maxSealBacklogBytes: Int64 = 256 << 20
  /// Framing limits; a record over `maxRecordSize` is refused (a verifier would reject it).
  public var limits = VerificationLimits()

  public init() {}

  /// ``syncIntervalMillis`` in nanoseconds.
  public var syncIntervalNanos: UInt64 { DurationText.saturatingNanoseconds(milliseconds: syncIntervalMillis) }
  /// ``maxSegmentAgeSeconds`` in nanoseconds.
  public var maxSegmentAgeNanos: UInt64 { DurationText.saturatingNanoseconds(seconds: maxSegmentAgeSeconds) }
  /// ``ringMaxAgeSeconds`` in nanoseconds.
  public var ringMaxAgeNanos: UInt64? { ringMaxAgeSeconds.map { DurationText.saturatingNanoseconds(seconds: $0) } }
}

/// Why the journal could not open or take a record.
public typealias JournalError = CodedError<JournalErrorCode>

/// The codes of ``JournalError``: what kind of failure it is.
public enum JournalErrorCode: Sendable, Hashable {
  /// The disk bound or the free-space floor is reached, or a write hit a full disk; retryable.
  case full
  /// The journal is stopping or stopped.
  case stopped
  /// The request cannot be journaled (not valid on the §6.3 path, or too large a record).
  case invalidRecord
  /// The data directory is in use by another capture process.
  case locked
  /// A segment file is damaged in a way recovery must not cut (not a torn tail).
  case corrupt
  /// The data directory belongs to another node id, or an option is out of range.
  case configuration
  /// Any other failure of the operating system.
  case io
}
