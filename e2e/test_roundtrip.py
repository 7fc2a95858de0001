"""Import real SDK output, verify it, then read the bundle back with an independent decoder."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.serialization import load_pem_private_key, load_pem_public_key

import bundlelib as bl
from conftest import FIXTURE_FILES, FIXTURES, PER_SIGNAL_FILES

SIGNALS = ("traces", "logs", "metrics")


def evidence_digest(bundle: bl.Bundle, inputs: list[Path]) -> str:
    """SHA-256 over every record in input order: signal code (1 byte), u64 BE length, request bytes.

    The input order across signals comes from reading the inputs; the bytes are the stored ones.
    """
    stored: dict[str, list[bytes]] = defaultdict(list)
    for blob in sorted(bundle.manifest["blobs"], key=lambda b: (b["signal"], int(b["firstSeq"]))):
        stored[blob["signal"]] += [record.raw for record in bundle.segments[blob["path"]].records]
    codes = {name: code for code, name in bl.SIGNAL_CODES.items()}
    digest = hashlib.sha256()
    for path in inputs:
        for signal, _ in bl.read_otlp_file(path):
            request = stored[signal].pop(0)
            digest.update(bytes([codes[signal]]) + len(request).to_bytes(8, "big") + request)
    return digest.hexdigest()


def check_bundle(bundle_path: Path, inputs: list[Path], expected: dict) -> bl.Bundle:
    """Everything the bundle claims and holds, against the inputs and what the SDK emitted."""
    bundle = bl.read_bundle(bundle_path)
    manifest = bundle.manifest
    blobs = manifest["blobs"]

    assert bundle.members == ["manifest.json", "manifest.dsse.json", *[b["path"] for b in blobs]]
    assert [b["path"] for b in blobs] == sorted(b["path"] for b in blobs)
    assert manifest["formatVersion"] == 1
    assert manifest["tool"]["name"] == "stella-forensics"
    assert manifest["capture"]["nodes"] == ["import"]

    # Import defaults (README "import"): the incident id is a digest of the records, not of the files.
    assert manifest["incident"]["id"] == "import-" + evidence_digest(bundle, inputs)[:16]
    assert manifest["incident"]["reason"] == "imported from OTLP files"
    assert manifest["incident"]["declaredBy"] == "stella-forensics import"

    records_per_signal = defaultdict(int)
    seqs_per_stream = defaultdict(list)
    totals = {"spans": 0, "logRecords": 0, "dataPoints": 0}
    found_span_ids: list[str] = []
    found_trace_ids: set[str] = set()
    bodies: list = []
    decoded: dict[str, list] = defaultdict(list)
    for blob in sorted(blobs, key=lambda b: (b["signal"], b["tenant"], b["node"], int(b["firstSeq"]))):
        segment = bundle.segments[blob["path"]]
        where = blob["path"]
        # Blob metadata == segment header == what import promises.
        assert (segment.signal, segment.tenant, segment.node) == (blob["signal"], blob["tenant"], blob["node"]), where
        assert blob["tenant"] == "default", where
        assert blob["node"] == "import", where
        assert blob["encoding"] == "otlp-segment-v1+zstd", where
        assert blob["recordCount"] == len(segment.records), where
        assert int(blob["lastSeq"]) == int(blob["firstSeq"]) + len(segment.records) - 1, where
        first, last = bl.segment_time_range(segment)
        assert (int(blob["firstTimeUnixNano"]), int(blob["lastTimeUnixNano"])) == (first, last), where
        records_per_signal[blob["signal"]] += blob["recordCount"]
        for record in segment.records:
            assert record.received == 0, f"{where}: imported record seq {record.seq} has receivedUnixNano"
            seqs_per_stream[(blob["node"], blob["signal"], blob["tenant"])].append(record.seq)
            for key, value in bl.items_of(segment.signal, record.request).items():
                totals[key] += value
            if segment.signal == "traces":
                found_span_ids += bl.span_ids(record.request)
                found_trace_ids.update(bl.trace_ids(record.request))
            if segment.signal == "logs":
                bodies += bl.log_bodies(record.request)
            decoded[segment.signal].append(record.request)

    # Seqs per stream: 0.. consecutive, in input order.
    for stream, seqs in seqs_per_stream.items():
        assert seqs == list(range(len(seqs))), f"stream {stream}: seqs {seqs}"

    assert dict(records_per_signal) == {s: n for s, n in expected["requests"].items() if n}
    assert totals == {k: expected[k] for k in totals}
    assert sorted(found_span_ids) == sorted(expected["spanIds"])
    assert found_trace_ids == set(expected["traceIds"])
    assert bodies == expected["logBodies"]

    # Each stored request is the same message as the input's (JSON decoded with json_format).
    inputs_by_signal: dict[str, list] = defaultdict(list)
    for path in inputs:
        for signal, message in bl.read_otlp_file(path):
            inputs_by_signal[signal].append(message)
    for signal in SIGNALS:
        got = [bl.normalized(m) for m in decoded.get(signal, [])]
        want = [bl.normalized(m) for m in inputs_by_signal.get(signal, [])]
        assert got == want, f"{signal}: stored requests differ from the input's"

    # Capture window and declaredAt (contract: min firstTime / max lastTime over blobs that hold
    # timed items; declaredAt = end).
    timed = [b for b in blobs if b["firstTimeUnixNano"] != "0" or b["lastTimeUnixNano"] != "0"]
    assert manifest["capture"]["startUnixNano"] == str(min(int(b["firstTimeUnixNano"]) for b in timed))
    assert manifest["capture"]["endUnixNano"] == str(max(int(b["lastTimeUnixNano"]) for b in timed))
    assert manifest["incident"]["declaredAtUnixNano"] == manifest["capture"]["endUnixNano"]
    return bundle


@pytest.mark.parametrize("name", FIXTURE_FILES)
def test_import_verify_and_decode(stella, keys, tmp_path, expected, name):
    key, pub = keys
    source = FIXTURES / name
    out = tmp_path / "bundle.sfb.tar"
    stella.import_([source], key, out)
    result = stella.run("verify", out, "--trusted-key", pub, "--deep")
    assert result.returncode == 0, result.describe()
    assert result.stdout.splitlines()[0].startswith("OK:"), result.describe()
    bundle = check_bundle(out, [source], expected)

    # The one signature is by this key, over PAE(payloadType, manifest.json), checked here independently.
    envelope = bundle.envelope
    assert envelope["payloadType"] == "application/vnd.stella-forensics.manifest+json"
    assert base64.b64decode(envelope["payload"]) == bundle.manifest_raw
    assert [s["keyid"] for s in envelope["signatures"]] == [bl.keyid_of(pub)]
    signature = base64.b64decode(envelope["signatures"][0]["sig"])
    load_pem_public_key(pub.read_bytes()).verify(signature, bl.pae(envelope["payloadType"], bundle.manifest_raw))


def test_keygen_files(stella, tmp_path):
    directory = tmp_path / "keys"
    directory.mkdir()
    result = stella.ok("keygen", "--out", directory, "--name", "alice")
    key, pub = directory / "alice.key", directory / "alice.pub"
    assert oct(key.stat().st_mode & 0o777) == oct(0o600)
    assert bl.keyid_of(pub) in result.stdout, result.describe()
    private = load_pem_private_key(key.read_bytes(), None)
    assert private.public_key().public_bytes_raw() == load_pem_public_key(pub.read_bytes()).public_bytes_raw()
    # BUNDLE-FORMAT.md section 11 route: openssl reads both files and agrees on the keyid.
    der = subprocess.run(
        ["openssl", "pkey", "-pubin", "-in", str(pub), "-outform", "DER"], capture_output=True, check=True
    ).stdout
    assert len(der) == 44 and der[:12] == bytes.fromhex("302a300506032b6570032100")
    assert hashlib.sha256(der).hexdigest() == bl.keyid_of(pub)
    subprocess.run(["openssl", "pkey", "-in", str(key), "-noout"], capture_output=True, check=True)
    # Default name is "signer".
    other = tmp_path / "default"
    other.mkdir()
    stella.ok("keygen", "--out", other)
    assert sorted(p.name for p in other.iterdir()) == ["signer.key", "signer.pub"]
    assert os.stat(other / "signer.key").st_mode & 0o077 == 0


def test_formats_give_the_same_bundle(stella, keys, tmp_path):
    """JSON or protobuf, compressed or not: the same records make the same evidence, to the byte."""
    key, _ = keys
    digests = {}
    for name in FIXTURE_FILES:
        out = tmp_path / f"{name}.sfb.tar"
        stella.import_([FIXTURES / name], key, out)
        digests[name] = hashlib.sha256(out.read_bytes()).hexdigest()
    assert len(set(digests.values())) == 1, digests


def test_verify_json_report(stella, keys, imported, expected):
    _, pub = keys
    result = stella.run("verify", imported, "--trusted-key", pub, "--deep", "--json")
    assert result.returncode == 0, result.describe()
    report = json.loads(result.stdout)
    bundle = bl.read_bundle(imported)
    manifest_raw = bundle.manifest_raw
    pub_der_keyid = bl.keyid_of(pub)
    assert report["result"] == "verified"
    assert report["mode"] == "deep"
    assert "code" not in report
    assert report["manifestSha256"] == hashlib.sha256(manifest_raw).hexdigest()
    assert report["records"] == sum(expected["requests"].values())
    assert report["blobs"] == len(json.loads(manifest_raw)["blobs"])
    assert report["streams"] == sum(1 for n in expected["requests"].values() if n)
    assert report["keyids"] == [pub_der_keyid]
    assert report["incident"] == json.loads(manifest_raw)["incident"]["id"]


def test_live_sdk_output(stella, keys, tmp_path):
    """Run the instrumented program now (real SDK, json-file exporter) and import what it wrote."""
    live = tmp_path / "live"
    generated = subprocess.run(
        [sys.executable, str(FIXTURES / "generate.py"), str(live)],
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert generated.returncode == 0, generated.stderr.decode()
    reported = json.loads(generated.stdout)
    key, pub = keys

    # The concatenated file, and the exporters' three per-signal files in one import.
    for inputs in ([live / "app.otlp.jsonl"], [live / name for name in PER_SIGNAL_FILES], [live / "app.otlp.pb.zst"]):
        out = tmp_path / f"live-{len(inputs)}-{inputs[0].name}.sfb.tar"
        stella.import_(inputs, key, out)
        result = stella.run("verify", out, "--trusted-key", pub, "--deep")
        assert result.returncode == 0, result.describe()
        check_bundle(out, inputs, reported)
