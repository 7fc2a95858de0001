#!/usr/bin/env python3
"""A well-behaved OTLP/gRPC client: the OpenTelemetry Python SDK's own gRPC span exporter.

    sdk_grpc_client.py --endpoint 127.0.0.1:PORT --out DIR [--prefix P] [--tenant T]
                       [--duration S] [--stop-file F] [--rate R] [--batch N]

Each round builds --batch SDK `ReadableSpan`s (clients/otlp_requests.py: span name and `req.id`
= a unique id `<prefix>-<n>`) and hands them to
`opentelemetry.exporter.otlp.proto.grpc.trace_exporter.OTLPSpanExporter.export` (grpcio,
insecure channel, the tenant in metadata `x-scope-orgid`). The exporter retries by itself
(UNAVAILABLE, RESOURCE_EXHAUSTED, … with backoff, within its 10 s timeout). Ids are appended to
DIR/attempts.log before each export and to DIR/acked.log after `SpanExportResult.SUCCESS`. A
FAILURE is retried with the same ids (a batch whose answer was lost may be stored twice; an
acknowledged one must be stored). A JSON summary is printed and written to DIR/summary.json.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from otlp_requests import trace_spans  # noqa: E402

from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter  # noqa: E402
from opentelemetry.sdk.trace.export import SpanExportResult  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--endpoint", required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--prefix", default="sdk")
    parser.add_argument("--tenant", default="default")
    parser.add_argument("--duration", type=float, default=60)
    parser.add_argument("--stop-file", type=Path)
    parser.add_argument("--rate", type=float, default=20, help="export calls per second at most")
    parser.add_argument("--batch", type=int, default=1)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND
    acked_log = os.open(args.out / "acked.log", flags, 0o644)
    attempts_log = os.open(args.out / "attempts.log", flags, 0o644)

    exporter = OTLPSpanExporter(endpoint=args.endpoint, insecure=True, timeout=10,
                                headers=(("x-scope-orgid", args.tenant),))
    started = time.monotonic()
    number = 0
    acked = failures = 0
    latencies: list[float] = []

    def stopping() -> bool:
        return time.monotonic() - started > args.duration or bool(args.stop_file and args.stop_file.exists())

    while not stopping():
        ids = [f"{args.prefix}-{number + i}" for i in range(args.batch)]
        number += args.batch
        spans = trace_spans(ids)
        while not stopping():
            os.write(attempts_log, "".join(f"{i}\n" for i in ids).encode())
            begin = time.monotonic()
            result = exporter.export(spans)
            if result == SpanExportResult.SUCCESS:
                os.write(acked_log, "".join(f"{i}\n" for i in ids).encode())
                acked += len(ids)
                latencies.append(time.monotonic() - begin)
                break
            failures += 1
            time.sleep(0.2)
        time.sleep(1.0 / args.rate)
    exporter.shutdown()
    latencies.sort()
    summary = {
        "acked": acked,
        "failedExports": failures,
        "seconds": round(time.monotonic() - started, 2),
        "p50ms": round(latencies[len(latencies) // 2] * 1000, 2) if latencies else None,
        "maxms": round(latencies[-1] * 1000, 2) if latencies else None,
    }
    (args.out / "summary.json").write_text(json.dumps(summary, sort_keys=True))
    print(json.dumps(summary, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
