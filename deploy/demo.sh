#!/usr/bin/env bash
# The appliance's main job on its embedded default, without a NIC: Kwik traffic from
# deploy/demo/traffic.toml is generated to a pcap, then decoded, every CRC32C verified, every
# stream reassembled by offset and checked against the generator's manifest.
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
echo "== demo passed"
