public import CodedErrors
public import EvidenceIO
public import Manifest

#if canImport(Glibc)
  import Glibc
#elseif canImport(Darwin)
  import Darwin
#endif

/// A segment file could not be written, read or recovered.
public typealias SegmentFileError = FileError<SegmentFileErrorCode>

/// The codes of ``SegmentFileError``: what kind of failure it is.
public enum SegmentFileErrorCode: Sendable, Hashable {
  /// The operating system refused (open, write, fsync, rename...).
  case io
  /// A request that is not valid OTLP on the walked path (§6.3): never journaled, because a
  /// verifier would reject the segment.
  case invalidRecord
  /// Damage that is not a torn tail: a bad header, or a broken record with valid data after
  /// it. Recovery refuses to cut it, because cutting would silently drop evidence.
  case corruptMiddle
  /// The segment file is already sealed or closed.
  case closed
}

/// One request to append to a segment file.
public struct SegmentFileRecord {
  public var request: [UInt8]
  public var receivedUnixNano: UInt64
  /// The request's §6.3 time summary when admission already computed it; `nil`: the writer
  /// walks the request itself.
  public var times: OTLPTimeSummary?

  public init(request: [UInt8], receivedUnixNano: UInt64, times: OTLPTimeSummary? = nil) {
    self.request = request
    self.receivedUnixNano = receivedUnixNano
    self.times = times
  }
}

/// Appends framed records of one stream to an open segment file: the journal's unit.
///
/// The file holds exactly the bytes of an uncompressed segment (§6.2), so a crash leaves at most
/// a torn tail that ``SegmentFileRecovery`` detects and cuts, and sealing is compressing the
/// file as it is. Every request is checked on the §6.3 wire path before it is written, so a
/// sealed segment always verifies.
public final class SegmentFileWriter {
  public let path: String
  public let header: SegmentHeader
  public let firstSeq: UInt64
  /// The seq the next appended record gets.
  public private(set) var nextSeq: UInt64
  /// Bytes in the file, header included.
  public private(set) var byteCount: Int
  /// Times over every appended record (§6.3).
  public private(set) var times = OTLPTimeSummary()
  /// The earliest and latest arrival time of the file's records (`nil` / 0 while it has none).
  public private(set) var firstReceivedUnixNano: UInt64?
  public private(set) var lastReceivedUnixNano: UInt64 = 0
  private var descriptor: Int32
  /// The descriptor was closed while the segment is idle (``suspend()``); the next append or
  /// sync reopens the file.
  private var suspended = false
  private var scratch: [UInt8] = []
  private let limits: VerificationLimits

  /// Creates `path` (which must not exist) and writes the segment header durably.
  public init(creating path: String, header: SegmentHeader, firstSeq: UInt64, limits: VerificationLimits = .init())
    throws(SegmentFileError)
  {
    let fd: Int32
    do {
      fd = try EvidenceFiles.createNew(path, append: true)
    } catch {
      throw SegmentFileError(.io, path: path, "cannot create segment file: \(error.message)", osError: error.osError)
    }
    self.path = path
    self.header = header
    self.firstSeq = firstSeq
    self.nextSeq = firstSeq
    self.descriptor = fd
    self.limits = limits
    let encoded = header.encoded()
    self.byteCount = encoded.count
    self.syncedNextSeq = firstSeq
    try SegmentFileWriter.writeAll(fd, encoded, path: path)
    try sync()
    try SegmentFileWriter.syncDirectory(of: path)
  }

  /// Continues a recovered segment file: appends go after its last valid record.
  public init(continuing recovered: RecoveredSegment, limits: VerificationLimits = .init()) throws(SegmentFileError) {
    let fd = open(recovered.path, O_WRONLY | O_APPEND | O_CLOEXEC)
    guard fd >= 0 else { throw .system(.io, path: recovered.path, "cannot open segment file") }
    self.path = recovered.path
    self.header = recovered.header
    self.firstSeq = recovered.firstSeq
    self.nextSeq = recovered.firstSeq + recovered.recordCount
    self.byteCount = recovered.validLength
    self.times = recovered.times
    self.firstReceivedUnixNano = recovered.firstReceivedUnixNano
    self.lastReceivedUnixNano = recovered.lastReceivedUnixNano
    self.descriptor = fd
    self.limits = limits
    // What recovery read back is what the file system holds.
    self.syncedByteCount = recovered.validLength
    self.syncedNextSeq = nextSeq
  }

  deinit {
    if descriptor >= 0 { close(descriptor) }
  }

  /// Records appended so far.
  public var recordCount: UInt64 { nextSeq - firstSeq }

  /// Appends one request as the next record of the stream and returns its seq. Durable only
  /// after ``sync()`` (callers batch several appends per sync: group commit).
  @discardableResult
  public func append(request: [UInt8], receivedUnixNano: UInt64) throws(SegmentFileError) -> UInt64 {
    try append(batch: [(request, receivedUnixNano)])
  }

  /// Appends requests as consecutive records with one write, and returns the first one's seq.
  ///
  /// All or nothing: every request is checked before anything is written, and a failed write
  /// (a full disk, say) is cut off again, so the file never keeps a partial record that a later
  /// append would bury in the middle. Durable only after ``sync()``.
  @discardableResult
  public func append(batch: [(request: [UInt8], receivedUnixNano: UInt64)]) throws(SegmentFileError) -> UInt64 {
    try append(records: batch.map { SegmentFileRecord(request: $0.request, receivedUnixNano: $0.receivedUnixNano) })
  }

  /// Appends records with one write, and returns the first one's seq; as
  /// ``append(batch:)``, but a record whose ``SegmentFileRecord/times`` admission already
  /// computed (with a check that covers the §6.3 walk) is not walked again.
  @discardableResult
  public func append(records batch: [SegmentFileRecord]) throws(SegmentFileError) -> UInt64 {
    try resume()
    guard descriptor >= 0 else { throw SegmentFileError(.closed, path: path, "segment is closed") }
    var summaries = OTLPTimeSummary()
    for item in batch {
      if let times = item.times, item.request.count + SegmentRecord.bodyPrefixSize <= limits.maxRecordSize {
        summaries.merge(times)
        continue
      }
      do {
        summaries.merge(try SegmentSealer.checkRequest(item.request, signal: header.signal, limits: limits))
      } catch {
        throw SegmentFileError(.invalidRecord, path: path, error.message)
      }
    }
    let firstSeq = nextSeq
    // One buffer per writer, reused while the segment is active: its pages stay mapped, so a
    // batch costs one copy of each request and no page faults. It is written out before it
    // would pass `writeChunkBytes`, so a batch as large as the whole in-flight bound is not
    // copied whole a second time, and the buffer stays within one chunk unless one record is
    // larger.
    let framingBytes = SegmentRecord.frameHeaderSize + SegmentRecord.bodyPrefixSize
    var framed = scratch
    scratch = []
    framed.removeAll(keepingCapacity: true)
    framed.reserveCapacity(min(batch.reduce(0) { $0 + $1.request.count + framingBytes }, Self.writeChunkBytes))
    var written = 0
    defer {
      // A segment's worth of scratch is not kept: one huge record must not pin its memory.
      if framed.capacity <= Self.writeChunkBytes { scratch = framed }
    }
    func writeFramed() throws(SegmentFileError) {
      try SegmentFileWriter.writeAll(descriptor, framed, path: path)
      written += framed.count
      framed.removeAll(keepingCapacity: true)
    }
    do {
      for (index, item) in batch.enumerated() {
        if !framed.isEmpty, framed.count + item.request.count + framingBytes > Self.writeChunkBytes {
          try writeFramed()
        }
        item.request.withUnsafeBytes { request in
          SegmentRecord.appendFramed(
            seq: firstSeq + UInt64(index), receivedUnixNano: item.receivedUnixNano, request: request, to: &framed)
        }
      }
      if !framed.isEmpty { try writeFramed() }
    } catch {
      // O_APPEND wrote at the end; cut whatever part landed so the file ends on a whole record.
      if ftruncate(descriptor, off_t(byteCount)) != 0 {
        close(descriptor)
        descriptor = -1
        throw SegmentFileError(
          .io, path: path, "\(error.message); cutting the partial write failed too, segment closed")
      }
      throw error
    }
    nextSeq += UInt64(batch.count)
    byteCount += written
    times.merge(summaries)
    for item in batch {
      firstReceivedUnixNano = min(firstReceivedUnixNano ?? item.receivedUnixNano, item.receivedUnixNano)
      lastReceivedUnixNano = max(lastReceivedUnixNano, item.receivedUnixNano)
    }
    return firstSeq
  }

  /// Makes every appended record durable (fdatasync).
  public func sync() throws(SegmentFileError) {
    if suspended { return }
    guard descriptor >= 0 else { throw SegmentFileError(.closed, path: path, "segment is closed") }
    guard fdatasync(descriptor) == 0 else { throw .system(.io, path: path, "fdatasync failed") }
    syncedByteCount = byteCount
    syncedNextSeq = nextSeq
  }

  /// Bytes and the next seq as of the last successful ``sync()`` (or creation, or recovery):
  /// what is known to be on stable storage.
  public private(set) var syncedByteCount = 0
  public private(set) var syncedNextSeq: UInt64 = 0

  /// Gives up on this file after a failed sync: Linux may have dropped the unsynced pages and
  /// will not report that again, so nothing more may be written or acknowledged into it. The
  /// file is cut back to its last synced record (best effort: if the cut fails, recovery's scan
  /// decides what the file holds) and closed; the caller seals it from what is on disk.
  /// - Parameter cutToLastSync: `false` keeps what was written after the last sync (records
  ///   already acknowledged under the `interval` policy); the seal's scan then decides.
  /// - Returns: whether the file now ends at its last synced record, so the stream can continue
  ///   at ``syncedNextSeq``.
  public func poison(cutToLastSync: Bool) -> Bool {
    if suspended {
      suspended = false
      descriptor = -1
      return true
    }
    guard descriptor >= 0 else { return false }
    let cut = cutToLastSync && ftruncate(descriptor, off_t(syncedByteCount)) == 0
    close(descriptor)
    descriptor = -1
    return cut
  }

  /// `false`: records are made durable by the seal alone (see ``JournalOptions/syncsAppends``),
  /// so suspending and sealing do not sync the uncompressed file first.
  public var syncsRecords = true

  /// How much framed data a batch collects before it is written (and the buffer reused): large
  /// enough that writes stay few (a write per MiB is nothing next to compressing it), small
  /// enough that the buffer every active segment keeps costs little memory.
  static let writeChunkBytes = 1 << 20

  /// Whether the descriptor is closed while the segment waits for its next record.
  public var isSuspended: Bool { suspended }

  /// Syncs the file and closes its descriptor while the stream is idle, so thousands of quiet
  /// streams (tenants) do not hold thousands of descriptors; the next append reopens it.
  public func suspend() throws(SegmentFileError) {
    guard !suspended, descriptor >= 0 else { return }
    if syncsRecords { try sync() }
    close(descriptor)
    descriptor = -1
    suspended = true
    scratch = []
  }

  private func resume() throws(SegmentFileError) {
    guard suspended else { return }
    let fd = open(path, O_WRONLY | O_APPEND | O_CLOEXEC)
    guard fd >= 0 else { throw .system(.io, path: path, "cannot reopen segment file") }
    descriptor = fd
    suspended = false
  }

  /// Syncs and closes the file, then compresses it into `compressedPath` (written atomically
  /// and durably). The open file stays as it is; removing it is the caller's decision.
  public func seal(to compressedPath: String) throws(SegmentFileError) -> SealedSegment {
    guard recordCount > 0 else {
      throw SegmentFileError(.invalidRecord, path: path, "cannot seal a segment without records")
    }
    if syncsRecords { try sync() }
    if descriptor >= 0 { close(descriptor) }
    descriptor = -1
    suspended = false
    // No more appends: the write buffer is not kept while the segment is compressed.
    scratch = []
    guard UInt64(byteCount) <= limits.maxUncompressedSize else {
      throw SegmentFileError(
        .invalidRecord, path: path,
        "segment of \(byteCount) bytes exceeds the blob limit of \(limits.maxUncompressedSize) bytes; use smaller segments"
      )
    }
    let input = open(path, O_RDONLY | O_CLOEXEC)
    guard input >= 0 else { throw .system(.io, path: path, "cannot open segment file to seal it") }
    defer { close(input) }
    let temporary = compressedPath + ".partial"
    let fd: Int32
    do {
      fd = try EvidenceFiles.createTemporary(temporary)
    } catch {
      throw SegmentFileError(
        .io, path: temporary, "cannot create sealed segment: \(error.message)", osError: error.osError)
    }
    let compressed: CompressedFile
    do throws(SegmentFileError) {
      // Streamed from file to file, so sealing holds a few buffers, never the segment.
      do {
        compressed = try ZstdFileCompressor.compress(
          input: input, size: byteCount, output: fd, maxRatio: limits.maxRatio)
      } catch {
        throw SegmentFileError(.io, path: temporary, error.message)
      }
      guard fsync(fd) == 0 else { throw SegmentFileError.system(.io, path: temporary, "fsync failed") }
      close(fd)
    } catch {
      close(fd)
      unlink(temporary)
      throw error
    }
    guard rename(temporary, compressedPath) == 0 else {
      unlink(temporary)
      throw .system(.io, path: compressedPath, "cannot rename sealed segment into place")
    }
    try SegmentFileWriter.syncDirectory(of: compressedPath)
    let (firstTime, lastTime) = times.range
    let entry = BlobEntry(
      sha256: compressed.sha256, size: UInt64(compressed.size), uncompressedSize: UInt64(byteCount),
      signal: header.signal, tenant: header.tenant, node: header.node, recordCount: recordCount, firstSeq: firstSeq,
      lastSeq: nextSeq - 1, firstTimeUnixNano: firstTime, lastTimeUnixNano: lastTime)
    return SealedSegment(entry: entry, data: .fileRange(path: compressedPath, offset: 0, count: compressed.size))
  }

  static func writeAll(_ fd: Int32, _ bytes: [UInt8], path: String) throws(SegmentFileError) {
    var failure: SegmentFileError?
    bytes.withUnsafeBytes { raw in
      var done = 0
      while done < raw.count {
        let written = write(fd, raw.baseAddress.map { $0 + done }, raw.count - done)
        if written < 0 {
          if Glibc.errno == EINTR { continue }
          failure = .system(.io, path: path, "write failed")
          return
        }
        done += written
      }
    }
    if let failure { throw failure }
  }

  static func syncDirectory(of path: String) throws(SegmentFileError) {
    do {
      try EvidenceFiles.syncDirectory(of: path)
    } catch {
      throw SegmentFileError(.io, path: error.path, error.message, osError: error.osError)
    }
  }
}

/// What a scan of an open segment file found.
public struct RecoveredSegment: Sendable {
  public var path: String
  public var header: SegmentHeader
  public var firstSeq: UInt64
  public var recordCount: UInt64
  public var times: OTLPTimeSummary
  /// The earliest and latest arrival time of the valid records (`nil` / 0 when there are none).
  public var firstReceivedUnixNano: UInt64?
  public var lastReceivedUnixNano: UInt64
  /// Bytes of the header and every whole, valid record.
  public var validLength: Int
  /// Bytes after them: a torn tail left by a crash mid-append (0 when the file ends cleanly).
  public var tornTailBytes: Int
}

/// Finds the torn tail of a segment file after a crash, and cuts it.
public enum SegmentFileRecovery {
  /// Scans `path` without changing it. `expectedFirstSeq` is the seq the file should start at
  /// (`nil` to accept the first record's).
  public static func scan(path: String, expectedFirstSeq: UInt64? = nil, limits: VerificationLimits = .init())
    throws(SegmentFileError) -> RecoveredSegment
  {
    let bytes = try readFile(path)
    return try scan(bytes, path: path, expectedFirstSeq: expectedFirstSeq, limits: limits)
  }

  /// Scans `path` and truncates a torn tail (durably). A corrupt middle is an error and the
  /// file is left untouched.
  public static func recover(path: String, expectedFirstSeq: UInt64? = nil, limits: VerificationLimits = .init())
    throws(SegmentFileError) -> RecoveredSegment
  {
    let recovered = try scan(path: path, expectedFirstSeq: expectedFirstSeq, limits: limits)
    if recovered.tornTailBytes > 0 {
      guard truncate(path, off_t(recovered.validLength)) == 0 else {
        throw .system(.io, path: path, "cannot cut torn tail")
      }
      let fd = open(path, O_WRONLY | O_CLOEXEC)
      guard fd >= 0 else { throw .system(.io, path: path, "cannot reopen after cutting") }
      defer { close(fd) }
      guard fsync(fd) == 0 else { throw .system(.io, path: path, "fsync after cutting failed") }
    }
    return recovered
  }

  /// The scan over bytes in memory.
  public static func scan(_ bytes: [UInt8], path: String, expectedFirstSeq: UInt64?, limits: VerificationLimits)
    throws(SegmentFileError) -> RecoveredSegment
  {
    let parsedHeader: (SegmentHeader, Int)?
    do {
      parsedHeader = try bytes.withUnsafeBytes { raw throws(SegmentFormatError) in try SegmentHeader.read(from: raw) }
    } catch {
      throw SegmentFileError(.corruptMiddle, path: path, "bad segment header: \(error)")
    }
    guard let (header, headerLength) = parsedHeader else {
      // Creation writes and syncs the header before anything is acknowledged, so a short
      // header means nothing was ever acknowledged into this file.
      throw SegmentFileError(.corruptMiddle, path: path, "file ends inside the segment header (\(bytes.count) bytes)")
    }
    // Framing, CRCs and limits are the verifier's own parser; recovery only adds the judgement
    // of whether a failure is a torn tail (safe to cut) or a corrupt middle (never cut).
    var parser = SegmentStreamParser(maxRecordSize: limits.maxRecordSize)
    var firstSeq = expectedFirstSeq
    var count: UInt64 = 0
    var times = OTLPTimeSummary()
    var firstReceived: UInt64?
    var lastReceived: UInt64 = 0
    var validLength = headerLength
    var recordProblem: String?
    var framingError: SegmentFormatError?
    bytes.withUnsafeBytes { raw in
      do throws(SegmentFormatError) {
        try parser.consume(raw) { record in
          guard recordProblem == nil else { return }
          let expected = (firstSeq ?? record.seq) &+ count
          guard record.seq == expected else {
            recordProblem = "record at byte \(record.offset) has seq \(record.seq), expected \(expected)"
            return
          }
          do {
            times.merge(try OTLPTimeScan.scan(record.request, signal: header.signal))
          } catch {
            recordProblem = "record seq \(record.seq) at byte \(record.offset): \(error)"
            return
          }
          if firstSeq == nil { firstSeq = record.seq }
          firstReceived = min(firstReceived ?? record.receivedUnixNano, record.receivedUnixNano)
          lastReceived = max(lastReceived, record.receivedUnixNano)
          count += 1
          validLength =
            record.offset + SegmentRecord.frameHeaderSize + SegmentRecord.bodyPrefixSize + record.request.count
        }
      } catch {
        framingError = error
      }
    }
    if let recordProblem { throw SegmentFileError(.corruptMiddle, path: path, recordProblem) }
    let recovered = RecoveredSegment(
      path: path, header: header, firstSeq: firstSeq ?? 0, recordCount: count, times: times,
      firstReceivedUnixNano: firstReceived, lastReceivedUnixNano: lastReceived, validLength: validLength,
      tornTailBytes: bytes.count - validLength)
    if let framingError, !isTornTail(framingError, in: bytes) {
      throw SegmentFileError(.corruptMiddle, path: path, "\(framingError), with data after it")
    }
    // Whatever follows the last valid record (a torn frame, or a record the parser held back
    // because it runs past the end) is the torn tail.
    return recovered
  }

  /// Whether a framing failure is what a crash mid-append leaves: a record whose bytes reach the
  /// end of the file, or one followed only by zeros (space the file system allocated but never
  /// wrote), rather than damage with real data after it.
  private static func isTornTail(_ error: SegmentFormatError, in bytes: [UInt8]) -> Bool {
    let start = error.offset
    switch error.kind {
    case .crcMismatch:
      let length = bytes[start + 4..<start + 8].reduce(0) { $0 << 8 | Int($1) }
      let end = start + SegmentRecord.frameHeaderSize + length
      return end >= bytes.count || bytes[end...].allSatisfy { $0 == 0 }
    case .badRecord, .recordTooLarge, .truncated:
      return bytes[start...].allSatisfy { $0 == 0 }
    case .badHeader:
      return false
    }
  }

  static func readFile(_ path: String) throws(SegmentFileError) -> [UInt8] {
    do {
      let source = try FileByteSource(path: path)
      return try source.bytes(at: 0, count: source.count)
    } catch {
      throw SegmentFileError(.io, path: path, error.message)
    }
  }
}
