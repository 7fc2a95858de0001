public import EvidenceIO
import Keys
public import Manifest
public import Signing
import Verify

/// Seals segments into a signed bundle: manifest (sorted, content-addressed, canonical), DSSE
/// envelope signed by every key, canonical tar. The same inputs and keys give the same bytes.
public enum BundleSealer {
  /// The manifest for `segments` and `facts`: blobs sorted by path, identical blobs stored once,
  /// nodes sorted and unique.
  public static func manifest(for segments: [SealedSegment], facts: BundleFacts) throws(SealError) -> BundleManifest {
    guard !segments.isEmpty else { throw SealError(.invalidInput, "nothing to seal: no segments") }
    var byPath: [String: BlobEntry] = [:]
    for segment in segments {
      if let existing = byPath[segment.entry.path], existing != segment.entry {
        throw SealError(.invalidInput, "two different entries claim blob \(segment.entry.path)")
      }
      byPath[segment.entry.path] = segment.entry
    }
    let blobs = byPath.values.sorted { Array($0.path.utf8).lexicographicallyPrecedes(Array($1.path.utf8)) }
    let nodes = Set(blobs.map(\.node)).sorted { Array($0.utf8).lexicographicallyPrecedes(Array($1.utf8)) }
    guard facts.captureStartUnixNano <= facts.captureEndUnixNano else {
      throw SealError(
        .invalidInput, "capture window start \(facts.captureStartUnixNano) is after its end \(facts.captureEndUnixNano)"
      )
    }
    return BundleManifest(
      incident: facts.incident,
      capture: CaptureWindow(
        startUnixNano: facts.captureStartUnixNano, endUnixNano: facts.captureEndUnixNano, nodes: nodes),
      redactionPolicy: facts.redactionPolicy, tool: facts.tool, blobs: blobs)
  }

  /// Writes the signed bundle for `segments` to `outputPath` (atomically, mode 0600).
  /// - Parameter replacing: whether an existing `outputPath` is replaced; without it an existing
  ///   output is refused with kind `.outputExists` and left untouched.
  /// - Returns: the manifest written.
  @discardableResult
  public static func seal(
    segments: [SealedSegment], facts: BundleFacts, signingKeys: [Ed25519PrivateKey], outputPath: String,
    replacing: Bool = false
  ) throws(SealError) -> BundleManifest {
    guard !signingKeys.isEmpty else { throw SealError(.invalidInput, "at least one signing key is needed") }
    let manifest = try manifest(for: segments, facts: facts)
    try checkSchema(manifest)
    let manifestBytes: [UInt8]
    do {
      manifestBytes = try manifest.canonicalBytes()
    } catch {
      throw SealError(.invalidInput, "manifest cannot be serialized: \(error)", cause: error)
    }
    var envelope = DSSEEnvelope(payload: manifestBytes, payloadType: DSSE.manifestPayloadType, signatures: [])
    for key in signingKeys { envelope.sign(with: key) }
    var dataByPath: [String: MemberData] = [:]
    for segment in segments { dataByPath[segment.entry.path] = segment.data }
    var members: [(name: String, data: MemberData)] = [
      (BundleTar.manifestName, .bytes(manifestBytes)),
      (BundleTar.envelopeName, .bytes(envelope.canonicalJSON())),
    ]
    for blob in manifest.blobs {
      guard let data = dataByPath[blob.path] else { throw SealError(.invalidInput, "no data for \(blob.path)") }
      members.append((blob.path, data))
    }
    do {
      try BundleArchiveWriter.write(members: members, to: outputPath, replacing: replacing)
    } catch {
      throw SealError(error.outputExists ? .outputExists : .io, "\(error)", cause: error)
    }
    return manifest
  }

  /// Refuses to write a manifest a verifier would reject on schema grounds (for example an
  /// empty reason or a control character in an id), naming the field.
  private static func checkSchema(_ manifest: BundleManifest) throws(SealError) {
    do {
      _ = try BundleManifest(validating: manifest.jsonValue)
    } catch {
      throw SealError(.invalidInput, "manifest would be invalid: \(error)", cause: error)
    }
  }
}

/// Adds a co-signature to an existing bundle without changing its manifest (§5).
public enum BundleCoSigner {
  /// The outcome of co-signing.
  public enum Outcome: Sendable, Equatable {
    /// The signature was added; the bundle was rewritten.
    case added(keyID: String)
    /// This key had already signed; the bundle is unchanged.
    case alreadySigned(keyID: String)
  }

  /// Checks the bundle's integrity in full (every step of §9 but signature trust, deep), then
  /// inserts `key`'s signature in keyid order and rewrites only the envelope member.
  /// - Returns: the outcome, or the finding that made the bundle unfit to co-sign.
  public static func coSign(bundlePath: String, key: Ed25519PrivateKey, limits: VerificationLimits = .init())
    throws(SealError) -> Result<Outcome, Finding>
  {
    let checked: IntegrityCheckedBundle
    do {
      switch try BundleInspector.checkIntegrity(path: bundlePath, limits: limits) {
      case .success(let value): checked = value
      case .failure(let finding): return .failure(finding)
      }
    } catch {
      throw SealError(.io, "\(error)", cause: error)
    }
    let keyID = key.publicKey.keyID
    var envelope = DSSEEnvelope(
      payload: checked.manifestBytes, payloadType: DSSE.manifestPayloadType, signatures: checked.envelopeSignatures)
    let message = DSSE.preAuthenticationEncoding(payloadType: DSSE.manifestPayloadType, payload: checked.manifestBytes)
    if let existing = envelope.signatures.first(where: { $0.keyID == keyID }),
      key.publicKey.isValidSignature(existing.signature, for: message)
    {
      return .success(.alreadySigned(keyID: keyID))
    }
    envelope.sign(with: key)
    var members: [(name: String, data: MemberData)] = [
      (BundleTar.manifestName, .bytes(checked.manifestBytes)),
      (BundleTar.envelopeName, .bytes(envelope.canonicalJSON())),
    ]
    for member in checked.members where member.name != BundleTar.manifestName && member.name != BundleTar.envelopeName {
      members.append((member.name, .fileRange(path: bundlePath, offset: member.dataOffset, count: member.size)))
    }
    do {
      // Co-signing rewrites the bundle in place: replacing it is the point.
      try BundleArchiveWriter.write(members: members, to: bundlePath, replacing: true)
    } catch {
      throw SealError(.io, "\(error)", cause: error)
    }
    return .success(.added(keyID: keyID))
  }
}
