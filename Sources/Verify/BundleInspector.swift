public import EvidenceIO
public import Keys
public import Manifest

/// A bundle read for display: integrity checked, signatures listed but *not* trusted.
public struct InspectedBundle: Sendable {
  public let manifest: BundleManifest
  /// Lowercase hex SHA-256 of `manifest.json`.
  public let manifestSHA256: String
  /// Key ids that claim to have signed (not verified: inspect has no trusted keys).
  public let claimedSignerKeyIDs: [String]
  /// The records of the bundle's audit streams in time order (empty without one); the chain
  /// linking them is checked by `verify --deep`, not here.
  public let custodyTimeline: [CustodyEvent]
}

/// Reads a bundle for `inspect`: every structural and digest check of a quick verification,
/// but no signature trust, so the result must never be presented as verified.
public enum BundleInspector {
  public static func inspect(path: String, limits: VerificationLimits = .init()) throws(BundleIOError)
    -> Result<InspectedBundle, Finding>
  {
    let source = try FileByteSource(path: path)
    return try BundleCheck(source: source, limits: limits, depth: .quick).run(trust: nil).map { checked in
      InspectedBundle(
        manifest: checked.manifest, manifestSHA256: SHA256Digest.hex(of: checked.manifestBytes),
        claimedSignerKeyIDs: checked.envelopeSignatures.map(\.keyID),
        custodyTimeline: CustodyTimeline.read(
          source: source, manifest: checked.manifest, members: checked.blobMembers, limits: limits))
    }
  }
}

/// A bundle whose integrity was checked in full (every step of §9, deep) except signature trust:
/// what a co-signer needs before adding its signature. It is not a ``VerifiedBundle`` and must not
/// be presented as one.
public struct IntegrityCheckedBundle: Sendable {
  /// The exact bytes of `manifest.json`.
  public let manifestBytes: [UInt8]
  /// The envelope's signatures as found (key-id order), not trusted.
  public let envelopeSignatures: [DSSESignature]
  /// Every tar member, in archive order.
  public let members: [TarMember]
}

extension BundleInspector {
  /// Checks `path` in full, deep, without trusting any signature.
  /// - Returns: the checked bundle, or the finding that makes it unfit to co-sign.
  public static func checkIntegrity(path: String, limits: VerificationLimits = .init()) throws(BundleIOError)
    -> Result<IntegrityCheckedBundle, Finding>
  {
    let source = try FileByteSource(path: path)
    return try BundleCheck(source: source, limits: limits, depth: .deep).run(trust: nil).map { checked in
      IntegrityCheckedBundle(
        manifestBytes: checked.manifestBytes, envelopeSignatures: checked.envelopeSignatures,
        members: checked.members)
    }
  }
}
