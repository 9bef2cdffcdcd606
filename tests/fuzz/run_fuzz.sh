#!/usr/bin/env bash
# Runs one libFuzzer target for a bounded time over a fresh seed corpus; the meson 'fuzz' suite.
# Usage: run_fuzz.sh FUZZER SEED_WRITER PCAP_PAYLOADS_PY [PCAPGEN]
#   seeds: the packets SEED_WRITER serialises, plus the UDP payloads of the captures PCAPGEN
#   (kwik-pcapgen) writes, when given. Run length: KWIK_FUZZ_SECONDS (default 60).
# Fails when the fuzzer reports a crash, leak, timeout or OOM; the input that caused it is kept
# in fuzz-artifacts/ beside the fuzzer and printed in hex.
set -euo pipefail

if [[ $# -lt 3 ]]; then
    echo "usage: $0 FUZZER SEED_WRITER PCAP_PAYLOADS_PY [PCAPGEN]" >&2
    exit 2
fi
fuzzer=$1
seed_writer=$2
pcap_payloads=$3
pcapgen=${4:-}
seconds=${KWIK_FUZZ_SECONDS:-60}
python=${PYTHON3:-python3}

work=$(mktemp -d "${TMPDIR:-/tmp}/kwik-fuzz.XXXXXX")
trap 'rm -rf "$work"' EXIT
seeds=$work/seeds
corpus=$work/corpus
mkdir -p "$seeds" "$corpus" "$work/pcap"

"$seed_writer" "$seeds"

# kwik-pcapgen traffic profiles: defaults (data, ACK, keepalive, window-update packets); many small
# frames per packet with every priority over IPv6; random sizes with every impairment (the
# corrupted packets are seeds for the checksum paths); large frames.
pcapgen_profiles=(
    "--seed 1"
    "--seed 2 --frames-per-packet 8 --max-frame-data 150 --priorities normal,high,critical --ordered alternate --ipv6"
    "--seed 3 --connections 3 --paths 3 --stream-size 1-20000 --pattern random --loss 0.05 --reorder 0.1 --duplicate 0.05 --corrupt 0.05"
    "--seed 4 --streams 2 --stream-size 40000 --max-frame-data 8000 --pattern text"
)
if [[ -n $pcapgen && -x $pcapgen ]]; then
    made=0
    for i in "${!pcapgen_profiles[@]}"; do
        profile=${pcapgen_profiles[$i]}
        # shellcheck disable=SC2086 # the profile is a list of options
        if "$pcapgen" $profile -o "$work/pcap/profile$i.pcap" >"$work/pcapgen.log" 2>&1; then
            made=$((made + 1))
        else
            echo "run_fuzz: WARNING: kwik-pcapgen $profile failed:" >&2
            cat "$work/pcapgen.log" >&2
        fi
    done
    if ((made > 0)); then
        "$python" "$pcap_payloads" "$seeds" "$work"/pcap/*.pcap
    fi
else
    echo "run_fuzz: WARNING: no kwik-pcapgen (${pcapgen:-not built}); hand-made seeds only" >&2
fi

nseeds=$(find "$seeds" -type f | wc -l)
if ((nseeds == 0)); then
    echo "run_fuzz: FAIL: no seeds" >&2
    exit 1
fi
echo "run_fuzz: $nseeds seeds, fuzzing for ${seconds}s"

artifacts=$(dirname "$fuzzer")/fuzz-artifacts/$(date +%Y%m%d-%H%M%S)
mkdir -p "$artifacts"
rc=0
# -max_len above the 16384-byte packet limit, so the size checks get inputs on both sides.
"$fuzzer" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=16448 \
    -print_final_stats=1 -artifact_prefix="$artifacts/" "$corpus" "$seeds" || rc=$?

if ((rc != 0)); then
    echo "run_fuzz: FAIL: the fuzzer exited with $rc; inputs that failed:" >&2
    for f in "$artifacts"/*; do
        [[ -f $f ]] || continue
        echo "$f ($(stat -c %s "$f") bytes):" >&2
        od -An -tx1 -v "$f" | tr -d ' \n' | fold -w 128 >&2
        echo >&2
    done
    exit 1
fi
rmdir "$artifacts" 2>/dev/null || true
echo "run_fuzz: no crash in ${seconds}s; corpus grew to $(find "$corpus" -type f | wc -l) new inputs"
