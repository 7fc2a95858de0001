"""Issue 14, running as a service: SIGHUP reloads the configuration's reloadable parts.

The real capture service runs with `--config FILE` naming a tail-sampling policy that keeps no
metrics. The test then:

1. rewrites the policy to keep every metric and sends SIGHUP: data points sent afterwards reach
   the long-term archive (the sampler's `dataPointsKept` counter in `/status` moves), the process
   keeps running;
2. breaks the policy file and sends SIGHUP: the reload is refused and logged, the running policy
   stays (new data points are still kept);
3. changes a setting that needs a restart (`limits.max-tenants`) and sends SIGHUP: it is logged
   as needing a restart and `/status` still shows the old bound;
4. bundles the node's audit stream: one `config.reload` record per SIGHUP, done or failed.
"""

from __future__ import annotations

import json
import signal
from pathlib import Path

from capturelib import bundle_records, capture, wait_for  # noqa: F401
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2
from opentelemetry.proto.metrics.v1 import metrics_pb2
from test_audit_trail import AUDIT_TENANT, audit_records

KEEP_NONE = "metrics:\n  keep: none\n"
KEEP_ALL = "metrics:\n  keep: all\n"


def gauge_request(name: str, points: int = 3) -> bytes:
    request = metrics_service_pb2.ExportMetricsServiceRequest()
    metric = request.resource_metrics.add().scope_metrics.add().metrics.add()
    metric.name = name
    for index in range(points):
        point = metric.gauge.data_points.add()
        point.time_unix_nano = 1_700_000_000_000_000_000 + index
        point.as_int = index
    return request.SerializeToString()


def sampled_points(service) -> tuple[int, int]:
    items = service.status()["sampling"]["items"]
    return int(items["dataPointsKept"]), int(items["dataPointsDropped"])


def send_points(service, name: str) -> None:
    result = service.post("/v1/metrics", gauge_request(name))
    assert result.status == 200, f"{result}\n{service.describe()}"


def hangup_and_wait_for(service, text: str, count: int) -> None:
    """SIGHUP, then wait until `text` appears `count` times in capture's log (reloads are logged)."""
    service.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: service.stderr_path.read_text().count(text) >= count, timeout=30,
             what=f"{text!r} in capture's log after SIGHUP")
    assert service.alive(), f"SIGHUP ended capture\n{service.describe()}"


def test_sighup_reloads_the_sampling_policy_and_keeps_the_old_one_when_broken(stella, capture, keys, tmp_path):
    policy = tmp_path / "sampling.yaml"
    policy.write_text(KEEP_NONE)
    config = tmp_path / "capture.yaml"
    config.write_text("sampling: sampling.yaml\n")
    service = capture(None, "--config", config)

    send_points(service, "before-reload")
    wait_for(lambda: sampled_points(service)[1] >= 3, timeout=30, what="the sampler to drop the first points")
    assert sampled_points(service)[0] == 0

    policy.write_text(KEEP_ALL)
    hangup_and_wait_for(service, "SIGHUP: configuration reloaded", 1)
    send_points(service, "after-reload")
    wait_for(lambda: sampled_points(service)[0] >= 3, timeout=30, what="the reloaded policy to keep new points")

    policy.write_text("metrics:\n  keep: sometimes\n")
    hangup_and_wait_for(service, "SIGHUP: configuration not reloaded", 1)
    assert "sampling" in service.stderr_path.read_text().split("SIGHUP: configuration not reloaded")[-1]
    send_points(service, "after-broken-reload")
    wait_for(lambda: sampled_points(service)[0] >= 6, timeout=30, what="the running policy to keep points still")

    policy.write_text(KEEP_ALL)
    config.write_text("sampling: sampling.yaml\nlimits:\n  max-tenants: 5\n")
    hangup_and_wait_for(service, "need a restart", 1)
    assert "limits.max-tenants" in service.stderr_path.read_text()
    assert service.status()["ingest"]["maxTenants"] == 1000

    service.seal()
    service.stop()
    bundle = tmp_path / "audit.sfb.tar"
    bundle_records(stella, service.data, keys, bundle, "--tenant", AUDIT_TENANT)
    _, audited = audit_records(bundle)
    reloads = [record for record in audited if record.get("action") == "config.reload"]
    outcomes = [(record.get("result"), json.loads(record.get("parameters"))) for record in reloads]
    assert outcomes == [
        ("done", {"signal": "SIGHUP", "sampling": "reloaded"}),
        ("failed", {"signal": "SIGHUP", "config": "kept"}),
        ("done", {"signal": "SIGHUP", "needsRestart": ["limits.max-tenants"]}),
    ], outcomes
    assert "sampling" in reloads[1].get("reason"), reloads[1]
