"""Sync counts per durability policy, read from `/status` (`journal.syncs`, `journal.appendedRecords`).

README, "Durability": `fsync-per-batch` acknowledges after that request's own `fdatasync`;
`group-commit` after the `fdatasync` shared by every request that arrived during the previous sync;
`interval` after `write(2)`, files being synced every `sync-interval`. So, for one stream:

* one client waiting for each answer: every request is a batch of its own, and both syncing
  policies sync exactly once per request;
* several clients at once: `fsync-per-batch` still syncs once per request, `group-commit` shares
  syncs, so it syncs fewer times than it appends records;
* `interval` syncs at most once per interval whatever the load, about duration / interval times
  under continuous load, and once after an idle write (within about an interval), never when
  there is nothing to sync.

Kill -9 under `interval` is in test_capture_crash.py (nothing acknowledged may be lost).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from capturelib import CLIENTS, capture, read_id_log, trace_request, wait_for  # noqa: F401


def counters(service) -> tuple[int, int]:
    journal = service.status()["journal"]
    return int(journal["syncs"]), int(journal["appendedRecords"])


def timed_counters(service) -> tuple[float, int, int]:
    """(monotonic time at the middle of the /status request, syncs, appendedRecords)."""
    before = time.monotonic()
    syncs, records = counters(service)
    return (before + time.monotonic()) / 2, syncs, records


def load(service, tmp_path, name: str, *extra) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, str(CLIENTS / "load_client.py"), "--url", service.http_endpoint,
         "--out", str(tmp_path / name), "--prefix", name, *[str(arg) for arg in extra]],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def finish(client: subprocess.Popen) -> dict:
    out, err = client.communicate(timeout=120)
    assert client.returncode == 0, f"load client failed: {err[-3000:]}"
    summary = json.loads(out.strip().splitlines()[-1])
    assert summary["failureCount"] == 0, f"unexpected statuses: {summary['failures']}"
    return summary


@pytest.mark.parametrize("policy", ["fsync-per-batch", "group-commit"])
def test_one_client_at_a_time_gets_exactly_one_sync_per_request(policy, capture):
    service = capture(None, "--durability", policy)
    assert service.status()["journal"]["durability"] == policy
    syncs_before, records_before = counters(service)
    for index in range(40):
        result = service.post("/v1/traces", trace_request([f"{policy}-{index}"]))
        assert result.status == 200, f"{index}: {result}"
    syncs, records = counters(service)
    assert records - records_before == 40
    assert syncs - syncs_before == 40, f"{policy}: {syncs - syncs_before} syncs for 40 requests sent one by one"
    # Idle: nothing is synced when nothing was written.
    time.sleep(0.6)
    assert counters(service) == (syncs, records)


@pytest.mark.slow
def test_under_concurrent_load_fsync_per_batch_syncs_per_request_and_group_commit_shares(capture, tmp_path):
    measured = {}
    for policy in ("fsync-per-batch", "group-commit"):
        service = capture(tmp_path / f"data-{policy}", "--durability", policy)
        syncs_before, records_before = counters(service)
        summary = finish(load(service, tmp_path, policy, "--threads", "8", "--max-per-thread", "60",
                              "--duration", "90"))
        syncs, records = counters(service)
        acked = len(read_id_log(tmp_path / policy / "acked.log"))
        assert acked == 480 and summary["acked"] == 480, summary
        assert records - records_before == 480
        measured[policy] = syncs - syncs_before
        service.stop()
    print(f"syncs for 480 requests from 8 clients: {measured}")
    assert measured["fsync-per-batch"] == 480, f"fsync-per-batch must sync each request: {measured}"
    # Eight clients waiting on one disk: batches of several requests must form.
    assert 1 <= measured["group-commit"] < 480 * 0.75, f"group commit did not share syncs: {measured}"


@pytest.mark.slow
def test_interval_syncs_once_per_interval_under_load_and_once_after_an_idle_write(capture, tmp_path):
    interval = 0.1
    service = capture(None, "--durability", "interval", "--sync-interval", "100ms")
    assert service.status()["journal"]["durability"] == "interval"
    stop_file = tmp_path / "stop-client"
    client = load(service, tmp_path, "interval", "--threads", "4", "--duration", "60", "--stop-file", stop_file)
    try:
        wait_for(lambda: len(read_id_log(tmp_path / "interval" / "acked.log")) > 20, 30, "the first acks")
        t0, syncs0, records0 = timed_counters(service)
        time.sleep(3)
        t1, syncs1, records1 = timed_counters(service)
    finally:
        stop_file.touch()
    finish(client)
    periods = (t1 - t0) / interval
    syncs, records = syncs1 - syncs0, records1 - records0
    print(f"interval: {syncs} syncs, {records} records in {t1 - t0:.2f} s ({periods:.1f} intervals)")
    # One stream is synced at most once per interval: a policy that synced per batch would exceed this.
    assert syncs <= periods + 2, f"{syncs} syncs in {periods:.1f} intervals"
    # Under continuous load every interval has something to sync; the writer may run late on a busy machine.
    assert syncs >= periods * 0.4, f"only {syncs} syncs in {periods:.1f} intervals of continuous load"
    assert records >= 3 * syncs, f"{records} records for {syncs} syncs: writes are not sharing syncs"

    # Idle, then one write: it is synced once, within about an interval (the writer wakes every
    # 0.25 s), and nothing more follows.
    time.sleep(0.6)
    idle_syncs, idle_records = counters(service)
    time.sleep(0.6)
    assert counters(service) == (idle_syncs, idle_records), "syncs while nothing was written"
    result = service.post("/v1/traces", trace_request(["interval-idle"]))
    assert result.status == 200, str(result)
    wait_for(lambda: counters(service)[0] == idle_syncs + 1, 2, "the idle write's sync")
    time.sleep(0.6)
    assert counters(service) == (idle_syncs + 1, idle_records + 1)
