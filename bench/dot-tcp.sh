#!/usr/bin/env bash
# DNS over TLS against TCP, persistent connections, back to back: sipsteer (sample config with a
# self-signed certificate) pinned to CPU 1, dnsperf (`-m dot` / `-m tcp`, 16 connections, 200
# queries outstanding) on CPU 0. Prints queries per second and queries per busy server
# core-second (server CPU time from /proc/PID/stat) for each run.
#   bench/dot-tcp.sh            DUR=10 REPS=3 by default
set -euo pipefail
cd "$(dirname "$0")/.."
R=$PWD
D=$(mktemp -d)
P=$((30000 + RANDOM % 20000)); T=$((P + 1))
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=localhost \
  -addext subjectAltName=IP:127.0.0.1 -keyout "$D/key.pem" -out "$D/cert.pem" 2>/dev/null
sed -e "s#^  dns: .*#  dns: [\"127.0.0.1:$P\"]\n  tls: [\"127.0.0.1:$T\"]#" -e 's#127.0.0.1:8053#off#' \
  -e "s#zones: zones/#zones: $R/zones/#" -e "s#database: geoip/#database: $R/geoip/#" \
  -e "s#state_file: .*#state_file: $D/state.json#" sipsteer.yaml > "$D/sipsteer.yaml"
printf 'tls: { certificate: %s/cert.pem, key: %s/key.pem }\n' "$D" "$D" >> "$D/sipsteer.yaml"
printf 'static.example.com A\nsip.example.com A\n' > "$D/q.txt"
taskset -c 1 target/release/sipsteer serve --config "$D/sipsteer.yaml" 2>"$D/serve.log" &
PID=$!
trap 'kill $PID; rm -rf "$D"' EXIT
sleep 1
cpu() { awk '{print $14+$15}' "/proc/$PID/stat"; }
TCK=$(getconf CLK_TCK)
for rep in $(seq "${REPS:-3}"); do
  for mode in tcp dot; do
    port=$P; [ "$mode" = dot ] && port=$T
    c0=$(cpu)
    out=$(taskset -c 0 dnsperf -m "$mode" -s 127.0.0.1 -p "$port" -d "$D/q.txt" -l "${DUR:-10}" -c 16 -q 200 2>&1)
    c1=$(cpu)
    qps=$(awk '/Queries per second/ {printf "%.0f", $4}' <<<"$out")
    n=$(awk '/Queries completed/ {print $3}' <<<"$out")
    lost=$(awk '/Queries lost/ {print $3}' <<<"$out")
    busy=$(awk -v a="$c0" -v b="$c1" -v t="$TCK" 'BEGIN {print (b-a)/t}')
    echo "rep $rep $mode qps=$qps completed=$n lost=$lost server_cpu_s=$busy q_per_core_s=$(awk -v q="$n" -v s="$busy" 'BEGIN {printf "%.0f", q/s}')"
  done
done
