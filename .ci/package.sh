#!/usr/bin/env bash
# Packaging: the Debian package (cargo-deb) is built, installed with dpkg -i and exercised
# (`sipsteer check` on the installed config as the sipsteer user, the unit verified with
# systemd-analyze, a drain written to the state directory by the service user), then purged;
# then the static binary and the FROM scratch image (buildah; no base image is pulled).
# Runs as root (it installs a package).   bash .ci/package.sh
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

if [ "$(id -u)" != 0 ]; then
  echo "package: must run as root (dpkg -i)" >&2
  exit 1
fi
pass=0; fail=0
ok() { pass=$((pass+1)); echo "ok   $1"; }
bad() { fail=$((fail+1)); echo "FAIL $1"; }
check() { # name, command...
  local name=$1; shift
  if "$@"; then ok "$name"; else bad "$name"; fi
}

command -v cargo-deb >/dev/null 2>&1 || cargo install cargo-deb --locked --quiet
WORK=$(mktemp -d)
SERVE_PID=
cleanup() {
  [ -n "$SERVE_PID" ] && kill "$SERVE_PID" 2>/dev/null
  dpkg --purge sipsteer >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT

# --- the Debian package -------------------------------------------------------------------
# With SIPSTEER_BIN (.ci/run built the static binary already) the package takes that build.
DEB=$(cargo deb --quiet ${SIPSTEER_BIN:+--no-build --target x86_64-unknown-linux-gnu} 2>/dev/null | tail -n1)
[ -f "$DEB" ] || DEB=$(ls -t target/debian/sipsteer_*.deb | head -n1)
echo "package: $DEB"
dpkg -i "$DEB"

check "binary installed" test -x /usr/bin/sipsteer
check "version names the commit" bash -c \
  "/usr/bin/sipsteer --version | grep -Eq '^sipsteer [0-9.]+ \(commit ([0-9a-f]{12}|unknown)\)$'"
check "system user" getent passwd sipsteer
check "state dir owned by sipsteer" \
  test "$(stat -c %U "/var/lib/sipsteer")" = sipsteer
check "config is a conffile" \
  bash -c "dpkg-query -W -f='\${Conffiles}' sipsteer | grep -q ' /etc/sipsteer/sipsteer.yaml '"
check "installed config checks as the service user" \
  runuser -u sipsteer -- /usr/bin/sipsteer check --config /etc/sipsteer/sipsteer.yaml
UNIT=$(dpkg -L sipsteer | grep '/sipsteer.service$' | head -n1)
check "unit installed ($UNIT)" test -f "$UNIT"
if command -v systemd-analyze >/dev/null 2>&1; then
  check "systemd-analyze verify" systemd-analyze verify "$UNIT"
  check "systemd-analyze verify (example unit)" bash -c \
    "sed 's#/usr/local/bin/sipsteer#/usr/bin/sipsteer#g' examples/systemd/sipsteer.service > '$WORK/sipsteer.service' && systemd-analyze verify '$WORK/sipsteer.service'"
else
  echo "skip systemd-analyze verify: systemd-analyze is not installed"
fi
check "packaged unit = example unit with /usr/bin" bash -c \
  "diff <(grep -v '^#' packaging/debian/sipsteer.service) <(grep -v '^#' examples/systemd/sipsteer.service | sed 's#/usr/local/bin/#/usr/bin/#g')"

# The service user can keep forced states in /var/lib/sipsteer: serve the installed config on
# free ports, drain through the API, and find the drain in the state file.
PORT=$((20000 + RANDOM % 20000)); APORT=$((20000 + RANDOM % 20000))
chmod 0755 "$WORK"
install -d -o sipsteer "$WORK/etc"
sed -e "s/127.0.0.1:53\"/127.0.0.1:$PORT\"/" -e "s/127.0.0.1:8053/127.0.0.1:$APORT/" \
  -e "s#zones: zones/#zones: /etc/sipsteer/zones/#" /etc/sipsteer/sipsteer.yaml > "$WORK/etc/sipsteer.yaml"
cat >> "$WORK/etc/sipsteer.yaml" <<'YAML'
regions:
  lab:
    location: [0, 0]
    servers:
      lab1: { address: 127.0.0.1, check: none }
YAML
chmod 0644 "$WORK/etc/sipsteer.yaml"
runuser -u sipsteer -- env SIPSTEER_ADMIN_TOKEN=package-token \
  /usr/bin/sipsteer serve --config "$WORK/etc/sipsteer.yaml" >"$WORK/serve.log" 2>&1 &
SERVE_PID=$!
for _ in $(seq 100); do
  curl -sf -o /dev/null "http://127.0.0.1:$APORT/readyz" && break
  sleep 0.2
done
check "drain answered as the service user" curl -sf -X PUT -H "Authorization: Bearer package-token" \
  -d '{"state":"drain"}' "http://127.0.0.1:$APORT/v1/servers/lab/lab1/state" -o /dev/null
check "drain kept in /var/lib/sipsteer/state.json" grep -q '"drain' /var/lib/sipsteer/state.json
check "no error logged" bash -c "! grep -q ERROR '$WORK/serve.log'"
kill "$SERVE_PID" 2>/dev/null || sed 's/^/     /' "$WORK/serve.log"; wait "$SERVE_PID" 2>/dev/null || true; SERVE_PID=
dpkg --purge sipsteer >/dev/null
check "purge removes the state" test ! -e /var/lib/sipsteer

# --- the container image ------------------------------------------------------------------
if ! command -v buildah >/dev/null 2>&1; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq buildah >/dev/null 2>&1 || true
fi
if command -v buildah >/dev/null 2>&1; then
  if [ -z "${SIPSTEER_BIN:-}" ]; then
    RUSTFLAGS='-C target-feature=+crt-static' \
      cargo build --release --quiet --target x86_64-unknown-linux-gnu
  fi
  STATIC=target/x86_64-unknown-linux-gnu/release/sipsteer
  check "static binary" bash -c "file '$STATIC' | grep -q 'static' || ! ldd '$STATIC' >/dev/null 2>&1"
  check "static binary runs" "$STATIC" --version
  export STORAGE_DRIVER=vfs
  check "image builds FROM scratch" buildah bud --quiet -t localhost/sipsteer:ci .
  check "image runs sipsteer as uid 65532" bash -c \
    "buildah inspect --format '{{.OCIv1.Config.User}} {{.OCIv1.Config.Entrypoint}}' localhost/sipsteer:ci | grep -q '65532:65532 \[/sipsteer\]'"
  # Run it: chroot isolation needs no cgroup setup (crun refuses this host's hybrid cgroups).
  CTR=$(buildah from localhost/sipsteer:ci)
  check "image runs: --version" buildah run --isolation chroot "$CTR" -- /sipsteer --version
  check "image runs: check on the packaged config" buildah run --isolation chroot \
    -v "$ROOT/packaging:/etc/sipsteer:ro" "$CTR" -- /sipsteer check --config /etc/sipsteer/sipsteer.yaml
  buildah rm "$CTR" >/dev/null 2>&1 || true
  buildah rmi localhost/sipsteer:ci >/dev/null 2>&1 || true
else
  echo "skip image: neither buildah nor podman can be installed here"
fi

echo "package: $pass passed, $fail failed"
[ "$fail" = 0 ]
