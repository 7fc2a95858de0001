import Keys
import Manifest

/// Step 4 of §9, shared by bundles and offline kits: every signature is by a trusted key (or,
/// with ``TrustPolicy/ignoresUntrustedSignatures``, untrusted ones are skipped), verifies over
/// PAE(`payloadType`, payload), and at least ``TrustPolicy/threshold`` distinct trusted keys signed.
enum SignatureCheck {
  /// The key ids of the trusted keys whose signatures verified, sorted.
  static func trustedSigners(
    _ signatures: [DSSESignature], payloadType: String, payload: [UInt8], trust: TrustPolicy
  ) throws(Finding) -> [String] {
    let message = DSSE.preAuthenticationEncoding(payloadType: payloadType, payload: payload)
    var verified: Set<String> = []
    for signature in signatures {
      guard let key = trust.trustedKeys[signature.keyID] else {
        if trust.ignoresUntrustedSignatures { continue }
        var detail = "signature by keyid \(signature.keyID), which is not a trusted key"
        // A co-signed bundle checked against one of its signers is the common case: say how to
        // accept it on the trusted signature alone.
        let trustedAndValid = signatures.filter { other in
          trust.trustedKeys[other.keyID]?.isValidSignature(other.signature, for: message) == true
        }
        if !trustedAndValid.isEmpty {
          let keyIDs = trustedAndValid.map(\.keyID).joined(separator: ", ")
          detail +=
            "; the signature by trusted keyid \(keyIDs) does verify: --ignore-untrusted skips signatures by keys"
            + " that are not trusted (they never count toward the threshold)"
        }
        throw Finding(.sigUntrustedKey, detail)
      }
      guard key.isValidSignature(signature.signature, for: message) else {
        throw Finding(.sigInvalid, "signature by trusted keyid \(signature.keyID) does not verify")
      }
      verified.insert(signature.keyID)
    }
    guard verified.count >= trust.threshold else {
      throw Finding(
        .sigThresholdNotMet,
        "\(verified.count) trusted key(s) signed, the threshold is \(trust.threshold)")
    }
    return verified.sorted()
  }
}
