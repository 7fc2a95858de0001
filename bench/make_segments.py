#!/usr/bin/env python3
"""Writes OTLP trace data for the bundle benchmark: Collector file-exporter protobuf streams.

    python3 bench/make_segments.py --out DIR --compressed-target 1.1GiB [--files 8] [--seed 1]

Each file is a sequence of `[4-byte big-endian length][ExportTraceServiceRequest]`, the format
`stella-forensics import` reads. Requests look like real tracing traffic: one resource (service,
host, a random pod uid), one scope, 200 spans with random 16/8-byte trace/span/parent ids, one of
five operation names and kinds, increasing start times with random durations, five attributes
with random hex values (request ids, session ids, tokens) and two integer attributes. The random
ids and values give zstd level 3 a ratio of about 2.5, so the compressed blob bytes of the
bundle, not only the input, reach the target.

Speed: each span kind's serialized form is made once with the official `opentelemetry-proto`
messages, with marker values in the random fields; numpy then copies that template row by row
and overwrites the marked byte ranges with random bytes, so a few GiB take about a minute
instead of an hour of per-span Python. The script parses a sample of its own output back with
the official messages to check it is well-formed.

The total raw size is chosen from a compressed sample: raw = target x measured ratio x 1.05.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path

import numpy as np
import zstandard
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from opentelemetry.proto.common.v1 import common_pb2
from opentelemetry.proto.trace.v1 import trace_pb2

SPANS_PER_REQUEST = 200
HEX_ATTRIBUTES = ("http.request.id", "user.session.id", "db.statement.hash", "order.id", "payment.token")
HEX_LENGTH = 24
OPERATIONS = (
    ("GET /api/cart", trace_pb2.Span.SPAN_KIND_SERVER),
    ("POST /api/checkout", trace_pb2.Span.SPAN_KIND_SERVER),
    ("SELECT orders WHERE customer_id = ?", trace_pb2.Span.SPAN_KIND_CLIENT),
    ("redis GET", trace_pb2.Span.SPAN_KIND_CLIENT),
    ("charge card", trace_pb2.Span.SPAN_KIND_INTERNAL),
)
HEX_DIGITS = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)
BASE_TIME = 1_718_000_000_000_000_000


def parse_size(text: str) -> int:
    match = re.fullmatch(r"(\d+(?:\.\d+)?)\s*(B|KiB|MiB|GiB)?", text)
    if not match:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (e.g. 1.1GiB)")
    scale = {"B": 1, None: 1, "KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30}[match.group(2)]
    return int(float(match.group(1)) * scale)


def varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def field(number: int, payload: bytes) -> bytes:
    """A length-delimited field."""
    return varint(number << 3 | 2) + varint(len(payload)) + payload


class SpanTemplate:
    """One operation's serialized span with the byte offsets of its random fields."""

    def __init__(self, name: str, kind: int) -> None:
        span = trace_pb2.Span(name=name, kind=kind)
        span.trace_id = b"\xa1" * 16
        span.span_id = b"\xa2" * 8
        span.parent_span_id = b"\xa3" * 8
        span.start_time_unix_nano = 0xB1B1B1B1B1B1B1B1
        span.end_time_unix_nano = 0xB2B2B2B2B2B2B2B2
        for index, key in enumerate(HEX_ATTRIBUTES):
            span.attributes.add(key=key).value.string_value = chr(ord("G") + index) * HEX_LENGTH
        # Values with fixed varint widths, so every row has the same length.
        span.attributes.add(key="http.response.status_code").value.int_value = 200  # 2 bytes
        span.attributes.add(key="net.peer.port").value.int_value = 20000  # 3 bytes
        self.bytes = np.frombuffer(span.SerializeToString(deterministic=True), dtype=np.uint8)
        raw = self.bytes.tobytes()

        def at(marker: bytes) -> int:
            offset = raw.find(marker)
            assert offset >= 0 and raw.find(marker, offset + 1) in (-1, offset + 1), marker
            return offset

        self.trace_id = at(b"\xa1" * 16)
        self.span_id = at(b"\xa2" * 8)
        self.parent_id = at(b"\xa3" * 8)
        self.start = at(b"\xb1" * 8)
        self.end = at(b"\xb2" * 8)
        self.hex = [at(chr(ord("G") + i).encode() * HEX_LENGTH) for i in range(len(HEX_ATTRIBUTES))]
        # Varint values sit right after "<key>" + 0x12 <len> 0x18.
        self.status = at(b"http.response.status_code") + len("http.response.status_code") + 3
        self.port = at(b"net.peer.port") + len("net.peer.port") + 3
        # The span as a ScopeSpans.spans element: tag 0x12 and its length, then the bytes.
        self.element_prefix = np.frombuffer(b"\x12" + varint(len(raw)), dtype=np.uint8)

    def rows(self, rng: np.random.Generator, count: int, start_time: int) -> bytes:
        """`count` spans, each prefixed as a repeated field element, as one byte string."""
        width = len(self.element_prefix) + len(self.bytes)
        rows = np.empty((count, width), dtype=np.uint8)
        rows[:, : len(self.element_prefix)] = self.element_prefix
        body = rows[:, len(self.element_prefix):]
        body[:] = self.bytes
        for offset, length in ((self.trace_id, 16), (self.span_id, 8), (self.parent_id, 8)):
            body[:, offset:offset + length] = rng.integers(0, 256, (count, length), dtype=np.uint8)
        for offset in self.hex:
            body[:, offset:offset + HEX_LENGTH] = HEX_DIGITS[
                rng.integers(0, 16, (count, HEX_LENGTH), dtype=np.uint8)]
        starts = start_time + np.arange(count, dtype=np.uint64) * np.uint64(1_000) + rng.integers(
            0, 1_000, count, dtype=np.uint64)
        ends = starts + rng.integers(1_000, 50_000_000, count, dtype=np.uint64)
        body[:, self.start:self.start + 8] = starts.astype("<u8").view(np.uint8).reshape(count, 8)
        body[:, self.end:self.end + 8] = ends.astype("<u8").view(np.uint8).reshape(count, 8)
        status = rng.choice(np.array([200, 200, 200, 201, 404, 500], dtype=np.int64), count)
        body[:, self.status] = (status & 0x7F) | 0x80
        body[:, self.status + 1] = status >> 7
        port = rng.integers(16384, 65536, count, dtype=np.int64)
        body[:, self.port] = (port & 0x7F) | 0x80
        body[:, self.port + 1] = ((port >> 7) & 0x7F) | 0x80
        body[:, self.port + 2] = port >> 14
        return rows.tobytes()


class RequestWriter:
    def __init__(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)
        self.templates = [SpanTemplate(name, kind) for name, kind in OPERATIONS]
        self.scope = field(1, common_pb2.InstrumentationScope(
            name="stella-bench", version="1.0.0").SerializeToString(deterministic=True))
        self.requests = 0
        self.time = BASE_TIME

    def request(self) -> bytes:
        """One serialized ExportTraceServiceRequest."""
        template = self.templates[self.requests % len(self.templates)]
        pod = self.rng.integers(0, 256, 16, dtype=np.uint8).tobytes().hex()
        resource = trace_service_pb2.ExportTraceServiceRequest().resource_spans.add().resource
        for key, value in (("service.name", "checkout"),
                           ("host.name", f"node-{self.requests % 48:02d}"),
                           ("k8s.pod.uid", pod)):
            resource.attributes.add(key=key).value.string_value = value
        spans = template.rows(self.rng, SPANS_PER_REQUEST, self.time)
        self.time += SPANS_PER_REQUEST * 1_000
        self.requests += 1
        scope_spans = field(2, self.scope + spans)
        resource_spans = field(1, field(1, resource.SerializeToString(deterministic=True)) + scope_spans)
        return resource_spans  # the request's only field is resource_spans (1)


def framed(request: bytes) -> bytes:
    return len(request).to_bytes(4, "big") + request


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--compressed-target", type=parse_size, required=True,
                        help="compressed (zstd -3) bytes the data should reach, e.g. 1.1GiB")
    parser.add_argument("--files", type=int, default=8)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()

    started = time.monotonic()
    writer = RequestWriter(args.seed)
    # Ratio from a 32 MiB sample compressed in 32 MiB chunks, as import cuts 32 MiB segments.
    sample = bytearray()
    while len(sample) < 32 << 20:
        sample += framed(writer.request())
    ratio = len(sample) / len(zstandard.ZstdCompressor(level=3).compress(bytes(sample)))
    check = trace_service_pb2.ExportTraceServiceRequest()
    first_length = int.from_bytes(sample[:4], "big")
    check.ParseFromString(bytes(sample[4:4 + first_length]))
    spans = check.resource_spans[0].scope_spans[0].spans
    if len(spans) != SPANS_PER_REQUEST or len(spans[0].trace_id) != 16 or spans[0].end_time_unix_nano <= \
            spans[0].start_time_unix_nano:
        sys.exit("make_segments: generated request does not parse back as expected")

    raw_target = int(args.compressed_target * ratio * 1.05)
    per_file = raw_target // args.files + 1
    args.out.mkdir(parents=True, exist_ok=True)
    writer = RequestWriter(args.seed)  # start over so the sample is part of the data
    written = 0
    paths = []
    for index in range(args.files):
        path = args.out / f"traces-{index:02d}.otlp.pb"
        paths.append(str(path))
        with path.open("wb") as handle:
            in_file = 0
            while in_file < per_file and written < raw_target:
                chunk = framed(writer.request())
                handle.write(chunk)
                in_file += len(chunk)
                written += len(chunk)
    summary = {
        "out": str(args.out), "files": len(paths), "rawBytes": written, "requests": writer.requests,
        "spans": writer.requests * SPANS_PER_REQUEST, "sampleZstdRatio": round(ratio, 3),
        "expectedCompressedBytes": int(written / ratio), "seconds": round(time.monotonic() - started, 1),
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
