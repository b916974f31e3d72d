#!/usr/bin/env bash
# Admission and shedding at thousands of connections, and the cost of synchronous=FULL, on one
# machine in one run: alternating rounds of each setting against the same demo data
# (docs/BENCHMARKS.md).
#   bench/front_door.sh [ROUNDS]     (after: cargo build --release)
# SCANS=0 leaves out the scans; with wrk installed, each round also runs wrk -t1 -c6000 on code-opens
# with and without admission (wrk's latency mixes admitted and refused answers).
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

# wrk's script: code-opens with the demo holders' sessions, one after another.
LUA=$(dirname "$DIR")/open.lua
python3 - "$DIR/demo.json" "$LUA" <<'PY'
import json, sys
s = [h["session"] for h in json.load(open(sys.argv[1]))["holders"]]
open(sys.argv[2], "w").write("local s = {\n" + ",\n".join('"%s"' % x for x in s) + "\n}\nlocal i = 0\n"
    "request = function()\n  i = i + 1\n  return wrk.format(\"GET\", \"/api/v1/me/code\", {[\"Authorization\"] = \"Bearer \" .. s[(i % #s) + 1]})\nend\n")
PY

for r in $(seq "$ROUNDS"); do
  # Admission by connection (the default) with clients that wait as Retry-After says (the app, the
  # scanner, loadgen by default) and with clients that retry at once; then without admission
  # (admitted_wait_ms = 0: the in-flight shedding alone, as before admission was built).
  for mode in admission admission-ignored no-admission; do
    FLAGS=()
    case $mode in
      admission) serve $mode X=1 ;;
      admission-ignored) serve $mode X=1; FLAGS=(--ignore-retry-after) ;;
      no-admission) serve $mode HEALTHCODE__ADMITTED_WAIT_MS=0 ;;
    esac
    echo "== round $r, open, 6000 connections, $mode"
    "$BIN" loadgen --demo-dir "$DIR" --url "http://$ADDR" --scenario open --connections 6000 --duration 10 --warmup 3 "${FLAGS[@]}" || true
    stop
  done
  if command -v wrk >/dev/null; then
    for mode in admission no-admission; do
      case $mode in
        admission) serve $mode X=1 ;;
        no-admission) serve $mode HEALTHCODE__ADMITTED_WAIT_MS=0 ;;
      esac
      echo "== round $r, wrk, open, 6000 connections, $mode"
      wrk -t1 -c6000 -d10s --latency -s "$LUA" "http://$ADDR" || true
      curl -s "http://$ADDR/metrics" | grep -E '^healthcode_(requests_not_admitted_total|requests_shed_total|connections_refused_total) ' || true
      stop
    done
  fi
  [ "${SCANS:-1}" = 0 ] && continue
  for sync in full normal; do
    serve $sync HEALTHCODE__STORAGE__SYNCHRONOUS=$sync
    echo "== round $r, scans, 64 connections, synchronous=$sync"
    "$BIN" loadgen --demo-dir "$DIR" --url "http://$ADDR" --scenario scan --connections 64 --duration 10 || true
    echo "== round $r, single scans one at a time, synchronous=$sync"
    "$BIN" loadgen --demo-dir "$DIR" --url "http://$ADDR" --scenario scan --connections 1 --duration 5 || true
    stop
  done
done
