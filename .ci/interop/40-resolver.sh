# A real resolver in front of sipsteer: Unbound with its subnet cache, stub-zoned to a
# sipsteer of its own, resolving sip.example.com NAPTR -> SRV -> A with ECS. Then sipsteer is
# paused and the answers must come from Unbound's cache, still one region per client subnet.
if ! command -v unbound >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq unbound >/dev/null
  else
    echo "interop: unbound is needed (run as root to install it)" >&2
    exit 1
  fi
fi
RPORT=$((PORT + 10)); UPORT=$((PORT + 11))
mkdir -p "$WORK/resolver"
sed -e "s/127.0.0.1:$PORT/127.0.0.1:$RPORT/" "$WORK/sipsteer.yaml" > "$WORK/resolver/sipsteer.yaml"
sed -i -e "s#state_file: .*#state_file: $WORK/resolver/state.json#" "$WORK/resolver/sipsteer.yaml"
$BIN serve --config "$WORK/resolver/sipsteer.yaml" 2>"$WORK/resolver/serve.log" &
RPID=$!
PIDS+=($RPID)
cat > "$WORK/resolver/unbound.conf" <<CONF
server:
  interface: 127.0.0.1
  port: $UPORT
  do-daemonize: no
  username: ""
  chroot: ""
  directory: "$WORK/resolver"
  pidfile: ""
  use-syslog: no
  logfile: "$WORK/resolver/unbound.log"
  verbosity: 1
  access-control: 127.0.0.0/8 allow
  do-not-query-localhost: no
  do-ip6: no
  qname-minimisation: no
  module-config: "subnetcache iterator"
  send-client-subnet: 127.0.0.1
  max-client-subnet-ipv4: 24
  max-client-subnet-ipv6: 56
stub-zone:
  name: "example.com"
  stub-addr: 127.0.0.1@$RPORT
CONF
unbound-checkconf "$WORK/resolver/unbound.conf" >/dev/null
unbound -d -c "$WORK/resolver/unbound.conf" &
PIDS+=($!)
for _ in $(seq 50); do dig +short +time=1 +tries=1 @127.0.0.1 -p "$RPORT" static.example.com A >/dev/null 2>&1 && break; sleep 0.2; done
for _ in $(seq 50); do dig +short +time=1 +tries=1 @127.0.0.1 -p "$UPORT" static.example.com A 2>/dev/null | grep -q . && break; sleep 0.2; done

rd() { dig +noall +answer +time=3 +tries=2 @127.0.0.1 -p "$UPORT" "$@" | sed 's/\t/ /g; s/  */ /g'; }
UK=81.2.69.0/24; SG=116.14.1.0/24
out=$(rd sip.example.com NAPTR +subnet=$UK)
check "unbound naptr" 'NAPTR 10 10 "S" "SIP+D2U" "" _sip._udp.sip.example.com.' "$out"
out=$(rd _sip._udp.sip.example.com SRV +subnet=$UK)
check "unbound srv uk first" "SRV 10 100 5060 lon1.uk.sip.example.com." "$out"
out=$(rd _sip._udp.sip.example.com SRV +subnet=$SG)
check "unbound srv sg first" "SRV 10 100 5060 sin1.sg.sip.example.com." "$out"
out=$(rd lon1.uk.sip.example.com A +subnet=$UK)
check "unbound srv target A" "lon1.uk.sip.example.com. 30 IN A 192.0.2.10" "$(sed 's/ [0-9]* IN / 30 IN /' <<<"$out")"
out=$(rd sip.example.com A +subnet=$UK)
check "unbound A uk" "IN A 192.0.2.1" "$out"
out=$(rd sip.example.com A +subnet=$SG)
check "unbound A sg" "IN A 192.0.2.60" "$out"
out=$(dig +time=3 +tries=2 @127.0.0.1 -p "$UPORT" sip.example.com AAAA +subnet=$SG)
check "unbound AAAA sg is nodata" "status: NOERROR" "$out"
check "unbound AAAA sg has no answer" "ANSWER: 0," "$out"
# sipsteer paused: the answers come from the subnet cache, still per client subnet (a miss
# would time out).
kill -STOP "$RPID"
out=$(rd sip.example.com A +subnet=$UK)
check "unbound cache uk" "IN A 192.0.2.1" "$out"
out=$(rd sip.example.com A +subnet=$SG)
check "unbound cache sg" "IN A 192.0.2.60" "$out"
out=$(rd _sip._udp.sip.example.com SRV +subnet=$SG)
check "unbound cache sg srv" "SRV 10 100 5060 sin1.sg.sip.example.com." "$out"
kill -CONT "$RPID"
