import Audit
import Dispatch
public import EvidenceIO
public import Manifest
import Synchronization

#if canImport(Glibc)
  import Glibc
#endif

/// What `import` turns a set of OTLP files into: sealed segments and the facts of the bundle.
public struct ImportedEvidence: Sendable {
  public var segments: [SealedSegment]
  public var facts: BundleFacts
  /// Records read, per signal.
  public var recordCounts: [Signal: Int]
  /// The file holding the segments' compressed bytes when ``ImportOptions/spillDirectory`` was
  /// set; remove it with ``removeSpill()`` once the bundle is written.
  public var spillPath: String?

  /// Deletes the spill file, if any; the segments' data is unreadable afterwards.
  public func removeSpill() {
    if let spillPath { unlink(spillPath) }
  }
}

/// Why an import failed; every case is the input's or the caller's fault (exit 2).
public enum EvidenceImportError: Error, CustomStringConvertible, Sendable {
  /// An input file could not be read or decoded.
  case input(ImportError)
  /// An option has an invalid value.
  case invalidOption(String)
  /// The records could not be made into valid segments (for example a record over the size limit).
  case unsealable(String)

  public var description: String {
    switch self {
    case .input(let error): return error.description
    case .invalidOption(let message), .unsealable(let message): return message
    }
  }
}

/// Options of an import; `nil` facts take the documented defaults.
public struct ImportOptions: Sendable {
  /// Incident id; default `import-` + the first 16 hex digits of the evidence digest.
  public var incidentID: String?
  /// Default `imported from OTLP files`.
  public var reason: String?
  /// Default `stella-forensics import`.
  public var declaredBy: String?
  /// Tenant of every record; default `default`.
  public var tenant: String?
  /// The signal of protobuf requests that hold no span, log record or metric, in files where no
  /// other request tells it (`--signal`); without it such a file is refused.
  public var emptyRequestSignal: Signal?
  /// Largest decompressed segment before a new one is started.
  public var maxSegmentBytes: Int = 32 << 20
  /// A directory for a temporary file that holds the compressed segments (the bundle's output
  /// directory, say), so memory holds a few segments whatever the input's size; `nil` keeps
  /// them in memory.
  public var spillDirectory: String?
  /// Called after each input file is read, with how many files are done.
  public var onFileDone: (@Sendable (_ filesDone: Int, _ path: String) -> Void)?

  public init(incidentID: String? = nil, reason: String? = nil, declaredBy: String? = nil, tenant: String? = nil) {
    self.incidentID = incidentID
    self.reason = reason
    self.declaredBy = declaredBy
    self.tenant = tenant
  }
}

/// Turns OTLP files into bundle-ready evidence (node `import`, sequences from 0 per stream in
/// input order, arrival time unknown).
public enum EvidenceImport {
  /// The capture node id of imported records.
  public static let nodeID = "import"

  /// Reads `paths` in order and seals their records into segments.
  ///
  /// Defaults are chosen so the result depends only on the evidence: the incident id comes
  /// from a digest over every record's signal and request bytes (so the same records give the
  /// same id whether they came as JSON or protobuf, compressed or not); the capture window is
  /// the span of the records' own timestamps; the declaration time is the window's end.
  ///
  /// Streams: each file is read in pieces and each record is framed into its stream's pending
  /// segment as soon as it is read; a segment is compressed and hashed when it fills (and
  /// written to the spill file when ``ImportOptions/spillDirectory`` is set), so memory holds a
  /// few segments, never a file.
  public static func prepare(paths: [String], options: ImportOptions) throws(EvidenceImportError) -> ImportedEvidence {
    let tenant = options.tenant ?? "default"
    if let problem = TenantName.problem(with: tenant) {
      throw .invalidOption("--tenant \"\(tenant)\": \(problem)")
    }
    // Imported files are telemetry; a stream under the audit tenant would pose as a capture
    // node's custody record.
    if AuditStream.isReserved(tenant: tenant) {
      throw .invalidOption("--tenant \"\(tenant)\" is reserved for a capture node's audit stream")
    }
    let sealer = SegmentSealQueue(
      sink: try SegmentSink(spillDirectory: options.spillDirectory), segmentCapacity: options.maxSegmentBytes)
    do throws(EvidenceImportError) {
      var evidenceDigest = SHA256Hasher()
      var streams: [Signal: PendingSegment] = [:]
      let limits = VerificationLimits()
      for (index, path) in paths.enumerated() {
        do throws(ImportFailure<EvidenceImportError>) {
          let source = try openInput(path)
          _ = try OTLPFileImporter.forEachRecord(
            in: source, emptyRequestSignal: options.emptyRequestSignal,
            maxRecordBytes: limits.maxRecordSize - SegmentRecord.bodyPrefixSize
          ) { (record: borrowing ImportedRecordView) throws(EvidenceImportError) in
            evidenceDigest.update([record.signal.code])
            var length = UInt64(record.request.count).bigEndian
            withUnsafeBytes(of: &length) { evidenceDigest.update($0) }
            evidenceDigest.update(record.request)
            var stream =
              streams.removeValue(forKey: record.signal)
              ?? PendingSegment(
                header: SegmentHeader(signal: record.signal, tenant: tenant, node: nodeID),
                buffer: sealer.takeBuffer())
            if !stream.fits(record.request.count, maxBytes: options.maxSegmentBytes) {
              try sealer.submitFull(&stream, limits: limits, continuing: true)
            }
            try stream.add(record, limits: limits)
            streams[record.signal] = stream
          }
        } catch {
          switch error {
          case .input(let failure): throw EvidenceImportError.input(failure)
          case .consumer(let failure): throw failure
          }
        }
        options.onFileDone?(index + 1, path)
      }
      for signal in Signal.allCases {
        guard var stream = streams[signal], stream.recordCount > 0 else { continue }
        try sealer.submitFull(&stream, limits: limits, continuing: false)
      }
      let sink = try sealer.finish()
      let digest = Hex.encode(evidenceDigest.finalize())
      let segments = sink.segments
      let timed = segments.map(\.entry).filter { $0.firstTimeUnixNano != 0 || $0.lastTimeUnixNano != 0 }
      let captureStart = timed.map(\.firstTimeUnixNano).min() ?? 0
      let captureEnd = max(captureStart, timed.map(\.lastTimeUnixNano).max() ?? 0)
      let facts = BundleFacts(
        incident: IncidentFacts(
          id: options.incidentID ?? "import-" + digest.prefix(16),
          reason: options.reason ?? "imported from OTLP files",
          declaredBy: options.declaredBy ?? "stella-forensics import",
          declaredAtUnixNano: captureEnd),
        captureStartUnixNano: captureStart, captureEndUnixNano: captureEnd,
        redactionPolicy: .none, tool: .current)
      return ImportedEvidence(
        segments: segments, facts: facts,
        recordCounts: streams.mapValues { Int($0.nextSeq) }, spillPath: sink.spillPath)
    } catch {
      sealer.discard()
      throw error
    }
  }

  private static func openInput(_ path: String) throws(ImportFailure<EvidenceImportError>) -> ImportByteSource {
    do {
      return try ImportByteSource(path: path, maxDecompressedBytes: Int.max)
    } catch {
      throw .input(error)
    }
  }
}

/// Where sealed segments go: kept in memory, or their compressed bytes appended to a spill file
/// so that only their manifest entries stay in memory.
///
/// The spill file is written and later read around the page cache where the file system allows
/// (``UncachedFile``): its bytes are copied into the bundle once and never needed again, so
/// caching them only costs fresh pages. Each segment then starts at an aligned offset.
private struct SegmentSink: Sendable {
  var segments: [SealedSegment] = []
  let spillPath: String?
  private var fd: Int32
  private var offset = 0
  /// Where segments are copied for direct writes (which need an aligned source); `nil` when the
  /// spill file is written through the page cache.
  private var staging: AlignedBuffer?

  init(spillDirectory: String?) throws(EvidenceImportError) {
    guard let spillDirectory else {
      spillPath = nil
      fd = -1
      staging = nil
      return
    }
    let path = spillDirectory + "/.stella-import-\(getpid())-\(UInt32.random(in: 0...UInt32.max)).spill"
    // O_EXCL | O_NOFOLLOW: never write through a planted file or link.
    let descriptor = open(path, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
    guard descriptor >= 0 else {
      throw .unsealable("cannot create a temporary file in \(spillDirectory): \(String(cString: strerror(errno)))")
    }
    spillPath = path
    fd = descriptor
    staging = UncachedFile.makeDirect(descriptor) ? AlignedBuffer(capacity: 16 << 20) : nil
  }

  /// Adds the segment described by `entry` whose blob is `output[..<count]`.
  mutating func add(_ entry: BlobEntry, blob output: [UInt8], count: Int) throws(EvidenceImportError) {
    guard let spillPath else {
      segments.append(SealedSegment(entry: entry, data: .bytes(Array(output[..<count]))))
      return
    }
    if let staging {
      let padded = UncachedFile.aligned(count)
      staging.reserve(padded)
      output.withUnsafeBytes { raw in
        if let base = raw.baseAddress { staging.pointer.copyMemory(from: base, byteCount: count) }
      }
      (staging.pointer + count).initializeMemory(as: UInt8.self, repeating: 0, count: padded - count)
      let failure = writeAll(UnsafeRawBufferPointer(start: staging.pointer, count: padded), at: offset)
      if failure == 0 {
        segments.append(
          SealedSegment(entry: entry, data: .uncachedFileRange(path: spillPath, offset: offset, count: count)))
        offset += padded
        return
      }
      // A file system that takes O_DIRECT at open but refuses the write: go on cached.
      guard failure == EINVAL, UncachedFile.dropDirect(fd) else { throw writeFailure(failure) }
      self.staging = nil
    }
    let failure = output.withUnsafeBytes { writeAll(UnsafeRawBufferPointer(rebasing: $0[..<count]), at: offset) }
    guard failure == 0 else { throw writeFailure(failure) }
    segments.append(SealedSegment(entry: entry, data: .fileRange(path: spillPath, offset: offset, count: count)))
    offset += count
  }

  /// Writes all of `bytes` at `start`; returns 0, or the `errno` of the write that failed.
  private func writeAll(_ bytes: UnsafeRawBufferPointer, at start: Int) -> Int32 {
    guard let base = bytes.baseAddress else { return 0 }
    var written = 0
    while written < bytes.count {
      let count = pwrite(fd, base + written, bytes.count - written, off_t(start + written))
      if count < 0 {
        if errno == EINTR { continue }
        return errno
      }
      written += count
    }
    return 0
  }

  private func writeFailure(_ code: Int32) -> EvidenceImportError {
    .unsealable("cannot write \(spillPath ?? "the spill file"): \(String(cString: strerror(code)))")
  }

  /// Closes the spill file once every segment is in it; the bundle writer opens it again by path.
  mutating func closeFile() {
    if fd >= 0 { close(fd) }
    fd = -1
  }

  /// Closes and deletes the spill file after a failure.
  mutating func discard() {
    closeFile()
    if let spillPath { unlink(spillPath) }
  }
}

/// The records of one stream waiting to fill a segment, already framed as the segment holds them.
private struct PendingSegment {
  let header: SegmentHeader
  /// The segment's bytes so far: its header, then framed records.
  var framed: [UInt8]
  var recordCount = 0
  var times = OTLPTimeSummary()
  var firstSource: ImportSource?
  var framedBytes = 0
  var nextSeq: UInt64 = 0

  /// - Parameter buffer: an empty buffer to frame into (its capacity is what is reused).
  init(header: SegmentHeader, buffer: [UInt8]) {
    self.header = header
    framed = buffer
    framed.append(contentsOf: header.encoded())
  }

  /// Whether a request of `count` bytes may join the current segment; a segment always takes its
  /// first record.
  func fits(_ count: Int, maxBytes: Int) -> Bool {
    recordCount == 0 || framedBytes + count <= maxBytes
  }

  /// Checks the request as the verifier will (record size limit, the §6.3 time walk) and frames it.
  mutating func add(_ record: borrowing ImportedRecordView, limits: VerificationLimits) throws(EvidenceImportError) {
    if recordCount == 0 { firstSource = record.source }
    // The checks of SegmentSealer.checkRequest, on the bytes in place.
    guard record.request.count + SegmentRecord.bodyPrefixSize <= limits.maxRecordSize else {
      throw unsealable(
        "record seq \(nextSeq): request of \(record.request.count) bytes exceeds the record limit of \(limits.maxRecordSize)"
      )
    }
    do {
      times.merge(try record.checkedTimes ?? OTLPTimeScan.scan(record.request, signal: header.signal))
    } catch {
      throw unsealable("record seq \(nextSeq): request is not valid OTLP \(header.signal.rawValue): \(error)")
    }
    SegmentRecord.appendFramed(seq: nextSeq, receivedUnixNano: 0, request: record.request, to: &framed)
    framedBytes += record.request.count + SegmentRecord.frameHeaderSize + SegmentRecord.bodyPrefixSize
    recordCount += 1
    nextSeq += 1
  }

  /// Hands the segment over for sealing and starts the next one of the stream in `nextBuffer`
  /// (empty; the job owns the old bytes until it is done).
  mutating func takeFull(limits: VerificationLimits, nextBuffer: [UInt8]) -> SealJob {
    let firstSeq = nextSeq - UInt64(recordCount)
    var full = nextBuffer
    swap(&full, &framed)
    framed.append(contentsOf: header.encoded())
    let job = SealJob(
      framed: full, header: header, recordCount: UInt64(recordCount), firstSeq: firstSeq, lastSeq: nextSeq - 1,
      times: times, limits: limits, firstSource: firstSource)
    recordCount = 0
    framedBytes = 0
    times = OTLPTimeSummary()
    return job
  }

  private func unsealable(_ message: String) -> EvidenceImportError {
    let source = firstSource?.description ?? "input"
    return .unsealable("\(source): cannot seal \(header.signal.rawValue) records: \(message)")
  }
}

/// One full segment, framed, waiting to be compressed and hashed.
private struct SealJob: Sendable {
  var framed: [UInt8]
  var header: SegmentHeader
  var recordCount: UInt64
  var firstSeq: UInt64
  var lastSeq: UInt64
  var times: OTLPTimeSummary
  var limits: VerificationLimits
  var firstSource: ImportSource?

  /// Compresses and hashes the segment into `output` (reused storage); the blob is its first
  /// `count` bytes.
  func seal(into output: inout [UInt8]) throws(EvidenceImportError) -> (entry: BlobEntry, count: Int) {
    do {
      return try SegmentSealer.sealFramed(
        framed, header: header, recordCount: recordCount, firstSeq: firstSeq, lastSeq: lastSeq, times: times,
        limits: limits, reusing: &output)
    } catch {
      let source = firstSource?.description ?? "input"
      throw .unsealable("\(source): cannot seal \(header.signal.rawValue) records: \(error)")
    }
  }
}

/// Compresses and hashes full segments on other threads while the input goes on being read.
/// Level-3 compression of a segment is import's largest cost, so two segments are sealed at once
/// (one per core) beside reading, checking and framing the next. Sealed segments reach the sink
/// in submission order, so the bytes are those of sealing them in turn.
///
/// Memory stays bounded by a few segments: at most ``concurrentSeals`` jobs are queued or being
/// sealed, and each job's framed buffer goes back to a pool when it is sealed. Reusing those
/// buffers (capacity kept) matters as much as bounding them: a fresh 32 MiB buffer per segment
/// costs a page fault per 4 KiB (the kernel zeroing every page), which was a fifth of import's
/// time, and glibc's allocator keeps freed buffers of that size as fragmented heap.
private final class SegmentSealQueue: Sendable {
  private struct State: Sendable {
    var sink: SegmentSink
    var failure: EvidenceImportError?
    /// Blobs sealed ahead of an earlier segment, by submission number.
    var sealedAhead: [Int: (entry: BlobEntry, blob: [UInt8], count: Int)] = [:]
    /// Compression outputs to reuse, like the framed buffers.
    var spareOutputs: [[UInt8]] = []
    var nextToSink = 0
    var submitted = 0
    var spareBuffers: [[UInt8]] = []
    var queuedJobs: [Int: SealJob] = [:]
  }

  static let concurrentSeals = 2

  private let queue = DispatchQueue(label: "stella-forensics.import.seal", attributes: .concurrent)
  private let running = DispatchGroup()
  private let slots = DispatchSemaphore(value: concurrentSeals)
  private let state: Mutex<State>
  /// Capacity of a new buffer: a full segment and the record that would overflow it.
  private let bufferCapacity: Int

  init(sink: SegmentSink, segmentCapacity: Int) {
    state = Mutex(State(sink: sink))
    bufferCapacity = segmentCapacity + (1 << 16)
  }

  /// An empty buffer to frame a segment into: a sealed job's, or a new one.
  func takeBuffer() -> [UInt8] {
    if let spare = state.withLock({ $0.spareBuffers.popLast() }) { return spare }
    var buffer: [UInt8] = []
    buffer.reserveCapacity(bufferCapacity)
    return buffer
  }

  /// Queues `stream`'s full segment, waiting while ``concurrentSeals`` segments are still being
  /// sealed; with `continuing`, the stream goes on in a buffer taken once a slot is free, which is
  /// the buffer of the segment that just finished (so three buffers serve one stream).
  /// - Throws: the failure of an earlier segment, if one failed.
  func submitFull(_ stream: inout PendingSegment, limits: VerificationLimits, continuing: Bool)
    throws(EvidenceImportError)
  {
    if let failure = state.withLock({ $0.failure }) { throw failure }
    slots.wait()
    let job = stream.takeFull(limits: limits, nextBuffer: continuing ? takeBuffer() : [])
    // The job travels through the state, not the closure, so that the sealing thread holds the
    // only reference to its buffer and can empty it in place for reuse.
    let number = state.withLock { state in
      defer { state.submitted += 1 }
      state.queuedJobs[state.submitted] = job
      return state.submitted
    }
    queue.async(group: running) { [self] in
      defer { slots.signal() }
      guard var job = state.withLock({ $0.queuedJobs.removeValue(forKey: number) }) else { return }
      guard state.withLock({ $0.failure == nil }) else { return }
      var blob = state.withLock { $0.spareOutputs.popLast() } ?? []
      let outcome: Result<(entry: BlobEntry, count: Int), EvidenceImportError>
      do throws(EvidenceImportError) {
        outcome = .success(try job.seal(into: &blob))
      } catch {
        outcome = .failure(error)
      }
      var buffer: [UInt8] = []
      swap(&buffer, &job.framed)
      buffer.removeAll(keepingCapacity: true)
      state.withLock { state in
        state.spareBuffers.append(buffer)
        do throws(EvidenceImportError) {
          let sealed = try outcome.get()
          // Moved, not copied: another sealer may take it from the spares before this returns,
          // and a second reference would make it copy 32 MiB on write.
          var taken: [UInt8] = []
          swap(&taken, &blob)
          state.sealedAhead[number] = (sealed.entry, taken, sealed.count)
          while let next = state.sealedAhead.removeValue(forKey: state.nextToSink) {
            try state.sink.add(next.entry, blob: next.blob, count: next.count)
            state.spareOutputs.append(next.blob)
            state.nextToSink += 1
          }
        } catch {
          if state.failure == nil { state.failure = error }
        }
      }
    }
  }

  /// Waits for every queued segment and returns where they went.
  func finish() throws(EvidenceImportError) -> SegmentSink {
    running.wait()
    return try state.withLock { (state: inout State) throws(EvidenceImportError) -> SegmentSink in
      if let failure = state.failure { throw failure }
      state.sink.closeFile()
      return state.sink
    }
  }

  /// Waits for queued work, then deletes the spill file (after a failure).
  func discard() {
    running.wait()
    state.withLock { $0.sink.discard() }
  }
}
