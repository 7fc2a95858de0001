import EvidenceIO
import Keys
import Manifest
import Signing

/// Turns arbitrary bytes into a bundle whose signature, blob digests and sizes are right, so the
/// verifier's later steps (manifest schema, member set, decompression, segment framing,
/// sequences, OTLP time scan) see mutated content instead of stopping at `SIG_INVALID` or
/// `BLOB_DIGEST_MISMATCH`.
///
/// Input layout: a ustar archive read leniently (any header whose size field parses). The member
/// named `manifest.json` (else the first member) is the manifest; members under `blobs/` are the
/// blobs, in input order. A blob that does not start with the zstd magic is treated as a raw
/// segment: its record CRCs are repaired (unless a record's stored CRC is zero, which keeps the
/// `SEGMENT_CRC_MISMATCH` path reachable) and it is compressed. When the manifest parses as a JSON
/// object with a `blobs` array, entry *i* gets the path, `sha256`, `size` (and, for raw
/// segments, `uncompressedSize`) of blob *i*, entries and blobs are sorted by the new path, and
/// the manifest is re-serialized canonically. Then it is signed with ``FuzzKeys/privateKey`` and
/// written as a canonical archive.
public enum ResignedBundle {
  /// A lenient member list: name and data.
  public typealias Member = (name: String, data: [UInt8])

  private struct Blob {
    var name: String
    var data: [UInt8]
    /// The raw segment length when the harness compressed it.
    var rawCount: Int?
  }

  /// The resigned canonical archive for `input`, or `nil` when no manifest member was found.
  public static func make(from input: [UInt8]) -> [UInt8]? {
    let members = LenientTar.members(of: input)
    guard let manifestMember = members.first(where: { $0.name == "manifest.json" }) ?? members.first
    else { return nil }
    var blobs: [Blob] = []
    for member in members where member.name.hasPrefix("blobs/") {
      if Zstd.hasFrameMagic(member.data) {
        blobs.append(Blob(name: member.name, data: member.data, rawCount: nil))
      } else {
        let segment = repairingCRCs(member.data)
        guard let compressed = try? Zstd.compress(segment) else { continue }
        blobs.append(Blob(name: member.name, data: compressed, rawCount: segment.count))
      }
    }
    var manifestBytes = manifestMember.data
    if case .object(var fields)? = try? CanonicalJSON.parse(manifestBytes),
      let blobsIndex = fields.firstIndex(where: { $0.key == "blobs" }),
      case .array(let entries) = fields[blobsIndex].value
    {
      var paired: [(entry: JSONValue, blob: Blob)] = []
      var unpairedEntries: [JSONValue] = []
      var unpairedBlobs: [Blob] = []
      for (index, entry) in entries.enumerated() {
        guard index < blobs.count, case .object(var entryFields) = entry else {
          unpairedEntries.append(entry)
          if index < blobs.count { unpairedBlobs.append(blobs[index]) }
          continue
        }
        var blob = blobs[index]
        let digest = SHA256Digest.hex(of: blob.data)
        blob.name = BlobEntry.path(forDigest: digest)
        set(&entryFields, "path", .string(blob.name))
        set(&entryFields, "sha256", .string(digest))
        set(&entryFields, "size", .integer(blob.data.count))
        if let rawCount = blob.rawCount {
          set(&entryFields, "uncompressedSize", .integer(rawCount))
        }
        paired.append((.object(entryFields), blob))
      }
      if entries.count < blobs.count { unpairedBlobs += blobs[entries.count...] }
      // Paired entries are sorted by path as a writer would; the rest keep their order after them.
      paired.sort { Array($0.blob.name.utf8).lexicographicallyPrecedes(Array($1.blob.name.utf8)) }
      fields[blobsIndex].value = .array(paired.map(\.entry) + unpairedEntries)
      blobs = paired.map(\.blob) + unpairedBlobs
      if let canonical = try? CanonicalJSON.serialize(.object(fields)) { manifestBytes = canonical }
    }
    var envelope = DSSEEnvelope(
      payload: manifestBytes, payloadType: DSSE.manifestPayloadType, signatures: [])
    envelope.sign(with: FuzzKeys.privateKey)
    var out: [Member] = [
      (BundleTar.manifestName, manifestBytes),
      (BundleTar.envelopeName, envelope.canonicalJSON()),
    ]
    out += blobs.map { ($0.name, $0.data) }
    return LenientTar.canonicalArchive(out)
  }

  private static func set(
    _ fields: inout [(key: String, value: JSONValue)], _ key: String, _ value: JSONValue
  ) {
    if let index = fields.firstIndex(where: { $0.key == key }) {
      fields[index].value = value
    } else {
      fields.append((key, value))
    }
  }

  /// Rewrites each record's CRC-32C to match its body while the framing still parses; a stored
  /// CRC of zero is left alone.
  static func repairingCRCs(_ segment: [UInt8]) -> [UInt8] {
    var bytes = segment
    // Header: magic 4, version 1, signal 1, tenantLen 2, tenant, nodeLen 2, node.
    guard bytes.count >= 8 else { return bytes }
    let tenantLength = Int(bytes[6]) << 8 | Int(bytes[7])
    guard bytes.count >= 10 + tenantLength else { return bytes }
    let nodeLength = Int(bytes[8 + tenantLength]) << 8 | Int(bytes[9 + tenantLength])
    var offset = 10 + tenantLength + nodeLength
    while offset + 12 <= bytes.count {
      let length =
        Int(bytes[offset + 4]) << 24 | Int(bytes[offset + 5]) << 16 | Int(bytes[offset + 6]) << 8
        | Int(bytes[offset + 7])
      let bodyStart = offset + 12
      guard length <= bytes.count - bodyStart else { break }
      let stored = bytes[(offset + 8)..<(offset + 12)]
      if stored.contains(where: { $0 != 0 }) {
        let crc = CRC32C.checksum(Array(bytes[bodyStart..<(bodyStart + length)]))
        bytes[offset + 8] = UInt8(truncatingIfNeeded: crc >> 24)
        bytes[offset + 9] = UInt8(truncatingIfNeeded: crc >> 16)
        bytes[offset + 10] = UInt8(truncatingIfNeeded: crc >> 8)
        bytes[offset + 11] = UInt8(truncatingIfNeeded: crc)
      }
      offset = bodyStart + length
    }
    return bytes
  }
}

/// A forgiving ustar reader and a canonical writer, for harness input shaping only.
public enum LenientTar {
  /// Members of `input` as far as headers with a parseable octal size go.
  public static func members(of input: [UInt8]) -> [ResignedBundle.Member] {
    var result: [ResignedBundle.Member] = []
    var offset = 0
    while offset + 512 <= input.count, result.count < 64 {
      let header = input[offset..<(offset + 512)]
      if header.allSatisfy({ $0 == 0 }) { break }
      let nameBytes = header.prefix(100).prefix { $0 != 0 }
      var size = 0
      for byte in header[(offset + 124)..<(offset + 135)] {
        guard (0x30...0x37).contains(byte) else { break }
        size = size * 8 + Int(byte - 0x30)
      }
      let dataStart = offset + 512
      let available = min(size, input.count - dataStart)
      let data = Array(input[dataStart..<(dataStart + available)])
      result.append((String(decoding: nameBytes, as: UTF8.self), data))
      offset = dataStart + (available + 511) / 512 * 512
    }
    return result
  }

  /// The §2.1 archive of `members`; names that no header can hold are replaced.
  public static func canonicalArchive(_ members: [ResignedBundle.Member]) -> [UInt8] {
    var out: [UInt8] = []
    for (index, member) in members.enumerated() {
      let header =
        BundleTar.canonicalHeader(name: member.name, size: UInt64(member.data.count))
        ?? BundleTar.canonicalHeader(name: "member-\(index)", size: UInt64(member.data.count))
      guard let header else { continue }
      out += header
      out += member.data
      out += [UInt8](repeating: 0, count: (512 - member.data.count % 512) % 512)
    }
    out += [UInt8](repeating: 0, count: 1024)
    return out
  }
}
