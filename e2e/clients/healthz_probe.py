#!/usr/bin/env python3
"""Measure `GET /healthz` latency on capture's admin port while an attack runs.

    healthz_probe.py --port PORT --out FILE --stop-file F [--interval 0.2] [--timeout 5] [--duration 300]

Every --interval seconds it opens a fresh TCP connection to 127.0.0.1:PORT, sends
`GET /healthz`, and reads the whole answer; one JSON line per probe goes to FILE:
`{"t": <seconds since start>, "latency": <seconds>, "status": <int or null>, "error": <str or null>}`.
A probe that does not finish within --timeout is written with latency = the time it took and an
error. It runs in its own process so that the test's own work (thousands of sockets, gRPC
threads) cannot make capture look slow through the GIL.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys
import time
from pathlib import Path


def probe(port: int, timeout: float) -> tuple[int | None, str | None]:
    deadline = time.monotonic() + timeout
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        data = b""
        while True:
            sock.settimeout(max(0.001, deadline - time.monotonic()))
            chunk = sock.recv(4096)
            if not chunk:
                break
            data += chunk
            if b"\r\n\r\n" in data:
                head, _, body = data.partition(b"\r\n\r\n")
                length = None
                for line in head.split(b"\r\n")[1:]:
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value.strip())
                if length is not None and len(body) >= length:
                    break
    if not data.startswith(b"HTTP/1."):
        return None, f"no HTTP answer: {data[:80]!r}"
    return int(data.split(b" ", 2)[1]), None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--stop-file", type=Path, required=True)
    parser.add_argument("--interval", type=float, default=0.2)
    parser.add_argument("--timeout", type=float, default=5.0)
    parser.add_argument("--duration", type=float, default=300.0)
    args = parser.parse_args()
    out = os.open(args.out, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    started = time.monotonic()
    while not args.stop_file.exists() and time.monotonic() - started < args.duration:
        begin = time.monotonic()
        status, error = None, None
        try:
            status, error = probe(args.port, args.timeout)
        except OSError as failure:
            error = repr(failure)
        latency = time.monotonic() - begin
        line = {"t": round(begin - started, 3), "latency": round(latency, 6), "status": status, "error": error}
        os.write(out, (json.dumps(line) + "\n").encode())
        time.sleep(max(0.0, args.interval - latency))
    os.close(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
