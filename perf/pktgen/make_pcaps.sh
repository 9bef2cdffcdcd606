#!/usr/bin/env bash
# make_pcaps.sh: the Kwik captures pktgen replays (one per stream-data size) and the kwikd
# [[connection]] blocks that accept them, written by kwik-pcapgen with the parameters of
# perf/kwikd_vs_testpmd.py: new data only, one stream frame per packet, every frame the same
# size, no ACKs, keep-alives or window updates in the capture (pktgen replays, it does not
# answer). Each size is its own connection (client port 40000 + its index), so the first pass
# of every capture is new data for kwikd; every later pass of a replay is duplicates.
#
#   perf/pktgen/make_pcaps.sh --server-mac 3c:fd:fe:12:34:56 build /srv/kwik-pcaps
#
# Writes OUT_DIR/kwik-<size>.pcap, OUT_DIR/connections.toml (the [[connection]] blocks and the
# [transport] values the captures need) and OUT_DIR/pcaps.tsv (size, file, packets, frame bytes).
# Exit: 0 done; 1 a tool failed or a capture came out wrong; 2 bad arguments (the flag named).
set -euo pipefail

usage() {
    cat <<'EOF'
usage: make_pcaps.sh --server-mac MAC [options] BUILD_DIR OUT_DIR
  --server-mac MAC     kwikd port's Ethernet address (the frames' destination; kwikd drops
                       unicast frames for other MACs as not_for_us)            (required)
  --sizes LIST         stream-data bytes per packet, comma-separated      (64,256,512,1024,1400)
  --packets N          packets per capture (pktgen holds each in an mbuf)            (16384)
  --paths N            paths of each connection, 10.0.<p>.2 -> 10.100.0.1:7707         (4)
  --streams N          streams of each connection; N must divide --packets             (16)
  --client-port PORT   client UDP port of the first size; size i uses PORT + i      (40000)
EOF
}

bad() { # a bad argument: say which, exit 2
    echo "make_pcaps.sh: $1" >&2
    echo "run make_pcaps.sh --help for the options" >&2
    exit 2
}

whole() { # whole FLAG VALUE MIN MAX
    [[ "$2" =~ ^[0-9]+$ ]] || bad "$1: '$2' is not a whole number"
    (( 10#$2 >= $3 && 10#$2 <= $4 )) || bad "$1: $2 is outside $3-$4"
}

server_mac=""
sizes="64,256,512,1024,1400"
packets=16384
paths=4
streams=16
client_port=40000
positional=()
while (( $# > 0 )); do
    case "$1" in
        -h|--help) usage; exit 0 ;;
        --server-mac|--sizes|--packets|--paths|--streams|--client-port)
            (( $# >= 2 )) || bad "$1: needs a value"
            case "$1" in
                --server-mac) server_mac=$2 ;;
                --sizes) sizes=$2 ;;
                --packets) packets=$2 ;;
                --paths) paths=$2 ;;
                --streams) streams=$2 ;;
                --client-port) client_port=$2 ;;
            esac
            shift 2 ;;
        --) shift; positional+=("$@"); break ;;
        -*) bad "unknown option $1" ;;
        *) positional+=("$1"); shift ;;
    esac
done
(( ${#positional[@]} == 2 )) || bad "BUILD_DIR and OUT_DIR: expected 2 arguments, got ${#positional[@]}"
build_dir=${positional[0]}
out_dir=${positional[1]}

[[ -n "$server_mac" ]] || bad "--server-mac: required (kwikd's port MAC: kwikd --check-config or dpdk-devbind.py/ip link)"
[[ "$server_mac" =~ ^[0-9A-Fa-f]{2}(:[0-9A-Fa-f]{2}){5}$ ]] || bad "--server-mac: '$server_mac' is not a MAC address"
whole --packets "$packets" 1 1000000
whole --paths "$paths" 1 64
whole --streams "$streams" 1 100000
whole --client-port "$client_port" 1 65535
(( packets % streams == 0 )) || bad "--packets: $packets is not a multiple of --streams ($streams)"
IFS=, read -r -a size_list <<<"$sizes"
(( ${#size_list[@]} >= 1 )) || bad "--sizes: empty"
for s in "${size_list[@]}"; do
    whole --sizes "$s" 1 8192
done
(( client_port + ${#size_list[@]} - 1 <= 65535 )) || bad "--client-port: $client_port + sizes runs past 65535"
pcapgen=$build_dir/tools/pcapgen/kwik-pcapgen
[[ -x "$pcapgen" ]] || bad "BUILD_DIR: $pcapgen is not built (ninja -C $build_dir tools/pcapgen/kwik-pcapgen)"
command -v python3 >/dev/null || { echo "make_pcaps.sh: python3 not found" >&2; exit 1; }
mkdir -p "$out_dir" || bad "OUT_DIR: cannot create $out_dir"

per_stream=$(( packets / streams ))
max_size=0
for s in "${size_list[@]}"; do (( s > max_size )) && max_size=$s; done
# Windows that cover a whole capture, as perf/kwikd_vs_testpmd.py sets them: the replay never
# waits for credit, so kwikd must never see data beyond what it granted at the start.
pow2_at_least() { local v=1; while (( v < $1 )); do v=$(( v * 2 )); done; echo "$v"; }
stream_window=$(pow2_at_least $(( per_stream * max_size )))
(( stream_window < 1048576 )) && stream_window=1048576
connection_window=$(pow2_at_least $(( packets * max_size )))
(( connection_window < 16777216 )) && connection_window=16777216
max_streams=$(( streams > 1024 ? streams : 1024 ))

toml=$out_dir/connections.toml
tsv=$out_dir/pcaps.tsv
{
    echo "# Written by perf/pktgen/make_pcaps.sh $(date -u +%Y-%m-%dT%H:%M:%SZ): the [[connection]] blocks for"
    echo "# the captures in this directory (server MAC $server_mac, $paths paths, $streams streams, $packets packets"
    echo "# each). Append them to kwikd's configuration (perf/pktgen/kwikd-pktgen.toml holds them for the"
    echo "# defaults). kwikd's [transport] must cover a whole capture and outlive the pauses between trials:"
    echo "#   stream_window = $stream_window"
    echo "#   connection_window = $connection_window"
    echo "#   max_streams = $max_streams"
    echo "#   max_packet_size = $(( max_size > 1400 ? max_size + 64 : 1400 ))"
    echo "#   keepalive_ms = 3600000"
    echo "#   idle_timeout_ms = 86400000"
    echo "# and the port: addresses = [\"10.100.0.1/16\"], kwik_ports = [7707], mtu >= $(( max_size + 100 ))."
} >"$toml"
printf 'size\tfile\tpackets\tframe_bytes\n' >"$tsv"

index=0
for s in "${size_list[@]}"; do
    port=$(( client_port + index ))
    pcap=$out_dir/kwik-$s.pcap
    "$pcapgen" -o "$pcap" --connections 1 --paths "$paths" --streams "$streams" \
        --stream-size $(( per_stream * s )) --max-frame-data "$s" --frames-per-packet 1 \
        --ack-every 0 --keepalive-every 0 --window-update-every 0 --server-mac "$server_mac" \
        --client-port "$port" --interval-us 1 --seed 1 >/dev/null
    # The capture must hold exactly one packet per frame, all of one size.
    read -r got frame < <(python3 - "$pcap" <<'EOF'
import struct, sys
sizes = set()
n = 0
with open(sys.argv[1], "rb") as f:
    head = f.read(24)
    if len(head) != 24 or struct.unpack("<I", head[:4])[0] != 0xA1B2C3D4:
        sys.exit("%s: not a little-endian pcap" % sys.argv[1])
    while True:
        rec = f.read(16)
        if len(rec) < 16:
            break
        incl = struct.unpack("<IIII", rec)[2]
        f.seek(incl, 1)
        sizes.add(incl)
        n += 1
print(n, ",".join(str(x) for x in sorted(sizes)))
EOF
)
    if [[ "$got" != "$packets" || "$frame" == *,* ]]; then
        echo "make_pcaps.sh: $pcap holds $got packets of frame sizes $frame; expected $packets of one size" >&2
        exit 1
    fi
    printf '%s\t%s\t%s\t%s\n' "$s" "$pcap" "$got" "$frame" >>"$tsv"
    {
        echo
        echo "# kwik-$s.pcap: $packets packets, $frame-byte frames, $s bytes of stream data each"
        echo "[[connection]]"
        echo "id = \"pktgen-$s\""
        echo "endpoint = \"discard\""
        for (( p = 1; p <= paths; p++ )); do
            echo "[[connection.path]]"
            echo "path_id = $p"
            echo "local = \"10.100.0.1:7707\""
            echo "remote = \"10.0.$p.2:$port\""
        done
    } >>"$toml"
    echo "make_pcaps.sh: $pcap: $got packets of $frame bytes (client port $port)"
    index=$(( index + 1 ))
done
echo "make_pcaps.sh: $toml: ${#size_list[@]} connection(s); $tsv"
