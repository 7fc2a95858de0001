"""Co-signing, trust sets and thresholds (BUNDLE-FORMAT.md §5, contract `sign` / `verify`)."""

from __future__ import annotations

import base64
import shutil
import sys

import pytest

import bundlelib as bl
from bundlelib import keyid_of
from conftest import FIXTURES, SCRIPTS, run_script


def first_line(result) -> str:
    lines = result.stdout.splitlines()
    return lines[0] if lines else ""


@pytest.fixture
def cosigned(stella, tmp_path):
    """Keys A and B; bundle imported with A (`single`) and a copy co-signed with B (`both`)."""
    a_key, a_pub = stella.keygen(tmp_path / "keys", "a")
    b_key, b_pub = stella.keygen(tmp_path / "keys", "b")
    single = tmp_path / "single.sfb.tar"
    stella.import_([FIXTURES / "app.otlp.jsonl"], a_key, single)
    both = tmp_path / "both.sfb.tar"
    shutil.copyfile(single, both)
    stella.ok("sign", both, "--key", b_key)
    return dict(a_key=a_key, a_pub=a_pub, b_key=b_key, b_pub=b_pub, single=single, both=both)


def test_sign_changes_only_the_envelope(cosigned):
    before = bl.read_bundle(cosigned["single"])
    after = bl.read_bundle(cosigned["both"])
    assert after.members == before.members
    assert after.manifest_raw == before.manifest_raw
    for name in before.members[2:]:
        assert after.contents[name] == before.contents[name], name
    # The tar bytes before member 2 (manifest header + data) are untouched as well.
    manifest_span = 512 + (len(before.manifest_raw) + 511) // 512 * 512
    assert cosigned["both"].read_bytes()[:manifest_span] == cosigned["single"].read_bytes()[:manifest_span]

    signatures = after.envelope["signatures"]
    keyids = [s["keyid"] for s in signatures]
    assert len(signatures) == 2
    assert keyids == sorted(keyids)
    assert set(keyids) == {keyid_of(cosigned["a_pub"]), keyid_of(cosigned["b_pub"])}
    assert base64.b64decode(after.envelope["payload"]) == after.manifest_raw
    a_sig = [s for s in signatures if s["keyid"] == keyid_of(cosigned["a_pub"])]
    assert a_sig == before.envelope["signatures"], "A's signature changed when B co-signed"


def test_signing_is_idempotent_and_order_free(stella, cosigned, tmp_path):
    both = cosigned["both"]
    again = tmp_path / "again.sfb.tar"
    shutil.copyfile(both, again)
    stella.ok("sign", again, "--key", cosigned["b_key"])
    assert again.read_bytes() == both.read_bytes(), "signing twice with B changed the file"
    stella.ok("sign", again, "--key", cosigned["a_key"])
    assert again.read_bytes() == both.read_bytes(), "re-signing with A changed the file"

    # Import with B then co-sign with A == import with A then co-sign with B (both == build with {A, B}).
    reverse = tmp_path / "reverse.sfb.tar"
    stella.import_([FIXTURES / "app.otlp.jsonl"], cosigned["b_key"], reverse)
    stella.ok("sign", reverse, "--key", cosigned["a_key"])
    assert reverse.read_bytes() == both.read_bytes()


def test_threshold_two_with_both_trusted(stella, cosigned):
    result = stella.run(
        "verify", cosigned["both"], "--threshold", "2", "--trusted-key", cosigned["a_pub"],
        "--trusted-key", cosigned["b_pub"], "--deep",
    )
    assert result.returncode == 0, result.describe()
    assert first_line(result).startswith("OK:"), result.describe()


def test_untrusted_cosigner_is_reported(stella, cosigned):
    result = stella.run("verify", cosigned["both"], "--trusted-key", cosigned["a_pub"], "--threshold", "1")
    assert result.returncode == 1, result.describe()
    assert first_line(result).startswith("REJECT SIG_UNTRUSTED_KEY:"), result.describe()


def test_ignore_untrusted(stella, cosigned):
    result = stella.run("verify", cosigned["both"], "--trusted-key", cosigned["a_pub"], "--ignore-untrusted")
    assert result.returncode == 0, result.describe()
    assert first_line(result).startswith("OK:"), result.describe()


def test_threshold_not_met_by_ignored_signatures(stella, cosigned, tmp_path):
    """Trust {A, C}, need 2: B's signature is ignored and never counts, so only A is verified."""
    _, c_pub = stella.keygen(tmp_path / "keys", "c")
    result = stella.run(
        "verify", cosigned["both"], "--trusted-key", cosigned["a_pub"], "--trusted-key", c_pub,
        "--threshold", "2", "--ignore-untrusted",
    )
    assert result.returncode == 1, result.describe()
    assert first_line(result).startswith("REJECT SIG_THRESHOLD_NOT_MET:"), result.describe()


@pytest.mark.parametrize(
    "label, trusted, extra",
    [
        ("k=3 > |T|=2", ["a_pub", "b_pub"], ["--threshold", "3"]),
        ("k=2 > |T|=1 with --ignore-untrusted", ["a_pub"], ["--ignore-untrusted", "--threshold", "2"]),
        ("k=0", ["a_pub", "b_pub"], ["--threshold", "0"]),
        ("same key twice counts once: k=2 > |T|=1", ["a_pub", "a_pub_copy"], ["--threshold", "2"]),
    ],
)
def test_threshold_outside_trust_set_is_usage_error(stella, cosigned, tmp_path, label, trusted, extra):
    copy = tmp_path / "a-copy.pub"
    shutil.copyfile(cosigned["a_pub"], copy)
    paths = {"a_pub": cosigned["a_pub"], "b_pub": cosigned["b_pub"], "a_pub_copy": copy}
    args = []
    for name in trusted:
        args += ["--trusted-key", paths[name]]
    result = stella.run("verify", cosigned["both"], *args, *extra)
    assert result.returncode == 2, f"{label}\n{result.describe()}"
    assert len(result.stderr_lines()) == 1, f"{label}\n{result.describe()}"
    assert result.stderr_lines()[0].startswith("error: "), f"{label}\n{result.describe()}"


def test_cryptography_script_on_cosigned(cosigned):
    script = SCRIPTS / "verify_with_cryptography.py"
    both, a_pub, b_pub = cosigned["both"], cosigned["a_pub"], cosigned["b_pub"]
    ok = run_script(sys.executable, script, both, a_pub, b_pub, "--threshold", "2")
    assert ok.returncode == 0, ok.describe()
    untrusted = run_script(sys.executable, script, both, a_pub)
    assert untrusted.returncode == 1, untrusted.describe()
    ignoring = run_script(sys.executable, script, both, a_pub, "--ignore-untrusted")
    assert ignoring.returncode == 0, ignoring.describe()
    for pub in (a_pub, b_pub):
        via_openssl = run_script("bash", SCRIPTS / "verify-with-openssl.sh", both, pub)
        assert via_openssl.returncode == 0, via_openssl.describe()
