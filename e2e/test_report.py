"""`stella-forensics report` rendered by a real browser (issue 17, done-when 2).

A real incident bundle (capture service, traffic for two tenants and two signals, incident start
and stop through the CLI, `bundle --incident`) is reported with `report`, and Debian's headless
Chromium renders the HTML inside `unshare --net` (no network at all): the DOM must hold the
verdict, the incident id, every stream of the signed manifest with its counts, and the custody
events; a screenshot is taken into the test's tmp dir. The report of the same bundle with one
segment byte flipped shows REJECTED and its reason code, and nothing of the content. Chromium's
net log must show no request made for the page (those carry the network isolation key `file://…`;
Chromium's own update and time services carry others).

A bundle made with fixtures/sfb.py puts `<script>` and `<img onerror>` into a tenant, a node and
the incident facts: Chromium must find them as text, never as elements.
The verified report is also printed to PDF by Chromium (the page's print style).

The commands the report prints for OpenSSL and Python are run as printed.
"""

from __future__ import annotations

import hashlib
import html.parser
import json
import os
import shutil
import subprocess
import sys
import tarfile
import time
import warnings
from pathlib import Path

import pytest

from capturelib import capture, trace_request  # noqa: F401

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "fixtures"))
import sfb  # noqa: E402  (independent writer of the bundle format, for the hostile bundle)

CHROMIUM = shutil.which("chromium")
CHROMIUM_TIMEOUT = 300  # seconds; Chromium on a loaded 2-core machine is slow to start
TENANTS_CONFIG = """
tenancy:
  tenants: [acme, globex]
  unknown: reject
"""
HOSTILE_REASON = "<script>document.title='pwned-reason'</script> card fraud"
HOSTILE_NOTE = "<img src=x onerror=\"document.title='pwned-note'\">"


# ---------------------------------------------------------------------------------------------
# Chromium


def network_isolation() -> list[str]:
    """The command prefix that takes the network away from Chromium. Without one (no unshare, or
    no permission for a network namespace) Chromium runs with the network, the net log still
    decides, and the test says so in a warning."""
    for prefix in (["unshare", "--net"], ["unshare", "-n", "-r"]):
        if shutil.which(prefix[0]) and subprocess.run([*prefix, "true"], capture_output=True).returncode == 0:
            return prefix
    warnings.warn("unshare cannot make a network namespace here: Chromium runs with the network")
    return []


def chromium(page: Path, work: Path, *mode: str) -> subprocess.CompletedProcess:
    """Runs headless Chromium on `page` with a fresh profile and a full net log in `work`."""
    if CHROMIUM is None:
        pytest.skip("chromium is not installed (scripts/setup.sh installs Debian's chromium)")
    work.mkdir(parents=True, exist_ok=True)
    argv = [
        *network_isolation(), CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu",
        "--disable-background-networking", "--disable-component-update", "--no-first-run",
        f"--user-data-dir={work / 'profile'}", f"--log-net-log={work / 'net-log.json'}",
        "--net-log-capture-mode=Everything", *mode, page.resolve().as_uri(),
    ]
    completed = subprocess.run(argv, capture_output=True, timeout=CHROMIUM_TIMEOUT, cwd=work, check=False)
    assert completed.returncode == 0, completed.stderr.decode(errors="replace")[-3000:]
    return completed


def page_requests(net_log: Path) -> list[str]:
    """URLs of every request Chromium's network stack started on behalf of a file:// page."""
    log = json.loads(net_log.read_text(encoding="utf-8"))
    types = {number: name for name, number in log["constants"]["logEventTypes"].items()}
    urls = []
    for event in log["events"]:
        params = event.get("params") or {}
        if types.get(event["type"]) == "URL_REQUEST_START_JOB" and "url" in params:
            if str(params.get("network_isolation_key", "")).startswith("file://"):
                urls.append(params["url"])
    return urls


class DOM(html.parser.HTMLParser):
    """The rendered DOM as Chromium serialized it: element names, ids' text, table rows."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[str] = []
        self.title = ""
        self._in_title = False
        self.text_by_id: dict[str, str] = {}
        self.rows_by_table: dict[str, list[list[str]]] = {}
        self._open_ids: list[tuple[str, str]] = []
        self._table: str | None = None
        self._cell: list[str] | None = None
        self._row: list[str] | None = None
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        # The document's title, not the SVG charts' <title> elements.
        self._in_title = tag == "title" and "body" not in self.tags
        attributes = dict(attrs)
        if "id" in attributes:
            self._open_ids.append((tag, attributes["id"]))
            self.text_by_id.setdefault(attributes["id"], "")
            if tag == "table":
                self._table = attributes["id"]
                self.rows_by_table[self._table] = []
        if tag == "tr" and self._table:
            self._row = []
        if tag in ("td", "th") and self._row is not None:
            self._cell = []

    def handle_endtag(self, tag):
        if tag == "title":
            self._in_title = False
        if tag in ("td", "th") and self._cell is not None and self._row is not None:
            self._row.append("".join(self._cell))
            self._cell = None
        if tag == "tr" and self._row is not None and self._table:
            self.rows_by_table[self._table].append(self._row)
            self._row = None
        if tag == "table":
            self._table = None
        if self._open_ids and self._open_ids[-1][0] == tag:
            self._open_ids.pop()

    def handle_data(self, data):
        if self._in_title:
            self.title += data
        for _, element_id in self._open_ids:
            self.text_by_id[element_id] += data
        if self._cell is not None:
            self._cell.append(data)


def render(report: Path, work: Path, screenshot: bool = False) -> DOM:
    """The DOM Chromium renders for `report`, checking that the page fetched nothing."""
    dumped = chromium(report, work, "--dump-dom")
    assert page_requests(work / "net-log.json") == [], "the report made Chromium fetch something"
    if screenshot:
        shot = work / "report.png"
        chromium(report, work / "shot", f"--screenshot={shot}", "--window-size=1280,2000", "--hide-scrollbars")
        assert shot.exists() and shot.stat().st_size > 10_000, "no screenshot"
        assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert page_requests(work / "shot" / "net-log.json") == []
        # Printable: Chromium lays it out for paper with the report's print style.
        pdf = work / "report.pdf"
        chromium(report, work / "print", f"--print-to-pdf={pdf}", "--no-pdf-header-footer")
        assert pdf.read_bytes()[:5] == b"%PDF-" and pdf.stat().st_size > 10_000, "no PDF"
        assert page_requests(work / "print" / "net-log.json") == []
    return DOM(dumped.stdout.decode("utf-8"))


# ---------------------------------------------------------------------------------------------
# bundles


def manifest_of(bundle: Path) -> dict:
    with tarfile.open(bundle) as archive:
        return json.loads(archive.extractfile("manifest.json").read())


def streams_of(manifest: dict) -> dict[tuple[str, str, str], tuple[int, int, int]]:
    """(node, signal, tenant) -> (records, first seq, last seq), from the signed manifest."""
    streams: dict[tuple[str, str, str], tuple[int, int, int]] = {}
    for blob in manifest["blobs"]:
        key = (blob["node"], blob["signal"], blob["tenant"])
        records, first, last = streams.get(key, (0, 2**64, -1))
        streams[key] = (
            records + blob["recordCount"], min(first, int(blob["firstSeq"])), max(last, int(blob["lastSeq"])))
    return streams


def flip_segment_byte(bundle: Path, out: Path) -> None:
    """A copy with one byte flipped in the middle of the first telemetry blob."""
    with tarfile.open(bundle) as archive:
        manifest = json.loads(archive.extractfile("manifest.json").read())
        target = next(blob["path"] for blob in manifest["blobs"] if blob["tenant"] == "acme")
        member = archive.getmember(target)
    data = bytearray(bundle.read_bytes())
    data[member.offset_data + member.size // 2] ^= 0x01
    out.write_bytes(bytes(data))


def incident_bundle(stella, capture, tmp_path: Path) -> tuple[Path, Path, dict]:
    """A real incident bundle: acme and globex, traces and logs, started and stopped by the CLI."""
    config = tmp_path / "tenants.yaml"
    config.write_text(TENANTS_CONFIG)
    service = capture(None, "--config", config)
    admin = service.cli_admin_args()
    started = stella.run("incident", "start", "--reason", HOSTILE_REASON, "--id", "INC-REPORT-1",
                         "--lookback", "1m", "--declared-by", HOSTILE_NOTE, *admin)
    assert started.returncode == 0, started.describe()
    now = time.time_ns()
    for index in range(12):
        tenant = "acme" if index % 3 else "globex"
        sent = service.post("/v1/traces", trace_request([f"{tenant}-{index}"]), headers={"X-Scope-OrgID": tenant})
        assert sent.status == 200, str(sent)
    for index in range(5):
        tenant = "globex" if index % 2 else "acme"
        body = sfb.logs_request("report-e2e", [(now + index * 1_000_000, now, f"log {index} of {tenant}")])
        sent = service.post("/v1/logs", body, headers={"X-Scope-OrgID": tenant})
        assert sent.status == 200, str(sent)
    stopped = stella.run("incident", "stop", "INC-REPORT-1", *admin)
    assert stopped.returncode == 0, stopped.describe()

    made = stella.run("keygen", "--out", tmp_path / "keys", "--name", "analyst")
    assert made.returncode == 0, made.describe()
    key, pub = tmp_path / "keys" / "analyst.key", tmp_path / "keys" / "analyst.pub"
    bundle = tmp_path / "incident.sfb.tar"
    made = stella.run("bundle", "--data", service.data, "--incident", "INC-REPORT-1", "--key", key, "--out", bundle)
    assert made.returncode == 0, made.describe()
    return bundle, pub, manifest_of(bundle)


# ---------------------------------------------------------------------------------------------
# tests


def test_chromium_net_log_shows_a_page_that_fetches(tmp_path):
    """The net-log check can fail: a page with an image from the network is caught."""
    page = tmp_path / "fetching.html"
    page.write_text('<!DOCTYPE html><title>probe</title><img src="http://192.0.2.1/probe.png"><p>probe</p>')
    chromium(page, tmp_path / "probe", "--dump-dom")
    assert page_requests(tmp_path / "probe" / "net-log.json") == ["http://192.0.2.1/probe.png"]


def test_incident_report_renders_in_chromium_and_a_tampered_one_shows_the_rejection(stella, capture, tmp_path):
    bundle, pub, manifest = incident_bundle(stella, capture, tmp_path)
    report = tmp_path / "report.html"
    made = stella.run("report", bundle, "--trusted-key", pub, "--out", report)
    assert made.returncode == 0, made.describe()
    assert made.stdout.startswith("OK: "), made.describe()
    again = stella.run("report", bundle, "--trusted-key", pub, "--out", tmp_path / "again.html")
    assert again.returncode == 0, again.describe()
    assert (tmp_path / "again.html").read_bytes() == report.read_bytes(), "the report is not deterministic"
    refused = stella.run("report", bundle, "--trusted-key", pub, "--out", report)
    assert refused.returncode == 2 and "already exists" in refused.stderr, refused.describe()

    dom = render(report, tmp_path / "chromium", screenshot=True)
    assert "script" not in dom.tags and "img" not in dom.tags, sorted(set(dom.tags))
    assert "VERIFIED" in dom.text_by_id["verdict"]
    assert "REJECTED" not in " ".join(dom.text_by_id.values())
    identity = dict((row[0], row[1]) for row in dom.rows_by_table["identity-facts"])
    assert identity["Incident"] == "INC-REPORT-1"
    assert identity["Reason"] == HOSTILE_REASON
    with tarfile.open(bundle) as archive:
        manifest_bytes = archive.extractfile("manifest.json").read()
    assert identity["Manifest SHA-256"] == hashlib.sha256(manifest_bytes).hexdigest()
    assert dom.title == "Evidence report: incident INC-REPORT-1, verified"

    # Every stream of the signed manifest, with its records and seq range.
    streams = streams_of(manifest)
    assert {tenant for _, _, tenant in streams} >= {"acme", "globex"}
    assert {signal for _, signal, _ in streams} >= {"traces", "logs"}
    rows = dom.rows_by_table["stream-table"]
    assert rows[0][:5] == ["Node", "Signal", "Tenant", "Blobs", "Records"]
    shown = {(row[0], row[1], row[2]): (int(row[4]), row[5]) for row in rows[1:]}
    assert shown == {key: (records, f"{first}–{last}") for key, (records, first, last) in streams.items()}
    assert shown[(manifest["capture"]["nodes"][0], "traces", "acme")][0] == 8
    assert shown[(manifest["capture"]["nodes"][0], "traces", "globex")][0] == 4

    # The custody events: who declared and stopped the incident, from the audit stream.
    milestones = dom.text_by_id["custody-milestones"]
    assert "Declared (incident.start done) by local-operator" in milestones, milestones
    assert "Stopped (incident.stop done) by local-operator" in milestones, milestones
    assert f"note: {HOSTILE_NOTE}" in milestones
    custody = dom.rows_by_table["custody-table"]
    actions = [row[2] for row in custody[1:]]
    assert "incident.start" in actions and "incident.stop" in actions, actions
    # One chart per signal and tenant, all nodes together.
    charts = dom.text_by_id["charts"]
    for signal, tenant in {(signal, tenant) for _, signal, tenant in streams}:
        assert f"{signal}, tenant {tenant}:" in charts, charts

    # The tampered copy: rejected, with its code, and no content.
    tampered = tmp_path / "tampered.sfb.tar"
    flip_segment_byte(bundle, tampered)
    rejected_report = tmp_path / "tampered-report.html"
    rejected = stella.run("report", tampered, "--trusted-key", pub, "--out", rejected_report)
    assert rejected.returncode == 1, rejected.describe()
    assert rejected.stdout.startswith("REJECT BLOB_DIGEST_MISMATCH:"), rejected.describe()
    dom = render(rejected_report, tmp_path / "chromium-tampered")
    assert "REJECTED" in dom.text_by_id["verdict"]
    assert dom.text_by_id["reason-code"] == "BLOB_DIGEST_MISMATCH"
    everything = " ".join(dom.text_by_id.values())
    assert "VERIFIED" not in everything and "INC-REPORT-1" not in everything and "acme" not in everything
    assert "stream-table" not in dom.rows_by_table and "custody-table" not in dom.rows_by_table


def test_the_printed_commands_verify_the_bundle_as_printed(stella, capture, tmp_path):
    bundle, pub, manifest = incident_bundle(stella, capture, tmp_path)
    report = tmp_path / "report.html"
    assert stella.run("report", bundle, "--trusted-key", pub, "--out", report).returncode == 0
    dom = DOM(report.read_text(encoding="utf-8"))
    # The auditor's directory: the bundle and the key under the names the report uses.
    desk = tmp_path / "desk"
    desk.mkdir()
    shutil.copy(bundle, desk / "incident.sfb.tar")
    shutil.copy(pub, desk / "analyst.pub")
    assert dom.text_by_id["cmd-tool"].startswith("stella-forensics verify --deep --trusted-key analyst.pub")

    env = {key: value for key, value in os.environ.items()}
    openssl = subprocess.run(["bash", "-c", dom.text_by_id["cmd-openssl"]], cwd=desk, capture_output=True,
                             text=True, timeout=120, env=env, check=False)
    assert openssl.returncode == 0, openssl.stdout + openssl.stderr
    assert "Signature Verified Successfully" in openssl.stdout
    assert "manifest.json is the one this report shows" in openssl.stdout
    python = subprocess.run(["bash", "-c", dom.text_by_id["cmd-python"]], cwd=desk, capture_output=True,
                            text=True, timeout=120, env=env, check=False)
    assert python.returncode == 0, python.stdout + python.stderr
    assert f"{len(manifest['blobs'])} blob digest(s) match" in python.stdout

    # The same commands fail on a tampered bundle.
    flip_segment_byte(bundle, desk / "incident.sfb.tar")
    for block in ("cmd-openssl", "cmd-python"):
        failed = subprocess.run(["bash", "-c", dom.text_by_id[block]], cwd=desk, capture_output=True, text=True,
                                timeout=120, env=env, check=False)
        assert failed.returncode != 0, f"{block} accepted a tampered bundle: {failed.stdout}"


def test_hostile_names_stay_text_in_chromium(stella, tmp_path):
    signer = sfb.seeded_key("report-hostile")
    sfb.write_key_pair(signer, tmp_path / "keys")
    pub = tmp_path / "keys" / f"{signer.name}.pub"
    tenant = "<script>document.title='pwned-tenant'</script>"
    node = "n<img src=x onerror=\"document.title='pwned-node'\">"
    start = 1_780_000_000_000_000_000
    request = sfb.logs_request("svc", [(start, start, "hello")])
    blobs = [sfb.Blob("logs", tenant, node, [(0, start, request), (1, start + 10**9, request)])]
    facts = {
        "incident": {"id": "INC-</td><script>x</script>", "reason": "<b>bold</b>", "declaredBy": "eve\"'<>",
                     "declaredAtUnixNano": str(start)},
        "capture": {"startUnixNano": str(start), "endUnixNano": str(start + 60 * 10**9)},
        "redactionPolicy": {"id": "<i>policy</i>", "sha256": "0" * 64},
        "tool": {"name": "sfb", "version": "1"},
    }
    bundle = tmp_path / "hostile.sfb.tar"
    bundle.write_bytes(sfb.build_bundle(facts, blobs, [signer]))
    report = tmp_path / "hostile.html"
    made = stella.run("report", bundle, "--trusted-key", pub, "--out", report)
    assert made.returncode == 0, made.describe()

    dom = render(report, tmp_path / "chromium")
    assert not {"script", "img", "b", "i"} & set(dom.tags), sorted(set(dom.tags))
    rows = dom.rows_by_table["stream-table"]
    assert [row[:3] for row in rows[1:]] == [[node, "logs", tenant]]
    identity = dict((row[0], row[1]) for row in dom.rows_by_table["identity-facts"])
    assert identity["Incident"] == facts["incident"]["id"]
    assert identity["Reason"] == "<b>bold</b>" and identity["Declared by"] == "eve\"'<>"
    # Had any of it run as script, it would have renamed the page.
    assert dom.title == f"Evidence report: incident {facts['incident']['id']}, verified"
