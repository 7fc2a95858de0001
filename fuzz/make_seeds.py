#!/usr/bin/env python3
"""Builds the seed corpora for the fuzz targets into a work directory (not into the repo).

    python3 fuzz/make_seeds.py --repo . --work /tmp/stella-fuzz --cli .build/debug/stella-forensics

Writes WORK/seeds/<Target>/ for the four targets and WORK/keys/fuzz.key, the fixed fuzz key
(the same PEM as FuzzKeys.privateKeyPEM in Sources/FuzzSupport). Seeds:

* FuzzBundleVerify: bundles imported with the fuzz key from every fixtures/otlp file (so they
  verify under the harness's trust set), fixtures/bundle/*.sfb.tar and fixtures/tampered/*.sfb.tar.
* FuzzBundleResigned: the same bundles with every zstd blob replaced by its decompressed segment
  (the harness recompresses, fixes digests and re-signs, so the fuzzer mutates segments directly).
* FuzzOTLPJSONLines: fixtures/otlp/*.jsonl whole and line by line.
* FuzzOTLPProtoStream: fixtures/otlp/*.pb and *.zst whole, and each protobuf record alone.
* FuzzOTLPHTTP: a read-size byte, then HTTP/1.1 requests carrying the fixtures: protobuf records
  posted to each signal's path, JSON lines to theirs, gzip, deflate, zstd, chunked, pipelined pairs,
  Expect: 100-continue, and refused ones (unknown path, GET, wrong Content-Type or encoding).
* FuzzOTLPRequestDecoder: a selector byte (signal, encoding), then each protobuf record and
  JSON line.
* FuzzOTLPWireDifferential: a selector byte (signal), then each protobuf record (as every
  signal), plus small hand-built requests reaching the reader's edge rules (groups, packed
  fields, padded varints and tags, deep AnyValue nesting, oneofs set twice, descending order).

Without --cli the bundle seeds are skipped (the two OTLP/HTTP targets need none).

Only the Python standard library and `zstandard` are used.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import os
import shutil
import subprocess
import sys
import tarfile
import zlib
from pathlib import Path

import zstandard

FUZZ_KEY_PEM = (
    "-----BEGIN PRIVATE KEY-----\n"
    "MC4CAQAwBQYDK2VwBCIEIEFCQ0RFRkdISUpLTE1OT1BRUlNUVVZXWFlaW1xdXl9g\n"
    "-----END PRIVATE KEY-----\n"
)
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"


def put(directory: Path, data: bytes) -> None:
    """Stores `data` under its SHA-1, as libFuzzer names corpus files (deduplicates)."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / hashlib.sha1(data).hexdigest()).write_bytes(data)


def import_bundles(cli: str, key: Path, otlp: Path, out: Path) -> list[Path]:
    """Imports each OTLP fixture (and some combinations) with the fuzz key."""
    inputs = sorted(p for p in otlp.iterdir() if p.suffix in {".jsonl", ".pb", ".zst"})
    runs: list[tuple[str, list[Path], list[str]]] = [(p.name, [p], []) for p in inputs]
    runs.append(("all-signals", [otlp / "traces.otlp.jsonl", otlp / "logs.otlp.jsonl",
                                 otlp / "metrics.otlp.jsonl"], ["--tenant", "acme:prod"]))
    runs.append(("twice", [otlp / "app.otlp.pb", otlp / "app.otlp.jsonl"],
                 ["--incident", "INC-FUZZ-1", "--reason", "fuzz seed"]))
    bundles = []
    for name, files, extra in runs:
        target = out / f"{name}.sfb.tar"
        command = [cli, "import", *map(str, files), "--key", str(key), "--out", str(target), *extra]
        result = subprocess.run(command, capture_output=True, text=True)
        if result.returncode != 0:
            sys.exit(f"make_seeds: {' '.join(command)} failed: {result.stderr.strip()}")
        bundles.append(target)
    return bundles


def raw_segment_bundle(bundle: bytes) -> bytes | None:
    """The bundle with each zstd blob replaced by its decompressed bytes (lenient ustar)."""
    try:
        source = tarfile.open(fileobj=io.BytesIO(bundle), mode="r:")
        members = [(m, source.extractfile(m)) for m in source.getmembers() if m.isfile()]
    except (tarfile.TarError, OSError, EOFError):
        return None
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.USTAR_FORMAT) as target:
        for member, handle in members:
            if handle is None:
                continue
            data = handle.read()
            if member.name.startswith("blobs/") and data.startswith(ZSTD_MAGIC):
                try:
                    data = zstandard.ZstdDecompressor().decompressobj().decompress(data)
                except zstandard.ZstdError:
                    pass  # keep the tampered blob as it is
            info = tarfile.TarInfo(member.name)
            info.size = len(data)
            target.addfile(info, io.BytesIO(data))
    return out.getvalue()


def proto_records(stream: bytes) -> list[bytes]:
    """Each length-prefixed record of a protobuf stream, still with its prefix."""
    records, offset = [], 0
    while offset + 4 <= len(stream):
        length = int.from_bytes(stream[offset:offset + 4], "big")
        records.append(stream[offset:offset + 4 + length])
        offset += 4 + length
    return records


SIGNALS = ("traces", "logs", "metrics")


def http_request(path: str, body: bytes, content_type: str | None = "application/x-protobuf",
                 headers: tuple[tuple[str, str], ...] = (), chunked: bool = False,
                 method: str = "POST") -> bytes:
    """One HTTP/1.1 request, with Content-Length or chunked in 700-byte chunks."""
    head = f"{method} {path} HTTP/1.1\r\nHost: localhost\r\n"
    if content_type is not None:
        head += f"Content-Type: {content_type}\r\n"
    for name, value in headers:
        head += f"{name}: {value}\r\n"
    if not chunked:
        return (head + f"Content-Length: {len(body)}\r\n\r\n").encode() + body
    out = (head + "Transfer-Encoding: chunked\r\n\r\n").encode()
    for start in range(0, len(body), 700):
        chunk = body[start:start + 700]
        out += f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n"
    return out + b"0\r\n\r\n"


def http_seeds(otlp: Path) -> list[bytes]:
    """Requests for FuzzOTLPHTTP, each prefixed with the read-size byte (0: one read)."""
    records = [r[4:] for r in proto_records((otlp / "app.otlp.pb").read_bytes())]
    lines = {s: [l for l in (otlp / f"{s}.otlp.jsonl").read_bytes().splitlines() if l.strip()]
             for s in SIGNALS}
    requests = []
    for record in records:
        for signal in SIGNALS:
            requests.append(http_request(f"/v1/{signal}", record))
    for signal, signal_lines in lines.items():
        for line in signal_lines:
            requests.append(http_request(f"/v1/{signal}", line, "application/json"))
    small = min(records, key=len)
    log_line = lines["logs"][-1]
    requests += [
        http_request("/v1/logs", gzip.compress(log_line, mtime=0), "application/json",
                     (("Content-Encoding", "gzip"),)),
        http_request("/v1/traces", zlib.compress(records[0]), headers=(("Content-Encoding", "deflate"),)),
        http_request("/v1/metrics", gzip.compress(records[-1], mtime=0),
                     headers=(("Content-Encoding", "gzip"),), chunked=True),
        http_request("/v1/logs", log_line, "application/json; charset=utf-8", chunked=True),
        http_request("/v1/traces", small, headers=(("Expect", "100-continue"), ("X-Scope-OrgID", "acme"))),
        http_request("/v1/traces", records[0]) + http_request("/v1/logs", log_line, "application/json"),
        http_request("/v1/traces", small, headers=(("Connection", "close"),)),
        http_request("/v2/traces", small),
        http_request("/v1/traces", b"", None, method="GET"),
        http_request("/v1/traces", small, "text/plain"),
        http_request("/v1/traces", small, headers=(("Content-Encoding", "br"),)),
        http_request("/v1/traces", gzip.compress(b"\0" * 100000, mtime=0),
                     headers=(("Content-Encoding", "gzip"),)),
        b"POST /v1/traces HTTP/1.1\r\nContent-Type: application/x-protobuf\r\n"
        b"Content-Length: 99999999\r\n\r\n",
        http_request("/v1/traces", zstandard.ZstdCompressor().compress(records[0]),
                     headers=(("Content-Encoding", "zstd"),)),
        # Two frames in one body, chunked, so frame and chunk boundaries both fall inside reads.
        http_request("/v1/logs", zstandard.ZstdCompressor().compress(log_line[:40])
                     + zstandard.ZstdCompressor().compress(log_line[40:]), "application/json",
                     (("Content-Encoding", "zstd"),), chunked=True),
        http_request("/v1/traces", zstandard.ZstdCompressor().compress(b"\0" * 100000),
                     headers=(("Content-Encoding", "zstd"),)),
    ]
    return [bytes([0]) + r for r in requests] + [bytes([7]) + r for r in requests[-17:]]


def decoder_seeds(otlp: Path) -> list[bytes]:
    """Bodies for FuzzOTLPRequestDecoder: selector byte (bits 0-1 signal, bit 2 JSON) + body."""
    seeds = []
    for record in proto_records((otlp / "app.otlp.pb").read_bytes()):
        for index in range(3):
            seeds.append(bytes([index]) + record[4:])
    for index, signal in enumerate(SIGNALS):
        for line in (otlp / f"{signal}.otlp.jsonl").read_bytes().splitlines():
            if line.strip():
                seeds.append(bytes([4 | index]) + line)
    return seeds + [bytes([4]) + b"{}", bytes([0])]


def _varint(value: int) -> bytes:
    out = bytearray()
    while value >= 0x80:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _ld(field: int, body: bytes) -> bytes:
    return _varint(field << 3 | 2) + _varint(len(body)) + body


def _fixed64(field: int, value: int) -> bytes:
    return _varint(field << 3 | 1) + value.to_bytes(8, "little")


def wire_differential_seeds(otlp: Path) -> list[bytes]:
    """Inputs for FuzzOTLPWireDifferential: selector byte (bits 0-1 signal) + request."""
    seeds = [bytes([index]) + record[4:]
             for record in proto_records((otlp / "app.otlp.pb").read_bytes()) for index in range(3)]

    def one_span(*fields: bytes) -> bytes:
        span = _ld(1, bytes(16)) + _fixed64(7, 5) + _fixed64(8, 9) + b"".join(fields)
        resource = _ld(1, _ld(1, _ld(1, b"service.name") + _ld(2, _ld(1, b"shop"))))
        return bytes([0]) + _ld(1, resource + _ld(2, _ld(1, _ld(1, b"lib")) + _ld(2, span)))

    nested = b""
    for _ in range(40):
        nested = _ld(5, _ld(1, nested))
    seeds += [
        one_span(_varint(20 << 3 | 3) + _varint(1 << 3) + b"\x01" + _varint(20 << 3 | 4)),  # group
        one_span(_ld(15, _varint(3 << 3) + b"\xff" * 9 + b"\x02")),  # 10-byte varint, Status
        one_span(b"\xaa\x80\x80\x80\x00\x01A"),  # name under a padded 5-byte tag
        one_span(_ld(9, _ld(1, b"k") + _ld(2, nested))),  # deep ArrayValue nesting
        one_span(_ld(9, _ld(1, b"k") + _ld(2, _ld(1, b"a") + _varint(3 << 3) + b"\x05"))),  # oneof twice
        one_span(_ld(5, "grüße".encode())),
        one_span(_ld(15, _varint(3 << 3) + b"\x02") + _ld(15, _ld(2, b"msg"))),
        bytes([0]) + _ld(1, _ld(2, _ld(2, _fixed64(8, 9) + _fixed64(7, 1)) + _ld(1, b"")) + _ld(1, b"")),
        bytes([1]) + _ld(1, _ld(2, _ld(2, _fixed64(11, 3) + _varint(2 << 3) + b"\x11" + _ld(9, bytes(16))))),
        bytes([2]) + _ld(1, _ld(2, _ld(2, _ld(9, _ld(1, _fixed64(3, 7) + _ld(6, bytes(16)) + _ld(7, bytes(8))))
                                       + _ld(10, _ld(1, _ld(8, _varint(1 << 3) + b"\x05" + _ld(2, b"\x01\x80\x02"))))
                                       + _ld(5, _ld(1, _fixed64(3, 1))) + _ld(7, _ld(1, _fixed64(3, 2)))))),
        bytes([0]),
    ]
    return seeds


def redactor_seeds(otlp: Path) -> list[bytes]:
    """Inputs for FuzzRedactor: selector byte (bits 0-1 signal) + protobuf request. The fixtures'
    records (as every signal), and small requests with secrets, blocked, hashed and non-allowed
    keys, kvlists, integers and unknown fields for the mutator to start from."""
    seeds = [seed for seed in wire_differential_seeds(otlp)]
    secrets = [b"ivan%40example.com", "mallory@ex\u00e4mple.com".encode(), b"4111.1111.1111.1111",
               b"Bearer abcdefgh12345678", b"eyJhbGciOi.eyJzdWIiOi.sig"]
    for secret in secrets:
        string = _ld(1, secret)
        kv_list = _ld(1, _ld(1, b"http." + secret) + _ld(2, string)) + _ld(1, _ld(1, b"other") + _ld(2, string))
        attributes = (_ld(9, _ld(1, b"note") + _ld(2, string)) + _ld(9, _ld(1, b"password") + _ld(2, string))
                      + _ld(9, _ld(1, b"user.email") + _ld(2, string)) + _ld(9, _ld(1, b"x." + secret) + _ld(2, string))
                      + _ld(9, _ld(1, b"message") + _ld(2, _ld(6, kv_list)))
                      + _ld(9, _ld(1, b"http.n") + _ld(2, _varint(3 << 3) + _varint(4111111111111111)))
                      + _ld(9, _ld(1, b"http.b") + _ld(2, _ld(7, secret))))
        span = (_ld(1, b"\x01" * 16) + _ld(2, b"\x02" * 8) + _ld(3, secret) + _ld(5, secret) + _fixed64(7, 1)
                + _fixed64(8, 2) + attributes + _ld(99, b"unknown") + _ld(15, _ld(2, secret)))
        seeds.append(bytes([0]) + _ld(1, _ld(2, _ld(1, _ld(1, secret)) + _ld(2, span)) + _ld(3, secret)))
        record = _fixed64(1, 1) + _ld(3, secret) + _ld(5, _ld(6, kv_list)) + _ld(12, secret)
        seeds.append(bytes([1]) + _ld(1, _ld(2, _ld(2, record))))
        point = _fixed64(3, 1) + _ld(7, _ld(1, b"http.x") + _ld(2, string))
        metric = _ld(1, secret) + _ld(2, secret) + _ld(3, secret) + _ld(5, _ld(1, point))
        seeds.append(bytes([2]) + _ld(1, _ld(2, _ld(2, metric))))
    return seeds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repo", type=Path, required=True)
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--cli", help="CLI that imports the bundle seeds; without it they are skipped")
    parser.add_argument("--max-len", type=int, default=65536)
    args = parser.parse_args()

    repo, work = args.repo.resolve(), args.work.resolve()
    seeds = work / "seeds"
    shutil.rmtree(seeds, ignore_errors=True)
    keys = work / "keys"
    keys.mkdir(parents=True, exist_ok=True)
    key = keys / "fuzz.key"
    key.write_text(FUZZ_KEY_PEM)
    os.chmod(key, 0o600)
    otlp = repo / "fixtures" / "otlp"
    made = work / "bundles"
    shutil.rmtree(made, ignore_errors=True)
    made.mkdir(parents=True)

    bundles = import_bundles(args.cli, key, otlp, made) if args.cli else []
    for pattern in ("fixtures/bundle/*.sfb.tar", "fixtures/tampered/*.sfb.tar"):
        bundles += sorted(repo.glob(pattern))
    skipped = 0
    for path in bundles:
        data = path.read_bytes()
        if len(data) > args.max_len:
            skipped += 1
            continue
        put(seeds / "FuzzBundleVerify", data)
        raw = raw_segment_bundle(data)
        if raw is not None and len(raw) <= args.max_len:
            put(seeds / "FuzzBundleResigned", raw)

    for path in sorted(otlp.glob("*.jsonl")):
        text = path.read_bytes()
        put(seeds / "FuzzOTLPJSONLines", text)
        for line in text.splitlines():
            if line.strip():
                put(seeds / "FuzzOTLPJSONLines", line + b"\n")
    for path in sorted(otlp.glob("*.pb")) + sorted(otlp.glob("*.zst")):
        data = path.read_bytes()
        put(seeds / "FuzzOTLPProtoStream", data)
        if path.suffix == ".pb":
            for record in proto_records(data):
                put(seeds / "FuzzOTLPProtoStream", record)

    for request in http_seeds(otlp):
        put(seeds / "FuzzOTLPHTTP", request)
    for body in decoder_seeds(otlp):
        put(seeds / "FuzzOTLPRequestDecoder", body)
    for body in wire_differential_seeds(otlp):
        put(seeds / "FuzzOTLPWireDifferential", body)
    for body in redactor_seeds(otlp):
        put(seeds / "FuzzRedactor", body)

    for target in sorted(p.name for p in seeds.iterdir()):
        print(f"seeds {target}: {len(list((seeds / target).iterdir()))}")
    if skipped:
        print(f"seeds: {skipped} bundle(s) over {args.max_len} bytes left out")


if __name__ == "__main__":
    main()
