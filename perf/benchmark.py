#!/usr/bin/env python3
"""The one benchmark command (issue 7): kwikd against dpdk-testpmd io forwarding, on identical
set-ups in the same run, written to perf/RESULTS.md section 13 with PNG plots.

(a) net_pcap infinite_rx -> net_null, with and without hugepages (perf/kwikd_vs_testpmd.py's
    runs, imported): Mpps, Gbit/s, the ratio to testpmd, callgrind instructions per packet
    (kwikd's first pass, its replay, testpmd's forwarding lcore).
(b) kwik-gen -> net_memif -> kwikd (discard endpoint; kwik-gen counts kwikd's ACKs), and
    kwik-gen -> net_memif -> dpdk-testpmd io forwarding (testpmd sends kwik-gen's packets
    straight back: --expect reflect), both with hugepages (memif moves no packets when the
    receiver runs --no-huge), for each stream payload size: the zero-loss rate by binary search
    (RFC 2544 26.1, kwik-gen --search, loss tolerance 0), Mpps and Gbit/s (payload and wire),
    the ratio kwikd/testpmd, latency percentiles at 90 % of the zero-loss rate (RFC 2544 26.2,
    kwik-gen's TSC timestamps), and kwikd's own counters after each run (kwikd-cmd counters:
    no drops but those the run expects).
(d) Scaling: (b) for kwikd with N worker lcores, each its own memif queue pair, kwik-gen with N
    workers placing every connection on the queue of the kwikd worker that owns it
    (--kwikd-workers); an N the machine has no cores for is skipped, saying why.

Lcores: kwik-gen's worker(s) and the DUT's forwarding lcore(s) each on cores of their own; the
main lcores on a core of their own where there is one, else each on the other program's worker
core (kwikd's main lcore wakes every 100 us, kwik-gen's reports once a second).

Usage (root: EAL, hugepages):
  python3 perf/benchmark.py --build build                  full run, about 8 minutes on 2 cores
  python3 perf/benchmark.py --quick --no-results --plots /tmp/p   smoke run, a minute or two
Exit status: 0 every check passed; 1 a check failed (the reason is printed); 2 bad arguments;
77 hugepages cannot be reserved here (not root, or the kernel refused them): nothing was run.
Python 3 stdlib; the plots need matplotlib (Debian python3-matplotlib)."""
import argparse
import datetime
import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kwikd_vs_testpmd as kvt  # noqa: E402

ROOT = kvt.ROOT
SECTION = "## 13. Line rate: RFC 2544 zero-loss throughput and latency (issue 7)"
BEGIN = "<!-- benchmark.py: generated figures begin -->"
END = "<!-- benchmark.py: generated figures end -->"
DUT_MAC = "02:6b:77:00:00:01"     # the DUT's memif port (kwikd or testpmd): kwik-gen's --dst-mac
GEN_MAC = "02:6b:77:00:00:02"     # kwik-gen's memif port
# memif ring slots, log2 (its maximum): 16384 packets absorb 16 ms of a forwarding lcore
# descheduled at 1 Mpps, as a NIC's rx ring of the same size would. On two shared cores the
# lcores are preempted now and then; with memif's default 1024 a few milliseconds lose packets.
MEMIF_RING_LOG2 = 14
GEN_MEMORY_MB = 512
KWIKD_MEMORY_MB = 512
KWIKD_MBUFS = 65535
# Drops kwikd may count in a search without failing the run: ACKs its tx queue refused while
# kwik-gen, overloaded in a trial above the zero-loss rate, was not reading its rx ring (a later
# ACK covers the same ranges). Every other reason fails the run.
EXPECTED_DROPS = {"tx_queue_full"}
GEN_BOUND = 0.9  # a zero-loss rate at this share of what kwik-gen can offer at all, or a best trial
                 # that offered less than this share of its rate: generator-bound

log = kvt.log
fail = kvt.fail
# The cores this command may use, read before it pins itself to kwik-gen's.
CORES = sorted(os.sched_getaffinity(0))


# ---------------------------------------------------------------------------------------------
# Options

def int_list(flag, text, low, high):
    try:
        values = [int(x) for x in text.split(",") if x.strip() != ""]
    except ValueError:
        raise SystemExit(usage_error("%s: %r is not a comma-separated list of integers" % (flag, text)))
    if not values:
        raise SystemExit(usage_error("%s: empty list" % flag))
    for v in values:
        if not low <= v <= high:
            raise SystemExit(usage_error("%s: %d is outside %d..%d" % (flag, v, low, high)))
    if len(set(values)) != len(values):
        raise SystemExit(usage_error("%s: %s lists a value twice" % (flag, text)))
    return values


def usage_error(msg):
    print("benchmark: " + msg, file=sys.stderr)
    return 2


def parse_args(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog="Figures and their analysis: perf/RESULTS.md section 13.")
    ap.add_argument("--build", default=os.path.join(ROOT, "build"), help="meson build directory")
    ap.add_argument("--sizes", default="64,256,512,1024,1400",
                    help="stream payload bytes per packet for (b), comma-separated (16..1400)")
    ap.add_argument("--trial-s", type=float, default=2.0, help="length of one search trial, seconds")
    ap.add_argument("--resolution", type=float, default=0.01,
                    help="search resolution as a fraction of the rate (kwik-gen --resolution)")
    ap.add_argument("--latency-at", type=float, default=0.9, help="latency trial at this share of the zero-loss rate")
    ap.add_argument("--search-min-pps", type=float, default=10000, help="lower bound of the search")
    ap.add_argument("--search-max-pps", type=float, default=10e6, help="upper bound of the search")
    ap.add_argument("--connections", type=int, default=4, help="Kwik connections kwik-gen sends on (b)")
    ap.add_argument("--paths", type=int, default=2, help="paths per connection (b)")
    ap.add_argument("--streams", type=int, default=4, help="streams open per connection (b)")
    ap.add_argument("--workers", default="1,2",
                    help="kwikd worker counts for the scaling runs (d), comma-separated; N needs 2N cores")
    ap.add_argument("--scaling-size", type=int, default=None,
                    help="stream payload of the scaling runs (default: the smallest of --sizes)")
    ap.add_argument("--seconds", type=float, default=5, help="(a): measured window per run")
    ap.add_argument("--warmup", type=float, default=2, help="(a): seconds after the first packet before the window")
    ap.add_argument("--repeat", type=int, default=3, help="(a): runs of each program per hugepage mode")
    ap.add_argument("--pcap-streams", type=int, default=128, help="(a): streams in the capture")
    ap.add_argument("--pcap-packets-per-stream", type=int, default=800, help="(a): packets per stream")
    ap.add_argument("--no-callgrind", action="store_true", help="(a): skip the instruction counts")
    ap.add_argument("--parts", default="pcap,memif,scaling",
                    help="which parts to run: pcap (a), memif (b), scaling (d), comma-separated")
    ap.add_argument("--quick", action="store_true",
                    help="smoke run (a minute or two): sizes 64,1400, 0.5 s trials, 5 %% resolution, a small "
                         "capture, one short run per mode, no callgrind, scaling 1")
    ap.add_argument("--results", default=os.path.join(ROOT, "perf/RESULTS.md"), help="file whose section 13 gets the figures")
    ap.add_argument("--no-results", action="store_true", help="print the section, do not write RESULTS")
    ap.add_argument("--plots", default=None,
                    help="directory for the PNG plots (default perf/plots, or none with --no-results)")
    ap.add_argument("--keep", action="store_true", help="keep the work directory (configs, JSON, logs)")
    args = ap.parse_args(argv)

    if args.quick:
        explicit = set(a.split("=")[0] for a in argv if a.startswith("--"))
        quick = {"--sizes": ("sizes", "64,1400"), "--trial-s": ("trial_s", 0.5), "--resolution": ("resolution", 0.05),
                 "--seconds": ("seconds", 1.0), "--warmup": ("warmup", 0.5), "--repeat": ("repeat", 1),
                 "--pcap-streams": ("pcap_streams", 16), "--pcap-packets-per-stream": ("pcap_packets_per_stream", 200),
                 "--workers": ("workers", "1"), "--connections": ("connections", 2), "--streams": ("streams", 2)}
        for flag, (dest, value) in quick.items():
            if flag not in explicit:
                setattr(args, dest, value)
        args.no_callgrind = True
    args.sizes = int_list("--sizes", args.sizes, 16, 1400)
    args.workers = int_list("--workers", args.workers, 1, 64)
    args.parts = set(p.strip() for p in args.parts.split(",") if p.strip())
    unknown = args.parts - {"pcap", "memif", "scaling"}
    if unknown or not args.parts:
        raise SystemExit(usage_error("--parts: %s (choose from pcap, memif, scaling)" % (", ".join(sorted(unknown)) or "empty")))
    checks = [("--trial-s", args.trial_s, 0.05, 600), ("--resolution", args.resolution, 0.0001, 0.5),
              ("--latency-at", args.latency_at, 0.01, 1.0), ("--search-min-pps", args.search_min_pps, 1, 1e9),
              ("--search-max-pps", args.search_max_pps, 1, 1e9), ("--connections", args.connections, 1, 4096),
              ("--paths", args.paths, 1, 8), ("--streams", args.streams, 1, 1024), ("--seconds", args.seconds, 0.1, 3600),
              ("--warmup", args.warmup, 0, 600), ("--repeat", args.repeat, 1, 100),
              ("--pcap-streams", args.pcap_streams, 1, 4096), ("--pcap-packets-per-stream", args.pcap_packets_per_stream, 1, 100000)]
    for flag, value, low, high in checks:
        if not low <= value <= high:
            raise SystemExit(usage_error("%s: %s is outside %g..%g" % (flag, value, low, high)))
    if args.search_min_pps >= args.search_max_pps:
        raise SystemExit(usage_error("--search-min-pps: %g is not below --search-max-pps %g"
                                     % (args.search_min_pps, args.search_max_pps)))
    if args.scaling_size is None:
        args.scaling_size = min(args.sizes)
    elif not 16 <= args.scaling_size <= 1400:
        raise SystemExit(usage_error("--scaling-size: %d is outside 16..1400" % args.scaling_size))
    if args.plots is None and not args.no_results:
        args.plots = os.path.join(ROOT, "perf/plots")
    args.build = os.path.abspath(args.build)
    args.results = os.path.abspath(args.results)
    if args.plots:
        args.plots = os.path.abspath(args.plots)
    return args


def need_matplotlib():
    """Debian's python3-matplotlib lives in Debian's interpreter; a python3 from elsewhere first
    on PATH (pyenv, a venv) does not see it, so the command re-runs itself under /usr/bin/python3."""
    try:
        import matplotlib  # noqa: F401
        return
    except ImportError:
        pass
    system = "/usr/bin/python3"
    if os.path.exists(system) and os.path.realpath(sys.executable) != os.path.realpath(system) \
            and not os.environ.get("KWIK_BENCHMARK_REEXEC"):
        os.environ["KWIK_BENCHMARK_REEXEC"] = "1"
        os.execv(system, [system, os.path.abspath(__file__)] + sys.argv[1:])
    raise SystemExit(usage_error("--plots: matplotlib is not installed for %s (Debian: apt-get install "
                                 "python3-matplotlib, or deploy/setup.sh deps)" % sys.executable))


# ---------------------------------------------------------------------------------------------
# Lcore placement

def placement(workers):
    """({gen_main, gen_workers, dut_main, dut_workers, how}, None) for N workers on each side, or
    (None, the reason) when the machine has too few cores."""
    cores = CORES
    n = workers
    if len(cores) >= 2 * n + 1:
        return {"gen_main": cores[0], "gen_workers": cores[1:1 + n], "dut_main": cores[0],
                "dut_workers": cores[1 + n:1 + 2 * n],
                "how": "main lcores on core %d, kwik-gen's workers on %s, the DUT's on %s"
                       % (cores[0], cores_text(cores[1:1 + n]), cores_text(cores[1 + n:1 + 2 * n])),
                "short": "gen %s, DUT %s, mains %d" % (cores_list(cores[1:1 + n]), cores_list(cores[1 + n:1 + 2 * n]),
                                                       cores[0])}, None
    if len(cores) >= 2 * n:
        gen, dut = cores[:n], cores[n:2 * n]
        # No core of their own for the main lcores: each shares the other program's worker
        # core, so the DUT's forwarding core carries only kwik-gen's once-a-second reporter.
        return {"gen_main": dut[0], "gen_workers": gen, "dut_main": gen[0], "dut_workers": dut,
                "how": "kwik-gen's worker%s on %s, the DUT's on %s; no core is left for the main lcores: "
                       "kwik-gen's (a report a second) shares core %d, the DUT's (kwikd: every 100 us) core %d"
                       % ("s" if n > 1 else "", cores_text(gen), cores_text(dut), dut[0], gen[0]),
                "short": "gen %s, DUT %s, mains shared" % (cores_list(gen), cores_list(dut))}, None
    return None, ("N=%d needs %d cores for the worker lcores alone (kwik-gen's %d and kwikd's %d, plus one for "
                  "the main lcores); this machine gives the benchmark %d" % (n, 2 * n, n, n, len(cores)))


def cores_text(cores):
    return ("core " if len(cores) == 1 else "cores ") + cores_list(cores)


def cores_list(cores):
    return ",".join(str(c) for c in cores)


# ---------------------------------------------------------------------------------------------
# Hugepages and run-time files

def remove_huge_files(huge_dir, prefix):
    """EAL's hugepage files of one process (<prefix>map_N), which nothing else removes."""
    for f in os.listdir(huge_dir):
        if f.startswith(prefix + "map_"):
            try:
                os.unlink(os.path.join(huge_dir, f))
            except FileNotFoundError:
                pass


def can_reserve_hugepages(mb):
    """Whether the kernel gives mb of 2 MiB pages now (reserved and released again)."""
    if os.geteuid() != 0:
        return "not root"
    try:
        with open(kvt.HUGEPAGES_2M) as f:
            before = int(f.read())
    except OSError as e:
        return "no 2 MiB hugepages (%s)" % e
    want = before + (mb + 1) // 2
    try:
        with open(kvt.HUGEPAGES_2M, "w") as f:
            f.write(str(want))
        with open(kvt.HUGEPAGES_2M) as f:
            got = int(f.read())
    except OSError as e:
        got = before
        why = str(e)
    else:
        why = "the kernel gave %d of %d pages" % (got - before, want - before)
    finally:
        with open(kvt.HUGEPAGES_2M, "w") as f:
            f.write(str(before))
    return None if got >= want else why


# ---------------------------------------------------------------------------------------------
# (b) kwik-gen against kwikd or testpmd over net_memif

def memif(role, sock, mac):
    """Both ends with MEMIF_RING_LOG2 rings (the client's size is the link's)."""
    return "net_memif0,role=%s,id=0,socket=%s,mac=%s,rsize=%d" % (role, sock, mac, MEMIF_RING_LOG2)


def gen_traffic_args(args, size):
    return ["--connections", str(args.connections), "--paths", str(args.paths), "--streams", str(args.streams),
            "--payload", str(size), "--dst-mac", DUT_MAC]


def kwikd_connections(args, work, name, size, workers):
    """kwik-gen's --kwikd-config: the [transport] windows and [[connection]] blocks kwikd needs
    for exactly the traffic kwik-gen sends (connection i on kwikd worker i % workers)."""
    path = os.path.join(work, name + "-connections.toml")
    argv = [os.path.join(args.build, "perf/gen/kwik-gen"), "--", "--config-only", "--kwikd-config", path,
            "--endpoint", "discard", "--kwikd-workers", str(workers)] + gen_traffic_args(args, size)
    r = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    if r.returncode != 0 or not os.path.exists(path):
        raise fail("kwik-gen --kwikd-config exited %d:\n%s" % (r.returncode, (r.stdout + r.stderr)[-3000:]))
    with open(path) as f:
        text = f.read()
    if "\n[transport]\n" not in text:
        raise fail("kwik-gen --kwikd-config wrote no [transport] table:\n" + text[:2000])
    # kwikd starts seconds before kwik-gen sends: a keep-alive (here after 5 minutes, under the
    # 10-minute idle timeout kwik-gen asks for) on a path not heard from yet has
    # no MAC to go to (the clients are off-link, memif has no gateway) and would count no_route.
    return text.replace("\n[transport]\n", "\n[transport]\nkeepalive_ms = 300000   # perf/benchmark.py: no keep-alives "
                        "before kwik-gen starts\n", 1)


def kwikd_memif_config(path, name, huge, sock, place, connections_toml):
    text = """# Generated by perf/benchmark.py: kwikd on a net_memif server port, kwik-gen's connections.
[kwikd]
name = "%(name)s"
log_level = "notice"
main_lcore = %(main)d
worker_lcores = [%(workers)s]
hugepages = true
memory_mb = %(memory_mb)d
eal_args = ["--huge-dir", "%(huge)s"]
stats_interval_ms = 1000
poll_mode = "busy"

[[port]]
name = "memif0"
device = "%(device)s"
rx_desc = 1024
tx_desc = 1024
mtu = 1500
rss = true
checksum_offload = true
promiscuous = false
addresses = ["10.100.0.1/16"]
kwik_ports = [7707]

[exception]
device = "none"

[limits]
mbufs = %(mbufs)d
mbuf_cache = 256
burst = 32

""" % {"name": name, "main": place["dut_main"], "workers": ", ".join(str(w) for w in place["dut_workers"]),
       "memory_mb": KWIKD_MEMORY_MB, "huge": huge, "device": memif("server", sock, DUT_MAC), "mbufs": KWIKD_MBUFS}
    with open(path, "w") as f:
        f.write(text + connections_toml)
    return path


def gen_argv(args, name, huge, sock, place, size, expect, json_path):
    lcores = [place["gen_main"]] + place["gen_workers"]
    return [os.path.join(args.build, "perf/gen/kwik-gen"), "-l", ",".join(str(c) for c in lcores),
            "--main-lcore", str(place["gen_main"]), "--file-prefix", name, "--huge-dir", huge,
            "-m", str(GEN_MEMORY_MB), "--no-pci", "--vdev", memif("client", sock, GEN_MAC), "--"] + \
        gen_traffic_args(args, size) + \
        ["--expect", expect, "--search", "--search-min-pps", "%d" % args.search_min_pps,
         "--search-max-pps", "%d" % args.search_max_pps, "--trial-s", "%g" % args.trial_s,
         "--loss-tolerance", "0", "--resolution", "%g" % args.resolution, "--latency-at", "%g" % args.latency_at,
         "--drain-ms", "200", "--json", json_path]


def testpmd_memif_argv(name, huge, sock, place):
    """io forwarding on the DUT's worker lcore, port 0 back to port 0 (loop topology)."""
    lcores = [place["dut_main"]] + place["dut_workers"]
    return ["stdbuf", "-oL", "dpdk-testpmd", "-l", ",".join(str(c) for c in lcores), "--main-lcore",
            str(place["dut_main"]), "--file-prefix", name, "--huge-dir", huge, "-m", "512", "--no-pci",
            "--vdev", memif("server", sock, DUT_MAC), "--", "--forward-mode=io", "--port-topology=loop",
            "--disable-link-check",
            "--nb-cores=%d" % len(place["dut_workers"]), "--rxq=%d" % len(place["dut_workers"]),
            "--txq=%d" % len(place["dut_workers"]), "--stats-period", "1"]


def search_timeout(args):
    trials = math.ceil(math.log2(args.search_max_pps / args.search_min_pps / args.resolution)) + 4
    return 120 + trials * (args.trial_s + 2)


def save_log(work, name, text):
    """A process's output beside its configuration (kept with --keep)."""
    with open(os.path.join(work, name), "w") as f:
        f.write(text + "\n")


def run_gen(args, argv, what, json_path, on_link_up=None):
    """kwik-gen to its end; returns its JSON report (exit 1 with the report: the checks failed).
    on_link_up() runs when kwik-gen reports its port up, before its first trial."""
    p = kvt.process(argv, what)
    timeout = search_timeout(args)
    try:
        if on_link_up is not None:
            if p.wait_for(lambda ls: any(", link up" in l for _, l in ls), 120) is None or p.proc.poll() is not None:
                pass  # it ended early: its exit status and report say why, below
            else:
                on_link_up()
        p.proc.wait(timeout)
    except subprocess.TimeoutExpired:
        p.stop(signal.SIGTERM, timeout=10)
        raise fail("%s did not finish its search within %d s:\n%s" % (what, timeout, p.text()[-3000:]))
    rc = p.stop()
    save_log(os.path.dirname(json_path), os.path.basename(json_path).replace(".json", ".log"), p.text())
    if not os.path.exists(json_path):
        raise fail("%s exited %s without its JSON report:\n%s" % (what, rc, p.text()[-3000:]))
    with open(json_path) as f:
        report = json.load(f)
    if rc != 0 or report.get("result") != "ok":
        raise fail("%s exited %s, result %s: %s\n%s" % (what, rc, report.get("result"),
                                                         "; ".join(report.get("failures", [])), p.text()[-2000:]))
    return report, p.text()


def wait_started(p, marker, timeout):
    if not p.wait_for(lambda ls: any(marker in l for _, l in ls), timeout):
        raise fail("%s exited or did not start within %d s (no %r):\n%s" % (p.what, timeout, marker, p.text()[-3000:]))


def kwikd_counters(args, name):
    # --timeout 20: on two cores the DUT's main lcore shares a core with kwik-gen's busy-polling
    # worker, and answering --fresh took more than kwikd-cmd's default 5 s once in CI.
    r = subprocess.run([os.path.join(args.build, "tools/kwikd-cmd/kwikd-cmd"), "--name", name, "--timeout", "20",
                        "counters", "--fresh"], capture_output=True, text=True, timeout=45)
    lines = [l for l in r.stdout.splitlines() if l.startswith("{")]
    if r.returncode != 0 or not lines:
        raise fail("kwikd-cmd --name %s counters exited %d: %s" % (name, r.returncode, (r.stdout + r.stderr)[-2000:]))
    c = json.loads(lines[-1])
    if "error" in c:
        raise fail("kwikd-cmd counters: " + c["error"])
    return c


def search_summary(report, args, what):
    """The search's figures, checked: some trial passed, latency was sampled."""
    s = report.get("search")
    if not s:
        raise fail("%s: kwik-gen's report has no search" % what)
    trials = s.get("trials", [])
    passed = [t for t in trials if t.get("passed")]
    if not passed or not s.get("zero_loss_pps"):
        raise fail("%s: no trial passed at zero loss (lowest rate %g pps): %s" % (
            what, args.search_min_pps, "; ".join("%.0f pps lost %d" % (t["rate_pps"], t["lost"]) for t in trials)))
    lat = s.get("latency") or {}
    if not lat.get("samples"):
        raise fail("%s: the latency trial at %.0f pps took no samples" % (what, s.get("latency_rate_pps", 0)))
    best = max(passed, key=lambda t: t["rate_pps"])
    # What kwik-gen can offer at all: its most attempted sends per second in any trial (the
    # first, at --search-max-pps, asks more than it can). A zero-loss rate near it says the
    # generator, not the DUT, was the limit: a lower bound.
    capacity = max(t["offered"] for t in trials) / args.trial_s
    sent = report["sent"]
    frame = sent["frame_bytes"] / sent["packets"] if sent.get("packets") else None
    payload = sent["payload_bytes"] / sent["packets"] if sent.get("packets") else None
    # Or it fell short of the rate asked in the best passing trial itself (kwik-gen counts a
    # trial passed when everything it did offer came back).
    share = best["offered"] / (best["rate_pps"] * args.trial_s)
    generator_bound = s["zero_loss_pps"] >= GEN_BOUND * capacity or share < GEN_BOUND
    # Bound by the generator (even a pass at --search-max-pps that kwik-gen could not offer):
    # the DUT took all of what was offered, so that is the figure, as a lower bound.
    pps = min(s["zero_loss_pps"], best["offered"] / args.trial_s) if generator_bound else s["zero_loss_pps"]
    wire = s.get("zero_loss_gbps_wire") if not generator_bound else (
        pps * (frame + kvt.WIRE_OVERHEAD) * 8 / 1e9 if frame else None)
    return {"zero_loss_pps": pps, "asked_pps": s["zero_loss_pps"], "gbps_wire": wire,
            "frame": frame, "payload": payload, "trials": trials, "latency": lat,
            "latency_rate_pps": s.get("latency_rate_pps"), "generator_pps": capacity, "offered_share": share,
            "generator_bound": generator_bound,
            "max_passed": best["rate_pps"] >= args.search_max_pps * (1 - args.resolution)}


def stop_dut(p, sig, work, huge, name, gen_name):
    """Stops the DUT, removes its and kwik-gen's run-time and hugepage files, keeps its log;
    returns (exit status, output)."""
    rc = p.stop(sig)
    for n in (name, gen_name):
        kvt.remove_runtime(n)
        remove_huge_files(huge, n)
    text = p.text()
    save_log(work, name + ".log", text)
    return rc, text


def memif_kwikd(args, work, huge, size, workers, place):
    """kwik-gen's search against kwikd; kwikd's counters checked after it."""
    name = kvt.unique("kbmk")
    sock = os.path.join(work, name + ".sock")
    gen_name = name + "g"
    cfg = kwikd_memif_config(os.path.join(work, name + ".toml"), name, huge, sock, place,
                             kwikd_connections(args, work, name, size, workers))
    json_path = os.path.join(work, name + "-gen.json")
    kwikd = kvt.process([os.path.join(args.build, "dataplane/kwikd"), "--config", cfg], "kwikd")
    try:
        wait_started(kwikd, "worker(s),", 120)
        # What kwikd counts before kwik-gen's first packet is kept apart from what the run adds:
        # its probes on paths nobody spoke on yet have no MAC to go to (the clients are
        # off-link, memif has no gateway) and count no_route.
        at_start = {}
        report, gen_text = run_gen(args, gen_argv(args, gen_name, huge, sock, place, size, "ack", json_path),
                                   "kwik-gen -> kwikd (%d B, %d worker%s)" % (size, workers, "s" if workers > 1 else ""),
                                   json_path, lambda: at_start.update(kwikd_counters(args, name)))
        counters = kwikd_counters(args, name)
    finally:
        rc, text = stop_dut(kwikd, signal.SIGTERM, work, huge, name, gen_name)
    if rc != 0:
        raise fail("kwikd exited %s:\n%s" % (rc, text[-3000:]))
    final = kvt.kwikd_final(text)
    r = search_summary(report, args, "kwikd %d B" % size)
    start_drops = at_start.get("drops", {})
    drops = {k: v - start_drops.get(k, 0) for k, v in counters.get("drops", {}).items() if v > start_drops.get(k, 0)}
    unexpected = {k: v for k, v in drops.items() if k not in EXPECTED_DROPS}
    if unexpected:
        raise fail("kwikd %d B dropped packets during the run: %s (final lines: %s)" % (
            size, ", ".join("%s %d" % kv for kv in sorted(unexpected.items())), "; ".join(final["drop_lines"])))
    port = counters["ports"][0]
    sent = report["sent"]["packets"] + report["sent"].get("control_packets", 0)
    if port["rx_packets"] != sent:
        raise fail("kwikd %d B received %d packets, kwik-gen sent %d: the memif link lost or invented some"
                   % (size, port["rx_packets"], sent))
    delivered = sum(t.get("delivered", 0) for t in r["trials"])
    if port["rx_packets"] < delivered:
        raise fail("kwikd %d B counted %d packets received, fewer than the %d kwik-gen saw acknowledged"
                   % (size, port["rx_packets"], delivered))
    if not counters.get("connections") or min(c["delivered_bytes"] for c in counters["connections"]) == 0:
        raise fail("kwikd %d B: a connection delivered no stream data: %s" % (size, counters.get("connections")))
    steer = [l for l in text.splitlines() if "paths steered to their owner's queue" in l]
    r.update({"kwikd": {"rx_packets": port["rx_packets"], "tx_packets": port["tx_packets"],
                        "delivered_bytes": sum(c["delivered_bytes"] for c in counters["connections"]),
                        "drops": drops, "start_drops": start_drops, "handoff_sent": counters["worker"]["handoff_sent"],
                        "handoff_received": counters["worker"]["handoff_received"],
                        "handoff_dropped": counters["worker"]["handoff_dropped"],
                        "flow_control_blocked": sum(c["flow_control_blocked"] for c in counters["connections"]),
                        "steering": steer[0].replace("kwikd: ", "") if steer else ""},
              "gen": report, "placement": place["how"], "placement_short": place["short"], "workers": workers})
    return r


TESTPMD_FWD = r"Forward statistics for port 0\s+-+\s*\n\s*RX-packets:\s+(\d+)\s+RX-dropped:\s+(\d+).*?\n\s*TX-packets:\s+(\d+)\s+TX-dropped:\s+(\d+)"


def memif_testpmd(args, work, huge, size, place):
    """kwik-gen's search against testpmd io forwarding (kwik-gen counts its packets reflected)."""
    name = kvt.unique("kbmt")
    sock = os.path.join(work, name + ".sock")
    gen_name = name + "g"
    json_path = os.path.join(work, name + "-gen.json")
    tp = kvt.process(testpmd_memif_argv(name, huge, sock, place), "dpdk-testpmd")
    try:
        wait_started(tp, "io packet forwarding", 120)
        report, _ = run_gen(args, gen_argv(args, gen_name, huge, sock, place, size, "reflect", json_path),
                            "kwik-gen -> testpmd (%d B)" % size, json_path)
    finally:
        rc, text = stop_dut(tp, signal.SIGINT, work, huge, name, gen_name)
    m = re.search(TESTPMD_FWD, text, re.S)
    exit_note = ""
    if rc != 0:
        # Seen now and then with DPDK 22.11's net_memif: testpmd dies (SIGSEGV) when kwik-gen's
        # end takes the link down, after the search, before or after its forward statistics.
        # kwik-gen's report holds the measurement; the crash is said, not hidden.
        exit_note = "exited %s when kwik-gen's end took the memif link down%s" % (
            rc, "" if m else ", before its forward statistics (tx-dropped unknown)")
        log("   note: dpdk-testpmd %s" % exit_note)
    elif not m:
        raise fail("dpdk-testpmd printed no forward statistics:\n" + text[-3000:])
    r = search_summary(report, args, "testpmd %d B" % size)
    # The port's counters restart when kwik-gen's end takes the memif link down, so rx and tx
    # come from testpmd's last periodic report while the link was up; its forwarding lcore's
    # TX-dropped (what the port refused to take back) survives the link.
    tx_dropped = int(m.group(4)) if m else None
    rx = max((int(x) for x in re.findall(r"^\s*RX-packets:\s+(\d+)\s+RX-missed", text, re.M)), default=0)
    tx = max((int(x) for x in re.findall(r"^\s*TX-packets:\s+(\d+)\s+TX-errors", text, re.M)), default=0)
    if rx == 0:
        raise fail("testpmd %d B reported no packets received:\n%s" % (size, text[-3000:]))
    r.update({"testpmd": {"rx_packets": rx, "tx_packets": tx, "tx_dropped": tx_dropped, "exit": exit_note},
              "gen": report, "placement": place["how"], "workers": 1})
    return r


# ---------------------------------------------------------------------------------------------
# Report

def f3(x):
    return kvt.fmt(x, ".3f")


def mpps(r):
    """The zero-loss rate in Mpps, with >= where the generator or the search's ceiling was the limit."""
    return (">= " if bounded(r) else "") + f3(r["zero_loss_pps"] / 1e6)


def bounded(r):
    return r["generator_bound"] or r["max_passed"]


def ratio_text(k, t):
    """kwikd / testpmd; a bound where either figure is the generator's limit, none where both are."""
    if bounded(k) and bounded(t):
        return "- (both generator-bound)"
    prefix = "<= " if bounded(t) else ">= " if bounded(k) else ""
    return prefix + kvt.fmt(k["zero_loss_pps"] / t["zero_loss_pps"], ".2f")


def gbps_payload(r, size):
    return r["zero_loss_pps"] * size * 8 / 1e9


def gbps_wire(r):
    return r["gbps_wire"]


def report(args, command, a, memif_rows, scaling, plots, loads):
    lines = ["Command: `%s`  " % command,
             "Run: %s; machine: %s." % (datetime.datetime.now().strftime("%Y-%m-%d %H:%M"), kvt.machine()),
             "Load average (1 min) before and after: %s. Two cores shared with other jobs: the wall-clock rates "
             "are noisy (the callgrind counts are not); the ratios compare runs made minutes apart in the same "
             "session." % " and ".join(loads), ""]
    if a:
        lines.append("### (a) net_pcap infinite_rx -> net_null (perf/kwikd_vs_testpmd.py's runs)")
        lines.append("")
        lines += kvt.report_body(a["args"], a["traffic"], a["timed"], a["cg"])
        if a["cg"] is None:
            lines.append("(Callgrind skipped: `--no-callgrind` or `--quick`.)")
        lines.append("")
    if memif_rows:
        first = next(iter(memif_rows.values()))
        lines.append("### (b) kwik-gen -> net_memif -> kwikd, against kwik-gen -> net_memif -> dpdk-testpmd io forwarding")
        lines.append("")
        lines.append(
            "Traffic: kwik-gen synthesises %d connections x %d paths, %d streams open per connection, one STREAM "
            "frame per packet with the stated stream payload, new data in every packet; kwikd binds them to "
            "discard endpoints (kwik-gen --kwikd-config) and kwik-gen counts a packet delivered when kwikd's ACK "
            "covers it; testpmd (`--forward-mode=io --port-topology=loop`) sends every packet back and kwik-gen "
            "counts it delivered when it comes back. Both DUTs run on a `net_memif` server port (role=server, "
            "copy mode, hugepages, rings of %d slots), kwik-gen on the client. Lcores: %s."
            % (args.connections, args.paths, args.streams, 1 << MEMIF_RING_LOG2, first["kwikd"]["placement"]))
        lines.append(
            "Zero-loss rate: RFC 2544 26.1 binary search by kwik-gen (`--search`) between %s and %s pps, %g s "
            "trials, loss tolerance 0 (every packet offered, including those kwik-gen's tx ring refused, must "
            "be delivered), resolution %g of the rate, a drain of 200 ms between trials (RFC 2544 asks for "
            "60 s trials: these are short to fit the run in minutes). Latency: RFC 2544 26.2 trial at %g of the "
            "zero-loss rate, from kwik-gen's TSC send stamp to the ACK that newly covers the packet (kwikd: "
            "includes its ACK delay, at most one burst) or to the packet's return (testpmd: the round trip). "
            "Gbit/s of stream payload and on the wire (frame + %d B). `>=`: the generator, not the DUT, was "
            "the limit (the rate found is over %d %% of the most kwik-gen offered in any trial of that search: "
            "the figure is then what kwik-gen offered in the best passing trial, all of it delivered, a lower "
            "bound; the latency trial of such a search ran at the generator's limit)."
            % (fmt_int(args.search_min_pps), fmt_int(args.search_max_pps), args.trial_s, args.resolution,
               args.latency_at, kvt.WIRE_OVERHEAD, round(GEN_BOUND * 100)))
        lines.append("")
        lines.append("| payload B | frame B | kwikd Mpps | kwikd Gbit/s payload / wire | testpmd Mpps | testpmd Gbit/s "
                     "wire | kwikd / testpmd | trials kwikd / testpmd | kwik-gen's most offered, Mpps |")
        lines.append("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
        for size, row in memif_rows.items():
            k, t = row["kwikd"], row["testpmd"]
            lines.append("| %d | %s | %s | %s / %s | %s | %s | %s | %d / %d | %s / %s |" % (
                size, kvt.fmt(k["frame"], ".0f"), mpps(k), kvt.fmt(gbps_payload(k, size), ".2f"),
                kvt.fmt(gbps_wire(k), ".2f"), mpps(t), kvt.fmt(gbps_wire(t), ".2f"),
                ratio_text(k, t), len(k["trials"]), len(t["trials"]), f3(k["generator_pps"] / 1e6),
                f3(t["generator_pps"] / 1e6)))
        lines.append("")
        lines.append("Latency (us) at %g of each zero-loss rate:" % args.latency_at)
        lines.append("")
        lines.append("| payload B | DUT | rate Mpps | samples | min | mean | p50 | p90 | p99 | p99.9 | max |")
        lines.append("| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
        for size, row in memif_rows.items():
            for dut in ("kwikd", "testpmd"):
                r = row[dut]
                lat = r["latency"]
                lines.append("| %d | %s | %s | %d | %s |" % (
                    size, dut, f3((r["latency_rate_pps"] or 0) / 1e6), lat["samples"],
                    " | ".join(kvt.fmt(lat.get(k), ".1f") for k in ("min", "mean", "p50", "p90", "p99", "p999", "max"))))
        lines.append("")
        lines.append("Counters after each search (all trials and the latency trial): kwikd's from `kwikd-cmd counters` "
                     "(drops other than %s fail the run), testpmd's forward statistics (its TX-dropped are the packets "
                     "the trials above the zero-loss rate lost):" % ", ".join(sorted(EXPECTED_DROPS)))
        lines.append("")
        lines.append("| payload B | kwikd rx packets | kwikd tx (ACK) packets | stream bytes delivered | kwikd drops "
                     "| testpmd rx | testpmd tx | testpmd tx-dropped |")
        lines.append("| ---: | ---: | ---: | ---: | --- | ---: | ---: | ---: |")
        for size, row in memif_rows.items():
            k, t = row["kwikd"]["kwikd"], row["testpmd"]["testpmd"]
            lines.append("| %d | %d | %d | %d | %s | %d | %d | %s |" % (
                size, k["rx_packets"], k["tx_packets"], k["delivered_bytes"],
                ", ".join("%s %d" % kv for kv in sorted(k["drops"].items())) or "none",
                t["rx_packets"], t["tx_packets"], "-" if t["tx_dropped"] is None else t["tx_dropped"]))
        lines.append("")
        crashed = ["%d B: %s" % (size, row["testpmd"]["testpmd"]["exit"]) for size, row in memif_rows.items()
                   if row["testpmd"]["testpmd"]["exit"]]
        if crashed:
            lines.append("dpdk-testpmd " + "; ".join(crashed) + ".")
            lines.append("")
        lines.append("Every trial (Mpps asked: pass + / fail -; in brackets what kwik-gen offered where it fell "
                     "more than 10 % short): " + "; ".join(
            "%d B kwikd %s, testpmd %s" % (size, trials_text(row["kwikd"]["trials"], args.trial_s),
                                           trials_text(row["testpmd"]["trials"], args.trial_s))
            for size, row in memif_rows.items()) + ".")
        lines.append("")
        if plots:
            lines.append("![zero-loss rate against packet size](%s)" % plots["rate"])
            lines.append("![latency CDF per packet size](%s)" % plots["latency"])
            lines.append("")
    if scaling:
        lines.append("### (d) Scaling: kwikd with N worker lcores, %d B payload" % args.scaling_size)
        lines.append("")
        lines.append("Each kwikd worker polls its own memif queue pair; kwik-gen runs N workers and places connection "
                     "i on queue i % N, the queue of the kwikd worker that owns it (`--kwikd-workers N`), so no "
                     "packet needs the hand-off ring.")
        lines.append("")
        lines.append("| N | lcores | kwikd zero-loss Mpps | per worker | vs N=1 | hand-off packets | steering |")
        lines.append("| ---: | --- | ---: | ---: | ---: | ---: | --- |")
        base = next((s["result"]["zero_loss_pps"] for s in scaling if s.get("result") and s["n"] == 1), None)
        for s in scaling:
            if s.get("result"):
                r = s["result"]
                lines.append("| %d | %s | %s | %s | %s | %d | %s |" % (
                    s["n"], r["placement_short"], mpps(r), f3(r["zero_loss_pps"] / s["n"] / 1e6),
                    kvt.fmt(r["zero_loss_pps"] / base if base else None, ".2f"), r["kwikd"]["handoff_sent"],
                    steering_text(r["kwikd"]["steering"])))
            else:
                lines.append("| %d | skipped: %s | - | - | - | - | - |" % (s["n"], s["skipped"]))
        lines.append("")
        if any(s.get("reused") for s in scaling):
            lines.append("N=1 is (b)'s kwikd search at the same payload, not a second run.")
            lines.append("")
    return "\n".join(kvt.wrap(lines))


def steering_text(line):
    """kwikd's start-up line, short: "rte_flow 0, hand-off ring or single worker 8"."""
    m = re.search(r"rte_flow: (\d+); by the hand-off ring or a single worker: (\d+)", line)
    return "rte_flow %s, hand-off ring or single worker %s" % m.groups() if m else "-"


def fmt_int(x):
    return "{:,}".format(int(x))


def trials_text(trials, trial_s):
    """Each trial's rate asked, + or - (passed or not), and in brackets what kwik-gen offered
    where it fell short of the rate by more than 10 %."""
    out = []
    for t in trials:
        offered = t["offered"] / trial_s
        short = " (%s)" % f3(offered / 1e6) if offered < GEN_BOUND * t["rate_pps"] else ""
        out.append("%s%s%s" % (f3(t["rate_pps"] / 1e6), "+" if t.get("passed") else "-", short))
    return " ".join(out)


# ---------------------------------------------------------------------------------------------
# Plots (matplotlib, Agg backend: no display)

def plot(memif_rows, out_dir, results_path, latency_at):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    os.makedirs(out_dir, exist_ok=True)
    sizes = list(memif_rows)
    style = {"kwikd": ("tab:blue", "o"), "testpmd": ("tab:gray", "s")}

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.2))
    for dut, (colour, marker) in style.items():
        rows = [memif_rows[s][dut] for s in sizes]
        ax1.plot(sizes, [r["zero_loss_pps"] / 1e6 for r in rows], marker=marker, color=colour, label=dut)
        bound = [(s, r["zero_loss_pps"] / 1e6) for s, r in zip(sizes, rows) if bounded(r)]
        if bound:
            ax1.plot([b[0] for b in bound], [b[1] for b in bound], linestyle="none", marker=marker, markersize=11,
                     markerfacecolor="none", color="tab:red", label=dut + ": generator-bound (a lower bound)")
        ax2.plot(sizes, [gbps_wire(r) or 0 for r in rows], marker=marker, color=colour, label=dut + " (wire)")
        if dut == "kwikd":
            ax2.plot(sizes, [gbps_payload(memif_rows[s][dut], s) for s in sizes], marker=marker, color=colour,
                     linestyle="--", label=dut + " (stream payload)")
    ax1.set_title("Zero-loss rate (RFC 2544 26.1), kwik-gen -> net_memif -> DUT")
    ax1.set_xlabel("stream payload per packet (B)")
    ax1.set_ylabel("Mpps")
    ax2.set_title("Zero-loss throughput")
    ax2.set_xlabel("stream payload per packet (B)")
    ax2.set_ylabel("Gbit/s")
    for ax in (ax1, ax2):
        ax.grid(True, alpha=0.3)
        ax.set_ylim(bottom=0)
        ax.legend()
    fig.tight_layout()
    rate = os.path.join(out_dir, "zero_loss_rate.png")
    fig.savefig(rate, dpi=110)
    plt.close(fig)

    cols = min(3, len(sizes))
    nrows = math.ceil(len(sizes) / cols)
    fig, axes = plt.subplots(nrows, cols, figsize=(4.2 * cols, 3.4 * nrows), squeeze=False)
    for i, size in enumerate(sizes):
        ax = axes[i // cols][i % cols]
        for dut, (colour, _) in style.items():
            r = memif_rows[size][dut]
            cdf = r["latency"].get("cdf") or []
            if cdf:
                ax.step([p[0] for p in cdf], [p[1] for p in cdf], where="post", color=colour,
                        label="%s @ %.2f Mpps" % (dut, (r["latency_rate_pps"] or 0) / 1e6))
        ax.set_xscale("log")
        ax.set_title("%d B payload" % size)
        ax.set_xlabel("latency (us)")
        ax.set_ylabel("fraction of packets")
        ax.set_ylim(0, 1.01)
        ax.grid(True, alpha=0.3, which="both")
        ax.legend(fontsize="small", loc="lower right")
    for j in range(len(sizes), nrows * cols):
        axes[j // cols][j % cols].axis("off")
    fig.suptitle("Latency CDF (RFC 2544 26.2) at %g %% of each zero-loss rate: kwikd (to the ACK), testpmd (round trip)"
                 % (latency_at * 100))
    fig.tight_layout()
    latency = os.path.join(out_dir, "latency_cdf.png")
    fig.savefig(latency, dpi=110)
    plt.close(fig)
    base = os.path.dirname(results_path)
    return {"rate": os.path.relpath(rate, base), "latency": os.path.relpath(latency, base)}


# ---------------------------------------------------------------------------------------------

def run_pcap_part(args, work):
    """(a): perf/kwikd_vs_testpmd.py's runs with this command's settings."""
    a = argparse.Namespace(build=args.build, seconds=args.seconds, warmup=args.warmup, repeat=args.repeat,
                           paths=4, payload=1400, replay_packets=min(100000, args.pcap_streams * args.pcap_packets_per_stream),
                           top=10)
    log("== (a) net_pcap -> net_null: kwik-pcapgen %d streams x %d packets" % (args.pcap_streams,
                                                                               args.pcap_packets_per_stream))
    traffic = kvt.generate(a, work, "traffic", args.pcap_streams, args.pcap_packets_per_stream)
    mbufs, memory_mb = kvt.memory_for(traffic["packets"])
    timed = kvt.timed_runs(a, work, traffic, ["off", "on"], mbufs, memory_mb)
    cg = None if args.no_callgrind else kvt.callgrind_runs(a, work, traffic)
    return {"args": a, "traffic": traffic, "timed": timed, "cg": cg}


def run_memif_parts(args, work):
    """(b) and (d) under one hugepage reservation (kwikd or testpmd, and kwik-gen)."""
    memif_rows = {}
    scaling = []
    with kvt.hugepages(work, KWIKD_MEMORY_MB + GEN_MEMORY_MB + 64, "huge-memif") as hp:
        if "memif" in args.parts:
            place, why = placement(1)
            if why:
                raise fail("(b) cannot run: " + why)
            log("== (b) kwik-gen -> net_memif -> kwikd / testpmd; %s" % place["how"])
            for size in args.sizes:
                k = memif_kwikd(args, work, hp.dir, size, 1, place)
                log("   %5d B kwikd   zero-loss %s Mpps (%d trials), latency p50 %s us p99 %s us; kwikd rx %d, drops %s"
                    % (size, mpps(k), len(k["trials"]), kvt.fmt(k["latency"].get("p50"), ".1f"),
                       kvt.fmt(k["latency"].get("p99"), ".1f"), k["kwikd"]["rx_packets"], k["kwikd"]["drops"] or "none"))
                t = memif_testpmd(args, work, hp.dir, size, place)
                log("   %5d B testpmd zero-loss %s Mpps (%d trials), latency p50 %s us p99 %s us; tx-dropped %s"
                    % (size, mpps(t), len(t["trials"]), kvt.fmt(t["latency"].get("p50"), ".1f"),
                       kvt.fmt(t["latency"].get("p99"), ".1f"), t["testpmd"]["tx_dropped"]))
                memif_rows[size] = {"kwikd": k, "testpmd": t}
        if "scaling" in args.parts:
            log("== (d) scaling at %d B: kwikd workers %s" % (args.scaling_size, ",".join(map(str, args.workers))))
            for n in args.workers:
                place, why = placement(n)
                if why:
                    log("   N=%d skipped: %s" % (n, why))
                    scaling.append({"n": n, "skipped": why})
                    continue
                if n == 1 and args.scaling_size in memif_rows:
                    scaling.append({"n": 1, "result": memif_rows[args.scaling_size]["kwikd"], "reused": True})
                    log("   N=1: (b)'s run at %d B" % args.scaling_size)
                    continue
                r = memif_kwikd(args, work, hp.dir, args.scaling_size, n, place)
                log("   N=%d: zero-loss %s Mpps, hand-off packets %d" % (n, mpps(r), r["kwikd"]["handoff_sent"]))
                scaling.append({"n": n, "result": r})
    return memif_rows, scaling


def main():
    args = parse_args(sys.argv[1:])
    if args.plots:
        need_matplotlib()
    command = "python3 perf/benchmark.py " + " ".join(sys.argv[1:])
    tools = ["dataplane/kwikd", "tools/pcapgen/kwik-pcapgen"]
    if args.parts & {"memif", "scaling"}:
        tools += ["perf/gen/kwik-gen", "tools/kwikd-cmd/kwikd-cmd"]
    for tool in tools:
        if not os.access(os.path.join(args.build, tool), os.X_OK):
            print("benchmark: --build: %s is not built in %s" % (tool, args.build), file=sys.stderr)
            return 2
    for prog in ["dpdk-testpmd", "stdbuf"] + ([] if args.no_callgrind else ["valgrind", "callgrind_annotate"]):
        if shutil.which(prog) is None:
            print("benchmark: %s not found (Debian packages dpdk-dev, coreutils, valgrind)" % prog, file=sys.stderr)
            return 2
    # What the hugepage runs hold at once: (a)'s capture pool, or the memif DUT and kwik-gen.
    why = can_reserve_hugepages(KWIKD_MEMORY_MB + GEN_MEMORY_MB + 64)
    if why:
        print("benchmark: SKIP: 2 MiB hugepages cannot be reserved (%s); (b) needs them on both sides of net_memif"
              % why)
        return 77
    # This process and its readers stay off the DUT's forwarding core.
    place, _ = placement(1)
    if place:
        try:
            os.sched_setaffinity(0, set(place["gen_workers"]))
        except OSError:
            pass

    work = tempfile.mkdtemp(prefix="kwik-benchmark-")
    loads = [kvt.loadavg()]
    started = time.monotonic()

    def on_signal(sig, _):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_signal)
    try:
        a = run_pcap_part(args, work) if "pcap" in args.parts else None
        memif_rows, scaling = run_memif_parts(args, work) if args.parts & {"memif", "scaling"} else ({}, [])
        loads.append(kvt.loadavg())
        kvt.LOADAVG[:] = loads  # (a)'s tables quote them too
        plots = plot(memif_rows, args.plots, args.results, args.latency_at) if args.plots and memif_rows else None
        block = report(args, command, a, memif_rows, scaling, plots, loads)
        log("")
        log(block)
        log("\n(%.0f s)" % (time.monotonic() - started))
        if plots:
            log("plots: " + ", ".join(os.path.join(args.plots, os.path.basename(p)) for p in plots.values()))
        if not args.no_results:
            kvt.write_results(args.results, block, SECTION, BEGIN, END)
            log("written to %s" % args.results)
        return 0
    except fail as e:
        log("benchmark: FAILED: %s" % e)
        return 1
    except KeyboardInterrupt:
        log("benchmark: interrupted")
        return 130
    finally:
        kvt.kill_all()
        if args.keep:
            log("work directory kept: " + work)
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
