import Keys

/// The commands a reader can run to check the bundle again without trusting this report: with
/// this tool, with OpenSSL and coreutils (BUNDLE-FORMAT.md §11), and with Python's
/// `cryptography`. They name the bundle and key files as the report was asked for them.
struct ReverifyCommands {
  /// The bundle's file name, unquoted.
  var bundle: String
  /// Trusted key file names for `verify`, unquoted.
  var trustedKeyFiles: [String]
  /// Key file names whose signatures the OpenSSL and Python checks verify one by one.
  var signingKeyFiles: [String]
  var threshold: Int
  var ignoresUntrustedSignatures: Bool
  /// The manifest digest the checks should reproduce, when the report knows one.
  var manifestSHA256: String?

  /// `stella-forensics verify --deep …`: every check of the format.
  var tool: String {
    var words = ["stella-forensics", "verify", "--deep"]
    for key in trustedKeyFiles { words += ["--trusted-key", HTMLText.shellQuoted(key)] }
    if threshold != 1 { words += ["--threshold", String(threshold)] }
    if ignoresUntrustedSignatures { words.append("--ignore-untrusted") }
    words.append(HTMLText.shellQuoted(bundle))
    return words.joined(separator: " ")
  }

  /// A bash snippet: member list, envelope payload, the Ed25519 signature over the DSSE PAE with
  /// `openssl pkeyutl -verify -rawin` for each key, and every blob's SHA-256 with `sha256sum`.
  var openSSL: String {
    let keys = signingKeyFiles.map(HTMLText.shellQuoted).joined(separator: " ")
    // A subshell, so a failing step stops the check without closing the reader's own shell.
    var lines = [
      "(",
      "set -euo pipefail",
      "B=\(HTMLText.shellQuoted(bundle))",
      "W=$(mktemp -d)",
      "trap 'rm -rf \"$W\"' EXIT",
      "tar -tvf \"$B\"   # manifest.json, manifest.dsse.json, then blobs/sha256/*.zst; -rw-r--r-- 0/0, 1970-01-01",
      "tar -xf \"$B\" -C \"$W\" --no-same-owner --no-same-permissions",
      "PT='\(DSSE.manifestPayloadType)'",
      "printf 'DSSEv1 %d %s %d ' \"${#PT}\" \"$PT\" \"$(wc -c < \"$W/manifest.json\")\" > \"$W/pae.bin\"",
      "cat \"$W/manifest.json\" >> \"$W/pae.bin\"",
      "python3 -c 'import json,base64,sys;sys.stdout.buffer.write(base64.b64decode(json.load(open(sys.argv[1]))[\"payload\"]))' \"$W/manifest.dsse.json\" | cmp - \"$W/manifest.json\"",
      "for KEY in \(keys); do",
      "  KEYID=$(openssl pkey -pubin -in \"$KEY\" -outform DER | sha256sum | cut -d' ' -f1)",
      "  python3 -c 'import json,sys;print([s[\"sig\"] for s in json.load(open(sys.argv[1]))[\"signatures\"] if s[\"keyid\"]==sys.argv[2]][0])' \"$W/manifest.dsse.json\" \"$KEYID\" | openssl base64 -d -A > \"$W/sig.bin\"",
      "  openssl pkeyutl -verify -pubin -inkey \"$KEY\" -rawin -in \"$W/pae.bin\" -sigfile \"$W/sig.bin\"",
      "done",
      "python3 -c 'import json,sys;[print(b[\"sha256\"]+\"  \"+b[\"path\"]) for b in json.load(open(sys.argv[1]))[\"blobs\"]]' \"$W/manifest.json\" > \"$W/SHA256SUMS\"",
      "(cd \"$W\" && sha256sum --strict -c SHA256SUMS)",
      "diff <(cut -c67- \"$W/SHA256SUMS\") <(tar -tf \"$B\" | tail -n +3)",
    ]
    if let manifestSHA256 {
      lines.append(
        "test \"$(sha256sum < \"$W/manifest.json\" | cut -d' ' -f1)\" = \(manifestSHA256) && echo 'manifest.json is the one this report shows'"
      )
    }
    lines.append(")")
    return lines.joined(separator: "\n")
  }

  /// A Python 3 program (standard library plus `cryptography`) run from the shell.
  var python: String {
    let arguments = ([bundle] + signingKeyFiles).map(HTMLText.shellQuoted).joined(separator: " ")
    return """
      python3 - \(arguments) <<'PY'
      import base64, hashlib, json, sys, tarfile
      from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat, load_pem_public_key
      bundle, key_files = sys.argv[1], sys.argv[2:]
      with tarfile.open(bundle, mode="r:") as archive:
          members = {m.name: archive.extractfile(m).read() for m in archive.getmembers() if m.isfile()}
      manifest = members["manifest.json"]
      envelope = json.loads(members["manifest.dsse.json"])
      assert envelope["payloadType"] == "\(DSSE.manifestPayloadType)"
      assert base64.b64decode(envelope["payload"], validate=True) == manifest, "payload differs from manifest.json"
      payload_type = envelope["payloadType"].encode()
      pae = b"DSSEv1 %d %s %d %s" % (len(payload_type), payload_type, len(manifest), manifest)
      signatures = {s["keyid"]: base64.b64decode(s["sig"], validate=True) for s in envelope["signatures"]}
      for key_file in key_files:
          key = load_pem_public_key(open(key_file, "rb").read())
          keyid = hashlib.sha256(key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)).hexdigest()
          key.verify(signatures[keyid], pae)  # raises InvalidSignature
          print("signature verified:", keyid)
      blobs = json.loads(manifest)["blobs"]
      assert set(members) == {"manifest.json", "manifest.dsse.json", *(b["path"] for b in blobs)}, "member set differs"
      for blob in blobs:
          assert hashlib.sha256(members[blob["path"]]).hexdigest() == blob["sha256"], blob["path"]
      print("OK:", len(blobs), "blob digest(s) match; manifest sha256", hashlib.sha256(manifest).hexdigest())
      PY
      """
  }
}
