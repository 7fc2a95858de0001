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
  /// Writing or signing the bundle failed; the cause is the ``SealError``.
  case sealing
}

/// The `bundle` step for a capture journal: selects the window's segments from a data directory
/// (sealed ones as they are, open ones sealed in memory) and seals them into a signed bundle.
public enum JournalBundler {
  /// Seals `scope` of the journal in `dataDirectory` into a bundle at `outputPath`.
  ///
  /// - Returns: the bundle's manifest.
  public static func seal(
    dataDirectory: String, scope: BundleScope, signingKeys: [Ed25519PrivateKey], outputPath: String,
    replacing: Bool
  ) throws(JournalBundleError) -> BundleManifest {
    let selection: JournalSelection.Selection
    do {
      if scope.carriesAuditStream {
        selection = try JournalSelection.selectWithAudit(
          dataDirectory: dataDirectory, fromUnixNano: scope.window.lowerBound, toUnixNano: scope.window.upperBound,
          tenants: scope.tenants)
      } else {
        selection = try JournalSelection.select(
          dataDirectory: dataDirectory, fromUnixNano: scope.window.lowerBound, toUnixNano: scope.window.upperBound,
          tenants: scope.tenants, excludingAudit: scope.tenants == nil)
      }
    } catch {
      throw JournalBundleError(error.kind == .io ? .unreadableJournal : .unusableWindow, error.message, cause: error)
    }
    guard !selection.segments.isEmpty else {
      let tenantNote = scope.tenants.map { " for tenant(s) \($0.joined(separator: ", "))" } ?? ""
      throw JournalBundleError(
        .emptyWindow,
        "no captured records arrived between \(RFC3339Time.format(scope.window.lowerBound)) and \(RFC3339Time.format(scope.window.upperBound))\(tenantNote)"
      )
    }
    var facts = scope.facts
    facts.redactionPolicy = selection.redactionPolicy
    facts.captureStartUnixNano = selection.captureStart(requested: facts.captureStartUnixNano)
    do {
      return try BundleSealer.seal(
        segments: selection.segments, facts: facts, signingKeys: signingKeys, outputPath: outputPath,
        replacing: replacing)
    } catch {
      throw JournalBundleError(.sealing, error.message, cause: error)
    }
  }
}
