import ArgumentParser
import Capture
import Foundation
import Kit
import Manifest
import Verify

struct KitCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "kit",
    abstract: "Build or verify the signed offline kit an air-gapped site installs from.",
    discussion: """
      A kit is one ustar archive: kit.json (every file's path, size and SHA-256), kit.dsse.json (its
      DSSE envelope, signed with the same keys as bundles), then the binary (bin/stella-forensics),
      the configurations (each profile's effective capture configuration in config/profiles/),
      deployment files and documentation, including the man page (`make man` first; `make kit`
      does both). Layout and a check with tar, sha256sum and openssl alone: README, "The offline kit".
      """,
    subcommands: [KitBuildCommand.self, KitVerifyCommand.self])
}

struct KitBuildCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "build",
    abstract: "Build a kit from a source checkout and this binary; the same inputs give the same bytes.")

  @Option(help: "Kit file to write (mode 0600); an existing file is refused unless --force.")
  var out: String

  @Option(help: "Private key file to sign with. Repeat for several signers.")
  var key: [String]

  @Option(help: "The stella-forensics checkout the configurations and documents come from.")
  var source = "."

  @Option(help: "The binary to ship (default: this executable).")
  var binary: String?

  @Flag(help: "Replace an existing --out file.")
  var force = false

  func validate() throws {
    if key.isEmpty { throw ValidationError("give at least one --key") }
  }

  func run() throws {
    try CLIFailure.refuseExisting(out, force: force)
    let keys = try key.map { path throws(CLIFailure) in try KeyLoading.privateKey(path) }
    guard let binaryPath = binary ?? KitBuilder.runningExecutable() else {
      throw CLIFailure.usage("cannot find this executable's path; give --binary")
    }
    var profiles: [String: [UInt8]] = [:]
    for profile in CaptureProfile.allCases {
      profiles[KitContents.profileConfigurationPath(profile.rawValue)] = Array(
        CaptureConfiguration(profile: profile).effectiveYAML.utf8)
    }
    let builder = KitBuilder(
      sourceDirectory: source, binaryPath: binaryPath,
      tool: "stella-forensics \(StellaForensics.configuration.version)", generatedFiles: profiles)
    let manifest: KitManifest
    do {
      manifest = try builder.build(signingKeys: keys, outputPath: out, replacing: force)
    } catch {
      throw error.outputExists ? CLIFailure.existing(out) : CLIFailure.usage(error.message)
    }
    let bytes = manifest.files.reduce(UInt64(0)) { $0 + $1.size }
    print("wrote \(out): \(manifest.files.count) file(s), \(bytes) byte(s), signed by \(keys.count) key(s)")
  }
}

struct KitVerifyCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "verify",
    abstract: "Verify a kit offline against trusted public keys.",
    discussion: """
      Prints "OK: …" and exits 0 when every file is what trusted keys signed, or
      "REJECT <CODE>: <detail>" and exits 1 (codes: the bundle's tar, envelope and signature codes,
      and KIT_MANIFEST_MALFORMED, KIT_FILE_MISSING, KIT_FILE_EXTRA, KIT_FILE_CHANGED).
      """)

  @Argument(help: "The kit (.tar).")
  var kit: String

  @OptionGroup var trust: TrustOptions

  @Flag(name: .customLong("ignore-untrusted"), help: "Skip signatures by keys that are not trusted (they never count).")
  var ignoreUntrusted = false

  @Flag(help: "Print one JSON object instead of text.")
  var json = false

  func validate() throws {
    try trust.validate()
  }

  func run() throws {
    let policy: TrustPolicy
    do {
      policy = try TrustPolicy(
        trustedKeys: try KeyLoading.publicKeys(trust.trustedKeys), threshold: trust.threshold,
        ignoreUntrustedSignatures: ignoreUntrusted)
    } catch let error as VerifyConfigurationError {
      throw CLIFailure.usage(error.message)
    }
    let result: KitVerificationResult
    do {
      result = try KitVerifier(policy: policy).verify(path: kit)
    } catch {
      throw CLIFailure.usage(error.description)
    }
    switch result {
    case .verified(let verified):
      if json {
        try Output.printJSON(
          .object([
            ("result", .string("verified")), ("kit", .string(kit)), ("kitSha256", .string(verified.manifestSHA256)),
            ("files", .integer(verified.manifest.files.count)), ("tool", .string(verified.manifest.tool)),
            ("keyids", .array(verified.signerKeyIDs.map { .string($0) })),
          ]))
      } else {
        print("OK: \(kit) verified: \(verified.manifest.files.count) file(s) built by \(verified.manifest.tool)")
        print("kit.json sha256 \(verified.manifestSHA256)")
        print("signed by keyid(s) \(verified.signerKeyIDs.joined(separator: ", "))")
      }
    case .rejected(let finding):
      if json {
        try Output.printJSON(
          .object([
            ("result", .string("rejected")), ("kit", .string(kit)), ("code", .string(finding.code.rawValue)),
            ("detail", .string(finding.detail)),
          ]))
      } else {
        print(finding.description)
      }
      throw CLIFailure.verificationExitCode
    }
  }
}
