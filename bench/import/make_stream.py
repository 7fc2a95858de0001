#!/usr/bin/env python3
"""Write a Collector file exporter `format: proto` trace stream of a given size.

    make_stream.py OUT SIZE_BYTES [--distinct 128] [--body-size 262144] [--seed 15]

The stream is repeated `[4-byte big-endian length][ExportTraceServiceRequest]`, the layout of the
Collector's file exporter with `format: proto`. The requests are made by the OpenTelemetry SDK's
protobuf encoder (bench/capture/make_bodies.py: SDK `ReadableSpan`s through
`encode_spans(...).SerializeToString()`): `--distinct` different bodies of about `--body-size`
bytes each, written in turn until SIZE_BYTES is reached. The distinct set (32 MiB by default) is
far larger than the 2 MiB window zstd level 3 uses, so neither side finds whole repeated
requests. Prints a JSON summary.
"""

from __future__ import annotations

import argparse
import json
import random
import struct
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "capture"))
from make_bodies import body_of  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("out", type=Path)
    parser.add_argument("size", type=int)
    parser.add_argument("--distinct", type=int, default=128)
    parser.add_argument("--body-size", type=int, default=256 << 10)
    parser.add_argument("--seed", type=int, default=15)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    now = 1_764_000_000_000_000_000
    bodies = [body_of(rng, args.body_size, now)[0] for _ in range(args.distinct)]
    framed = [struct.pack(">I", len(body)) + body for body in bodies]
    written = 0
    records = 0
    with open(args.out, "wb") as out:
        while written < args.size:
            chunk = framed[records % len(framed)]
            out.write(chunk)
            written += len(chunk)
            records += 1
    print(json.dumps({"path": str(args.out), "bytes": written, "records": records, "distinct": len(bodies)}))


if __name__ == "__main__":
    main()
