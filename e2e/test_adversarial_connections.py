"""Issue 10, done-when 6, scenario 1: thousands of idle OTLP connections.

2,000 raw gRPC connections (TCP + the HTTP/2 client preface + an empty SETTINGS frame, then
nothing) and 2,000 raw HTTP/1.1 connections (TCP, then nothing) are opened against capture
while two well-behaved clients (OTLP/HTTP load client and the OpenTelemetry SDK's gRPC exporter,
tenant `good`) keep exporting; they connected first and keep their connections.

* `--max-connections 5000`: every attack connection is held open (none closed by capture), and
  `/status` counts them;
* `--max-connections 500`: capture holds at most 500 OTLP connections in all; every connection past
  the budget is closed (HTTP ones after a 503), and the good clients are still served during the
  attack.

In both runs `/healthz` answers within 1 s throughout, every id the good clients got a success
for is in a `verify --deep`ed bundle, and capture's peak RSS stays within README "Bounded
resources" (see e2e/adversarial.py).
"""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest

from adversarial import (
    MIB, GoodClients, HealthzProbe, assert_healthz, check_no_loss, mib, peak_rss, report, rss_bound,
    write_sampling_policy,
)
from capturelib import capture  # noqa: F401

GRPC_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"  # + empty SETTINGS
IDLE_EACH = 2000
HOLD_SECONDS = 15
MAX_INFLIGHT = 32 * MIB


def open_idle(port: int, count: int, preface: bytes | None, sockets: list, errors: dict) -> None:
    """`count` connections to 127.0.0.1:port, each sending `preface` (if any) and then nothing."""
    for index in range(count):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.settimeout(5)
        try:
            sock.connect(("127.0.0.1", port))
            if preface:
                sock.sendall(preface)
        except OSError as error:
            errors[type(error).__name__] = errors.get(type(error).__name__, 0) + 1
            sock.close()
            continue
        sock.setblocking(False)
        sockets.append(sock)
        if index % 100 == 99:
            time.sleep(0.02)  # let capture's acceptor keep up; a full accept queue drops SYNs


def classify(sockets: list) -> dict:
    """Reads what each connection received so far: still open, closed by capture, answered 503."""
    counts = {"open": 0, "closed": 0, "http503": 0}
    for sock in sockets:
        received = b""
        closed = False
        while True:
            try:
                chunk = sock.recv(65536)
            except BlockingIOError:
                break
            except OSError as error:
                closed = True  # reset by capture
                break
            if not chunk:
                closed = True
                break
            received += chunk
        if received.startswith(b"HTTP/1.1 503"):
            counts["http503"] += 1
        counts["closed" if closed else "open"] += 1
    return counts


@pytest.mark.slow
@pytest.mark.parametrize("budget", [5000, 500])
def test_idle_connection_flood(budget, capture, stella, keys, tmp_path):
    policy = write_sampling_policy(tmp_path / "policy")
    service = capture(None, "--max-connections", budget, "--max-inflight-bytes", "32MiB",
                      "--sampling-policy", policy)
    pid = service.proc.pid
    probe = HealthzProbe(service.admin_port, tmp_path / "probe")
    good = GoodClients(service, tmp_path / "good")
    grpc_socks: list = []
    http_socks: list = []
    connect_errors: dict = {}
    figures: dict = {"budget": budget}
    try:
        good.wait_first_acks()
        acked_before = {name: len(ids) for name, ids in good.acked().items()}
        started = time.monotonic()
        # Interleave the two kinds so neither takes the whole budget first.
        for _ in range(IDLE_EACH // 500):
            open_idle(service.grpc_port, 500, GRPC_PREFACE, grpc_socks, connect_errors)
            open_idle(service.http_port, 500, None, http_socks, connect_errors)
        figures["connectSeconds"] = round(time.monotonic() - started, 1)
        figures["connectErrors"] = connect_errors
        opened_in_status = []
        hold_until = time.monotonic() + HOLD_SECONDS
        while time.monotonic() < hold_until:
            connections = service.status()["connections"]
            opened_in_status.append(connections["open"])
            time.sleep(1)
        figures["statusConnections"] = connections
        figures["statusOpenMax"] = max(opened_in_status)
        figures["grpcIdle"] = classify(grpc_socks)
        figures["httpIdle"] = classify(http_socks)
        acked_during = {name: len(ids) - acked_before[name] for name, ids in good.acked().items()}
        figures["goodAckedDuringAttack"] = acked_during
        figures["peakRss"] = mib(peak_rss(pid))
        hwm = peak_rss(pid)
        for sock in grpc_socks + http_socks:
            sock.close()
        grpc_socks.clear()
        http_socks.clear()
        time.sleep(1)
        figures["good"] = good.stop()
        healthz = probe.stop()
        figures["healthz"] = healthz
        loss, _ = check_no_loss(service, stella, keys, tmp_path / "good.sfb.tar",
                                [i for ids in good.acked().values() for i in ids])
        figures["loss"] = str(loss)
        bound = rss_bound(MAX_INFLIGHT)
        figures["rssBound"] = mib(bound)
        figures["rssRatioToBound"] = round(hwm / bound, 2)
        report(f"idle-connections-budget-{budget}", figures)

        assert_healthz(healthz, f"budget {budget}")
        assert not loss.missing, f"budget {budget}: acknowledged ids missing from the bundle: {loss}"
        assert all(count > 0 for count in acked_during.values()), (
            f"budget {budget}: a good client got nothing acknowledged while the idle connections were held: "
            f"{figures}")
        attack_open = figures["grpcIdle"]["open"] + figures["httpIdle"]["open"]
        if budget >= 2 * IDLE_EACH + 100:
            assert not connect_errors, f"connections failed: {connect_errors}"
            assert attack_open == 2 * IDLE_EACH, f"capture closed idle connections under its budget: {figures}"
            assert figures["statusOpenMax"] >= 2 * IDLE_EACH, f"/status does not count them: {figures}"
        else:
            assert figures["statusOpenMax"] <= budget, f"more than {budget} OTLP connections open: {figures}"
            assert attack_open <= budget, f"{attack_open} attack connections held past a budget of {budget}"
            refused = figures["grpcIdle"]["closed"] + figures["httpIdle"]["closed"]
            assert refused >= 2 * IDLE_EACH - budget, f"excess connections were not closed: {figures}"
            assert figures["httpIdle"]["http503"] > 0, f"no HTTP connection past the budget got 503: {figures}"
        assert hwm <= bound, (
            f"budget {budget}: peak RSS {mib(hwm)} exceeds the documented bound {mib(bound)} "
            f"(32 MiB in flight + 9 MiB sampler + 64 MiB) with {2 * IDLE_EACH} idle connections: {figures}")
    finally:
        for sock in grpc_socks + http_socks:
            sock.close()
        good.kill()
        probe.kill()
