import ArgumentParser
import EvidenceIO
import Manifest

/// A failure the CLI reports as one line on standard error, with its exit code.
struct CLIFailure: Error {
  static let verificationExitCode = ExitCode(1)
  static let usageExitCode = ExitCode(2)
  static let runtimeExitCode = ExitCode(3)

  var exitCode: ExitCode
  var message: String

  /// Bad usage, configuration or input (exit 2).
  static func usage(_ message: String) -> CLIFailure { CLIFailure(exitCode: usageExitCode, message: message) }
  /// Evidence that failed verification (exit 1).
  static func evidence(_ message: String) -> CLIFailure { CLIFailure(exitCode: verificationExitCode, message: message) }
  /// Anything else: I/O failures and the like (exit 3).
  static func runtime(_ message: String) -> CLIFailure { CLIFailure(exitCode: runtimeExitCode, message: message) }
}

extension CLIFailure {
  /// Refuses an existing output file unless `--force` (exit 2), before any work is done.
  static func refuseExisting(_ path: String, force: Bool, flag: String = "--out") throws {
    if !force && EvidenceFiles.exists(path) { throw existing(path, flag: flag) }
  }

  static func existing(_ path: String, flag: String = "--out") -> CLIFailure {
    usage("\(flag): \(path) already exists; refusing to overwrite it (give --force to replace it)")
  }

  /// How a failure to seal a bundle into `out` is reported.
  static func sealing(_ error: SealError, out: String) -> CLIFailure {
    switch error.kind {
    case .io: runtime(error.message)
    case .outputExists: existing(out)
    case .invalidInput: usage("\(out): \(error.message)")
    }
  }
}
