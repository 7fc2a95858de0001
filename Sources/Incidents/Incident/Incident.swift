public import CodedErrors
import EvidenceIO
import Foundation
public import Manifest

#if canImport(Glibc)
  import Glibc
#endif

/// One declared incident: who declared it, when and why, which tenants it covers, and the window
/// of the flight recorder it pins.
public struct Incident: Sendable, Equatable {
  public enum State: String, Sendable, Equatable {
    case active
    /// Stopped by a caller (`incident stop`).
    case stopped
    /// Ended by its TTL.
    case expired
  }

  public var id: String
  public var reason: String
  /// The authenticated principal who declared it (the admin token's name): what custody and
  /// the manifest record.
  public var declaredBy: String
  /// What the caller said about who declares it (`incident start --declared-by`), kept as a note
  /// and never trusted as the declaring identity.
  public var note: String?
  /// When it was declared (Unix nanoseconds); the incident's evidence starts `lookback` earlier.
  public var startUnixNano: UInt64
  public var lookbackNanos: UInt64
  /// Ends the incident by itself this long after its start, unless stopped before.
  public var ttlNanos: UInt64?
  /// Tenants covered; empty means every tenant.
  public var tenants: [String]
  public var state: State
  public var endUnixNano: UInt64?
  /// The authenticated principal who stopped it, or `ttl`.
  public var endedBy: String?
  /// What the caller said about who stops it (`incident stop --stopped-by`), kept as a note.
  public var stopNote: String?

  /// The first arrival time whose records belong to the incident.
  public var windowStartUnixNano: UInt64 { startUnixNano > lookbackNanos ? startUnixNano - lookbackNanos : 0 }

  /// When the TTL ends it, if it has one.
  public var expiresAtUnixNano: UInt64? {
    ttlNanos.map { startUnixNano.addingReportingOverflow($0).overflow ? .max : startUnixNano + $0 }
  }

  /// Whether the incident covers `tenant`.
  public func covers(tenant: String) -> Bool { tenants.isEmpty || tenants.contains(tenant) }

  /// Whether arrival time `unixNano` falls in the incident's window (an active incident's window
  /// is open-ended).
  public func pins(fromUnixNano: UInt64, toUnixNano: UInt64) -> Bool {
    toUnixNano >= windowStartUnixNano && fromUnixNano <= (endUnixNano ?? .max)
  }

  /// The JSON form used by the incident log, the admin API and `incident list --json`.
  public var jsonValue: JSONValue {
    var members: [(key: String, value: JSONValue)] = [
      ("declaredBy", .string(declaredBy)),
      ("id", .string(id)),
      ("lookbackNanos", .string(String(lookbackNanos))),
      ("reason", .string(reason)),
      ("startUnixNano", .string(String(startUnixNano))),
      ("state", .string(state.rawValue)),
      ("tenants", .array(tenants.map { .string($0) })),
      ("windowStartUnixNano", .string(String(windowStartUnixNano))),
    ]
    if let ttlNanos { members.append(("ttlNanos", .string(String(ttlNanos)))) }
    if let endUnixNano { members.append(("endUnixNano", .string(String(endUnixNano)))) }
    if let endedBy { members.append(("endedBy", .string(endedBy))) }
    if let note { members.append(("note", .string(note))) }
    if let stopNote { members.append(("stopNote", .string(stopNote))) }
    return .object(members.sorted { $0.key < $1.key })
  }

  /// Reads the JSON form.
  public init(json value: JSONValue) throws(IncidentError) {
    guard case .object(let members) = value else { throw IncidentError(.invalid, "incident is not a JSON object") }
    var fields: [String: JSONValue] = [:]
    for (key, member) in members { fields[key] = member }
    func string(_ key: String) throws(IncidentError) -> String {
      guard case .string(let text)? = fields[key] else {
        throw IncidentError(.invalid, "incident field \(key) missing")
      }
      return text
    }
    func number(_ key: String) throws(IncidentError) -> UInt64 {
      guard let value = BundleManifest.parseU64String(try string(key)) else {
        throw IncidentError(.invalid, "incident field \(key) is not a u64 string")
      }
      return value
    }
    self.id = try string("id")
    self.reason = try string("reason")
    self.declaredBy = try string("declaredBy")
    self.startUnixNano = try number("startUnixNano")
    self.lookbackNanos = try number("lookbackNanos")
    self.ttlNanos = fields["ttlNanos"] == nil ? nil : try number("ttlNanos")
    guard let state = State(rawValue: try string("state")) else {
      throw IncidentError(.invalid, "unknown incident state")
    }
    self.state = state
    self.endUnixNano = fields["endUnixNano"] == nil ? nil : try number("endUnixNano")
    self.endedBy = fields["endedBy"] == nil ? nil : try string("endedBy")
    self.note = fields["note"] == nil ? nil : try string("note")
    self.stopNote = fields["stopNote"] == nil ? nil : try string("stopNote")
    guard case .array(let tenantValues)? = fields["tenants"] else {
      throw IncidentError(.invalid, "incident field tenants missing")
    }
    var tenants: [String] = []
    for tenant in tenantValues {
      guard case .string(let name) = tenant else { throw IncidentError(.invalid, "a tenant is not a string") }
      tenants.append(name)
    }
    self.tenants = tenants
  }

  public init(
    id: String, reason: String, declaredBy: String, note: String? = nil, startUnixNano: UInt64, lookbackNanos: UInt64,
    ttlNanos: UInt64?, tenants: [String]
  ) {
    self.id = id
    self.reason = reason
    self.declaredBy = declaredBy
    self.note = note
    self.startUnixNano = startUnixNano
    self.lookbackNanos = lookbackNanos
    self.ttlNanos = ttlNanos
    self.tenants = tenants
    self.state = .active
  }
}

/// Why an incident operation failed; each kind maps to one admin HTTP status.
public typealias IncidentError = CodedError<IncidentErrorCode>

/// The codes of ``IncidentError``: what kind of failure it is.
public enum IncidentErrorCode: Sendable, Hashable {
  /// A bad field: empty reason, bad id, unknown tenant... (400)
  case invalid
  /// No incident with that id (404).
  case notFound
  /// The id is taken, or the incident already ended (409).
  case conflict
  /// The incident log could not be written (500): the operation did not happen.
  case io
}

/// The incident log: one canonical-JSON line per change (start, stop, expiry), appended and
/// fsynced before the change takes effect, so incident state survives `kill -9`.
///
/// A crash mid-append leaves at most a torn last line (bytes after the last newline): reading
/// skips it, reporting it, and the next append cuts it. Any other line that is not a complete
/// incident record means the log was damaged or edited, and reading refuses the whole log naming
/// the line, rather than forgetting an incident (and the evidence it pins).
public struct IncidentLog: Sendable {
  public let path: String

  /// What reading the log found.
  public struct Contents: Sendable {
    /// Every incident, as of its last line, in first-declared order.
    public var incidents: [Incident]
    /// The 1-based number of a torn last line that was skipped (`nil` when the log ends cleanly).
    public var tornLastLine: Int?
  }

  public init(dataDirectory: String) {
    self.path = dataDirectory + "/incidents.jsonl"
  }

  /// Every incident, as of the last line per id, in first-declared order.
  /// - Throws: ``IncidentError`` `.io` when the file cannot be read or a line other than a torn
  ///   last one is not an incident record (the message names the line).
  public func read() throws(IncidentError) -> [Incident] {
    try readContents().incidents
  }

  /// Reads the log, telling a skipped torn last line apart (see ``Contents``).
  public func readContents() throws(IncidentError) -> Contents {
    guard FileManager.default.fileExists(atPath: path) else { return Contents(incidents: [], tornLastLine: nil) }
    let bytes: [UInt8]
    do {
      bytes = Array(try Data(contentsOf: URL(fileURLWithPath: path)))
    } catch {
      throw IncidentError(.io, "cannot read \(path): \(error.localizedDescription)")
    }
    return try Self.parse(bytes, path: path)
  }

  /// Parses the log's bytes (see ``readContents()``).
  static func parse(_ bytes: [UInt8], path: String) throws(IncidentError) -> Contents {
    var lines = bytes.split(separator: 0x0A, omittingEmptySubsequences: false)
    // After the last newline: empty when the log ends cleanly, else the torn line of a crash
    // mid-append, which never took effect (the change is applied only after the append).
    let tail = lines.removeLast()
    var order: [String] = []
    var latest: [String: Incident] = [:]
    for (index, line) in lines.enumerated() {
      let incident: Incident
      do {
        incident = try Incident(json: try CanonicalJSON.parse(Array(line)))
      } catch {
        throw IncidentError(
          .io,
          "\(path) line \(index + 1) is not an incident record (\(error)); only a torn last line is skipped, so the log was damaged or edited: restore it from a backup or move it away"
        )
      }
      if latest[incident.id] == nil { order.append(incident.id) }
      latest[incident.id] = incident
    }
    return Contents(incidents: order.compactMap { latest[$0] }, tornLastLine: tail.isEmpty ? nil : lines.count + 1)
  }

  /// Appends `incident`'s current state durably.
  public func append(_ incident: Incident) throws(IncidentError) {
    let line: [UInt8]
    do {
      line = try CanonicalJSON.serialize(incident.jsonValue) + [0x0A]
    } catch {
      throw IncidentError(.io, "cannot serialize incident \(incident.id): \(error)")
    }
    let fd = try openForAppend()
    defer { close(fd) }
    // Cut a torn last line (no trailing newline) so the new line starts clean.
    var end = lseek(fd, 0, SEEK_END)
    if end > 0 {
      var last: UInt8 = 0
      if pread(fd, &last, 1, end - 1) == 1, last != 0x0A {
        var scan = end - 1
        var byte: UInt8 = 0
        while scan > 0, pread(fd, &byte, 1, scan - 1) == 1, byte != 0x0A { scan -= 1 }
        guard ftruncate(fd, scan) == 0 else {
          throw IncidentError(.io, "cannot cut the torn line of \(path): \(String(cString: strerror(errno)))")
        }
        end = scan
      }
    }
    let written = line.withUnsafeBytes { pwrite(fd, $0.baseAddress, $0.count, end) }
    guard written == line.count else {
      _ = ftruncate(fd, end)
      throw IncidentError(.io, "cannot write \(path): \(String(cString: strerror(errno)))")
    }
    guard fsync(fd) == 0 else { throw IncidentError(.io, "cannot sync \(path): \(String(cString: strerror(errno)))") }
  }

  /// Opens the log read-write (the torn-line check reads its last bytes), never through a
  /// symlink; the first append creates it 0600 and syncs its name into the data directory.
  private func openForAppend() throws(IncidentError) -> Int32 {
    let fd = open(path, O_RDWR | O_NOFOLLOW | O_CLOEXEC)
    if fd >= 0 { return fd }
    guard errno == ENOENT else {
      throw IncidentError(.io, "cannot open \(path): \(String(cString: strerror(errno)))")
    }
    do {
      close(try EvidenceFiles.createNew(path))
      try EvidenceFiles.syncDirectory(of: path)
    } catch let failure where failure.kind == .exists {
      // Made meanwhile (or a symlink was planted): the open below decides.
    } catch {
      throw IncidentError(.io, "cannot create the incident log: \(error)")
    }
    let created = open(path, O_RDWR | O_NOFOLLOW | O_CLOEXEC)
    guard created >= 0 else {
      throw IncidentError(.io, "cannot open \(path): \(String(cString: strerror(errno)))")
    }
    return created
  }
}
