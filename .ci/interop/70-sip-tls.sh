# SIP over TLS end to end. kamailio (with its TLS module and a certificate for the SIP domain
# sip.example.com from a CA made here by openssl) listens for SIP over UDP on 127.0.0.1 and
# over TLS on 127.0.0.1 and [::1], answering OPTIONS and REGISTER with 200. sipsteer probes it
# per transport (`check: per-transport`: TLS by sip-options-tls with tls_name sip.example.com
# and health.tls_ca_file = that CA, UDP by sip-options-udp; a binary without health per
# transport gets the one check sip-options-tls) and steers sip.example.com to it. baresip, a real SIP client, resolves NAPTR (SIPS+D2T first)
# -> _sips._tcp SRV -> A or AAAA through sipsteer and registers over TLS, once over IPv4
# and once over IPv6 (-6: the AAAA ::1). Then kamailio restarts with an expired certificate
# and the TLS probe fails. With per-transport health (probe below) only the _sips._tcp /
# SIPS+D2T answers lose the server while _sip._udp keeps it; without it the whole server
# leaves every answer, which is asserted instead.
if ! need kamailio || ! ls /usr/lib/*/kamailio/modules/tls.so >/dev/null 2>&1 || ! need baresip || ! need openssl; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq kamailio kamailio-tls-modules baresip-core openssl >/dev/null
  else
    echo "interop: kamailio, kamailio-tls-modules, baresip-core and openssl are needed (run as root to install them)" >&2
    exit 1
  fi
fi
KMOD=$(dirname "$(ls /usr/lib/*/kamailio/modules/tls.so | head -1)")
BSMOD=/usr/lib/baresip/modules

TLSD=$WORK/sip-tls
mkdir -p "$TLSD/zones" "$TLSD/ca/newcerts" "$TLSD/baresip4" "$TLSD/baresip6"
TLSPORT=$(free_base 6)
TLSADMIN=$((TLSPORT + 1)); KUDP=$((TLSPORT + 2)); KTLS=$((TLSPORT + 3))
BS4=$((TLSPORT + 4)); BS6=$((TLSPORT + 5))

# A CA, a certificate for the SIP domain (RFC 5922: subjectAltName DNS:sip.example.com) and an
# expired one for the same key (openssl ca sets past dates).
(
  cd "$TLSD"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
    -subj "/CN=sipsteer interop CA" -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,keyCertSign,cRLSign" -keyout ca.key -out ca.pem
  openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    -subj "/CN=sip.example.com" -keyout sip.key -out sip.csr
  touch ca/index.txt; echo 01 > ca/serial
  cat > ca.cnf <<CNF
[ca]
default_ca = c
[c]
database = ca/index.txt
new_certs_dir = ca/newcerts
serial = ca/serial
default_md = sha256
policy = p
unique_subject = no
[p]
commonName = supplied
[leaf]
subjectAltName = DNS:sip.example.com
basicConstraints = CA:FALSE
extendedKeyUsage = serverAuth
CNF
  openssl ca -batch -config ca.cnf -cert ca.pem -keyfile ca.key -in sip.csr -out sip.pem \
    -extensions leaf -notext -days 2
  openssl ca -batch -config ca.cnf -cert ca.pem -keyfile ca.key -in sip.csr -out expired.pem \
    -extensions leaf -notext -startdate 20250101000000Z -enddate 20250102000000Z
) >/dev/null 2>&1
check "sip-tls certificate made" "notAfter=" "$(openssl x509 -in "$TLSD/sip.pem" -noout -enddate 2>&1)"

# kamailio: UDP on 127.0.0.1, TLS on 127.0.0.1 and [::1]; every request is logged with its
# transport and source.
kamailio_start() { # certificate file
  cat > "$TLSD/tls.cfg" <<CFG
[server:default]
method = TLSv1.2+
verify_certificate = no
require_certificate = no
private_key = $TLSD/sip.key
certificate = $1
CFG
  cat > "$TLSD/kamailio.cfg" <<CFG
#!KAMAILIO
debug=2
log_stderror=yes
children=2
tcp_children=2
auto_aliases=no
enable_tls=yes
listen=udp:127.0.0.1:$KUDP
listen=tls:127.0.0.1:$KTLS
listen=tls:[::1]:$KTLS
alias="sip.example.com"
mpath="$KMOD/"
loadmodule "tls.so"
loadmodule "sl.so"
loadmodule "pv.so"
loadmodule "xlog.so"
modparam("tls", "config", "$TLSD/tls.cfg")
request_route {
  xlog("L_NOTICE", "interop: \$rm \$ru from \$si over \$pr\n");
  if (\$rm == "OPTIONS" || \$rm == "REGISTER") { sl_send_reply("200", "OK"); exit; }
  sl_send_reply("404", "Not Here");
}
CFG
  kamailio -f "$TLSD/kamailio.cfg" -DD -E -Y "$TLSD" >>"$TLSD/kamailio.log" 2>&1 &
  KPID=$!
  PIDS+=($KPID)
  for _ in $(seq 50); do (exec 3<>"/dev/tcp/127.0.0.1/$KTLS") 2>/dev/null && break; sleep 0.1; done
}
kamailio_start "$TLSD/sip.pem"
out=$(echo | timeout 5 openssl s_client -connect 127.0.0.1:$KTLS -CAfile "$TLSD/ca.pem" \
  -verify_hostname sip.example.com 2>&1 || true)
check "kamailio tls handshake verifies" "Verify return code: 0 (ok)" "$out"

cat > "$TLSD/sipsteer.yaml" <<YAML
listen: { dns: ["127.0.0.1:$TLSPORT", "[::1]:$TLSPORT"], admin: "127.0.0.1:$TLSADMIN" }
zones: zones
health: { interval: 500ms, timeout: 400ms, rise: 1, fall: 2, tls_ca_file: ca.pem }
query_log: { path: queries.jsonl }
YAML
cat > "$TLSD/zones/example.com.yaml" <<YAML
zone: example.com
soa: { primary: ns1, contact: hostmaster, serial: 1 }
ns: [ns1]
records: { ns1: { A: 192.0.2.53 } }
regions:
  local:
    location: [51.51, -0.13]
    servers:
      k1:
        address: [127.0.0.1, "::1"]
        port: $KUDP
        tls_port: $KTLS
        transports: [udp, tls]
        check: CHECK
        tls_name: sip.example.com
  spare:
    location: [1.35, 103.82]
    servers:
      spare1: { address: 192.0.2.99, transports: [udp, tls], check: none }
services:
  sip: { regions: [local, spare], transports: [tls, udp], ttl: 1, failover: 2, fallback: [local, spare] }
YAML
# Feature probe: health per transport (`check: per-transport`: the TLS transport's check is
# sip-options-tls, the UDP one sip-options-udp). Without it the one check is sip-options-tls.
cp "$TLSD/zones/example.com.yaml" "$TLSD/zone.template"
sed -i 's/check: CHECK/check: per-transport/' "$TLSD/zones/example.com.yaml"
SIPTLS_PER_TRANSPORT=no
grep -q ": ok (" <<<"$($BIN check --config "$TLSD/sipsteer.yaml" 2>&1 || true)" && SIPTLS_PER_TRANSPORT=yes
[ "$SIPTLS_PER_TRANSPORT" = yes ] || sed 's/check: CHECK/check: sip-options-tls/' "$TLSD/zone.template" > "$TLSD/zones/example.com.yaml"
echo "sip-tls features: health per transport=$SIPTLS_PER_TRANSPORT"
out=$($BIN check --config "$TLSD/sipsteer.yaml" 2>&1 || true)
check "sip-tls check accepts the config" ": ok (" "$out"
$BIN serve --config "$TLSD/sipsteer.yaml" 2>"$TLSD/serve.log" &
PIDS+=($!)
# k1's state and last result; with health per transport also one line per transport.
tls_state() { curl -s "http://127.0.0.1:$TLSADMIN/v1/servers" | python3 -c '
import json, sys
for s in json.load(sys.stdin)["servers"]:
    if s["server"] == "k1":
        print("k1=%s %s" % (s["state"], s.get("last_result")))
        for t in s.get("transports") or []:
            print("k1/%s=%s %s" % (t["transport"], t["state"], t.get("last_result")))' 2>/dev/null || true; }
if [ "$SIPTLS_PER_TRANSPORT" = yes ]; then
  for _ in $(seq 60); do grep -q '^k1/tls=up' <<<"$(tls_state)" && grep -q '^k1/udp=up' <<<"$(tls_state)" && break; sleep 0.25; done
  check "sip-options-tls probe of kamailio is up" "k1/tls=up 200 OK" "$(tls_state)"
  check "sip-options-udp probe of kamailio is up" "k1/udp=up 200 OK" "$(tls_state)"
else
  for _ in $(seq 60); do grep -q '^k1=up' <<<"$(tls_state)" && break; sleep 0.25; done
  check "sip-options-tls probe of kamailio is up" "k1=up 200 OK" "$(tls_state)"
fi
check "kamailio saw the probe over tls" "interop: OPTIONS sip:" "$(grep ' over tls' "$TLSD/kamailio.log" || true)"

sd() { { dig +noall +answer +time=2 +tries=1 @127.0.0.1 -p "$TLSPORT" "$@" || true; } | sed 's/[[:space:]]\+/ /g'; }
out=$(sd sip.example.com NAPTR)
check "sip-tls naptr SIPS+D2T first" 'NAPTR 10 10 "S" "SIPS+D2T" "" _sips._tcp.sip.example.com.' "$out"
out=$(sd _sips._tcp.sip.example.com SRV)
check "sip-tls sips srv" "SRV 10 100 $KTLS k1.local.sip.example.com." "$out"
check "sip-tls AAAA of the target" "k1.local.sip.example.com. 1 IN AAAA ::1" "$(sd k1.local.sip.example.com AAAA | sed 's/ [0-9]* IN / 1 IN /')"

# baresip: one account for the SIP domain, DNS from sipsteer only; it registers over what the
# NAPTR/SRV answers say. -t: quit after that many seconds. sipsteer's query log shows what it
# asked: "TYPE NAME from CLIENT" for each query since the Unix time $1. baresip takes the SRV
# set and the addresses from the NAPTR reply's additional section when they are there (RFC
# 3263 allows it; sipsteer puts them there when they fit), so NAPTR may be its only query.
tls_queries() {
  sleep 0.5   # the query log is written by a thread of its own
  python3 -c '
import json, sys
for l in open(sys.argv[1]):
    q = json.loads(l)
    if q["ts"] >= float(sys.argv[2]):
        print("%s %s from %s" % (q["type"], q["name"].rstrip(".").lower(), q["client"]))' "$TLSD/queries.jsonl" "$1" 2>/dev/null || true
}
baresip_register() { # dir, family flag (-4/-6), listen address, dns server[, account URI params]
  cat > "$1/config" <<CFG
poll_method epoll
sip_listen $3
sip_cafile $TLSD/ca.pem
dns_server $4
module_path $BSMOD
module_app account.so
CFG
  echo "<sip:alice@sip.example.com${5:-}>;regint=600" > "$1/accounts"
  timeout 20 baresip -f "$1" "$2" -t 4 >"$1/out.log" 2>&1 || true
  cat "$1/out.log"
}
out=$(sd sip.example.com NAPTR +noall +additional)
check "sip-tls naptr carries the _sips._tcp SRV" "_sips._tcp.sip.example.com. 1 IN SRV 10 100 $KTLS k1.local.sip.example.com." "$out"
check "sip-tls naptr carries the target's A" "k1.local.sip.example.com. 1 IN A 127.0.0.1" "$out"
check "sip-tls naptr carries the target's AAAA" "k1.local.sip.example.com. 1 IN AAAA ::1" "$out"
since=$(date +%s.%N)
out=$(baresip_register "$TLSD/baresip4" -4 "127.0.0.1:$BS4" "127.0.0.1:$TLSPORT")
check "baresip registers over tls (ipv4)" "{0/TLS/v4} 200 OK" "$out"
check "baresip asked sipsteer NAPTR (ipv4)" "NAPTR sip.example.com from 127.0.0.1" "$(tls_queries "$since")"
# With the transport in the URI (RFC 3263 4.1: no NAPTR), baresip asks the SRV itself.
mkdir -p "$TLSD/baresip-srv"
since=$(date +%s.%N)
out=$(baresip_register "$TLSD/baresip-srv" -4 "127.0.0.1:$((BS4 + 2))" "127.0.0.1:$TLSPORT" ";transport=tls")
check "baresip registers over tls (transport=tls)" "{0/TLS/v4} 200 OK" "$out"
qs=$(tls_queries "$since")
check "baresip asked the _sips._tcp SRV" "SRV _sips._tcp.sip.example.com from 127.0.0.1" "$qs"
check "kamailio got REGISTER over tls from 127.0.0.1" "interop: REGISTER sip:sip.example.com from 127.0.0.1 over tls" "$(cat "$TLSD/kamailio.log")"
since=$(date +%s.%N)
out=$(baresip_register "$TLSD/baresip6" -6 "[::1]:$BS6" "[::1]:$TLSPORT")
check "baresip registers over tls (ipv6)" "{0/TLS/v6} 200 OK" "$out"
check "baresip asked sipsteer NAPTR (ipv6)" "NAPTR sip.example.com from ::1" "$(tls_queries "$since")"
check "kamailio got REGISTER over tls from ::1" "interop: REGISTER sip:sip.example.com from ::1 over tls" "$(cat "$TLSD/kamailio.log")"

# kamailio again, UDP as before, TLS with an expired certificate.
kill "$KPID" 2>/dev/null || true
wait "$KPID" 2>/dev/null || true
kamailio_start "$TLSD/expired.pem"
if [ "$SIPTLS_PER_TRANSPORT" = yes ]; then
  # A probe during kamailio's restart may fail otherwise (a timeout): wait for the reason.
  for _ in $(seq 60); do grep -q '^k1/tls=down.*certificate expired' <<<"$(tls_state)" && break; sleep 0.25; done
  st=$(tls_state)
  check "expired certificate: tls transport down" "k1/tls=down" "$st"
  check "expired certificate: reason" "certificate expired" "$(grep '^k1/tls=' <<<"$st")"
  for _ in $(seq 20); do grep -q '^k1/udp=up' <<<"$(tls_state)" && break; sleep 0.25; done
  st=$(tls_state)
  check "expired certificate: udp transport stays up" "k1/udp=up" "$st"
  check "expired certificate: the server stays up" "k1=up" "$st"
else
  for _ in $(seq 60); do grep -q '^k1=down.*certificate expired' <<<"$(tls_state)" && break; sleep 0.25; done
  check "expired certificate: tls probe fails" "k1=down" "$(tls_state)"
  check "expired certificate: reason" "certificate expired" "$(tls_state)"
fi
sleep 1.5   # nothing cached beyond the steered TTL (1 s)
sips=$(sd _sips._tcp.sip.example.com SRV)
udp=$(sd _sip._udp.sip.example.com SRV)
naptr=$(sd sip.example.com NAPTR)
if [ "$SIPTLS_PER_TRANSPORT" = yes ]; then
  check_not "expired certificate: k1 leaves _sips._tcp" "k1.local.sip.example.com." "$sips"
  check "expired certificate: _sips._tcp goes to the spare region" "spare1.spare.sip.example.com." "$sips"
  check "expired certificate: k1 stays in _sip._udp" "SRV 10 100 $KUDP k1.local.sip.example.com." "$udp"
else
  skip "only _sips._tcp loses a server whose TLS check fails" "per-transport health"
  check_not "expired certificate: k1 leaves _sips._tcp" "k1.local.sip.example.com." "$sips"
  check_not "expired certificate: k1 leaves _sip._udp (whole server down)" "k1.local.sip.example.com." "$udp"
  check "expired certificate: _sip._udp goes to the spare region" "spare1.spare.sip.example.com." "$udp"
fi
check "expired certificate: NAPTR still answered" '"SIP+D2U" "" _sip._udp.sip.example.com.' "$naptr"
