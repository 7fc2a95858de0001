#!/usr/bin/env python3
"""OTLP/HTTP load client that logs every acknowledged request id.

    load_client.py --url http://127.0.0.1:PORT --out DIR [--threads 4] [--prefix P] [--tenant T]
                   [--duration S] [--stop-file F] [--max-per-thread N] [--pad-bytes B] [--rate R]

Each thread posts `ExportTraceServiceRequest`s made by the OpenTelemetry SDK's protobuf encoder
(clients/otlp_requests.py) to /v1/traces over a keep-alive urllib3 connection. Every request
carries one span whose name and `req.id` attribute are a unique id `<prefix>-<thread>-<n>`.

* Before each attempt the id is appended to DIR/attempts.log; after a 200 it is appended to
  DIR/acked.log. Lines are written with os.write on O_APPEND descriptors, so they reach the kernel
  at once and survive anything but a machine crash.
* Connection errors (the server was killed) and 429/503 (backpressure) are retried with the SAME
  id, after `Retry-After` (capped at --max-backoff) or a short pause: a request whose ack was lost
  may therefore be stored more than once, which is allowed; an acked id must be stored.
* Any other status is a failure for that id, counted, and the thread moves on.

It stops after --duration seconds, when --stop-file appears, or after --max-per-thread ids per
thread, and prints a JSON summary (also written to DIR/summary.json).
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

import urllib3

sys.path.insert(0, str(Path(__file__).resolve().parent))
from otlp_requests import trace_request  # noqa: E402


class Shared:
    def __init__(self, out: Path) -> None:
        flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND
        self.acked = os.open(out / "acked.log", flags, 0o644)
        self.attempts = os.open(out / "attempts.log", flags, 0o644)
        self.lock = threading.Lock()
        self.statuses: collections.Counter = collections.Counter()
        self.missing_retry_after = 0
        self.connection_errors = 0
        self.failures: list[str] = []
        self.latencies: list[float] = []

    def count(self, key) -> None:
        with self.lock:
            self.statuses[str(key)] += 1


def worker(index: int, args, shared: Shared, stop: threading.Event) -> None:
    host, port = args.url.removeprefix("http://").rstrip("/").split(":")
    pool = urllib3.HTTPConnectionPool(host, int(port), maxsize=1, retries=False,
                                      timeout=urllib3.Timeout(connect=2, read=args.read_timeout))
    headers = {"Content-Type": "application/x-protobuf", "X-Scope-OrgID": args.tenant}
    interval = args.threads / args.rate if args.rate else 0.0
    sent = 0
    while not stop.is_set() and (args.max_per_thread == 0 or sent < args.max_per_thread):
        request_id = f"{args.prefix}-{index}-{sent}"
        body = trace_request([request_id], args.pad_bytes)
        while not stop.is_set():
            os.write(shared.attempts, f"{request_id}\n".encode())
            started = time.monotonic()
            try:
                response = pool.urlopen("POST", "/v1/traces", body=body, headers=headers, preload_content=True)
            except urllib3.exceptions.HTTPError as error:
                # Server killed or restarting: retry the same id on a new connection.
                with shared.lock:
                    shared.connection_errors += 1
                shared.count(type(error).__name__)
                time.sleep(args.reconnect_pause)
                continue
            status = response.status
            shared.count(status)
            if status == 200:
                os.write(shared.acked, f"{request_id}\n".encode())
                with shared.lock:
                    shared.latencies.append(time.monotonic() - started)
                break
            if status in (429, 503):
                retry_after = response.headers.get("Retry-After")
                if retry_after is None:
                    with shared.lock:
                        shared.missing_retry_after += 1
                    pause = args.max_backoff
                else:
                    try:
                        pause = min(float(retry_after), args.max_backoff)
                    except ValueError:
                        pause = args.max_backoff
                stop.wait(pause)
                continue
            with shared.lock:
                shared.failures.append(f"{request_id}: HTTP {status} {response.data[:200]!r}")
            break
        sent += 1
        if interval:
            stop.wait(interval)
    pool.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--prefix", default="req")
    parser.add_argument("--tenant", default="default")
    parser.add_argument("--duration", type=float, default=30)
    parser.add_argument("--stop-file", type=Path)
    parser.add_argument("--max-per-thread", type=int, default=0, help="0: no limit")
    parser.add_argument("--pad-bytes", type=int, default=0)
    parser.add_argument("--rate", type=float, default=0, help="requests/s over all threads; 0: as fast as acked")
    parser.add_argument("--max-backoff", type=float, default=0.2)
    parser.add_argument("--reconnect-pause", type=float, default=0.02)
    parser.add_argument("--read-timeout", type=float, default=15)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)

    shared = Shared(args.out)
    stop = threading.Event()
    threads = [threading.Thread(target=worker, args=(i, args, shared, stop), daemon=True) for i in range(args.threads)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    while any(thread.is_alive() for thread in threads):
        if time.monotonic() - started > args.duration or (args.stop_file and args.stop_file.exists()):
            stop.set()
        time.sleep(0.05)
    for thread in threads:
        thread.join()

    latencies = sorted(shared.latencies)
    summary = {
        "acked": len(latencies),
        "statuses": dict(shared.statuses),
        "connectionErrors": shared.connection_errors,
        "missingRetryAfter": shared.missing_retry_after,
        "failures": shared.failures[:20],
        "failureCount": len(shared.failures),
        "seconds": round(time.monotonic() - started, 2),
        "p50ms": round(latencies[len(latencies) // 2] * 1000, 2) if latencies else None,
        "p99ms": round(latencies[int(len(latencies) * 0.99)] * 1000, 2) if latencies else None,
    }
    (args.out / "summary.json").write_text(json.dumps(summary, sort_keys=True))
    print(json.dumps(summary, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
