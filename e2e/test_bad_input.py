"""Bad inputs give the contract's exit codes, one error line naming the file, and no debris."""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import FIXTURES

REJECT_CODES = set(
    """TAR_TRUNCATED TAR_TRAILING_DATA TAR_BAD_HEADER TAR_FORBIDDEN_TYPE TAR_UNSAFE_PATH TAR_NONCANONICAL_HEADER
TAR_NONCANONICAL_PADDING TAR_DUPLICATE_MEMBER MISSING_MEMBER EXTRA_MEMBER MEMBER_ORDER ENVELOPE_MALFORMED
ENVELOPE_WRONG_PAYLOAD_TYPE ENVELOPE_NOT_CANONICAL ENVELOPE_PAYLOAD_MISMATCH SIG_DUPLICATE_KEY SIG_UNTRUSTED_KEY
SIG_INVALID SIG_THRESHOLD_NOT_MET MANIFEST_MALFORMED MANIFEST_NOT_CANONICAL MANIFEST_UNSUPPORTED_VERSION
MANIFEST_SCHEMA MANIFEST_DUPLICATE_ENTRY MANIFEST_UNSORTED MANIFEST_PATH_MISMATCH MANIFEST_SEQUENCE_OVERLAP
MANIFEST_SEQUENCE_GAP BLOB_SIZE_MISMATCH BLOB_DIGEST_MISMATCH BLOB_DECOMPRESS_ERROR BLOB_BOMB
BLOB_UNCOMPRESSED_SIZE_MISMATCH SEGMENT_BAD_HEADER SEGMENT_MISMATCH SEGMENT_TRUNCATED SEGMENT_BAD_RECORD
SEGMENT_CRC_MISMATCH SEGMENT_PROTOBUF_INVALID SEGMENT_SEQUENCE_MISMATCH SEGMENT_RECORD_COUNT_MISMATCH
SEGMENT_TIME_MISMATCH LIMIT_MEMBERS LIMIT_MEMBER_SIZE LIMIT_UNCOMPRESSED_SIZE LIMIT_RATIO LIMIT_RECORD_SIZE""".split()
)
assert len(REJECT_CODES) == 47


def assert_one_error_line(result, names: list[str]) -> str:
    """Exactly one non-empty stderr line, `error: ...`, mentioning every name given."""
    lines = result.stderr_lines()
    assert len(lines) == 1, result.describe()
    line = lines[0]
    assert line.startswith("error: "), result.describe()
    for name in names:
        assert name in line, f"{name!r} not named in the error line\n{result.describe()}"
    return line


def first_trace_line() -> str:
    for line in (FIXTURES / "app.otlp.jsonl").read_text(encoding="utf-8").splitlines():
        if '"resourceSpans"' in line:
            return line
    raise AssertionError("fixture has no trace line")


def with_first_span_field(field: str, value: str) -> str:
    doc = json.loads(first_trace_line())
    doc["resourceSpans"][0]["scopeSpans"][0]["spans"][0][field] = value
    return json.dumps(doc, separators=(",", ":")) + "\n"


def bad_inputs() -> dict[str, tuple[str, bytes]]:
    """label -> (file name, bytes). Built from the committed fixtures, deterministically."""
    pb = (FIXTURES / "app.otlp.pb").read_bytes()
    zst = (FIXTURES / "app.otlp.jsonl.zst").read_bytes()
    garbage = bytes(random.Random(1234).randrange(256) for _ in range(3000))
    return {
        "truncated pb": ("truncated.otlp.pb", pb[:-7]),
        "pb cut inside the length prefix": ("cut-prefix.otlp.pb", pb + b"\x00\x00"),
        "garbage bytes": ("garbage.bin", b"\x7f\xff\x00\x01" + garbage),
        "empty file": ("empty.otlp.jsonl", b""),
        "JSON that is not OTLP": ("not-otlp.jsonl", b'{"hello":"world","items":[1,2,3]}\n'),
        "invalid hex span id": ("bad-hex.otlp.jsonl", with_first_span_field("spanId", "zz0f7dfbda0e85d1").encode()),
        "span id of the wrong length": ("short-id.otlp.jsonl", with_first_span_field("spanId", "72d0f7df").encode()),
        "trace id of the wrong length": (
            "long-trace.otlp.jsonl",
            with_first_span_field("traceId", "00" * 17).encode(),
        ),
        "truncated zst": ("truncated.otlp.jsonl.zst", zst[:-9]),
        "JSON line cut short": ("cut-line.otlp.jsonl", first_trace_line()[:-40].encode() + b"\n"),
    }


BAD_INPUTS = bad_inputs()


@pytest.mark.parametrize("label", list(BAD_INPUTS))
def test_bad_import_input(stella, keys, tmp_path, label):
    name, content = BAD_INPUTS[label]
    source = tmp_path / name
    source.write_bytes(content)
    out = tmp_path / "out.sfb.tar"
    result = stella.run("import", source, "--key", keys[0], "--out", out)
    assert result.returncode == 2, f"{label}\n{result.describe()}"
    assert_one_error_line(result, [name])
    assert not out.exists(), f"{label}: {out} left behind"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["keys", name]), f"{label}: debris left in {tmp_path}"


def test_bad_second_input_is_the_one_named(stella, keys, tmp_path):
    good = tmp_path / "good.otlp.jsonl"
    shutil.copyfile(FIXTURES / "app.otlp.jsonl", good)
    bad = tmp_path / "bad-second.otlp.pb"
    bad.write_bytes((FIXTURES / "app.otlp.pb").read_bytes()[:-3])
    out = tmp_path / "out.sfb.tar"
    result = stella.run("import", good, bad, "--key", keys[0], "--out", out)
    assert result.returncode == 2, result.describe()
    line = assert_one_error_line(result, [bad.name])
    assert good.name not in line, result.describe()
    assert not out.exists()


@pytest.mark.parametrize(
    "label, content, code",
    [
        ("random bytes", bytes(random.Random(99).randrange(1, 256) for _ in range(1500)), "TAR_BAD_HEADER"),
        ("empty file", b"", "TAR_TRUNCATED"),
        ("a text file", b"this is not a bundle\n" * 5, "TAR_TRUNCATED"),
    ],
)
def test_verify_non_tar(stella, keys, tmp_path, label, content, code):
    bundle = tmp_path / "not-a-bundle.sfb.tar"
    bundle.write_bytes(content)
    result = stella.run("verify", bundle, "--trusted-key", keys[1])
    assert result.returncode == 1, f"{label}\n{result.describe()}"
    first = result.stdout.splitlines()[0] if result.stdout else ""
    assert first.startswith("REJECT "), f"{label}\n{result.describe()}"
    reported = first.split()[1].rstrip(":")
    assert reported in REJECT_CODES, f"{label}: unknown code {reported}\n{result.describe()}"
    assert reported == code, f"{label}\n{result.describe()}"


def test_verify_json_reject(stella, keys, tmp_path):
    bundle = tmp_path / "empty.sfb.tar"
    bundle.write_bytes(b"")
    result = stella.run("verify", bundle, "--trusted-key", keys[1], "--json")
    assert result.returncode == 1, result.describe()
    report = json.loads(result.stdout)
    assert report["result"] == "rejected"
    assert report["code"] == "TAR_TRUNCATED"


@pytest.mark.parametrize("command", ["import", "sign"])
def test_group_readable_key_refused(stella, keys, imported, tmp_path, command):
    loose = tmp_path / "loose.key"
    shutil.copyfile(keys[0], loose)
    os.chmod(loose, 0o644)
    out = tmp_path / "other.sfb.tar"
    before = imported.read_bytes()
    if command == "import":
        result = stella.run("import", FIXTURES / "app.otlp.jsonl", "--key", loose, "--out", out)
        assert not out.exists()
    else:
        result = stella.run("sign", imported, "--key", loose)
        assert imported.read_bytes() == before, "sign changed the bundle despite refusing the key"
    assert result.returncode == 2, result.describe()
    assert_one_error_line(result, [loose.name])


def openssl(*args, cwd: Path):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


@pytest.mark.parametrize("kind", ["rsa", "x25519", "ec-p256", "garbage-pem"])
def test_unusable_trusted_key(stella, keys, imported, tmp_path, kind):
    pub = tmp_path / f"{kind}.pub"
    if kind == "rsa":
        openssl("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:1024", "-out", "rsa.key", cwd=tmp_path)
        openssl("pkey", "-in", "rsa.key", "-pubout", "-out", pub.name, cwd=tmp_path)
    elif kind == "x25519":
        # Same 44-byte SPKI shape as Ed25519, different algorithm OID: must still be refused.
        openssl("genpkey", "-algorithm", "X25519", "-out", "x.key", cwd=tmp_path)
        openssl("pkey", "-in", "x.key", "-pubout", "-out", pub.name, cwd=tmp_path)
    elif kind == "ec-p256":
        openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", "ec.key", cwd=tmp_path)
        openssl("pkey", "-in", "ec.key", "-pubout", "-out", pub.name, cwd=tmp_path)
    else:
        pub.write_text("-----BEGIN PUBLIC KEY-----\nbm90IGEga2V5IGF0IGFsbA==!!\n-----END PUBLIC KEY-----\n")
    result = stella.run("verify", imported, "--trusted-key", pub)
    assert result.returncode == 2, f"{kind}\n{result.describe()}"
    assert_one_error_line(result, [pub.name])


def test_missing_bundle(stella, keys, tmp_path):
    missing = tmp_path / "does-not-exist.sfb.tar"
    result = stella.run("verify", missing, "--trusted-key", keys[1])
    assert result.returncode == 2, result.describe()
    assert_one_error_line(result, [missing.name])


def test_missing_trusted_key_file(stella, imported, tmp_path):
    missing = tmp_path / "no-such.pub"
    result = stella.run("verify", imported, "--trusted-key", missing)
    assert result.returncode == 2, result.describe()
    assert_one_error_line(result, [missing.name])


def test_keygen_refuses_to_overwrite(stella, keys):
    key, pub = keys
    before = (key.read_bytes(), pub.read_bytes())
    result = stella.run("keygen", "--out", key.parent, "--name", "signer")
    assert result.returncode == 2, result.describe()
    assert_one_error_line(result, [])
    assert (key.read_bytes(), pub.read_bytes()) == before
    assert oct(key.stat().st_mode & 0o777) == oct(0o600)
