#!/usr/bin/env bash
# bench/sitting.sh [ROUNDS]
#
# One benchmark sitting, in rotation: the UDP reflector (the machine's limit), gdnsd, sipsteer
# before (BEFORE=binary), sipsteer after (AFTER=binary, default target/release/sipsteer) and
# the same answer path behind hickory-server's Server (HICKORY=binary, the `hickory_server`
# example) are started at once, each pinned to CPU 1 on its own port; then ROUNDS (3) rounds
# of one run-one.sh pass against each in turn (workloads a, b, c at max rate, b at a fixed
# 50k qps), and a TCP pass (c-static over TCP) against sipsteer after and hickory-server.
# Medians per label come from the shared kit's summarize.py; this script prints the table.
#
# Env: KIT (~/bench), DURATION (10), RUN_ID (sitting-<time>), PERF=1 records a 10 s perf
# profile of the reflector, before and after under b-sip-ecs into
# $KIT/results/raw/$RUN_ID/*.perf.txt, and splits each one's time per query into kernel, own
# code and libc (*.perf.split.txt).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
KIT="${KIT:-$HOME/bench}"
ROUNDS="${1:-3}"
DURATION="${DURATION:-10}"
RUN_ID="${RUN_ID:-sitting-$(date -u +%Y%m%dT%H%M%SZ)}"
BEFORE="${BEFORE:-}"
AFTER="${AFTER:-$ROOT/target/release/sipsteer}"
HICKORY="${HICKORY:-$ROOT/target/release/examples/hickory_server}"
# shellcheck source=bench/side-by-side.sh
source "$ROOT/bench/side-by-side.sh"
mkdir -p "$ROOT/bench/data"
ln -sf "$KIT/data/GeoLite2-City.mmdb" "$ROOT/bench/data/"

wait_udp() {  # wait until PORT answers a query
  for _ in $(seq 1 300); do
    dig +tries=1 +time=1 -p "$1" @127.0.0.1 static.example.com A >/dev/null 2>&1 && return 0
    sleep 0.2
  done
  echo "nothing answers on port $1" >&2; return 1
}

LABELS=()
start_reflector
LABELS+=("limit:5399")
start_gdnsd
LABELS+=("gdnsd:5301")
if [[ -n "$BEFORE" ]]; then
  taskset -c 1 "$BEFORE" serve --config "$(config 5302)" 2>"$WORK/before.log" & PIDS+=($!)
  LABELS+=("sipsteer-before:5302")
fi
taskset -c 1 "$AFTER" serve --config "$(config 5303)" 2>"$WORK/after.log" & PIDS+=($!)
LABELS+=("sipsteer-after:5303")
if [[ -x "$HICKORY" ]]; then
  taskset -c 1 "$HICKORY" "$(config 5304)" 127.0.0.1:5304 2>"$WORK/hickory.err" & PIDS+=($!)
  LABELS+=("hickory-server:5304")
fi
for l in "${LABELS[@]}"; do
  [[ "${l%%:*}" == limit ]] || wait_udp "${l##*:}"
done
# Steered answers need the GeoIP map in: wait for sipsteer's ready line.
for log in "$WORK"/before.log "$WORK"/after.log; do
  [[ -f "$log" ]] || continue
  for _ in $(seq 1 300); do grep -q 'ready' "$log" && break; sleep 0.2; done
done

cd "$KIT"
for round in $(seq 1 "$ROUNDS"); do
  for l in "${LABELS[@]}"; do
    label="${l%%:*}" port="${l##*:}"
    no_check=0; [[ "$label" == limit ]] && no_check=1
    NO_CHECK="$no_check" RUN_ID="$RUN_ID" REPS=1 DURATION="$DURATION" FIXED_RATES=50000 \
      ./run-one.sh 127.0.0.1 "$port" "$label" | grep -v '^  check:' || true
  done
done

# TCP: the same answer path behind sipsteer's own TCP listener and behind hickory-server.
mkdir -p "$WORK/tcp"
printf '#!/bin/sh\nexec /usr/bin/dnsperf -m tcp "$@"\n' > "$WORK/tcp/dnsperf"
chmod +x "$WORK/tcp/dnsperf"
for l in "sipsteer-after:5303" "hickory-server:5304"; do
  [[ " ${LABELS[*]} " == *" $l "* ]] || continue
  PATH="$WORK/tcp:$PATH" NO_CHECK=1 RUN_ID="$RUN_ID" REPS="$ROUNDS" DURATION="$DURATION" \
    QUERY_FILES="c-static" FIXED_FILES="" ./run-one.sh 127.0.0.1 "${l##*:}" "${l%%:*}-tcp" || true
done

if [[ "${PERF:-0}" == 1 ]]; then
  # Each profile comes with the rate and CPU share it was taken at, so its shares turn into
  # microseconds per query: kernel, the server's own code, libc.
  CLK="$(getconf CLK_TCK)"
  for l in "limit:5399" "sipsteer-before:5302" "sipsteer-after:5303"; do
    [[ " ${LABELS[*]} " == *" $l "* ]] || continue
    pid="$(ss -Hlunp "sport = :${l##*:}" | grep -o 'pid=[0-9]*' | head -1 | cut -d= -f2 || true)"
    out="$KIT/results/raw/$RUN_ID/${l%%:*}.perf"
    taskset -c 0 dnsperf -B -s 127.0.0.1 -p "${l##*:}" -c 10 -q 100 -d queries/b-sip-ecs.bin -l 14 > "$out.dnsperf" 2>&1 &
    load=$!
    sleep 2
    t0="$(awk '{print $14 + $15}' "/proc/$pid/stat")"
    perf record -F 4000 -g -o "$out.data" -p "$pid" -- sleep 10 >/dev/null 2>&1 || true
    t1="$(awk '{print $14 + $15}' "/proc/$pid/stat")"
    wait "$load" || true
    perf report -i "$out.data" --no-children --sort dso,symbol --stdio 2>/dev/null | grep -v '^#' | grep '%' | head -40 > "$out.txt" || true
    perf report -i "$out.data" --no-children --sort dso --stdio -g none 2>/dev/null | grep '%' > "$out.dso.txt" || true
    qps="$(awk '/Queries per second/{print $4}' "$out.dnsperf")"
    python3 - "$out.dso.txt" "$qps" "$(( t1 - t0 ))" "$CLK" <<'PY' | tee "$out.split.txt"
import sys
shares = {}
for line in open(sys.argv[1]):
    parts = line.split()
    if len(parts) >= 2 and parts[0].endswith('%'):
        shares[parts[1]] = float(parts[0].rstrip('%'))
qps, ticks, clk = float(sys.argv[2] or 0), int(sys.argv[3]), int(sys.argv[4])
busy = ticks / clk / 10.0  # share of one core over the 10 s profile
us = busy / qps * 1e6 if qps else 0.0
kernel = shares.get('[kernel.kallsyms]', 0.0)
libc = sum(v for k, v in shares.items() if k.startswith('libc'))
own = 100.0 - kernel - libc
print(f"{qps:.0f} qps, {busy * 100:.0f} % busy, {us:.2f} us per query: "
      f"kernel {us * kernel / 100:.2f}, own code {us * own / 100:.2f}, libc {us * libc / 100:.2f}")
PY
    echo "== perf ${l%%:*}: $out.txt"; head -15 "$out.txt"
  done
fi

echo "== sitting $RUN_ID (rows in $KIT/results/runs.tsv)"
for l in "${LABELS[@]}" "sipsteer-after-tcp:" "hickory-server-tcp:"; do
  python3 tools/summarize.py results/runs.tsv --run "$RUN_ID" --label "${l%%:*}" 2>/dev/null | tail -n +1 || true
done
