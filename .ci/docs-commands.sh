#!/usr/bin/env bash
# Docs commands: every command in the fenced ```sh blocks (indented ones in lists too) of
# README.md, docs/*.md and geoip/README.md runs against a real sipsteer serving a copy of the
# sample config, and must succeed. `cargo run --release --` and a leading `sipsteer` run the
# release binary; the sample's ports 5353/8053 are moved to free ones (in the config and the
# commands alike).
# curl fails on an HTTP error and dig on an answer that is not NOERROR with records, so a
# command that "runs" but answers 400 or NODATA fails here.
#   bash .ci/docs-commands.sh            (run by .ci/run)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

need() { command -v "$1" >/dev/null 2>&1; }
if ! need dig || ! need mmdblookup || ! need curl; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq bind9-dnsutils mmdb-bin curl >/dev/null
  else
    echo "docs-commands: dig, mmdblookup and curl are needed (run as root to install them)" >&2
    exit 1
  fi
fi

if [ -z "${SIPSTEER_BIN:-}" ]; then cargo build --release --quiet; fi
BIN=${SIPSTEER_BIN:-$ROOT/target/release/sipsteer}
WORK=$(mktemp -d)
SERVE_PID=
cleanup() { [ -n "$SERVE_PID" ] && kill "$SERVE_PID" 2>/dev/null; rm -rf "$WORK"; }
trap cleanup EXIT

# The sample config, copied so that state files and built databases stay out of the tree.
cp -r sipsteer.yaml zones geoip "$WORK/"
free_port() { echo $((20000 + RANDOM % 20000)); }
DNS_PORT=$(free_port); ADMIN_PORT=$(free_port)
sed -i -e "s/127.0.0.1:5353/127.0.0.1:$DNS_PORT/" -e "s/127.0.0.1:8053/127.0.0.1:$ADMIN_PORT/" \
  "$WORK/sipsteer.yaml"

# Wrappers: the real tool, made to fail where a person would see a failure.
mkdir -p "$WORK/bin"
cat > "$WORK/bin/curl" <<WRAP
#!/usr/bin/env bash
exec $(command -v curl) --fail-with-body --silent --show-error --max-time 10 "\$@"
WRAP
cat > "$WORK/bin/dig" <<WRAP
#!/usr/bin/env bash
out=\$($(command -v dig) +time=2 +tries=1 "\$@") || exit 1
echo "\$out"
grep -q "status: NOERROR" <<<"\$out" && ! grep -q "ANSWER: 0," <<<"\$out"
WRAP
chmod +x "$WORK/bin/curl" "$WORK/bin/dig"
export PATH="$WORK/bin:$PATH"
export TOKEN=docs-commands-token SIPSTEER_ADMIN_TOKEN=docs-commands-token

# One command a line: file:line<TAB>command (backslash continuations joined, comments kept).
extract() {
  awk '
    FNR == 1 { inblock = 0 }
    /^[[:space:]]*```sh[[:space:]]*$/ { inblock = 1; next }
    /^[[:space:]]*```/ { inblock = 0; next }
    inblock {
      line = $0
      if (cmd == "") { start = FILENAME ":" FNR; sub(/^[[:space:]]+/, "", line) }
      if (line ~ /\\$/) { sub(/\\$/, "", line); cmd = cmd line " "; next }
      cmd = cmd line
      if (cmd !~ /^[[:space:]]*(#.*)?$/) { print start "\t" cmd }
      cmd = ""
    }' README.md docs/*.md geoip/README.md
}

rewrite() { # the command as run: the release binary, the moved ports
  sed -e "s#cargo run --release --#$BIN#g" -e "s#^sipsteer #$BIN #" \
      -e "s/127.0.0.1:8053/127.0.0.1:$ADMIN_PORT/g" -e "s/-p 5353/-p $DNS_PORT/g"
}

is_serve() { [[ "${1%%#*}" =~ (^|[[:space:]])serve([[:space:]]|$) ]]; }

pass=0; fail=0; skip=0
while IFS=$'\t' read -r where cmd; do
  run=$(rewrite <<<"$cmd")
  if [[ "$cmd" == "cargo test"* ]]; then
    skip=$((skip+1)); echo "skip $where: $cmd (the test suite runs on its own in .ci/run)"; continue
  fi
  if [[ "$cmd" == ".ci/fuzz.sh"* || "$cmd" == *"fuzz run "* ]]; then
    skip=$((skip+1)); echo "skip $where: $cmd (the fuzz targets run on their own in .ci/run)"; continue
  fi
  if is_serve "$cmd"; then # started in the background; it must come up ready
    (cd "$WORK" && exec bash -c "exec $run") >"$WORK/serve.log" 2>&1 &
    SERVE_PID=$!
    for _ in $(seq 100); do
      curl -o /dev/null "http://127.0.0.1:$ADMIN_PORT/readyz" 2>/dev/null && break
      sleep 0.2
    done
    if kill -0 "$SERVE_PID" 2>/dev/null && curl -o /dev/null "http://127.0.0.1:$ADMIN_PORT/readyz"; then
      pass=$((pass+1)); echo "ok   $where: $cmd"
    else
      fail=$((fail+1)); echo "FAIL $where: $cmd"; sed 's/^/     /' "$WORK/serve.log"
    fi
    continue
  fi
  rc=0
  out=$(cd "$WORK" && bash -o pipefail -c "$run" 2>&1 </dev/null) || rc=$?
  if [ "$rc" = 0 ]; then
    pass=$((pass+1)); echo "ok   $where: $cmd"
  else
    fail=$((fail+1)); echo "FAIL $where (exit $rc): $cmd"; echo "$out" | sed 's/^/     /'
  fi
done < <(extract)

echo "docs-commands: $pass passed, $fail failed"
[ "$fail" = 0 ] && [ "$pass" -gt 0 ]
