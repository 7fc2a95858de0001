public import Keys

/// The verifier was configured wrongly (exit 2): no keys, or a threshold outside 1...|T|.
public struct VerifyConfigurationError: Error, CustomStringConvertible, Sendable {
  public var message: String

  public var description: String { message }
}

/// What the caller requires of a bundle's signatures (BUNDLE-FORMAT.md §5).
///
/// Trusted material (the keys) is separate from policy (how many must sign). The threshold
/// counts distinct trusted public keys — keys are deduplicated by key id, which is derived from
/// the key itself — never signature entries.
public struct TrustPolicy: Sendable {
  /// Trusted keys by key id.
  public let trustedKeys: [String: Ed25519PublicKey]
  /// How many distinct trusted keys must have valid signatures.
  public let threshold: Int
  /// Skip signatures by keys outside the trust set instead of rejecting them. They never count
  /// toward the threshold.
  public let ignoresUntrustedSignatures: Bool

  /// A policy over `trustedKeys` (duplicates merged) requiring `threshold` of them.
  public init(trustedKeys: [Ed25519PublicKey], threshold: Int = 1, ignoreUntrustedSignatures: Bool = false)
    throws(VerifyConfigurationError)
  {
    var byID: [String: Ed25519PublicKey] = [:]
    for key in trustedKeys { byID[key.keyID] = key }
    guard !byID.isEmpty else {
      throw VerifyConfigurationError(message: "no trusted key given (use --trusted-key PUB)")
    }
    guard (1...byID.count).contains(threshold) else {
      throw VerifyConfigurationError(
        message: "threshold \(threshold) is outside 1...\(byID.count) (the number of distinct trusted keys)")
    }
    self.trustedKeys = byID
    self.threshold = threshold
    self.ignoresUntrustedSignatures = ignoreUntrustedSignatures
  }
}
