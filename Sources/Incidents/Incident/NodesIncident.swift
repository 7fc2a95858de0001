/// One incident as the incident logs of one or several capture nodes record it: what a bundle of
/// those nodes' data directories states and selects.
///
/// An incident is declared on each node it concerns (`incident start --id ID` against each
/// node's admin API), so each node's log holds its own record of it, declared and stopped a
/// moment apart. The custody facts must agree: the reason, who declared it and the tenants it
/// covers are the same in every log that records it, or the bundle is refused, because a
/// manifest states one reason and one declaring principal and picking one would misstate the
/// others. The times are joined: it was declared at the earliest declaration, its window
/// starts at the earliest look-back start and ends at the latest end, and it is active while it
/// is active on any node. Nodes whose log does not record it are bundled over the same window.
public struct NodesIncident: Sendable {
  /// The incident id, the same in every log.
  public var id: String
  /// Why it was declared, the same in every log that records it.
  public var reason: String
  /// The authenticated principal who declared it.
  public var declaredBy: String
  /// Tenants covered; empty means every tenant.
  public var tenants: [String]
  /// The earliest declaration (Unix nanoseconds).
  public var declaredAtUnixNano: UInt64
  /// The first arrival time whose records belong to the incident, on any node.
  public var windowStartUnixNano: UInt64
  /// The latest end; `nil` while it is active on any node.
  public var endUnixNano: UInt64?
  /// Each log's record of it, with the data directory holding the log, in the order the
  /// directories were given.
  public var records: [(dataDirectory: String, incident: Incident)]

  /// Whether the incident covers `tenant`.
  public func covers(tenant: String) -> Bool { tenants.isEmpty || tenants.contains(tenant) }

  /// The incident `id` as the logs of `dataDirectories` record it (see the type's rules).
  ///
  /// - Throws: ``IncidentError`` `.notFound` when no log records it (the message lists the ids
  ///   they do record), `.conflict` when two logs state different reasons, principals or
  ///   tenants, `.io` when a log cannot be read.
  public static func find(id: String, in dataDirectories: [String]) throws(IncidentError) -> NodesIncident {
    var records: [(dataDirectory: String, incident: Incident)] = []
    var known: [String] = []
    for directory in dataDirectories {
      let incidents = try IncidentLog(dataDirectory: directory).read()
      for incident in incidents where !known.contains(incident.id) { known.append(incident.id) }
      if let incident = incidents.first(where: { $0.id == id }) { records.append((directory, incident)) }
    }
    guard let first = records.first?.incident else {
      throw IncidentError(
        .notFound,
        "no incident \(id) in \(dataDirectories.joined(separator: ", ")) (known: \(known.joined(separator: ", ")))")
    }
    for (directory, incident) in records.dropFirst() {
      let firstDirectory = records[0].dataDirectory
      func refuse(_ field: String, _ theirs: String, _ ours: String) -> IncidentError {
        IncidentError(
          .conflict,
          "incident \(id) has \(field) \(ours) in \(firstDirectory) but \(theirs) in \(directory); a bundle states one, so bundle these directories separately"
        )
      }
      if incident.reason != first.reason { throw refuse("reason", quoted(incident.reason), quoted(first.reason)) }
      if incident.declaredBy != first.declaredBy {
        throw refuse("declaredBy", quoted(incident.declaredBy), quoted(first.declaredBy))
      }
      if Set(incident.tenants) != Set(first.tenants) {
        throw refuse("tenants", tenantList(incident.tenants), tenantList(first.tenants))
      }
    }
    let ends = records.map(\.incident.endUnixNano)
    return NodesIncident(
      id: first.id, reason: first.reason, declaredBy: first.declaredBy, tenants: first.tenants,
      declaredAtUnixNano: records.map(\.incident.startUnixNano).min() ?? first.startUnixNano,
      windowStartUnixNano: records.map(\.incident.windowStartUnixNano).min() ?? first.windowStartUnixNano,
      endUnixNano: ends.contains(nil) ? nil : ends.compactMap { $0 }.max(), records: records)
  }

  private static func quoted(_ text: String) -> String { "\"\(text)\"" }

  private static func tenantList(_ tenants: [String]) -> String {
    tenants.isEmpty ? "every tenant" : "[\(tenants.sorted().joined(separator: ", "))]"
  }
}

extension NotifyEvent.Incident {
  /// The hook body's view of an incident several nodes record: one node's record as it is, or
  /// the joined facts (earliest declaration, latest stop) of several.
  public init(_ incident: NodesIncident) {
    if incident.records.count == 1 {
      self.init(incident.records[0].incident)
      return
    }
    self.init(
      id: incident.id, reason: incident.reason, declaredBy: incident.declaredBy, tenants: incident.tenants,
      startedAtUnixNano: incident.declaredAtUnixNano, stoppedAtUnixNano: incident.endUnixNano)
  }
}
