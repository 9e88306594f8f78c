#!/usr/bin/env bash
# Reload cost with 1,000 zones and a full GeoIP database, and DNS throughput while the zone
# maps change every second. Needs the shared benchmark set up in ~/bench (or BENCH=dir).
# Usage: bench/reload-load.sh            (from the repository root, after a release build)
# RELOADS=N rewrites the zone map N times (3) once the GeoIP map is in; QUERIES=0 stops there.
# Then ROUNDS (3) pairs of b-sip-ecs runs, one steady and one while the zone map changes every
# second, alternating; the medians of each close the output.
set -euo pipefail
BENCH="${BENCH:-$HOME/bench}"; ZONES="${ZONES:-1000}"
WORK=$(mktemp -d); mkdir -p "$WORK/zones"
cleanup() { kill "${SRV:-}" "${LOOP:-}" 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT
cat > "$WORK/sipsteer.yaml" <<YAML
listen: { dns: ["127.0.0.1:5300"], admin: "127.0.0.1:8054" }
zones: zones
geoip: { database: $BENCH/data/GeoLite2-City.mmdb }
admin: { token: bench-token-1 }
health: { check: none }
dns: { udp_workers: 1 }
regions:
  use: { location: [39.0, -77.5], servers: { s1: { address: 192.0.2.40 } } }
  usw: { location: [37.4, -122.0], servers: { s1: { address: 192.0.2.50 } } }
  uk:  { location: [51.5, -0.1], servers: { s1: { address: 192.0.2.10 } } }
  ams: { location: [52.37, 4.9], servers: { s1: { address: 192.0.2.30 } } }
  de:  { location: [50.1, 8.7], servers: { s1: { address: 192.0.2.20 } } }
  sg:  { location: [1.35, 103.8], servers: { s1: { address: 192.0.2.60 } } }
YAML
zone() { # name serial
  cat <<YAML
zone: $1
soa: { primary: ns1, contact: hostmaster, serial: $2 }
ns: [ns1]
records:
  ns1: { A: 192.0.2.53 }
  static: { A: 192.0.2.200 }
  _sip._udp: { SRV: "10 100 5060 static" }
services:
  sip: { regions: [use, usw, uk, ams, de, sg], fallback: [use], answers: 1 }
YAML
}
zone example.com 1 > "$WORK/zones/example.com.yaml"
for i in $(seq 2 "$ZONES"); do zone "customer$i.example" 1 > "$WORK/zones/customer$i.example.yaml"; done
taskset -c 1 "${BIN:-target/release/sipsteer}" serve --config "$WORK/sipsteer.yaml" 2>"$WORK/serve.log" & SRV=$!
for _ in $(seq 150); do dig +short +time=1 +tries=1 @127.0.0.1 -p 5300 static.example.com >/dev/null 2>&1 && break; sleep 0.2; done
echo "startup:"; grep -E "geoip database loaded|listening" "$WORK/serve.log" | sed 's/\x1b\[[0-9;]*m//g' | cut -c1-200
for _ in $(seq 300); do curl -sf http://127.0.0.1:8054/readyz >/dev/null && break; sleep 0.2; done
for s in $(seq 2 $(( ${RELOADS:-3} + 1 ))); do
  zone example.com "$s" > "$WORK/zones/example.com.yaml"
  curl -s -X POST -H "Authorization: Bearer bench-token-1" http://127.0.0.1:8054/v1/reload; echo
done
echo "reload times (wall ms, cpu ms):"; grep "config reloaded" "$WORK/serve.log" | sed 's/\x1b\[[0-9;]*m//g' | grep -oE ' ms=[0-9]+( cpu_ms=[0-9.]+)?'
[[ "${QUERIES:-1}" = 1 ]] || exit 0
export DURATION="${DURATION:-10}" REPS=1 QUERY_FILES="${QUERY_FILES:-b-sip-ecs}" FIXED_RATES="" NO_CHECK=1 RUN_ID="${RUN_ID:-reload-$(date +%s)}"
# Steady and reloading runs alternate (ROUNDS of each), so drift over the sitting hits both.
for round in $(seq "${ROUNDS:-3}"); do
  (cd "$BENCH" && ./run-one.sh 127.0.0.1 5300 sipsteer-steady) | grep '^| sipsteer' || true
  ( s=$((round * 1000)); while true; do s=$((s+1)); zone example.com "$s" > "$WORK/zones/example.com.yaml.tmp"; mv "$WORK/zones/example.com.yaml.tmp" "$WORK/zones/example.com.yaml"; sleep 1; done ) & LOOP=$!
  (cd "$BENCH" && ./run-one.sh 127.0.0.1 5300 sipsteer-reloading) | grep '^| sipsteer' || true
  kill $LOOP; LOOP=
done
echo "reloads during the runs: $(grep -c 'config reloaded' "$WORK/serve.log")"
for l in sipsteer-steady sipsteer-reloading; do
  (cd "$BENCH" && python3 tools/summarize.py results/runs.tsv --run "$RUN_ID" --label "$l") | grep '^| sipsteer' || true
done
