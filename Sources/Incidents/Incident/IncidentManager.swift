import Foundation
import Journal
import Manifest
import Synchronization

#if canImport(Glibc)
  import Glibc
#endif

/// What starting an incident needs.
public struct IncidentStartRequest: Sendable {
  public var reason: String
  /// `nil`: `INC-<UTC time>-<4 hex digits>`.
  public var id: String?
  /// The authenticated principal declaring it.
  public var declaredBy: String
  /// What the caller said about who declares it, kept as a note (see ``Incident/note``).
  public var note: String?
  public var ttlNanos: UInt64?
  /// `nil`: the manager's default look-back.
  public var lookbackNanos: UInt64?
  /// Empty: every tenant.
  public var tenants: [String]

  public init(
    reason: String, id: String? = nil, declaredBy: String, note: String? = nil, ttlNanos: UInt64? = nil,
    lookbackNanos: UInt64? = nil, tenants: [String] = []
  ) {
    self.reason = reason
    self.id = id
    self.declaredBy = declaredBy
    self.note = note
    self.ttlNanos = ttlNanos
    self.lookbackNanos = lookbackNanos
    self.tenants = tenants
  }
}

/// An incident changed state (for notify hooks).
public struct IncidentChange: Sendable {
  public enum Kind: String, Sendable {
    case started
    case stopped
    case expired
  }

  public var kind: Kind
  public var incident: Incident
}

/// Declares, ends and remembers incidents. Every change is in the incident log before it takes
/// effect, so a restart (even after `kill -9`) finds the same incidents; a TTL that ran out while
/// the service was down ends its incident at the TTL's time.
public final class IncidentManager: Sendable {
  public let log: IncidentLog
  /// Look-back of incidents that do not name one.
  public let defaultLookbackNanos: UInt64
  /// How long an ended incident still pins its window against ring pruning, so its bundle can be
  /// made after it ended.
  public let pinRetentionNanos: UInt64
  /// The longest look-back an incident may ask for: the flight recorder's age bound (`nil`: the
  /// ring has no age bound). A longer one would claim a window the ring never held, and pin
  /// every segment.
  public let maxLookbackNanos: UInt64?
  /// The most incidents active at once: each keeps its tenants' data in full and pins ring
  /// segments, so an unbounded number would unbound memory and disk.
  public let maxActiveIncidents: Int
  /// The longest TTL an incident may ask for.
  public let maxTTLNanos: UInt64
  /// The line number of a torn last line of the incident log that was skipped when it was read
  /// (a crash mid-append); `nil` when the log ended cleanly.
  public let skippedTornLine: Int?
  private let incidents: Mutex<[Incident]>
  private let onChange: @Sendable (IncidentChange) -> Void
  private let clock: @Sendable () -> UInt64

  public init(
    dataDirectory: String, defaultLookbackNanos: UInt64 = 15 * 60 * 1_000_000_000,
    pinRetentionNanos: UInt64 = 7 * 24 * 3600 * 1_000_000_000, maxLookbackNanos: UInt64? = nil,
    maxActiveIncidents: Int = IncidentManager.defaultMaxActiveIncidents,
    maxTTLNanos: UInt64 = IncidentManager.defaultMaxTTLNanos,
    clock: @escaping @Sendable () -> UInt64 = IncidentManager.wallClock,
    onChange: @escaping @Sendable (IncidentChange) -> Void = { _ in }
  ) throws(IncidentError) {
    self.log = IncidentLog(dataDirectory: dataDirectory)
    self.defaultLookbackNanos = defaultLookbackNanos
    self.pinRetentionNanos = pinRetentionNanos
    self.maxLookbackNanos = maxLookbackNanos
    self.maxActiveIncidents = maxActiveIncidents
    self.maxTTLNanos = maxTTLNanos
    self.clock = clock
    self.onChange = onChange
    let contents = try log.readContents()
    self.skippedTornLine = contents.tornLastLine
    self.incidents = Mutex(contents.incidents)
  }

  /// Incidents active at once unless configured otherwise (`incidents.max-active`).
  public static let defaultMaxActiveIncidents = 64
  /// The longest TTL unless configured otherwise (`incidents.max-ttl`): 7 days.
  public static let defaultMaxTTLNanos: UInt64 = 7 * 24 * 3600 * 1_000_000_000

  /// Every incident, active and ended, in the order they were declared.
  public func list() -> [Incident] { incidents.withLock { $0 } }

  public func incident(id: String) -> Incident? { incidents.withLock { $0.first { $0.id == id } } }

  /// Declares an incident. It covers arrivals from `start − lookback` until it ends.
  public func start(_ request: IncidentStartRequest) throws(IncidentError) -> Incident {
    let reason = request.reason.trimmingCharacters(in: .whitespacesAndNewlines)
    guard !reason.isEmpty, reason.utf8.count <= 4096, !Self.hasControlCharacters(reason) else {
      throw IncidentError(.invalid, "reason must be 1 to 4096 bytes without control characters")
    }
    guard !request.declaredBy.isEmpty, request.declaredBy.utf8.count <= 256,
      !Self.hasControlCharacters(request.declaredBy)
    else {
      throw IncidentError(.invalid, "declaredBy must be 1 to 256 bytes without control characters")
    }
    if let note = request.note, let problem = Self.noteProblem(note) {
      throw IncidentError(.invalid, "declaredBy (kept as a note): \(problem)")
    }
    let lookback = request.lookbackNanos ?? defaultLookbackNanos
    if let maxLookbackNanos, lookback > maxLookbackNanos {
      throw IncidentError(
        .invalid,
        "lookback \(Self.durationText(lookback)) is longer than the flight recorder holds: its max age is \(Self.durationText(maxLookbackNanos)) (ring.max-age / --ring-max-age)"
      )
    }
    for tenant in request.tenants {
      if let problem = TenantName.problem(with: tenant) { throw IncidentError(.invalid, "tenant: \(problem)") }
    }
    let now = clock()
    let id = request.id ?? Self.generatedID(now: now)
    if let problem = Self.idProblem(id) { throw IncidentError(.invalid, "incident id: \(problem)") }
    if let ttl = request.ttlNanos {
      guard ttl > 0 else { throw IncidentError(.invalid, "ttl must be positive") }
      guard ttl <= maxTTLNanos else {
        throw IncidentError(
          .invalid,
          "ttl \(Self.durationText(ttl)) is longer than the longest allowed, \(Self.durationText(maxTTLNanos)) (incidents.max-ttl)"
        )
      }
    }
    let incident = Incident(
      id: id, reason: reason, declaredBy: request.declaredBy, note: request.note, startUnixNano: now,
      lookbackNanos: lookback, ttlNanos: request.ttlNanos,
      tenants: Array(Set(request.tenants)).sorted())
    try incidents.withLock { (all: inout [Incident]) throws(IncidentError) in
      if all.contains(where: { $0.id == id }) { throw IncidentError(.conflict, "incident \(id) already exists") }
      let active = all.count(where: { $0.state == .active })
      guard active < maxActiveIncidents else {
        throw IncidentError(
          .conflict,
          "\(active) incidents are active, the most allowed (incidents.max-active); stop one before declaring another")
      }
      try log.append(incident)
      all.append(incident)
    }
    onChange(IncidentChange(kind: .started, incident: incident))
    return incident
  }

  /// Ends an active incident: `by` is the authenticated principal, `note` what the caller said
  /// about who stops it.
  public func stop(id: String, by: String, note: String? = nil) throws(IncidentError) -> Incident {
    guard !by.isEmpty, by.utf8.count <= 256, !Self.hasControlCharacters(by) else {
      throw IncidentError(.invalid, "stoppedBy must be 1 to 256 bytes without control characters")
    }
    if let note, let problem = Self.noteProblem(note) {
      throw IncidentError(.invalid, "stoppedBy (kept as a note): \(problem)")
    }
    let now = clock()
    let ended = try incidents.withLock { (all: inout [Incident]) throws(IncidentError) -> Incident in
      guard let index = all.firstIndex(where: { $0.id == id }) else {
        throw IncidentError(.notFound, "no incident \(id)")
      }
      guard all[index].state == .active else {
        throw IncidentError(.conflict, "incident \(id) already ended (\(all[index].state.rawValue))")
      }
      var incident = all[index]
      incident.state = .stopped
      incident.endUnixNano = max(now, incident.startUnixNano)
      incident.endedBy = by
      incident.stopNote = note
      try log.append(incident)
      all[index] = incident
      return incident
    }
    onChange(IncidentChange(kind: .stopped, incident: ended))
    return ended
  }

  /// Ends every active incident whose TTL ran out, at the TTL's time; returns them.
  @discardableResult
  public func expireDue() -> [Incident] {
    let now = clock()
    let expired = incidents.withLock { (all: inout [Incident]) -> [Incident] in
      var expired: [Incident] = []
      for index in all.indices {
        guard all[index].state == .active, let expiresAt = all[index].expiresAtUnixNano, expiresAt <= now else {
          continue
        }
        var incident = all[index]
        incident.state = .expired
        incident.endUnixNano = expiresAt
        incident.endedBy = "ttl"
        // If the log cannot be written the incident stays active (and keeps its data at 100%);
        // the next tick tries again.
        guard (try? log.append(incident)) != nil else { continue }
        all[index] = incident
        expired.append(incident)
      }
      return expired
    }
    for incident in expired { onChange(IncidentChange(kind: .expired, incident: incident)) }
    return expired
  }

  /// Whether an active incident covers `tenant` (its data is kept in full).
  public func isKeptInFull(tenant: String) -> Bool {
    incidents.withLock { $0.contains { $0.state == .active && $0.covers(tenant: tenant) } }
  }

  /// Whether a segment of `tenant` with arrivals from `from` to `to` is pinned against ring
  /// pruning: it overlaps the window of an active incident, or of one that ended less than the
  /// pin retention ago.
  public func pins(tenant: String, fromUnixNano from: UInt64, toUnixNano to: UInt64) -> Bool {
    let now = clock()
    return incidents.withLock { all in
      all.contains { incident in
        guard incident.covers(tenant: tenant), incident.pins(fromUnixNano: from, toUnixNano: to) else { return false }
        guard let end = incident.endUnixNano else { return true }
        return now < end || now - end < pinRetentionNanos
      }
    }
  }

  public static func wallClock() -> UInt64 {
    var spec = timespec()
    clock_gettime(CLOCK_REALTIME, &spec)
    return UInt64(spec.tv_sec) * 1_000_000_000 + UInt64(spec.tv_nsec)
  }

  /// Incident ids appear in manifests and in file names users choose: 1–256 bytes of letters,
  /// digits, `.`, `_`, `-`, `:`.
  static func idProblem(_ id: String) -> String? {
    NameRules.problem(with: id, maxBytes: 256, punctuation: "._-:")
  }

  private static func generatedID(now: UInt64) -> String {
    let stamp = RFC3339Time.format(now).prefix(19).filter { $0 != "-" && $0 != ":" }
    return "INC-\(stamp)Z-\(String(UInt16.random(in: 0...UInt16.max), radix: 16))"
  }

  /// Why a caller's free-text note is refused: at most 256 bytes, no control characters (they
  /// would reach terminals and logs raw).
  static func noteProblem(_ note: String) -> String? {
    guard note.utf8.count <= 256 else { return "at most 256 bytes (got \(note.utf8.count))" }
    guard !hasControlCharacters(note) else { return "must not hold control characters" }
    return nil
  }

  /// `90m` for a duration in nanoseconds, to the largest whole unit (h, m, s, ms).
  static func durationText(_ nanos: UInt64) -> String {
    let millis = nanos / 1_000_000
    for (unit, size) in [("h", UInt64(3_600_000)), ("m", 60_000), ("s", 1000)] where millis % size == 0 && millis > 0 {
      return "\(millis / size)\(unit)"
    }
    return "\(millis)ms"
  }

  static func hasControlCharacters(_ text: String) -> Bool {
    text.unicodeScalars.contains { ($0.value < 0x20) || (0x7F...0x9F).contains($0.value) }
  }
}
