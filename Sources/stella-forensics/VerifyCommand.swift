import ArgumentParser
import Manifest
import Seal
import Verify

struct VerifyCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "verify",
    abstract: "Verify a bundle offline against trusted public keys.",
    discussion: """
      Prints "OK: …" and exits 0 when the bundle verifies, or "REJECT <CODE>: <detail>" and exits 1
      at the first failing check (codes: BUNDLE-FORMAT.md §12). Without --deep, blob sizes and
      digests are checked but segments are not decompressed; --deep checks every record, and the
      hash chain of a capture node's audit stream (AUDIT_CHAIN_BROKEN; README, "The audit stream").
      """)

  @Argument(help: "The bundle (.sfb.tar).")
  var bundle: String

  @OptionGroup var trust: TrustOptions

  @Flag(name: .customLong("ignore-untrusted"), help: "Skip signatures by keys that are not trusted (they never count).")
  var ignoreUntrusted = false

  @Flag(help: "Also decompress and check every segment and record.")
  var deep = false

  @Flag(help: "Print one JSON object instead of text.")
  var json = false

  func validate() throws {
    try trust.validate()
  }

  func run() throws {
    let keys = try KeyLoading.publicKeys(trust.trustedKeys)
    let policy: TrustPolicy
    do {
      policy = try TrustPolicy(
        trustedKeys: keys, threshold: trust.threshold, ignoreUntrustedSignatures: ignoreUntrusted)
    } catch {
      throw CLIFailure.usage(error.message)
    }
    let result = try BundleVerifier(policy: policy, depth: deep ? .deep : .quick)
      .verifyShowingProgress(path: bundle, quiet: json)
    let mode = deep ? "deep" : "quick"
    switch result {
    case .verified(let verified):
      if json {
        try Output.printJSON(
          .object([
            ("result", .string("verified")), ("mode", .string(mode)), ("bundle", .string(bundle)),
            ("incident", .string(verified.manifest.incident.id)),
            ("manifestSha256", .string(verified.manifestSHA256)),
            ("blobs", .integer(verified.manifest.blobs.count)), ("streams", .integer(verified.streamCount)),
            ("records", .number(String(verified.recordCount))),
            ("keyids", .array(verified.signerKeyIDs.map { .string($0) })),
            ("segmentsChecked", .bool(verified.isDeep)),
          ]))
      } else {
        print(
          "OK: \(bundle) verified (\(mode)): incident \(verified.manifest.incident.id), \(verified.manifest.blobs.count) blob(s), \(verified.streamCount) stream(s), \(verified.recordCount) record(s)"
        )
        print("manifest sha256 \(verified.manifestSHA256)")
        print("signed by keyid(s) \(verified.signerKeyIDs.joined(separator: ", "))")
        if !verified.isDeep { print("segments were not decompressed (use --deep to check every record)") }
      }
    case .rejected(let finding):
      if json {
        try Output.printJSON(
          .object([
            ("result", .string("rejected")), ("mode", .string(mode)), ("bundle", .string(bundle)),
            ("code", .string(finding.code.rawValue)), ("detail", .string(finding.detail)),
          ]))
      } else {
        print(finding.description)
      }
      throw CLIFailure.verificationExitCode
    }
  }
}

struct SignCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "sign",
    abstract: "Add a co-signature to a bundle; the manifest does not change.",
    discussion: """
      Checks the bundle's integrity in full first (every check of verify --deep except signature
      trust) and refuses a bundle that fails (exit 1). Signing again with the same key changes nothing.
      """)

  @Argument(help: "The bundle to co-sign, rewritten in place.")
  var bundle: String

  @Option(help: "Private key file to sign with.")
  var key: String

  func run() throws {
    let signingKey = try KeyLoading.privateKey(key)
    let outcome: Result<BundleCoSigner.Outcome, Finding>
    do {
      outcome = try BundleCoSigner.coSign(bundlePath: bundle, key: signingKey)
    } catch {
      throw CLIFailure.runtime(error.description)
    }
    switch outcome {
    case .success(.added(let keyID)):
      print("signed \(bundle) with keyid \(keyID)")
    case .success(.alreadySigned(let keyID)):
      print("\(bundle) is already signed by keyid \(keyID); unchanged")
    case .failure(let finding):
      print(finding.description)
      throw CLIFailure.verificationExitCode
    }
  }
}
