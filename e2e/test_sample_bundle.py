"""The committed sample bundle: it verifies, independent tools accept it, and today's tool
rebuilds it byte for byte from the committed inputs and test key (determinism across releases
of the code, not only across two runs)."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
from pathlib import Path

from conftest import REPO, SCRIPTS

SAMPLE = REPO / "fixtures" / "bundle"


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_sample_bundle_verifies_deep(stella):
    result = stella.ok("verify", SAMPLE / "sample.sfb.tar", "--trusted-key", SAMPLE / "sample-signer.pub", "--deep")
    assert result.stdout.startswith("OK: "), result.describe()
    assert "incident INC-SAMPLE-0001" in result.stdout


def test_sample_bundle_accepted_by_independent_verifiers():
    for command in (
        ["bash", str(SCRIPTS / "verify-with-openssl.sh")],
        [sys.executable, str(SCRIPTS / "verify_with_cryptography.py")],
    ):
        completed = subprocess.run(
            [*command, str(SAMPLE / "sample.sfb.tar"), str(SAMPLE / "sample-signer.pub")],
            capture_output=True, text=True, timeout=120, check=False)
        assert completed.returncode == 0, f"{command}: {completed.stdout}\n{completed.stderr}"


def test_sample_bundle_rebuilds_byte_identically(stella, tmp_path):
    # git does not keep mode 0600, and the tool refuses a group/other-readable key: copy it.
    key = tmp_path / "sample-signer.key"
    shutil.copyfile(SAMPLE / "sample-signer.key", key)
    key.chmod(0o600)
    out = tmp_path / "sample.sfb.tar"
    stella.import_(
        [REPO / "fixtures" / "otlp" / "app.otlp.jsonl"], key, out,
        "--incident", "INC-SAMPLE-0001", "--reason", "sample evidence for tests and documentation",
        "--declared-by", "fixtures/bundle/make-sample-bundle.sh")
    assert sha256(out) == sha256(SAMPLE / "sample.sfb.tar")
