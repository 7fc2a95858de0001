"""OTLP receivers for the replay tests, started on 127.0.0.1 by the tests themselves.

They keep every request body exactly as received, so the tests can compare bytes with the bundle,
and decode with the official `opentelemetry-proto` messages (protobuf) or `json_format` (JSON),
an implementation independent of the Swift code under test.
"""

from __future__ import annotations

import dataclasses
import http.server
import socket
import threading
import time
from concurrent import futures

import grpc
from google.protobuf import json_format
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

import bundlelib as bl

PATH_SIGNALS = {"/v1/traces": "traces", "/v1/logs": "logs", "/v1/metrics": "metrics"}
GRPC_SERVICES = {
    "opentelemetry.proto.collector.trace.v1.TraceService": ("traces", trace_service_pb2.ExportTraceServiceResponse),
    "opentelemetry.proto.collector.logs.v1.LogsService": ("logs", logs_service_pb2.ExportLogsServiceResponse),
    "opentelemetry.proto.collector.metrics.v1.MetricsService": (
        "metrics",
        metrics_service_pb2.ExportMetricsServiceResponse,
    ),
}


@dataclasses.dataclass
class Received:
    signal: str
    content_type: str
    body: bytes

    def decoded(self):
        """The request as the official message, from protobuf or OTLP/JSON."""
        message = bl.REQUEST_TYPES[self.signal]()
        if self.content_type.startswith("application/json"):
            import json

            json_format.ParseDict(bl.hex_ids_to_base64(json.loads(self.body)), message)
        else:
            message.ParseFromString(self.body)
        return message


@dataclasses.dataclass
class Behaviour:
    """How a sink answers: the n-th request (from 0) can get a status, or the n-th request of one
    signal (`signal_statuses`, which replay's parallel streams cannot reorder); requests can be
    slowed."""

    statuses: dict[int, tuple[int, dict]] = dataclasses.field(default_factory=dict)
    signal_statuses: dict[str, dict[int, tuple]] = dataclasses.field(default_factory=dict)
    delay: float = 0.0

    def status_for(self, attempt: int, signal: str | None, signal_attempt: int):
        """The status the sink gives this attempt, `None` for success."""
        if attempt in self.statuses:
            return self.statuses[attempt]
        return self.signal_statuses.get(signal or "", {}).get(signal_attempt)


class HTTPSink:
    """OTLP/HTTP on http.server, HTTP/1.1 keep-alive, a thread per connection (replay sends
    several streams at once, each on its own connection, as real receivers serve them)."""

    def __init__(self, behaviour: Behaviour | None = None) -> None:
        self.behaviour = behaviour or Behaviour()
        self.received: list[Received] = []
        self.attempts = 0
        self.signal_attempts: dict[str, int] = {}
        self.connections = 0
        self.lock = threading.Lock()
        sink = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:  # quiet
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length)
                signal = PATH_SIGNALS.get(self.path)
                with sink.lock:
                    attempt = sink.attempts
                    sink.attempts += 1
                    signal_attempt = sink.signal_attempts.get(signal or "", 0)
                    sink.signal_attempts[signal or ""] = signal_attempt + 1
                if sink.behaviour.delay:
                    time.sleep(sink.behaviour.delay)
                status, headers = sink.behaviour.status_for(attempt, signal, signal_attempt) or (200, {})
                if status == 200 and signal is None:
                    status = 404
                if status == 200:
                    with sink.lock:
                        sink.received.append(Received(signal, self.headers.get("Content-Type", ""), body))
                reply = b"" if status == 200 else b"sink says no"
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

        class Server(http.server.ThreadingHTTPServer):
            daemon_threads = True

            def get_request(self):
                connection = super().get_request()
                with sink.lock:
                    sink.connections += 1
                return connection

        self.server = Server(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> "HTTPSink":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()


class GRPCSink:
    """OTLP/gRPC on grpcio: the three Export methods, raw bytes kept."""

    def __init__(self, behaviour: Behaviour | None = None) -> None:
        self.behaviour = behaviour or Behaviour()
        self.received: list[Received] = []
        self.attempts = 0
        self.signal_attempts: dict[str, int] = {}
        self.lock = threading.Lock()
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=1))
        handlers = []
        for service, (signal, response_type) in GRPC_SERVICES.items():
            handlers.append(
                grpc.method_handlers_generic_handler(
                    service,
                    {
                        "Export": grpc.unary_unary_rpc_method_handler(
                            self._handler(signal, response_type),
                            request_deserializer=None,
                            response_serializer=lambda message: message.SerializeToString(),
                        )
                    },
                )
            )
        self.server.add_generic_rpc_handlers(handlers)
        self.port = self.server.add_insecure_port("127.0.0.1:0")

    def _handler(self, signal: str, response_type):
        def export(request: bytes, context):
            with self.lock:
                attempt = self.attempts
                self.attempts += 1
                signal_attempt = self.signal_attempts.get(signal, 0)
                self.signal_attempts[signal] = signal_attempt + 1
            if self.behaviour.delay:
                time.sleep(self.behaviour.delay)
            code = self.behaviour.status_for(attempt, signal, signal_attempt)
            if code is not None:
                context.abort(code[0], "sink says no")
            with self.lock:
                self.received.append(Received(signal, "application/grpc", bytes(request)))
            return response_type()

        return export

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> "GRPCSink":
        self.server.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.stop(grace=None)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def bundle_streams(bundle: bl.Bundle) -> dict[tuple[str, str, str], list[bl.Record]]:
    """(node, signal, tenant) → records in sequence order."""
    streams: dict[tuple[str, str, str], list[bl.Record]] = {}
    blobs = sorted(bundle.manifest["blobs"], key=lambda b: (b["node"], b["signal"], b["tenant"], int(b["firstSeq"])))
    for blob in blobs:
        key = (blob["node"], blob["signal"], blob["tenant"])
        streams.setdefault(key, []).extend(bundle.segments[blob["path"]].records)
    return streams
