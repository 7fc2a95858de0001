"""Issue "Incident mode", done-when 1: the flight recorder, tail sampling and an incident bundle.

A real OpenTelemetry SDK application sends a steady mix of normal and error traces. Before the
incident only sampled (error) traces reach the long-term archive, and the rest ages out of the
ring (65 s here); `incident start --lookback 1m` then `stop`; the incident bundle holds every
trace that arrived from start - 1m to stop (compared with the client's log), and verifies deep.
This test takes about 90 seconds: the ring's age bound must exceed the one-minute look-back.
"""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
import time
from pathlib import Path

from capturelib import CLIENTS, capture, read_bundle_records, rfc3339, wait_for  # noqa: F401

SAMPLING = """
traces:
  decision-wait: 1s
  errors: true
  latency-threshold: 1h
  probabilistic: 0
"""


def trace_ids(records) -> set[str]:
    ids = set()
    for record in records:
        if record.signal != "traces":
            continue
        for resource_spans in record.request.resource_spans:
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    ids.add(span.trace_id.hex())
    return ids


def test_sampled_archive_before_and_full_incident_bundle(stella, capture, tmp_path):
    policy = tmp_path / "sampling.yaml"
    policy.write_text(SAMPLING)
    service = capture(
        None, "--sampling-policy", policy, "--ring-max-age", "65s", "--default-lookback", "1m",
        "--segment-max-age", "1s")
    log = tmp_path / "traces.jsonl"
    stop_file = tmp_path / "stop"
    client = subprocess.Popen(
        [sys.executable, str(CLIENTS / "mixed_traces_client.py"), service.http_endpoint, str(log),
         "--stop-file", str(stop_file)],
        stdout=subprocess.DEVNULL, stderr=open(tmp_path / "client.err", "wb"))
    client_start = dt.datetime.now(dt.timezone.utc)
    try:
        # Wait until the ring has dropped the first segments: what sampling did not keep is gone.
        wait_for(lambda: int(service.status()["journal"]["prunedSegments"]) > 2, timeout=120,
                 what="the ring to prune its oldest segments")
        started = stella.run("incident", "start", "--reason", "checkout errors", "--lookback", "1m",
                             *service.cli_admin_args())
        assert started.returncode == 0, started.describe()
        incident_id = started.stdout.strip()
        time.sleep(4)
        assert stella.run("incident", "stop", incident_id, *service.cli_admin_args()).returncode == 0
        time.sleep(1)
    finally:
        stop_file.touch()
        client.wait(30)
    sent = [json.loads(line) for line in log.read_text().splitlines()]
    assert sent and all(item["acked"] for item in sent), "the SDK exporter reported a failed export"
    listed = json.loads(stella.run("incident", "list", "--json", *service.cli_admin_args()).stdout)["incidents"]
    incident = next(item for item in listed if item["id"] == incident_id)
    window_start, stop = int(incident["windowStartUnixNano"]), int(incident["endUnixNano"])
    start = int(incident["startUnixNano"])
    service.seal()

    keys = tmp_path / "keys"
    assert stella.run("keygen", "--out", keys, "--name", "soc").returncode == 0
    (keys / "soc.key").chmod(0o600)

    # 1. The incident bundle: every trace whose exports arrived inside start - 1m .. stop.
    out = tmp_path / "incident.sfb.tar"
    made = stella.run("bundle", "--data", service.data, "--incident", incident_id, "--key", keys / "soc.key",
                      "--out", out)
    assert made.returncode == 0, made.describe()
    verified = stella.run("verify", out, "--trusted-key", keys / "soc.pub", "--deep")
    assert verified.returncode == 0, verified.describe()
    _, records = read_bundle_records(out)
    in_bundle = trace_ids(records)
    expected = {item["trace_id"] for item in sent if item["sent_ns"] >= window_start and item["acked_ns"] <= stop}
    # The window must hold enough traces for "none missing" to mean something; the client's rate
    # depends on the machine's load (942-999 seen in a 1000-trace threshold under load 9-12).
    assert len(expected) > 300, f"only {len(expected)} traces in the window"
    missing = expected - in_bundle
    assert not missing, f"{len(missing)} of {len(expected)} traces of the incident window are not in its bundle"

    # 2. Before the incident, only sampled traces reached the archive: every error trace, and no
    #    normal one (traces still waiting for their decision when the incident started are kept
    #    in full, so the last two seconds before it are left out of the check).
    archive = tmp_path / "archive.sfb.tar"
    made = stella.run("bundle", "--data", service.data, "--archive", "--from", rfc3339(client_start - dt.timedelta(minutes=1)),
                      "--to", rfc3339(dt.datetime.now(dt.timezone.utc) + dt.timedelta(minutes=1)),
                      "--key", keys / "soc.key", "--out", archive)
    assert made.returncode == 0, made.describe()
    assert stella.run("verify", archive, "--trusted-key", keys / "soc.pub", "--deep").returncode == 0
    _, archived_records = read_bundle_records(archive)
    archived = trace_ids(archived_records)
    before = [item for item in sent if item["acked_ns"] < start - 2 * 10**9]
    errors_before = {item["trace_id"] for item in before if item["error"]}
    normal_before = {item["trace_id"] for item in before if not item["error"]}
    assert errors_before <= archived, f"{len(errors_before - archived)} error traces missing from the archive"
    assert not (normal_before & archived), f"{len(normal_before & archived)} unsampled traces in the archive"
    # During the incident the tenant is kept at 100% in the archive too.
    during = {item["trace_id"] for item in sent if item["sent_ns"] >= start and item["acked_ns"] <= stop}
    assert during <= archived

    # 3. The rest aged out of the ring: the first seconds of traffic are no longer in the journal.
    early = stella.run("bundle", "--data", service.data, "--from", rfc3339(client_start - dt.timedelta(seconds=1)),
                       "--to", rfc3339(client_start + dt.timedelta(seconds=2)), "--key", keys / "soc.key",
                       "--out", tmp_path / "early.sfb.tar")
    assert early.returncode == 2 and "no captured records" in early.stderr, early.describe()

    sampling = service.status()["sampling"]
    assert int(sampling["decisions"]["kept-error"]) >= len(errors_before)
    assert int(sampling["decisions"]["dropped"]) >= len(normal_before)
