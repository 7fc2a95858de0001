import ArgumentParser
import Capture

/// `profile`: the capture presets and how they differ.
struct ProfileCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "profile",
    abstract: "List the capture profiles, show one, or compare two.",
    subcommands: [ProfileListCommand.self, ProfileShowCommand.self, ProfileDiffCommand.self])

  /// A profile named on the command line; an unknown name is a usage error listing the valid ones.
  static func named(_ name: String) throws -> CaptureProfile {
    guard let profile = CaptureProfile(rawValue: name) else {
      let valid = CaptureProfile.allCases.map(\.rawValue).joined(separator: ", ")
      throw CLIFailure.usage("unknown profile \"\(name)\"; the profiles are \(valid)")
    }
    return profile
  }
}

struct ProfileListCommand: ParsableCommand {
  static let configuration = CommandConfiguration(commandName: "list", abstract: "Print the profile names.")

  func run() throws {
    for profile in CaptureProfile.allCases { print(profile.rawValue) }
  }
}

struct ProfileShowCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "show", abstract: "Print every setting of a profile's preset as YAML, with its origin.")

  @Argument(help: "default, forensic or airgap.")
  var name: String

  func run() throws {
    print(CaptureConfiguration(profile: try ProfileCommand.named(name)).effectiveYAML, terminator: "")
  }
}

struct ProfileDiffCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "diff",
    abstract: "List each setting two profiles preset differently, with both values.",
    discussion: "One line per setting: KEY, then A's value, then B's. Nothing is printed when they agree.")

  @Argument(help: "The first profile.")
  var first: String

  @Argument(help: "The second profile.")
  var second: String

  func run() throws {
    let (a, b) = (try ProfileCommand.named(first), try ProfileCommand.named(second))
    let differences = CaptureConfiguration.differences(between: a, and: b)
    let width = differences.map(\.key.count).max() ?? 0
    let valueWidth = max(a.rawValue.count, differences.map(\.first.count).max() ?? 0)
    func padded(_ text: String, _ count: Int) -> String {
      text + String(repeating: " ", count: max(0, count - text.count))
    }
    if !differences.isEmpty {
      print("\(padded("setting", width))  \(padded(a.rawValue, valueWidth))  \(b.rawValue)")
    }
    for difference in differences {
      print("\(padded(difference.key, width))  \(padded(difference.first, valueWidth))  \(difference.second)")
    }
  }
}
