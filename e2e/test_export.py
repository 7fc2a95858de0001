"""export: verified first, one deterministic file per signal and tenant, readable by other tools
(OTLP/JSON lines back through `import` and `json_format`, the file exporter's proto stream)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from google.protobuf import json_format

import bundlelib as bl
import replay_data
from conftest import FIXTURES, REPO
from replay_sinks import bundle_streams

TAMPERED = REPO / "fixtures" / "tampered"
BASE = TAMPERED / "base.sfb.tar"
BASE_KEY = TAMPERED / "keys" / "signer.pub"


@pytest.fixture
def source(stella, keys, tmp_path: Path) -> Path:
    stream = tmp_path / "gen.pb"
    replay_data.write_stream(stream, requests=24, items=10)
    out = tmp_path / "src.sfb.tar"
    stella.import_([FIXTURES / "app.otlp.jsonl", stream], keys[0], out, "--tenant", "..:team@a")
    return out


def export(stella, bundle: Path, pub: Path, fmt: str, out: Path):
    return stella.run("export", bundle, "--trusted-key", pub, "--format", fmt, "--out", out, "--json")


def records_by_signal(bundle: bl.Bundle) -> dict[str, list[bl.Record]]:
    by_signal: dict[str, list[bl.Record]] = {}
    for key, records in bundle_streams(bundle).items():
        by_signal.setdefault(key[1], []).extend(records)
    return by_signal


def test_otlp_json_lines_parse_with_json_format_and_import_back_to_the_same_records(stella, keys, source, tmp_path):
    out = tmp_path / "json"
    result = export(stella, source, keys[1], "otlp-json", out)
    assert result.returncode == 0, result.describe()
    report = json.loads(result.stdout)
    original = records_by_signal(bl.read_bundle(source))
    files = {entry["signal"]: out / entry["name"] for entry in report["files"]}
    assert set(files) == {"traces", "logs", "metrics"}
    for entry in report["files"]:
        # Safe names: never the raw tenant text.
        assert entry["tenant"] == "..:team@a" and "/" not in entry["name"] and ".." not in entry["name"]
    for signal, path in files.items():
        lines = path.read_bytes().split(b"\n")
        assert lines[-1] == b"", "every line ends with a newline"
        lines = lines[:-1]
        assert len(lines) == len(original[signal])
        for line, record in zip(lines, original[signal]):
            document = json.loads(line)
            message = bl.REQUEST_TYPES[signal]()
            # The documented conversion: hex ids → base64, then the proto3 JSON mapping.
            json_format.ParseDict(bl.hex_ids_to_base64(document), message)
            assert message == record.request
    # Read back by import: a bundle with the same records, per signal and in order.
    back = tmp_path / "back.sfb.tar"
    stella.import_([files["traces"], files["logs"], files["metrics"]], keys[0], back, "--tenant", "..:team@a")
    again = records_by_signal(bl.read_bundle(back))
    for signal in original:
        assert [r.request for r in again[signal]] == [r.request for r in original[signal]], signal
        assert [r.raw for r in again[signal]] == [r.raw for r in original[signal]], f"{signal}: same bytes"


def test_otlp_proto_is_the_file_exporter_stream_of_the_archived_bytes(stella, keys, source, tmp_path):
    out = tmp_path / "proto"
    result = export(stella, source, keys[1], "otlp-proto", out)
    assert result.returncode == 0, result.describe()
    original = records_by_signal(bl.read_bundle(source))
    for entry in json.loads(result.stdout)["files"]:
        data = (out / entry["name"]).read_bytes()
        expected = b"".join(len(r.raw).to_bytes(4, "big") + r.raw for r in original[entry["signal"]])
        assert data == expected
        assert entry["records"] == len(original[entry["signal"]])


@pytest.mark.parametrize("fmt", ["otlp-json", "otlp-proto", "openmetrics"])
def test_exports_are_byte_identical_across_runs(stella, fmt, tmp_path):
    first, second = tmp_path / "1", tmp_path / "2"
    assert export(stella, BASE, BASE_KEY, fmt, first).returncode == 0
    assert export(stella, BASE, BASE_KEY, fmt, second).returncode == 0
    names = sorted(p.name for p in first.iterdir())
    assert names == sorted(p.name for p in second.iterdir()) and "index.json" in names
    for name in names:
        assert (first / name).read_bytes() == (second / name).read_bytes(), name
    index = json.loads((first / "index.json").read_text())
    tenants = {entry["tenant"] for entry in index["files"]}
    assert tenants <= {"acme", "globex"} and tenants
    if fmt != "openmetrics":
        # base.sfb.tar: traces and logs of acme, metrics of globex, on two nodes.
        assert {(e["signal"], e["tenant"]) for e in index["files"]} == {
            ("traces", "acme"), ("logs", "acme"), ("metrics", "globex"),
        }


def test_unicode_tenant_names_never_reach_file_names(stella, tmp_path):
    out = tmp_path / "u"
    result = export(stella, TAMPERED / "valid-unicode-tenant.sfb.tar", BASE_KEY, "otlp-json", out)
    assert result.returncode == 0, result.describe()
    for entry in json.loads(result.stdout)["files"]:
        assert entry["name"].isascii() and entry["tenant"] not in entry["name"]
        assert (out / entry["name"]).is_file()


def test_export_refuses_a_bundle_that_does_not_verify(stella, tmp_path):
    out = tmp_path / "never"
    result = stella.run(
        "export", TAMPERED / "SEGMENT_CRC_MISMATCH-body-byte.sfb.tar", "--trusted-key", BASE_KEY,
        "--format", "otlp-json", "--out", out,
    )
    assert result.returncode == 1, result.describe()
    assert result.stdout.startswith("REJECT SEGMENT_CRC_MISMATCH")
    assert not out.exists()
    untrusted = stella.run(
        "export", BASE, "--trusted-key", TAMPERED / "keys" / "untrusted.pub", "--format", "otlp-json", "--out", out,
    )
    assert untrusted.returncode == 1 and untrusted.stdout.startswith("REJECT SIG_UNTRUSTED_KEY")
    assert not out.exists()
