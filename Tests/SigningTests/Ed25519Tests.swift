import Foundation
import Keys
import Signing
import Testing

/// RFC 8032 §7.1 test vectors, driven through the PKCS#8 parser.
private struct RFC8032Vector: Sendable, CustomTestStringConvertible {
  var name: String
  var secret: String
  var publicKey: String
  var message: String
  var signature: String

  var testDescription: String { name }
}

private let rfc8032Vectors = [
  RFC8032Vector(
    name: "TEST 1",
    secret: "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
    publicKey: "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a",
    message: "",
    signature: "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e06522490155"
      + "5fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"),
  RFC8032Vector(
    name: "TEST 2",
    secret: "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
    publicKey: "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c",
    message: "72",
    signature: "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da"
      + "085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00"),
]

private let pkcs8V1Prefix = "302e020100300506032b657004220420"
private let spkiPrefix = "302a300506032b6570032100"

@Suite struct Ed25519Tests {
  @Test(arguments: rfc8032Vectors)
  fileprivate func rfc8032VectorThroughPKCS8(_ vector: RFC8032Vector) throws {
    let pem = pemText(label: "PRIVATE KEY", der: hexBytes(pkcs8V1Prefix + vector.secret))
    let key = try Ed25519PrivateKey(pkcs8PEM: pem, source: "vector")
    #expect(hexString(key.publicKey.rawRepresentation) == vector.publicKey)
    let message = hexBytes(vector.message)
    let signature = key.signature(for: message)
    #expect(hexString(signature) == vector.signature)
    #expect(key.publicKey.isValidSignature(signature, for: message))
    // The key writes back exactly the PEM it was read from.
    #expect(key.pkcs8PEM == pem)
  }

  @Test func signVerifyRoundTripAndTampering() throws {
    let key = Ed25519PrivateKey.generate()
    let message = Array("evidence bytes".utf8)
    let signature = key.signature(for: message)
    #expect(signature.count == 64)
    #expect(key.signature(for: message) == signature, "Ed25519 is deterministic")
    #expect(key.publicKey.isValidSignature(signature, for: message))

    var tamperedMessage = message
    tamperedMessage[0] ^= 0x01
    #expect(!key.publicKey.isValidSignature(signature, for: tamperedMessage))
    #expect(!key.publicKey.isValidSignature(signature, for: message + [0]))
    for index in [0, 31, 32, 63] {
      var tamperedSignature = signature
      tamperedSignature[index] ^= 0x80
      #expect(!key.publicKey.isValidSignature(tamperedSignature, for: message))
    }
    #expect(!key.publicKey.isValidSignature(Array(signature.dropLast()), for: message))
    #expect(!key.publicKey.isValidSignature(signature + [0], for: message))
    #expect(!key.publicKey.isValidSignature([], for: message))
    #expect(!Ed25519PrivateKey.generate().publicKey.isValidSignature(signature, for: message))

    // Empty message round trip (libsodium gets a non-null pointer either way).
    #expect(key.publicKey.isValidSignature(key.signature(for: []), for: []))
  }

  @Test func generatedKeysDiffer() {
    #expect(Ed25519PrivateKey.generate().publicKey != Ed25519PrivateKey.generate().publicKey)
  }

  @Test func pemRoundTrips() throws {
    let key = Ed25519PrivateKey.generate()
    let reread = try Ed25519PrivateKey(pkcs8PEM: key.pkcs8PEM, source: "mem")
    #expect(reread.publicKey == key.publicKey)
    #expect(reread.pkcs8PEM == key.pkcs8PEM)

    let publicKey = try Ed25519PublicKey(pem: key.publicKey.pem, source: "mem")
    #expect(publicKey == key.publicKey)
    #expect(publicKey.keyID == key.publicKey.keyID)
    #expect(publicKey.pem == key.publicKey.pem)

    let der = key.publicKey.subjectPublicKeyInfoDER
    #expect(der.count == 44)
    #expect(hexString(der) == spkiPrefix + hexString(key.publicKey.rawRepresentation))
    #expect(key.publicKey.pem == pemText(label: "PUBLIC KEY", der: der))
    #expect(key.publicKey.pem.hasPrefix("-----BEGIN PUBLIC KEY-----\n"))
    #expect(key.publicKey.pem.hasSuffix("\n-----END PUBLIC KEY-----\n"))
    #expect(try Ed25519PublicKey(rawRepresentation: key.publicKey.rawRepresentation) == publicKey)
  }

  @Test func pemParsingIsTolerantOfLayoutButNotOfContent() throws {
    let key = Ed25519PrivateKey.generate()
    // CRLF line ends, text around the block, a body wrapped at another width.
    let der = key.publicKey.subjectPublicKeyInfoDER
    let base64 = Data(der).base64EncodedString()
    let wrapped = stride(from: 0, to: base64.count, by: 20).map { start in
      let from = base64.index(base64.startIndex, offsetBy: start)
      let to = base64.index(from, offsetBy: min(20, base64.count - start))
      return String(base64[from..<to])
    }.joined(separator: "\r\n")
    let text = "comment\r\n-----BEGIN PUBLIC KEY-----\r\n\(wrapped)\r\n-----END PUBLIC KEY-----\r\n"
    #expect(try Ed25519PublicKey(pem: text, source: "crlf") == key.publicKey)

    let doubled = key.publicKey.pem + key.publicKey.pem
    #expect(throws: SigningError.self) { try Ed25519PublicKey(pem: doubled, source: "x") }
    let caught = #expect(throws: SigningError.self) {
      try Ed25519PublicKey(pem: "nothing here", source: "/tmp/x.pub")
    }
    #expect(caught?.code == .keyFormat)
    #expect(caught?.description.hasPrefix("/tmp/x.pub: ") == true)

    let truncated = String(key.publicKey.pem.dropLast(10))
    #expect(throws: SigningError.self) { try Ed25519PublicKey(pem: truncated, source: "x") }
    let badBase64 = key.publicKey.pem.replacingOccurrences(
      of: "MCowBQYDK2VwAyEA", with: "MCowBQYDK2Vw_yEA")
    #expect(throws: SigningError.self) { try Ed25519PublicKey(pem: badBase64, source: "x") }
  }

  @Test func malformedPublicKeysAreRejected() throws {
    let raw = Ed25519PrivateKey.generate().publicKey.rawRepresentation
    func code(_ der: [UInt8]) -> SigningError.Code? {
      do {
        _ = try Ed25519PublicKey(pem: pemText(label: "PUBLIC KEY", der: der), source: "k.pub")
        return nil
      } catch {
        return error.code
      }
    }
    #expect(code(hexBytes(spkiPrefix) + raw) == nil)
    #expect(code(hexBytes(spkiPrefix) + raw.dropLast()) == .keyFormat)
    #expect(code(hexBytes(spkiPrefix) + raw + [0]) == .keyFormat)
    // Parameters present (NULL) after the Ed25519 OID.
    #expect(code(hexBytes("302c300706032b65700500032100") + raw) == .keyFormat)
    // X25519 OID.
    #expect(code(hexBytes("302a300506032b656e032100") + raw) == .notEd25519)
    #expect(code([0x30, 0x00]) == .keyFormat)
    // The private-key block where a public key was expected.
    let privatePEM = Ed25519PrivateKey.generate().pkcs8PEM
    let error = #expect(throws: SigningError.self) {
      try Ed25519PublicKey(pem: privatePEM, source: "k.pub")
    }
    #expect(error?.code == .keyFormat)

    #expect(throws: SigningError.self) {
      try Ed25519PublicKey(rawRepresentation: Array(raw.prefix(31)))
    }
    // A small-order point (the identity) is not a usable public key.
    let identity = [UInt8(1)] + [UInt8](repeating: 0, count: 31)
    let identityError = #expect(throws: SigningError.self) {
      try Ed25519PublicKey(rawRepresentation: identity)
    }
    #expect(identityError?.code == .keyFormat)
  }

  @Test func pkcs8VariantsAndMalformedPrivateKeys() throws {
    let seed = hexBytes(rfc8032Vectors[0].secret)
    let publicKey = hexBytes(rfc8032Vectors[0].publicKey)
    func load(_ der: [UInt8], label: String = "PRIVATE KEY") -> Result<
      Ed25519PrivateKey, SigningError
    > {
      Result { () throws(SigningError) in
        try Ed25519PrivateKey(pkcs8PEM: pemText(label: label, der: der), source: "k.key")
      }
    }
    // v2 (OneAsymmetricKey, version 1) with the public key attached as [1] IMPLICIT BIT STRING.
    let v2 = hexBytes("3051020101300506032b657004220420") + seed + hexBytes("812100") + publicKey
    #expect(try load(v2).get().publicKey.rawRepresentation == publicKey)
    // v2 with attributes (RFC 8410 §10.3 shape) before the public key.
    let attributes = hexBytes("a01f301d060a2a864886f70d01090914310f0c0d437572646c6520436861697273")
    let withAttributes =
      hexBytes("3072020101300506032b657004220420") + seed + attributes + hexBytes("812100")
      + publicKey
    #expect(try load(withAttributes).get().publicKey.rawRepresentation == publicKey)
    // The attached public key must match.
    var wrongPublic = publicKey
    wrongPublic[0] ^= 1
    let mismatched =
      hexBytes("3051020101300506032b657004220420") + seed + hexBytes("812100") + wrongPublic
    #expect(load(mismatched).error?.code == .keyFormat)
    // A v1 key must not carry a public key.
    let v1WithPublic =
      hexBytes("3051020100300506032b657004220420") + seed + hexBytes("812100") + publicKey
    #expect(load(v1WithPublic).error?.code == .keyFormat)
    // Short seed, trailing data, unknown version, non-minimal length.
    #expect(
      load(hexBytes("302d020100300506032b657004210420") + seed.dropLast()).error?.code == .keyFormat
    )
    #expect(load(hexBytes(pkcs8V1Prefix) + seed + [0]).error?.code == .keyFormat)
    #expect(load(hexBytes("302e020102300506032b657004220420") + seed).error?.code == .keyFormat)
    #expect(load(hexBytes("30812e020100300506032b657004220420") + seed).error?.code == .keyFormat)
    // Ed448 OID.
    #expect(load(hexBytes("302e020100300506032b657104220420") + seed).error?.code == .notEd25519)
    // Wrong labels.
    #expect(
      load(hexBytes(pkcs8V1Prefix) + seed, label: "ENCRYPTED PRIVATE KEY").error?.code == .keyFormat
    )
    #expect(
      load(hexBytes(pkcs8V1Prefix) + seed, label: "EC PRIVATE KEY").error?.code == .notEd25519)
    #expect(load(hexBytes(pkcs8V1Prefix) + seed, label: "PUBLIC KEY").error?.code == .keyFormat)
  }

  @Test func privateKeyDescriptionHidesTheSecret() throws {
    let pem = pemText(label: "PRIVATE KEY", der: hexBytes(pkcs8V1Prefix + rfc8032Vectors[0].secret))
    let key = try Ed25519PrivateKey(pkcs8PEM: pem, source: "vector")
    var dumped = ""
    dump(key, to: &dumped)
    for text in [key.description, String(describing: key), String(reflecting: key), dumped] {
      #expect(!text.contains(rfc8032Vectors[0].secret), "secret may leak: \(text)")
      #expect(!text.contains("seed") && !text.contains("secret"), "secret may leak: \(text)")
      #expect(text.contains(key.publicKey.keyID))
    }
  }
}

extension Result {
  fileprivate var error: Failure? {
    if case .failure(let error) = self { return error }
    return nil
  }
}
