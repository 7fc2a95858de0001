#!/usr/bin/env bash
# Replay benchmark: `replay --speed max` throughput (MB/s of decompressed payload) into a receiver
# that discards, against `zstd -d` on the same blobs, measured in the same run.
#
#   bash bench/replay-bench.sh
#
# Environment (optional):
#   BENCH_RUNS=3                 timed runs per command (median reported; one untimed warm-up)
#   BENCH_REQUESTS=3000          synthetic OTLP requests (traces, logs, metrics in turn)
#   BENCH_ITEMS=1000             spans / log records per request (metrics: items/10 points)
#   BENCH_WORK=/tmp/stella-replay-bench   work directory
#   BENCH_KEEP=1                 keep the work directory
#   BENCH_SKIP_BUILD=1           use the existing .build-bench binary
#   BENCH_BUNDLE=B.tar BENCH_PUB=K.pub   replay this bundle instead of generating one
#
# The receiver is Debian's nginx on 127.0.0.1 (one process, keep-alive, `return 200` for every
# POST, body read and discarded, no logging), so the receiving side costs little next to replay.
# Replay's own figure is the duration it reports in --json (`durationMillis`: reading, checking,
# decompressing and sending every record; the deep verification before it is not included) and
# its `payloadBytes`. zstd's figure is `zstd -d -c` of every blob file to /dev/null, timed, with
# the decompressed segment bytes from the manifest. Ratios are replay MB/s ÷ zstd MB/s.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
runs=${BENCH_RUNS:-3}
requests=${BENCH_REQUESTS:-3000}
items=${BENCH_ITEMS:-1000}
work=${BENCH_WORK:-/tmp/stella-replay-bench}
scratch="$repo/.build-bench"
bin="$scratch/release/stella-forensics"

log() { printf '[replay-bench] %s\n' "$*" >&2; }
die() { printf '[replay-bench] error: %s\n' "$*" >&2; exit 3; }

nginx_pid=""
cleanup() {
  if [[ -n $nginx_pid ]]; then kill "$nginx_pid" 2>/dev/null || true; wait "$nginx_pid" 2>/dev/null || true; fi
  if [[ ${BENCH_KEEP:-0} != 1 ]]; then rm -rf "$work"; fi
}
trap cleanup EXIT

# --- dependencies ------------------------------------------------------------------------------
missing=()
command -v zstd >/dev/null || missing+=(zstd)
command -v bsdtar >/dev/null || missing+=(libarchive-tools)
command -v nginx >/dev/null || missing+=(nginx)
pkg-config --exists libsodium libzstd libarchive libcrypto 2>/dev/null \
  || missing+=(libsodium-dev libzstd-dev libarchive-dev libssl-dev pkg-config)
if ((${#missing[@]})); then
  log "installing ${missing[*]}"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
python3 -c 'import opentelemetry.proto' 2>/dev/null || python3 -m pip install -q -r e2e/requirements.txt

# --- build -------------------------------------------------------------------------------------
if [[ ${BENCH_SKIP_BUILD:-0} != 1 ]]; then
  log "building stella-forensics (release) into $scratch"
  swift build -c release --package-path bench --scratch-path "$scratch" \
    --product stella-forensics 2>&1 | grep -Ev '^\[[0-9]+/[0-9]+\]' >&2 || true
fi
[[ -x $bin ]] || die "missing $bin"

# --- data --------------------------------------------------------------------------------------
rm -rf "$work"
mkdir -p "$work/extract" "$work/keys" "$work/nginx"
if [[ -n ${BENCH_BUNDLE:-} ]]; then
  bundle=$BENCH_BUNDLE
  pub=${BENCH_PUB:?BENCH_PUB is needed with BENCH_BUNDLE}
else
  log "generating $requests OTLP requests of $items items"
  python3 e2e/replay_data.py "$work/traffic.pb" --requests "$requests" --items "$items" >&2
  "$bin" keygen --out "$work/keys" --name bench >/dev/null
  bundle="$work/bundle.sfb.tar"
  "$bin" import "$work/traffic.pb" --key "$work/keys/bench.key" --out "$bundle" --incident BENCH-REPLAY >&2
  rm -f "$work/traffic.pb"
  pub="$work/keys/bench.pub"
fi

read -r blob_count blob_bytes uncompressed_bytes < <(python3 - "$bundle" <<'PY'
import json, sys, tarfile
with tarfile.open(sys.argv[1]) as tar:
    manifest = json.load(tar.extractfile("manifest.json"))
blobs = manifest["blobs"]
print(len(blobs), sum(b["size"] for b in blobs), sum(b["uncompressedSize"] for b in blobs))
PY
)
log "bundle: $blob_count blobs, $blob_bytes compressed / $uncompressed_bytes decompressed segment bytes"
bsdtar -xf "$bundle" -C "$work/extract"
blob_files=("$work"/extract/blobs/sha256/*.zst)
((${#blob_files[@]} == blob_count)) || die "extracted ${#blob_files[@]} blobs, manifest lists $blob_count"

# --- the discarding receiver -------------------------------------------------------------------
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cat >"$work/nginx/nginx.conf" <<CONF
daemon off;
master_process off;
worker_processes 1;
pid $work/nginx/nginx.pid;
error_log $work/nginx/error.log warn;
events { worker_connections 64; }
http {
  access_log off;
  client_body_temp_path $work/nginx/body;
  proxy_temp_path $work/nginx/proxy;
  fastcgi_temp_path $work/nginx/fastcgi;
  uwsgi_temp_path $work/nginx/uwsgi;
  scgi_temp_path $work/nginx/scgi;
  keepalive_requests 100000000;
  keepalive_timeout 300s;
  server {
    listen 127.0.0.1:$port;
    client_max_body_size 0;
    location / { return 200; }
  }
}
CONF
nginx -p "$work/nginx" -c "$work/nginx/nginx.conf" &
nginx_pid=$!
for _ in $(seq 100); do
  python3 -c "import socket; socket.create_connection(('127.0.0.1', $port), 0.1).close()" 2>/dev/null && break
  sleep 0.1
done

# --- commands under test -----------------------------------------------------------------------
elapsed_ns() {
  local start end
  start=$(date +%s%N)
  "$@"
  end=$(date +%s%N)
  echo $((end - start))
}
zstd_decompress() { zstd -d -c -q "${blob_files[@]}" >/dev/null; }
# Prints "<payload bytes> <duration ns>" from replay's --json summary.
replay_run() {
  local shift=$1 out
  out=$("$bin" replay "$bundle" --trusted-key "$pub" --endpoint "http://127.0.0.1:$port" \
    --speed max --time-shift "$shift" --json) || die "replay failed: $out"
  python3 -c '
import json, sys
s = json.loads(sys.argv[1])
assert s["result"] == "completed" and s["recordsSent"] == s["recordsTotal"], s
print(s["payloadBytes"], s["durationMillis"] * 1_000_000)' "$out"
}

log "warm-up (untimed)"
zstd_decompress
replay_run none >/dev/null
replay_run now >/dev/null

declare -a zstd_ns=() none_rate=() now_rate=()
payload_bytes=0
for ((round = 1; round <= runs; round++)); do
  zstd_ns+=("$(elapsed_ns zstd_decompress)")
  read -r payload_bytes ns < <(replay_run none)
  none_rate+=("$(python3 -c "print($payload_bytes / ($ns / 1e9) / 1e6)")")
  read -r payload_bytes ns < <(replay_run now)
  now_rate+=("$(python3 -c "print($payload_bytes / ($ns / 1e9) / 1e6)")")
  log "round $round/$runs done"
done

python3 - "$uncompressed_bytes" "$payload_bytes" "${zstd_ns[*]}" "${none_rate[*]}" "${now_rate[*]}" <<'PY'
import statistics, sys
uncompressed, payload = int(sys.argv[1]), int(sys.argv[2])
zstd_rate = statistics.median(uncompressed / (int(ns) / 1e9) / 1e6 for ns in sys.argv[3].split())
none_rate = statistics.median(float(r) for r in sys.argv[4].split())
now_rate = statistics.median(float(r) for r in sys.argv[5].split())
print(f"decompressed segments: {uncompressed / 1e6:.1f} MB; replayed payload per run: {payload / 1e6:.1f} MB")
print(f"zstd -d:                          {zstd_rate:8.1f} MB/s")
print(f"replay --time-shift none:         {none_rate:8.1f} MB/s   ratio {none_rate / zstd_rate:.3f}  (goal >= 0.5)")
print(f"replay --time-shift now:          {now_rate:8.1f} MB/s   ratio {now_rate / zstd_rate:.3f}  (goal >= 0.25)")
print(f"RESULT replay_none_vs_zstd={none_rate / zstd_rate:.3f} replay_now_vs_zstd={now_rate / zstd_rate:.3f}")
PY
