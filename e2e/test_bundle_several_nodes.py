"""Issue 16: one signed bundle from several capture nodes' data directories.

Two real `capture` processes (nodes `node-east` and `node-west`, each with its own data
directory and loopback ports) take traffic from the OpenTelemetry Python SDK's exporters; an
incident is declared on both; `bundle --data A --data B --incident ID` seals one bundle that
`verify --deep`, fixtures/sfb.py and the independent scripts (python-cryptography, openssl) accept,
holding every record both nodes acknowledged and both nodes' audit streams. Then the refusals:
the same directory twice, two directories of one node id, and a segment file missing from the
middle of a node's stream (named by node, stream and seq range, never sealed as a hole).
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

from capturelib import CLIENTS, capture, read_bundle_records, trace_request  # noqa: F401  (capture is a fixture)
from conftest import SCRIPTS, run_script

import sfb

SIGNALS = ("traces", "logs", "metrics")
CLIENT_TIMEOUT = 120
AUDIT_TENANT = "stella-forensics:audit"
INCIDENT = "INC-MULTI-1"


def send_with_sdk(protocol: str, endpoint: str, tenant: str) -> dict:
    """Runs e2e/clients/sdk_client.py; its tally of what the exporter had acknowledged."""
    client = subprocess.run(
        [sys.executable, str(CLIENTS / "sdk_client.py"), "--protocol", protocol, "--endpoint", endpoint,
         "--tenant", tenant, "--tag", tenant, "--spans", "30", "--logs", "20", "--batch", "8"],
        capture_output=True, text=True, timeout=CLIENT_TIMEOUT, stdin=subprocess.DEVNULL,
    )
    assert client.returncode == 0, (
        f"{protocol} client failed (exit {client.returncode})\nstdout: {client.stdout}\nstderr: {client.stderr[-3000:]}"
    )
    return json.loads(client.stdout.strip().splitlines()[-1])


def span_ids(request) -> list[str]:
    return [span.span_id.hex() for rs in request.resource_spans for ss in rs.scope_spans for span in ss.spans]


def incident(stella, service, *args):
    result = stella.run("incident", *args, *service.cli_admin_args())
    assert result.returncode == 0, result.describe()
    return result


def bundle(stella, data_dirs, key: Path, out: Path, *extra):
    data_flags = [flag for directory in data_dirs for flag in ("--data", directory)]
    return stella.run("bundle", *data_flags, "--incident", INCIDENT, "--key", key, "--out", out, *extra)


def test_two_capture_nodes_make_one_bundle_with_every_acknowledged_record(stella, capture, keys, tmp_path):
    key, pub = keys
    os.chmod(key, 0o600)
    east = capture(tmp_path / "east", "--node-id", "node-east")
    west = capture(tmp_path / "west", "--node-id", "node-west")
    for service in (east, west):
        incident(stella, service, "start", "--reason", "lateral movement across both sites", "--id", INCIDENT,
                 "--lookback", "10m")

    sent = {
        ("node-east", "east-http"): send_with_sdk("http-proto", east.http_endpoint, "east-http"),
        ("node-west", "west-grpc"): send_with_sdk("grpc", west.grpc_endpoint, "west-grpc"),
    }
    # A few more requests to the west node in three sealed segments: the stream later missing its
    # middle segment.
    posted = []
    for batch in range(3):
        for index in range(4):
            request_id = f"gap-{batch}-{index}"
            result = west.post("/v1/traces", trace_request([request_id]), headers={"X-Scope-OrgID": "gap"})
            assert result.status == 200, f"{request_id}: {result}"
            posted.append(request_id)
        west.seal()
    for service in (east, west):
        incident(stella, service, "stop", INCIDENT)

    # Bundled while both captures still run; --data in either order.
    out = tmp_path / "both.sfb.tar"
    made = bundle(stella, [west.data, east.data], key, out)
    assert made.returncode == 0, made.describe()
    verified = stella.run("verify", out, "--trusted-key", pub, "--deep")
    assert verified.returncode == 0, verified.describe()
    sfb.verify(out.read_bytes(), [sfb.load_public_key(pub)], deep=True)
    for script in (
        [sys.executable, SCRIPTS / "verify_with_cryptography.py", out, pub],
        ["bash", SCRIPTS / "verify-with-openssl.sh", out, pub],
    ):
        checked = run_script(*script)
        assert checked.returncode == 0 and checked.stdout.startswith("OK:"), checked.describe()

    manifest, records = read_bundle_records(out, check_crc=True)
    assert manifest["capture"]["nodes"] == ["node-east", "node-west"]
    assert manifest["incident"]["id"] == INCIDENT
    assert manifest["incident"]["reason"] == "lateral movement across both sites"
    paths = [blob["path"] for blob in manifest["blobs"]]
    assert paths == sorted(paths, key=lambda path: path.encode()), "blobs must be sorted by path (§4)"

    # Every stream of every node: seqs 0..n-1 without a gap (nothing was pruned in this test).
    streams: dict[tuple, list[int]] = {}
    for record in records:
        streams.setdefault((record.node, record.signal, record.tenant), []).append(record.seq)
    for stream, seqs in streams.items():
        assert sorted(seqs) == list(range(len(seqs))), f"stream {stream}: seqs are not 0..{len(seqs) - 1}"
    # Each node's custody trail came along.
    assert {(node, tenant) for node, _, tenant in streams if tenant == AUDIT_TENANT} == {
        ("node-east", AUDIT_TENANT), ("node-west", AUDIT_TENANT)}

    # Every request each exporter saw acknowledged is a record of its node, and nothing else is.
    for (node, tenant), tally in sent.items():
        ours = [record for record in records if record.tenant == tenant]
        assert {record.node for record in ours} == {node}
        for kind in SIGNALS:
            count = sum(1 for record in ours if record.signal == kind)
            assert count == tally["requests"][kind], f"{node} {tenant} {kind}: {count} records vs {tally}"
        stored = sorted(sid for record in ours if record.signal == "traces" for sid in span_ids(record.request))
        assert stored == tally["spanIds"], f"{node} {tenant}: span ids differ"
    gap_records = [record for record in records if record.tenant == "gap"]
    assert {record.node for record in gap_records} == {"node-west"}
    assert len(gap_records) == len(posted)

    east.stop()
    west.stop()
    # Stopped nodes: the order of --data changes no byte of the bundle.
    ordered = [tmp_path / "east-west.sfb.tar", tmp_path / "west-east.sfb.tar"]
    assert bundle(stella, [east.data, west.data], key, ordered[0]).returncode == 0
    assert bundle(stella, [west.data, east.data], key, ordered[1]).returncode == 0
    assert ordered[0].read_bytes() == ordered[1].read_bytes()
    # One directory still bundles on its own, as before: its node only.
    alone = tmp_path / "east.sfb.tar"
    made = bundle(stella, [east.data], key, alone)
    assert made.returncode == 0, made.describe()
    assert json.loads(dict(sfb.tar_members(alone.read_bytes()))["manifest.json"])["capture"]["nodes"] == ["node-east"]

    # Refusals (exit 2, usage): the same directory twice, spelled two ways; two directories of
    # one node id.
    refused = bundle(stella, [east.data, Path(f"{east.data}/../east")], key, tmp_path / "twice.sfb.tar")
    assert refused.returncode == 2, refused.describe()
    assert "is given twice" in refused.stderr
    impostor = tmp_path / "impostor"
    (impostor / "journal").mkdir(parents=True)
    (impostor / "node-id").write_text("node-east\n")
    refused = bundle(stella, [east.data, impostor], key, tmp_path / "dup.sfb.tar")
    assert refused.returncode == 2, refused.describe()
    assert f'{east.data} and {impostor} both hold the journal of node "node-east"' in refused.stderr
    assert not (tmp_path / "dup.sfb.tar").exists()

    # A segment file missing from the middle of west's "gap" stream: refused (exit 3), naming the
    # node, the stream and the seqs no file holds; no bundle is written.
    stream_dir = west.data / "journal" / "traces" / ("t-" + hashlib.sha256(b"gap").hexdigest()[:32])
    sealed = sorted(stream_dir.glob("*.zst"))
    assert len(sealed) == 3, sorted(path.name for path in stream_dir.iterdir())
    first_missing, next_first = int(sealed[1].stem), int(sealed[2].stem)
    sealed[1].unlink()
    holed = tmp_path / "holed.sfb.tar"
    refused = bundle(stella, [east.data, west.data], key, holed)
    assert refused.returncode == 3, refused.describe()
    assert (
        f"node node-west, stream traces of tenant gap: records {first_missing}...{next_first - 1} "
        f"are missing from {west.data}"
    ) in refused.stderr, refused.describe()
    assert not holed.exists()
