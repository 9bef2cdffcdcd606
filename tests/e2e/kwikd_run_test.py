#!/usr/bin/env python3
"""kwikd as a process on a net_pcap port (no NIC, no hugepages): kwik-pcapgen traffic for the
three connections of deploy/kwikd.toml goes in through rx_pcap; kwikd's file-store endpoints
must write every stream with the generator's manifest size and CRC32C, its tx_pcap must
decode as valid KDP, a second kwikd on the same shared-memory name must be refused, and bad
configuration must be answered with the field named.
Usage: kwikd_run_test.py <kwikd> <kwik-pcapgen> <kwik-dump> <source root> [kwikd arguments...]"""
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

kwikd, pcapgen, dump, root = sys.argv[1:5]
extra = sys.argv[5:]  # more kwikd arguments: the adaptive-polling run adds --set kwikd.poll_mode=adaptive
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from kwik_e2e import check, failures, stored_streams  # noqa: E402
from kwik_e2e import telemetry as telemetry_of  # noqa: E402


work = tempfile.mkdtemp(prefix="kwik-kwikd-test-")
name = "kwiktest%d" % os.getpid()
try:
    streams = os.path.join(work, "streams")
    for c in range(3):
        os.makedirs(os.path.join(streams, "demo-%d" % c))
    subprocess.run([pcapgen, "--config", os.path.join(root, "deploy/demo/traffic.toml"), "--server-mac",
                    "02:70:63:61:70:00", "-o", os.path.join(work, "in.pcap"), "--manifest",
                    os.path.join(work, "manifest.json")], check=True)
    overrides = ["--name", name, "--set",
                 "port[0].device=net_pcap0,rx_pcap=%s,tx_pcap=%s" % (os.path.join(work, "in.pcap"),
                                                                      os.path.join(work, "out.pcap"))]
    for c in range(3):
        overrides += ["--set", "connection[%d].endpoint_arg=%s" % (c, os.path.join(streams, "demo-%d" % c))]
    cmd = [kwikd, "--config", os.path.join(root, "deploy/kwikd.toml")] + overrides + extra

    check_cfg = subprocess.run(cmd + ["--check-config"], capture_output=True, text=True)
    check(check_cfg.returncode == 0 and "EAL arguments" in check_cfg.stdout, "--check-config prints the effective configuration")
    bad = subprocess.run(cmd + ["--set", "port[0].mtu=70000", "--check-config"], capture_output=True, text=True)
    check(bad.returncode != 0 and "port[0].mtu" in bad.stderr, "a bad value is refused naming the field: " + bad.stderr.strip()[:120])

    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    time.sleep(2.5)
    telemetry, drops = telemetry_of(name, "/kwik/workers", "/kwik/drops") or (None, None)
    check(telemetry is not None and telemetry.get("rx_packets", 0) > 0 and telemetry.get("workers") == 1,
          "DPDK telemetry /kwik/workers: %s" % telemetry)
    check(telemetry is not None and drops.get("not_for_us", 0) > 0, "DPDK telemetry /kwik/drops names reasons")
    if "kwikd.poll_mode=adaptive" in extra:
        check(telemetry is not None and telemetry.get("idle_sleeps", 0) > 0,
              "the adaptive worker sleeps once the capture is read: %s" % telemetry)
    second = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    check(second.returncode != 0 and ("already running" in second.stdout + second.stderr
                                      or "another primary" in second.stdout + second.stderr),
          "a second kwikd on the same name is refused")
    time.sleep(1.0)
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=60)
    check(proc.returncode == 0, "kwikd stops cleanly on SIGTERM (exit %s)" % proc.returncode)
    check("kwikd: stopped" in out, "kwikd reports its final counters and stops")

    manifest = json.load(open(os.path.join(work, "manifest.json")))
    good, bad = 0, []
    for c in range(3):  # connection c of the generator is kwikd's [[connection]] c + 1
        mine = [s for s in manifest["streams"] if s["connection"] == c]
        g, b = stored_streams(os.path.join(streams, "demo-%d" % c), manifest, c + 1, mine)
        good += g
        bad += b
    for b in bad:
        check(False, "stream stored: " + b)
    check(good == len(manifest["streams"]) and good > 0,
          "all %d streams stored byte for byte (%d)" % (len(manifest["streams"]), good))
    corrupted = sum(1 for p in manifest["packets"] if p.get("corrupted") and p.get("direction") == "client_to_server")
    dropped_lines = [l for l in out.splitlines() if "dropped" in l and "not_for_us" not in l and "rx " not in l]
    counted = sum(int(l.split("dropped ")[1].split(":")[0]) for l in dropped_lines)
    check(counted >= corrupted > 0, "every corrupted packet counted under a reason (%d for %d)" % (counted, corrupted))
    d = subprocess.run([dump, "--summary-only", os.path.join(work, "out.pcap")], capture_output=True, text=True)
    summary = json.loads(d.stdout)["summary"]
    check(summary["accepted"] > 0 and summary["dropped"] == 0,
          "kwikd's transmissions decode as valid KDP: %s" % summary["accepted_by_type"])
finally:
    shutil.rmtree(work, ignore_errors=True)

print("%d passed, %d failed" % (0 if failures else 1, 1 if failures else 0))
sys.exit(1 if failures else 0)
