"""Every reason code of BUNDLE-FORMAT.md §12, from tampered bundles made independently in Python.

The fixtures are in fixtures/tampered/ (made by fixtures/make_tampered.py, listed in cases.json).
Each one has one change, made so that under the §9 order its code is the first failing check.
The tests check that `verify --deep` rejects it with exactly that code, in text and JSON, and
that the base bundle and the accepted edge cases in valid.json verify.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
TAMPERED = REPO / "fixtures" / "tampered"
KEYS = TAMPERED / "keys"
TIMEOUT = 120

sys.path.insert(0, str(REPO / "fixtures"))

import sfb  # noqa: E402

# Hard-coded from BUNDLE-FORMAT.md §12 (not taken from sfb.py, so a typo there is caught too).
SPEC_CODES = """
TAR_TRUNCATED TAR_TRAILING_DATA TAR_BAD_HEADER TAR_FORBIDDEN_TYPE TAR_UNSAFE_PATH TAR_NONCANONICAL_HEADER
TAR_NONCANONICAL_PADDING TAR_DUPLICATE_MEMBER MISSING_MEMBER EXTRA_MEMBER MEMBER_ORDER ENVELOPE_MALFORMED
ENVELOPE_WRONG_PAYLOAD_TYPE ENVELOPE_NOT_CANONICAL ENVELOPE_PAYLOAD_MISMATCH SIG_DUPLICATE_KEY SIG_UNTRUSTED_KEY
SIG_INVALID SIG_THRESHOLD_NOT_MET MANIFEST_MALFORMED MANIFEST_NOT_CANONICAL MANIFEST_UNSUPPORTED_VERSION
MANIFEST_SCHEMA MANIFEST_DUPLICATE_ENTRY MANIFEST_UNSORTED MANIFEST_PATH_MISMATCH MANIFEST_SEQUENCE_OVERLAP
MANIFEST_SEQUENCE_GAP BLOB_SIZE_MISMATCH
BLOB_DIGEST_MISMATCH BLOB_DECOMPRESS_ERROR BLOB_BOMB BLOB_UNCOMPRESSED_SIZE_MISMATCH SEGMENT_BAD_HEADER
SEGMENT_MISMATCH SEGMENT_TRUNCATED SEGMENT_BAD_RECORD SEGMENT_CRC_MISMATCH SEGMENT_PROTOBUF_INVALID
SEGMENT_SEQUENCE_MISMATCH SEGMENT_RECORD_COUNT_MISMATCH SEGMENT_TIME_MISMATCH LIMIT_MEMBERS LIMIT_MEMBER_SIZE
LIMIT_UNCOMPRESSED_SIZE LIMIT_RATIO LIMIT_RECORD_SIZE
""".split()

# Codes decided at §9 steps 1 to 7.1: a quick (non-deep) verify must report them too.
QUICK_CODES = {code for code in SPEC_CODES if not code.startswith(("SEGMENT_", "BLOB_BOMB", "BLOB_DECOMPRESS",
                                                                   "BLOB_UNCOMPRESSED"))} - {
    "LIMIT_UNCOMPRESSED_SIZE", "LIMIT_RATIO", "LIMIT_RECORD_SIZE"}  # fmt: skip

CASES = json.loads((TAMPERED / "cases.json").read_text(encoding="utf-8"))
VALID = json.loads((TAMPERED / "valid.json").read_text(encoding="utf-8"))
STORED = [case for case in CASES if not case.get("generated")]


def run_verify(binary: Path, bundle: Path, trusted, args=(), *, deep: bool = True, json_output: bool = False):
    argv = [str(binary), "verify", str(bundle)]
    if deep:
        argv.append("--deep")
    for name in trusted:
        argv += ["--trusted-key", str(KEYS / name)]
    argv += list(args)
    if json_output:
        argv.append("--json")
    completed = subprocess.run(argv, capture_output=True, timeout=TIMEOUT, check=False)
    return completed, " ".join(argv)


def describe(completed, command: str) -> str:
    return (
        f"command: {command}\nexit: {completed.returncode}\n"
        f"stdout:\n{completed.stdout.decode('utf-8', 'replace')}\nstderr:\n{completed.stderr.decode('utf-8', 'replace')}"
    )


def first_line(completed) -> str:
    lines = completed.stdout.decode("utf-8", "replace").splitlines()
    return lines[0] if lines else ""


def assert_rejected(binary: Path, bundle: Path, code: str, trusted, args=(), *, deep: bool = True, why: str = ""):
    completed, command = run_verify(binary, bundle, trusted, args, deep=deep)
    context = f"expected REJECT {code} ({why})\n" + describe(completed, command)
    assert completed.returncode == 1, context
    assert first_line(completed).startswith(f"REJECT {code}:"), context

    completed, command = run_verify(binary, bundle, trusted, args, deep=deep, json_output=True)
    context = f"expected code {code} in JSON ({why})\n" + describe(completed, command)
    assert completed.returncode == 1, context
    report = json.loads(completed.stdout)
    assert report.get("result") == "rejected", context
    assert report.get("code") == code, context
    assert report.get("mode") == ("deep" if deep else "quick"), context


# ---------------------------------------------------------------------------------------------


def test_cases_cover_every_reason_code():
    assert len(SPEC_CODES) == 47 and len(set(SPEC_CODES)) == 47
    assert set(SPEC_CODES) == set(sfb.REASON_CODES)
    covered = {case["code"] for case in CASES}
    assert not set(SPEC_CODES) - covered, f"codes without a tampered case: {sorted(set(SPEC_CODES) - covered)}"
    assert not covered - set(SPEC_CODES), f"cases with codes not in §12: {sorted(covered - set(SPEC_CODES))}"


def test_fixture_files_exist_and_are_small():
    for case in STORED + VALID:
        path = TAMPERED / case["file"]
        assert path.is_file(), f"{path} missing: run python3 fixtures/make_tampered.py"
        assert path.stat().st_size < 100_000, f"{path} is {path.stat().st_size} bytes"


def test_base_verifies_deep(stella_bin):
    completed, command = run_verify(stella_bin, TAMPERED / "base.sfb.tar", ["signer.pub"])
    assert completed.returncode == 0, describe(completed, command)
    assert first_line(completed).startswith("OK"), describe(completed, command)

    completed, command = run_verify(stella_bin, TAMPERED / "base.sfb.tar", ["signer.pub"], json_output=True)
    assert completed.returncode == 0, describe(completed, command)
    report = json.loads(completed.stdout)
    signer = sfb.public_keyid(sfb.load_public_key(KEYS / "signer.pub"))
    expected = {"result": "verified", "mode": "deep", "incident": "INC-2024-0042", "blobs": 4, "streams": 3,
                "records": 10, "keyids": [signer]}  # fmt: skip
    assert {key: report.get(key) for key in expected} == expected, describe(completed, command)
    manifest = dict(sfb.tar_members((TAMPERED / "base.sfb.tar").read_bytes()))["manifest.json"]
    assert report.get("manifestSha256") == sfb.sha256_hex(manifest)
    assert "code" not in report


def test_base_verifies_quick(stella_bin):
    completed, command = run_verify(stella_bin, TAMPERED / "base.sfb.tar", ["signer.pub"], deep=False)
    assert completed.returncode == 0, describe(completed, command)
    assert first_line(completed).startswith("OK"), describe(completed, command)
    completed, command = run_verify(stella_bin, TAMPERED / "base.sfb.tar", ["signer.pub"], deep=False, json_output=True)
    assert completed.returncode == 0, describe(completed, command)
    report = json.loads(completed.stdout)
    assert (report.get("result"), report.get("mode")) == ("verified", "quick"), describe(completed, command)


@pytest.mark.parametrize("case", STORED, ids=[case["file"].removesuffix(".sfb.tar") for case in STORED])
def test_tampered_rejected_with_code(stella_bin, case):
    assert_rejected(stella_bin, TAMPERED / case["file"], case["code"], case["trusted"], case["args"], why=case["why"])


QUICK = [case for case in STORED if case["code"] in QUICK_CODES]


@pytest.mark.parametrize("case", QUICK, ids=[case["file"].removesuffix(".sfb.tar") for case in QUICK])
def test_tampered_rejected_quick(stella_bin, case):
    """Codes decided before any blob is decompressed come out the same without --deep."""
    assert_rejected(
        stella_bin, TAMPERED / case["file"], case["code"], case["trusted"], case["args"], deep=False, why=case["why"]
    )


def test_limit_members(stella_bin, tmp_path):
    """More than 100 000 members (~51 MB): built here rather than committed."""
    import make_tampered

    (case,) = [case for case in CASES if case["code"] == "LIMIT_MEMBERS"]
    bundle = tmp_path / case["file"]
    bundle.write_bytes(make_tampered.limit_members_bundle())
    assert_rejected(stella_bin, bundle, "LIMIT_MEMBERS", case["trusted"], case["args"], why=case["why"])


def test_exactly_member_limit_is_not_limit_members(stella_bin, tmp_path):
    """100 000 members in all is allowed: the unlisted extra members are EXTRA_MEMBER (step 6)."""
    import make_tampered

    bundle = tmp_path / "at-limit.sfb.tar"
    bundle.write_bytes(make_tampered.limit_members_bundle(extra=100_000 - 6))
    assert_rejected(stella_bin, bundle, "EXTRA_MEMBER", ["signer.pub"], why="exactly 100000 members")


@pytest.mark.parametrize("case", VALID, ids=[case["file"].removesuffix(".sfb.tar") for case in VALID])
def test_valid_edge_case_verifies(stella_bin, case):
    completed, command = run_verify(stella_bin, TAMPERED / case["file"], case["trusted"], case["args"])
    assert completed.returncode == 0, f"{case['why']}\n" + describe(completed, command)
    assert first_line(completed).startswith("OK"), describe(completed, command)


def test_reference_verifier_agrees_with_cases_json():
    """The committed files still fail first where cases.json says (checked with sfb.verify)."""
    keys = {path.name: sfb.load_public_key(path) for path in KEYS.glob("*.pub")}
    problems = []
    for case in STORED + [dict(item, code=None) for item in VALID]:
        options = {"threshold": 1, "ignore_untrusted": "--ignore-untrusted" in case["args"]}
        if "--threshold" in case["args"]:
            options["threshold"] = int(case["args"][case["args"].index("--threshold") + 1])
        got = sfb.verify_code((TAMPERED / case["file"]).read_bytes(), [keys[name] for name in case["trusted"]], **options)
        if got != case["code"]:
            problems.append(f"{case['file']}: cases.json says {case['code']}, reference verifier {got}")
    assert not problems, "\n".join(problems)


def test_generator_is_deterministic():
    """Same facts, records and keys (derived from public seeds) give the same bytes, and the
    committed base is what the generator makes. Only the zstd bytes may legitimately differ
    under another zstd build (section 6.1): then the segments inside must still be identical."""
    import make_tampered

    rebuilt = make_tampered.base()
    assert rebuilt == make_tampered.base()
    committed = (TAMPERED / "base.sfb.tar").read_bytes()
    if rebuilt != committed:
        segments = sorted(sfb.decompress_capped(data, 1 << 20) for _, data in sfb.tar_members(committed)[2:])
        expected = sorted(blob.segment_data() for blob in make_tampered.base_blobs().values())
        assert segments == expected, "fixtures/tampered is stale: rerun python3 fixtures/make_tampered.py"
