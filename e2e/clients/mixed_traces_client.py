#!/usr/bin/env python3
"""A steady OpenTelemetry SDK application: one trace every INTERVAL seconds, every fifth with an
error status, exported by the SDK's HTTP/protobuf exporter (SimpleSpanProcessor: each span is
exported, and acknowledged, before the next trace starts).

    mixed_traces_client.py URL LOG_FILE [--interval 0.05] [--stop-file F]

For every trace it appends one JSON line to LOG_FILE after the export was acknowledged:
{"trace_id": hex, "error": bool, "sent_ns": before the first export, "acked_ns": after the last}.
"""

import argparse
import json
import os
import time
from pathlib import Path

from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.trace import Status, StatusCode

parser = argparse.ArgumentParser()
parser.add_argument("url")
parser.add_argument("log")
parser.add_argument("--interval", type=float, default=0.05)
parser.add_argument("--stop-file")
args = parser.parse_args()

class RecordingExporter(OTLPSpanExporter):
    """The SDK's exporter, remembering whether every export of the current trace succeeded."""

    failures = 0

    def export(self, spans):
        result = super().export(spans)
        if result != SpanExportResult.SUCCESS:
            RecordingExporter.failures += 1
        return result


provider = TracerProvider(resource=Resource.create({"service.name": "checkout"}))
provider.add_span_processor(SimpleSpanProcessor(RecordingExporter(endpoint=f"{args.url}/v1/traces", timeout=10)))
tracer = provider.get_tracer("mixed")
log = os.open(args.log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
index = 0
while not (args.stop_file and Path(args.stop_file).exists()):
    error = index % 5 == 4
    failures_before = RecordingExporter.failures
    sent = time.time_ns()
    with tracer.start_as_current_span(f"order {index}") as root:
        with tracer.start_as_current_span("charge") as child:
            if error:
                child.set_status(Status(StatusCode.ERROR, "card declined"))
        if error:
            root.set_status(Status(StatusCode.ERROR, "checkout failed"))
    line = {
        "trace_id": format(root.get_span_context().trace_id, "032x"),
        "error": error,
        "sent_ns": sent,
        "acked_ns": time.time_ns(),
        "acked": RecordingExporter.failures == failures_before,
    }
    os.write(log, (json.dumps(line) + "\n").encode())
    index += 1
    time.sleep(args.interval)
provider.shutdown()
