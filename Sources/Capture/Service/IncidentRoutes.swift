public import Incidents
import Manifest
public import Receivers
import Settings

/// The incident endpoints of the admin API.
///
/// ```
/// POST /incidents              {"reason": "...", "id"?: "...", "ttl"?: "30m", "lookback"?: "15m",
///                               "tenants"?: ["..."], "declaredBy"?: "..."}   → 201 {incident}
/// POST /incidents/{id}/stop    {"stoppedBy"?: "..."}                         → 200 {incident}
/// GET  /incidents                                                            → 200 {"incidents": [...]}
/// GET  /incidents/{id}                                                       → 200 {incident}
/// ```
/// Errors: 400 (bad or unknown field, a look-back longer than the ring's age), 404 (no such
/// incident), 409 (id taken, already ended), 500 (the incident log could not be written: nothing
/// changed), each `{"error": "..."}`.
///
/// Custody comes from the principal the ``AdminGate`` authenticated: `declaredBy` and
/// `endedBy` are its name; the body's `declaredBy` / `stoppedBy` (what a caller types) are kept
/// only as the incident's `note` / `stopNote`.
public struct IncidentRoutes: Sendable {
  let incidents: IncidentManager

  public init(incidents: IncidentManager) {
    self.incidents = incidents
  }

  /// Answers one incident request of `principal` (already authorized by the gate).
  public func handle(_ request: AdminRequest, principal: AdminPrincipal) -> AdminResponse {
    let parts = request.path.split(separator: "/", omittingEmptySubsequences: true).map(String.init)
    switch (request.method, parts.count) {
    case ("GET", 1):
      return .json(200, .object([("incidents", .array(incidents.list().map(\.jsonValue)))]))
    case ("POST", 1):
      return start(request.body, principal: principal)
    case ("GET", 2):
      guard let incident = incidents.incident(id: parts[1]) else { return .error(404, "no incident \(parts[1])") }
      return .json(200, incident.jsonValue)
    case ("POST", 3) where parts[2] == "stop":
      do {
        let fields = try object(request.body, allowed: ["stoppedBy"])
        let note = try optionalString(fields, "stoppedBy")
        return .json(200, try incidents.stop(id: parts[1], by: principal.name, note: note).jsonValue)
      } catch {
        return Self.response(for: error)
      }
    default:
      return .error(405, "\(request.method) \(request.path) is not an incident operation")
    }
  }

  private func start(_ body: [UInt8], principal: AdminPrincipal) -> AdminResponse {
    let fields: [String: JSONValue]
    var request: IncidentStartRequest
    do {
      fields = try object(body, allowed: ["reason", "id", "ttl", "lookback", "tenants", "declaredBy"])
      guard let reason = try optionalString(fields, "reason") else { return .error(400, "reason is required") }
      request = IncidentStartRequest(
        reason: reason, id: try optionalString(fields, "id"), declaredBy: principal.name,
        note: try optionalString(fields, "declaredBy"))
    } catch {
      return .error(400, error.message)
    }
    for (key, target) in [("ttl", \IncidentStartRequest.ttlNanos), ("lookback", \IncidentStartRequest.lookbackNanos)] {
      guard let value = fields[key] else { continue }
      // A duration too large for nanoseconds in 64 bits is refused like a malformed one.
      guard let text = value.stringValue, let millis = DurationText.milliseconds(text),
        case (let nanos, false) = UInt64(millis).multipliedReportingOverflow(by: 1_000_000)
      else {
        return .error(400, "\(key) must be a duration such as \"30s\", \"15m\" or \"2h\"")
      }
      request[keyPath: target] = nanos
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

  /// The body's members; a member not in `allowed` is refused rather than ignored, so a
  /// misspelt field is not silently lost.
  private func object(_ body: [UInt8], allowed: Set<String>) throws(IncidentError) -> [String: JSONValue] {
    if body.isEmpty { return [:] }
    guard case .object(let members)? = try? CanonicalJSON.parse(body) else {
      throw IncidentError(.invalid, "the body must be a JSON object")
    }
    var fields: [String: JSONValue] = [:]
    for (key, value) in members {
      guard allowed.contains(key) else {
        let name = key.unicodeScalars.allSatisfy { (0x21...0x7E).contains($0.value) } ? key : "(not printable)"
        throw IncidentError(
          .invalid, "unknown field \(name.prefix(64)) (known: \(allowed.sorted().joined(separator: ", ")))")
      }
      fields[key] = value
    }
    return fields
  }

  /// The string member `key`, `nil` when absent; any other type is refused.
  private func optionalString(_ fields: [String: JSONValue], _ key: String) throws(IncidentError) -> String? {
    guard let value = fields[key] else { return nil }
    guard let text = value.stringValue else { throw IncidentError(.invalid, "\(key) must be a string") }
    return text
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
