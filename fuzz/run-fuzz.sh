#!/usr/bin/env bash
# Builds the libFuzzer targets of fuzz/Package.swift (ASan + libFuzzer) and runs each one.
# Not part of CI. See fuzz/README.md.
#
#   bash fuzz/run-fuzz.sh                 # build, make seeds, fuzz all targets
#   bash fuzz/run-fuzz.sh --regress       # only re-run the saved inputs in fuzz/regressions/
#
# Environment (all optional):
#   FUZZ_RUNS=1000000           executions per target for FuzzBundleVerify, FuzzOTLPJSONLines,
#                               FuzzOTLPProtoStream, FuzzOTLPHTTP, FuzzOTLPRequestDecoder,
#                               FuzzOTLPWireDifferential, FuzzRedactor
#   FUZZ_RESIGNED_RUNS=200000   executions for FuzzBundleResigned (about 10x slower per input)
#   FUZZ_TARGETS="A B"          subset of targets
#   FUZZ_WORK=/tmp/stella-fuzz  corpora, artifacts and logs (outside the repo)
#   FUZZ_CONFIG=release         swift build configuration (release runs ~15x faster than debug)
#   FUZZ_SKIP_BUILD=1           use the existing binaries
#   FUZZ_SCRATCH=DIR            SwiftPM scratch path (default .build-fuzz in the repository)
#   STELLA_BIN=PATH             CLI used to import the seed bundles (default: .build/debug's,
#                               else one is built into .build-fuzz-cli); only the bundle targets
#                               need it
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
work=${FUZZ_WORK:-/tmp/stella-fuzz}
config=${FUZZ_CONFIG:-release}
runs=${FUZZ_RUNS:-1000000}
resigned_runs=${FUZZ_RESIGNED_RUNS:-200000}
targets=${FUZZ_TARGETS:-FuzzBundleVerify FuzzBundleResigned FuzzOTLPJSONLines FuzzOTLPProtoStream FuzzOTLPHTTP FuzzOTLPRequestDecoder FuzzOTLPWireDifferential FuzzRedactor}
scratch=${FUZZ_SCRATCH:-$repo/.build-fuzz}
bin_dir="$scratch/$config"
regress_only=0
[[ ${1:-} == --regress ]] && regress_only=1

log() { printf '[run-fuzz] %s\n' "$*" >&2; }

# Extra keys the verifier targets trust (threshold 1), so the committed fixture bundles signed
# by them reach the manifest and blob checks, not only SIG_UNTRUSTED_KEY.
trusted=()
for pub in fixtures/tampered/keys/signer.pub fixtures/tampered/keys/other.pub \
  fixtures/bundle/sample-signer.pub; do
  [[ -f $pub ]] && trusted+=("$repo/$pub")
done
STELLA_FUZZ_TRUSTED_PUBS=$(IFS=:; echo "${trusted[*]:-}")
export STELLA_FUZZ_TRUSTED_PUBS
# Crash reports need symbols; leaks are not findings here (libFuzzer's own corpus is "leaked").
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=0:symbolize=1}
llvm_symbolizer=$(command -v llvm-symbolizer || true)
[[ -z $llvm_symbolizer && -x "$(dirname "$(command -v swift)")/llvm-symbolizer" ]] \
  && llvm_symbolizer="$(dirname "$(command -v swift)")/llvm-symbolizer"
[[ -n $llvm_symbolizer ]] && export ASAN_SYMBOLIZER_PATH=$llvm_symbolizer

if [[ ${FUZZ_SKIP_BUILD:-0} != 1 ]]; then
  log "building fuzz targets ($config, -sanitize=fuzzer,address) into $scratch"
  swift build --package-path fuzz --scratch-path "$scratch" -c "$config" \
    --sanitize=address -Xswiftc -sanitize=fuzzer,address -Xswiftc -parse-as-library \
    -Xswiftc -use-ld=lld 2>&1 | grep -Ev '^\[[0-9]+/[0-9]+\]' || true
  for target in $targets; do
    [[ -x $bin_dir/$target ]] || { log "build failed: no $bin_dir/$target"; exit 3; }
  done
fi

# --regress: each saved input is run once; a still-failing one crashes and stops the script.
run_regressions() {
  local target=$1 dir="fuzz/regressions/$1"
  [[ -d $dir ]] || return 0
  local inputs=()
  while IFS= read -r -d '' file; do inputs+=("$file"); done \
    < <(find "$dir" -type f ! -name '*.txt' ! -name '*.md' -print0 | sort -z)
  ((${#inputs[@]})) || return 0
  log "$target: replaying ${#inputs[@]} saved input(s) from $dir"
  "$bin_dir/$target" -timeout=10 "${inputs[@]}"
}

if ((regress_only)); then
  for target in $targets; do run_regressions "$target"; done
  log "all saved inputs pass"
  exit 0
fi

cli_args=()
if [[ " $targets " == *" FuzzBundle"* ]]; then
  cli=${STELLA_BIN:-$repo/.build/debug/stella-forensics}
  if [[ ! -x $cli ]]; then
    log "no CLI at $cli; building one into .build-fuzz-cli for the seed bundles"
    swift build --scratch-path "$repo/.build-fuzz-cli" --product stella-forensics >/dev/null
    cli="$repo/.build-fuzz-cli/debug/stella-forensics"
  fi
  cli_args=(--cli "$cli")
fi
mkdir -p "$work"
python3 fuzz/make_seeds.py --repo "$repo" --work "$work" "${cli_args[@]}"

summary=()
status=0
for target in $targets; do
  case $target in
    FuzzBundleVerify) max_len=65536 n=$runs dict=fuzz/dicts/bundle.dict ;;
    FuzzBundleResigned) max_len=65536 n=$resigned_runs dict=fuzz/dicts/bundle.dict ;;
    FuzzOTLPJSONLines) max_len=65536 n=$runs dict=fuzz/dicts/otlp-json.dict ;;
    FuzzOTLPProtoStream) max_len=65536 n=$runs dict= ;;
    FuzzOTLPHTTP) max_len=65536 n=$runs dict=fuzz/dicts/http.dict ;;
    FuzzOTLPRequestDecoder) max_len=65536 n=$runs dict=fuzz/dicts/otlp-json.dict ;;
    FuzzOTLPWireDifferential) max_len=65536 n=$runs dict= ;;
    FuzzRedactor) max_len=65536 n=$runs dict=fuzz/dicts/redaction.dict ;;
    *) log "unknown target $target"; exit 2 ;;
  esac
  run_regressions "$target"
  corpus="$work/corpus/$target"
  artifacts="$work/artifacts/$target"
  logfile="$work/logs/$target.log"
  rm -rf "$corpus" "$artifacts"
  mkdir -p "$corpus" "$artifacts" "$(dirname "$logfile")"
  : >"$logfile"
  total=0 crashes=0 timeouts=0 ooms=0 attempt=0 seconds=0
  # A crash stops libFuzzer; restart (corpus kept) until the run count is reached, at most 5 times.
  while ((total < n && attempt < 5)); do
    attempt=$((attempt + 1))
    log_start=$(wc -l <"$logfile")
    start=$(date +%s)
    log "$target: run $attempt, $((n - total)) executions (log $logfile)"
    set +e
    "$bin_dir/$target" -runs=$((n - total)) -max_len=$max_len -timeout=10 -rss_limit_mb=4096 \
      -print_final_stats=1 -artifact_prefix="$artifacts/" ${dict:+-dict=$dict} \
      "$corpus" "$work/seeds/$target" >>"$logfile" 2>&1
    rc=$?
    set -e
    seconds=$((seconds + $(date +%s) - start))
    done_now=$(grep -o 'stat::number_of_executed_units: [0-9]*' "$logfile" | tail -1 | grep -o '[0-9]*$' || echo 0)
    total=$((total + done_now))
    # Keep the marker line out of the next attempt's grep.
    sed -i 's/stat::number_of_executed_units/stat::counted_executed_units/' "$logfile"
    ((rc == 0)) && break
    written=$(sed -n "$((log_start + 1)),\$p" "$logfile" | grep -o 'Test unit written to .*' | tail -1 \
      | sed 's/Test unit written to //' || true)
    if [[ -z $written || ! -f $written ]]; then
      log "$target: libFuzzer exited $rc without an artifact; see $logfile"
      status=1
      break
    fi
    # A crashing input that sits in the corpus or the seeds would crash every restart at once;
    # both are named by SHA-1 of their content, so drop it there (it is saved as an artifact).
    sha=$(sha1sum "$written" | cut -d' ' -f1)
    rm -f "$corpus/$sha" "$work/seeds/$target/$sha"
  done
  for file in "$artifacts"/*; do
    [[ -f $file ]] || continue
    case $(basename "$file") in
      crash-*) crashes=$((crashes + 1)) ;;
      timeout-*|slow-unit-*) timeouts=$((timeouts + 1)) ;;
      oom-*) ooms=$((ooms + 1)) ;;
    esac
    mkdir -p "fuzz/regressions/$target"
    cp "$file" "fuzz/regressions/$target/"
    # The report (stack trace) for this artifact is in the log, just before the line naming it.
    line=$(grep -nF "$(basename "$file")" "$logfile" | head -1 | cut -d: -f1)
    if [[ -n $line ]]; then
      sed -n "$((line > 120 ? line - 120 : 1)),${line}p" "$logfile" \
        >"fuzz/regressions/$target/$(basename "$file").txt"
    fi
    status=1
  done
  corpus_size=$(find "$corpus" -type f | wc -l)
  summary+=("$(printf '%-20s execs=%-8s crashes=%s timeouts=%s ooms=%s corpus=%s time=%ss' \
    "$target" "$total" "$crashes" "$timeouts" "$ooms" "$corpus_size" "$seconds")")
done

printf '\nFUZZ SUMMARY (logs and corpora under %s)\n' "$work"
printf '%s\n' "${summary[@]}"
exit $status
