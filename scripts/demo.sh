#!/usr/bin/env bash
# The main job end to end: capture real OTLP from an OpenTelemetry SDK application -> bundle
# (seal + sign) -> verify -> inspect -> co-sign -> verify with a threshold of two -> independent
# openssl check -> tamper check; then the same for archived OTLP files (import). Work files go to
# a temporary directory; capture listens on free loopback ports.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${STELLA_BIN:-.build/debug/stella-forensics}
work=$(mktemp -d "${TMPDIR:-/tmp}/stella-demo.XXXXXX")
capture_pid=""
cleanup() {
  if [ -n "$capture_pid" ]; then kill "$capture_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

step() { printf '\n== %s\n' "$*"; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

step "keygen: an analyst key and an auditor co-signing key"
"$bin" keygen --out "$work/keys" --name analyst
"$bin" keygen --out "$work/keys" --name auditor

http_port=$(free_port); grpc_port=$(free_port); admin_port=$(free_port)
step "capture: the service on 127.0.0.1:$http_port (OTLP/HTTP), :$grpc_port (OTLP/gRPC), :$admin_port (admin)"
window_start=$(date -u +%Y-%m-%dT%H:%M:%S.%NZ)
"$bin" capture --data "$work/data" --otlp-http "127.0.0.1:$http_port" --otlp-grpc "127.0.0.1:$grpc_port" \
  --admin "127.0.0.1:$admin_port" >"$work/capture.out" 2>"$work/capture.err" &
capture_pid=$!
for _ in $(seq 1 100); do
  curl -sf "http://127.0.0.1:$admin_port/readyz" >/dev/null 2>&1 && break
  sleep 0.1
done
cat "$work/capture.out"

step "a real OpenTelemetry SDK application exports traces (HTTP/protobuf and gRPC), logs and metrics"
python3 scripts/demo_client.py "http://127.0.0.1:$http_port" "127.0.0.1:$grpc_port" | tee "$work/sent.json" \
  | python3 -c 'import json,sys; s=json.load(sys.stdin); print("sent {} spans, {} log records, {} metric points; every one acknowledged".format(len(s["spans"]), len(s["logs"]), s["metric_points"]))'
# The admin API needs a token; capture generated the local operator's in the data directory.
curl -sf -H "Authorization: Bearer $(cat "$work/data/admin-token")" "http://127.0.0.1:$admin_port/status" | python3 -c 'import json,sys; d=json.load(sys.stdin); print("journal:", ", ".join("{}/{} next seq {}".format(s["signal"], s["tenant"], s["nextSeq"]) for s in d["journal"]["streams"]))'

step "stop capture (SIGTERM): queued records synced, open segments sealed"
kill -TERM "$capture_pid"; wait "$capture_pid"; capture_pid=""
window_end=$(date -u +%Y-%m-%dT%H:%M:%S.%NZ)

step "bundle: seal the captured window into a signed bundle"
"$bin" bundle --data "$work/data" --from "$window_start" --to "$window_end" --key "$work/keys/analyst.key" \
  --out "$work/evidence.sfb.tar" --id INC-DEMO-0001 --reason "demo: suspicious checkout traffic" \
  --declared-by "soc-analyst@example.org"

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
step "import: archived OTLP files written by the OpenTelemetry SDK become a bundle the same way"
"$bin" import fixtures/otlp/app.otlp.jsonl --key "$work/keys/analyst.key" --out "$work/imported.sfb.tar" \
  --incident INC-DEMO-0002 --reason "demo: archived OTLP files" --declared-by "soc-analyst@example.org"
"$bin" verify "$work/imported.sfb.tar" --trusted-key "$work/keys/analyst.pub" --deep
step "done"
