#!/usr/bin/env bash
# Shedding at thousands of connections, and the cost of synchronous=FULL, on one machine in one
# run: alternating rounds of each setting against the same demo data (docs/BENCHMARKS.md).
#   bench/front_door.sh [ROUNDS]     (after: cargo build --release)
set -euo pipefail
BIN=${BIN:-target/release/healthcode}
ROUNDS=${1:-2}
DIR=$(mktemp -d)/demo
ADDR=127.0.0.1:8391
ulimit -n 20000

ready() { for _ in $(seq 300); do curl -sf "http://$ADDR/readyz" >/dev/null && return; sleep 0.1; done; exit 1; }

"$BIN" demo --dir "$DIR" --listen "$ADDR" --holders 2000 >/dev/null 2>&1 &
ready; kill -TERM $!; wait $! || true

# serve NAME ENV...: a server on the demo's data with the given settings, until the next stop.
serve() { shift; env "$@" RUST_LOG=error "$BIN" serve --data-dir "$DIR" --listen "$ADDR" >/dev/null 2>&1 & PID=$!; ready; }
stop() { kill -TERM "$PID"; wait "$PID" || true; }

for r in $(seq "$ROUNDS"); do
  # Clients that wait as Retry-After says (the app, the scanner, loadgen by default), clients that
  # retry at once, and no shedding at all.
  for mode in shedding shedding-ignored no-shedding; do
    FLAGS=()
    case $mode in
      shedding) serve $mode X=1 ;;
      shedding-ignored) serve $mode X=1; FLAGS=(--ignore-retry-after) ;;
      no-shedding) serve $mode HEALTHCODE__MAX_IN_FLIGHT=100000 HEALTHCODE__MAX_QUEUE_MS=60000 ;;
    esac
    echo "== round $r, open, 6000 connections, $mode"
    "$BIN" loadgen --demo-dir "$DIR" --url "http://$ADDR" --scenario open --connections 6000 --duration 10 --warmup 3 "${FLAGS[@]}" || true
    stop
  done
  for sync in full normal; do
    serve $sync HEALTHCODE__STORAGE__SYNCHRONOUS=$sync
    echo "== round $r, scans, 64 connections, synchronous=$sync"
    "$BIN" loadgen --demo-dir "$DIR" --url "http://$ADDR" --scenario scan --connections 64 --duration 10 || true
    echo "== round $r, single scans one at a time, synchronous=$sync"
    "$BIN" loadgen --demo-dir "$DIR" --url "http://$ADDR" --scenario scan --connections 1 --duration 5 || true
    stop
  done
done
