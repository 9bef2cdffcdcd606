#!/usr/bin/env bash
# Runs the kwikd configuration fuzzer for a bounded time on a corpus seeded with the shipped
# configuration; fails on any crash. Usage: run_config_fuzz.sh <fuzzer> <seed.toml>
# KWIK_CONFIG_FUZZ_SECONDS sets the run length (default 30).
set -euo pipefail
fuzzer=$1
seed=$2
work=$(mktemp -d "${TMPDIR:-/tmp}/kwik-config-fuzz.XXXXXX")
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/corpus" "$work/artifacts"
cp "$seed" "$work/corpus/kwikd.toml"
printf '[kwikd]\nworker_lcores = [1, 2]\n[[port]]\ndevice = "net_null0"\naddresses = ["fd00::1/64"]\n' > "$work/corpus/small.toml"
if ! "$fuzzer" -max_total_time="${KWIK_CONFIG_FUZZ_SECONDS:-30}" -timeout=10 -rss_limit_mb=2048 \
        -artifact_prefix="$work/artifacts/" "$work/corpus" 2>"$work/log"; then
    tail -n 40 "$work/log"
    for f in "$work"/artifacts/*; do
        [ -e "$f" ] && { echo "crashing input $f:"; od -A x -t x1z "$f" | head -n 20; }
    done
    exit 1
fi
grep -E "^Done|DONE" "$work/log" | tail -n 2
