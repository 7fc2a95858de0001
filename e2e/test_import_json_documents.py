"""`import` reads OTLP/JSON however it is laid out: indented documents over several lines (as the
OTLP specification's examples and hand-made payloads are written), several in a row, and gives
the same bundle as for their one-line forms."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest

from conftest import FIXTURES, PER_SIGNAL_FILES, REPO

SIGNER = REPO / "fixtures" / "bundle" / "sample-signer.key"
# test_import_golden.py: app.otlp.jsonl imported with the sample key.
APP_GOLDEN = "ba95f35755b07b4e539ea45985669c2f1e9ebd2985ef7e6b128c8c4dae78b9a5"


def pretty(path: Path, indent) -> str:
    lines = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return "\n".join(json.dumps(json.loads(line), indent=indent) for line in lines) + "\n"


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def signer(tmp_path) -> Path:
    key = tmp_path / "signer.key"
    shutil.copyfile(SIGNER, key)
    key.chmod(0o600)
    return key


@pytest.mark.parametrize("name", PER_SIGNAL_FILES)
def test_indented_documents_of_each_signal_give_the_one_line_bundle(stella, signer, tmp_path, name):
    source = tmp_path / name.replace(".jsonl", ".json")
    text = pretty(FIXTURES / name, indent=2)
    assert text.count("\n") > 10 * len((FIXTURES / name).read_text().splitlines())
    source.write_text(text, encoding="utf-8")
    one_line, indented = tmp_path / "one-line.sfb.tar", tmp_path / "indented.sfb.tar"
    stella.import_([FIXTURES / name], signer, one_line)
    stella.import_([source], signer, indented)
    assert sha256_of(indented) == sha256_of(one_line)


def test_a_file_of_several_indented_documents_gives_the_golden_bundle(stella, signer, tmp_path):
    source = tmp_path / "app.json"
    source.write_text(pretty(FIXTURES / "app.otlp.jsonl", indent="\t"), encoding="utf-8")
    out = tmp_path / "app.sfb.tar"
    result = stella.import_([source], signer, out)
    assert sha256_of(out) == APP_GOLDEN, result.stdout


def test_an_error_in_an_indented_document_names_line_and_column(stella, signer, tmp_path):
    source = tmp_path / "bad.json"
    source.write_text('{\n  "resourceSpans": [\n    {"scopeSpans": [}\n  ]\n}\n', encoding="utf-8")
    result = stella.run("import", source, "--key", signer, "--out", tmp_path / "x.sfb.tar")
    assert result.returncode == 2, result.describe()
    assert f"{source}: line 3, column 21: malformed JSON" in result.stderr, result.describe()
