import Foundation
import Keys
import Signing
import Testing

@Suite struct KeyFilesTests {
  @Test func writtenKeyPairInteroperatesWithOpenSSL() throws {
    let directory = try TemporaryDirectory()
    defer { directory.cleanup() }
    let key = Ed25519PrivateKey.generate()
    let (privatePath, publicPath) = try KeyFiles.writeKeyPair(
      key, directory: directory.path, name: "signer")
    #expect(privatePath == directory.file("signer.key"))
    #expect(publicPath == directory.file("signer.pub"))
    #expect(try posixMode(privatePath) == 0o600)
    #expect(try posixMode(publicPath) == 0o644)
    #expect(try readText(privatePath) == key.pkcs8PEM)
    #expect(try readText(publicPath) == key.publicKey.pem)

    // OpenSSL reads the private key, and derives the same public key file byte for byte.
    try opensslOK("pkey", "-in", privatePath, "-noout")
    let derivedPEM = try opensslOK("pkey", "-in", privatePath, "-pubout")
    #expect(String(decoding: derivedPEM, as: UTF8.self) == key.publicKey.pem)

    // keyid = openssl pkey -pubin -in k.pub -outform DER | sha256sum
    let der = try opensslOK("pkey", "-pubin", "-in", publicPath, "-outform", "DER")
    #expect(Array(der) == key.publicKey.subjectPublicKeyInfoDER)
    let messagePath = directory.file("msg")
    try writeFile(messagePath, Array(der))
    let digestLine = try opensslOK("dgst", "-sha256", "-r", messagePath)
    let digest = String(decoding: digestLine, as: UTF8.self).prefix(64)
    #expect(String(digest) == key.publicKey.keyID)

    // A signature made here verifies with openssl pkeyutl.
    let message = Array("bytes signed by Swift\n\u{0}\u{ff}".utf8)
    try writeFile(messagePath, message)
    let signaturePath = directory.file("sig")
    try writeFile(signaturePath, key.signature(for: message))
    let verified = try opensslOK(
      "pkeyutl", "-verify", "-pubin", "-inkey", publicPath, "-rawin", "-in", messagePath,
      "-sigfile", signaturePath)
    #expect(String(decoding: verified, as: UTF8.self).contains("Signature Verified Successfully"))

    // And a wrong signature does not.
    var bad = key.signature(for: message)
    bad[10] ^= 1
    try writeFile(signaturePath, bad)
    let rejected = try openssl([
      "pkeyutl", "-verify", "-pubin", "-inkey", publicPath, "-rawin", "-in", messagePath,
      "-sigfile", signaturePath,
    ])
    #expect(rejected.status != 0)

    // Loading back gives the same key.
    let loaded = try KeyFiles.loadPrivateKey(path: privatePath)
    #expect(loaded.publicKey == key.publicKey)
    #expect(try KeyFiles.loadPublicKey(path: publicPath) == key.publicKey)
  }

  @Test func opensslGeneratedKeyLoadsAndSignsIdentically() throws {
    let directory = try TemporaryDirectory()
    defer { directory.cleanup() }
    let privatePath = directory.file("ossl.key")
    let publicPath = directory.file("ossl.pub")
    try opensslOK("genpkey", "-algorithm", "ed25519", "-out", privatePath)
    try FileManager.default.setAttributes([.posixPermissions: 0o600], ofItemAtPath: privatePath)
    try opensslOK("pkey", "-in", privatePath, "-pubout", "-out", publicPath)

    let key = try KeyFiles.loadPrivateKey(path: privatePath)
    let publicKey = try KeyFiles.loadPublicKey(path: publicPath)
    #expect(key.publicKey == publicKey)
    #expect(key.pkcs8PEM == (try readText(privatePath)))

    // Ed25519 is deterministic, so OpenSSL's signature must equal ours byte for byte.
    let message = Array("same bytes, same signature".utf8)
    let messagePath = directory.file("msg")
    try writeFile(messagePath, message)
    let opensslSignature = try opensslOK(
      "pkeyutl", "-sign", "-inkey", privatePath, "-rawin", "-in", messagePath)
    #expect(Array(opensslSignature) == key.signature(for: message))
    #expect(publicKey.isValidSignature(Array(opensslSignature), for: message))
  }

  @Test func insecurePermissionsAreRejected() throws {
    let directory = try TemporaryDirectory()
    defer { directory.cleanup() }
    let key = Ed25519PrivateKey.generate()
    let (privatePath, _) = try KeyFiles.writeKeyPair(key, directory: directory.path, name: "k")

    for mode in [0o644, 0o640, 0o604, 0o660, 0o601] {
      try FileManager.default.setAttributes([.posixPermissions: mode], ofItemAtPath: privatePath)
      let error = #expect(throws: SigningError.self) {
        try KeyFiles.loadPrivateKey(path: privatePath)
      }
      #expect(error?.code == .keyFileInsecurePermissions)
      #expect(error?.path == privatePath)
      let octal = "0" + String(mode, radix: 8)
      #expect(
        error?.description
          == "\(privatePath): private key file is readable by group or others (mode \(octal)); "
          + "chmod 600 it")
    }
    for mode in [0o600, 0o400] {
      try FileManager.default.setAttributes([.posixPermissions: mode], ofItemAtPath: privatePath)
      #expect(try KeyFiles.loadPrivateKey(path: privatePath).publicKey == key.publicKey)
    }
  }

  @Test func overwriteIsRefusedAndNothingIsWritten() throws {
    let directory = try TemporaryDirectory()
    defer { directory.cleanup() }
    let first = Ed25519PrivateKey.generate()
    let (privatePath, publicPath) = try KeyFiles.writeKeyPair(
      first, directory: directory.path, name: "signer")

    let error = #expect(throws: SigningError.self) {
      try KeyFiles.writeKeyPair(
        Ed25519PrivateKey.generate(), directory: directory.path, name: "signer")
    }
    #expect(error?.code == .fileExists)
    #expect(error?.path == privatePath)
    #expect(try readText(privatePath) == first.pkcs8PEM)
    #expect(try readText(publicPath) == first.publicKey.pem)

    // Only the public half exists: still refused, and no private key appears.
    try FileManager.default.removeItem(atPath: privatePath)
    let publicOnly = #expect(throws: SigningError.self) {
      try KeyFiles.writeKeyPair(
        Ed25519PrivateKey.generate(), directory: directory.path, name: "signer")
    }
    #expect(publicOnly?.code == .fileExists)
    #expect(publicOnly?.path == publicPath)
    #expect(!FileManager.default.fileExists(atPath: privatePath))
    #expect(try readText(publicPath) == first.publicKey.pem)
  }

  @Test func namesAreValidatedAndDirectoriesCreated() throws {
    let directory = try TemporaryDirectory()
    defer { directory.cleanup() }
    for name in ["", ".hidden", "a/b", "..", "/abs"] {
      let error = #expect(throws: SigningError.self) {
        try KeyFiles.writeKeyPair(
          Ed25519PrivateKey.generate(), directory: directory.path, name: name)
      }
      #expect(error?.code == .invalidKeyName)
    }
    #expect(try FileManager.default.contentsOfDirectory(atPath: directory.path).isEmpty)

    let nested = directory.file("a/b/c/")
    let (privatePath, publicPath) = try KeyFiles.writeKeyPair(
      Ed25519PrivateKey.generate(), directory: nested, name: "n")
    #expect(privatePath == nested + "n.key")
    #expect(FileManager.default.fileExists(atPath: publicPath))
  }

  @Test func otherAlgorithmsAreRejectedAsNotEd25519() throws {
    let directory = try TemporaryDirectory()
    defer { directory.cleanup() }
    let cases: [(name: String, arguments: [String])] = [
      ("rsa", ["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:1024"]),
      ("ec", ["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"]),
      ("x25519", ["-algorithm", "X25519"]),
      ("ed448", ["-algorithm", "ED448"]),
    ]
    for (name, arguments) in cases {
      let privatePath = directory.file("\(name).key")
      let publicPath = directory.file("\(name).pub")
      try #require(try openssl(["genpkey"] + arguments + ["-out", privatePath]).status == 0)
      try FileManager.default.setAttributes([.posixPermissions: 0o600], ofItemAtPath: privatePath)
      try opensslOK("pkey", "-in", privatePath, "-pubout", "-out", publicPath)

      let publicError = #expect(throws: SigningError.self, "\(name) public key") {
        try KeyFiles.loadPublicKey(path: publicPath)
      }
      #expect(publicError?.code == .notEd25519, "\(name): \(String(describing: publicError))")
      #expect(publicError?.description.hasPrefix(publicPath + ": ") == true)
      #expect(publicError?.description.contains("not Ed25519") == true)

      let privateError = #expect(throws: SigningError.self, "\(name) private key") {
        try KeyFiles.loadPrivateKey(path: privatePath)
      }
      #expect(privateError?.code == .notEd25519, "\(name): \(String(describing: privateError))")
    }
    // Traditional PKCS#1 "RSA PUBLIC KEY".
    let rsaPublic = directory.file("rsa1.pub")
    try opensslOK("rsa", "-in", directory.file("rsa.key"), "-RSAPublicKey_out", "-out", rsaPublic)
    let error = #expect(throws: SigningError.self) { try KeyFiles.loadPublicKey(path: rsaPublic) }
    #expect(error?.code == .notEd25519)
  }

  @Test func unreadableAndNonKeyFiles() throws {
    let directory = try TemporaryDirectory()
    defer { directory.cleanup() }
    let missing = directory.file("missing.pub")
    let missingError = #expect(throws: SigningError.self) {
      try KeyFiles.loadPublicKey(path: missing)
    }
    #expect(missingError?.code == .keyFileUnreadable)
    #expect(missingError?.description.hasPrefix(missing + ": cannot open: ") == true)

    let directoryError = #expect(throws: SigningError.self) {
      try KeyFiles.loadPublicKey(path: directory.path)
    }
    #expect(directoryError?.code == .keyFileUnreadable)

    let binary = directory.file("binary.pub")
    try writeFile(binary, [0xff, 0xfe, 0x00])
    #expect(throws: SigningError.self) { try KeyFiles.loadPublicKey(path: binary) }

    let huge = directory.file("huge.pub")
    try writeFile(huge, [UInt8](repeating: 0x41, count: 100_000))
    let hugeError = #expect(throws: SigningError.self) { try KeyFiles.loadPublicKey(path: huge) }
    #expect(hugeError?.code == .keyFormat)
  }
}
