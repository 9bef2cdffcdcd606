#!/usr/bin/env bash
# Runs the KCP framing fuzzer for a bounded time on a corpus seeded by kcp_seed_writer; fails on
# any crash, printing the input in hex. Usage: run_kcp_fuzz.sh <fuzzer> <seed_writer>
# KWIK_KCP_FUZZ_SECONDS sets the run length (default 30).
set -euo pipefail
fuzzer=$1
seed_writer=$2
work=$(mktemp -d "${TMPDIR:-/tmp}/kwik-kcp-fuzz.XXXXXX")
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/corpus" "$work/seeds" "$work/artifacts"
"$seed_writer" "$work/seeds"
echo "run_kcp_fuzz: $(find "$work/seeds" -type f | wc -l) seeds, fuzzing for ${KWIK_KCP_FUZZ_SECONDS:-30}s"
if ! "$fuzzer" -max_total_time="${KWIK_KCP_FUZZ_SECONDS:-30}" -timeout=10 -rss_limit_mb=2048 \
        -max_len=16384 -artifact_prefix="$work/artifacts/" "$work/corpus" "$work/seeds" \
        2>"$work/log"; then
    tail -n 40 "$work/log"
    for f in "$work"/artifacts/*; do
        [ -e "$f" ] && { echo "crashing input $f:"; od -A x -t x1z "$f" | head -n 40; }
    done
    exit 1
fi
grep -E "^Done|DONE" "$work/log" | tail -n 2
