import Manifest
import OTLPProto
import SwiftProtobuf
import Testing

@testable import Capture
@testable import Ingest

@Suite struct TenantResolverTests {
  func traces(resourceTenants: [String?]) throws -> [UInt8] {
    var request = Opentelemetry_Proto_Collector_Trace_V1_ExportTraceServiceRequest()
    for tenant in resourceTenants {
      var resourceSpans = Opentelemetry_Proto_Trace_V1_ResourceSpans()
      if let tenant {
        var attribute = Opentelemetry_Proto_Common_V1_KeyValue()
        attribute.key = "tenant.id"
        attribute.value.stringValue = tenant
        resourceSpans.resource.attributes.append(attribute)
      }
      request.resourceSpans.append(resourceSpans)
    }
    return try request.serializedBytes()
  }

  var policy: TenantPolicy {
    var policy = TenantPolicy()
    policy.resourceAttribute = "tenant.id"
    return policy
  }

  @Test func headerThenResourceAttributeThenDefault() throws {
    let resolver = TenantResolver(policy: policy)
    let request = try traces(resourceTenants: ["acme", "acme"])
    #expect(try resolver.resolve(transportTenant: "globex", request: request, signal: .traces) == "globex")
    #expect(try resolver.resolve(transportTenant: nil, request: request, signal: .traces) == "acme")
    #expect(
      try resolver.resolve(transportTenant: " ", request: try traces(resourceTenants: [nil]), signal: .traces)
        == "default")
  }

  @Test func resourcesNamingTwoTenantsAreRefused() throws {
    #expect {
      try TenantResolver(policy: policy).resolve(
        transportTenant: nil, request: try traces(resourceTenants: ["acme", "globex"]), signal: .traces)
    } throws: { error in
      (error as? RejectedRequest)?.kind == .malformed
    }
  }

  @Test func anAllowlistRejectsOrMapsUnknownTenants() throws {
    var strict = policy
    strict.allowed = ["acme", "default"]
    let request = try traces(resourceTenants: [nil])
    #expect(
      try TenantResolver(policy: strict).resolve(transportTenant: "acme", request: request, signal: .traces) == "acme")
    #expect {
      try TenantResolver(policy: strict).resolve(transportTenant: "mallory", request: request, signal: .traces)
    } throws: { error in
      (error as? RejectedRequest)?.kind == .tenantRejected
    }
    var lenient = strict
    lenient.unknown = .mapToDefault
    #expect(
      try TenantResolver(policy: lenient).resolve(transportTenant: "mallory", request: request, signal: .traces)
        == "default")
  }

  @Test func invalidNamesAreRefused() throws {
    #expect(throws: RejectedRequest.self) {
      try TenantResolver(policy: policy).resolve(
        transportTenant: "a/../b", request: try traces(resourceTenants: [nil]), signal: .traces)
    }
  }
}
