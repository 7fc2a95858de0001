internal import CSodium
public import Keys

/// An Ed25519 private key. Its description and mirror show only the public key id, never the
/// secret, so it is safe to print or `dump`.
public struct Ed25519PrivateKey: Sendable, CustomStringConvertible, CustomReflectable {
  /// DER prefix of a PKCS#8 v1 Ed25519 private key (RFC 8410 §7): version 0, id-Ed25519, and the
  /// OCTET STRING wrapping the 32-byte OCTET STRING seed. What `openssl genpkey` writes.
  static let pkcs8Prefix: [UInt8] = [
    0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
  ]

  /// The 32-byte RFC 8032 private key (the "seed").
  private let seed: [UInt8]
  /// libsodium's 64-byte expanded secret key (seed followed by the public key).
  private let secretKey: [UInt8]

  /// The matching public key.
  public let publicKey: Ed25519PublicKey

  /// Derives the key pair from a 32-byte seed (callers check the length).
  private init(seed: [UInt8]) {
    Sodium.ensureInitialized()
    var publicBytes = [UInt8](repeating: 0, count: Int(crypto_sign_PUBLICKEYBYTES))
    var secretBytes = [UInt8](repeating: 0, count: Int(crypto_sign_SECRETKEYBYTES))
    // Returns 0 always. The derived point is a multiple of the base point, so always valid.
    _ = crypto_sign_seed_keypair(&publicBytes, &secretBytes, seed)
    self.seed = seed
    self.secretKey = secretBytes
    self.publicKey = Ed25519PublicKey(checkedRaw: publicBytes)
  }

  /// Generates a new key from libsodium's CSPRNG.
  public static func generate() -> Ed25519PrivateKey {
    Sodium.ensureInitialized()
    var seed = [UInt8](repeating: 0, count: Int(crypto_sign_SEEDBYTES))
    randombytes_buf(&seed, seed.count)
    return Ed25519PrivateKey(seed: seed)
  }

  /// Parses a PEM `PRIVATE KEY` block holding an Ed25519 PKCS#8 key (RFC 8410 §7), as written by
  /// `openssl genpkey -algorithm ed25519` or ``pkcs8PEM``.
  ///
  /// Both PKCS#8 v1 (version 0, seed only) and v2 / OneAsymmetricKey (version 1, RFC 5958) with
  /// an attached public key are read; an attached public key must match the seed. Attributes are
  /// ignored. Encrypted keys are refused with a hint. Keys of other algorithms throw
  /// ``SigningError/Code/notEd25519``; everything else malformed throws
  /// ``SigningError/Code/keyFormat``. `source` names where the text came from.
  public init(pkcs8PEM: String, source: String) throws(SigningError) {
    let block = try PEMBlock.parse(pkcs8PEM, source: source)
    switch block.label {
    case "PRIVATE KEY":
      break
    case "ENCRYPTED PRIVATE KEY":
      throw SigningError(
        .keyFormat,
        "encrypted private keys are not supported; decrypt with "
          + "`openssl pkey -in KEY -out PLAIN.key` and protect the file with mode 0600",
        path: source)
    case "RSA PRIVATE KEY":
      throw SigningError(.notEd25519, "this is an RSA private key, not Ed25519", path: source)
    case "EC PRIVATE KEY":
      throw SigningError(.notEd25519, "this is an EC private key, not Ed25519", path: source)
    case "OPENSSH PRIVATE KEY":
      throw SigningError(
        .keyFormat,
        "OpenSSH private key format is not supported; expected PKCS#8 PEM "
          + "('PRIVATE KEY', e.g. from `openssl genpkey -algorithm ed25519`)",
        path: source)
    case "PUBLIC KEY":
      throw SigningError(
        .keyFormat, "this is a public key; expected a private key ('PRIVATE KEY')", path: source)
    default:
      throw SigningError(
        .keyFormat, "PEM block is '\(block.label)'; expected 'PRIVATE KEY'", path: source)
    }
    try self.init(pkcs8DER: block.der, source: source)
  }

  private init(pkcs8DER der: [UInt8], source: String) throws(SigningError) {
    func malformed(_ why: String) -> SigningError {
      SigningError(.keyFormat, "malformed PKCS#8 private key: \(why)", path: source)
    }
    var outer = DERReader(der)
    guard var info = outer.read(tag: 0x30), outer.isAtEnd else {
      throw malformed("not a DER SEQUENCE")
    }
    guard let version = info.read(tag: 0x02)?.remainingBytes, version == [0] || version == [1]
    else {
      throw malformed("version is not 0 (v1) or 1 (v2)")
    }
    guard var algorithm = info.read(tag: 0x30), let oid = algorithm.read(tag: 0x06) else {
      throw malformed("no AlgorithmIdentifier")
    }
    let oidBytes = oid.remainingBytes
    guard oidBytes == KnownAlgorithm.ed25519 else {
      throw SigningError(
        .notEd25519,
        "private key algorithm is \(KnownAlgorithm.name(of: oidBytes)), not Ed25519", path: source)
    }
    guard algorithm.isAtEnd else { throw malformed("Ed25519 AlgorithmIdentifier has parameters") }
    // privateKey is an OCTET STRING whose contents are the CurvePrivateKey, itself an OCTET STRING.
    guard var wrapped = info.read(tag: 0x04), let seedReader = wrapped.read(tag: 0x04),
      wrapped.isAtEnd
    else {
      throw malformed("privateKey is not an OCTET STRING holding an OCTET STRING")
    }
    let seed = seedReader.remainingBytes
    guard seed.count == 32 else { throw malformed("seed is \(seed.count) bytes, expected 32") }
    // [0] attributes: carry nothing this tool uses.
    if info.peekTag == 0xa0 { _ = info.read() }
    var attachedPublicKey: [UInt8]?
    if info.peekTag == 0x81 {
      guard version == [1] else { throw malformed("v1 (version 0) key has a publicKey field") }
      guard let bits = info.read(tag: 0x81)?.remainingBytes, bits.count == 33, bits[0] == 0 else {
        throw malformed("publicKey is not a 32-byte BIT STRING")
      }
      attachedPublicKey = Array(bits.dropFirst())
    }
    guard info.isAtEnd else { throw malformed("unexpected data after the key") }
    self.init(seed: seed)
    if let attachedPublicKey, attachedPublicKey != publicKey.rawRepresentation {
      throw SigningError(
        .keyFormat, "the attached public key does not match the private key", path: source)
    }
  }

  /// The PKCS#8 v1 PEM text (`-----BEGIN PRIVATE KEY-----`, 48 DER bytes), the form
  /// `openssl genpkey -algorithm ed25519` writes and every OpenSSL 3 tool reads.
  public var pkcs8PEM: String {
    PEMBlock.format(label: "PRIVATE KEY", der: Self.pkcs8Prefix + seed)
  }

  /// The 64-byte pure Ed25519 signature (RFC 8032 §5.1.6) of `message`. Deterministic: the same
  /// key and message always give the same bytes.
  public func signature(for message: [UInt8]) -> [UInt8] {
    Sodium.ensureInitialized()
    var signature = [UInt8](repeating: 0, count: Int(crypto_sign_BYTES))
    Sodium.withNonNullPointer(message) { messagePointer in
      // Returns 0 always; the length out-parameter is optional and always 64.
      _ = crypto_sign_detached(&signature, nil, messagePointer, UInt64(message.count), secretKey)
    }
    return signature
  }

  /// `Ed25519PrivateKey(keyid: …)`; never the secret.
  public var description: String { "Ed25519PrivateKey(keyid: \(publicKey.keyID))" }

  public var customMirror: Mirror { Mirror(self, children: ["publicKey": publicKey]) }
}

extension DSSEEnvelope {
  /// Signs the PAE with `key` and adds the signature in key-id order. Signing again with the
  /// same key replaces its entry (with identical bytes, Ed25519 being deterministic), so it never
  /// duplicates.
  public mutating func sign(with key: Ed25519PrivateKey) {
    insert(
      DSSESignature(
        keyID: key.publicKey.keyID, signature: key.signature(for: preAuthenticationEncoding)))
  }
}
