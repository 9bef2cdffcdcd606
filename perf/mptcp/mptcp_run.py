#!/usr/bin/env python3
"""One Linux MPTCP transfer (kwik-mptcp) through the e2e namespace topology
(tests/e2e/netns_topology.py), the MPTCP side of the Kwik vs MPTCP comparison: MPTCP limits in
both namespaces, one subflow endpoint per extra path in the client, the server on the server
namespace's kernel address, and optionally a blackout of path 1 at a given time. Standard
library only.
  python3 perf/mptcp/mptcp_run.py --relay BUILD/tests/e2e/relay/kwik-relay \\
      --mptcp BUILD/perf/mptcp/kwik-mptcp [--paths 3] [--rate 50] [--size 33554432] [--blackout-at 1.0]
prints one JSON object: goodput, failover gap, subflows, fallback, bytes per path (relay)."""
import argparse
import json
import os
import shlex
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tests", "e2e"))
import netns_topology  # noqa: E402

PORT = 5201


def configure_mptcp(t):
    """MPTCP path manager settings: up to 8 subflows in both namespaces, and in the client one
    subflow endpoint per path beyond the first (the first subflow binds path 1's address)."""
    for ns in (t.client_ns, t.server_ns):
        t.run_in(ns, ["ip", "mptcp", "limits", "set", "subflows", "8", "add_addr_accepted", "8"], check=True)
    for i in range(2, t.paths + 1):
        t.run_in(t.client_ns, ["ip", "mptcp", "endpoint", "add", t.client_address(i), "dev", "c%d" % i, "subflow"],
                 check=True)


def failover_gap_ms(report, blackout_unix):
    """The longest stretch without acknowledged progress from the blackout to the end, in ms
    (resolution: the client's --interval-ms)."""
    t0 = (blackout_unix - report["start_unix"]) * 1000
    times, prev = [t0], None
    for e in report["timeline"]:
        if e["t_ms"] <= t0:
            prev = e["acked"]
            continue
        if prev is None or e["acked"] > prev:
            times.append(e["t_ms"])
        prev = e["acked"]
    return max(b - a for a, b in zip(times, times[1:])) if len(times) > 1 else None


def run_transfer(t, kwik_mptcp, size, blackout_at=None, interval_ms=10, timeout_s=120, configure=True):
    """One client -> server transfer of size bytes; blackout_at: seconds after the start at which
    path 1 is blacked out (both directions). Returns {"client", "server" (kwik-mptcp reports),
    "goodput_mbit", "failover_gap_ms" (None without blackout), "path_bytes_up" (relay: packets
    out per path, up), "sha256_equal", "commands" (the server's and the client's, as run)}."""
    if configure:
        configure_mptcp(t)
    server_argv = [kwik_mptcp, "server", "--listen", "%s:%d" % (t.server_address, PORT), "--once"]
    server = t.popen_in(t.server_ns, server_argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = server.stdout.readline()
        if not line.startswith("kwik-mptcp: listening"):
            raise RuntimeError("kwik-mptcp server did not start: %r %s" % (line, server.stderr.read()))
        before = t.relay.stats()
        client_argv = [kwik_mptcp, "client", "--connect", "%s:%d" % (t.server_address, PORT), "--bind",
                       t.client_address(1), "--size", str(size), "--interval-ms", str(interval_ms), "--timeout-s",
                       str(timeout_s)]
        client = t.popen_in(t.client_ns, client_argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        blackout_unix = None
        if blackout_at is not None:
            start = time.time()
            while client.poll() is None and time.time() < start + blackout_at:
                time.sleep(0.01)
            blackout_unix = time.time()
            t.relay.blackout(t.path_name(1), True)
        out, err = client.communicate(timeout=timeout_s + 30)
        if client.returncode != 0:
            raise RuntimeError("kwik-mptcp client: exit %d: %s" % (client.returncode, err.strip()))
        server_out, server_err = server.communicate(timeout=30)
        if server.returncode != 0:
            raise RuntimeError("kwik-mptcp server: exit %d: %s" % (server.returncode, server_err.strip()))
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
        if blackout_at is not None:
            t.relay.blackout(t.path_name(1), False)
    after = t.relay.stats()
    report = json.loads(out)
    server_report = json.loads(server_out.splitlines()[-1])
    return {"client": report, "server": server_report, "goodput_mbit": report["goodput_mbit"],
            "failover_gap_ms": failover_gap_ms(report, blackout_unix) if blackout_unix else None,
            "path_packets_up": {p: after[p]["up"]["packets_out"] - before[p]["up"]["packets_out"] for p in after},
            "sha256_equal": report["sha256"] == server_report["sha256"] and server_report["bytes"] == size,
            "commands": [shlex.join(["ip", "netns", "exec", ns] + argv)
                         for ns, argv in ((t.server_ns, server_argv), (t.client_ns, client_argv))]}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--relay", required=True, help="kwik-relay executable")
    ap.add_argument("--mptcp", required=True, help="kwik-mptcp executable")
    ap.add_argument("--paths", type=int, default=3)
    ap.add_argument("--rate", type=float, default=50, help="tbf Mbit/s per path and direction (0: none)")
    ap.add_argument("--size", type=int, default=32 << 20, help="bytes")
    ap.add_argument("--blackout-at", type=float, default=None, help="seconds after the start: path 1 blacked out")
    ap.add_argument("--interval-ms", type=int, default=10)
    a = ap.parse_args()
    netns_topology.sweep()
    with netns_topology.topology(a.relay, paths=a.paths, rates=a.rate or None) as t:
        r = run_transfer(t, a.mptcp, a.size, a.blackout_at, a.interval_ms)
    del r["client"]["timeline"]
    print(json.dumps(r, indent=1))


if __name__ == "__main__":
    main()
