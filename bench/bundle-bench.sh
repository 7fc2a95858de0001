#!/usr/bin/env bash
# Bundle benchmark: verify throughput against `openssl dgst -sha256` and bundle writing against
# `bsdtar`, on a bundle of >= 1 GiB of compressed segments, all measured in the same run.
#
#   bash bench/bundle-bench.sh
#
# Environment (optional):
#   BENCH_RUNS=5                 timed runs per command (median reported; one untimed warm-up)
#   BENCH_TARGET=1.1GiB          compressed blob bytes to aim for (the bundle must reach 1 GiB)
#   BENCH_WORK=/tmp/stella-bench work directory (input files, bundle, extracted blobs, outputs)
#   BENCH_KEEP=1                 keep the work directory
#   BENCH_SKIP_BUILD=1           use the existing .build-bench binaries
#   BENCH_MIN_BYTES=1073741824   fail below this many blob bytes (lower it only for a smoke test)
#
# What is compared (all files are in the page cache for every tool; runs are interleaved, and
# the order within a round alternates, so background load hits both sides alike):
#   verify (quick: sizes and SHA-256 of every blob, plus tar/envelope/signature/manifest checks)
#     vs `openssl dgst -sha256` over the same blob files  -> openssl time / verify time
#   verify --deep (also decompresses and walks every segment) -> openssl time / deep time
#   BundleArchiveWriter.write (bench/Sources/bundle-write-bench: ustar, fsync, rename)
#     vs `bsdtar --format ustar ...` + `sync FILE` (fsync) on the same members (bsdtar writes
#     10240-byte records through the page cache, ours 4 MiB direct writes) -> our time / bsdtar time. Ours must reproduce the imported bundle byte
#     for byte; bsdtar's output is the bundle plus zero padding to its record size (`bsdtar -b 1`,
#     byte-identical but with 512-byte writes, is timed for information).
#   `import` (wire check, frame, zstd -3, hash, sign, write) is timed once, for information.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
runs=${BENCH_RUNS:-5}
target=${BENCH_TARGET:-1.1GiB}
work=${BENCH_WORK:-/tmp/stella-bench}
scratch="$repo/.build-bench"
bin="$scratch/release/stella-forensics"
writer="$scratch/release/bundle-write-bench"

log() { printf '[bench] %s\n' "$*" >&2; }
die() { printf '[bench] error: %s\n' "$*" >&2; exit 3; }

cleanup() {
  if [[ ${BENCH_KEEP:-0} != 1 ]]; then rm -rf "$work"; fi
}
trap cleanup EXIT

# --- dependencies ------------------------------------------------------------------------------
missing=()
command -v zstd >/dev/null || missing+=(zstd)
command -v bsdtar >/dev/null || missing+=(libarchive-tools)
command -v openssl >/dev/null || missing+=(openssl)
[[ -x /usr/bin/time ]] || missing+=(time)
pkg-config --exists libsodium libzstd libarchive libcrypto 2>/dev/null \
  || missing+=(libsodium-dev libzstd-dev libarchive-dev libssl-dev pkg-config)
if ((${#missing[@]})); then
  log "installing ${missing[*]}"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
if ! python3 -c 'import numpy, zstandard, opentelemetry.proto' 2>/dev/null; then
  log "installing numpy zstandard opentelemetry-proto (PyPI)"
  python3 -m pip install -q numpy zstandard opentelemetry-proto
fi

# --- build -------------------------------------------------------------------------------------
if [[ ${BENCH_SKIP_BUILD:-0} != 1 ]]; then
  log "building stella-forensics and bundle-write-bench (release) into $scratch"
  swift build -c release --package-path bench --scratch-path "$scratch" \
    --product stella-forensics 2>&1 | grep -Ev '^\[[0-9]+/[0-9]+\]' >&2
  swift build -c release --package-path bench --scratch-path "$scratch" 2>&1 \
    | grep -Ev '^\[[0-9]+/[0-9]+\]' >&2
fi
[[ -x $bin && -x $writer ]] || die "missing $bin or $writer"

# --- data --------------------------------------------------------------------------------------
rm -rf "$work"
mkdir -p "$work/otlp" "$work/extract" "$work/keys"
log "generating OTLP trace data for ~$target of compressed segments"
gen=$(python3 bench/make_segments.py --out "$work/otlp" --compressed-target "$target" --files 8)
log "generator: $gen"
raw_bytes=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["rawBytes"])' "$gen")
"$bin" keygen --out "$work/keys" --name bench >/dev/null
bundle="$work/bundle.sfb.tar"

log "importing into $bundle (timed once)"
t0=$(date +%s%N)
/usr/bin/time -f '%M' -o "$work/import.rss" "$bin" import "$work"/otlp/*.otlp.pb \
  --key "$work/keys/bench.key" --out "$bundle" --incident BENCH-1 >"$work/import.out"
t1=$(date +%s%N)
import_ns=$((t1 - t0))
import_rss_kib=$(tail -1 "$work/import.rss")
log "$(cat "$work/import.out")"
rm -rf "$work/otlp"  # the input is no longer needed; frees ~3 GB

read -r blob_count blob_bytes uncompressed_bytes < <(python3 - "$bundle" <<'EOF'
import json, sys, tarfile
with tarfile.open(sys.argv[1]) as tar:
    manifest = json.load(tar.extractfile("manifest.json"))
blobs = manifest["blobs"]
print(len(blobs), sum(b["size"] for b in blobs), sum(b["uncompressedSize"] for b in blobs))
EOF
)
bundle_bytes=$(stat -c %s "$bundle")
min_bytes=${BENCH_MIN_BYTES:-1073741824}
((blob_bytes >= min_bytes)) || die "only $blob_bytes bytes of blobs (< $min_bytes); raise BENCH_TARGET"
log "bundle: $bundle_bytes bytes, $blob_count blobs, $blob_bytes compressed / $uncompressed_bytes uncompressed segment bytes"

bsdtar -xf "$bundle" -C "$work/extract"
mapfile -t members < <(bsdtar -tf "$bundle")
blob_files=()
for name in "${members[@]}"; do
  [[ $name == blobs/* ]] && blob_files+=("$work/extract/$name")
  chmod 0644 "$work/extract/$name"
  touch -d @0 "$work/extract/$name"
done
((${#blob_files[@]} == blob_count)) || die "extracted ${#blob_files[@]} blobs, manifest lists $blob_count"

# --- commands under test -----------------------------------------------------------------------
pub="$work/keys/bench.pub"
verify_quick() {
  "$bin" verify "$bundle" --trusted-key "$pub" >"$work/verify.out"
  [[ $(head -c 3 "$work/verify.out") == "OK:" ]] || die "verify did not print OK: $(cat "$work/verify.out")"
}
verify_deep() {
  "$bin" verify "$bundle" --trusted-key "$pub" --deep >"$work/verify.out"
  [[ $(head -c 3 "$work/verify.out") == "OK:" ]] || die "verify --deep did not print OK"
}
openssl_blobs() { openssl dgst -sha256 "${blob_files[@]}" >/dev/null; }
openssl_tar() { openssl dgst -sha256 "$bundle" >/dev/null; }
ours_write() {
  rm -f "$work/out-ours.tar"
  "$writer" "$work/out-ours.tar" "$work/extract" "${members[@]}"
}
# bsdtar at its default blocking (-b 20: 10240-byte records) writes through the page cache;
# BundleArchiveWriter writes 4 MiB pieces with direct I/O where the file system allows. bsdtar's
# output is the bundle followed by zero padding to the record boundary. `-b 1` reproduces the bundle byte for byte but writes in
# 512-byte records, which makes bsdtar slower; it is shown for information only.
bsdtar_write() {
  rm -f "$work/out-bsdtar.tar"
  bsdtar --format ustar --uid 0 --gid 0 --uname '' --gname '' -cf "$work/out-bsdtar.tar" \
    -C "$work/extract" "${members[@]}"
  sync "$work/out-bsdtar.tar"  # fsync, as BundleArchiveWriter does before its rename
}
bsdtar_write_b1() {
  rm -f "$work/out-bsdtar-b1.tar"
  bsdtar --format ustar -b 1 --uid 0 --gid 0 --uname '' --gname '' -cf "$work/out-bsdtar-b1.tar" \
    -C "$work/extract" "${members[@]}"
  sync "$work/out-bsdtar-b1.tar"
}
commands=(verify_quick openssl_blobs openssl_tar verify_deep ours_write bsdtar_write bsdtar_write_b1)

declare -A samples
elapsed_ns() {
  local start end
  start=$(date +%s%N)
  "$@"
  end=$(date +%s%N)
  echo $((end - start))
}

log "warm-up (untimed): one run of each command"
for command in "${commands[@]}"; do "$command"; done
cmp -s "$work/out-ours.tar" "$bundle" || die "BundleArchiveWriter output differs from the bundle"
cmp -s "$work/out-bsdtar-b1.tar" "$bundle" || die "bsdtar -b 1 output differs from the bundle"
# Default blocking: the bundle, then only zero bytes up to a multiple of 10240.
if ! cmp -s -n "$bundle_bytes" "$work/out-bsdtar.tar" "$bundle" \
  || [[ -n $(tail -c +$((bundle_bytes + 1)) "$work/out-bsdtar.tar" | tr -d '\0' | head -c 1) ]]; then
  die "bsdtar output is not the bundle plus record padding"
fi
log "both writers reproduce the bundle (bsdtar: plus padding to its 10240-byte record)"

for ((round = 1; round <= runs; round++)); do
  order=("${commands[@]}")
  if ((round % 2 == 0)); then
    order=()
    for ((i = ${#commands[@]} - 1; i >= 0; i--)); do order+=("${commands[i]}"); done
  fi
  for command in "${order[@]}"; do
    # Flush the previous command's dirty pages first, so no write-back lands in this timing.
    sync
    samples[$command]+="$(elapsed_ns "$command") "
  done
  log "round $round/$runs done"
done

median_ns() {
  # shellcheck disable=SC2086 # word splitting of the sample list is intended
  printf '%s\n' $1 | sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : int((v[NR / 2] + v[NR / 2 + 1]) / 2) }'
}
declare -A median
for command in "${commands[@]}"; do median[$command]=$(median_ns "${samples[$command]}"); done

# Peak memory of one verify of each kind (separate runs, not timed).
rss_of() { /usr/bin/time -f '%M' -o "$work/rss" "$@" >/dev/null && tail -1 "$work/rss"; }
quick_rss_kib=$(rss_of "$bin" verify "$bundle" --trusted-key "$pub")
deep_rss_kib=$(rss_of "$bin" verify "$bundle" --trusted-key "$pub" --deep)

python3 - "$blob_bytes" "$bundle_bytes" "$raw_bytes" "$import_ns" "$import_rss_kib" \
  "$quick_rss_kib" "$deep_rss_kib" "$runs" "$uncompressed_bytes" "$blob_count" \
  "${median[verify_quick]}" "${median[openssl_blobs]}" "${median[openssl_tar]}" \
  "${median[verify_deep]}" "${median[ours_write]}" "${median[bsdtar_write]}" \
  "${median[bsdtar_write_b1]}" \
  "${samples[verify_quick]}" "${samples[openssl_blobs]}" "${samples[verify_deep]}" \
  "${samples[ours_write]}" "${samples[bsdtar_write]}" <<'EOF'
import sys
a = sys.argv[1:]
blob, bundle, raw, imp_ns, imp_rss, q_rss, d_rss, runs, unc, count = map(int, a[:10])
vq, os_blobs, os_tar, vd, ours, bsd, bsd_b1 = (int(x) / 1e9 for x in a[10:17])
raw_samples = a[17:]
gbps = lambda n, s: n / s / 1e9
print()
print(f"bundle: {bundle} bytes; {count} blobs = {blob} compressed bytes ({blob / 2**30:.3f} GiB), "
      f"{unc} segment bytes (ratio {unc / blob:.2f}); {runs} timed runs each, medians:")
print(f"  import (once)          {imp_ns / 1e9:8.3f} s  {gbps(raw, imp_ns / 1e9):6.3f} GB/s of OTLP input, peak RSS {imp_rss / 1024:.0f} MiB")
print(f"  verify (quick)         {vq:8.3f} s  {gbps(blob, vq):6.3f} GB/s of blobs, peak RSS {q_rss / 1024:.0f} MiB")
print(f"  openssl dgst (blobs)   {os_blobs:8.3f} s  {gbps(blob, os_blobs):6.3f} GB/s")
print(f"  openssl dgst (tar)     {os_tar:8.3f} s  {gbps(bundle, os_tar):6.3f} GB/s")
print(f"  verify --deep          {vd:8.3f} s  {gbps(blob, vd):6.3f} GB/s of blobs, {gbps(unc, vd):6.3f} GB/s of segments, peak RSS {d_rss / 1024:.0f} MiB")
print(f"  write: ours (+fsync)   {ours:8.3f} s  {gbps(bundle, ours):6.3f} GB/s")
print(f"  write: bsdtar (+fsync) {bsd:8.3f} s  {gbps(bundle, bsd):6.3f} GB/s")
print(f"  write: bsdtar -b 1     {bsd_b1:8.3f} s  {gbps(bundle, bsd_b1):6.3f} GB/s (+fsync; byte-identical output, 512-byte writes; information only)")
names = ["verify_quick", "openssl_blobs", "verify_deep", "ours_write", "bsdtar_write"]
for name, values in zip(names, raw_samples):
    print(f"  samples {name:14} " + " ".join(f"{int(v) / 1e9:.3f}" for v in values.split()))
q, d, w = os_blobs / vq, os_blobs / vd, ours / bsd
print()
print(f"verify_vs_openssl_ratio = {q:.2f}   (openssl time / verify time; goal >= 0.8: {'met' if q >= 0.8 else 'NOT met'})")
print(f"verify_deep_vs_openssl_ratio = {d:.2f}   (no goal)")
print(f"bundle_write_vs_bsdtar_ratio = {w:.2f}   (our time / bsdtar time, both 10240-byte writes + fsync; goal <= 1.3: {'met' if w <= 1.3 else 'NOT met'})")
print(f"RESULT verify_quick_vs_openssl={q:.2f} verify_deep_vs_openssl={d:.2f} bundle_write_vs_bsdtar={w:.2f}")
EOF
