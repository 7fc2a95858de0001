"""docs/control-objectives.md: every row names at least one test, and every named test exists.

A reference is `e2e/test_file.py::test_name` (a pytest function) or
`Tests/Target/File.swift::name` (a Swift test function); both are checked against the source.
"""

from __future__ import annotations

import ast
import re

from capturelib import REPO

TABLE = REPO / "docs" / "control-objectives.md"
REFERENCE = re.compile(r"`((?:e2e|Tests)/[A-Za-z0-9_./-]+)::([A-Za-z0-9_]+)`")


def table_rows() -> list[list[str]]:
    rows = []
    for line in TABLE.read_text().splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if not line.startswith("|") or len(cells) < 4 or set(cells[0]) <= set("-: "):
            continue
        if cells[0].lower() == "phase":
            continue
        rows.append(cells)
    return rows


def python_test_names(path) -> set[str]:
    tree = ast.parse(path.read_text())
    return {
        node.name
        for node in ast.walk(tree)
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name.startswith("test_")
    }


def swift_test_names(path) -> set[str]:
    text = path.read_text()
    # Swift Testing (`@Test func name(`) and XCTest (`func testName(`).
    return set(re.findall(r"@Test(?:\([^)]*\))?\s+func\s+([A-Za-z0-9_]+)\s*\(", text)) | set(
        re.findall(r"func\s+(test[A-Za-z0-9_]+)\s*\(", text)
    )


def test_every_row_names_a_test_and_every_named_test_exists():
    rows = table_rows()
    assert len(rows) >= 12, f"expected the full table, found {len(rows)} rows"
    phases = {row[0] for row in rows}
    for phase in (
        "Identification",
        "Collection",
        "Acquisition",
        "Preservation",
        "Examination",
        "Analysis",
        "Reporting",
    ):
        assert any(phase in cell for cell in phases), f"no row for the {phase} phase"
    missing = []
    for row in rows:
        references = REFERENCE.findall(row[-1])
        assert references, f"row {row[:2]} names no test"
        for file, name in references:
            path = REPO / file
            if not path.is_file():
                missing.append(f"{file} (file missing)")
                continue
            names = python_test_names(path) if file.endswith(".py") else swift_test_names(path)
            if name not in names:
                missing.append(f"{file}::{name}")
    assert not missing, "tests named in docs/control-objectives.md that do not exist: " + ", ".join(missing)
