"""Metrics reach a real Prometheus: `export --format openmetrics`, backfilled with Debian's
`promtool tsdb create-blocks-from openmetrics`, then Debian's `prometheus` started on 127.0.0.1
over that data directory answers queries through its HTTP API with the archived values."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

import bundlelib as bl
import replay_data
from replay_sinks import free_port

PROMTOOL = shutil.which("promtool")
PROMETHEUS = shutil.which("prometheus")


@pytest.fixture
def metrics_bundle(stella, keys, tmp_path: Path) -> Path:
    stream = tmp_path / "m.pb"
    # 18 requests → 6 metrics requests, 10 s apart, in November 2023.
    replay_data.write_stream(stream, requests=18, items=20)
    out = tmp_path / "m.sfb.tar"
    stella.import_([stream], keys[0], out)
    return out


def query(port: int, expression: str, at_seconds: float) -> list[dict]:
    url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": expression, "time": f"{at_seconds:.3f}"})
    with urllib.request.urlopen(url, timeout=10) as response:
        body = json.load(response)
    assert body["status"] == "success", body
    return body["data"]["result"]


def archived_points(bundle_path: Path):
    """(metric name, kind, point) for every data point, from the official messages."""
    bundle = bl.read_bundle(bundle_path)
    for blob in bundle.manifest["blobs"]:
        if blob["signal"] != "metrics":
            continue
        for record in bundle.segments[blob["path"]].records:
            for rm in record.request.resource_metrics:
                for sm in rm.scope_metrics:
                    for metric in sm.metrics:
                        kind = metric.WhichOneof("data")
                        for point in getattr(metric, kind).data_points:
                            yield metric.name, kind, point


def test_openmetrics_backfill_is_served_by_prometheus(stella, keys, metrics_bundle, tmp_path):
    assert PROMTOOL and PROMETHEUS, "Debian's prometheus package (promtool, prometheus) is needed: scripts/setup.sh"
    out = tmp_path / "om"
    result = stella.run("export", metrics_bundle, "--trusted-key", keys[1], "--format", "openmetrics", "--out", out, "--json")
    assert result.returncode == 0, result.describe()
    report = json.loads(result.stdout)
    assert report["skippedPoints"] == 0 and report["renderedPoints"] > 0
    (om_file,) = [out / entry["name"] for entry in report["files"]]
    assert om_file.read_text().endswith("# EOF\n")

    tsdb = tmp_path / "tsdb"
    backfill = subprocess.run(
        [PROMTOOL, "tsdb", "create-blocks-from", "openmetrics", str(om_file), str(tsdb)],
        capture_output=True, timeout=120, check=False,
    )
    assert backfill.returncode == 0, backfill.stderr.decode() + backfill.stdout.decode()

    port = free_port()
    config = tmp_path / "prometheus.yml"
    config.write_text("global:\n  evaluation_interval: 1h\nscrape_configs: []\n")
    server = subprocess.Popen(
        [
            PROMETHEUS, f"--config.file={config}", f"--storage.tsdb.path={tsdb}",
            "--storage.tsdb.retention.time=100y", f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/-/ready", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            assert server.poll() is None, server.stderr.read().decode() if server.stderr else "prometheus exited"
            assert time.monotonic() < deadline, "prometheus did not become ready"
            time.sleep(0.2)

        checked = 0
        for name, kind, point in archived_points(metrics_bundle):
            at = point.time_unix_nano / 1e9
            labels = {kv.key.replace(".", "_"): kv.value.string_value for kv in point.attributes}
            selector = ",".join(f'{key}="{value}"' for key, value in sorted(labels.items()))
            if kind == "gauge":
                series = query(port, f"{name.replace('.', '_')}{{{selector}}}", at)
                assert len(series) == 1, (name, labels, series)
                assert series[0]["metric"]["job"] == "shop"
                assert float(series[0]["value"][1]) == pytest.approx(point.as_double, rel=1e-12)
            elif kind == "sum":
                series = query(port, f"{name.replace('.', '_')}_total{{{selector}}}", at)
                assert len(series) == 1, (name, labels, series)
                assert int(float(series[0]["value"][1])) == point.as_int
            elif kind == "histogram":
                base = name.replace(".", "_")
                count = query(port, f"{base}_count", at)
                assert int(float(count[0]["value"][1])) == point.count
                buckets = query(port, f'{base}_bucket{{le="10.0"}}', at)
                assert int(float(buckets[0]["value"][1])) == sum(point.bucket_counts[:2])
                total = query(port, f"{base}_sum", at)
                assert float(total[0]["value"][1]) == pytest.approx(point.sum)
            checked += 1
        assert checked >= 6 * 5, f"only {checked} points checked"
    finally:
        server.terminate()
        server.wait(timeout=30)
