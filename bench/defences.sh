#!/usr/bin/env bash
# bench/defences.sh: amplification tables and the throughput cost of DNS Cookies and RRL.
#
#   BENCH=~/bench bench/defences.sh      (BENCH: a copy of the shared benchmark, for run-one.sh)
#   BEFORE=/path/to/old/sipsteer ONLY=amplification bench/defences.sh
#
# Starts sipsteer instances from target/release (build it first), all pinned to CPU 1:
#   5391 sample zone, udp_payload 4096               (amplification per query type)
#   5392 the same with rrl: 5/s, slip 2              (amplification under RRL)
#   5393 bench zone, cookies off, rrl off            (baseline)
#   5394 bench zone, cookies on (fixed secret)
#   5395 bench zone, rrl on at 1,000,000/s           (the accounting cost; nothing is limited)
#   5396 sample zone, rrl: {} (100/s per name, slip 2)           (a flood spread over names)
#   5397 the same with all_per_second: 1000
#   5398 the same with all_per_second: 200
#   5399 sample zone, rrl: 5/s, slip 1                (client-cookie floods: BADCOOKIE slips)
# and, when BEFORE names another sipsteer binary, 5400 and 5401 as 5396 and 5399 with it.
# Prints the amplification tables, then (unless ONLY=amplification) runs dnsperf
# (run-one.sh, REPS=1 x DURATION s) in ROUNDS rounds over the configurations, back to back,
# and prints medians and ratios.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BENCH="${BENCH:-$HOME/bench}"
ROUNDS="${ROUNDS:-3}"; DURATION="${DURATION:-10}"
BIN="$REPO/target/release/sipsteer"
BEFORE="${BEFORE:-}"
ONLY="${ONLY:-}"
TMP="$(mktemp -d)"
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$TMP"; }
trap cleanup EXIT

serve() {  # serve NAME PORT ZONES_DIR DNS_SETTINGS [BINARY]
  local dir="$TMP/$1"
  mkdir -p "$dir"
  cat > "$dir/sipsteer.yaml" <<EOF
listen: { dns: ["127.0.0.1:$2"], admin: "off" }
zones: $3
health: { check: none }
dns: { udp_workers: 1, $4 }
EOF
  taskset -c 1 "${5:-$BIN}" serve --config "$dir/sipsteer.yaml" > "$dir/log" 2>&1 &
  PIDS+=($!)
}

SECRET=00112233445566778899aabbccddeeff
serve amp 5391 "$REPO/zones" "udp_payload: 4096"
serve amp-rrl 5392 "$REPO/zones" "udp_payload: 4096, rrl: { responses_per_second: 5, slip: 2 }"
serve base 5393 "$REPO/bench/zones" "cookies: { enabled: false }"
serve cookies 5394 "$REPO/bench/zones" "cookies: { secret: $SECRET }"
serve rrl 5395 "$REPO/bench/zones" "cookies: { enabled: false }, rrl: { responses_per_second: 1000000 }"
serve spread 5396 "$REPO/zones" "rrl: {}"
serve spread-all1000 5397 "$REPO/zones" "rrl: { all_per_second: 1000 }"
serve spread-all200 5398 "$REPO/zones" "rrl: { all_per_second: 200 }"
serve cookie-slip1 5399 "$REPO/zones" "rrl: { responses_per_second: 5, slip: 1 }"
if [ -n "$BEFORE" ]; then
  serve before-spread 5400 "$REPO/zones" "rrl: {}" "$BEFORE"
  serve before-cookie 5401 "$REPO/zones" "rrl: { responses_per_second: 5, slip: 1 }" "$BEFORE"
fi
sleep 2

echo "== amplification (DNS bytes out / bytes in)"
python3 "$REPO/bench/amplification.py" 5391 5392
echo
echo "== a spoofed flood spread over every name/type pair (one victim)"
spread=("rrl defaults=5396" "all_per_second 1000=5397" "all_per_second 200=5398")
cookie=("slip 1=5399")
if [ -n "$BEFORE" ]; then
  spread=("before: rrl defaults=5400" "${spread[@]}")
  cookie=("before: slip 1=5401" "${cookie[@]}")
fi
python3 "$REPO/bench/amplification.py" spread "${spread[@]}"
echo
echo "== a spoofed flood of client-cookie queries (one victim, rrl 5/s)"
python3 "$REPO/bench/amplification.py" cookie "${cookie[@]}"
[ "$ONLY" = amplification ] && exit 0

# Query files: sip.example.com A with EDNS and a client cookie only, or with the valid server
# cookie that the cookies instance hands out to 127.0.0.1 (valid for an hour).
python3 - "$BENCH/queries" <<'EOF'
import socket, struct, sys
out = sys.argv[1]
cc = b"benchcc1"
def q(opts):
    msg = struct.pack("!HHHHHH", 0, 0, 1, 0, 0, 1) + b"\x03sip\x07example\x03com\x00" + struct.pack("!HH", 1, 1)
    msg += b"\x00" + struct.pack("!HHIH", 41, 1232, 0, len(opts)) + opts
    return struct.pack("!H", len(msg)) + msg
client = struct.pack("!HH", 10, 8) + cc
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(2)
s.sendto(q(client)[2:], ("127.0.0.1", 5394))
reply = s.recv(4096)
i = reply.find(struct.pack("!HH", 10, 24) + cc)
assert i > 0, "no cookie in the reply"
valid = reply[i:i + 28]
open(f"{out}/k-cookie-client.bin", "wb").write(q(client))
open(f"{out}/k-cookie-valid.bin", "wb").write(q(valid))
EOF

RUN_ID="defences-$(date -u +%Y%m%dT%H%M%SZ)"
runs=(
  "base 5393 a-sip-noecs"
  "rrl 5395 a-sip-noecs"
  "base 5393 k-cookie-client"
  "cookies 5394 k-cookie-client"
  "cookies 5394 k-cookie-valid"
)
for r in $(seq 1 "$ROUNDS"); do
  for run in "${runs[@]}"; do
    set -- $run
    RUN_ID="$RUN_ID" REPS=1 DURATION="$DURATION" QUERY_FILES="$3" FIXED_FILES="" NO_CHECK=1 \
      QUIET_WAIT_S="${QUIET_WAIT_S:-30}" "$BENCH/run-one.sh" 127.0.0.1 "$2" "$1" | grep -E '^\s+max' || true
  done
done

echo "== medians of $ROUNDS x ${DURATION}s (q/core-s = qps / server cpu share)"
python3 - "$BENCH/results/runs.tsv" "$RUN_ID" <<'EOF'
import csv, statistics, sys
rows = [r for r in csv.DictReader(open(sys.argv[1]), delimiter="\t") if r["run_id"] == sys.argv[2]]
med = {}
for key in sorted({(r["label"], r["query_file"]) for r in rows}):
    rs = [r for r in rows if (r["label"], r["query_file"]) == key and r["qps"] != "FAILED"]
    qps = statistics.median(float(r["qps"]) for r in rs)
    cpu = statistics.median(float(r["server_cpu_pct"] or 0) for r in rs)
    per_core = statistics.median(float(r["qps"]) / (float(r["server_cpu_pct"] or 100) / 100) for r in rs)
    lost = sum(int(r["lost"]) for r in rs)
    med[key] = (qps, per_core)
    print(f"{key[0]:8} {key[1]:16} qps {qps:9.0f}  server cpu {cpu:5.1f}%  q/core-s {per_core:9.0f}  lost {lost}")
def ratio(a, b):
    if a in med and b in med:
        print(f"{a[0]}/{a[1]} vs {b[0]}/{b[1]}: qps {med[a][0] / med[b][0]:.3f}, q/core-s {med[a][1] / med[b][1]:.3f}")
ratio(("rrl", "a-sip-noecs"), ("base", "a-sip-noecs"))
ratio(("cookies", "k-cookie-client"), ("base", "k-cookie-client"))
ratio(("cookies", "k-cookie-valid"), ("base", "k-cookie-client"))
EOF
