import EvidenceIO
import Keys
import Manifest

/// Step 3 of §9: reads `manifest.dsse.json` strictly, checking it against `manifest.json`. The
/// offline kit's `kit.dsse.json` follows the same rules with its own payload type.
enum EnvelopeReader {
  /// The signatures of a well-formed, canonical envelope whose payload is `manifestBytes`.
  /// - Parameters:
  ///   - payloadType: the only `payloadType` accepted.
  ///   - name: the envelope's member name, for findings.
  ///   - manifestName: the member name of the payload, for findings.
  static func read(
    _ bytes: [UInt8], manifestBytes: [UInt8], limits: VerificationLimits,
    payloadType expectedPayloadType: String = DSSE.manifestPayloadType, name: String = BundleTar.envelopeName,
    manifestName: String = BundleTar.manifestName
  ) throws(Finding) -> [DSSESignature] {
    let root: JSONValue
    do {
      root = try CanonicalJSON.parse(bytes)
    } catch {
      throw Finding(.envelopeMalformed, "\(name): \(error)")
    }
    guard case .object(let members) = root else {
      throw Finding(.envelopeMalformed, "\(name): not a JSON object")
    }
    let keys = Set(members.map(\.key))
    guard keys == ["payload", "payloadType", "signatures"] else {
      throw Finding(
        .envelopeMalformed, "\(name): keys are \(keys.sorted()), expected payload, payloadType, signatures")
    }
    guard case .string(let payloadType) = root["payloadType"] else {
      throw Finding(.envelopeMalformed, "\(name): payloadType is not a string")
    }
    guard payloadType == expectedPayloadType else {
      throw Finding(
        .envelopeWrongPayloadType, "\(name): payloadType \"\(payloadType)\", expected \(expectedPayloadType)")
    }
    guard case .string(let payloadText) = root["payload"], let payload = StrictBase64.decode(payloadText) else {
      throw Finding(.envelopeMalformed, "\(name): payload is not canonical standard base64")
    }
    guard case .array(let entries) = root["signatures"], (1...limits.maxSignatures).contains(entries.count) else {
      throw Finding(
        .envelopeMalformed, "\(name): signatures must be an array of 1...\(limits.maxSignatures) entries")
    }
    var signatures: [DSSESignature] = []
    for (index, entry) in entries.enumerated() {
      guard case .object(let fields) = entry, Set(fields.map(\.key)) == ["keyid", "sig"] else {
        throw Finding(.envelopeMalformed, "\(name): signatures[\(index)] must have exactly keyid and sig")
      }
      guard case .string(let keyID) = entry["keyid"], Hex.isHex64(keyID) else {
        throw Finding(
          .envelopeMalformed, "\(name): signatures[\(index)].keyid is not 64 lowercase hex digits")
      }
      guard case .string(let sigText) = entry["sig"], let sig = StrictBase64.decode(sigText), sig.count == 64 else {
        throw Finding(
          .envelopeMalformed, "\(name): signatures[\(index)].sig is not canonical base64 of 64 bytes")
      }
      signatures.append(DSSESignature(keyID: keyID, signature: sig))
    }
    let canonical = try? CanonicalJSON.serialize(root)
    guard canonical == bytes else {
      throw Finding(.envelopeNotCanonical, "\(name): bytes are not RFC 8785 canonical JSON")
    }
    for index in signatures.indices.dropFirst() {
      let previous = signatures[index - 1].keyID
      let current = signatures[index].keyID
      if previous == current {
        throw Finding(.sigDuplicateKey, "\(name): keyid \(current) signs twice")
      }
      if previous > current {
        throw Finding(.envelopeNotCanonical, "\(name): signatures are not sorted by keyid (at \(index))")
      }
    }
    guard payload == manifestBytes else {
      throw Finding(.envelopePayloadMismatch, "\(name): payload differs from \(manifestName)")
    }
    return signatures
  }
}
