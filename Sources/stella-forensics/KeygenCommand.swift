import ArgumentParser
import Keys
import Signing

struct KeygenCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "keygen",
    abstract: "Create an Ed25519 signing key pair.",
    discussion: """
      Writes NAME.key (PKCS#8 PEM, mode 0600) and NAME.pub (PEM SubjectPublicKeyInfo) and prints
      the key id (SHA-256 of the DER public key). Never overwrites existing files.
      """)

  @Option(help: "Directory to write the key pair into (created if missing).")
  var out: String

  @Option(help: "Base name of the key files.")
  var name = "signer"

  func run() throws {
    let key = Ed25519PrivateKey.generate()
    do {
      let paths = try KeyFiles.writeKeyPair(key, directory: out, name: name)
      print("keyid \(key.publicKey.keyID)")
      print("private key: \(paths.privateKeyPath)")
      print("public key:  \(paths.publicKeyPath)")
    } catch {
      throw CLIFailure.usage(error.description)
    }
  }
}
