#!/usr/bin/env bash
# Measures sipsteer's CPU and memory while it probes N SIP servers (default 10,000) over UDP
# at a 5 s interval, all answered by sip_responder.py on loopback.
# With QUERIES=1 it then runs the shared benchmark's run-one.sh (static queries) against the
# same server, so the query throughput with N probes running can be compared with N=0.
# With PERF=path it records a call-graph profile of the server (`perf record -g`) over the
# window into that file.
# Usage: bench/probe-load.sh [N] [SECONDS]     (run from the repository root after a release build)
set -euo pipefail
N="${1:-10000}"; SECS="${2:-60}"; BASE="${BASE:-20000}"
WORK=$(mktemp -d); mkdir -p "$WORK/zones"
cleanup() { kill "${RESP:-}" "${SRV:-}" 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT
ulimit -n "$(ulimit -Hn)" || true
python3 bench/sip_responder.py $BASE "$N" & RESP=$!
cat > "$WORK/sipsteer.yaml" <<YAML
listen: { dns: ["127.0.0.1:5310"], admin: "127.0.0.1:8060" }
zones: zones
health: { check: sip-options-udp, interval: 5s, timeout: 2s, max_concurrent: 256 }
dns: { udp_workers: 1 }
YAML
python3 - "$N" "$BASE" > "$WORK/zones/load.example.yaml" <<'PY'
import sys
n, base = int(sys.argv[1]), int(sys.argv[2])
print("zone: example.com\nsoa: { primary: ns1, contact: hostmaster, serial: 1 }\nns: [ns1]\nrecords:\n  static: { A: 192.0.2.200 }")
per = 100
if n < per:
    sys.exit(0)
print("regions:")
for r in range(n // per):
    print(f"  r{r}:\n    location: [{(r % 160) - 80}, {(r * 7 % 340) - 170}]\n    servers:")
    for s in range(per):
        print(f"      s{s}: {{ address: 127.0.0.1, port: {base + r * per + s} }}")
print("services:\n  sip: { regions: [" + ", ".join(f"r{r}" for r in range(n // per)) + "] }")
PY
sleep 2
taskset -c 1 "${BIN:-target/release/sipsteer}" serve --config "$WORK/sipsteer.yaml" 2>"$WORK/serve.log" & SRV=$!
for _ in $(seq 150); do curl -sf http://127.0.0.1:8060/readyz >/dev/null && break; sleep 0.2; done
echo "ready: $(curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:8060/readyz)"
CLK=$(getconf CLK_TCK)
cpu() { awk '{print $14 + $15}' "/proc/$SRV/stat"; }
reload_cpu() { for t in /proc/$SRV/task/*; do if grep -q sipsteer-reload "$t/comm"; then awk '{print $14 + $15}' "$t/stat"; fi; done | head -1 || true; }
# Voluntary context switches of every thread of the server (its sleeps and waits).
vcs() { cat /proc/$SRV/task/*/status 2>/dev/null | awk '/^voluntary_ctxt_switches/ {s += $2} END {print s + 0}'; }
c0=$(cpu); r0=$(reload_cpu); v0=$(vcs); t0=$(date +%s.%N)
if [[ -n "${PERF:-}" ]]; then
  perf record -q -g -o "$PERF" -p "$SRV" -- sleep "$SECS" 2>/dev/null
else
  sleep "$SECS"
fi
c1=$(cpu); r1=$(reload_cpu); v1=$(vcs); t1=$(date +%s.%N)
rss=$(awk '/VmRSS/{print $2}' "/proc/$SRV/status")
probes=$(curl -s http://127.0.0.1:8060/metrics | awk '/^sipsteer_probes_total/ {s += $2} END {print s}')
up=$(curl -s http://127.0.0.1:8060/metrics | awk '/^sipsteer_servers\{state="up"\}/ {print $2}')
python3 - <<PY
cpu = ($c1 - $c0) / $CLK
wall = $t1 - $t0
print(f"targets={$N} interval=5s window={wall:.1f}s cpu={cpu:.2f}s ({100*cpu/wall:.2f}% of one core) rss={$rss/1024:.1f} MiB vcsw/s={($v1 - $v0) / wall:.0f} probes_total={int(float('$probes' or 0))} up={'$up'} reload_thread_cpu={(${r1:-0} - ${r0:-0}) / $CLK:.2f}s")
PY
if [[ "${QUERIES:-0}" = 1 ]]; then
  (cd "${BENCH:-$HOME/bench}" && NO_CHECK=1 QUERY_FILES=c-static FIXED_RATES="" DURATION="${DURATION:-10}" REPS="${REPS:-3}" \
     RUN_ID="${RUN_ID:-probes-$(date +%s)}" ./run-one.sh 127.0.0.1 5310 "sipsteer-probing-$N") | tail -2
fi
