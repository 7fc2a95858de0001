"""Incident mode end to end (issue "Incident mode"): tenant isolation, incident state across
`kill -9`, TTL expiry on time, `incident list`, and `bundle --incident`."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from capturelib import bundle_records, capture, captured_ids, read_bundle_records, trace_request, wait_for  # noqa: F401

TENANTS_CONFIG = """
tenancy:
  tenants: [acme, globex]
  unknown: reject
"""


def keypair(stella, tmp_path: Path) -> tuple[Path, Path]:
    made = stella.run("keygen", "--out", tmp_path / "keys", "--name", "analyst")
    assert made.returncode == 0, made.describe()
    return tmp_path / "keys" / "analyst.key", tmp_path / "keys" / "analyst.pub"


def incident(stella, service, *args) -> object:
    return stella.run("incident", *args, *service.cli_admin_args())


def test_two_tenants_interleaved_each_bundle_holds_only_its_own_records(stella, capture, tmp_path):
    config = tmp_path / "tenants.yaml"
    config.write_text(TENANTS_CONFIG)
    service = capture(None, "--config", config)
    sent: dict[str, list[str]] = {"acme": [], "globex": []}
    for index in range(40):
        tenant = "acme" if index % 3 else "globex"
        request_id = f"{tenant}-{index:03d}"
        result = service.post("/v1/traces", trace_request([request_id]), headers={"X-Scope-OrgID": tenant})
        assert result.status == 200, f"{request_id}: {result}"
        sent[tenant].append(request_id)
    # A tenant that is not configured is rejected as configured (403, permanent), and nothing of
    # it reaches the journal.
    refused = service.post("/v1/traces", trace_request(["mallory-1"]), headers={"X-Scope-OrgID": "mallory"})
    assert refused.status == 403, str(refused)
    assert b"not configured" in refused.body
    service.seal()
    keys = keypair(stella, tmp_path)
    for tenant in ("acme", "globex"):
        manifest, records = bundle_records(
            stella, service.data, keys, tmp_path / f"{tenant}.sfb.tar", "--tenant", tenant)
        assert {blob["tenant"] for blob in manifest["blobs"]} == {tenant}
        # Record by record: every segment header and every span belongs to this tenant.
        assert all(record.tenant == tenant for record in records)
        assert sorted(captured_ids(records)) == sorted(sent[tenant])
    statuses = service.status()["journal"]["streams"]
    assert {stream["tenant"] for stream in statuses} == {"acme", "globex"}


def test_incident_state_survives_kill_9_and_a_ttl_ends_it_on_time(stella, capture, tmp_path):
    service = capture()
    long_running = incident(stella, service, "start", "--reason", "credential stuffing", "--id", "INC-LONG",
                            "--lookback", "1m", "--tenant", "acme")
    assert long_running.returncode == 0, long_running.describe()
    assert long_running.stdout.strip() == "INC-LONG"
    short = incident(stella, service, "start", "--reason", "short probe", "--ttl", "3s", "--declared-by", "soc@example.org")
    assert short.returncode == 0, short.describe()
    short_id = short.stdout.strip()
    # Declared by the authenticated principal (the local operator's generated token); what the
    # caller says, --declared-by or else the CLI's OS identity, is only a note.
    listed = json.loads(incident(stella, service, "list", "--json").stdout)["incidents"]
    by_id = {item["id"]: item for item in listed}
    assert by_id["INC-LONG"]["declaredBy"] == "local-operator"
    assert by_id["INC-LONG"]["note"].count("@") == 1
    assert by_id[short_id]["declaredBy"] == "local-operator"
    assert by_id[short_id]["note"] == "soc@example.org"
    assert by_id[short_id]["state"] == "active"

    service.kill()
    service.start()
    listed = json.loads(incident(stella, service, "list", "--json").stdout)["incidents"]
    by_id = {item["id"]: item for item in listed}
    assert set(by_id) >= {"INC-LONG", short_id}, listed
    assert by_id["INC-LONG"]["state"] == "active"
    assert by_id["INC-LONG"]["tenants"] == ["acme"]
    assert by_id["INC-LONG"]["lookbackNanos"] == str(60 * 10**9)

    def expired():
        items = json.loads(incident(stella, service, "list", "--json").stdout)["incidents"]
        found = next(item for item in items if item["id"] == short_id)
        return found if found["state"] == "expired" else None

    ended = wait_for(expired, timeout=10, what="the 3 s TTL to end the incident")
    # Ended at exactly start + TTL, by the TTL, and no later than about a second after it.
    assert int(ended["endUnixNano"]) == int(ended["startUnixNano"]) + 3 * 10**9
    assert ended["endedBy"] == "ttl"
    assert time.time_ns() - int(ended["endUnixNano"]) < 5 * 10**9
    text = incident(stella, service, "list")
    assert text.returncode == 0 and short_id in text.stdout and "expired" in text.stdout

    stopped = incident(stella, service, "stop", "INC-LONG")
    assert stopped.returncode == 0, stopped.describe()
    again = incident(stella, service, "stop", "INC-LONG")
    assert again.returncode == 2 and "already ended" in again.stderr
    unknown = incident(stella, service, "stop", "INC-NOPE")
    assert unknown.returncode == 2 and "no incident" in unknown.stderr


def test_incident_bundle_holds_the_lookback_and_the_chain_of_custody(stella, capture, tmp_path):
    service = capture()
    before = [f"before-{index}" for index in range(5)]
    for request_id in before:
        assert service.post("/v1/traces", trace_request([request_id])).status == 200
    started = incident(stella, service, "start", "--reason", "exfiltration suspected", "--id", "INC-7",
                       "--lookback", "1m", "--declared-by", "analyst@soc.example")
    assert started.returncode == 0, started.describe()
    during = [f"during-{index}" for index in range(5)]
    for request_id in during:
        assert service.post("/v1/traces", trace_request([request_id])).status == 200
    assert incident(stella, service, "stop", "INC-7").returncode == 0
    key, pub = keypair(stella, tmp_path)
    key.chmod(0o600)
    out = tmp_path / "incident.sfb.tar"
    made = stella.run("bundle", "--data", service.data, "--incident", "INC-7", "--key", key, "--out", out)
    assert made.returncode == 0, made.describe()
    verified = stella.run("verify", out, "--trusted-key", pub, "--deep")
    assert verified.returncode == 0, verified.describe()
    manifest, records = read_bundle_records(out)
    assert sorted(captured_ids(records)) == sorted(before + during)
    facts = manifest["incident"]
    assert facts["id"] == "INC-7" and facts["reason"] == "exfiltration suspected"
    # Custody is the token's name; --declared-by stays a note of the incident log.
    assert facts["declaredBy"] == "local-operator"
    listed = {item["id"]: item for item in json.loads(incident(stella, service, "list", "--json").stdout)["incidents"]}
    assert listed["INC-7"]["note"] == "analyst@soc.example"
    assert facts["declaredAtUnixNano"] == listed["INC-7"]["startUnixNano"]
    # The window starts at start minus look-back, but never before the oldest record the node
    # held for it: this service started less than the 1m look-back before the incident.
    first_arrival = min(record.received for record in records)
    assert int(listed["INC-7"]["windowStartUnixNano"]) < first_arrival <= int(listed["INC-7"]["startUnixNano"])
    assert manifest["capture"]["startUnixNano"] == str(first_arrival)
    assert manifest["capture"]["endUnixNano"] == listed["INC-7"]["endUnixNano"]
    # The same incident bundled again is byte-identical.
    again = tmp_path / "again.sfb.tar"
    assert stella.run("bundle", "--data", service.data, "--incident", "INC-7", "--key", key, "--out", again).returncode == 0
    assert again.read_bytes() == out.read_bytes()


def incident_log_lines(data: Path, incident_id: str) -> list[dict]:
    """The lines of DATA/incidents.jsonl about one incident, oldest first."""
    lines = (data / "incidents.jsonl").read_text(encoding="utf-8").splitlines()
    return [entry for entry in map(json.loads, filter(None, lines)) if entry["id"] == incident_id]


@pytest.mark.parametrize("how", ["sigterm", "kill-9"])
def test_a_ttl_that_runs_out_while_capture_is_down_ends_the_incident_at_start_plus_ttl(
    how, stella, capture, tmp_path
):
    """README: a TTL that ran out while capture was down ends the incident at the TTL's time on
    the next start, not at the restart's time, and the incident bundle's window ends there."""
    ttl_seconds = 6
    service = capture()
    started = incident(stella, service, "start", "--reason", "ttl while down", "--id", "INC-DOWN",
                       "--ttl", f"{ttl_seconds}s", "--lookback", "1m")
    assert started.returncode == 0, started.describe()
    sent = [f"down-{index}" for index in range(3)]
    for request_id in sent:
        result = service.post("/v1/traces", trace_request([request_id]))
        assert result.status == 200, f"{request_id}: {result}"
    (listed,) = [item for item in json.loads(incident(stella, service, "list", "--json").stdout)["incidents"]
                 if item["id"] == "INC-DOWN"]
    start = int(listed["startUnixNano"])
    expires = start + ttl_seconds * 10**9
    assert listed["state"] == "active" and listed["ttlNanos"] == str(ttl_seconds * 10**9), listed

    if how == "sigterm":
        service.stop()
    else:
        service.kill()
    assert time.time_ns() < expires, "capture went down only after the TTL ran out: the test proves nothing"
    assert [entry["state"] for entry in incident_log_lines(service.data, "INC-DOWN")][-1] == "active"

    # Down across the expiry, with a margin so "ended at the restart" and "ended at the TTL" differ.
    time.sleep(max(0.0, (expires - time.time_ns()) / 1e9) + 1.5)
    restarted_at = time.time_ns()
    service.start()
    # Ended on start, before anything polls for it, at exactly start + TTL and by the TTL.
    (ended,) = [item for item in json.loads(incident(stella, service, "list", "--json").stdout)["incidents"]
                if item["id"] == "INC-DOWN"]
    assert ended["state"] == "expired", ended
    assert ended["endedBy"] == "ttl", ended
    assert int(ended["endUnixNano"]) == expires, (
        f"ended at {ended['endUnixNano']}, expected start + TTL = {expires} "
        f"({(int(ended['endUnixNano']) - expires) / 1e9:+.3f} s; "
        f"restarted {(restarted_at - expires) / 1e9:.3f} s after it)"
    )
    assert int(ended["startUnixNano"]) == start
    # Durably, once: another restart neither moves the end nor logs the expiry again.
    logged = incident_log_lines(service.data, "INC-DOWN")
    assert [entry["state"] for entry in logged].count("expired") == 1, logged
    assert logged[-1]["endUnixNano"] == str(expires), logged[-1]
    service.stop()
    service.start()
    (again,) = [item for item in json.loads(incident(stella, service, "list", "--json").stdout)["incidents"]
                if item["id"] == "INC-DOWN"]
    assert again == ended
    assert [entry["state"] for entry in incident_log_lines(service.data, "INC-DOWN")].count("expired") == 1

    # The incident bundle's window ends at the TTL's time and holds what was sent during it.
    key, pub = keypair(stella, tmp_path)
    key.chmod(0o600)
    out = tmp_path / "down.sfb.tar"
    made = stella.run("bundle", "--data", service.data, "--incident", "INC-DOWN", "--key", key, "--out", out)
    assert made.returncode == 0, made.describe()
    verified = stella.run("verify", out, "--trusted-key", pub, "--deep")
    assert verified.returncode == 0, verified.describe()
    manifest, records = read_bundle_records(out)
    assert manifest["capture"]["endUnixNano"] == str(expires), manifest["capture"]
    assert sorted(captured_ids(records)) == sorted(sent)
