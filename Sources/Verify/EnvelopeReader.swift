import Manifest
import Signing

/// Step 3 of §9: reads `manifest.dsse.json` strictly, checking it against `manifest.json`.
enum EnvelopeReader {
  /// The signatures of a well-formed, canonical envelope whose payload is `manifestBytes`.
  static func read(_ bytes: [UInt8], manifestBytes: [UInt8], limits: VerificationLimits) throws(Finding)
    -> [DSSESignature]
  {
    let root: JSONValue
    do {
      root = try CanonicalJSON.parse(bytes)
    } catch {
      throw Finding(.envelopeMalformed, "manifest.dsse.json: \(error)")
    }
    guard case .object(let members) = root else {
      throw Finding(.envelopeMalformed, "manifest.dsse.json: not a JSON object")
    }
    let keys = Set(members.map(\.key))
    guard keys == ["payload", "payloadType", "signatures"] else {
      throw Finding(
        .envelopeMalformed, "manifest.dsse.json: keys are \(keys.sorted()), expected payload, payloadType, signatures")
    }
    guard case .string(let payloadType) = root["payloadType"] else {
      throw Finding(.envelopeMalformed, "manifest.dsse.json: payloadType is not a string")
    }
    guard payloadType == DSSE.manifestPayloadType else {
      throw Finding(
        .envelopeWrongPayloadType,
        "manifest.dsse.json: payloadType \"\(payloadType)\", expected \(DSSE.manifestPayloadType)")
    }
    guard case .string(let payloadText) = root["payload"], let payload = StrictBase64.decode(payloadText) else {
      throw Finding(.envelopeMalformed, "manifest.dsse.json: payload is not canonical standard base64")
    }
    guard case .array(let entries) = root["signatures"], (1...limits.maxSignatures).contains(entries.count) else {
      throw Finding(
        .envelopeMalformed, "manifest.dsse.json: signatures must be an array of 1...\(limits.maxSignatures) entries")
    }
    var signatures: [DSSESignature] = []
    for (index, entry) in entries.enumerated() {
      guard case .object(let fields) = entry, Set(fields.map(\.key)) == ["keyid", "sig"] else {
        throw Finding(.envelopeMalformed, "manifest.dsse.json: signatures[\(index)] must have exactly keyid and sig")
      }
      guard case .string(let keyID) = entry["keyid"], Hex.isHex64(keyID) else {
        throw Finding(
          .envelopeMalformed, "manifest.dsse.json: signatures[\(index)].keyid is not 64 lowercase hex digits")
      }
      guard case .string(let sigText) = entry["sig"], let sig = StrictBase64.decode(sigText), sig.count == 64 else {
        throw Finding(
          .envelopeMalformed, "manifest.dsse.json: signatures[\(index)].sig is not canonical base64 of 64 bytes")
      }
      signatures.append(DSSESignature(keyID: keyID, signature: sig))
    }
    let canonical = try? CanonicalJSON.serialize(root)
    guard canonical == bytes else {
      throw Finding(.envelopeNotCanonical, "manifest.dsse.json: bytes are not RFC 8785 canonical JSON")
    }
    for index in signatures.indices.dropFirst() {
      let previous = signatures[index - 1].keyID
      let current = signatures[index].keyID
      if previous == current {
        throw Finding(.sigDuplicateKey, "manifest.dsse.json: keyid \(current) signs twice")
      }
      if previous > current {
        throw Finding(.envelopeNotCanonical, "manifest.dsse.json: signatures are not sorted by keyid (at \(index))")
      }
    }
    guard payload == manifestBytes else {
      throw Finding(.envelopePayloadMismatch, "manifest.dsse.json: payload differs from manifest.json")
    }
    return signatures
  }
}
