import Foundation
import Journal
public import Manifest

/// Something a notify hook is told about: an incident starting, stopping or expiring, or a
/// bundle being sealed.
///
/// Its JSON body (``body(sentAtUnixNano:)``) is a stable interface, documented in the README
/// ("Notify hooks"): canonical JSON (RFC 8785), every key always present (`null` where a fact
/// does not apply), times both as RFC 3339 and as unix nanoseconds in decimal strings (the
/// manifest's convention, since JSON numbers lose precision above 2^53).
public struct NotifyEvent: Sendable, Equatable {
  /// What happened. The raw value is the `"event"` field and `STELLA_EVENT`.
  public enum Kind: String, Sendable, CaseIterable, Equatable {
    /// An incident was declared.
    case incidentStarted = "incident.started"
    /// An incident was stopped by someone (`incident stop`, the admin API).
    case incidentStopped = "incident.stopped"
    /// An incident ended by itself because its TTL ran out.
    case incidentExpired = "incident.expired"
    /// A signed bundle was written.
    case bundleSealed = "bundle.sealed"
  }

  /// The chain-of-custody facts of the incident the event is about.
  public struct Incident: Sendable, Equatable {
    public var id: String
    public var reason: String
    /// Who declared it (the authenticated caller, or the OS user and host of the CLI).
    public var declaredBy: String
    /// The tenants it covers; empty means every tenant.
    public var tenants: [String]
    /// When it started (was declared).
    public var startedAtUnixNano: UInt64
    /// When it stopped or expired; `nil` while it runs.
    public var stoppedAtUnixNano: UInt64?
    /// When its TTL ends it; `nil` without a TTL.
    public var expiresAtUnixNano: UInt64?

    public init(
      id: String, reason: String, declaredBy: String, tenants: [String] = [], startedAtUnixNano: UInt64,
      stoppedAtUnixNano: UInt64? = nil, expiresAtUnixNano: UInt64? = nil
    ) {
      self.id = id
      self.reason = reason
      self.declaredBy = declaredBy
      self.tenants = tenants
      self.startedAtUnixNano = startedAtUnixNano
      self.stoppedAtUnixNano = stoppedAtUnixNano
      self.expiresAtUnixNano = expiresAtUnixNano
    }
  }

  /// What a `bundle.sealed` event says about the bundle written.
  public struct Bundle: Sendable, Equatable {
    /// The bundle file's path as the bundling process wrote it.
    public var path: String
    /// Lowercase hex SHA-256 of the whole bundle file.
    public var sha256: String
    /// Lowercase hex SHA-256 of its `manifest.json` (what `verify --json` reports).
    public var manifestSha256: String
    public var records: UInt64
    public var blobs: Int

    public init(path: String, sha256: String, manifestSha256: String, records: UInt64, blobs: Int) {
      self.path = path
      self.sha256 = sha256
      self.manifestSha256 = manifestSha256
      self.records = records
      self.blobs = blobs
    }
  }

  public var kind: Kind
  /// Unique per event and the same in every delivery of it (every retry, every hook), so a
  /// receiver can drop duplicates. A random UUID unless the caller sets one.
  public var eventID: String
  /// The capture node that saw the event.
  public var nodeID: String
  public var incident: Incident
  /// Set for ``Kind/bundleSealed`` only.
  public var bundle: Bundle?

  public init(kind: Kind, incident: Incident, nodeID: String, bundle: Bundle? = nil, eventID: String? = nil) {
    self.kind = kind
    self.incident = incident
    self.nodeID = nodeID
    self.bundle = bundle
    self.eventID = eventID ?? UUID().uuidString.lowercased()
  }

  /// The body as a JSON value; `sentAtUnixNano` is when the event was handed to the hooks.
  public func jsonValue(sentAtUnixNano: UInt64) -> JSONValue {
    func time(_ nanos: UInt64?) -> JSONValue { nanos.map { .string(RFC3339Time.format($0)) } ?? .null }
    func nanosText(_ nanos: UInt64?) -> JSONValue { nanos.map { .string(String($0)) } ?? .null }
    // Counts stay JSON numbers; clamping keeps them inside the canonical integer range, which no
    // real bundle approaches, so serialization cannot fail on them.
    func count(_ value: UInt64) -> JSONValue { .number(String(min(value, CanonicalJSON.maxSafeInteger))) }
    let incidentValue: JSONValue = .object([
      ("id", .string(incident.id)),
      ("reason", .string(incident.reason)),
      ("declaredBy", .string(incident.declaredBy)),
      ("tenants", .array(incident.tenants.map { .string($0) })),
      ("startedAt", time(incident.startedAtUnixNano)),
      ("startedAtUnixNano", nanosText(incident.startedAtUnixNano)),
      ("stoppedAt", time(incident.stoppedAtUnixNano)),
      ("stoppedAtUnixNano", nanosText(incident.stoppedAtUnixNano)),
      ("expiresAt", time(incident.expiresAtUnixNano)),
      ("expiresAtUnixNano", nanosText(incident.expiresAtUnixNano)),
    ])
    let bundleValue: JSONValue =
      bundle.map { bundle in
        .object([
          ("path", .string(bundle.path)),
          ("sha256", .string(bundle.sha256)),
          ("manifestSha256", .string(bundle.manifestSha256)),
          ("records", count(bundle.records)),
          ("blobs", count(UInt64(max(0, bundle.blobs)))),
        ])
      } ?? .null
    return .object([
      ("schema", .string(Self.schema)),
      ("event", .string(kind.rawValue)),
      ("eventId", .string(eventID)),
      ("sentAt", time(sentAtUnixNano)),
      ("sentAtUnixNano", nanosText(sentAtUnixNano)),
      ("node", .string(nodeID)),
      ("incident", incidentValue),
      ("bundle", bundleValue),
    ])
  }

  /// The canonical JSON bytes hooks receive (webhook body, command stdin).
  public func body(sentAtUnixNano: UInt64) throws(JSONError) -> [UInt8] {
    try CanonicalJSON.serialize(jsonValue(sentAtUnixNano: sentAtUnixNano))
  }

  /// The `"schema"` field: bumped only for changes a receiver could trip over.
  public static let schema = "stella-forensics.notify.v1"
}

extension NotifyEvent {
  /// The hook event for an incident change.
  public init(change: IncidentChange, nodeID: String) {
    let kind: Kind
    switch change.kind {
    case .started: kind = .incidentStarted
    case .stopped: kind = .incidentStopped
    case .expired: kind = .incidentExpired
    }
    self.init(kind: kind, incident: Incident(change.incident), nodeID: nodeID)
  }
}

extension NotifyEvent.Incident {
  /// The hook body's view of an incident.
  public init(_ incident: Incidents.Incident) {
    self.init(
      id: incident.id, reason: incident.reason, declaredBy: incident.declaredBy, tenants: incident.tenants,
      startedAtUnixNano: incident.startUnixNano, stoppedAtUnixNano: incident.endUnixNano,
      expiresAtUnixNano: incident.expiresAtUnixNano)
  }
}
