#!/usr/bin/env bash
# bench/dnssec.sh [ROUNDS]: what signing costs.
#
#  1. amplification of a signed sample zone with DO=0 and DO=1 (bench/amplification.py), with
#     and without RRL;
#  2. throughput in rotation, each server pinned to CPU 1, dnsperf on CPU 0 (the shared kit's
#     run-one.sh, REPS=1 x DURATION s per round): gdnsd, sipsteer on the benchmark zone
#     unsigned, the same zone signed queried with DO=0, and signed queried with DO=1 (the kit's
#     query files with the DNSSEC OK bit set: a steered without ECS, b steered with ECS,
#     c static);
#  3. the resident memory of the unsigned and the signed instance after the runs.
#
# Env: KIT (~/bench), DURATION (10), RUN_ID (dnssec-<time>), BIN (target/release/sipsteer).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
KIT="${KIT:-$HOME/bench}"
ROUNDS="${1:-3}"
DURATION="${DURATION:-10}"
RUN_ID="${RUN_ID:-dnssec-$(date -u +%Y%m%dT%H%M%SZ)}"
BIN="${BIN:-$ROOT/target/release/sipsteer}"
# shellcheck source=bench/side-by-side.sh
source "$ROOT/bench/side-by-side.sh"

# The zone map of a config dir made by config(), signed with a key made here.
sign_zone() {  # sign_zone DIR ZONE_FILE
  "$BIN" dnssec keygen "$1/zone.pem" >/dev/null
  sed -i "s|^zone: \(.*\)|zone: \1\ndnssec: { key: $1/zone.pem }|" "$2"
}

# 1. Amplification: the sample zone (zones/), signed, udp_payload 4096, without and with RRL.
amp_dir() {  # amp_dir NAME PORT DNS_SETTINGS
  local dir="$WORK/$1"
  mkdir -p "$dir"
  cp -r "$ROOT/zones" "$dir/zones"
  sign_zone "$dir" "$dir/zones/example.com.yaml"
  cat > "$dir/sipsteer.yaml" <<YAML
listen: { dns: ["127.0.0.1:$2"], admin: "off" }
zones: zones/
health: { check: none }
dns: { udp_workers: 1, $3 }
YAML
  taskset -c 1 "$BIN" serve --config "$dir/sipsteer.yaml" >"$dir/log" 2>&1 & PIDS+=($!)
}
amp_dir amp 5391 "udp_payload: 4096"
amp_dir amp-rrl 5392 "udp_payload: 4096, rrl: { responses_per_second: 5, slip: 2 }"
sleep 2
echo "== amplification, signed sample zone, DO=0"
python3 "$ROOT/bench/amplification.py" 5391 5392
echo "== amplification, signed sample zone, DO=1"
DO=1 python3 "$ROOT/bench/amplification.py" 5391 5392

# 2. Throughput. The kit's query files with the DO bit set in their OPT record.
for f in a-sip-noecs b-sip-ecs c-static; do
  python3 - "$KIT/queries/$f.bin" "$KIT/queries/$f-do.bin" <<'PY'
import struct, sys
data = open(sys.argv[1], "rb").read()
out, i = bytearray(), 0
def skip_name(m, p):
    while m[p] != 0:
        if m[p] & 0xC0 == 0xC0:
            return p + 2
        p += m[p] + 1
    return p + 1
while i + 2 <= len(data):
    n = struct.unpack("!H", data[i:i + 2])[0]
    m = bytearray(data[i + 2:i + 2 + n])
    i += 2 + n
    qd, an, ns, ar = struct.unpack("!HHHH", m[4:12])
    p = 12
    for _ in range(qd):
        p = skip_name(m, p) + 4
    for _ in range(an + ns + ar):
        p = skip_name(m, p)
        rtype = struct.unpack("!H", m[p:p + 2])[0]
        rdlen = struct.unpack("!H", m[p + 8:p + 10])[0]
        if rtype == 41:
            m[p + 6] |= 0x80  # the DO bit: the top bit of the OPT TTL's flags
        p += 10 + rdlen
    out += struct.pack("!H", len(m)) + m
open(sys.argv[2], "wb").write(bytes(out))
PY
done

start_gdnsd
unsigned="$(config 5303)"
signed="$(config 5305)"
sign_zone "$(dirname "$signed")" "$(dirname "$signed")/zones/example.com.yaml"
taskset -c 1 "$BIN" serve --config "$unsigned" 2>"$WORK/unsigned.log" & PIDS+=($!)
UNSIGNED_PID=$!
taskset -c 1 "$BIN" serve --config "$signed" 2>"$WORK/signed.log" & PIDS+=($!)
SIGNED_PID=$!
for log in "$WORK/unsigned.log" "$WORK/signed.log"; do
  for _ in $(seq 1 300); do grep -q 'ready' "$log" && break; sleep 0.2; done
done
# The DO=1 answers measured below carry their RRSIGs (static and steered).
dig +short +dnssec -p 5305 @127.0.0.1 static.example.com A | sed 's/^/  signed static: /'
dig +short +dnssec -p 5305 @127.0.0.1 sip.example.com A +subnet=81.2.69.0/24 | sed 's/^/  signed steered: /'

cd "$KIT"
for round in $(seq 1 "$ROUNDS"); do
  for l in gdnsd:5301:0 unsigned:5303:0 signed-do0:5305:0 signed-do1:5305:1; do
    IFS=: read -r label port do <<<"$l"
    files="a-sip-noecs b-sip-ecs c-static" no_check=0
    if [[ "$do" == 1 ]]; then files="a-sip-noecs-do b-sip-ecs-do c-static-do" no_check=1; fi
    QUERY_FILES="$files" FIXED_FILES="" NO_CHECK="$no_check" RUN_ID="$RUN_ID" REPS=1 \
      DURATION="$DURATION" ./run-one.sh 127.0.0.1 "$port" "$label" | grep -v '^  check:' || true
  done
done

echo "== sitting $RUN_ID (rows in $KIT/results/runs.tsv)"
for label in gdnsd unsigned signed-do0 signed-do1; do
  python3 tools/summarize.py results/runs.tsv --run "$RUN_ID" --label "$label" 2>/dev/null || true
done
echo "== resident memory after the runs"
for p in "unsigned:$UNSIGNED_PID" "signed:$SIGNED_PID"; do
  echo "  ${p%%:*}: $(awk '/^VmRSS/{print $2, $3}' "/proc/${p##*:}/status")"
done
