"""Issue 12 (identity part): tenants tied to verified client certificates (`tenancy.identities`).

A CA and two client certificates are made by `openssl`: CN=collector-a, mapped to tenant acme, and
CN=collector-b (SAN DNS:collector-b.example, selected by that SAN), mapped to globex and initech.
The OpenTelemetry Python SDK's HTTP/protobuf and gRPC exporters send over mTLS:

* collector-a without any tenant header lands under acme (its first tenant);
* collector-b with the header initech lands under initech, without one under globex;
* collector-a naming globex is refused (403 over HTTP, PERMISSION_DENIED over gRPC), and so is a
  certificate of the CA that no entry maps; nothing of either is journaled.
* A configuration with identities but no client CA is refused at start (exit 2).
"""

from __future__ import annotations

import datetime as dt
import http.client
import json
import subprocess
import sys
from pathlib import Path

import pytest

from capturelib import CLIENTS, bundle_records, trace_request
from test_capture_tls import PKI, TLSCapture, client_context, client_env, span_names

IDENTITIES = """\
tenancy:
  identities:
    - certificate: collector-a
      tenants: [acme]
    - certificate: "DNS:collector-b.example"
      tenants: [globex, initech]
"""


@pytest.fixture
def pki(tmp_path: Path) -> PKI:
    pki = PKI(tmp_path / "pki")
    pki.ca("ca")
    pki.leaf("server", "ca", "capture", "IP:127.0.0.1,DNS:localhost", "serverAuth")
    pki.leaf("operator", "ca", "operator", "DNS:operator.example", "clientAuth")
    pki.leaf("collector-a", "ca", "collector-a", "DNS:collector-a.example", "clientAuth")
    pki.leaf("collector-b", "ca", "collector-b", "DNS:collector-b.example", "clientAuth")
    pki.leaf("stranger", "ca", "stranger", "DNS:stranger.example", "clientAuth")
    return pki


def write_config(pki: PKI, client_ca: bool = True) -> Path:
    config = pki.directory / "capture.yaml"
    config.write_text("tls:\n  cert: server.pem\n  key: server.key\n" + ("  client-ca: ca.pem\n" if client_ca else "")
                      + IDENTITIES)
    return config


def send(protocol: str, service: TLSCapture, pki: PKI, client: str, tag: str, ids: Path, tenant: str,
         count: int = 5) -> dict:
    """Runs the SDK exporter (tls_sdk_client.py) for `count` spans; `tenant` "" sends no header."""
    endpoint = service.http_endpoint if protocol == "http" else f"127.0.0.1:{service.grpc_port}"
    argv = [sys.executable, str(CLIENTS / "tls_sdk_client.py"), "--protocol", protocol, "--endpoint", endpoint,
            "--ca", str(pki.pem("ca")), "--cert", str(pki.pem(client)), "--key", str(pki.key(client)),
            f"--tenant={tenant}", "--tag", tag, "--ids", str(ids), "--count", str(count), "--timeout", "5"]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120, env=client_env())
    assert done.returncode == 0, f"{protocol} client {tag} failed\n{done.stderr[-3000:]}"
    return json.loads(done.stdout.strip().splitlines()[-1])


def post_traces(service: TLSCapture, pki: PKI, client: str, tenant: str | None) -> tuple[int, bytes]:
    """One OTLP/HTTP export over mTLS with http.client, for the exact status and body."""
    connection = http.client.HTTPSConnection("127.0.0.1", service.http_port, timeout=10,
                                             context=client_context(pki, client))
    headers = {"Content-Type": "application/x-protobuf"}
    if tenant is not None:
        headers["X-Scope-OrgID"] = tenant
    try:
        connection.request("POST", "/v1/traces", body=trace_request(["raw-1"]), headers=headers)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def test_client_certificates_choose_their_tenants(stella_bin, stella, keys, tmp_path, pki):
    started = dt.datetime.now(dt.timezone.utc)
    service = TLSCapture(stella_bin, tmp_path / "data", tmp_path / "logs",
                         ["--config", str(write_config(pki))], pki=pki).start()
    try:
        accepted: dict[str, list[str]] = {"acme": [], "globex": [], "initech": []}
        for protocol in ("http", "grpc"):
            for client, tenant, lands in (("collector-a", "", "acme"), ("collector-b", "initech", "initech"),
                                          ("collector-b", "", "globex")):
                tag = f"{protocol}-{client}-{lands}"
                ids = tmp_path / f"{tag}.ids"
                result = send(protocol, service, pki, client, tag, ids, tenant)
                assert result == {"ok": 5, "failed": 0}, f"{tag}: {result}\n{service.describe()}"
                accepted[lands] += ids.read_text().split()

            # collector-a naming a tenant of collector-b; a CA-signed certificate nobody mapped.
            for client, tenant in (("collector-a", "globex"), ("stranger", "acme")):
                result = send(protocol, service, pki, client, f"{protocol}-{client}-refused",
                              tmp_path / f"{protocol}-{client}-refused.ids", tenant, count=2)
                assert result == {"ok": 0, "failed": 2}, f"{protocol} {client} naming {tenant} was not refused"

        status, body = post_traces(service, pki, "collector-a", "globex")
        assert status == 403, (status, body)
        assert b"CN=collector-a" in body and b"globex" in body, body
        status, body = post_traces(service, pki, "stranger", None)
        assert status == 403, (status, body)
        assert b"not mapped to any tenant" in body, body
        assert post_traces(service, pki, "collector-a", None)[0] == 200

        # Refusals are counted like every tenant refusal: 2 spans x 2 clients x 2 protocols + 2 raw.
        assert service.status()["ingest"]["rejected"].get("tenantRejected") == 10, service.status()["ingest"]
        streams = {stream["tenant"]: int(stream["nextSeq"]) for stream in service.status()["journal"]["streams"]
                   if stream["signal"] == "traces"}
        # 5 spans per protocol and mapping, one request each, plus the raw request under acme.
        assert streams == {"acme": 11, "globex": 10, "initech": 10}, streams
        service.seal()
    finally:
        service.stop()

    _, records = bundle_records(stella, service.data, keys, tmp_path / "bundle.sfb.tar", since=started)
    assert {r.tenant for r in records} == {"acme", "globex", "initech"}
    for tenant, names in accepted.items():
        stored = [name for name in span_names(records, tenant) if name.startswith(("http-", "grpc-"))]
        assert sorted(stored) == sorted(names), f"{tenant}: bundle differs from what was acknowledged"
    assert not any("refused" in name for name in span_names(records)), "a refused export was journaled"


def test_identities_without_a_client_ca_are_refused_at_start(stella, pki, tmp_path):
    result = stella.run("capture", "--data", str(tmp_path / "data"), "--config", str(write_config(pki, False)),
                        "--otlp-http", "127.0.0.1:0", "--otlp-grpc", "127.0.0.1:0", "--admin", "127.0.0.1:0")
    assert result.returncode == 2, result.describe()
    assert "tenancy.identities" in result.stderr and "--tls-client-ca" in result.stderr, result.describe()
