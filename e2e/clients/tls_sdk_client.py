"""Sends spans one export at a time with the OpenTelemetry SDK's real OTLP exporter over TLS/mTLS.

Each span is named `<tag>-<n>` and exported alone with the HTTP/protobuf exporter (requests) or the
gRPC exporter (grpcio); the name of every span the exporter reports SUCCESS for is appended to
--ids (flushed at once), so a test knows exactly which records capture acknowledged. It sends
--count spans, or runs until --stop-file exists. At the end it prints {"ok": N, "failed": M}.

The OTLP/HTTP exporter lets REQUESTS_CA_BUNDLE override its certificate_file (requests' rule):
the test runs this script with REQUESTS_CA_BUNDLE and CURL_CA_BUNDLE unset.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time


def make_exporter(args):
    if args.protocol == "http":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        tls = {"certificate_file": args.ca}
        if args.cert:
            tls.update(client_certificate_file=args.cert, client_key_file=args.key)
        headers = {"X-Scope-OrgID": args.tenant} if args.tenant else {}
        return OTLPSpanExporter(endpoint=f"{args.endpoint}/v1/traces", headers=headers,
                                timeout=args.timeout, **tls)
    import grpc
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

    def read(path):
        with open(path, "rb") as handle:
            return handle.read()

    credentials = grpc.ssl_channel_credentials(
        read(args.ca), read(args.key) if args.key else None, read(args.cert) if args.cert else None)
    headers = {"x-scope-orgid": args.tenant} if args.tenant else {}
    return OTLPSpanExporter(endpoint=args.endpoint, insecure=False, credentials=credentials,
                            headers=headers, timeout=args.timeout)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--protocol", required=True, choices=["http", "grpc"])
    parser.add_argument("--endpoint", required=True, help="https://HOST:PORT for HTTP, HOST:PORT for gRPC")
    parser.add_argument("--ca", required=True)
    parser.add_argument("--cert")
    parser.add_argument("--key")
    parser.add_argument("--tenant", default="default", help="tenant header/metadata; empty: none sent")
    parser.add_argument("--tag", required=True)
    parser.add_argument("--count", type=int, default=0, help="spans to send (0: until --stop-file)")
    parser.add_argument("--stop-file")
    parser.add_argument("--interval", type=float, default=0.0)
    parser.add_argument("--timeout", type=float, default=10)
    parser.add_argument("--ids", required=True)
    args = parser.parse_args()

    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SpanExportResult

    tracer = TracerProvider(resource=Resource.create({"service.name": "tls-client"})).get_tracer("tls-client")
    exporter = make_exporter(args)
    ok = failed = 0
    index = 0
    with open(args.ids, "a", encoding="utf-8") as ids:
        while True:
            if args.count and index >= args.count:
                break
            if not args.count and args.stop_file and os.path.exists(args.stop_file):
                break
            name = f"{args.tag}-{index}"
            span = tracer.start_span(name)
            span.end()
            if exporter.export([span]) == SpanExportResult.SUCCESS:
                ok += 1
                ids.write(name + "\n")
                ids.flush()
            else:
                failed += 1
            index += 1
            if args.interval:
                time.sleep(args.interval)
    exporter.shutdown()
    print(json.dumps({"ok": ok, "failed": failed}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
