/// The stable reason codes of BUNDLE-FORMAT.md §12, one per rejection rule.
///
/// Codes are API: auditors' scripts match on them. The detail text that accompanies a code is not.
public enum ReasonCode: String, Sendable, CaseIterable, Equatable {
  case tarTruncated = "TAR_TRUNCATED"
  case tarTrailingData = "TAR_TRAILING_DATA"
  case tarBadHeader = "TAR_BAD_HEADER"
  case tarForbiddenType = "TAR_FORBIDDEN_TYPE"
  case tarUnsafePath = "TAR_UNSAFE_PATH"
  case tarNoncanonicalHeader = "TAR_NONCANONICAL_HEADER"
  case tarNoncanonicalPadding = "TAR_NONCANONICAL_PADDING"
  case tarDuplicateMember = "TAR_DUPLICATE_MEMBER"
  case missingMember = "MISSING_MEMBER"
  case extraMember = "EXTRA_MEMBER"
  case memberOrder = "MEMBER_ORDER"
  case envelopeMalformed = "ENVELOPE_MALFORMED"
  case envelopeWrongPayloadType = "ENVELOPE_WRONG_PAYLOAD_TYPE"
  case envelopeNotCanonical = "ENVELOPE_NOT_CANONICAL"
  case envelopePayloadMismatch = "ENVELOPE_PAYLOAD_MISMATCH"
  case sigDuplicateKey = "SIG_DUPLICATE_KEY"
  case sigUntrustedKey = "SIG_UNTRUSTED_KEY"
  case sigInvalid = "SIG_INVALID"
  case sigThresholdNotMet = "SIG_THRESHOLD_NOT_MET"
  case manifestMalformed = "MANIFEST_MALFORMED"
  case manifestNotCanonical = "MANIFEST_NOT_CANONICAL"
  case manifestUnsupportedVersion = "MANIFEST_UNSUPPORTED_VERSION"
  case manifestSchema = "MANIFEST_SCHEMA"
  case manifestDuplicateEntry = "MANIFEST_DUPLICATE_ENTRY"
  case manifestUnsorted = "MANIFEST_UNSORTED"
  case manifestPathMismatch = "MANIFEST_PATH_MISMATCH"
  case manifestSequenceOverlap = "MANIFEST_SEQUENCE_OVERLAP"
  case manifestSequenceGap = "MANIFEST_SEQUENCE_GAP"
  case blobSizeMismatch = "BLOB_SIZE_MISMATCH"
  case blobDigestMismatch = "BLOB_DIGEST_MISMATCH"
  case blobDecompressError = "BLOB_DECOMPRESS_ERROR"
  case blobBomb = "BLOB_BOMB"
  case blobUncompressedSizeMismatch = "BLOB_UNCOMPRESSED_SIZE_MISMATCH"
  case segmentBadHeader = "SEGMENT_BAD_HEADER"
  case segmentMismatch = "SEGMENT_MISMATCH"
  case segmentTruncated = "SEGMENT_TRUNCATED"
  case segmentBadRecord = "SEGMENT_BAD_RECORD"
  case segmentCRCMismatch = "SEGMENT_CRC_MISMATCH"
  case segmentProtobufInvalid = "SEGMENT_PROTOBUF_INVALID"
  case segmentSequenceMismatch = "SEGMENT_SEQUENCE_MISMATCH"
  case segmentRecordCountMismatch = "SEGMENT_RECORD_COUNT_MISMATCH"
  case segmentTimeMismatch = "SEGMENT_TIME_MISMATCH"
  case limitMembers = "LIMIT_MEMBERS"
  case limitMemberSize = "LIMIT_MEMBER_SIZE"
  case limitUncompressedSize = "LIMIT_UNCOMPRESSED_SIZE"
  case limitRatio = "LIMIT_RATIO"
  case limitRecordSize = "LIMIT_RECORD_SIZE"
  /// Not a BUNDLE-FORMAT.md code: this tool's deep check of the reserved audit stream (README,
  /// "The audit stream") found a record whose `stella.audit.prev_sha256` does not name the
  /// record before it, or a record that is not an audit record. Bundles without an audit
  /// stream never get it.
  case auditChainBroken = "AUDIT_CHAIN_BROKEN"
  /// Not a BUNDLE-FORMAT.md code (README, "The offline kit"): `kit.json` is not a canonical kit
  /// manifest (wrong keys or types, unsorted or duplicate paths, an unsafe path).
  case kitManifestMalformed = "KIT_MANIFEST_MALFORMED"
  /// A file the kit manifest lists is not in the kit.
  case kitFileMissing = "KIT_FILE_MISSING"
  /// The kit holds a file its manifest does not list.
  case kitFileExtra = "KIT_FILE_EXTRA"
  /// A file's size or SHA-256 differs from what the kit manifest lists.
  case kitFileChanged = "KIT_FILE_CHANGED"
}

/// One rule a bundle broke: the stable code and a detail naming member, field or offset.
public struct Finding: Error, Sendable, Equatable, CustomStringConvertible {
  public var code: ReasonCode
  public var detail: String

  public init(_ code: ReasonCode, _ detail: String) {
    self.code = code
    self.detail = detail
  }

  /// `REJECT <CODE>: <detail>`, the verifier's report line.
  public var description: String { "REJECT \(code.rawValue): \(detail)" }
}

/// Verifier limits (BUNDLE-FORMAT.md §7): policy of the verifier, never taken from the bundle.
public struct VerificationLimits: Sendable, Equatable {
  public var maxMembers = 100_000
  public var maxManifestSize = 64 << 20
  public var maxBlobSize = 256 << 20
  public var maxUncompressedSize: UInt64 = 1 << 30
  public var maxRatio: UInt64 = 128
  public var maxRecordSize = 16 << 20
  public var maxSignatures = 64

  /// The defaults of §7.
  public init() {}
}
