import Keys
import Manifest
import Signing
import Verify

#if canImport(Glibc)
  import Glibc
#endif

/// The signing key of the fuzz seed bundles and the trust policy the verifier targets use.
///
/// The key is derived from a fixed, public seed (bytes 0x41...0x60) so that seed bundles made
/// by `fuzz/make_seeds.py` verify under a harness built at any time. It protects nothing.
public enum FuzzKeys {
  /// PKCS#8 PEM of the fixed fuzz key (also written to the seed work dir by make_seeds.py).
  public static let privateKeyPEM = """
    -----BEGIN PRIVATE KEY-----
    MC4CAQAwBQYDK2VwBCIEIEFCQ0RFRkdISUpLTE1OT1BRUlNUVVZXWFlaW1xdXl9g
    -----END PRIVATE KEY-----

    """

  /// The fixed fuzz key.
  public static let privateKey: Ed25519PrivateKey = {
    do {
      return try Ed25519PrivateKey(pkcs8PEM: privateKeyPEM, source: "FuzzKeys.privateKeyPEM")
    } catch {
      // Not reachable by fuzz input: the constant above is a valid key.
      fatalError("fuzz key constant does not parse: \(error)")
    }
  }()

  /// Trusts the fixed key plus every PEM public key named in `STELLA_FUZZ_TRUSTED_PUBS`
  /// (colon-separated paths, e.g. the tampered-fixture signer), threshold 1.
  ///
  /// With threshold 1 a bundle signed by any one of these keys verifies, so seeds from
  /// different signers all reach the manifest and blob checks.
  public static let trustPolicy: TrustPolicy = {
    var keys = [privateKey.publicKey]
    if let list = getenv("STELLA_FUZZ_TRUSTED_PUBS").map({ String(cString: $0) }) {
      for path in list.split(separator: ":") where !path.isEmpty {
        do {
          keys.append(try KeyFiles.loadPublicKey(path: String(path)))
        } catch {
          fatalError("STELLA_FUZZ_TRUSTED_PUBS: \(error)")
        }
      }
    }
    do {
      return try TrustPolicy(trustedKeys: keys, threshold: 1)
    } catch {
      fatalError("fuzz trust policy: \(error)")
    }
  }()
}

/// Stops the fuzzer on a broken invariant; libFuzzer reports the trap as a crash and saves the
/// input. Only harness oracles call this, never the code under test.
public func fuzzInvariantFailed(_ message: String) -> Never {
  let line = Array("FUZZ INVARIANT VIOLATED: \(message)\n".utf8)
  _ = line.withUnsafeBytes { write(2, $0.baseAddress, $0.count) }
  abort()
}
