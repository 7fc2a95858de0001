"""The bundle checks out with tools that share no code with stella-forensics (BUNDLE-FORMAT.md §11)."""

from __future__ import annotations

import io
import sys
import tarfile
from pathlib import Path

import pytest

from conftest import SCRIPTS, run_script


def openssl_verify(bundle: Path, pub: Path):
    return run_script("bash", SCRIPTS / "verify-with-openssl.sh", bundle, pub)


def cryptography_verify(bundle: Path, *pubs: Path):
    return run_script(sys.executable, SCRIPTS / "verify_with_cryptography.py", bundle, *pubs)


def member_data_offset(bundle: Path, predicate) -> tuple[str, int, int]:
    """(name, offset of its data in the file, size) of the first member matching predicate."""
    with tarfile.open(fileobj=io.BytesIO(bundle.read_bytes()), mode="r:") as archive:
        for info in archive:
            if predicate(info.name):
                return info.name, info.offset_data, info.size
    raise AssertionError(f"{bundle}: no matching member")


def flipped_copy(bundle: Path, out: Path, predicate) -> str:
    """Copy with one byte flipped in the middle of the first member matching predicate."""
    name, offset, size = member_data_offset(bundle, predicate)
    data = bytearray(bundle.read_bytes())
    data[offset + size // 2] ^= 0x01
    out.write_bytes(bytes(data))
    return name


def test_both_scripts_accept(imported, keys):
    _, pub = keys
    for result in (openssl_verify(imported, pub), cryptography_verify(imported, pub)):
        assert result.returncode == 0, result.describe()
        assert result.stdout.startswith("OK:"), result.describe()


@pytest.mark.parametrize(
    "where, code",
    [
        ("blob", "BLOB_DIGEST_MISMATCH"),
        ("manifest", "ENVELOPE_PAYLOAD_MISMATCH"),
    ],
)
def test_flipped_byte_rejected_by_all(stella, imported, keys, tmp_path, where, code):
    _, pub = keys
    predicate = (lambda n: n.startswith("blobs/")) if where == "blob" else (lambda n: n == "manifest.json")
    tampered = tmp_path / f"tampered-{where}.sfb.tar"
    flipped_copy(imported, tampered, predicate)

    for result in (openssl_verify(tampered, pub), cryptography_verify(tampered, pub)):
        assert result.returncode != 0, result.describe()
        assert result.returncode == 1, result.describe()

    for mode in ([], ["--deep"]):
        result = stella.run("verify", tampered, "--trusted-key", pub, *mode)
        assert result.returncode == 1, result.describe()
        assert result.stdout.splitlines()[0].startswith(f"REJECT {code}:"), result.describe()


def test_flipped_signature_rejected(stella, imported, keys, tmp_path):
    """A changed signature byte: openssl and cryptography both say it no longer verifies."""
    _, pub = keys
    data = imported.read_bytes()
    name, offset, size = member_data_offset(imported, lambda n: n == "manifest.dsse.json")
    envelope = data[offset : offset + size]
    # Change one base64 character inside the signature value (not padding), keeping valid base64.
    marker = envelope.index(b'"sig":"') + len(b'"sig":"') + 10
    replacement = b"A" if envelope[marker : marker + 1] != b"A" else b"B"
    tampered = tmp_path / "tampered-sig.sfb.tar"
    tampered.write_bytes(data[: offset + marker] + replacement + data[offset + marker + 1 :])

    for result in (openssl_verify(tampered, pub), cryptography_verify(tampered, pub)):
        assert result.returncode == 1, result.describe()
    result = stella.run("verify", tampered, "--trusted-key", pub)
    assert result.returncode == 1, result.describe()
    assert result.stdout.splitlines()[0].startswith("REJECT SIG_INVALID:"), result.describe()


def test_scripts_reject_wrong_key(stella, imported, tmp_path):
    """A key that did not sign: no signature with its keyid (openssl route) / untrusted signer."""
    _, other_pub = stella.keygen(tmp_path / "other")
    for result in (openssl_verify(imported, other_pub), cryptography_verify(imported, other_pub)):
        assert result.returncode == 1, result.describe()
