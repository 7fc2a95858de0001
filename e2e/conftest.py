"""Shared fixtures for the end-to-end tests of the `stella-forensics` binary.

The binary is `$STELLA_BIN` if set, else `<repo>/.build/debug/stella-forensics`. A missing binary
is a failure with a clear message, never a skip: these tests are the evidence that it works.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
FIXTURES = REPO / "fixtures" / "otlp"
SCRIPTS = REPO / "scripts"
FIXTURE_FILES = ["app.otlp.jsonl", "app.otlp.pb", "app.otlp.jsonl.zst", "app.otlp.pb.zst"]
PER_SIGNAL_FILES = ["traces.otlp.jsonl", "logs.otlp.jsonl", "metrics.otlp.jsonl"]
CLI_TIMEOUT = 60

sys.path.insert(0, str(Path(__file__).resolve().parent))


@dataclasses.dataclass
class Result:
    args: list[str]
    returncode: int
    stdout: str
    stderr: str

    def describe(self) -> str:
        return (
            f"command: {' '.join(self.args)}\nexit: {self.returncode}\n"
            f"stdout:\n{self.stdout}\nstderr:\n{self.stderr}"
        )

    def stderr_lines(self) -> list[str]:
        return [line for line in self.stderr.splitlines() if line.strip()]


class Stella:
    """Runs the CLI and hands back exit code and output; never raises on a non-zero exit."""

    def __init__(self, binary: Path) -> None:
        self.binary = binary

    def run(self, *args, cwd: Path | None = None, env: dict | None = None, preexec_fn=None) -> Result:
        argv = [str(self.binary), *[str(arg) for arg in args]]
        completed = subprocess.run(
            argv,
            cwd=cwd,
            env=env,
            capture_output=True,
            timeout=CLI_TIMEOUT,
            preexec_fn=preexec_fn,
            check=False,
        )
        return Result(
            argv,
            completed.returncode,
            completed.stdout.decode("utf-8", "replace"),
            completed.stderr.decode("utf-8", "replace"),
        )

    def ok(self, *args, **kwargs) -> Result:
        """Run and require exit 0."""
        result = self.run(*args, **kwargs)
        assert result.returncode == 0, result.describe()
        return result

    def keygen(self, directory: Path, name: str = "signer") -> tuple[Path, Path]:
        """A fresh key pair: (private key file, public key file)."""
        directory.mkdir(parents=True, exist_ok=True)
        self.ok("keygen", "--out", directory, "--name", name)
        key, pub = directory / f"{name}.key", directory / f"{name}.pub"
        assert key.is_file() and pub.is_file(), f"keygen did not write {key} and {pub}"
        return key, pub

    def import_(self, inputs, key: Path, out: Path, *extra, **kwargs) -> Result:
        return self.ok("import", *inputs, "--key", key, "--out", out, *extra, **kwargs)


@pytest.fixture(scope="session")
def stella_bin() -> Path:
    configured = os.environ.get("STELLA_BIN")
    binary = Path(configured) if configured else REPO / ".build" / "debug" / "stella-forensics"
    if not binary.is_file() or not os.access(binary, os.X_OK):
        pytest.fail(
            f"stella-forensics binary not found or not executable at {binary}; "
            "build it with `swift build` in the repository root or set STELLA_BIN",
            pytrace=False,
        )
    return binary.resolve()


@pytest.fixture(scope="session")
def stella(stella_bin: Path) -> Stella:
    return Stella(stella_bin)


@pytest.fixture(scope="session")
def expected() -> dict:
    return json.loads((FIXTURES / "expected.json").read_text(encoding="utf-8"))


@pytest.fixture
def keys(stella: Stella, tmp_path: Path) -> tuple[Path, Path]:
    """One key pair in tmp_path/keys."""
    return stella.keygen(tmp_path / "keys")


@pytest.fixture
def imported(stella: Stella, keys, tmp_path: Path) -> Path:
    """app.otlp.jsonl imported into tmp_path/bundle.sfb.tar with `keys`."""
    out = tmp_path / "bundle.sfb.tar"
    stella.import_([FIXTURES / "app.otlp.jsonl"], keys[0], out)
    assert out.is_file(), f"import did not write {out}"
    return out


def run_script(*args, **kwargs) -> Result:
    argv = [str(arg) for arg in args]
    completed = subprocess.run(argv, capture_output=True, timeout=CLI_TIMEOUT, check=False, **kwargs)
    return Result(
        argv,
        completed.returncode,
        completed.stdout.decode("utf-8", "replace"),
        completed.stderr.decode("utf-8", "replace"),
    )


def pytest_configure(config) -> None:
    # Capture e2e tests that run for tens of seconds (crash loop, full disk, slow clients):
    # `-m "not slow"` leaves them out of a quick local run; CI runs everything.
    config.addinivalue_line("markers", "slow: runs for tens of seconds (capture crash, full-disk, slow-client tests)")
    config.addinivalue_line(
        "markers", "adversarial: load attacks on capture (thousands of connections or tenants, gRPC floods, "
        "fsync faults); run with STELLA_ADVERSARIAL=1 (make test-adversarial)")


def pytest_collection_modifyitems(config, items) -> None:
    # The adversarial load tests hold thousands of sockets, tmpfs and loop devices and measure peak
    # memory against the documented bound; on a 2-core machine they need it to themselves (a build
    # beside them makes the figures meaningless), so `make test` leaves them to
    # `make test-adversarial`, run alone, whose figures go in the closing notes.
    if os.environ.get("STELLA_ADVERSARIAL") == "1":
        return
    skip = pytest.mark.skip(reason="adversarial load test: run alone with STELLA_ADVERSARIAL=1 (make test-adversarial)")
    for item in items:
        if Path(str(item.fspath)).name.startswith("test_adversarial_"):
            item.add_marker(skip)
