public import CodedErrors
public import Manifest

/// A segment ready to be a bundle blob: its compressed bytes and the manifest entry describing them.
///
/// A sealed segment already *is* a blob, so sealing a bundle is hashing and copying, never
/// re-encoding.
public struct SealedSegment: Sendable {
  /// The manifest entry: digest, sizes, stream, counts, sequence and time range.
  public var entry: BlobEntry
  /// Where the compressed bytes are.
  public var data: MemberData

  public init(entry: BlobEntry, data: MemberData) {
    self.entry = entry
    self.data = data
  }
}

/// Building a segment or a manifest failed.
public typealias SealError = CodedError<SealErrorCode>

/// The codes of ``SealError``: whose fault it is.
public enum SealErrorCode: Sendable, Hashable {
  /// The evidence or facts cannot make a valid bundle (the caller's input).
  case invalidInput
  /// Reading or writing files failed.
  case io
  /// The output file already exists and replacing it was not asked for.
  case outputExists
}

/// Frames, scans and compresses records into a ``SealedSegment``.
public enum SegmentSealer {
  /// Seals `records` of one stream. Their seqs must be consecutive; their requests must be
  /// valid OTLP on the walked path (§6.3), which is what a verifier will recompute.
  public static func seal(header: SegmentHeader, records: [SegmentRecord], limits: VerificationLimits = .init())
    throws(SealError) -> SealedSegment
  {
    guard let first = records.first, let last = records.last else {
      throw SealError(.invalidInput, "a segment needs at least one record")
    }
    var segment = header.encoded()
    var times = OTLPTimeSummary()
    for (index, record) in records.enumerated() {
      guard record.seq == first.seq &+ UInt64(index) else {
        throw SealError(
          .invalidInput,
          "record \(index) of \(header.signal.rawValue)/\(header.tenant) has seq \(record.seq), expected \(first.seq &+ UInt64(index))"
        )
      }
      do {
        times.merge(try checkRequest(record.request, signal: header.signal, limits: limits))
      } catch {
        throw SealError(.invalidInput, "record seq \(record.seq): \(error.message)", cause: error)
      }
      segment.append(contentsOf: record.framed())
    }
    return try sealFramed(
      segment, header: header, recordCount: UInt64(records.count), firstSeq: first.seq, lastSeq: last.seq,
      times: times, limits: limits)
  }

  /// Checks that `request` can be a record a verifier accepts: within the record size limit and
  /// valid OTLP on the §6.3 wire path. Returns its item times.
  public static func checkRequest(_ request: [UInt8], signal: Signal, limits: VerificationLimits)
    throws(SealError) -> OTLPTimeSummary
  {
    guard request.count + SegmentRecord.bodyPrefixSize <= limits.maxRecordSize else {
      throw SealError(
        .invalidInput, "request of \(request.count) bytes exceeds the record limit of \(limits.maxRecordSize)")
    }
    do {
      return try OTLPTimeScan.scan(request, signal: signal)
    } catch {
      throw SealError(.invalidInput, "request is not valid OTLP \(signal.rawValue): \(error)", cause: error)
    }
  }

  /// Compresses an already framed segment (header and records, as a journal file holds it)
  /// and describes it. The caller vouches for the counts, sequence range and times, which it
  /// computed while the records were appended.
  public static func sealFramed(
    _ segment: [UInt8], header: SegmentHeader, recordCount: UInt64, firstSeq: UInt64, lastSeq: UInt64,
    times: OTLPTimeSummary, limits: VerificationLimits = .init()
  ) throws(SealError) -> SealedSegment {
    var compressed: [UInt8] = []
    let (entry, count) = try sealFramed(
      segment, header: header, recordCount: recordCount, firstSeq: firstSeq, lastSeq: lastSeq, times: times,
      limits: limits, reusing: &compressed)
    compressed.removeSubrange(count...)
    return SealedSegment(entry: entry, data: .bytes(compressed))
  }

  /// The same, compressing into `output`, whose storage is reused from call to call (a fresh
  /// buffer per segment costs a page fault per 4 KiB written): the blob is `output[..<count]`.
  public static func sealFramed(
    _ segment: [UInt8], header: SegmentHeader, recordCount: UInt64, firstSeq: UInt64, lastSeq: UInt64,
    times: OTLPTimeSummary, limits: VerificationLimits = .init(), reusing output: inout [UInt8]
  ) throws(SealError) -> (entry: BlobEntry, count: Int) {
    guard recordCount >= 1, lastSeq >= firstSeq, lastSeq - firstSeq == recordCount - 1 else {
      throw SealError(.invalidInput, "segment of \(recordCount) records cannot span seqs \(firstSeq)...\(lastSeq)")
    }
    var count: Int
    do {
      count = try Zstd.compress(segment, into: &output)
      if UInt64(segment.count) > limits.maxRatio * UInt64(count) {
        // Repetitive telemetry (the same request over and over) compresses better than the
        // 128× a verifier accepts, and a blob must never fail verification. Store the last
        // size/128 bytes raw in a second frame: the ratio is then below 128 whatever level 3
        // achieves on the rest, at a cost of under 1% of the segment's size.
        let rawCount = min(segment.count, segment.count / Int(limits.maxRatio) + 1)
        let split = segment.count - rawCount
        let head = split > 0 ? try Zstd.compress(Array(segment[..<split])) : []
        output = head + Zstd.storedFrame(segment[split...])
        count = output.count
      }
    } catch {
      throw SealError(.invalidInput, "compressing segment: \(error)", cause: error)
    }
    guard UInt64(segment.count) <= limits.maxUncompressedSize,
      UInt64(segment.count) <= limits.maxRatio * UInt64(count)
    else {
      throw SealError(
        .invalidInput,
        "segment of \(segment.count) bytes exceeds the blob limits (\(limits.maxUncompressedSize) bytes, ratio \(limits.maxRatio)); use smaller segments"
      )
    }
    let digest = output.withUnsafeBytes { SHA256Digest.hex(of: UnsafeRawBufferPointer(rebasing: $0[..<count])) }
    let (firstTime, lastTime) = times.range
    let entry = BlobEntry(
      sha256: digest, size: UInt64(count),
      uncompressedSize: UInt64(segment.count), signal: header.signal, tenant: header.tenant,
      node: header.node, recordCount: recordCount, firstSeq: firstSeq, lastSeq: lastSeq,
      firstTimeUnixNano: firstTime, lastTimeUnixNano: lastTime)
    return (entry, count)
  }
}

/// The facts a bundle states about itself besides its blobs.
public struct BundleFacts: Sendable {
  public var incident: IncidentFacts
  public var captureStartUnixNano: UInt64
  public var captureEndUnixNano: UInt64
  public var redactionPolicy: RedactionPolicyReference
  public var tool: ToolInfo

  public init(
    incident: IncidentFacts, captureStartUnixNano: UInt64, captureEndUnixNano: UInt64,
    redactionPolicy: RedactionPolicyReference, tool: ToolInfo
  ) {
    self.incident = incident
    self.captureStartUnixNano = captureStartUnixNano
    self.captureEndUnixNano = captureEndUnixNano
    self.redactionPolicy = redactionPolicy
    self.tool = tool
  }
}
