"""Runs one replay inside a private network and mount namespace, with a receiver beside it.

Started by the refusal tests as `unshare --net --mount python3 replay_sandbox.py SPEC.json`:
the namespace has only a loopback interface, so even a replay that wrongly tried an address like
10.1.2.3 could send nothing off this machine, and /etc/hosts is bind-mounted from the spec so a
test host name can resolve to a mix of loopback and non-loopback addresses. The receiver listens
on 127.0.0.1 inside the namespace and counts every connection. Prints one JSON object.

SPEC: {"hosts": "...", "argv": [...], "endpoint_template": "..."}; "{port}" in argv is replaced
by the receiver's port.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from replay_sinks import HTTPSink  # noqa: E402


def main() -> None:
    spec = json.loads(Path(sys.argv[1]).read_text())
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    if spec.get("hosts") is not None:
        with tempfile.NamedTemporaryFile("w", suffix=".hosts", delete=False) as hosts:
            hosts.write(spec["hosts"])
        subprocess.run(["mount", "--bind", hosts.name, "/etc/hosts"], check=True)
    with HTTPSink() as sink:
        argv = [arg.replace("{port}", str(sink.port)) for arg in spec["argv"]]
        completed = subprocess.run(argv, capture_output=True, timeout=60, check=False)
        connections = sink.connections
        received = len(sink.received)
    print(
        json.dumps(
            {
                "returncode": completed.returncode,
                "stdout": completed.stdout.decode("utf-8", "replace"),
                "stderr": completed.stderr.decode("utf-8", "replace"),
                "connections": connections,
                "received": received,
            }
        )
    )


if __name__ == "__main__":
    main()
