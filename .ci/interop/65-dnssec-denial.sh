# delv (BIND's validator, bind9-dnsutils) against a signed static zone, with its DNSKEY as
# the trust anchor: names that do not exist are denied by RFC 9824 compact denial (NOERROR,
# an NSEC at the name with types RRSIG NSEC NXNAME) and validate; so do the signed RFC 8482
# answer to ANY and a CNAME into a name that does not exist. Then Unbound, validating with an
# RFC 8198 aggressive NSEC cache, in front of it.
if need delv; then
  DPORT=$(free_base 1)
  D="$WORK/denial"
  mkdir -p "$D/zones"
  cat > "$D/sipsteer.yaml" <<YAML
listen: { dns: ["127.0.0.1:$DPORT"], admin: "off" }
zones: zones
health: { check: none }
YAML
  cat > "$D/zones/example.com.yaml" <<'YAML'
zone: example.com
ttl: 300
soa: { primary: ns1, contact: hostmaster@example.com, serial: 7, minimum: 60 }
ns: [ns1]
records:
  ns1: { A: 192.0.2.53 }
  www: { A: 192.0.2.80 }
  deep.a.b: { TXT: "deep" }
  dangling: { CNAME: nothere }
dnssec: { key: zone.pem }
YAML
  $BIN dnssec keygen "$D/zone.pem" >/dev/null
  $BIN serve --config "$D/sipsteer.yaml" 2>"$D/serve.log" &
  PIDS+=($!)
  for _ in $(seq 50); do dig +short +time=1 +tries=1 @127.0.0.1 -p "$DPORT" example.com DNSKEY | grep -q . && break; sleep 0.2; done
  # shellcheck disable=SC2046
  set -- $(dig +short @127.0.0.1 -p "$DPORT" example.com DNSKEY)
  echo "trust-anchors { example.com. static-key $1 $2 $3 \"${*:4}\"; };" > "$D/anchors.conf"
  v() { delv @127.0.0.1 -p "$DPORT" -a "$D/anchors.conf" +root=example.com "$@" 2>&1; }
  out=$(v nope.example.com A)
  check "delv nxname proof validates" "; negative response, fully validated" "$out"
  check "delv nxname nsec" "nope.example.com. NSEC \\000.nope.example.com. RRSIG NSEC TYPE128" "$out"
  out=$(v x.a.b.example.com AAAA)
  check "delv nxname below an empty non-terminal" "; negative response, fully validated" "$out"
  out=$(v a.b.example.com A)
  check "delv empty non-terminal is nodata, not denied" "a.b.example.com. NSEC \\000.a.b.example.com. RRSIG NSEC" "$out"
  out=$(v dangling.example.com A)
  check "delv cname into a missing name" "; fully validated" "$out"
  check "delv cname target denied" "nothere.example.com.	60	IN	\\-A	;-\$NXRRSET" "$out"
  out=$(v www.example.com ANY)
  check "delv signed rfc8482 any" "www.example.com.	60	IN	HINFO	\"RFC8482\" \"\"" "$out"
  check "delv signed any validates" "; fully validated" "$out"
  out=$(dig +norec @127.0.0.1 -p "$DPORT" nope.example.com A)
  check "dig without do: nxdomain as before" "status: NXDOMAIN" "$out"

  # Unbound validating with the zone's key as trust anchor and an RFC 8198 aggressive NSEC
  # cache: denials validate (AD), and after denials of names next to existing ones in
  # canonical order, the existing names still resolve (no NSEC covers them).
  if need unbound; then
    VPORT=$((DPORT + 1))
    cat > "$D/unbound.conf" <<CONF
server:
  interface: 127.0.0.1
  port: $VPORT
  do-daemonize: no
  username: ""
  chroot: ""
  directory: "$D"
  pidfile: ""
  use-syslog: no
  logfile: "$D/unbound.log"
  verbosity: 1
  access-control: 127.0.0.0/8 allow
  do-not-query-localhost: no
  do-ip6: no
  qname-minimisation: no
  module-config: "validator iterator"
  aggressive-nsec: yes
  trust-anchor: "example.com. DNSKEY $1 $2 $3 ${*:4}"
stub-zone:
  name: "example.com"
  stub-addr: 127.0.0.1@$DPORT
CONF
    unbound-checkconf "$D/unbound.conf" >/dev/null
    unbound -d -c "$D/unbound.conf" &
    PIDS+=($!)
    for _ in $(seq 50); do dig +short +time=1 +tries=1 @127.0.0.1 -p "$VPORT" www.example.com A 2>/dev/null | grep -q . && break; sleep 0.2; done
    u() { dig +time=3 +tries=2 @127.0.0.1 -p "$VPORT" "$@"; }
    out=$(u nope.example.com A)
    check "unbound validates a compact denial" "flags: qr rd ra ad;" "$out"
    check "unbound compact denial is noerror" "status: NOERROR" "$out"
    for n in www- wwv wwx x.www \\000.www a www.a.b x.a.b ns0 ns2 dangling- nothere; do
      u "$n.example.com" A >/dev/null
    done
    for n in www ns1; do
      out=$(u "$n.example.com" A)
      check "unbound aggressive cache still resolves $n" "flags: qr rd ra ad;" "$out"
      check "unbound $n answered" "ANSWER: 1," "$out"
    done
    out=$(u deep.a.b.example.com TXT)
    check "unbound aggressive cache still resolves deep.a.b" "ANSWER: 1," "$out"
  fi
else
  echo "skip delv (bind9-dnsutils has no delv here)"
fi
