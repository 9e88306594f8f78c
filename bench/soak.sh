#!/usr/bin/env bash
# Soak: sipsteer under steady DNS load while everything an operator and the network can throw
# at it happens at once, for a long time. Not part of `cargo test`.
#
#   - dnsperf at half the measured maximum rate, ECS workload (b-sip-ecs), for SOAK_SECONDS;
#   - a zone map rewritten every 5 s, every tenth edit invalid (must be rejected, old one served);
#   - a SIP responder that answers for 10 s, then goes silent for 10 s (flapping health);
#   - a load report over the admin API every 2 s, alternating under and over `overflow_at`;
#   - 100 TCP clients that connect, ask one query, and disconnect, over and over;
#   - DNS over TLS (dnsperf -m dot, DOT_RATE qps, default 2,000) and DNS over HTTPS
#     (examples/doh_load.rs: 4 connections of 4 streams, each waiting 4 ms after a reply)
#     throughout, as the legitimate encrypted clients;
#   - a connection flood from one source (127.0.0.250) against plain TCP, DoT and DoH:
#     FLOOD_CONNS (default 500) connections per port, held open without a byte sent and
#     opened again as soon as the server closes them.
#
# Prints queries sent / completed / lost, response codes, RSS at 5 minutes (RSS_AT) and at the end,
# reloads applied and rejected, and whether the goals held: 0 failed legitimate queries (UDP,
# TCP, DoT, DoH: none lost, none answered other than NOERROR), RSS growth < 5 %.
#
# Usage (from the repository root, after `cargo build --release` and ../shared/bench/setup.sh
# copied to ~/bench and run once):
#   bench/soak.sh                      # 30 minutes
#   SOAK_SECONDS=300 bench/soak.sh     # a short rehearsal
# Env: BENCH=~/bench  RATE=<qps> (default: half of a 15 s max-rate run)  SOAK_SECONDS=1800
#      PORT=5300 ADMIN=8054 SIP_PORT=5070 DOT_PORT=8530 DOH_PORT=8443 SERVER_CPU=1 CLIENT_CPU=0
#      DOT_RATE=2000 FLOOD_CONNS=500
set -euo pipefail
BENCH="${BENCH:-$HOME/bench}"; SOAK_SECONDS="${SOAK_SECONDS:-1800}"
PORT="${PORT:-5300}"; ADMIN="${ADMIN:-8054}"; SIP_PORT="${SIP_PORT:-5070}"
DOT_PORT="${DOT_PORT:-8530}"; DOH_PORT="${DOH_PORT:-8443}"; DOT_RATE="${DOT_RATE:-2000}"
FLOOD_CONNS="${FLOOD_CONNS:-500}"
SERVER_CPU="${SERVER_CPU:-1}"; CLIENT_CPU="${CLIENT_CPU:-0}"
TOKEN=soak-token-0123456789
BIN="${BIN:-target/release/sipsteer}"
HERE="$(cd "$(dirname "$0")" && pwd)"
QUERIES="$BENCH/queries/b-sip-ecs.bin"
DOH_LOAD="${DOH_LOAD:-target/release/examples/doh_load}"
for need in dnsperf curl python3 taskset openssl; do
  command -v "$need" >/dev/null || { echo "soak: $need is missing (run ~/bench/setup.sh)" >&2; exit 2; }
done
[[ -s "$QUERIES" && -s "$BENCH/data/GeoLite2-City.mmdb" ]] || { echo "soak: run $BENCH/setup.sh first" >&2; exit 2; }
[[ -x "$BIN" ]] || { echo "soak: build first: cargo build --release" >&2; exit 2; }
[[ -x "$DOH_LOAD" ]] || { echo "soak: build first: cargo build --release --example doh_load" >&2; exit 2; }

WORK=$(mktemp -d); mkdir -p "$WORK/zones"
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
  -subj /CN=localhost -addext subjectAltName=DNS:localhost \
  -keyout "$WORK/key.pem" -out "$WORK/cert.pem" 2>/dev/null
cat > "$WORK/sipsteer.yaml" <<YAML
listen: { dns: ["127.0.0.1:$PORT"], admin: "127.0.0.1:$ADMIN",
          tls: ["127.0.0.1:$DOT_PORT"], https: ["127.0.0.1:$DOH_PORT"] }
tls: { certificate: cert.pem, key: key.pem }
zones: zones
geoip: { database: $BENCH/data/GeoLite2-City.mmdb }
admin: { token: $TOKEN }
health: { check: none }
dns: { udp_workers: 1 }
regions:
  use: { location: [39.0, -77.5], servers: { s1: { address: 192.0.2.40 } } }
  usw: { location: [37.4, -122.0], servers: { s1: { address: 192.0.2.50 } } }
  uk:  { location: [51.5, -0.1], servers: { s1: { address: 192.0.2.10 } } }
  ams: { location: [52.37, 4.9], servers: { s1: { address: 192.0.2.30 } } }
  de:  { location: [50.1, 8.7], servers: { s1: { address: 192.0.2.20 } } }
  sg:  { location: [1.35, 103.8], servers: { s1: { address: 192.0.2.60 } } }
  lab:
    location: [48.85, 2.35]
    servers:
      p1: { address: 127.0.0.1, port: $SIP_PORT, transports: [udp], check: sip-options,
            capacity: { calls: 100, cps: 10 } }
      p2: { address: 127.0.0.2 }
YAML
cat > "$WORK/zones/example.com.yaml" <<'YAML'
zone: example.com
soa: { primary: ns1, contact: hostmaster, serial: 1 }
ns: [ns1]
records:
  ns1: { A: 192.0.2.53 }
  static: { A: 192.0.2.200 }
  _sip._udp: { SRV: "10 100 5060 static" }
services:
  sip: { regions: [use, usw, uk, ams, de, sg], fallback: [use], answers: 1 }
YAML
soak_zone() { # serial valid(1|0)
  local addr=192.0.2.7
  [[ "$2" == 1 ]] || addr=192.0.2.777
  cat <<YAML
zone: soak.test
soa: { primary: ns1, contact: hostmaster, serial: $1 }
ns: [ns1]
records:
  ns1: { A: 192.0.2.53 }
  edit: { A: $addr, TXT: "edit $1" }
services:
  voice: { regions: [lab, uk], fallback: [lab], ttl: 30 }
YAML
}
soak_zone 1 1 > "$WORK/zones/soak.test.yaml"

# The SIP responder that flaps: answers OPTIONS for 10 s, then stays silent for 10 s.
cat > "$WORK/flap.py" <<'PY'
import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.1", int(sys.argv[1])))
s.settimeout(0.5)
start = time.monotonic()
while True:
    try:
        data, addr = s.recvfrom(4096)
    except socket.timeout:
        continue
    if int((time.monotonic() - start) / 10) % 2 == 1 or not data.startswith(b"OPTIONS "):
        continue
    out = ["SIP/2.0 200 OK"]
    for line in data.decode("utf-8", "replace").split("\r\n")[1:]:
        l = line.lower()
        if l.startswith(("via:", "v:", "from:", "f:", "call-id:", "i:", "cseq:")):
            out.append(line)
        elif l.startswith(("to:", "t:")):
            out.append(line + ";tag=soak")
    out.append("Content-Length: 0")
    s.sendto(("\r\n".join(out) + "\r\n\r\n").encode(), addr)
PY
# 100 TCP clients, each from its own loopback address (127.0.0.1 .. 127.0.0.100, as 100
# resolvers would be, so the per-source connection cap does not apply): connect, one query,
# read the answer, close; forever. Counts failures.
cat > "$WORK/tcp_churn.py" <<'PY'
import socket, struct, sys, threading, time
port, n, out = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
q = struct.pack(">HHHHHH", 0x1234, 0, 1, 0, 0, 0) + b"\x06static\x07example\x03com\x00" + struct.pack(">HH", 1, 1)
ok = [0] * n; bad = [0] * n
def client(i):
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=3,
                                          source_address=(f"127.0.0.{i % 250 + 1}", 0)) as c:
                c.sendall(struct.pack(">H", len(q)) + q)
                hdr = c.recv(2)
                ln = struct.unpack(">H", hdr)[0] if len(hdr) == 2 else 0
                body = b""
                while len(body) < ln:
                    chunk = c.recv(ln - len(body))
                    if not chunk: break
                    body += chunk
                if len(body) == ln and ln >= 12 and body[:2] == q[:2] and body[3] & 0xF == 0:
                    ok[i] += 1
                else:
                    bad[i] += 1
        except OSError:
            bad[i] += 1
        time.sleep(0.2)
for i in range(n):
    threading.Thread(target=client, args=(i,), daemon=True).start()
while True:
    time.sleep(5)
    with open(out, "w") as f:
        f.write(f"{sum(ok)} {sum(bad)}\n")
PY

# A flood from one source: FLOOD_CONNS connections to each port, never a byte sent, each one
# the server closes opened again. Writes how many it opened.
cat > "$WORK/flood.py" <<'PY'
import resource, socket, sys, time
ports, n, out = [int(p) for p in sys.argv[1].split(",")], int(sys.argv[2]), sys.argv[3]
_, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
slots = [(p, None) for p in ports for _ in range(n)]
opened = 0; last = 0
while True:
    for i, (p, s) in enumerate(slots):
        if s is not None:
            try:
                if s.recv(1) != b"":
                    continue
            except BlockingIOError:
                continue
            except OSError:
                pass
            s.close()
        try:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.250", 0))
            s.setblocking(False)
            s.connect_ex(("127.0.0.1", p))
            opened += 1
        except OSError:
            s = None
        slots[i] = (p, s)
    if time.monotonic() - last > 5:
        last = time.monotonic()
        with open(out, "w") as f:
            f.write(f"{opened}\n")
    time.sleep(0.1)
PY

rss_kib() { awk '/^VmRSS/{print $2}' "/proc/$1/status"; }
status() { curl -s "http://127.0.0.1:$ADMIN/v1/status"; }

taskset -c "$SERVER_CPU" "$BIN" serve --config "$WORK/sipsteer.yaml" 2>"$WORK/serve.log" & SRV=$!; PIDS+=("$SRV")
for _ in $(seq 300); do curl -sf "http://127.0.0.1:$ADMIN/readyz" >/dev/null 2>&1 && break; sleep 0.2; done
curl -sf "http://127.0.0.1:$ADMIN/readyz" >/dev/null || { echo "soak: server did not become ready" >&2; cat "$WORK/serve.log" >&2; exit 1; }

if [[ -z "${RATE:-}" ]]; then
  max=$(taskset -c "$CLIENT_CPU" dnsperf -B -s 127.0.0.1 -p "$PORT" -d "$QUERIES" -c 10 -q 100 -l 15 2>&1 \
        | awk '/Queries per second/{printf "%d", $4}')
  RATE=$((max / 2))
  echo "max rate (15 s): $max qps; soak rate: $RATE qps"
fi

python3 "$WORK/flap.py" "$SIP_PORT" & PIDS+=("$!")
python3 "$WORK/tcp_churn.py" "$PORT" 100 "$WORK/tcp.txt" & PIDS+=("$!")
python3 "$WORK/flood.py" "$PORT,$DOT_PORT,$DOH_PORT" "$FLOOD_CONNS" "$WORK/flood.txt" & PIDS+=("$!")
taskset -c "$CLIENT_CPU" dnsperf -m dot -B -s 127.0.0.1 -p "$DOT_PORT" -d "$QUERIES" -c 4 -q 40 -t 5 \
  -Q "$DOT_RATE" -l "$SOAK_SECONDS" > "$WORK/dot.txt" 2>&1 & PIDS+=("$!"); DOT=$!
taskset -c "$CLIENT_CPU" "$DOH_LOAD" "127.0.0.1:$DOH_PORT" 4 4 "$SOAK_SECONDS" 4 > "$WORK/doh.txt" 2>&1 & PIDS+=("$!"); DOH=$!
( i=1; while true; do i=$((i+1)); v=1; (( i % 10 == 0 )) && v=0
    soak_zone "$i" "$v" > "$WORK/zones/soak.test.yaml.tmp" && mv "$WORK/zones/soak.test.yaml.tmp" "$WORK/zones/soak.test.yaml"
    echo "$i" > "$WORK/edits.txt"; sleep 5; done ) & PIDS+=("$!")
( n=0; while true; do n=$((n+1)); calls=$(( n % 2 == 0 ? 95 : 20 ))
    curl -s -o /dev/null -X PUT -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \
      -d "{\"calls\":$calls,\"cps\":1}" "http://127.0.0.1:$ADMIN/v1/servers/lab/p1/load" || true
    sleep 2; done ) & PIDS+=("$!")

started=$(date +%s)
RSS_AT="${RSS_AT:-$(( SOAK_SECONDS < 1800 ? SOAK_SECONDS / 6 : 300 ))}"
( sleep "$RSS_AT"; rss_kib "$SRV" > "$WORK/rss5.txt" ) & PIDS+=("$!")
taskset -c "$CLIENT_CPU" dnsperf -B -s 127.0.0.1 -p "$PORT" -d "$QUERIES" -c 10 -q 200 -t 2 \
  -Q "$RATE" -l "$SOAK_SECONDS" -S 60 > "$WORK/dnsperf.txt" 2>&1 || true
wait "$DOT" "$DOH" 2>/dev/null || true
elapsed=$(( $(date +%s) - started ))
rss_end=$(rss_kib "$SRV"); rss5=$(cat "$WORK/rss5.txt" 2>/dev/null || echo "")
st=$(status)
metrics=$(curl -s "http://127.0.0.1:$ADMIN/metrics")
flips=$(awk '/^sipsteer_state_flips_total/{s+=$NF} END{print s+0}' <<<"$metrics")
shed=$(awk '/^sipsteer_tcp_shed_total/{s+=$NF} END{print s+0}' <<<"$metrics")
eshed=$(awk '/^sipsteer_dns_encrypted_shed_total/{s+=$NF} END{print s+0}' <<<"$metrics")
alive=yes; kill -0 "$SRV" 2>/dev/null || alive=no

echo "== soak: $elapsed s at $RATE qps (b-sip-ecs), binary $BIN"
grep -E "Queries sent|Queries completed|Queries lost|Response codes|Average Latency|Queries per second" "$WORK/dnsperf.txt" | sed 's/^ */  /'
echo "  dns over tls (dnsperf -m dot, $DOT_RATE qps):"
grep -E "Queries sent|Queries completed|Queries lost|Response codes" "$WORK/dot.txt" | sed 's/^ */    /'
echo "  dns over https (doh_load):"
sed 's/^ */    /' "$WORK/doh.txt"
RSS_AT=$RSS_AT python3 - "$st" "$rss5" "$rss_end" "$WORK/tcp.txt" "$WORK/edits.txt" "$WORK/dnsperf.txt" "$alive" "$flips" "$shed" \
  "$WORK/dot.txt" "$WORK/doh.txt" "$WORK/flood.txt" "$eshed" <<'PY'
import json, os, re, sys
st, rss5, rss_end, tcpf, editsf, perff, alive, flips, shed, dotf, dohf, floodf, eshed = sys.argv[1:]
r = json.loads(st).get("reload", {}) if st else {}
tcp = open(tcpf).read().split() if tcpf else ["?", "?"]
edits = open(editsf).read().strip()
perf = open(perff, errors="replace").read()
sent = int(re.search(r"Queries sent:\s+(\d+)", perf).group(1))
lost = int(re.search(r"Queries lost:\s+(\d+)", perf).group(1))
codes = dict((k, int(v)) for k, v in re.findall(r"([A-Z]+) (\d+) \(", perf.split("Response codes:")[1].split("\n")[0]))
servfail = codes.get("SERVFAIL", 0)
failed = sum(v for k, v in codes.items() if k != "NOERROR")
growth = (int(rss_end) - int(rss5)) / int(rss5) * 100 if rss5 else float("nan")
dot = open(dotf, errors="replace").read()
m = re.search(r"Queries sent:\s+(\d+)", dot)
dot_sent = int(m.group(1)) if m else 0
dot_lost = int(re.search(r"Queries lost:\s+(\d+)", dot).group(1)) if m else -1
dot_codes = dict((k, int(v)) for k, v in re.findall(r"([A-Z]+) (\d+) \(", dot.split("Response codes:")[1].split("\n")[0])) if "Response codes:" in dot else {}
dot_failed = sum(v for k, v in dot_codes.items() if k != "NOERROR")
doh = open(dohf, errors="replace").read()
doh_done = int(re.search(r"Queries completed:\s+(\d+)", doh).group(1)) if "completed" in doh else 0
doh_failed = int(re.search(r"Queries failed:\s+(\d+)", doh).group(1)) if "failed:" in doh else -1
flood = open(floodf).read().strip() if os.path.exists(floodf) else "?"
tcp_failed = int(tcp[1]) if tcp[1].isdigit() else -1
print(f"  queries sent {sent}, lost (timed out) {lost}, non-NOERROR {failed}, SERVFAIL {servfail}")
print(f"  tcp clients: {tcp[0]} queries answered, {tcp[1]} failed; connections shed {shed}")
print(f"  dot: {dot_sent} sent, {dot_lost} lost, {dot_failed} not NOERROR; doh: {doh_done} answered, {doh_failed} failed")
print(f"  flood from 127.0.0.250: {flood} connections opened; encrypted connections shed {eshed}")
print(f"  health flips of the flapping SIP server and load reports: {flips}")
print(f"  zone edits written: {edits}; reloads applied {r.get('applied')}, rejected {r.get('rejected')}, unchanged {r.get('unchanged')}")
print(f"  RSS at {os.environ['RSS_AT']} s {int(rss5)/1024:.1f} MiB, at end {int(rss_end)/1024:.1f} MiB, growth {growth:+.2f} %")
legit_failed = lost + failed + tcp_failed + dot_lost + dot_failed + doh_failed
ok = alive == "yes" and legit_failed == 0 and dot_sent > 0 and doh_done > 0 and growth < 5
print(f"  failed legitimate queries (udp lost or not NOERROR, tcp, dot, doh): {legit_failed}")
print(f"  server alive: {alive}; goals (0 failed legitimate queries, RSS growth < 5 %): {'met' if ok else 'NOT met'}")
PY
