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

Only the Python standard library and `zstandard` are used.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import os
import shutil
import subprocess
import sys
import tarfile
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repo", type=Path, required=True)
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--cli", required=True)
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

    bundles = import_bundles(args.cli, key, otlp, made)
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

    for target in sorted(p.name for p in seeds.iterdir()):
        print(f"seeds {target}: {len(list((seeds / target).iterdir()))}")
    if skipped:
        print(f"seeds: {skipped} bundle(s) over {args.max_len} bytes left out")


if __name__ == "__main__":
    main()
