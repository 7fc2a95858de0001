import Dispatch
import EvidenceIO
import Foundation
public import Logging
public import Manifest
import Synchronization

#if canImport(Glibc)
  import Glibc
#endif

/// What the journal acknowledges for one appended request.
public struct JournalReceipt: Sendable, Equatable {
  public var seq: UInt64
}

/// One stream's state as `/status` shows it.
public struct JournalStreamStatus: Sendable, Equatable {
  public var signal: Signal
  public var tenant: String
  /// The seq the stream's next record gets.
  public var nextSeq: UInt64
  /// Records in the open (not yet sealed) segment.
  public var openRecords: UInt64
  /// When the open segment's first record was received (Unix nanoseconds); `nil` when it has
  /// none or recovery did not say.
  public var openFirstReceivedUnixNano: UInt64? = nil
}

/// The flight recorder's state, for metrics: what the ring holds and how far back it reaches.
public struct JournalRingStatus: Sendable, Equatable {
  /// Segments being appended to.
  public var openSegments: Int
  /// Rotated segments waiting for (or in) compression.
  public var sealingSegments: Int
  /// Sealed segments on disk.
  public var sealedSegments: Int
  /// Bytes of sealed segments (blobs and sidecars).
  public var sealedBytes: Int64
  /// Bytes of sealed segments pinned against pruning (incident windows, the audit stream).
  public var pinnedBytes: Int64
  /// Since when the ring holds every record it was given (Unix nanoseconds): how far back a new
  /// incident's look-back can reach. The newest record pruning dropped, or before any pruning the
  /// oldest record held; `nil` when the ring holds no record.
  public var holdsEverythingSinceUnixNano: UInt64?
}

/// What recovery found in one open segment file when the journal opened.
public struct RecoveryReport: Sendable, Equatable {
  public var path: String
  /// Valid records kept.
  public var records: UInt64
  /// Bytes of torn tail cut after them.
  public var cutBytes: Int
}

/// A snapshot of the journal for the admin API.
public struct JournalStatus: Sendable {
  public var nodeID: String
  public var durability: DurabilityPolicy
  /// Bytes of segment files on disk, open and sealed.
  public var bytes: Int64
  public var maxBytes: Int64
  public var freeBytes: Int64?
  public var minFreeBytes: Int64
  /// Whether appends are taken now (disk bound and free-space floor respected, not stopping).
  public var accepting: Bool
  public var streams: [JournalStreamStatus]
  public var recovery: [RecoveryReport]
  /// Records and request bytes appended since start, and syncs done.
  public var appendedRecords: UInt64
  public var appendedBytes: UInt64
  public var syncs: UInt64
  public var sealedSegments: UInt64
  /// Sealed segments deleted by the ring's bounds since start.
  public var prunedSegments: UInt64
  /// Segments closed early because a sync failed (each sealed from its last synced record).
  public var poisonedSegments: UInt64 = 0
  /// Uncompressed bytes of rotated segments waiting to be sealed.
  public var sealBacklogBytes: Int64 = 0
}

/// The append-only segment journal: one open segment file per stream (node, signal, tenant),
/// rotated by size and age into sealed, zstd-compressed segments that are bundle blobs as they are.
///
/// One writer thread owns every open file. Appends queue up while it syncs, so group commit
/// needs no timer: a batch is whatever arrived during the previous sync. Sealing (compression)
/// runs on its own queue so it never stalls appends.
///
/// Thread safety: the queue, counters and snapshot are guarded by `condition`; the stream table
/// and open files are touched only by the writer thread (and by `init` before it starts).
public final class Journal: @unchecked Sendable {
  public let layout: JournalLayout
  public let nodeID: String
  public let options: JournalOptions
  /// The redaction policy every record appended now went through (recorded with each segment).
  public let redactionPolicy: RedactionPolicyReference
  private let logger: Logger
  private let clock: JournalClock

  private struct Pending {
    var request: AdmittedRequest
    var completion: @Sendable (Result<JournalReceipt, JournalError>) -> Void
  }

  private final class StreamState {
    let directory: String
    let signal: Signal
    let tenant: String
    var writer: SegmentFileWriter?
    var nextSeq: UInt64
    var openedAt: UInt64 = 0
    /// Monotonic time of the last append, for closing idle streams' descriptors.
    var lastAppendAt: UInt64 = 0

    init(directory: String, signal: Signal, tenant: String, nextSeq: UInt64) {
      self.directory = directory
      self.signal = signal
      self.tenant = tenant
      self.nextSeq = nextSeq
    }
  }

  private struct StreamID: Hashable {
    var signal: Signal
    var tenant: String
  }

  private let condition = NSCondition()
  // Guarded by `condition`.
  private var pending: [Pending] = []
  private var pendingBytes = 0
  private var stopping = false
  private var writerFinished = false
  private var diskBytes: Int64 = 0
  private var cachedFreeBytes: Int64?
  private var freeBytesCheckedAt: UInt64 = 0
  private var streamSnapshot: [JournalStreamStatus] = []
  private var appendedRecords: UInt64 = 0
  private var appendedBytes: UInt64 = 0
  private var syncs: UInt64 = 0
  private var sealedSegments: UInt64 = 0
  private var poisonedSegments: UInt64 = 0
  /// Bytes of rotated segments waiting for (or in) compression, and how many they are.
  private var sealBacklogBytes: Int64 = 0
  private var sealBacklogSegments = 0
  /// Told how long each sync of an append took, in nanoseconds (the fsync latency metric).
  private let syncObserver: (@Sendable (Int64) -> Void)?
  /// Bytes of appended records whose write has not finished (queued, or in the batch being
  /// written): what appends hold in memory. Atomic, so appending costs no second lock.
  private let unwrittenBytes = Atomic<Int>(0)
  public let recovery: [RecoveryReport]

  // Writer thread only.
  private var streams: [StreamID: StreamState] = [:]
  /// When to sync, rotate, prune and acknowledge; the writer loop does the I/O.
  private var writerState: JournalWriterStateMachine
  private var dirtyForInterval: [StreamState] = []

  /// Ring pruning, seal retries and the callbacks that wait for queued seals.
  private let sealQueue = DispatchQueue(label: "stella-forensics.journal.seal")
  /// Compression lanes: rotated segments are sealed on two queues in turn, so one segment's
  /// compression overlaps the previous one's fsyncs (a seal spends about a third of its time
  /// waiting for the disk) and a burst uses both cores.
  private let sealLanes = (0..<2).map { DispatchQueue(label: "stella-forensics.journal.seal.lane\($0)") }
  /// Compressions running at once in the whole process, whatever the number of journals (the
  /// ring and the archive): each holds a zstd context of a few MiB, and more of them than the
  /// two lanes of one journal would only share the same cores.
  private static let compressionSlots = DispatchSemaphore(value: 2)
  /// Writer thread only: the lane the next rotated segment goes to.
  private var nextSealLane = 0
  /// Serializes ``pruneRing()``, which seals on every lane and the ring tick may start at once.
  private let pruneLock = NSLock()
  private let lockDescriptor: Int32

  /// A sealed segment as the ring sees it.
  private struct RingSegment {
    var sealedPath: String
    var sidecarPath: String
    var tenant: String
    var firstReceivedUnixNano: UInt64
    var lastReceivedUnixNano: UInt64
    var bytes: Int64
  }
  // Guarded by `condition`.
  private var ring: [RingSegment] = []
  private var prunedSegments: UInt64 = 0
  /// The newest record time of any segment pruning deleted: the ring holds everything after it.
  private var prunedThroughUnixNano: UInt64?
  private var retentionPin: (@Sendable (_ tenant: String, _ from: UInt64, _ to: UInt64) -> Bool)?

  /// Sets what pins sealed segments against ring pruning (incidents); unpinned by default.
  public func setRetentionPin(_ pin: @escaping @Sendable (_ tenant: String, _ from: UInt64, _ to: UInt64) -> Bool) {
    condition.lock()
    retentionPin = pin
    condition.unlock()
  }

  /// Opens (creating if needed) the journal in `dataDirectory`, recovers every open segment
  /// (cutting torn tails, logging each cut) and starts the writer thread.
  ///
  /// - Parameter nodeID: the node id to capture under; `nil` takes the one stored in the data
  ///   directory, or generates and stores one on first use.
  /// - Parameter redactionPolicy: the policy the records appended from now on went through; open
  ///   segments of a run under another policy are sealed at once, so no segment mixes policies.
  /// - Parameter clock: where ring ages and segment ages are read; tests inject one.
  /// - Parameter syncObserver: told how long each sync of appended records took (nanoseconds).
  public init(
    dataDirectory: String, nodeID: String?, options: JournalOptions,
    redactionPolicy: RedactionPolicyReference = .none, logger: Logger, clock: JournalClock = .system,
    syncObserver: (@Sendable (Int64) -> Void)? = nil
  ) throws(JournalError) {
    self.syncObserver = syncObserver
    let layout = JournalLayout(dataDirectory: dataDirectory)
    try JournalFiles.makeDirectories(layout.journalDirectory)
    // O_NOFOLLOW: a symlink planted as the lock file is refused, not followed.
    let fd = open(layout.lockPath, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, EvidenceFiles.fileMode)
    guard fd >= 0 else { throw JournalFiles.errno("cannot open \(layout.lockPath)") }
    guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
      close(fd)
      throw JournalError(
        .locked, "\(dataDirectory) is in use by another capture process (\(layout.lockPath) is locked)")
    }
    self.lockDescriptor = fd
    self.layout = layout
    self.options = options
    self.writerState = JournalWriterStateMachine(options: options)
    self.redactionPolicy = redactionPolicy
    self.logger = logger
    self.clock = clock
    do {
      self.nodeID = try Journal.resolveNodeID(configured: nodeID, layout: layout)
      let previousPolicy = try JournalPolicyFile.read(layout)
      var recovery = Recovery(
        nodeID: self.nodeID, options: options, logger: logger, policy: previousPolicy,
        continuesOpen: previousPolicy == redactionPolicy, now: clock.monotonic())
      var found: [StreamID: StreamState] = [:]
      for directory in layout.streamDirectories() {
        if let stream = try recovery.recoverStream(directory: directory) {
          found[StreamID(signal: stream.signal, tenant: stream.tenant)] = stream
        }
      }
      if previousPolicy != redactionPolicy { try JournalPolicyFile.write(redactionPolicy, layout) }
      self.recovery = recovery.reports
      self.streams = found
      self.diskBytes = recovery.bytes
      self.ring = recovery.ring
    } catch {
      close(fd)
      throw error
    }
    updateSnapshot()
    let thread = Thread { [self] in writerLoop() }
    thread.name = "stella-forensics journal writer"
    thread.start()
  }

  deinit {
    close(lockDescriptor)
  }

  // MARK: - Appending

  /// Queues `request` as the next record of its stream. `completion` runs once, on the writer
  /// thread, after the record is written and durable under the durability policy, or with why not.
  public func append(
    _ request: AdmittedRequest, completion: @escaping @Sendable (Result<JournalReceipt, JournalError>) -> Void
  ) {
    condition.lock()
    if stopping {
      condition.unlock()
      completion(.failure(JournalError(.stopped, "the journal is stopping")))
      return
    }
    pending.append(Pending(request: request, completion: completion))
    pendingBytes += request.request.count
    unwrittenBytes.add(request.request.count, ordering: .relaxed)
    condition.signal()
    condition.unlock()
  }

  /// Bytes of appended records not written yet.
  public var unwrittenByteCount: Int { unwrittenBytes.load(ordering: .relaxed) }

  /// Blocks the calling thread while more than `bytes` of appended records wait to be written,
  /// or until the journal stops. For a producer nothing else holds back (the tail sampler
  /// feeding the archive): without it, a writer slower than that producer would let the queue,
  /// and the memory it holds, grow without bound.
  public func waitForWrites(downTo bytes: Int) {
    while unwrittenBytes.load(ordering: .relaxed) > bytes {
      condition.lock()
      let isStopping = stopping
      condition.unlock()
      if isStopping { return }
      usleep(1000)
    }
  }

  /// `nil` when appends are taken now; otherwise why not (disk bound, free-space floor, stopping).
  public func admissionProblem(incomingBytes: Int = 0) -> JournalError? {
    condition.lock()
    defer { condition.unlock() }
    return admissionProblemLocked(incomingBytes: incomingBytes)
  }

  private func admissionProblemLocked(incomingBytes: Int) -> JournalError? {
    if stopping { return JournalError(.stopped, "the capture service is stopping") }
    if sealBacklogBytes > options.maxSealBacklogBytes {
      return JournalError(
        .full,
        "sealing is \(sealBacklogBytes) bytes behind (bound \(options.maxSealBacklogBytes)): compression cannot keep up with appends"
      )
    }
    if diskBytes + Int64(pendingBytes + incomingBytes) > options.maxJournalBytes {
      return JournalError(
        .full, "journal disk bound reached: \(diskBytes) bytes on disk, bound \(options.maxJournalBytes)")
    }
    let now = clock.monotonic()
    if now &- freeBytesCheckedAt > 100_000_000 || cachedFreeBytes == nil {
      cachedFreeBytes = JournalFiles.freeBytes(at: layout.journalDirectory)
      freeBytesCheckedAt = now
    }
    if let free = cachedFreeBytes, free - Int64(pendingBytes + incomingBytes) < options.minFreeBytes {
      return JournalError(
        .full, "free space on the journal's file system is \(free) bytes, under the floor of \(options.minFreeBytes)")
    }
    return nil
  }

  /// Seals every open segment now and returns when they are sealed (for `POST /seal` and tests).
  public func sealOpenSegments() async {
    await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
      requestSeal { continuation.resume() }
    }
  }

  /// Asks the writer thread to seal every open segment; `done` runs once they are sealed.
  public func requestSeal(_ done: @escaping @Sendable () -> Void) {
    condition.lock()
    sealRequests.append(done)
    condition.signal()
    condition.unlock()
  }
  private var sealRequests: [@Sendable () -> Void] = []

  /// Stops taking appends, writes and syncs what is queued, seals every open segment and waits
  /// for sealing to finish.
  public func stop() async {
    beginStopping()
    await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
      DispatchQueue.global().async { [self] in
        condition.lock()
        while !writerFinished { condition.wait() }
        condition.unlock()
        waitForQueuedSeals()
        // The lock goes with the process; releasing it here lets a restart in the same process
        // (tests, a supervisor) open the journal again.
        flock(lockDescriptor, LOCK_UN)
        continuation.resume()
      }
    }
  }

  private func beginStopping() {
    condition.lock()
    stopping = true
    condition.signal()
    condition.unlock()
  }

  /// The current state, for `/status`.
  public func status() -> JournalStatus {
    condition.lock()
    defer { condition.unlock() }
    let accepting = admissionProblemLocked(incomingBytes: 0) == nil
    return JournalStatus(
      nodeID: nodeID, durability: options.durability, bytes: diskBytes, maxBytes: options.maxJournalBytes,
      freeBytes: cachedFreeBytes, minFreeBytes: options.minFreeBytes, accepting: accepting, streams: streamSnapshot,
      recovery: recovery, appendedRecords: appendedRecords, appendedBytes: appendedBytes, syncs: syncs,
      sealedSegments: sealedSegments, prunedSegments: prunedSegments, poisonedSegments: poisonedSegments,
      sealBacklogBytes: sealBacklogBytes)
  }

  // MARK: - The writer thread

  private func writerLoop() {
    while true {
      condition.lock()
      while pending.isEmpty && sealRequests.isEmpty && !stopping {
        if !condition.wait(until: Date(timeIntervalSinceNow: 0.25)) { break }
      }
      // Compression behind: hold the queued requests (their clients wait, within the in-flight
      // bound) until it catches up, rather than write on until admission must refuse clients
      // whose retries then cost more than waiting does. At most a second at a time, so aged
      // segments still rotate.
      let throttleDeadline = Date(timeIntervalSinceNow: 1)
      while writerState.holdsAppendsBack(sealBacklogBytes: sealBacklogBytes) && sealRequests.isEmpty && !stopping {
        if !condition.wait(until: throttleDeadline) { break }
      }
      let batch = pending
      let batchBytes = pendingBytes
      pending.removeAll(keepingCapacity: true)
      // Once written, the batch is in `diskBytes`; left in here too, every byte ever appended
      // would count against the disk bound and the free-space floor until a restart.
      pendingBytes = 0
      let sealWaiters = sealRequests
      sealRequests.removeAll()
      let isStopping = stopping
      condition.unlock()

      if !batch.isEmpty {
        write(batch)
        unwrittenBytes.subtract(batchBytes, ordering: .relaxed)
      }
      let now = clock.monotonic()
      let actions = writerState.tick(now: now, stopping: isStopping, sealRequested: !sealWaiters.isEmpty)
      if actions.contains(.syncWrittenFiles) { syncInterval() }
      rotateAged(now: now, force: actions.contains(.rotateEverySegment))
      suspendIdle(now: now)
      if actions.contains(.pruneRing) { sealQueue.async { [self] in pruneRing() } }
      if !sealWaiters.isEmpty {
        afterQueuedSeals { for waiter in sealWaiters { waiter() } }
      }
      updateSnapshot()
      if isStopping {
        condition.lock()
        let drained = pending.isEmpty
        condition.unlock()
        if drained { break }
      }
    }
    condition.lock()
    writerFinished = true
    condition.broadcast()
    condition.unlock()
  }

  private func write(_ batch: [Pending]) {
    let commit = writerState.commit
    if commit == .syncEachRequest {
      for item in batch { item.completion(appendAndSync([item])[0]) }
      return
    }
    // Group commit: one write per stream, then one sync per touched file, then every ack.
    var order: [StreamID] = []
    var byStream: [StreamID: [Pending]] = [:]
    for item in batch {
      let id = StreamID(signal: item.request.signal, tenant: item.request.tenant)
      if byStream[id] == nil { order.append(id) }
      byStream[id, default: []].append(item)
    }
    var results: [(Pending, Result<JournalReceipt, JournalError>)] = []
    var touched: [SegmentFileWriter] = []
    for id in order {
      guard let items = byStream[id] else { continue }
      let outcome = appendToStream(id, items)
      if case .success(let writer) = outcome.written { touched.append(writer) }
      results += zip(items, outcome.results).map { ($0, $1) }
    }
    if commit == .syncEachFile {
      var failed: [ObjectIdentifier: JournalError] = [:]
      for writer in touched {
        do {
          try timedSync(writer)
        } catch {
          failed[ObjectIdentifier(writer)] = JournalError(.io, error.description)
        }
      }
      countSyncs(touched.count)
      if !failed.isEmpty {
        results = results.map { item, result in
          let writer = streams[StreamID(signal: item.request.signal, tenant: item.request.tenant)]?.writer
          let failure = writer.flatMap { failed[ObjectIdentifier($0)] }
          return (item, JournalWriterStateMachine.acknowledgement(result, syncFailure: failure))
        }
        for stream in streams.values {
          if let writer = stream.writer, let failure = failed[ObjectIdentifier(writer)] {
            poison(stream, error: failure, cutToLastSync: writerState.cutsToLastSync(after: .afterWrite))
          }
        }
      }
    } else if commit == .syncOnTick {
      for writer in touched where !dirtyForInterval.contains(where: { $0.writer === writer }) {
        if let stream = streams.values.first(where: { $0.writer === writer }) { dirtyForInterval.append(stream) }
      }
    }
    for (item, result) in results { item.completion(result) }
  }

  /// `fsync-per-batch`: append and sync one request.
  private func appendAndSync(_ items: [Pending]) -> [Result<JournalReceipt, JournalError>] {
    let id = StreamID(signal: items[0].request.signal, tenant: items[0].request.tenant)
    let outcome = appendToStream(id, items)
    guard case .success(let writer) = outcome.written else { return outcome.results }
    do {
      try timedSync(writer)
      countSyncs(1)
      return outcome.results
    } catch {
      let failure = JournalError(.io, error.description)
      if let stream = streams[id] {
        poison(stream, error: failure, cutToLastSync: writerState.cutsToLastSync(after: .afterWrite))
      }
      return items.map { _ in .failure(failure) }
    }
  }

  private struct AppendOutcome {
    var written: Result<SegmentFileWriter, JournalError>
    var results: [Result<JournalReceipt, JournalError>]
  }

  /// Appends `items` (all of one stream) with one write, rotating first when the segment is full.
  private func appendToStream(_ id: StreamID, _ items: [Pending]) -> AppendOutcome {
    func failAll(_ error: JournalError) -> AppendOutcome {
      AppendOutcome(written: .failure(error), results: items.map { _ in .failure(error) })
    }
    let incoming = items.reduce(0) { $0 + $1.request.request.count }
    condition.lock()
    let problem = admissionProblemLocked(incomingBytes: 0).flatMap { $0.kind == .stopped ? nil : $0 }
    condition.unlock()
    if let problem { return failAll(problem) }
    let stream: StreamState
    do {
      stream = try openStream(id)
    } catch {
      return failAll(error)
    }
    if let writer = stream.writer,
      writerState.rotatesBeforeAppend(records: writer.recordCount, bytes: writer.byteCount, incoming: incoming)
    {
      rotate(stream)
    }
    let writer: SegmentFileWriter
    do {
      writer = try openWriter(stream)
    } catch {
      return failAll(error)
    }
    let before = writer.byteCount
    do {
      let firstSeq = try writer.append(
        records: items.map {
          SegmentFileRecord(
            request: $0.request.request, receivedUnixNano: $0.request.receivedUnixNano, times: $0.request.times)
        })
      stream.nextSeq = writer.nextSeq
      stream.lastAppendAt = clock.monotonic()
      let written = Int64(writer.byteCount - before)
      condition.lock()
      diskBytes += written
      appendedRecords += UInt64(items.count)
      appendedBytes += UInt64(incoming)
      condition.unlock()
      let results = items.indices.map { index in
        Result<JournalReceipt, JournalError>.success(JournalReceipt(seq: firstSeq + UInt64(index)))
      }
      return AppendOutcome(written: .success(writer), results: results)
    } catch {
      switch error.kind {
      case .invalidRecord:
        // One bad request must not fail the others of the batch: append them one by one.
        if items.count > 1 {
          var results: [Result<JournalReceipt, JournalError>] = []
          var lastWriter: SegmentFileWriter?
          for item in items {
            let single = appendToStream(id, [item])
            if case .success(let used) = single.written { lastWriter = used }
            results += single.results
          }
          return AppendOutcome(
            written: lastWriter.map { .success($0) } ?? .failure(JournalError(.invalidRecord, error.description)),
            results: results)
        }
        return failAll(JournalError(.invalidRecord, error.message))
      case .closed:
        stream.writer = nil
        return failAll(JournalError(.io, error.description))
      default:
        if error.isNoSpace {
          logger.warning("journal write refused: disk full", metadata: ["path": "\(writer.path)"])
          return failAll(JournalError(.full, "journal file system is full: \(error.description)"))
        }
        logger.error("journal write failed", metadata: ["error": "\(error)"])
        return failAll(JournalError(.io, error.description))
      }
    }
  }

  private func openStream(_ id: StreamID) throws(JournalError) -> StreamState {
    if let stream = streams[id] { return stream }
    let directory = layout.streamDirectory(signal: id.signal, tenant: id.tenant)
    try JournalFiles.makeDirectories(directory)
    let stream = StreamState(directory: directory, signal: id.signal, tenant: id.tenant, nextSeq: 0)
    streams[id] = stream
    return stream
  }

  private func openWriter(_ stream: StreamState) throws(JournalError) -> SegmentFileWriter {
    if let writer = stream.writer { return writer }
    let path = JournalLayout.openPath(in: stream.directory, firstSeq: stream.nextSeq)
    let header = SegmentHeader(signal: stream.signal, tenant: stream.tenant, node: nodeID)
    do {
      let writer = try SegmentFileWriter(
        creating: path, header: header, firstSeq: stream.nextSeq, limits: options.limits)
      writer.syncsRecords = options.syncsAppends
      stream.writer = writer
      stream.openedAt = clock.monotonic()
      condition.lock()
      diskBytes += Int64(writer.byteCount)
      condition.unlock()
      return writer
    } catch {
      // A header that could not be written completely must not stay behind as a corrupt file.
      unlink(path)
      if error.isNoSpace { throw JournalError(.full, "journal file system is full: \(error.description)") }
      throw JournalError(.io, error.description)
    }
  }

  private func syncInterval() {
    var count = 0
    for stream in dirtyForInterval {
      guard let writer = stream.writer else { continue }
      do {
        try timedSync(writer)
        count += 1
      } catch {
        poison(
          stream, error: JournalError(.io, error.description), cutToLastSync: writerState.cutsToLastSync(after: .onTick)
        )
      }
    }
    dirtyForInterval.removeAll()
    countSyncs(count)
  }

  /// Syncs `writer`, telling ``syncObserver`` how long it took.
  private func timedSync(_ writer: SegmentFileWriter) throws(SegmentFileError) {
    guard let syncObserver else { return try writer.sync() }
    let start = DispatchTime.now().uptimeNanoseconds
    try writer.sync()
    syncObserver(Int64(clamping: DispatchTime.now().uptimeNanoseconds &- start))
  }

  private func countSyncs(_ count: Int) {
    guard count > 0 else { return }
    condition.lock()
    syncs += UInt64(count)
    condition.unlock()
  }

  private func suspendIdle(now: UInt64) {
    for stream in streams.values {
      guard let writer = stream.writer, !writer.isSuspended,
        writerState.suspendsIdle(lastAppendAt: stream.lastAppendAt, now: now)
      else { continue }
      do {
        try writer.suspend()
        dirtyForInterval.removeAll { $0 === stream }
      } catch {
        poison(
          stream, error: JournalError(.io, error.description),
          cutToLastSync: writerState.cutsToLastSync(after: .beforeSuspend))
      }
    }
  }

  /// A sync of `stream`'s open segment failed: the segment is sealed from what is on disk and
  /// the stream continues in a new segment, so nothing is ever acknowledged into a file whose
  /// unsynced pages the kernel may already have dropped (after a failed `fdatasync`, Linux
  /// marks them clean and does not report the loss again).
  ///
  /// - Parameter cutToLastSync: whether records written after the last good sync are cut (they
  ///   were not acknowledged: group commit, fsync per batch) or kept for the seal to judge
  ///   (`interval`, which acknowledged them already).
  private func poison(_ stream: StreamState, error: JournalError, cutToLastSync: Bool) {
    guard let writer = stream.writer else { return }
    stream.writer = nil
    dirtyForInterval.removeAll { $0 === stream }
    let cut = writer.poison(cutToLastSync: cutToLastSync)
    if cut { stream.nextSeq = writer.syncedNextSeq }
    condition.lock()
    poisonedSegments += 1
    condition.unlock()
    logger.error(
      "journal sync failed; segment closed and sealed from its last synced record",
      metadata: ["path": "\(writer.path)", "error": "\(error.message)", "cutToLastSync": "\(cut)"])
    let path = writer.path
    let firstSeq = writer.firstSeq
    if !cut {
      // The file's end is unknown: its records (valid ones, acknowledged or not) decide where
      // the stream continues.
      if let recovered = try? SegmentFileRecovery.scan(path: path, expectedFirstSeq: firstSeq, limits: options.limits) {
        stream.nextSeq = recovered.firstSeq + recovered.recordCount
      }
    }
    enqueueSeal(bytes: writer.byteCount) { [self] in sealFromDisk(path: path, firstSeq: firstSeq) }
  }

  /// Seals an open segment file from its valid records on disk (after a poisoned sync, or a
  /// failed seal).
  private func sealFromDisk(path: String, firstSeq: UInt64) {
    do {
      let recovered = try SegmentFileRecovery.scan(path: path, expectedFirstSeq: firstSeq, limits: options.limits)
      guard recovered.recordCount > 0 else {
        unlink(path)
        return
      }
      seal(try SegmentFileWriter(continuing: recovered, limits: options.limits))
    } catch {
      scheduleSealRetry(path: path, firstSeq: firstSeq, error: "\(error)")
    }
  }

  private func rotateAged(now: UInt64, force: Bool) {
    for stream in streams.values {
      guard let writer = stream.writer,
        writerState.rotatesAged(records: writer.recordCount, openedAt: stream.openedAt, now: now, force: force)
      else { continue }
      rotate(stream)
    }
  }

  /// Hands the stream's open segment to the seal queue; the next append opens a new one.
  private func rotate(_ stream: StreamState) {
    guard let writer = stream.writer, writer.recordCount > 0 else { return }
    stream.writer = nil
    dirtyForInterval.removeAll { $0 === stream }
    let handOff = UncheckedSendable(writer)
    enqueueSeal(bytes: writer.byteCount) { [self] in seal(handOff.value) }
  }

  /// Queues a seal, counting its segment in the backlog until the seal has run, so
  /// ``admissionProblem(incomingBytes:)`` can push back when compression falls behind.
  private func enqueueSeal(bytes: Int, _ work: @escaping @Sendable () -> Void) {
    condition.lock()
    sealBacklogBytes += Int64(bytes)
    sealBacklogSegments += 1
    condition.unlock()
    let lane = sealLanes[nextSealLane]
    nextSealLane = (nextSealLane + 1) % sealLanes.count
    lane.async { [self] in
      // A seal never waits for another lane while it holds a slot, so the slots cannot deadlock.
      Self.compressionSlots.wait()
      work()
      Self.compressionSlots.signal()
      condition.lock()
      sealBacklogBytes -= Int64(bytes)
      sealBacklogSegments -= 1
      condition.broadcast()
      condition.unlock()
    }
  }

  /// Runs `work` on the seal queue once every seal queued so far has finished (seals queued
  /// later may finish first; none queued earlier is still running).
  private func afterQueuedSeals(_ work: @escaping @Sendable () -> Void) {
    var step: @Sendable () -> Void = { [sealQueue] in sealQueue.async(execute: work) }
    for lane in sealLanes.reversed() {
      let next = step
      step = { lane.async(execute: next) }
    }
    step()
  }

  /// Blocks until every seal queued so far, and the seal queue's own work, has finished.
  private func waitForQueuedSeals() {
    for lane in sealLanes { lane.sync {} }
    sealQueue.sync {}
  }

  // MARK: - Sealing

  private func seal(_ writer: SegmentFileWriter) {
    do {
      let sealed = try Journal.sealOpenSegment(writer, policy: redactionPolicy)
      condition.lock()
      diskBytes += sealed.diskBytesDelta
      sealedSegments += 1
      ring.append(sealed.ringSegment)
      condition.unlock()
      // Each seal may take the ring over its byte bound: prune now rather than at the next tick,
      // so a fast stream overshoots by at most the segments still open.
      if options.ringMaxBytes != nil { pruneRing() }
      logger.debug(
        "sealed segment",
        metadata: [
          "path": "\(sealed.ringSegment.sealedPath)", "records": "\(sealed.entry.recordCount)",
          "bytes": "\(sealed.entry.size)",
        ])
    } catch {
      scheduleSealRetry(path: writer.path, firstSeq: writer.firstSeq, error: error.description)
    }
  }

  /// What sealing one open segment produced.
  private struct SealedOpenSegment {
    var entry: BlobEntry
    var ringSegment: RingSegment
    /// How the bytes on disk changed: the sealed blob and its sidecar came, the open file went.
    var diskBytesDelta: Int64
  }

  /// Seals an open segment as a bundle blob: compresses it next to the open file, writes its
  /// sidecar, removes the open file. The one sealing path, for the writer's rotations and for
  /// recovery, so both leave the same files and count the same bytes.
  ///
  /// - Parameter policy: the redaction policy the segment's records went through.
  private static func sealOpenSegment(_ writer: SegmentFileWriter, policy: RedactionPolicyReference)
    throws(JournalError) -> SealedOpenSegment
  {
    let directory = String(writer.path[..<(writer.path.lastIndex(of: "/") ?? writer.path.endIndex)])
    let sealedPath = JournalLayout.sealedPath(in: directory, firstSeq: writer.firstSeq)
    let sidecarPath = JournalLayout.sidecarPath(in: directory, firstSeq: writer.firstSeq)
    let firstReceived = writer.firstReceivedUnixNano ?? 0
    let lastReceived = writer.lastReceivedUnixNano
    let openBytes = JournalFiles.size(of: writer.path)
    let sealed: SealedSegment
    do {
      sealed = try writer.seal(to: sealedPath)
    } catch {
      throw JournalError(.io, error.description)
    }
    let segment = JournalSegment(
      entry: sealed.entry, path: sealedPath, firstReceivedUnixNano: firstReceived,
      lastReceivedUnixNano: lastReceived, redactionPolicy: policy)
    let sidecar = try segment.sidecarBytes()
    try JournalFiles.writeAtomically(sidecar, to: sidecarPath)
    unlink(writer.path)
    try JournalFiles.syncDirectory(of: writer.path)
    let sealedBytes = Int64(sealed.entry.size) + Int64(sidecar.count)
    return SealedOpenSegment(
      entry: sealed.entry,
      ringSegment: RingSegment(
        sealedPath: sealedPath, sidecarPath: sidecarPath, tenant: sealed.entry.tenant,
        firstReceivedUnixNano: firstReceived, lastReceivedUnixNano: lastReceived, bytes: sealedBytes),
      diskBytesDelta: sealedBytes - openBytes)
  }

  /// A segment that could not be sealed (a full disk, say) stays open on disk, complete and
  /// synced; sealing is retried from the file, so nothing is lost meanwhile.
  private func scheduleSealRetry(path: String, firstSeq: UInt64, error: String) {
    unlink(
      JournalLayout.sealedPath(in: String(path[..<(path.lastIndex(of: "/") ?? path.endIndex)]), firstSeq: firstSeq))
    logger.warning("sealing failed, retrying in 5 s", metadata: ["path": "\(path)", "error": "\(error)"])
    sealQueue.asyncAfter(deadline: .now() + 5) { [self] in sealFromDisk(path: path, firstSeq: firstSeq) }
  }

  private func updateSnapshot() {
    let snapshot = streams.values.map { stream in
      JournalStreamStatus(
        signal: stream.signal, tenant: stream.tenant, nextSeq: stream.nextSeq,
        openRecords: stream.writer?.recordCount ?? 0, openFirstReceivedUnixNano: stream.writer?.firstReceivedUnixNano)
    }.sorted { ($0.signal.rawValue, $0.tenant) < ($1.signal.rawValue, $1.tenant) }
    condition.lock()
    streamSnapshot = snapshot
    condition.unlock()
  }

  // MARK: - The ring

  /// What the ring holds now. Pins are judged here as pruning judges them, outside the journal's
  /// lock (the pin asks the incident manager).
  ///
  /// - Parameter isOwnStream: tenants the node writes itself (the audit stream), whose records
  ///   say nothing about what the ring keeps of client data; left out of the reach.
  public func ringStatus(excluding isOwnStream: (String) -> Bool = { _ in false }) -> JournalRingStatus {
    condition.lock()
    let segments = ring
    let pin = retentionPin
    let sealing = sealBacklogSegments
    let streams = streamSnapshot
    let prunedThrough = prunedThroughUnixNano
    condition.unlock()
    var pinnedBytes: Int64 = 0
    var sealedBytes: Int64 = 0
    var oldest: UInt64?
    for segment in segments {
      sealedBytes += segment.bytes
      if let pin, pin(segment.tenant, segment.firstReceivedUnixNano, segment.lastReceivedUnixNano) {
        pinnedBytes += segment.bytes
      }
      if !isOwnStream(segment.tenant) { oldest = min(oldest ?? .max, segment.firstReceivedUnixNano) }
    }
    let open = streams.filter { $0.openRecords > 0 }
    for stream in open where !isOwnStream(stream.tenant) {
      if let first = stream.openFirstReceivedUnixNano { oldest = min(oldest ?? .max, first) }
    }
    // Pruning drops the oldest unpinned segments first, so past the newest record it dropped the
    // ring is whole; a pinned incident window older than that does not extend the reach.
    let since = prunedThrough.map { through in oldest.map { max($0, through) } ?? through } ?? oldest
    return JournalRingStatus(
      openSegments: open.count, sealingSegments: sealing, sealedSegments: segments.count, sealedBytes: sealedBytes,
      pinnedBytes: pinnedBytes, holdsEverythingSinceUnixNano: since)
  }

  /// Deletes sealed segments past the ring's age or byte bound, oldest first, skipping the ones
  /// an incident pins. Serialized by `pruneLock`; it only deletes segments already in the ring, so
  /// it never races the seal that is still writing one.
  private func pruneRing() {
    pruneLock.lock()
    defer { pruneLock.unlock() }
    let now = clock.wall()
    condition.lock()
    let pin = retentionPin
    let candidates = ring.sorted { $0.lastReceivedUnixNano < $1.lastReceivedUnixNano }
    var total = diskBytes
    condition.unlock()
    let maxAge = options.ringMaxAgeNanos
    var removed: Set<String> = []
    var removedBytes: Int64 = 0
    var removedThrough: UInt64 = 0
    for segment in candidates {
      let tooOld = maxAge.map { now > $0 && segment.lastReceivedUnixNano < now - $0 } ?? false
      // One segment's worth of headroom: the open segment keeps growing until the next seal, and
      // only sealed segments can be pruned.
      let overBytes = options.ringMaxBytes.map { total > $0 - Int64(options.maxSegmentBytes) } ?? false
      guard tooOld || overBytes else {
        if maxAge == nil { break }
        continue
      }
      if let pin, pin(segment.tenant, segment.firstReceivedUnixNano, segment.lastReceivedUnixNano) { continue }
      // The blob first: a sidecar without its blob is ignored, a blob without sidecar is rebuilt.
      guard unlink(segment.sealedPath) == 0 || errno == ENOENT else {
        logger.error("cannot prune \(segment.sealedPath): \(String(cString: strerror(errno)))")
        continue
      }
      unlink(segment.sidecarPath)
      removed.insert(segment.sealedPath)
      removedBytes += segment.bytes
      removedThrough = max(removedThrough, segment.lastReceivedUnixNano)
      total -= segment.bytes
    }
    guard !removed.isEmpty else { return }
    condition.lock()
    ring.removeAll { removed.contains($0.sealedPath) }
    diskBytes -= removedBytes
    prunedThroughUnixNano = max(prunedThroughUnixNano ?? 0, removedThrough)
    prunedSegments += UInt64(removed.count)
    condition.unlock()
    logger.debug("ring pruned \(removed.count) sealed segment(s), \(removedBytes) bytes")
  }

  /// Prunes the ring now, after every seal already queued, instead of at the next tick: lets
  /// tests decide exactly when the ring is judged against their injected clock.
  func pruneRingNow() {
    waitForQueuedSeals()
    sealQueue.sync { pruneRing() }
  }

  // MARK: - Opening

  private static func resolveNodeID(configured: String?, layout: JournalLayout) throws(JournalError) -> String {
    let stored = (try? String(contentsOfFile: layout.nodeIDPath, encoding: .utf8))?
      .trimmingCharacters(in: .whitespacesAndNewlines)
    if let configured {
      if let problem = NodeID.problem(with: configured) { throw JournalError(.configuration, "node id: \(problem)") }
      if let stored, !stored.isEmpty, stored != configured {
        throw JournalError(
          .configuration,
          "\(layout.dataDirectory) holds the journal of node \"\(stored)\", not \"\(configured)\": a node's seqs cannot continue under another id; use --node-id \(stored) or a new data directory"
        )
      }
      if stored == nil || stored?.isEmpty == true {
        try JournalFiles.writeAtomically(Array((configured + "\n").utf8), to: layout.nodeIDPath)
      }
      return configured
    }
    if let stored, !stored.isEmpty {
      if let problem = NodeID.problem(with: stored) {
        throw JournalError(.configuration, "\(layout.nodeIDPath): \(problem)")
      }
      return stored
    }
    var random = [UInt8](repeating: 0, count: 8)
    let fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC)
    let got = fd < 0 ? -1 : random.withUnsafeMutableBytes { read(fd, $0.baseAddress, 8) }
    if fd >= 0 { close(fd) }
    guard got == 8 else { throw JournalFiles.errno("cannot generate a node id") }
    let generated = "node-" + Hex.encode(random)
    try JournalFiles.writeAtomically(Array((generated + "\n").utf8), to: layout.nodeIDPath)
    return generated
  }

  /// What recovering the stream directories at opening needs and adds up.
  private struct Recovery {
    let nodeID: String
    let options: JournalOptions
    let logger: Logger
    /// The redaction policy the previous run captured under: segments sealed now were written
    /// under it.
    let policy: RedactionPolicyReference
    /// Whether each stream's newest open segment stays open (the redaction policy is unchanged).
    let continuesOpen: Bool
    /// Monotonic time of opening: the age of the segments that stay open starts now.
    let now: UInt64
    var reports: [RecoveryReport] = []
    /// Bytes of segment files on disk, open and sealed.
    var bytes: Int64 = 0
    var ring: [RingSegment] = []

    /// Recovers one stream directory: removes leftovers of interrupted seals, adopts sealed
    /// segments, cuts torn tails, seals all but the newest open segment, and finds the next seq.
    mutating func recoverStream(directory: String) throws(JournalError) -> StreamState? {
      let files = JournalLayout.listStream(directory)
      for partial in files.partial { unlink(partial) }
      var header: SegmentHeader?
      var nextSeq: UInt64 = 0
      for firstSeq in files.sealed {
        let entry = try adoptSealed(in: directory, firstSeq: firstSeq, hasSidecar: files.sidecars.contains(firstSeq))
        header = SegmentHeader(signal: entry.signal, tenant: entry.tenant, node: entry.node)
        nextSeq = max(nextSeq, entry.lastSeq + 1)
      }
      var continuing: SegmentFileWriter?
      let sealedSet = Set(files.sealed)
      for (index, firstSeq) in files.open.enumerated() {
        let openPath = JournalLayout.openPath(in: directory, firstSeq: firstSeq)
        if sealedSet.contains(firstSeq) {
          // The seal finished (the rename is atomic) but the open file was not yet removed.
          unlink(openPath)
          continue
        }
        guard let recovered = try recoverOpen(openPath, firstSeq: firstSeq) else { continue }
        header = recovered.header
        guard recovered.recordCount > 0 else {
          unlink(openPath)
          nextSeq = max(nextSeq, firstSeq)
          continue
        }
        nextSeq = max(nextSeq, recovered.firstSeq + recovered.recordCount)
        bytes += Int64(recovered.validLength)
        let writer: SegmentFileWriter
        do {
          writer = try SegmentFileWriter(continuing: recovered, limits: options.limits)
        } catch {
          throw JournalError(.io, error.description)
        }
        if index == files.open.count - 1 && continuesOpen {
          continuing = writer
        } else {
          // Only the newest segment of a stream stays open (older ones were mid-seal), and only
          // when the redaction policy is unchanged. Sealed exactly as the writer seals.
          let sealed = try Journal.sealOpenSegment(writer, policy: policy)
          bytes += sealed.diskBytesDelta
          ring.append(sealed.ringSegment)
        }
      }
      guard let header else { return nil }
      let stream = StreamState(directory: directory, signal: header.signal, tenant: header.tenant, nextSeq: nextSeq)
      stream.writer = continuing
      stream.openedAt = now
      return stream
    }

    /// Reads (or rebuilds) the sidecar of a sealed segment and counts it into the ring.
    private mutating func adoptSealed(in directory: String, firstSeq: UInt64, hasSidecar: Bool) throws(JournalError)
      -> BlobEntry
    {
      let sealedPath = JournalLayout.sealedPath(in: directory, firstSeq: firstSeq)
      let sidecarPath = JournalLayout.sidecarPath(in: directory, firstSeq: firstSeq)
      let segment: JournalSegment
      if hasSidecar {
        segment = try JournalSegment.read(sidecar: sidecarPath, sealedPath: sealedPath)
      } else {
        segment = try Journal.describeSealed(
          path: sealedPath, firstSeq: firstSeq, limits: options.limits, policy: policy)
        try JournalFiles.writeAtomically(try segment.sidecarBytes(), to: sidecarPath)
      }
      if segment.entry.node != nodeID {
        throw JournalError(.corrupt, "\(sealedPath) was captured by node \"\(segment.entry.node)\", not \"\(nodeID)\"")
      }
      let segmentBytes = JournalFiles.size(of: sealedPath) + JournalFiles.size(of: sidecarPath)
      bytes += segmentBytes
      ring.append(
        RingSegment(
          sealedPath: sealedPath, sidecarPath: sidecarPath, tenant: segment.entry.tenant,
          firstReceivedUnixNano: segment.firstReceivedUnixNano, lastReceivedUnixNano: segment.lastReceivedUnixNano,
          bytes: segmentBytes))
      return segment.entry
    }

    /// Cuts the torn tail of an open segment and reports it; `nil` for a header-only leftover
    /// (removed). Damage that is not a torn tail stops the opening.
    private mutating func recoverOpen(_ openPath: String, firstSeq: UInt64) throws(JournalError) -> RecoveredSegment? {
      let recovered: RecoveredSegment
      do {
        recovered = try SegmentFileRecovery.recover(path: openPath, expectedFirstSeq: firstSeq, limits: options.limits)
      } catch {
        if error.kind == .corruptMiddle, Journal.isHeaderOnlyLeftover(openPath) {
          unlink(openPath)
          return nil
        }
        throw JournalError(
          .corrupt,
          "\(error.description); this is not a torn tail, so recovery will not cut it. Move the file out of the journal to start (its records stay evidence), or capture under a new node id"
        )
      }
      reports.append(RecoveryReport(path: openPath, records: recovered.recordCount, cutBytes: recovered.tornTailBytes))
      if recovered.tornTailBytes > 0 {
        logger.warning(
          "recovered \(openPath): cut \(recovered.tornTailBytes) torn-tail bytes after \(recovered.recordCount) valid records"
        )
      } else {
        logger.info("recovered \(openPath): \(recovered.recordCount) valid records, no torn tail")
      }
      if recovered.header.node != nodeID {
        throw JournalError(.corrupt, "\(openPath) was captured by node \"\(recovered.header.node)\", not \"\(nodeID)\"")
      }
      return recovered
    }
  }

  /// An open file that ends inside its segment header: creation crashed before the header was
  /// synced, so no record was ever acknowledged into it. Anything longer is never deleted.
  private static func isHeaderOnlyLeftover(_ path: String) -> Bool {
    guard let bytes = try? SegmentFileRecovery.readFile(path) else { return false }
    do {
      // `read` returns nil (no error) exactly when the bytes end before the header does.
      let header = try bytes.withUnsafeBytes { raw throws(SegmentFormatError) in try SegmentHeader.read(from: raw) }
      return header == nil && Array(bytes.prefix(4)) == Array(SegmentHeader.magic.prefix(bytes.count))
    } catch {
      return false
    }
  }

  /// Describes a sealed segment whose sidecar is missing by reading it in full.
  package static func describeSealed(
    path: String, firstSeq: UInt64, limits: VerificationLimits, policy: RedactionPolicyReference
  ) throws(JournalError) -> JournalSegment {
    do {
      let source = try FileByteSource(path: path)
      let compressed = try source.bytes(at: 0, count: source.count)
      let segment = try Zstd.decompress(compressed, maxOutputBytes: Int(limits.maxUncompressedSize))
      let scan = try SegmentFileRecovery.scan(segment, path: path, expectedFirstSeq: firstSeq, limits: limits)
      guard scan.tornTailBytes == 0, scan.recordCount > 0 else {
        throw JournalError(.corrupt, "\(path): sealed segment is damaged")
      }
      let (firstTime, lastTime) = scan.times.range
      let entry = BlobEntry(
        sha256: SHA256Digest.hex(of: compressed), size: UInt64(compressed.count),
        uncompressedSize: UInt64(segment.count), signal: scan.header.signal, tenant: scan.header.tenant,
        node: scan.header.node, recordCount: scan.recordCount, firstSeq: scan.firstSeq,
        lastSeq: scan.firstSeq + scan.recordCount - 1, firstTimeUnixNano: firstTime, lastTimeUnixNano: lastTime)
      return JournalSegment(
        entry: entry, path: path, firstReceivedUnixNano: scan.firstReceivedUnixNano ?? 0,
        lastReceivedUnixNano: scan.lastReceivedUnixNano, redactionPolicy: policy)
    } catch let error as JournalError {
      throw error
    } catch let error as BundleIOError {
      throw JournalError(.io, "\(path): \(error)")
    } catch {
      throw JournalError(.corrupt, "\(path): \(error)")
    }
  }
}

/// Moves a non-Sendable value to exactly one other thread, which then owns it alone.
struct UncheckedSendable<Value>: @unchecked Sendable {
  let value: Value
  init(_ value: Value) { self.value = value }
}
