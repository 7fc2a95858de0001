"""Issue 14, config tooling: `capture --validate`, `capture --print-config`, `profile diff/list/show`,
the example configuration leaving the profiles in charge, and `--log-format json`.

Each runs the real binary; the example-config and JSON-log tests run the real capture service.
"""

from __future__ import annotations

import json
from pathlib import Path

from capturelib import REPO, capture, free_port, trace_request  # noqa: F401

EXAMPLE = REPO / "config" / "capture.example.yaml"


def loopback_flags(data: Path) -> list[str]:
    """Flags that keep a `--validate` or `--print-config` run off the default ports and data dir."""
    return ["--data", str(data), "--otlp-http", f"127.0.0.1:{free_port()}",
            "--otlp-grpc", f"127.0.0.1:{free_port()}", "--admin", f"127.0.0.1:{free_port()}"]


def test_the_example_config_with_the_forensic_profile_syncs_every_batch(capture):
    """The example keeps every default commented out, so `--profile forensic` is not undone by it."""
    service = capture(None, "--config", EXAMPLE, "--profile", "forensic")
    status = service.status()
    assert status["profile"] == "forensic"
    assert status["journal"]["durability"] == "fsync-per-batch", status["journal"]
    assert status["journal"]["minFreeBytes"] == str(1 << 30), status["journal"]
    result = service.post("/v1/traces", trace_request(["forensic-1"]))
    assert result.status == 200, result
    stdout = (service.logs / "capture-001.stdout").read_text()
    assert "(profile forensic, durability fsync-per-batch)" in stdout, stdout


def test_validate_accepts_a_good_configuration_without_touching_anything(stella, tmp_path):
    data = tmp_path / "data"
    result = stella.run("capture", "--config", EXAMPLE, "--profile", "forensic", "--validate", *loopback_flags(data))
    assert result.returncode == 0, result.describe()
    assert result.stdout.startswith("configuration OK from "), result.describe()
    assert "profile forensic, durability fsync-per-batch" in result.stdout, result.describe()
    assert not data.exists(), "--validate must not create the data directory"


def test_validate_names_the_offending_key_or_flag(stella, tmp_path):
    data = tmp_path / "data"
    bad_listener = tmp_path / "listener.yaml"
    bad_listener.write_text("listeners:\n  otlp-http: nowhere\n")
    cases = [
        (["--config", bad_listener], "listeners.otlp-http"),
        (["--max-request-bytes", "10"], "limits.max-request-bytes (--max-request-bytes)"),
        (["--durability", "sometimes"], "--durability"),
        (["--sampling-policy", tmp_path / "absent.yaml"], "sampling (--sampling-policy)"),
    ]
    ring = tmp_path / "ring.yaml"
    ring.write_text("ring:\n  max-age: 1m\n")
    cases.append((["--config", ring], f"ring.max-age (in {ring})"))
    # Durations too long for nanosecond arithmetic are refused by name instead of trapping.
    cases.append((["--sync-interval", "9999999999999999"], "--sync-interval"))
    cases.append((["--sync-interval", "9999999999999999ms"], "--sync-interval"))
    endless = tmp_path / "endless.yaml"
    endless.write_text("journal:\n  segment-max-age: 9223372036854775807h\n")
    cases.append((["--config", endless], "segment-max-age"))
    for flags, named in cases:
        result = stella.run("capture", "--validate", *loopback_flags(data), *flags)
        assert result.returncode == 2, result.describe()
        assert named in result.stderr, f"expected {named!r} in the error\n{result.describe()}"
    assert not data.exists()


def test_print_config_shows_each_value_with_its_origin(stella, tmp_path):
    config = tmp_path / "capture.yaml"
    config.write_text("limits:\n  max-tenants: 12\njournal:\n  sync-interval: 50ms\n")
    data = tmp_path / "data"
    result = stella.run("capture", "--config", config, "--profile", "forensic", "--print-config",
                        "--durability", "interval", *loopback_flags(data))
    assert result.returncode == 0, result.describe()
    lines = result.stdout.splitlines()
    assert "  durability: interval  # flag --durability" in lines, result.stdout
    assert f"  sync-interval: 50ms  # file {config}" in lines, result.stdout
    assert f"  max-tenants: 12  # file {config}" in lines, result.stdout
    assert "  min-free-bytes: 1GiB  # profile forensic" in lines, result.stdout
    assert "  max-connections: 1024  # default" in lines, result.stdout
    assert "profile: forensic  # flag --profile" in lines, result.stdout
    assert not data.exists()
    # What it prints is a configuration file: fed back, it validates to the same settings.
    printed = tmp_path / "printed.yaml"
    printed.write_text(result.stdout)
    again = stella.run("capture", "--config", printed, "--print-config")
    assert again.returncode == 0, again.describe()
    values = lambda text: [line.split("#")[0].rstrip() for line in text.splitlines() if not line.startswith("#")]  # noqa: E731
    assert values(again.stdout) == values(result.stdout)


def test_profile_diff_lists_what_two_profiles_set_differently(stella):
    result = stella.run("profile", "diff", "default", "forensic")
    assert result.returncode == 0, result.describe()
    rows = {line.split()[0]: line.split()[1:] for line in result.stdout.splitlines()}
    assert rows["setting"] == ["default", "forensic"]
    assert rows["journal.durability"] == ["group-commit", "fsync-per-batch"]
    assert rows["journal.min-free-bytes"] == ["256MiB", "1GiB"]
    assert rows["journal.segment-max-age"] == ["1m", "30s"]
    assert "limits.max-connections" not in rows
    airgap = stella.run("profile", "diff", "forensic", "airgap")
    assert airgap.returncode == 0, airgap.describe()
    assert any(line.startswith("outbound hooks") and line.split()[-2:] == ["allowed", "refused"]
               for line in airgap.stdout.splitlines()), airgap.stdout
    same = stella.run("profile", "diff", "airgap", "airgap")
    assert same.returncode == 0 and same.stdout == "", same.describe()


def test_profile_diff_refuses_an_unknown_profile_listing_the_valid_ones(stella):
    result = stella.run("profile", "diff", "default", "paranoid")
    assert result.returncode == 2, result.describe()
    assert "paranoid" in result.stderr and "default, forensic, airgap" in result.stderr, result.describe()


def test_profile_list_and_show(stella):
    listed = stella.run("profile", "list")
    assert listed.returncode == 0 and listed.stdout.split() == ["default", "forensic", "airgap"], listed.describe()
    shown = stella.run("profile", "show", "forensic")
    assert shown.returncode == 0, shown.describe()
    assert "  durability: fsync-per-batch  # profile forensic" in shown.stdout.splitlines(), shown.stdout


def test_json_log_format_writes_one_object_per_line(capture, tmp_path):
    service = capture(None, "--log-format", "json", "--log-level", "debug")
    result = service.post("/v1/traces", b"\xff not protobuf")
    assert result.status == 400, result
    service.stop()
    lines = [line for line in service.stderr_path.read_text().splitlines()]
    assert len(lines) >= 2, service.describe()
    for line in lines:
        entry = json.loads(line)
        assert set(entry) >= {"timestamp", "level", "label", "message", "metadata"}, line
        assert entry["timestamp"].endswith("Z") and "T" in entry["timestamp"], line
        assert isinstance(entry["metadata"], dict), line
    assert any("stopping" in json.loads(line)["message"] for line in lines), lines


def test_an_unknown_log_format_is_a_usage_error(stella, tmp_path):
    result = stella.run("capture", "--log-format", "xml", *loopback_flags(tmp_path / "data"))
    assert result.returncode == 2, result.describe()
    assert "--log-format" in result.stderr, result.describe()
