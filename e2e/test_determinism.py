"""Same inputs + same key = byte-identical bundle, whatever the environment (BUNDLE-FORMAT.md §10)."""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

from conftest import FIXTURES, PER_SIGNAL_FILES

INPUTS = [*PER_SIGNAL_FILES, "app.otlp.pb.zst"]


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def env_with(**changes) -> dict:
    env = dict(os.environ)
    env.update(changes)
    return env


def test_repeated_import_is_byte_identical(stella, keys, tmp_path):
    key, _ = keys
    inputs = [FIXTURES / name for name in INPUTS]
    first, second = tmp_path / "one.sfb.tar", tmp_path / "two.sfb.tar"
    stella.import_(inputs, key, first)
    stella.import_(inputs, key, second)
    assert sha256_of(first) == sha256_of(second)


def test_environment_does_not_reach_the_bundle(stella, keys, tmp_path):
    key, _ = keys
    # A private copy of the inputs and key, so relative paths can be used from two directories.
    work = tmp_path / "work"
    (work / "in").mkdir(parents=True)
    for name in INPUTS:
        shutil.copyfile(FIXTURES / name, work / "in" / name)
    shutil.copyfile(key, work / "signer.key")
    os.chmod(work / "signer.key", 0o600)
    elsewhere = tmp_path / "elsewhere" / "deeper"
    elsewhere.mkdir(parents=True)
    out = tmp_path / "out"
    out.mkdir()

    absolute_inputs = [work / "in" / name for name in INPUTS]
    relative_inputs = [Path("in") / name for name in INPUTS]
    from_elsewhere = [Path("../../work/in") / name for name in INPUTS]

    runs = {
        "absolute, TZ=UTC, LC_ALL=C": dict(
            inputs=absolute_inputs, key=work / "signer.key", out=out / "a.tar", cwd=tmp_path,
            env=env_with(TZ="UTC", LC_ALL="C", LANG="C"),
        ),
        "relative, TZ=Asia/Kolkata, LC_ALL=C.UTF-8": dict(
            inputs=relative_inputs, key=Path("signer.key"), out=Path("../out/b.tar"), cwd=work,
            env=env_with(TZ="Asia/Kolkata", LC_ALL="C.UTF-8", LANG="C.UTF-8"),
        ),
        "relative from another directory, TZ=America/St_Johns, umask 077": dict(
            inputs=from_elsewhere, key=Path("../../work/signer.key"), out=Path("../../out/c.tar"),
            cwd=elsewhere, env=env_with(TZ="America/St_Johns", LC_ALL="C.UTF-8"),
            preexec_fn=lambda: os.umask(0o077),
        ),
        "absolute, no TZ/LC vars": dict(
            inputs=absolute_inputs, key=work / "signer.key", out=out / "d.tar", cwd=elsewhere,
            env={k: v for k, v in os.environ.items() if k not in ("TZ", "LC_ALL", "LANG", "LC_CTYPE")},
        ),
    }
    digests = {}
    for label, run in runs.items():
        result = stella.run(
            "import", *run["inputs"], "--key", run["key"], "--out", run["out"],
            cwd=run["cwd"], env=run["env"], preexec_fn=run.get("preexec_fn"),
        )
        assert result.returncode == 0, f"{label}\n{result.describe()}"
        digests[label] = sha256_of((run["cwd"] / run["out"]).resolve())
    assert len(set(digests.values())) == 1, digests


def test_incident_flags_are_facts_not_environment(stella, keys, tmp_path):
    """Explicit incident facts give identical bundles too, and change the bundle when they change."""
    key, _ = keys
    source = [FIXTURES / "app.otlp.jsonl"]
    facts = ["--incident", "INC-2024-0042", "--reason", "checkout errors", "--declared-by", "oncall@example.com"]
    a, b, c = tmp_path / "a.tar", tmp_path / "b.tar", tmp_path / "c.tar"
    stella.import_(source, key, a, *facts)
    stella.import_(source, key, b, *facts, env=env_with(TZ="Pacific/Chatham"))
    stella.import_(source, key, c, *facts[:-1], "someone-else")
    assert sha256_of(a) == sha256_of(b)
    assert sha256_of(a) != sha256_of(c)
