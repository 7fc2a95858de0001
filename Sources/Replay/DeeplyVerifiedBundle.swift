public import Manifest
public import Verify

/// A bundle whose every segment and record the verifier checked (`verify --deep`).
///
/// Replay and export take only this type, so sending or writing evidence that was not fully
/// verified is a compile-time error rather than a forgotten flag: the only way to get one is
/// from a ``VerifiedBundle`` that the verifier made in deep mode.
public struct DeeplyVerifiedBundle: Sendable {
  /// The verifier's result.
  public let verified: VerifiedBundle

  /// Wraps a deep verification result.
  /// - Parameter segments: the decompressed segments the same verification kept, if any.
  /// - Throws: ``ReplayError`` `.notDeeplyVerified` for a quick result, whose segments were
  ///   never decompressed.
  public init(_ verified: VerifiedBundle, segments: VerifiedSegments? = nil) throws(ReplayError) {
    guard verified.isDeep else {
      throw ReplayError(
        .notDeeplyVerified, "\(verified.path): verified only quickly; replay and export need a deep verification")
    }
    self.verified = verified
    self.segments = segments
  }

  /// Segments the verifier handed over while checking this bundle (see ``VerifiedSegments``).
  public let segments: VerifiedSegments?

  /// The bundle file.
  public var path: String { verified.path }
  /// The authenticated manifest.
  public var manifest: BundleManifest { verified.manifest }
  /// Lowercase hex SHA-256 of `manifest.json`; checkpoints are bound to it.
  public var manifestSHA256: String { verified.manifestSHA256 }

  /// Each stream's blobs, in sequence order, streams in ``StreamKey`` order.
  public var streams: [(key: StreamKey, blobs: [BlobEntry])] { Self.streams(of: manifest) }

  /// The streams of `manifest`, as ``streams``.
  static func streams(of manifest: BundleManifest) -> [(key: StreamKey, blobs: [BlobEntry])] {
    var byStream: [StreamKey: [BlobEntry]] = [:]
    for blob in manifest.blobs { byStream[blob.stream, default: []].append(blob) }
    return byStream.keys.sorted().map { key in
      (key, (byStream[key] ?? []).sorted { $0.firstSeq < $1.firstSeq })
    }
  }
}
