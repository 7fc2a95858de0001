import Foundation
import Settings

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
  /// The effective configuration, every setting with where its value came from: a flag or the
  /// file if one set it, else the profile if its preset differs from the default profile's,
  /// else the default.
  public var effectiveSettings: [EffectiveSetting] {
    let preset = CaptureConfiguration(profile: profile)
    let defaults = CaptureConfiguration(profile: .default)
    return Self.settingTable.map { row in
      let (key, render) = (row.key, row.render)
      let value = render(self)
      let origin: SettingOrigin
      if let explicit = explicitOrigins[key] {
        origin = explicit
      } else if key != "profile", render(preset) != render(defaults) {
        origin = .profile(profile)
      } else {
        origin = .default
      }
      return EffectiveSetting(key: key, value: value, origin: origin, isFileKey: row.isFileKey)
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
    return settingTable.compactMap { row in
      guard row.key != "profile" else { return nil }
      let (a, b) = (row.render(left), row.render(right))
      return a == b ? nil : ProfileDifference(key: row.key, first: a, second: b)
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
}
