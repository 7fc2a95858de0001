public import Audit
import Foundation
public import Incidents
public import Logging
import Manifest

/// One admin action, done or refused: what ``AdminEventLog/emit(_:changesState:)`` reports.
public struct AdminEvent: Sendable, Equatable {
  public enum Outcome: Sendable, Equatable {
    /// The route answered with this status (2xx: the action happened).
    case done(status: Int)
    /// The gate refused the request before any route saw it.
    case refused(status: Int, reason: String)
  }

  /// `METHOD /path` as requested, or the node's own action (`incident.expire`) when no request
  /// caused it.
  public var action: String
  /// The authenticated principal's name; `nil` when authentication failed or was not reached.
  public var principal: String?
  /// The identity of the client certificate on an mTLS admin listener; `nil` without one.
  public var certificateIdentity: String?
  /// The peer's address (`127.0.0.1:50412`), empty when unknown.
  public var peer: String
  public var outcome: Outcome
  /// The request body's parameters as canonical JSON (``AdminEvent/parameters(ofBody:)``).
  public var parameters: String
  /// What the caller typed about custody (the body's `declaredBy` / `stoppedBy`), kept as a note.
  public var note: String?
  /// The incident the action concerns, when there is one.
  public var incidentID: String?

  public init(
    action: String, principal: String?, certificateIdentity: String? = nil, peer: String, outcome: Outcome,
    parameters: String = "{}", note: String? = nil, incidentID: String? = nil
  ) {
    self.action = action
    self.principal = principal
    self.certificateIdentity = certificateIdentity
    self.peer = peer
    self.outcome = outcome
    self.parameters = parameters
    self.note = note
    self.incidentID = incidentID
  }

  /// The event of `request`, with the parameters, note and incident id its body and path hold
  /// (and, for a started incident, the id `response` names).
  init(request: AdminRequest, principal: String?, outcome: Outcome, response: AdminResponse? = nil) {
    let fields = Self.bodyObject(request.body)
    var incidentID = fields?["id"]?.stringValue
    let parts = request.path.split(separator: "/", omittingEmptySubsequences: true)
    if parts.count >= 2, parts[0] == "incidents" { incidentID = String(parts[1]) }
    if let response, (200..<300).contains(response.status), let id = Self.bodyObject(response.body)?["id"]?.stringValue
    {
      incidentID = id
    }
    self.init(
      action: "\(request.method) \(request.path)", principal: principal,
      certificateIdentity: request.certificateIdentity, peer: request.peer, outcome: outcome,
      parameters: Self.parameters(ofBody: request.body),
      note: fields?["declaredBy"]?.stringValue ?? fields?["stoppedBy"]?.stringValue, incidentID: incidentID)
  }

  /// The audit stream's name for what `action` (`METHOD /path`) does: `incident.start`,
  /// `incident.stop`, `journal.seal`, `config.reload`; any other request is `admin.request`.
  public var auditAction: String {
    let words = action.split(separator: " ", maxSplits: 1)
    guard words.count == 2 else { return action }
    let parts = words[1].split(separator: "/", omittingEmptySubsequences: true)
    switch (words[0], parts.count) {
    case ("POST", 1) where parts[0] == "incidents": return "incident.start"
    case ("POST", 3) where parts[0] == "incidents" && parts[2] == "stop": return "incident.stop"
    case ("POST", 1) where parts[0] == "seal": return "journal.seal"
    case ("POST", 1) where parts[0] == "reload": return "config.reload"
    default: return "admin.request"
    }
  }

  /// The audit record of this event (its time and chain link are set by ``AuditTrail``).
  public var auditRecord: AuditRecord {
    // A request's action is its request line; the node's own actions are single names.
    let isRequest = action.contains(" ")
    var record = AuditRecord(
      action: isRequest ? auditAction : action, request: isRequest ? action : nil, principal: principal,
      certificateIdentity: certificateIdentity, peer: peer, parameters: parameters, result: .done, status: 0,
      note: note, incidentID: incidentID, timeUnixNano: 0, previousSHA256: AuditStream.genesisSHA256)
    switch outcome {
    case .done(let status):
      record.status = status
      // Status 0: an action of the node itself, with no answer to give.
      record.result = status == 0 || (200..<300).contains(status) ? .done : .failed
    case .refused(let status, let reason):
      record.status = status
      record.result = .refused
      record.reason = reason
    }
    return record
  }

  /// A body's parameters as the audit stream keeps them: the canonical JSON of a JSON object of
  /// at most 4 KiB, `{}` for no body, and only the size of anything else (a refused request's
  /// body is the caller's text, never copied in bulk into evidence).
  public static func parameters(ofBody body: [UInt8]) -> String {
    if body.isEmpty { return "{}" }
    if body.count <= 4096, let value = try? CanonicalJSON.parse(body), case .object = value,
      let canonical = try? CanonicalJSON.serialize(value)
    {
      return String(decoding: canonical, as: UTF8.self)
    }
    return "{\"unreadBodyBytes\":\"\(body.count)\"}"
  }

  private static func bodyObject(_ body: [UInt8]) -> [String: JSONValue]? {
    guard !body.isEmpty, body.count <= 1 << 20, case .object(let members)? = try? CanonicalJSON.parse(body) else {
      return nil
    }
    return Dictionary(members, uniquingKeysWith: { first, _ in first })
  }
}

/// The one place an admin action or refusal is reported: it logs (refusals and actions that
/// change state at notice, reads at debug), hands the event to `sink`, and journals every
/// refusal and every state-changing action in the audit stream (``AuditTrail``) before the
/// caller answers.
public struct AdminEventLog: Sendable {
  private let logger: Logger
  private let sink: (@Sendable (AdminEvent) -> Void)?
  private let audit: AuditTrail?

  public init(logger: Logger, sink: (@Sendable (AdminEvent) -> Void)? = nil, audit: AuditTrail? = nil) {
    self.logger = logger
    self.sink = sink
    self.audit = audit
  }

  /// Reports `event`: logs it, hands it to the sink and, for a refusal or a state change,
  /// returns only once its audit record is durable. Reads that change nothing are not audited.
  public func emit(_ event: AdminEvent, changesState: Bool = true) async {
    let who = event.principal ?? "-"
    var peer = event.peer.isEmpty ? "?" : event.peer
    if let identity = event.certificateIdentity { peer += " (certificate \(AdminGate.quoted(identity)))" }
    var audited = true
    switch event.outcome {
    case .refused(let status, let reason):
      logger.notice("admin refused \(event.action) from \(peer) principal \(who): \(status) \(reason)")
    case .done(let status):
      let message: Logger.Message = "admin \(event.action) by \(who) from \(peer): \(status)"
      if changesState { logger.notice(message) } else { logger.debug(message) }
      audited = changesState
    }
    sink?(event)
    if audited, let audit { await audit.record(event.auditRecord) }
  }
}

/// The admin API's front door: every request except `GET /healthz` and `GET /readyz` passes it
/// before a route sees it. In order it refuses
/// - any `Origin` header (403): browsers send one with every cross-site request, and no tool of
///   ours does, so a web page cannot drive the API;
/// - a `Host` that is not the listen address, a loopback name or a configured name (421): a DNS
///   rebinding page reaches loopback under a name of its own;
/// - a missing, malformed or unknown `Authorization: Bearer TOKEN` (401, `WWW-Authenticate`);
/// - a principal whose role lacks the route's right (403);
/// - a request that changes state without `Content-Type: application/json` (415): browsers send
///   "simple" cross-site POSTs only as text/plain, form or multipart.
public struct AdminGate: Sendable {
  /// What the gate decided about one request.
  public enum Decision: Sendable, Equatable {
    case allowed(AdminPrincipal)
    case refused(AdminResponse)
  }

  public let tokens: AdminTokens
  /// Lowercased host names (IPv6 without brackets) a `Host` header may name.
  public let allowedHosts: Set<String>
  public let events: AdminEventLog

  /// - Parameters:
  ///   - listenHost: the admin listener's host, always allowed (with the loopback names).
  ///   - hostNames: further names clients use to reach the admin API (a DNS name, an address
  ///     of a wildcard listener).
  public init(tokens: AdminTokens, listenHost: String, hostNames: [String] = [], events: AdminEventLog) {
    self.tokens = tokens
    var hosts: Set<String> = ["localhost", "127.0.0.1", "::1"]
    for name in [listenHost] + hostNames { hosts.insert(Self.normalizedHost(name)) }
    self.allowedHosts = hosts
    self.events = events
  }

  /// The right `request`'s route needs; `nil` for routes that do not exist (any authenticated
  /// principal then gets their 404 or 405).
  public static func right(for request: AdminRequest) -> AdminRight? {
    let parts = request.path.split(separator: "/", omittingEmptySubsequences: true)
    switch (request.method, parts.count) {
    case ("GET", 1) where parts[0] == "status": return .view
    case ("POST", 1) where parts[0] == "seal": return .respond
    case ("GET", 1) where parts[0] == "incidents": return .view
    case ("GET", 2) where parts[0] == "incidents": return .view
    case ("POST", 1) where parts[0] == "incidents": return .respond
    case ("POST", 3) where parts[0] == "incidents" && parts[2] == "stop": return .respond
    default: return nil
    }
  }

  /// Whether `method` may change state (everything but the safe methods).
  static func isMutating(_ method: String) -> Bool { !["GET", "HEAD", "OPTIONS"].contains(method) }

  /// Decides about `request` and reports a refusal (``AdminEventLog/emit(_:changesState:)``).
  public func check(_ request: AdminRequest) async -> Decision {
    switch decide(request) {
    case .allowed(let principal):
      return .allowed(principal)
    case .refused(let response, let reason, let principal):
      await events.emit(
        AdminEvent(
          request: request, principal: principal?.name, outcome: .refused(status: response.status, reason: reason)))
      return .refused(response)
    }
  }

  /// Runs `route` for `request` if the gate allows it, and reports the action.
  public func handle(
    _ request: AdminRequest, route: (AdminPrincipal) async -> AdminResponse
  ) async -> AdminResponse {
    switch await check(request) {
    case .refused(let response):
      return response
    case .allowed(let principal):
      let response = await route(principal)
      await events.emit(
        AdminEvent(
          request: request, principal: principal.name, outcome: .done(status: response.status), response: response),
        changesState: Self.isMutating(request.method))
      return response
    }
  }

  private enum Outcome {
    case allowed(AdminPrincipal)
    case refused(AdminResponse, reason: String, principal: AdminPrincipal?)
  }

  private func decide(_ request: AdminRequest) -> Outcome {
    if let origin = request.headers["origin"] {
      return .refused(
        .error(403, "requests from a web page (Origin header) are refused"),
        reason: "Origin header \(Self.quoted(origin))", principal: nil)
    }
    guard let host = request.headers["host"], !host.isEmpty else {
      return .refused(.error(421, "a Host header is required"), reason: "no Host header", principal: nil)
    }
    guard allowedHosts.contains(Self.hostName(ofHeader: host)) else {
      return .refused(
        .error(421, "Host \(Self.quoted(host)) is not a name of this admin endpoint"),
        reason: "foreign Host \(Self.quoted(host))", principal: nil)
    }
    guard let token = Self.bearerToken(request.headers["authorization"]) else {
      var response = AdminResponse.error(401, "an admin token is required (Authorization: Bearer TOKEN)")
      response.headers["WWW-Authenticate"] = "Bearer realm=\"stella-forensics admin\""
      let reason = request.headers["authorization"] == nil ? "no Authorization header" : "malformed Authorization"
      return .refused(response, reason: reason, principal: nil)
    }
    guard let principal = tokens.authenticate(token: token) else {
      var response = AdminResponse.error(401, "unknown admin token")
      response.headers["WWW-Authenticate"] = "Bearer realm=\"stella-forensics admin\", error=\"invalid_token\""
      return .refused(response, reason: "unknown token", principal: nil)
    }
    if let right = Self.right(for: request), !principal.role.allows(right) {
      return .refused(
        .error(
          403,
          "\(principal.name) (role \(principal.role.rawValue)) may not \(request.method) \(request.path): it needs role \(right.minimumRole.rawValue)"
        ), reason: "role \(principal.role.rawValue) lacks \(right.rawValue)", principal: principal)
    }
    if Self.isMutating(request.method) {
      let contentType = request.headers["content-type"] ?? ""
      let media = contentType.split(separator: ";", maxSplits: 1).first.map {
        $0.trimmingCharacters(in: .whitespaces).lowercased()
      }
      guard media == "application/json" else {
        return .refused(
          .error(415, "\(request.method) \(request.path) takes Content-Type: application/json"),
          reason: "Content-Type \(Self.quoted(contentType))", principal: principal)
      }
    }
    return .allowed(principal)
  }

  /// The token of `Authorization: Bearer TOKEN` (scheme case-insensitive), or `nil`.
  static func bearerToken(_ header: String?) -> [UInt8]? {
    guard let header else { return nil }
    let parts = header.split(separator: " ", maxSplits: 1, omittingEmptySubsequences: true)
    guard parts.count == 2, parts[0].lowercased() == "bearer" else { return nil }
    let token = parts[1].trimmingCharacters(in: .whitespaces)
    // RFC 6750 token68 characters are printable ASCII; anything else cannot be a token of ours.
    guard !token.isEmpty, token.utf8.count <= 4096, token.utf8.allSatisfy({ (0x21...0x7E).contains($0) }) else {
      return nil
    }
    return Array(token.utf8)
  }

  /// The host part of a `Host` header (`[::1]:4320` → `::1`, `Name:80` → `name`).
  static func hostName(ofHeader header: String) -> String {
    let text = header.trimmingCharacters(in: .whitespaces)
    if text.hasPrefix("["), let close = text.firstIndex(of: "]") {
      return normalizedHost(String(text[text.index(after: text.startIndex)..<close]))
    }
    // One colon: HOST:PORT. More: a bare IPv6 address, which a Host header may not hold.
    if text.filter({ $0 == ":" }).count == 1, let colon = text.firstIndex(of: ":") {
      return normalizedHost(String(text[..<colon]))
    }
    return text.filter({ $0 == ":" }).count > 1 ? "" : normalizedHost(text)
  }

  static func normalizedHost(_ name: String) -> String {
    var host = name.lowercased()
    if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
    if host.hasSuffix(".") { host = String(host.dropLast()) }
    return host
  }

  /// A header value for a log line or an error: at most 200 bytes, control characters escaped.
  static func quoted(_ value: String) -> String {
    var out = "\""
    for scalar in value.unicodeScalars.prefix(200) {
      switch scalar.value {
      case 0x22: out += "\\\""
      case 0x5C: out += "\\\\"
      case 0..<0x20, 0x7F...0x9F: out += "\\u{\(String(scalar.value, radix: 16))}"
      default: out.unicodeScalars.append(scalar)
      }
    }
    return out + (value.unicodeScalars.count > 200 ? "…\"" : "\"")
  }
}
