"""Synthetic but realistic OTLP traffic for replay tests and the replay benchmark.

Writes a Collector file-exporter `format: proto` stream (4-byte big-endian length + serialized
Export…ServiceRequest), which `stella-forensics import` reads. Requests rotate through traces,
logs and metrics (gauge, monotonic cumulative sum, cumulative histogram), with random ids and
values from a seeded generator, so the same arguments give the same file.

    python3 e2e/replay_data.py OUT.pb --requests 300 --items 50 [--seed 1] [--base-time NANOS]
"""

from __future__ import annotations

import argparse
import random
from pathlib import Path

from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from opentelemetry.proto.common.v1 import common_pb2
from opentelemetry.proto.logs.v1 import logs_pb2
from opentelemetry.proto.metrics.v1 import metrics_pb2
from opentelemetry.proto.resource.v1 import resource_pb2
from opentelemetry.proto.trace.v1 import trace_pb2

SIGNALS = ("traces", "logs", "metrics")
WORDS = "checkout payment cart user order stock invoice shipping search login refund coupon".split()


def _kv(key: str, value) -> common_pb2.KeyValue:
    if isinstance(value, bool):
        return common_pb2.KeyValue(key=key, value=common_pb2.AnyValue(bool_value=value))
    if isinstance(value, int):
        return common_pb2.KeyValue(key=key, value=common_pb2.AnyValue(int_value=value))
    return common_pb2.KeyValue(key=key, value=common_pb2.AnyValue(string_value=str(value)))


def _resource(index: int) -> resource_pb2.Resource:
    return resource_pb2.Resource(
        attributes=[_kv("service.name", "shop"), _kv("service.instance.id", f"shop-{index % 3}")]
    )


def traces_request(rng: random.Random, items: int, now: int, index: int) -> bytes:
    spans = []
    trace_id = rng.randbytes(16)
    parent = b""
    for number in range(items):
        start = now + number * 1_000_000 + rng.randrange(1_000_000)
        span_id = rng.randbytes(8)
        spans.append(
            trace_pb2.Span(
                trace_id=trace_id,
                span_id=span_id,
                parent_span_id=parent,
                name=f"{rng.choice(WORDS)}.{rng.choice(WORDS)}",
                kind=rng.randrange(1, 6),
                start_time_unix_nano=start,
                end_time_unix_nano=start + rng.randrange(1_000, 50_000_000),
                attributes=[_kv("http.route", "/" + rng.choice(WORDS)), _kv("user.id", rng.randrange(10**6))],
                events=[trace_pb2.Span.Event(time_unix_nano=start + 500, name="cache.miss")] if number % 4 == 0 else [],
                status=trace_pb2.Status(code=2, message="declined") if rng.random() < 0.05 else None,
            )
        )
        parent = span_id if number % 3 == 0 else parent
    request = trace_service_pb2.ExportTraceServiceRequest(
        resource_spans=[
            trace_pb2.ResourceSpans(
                resource=_resource(index),
                scope_spans=[trace_pb2.ScopeSpans(scope=common_pb2.InstrumentationScope(name="shop"), spans=spans)],
            )
        ]
    )
    return request.SerializeToString(deterministic=True)


def logs_request(rng: random.Random, items: int, now: int, index: int) -> bytes:
    records = [
        logs_pb2.LogRecord(
            time_unix_nano=now + number * 1_000_000,
            observed_time_unix_nano=now + number * 1_000_000 + 1_000,
            severity_number=rng.choice((9, 13, 17)),
            severity_text=rng.choice(("INFO", "WARN", "ERROR")),
            body=common_pb2.AnyValue(
                string_value=f"{rng.choice(WORDS)} {rng.choice(WORDS)} took {rng.randrange(2000)} ms for order {rng.randrange(10**8)}"
            ),
            attributes=[_kv("code.lineno", rng.randrange(500))],
            trace_id=rng.randbytes(16),
            span_id=rng.randbytes(8),
        )
        for number in range(items)
    ]
    request = logs_service_pb2.ExportLogsServiceRequest(
        resource_logs=[
            logs_pb2.ResourceLogs(
                resource=_resource(index),
                scope_logs=[logs_pb2.ScopeLogs(scope=common_pb2.InstrumentationScope(name="shop"), log_records=records)],
            )
        ]
    )
    return request.SerializeToString(deterministic=True)


def metrics_request(rng: random.Random, items: int, now: int, index: int, start: int) -> bytes:
    metrics = []
    points = max(1, items // 10)
    metrics.append(
        metrics_pb2.Metric(
            name="queue.depth",
            description="Items waiting",
            gauge=metrics_pb2.Gauge(
                data_points=[
                    metrics_pb2.NumberDataPoint(
                        time_unix_nano=now, as_double=rng.random() * 100, attributes=[_kv("queue", f"q{p}")]
                    )
                    for p in range(points)
                ]
            ),
        )
    )
    metrics.append(
        metrics_pb2.Metric(
            name="orders.placed",
            sum=metrics_pb2.Sum(
                aggregation_temporality=2,
                is_monotonic=True,
                data_points=[
                    metrics_pb2.NumberDataPoint(
                        start_time_unix_nano=start, time_unix_nano=now, as_int=index * 10 + p, attributes=[_kv("shop", f"s{p}")]
                    )
                    for p in range(points)
                ],
            ),
        )
    )
    counts = [rng.randrange(50) for _ in range(5)]
    metrics.append(
        metrics_pb2.Metric(
            name="http.server.duration",
            unit="ms",
            histogram=metrics_pb2.Histogram(
                aggregation_temporality=2,
                data_points=[
                    metrics_pb2.HistogramDataPoint(
                        start_time_unix_nano=start,
                        time_unix_nano=now,
                        count=sum(counts),
                        sum=float(sum(counts) * 7),
                        bucket_counts=counts,
                        explicit_bounds=[5.0, 10.0, 50.0, 100.0],
                    )
                ],
            ),
        )
    )
    request = metrics_service_pb2.ExportMetricsServiceRequest(
        resource_metrics=[
            metrics_pb2.ResourceMetrics(
                resource=_resource(0),
                scope_metrics=[metrics_pb2.ScopeMetrics(scope=common_pb2.InstrumentationScope(name="shop"), metrics=metrics)],
            )
        ]
    )
    return request.SerializeToString(deterministic=True)


def write_stream(path: Path, requests: int, items: int, seed: int = 1, base_time: int = 1_700_000_000_000_000_000) -> dict:
    """Writes `requests` requests (traces, logs, metrics in turn); returns counts per signal."""
    rng = random.Random(seed)
    counts = {signal: 0 for signal in SIGNALS}
    with path.open("wb") as out:
        for index in range(requests):
            signal = SIGNALS[index % 3]
            now = base_time + index * 10_000_000_000
            if signal == "traces":
                body = traces_request(rng, items, now, index)
            elif signal == "logs":
                body = logs_request(rng, items, now, index)
            else:
                body = metrics_request(rng, items, now, counts["metrics"] + 1, base_time)
            counts[signal] += 1
            out.write(len(body).to_bytes(4, "big") + body)
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--items", type=int, default=50)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--base-time", type=int, default=1_700_000_000_000_000_000)
    args = parser.parse_args()
    counts = write_stream(args.out, args.requests, args.items, args.seed, args.base_time)
    print(" ".join(f"{signal}={count}" for signal, count in counts.items()))


if __name__ == "__main__":
    main()
