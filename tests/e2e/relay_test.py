#!/usr/bin/env python3
"""kwik-relay and the namespace topology with plain UDP sockets (server namespace in kernel
mode): without impairment every datagram arrives in order; loss 0.05 on path 1 up loses a
fraction within a binomial 5-sigma band and the relay's counters match what arrived exactly;
duplication, reordering, delay (+ jitter) and blackout are seen by the receiver; tc tbf at
20 Mbit/s limits a flood to about 20 Mbit/s; bad control commands answer ok:false naming the
field; the namespaces are removed after the test, after a failing step, on SIGTERM, and sweep()
removes a dead run's.
Usage: relay_test.py <kwik-relay>"""
import json
import os
import subprocess
import sys
import time

relay_exe = sys.argv[1]
here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, here)
from kwik_e2e import check, failures  # noqa: E402
import netns_topology  # noqa: E402

PROBE = [sys.executable, os.path.join(here, "udp_probe.py")]
PORT = 9000


def start_sink(t, idle=0.5, timeout=20):
    p = t.popen_in(t.server_ns, PROBE + ["sink", t.server_address, str(PORT), str(idle), str(timeout)],
                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    p.stderr.readline()  # "ready": bound
    return p


def sink_result(p):
    out, _ = p.communicate(timeout=60)
    return json.loads(out)


def send(t, path, count, size=200, pps=5000):
    r = t.run_in(t.client_ns, PROBE + ["send", t.client_address(path), t.server_address, str(PORT), str(count),
                                       str(size), str(pps)])
    if r.returncode != 0:
        raise RuntimeError("udp_probe send: %s" % r.stderr)


def transfer(t, path, count, **kw):
    sink = start_sink(t)
    send(t, path, count, **kw)
    return sink_result(sink)["seqs"]


def rtts(t, path, count=20):
    r = t.run_in(t.client_ns, PROBE + ["rtt", t.client_address(path), t.server_address, str(PORT), str(count)])
    return json.loads(r.stdout)["rtt_ms"]


def up(t, path):
    return t.relay.stats("p%d" % path)["p%d" % path]["up"]


def main():
    print("sweep of leftovers: %s" % netns_topology.sweep(), flush=True)
    t0 = time.time()
    t = netns_topology.topology(relay_exe, paths=3, seed=7)
    with t:
        check(time.time() - t0 < 2.0, "topology with 3 paths built in %.2f s (< 2 s)" % (time.time() - t0))
        check(sorted(t.exists()) == sorted([t.client_ns, t.relay_ns, t.server_ns]), "its namespaces exist")

        # 1. No impairment: every datagram on every path, in order.
        for path in (1, 2, 3):
            seqs = transfer(t, path, 1000)
            check(seqs == list(range(1000)), "path %d without impairment: 1000 of 1000 in order (%d arrived)" %
                  (path, len(seqs)))
            s = up(t, path)
            check(s["packets_in"] == 1000 and s["packets_out"] == 1000,
                  "path %d: the relay counted 1000 in and 1000 out up: %d/%d" % (path, s["packets_in"],
                                                                              s["packets_out"]))

        # 2. Loss 0.05 on path 1 up: binomial 5-sigma band; the relay's counters agree exactly.
        n, p = 4000, 0.05
        t.relay.reset("p1")
        t.relay.set("p1", "up", loss=p)
        seqs = transfer(t, 1, n)
        sigma = (n * p * (1 - p)) ** 0.5
        lost = n - len(seqs)
        check(abs(lost - n * p) <= 5 * sigma, "loss 0.05: %d of %d lost, expected %.0f +- %.0f (5 sigma)" %
              (lost, n, n * p, 5 * sigma))
        check(seqs == sorted(set(seqs)), "loss 0.05: what arrived is in order, without repeats")
        s = up(t, 1)
        check(s["packets_in"] == n and s["packets_out"] == len(seqs) and s["dropped"]["loss"] == lost,
              "loss 0.05: relay in %d out %d dropped.loss %d == sent %d, arrived %d, lost %d" %
              (s["packets_in"], s["packets_out"], s["dropped"]["loss"], n, len(seqs), lost))
        down = t.relay.stats("p1")["p1"]["down"]
        check(down["dropped"]["loss"] == 0, "loss set on up only: nothing dropped down")

        # 2b. Gilbert-Elliott bursts: losses come in runs (mean run 1 / burst_exit = 4 in the bad state).
        t.relay.reset("p1")
        t.relay.set("p1", "up", burst_enter=0.01, burst_exit=0.25)
        seqs = transfer(t, 1, 4000)
        got = set(seqs)
        runs, run = [], 0
        for i in range(4000):
            if i in got:
                if run:
                    runs.append(run)
                run = 0
            else:
                run += 1
        s = up(t, 1)
        check(s["dropped"]["burst"] == 4000 - len(seqs) and s["dropped"]["loss"] == 0 and runs and
              sum(runs) / len(runs) >= 2, "bursts: %d lost in %d runs (mean %.1f), all counted as burst (%d)" %
              (4000 - len(seqs), len(runs), sum(runs) / max(1, len(runs)), s["dropped"]["burst"]))

        # 3. Duplication.
        t.relay.reset("p1")
        t.relay.set("p1", "up", duplicate=0.05)
        seqs = transfer(t, 1, 2000)
        dups = len(seqs) - len(set(seqs))
        s = up(t, 1)
        check(set(seqs) == set(range(2000)) and dups > 40 and dups == s["duplicated"],
              "duplicate 0.05: every datagram arrived, %d twice (relay duplicated %d)" % (dups, s["duplicated"]))

        # 4. Reordering: a held-back datagram is overtaken by later ones.
        t.relay.reset("p1")
        t.relay.set("p1", "up", reorder=0.05, reorder_ms=5)
        seqs = transfer(t, 1, 2000, pps=2000)
        late = sum(1 for a, b in zip(seqs, seqs[1:]) if b < a)
        s = up(t, 1)
        check(sorted(seqs) == list(range(2000)) and late > 20 and s["reordered"] > 40,
              "reorder 0.05 + 5 ms: all arrived, %d out of order (relay reordered %d)" % (late, s["reordered"]))

        # 5. Delay and jitter: the RTT rises by the delay; jitter widens its spread.
        t.relay.reset("p1")
        echo = t.popen_in(t.server_ns, PROBE + ["echo", t.server_address, str(PORT)], stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, text=True)
        echo.stderr.readline()
        try:
            base = rtts(t, 1)
            t.relay.set("p1", "up", delay_ms=20)
            delayed = rtts(t, 1)
            t.relay.set("p1", "up", jitter_ms=30)
            jittered = rtts(t, 1)
        finally:
            echo.kill()
            echo.wait()
        check(len(base) == 20 and len(delayed) == 20 and len(jittered) == 20, "every round trip answered")
        if base and delayed and jittered:
            check(min(delayed) >= min(base) + 20 - 0.5 and min(delayed) < min(base) + 30,
                  "delay 20 ms: RTT min %.2f -> %.2f ms" % (min(base), min(delayed)))
            # Uniform [0, 30] ms over 20 samples spans about 28 ms; this machine's own noise is a
            # few ms (more while it builds), so the check asks for half of that.
            spread = (max(base) - min(base), max(delayed) - min(delayed), max(jittered) - min(jittered))
            median = sorted(jittered)[10] - sorted(delayed)[10]
            check(spread[2] > 15 and median > 5 and min(jittered) >= min(base) + 20 - 0.5,
                  "jitter 30 ms widens the spread: %.2f / %.2f / %.2f ms (none, delay, delay + jitter), median +%.1f ms"
                  % (spread + (median,)))

        # 6. Blackout: nothing arrives, all counted; off, traffic again.
        t.relay.reset("p1")
        t.relay.blackout("p1", True)
        seqs = transfer(t, 1, 200)
        s = up(t, 1)
        check(seqs == [] and s["dropped"]["blackout"] == 200, "blackout on: 0 of 200 arrived, %d counted" %
              s["dropped"]["blackout"])
        seqs = transfer(t, 2, 200)
        check(len(seqs) == 200, "blackout of path 1 leaves path 2 alone: %d of 200" % len(seqs))
        t.relay.blackout("p1", False)
        seqs = transfer(t, 1, 200)
        check(seqs == list(range(200)), "blackout off: 200 of 200 again (%d)" % len(seqs))

        # 7. tbf at 20 Mbit/s on path 2 up: a flood is held to about 20 Mbit/s.
        t.set_rate(2, "up", 20)
        sink = start_sink(t, idle=1.0, timeout=30)
        t.run_in(t.client_ns, PROBE + ["flood", t.client_address(2), t.server_address, str(PORT), "3", "1400"])
        got = sink_result(sink)
        # Each 1400-byte payload is 1428 bytes of IP; the first datagram starts the clock.
        mbit = (len(got["seqs"]) - 1) * 1428 * 8 / (got["last"] - got["first"]) / 1e6
        check(17 <= mbit <= 21, "tbf 20 Mbit/s: flood received at %.2f Mbit/s" % mbit)
        t.set_rate(2, "up", None)

        # 7b. A reset while packets wait: they still arrive, outside the new counters, so the
        # accounting below holds from zero.
        t.relay.reset("p3")
        t.relay.set("p3", "up", delay_ms=1000)
        sink = start_sink(t, idle=2.0, timeout=30)
        send(t, 3, 50)
        held = up(t, 3)["queue"]
        t.relay.reset("p3")
        after = up(t, 3)
        seqs = sink_result(sink)["seqs"]
        final = up(t, 3)
        check(held == 50 and after["queue"] == 0 and after["packets_in"] == 0 and sorted(seqs) == list(range(50))
              and final["packets_out"] == 0 and final["queue"] == 0,
              "reset with 50 held: queue %d -> %d, all %d still arrived, counted out afterwards %d (0)" %
              (held, after["queue"], len(seqs), final["packets_out"]))

        # 8. Bad control commands answer ok:false naming the field; the relay keeps serving.
        for line, expected in (("set p1 loss=1.5", "set: loss: 1.5 is not in [0, 1]"),
                               ("set p1 up delay_ms=abc", "set: delay_ms: 'abc' is not a number"),
                               ("set p1 colour=red", "set: colour: no such setting"),
                               ("set nosuch loss=0.1", "set: path: no path named 'nosuch'"),
                               ("blackout p1 maybe", "blackout: state: expected 'on' or 'off'"),
                               ("frobnicate", "'frobnicate': no such command"),
                               ("set p1", "set: settings: none given")):
            a = t.relay.command(line)
            check(a.get("ok") is False and a.get("error", "").startswith(expected), "%r -> %s" % (line, a))
        # Raw bytes that are not UTF-8 in a field name: answered (the bytes replaced), no crash.
        t.relay.sock.sendall(b"set p1 \xff\xfe=1\n")
        a = json.loads(t.relay.file.readline())
        check(a.get("ok") is False and "no such setting" in a.get("error", ""), "invalid UTF-8 answered: %s" % a)
        check(t.relay.stats("p1")["p1"]["settings"]["up"]["loss"] == 0, "a refused set changed nothing")
        a = t.relay.command("set p1 down loss=0.5 delay_ms=x")
        check(a.get("ok") is False and t.relay.stats("p1")["p1"]["settings"]["down"]["loss"] == 0,
              "a set with one bad field applies none of its fields")
        # Every packet is accounted for: in + duplicated == out + dropped + still queued.
        for name, ps in t.relay.stats().items():
            for d in ("up", "down"):
                c = ps[d]
                check(c["packets_in"] + c["duplicated"] == c["packets_out"] + sum(c["dropped"].values()) + c["queue"],
                      "%s %s: in %d + duplicated %d == out %d + dropped %d + queued %d" %
                      (name, d, c["packets_in"], c["duplicated"], c["packets_out"], sum(c["dropped"].values()),
                       c["queue"]))
        relay_proc = t.relay_proc
    check(relay_proc.returncode == 0, "kwik-relay exited 0 on SIGTERM (%s)" % relay_proc.returncode)
    check(t.exists() == [], "the namespaces are gone after the test: %s" % t.exists())

    # 9. Cleanup after a failing step inside the with block.
    # A process the failing step left in a namespace is killed, not left running there.
    left = None
    try:
        with netns_topology.topology(relay_exe, paths=2) as t2:
            names = [t2.client_ns, t2.relay_ns, t2.server_ns]
            left = t2.popen_in(t2.client_ns, ["sleep", "300"])
            raise RuntimeError("deliberate failure")
    except RuntimeError:
        pass
    check(not any(os.path.exists("/run/netns/" + ns) for ns in names), "a failing step: namespaces removed")
    try:
        left.wait(timeout=5)
    except subprocess.TimeoutExpired:
        left.kill()
        left.wait()
        check(False, "a failing step: the process it left in the client namespace was killed")

    # 10. Cleanup on SIGTERM of the process that built a topology.
    code = ("import sys, time; sys.path.insert(0, %r); import netns_topology as n; t = n.topology(%r, paths=2); "
            "t.create(); print(t.client_ns, t.relay_ns, t.server_ns, flush=True); time.sleep(60)" % (here, relay_exe))
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    names = child.stdout.readline().split()
    existed = all(os.path.exists("/run/netns/" + ns) for ns in names)
    child.terminate()
    child.wait(timeout=20)
    check(len(names) == 3 and existed and not any(os.path.exists("/run/netns/" + ns) for ns in names),
          "SIGTERM: the child's namespaces %s existed and are removed" % names)

    # 12. Device mode: s0 has no address (kwikd takes it with net_af_packet); attach_tap() bridges
    # a device (kwikd's net_tap TAP; here a veth standing in for it) to s0, and traffic of every
    # path reaches an address behind it.
    with netns_topology.topology(relay_exe, paths=2, server_mode="device") as t3:
        r = t3.run_in(t3.server_ns, ["ip", "-4", "-o", "addr", "show", "dev", "s0"])
        check(r.returncode == 0 and r.stdout.strip() == "", "device mode: s0 has no IPv4 address: %r" % r.stdout)
        t3.run_in(t3.server_ns, ["ip", "link", "add", "ktap", "type", "veth", "peer", "name", "kwikd0"], check=True)
        t3.attach_tap("ktap")
        for cmd in (["ip", "addr", "add", t3.server_address + "/24", "dev", "kwikd0"], ["ip", "link", "set", "kwikd0", "up"],
                    ["ip", "route", "add", "default", "via", t3.server_gateway]):
            t3.run_in(t3.server_ns, cmd, check=True)
        for path in (1, 2):
            seqs = transfer(t3, path, 300)
            check(seqs == list(range(300)), "device mode + attach_tap: path %d, 300 of 300 through the bridge (%d)" %
                  (path, len(seqs)))

    # 13. IPv6 (dual stack): loss on path 2 up counted exactly; delay on path 2 down seen in the
    # RTT (both directions of IPv6 through the relay); IPv4 on the same topology still passes.
    with netns_topology.topology(relay_exe, paths=2, ipv6=True) as t6:
        sink = t6.popen_in(t6.server_ns, PROBE + ["sink", t6.server_address6, str(PORT), "0.5", "20"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        sink.stderr.readline()
        t6.relay.set("p2", "up", loss=0.1)
        t6.run_in(t6.client_ns, PROBE + ["send", t6.client_address6(2), t6.server_address6, str(PORT), "2000", "200",
                                         "5000"], check=True)
        seqs = sink_result(sink)["seqs"]
        s = t6.relay.stats("p2")["p2"]
        sigma = (2000 * 0.1 * 0.9) ** 0.5
        check(abs(2000 - len(seqs) - 200) <= 5 * sigma and s["up"]["packets_in"] == 2000 and
              s["up"]["packets_out"] == len(seqs) and s["up"]["dropped"]["loss"] == 2000 - len(seqs),
              "IPv6 loss 0.1 on path 2 up: %d of 2000 arrived; relay in %d out %d lost %d" %
              (len(seqs), s["up"]["packets_in"], s["up"]["packets_out"], s["up"]["dropped"]["loss"]))
        t6.relay.reset("p2")
        echo = t6.popen_in(t6.server_ns, PROBE + ["echo", t6.server_address6, str(PORT)], stdout=subprocess.DEVNULL,
                           stderr=subprocess.PIPE, text=True)
        echo.stderr.readline()
        try:
            t6.relay.set("p2", "down", delay_ms=15)
            r = t6.run_in(t6.client_ns, PROBE + ["rtt", t6.client_address6(2), t6.server_address6, str(PORT), "10"])
            rtt6 = json.loads(r.stdout)["rtt_ms"]
        finally:
            echo.kill()
            echo.wait()
        s = t6.relay.stats("p2")["p2"]
        check(len(rtt6) == 10 and min(rtt6) >= 15 - 0.5 and s["down"]["delayed"] == 10,
              "IPv6 delay 15 ms on path 2 down: RTT min %s ms, relay delayed %d down" %
              (min(rtt6) if rtt6 else None, s["down"]["delayed"]))
        sink = t6.popen_in(t6.server_ns, PROBE + ["sink", t6.server_address, str(PORT), "0.5", "20"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        sink.stderr.readline()
        t6.run_in(t6.client_ns, PROBE + ["send", t6.client_address(1), t6.server_address, str(PORT), "300", "200",
                                         "5000"], check=True)
        check(sink_result(sink)["seqs"] == list(range(300)), "dual stack: IPv4 on path 1 still 300 of 300 in order")

    # 11. sweep() removes namespaces of a dead run (the pid in the name is gone).
    dead = subprocess.Popen(["true"])
    dead.wait()
    name = "%s%dx1-c" % (netns_topology.PREFIX, dead.pid)
    subprocess.run(["ip", "netns", "add", name], check=True)
    removed = netns_topology.sweep()
    check(name in removed and not os.path.exists("/run/netns/" + name), "sweep() removed %s" % name)


try:
    main()
except Exception as e:  # a crash of the test is a failure, not an error without a summary
    check(False, "relay test raised %r" % e)
    raise
print("%d failure(s)" % len(failures))
sys.exit(1 if failures else 0)
