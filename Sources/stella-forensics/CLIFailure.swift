import ArgumentParser

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
