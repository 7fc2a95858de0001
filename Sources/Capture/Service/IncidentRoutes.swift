import Manifest

/// The incident endpoints of the admin API.
///
/// ```
/// POST /incidents              {"reason": "...", "id"?: "...", "ttl"?: "30m", "lookback"?: "15m",
///                               "tenants"?: ["..."], "declaredBy"?: "..."}   → 201 {incident}
/// POST /incidents/{id}/stop    {"stoppedBy"?: "..."}                         → 200 {incident}
/// GET  /incidents                                                            → 200 {"incidents": [...]}
/// GET  /incidents/{id}                                                       → 200 {incident}
/// ```
/// Errors: 400 (bad field), 404 (no such incident), 409 (id taken, already ended), 500 (the
/// incident log could not be written: nothing changed), each `{"error": "..."}`.
struct IncidentRoutes {
  let incidents: IncidentManager

  /// The identity recorded when the caller names none: the admin API has no authentication, so
  /// it can only say where the declaration came from.
  static let anonymousCaller = "admin-api (unauthenticated)"

  func handle(_ request: AdminRequest) -> AdminResponse {
    let parts = request.path.split(separator: "/", omittingEmptySubsequences: true).map(String.init)
    switch (request.method, parts.count) {
    case ("GET", 1):
      return .json(200, .object([("incidents", .array(incidents.list().map(\.jsonValue)))]))
    case ("POST", 1):
      return start(request.body)
    case ("GET", 2):
      guard let incident = incidents.incident(id: parts[1]) else { return .error(404, "no incident \(parts[1])") }
      return .json(200, incident.jsonValue)
    case ("POST", 3) where parts[2] == "stop":
      let fields = (try? object(request.body)) ?? [:]
      let by = fields["stoppedBy"].flatMap(\.stringValue) ?? Self.anonymousCaller
      do {
        return .json(200, try incidents.stop(id: parts[1], by: by).jsonValue)
      } catch {
        return Self.response(for: error)
      }
    default:
      return .error(405, "\(request.method) \(request.path) is not an incident operation")
    }
  }

  private func start(_ body: [UInt8]) -> AdminResponse {
    let fields: [String: JSONValue]
    do {
      fields = try object(body)
    } catch {
      return .error(400, error.message)
    }
    guard let reason = fields["reason"]?.stringValue else { return .error(400, "reason is required") }
    var request = IncidentStartRequest(
      reason: reason, id: fields["id"]?.stringValue,
      declaredBy: fields["declaredBy"]?.stringValue ?? Self.anonymousCaller)
    for (key, target) in [("ttl", \IncidentStartRequest.ttlNanos), ("lookback", \IncidentStartRequest.lookbackNanos)] {
      guard let value = fields[key] else { continue }
      guard let text = value.stringValue, let millis = DurationText.milliseconds(text) else {
        return .error(400, "\(key) must be a duration such as \"30s\", \"15m\" or \"2h\"")
      }
      request[keyPath: target] = UInt64(millis) * 1_000_000
    }
    if let tenants = fields["tenants"] {
      guard case .array(let values) = tenants else { return .error(400, "tenants must be an array of strings") }
      var names: [String] = []
      for value in values {
        guard let name = value.stringValue else { return .error(400, "tenants must be an array of strings") }
        names.append(name)
      }
      request.tenants = names
    }
    do {
      return .json(201, try incidents.start(request).jsonValue)
    } catch {
      return Self.response(for: error)
    }
  }

  private func object(_ body: [UInt8]) throws(IncidentError) -> [String: JSONValue] {
    if body.isEmpty { return [:] }
    guard case .object(let members)? = try? CanonicalJSON.parse(body) else {
      throw IncidentError(.invalid, "the body must be a JSON object")
    }
    var fields: [String: JSONValue] = [:]
    for (key, value) in members { fields[key] = value }
    return fields
  }

  static func response(for error: IncidentError) -> AdminResponse {
    switch error.kind {
    case .invalid: .error(400, error.message)
    case .notFound: .error(404, error.message)
    case .conflict: .error(409, error.message)
    case .io: .error(500, error.message)
    }
  }
}

extension JSONValue {
  /// The string, if this is one.
  var stringValue: String? {
    if case .string(let text) = self { return text }
    return nil
  }
}
