#!/usr/bin/env python3
"""Send traces, logs and metrics to an OTLP endpoint with a real OpenTelemetry Python SDK exporter.

    sdk_client.py --protocol http-proto|http-json|grpc --endpoint URL_OR_HOST:PORT
                  [--tenant T] [--tag TAG] [--spans N] [--logs N] [--batch N]

The program is instrumented the ordinary way (TracerProvider, LoggerProvider, MeterProvider with
batch processors and a periodic metric reader); only the exporter changes with --protocol:

  http-proto  opentelemetry-exporter-otlp-proto-http  (HTTP, application/x-protobuf, gzip)
  http-json   opentelemetry-exporter-otlp-json-http   (HTTP, application/json)
  grpc        opentelemetry-exporter-otlp-proto-grpc  (gRPC, insecure)

Each exporter is wrapped so that what it *successfully* exported is tallied from the SDK's own
objects (span ids, log bodies, metric data points per metric). On exit the tally is printed as one
JSON object on stdout; the exit code is 1 if any export failed, so the caller knows the tally is
the whole story. The tenant goes in `X-Scope-OrgID` (gRPC metadata `x-scope-orgid`).
"""

from __future__ import annotations

import argparse
import json
import math
import sys

from opentelemetry._logs import SeverityNumber
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor, LogRecordExportResult
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import MetricExportResult, PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExportResult
from opentelemetry.trace import SpanKind


class Tally:
    """What the exporters reported as exported, counted from the SDK objects they were given."""

    def __init__(self) -> None:
        self.requests = {"traces": 0, "logs": 0, "metrics": 0}
        self.failed = {"traces": 0, "logs": 0, "metrics": 0}
        self.span_ids: list[str] = []
        self.log_bodies: list[str] = []
        self.data_points: dict[str, int] = {}

    def as_dict(self) -> dict:
        return {
            "requests": self.requests,
            "failed": self.failed,
            "spanIds": sorted(self.span_ids),
            "logBodies": sorted(self.log_bodies),
            "dataPoints": self.data_points,
        }


TALLY = Tally()


def counting(exporter_class, signal: str):
    """A subclass of the real exporter that tallies each batch the exporter says it delivered."""

    class Counting(exporter_class):
        def export(self, batch, *args, **kwargs):
            result = super().export(batch, *args, **kwargs)
            ok = result in (SpanExportResult.SUCCESS, LogRecordExportResult.SUCCESS, MetricExportResult.SUCCESS)
            if not ok:
                TALLY.failed[signal] += 1
                return result
            if signal == "traces" and batch:
                TALLY.requests["traces"] += 1
                TALLY.span_ids += [format(span.context.span_id, "016x") for span in batch]
            elif signal == "logs" and batch:
                TALLY.requests["logs"] += 1
                TALLY.log_bodies += [readable.log_record.body for readable in batch]
            elif signal == "metrics" and batch.resource_metrics:
                TALLY.requests["metrics"] += 1
                for rm in batch.resource_metrics:
                    for sm in rm.scope_metrics:
                        for metric in sm.metrics:
                            TALLY.data_points[metric.name] = TALLY.data_points.get(metric.name, 0) + len(
                                metric.data.data_points
                            )
            return result

    Counting.__name__ = f"Counting{exporter_class.__name__}"
    return Counting


def exporters(protocol: str, endpoint: str, tenant: str):
    """(span, log, metric) exporter instances of the requested real exporter package."""
    if protocol == "http-proto":
        from opentelemetry.exporter.otlp.proto.http import Compression
        from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        common = {"headers": {"X-Scope-OrgID": tenant}, "compression": Compression.Gzip, "timeout": 10}
        base = endpoint.rstrip("/")
        return (
            counting(OTLPSpanExporter, "traces")(endpoint=f"{base}/v1/traces", **common),
            counting(OTLPLogExporter, "logs")(endpoint=f"{base}/v1/logs", **common),
            counting(OTLPMetricExporter, "metrics")(endpoint=f"{base}/v1/metrics", **common),
        )
    if protocol == "http-json":
        from opentelemetry.exporter.otlp.json.http import OTLPMetricExporter, OTLPSpanExporter
        from opentelemetry.exporter.otlp.json.http._log_exporter import OTLPLogExporter

        common = {"headers": {"X-Scope-OrgID": tenant}, "timeout": 10}
        base = endpoint.rstrip("/")
        return (
            counting(OTLPSpanExporter, "traces")(endpoint=f"{base}/v1/traces", **common),
            counting(OTLPLogExporter, "logs")(endpoint=f"{base}/v1/logs", **common),
            counting(OTLPMetricExporter, "metrics")(endpoint=f"{base}/v1/metrics", **common),
        )
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter
        from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        # gRPC metadata keys must be lowercase.
        common = {"endpoint": endpoint, "insecure": True, "headers": {"x-scope-orgid": tenant}, "timeout": 10}
        return (
            counting(OTLPSpanExporter, "traces")(**common),
            counting(OTLPLogExporter, "logs")(**common),
            counting(OTLPMetricExporter, "metrics")(**common),
        )
    raise SystemExit(f"unknown protocol {protocol!r}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--protocol", required=True, choices=["http-proto", "http-json", "grpc"])
    parser.add_argument("--endpoint", required=True, help="http://HOST:PORT for HTTP, HOST:PORT for gRPC")
    parser.add_argument("--tenant", default="default")
    parser.add_argument("--tag", default="", help="put in span names and log bodies to tell runs apart")
    parser.add_argument("--spans", type=int, default=40)
    parser.add_argument("--logs", type=int, default=30)
    parser.add_argument("--batch", type=int, default=16, help="max export batch size (so several requests)")
    args = parser.parse_args()
    tag = args.tag or args.protocol

    span_exporter, log_exporter, metric_exporter = exporters(args.protocol, args.endpoint, args.tenant)
    resource = Resource({"service.name": f"e2e-{tag}", "service.instance.id": tag})

    tracer_provider = TracerProvider(resource=resource)
    # A long delay: batches leave only when full or on force_flush, so the request count is stable.
    tracer_provider.add_span_processor(
        BatchSpanProcessor(span_exporter, schedule_delay_millis=60_000, max_export_batch_size=args.batch)
    )
    logger_provider = LoggerProvider(resource=resource)
    logger_provider.add_log_record_processor(
        BatchLogRecordProcessor(log_exporter, schedule_delay_millis=60_000, max_export_batch_size=args.batch)
    )
    # Infinite interval: no background collection; one collection on force_flush, one on shutdown.
    reader = PeriodicExportingMetricReader(metric_exporter, export_interval_millis=math.inf)
    meter_provider = MeterProvider(resource=resource, metric_readers=[reader])

    tracer = tracer_provider.get_tracer("e2e.client", "1.0")
    logger = logger_provider.get_logger("e2e.client", "1.0")
    meter = meter_provider.get_meter("e2e.client", "1.0")
    requests_counter = meter.create_counter("e2e.requests", unit="{request}")
    latency = meter.create_histogram("e2e.latency", unit="ms")

    for index in range(args.spans):
        kind = SpanKind.SERVER if index % 2 == 0 else SpanKind.CLIENT
        with tracer.start_as_current_span(f"{tag} op {index}", kind=kind, attributes={"e2e.index": index}):
            with tracer.start_as_current_span(f"{tag} child {index}"):
                pass
        requests_counter.add(1, {"route": f"/r{index % 3}"})
        latency.record(index * 1.5, {"route": f"/r{index % 3}"})
    for index in range(args.logs):
        logger.emit(
            severity_number=SeverityNumber.INFO,
            severity_text="INFO",
            body=f"{tag} log line {index}",
            attributes={"e2e.index": index},
        )

    ok = tracer_provider.force_flush(30_000) and logger_provider.force_flush(30_000)
    ok = meter_provider.force_flush(30_000) and ok
    # shutdown: the metric reader collects and exports once more (cumulative points again).
    tracer_provider.shutdown()
    logger_provider.shutdown()
    meter_provider.shutdown()

    json.dump(TALLY.as_dict(), sys.stdout, sort_keys=True)
    sys.stdout.write("\n")
    failed = any(TALLY.failed.values()) or not ok
    if failed:
        print(f"sdk_client: some exports failed: {TALLY.failed} (flush ok: {ok})", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
