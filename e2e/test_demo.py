"""`make run`'s demo (scripts/demo.sh) does the whole main job and says so.

The script itself stops on the first failing step (`set -e`) and compares the records the second
capture service received with the bundle's; this test holds it to finishing and to having shown
each stage: capture, incident start and stop, bundle, deep verify, tamper rejection, replay.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DEMO_TIMEOUT = 600  # seconds: two debug-build capture services and an SDK client on a loaded machine


def test_demo_runs_capture_to_replay_into_a_second_capture(stella_bin, tmp_path):
    env = {**os.environ, "STELLA_BIN": str(stella_bin), "TMPDIR": str(tmp_path)}
    completed = subprocess.run(["bash", str(REPO / "scripts" / "demo.sh")], cwd=REPO, env=env,
                               capture_output=True, text=True, timeout=DEMO_TIMEOUT)
    output = completed.stdout + completed.stderr
    assert completed.returncode == 0, f"demo.sh exit {completed.returncode}\n{output[-5000:]}"
    for stage in ("incident start", "incident stop", "bundle:", "verify --deep", "tamper:", "replay:", "== done"):
        assert stage in output, f"the demo did not show {stage!r}\n{output[-3000:]}"
    assert re.search(r"OK: \S+evidence\.sfb\.tar verified \(deep\)", output), output[-3000:]
    assert "tampered copy rejected (exit 1)" in output
    replayed = re.search(r"bundle holds (\d+) records; the site's stack received (\d+)", output)
    assert replayed, output[-3000:]
    assert int(replayed.group(1)) > 0 and replayed.group(1) == replayed.group(2), replayed.group(0)
    assert not list(tmp_path.glob("stella-demo.*")), "the demo left its work directory behind"
