"""Issue 5, done-when 5: notify hooks, end to end, with the real binary.

A local HTTP receiver (Python `http.server` in a thread on 127.0.0.1) records every POST. Capture
runs with a `hooks:` section naming that receiver and a second webhook on a closed port. The test
declares an incident, stops it, lets a second incident expire by its TTL, bundles the first one
with `bundle --notify-config`, and checks the bodies received (README "Notify hooks"): start,
stop, expiry and sealed, the sealed one carrying the bundle file's SHA-256 and its manifest's
SHA-256. Meanwhile the down webhook keeps failing and retrying, and capture must still acknowledge
OTLP/HTTP requests promptly and stop cleanly.

Interface assumed (issue 5): `capture ... --config FILE`; `incident start --admin URL --reason TEXT
[--id ID] [--ttl D] [--lookback D]` prints the incident id; `incident stop ID --admin URL`;
`incident list --admin URL --json`; `bundle --data DIR --incident ID --key K --out B
--notify-config FILE` sends `bundle.sealed` itself.
"""

from __future__ import annotations

import hashlib
import http.client
import http.server
import json
import re
import signal
import socket
import struct
import subprocess
import tarfile
import threading
import time
from pathlib import Path

import pytest

from conftest import FIXTURES

READY_TIMEOUT = 60
STOP_TIMEOUT = 30
EVENT_TIMEOUT = 15
# An OTLP export acknowledged later than this while a hook is down counts as "blocked".
PROMPT_SECONDS = 1.0
RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?Z$")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (and that nothing listens on)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Receiver:
    """A webhook receiver: records (path, headers, body) of every POST and answers 200."""

    def __init__(self) -> None:
        self.posts: list[dict] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length)
                with receiver.lock:
                    receiver.posts.append(
                        {"path": self.path, "headers": {k.lower(): v for k, v in self.headers.items()}, "body": body}
                    )
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def bodies(self) -> list[dict]:
        with self.lock:
            return [json.loads(post["body"]) for post in self.posts]

    def wait_for(self, event: str, incident_id: str, timeout: float = EVENT_TIMEOUT) -> tuple[dict, dict]:
        """The first POST with this event for this incident: (parsed body, request)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                posts = list(self.posts)
            for post in posts:
                body = json.loads(post["body"])
                if body.get("event") == event and body.get("incident", {}).get("id") == incident_id:
                    return body, post
            time.sleep(0.05)
        raise AssertionError(
            f"no {event} for {incident_id} within {timeout}s; received: "
            + json.dumps([(b.get("event"), b.get("incident", {}).get("id")) for b in self.bodies()])
        )

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    server = Receiver()
    yield server
    server.close()


def first_trace_request() -> bytes:
    """The first request of the Collector-format protobuf fixture: an ExportTraceServiceRequest
    written by the OpenTelemetry SDK (fixtures/otlp/README.md: traces come first)."""
    data = (FIXTURES / "app.otlp.pb").read_bytes()
    (length,) = struct.unpack(">I", data[:4])
    return data[4 : 4 + length]


def post_otlp(port: int, body: bytes) -> tuple[int, float]:
    """POST /v1/traces as an OTLP/HTTP protobuf exporter does; (status, seconds until answered)."""
    start = time.monotonic()
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request("POST", "/v1/traces", body=body, headers={"Content-Type": "application/x-protobuf"})
        response = connection.getresponse()
        response.read()
        return response.status, time.monotonic() - start
    finally:
        connection.close()


def admin_get(port: int, path: str, data: Path | None = None) -> tuple[int, bytes]:
    """GET on the admin API; with `data`, authenticated by the token capture generated there."""
    headers = {}
    if data is not None:
        headers["Authorization"] = "Bearer " + (data / "admin-token").read_text(encoding="utf-8").strip()
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        connection.request("GET", path, headers=headers)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


class Capture:
    """`stella-forensics capture` on free loopback ports, stdout/stderr in files."""

    def __init__(self, binary: Path, data: Path, config: Path, logs: Path) -> None:
        self.ports = {"http": free_port(), "grpc": free_port(), "admin": free_port()}
        self.data = data
        self.argv = [
            str(binary), "capture", "--data", str(data),
            "--otlp-http", f"127.0.0.1:{self.ports['http']}",
            "--otlp-grpc", f"127.0.0.1:{self.ports['grpc']}",
            "--admin", f"127.0.0.1:{self.ports['admin']}",
            "--metrics", "127.0.0.1:0",
            "--config", str(config),
        ]
        logs.mkdir(parents=True, exist_ok=True)
        self.stderr_path = logs / "capture.stderr"
        with open(logs / "capture.stdout", "wb") as out, open(self.stderr_path, "wb") as err:
            self.proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=out, stderr=err)

    @property
    def admin_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['admin']}"

    @property
    def cli_admin_args(self) -> list[str]:
        """`incident` flags for this service: its URL and the data directory holding its token."""
        return ["--admin", self.admin_url, "--data", str(self.data)]

    def stderr(self) -> str:
        return self.stderr_path.read_text(encoding="utf-8", errors="replace")

    def describe(self) -> str:
        tail = "\n".join(self.stderr().splitlines()[-40:])
        return f"capture: {' '.join(self.argv)}\nexit: {self.proc.poll()}\nstderr tail:\n{tail}"

    def wait_ready(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT
        last = "no answer"
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"capture exited before it was ready\n{self.describe()}", pytrace=False)
            try:
                status, body = admin_get(self.ports["admin"], "/readyz")
                if status == 200:
                    return
                last = f"{status} {body[:200]!r}"
            except OSError as error:
                last = repr(error)
            time.sleep(0.05)
        pytest.fail(f"capture not ready after {READY_TIMEOUT}s (last /readyz: {last})\n{self.describe()}", pytrace=False)

    def node_id(self) -> str:
        status, body = admin_get(self.ports["admin"], "/status", self.data)
        assert status == 200, body
        return json.loads(body)["nodeId"]

    def stop(self) -> float:
        """SIGTERM; must exit 0 within STOP_TIMEOUT even with a hook still retrying. Seconds taken."""
        start = time.monotonic()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                pytest.fail(f"capture did not stop within {STOP_TIMEOUT}s of SIGTERM\n{self.describe()}", pytrace=False)
        assert self.proc.returncode == 0, f"capture exited {self.proc.returncode} after SIGTERM\n{self.describe()}"
        return time.monotonic() - start

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def check_common(body: dict, post: dict, event: str, incident_id: str, reason: str) -> None:
    """What every body carries (README "Notify hooks"), and how it was sent."""
    where = f"{event} body {json.dumps(body)}"
    assert post["headers"].get("content-type") == "application/json", where
    assert post["headers"].get("x-stella-event") == event, where
    assert post["path"] == "/hooks/stella", where
    assert set(body) == {"schema", "event", "eventId", "sentAt", "sentAtUnixNano", "node", "incident", "bundle"}, where
    assert body["schema"] == "stella-forensics.notify.v1", where
    assert body["event"] == event, where
    assert isinstance(body["eventId"], str) and body["eventId"], where
    assert post["headers"].get("x-stella-event-id") == body["eventId"], where
    assert RFC3339.match(body["sentAt"]), where
    assert body["sentAtUnixNano"].isdigit(), where
    # The sent time is now, give or take a minute (the test machine's clock is the capture's).
    assert abs(int(body["sentAtUnixNano"]) / 1e9 - time.time()) < 60, where
    assert isinstance(body["node"], str) and body["node"], where
    incident = body["incident"]
    assert set(incident) == {
        "id", "reason", "declaredBy", "tenants", "startedAt", "startedAtUnixNano",
        "stoppedAt", "stoppedAtUnixNano", "expiresAt", "expiresAtUnixNano",
    }, where
    assert incident["id"] == incident_id, where
    assert incident["reason"] == reason, where
    assert isinstance(incident["declaredBy"], str) and incident["declaredBy"], where
    assert incident["tenants"] == [], where
    assert RFC3339.match(incident["startedAt"]), where
    assert incident["startedAtUnixNano"].isdigit(), where
    # Canonical JSON: what was sent is exactly the sorted, whitespace-free serialization.
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    assert post["body"] == canonical, f"{where}: not canonical JSON"


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_incident_hooks(stella, tmp_path: Path, receiver: Receiver) -> None:
    down_port = free_port()  # nothing listens here: every attempt is refused
    hook_url = f"http://127.0.0.1:{receiver.port}/hooks/stella"
    config = tmp_path / "capture.yaml"
    config.write_text(
        "hooks:\n"
        "  webhooks:\n"
        f"    - url: {hook_url}\n"
        "      timeout: 2s\n"
        f"    - url: http://127.0.0.1:{down_port}/down\n"
        "      timeout: 1s\n"
        "      max-attempts: 20\n"
        "      backoff: 500ms\n",
        encoding="utf-8",
    )
    # `bundle` drains its hooks before it exits; a down hook would only make it wait its drain
    # timeout, so the bundle's notify config names the live receiver alone.
    bundle_hooks = tmp_path / "bundle-hooks.yaml"
    bundle_hooks.write_text(f"hooks:\n  webhooks:\n    - url: {hook_url}\n", encoding="utf-8")
    key, _ = stella.keygen(tmp_path / "keys")
    key.chmod(0o600)
    data = tmp_path / "data"
    request = first_trace_request()

    capture = Capture(stella.binary, data, config, tmp_path / "logs")
    try:
        capture.wait_ready()
        node = capture.node_id()

        # --- incident.started ---
        incident_id = "INC-E2E-HOOKS-1"
        reason = "e2e: notify hooks"
        started = stella.ok(
            "incident", "start", *capture.cli_admin_args, "--reason", reason, "--id", incident_id,
            "--lookback", "1m",
        )
        assert started.stdout.strip().splitlines()[-1].strip() == incident_id, started.describe()

        # Capture acknowledges OTLP promptly while the down hook is failing and retrying.
        timings = []
        for _ in range(10):
            status, seconds = post_otlp(capture.ports["http"], request)
            assert status == 200, f"OTLP export answered {status}\n{capture.describe()}"
            timings.append(seconds)
        assert max(timings) < PROMPT_SECONDS, f"OTLP acknowledgements took {timings} s with a hook down"

        body, post = receiver.wait_for("incident.started", incident_id)
        check_common(body, post, "incident.started", incident_id, reason)
        assert body["node"] == node
        assert body["bundle"] is None
        assert body["incident"]["stoppedAt"] is None and body["incident"]["stoppedAtUnixNano"] is None
        assert body["incident"]["expiresAt"] is None, "no --ttl, no expiry"
        started_nanos = int(body["incident"]["startedAtUnixNano"])

        # --- incident.stopped ---
        stella.ok("incident", "stop", incident_id, *capture.cli_admin_args)
        body, post = receiver.wait_for("incident.stopped", incident_id)
        check_common(body, post, "incident.stopped", incident_id, reason)
        assert body["node"] == node
        assert int(body["incident"]["startedAtUnixNano"]) == started_nanos
        assert RFC3339.match(body["incident"]["stoppedAt"])
        assert int(body["incident"]["stoppedAtUnixNano"]) >= started_nanos

        # --- incident.expired: a TTL ends a second incident by itself ---
        ttl_id = "INC-E2E-HOOKS-TTL"
        ttl_reason = "e2e: ttl expiry"
        stella.ok(
            "incident", "start", *capture.cli_admin_args, "--reason", ttl_reason, "--id", ttl_id, "--ttl", "2s"
        )
        body, post = receiver.wait_for("incident.started", ttl_id)
        expires = int(body["incident"]["expiresAtUnixNano"])
        assert expires - int(body["incident"]["startedAtUnixNano"]) == 2_000_000_000, json.dumps(body)
        body, post = receiver.wait_for("incident.expired", ttl_id, timeout=EVENT_TIMEOUT + 2)
        check_common(body, post, "incident.expired", ttl_id, ttl_reason)
        assert int(body["incident"]["stoppedAtUnixNano"]) >= expires
        assert not any(
            b["event"] == "incident.stopped" and b["incident"]["id"] == ttl_id for b in receiver.bodies()
        ), "an expired incident is reported as incident.expired, not incident.stopped"
        # (What `incident list` shows is done-when 4's business; here it only has to answer.)
        stella.ok("incident", "list", *capture.cli_admin_args, "--json")

        # OTLP is still acknowledged promptly after all that, with the down hook still retrying.
        status, seconds = post_otlp(capture.ports["http"], request)
        assert status == 200 and seconds < PROMPT_SECONDS, (status, seconds)

        # --- bundle.sealed, sent by the bundle command ---
        out = tmp_path / "incident.sfb.tar"
        stella.ok(
            "bundle", "--data", data, "--incident", incident_id, "--key", key, "--out", out,
            "--notify-config", bundle_hooks,
        )
        body, post = receiver.wait_for("bundle.sealed", incident_id)
        check_common(body, post, "bundle.sealed", incident_id, reason)
        assert body["node"] == node
        sealed = body["bundle"]
        assert set(sealed) == {"path", "sha256", "manifestSha256", "records", "blobs"}, json.dumps(body)
        assert Path(sealed["path"]).resolve() == out.resolve()
        assert sealed["sha256"] == sha256_hex(out.read_bytes()), "bundle.sha256 is not the SHA-256 of the file"
        with tarfile.open(out) as tar:
            member = tar.extractfile("manifest.json")
            assert member is not None
            manifest_bytes = member.read()
        assert sealed["manifestSha256"] == sha256_hex(manifest_bytes)
        inspected = json.loads(stella.ok("inspect", out, "--json").stdout)
        assert sealed["manifestSha256"] == inspected["manifestSha256"]
        assert sealed["blobs"] == inspected["blobCount"]
        assert sealed["records"] == sum(stream["records"] for stream in inspected["streams"])
        assert sealed["records"] >= 10, "the bundle holds the exports sent during the incident"
        assert inspected["incident"]["id"] == incident_id

        # Every event has its own id: receivers de-duplicate retries by it.
        ids = [b["eventId"] for b in receiver.bodies()]
        assert len(ids) == len(set(ids)), ids
        # The down hook was tried, and its failures are logged, naming it.
        assert f"127.0.0.1:{down_port}" in capture.stderr(), capture.describe()
    except BaseException:
        capture.kill()
        raise
    # A clean stop does not wait for the down hook's remaining retries beyond the drain bound.
    seconds = capture.stop()
    assert seconds < STOP_TIMEOUT
