"""Highly repetitive telemetry (the same requests again and again) compresses better than the
128x ratio a verifier accepts. Import must still produce a bundle that verifies, not refuse the
evidence and not write a blob its own verifier would reject."""

from __future__ import annotations

import json
import subprocess
import sys
import tarfile

from conftest import FIXTURES, SCRIPTS


def test_repetitive_input_imports_and_verifies(stella, keys, tmp_path):
    repeated = tmp_path / "repeated.otlp.pb"
    repeated.write_bytes((FIXTURES / "app.otlp.pb").read_bytes() * 3000)
    out = tmp_path / "repeated.sfb.tar"
    stella.import_([repeated], keys[0], out)
    stella.ok("verify", out, "--trusted-key", keys[1], "--deep")
    completed = subprocess.run(
        [sys.executable, str(SCRIPTS / "verify_with_cryptography.py"), str(out), str(keys[1])],
        capture_output=True, text=True, timeout=120, check=False)
    assert completed.returncode == 0, completed.stdout + completed.stderr
    with tarfile.open(out) as archive:
        manifest = json.load(archive.extractfile("manifest.json"))
    ratios = [blob["uncompressedSize"] / blob["size"] for blob in manifest["blobs"]]
    assert max(ratios) <= 128, ratios
    assert sum(blob["recordCount"] for blob in manifest["blobs"]) == 7 * 3000
