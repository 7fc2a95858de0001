import Manifest
import Synchronization

extension ReplayRun {
  /// Sends the streams on `exporters.count` lanes at once. Each lane takes the next stream not
  /// yet started and sends it to its end on its own connection; the first failure stops all.
  mutating func sendInLanes(reader: ArchivedRecordReader, exporters: [any OTLPExporter], shift: Int64)
    async throws(ReplayError)
  {
    let ledger = LaneLedger(
      summary: summary, checkpoint: checkpoint, checkpointPath: options.checkpointPath, progress: progress,
      waiting: cursors.filter { !$0.isDone })
    let options = options
    let finished = await withTaskGroup(of: [StreamCursor].self) { group in
      for exporter in exporters {
        group.addTask {
          var done: [StreamCursor] = []
          while let stream = ledger.nextStream() {
            var cursor = stream
            await Self.send(&cursor, reader: reader, exporter: exporter, shift: shift, options: options, ledger: ledger)
            done.append(cursor)
          }
          return done
        }
      }
      var all: [StreamCursor] = []
      for await done in group { all += done }
      return all
    }
    for cursor in finished {
      if let index = cursors.firstIndex(where: { $0.key == cursor.key }) { cursors[index] = cursor }
    }
    let outcome = ledger.finish()
    summary = outcome.summary
    checkpoint = outcome.checkpoint
    if let failure = outcome.failure { throw failure }
  }

  /// Sends one stream to its end (or until a lane fails), a batch at a time.
  static func send(
    _ cursor: inout StreamCursor, reader: ArchivedRecordReader, exporter: any OTLPExporter, shift: Int64,
    options: ReplayOptions, ledger: LaneLedger
  ) async {
    let batchSize = max(options.batchRecords, 1)
    while !ledger.stop.isRaised {
      var batch: [PreparedRecord] = []
      do {
        guard try await cursor.prepare(reader, shift: shift) else { return }
        while batch.count < batchSize, let segment = cursor.segment, cursor.index < segment.records.count {
          let (payload, seq) = try cursor.nextPayload(json: options.wireProtocol == .httpJSON)
          batch.append(PreparedRecord(stream: cursor.key, seq: seq, payload: payload))
          cursor.index += 1
          cursor.preparedSeq = seq &+ 1
        }
      } catch {
        ledger.fail(error)
        return
      }
      let outcome = await exporter.exportAll(batch, retry: options.retry, stop: ledger.stop)
      let acknowledged = batch.prefix(outcome.accepted)
      if let last = acknowledged.last {
        cursor.sent += UInt64(acknowledged.count)
        cursor.nextSeq = last.seq &+ 1
      }
      ledger.record(acknowledged, of: outcome)
      if outcome.accepted < batch.count { return }
    }
  }
}

/// What the sending lanes share: the streams not yet started, the summary and checkpoint they
/// add to, and the first failure, which raises ``stop`` for all.
final class LaneLedger: Sendable {
  private struct State {
    var summary: ReplaySummary
    var checkpoint: ReplayCheckpoint
    var waiting: [StreamCursor]
    var failure: ReplayError?
  }

  /// Raised by the first failure: lanes finish the request in flight and start nothing more.
  let stop = ReplayStop()
  private let state: Mutex<State>
  private let checkpointPath: String?
  private let progress: (@Sendable (ReplayProgress) -> Void)?

  init(
    summary: ReplaySummary, checkpoint: ReplayCheckpoint, checkpointPath: String?,
    progress: (@Sendable (ReplayProgress) -> Void)?, waiting: [StreamCursor]
  ) {
    state = Mutex(State(summary: summary, checkpoint: checkpoint, waiting: waiting))
    self.checkpointPath = checkpointPath
    self.progress = progress
  }

  /// The next stream no lane has started, in stream order; `nil` when none is left or a lane failed.
  func nextStream() -> StreamCursor? {
    guard !stop.isRaised else { return nil }
    return state.withLock { $0.waiting.isEmpty ? nil : $0.waiting.removeFirst() }
  }

  /// Adds a delivered batch: counts, the stream's checkpoint position (made durable now), and
  /// the failure that ended it, if any.
  func record(_ acknowledged: ArraySlice<PreparedRecord>, of outcome: BatchOutcome) {
    let (report, failed) = state.withLock { state -> (ReplayProgress, Bool) in
      state.summary.retries += outcome.retries
      state.summary.rejectedItems += outcome.rejectedItems
      for record in acknowledged {
        state.summary.recordsSent += 1
        state.summary.requests += 1
        state.summary.payloadBytes += UInt64(record.payload.count)
      }
      if let last = acknowledged.last { state.checkpoint.nextSeq[last.stream] = last.seq &+ 1 }
      if let path = checkpointPath, !acknowledged.isEmpty || outcome.failure != nil {
        do throws(ReplayError) {
          try CheckpointFile.store(state.checkpoint, path: path)
        } catch {
          if state.failure == nil { state.failure = error }
        }
      }
      if let failure = outcome.failure, state.failure == nil { state.failure = failure }
      let progress = ReplayProgress(
        recordsDone: state.summary.recordsAlreadyDone + state.summary.recordsSent,
        recordsTotal: state.summary.recordsTotal, recordsSentThisRun: state.summary.recordsSent)
      return (progress, state.failure != nil)
    }
    if failed { stop.raise() }
    progress?(report)
  }

  /// Records a failure outside delivery (reading a segment, converting a record).
  func fail(_ error: ReplayError) {
    state.withLock { state in
      if state.failure == nil { state.failure = error }
    }
    stop.raise()
  }

  /// What the lanes did, once they all returned.
  func finish() -> (summary: ReplaySummary, checkpoint: ReplayCheckpoint, failure: ReplayError?) {
    state.withLock { ($0.summary, $0.checkpoint, $0.failure) }
  }
}
