import Audit
public import EvidenceIO
public import Journal
public import Manifest

#if canImport(Glibc)
  import Glibc
#endif

/// Picks the journal's segments for a bundle, straight from the data directory.
///
/// Sealed segments go into the bundle as they are (hashing and copying; no re-encoding). Records
/// still in an open segment are sealed in memory from the file's valid prefix, so a bundle can be
/// made while capture runs without waiting for rotation. The selection works on whole segments:
/// a segment is taken when its records' arrival times overlap the window, so the bundle may hold
/// a few records just outside the window but never misses one inside it, and each stream's
/// segments stay contiguous (what lies between two selected segments is selected too).
public enum JournalSelection {
  /// What a selection found: the segments, and the one redaction policy their records went through.
  public struct Selection: Sendable {
    public var segments: [SealedSegment]
    /// `none` when nothing was selected.
    public var redactionPolicy: RedactionPolicyReference
    /// The earliest arrival time of a selected record (`nil` when nothing was selected, or a
    /// selected segment does not know its arrival times).
    public var firstArrivalUnixNano: UInt64?

    /// Where a manifest's capture window for this selection starts when `requested` was asked
    /// for: never before the oldest record the journal still held for it, so a window that
    /// reaches back past what the ring kept (pruned by size, or never received) does not claim
    /// evidence the bundle cannot hold.
    public func captureStart(requested: UInt64) -> UInt64 {
      max(requested, firstArrivalUnixNano ?? requested)
    }
  }

  /// The segments of every stream (or of `tenants` only) with records that arrived between
  /// `fromUnixNano` and `toUnixNano`, inclusive. A window whose segments were journaled under two
  /// redaction policies is refused: a manifest states one policy.
  ///
  /// - Parameter excludingAudit: leave out the reserved audit stream (``AuditStream``) even when
  ///   `tenants` is `nil`.
  public static func select(
    dataDirectory: String, fromUnixNano: UInt64, toUnixNano: UInt64, tenants: [String]?,
    excludingAudit: Bool = false, limits: VerificationLimits = .init()
  ) throws(JournalError) -> Selection {
    let layout = JournalLayout(dataDirectory: dataDirectory)
    let currentPolicy = try JournalPolicyFile.read(layout)
    let keys = tenants.map { Set($0.map { "/" + JournalLayout.tenantKey($0) }) }
    let auditKey = "/" + JournalLayout.tenantKey(AuditStream.tenant)
    var selected: [SealedSegment] = []
    var policies: Set<RedactionPolicyReference> = []
    var firstArrival: UInt64?
    for directory in layout.streamDirectories() {
      if let keys, !keys.contains(where: { directory.hasSuffix($0) }) { continue }
      if excludingAudit && directory.hasSuffix(auditKey) { continue }
      for (segment, policy, arrival) in try selectStream(
        directory, from: fromUnixNano, to: toUnixNano, limits: limits, currentPolicy: currentPolicy)
      {
        selected.append(segment)
        policies.insert(policy)
        // 0: a segment recovered without its sidecar does not know; then no start is claimed.
        firstArrival = min(firstArrival ?? .max, arrival)
      }
    }
    guard policies.count <= 1 else {
      let names = policies.map { "\($0.id) (\($0.sha256.prefix(12))…)" }.sorted().joined(separator: ", ")
      throw JournalError(
        .configuration,
        "the window holds records journaled under different redaction policies: \(names); bundle a narrower window")
    }
    return Selection(
      segments: selected, redactionPolicy: policies.first ?? .none,
      firstArrivalUnixNano: firstArrival == 0 ? nil : firstArrival)
  }

  private enum Candidate {
    case sealed(JournalSegment)
    case open(path: String, scan: RecoveredSegment)

    var receivedRange: (UInt64, UInt64) {
      switch self {
      case .sealed(let segment): (segment.firstReceivedUnixNano, segment.lastReceivedUnixNano)
      case .open(_, let scan): (scan.firstReceivedUnixNano ?? 0, scan.lastReceivedUnixNano)
      }
    }
  }

  private static func selectStream(
    _ directory: String, from: UInt64, to: UInt64, limits: VerificationLimits, currentPolicy: RedactionPolicyReference
  ) throws(JournalError) -> [(SealedSegment, RedactionPolicyReference, firstArrival: UInt64)] {
    // A running capture may seal an open segment between listing and reading it; list again.
    var lastError: JournalError?
    for _ in 0..<5 {
      do {
        return try attemptStream(directory, from: from, to: to, limits: limits, currentPolicy: currentPolicy)
      } catch let error where error.kind == .io {
        lastError = error
      }
    }
    throw lastError ?? JournalError(.io, "\(directory): cannot read the stream")
  }

  private static func attemptStream(
    _ directory: String, from: UInt64, to: UInt64, limits: VerificationLimits, currentPolicy: RedactionPolicyReference
  ) throws(JournalError) -> [(SealedSegment, RedactionPolicyReference, firstArrival: UInt64)] {
    let files = JournalLayout.listStream(directory)
    var candidates: [(firstSeq: UInt64, candidate: Candidate)] = []
    let openSet = Set(files.open)
    for firstSeq in files.sealed {
      let sealedPath = JournalLayout.sealedPath(in: directory, firstSeq: firstSeq)
      if files.sidecars.contains(firstSeq) {
        let segment = try JournalSegment.read(
          sidecar: JournalLayout.sidecarPath(in: directory, firstSeq: firstSeq), sealedPath: sealedPath)
        candidates.append((firstSeq, .sealed(segment)))
      } else if !openSet.contains(firstSeq) {
        let described = try Journal.describeSealed(
          path: sealedPath, firstSeq: firstSeq, limits: limits, policy: currentPolicy)
        candidates.append((firstSeq, .sealed(described)))
      }
    }
    let sealedWithSidecar = Set(candidates.map(\.firstSeq))
    for firstSeq in files.open where !sealedWithSidecar.contains(firstSeq) {
      let path = JournalLayout.openPath(in: directory, firstSeq: firstSeq)
      let scan: RecoveredSegment
      do {
        scan = try SegmentFileRecovery.scan(path: path, expectedFirstSeq: firstSeq, limits: limits)
      } catch {
        throw JournalError(error.kind == .io ? .io : .corrupt, error.description)
      }
      if scan.recordCount > 0 { candidates.append((firstSeq, .open(path: path, scan: scan))) }
    }
    candidates.sort { $0.firstSeq < $1.firstSeq }
    let hits = candidates.indices.filter { index in
      let (first, last) = candidates[index].candidate.receivedRange
      return first <= to && last >= from
    }
    guard let low = hits.first, let high = hits.last else { return [] }
    var segments: [(SealedSegment, RedactionPolicyReference, firstArrival: UInt64)] = []
    for (_, candidate) in candidates[low...high] {
      let arrival = candidate.receivedRange.0
      switch candidate {
      case .sealed(let segment):
        let data = MemberData.fileRange(path: segment.path, offset: 0, count: Int(segment.entry.size))
        segments.append((SealedSegment(entry: segment.entry, data: data), segment.redactionPolicy, arrival))
      case .open(let path, let scan):
        segments.append((try sealInMemory(path: path, scan: scan, limits: limits), currentPolicy, arrival))
      }
    }
    return segments
  }

  /// Seals the valid prefix of an open segment file without touching the file.
  private static func sealInMemory(path: String, scan: RecoveredSegment, limits: VerificationLimits)
    throws(JournalError) -> SealedSegment
  {
    let bytes: [UInt8]
    do {
      let source = try FileByteSource(path: path)
      guard source.count >= scan.validLength else {
        throw JournalError(.io, "\(path) shrank while it was read")
      }
      bytes = try source.bytes(at: 0, count: scan.validLength)
    } catch let error as JournalError {
      throw error
    } catch {
      throw JournalError(.io, "\(path): \(error)")
    }
    do {
      return try SegmentSealer.sealFramed(
        bytes, header: scan.header, recordCount: scan.recordCount, firstSeq: scan.firstSeq,
        lastSeq: scan.firstSeq + scan.recordCount - 1, times: scan.times, limits: limits)
    } catch {
      throw JournalError(.invalidRecord, "\(path): \(error.message)")
    }
  }
}

extension JournalSelection {
  /// How far outside an incident's window the audit stream is searched: an action's record is
  /// written just after the action (a stop is recorded after the incident's end), so a whole
  /// minute either side keeps every record of the incident's own actions in its bundle.
  public static let auditMarginNanos: UInt64 = 60_000_000_000

  /// ``select(dataDirectory:fromUnixNano:toUnixNano:tenants:limits:)`` plus the node's audit
  /// stream over the window widened by ``auditMarginNanos``, whatever `tenants` says: an
  /// incident's bundle carries the custody record of its own start and stop and of every
  /// admin action (and refusal) around it.
  public static func selectWithAudit(
    dataDirectory: String, fromUnixNano: UInt64, toUnixNano: UInt64, tenants: [String]?,
    limits: VerificationLimits = .init()
  ) throws(JournalError) -> Selection {
    var selection = try select(
      dataDirectory: dataDirectory, fromUnixNano: fromUnixNano, toUnixNano: toUnixNano, tenants: tenants,
      excludingAudit: true, limits: limits)
    let audit = try select(
      dataDirectory: dataDirectory, fromUnixNano: fromUnixNano > auditMarginNanos ? fromUnixNano - auditMarginNanos : 0,
      toUnixNano: UInt64.max - toUnixNano > auditMarginNanos ? toUnixNano + auditMarginNanos : .max,
      tenants: [AuditStream.tenant], limits: limits)
    guard !audit.segments.isEmpty else { return selection }
    if selection.segments.isEmpty {
      selection.redactionPolicy = audit.redactionPolicy
    } else if selection.redactionPolicy != audit.redactionPolicy {
      throw JournalError(
        .configuration,
        "the audit stream around the window was journaled under redaction policy \(audit.redactionPolicy.id), the telemetry under \(selection.redactionPolicy.id); bundle a narrower window"
      )
    }
    selection.segments += audit.segments
    return selection
  }
}
