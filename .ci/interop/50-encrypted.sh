# kdig (knot-dnsutils) over DNS over TLS and DNS over HTTPS (GET and POST) against the sample
# config with a self-signed certificate made by openssl; kdig checks it against that file.
if ! need kdig || ! need openssl; then
  if [ "$(id -u)" = 0 ]; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq knot-dnsutils openssl >/dev/null
  else
    echo "interop: kdig and openssl are needed for the encrypted transports" >&2
    exit 1
  fi
fi

ENC=$WORK/encrypted
mkdir -p "$ENC"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
  -subj "/CN=localhost" -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
  -keyout "$ENC/key.pem" -out "$ENC/cert.pem" 2>/dev/null
EPORT=$(free_base 3)
TPORT=$((EPORT + 1)); HPORT=$((EPORT + 2))
sed -e "s#^  dns: .*#  dns: [\"127.0.0.1:$EPORT\"]\n  tls: [\"127.0.0.1:$TPORT\"]\n  https: [\"127.0.0.1:$HPORT\"]#" \
  -e "s#state_file: .*#state_file: $ENC/state.json#" "$WORK/sipsteer.yaml" > "$ENC/sipsteer.yaml"
printf 'tls: { certificate: %s/cert.pem, key: %s/key.pem }\n' "$ENC" "$ENC" >> "$ENC/sipsteer.yaml"
out=$($BIN check --config "$ENC/sipsteer.yaml" 2>&1 || true)
check "check accepts the certificate" ": ok (" "$out"
$BIN serve --config "$ENC/sipsteer.yaml" 2>"$ENC/serve.log" &
PIDS+=($!)
KDIG=(kdig @127.0.0.1 +tls-ca="$ENC/cert.pem" +tls-hostname=localhost +timeout=2 +retry=0)
for _ in $(seq 50); do "${KDIG[@]}" -p "$TPORT" +tls +short static.example.com A >/dev/null 2>&1 && break; sleep 0.2; done

out=$("${KDIG[@]}" -p "$TPORT" +tls static.example.com A || true)
check "kdig dot static A" "static.example.com. 300 IN A 192.0.2.200" "$(sed 's/[[:space:]]\+/ /g' <<<"$out")"
check "kdig dot protocol" "TLS" "$out"
out=$("${KDIG[@]}" -p "$TPORT" +tls _sip._udp.sip.example.com SRV +subnet=81.2.69.0/24 +padding || true)
check "kdig dot ecs uk srv" "10 100 5060 lon1.uk.sip.example.com." "$out"
check "kdig dot ecs echoed" "CLIENT-SUBNET: 81.2.69.0/24/24" "$out"
check "kdig dot padding" "PADDING:" "$out"
out=$("${KDIG[@]}" -p "$HPORT" +https sip.example.com A +subnet=116.14.0.0/16 || true)
check "kdig doh post singapore A" "192.0.2.60" "$out"
check "kdig doh post" "(HTTP/2-POST)-(localhost/dns-query)-(status: 200)" "$out"
out=$("${KDIG[@]}" -p "$HPORT" +https-get sip.example.com NAPTR +subnet=24.0.0.0/24 || true)
check "kdig doh get" "(HTTP/2-GET)-(localhost/dns-query)-(status: 200)" "$out"
check "kdig doh get naptr" '10 20 "S" "SIP+D2T" "" _sip._tcp.sip.example.com.' "$out"
out=$("${KDIG[@]}" -p "$HPORT" +https-get nope.example.com A || true)
check "kdig doh get nxdomain" "NXDOMAIN" "$out"
