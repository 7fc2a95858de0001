#!/usr/bin/env python3
"""A real OpenTelemetry SDK application for the demo: it exports traces, logs and metrics to a
running `stella-forensics capture` with the SDK's own OTLP exporters (HTTP/protobuf for all three
signals, gRPC for a second batch of traces) and prints what it sent, as JSON on one line.

Usage: demo_client.py HTTP_BASE_URL GRPC_HOST:PORT
"""

import json
import sys

from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GRPCSpanExporter
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

http_base, grpc_address = sys.argv[1], sys.argv[2]
resource = Resource.create({"service.name": "checkout", "deployment.environment": "demo"})
sent = {"spans": [], "logs": [], "metric_points": 0}

for exporter in (
    OTLPSpanExporter(endpoint=f"{http_base}/v1/traces"),
    GRPCSpanExporter(endpoint=grpc_address, insecure=True),
):
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("demo")
    for order in range(5):
        with tracer.start_as_current_span(f"checkout order {order}") as parent:
            with tracer.start_as_current_span("charge card") as child:
                child.set_attribute("order.id", order)
        for span in (parent, child):
            sent["spans"].append(format(span.get_span_context().span_id, "016x"))
    provider.shutdown()

log_provider = LoggerProvider(resource=resource)
log_provider.add_log_record_processor(SimpleLogRecordProcessor(OTLPLogExporter(endpoint=f"{http_base}/v1/logs")))
otel_logger = log_provider.get_logger("demo")
from opentelemetry._logs import LogRecord, SeverityNumber  # noqa: E402

for index in range(4):
    body = f"payment declined for order {index}"
    otel_logger.emit(LogRecord(body=body, severity_number=SeverityNumber.WARN, severity_text="WARN"))
    sent["logs"].append(body)
log_provider.shutdown()

reader = InMemoryMetricReader()
meter_provider = MeterProvider(resource=resource, metric_readers=[reader])
counter = meter_provider.get_meter("demo").create_counter("orders_total")
for index in range(3):
    counter.add(1, {"outcome": "declined" if index % 2 else "ok"})
data = reader.get_metrics_data()
sent["metric_points"] = sum(
    len(metric.data.data_points)
    for resource_metrics in data.resource_metrics
    for scope_metrics in resource_metrics.scope_metrics
    for metric in scope_metrics.metrics
)
result = OTLPMetricExporter(endpoint=f"{http_base}/v1/metrics").export(data)
if result.name != "SUCCESS":
    sys.exit(f"metric export failed: {result}")
meter_provider.shutdown()
print(json.dumps(sent))
