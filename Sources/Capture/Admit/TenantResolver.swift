public import Manifest
import OTLPProto
import SwiftProtobuf

/// How the tenant of a request is found, and which tenants are taken.
///
/// Precedence: the transport's tenant (HTTP header or gRPC metadata, `tenancy.header`), then the
/// resource attribute (`tenancy.resource-attribute`, when configured; every resource of the
/// request must agree), then the default tenant. A name that is not a valid tenant name is
/// refused; with an allowlist (`tenancy.tenants`), a name not on it is refused or mapped to the
/// default tenant (`tenancy.unknown`).
public struct TenantPolicy: Sendable, Equatable {
  /// What happens to a tenant that is not on the allowlist.
  public enum UnknownTenant: String, Sendable, Equatable {
    /// 403 / `PERMISSION_DENIED`: nothing of the request is kept.
    case reject
    /// Kept under the default tenant.
    case mapToDefault = "default"
  }

  public var header = "X-Scope-OrgID"
  public var resourceAttribute: String?
  public var defaultTenant = "default"
  /// `nil`: every valid tenant name is taken.
  public var allowed: Set<String>?
  public var unknown = UnknownTenant.reject

  public init() {}
}

/// Resolves a request's tenant under a ``TenantPolicy``.
public struct TenantResolver: Sendable {
  public let policy: TenantPolicy

  public init(policy: TenantPolicy) {
    self.policy = policy
  }

  /// The tenant of `request` (valid protobuf of `signal`), given the transport's tenant value.
  public func resolve(transportTenant: String?, request: [UInt8], signal: Signal) throws(RejectedRequest) -> String {
    var tenant = transportTenant.map { $0.trimmingCharacters(in: .whitespaces) }.flatMap { $0.isEmpty ? nil : $0 }
    if tenant == nil, let attribute = policy.resourceAttribute {
      tenant = try Self.resourceTenant(attribute, request: request, signal: signal)
    }
    let name = tenant ?? policy.defaultTenant
    if let problem = TenantName.problem(with: name) { throw RejectedRequest(.malformed, "tenant: \(problem)") }
    if let allowed = policy.allowed, !allowed.contains(name) {
      switch policy.unknown {
      case .reject:
        throw RejectedRequest(.tenantRejected, "tenant \"\(name)\" is not configured on this capture service")
      case .mapToDefault:
        return policy.defaultTenant
      }
    }
    return name
  }

  /// The one value of `attribute` over the request's resources; `nil` when no resource has it.
  static func resourceTenant(_ attribute: String, request: [UInt8], signal: Signal) throws(RejectedRequest) -> String? {
    let resources: [Opentelemetry_Proto_Resource_V1_Resource]
    do {
      switch signal {
      case .traces:
        resources = try Opentelemetry_Proto_Collector_Trace_V1_ExportTraceServiceRequest(serializedBytes: request)
          .resourceSpans.map(\.resource)
      case .logs:
        resources = try Opentelemetry_Proto_Collector_Logs_V1_ExportLogsServiceRequest(serializedBytes: request)
          .resourceLogs.map(\.resource)
      case .metrics:
        resources = try Opentelemetry_Proto_Collector_Metrics_V1_ExportMetricsServiceRequest(serializedBytes: request)
          .resourceMetrics.map(\.resource)
      }
    } catch {
      throw RejectedRequest(.malformed, "protobuf: \(error)")
    }
    var found: Set<String> = []
    for resource in resources {
      for attributeValue in resource.attributes where attributeValue.key == attribute {
        if case .stringValue(let value)? = attributeValue.value.value { found.insert(value) }
      }
    }
    guard found.count <= 1 else {
      throw RejectedRequest(
        .malformed,
        "the request's resources name \(found.count) tenants in \(attribute) (\(found.sorted().joined(separator: ", "))); send each tenant's data in its own request"
      )
    }
    return found.first
  }
}
