#!/usr/bin/env bash
# Bounded-resources benchmark (issue "Incident mode", done-when 6): under sustained OTLP/HTTP load,
# the flight recorder's disk use stays within its ring bound and capture's RSS within the
# documented memory bound. Both are printed as ratios to their bounds (goal <= 1.0).
#
#   bash bench/ring-bench.sh
#
# Environment (optional):
#   BENCH_DURATION=60                 seconds of load
#   BENCH_RING_BYTES=64MiB            --ring-max-bytes (the ring's age bound is 5m)
#   BENCH_INFLIGHT=32MiB              --max-inflight-bytes
#   BENCH_BIN=PATH                    benchmark this binary (default: release build in .build-bench)
#   BENCH_WORK=/tmp/stella-ring-bench work directory, removed unless BENCH_KEEP=1
#
# Load: wrk posting the ~256 KiB SDK-encoded trace requests of bench/capture/make_bodies.py on 16
# connections, as fast as capture acknowledges them. Every second the script reads the size of the
# ring (DATA/journal: every open and sealed segment, as `du` counts it), of the archive
# (DATA/archive: what tail sampling kept, outside the ring bound) and capture's VmRSS.
# Documented memory bound (README, "Bounded resources"):
#   max-inflight-bytes + 8 × sampling max-buffered-bytes (decoded spans) + sampling queue + 64 MiB.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
duration=${BENCH_DURATION:-60}
ring_bound=${BENCH_RING_BYTES:-64MiB}
inflight=${BENCH_INFLIGHT:-32MiB}
work=${BENCH_WORK:-/tmp/stella-ring-bench}
bin=${BENCH_BIN:-$repo/.build-bench/release/stella-forensics}
log() { printf '[ring-bench] %s\n' "$*" >&2; }

to_bytes() { python3 -c 'import re,sys; m=re.fullmatch(r"(\d+)(KiB|MiB|GiB)?", sys.argv[1]); print(int(m[1]) * {None:1,"KiB":1<<10,"MiB":1<<20,"GiB":1<<30}[m[2]])' "$1"; }

capture_pid=""
cleanup() {
  [[ -n $capture_pid ]] && kill -TERM "$capture_pid" 2>/dev/null && wait "$capture_pid" 2>/dev/null || true
  if [[ ${BENCH_KEEP:-0} != 1 ]]; then rm -rf "$work"; fi
}
trap cleanup EXIT

command -v wrk >/dev/null || { log "installing wrk"; apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null; }
if [[ -z ${BENCH_BIN:-} ]]; then
  log "building release into .build-bench (a few minutes the first time)"
  swift build -c release --scratch-path "$repo/.build-bench" --product stella-forensics >&2
fi

rm -rf "$work" && mkdir -p "$work"
python3 bench/capture/make_bodies.py "$work/bodies" --count 32 >/dev/null
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
http_port=$(free_port); grpc_port=$(free_port); admin_port=$(free_port)
"$bin" capture --data "$work/data" --otlp-http "127.0.0.1:$http_port" --otlp-grpc "127.0.0.1:$grpc_port" \
  --admin "127.0.0.1:$admin_port" --metrics 127.0.0.1:0 --ring-max-age 5m --ring-max-bytes "$ring_bound" --default-lookback 1m \
  --segment-max-bytes 4MiB --segment-max-age 5s --max-inflight-bytes "$inflight" --max-journal-bytes 8GiB \
  --log-level warning >"$work/capture.out" 2>"$work/capture.err" &
capture_pid=$!
for _ in $(seq 1 200); do curl -sf "http://127.0.0.1:$admin_port/readyz" >/dev/null && break; sleep 0.05; done

log "load: ${duration}s of ~256 KiB trace requests on 16 connections"
wrk -t2 -c16 -d"${duration}s" --timeout 30s -s bench/capture/post.lua "http://127.0.0.1:$http_port" \
  -- "$work/bodies" large 32 >"$work/wrk.out" 2>&1 &
wrk_pid=$!
max_ring=0; max_archive=0; max_rss=0
while kill -0 "$wrk_pid" 2>/dev/null; do
  ring=$(du -sb "$work/data/journal" 2>/dev/null | cut -f1 || echo 0)
  archive=$(du -sb "$work/data/archive" 2>/dev/null | cut -f1 || echo 0)
  rss=$(awk '/^VmRSS/ {print $2 * 1024}' "/proc/$capture_pid/status")
  ((ring > max_ring)) && max_ring=$ring
  ((archive > max_archive)) && max_archive=$archive
  ((rss > max_rss)) && max_rss=$rss
  sleep 1
done
wait "$wrk_pid" || true
result=$(grep '^WRK_RESULT' "$work/wrk.out" || true)
hwm=$(awk '/^VmHWM/ {print $2 * 1024}' "/proc/$capture_pid/status")
status=$(curl -sf -H "Authorization: Bearer $(cat "$work/data/admin-token")" "http://127.0.0.1:$admin_port/status")

python3 - "$max_ring" "$max_archive" "$max_rss" "$hwm" "$(to_bytes "$ring_bound")" "$(to_bytes "$inflight")" \
  "$result" "$status" "$duration" <<'PY'
import json, sys
max_ring, max_archive, max_rss, hwm, ring_bound, inflight = map(int, sys.argv[1:7])
result, status, duration = sys.argv[7], json.loads(sys.argv[8]), int(sys.argv[9])
fields = dict(item.split("=") for item in result.split()[1:]) if result else {}
acked = int(fields.get("requests", 0)) - int(fields.get("non2xx", 0))
sampling_buffer, sampling_queue = 16 << 20, 16 << 20
memory_bound = inflight + 8 * sampling_buffer + sampling_queue + (64 << 20)
appended = int(status["journal"]["appendedBytes"])
print(f"load: {acked} requests acknowledged in {duration}s ({appended / duration / 1e6:.1f} MB/s of OTLP payload journaled), "
      f"{status['journal']['prunedSegments']} segments pruned by the ring")
print(f"ring disk use:   peak {max_ring / 2**20:.1f} MiB / bound {ring_bound / 2**20:.0f} MiB = {max_ring / ring_bound:.2f}  (goal <= 1.0; sampled every second)")
print(f"archive (outside the ring bound): peak {max_archive / 2**20:.1f} MiB")
print(f"RSS:             peak {max(max_rss, hwm) / 2**20:.1f} MiB (VmHWM) / bound {memory_bound / 2**20:.0f} MiB = {max(max_rss, hwm) / memory_bound:.2f}  (goal <= 1.0)")
PY
