#!/usr/bin/env bash
# Monitoring examples: the alert rules pass `promtool check rules` and their unit tests
# `promtool test rules` (Debian package `prometheus`), and the Grafana dashboard is valid JSON. That every metric they name is
# exported is checked against a real scrape in tests/it/ops_scrape.rs.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v promtool >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null
  else
    echo "promtool: the Debian package prometheus is needed (run as root to install it)" >&2
    exit 1
  fi
fi

pass=0; fail=0
if promtool check rules examples/prometheus/alerts.yaml; then pass=$((pass+1)); else fail=$((fail+1)); fi
if promtool test rules examples/prometheus/alerts.test.yaml; then pass=$((pass+1)); else fail=$((fail+1)); fi
for f in examples/grafana/*.json; do
  if python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["panels"], "no panels"' "$f"; then
    pass=$((pass+1)); echo "ok   $f is a dashboard"
  else
    fail=$((fail+1)); echo "FAIL $f"
  fi
done
echo "promtool: $pass passed, $fail failed"
[ "$fail" = 0 ]
