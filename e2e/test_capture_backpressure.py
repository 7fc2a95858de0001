"""Memory-bound backpressure: past --max-inflight-bytes, OTLP/HTTP answers 429 + Retry-After and gRPC
RESOURCE_EXHAUSTED; the request holding the memory still completes, and the refused one is
accepted when retried. Deterministic: a connection holds most of the bound by sending most of a
large body and pausing, so the next request cannot fit, whatever the timing.
"""

from __future__ import annotations

import socket
import time

import grpc

from capturelib import bundle_records, capture, captured_ids, trace_request  # noqa: F401

KIB = 1024
TRACE_EXPORT = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"


def test_inflight_bound_gives_429_and_resource_exhausted_then_accepts(capture, stella, keys, tmp_path):
    service = capture(None, "--max-inflight-bytes", "1MiB")
    held_body = trace_request(["held"], pad_bytes=900 * KIB)
    assert len(held_body) > 900 * KIB
    sock = socket.create_connection(("127.0.0.1", service.http_port), timeout=30)
    sock.sendall(b"POST /v1/traces HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/x-protobuf\r\n"
                 b"Content-Length: %d\r\n\r\n" % len(held_body))
    split = 850 * KIB
    sock.sendall(held_body[:split])
    time.sleep(1)  # let capture read what was sent: >= 850 KiB of the 1 MiB bound is now in flight

    refused_body = trace_request(["refused-then-retried"], pad_bytes=300 * KIB)
    first = service.post("/v1/traces", refused_body)
    assert first.status == 429, f"expected 429 past the in-flight bound, got {first}\n{service.describe()}"
    assert "retry-after" in first.headers and int(first.headers["retry-after"]) >= 0, first.headers
    with grpc.insecure_channel(service.grpc_endpoint) as channel:
        try:
            channel.unary_unary(TRACE_EXPORT)(trace_request(["grpc-refused"], pad_bytes=300 * KIB), timeout=10)
            code = grpc.StatusCode.OK
        except grpc.RpcError as error:
            code = error.code()
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED, f"gRPC past the in-flight bound: {code}\n{service.describe()}"
    assert service.admin("GET", "/healthz").status == 200

    # The request holding the memory completes normally...
    sock.sendall(held_body[split:])
    head = sock.recv(4096)
    sock.close()
    assert head.startswith(b"HTTP/1.1 200"), f"held request: {head[:200]!r}\n{service.describe()}"
    # ...and the refused one is accepted on retry, as an exporter would do after Retry-After.
    retried = service.post("/v1/traces", refused_body)
    assert retried.status == 200, f"retry after the memory was released: {retried}\n{service.describe()}"
    service.stop()

    _, records = bundle_records(stella, service.data, keys, tmp_path / "bundle.sfb.tar")
    assert sorted(captured_ids(records)) == ["held", "refused-then-retried"], (
        "exactly the two acknowledged requests are journaled (refused ones are not)"
    )
