#!/usr/bin/env bash
# bench/latency.sh ROUNDS BIN...
#
# Average latency and server CPU at a fixed rate, many times over: the UDP reflector, gdnsd
# and each sipsteer binary given are started at once, each pinned to CPU 1 on its own port,
# then ROUNDS rounds of one dnsperf run (b-sip-ecs at RATE qps for DURATION s, on CPU 0)
# against each in turn. Latency at a fixed rate moves by tens of microseconds from one run
# to the next on a shared host, so one run per server says little; the per-round lines and
# the medians printed at the end compare servers.
#
# Env: KIT (~/bench), RATE (50000), DURATION (10).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
KIT="${KIT:-$HOME/bench}"
RATE="${RATE:-50000}"
DURATION="${DURATION:-10}"
if [[ $# -lt 2 ]]; then
  sed -n '2,12p' "$0"; exit 2
fi
ROUNDS="$1"; shift
# shellcheck source=bench/side-by-side.sh
source "$ROOT/bench/side-by-side.sh"

LABELS=()   # label:port:pid
start_reflector
LABELS+=("limit:5399:${PIDS[-1]}")
start_gdnsd
sleep 1
LABELS+=("gdnsd:5301:$(ss -Hlunp 'sport = :5301' | grep -o 'pid=[0-9]*' | head -1 | cut -d= -f2)")
port=5320
for bin in "$@"; do
  cfg="$(config $port)"
  : > "$WORK/$port.log"
  taskset -c 1 "$bin" serve --config "$cfg" 2>"$WORK/$port.log" & PIDS+=($!)
  LABELS+=("$(basename "$bin")-$port:$port:$!")
  for _ in $(seq 1 300); do grep -q 'ready' "$WORK/$port.log" && break; sleep 0.2; done
  port=$((port + 1))
done

CLK="$(getconf CLK_TCK)"
cd "$KIT"
# Warm-up, not counted: the first queries fault the GeoIP map's pages in.
for l in "${LABELS[@]}"; do
  IFS=: read -r _ port _ <<<"$l"
  taskset -c 0 dnsperf -B -s 127.0.0.1 -p "$port" -c 10 -q 100 -Q "$RATE" \
    -d queries/b-sip-ecs.bin -l 3 >/dev/null 2>&1 || true
done
for round in $(seq 1 "$ROUNDS"); do
  for l in "${LABELS[@]}"; do
    IFS=: read -r label port pid <<<"$l"
    c0="$(awk '{print $14 + $15}' "/proc/$pid/stat")"
    out="$(taskset -c 0 dnsperf -B -s 127.0.0.1 -p "$port" -c 10 -q 100 -Q "$RATE" \
      -d queries/b-sip-ecs.bin -l "$DURATION" 2>&1)"
    c1="$(awk '{print $14 + $15}' "/proc/$pid/stat")"
    lat="$(awk '/Average Latency/{print $4}' <<<"$out")"
    lost="$(awk '/Queries lost/{print $3}' <<<"$out")"
    echo "$label $round $lat $(( c1 - c0 )) $lost" | tee -a "$WORK/rows"
  done
done

python3 - "$WORK/rows" "$CLK" "$DURATION" <<'PY'
import statistics, sys
rows = {}
for line in open(sys.argv[1]):
    label, _, lat, ticks, _ = line.split()
    rows.setdefault(label, []).append((float(lat) * 1e6, int(ticks) / int(sys.argv[2]) / float(sys.argv[3]) * 100))
print(f"{'server':<24} {'median latency':>15} {'range':>14} {'median CPU':>11}")
for label, v in rows.items():
    lats = [x for x, _ in v]
    print(f"{label:<24} {statistics.median(lats):>12.1f} us {min(lats):>6.0f}-{max(lats):<6.0f} "
          f"{statistics.median(c for _, c in v):>9.1f} %")
PY
