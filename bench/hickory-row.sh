#!/usr/bin/env bash
# The hickory-server row of the throughput table: sipsteer's respond() behind hickory-server's
# Server (examples/hickory_server.rs), pinned to CPU 1, measured with the shared benchmark's
# run-one.sh (dnsperf on CPU 0) exactly as sipsteer and gdnsd are.
# Usage: bench/hickory-row.sh   (from the repository root; needs bench/data/GeoLite2-City.mmdb,
#        see README.md, and the shared benchmark in BENCH, default ~/bench)
# Env: PORT (5330), SERVER_CPU (1), LABEL (sipsteer-hickory), BIN (the example's binary);
#      run-one.sh's own knobs (DURATION, REPS, QUERY_FILES, FIXED_RATES, RUN_ID, ...) pass through.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
BENCH="${BENCH:-$HOME/bench}"; PORT="${PORT:-5330}"; SERVER_CPU="${SERVER_CPU:-1}"
LABEL="${LABEL:-sipsteer-hickory}"; BIN="${BIN:-target/release/examples/hickory_server}"
[[ -x "$BIN" ]] || cargo build --release --example hickory_server
LOG=$(mktemp)
taskset -c "$SERVER_CPU" "$BIN" "$HERE/sipsteer.yaml" "127.0.0.1:$PORT" 2>"$LOG" & SRV=$!
trap 'kill $SRV 2>/dev/null || true; rm -f "$LOG"' EXIT
for _ in $(seq 300); do
  dig +short +time=1 +tries=1 -p "$PORT" @127.0.0.1 static.example.com A 2>/dev/null | grep -q 192.0.2.200 && break
  kill -0 $SRV 2>/dev/null || { cat "$LOG"; exit 1; }
  sleep 0.2
done
(cd "$BENCH" && SERVER_PID=$SRV ./run-one.sh 127.0.0.1 "$PORT" "$LABEL")
