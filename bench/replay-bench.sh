#!/usr/bin/env bash
# Replay, export and deep-verify benchmark against `zstd -d` on the same blobs, all in one run.
#
#   flock /tmp/bench.lock bash bench/replay-bench.sh
#
# Environment (optional):
#   BENCH_RUNS=5                 timed runs per command (hyperfine; median reported; one warm-up)
#   BENCH_REQUESTS=3000          synthetic OTLP requests (traces, logs, metrics in turn)
#   BENCH_ITEMS=1000             spans / log records per request (metrics: items/10 points)
#   BENCH_WORK=/tmp/stella-replay-bench   work directory
#   BENCH_EXPORT_DIR=/dev/shm/stella-replay-bench-export   export's --out (tmpfs: see below)
#   BENCH_KEEP=1                 keep the work directory
#   BENCH_SKIP_BUILD=1           use the existing .build-bench binary
#   BENCH_BIN=PATH               time this stella-forensics binary instead
#   BENCH_BUNDLE=B.tar BENCH_PUB=K.pub   use this bundle instead of generating one
#
# Every side is timed the same way: the whole process, from outside, by hyperfine (`-N`: no
# shell in between), from the page cache after a warm-up. Nothing a tool reports about itself
# is used.
#   zstd -d -c -q BLOB...          every blob file of the bundle, extracted once with bsdtar, to
#                                  /dev/null (hyperfine's default output)
#   replay --speed max --time-shift none|now   the whole command as a user runs it: reading the
#                                  tar, the deep verification it always does first, then sending
#   verify --deep
#   export --format otlp-proto     into BENCH_EXPORT_DIR (tmpfs by default, so the figure is the
#                                  tool's work and not this machine's disk), emptied before each
#                                  run by hyperfine's --prepare (untimed): what is timed is one
#                                  export into an empty directory, not also the freeing of the
#                                  previous run's 256 MB of files that --force would replace
# Ratios are zstd's median time ÷ the tool's median time over the same bundle (so ≥ 1 would be
# faster than decompressing alone).
#
# The receiver is bench/replay-sink.c (built here with gcc): it reads every request body to its
# last byte before answering 200, and counts requests and body bytes. nginx `return 200` is not
# used because it answers before reading the body. The benchmark checks that, over all timed
# runs and warm-ups, the sink read exactly (replay runs × records) requests and (replay runs ×
# payloadBytes) body bytes, with no truncated or refused request; otherwise it fails.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
runs=${BENCH_RUNS:-5}
requests=${BENCH_REQUESTS:-3000}
items=${BENCH_ITEMS:-1000}
work=${BENCH_WORK:-/tmp/stella-replay-bench}
export_dir=${BENCH_EXPORT_DIR:-/dev/shm/stella-replay-bench-export}
scratch="$repo/.build-bench"
bin=${BENCH_BIN:-"$scratch/release/stella-forensics"}

log() { printf '[replay-bench] %s\n' "$*" >&2; }
die() { printf '[replay-bench] error: %s\n' "$*" >&2; exit 3; }

sink_pid=""
cleanup() {
  if [[ -n $sink_pid ]]; then kill "$sink_pid" 2>/dev/null || true; wait "$sink_pid" 2>/dev/null || true; fi
  if [[ ${BENCH_KEEP:-0} != 1 ]]; then rm -rf "$work" "$export_dir"; fi
}
trap cleanup EXIT

# --- dependencies ------------------------------------------------------------------------------
missing=()
command -v zstd >/dev/null || missing+=(zstd)
command -v bsdtar >/dev/null || missing+=(libarchive-tools)
command -v hyperfine >/dev/null || missing+=(hyperfine)
command -v gcc >/dev/null || missing+=(gcc libc6-dev)
pkg-config --exists libsodium libzstd libarchive libcrypto 2>/dev/null \
  || missing+=(libsodium-dev libzstd-dev libarchive-dev libssl-dev pkg-config)
if ((${#missing[@]})); then
  log "installing ${missing[*]}"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
python3 -c 'import opentelemetry.proto' 2>/dev/null || python3 -m pip install -q -r e2e/requirements.txt

# --- build -------------------------------------------------------------------------------------
if [[ ${BENCH_SKIP_BUILD:-0} != 1 && -z ${BENCH_BIN:-} ]]; then
  log "building stella-forensics (release) into $scratch"
  nice -n 19 swift build -c release --package-path bench --scratch-path "$scratch" \
    --product stella-forensics 2>&1 | grep -Ev '^\[[0-9]+/[0-9]+\]' >&2 || true
fi
[[ -x $bin ]] || die "missing $bin"
rm -rf "$work" "$export_dir"
mkdir -p "$work/extract" "$work/keys" "$work/sink"
gcc -O2 -Wall -o "$work/replay-sink" bench/replay-sink.c
gcc -O2 -Wall -pthread -o "$work/send-floor" bench/send-floor.c

# --- data --------------------------------------------------------------------------------------
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

read -r blob_count blob_bytes uncompressed_bytes streams < <(python3 - "$bundle" <<'PY2'
import json, sys, tarfile
with tarfile.open(sys.argv[1]) as tar:
    manifest = json.load(tar.extractfile("manifest.json"))
blobs = manifest["blobs"]
# Streams replay sends (the audit stream stays in the bundle).
streams = {(b["node"], b["signal"], b["tenant"]) for b in blobs if b["tenant"] != "stella-forensics:audit"}
print(len(blobs), sum(b["size"] for b in blobs), sum(b["uncompressedSize"] for b in blobs), len(streams))
PY2
)
log "bundle: $blob_count blobs, $blob_bytes compressed / $uncompressed_bytes decompressed segment bytes"
bsdtar -xf "$bundle" -C "$work/extract"
blob_files=("$work"/extract/blobs/sha256/*.zst)
((${#blob_files[@]} == blob_count)) || die "extracted ${#blob_files[@]} blobs, manifest lists $blob_count"

# --- the receiver ------------------------------------------------------------------------------
"$work/replay-sink" "$work/sink/port" "$work/sink/stats" &
sink_pid=$!
for _ in $(seq 100); do [[ -s $work/sink/port ]] && break; sleep 0.05; done
port=$(cat "$work/sink/port")
endpoint="http://127.0.0.1:$port"
# Prints the sink's counters "requests body_bytes bad" as of now.
sink_stats() {
  rm -f "$work/sink/stats"
  kill -USR1 "$sink_pid"
  for _ in $(seq 200); do [[ -s $work/sink/stats ]] && break; sleep 0.05; done
  sed -E 's/requests=([0-9]+) body_bytes=([0-9]+) bad=([0-9]+).*/\1 \2 \3/' "$work/sink/stats"
}

# --- one checked run of each command: what a timed run must deliver ---------------------------
replay_args=(replay "$bundle" --trusted-key "$pub" --endpoint "$endpoint" --speed max)
read -r requests0 bytes0 bad0 < <(sink_stats)
summary=$("$bin" "${replay_args[@]}" --time-shift none --json) || die "replay failed: $summary"
read -r records payload_bytes < <(python3 -c '
import json, sys
s = json.loads(sys.argv[1])
assert s["result"] == "completed" and s["recordsSent"] == s["recordsTotal"] > 0, s
print(s["recordsSent"], s["payloadBytes"])' "$summary")
read -r requests1 bytes1 bad1 < <(sink_stats)
((requests1 - requests0 == records && bytes1 - bytes0 == payload_bytes && bad1 == bad0)) \
  || die "the sink read $((requests1 - requests0)) requests / $((bytes1 - bytes0)) bytes, replay reported $records / $payload_bytes"
log "replay sends $records requests, $payload_bytes payload bytes per run; the sink read them all"
"$bin" verify "$bundle" --trusted-key "$pub" --deep >/dev/null || die "verify --deep failed"
"$bin" export "$bundle" --trusted-key "$pub" --format otlp-proto --out "$export_dir" --force >/dev/null \
  || die "export failed"

# --- timed: hyperfine, whole processes --------------------------------------------------------
read -r requests0 bytes0 bad0 < <(sink_stats)
# -N: no intermediate shell, so each figure is the process alone; output goes to /dev/null.
# --prepare is given once per command, in order: only export's empties its output directory.
hyperfine -N --style basic --warmup 1 --runs "$runs" --export-json "$work/hyperfine.json" \
  --prepare true --prepare true --prepare true --prepare true --prepare "rm -rf $export_dir" \
  -n zstd "zstd -d -c -q ${blob_files[*]}" \
  -n replay-none "$bin ${replay_args[*]} --time-shift none" \
  -n replay-now "$bin ${replay_args[*]} --time-shift now" \
  -n verify-deep "$bin verify $bundle --trusted-key $pub --deep" \
  -n export-proto "$bin export $bundle --trusted-key $pub --format otlp-proto --out $export_dir" >&2
read -r requests1 bytes1 bad1 < <(sink_stats)
replays=$((2 * (runs + 1)))
((requests1 - requests0 == replays * records && bytes1 - bytes0 == replays * payload_bytes && bad1 == bad0)) \
  || die "over $replays timed replays the sink read $((requests1 - requests0)) requests / $((bytes1 - bytes0)) bytes, expected $((replays * records)) / $((replays * payload_bytes))"
log "over $replays replays (timed and warm-up) the sink read every body: $((requests1 - requests0)) requests, $((bytes1 - bytes0)) bytes"

# The floor of replay's sending, for the notes: the same requests (count, average size) to the
# same sink from a C sender with one buffer, on as many connections as replay uses (one per
# stream, at most --connections 4), one request in flight on each. Median of BENCH_RUNS.
lanes=$((streams < 4 ? streams : 4))
floor=$(for _ in $(seq "$runs"); do "$work/send-floor" "$port" "$records" $((payload_bytes / records)) "$lanes" 1; done \
  | sort -n | sed -n "$(((runs + 1) / 2))p")

python3 - "$work/hyperfine.json" "$uncompressed_bytes" "$payload_bytes" "$floor" "$lanes" <<'PY2'
import json, sys
results = {r["command"]: r for r in json.load(open(sys.argv[1]))["results"]}
uncompressed, payload = int(sys.argv[2]), int(sys.argv[3])
floor, lanes = float(sys.argv[4]), int(sys.argv[5])
zstd = results["zstd"]["median"]
goals = {"replay-none": 0.7, "replay-now": 0.6, "verify-deep": 0.8, "export-proto": 0.7}
keys = {"replay-none": "replay_none_vs_zstd", "replay-now": "replay_now_vs_zstd",
        "verify-deep": "verify_deep_vs_zstd", "export-proto": "export_proto_vs_zstd"}
print(f"decompressed segments: {uncompressed / 1e6:.1f} MB; replay payload per run: {payload / 1e6:.1f} MB")
print(f"{'zstd -d':28} {zstd:8.3f} s  {uncompressed / zstd / 1e6:8.1f} MB/s of segments")
line = []
for name, goal in goals.items():
    t = results[name]["median"]
    ratio = zstd / t
    verdict = "meets" if ratio >= goal else "misses"
    print(f"{name:28} {t:8.3f} s  {uncompressed / t / 1e6:8.1f} MB/s of segments  ratio {ratio:.3f} (goal >= {goal}: {verdict})")
    line.append(f"{keys[name]}={ratio:.3f}")
sending = results["replay-none"]["median"] - results["verify-deep"]["median"]
print(f"replay's sending (replay-none - verify-deep medians) {sending:.3f} s; "
      f"floor (C sender, {lanes} connection(s), one request in flight) {floor:.3f} s")
print("RESULT " + " ".join(line))
PY2
