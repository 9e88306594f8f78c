#!/usr/bin/env bash
# Queries per busy server core-second over plain TCP, DNS over TLS and DNS over HTTPS, for one
# or more sipsteer binaries, alternated round by round: the server on CPU 1 (sample config, a
# self-signed certificate), the load on CPU 0: dnsperf for TCP and DoT (`-m tcp|dot`, 16
# persistent connections, 200 queries outstanding, `static.example.com A` and
# `sip.example.com A` alternating), examples/doh_load.rs for DoH (16 HTTP/2 connections, 12
# GETs of `static.example.com A` in flight on each; dnsperf 2.10's DoH mode stalls here). The
# server's CPU time comes from /proc/PID/stat, so the figure holds on a busy machine.
#   bench/stream-throughput.sh BIN...        DUR=10 REPS=3 MODES="tcp dot doh" by default
set -euo pipefail
cd "$(dirname "$0")/.."
R=$PWD
[ $# -ge 1 ] || { echo "usage: $0 BIN..." >&2; exit 2; }
LOAD=target/release/examples/doh_load
[ -x "$LOAD" ] || cargo build --release --example doh_load
D=$(mktemp -d)
PID=
trap '[ -n "$PID" ] && kill $PID 2>/dev/null; rm -rf "$D"' EXIT
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=localhost \
  -addext subjectAltName=DNS:localhost,IP:127.0.0.1 -keyout "$D/key.pem" -out "$D/cert.pem" 2>/dev/null
P=$((30000 + RANDOM % 20000)); T=$((P + 1)); H=$((P + 2))
cat > "$D/sipsteer.yaml" <<EOF
listen:
  dns: ["127.0.0.1:$P"]
  tls: ["127.0.0.1:$T"]
  https: ["127.0.0.1:$H"]
  admin: "off"
zones: $R/zones/
geoip: { database: $R/geoip/sample.csv }
admin: { state_file: $D/state.json }
health: { check: none }
dns: { udp_workers: 1 }
tls: { certificate: $D/cert.pem, key: $D/key.pem }
EOF
printf 'static.example.com A\nsip.example.com A\n' > "$D/q.txt"
TCK=$(getconf CLK_TCK)
cpu() { awk '{print $14+$15}' "/proc/$PID/stat"; }
for rep in $(seq "${REPS:-3}"); do
  for bin in "$@"; do
    taskset -c 1 "$bin" serve --config "$D/sipsteer.yaml" 2>"$D/serve.log" &
    PID=$!
    for _ in $(seq 100); do
      dig +short +time=1 +tries=1 +tcp -p "$P" @127.0.0.1 static.example.com A 2>/dev/null | grep -q . && break
      sleep 0.1
    done
    for mode in ${MODES:-tcp dot doh}; do
      case $mode in tcp) port=$P ;; dot) port=$T ;; doh) port=$H ;; esac
      c0=$(cpu)
      if [ "$mode" = doh ]; then
        out=$(taskset -c 0 "$LOAD" "127.0.0.1:$port" 16 12 "${DUR:-10}" 2>&1)
      else
        out=$(taskset -c 0 dnsperf -m "$mode" -s 127.0.0.1 -p "$port" -d "$D/q.txt" -l "${DUR:-10}" \
          -c 16 -q 200 2>&1)
      fi
      c1=$(cpu)
      n=$(awk '/Queries completed/ {print $3}' <<<"$out")
      lost=$(awk '/Queries lost/ {print $3}' <<<"$out")
      qps=$(awk '/Queries per second/ {printf "%.0f", $4}' <<<"$out")
      busy=$(awk -v a="$c0" -v b="$c1" -v t="$TCK" 'BEGIN {print (b-a)/t}')
      perc=$(awk -v q="${n:-0}" -v s="$busy" 'BEGIN {if (s > 0) printf "%.0f", q/s; else print 0}')
      echo "rep=$rep bin=$bin mode=$mode qps=$qps completed=$n lost=$lost server_cpu_s=$busy q_per_core_s=$perc"
    done
    kill $PID; wait $PID 2>/dev/null || true; PID=
  done
done
