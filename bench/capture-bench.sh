#!/usr/bin/env bash
# Capture benchmark (issues 4 and 10): capture's acknowledged OTLP/HTTP and OTLP/gRPC throughput,
# latency and memory under overload, each printed as a ratio against a reference measured in the
# same run on the same requests.
#
#   bash bench/capture-bench.sh
#
# Environment (optional):
#   BENCH_DURATION=10             seconds per wrk run
#   BENCH_WORK=/tmp/stella-capture-bench   work directory (bodies, data dirs, logs); removed unless BENCH_KEEP=1
#   BENCH_SKIP_BUILD=1            use the existing .build-bench/release/stella-forensics
#   BENCH_BIN=PATH                benchmark this binary instead (implies no build)
#   BENCH_OVERLOAD_BOUND=32MiB    --max-inflight-bytes for the overload run
#   BENCH_REDACTION_ONLY=1        only the two large-batch runs (without and with the example
#                                 redaction policy) and their ratio; nothing else is measured
#
# Load: request bodies recorded from the OpenTelemetry SDK's protobuf encoder
# (bench/capture/make_bodies.py: 32 distinct ~1 KiB and 32 distinct ~256 KiB trace requests),
# posted by wrk (bench/capture/post.lua) to /v1/traces. Acknowledged = wrk's requests minus its
# non-2xx count. Figures:
#   small batches: capture requests/s ÷ nginx requests/s   (nginx 1.22 on 127.0.0.1, `return 200`,
#                  same bodies, same wrk settings)                               goal >= 0.5
#                  Also printed, the floors on the same load ÷ nginx: a bare SwiftNIO server
#                  answering 200, and the same server appending each body to a file with one
#                  fdatasync per writer pass before answering (bench/Sources/nio-http-floor).
#   large batches: capture payload MB/s ÷ `zstd -3 -T1` MB/s over a file of the same bytes (the
#                  acknowledged bodies concatenated, same total size but >= 256 MiB, page cache) goal >= 0.5
#                  The window ends when every acknowledged record is in a sealed segment (wrk's
#                  time plus POST /seal), so compression counts as capture's work.
#   p50/p99 acknowledgement latency per durability policy (small batches, 16 connections paced at
#                  half of capture's maximum small-batch rate)            goal group-commit p99 <= 5 ms
#   peak RSS (VmHWM) under ~10x overload (large bodies on enough connections to hold 10x the
#   in-flight bound) vs --max-inflight-bytes + 64 MiB                                  goal <= 1.0
#   large batches over TLS: the large-batch run with every listener on TLS (openssl-made CA and
#                  server certificate), payload MB/s incl. sealing ÷ the plain run    goal >= 0.7
#   OTLP/gRPC large batches (16 h2load clients, each one connection posting its own pre-framed
#                  ~256 KiB request), payload MB/s incl. sealing ÷ `zstd -3 -T1` on those 16 bodies
#                  cycled                                                         goal >= 0.4
#   large batches with config/redaction.example.yaml active (a fresh 32-byte key file): payload
#                  MB/s incl. sealing ÷ the same run without a policy               goal >= 0.5
#   OTLP/gRPC overload: 48 concurrent ~12 MiB calls (h2load) against the same bound, peak RSS vs
#                  bound + 64 MiB                                                          goal <= 1.0
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
duration=${BENCH_DURATION:-10}
work=${BENCH_WORK:-/tmp/stella-capture-bench}
scratch="$repo/.build-bench"
bin=${BENCH_BIN:-$scratch/release/stella-forensics}
bound=${BENCH_OVERLOAD_BOUND:-32MiB}
lua="$repo/bench/capture/post.lua"
bodies="$work/bodies"

log() { printf '[capture-bench] %s\n' "$*" >&2; }
die() { printf '[capture-bench] error: %s\n' "$*" >&2; exit 3; }

capture_pid=""
cleanup() {
  [[ -n $capture_pid ]] && kill -TERM "$capture_pid" 2>/dev/null || true
  [[ -f $work/nginx.pid ]] && nginx -c "$work/nginx.conf" -p "$work" -s quit 2>/dev/null || true
  if [[ ${BENCH_KEEP:-0} != 1 ]]; then rm -rf "$work"; fi
}
trap cleanup EXIT

# --- dependencies (not CI: installed here, not in scripts/setup.sh) ------------------------------
missing=()
command -v wrk >/dev/null || missing+=(wrk)
command -v nginx >/dev/null || missing+=(nginx)
command -v hyperfine >/dev/null || missing+=(hyperfine)
command -v zstd >/dev/null || missing+=(zstd)
command -v curl >/dev/null || missing+=(curl)
command -v h2load >/dev/null || missing+=(nghttp2-client)
if ((${#missing[@]})); then
  log "installing ${missing[*]}"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
python3 -c 'import opentelemetry.exporter.otlp.proto.common, opentelemetry.sdk' 2>/dev/null \
  || python3 -m pip install -q --disable-pip-version-check -r e2e/requirements.txt

# --- build -----------------------------------------------------------------------------------------
# Through bench/Package.swift (as bundle-bench.sh does), so both benchmarks share one release build.
if [[ -z ${BENCH_BIN:-} && ${BENCH_SKIP_BUILD:-0} != 1 ]]; then
  log "building stella-forensics (release) into $scratch"
  # SwiftPM keeps the build plan of the root package (a path dependency here) and misses source
  # files added since (seen: "cannot find 'NodeID' in scope"); drop the plan, keep the objects.
  rm -f "$scratch"/*/release/description.json "$scratch/release.yaml"
  swift build -c release --package-path bench --scratch-path "$scratch" --product stella-forensics 2>&1 \
    | grep -Ev '^\[[0-9]+/[0-9]+\]' >&2
fi
[[ -x $bin ]] || die "missing $bin"
# The small-batch floor (bench/Sources/nio-http-floor) is built beside it unless a binary is given.
floor_bin=$scratch/release/nio-http-floor
if [[ ! -x $floor_bin && -z ${BENCH_BIN:-} ]]; then
  swift build -c release --package-path bench --scratch-path "$scratch" --product nio-http-floor 2>&1 \
    | grep -Ev '^\[[0-9]+/[0-9]+\]' >&2
fi

rm -rf "$work"
mkdir -p "$work"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# --- request bodies --------------------------------------------------------------------------------
summary=$(python3 bench/capture/make_bodies.py "$bodies" --count 32)
log "bodies: $summary"
avg() { python3 -c 'import json,sys; print(json.loads(sys.argv[1])[sys.argv[2]][sys.argv[3]])' "$summary" "$1" "$2"; }
small_bytes=$(avg small avgBytes); small_spans=$(avg small avgSpans)
large_bytes=$(avg large avgBytes); large_spans=$(avg large avgSpans)

# --- wrk -------------------------------------------------------------------------------------------
# run_wrk NAME PORT PREFIX THREADS CONNECTIONS -> sets W_* from the WRK_RESULT line
# run_wrk NAME PORT PREFIX THREADS CONNECTIONS [RATE]: RATE paces the load (requests/s in total).
run_wrk() {
  local name=$1 port=$2 prefix=$3 threads=$4 connections=$5 rate=${6:-}
  local script=$lua
  if [[ -n $rate ]]; then
    script="$work/post-paced.lua"
    { cat "$lua"; printf '\nfunction delay()\n  return delay_ms\nend\n'; } >"$script"
  fi
  wrk -t"$threads" -c"$connections" -d"${duration}s" --latency --timeout 30s -s "$script" \
    "${W_scheme:-http}://127.0.0.1:$port" -- "$bodies" "$prefix" 32 $rate ${rate:+$connections} >"$work/wrk-$name.out" 2>&1 \
    || die "wrk $name failed"
  local line
  line=$(grep '^WRK_RESULT' "$work/wrk-$name.out") || die "wrk $name printed no result: $(cat "$work/wrk-$name.out")"
  eval "$(sed -E 's/^WRK_RESULT //; s/([a-z0-9_]+)=/W_\1=/g' <<<"$line")"
  W_acked=$((W_requests - W_non2xx))
  W_seconds=$(python3 -c "print($W_duration_us/1e6)")
  W_rps=$(python3 -c "print($W_acked/$W_seconds)")
  log "$name: $line"
  local errors=$((W_connect_errors + W_read_errors + W_write_errors + W_timeouts))
  ((errors == 0)) || log "$name: $errors socket errors/timeouts (see $work/wrk-$name.out)"
}

redaction_only=${BENCH_REDACTION_ONLY:-0}
# --- nginx reference -------------------------------------------------------------------------------
if [[ $redaction_only != 1 ]]; then
nginx_port=$(free_port); check_port=$(free_port)
mkdir -p "$work/nginx-tmp"
cat >"$work/nginx.conf" <<EOF
worker_processes 2;
pid $work/nginx.pid;
error_log $work/nginx.error.log;
events { worker_connections 8192; }
http {
  access_log off;
  client_body_temp_path $work/nginx-tmp/body; proxy_temp_path $work/nginx-tmp/proxy;
  fastcgi_temp_path $work/nginx-tmp/fastcgi; uwsgi_temp_path $work/nginx-tmp/uwsgi; scgi_temp_path $work/nginx-tmp/scgi;
  keepalive_requests 100000000;
  log_format check '\$connection \$connection_requests \$status \$content_length';
  # The measured server: answers 200 after reading (and discarding) the whole body.
  server { listen 127.0.0.1:$nginx_port; client_max_body_size 0; client_body_buffer_size 1m;
           location / { return 200; } }
  # Same, with a log, to check that nginx consumes each body (see below).
  server { listen 127.0.0.1:$check_port; access_log $work/nginx-check.log check;
           client_max_body_size 0; client_body_buffer_size 1m; location / { return 200; } }
}
EOF
nginx -c "$work/nginx.conf" -p "$work"
sleep 0.3
# Two large POSTs on one keep-alive connection: the second can only parse (and get 200) if nginx
# read the first body to its end, so `return 200` does consume the body.
codes=$(curl -s -o /dev/null -o /dev/null -w '%{http_code} ' -H 'Content-Type: application/x-protobuf' \
  --data-binary @"$bodies/large-00.pb" "http://127.0.0.1:$check_port/v1/traces" "http://127.0.0.1:$check_port/v1/traces")
[[ $codes == "200 200 " ]] || die "nginx check: $codes"
awk 'NR==2 && $2==2 && $3==200 {ok=1} END {exit !ok}' "$work/nginx-check.log" \
  || die "nginx did not answer the second request on the same connection: $(cat "$work/nginx-check.log")"
log "nginx consumes bodies: two $(stat -c %s "$bodies/large-00.pb")-byte POSTs on one connection, both 200"

run_wrk nginx-small "$nginx_port" small 2 64; nginx_small_rps=$W_rps; nginx_small_p50=$W_p50_us; nginx_small_p99=$W_p99_us
run_wrk nginx-small-16 "$nginx_port" small 2 16; nginx_lat_p50=$W_p50_us; nginx_lat_p99=$W_p99_us
run_wrk nginx-large "$nginx_port" large 2 16; nginx_large_rps=$W_rps
nginx -c "$work/nginx.conf" -p "$work" -s quit
rm -f "$work/nginx.pid"

# The floors under the small-batch figure (informational), on capture's event-loop layout:
# bench/Sources/nio-http-floor, a bare SwiftNIO HTTP/1.1 server that reads each body and answers
# 200 (no OTLP check, no journal, no fsync), and the same server making each body durable first
# (appended to one file, one fdatasync per writer pass, the simplest group commit). Capture cannot
# be faster than the second on the same durability.
floor_small_rps=0; floor_durable_rps=0
if [[ -x $floor_bin ]]; then
  # run_floor NAME [FILE] -> W_rps
  run_floor() {
    local port; port=$(free_port)
    sync
    "$floor_bin" "$port" "${@:2}" >"$work/floor-$1.out" 2>&1 &
    local pid=$!
    for _ in $(seq 1 100); do grep -q ready "$work/floor-$1.out" && break; sleep 0.05; done
    run_wrk "nio-floor-$1" "$port" small 2 64
    kill "$pid"; wait "$pid" 2>/dev/null || true
  }
  run_floor bare; floor_small_rps=$W_rps
  run_floor durable "$work/floor-journal"; floor_durable_rps=$W_rps
  rm -f "$work/floor-journal"
fi
fi

# --- capture ---------------------------------------------------------------------------------------
# Every listener is plain http unless a phase turns TLS on (capture_scheme=https, curl_tls=(--cacert CA)).
capture_scheme=http
curl_tls=()
# start_capture NAME FLAGS... -> capture_pid, capture_port
start_capture() {
  local name=$1; shift
  # The previous phase's dirty pages are written back now, not during this phase's fsyncs.
  sync
  capture_port=$(free_port); local admin; admin=$(free_port); local grpc; grpc=$(free_port)
  rm -rf "$work/data-$name"
  "$bin" capture --data "$work/data-$name" --otlp-http "127.0.0.1:$capture_port" --otlp-grpc "127.0.0.1:$grpc" \
    --admin "127.0.0.1:$admin" --metrics 127.0.0.1:0 "$@" >"$work/capture-$name.out" 2>"$work/capture-$name.err" &
  capture_pid=$!
  capture_admin=$admin
  capture_data="$work/data-$name"
  capture_grpc=$grpc
  for _ in $(seq 1 300); do
    curl -sf -o /dev/null "${curl_tls[@]}" "$capture_scheme://127.0.0.1:$admin/readyz" && return 0
    kill -0 "$capture_pid" 2>/dev/null || die "capture $name exited: $(tail -5 "$work/capture-$name.err")"
    sleep 0.1
  done
  die "capture $name not ready after 30 s"
}
stop_capture() {
  local name=$1
  kill -TERM "$capture_pid"
  wait "$capture_pid" || die "capture $name exited $? after SIGTERM: $(tail -5 "$work/capture-$name.err")"
  capture_pid=""
  rm -rf "$work/data-$name"
}
hwm_kib() { awk '/^VmHWM/ {print $2}' "/proc/$1/status"; }

if [[ $redaction_only != 1 ]]; then
start_capture small-group-commit --durability group-commit
run_wrk capture-small "$capture_port" small 2 64
cap_small_rps=$W_rps; cap_small_non2xx=$W_non2xx
stop_capture small-group-commit
fi

# Sealing (zstd) is part of capture's work: the window ends when every acknowledged record is in
# a sealed segment (POST /seal returns once the seal queue has drained).
# The admin API wants the local operator's token, which capture creates in its data directory.
admin_token() { cat "$capture_data/admin-token"; }
seal_all() {
  local started ended
  started=$(date +%s.%N)
  curl -sf -o /dev/null "${curl_tls[@]}" -X POST -H "Authorization: Bearer $(admin_token)" \
    -H 'Content-Type: application/json' "$capture_scheme://127.0.0.1:$capture_admin/seal" || die "POST /seal failed"
  ended=$(date +%s.%N)
  python3 -c "print($ended - $started)"
}
status_field() {  # status_field PYTHON-EXPR-ON-s
  curl -sf "${curl_tls[@]}" -H "Authorization: Bearer $(admin_token)" "$capture_scheme://127.0.0.1:$capture_admin/status" \
    | python3 -c "import json,sys; s=json.load(sys.stdin); print($1)"
}

start_capture large-group-commit --durability group-commit
run_wrk capture-large "$capture_port" large 2 16
cap_large_rps=$W_rps; cap_large_non2xx=$W_non2xx; cap_large_acked=$W_acked; cap_large_seconds=$W_seconds
large_seal_seconds=$(seal_all)
cap_large_mbs=$(python3 -c "print($W_acked*$large_bytes/($W_seconds+$large_seal_seconds)/1e6)")
stop_capture large-group-commit

# The same large-batch run with the example redaction policy: every request is read field by
# field and its strings screened (the SDK's bodies hold no secret, so most come back unchanged).
mkdir -p "$work/policy"
cp config/redaction.example.yaml "$work/policy/redaction.example.yaml"
head -c 32 /dev/urandom >"$work/policy/redaction.key"
chmod 600 "$work/policy/redaction.key"
start_capture large-redacted --durability group-commit --redaction-policy "$work/policy/redaction.example.yaml"
run_wrk capture-large-redacted "$capture_port" large 2 16
cap_red_rps=$W_rps; cap_red_non2xx=$W_non2xx
red_seal_seconds=$(seal_all)
cap_red_mbs=$(python3 -c "print($W_acked*$large_bytes/($W_seconds+$red_seal_seconds)/1e6)")
red_changed=$(status_field 's["ingest"]["redaction"]["requestsChanged"]')
stop_capture large-redacted
redaction_report() {
  python3 -c "
r = lambda a, b: a / b if b else float('nan')
print(f'  large batches with the example redaction policy, 16 conns: capture {$cap_red_mbs:.1f} MB/s payload, {$cap_red_rps:.1f} req/s '
      f'(non-2xx {$cap_red_non2xx}, requests changed by the policy {$red_changed}, seal {$red_seal_seconds:.2f} s)  ->  redacted/plain = {r($cap_red_mbs, $cap_large_mbs):.3f}  (goal >= 0.5)')
print(f'RESULT redacted_large_mbs_vs_plain={r($cap_red_mbs, $cap_large_mbs):.3f} redacted_large_mbs={$cap_red_mbs:.1f} plain_large_mbs={$cap_large_mbs:.1f}')
"
}
if [[ $redaction_only == 1 ]]; then
  redaction_report
  exit 0
fi

# The same large-batch run over TLS (every listener: OTLP/HTTP, gRPC, admin), with a CA and an
# ECDSA P-256 server certificate for 127.0.0.1 made here by openssl; wrk negotiates TLS 1.3.
tls="$work/tls"
mkdir -p "$tls"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj "/CN=bench CA" \
  -keyout "$tls/ca.key" -out "$tls/ca.pem" 2>/dev/null || die "openssl: CA"
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=127.0.0.1" \
  -keyout "$tls/server.key" -out "$tls/server.csr" 2>/dev/null || die "openssl: server key"
printf 'subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' >"$tls/server.ext"
openssl x509 -req -in "$tls/server.csr" -CA "$tls/ca.pem" -CAkey "$tls/ca.key" -CAcreateserial -days 2 \
  -extfile "$tls/server.ext" -out "$tls/server.pem" 2>/dev/null || die "openssl: server certificate"
chmod 600 "$tls"/*.key
capture_scheme=https
curl_tls=(--cacert "$tls/ca.pem")
start_capture large-tls --durability group-commit --tls-cert "$tls/server.pem" --tls-key "$tls/server.key"
W_scheme=https run_wrk capture-large-tls "$capture_port" large 2 16
cap_tls_rps=$W_rps; cap_tls_non2xx=$W_non2xx
tls_seal_seconds=$(seal_all)
cap_tls_mbs=$(python3 -c "print($W_acked*$large_bytes/($W_seconds+$tls_seal_seconds)/1e6)")
stop_capture large-tls
capture_scheme=http
curl_tls=()

declare -A lat_p50 lat_p99 lat_rps
# Latency at half of the maximum small-batch rate measured above (paced, not saturated).
half_rate=$(python3 -c "print(max(1, int($cap_small_rps / 2)))")
for policy in fsync-per-batch group-commit interval; do
  start_capture "lat-$policy" --durability "$policy"
  run_wrk "capture-latency-$policy" "$capture_port" small 2 16 "$half_rate"
  lat_p50[$policy]=$W_p50_us; lat_p99[$policy]=$W_p99_us; lat_rps[$policy]=$W_rps
  stop_capture "lat-$policy"
done

# Overload: enough connections that the bodies in flight are ~10x the in-flight bound.
bound_bytes=$(python3 -c "
import re,sys; m=re.fullmatch(r'(\d+)(KiB|MiB|GiB)?', sys.argv[1]); print(int(m[1])*{None:1,'KiB':1024,'MiB':1<<20,'GiB':1<<30}[m[2]])" "$bound")
overload_connections=$(python3 -c "import math; print(math.ceil(10*$bound_bytes/$large_bytes))")
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
((overload_connections + 64 <= $(ulimit -n))) || die "need $overload_connections connections, ulimit -n is $(ulimit -n)"
# --max-connections above the connection count, so it is the memory bound that pushes back.
start_capture overload --max-inflight-bytes "$bound" --max-connections $((overload_connections * 2))
rss_idle_kib=$(hwm_kib "$capture_pid")
run_wrk capture-overload "$capture_port" large 2 "$overload_connections"
overload_non2xx=$W_non2xx; overload_acked=$W_acked
overload_hwm_kib=$(hwm_kib "$capture_pid")
stop_capture overload

# --- OTLP/gRPC -------------------------------------------------------------------------------------
# h2load posts one pre-framed gRPC message (5-byte prefix + the request) per call to the trace
# Export method. gRPC answers HTTP 200 even for refused calls, so acknowledged calls are counted
# by capture itself (/status journal.appendedRecords).
grpc_frame() {  # grpc_frame OUT BODY...: one gRPC message holding the concatenated requests
  python3 - "$@" <<'PY'
import struct, sys
from pathlib import Path
body = b"".join(Path(p).read_bytes() for p in sys.argv[2:])  # concatenated requests merge
Path(sys.argv[1]).write_bytes(b"\0" + struct.pack(">I", len(body)) + body)
PY
}
run_h2load() {  # run_h2load NAME PORT BODY CLIENTS STREAMS SECONDS
  local name=$1 port=$2 body=$3 clients=$4 streams=$5 seconds=$6
  h2load -c "$clients" -m "$streams" -D "$seconds" -d "$body" \
    -H 'content-type: application/grpc' -H 'te: trailers' \
    "http://127.0.0.1:$port/opentelemetry.proto.collector.trace.v1.TraceService/Export" \
    >"$work/h2load-$name.out" 2>&1 || die "h2load $name failed: $(tail -3 "$work/h2load-$name.out")"
}
# 16 connections, each its own h2load posting its own distinct body, so capture's zstd (and the
# reference's) cannot match whole repeated bodies in its window (one body repeated compresses ten
# times faster than real traffic and made a meaningless reference).
grpc_clients=16
for i in $(seq 0 $((grpc_clients - 1))); do
  grpc_frame "$work/grpc-large-$i.bin" "$bodies/large-$(printf %02d "$i").pb"
done
grpc_large_bytes=$(python3 -c "import os,sys; print(sum(os.path.getsize(p) - 5 for p in sys.argv[1:]) / len(sys.argv[1:]))" "$work"/grpc-large-*.bin)
start_capture grpc-large --durability group-commit
grpc_before=$(status_field 's["journal"]["appendedRecords"]')
grpc_before_bytes=$(status_field 's["journal"]["appendedBytes"]')
grpc_started=$(date +%s.%N)
h2pids=()
for i in $(seq 0 $((grpc_clients - 1))); do
  run_h2load "grpc-large-$i" "$capture_grpc" "$work/grpc-large-$i.bin" 1 1 "$duration" &
  h2pids+=($!)
done
for pid in "${h2pids[@]}"; do wait "$pid" || die "h2load (gRPC large) failed"; done
grpc_seal_seconds=$(seal_all)
grpc_ended=$(date +%s.%N)
grpc_acked=$(( $(status_field 's["journal"]["appendedRecords"]') - grpc_before ))
grpc_acked_bytes=$(( $(status_field 's["journal"]["appendedBytes"]') - grpc_before_bytes ))
grpc_seconds=$(python3 -c "print($grpc_ended - $grpc_started)")
cap_grpc_mbs=$(python3 -c "print($grpc_acked_bytes/$grpc_seconds/1e6)")
stop_capture grpc-large
log "grpc-large: $grpc_acked calls acknowledged in $grpc_seconds s (seal $grpc_seal_seconds s)"

# gRPC overload: 48 concurrent ~12 MiB calls against the in-flight bound.
grpc_frame "$work/grpc-12mib.bin" $(for i in $(seq 0 47); do printf '%s ' "$bodies/large-$(printf %02d $((i % 32))).pb"; done)
grpc_big_bytes=$(( $(stat -c %s "$work/grpc-12mib.bin") - 5 ))
start_capture grpc-overload --max-inflight-bytes "$bound" --max-connections 200
grpc_rss_idle_kib=$(hwm_kib "$capture_pid")
grpc_over_before=$(status_field 's["journal"]["appendedRecords"]')
run_h2load grpc-overload "$capture_grpc" "$work/grpc-12mib.bin" 48 1 "$duration"
grpc_over_acked=$(( $(status_field 's["journal"]["appendedRecords"]') - grpc_over_before ))
grpc_over_refused=$(status_field 's["ingest"]["rejected"].get("overloaded", 0)')
grpc_overload_hwm_kib=$(hwm_kib "$capture_pid")
stop_capture grpc-overload

# --- zstd -3 reference: the same payload bytes as capture acknowledged in the large run ----------
# Bodies concatenated in the order wrk cycled them, to the same total size; at least 256 MiB (so
# zstd's start-up does not count) and at most 2 GiB. MB/s does not depend on the size beyond that.
zfile="$work/payload.bin"
python3 - "$bodies" "$zfile" "$cap_large_acked" <<'EOF'
import sys
from pathlib import Path
bodies = [Path(sys.argv[1], f"large-{i:02d}.pb").read_bytes() for i in range(32)]
target = min(max(int(sys.argv[3]) * sum(map(len, bodies)) // 32, 256 << 20), 2 << 30)
with open(sys.argv[2], "wb") as out:
    written, index = 0, 0
    while written < target:
        written += out.write(bodies[index % 32])
        index += 1
EOF
zbytes=$(stat -c %s "$zfile")
cat "$zfile" >/dev/null  # into the page cache
hyperfine -N --warmup 1 --runs 3 --export-json "$work/zstd.json" "zstd -3 -T1 -q -c $zfile" >&2
zstd_seconds=$(python3 -c "import json; print(json.load(open('$work/zstd.json'))['results'][0]['median'])")
zstd_mbs=$(python3 -c "print($zbytes/$zstd_seconds/1e6)")
# The gRPC reference: zstd on the 16 bodies the gRPC clients sent, cycled to the same size.
gfile="$work/grpc-payload.bin"
python3 - "$bodies" "$gfile" "$grpc_acked" "$grpc_clients" <<'EOF2'
import sys
from pathlib import Path
clients = int(sys.argv[4])
bodies = [Path(sys.argv[1], f"large-{i:02d}.pb").read_bytes() for i in range(clients)]
per = sum(map(len, bodies)) // clients
target = min(max(int(sys.argv[3]) * per, 256 << 20), 2 << 30)
with open(sys.argv[2], "wb") as out:
    written, index = 0, 0
    while written < target:
        written += out.write(bodies[index % clients])
        index += 1
EOF2
gbytes=$(stat -c %s "$gfile")
cat "$gfile" >/dev/null
hyperfine -N --warmup 1 --runs 3 --export-json "$work/zstd-grpc.json" "zstd -3 -T1 -q -c $gfile" >&2
zstd_grpc_seconds=$(python3 -c "import json; print(json.load(open('$work/zstd-grpc.json'))['results'][0]['median'])")
zstd_grpc_mbs=$(python3 -c "print($gbytes/$zstd_grpc_seconds/1e6)")
rm -f "$gfile"

# --- report ----------------------------------------------------------------------------------------
redaction_report
python3 - <<EOF
small_b, small_s, large_b, large_s = $small_bytes, $small_spans, $large_bytes, $large_spans
r = lambda a, b: a / b if b else float("nan")
print()
print("capture benchmark (ratios against references measured in this run)")
print(f"  bodies: small {small_b:.0f} B / {small_s:.1f} spans, large {large_b:.0f} B / {large_s:.0f} spans; {$duration} s per wrk run")
print(f"  small batches, 64 conns: capture {$cap_small_rps:.0f} req/s = records/s ({$cap_small_rps*small_s:.0f} spans/s, "
      f"{$cap_small_rps*small_b/1e6:.1f} MB/s; non-2xx {$cap_small_non2xx})")
print(f"      nginx {$nginx_small_rps:.0f} req/s  ->  capture/nginx requests/s = {r($cap_small_rps, $nginx_small_rps):.3f}  (goal >= 0.5)")
if $floor_small_rps:
    print(f"      floors (informational): bare SwiftNIO 200 {$floor_small_rps:.0f} req/s = {r($floor_small_rps, $nginx_small_rps):.3f} of nginx; "
          f"SwiftNIO + append + group fdatasync {$floor_durable_rps:.0f} req/s = {r($floor_durable_rps, $nginx_small_rps):.3f} of nginx; "
          f"capture/durable floor = {r($cap_small_rps, $floor_durable_rps):.3f}")
print(f"  large batches, 16 conns: capture {$cap_large_mbs:.1f} MB/s payload, {$cap_large_rps:.1f} req/s = records/s, "
      f"{$cap_large_rps*large_s:.0f} spans/s (non-2xx {$cap_large_non2xx})")
print(f"      zstd -3 -T1 {$zstd_mbs:.1f} MB/s on {$zbytes} bytes of the same bodies  ->  capture/zstd = {r($cap_large_mbs, $zstd_mbs):.3f}  (goal >= 0.5)")
print(f"      (window: {$cap_large_seconds:.1f} s of wrk + seal {$large_seal_seconds:.2f} s: every acknowledged record sealed)")
print(f"      nginx {$nginx_large_rps:.1f} req/s on large bodies  ->  capture/nginx = {r($cap_large_rps, $nginx_large_rps):.3f}  (information)")
print(f"  large batches over TLS (ECDSA P-256, every listener), 16 conns: capture {$cap_tls_mbs:.1f} MB/s payload, {$cap_tls_rps:.1f} req/s "
      f"(non-2xx {$cap_tls_non2xx}, seal {$tls_seal_seconds:.2f} s)  ->  TLS/plain = {r($cap_tls_mbs, $cap_large_mbs):.3f}  (goal >= 0.7)")
print(f"  OTLP/gRPC large batches, 16 conns (16 h2load, one distinct body each): capture {$cap_grpc_mbs:.1f} MB/s payload ({$grpc_acked} calls, seal {$grpc_seal_seconds:.2f} s)")
print(f"      zstd -3 -T1 {$zstd_grpc_mbs:.1f} MB/s on the same 16 bodies  ->  capture/zstd = {r($cap_grpc_mbs, $zstd_grpc_mbs):.3f}  (goal >= 0.4)")
print(f"  ack latency, small batches, 16 conns paced at {$half_rate} req/s = half of capture's maximum (nginx p50 {$nginx_lat_p50/1000:.2f} ms, p99 {$nginx_lat_p99/1000:.2f} ms):")
for policy, p50, p99, rps in (("fsync-per-batch", ${lat_p50[fsync-per-batch]}, ${lat_p99[fsync-per-batch]}, ${lat_rps[fsync-per-batch]}),
                              ("group-commit", ${lat_p50[group-commit]}, ${lat_p99[group-commit]}, ${lat_rps[group-commit]}),
                              ("interval", ${lat_p50[interval]}, ${lat_p99[interval]}, ${lat_rps[interval]})):
    print(f"      {policy:16s} p50 {p50/1000:7.2f} ms ({r(p50, $nginx_lat_p50):6.1f}x nginx)  p99 {p99/1000:7.2f} ms "
          f"({r(p99, $nginx_lat_p99):6.1f}x nginx)  {rps:.0f} req/s")
bound = $bound_bytes
peak = $overload_hwm_kib * 1024
print(f"  overload: {$overload_connections} conns x {large_b/1024:.0f} KiB in flight = {$overload_connections*large_b/bound:.1f}x the bound "
      f"{bound/2**20:.0f} MiB; acked {$overload_acked}, refused (non-2xx) {$overload_non2xx}")
print(f"      peak RSS {peak/2**20:.1f} MiB (idle {$rss_idle_kib/1024:.1f} MiB)  ->  peak/(bound+64 MiB) = {peak/(bound+64*2**20):.3f}  (goal <= 1.0)")
grpc_peak = $grpc_overload_hwm_kib * 1024
print(f"  gRPC overload: 48 calls x {$grpc_big_bytes/2**20:.1f} MiB against the bound {bound/2**20:.0f} MiB; acked {$grpc_over_acked}, refused {$grpc_over_refused}")
print(f"      peak RSS {grpc_peak/2**20:.1f} MiB (idle {$grpc_rss_idle_kib/1024:.1f} MiB)  ->  peak/(bound+64 MiB) = {grpc_peak/(bound+64*2**20):.3f}  (goal <= 1.0)")
print(f"RESULT grpc_large_mbs_vs_zstd={r($cap_grpc_mbs, $zstd_grpc_mbs):.3f} grpc_peak_rss_vs_bound_plus_64MiB={grpc_peak/(bound+64*2**20):.3f} "
      f"tls_large_mbs_vs_plain={r($cap_tls_mbs, $cap_large_mbs):.3f}")
print(f"RESULT small_rps_vs_nginx={r($cap_small_rps, $nginx_small_rps):.3f} large_mbs_vs_zstd={r($cap_large_mbs, $zstd_mbs):.3f} "
      f"peak_rss_vs_bound_plus_64MiB={peak/(bound+64*2**20):.3f} "
      f"p50_ms_fsync={${lat_p50[fsync-per-batch]}/1000:.2f} p99_ms_fsync={${lat_p99[fsync-per-batch]}/1000:.2f} "
      f"p50_ms_group={${lat_p50[group-commit]}/1000:.2f} p99_ms_group={${lat_p99[group-commit]}/1000:.2f} "
      f"p50_ms_interval={${lat_p50[interval]}/1000:.2f} p99_ms_interval={${lat_p99[interval]}/1000:.2f}")
EOF
