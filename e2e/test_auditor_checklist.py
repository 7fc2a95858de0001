"""docs/auditor-checklist.md: its three verification routes, run as written.

Each marked block (`<!-- auditor:ROUTE:begin -->` … `end`) is run with `bash -e`, reading the
bundle and key from the BUNDLE and KEY variables as the document tells the reader to set them.
A bundle signed by the key passes every route; a copy with one blob byte flipped, or a key that
did not sign, fails every route; a co-signed bundle passes the Python route with both keys and a
threshold of two, and fails it with one key unless untrusted signers are ignored.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from test_independent_verify import flipped_copy

REPO = Path(__file__).resolve().parent.parent
CHECKLIST = REPO / "docs" / "auditor-checklist.md"
ROUTES = ("tool", "openssl", "python")
RUN_TIMEOUT = 120


def route_script(route: str) -> str:
    text = CHECKLIST.read_text(encoding="utf-8")
    begin, end = f"<!-- auditor:{route}:begin -->", f"<!-- auditor:{route}:end -->"
    assert text.count(begin) == 1 and text.count(end) == 1, f"docs/auditor-checklist.md: one {route} block expected"
    section = text[text.index(begin) + len(begin): text.index(end)]
    blocks = re.findall(r"^```sh\n(.*?)^```$", section, flags=re.MULTILINE | re.DOTALL)
    assert blocks, f"no ```sh block in the {route} section"
    return "\n".join(blocks)


def run_route(route: str, bundle: Path, key: Path, stella_bin: Path, tmp_path: Path,
              extra_keys: tuple[Path, ...] = (), **env_extra: str) -> subprocess.CompletedProcess:
    script = route_script(route)
    if extra_keys:
        # The document's way of giving Python more keys: add them after "$KEY".
        script = script.replace('python3 - "$BUNDLE" "$KEY"',
                                'python3 - "$BUNDLE" "$KEY" ' + " ".join(f'"{k}"' for k in extra_keys))
    path = tmp_path / f"{route}.sh"
    path.write_text(script, encoding="utf-8")
    env = {**os.environ, "BUNDLE": str(bundle), "KEY": str(key), **env_extra,
           "PATH": f"{stella_bin.parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    return subprocess.run(["bash", "-e", str(path)], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=RUN_TIMEOUT)


def describe(result: subprocess.CompletedProcess) -> str:
    return f"exit {result.returncode}\nstdout:\n{result.stdout[-3000:]}\nstderr:\n{result.stderr[-3000:]}"


SUCCESS_LINE = {"tool": "verified", "openssl": "openssl route: signature by", "python": "python route: 1 trusted"}


@pytest.mark.parametrize("route", ROUTES)
def test_route_accepts_a_bundle_signed_by_the_key(route, imported, keys, stella_bin, tmp_path):
    _, pub = keys
    result = run_route(route, imported, pub, stella_bin, tmp_path)
    assert result.returncode == 0, describe(result)
    assert SUCCESS_LINE[route] in result.stdout, describe(result)


@pytest.mark.parametrize("route", ROUTES)
def test_route_rejects_a_flipped_blob_byte(route, imported, keys, stella_bin, tmp_path):
    _, pub = keys
    tampered = tmp_path / "tampered.sfb.tar"
    flipped_copy(imported, tampered, lambda name: name.startswith("blobs/"))
    result = run_route(route, tampered, pub, stella_bin, tmp_path)
    assert result.returncode != 0, describe(result)
    assert SUCCESS_LINE[route] not in result.stdout, describe(result)


@pytest.mark.parametrize("route", ROUTES)
def test_route_rejects_a_key_that_did_not_sign(route, imported, stella, stella_bin, tmp_path):
    _, stranger = stella.keygen(tmp_path / "stranger", name="stranger")
    result = run_route(route, imported, stranger, stella_bin, tmp_path)
    assert result.returncode != 0, describe(result)


def test_python_route_applies_threshold_and_ignore_untrusted(imported, keys, stella, stella_bin, tmp_path):
    _, pub = keys
    cosigner_key, cosigner_pub = stella.keygen(tmp_path / "cosigner", name="lead")
    stella.ok("sign", imported, "--key", cosigner_key)

    both = run_route("python", imported, pub, stella_bin, tmp_path, extra_keys=(cosigner_pub,), THRESHOLD="2")
    assert both.returncode == 0 and "python route: 2 trusted" in both.stdout, describe(both)
    one_key = run_route("python", imported, pub, stella_bin, tmp_path)
    assert one_key.returncode != 0 and "untrusted key" in one_key.stderr, describe(one_key)
    ignoring = run_route("python", imported, pub, stella_bin, tmp_path, IGNORE_UNTRUSTED="1")
    assert ignoring.returncode == 0 and "python route: 1 trusted" in ignoring.stdout, describe(ignoring)
    too_few = run_route("python", imported, pub, stella_bin, tmp_path, IGNORE_UNTRUSTED="1", THRESHOLD="2")
    assert too_few.returncode != 0 and "threshold 2" in too_few.stderr, describe(too_few)
    # The OpenSSL route checks one key at a time: the co-signer's signature verifies on its own.
    cosigner = run_route("openssl", imported, cosigner_pub, stella_bin, tmp_path)
    assert cosigner.returncode == 0, describe(cosigner)
