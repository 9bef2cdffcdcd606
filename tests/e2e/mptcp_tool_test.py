#!/usr/bin/env python3
"""kwik-mptcp through the namespace topology (perf/mptcp/mptcp_run.py): 3 paths at 50 Mbit/s
each way (tc tbf), 32 MiB client -> server. Checks: SHA-256 and size equal on both sides, the
connection stayed MPTCP (no fallback) with 3 subflows, every path carried data (the relay's
per-path counters), and with path 1 blacked out 0.5 s into a second transfer it still completes
intact, the blackout dropping packets on path 1 while paths 2 and 3 carry the rest. Against a
plain TCP server the client reports "fallback": true (it never passes TCP off as MPTCP).
Usage: mptcp_tool_test.py <kwik-relay> <kwik-mptcp>"""
import json
import os
import subprocess
import sys

relay_exe, mptcp_exe = sys.argv[1:3]
here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, here)
sys.path.insert(0, os.path.join(here, "..", "..", "perf", "mptcp"))
from kwik_e2e import check, failures  # noqa: E402
import mptcp_run  # noqa: E402
import netns_topology  # noqa: E402

SIZE = 32 << 20


def main():
    netns_topology.sweep()
    with netns_topology.topology(relay_exe, paths=3, rates=50) as t:
        r = mptcp_run.run_transfer(t, mptcp_exe, SIZE)
        c, s = r["client"], r["server"]
        check(r["sha256_equal"], "32 MiB: server read %d bytes, SHA-256 %s, client sent %s" %
              (s["bytes"], s["sha256"][:16], c["sha256"][:16]))
        check(not c["fallback"] and not s["fallback"], "the connection stayed MPTCP (no fallback to TCP)")
        check(c["subflows_max"] == 3, "3 subflows (one per path): %d" % c["subflows_max"])
        per_path = r["path_packets_up"]
        check(all(per_path[p] > 1000 for p in ("p1", "p2", "p3")), "every path carried data: %s" % per_path)
        # 3 x 50 Mbit/s: well above one path's rate (on a 2-core machine about 140 Mbit/s).
        check(r["goodput_mbit"] > 60, "goodput %.1f Mbit/s is more than one path's 50" % r["goodput_mbit"])

        before = t.relay.stats("p1")["p1"]["up"]["dropped"]["blackout"]
        r = mptcp_run.run_transfer(t, mptcp_exe, SIZE, blackout_at=0.5, configure=False)
        dropped = t.relay.stats("p1")["p1"]["up"]["dropped"]["blackout"] - before
        check(r["sha256_equal"], "with path 1 blacked out at 0.5 s: 32 MiB intact (SHA-256 equal)")
        check(dropped > 0 and r["path_packets_up"]["p2"] > 1000 and r["path_packets_up"]["p3"] > 1000,
              "the blackout dropped %d packets on path 1; paths 2 and 3 carried %s" % (dropped, r["path_packets_up"]))
        print("goodput %.1f Mbit/s, failover gap %s ms" % (r["goodput_mbit"], r["failover_gap_ms"]), flush=True)
        check(r["failover_gap_ms"] is not None and r["failover_gap_ms"] < 5000,
              "progress resumed after the blackout (gap %s ms)" % r["failover_gap_ms"])

        # A plain TCP server: MPTCP falls back to TCP, and the client says so.
        tcp_sink = ("import socket; s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); "
                    "s.bind((%r, 5202)); s.listen(1); print('ready', flush=True); c, _ = s.accept(); n = 0\n"
                    "while True:\n    b = c.recv(1 << 16)\n    n += len(b)\n    if not b: break\n"
                    "c.close(); print(n, flush=True)" % t.server_address)
        sink = t.popen_in(t.server_ns, [sys.executable, "-c", tcp_sink], stdout=subprocess.PIPE, text=True)
        sink.stdout.readline()
        r = t.run_in(t.client_ns, [mptcp_exe, "client", "--connect", "%s:5202" % t.server_address, "--bind",
                                   t.client_address(1), "--size", str(1 << 20)], timeout=60)
        received = sink.communicate(timeout=30)[0].strip()
        report = json.loads(r.stdout) if r.returncode == 0 else {}
        check(report.get("fallback") is True and report.get("subflows_max") == 0 and received == str(1 << 20),
              "against a plain TCP server: fallback true, no MPTCP subflows, %s bytes arrived (exit %d %s)" %
              (received, r.returncode, r.stderr.strip()))
    check(t.exists() == [], "the namespaces are gone")


try:
    main()
except Exception as e:
    check(False, "mptcp tool test raised %r" % e)
    raise
print("%d failure(s)" % len(failures))
sys.exit(1 if failures else 0)
