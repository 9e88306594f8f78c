# dig against the sample config on a free port.
PORT=$(free_base 12)
sed -e "s/127.0.0.1:5353/127.0.0.1:$PORT/" -e 's/127.0.0.1:8053/off/' sipsteer.yaml > "$WORK/sipsteer.yaml"
sed -i -e "s#zones: zones/#zones: $PWD/zones/#" -e "s#database: geoip/#database: $PWD/geoip/#" "$WORK/sipsteer.yaml"
sed -i -e "s#state_file: .*#state_file: $WORK/state.json#" "$WORK/sipsteer.yaml"
$BIN serve --config "$WORK/sipsteer.yaml" 2>"$WORK/serve.log" &
PIDS+=($!)
for _ in $(seq 50); do dig +short +time=1 +tries=1 @127.0.0.1 -p "$PORT" static.example.com A >/dev/null 2>&1 && break; sleep 0.2; done

out=$(dig +norec @127.0.0.1 -p "$PORT" static.example.com A)
check "dig udp static A" "static.example.com.	300	IN	A	192.0.2.200" "$out"
check "dig aa flag" "flags: qr aa;" "$out"
out=$(dig +tcp @127.0.0.1 -p "$PORT" nope.example.com A)
check "dig tcp nxdomain" "status: NXDOMAIN" "$out"
out=$(dig @127.0.0.1 -p "$PORT" _udp.example.com A)
check "dig empty non-terminal" "status: NOERROR" "$out"
out=$(dig +edns=1 +noednsneg @127.0.0.1 -p "$PORT" static.example.com A)
check "dig edns version 1" "status: BADVERS" "$out"
out=$(dig @127.0.0.1 -p "$PORT" example.org A)
check "dig refused" "status: REFUSED" "$out"
out=$(dig @127.0.0.1 -p "$PORT" example.com AXFR)
check "dig axfr refused" "Transfer failed" "$out"
