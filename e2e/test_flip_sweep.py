"""Single-byte flips over the whole base bundle: every one must be rejected (exit 1).

BUNDLE-FORMAT.md §1 and §9 ("Coverage") promise that no byte of a bundle can change without
rejection: member contents are covered by the signature and digests, and header, padding and
end-marker bytes each have exactly one legal value. The sweep takes fixtures/tampered/base.sfb.tar,
picks positions in every region (every header field, the manifest, the envelope, each blob, each
padding run and the two trailing zero blocks), flips one byte (xor 0xFF, and xor 0x01 at a third
of them), and runs `verify --deep` on each variant. Exit 0 would be an undetected change. Exit 2
or 3 or a signal would mean the verifier called tampered evidence a usage error or crashed.

With STELLA_FLIP_STRICT=1 the reported code must also equal that of the Python reference verifier
(fixtures/sfb.py). Without it, differences are only listed in the failure message of a failing test.
"""

from __future__ import annotations

import concurrent.futures
import os
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


@pytest.mark.parametrize("group", sorted(GROUPS))
def test_every_flip_is_rejected(stella_bin, tmp_path, group):
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
        if code != 1 or not line.startswith("REJECT "):
            failures.append(f"{where}: exit {code}, stdout {line!r}, stderr {stderr.strip()[:300]!r}")
            continue
        expected = sfb.verify_code(variant, trusted)
        got = line.split(":", 1)[0].removeprefix("REJECT ")
        if got != expected:
            differences.append(f"{where}: verifier {got}, reference {expected}")
    message = "\n".join(failures + ["(codes differing from the Python reference:)", *differences])
    assert not failures, message
    if strict:
        assert not differences, message
