/// Dead Simple Signing Envelope (DSSE v1) pieces used by bundles (BUNDLE-FORMAT.md §5).
public enum DSSE {
  /// The `payloadType` of every bundle envelope; the payload is `manifest.json`.
  public static let manifestPayloadType = "application/vnd.stella-forensics.manifest+json"
  /// The `payloadType` of an offline kit's envelope; the payload is `kit.json`. Distinct from
  /// bundles', so a signature over a kit can never pass as one over a bundle manifest.
  public static let kitPayloadType = "application/vnd.stella-forensics.kit+json"

  /// The bytes that are actually signed:
  /// `"DSSEv1" SP LEN(type) SP type SP LEN(payload) SP payload`, lengths in ASCII decimal bytes.
  public static func preAuthenticationEncoding(payloadType: String, payload: [UInt8]) -> [UInt8] {
    let type = Array(payloadType.utf8)
    var out = Array("DSSEv1 \(type.count) ".utf8)
    out.reserveCapacity(out.count + type.count + payload.count + 24)
    out += type
    out += Array(" \(payload.count) ".utf8)
    out += payload
    return out
  }
}

/// One entry of an envelope's `signatures`: the signer's key id and the 64-byte Ed25519 signature.
public struct DSSESignature: Sendable, Equatable {
  /// Lowercase hex SHA-256 of the signer's SubjectPublicKeyInfo (``Ed25519PublicKey/keyID``).
  public var keyID: String
  /// The signature over ``DSSE/preAuthenticationEncoding(payloadType:payload:)``.
  public var signature: [UInt8]

  /// Creates an entry.
  public init(keyID: String, signature: [UInt8]) {
    self.keyID = keyID
    self.signature = signature
  }
}

/// A DSSE envelope whose signatures are kept sorted ascending by key id with no key id twice,
/// the only order BUNDLE-FORMAT.md §3/§5 allows, so serialising it is deterministic.
public struct DSSEEnvelope: Sendable, Equatable {
  /// The signed content (for bundles, the exact bytes of `manifest.json`).
  public var payload: [UInt8]
  /// What the payload is; part of the signed bytes.
  public var payloadType: String
  /// The signatures, sorted ascending by key id (byte order of the UTF-8), each key id once.
  public private(set) var signatures: [DSSESignature]

  /// Creates an envelope, sorting `signatures` by key id. If a key id appears more than once, the
  /// later entry wins, as if the entries had been added one by one. A verifier that must reject
  /// unsorted or duplicate entries has to check the parsed JSON before building this value.
  public init(payload: [UInt8], payloadType: String, signatures: [DSSESignature]) {
    self.payload = payload
    self.payloadType = payloadType
    self.signatures = []
    for signature in signatures { insert(signature) }
  }

  /// The bytes each signature signs: PAE of this envelope's type and payload.
  public var preAuthenticationEncoding: [UInt8] {
    DSSE.preAuthenticationEncoding(payloadType: payloadType, payload: payload)
  }

  /// Adds `signature` in key-id order; an entry with the same key id is replaced, so a key id
  /// never appears twice.
  package mutating func insert(_ signature: DSSESignature) {
    let key = Array(signature.keyID.utf8)
    // Binary search for the first entry whose key id is not below the new one.
    var low = 0
    var high = signatures.count
    while low < high {
      let middle = (low + high) / 2
      if Array(signatures[middle].keyID.utf8).lexicographicallyPrecedes(key) {
        low = middle + 1
      } else {
        high = middle
      }
    }
    if low < signatures.count && Array(signatures[low].keyID.utf8) == key {
      signatures[low] = signature
    } else {
      signatures.insert(signature, at: low)
    }
  }

  /// The RFC 8785 (JCS) serialisation: `{"payload":…,"payloadType":…,"signatures":[{"keyid":…,
  /// "sig":…},…]}` with base64 payload and signatures, no whitespace and no trailing newline.
  public func canonicalJSON() -> [UInt8] {
    var out: [UInt8] = []
    out.reserveCapacity(payload.count * 4 / 3 + 128 + signatures.count * 160)
    out += Array(#"{"payload":""#.utf8)
    out += Array(StrictBase64.encode(payload).utf8)
    out += Array(#"","payloadType":"#.utf8)
    Self.appendJSONString(payloadType, to: &out)
    out += Array(#","signatures":["#.utf8)
    for (index, signature) in signatures.enumerated() {
      if index > 0 { out.append(UInt8(ascii: ",")) }
      out += Array(#"{"keyid":"#.utf8)
      Self.appendJSONString(signature.keyID, to: &out)
      out += Array(#","sig":""#.utf8)
      out += Array(StrictBase64.encode(signature.signature).utf8)
      out += Array(#""}"#.utf8)
    }
    out += Array("]}".utf8)
    return out
  }

  /// Appends `text` as a JSON string with JCS's escapes (RFC 8785 §3.2.2.2): `\"`, `\\`, `\b`,
  /// `\f`, `\n`, `\r`, `\t`, other controls as `\u00xx` in lowercase hex, everything else as
  /// literal UTF-8.
  static func appendJSONString(_ text: String, to out: inout [UInt8]) {
    let hexDigits = Array("0123456789abcdef".utf8)
    out.append(UInt8(ascii: "\""))
    for byte in text.utf8 {
      switch byte {
      case UInt8(ascii: "\""): out += [UInt8(ascii: "\\"), UInt8(ascii: "\"")]
      case UInt8(ascii: "\\"): out += [UInt8(ascii: "\\"), UInt8(ascii: "\\")]
      case 0x08: out += [UInt8(ascii: "\\"), UInt8(ascii: "b")]
      case 0x0c: out += [UInt8(ascii: "\\"), UInt8(ascii: "f")]
      case 0x0a: out += [UInt8(ascii: "\\"), UInt8(ascii: "n")]
      case 0x0d: out += [UInt8(ascii: "\\"), UInt8(ascii: "r")]
      case 0x09: out += [UInt8(ascii: "\\"), UInt8(ascii: "t")]
      case 0x00..<0x20:
        out += Array(#"\u00"#.utf8)
        out.append(hexDigits[Int(byte >> 4)])
        out.append(hexDigits[Int(byte & 0x0f)])
      default:
        out.append(byte)
      }
    }
    out.append(UInt8(ascii: "\""))
  }
}
