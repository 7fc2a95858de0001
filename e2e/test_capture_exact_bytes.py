"""Issue 10, done-when 2: the journal holds each protobuf client's exact request bytes.

Requests are encoded by the OpenTelemetry SDK's own protobuf encoders (the bytes its exporters
send), plus requests written with fields in descending number order (as the Collector's pdata
writes them) and with unknown fields, and sent over OTLP/HTTP (`requests`, as the SDK's HTTP
exporter does) and over OTLP/gRPC (grpcio, the SDK's gRPC transport, with a raw-bytes method so
nothing re-encodes them on the way). Every record in the bundle must be byte-identical to one
request sent, and every request sent must be there once.
"""

from __future__ import annotations

import datetime as dt
import random
import time

import grpc
import requests
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2
from opentelemetry.proto.common.v1 import common_pb2
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import SpanContext, SpanKind, TraceFlags

from capturelib import bundle_records, capture  # noqa: F401  (capture is a fixture)

METHODS = {
    "traces": "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
    "logs": "/opentelemetry.proto.collector.logs.v1.LogsService/Export",
    "metrics": "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export",
}


def sdk_requests(rng: random.Random) -> dict[str, list[bytes]]:
    now = time.time_ns()
    resource = Resource({"service.name": "exact-bytes", "host.name": f"h-{rng.getrandbits(16)}"})
    scope = InstrumentationScope("exact.test", "1.0")
    traces, logs, metrics = [], [], []
    for index in range(6):
        trace_id = rng.getrandbits(128) or 1
        spans = [
            ReadableSpan(
                name=f"op-{index}-{n} ünïcode", context=SpanContext(trace_id, rng.getrandbits(64) or 1, False,
                                                                   TraceFlags(TraceFlags.SAMPLED)),
                resource=resource, attributes={"i": index, "f": 0.5, "ok": True, "s": "x" * rng.randrange(50)},
                kind=SpanKind.SERVER, instrumentation_scope=scope, start_time=now + n, end_time=now + n + 1000,
            )
            for n in range(1 + index)
        ]
        traces.append(encode_spans(spans).SerializeToString())
        # Logs and metrics through the same protobuf runtime the SDK's encoders serialize with.
        log_request = logs_service_pb2.ExportLogsServiceRequest()
        record = log_request.resource_logs.add().scope_logs.add().log_records.add()
        record.time_unix_nano = now + index
        record.body.string_value = f"log {index} {rng.getrandbits(32)}"
        record.attributes.append(common_pb2.KeyValue(key="k", value=common_pb2.AnyValue(int_value=index)))
        logs.append(log_request.SerializeToString())
        metric_request = metrics_service_pb2.ExportMetricsServiceRequest()
        metric = metric_request.resource_metrics.add().scope_metrics.add().metrics.add()
        metric.name = f"m{index}"
        point = metric.gauge.data_points.add()
        point.time_unix_nano = now + index
        point.as_double = index * 1.5
        metrics.append(metric_request.SerializeToString())
    return {"traces": traces, "logs": logs, "metrics": metrics}


def varint(value: int) -> bytes:
    out = bytearray()
    while True:
        low = value & 0x7F
        value >>= 7
        out.append(low | (0x80 if value else 0))
        if not value:
            return bytes(out)


def field(number: int, payload: bytes) -> bytes:
    return varint(number << 3 | 2) + varint(len(payload)) + payload


def fixed64(number: int, value: int) -> bytes:
    return varint(number << 3 | 1) + value.to_bytes(8, "little")


def descending_trace_request() -> bytes:
    """A request laid out as pdata writes it: higher field numbers first, plus an unknown field."""
    now = time.time_ns()
    span = (fixed64(8, now + 10) + fixed64(7, now) + field(5, b"pdata-order") + field(2, b"\x01" * 8)
            + field(1, b"\x02" * 16) + varint(99 << 3 | 0) + varint(7))
    scope_spans = field(2, span) + field(1, field(1, b"scope"))
    attribute = field(1, b"service.name") + field(2, field(1, b"pdata"))
    resource = field(1, field(1, attribute))  # ResourceSpans.resource → Resource.attributes
    return field(1, field(2, scope_spans) + resource)


def test_journal_holds_each_clients_exact_request_bytes(capture, stella, keys, tmp_path):
    started = dt.datetime.now(dt.timezone.utc)
    service = capture()
    sent = sdk_requests(random.Random(10))
    sent["traces"].append(descending_trace_request())
    channel = grpc.insecure_channel(service.grpc_endpoint.removeprefix("http://"))
    expected: dict[tuple[str, str], list[bytes]] = {}
    for signal, bodies in sent.items():
        for body in bodies:
            answer = requests.post(f"{service.http_endpoint}/v1/{signal}", data=body,
                                   headers={"Content-Type": "application/x-protobuf", "X-Scope-OrgID": "http"},
                                   timeout=30)
            assert answer.status_code == 200, f"HTTP {signal}: {answer.status_code} {answer.content!r}"
            expected.setdefault(("http", signal), []).append(body)
            call = channel.unary_unary(METHODS[signal], request_serializer=None, response_deserializer=None)
            call(body, metadata=(("x-scope-orgid", "grpc"),), timeout=30)
            expected.setdefault(("grpc", signal), []).append(body)
    channel.close()

    _, records = bundle_records(stella, service.data, keys, tmp_path / "bundle.sfb.tar", since=started)
    stored: dict[tuple[str, str], list[bytes]] = {}
    for record in sorted(records, key=lambda r: r.seq):
        stored.setdefault((record.tenant, record.signal), []).append(record.raw)
    assert set(stored) == set(expected), f"streams {sorted(stored)} vs {sorted(expected)}"
    for stream, bodies in expected.items():
        assert stored[stream] == bodies, (
            f"{stream}: the journal does not hold the sent bytes in order "
            f"({len(stored[stream])} records vs {len(bodies)} sent; first difference at record "
            f"{next((i for i, (a, b) in enumerate(zip(stored[stream], bodies)) if a != b), None)})"
        )

