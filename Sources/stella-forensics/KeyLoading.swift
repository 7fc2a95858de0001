import ArgumentParser
import Keys
import Signing

/// Loading keys named on the command line; any problem is a configuration error (exit 2).
enum KeyLoading {
  static func privateKey(_ path: String) throws(CLIFailure) -> Ed25519PrivateKey {
    do {
      return try KeyFiles.loadPrivateKey(path: path)
    } catch {
      throw .usage(error.description)
    }
  }

  static func publicKeys(_ paths: [String]) throws(CLIFailure) -> [Ed25519PublicKey] {
    var keys: [Ed25519PublicKey] = []
    for path in paths {
      do {
        keys.append(try KeyFiles.loadPublicKey(path: path))
      } catch {
        throw .usage(error.description)
      }
    }
    return keys
  }
}

/// The trust options of every command that verifies a bundle (verify, replay, export).
struct TrustOptions: ParsableArguments {
  @Option(name: .customLong("trusted-key"), help: "Trusted public key (PEM). Repeat for several.")
  var trustedKeys: [String] = []

  @Option(help: "How many distinct trusted keys must have signed.")
  var threshold = 1

  func validate() throws {
    if trustedKeys.isEmpty { throw ValidationError("give at least one --trusted-key") }
  }
}
