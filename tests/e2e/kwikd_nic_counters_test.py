#!/usr/bin/env python3
"""kwikd's main-lcore counters (api/counters.hpp, the main block) read by `kwikd-cmd counters`:
kwikd on a net_pcap port reads a kwik-pcapgen capture of the README demo; the NIC's rx packets
and bytes equal the frames and bytes of that capture, the workers saw every one of them, imissed,
ierrors and rx_nombuf are present and zero, tx agrees with what the workers sent, and the
kwikd-wide block counts the demo's 3 connections and 9 paths, all steered by hand-off (net_pcap
has no rte_flow). Then a command through kwikd-cmd shows in the command count.
Usage: kwikd_nic_counters_test.py <kwikd> <kwikd-cmd> <kwik-pcapgen> <source root>"""
import json
import os
import shutil
import signal
import struct
import subprocess
import sys
import tempfile

kwikd, kwikd_cmd, pcapgen, root = sys.argv[1:5]
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from kwik_e2e import check, failures, poll_until  # noqa: E402

NAME = "kwiknic%d" % os.getpid()


def pcap_frames(path):
    """(frames, bytes) of a classic pcap file: the record count and the sum of captured lengths."""
    with open(path, "rb") as f:
        data = f.read()
    magic = struct.unpack_from("<I", data, 0)[0]
    order = "<" if magic in (0xA1B2C3D4, 0xA1B23C4D) else ">"
    at, frames, total = 24, 0, 0
    while at + 16 <= len(data):
        caplen = struct.unpack_from(order + "I", data, at + 8)[0]
        frames += 1
        total += caplen
        at += 16 + caplen
    return frames, total


def counters():
    """The last JSON line of `kwikd-cmd counters`, or None."""
    r = subprocess.run([kwikd_cmd, "--name", NAME, "counters"], capture_output=True, text=True, timeout=30)
    lines = [json.loads(l) for l in r.stdout.splitlines() if l.strip()]
    if r.returncode != 0 or not lines or "error" in lines[-1]:
        return None
    return lines[-1]


def on_sigterm(signum, frame):
    raise SystemExit(1)


signal.signal(signal.SIGTERM, on_sigterm)
work = tempfile.mkdtemp(prefix="kwik-nic-test-")
proc = None
try:
    streams = os.path.join(work, "streams")
    for c in range(3):
        os.makedirs(os.path.join(streams, "demo-%d" % c))
    capture = os.path.join(work, "in.pcap")
    subprocess.run([pcapgen, "--config", os.path.join(root, "deploy/demo/traffic.toml"), "--server-mac",
                    "02:70:63:61:70:00", "-o", capture, "--manifest", os.path.join(work, "manifest.json")],
                   check=True, capture_output=True, timeout=120)
    frames, frame_bytes = pcap_frames(capture)
    cmd = [kwikd, "--config", os.path.join(root, "deploy/kwikd.toml"), "--name", NAME,
           "--set", "kwikd.stats_interval_ms=100",
           "--set", "port[0].device=net_pcap0,rx_pcap=%s,tx_pcap=%s" % (capture, os.path.join(work, "out.pcap"))]
    for c in range(3):
        cmd += ["--set", "connection[%d].endpoint_arg=%s" % (c, os.path.join(streams, "demo-%d" % c))]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

    # The capture is read once: the NIC's rx counts stop at its size.
    def settled():
        c = counters()
        nic = c["ports"][0].get("nic", {}) if c and c.get("ports") else {}
        return c if nic.get("rx_packets") == frames and c["ports"][0]["rx_packets"] == frames else None

    c = poll_until(settled, 30, step=0.2)
    last = counters() or {}
    check(c is not None, "NIC rx_packets reaches the capture's %d frames, and the workers saw as many: %s" %
          (frames, json.dumps(last.get("ports"))))
    if c is not None:
        nic = c["ports"][0]["nic"]
        check(frames > 100 and nic["rx_bytes"] == frame_bytes,
              "NIC rx_bytes %d = the capture's %d bytes" % (nic["rx_bytes"], frame_bytes))
        check(all(k in nic and nic[k] == 0 for k in ("imissed", "ierrors", "rx_nombuf", "oerrors")),
              "imissed, ierrors, oerrors, rx_nombuf present and zero: %s" % nic)
        check("xdp" not in c["ports"][0], "a net_pcap port has no XDP verdicts")
        k = c.get("kwikd", {})
        check(k.get("connections") == 3 and k.get("paths") == 9,
              "kwikd-wide: the demo's 3 connections and 9 paths: %s" % k)
        check(k.get("flow_rules") == 0 and k.get("handoff_paths") == 9,
              "all 9 paths steered by hand-off, none by rte_flow (net_pcap): %s" % k)
        check(k.get("publish_count", 0) >= 2, "the main lcore publishes every stats interval: %s" % k)

    # tx: the NIC and the workers agree between two of kwikd's transmissions (ACKs, keepalives).
    def tx_agrees():
        c = counters()
        if not c or "nic" not in c["ports"][0]:
            return None
        p = c["ports"][0]
        agree = p["nic"]["tx_packets"] == p["tx_packets"] > 0 and p["nic"]["tx_bytes"] == p["tx_bytes"]
        return p if agree else None

    p = poll_until(tx_agrees, 10, step=0.05)
    check(p is not None, "NIC tx_packets and tx_bytes = the workers' (> 0): %s" %
          json.dumps((counters() or {}).get("ports")))

    # A command through the command ring shows in the main block once published.
    before = (counters() or {}).get("kwikd", {}).get("commands", -1)
    r = subprocess.run([kwikd_cmd, "--name", NAME, "--timeout", "5", "remove-connection", "--id", "99"],
                       capture_output=True, text=True, timeout=30)
    check(r.returncode == 2, "removing an unknown connection is refused (exit %d): %s" % (r.returncode, r.stderr.strip()))
    k = poll_until(lambda: (lambda c: c["kwikd"] if c and c.get("kwikd", {}).get("commands") == before + 1 and
                            c["kwikd"].get("commands_refused", 0) >= 1 else None)(counters()), 5)
    check(before >= 0 and k is not None, "the refused command is counted: commands %d -> %s" %
          (before, (counters() or {}).get("kwikd")))

    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=60)
    check(proc.returncode == 0 and "kwikd: stopped" in out, "kwikd stops cleanly (exit %s)" % proc.returncode)
finally:
    if proc is not None and proc.poll() is None:
        proc.kill()
        proc.wait()
    shutil.rmtree(work, ignore_errors=True)

print("%d passed, %d failed" % (0 if failures else 1, 1 if failures else 0))
sys.exit(1 if failures else 0)
