/// How the verification behind a report was asked for: what the report cannot learn from the
/// verification result itself, and what it must not take from the clock.
public struct ReportContext: Sendable {
  /// A trusted public key as the reader knows it.
  public struct TrustedKey: Sendable, Equatable {
    /// Lowercase hex SHA-256 of the key's DER SubjectPublicKeyInfo.
    public var keyID: String
    /// The key's file name, used in the re-verification commands.
    public var fileName: String

    /// A trusted key with id `keyID`, kept by the reader as `fileName`.
    public init(keyID: String, fileName: String) {
      self.keyID = keyID
      self.fileName = fileName
    }
  }

  /// The bundle's file name, shown and used in the re-verification commands.
  public var bundleFileName: String
  /// The trust set the bundle was verified against.
  public var trustedKeys: [TrustedKey]
  /// How many distinct trusted keys had to sign.
  public var threshold: Int
  /// Whether signatures by keys outside the trust set were skipped rather than rejected.
  public var ignoresUntrustedSignatures: Bool
  /// Shown as the report's generation time when given. The report never reads the clock, so the
  /// same bundle and context always give the same bytes.
  public var generatedAt: String?
  /// The most bars a records-over-time chart has.
  public var maxChartBins: Int

  /// A context for the bundle `bundleFileName` verified against `trustedKeys` and `threshold`.
  public init(
    bundleFileName: String, trustedKeys: [TrustedKey], threshold: Int = 1, ignoresUntrustedSignatures: Bool = false,
    generatedAt: String? = nil, maxChartBins: Int = 48
  ) {
    self.bundleFileName = bundleFileName
    self.trustedKeys = trustedKeys
    self.threshold = threshold
    self.ignoresUntrustedSignatures = ignoresUntrustedSignatures
    self.generatedAt = generatedAt
    self.maxChartBins = maxChartBins
  }
}
