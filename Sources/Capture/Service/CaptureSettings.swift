import Foundation
import Incidents
import Settings
import Yams

/// Where one setting of the effective configuration came from.
public enum SettingOrigin: Sendable, Equatable, CustomStringConvertible {
  /// Nothing set it: the built-in default.
  case `default`
  /// The chosen profile's preset, which differs here from the default profile.
  case profile(CaptureProfile)
  /// The `--config` file at this path.
  case file(String)
  /// This command-line flag.
  case flag(String)

  public var description: String {
    switch self {
    case .default: "default"
    case .profile(let profile): "profile \(profile.rawValue)"
    case .file(let path): "file \(path)"
    case .flag(let flag): "flag \(flag)"
    }
  }
}

/// One setting of the effective configuration, as `--print-config` shows it.
public struct EffectiveSetting: Sendable, Equatable {
  /// The YAML key path (`journal.durability`), or a description for a setting only a profile
  /// chooses (``isFileKey`` false).
  public var key: String
  /// The value as YAML text.
  public var value: String
  /// Where the value came from.
  public var origin: SettingOrigin
  /// Whether the key can be written in a configuration file.
  public var isFileKey: Bool
}

/// A setting two profiles preset differently (`profile diff`).
public struct ProfileDifference: Sendable, Equatable {
  /// The setting's key path, as in ``EffectiveSetting/key``.
  public var key: String
  /// The first profile's value, as YAML text.
  public var first: String
  /// The second profile's value, as YAML text.
  public var second: String
}

extension CaptureConfiguration {
  /// Every setting of the configuration with its value rendered as YAML text, in the order of
  /// `config/capture.example.yaml`. One table serves `--print-config`, `profile diff` and the
  /// origins, so a new setting added here shows up in all three.
  private static let renderers: [(key: String, isFileKey: Bool, render: @Sendable (CaptureConfiguration) -> String)] = [
    ("profile", true, { $0.profile.rawValue }),
    ("data", true, { scalar($0.dataDirectory) }),
    ("node-id", true, { $0.nodeID.map(scalar) ?? "null" }),
    ("redaction", true, { $0.redactionPolicyPath.map(scalar) ?? "null" }),
    ("sampling", true, { $0.samplingPolicyPath.map(scalar) ?? "null" }),
    ("archive.max-bytes", true, { size($0.archiveMaxBytes) }),
    ("listeners.otlp-http", true, { scalar($0.otlpHTTP.description) }),
    ("listeners.otlp-grpc", true, { scalar($0.otlpGRPC.description) }),
    ("listeners.admin", true, { scalar($0.admin.description) }),
    ("listeners.metrics", true, { $0.metrics.map { scalar($0.description) } ?? ListenAddress.off }),
    ("tls.cert", true, { $0.tls.map { scalar($0.certificatePath) } ?? "null" }),
    ("tls.key", true, { $0.tls.map { scalar($0.keyPath) } ?? "null" }),
    ("tls.client-ca", true, { $0.tls?.clientCAPath.map(scalar) ?? "null" }),
    ("insecure-listen", true, { $0.insecureListen ? "true" : "false" }),
    ("admin.tokens", true, { $0.adminTokensPath.map(scalar) ?? "null" }),
    ("admin.host-names", true, { list($0.adminHostNames) }),
    ("admin.request-deadline", true, { milliseconds($0.adminRequestDeadlineMillis) }),
    ("journal.durability", true, { $0.journal.durability.rawValue }),
    ("journal.sync-interval", true, { milliseconds($0.journal.syncIntervalMillis) }),
    ("journal.segment-max-bytes", true, { size(Int64($0.journal.maxSegmentBytes)) }),
    ("journal.segment-max-age", true, { seconds($0.journal.maxSegmentAgeSeconds) }),
    ("journal.max-bytes", true, { size($0.journal.maxJournalBytes) }),
    ("journal.min-free-bytes", true, { size($0.journal.minFreeBytes) }),
    ("limits.max-inflight-bytes", true, { size(Int64($0.maxInFlightBytes)) }),
    ("limits.max-request-bytes", true, { size(Int64($0.maxRequestBytes)) }),
    ("limits.max-connections", true, { "\($0.maxConnections)" }),
    ("limits.grpc-max-concurrent-streams", true, { "\($0.grpcMaxConcurrentStreams)" }),
    ("limits.max-connection-age", true, { seconds($0.maxConnectionAgeSeconds) }),
    ("limits.max-tenants", true, { "\($0.maxTenants)" }),
    ("limits.idle-timeout", true, { seconds($0.idleTimeoutSeconds) }),
    ("limits.request-timeout", true, { seconds($0.requestTimeoutSeconds) }),
    ("tenancy.header", true, { scalar($0.tenancy.header) }),
    ("tenancy.resource-attribute", true, { $0.tenancy.resourceAttribute.map(scalar) ?? "null" }),
    ("tenancy.default-tenant", true, { scalar($0.tenancy.defaultTenant) }),
    ("tenancy.tenants", true, { $0.tenancy.allowed.map { list($0.sorted()) } ?? "null" }),
    ("tenancy.unknown", true, { $0.tenancy.unknown.rawValue }),
    (
      "tenancy.identities", true,
      { configuration in
        let entries = configuration.tenancy.identities.map {
          "{certificate: \(scalar($0.certificate)), tenants: \(list($0.tenants))}"
        }
        return "[" + entries.joined(separator: ", ") + "]"
      }
    ),
    ("ring.max-age", true, { $0.journal.ringMaxAgeSeconds.map(seconds) ?? "null" }),
    ("ring.max-bytes", true, { $0.journal.ringMaxBytes.map(size) ?? "null" }),
    ("incidents.default-lookback", true, { seconds($0.defaultLookbackSeconds) }),
    ("incidents.max-active", true, { "\($0.maxActiveIncidents)" }),
    ("incidents.max-ttl", true, { seconds($0.maxIncidentTTLSeconds) }),
    ("hooks", true, { hooksSummary($0.hooks) }),
    // Not a file key: only the airgap profile turns outbound hooks off.
    ("outbound hooks", false, { $0.hooksAllowed ? "allowed" : "refused" }),
  ]

  /// The effective configuration, every setting with where its value came from: a flag or the
  /// file if one set it, else the profile if its preset differs from the default profile's,
  /// else the default.
  public var effectiveSettings: [EffectiveSetting] {
    let preset = CaptureConfiguration(profile: profile)
    let defaults = CaptureConfiguration(profile: .default)
    return Self.renderers.map { key, isFileKey, render in
      let value = render(self)
      let origin: SettingOrigin
      if let explicit = explicitOrigins[key] {
        origin = explicit
      } else if key != "profile", render(preset) != render(defaults) {
        origin = .profile(profile)
      } else {
        origin = .default
      }
      return EffectiveSetting(key: key, value: value, origin: origin, isFileKey: isFileKey)
    }
  }

  /// The effective configuration as a YAML document, each value followed by a comment naming
  /// its origin. Unset settings, and settings no file can set, are comments, so the document
  /// loads back as `--config` to the same values.
  public var effectiveYAML: String {
    var lines = ["# effective capture configuration; each value is followed by where it came from"]
    var sections: [(name: String?, settings: [EffectiveSetting])] = []
    for setting in effectiveSettings {
      let parts = setting.key.split(separator: ".", maxSplits: 1).map(String.init)
      let section = setting.isFileKey && parts.count == 2 ? parts[0] : nil
      if let last = sections.last, last.name == section, section != nil {
        sections[sections.count - 1].settings.append(setting)
      } else {
        sections.append((section, [setting]))
      }
    }
    for (name, settings) in sections {
      guard let name else {
        for setting in settings { lines.append(Self.line(setting, name: setting.key, indent: "")) }
        continue
      }
      let unset = settings.allSatisfy { $0.value == "null" }
      lines.append(unset ? "# \(name):" : "\(name):")
      for setting in settings {
        let child = String(setting.key.dropFirst(name.count + 1))
        lines.append(Self.line(setting, name: child, indent: unset ? "#   " : "  "))
      }
    }
    return lines.joined(separator: "\n") + "\n"
  }

  private static func line(_ setting: EffectiveSetting, name: String, indent: String) -> String {
    if !setting.isFileKey { return "# \(name): \(setting.value)  (\(setting.origin))" }
    if setting.value == "null" {
      let prefix = indent.hasPrefix("#") ? indent : indent + "# "
      return "\(prefix)\(name):  # not set (\(setting.origin))"
    }
    return "\(indent)\(name): \(setting.value)  # \(setting.origin)"
  }

  /// The settings two profiles preset differently, with each one's value.
  public static func differences(between first: CaptureProfile, and second: CaptureProfile) -> [ProfileDifference] {
    let left = CaptureConfiguration(profile: first)
    let right = CaptureConfiguration(profile: second)
    return renderers.compactMap { key, _, render in
      guard key != "profile" else { return nil }
      let (a, b) = (render(left), render(right))
      return a == b ? nil : ProfileDifference(key: key, first: a, second: b)
    }
  }

  /// Sets a value from a command-line flag and records the flag as its origin.
  public mutating func set<Value>(
    _ field: WritableKeyPath<CaptureConfiguration, Value>, to value: Value, key: String, flag: String
  ) {
    self[keyPath: field] = value
    explicitOrigins[key] = .flag(flag)
  }

  /// Records a flag as the origin of a setting the caller set itself.
  public mutating func noteFlag(_ flag: String, setting key: String) {
    explicitOrigins[key] = .flag(flag)
  }

  /// An error about one setting, naming its key and, when a flag or file set it, that too.
  func problem(_ key: String, _ message: String) -> CaptureConfigurationError {
    switch explicitOrigins[key] {
    case .flag(let flag): CaptureConfigurationError("\(key) (\(flag)): \(message)")
    case .file(let path): CaptureConfigurationError("\(key) (in \(path)): \(message)")
    default: CaptureConfigurationError("\(key): \(message)")
    }
  }

  /// Records the keys a YAML document sets as coming from `path`.
  mutating func noteFileKeys(_ root: [(String, Node)], path: String) {
    for (key, value) in root {
      if key == "tls" {
        for name in ["cert", "key", "client-ca"] { explicitOrigins["tls.\(name)"] = .file(path) }
      } else if key != "hooks", let mapping = value.mapping {
        for (name, _) in mapping {
          if let name = name.string { explicitOrigins["\(key).\(name)"] = .file(path) }
        }
      } else {
        explicitOrigins[key] = .file(path)
      }
    }
  }

  private static func scalar(_ text: String) -> String {
    let plain =
      !text.isEmpty && text.allSatisfy { $0.isLetter || $0.isNumber || "._/-:@".contains($0) }
      && !["null", "true", "false", "~", "yes", "no"].contains(text.lowercased())
    guard !plain else { return text }
    let escaped = text.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"")
    return "\"\(escaped)\""
  }

  private static func list(_ items: [String]) -> String {
    "[" + items.map(scalar).joined(separator: ", ") + "]"
  }

  private static func size(_ bytes: Int64) -> String {
    for (suffix, shift) in [("TiB", 40), ("GiB", 30), ("MiB", 20), ("KiB", 10)]
    where bytes >= Int64(1) << shift && bytes % (Int64(1) << shift) == 0 {
      return "\(bytes >> shift)\(suffix)"
    }
    return "\(bytes)"
  }

  private static func seconds(_ value: Int) -> String {
    if value > 0, value % 3600 == 0 { return "\(value / 3600)h" }
    if value > 0, value % 60 == 0 { return "\(value / 60)m" }
    return "\(value)s"
  }

  private static func milliseconds(_ value: Int) -> String {
    value > 0 && value % 1000 == 0 ? seconds(value / 1000) : "\(value)ms"
  }

  private static func hooksSummary(_ hooks: HookConfiguration) -> String {
    // URLs and argv only: enough to see what is told of incidents, and still a loadable section.
    guard !hooks.isEmpty else { return "{}" }
    let webhooks = hooks.webhooks.map { "{url: \(scalar($0.url.description))}" }
    let commands = hooks.commands.map { "{argv: \(list($0.argv))}" }
    return "{webhooks: [\(webhooks.joined(separator: ", "))], commands: [\(commands.joined(separator: ", "))]}"
  }
}
