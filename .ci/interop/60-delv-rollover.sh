# BIND's delv validates a signed zone through a ZSK roll and a KSK roll (keys directory,
# TTL 1 s, no propagation delay, rescan 1 s), with the first KSK's DS as trust anchor, then
# the new one's.
RPORT=$(free_base 1)
RDIR="$WORK/rollover"
mkdir -p "$RDIR/zones"
cat > "$RDIR/sipsteer.yaml" <<YAML
listen: { dns: ["127.0.0.1:$RPORT"], admin: "off" }
zones: zones
health: { check: none }
reload: { rescan: 1s }
YAML
cat > "$RDIR/zones/example.com.yaml" <<'YAML'
zone: example.com
ttl: 1
soa: { primary: ns1, contact: hostmaster, serial: 1, minimum: 1 }
ns: [ns1]
records:
  ns1: { A: 192.0.2.53 }
  www: { A: 192.0.2.80, ttl: 1 }
dnssec: { keys: keys, propagation: 0s }
YAML
$BIN serve --config "$RDIR/sipsteer.yaml" 2>"$RDIR/serve.log" &
RPID=$!
PIDS+=($RPID)
for _ in $(seq 50); do dig +short +time=1 +tries=1 @127.0.0.1 -p "$RPORT" www.example.com A >/dev/null 2>&1 && break; sleep 0.2; done

anchor() { # file: the DS lines `dnssec ds` prints, as delv trust anchors
  $BIN dnssec ds --config "$RDIR/sipsteer.yaml" |
    awk '{ printf "trust-anchors { %s static-ds %s %s %s \"%s\"; };\n", $1, $5, $6, $7, $8 }' > "$1"
}
validate() { # anchors file, name, type
  delv @127.0.0.1 -p "$RPORT" -a "$1" +root=example.com "$2" "$3" 2>&1
}
sig_tag() { # the key tag of the RRSIG over www's A
  dig +dnssec +short @127.0.0.1 -p "$RPORT" www.example.com A | awk '$1 == "A" { print $7 }'
}
wait_for() { # command that must succeed within 10 s
  for _ in $(seq 50); do if eval "$1" >/dev/null 2>&1; then return 0; fi; sleep 0.2; done; return 1
}

anchor "$RDIR/old.conf"
check "delv rollover: first keys" "; fully validated" "$(validate "$RDIR/old.conf" www.example.com A)"
before=$(sig_tag)
$BIN dnssec roll zsk --config "$RDIR/sipsteer.yaml" >/dev/null
wait_for '[ "$(sig_tag)" != "$before" ]' || true
check "delv rollover: the new ZSK signs" "zsk  2" \
  "$($BIN dnssec status --config "$RDIR/sipsteer.yaml" | grep "active" | grep "$(sig_tag)")"
check "delv rollover: after the ZSK roll" "; fully validated" "$(validate "$RDIR/old.conf" www.example.com A)"
$BIN dnssec roll ksk --config "$RDIR/sipsteer.yaml" >/dev/null
wait_for '[ "$(dig +short @127.0.0.1 -p "$RPORT" example.com CDS | wc -l)" = 2 ]' || true
$BIN dnssec ds-seen --config "$RDIR/sipsteer.yaml" >/dev/null
wait_for '[ "$(dig +short @127.0.0.1 -p "$RPORT" example.com CDS | wc -l)" = 1 ]' || true
anchor "$RDIR/new.conf"
check "delv rollover: a new DS" "1" "$(wc -l < "$RDIR/new.conf")"
check "delv rollover: DNSKEY with the old DS" "; fully validated" "$(validate "$RDIR/old.conf" example.com DNSKEY)"
check "delv rollover: DNSKEY with the new DS" "; fully validated" "$(validate "$RDIR/new.conf" example.com DNSKEY)"
check "delv rollover: www with the new DS" "; fully validated" "$(validate "$RDIR/new.conf" www.example.com A)"
check "delv rollover: the anchors differ" "differ" "$(cmp -s "$RDIR/old.conf" "$RDIR/new.conf" || echo differ)"
# Stopped here: a server still rescanning while the work directory is removed would write
# first keys into the emptied keys directory.
kill "$RPID" 2>/dev/null || true
wait "$RPID" 2>/dev/null || true
