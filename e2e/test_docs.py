"""The documents hold together: the format specification names exactly the verifier's reason codes,
every rejected fixture is rejected with a code the specification lists, and in-page links land on
a heading.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SPEC = REPO / "docs" / "bundle-format.md"
REASON_CODES_SOURCE = REPO / "Sources" / "Manifest" / "ReasonCode.swift"
# This tool's own checks, not bundle format codes: the audit chain (README, "The audit stream")
# and the offline kit's member rules (docs/kit.md).
TOOL_ONLY_CODES = {
    "AUDIT_CHAIN_BROKEN",
    "KIT_MANIFEST_MALFORMED",
    "KIT_FILE_MISSING",
    "KIT_FILE_EXTRA",
    "KIT_FILE_CHANGED",
}


def verifier_codes() -> set[str]:
    return set(re.findall(r'case \w+ = "([A-Z0-9_]+)"', REASON_CODES_SOURCE.read_text(encoding="utf-8")))


def spec_table_codes() -> list[str]:
    text = SPEC.read_text(encoding="utf-8")
    table = text[text.index("## Reason codes"): text.index("## Choices this implementation makes")]
    return re.findall(r"^\| `([A-Z0-9_]+)` \|", table, flags=re.MULTILINE)


def test_spec_lists_every_format_code_of_the_verifier_once():
    listed = spec_table_codes()
    assert len(listed) == len(set(listed)), f"listed twice: {sorted({c for c in listed if listed.count(c) > 1})}"
    expected = verifier_codes() - TOOL_ONLY_CODES
    assert len(expected) == 47, f"the verifier defines {len(expected)} format codes"
    assert set(listed) == expected, (
        f"missing from docs/bundle-format.md: {sorted(expected - set(listed))}; "
        f"not codes of the verifier: {sorted(set(listed) - expected)}"
    )
    assert "`AUDIT_CHAIN_BROKEN`" in SPEC.read_text(encoding="utf-8")


def test_every_tampered_fixture_code_is_in_the_spec():
    """fixtures/tampered/cases.json: each rejected variant with the code the verifier must give."""
    cases = json.loads((REPO / "fixtures" / "tampered" / "cases.json").read_text(encoding="utf-8"))
    codes = {case["code"] for case in cases}
    assert len(codes) > 40, f"cases.json names only {len(codes)} codes"
    assert codes <= set(spec_table_codes()) | TOOL_ONLY_CODES, sorted(codes - set(spec_table_codes()))


def heading_anchors(markdown: str) -> set[str]:
    """GitHub's anchors: lowercase, punctuation other than '-' and '_' dropped, spaces to '-'."""
    anchors = set()
    in_code = False
    for line in markdown.splitlines():
        if line.startswith("```"):
            in_code = not in_code
            continue
        match = None if in_code else re.match(r"^#{1,6} (.+)$", line)
        if match:
            title = match.group(1).strip().lower()
            anchors.add(re.sub(r"[^\w\- ]", "", title).replace(" ", "-"))
    return anchors


def markdown_links(markdown: str) -> list[str]:
    return re.findall(r"\]\(([^)\s]+)\)", markdown)


def test_links_to_headings_resolve():
    documents = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md")), *sorted((REPO / "deploy").glob("*/README.md"))]
    broken = []
    for document in documents:
        for link in markdown_links(document.read_text(encoding="utf-8")):
            if link.startswith(("http://", "https://", "mailto:")) or "#" not in link:
                continue
            target_path, anchor = link.split("#", 1)
            target = (document.parent / target_path).resolve() if target_path else document
            if not target.is_file():
                continue  # a document another change adds; only anchors are checked here
            if anchor not in heading_anchors(target.read_text(encoding="utf-8")):
                broken.append(f"{document.relative_to(REPO)}: {link}")
    assert not broken, "links to headings that do not exist:\n" + "\n".join(broken)
