"""Issue 5, done-when 2: redaction before anything reaches disk.

A real OpenTelemetry Python SDK application exports spans and logs over OTLP/HTTP protobuf (the
SDK's own `opentelemetry-exporter-otlp-proto-http` exporters) to `stella-forensics capture
--redaction-policy FILE`. E-mail addresses, card numbers and bearer tokens are planted in
resource attributes, span attributes, span event attributes, span link attributes, log record
attributes and log bodies (a string body and a structured one). Afterwards:

- no planted value is found in any file under the data directory, zstd-compressed segments
  decompressed, nor in any blob of the bundle;
- the parts that are not secret (span names, event names, clean attribute values) are there, as
  are the mask markers, so the check above looked at the real captured data;
- the bundle's manifest names the policy: `inspect --json` shows `redactionPolicy` with the
  policy's id and the SHA-256 of the policy file's exact bytes, and the bundle verifies.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import signal
import socket
import subprocess
import tarfile
import time
import urllib.error
import urllib.request
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import zstandard
from opentelemetry._logs import LogRecord, SeverityNumber
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Link

READY_TIMEOUT = 30
STOP_TIMEOUT = 30

EMAILS = ["alice.smith@example.com", "bob+ops@mail.example.org"]
CARDS = ["4111 1111 1111 1111", "5500-0000-0000-0004", "378282246310005"]
JWT = (
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9"
    ".eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkphbmUgRG9lIn0"
    ".SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"
)
OPAQUE_TOKEN = "ghp_R3dact10nT0k3nAbcdefGhijkl0123456789"

# Everything that must not be on disk, with the card digits also without separators and the
# JWT's parts on their own (a partial mask must not leave the signature or the payload behind).
SECRETS = (
    EMAILS
    + CARDS
    + ["4111111111111111", "5500000000000004", OPAQUE_TOKEN]
    + [JWT]
    + JWT.split(".")
)

# Values that are not secret and must survive, proving the search looked at real data.
SPAN_NAMES = ["checkout order 1", "charge card"]
EVENT_NAME = "payment.attempt"
LOG_MARKER = "payment declined for order"

POLICY = """\
# Redaction policy of the end-to-end test: every built-in mask, and one blocked header.
id: e2e-redaction-v1
attributes:
  block:
    - http.request.header.authorization
builtin: [email, card-number, bearer-token]
"""


def planted_text(index: int) -> str:
    """Free text with one e-mail, one card number and two bearer tokens."""
    return (
        f"customer {EMAILS[index % len(EMAILS)]} paid with {CARDS[index % len(CARDS)]}; "
        f"Authorization: Bearer {JWT}; upstream said bearer {OPAQUE_TOKEN}"
    )


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def rfc3339(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def http(method: str, url: str, timeout: float = 5.0, token_dir: Path | None = None) -> int:
    """Status of one request; with `token_dir`, authenticated by the admin token capture wrote there."""
    headers = {}
    if token_dir is not None:
        headers["Authorization"] = "Bearer " + (token_dir / "admin-token").read_text(encoding="utf-8").strip()
        headers["Content-Type"] = "application/json"
    request = urllib.request.Request(url, method=method, data=b"" if method == "POST" else None, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


class Capture:
    """`stella-forensics capture` on free loopback ports, with its output kept for failures."""

    def __init__(self, binary: Path, data: Path, policy: Path, logs: Path) -> None:
        self.http_port, self.grpc_port, self.admin_port = free_port(), free_port(), free_port()
        self.data = data
        self.stdout = open(logs / "capture.out", "wb")
        self.stderr = open(logs / "capture.err", "wb")
        self.logs = logs
        self.process = subprocess.Popen(
            [
                str(binary), "capture",
                "--data", str(data),
                "--otlp-http", f"127.0.0.1:{self.http_port}",
                "--otlp-grpc", f"127.0.0.1:{self.grpc_port}",
                "--admin", f"127.0.0.1:{self.admin_port}",
                "--metrics", "127.0.0.1:0",
                "--redaction-policy", str(policy),
            ],
            stdout=self.stdout,
            stderr=self.stderr,
        )

    @property
    def otlp_base(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def admin_base(self) -> str:
        return f"http://127.0.0.1:{self.admin_port}"

    def output(self) -> str:
        self.stdout.flush()
        self.stderr.flush()
        out = (self.logs / "capture.out").read_text("utf-8", "replace")
        err = (self.logs / "capture.err").read_text("utf-8", "replace")
        return f"capture stdout:\n{out}\ncapture stderr:\n{err}"

    def wait_ready(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"capture exited with {self.process.returncode} before it was ready\n{self.output()}")
            try:
                if http("GET", f"{self.admin_base}/readyz", timeout=1) == 200:
                    return
            except OSError:
                pass
            time.sleep(0.1)
        pytest.fail(f"capture was not ready within {READY_TIMEOUT}s\n{self.output()}")

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
                pytest.fail(f"capture did not stop within {STOP_TIMEOUT}s of SIGTERM\n{self.output()}")
        self.stdout.close()
        self.stderr.close()
        return self.process.returncode


def export_spans(endpoint: str) -> None:
    """Spans with secrets in resource, span, event and link attributes, exported by the SDK's
    OTLP/HTTP protobuf exporter; fails unless the service acknowledged them."""
    resource = Resource.create(
        {
            "service.name": "checkout",
            "owner.contact": EMAILS[0],
            "deploy.note": planted_text(1),
        }
    )
    collected = InMemorySpanExporter()
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(SimpleSpanProcessor(collected))
    tracer = provider.get_tracer("shop.payments")
    with tracer.start_as_current_span("checkout order 1") as parent:
        parent.set_attribute("note", planted_text(0))
        parent.set_attribute("customer.email", EMAILS[1])
        parent.set_attribute("payment.cards", [CARDS[0], CARDS[1], "clean value"])
        parent.set_attribute("http.request.header.authorization", [f"Bearer {JWT}"])
        parent.set_attribute("order.status", "declined")
        parent.add_event(EVENT_NAME, {"detail": planted_text(2), "attempt": 1})
        parent_context = parent.get_span_context()
    with tracer.start_as_current_span(
        "charge card", links=[Link(parent_context, {"reason": planted_text(1)})]
    ) as child:
        child.set_attribute("card.number", CARDS[2])
        child.set_attribute("upstream.auth", f"Authorization: Bearer {JWT}")
    provider.shutdown()
    spans = collected.get_finished_spans()
    assert [span.name for span in spans] == ["checkout order 1", "charge card"]

    result = OTLPSpanExporter(endpoint=f"{endpoint}/v1/traces").export(spans)
    assert result.name == "SUCCESS", f"span export failed: {result}"


def export_logs(endpoint: str) -> None:
    """Log records with secrets in resource and record attributes, a string body and a
    structured (kvlist/array) body; fails unless the service acknowledged them."""
    resource = Resource.create({"service.name": "checkout", "support.mail": EMAILS[1]})
    collected = InMemoryLogRecordExporter()
    provider = LoggerProvider(resource=resource)
    provider.add_log_record_processor(SimpleLogRecordProcessor(collected))
    logger = provider.get_logger("shop.payments")
    now = time.time_ns()
    logger.emit(
        LogRecord(
            timestamp=now,
            body=f"{LOG_MARKER} 7: {planted_text(0)}",
            severity_number=SeverityNumber.WARN,
            severity_text="WARN",
            attributes={"customer": EMAILS[0], "card": CARDS[1], "order.id": 7},
        )
    )
    logger.emit(
        LogRecord(
            timestamp=now + 1,
            body={
                "event": "payment",
                "customer": EMAILS[1],
                "cards": [CARDS[0], CARDS[2]],
                "request": {"headers": f"Authorization: Bearer {JWT}", "token": f"bearer {OPAQUE_TOKEN}"},
            },
            severity_number=SeverityNumber.INFO,
            attributes={"note": planted_text(2)},
        )
    )
    provider.shutdown()
    records = collected.get_finished_logs()
    assert len(records) == 2

    result = OTLPLogExporter(endpoint=f"{endpoint}/v1/logs").export(records)
    assert result.name == "SUCCESS", f"log export failed: {result}"


def readable(path: Path) -> bytes:
    """A file's bytes, zstd-decompressed when it is a `.zst` file (all its frames)."""
    raw = path.read_bytes()
    if path.suffix != ".zst":
        return raw
    reader = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(raw), read_across_frames=True)
    return reader.read()


def found(needles: list[str], haystack: bytes) -> list[str]:
    return [needle for needle in needles if needle.encode("utf-8") in haystack]


def test_planted_secrets_never_reach_disk_and_the_manifest_names_the_policy(stella, stella_bin, tmp_path):
    data = tmp_path / "data"
    policy = tmp_path / "redaction.yaml"
    policy.write_text(POLICY, encoding="utf-8")
    policy_sha256 = hashlib.sha256(policy.read_bytes()).hexdigest()
    logs = tmp_path / "logs"
    logs.mkdir()

    window_start = datetime.now(timezone.utc) - timedelta(minutes=1)
    capture = Capture(stella_bin, data, policy, logs)
    try:
        capture.wait_ready()
        export_spans(capture.otlp_base)
        export_logs(capture.otlp_base)
        assert http("POST", f"{capture.admin_base}/seal", token_dir=capture.data) == 200, capture.output()
    finally:
        returncode = capture.stop()
    assert returncode == 0, f"capture exited with {returncode}\n{capture.output()}"
    window_end = datetime.now(timezone.utc) + timedelta(minutes=1)

    # Every file of the data directory, decompressed where compressed.
    files = sorted(path for path in data.rglob("*") if path.is_file())
    assert any(path.suffix == ".zst" for path in files), f"no sealed segment in {[str(p) for p in files]}"
    everything = b""
    for path in files:
        content = readable(path)
        leaked = found(SECRETS, content)
        assert not leaked, f"{path.relative_to(data)} holds planted values {leaked}"
        everything += content

    # The search looked at the captured data: what is not secret is there, masked where it was.
    kept = SPAN_NAMES + [EVENT_NAME, LOG_MARKER, "clean value", "declined"]
    missing = [value for value in kept if value.encode() not in everything]
    assert not missing, f"non-secret values missing from the captured data: {missing}"
    for marker in ["[REDACTED:email]", "[REDACTED:card-number]", "[REDACTED:bearer-token]"]:
        assert marker.encode() in everything, f"{marker} not found in the captured data"
    assert b"http.request.header.authorization" not in everything, "a blocked attribute key was kept"

    # A bundle of the window: its manifest names the policy, and its blobs hold no secret either.
    key, pub = stella.keygen(tmp_path / "keys", "analyst")
    os.chmod(key, 0o600)
    bundle = tmp_path / "bundle.sfb.tar"
    stella.ok(
        "bundle", "--data", data, "--from", rfc3339(window_start), "--to", rfc3339(window_end),
        "--key", key, "--out", bundle,
    )
    inspected = json.loads(stella.ok("inspect", bundle, "--json").stdout)
    assert inspected["redactionPolicy"] == {"id": "e2e-redaction-v1", "sha256": policy_sha256}
    assert {stream["signal"] for stream in inspected["streams"]} >= {"traces", "logs"}

    with tarfile.open(bundle) as archive:
        members = [member for member in archive.getmembers() if member.isfile()]
        blobs = [member for member in members if member.name.endswith(".zst")]
        assert blobs, f"no blob in the bundle: {[member.name for member in members]}"
        for member in members:
            stream = archive.extractfile(member)
            assert stream is not None
            raw = stream.read()
            content = (
                zstandard.ZstdDecompressor().stream_reader(io.BytesIO(raw), read_across_frames=True).read()
                if member.name.endswith(".zst")
                else raw
            )
            leaked = found(SECRETS, content)
            assert not leaked, f"bundle member {member.name} holds planted values {leaked}"

    stella.ok("verify", bundle, "--trusted-key", pub, "--deep")
