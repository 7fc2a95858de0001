#!/usr/bin/env bash
# The main job end to end on the shipped fixtures: keygen -> import (seal + sign) -> verify ->
# inspect -> co-sign -> verify with a threshold of two -> independent openssl check -> tamper check. Work files go to a temporary directory.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${STELLA_BIN:-.build/debug/stella-forensics}
work=$(mktemp -d "${TMPDIR:-/tmp}/stella-demo.XXXXXX")
trap 'rm -rf "$work"' EXIT

step() { printf '\n== %s\n' "$*"; }

step "keygen: an analyst key and an auditor co-signing key"
"$bin" keygen --out "$work/keys" --name analyst
"$bin" keygen --out "$work/keys" --name auditor

step "import: seal the OTLP traces, logs and metrics written by the OpenTelemetry SDK"
"$bin" import fixtures/otlp/app.otlp.jsonl --key "$work/keys/analyst.key" --out "$work/evidence.sfb.tar" \
  --incident INC-DEMO-0001 --reason "demo: suspicious checkout traffic" --declared-by "soc-analyst@example.org"

step "verify --deep with the analyst's public key"
"$bin" verify "$work/evidence.sfb.tar" --trusted-key "$work/keys/analyst.pub" --deep

step "inspect: chain of custody and contents"
"$bin" inspect "$work/evidence.sfb.tar"

step "sign: the auditor co-signs; the manifest does not change"
"$bin" sign "$work/evidence.sfb.tar" --key "$work/keys/auditor.key"
"$bin" verify "$work/evidence.sfb.tar" --trusted-key "$work/keys/analyst.pub" \
  --trusted-key "$work/keys/auditor.pub" --threshold 2

step "auditor without this tool: tar + sha256sum + openssl pkeyutl -rawin"
bash scripts/verify-with-openssl.sh "$work/evidence.sfb.tar" "$work/keys/auditor.pub"

step "tamper: flip one byte in the last blob; verification must fail with a reason code"
cp "$work/evidence.sfb.tar" "$work/tampered.sfb.tar"
offset=$(python3 -c 'import sys,tarfile; m=tarfile.open(sys.argv[1]).getmembers()[-1]; print(m.offset_data + m.size // 2)' "$work/tampered.sfb.tar")
printf '\xff' | dd of="$work/tampered.sfb.tar" bs=1 seek="$offset" conv=notrunc status=none
if "$bin" verify "$work/tampered.sfb.tar" --trusted-key "$work/keys/analyst.pub" --trusted-key "$work/keys/auditor.pub"; then
  echo "demo: a tampered bundle verified — this must never happen" >&2
  exit 1
fi
echo "tampered copy rejected (exit 1), as it must be"
step "done"
