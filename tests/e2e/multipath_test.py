#!/usr/bin/env python3
"""Multipath transfers through the appliance, end to end (issue 6): kwik-peer in a client
namespace, three paths through kwik-relay (impairments) and tc tbf (rates) to kwikd in a server
namespace (net_af_packet on the namespace's veth, or net_tap bridged to it), kwik-cp next to
kwikd serving KCP over TLS on the management link, kwikctl as the operator. One case per run:

  loss           3 paths, 64 MiB each way (echo), 5 % loss + reordering + duplication on path 2
  blackout       path 1 blacked out mid-transfer: kwik-cp's PathStatusUpdate DOWN reaches the
                 client, the other paths carry the rest, nothing is lost
  kwikd_restart  kwikd restarted mid-transfer: the decided outcome (docs/KCP_SERVER.md,
                 "Restarts") is a clear error at once, never acknowledged-but-lost data; the new
                 kwikd holds none of the old connection's paths; a new transfer then succeeds
  cp_restart     kwik-cp restarted mid-transfer: the transfer continues and completes verified
  garbage        random bytes and malformed Kwik packets (on unknown tuples and spoofed on a live
                 path's tuple) during a transfer: every one a counted drop, the transfer intact
  scaling        2 data paths + 1 standby, each rate limited: a BandwidthScalingRequest activates
                 the standby path and throughput rises

Usage: multipath_test.py CASE BUILD_DIR [--driver af_packet|tap] [--keep]
The namespaces, processes and files are removed at the end, also when a check fails."""
import argparse
import json
import os
import random
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, here)
from appliance import appliance, run_peer, table, tools, wait_for  # noqa: E402
from kwik_e2e import check, failures, udp_payloads  # noqa: E402
import netns_topology  # noqa: E402

MiB = 1 << 20
CASES = ("loss", "blackout", "kwikd_restart", "cp_restart", "garbage", "scaling")


def parse():
    p = argparse.ArgumentParser()
    p.add_argument("case", choices=CASES)
    p.add_argument("build")
    p.add_argument("--driver", choices=("af_packet", "tap"), default="af_packet")
    p.add_argument("--keep", action="store_true", help="keep the work directory (logs, JSON)")
    return p.parse_args()


class bench:
    """The topology, the appliance and the client's path addresses for one case."""

    def __init__(self, args, work, rates=None, endpoint="echo", paths=3):
        self.args, self.work = args, work
        t = tools(args.build)
        self.topo = netns_topology.topology(t.kwik_relay, paths=paths, server_mode="device", rates=rates,
                                            workdir=work)
        self.app = None
        self.procs = []  # kwik-peers started in the background: killed by close()
        self.topo.create()
        try:
            device = "net_af_packet0,iface=s0" if args.driver == "af_packet" else "net_tap0,iface=kwtap0"
            attach = (lambda: self.topo.attach_tap("kwtap0")) if args.driver == "tap" else None
            self.app = appliance(args.build, work, ns=self.topo.server_ns, device=device,
                                 address=self.topo.server_address, prefix=24, gateway=self.topo.server_gateway,
                                 kcp_listen=self.topo.management_server, endpoint=endpoint, on_kwikd_start=attach)
            self.app.start_kwikd()
            self.app.start_cp()
        except BaseException:
            # main() never gets this bench to close: a kwikd (or kwik-cp) already started would
            # outlive the test, holding its namespace after `ip netns del`.
            self.close()
            raise
        # Fixed client ports, so that a test can name (and spoof) a path's 5-tuple.
        self.paths = ["%s:%d" % (self.topo.client_address(i), 41000 + i) for i in range(1, paths + 1)]

    def peer(self, *args, paths=None, standby=(), name="peer"):
        """kwik-peer's argv and JSON file for a transfer on the given paths (default all)."""
        json_file = os.path.join(self.work, name + ".json")
        if os.path.exists(json_file):
            os.unlink(json_file)
        argv = self.app.peer_argv(self.topo.client_ns, self.paths if paths is None else paths, *args,
                                  standby_paths=standby, json_file=json_file)
        return argv, json_file

    def run(self, *args, timeout=240, **kw):
        argv, json_file = self.peer(*args, **kw)
        return run_peer(argv, json_file, timeout, os.path.join(self.work, kw.get("name", "peer") + ".log"))

    def start(self, *args, **kw):
        """kwik-peer in the background: (process, JSON file)."""
        argv, json_file = self.peer(*args, **kw)
        log = open(os.path.join(self.work, kw.get("name", "peer") + ".log"), "w")
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, text=True)
        self.procs.append(proc)
        return proc, json_file

    def close(self):
        try:
            # A case that failed part-way (a wait that timed out) leaves its kwik-peer running
            # (up to its --timeout-s) inside the client namespace: it goes first.
            for p in self.procs:
                if p.poll() is None:
                    p.kill()
                    p.wait()
            if self.app is not None:
                self.app.stop()
        finally:
            self.topo.destroy()


def summary_of(json_file):
    try:
        return json.load(open(json_file))
    except (OSError, ValueError):
        return {}


def wait_progress(proc, log_path, at_least_bytes, seconds=60):
    """Waits until kwik-peer's progress line says at least at_least_bytes went up (or it ended)."""
    def progressed():
        if proc.poll() is not None:
            return True
        try:
            lines = [x for x in open(log_path).read().splitlines() if x.startswith("t=")]
        except OSError:
            return False
        return bool(lines) and _bytes_up(lines[-1]) >= at_least_bytes
    return wait_for(progressed, seconds, 0.05)


def _bytes_up(line):
    # "t=3.0s up 48.2 MiB down 47.9 MiB ..."
    words = line.split()
    try:
        i = words.index("up")
        value, unit = float(words[i + 1]), words[i + 2]
    except (ValueError, IndexError):
        return 0
    return value * {"B": 1, "KiB": 1 << 10, "MiB": MiB, "GiB": 1 << 30}.get(unit, 1)


def relay_stats(b, path):
    """kwik-relay's counters of one path: {"up": {...}, "down": {...}, ...}."""
    return b.topo.relay.stats(path).get(path, {})


def dropped(direction):
    """Packets the relay dropped in one direction, whatever the cause."""
    return sum(direction.get("dropped", {}).values())


def path_bytes(summary):
    return {p["id"]: (p.get("bytes_sent", 0), p.get("bytes_received", 0)) for p in summary.get("paths", [])}


def verified(summary, rc, size, what):
    check(rc == 0 and summary.get("result") == "ok" and summary.get("verified") is True,
          "%s: kwik-peer exits 0 with the transfer verified (rc %s, %s)" % (what, rc, summary.get("error", "")))
    check(summary.get("bytes_sent") == size and summary.get("bytes_received") == size,
          "%s: %d bytes each way (sent %s, received %s)" % (what, size, summary.get("bytes_sent"),
                                                              summary.get("bytes_received")))
    check(summary.get("sha256_sent") and summary.get("sha256_sent") == summary.get("sha256_received"),
          "%s: SHA-256 of what came back equals what was sent (%s)" % (what, summary.get("sha256_sent")))


# ---- the cases ----
def case_loss(b):
    b.topo.relay.set("p2", loss=0.05, reorder=0.05, reorder_ms=4, duplicate=0.03)
    size = 64 * MiB
    rc, s, err = b.run("--mode", "echo", "--size", str(size), "--streams", "4", "--timeout-s", "200")
    verified(s, rc, size, "64 MiB each way")
    per_path = path_bytes(s)
    check(len(per_path) == 3 and all(up > 0 and down > 0 for up, down in per_path.values()),
          "every one of the 3 paths carried data both ways: %s" % per_path)
    stats = relay_stats(b, "p2")
    print("relay p2: %s" % json.dumps(stats), flush=True)
    up, down = stats.get("up", {}), stats.get("down", {})
    check(dropped(up) > 0 and dropped(down) > 0, "the relay dropped packets on path 2 both ways (%s, %s)" %
          (dropped(up), dropped(down)))
    check(up.get("duplicated", 0) > 0 and up.get("reordered", 0) > 0,
          "and duplicated and reordered them (up: %s duplicated, %s reordered)" % (up.get("duplicated"),
                                                                                   up.get("reordered")))
    lost = sum(p.get("packets_lost", 0) for p in s.get("paths", []) if p["id"] == 2)
    check(lost > 0, "kwik-peer's loss recovery saw path 2's losses (%d packets)" % lost)
    print("goodput %.1f Mbit/s over %.1f s" % (s.get("goodput_mbps", 0), s.get("seconds", 0)), flush=True)


def case_blackout(b):
    size = 48 * MiB
    proc, json_file = b.start("--mode", "echo", "--size", str(size), "--streams", "2", "--timeout-s", "200",
                              "--progress-interval-ms", "200")
    log = os.path.join(b.work, "peer.log")
    check(wait_progress(proc, log, 8 * MiB), "the transfer is under way (8 MiB up)")
    t_blackout = time.time()
    b.topo.relay.blackout("p1", True)
    rc = proc.wait(240)
    s = summary_of(json_file)
    verified(s, rc, size, "blackout of path 1")
    events = s.get("events", [])
    down = [e for e in events if e.get("source") == "kcp" and e.get("path") == 1 and e.get("event", "").lower() == "down"]
    check(down, "kwik-cp's PathStatusUpdate DOWN for path 1 reached the client: %s" % events)
    transport = [e for e in events if e.get("source") == "transport" and e.get("path") == 1]
    check(transport, "the client's transport saw path 1 fail too: %s" % transport)
    after = {p: v for p, v in path_bytes(s).items()}
    check(after.get(2, (0, 0))[1] > 0 and after.get(3, (0, 0))[1] > 0, "paths 2 and 3 carried the rest: %s" % after)
    gap = failover_gap(s)
    print("failover: longest stall in received bytes %.2f s (200 ms samples)" % gap, flush=True)
    check(gap < 5.0, "the stall after the blackout is under 5 s (%.2f s)" % gap)
    black = relay_stats(b, "p1").get("up", {}).get("dropped", {}).get("blackout", 0)
    check(black > 0, "the relay dropped path 1's packets during the blackout (%d)" % black)


def failover_gap(summary):
    """The longest time between two timeline samples with no new bytes received (seconds)."""
    tl = summary.get("timeline", [])
    gap, last_t, last_b = 0.0, None, None
    for sample in tl:
        if last_b is not None and sample["bytes_received"] == last_b:
            gap = max(gap, sample["t"] - last_t)
        else:
            last_t = sample["t"]
        last_b = sample["bytes_received"]
    return gap


def case_kwikd_restart(b):
    size = 256 * MiB
    proc, json_file = b.start("--mode", "echo", "--size", str(size), "--timeout-s", "120",
                              "--progress-interval-ms", "200")
    check(wait_progress(proc, os.path.join(b.work, "peer.log"), 8 * MiB), "the transfer is under way (8 MiB up)")
    b.app.stop_kwikd()
    t_stop = time.time()
    b.app.start_kwikd()
    try:
        rc = proc.wait(60)
    except subprocess.TimeoutExpired:
        proc.kill()
        rc = proc.wait()
    waited = time.time() - t_stop
    s = summary_of(json_file)
    check(rc == 1 and s.get("result") == "error", "kwik-peer fails the transfer (exit %s, result %s)" %
          (rc, s.get("result")))
    check("kwikd restarted" in s.get("error", ""), "with the clear reason from kwik-cp: %r" % s.get("error"))
    check(waited < 30, "within %.1f s of the restart, not after an idle timeout" % waited)
    check(s.get("bytes_received", 0) < size, "and it does not claim the data arrived (%s of %d)" %
          (s.get("bytes_received"), size))
    # The new kwikd does not have the old connection; a new transfer works.
    answer = b.app.ctl_json("show", "connections")
    conns = table(answer, "connections")
    check(answer.get("ok") is True and all(c.get("paths", 0) == 0 for c in conns),
          "the new kwikd holds none of the old connection's paths: %s" % (conns if answer else "kwikctl failed"))
    rc, s, err = b.run("--mode", "echo", "--size", str(8 * MiB), "--timeout-s", "60", name="peer-after")
    verified(s, rc, 8 * MiB, "a new transfer after the restart")


def case_cp_restart(b):
    size = 64 * MiB
    proc, json_file = b.start("--mode", "echo", "--size", str(size), "--streams", "2", "--timeout-s", "200",
                              "--progress-interval-ms", "200")
    check(wait_progress(proc, os.path.join(b.work, "peer.log"), 8 * MiB), "the transfer is under way (8 MiB up)")
    b.app.stop_cp()
    time.sleep(0.5)
    b.app.start_cp()
    conns = table(b.app.ctl_json("show", "connections"), "connections")
    check(any(c.get("paths", 0) == 3 for c in conns), "the new kwik-cp adopted the connection and its 3 paths: %s" % conns)
    rc = proc.wait(240)
    s = summary_of(json_file)
    verified(s, rc, size, "kwik-cp restarted mid-transfer")
    lost = [e for e in s.get("events", []) if e.get("event") == "session_lost"]
    check(lost, "kwik-peer noticed its KCP session end and went on: %s" % s.get("events"))


def ip_udp(src, sport, dst, dport, payload):
    """An IPv4 + UDP datagram (UDP checksum 0: allowed on IPv4) for a raw socket."""
    udp = struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload
    total = 20 + len(udp)
    hdr = struct.pack("!BBHHHBBH4s4s", 0x45, 0, total, random.randrange(65536), 0, 64, 17, 0,
                      socket.inet_aton(src), socket.inet_aton(dst))
    csum = 0
    for i in range(0, 20, 2):
        csum += (hdr[i] << 8) | hdr[i + 1]
    while csum >> 16:
        csum = (csum & 0xFFFF) + (csum >> 16)
    return hdr[:10] + struct.pack("!H", ~csum & 0xFFFF) + hdr[12:] + udp


def case_garbage(b):
    size = 48 * MiB
    proc, json_file = b.start("--mode", "echo", "--size", str(size), "--streams", "2", "--timeout-s", "200",
                              "--progress-interval-ms", "200")
    check(wait_progress(proc, os.path.join(b.work, "peer.log"), 4 * MiB), "the transfer is under way (4 MiB up)")
    before = b.app.drops()
    sent = send_garbage(b)
    rc = proc.wait(240)
    s = summary_of(json_file)
    verified(s, rc, size, "garbage during the transfer")
    after = wait_for(lambda: (lambda d: d if sum(d.values()) - sum(before.values()) >= sum(sent.values()) else None)(
        b.app.drops()), 10) or b.app.drops()
    delta = {k: after.get(k, 0) - before.get(k, 0) for k in after if after.get(k, 0) != before.get(k, 0)}
    print("sent %s; kwikd's drops grew by %s" % (sent, delta), flush=True)
    check(delta.get("unknown_path", 0) == sent["unknown_tuple"],
          "every datagram on an unknown tuple is an unknown_path drop (%s == %d)" %
          (delta.get("unknown_path"), sent["unknown_tuple"]))
    # Beside them kwikd counts what it always does at the end of a transfer (connection_closed,
    # no_exception_path for the namespace's own IPv6 chatter): those reasons are not the garbage's.
    on_path = sum(v for k, v in delta.items()
                  if k not in ("unknown_path", "no_exception_path", "connection_closed", "encryption_required"))
    check(on_path == sent["on_path"], "every malformed packet on the live path is a counted drop (%d == %d): %s" %
          (on_path, sent["on_path"], delta))
    check(delta.get("encryption_required", 0) == sent["forged_new"],
          "every forged plaintext packet with new sequence numbers is dropped as encryption_required (%s == %d)" %
          (delta.get("encryption_required"), sent["forged_new"]))



def send_garbage(b):
    """Random bytes and malformed Kwik packets at kwikd: on tuples no path has, and with path
    1's 5-tuple. Returns how many of each were sent."""
    rng = random.Random(6)
    dst = b.topo.server_address
    src1, port1 = b.paths[0].split(":")
    datagrams = []
    for _ in range(300):  # random bytes, unknown tuples (another port of the same client address)
        datagrams.append(("unknown_tuple", src1, 42000 + rng.randrange(100),
                          bytes(rng.randrange(256) for _ in range(rng.randrange(1, 1400)))))
    for i in range(300):  # on path 1's tuple: random bytes, short headers, bad versions, flipped checksums
        kind = i % 3
        if kind == 0:
            payload = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 1400)))
        elif kind == 1:
            payload = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 12)))
        else:
            payload = bytes([0x30 | rng.randrange(16)]) + bytes(rng.randrange(256) for _ in range(rng.randrange(20, 600)))
        datagrams.append(("on_path", src1, int(port1), payload))
    # Well-formed Kwik packets with valid CRC32Cs but forged: plaintext stream frames written by
    # kwik-pcapgen for path 1's tuple (the live transfer's stream ids and offsets), once with
    # sequence numbers the path already used (recognised as already received, never acted on:
    # kwikd's transport counts them as duplicates, not drops) and once
    # with numbers ahead of the client's (the connection encrypts: dropped whole as
    # encryption_required, so never acknowledged and the client's own packets with those numbers
    # are still taken). Either way none of their bytes is delivered: the echo would show it.
    for kind, first in (("forged_old", 0), ("forged_new", 1 << 40)):
        pcap = os.path.join(b.work, kind + ".pcap")
        subprocess.run([tools(b.args.build).kwik_pcapgen, "-o", pcap, "--seed", "9", "--connections", "1",
                        "--streams", "2", "--stream-size", "60000", "--max-frame-data", "1100", "--ack-every", "0",
                        "--keepalive-every", "0", "--window-update-every", "0", "--first-sequence", str(first),
                        "--path", "%s,%s:7707" % (b.paths[0], dst)], check=True, capture_output=True, timeout=60)
        forged = [d for _, d in udp_payloads(pcap, 7707)][:100]
        check(len(forged) >= 50, "kwik-pcapgen wrote %d %s packets for path 1's tuple" % (len(forged), kind))
        for payload in forged:
            datagrams.append((kind, src1, int(port1), payload))
    # Sent from the relay's namespace (an attacker on the path), paced, past the paths' rate
    # limits and impairments: every datagram reaches kwikd, so the drop counts must match exactly.
    script = ("import pickle,socket,sys,time\n"
              "s=socket.socket(socket.AF_INET,socket.SOCK_RAW,socket.IPPROTO_RAW)\n"
              "for i,(d,a) in enumerate(pickle.load(sys.stdin.buffer)):\n"
              "    s.sendto(d,(a,0))\n"
              "    if i%20==19: time.sleep(0.005)\n")
    import pickle
    packets = [(ip_udp(src, sport, dst, 7707, payload), dst) for _, src, sport, payload in datagrams]
    r = b.topo.run_in(b.topo.relay_ns, ["python3", "-c", script], input=pickle.dumps(packets), text=False)
    check(r.returncode == 0, "the spoofer sent its %d datagrams: %s" % (len(packets), r.stderr[-300:]))
    counts = {"unknown_tuple": 0, "on_path": 0, "forged_old": 0, "forged_new": 0}
    for kind, *_ in datagrams:
        counts[kind] += 1
    return counts


def case_scaling(b):
    size = 96 * MiB
    proc, json_file = b.start("--mode", "echo", "--size", str(size), "--timeout-s", "200",
                              "--progress-interval-ms", "250", "--scale-at-s", "4", "--scale-target-mbps", "150",
                              paths=b.paths[:2], standby=b.paths[2:])
    rc = proc.wait(240)
    s = summary_of(json_file)
    verified(s, rc, size, "scaling during the transfer")
    scaling = s.get("kcp", {}).get("answers", {}).get("scaling", {})
    print("scaling: %s" % json.dumps(scaling), flush=True)
    check(scaling.get("decision") == "SCALE_UP" and 3 in scaling.get("paths_added", []),
          "kwik-cp answered SCALE_UP activating path 3: %s" % scaling)
    per_path = path_bytes(s)
    check(per_path.get(3, (0, 0))[0] > 0 and per_path.get(3, (0, 0))[1] > 0,
          "path 3 carried data both ways after the scale-up: %s" % per_path)
    tl = s.get("timeline", [])
    t_scale = next((e["t"] for e in s.get("events", []) if e.get("event", "").startswith("scaling_")), 4.0)

    def rate(lo, hi):
        pts = [x for x in tl if lo <= x["t"] <= hi]
        if len(pts) < 2:
            return 0.0
        return (pts[-1]["bytes_received"] - pts[0]["bytes_received"]) * 8 / (pts[-1]["t"] - pts[0]["t"]) / 1e6
    before, after = rate(1.0, t_scale), rate(t_scale + 1.5, t_scale + 4.5)
    print("echoed goodput before the scale-up %.1f Mbit/s, after %.1f Mbit/s" % (before, after), flush=True)
    check(after > before * 1.25, "throughput rose by more than 25 %% (%.1f -> %.1f Mbit/s)" % (before, after))


RATES = {"loss": None, "blackout": 40, "kwikd_restart": None, "cp_restart": 40, "garbage": 40, "scaling": 20}


def main():
    args = parse()
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    missing = tools(args.build).missing()
    if missing:
        print("FAIL not built: %s" % missing)
        return 1
    # meson's timeout (or an operator) ends a run with SIGTERM: unwind through the finally below,
    # which stops the processes and removes the namespaces (netns_topology's own handler would
    # remove the namespaces only).
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    netns_topology.sweep()
    work = tempfile.mkdtemp(prefix="kwik-mp-%s-" % args.case)
    b = None
    t0 = time.time()
    try:
        b = bench(args, work, rates=RATES[args.case])
        globals()["case_" + args.case](b)
    except Exception as e:  # a harness failure is a failed check with its cause, then cleanup
        import traceback
        traceback.print_exc()
        check(False, "%s: %s" % (type(e).__name__, e))
    finally:
        if b is not None:
            b.close()
        for log in sorted(os.listdir(work)) if failures else []:
            if log.endswith(".log"):
                print("---- %s (last 40 lines)" % log)
                print("\n".join(open(os.path.join(work, log), errors="replace").read().splitlines()[-40:]))
        if args.keep or failures:
            print("work directory kept: %s" % work)
        else:
            shutil.rmtree(work, ignore_errors=True)
    print("%s: %d failure(s) in %.1f s" % (args.case, len(failures), time.time() - t0))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
