internal import CSodium
internal import EvidenceIO
internal import Manifest

/// An Ed25519 public key (RFC 8032), as used for DSSE signatures on bundles.
///
/// Equality and hashing use the 32 raw key bytes, so a trust set of these deduplicates keys.
public struct Ed25519PublicKey: Hashable, Sendable, CustomStringConvertible {
  /// The DER prefix of an Ed25519 SubjectPublicKeyInfo (RFC 8410 §4): SEQUENCE, AlgorithmIdentifier
  /// { id-Ed25519 } with no parameters, BIT STRING of 33 bytes with 0 unused bits.
  static let spkiPrefix: [UInt8] = [
    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
  ]

  /// The 32-byte public key (RFC 8032 §5.1.5 encoding).
  public let rawRepresentation: [UInt8]

  /// Lowercase hex SHA-256 of ``subjectPublicKeyInfoDER``: the DSSE `keyid` (BUNDLE-FORMAT.md §5),
  /// equal to `openssl pkey -pubin -in k.pub -outform DER | sha256sum`.
  public let keyID: String

  /// Creates a key from its 32 raw bytes.
  ///
  /// Throws ``SigningError/Code/keyFormat`` for another length, or for bytes that are not a
  /// canonical point of the prime-order subgroup (small-order or non-canonical encodings cannot
  /// come from real key generation, and no signature would verify under them).
  public init(rawRepresentation: [UInt8]) throws(SigningError) {
    try self.init(rawRepresentation: rawRepresentation, source: nil)
  }

  init(rawRepresentation raw: [UInt8], source: String?) throws(SigningError) {
    guard raw.count == Int(crypto_sign_PUBLICKEYBYTES) else {
      throw SigningError(
        .keyFormat, "Ed25519 public key must be 32 bytes, got \(raw.count)", path: source)
    }
    Sodium.ensureInitialized()
    // Returns 1 for a valid, canonical, non-small-order point; 0 otherwise.
    guard crypto_core_ed25519_is_valid_point(raw) == 1 else {
      throw SigningError(
        .keyFormat, "bytes \(Hex.encode(raw)) are not a valid Ed25519 public key", path: source)
    }
    self.init(checkedRaw: raw)
  }

  /// For bytes already known to be a valid key, such as one libsodium derived from a seed.
  package init(checkedRaw raw: [UInt8]) {
    self.rawRepresentation = raw
    self.keyID = SHA256Digest.hex(of: Self.spkiPrefix + raw)
  }

  /// Parses a PEM `PUBLIC KEY` block holding an Ed25519 SubjectPublicKeyInfo (what
  /// `openssl pkey -pubout` writes).
  ///
  /// `source` names where the text came from (usually its path) and starts every error message.
  /// A well-formed key of another algorithm (RSA, EC, X25519, …) throws
  /// ``SigningError/Code/notEd25519``; anything else that is not exactly the 44-byte Ed25519 form
  /// throws ``SigningError/Code/keyFormat``.
  public init(pem: String, source: String) throws(SigningError) {
    let block = try PEMBlock.parse(pem, source: source)
    switch block.label {
    case "PUBLIC KEY":
      break
    case "RSA PUBLIC KEY":
      throw SigningError(.notEd25519, "this is an RSA public key, not Ed25519", path: source)
    case "PRIVATE KEY", "ENCRYPTED PRIVATE KEY", "RSA PRIVATE KEY", "EC PRIVATE KEY",
      "OPENSSH PRIVATE KEY":
      throw SigningError(
        .keyFormat,
        "this is a private key ('\(block.label)'); expected a public key ('PUBLIC KEY', "
          + "from `openssl pkey -in KEY -pubout`)",
        path: source)
    default:
      throw SigningError(
        .keyFormat, "PEM block is '\(block.label)'; expected 'PUBLIC KEY'", path: source)
    }
    try self.init(subjectPublicKeyInfoDER: block.der, source: source)
  }

  /// Parses DER SubjectPublicKeyInfo; only the exact Ed25519 form is accepted.
  init(subjectPublicKeyInfoDER der: [UInt8], source: String?) throws(SigningError) {
    var outer = DERReader(der)
    guard var spki = outer.read(tag: 0x30), outer.isAtEnd,
      var algorithm = spki.read(tag: 0x30),
      let oid = algorithm.read(tag: 0x06)
    else {
      throw SigningError(
        .keyFormat, "PUBLIC KEY block is not a DER SubjectPublicKeyInfo", path: source)
    }
    let oidBytes = oid.remainingBytes
    guard oidBytes == KnownAlgorithm.ed25519 else {
      throw SigningError(
        .notEd25519,
        "public key algorithm is \(KnownAlgorithm.name(of: oidBytes)), not Ed25519", path: source)
    }
    // Only one encoding of an Ed25519 SubjectPublicKeyInfo is valid DER (RFC 8410 §4: parameters
    // absent, 0 unused bits), so anything but prefix + 32 bytes is malformed.
    guard der.count == Self.spkiPrefix.count + 32, der.starts(with: Self.spkiPrefix) else {
      throw SigningError(
        .keyFormat,
        "malformed Ed25519 SubjectPublicKeyInfo (expected 44 bytes starting "
          + "\(Hex.encode(Self.spkiPrefix)), got \(der.count) bytes)",
        path: source)
    }
    try self.init(rawRepresentation: Array(der.suffix(32)), source: source)
  }

  /// The 44-byte DER SubjectPublicKeyInfo: `302a300506032b6570032100` followed by the raw key.
  public var subjectPublicKeyInfoDER: [UInt8] { Self.spkiPrefix + rawRepresentation }

  /// The PEM `PUBLIC KEY` text, as `openssl pkey -pubout` writes it (ends with a newline).
  public var pem: String { PEMBlock.format(label: "PUBLIC KEY", der: subjectPublicKeyInfoDER) }

  /// Whether `signature` is a valid pure Ed25519 signature of `message` under this key.
  ///
  /// Returns `false` for a signature that is not 64 bytes. libsodium also rejects non-canonical
  /// `S` values and small-order `R`, so a signature cannot be re-encoded into another valid one.
  public func isValidSignature(_ signature: [UInt8], for message: [UInt8]) -> Bool {
    guard signature.count == Int(crypto_sign_BYTES) else { return false }
    Sodium.ensureInitialized()
    return Sodium.withNonNullPointer(message) { messagePointer in
      // Returns 0 if the signature verifies, -1 otherwise.
      crypto_sign_verify_detached(
        signature, messagePointer, UInt64(message.count), rawRepresentation) == 0
    }
  }

  /// `Ed25519PublicKey(keyid: …)`.
  public var description: String { "Ed25519PublicKey(keyid: \(keyID))" }

  public static func == (lhs: Ed25519PublicKey, rhs: Ed25519PublicKey) -> Bool {
    lhs.rawRepresentation == rhs.rawRepresentation
  }

  public func hash(into hasher: inout Hasher) {
    hasher.combine(rawRepresentation)
  }
}
