"""Golden bundles: `import` of the committed OTLP fixtures gives exactly these bytes.

The digests were recorded with the importer as it was before import was made to stream
(main at 2dedb57: decode with swift-protobuf, re-serialize deterministically, hold a file in
memory). A change to how import reads, splits, journals or compresses its input must keep every
bundle byte-identical; a digest here changes only with a deliberate format or tool-version change,
and then this file says why.

The signing key is the committed test key of fixtures/bundle (Ed25519 is deterministic, so the
signature is fixed too); every fact that import would otherwise derive is derived from the
evidence, so no clock or environment reaches the bundle (BUNDLE-FORMAT.md section 10).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tarfile
from pathlib import Path

import pytest

from conftest import FIXTURES, REPO

SIGNER = REPO / "fixtures" / "bundle" / "sample-signer.key"

# case name -> (input files in order, extra import options, SHA-256 of the bundle)
GOLDEN: dict[str, tuple[list[str], list[str], str]] = {
    "traces.otlp.jsonl": (["traces.otlp.jsonl"], [], "ce67a4adc3fdc8c2a63ff275a78b33e420fc1db3b019ff4a738fbaf70957d042"),
    "logs.otlp.jsonl": (["logs.otlp.jsonl"], [], "e437fbb42b30933c5c82434a57f1d35421f9e7e3a11a4bdac6b9d7ec81d70f0b"),
    "metrics.otlp.jsonl": (["metrics.otlp.jsonl"], [], "d8ff254192d4fdd84aeb28b2fa7f25c4a7541883d1f3c131d8cd2c1de671433e"),
    "app.otlp.jsonl": (["app.otlp.jsonl"], [], "ba95f35755b07b4e539ea45985669c2f1e9ebd2985ef7e6b128c8c4dae78b9a5"),
    "app.otlp.jsonl.zst": (["app.otlp.jsonl.zst"], [], "ba95f35755b07b4e539ea45985669c2f1e9ebd2985ef7e6b128c8c4dae78b9a5"),
    "app.otlp.pb": (["app.otlp.pb"], [], "ba95f35755b07b4e539ea45985669c2f1e9ebd2985ef7e6b128c8c4dae78b9a5"),
    "app.otlp.pb.zst": (["app.otlp.pb.zst"], [], "ba95f35755b07b4e539ea45985669c2f1e9ebd2985ef7e6b128c8c4dae78b9a5"),
    "per-signal files then app.otlp.pb.zst": (
        ["traces.otlp.jsonl", "logs.otlp.jsonl", "metrics.otlp.jsonl", "app.otlp.pb.zst"],
        [],
        "0ff162f7a66ab591fb8c860ce3fdbfbdab31aa04fde5a07de764b854a0cf8067",
    ),
    "app.otlp.pb with every fact given": (
        ["app.otlp.pb"],
        ["--incident", "INC-GOLDEN-1", "--reason", "golden", "--declared-by", "e2e", "--tenant", "acme"],
        "4546fe275b780eb1186fbf862bdd0fba9c65b1174f45e1f37aed923f8ff139ef",
    ),
}


def member_digests(bundle: Path) -> dict[str, str]:
    with tarfile.open(bundle) as archive:
        return {
            member.name: hashlib.sha256(archive.extractfile(member).read()).hexdigest()
            for member in archive.getmembers()
        }


@pytest.mark.parametrize("case", list(GOLDEN))
def test_import_of_committed_fixture_is_byte_identical_to_golden(stella, tmp_path, case):
    inputs, extra, digest = GOLDEN[case]
    key = tmp_path / "signer.key"
    shutil.copyfile(SIGNER, key)
    key.chmod(0o600)
    out = tmp_path / "bundle.sfb.tar"
    stella.import_([FIXTURES / name for name in inputs], key, out, *extra)
    actual = hashlib.sha256(out.read_bytes()).hexdigest()
    if actual != digest:
        with tarfile.open(out) as archive:
            manifest = json.loads(archive.extractfile("manifest.json").read())
        pytest.fail(
            f"{case}: bundle sha256 {actual}, golden {digest}\n"
            f"members: {json.dumps(member_digests(out), indent=1)}\n"
            f"blobs: {json.dumps(manifest['blobs'], indent=1)}"
        )
