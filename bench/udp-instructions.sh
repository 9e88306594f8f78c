#!/usr/bin/env bash
# User-space instructions the UDP listener spends per query around the answer path: each
# binary given serves the benchmark zone under callgrind (one profile per thread), QUERIES
# queries (static and steered A, in bursts of 32) are sent to it, and the instructions of
# the UDP thread (all of it: receive, peer address, control messages, tally, send) minus
# those of `respond()` are divided by the queries answered. A wildcard listen (0.0.0.0, destination addresses read from control
# messages and written back) and a plain one (127.0.0.1) are measured for each binary.
# Deterministic for one binary and driver, so a short run compares builds; kernel time is
# not counted.
# Usage: bench/udp-instructions.sh BIN...        (QUERIES, default 20000; PORT, default 5340)
set -euo pipefail
QUERIES="${QUERIES:-20000}"; PORT="${PORT:-5340}"
WORK=$(mktemp -d)
cleanup() { kill "${SRV:-}" 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT
mkdir -p "$WORK/zones"
cp bench/zones/example.com.yaml "$WORK/zones/"

cat > "$WORK/drive.py" <<'PY'
import socket, struct, sys
host, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
def query(i, name):
    q = struct.pack(">HHHHHH", i & 0xFFFF, 0, 1, 0, 0, 1)
    q += b"".join(bytes([len(l)]) + l.encode() for l in name.split(".")) + b"\0"
    q += struct.pack(">HH", 1, 1)
    q += b"\0" + struct.pack(">HHIH", 41, 1232, 0, 0)
    return q
names = ["static.example.com", "sip.example.com"]
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(5)
got = sent = 0
while sent < n:
    burst = min(32, n - sent)
    for k in range(burst):
        s.sendto(query(sent + k, names[(sent + k) % 2]), (host, port))
    sent += burst
    for _ in range(burst):
        try:
            s.recv(4096)
            got += 1
        except socket.timeout:
            break
print(got)
PY

# The inclusive instructions of the first function whose name ends with $2, from file $1.
ir() {
  callgrind_annotate --inclusive=yes --threshold=100 "$1" 2>/dev/null |
    awk -v f="$2" '!done { n=$0; sub(/ \[.*$/, "", n); if (n ~ f"$") { gsub(",", "", $1); print $1; done=1 } }'
}
# All instructions of the thread profiled in file $1.
total() { awk '/^totals:/ { print $2 }' "$1"; }

for BIN in "$@"; do
  for LISTEN in 0.0.0.0 127.0.0.1; do
    cat > "$WORK/sipsteer.yaml" <<YAML
listen: { dns: ["$LISTEN:$PORT"], admin: off }
zones: zones
health: { check: none }
dns: { udp_workers: 1 }
YAML
    rm -f "$WORK"/callgrind.out*
    valgrind --tool=callgrind --separate-threads=yes --callgrind-out-file="$WORK/callgrind.out" \
      "$BIN" serve --config "$WORK/sipsteer.yaml" 2>"$WORK/serve.log" & SRV=$!
    for _ in $(seq 300); do
      python3 "$WORK/drive.py" 127.0.0.1 "$PORT" 1 >/dev/null 2>&1 && break
      sleep 0.2
    done
    ANSWERED=$(( $(python3 "$WORK/drive.py" 127.0.0.1 "$PORT" "$QUERIES") + 1 ))
    kill -TERM "$SRV"; wait "$SRV" 2>/dev/null || true; SRV=
    # The UDP thread is the one that ran respond().
    for F in "$WORK"/callgrind.out-*; do
      RESPOND=$(ir "$F" "answer::respond")
      [ -n "$RESPOND" ] || continue
      THREAD=$(total "$F")
      echo "$BIN listen=$LISTEN answered=$ANSWERED thread=$THREAD respond=$RESPOND" \
        "thread_per_query=$(( THREAD / ANSWERED ))" \
        "listener_per_query=$(( (THREAD - RESPOND) / ANSWERED ))"
    done
  done
done
