"""Shared parts of the adversarial load tests (issue 10, done-when 6): e2e/test_adversarial_*.py.

Every scenario checks the same three things while its attack runs:

(a) `/healthz` on the admin port answers within 1 s: `HealthzProbe` runs clients/healthz_probe.py in
    its own process (a fresh connection every 200 ms) and reports the worst latency;
(b) well-behaved clients lose nothing: `GoodClients` runs the OTLP/HTTP load client
    (clients/load_client.py: retries 429/503 after Retry-After, unique ids) and the OpenTelemetry
    SDK's own gRPC exporter (clients/sdk_grpc_client.py), both under tenant `good`; after the
    attack `check_no_loss` seals (`POST /seal`), bundles, `verify --deep`s and finds every id
    either client got a success for;
(c) capture's peak RSS (VmHWM of /proc/PID/status) stays within README "Bounded resources":
    max-inflight-bytes + 8 x max-buffered-bytes + max-queued-bytes + 64 MiB. The tests run with a
    sampling policy of small sampler limits (1 MiB each, `write_sampling_policy`) so that the bound
    is dominated by the in-flight term and means something: 32 MiB + 9 MiB + 64 MiB = 105 MiB.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from capturelib import CLIENTS, bundle_records, captured_ids, read_id_log

MIB = 1024 * 1024
GOOD_TENANT = "good"
HEALTHZ_LIMIT = 1.0  # seconds
SAMPLER_BUFFERED = 1 * MIB
SAMPLER_QUEUED = 1 * MIB
NIO_ALLOWANCE = 64 * MIB  # README: "the last term: code, NIO and gRPC buffers, allocator slack"


def write_sampling_policy(directory: Path) -> Path:
    """A sampling policy with the sampler's memory limits at 1 MiB (README "Sampling", "Bounds")."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "sampling.yaml"
    path.write_text(
        "limits:\n"
        f"  max-buffered-bytes: {SAMPLER_BUFFERED}\n"
        f"  max-queued-bytes: {SAMPLER_QUEUED}\n",
        encoding="utf-8",
    )
    return path


def rss_bound(max_inflight: int) -> int:
    """README "Bounded resources": max-inflight-bytes + 8 x max-buffered-bytes + 16 MiB (the queue,
    here max-queued-bytes) + 64 MiB."""
    return max_inflight + 8 * SAMPLER_BUFFERED + SAMPLER_QUEUED + NIO_ALLOWANCE


def proc_status(pid: int) -> dict[str, int]:
    """The kB fields of /proc/PID/status, in bytes."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        parts = value.split()
        if len(parts) == 2 and parts[1] == "kB":
            fields[name] = int(parts[0]) * 1024
    return fields


def peak_rss(pid: int) -> int:
    return proc_status(pid)["VmHWM"]


def mib(value: float) -> str:
    return f"{value / MIB:.1f} MiB"


class HealthzProbe:
    """clients/healthz_probe.py against the admin port, from start() to stop()."""

    def __init__(self, admin_port: int, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.out = directory / "healthz.jsonl"
        self.stop_file = directory / "healthz.stop"
        self.proc = subprocess.Popen(
            [sys.executable, str(CLIENTS / "healthz_probe.py"), "--port", str(admin_port), "--out", str(self.out),
             "--stop-file", str(self.stop_file), "--interval", "0.2", "--timeout", "5"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )

    def stop(self) -> dict:
        self.stop_file.touch()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        probes = [json.loads(line) for line in read_id_log(self.out)]
        latencies = sorted(p["latency"] for p in probes)
        bad = [p for p in probes if p["status"] != 200]
        return {
            "probes": len(probes),
            "maxSeconds": latencies[-1] if latencies else None,
            "p50Seconds": latencies[len(latencies) // 2] if latencies else None,
            "failures": len(bad),
            "firstFailures": bad[:5],
        }

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def assert_healthz(stats: dict, what: str) -> None:
    assert stats["probes"] >= 10, f"{what}: only {stats['probes']} /healthz probes ran: {stats}"
    assert stats["failures"] == 0, f"{what}: /healthz failed during the attack: {stats}"
    assert stats["maxSeconds"] < HEALTHZ_LIMIT, (
        f"{what}: /healthz took {stats['maxSeconds']:.3f} s at worst (limit {HEALTHZ_LIMIT} s): {stats}"
    )


class GoodClients:
    """The well-behaved clients: OTLP/HTTP (load_client.py) and OTLP/gRPC (the SDK's exporter)."""

    def __init__(self, service, directory: Path, http: bool = True, grpc: bool = True,
                 http_rate: float = 40, grpc_rate: float = 10, tenant: str = GOOD_TENANT) -> None:
        self.directory = directory
        self.stop_file = directory / "good.stop"
        directory.mkdir(parents=True, exist_ok=True)
        self.procs: dict[str, subprocess.Popen] = {}
        if http:
            self.procs["http"] = subprocess.Popen(
                [sys.executable, str(CLIENTS / "load_client.py"), "--url", service.http_endpoint,
                 "--out", str(directory / "http"), "--threads", "2", "--prefix", "good-http", "--tenant", tenant,
                 "--rate", str(http_rate), "--duration", "170", "--stop-file", str(self.stop_file),
                 "--max-backoff", "1", "--read-timeout", "15"],
                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            )
        if grpc:
            self.procs["grpc"] = subprocess.Popen(
                [sys.executable, str(CLIENTS / "sdk_grpc_client.py"), "--endpoint", service.grpc_endpoint,
                 "--out", str(directory / "grpc"), "--prefix", "good-grpc", "--tenant", tenant,
                 "--rate", str(grpc_rate), "--duration", "170", "--stop-file", str(self.stop_file)],
                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            )

    def acked(self) -> dict[str, list[str]]:
        return {name: read_id_log(self.directory / name / "acked.log") for name in self.procs}

    def wait_first_acks(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(self.acked().values()):
                return
            for name, proc in self.procs.items():
                if proc.poll() is not None:
                    raise AssertionError(f"good {name} client exited early: {proc.communicate()}")
            time.sleep(0.1)
        raise AssertionError(f"good clients got no acknowledgement within {timeout}s: "
                             f"{ {k: len(v) for k, v in self.acked().items()} }")

    def stop(self, timeout: float = 40) -> dict:
        """Stops both clients (they finish the request in hand) and returns their summaries."""
        self.stop_file.touch()
        summaries = {}
        for name, proc in self.procs.items():
            try:
                out, err = proc.communicate(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                out, err = proc.communicate()
                raise AssertionError(f"good {name} client did not stop within {timeout}s; stderr: {err[-2000:]}")
            assert proc.returncode == 0, f"good {name} client exited {proc.returncode}: {err[-2000:]}"
            summaries[name] = json.loads(out.strip().splitlines()[-1])
        return summaries

    def kill(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()


@dataclasses.dataclass
class LossReport:
    acked: int
    found: int
    missing: list[str]
    duplicates: int
    records: int
    seal_seconds: float = 0.0
    bundle_seconds: float = 0.0

    def __str__(self) -> str:
        return (f"acked {self.acked}, found {self.found}, missing {len(self.missing)} "
                f"(first: {self.missing[:10]}), stored more than once {self.duplicates}, records {self.records}; "
                f"POST /seal {self.seal_seconds:.1f} s, bundle + verify --deep + read {self.bundle_seconds:.1f} s")


def check_no_loss(service, stella, keys, out: Path, acked: list[str], tenant: str | None = GOOD_TENANT,
                  extra_ids: list[str] = (), seal_timeout: float = 60) -> tuple[LossReport, list]:
    """POST /seal, `bundle` (only `tenant` when given), `verify --deep` (in bundle_records), and every
    acknowledged id in it at least once. Returns the report and the decoded records."""
    started = time.monotonic()
    sealed = service.admin("POST", "/seal", timeout=seal_timeout)
    assert sealed.status == 200, f"POST /seal: {sealed}\n{service.describe()}"
    seal_seconds = time.monotonic() - started
    flags = ["--tenant", tenant] if tenant else []
    started = time.monotonic()
    _, records = bundle_records(stella, service.data, keys, out, *flags)
    bundle_seconds = time.monotonic() - started
    stored = captured_ids(records)
    counts: dict[str, int] = {}
    for request_id in stored:
        counts[request_id] = counts.get(request_id, 0) + 1
    wanted = list(acked) + list(extra_ids)
    missing = [request_id for request_id in wanted if request_id not in counts]
    report = LossReport(len(wanted), len(wanted) - len(missing), missing,
                        sum(1 for request_id in wanted if counts.get(request_id, 0) > 1), len(records),
                        round(seal_seconds, 1), round(bundle_seconds, 1))
    return report, records


def report(name: str, figures: dict) -> None:
    """Prints the scenario's measured figures (shown with pytest -s, and kept in the junit log)."""
    print(f"\n[{name}] " + json.dumps(figures, sort_keys=True, default=str))
    results = os.environ.get("ADVERSARIAL_RESULTS")
    if results:
        with open(results, "a", encoding="utf-8") as handle:
            handle.write(json.dumps({"scenario": name, **figures}, sort_keys=True, default=str) + "\n")


def terminate(proc: subprocess.Popen | None) -> None:
    if proc is not None and proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
