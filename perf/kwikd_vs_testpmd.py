#!/usr/bin/env python3
"""kwikd against dpdk-testpmd on the same virtual devices (issue 4 benchmark).

One worker lcore (lcore 1; main lcore 0) receives Kwik data packets from
  --vdev net_pcap0,rx_pcap=<pcap>,infinite_rx=1 --vdev net_null0,no-rx=1
and runs them through the whole pipeline (classify, IPv4 + UDP checksum, path lookup, parse +
CRC32C verify, ACK tracking, reassembly, delivery to a discard endpoint, ACKs out of port 0's
tx, which net_pcap drops without a tx_pcap). dpdk-testpmd io-forwards the same vdevs
(port 0 -> port 1) on the same lcores in the same run, with and without hugepages.

With infinite_rx the PMD replays the capture: only the first pass carries new data, every
later pass is duplicates (parse + CRC + path lookup + ack_tracker duplicate check, then
dropped: no reassembly and no ACK). So three figures are reported:
  - the steady rate over --seconds (replayed, duplicate data), against testpmd's;
  - the rate over kwikd's first pass (all new data; short, so noisier), against testpmd's;
  - callgrind instructions per packet for the worker thread over the first pass (all new
    data, every packet counted), and over replayed duplicates, against testpmd's forwarding
    thread (--callgrind).
Checks that fail the run: any kwikd drop, or less stream data delivered than the capture holds
(a flow-control or connection failure would show there).

Usage (root: EAL, hugepages):
  python3 perf/kwikd_vs_testpmd.py --build build --seconds 10 --hugepages both --callgrind
Figures and their analysis: perf/RESULTS.md section 6. Python 3 stdlib only."""
import argparse
import datetime
import math
import os
import re
import shutil
import signal
import statistics
import struct
import subprocess
import sys
import tempfile
import textwrap
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PCAP_MAC = "02:70:63:61:70:00"  # net_pcap0's MAC in DPDK 22.11
MBUF_FOOTPRINT = 2368           # bytes per mbuf, as dataplane/engine/config.cpp counts them
WIRE_OVERHEAD = 24              # FCS 4 + preamble 8 + inter-frame gap 12
HUGEPAGES_2M = "/sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages"
SECTION = "## 6. kwikd against dpdk-testpmd (issue 4 benchmark)"
BEGIN = "<!-- kwikd_vs_testpmd.py: generated figures begin -->"
END = "<!-- kwikd_vs_testpmd.py: generated figures end -->"


def log(msg):
    print(msg, flush=True)


class fail(Exception):
    pass


# ---------------------------------------------------------------------------------------------
# Processes: every one started here is tracked and killed on the way out, even on failure.

_live = []


class process:
    """A child whose stdout+stderr lines are collected with their arrival time."""

    def __init__(self, argv, what, stdin=subprocess.DEVNULL):
        self.what = what
        self.argv = argv
        self.lines = []  # (monotonic time, line)
        self.cond = threading.Condition()
        self.proc = subprocess.Popen(argv, stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     text=True, errors="replace", start_new_session=True)
        _live.append(self)
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for line in self.proc.stdout:
            with self.cond:
                self.lines.append((time.monotonic(), line.rstrip("\n")))
                self.cond.notify_all()
        with self.cond:
            self.cond.notify_all()

    def wait_for(self, predicate, timeout):
        """Waits until predicate(lines) is true or the process ended; returns its value."""
        end = time.monotonic() + timeout
        with self.cond:
            while True:
                v = predicate(self.lines)
                if v:
                    return v
                if self.proc.poll() is not None and not self.reader.is_alive():
                    return predicate(self.lines)
                left = end - time.monotonic()
                if left <= 0:
                    return None
                self.cond.wait(min(left, 0.5))

    def text(self):
        with self.cond:
            return "\n".join(l for _, l in self.lines)

    def stop(self, sig=signal.SIGTERM, timeout=120):
        """Signals the child, waits for it (killing its process group if it hangs); returns rc."""
        if self.proc.poll() is None:
            try:
                self.proc.send_signal(sig)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                log("  %s did not stop in %d s: killing it" % (self.what, timeout))
                self.kill()
        self.reader.join(10)
        if self in _live:
            _live.remove(self)
        return self.proc.returncode

    def kill(self):
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait(30)


def kill_all():
    for p in list(_live):
        p.kill()
        _live.remove(p)


def remove_runtime(name):
    """What EAL and kwikd leave under a file prefix / shared-memory name."""
    shutil.rmtree("/var/run/dpdk/" + name, ignore_errors=True)
    for f in (name, name + ".lock"):
        try:
            os.unlink("/dev/shm/" + f)
        except FileNotFoundError:
            pass


# ---------------------------------------------------------------------------------------------
# Hugepages: a private hugetlbfs mount and a temporary raise of the 2 MiB page count.

class hugepages:
    def __init__(self, work, mb, name="huge"):
        self.dir = os.path.join(work, name)
        self.pages = (mb + 1) // 2 + 64
        self.before = None
        self.mounted = False

    def __enter__(self):
        with open(HUGEPAGES_2M) as f:
            self.before = int(f.read())
        self.want = self.before + self.pages
        with open(HUGEPAGES_2M, "w") as f:
            f.write(str(self.want))
        with open(HUGEPAGES_2M) as f:
            got = int(f.read())
        if got < self.want:
            self._restore()
            raise fail("could reserve only %d of %d 2 MiB hugepages" % (got, self.want))
        os.makedirs(self.dir, exist_ok=True)
        subprocess.run(["mount", "-t", "hugetlbfs", "-o", "pagesize=2M", "nodev", self.dir], check=True)
        self.mounted = True
        return self

    def _restore(self):
        # Gives back our pages only: another program may have raised the count meanwhile.
        with open(HUGEPAGES_2M) as f:
            now = int(f.read())
        with open(HUGEPAGES_2M, "w") as f:
            f.write(str(max(self.before, now - self.pages)))

    def __exit__(self, *exc):
        if self.mounted:
            # An EAL started without --huge-dir elsewhere may have picked this mount; detach it
            # lazily then, the files stay theirs until they exit.
            if subprocess.run(["umount", self.dir], check=False, stderr=subprocess.DEVNULL).returncode != 0:
                subprocess.run(["umount", "-l", self.dir], check=False)
            self.mounted = False
        if self.before is not None:
            self._restore()
            self.before = None
        return False


# ---------------------------------------------------------------------------------------------
# Traffic and configuration

def read_pcap(path):
    """(packets, total frame bytes) of a classic little-endian pcap."""
    n = total = 0
    with open(path, "rb") as f:
        head = f.read(24)
        if len(head) != 24 or struct.unpack("<I", head[:4])[0] not in (0xA1B2C3D4, 0xA1B23C4D):
            raise fail("%s is not a little-endian pcap" % path)
        while True:
            rec = f.read(16)
            if len(rec) < 16:
                break
            incl = struct.unpack("<IIII", rec)[2]
            f.seek(incl, 1)
            n += 1
            total += incl
    return n, total


def generate(args, work, name, streams, packets_per_stream):
    pcap = os.path.join(work, name + ".pcap")
    cmd = [os.path.join(args.build, "tools/pcapgen/kwik-pcapgen"), "-o", pcap, "--connections", "1",
           "--paths", str(args.paths), "--streams", str(streams),
           "--stream-size", str(packets_per_stream * args.payload), "--max-frame-data", str(args.payload),
           "--frames-per-packet", "1", "--ack-every", "0", "--keepalive-every", "0",
           "--window-update-every", "0", "--server-mac", PCAP_MAC, "--interval-us", "1", "--seed", "1"]
    subprocess.run(cmd, check=True)
    packets, frame_bytes = read_pcap(pcap)
    if packets != streams * packets_per_stream:
        raise fail("%s holds %d packets, expected %d" % (pcap, packets, streams * packets_per_stream))
    return {"path": pcap, "packets": packets, "frame_bytes": frame_bytes, "streams": streams,
            "stream_bytes": streams * packets_per_stream * args.payload, "command": cmd}


def memory_for(packets):
    """(mbufs, EAL -m MiB) for a pool that holds the whole capture (net_pcap's infinite_rx keeps
    every packet as an mbuf of the rx pool) plus kwikd's rings and caches."""
    mbufs = (1 << max(15, math.ceil(math.log2(packets + 16384 + 1)))) - 1
    mb = (mbufs * MBUF_FOOTPRINT * 2 >> 20) + 256  # testpmd fails its pool at 1024 MiB for 620 MiB of mbufs
    return mbufs, ((mb + 255) // 256) * 256


def vdevs(pcap, infinite):
    return ["net_pcap0,rx_pcap=%s,infinite_rx=%d" % (pcap, 1 if infinite else 0), "net_null0,no-rx=1"]


def kwikd_config(path, name, traffic, huge, mbufs, memory_mb, paths, stats_ms, infinite=True):
    """The configuration: deploy/kwikd.toml's keys, with the vdevs above, one connection bound
    to the discard endpoint over the capture's paths, windows that cover the whole capture (the
    capture's sender never waits for credit) and timers that never fire during a run."""
    dev = vdevs(traffic["path"], infinite)
    stream_bytes = traffic["stream_bytes"] // traffic["streams"]
    stream_window = 1 << max(20, math.ceil(math.log2(stream_bytes)))
    connection_window = 1 << max(24, math.ceil(math.log2(traffic["stream_bytes"])))
    eal_args = '["--huge-dir", "%s", "--huge-unlink"]' % huge if huge else "[]"
    text = """# Generated by perf/kwikd_vs_testpmd.py from deploy/kwikd.toml's keys.
[kwikd]
name = "%(name)s"
log_level = "notice"
main_lcore = 0
worker_lcores = [1]
hugepages = %(hp)s
memory_mb = %(memory_mb)d
eal_args = %(eal_args)s
stats_interval_ms = %(stats_ms)d

[[port]]
name = "port0"
device = "%(dev0)s"
rx_desc = 1024
tx_desc = 1024
mtu = 1500
rss = true
checksum_offload = true
promiscuous = false
addresses = ["10.100.0.1/16"]
kwik_ports = [7707]

[[port]]
name = "port1"
device = "%(dev1)s"
addresses = ["10.200.0.1/16"]
kwik_ports = [7707]

[exception]
device = "none"

[transport]
stream_window = %(stream_window)d
connection_window = %(connection_window)d
max_streams = %(max_streams)d
max_paths = 8
max_packet_size = 1400
keepalive_ms = 3600000
idle_timeout_ms = 86400000
cc = "cubic"
coupled = true
scheduler = "min_rtt"

[[connection]]
id = "bench-0"
endpoint = "discard"
""" % {"name": name, "hp": "true" if huge else "false", "memory_mb": memory_mb, "eal_args": eal_args,
       "stats_ms": stats_ms, "dev0": dev[0], "dev1": dev[1], "stream_window": stream_window,
       "connection_window": connection_window, "max_streams": max(1024, traffic["streams"])}
    for p in range(1, paths + 1):
        text += '[[connection.path]]\npath_id = %d\nlocal = "10.100.0.1:7707"\nremote = "10.0.%d.2:40000"\n' % (p, p)
    text += "\n[limits]\nmbufs = %d\nmbuf_cache = 256\nburst = 32\n" % mbufs
    with open(path, "w") as f:
        f.write(text)
    return path


_run_number = [0]
LOADAVG = []


def loadavg():
    with open("/proc/loadavg") as f:
        return f.read().split()[0]


def unique(prefix):
    _run_number[0] += 1
    return "%s%d_%d" % (prefix, os.getpid(), _run_number[0])


# ---------------------------------------------------------------------------------------------
# Samples: (time, cumulative rx packets)

KWIKD_STATS = re.compile(r"^kwikd: rx (\d+) packets \((\d+) Kwik\), tx (\d+), dropped (\d+)")
TESTPMD_PORT0 = re.compile(r"NIC statistics for port 0")
TESTPMD_RX = re.compile(r"^\s*RX-packets:\s+(\d+)")


def kwikd_samples(lines):
    out = []
    for t, l in lines:
        m = KWIKD_STATS.match(l)
        if m:
            out.append((t, int(m.group(1))))
    return out


def testpmd_samples(lines):
    out = []
    port0 = False
    for t, l in lines:
        if TESTPMD_PORT0.search(l):
            port0 = True
            continue
        m = TESTPMD_RX.match(l)
        if m and port0:
            out.append((t, int(m.group(1))))
            port0 = False
    return out


def window(samples, start, seconds):
    """The first sample at or after start and the first one seconds later."""
    a = next((s for s in samples if s[0] >= start), None)
    if a is None:
        return None
    b = next((s for s in samples if s[0] >= a[0] + seconds), None)
    return (a, b) if b else None


def measure(p, samples_of, seconds, warmup, started, timeout):
    """Waits for the process's first sample with packets, warm-up, then the window."""
    first = p.wait_for(lambda ls: next((s for s in samples_of(ls) if s[1] > 0), None), timeout)
    if first is None:
        raise fail("%s: no packets counted within %d s:\n%s" % (p.what, timeout, p.text()[-3000:]))
    w = p.wait_for(lambda ls: window(samples_of(ls), first[0] + warmup, seconds), warmup + seconds + 30)
    if w is None:
        raise fail("%s: no measurement window:\n%s" % (p.what, p.text()[-3000:]))
    (t0, n0), (t1, n1) = w
    return {"pps": (n1 - n0) / (t1 - t0), "window_s": t1 - t0, "window_start_packets": n0,
            "startup_s": first[0] - started}


def testpmd_argv(name, traffic, huge, mbufs, memory_mb):
    """io forwarding on lcore 1 (main lcore 0), port 0 -> port 1, counters every second."""
    argv = ["dpdk-testpmd", "-l", "0,1", "--main-lcore", "0", "--file-prefix", name, "--no-pci"]
    argv += ["--huge-dir", huge, "--huge-unlink", "-m", str(memory_mb)] if huge else ["--no-huge", "-m", str(memory_mb)]
    for v in vdevs(traffic["path"], True):
        argv += ["--vdev", v]
    return argv + ["--", "--forward-mode=io", "--no-flush-rx", "--total-num-mbufs=%d" % mbufs, "--stats-period", "1"]


def timed_run(args, argv, what, name, samples_of, sig):
    """Runs a program over one measurement window; returns the rate and the process."""
    started = time.monotonic()
    p = process(argv, what)
    try:
        r = measure(p, samples_of, args.seconds, args.warmup, started, 300)
    finally:
        rc = p.stop(sig)
        remove_runtime(name)
    if rc != 0:
        raise fail("%s exited %s:\n%s" % (what, rc, p.text()[-3000:]))
    return r, p


def run_testpmd(args, traffic, huge, mbufs, memory_mb):
    name = unique("kbtp")
    argv = ["stdbuf", "-oL"] + testpmd_argv(name, traffic, huge, mbufs, memory_mb)
    return timed_run(args, argv, "dpdk-testpmd", name, testpmd_samples, signal.SIGINT)[0]


def kwikd_final(text):
    stats = [KWIKD_STATS.match(l) for l in text.splitlines()]
    stats = [m for m in stats if m]
    if not stats or "kwikd: stopped" not in text:
        raise fail("kwikd did not report its final counters:\n" + text[-3000:])
    last = stats[-1]
    m = re.search(r"kwikd: connection bench-0: (\d+) streams, (\d+) bytes received", text)
    return {"rx": int(last.group(1)), "kwik": int(last.group(2)), "tx": int(last.group(3)),
            "dropped": int(last.group(4)), "streams": int(m.group(1)) if m else 0,
            "delivered": int(m.group(2)) if m else 0,
            "drop_lines": [l for l in text.splitlines() if re.match(r"kwikd: (worker|connection) .* dropped", l)]}


def check_kwikd(final, traffic, expect_all):
    if final["dropped"] != 0 or final["drop_lines"]:
        raise fail("kwikd dropped %d packets: %s" % (final["dropped"], "; ".join(final["drop_lines"])))
    want = traffic["stream_bytes"] if expect_all else final["rx"] * (traffic["stream_bytes"] // traffic["packets"])
    if final["delivered"] != want:
        raise fail("kwikd delivered %d stream bytes, expected %d (flow control or a closed connection?)"
                   % (final["delivered"], want))


def run_kwikd(args, work, traffic, huge, mbufs, memory_mb):
    name = unique("kwikbench")
    cfg = kwikd_config(os.path.join(work, name + ".toml"), name, traffic, huge, mbufs, memory_mb, args.paths, 10)
    argv = [os.path.join(args.build, "dataplane/kwikd"), "--config", cfg]
    r, p = timed_run(args, argv, "kwikd", name, kwikd_samples, signal.SIGTERM)
    final = kwikd_final(p.text())
    check_kwikd(final, traffic, True)
    # The first pass: from the first sample with packets to the last one still inside it.
    samples = kwikd_samples(p.lines)
    first = [s for s in samples if 0 < s[1] <= traffic["packets"]]
    r["first_pass_pps"] = (first[-1][1] - first[0][1]) / (first[-1][0] - first[0][0]) if len(first) >= 3 else None
    r["first_pass_s"] = first[-1][0] - first[0][0] if len(first) >= 2 else 0
    r["final"] = final
    r["new_in_window"] = max(0, traffic["packets"] - r["window_start_packets"])
    return r


# ---------------------------------------------------------------------------------------------
# Callgrind

def callgrind_threads(prefix):
    """{thread number: (file, Ir)} of one --separate-threads run."""
    d, base = os.path.split(prefix)
    out = {}
    for f in sorted(os.listdir(d)):
        if not f.startswith(base + "-"):
            continue
        path = os.path.join(d, f)
        thread = ir = None
        with open(path) as fh:
            for line in fh:
                if line.startswith("thread:"):
                    thread = int(line.split()[1])
                elif line.startswith("summary:"):
                    ir = int(line.split()[1])
                    break
        if thread is not None and ir is not None:
            out[thread] = (path, ir)
    return out


def busiest_thread(prefix):
    """The lcore thread: the busiest thread other than the main one (which loads the capture)."""
    threads = callgrind_threads(prefix)
    others = {t: v for t, v in threads.items() if t != 1}
    if not others:
        raise fail("no callgrind thread files for " + prefix)
    t = max(others, key=lambda k: others[k][1])
    return others[t]


def annotate(path, inclusive, packets, top):
    """Top functions of one thread's profile as (Ir per packet, share, name)."""
    argv = ["callgrind_annotate", "--auto=no", "--threshold=100"] + (["--inclusive=yes"] if inclusive else []) + [path]
    out = subprocess.run(argv, capture_output=True, text=True).stdout
    rows = []
    total = None
    for line in out.splitlines():
        m = re.match(r"^\s*([\d,]+) \(\s*([\d.]+)%\)\s+(.*)$", line)
        if not m:
            continue
        ir = int(m.group(1).replace(",", ""))
        name = m.group(3)
        if name == "PROGRAM TOTALS":
            total = ir
            continue
        # file:function [object] -> function [object basename]
        m2 = re.match(r"^(.*?):(.*?)(?: \[(.*)\])?$", name)
        if m2:
            fn = m2.group(2)
            obj = os.path.basename(m2.group(3)) if m2.group(3) else ""
            name = fn + (" [" + obj + "]" if obj and not obj.startswith("kwikd") else "")
        rows.append((ir / packets, float(m.group(2)), name))
    # Inlined code shows up once per source file it came from; merge rows with the same name.
    merged = {}
    for per, share, name in rows:
        if name in merged:
            if not inclusive:
                merged[name] = (merged[name][0] + per, merged[name][1] + share, name)
        else:
            merged[name] = (per, share, name)
    return sorted(merged.values(), key=lambda r: -r[0])[:top], total


def callgrind_argv(work, name):
    """valgrind's command line: one profile per thread; --fair-sched lets the main thread print
    its counters between the lcore thread's time slices, so a run stops within a few hundred
    packets of where it is asked to."""
    prefix = os.path.join(work, "callgrind", name)
    os.makedirs(os.path.dirname(prefix), exist_ok=True)
    return prefix, ["valgrind", "--tool=callgrind", "--fair-sched=yes", "--separate-threads=yes",
                    "--callgrind-out-file=" + prefix]


def run_until(argv, what, name, samples_of, stop_at, sig):
    """Runs a program under callgrind until its counters reach stop_at; returns its output."""
    log("  callgrind %s: until %d packets" % (what, stop_at))
    p = process(argv, what + " under callgrind")
    try:
        if not p.wait_for(lambda ls: any(s[1] >= stop_at for s in samples_of(ls)), 1800):
            raise fail("%s under callgrind did not reach %d packets:\n%s" % (what, stop_at, p.text()[-3000:]))
    finally:
        rc = p.stop(sig, timeout=600)
        remove_runtime(name)
    if rc != 0:
        raise fail("%s under callgrind exited %s:\n%s" % (what, rc, p.text()[-3000:]))
    return p.text()


def callgrind_kwikd(args, work, traffic, stop_at, what):
    """kwikd's worker thread until its rx counter reaches stop_at (replay after the capture's
    packets)."""
    name = unique("kwikcg")
    mbufs, memory_mb = memory_for(traffic["packets"])
    cfg = kwikd_config(os.path.join(work, name + ".toml"), name, traffic, None, mbufs, memory_mb, args.paths, 10)
    prefix, argv = callgrind_argv(work, name)
    argv += [os.path.join(args.build, "dataplane/kwikd"), "--config", cfg]
    final = kwikd_final(run_until(argv, "kwikd (%s)" % what, name, kwikd_samples, stop_at, signal.SIGTERM))
    check_kwikd(final, traffic, final["rx"] >= traffic["packets"])
    path, ir = busiest_thread(prefix)
    with open(path) as fh:
        if "worker::run" not in fh.read():
            raise fail("%s is not kwikd's worker thread" % path)
    return {"packets": final["rx"], "ir": ir, "file": path, "final": final}


def callgrind_testpmd(args, work, traffic, stop_at):
    name = unique("kbtpcg")
    mbufs, memory_mb = memory_for(traffic["packets"])
    prefix, argv = callgrind_argv(work, name)
    argv = ["stdbuf", "-oL"] + argv + testpmd_argv(name, traffic, None, mbufs, memory_mb)
    text = run_until(argv, "dpdk-testpmd", name, testpmd_samples, stop_at, signal.SIGINT)
    # The forward statistics printed at exit: port 0's RX-packets.
    m = re.search(r"Forward statistics for port 0\s+-+\s*\n\s*RX-packets:\s+(\d+)", text)
    if not m:
        raise fail("testpmd printed no forward statistics:\n" + text[-3000:])
    path, ir = busiest_thread(prefix)
    return {"packets": int(m.group(1)), "ir": ir, "file": path}


# ---------------------------------------------------------------------------------------------
# Report

def machine():
    model = "unknown"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    mhz = ""
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        m = re.search(r"^BogoMIPS:\s+([\d.]+)", out, re.M)
        hv = re.search(r"^Hypervisor vendor:\s+(\S+)", out, re.M)
        mhz = (", %s guest" % hv.group(1) if hv else "") + (", BogoMIPS %s" % m.group(1) if m else "")
    except OSError:
        pass
    return "%d cores, \"%s\"%s; %s" % (os.cpu_count(), model, mhz, os.uname().release)


def gbit(pps, bytes_per_packet):
    return pps * bytes_per_packet * 8 / 1e9


def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def fmt(x, spec):
    return format(x, spec) if x is not None else "-"


def report(args, traffic, timed, cg, command):
    lines = []
    lines.append("Command: `%s`  " % command)
    lines.append("Run: %s; machine: %s." % (datetime.datetime.now().strftime("%Y-%m-%d %H:%M"), machine()))
    lines.append("")
    lines += report_body(args, traffic, timed, cg)
    return "\n".join(wrap(lines))


def report_body(args, traffic, timed, cg):
    """The traffic, the rate table and the callgrind tables, as lines (perf/benchmark.py puts
    them in its own section)."""
    payload = traffic["stream_bytes"] / traffic["packets"]
    frame = traffic["frame_bytes"] / traffic["packets"]
    wire = frame + WIRE_OVERHEAD
    lines = []
    lines.append("Traffic: %d packets in one pass (1 connection, %d paths, %d streams of %d B, %d B of stream data "
                 "per packet, %d-byte frames, in order, no impairments), replayed by `infinite_rx=1`; vdevs `%s`."
                 % (traffic["packets"], args.paths, traffic["streams"], traffic["stream_bytes"] // traffic["streams"],
                    payload, frame, " ".join("--vdev " + v for v in vdevs("<pcap>", True))))
    lines.append("Rates: medians of %d alternating runs per mode, each over %g s after %g s of warm-up (start-up and "
                 "capture loading excluded); ratios are medians of each kwikd run over the testpmd run just before "
                 "it; Gbit/s of stream data (payload) and on the wire (frame + %d B FCS, preamble, gap). Load "
                 "average (1 min) before and after: %s." % (args.repeat, args.seconds, args.warmup, WIRE_OVERHEAD,
                                                            " and ".join(LOADAVG)))
    lines.append("")
    if timed:
        lines.append("| hugepages | testpmd Mpps (Gbit/s wire) | kwikd Mpps, replay | ratio | kwikd Gbit/s payload / wire "
                     "| kwikd Mpps, first pass (new data) | ratio | new data in the window |")
        lines.append("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
        for mode, rs in timed.items():
            tp = med([r["pps"] for r in rs["testpmd"]])
            kw = med([r["pps"] for r in rs["kwikd"]])
            fp = med([r["first_pass_pps"] for r in rs["kwikd"]])
            pairs = list(zip(rs["testpmd"], rs["kwikd"]))
            ratio = med([k["pps"] / t["pps"] for t, k in pairs])
            first_ratio = med([k["first_pass_pps"] / t["pps"] if k["first_pass_pps"] else None for t, k in pairs])
            new = sum(r["new_in_window"] for r in rs["kwikd"])
            lines.append("| %s | %s (%s) | %s | %s | %s / %s | %s | %s | %s |" % (
                mode, fmt(tp / 1e6, ".3f"), fmt(gbit(tp, wire), ".1f"), fmt(kw / 1e6, ".3f"), fmt(ratio, ".2f"),
                fmt(gbit(kw, payload), ".2f"), fmt(gbit(kw, wire), ".2f"),
                fmt(fp / 1e6 if fp else None, ".3f"), fmt(first_ratio, ".2f"),
                "%d%%" % round(100.0 * new / max(1, sum(r["pps"] * r["window_s"] for r in rs["kwikd"])))))
        lines.append("")
        lines.append("Every run, in order (Mpps): " + "; ".join(
            "%s: testpmd %s, kwikd %s (first pass %s over %.0f ms)" % (
                mode, " ".join(fmt(r["pps"] / 1e6, ".3f") for r in rs["testpmd"]),
                " ".join(fmt(r["pps"] / 1e6, ".3f") for r in rs["kwikd"]),
                " ".join(fmt(r["first_pass_pps"] / 1e6 if r["first_pass_pps"] else None, ".3f") for r in rs["kwikd"]),
                1000 * med([r["first_pass_s"] for r in rs["kwikd"]]))
            for mode, rs in timed.items()) + ".")
        k = next(iter(timed.values()))["kwikd"][-1]["final"]
        lines.append("Last kwikd run's final counters: rx %d packets, %d stream bytes delivered (= the capture's %d), "
                     "%d ACK packets sent, 0 dropped; new data was %.2f%% of the packets it received."
                     % (k["rx"], k["delivered"], traffic["stream_bytes"], k["tx"], 100.0 * traffic["packets"] / k["rx"]))
        lines.append("")
    if cg:
        lines.append("Callgrind, instructions per packet of the lcore thread (`--no-huge`; valgrind hides AVX-512, so "
                     "ISA-L runs a narrower CRC kernel than natively):")
        lines.append("")
        lines.append("| thread | packets | Ir per packet |")
        lines.append("| --- | ---: | ---: |")
        for row in cg["rows"]:
            lines.append("| %s | %d | %s |" % (row[0], row[1], fmt(row[2], ".0f")))
        lines.append("")
        lines.append("kwikd first pass, top functions by self cost (Ir per packet): " + "; ".join(
            "%s %.0f" % (name, per) for per, _, name in cg["self"][:args.top]) + ".")
        lines.append("")
        lines.append("kwikd first pass, inclusive (Ir per packet): " + "; ".join(
            "%s %.0f" % (name, per) for per, _, name in cg["inclusive"][:args.top]) + ".")
        lines.append("")
        lines.append("dpdk-testpmd forwarding lcore, top functions by self cost (Ir per packet; the Debian binaries "
                     "are stripped, so PMD functions show as addresses): " + "; ".join(
            "%s %.0f" % (name, per) for per, _, name in cg["testpmd_self"]) + ".")
    return lines


def wrap(lines):
    """Paragraphs to 100 columns like the rest of RESULTS.md; tables and the command stay whole."""
    out = []
    for line in lines:
        if line.startswith("|") or line.startswith("Command:") or len(line) <= 100:
            out.append(line)
        else:
            out.extend(textwrap.wrap(line, 100, break_long_words=False, break_on_hyphens=False))
    return out


def write_results(path, block, section=SECTION, begin=BEGIN, end=END):
    """Replaces what lies between the section's markers (or adds the section at the end)."""
    text = open(path).read() if os.path.exists(path) else "# Kwik benchmark results\n"
    generated = begin + "\n" + block + "\n" + end
    if begin in text and end in text:
        head, rest = text.split(begin, 1)
        _, tail = rest.split(end, 1)
        text = head + generated + tail
    elif section in text:
        head, tail = text.split(section, 1)
        text = head + section + "\n\n" + generated + "\n" + tail
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n\n" + generated + "\n"
    with open(path, "w") as f:
        f.write(text)


# ---------------------------------------------------------------------------------------------

def short_name(name):
    """A demangled C++ name without its argument list and namespaces, for the tables."""
    depth = 0
    out = ""
    for ch in name:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            continue
        if depth == 0:
            out += ch
    out = re.sub(r"\bkwik::(engine|transport|kdp)::", "", out)
    out = out.replace("std::span<rte_mbuf*, 18446744073709551615ul>", "span")
    return out.strip()


def timed_runs(args, work, traffic, modes, mbufs, memory_mb):
    """args.repeat alternating testpmd and kwikd runs per hugepage mode ("off", "on"); returns
    {mode: {"testpmd": [rate], "kwikd": [rate]}}. Uses args.build, .seconds, .warmup, .paths."""
    timed = {}
    for mode in modes:
        rs = timed.setdefault(mode, {"testpmd": [], "kwikd": []})
        ctx = hugepages(work, memory_mb) if mode == "on" else None
        huge = None
        if ctx:
            ctx.__enter__()
            huge = ctx.dir
        try:
            for i in range(args.repeat):
                r = run_testpmd(args, traffic, huge, mbufs, memory_mb)
                rs["testpmd"].append(r)
                log("   hugepages %s run %d: testpmd %.3f Mpps (start-up %.1f s)" % (mode, i + 1, r["pps"] / 1e6,
                                                                                    r["startup_s"]))
                r = run_kwikd(args, work, traffic, huge, mbufs, memory_mb)
                rs["kwikd"].append(r)
                log("   hugepages %s run %d: kwikd   %.3f Mpps, first pass %s Mpps (start-up %.1f s)" % (
                    mode, i + 1, r["pps"] / 1e6,
                    fmt(r["first_pass_pps"] / 1e6 if r["first_pass_pps"] else None, ".3f"), r["startup_s"]))
        finally:
            if ctx:
                ctx.__exit__(None, None, None)
    return timed


def callgrind_runs(args, work, traffic):
    """Instructions per packet: kwikd's worker over the first pass and over replayed duplicates,
    testpmd's forwarding lcore; plus the top functions. Uses args.replay_packets and .top too."""
    log("== callgrind")
    # First pass only: stop well inside the capture so every packet counted is new data.
    a = callgrind_kwikd(args, work, traffic, max(traffic["packets"] // 2, traffic["packets"] - 8192), "first pass")
    if a["packets"] > traffic["packets"]:
        raise fail("the first-pass callgrind run went past the capture (%d > %d packets)"
                   % (a["packets"], traffic["packets"]))
    first = a["ir"] / a["packets"]
    b = callgrind_kwikd(args, work, traffic, traffic["packets"] + args.replay_packets, "first pass + replay")
    # The replay's share: B's total minus the whole first pass at A's per-packet cost.
    dup = (b["ir"] - first * traffic["packets"]) / (b["packets"] - traffic["packets"])
    t = callgrind_testpmd(args, work, traffic, 100000)
    rows = [("kwikd worker, first pass (all new data)", a["packets"], first),
            ("kwikd worker, replay (duplicates; run 2 minus run 1)", b["packets"] - traffic["packets"], dup),
            ("dpdk-testpmd io forwarding lcore", t["packets"], t["ir"] / t["packets"])]
    self_rows, _ = annotate(a["file"], False, a["packets"], args.top)
    incl_rows, _ = annotate(a["file"], True, a["packets"], args.top + 8)
    self_rows = [(per, s, short_name(n)) for per, s, n in self_rows]
    incl_rows = [(per, s, short_name(n)) for per, s, n in incl_rows
                 if not re.search(r"clone|start_thread|0x0000000000020f10|worker_main|worker::run", n)]
    t_rows, _ = annotate(t["file"], False, t["packets"], 6)
    t_rows = [(per, s, short_name(n)) for per, s, n in t_rows]
    for row in rows:
        log("   %-55s %8d packets %8.0f Ir/packet" % row)
    log("   testpmd top self: " + "; ".join("%s %.0f" % (n, per) for per, _, n in t_rows))
    return {"rows": rows, "self": self_rows, "inclusive": incl_rows, "testpmd_self": t_rows}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", default=os.path.join(ROOT, "build"), help="meson build directory")
    ap.add_argument("--seconds", type=float, default=10, help="measured window per run")
    ap.add_argument("--warmup", type=float, default=2, help="seconds after the first packet before the window")
    ap.add_argument("--repeat", type=int, default=3, help="runs of each program per hugepage mode")
    ap.add_argument("--hugepages", choices=["both", "on", "off"], default="both")
    ap.add_argument("--callgrind", action="store_true", help="also count instructions per packet")
    ap.add_argument("--callgrind-only", action="store_true", help="skip the timed runs")
    ap.add_argument("--streams", type=int, default=256)
    ap.add_argument("--packets-per-stream", type=int, default=800)
    ap.add_argument("--paths", type=int, default=4)
    ap.add_argument("--payload", type=int, default=1400, help="stream data bytes per packet (one frame)")
    ap.add_argument("--replay-packets", type=int, default=100000,
                    help="duplicate packets in the second kwikd callgrind run")
    ap.add_argument("--top", type=int, default=14)
    ap.add_argument("--results", default=os.path.join(ROOT, "perf/RESULTS.md"),
                    help="file whose section 6 gets the figures")
    ap.add_argument("--no-results", action="store_true", help="print only")
    ap.add_argument("--keep", action="store_true", help="keep the work directory (pcaps, configs, profiles)")
    args = ap.parse_args()
    args.build = os.path.abspath(args.build)
    command = "python3 perf/kwikd_vs_testpmd.py " + " ".join(sys.argv[1:])
    for tool in ("dataplane/kwikd", "tools/pcapgen/kwik-pcapgen"):
        if not os.access(os.path.join(args.build, tool), os.X_OK):
            raise SystemExit("kwikd_vs_testpmd: %s is not built in %s" % (tool, args.build))
    for prog in ["dpdk-testpmd", "stdbuf"] + (["valgrind", "callgrind_annotate"] if args.callgrind or args.callgrind_only else []):
        if shutil.which(prog) is None:
            raise SystemExit("kwikd_vs_testpmd: %s not found (Debian packages dpdk-dev, coreutils, valgrind)" % prog)
    if os.geteuid() != 0:
        raise SystemExit("kwikd_vs_testpmd: run as root (EAL, hugepages)")
    # This process and its readers stay off lcore 1, where both programs poll.
    try:
        os.sched_setaffinity(0, {0})
    except OSError:
        pass

    work = tempfile.mkdtemp(prefix="kwik-vs-testpmd-")
    LOADAVG.append(loadavg())
    interrupted = []

    def on_signal(sig, _):
        interrupted.append(sig)
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_signal)
    try:
        log("== kwik-pcapgen: %d streams x %d packets" % (args.streams, args.packets_per_stream))
        traffic = generate(args, work, "traffic", args.streams, args.packets_per_stream)
        mbufs, memory_mb = memory_for(traffic["packets"])
        log("   %d packets, %d frame bytes, pool %d mbufs, EAL -m %d" % (traffic["packets"], traffic["frame_bytes"],
                                                                      mbufs, memory_mb))
        modes = [] if args.callgrind_only else (["off", "on"] if args.hugepages == "both" else [args.hugepages])
        timed = timed_runs(args, work, traffic, modes, mbufs, memory_mb)
        cg = callgrind_runs(args, work, traffic) if args.callgrind or args.callgrind_only else None

        LOADAVG.append(loadavg())
        block = report(args, traffic, timed, cg, command)
        log("")
        log(block)
        if not args.no_results:
            write_results(args.results, block)
            log("\n(written to %s)" % args.results)
        return 0
    except fail as e:
        log("kwikd_vs_testpmd: FAILED: %s" % e)
        return 1
    except KeyboardInterrupt:
        log("kwikd_vs_testpmd: interrupted")
        return 130
    finally:
        kill_all()
        if args.keep:
            log("work directory kept: " + work)
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
