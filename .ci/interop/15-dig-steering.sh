# dig with EDNS Client Subnet against the sample config started by 10-dig.sh.
out=$(dig @127.0.0.1 -p "$PORT" _sip._udp.sip.example.com SRV +subnet=81.2.69.0/24)
check "dig ecs uk srv tier 1" "10 100 5060 lon1.uk.sip.example.com." "$out"
check "dig ecs uk srv tier 2" "20 100 5060 ams1.ams.sip.example.com." "$out"
check "dig ecs echoed with scope" "CLIENT-SUBNET: 81.2.69.0/24/24" "$out"
out=$(dig +short @127.0.0.1 -p "$PORT" sip.example.com A +subnet=116.14.0.0/16)
check "dig ecs singapore A" "192.0.2.60" "$out"
out=$(dig @127.0.0.1 -p "$PORT" sip.example.com NAPTR +subnet=24.0.0.0/24)
check "dig naptr" '10 20 "S" "SIP+D2T" "" _sip._tcp.sip.example.com.' "$out"
check "dig naptr additional srv" "_sip._udp.sip.example.com. 30 IN SRV 10 100 5060 iad1.us-east.sip.example.com." "$(sed 's/\t/ /g' <<<"$out")"
out=$(dig +tcp @127.0.0.1 -p "$PORT" sip.example.com A +subnet=203.0.113.0/24)
check "dig tcp network override" "192.0.2.2" "$out"
out=$(dig @127.0.0.1 -p "$PORT" static.example.com A +subnet=81.2.69.0/24)
check "dig static scope 0" "CLIENT-SUBNET: 81.2.69.0/24/0" "$out"
