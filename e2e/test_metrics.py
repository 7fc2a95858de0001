"""Issue 14, done-when 1 and 3: Debian's `prometheus` scrapes a real capture's `/metrics` while the
OpenTelemetry Python SDK sends it spans; the accepted span count Prometheus reports equals what
the SDK sent, refusals provoked on purpose appear under their reason, and every panel query of the
Grafana dashboard (deploy/grafana/stella-capture.json) evaluates in that Prometheus and returns
data (the traffic includes an incident and a failing webhook, so every panel has some). Also: `/metrics` needs no token and serves nothing else,
`--metrics off` opens no port, a metrics address that cannot be bound stops capture at start."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import grpc
import pytest

from capturelib import CLIENTS, capture, free_port, wait_for  # noqa: F401  (capture is a fixture)

REPO = Path(__file__).resolve().parent.parent
DASHBOARD = REPO / "deploy" / "grafana" / "stella-capture.json"
ALERT_RULES = REPO / "deploy" / "prometheus" / "stella-alerts.yaml"
PROMETHEUS = shutil.which("prometheus")
CLIENT_TIMEOUT = 120
# Prometheus starts answering with data 5-8 s after a cold start on an idle machine (BUILD-NOTES);
# generous for a loaded 2-core machine.
PROMETHEUS_TIMEOUT = 120


def get(url: str, headers: dict | None = None, method: str = "GET") -> tuple[int, dict, bytes]:
    request = urllib.request.Request(url, headers=headers or {}, method=method)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


class Prometheus:
    """Debian's prometheus on 127.0.0.1, scraping one target every second, with the alert rules
    loaded (so they are also shown to evaluate against real series)."""

    def __init__(self, workdir: Path, target: str) -> None:
        assert PROMETHEUS, "Debian's prometheus package is needed: scripts/setup.sh"
        self.port = free_port()
        workdir.mkdir(parents=True, exist_ok=True)
        config = workdir / "prometheus.yml"
        config.write_text(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
            f"rule_files:\n  - {ALERT_RULES}\n"
            "scrape_configs:\n  - job_name: stella-capture\n"
            f"    static_configs:\n      - targets: ['{target}']\n"
        )
        self.log = workdir / "prometheus.log"
        self.process = subprocess.Popen(
            [PROMETHEUS, f"--config.file={config}", f"--storage.tsdb.path={workdir / 'tsdb'}",
             f"--web.listen-address=127.0.0.1:{self.port}"],
            stdout=subprocess.DEVNULL, stderr=self.log.open("wb"), stdin=subprocess.DEVNULL,
        )

    def query(self, expression: str) -> dict:
        """The query API's whole answer (status, data or error), never raising on a bad query."""
        url = f"http://127.0.0.1:{self.port}/api/v1/query?" + urllib.parse.urlencode({"query": expression})
        status, _, body = get(url)
        answer = json.loads(body)
        assert status in (200, 400, 422), f"{expression}: HTTP {status} {answer}"
        return answer

    def value(self, expression: str) -> float | None:
        answer = self.query(expression)
        assert answer["status"] == "success", f"{expression}: {answer}"
        result = answer["data"]["result"]
        return float(result[0]["value"][1]) if result else None

    def wait_for_value(self, expression: str, expected: float, what: str) -> None:
        seen: list = []

        def reached() -> bool:
            try:
                seen.append(self.value(expression))
            except (OSError, json.JSONDecodeError):
                return False
            return seen[-1] == expected

        try:
            wait_for(reached, PROMETHEUS_TIMEOUT, what)
        except pytest.fail.Exception:
            pytest.fail(f"{what}: {expression} = {seen[-1:]} after {PROMETHEUS_TIMEOUT}s, expected {expected}\n"
                        f"prometheus log:\n{self.log.read_text()[-3000:]}")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()


def send_spans(protocol: str, endpoint: str, tenant: str) -> int:
    client = subprocess.run(
        [sys.executable, str(CLIENTS / "sdk_client.py"), "--protocol", protocol, "--endpoint", endpoint,
         "--tenant", tenant, "--spans", "25", "--logs", "10", "--batch", "8"],
        capture_output=True, text=True, timeout=CLIENT_TIMEOUT, stdin=subprocess.DEVNULL,
    )
    assert client.returncode == 0, f"{protocol} client failed: {client.stderr[-3000:]}"
    sent = json.loads(client.stdout.strip().splitlines()[-1])
    return len(sent["spanIds"])


def test_prometheus_counts_the_sdk_spans_refusals_by_reason_and_every_dashboard_query(
        capture, stella, tmp_path):
    # One webhook pointing where nothing listens: its one delivery fails, so the hook panel and
    # the hook counter have something to show.
    config = tmp_path / "capture.yaml"
    config.write_text(
        "hooks:\n  webhooks:\n"
        f"    - url: http://127.0.0.1:{free_port()}/down\n      timeout: 1s\n      max-attempts: 1\n")
    service = capture(None, "--config", config, "--max-request-bytes", "64KiB")
    prometheus = Prometheus(tmp_path / "prometheus", f"127.0.0.1:{service.metrics_port}")
    try:
        spans = send_spans("http-proto", service.http_endpoint, "metrics-http")
        spans += send_spans("grpc", service.grpc_endpoint, "metrics-grpc")
        assert spans > 0

        # Refusals, each of a known reason, all on the traces endpoint.
        refusals = {
            "malformed": service.post("/v1/traces", b"\xff\xff\xff not protobuf"),
            "unsupported_media_type": service.post("/v1/traces", b"", content_type="text/plain"),
            "unauthorized": service.post("/v1/traces", b"", headers={"X-Scope-OrgID": "stella-forensics:audit"}),
        }
        expected_status = {"malformed": 400, "unsupported_media_type": 415, "unauthorized": 403}
        for reason, result in refusals.items():
            assert result.status == expected_status[reason], f"{reason}: {result}"
        # Answered 413 from the head and closed; the client may see the close before the answer.
        try:
            too_large = service.post("/v1/traces", b"\x00" * (80 << 10))
            assert too_large.status == 413, str(too_large)
        except (ConnectionResetError, BrokenPipeError):
            pass
        refusals["too_large"] = None
        # And one over gRPC: a logs Export whose message is not protobuf.
        with grpc.insecure_channel(service.grpc_endpoint) as channel:
            export = channel.unary_unary("/opentelemetry.proto.collector.logs.v1.LogsService/Export")
            with pytest.raises(grpc.RpcError) as refused:
                export(b"\xff\xff\xff not protobuf", timeout=30)
            assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT, refused.value

        # An incident, so the incident panels have something to show.
        started = stella.run("incident", "start", "--reason", "metrics e2e", "--id", "INC-METRICS",
                             *service.cli_admin_args())
        assert started.returncode == 0, started.describe()

        prometheus.wait_for_value(
            'sum(stella_receiver_accepted_items_total{signal="traces"})', float(spans),
            "Prometheus reports the spans the SDK sent")
        transports = {
            row["metric"]["transport"]: float(row["value"][1])
            for row in prometheus.query(
                'sum by (transport) (stella_receiver_accepted_records_total{signal="traces"})')["data"]["result"]
        }
        assert transports.get("http", 0) > 0 and transports.get("grpc", 0) > 0, transports
        for reason in refusals:
            prometheus.wait_for_value(
                f'sum(stella_receiver_refused_requests_total{{signal="traces",reason="{reason}"}})', 1.0,
                f"the {reason} refusal is counted under its reason")
        prometheus.wait_for_value(
            'sum(stella_receiver_refused_requests_total{signal="logs",reason="malformed"})', 1.0,
            "the malformed gRPC call is counted under its signal and reason")
        prometheus.wait_for_value("sum(stella_incidents_active)", 1.0, "the incident is active")
        prometheus.wait_for_value(
            'sum(stella_hook_deliveries_total{result="failed"})', 1.0, "the failed hook delivery is counted")
        assert prometheus.value('up{job="stella-capture"}') == 1.0

        # Done-when 3: every panel query evaluates; each returns data. Rates need two scrapes of a
        # series inside their window, so the queries are polled until all have data.
        dashboard = json.loads(DASHBOARD.read_text())
        assert {v["name"]: v["type"] for v in dashboard["templating"]["list"]}.get("datasource") == "datasource"
        queries = []
        for panel in dashboard["panels"]:
            assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
            for target in panel["targets"]:
                queries.append((panel["title"], target["expr"].replace("$__rate_interval", "1m")))
        assert len(queries) >= 18
        empty: list[str] = []

        def every_panel_has_data() -> bool:
            empty.clear()
            for title, expression in queries:
                answer = prometheus.query(expression)
                assert answer["status"] == "success", f"panel {title!r}: {expression}: {answer}"
                if not answer["data"]["result"]:
                    empty.append(f"{title}: {expression}")
            return not empty

        try:
            wait_for(every_panel_has_data, PROMETHEUS_TIMEOUT, "every dashboard panel has data", interval=1)
        except pytest.fail.Exception:
            pytest.fail(f"panels without data after {PROMETHEUS_TIMEOUT}s:\n" + "\n".join(empty))
    finally:
        prometheus.stop()


def test_metrics_needs_no_token_and_serves_nothing_else(capture):
    service = capture()
    base = f"http://127.0.0.1:{service.metrics_port}"
    status, headers, body = get(base + "/metrics")
    assert status == 200
    assert headers["Content-Type"].startswith("text/plain; version=0.0.4")
    text = body.decode()
    for name in ("stella_receiver_refused_requests_total", "stella_journal_bytes", "stella_inflight_limit_bytes",
                 "stella_incidents_default_lookback_seconds", "process_resident_memory_bytes",
                 "process_cpu_seconds_total", "process_open_fds"):
        assert f"# TYPE {name} " in text, f"{name} missing from /metrics"
    assert get(base + "/status")[0] == 404
    assert get(base + "/")[0] == 404
    assert get(base + "/metrics", method="POST")[0] == 405
    # The admin token is neither needed nor looked at.
    assert get(base + "/metrics", headers={"Authorization": "Bearer wrong"})[0] == 200


def listening_ports(pid: int) -> set[int]:
    """TCP ports process `pid` listens on: its socket inodes matched against /proc/net/tcp{,6}."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[len("socket:["):-1])
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A" and fields[9] in inodes:  # 0A: LISTEN
                ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


def test_metrics_off_opens_no_port(capture):
    on = capture()
    assert listening_ports(on.proc.pid) == {on.http_port, on.grpc_port, on.admin_port, on.metrics_port}
    off = capture(None, "--metrics", "off")
    assert listening_ports(off.proc.pid) == {off.http_port, off.grpc_port, off.admin_port}
    stdout = (off.logs / "capture-001.stdout").read_text()
    assert "listening admin" in stdout and "listening metrics" not in stdout, stdout
    assert f"listening metrics 127.0.0.1:{on.metrics_port}" in (on.logs / "capture-001.stdout").read_text()


def test_an_unbindable_metrics_address_is_a_startup_error(stella, tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        result = stella.run(
            "capture", "--data", tmp_path / "d", "--otlp-http", f"127.0.0.1:{free_port()}",
            "--otlp-grpc", f"127.0.0.1:{free_port()}", "--admin", f"127.0.0.1:{free_port()}",
            "--metrics", f"127.0.0.1:{port}")
    assert result.returncode == 3, result.describe()
    assert "metrics" in result.stderr and str(port) in result.stderr, result.describe()


def test_a_non_loopback_metrics_address_needs_tls_or_insecure_listen(stella, tmp_path):
    result = stella.run("capture", "--data", tmp_path / "d", "--metrics", "0.0.0.0:0")
    assert result.returncode == 2, result.describe()
    assert "metrics" in result.stderr and "insecure-listen" in result.stderr, result.describe()


def refused_count(metrics_port: int, signal: str, reason: str) -> float:
    _, _, body = get(f"http://127.0.0.1:{metrics_port}/metrics")
    prefix = f'stella_receiver_refused_requests_total{{signal="{signal}",reason="{reason}"}} '
    lines = [line for line in body.decode().splitlines() if line.startswith(prefix)]
    assert len(lines) == 1, f"no single {prefix!r} line in /metrics"
    return float(lines[0][len(prefix):])


def test_a_connection_over_the_limit_is_counted_as_a_service_refusal(capture):
    service = capture(None, "--max-connections", "1")
    assert refused_count(service.metrics_port, "unknown", "connection_limit") == 0
    with socket.create_connection(("127.0.0.1", service.http_port), timeout=10) as holder:
        # The held connection takes the one slot once it is accepted; a request on it proves that.
        holder.sendall(b"GET /v1/traces HTTP/1.1\r\nHost: x\r\n\r\n")
        assert holder.recv(64).startswith(b"HTTP/1.1 405")
        with socket.create_connection(("127.0.0.1", service.http_port), timeout=10) as turned_away:
            turned_away.sendall(b"POST /v1/traces HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
            assert turned_away.recv(64).startswith(b"HTTP/1.1 503")
        wait_for(lambda: refused_count(service.metrics_port, "unknown", "connection_limit") == 1, 30,
                 "the refused connection is counted")


def test_service_refusals_are_counted_under_their_reason(capture):
    tenants = capture(None, "--max-tenants", "1")
    empty = b""  # an empty ExportTraceServiceRequest: valid OTLP
    assert tenants.post("/v1/traces", empty, headers={"X-Scope-OrgID": "first"}).status == 200
    assert tenants.post("/v1/traces", empty, headers={"X-Scope-OrgID": "second"}).status == 403
    assert refused_count(tenants.metrics_port, "traces", "tenant_limit") == 1
    assert refused_count(tenants.metrics_port, "traces", "unauthorized") == 0

    full = capture(None, "--max-journal-bytes", "1")
    # The first record takes the journal past its bound of one byte; the next is refused.
    assert full.post("/v1/logs", empty).status == 200
    assert full.post("/v1/logs", empty).status == 503
    assert refused_count(full.metrics_port, "logs", "disk") == 1
    _, _, body = get(f"http://127.0.0.1:{full.metrics_port}/metrics")
    assert "stella_journal_max_bytes 1.0" in body.decode().splitlines()
