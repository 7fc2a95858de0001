"""Replay refuses, before anything is sent, a bundle that does not verify, a key it does not
trust, and destinations outside the sealed-mode allowlist (an IP address and host names).

Destination refusals run inside a private network namespace (`unshare --net --mount`, see
replay_sandbox.py) whose only interface is loopback: nothing can leave the machine even if the
check were broken, and the receiver beside the replay counts connections."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import bundlelib as bl
from conftest import REPO
from replay_sinks import HTTPSink

TAMPERED = REPO / "fixtures" / "tampered"
BASE = TAMPERED / "base.sfb.tar"
KEYS = TAMPERED / "keys"
SANDBOX = Path(__file__).resolve().parent / "replay_sandbox.py"


def sandboxed(tmp_path: Path, argv: list, hosts: str | None = None) -> dict:
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps({"argv": [str(a) for a in argv], "hosts": hosts}))
    completed = subprocess.run(
        ["unshare", "--net", "--mount", sys.executable, str(SANDBOX), str(spec)],
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr.decode()
    return json.loads(completed.stdout)


def replay_argv(stella_bin: Path, endpoint: str, *extra) -> list:
    return [stella_bin, "replay", BASE, "--trusted-key", KEYS / "signer.pub", "--endpoint", endpoint, *extra]


def test_the_sandbox_receiver_does_see_an_allowed_replay(stella_bin, tmp_path):
    """The control: the same sandbox, an allowed endpoint, and the receiver sees the records."""
    outcome = sandboxed(tmp_path, replay_argv(stella_bin, "http://127.0.0.1:{port}"))
    assert outcome["returncode"] == 0, outcome
    assert outcome["connections"] >= 1 and outcome["received"] == 10


@pytest.mark.parametrize(
    "endpoint",
    [
        "http://10.1.2.3:{port}",  # a private address
        "http://167838211:{port}",  # the same address in a numeric form the resolver accepts
        "http://[fd00::1]:{port}",
    ],
)
def test_non_loopback_addresses_are_refused_with_exit_2(stella_bin, tmp_path, endpoint):
    outcome = sandboxed(tmp_path, replay_argv(stella_bin, endpoint))
    assert outcome["returncode"] == 2, outcome
    assert "is not allowed" in outcome["stderr"] and "nothing was sent" in outcome["stderr"]
    assert outcome["connections"] == 0 and outcome["received"] == 0


def test_a_host_name_is_refused_if_any_address_it_resolves_to_is_not_allowed(stella_bin, tmp_path):
    # The name resolves to loopback (where the receiver is) and to 10.1.2.3: all must be allowed.
    hosts = "127.0.0.1 localhost\n127.0.0.1 sink.replay-test.example\n10.1.2.3 sink.replay-test.example\n"
    outcome = sandboxed(tmp_path, replay_argv(stella_bin, "http://sink.replay-test.example:{port}"), hosts)
    assert outcome["returncode"] == 2, outcome
    assert "10.1.2.3" in outcome["stderr"] and "sink.replay-test.example" in outcome["stderr"]
    assert outcome["connections"] == 0 and outcome["received"] == 0


def test_allow_entries_admit_only_their_port(stella_bin, tmp_path):
    hosts = "127.0.0.1 localhost\n10.1.2.3 sink.replay-test.example\n"
    argv = replay_argv(stella_bin, "http://sink.replay-test.example:4318", "--allow", "10.1.2.3:4319")
    outcome = sandboxed(tmp_path, argv, hosts)
    assert outcome["returncode"] == 2, outcome
    assert outcome["connections"] == 0


def test_an_unresolvable_host_name_is_refused(stella_bin, tmp_path):
    outcome = sandboxed(tmp_path, replay_argv(stella_bin, "http://localhost.example:{port}"), "127.0.0.1 localhost\n")
    assert outcome["returncode"] == 2, outcome
    assert "cannot resolve localhost.example" in outcome["stderr"]
    assert outcome["connections"] == 0


def test_a_host_name_resolving_to_loopback_only_is_allowed(stella_bin, tmp_path):
    hosts = "127.0.0.1 localhost\n127.0.0.1 sink.replay-test.example\n"
    outcome = sandboxed(tmp_path, replay_argv(stella_bin, "http://sink.replay-test.example:{port}"), hosts)
    assert outcome["returncode"] == 0, outcome
    assert outcome["received"] == 10


def test_a_tampered_bundle_is_refused_with_exit_1_and_its_code(stella, tmp_path):
    tampered = tmp_path / "t.sfb.tar"
    data = bytearray(BASE.read_bytes())
    bundle = bl.read_bundle(BASE)
    blob = bundle.manifest["blobs"][-1]
    offset = bytes(data).index(bundle.contents[blob["path"]])
    data[offset + 40] ^= 0x01
    tampered.write_bytes(bytes(data))
    with HTTPSink() as sink:
        result = stella.run("replay", tampered, "--trusted-key", KEYS / "signer.pub", "--endpoint", sink.endpoint)
    assert result.returncode == 1, result.describe()
    assert result.stdout.startswith("REJECT BLOB_DIGEST_MISMATCH"), result.describe()
    assert "nothing was sent" in result.stderr
    assert sink.connections == 0 and sink.attempts == 0


@pytest.mark.parametrize("case", ["SEGMENT_CRC_MISMATCH-body-byte", "SEGMENT_SEQUENCE_MISMATCH-record-seq-skips"])
def test_damage_only_a_deep_check_finds_is_refused(stella, case):
    """Replay verifies as verify --deep, so damage inside segments stops it too."""
    with HTTPSink() as sink:
        result = stella.run(
            "replay", TAMPERED / f"{case}.sfb.tar", "--trusted-key", KEYS / "signer.pub", "--endpoint", sink.endpoint,
            "--json",
        )
    assert result.returncode == 1, result.describe()
    assert json.loads(result.stdout)["code"] == case.split("-")[0]
    assert sink.connections == 0


def test_an_untrusted_key_is_refused_with_exit_1(stella, tmp_path):
    with HTTPSink() as sink:
        result = stella.run("replay", BASE, "--trusted-key", KEYS / "untrusted.pub", "--endpoint", sink.endpoint)
    assert result.returncode == 1, result.describe()
    assert result.stdout.startswith("REJECT SIG_UNTRUSTED_KEY"), result.describe()
    assert sink.connections == 0


@pytest.mark.parametrize(
    "args",
    [
        ["--endpoint", "https://127.0.0.1:4318"],
        ["--endpoint", "127.0.0.1:4318"],
        ["--endpoint", "http://127.0.0.1:4318", "--protocol", "http/xml"],
        ["--endpoint", "http://127.0.0.1:4318", "--speed", "fast"],
        ["--endpoint", "http://127.0.0.1:4318", "--allow", "10.0.0.1"],
    ],
)
def test_usage_errors_exit_2(stella, args):
    result = stella.run("replay", BASE, "--trusted-key", KEYS / "signer.pub", *args)
    assert result.returncode == 2, result.describe()


def test_unshare_is_available():
    assert shutil.which("unshare") and shutil.which("ip"), "the refusal tests need util-linux unshare and iproute2"
