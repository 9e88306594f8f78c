# sipp (sip-tester) as the SIP servers being probed: scenarios answering OPTIONS with 200 and
# 503 over UDP, and 200 over TCP. sipsteer must report up, full and up.
SIPP_BASE=$(free_base 3)
U200=$SIPP_BASE; U503=$((SIPP_BASE + 1)); T200=$((SIPP_BASE + 2))
(cd "$WORK" && exec sipp -sf "$OLDPWD/.ci/sipp/options-200.xml" -i 127.0.0.1 -p $U200 -nostdin -m 100000 >/dev/null 2>&1) &
PIDS+=($!)
(cd "$WORK" && exec sipp -sf "$OLDPWD/.ci/sipp/options-503.xml" -i 127.0.0.1 -p $U503 -nostdin -m 100000 >/dev/null 2>&1) &
PIDS+=($!)
(cd "$WORK" && exec sipp -sf "$OLDPWD/.ci/sipp/options-200.xml" -t t1 -i 127.0.0.1 -p $T200 -nostdin -m 100000 >/dev/null 2>&1) &
PIDS+=($!)
mkdir -p "$WORK/sipp/zones"
SPORT=$((PORT + 1)); APORT=$((PORT + 2))
cat > "$WORK/sipp/sipsteer.yaml" <<YAML
listen: { dns: ["127.0.0.1:$SPORT"], admin: "127.0.0.1:$APORT" }
zones: zones
health: { interval: 500ms, timeout: 400ms, rise: 1, fall: 2 }
YAML
cat > "$WORK/sipp/zones/example.com.yaml" <<YAML
zone: example.com
soa: { primary: ns1, contact: hostmaster, serial: 1 }
ns: [ns1]
regions:
  uk:
    location: [51.5, 0]
    servers:
      ok-udp: { address: 127.0.0.1, port: $U200, check: sip-options-udp }
      busy-udp: { address: 127.0.0.1, port: $U503, check: sip-options-udp }
      ok-tcp: { address: 127.0.0.1, port: $T200, transports: [tcp], check: sip-options-tcp }
services:
  sip: { regions: [uk] }
YAML
$BIN serve --config "$WORK/sipp/sipsteer.yaml" 2>"$WORK/sipp/serve.log" &
PIDS+=($!)
states() { # one "server=state detail" line per server
  curl -s "http://127.0.0.1:$APORT/v1/servers" | python3 -c '
import json, sys
for s in json.load(sys.stdin)["servers"]:
    print("%s=%s %s" % (s["server"], s["state"], s["last_result"]))' 2>/dev/null || true
}
servers=""
for _ in $(seq 60); do
  servers=$(states)
  if grep -q '^ok-udp=up' <<<"$servers" && grep -q '^busy-udp=full' <<<"$servers" && grep -q '^ok-tcp=up' <<<"$servers"; then break; fi
  sleep 0.25
done
check "sipp udp 200 is up" 'ok-udp=up 200 OK' "$servers"
check "sipp udp 503 is full" 'busy-udp=full 503 Service Unavailable (retry-after 30)' "$servers"
check "sipp tcp 200 is up" 'ok-tcp=up 200 OK' "$servers"
out=$(dig @127.0.0.1 -p "$SPORT" _sip._udp.sip.example.com SRV)
check "full server left the SRV answer" "ok-udp.uk.sip.example.com." "$out"
if grep -q "busy-udp.uk" <<<"$out"; then fail=$((fail+1)); echo "FAIL busy server still answered"; else pass=$((pass+1)); echo "ok   busy server not answered"; fi
