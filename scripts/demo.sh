#!/usr/bin/env bash
# The main job end to end: capture real OTLP from an OpenTelemetry SDK application while an
# incident is declared on the running service -> bundle the incident (seal + sign) -> verify ->
# inspect -> co-sign -> verify with a threshold of two -> independent openssl check -> tamper
# check -> replay into a second capture service standing in for the air-gapped site's stack; then
# the same for archived OTLP files (import). Work files go to a temporary directory; every service
# listens on free loopback ports.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${STELLA_BIN:-.build/debug/stella-forensics}
work=$(mktemp -d "${TMPDIR:-/tmp}/stella-demo.XXXXXX")
capture_pid=""
site_pid=""
cleanup() {
  if [ -n "$capture_pid" ]; then kill "$capture_pid" 2>/dev/null || true; fi
  if [ -n "$site_pid" ]; then kill "$site_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

step() { printf '\n== %s\n' "$*"; }
# start_service NAME DATA HTTP GRPC ADMIN: a capture service on those loopback ports, logs in
# $work/NAME.out and .err; sets started_pid once /readyz answers 200.
start_service() {
  local name=$1
  "$bin" capture --data "$2" --otlp-http "127.0.0.1:$3" --otlp-grpc "127.0.0.1:$4" --admin "127.0.0.1:$5" --metrics 127.0.0.1:0 \
    >"$work/$name.out" 2>"$work/$name.err" &
  started_pid=$!
  for _ in $(seq 1 100); do
    curl -sf "http://127.0.0.1:$5/readyz" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  echo "demo: $name not ready after 10 s: $(tail -3 "$work/$name.err")" >&2
  exit 1
}
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

step "keygen: an analyst key and an auditor co-signing key"
"$bin" keygen --out "$work/keys" --name analyst
"$bin" keygen --out "$work/keys" --name auditor

http_port=$(free_port); grpc_port=$(free_port); admin_port=$(free_port)
step "capture: the service on 127.0.0.1:$http_port (OTLP/HTTP), :$grpc_port (OTLP/gRPC), :$admin_port (admin)"
start_service capture "$work/data" "$http_port" "$grpc_port" "$admin_port"
capture_pid=$started_pid
cat "$work/capture.out"

step "incident start: the SOC declares an incident on the running service (admin API, local operator's token)"
incident_id=$("$bin" incident start --admin "127.0.0.1:$admin_port" --data "$work/data" \
  --reason "demo: suspicious checkout traffic" --lookback 1m --declared-by "soc-analyst@example.org")
echo "incident $incident_id"

step "a real OpenTelemetry SDK application exports traces (HTTP/protobuf and gRPC), logs and metrics"
python3 scripts/demo_client.py "http://127.0.0.1:$http_port" "127.0.0.1:$grpc_port" | tee "$work/sent.json" \
  | python3 -c 'import json,sys; s=json.load(sys.stdin); print("sent {} spans, {} log records, {} metric points; every one acknowledged".format(len(s["spans"]), len(s["logs"]), s["metric_points"]))'
# The admin API needs a token; capture generated the local operator's in the data directory.
curl -sf -H "Authorization: Bearer $(cat "$work/data/admin-token")" "http://127.0.0.1:$admin_port/status" | python3 -c 'import json,sys; d=json.load(sys.stdin); print("journal:", ", ".join("{}/{} next seq {}".format(s["signal"], s["tenant"], s["nextSeq"]) for s in d["journal"]["streams"]))'

step "incident stop, then stop capture (SIGTERM): queued records synced, open segments sealed"
"$bin" incident stop "$incident_id" --admin "127.0.0.1:$admin_port" --data "$work/data"
"$bin" incident list --admin "127.0.0.1:$admin_port" --data "$work/data"
kill -TERM "$capture_pid"; wait "$capture_pid"; capture_pid=""

step "bundle: seal the incident's window into a signed bundle (custody: the token's principal)"
"$bin" bundle --data "$work/data" --incident "$incident_id" --key "$work/keys/analyst.key" \
  --out "$work/evidence.sfb.tar"

step "verify --deep with the analyst's public key"
"$bin" verify "$work/evidence.sfb.tar" --trusted-key "$work/keys/analyst.pub" --deep

step "inspect: chain of custody (the audit stream's custody timeline) and contents"
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
step "replay: the air-gapped site sends the verified bundle into its own stack (here a second capture service)"
site_http=$(free_port); site_grpc=$(free_port); site_admin=$(free_port)
start_service site "$work/site" "$site_http" "$site_grpc" "$site_admin"
site_pid=$started_pid
"$bin" replay "$work/evidence.sfb.tar" --trusted-key "$work/keys/analyst.pub" --trusted-key "$work/keys/auditor.pub" --endpoint "http://127.0.0.1:$site_http"
# The audit stream (the capture node's custody record) stays in the bundle and is not replayed.
records_in_bundle=$("$bin" inspect "$work/evidence.sfb.tar" --json \
  | python3 -c 'import json,sys; d=json.load(sys.stdin); print(sum(int(s["records"]) for s in d["streams"] if s["tenant"] != "stella-forensics:audit"))')
records_at_site=$(curl -sf -H "Authorization: Bearer $(cat "$work/site/admin-token")" "http://127.0.0.1:$site_admin/status" \
  | python3 -c 'import json,sys; print(sum(int(s["nextSeq"]) for s in json.load(sys.stdin)["journal"]["streams"]))')
echo "bundle holds $records_in_bundle records; the site's stack received $records_at_site"
[ "$records_in_bundle" = "$records_at_site" ] || { echo "demo: replay delivered a different number of records" >&2; exit 1; }
kill -TERM "$site_pid"; wait "$site_pid"; site_pid=""

step "import: archived OTLP files written by the OpenTelemetry SDK become a bundle the same way"
"$bin" import fixtures/otlp/app.otlp.jsonl --key "$work/keys/analyst.key" --out "$work/imported.sfb.tar" \
  --incident INC-DEMO-0002 --reason "demo: archived OTLP files" --declared-by "soc-analyst@example.org"
"$bin" verify "$work/imported.sfb.tar" --trusted-key "$work/keys/analyst.pub" --deep
step "done"
