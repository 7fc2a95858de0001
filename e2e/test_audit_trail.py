"""The audit stream (issue 12, done-when 3 audit part and 4).

* Each admin refusal (no token 401, a viewer starting an incident 403, a browser-style text/plain
  POST with a foreign Origin 403, a foreign Host 421) is a record of the audit stream, and none of
  them creates, stops or seals anything. A TTL expiry is recorded too, by the node itself; the
  chain continues across a crash (kill -9) and restart.
* An incident started with `--declared-by mallory` by the token named alice is bundled with alice
  as declaredBy; the bundle holds the audit records of its start and stop (mallory only as the
  note), `inspect` shows them as the custody timeline, and their hash chain holds. Replay leaves
  the audit stream out.
* Withholding one audit record from the bundle and re-sealing and re-signing it (records after it
  renumbered, so only the chain can tell) makes `verify --deep` reject it with AUDIT_CHAIN_BROKEN;
  without renumbering the sequence check rejects it.

The audit reader below is written from the README's "The audit stream" section and
BUNDLE-FORMAT.md only: tarfile, the `zstandard` module, the §6.2 framing and the
opentelemetry-proto package. It never uses this tool to read a bundle.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import sys
import tarfile
import time
from pathlib import Path

import zstandard
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2

from capturelib import capture, http_request, trace_request, wait_for  # noqa: F401
from test_admin_auth import ALICE, VERA, incidents, token_file, tokens_file

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "fixtures"))
import sfb  # noqa: E402  (only to re-seal and re-sign a doctored bundle, never to read one)

AUDIT_TENANT = "stella-forensics:audit"
GENESIS = "0" * 64


# ---------------------------------------------------------------------------------------------
# The README's audit stream, read with standard parts.


@dataclasses.dataclass
class AuditRecord:
    node: str
    seq: int
    received: int
    request: bytes  # the serialized ExportLogsServiceRequest: what the chain hashes
    time: int
    attributes: dict

    def get(self, key: str):
        return self.attributes.get("stella.audit." + key)


def parse_segment(segment: bytes) -> tuple[int, str, str, list[tuple[int, int, bytes]]]:
    """BUNDLE-FORMAT.md §6.2: header, then framed records (seq, receivedUnixNano, request)."""
    assert segment[:4] == b"SFSG" and segment[4] == 1, segment[:8]
    signal = segment[5]
    offset = 6
    fields = []
    for _ in range(2):
        length = int.from_bytes(segment[offset:offset + 2], "big")
        fields.append(segment[offset + 2:offset + 2 + length].decode("utf-8"))
        offset += 2 + length
    records = []
    while offset < len(segment):
        assert segment[offset:offset + 4] == b"SFR\x01", f"record magic at {offset}"
        length = int.from_bytes(segment[offset + 4:offset + 8], "big")
        body = segment[offset + 12:offset + 12 + length]
        assert len(body) == length
        records.append((int.from_bytes(body[:8], "big"), int.from_bytes(body[8:16], "big"), body[16:]))
        offset += 12 + length
    return signal, fields[0], fields[1], records


def attribute_value(value):
    kind = value.WhichOneof("value")
    return getattr(value, kind) if kind else None


def audit_records(bundle: Path) -> tuple[dict, list[AuditRecord]]:
    """The manifest and every record of the bundle's audit streams, by (node, seq)."""
    with tarfile.open(bundle) as archive:
        manifest = json.loads(archive.extractfile("manifest.json").read())
        found = []
        for blob in manifest["blobs"]:
            if blob["tenant"] != AUDIT_TENANT or blob["signal"] != "logs":
                continue
            compressed = archive.extractfile(blob["path"]).read()
            segment = zstandard.ZstdDecompressor().decompress(compressed, max_output_size=blob["uncompressedSize"])
            signal, tenant, node, records = parse_segment(segment)
            assert (signal, tenant, node) == (2, AUDIT_TENANT, blob["node"])
            for seq, received, request in records:
                export = logs_service_pb2.ExportLogsServiceRequest.FromString(request)
                logs = [log for rl in export.resource_logs for sl in rl.scope_logs for log in sl.log_records]
                assert len(logs) == 1, "one LogRecord per audit record"
                scope = export.resource_logs[0].scope_logs[0].scope.name
                assert scope == "stella-forensics.audit", scope
                log = logs[0]
                attributes = {kv.key: attribute_value(kv.value) for kv in log.attributes}
                found.append(AuditRecord(node, seq, received, request, log.time_unix_nano, attributes))
    return manifest, sorted(found, key=lambda record: (record.node, record.seq))


def chain_problems(records: list[AuditRecord]) -> list[str]:
    """The README's hash rule: prev_sha256 = SHA-256 of the previous record's request bytes; seq 0
    names 64 zeros."""
    problems = []
    previous: AuditRecord | None = None
    for record in records:
        named = record.get("prev_sha256")
        if previous is not None and previous.node == record.node:
            expected = hashlib.sha256(previous.request).hexdigest()
            if record.seq != previous.seq + 1 or named != expected:
                problems.append(f"{record.node} seq {record.seq}: names {named}, expected {expected}")
        elif record.seq == 0 and named != GENESIS:
            problems.append(f"{record.node} seq 0 names {named}, not the genesis hash")
        previous = record
    return problems


# ---------------------------------------------------------------------------------------------
# Helpers.


def refuse_four_ways(service) -> None:
    """The four refusals of done-when 3, each answered as the README says."""
    port = service.admin_port
    body = b'{"reason":"forged","id":"INC-FORGED"}'
    json_type = {"Content-Type": "application/json"}
    assert http_request("127.0.0.1", port, "POST", "/incidents", body=body, headers=json_type).status == 401
    viewer = {**json_type, "Authorization": f"Bearer {VERA}"}
    assert http_request("127.0.0.1", port, "POST", "/incidents", body=body, headers=viewer).status == 403
    browser = {"Content-Type": "text/plain", "Origin": "http://evil.example"}
    assert http_request("127.0.0.1", port, "POST", "/incidents", body=body, headers=browser).status == 403
    rebound = {**json_type, "Host": "evil.example", "Authorization": f"Bearer {ALICE}"}
    assert http_request("127.0.0.1", port, "POST", "/seal", body=b"", headers=rebound).status == 421


def rfc3339(unix_seconds: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(unix_seconds))


# ---------------------------------------------------------------------------------------------
# Tests.


def test_refusals_and_expiry_are_audited_and_change_nothing(stella, capture, tmp_path):
    began = time.time()
    service = capture(None, "--admin-tokens", tokens_file(tmp_path))
    service.admin_token = ALICE
    assert service.post("/v1/traces", trace_request(["a-1"])).status == 200
    sealed_before = service.status()["journal"]["sealedSegments"]

    refuse_four_ways(service)
    # Nothing was created, stopped or sealed.
    assert incidents(service) == []
    assert service.status()["journal"]["sealedSegments"] == sealed_before
    assert not (service.data / "incidents.jsonl").exists() or not (service.data / "incidents.jsonl").read_text()
    # No client may write to the audit stream.
    forged_record = sfb.logs_request("forger", [(1_000, 1_000, "I am alice")])
    forged = service.post("/v1/logs", forged_record, headers={"X-Scope-OrgID": AUDIT_TENANT})
    assert forged.status == 403, str(forged)

    # Each record was durable before its answer, so the chain survives a crash (kill -9) and
    # continues after the restart; an expiry is recorded by the node itself.
    service.kill()
    service.start()
    expiring = service.admin("POST", "/incidents", body=b'{"reason":"short","id":"INC-TTL","ttl":"1s"}')
    assert expiring.status == 201, str(expiring)
    wait_for(lambda: incidents(service)[0]["state"] != "active", 10, "the TTL to expire INC-TTL")
    time.sleep(0.5)  # the expiry's record is written just after the state changes
    refuse_four_ways(service)
    service.stop()

    key, pub = stella.keygen(tmp_path / "keys")
    bundle = tmp_path / "range.sfb.tar"
    made = stella.run("bundle", "--data", service.data, "--from", rfc3339(began - 60), "--to",
                      rfc3339(time.time() + 60), "--tenant", AUDIT_TENANT, "--key", key, "--out", bundle)
    assert made.returncode == 0, made.describe()
    verified = stella.run("verify", bundle, "--trusted-key", pub, "--deep")
    assert verified.returncode == 0, verified.describe()

    manifest, records = audit_records(bundle)
    assert {blob["tenant"] for blob in manifest["blobs"]} == {AUDIT_TENANT}
    assert chain_problems(records) == []
    assert [record.seq for record in records] == list(range(len(records)))
    shown = [(r.get("action"), r.get("result"), r.get("status"), r.get("principal"), r.get("request"))
             for r in records]
    refusals = [
        ("incident.start", "refused", 401, None, "POST /incidents"),
        ("incident.start", "refused", 403, "vera", "POST /incidents"),
        ("incident.start", "refused", 403, None, "POST /incidents"),
        ("journal.seal", "refused", 421, None, "POST /seal"),
    ]
    assert shown == refusals + [
        ("incident.start", "done", 201, "alice", "POST /incidents"),
        ("incident.expire", "done", 0, "system", None),
    ] + refusals, shown
    reasons = [r.get("reason") for r in records[:4]]
    assert reasons[0] == "no Authorization header"
    assert "viewer" in reasons[1] and "Origin header" in reasons[2] and "foreign Host" in reasons[3], reasons
    assert all((r.get("peer") or "").startswith("127.0.0.1:") for r in records if r.get("action") != "incident.expire")
    assert records[5].get("incident_id") == "INC-TTL"
    assert all(a.time <= b.time for a, b in zip(records, records[1:])), "times follow the chain"


def test_incident_bundle_carries_its_custody_and_withholding_is_caught(stella, capture, tmp_path):
    service = capture(None, "--admin-tokens", tokens_file(tmp_path))
    service.admin_token = ALICE
    alice = token_file(tmp_path, "alice", ALICE)
    flags = ["--admin", service.admin_url, "--token-file", alice]
    refuse_four_ways(service)
    started = stella.run("incident", "start", "--reason", "card fraud", "--id", "INC-42", "--declared-by", "mallory",
                         "--lookback", "5m", *flags)
    assert started.returncode == 0, started.describe()
    for index in range(3):
        assert service.post("/v1/traces", trace_request([f"t-{index}"])).status == 200
    refuse_four_ways(service)
    stopped = stella.run("incident", "stop", "INC-42", "--stopped-by", "mallory", *flags)
    assert stopped.returncode == 0, stopped.describe()

    key, pub = stella.keygen(tmp_path / "keys")
    bundle = tmp_path / "inc.sfb.tar"
    made = stella.run("bundle", "--data", service.data, "--incident", "INC-42", "--key", key, "--out", bundle)
    assert made.returncode == 0, made.describe()
    verified = stella.run("verify", bundle, "--trusted-key", pub, "--deep")
    assert verified.returncode == 0, verified.describe()

    manifest, records = audit_records(bundle)
    assert manifest["incident"]["declaredBy"] == "alice", manifest["incident"]
    assert "mallory" not in json.dumps(manifest)
    assert chain_problems(records) == []
    start = [r for r in records if r.get("action") == "incident.start" and r.get("result") == "done"]
    stop = [r for r in records if r.get("action") == "incident.stop"]
    assert len(start) == 1 and len(stop) == 1, [r.attributes for r in records]
    assert start[0].get("principal") == "alice" and start[0].get("note") == "mallory"
    assert start[0].get("incident_id") == "INC-42" and start[0].get("status") == 201
    assert json.loads(start[0].get("parameters"))["declaredBy"] == "mallory"
    assert stop[0].get("principal") == "alice" and stop[0].get("note") == "mallory"
    assert stop[0].get("incident_id") == "INC-42" and stop[0].get("status") == 200
    assert len([r for r in records if r.get("result") == "refused"]) == 8

    # inspect: the custody timeline, text and JSON.
    text = stella.run("inspect", bundle)
    assert text.returncode == 0, text.describe()
    assert "custody" in text.stdout and "incident.start done (201) by alice" in text.stdout, text.stdout
    assert "(note: mallory)" in text.stdout and "incident.stop done (200) by alice" in text.stdout
    timeline = json.loads(stella.run("inspect", bundle, "--json").stdout)["custodyTimeline"]
    assert [event["seq"] for event in timeline] == [str(r.seq) for r in records]
    assert {event["action"] for event in timeline} == {"incident.start", "incident.stop", "journal.seal"}

    # Replay sends the telemetry, never the audit stream (a capture service refuses its tenant).
    site = capture()
    replayed = stella.run("replay", bundle, "--trusted-key", pub, "--endpoint", site.http_endpoint)
    assert replayed.returncode == 0, replayed.describe()
    assert {(s["signal"], s["tenant"]) for s in site.status()["journal"]["streams"]} == {("traces", "default")}
    assert site.records_received() == 3

    # Withhold the start record, re-seal and re-sign with the same key.
    signer = sfb.load_private_key(Path(key))
    target = start[0].seq
    for renumber, code in ((True, "AUDIT_CHAIN_BROKEN"), (False, "SEGMENT_SEQUENCE_MISMATCH")):
        doctored = tmp_path / f"withheld-{renumber}.sfb.tar"
        doctored.write_bytes(withhold(bundle, target, renumber, signer))
        rejected = stella.run("verify", doctored, "--trusted-key", pub, "--deep")
        assert rejected.returncode == 1, rejected.describe()
        assert f"REJECT {code}" in rejected.stdout, rejected.describe()
        if renumber:
            assert f"seq {target}" in rejected.stdout and "withheld" in rejected.stdout, rejected.stdout
            # The quick mode does not read segments, so it cannot tell.
            assert stella.run("verify", doctored, "--trusted-key", pub).returncode == 0
            # A co-signer checks deeply first, so it refuses to vouch for the doctored bundle.
            cosigned = stella.run("sign", doctored, "--key", key)
            assert cosigned.returncode == 1 and "AUDIT_CHAIN_BROKEN" in cosigned.stdout + cosigned.stderr, (
                cosigned.describe())


def withhold(bundle: Path, seq: int, renumber: bool, key) -> bytes:
    """The bundle without audit record `seq`: its blob rebuilt (later seqs renumbered down when
    `renumber`), the manifest entry recomputed, the manifest re-signed, the tar rewritten."""
    with tarfile.open(bundle) as archive:
        manifest = json.loads(archive.extractfile("manifest.json").read())
        members = {m.name: archive.extractfile(m).read() for m in archive.getmembers()}
    blobs = []
    for entry in manifest["blobs"]:
        data = members[entry["path"]]
        if entry["tenant"] == AUDIT_TENANT and int(entry["firstSeq"]) <= seq <= int(entry["lastSeq"]):
            segment = zstandard.ZstdDecompressor().decompress(data, max_output_size=entry["uncompressedSize"])
            _, tenant, node, records = parse_segment(segment)
            kept = [r for r in records if r[0] != seq]
            if renumber:
                kept = [(s - 1 if s > seq else s, received, request) for s, received, request in kept]
            rebuilt = sfb.Blob("logs", tenant, node, kept)
            entry = rebuilt.entry()
            data = rebuilt.blob_data()
        blobs.append((entry, data))
    blobs.sort(key=lambda pair: pair[0]["path"].encode())
    manifest["blobs"] = [entry for entry, _ in blobs]
    manifest_bytes = sfb.jcs(manifest)
    envelope = sfb.jcs(sfb.envelope(manifest_bytes, [key]))
    tar = [sfb.Member("manifest.json", manifest_bytes), sfb.Member("manifest.dsse.json", envelope)]
    tar += [sfb.Member(entry["path"], data) for entry, data in blobs]
    return sfb.tar_bytes(tar)
