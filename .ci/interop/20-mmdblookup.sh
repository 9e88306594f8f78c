# mmdblookup (libmaxminddb) reads a database built by `sipsteer geoip build`.
$BIN geoip build geoip/sample.csv "$WORK/sample.mmdb" >/dev/null
out=$(mmdblookup --file "$WORK/sample.mmdb" --ip 81.2.69.160 country iso_code)
check "mmdblookup country" '"GB"' "$out"
out=$(mmdblookup --file "$WORK/sample.mmdb" --ip 81.2.69.160 city names en)
check "mmdblookup city" '"London"' "$out"
out=$(mmdblookup --file "$WORK/sample.mmdb" --ip 2a02:c7c::1 location latitude)
check "mmdblookup ipv6 latitude" '51.510000' "$out"
out=$(mmdblookup --file "$WORK/sample.mmdb" --ip 41.80.0.1 country iso_code)
check "mmdblookup country-only row" '"KE"' "$out"
out=$(mmdblookup --file "$WORK/sample.mmdb" --ip 192.0.2.1 2>&1 || true)
check "mmdblookup miss" 'Could not find an entry' "$out"
