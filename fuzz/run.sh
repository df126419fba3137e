#!/usr/bin/env bash
# Builds the fuzz targets (without wasmtime: the engine's `runtime` feature is off) and runs
# each for a bounded time from the committed seeds in fuzz/corpus/<target>/. What the fuzzer
# finds on the way goes to fuzz/target/corpus/<target>/ (not committed); a crash, a timeout
# (an input taking over 10 s) or running out of memory stops the run with its input in
# fuzz/artifacts/<target>/ and fails. See docs/fuzzing.md.
#
#   bash fuzz/run.sh [seconds per target, default 20] [target ...]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-20}"
shift || true

# cargo-fuzz passes nightly-only sanitizer flags: the nightly toolchain when there is one, else
# the stable compiler told to accept them.
if rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
  fuzz=(cargo +nightly fuzz)
else
  export RUSTC_BOOTSTRAP=1
  fuzz=(cargo fuzz)
fi
"${fuzz[@]}" --version >/dev/null 2>&1 || cargo install cargo-fuzz --locked

targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  mapfile -t targets < <("${fuzz[@]}" list)
fi
"${fuzz[@]}" build
for target in "${targets[@]}"; do
  mkdir -p "fuzz/target/corpus/$target"
  log="fuzz/target/$target.log"
  status=0
  "${fuzz[@]}" run "$target" "fuzz/target/corpus/$target" "fuzz/corpus/$target" -- \
    -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
    >"$log" 2>&1 || status=$?
  runs=$(grep -o 'stat::number_of_executed_units: [0-9]*' "$log" | grep -o '[0-9]*$' || echo "?")
  echo "fuzz $target: ${runs} executions in ${seconds} s, exit ${status}"
  if [ "$status" -ne 0 ]; then
    tail -n 60 "$log"
    exit "$status"
  fi
done
