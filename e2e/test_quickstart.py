"""The README's quick start, run as written.

The shell blocks between `<!-- quickstart:begin -->` and `<!-- quickstart:end -->` are run with
`bash -e` in an empty directory, with the built binary first on PATH. The quick start uses
capture's default ports (4317, 4318, 4320), so it runs in a private network namespace
(`unshare --net`, loopback brought up) where those ports are always free, and in a private PID
namespace, so a capture left behind by a failing step dies with the namespace. The PID namespace
gets its own /proc (`--mount-proc`): with the host's /proc, /proc/<pid> names another process,
and the Swift binary then dies with SIGILL now and then (seen in about a third of CLI runs).

Passing means: every step exited 0, and what it left behind is a bundle that verifies with the
quick start's key and holds the span the quick start sent, under the incident it declared.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from capturelib import read_bundle_records

REPO = Path(__file__).resolve().parent.parent
README = REPO / "README.md"
BEGIN, END = "<!-- quickstart:begin -->", "<!-- quickstart:end -->"
RUN_TIMEOUT = 300  # a debug build on a loaded 2-core machine; the quick start itself takes seconds


def quickstart_script(readme: str) -> str:
    """The fenced shell blocks of the marked section, joined in order."""
    assert readme.count(BEGIN) == 1 and readme.count(END) == 1, "README.md needs exactly one marked quick start"
    section = readme[readme.index(BEGIN) + len(BEGIN): readme.index(END)]
    blocks = re.findall(r"^```(?:sh|bash|console)?\n(.*?)^```$", section, flags=re.MULTILINE | re.DOTALL)
    assert blocks, "the quick start section holds no ```sh block"
    return "\n".join(blocks)


def run_in_private_namespaces(script: Path, cwd: Path, env: dict) -> subprocess.CompletedProcess:
    for tool in ("unshare", "ip"):
        assert shutil.which(tool), f"the quick start test needs {tool} (util-linux, iproute2)"
    inner = f"ip link set lo up && exec bash -e {script}"
    return subprocess.run(
        ["unshare", "--net", "--pid", "--fork", "--kill-child", "--mount-proc", "bash", "-c", inner],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=RUN_TIMEOUT,
    )


def test_quickstart_runs_as_written_and_ends_with_a_verified_bundle(stella, stella_bin, tmp_path):
    script = tmp_path / "quickstart.sh"
    script.write_text(quickstart_script(README.read_text(encoding="utf-8")), encoding="utf-8")
    work = tmp_path / "work"
    work.mkdir()
    env = {**os.environ, "PATH": f"{stella_bin.parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    completed = run_in_private_namespaces(script, work, env)
    log = (work / "capture.log").read_text(errors="replace")[-3000:] if (work / "capture.log").exists() else ""
    assert completed.returncode == 0, (
        f"the quick start failed (exit {completed.returncode})\nstdout:\n{completed.stdout[-4000:]}\n"
        f"stderr:\n{completed.stderr[-4000:]}\ncapture.log:\n{log}"
    )

    bundle, public_key = work / "evidence.sfb.tar", work / "keys" / "analyst.pub"
    verified = stella.run("verify", bundle, "--trusted-key", public_key, "--deep", "--json")
    assert verified.returncode == 0, verified.describe()
    verdict = json.loads(verified.stdout)
    assert verdict["result"] == "verified" and verdict["mode"] == "deep", verdict

    manifest, records = read_bundle_records(bundle)
    spans = [
        span
        for record in records if record.signal == "traces"
        for resource_spans in record.request.resource_spans
        for scope_spans in resource_spans.scope_spans
        for span in scope_spans.spans
    ]
    assert [span.name for span in spans] == ["POST /checkout"], f"spans in the bundle: {spans}"
    assert spans[0].trace_id.hex() == "5b8efff798038103d269b633813fc60c"
    assert manifest["incident"]["reason"] == "checkout failures reported by support", manifest["incident"]
    # The quick start's last step stopped capture cleanly: a clean stop seals every open segment.
    assert not list((work / "stella-data").rglob("*.open")), "capture left open segments: it did not stop cleanly"
