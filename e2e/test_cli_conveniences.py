"""Issue 14, small things users hit, each against the real binary:

* `replay` honours `OTEL_EXPORTER_OTLP_ENDPOINT` when `--endpoint` is absent (a real OTLP/HTTP sink
  receives the bundle's records) and says what to set when neither is there;
* `incident --admin` takes the admin address exactly as `capture` printed it (`HOST:PORT`);
* `replay --json` spells its error codes like the bundle format's reason codes;
* an empty OTLP request goes through `import`, `export --format otlp-json` and `import` again;
* shell completion scripts generate for bash, zsh and fish, and the man page generates with
  swift-argument-parser's generate-manual plugin and renders with groff.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest

import bundlelib as bl
from capturelib import capture, wait_for  # noqa: F401
from conftest import REPO
from replay_sinks import HTTPSink, bundle_streams

TAMPERED = REPO / "fixtures" / "tampered"
BASE = TAMPERED / "base.sfb.tar"
BASE_KEY = TAMPERED / "keys" / "signer.pub"


def environment(**extra: str) -> dict:
    env = {key: value for key, value in os.environ.items() if not key.startswith("OTEL_EXPORTER_OTLP")}
    env.update(extra)
    return env


def test_replay_uses_otel_exporter_otlp_endpoint_without_endpoint(stella):
    expected = sum(len(records) for records in bundle_streams(bl.read_bundle(BASE)).values())
    with HTTPSink() as sink:
        result = stella.run("replay", BASE, "--trusted-key", BASE_KEY, "--json",
                            env=environment(OTEL_EXPORTER_OTLP_ENDPOINT=sink.endpoint))
        assert result.returncode == 0, result.describe()
        summary = json.loads(result.stdout)
        assert summary["endpoint"] == sink.endpoint, summary
        assert summary["recordsSent"] == expected > 0, summary
        assert len(sink.received) == expected


def test_replay_without_any_endpoint_says_what_to_set(stella):
    result = stella.run("replay", BASE, "--trusted-key", BASE_KEY, env=environment())
    assert result.returncode == 2, result.describe()
    assert "--endpoint" in result.stderr and "OTEL_EXPORTER_OTLP_ENDPOINT" in result.stderr, result.describe()


def test_json_error_codes_use_the_reason_code_casing(stella):
    """A destination outside the allowlist is refused before anything is sent; its code in
    `--json` is spelled like `SIG_UNTRUSTED_KEY`."""
    result = stella.run("replay", BASE, "--trusted-key", BASE_KEY, "--endpoint", "http://10.255.255.1:4318",
                        "--json", env=environment())
    assert result.returncode == 2, result.describe()
    code = json.loads(result.stdout)["code"]
    assert code == "ENDPOINT_NOT_ALLOWED", result.describe()
    assert re.fullmatch(r"[A-Z][A-Z0-9]*(_[A-Z0-9]+)*", code)


def test_incident_admin_takes_the_address_capture_printed(stella, capture):
    service = capture(None)
    printed = wait_for(
        lambda: re.search(r"^listening admin (\S+)$", (service.logs / "capture-001.stdout").read_text(), re.M),
        timeout=30, what="capture's 'listening admin' line")
    address = printed.group(1)
    assert not address.startswith("http"), address
    listed = stella.run("incident", "list", "--admin", address, "--data", service.data, "--json")
    assert listed.returncode == 0, listed.describe()
    assert json.loads(listed.stdout) is not None


def test_an_empty_request_round_trips_through_the_protobuf_export_with_its_signal(stella, keys, tmp_path):
    """`otlp-proto` writes an empty request as a 0-byte message, which fits every signal: import
    takes the file's signal when other requests tell it, and `--signal` when nothing does."""
    source = tmp_path / "empty.otlp.jsonl"
    source.write_text('{"resourceLogs":[]}\n')
    first = tmp_path / "first.sfb.tar"
    stella.import_([source], keys[0], first)
    exported = tmp_path / "export"
    result = stella.run("export", first, "--trusted-key", keys[1], "--format", "otlp-proto", "--out", exported, "--json")
    assert result.returncode == 0, result.describe()
    files = json.loads(result.stdout)["files"]
    assert [(entry["signal"], entry["records"]) for entry in files] == [("logs", 1)], files
    stream = exported / files[0]["name"]
    assert stream.read_bytes() == b"\0\0\0\0"
    again = tmp_path / "again.sfb.tar"
    refused = stella.run("import", stream, "--key", keys[0], "--out", again)
    assert refused.returncode == 2, refused.describe()
    assert "give --signal" in refused.stderr
    assert not again.exists()
    imported = stella.run("import", stream, "--key", keys[0], "--out", again, "--signal", "logs")
    assert imported.returncode == 0, imported.describe()
    streams = bundle_streams(bl.read_bundle(again))
    assert [(signal, len(records)) for (_, signal, _), records in streams.items()] == [("logs", 1)], streams


def test_an_empty_request_round_trips_through_export_and_import(stella, keys, tmp_path):
    source = tmp_path / "empty.otlp.jsonl"
    source.write_text('{"resourceSpans":[]}\n')
    first = tmp_path / "first.sfb.tar"
    stella.import_([source], keys[0], first)
    exported = tmp_path / "export"
    result = stella.run("export", first, "--trusted-key", keys[1], "--format", "otlp-json", "--out", exported, "--json")
    assert result.returncode == 0, result.describe()
    files = json.loads(result.stdout)["files"]
    assert [(entry["signal"], entry["records"]) for entry in files] == [("traces", 1)], files
    written = (exported / files[0]["name"]).read_text()
    assert json.loads(written) == {"resourceSpans": []}, written
    again = tmp_path / "again.sfb.tar"
    stella.import_([exported / files[0]["name"]], keys[0], again)
    verified = stella.run("verify", again, "--trusted-key", keys[1], "--deep")
    assert verified.returncode == 0, verified.describe()
    streams = bundle_streams(bl.read_bundle(again))
    assert [(signal, len(records)) for (_, signal, _), records in streams.items()] == [("traces", 1)], streams
    record = next(iter(streams.values()))[0]
    assert list(record.request.resource_spans) == [], record


@pytest.mark.parametrize("shell,marker", [
    ("bash", "-F _stella-forensics stella-forensics"), ("zsh", "#compdef stella-forensics"),
    ("fish", "complete -c 'stella-forensics'"),
])
def test_completion_scripts_generate(stella, shell, marker):
    result = stella.run("--generate-completion-script", shell)
    assert result.returncode == 0, result.describe()
    assert marker in result.stdout, result.stdout[:500]
    # fish lists long options without their dashes.
    for word in ["capture", "profile", "incident", "verify", "print-config", "log-format", "validate"]:
        assert word in result.stdout, f"{shell} completion lacks {word}"


def test_the_man_page_generates_from_the_command_definitions(tmp_path):
    """`make man`'s plugin run, offline, against the debug build `make build` left behind."""
    page = REPO / ".build" / "plugins" / "GenerateManual" / "outputs" / "StellaForensicsCLI" / "stella-forensics.1"
    page.unlink(missing_ok=True)  # so a page left by an earlier run cannot pass for this one
    generated = subprocess.run(
        ["swift", "package", "plugin", "generate-manual", "--configuration", "debug"],
        cwd=REPO, capture_output=True, text=True, timeout=1200, check=False)
    assert generated.returncode == 0, generated.stdout[-3000:] + generated.stderr[-3000:]
    assert page.exists(), generated.stdout[-2000:]
    rendered = subprocess.run(["groff", "-mandoc", "-Tutf8", "-P", "-c", str(page)],
                              capture_output=True, text=True, timeout=60, check=False)
    assert rendered.returncode == 0, rendered.stderr
    # Bold and underline are overstruck (char, backspace, char): keep the last of each.
    text = re.sub(r".\x08", "", rendered.stdout)
    # The single page lists each subcommand as a heading and each option as a tagged item.
    first_words = {line.split()[0] for line in text.splitlines() if line.strip()}
    for expected in ["capture", "profile", "diff", "replay", "--print-config", "--validate", "--log-format"]:
        assert expected in first_words, f"the man page lacks an entry {expected!r}"
