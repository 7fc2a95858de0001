"""Resume: replay killed with SIGKILL at random moments and restarted from its checkpoint ends
with every record at the receiver, and duplicates at most the one batch in flight per kill."""

from __future__ import annotations

import json
import random
import signal
import subprocess
import time
from collections import Counter
from pathlib import Path

import pytest

import bundlelib as bl
import replay_data
from replay_sinks import Behaviour, GRPCSink, HTTPSink, bundle_streams

BATCH = 5
KILLS = 10


@pytest.mark.parametrize("protocol", ["http/protobuf", "grpc"])
def test_sigkill_at_random_points_then_resume_loses_nothing(stella, stella_bin, keys, tmp_path, protocol):
    stream = tmp_path / "many.pb"
    replay_data.write_stream(stream, requests=240, items=4)
    bundle_path = tmp_path / "many.sfb.tar"
    stella.import_([stream], keys[0], bundle_path)
    bundle = bl.read_bundle(bundle_path)
    streams = bundle_streams(bundle)
    identity = {(key[1], record.raw): (key, record.seq) for key, records in streams.items() for record in records}
    total = len(identity)
    assert total == 240

    checkpoint = tmp_path / "replay.checkpoint"
    rng = random.Random(20261125)
    # Three streams go out at once, so each request is slowed enough for ten kills to land.
    behaviour = Behaviour(delay=0.03)
    sink = GRPCSink(behaviour) if protocol == "grpc" else HTTPSink(behaviour)
    argv = [
        stella_bin, "replay", bundle_path, "--trusted-key", keys[1], "--endpoint", sink.endpoint,
        "--protocol", protocol, "--checkpoint", checkpoint, "--batch-records", str(BATCH),
    ]
    kills = 0
    kills_mid_send = 0
    with sink:
        while kills < KILLS:
            before = len(sink.received)
            process = subprocess.Popen([str(a) for a in argv], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            # Wait until this run has sent something (or a random short while), then kill at a random point.
            deadline = time.monotonic() + 10
            while len(sink.received) == before and process.poll() is None and time.monotonic() < deadline:
                time.sleep(0.005)
            time.sleep(rng.uniform(0.0, 0.25))
            if process.poll() is not None:
                break  # finished before the kill: nothing left to interrupt
            process.send_signal(signal.SIGKILL)
            process.wait()
            kills += 1
            if len(sink.received) > before:
                kills_mid_send += 1
        final = subprocess.run([str(a) for a in argv] + ["--json"], capture_output=True, timeout=120, check=False)
    assert final.returncode == 0, final.stderr.decode()
    assert kills >= KILLS, f"only {kills} kills landed before the replay finished; slow the receiver down"
    assert kills_mid_send >= KILLS // 2, "most kills should interrupt a replay that is sending"
    summary = json.loads(final.stdout)
    assert summary["result"] == "completed"
    assert summary["recordsAlreadyDone"] + summary["recordsSent"] == total

    arrived = [identity[(item.signal, item.body)] for item in sink.received]
    counts = Counter(arrived)
    missing = set(identity.values()) - set(counts)
    assert not missing, f"{len(missing)} records never arrived"
    duplicates = sum(count - 1 for count in counts.values())
    # A kill can cost each stream the batch it had not checkpointed yet.
    assert duplicates <= kills * BATCH * len(streams), f"{duplicates} duplicates for {kills} kills of batches of {BATCH}"
    # Each stream's records arrive in seq order; a restart may go back, but by less than one batch.
    for key, records in streams.items():
        seqs = [seq for stream_key, seq in arrived if stream_key == key]
        for previous, current in zip(seqs, seqs[1:]):
            assert current == previous + 1 or previous - BATCH < current <= previous, f"{key}: {previous} → {current}"

    # Running again with the finished checkpoint sends nothing.
    with HTTPSink() as idle:
        again = subprocess.run(
            [str(a) for a in argv[:5]] + ["--endpoint", idle.endpoint, "--checkpoint", str(checkpoint), "--json"],
            capture_output=True, timeout=60, check=False,
        )
    assert again.returncode == 0, again.stderr.decode()
    assert json.loads(again.stdout)["recordsSent"] == 0 and idle.attempts == 0


def test_checkpoint_of_another_bundle_is_refused(stella, keys, tmp_path):
    from test_replay_refusals import BASE, KEYS

    stream = tmp_path / "few.pb"
    replay_data.write_stream(stream, requests=3, items=2)
    bundle_path = tmp_path / "few.sfb.tar"
    stella.import_([stream], keys[0], bundle_path)
    checkpoint = tmp_path / "c.json"
    with HTTPSink() as sink:
        first = stella.run("replay", bundle_path, "--trusted-key", keys[1], "--endpoint", sink.endpoint, "--checkpoint", checkpoint)
        assert first.returncode == 0, first.describe()
        other = stella.run("replay", BASE, "--trusted-key", KEYS / "signer.pub", "--endpoint", sink.endpoint, "--checkpoint", checkpoint)
        assert other.returncode == 2, other.describe()
        assert "belongs to the bundle" in other.stderr
        shifted = stella.run(
            "replay", bundle_path, "--trusted-key", keys[1], "--endpoint", sink.endpoint, "--checkpoint", checkpoint,
            "--time-shift", "now",
        )
        assert shifted.returncode == 2, shifted.describe()
        assert len(sink.received) == 3
    stored = json.loads(checkpoint.read_text())
    assert stored["kind"] == "stella-forensics replay checkpoint"
    assert {entry["signal"]: entry["nextSeq"] for entry in stored["streams"]} == {"traces": "1", "logs": "1", "metrics": "1"}


def test_after_a_permanent_rejection_a_rerun_resumes_at_the_refused_record(stella, keys, tmp_path):
    stream = tmp_path / "few.pb"
    replay_data.write_stream(stream, requests=9, items=2)
    bundle_path = tmp_path / "few.sfb.tar"
    stella.import_([stream], keys[0], bundle_path)
    streams = bundle_streams(bl.read_bundle(bundle_path))
    traces = streams[("import", "traces", "default")]
    checkpoint = tmp_path / "c.json"
    args = ["replay", bundle_path, "--trusted-key", keys[1], "--checkpoint", checkpoint, "--batch-records", "50"]
    with HTTPSink(Behaviour(signal_statuses={"traces": {2: (400, {})}})) as refusing:
        first = stella.run(*args, "--endpoint", refusing.endpoint)
    assert first.returncode == 3, first.describe()
    assert [item.body for item in refusing.received if item.signal == "traces"] == [traces[0].raw, traces[1].raw]
    with HTTPSink() as healthy:
        second = stella.run(*args, "--endpoint", healthy.endpoint, "--json")
    assert second.returncode == 0, second.describe()
    # Every record the first run had acknowledged is skipped, and only those.
    assert json.loads(second.stdout)["recordsAlreadyDone"] == len(refusing.received)
    resent_traces = [item.body for item in healthy.received if item.signal == "traces"]
    assert resent_traces[0] == traces[2].raw, "the refused record is the first of its stream sent again"
    assert len(healthy.received) == 9 - len(refusing.received)
