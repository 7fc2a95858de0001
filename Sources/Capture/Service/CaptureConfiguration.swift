import Audit
import Foundation
public import Incidents
public import Ingest
public import Journal
import Manifest
public import Receivers
public import Settings
import Yams

/// Documented presets of durability, limits and listeners (`--profile`).
public enum CaptureProfile: String, Sendable, CaseIterable {
  /// Group commit, loopback listeners, moderate bounds: a workstation or a sidecar.
  case `default`
  /// Every export request synced on its own before it is acknowledged, shorter segments (sealed
  /// evidence sooner), a larger free-space floor: when the capture itself is the evidence.
  case forensic
  /// Loopback-only listeners (non-loopback addresses are refused) and no outbound hooks, for
  /// sealed, air-gapped sites.
  case airgap
}

/// Everything the capture service is configured with. Built from a profile's preset, then a
/// YAML file (`--config`), then command-line flags, each overriding the one before.
public struct CaptureConfiguration: Sendable {
  public var profile: CaptureProfile
  public var dataDirectory = "./stella-data"
  /// `nil`: the id stored in the data directory, or a generated one.
  public var nodeID: String?
  public var otlpHTTP = ListenAddress(host: "127.0.0.1", port: 4318)
  public var otlpGRPC = ListenAddress(host: "127.0.0.1", port: 4317)
  public var admin = ListenAddress(host: "127.0.0.1", port: 4320)
  /// The Prometheus `/metrics` listener (`--metrics`, `listeners.metrics`); `nil`: off.
  public var metrics: ListenAddress? = ListenAddress(host: "127.0.0.1", port: 9464)
  /// The admin API's tokens file (`--admin-tokens`, `admin.tokens`; must be 0600 and owned by the
  /// user running capture). `nil`: `DATA/admin-tokens.yaml`, generated at the first start with
  /// one `admin` token for the local operator (the token itself in `DATA/admin-token`).
  public var adminTokensPath: String?
  /// Names a `Host` header may give for the admin API besides the listen host and the loopback
  /// names (`admin.host-names`, `--admin-host-name`): a DNS name, or an address of a wildcard
  /// listener.
  public var adminHostNames: [String] = []
  /// An admin request must be fully received within this of its first byte (else 408).
  public var adminRequestDeadlineMillis = 10_000
  public var journal = JournalOptions()
  /// Bound on request bytes being received, decoded or waiting for the journal.
  public var maxInFlightBytes = 256 << 20
  /// The largest request body, compressed or decompressed.
  public var maxRequestBytes = 16 << 20
  /// Open OTLP connections, OTLP/HTTP and OTLP/gRPC together (one budget, so neither protocol
  /// can starve the other); the admin listener has its own small budget.
  public var maxConnections = 1024
  /// Calls one OTLP/gRPC connection may have open at once.
  public var grpcMaxConcurrentStreams = 32
  /// An OTLP/gRPC connection is asked to go away after this, once its calls finish.
  public var maxConnectionAgeSeconds = 30 * 60
  /// Tenants the service takes; a request naming a new tenant past this is refused (403 /
  /// `PERMISSION_DENIED`) while every known tenant keeps being served. Each tenant costs open
  /// segment files, so this bounds descriptors and directories an attacker can make.
  public var maxTenants = 1000
  /// An idle keep-alive connection is closed after this.
  public var idleTimeoutSeconds = 60
  /// A request's headers and body must arrive within this (slow clients are cut off).
  public var requestTimeoutSeconds = 30
  /// Where tenants come from and which are taken; the header is also, lowercased, the gRPC
  /// metadata key.
  public var tenancy = TenantPolicy()
  /// Look-back of incidents declared without one.
  public var defaultLookbackSeconds = 15 * 60
  /// The most incidents active at once (`incidents.max-active`).
  public var maxActiveIncidents = IncidentManager.defaultMaxActiveIncidents
  /// The longest TTL an incident may ask for (`incidents.max-ttl`, default 7 days).
  public var maxIncidentTTLSeconds = Int(IncidentManager.defaultMaxTTLNanos / 1_000_000_000)
  /// The redaction policy file applied before anything reaches disk (`nil`: none).
  public var redactionPolicyPath: String?
  /// The tail-sampling policy file for the long-term archive (`nil`: the documented defaults).
  public var samplingPolicyPath: String?
  /// Disk bound of the long-term archive.
  public var archiveMaxBytes: Int64 = 8 << 30
  /// Webhooks and commands told of incidents (the `hooks:` section).
  public var hooks = HookConfiguration()
  /// Whether outbound notify hooks may run (always off in `airgap`).
  public var hooksAllowed = true
  /// TLS on every listener (`tls:` / `--tls-cert`, `--tls-key`, `--tls-client-ca`); `nil`: plaintext.
  public var tls: TLSFiles?
  /// Lets a listener bind a non-loopback address without TLS (`insecure-listen: true` /
  /// `--insecure-listen`). Off by default: OTLP bodies and admin tokens would cross the network
  /// readable and forgeable by anyone on the path.
  public var insecureListen = false
  /// Settings a file or a flag set, by key path; the rest come from the profile or the defaults
  /// (see ``effectiveSettings``).
  var explicitOrigins: [String: SettingOrigin] = [:]

  /// The preset of `profile`.
  public init(profile: CaptureProfile = .default) {
    self.profile = profile
    journal.ringMaxAgeSeconds = 3600
    journal.ringMaxBytes = 4 << 30
    switch profile {
    case .default:
      break
    case .forensic:
      journal.durability = .fsyncPerBatch
      journal.ringMaxAgeSeconds = 24 * 3600
      journal.ringMaxBytes = nil
      journal.maxSegmentAgeSeconds = 30
      journal.minFreeBytes = 1 << 30
    case .airgap:
      hooksAllowed = false
    }
  }

  /// Checks cross-field rules; the airgap profile refuses non-loopback listeners, and any
  /// profile refuses a non-loopback listener without TLS unless ``insecureListen`` is set.
  public func validate() throws(CaptureConfigurationError) {
    for row in Self.settingTable {
      if let problem = row.rangeProblem(self) { throw self.problem(row.key, problem) }
    }
    let listeners =
      [("otlp-http", otlpHTTP), ("otlp-grpc", otlpGRPC), ("admin", admin)] + (metrics.map { [("metrics", $0)] } ?? [])
    if profile == .airgap {
      for (name, address) in listeners where !address.isLoopback {
        throw problem("listeners.\(name)", "profile airgap listens on loopback only, but \(name) is \(address)")
      }
    }
    if tls == nil, !insecureListen {
      for (name, address) in listeners where !address.isLoopback {
        throw problem(
          "listeners.\(name)",
          "\(name) listens on \(address), which is not loopback, without TLS: give --tls-cert and --tls-key (tls.cert, tls.key), or --insecure-listen (insecure-listen: true) to accept plaintext from the network"
        )
      }
    }
    if let tls {
      guard !tls.certificatePath.isEmpty, !tls.keyPath.isEmpty else {
        throw problem(
          tls.certificatePath.isEmpty ? "tls.cert" : "tls.key",
          "TLS needs both a certificate (--tls-cert, tls.cert) and a key (--tls-key, tls.key)")
      }
    }
    guard maxRequestBytes >= 1024 else { throw problem("limits.max-request-bytes", "must be at least 1KiB") }
    guard maxRequestBytes <= 64 << 20 else {
      throw problem("limits.max-request-bytes", "must be at most 64MiB (a record is at most 16MiB)")
    }
    guard maxInFlightBytes >= 1 << 20 else { throw problem("limits.max-inflight-bytes", "must be at least 1MiB") }
    guard journal.maxSegmentBytes >= 64 << 10, journal.maxSegmentBytes <= 512 << 20 else {
      throw problem("journal.segment-max-bytes", "must be from 64KiB to 512MiB")
    }
    guard journal.maxSegmentAgeSeconds >= 1 else { throw problem("journal.segment-max-age", "must be at least 1s") }
    guard journal.syncIntervalMillis >= 1 else { throw problem("journal.sync-interval", "must be at least 1ms") }
    if let age = journal.ringMaxAgeSeconds, age < defaultLookbackSeconds {
      throw problem(
        "ring.max-age",
        "\(age)s must be at least incidents.default-lookback (\(defaultLookbackSeconds)s): a look-back cannot reach data the ring already dropped"
      )
    }
    guard maxConnections >= 1 else { throw problem("limits.max-connections", "must be at least 1") }
    guard grpcMaxConcurrentStreams >= 1 else {
      throw problem("limits.grpc-max-concurrent-streams", "must be at least 1")
    }
    guard maxConnectionAgeSeconds >= 1 else { throw problem("limits.max-connection-age", "must be at least 1s") }
    guard maxTenants >= 1 else { throw problem("limits.max-tenants", "must be at least 1") }
    guard maxActiveIncidents >= 1 else { throw problem("incidents.max-active", "must be at least 1") }
    guard maxIncidentTTLSeconds >= 1 else { throw problem("incidents.max-ttl", "must be at least 1s") }
    guard adminRequestDeadlineMillis >= 100 else {
      throw problem("admin.request-deadline", "must be at least 100ms")
    }
    for name in adminHostNames where name.isEmpty || name.utf8.count > 255 || name.contains(where: \.isWhitespace) {
      throw problem("admin.host-names", "\"\(name)\" is not a host name")
    }
    if let problem = TenantName.problem(with: tenancy.defaultTenant) {
      throw self.problem("tenancy.default-tenant", problem)
    }
    if AuditStream.isReserved(tenant: tenancy.defaultTenant) {
      throw problem("tenancy.default-tenant", "\(tenancy.defaultTenant) is reserved for the audit stream")
    }
    try validateIdentities()
  }

  /// `tenancy.identities` ties tenants to verified client certificates, so it needs mTLS, and
  /// every tenant it names must be one a request could be journaled under.
  private func validateIdentities() throws(CaptureConfigurationError) {
    guard !tenancy.identities.isEmpty else { return }
    guard tls?.clientCAPath != nil else {
      throw CaptureConfigurationError(
        "tenancy.identities maps client certificates to tenants, but client certificates are not verified: give --tls-client-ca (tls.client-ca) with --tls-cert and --tls-key"
      )
    }
    for (index, entry) in tenancy.identities.enumerated() {
      let field = "tenancy.identities[\(index)]"
      if let problem = entry.selectorProblem { throw CaptureConfigurationError("\(field): \(problem)") }
      guard !entry.tenants.isEmpty else {
        throw CaptureConfigurationError("\(field): certificate \"\(entry.certificate)\" lists no tenants")
      }
      for tenant in entry.tenants {
        if let problem = TenantName.problem(with: tenant) {
          throw CaptureConfigurationError("\(field).tenants: \(problem)")
        }
        if AuditStream.isReserved(tenant: tenant) {
          throw CaptureConfigurationError("\(field).tenants: \(tenant) is reserved for the audit stream")
        }
        if let allowed = tenancy.allowed, !allowed.contains(tenant) {
          throw CaptureConfigurationError(
            "\(field).tenants: \(tenant) is not in tenancy.tenants, so no request could be kept under it")
        }
      }
    }
  }

  // MARK: - YAML

  /// The profile a YAML document names, if any (read first, since it picks the preset).
  public static func profile(inYAML text: String, path: String) throws(CaptureConfigurationError) -> CaptureProfile? {
    let reader = ConfigurationYAML(path: path, example: "config/capture.example.yaml")
    guard let root = try reader.document(text) else { return nil }
    guard let name = try reader.section(root, "the document").first(where: { $0.0 == "profile" })?.1 else {
      return nil
    }
    guard let profile = CaptureProfile(rawValue: try reader.string(name, "profile")) else {
      throw CaptureConfigurationError("\(path): profile must be one of default, forensic, airgap")
    }
    return profile
  }

  /// `tenancy.identities`: a list of `{certificate: SELECTOR, tenants: [NAME, ...]}`. Names are
  /// checked here; ``validate()`` checks them against the rest of the configuration.
  static func identities(
    _ node: Node, _ field: String, _ reader: ConfigurationYAML<CaptureConfigurationError>
  ) throws(CaptureConfigurationError) -> SettingValue {
    let path = reader.path
    guard let sequence = node.sequence else {
      throw CaptureConfigurationError(
        "\(path): \(field) must be a list of {certificate: NAME, tenants: [TENANT, ...]}")
    }
    var entries: [IdentityTenants] = []
    for (index, item) in sequence.enumerated() {
      let entryField = "\(field)[\(index)]"
      var certificate: String?
      var tenants: [String]?
      for (name, value) in try reader.section(item, entryField) {
        switch name {
        case "certificate": certificate = try reader.string(value, "\(entryField).certificate")
        case "tenants":
          guard let names = value.sequence else {
            throw CaptureConfigurationError("\(path): \(entryField).tenants must be a list of tenant names")
          }
          var list: [String] = []
          for name in names {
            let tenant = try reader.string(name, "\(entryField).tenants")
            if !list.contains(tenant) { list.append(tenant) }
          }
          tenants = list
        default: throw reader.unknown("\(entryField).\(name)")
        }
      }
      guard let certificate, let tenants else {
        throw CaptureConfigurationError("\(path): \(entryField) needs both certificate and tenants")
      }
      entries.append(IdentityTenants(certificate: certificate, tenants: tenants))
    }
    return .identities(entries)
  }
}
