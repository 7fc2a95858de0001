import EvidenceIO
public import Manifest
import OTLPProto
import SwiftProtobuf

/// The reserved audit stream of a capture node: where every admin action and refusal is
/// journaled as one OTLP log record, chained by SHA-256 (README, "The audit stream").
///
/// It is an ordinary logs stream to the bundle format: same segments, same per-stream sequence
/// numbers. Only its tenant name is special, and no client can send under that name.
public enum AuditStream {
  /// The tenant the audit stream is journaled under. The name is a valid tenant name (so every
  /// tool shows it as it is), and admission refuses it for clients (``isReserved(tenant:)``).
  public static let tenant = "stella-forensics:audit"
  /// The audit stream is a logs stream.
  public static let signal = Signal.logs
  /// What the first record of a node's audit stream (seq 0) names as its predecessor.
  public static let genesisSHA256 = String(repeating: "0", count: 64)

  /// Whether `tenant` is the reserved audit tenant, which no client may send under or claim.
  public static func isReserved(tenant: String) -> Bool { tenant == Self.tenant }

  /// The chain link of a record: lowercase hex SHA-256 of the `request` bytes of its segment
  /// record (the serialized `ExportLogsServiceRequest`, without the frame, seq or time).
  public static func chainHash(ofRequest request: [UInt8]) -> String { SHA256Digest.hex(of: request) }

  /// The log record's attribute keys, part of the documented record layout.
  public enum Key {
    public static let action = "stella.audit.action"
    public static let request = "stella.audit.request"
    public static let principal = "stella.audit.principal"
    public static let certificateIdentity = "stella.audit.certificate_identity"
    public static let peer = "stella.audit.peer"
    public static let parameters = "stella.audit.parameters"
    public static let result = "stella.audit.result"
    public static let status = "stella.audit.status"
    public static let reason = "stella.audit.reason"
    public static let note = "stella.audit.note"
    public static let incidentID = "stella.audit.incident_id"
    public static let previousSHA256 = "stella.audit.prev_sha256"
    public static let suppressedRefusals = "stella.audit.suppressed_refusals"
  }

  /// The instrumentation scope name of every audit record.
  public static let scopeName = "stella-forensics.audit"
}

/// One admin action or refusal as the audit stream records it: one OTLP `LogRecord` in an
/// `ExportLogsServiceRequest` of its own.
public struct AuditRecord: Sendable, Equatable {
  /// What the outcome was.
  public enum Result: String, Sendable, Equatable {
    /// The action was carried out (2xx).
    case done
    /// The action was authorized but did not happen (a 4xx/5xx from the route).
    case failed
    /// The admin gate refused the request before any route saw it.
    case refused
  }

  /// `incident.start`, `incident.stop`, `incident.expire`, `journal.seal`, … (README).
  public var action: String
  /// `METHOD /path` of the admin request; `nil` for actions no request caused (TTL expiry).
  public var request: String?
  /// The authenticated principal (token name), `system` for the node itself; `nil` when
  /// authentication failed or was not reached.
  public var principal: String?
  /// The client certificate's identity on an mTLS admin listener; `nil` without one.
  public var certificateIdentity: String?
  /// The peer address (`127.0.0.1:50412`); empty when there is none.
  public var peer: String
  /// The request's parameters as canonical JSON (an object; `{}` when there were none).
  public var parameters: String
  public var result: Result
  /// The HTTP status answered (0 for actions no request caused).
  public var status: Int
  /// Why a request was refused or failed.
  public var reason: String?
  /// What the caller typed about custody (`declaredBy`/`stoppedBy` of the body): kept as a note,
  /// never as custody.
  public var note: String?
  /// The incident the action concerns.
  public var incidentID: String?
  /// When the action was recorded (Unix nanoseconds): the record's `time_unix_nano`.
  public var timeUnixNano: UInt64
  /// ``AuditStream/chainHash(ofRequest:)`` of the previous record of the node's audit stream,
  /// or ``AuditStream/genesisSHA256`` for the first.
  public var previousSHA256: String
  /// Unauthenticated refusals since the previous record that were counted, not recorded one by
  /// one, because they came faster than the audit trail's refusal budget.
  public var suppressedRefusals: Int = 0

  public init(
    action: String, request: String? = nil, principal: String?, certificateIdentity: String? = nil, peer: String,
    parameters: String = "{}", result: Result, status: Int, reason: String? = nil, note: String? = nil,
    incidentID: String? = nil, timeUnixNano: UInt64, previousSHA256: String
  ) {
    self.action = action
    self.request = request
    self.principal = principal
    self.certificateIdentity = certificateIdentity
    self.peer = peer
    self.parameters = parameters
    self.result = result
    self.status = status
    self.reason = reason
    self.note = note
    self.incidentID = incidentID
    self.timeUnixNano = timeUnixNano
    self.previousSHA256 = previousSHA256
  }

  /// The one-line summary the log record's body holds, for people reading it in a log tool.
  public var summary: String {
    var text = "\(action) \(result.rawValue)"
    if status != 0 { text += " (\(status))" }
    text += " by \(principal ?? "(unauthenticated)")"
    if !peer.isEmpty { text += " from \(peer)" }
    if let reason { text += ": \(reason)" }
    return text
  }

  /// The serialized `ExportLogsServiceRequest` (deterministic protobuf) journaled for this record.
  /// - Parameter node: the capture node id, as the resource's `stella.node_id`.
  public func serializedRequest(node: String) throws(AuditRecordError) -> [UInt8] {
    var log = Opentelemetry_Proto_Logs_V1_LogRecord()
    log.timeUnixNano = timeUnixNano
    log.observedTimeUnixNano = timeUnixNano
    log.severityNumber = result == .done ? .info : .warn
    log.severityText = result == .done ? "INFO" : "WARN"
    log.body = Self.stringValue(summary)
    var attributes: [(String, Opentelemetry_Proto_Common_V1_AnyValue)] = [
      (AuditStream.Key.action, Self.stringValue(action))
    ]
    func add(_ key: String, _ text: String?) {
      if let text { attributes.append((key, Self.stringValue(text))) }
    }
    add(AuditStream.Key.request, request)
    add(AuditStream.Key.principal, principal)
    add(AuditStream.Key.certificateIdentity, certificateIdentity)
    add(AuditStream.Key.peer, peer)
    add(AuditStream.Key.parameters, parameters)
    add(AuditStream.Key.result, result.rawValue)
    var statusValue = Opentelemetry_Proto_Common_V1_AnyValue()
    statusValue.intValue = Int64(status)
    attributes.append((AuditStream.Key.status, statusValue))
    add(AuditStream.Key.reason, reason)
    add(AuditStream.Key.note, note)
    add(AuditStream.Key.incidentID, incidentID)
    add(AuditStream.Key.previousSHA256, previousSHA256)
    if suppressedRefusals > 0 {
      var suppressedValue = Opentelemetry_Proto_Common_V1_AnyValue()
      suppressedValue.intValue = Int64(suppressedRefusals)
      attributes.append((AuditStream.Key.suppressedRefusals, suppressedValue))
    }
    log.attributes = attributes.map { key, value in
      var pair = Opentelemetry_Proto_Common_V1_KeyValue()
      pair.key = key
      pair.value = value
      return pair
    }
    var scope = Opentelemetry_Proto_Logs_V1_ScopeLogs()
    scope.scope.name = AuditStream.scopeName
    scope.logRecords = [log]
    var resource = Opentelemetry_Proto_Logs_V1_ResourceLogs()
    resource.resource.attributes = [("service.name", "stella-forensics"), ("stella.node_id", node)].map { key, text in
      var pair = Opentelemetry_Proto_Common_V1_KeyValue()
      pair.key = key
      pair.value = Self.stringValue(text)
      return pair
    }
    resource.scopeLogs = [scope]
    var export = Opentelemetry_Proto_Collector_Logs_V1_ExportLogsServiceRequest()
    export.resourceLogs = [resource]
    var options = BinaryEncodingOptions()
    options.useDeterministicOrdering = true
    do {
      return try export.serializedBytes(options: options)
    } catch {
      throw AuditRecordError("cannot serialize the audit record: \(error)")
    }
  }

  /// Reads an audit record back from the `request` bytes of an audit stream record.
  /// - Throws: ``AuditRecordError`` when the bytes are not one log record of this layout.
  public init(request: [UInt8]) throws(AuditRecordError) {
    let export: Opentelemetry_Proto_Collector_Logs_V1_ExportLogsServiceRequest
    do {
      export = try Opentelemetry_Proto_Collector_Logs_V1_ExportLogsServiceRequest(serializedBytes: request)
    } catch {
      throw AuditRecordError("not an ExportLogsServiceRequest: \(error)")
    }
    let logs = export.resourceLogs.flatMap(\.scopeLogs).flatMap(\.logRecords)
    guard logs.count == 1, let log = logs.first else {
      throw AuditRecordError("holds \(logs.count) log records, an audit record holds exactly one")
    }
    var strings: [String: String] = [:]
    var status = 0
    var suppressed = 0
    for pair in log.attributes {
      if pair.key == AuditStream.Key.status, case .intValue(let number)? = pair.value.value {
        status = Int(clamping: number)
      } else if pair.key == AuditStream.Key.suppressedRefusals, case .intValue(let number)? = pair.value.value {
        suppressed = Int(clamping: number)
      } else if case .stringValue(let text)? = pair.value.value {
        strings[pair.key] = text
      }
    }
    guard let action = strings[AuditStream.Key.action] else {
      throw AuditRecordError("has no \(AuditStream.Key.action) attribute")
    }
    guard let resultText = strings[AuditStream.Key.result], let result = Result(rawValue: resultText) else {
      throw AuditRecordError("has no valid \(AuditStream.Key.result) attribute")
    }
    guard let previous = strings[AuditStream.Key.previousSHA256], Self.isHex64(previous) else {
      throw AuditRecordError("has no \(AuditStream.Key.previousSHA256) attribute of 64 lowercase hex digits")
    }
    self.init(
      action: action, request: strings[AuditStream.Key.request], principal: strings[AuditStream.Key.principal],
      certificateIdentity: strings[AuditStream.Key.certificateIdentity], peer: strings[AuditStream.Key.peer] ?? "",
      parameters: strings[AuditStream.Key.parameters] ?? "{}", result: result, status: status,
      reason: strings[AuditStream.Key.reason], note: strings[AuditStream.Key.note],
      incidentID: strings[AuditStream.Key.incidentID], timeUnixNano: log.timeUnixNano, previousSHA256: previous)
    self.suppressedRefusals = suppressed
  }

  private static func stringValue(_ text: String) -> Opentelemetry_Proto_Common_V1_AnyValue {
    var value = Opentelemetry_Proto_Common_V1_AnyValue()
    value.stringValue = text
    return value
  }

  static func isHex64(_ text: String) -> Bool {
    text.utf8.count == 64 && text.utf8.allSatisfy { (0x30...0x39).contains($0) || (0x61...0x66).contains($0) }
  }
}

/// Why bytes are not an audit record of the documented layout.
public struct AuditRecordError: Error, Sendable, Equatable, CustomStringConvertible {
  public var message: String

  public init(_ message: String) {
    self.message = message
  }

  public var description: String { message }
}
