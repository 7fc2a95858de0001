import Audit
public import Manifest
import OTLPWire

/// How fast to replay.
public enum ReplaySpeed: Sendable, Equatable, CustomStringConvertible {
  /// As fast as the endpoint accepts.
  case max
  /// The recorded arrival spacing divided by `factor` (1 keeps it, 2 halves it).
  case factor(Double)

  /// Parses `max`, `1x`, `2x`, `0.5x`.
  public init?(_ text: String) {
    if text == "max" {
      self = .max
      return
    }
    guard text.hasSuffix("x"), let factor = Double(text.dropLast()), factor.isFinite, factor > 0 else { return nil }
    self = .factor(factor)
  }

  public var description: String {
    switch self {
    case .max: "max"
    case .factor(let factor): factor == factor.rounded() ? "\(Int(factor))x" : "\(factor)x"
    }
  }
}

/// Whether timestamps are moved.
public enum TimeShiftMode: String, Sendable, CaseIterable {
  /// The archived bytes, unchanged.
  case none
  /// One offset for the whole bundle, so its newest timestamp lands at the time replay starts.
  case now
}

/// Retries of requests the endpoint could not take yet.
public struct RetryPolicy: Sendable {
  /// Attempts per request, the first included.
  public var maxAttempts = 10
  /// The first backoff; each further one doubles, up to ``maxBackoffSeconds``.
  public var initialBackoffSeconds = 0.25
  public var maxBackoffSeconds = 10.0
  /// The longest `Retry-After` honoured; longer requests wait this long.
  public var maxRetryAfterSeconds = 300.0

  public init() {}

  /// The wait before attempt `attempt + 1` (attempt counts from 1).
  public func delay(afterAttempt attempt: Int, retryAfterSeconds: Double?) -> Double {
    if let retryAfterSeconds { return min(max(retryAfterSeconds, 0), maxRetryAfterSeconds) }
    var delay = initialBackoffSeconds
    for _ in 1..<max(attempt, 1) { delay = min(delay * 2, maxBackoffSeconds) }
    return delay
  }
}

/// What to replay and how.
public struct ReplayOptions: Sendable {
  /// How records are sent.
  public var wireProtocol: OTLPProtocol = .httpProtobuf
  public var speed: ReplaySpeed = .max
  public var timeShift: TimeShiftMode = .none
  /// Signals to send; empty means all.
  public var signals: Set<Signal> = []
  /// Tenants to send; empty means all.
  public var tenants: Set<String> = []
  /// Records per checkpointed batch: progress is made durable after each batch is acknowledged.
  public var batchRecords = 64
  /// Where to keep durable progress; `nil` for none.
  public var checkpointPath: String?
  /// Retries of retryable failures.
  public var retry = RetryPolicy()
  /// How long one request (or connection attempt) may take before it counts as failed and retryable.
  public var requestTimeoutSeconds: Int64 = 30
  /// At `max` speed, how many streams are sent at once, each on a connection of its own with
  /// one request in flight; 1 sends one stream after another on one connection.
  public var connections = 4

  public init() {}
}

/// Progress for displays.
public struct ReplayProgress: Sendable {
  /// Records acknowledged in this run plus those a checkpoint says were sent before.
  public var recordsDone: UInt64
  public var recordsTotal: UInt64
  /// Records acknowledged in this run only (for rates).
  public var recordsSentThisRun: UInt64
}

/// Per-stream outcome.
public struct StreamReplayReport: Sendable, Equatable {
  public var stream: StreamKey
  /// Records of the stream in the bundle.
  public var records: UInt64
  /// Records sent and acknowledged in this run.
  public var sent: UInt64
  /// Records a checkpoint said were sent by an earlier run (not sent again).
  public var alreadyDone: UInt64
  /// The next seq to send once this run ended (`lastSeq + 1` when the stream is complete).
  public var nextSeq: UInt64
}

/// What a replay did.
public struct ReplaySummary: Sendable {
  /// Records in the selected streams.
  public var recordsTotal: UInt64 = 0
  /// Records acknowledged in this run.
  public var recordsSent: UInt64 = 0
  /// Records a checkpoint said an earlier run had sent.
  public var recordsAlreadyDone: UInt64 = 0
  /// Export requests answered with success (one per record).
  public var requests: UInt64 = 0
  /// Attempts that were retried (not counting the first attempt of each request).
  public var retries: UInt64 = 0
  /// Bytes of request payloads acknowledged (as sent: JSON for http/json).
  public var payloadBytes: UInt64 = 0
  /// Items the endpoint reported as rejected in partial-success responses.
  public var rejectedItems: UInt64 = 0
  /// Time spent sending (verification excluded).
  public var durationNanos: UInt64 = 0
  /// The offset added to timestamps, when shifting.
  public var timeShiftNanos: Int64?
  /// Per-stream outcome, in stream order.
  public var streams: [StreamReplayReport] = []
}

/// The outcome of a replay: what was done, and the failure that stopped it, if any.
public struct ReplayReport: Sendable {
  /// What was done, also when the replay failed.
  public var summary: ReplaySummary
  /// Why the replay stopped early; `nil` when every selected record was acknowledged.
  public var failure: ReplayError?
}

/// Sends a deeply verified bundle to an allowed OTLP endpoint.
///
/// Records go one request each (the archived `Export…ServiceRequest`, so the endpoint receives
/// exactly the requests the capture node received), in sequence order within each stream, with
/// at most one request of a stream in flight: the next is sent only once the endpoint
/// acknowledged the one before, so a refused or failed record is never overtaken.
///
/// At `max` speed, up to ``ReplayOptions/connections`` streams are sent at once, each on its own
/// connection; when one fails, the others finish the request they have in flight and start no
/// other. When pacing (or with one connection), streams share one connection and are
/// interleaved by arrival time (`receivedUnixNano`, or the newest data timestamp where the
/// arrival time is unknown), one after another where arrival times are unknown.
public enum ReplayEngine {
  /// Runs a replay. Never throws: a failure comes back in the report with what was done before it.
  public static func run(
    bundle: DeeplyVerifiedBundle, destination: SealedDestination, options: ReplayOptions, nowUnixNano: UInt64,
    progress: (@Sendable (ReplayProgress) -> Void)? = nil
  ) async -> ReplayReport {
    var run = ReplayRun(bundle: bundle, options: options, progress: progress)
    let clock = ContinuousClock()
    let started = clock.now
    var failure: ReplayError?
    do {
      try await run.execute(destination: destination, nowUnixNano: nowUnixNano)
    } catch {
      failure = error
    }
    run.summary.durationNanos = UInt64(max(0, (clock.now - started).nanoseconds))
    run.summary.streams = run.streamReports()
    return ReplayReport(summary: run.summary, failure: failure)
  }

  /// The offset that puts the bundle's newest timestamp (the largest `lastTimeUnixNano` in the
  /// manifest) at `nowUnixNano`; 0 when the bundle holds no timestamps.
  public static func timeShift(for manifest: BundleManifest, nowUnixNano: UInt64) -> Int64 {
    let newest = manifest.blobs.map(\.lastTimeUnixNano).max() ?? 0
    guard newest > 0 else { return 0 }
    let difference = Int128(nowUnixNano) - Int128(newest)
    return Int64(clamping: difference)
  }
}

extension Duration {
  var nanoseconds: Int64 {
    let (seconds, attoseconds) = components
    return seconds &* 1_000_000_000 &+ attoseconds / 1_000_000_000
  }
}

/// One stream's position: the loaded segment and the next record in it.
struct StreamCursor {
  let key: StreamKey
  let firstSeq: UInt64
  let lastSeq: UInt64
  var pendingBlobs: [BlobEntry]
  /// The next seq the endpoint has not acknowledged (what a checkpoint records).
  var nextSeq: UInt64
  /// The next seq to prepare for sending; ahead of `nextSeq` while a batch is in flight.
  var preparedSeq: UInt64
  var startSeq: UInt64
  var segment: ArchivedSegment?
  var index = 0
  var sent: UInt64 = 0
  /// The running maximum of the pacing timeline, so a stream never goes back in time.
  var timeline: UInt64 = 0

  var records: UInt64 { lastSeq &- firstSeq &+ 1 }
  var isDone: Bool { preparedSeq > lastSeq }

  /// The next blob of this stream, being read and decompressed on another thread while the
  /// current one is sent (replay has two pipelines: storage → memory and memory → network).
  var prefetched: Task<Result<ArchivedSegment, ReplayError>, Never>?

  /// Starts reading the first blob this stream still needs, so streams waiting their turn are
  /// decompressed while an earlier one is being sent.
  mutating func startPrefetch(_ reader: ArchivedRecordReader, shift: Int64) {
    guard prefetched == nil, segment == nil, !isDone else { return }
    while let first = pendingBlobs.first, first.lastSeq < preparedSeq { pendingBlobs.removeFirst() }
    if let next = pendingBlobs.first {
      prefetched = Task.detached { Result { () throws(ReplayError) in try Self.load(reader, next, shift: shift) } }
    }
  }

  /// Reads a blob and applies the time shift to every record, once, on the loading thread.
  static func load(_ reader: ArchivedRecordReader, _ blob: BlobEntry, shift: Int64) throws(ReplayError)
    -> ArchivedSegment
  {
    var segment = try reader.segment(blob)
    if shift != 0 { try segment.shiftTimestamps(by: shift) }
    return segment
  }

  /// Loads the segment holding `nextSeq` if needed. Returns `false` when the stream is done.
  mutating func prepare(_ reader: ArchivedRecordReader, shift: Int64) async throws(ReplayError) -> Bool {
    while !isDone {
      if let segment, index < segment.records.count { return true }
      segment = nil
      // Blobs wholly before a resumed position are never read.
      while let first = pendingBlobs.first, first.lastSeq < preparedSeq {
        pendingBlobs.removeFirst()
        prefetched = nil
      }
      guard !pendingBlobs.isEmpty else { return false }
      let blob = pendingBlobs.removeFirst()
      let loaded: ArchivedSegment
      if let task = prefetched {
        prefetched = nil
        loaded = try await task.value.get()
      } else {
        loaded = try Self.load(reader, blob, shift: shift)
      }
      segment = loaded
      index = Int(preparedSeq &- blob.firstSeq)
      if let next = pendingBlobs.first {
        prefetched = Task.detached { Result { () throws(ReplayError) in try Self.load(reader, next, shift: shift) } }
      }
    }
    return false
  }
}

extension StreamCursor {
  /// The bytes to send for the next record (already shifted when loaded), as JSON if asked.
  func nextPayload(json: Bool) throws(ReplayError) -> (ArraySlice<UInt8>, UInt64) {
    guard let segment else {
      throw ReplayError(.bundleUnreadable, "no segment loaded", stream: key)
    }
    let record = segment.records[index]
    let request = segment.bytes[record.request]
    guard json else { return (request, record.seq) }
    do {
      return (try OTLPJSONEncoding.json(request: request, signal: key.signal)[...], record.seq)
    } catch {
      var located = error
      located.stream = key
      located.seq = record.seq
      throw located
    }
  }
}

struct ReplayRun {
  let bundle: DeeplyVerifiedBundle
  let options: ReplayOptions
  let progress: (@Sendable (ReplayProgress) -> Void)?
  var summary = ReplaySummary()
  var cursors: [StreamCursor] = []
  var checkpoint: ReplayCheckpoint

  init(bundle: DeeplyVerifiedBundle, options: ReplayOptions, progress: (@Sendable (ReplayProgress) -> Void)?) {
    self.bundle = bundle
    self.options = options
    self.progress = progress
    checkpoint = ReplayCheckpoint(manifestSHA256: bundle.manifestSHA256, timeShiftNanos: nil)
    for (key, blobs) in bundle.streams {
      if !options.signals.isEmpty && !options.signals.contains(key.signal) { continue }
      if !options.tenants.isEmpty && !options.tenants.contains(key.tenant) { continue }
      // The audit stream is the capture node's custody record, not telemetry of the site's
      // applications: it stays in the bundle for auditors and is never sent (a capture service
      // would refuse its reserved tenant anyway).
      if key.signal == AuditStream.signal && AuditStream.isReserved(tenant: key.tenant) { continue }
      guard let first = blobs.first?.firstSeq, let last = blobs.last?.lastSeq else { continue }
      cursors.append(
        StreamCursor(
          key: key, firstSeq: first, lastSeq: last, pendingBlobs: blobs, nextSeq: first, preparedSeq: first,
          startSeq: first))
    }
  }

  func streamReports() -> [StreamReplayReport] {
    cursors.map { cursor in
      StreamReplayReport(
        stream: cursor.key, records: cursor.records, sent: cursor.sent,
        alreadyDone: cursor.startSeq &- cursor.firstSeq, nextSeq: cursor.nextSeq)
    }
  }

  mutating func execute(destination: SealedDestination, nowUnixNano: UInt64) async throws(ReplayError) {
    let shift = try resumeFromCheckpoint(nowUnixNano: nowUnixNano)
    summary.timeShiftNanos = shift
    summary.recordsTotal = cursors.reduce(0) { $0 + $1.records }
    summary.recordsAlreadyDone = cursors.reduce(0) { $0 + ($1.startSeq &- $1.firstSeq) }
    guard cursors.contains(where: { !$0.isDone }) else { return }

    let reader = try ArchivedRecordReader(bundle)
    let waiting = cursors.indices.filter { !cursors[$0].isDone }
    let lanes = options.speed == .max ? min(max(options.connections, 1), waiting.count) : 1
    var exporters: [any OTLPExporter] = []
    do {
      for _ in 0..<lanes { exporters.append(try makeExporter(destination)) }
      if lanes > 1 {
        try await sendInLanes(reader: reader, exporters: exporters, shift: shift ?? 0)
      } else {
        try await sendAll(reader: reader, exporter: exporters[0], shift: shift ?? 0)
      }
    } catch {
      for exporter in exporters { await exporter.close() }
      throw error
    }
    for exporter in exporters { await exporter.close() }
  }

  func makeExporter(_ destination: SealedDestination) throws(ReplayError) -> any OTLPExporter {
    switch options.wireProtocol {
    case .httpProtobuf, .httpJSON:
      HTTPExporter(
        destination: destination, json: options.wireProtocol == .httpJSON,
        timeoutSeconds: options.requestTimeoutSeconds)
    case .grpc:
      try GRPCExporter(destination: destination, timeoutSeconds: options.requestTimeoutSeconds)
    }
  }

  /// Applies a checkpoint (if any) to the cursors, and fixes the time shift for this run.
  mutating func resumeFromCheckpoint(nowUnixNano: UInt64) throws(ReplayError) -> Int64? {
    var shift: Int64? =
      options.timeShift == .now ? ReplayEngine.timeShift(for: bundle.manifest, nowUnixNano: nowUnixNano) : nil
    guard let path = options.checkpointPath else { return shift }
    if let stored = try CheckpointFile.load(path: path) {
      guard stored.manifestSHA256 == bundle.manifestSHA256 else {
        throw ReplayError(
          .checkpointInvalid,
          "checkpoint \(path) belongs to the bundle with manifest \(stored.manifestSHA256), not \(bundle.manifestSHA256)"
        )
      }
      guard (stored.timeShiftNanos != nil) == (options.timeShift == .now) else {
        throw ReplayError(
          .checkpointInvalid,
          "checkpoint \(path) was made with --time-shift \(stored.timeShiftNanos == nil ? "none" : "now"); resume with the same setting"
        )
      }
      // Resume with the original offset, so records keep their relative times across runs.
      shift = stored.timeShiftNanos
      checkpoint = stored
      for index in cursors.indices {
        let key = cursors[index].key
        if let next = stored.nextSeq[key] {
          let clamped = min(max(next, cursors[index].firstSeq), cursors[index].lastSeq &+ 1)
          cursors[index].nextSeq = clamped
          cursors[index].preparedSeq = clamped
          cursors[index].startSeq = clamped
        }
      }
    } else {
      checkpoint = ReplayCheckpoint(manifestSHA256: bundle.manifestSHA256, timeShiftNanos: shift)
      try CheckpointFile.store(checkpoint, path: path)
    }
    return shift
  }

  mutating func sendAll(reader: ArchivedRecordReader, exporter: any OTLPExporter, shift: Int64)
    async throws(ReplayError)
  {
    let clock = ContinuousClock()
    var pacingStart: (instant: ContinuousClock.Instant, timeline: UInt64)?
    var sinceCheckpoint = 0
    let batchSize = max(options.batchRecords, 1)
    // One sequence on one connection: nothing else can stop it.
    let neverStopped = ReplayStop()
    for index in cursors.indices { cursors[index].startPrefetch(reader, shift: shift) }
    while true {
      // Up to a batch of records in replay order, handed to the exporter at once, so that at
      // full speed the requests go out back to back on the exporter's own thread. Paced
      // replays hand over one record at a time, each at its moment.
      var batch: [PreparedRecord] = []
      var owners: [Int] = []
      let limit = options.speed == .max ? batchSize - sinceCheckpoint : 1
      while batch.count < limit {
        // The stream whose next record comes first on the timeline.
        var chosen: Int?
        var chosenTime: UInt64 = 0
        for index in cursors.indices {
          guard try await cursors[index].prepare(reader, shift: shift) else { continue }
          let time = try timelineKey(index, shift: shift)
          if chosen == nil || time < chosenTime {
            chosen = index
            chosenTime = time
          }
        }
        guard let index = chosen else { break }
        cursors[index].timeline = chosenTime
        if case .factor(let factor) = options.speed {
          if let start = pacingStart {
            let offsetNanos = Double(chosenTime &- min(chosenTime, start.timeline)) / factor
            let target = start.instant + .nanoseconds(Int64(min(offsetNanos, Double(Int64.max / 2))))
            if target > clock.now { try? await Task.sleep(until: target, clock: clock) }
          } else {
            pacingStart = (clock.now, chosenTime)
          }
        }
        let (payload, seq) = try payloadOfNext(index)
        batch.append(PreparedRecord(stream: cursors[index].key, seq: seq, payload: payload))
        owners.append(index)
        cursors[index].index += 1
        cursors[index].preparedSeq = seq &+ 1
      }
      guard !batch.isEmpty else { break }

      let outcome = await exporter.exportAll(batch, retry: options.retry, stop: neverStopped)
      summary.retries += outcome.retries
      summary.rejectedItems += outcome.rejectedItems
      for position in 0..<outcome.accepted {
        let index = owners[position]
        let record = batch[position]
        summary.recordsSent += 1
        summary.requests += 1
        summary.payloadBytes += UInt64(record.payload.count)
        cursors[index].sent += 1
        cursors[index].nextSeq = record.seq &+ 1
        checkpoint.nextSeq[record.stream] = record.seq &+ 1
      }
      if let failure = outcome.failure {
        // Keep what was acknowledged, so a rerun resumes at the record that failed.
        try? storeCheckpoint()
        throw failure
      }
      sinceCheckpoint += outcome.accepted
      if sinceCheckpoint >= batchSize {
        try storeCheckpoint()
        sinceCheckpoint = 0
      }
      progress?(
        ReplayProgress(
          recordsDone: summary.recordsAlreadyDone + summary.recordsSent, recordsTotal: summary.recordsTotal,
          recordsSentThisRun: summary.recordsSent))
    }
    if sinceCheckpoint > 0 { try storeCheckpoint() }
  }

  func storeCheckpoint() throws(ReplayError) {
    guard let path = options.checkpointPath else { return }
    try CheckpointFile.store(checkpoint, path: path)
  }

  /// Where the next record of stream `index` falls on the pacing timeline.
  func timelineKey(_ index: Int, shift: Int64) throws(ReplayError) -> UInt64 {
    let cursor = cursors[index]
    guard let segment = cursor.segment else { return cursor.timeline }
    let record = segment.records[cursor.index]
    var time = record.receivedUnixNano
    if time == 0, options.speed != .max {
      let result = segment.bytes.withUnsafeBytes { raw in
        Result { () throws(OTLPWireError) in
          try OTLPWireReader.newestTimestamp(
            in: UnsafeRawBufferPointer(rebasing: raw[record.request]), signal: cursor.key.signal.wireSignal)
        }
      }
      switch result {
      // Data times were shifted when the segment was loaded; pace by the recorded ones.
      case .success(let newest): time = newest == 0 ? 0 : UInt64(clamping: Int128(newest) - Int128(shift))
      case .failure(let error):
        throw ReplayError(.requestUnconvertible, error.description, stream: cursor.key, seq: record.seq)
      }
    }
    return max(time, cursor.timeline)
  }

  /// The bytes to send for the next record of stream `index` (already shifted when loaded), converted as asked.
  func payloadOfNext(_ index: Int) throws(ReplayError) -> (ArraySlice<UInt8>, UInt64) {
    try cursors[index].nextPayload(json: options.wireProtocol == .httpJSON)
  }
}
