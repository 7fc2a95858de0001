"""Files and bounds (issue 12): owner-only modes on everything capture, bundle and export write;
outputs never written through a planted symlink; no silent overwrite without --force; an incident
log that is damaged anywhere but its torn last line stops capture (exit 3, naming the line)."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import stat
import subprocess
from pathlib import Path

from capturelib import capture, rfc3339, trace_request  # noqa: F401
from conftest import REPO

TAMPERED = REPO / "fixtures" / "tampered"
BASE = TAMPERED / "base.sfb.tar"
BASE_KEY = TAMPERED / "keys" / "signer.pub"


def mode(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def export_name(signal: str, tenant: str, ext: str) -> str:
    return f"{signal}.tenant-{hashlib.sha256(tenant.encode()).hexdigest()[:16]}.{ext}"


def export(stella, out: Path, *extra):
    return stella.run("export", BASE, "--trusted-key", BASE_KEY, "--format", "otlp-json", "--out", out, *extra)


def test_export_never_writes_through_a_symlink_planted_at_its_partial_path(stella, tmp_path):
    out = tmp_path / "shared-out"
    out.mkdir()
    victim = tmp_path / "victim"
    victim.write_text("precious")
    # Every temporary name the export will use (base.sfb.tar: traces and logs of acme, metrics
    # of globex), as a local attacker with write access to the output directory would plant them.
    names = [export_name("traces", "acme", "jsonl"), export_name("logs", "acme", "jsonl"),
             export_name("metrics", "globex", "jsonl"), "index.json"]
    for name in names:
        (out / f".{name}.partial").symlink_to(victim)
    result = export(stella, out)
    assert result.returncode == 0, result.describe()
    assert victim.read_text() == "precious"
    for name in names:
        assert (out / name).is_file() and not (out / name).is_symlink(), name
        assert mode(out / name) == 0o600, name
        assert not os.path.lexists(out / f".{name}.partial"), name


def test_export_refuses_existing_files_unless_forced_and_forced_never_follows_a_symlink(stella, tmp_path):
    out = tmp_path / "made-by-export"
    assert export(stella, out).returncode == 0
    # A directory export made is owner-only.
    assert mode(out) == 0o700
    before = {path.name: path.read_bytes() for path in out.iterdir()}
    index = out / "index.json"
    index.write_text("an earlier export's index")
    again = export(stella, out)
    assert again.returncode == 2, again.describe()
    assert "index.json" in again.stderr and "--force" in again.stderr
    assert index.read_text() == "an earlier export's index"
    # --force replaces; a symlink at a final name is replaced itself, its target untouched.
    victim = tmp_path / "victim"
    victim.write_text("precious")
    traces = out / export_name("traces", "acme", "jsonl")
    traces.unlink()
    traces.symlink_to(victim)
    forced = export(stella, out, "--force")
    assert forced.returncode == 0, forced.describe()
    assert victim.read_text() == "precious"
    assert not traces.is_symlink() and mode(traces) == 0o600
    assert {path.name: path.read_bytes() for path in out.iterdir()} == before


def sealed_service(capture, tmp_path: Path):
    service = capture(tmp_path / "fresh" / "data")
    for index in range(3):
        assert service.post("/v1/traces", trace_request([f"req-{index}"])).status == 200
    service.seal()
    return service


def window() -> tuple[str, str]:
    now = dt.datetime.now(dt.timezone.utc)
    return rfc3339(now - dt.timedelta(hours=1)), rfc3339(now + dt.timedelta(hours=1))


def test_bundle_refuses_an_existing_out_unless_forced(stella, capture, keys, tmp_path):
    service = sealed_service(capture, tmp_path)
    key, pub = keys
    start, end = window()
    out = tmp_path / "evidence.sfb.tar"
    out.write_bytes(b"an earlier bundle")
    args = ["bundle", "--data", service.data, "--from", start, "--to", end, "--key", key, "--out", out]
    refused = stella.run(*args)
    assert refused.returncode == 2, refused.describe()
    assert str(out) in refused.stderr and "already exists" in refused.stderr and "--force" in refused.stderr
    assert out.read_bytes() == b"an earlier bundle"
    assert not list(tmp_path.glob("evidence.sfb.tar.partial*"))
    forced = stella.run(*args, "--force")
    assert forced.returncode == 0, forced.describe()
    assert stella.run("verify", out, "--trusted-key", pub).returncode == 0
    assert mode(out) == 0o600
    # A symlink at --out: refused without --force, replaced itself (never written through) with it.
    victim = tmp_path / "victim"
    victim.write_text("precious")
    linked = tmp_path / "linked.sfb.tar"
    linked.symlink_to(victim)
    assert stella.run(*args[:-1], linked).returncode == 2
    assert stella.run(*args[:-1], linked, "--force").returncode == 0
    assert victim.read_text() == "precious" and not linked.is_symlink()
    # import writes bundles the same way.
    imported = stella.run("import", REPO / "fixtures" / "otlp" / "app.otlp.jsonl", "--key", key, "--out", out)
    assert imported.returncode == 2 and "--force" in imported.stderr, imported.describe()


def test_a_real_capture_run_leaves_only_owner_only_directories_and_files(stella, capture, keys, tmp_path):
    service = sealed_service(capture, tmp_path)
    started = stella.run("incident", "start", "--reason", "modes", "--id", "INC-MODES", *service.cli_admin_args())
    assert started.returncode == 0, started.describe()
    service.stop()
    data = Path(service.data)
    seen = {"dirs": 0, "files": 0}
    for root, directories, files in os.walk(data):
        for name in [root, *(os.path.join(root, d) for d in directories)]:
            assert mode(Path(name)) == 0o700, f"{name}: {oct(mode(Path(name)))}"
            seen["dirs"] += 1
        for name in files:
            path = Path(root) / name
            assert mode(path) == 0o600, f"{path}: {oct(mode(path))}"
            seen["files"] += 1
    names = {path.name for path in data.rglob("*")}
    assert {"incidents.jsonl", "node-id", "LOCK", "admin-token"} <= names
    assert any(name.endswith(".zst") for name in names) and any(name.endswith(".json") for name in names)
    # The data directory capture made, and its parent: both new, both 0700.
    assert mode(data.parent) == 0o700
    assert seen["dirs"] >= 4 and seen["files"] >= 6


def incident_line(incident_id: str) -> str:
    return json.dumps({
        "declaredBy": "local-operator", "id": incident_id, "lookbackNanos": "0", "reason": "r",
        "startUnixNano": "1700000000000000000", "state": "active", "tenants": [],
        "windowStartUnixNano": "1700000000000000000",
    }, separators=(",", ":"), sort_keys=True)


def test_capture_refuses_to_start_on_an_incident_log_damaged_before_its_last_line(stella, capture, tmp_path):
    data = tmp_path / "data"
    data.mkdir(mode=0o700)
    log = data / "incidents.jsonl"
    log.write_text(incident_line("INC-1") + "\n" + '{"id":"INC-2","garb\n' + incident_line("INC-3") + "\n")
    log.chmod(0o600)
    service = capture(data, wait=False)
    try:
        code = service.proc.wait(60)
    except subprocess.TimeoutExpired:
        service.proc.kill()
        raise
    stderr = service.stderr_path.read_text()
    assert code == 3, service.describe()
    assert f"{log} line 2" in stderr, stderr
    assert log.read_text().count("\n") == 3, "the log is left as it was"


def test_capture_skips_a_torn_last_line_of_the_incident_log_with_a_warning(stella, capture, tmp_path):
    data = tmp_path / "data"
    data.mkdir(mode=0o700)
    log = data / "incidents.jsonl"
    log.write_text(incident_line("INC-1") + "\n" + incident_line("INC-2")[:25])
    log.chmod(0o600)
    service = capture(data)
    listed = stella.run("incident", "list", "--json", *service.cli_admin_args())
    assert listed.returncode == 0, listed.describe()
    assert [item["id"] for item in json.loads(listed.stdout)["incidents"]] == ["INC-1"]
    stderr = service.stderr_path.read_text()
    assert "torn last line" in stderr and "incidents.jsonl" in stderr, stderr


def test_active_incidents_and_ttls_are_bounded_as_configured(stella, capture, tmp_path):
    config = tmp_path / "bounds.yaml"
    config.write_text("incidents:\n  max-active: 1\n  max-ttl: 1h\n")
    service = capture(None, "--config", config)
    admin = service.cli_admin_args()
    assert stella.run("incident", "start", "--reason", "first", "--id", "A", *admin).returncode == 0
    second = stella.run("incident", "start", "--reason", "second", "--id", "B", *admin)
    assert second.returncode == 2 and "incidents.max-active" in second.stderr, second.describe()
    assert stella.run("incident", "stop", "A", *admin).returncode == 0
    too_long = stella.run("incident", "start", "--reason", "long", "--id", "C", "--ttl", "2h", *admin)
    assert too_long.returncode == 2 and "incidents.max-ttl" in too_long.stderr, too_long.describe()
    assert stella.run("incident", "start", "--reason", "ok", "--id", "D", "--ttl", "1h", *admin).returncode == 0
    listed = json.loads(stella.ok("incident", "list", "--json", *admin).stdout)["incidents"]
    assert [item["id"] for item in listed] == ["A", "D"]
