import Foundation
public import Incidents
public import Ingest
import Journal
import Manifest
import Receivers
public import Settings
import Yams

// The capture configuration's one key table. Each row is one setting: its YAML key, its flag if
// it has one, the kind of value it takes, where it is stored and how `--print-config` shows it.
// The YAML reader (`apply(yaml:path:)`), the flags (`apply(flag:_:)`) and `--print-config`
// (`effectiveSettings`) all walk this table, so a setting is added by adding its row (and, for a
// flag, the CLI's option that gives the value).

/// A capture setting's value as a flag or a configuration file gives it, before it is stored.
/// Both sources produce the same value for the same text, so a setting means the same wherever
/// it was written.
public enum SettingValue: Sendable, Equatable {
  /// A name, a path, or one of a setting's choices (`group-commit`).
  case text(String)
  case size(ByteCount)
  case duration(ConfiguredDuration)
  /// A listen address; `nil` turns an optional listener (`listeners.metrics`) off.
  case address(ListenAddress?)
  case count(Int)
  case bool(Bool)
  case names([String])
  /// The `hooks:` section, read whole.
  case hooks(HookConfiguration)
  /// `tenancy.identities`, read whole.
  case identities([IdentityTenants])
}

/// The kind of value a setting takes: how its YAML is read and what a flag must give.
enum SettingKind: Sendable {
  /// Free text, taken as written.
  case text
  /// A file; relative to the configuration file's directory when written there.
  case path
  /// One of these words.
  case choice([String])
  case size
  case duration
  case address
  /// An address, or `off`.
  case optionalAddress
  /// A whole number (written in files with the size syntax, as it always has been).
  case count
  case bool
  /// A list of names (`noun` in error messages), each checked by `check` (a problem, or `nil`).
  case names(noun: String, check: @Sendable (String) -> String?)
  /// A section read by its own reader.
  case section(
    @Sendable (Node, _ field: String, ConfigurationYAML<CaptureConfigurationError>) throws(CaptureConfigurationError) ->
      SettingValue)
}

/// One row of the key table.
struct CaptureSetting: Sendable {
  /// The YAML key path (`journal.sync-interval`), or a description for a setting only a profile
  /// chooses (``isFileKey`` false).
  let key: String
  /// The command-line flag that sets it, if any (`--sync-interval`).
  let flag: String?
  let kind: SettingKind
  /// Whether a configuration file can set it.
  let isFileKey: Bool
  /// Stores a value of ``kind``; returns what is wrong with it, or `nil` once stored.
  let store: @Sendable (inout CaptureConfiguration, SettingValue) -> String?
  /// The stored value as YAML text.
  let render: @Sendable (CaptureConfiguration) -> String
  /// What is wrong with the stored value's range, or `nil`. Parsing keeps sizes and durations in
  /// range, but the configuration can also be set through the API; ``CaptureConfiguration/validate()``
  /// asks every row, so the service's conversions (durations to nanoseconds) never overflow.
  let rangeProblem: @Sendable (CaptureConfiguration) -> String?

  init(
    _ key: String, flag: String? = nil, _ kind: SettingKind, isFileKey: Bool = true,
    store: @escaping @Sendable (inout CaptureConfiguration, SettingValue) -> String?,
    render: @escaping @Sendable (CaptureConfiguration) -> String,
    rangeProblem: @escaping @Sendable (CaptureConfiguration) -> String? = { _ in nil }
  ) {
    self.key = key
    self.flag = flag
    self.kind = kind
    self.isFileKey = isFileKey
    self.rangeProblem = rangeProblem
    self.store = store
    self.render = render
  }

  /// Reads the row's value from its YAML node, with errors naming `field` in `reader`'s file.
  func read(_ node: Node, _ reader: ConfigurationYAML<CaptureConfigurationError>) throws(CaptureConfigurationError)
    -> SettingValue
  {
    let path = reader.path
    switch kind {
    case .text:
      return .text(try reader.string(node, key))
    case .path:
      return .text(reader.relative(try reader.string(node, key)))
    case .choice(let words):
      let text = try reader.string(node, key)
      guard words.contains(text) else {
        throw CaptureConfigurationError("\(path): \(key) must be \(Self.alternatives(words))")
      }
      return .text(text)
    case .size:
      return .size(try reader.size(node, key))
    case .duration:
      return .duration(try reader.duration(node, key))
    case .address, .optionalAddress:
      let text = try reader.string(node, key)
      if case .optionalAddress = kind, text == ListenAddress.off { return .address(nil) }
      do {
        return .address(try ListenAddress(parsing: text))
      } catch {
        throw CaptureConfigurationError("\(path): \(key): \(error.message)")
      }
    case .count:
      let text = try reader.string(node, key)
      guard let count = try reader.size(node, key).intValue else { throw reader.error(key, .notSize(text)) }
      return .count(count)
    case .bool:
      guard let flag = node.bool else { throw CaptureConfigurationError("\(path): \(key) must be true or false") }
      return .bool(flag)
    case .names(let noun, let check):
      guard let sequence = node.sequence else {
        throw CaptureConfigurationError("\(path): \(key) must be a list of \(noun)")
      }
      var names: [String] = []
      for item in sequence {
        let name = try reader.string(item, key)
        if let problem = check(name) { throw CaptureConfigurationError("\(path): \(key): \(problem)") }
        names.append(name)
      }
      return .names(names)
    case .section(let readSection):
      return try readSection(node, key, reader)
    }
  }

  /// `a`, `a or b`, `a, b or c`.
  static func alternatives(_ words: [String]) -> String {
    guard let last = words.last, words.count > 1 else { return words.first ?? "" }
    return words.dropLast().joined(separator: ", ") + " or " + last
  }
}

// MARK: - Row builders

extension CaptureSetting {
  typealias Field<Value> = any WritableKeyPath<CaptureConfiguration, Value> & Sendable

  /// The answer of `store` for a value of the wrong kind: a flag wired to the wrong row, which
  /// the key table's tests catch.
  static func wrongKind(_ value: SettingValue) -> String { "does not take \(value)" }

  static func text(_ key: String, flag: String? = nil, _ field: Field<String>) -> Self {
    Self(key, flag: flag, .text) { configuration, value in
      guard case .text(let text) = value else { return wrongKind(value) }
      configuration[keyPath: field] = text
      return nil
    } render: {
      scalar($0[keyPath: field])
    }
  }

  static func text(_ key: String, flag: String? = nil, _ kind: SettingKind, _ field: Field<String?>) -> Self {
    Self(key, flag: flag, kind) { configuration, value in
      guard case .text(let text) = value else { return wrongKind(value) }
      configuration[keyPath: field] = text
      return nil
    } render: {
      $0[keyPath: field].map(scalar) ?? "null"
    }
  }

  static func choice<Choice: RawRepresentable & Sendable>(
    _ key: String, flag: String? = nil, _ choices: [Choice], _ field: Field<Choice>
  ) -> Self where Choice.RawValue == String {
    Self(key, flag: flag, .choice(choices.map(\.rawValue))) { configuration, value in
      guard case .text(let text) = value, let choice = Choice(rawValue: text) else { return wrongKind(value) }
      configuration[keyPath: field] = choice
      return nil
    } render: {
      $0[keyPath: field].rawValue
    }
  }

  /// What is wrong with a stored size: parsing never gives a negative one, the API could.
  static func sizeProblem(_ bytes: Int64?) -> String? {
    guard let bytes, bytes < 0 else { return nil }
    return "\(bytes) is negative"
  }

  static func size(_ key: String, flag: String? = nil, _ field: Field<Int64>) -> Self {
    Self(key, flag: flag, .size) { configuration, value in
      guard case .size(let size) = value else { return wrongKind(value) }
      configuration[keyPath: field] = size.bytes
      return nil
    } render: {
      ByteSize.text($0[keyPath: field])
    } rangeProblem: {
      sizeProblem($0[keyPath: field])
    }
  }

  static func size(_ key: String, flag: String? = nil, _ field: Field<Int64?>) -> Self {
    Self(key, flag: flag, .size) { configuration, value in
      guard case .size(let size) = value else { return wrongKind(value) }
      configuration[keyPath: field] = size.bytes
      return nil
    } render: {
      $0[keyPath: field].map(ByteSize.text) ?? "null"
    } rangeProblem: {
      sizeProblem($0[keyPath: field])
    }
  }

  static func size(_ key: String, flag: String? = nil, _ field: Field<Int>) -> Self {
    Self(key, flag: flag, .size) { configuration, value in
      guard case .size(let size) = value else { return wrongKind(value) }
      guard let bytes = size.intValue else { return "\(size.bytes) bytes do not fit this platform's Int" }
      configuration[keyPath: field] = bytes
      return nil
    } render: {
      ByteSize.text(Int64($0[keyPath: field]))
    } rangeProblem: {
      sizeProblem(Int64($0[keyPath: field]))
    }
  }

  /// How a duration setting keeps its value.
  enum DurationUnit {
    case milliseconds
    /// Whole seconds, any remainder dropped.
    case seconds
    /// Whole seconds, and at least 1: a setting where 0 would stop the service working.
    case positiveSeconds

    func stored(_ duration: ConfiguredDuration) -> Int {
      switch self {
      case .milliseconds: duration.milliseconds
      case .seconds: duration.wholeSeconds
      case .positiveSeconds: max(1, duration.wholeSeconds)
      }
    }

    /// What is wrong with `value` as a stored duration: outside 0 to 100 years, the range
    /// every parsed duration is in and whose nanoseconds fit a `UInt64`.
    func problem(_ value: Int?) -> String? {
      guard let value else { return nil }
      let maximum = self == .milliseconds ? DurationText.maximumMilliseconds : DurationText.maximumMilliseconds / 1000
      guard !(0...maximum).contains(value) else { return nil }
      return "\(render(value)) is outside 0s...\(DurationText.text(milliseconds: DurationText.maximumMilliseconds))"
    }

    func render(_ value: Int) -> String {
      self == .milliseconds ? DurationText.text(milliseconds: value) : DurationText.text(seconds: value)
    }
  }

  static func duration(_ key: String, flag: String? = nil, _ unit: DurationUnit, _ field: Field<Int>) -> Self {
    Self(key, flag: flag, .duration) { configuration, value in
      guard case .duration(let duration) = value else { return wrongKind(value) }
      configuration[keyPath: field] = unit.stored(duration)
      return nil
    } render: {
      unit.render($0[keyPath: field])
    } rangeProblem: {
      unit.problem($0[keyPath: field])
    }
  }

  static func duration(_ key: String, flag: String? = nil, _ unit: DurationUnit, _ field: Field<Int?>) -> Self {
    Self(key, flag: flag, .duration) { configuration, value in
      guard case .duration(let duration) = value else { return wrongKind(value) }
      configuration[keyPath: field] = unit.stored(duration)
      return nil
    } render: {
      $0[keyPath: field].map(unit.render) ?? "null"
    } rangeProblem: {
      unit.problem($0[keyPath: field])
    }
  }

  static func address(_ key: String, flag: String? = nil, _ field: Field<ListenAddress>) -> Self {
    Self(key, flag: flag, .address) { configuration, value in
      guard case .address(let address?) = value else { return wrongKind(value) }
      configuration[keyPath: field] = address
      return nil
    } render: {
      scalar($0[keyPath: field].description)
    }
  }

  static func address(_ key: String, flag: String? = nil, _ field: Field<ListenAddress?>) -> Self {
    Self(key, flag: flag, .optionalAddress) { configuration, value in
      guard case .address(let address) = value else { return wrongKind(value) }
      configuration[keyPath: field] = address
      return nil
    } render: {
      $0[keyPath: field].map { scalar($0.description) } ?? ListenAddress.off
    }
  }

  static func count(_ key: String, flag: String? = nil, _ field: Field<Int>) -> Self {
    Self(key, flag: flag, .count) { configuration, value in
      guard case .count(let count) = value else { return wrongKind(value) }
      configuration[keyPath: field] = count
      return nil
    } render: {
      "\($0[keyPath: field])"
    }
  }

  /// One of the `tls` files. The section is read whole (see ``CaptureConfiguration/apply(yaml:path:)``);
  /// a flag replaces one file and keeps the others.
  static func tlsFile(_ key: String, flag: String, _ field: any WritableKeyPath<TLSFiles, String> & Sendable) -> Self {
    Self(key, flag: flag, .path) { configuration, value in
      guard case .text(let file) = value else { return wrongKind(value) }
      var files = configuration.tls ?? TLSFiles(certificatePath: "", keyPath: "", clientCAPath: nil)
      files[keyPath: field] = file
      configuration.tls = files
      return nil
    } render: {
      $0.tls.map { scalar($0[keyPath: field]) } ?? "null"
    }
  }

  // MARK: Rendering

  static func scalar(_ text: String) -> String {
    let plain =
      !text.isEmpty && text.allSatisfy { $0.isLetter || $0.isNumber || "._/-:@".contains($0) }
      && !["null", "true", "false", "~", "yes", "no"].contains(text.lowercased())
    guard !plain else { return text }
    let escaped = text.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"")
    return "\"\(escaped)\""
  }

  static func list(_ items: [String]) -> String {
    "[" + items.map(scalar).joined(separator: ", ") + "]"
  }

  static func hooksSummary(_ hooks: HookConfiguration) -> String {
    // URLs and argv only: enough to see what is told of incidents, and still a loadable section.
    guard !hooks.isEmpty else { return "{}" }
    let webhooks = hooks.webhooks.map { "{url: \(scalar($0.url.description))}" }
    let commands = hooks.commands.map { "{argv: \(list($0.argv))}" }
    return "{webhooks: [\(webhooks.joined(separator: ", "))], commands: [\(commands.joined(separator: ", "))]}"
  }
}

// MARK: - The table

extension CaptureConfiguration {
  /// Every capture setting, in the order of `config/capture.example.yaml` (and of
  /// `--print-config`).
  static let settingTable: [CaptureSetting] = [
    CaptureSetting("profile", flag: "--profile", .choice(CaptureProfile.allCases.map(\.rawValue))) { _, value in
      // The profile picks the preset before anything else is read (`profile(inYAML:path:)` and
      // the CLI); storing it again here would let the file undo `--profile`.
      guard case .text = value else { return CaptureSetting.wrongKind(value) }
      return nil
    } render: {
      $0.profile.rawValue
    },
    .text("data", flag: "--data", \.dataDirectory),
    .text("node-id", flag: "--node-id", .text, \.nodeID),
    .text("redaction", flag: "--redaction-policy", .path, \.redactionPolicyPath),
    .text("sampling", flag: "--sampling-policy", .path, \.samplingPolicyPath),
    .size("archive.max-bytes", \.archiveMaxBytes),
    .address("listeners.otlp-http", flag: "--otlp-http", \.otlpHTTP),
    .address("listeners.otlp-grpc", flag: "--otlp-grpc", \.otlpGRPC),
    .address("listeners.admin", flag: "--admin", \.admin),
    .address("listeners.metrics", flag: "--metrics", \.metrics),
    .tlsFile("tls.cert", flag: "--tls-cert", \.certificatePath),
    .tlsFile("tls.key", flag: "--tls-key", \.keyPath),
    CaptureSetting("tls.client-ca", flag: "--tls-client-ca", .path) { configuration, value in
      guard case .text(let file) = value else { return CaptureSetting.wrongKind(value) }
      var files = configuration.tls ?? TLSFiles(certificatePath: "", keyPath: "", clientCAPath: nil)
      files.clientCAPath = file
      configuration.tls = files
      return nil
    } render: {
      $0.tls?.clientCAPath.map(CaptureSetting.scalar) ?? "null"
    },
    CaptureSetting("insecure-listen", flag: "--insecure-listen", .bool) { configuration, value in
      guard case .bool(let flag) = value else { return CaptureSetting.wrongKind(value) }
      configuration.insecureListen = flag
      return nil
    } render: {
      $0.insecureListen ? "true" : "false"
    },
    .text("admin.tokens", flag: "--admin-tokens", .path, \.adminTokensPath),
    CaptureSetting("admin.host-names", flag: "--admin-host-name", .names(noun: "host names", check: { _ in nil })) {
      configuration, value in
      guard case .names(let names) = value else { return CaptureSetting.wrongKind(value) }
      configuration.adminHostNames = names
      return nil
    } render: {
      CaptureSetting.list($0.adminHostNames)
    },
    .duration("admin.request-deadline", .milliseconds, \.adminRequestDeadlineMillis),
    .choice("journal.durability", flag: "--durability", DurabilityPolicy.allCases, \.journal.durability),
    .duration("journal.sync-interval", flag: "--sync-interval", .milliseconds, \.journal.syncIntervalMillis),
    .size("journal.segment-max-bytes", flag: "--segment-max-bytes", \.journal.maxSegmentBytes),
    .duration("journal.segment-max-age", flag: "--segment-max-age", .positiveSeconds, \.journal.maxSegmentAgeSeconds),
    .size("journal.max-bytes", flag: "--max-journal-bytes", \.journal.maxJournalBytes),
    .size("journal.min-free-bytes", flag: "--min-free-bytes", \.journal.minFreeBytes),
    .size("limits.max-inflight-bytes", flag: "--max-inflight-bytes", \.maxInFlightBytes),
    .size("limits.max-request-bytes", flag: "--max-request-bytes", \.maxRequestBytes),
    .count("limits.max-connections", flag: "--max-connections", \.maxConnections),
    .count("limits.grpc-max-concurrent-streams", \.grpcMaxConcurrentStreams),
    .duration("limits.max-connection-age", .seconds, \.maxConnectionAgeSeconds),
    .count("limits.max-tenants", flag: "--max-tenants", \.maxTenants),
    .duration("limits.idle-timeout", .seconds, \.idleTimeoutSeconds),
    .duration("limits.request-timeout", flag: "--request-timeout", .positiveSeconds, \.requestTimeoutSeconds),
    .text("tenancy.header", \.tenancy.header),
    .text("tenancy.resource-attribute", .text, \.tenancy.resourceAttribute),
    .text("tenancy.default-tenant", \.tenancy.defaultTenant),
    CaptureSetting("tenancy.tenants", .names(noun: "tenant names", check: TenantName.problem(with:))) {
      configuration, value in
      guard case .names(let names) = value else { return CaptureSetting.wrongKind(value) }
      configuration.tenancy.allowed = Set(names)
      return nil
    } render: {
      $0.tenancy.allowed.map { CaptureSetting.list($0.sorted()) } ?? "null"
    },
    .choice("tenancy.unknown", [TenantPolicy.UnknownTenant.reject, .mapToDefault], \.tenancy.unknown),
    CaptureSetting("tenancy.identities", .section(CaptureConfiguration.identities)) { configuration, value in
      guard case .identities(let entries) = value else { return CaptureSetting.wrongKind(value) }
      configuration.tenancy.identities = entries
      return nil
    } render: { configuration in
      let entries = configuration.tenancy.identities.map {
        "{certificate: \(CaptureSetting.scalar($0.certificate)), tenants: \(CaptureSetting.list($0.tenants))}"
      }
      return "[" + entries.joined(separator: ", ") + "]"
    },
    .duration("ring.max-age", flag: "--ring-max-age", .positiveSeconds, \.journal.ringMaxAgeSeconds),
    .size("ring.max-bytes", flag: "--ring-max-bytes", \.journal.ringMaxBytes),
    .duration("incidents.default-lookback", flag: "--default-lookback", .seconds, \.defaultLookbackSeconds),
    .count("incidents.max-active", \.maxActiveIncidents),
    .duration("incidents.max-ttl", .seconds, \.maxIncidentTTLSeconds),
    CaptureSetting(
      "hooks",
      .section({ node, field, reader throws(CaptureConfigurationError) in
        .hooks(try HookConfiguration(node: node, path: reader.path, field: field))
      })
    ) { configuration, value in
      guard case .hooks(let hooks) = value else { return CaptureSetting.wrongKind(value) }
      configuration.hooks = hooks
      return nil
    } render: {
      CaptureSetting.hooksSummary($0.hooks)
    },
    // Not a file key: only the airgap profile turns outbound hooks off.
    CaptureSetting("outbound hooks", .text, isFileKey: false) { _, value in
      CaptureSetting.wrongKind(value)
    } render: {
      $0.hooksAllowed ? "allowed" : "refused"
    },
  ]

  /// The sections of the configuration file (`journal:`, `limits:`...): the first parts of the
  /// dotted keys.
  static let settingSections: Set<String> = Set(
    settingTable.filter(\.isFileKey).compactMap { row in
      row.key.firstIndex(of: ".").map { String(row.key[..<$0]) }
    })

  /// The row of a file key.
  static func setting(key: String) -> CaptureSetting? {
    settingTable.first { $0.isFileKey && $0.key == key }
  }

  /// The row a flag sets.
  static func setting(flag: String) -> CaptureSetting? {
    settingTable.first { $0.flag == flag }
  }

  /// Sets the setting `flag` names from a command-line value, and records the flag as its origin.
  ///
  /// - Throws: ``CaptureConfigurationError`` naming the flag when it names no setting or the
  ///   value is not one the setting takes.
  public mutating func apply(flag: String, _ value: SettingValue) throws(CaptureConfigurationError) {
    guard let row = Self.setting(flag: flag) else {
      throw CaptureConfigurationError("\(flag) is not a capture setting")
    }
    if let problem = row.store(&self, value) { throw CaptureConfigurationError("\(flag): \(problem)") }
    explicitOrigins[row.key] = .flag(flag)
  }

  /// Applies a YAML configuration document over this configuration, each key through its row of
  /// the key table, recording the file as the origin of every setting it names. Unknown keys are
  /// errors.
  public mutating func apply(yaml text: String, path: String) throws(CaptureConfigurationError) {
    let reader = ConfigurationYAML(path: path, example: "config/capture.example.yaml")
    guard let root = try reader.document(text) else { return }
    for (key, value) in try reader.section(root, "the document") {
      // A top-level key is a setting of its own (`data`, `hooks`) or a section; a dotted key
      // written flat (`journal.durability: interval`) is neither.
      if !key.contains("."), let row = Self.setting(key: key) {
        try apply(row, value, reader)
        continue
      }
      guard Self.settingSections.contains(key) else { throw reader.unknown(key) }
      // `tls:` names a certificate and its key together: a file's section replaces the whole
      // TLS setup rather than mixing with an earlier one.
      if key == "tls" { tls = nil }
      for (name, entry) in try reader.section(value, key) {
        guard let row = Self.setting(key: "\(key).\(name)") else { throw reader.unknown("\(key).\(name)") }
        try apply(row, entry, reader)
      }
      if key == "tls" {
        guard let tls, !tls.certificatePath.isEmpty, !tls.keyPath.isEmpty else {
          throw CaptureConfigurationError("\(path): tls needs both cert and key (PEM files)")
        }
        for name in ["cert", "key", "client-ca"] { explicitOrigins["tls.\(name)"] = .file(path) }
      }
    }
  }

  private mutating func apply(
    _ row: CaptureSetting, _ node: Node, _ reader: ConfigurationYAML<CaptureConfigurationError>
  ) throws(CaptureConfigurationError) {
    let value = try row.read(node, reader)
    if let problem = row.store(&self, value) {
      throw CaptureConfigurationError("\(reader.path): \(row.key): \(problem)")
    }
    explicitOrigins[row.key] = .file(reader.path)
  }

  /// The value a configuration file gives `key` as `text` (its YAML scalar), for comparing a
  /// file's reading of a value with a flag's.
  static func fileValue(key: String, text: String) throws(CaptureConfigurationError) -> SettingValue? {
    guard let row = setting(key: key) else { return nil }
    let reader = ConfigurationYAML(path: "value", example: "config/capture.example.yaml")
    guard let node = try reader.document(text) else { return nil }
    return try row.read(node, reader)
  }
}
