"""Issue 12 (TLS part): OTLP/HTTP, OTLP/gRPC and admin over TLS and mTLS, with real clients.

Every certificate is made by `openssl` in the test: a CA, server certificates for 127.0.0.1, client
certificates signed by the CA, one signed by another CA, and an expired one.

* The OpenTelemetry Python SDK's HTTP/protobuf and gRPC exporters and the real `otelcol-contrib`
  otlphttp exporter deliver records over mTLS; the bundle holds exactly what they were acknowledged.
* A client with no certificate, one signed by another CA, or an expired one is refused on every
  listener, and nothing of it is journaled.
* `incident start/list` reach the admin API over https with a client certificate, and the admin
  log names the certificate beside the token's principal.
* Rotation: while an HTTP and a gRPC client send continuously, the server certificate is replaced
  and SIGHUP sent; new connections (on all three listeners) see the new certificate, the clients'
  open connections keep working, and every acknowledged record is in the bundle.
* A non-loopback listener without TLS is refused unless --insecure-listen is given.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import http.client
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
from pathlib import Path

import pytest

from capturelib import (CLIENTS, CaptureProcess, HTTPResult, admin_headers, bundle_records, request_ids,
                        trace_request, wait_for)
from test_audit_trail import AUDIT_TENANT, audit_records
from test_capture_clients import collector_binary, log_bodies

OPENSSL = shutil.which("openssl") or "/usr/bin/openssl"


# ---------------------------------------------------------------------------------------------
# certificates


class PKI:
    """Certificates made with openssl in `directory`: NAME.pem and NAME.key per name."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)

    def pem(self, name: str) -> Path:
        return self.directory / f"{name}.pem"

    def key(self, name: str) -> Path:
        return self.directory / f"{name}.key"

    def run(self, *args: str) -> None:
        done = subprocess.run([OPENSSL, *args], capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, f"openssl {' '.join(args)}\n{done.stderr}"

    def ca(self, name: str) -> None:
        self.run("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                 "-keyout", str(self.key(name)), "-out", str(self.pem(name)), "-days", "2", "-subj", f"/CN={name}")

    def leaf(self, name: str, ca: str, common_name: str, san: str, usage: str, days: int = 2) -> None:
        csr = self.directory / f"{name}.csr"
        ext = self.directory / f"{name}.ext"
        self.run("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                 "-keyout", str(self.key(name)), "-out", str(csr), "-subj", f"/CN={common_name}")
        ext.write_text(f"subjectAltName={san}\nextendedKeyUsage={usage}\n")
        # -days -1 makes a certificate whose notAfter is already past.
        self.run("x509", "-req", "-in", str(csr), "-CA", str(self.pem(ca)), "-CAkey", str(self.key(ca)),
                 "-CAcreateserial", "-out", str(self.pem(name)), "-days", str(days), "-extfile", str(ext))

    def fingerprint(self, name: str) -> str:
        der = ssl.PEM_cert_to_DER_cert(self.pem(name).read_text())
        return hashlib.sha256(der).hexdigest()


@pytest.fixture
def pki(tmp_path: Path) -> PKI:
    pki = PKI(tmp_path / "pki")
    pki.ca("ca")
    pki.ca("other-ca")
    pki.leaf("server", "ca", "capture-1", "IP:127.0.0.1,DNS:localhost", "serverAuth")
    pki.leaf("server-renewed", "ca", "capture-2", "IP:127.0.0.1,DNS:localhost", "serverAuth")
    pki.leaf("alice", "ca", "alice", "DNS:alice.example,email:alice@example.org", "clientAuth")
    pki.leaf("operator", "ca", "operator", "DNS:operator.example", "clientAuth")
    pki.leaf("mallory", "other-ca", "mallory", "DNS:mallory.example", "clientAuth")
    pki.leaf("expired", "ca", "old-client", "DNS:old.example", "clientAuth", days=-1)
    return pki


def client_context(pki: PKI, client: str | None, alpn: list[str] | None = None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(pki.pem("ca")))
    if client:
        context.load_cert_chain(str(pki.pem(client)), str(pki.key(client)))
    if alpn:
        context.set_alpn_protocols(alpn)
    return context


def client_env() -> dict[str, str]:
    """The environment of a TLS client: REQUESTS_CA_BUNDLE would override the exporter's CA file."""
    env = dict(os.environ)
    for name in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
        env.pop(name, None)
    return env


# ---------------------------------------------------------------------------------------------
# capture over TLS


class TLSCapture(CaptureProcess):
    """A capture process whose admin API is reached over https with the `operator` certificate."""

    def __init__(self, *args, pki: PKI, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.pki = pki

    @property
    def http_endpoint(self) -> str:
        return f"https://127.0.0.1:{self.http_port}"

    @property
    def admin_url(self) -> str:
        return f"https://127.0.0.1:{self.admin_port}"

    def admin(self, method: str, path: str, timeout: float = 10, body: bytes | None = None,
              headers: dict | None = None, auth: bool = True) -> HTTPResult:
        sent = {}
        if auth and path not in ("/healthz", "/readyz"):
            sent = admin_headers(self.data, method, self.token)
        sent.update(headers or {})
        connection = http.client.HTTPSConnection("127.0.0.1", self.admin_port, timeout=timeout,
                                                 context=client_context(self.pki, "operator"))
        try:
            connection.request(method, path, body=body, headers=sent)
            response = connection.getresponse()
            data = response.read()
            return HTTPResult(response.status, {k.lower(): v for k, v in response.getheaders()}, data)
        finally:
            connection.close()

    def cli_admin_args(self) -> list[str]:
        return ["--admin", self.admin_url, "--tls-ca", str(self.pki.pem("ca")),
                "--tls-cert", str(self.pki.pem("operator")), "--tls-key", str(self.pki.key("operator")),
                "--data", str(self.data)]


@pytest.fixture
def tls_capture(stella_bin: Path, tmp_path: Path, pki: PKI):
    """Factory: tls_capture(*extra) -> a started TLSCapture with the server certificate in files
    the test may replace (live.pem, live.key), requiring client certificates of `ca` unless
    `client_ca` is False; by flags, or by a YAML configuration file when `via_config`."""
    started: list[TLSCapture] = []

    def start(*extra, client_ca: bool = True, via_config: bool = False) -> TLSCapture:
        live_cert, live_key = pki.directory / "live.pem", pki.directory / "live.key"
        shutil.copyfile(pki.pem("server"), live_cert)
        shutil.copyfile(pki.key("server"), live_key)
        if via_config:
            # The YAML keys, with paths relative to the configuration file.
            config = pki.directory / "capture.yaml"
            config.write_text("tls:\n  cert: live.pem\n  key: live.key\n"
                              + ("  client-ca: ca.pem\n" if client_ca else ""))
            flags = ["--config", config]
        else:
            flags = ["--tls-cert", live_cert, "--tls-key", live_key,
                     *(["--tls-client-ca", pki.pem("ca")] if client_ca else [])]
        process = TLSCapture(
            stella_bin, tmp_path / f"data{len(started)}", tmp_path / f"capture-logs{len(started)}",
            [*flags, *extra], pki=pki)
        started.append(process)
        return process.start()

    yield start
    for process in started:
        if process.alive():
            process.stop()


def run_client(protocol: str, service: TLSCapture, pki: PKI, client: str | None, tag: str, ids: Path,
               count: int = 0, stop_file: Path | None = None, tenant: str = "tls", timeout: float = 10,
               ca: str = "ca", wait: bool = True):
    endpoint = service.http_endpoint if protocol == "http" else f"127.0.0.1:{service.grpc_port}"
    argv = [sys.executable, str(CLIENTS / "tls_sdk_client.py"), "--protocol", protocol, "--endpoint", endpoint,
            "--ca", str(pki.pem(ca)), "--tenant", tenant, "--tag", tag, "--ids", str(ids),
            "--timeout", str(timeout)]
    if client:
        argv += ["--cert", str(pki.pem(client)), "--key", str(pki.key(client))]
    argv += ["--count", str(count)] if count else ["--stop-file", str(stop_file), "--interval", "0.01"]
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=client_env())
    if not wait:
        return process
    out, err = process.communicate(timeout=120)
    assert process.returncode == 0, f"{protocol} client {tag} failed\n{err[-3000:]}"
    return json.loads(out.strip().splitlines()[-1]), err


def span_names(records, tenant: str | None = None) -> list[str]:
    return [span.name for r in records if r.signal == "traces" and (tenant is None or r.tenant == tenant)
            for rs in r.request.resource_spans for ss in rs.scope_spans for span in ss.spans]


def handshake(port: int, pki: PKI, client: str | None, grpc: bool = False) -> str:
    """The SHA-256 of the certificate a new TLS connection to `port` is served, once the server
    answered a first request (`GET /healthz`, or the HTTP/2 preface for gRPC); raises if refused.

    With TLS 1.3 a server refuses a client certificate after the client's side of the handshake
    is done, so the refusal shows on the first read: an alert, or a closed connection."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        context = client_context(pki, client, ["h2"] if grpc else None)
        with context.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
            der = tls.getpeercert(binary_form=True)
            if grpc:
                tls.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + bytes([0, 0, 0, 4, 0, 0, 0, 0, 0]))
            else:
                tls.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            if not tls.recv(16):
                raise ConnectionError(f"port {port} closed the connection without an answer")
            return hashlib.sha256(der).hexdigest()


def assert_refused(port: int, pki: PKI, client: str | None, grpc: bool = False) -> None:
    with pytest.raises(OSError):  # ssl.SSLError and ConnectionError are OSErrors
        handshake(port, pki, client, grpc)


# ---------------------------------------------------------------------------------------------
# tests


def test_real_clients_over_mtls_and_refused_clients_leave_nothing(tls_capture, pki, stella, keys, tmp_path):
    started = dt.datetime.now(dt.timezone.utc)
    service = tls_capture()

    expected: dict[str, list[str]] = {}
    for protocol in ("http", "grpc"):
        ids = tmp_path / f"{protocol}.ids"
        result, _ = run_client(protocol, service, pki, "alice", f"{protocol}-ok", ids, count=25, tenant=protocol)
        assert result == {"ok": 25, "failed": 0}, result
        expected[protocol] = ids.read_text().split()

    # Refused: no certificate, a certificate of another CA, an expired certificate; on every listener.
    for client in (None, "mallory", "expired"):
        who = client or "nocert"
        for protocol in ("http", "grpc"):
            result, _ = run_client(protocol, service, pki, client, f"{protocol}-{who}", tmp_path / f"{who}.ids",
                                   count=2, tenant=f"refused-{who}", timeout=3)
            assert result == {"ok": 0, "failed": 2}, f"{protocol} client {who} was not refused: {result}"
        assert_refused(service.http_port, pki, client)
        assert_refused(service.admin_port, pki, client)
        assert_refused(service.grpc_port, pki, client, grpc=True)
    # The good client still gets in on every listener.
    assert handshake(service.http_port, pki, "alice") == pki.fingerprint("server")
    assert handshake(service.admin_port, pki, "alice") == pki.fingerprint("server")
    assert handshake(service.grpc_port, pki, "alice", grpc=True) == pki.fingerprint("server")

    # The real Collector's otlphttp exporter, over mTLS.
    binary = collector_binary()
    log_file = tmp_path / "collector.log"
    lines = [f"collector line {index} at {time.time_ns()}" for index in range(60)]
    log_file.write_text("\n".join(lines) + "\n")
    config = tmp_path / "collector.yaml"
    config.write_text(f"""\
receivers:
  filelog:
    include: [{log_file}]
    start_at: beginning
    poll_interval: 100ms
processors:
  batch:
    timeout: 200ms
exporters:
  otlphttp:
    endpoint: {service.http_endpoint}
    encoding: proto
    headers:
      X-Scope-OrgID: collector
    tls:
      ca_file: {pki.pem("ca")}
      cert_file: {pki.pem("alice")}
      key_file: {pki.key("alice")}
service:
  telemetry:
    metrics:
      level: none
  pipelines:
    logs:
      receivers: [filelog]
      processors: [batch]
      exporters: [otlphttp]
""")
    collector_log = tmp_path / "collector.stderr"
    with open(collector_log, "wb") as err:
        collector = subprocess.Popen([str(binary), "--config", str(config)], stdin=subprocess.DEVNULL,
                                     stdout=err, stderr=err, env=client_env())
    try:
        wait_for(lambda: service.records_received("logs", "collector") > 0, 30,
                 f"the collector's first request over mTLS\n{collector_log.read_text()[-2000:]}")
        # Done when the count of its requests has not moved for 2 s (all 60 lines are old news).
        last, stable_since, deadline = -1, time.monotonic(), time.monotonic() + 30
        while time.monotonic() < deadline and time.monotonic() - stable_since < 2:
            count = service.records_received("logs", "collector")
            if count != last:
                last, stable_since = count, time.monotonic()
            time.sleep(0.1)
    finally:
        collector.send_signal(signal.SIGTERM)
        code = collector.wait(30)
    log = collector_log.read_text()
    assert code == 0, f"collector exited {code}\n{log[-3000:]}"
    assert "Exporting failed" not in log, log[-3000:]

    for who in ("nocert", "mallory", "expired"):
        assert service.records_received(tenant=f"refused-{who}") == 0, f"a refused client ({who}) was journaled"
    service.seal()
    service.stop()
    _, records = bundle_records(stella, service.data, keys, tmp_path / "bundle.sfb.tar", since=started)
    assert {r.tenant for r in records} == {"http", "grpc", "collector"}, {r.tenant for r in records}
    for protocol, names in expected.items():
        assert sorted(span_names(records, protocol)) == sorted(names), f"{protocol}: bundle differs from acks"
    stored = sorted(body for r in records if r.tenant == "collector" for body in log_bodies(r.request))
    assert stored == sorted(lines), f"collector: {len(stored)} lines stored of {len(lines)}"


def test_tls_without_client_certificates(tls_capture, pki, stella, keys, tmp_path):
    """Server-only TLS, configured by the YAML keys: clients need no certificate, but must trust
    the server's CA."""
    started = dt.datetime.now(dt.timezone.utc)
    service = tls_capture(client_ca=False, via_config=True)
    expected = {}
    for protocol in ("http", "grpc"):
        ids = tmp_path / f"{protocol}.ids"
        result, _ = run_client(protocol, service, pki, None, f"{protocol}-tls", ids, count=10, tenant=protocol)
        assert result == {"ok": 10, "failed": 0}, result
        expected[protocol] = ids.read_text().split()
        # A client that does not trust the server's CA gives up; nothing of it reaches capture.
        result, _ = run_client(protocol, service, pki, None, f"{protocol}-distrust", tmp_path / "distrust.ids",
                               count=1, tenant="distrust", timeout=3, ca="other-ca")
        assert result == {"ok": 0, "failed": 1}, result
    assert service.records_received(tenant="distrust") == 0
    service.seal()
    service.stop()
    _, records = bundle_records(stella, service.data, keys, tmp_path / "bundle.sfb.tar", since=started)
    for protocol, names in expected.items():
        assert sorted(span_names(records, protocol)) == sorted(names), protocol
    assert {r.tenant for r in records} == {"http", "grpc"}


def test_incident_cli_over_https_with_a_client_certificate(tls_capture, pki, stella):
    service = tls_capture()
    started = stella.run("incident", "start", "--reason", "tls drill", "--id", "INC-TLS-1", "--json",
                         *service.cli_admin_args())
    assert started.returncode == 0, started.describe()
    assert json.loads(started.stdout)["id"] == "INC-TLS-1"
    listed = stella.run("incident", "list", "--json", *service.cli_admin_args())
    assert listed.returncode == 0, listed.describe()
    assert [i["id"] for i in json.loads(listed.stdout)["incidents"]] == ["INC-TLS-1"]
    # The custody log names the certificate beside the token's principal.
    wait_for(lambda: 'certificate "CN=operator, SAN=DNS:operator.example"' in service.stderr_path.read_text(), 5,
             "the admin log line naming the client certificate")
    line = next(l for l in service.stderr_path.read_text().splitlines() if "POST /incidents" in l)
    assert "by local-operator" in line and "CN=operator" in line, line

    # Without a client certificate, or trusting another CA, the CLI is refused (exit 3, runtime).
    args = service.cli_admin_args()
    no_cert = [a for i, a in enumerate(args) if a not in ("--tls-cert", "--tls-key")
               and (i == 0 or args[i - 1] not in ("--tls-cert", "--tls-key"))]
    refused = stella.run("incident", "list", *no_cert)
    assert refused.returncode == 3, refused.describe()
    wrong_ca = [str(pki.pem("other-ca")) if a == str(pki.pem("ca")) else a for a in args]
    refused = stella.run("incident", "list", *wrong_ca)
    assert refused.returncode == 3, refused.describe()
    # TLS files with an http:// endpoint are a usage error.
    usage = stella.run("incident", "list", "--admin", f"http://127.0.0.1:{service.admin_port}",
                       "--tls-ca", str(pki.pem("ca")), "--data", str(service.data))
    assert usage.returncode == 2, usage.describe()


def test_sighup_rotates_the_certificate_without_losing_a_record(tls_capture, pki, stella, keys, tmp_path):
    started = dt.datetime.now(dt.timezone.utc)
    service = tls_capture()
    stop_file = tmp_path / "stop"
    senders = {
        protocol: run_client(protocol, service, pki, "alice", f"{protocol}-rot", tmp_path / f"{protocol}.ids",
                             stop_file=stop_file, tenant=f"rot-{protocol}", wait=False)
        for protocol in ("http", "grpc")
    }

    def acked(protocol: str) -> int:
        path = tmp_path / f"{protocol}.ids"
        return len(path.read_text().split()) if path.exists() else 0

    try:
        wait_for(lambda: all(acked(p) >= 20 for p in senders), 60, "both clients sending")
        old = pki.fingerprint("server")
        assert handshake(service.http_port, pki, "alice") == old
        # A keep-alive connection opened before the reload, used again after it.
        held = http.client.HTTPSConnection("127.0.0.1", service.http_port, timeout=10,
                                           context=client_context(pki, "alice"))
        held_headers = {"Content-Type": "application/x-protobuf", "X-Scope-OrgID": "rot-held"}
        held.request("POST", "/v1/traces", body=trace_request(["held-before"]), headers=held_headers)
        assert held.getresponse().read() is not None
        assert handshake(service.admin_port, pki, "alice") == old
        assert handshake(service.grpc_port, pki, "alice", grpc=True) == old

        # Replace the files (each atomically), then tell capture.
        for source, target in ((pki.pem("server-renewed"), "live.pem"), (pki.key("server-renewed"), "live.key")):
            shutil.copyfile(source, pki.directory / f"{target}.new")
            os.replace(pki.directory / f"{target}.new", pki.directory / target)
        before = {p: acked(p) for p in senders}
        service.proc.send_signal(signal.SIGHUP)
        new = pki.fingerprint("server-renewed")
        wait_for(lambda: handshake(service.http_port, pki, "alice") == new, 10, "OTLP/HTTP serving the new certificate")
        assert handshake(service.admin_port, pki, "alice") == new
        assert handshake(service.grpc_port, pki, "alice", grpc=True) == new
        wait_for(lambda: all(acked(p) >= before[p] + 20 for p in senders), 60, "both clients sending after SIGHUP")
        # The connection from before still works, on the certificate it began with.
        held_socket = held.sock
        held.request("POST", "/v1/traces", body=trace_request(["held-after"]), headers=held_headers)
        response = held.getresponse()
        response.read()
        assert response.status == 200, response.status
        assert held.sock is held_socket, "the held connection was dropped and reopened"
        assert hashlib.sha256(held_socket.getpeercert(binary_form=True)).hexdigest() == old
        held.close()
    finally:
        stop_file.write_text("stop")
    results = {}
    for protocol, process in senders.items():
        out, err = process.communicate(timeout=60)
        assert process.returncode == 0, f"{protocol} sender failed\n{err[-3000:]}"
        results[protocol] = json.loads(out.strip().splitlines()[-1])
        # Its connection was never dropped: every export succeeded, before and after the reload.
        assert results[protocol]["failed"] == 0, f"{protocol}: {results[protocol]}\n{err[-3000:]}"
    print(f"rotation: acknowledged {results} (before SIGHUP: {before})")
    assert service.alive(), f"SIGHUP ended capture\n{service.describe()}"
    assert "TLS certificate, key and client CA reloaded" in service.stderr_path.read_text()

    service.seal()
    service.stop()
    _, records = bundle_records(stella, service.data, keys, tmp_path / "bundle.sfb.tar", since=started)
    for protocol in senders:
        names = (tmp_path / f"{protocol}.ids").read_text().split()
        assert len(names) == results[protocol]["ok"]
        stored = span_names(records, f"rot-{protocol}")
        missing = set(names) - set(stored)
        assert not missing, f"{protocol}: {len(missing)} acknowledged records are not in the bundle: {sorted(missing)[:5]}"
        assert len(stored) == len(set(stored)) == len(names), f"{protocol}: {len(stored)} stored vs {len(names)} acked"
    held_ids = [i for r in records if r.signal == "traces" and r.tenant == "rot-held" for i in request_ids(r.request)]
    assert held_ids == ["held-before", "held-after"], held_ids
    # The reload is custody evidence too: one record in the node's audit stream.
    audit_bundle = tmp_path / "audit.sfb.tar"
    bundle_records(stella, service.data, keys, audit_bundle, "--tenant", AUDIT_TENANT, since=started)
    _, audited = audit_records(audit_bundle)
    reloads = [r for r in audited if r.get("action") == "config.reload"]
    assert [(r.get("principal"), r.get("result")) for r in reloads] == [("system", "done")], reloads
    assert json.loads(reloads[0].get("parameters")) == {"signal": "SIGHUP", "tls": "reloaded"}


def test_a_non_loopback_listener_without_tls_is_refused(stella_bin, tmp_path, pki):
    refused = subprocess.run([str(stella_bin), "capture", "--data", str(tmp_path / "d"),
                              "--otlp-http", "0.0.0.0:0", "--otlp-grpc", "127.0.0.1:0", "--admin", "127.0.0.1:0"],
                             capture_output=True, text=True, timeout=60)
    assert refused.returncode == 2, refused.stderr
    assert "0.0.0.0:0" in refused.stderr and "--insecure-listen" in refused.stderr, refused.stderr
    assert not (tmp_path / "d").exists(), "a refused configuration must not touch the data directory"
