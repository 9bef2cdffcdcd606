#!/usr/bin/env bash
# run_rfc2544.sh: kwik_rfc2544.lua over every frame size. pktgen loads one pcap per port at
# start-up (-s P:FILE), so this starts pktgen once per capture of make_pcaps.sh's OUT_DIR, under
# `script` (pktgen needs a terminal), each run appending its row to RESULTS.csv and its trials
# to RESULTS.jsonl; the last run prints the table of every size. The KWIK_* settings of
# kwik_rfc2544.lua pass through the environment (perf/pktgen/README.md).
#
#   KWIK_TRIAL_S=30 perf/pktgen/run_rfc2544.sh /srv/kwik-pcaps -- \
#       -l 0-2 -n 4 -a 0000:3b:00.0 -- -P -T -m "[1:2].0"
#
# Exit: 0 every size measured; 1 a pktgen run failed (the others still run); 2 bad arguments.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

usage() {
    cat <<'EOF'
usage: run_rfc2544.sh [options] PCAP_DIR -- PKTGEN_ARGUMENTS...
  --pktgen CMD     the pktgen program (words split on spaces)                     (pktgen)
  --port P         the pktgen port that sends (its -s P:FILE and KWIK_TX_PORT)          (0)
  --sizes LIST     stream-data sizes to run, comma-separated      (every size in pcaps.tsv)
  --results BASE   results: BASE.csv and BASE.jsonl, started afresh   (PCAP_DIR/rfc2544)
PKTGEN_ARGUMENTS: EAL arguments, then -- and pktgen's own (-P -T -m ...), without -s and -f.
EOF
}

bad() {
    echo "run_rfc2544.sh: $1" >&2
    echo "run run_rfc2544.sh --help for the options" >&2
    exit 2
}

pktgen_cmd=pktgen
port=0
sizes=""
results=""
pcap_dir=""
while (( $# > 0 )); do
    case "$1" in
        -h|--help) usage; exit 0 ;;
        --pktgen|--port|--sizes|--results)
            (( $# >= 2 )) || bad "$1: needs a value"
            case "$1" in
                --pktgen) pktgen_cmd=$2 ;;
                --port) port=$2 ;;
                --sizes) sizes=$2 ;;
                --results) results=$2 ;;
            esac
            shift 2 ;;
        --) shift; break ;;
        -*) bad "unknown option $1" ;;
        *)
            [[ -z "$pcap_dir" ]] || bad "PCAP_DIR: given twice ('$pcap_dir', '$1')"
            pcap_dir=$1
            shift ;;
    esac
done
pktgen_args=("$@")
[[ -n "$pcap_dir" ]] || bad "PCAP_DIR: missing (make_pcaps.sh's OUT_DIR)"
[[ -f "$pcap_dir/pcaps.tsv" ]] || bad "PCAP_DIR: $pcap_dir/pcaps.tsv not found (run make_pcaps.sh first)"
if ! [[ "$port" =~ ^[0-9]+$ ]] || (( 10#$port > 63 )); then
    bad "--port: '$port' is not a port number 0-63"
fi
(( ${#pktgen_args[@]} > 0 )) || bad "PKTGEN_ARGUMENTS: missing after -- (EAL arguments, -- and pktgen's -m ...)"
for a in "${pktgen_args[@]}"; do
    [[ "$a" != "-s" && "$a" != "-f" ]] || bad "PKTGEN_ARGUMENTS: leave out $a (this script adds -s and -f)"
done
read -r -a pktgen_words <<<"$pktgen_cmd"
(( ${#pktgen_words[@]} > 0 )) || bad "--pktgen: empty"
command -v "${pktgen_words[0]}" >/dev/null || bad "--pktgen: ${pktgen_words[0]} not found (build it: perf/pktgen/README.md)"
command -v script >/dev/null || { echo "run_rfc2544.sh: 'script' not found (Debian package bsdutils)" >&2; exit 1; }
results=${results:-$pcap_dir/rfc2544}

# The captures, in pcaps.tsv's order, or those of --sizes.
declare -a pcaps=()
while IFS=$'\t' read -r size file _ _; do
    [[ "$size" == size ]] && continue
    if [[ -n "$sizes" ]]; then
        [[ ",$sizes," == *",$size,"* ]] || continue
    fi
    pcaps+=("$file")
done <"$pcap_dir/pcaps.tsv"
(( ${#pcaps[@]} > 0 )) || bad "--sizes: none of '$sizes' is in $pcap_dir/pcaps.tsv"

rm -f "$results.csv" "$results.jsonl"
failed=0
for pcap in "${pcaps[@]}"; do
    [[ -f "$pcap" ]] || { echo "run_rfc2544.sh: $pcap (from pcaps.tsv) is missing" >&2; failed=1; continue; }
    command_line=$(printf '%q ' "${pktgen_words[@]}" "${pktgen_args[@]}" -s "$port:$pcap" -f "$here/kwik_rfc2544.lua")
    echo "run_rfc2544.sh: $command_line"
    if ! KWIK_PCAP=$pcap KWIK_RESULTS=$results KWIK_TX_PORT=$port KWIK_QUIT=1 \
        script -qfec "$command_line" /dev/null </dev/null; then
        echo "run_rfc2544.sh: the run for $pcap failed" >&2
        failed=1
    fi
done
echo "run_rfc2544.sh: results in $results.csv and $results.jsonl"
exit "$failed"
