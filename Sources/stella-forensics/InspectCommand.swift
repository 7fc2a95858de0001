import ArgumentParser
import Manifest
import Verify

struct InspectCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "inspect",
    abstract: "Show a bundle's chain of custody, signers and contents.",
    discussion: """
      Checks structure and blob digests but not signature trust: signers are the key ids the
      envelope claims. Use verify with trusted keys to rely on the bundle.
      """)

  @Argument(help: "The bundle (.sfb.tar).")
  var bundle: String

  @Flag(help: "Print one JSON object instead of text.")
  var json = false

  func run() throws {
    let result: Result<InspectedBundle, Finding>
    do {
      result = try BundleInspector.inspect(path: bundle)
    } catch {
      throw CLIFailure.usage(error.description)
    }
    let inspected: InspectedBundle
    switch result {
    case .success(let value): inspected = value
    case .failure(let finding):
      print(finding.description)
      throw CLIFailure.verificationExitCode
    }
    let summary = StreamSummary.of(inspected.manifest)
    if json {
      try Output.printJSON(Output.inspectJSON(inspected, streams: summary))
    } else {
      print(Output.inspectText(inspected, streams: summary, bundle: bundle))
    }
  }
}
