"""Single-byte flips over the whole base bundle: every one must be rejected with the right code.

BUNDLE-FORMAT.md §1 and §9 ("Coverage") promise that no byte of a bundle can change without
rejection: member contents are covered by the signature and digests, and header, padding and
end-marker bytes each have exactly one legal value. The sweep takes fixtures/tampered/base.sfb.tar,
picks positions in every region (every header field, the manifest, the envelope, each blob, each
padding run and the two trailing zero blocks), flips one byte (xor 0xFF, and xor 0x01 at a third
of them), and runs `verify --deep` on each variant.

Each variant must exit 1 with exactly the reason code that the first failing step of §9 gives for
a change in that place. `expected_code` derives it from the format text alone (never from running
a verifier), region by region:

* a member header (step 1.2): a changed byte outside the checksum field changes the header's byte
  sum; a changed checksum byte changes the stored value or makes it unreadable (xor 0xFF/0x01 never
  turns its NUL and space into each other, the only form change that keeps the value), so the
  checksum is wrong: TAR_BAD_HEADER, before any later header rule is looked at;
* data padding (step 1.7): TAR_NONCANONICAL_PADDING;
* the end marker (step 1.1): a non-zero first block is read as a header whose checksum is wrong,
  a non-zero second block after a zero one is named by 1.1 itself: TAR_BAD_HEADER either way;
* manifest.json (step 3.5, the envelope being intact): ENVELOPE_PAYLOAD_MISMATCH;
* manifest.dsse.json (steps 3.1-4), by the part of the canonical envelope the byte is in: a byte
  made non-ASCII is invalid UTF-8, and JSON punctuation or a key name changed breaks the JSON or
  its key sets (ENVELOPE_MALFORMED); payloadType changed (ENVELOPE_WRONG_PAYLOAD_TYPE); the payload
  or a signature no longer strict padded base64, or a keyid no longer hex64 (ENVELOPE_MALFORMED);
  a payload that still decodes (ENVELOPE_PAYLOAD_MISMATCH); a keyid that is still hex64, now not
  the trusted key's (SIG_UNTRUSTED_KEY); a signature that still decodes to 64 bytes (SIG_INVALID);
* a blob (step 7.1, everything before it intact): BLOB_DIGEST_MISMATCH.

Exit 0 would be an undetected change; exit 2 or 3 or a signal would mean the verifier called
tampered evidence a usage error or crashed; another code would mean it reported a later (or
earlier) step than the first failing one, which the format forbids.

With STELLA_FLIP_STRICT=1 the Python reference verifier (fixtures/sfb.py) must also agree.
"""

from __future__ import annotations

import base64
import collections
import concurrent.futures
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
TAMPERED = REPO / "fixtures" / "tampered"
BASE = TAMPERED / "base.sfb.tar"
SIGNER_PUB = TAMPERED / "keys" / "signer.pub"
TIMEOUT = 60
WORKERS = 2  # the machine has 2 cores shared with builds

sys.path.insert(0, str(REPO / "fixtures"))

import sfb  # noqa: E402

# Offsets where the §2.1 header fields start: each field's first and last byte are always flipped.
HEADER_FIELDS = [0, 100, 108, 116, 124, 136, 148, 156, 157, 257, 263, 265, 297, 329, 337, 345, 500, 512]


PAYLOAD_TYPE = "application/vnd.stella-forensics.manifest+json"
STRICT_BASE64 = re.compile(r"(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?")
HEX64 = re.compile(r"[0-9a-f]{64}")


def strict_base64(text: str) -> bytes | None:
    """§5: standard alphabet, padded, zero trailing bits; None when the text is not that."""
    if not STRICT_BASE64.fullmatch(text):
        return None
    decoded = base64.b64decode(text, validate=True)
    return decoded if base64.b64encode(decoded).decode("ascii") == text else None


def envelope_parts(envelope: bytes) -> list[tuple[str, int, int]]:
    """(role, start, end) of every part of the base bundle's canonical one-signature envelope."""
    document = json.loads(envelope)
    (signature,) = document["signatures"]
    pieces = [
        ("syntax", '{"'), ("key", "payload"), ("syntax", '":"'), ("payload", document["payload"]),
        ("syntax", '","'), ("key", "payloadType"), ("syntax", '":"'), ("payloadType", document["payloadType"]),
        ("syntax", '","'), ("key", "signatures"), ("syntax", '":[{"'), ("entry-key", "keyid"), ("syntax", '":"'),
        ("keyid", signature["keyid"]), ("syntax", '","'), ("entry-key", "sig"), ("syntax", '":"'),
        ("sig", signature["sig"]), ("syntax", '"}]}'),
    ]
    assert "".join(text for _, text in pieces).encode() == envelope, "the base envelope is not the expected JCS form"
    parts, position = [], 0
    for role, text in pieces:
        parts.append((role, position, position + len(text)))
        position += len(text)
    return parts


def expected_envelope_code(envelope: bytes, offset: int, mask: int) -> str:
    """§9 steps 3 and 4 for one changed byte of the envelope (trust set: the signer's key only)."""
    changed = envelope[offset] ^ mask
    if changed >= 0x80:
        # An ASCII byte xor 0xFF is 0x80..0xDF: a stray continuation byte, an overlong lead, or a
        # lead byte followed by ASCII. Invalid UTF-8 (3.1).
        return "ENVELOPE_MALFORMED"
    role, start, end = next(part for part in envelope_parts(envelope) if part[1] <= offset < part[2])
    text = bytearray(envelope[start:end])
    text[offset - start] = changed
    value = text.decode("ascii")
    if role in ("syntax", "key", "entry-key"):
        # Punctuation xor 0x01 ({ " : , [ ] } to z # ; - Z \\ |) is no longer JSON; a key name
        # changed fails the envelope's (3.1) or an entry's (3.3) key set.
        return "ENVELOPE_MALFORMED"
    if role == "payloadType":
        return "ENVELOPE_WRONG_PAYLOAD_TYPE"  # 3.2; still a plain string: no quote or backslash appears
    if role == "payload":
        return "ENVELOPE_MALFORMED" if strict_base64(value) is None else "ENVELOPE_PAYLOAD_MISMATCH"  # 3.3, 3.5
    if role == "keyid":
        return "ENVELOPE_MALFORMED" if not HEX64.fullmatch(value) else "SIG_UNTRUSTED_KEY"  # 3.3, 4
    decoded = strict_base64(value)
    return "ENVELOPE_MALFORMED" if decoded is None or len(decoded) != 64 else "SIG_INVALID"  # 3.3, 4


def expected_code(base: bytes, position: int, mask: int) -> str:
    """The code of the first failing §9 step for `base` with byte `position` xor `mask`."""
    region = next(region for region in sfb.tar_regions(base) if region.start <= position < region.end)
    if region.kind in ("header", "end"):
        return "TAR_BAD_HEADER"
    if region.kind == "padding":
        return "TAR_NONCANONICAL_PADDING"
    if region.member == "manifest.json":
        return "ENVELOPE_PAYLOAD_MISMATCH"
    if region.member == "manifest.dsse.json":
        return expected_envelope_code(base[region.start : region.end], position - region.start, mask)
    return "BLOB_DIGEST_MISMATCH"


def positions_for(region: sfb.Region) -> list[int]:
    start, end = region.start, region.end
    length = end - start
    chosen: set[int] = set()
    if region.kind == "header":
        for field_start, field_end in zip(HEADER_FIELDS, HEADER_FIELDS[1:]):
            chosen.update({start + field_start, start + field_end - 1})
        chosen.update(range(start, end, 7))
        chosen.update(range(start + 124, start + 136))  # every size digit
        chosen.update(range(start + 148, start + 156))  # every checksum byte
    elif region.kind == "end":
        chosen.update({start, start + 1, start + 511, start + 512, start + 513, end - 1})
        chosen.update(range(start, end, 61))
    elif region.kind == "padding":
        chosen.update({start, end - 1, start + length // 2})
    else:  # member data: both ends and evenly spaced points
        count = 48 if region.member.startswith("manifest") else 24
        chosen.update({start, end - 1})
        chosen.update(start + (length * index) // count for index in range(count))
    return sorted(chosen)


def flips() -> list[tuple[str, int, int]]:
    """(region label, position, mask) for the whole file, deterministic."""
    base = BASE.read_bytes()
    result: list[tuple[str, int, int]] = []
    seen: set[int] = set()
    names = {"manifest.json": "manifest", "manifest.dsse.json": "envelope"}
    for region in sfb.tar_regions(base):
        if region.member and region.member not in names:
            names[region.member] = f"blob{len(names) - 1}"
        label = f"{region.kind}-{names.get(region.member, 'archive')}@{region.start}"
        for position in positions_for(region):
            if position in seen:
                continue
            seen.add(position)
            result.append((label, position, 0xFF))
            if position % 3 == 0:
                result.append((label, position, 0x01))
    # Every byte of the envelope outside its payload, with both masks: these few bytes are where
    # steps 3.1-4 each get their turn (punctuation, key names, payloadType, keyid, signature).
    envelope = next(region for region in sfb.tar_regions(base)
                    if region.kind == "data" and region.member == "manifest.dsse.json")
    taken = {(position, mask) for _, position, mask in result}
    for role, start, end in envelope_parts(base[envelope.start : envelope.end]):
        if role == "payload":
            continue
        for position in range(envelope.start + start, envelope.start + end):
            seen.add(position)
            for mask in (0xFF, 0x01):
                if (position, mask) not in taken:
                    result.append((f"envelope-{role}@{envelope.start + start}", position, mask))
    # Evenly spaced positions over the whole file on top (some coincide with the above).
    for position in range(5, len(base), 41):
        if position not in seen:
            seen.add(position)
            result.append((f"spread@{position}", position, 0xFF if position % 2 else 0x01))
    return result


FLIPS = flips()
GROUPS: dict[str, list[tuple[int, int]]] = {}
for _label, _position, _mask in FLIPS:
    GROUPS.setdefault(_label.split("@")[0] if not _label.startswith("spread") else "spread", []).append(
        (_position, _mask)
    )


def test_sweep_is_large_and_covers_every_region():
    base = BASE.read_bytes()
    assert len(FLIPS) >= 600, len(FLIPS)
    positions = {position for _, position, _ in FLIPS}
    for region in sfb.tar_regions(base):
        assert any(region.start <= position < region.end for position in positions), region
    assert max(positions) == len(base) - 1 and min(positions) == 0


def run_one(binary: Path, path: Path) -> tuple[int, str, str]:
    completed = subprocess.run(
        [str(binary), "verify", str(path), "--deep", "--trusted-key", str(SIGNER_PUB)],
        capture_output=True,
        timeout=TIMEOUT,
        check=False,
    )
    stdout = completed.stdout.decode("utf-8", "replace")
    return completed.returncode, (stdout.splitlines() or [""])[0], completed.stderr.decode("utf-8", "replace")


def test_expectations_cover_every_code_a_single_byte_can_cause():
    """The sweep exercises each outcome the regions allow, so a verifier that, say, checked
    payloadType after the payload's base64 would be caught, not just one that accepted a flip."""
    base = BASE.read_bytes()
    counts = collections.Counter(expected_code(base, position, mask) for _, position, mask in FLIPS)
    assert set(counts) == {
        "TAR_BAD_HEADER", "TAR_NONCANONICAL_PADDING", "ENVELOPE_PAYLOAD_MISMATCH", "ENVELOPE_MALFORMED",
        "ENVELOPE_WRONG_PAYLOAD_TYPE", "SIG_UNTRUSTED_KEY", "SIG_INVALID", "BLOB_DIGEST_MISMATCH",
    }, counts
    # xor 0x01 inside the payload and signature base64 lands both ways (still valid, or not).
    envelope = next(region for region in sfb.tar_regions(base) if region.member == "manifest.dsse.json"
                    and region.kind == "data")
    sig_codes = {
        expected_envelope_code(base[envelope.start : envelope.end], offset, 0x01)
        for role, start, end in envelope_parts(base[envelope.start : envelope.end]) if role == "sig"
        for offset in range(start, end)
    }
    assert sig_codes == {"ENVELOPE_MALFORMED", "SIG_INVALID"}, sig_codes


@pytest.mark.parametrize("group", sorted(GROUPS))
def test_every_flip_is_rejected_with_the_code_of_the_first_failing_step(stella_bin, tmp_path, group):
    base = BASE.read_bytes()
    trusted = [sfb.load_public_key(SIGNER_PUB)]
    strict = os.environ.get("STELLA_FLIP_STRICT") == "1"
    jobs = []
    for position, mask in GROUPS[group]:
        variant = bytearray(base)
        variant[position] ^= mask
        path = tmp_path / f"flip-{position}-{mask:02x}.sfb.tar"
        path.write_bytes(bytes(variant))
        jobs.append((position, mask, path, bytes(variant)))

    failures, differences = [], []
    with concurrent.futures.ThreadPoolExecutor(max_workers=WORKERS) as pool:
        results = list(pool.map(lambda job: run_one(stella_bin, job[2]), jobs))
    for (position, mask, _path, variant), (code, line, stderr) in zip(jobs, results):
        where = f"byte {position} ^ 0x{mask:02x}"
        expected = expected_code(base, position, mask)
        if code != 1 or not line.startswith("REJECT "):
            failures.append(f"{where}: exit {code}, stdout {line!r}, stderr {stderr.strip()[:300]!r}, "
                            f"expected REJECT {expected}")
            continue
        got = line.split(":", 1)[0].removeprefix("REJECT ")
        if got != expected:
            failures.append(f"{where}: REJECT {got}, expected {expected} ({line})")
        if strict:
            reference = sfb.verify_code(variant, trusted)
            if reference != expected:
                differences.append(f"{where}: reference verifier {reference}, expected {expected}")
    message = "\n".join(failures + differences)
    assert not failures and not differences, message
