#!/usr/bin/env bash
# Builds the fuzz targets (without wasmtime: the engine's `runtime` feature is off) and runs
# each for a bounded time from the committed seeds in fuzz/corpus/<target>/. What the fuzzer
# finds on the way goes to fuzz/target/corpus/<target>/ (not committed); a crash, a timeout
# (an input taking over 10 s) or running out of memory stops that target with its input in
# fuzz/artifacts/<target>/, and the script fails after running the others. See docs/fuzzing.md.
#
#   bash fuzz/run.sh [seconds per target, default 20] [target ...]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-20}"
shift || true

# cargo-fuzz builds with nightly-only compiler flags: the nightly toolchain when there is one,
# else the stable compiler told to accept them.
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
# No sanitizer: the targets run safe Rust, and AddressSanitizer made them several times slower
# to build and to run (flow_parse: 240 inputs/s instead of 2,900; docs/fuzzing.md). Panics,
# failed assertions, stack overflows, timeouts and memory limits are caught all the same.
"${fuzz[@]}" build --sanitizer none
passed=0
failed=0
for target in "${targets[@]}"; do
  mkdir -p "fuzz/target/corpus/$target"
  log="fuzz/target/$target.log"
  status=0
  mkdir -p "fuzz/artifacts/$target"
  # The binary `fuzz build` made, run directly: `fuzz run` would build again first.
  "fuzz/target/x86_64-unknown-linux-gnu/release/$target" \
    -artifact_prefix="fuzz/artifacts/$target/" -max_total_time="$seconds" -timeout=10 \
    -rss_limit_mb=2048 -print_final_stats=1 \
    "fuzz/target/corpus/$target" "fuzz/corpus/$target" >"$log" 2>&1 || status=$?
  runs=$(grep -o 'stat::number_of_executed_units: [0-9]*' "$log" | grep -o '[0-9]*$' || echo "?")
  echo "fuzz $target: ${runs} executions in ${seconds} s, exit ${status}"
  if [ "$status" -eq 0 ]; then
    passed=$((passed + 1))
  else
    failed=$((failed + 1))
    tail -n 60 "$log"
  fi
done
echo "fuzz: ${passed} passed, ${failed} failed"
[ "$failed" -eq 0 ]
