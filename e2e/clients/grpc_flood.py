#!/usr/bin/env python3
"""An OTLP/gRPC flood of large Export calls (an adversary: no backoff, retries at once).

    grpc_flood.py --endpoint 127.0.0.1:PORT --stop-file F [--calls 48] [--size-mib 12]
                  [--duration 30] [--tenant flood] [--out FILE]

--calls threads, each with its own grpcio channel (its own TCP connection: a local subchannel
pool) and max_send_message_length raised, send the same valid ~--size-mib MiB
`ExportLogsServiceRequest` (12 log records with ~1 MiB string bodies, built with the official
`opentelemetry-proto` messages) as raw bytes to `LogsService/Export`, over and over until
--duration or the stop file, counting the status codes. Prints (and writes to --out) a JSON
summary: calls made, codes, bytes acknowledged.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import sys
import threading
import time
from pathlib import Path

import grpc
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
from opentelemetry.proto.common.v1 import common_pb2
from opentelemetry.proto.logs.v1 import logs_pb2
from opentelemetry.proto.resource.v1 import resource_pb2

METHOD = "/opentelemetry.proto.collector.logs.v1.LogsService/Export"


def big_request(size: int) -> bytes:
    records = max(1, size // (1024 * 1024))
    chunk = os.urandom(size // records // 2).hex()  # hex: valid UTF-8, compresses ~2x
    now = time.time_ns()
    request = logs_service_pb2.ExportLogsServiceRequest(resource_logs=[
        logs_pb2.ResourceLogs(
            resource=resource_pb2.Resource(attributes=[
                common_pb2.KeyValue(key="service.name", value=common_pb2.AnyValue(string_value="flood"))]),
            scope_logs=[logs_pb2.ScopeLogs(log_records=[
                logs_pb2.LogRecord(time_unix_nano=now, observed_time_unix_nano=now, severity_number=9,
                                   body=common_pb2.AnyValue(string_value=chunk))
                for _ in range(records)
            ])],
        )
    ])
    return request.SerializeToString()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--endpoint", required=True)
    parser.add_argument("--stop-file", type=Path, required=True)
    parser.add_argument("--calls", type=int, default=48)
    parser.add_argument("--size-mib", type=float, default=12)
    parser.add_argument("--duration", type=float, default=30)
    parser.add_argument("--tenant", default="flood")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()

    body = big_request(int(args.size_mib * 1024 * 1024))
    lock = threading.Lock()
    codes: collections.Counter = collections.Counter()
    details: dict[str, str] = {}
    acked_bytes = 0
    started = time.monotonic()
    stop = threading.Event()

    def worker(index: int) -> None:
        nonlocal acked_bytes
        options = [("grpc.max_send_message_length", 64 * 1024 * 1024),
                   ("grpc.max_receive_message_length", 64 * 1024 * 1024),
                   ("grpc.use_local_subchannel_pool", 1),
                   ("grpc.enable_retries", 0),
                   ("e2e.flood.channel", index)]
        with grpc.insecure_channel(args.endpoint, options=options) as channel:
            call = channel.unary_unary(METHOD, request_serializer=None, response_deserializer=None)
            while not stop.is_set():
                try:
                    call(body, timeout=30, metadata=(("x-scope-orgid", args.tenant),))
                    code = "OK"
                    with lock:
                        acked_bytes += len(body)
                except grpc.RpcError as error:
                    code = error.code().name
                    with lock:
                        details.setdefault(code, str(error.details())[:200])
                    if code not in ("RESOURCE_EXHAUSTED",):
                        time.sleep(0.05)  # connection refused or reset: do not spin on it
                with lock:
                    codes[code] += 1

    threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(args.calls)]
    for thread in threads:
        thread.start()
    while time.monotonic() - started < args.duration and not args.stop_file.exists():
        time.sleep(0.05)
    stop.set()
    for thread in threads:
        thread.join(40)
    summary = {"calls": sum(codes.values()), "codes": dict(codes), "details": details,
               "ackedBytes": acked_bytes, "requestBytes": len(body),
               "seconds": round(time.monotonic() - started, 2)}
    text = json.dumps(summary, sort_keys=True)
    if args.out:
        args.out.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
