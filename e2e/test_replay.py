"""Replay sends exactly what was archived, in order, to receivers written here with the official
`opentelemetry-proto` messages (HTTP on http.server, gRPC on grpcio), started on 127.0.0.1."""

from __future__ import annotations

import json
import time
from pathlib import Path

import grpc
import pytest

import bundlelib as bl
import replay_data
from conftest import FIXTURES, REPO
from replay_sinks import Behaviour, GRPCSink, HTTPSink, bundle_streams

TAMPERED = REPO / "fixtures" / "tampered"
BASE = TAMPERED / "base.sfb.tar"
BASE_KEY = TAMPERED / "keys" / "signer.pub"


@pytest.fixture
def generated(stella, keys, tmp_path: Path) -> Path:
    """A bundle of 30 synthetic requests (10 per signal) plus the real SDK fixture requests."""
    stream = tmp_path / "gen.pb"
    replay_data.write_stream(stream, requests=30, items=20)
    out = tmp_path / "gen.sfb.tar"
    stella.import_([stream, FIXTURES / "app.otlp.jsonl"], keys[0], out)
    return out


def sink_for(protocol: str, behaviour: Behaviour | None = None):
    return GRPCSink(behaviour) if protocol == "grpc" else HTTPSink(behaviour)


def replay(stella, bundle: Path, pub: Path, endpoint: str, *extra):
    return stella.run("replay", bundle, "--trusted-key", pub, "--endpoint", endpoint, *extra)


def received_by_signal(sink) -> dict[str, list]:
    by_signal: dict[str, list] = {}
    for item in sink.received:
        by_signal.setdefault(item.signal, []).append(item)
    return by_signal


def check_exact(bundle_path: Path, sink, protocol: str) -> int:
    """Every archived record arrived once, in sequence order per stream, bytes (or messages) equal."""
    bundle = bl.read_bundle(bundle_path)
    streams = bundle_streams(bundle)
    # Map each received request to its stream by its bytes; streams of one signal are told apart
    # by content, and within a stream the order must be the seq order.
    archived_index = {}
    for key, records in streams.items():
        for record in records:
            archived_index.setdefault((key[1], record.raw), []).append((key, record.seq))
    arrived: dict[tuple, list[int]] = {key: [] for key in streams}
    for item in sink.received:
        if protocol == "http/json":
            assert item.content_type == "application/json", item.content_type
            document = json.loads(item.body)
            # OTLP/JSON ids are hex, never base64.
            for text in _ids(document):
                assert len(text) in (16, 32) and all(c in "0123456789abcdef" for c in text), text
            raw = item.decoded().SerializeToString(deterministic=True)
            matches = [
                entry
                for (signal, archived), entries in archived_index.items()
                if signal == item.signal and bl.REQUEST_TYPES[signal].FromString(archived) == item.decoded()
                for entry in entries
            ]
            assert matches, f"a {item.signal} request matches no archived record: {raw[:80]!r}"
        else:
            if protocol == "http/protobuf":
                assert item.content_type == "application/x-protobuf", item.content_type
            matches = archived_index.get((item.signal, item.body))
            assert matches, f"a {item.signal} request is not byte-identical to any archived record"
        taken = [entry for entry in matches if entry[1] not in arrived[entry[0]]]
        key, seq = (taken or matches)[0]
        arrived[key].append(seq)
    for key, records in streams.items():
        assert arrived[key] == [record.seq for record in records], f"stream {key}: order {arrived[key]}"
    return sum(len(records) for records in streams.values())


def _ids(node):
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("traceId", "spanId", "parentSpanId") and isinstance(value, str):
                yield value
            else:
                yield from _ids(value)
    elif isinstance(node, list):
        for item in node:
            yield from _ids(item)


@pytest.mark.parametrize("protocol", ["http/protobuf", "grpc", "http/json"])
def test_every_record_arrives_exactly_in_order(stella, keys, generated, protocol):
    with sink_for(protocol) as sink:
        result = replay(stella, generated, keys[1], sink.endpoint, "--protocol", protocol, "--json")
    assert result.returncode == 0, result.describe()
    summary = json.loads(result.stdout)
    total = check_exact(generated, sink, protocol)
    assert summary["result"] == "completed"
    assert summary["recordsSent"] == total == summary["recordsTotal"] == summary["requests"]
    assert len(sink.received) == total
    assert summary["timeShiftNanos"] is None


@pytest.mark.parametrize("protocol", ["http/protobuf", "grpc"])
def test_multi_node_multi_tenant_bundle_arrives_exactly(stella, protocol):
    with sink_for(protocol) as sink:
        result = replay(stella, BASE, BASE_KEY, sink.endpoint, "--protocol", protocol)
    assert result.returncode == 0, result.describe()
    assert check_exact(BASE, sink, protocol) == 10
    assert "replayed 10 record(s)" in result.stdout


def test_filters_select_signals_and_tenants(stella):
    with HTTPSink() as sink:
        result = replay(stella, BASE, BASE_KEY, sink.endpoint, "--signal", "traces", "--tenant", "acme", "--json")
    assert result.returncode == 0, result.describe()
    assert {item.signal for item in sink.received} == {"traces"}
    assert json.loads(result.stdout)["recordsSent"] == 5 == len(sink.received)


def _times(signal: str, request) -> list[int]:
    """Every timestamp the replay may shift, in wire order of the walk."""
    found = []
    if signal == "traces":
        for rs in request.resource_spans:
            for ss in rs.scope_spans:
                for span in ss.spans:
                    found += [span.start_time_unix_nano, span.end_time_unix_nano]
                    found += [event.time_unix_nano for event in span.events]
    elif signal == "logs":
        for rl in request.resource_logs:
            for sl in rl.scope_logs:
                for log in sl.log_records:
                    found += [log.time_unix_nano, log.observed_time_unix_nano]
    else:
        for rm in request.resource_metrics:
            for sm in rm.scope_metrics:
                for metric in sm.metrics:
                    kind = metric.WhichOneof("data")
                    for point in getattr(metric, kind).data_points:
                        found += [point.start_time_unix_nano, point.time_unix_nano]
                        found += [exemplar.time_unix_nano for exemplar in getattr(point, "exemplars", [])]
    return found


def _without_times(signal: str, request):
    copy = type(request)()
    copy.CopyFrom(request)
    for container in (
        [s for rs in copy.resource_spans for ss in rs.scope_spans for s in ss.spans]
        if signal == "traces"
        else [l for rl in copy.resource_logs for sl in rl.scope_logs for l in sl.log_records]
        if signal == "logs"
        else []
    ):
        for field in ("start_time_unix_nano", "end_time_unix_nano", "time_unix_nano", "observed_time_unix_nano"):
            if hasattr(container, field):
                setattr(container, field, 0)
        for event in getattr(container, "events", []):
            event.time_unix_nano = 0
    if signal == "metrics":
        for rm in copy.resource_metrics:
            for sm in rm.scope_metrics:
                for metric in sm.metrics:
                    for point in getattr(metric, metric.WhichOneof("data")).data_points:
                        point.start_time_unix_nano = 0
                        point.time_unix_nano = 0
                        for exemplar in getattr(point, "exemplars", []):
                            exemplar.time_unix_nano = 0
    return copy


@pytest.mark.parametrize("protocol", ["http/protobuf", "http/json"])
def test_time_shift_now_moves_every_timestamp_by_one_offset(stella, keys, generated, protocol):
    bundle = bl.read_bundle(generated)
    newest = max(int(blob["lastTimeUnixNano"]) for blob in bundle.manifest["blobs"])
    before = time.time_ns()
    with sink_for(protocol) as sink:
        result = replay(stella, generated, keys[1], sink.endpoint, "--protocol", protocol, "--time-shift", "now", "--json")
    after = time.time_ns()
    assert result.returncode == 0, result.describe()
    offset = int(json.loads(result.stdout)["timeShiftNanos"])
    assert before <= newest + offset <= after, "the newest timestamp lands at the time replay started"
    archived = [r for records in bundle_streams(bundle).values() for r in records]
    assert len(sink.received) == len(archived)
    by_body = {}
    for key, records in bundle_streams(bundle).items():
        for record in records:
            by_body.setdefault(key[1], []).append(record)
    for signal, items in received_by_signal(sink).items():
        # Stream order within a signal is seq order here (one stream per signal in this bundle).
        for item, record in zip(items, by_body[signal]):
            got = item.decoded()
            want = record.request
            got_times, want_times = _times(signal, got), _times(signal, want)
            assert got_times == [t + offset if t else 0 for t in want_times]
            assert _without_times(signal, got) == _without_times(signal, want), "only timestamps change"
            if protocol == "http/protobuf":
                assert len(item.body) == len(record.raw), "fixed64 patched in place: same length"


def test_retries_honour_retry_after_then_deliver_in_order(stella, keys, generated):
    behaviour = Behaviour(statuses={0: (503, {"Retry-After": "1"}), 1: (429, {}), 4: (502, {})})
    with HTTPSink(behaviour) as sink:
        started = time.monotonic()
        result = replay(stella, generated, keys[1], sink.endpoint, "--json")
        elapsed = time.monotonic() - started
    assert result.returncode == 0, result.describe()
    summary = json.loads(result.stdout)
    assert summary["retries"] == 3
    assert elapsed >= 1.0, "Retry-After: 1 was honoured"
    check_exact(generated, sink, "http/protobuf")


def test_grpc_unavailable_is_retried(stella, keys, generated):
    behaviour = Behaviour(statuses={0: (grpc.StatusCode.UNAVAILABLE,), 3: (grpc.StatusCode.RESOURCE_EXHAUSTED,)})
    with GRPCSink(behaviour) as sink:
        result = replay(stella, generated, keys[1], sink.endpoint, "--protocol", "grpc", "--json")
    assert result.returncode == 0, result.describe()
    assert json.loads(result.stdout)["retries"] == 2
    check_exact(generated, sink, "grpc")


@pytest.mark.parametrize("protocol", ["http/protobuf", "grpc"])
def test_permanent_rejection_stops_with_exit_3_naming_stream_and_seq(stella, keys, generated, protocol):
    status = (grpc.StatusCode.INVALID_ARGUMENT,) if protocol == "grpc" else (400, {})
    with sink_for(protocol, Behaviour(statuses={2: status})) as sink:
        result = replay(stella, generated, keys[1], sink.endpoint, "--protocol", protocol, "--connections", "1", "--json")
    assert result.returncode == 3, result.describe()
    summary = json.loads(result.stdout)
    assert summary["result"] == "failed" and summary["code"] == "REJECTED_PERMANENTLY"
    assert summary["recordsSent"] == 2 == len(sink.received)
    # Records of import bundles have no arrival time, so on one connection streams go one after
    # another in stream order: the third request is traces seq 2.
    assert summary["failedStream"] == {"node": "import", "signal": "traces", "tenant": "default"}
    assert summary["failedSeq"] == "2"
    assert "stream import/traces/default seq 2" in result.stderr


@pytest.mark.parametrize("protocol", ["http/protobuf", "grpc"])
def test_a_refusal_in_one_stream_stops_every_stream_and_nothing_overtakes_it(stella, keys, generated, protocol):
    """Streams go out at once (the default); a refused record is never overtaken in its stream,
    and once it is refused no stream starts another request."""
    status = (grpc.StatusCode.INVALID_ARGUMENT,) if protocol == "grpc" else (400, {})
    with sink_for(protocol, Behaviour(signal_statuses={"logs": {3: status}}, delay=0.02)) as sink:
        result = replay(stella, generated, keys[1], sink.endpoint, "--protocol", protocol, "--json")
    assert result.returncode == 3, result.describe()
    summary = json.loads(result.stdout)
    assert summary["code"] == "REJECTED_PERMANENTLY"
    assert summary["failedStream"] == {"node": "import", "signal": "logs", "tenant": "default"}
    assert summary["failedSeq"] == "3"
    assert summary["recordsSent"] == len(sink.received)
    streams = bundle_streams(bl.read_bundle(generated))
    assert sorted(key[1] for key in streams) == ["logs", "metrics", "traces"], "one stream per signal"
    for key, records in streams.items():
        got = [item.body for item in sink.received if item.signal == key[1]]
        # What arrived of each stream is its first records, in order, and no more.
        assert got == [record.raw for record in records[: len(got)]], key
    assert len([item for item in sink.received if item.signal == "logs"]) == 3
    # The other streams stopped once the refusal was known: some of their records never went.
    assert len(sink.received) < sum(len(records) for records in streams.values()) - 1


@pytest.mark.parametrize("connections", ["1", "4"])
def test_exhausted_retries_exit_3(stella, keys, generated, connections):
    behaviour = Behaviour(statuses={n: (503, {"Retry-After": "0"}) for n in range(30)})
    with HTTPSink(behaviour) as sink:
        result = replay(stella, generated, keys[1], sink.endpoint, "--max-attempts", "3", "--connections", connections)
    assert result.returncode == 3, result.describe()
    assert "gave up after 3 attempts" in result.stderr
    assert not sink.received
    # One connection: exactly the three attempts. Three streams at once: each stops at its third
    # attempt at most.
    assert sink.attempts == 3 if connections == "1" else 3 <= sink.attempts <= 9


def test_speed_keeps_recorded_spacing_scaled(stella, keys, tmp_path):
    # 12 requests whose data times are 10 s apart; at 100x they should take about 1.1 s.
    stream = tmp_path / "spaced.pb"
    replay_data.write_stream(stream, requests=12, items=3)
    bundle = tmp_path / "spaced.sfb.tar"
    stella.import_([stream], keys[0], bundle)
    with HTTPSink() as sink:
        paced = replay(stella, bundle, keys[1], sink.endpoint, "--speed", "100x", "--json")
    assert paced.returncode == 0, paced.describe()
    with HTTPSink() as sink2:
        fast = replay(stella, bundle, keys[1], sink2.endpoint, "--speed", "max", "--json")
    assert fast.returncode == 0, fast.describe()
    # Sending time as replay reports it (verification excluded), so machine load does not blur it.
    paced_ms = json.loads(paced.stdout)["durationMillis"]
    fast_ms = json.loads(fast.stdout)["durationMillis"]
    # The 12 records span 110 s of recorded time (11 gaps of 10 s); at 100x that is 1.1 s.
    assert paced_ms >= 1050, f"100x of 110 s of recorded time took only {paced_ms} ms"
    assert paced_ms < 1100 + 3000, f"pacing overshot: {paced_ms} ms"
    assert fast_ms < paced_ms - 800
    # Paced, streams interleave on the timeline: signals alternate as they were recorded.
    assert [item.signal for item in sink.received] == ["traces", "logs", "metrics"] * 4
