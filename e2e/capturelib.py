"""Running `stella-forensics capture` in end-to-end tests, and reading back what it journaled.

* `CaptureProcess` starts the real service on free loopback ports with its stdout/stderr in files,
  waits for `/readyz`, and stops it with SIGTERM (asserting exit 0) or kills it with SIGKILL.
* The `capture` fixture is a factory: `capture(data_dir, *extra_flags)` starts one service; every
  service still running at teardown gets SIGTERM and must exit 0.
* `bundle_records` bundles a data directory with the real `bundle` command, checks it with
  `verify --deep`, and decodes every record with the official `opentelemetry-proto` messages
  (segments are read with fixtures/sfb.py, the independent implementation of the format).
* `trace_request` builds a request with the OpenTelemetry SDK's own protobuf encoder, carrying an
  id in the span name and in the span attribute `req.id`.
* The admin API needs a token for everything but /healthz and /readyz: `CaptureProcess.admin`
  sends the local operator's token capture generated in DATA/admin-token (or `admin_token`, when a
  test gives capture its own --admin-tokens file), and `admin_headers(data)` builds the headers for
  tests that run capture themselves; the CLI's `incident` commands find it with `--data DATA`.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
CLIENTS = Path(__file__).resolve().parent / "clients"
sys.path.insert(0, str(REPO / "fixtures"))
sys.path.insert(0, str(CLIENTS))

import sfb  # noqa: E402  (fixtures/sfb.py: independent reader/verifier of the bundle format)
from otlp_requests import request_ids, trace_request  # noqa: E402,F401  (re-exported for tests)
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2  # noqa: E402
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2  # noqa: E402
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2  # noqa: E402

READY_TIMEOUT = 60  # seconds; a debug build recovering a journal after SIGKILL can be slow
STOP_TIMEOUT = 30
REQUEST_TYPES = {
    "traces": trace_service_pb2.ExportTraceServiceRequest,
    "logs": logs_service_pb2.ExportLogsServiceRequest,
    "metrics": metrics_service_pb2.ExportMetricsServiceRequest,
}
SIGNAL_NAMES = {1: "traces", 2: "logs", 3: "metrics"}


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (bind to 0, read it, close)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def rfc3339(moment: dt.datetime) -> str:
    return moment.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def tail(path: Path, lines: int = 40) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return f"({path} does not exist)"
    return "\n".join(text.splitlines()[-lines:])


@dataclasses.dataclass
class HTTPResult:
    status: int
    headers: dict[str, str]
    body: bytes

    def __str__(self) -> str:
        return f"HTTP {self.status} {self.headers} {self.body[:300]!r}"


ADMIN_TOKEN_FILE = "admin-token"  # written by capture in its data directory (README "Admin API")


def read_admin_token(data: Path) -> str:
    """The local operator's token capture generated at its first start in `data`."""
    path = Path(data) / ADMIN_TOKEN_FILE
    assert path.is_file(), f"capture did not write its admin token to {path}"
    return path.read_text(encoding="utf-8").strip()


def admin_headers(data: Path, method: str = "GET", token: str | None = None) -> dict[str, str]:
    """Headers of an authenticated admin request: the bearer token and, for a state change,
    the JSON content type the admin API requires."""
    headers = {"Authorization": f"Bearer {token or read_admin_token(data)}"}
    if method not in ("GET", "HEAD"):
        headers["Content-Type"] = "application/json"
    return headers


def http_request(
    host: str, port: int, method: str, path: str, body: bytes | None = None, headers: dict | None = None,
    timeout: float = 10,
) -> HTTPResult:
    """One request on a fresh connection; header names in the result are lowercase."""
    connection = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        data = response.read()
        return HTTPResult(response.status, {k.lower(): v for k, v in response.getheaders()}, data)
    finally:
        connection.close()


class CaptureProcess:
    """One run of `stella-forensics capture` on fixed ports and a data directory."""

    def __init__(self, binary: Path, data: Path, logs: Path, extra: list[str], ports: dict | None = None):
        self.binary = binary
        self.data = data
        self.logs = logs
        self.extra = [str(arg) for arg in extra]
        self.ports = ports or {"http": free_port(), "grpc": free_port(), "admin": free_port()}
        # Each capture gets its own metrics port (the default 9464 would collide between tests).
        self.ports.setdefault("metrics", free_port())
        self.proc: subprocess.Popen | None = None
        self.runs = 0
        self.stderr_files: list[Path] = []
        # The token admin() sends; None: the one capture generated in the data directory.
        self.admin_token: str | None = None

    # --- addresses ---
    @property
    def http_port(self) -> int:
        return self.ports["http"]

    @property
    def grpc_port(self) -> int:
        return self.ports["grpc"]

    @property
    def admin_port(self) -> int:
        return self.ports["admin"]

    @property
    def metrics_port(self) -> int:
        return self.ports["metrics"]

    @property
    def http_endpoint(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def grpc_endpoint(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    @property
    def argv(self) -> list[str]:
        return [
            str(self.binary), "capture",
            "--data", str(self.data),
            "--otlp-http", f"127.0.0.1:{self.http_port}",
            "--otlp-grpc", f"127.0.0.1:{self.grpc_port}",
            "--admin", f"127.0.0.1:{self.admin_port}",
            *([] if "--metrics" in self.extra else ["--metrics", f"127.0.0.1:{self.metrics_port}"]),
            *self.extra,
        ]

    @property
    def stderr_path(self) -> Path:
        return self.stderr_files[-1]

    def describe(self) -> str:
        """For assertion messages: the command and the tail of this run's stderr."""
        stderr = tail(self.stderr_path) if self.stderr_files else "(never started)"
        code = None if self.proc is None else self.proc.poll()
        return f"capture: {' '.join(self.argv)}\nexit: {code}\nstderr tail:\n{stderr}"

    # --- lifecycle ---
    def start(self, wait: bool = True) -> "CaptureProcess":
        assert self.proc is None or self.proc.poll() is not None, "capture is already running"
        self.runs += 1
        self.logs.mkdir(parents=True, exist_ok=True)
        stdout = self.logs / f"capture-{self.runs:03d}.stdout"
        stderr = self.logs / f"capture-{self.runs:03d}.stderr"
        self.stderr_files.append(stderr)
        with open(stdout, "wb") as out, open(stderr, "wb") as err:
            self.proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=out, stderr=err)
        if wait:
            self.wait_ready()
        return self

    def wait_ready(self, timeout: float = READY_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        last = "no answer"
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"capture exited before it was ready\n{self.describe()}", pytrace=False)
            try:
                result = self.admin("GET", "/readyz", timeout=2)
                if result.status == 200:
                    return
                last = str(result)
            except OSError as error:
                last = repr(error)
            time.sleep(0.05)
        pytest.fail(f"capture not ready after {timeout}s (last /readyz: {last})\n{self.describe()}", pytrace=False)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> int:
        """SIGTERM and wait: the graceful stop must exit 0."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                pytest.fail(f"capture did not stop within {STOP_TIMEOUT}s of SIGTERM\n{self.describe()}")
        code = self.proc.returncode
        assert code == 0, f"capture exited {code} after SIGTERM, expected 0\n{self.describe()}"
        return code

    def kill(self) -> None:
        """SIGKILL: the crash the journal must survive."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(STOP_TIMEOUT)

    # --- admin endpoint ---
    @property
    def admin_url(self) -> str:
        return f"http://127.0.0.1:{self.admin_port}"

    @property
    def token(self) -> str:
        return self.admin_token or read_admin_token(self.data)

    def admin(
        self, method: str, path: str, timeout: float = 10, body: bytes | None = None, headers: dict | None = None,
        auth: bool = True,
    ) -> HTTPResult:
        """One admin request; authenticated (and JSON-typed when it changes state) unless `auth` is
        False. /healthz and /readyz need no token, so they never read it (capture writes it at start)."""
        sent = {}
        if auth and path not in ("/healthz", "/readyz"):
            sent = admin_headers(self.data, method, self.token)
        sent.update(headers or {})
        return http_request("127.0.0.1", self.admin_port, method, path, body=body, headers=sent, timeout=timeout)

    def cli_admin_args(self) -> list[str]:
        """`incident` flags reaching this service with the generated token (`--data`)."""
        return ["--admin", self.admin_url, "--data", str(self.data)]

    def status(self) -> dict:
        result = self.admin("GET", "/status")
        assert result.status == 200, f"GET /status: {result}\n{self.describe()}"
        return json.loads(result.body)

    def seal(self) -> None:
        result = self.admin("POST", "/seal", timeout=60)
        assert result.status == 200, f"POST /seal: {result}\n{self.describe()}"

    def records_received(self, signal_name: str | None = None, tenant: str | None = None) -> int:
        """Sum of `nextSeq` over the journal's streams (records appended so far), filtered."""
        streams = self.status()["journal"]["streams"]
        return sum(
            int(stream["nextSeq"])
            for stream in streams
            if (signal_name is None or stream["signal"] == signal_name)
            and (tenant is None or stream["tenant"] == tenant)
        )

    # --- OTLP/HTTP ---
    def post(self, path: str, body: bytes, content_type: str = "application/x-protobuf", **kwargs) -> HTTPResult:
        headers = {"Content-Type": content_type, **kwargs.pop("headers", {})}
        return http_request("127.0.0.1", self.http_port, "POST", path, body=body, headers=headers, **kwargs)


@pytest.fixture
def capture(stella_bin: Path, tmp_path: Path):
    """Factory: capture(data_dir=None, *extra_flags, wait=True) -> a started CaptureProcess.

    Every process still running at teardown is stopped with SIGTERM and must exit 0."""
    started: list[CaptureProcess] = []

    def start(data: Path | None = None, *extra, wait: bool = True, ports: dict | None = None) -> CaptureProcess:
        index = len(started)
        process = CaptureProcess(
            stella_bin, data or tmp_path / f"data{index}", tmp_path / f"capture-logs{index}", list(extra), ports
        )
        started.append(process)
        return process.start(wait=wait)

    yield start
    failures = []
    for process in started:
        if process.alive():
            try:
                process.stop()
            except BaseException as error:  # noqa: BLE001 - report every process, then fail
                failures.append(str(error))
    if failures:
        pytest.fail("\n\n".join(failures), pytrace=False)


# ---------------------------------------------------------------------------------------------
# bundles


@dataclasses.dataclass
class CapturedRecord:
    signal: str
    tenant: str
    node: str
    seq: int
    received: int
    request: object  # the decoded Export*ServiceRequest
    raw: bytes


def parse_segment(data: bytes, first_seq: int, where: str, check_crc: bool) -> list[CapturedRecord]:
    """Section 6.2 of BUNDLE-FORMAT.md: header, then records with consecutive seqs.

    The CRC is checked with sfb's pure-Python CRC-32C only when asked (it runs at ~1.5 MB/s);
    `verify --deep` checks every CRC anyway."""
    assert data[:4] == b"SFSG" and data[4] == 1, f"{where}: bad segment header"
    signal_name = SIGNAL_NAMES[data[5]]
    pos = 6
    tenant_len = int.from_bytes(data[pos : pos + 2], "big")
    tenant = data[pos + 2 : pos + 2 + tenant_len].decode("utf-8")
    pos += 2 + tenant_len
    node_len = int.from_bytes(data[pos : pos + 2], "big")
    node = data[pos + 2 : pos + 2 + node_len].decode("utf-8")
    pos += 2 + node_len
    records: list[CapturedRecord] = []
    while pos < len(data):
        assert data[pos : pos + 4] == b"SFR\x01", f"{where}: bad record header at {pos}"
        length = int.from_bytes(data[pos + 4 : pos + 8], "big")
        body = data[pos + 12 : pos + 12 + length]
        assert len(body) == length, f"{where}: record at {pos} runs past the end"
        if check_crc:
            assert sfb.crc32c(body) == int.from_bytes(data[pos + 8 : pos + 12], "big"), f"{where}: CRC at {pos}"
        seq = int.from_bytes(body[:8], "big")
        assert seq == first_seq + len(records), f"{where}: seq {seq}, expected {first_seq + len(records)}"
        request = REQUEST_TYPES[signal_name]()
        request.ParseFromString(body[16:])
        records.append(CapturedRecord(signal_name, tenant, node, seq, int.from_bytes(body[8:16], "big"), request,
                                      body[16:]))
        pos += 12 + length
    return records


def read_bundle_records(bundle: Path, check_crc: bool = False) -> tuple[dict, list[CapturedRecord]]:
    """(manifest, every record of every blob), via fixtures/sfb.py's tar and zstd readers."""
    members = dict(sfb.tar_members(bundle.read_bytes()))
    manifest = json.loads(members["manifest.json"])
    records: list[CapturedRecord] = []
    for entry in manifest["blobs"]:
        raw = sfb.decompress_capped(members[entry["path"]], entry["uncompressedSize"])
        segment = parse_segment(raw, int(entry["firstSeq"]), entry["path"], check_crc)
        assert len(segment) == entry["recordCount"], f"{entry['path']}: record count"
        assert {(r.signal, r.tenant, r.node) for r in segment} <= {(entry["signal"], entry["tenant"], entry["node"])}
        records += segment
    return manifest, records


def bundle_records(
    stella, data: Path, keys: tuple[Path, Path], out: Path, *extra, since: dt.datetime | None = None,
    check_crc: bool = False, independent_verify: bool = False,
) -> tuple[dict, list[CapturedRecord]]:
    """`bundle` the data dir over [since - 1 h, now + 1 h], `verify --deep` it, read every record.

    Also checks that every stream's records form one gap-free run from seq 0, per node (a whole
    journal bundled over a window wider than the test must hold every record from the start)."""
    key, pub = keys
    os.chmod(key, 0o600)
    now = dt.datetime.now(dt.timezone.utc)
    start = (since or now) - dt.timedelta(hours=1)
    made = stella.run(
        "bundle", "--data", data, "--from", rfc3339(start), "--to", rfc3339(now + dt.timedelta(hours=1)),
        "--key", key, "--out", out, *extra,
    )
    assert made.returncode == 0, f"bundle failed\n{made.describe()}"
    verified = stella.run("verify", out, "--trusted-key", pub, "--deep")
    assert verified.returncode == 0, f"verify --deep rejected the bundle\n{verified.describe()}"
    if independent_verify:
        # fixtures/sfb.py's reference verifier, all of section 9 including CRCs, in Python.
        sfb.verify(out.read_bytes(), [sfb.load_public_key(pub)], deep=True)
    manifest, records = read_bundle_records(out, check_crc=check_crc)
    streams: dict[tuple, list[int]] = {}
    for record in records:
        streams.setdefault((record.node, record.signal, record.tenant), []).append(record.seq)
    for stream, seqs in streams.items():
        assert sorted(seqs) == list(range(len(seqs))), f"stream {stream}: seqs are not 0..{len(seqs) - 1}"
    return manifest, records


def read_id_log(path: Path) -> list[str]:
    """Lines of a client's id log; a torn last line (no newline) is ignored."""
    if not path.exists():
        return []
    text = path.read_text(encoding="utf-8")
    lines = text.split("\n")
    return [line for line in lines[:-1] if line]


def captured_ids(records: list[CapturedRecord], tenant: str | None = None) -> list[str]:
    """Every `req.id` in the trace records (one per span), duplicates kept."""
    ids: list[str] = []
    for record in records:
        if record.signal == "traces" and (tenant is None or record.tenant == tenant):
            ids += request_ids(record.request)
    return ids


def wait_for(predicate, timeout: float, what: str, interval: float = 0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    pytest.fail(f"timed out after {timeout}s waiting for {what}", pytrace=False)
