"""The alert rules in deploy/prometheus/ are valid for Debian's Prometheus (`promtool check
rules`) and behave as their unit tests say (`promtool test rules`: a firing and a non-firing case
for every alert). The test also checks that every alert the operator runbook names is defined and
has a test, so a renamed or untested alert fails here rather than at 3 a.m."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
RULES_DIR = REPO / "deploy" / "prometheus"
RULES = RULES_DIR / "stella-alerts.yaml"
RULE_TESTS = RULES_DIR / "stella-alerts.test.yaml"
PROMTOOL = shutil.which("promtool")

# The names the operator runbook uses; fixed.
ALERTS = {
    "StellaCaptureDown": "page",
    "StellaRefusalBudgetBurnFast": "page",
    "StellaRefusalBudgetBurnMedium": "page",
    "StellaRefusalBudgetBurnSlow": "ticket",
    "StellaJournalNearByteBound": "page",
    "StellaJournalNearFreeSpaceFloor": "page",
    "StellaFsyncSlow": "ticket",
    "StellaRingShorterThanLookback": "ticket",
    "StellaHookDeliveriesFailing": "ticket",
}


def promtool(*args: str) -> subprocess.CompletedProcess:
    assert PROMTOOL, "Debian's prometheus package (promtool) is needed: scripts/setup.sh"
    return subprocess.run([PROMTOOL, *args], cwd=RULES_DIR, capture_output=True, text=True, timeout=120)


def test_promtool_check_rules_accepts_the_rules():
    result = promtool("check", "rules", RULES.name)
    assert result.returncode == 0, f"promtool check rules failed:\n{result.stdout}\n{result.stderr}"
    assert "SUCCESS" in result.stdout, result.stdout


def test_promtool_test_rules_passes():
    result = promtool("test", "rules", RULE_TESTS.name)
    assert result.returncode == 0, f"promtool test rules failed:\n{result.stdout}\n{result.stderr}"
    assert "SUCCESS" in result.stdout, result.stdout


def test_every_runbook_alert_is_defined_with_its_severity_and_tested_both_ways():
    rules = yaml.safe_load(RULES.read_text())
    defined = {
        rule["alert"]: rule["labels"]["severity"]
        for group in rules["groups"]
        for rule in group["rules"]
        if "alert" in rule
    }
    assert defined == ALERTS, f"alerts and severities in {RULES.name}: {defined}"

    tests = yaml.safe_load(RULE_TESTS.read_text())["tests"]
    firing: set[str] = set()
    quiet: set[str] = set()
    for group in tests:
        for case in group.get("alert_rule_test", []):
            (firing if case["exp_alerts"] else quiet).add(case["alertname"])
    # A firing case names only the instances that fire, so the other instances of its input are
    # non-firing cases too; an empty exp_alerts is a case where nothing fires at all.
    assert firing == set(ALERTS), f"alerts without a firing case: {set(ALERTS) - firing}"
    assert quiet == set(ALERTS), f"alerts without a non-firing case: {set(ALERTS) - quiet}"


def test_a_broken_expectation_is_caught(tmp_path: Path):
    """The rule tests can fail: the same tests against rules whose fast burn threshold is ten
    times higher must not pass."""
    broken_rules = tmp_path / RULES.name
    broken_rules.write_text(RULES.read_text().replace("14.4 * 0.001", "144 * 0.001"))
    (tmp_path / RULE_TESTS.name).write_text(RULE_TESTS.read_text())
    assert PROMTOOL
    result = subprocess.run(
        [PROMTOOL, "test", "rules", RULE_TESTS.name], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert result.returncode != 0, f"promtool passed tests against broken rules:\n{result.stdout}"
    assert "StellaRefusalBudgetBurnFast" in result.stdout + result.stderr
