import Manifest

/// Step 5 of §9: the manifest, now authenticated, must be canonical, version 1, schema-valid,
/// sorted, content-addressed and gap-free per stream.
enum ManifestChecks {
  static func authenticatedManifest(_ bytes: [UInt8]) throws(Finding) -> BundleManifest {
    // 5.1
    let root: JSONValue
    do {
      root = try CanonicalJSON.parse(bytes)
    } catch {
      throw Finding(.manifestMalformed, "manifest.json: \(error)")
    }
    let canonical: [UInt8]
    do {
      canonical = try CanonicalJSON.serialize(root)
    } catch {
      throw Finding(.manifestNotCanonical, "manifest.json: \(error.message)")
    }
    guard canonical == bytes else {
      throw Finding(.manifestNotCanonical, "manifest.json: bytes are not RFC 8785 canonical JSON")
    }
    // 5.2
    guard root["formatVersion"] == .number("1") else {
      let shown =
        root["formatVersion"].flatMap { try? CanonicalJSON.serialize($0) }.map { String(decoding: $0, as: UTF8.self) }
        ?? "absent"
      throw Finding(.manifestUnsupportedVersion, "manifest.json: formatVersion is \(shown), this verifier reads 1")
    }
    // 5.3
    let manifest: BundleManifest
    do {
      manifest = try BundleManifest(validating: root)
    } catch {
      throw Finding(.manifestSchema, "manifest.json: \(error)")
    }
    // 5.4
    try checkStrictlyAscending(manifest.capture.nodes.map { Array($0.utf8) }, what: "capture.nodes") {
      "node \"\(manifest.capture.nodes[$0])\""
    }
    try checkStrictlyAscending(manifest.blobs.map { Array($0.path.utf8) }, what: "blobs") {
      "blobs[\($0)] \(manifest.blobs[$0].path)"
    }
    // 5.5
    for (index, entry) in manifest.blobs.enumerated() where entry.path != BlobEntry.path(forDigest: entry.sha256) {
      throw Finding(
        .manifestPathMismatch, "manifest.json: blobs[\(index)].path \(entry.path) does not match its sha256")
    }
    // 5.6
    try checkSequences(manifest.blobs)
    return manifest
  }

  private static func checkStrictlyAscending(_ keys: [[UInt8]], what: String, name: (Int) -> String) throws(Finding) {
    for index in keys.indices.dropFirst() {
      if keys[index] == keys[index - 1] {
        throw Finding(.manifestDuplicateEntry, "manifest.json: \(what): \(name(index)) appears twice")
      }
      if keys[index].lexicographicallyPrecedes(keys[index - 1]) {
        throw Finding(.manifestUnsorted, "manifest.json: \(what): \(name(index)) is out of order")
      }
    }
  }

  private static func checkSequences(_ blobs: [BlobEntry]) throws(Finding) {
    let byStream = Dictionary(grouping: blobs, by: \.stream)
    for stream in byStream.keys.sorted() {
      let ordered = (byStream[stream] ?? []).sorted { $0.firstSeq < $1.firstSeq }
      for (previous, next) in zip(ordered, ordered.dropFirst()) {
        if next.firstSeq <= previous.lastSeq {
          throw Finding(
            .manifestSequenceOverlap,
            "stream \(stream): \(next.path) starts at seq \(next.firstSeq), inside \(previous.path) (\(previous.firstSeq)...\(previous.lastSeq))"
          )
        }
        if next.firstSeq > previous.lastSeq + 1 {
          throw Finding(
            .manifestSequenceGap,
            "stream \(stream): seqs \(previous.lastSeq + 1)...\(next.firstSeq - 1) are missing between \(previous.path) and \(next.path)"
          )
        }
      }
    }
  }
}
