"""Issue 10, done-when 6, scenario 4: fdatasync fails in the middle of a run.

How the fault is made: the preferred way, a device-mapper target switched to `error` under an
ext4 file system on a loop device, cannot run on these machines: the kernel has no device-mapper
(`/dev/mapper/control` is missing, `dmsetup targets` says "Failure to communicate with kernel
device-mapper driver", and there is no module tree or modprobe to load it). So the test falls
back to an LD_PRELOAD shim, compiled here with gcc into the test's temporary directory: its
`fdatasync` and `fsync` fail with EIO for descriptors of files under capture's data directory
while a trigger file exists (and otherwise call the real ones); each injected failure is logged.
This is what capture sees from a disk whose writeback fails: the write(2)s succeed (page cache),
the sync reports EIO. (It does not drop the unsynced pages as Linux may; capture cuts the file
back to its last synced record anyway, which is what the bundle check below exercises.)

While the well-behaved clients (OTLP/HTTP load client and the SDK's gRPC exporter, tenant
`good`) export under group commit:

* before the fault, probe requests of the test get 200;
* the trigger is created: every probe request sent during the fault gets an error (503 with
  Retry-After), never 200; the shim logged injected failures; `/status` counts
  `journal.poisonedSegments` >= 1;
* the trigger is removed: the same process accepts again (probes 200, good clients acknowledged
  again) without a restart;
* `/healthz` answered within 1 s throughout, peak RSS within the README bound, and after
  `POST /seal` the whole data directory bundles, `verify --deep` passes, and every id any
  client (probe or good client) got a success for is in it.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import pytest

from adversarial import (
    MIB, GOOD_TENANT, GoodClients, HealthzProbe, assert_healthz, check_no_loss, mib, peak_rss, report, rss_bound,
    write_sampling_policy,
)
from capturelib import capture, read_id_log, trace_request  # noqa: F401

MAX_INFLIGHT = 32 * MIB

SHIM = r"""
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* fdatasync/fsync fail with EIO for files under $STELLA_FAULT_DIR while $STELLA_FAULT_TRIGGER
   exists; each injected failure appends the file's path to $STELLA_FAULT_LOG. */
static int injected(int fd, const char *call) {
  const char *trigger = getenv("STELLA_FAULT_TRIGGER");
  const char *dir = getenv("STELLA_FAULT_DIR");
  if (!trigger || !dir || access(trigger, F_OK) != 0) return 0;
  char link[64], target[PATH_MAX];
  snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
  ssize_t n = readlink(link, target, sizeof target - 1);
  if (n < 0) return 0;
  target[n] = 0;
  size_t len = strlen(dir);
  if (strncmp(target, dir, len) != 0 || (target[len] != '/' && target[len] != 0)) return 0;
  const char *log = getenv("STELLA_FAULT_LOG");
  if (log) {
    int out = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (out >= 0) {
      char line[PATH_MAX + 32];
      int m = snprintf(line, sizeof line, "%s %s\n", call, target);
      if (m > 0) { ssize_t ignored = write(out, line, (size_t)m); (void)ignored; }
      close(out);
    }
  }
  return 1;
}

int fdatasync(int fd) {
  static int (*real)(int);
  if (injected(fd, "fdatasync")) { errno = EIO; return -1; }
  if (!real) real = (int (*)(int))dlsym(RTLD_NEXT, "fdatasync");
  return real(fd);
}

int fsync(int fd) {
  static int (*real)(int);
  if (injected(fd, "fsync")) { errno = EIO; return -1; }
  if (!real) real = (int (*)(int))dlsym(RTLD_NEXT, "fsync");
  return real(fd);
}
"""


@pytest.fixture
def fault_shim(tmp_path: Path) -> Path:
    gcc = shutil.which("gcc") or shutil.which("cc")
    if gcc is None:
        pytest.fail("no C compiler (gcc) to build the fdatasync fault shim")
    source = tmp_path / "shim" / "fsyncfault.c"
    source.parent.mkdir()
    source.write_text(SHIM)
    library = source.with_suffix(".so")
    built = subprocess.run([gcc, "-shared", "-fPIC", "-O2", "-Wall", "-o", str(library), str(source), "-ldl"],
                           capture_output=True, text=True)
    assert built.returncode == 0, f"building the shim failed:\n{built.stderr}"
    return library


@pytest.mark.slow
def test_fdatasync_failure_poisons_and_recovers(fault_shim, capture, stella, keys, tmp_path, monkeypatch):
    data = (tmp_path / "data").resolve()
    trigger = tmp_path / "fault-on"
    fault_log = tmp_path / "injected.log"
    policy = write_sampling_policy(tmp_path / "policy")
    # Only capture gets the shim: set for its start, removed before any client starts.
    with monkeypatch.context() as env:
        env.setenv("LD_PRELOAD", str(fault_shim))
        env.setenv("STELLA_FAULT_DIR", str(data))
        env.setenv("STELLA_FAULT_TRIGGER", str(trigger))
        env.setenv("STELLA_FAULT_LOG", str(fault_log))
        service = capture(data, "--max-inflight-bytes", "32MiB", "--sampling-policy", policy)
    pid = service.proc.pid
    probe = HealthzProbe(service.admin_port, tmp_path / "probe")
    good = GoodClients(service, tmp_path / "good")
    figures: dict = {"faultMethod": "LD_PRELOAD shim (no device-mapper in this kernel)"}
    probe_acked: list[str] = []
    probe_number = 0

    def post_probe() -> tuple[int, dict]:
        nonlocal probe_number
        probe_number += 1
        request_id = f"probe-{probe_number}"
        result = service.post("/v1/traces", trace_request([request_id]), headers={"X-Scope-OrgID": GOOD_TENANT})
        if result.status == 200:
            probe_acked.append(request_id)
        return result.status, result.headers

    try:
        good.wait_first_acks()
        for _ in range(5):
            status, _ = post_probe()
            assert status == 200, f"probe before the fault: {status}\n{service.describe()}"
        assert service.status()["journal"]["poisonedSegments"] in ("0", 0)

        # The fault.
        trigger.touch()
        fault_started = time.monotonic()
        during: list[tuple[int, str | None]] = []
        while time.monotonic() - fault_started < 5:
            status, headers = post_probe()
            during.append((status, headers.get("retry-after")))
            time.sleep(0.2)
        journal = service.status()["journal"]
        acked_at_fault_end = {name: len(ids) for name, ids in good.acked().items()}
        trigger.unlink()
        fault_seconds = time.monotonic() - fault_started
        injected = read_id_log(fault_log)
        figures.update(faultSeconds=round(fault_seconds, 1), probesDuringFault=len(during),
                       probeStatusesDuringFault=sorted({s for s, _ in during}),
                       retryAfterDuringFault=sorted({str(r) for _, r in during}),
                       injectedFailures=len(injected), injectedSample=injected[:3],
                       poisonedSegments=journal["poisonedSegments"], accepting=journal["accepting"])

        # Cleared: the same process accepts again.
        deadline = time.monotonic() + 20
        recovered_after = None
        while time.monotonic() < deadline:
            status, _ = post_probe()
            if status == 200:
                recovered_after = round(time.monotonic() - fault_started - fault_seconds, 2)
                break
            time.sleep(0.2)
        figures["acceptingAgainAfterSeconds"] = recovered_after
        assert recovered_after is not None, f"still refusing 20 s after the fault was cleared\n{service.describe()}"
        for _ in range(5):
            status, _ = post_probe()
            assert status == 200, f"probe after the fault: {status}\n{service.describe()}"
        growth_deadline = time.monotonic() + 30
        while any(len(ids) <= acked_at_fault_end[name] + 5 for name, ids in good.acked().items()):
            assert time.monotonic() < growth_deadline, (
                f"good clients not acknowledged again after the fault: "
                f"{ {k: len(v) for k, v in good.acked().items()} } vs {acked_at_fault_end}\n{service.describe()}")
            time.sleep(0.2)
        assert service.alive() and service.proc.pid == pid, "capture died or was restarted"

        hwm = peak_rss(pid)
        figures["good"] = good.stop()
        healthz = probe.stop()
        figures["healthz"] = healthz
        status_after = service.status()["journal"]
        figures["poisonedSegmentsAtEnd"] = status_after["poisonedSegments"]
        loss, _ = check_no_loss(service, stella, keys, tmp_path / "all.sfb.tar",
                                [i for ids in good.acked().values() for i in ids], tenant=None,
                                extra_ids=probe_acked)
        figures["loss"] = str(loss)
        bound = rss_bound(MAX_INFLIGHT)
        figures.update(peakRss=mib(hwm), rssBound=mib(bound), rssRatioToBound=round(hwm / bound, 2))
        report("fsync-failure", figures)

        assert injected, f"the shim injected no failure: {figures}\n{service.describe()}"
        assert during and all(status != 200 for status, _ in during), (
            f"a request was acknowledged while every sync failed: {figures}\n{service.describe()}")
        assert int(journal["poisonedSegments"]) >= 1, f"no poisoned segment counted: {figures}"
        http_statuses = figures["good"]["http"]["statuses"]
        assert any(code != "200" for code in http_statuses), (
            f"the good HTTP client saw no error during the fault: {figures}")
        assert_healthz(healthz, "fsync failure")
        assert not loss.missing, f"acknowledged ids missing from the bundle: {loss}"
        assert hwm <= bound, f"peak RSS {mib(hwm)} exceeds the documented bound {mib(bound)}: {figures}"
    finally:
        trigger.unlink(missing_ok=True)
        good.kill()
        probe.kill()
