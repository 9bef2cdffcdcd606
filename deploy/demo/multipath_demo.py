#!/usr/bin/env python3
"""The appliance's main job on its embedded default (README, first command): a real multipath
transfer through kwikd and kwik-cp, without a NIC or hugepages.

Three network namespaces (tests/e2e/netns_topology.py): the client, a relay and the server.
Three paths run client -> relay -> server, each rate limited with tc tbf and routed through
kwik-relay's TUN device for that path (impairments: loss on path 2, and a blackout of path 1
in the middle of the transfer). kwikd owns the server namespace's veth with net_af_packet
(--no-huge); kwik-cp serves KCP over TLS on a management link; kwik-peer in the client
namespace says hello, adds its three paths and echoes generated data through kwikd, checking
every byte that comes back by SHA-256. kwikctl's live view runs while it does.

Usage: multipath_demo.py BUILD_DIR [--size MiB]      (root: network namespaces)"""
import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

top = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(top, "tests", "e2e"))
from appliance import appliance, run_peer, table, tools  # noqa: E402
import netns_topology  # noqa: E402

RATES = {1: 150, 2: 100, 3: 50}  # Mbit/s per path, each direction
LOSS_PATH, LOSS = 2, 0.01
BLACKOUT_PATH, BLACKOUT_AT, BLACKOUT_FOR = 1, 2.0, 2.0


def say(text=""):
    print(text, flush=True)


def stream(pipe, prefix, keep=None):
    """Prints a process's output live, prefixed; keeps the lines in keep."""
    for line in iter(pipe.readline, ""):
        line = line.rstrip("\n")
        if keep is not None:
            keep.append(line)
        say("%s%s" % (prefix, line))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("build")
    p.add_argument("--size", type=int, default=96, help="MiB echoed through kwikd (each way)")
    args = p.parse_args()
    if os.geteuid() != 0:
        say("demo: the multipath transfer needs root (network namespaces); run it with sudo")
        return 1
    t = tools(args.build)
    missing = t.missing() + [x for x in (t.kwik_relay,) if not os.access(x, os.X_OK)]
    if missing:
        say("demo: not built: %s (run deploy/setup.sh build)" % " ".join(missing))
        return 1
    # meson's timeout (or an operator) ends a run with SIGTERM: unwind through the finally below,
    # which stops the processes and removes the namespaces (netns_topology's own handler would
    # remove the namespaces only).
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    netns_topology.sweep()
    work = tempfile.mkdtemp(prefix="kwik-demo-mp-")
    rates = {(i, d): r for i, r in RATES.items() for d in ("up", "down")}
    topo = netns_topology.topology(t.kwik_relay, paths=3, server_mode="device", rates=rates, workdir=work)
    app = None
    ok = False
    try:
        topo.create()
        topo.relay.set(topo.path_name(LOSS_PATH), loss=LOSS, delay_ms=5, jitter_ms=1)
        say("== the network: namespaces %s (client), %s (relay), %s (server)" %
            (topo.client_ns, topo.relay_ns, topo.server_ns))
        for i in range(1, 4):
            extra = ", %d%% loss, 5 ms delay" % (LOSS * 100) if i == LOSS_PATH else ""
            extra += ", blacked out at t=%.0fs for %.0fs" % (BLACKOUT_AT, BLACKOUT_FOR) if i == BLACKOUT_PATH else ""
            say("   path %d  %s -> %s:7707 through kwik-relay, %d Mbit/s each way%s" %
                (i, topo.client_address(i), topo.server_address, RATES[i], extra))
        app = appliance(args.build, work, ns=topo.server_ns, device="net_af_packet0,iface=s0",
                        address=topo.server_address, prefix=24, gateway=topo.server_gateway,
                        kcp_listen=topo.management_server, endpoint="echo", name="kwikdemo%d" % os.getpid())
        app.start()
        say("== kwikd: net_af_packet on s0, %s/24, no hugepages, adaptive polling; kwik-cp: KCP over TLS on %s"
            % (topo.server_address, app.kcp_address))
        rc, out, err = app.ctl("status")
        say("\n".join("   " + x for x in out.splitlines()))

        size = args.size << 20
        paths = ["%s:%d" % (topo.client_address(i), 41000 + i) for i in range(1, 4)]
        json_file = os.path.join(work, "peer.json")
        argv = app.peer_argv(topo.client_ns, paths, "--mode", "echo", "--size", str(size), "--streams", "4",
                             "--timeout-s", "120", "--progress-interval-ms", "500", json_file=json_file)
        say("== kwik-peer: hello, 3 paths, %d MiB echoed through kwikd (AES-256-GCM), verified by SHA-256" % args.size)
        peer = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        peer_out = []
        threads = [threading.Thread(target=stream, args=(peer.stderr, "peer    | "), daemon=True),
                   threading.Thread(target=stream, args=(peer.stdout, "", peer_out), daemon=True)]
        for th in threads:
            th.start()
        watch = app.popen_ctl("watch", "paths", "--interval-ms", "1500", "--count", "3")
        watch_thread = threading.Thread(target=stream, args=(watch.stdout, "kwikctl | "), daemon=True)
        watch_thread.start()
        time.sleep(BLACKOUT_AT)
        if peer.poll() is None:
            say("relay   | path %d: blackout on" % BLACKOUT_PATH)
            topo.relay.blackout(topo.path_name(BLACKOUT_PATH), True)
            time.sleep(BLACKOUT_FOR)
            topo.relay.blackout(topo.path_name(BLACKOUT_PATH), False)
            say("relay   | path %d: blackout off" % BLACKOUT_PATH)
        rc = peer.wait(180)
        watch.wait(30)
        for th in threads + [watch_thread]:
            th.join(5)
        summary = json.load(open(json_file)) if os.path.exists(json_file) else {}
        drops = app.drops()
        say("== summary")
        ok = rc == 0 and summary.get("verified") is True
        say("   transfer   %s: %d bytes sent, %d bytes echoed back, SHA-256 %s" %
            ("VERIFIED" if ok else "FAILED (%s)" % summary.get("error", "exit %d" % rc), summary.get("bytes_sent", 0),
             summary.get("bytes_received", 0), summary.get("sha256_received", "-")))
        say("   goodput    %.1f Mbit/s each way over %.2f s" % (summary.get("goodput_mbps", 0), summary.get("seconds", 0)))
        for path in summary.get("paths", []):
            say("   path %d     sent %.1f MiB, received %.1f MiB, %d packets lost and recovered" %
                (path["id"], path.get("bytes_sent", 0) / 2**20, path.get("bytes_received", 0) / 2**20,
                 path.get("packets_lost", 0)))
        kcp_events = [e for e in summary.get("events", []) if e.get("source") == "kcp" and e.get("path")
                      and e.get("t", 0) > 0.5]
        for e in kcp_events:
            say("   kwik-cp    t=%.2fs path %d %s%s" % (e["t"], e["path"], e["event"].upper(),
                                                      ": " + e["reason"] if e.get("reason") else ""))
        relay = topo.relay.stats()
        for i in range(1, 4):
            st = relay.get(topo.path_name(i), {})
            dropped = {d: sum(st.get(d, {}).get("dropped", {}).values()) for d in ("up", "down")}
            say("   relay p%d   dropped %d up, %d down (loss and blackout)" % (i, dropped["up"], dropped["down"]))
        shown = {k: v for k, v in drops.items() if v}
        say("   kwikd      drops by reason: %s" % (", ".join("%s %d" % kv for kv in sorted(shown.items())) or "none"))
        if not ok:
            for line in peer_out[-20:]:
                say("   " + line)
    finally:
        if app is not None:
            app.stop()
        topo.destroy()
        shutil.rmtree(work, ignore_errors=True)
    say("== multipath transfer %s" % ("verified" if ok else "FAILED"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
