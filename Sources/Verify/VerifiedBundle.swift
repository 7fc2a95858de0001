public import EvidenceIO
public import Manifest

/// A bundle that passed verification. Only ``BundleVerifier`` can make one, so code that takes
/// a `VerifiedBundle` (replay, export) cannot be handed an unverified bundle by mistake.
public struct VerifiedBundle: Sendable {
  /// The bundle file.
  public let path: String
  /// The authenticated manifest.
  public let manifest: BundleManifest
  /// The exact `manifest.json` bytes the signatures cover.
  public let manifestBytes: [UInt8]
  /// Lowercase hex SHA-256 of `manifest.json`.
  public let manifestSHA256: String
  /// Key ids of the trusted keys whose signatures verified, ascending.
  public let signerKeyIDs: [String]
  /// Whether every segment was decompressed and checked (`--deep`).
  public let isDeep: Bool
  /// Where each blob's bytes are in the archive, by manifest path.
  public let blobMembers: [String: TarMember]
  /// Key ids of every signature in the envelope, in envelope order, trusted or not (untrusted
  /// ones are only present when the policy ignores them; they never count).
  public let envelopeKeyIDs: [String]
  /// The records of the bundle's audit streams in time order, after their hash chain was checked;
  /// `nil` after a quick verification, which does not decompress segments.
  public let custodyTimeline: [CustodyEvent]?
  /// Every record's `receivedUnixNano` by stream (0 where the node did not know it), unordered;
  /// `nil` unless the verifier was deep and asked to keep them (``BundleVerifier/receiveTimeLimit``).
  public let receiveTimes: [StreamKey: [UInt64]]?

  init(
    path: String, manifest: BundleManifest, manifestBytes: [UInt8], signerKeyIDs: [String], isDeep: Bool,
    blobMembers: [String: TarMember], envelopeKeyIDs: [String] = [], custodyTimeline: [CustodyEvent]? = nil,
    receiveTimes: [StreamKey: [UInt64]]? = nil
  ) {
    self.path = path
    self.manifest = manifest
    self.manifestBytes = manifestBytes
    self.manifestSHA256 = SHA256Digest.hex(of: manifestBytes)
    self.signerKeyIDs = signerKeyIDs
    self.isDeep = isDeep
    self.blobMembers = blobMembers
    self.envelopeKeyIDs = envelopeKeyIDs
    self.custodyTimeline = custodyTimeline
    self.receiveTimes = receiveTimes
  }

  /// Number of distinct streams (node, signal, tenant).
  public var streamCount: Int { Set(manifest.blobs.map(\.stream)).count }

  /// Total records over all blobs.
  public var recordCount: UInt64 { manifest.blobs.reduce(0) { $0 + $1.recordCount } }
}

/// The outcome of verifying a bundle: rejection is an expected result, not an exception.
public enum VerificationResult: Sendable {
  /// Every check passed.
  case verified(VerifiedBundle)
  /// The first failing check, with its stable code and a detail naming where.
  case rejected(Finding)
}
