# DNSSEC against validating resolvers nobody here wrote: a signed zone (its key made by
# `sipsteer dnssec keygen`) behind Unbound (validator, subnet cache, aggressive NSEC) and BIND
# named (validating forwarder), each with the zone's DS from `sipsteer dnssec ds` as its
# static trust anchor; BIND's delv with the DNSKEY as anchor; kdig +dnssec; ldns-verify-zone
# on the signed static RRsets. Two probed regions (sipp answering OPTIONS on 127.0.0.11 and
# 127.0.0.12) so steered answers differ by ECS subnet and a health flip changes them.
#
# Checks of features a binary may not have yet are gated on a probe of that binary and print
# `skip` with the reason; the behaviour of a binary without them is asserted instead:
#  - signed steered answers: `sipsteer check` no longer warns that steered answers are not
#    signed (without: a validating resolver answers SERVFAIL for them, as docs/dnssec.md says)
#  - NXDOMAIN proofs: a DO=1 NXDOMAIN carries an NSEC (without: only the signed SOA, which a
#    validator rejects)
#  - key rollover: `sipsteer dnssec --help` lists `roll`
if ! need named || ! need delv || ! need ldns-verify-zone || ! need unbound; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq bind9 bind9-dnsutils ldnsutils unbound >/dev/null
  else
    echo "interop: named, delv, ldns-verify-zone and unbound are needed (run as root to install them)" >&2
    exit 1
  fi
fi

SEC=$WORK/dnssec
mkdir -p "$SEC/zones" "$SEC/keys"
SECPORT=$(free_base 5)
SECADMIN=$((SECPORT + 1)); SECUNB=$((SECPORT + 2)); SECNAMED=$((SECPORT + 3)); SECSIP=$((SECPORT + 4))
SECUK=127.0.0.11; SECSG=127.0.0.12

# Two SIP servers that answer OPTIONS with 200: one per region.
(cd "$WORK" && exec sipp -sf "$OLDPWD/.ci/sipp/options-200.xml" -i $SECUK -p $SECSIP -nostdin -m 100000 >/dev/null 2>&1) &
SECUKPID=$!
PIDS+=($SECUKPID)
(cd "$WORK" && exec sipp -sf "$OLDPWD/.ci/sipp/options-200.xml" -i $SECSG -p $SECSIP -nostdin -m 100000 >/dev/null 2>&1) &
PIDS+=($!)

out=$($BIN dnssec keygen "$SEC/keys/example.com.pem" 2>&1 || true)
check "dnssec keygen" "algorithm 13 (ECDSAP256SHA256), key tag" "$out"
SECTAG=$(sed -n 's/.*key tag \([0-9]*\).*/\1/p' <<<"$out")

SEC_ROLL=no; $BIN dnssec --help 2>&1 | grep -qE '^ +roll ' && SEC_ROLL=yes
cat > "$SEC/sipsteer.yaml" <<YAML
listen: { dns: ["127.0.0.1:$SECPORT"], admin: "127.0.0.1:$SECADMIN" }
zones: zones
geoip: { database: $PWD/geoip/sample.csv }
health: { interval: 500ms, timeout: 400ms, rise: 1, fall: 2 }
reload: { rescan: 1s }
YAML
# With key rollover, a second zone signs with a keys directory (a KSK and a ZSK that
# sipsteer writes at its first load), with TTLs of 2 s so that a ZSK roll steps in seconds.
if [ "$SEC_ROLL" = yes ]; then
  cat > "$SEC/zones/example.net.yaml" <<YAML
zone: example.net
ttl: 2
soa: { primary: ns1, contact: hostmaster, serial: 1, minimum: 2 }
ns: [ns1]
dnssec: { keys: keys-net, propagation: 0s, zsk_lifetime: 90d }
records:
  ns1: { A: 192.0.2.53 }
  www: { A: 192.0.2.80 }
YAML
fi
cat > "$SEC/zones/example.com.yaml" <<YAML
zone: example.com
ttl: 300
soa: { primary: ns1, contact: hostmaster, serial: 2026120601, minimum: 60 }
ns: [ns1]
dnssec: { key: keys/example.com.pem }
records:
  ns1: { A: 192.0.2.53 }
  "@": { MX: "10 mail", TXT: "v=spf1 -all" }
  mail: { A: 192.0.2.25 }
  www: { CNAME: static }
  static: { A: 192.0.2.200 }
  _sip._udp: { SRV: "10 100 5060 static" }
regions:
  uk:
    location: [51.51, -0.13]
    countries: [GB]
    servers:
      lon1: { address: $SECUK, port: $SECSIP, check: sip-options-udp }
  sg:
    location: [1.35, 103.82]
    servers:
      sin1: { address: $SECSG, port: $SECSIP, check: sip-options-udp }
services:
  sip: { regions: [uk, sg], transports: [udp, tcp], ttl: 1, failover: 2, fallback: [uk, sg] }
YAML

# Feature probes (see the top of this file).
seccheck=$($BIN check --config "$SEC/sipsteer.yaml" 2>&1 || true)
check "dnssec check accepts the signed zone" ": ok (" "$seccheck"
SEC_STEERED=yes; grep -q "are not signed yet" <<<"$seccheck" && SEC_STEERED=no

SECDS=$({ $BIN dnssec ds --config "$SEC/sipsteer.yaml" 2>/dev/null || true; } | grep '^example.com. .* DS ' | head -1 || true)
NETDS=$({ $BIN dnssec ds --config "$SEC/sipsteer.yaml" 2>/dev/null || true; } | grep '^example.net. .* DS ' | head -1 || true)
check "dnssec ds" "example.com. 300 IN DS $SECTAG 13 2 " "$SECDS"

$BIN serve --config "$SEC/sipsteer.yaml" 2>"$SEC/serve.log" &
SECPID=$!
PIDS+=($SECPID)
for _ in $(seq 50); do dig +short +time=1 +tries=1 @127.0.0.1 -p "$SECPORT" static.example.com A 2>/dev/null | grep -q . && break; sleep 0.2; done
sec_states() { curl -s "http://127.0.0.1:$SECADMIN/v1/servers" | python3 -c '
import json, sys
for s in json.load(sys.stdin)["servers"]:
    print("%s=%s" % (s["server"], s["state"]))' 2>/dev/null || true; }
for _ in $(seq 40); do
  st=$(sec_states); grep -q '^lon1=up' <<<"$st" && grep -q '^sin1=up' <<<"$st" && break; sleep 0.25
done
check "dnssec both regions up" "sin1=up" "$(sec_states)"

SECDNSKEY=$(dig +short @127.0.0.1 -p "$SECPORT" example.com DNSKEY | head -1)
SEC_DENIAL=no
dig +dnssec +norec @127.0.0.1 -p "$SECPORT" no-such-name.example.com A | grep -qE 'IN[[:space:]]+NSEC[[:space:]]' && SEC_DENIAL=yes
echo "dnssec features: signed steered answers=$SEC_STEERED, NXDOMAIN proofs=$SEC_DENIAL, rollover=$SEC_ROLL"

# kdig +dnssec straight at sipsteer.
kd() { { kdig @127.0.0.1 -p "$SECPORT" +dnssec +norec +timeout=2 +retry=0 "$@" || true; } | sed 's/[[:space:]]\+/ /g'; }
out=$(kd example.com DNSKEY)
check "kdig dnssec DNSKEY" "example.com. 300 IN DNSKEY 257 3 13 " "$out"
check "kdig dnssec DNSKEY signed" "RRSIG DNSKEY 13 2 300 " "$out"
check "kdig dnssec DO echoed" "Version: 0; flags: do;" "$out"
out=$(kd static.example.com A)
check "kdig dnssec static A" "static.example.com. 300 IN A 192.0.2.200" "$out"
check "kdig dnssec static RRSIG" "static.example.com. 300 IN RRSIG A 13 3 300 " "$out"
check "kdig dnssec RRSIG key tag" " $SECTAG example.com. " "$out"
out=$(kd static.example.com AAAA)
check "kdig dnssec nodata NSEC" 'static.example.com. 60 IN NSEC \000.static.example.com. A RRSIG NSEC' "$out"

# delv (BIND's validator, no cache) with the DNSKEY as trust anchor.
printf 'trust-anchors { example.com. static-key %s "%s"; };\n' \
  "$(cut -d' ' -f1-3 <<<"$SECDNSKEY")" "$(cut -d' ' -f4- <<<"$SECDNSKEY" | tr -d ' ')" > "$SEC/anchors.conf"
dv() { delv @127.0.0.1 -p "$SECPORT" -a "$SEC/anchors.conf" +root=example.com +nortrace "$@" 2>&1 || true; }
check "delv static A" "; fully validated" "$(dv static.example.com A)"
out=$(dv www.example.com A)
check "delv CNAME chain" "; fully validated" "$out"
check "delv CNAME chain target" "192.0.2.200" "$out"
check "delv MX" "; fully validated" "$(dv example.com MX)"
check "delv SRV" "; fully validated" "$(dv _sip._udp.example.com SRV)"
check "delv DNSKEY" "; fully validated" "$(dv example.com DNSKEY)"
check "delv nodata" "; negative response, fully validated" "$(dv static.example.com AAAA)"
check "delv empty non-terminal" "; negative response, fully validated" "$(dv _udp.example.com TXT)"
check "delv server host name" "; fully validated" "$(dv lon1.uk.sip.example.com A)"
if [ "$SEC_STEERED" = yes ]; then
  check "delv steered NAPTR" "; fully validated" "$(dv sip.example.com NAPTR)"
  check "delv steered SRV" "; fully validated" "$(dv _sip._udp.sip.example.com SRV)"
  check "delv steered A" "; fully validated" "$(dv sip.example.com A)"
else
  check_not "delv steered NAPTR unsigned" "; fully validated" "$(dv sip.example.com NAPTR)"
fi
if [ "$SEC_DENIAL" = yes ]; then
  out=$(kd no-such-name.example.com A | sed 's/NXNAME/TYPE128/')
  check "kdig nxdomain compact denial NSEC" 'no-such-name.example.com. 60 IN NSEC \000.no-such-name.example.com. RRSIG NSEC TYPE128' "$out"
  check "kdig nxdomain compact denial signed" "no-such-name.example.com. 60 IN RRSIG NSEC 13 3 60 " "$out"
  check "delv nxdomain" "; negative response, fully validated" "$(dv no-such-name.example.com A)"
else
  check_not "delv nxdomain unproven" "fully validated" "$(dv no-such-name.example.com A)"
fi

# ldns-verify-zone on the signed static RRsets as served (with DO=1), the DNSKEY as trust
# anchor. sipsteer has no AXFR and compact denial has no NSEC chain, so the NSECs are left out
# and the only errors allowed are the missing NSECs; a bad or expired signature is an error
# line of its own ("Bogus DNSSEC signature for NAME TYPE").
{
  for q in "example.com SOA" "example.com NS" "example.com DNSKEY" "example.com MX" "example.com TXT" \
           "ns1.example.com A" "mail.example.com A" "www.example.com CNAME" "static.example.com A" \
           "_sip._udp.example.com SRV" "lon1.uk.sip.example.com A" "sin1.sg.sip.example.com A"; do
    # shellcheck disable=SC2086
    dig +dnssec +norec +noall +answer @127.0.0.1 -p "$SECPORT" $q
  done
} | sort -u > "$SEC/static.zone"
echo "example.com. 300 IN DNSKEY $SECDNSKEY" > "$SEC/dnskey.key"
out=$(ldns-verify-zone -V 3 -k "$SEC/dnskey.key" "$SEC/static.zone" 2>&1 || true)
check "ldns-verify-zone DNSKEY matches the anchor" "Cannot chase the root: All OK" "$out"
check_not "ldns-verify-zone every signature verifies" "Error:" "$(grep -v 'Error: there is no NSEC(3) for ' <<<"$out")"
check "ldns-verify-zone saw every signed set" "rrsigs=12" "rrsigs=$(grep -c $'\tRRSIG\t' "$SEC/static.zone" || true)"

# Unbound: validator + subnet cache, aggressive NSEC, stub-zone to sipsteer, the DS as anchor.
cat > "$SEC/unbound.conf" <<CONF
server:
  interface: 127.0.0.1
  port: $SECUNB
  do-daemonize: no
  username: ""
  chroot: ""
  directory: "$SEC"
  pidfile: ""
  use-syslog: no
  logfile: "$SEC/unbound.log"
  verbosity: 1
  val-log-level: 2
  access-control: 127.0.0.0/8 allow
  do-not-query-localhost: no
  do-ip6: no
  qname-minimisation: no
  module-config: "subnetcache validator iterator"
  send-client-subnet: 127.0.0.1
  max-client-subnet-ipv4: 24
  aggressive-nsec: yes
  trust-anchor: "$SECDS"
stub-zone:
  name: "example.com"
  stub-addr: 127.0.0.1@$SECPORT
CONF
if [ "$SEC_ROLL" = yes ]; then
  printf 'server:\n  trust-anchor: "%s"\nstub-zone:\n  name: "example.net"\n  stub-addr: 127.0.0.1@%s\n' "$NETDS" "$SECPORT" >> "$SEC/unbound.conf"
fi
unbound-checkconf "$SEC/unbound.conf" >/dev/null
unbound -d -c "$SEC/unbound.conf" &
PIDS+=($!)

# BIND named: validating, every query forwarded to sipsteer (nothing leaves loopback), the DS
# as a static trust anchor, no validate-except.
cat > "$SEC/named.conf" <<CONF
options {
  directory "$SEC";
  pid-file "$SEC/named.pid";
  session-keyfile "$SEC/session.key";
  managed-keys-directory "$SEC";
  listen-on port $SECNAMED { 127.0.0.1; };
  listen-on-v6 { none; };
  recursion yes;
  allow-query { 127.0.0.1; };
  dnssec-validation yes;
  forward only;
  forwarders { 127.0.0.1 port $SECPORT; };
  notify no;
};
trust-anchors { example.com. static-ds $(cut -d' ' -f5-7 <<<"$SECDS") "$(cut -d' ' -f8- <<<"$SECDS" | tr -d ' ')"; };
$([ "$SEC_ROLL" = yes ] && echo "trust-anchors { example.net. static-ds $(cut -d' ' -f5-7 <<<"$NETDS") \"$(cut -d' ' -f8- <<<"$NETDS" | tr -d ' ')\"; };")
logging { channel f { file "$SEC/named.log"; severity info; }; category default { f; }; category dnssec { f; }; };
CONF
named-checkconf "$SEC/named.conf"
named -f -c "$SEC/named.conf" &
PIDS+=($!)
for p in $SECUNB $SECNAMED; do
  for _ in $(seq 50); do dig +short +time=1 +tries=1 @127.0.0.1 -p "$p" static.example.com A 2>/dev/null | grep -q . && break; sleep 0.2; done
done

# q RESOLVER-PORT NAME TYPE [dig options]: "STATUS FLAGS" then the answer section, one line.
q() {
  local p=$1; shift
  { dig +dnssec +time=3 +tries=2 @127.0.0.1 -p "$p" "$@" || true; } | awk '
    /status:/ { s=$0; sub(/.*status: /, "", s); sub(/,.*/, "", s) }
    /^;; flags:/ { f=$0; sub(/^;; flags: /, "", f); sub(/;.*/, "", f) }
    /^;; ANSWER SECTION:/ { a=1; next } /^$/ { a=0 }
    a && $4 != "RRSIG" { gsub(/[ \t]+/, " "); ans=ans " | " $0 }
    END { printf "status=%s flags=[%s]%s\n", s, f, ans }'
}
UK=81.2.69.0/24; SG=116.14.1.0/24
for r in unbound:$SECUNB named:$SECNAMED; do
  n=${r%%:*}; p=${r#*:}
  check "$n static A ad" "status=NOERROR flags=[qr rd ra ad]" "$(q "$p" static.example.com A)"
  out=$(q "$p" www.example.com A)
  check "$n CNAME chain ad" "status=NOERROR flags=[qr rd ra ad]" "$out"
  check "$n CNAME chain answer" "static.example.com. 300 IN A 192.0.2.200" "$(sed 's/ [0-9]* IN A / 300 IN A /' <<<"$out")"
  check "$n MX ad" "status=NOERROR flags=[qr rd ra ad]" "$(q "$p" example.com MX)"
  out=$(q "$p" static.example.com AAAA)
  check "$n nodata ad" "status=NOERROR flags=[qr rd ra ad]" "$out"
  check_not "$n nodata has no answer" " | " "$out"
  check "$n server host name ad" "status=NOERROR flags=[qr rd ra ad] | lon1.uk.sip.example.com." "$(q "$p" lon1.uk.sip.example.com A)"
done

# Steered answers: NAPTR -> SRV -> A for two regions by ECS (Unbound) and for the resolver's
# own address (named: no ECS, the service's fallback order, uk first).
if [ "$SEC_STEERED" = yes ]; then
  out=$(q $SECUNB sip.example.com NAPTR +subnet=$UK)
  check "unbound steered NAPTR uk ad" "flags=[qr rd ra ad]" "$out"
  check "unbound steered NAPTR uk" '"S" "SIP+D2U" "" _sip._udp.sip.example.com.' "$out"
  out=$(q $SECUNB _sip._udp.sip.example.com SRV +subnet=$UK)
  check "unbound steered SRV uk ad" "flags=[qr rd ra ad]" "$out"
  check "unbound steered SRV uk first" "SRV 10 100 $SECSIP lon1.uk.sip.example.com." "$out"
  out=$(q $SECUNB _sip._udp.sip.example.com SRV +subnet=$SG)
  check "unbound steered SRV sg ad" "flags=[qr rd ra ad]" "$out"
  check "unbound steered SRV sg first" "SRV 10 100 $SECSIP sin1.sg.sip.example.com." "$out"
  out=$(q $SECUNB sip.example.com A +subnet=$UK)
  check "unbound steered A uk ad" "flags=[qr rd ra ad]" "$out"
  check "unbound steered A uk" "IN A $SECUK" "$out"
  out=$(q $SECUNB sip.example.com A +subnet=$SG)
  check "unbound steered A sg ad" "flags=[qr rd ra ad]" "$out"
  check "unbound steered A sg" "IN A $SECSG" "$out"
  out=$(q $SECNAMED sip.example.com NAPTR)
  check "named steered NAPTR ad" "flags=[qr rd ra ad]" "$out"
  out=$(q $SECNAMED _sip._udp.sip.example.com SRV)
  check "named steered SRV ad" "flags=[qr rd ra ad]" "$out"
  check "named steered SRV uk first" "SRV 10 100 $SECSIP lon1.uk.sip.example.com." "$out"
  out=$(q $SECNAMED sip.example.com A)
  check "named steered A ad" "flags=[qr rd ra ad]" "$out"
  check "named steered A uk" "IN A $SECUK" "$out"
else
  skip "steered answers with AD=1 through unbound and named" "signed steered answers"
  check "unbound steered NAPTR unsigned is bogus" "status=SERVFAIL" "$(q $SECUNB sip.example.com NAPTR +subnet=$UK)"
  check "named steered A unsigned is bogus" "status=SERVFAIL" "$(q $SECNAMED sip.example.com A)"
fi

# Names that do not exist, then every existing name again: with aggressive NSEC no proof may
# ever deny a name that exists (the cached NSECs must cover nothing but the names asked).
for nx in no-such-name a.example.com zzz _tcp.static mail0 lon0.uk.sip lon2.uk.sip sip0 uk.sip0; do
  case $nx in *.example.com) ;; *) nx=$nx.example.com ;; esac
  for p in $SECUNB $SECNAMED; do q "$p" "$nx" A >/dev/null; q "$p" "$nx" A +subnet=$UK >/dev/null; done
done
for r in unbound:$SECUNB named:$SECNAMED; do
  n=${r%%:*}; p=${r#*:}
  out=$(q "$p" no-such-name.example.com A)
  if [ "$SEC_DENIAL" = yes ]; then
    check "$n nxdomain ad" "flags=[qr rd ra ad]" "$out"
    check "$n nxdomain status" "status=NXDOMAIN" "$(sed 's/status=NOERROR \(flags=[^]]*\]\)$/status=NXDOMAIN \1/' <<<"$out")"
  else
    check "$n nxdomain without proof is bogus" "status=SERVFAIL" "$out"
  fi
  denied=""
  for e in "example.com SOA" "ns1.example.com A" "mail.example.com A" "www.example.com CNAME" "static.example.com A" \
           "_sip._udp.example.com SRV" "_udp.example.com TXT" "sip.example.com A" "uk.sip.example.com A" "_sip._udp.sip.example.com SRV" \
           "lon1.uk.sip.example.com A" "sin1.sg.sip.example.com A" "sg.sip.example.com NAPTR"; do
    # shellcheck disable=SC2086
    for o in "" "+subnet=$UK"; do
      s=$(q "$p" $e $o); grep -q "status=NXDOMAIN" <<<"$s" && denied="$denied $e"
    done
  done
  check "$n aggressive nsec denies no existing name" "denied=[]" "denied=[${denied# }]"
done

# A health flip: the uk server stops answering; uk clients get sg, still validated.
kill "$SECUKPID" 2>/dev/null || true
for _ in $(seq 40); do grep -q '^lon1=down' <<<"$(sec_states)" && break; sleep 0.25; done
check "dnssec flip lon1 down" "lon1=down" "$(sec_states)"
sleep 2   # the steered TTL (1 s) runs out in the resolvers' caches
if [ "$SEC_STEERED" = yes ]; then
  out=$(q $SECUNB _sip._udp.sip.example.com SRV +subnet=$UK)
  check "unbound after flip SRV uk ad" "flags=[qr rd ra ad]" "$out"
  check "unbound after flip SRV uk goes to sg" "SRV 10 100 $SECSIP sin1.sg.sip.example.com." "$out"
  out=$(q $SECUNB sip.example.com A +subnet=$UK)
  check "unbound after flip A uk ad" "flags=[qr rd ra ad]" "$out"
  check "unbound after flip A uk goes to sg" "IN A $SECSG" "$out"
  out=$(q $SECNAMED sip.example.com A)
  check "named after flip A ad" "flags=[qr rd ra ad]" "$out"
  check "named after flip A goes to sg" "IN A $SECSG" "$out"
else
  skip "AD=1 after a health flip" "signed steered answers"
  out=$(dig +short @127.0.0.1 -p "$SECPORT" sip.example.com A +subnet=$UK)
  check "dnssec flip: sipsteer answers sg to uk" "$SECSG" "$out"
fi
check "unbound after flip static ad" "flags=[qr rd ra ad]" "$(q $SECUNB static.example.com A +subnet=$UK)"

# A ZSK roll in example.net, step by step (sipsteer steps at each 1 s rescan; the DNSKEY TTL
# is 2 s): published (three DNSKEYs, the old ZSK signs), active (the new ZSK signs), the old
# ZSK removed (two DNSKEYs). Both resolvers must answer with AD=1 at every step.
if [ "$SEC_ROLL" = yes ]; then
  check "dnssec ds of the keys directory zone" "example.net. 2 IN DS " "$NETDS"
  # "N TAG": DNSKEY count and the key tag of www's RRSIG.
  netkeys() {
    local n t
    n=$(kd example.net DNSKEY | grep -c ' IN DNSKEY ' || true)
    t=$(kd www.example.net A | sed -n 's/.* IN RRSIG A 13 3 2 [0-9]* [0-9]* \([0-9]*\) example.net. .*/\1/p' | head -1)
    echo "$n $t"
  }
  roll_ad() { # step name
    local r n p
    for r in unbound:$SECUNB named:$SECNAMED; do
      n=${r%%:*}; p=${r#*:}
      check "$n AD=1 during a ZSK roll: $1" "status=NOERROR flags=[qr rd ra ad] | www.example.net." "$(q "$p" www.example.net A)"
    done
  }
  before=$(netkeys)
  check "zsk roll: two DNSKEYs before" "2 " "$before"
  roll_ad "before"
  out=$($BIN dnssec roll zsk --config "$SEC/sipsteer.yaml" 2>&1 || true)
  check "dnssec roll zsk" "example.net" "$out"
  for _ in $(seq 40); do [ "$(netkeys | cut -d' ' -f1)" = 3 ] && break; sleep 0.25; done
  now=$(netkeys)
  check "zsk roll: the new ZSK is published" "3 " "$now"
  roll_ad "published"
  for _ in $(seq 60); do now=$(netkeys); [ "${now#* }" != "${before#* }" ] && break; sleep 0.25; done
  check "zsk roll: www is signed before and after" "tags=ok" "tags=$([[ "${before#* } ${now#* }" =~ ^[0-9]+\ [0-9]+$ ]] && echo ok)"
  check_not "zsk roll: the new ZSK signs" " ${before#* }" " ${now#* }"
  roll_ad "active"
  for _ in $(seq 60); do [ "$(netkeys | cut -d' ' -f1)" = 2 ] && break; sleep 0.25; done
  check "zsk roll: the old ZSK is removed" "2 ${now#* }" "$(netkeys)"
  roll_ad "old ZSK removed"
  out=$($BIN dnssec status --config "$SEC/sipsteer.yaml" 2>&1 | sed 's/[[:space:]]\+/ /g' || true)
  check "dnssec status: the new ZSK active" "zsk 2 ${now#* } active" "$out"
  check "dnssec status: the old ZSK removed" "zsk 1 ${before#* } removed" "$out"
else
  skip "AD=1 across a ZSK roll" "sipsteer dnssec roll"
fi
