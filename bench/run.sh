#!/usr/bin/env bash
# hookflow benchmarks, one command: `bash bench/run.sh` from the repository root (or anywhere).
#
#   1. installs the load generator `oha` if missing (cargo install oha --locked)
#   2. builds the release server (cargo build --release -p hookflow) and the HTTP floor
#      (cargo build --release --manifest-path bench/floor/Cargo.toml: bare axum, see README)
#   3. runs the sandbox micro-benchmark (engine/examples/bench_sandbox.rs)
#   4. runs the load workloads: the HTTP floor (bare server, same load as (a), for ratios),
#      (a) intake, (b) router+plugin throughput, (c) fixed-rate latency, (d) the generated
#      handler flow under an event mix, each against a fresh server in a temporary data dir
#      (bench/bench.py): on SQLite, then on PostgreSQL with 1 and 3 processes
#   5. delivery throughput to a local receiver (engine/examples/bench_delivery.rs)
#
# Output: bench/out/{sandbox.txt,results.json,results.md,machine.txt}. Knobs (env):
#   BENCH_ONLY=floor,a,b,c,d  BENCH_SKIP_POSTGRES=1  BENCH_N=30000  BENCH_CONNS=64  BENCH_SECS=10  BENCH_RATE=1000
#   BENCH_SKIP_BUILD=1 (use the existing target/release/hookflow)  BENCH_SKIP_SANDBOX=1
#   BENCH_PERF=1 (perf record the server during (a) and (b) into bench/out/perf-*.data)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT="$ROOT/bench/out"
mkdir -p "$OUT"
cd "$ROOT"
export PATH="$HOME/.cargo/bin:$PATH"

log() { printf '\n== %s\n' "$*" >&2; }

# -- 1. load generator -------------------------------------------------------------------------
if ! command -v oha >/dev/null 2>&1; then
  log "installing oha (cargo install oha --locked)"
  cargo install oha --locked
fi
OHA="$(command -v oha)"
"$OHA" --version >&2

# -- 2. release build (others may be editing the engine: retry a few times, bounded) ------------
build() {
  local attempt
  for attempt in 1 2 3; do
    if cargo build --release -p hookflow "$@"; then return 0; fi
    log "build failed (attempt $attempt/3); retrying in 60 s"
    sleep 60
  done
  return 1
}
if [[ "${BENCH_SKIP_BUILD:-0}" != 1 ]]; then
  log "cargo build --release -p hookflow"
  build
fi
# Benchmark a copy so a concurrent rebuild cannot swap the binary mid-run.
cp "$ROOT/target/release/hookflow" "$OUT/hookflow"

# The HTTP floor: a standalone crate (own Cargo.lock, own target dir unless CARGO_TARGET_DIR is
# set), small, built even with BENCH_SKIP_BUILD=1 (a no-op when it is up to date).
FLOOR_TARGET="${CARGO_TARGET_DIR:-$ROOT/bench/floor/target}"
log "cargo build --release --manifest-path bench/floor/Cargo.toml"
CARGO_TARGET_DIR="$FLOOR_TARGET" cargo build --release --manifest-path "$ROOT/bench/floor/Cargo.toml"
cp "$FLOOR_TARGET/release/hookflow-floor" "$OUT/hookflow-floor"

# -- machine ------------------------------------------------------------------------------------
{
  echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "commit: $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)$(git -C "$ROOT" diff --quiet -- engine 2>/dev/null || echo ' (+ uncommitted engine changes)')"
  echo "nproc: $(nproc)"
  echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
  echo "ram: $(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo)"
  echo "kernel: $(uname -sr)"
  echo "rustc: $(rustc --version)"
  echo "oha: $("$OHA" --version)"
} | tee "$OUT/machine.txt" >&2

# -- 3. sandbox micro-benchmark -----------------------------------------------------------------
if [[ "${BENCH_SKIP_SANDBOX:-0}" != 1 ]]; then
  log "cargo run --release -p hookflow --example bench_sandbox"
  ok=0
  for attempt in 1 2 3; do
    if cargo run --release -p hookflow --example bench_sandbox | tee "$OUT/sandbox.txt"; then ok=1; break; fi
    log "bench_sandbox failed (attempt $attempt/3); retrying in 60 s"
    sleep 60
  done
  [[ $ok == 1 ]] || { echo "bench_sandbox did not run" >&2; exit 1; }
fi

# -- 4. load workloads: SQLite (one process), PostgreSQL with 1 and with 3 processes ------------
load() {
  local name="$1"; shift
  log "load workloads, $name (bench/bench.py $*)"
  mkdir -p "$OUT/$name"
  python3 "$ROOT/bench/bench.py" \
    --bin "$OUT/hookflow" --floor-bin "$OUT/hookflow-floor" --oha "$OHA" --out "$OUT/$name" \
    --only "${BENCH_ONLY:-floor,a,b,c,d}" --conns "${BENCH_CONNS:-64}" --n "${BENCH_N:-30000}" \
    --intake-secs "${BENCH_SECS:-10}" --latency-secs "${BENCH_SECS:-10}" --rate "${BENCH_RATE:-1000}" \
    --sandbox-json "$OUT/sandbox.txt" ${BENCH_PERF:+--perf} "$@"
}
load sqlite
if [[ "${BENCH_SKIP_POSTGRES:-0}" != 1 ]]; then
  load postgres-1 --db postgres --procs 1
  load postgres-3 --db postgres --procs 3
fi

# -- 5. delivery throughput -----------------------------------------------------------------------
log "cargo run --release -p hookflow --example bench_delivery (1 and 10 destinations)"
cargo run --release -p hookflow --example bench_delivery -- 50000 1 | tee "$OUT/delivery.txt"
cargo run --release -p hookflow --example bench_delivery -- 20000 10 | tee -a "$OUT/delivery.txt"

log "results: $OUT/{sqlite,postgres-1,postgres-3}/results.md, $OUT/delivery.txt"
