import Manifest
import Verify

#if canImport(Glibc)
  import Glibc
#endif

/// Checks that quick and deep verification of the same bytes agree (BUNDLE-FORMAT.md §9).
public enum BundleOracle {
  /// Codes only step 7.2–7.6 can give; deep mode may report one of these where quick mode goes
  /// on to a later blob's size or digest.
  static let deepOnlyCodes: Set<ReasonCode> = [
    .limitUncompressedSize, .limitRatio, .blobDecompressError, .blobBomb,
    .blobUncompressedSizeMismatch, .segmentBadHeader, .segmentMismatch, .segmentTruncated,
    .segmentBadRecord, .limitRecordSize, .segmentCRCMismatch, .segmentSequenceMismatch,
    .segmentProtobufInvalid, .segmentRecordCountMismatch, .segmentTimeMismatch,
  ]

  /// With `STELLA_FUZZ_PRINT_CODES=1` each input's deep result is printed (`RESULT VERIFIED` or
  /// `RESULT <CODE>`), so replaying a corpus (`-runs=0 DIR`) shows which checks it reaches.
  static let printsCodes = getenv("STELLA_FUZZ_PRINT_CODES").map { String(cString: $0) } == "1"

  /// Traps when the results break the relation between the two depths.
  public static func checkDepthsAgree(deep: VerificationResult, quick: VerificationResult) {
    if printsCodes {
      let code: String
      switch deep {
      case .verified: code = "VERIFIED"
      case .rejected(let finding): code = finding.code.rawValue
      }
      let line = Array("RESULT \(code)\n".utf8)
      _ = line.withUnsafeBytes { write(2, $0.baseAddress, $0.count) }
    }
    switch (deep, quick) {
    case (.verified(let deepBundle), .verified(let quickBundle)):
      guard deepBundle.manifestBytes == quickBundle.manifestBytes else {
        fuzzInvariantFailed("deep and quick verified different manifests")
      }
    case (.verified, .rejected(let finding)):
      fuzzInvariantFailed("deep verified a bundle quick rejects: \(finding)")
    case (.rejected(let finding), .verified):
      guard deepOnlyCodes.contains(finding.code) else {
        fuzzInvariantFailed("quick verified a bundle deep rejects with a non-deep code: \(finding)")
      }
    case (.rejected(let deepFinding), .rejected(let quickFinding)):
      if !deepOnlyCodes.contains(deepFinding.code), deepFinding.code != quickFinding.code {
        fuzzInvariantFailed("deep says \(deepFinding), quick says \(quickFinding)")
      }
    }
  }
}
