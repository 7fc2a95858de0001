import Audit
import Testing

@testable import Capture
@testable import Ingest
@testable import Settings

/// `tenancy.identities`: tenants tied to verified client certificates.
@Suite struct TenantIdentityTests {
  static let collectorA = ClientIdentity(commonNames: ["collector-a"], alternativeNames: ["DNS:collector-a.example"])
  static let collectorB = ClientIdentity(
    commonNames: ["collector-b"], alternativeNames: ["IP:10.0.0.5", "URI:spiffe://example/collector-b"])
  static let stranger = ClientIdentity(commonNames: ["stranger"], alternativeNames: ["DNS:stranger.example"])

  static var policy: TenantPolicy {
    var policy = TenantPolicy()
    policy.resourceAttribute = "tenant.id"
    policy.identities = [
      IdentityTenants(certificate: "collector-a", tenants: ["acme"]),
      IdentityTenants(certificate: "CN=collector-b", tenants: ["globex", "initech"]),
    ]
    return policy
  }

  private func resolve(
    _ policy: TenantPolicy = policy, header: String? = nil, resource: [String] = [], identity: ClientIdentity?
  ) throws(RejectedRequest) -> String {
    try TenantResolver(policy: policy).resolve(
      transportTenant: header, resourceTenants: resource, clientIdentity: identity)
  }

  private func refusal(
    _ policy: TenantPolicy = policy, header: String? = nil, resource: [String] = [], identity: ClientIdentity?
  ) -> RejectedRequest? {
    do {
      _ = try resolve(policy, header: header, resource: resource, identity: identity)
      return nil
    } catch {
      return error
    }
  }

  // MARK: - Selectors

  @Test func selectorsMatchOneWholeNameOfTheirKind() {
    let identity = ClientIdentity(
      commonNames: ["collector-a"],
      alternativeNames: [
        "DNS:Collector-A.Example", "IP:10.0.0.5", "IP:2001:db8::1", "URI:spiffe://example/a", "email:ops@example.org",
      ])
    for selector in [
      "collector-a", "CN=collector-a", "DNS:collector-a.example", "IP:10.0.0.5", "IP:2001:db8::1",
      "URI:spiffe://example/a", "email:ops@example.org",
    ] {
      #expect(IdentityTenants(certificate: selector, tenants: ["t"]).selects(identity), "\(selector)")
    }
    for selector in [
      "collector", "CN=Collector-A", "DNS:collector-a", "DNS:example", "IP:10.0.0.50", "URI:spiffe://example",
      "email:OPS@example.org", "Collector-A.Example", "DNS:", "CN=",
    ] {
      #expect(!IdentityTenants(certificate: selector, tenants: ["t"]).selects(identity), "\(selector)")
    }
  }

  @Test func anIdentitySelectedByTwoEntriesGetsBothTenantListsInOrder() {
    let identities = [
      IdentityTenants(certificate: "DNS:collector-a.example", tenants: ["acme", "shared"]),
      IdentityTenants(certificate: "other", tenants: ["globex"]),
      IdentityTenants(certificate: "collector-a", tenants: ["shared", "umbrella"]),
    ]
    #expect(identities.tenants(for: Self.collectorA) == ["acme", "shared", "umbrella"])
    #expect(identities.tenants(for: Self.stranger).isEmpty)
  }

  @Test func theDescriptionIsTheAuditForm() {
    #expect(Self.collectorA.description == "CN=collector-a, SAN=DNS:collector-a.example")
    #expect(ClientIdentity(commonNames: []).isEmpty)
  }

  // MARK: - Resolution

  @Test func anIdentityWithoutAHeaderGetsItsFirstTenant() throws {
    #expect(try resolve(identity: Self.collectorA) == "acme")
    #expect(try resolve(identity: Self.collectorB) == "globex")
  }

  @Test func aHeaderOrResourceAttributePicksAmongTheIdentitysTenants() throws {
    #expect(try resolve(header: "initech", identity: Self.collectorB) == "initech")
    #expect(try resolve(resource: ["initech"], identity: Self.collectorB) == "initech")
    #expect(try resolve(header: "acme", identity: Self.collectorA) == "acme")
  }

  @Test func aForeignTenantIsRefusedNamingTheCertificate() {
    let refused = refusal(header: "globex", identity: Self.collectorA)
    #expect(refused?.kind == .tenantRejected)
    #expect(refused?.message.contains("CN=collector-a") == true)
    #expect(refused?.message.contains("\"globex\"") == true)
    #expect(refusal(resource: ["acme"], identity: Self.collectorB)?.kind == .tenantRejected)
    // The default tenant is no way around the mapping either.
    #expect(refusal(header: "default", identity: Self.collectorB)?.kind == .tenantRejected)
  }

  @Test func anUnmappedOrMissingIdentityIsRefused() {
    let unmapped = refusal(header: "acme", identity: Self.stranger)
    #expect(unmapped?.kind == .tenantRejected)
    #expect(unmapped?.message.contains("not mapped to any tenant") == true)
    #expect(refusal(header: "acme", identity: nil)?.kind == .tenantRejected)
    #expect(refusal(identity: ClientIdentity(commonNames: []))?.kind == .tenantRejected)
  }

  @Test func theUnknownTenantFallbackDoesNotWidenAnIdentity() {
    var lenient = Self.policy
    lenient.allowed = ["acme", "globex", "initech", "default"]
    lenient.unknown = .mapToDefault
    #expect(refusal(lenient, header: "globex", identity: Self.collectorA)?.kind == .tenantRejected)
    #expect(refusal(lenient, header: "nobody", identity: Self.collectorA)?.kind == .tenantRejected)
  }

  @Test func theAuditTenantStaysReserved() {
    var policy = Self.policy
    policy.identities = [IdentityTenants(certificate: "collector-a", tenants: ["acme"])]
    #expect(refusal(policy, header: AuditStream.tenant, identity: Self.collectorA)?.kind == .tenantRejected)
  }

  @Test func withoutAMappingIdentitiesChangeNothing() throws {
    #expect(try resolve(TenantPolicy(), header: "globex", identity: Self.collectorA) == "globex")
    #expect(try resolve(TenantPolicy(), identity: nil) == "default")
  }

  // MARK: - Configuration

  static let mutualTLS = "tls:\n  cert: s.pem\n  key: s.key\n  client-ca: ca.pem\n"

  private func configuration(_ yaml: String) throws -> CaptureConfiguration {
    var configuration = CaptureConfiguration()
    try configuration.apply(yaml: yaml, path: "/etc/stella/capture.yaml")
    try configuration.validate()
    return configuration
  }

  private func configurationError(_ yaml: String) -> String? {
    do {
      _ = try configuration(yaml)
      return nil
    } catch let error as CaptureConfigurationError {
      return error.message
    } catch {
      return "\(error)"
    }
  }

  @Test func identitiesParseInOrder() throws {
    let parsed = try configuration(
      Self.mutualTLS + """
        tenancy:
          identities:
            - certificate: collector-a
              tenants: [acme]
            - certificate: "DNS:collector-b.example"
              tenants: [globex, initech, globex]
        """)
    #expect(
      parsed.tenancy.identities == [
        IdentityTenants(certificate: "collector-a", tenants: ["acme"]),
        IdentityTenants(certificate: "DNS:collector-b.example", tenants: ["globex", "initech"]),
      ])
  }

  @Test func identitiesNeedAClientCA() {
    let message = configurationError(
      "tls:\n  cert: s.pem\n  key: s.key\ntenancy:\n  identities:\n    - {certificate: a, tenants: [acme]}\n")
    #expect(message?.contains("--tls-client-ca") == true)
    #expect(configurationError("tenancy:\n  identities:\n    - {certificate: a, tenants: [acme]}\n") != nil)
  }

  @Test(arguments: [
    ("    - {certificate: a, tenants: [\"stella-forensics:audit\"]}\n", "reserved for the audit stream"),
    ("    - {certificate: a, tenants: [\"no spaces\"]}\n", "tenancy.identities[0].tenants"),
    ("    - {certificate: a, tenants: []}\n", "lists no tenants"),
    ("    - {certificate: a}\n", "needs both certificate and tenants"),
    ("    - {certificate: \"DNS:\", tenants: [acme]}\n", "names nothing"),
    ("    - {certificate: a, tenants: [acme], role: admin}\n", "unknown key tenancy.identities[0].role"),
    ("    - {certificate: a, tenants: acme}\n", "must be a list of tenant names"),
  ])
  func badIdentityEntriesAreRefusedSayingWhy(entry: String, expected: String) {
    let message = configurationError(Self.mutualTLS + "tenancy:\n  identities:\n" + entry)
    #expect(message?.contains(expected) == true, "\(message ?? "accepted")")
  }

  @Test func identityTenantsMustBeOnTheAllowlist() {
    let message = configurationError(
      Self.mutualTLS + "tenancy:\n  tenants: [acme]\n  identities:\n    - {certificate: a, tenants: [acme, globex]}\n")
    #expect(message?.contains("globex is not in tenancy.tenants") == true)
  }
}
