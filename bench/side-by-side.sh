# bench/side-by-side.sh: sourced by sitting.sh and latency.sh, which run the reflector, gdnsd
# and sipsteer binaries side by side, each pinned to CPU 1. Needs ROOT and KIT set; sets
# WORK (a scratch directory) and PIDS, and stops everything started here on exit.
WORK="$(mktemp -d)"
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  PORT=5301 "$KIT/peers/gdnsd/stop.sh" >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT
[[ -s "$KIT/data/GeoLite2-City.mmdb" ]] || "$KIT/setup.sh"

# A copy of bench/sipsteer.yaml on PORT, admin API off; prints its path.
config() {
  local port="$1" dir="$WORK/cfg-$1"
  mkdir -p "$dir/data"
  cp -r "$ROOT/bench/zones" "$dir/zones"
  ln -sf "$KIT/data/GeoLite2-City.mmdb" "$dir/data/"
  sed -e "s/127.0.0.1:5300/127.0.0.1:$port/" -e 's/admin: "127.0.0.1:8054"/admin: "off"/' \
    "$ROOT/bench/sipsteer.yaml" > "$dir/sipsteer.yaml"
  echo "$dir/sipsteer.yaml"
}

# The UDP reflector on 127.0.0.1:5399; its pid is the last of PIDS.
start_reflector() {
  cc -O2 -o "$WORK/udp_reflect" "$KIT/limit/udp_reflect.c"
  taskset -c 1 "$WORK/udp_reflect" 127.0.0.1 5399 & PIDS+=($!)
}

# gdnsd on 127.0.0.1:5301 (the shared kit's peer scripts).
start_gdnsd() {
  PORT=5301 taskset -c 1 "$KIT/peers/gdnsd/start.sh" >/dev/null
}
