import Foundation
import Keys
import Signing
import Testing

@Suite struct DSSETests {
  @Test func preAuthenticationEncodingExactBytes() {
    // The example from the DSSE protocol specification.
    let pae = DSSE.preAuthenticationEncoding(
      payloadType: "http://example.com/HelloWorld", payload: Array("hello world".utf8))
    #expect(pae == Array("DSSEv1 29 http://example.com/HelloWorld 11 hello world".utf8))

    #expect(
      DSSE.preAuthenticationEncoding(payloadType: "", payload: []) == Array("DSSEv1 0  0 ".utf8))
    // Lengths count UTF-8 bytes, not characters.
    #expect(
      DSSE.preAuthenticationEncoding(payloadType: "é", payload: [0x00, 0xff])
        == Array("DSSEv1 2 é 2 ".utf8) + [0x00, 0xff])
    #expect(
      DSSE.manifestPayloadType == "application/vnd.stella-forensics.manifest+json")
  }

  @Test func canonicalJSONExactBytes() {
    let envelope = DSSEEnvelope(
      payload: Array("hi".utf8),
      payloadType: "t\"\\\u{8}\u{c}\n\r\t\u{1}\u{1f}\u{7f}é/<",
      signatures: [
        DSSESignature(keyID: "bb", signature: [0xfb, 0xff]),
        DSSESignature(keyID: "aa", signature: [0x41]),
      ])
    let expected =
      #"{"payload":"aGk=","payloadType":"t\"\\\b\f\n\r\t\u0001\u001f"# + "\u{7f}é/<"
      + #"","signatures":[{"keyid":"aa","sig":"QQ=="},{"keyid":"bb","sig":"+/8="}]}"#
    #expect(String(decoding: envelope.canonicalJSON(), as: UTF8.self) == expected)
    #expect(envelope.canonicalJSON() == Array(expected.utf8))

    let empty = DSSEEnvelope(payload: [], payloadType: "x", signatures: [])
    #expect(
      String(decoding: empty.canonicalJSON(), as: UTF8.self)
        == #"{"payload":"","payloadType":"x","signatures":[]}"#)
  }

  @Test func canonicalJSONMatchesAnIndependentSerializer() throws {
    // JSONSerialization with sorted keys and no slash escaping equals JCS for this shape.
    var envelope = DSSEEnvelope(
      payload: Array(#"{"formatVersion":1}"#.utf8), payloadType: DSSE.manifestPayloadType,
      signatures: [])
    envelope.sign(with: Ed25519PrivateKey.generate())
    envelope.sign(with: Ed25519PrivateKey.generate())
    let object: [String: Any] = [
      "payload": Data(envelope.payload).base64EncodedString(),
      "payloadType": envelope.payloadType,
      "signatures": envelope.signatures.map {
        ["keyid": $0.keyID, "sig": Data($0.signature).base64EncodedString()]
      },
    ]
    let reference = try JSONSerialization.data(
      withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes])
    #expect(envelope.canonicalJSON() == Array(reference))
  }

  @Test func signingTwiceWithTheSameKeyGivesOneSignature() throws {
    let payload = Array(#"{"formatVersion":1}"#.utf8)
    var envelope = DSSEEnvelope(
      payload: payload, payloadType: DSSE.manifestPayloadType, signatures: [])
    let keys = (0..<4).map { _ in Ed25519PrivateKey.generate() }
    envelope.sign(with: keys[0])
    let once = envelope
    envelope.sign(with: keys[0])
    #expect(envelope == once)
    #expect(envelope.signatures.count == 1)

    for key in keys.reversed() { envelope.sign(with: key) }
    envelope.sign(with: keys[2])
    #expect(envelope.signatures.count == 4)
    let keyIDs = envelope.signatures.map(\.keyID)
    #expect(keyIDs == keys.map(\.publicKey.keyID).sorted())
    #expect(Set(keyIDs).count == 4)

    // Order of signing does not matter: {A,B} equals A then B equals B then A.
    var other = DSSEEnvelope(
      payload: payload, payloadType: DSSE.manifestPayloadType, signatures: [])
    for key in keys { other.sign(with: key) }
    #expect(other.canonicalJSON() == envelope.canonicalJSON())

    let pae = DSSE.preAuthenticationEncoding(
      payloadType: DSSE.manifestPayloadType, payload: payload)
    for key in keys {
      let entry = try #require(envelope.signatures.first { $0.keyID == key.publicKey.keyID })
      #expect(key.publicKey.isValidSignature(entry.signature, for: pae))
    }
  }

  @Test func initSortsAndDeduplicates() {
    let envelope = DSSEEnvelope(
      payload: [], payloadType: "x",
      signatures: [
        DSSESignature(keyID: "c", signature: [3]),
        DSSESignature(keyID: "a", signature: [1]),
        DSSESignature(keyID: "c", signature: [4]),
        DSSESignature(keyID: "b", signature: [2]),
      ])
    #expect(
      envelope.signatures == [
        DSSESignature(keyID: "a", signature: [1]),
        DSSESignature(keyID: "b", signature: [2]),
        DSSESignature(keyID: "c", signature: [4]),
      ])
  }

  @Test func envelopeSignatureVerifiesWithOpenSSLOverPAE() throws {
    let directory = try TemporaryDirectory()
    defer { directory.cleanup() }
    let key = Ed25519PrivateKey.generate()
    let (_, publicPath) = try KeyFiles.writeKeyPair(key, directory: directory.path, name: "k")
    let manifest = Array(#"{"formatVersion":1,"x":"é"}"#.utf8)
    var envelope = DSSEEnvelope(
      payload: manifest, payloadType: DSSE.manifestPayloadType, signatures: [])
    envelope.sign(with: key)

    // Rebuild PAE the way BUNDLE-FORMAT.md §11 does with printf.
    let type = DSSE.manifestPayloadType
    let pae = Array("DSSEv1 \(type.utf8.count) \(type) \(manifest.count) ".utf8) + manifest
    #expect(envelope.preAuthenticationEncoding == pae)
    try writeFile(directory.file("pae.bin"), pae)
    let signature = try #require(envelope.signatures.first).signature
    try writeFile(directory.file("sig.bin"), signature)
    try opensslOK(
      "pkeyutl", "-verify", "-pubin", "-inkey", publicPath, "-rawin",
      "-in", directory.file("pae.bin"), "-sigfile", directory.file("sig.bin"))
  }
}
