#!/usr/bin/env python3
"""Record OTLP/HTTP request bodies made by the OpenTelemetry SDK's protobuf encoder.

    make_bodies.py OUT_DIR [--count 32]

Writes OUT_DIR/small-NN.pb (~1 KiB, a few spans) and OUT_DIR/large-NN.pb (~256 KiB, hundreds of
spans): serialized `ExportTraceServiceRequest`s from
`opentelemetry.exporter.otlp.proto.common.trace_encoder.encode_spans` over SDK `ReadableSpan`s,
i.e. exactly the bytes the SDK's HTTP/protobuf exporter posts. Several distinct bodies per size
(random ids and attribute values) so that neither capture's zstd nor the `zstd -3` reference can
match whole repeated bodies in their window. Prints a JSON summary (sizes, spans per body).
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode, TraceFlags

OPERATIONS = ["GET /api/cart", "POST /api/checkout", "SELECT orders", "redis GET session", "publish order.created"]


def spans(rng: random.Random, count: int, now: int) -> list[ReadableSpan]:
    resource = Resource({
        "service.name": rng.choice(["checkout", "cart", "payments"]),
        "service.version": "2.3.1",
        "host.name": f"node-{rng.randrange(64):02d}",
        "k8s.pod.name": f"checkout-{rng.getrandbits(32):08x}",
    })
    scope = InstrumentationScope("bench.app", "1.0")
    trace_id = rng.getrandbits(128) or 1
    out = []
    for index in range(count):
        start = now - rng.randrange(10**9)
        operation = rng.choice(OPERATIONS)
        out.append(ReadableSpan(
            name=operation,
            context=SpanContext(trace_id, rng.getrandbits(64) or 1, False, TraceFlags(TraceFlags.SAMPLED)),
            parent=SpanContext(trace_id, rng.getrandbits(64) or 1, False) if index else None,
            resource=resource,
            attributes={
                "http.request.method": operation.split()[0],
                "url.path": f"/api/{rng.getrandbits(40):010x}",
                "http.response.status_code": rng.choice([200, 200, 200, 404, 500]),
                "user.id": f"u-{rng.getrandbits(48):012x}",
                "db.statement": f"SELECT * FROM orders WHERE id = {rng.getrandbits(32)}",
            },
            kind=rng.choice([SpanKind.SERVER, SpanKind.CLIENT, SpanKind.INTERNAL]),
            instrumentation_scope=scope,
            status=Status(StatusCode.ERROR if rng.random() < 0.05 else StatusCode.UNSET),
            start_time=start,
            end_time=start + rng.randrange(10**7),
        ))
    return out


def body_of(rng: random.Random, target: int, now: int) -> tuple[bytes, int]:
    """A request of about `target` bytes: grow the span count until it is reached."""
    per_span = len(encode_spans(spans(rng, 8, now)).SerializeToString()) / 8
    count = max(1, round(target / per_span))
    body = encode_spans(spans(rng, count, now)).SerializeToString()
    parsed = trace_service_pb2.ExportTraceServiceRequest()
    parsed.ParseFromString(body)  # the official decoder reads it back
    return body, count


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("out", type=Path)
    parser.add_argument("--count", type=int, default=32)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    rng = random.Random(4)
    now = 1_790_000_000 * 10**9
    summary = {}
    for name, target in (("small", 1024), ("large", 256 * 1024)):
        sizes, span_counts = [], []
        for index in range(args.count):
            body, count = body_of(rng, target, now)
            (args.out / f"{name}-{index:02d}.pb").write_bytes(body)
            sizes.append(len(body))
            span_counts.append(count)
        summary[name] = {"bodies": args.count, "avgBytes": sum(sizes) / len(sizes),
                         "avgSpans": sum(span_counts) / len(span_counts), "totalBytes": sum(sizes)}
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
