"""SIGTERM ends capture within a bound, whatever its clients do.

A graceful gRPC close waits for each client to acknowledge the server's GOAWAY ping, and an
HTTP exchange waits for its body; clients that never read or never finish (idle, stalled or
hostile connections) must not hold the stop, and with it the journal's final seal, for long.
"""

from __future__ import annotations

import socket
import time

from capturelib import capture, trace_request  # noqa: F401 - pytest fixture

GRPC_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"  # + empty SETTINGS
STALLED_REQUEST = (
    b"POST /v1/traces HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/x-protobuf\r\n"
    b"Content-Length: 100000\r\n\r\n" + b"\x0a" * 10
)


def test_sigterm_is_not_held_by_connections_that_never_read_or_finish(capture):
    process = capture()
    acknowledged = process.post("/v1/traces", trace_request(["before-the-stop"]))
    assert acknowledged.status == 200, acknowledged
    held = []
    try:
        for _ in range(50):
            grpc = socket.create_connection(("127.0.0.1", process.grpc_port), timeout=5)
            grpc.sendall(GRPC_PREFACE)  # then never reads the server's SETTINGS, ping or GOAWAY
            http = socket.create_connection(("127.0.0.1", process.http_port), timeout=5)
            http.sendall(STALLED_REQUEST)  # a body that never arrives
            idle = socket.create_connection(("127.0.0.1", process.http_port), timeout=5)
            held += [grpc, http, idle]
        time.sleep(0.5)
        started = time.monotonic()
        assert process.stop() == 0
        elapsed = time.monotonic() - started
        # 5 s of gRPC grace plus the journal's stop; the gRPC connection grace alone is 30 s.
        assert elapsed < 15, f"capture took {elapsed:.1f} s to stop\n{process.describe()}"
    finally:
        for sock in held:
            sock.close()

    restarted = capture(process.data)
    assert restarted.records_received("traces") == 1, restarted.describe()
