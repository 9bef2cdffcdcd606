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
echo "== kwik-cp and kwikctl: the control process on a running kwikd, and the operator's view"
# kwikd replays the same traffic without end (infinite_rx) so that its counters move; kwik-cp
# attaches to its rings, and kwikctl reads and programs it over KCP with TLS and the pinned key.
cp=$build/controlplane/server/kwik_cp/kwik-cp
ctl=$build/controlplane/kwikctl/kwikctl
for tool in "$cp" "$ctl"; do
    [ -x "$tool" ] || { echo "demo: $tool is not built (run deploy/setup.sh build)" >&2; exit 1; }
done
mkdir -p "$work/cp" "$work/live"
for c in 0 1 2; do mkdir -p "$work/live/demo-$c"; done
region="kwikcp$$"
live=(--config "$top/deploy/kwikd.toml" --name "$region"
      --set "port[0].device=net_pcap0,rx_pcap=$work/kwikd/traffic.pcap,infinite_rx=1,tx_pcap=/dev/null")
for c in 0 1 2; do live+=(--set "connection[$c].endpoint_arg=$work/live/demo-$c"); done
"$kwikd" "${live[@]}" > "$work/live/kwikd.log" 2>&1 &
kwikd_pid=$!
(umask 077; openssl rand -hex 32 > "$work/cp/ops.secret")
printf '%s\n' '[kwik_cp]' 'server_id = "cp-demo"' 'listen = "127.0.0.1:0"' "kwikd_region = \"$region\"" \
    '[tls]' "certificate = \"$work/cp/cp.crt\"" "private_key = \"$work/cp/cp.key\"" \
    '[[auth.key]]' 'key_id = "ops"' "secret = \"$(cat "$work/cp/ops.secret")\"" 'roles = ["operator"]' \
    > "$work/cp/kwik-cp.toml"
"$cp" --config "$work/cp/kwik-cp.toml" > "$work/cp/stdout" 2> "$work/cp/log" &
cp_pid=$!
stop_live() {
    kill -TERM "$cp_pid" "$kwikd_pid" 2>/dev/null || true
    wait "$cp_pid" "$kwikd_pid" 2>/dev/null || true
}
trap 'stop_live; rm -rf "$work"' EXIT
port=""
for _ in $(seq 100); do
    port=$(sed -n 's/^kwik-cp: listening on port //p' "$work/cp/stdout")
    [ -n "$port" ] && break
    sleep 0.1
done
[ -n "$port" ] || { cat "$work/cp/log"; echo "demo: kwik-cp did not start" >&2; exit 1; }
KWIKCTL_PIN=$("$ctl" pin "$work/cp/cp.crt")
export KWIKCTL_SERVER="127.0.0.1:$port" KWIKCTL_KEY_ID=ops KWIKCTL_SECRET_FILE="$work/cp/ops.secret" KWIKCTL_PIN
# Ready once kwik-cp attached to kwikd and adopted its three static connections.
adopted() {
    "$ctl" --json show connections 2>/dev/null |
        python3 -c 'import json, sys; sys.exit(len(json.load(sys.stdin)["tables"][0]["rows"]) < 3)' 2>/dev/null
}
for _ in $(seq 100); do adopted && break; sleep 0.2; done
adopted || { cat "$work/cp/log" "$work/live/kwikd.log"; echo "demo: kwik-cp did not adopt kwikd's connections" >&2; exit 1; }
run() { echo "\$ kwikctl $*"; "$ctl" "$@"; }
run status
run show connections
run path add --connection demo-0 --path-id 4 --local 10.100.0.1:7707 --remote 10.0.4.2:40000
run path remove --connection demo-0 --path-id 4 --drain-ms 200
run watch ports --interval-ms 1000 --count 2
stop_live
trap 'rm -rf "$work"' EXIT
echo "== demo passed"
