"""Issue 4, done-when 3: a full journal filesystem gives backpressure, not loss; capture recovers alone.

The data dir is a 24 MiB tmpfs (mounted by the test; needs root, skipped with the reason otherwise).
A filler file leaves a few MiB free, and a load client (padded SDK-encoded trace requests, each
with a unique `req.id`) fills the rest until capture answers 503/429 with `Retry-After`. Then
the filler grows until the filesystem is completely full (ENOSPC for anyone writing). Capture
must keep answering `/healthz`, keep refusing with backpressure, and, once the filler is
deleted, accept again without a restart (same process). At the end a bundle of the data dir
verifies (`--deep`) and holds every acknowledged id.
"""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from capturelib import CLIENTS, bundle_records, capture, captured_ids, read_id_log, trace_request  # noqa: F401

MIB = 1024 * 1024
TMPFS_SIZE = "24m"


@pytest.fixture
def tmpfs(tmp_path: Path):
    """A 24 MiB tmpfs at tmp_path/disk; unmounted at teardown (request it before `capture`)."""
    mountpoint = tmp_path / "disk"
    mountpoint.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={TMPFS_SIZE},mode=0755", "tmpfs", str(mountpoint)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root / CAP_SYS_ADMIN): {mounted.stderr.strip()}")
    try:
        yield mountpoint
    finally:
        if subprocess.run(["umount", str(mountpoint)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(mountpoint)], capture_output=True)


def free_bytes(path: Path) -> int:
    stats = os.statvfs(path)
    return stats.f_bavail * stats.f_frsize


def fill(path: Path, leave: int) -> None:
    """Append to the filler file until at most `leave` bytes are free (or the disk is full)."""
    chunk = b"\0" * MIB
    with open(path, "ab") as handle:
        while free_bytes(path.parent) > leave:
            want = min(MIB, free_bytes(path.parent) - leave)
            try:
                handle.write(chunk[: max(want, 4096)])
                handle.flush()
            except OSError as error:
                if error.errno == errno.ENOSPC:
                    return
                raise


def fill_completely(path: Path) -> None:
    """Write until ENOSPC, ending with small writes so not even a page is left."""
    for size in (MIB, 64 * 1024, 4096, 512):
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
        try:
            while True:
                os.write(fd, b"\0" * size)
        except OSError as error:
            if error.errno != errno.ENOSPC:
                raise
        finally:
            os.close(fd)


@pytest.mark.slow
def test_full_disk_backpressure_then_recovery_without_restart(tmpfs, capture, stella, keys, tmp_path):
    data = tmpfs / "journal"
    service = capture(data, "--min-free-bytes", "2MiB", "--segment-max-bytes", "2MiB")
    pid = service.proc.pid
    filler = tmpfs / "filler.bin"
    fill(filler, leave=8 * MIB)

    client_dir = tmp_path / "client"
    stop_file = tmp_path / "stop-client"
    client = subprocess.Popen(
        [sys.executable, str(CLIENTS / "load_client.py"), "--url", service.http_endpoint, "--out", str(client_dir),
         "--threads", "2", "--prefix", "disk", "--pad-bytes", "16384", "--duration", "120",
         "--stop-file", str(stop_file), "--max-backoff", "0.2"],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    probe_acked: list[str] = []
    probe_number = 0

    def probe() -> tuple[int, dict]:
        """One padded request of our own; its id counts as acknowledged if it got 200."""
        nonlocal probe_number
        probe_number += 1
        request_id = f"probe-{probe_number}"
        result = service.post("/v1/traces", trace_request([request_id], pad_bytes=16384))
        if result.status == 200:
            probe_acked.append(request_id)
        return result.status, result.headers

    try:
        # 1. Fill the remaining space until capture pushes back.
        deadline = time.monotonic() + 60
        while True:
            status, headers = probe()
            if status in (429, 503):
                break
            assert status == 200, f"probe answered {status} before the disk was full\n{service.describe()}"
            assert time.monotonic() < deadline, (
                f"no backpressure after 60 s; {free_bytes(tmpfs)} bytes free\n{service.describe()}"
            )
            time.sleep(0.1)
        assert "retry-after" in headers, f"{status} without Retry-After: {headers}"
        assert float(headers["retry-after"]) >= 0, f"Retry-After {headers['retry-after']!r}"
        assert service.alive(), service.describe()
        journal = service.status()["journal"]
        assert journal["accepting"] is False, f"/status says accepting while answering {status}: {journal}"

        # 2. Now leave no byte free at all: capture must not crash or corrupt anything.
        fill_completely(filler)
        assert free_bytes(tmpfs) < 64 * 1024, f"{free_bytes(tmpfs)} bytes still free"
        for _ in range(10):
            status, headers = probe()
            assert status in (429, 503), f"probe answered {status} on a full disk\n{service.describe()}"
            assert "retry-after" in headers, f"{status} without Retry-After: {headers}"
            time.sleep(0.1)
        healthz = service.admin("GET", "/healthz")
        assert healthz.status == 200, f"/healthz on a full disk: {healthz}\n{service.describe()}"
        acked_while_full = len(read_id_log(client_dir / "acked.log"))

        # 3. Free the space: the same process accepts again.
        filler.unlink()
        deadline = time.monotonic() + 30
        while probe()[0] != 200:
            assert time.monotonic() < deadline, f"still refusing 30 s after space was freed\n{service.describe()}"
            time.sleep(0.2)
        assert service.proc.pid == pid and service.alive(), "capture was restarted or died"
        assert service.status()["journal"]["accepting"] is True
        growth_deadline = time.monotonic() + 30
        while len(read_id_log(client_dir / "acked.log")) < acked_while_full + 20:
            assert time.monotonic() < growth_deadline, "the load client gets no 200s after space was freed"
            time.sleep(0.2)
    finally:
        stop_file.touch()
        out, err = client.communicate(timeout=60)
    assert client.returncode == 0, f"load client failed: {err[-3000:]}"
    summary = json.loads(out.strip().splitlines()[-1])
    assert summary["missingRetryAfter"] == 0, f"backpressure answers without Retry-After: {summary}"
    assert summary["failureCount"] == 0, f"unexpected statuses: {summary['failures']}"
    assert summary["statuses"].get("503", 0) + summary["statuses"].get("429", 0) > 0, (
        f"the load client never saw backpressure: {summary}"
    )
    service.stop()

    _, records = bundle_records(stella, data, keys, tmp_path / "bundle.sfb.tar")
    stored = set(captured_ids(records))
    acked = read_id_log(client_dir / "acked.log") + probe_acked
    missing = [request_id for request_id in acked if request_id not in stored]
    print(f"{len(acked)} acked, {len(stored)} stored, client {summary}")
    assert not missing, f"{len(missing)} acknowledged ids lost, e.g. {missing[:10]}"


# ---------------------------------------------------------------------------------------------
# ENOSPC in the write itself. With the free-space floor at 0 nothing refuses a request before
# the journal writes it, so the disk runs out inside a record's write(2). README: "A write that
# fails half way is cut back to the last whole record, so a full disk never leaves a torn record
# in the middle of a segment; the service keeps answering, and accepts again as soon as space
# returns ..., without a restart."

PROBE_PAD = 64 * 1024  # bigger than a tmpfs page: the last one cannot fit into slack


def open_segment_records(data: Path) -> dict[Path, int]:
    """Whole records in each open segment file; fails unless every file ends on a record whose
    CRC-32C is right (a torn or half-cut record would not)."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "fixtures"))
    import sfb  # fixtures/sfb.py: the independent implementation of the format

    found = {}
    for path in sorted((data / "journal").rglob("*.open")):
        segment = path.read_bytes()
        assert segment[:5] == b"SFSG\x01", f"{path}: bad segment header"
        position = 6
        position += 2 + int.from_bytes(segment[position : position + 2], "big")
        position += 2 + int.from_bytes(segment[position : position + 2], "big")
        count, last = 0, None
        while position < len(segment):
            assert segment[position : position + 4] == b"SFR\x01", f"{path}: no record at byte {position}"
            length = int.from_bytes(segment[position + 4 : position + 8], "big")
            assert position + 12 + length <= len(segment), f"{path}: torn record at byte {position}"
            last = position
            position += 12 + length
            count += 1
        if last is not None:
            length = int.from_bytes(segment[last + 4 : last + 8], "big")
            crc = int.from_bytes(segment[last + 8 : last + 12], "big")
            assert sfb.crc32c(segment[last + 12 : last + 12 + length]) == crc, f"{path}: last record's CRC"
        found[path] = count
    return found


@pytest.mark.slow
def test_enospc_inside_a_record_write_cuts_it_back_and_capture_resumes_without_restart(
    tmpfs, capture, stella, keys, tmp_path
):
    data = tmpfs / "journal"
    # No age rotation during the test: a seal would move records out of the open file counted below.
    service = capture(data, "--min-free-bytes", "0", "--segment-max-age", "10m")
    pid = service.proc.pid
    filler = tmpfs / "filler.bin"
    fill(filler, leave=6 * MIB)
    acked: list[str] = []
    refused: list[str] = []
    sent = 0

    def probe():
        nonlocal sent
        sent += 1
        request_id = f"enospc-{sent}"
        result = service.post("/v1/traces", trace_request([request_id], pad_bytes=PROBE_PAD))
        (acked if result.status == 200 else refused).append(request_id)
        return result

    # 1. The journal's own records fill the disk until a write runs out of space.
    deadline = time.monotonic() + 90
    while (result := probe()).status == 200:
        assert time.monotonic() < deadline, (
            f"still accepting after 90 s, {free_bytes(tmpfs)} bytes free\n{service.describe()}"
        )
    assert result.status == 503, f"{result}\n{service.describe()}"
    assert "retry-after" in result.headers, str(result)
    assert b"journal file system is full" in result.body, (
        f"refused before writing, not by ENOSPC in the write (the floor is 0): {result}\n{service.describe()}"
    )
    assert len(acked) >= 20, f"only {len(acked)} requests fit in 6 MiB"
    records = open_segment_records(data)
    assert sum(records.values()) == len(acked), f"open segments hold {records}, {len(acked)} acknowledged"

    # 2. Not a byte left: every big request fails in its write, is cut back, and gets 503.
    fill_completely(filler)
    for _ in range(5):
        result = probe()
        assert result.status == 503 and b"journal file system is full" in result.body, f"{result}\n{service.describe()}"
    assert open_segment_records(data) == records, "a refused write left bytes behind in an open segment"
    assert service.admin("GET", "/healthz").status == 200 and service.alive(), service.describe()

    # 3. Space returns: the same process accepts again.
    filler.unlink()
    deadline = time.monotonic() + 30
    while probe().status != 200:
        assert time.monotonic() < deadline, f"still refusing 30 s after space was freed\n{service.describe()}"
        time.sleep(0.2)
    for _ in range(10):
        result = probe()
        assert result.status == 200, f"{result}\n{service.describe()}"
    assert service.proc.pid == pid and service.alive(), "capture was restarted or died"
    service.stop()
    stderr = service.stderr_path.read_text(errors="replace")
    assert "corrupt" not in stderr.lower() and "torn" not in stderr.lower(), stderr[-3000:]

    # 4. The evidence: verifies deeply, holds every acknowledged request once, and none refused.
    _, stored_records = bundle_records(stella, data, keys, tmp_path / "bundle.sfb.tar")
    stored = captured_ids(stored_records)
    assert len(stored) == len(set(stored)), "a request is stored twice"
    missing = [request_id for request_id in acked if request_id not in stored]
    assert not missing, f"{len(missing)} acknowledged requests lost, e.g. {missing[:10]}"
    # Each probe was a batch of its own, and a batch that fails is cut back whole.
    leaked = [request_id for request_id in refused if request_id in stored]
    assert not leaked, f"refused requests in the journal: {leaked[:10]}"
    print(f"{len(acked)} acked, {len(refused)} refused, {len(stored)} stored")
