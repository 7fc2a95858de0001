"""Issue 13: redaction that holds, tried as an attacker would.

Done-when 1: with `config/redaction.example.yaml` active, e-mail addresses, card numbers and
bearer tokens/JWTs, each in several encodings (percent-encoded, upper case, internationalized,
cards with repeated space/dash/dot separators and as an integer), are planted in every field of
the README's redaction table, for all three signals, over OTLP/HTTP protobuf, OTLP/HTTP JSON and
OTLP/gRPC: through the OpenTelemetry Python SDK's own exporters where the SDK can set the field,
and as hand-built `opentelemetry-proto` requests where it cannot (names of metrics, trace_state,
scope versions, schema URLs, entity refs, bytes values, integers). Every request must be
acknowledged; afterwards no planted value is found anywhere in the data directory (`.zst`
decompressed), in capture's own output, in a bundle of it (blobs decompressed), nor in the
OTLP/JSON export of that bundle (which shows integers as text).

Done-when 2: a request with unknown fields at several depths is journaled without them when a
policy is active (and `/status` counts them), and byte-identical when none is.
"""

from __future__ import annotations

import base64
import datetime as dt
import io
import json
import os
import shutil
import time
from pathlib import Path

import grpc
import requests
import zstandard
from google.protobuf import json_format
from opentelemetry._logs import LogRecord, SeverityNumber
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from opentelemetry.proto.common.v1 import common_pb2
from opentelemetry.proto.metrics.v1 import metrics_pb2
from opentelemetry.proto.trace.v1 import trace_pb2
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Link, Status, StatusCode

from capturelib import bundle_records, capture  # noqa: F401  (capture is a fixture)

REPO = Path(__file__).resolve().parent.parent
METHODS = {
    "traces": "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
    "logs": "/opentelemetry.proto.collector.logs.v1.LogsService/Export",
    "metrics": "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export",
}
JWT = (
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9"
    ".eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkphbmUgRG9lIn0"
    ".SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"
)
# (planted text, what must not be found afterwards, compared ignoring case)
SECRETS: list[tuple[str, list[str]]] = [
    ("alice.smith@example.com", ["alice.smith@example.com", "alice.smith"]),
    ("IVAN.PETROV@EXAMPLE.COM", ["ivan.petrov@example.com", "ivan.petrov"]),
    ("ivan%40example.com", ["ivan%40example.com", "ivan@example.com"]),
    ("mallory@exämple.com", ["mallory@exämple.com", "exämple"]),
    ("иван@пример.рф", ["иван@пример.рф", "иван"]),
    ("4111 1111 1111 1111", ["4111 1111 1111 1111", "4111111111111111"]),
    ("4111.1111.1111.1111", ["4111.1111.1111.1111"]),
    ("4111  1111  1111  1111", ["4111  1111  1111  1111"]),
    ("5500-0000-0000-0004", ["5500-0000-0000-0004", "5500000000000004"]),
    ("4111111111111111", ["4111111111111111"]),
    ("Bearer abcDEF0123456789xyzTOKEN", ["abcDEF0123456789xyzTOKEN"]),
    (JWT, JWT.split(".")),
]
CARD_INTEGER = 4111111111111111
NEEDLES = sorted({needle.lower() for _, needles in SECRETS for needle in needles})
MARKERS = ["[REDACTED:email]", "[REDACTED:card-number]", "[REDACTED:bearer-token]"]


def leaks(content: bytes) -> list[str]:
    text = content.decode("utf-8", "replace").lower()
    return [needle for needle in NEEDLES if needle in text]


def readable(path: Path) -> bytes:
    raw = path.read_bytes()
    if path.suffix != ".zst":
        return raw
    return zstandard.ZstdDecompressor().stream_reader(io.BytesIO(raw), read_across_frames=True).read()


def example_policy(tmp_path: Path) -> Path:
    """config/redaction.example.yaml, exactly, with a key file beside it."""
    directory = tmp_path / "policy"
    directory.mkdir()
    policy = directory / "redaction.example.yaml"
    shutil.copyfile(REPO / "config" / "redaction.example.yaml", policy)
    key = directory / "redaction.key"
    key.write_bytes(os.urandom(32))
    os.chmod(key, 0o600)
    return policy


# --- hand-built requests: every field of the table --------------------------------------------


def any_value(text: str) -> common_pb2.AnyValue:
    return common_pb2.AnyValue(string_value=text)


def attributes(text: str) -> list[common_pb2.KeyValue]:
    """Keys the example policy allows (`note`, `message`, `http.*`) so values reach the masks,
    and keys that carry the secret themselves (top level and inside a kvlist)."""
    nested = common_pb2.KeyValueList(
        values=[
            common_pb2.KeyValue(key=f"http.{text}", value=any_value(text)),
            common_pb2.KeyValue(key=f"other.{text}", value=any_value(text)),
            common_pb2.KeyValue(key="note", value=any_value(f"nested {text}")),
        ]
    )
    values = [
        common_pb2.KeyValue(key="note", value=any_value(f"before {text} after")),
        common_pb2.KeyValue(key=f"http.{text}", value=any_value("key")),
        common_pb2.KeyValue(key=f"x.{text}", value=any_value("not allowed")),
        common_pb2.KeyValue(
            key="message",
            value=common_pb2.AnyValue(array_value=common_pb2.ArrayValue(values=[any_value(text), any_value("ok")])),
        ),
        common_pb2.KeyValue(key="http.body", value=common_pb2.AnyValue(kvlist_value=nested)),
        common_pb2.KeyValue(key="http.raw", value=common_pb2.AnyValue(bytes_value=f"raw {text}".encode())),
        common_pb2.KeyValue(key="user.email", value=any_value(text)),
    ]
    if text.isdigit():
        values.append(common_pb2.KeyValue(key="http.int", value=common_pb2.AnyValue(int_value=int(text))))
    return values


def fill_resource(resource, scope, text: str) -> None:
    resource.attributes.extend([common_pb2.KeyValue(key="service.name", value=any_value("corpus"))] + attributes(text))
    entity = resource.entity_refs.add()
    entity.schema_url = f"https://example.com/{text}"
    entity.type = f"service {text}"
    entity.id_keys.append(f"service.{text}")
    entity.description_keys.append(f"note.{text}")
    scope.name = f"lib {text}"
    scope.version = f"1.0+{text}"
    scope.attributes.extend(attributes(text))


def hand_traces(now: int) -> trace_service_pb2.ExportTraceServiceRequest:
    request = trace_service_pb2.ExportTraceServiceRequest()
    for index, (text, _) in enumerate(SECRETS):
        resource_spans = request.resource_spans.add()
        resource_spans.schema_url = f"https://example.com/r/{text}"
        scope_spans = resource_spans.scope_spans.add()
        scope_spans.schema_url = f"https://example.com/s/{text}"
        fill_resource(resource_spans.resource, scope_spans.scope, text)
        span = scope_spans.spans.add()
        span.trace_id = bytes([index + 1]) * 16
        span.span_id = bytes([index + 1]) * 8
        span.trace_state = f"vendor={text}"
        span.name = f"GET /users/{text}"
        span.start_time_unix_nano = now
        span.end_time_unix_nano = now + 1000
        span.attributes.extend(attributes(text))
        event = span.events.add(name=f"event {text}", time_unix_nano=now + 10)
        event.attributes.extend(attributes(text))
        link = span.links.add(trace_id=bytes([0x33]) * 16, span_id=bytes([0x44]) * 8, trace_state=f"v={text}")
        link.attributes.extend(attributes(text))
        span.status.code = trace_pb2.Status.STATUS_CODE_ERROR
        span.status.message = f"failed for {text}"
    return request


def hand_logs(now: int) -> logs_service_pb2.ExportLogsServiceRequest:
    request = logs_service_pb2.ExportLogsServiceRequest()
    for text, _ in SECRETS:
        resource_logs = request.resource_logs.add()
        resource_logs.schema_url = f"https://example.com/r/{text}"
        scope_logs = resource_logs.scope_logs.add()
        scope_logs.schema_url = f"https://example.com/s/{text}"
        fill_resource(resource_logs.resource, scope_logs.scope, text)
        bodies = [
            any_value(f"login failed: {text}"),
            common_pb2.AnyValue(
                kvlist_value=common_pb2.KeyValueList(
                    values=[
                        common_pb2.KeyValue(key=f"http.{text}", value=any_value(text)),
                        common_pb2.KeyValue(key="message", value=any_value(text)),
                        common_pb2.KeyValue(key="who", value=any_value(text)),
                    ]
                )
            ),
            common_pb2.AnyValue(array_value=common_pb2.ArrayValue(values=[any_value(text)])),
            common_pb2.AnyValue(bytes_value=f"blob {text}".encode()),
        ]
        if text.isdigit():
            bodies.append(common_pb2.AnyValue(int_value=int(text)))
        for offset, body in enumerate(bodies):
            record = scope_logs.log_records.add()
            record.time_unix_nano = now + offset
            record.severity_text = f"WARN {text}"
            record.event_name = f"event.{text}"
            record.body.CopyFrom(body)
            record.attributes.extend(attributes(text))
    return request


def hand_metrics(now: int) -> metrics_service_pb2.ExportMetricsServiceRequest:
    request = metrics_service_pb2.ExportMetricsServiceRequest()
    for text, _ in SECRETS:
        resource_metrics = request.resource_metrics.add()
        resource_metrics.schema_url = f"https://example.com/r/{text}"
        scope_metrics = resource_metrics.scope_metrics.add()
        scope_metrics.schema_url = f"https://example.com/s/{text}"
        fill_resource(resource_metrics.resource, scope_metrics.scope, text)

        def metric(kind: str) -> metrics_pb2.Metric:
            made = scope_metrics.metrics.add(name=f"{kind}.{text}", description=f"about {text}", unit=f"{{{text}}}")
            made.metadata.extend(attributes(text))
            return made

        exemplar = metrics_pb2.Exemplar(time_unix_nano=now, as_double=1.0)
        exemplar.filtered_attributes.extend(attributes(text))
        for kind in ("gauge", "sum"):
            point = getattr(metric(kind), kind).data_points.add(time_unix_nano=now, as_int=3)
            point.attributes.extend(attributes(text))
            point.exemplars.append(exemplar)
        point = metric("histogram").histogram.data_points.add(time_unix_nano=now, count=1)
        point.attributes.extend(attributes(text))
        point.exemplars.append(exemplar)
        point = metric("exponential").exponential_histogram.data_points.add(time_unix_nano=now, count=1)
        point.attributes.extend(attributes(text))
        point.exemplars.append(exemplar)
        point = metric("summary").summary.data_points.add(time_unix_nano=now, count=1)
        point.attributes.extend(attributes(text))
    return request


def otlp_json(message) -> bytes:
    """OTLP/JSON of a hand-built request: protobuf's JSON mapping, with ids in hex as OTLP wants."""
    document = json_format.MessageToDict(message)

    def fix(node):
        if isinstance(node, dict):
            for key, value in node.items():
                if key in ("traceId", "spanId", "parentSpanId") and isinstance(value, str):
                    node[key] = base64.b64decode(value).hex()
                else:
                    fix(value)
        elif isinstance(node, list):
            for item in node:
                fix(item)

    fix(document)
    return json.dumps(document, ensure_ascii=False).encode("utf-8")


def send_hand_built(service) -> int:
    """Every hand-built request over HTTP/protobuf, HTTP/JSON and gRPC; returns how many were sent."""
    now = time.time_ns()
    built = {"traces": hand_traces(now), "logs": hand_logs(now), "metrics": hand_metrics(now)}
    channel = grpc.insecure_channel(service.grpc_endpoint)
    sent = 0
    for signal, message in built.items():
        body = message.SerializeToString()
        answer = requests.post(f"{service.http_endpoint}/v1/{signal}", data=body,
                               headers={"Content-Type": "application/x-protobuf"}, timeout=60)
        assert answer.status_code == 200, f"HTTP/protobuf {signal}: {answer.status_code} {answer.content!r}"
        answer = requests.post(f"{service.http_endpoint}/v1/{signal}", data=otlp_json(message),
                               headers={"Content-Type": "application/json"}, timeout=60)
        assert answer.status_code == 200, f"HTTP/JSON {signal}: {answer.status_code} {answer.content!r}"
        call = channel.unary_unary(METHODS[signal], request_serializer=None, response_deserializer=None)
        call(body, timeout=60)  # raises unless acknowledged
        sent += 3
    channel.close()
    return sent


# --- the SDK's own exporters ------------------------------------------------------------------


def sdk_exporters(protocol: str, service):
    if protocol == "http-proto":
        from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    elif protocol == "http-json":
        from opentelemetry.exporter.otlp.json.http import OTLPMetricExporter, OTLPSpanExporter
        from opentelemetry.exporter.otlp.json.http._log_exporter import OTLPLogExporter
    else:
        from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter
        from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        common = {"endpoint": service.grpc_endpoint, "insecure": True, "timeout": 30}
        return OTLPSpanExporter(**common), OTLPLogExporter(**common), OTLPMetricExporter(**common)
    base = service.http_endpoint
    return (
        OTLPSpanExporter(endpoint=f"{base}/v1/traces", timeout=30),
        OTLPLogExporter(endpoint=f"{base}/v1/logs", timeout=30),
        OTLPMetricExporter(endpoint=f"{base}/v1/metrics", timeout=30),
    )


def send_sdk(protocol: str, service) -> None:
    """What the SDK lets an application set: resource, scope, span name, attributes (strings,
    lists), events, links, status description, log bodies (string and map), severity text,
    event names, metric attributes."""
    span_exporter, log_exporter, metric_exporter = sdk_exporters(protocol, service)
    for text, _ in SECRETS:
        resource = Resource.create({"service.name": "sdk", "note": text, f"http.{text}": "key"},
                                   schema_url=f"https://example.com/{text}")
        collected = InMemorySpanExporter()
        provider = TracerProvider(resource=resource)
        provider.add_span_processor(SimpleSpanProcessor(collected))
        tracer = provider.get_tracer(f"lib {text}", f"1.0+{text}", schema_url=f"https://example.com/{text}")
        with tracer.start_as_current_span(f"GET /users/{text}") as parent:
            parent.set_attribute("note", f"before {text} after")
            parent.set_attribute(f"http.{text}", "key")
            parent.set_attribute("message", [text, "ok"])
            parent.set_attribute("user.email", text)
            if text.isdigit():
                parent.set_attribute("http.int", int(text))
            parent.add_event(f"event {text}", {"note": text})
            parent.set_status(Status(StatusCode.ERROR, f"failed for {text}"))
            context = parent.get_span_context()
        with tracer.start_as_current_span("child", links=[Link(context, {"note": text})]):
            pass
        provider.shutdown()
        result = span_exporter.export(collected.get_finished_spans())
        assert result.name == "SUCCESS", f"{protocol} spans: {result}"

        logs = InMemoryLogRecordExporter()
        log_provider = LoggerProvider(resource=resource)
        log_provider.add_log_record_processor(SimpleLogRecordProcessor(logs))
        logger = log_provider.get_logger(f"lib {text}", f"1.0+{text}")
        logger.emit(LogRecord(timestamp=time.time_ns(), body=f"login failed: {text}", severity_text=f"WARN {text}",
                              severity_number=SeverityNumber.WARN, attributes={"note": text},
                              event_name=f"event.{text}"))
        logger.emit(LogRecord(timestamp=time.time_ns(), body={"message": text, f"http.{text}": [text, "x"],
                                                                "who": {"note": text}},
                              severity_number=SeverityNumber.INFO))
        log_provider.shutdown()
        result = log_exporter.export(logs.get_finished_logs())
        assert result.name == "SUCCESS", f"{protocol} logs: {result}"

        reader = InMemoryMetricReader()
        meter_provider = MeterProvider(resource=resource, metric_readers=[reader])
        meter = meter_provider.get_meter(f"lib {text}", f"1.0+{text}")
        meter.create_counter("orders", description=f"about {text}").add(1, {"note": text, f"http.{text}": text})
        meter.create_histogram("latency").record(2.5, {"message": text})
        data = reader.get_metrics_data()
        result = metric_exporter.export(data)
        assert result.name == "SUCCESS", f"{protocol} metrics: {result}"
        meter_provider.shutdown()
    span_exporter.shutdown()
    log_exporter.shutdown()
    metric_exporter.shutdown()


def test_no_planted_secret_reaches_disk_a_bundle_or_an_export(capture, stella, keys, tmp_path):
    started = dt.datetime.now(dt.timezone.utc)
    service = capture(None, "--redaction-policy", example_policy(tmp_path))
    hand_built = send_hand_built(service)
    for protocol in ("http-proto", "http-json", "grpc"):
        send_sdk(protocol, service)
    status = service.status()
    accepted = sum(int(n) for n in status["ingest"]["accepted"].values())
    assert accepted >= hand_built + 3 * 3 * len(SECRETS), status["ingest"]
    assert status["ingest"]["rejected"] == {} or all(int(n) == 0 for n in status["ingest"]["rejected"].values()), \
        status["ingest"]
    redaction = status["ingest"]["redaction"]
    assert redaction["active"] is True and int(redaction["valuesRewritten"]) > 0, redaction
    service.seal()
    assert service.stop() == 0

    # Every file of the data directory (decompressed) and capture's own output.
    files = sorted(path for path in service.data.rglob("*") if path.is_file())
    files += sorted(path for path in service.logs.rglob("*") if path.is_file())
    assert any(path.suffix == ".zst" for path in files), [str(p) for p in files]
    everything = b""
    for path in files:
        content = readable(path)
        leaked = leaks(content)
        assert not leaked, f"{path} holds {leaked}"
        everything += content
    for marker in MARKERS:
        assert marker.encode() in everything, f"{marker} not in the captured data"
    assert b"GET /users/" in everything and b"hmac-sha256:" in everything

    # A bundle of it (verified deep), every member decompressed, and every record decoded.
    bundle = tmp_path / "bundle.sfb.tar"
    _, records = bundle_records(stella, service.data, keys, bundle, since=started)
    assert records
    for record in records:
        text = json_format.MessageToJson(record.request)
        leaked = leaks(record.raw) + leaks(text.encode())
        assert not leaked, f"record {record.signal}/{record.seq} holds {leaked}"
        assert str(CARD_INTEGER) not in text
    import tarfile

    with tarfile.open(bundle) as archive:
        for member in archive.getmembers():
            if not member.isfile():
                continue
            raw = archive.extractfile(member).read()
            if member.name.endswith(".zst"):
                raw = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(raw), read_across_frames=True).read()
            leaked = leaks(raw)
            assert not leaked, f"bundle member {member.name} holds {leaked}"

    # The OTLP/JSON export shows integers as text: the integer card is gone too.
    out = tmp_path / "export"
    stella.ok("export", bundle, "--trusted-key", keys[1], "--format", "otlp-json", "--out", out)
    exported = b"".join(path.read_bytes() for path in sorted(out.rglob("*")) if path.is_file())
    assert exported
    assert not leaks(exported), leaks(exported)


# --- unknown fields ---------------------------------------------------------------------------


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


UNKNOWN = b"UNKNOWN-FIELD-PAYLOAD"


def requests_with_unknown_fields() -> tuple[dict[str, bytes], int]:
    """(signal → request, number of unknown fields in all of them): unknown fields on the request,
    ResourceSpans, Resource, ScopeSpans, Span, KeyValue, AnyValue, LogRecord and its body, and a
    varint-typed one on a Span."""
    now = time.time_ns()
    any_value = field(1, b"v") + field(99, UNKNOWN + b"-anyvalue")
    key_value = field(1, b"http.k") + field(2, any_value) + field(98, UNKNOWN + b"-keyvalue")
    span = (field(1, b"\x01" * 16) + field(2, b"\x02" * 8) + field(5, b"unknown-fields span") + fixed64(7, now)
            + fixed64(8, now + 1) + field(9, key_value) + field(99, UNKNOWN + b"-span") + varint(97 << 3) + varint(5))
    scope_spans = field(2, span) + field(99, UNKNOWN + b"-scopespans")
    resource = field(1, key_value) + field(99, UNKNOWN + b"-resource")
    traces = field(1, field(1, resource) + field(2, scope_spans) + field(99, UNKNOWN + b"-resourcespans"))
    traces += field(99, UNKNOWN + b"-request")
    # traces: anyvalue 2, keyvalue 2, span 2, scopespans, resource, resourcespans, request = 10
    record = fixed64(1, now) + field(5, any_value) + field(6, key_value) + field(99, UNKNOWN + b"-logrecord")
    logs = field(1, field(2, field(2, record)))
    # logs: body anyvalue 1, keyvalue 1 + its anyvalue 1, record 1 = 4
    return {"traces": traces, "logs": logs}, 14


def send_raw(service, bodies: dict[str, bytes]) -> None:
    for signal, body in bodies.items():
        answer = requests.post(f"{service.http_endpoint}/v1/{signal}", data=body,
                               headers={"Content-Type": "application/x-protobuf"}, timeout=30)
        assert answer.status_code == 200, f"{signal}: {answer.status_code} {answer.content!r}"


def test_unknown_fields_are_dropped_with_a_policy_and_kept_byte_identical_without(capture, stella, keys, tmp_path):
    bodies, planted = requests_with_unknown_fields()
    started = dt.datetime.now(dt.timezone.utc)

    redacting = capture(None, "--redaction-policy", example_policy(tmp_path))
    send_raw(redacting, bodies)
    counted = redacting.status()["ingest"]["redaction"]
    assert int(counted["unknownFieldsDropped"]) == planted, counted
    redacting.seal()
    _, records = bundle_records(stella, redacting.data, keys, tmp_path / "redacted.sfb.tar", since=started)
    assert {record.signal for record in records} == {"traces", "logs"}
    for record in records:
        assert UNKNOWN not in record.raw, f"{record.signal}: an unknown field was journaled"
        assert b"unknown-fields span" in record.raw or record.signal == "logs"
    for path in redacting.data.rglob("*"):
        if path.is_file():
            assert UNKNOWN not in readable(path), f"{path} holds an unknown field"

    plain = capture()
    send_raw(plain, bodies)
    assert int(plain.status()["ingest"]["redaction"]["unknownFieldsDropped"]) == 0
    plain.seal()
    _, records = bundle_records(stella, plain.data, keys, tmp_path / "plain.sfb.tar", since=started)
    stored = {record.signal: record.raw for record in records}
    assert stored == bodies, "without a policy the journal must hold the exact bytes sent"


def test_a_request_that_outgrows_a_record_when_redacted_is_refused_with_413(capture, tmp_path):
    """Hashing turns each one-byte `enduser.id` into 76 bytes, so a 9 MB request becomes more than
    the 16 MiB a record may hold: the client is told 413 when it sends it, nothing is journaled
    half-way, and capture goes on taking requests that fit."""
    now = time.time_ns()
    attribute = field(9, field(1, b"enduser.id") + field(2, field(1, b"x")))
    span = field(1, b"\x01" * 16) + field(2, b"\x02" * 8) + fixed64(7, now) + fixed64(8, now + 1) + attribute
    spans = field(2, span) * 140_000
    body = field(1, field(2, spans))
    assert 8 << 20 < len(body) < 10 << 20

    service = capture(None, "--redaction-policy", example_policy(tmp_path))
    answer = requests.post(f"{service.http_endpoint}/v1/traces", data=body,
                           headers={"Content-Type": "application/x-protobuf"}, timeout=120)
    assert answer.status_code == 413, f"{answer.status_code} {answer.content[:300]!r}"
    assert b"redacted request" in answer.content and b"record limit" in answer.content, answer.content[:300]

    bodies, _ = requests_with_unknown_fields()
    send_raw(service, bodies)
    accepted = service.status()["ingest"]
    assert int(accepted["redaction"]["requestsChanged"]) == 2, accepted  # the refused one is not counted
