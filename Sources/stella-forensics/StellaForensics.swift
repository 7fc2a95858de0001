import ArgumentParser
import Foundation

/// The `stella-forensics` command: forensic evidence of OpenTelemetry traffic.
@main
struct StellaForensics: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "stella-forensics",
    abstract: "Keep signed, verifiable forensic evidence of OpenTelemetry traffic.",
    discussion: """
      Exit codes: 0 success; 1 evidence failed verification (tampered, missing, untrusted);
      2 usage, configuration or input error; 3 other runtime failure.
      """,
    version: "0.1.0",
    subcommands: [
      KeygenCommand.self, CaptureCommand.self, IncidentCommand.self, ImportCommand.self, BundleCommand.self,
      SignCommand.self, VerifyCommand.self, InspectCommand.self, ReportCommand.self, ReplayCommand.self,
      ExportCommand.self, KitCommand.self, ProfileCommand.self,
    ]
  )

  /// Runs the command line, mapping every failure to the documented exit codes in one place.
  static func main() async {
    let code: Int32
    do {
      var command = try parseAsRoot()
      if var asyncCommand = command as? any AsyncParsableCommand {
        try await asyncCommand.run()
      } else {
        try command.run()
      }
      code = 0
    } catch let failure as CLIFailure {
      FileHandle.standardError.write(Data("error: \(failure.message)\n".utf8))
      code = failure.exitCode.rawValue
    } catch let exitCode as ExitCode {
      code = exitCode.rawValue
    } catch {
      // Argument parsing: help and version succeed; everything else is a usage error (2).
      if exitCode(for: error) == .success {
        print(fullMessage(for: error))
        code = 0
      } else {
        // ArgumentParser's message already starts with "Error:" and ends with the usage line.
        FileHandle.standardError.write(Data("\(fullMessage(for: error))\n".utf8))
        code = CLIFailure.usageExitCode.rawValue
      }
    }
    Foundation.exit(code)
  }
}
