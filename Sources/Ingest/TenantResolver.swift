import Audit
import Foundation
public import Manifest

/// How the tenant of a request is found, and which tenants are taken.
///
/// Precedence: the transport's tenant (HTTP header or gRPC metadata, `tenancy.header`), then the
/// resource attribute (`tenancy.resource-attribute`, when configured; every resource of the
/// request must agree), then the default tenant. A name that is not a valid tenant name is
/// refused; with an allowlist (`tenancy.tenants`), a name not on it is refused or mapped to the
/// default tenant (`tenancy.unknown`).
///
/// With an identity mapping (`tenancy.identities`) the client's verified certificate decides which
/// tenants it may write under: the tenant found by the precedence above must be one of them, and a
/// request that names none goes to the identity's first tenant (not the default tenant). A
/// request without a client certificate, from a certificate no entry selects, or naming any other
/// tenant is refused (403 / `PERMISSION_DENIED`), whatever `tenancy.unknown` says.
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
  /// Which tenants each client certificate may write under; empty: tenants are not tied to
  /// client identities.
  public var identities: [IdentityTenants] = []

  public init() {}
}

/// Resolves a request's tenant under a ``TenantPolicy``.
public struct TenantResolver: Sendable {
  public let policy: TenantPolicy

  public init(policy: TenantPolicy) {
    self.policy = policy
  }

  /// The tenant of `request` (valid protobuf of `signal`), given the transport's tenant value and
  /// the client's verified certificate identity, if any.
  public func resolve(
    transportTenant: String?, request: [UInt8], signal: Signal, clientIdentity: ClientIdentity? = nil
  ) throws(RejectedRequest) -> String {
    var resourceTenants: [String] = []
    var more = false
    if transportTenant.map(Self.trimmed)?.isEmpty ?? true, let attribute = policy.resourceAttribute {
      let decoded = try OTLPRequestDecoder.check(
        body: request, signal: signal, encoding: .protobuf, tenantAttribute: attribute)
      resourceTenants = decoded.resourceTenants
      more = decoded.moreResourceTenants
    }
    return try resolve(
      transportTenant: transportTenant, resourceTenants: resourceTenants, moreResourceTenants: more,
      clientIdentity: clientIdentity)
  }

  /// `value` without surrounding whitespace; a header that has none (nearly all) is returned as
  /// it is, without Foundation's trimming pass, which runs for every request otherwise.
  private static func trimmed(_ value: String) -> String {
    let whitespace = CharacterSet.whitespaces
    guard let first = value.unicodeScalars.first, let last = value.unicodeScalars.last,
      !whitespace.contains(first), !whitespace.contains(last)
    else { return value.trimmingCharacters(in: whitespace) }
    return value
  }

  /// The tenant, given the transport's tenant value and the distinct values of
  /// ``TenantPolicy/resourceAttribute`` on the request's resources (as admission's wire pass
  /// collected them), and the client's verified certificate identity, if any.
  public func resolve(
    transportTenant: String?, resourceTenants: [String], moreResourceTenants: Bool = false,
    clientIdentity: ClientIdentity? = nil
  ) throws(RejectedRequest) -> String {
    // Checked before anything the request says, so an unauthorized client learns nothing more.
    let identityTenants = try tenantsOfIdentity(clientIdentity)
    var tenant = transportTenant.map(Self.trimmed).flatMap { $0.isEmpty ? nil : $0 }
    if tenant == nil, let attribute = policy.resourceAttribute {
      guard resourceTenants.count <= 1, !moreResourceTenants else {
        let shown = resourceTenants.sorted().joined(separator: ", ") + (moreResourceTenants ? ", ..." : "")
        throw RejectedRequest(
          .malformed,
          "the request's resources name \(resourceTenants.count)\(moreResourceTenants ? "+" : "") tenants in \(attribute) (\(shown)); send each tenant's data in its own request"
        )
      }
      tenant = resourceTenants.first
    }
    let name = tenant ?? identityTenants?.first ?? policy.defaultTenant
    if let problem = TenantName.problem(with: name) { throw RejectedRequest(.malformed, "tenant: \(problem)") }
    // The capture node's own audit stream: a client writing under its name would forge custody.
    if AuditStream.isReserved(tenant: name) {
      throw RejectedRequest(
        .tenantRejected, "tenant \"\(name)\" is reserved for the capture node's audit stream")
    }
    if let identityTenants, let clientIdentity {
      guard identityTenants.contains(name) else {
        throw RejectedRequest(
          .tenantRejected,
          "client certificate \"\(clientIdentity)\" may not write under tenant \"\(name)\" (tenancy.identities gives it: \(identityTenants.joined(separator: ", ")))"
        )
      }
    }
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

  /// With ``TenantPolicy/identities``, the tenants `identity` may write under (never empty);
  /// `nil` without a mapping.
  private func tenantsOfIdentity(_ identity: ClientIdentity?) throws(RejectedRequest) -> [String]? {
    guard !policy.identities.isEmpty else { return nil }
    guard let identity, !identity.isEmpty else {
      throw RejectedRequest(
        .tenantRejected,
        "this capture service maps client certificates to tenants (tenancy.identities), and the connection presented no client certificate naming anyone"
      )
    }
    let tenants = policy.identities.tenants(for: identity)
    guard !tenants.isEmpty else {
      throw RejectedRequest(
        .tenantRejected, "client certificate \"\(identity)\" is not mapped to any tenant (tenancy.identities)")
    }
    return tenants
  }
}
