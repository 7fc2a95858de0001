#!/usr/bin/env bash
# Import benchmark (issue 15): `stella-forensics import` of a Collector `format: proto` trace
# stream against `zstd -3 -T1` on the same file, and import's peak RSS, on a 400 MB and a 3 GB input.
#
#   flock /tmp/bench.lock bash bench/import-bench.sh
#
# Environment (optional):
#   BENCH_WORK=/tmp/stella-import-bench  work directory (inputs, outputs); removed unless BENCH_KEEP=1
#   BENCH_SIZES="400000000 3000000000"   input sizes in bytes
#   BENCH_RUNS=3                         runs per side on inputs under 1 GB (1 run above)
#   BENCH_SKIP_BUILD=1                   use the existing .build-bench/release/stella-forensics
#   BENCH_BIN=PATH                       benchmark this binary instead (implies no build)
#
# Both sides are timed the same way: the whole process from outside, with GNU time
# (`/usr/bin/time -f '%e %M'`: wall seconds and peak RSS), reading the same file from the page
# cache (each input is read once before timing) and writing their output to the same directory,
# each after a `sync` so that neither pays for writing back what ran before it:
#   zstd -3 -T1 -q -f IN -o OUT.zst
#   stella-forensics import IN --key K --out OUT.sfb.tar
# Figures, per size (the median run of BENCH_RUNS):
#   import_vs_zstd = zstd seconds ÷ import seconds      goal >= 0.8
#   import_peak_rss_mib = import's peak RSS in MiB     goal <= 256
# The last input's bundle is checked with `verify --deep` and the independent verifiers of scripts/.
# Prints one `RESULT size=… import_vs_zstd=… import_peak_rss_mib=…` line per size.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
work=${BENCH_WORK:-/tmp/stella-import-bench}
scratch="$repo/.build-bench"
bin=${BENCH_BIN:-$scratch/release/stella-forensics}
sizes=${BENCH_SIZES:-"400000000 3000000000"}
runs=${BENCH_RUNS:-3}

log() { printf '[import-bench] %s\n' "$*" >&2; }
die() { printf '[import-bench] error: %s\n' "$*" >&2; exit 3; }

cleanup() { if [[ ${BENCH_KEEP:-0} != 1 ]]; then rm -rf "$work"; fi; }
trap cleanup EXIT

command -v zstd >/dev/null || die "zstd is not installed"
[[ -x /usr/bin/time ]] || die "GNU time (/usr/bin/time) is not installed (apt-get install time)"
python3 -c 'import opentelemetry.exporter.otlp.proto.common, opentelemetry.sdk' 2>/dev/null \
  || python3 -m pip install -q --disable-pip-version-check -r e2e/requirements.txt

# --- build (shared with the other benchmarks through bench/Package.swift) ------------------------
if [[ -z ${BENCH_BIN:-} && ${BENCH_SKIP_BUILD:-0} != 1 ]]; then
  log "building stella-forensics (release) into $scratch"
  # SwiftPM keeps the root package's build plan and misses files added since; drop the plan.
  rm -f "$scratch"/*/release/description.json "$scratch/release.yaml"
  nice -n 19 swift build -c release --package-path bench --scratch-path "$scratch" --product stella-forensics 2>&1 \
    | grep -Ev '^\[[0-9]+/[0-9]+\]' >&2
fi
[[ -x $bin ]] || die "missing $bin"

rm -rf "$work"
mkdir -p "$work"
"$bin" keygen --out "$work" --name bench >/dev/null
key="$work/bench.key"

# timed OUTFILE CMD... -> prints "seconds peak_kib" of the whole process
timed() {
  local out=$1
  shift
  /usr/bin/time -f '%e %M' -o "$out" "$@" >/dev/null
  cat "$out"
}

median() { python3 -c 'import sys, statistics; print(statistics.median(float(x) for x in sys.argv[1:]))' "$@"; }

for size in $sizes; do
  input="$work/traces-$size.pb"
  log "generating $input"
  python3 bench/import/make_stream.py "$input" "$size" >&2
  cat "$input" >/dev/null  # page cache, for both sides alike
  # The generator's gigabytes are still dirty: written back while a side runs, they would throttle
  # that side's own writes (seen: 3 s of a 3 GB import's 12 s). Both sides start from a clean cache.
  sync
  n=$runs
  ((size >= 1000000000)) && n=1
  zstd_s=() import_s=() import_rss=()
  for ((run = 1; run <= n; run++)); do
    rm -f "$work/out.zst" "$work/out.sfb.tar"
    sync
    read -r s _ < <(timed "$work/time.txt" zstd -3 -T1 -q -f "$input" -o "$work/out.zst")
    zstd_s+=("$s")
    sync
    read -r s kib < <(timed "$work/time.txt" "$bin" import "$input" --key "$key" --out "$work/out.sfb.tar")
    import_s+=("$s")
    import_rss+=("$kib")
    log "size $size run $run: zstd -3 -T1 ${zstd_s[-1]} s, import $s s, import peak RSS $((kib / 1024)) MiB"
  done
  z=$(median "${zstd_s[@]}")
  i=$(median "${import_s[@]}")
  rss=$(printf '%s\n' "${import_rss[@]}" | sort -n | tail -1)
  ratio=$(python3 -c "print(f'{$z / $i:.3f}')")
  rss_mib=$(python3 -c "print(f'{$rss / 1024:.1f}')")
  zstd_mbs=$(python3 -c "print(f'{$size / $z / 1e6:.0f}')")
  import_mbs=$(python3 -c "print(f'{$size / $i / 1e6:.0f}')")
  log "size $size: zstd $z s ($zstd_mbs MB/s), import $i s ($import_mbs MB/s)"
  if [[ $size == "${sizes##* }" ]]; then
    log "verify --deep of the $size-byte import"
    "$bin" verify "$work/out.sfb.tar" --trusted-key "$work/bench.pub" --deep >&2
    log "independent verifiers (scripts/verify-with-openssl.sh, scripts/verify_with_cryptography.py)"
    bash scripts/verify-with-openssl.sh "$work/out.sfb.tar" "$work/bench.pub" >&2
    python3 scripts/verify_with_cryptography.py "$work/out.sfb.tar" "$work/bench.pub" >&2
  fi
  echo "RESULT size=$size import_vs_zstd=$ratio import_peak_rss_mib=$rss_mib zstd_s=$z import_s=$i"
  rm -f "$input" "$work/out.zst"
done
