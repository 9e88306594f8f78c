#!/usr/bin/env bash
# Interop: real DNS and GeoIP tools against a running sipsteer.
#  - dig (bind9-dnsutils) queries the sample zone over UDP and TCP, with ECS
#  - mmdblookup (mmdb-bin) reads a database built by `sipsteer geoip build`
#  - sipp (sip-tester) answers sipsteer's SIP OPTIONS probes with 200 and 503
#  - unbound (installed when missing) resolves the steered names through sipsteer with its
#    ECS subnet cache
#  - kdig (knot-dnsutils, installed when missing) over DNS over TLS and DNS over HTTPS (GET
#    and POST) with a self-signed certificate made by openssl
#  - delv (bind9-dnsutils) validates a signed zone through a ZSK roll and a KSK roll
#  - unbound and BIND named as validating resolvers of a signed zone, delv, kdig +dnssec and
#    ldns-verify-zone (60-dnssec.sh)
#  - kamailio with TLS probed by sip-options-tls, and baresip registering over TLS through the
#    steered NAPTR/SRV answers over IPv4 and IPv6 (70-sip-tls.sh)
# Each file installs its Debian packages when missing. docs/interop.md describes every check,
# and which ones wait for features the binary under test may lack (printed as `skip`).
set -euo pipefail
cd "$(dirname "$0")/.."

need() { command -v "$1" >/dev/null 2>&1; }
if ! need dig || ! need mmdblookup || ! need sipp || ! need curl; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq bind9-dnsutils mmdb-bin sip-tester curl >/dev/null
  else
    echo "interop: dig, mmdblookup, sipp and curl are needed (run as root to install them)" >&2
    exit 1
  fi
fi

# SIPSTEER_BIN: a release binary already built (by .ci/run); else build one.
if [ -z "${SIPSTEER_BIN:-}" ]; then cargo build --release --quiet; fi
BIN=${SIPSTEER_BIN:-target/release/sipsteer}
WORK=$(mktemp -d)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$WORK"; }
trap cleanup EXIT

pass=0; fail=0; skipped=0
check() { # name, expected substring, actual
  if grep -qF -- "$2" <<<"$3"; then pass=$((pass+1)); echo "ok   $1";
  else fail=$((fail+1)); echo "FAIL $1: expected [$2] in:"; echo "$3" | sed 's/^/     /'; fi
}
check_not() { # name, substring that must be absent, actual
  if ! grep -qF -- "$2" <<<"$3"; then pass=$((pass+1)); echo "ok   $1";
  else fail=$((fail+1)); echo "FAIL $1: unexpected [$2] in:"; echo "$3" | sed 's/^/     /'; fi
}
skip() { # what, the feature the binary under test lacks
  skipped=$((skipped+1)); echo "skip $1: needs $2"
}

# INTEROP_ONLY="60 70": only the suites whose file names start with these prefixes.
# free_base N: a port P in 10000-29999 (below the kernel's ephemeral range, where clients'
# ports come from) such that P..P+N-1 are free on 127.0.0.1 for both UDP and TCP.
free_base() {
  python3 - "$1" <<'PY'
import random, socket, sys
n = int(sys.argv[1])
def free(port):
    for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
        s = socket.socket(socket.AF_INET, kind)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        finally:
            s.close()
    return True
for _ in range(1000):
    base = random.randrange(10000, 30000 - n)
    if all(free(base + i) for i in range(n)):
        print(base)
        sys.exit(0)
sys.exit("interop: no free ports")
PY
}

for t in $(ls .ci/interop/*.sh | sort); do
  if [ -n "${INTEROP_ONLY:-}" ]; then
    want=no
    for o in $INTEROP_ONLY; do case $(basename "$t") in "$o"*) want=yes ;; esac; done
    [ "$want" = yes ] || continue
  fi
  # shellcheck source=/dev/null
  source "$t"
done

echo "interop: $pass passed, $fail failed, $skipped skipped (features this binary lacks)"
[ "$fail" = 0 ]
