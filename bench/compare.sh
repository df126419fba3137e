#!/usr/bin/env bash
# Before/after on one machine, back to back:
#
#   bash bench/compare.sh BEFORE_BIN AFTER_BIN          (or BEFORE_BIN=… AFTER_BIN=… bash bench/compare.sh)
#
# For each set, the "before" binary runs, then the "after" binary, each against fresh servers
# (bench/bench.py, nothing duplicated here):
#   sqlite      HTTP floor, (a) intake, (b) router+plugin throughput, (c) latency at a fixed rate
#   postgres-1  (c) latency on PostgreSQL, one process (skipped if psql cannot reach BENCH_PG_URL,
#               or with COMPARE_POSTGRES=0)
#   peers       peers.py W1 /sync at 64 connections, hookflow and Node-RED (only when Node-RED is
#               installed: bash bench/peers/install.sh; COMPARE_PEERS=0 skips, =1 insists)
# then prints the side-by-side table (`bench.py --compare`): after/before, and each figure against
# the HTTP floor measured in the same bench.py run. Every bench.py run has its own floor, so the
# "vs floor" columns absorb part of the machine's drift between the two sides; after/before
# does not. Run it on a quiet machine, and twice if the difference matters (an A/A run, the same
# binary as both sides, shows the noise).
#
# Output: bench/out/compare/{before,after}/{sqlite,postgres-1,peers}/, machine.txt, compare.md
# (git-ignored). The binaries are copied first, so a rebuild during the run changes nothing.
# Knobs (env): BENCH_SECS=10 BENCH_N=30000 BENCH_CONNS=64 BENCH_RATE=1000
#   BENCH_PG_URL=postgres://postgres@127.0.0.1:5432/postgres  COMPARE_OUT=bench/out/compare
#   COMPARE_POSTGRES=1  COMPARE_PEERS=auto  PEERS_CONNS=64  PEERS_WARMUP_SECS=5
#   BENCH_SKIP_FLOOR_BUILD=1 (use bench/floor/target/release/hookflow-floor as it is)
# Takes about 2 × (4 × BENCH_SECS + the drain of BENCH_N runs + start-ups) plus the peers rows:
# ~4 minutes at the defaults without peers, ~6 with them.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export PATH="$HOME/.cargo/bin:$PATH"
log() { printf '\n== %s\n' "$*" >&2; }

BEFORE_BIN="${1:-${BEFORE_BIN:-}}"
AFTER_BIN="${2:-${AFTER_BIN:-}}"
if [[ -z "$BEFORE_BIN" || -z "$AFTER_BIN" ]]; then
  echo "usage: bash bench/compare.sh BEFORE_BIN AFTER_BIN   (or env BEFORE_BIN, AFTER_BIN)" >&2
  exit 2
fi
for bin in "$BEFORE_BIN" "$AFTER_BIN"; do
  [[ -x "$bin" ]] || { echo "not an executable: $bin" >&2; exit 2; }
done

OUT="${COMPARE_OUT:-$ROOT/bench/out/compare}"
SECS="${BENCH_SECS:-10}"
N="${BENCH_N:-30000}"
CONNS="${BENCH_CONNS:-64}"
RATE="${BENCH_RATE:-1000}"
PG_URL="${BENCH_PG_URL:-postgres://postgres@127.0.0.1:5432/postgres}"

# -- load generator and HTTP floor ----------------------------------------------------------------
if ! command -v oha >/dev/null 2>&1; then
  log "installing oha (cargo install oha --locked)"
  cargo install oha --locked
fi
OHA="$(command -v oha)"
FLOOR_TARGET="${CARGO_TARGET_DIR:-$ROOT/bench/floor/target}"
if [[ "${BENCH_SKIP_FLOOR_BUILD:-0}" != 1 ]]; then
  log "cargo build --release --manifest-path bench/floor/Cargo.toml"
  CARGO_TARGET_DIR="$FLOOR_TARGET" cargo build --release --manifest-path "$ROOT/bench/floor/Cargo.toml"
fi

# -- fresh output, copies of the binaries ---------------------------------------------------------
rm -rf "$OUT/before" "$OUT/after" "$OUT/compare.md" "$OUT/machine.txt"
mkdir -p "$OUT/before" "$OUT/after"
cp "$BEFORE_BIN" "$OUT/before/hookflow"
cp "$AFTER_BIN" "$OUT/after/hookflow"
cp "$FLOOR_TARGET/release/hookflow-floor" "$OUT/hookflow-floor"
{
  echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "before: $BEFORE_BIN  sha256 $(sha256sum "$BEFORE_BIN" | cut -c1-16)  $("$BEFORE_BIN" --version 2>/dev/null || true)"
  echo "after:  $AFTER_BIN  sha256 $(sha256sum "$AFTER_BIN" | cut -c1-16)  $("$AFTER_BIN" --version 2>/dev/null || true)"
  echo "floor: $FLOOR_TARGET/release/hookflow-floor  sha256 $(sha256sum "$OUT/hookflow-floor" | cut -c1-16)"
  echo "repo: $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)$(git -C "$ROOT" diff --quiet -- engine 2>/dev/null || echo ' (+ uncommitted engine changes)')"
  echo "nproc: $(nproc)"
  echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
  echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "oha: $("$OHA" --version)"
  echo "knobs: BENCH_SECS=$SECS BENCH_N=$N BENCH_CONNS=$CONNS BENCH_RATE=$RATE"
} | tee "$OUT/machine.txt" >&2

failed=()
run_bench() {  # side set [bench.py options…]
  local side="$1" set="$2"; shift 2
  log "$set, $side: bench.py $*"
  if ! python3 "$ROOT/bench/bench.py" --bin "$OUT/$side/hookflow" --floor-bin "$OUT/hookflow-floor" \
      --oha "$OHA" --out "$OUT/$side/$set" --conns "$CONNS" --n "$N" --intake-secs "$SECS" \
      --latency-secs "$SECS" --rate "$RATE" "$@"; then
    failed+=("$set/$side")
  fi
}

# -- SQLite: floor, (a), (b), (c) ---------------------------------------------------------------
for side in before after; do
  run_bench "$side" sqlite --only floor,a,b,c
done

# -- PostgreSQL, one process: (c) ---------------------------------------------------------------
if [[ "${COMPARE_POSTGRES:-1}" == 1 ]]; then
  if psql "$PG_URL" -Atqc 'select 1' >/dev/null 2>&1; then
    for side in before after; do
      run_bench "$side" postgres-1 --only c --db postgres --procs 1 --pg-url "$PG_URL"
    done
  else
    log "PostgreSQL not reachable at $PG_URL: postgres-1 skipped (COMPARE_POSTGRES=0 to silence)"
    failed+=("postgres-1 (unreachable)")
  fi
fi

# -- peers.py: /sync W1 at 64 connections, hookflow vs Node-RED -----------------------------------
peers="${COMPARE_PEERS:-auto}"
if [[ "$peers" == auto ]]; then
  if [[ -d "$ROOT/bench/peers/node_modules/node-red" ]] && command -v node >/dev/null; then
    peers=1
  else
    log "Node-RED not installed (bash bench/peers/install.sh): peers rows skipped"
    peers=0
  fi
fi
if [[ "$peers" == 1 ]]; then
  for side in before after; do
    log "peers, $side: peers.py --only hookflow,node-red --workloads w1"
    if ! python3 "$ROOT/bench/peers.py" --bin "$OUT/$side/hookflow" --oha "$OHA" \
        --only hookflow,node-red --workloads w1 --conns "${PEERS_CONNS:-64}" --secs "$SECS" \
        --warmup-secs "${PEERS_WARMUP_SECS:-5}" --out "$OUT/$side/peers"; then
      failed+=("peers/$side")
    fi
  done
fi

# -- side by side ---------------------------------------------------------------------------------
log "before/after ($OUT/compare.md)"
python3 "$ROOT/bench/bench.py" --compare "$OUT/before" "$OUT/after" --compare-out "$OUT/compare.md"
if ((${#failed[@]})); then
  echo "FAILED or skipped: ${failed[*]}" >&2
  exit 1
fi
