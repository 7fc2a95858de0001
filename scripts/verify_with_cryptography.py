#!/usr/bin/env python3
"""Independent check of a stella-forensics bundle: Python stdlib plus `cryptography` only.

Written from BUNDLE-FORMAT.md alone (sections 2, 3, 5 and 11), as a cross-check of the tool's own
verifier. It parses the ustar archive itself, holds every header to the canonical form of section
2.1, rebuilds the DSSE PAE, verifies the Ed25519 signatures of the trusted keys (keyid = SHA-256 of
the DER SubjectPublicKeyInfo) with the threshold rule of section 5, and checks each blob's path,
size and SHA-256 against the signed manifest and the member set and order. It does not decompress
blobs (no zstd in the stdlib), so segment, sequence and time checks are left to `verify --deep`.

Usage: verify_with_cryptography.py BUNDLE.tar KEY.pub... [--threshold N] [--ignore-untrusted]

Exit status: 0 verified; 1 the bundle failed a check; 2 usage error or unusable key.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import hashlib
import json
import re
import sys

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    PublicFormat,
    load_pem_public_key,
)

PAYLOAD_TYPE = "application/vnd.stella-forensics.manifest+json"
BLOCK = 512
NAME_RE = re.compile(r"^[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*$")
HEX64_RE = re.compile(r"^[0-9a-f]{64}$")
BLOB_PATH_RE = re.compile(r"^blobs/sha256/([0-9a-f]{64})\.zst$")
B64_RE = re.compile(r"^[A-Za-z0-9+/]*={0,2}$")
MAX_SIGNATURES = 64


class Reject(Exception):
    """The bundle failed a check (exit 1)."""


class UsageError(Exception):
    """Bad arguments or an unusable key file (exit 2)."""


# ---------------------------------------------------------------------------------------------
# ustar


def canonical_header(name: str, size: int) -> bytes:
    """The one legal header for (name, size), per section 2.1."""
    header = bytearray(BLOCK)
    encoded = name.encode("ascii")
    header[0 : len(encoded)] = encoded
    header[100:108] = b"000644 \0"
    header[108:116] = b"000000 \0"
    header[116:124] = b"000000 \0"
    header[124:136] = b"%011o " % size
    header[136:148] = b"00000000000 "
    header[148:156] = b"        "
    header[156:157] = b"0"
    header[257:263] = b"ustar\0"
    header[263:265] = b"00"
    header[329:337] = b"000000 \0"
    header[337:345] = b"000000 \0"
    checksum = sum(header)
    header[148:156] = b"%06o\0 " % checksum
    return bytes(header)


def parse_octal(field: bytes, what: str, offset: int) -> int:
    text = field.rstrip(b"\0 ").lstrip(b" ")
    if not text or not all(0x30 <= c <= 0x37 for c in text):
        raise Reject(f"tar header at offset {offset}: {what} field is not octal")
    return int(text, 8)


def read_members(data: bytes) -> list[tuple[str, bytes]]:
    """Split a canonical ustar archive into (name, content), rejecting anything else."""
    members: list[tuple[str, bytes]] = []
    seen: set[str] = set()
    offset = 0
    while True:
        if len(data) - offset < BLOCK:
            raise Reject(f"tar: truncated at offset {offset} (no end-of-archive marker)")
        header = data[offset : offset + BLOCK]
        if header == bytes(BLOCK):
            second = data[offset + BLOCK : offset + 2 * BLOCK]
            if len(second) < BLOCK:
                raise Reject(f"tar: truncated end-of-archive marker at offset {offset}")
            if second != bytes(BLOCK):
                raise Reject(f"tar: bad header after a zero block at offset {offset + BLOCK}")
            if offset + 2 * BLOCK != len(data):
                raise Reject(f"tar: {len(data) - offset - 2 * BLOCK} trailing bytes after the end marker")
            break
        stored = parse_octal(header[148:156], "chksum", offset)
        computed = sum(header[:148]) + 8 * 0x20 + sum(header[156:])
        if stored != computed:
            raise Reject(f"tar header at offset {offset}: checksum mismatch")
        if header[257:263] != b"ustar\0" or header[263:265] != b"00":
            raise Reject(f"tar header at offset {offset}: not a ustar header")
        if header[156:157] != b"0":
            raise Reject(f"tar header at offset {offset}: typeflag {header[156:157]!r} is not a regular file")
        raw_name = header[0:100].split(b"\0", 1)[0]
        prefix = header[345:500].split(b"\0", 1)[0]
        full = (prefix + b"/" + raw_name) if prefix else raw_name
        try:
            name = full.decode("ascii")
        except UnicodeDecodeError:
            raise Reject(f"tar header at offset {offset}: unsafe member name {full!r}") from None
        if not NAME_RE.match(name) or any(part in (".", "..") for part in name.split("/")):
            raise Reject(f"tar header at offset {offset}: unsafe member name {name!r}")
        size = parse_octal(header[124:136], "size", offset)
        if header != canonical_header(name, size):
            raise Reject(f"tar header of {name} at offset {offset}: not the canonical header")
        if name in seen:
            raise Reject(f"tar: duplicate member {name}")
        seen.add(name)
        start = offset + BLOCK
        padded = (size + BLOCK - 1) // BLOCK * BLOCK
        if start + padded > len(data):
            raise Reject(f"tar: member {name} runs past the end of the file")
        if data[start + size : start + padded] != bytes(padded - size):
            raise Reject(f"tar: member {name} has non-zero padding")
        members.append((name, data[start : start + size]))
        offset = start + padded
    return members


# ---------------------------------------------------------------------------------------------
# JSON (RFC 8785 for the value types this format allows: objects, arrays, strings, integers)


def no_duplicates(pairs):
    obj = {}
    for key, value in pairs:
        if key in obj:
            raise ValueError(f"duplicate key {key!r}")
        obj[key] = value
    return obj


def reject_float(text):
    raise ValueError(f"non-integer number {text}")


def parse_json(raw: bytes, member: str):
    try:
        text = raw.decode("utf-8")
        return json.loads(
            text,
            object_pairs_hook=no_duplicates,
            parse_float=reject_float,
            parse_constant=reject_float,
        )
    except (UnicodeDecodeError, ValueError) as error:
        raise Reject(f"{member}: not valid JSON for this format: {error}") from None


def jcs(value) -> bytes:
    """RFC 8785 serialization; keys sorted by UTF-16 code units."""

    def encode(v) -> str:
        if isinstance(v, dict):
            keys = sorted(v, key=lambda k: k.encode("utf-16-be"))
            return "{" + ",".join(encode(k) + ":" + encode(v[k]) for k in keys) + "}"
        if isinstance(v, list):
            return "[" + ",".join(encode(item) for item in v) + "]"
        if isinstance(v, bool) or v is None:
            return json.dumps(v)
        if isinstance(v, int):
            return str(v)
        if isinstance(v, str):
            # json.dumps escapes exactly the JCS set: \" \\ \b \f \n \r \t and \u00xx (lowercase).
            return json.dumps(v, ensure_ascii=False)
        raise Reject(f"value of type {type(v).__name__} cannot appear in canonical JSON here")

    return encode(value).encode("utf-8")


def strict_b64decode(text, what: str) -> bytes:
    if not isinstance(text, str) or len(text) % 4 != 0 or not B64_RE.match(text):
        raise Reject(f"{what}: not standard padded base64")
    try:
        decoded = base64.b64decode(text, validate=True)
    except binascii.Error:
        raise Reject(f"{what}: not standard padded base64") from None
    if base64.b64encode(decoded).decode("ascii") != text:
        raise Reject(f"{what}: non-canonical base64")
    return decoded


def pae(payload_type: str, body: bytes) -> bytes:
    t = payload_type.encode("utf-8")
    return b"DSSEv1 %d %s %d %s" % (len(t), t, len(body), body)


# ---------------------------------------------------------------------------------------------
# keys


def load_trusted(paths: list[str]) -> dict[str, Ed25519PublicKey]:
    trusted: dict[str, Ed25519PublicKey] = {}
    for path in paths:
        try:
            with open(path, "rb") as handle:
                pem = handle.read()
        except OSError as error:
            raise UsageError(f"{path}: {error.strerror}") from None
        try:
            key = load_pem_public_key(pem)
        except (ValueError, TypeError) as error:
            raise UsageError(f"{path}: not a PEM public key: {error}") from None
        if not isinstance(key, Ed25519PublicKey):
            raise UsageError(f"{path}: not an Ed25519 public key")
        der = key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
        trusted[hashlib.sha256(der).hexdigest()] = key
    return trusted


# ---------------------------------------------------------------------------------------------
# the check


def verify(data: bytes, trusted: dict[str, Ed25519PublicKey], threshold: int, ignore_untrusted: bool) -> str:
    members = read_members(data)
    names = [name for name, _ in members]
    if names[:2] != ["manifest.json", "manifest.dsse.json"]:
        raise Reject(f"first members are {names[:2]}, expected manifest.json, manifest.dsse.json")
    manifest_raw = members[0][1]
    envelope_raw = members[1][1]

    envelope = parse_json(envelope_raw, "manifest.dsse.json")
    if not isinstance(envelope, dict) or set(envelope) != {"payload", "payloadType", "signatures"}:
        raise Reject("manifest.dsse.json: key set is not {payload, payloadType, signatures}")
    if envelope["payloadType"] != PAYLOAD_TYPE:
        raise Reject(f"manifest.dsse.json: payloadType is {envelope['payloadType']!r}")
    payload = strict_b64decode(envelope["payload"], "manifest.dsse.json payload")
    signatures = envelope["signatures"]
    if not isinstance(signatures, list) or not 1 <= len(signatures) <= MAX_SIGNATURES:
        raise Reject("manifest.dsse.json: signatures must be a list of 1..64 entries")
    entries = []
    for index, entry in enumerate(signatures):
        if not isinstance(entry, dict) or set(entry) != {"keyid", "sig"}:
            raise Reject(f"manifest.dsse.json: signatures[{index}] keys are not {{keyid, sig}}")
        keyid = entry["keyid"]
        if not isinstance(keyid, str) or not HEX64_RE.match(keyid):
            raise Reject(f"manifest.dsse.json: signatures[{index}].keyid is not 64 lowercase hex digits")
        sig = strict_b64decode(entry["sig"], f"manifest.dsse.json signatures[{index}].sig")
        if len(sig) != 64:
            raise Reject(f"manifest.dsse.json: signatures[{index}].sig is {len(sig)} bytes, not 64")
        entries.append((keyid, sig))
    if jcs(envelope) != envelope_raw:
        raise Reject("manifest.dsse.json: not in canonical (RFC 8785) form")
    keyids = [keyid for keyid, _ in entries]
    for previous, current in zip(keyids, keyids[1:]):
        if previous == current:
            raise Reject(f"manifest.dsse.json: keyid {current} signs twice")
        if previous > current:
            raise Reject("manifest.dsse.json: signatures are not sorted by keyid")
    if payload != manifest_raw:
        raise Reject("manifest.dsse.json: payload differs from manifest.json")

    message = pae(PAYLOAD_TYPE, manifest_raw)
    verified: list[str] = []
    for keyid, sig in entries:
        key = trusted.get(keyid)
        if key is None:
            if ignore_untrusted:
                continue
            raise Reject(f"signature by untrusted keyid {keyid}")
        try:
            key.verify(sig, message)
        except InvalidSignature:
            raise Reject(f"signature by keyid {keyid} does not verify") from None
        verified.append(keyid)
    if len(verified) < threshold:
        raise Reject(f"{len(verified)} trusted signature(s) verified, threshold is {threshold}")

    manifest = parse_json(manifest_raw, "manifest.json")
    if jcs(manifest) != manifest_raw:
        raise Reject("manifest.json: not in canonical (RFC 8785) form")
    if not isinstance(manifest, dict) or manifest.get("formatVersion") != 1:
        raise Reject("manifest.json: formatVersion is not 1")
    blobs = manifest.get("blobs")
    if not isinstance(blobs, list) or not blobs:
        raise Reject("manifest.json: blobs must be a non-empty list")
    paths = []
    for index, blob in enumerate(blobs):
        if not isinstance(blob, dict):
            raise Reject(f"manifest.json: blobs[{index}] is not an object")
        path, digest, size = blob.get("path"), blob.get("sha256"), blob.get("size")
        if not isinstance(digest, str) or not HEX64_RE.match(digest):
            raise Reject(f"manifest.json: blobs[{index}].sha256 is not hex64")
        if path != f"blobs/sha256/{digest}.zst":
            raise Reject(f"manifest.json: blobs[{index}].path {path!r} does not name its sha256")
        if not isinstance(size, int) or isinstance(size, bool) or size < 1:
            raise Reject(f"manifest.json: blobs[{index}].size is not a positive integer")
        paths.append(path)
    for previous, current in zip(paths, paths[1:]):
        if previous >= current:
            raise Reject(f"manifest.json: blob paths not strictly ascending at {current}")

    expected_names = ["manifest.json", "manifest.dsse.json", *paths]
    if names != expected_names:
        missing = sorted(set(expected_names) - set(names))
        extra = sorted(set(names) - set(expected_names))
        if missing:
            raise Reject(f"member missing from the archive: {missing[0]}")
        if extra:
            raise Reject(f"archive member not in the manifest: {extra[0]}")
        raise Reject("archive members are not in manifest order")

    contents = dict(members)
    for blob in blobs:
        content = contents[blob["path"]]
        if len(content) != blob["size"]:
            raise Reject(f"{blob['path']}: size {len(content)}, manifest says {blob['size']}")
        if hashlib.sha256(content).hexdigest() != blob["sha256"]:
            raise Reject(f"{blob['path']}: SHA-256 does not match the manifest")

    incident = manifest.get("incident", {}).get("id", "?") if isinstance(manifest.get("incident"), dict) else "?"
    return (
        f"OK: incident {incident}; {len(blobs)} blob(s) match; "
        f"verified keyids {', '.join(verified)}; manifest sha256 {hashlib.sha256(manifest_raw).hexdigest()}"
    )


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("bundle")
    parser.add_argument("keys", nargs="+", metavar="KEY.pub")
    parser.add_argument("--threshold", type=int, default=1)
    parser.add_argument("--ignore-untrusted", action="store_true")
    args = parser.parse_args(argv)
    try:
        trusted = load_trusted(args.keys)
        if not 1 <= args.threshold <= len(trusted):
            raise UsageError(f"threshold {args.threshold} is outside 1..{len(trusted)} (distinct trusted keys)")
        try:
            with open(args.bundle, "rb") as handle:
                data = handle.read()
        except OSError as error:
            raise UsageError(f"{args.bundle}: {error.strerror}") from None
        print(verify(data, trusted, args.threshold, args.ignore_untrusted))
        return 0
    except UsageError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except Reject as error:
        print(f"FAIL: {args.bundle}: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
