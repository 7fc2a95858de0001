"""OTLP request bodies made by the OpenTelemetry Python SDK's own protobuf encoder.

`trace_request(ids)` builds one SDK `ReadableSpan` per id (span name = id, attribute `req.id` =
id, optional random padding attribute) and encodes them with
`opentelemetry.exporter.otlp.proto.common.trace_encoder.encode_spans`, exactly what the
HTTP/protobuf and gRPC exporters send. `request_ids` reads the ids back from a decoded request.
"""

from __future__ import annotations

import os
import random
import time

from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import SpanContext, SpanKind, TraceFlags

RESOURCE = Resource({"service.name": "e2e-load", "service.instance.id": f"pid-{os.getpid()}"})
SCOPE = InstrumentationScope("e2e.load", "1.0")
ID_ATTRIBUTE = "req.id"
_rng = random.Random()


def trace_spans(ids: list[str], pad_bytes: int = 0) -> list[ReadableSpan]:
    now = time.time_ns()
    trace_id = _rng.getrandbits(128) or 1
    spans = []
    for index, request_id in enumerate(ids):
        attributes = {ID_ATTRIBUTE: request_id, "http.request.method": "POST", "e2e.index": index}
        if pad_bytes:
            # Random hex: compresses only ~2x, so padding really occupies journal and disk space.
            attributes["e2e.pad"] = os.urandom(pad_bytes // 2).hex()
        spans.append(
            ReadableSpan(
                name=request_id,
                context=SpanContext(trace_id, _rng.getrandbits(64) or 1, is_remote=False,
                                    trace_flags=TraceFlags(TraceFlags.SAMPLED)),
                resource=RESOURCE,
                attributes=attributes,
                kind=SpanKind.SERVER,
                instrumentation_scope=SCOPE,
                start_time=now - 1_000_000,
                end_time=now,
            )
        )
    return spans


def trace_request(ids: list[str], pad_bytes: int = 0) -> bytes:
    """Serialized ExportTraceServiceRequest with one span per id."""
    return encode_spans(trace_spans(ids, pad_bytes)).SerializeToString()


def request_ids(request) -> list[str]:
    """The `req.id` attribute of every span of a decoded ExportTraceServiceRequest."""
    ids = []
    for resource_spans in request.resource_spans:
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                for attribute in span.attributes:
                    if attribute.key == ID_ATTRIBUTE:
                        ids.append(attribute.value.string_value)
    return ids
