#!/usr/bin/env bash
# Fuzzing: builds the cargo-fuzz targets under fuzz/ and runs each for a short bounded time
# from the committed seeds. Fails on any crash, panic, leak or timeout a target reports.
#   FUZZ_SECONDS=N   seconds per target (default 20)
#   FUZZ_TARGETS="a b"  which targets (default: all five)
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${FUZZ_SECONDS:-20}"
targets="${FUZZ_TARGETS:-dns_respond sip_response zone_map geoip_reader load_reply}"

if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi

# cargo-fuzz needs nightly features: a nightly toolchain if rustup has one, else stable
# with RUSTC_BOOTSTRAP.
toolchain=()
if command -v rustup >/dev/null 2>&1 && rustup toolchain list | grep -q '^nightly'; then
    toolchain=(+nightly)
else
    export RUSTC_BOOTSTRAP=1
fi

for t in $targets; do
    corpus="fuzz/corpus/$t"
    mkdir -p "$corpus"
    echo "== fuzz $t for ${seconds}s"
    # New inputs go to fuzz/corpus (ignored by git); fuzz/seeds is read only.
    cargo ${toolchain[@]+"${toolchain[@]}"} fuzz run "$t" "$corpus" "fuzz/seeds/$t" -- \
        -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1
done
