#!/usr/bin/env bash
# Time from a SIP server going silent to a fresh resolution getting the next region, over
# TRIALS independent server pairs (default 20) at the default probe settings; prints every
# trial, the median and the p95. Compare two builds, e.g. one from main and this one:
#   bench/failover-time.sh /path/to/sipsteer-before; bench/failover-time.sh target/release/sipsteer
# Usage: bench/failover-time.sh [BINARY] [TRIALS]     (run from the repository root)
set -euo pipefail
BIN="${1:-target/release/sipsteer}"; TRIALS="${2:-20}"; BASE="${BASE:-23000}"
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
python3 bench/failover_time.py "$BIN" "$TRIALS" "$BASE" "$WORK"
