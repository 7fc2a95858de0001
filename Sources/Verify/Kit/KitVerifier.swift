public import EvidenceIO
import Keys
public import Manifest

/// An offline kit that passed ``KitVerifier``: every file is exactly what trusted keys signed.
/// Only the verifier makes one.
public struct VerifiedKit: Sendable {
  /// The kit file.
  public let path: String
  /// The authenticated `kit.json`.
  public let manifest: KitManifest
  /// Lowercase hex SHA-256 of the `kit.json` bytes the signatures cover.
  public let manifestSHA256: String
  /// Key ids of the trusted keys whose signatures verified, ascending.
  public let signerKeyIDs: [String]
}

/// What kit verification decided.
public enum KitVerificationResult: Sendable {
  case verified(VerifiedKit)
  /// The first rule the kit broke.
  case rejected(Finding)
}

/// Checks an offline kit against trusted keys, with the bundle's archive and signature rules
/// (BUNDLE-FORMAT.md §2, §5) and the kit's own member rules (README, "The offline kit"):
///
/// 1. every tar header (§9 step 1, the same codes);
/// 2. `kit.json` and `kit.dsse.json` present (`MISSING_MEMBER`);
/// 3. the envelope strictly, with payload type ``DSSE/kitPayloadType`` (§9 step 3 codes);
/// 4. signatures against the trust policy (§9 step 4 codes);
/// 5. `kit.json` itself (`KIT_MANIFEST_MALFORMED`);
/// 6. the member set: every listed file present (`KIT_FILE_MISSING`), nothing unlisted
///    (`KIT_FILE_EXTRA`), in the listed order (`MEMBER_ORDER`);
/// 7. every file's size and SHA-256 (`KIT_FILE_CHANGED`).
///
/// The first failing check decides, so a rejection carries exactly one code.
public struct KitVerifier: Sendable {
  public let policy: TrustPolicy
  public let limits: VerificationLimits

  /// Limits for kits: the bundle defaults, except that one member (the binary) may be up to
  /// 2 GiB.
  public static var defaultLimits: VerificationLimits {
    var limits = VerificationLimits()
    limits.maxBlobSize = 2 << 30
    return limits
  }

  public init(policy: TrustPolicy, limits: VerificationLimits = KitVerifier.defaultLimits) {
    self.policy = policy
    self.limits = limits
  }

  /// Verifies the kit at `path`.
  /// - Throws: ``BundleIOError`` only when the file cannot be read; every problem with its
  ///   content is a ``KitVerificationResult/rejected(_:)``.
  public func verify(path: String) throws(BundleIOError) -> KitVerificationResult {
    let source = try FileByteSource(path: path)
    do {
      return .verified(try check(source, path: path))
    } catch let finding as Finding {
      return .rejected(finding)
    } catch let error as BundleIOError {
      throw error
    } catch {
      throw BundleIOError(path: path, message: "unexpected error: \(error)")
    }
  }

  private func check(_ source: some ByteSource, path: String) throws -> VerifiedKit {
    let members = try TarStructureChecker(limits: limits).members(of: source)
    let byName = Dictionary(members.map { ($0.name, $0) }, uniquingKeysWith: { first, _ in first })
    guard let manifestMember = byName[KitManifest.manifestName] else {
      throw Finding(.missingMember, "\(KitManifest.manifestName) is not in the archive")
    }
    guard let envelopeMember = byName[KitManifest.envelopeName] else {
      throw Finding(.missingMember, "\(KitManifest.envelopeName) is not in the archive")
    }
    let manifestBytes = try source.bytes(at: manifestMember.dataOffset, count: manifestMember.size)
    let envelopeBytes = try source.bytes(at: envelopeMember.dataOffset, count: envelopeMember.size)
    let signatures = try EnvelopeReader.read(
      envelopeBytes, manifestBytes: manifestBytes, limits: limits, payloadType: DSSE.kitPayloadType,
      name: KitManifest.envelopeName, manifestName: KitManifest.manifestName)
    let signers = try SignatureCheck.trustedSigners(
      signatures, payloadType: DSSE.kitPayloadType, payload: manifestBytes, trust: policy)
    let manifest: KitManifest
    do {
      manifest = try KitManifest.parse(manifestBytes)
    } catch {
      throw Finding(.kitManifestMalformed, error.message)
    }

    for file in manifest.files where byName[file.path] == nil {
      throw Finding(.kitFileMissing, "\(file.path) is listed in kit.json but not in the archive")
    }
    let listed = Set(manifest.files.map(\.path))
    for member in members
    where member.name != KitManifest.manifestName && member.name != KitManifest.envelopeName
      && !listed.contains(member.name)
    {
      throw Finding(.kitFileExtra, "\(member.name) is in the archive but not listed in kit.json")
    }
    let expectedOrder = [KitManifest.manifestName, KitManifest.envelopeName] + manifest.files.map(\.path)
    for (index, member) in members.enumerated() where member.name != expectedOrder[index] {
      throw Finding(
        .memberOrder,
        "member \(index) is \(member.name), expected \(expectedOrder[index]) "
          + "(kit.json, kit.dsse.json, then the files in kit.json order)")
    }
    for file in manifest.files {
      guard let member = byName[file.path] else { continue }
      guard UInt64(member.size) == file.size else {
        throw Finding(.kitFileChanged, "\(file.path) is \(member.size) bytes, kit.json lists \(file.size)")
      }
      let digest = try SHA256Digest.hex(of: source, offset: member.dataOffset, count: member.size)
      guard digest == file.sha256 else {
        throw Finding(.kitFileChanged, "\(file.path) has SHA-256 \(digest), kit.json lists \(file.sha256)")
      }
    }
    return VerifiedKit(
      path: path, manifest: manifest, manifestSHA256: SHA256Digest.hex(of: manifestBytes), signerKeyIDs: signers)
  }
}
