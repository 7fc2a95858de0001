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
