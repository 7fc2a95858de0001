#!/usr/bin/env bash
# Check a stella-forensics bundle with standard tools only (BUNDLE-FORMAT.md section 11):
# tar, sha256sum and OpenSSL >= 3.0; python3 is used only to pull fields out of JSON.
#
# Usage: scripts/verify-with-openssl.sh BUNDLE.tar KEY.pub
#
# Checks: member list is manifest.json, manifest.dsse.json, then exactly the manifest's blob
# paths in order, all regular files; the envelope payload equals manifest.json; the signature by
# KEY.pub (keyid = SHA-256 of its DER SubjectPublicKeyInfo) verifies over the DSSE PAE; every
# blob's SHA-256 matches the manifest. It does not check canonical form, tar header bytes,
# segments, sequences or limits: that needs the full verifier (`stella-forensics verify --deep`).
#
# Exit status: 0 verified; 1 the bundle failed a check; 2 usage error or unusable key.
set -uo pipefail

PAYLOAD_TYPE='application/vnd.stella-forensics.manifest+json'

fail() {
  echo "FAIL: $*" >&2
  exit 1
}

usage_error() {
  echo "error: $*" >&2
  exit 2
}

[ "$#" -eq 2 ] || usage_error "usage: $0 BUNDLE.tar KEY.pub"
bundle=$1
key=$2
for file in "$bundle" "$key"; do
  if [ ! -f "$file" ] || [ ! -r "$file" ]; then
    usage_error "$file: not a readable file"
  fi
done

for tool in tar sha256sum openssl python3 cmp; do
  command -v "$tool" >/dev/null 2>&1 || usage_error "$tool is required but not installed"
done

work=$(mktemp -d "${TMPDIR:-/tmp}/sfb-verify.XXXXXXXX") || usage_error "cannot create a temporary directory"
trap 'rm -rf -- "$work"' EXIT
bundle_abs=$(cd "$(dirname -- "$bundle")" && pwd)/$(basename -- "$bundle")
key_abs=$(cd "$(dirname -- "$key")" && pwd)/$(basename -- "$key")

# --- key -------------------------------------------------------------------------------------
key_text=$(openssl pkey -pubin -in "$key_abs" -noout -text 2>/dev/null) ||
  usage_error "$key: not a PEM public key that OpenSSL can read"
case "$key_text" in
  ED25519*) ;;
  *) usage_error "$key: not an Ed25519 public key" ;;
esac
keyid=$(openssl pkey -pubin -in "$key_abs" -outform DER | sha256sum | cut -d' ' -f1) ||
  usage_error "$key: cannot compute the keyid"

# --- member list (before extracting anything) -------------------------------------------------
listing=$(tar -tvf "$bundle_abs" 2>"$work/tar.err") ||
  fail "$bundle: not a readable tar archive: $(head -n1 "$work/tar.err")"
members=$(tar -tf "$bundle_abs" 2>/dev/null) || fail "$bundle: not a readable tar archive"
[ -n "$members" ] || fail "$bundle: archive has no members"

# Every entry must be a regular file (tar -tv prints '-' as the first mode character).
if printf '%s\n' "$listing" | grep -qv '^-'; then
  fail "$bundle: archive holds an entry that is not a regular file"
fi
# Only safe relative names; this also keeps the extraction inside $work/x.
while IFS= read -r name; do
  if ! printf '%s' "$name" | grep -Eq '^[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*$'; then
    fail "$bundle: unsafe member name '$name'"
  fi
  case "/$name/" in
    */./* | */../*) fail "$bundle: unsafe member name '$name'" ;;
  esac
done <<<"$members"

first_two=$(printf '%s\n' "$members" | head -n 2)
[ "$first_two" = $'manifest.json\nmanifest.dsse.json' ] ||
  fail "$bundle: the first members must be manifest.json then manifest.dsse.json"

mkdir "$work/x"
tar -xf "$bundle_abs" -C "$work/x" --no-same-owner --no-same-permissions 2>"$work/tar.err" ||
  fail "$bundle: extraction failed: $(head -n1 "$work/tar.err")"
cd "$work/x" || usage_error "cannot enter $work/x"

# --- envelope --------------------------------------------------------------------------------
payload_type=$(python3 -c '
import json, sys
env = json.load(open("manifest.dsse.json", encoding="utf-8"))
sys.stdout.write(env["payloadType"])
' 2>/dev/null) || fail "manifest.dsse.json: not a DSSE envelope (invalid JSON or no payloadType)"
[ "$payload_type" = "$PAYLOAD_TYPE" ] || fail "manifest.dsse.json: payloadType is '$payload_type'"

python3 -c '
import base64, binascii, json, sys
env = json.load(open("manifest.dsse.json", encoding="utf-8"))
sys.stdout.buffer.write(base64.b64decode(env["payload"], validate=True))
' >"$work/payload.bin" 2>/dev/null || fail "manifest.dsse.json: payload is not valid base64"
cmp -s "$work/payload.bin" manifest.json || fail "manifest.dsse.json: payload differs from manifest.json"

# --- signature by this key over PAE(payloadType, manifest.json) -------------------------------
printf 'DSSEv1 %d %s %d ' "${#PAYLOAD_TYPE}" "$PAYLOAD_TYPE" "$(wc -c <manifest.json)" >"$work/pae.bin"
cat manifest.json >>"$work/pae.bin"

sig_b64=$(python3 -c '
import json, sys
env = json.load(open("manifest.dsse.json", encoding="utf-8"))
sigs = [s["sig"] for s in env["signatures"] if s.get("keyid") == sys.argv[1]]
if len(sigs) != 1:
    sys.exit(1)
print(sigs[0])
' "$keyid" 2>/dev/null) || fail "manifest.dsse.json: no single signature with keyid $keyid"
printf '%s' "$sig_b64" | openssl base64 -d -A >"$work/sig.bin" 2>/dev/null ||
  fail "manifest.dsse.json: signature for $keyid is not base64"
[ "$(wc -c <"$work/sig.bin")" -eq 64 ] || fail "manifest.dsse.json: signature for $keyid is not 64 bytes"
openssl pkeyutl -verify -pubin -inkey "$key_abs" -rawin -in "$work/pae.bin" -sigfile "$work/sig.bin" \
  >"$work/openssl.out" 2>&1 || fail "signature by $keyid does not verify: $(head -n1 "$work/openssl.out")"

# --- blobs: exactly the manifest's paths as members (checked first, so sha256sum only
# reads validated names), then the digests listed in the signed manifest ---------------------
python3 -c '
import json
for b in json.load(open("manifest.json", encoding="utf-8"))["blobs"]:
    print(b["sha256"] + "  " + b["path"])
' >"$work/SHA256SUMS" 2>/dev/null || fail "manifest.json: cannot read the blob list"
[ -s "$work/SHA256SUMS" ] || fail "manifest.json: no blobs"
if ! diff <(cut -c67- "$work/SHA256SUMS") <(printf '%s\n' "$members" | tail -n +3) >"$work/diff.out"; then
  fail "archive members differ from the manifest's blob paths: $(head -n 3 "$work/diff.out" | tr '\n' ' ')"
fi
sha256sum --strict --quiet -c "$work/SHA256SUMS" >"$work/sums.out" 2>&1 ||
  fail "blob digest mismatch: $(head -n1 "$work/sums.out")"

blobs=$(wc -l <"$work/SHA256SUMS")
echo "OK: signature by $keyid verified; manifest matches envelope; $blobs blob digest(s) match"
exit 0
