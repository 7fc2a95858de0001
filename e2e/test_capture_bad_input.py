"""Issue 4, done-when 4: bad input gets the right status, the service stays up, good clients lose nothing.

While a well-formed load client (e2e/clients/load_client.py) posts SDK-encoded trace requests with
unique ids, the test sends, over raw sockets, http.client and grpcio:

  garbage bodies (protobuf and JSON)            -> 400, with a message
  wrong content types                           -> 415
  truncated protobuf (plain and gzip)           -> 400
  100k nested JSON arrays                       -> 400
  a 100 MB body, with Content-Length and chunked -> 413
  a gzip bomb (small body, huge when inflated)  -> 413 (or 400)
  slowloris connections (headers 1 byte/s) and a stalled body -> closed by the server in time
  gRPC Export with garbage bytes, for each signal -> INVALID_ARGUMENT

After each case capture must still be running and answer /healthz. At the end, every id the good
client (and our own valid requests) got a 200 for is in a bundle that passes `verify --deep`.
"""

from __future__ import annotations

import gzip
import json
import select
import socket
import subprocess
import sys
import threading
import time

import grpc
import pytest
from google.rpc import status_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

from capturelib import CLIENTS, bundle_records, capture, captured_ids, read_id_log, trace_request  # noqa: F401

MB = 1000 * 1000
# The request read deadline (`limits.request-timeout`, default 30 s) is set to 5 s through
# --config to keep the test short; a slow client must be cut off within it plus a margin.
REQUEST_TIMEOUT = 5
SLOW_CLIENT_LIMIT = REQUEST_TIMEOUT + 10
GRPC_SERVICES = {
    "traces": "opentelemetry.proto.collector.trace.v1.TraceService",
    "logs": "opentelemetry.proto.collector.logs.v1.LogsService",
    "metrics": "opentelemetry.proto.collector.metrics.v1.MetricsService",
}


def read_response_head(sock: socket.socket, timeout: float = 30) -> bytes:
    """Bytes up to the end of the response headers (or whatever came before EOF/reset)."""
    sock.settimeout(timeout)
    data = b""
    try:
        while b"\r\n\r\n" not in data:
            piece = sock.recv(65536)
            if not piece:
                break
            data += piece
    except (ConnectionResetError, socket.timeout):
        pass
    return data


def status_of(head: bytes) -> int | None:
    try:
        return int(head.split(b" ", 2)[1]) if head.startswith(b"HTTP/1.") else None
    except (IndexError, ValueError):
        return None


def send_huge_body(port: int, total: int, chunked: bool) -> tuple[int | None, int, str]:
    """POST `total` bytes to /v1/traces without waiting for them to be read.

    Sending stops as soon as the server answers or closes. Returns (status, bytes sent, note)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    framing = b"Transfer-Encoding: chunked\r\n" if chunked else b"Content-Length: %d\r\n" % total
    sock.sendall(b"POST /v1/traces HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/x-protobuf\r\n"
                 + framing + b"\r\n")
    piece = b"\x0a" * (256 * 1024)
    sent, note, pending = 0, "", b""
    sock.setblocking(False)
    deadline = time.monotonic() + 120
    try:
        while sent < total or pending:
            if time.monotonic() > deadline:
                note = "server neither read the body nor answered in 120 s"
                break
            if not pending:
                size = min(len(piece), total - sent)
                pending = (b"%x\r\n" % size + piece[:size] + b"\r\n") if chunked else piece[:size]
                sent += size
            readable, writable, _ = select.select([sock], [sock], [], 5)
            if readable:
                note = "server answered before the whole body was sent"
                break
            if writable:
                pending = pending[sock.send(pending):]
        else:
            if chunked:
                sock.setblocking(True)
                sock.sendall(b"0\r\n\r\n")
    except (BrokenPipeError, ConnectionResetError) as error:
        note = f"send failed: {error!r}"
    sock.setblocking(True)
    head = read_response_head(sock)
    sock.close()
    return status_of(head), sent, f"{note}; response head {head[:200]!r}"


def slow_connection(port: int, payload: bytes, interval: float, limit: float, result: dict) -> None:
    """Send `payload` one byte per `interval`; record when the server closed the connection."""
    started = time.monotonic()
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    result.update(closed_after=None, sent=0, answer=b"")
    try:
        for byte in payload:
            if time.monotonic() - started > limit:
                return
            readable, _, _ = select.select([sock], [], [], interval)
            if readable:
                answer = sock.recv(4096)
                result["answer"] += answer
                if not answer:
                    result["closed_after"] = time.monotonic() - started
                    return
                continue
            sock.send(bytes([byte]))
            result["sent"] += 1
        # Everything sent (a stalled body): wait for the server to give up on us.
        while time.monotonic() - started <= limit:
            readable, _, _ = select.select([sock], [], [], 1)
            if readable:
                answer = sock.recv(4096)
                result["answer"] += answer
                if not answer:
                    result["closed_after"] = time.monotonic() - started
                    return
    except (BrokenPipeError, ConnectionResetError):
        result["closed_after"] = time.monotonic() - started
    finally:
        sock.close()


def message_of(result) -> str:
    """The error message of a 4xx answer: google.rpc.Status (protobuf) or JSON, else the raw body."""
    content_type = result.headers.get("content-type", "")
    if "protobuf" in content_type:
        status = status_pb2.Status()
        status.ParseFromString(result.body)
        return status.message
    if "json" in content_type:
        return str(json.loads(result.body).get("message", ""))
    return result.body.decode("utf-8", "replace")


@pytest.mark.slow
def test_bad_input_gets_the_right_answer_and_good_clients_lose_nothing(capture, stella, keys, tmp_path):
    config = tmp_path / "capture.yaml"
    config.write_text(f"limits:\n  request-timeout: {REQUEST_TIMEOUT}s\n")
    service = capture(None, "--config", config)
    client_dir = tmp_path / "client"
    stop_file = tmp_path / "stop-client"
    client = subprocess.Popen(
        [sys.executable, str(CLIENTS / "load_client.py"), "--url", service.http_endpoint, "--out", str(client_dir),
         "--threads", "2", "--prefix", "good", "--rate", "200", "--duration", "180", "--stop-file", str(stop_file)],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    problems: list[str] = []
    our_acked: list[str] = []

    def expect(case: str, got, wanted: set, message_required: bool = False, result=None) -> None:
        if got not in wanted:
            problems.append(f"{case}: got {got}, expected {sorted(wanted)}" + (f" ({result})" if result else ""))
        elif message_required and result is not None and not message_of(result).strip():
            problems.append(f"{case}: {got} without a message naming what was wrong ({result})")
        if not service.alive():
            pytest.fail(f"capture died after {case}\n{service.describe()}", pytrace=False)
        healthz = service.admin("GET", "/healthz")
        if healthz.status != 200:
            problems.append(f"after {case}: /healthz answered {healthz}")

    def good_request(tag: str) -> None:
        """A valid request of our own between bad ones: it must still be accepted."""
        result = service.post("/v1/traces", trace_request([tag]))
        expect(f"valid request {tag}", result.status, {200}, result=result)
        if result.status == 200:
            our_acked.append(tag)

    try:
        valid = trace_request([f"valid-{index}" for index in range(5)])
        for signal in ("traces", "logs", "metrics"):
            for name, body in {"0xff bytes": b"\xff" * 64, "text": b"hello, this is not protobuf\n" * 4}.items():
                result = service.post(f"/v1/{signal}", body)
                expect(f"garbage protobuf ({name}) to /v1/{signal}", result.status, {400}, True, result)
            result = service.post(f"/v1/{signal}", b'{"resourceSpans": [ {,, }', "application/json")
            expect(f"garbage JSON to /v1/{signal}", result.status, {400}, True, result)
        good_request("ok-after-garbage")

        for content_type in ("text/plain", "application/xml", "image/png"):
            result = service.post("/v1/traces", valid, content_type)
            expect(f"content type {content_type}", result.status, {415}, result=result)

        truncated = valid[: len(valid) // 2]
        with pytest.raises(Exception):  # the official decoder rejects it too, so 400 is right
            trace_service_pb2.ExportTraceServiceRequest().ParseFromString(truncated)
        result = service.post("/v1/traces", truncated)
        expect("truncated protobuf", result.status, {400}, True, result)
        compressed = gzip.compress(valid)
        result = service.post("/v1/traces", compressed[: len(compressed) - 12], headers={"Content-Encoding": "gzip"})
        expect("truncated gzip", result.status, {400}, result=result)
        good_request("ok-after-truncated")

        nested = b'{"resourceSpans":' + b"[" * 100_000 + b"]" * 100_000 + b"}"
        result = service.post("/v1/traces", nested, "application/json", timeout=30)
        expect("100k nested JSON arrays", result.status, {400}, result=result)
        nested_objects = b'{"resourceSpans":[{"resource":' + b'{"attributes":' * 50_000 + b"}" * 50_001 + b"]}"
        result = service.post("/v1/traces", nested_objects, "application/json", timeout=30)
        expect("50k nested JSON objects", result.status, {400}, result=result)
        good_request("ok-after-nested")

        for chunked in (False, True):
            status, sent, note = send_huge_body(service.http_port, 100 * MB, chunked)
            expect(f"100 MB body ({'chunked' if chunked else 'Content-Length'}, {sent} bytes sent; {note})",
                   status, {413})
        bomb = gzip.compress(b"\0" * (200 * MB), compresslevel=9)
        result = service.post("/v1/traces", bomb, headers={"Content-Encoding": "gzip"}, timeout=60)
        expect(f"gzip bomb ({len(bomb)} bytes inflating to 200 MB)", result.status, {413, 400}, result=result)
        good_request("ok-after-huge")

        # Slow clients: 6 slowloris header senders and one stalled body, all at once.
        acked_before = len(read_id_log(client_dir / "acked.log"))
        slow_headers = b"POST /v1/traces HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/x-protobuf\r\n" \
                       b"X-Padding: " + b"a" * 200 + b"\r\n\r\n"
        stalled = b"POST /v1/traces HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/x-protobuf\r\n" \
                  b"Content-Length: 1000\r\n\r\n" + valid[:10]
        results = [dict() for _ in range(7)]
        threads = [threading.Thread(target=slow_connection,
                                    args=(service.http_port, slow_headers, 1.0, SLOW_CLIENT_LIMIT, results[i]))
                   for i in range(6)]
        # The stalled body is sent at once (interval 0); then it sends nothing more.
        threads.append(threading.Thread(target=slow_connection,
                                        args=(service.http_port, stalled, 0.0, SLOW_CLIENT_LIMIT, results[6])))
        for thread in threads:
            thread.start()
        time.sleep(2)
        good_request("ok-during-slowloris")
        for thread in threads:
            thread.join(SLOW_CLIENT_LIMIT + 15)
        for index, outcome in enumerate(results):
            kind = "stalled body" if index == 6 else f"slowloris {index}"
            if outcome.get("closed_after") is None:
                problems.append(f"{kind}: still open after {SLOW_CLIENT_LIMIT} s with a {REQUEST_TIMEOUT} s request "
                                f"deadline ({outcome.get('sent')} bytes sent)")
            elif index < 6 and outcome["sent"] >= len(slow_headers):
                problems.append(f"{kind}: the server read all {len(slow_headers)} header bytes at 1 byte/s")
        acked_during = len(read_id_log(client_dir / "acked.log")) - acked_before
        if acked_during < 50:
            problems.append(f"the good client got only {acked_during} acks while the slow clients were connected")
        print("slow clients closed after (s):", [round(r["closed_after"] or -1, 1) for r in results])

        with grpc.insecure_channel(service.grpc_endpoint) as channel:
            for signal, name in GRPC_SERVICES.items():
                export = channel.unary_unary(f"/{name}/Export")  # no serializers: raw bytes both ways
                try:
                    export(b"\xff" * 64, timeout=10)
                    code = grpc.StatusCode.OK
                except grpc.RpcError as error:
                    code = error.code()
                expect(f"gRPC {signal} Export with garbage bytes", code, {grpc.StatusCode.INVALID_ARGUMENT})
            # The same raw path with a valid request succeeds, so the refusals above were about the bytes.
            export = channel.unary_unary(f"/{GRPC_SERVICES['traces']}/Export")
            try:
                export(trace_request(["grpc-raw-ok"]), timeout=10)
                our_acked.append("grpc-raw-ok")
            except grpc.RpcError as error:
                problems.append(f"gRPC traces Export with a valid request: {error.code()} {error.details()}")
        good_request("ok-at-end")
    finally:
        stop_file.touch()
        out, err = client.communicate(timeout=60)
    assert client.returncode == 0, f"load client failed: {err[-3000:]}"
    summary = json.loads(out.strip().splitlines()[-1])
    assert not problems, "\n".join(problems) + f"\n{service.describe()}"
    assert summary["failureCount"] == 0, f"the good client got unexpected answers: {summary['failures']}"
    service.stop()

    _, records = bundle_records(stella, service.data, keys, tmp_path / "bundle.sfb.tar")
    stored = set(captured_ids(records))
    acked = read_id_log(client_dir / "acked.log") + our_acked
    missing = [request_id for request_id in acked if request_id not in stored]
    assert len(acked) > 100, f"the good client hardly ran: {summary}"
    assert not missing, f"{len(missing)} acknowledged ids missing from the journal, e.g. {missing[:10]}"
    leaked = stored - set(acked) - set(read_id_log(client_dir / "attempts.log"))
    assert not leaked, f"ids in the journal nobody sent (bad input stored?): {sorted(leaked)[:10]}"
