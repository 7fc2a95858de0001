"""deploy/systemd/stella-capture.service: systemd's own checker accepts it, and it keeps its hardening.

`systemd-analyze verify` needs the ExecStart binary to exist, so the unit is checked as a copy
whose ExecStart points at the built binary. It exits 0 on unknown keys and unknown system-call
groups (it only warns), so any output at all counts as a failure here.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
UNIT = REPO / "deploy" / "systemd" / "stella-capture.service"
INSTALLED_BINARY = "/usr/local/bin/stella-forensics"

# The directives operators rely on: a changed value weakens the sandbox or the stop/reload contract.
REQUIRED = {
    "DynamicUser": "yes",
    "StateDirectory": "stella-forensics",
    "ProtectSystem": "strict",
    "ReadWritePaths": "/var/lib/stella-forensics",
    "NoNewPrivileges": "yes",
    "PrivateTmp": "yes",
    "ProtectHome": "yes",
    "CapabilityBoundingSet": "",
    "RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX",
    "SystemCallFilter": "@system-service",
    "ExecReload": "/bin/kill -HUP $MAINPID",
    "KillSignal": "SIGTERM",
    "Restart": "on-failure",
}


def service_directives(text: str) -> dict[str, list[str]]:
    """Each key of the [Service] section with its values in file order."""
    directives: dict[str, list[str]] = {}
    section = None
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line
            continue
        if section == "[Service]":
            key, _, value = line.partition("=")
            directives.setdefault(key.strip(), []).append(value.strip())
    return directives


def unit_for_built_binary(stella_bin: Path, directory: Path) -> Path:
    text = UNIT.read_text(encoding="utf-8")
    assert f"ExecStart={INSTALLED_BINARY} capture " in text, "the unit no longer starts capture from /usr/local/bin"
    copy = directory / UNIT.name
    copy.write_text(text.replace(INSTALLED_BINARY, str(stella_bin)), encoding="utf-8")
    return copy


@pytest.fixture(scope="module")
def systemd_analyze() -> str:
    path = shutil.which("systemd-analyze")
    assert path, "systemd-analyze is missing: scripts/setup.sh installs Debian's systemd package"
    return path


def test_systemd_analyze_verify_accepts_the_unit_without_warnings(systemd_analyze, stella_bin, tmp_path):
    unit = unit_for_built_binary(stella_bin, tmp_path)
    checked = subprocess.run([systemd_analyze, "verify", str(unit)], capture_output=True, text=True, timeout=120)
    output = (checked.stdout + checked.stderr).strip()
    assert checked.returncode == 0, f"systemd-analyze verify exit {checked.returncode}:\n{output}"
    assert output == "", f"systemd-analyze verify warned about the unit:\n{output}"


def test_systemd_analyze_verify_would_notice_a_misspelt_directive(systemd_analyze, stella_bin, tmp_path):
    """The check above relies on warnings being printed; prove they are, with a broken copy."""
    unit = unit_for_built_binary(stella_bin, tmp_path)
    unit.write_text(unit.read_text().replace("ProtectSystem=strict", "ProtectSytem=strict"))
    checked = subprocess.run([systemd_analyze, "verify", str(unit)], capture_output=True, text=True, timeout=120)
    assert "ProtectSytem" in checked.stdout + checked.stderr


def test_unit_keeps_its_hardening_and_stop_contract():
    directives = service_directives(UNIT.read_text(encoding="utf-8"))
    for key, expected in REQUIRED.items():
        assert directives.get(key) == [expected], f"{key}: {directives.get(key)}, expected exactly [{expected!r}]"
    memory_max = directives.get("MemoryMax", [""])[0]
    assert memory_max and memory_max != "infinity", f"MemoryMax must bound the service: {memory_max!r}"
    assert int(directives.get("LimitNOFILE", ["0"])[0]) >= 4096, directives.get("LimitNOFILE")
    assert int(directives.get("TimeoutStopSec", ["0"])[0].rstrip("s")) >= 60, "sealing on stop needs time"
    execstart = directives["ExecStart"][0].split()
    assert execstart[1] == "capture" and "--data" in execstart
    assert execstart[execstart.index("--data") + 1] == "/var/lib/stella-forensics", "data must be the state dir"


def test_systemd_security_rates_the_unit_ok(systemd_analyze, stella_bin, tmp_path):
    """systemd's exposure score (0 best, 10 worst); 2.0 or less is its 'OK' band."""
    unit = unit_for_built_binary(stella_bin, tmp_path)
    rated = subprocess.run([systemd_analyze, "security", "--offline=true", "--threshold=20", str(unit)],
                           capture_output=True, text=True, timeout=120)
    summary = [line for line in rated.stdout.splitlines() if "Overall exposure level" in line]
    assert rated.returncode == 0, f"exposure above 2.0: {summary or rated.stdout[-2000:]}\n{rated.stderr}"
