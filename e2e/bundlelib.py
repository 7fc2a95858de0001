"""Reading stella-forensics bundles and OTLP fixtures in Python, independently of the Swift code.

Everything here follows BUNDLE-FORMAT.md (sections 2, 4, 6) and uses the official
`opentelemetry-proto` messages to decode requests, so the tests cross-check the tool
against a second implementation rather than against itself.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import io
import json
import tarfile
from pathlib import Path

import zstandard
from google.protobuf import json_format
from google.protobuf.unknown_fields import UnknownFieldSet
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

SIGNAL_CODES = {1: "traces", 2: "logs", 3: "metrics"}
REQUEST_TYPES = {
    "traces": trace_service_pb2.ExportTraceServiceRequest,
    "logs": logs_service_pb2.ExportLogsServiceRequest,
    "metrics": metrics_service_pb2.ExportMetricsServiceRequest,
}
JSON_SIGNAL_KEYS = {"resourceSpans": "traces", "resourceLogs": "logs", "resourceMetrics": "metrics"}
HEX_ID_FIELDS = frozenset({"traceId", "spanId", "parentSpanId"})
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
MAX_RECORD = 16 * 1024 * 1024


def _crc32c_table() -> list[int]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
        table.append(crc)
    return table


_CRC32C_TABLE = _crc32c_table()


def crc32c(data: bytes) -> int:
    """CRC-32C (Castagnoli), reflected, init and xorout 0xFFFFFFFF."""
    crc = 0xFFFFFFFF
    table = _CRC32C_TABLE
    for byte in data:
        crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


assert crc32c(b"123456789") == 0xE3069283


# ---------------------------------------------------------------------------------------------
# OTLP inputs


def hex_ids_to_base64(node):
    """OTLP/JSON ids are hex; the proto3 JSON mapping (json_format) expects base64."""
    if isinstance(node, dict):
        return {
            key: (
                base64.b64encode(bytes.fromhex(value)).decode("ascii")
                if key in HEX_ID_FIELDS and isinstance(value, str)
                else hex_ids_to_base64(value)
            )
            for key, value in node.items()
        }
    if isinstance(node, list):
        return [hex_ids_to_base64(item) for item in node]
    return node


def maybe_decompress(data: bytes) -> bytes:
    if data[:4] == ZSTD_MAGIC:
        return zstandard.ZstdDecompressor().decompressobj().decompress(data)
    return data


def read_otlp_file(path: Path) -> list[tuple[str, object]]:
    """The requests of an OTLP/JSON-lines file or a length-prefixed proto stream, in order."""
    data = maybe_decompress(path.read_bytes())
    requests: list[tuple[str, object]] = []
    if data[:1] == b"{":
        for line in data.decode("utf-8").splitlines():
            if not line.strip():
                continue
            doc = json.loads(line)
            (key,) = [k for k in JSON_SIGNAL_KEYS if k in doc]
            signal = JSON_SIGNAL_KEYS[key]
            message = REQUEST_TYPES[signal]()
            json_format.ParseDict(hex_ids_to_base64(doc), message)
            requests.append((signal, message))
        return requests
    offset = 0
    while offset < len(data):
        length = int.from_bytes(data[offset : offset + 4], "big")
        body = data[offset + 4 : offset + 4 + length]
        assert len(body) == length, f"{path}: truncated proto stream at {offset}"
        offset += 4 + length
        requests.append(classify_proto(body))
    return requests


def has_unknown_fields(message) -> bool:
    """True if the message or any sub-message holds fields its type does not define."""
    if len(UnknownFieldSet(message)) > 0:
        return True
    for field, value in message.ListFields():
        if field.message_type is None:
            continue
        items = value if field.is_repeated else [value]
        if any(has_unknown_fields(item) for item in items):
            return True
    return False


def classify_proto(body: bytes) -> tuple[str, object]:
    """Which request type a proto-stream entry is: the one that parses with no unknown fields."""
    for signal, cls in REQUEST_TYPES.items():
        message = cls()
        try:
            message.ParseFromString(body)
        except Exception:  # noqa: BLE001 - protobuf raises DecodeError or others
            continue
        if message.ListFields() and not has_unknown_fields(message):
            return signal, message
    raise AssertionError("proto entry is none of the three request types")


# ---------------------------------------------------------------------------------------------
# bundles


@dataclasses.dataclass
class Record:
    seq: int
    received: int
    request: object  # the decoded Export*ServiceRequest
    raw: bytes


@dataclasses.dataclass
class Segment:
    signal: str
    tenant: str
    node: str
    records: list[Record]


@dataclasses.dataclass
class Bundle:
    members: list[str]
    contents: dict[str, bytes]
    manifest_raw: bytes
    manifest: dict
    envelope: dict
    segments: dict[str, Segment]  # by blob path


def parse_segment(data: bytes, first_seq: int, where: str) -> Segment:
    """Parse SFSG header + SFR records (section 6.2), checking CRCs and consecutive seqs."""
    assert data[:4] == b"SFSG", f"{where}: segment magic {data[:4]!r}"
    assert data[4] == 1, f"{where}: segment version {data[4]}"
    signal = SIGNAL_CODES[data[5]]
    pos = 6
    tenant_len = int.from_bytes(data[pos : pos + 2], "big")
    assert 1 <= tenant_len <= 255, f"{where}: tenantLen {tenant_len}"
    tenant = data[pos + 2 : pos + 2 + tenant_len].decode("utf-8")
    pos += 2 + tenant_len
    node_len = int.from_bytes(data[pos : pos + 2], "big")
    assert 1 <= node_len <= 255, f"{where}: nodeLen {node_len}"
    node = data[pos + 2 : pos + 2 + node_len].decode("utf-8")
    pos += 2 + node_len
    records: list[Record] = []
    while pos < len(data):
        assert len(data) - pos >= 12, f"{where}: torn record header at {pos}"
        assert data[pos : pos + 3] == b"SFR", f"{where}: record magic at {pos}"
        assert data[pos + 3] == 1, f"{where}: record version at {pos}"
        length = int.from_bytes(data[pos + 4 : pos + 8], "big")
        assert 16 <= length <= MAX_RECORD, f"{where}: record length {length} at {pos}"
        crc = int.from_bytes(data[pos + 8 : pos + 12], "big")
        body = data[pos + 12 : pos + 12 + length]
        assert len(body) == length, f"{where}: record at {pos} runs past the end"
        assert crc32c(body) == crc, f"{where}: CRC-32C mismatch in record at {pos}"
        seq = int.from_bytes(body[0:8], "big")
        received = int.from_bytes(body[8:16], "big")
        expected_seq = first_seq + len(records)
        assert seq == expected_seq, f"{where}: record {len(records)} has seq {seq}, expected {expected_seq}"
        request = REQUEST_TYPES[signal]()
        request.ParseFromString(body[16:])
        records.append(Record(seq=seq, received=received, request=request, raw=body[16:]))
        pos += 12 + length
    assert records, f"{where}: segment has no records"
    return Segment(signal=signal, tenant=tenant, node=node, records=records)


def read_bundle(path: Path) -> Bundle:
    data = path.read_bytes()
    members: list[str] = []
    contents: dict[str, bytes] = {}
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as archive:
        for info in archive:
            assert info.isreg(), f"{path}: member {info.name} is not a regular file"
            members.append(info.name)
            handle = archive.extractfile(info)
            assert handle is not None
            contents[info.name] = handle.read()
    manifest_raw = contents["manifest.json"]
    manifest = json.loads(manifest_raw)
    envelope = json.loads(contents["manifest.dsse.json"])
    segments: dict[str, Segment] = {}
    for blob in manifest["blobs"]:
        blob_bytes = contents[blob["path"]]
        assert hashlib.sha256(blob_bytes).hexdigest() == blob["sha256"], f"{blob['path']}: digest"
        assert len(blob_bytes) == blob["size"], f"{blob['path']}: size"
        params = zstandard.get_frame_parameters(blob_bytes)
        raw = zstandard.ZstdDecompressor().decompressobj().decompress(blob_bytes)
        assert len(raw) == blob["uncompressedSize"], f"{blob['path']}: uncompressedSize"
        if params.content_size != zstandard.CONTENTSIZE_UNKNOWN:
            assert params.content_size == len(raw)
        segments[blob["path"]] = parse_segment(raw, int(blob["firstSeq"]), blob["path"])
    return Bundle(members, contents, manifest_raw, manifest, envelope, segments)


def keyid_of(pub: Path) -> str:
    """BUNDLE-FORMAT.md section 5: lowercase hex SHA-256 of the DER SubjectPublicKeyInfo."""
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat, load_pem_public_key

    key = load_pem_public_key(pub.read_bytes())
    return hashlib.sha256(key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)).hexdigest()


def pae(payload_type: str, body: bytes) -> bytes:
    t = payload_type.encode("utf-8")
    return b"DSSEv1 %d %s %d %s" % (len(t), t, len(body), body)


# ---------------------------------------------------------------------------------------------
# facts about requests


def items_of(signal: str, request) -> dict:
    """Spans / log records / data points in one request."""
    counts = {"spans": 0, "logRecords": 0, "dataPoints": 0}
    if signal == "traces":
        counts["spans"] = sum(len(ss.spans) for rs in request.resource_spans for ss in rs.scope_spans)
    elif signal == "logs":
        counts["logRecords"] = sum(len(sl.log_records) for rl in request.resource_logs for sl in rl.scope_logs)
    else:
        for rm in request.resource_metrics:
            for sm in rm.scope_metrics:
                for metric in sm.metrics:
                    kind = metric.WhichOneof("data")
                    if kind:
                        counts["dataPoints"] += len(getattr(metric, kind).data_points)
    return counts


def times_of(signal: str, request) -> list[tuple[int, int]]:
    """(first, last) candidate times per item, per section 6.3."""
    out = []
    if signal == "traces":
        for rs in request.resource_spans:
            for ss in rs.scope_spans:
                for span in ss.spans:
                    out.append((span.start_time_unix_nano, span.end_time_unix_nano))
    elif signal == "logs":
        for rl in request.resource_logs:
            for sl in rl.scope_logs:
                for log in sl.log_records:
                    t = log.time_unix_nano or log.observed_time_unix_nano
                    out.append((t, t))
    else:
        for rm in request.resource_metrics:
            for sm in rm.scope_metrics:
                for metric in sm.metrics:
                    kind = metric.WhichOneof("data")
                    if kind:
                        for point in getattr(metric, kind).data_points:
                            out.append((point.time_unix_nano, point.time_unix_nano))
    return out


def segment_time_range(segment: Segment) -> tuple[int, int]:
    pairs = [pair for record in segment.records for pair in times_of(segment.signal, record.request)]
    if not pairs:
        return 0, 0
    return min(p[0] for p in pairs), max(p[1] for p in pairs)


def span_ids(request) -> list[str]:
    return [span.span_id.hex() for rs in request.resource_spans for ss in rs.scope_spans for span in ss.spans]


def trace_ids(request) -> list[str]:
    return [span.trace_id.hex() for rs in request.resource_spans for ss in rs.scope_spans for span in ss.spans]


def any_value(value):
    """AnyValue -> plain Python value (as the SDK's body was)."""
    kind = value.WhichOneof("value")
    if kind is None:
        return None
    if kind == "kvlist_value":
        return {kv.key: any_value(kv.value) for kv in value.kvlist_value.values}
    if kind == "array_value":
        return [any_value(v) for v in value.array_value.values]
    return getattr(value, kind)


def log_bodies(request) -> list:
    return [any_value(log.body) for rl in request.resource_logs for sl in rl.scope_logs for log in sl.log_records]


def normalized(message) -> dict:
    """A message as a dict without empty values, so presence of empty sub-messages doesn't matter."""

    def prune(node):
        if isinstance(node, dict):
            pruned = {k: prune(v) for k, v in node.items()}
            return {k: v for k, v in pruned.items() if v not in ({}, [], "", 0, "0", None, False)}
        if isinstance(node, list):
            return [prune(item) for item in node]
        return node

    return prune(json_format.MessageToDict(message, use_integers_for_enums=True))
