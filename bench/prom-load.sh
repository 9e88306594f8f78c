#!/usr/bin/env bash
# What a Prometheus reply costs sipsteer: a fake Prometheus (bench/fake_prometheus.py) answers
# every load query with one vector of SERIES series (the last SERVERS of them belong to the
# config's servers; FIRST=1 puts them first), and sipsteer pulls it every INTERVAL for DURATION seconds. Prints the
# server's RSS (without a load source, then the peak and the last sample with it), the time a round
# takes (from the gaps between the fake's requests, minus the interval; and `last_round_ms`
# from /v1/status where the binary reports it), and TCP DNS throughput (dnsperf, static
# answers, two runs each) without a load source and while rounds run.
# Usage: bench/prom-load.sh [SERIES] [SERVERS]       (defaults 100000 and 10000)
#   BIN=path        the binary (target/release/sipsteer)
#   QUERIES=N       distinct queries per round (1): one global, N-1 per-region overrides, each
#                   answered with the whole reply
#   INTERVAL=1s     load.interval
#   DURATION=60     seconds of load pulling measured
#   TCP=10          seconds of each dnsperf run over TCP (0: none)
#   MAX_SERIES=N    sets load.max_series (binaries that have it; default: not set)
#   FIRST=1         the servers' series first in the reply (default: last, the worst case
#                   for a search per server)
# Run from the repository root after a release build. Loopback only.
set -euo pipefail
SERIES="${1:-100000}"; SERVERS="${2:-10000}"
BIN="${BIN:-target/release/sipsteer}"; QUERIES="${QUERIES:-1}"
INTERVAL="${INTERVAL:-1s}"; DURATION="${DURATION:-60}"; TCP="${TCP:-10}"
PER=100; REGIONS=$(( (SERVERS + PER - 1) / PER ))
WORK=$(mktemp -d); mkdir -p "$WORK/zones"
cleanup() { kill "${FAKE:-}" "${SRV:-}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
DNS=$(port); ADMIN=$(port); PROM=$(port)

python3 - "$REGIONS" "$PER" > "$WORK/zones/bench.test.yaml" <<'PY'
import sys
regions, per = int(sys.argv[1]), int(sys.argv[2])
print("zone: bench.test\nsoa: { primary: ns1, contact: hostmaster, serial: 1 }\nns: [ns1]")
print("records:\n  ns1: { A: 192.0.2.53 }\n  static: { A: 192.0.2.200 }\nregions:")
for r in range(regions):
    print(f"  r{r}:\n    location: [{(r % 160) - 80}, {(r * 7 % 340) - 170}]\n    servers:")
    for s in range(per):
        i = r * per + s
        print(f"      s{s}: {{ address: 198.18.{i // 256}.{i % 256}, capacity: {{ calls: 1000 }} }}")
names = ", ".join(f"r{r}" for r in range(regions))
print(f"services:\n  sip: {{ regions: [{names}], fallback: [r0] }}")
PY

main() { # $1: with or without `load:`
  cat <<YAML
listen: { dns: ["127.0.0.1:$DNS"], admin: "127.0.0.1:$ADMIN" }
zones: zones
health: { check: none }
capacity: { report_ttl: 1h }
YAML
  [[ "$1" = with ]] || return 0
  cat <<YAML
load:
  prometheus: http://127.0.0.1:$PROM
  interval: $INTERVAL
  timeout: 60s
  calls: 'sum by (server) (sip_active_calls)'
  match: { label: server, value: "\$region/\$server" }
YAML
  [[ -z "${MAX_SERIES:-}" ]] || echo "  max_series: $MAX_SERIES"
  if (( QUERIES > 1 )); then
    echo "  regions:"
    for q in $(seq 1 $((QUERIES - 1))); do
      echo "    r$q: { calls: 'sum by (server) (sip_active_calls{q=\"$q\"})' }"
    done
  fi
}

start() { # $1: with or without
  main "$1" > "$WORK/sipsteer.yaml"
  "$BIN" serve --config "$WORK/sipsteer.yaml" 2>>"$WORK/serve.log" & SRV=$!
  for _ in $(seq 300); do curl -sf "http://127.0.0.1:$ADMIN/readyz" >/dev/null && return; sleep 0.1; done
  echo "sipsteer did not come up:"; tail -20 "$WORK/serve.log"; exit 1
}
stop() { kill "$SRV"; wait "$SRV" 2>/dev/null || true; SRV=; }
rss() { awk '/^VmRSS/ {print $2}' "/proc/$SRV/status"; }
hwm() { awk '/^VmHWM/ {print $2}' "/proc/$SRV/status"; }
qps() {
  if [[ "$TCP" = 0 ]] || ! command -v dnsperf >/dev/null; then echo "-"; return; fi
  printf 'static.bench.test A\n' > "$WORK/q"
  dnsperf -m tcp -s 127.0.0.1 -p "$DNS" -d "$WORK/q" -l "$TCP" -c 10 -q 100 2>/dev/null |
    awk '/Queries per second/ {print $4}'
}

echo "series=$SERIES servers=$SERVERS queries=$QUERIES interval=$INTERVAL bin=$BIN"
start without
base_qps="$(qps) $(qps)"; base_rss=$(rss)
stop

python3 bench/fake_prometheus.py --port "$PROM" --series "$SERIES" --regions "$REGIONS" \
  --per-region "$PER" --log "$WORK/requests" ${FIRST:+--servers-first} & FAKE=$!
for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$PROM/api/v1/query?query=x" && break; sleep 0.2; done
: > "$WORK/requests"
start with
t0=$(date +%s); peak=0; last=0
busy_qps="$(qps) $(qps)"
while (( $(date +%s) - t0 < DURATION )); do
  last=$(rss); (( last > peak )) && peak=$last
  sleep 0.5
done
last=$(rss); (( last > peak )) && peak=$last
hw=$(hwm)
curl -s "http://127.0.0.1:$ADMIN/v1/status" > "$WORK/status.json"
stop

python3 - "$WORK/requests" "$INTERVAL" "$WORK/status.json" <<PY
import json, sys
from collections import defaultdict
iv = sys.argv[2]
interval = float(iv[:-2]) / 1000 if iv.endswith("ms") else float(iv.rstrip("s"))
times = defaultdict(list)
for line in open(sys.argv[1]):
    t, q = line.rstrip("\n").split("\t", 1)
    times[q].append(float(t))
rounds = sorted(b - a - interval for ts in times.values() for a, b in zip(ts, ts[1:]))
status = json.load(open(sys.argv[3])).get("load_pull") or {}
mib = lambda kb: f"{int(kb) / 1024:.0f} MiB"
print(f"rss: {mib($base_rss)} without a load source (after the same TCP runs), peak {mib($peak)}, "
      f"last {mib($last)}, VmHWM {mib($hw)}")
if rounds:
    print(f"round: {len(rounds)} measured, median {rounds[len(rounds) // 2]:.3f} s, "
          f"max {rounds[-1]:.3f} s (request gaps minus the interval)")
else:
    n = sum(len(ts) for ts in times.values())
    print(f"round: not one complete round in {$DURATION} s ({n} requests)")
if "last_round_ms" in status:
    print(f"status: last_round_ms={status['last_round_ms']} last_round_series={status['last_round_series']} "
          f"last_round_loads={status['last_round_loads']} last_error={status.get('last_error')}")
else:
    print(f"status: queries_ok={status.get('queries_ok')} last_error={status.get('last_error')}")
print(f"tcp dns qps: {'$base_qps'} without a load source, {'$busy_qps'} while rounds run")
PY
