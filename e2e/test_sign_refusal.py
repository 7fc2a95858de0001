"""`sign` refuses a damaged bundle and leaves it exactly as it was (README, `sign`).

`sign` checks the bundle's integrity completely first (everything `verify --deep` checks except
signature trust) and refuses a damaged bundle with exit 1 and `REJECT <CODE>: <detail>`. Since it
rewrites the bundle in place when it signs, a refusal must not touch the file: same bytes, same
inode, same modification time, and no temporary file left beside it.

The damaged bundles are the tampered fixtures (fixtures/tampered, one per reason code, generated
by fixtures/make_tampered.py). Two kinds matter most: a quick-mode failure (a blob's digest) and
failures only a deep check sees (a record's CRC, a segment's time range), which `verify` without
`--deep` accepts. Trust (SIG_*) is not sign's business: it has no trust set, so those fixtures
are left out.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
TAMPERED = REPO / "fixtures" / "tampered"
SIGNER_PUB = TAMPERED / "keys" / "signer.pub"

QUICK_FAILURE = "BLOB_DIGEST_MISMATCH-middle-byte.sfb.tar"
DEEP_ONLY_FAILURES = ["SEGMENT_CRC_MISMATCH-body-byte.sfb.tar", "SEGMENT_TIME_MISMATCH-last-plus-1.sfb.tar"]
CASES = [case for case in json.loads((TAMPERED / "cases.json").read_text()) if not case.get("generated")]
INTEGRITY_CASES = [case for case in CASES if not case["code"].startswith("SIG_")]


def code_of(name: str) -> str:
    return next(case["code"] for case in CASES if case["file"] == name)


def snapshot(path: Path) -> tuple[bytes, int, int, list[str]]:
    stats = path.stat()
    return path.read_bytes(), stats.st_ino, stats.st_mtime_ns, sorted(os.listdir(path.parent))


def sign_and_expect_refusal(stella, fixture: str, key: Path, directory: Path) -> None:
    directory.mkdir()
    bundle = directory / fixture
    shutil.copyfile(TAMPERED / fixture, bundle)
    # An mtime in the past, so a rewrite with the same bytes would still show.
    os.utime(bundle, ns=(1_000_000_000, 1_000_000_000))
    before = snapshot(bundle)
    expected = code_of(fixture)
    signed = stella.run("sign", bundle, "--key", key)
    lines = signed.stdout.splitlines()
    assert signed.returncode == 1, f"sign did not refuse {fixture} ({expected})\n{signed.describe()}"
    assert lines and lines[0].startswith(f"REJECT {expected}: "), (
        f"sign refused {fixture} with another code than {expected}\n{signed.describe()}"
    )
    after = snapshot(bundle)
    assert after[0] == before[0], f"sign changed the bytes of {fixture} although it refused it"
    assert after[1:] == before[1:], (
        f"sign rewrote or touched {fixture} (inode, mtime, directory listing) although it refused it: "
        f"{before[1:]} -> {after[1:]}"
    )


def test_deep_only_fixtures_pass_a_quick_verify(stella):
    """The premise of the deep-only cases: only a deep check finds their damage."""
    for fixture in DEEP_ONLY_FAILURES:
        quick = stella.run("verify", TAMPERED / fixture, "--trusted-key", SIGNER_PUB)
        assert quick.returncode == 0, f"{fixture} is not a deep-only failure\n{quick.describe()}"
        deep = stella.run("verify", TAMPERED / fixture, "--trusted-key", SIGNER_PUB, "--deep")
        assert deep.returncode == 1 and deep.stdout.startswith(f"REJECT {code_of(fixture)}: "), deep.describe()


@pytest.mark.parametrize("fixture", [QUICK_FAILURE, *DEEP_ONLY_FAILURES])
def test_sign_refuses_a_damaged_bundle_and_leaves_it_byte_identical(stella, keys, tmp_path, fixture):
    sign_and_expect_refusal(stella, fixture, keys[0], tmp_path / "work")


def test_sign_refuses_every_integrity_failure_of_the_tampered_set(stella, keys, tmp_path):
    """All of them, in one test: every code of §12 but trust gets the same treatment."""
    assert len({case["code"] for case in INTEGRITY_CASES}) >= 40, "the tampered set lost its codes"
    failures = []
    for index, case in enumerate(INTEGRITY_CASES):
        try:
            sign_and_expect_refusal(stella, case["file"], keys[0], tmp_path / f"case-{index:03d}")
        except AssertionError as error:
            failures.append(f"{case['file']}: {str(error).splitlines()[0]}")
    assert not failures, f"{len(failures)} of {len(INTEGRITY_CASES)} refusals wrong:\n" + "\n".join(failures)


def test_the_same_bundle_undamaged_is_signed(stella, keys, tmp_path):
    """Control: the refusals above are about the damage, not about signing these fixtures at all."""
    bundle = tmp_path / "base.sfb.tar"
    shutil.copyfile(TAMPERED / "base.sfb.tar", bundle)
    before = bundle.read_bytes()
    signed = stella.run("sign", bundle, "--key", keys[0])
    assert signed.returncode == 0, signed.describe()
    assert bundle.read_bytes() != before
    both = stella.run("verify", bundle, "--deep", "--trusted-key", SIGNER_PUB, "--trusted-key", keys[1],
                      "--threshold", "2")
    assert both.returncode == 0, both.describe()
