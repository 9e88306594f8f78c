#!/bin/sh
# Startup and memory with the GeoLite2-City database: time from exec to the first static
# answer, to the first GeoIP-steered answer (ECS scope > 0) and to /readyz, then VmRSS
# and VmHWM once the map is in. Usage: bench/startup.sh [BINARY]
# Needs bench/data/GeoLite2-City.mmdb (see README.md); ports DNS_PORT (25391), ADMIN_PORT (28091).
set -eu
BIN=${1:-target/release/sipsteer}
DNS_PORT=${DNS_PORT:-25391} ADMIN_PORT=${ADMIN_PORT:-28091}
DIR=$(mktemp -d)
trap 'kill $PID 2>/dev/null; rm -rf "$DIR"' EXIT
HERE=$(cd "$(dirname "$0")" && pwd)
sed -e "s#127.0.0.1:5300#127.0.0.1:$DNS_PORT#; s#127.0.0.1:8054#127.0.0.1:$ADMIN_PORT#" \
    -e "s#zones: zones/#zones: $HERE/zones/#; s#database: data/#database: $HERE/data/#" \
    "$HERE/sipsteer.yaml" > "$DIR/sipsteer.yaml"
now() { date +%s.%N; }
t0=$(now)
"$BIN" serve --config "$DIR/sipsteer.yaml" 2>"$DIR/log" &
PID=$!
static="" steered="" ready=""
end=$(( $(date +%s) + 120 ))
while [ -z "$static" ] || [ -z "$steered" ] || [ -z "$ready" ]; do
    [ "$(date +%s)" -lt "$end" ] || break
    if [ -z "$static" ] && dig +short +tries=1 +time=1 -p ${DNS_PORT} @127.0.0.1 static.example.com A 2>/dev/null | grep -q 192.0.2.200; then
        static=$(now)
    fi
    if [ -z "$steered" ] && dig +tries=1 +time=1 -p ${DNS_PORT} @127.0.0.1 sip.example.com A +subnet=81.2.69.0/24 2>/dev/null | grep -q 'CLIENT-SUBNET: 81.2.69.0/24/[1-9]'; then
        steered=$(now)
    fi
    if [ -z "$ready" ] && curl -sf http://127.0.0.1:${ADMIN_PORT}/readyz >/dev/null 2>&1; then
        ready=$(now)
    fi
    kill -0 $PID || { cat "$DIR/log"; exit 1; }
    sleep 0.02
done
sleep 1
[ -n "$static" ] && echo "first static answer: $(echo "$static - $t0" | bc) s"
[ -n "$steered" ] && echo "first geo answer:    $(echo "$steered - $t0" | bc) s"
[ -n "$ready" ] && echo "ready:               $(echo "$ready - $t0" | bc) s"
grep -E 'VmRSS|VmHWM' /proc/$PID/status
ls -lL "$HERE/data/GeoLite2-City.mmdb" | awk '{print "mmdb bytes: " $5}'
