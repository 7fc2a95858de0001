import ArgumentParser
import EvidenceIO
import Keys
import Manifest
import Report
import Verify

struct ReportCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "report",
    abstract: "Verify a bundle (deep) and write a self-contained HTML report of the result.",
    discussion: """
      Runs the same verification as verify --deep and writes one HTML file with no script and no
      external reference (docs/report.md): the verdict, and for a verified bundle its identity,
      signers, chain of custody and audit timeline, streams, records-over-time charts, redaction
      policy, and the commands that check it again with this tool, OpenSSL or Python. A rejected
      bundle's report shows the rejection and its reason code and nothing from its content.
      The report is written in both cases; the exit code is verify's: 0 verified, 1 rejected,
      2 usage or unreadable input, 3 the report could not be written.
      """)

  @Argument(help: "The bundle (.sfb.tar).")
  var bundle: String

  @OptionGroup var trust: TrustOptions

  @Flag(name: .customLong("ignore-untrusted"), help: "Skip signatures by keys that are not trusted (they never count).")
  var ignoreUntrusted = false

  @Option(help: "Where to write the HTML report.")
  var out: String

  @Flag(help: "Replace --out if it exists.")
  var force = false

  @Option(
    name: .customLong("generated-at"),
    help: "Text shown as the report's generation time (the report never reads the clock, so it is reproducible).")
  var generatedAt: String?

  /// Records whose receive times the charts may use; above it they use segment time ranges.
  static let receiveTimeLimit = 4_000_000

  func validate() throws {
    try trust.validate()
  }

  func run() throws {
    try CLIFailure.refuseExisting(out, force: force)
    let keys = try KeyLoading.publicKeys(trust.trustedKeys)
    let policy: TrustPolicy
    do {
      policy = try TrustPolicy(
        trustedKeys: keys, threshold: trust.threshold, ignoreUntrustedSignatures: ignoreUntrusted)
    } catch {
      throw CLIFailure.usage(error.message)
    }
    var verifier = BundleVerifier(policy: policy, depth: .deep)
    verifier.receiveTimeLimit = Self.receiveTimeLimit
    let result = try verifier.verifyShowingProgress(path: bundle)

    var trustedKeys: [ReportContext.TrustedKey] = []
    for (path, key) in zip(trust.trustedKeys, keys) where !trustedKeys.contains(where: { $0.keyID == key.keyID }) {
      trustedKeys.append(ReportContext.TrustedKey(keyID: key.keyID, fileName: Self.fileName(path)))
    }
    let context = ReportContext(
      bundleFileName: Self.fileName(bundle), trustedKeys: trustedKeys, threshold: trust.threshold,
      ignoresUntrustedSignatures: ignoreUntrusted, generatedAt: generatedAt)
    let html = EvidenceReport.html(for: result, context: context)
    do {
      try EvidenceFiles.writeAtomically(Array(html.utf8), to: out, replacing: force)
    } catch {
      throw CLIFailure.runtime("cannot write the report: \(error)")
    }

    switch result {
    case .verified(let verified):
      print(
        "OK: \(Output.escaped(bundle)) verified (deep): incident \(Output.escaped(verified.manifest.incident.id)); report written to \(Output.escaped(out))"
      )
    case .rejected(let finding):
      print(Output.escaped(finding.description))
      print("report of the rejection written to \(Output.escaped(out))")
      throw CLIFailure.verificationExitCode
    }
  }

  /// The last path component: the commands in the report run where the reader keeps the files.
  static func fileName(_ path: String) -> String {
    let name = path.split(separator: "/", omittingEmptySubsequences: true).last.map(String.init) ?? path
    return name.isEmpty ? path : name
  }
}
