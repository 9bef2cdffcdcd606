#!/usr/bin/env bash
# The appliance's main job on its embedded default, without a NIC: first the codec and kwikd's
# pipeline on recorded traffic (kwik-pcapgen -> kwik-dump, and kwikd on a net_pcap port storing
# every stream), then a real multipath transfer: kwik-peer -> three impaired, rate-limited paths
# through network namespaces -> kwikd (net_af_packet) and kwik-cp, with kwikctl's live view.
# Usage: deploy/demo.sh [BUILD_DIR]   (deploy/setup.sh demo builds and calls it)
set -euo pipefail
top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${1:-$top/build}
case "$build" in /*) ;; *) build=$top/$build ;; esac
gen=$build/tools/pcapgen/kwik-pcapgen
dump=$build/tools/dump/kwik-dump
for tool in "$gen" "$dump"; do
    [ -x "$tool" ] || { echo "demo: $tool is not built (run deploy/setup.sh build)" >&2; exit 1; }
done
work=$(mktemp -d "${TMPDIR:-/tmp}/kwik-demo.XXXXXX")
trap 'rm -rf "$work"' EXIT

echo "== kwik-pcapgen: generating traffic from deploy/demo/traffic.toml"
"$gen" --config "$top/deploy/demo/traffic.toml" -o "$work/demo.pcap" --manifest "$work/manifest.json"
echo "== kwik-dump: first packets, one JSON object each"
{ "$dump" "$work/demo.pcap" || true; } | head -n 3 | cut -c1-200 || true
echo "== kwik-dump: decode, verify, reassemble, compare with the manifest"
"$dump" --summary-only --expect "$work/manifest.json" "$work/demo.pcap" > "$work/summary.json"
python3 - "$work/summary.json" "$work/manifest.json" "$work/demo.pcap" <<'PY'
import json, os, sys
summary = json.load(open(sys.argv[1]))["summary"]
manifest = json.load(open(sys.argv[2]))
streams = [s for c in summary["connections"] for s in c["streams"]]
complete = sum(1 for s in streams if s["complete"])
total_bytes = sum(s["final_size"] or 0 for s in streams)
print(f"packets        {summary['packets']} in {os.path.getsize(sys.argv[3])} bytes of pcap")
print(f"accepted       {summary['accepted']}  by type: "
      + ", ".join(f"{k} {v}" for k, v in sorted(summary["accepted_by_type"].items())))
drops = summary["dropped_by_reason"]
print(f"dropped        {summary['dropped']}  by reason: "
      + (", ".join(f"{k} {v}" for k, v in sorted(drops.items())) or "none"))
print(f"connections    {len(summary['connections'])}, paths per connection "
      + ", ".join(str(len(c["paths"])) for c in summary["connections"]))
print(f"streams        {complete}/{len(streams)} complete, {total_bytes} bytes, "
      f"every CRC32C equal to the generator's manifest")
impaired = manifest["counts"]
print("impairments    " + ", ".join(f"{k} {v}" for k, v in sorted(impaired.items())))
PY

echo "== kwikd: the appliance on a net_pcap port (deploy/kwikd.toml), receiving that traffic"
# The same traffic, addressed to the net_pcap port's MAC, is kwikd's rx; its three connections'
# file-store endpoints write every stream, which is compared with the manifest.
rm -rf "$work/kwikd" && mkdir -p "$work/kwikd"
for c in 0 1 2; do mkdir -p "$work/kwikd/streams/demo-$c"; done
"$gen" --config "$top/deploy/demo/traffic.toml" --server-mac 02:70:63:61:70:00 \
    -o "$work/kwikd/traffic.pcap" --manifest "$work/kwikd/manifest.json"
kwikd=$build/dataplane/kwikd
args=(--config "$top/deploy/kwikd.toml" --name "kwikdemo$$"
      --set "port[0].device=net_pcap0,rx_pcap=$work/kwikd/traffic.pcap,tx_pcap=$work/kwikd/tx.pcap")
for c in 0 1 2; do args+=(--set "connection[$c].endpoint_arg=$work/kwikd/streams/demo-$c"); done
"$kwikd" "${args[@]}" > "$work/kwikd/log" 2>&1 &
pid=$!
sleep 3
kill -TERM "$pid"
wait "$pid" || { cat "$work/kwikd/log"; echo "demo: kwikd failed" >&2; exit 1; }
grep -E '^(port |  queues|  checksums|kwikd: )' "$work/kwikd/log"
python3 - "$work/kwikd" "$top/tests/e2e" <<'PY'
import json, os, sys
work = sys.argv[1]
sys.path.insert(0, sys.argv[2])
from kwik_e2e import stored_streams
m = json.load(open(os.path.join(work, "manifest.json")))
good = 0
for c in range(3):  # the generator's connection c is kwikd's [[connection]] c + 1
    good += stored_streams(os.path.join(work, "streams", "demo-%d" % c), m, c + 1,
                           [s for s in m["streams"] if s["connection"] == c])[0]
total = sum(s["final_size"] for s in m["streams"])
print(f"kwikd stored {good}/{len(m['streams'])} streams ({total} bytes) byte for byte, CRC32C equal to the manifest")
sys.exit(0 if good == len(m["streams"]) else 1)
PY
echo "== the main job: a multipath transfer through the appliance (deploy/demo/multipath_demo.py)"
# kwik-peer in a client namespace -> 3 rate-limited, impaired paths (kwik-relay, tc tbf) ->
# kwikd on net_af_packet (no hugepages) with kwik-cp; kwikctl's live view; every byte checked.
if [ "$(id -u)" -eq 0 ]; then
    python3 "$top/deploy/demo/multipath_demo.py" "$build"
else
    sudo python3 "$top/deploy/demo/multipath_demo.py" "$build"
fi
echo "== demo passed"
