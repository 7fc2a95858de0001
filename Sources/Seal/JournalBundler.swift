public import CodedErrors
public import EvidenceIO
import Journal
public import Manifest
public import Signing

/// What a bundle of a capture journal covers: the window of arrival times, the custody facts the
/// manifest states, and the tenants it holds.
public struct BundleScope: Sendable {
  /// Arrival times (Unix nanoseconds), inclusive at both ends.
  public var window: ClosedRange<UInt64>
  /// The incident and capture facts of the manifest; the redaction policy and the capture start
  /// are filled in from what the selection found.
  public var facts: BundleFacts
  /// `nil` for every tenant's streams.
  public var tenants: [String]?
  /// Whether the node's audit stream around the window comes along whatever `tenants` says (an
  /// incident's bundle of the flight recorder carries the custody record of its own start, stop
  /// and admin actions); otherwise the audit stream is only taken when `tenants` names it.
  public var carriesAuditStream: Bool

  public init(window: ClosedRange<UInt64>, facts: BundleFacts, tenants: [String]?, carriesAuditStream: Bool) {
    self.window = window
    self.facts = facts
    self.tenants = tenants
    self.carriesAuditStream = carriesAuditStream
  }

  /// A time-range bundle, with the documented defaults for what the caller leaves out: id
  /// `capture-FROM-TO` (compact UTC), reason "captured OTLP from FROM to TO", declared by
  /// `stella-forensics bundle` at `to`.
  public static func timeRange(
    from: UInt64, to: UInt64, id: String?, reason: String?, declaredBy: String?, tenant: String?
  ) -> BundleScope {
    let facts = BundleFacts(
      incident: IncidentFacts(
        id: id ?? "capture-\(compactUTC(from))-\(compactUTC(to))",
        reason: reason ?? "captured OTLP from \(RFC3339Time.format(from)) to \(RFC3339Time.format(to))",
        declaredBy: declaredBy ?? "stella-forensics bundle", declaredAtUnixNano: to),
      captureStartUnixNano: from, captureEndUnixNano: to, redactionPolicy: .none, tool: .current)
    return BundleScope(window: from...to, facts: facts, tenants: tenant.map { [$0] }, carriesAuditStream: false)
  }

  /// An incident's bundle: from the start of its look-back to its end (`end` is now for an
  /// incident still active, which the capture window's end then says).
  public static func incident(
    _ incident: IncidentFacts, windowStart: UInt64, end: UInt64, tenants: [String]?, carriesAuditStream: Bool
  ) -> BundleScope {
    let facts = BundleFacts(
      incident: incident, captureStartUnixNano: windowStart, captureEndUnixNano: end, redactionPolicy: .none,
      tool: .current)
    return BundleScope(
      window: windowStart...max(windowStart, end), facts: facts, tenants: tenants,
      carriesAuditStream: carriesAuditStream)
  }

  /// `20261125T100000Z`-style UTC, fit for an id; an all-zero fraction is left out.
  public static func compactUTC(_ unixNano: UInt64) -> String {
    let full = RFC3339Time.format(unixNano).filter { $0 != "-" && $0 != ":" }
    return full.hasSuffix(".000000000Z")
      ? String(full.dropLast(11)) + "Z" : full.replacingOccurrences(of: ".", with: "")
  }
}

/// Why a journal could not be bundled.
public typealias JournalBundleError = CodedError<JournalBundleErrorCode>

/// The codes of ``JournalBundleError``: what kind of failure it is.
public enum JournalBundleErrorCode: Sendable, Hashable {
  /// The journal could not be read (an operating-system failure).
  case unreadableJournal
  /// The window cannot make one bundle (two redaction policies, a damaged segment).
  case unusableWindow
  /// No captured record arrived in the window.
  case emptyWindow
  /// A stream's selected segments do not join: records between two of them are in no segment
  /// file (deleted, or pruned from the ring). The cause is the ``MissingRecords``.
  case sequenceGap
  /// The data directories do not name distinct capture nodes: one directory given twice, two
  /// directories of one node id, a directory without a valid node id, or segments captured by
  /// another node than the directory's.
  case nodeIdentity
  /// Writing or signing the bundle failed; the cause is the ``SealError``.
  case sealing
}

/// Records of one stream that a bundle would have to hold, because segments on both sides of
/// them are in it, but that no segment file in the data directory holds: the cause of a
/// ``JournalBundleError`` with code `.sequenceGap`.
public struct MissingRecords: Error, Sendable, Equatable, CustomStringConvertible {
  /// The data directory of the node whose stream has the hole.
  public var dataDirectory: String
  /// The stream (node, signal, tenant).
  public var stream: StreamKey
  /// The seqs no segment holds, inclusive.
  public var seqs: ClosedRange<UInt64>

  /// The hole `seqs` in `stream`, found in `dataDirectory`.
  public init(dataDirectory: String, stream: StreamKey, seqs: ClosedRange<UInt64>) {
    self.dataDirectory = dataDirectory
    self.stream = stream
    self.seqs = seqs
  }

  /// One line for a person: the node, stream, missing seqs and directory, and why it is refused.
  public var description: String {
    "node \(stream.node), stream \(stream.signal.rawValue) of tenant \(stream.tenant): records \(seqs.lowerBound)...\(seqs.upperBound) are missing from \(dataDirectory) (no segment file holds them: deleted, or pruned from the ring); a bundle cannot have a hole in a stream"
  }
}

/// The `bundle` step for a capture journal: selects the window's segments from one or several
/// data directories (each one capture node; sealed segments as they are, open ones sealed in
/// memory) and seals them into one signed bundle.
public enum JournalBundler {
  /// Seals `scope` of the journal in `dataDirectory` into a bundle at `outputPath`.
  ///
  /// - Returns: the bundle's manifest.
  public static func seal(
    dataDirectory: String, scope: BundleScope, signingKeys: [Ed25519PrivateKey], outputPath: String,
    replacing: Bool
  ) throws(JournalBundleError) -> BundleManifest {
    try seal(
      dataDirectories: [dataDirectory], scope: scope, signingKeys: signingKeys, outputPath: outputPath,
      replacing: replacing)
  }

  /// Seals `scope` of the journals in `dataDirectories`, one capture node each, into one bundle
  /// at `outputPath`: every node's streams (and, when the scope carries it, every node's audit
  /// stream) over the same window, listed in one manifest.
  ///
  /// With several directories each must name a distinct node (its `node-id` file), and they must
  /// have journaled the window under one redaction policy, since a manifest states one. A
  /// stream whose selected segments do not join is refused (`.sequenceGap`, naming the node,
  /// stream and missing seqs) instead of sealing a bundle with a hole. One directory bundles
  /// exactly as it always has.
  ///
  /// - Returns: the bundle's manifest.
  public static func seal(
    dataDirectories: [String], scope: BundleScope, signingKeys: [Ed25519PrivateKey], outputPath: String,
    replacing: Bool
  ) throws(JournalBundleError) -> BundleManifest {
    let nodes = try CaptureNodeDirectory.identify(dataDirectories)
    var selections: [(node: CaptureNodeDirectory, selection: JournalSelection.Selection)] = []
    for node in nodes {
      let selection = try select(node.dataDirectory, scope: scope)
      try node.checkOwnership(of: selection.segments)
      selections.append((node, selection))
    }
    let nonEmpty = selections.filter { !$0.selection.segments.isEmpty }
    guard !nonEmpty.isEmpty else {
      let tenantNote = scope.tenants.map { " for tenant(s) \($0.joined(separator: ", "))" } ?? ""
      throw JournalBundleError(
        .emptyWindow,
        "no captured records arrived between \(RFC3339Time.format(scope.window.lowerBound)) and \(RFC3339Time.format(scope.window.upperBound))\(tenantNote)"
      )
    }
    for (node, selection) in nonEmpty {
      try checkStreamsJoin(selection.segments, dataDirectory: node.dataDirectory)
    }
    let redactionPolicy = try commonRedactionPolicy(nonEmpty)
    // A node that does not know when its first selected record arrived lets no start be claimed.
    let firstArrivals = nonEmpty.map(\.selection.firstArrivalUnixNano)
    let firstArrival = firstArrivals.contains(nil) ? nil : firstArrivals.compactMap { $0 }.min()
    var facts = scope.facts
    facts.redactionPolicy = redactionPolicy
    facts.captureStartUnixNano = max(facts.captureStartUnixNano, firstArrival ?? facts.captureStartUnixNano)
    do {
      return try BundleSealer.seal(
        segments: nonEmpty.flatMap(\.selection.segments), facts: facts, signingKeys: signingKeys,
        outputPath: outputPath, replacing: replacing)
    } catch {
      throw JournalBundleError(.sealing, error.message, cause: error)
    }
  }

  /// One data directory's selection for `scope`.
  private static func select(_ dataDirectory: String, scope: BundleScope) throws(JournalBundleError)
    -> JournalSelection.Selection
  {
    do {
      if scope.carriesAuditStream {
        return try JournalSelection.selectWithAudit(
          dataDirectory: dataDirectory, fromUnixNano: scope.window.lowerBound, toUnixNano: scope.window.upperBound,
          tenants: scope.tenants)
      }
      return try JournalSelection.select(
        dataDirectory: dataDirectory, fromUnixNano: scope.window.lowerBound, toUnixNano: scope.window.upperBound,
        tenants: scope.tenants, excludingAudit: scope.tenants == nil)
    } catch {
      throw JournalBundleError(error.kind == .io ? .unreadableJournal : .unusableWindow, error.message, cause: error)
    }
  }

  /// Refuses a selection in which a stream's segments do not join seq to seq. The selection
  /// takes every segment between a stream's first and last in the window, so a hole there is a
  /// segment file that is gone; sealing it would give a bundle every verifier rejects
  /// (`MANIFEST_SEQUENCE_GAP`), or, were it dropped, a silent hole.
  static func checkStreamsJoin(_ segments: [SealedSegment], dataDirectory: String) throws(JournalBundleError) {
    let byStream = Dictionary(grouping: segments.map(\.entry), by: \.stream)
    for stream in byStream.keys.sorted() {
      let ordered = (byStream[stream] ?? []).sorted { $0.firstSeq < $1.firstSeq }
      for (previous, next) in zip(ordered, ordered.dropFirst()) {
        if next.firstSeq <= previous.lastSeq {
          throw JournalBundleError(
            .unusableWindow,
            "node \(stream.node), stream \(stream.signal.rawValue) of tenant \(stream.tenant) in \(dataDirectory): the segment starting at seq \(next.firstSeq) overlaps the one holding \(previous.firstSeq)...\(previous.lastSeq)"
          )
        }
        if next.firstSeq > previous.lastSeq + 1 {
          let missing = MissingRecords(
            dataDirectory: dataDirectory, stream: stream, seqs: (previous.lastSeq + 1)...(next.firstSeq - 1))
          throw JournalBundleError(.sequenceGap, missing.description, cause: missing)
        }
      }
    }
  }

  /// The one redaction policy the nodes journaled the window under: a manifest states one.
  private static func commonRedactionPolicy(
    _ selections: [(node: CaptureNodeDirectory, selection: JournalSelection.Selection)]
  ) throws(JournalBundleError) -> RedactionPolicyReference {
    let policies = Set(selections.map(\.selection.redactionPolicy))
    guard policies.count <= 1, let policy = policies.first else {
      let named = selections.map { node, selection in
        "\(node.dataDirectory): \(selection.redactionPolicy.id) (\(selection.redactionPolicy.sha256.prefix(12))…)"
      }
      throw JournalBundleError(
        .unusableWindow,
        "the data directories journaled the window under different redaction policies (\(named.joined(separator: ", "))); a manifest states one policy: bundle them separately"
      )
    }
    return policy
  }
}
