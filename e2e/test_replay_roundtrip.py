"""Issue "Replay and export", done-when 2: replaying a captured bundle into a fresh `capture` and
bundling that again gives the same records (payload digests compared per stream, in order)."""

from __future__ import annotations

import hashlib
import subprocess
import sys

import pytest

from capturelib import CLIENTS, bundle_records, capture, trace_request  # noqa: F401


def digests(records) -> dict[tuple[str, str], list[str]]:
    """Per (signal, tenant): the SHA-256 of every record's request bytes, in seq order. Node ids
    differ between the two captures (each has its own), so they are not part of the key."""
    streams: dict[tuple[str, str], list[tuple[int, str]]] = {}
    for record in records:
        streams.setdefault((record.signal, record.tenant), []).append(
            (record.seq, hashlib.sha256(record.raw).hexdigest()))
    return {key: [digest for _, digest in sorted(items)] for key, items in streams.items()}


@pytest.mark.parametrize("protocol", ["http/protobuf", "grpc"])
def test_replay_into_a_fresh_capture_gives_the_same_records(stella, capture, tmp_path, protocol):
    keys = tmp_path / "keys"
    assert stella.run("keygen", "--out", keys, "--name", "k").returncode == 0
    key, pub = keys / "k.key", keys / "k.pub"

    first = capture()
    # Real SDK traffic on all three signals (HTTP/protobuf and gRPC), plus a second tenant.
    sent = subprocess.run(
        [sys.executable, str(CLIENTS.parent.parent / "scripts" / "demo_client.py"), first.http_endpoint,
         first.grpc_endpoint], capture_output=True, timeout=120)
    assert sent.returncode == 0, sent.stderr.decode()
    for index in range(5):
        result = first.post("/v1/traces", trace_request([f"acme-{index}"]), headers={"X-Scope-OrgID": "acme"})
        assert result.status == 200, str(result)
    first.seal()
    _, original = bundle_records(stella, first.data, (key, pub), tmp_path / "first.sfb.tar")

    second = capture()
    endpoint = second.http_endpoint if protocol != "grpc" else f"http://{second.grpc_endpoint}"
    replayed = stella.run(
        "replay", tmp_path / "first.sfb.tar", "--trusted-key", pub, "--endpoint", endpoint,
        "--protocol", protocol, "--time-shift", "none")
    assert replayed.returncode == 0, replayed.describe()
    second.seal()
    _, again = bundle_records(stella, second.data, (key, pub), tmp_path / "second.sfb.tar")

    expected, actual = digests(original), digests(again)
    assert set(expected) == {("traces", "default"), ("logs", "default"), ("metrics", "default"), ("traces", "acme")}
    assert actual == expected
