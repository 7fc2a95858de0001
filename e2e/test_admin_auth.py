"""The authenticated admin API (issue 12, done-when 3 and 4 without the audit stream).

* Refusals: no token (401 + WWW-Authenticate), a viewer starting an incident (403), a browser-style
  text/plain POST with `Origin: http://evil.example` (403), a foreign Host (421), a trickled
  request (408 at the deadline); none of them creates, stops or seals anything.
* Custody: `incident start --declared-by mallory` with the token named alice is bundled with
  declaredBy alice (the bundle's manifest); mallory is only the incident's note.
* The tokens file must be 0600; without one capture generates the local operator's token in the
  data directory and the CLI on the same host uses it with no flag but --data.
* `lookback` beyond the ring's age is refused naming the age; `incident list` escapes what it prints.
"""

from __future__ import annotations

import hashlib
import json
import os
import select
import socket
import stat
import time
from pathlib import Path

from capturelib import (  # noqa: F401
    capture, free_port, http_request, read_bundle_records, trace_request, wait_for,
)

ALICE = "alice-token-0123456789"
VERA = "vera-token-0123456789"


def tokens_file(tmp_path: Path, mode: int = 0o600) -> Path:
    path = tmp_path / "admin-tokens.yaml"
    path.write_text(
        "tokens:\n"
        f"  - name: alice\n    role: responder\n    sha256: {hashlib.sha256(ALICE.encode()).hexdigest()}\n"
        f"  - name: vera\n    role: viewer\n    sha256: {hashlib.sha256(VERA.encode()).hexdigest()}\n",
        encoding="utf-8")
    os.chmod(path, mode)
    return path


def token_file(tmp_path: Path, name: str, token: str) -> Path:
    path = tmp_path / f"{name}.token"
    path.write_text(token + "\n", encoding="utf-8")
    os.chmod(path, 0o600)
    return path


def incidents(service) -> list[dict]:
    result = service.admin("GET", "/incidents")
    assert result.status == 200, str(result)
    return json.loads(result.body)["incidents"]


def test_refused_requests_change_nothing(stella, capture, tmp_path):
    service = capture(None, "--admin-tokens", tokens_file(tmp_path))
    service.admin_token = ALICE
    assert service.post("/v1/traces", trace_request(["r-1"])).status == 200
    started = service.admin("POST", "/incidents", body=b'{"reason":"baseline","id":"INC-BASE"}')
    assert started.status == 201, str(started)
    sealed_before = service.status()["journal"]["sealedSegments"]
    open_before = sorted(p.name for p in service.data.rglob("*.open"))
    assert open_before, "the trace should sit in an open segment"

    start_body = b'{"reason":"forged","id":"INC-FORGED"}'
    port = service.admin_port
    host = {"Host": f"127.0.0.1:{port}"}

    # No token, or an unknown one: 401 with a Bearer challenge.
    for headers in ({}, {"Authorization": "Bearer not-a-token"}, {"Authorization": f"Basic {ALICE}"}):
        for method, path, body in (("POST", "/incidents", start_body), ("POST", "/incidents/INC-BASE/stop", b"{}"),
                                   ("POST", "/seal", b""), ("GET", "/status", None), ("GET", "/incidents", None)):
            sent = {"Content-Type": "application/json", **headers} if method == "POST" else headers
            result = http_request("127.0.0.1", port, method, path, body=body, headers=sent)
            assert result.status == 401, f"{method} {path} {headers}: {result}"
            assert result.headers.get("www-authenticate", "").startswith("Bearer"), str(result)
    # /healthz and /readyz stay open.
    assert http_request("127.0.0.1", port, "GET", "/healthz").status == 200
    assert http_request("127.0.0.1", port, "GET", "/readyz").status == 200

    # A viewer may look, not act.
    viewer = {"Authorization": f"Bearer {VERA}", "Content-Type": "application/json"}
    assert http_request("127.0.0.1", port, "GET", "/status", headers=viewer).status == 200
    for method, path, body in (("POST", "/incidents", start_body), ("POST", "/incidents/INC-BASE/stop", b"{}"),
                               ("POST", "/seal", b"")):
        result = http_request("127.0.0.1", port, method, path, body=body, headers=viewer)
        assert result.status == 403, f"viewer {method} {path}: {result}"
    cli = stella.run("incident", "start", "--reason", "forged", "--id", "INC-CLI", "--admin", service.admin_url,
                     "--token-file", token_file(tmp_path, "vera", VERA))
    assert cli.returncode == 2 and "403" in cli.stderr, cli.describe()

    # A web page's "simple" POST: text/plain with a foreign Origin, with and without a token.
    for headers in ({}, {"Authorization": f"Bearer {ALICE}"}):
        browser = {"Content-Type": "text/plain", "Origin": "http://evil.example", **headers}
        for path, body in (("/incidents", start_body), ("/incidents/INC-BASE/stop", b""), ("/seal", b"")):
            result = http_request("127.0.0.1", port, "POST", path, body=body, headers=browser)
            assert result.status == 403, f"browser POST {path}: {result}"
    # The responder's own token, but text/plain: 415.
    plain = {"Authorization": f"Bearer {ALICE}", "Content-Type": "text/plain"}
    assert http_request("127.0.0.1", port, "POST", "/incidents", body=start_body, headers=plain).status == 415

    # DNS rebinding: a foreign Host, even with a valid token.
    for name in ("evil.example", f"evil.example:{port}", "127.0.0.1.nip.io"):
        rebound = {"Host": name, "Authorization": f"Bearer {ALICE}", "Content-Type": "application/json"}
        result = http_request("127.0.0.1", port, "POST", "/incidents", body=start_body, headers=rebound)
        assert result.status == 421, f"Host {name}: {result}"
    assert http_request("127.0.0.1", port, "GET", "/status",
                        headers={**host, "Authorization": f"Bearer {VERA}"}).status == 200

    # Nothing was created, stopped or sealed.
    listed = incidents(service)
    assert [(item["id"], item["state"]) for item in listed] == [("INC-BASE", "active")], listed
    assert service.status()["journal"]["sealedSegments"] == sealed_before
    assert sorted(p.name for p in service.data.rglob("*.open")) == open_before
    log = service.data / "incidents.jsonl"
    assert [json.loads(line)["id"] for line in log.read_text().splitlines()] == ["INC-BASE"]
    # Each refusal was logged with the peer and the reason.
    stderr = service.stderr_path.read_text(encoding="utf-8", errors="replace")
    assert "admin refused POST /incidents from 127.0.0.1:" in stderr, stderr[-2000:]
    assert "principal vera: 403" in stderr and "foreign Host" in stderr and "Origin header" in stderr


def test_custody_is_the_token_name_not_what_the_caller_types(stella, capture, tmp_path):
    service = capture(None, "--admin-tokens", tokens_file(tmp_path))
    service.admin_token = ALICE
    alice = token_file(tmp_path, "alice", ALICE)
    for index in range(3):
        assert service.post("/v1/traces", trace_request([f"c-{index}"])).status == 200
    started = stella.run("incident", "start", "--reason", "card fraud", "--id", "INC-42", "--declared-by", "mallory",
                         "--lookback", "5m", "--admin", service.admin_url, "--token-file", alice)
    assert started.returncode == 0, started.describe()
    assert started.stdout.strip() == "INC-42"
    assert service.post("/v1/traces", trace_request(["c-after"])).status == 200
    stopped = stella.run("incident", "stop", "INC-42", "--stopped-by", "mallory", "--admin", service.admin_url,
                         "--token-file", alice)
    assert stopped.returncode == 0, stopped.describe()
    listed = {item["id"]: item for item in incidents(service)}
    assert listed["INC-42"]["declaredBy"] == "alice" and listed["INC-42"]["note"] == "mallory"
    assert listed["INC-42"]["endedBy"] == "alice" and listed["INC-42"]["stopNote"] == "mallory"
    text = stella.run("incident", "list", "--admin", service.admin_url, "--token-file", alice)
    assert text.returncode == 0 and "by alice (note mallory)" in text.stdout, text.describe()
    service.admin("POST", "/seal", timeout=60)

    key, pub = stella.keygen(tmp_path / "keys")
    bundle = tmp_path / "inc.sfb.tar"
    made = stella.run("bundle", "--data", service.data, "--incident", "INC-42", "--key", key, "--out", bundle)
    assert made.returncode == 0, made.describe()
    assert stella.run("verify", bundle, "--trusted-key", pub, "--deep").returncode == 0
    manifest, records = read_bundle_records(bundle)
    assert manifest["incident"]["declaredBy"] == "alice", manifest["incident"]
    assert "mallory" not in json.dumps(manifest), "the caller's name must not reach the manifest"
    assert records, "the incident's records are in the bundle"


def test_a_tokens_file_others_can_read_is_refused(stella, capture, tmp_path):
    loose = tokens_file(tmp_path, mode=0o644)
    service = capture(None, "--admin-tokens", loose, wait=False)
    assert service.proc.wait(60) == 2, service.describe()
    stderr = service.stderr_path.read_text(encoding="utf-8", errors="replace")
    assert str(loose) in stderr and "644" in stderr and "0600" in stderr, stderr


def test_the_local_operator_needs_no_flag_but_the_data_directory(stella, capture, tmp_path):
    service = capture(None)
    token_path, tokens_path = service.data / "admin-token", service.data / "admin-tokens.yaml"
    for path in (token_path, tokens_path):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, f"{path} is {oct(path.stat().st_mode)}"
    token = token_path.read_text().strip()
    assert token not in tokens_path.read_text(), "the tokens file holds only the digest"
    assert hashlib.sha256(token.encode()).hexdigest() in tokens_path.read_text()

    by_data = stella.run("incident", "start", "--reason", "local", "--id", "INC-L", "--admin", service.admin_url,
                         "--data", service.data, "--json")
    assert by_data.returncode == 0, by_data.describe()
    assert json.loads(by_data.stdout)["declaredBy"] == "local-operator"
    # Plain HOST:PORT and the environment variable.
    env = {**os.environ, "STELLA_ADMIN_TOKEN": token}
    listed = stella.run("incident", "list", "--admin", f"127.0.0.1:{service.admin_port}", "--data", tmp_path / "none",
                        "--json", env=env)
    assert listed.returncode == 0, listed.describe()
    assert [item["id"] for item in json.loads(listed.stdout)["incidents"]] == ["INC-L"]
    # No token anywhere: a usage error that says where tokens come from.
    clean = {key: value for key, value in os.environ.items() if key != "STELLA_ADMIN_TOKEN"}
    missing = stella.run("incident", "list", "--admin", service.admin_url, "--data", tmp_path / "none", env=clean)
    assert missing.returncode == 2 and "STELLA_ADMIN_TOKEN" in missing.stderr, missing.describe()
    tls = stella.run("incident", "list", "--admin", f"https://127.0.0.1:{service.admin_port}", "--data", service.data)
    # https to this plaintext endpoint: the handshake fails, a runtime failure that says so.
    assert tls.returncode == 3 and "TLS handshake" in tls.stderr, tls.describe()

    # The same token after a restart.
    service.stop()
    service.start()
    assert (service.data / "admin-token").read_text().strip() == token
    again = stella.run("incident", "stop", "INC-L", "--admin", service.admin_url, "--data", service.data)
    assert again.returncode == 0, again.describe()


def test_lookback_is_bounded_by_the_ring_and_list_escapes(stella, capture, tmp_path):
    service = capture(None, "--ring-max-age", "30m", "--default-lookback", "10m")
    flags = ["--admin", service.admin_url, "--data", service.data]
    for lookback in ("31m", "100000h"):
        refused = stella.run("incident", "start", "--reason", "too far", "--lookback", lookback, *flags)
        assert refused.returncode == 2, refused.describe()
        assert "max age is 30m" in refused.stderr, refused.describe()
    assert incidents(service) == []
    # Control characters are refused; a bidirectional override (a format character) is stored but
    # printed escaped.
    escaped = stella.run("incident", "start", "--reason", "evil\x1b[2J", *flags)
    assert escaped.returncode == 2 and "control characters" in escaped.stderr, escaped.describe()
    long_note = stella.run("incident", "start", "--reason", "r", "--declared-by", "m" * 300, *flags)
    assert long_note.returncode == 2 and "256 bytes" in long_note.stderr, long_note.describe()
    ok = stella.run("incident", "start", "--reason", "pay\u202egnp.exe", "--id", "INC-B", "--lookback", "30m", *flags)
    assert ok.returncode == 0, ok.describe()
    listing = stella.run("incident", "list", *flags)
    assert listing.returncode == 0, listing.describe()
    assert "pay\\u{202e}gnp.exe" in listing.stdout and "\u202e" not in listing.stdout, listing.stdout


def test_a_slow_admin_client_is_cut_off_at_the_deadline(capture, tmp_path):
    config = tmp_path / "capture.yaml"
    config.write_text("admin:\n  request-deadline: 1s\n", encoding="utf-8")
    service = capture(None, "--config", config)
    with socket.create_connection(("127.0.0.1", service.admin_port), timeout=10) as sock:
        began = time.monotonic()
        sock.sendall(b"POST /incidents HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        # Trickle a header line every 200 ms (the idle timeout alone would never fire) until the
        # server answers; stop sending then, so no reset can discard its answer.
        for _ in range(40):
            readable, _, _ = select.select([sock], [], [], 0.2)
            if readable:
                break
            sock.sendall(b"X-Slow: 1\r\n")
        received = b""
        try:
            while chunk := sock.recv(4096):
                received += chunk
        except OSError:
            pass
        elapsed = time.monotonic() - began
    assert received.startswith(b"HTTP/1.1 408"), received[:200]
    assert elapsed < 4.5, f"the slow request held the connection for {elapsed:.1f}s"
    assert incidents(service) == []
