#!/usr/bin/env python3
"""Kwik against Linux MPTCP over the same rate-limited paths (issue 6, perf/RESULTS.md 11).

Every repetition builds the e2e multipath topology (tests/e2e/netns_topology.py: client, relay
and server namespaces, --paths paths through kwik-relay, tc tbf at --rate Mbit/s on each path
each way) once per system, with the same addresses, rates and relay:
  kwik   server_mode "device": kwikd (net_af_packet on s0, or net_tap bridged to it: --drivers)
         with kwik-cp next to it (tests/e2e/appliance.py) and a kwik-peer client on every path:
         an upload (kwik-cp's endpoint discard) and an echo (endpoint echo);
  mptcp  server_mode "kernel": kwik-mptcp (perf/mptcp) uploads the same size over one subflow
         per path (perf/mptcp/mptcp_run.py sets the path manager up).
Each transfer runs once clean and once with path 1 blacked out both ways --blackout-at seconds
into it (kwik: the client's progress line of that second; mptcp: after the client started).
Per transfer: goodput (payload Mbit/s over the transfer's own clock), the failover gap (the
longest time between two progress points of a --sample-ms timeline, so never less than one
sample), and CPU seconds of the client, the server (kwikd or the kwik-mptcp server) and
kwik-relay. Timelines: kwik echo, the client's received (echoed) bytes, the receiver's own view;
kwik upload, the bytes the client wrote into its stream (taken while the 4 MiB send buffer has
room: the sender's view, smeared by that buffer); mptcp, the bytes the receiver acknowledged at
the data level (written minus SIOCOUTQ). A transfer that fails or does not verify is recorded
with its error and makes the exit status 1.

Usage (root):
  python3 perf/multipath_vs_mptcp.py [--build build] [--repeat 3] [--rate 50] [--size 64M]
      [--systems kwik,mptcp] [--drivers af_packet] [--modes upload,echo] [--streams 1]
      [--blackout-at 2 | --no-blackout] [--sample-ms 100] [--json FILE] [--markdown FILE]
Prints progress, then a Markdown table; --json writes every run, the summary, the commands
and the machine. Python 3 standard library only."""
import argparse
import json
import os
import re
import resource
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "e2e"))
sys.path.insert(0, os.path.join(ROOT, "perf", "mptcp"))
import mptcp_run  # noqa: E402
import netns_topology  # noqa: E402
from appliance import appliance, tools  # noqa: E402

MiB = 1 << 20
SYSTEMS = ("kwik", "mptcp")
DRIVERS = {"af_packet": "net_af_packet0,iface=s0", "tap": "net_tap0,iface=kwtap0"}
MODES = {"upload": "discard", "echo": "echo"}  # kwik-peer mode -> kwik-cp endpoint
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def size_arg(text):
    m = re.fullmatch(r"(\d+)([kMG]?)", text)
    if not m or int(m.group(1)) == 0:
        raise argparse.ArgumentTypeError("%r is not a size (bytes, or a number with k, M or G)" % text)
    return int(m.group(1)) << {"": 0, "k": 10, "M": 20, "G": 30}[m.group(2)]


def list_arg(choices):
    def parse(text):
        items = [x for x in text.split(",") if x]
        bad = [x for x in items if x not in choices]
        if not items or bad:
            raise argparse.ArgumentTypeError("%r: each of a comma-separated list must be one of %s" %
                                             (text, ", ".join(choices)))
        return list(dict.fromkeys(items))
    return parse


def ranged(kind, low, high=None):
    def parse(text):
        try:
            v = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError("%r is not a number" % text)
        if v < low or (high is not None and v > high):
            raise argparse.ArgumentTypeError("%r is not in [%s, %s]" % (text, low, "inf" if high is None else high))
        return v
    return parse


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", default=os.path.join(ROOT, "build"), help="meson build directory")
    ap.add_argument("--repeat", type=ranged(int, 1, 100), default=3, help="repetitions of every transfer")
    ap.add_argument("--paths", type=ranged(int, 1, 8), default=3)
    ap.add_argument("--rate", type=ranged(float, 0), default=50.0,
                    help="tc tbf Mbit/s per path and direction; 0: no limit")
    ap.add_argument("--size", type=size_arg, default=64 * MiB, help="bytes per transfer (k, M, G)")
    ap.add_argument("--systems", type=list_arg(SYSTEMS), default=list(SYSTEMS))
    ap.add_argument("--drivers", type=list_arg(tuple(DRIVERS)), default=["af_packet"], help="kwikd's port driver(s)")
    ap.add_argument("--modes", type=list_arg(tuple(MODES)), default=list(MODES), help="kwik-peer modes")
    ap.add_argument("--streams", type=ranged(int, 1, 256), default=1, help="kwik-peer streams")
    ap.add_argument("--blackout-at", type=ranged(float, 0.1, 3600), default=2.0, help="seconds into a transfer")
    ap.add_argument("--no-blackout", action="store_true", help="clean transfers only")
    ap.add_argument("--sample-ms", type=ranged(int, 10, 1000), default=100, help="timeline resolution")
    ap.add_argument("--json", help="write every run, the summary and the commands here")
    ap.add_argument("--markdown", help="write the table here too")
    ap.add_argument("--keep", action="store_true", help="keep the work directory (logs, reports)")
    args = ap.parse_args(argv)
    t = tools(args.build)
    needed = [t.kwik_relay] + ([mptcp_exe(args.build)] if "mptcp" in args.systems else [])
    missing = (t.missing() if "kwik" in args.systems else []) + [p for p in needed if not os.access(p, os.X_OK)]
    if missing:
        ap.error("--build: %s lacks %s (ninja -C %s)" % (args.build, ", ".join(missing), args.build))
    if os.geteuid() != 0:
        ap.error("network namespaces need root")
    return args


def mptcp_exe(build):
    return os.path.join(build, "perf", "mptcp", "kwik-mptcp")


# ---- measurements ----
def longest_stall(points):
    """points: (seconds, bytes) in time order. The longest time between two successive points
    at which bytes grew, from the first growth to the last: how long the transfer made no
    progress. Never less than the sampling interval while the transfer runs."""
    best, last_t, last_b = 0.0, None, 0
    for t, b in points:
        if b > last_b:
            if last_t is not None:
                best = max(best, t - last_t)
            last_t, last_b = t, b
    return best


def cpu_seconds(pid):
    """user + system CPU seconds of a live process (/proc/PID/stat), 0 if it is gone."""
    try:
        fields = open("/proc/%d/stat" % pid).read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def machine_busy():
    """(busy, total) jiffies of the whole machine (/proc/stat): the load beside ours shows here."""
    v = [int(x) for x in open("/proc/stat").readline().split()[1:]]
    idle = v[3] + v[4]
    return sum(v) - idle, sum(v)


class meter:
    """CPU of the named processes and of the machine over one transfer."""

    def __init__(self, pids):
        self.pids = pids
        self.start = {k: cpu_seconds(p) for k, p in pids.items()}
        self.busy0 = machine_busy()
        self.load0 = os.getloadavg()[0]

    def done(self, extra):
        busy1 = machine_busy()
        cpu = {k: round(cpu_seconds(p) - self.start[k], 3) for k, p in self.pids.items()}
        cpu.update({k: round(v, 3) for k, v in extra.items()})
        total = busy1[1] - self.busy0[1]
        return {"cpu_s": cpu, "machine_busy": round((busy1[0] - self.busy0[0]) / total, 3) if total else None,
                "load_before": self.load0, "load_after": os.getloadavg()[0]}


def children_cpu():
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


# ---- kwik ----
def kwik_transfer(args, t, app, mode, blackout_at, work, tag, commands):
    json_file = os.path.join(work, tag + ".json")
    paths = [t.client_address(i) for i in range(1, args.paths + 1)]
    timeout = transfer_timeout(args)
    argv = app.peer_argv(t.client_ns, paths, "--mode", mode, "--size", str(args.size), "--streams",
                         str(args.streams), "--timeout-s", str(timeout), "--progress-interval-ms",
                         str(args.sample_ms), json_file=json_file)
    commands.append(shlex.join(argv))
    m = meter({"kwikd": app.kwikd_proc.pid, "relay": t.relay_proc.pid})
    before = t.relay.stats()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    stderr_lines, black = [], {}

    def watch():  # blacks path 1 out at the progress line of blackout_at seconds
        for line in proc.stderr:
            stderr_lines.append(line)
            m_t = re.match(r"t=([\d.]+)s ", line)
            if blackout_at is not None and m_t and not black and float(m_t.group(1)) >= blackout_at - 1e-6:
                t.relay.blackout(t.path_name(1), True)
                black["t"] = float(m_t.group(1))
    reader = threading.Thread(target=watch, daemon=True)
    reader.start()
    try:
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
    finally:
        if proc.returncode is None:
            proc.kill()
            proc.wait()
        reader.join(10)
        if blackout_at is not None:
            t.relay.blackout(t.path_name(1), False)
    stdout = proc.stdout.read()
    proc.stdout.close()
    with open(os.path.join(work, tag + ".log"), "w") as f:
        f.write(stdout + "\n--- stderr ---\n" + "".join(stderr_lines))
    run = m.done({"client": usage.ru_utime + usage.ru_stime})
    after = t.relay.stats()
    try:
        s = json.load(open(json_file))
    except (OSError, ValueError):
        s = {}
    ok = (proc.returncode == 0 and s.get("result") == "ok" and s.get("verified") is True
          and s.get("bytes_sent") == args.size and (mode != "echo" or s.get("bytes_received") == args.size))
    if ok and blackout_at is not None and "t" not in black:
        ok, s["error"] = False, "the transfer ended before the blackout at %g s (--size, --blackout-at)" % blackout_at
    key = "bytes_received" if mode == "echo" else "bytes_sent"
    run.update({"ok": ok, "exit": proc.returncode, "error": None if ok else (s.get("error") or "".join(stderr_lines)[-300:]),
                "goodput_mbit": s.get("goodput_mbps"), "seconds": s.get("seconds"),
                "gap_s": round(longest_stall([(x["t"], x[key]) for x in s.get("timeline", [])]), 3),
                "timeline_of": "client " + key, "blackout_t": black.get("t"),
                "path_bytes": {p["id"]: [p.get("bytes_sent"), p.get("bytes_received")] for p in s.get("paths", [])},
                "packets_lost": sum(p.get("packets_lost", 0) for p in s.get("paths", [])),
                "path_packets": relay_packets(before, after)})
    return run


def transfer_timeout(args):
    rate = args.rate * args.paths if args.rate else 1000.0
    return int(max(60, args.size * 8 / (rate * 1e6) * 6 + 30))


def kwik_repetition(args, rep, driver, work, out):
    t = netns_topology.topology(tools(args.build).kwik_relay, paths=args.paths, server_mode="device",
                                rates=args.rate or None, workdir=work)
    t.create()
    app = None
    try:
        attach = (lambda: t.attach_tap("kwtap0")) if driver == "tap" else None
        app = appliance(args.build, os.path.join(work, "%s-%d" % (driver, rep)), ns=t.server_ns,
                        device=DRIVERS[driver], address=t.server_address, prefix=24, gateway=t.server_gateway,
                        kcp_listen=t.management_server, endpoint=MODES[args.modes[0]],
                        name="kwvs%dx%d" % (os.getpid(), rep), on_kwikd_start=attach)
        app.start()
        out["configs"].setdefault("kwikd.toml (%s)" % driver, open(app.kwikd_config()).read())
        for mode in args.modes:
            if app.endpoint != MODES[mode]:  # kwik-cp gives new connections its configured endpoint
                app.stop_cp()
                app.endpoint = MODES[mode]
                app.start_cp()
            for blackout_at in blackouts(args):
                tag = "kwik-%s-%s-%s-%d" % (driver, mode, "blackout" if blackout_at else "clean", rep)
                r = kwik_transfer(args, t, app, mode, blackout_at, work, tag, out["commands"])
                record(out, rep, "kwik", driver, mode, blackout_at, r)
    finally:
        if app is not None:
            app.stop()
        t.destroy()


# ---- mptcp ----
def mptcp_repetition(args, rep, work, out):
    with netns_topology.topology(tools(args.build).kwik_relay, paths=args.paths, server_mode="kernel",
                                 rates=args.rate or None, workdir=work) as t:
        mptcp_run.configure_mptcp(t)
        for blackout_at in blackouts(args):
            m = meter({"relay": t.relay_proc.pid})
            before, stats_before = children_cpu(), t.relay.stats()
            try:
                r = mptcp_run.run_transfer(t, mptcp_exe(args.build), args.size, blackout_at=blackout_at,
                                           interval_ms=args.sample_ms, timeout_s=transfer_timeout(args),
                                           configure=False)
            except (RuntimeError, ValueError, subprocess.TimeoutExpired) as e:
                run = m.done({})
                run.update({"ok": False, "error": str(e)})
                record(out, rep, "mptcp", "kernel", "upload", blackout_at, run)
                continue
            run = m.done({"client+server": children_cpu() - before})
            c = r["client"]
            out["commands"].extend(r["commands"])
            error = None
            if not r["sha256_equal"] or c["fallback"]:
                error = "sha256 equal %s, fallback %s" % (r["sha256_equal"], c["fallback"])
            elif blackout_at is not None and c["seconds"] <= blackout_at:
                error = "the transfer ended before the blackout at %g s (--size, --blackout-at)" % blackout_at
            run.update({"ok": error is None, "exit": 0, "error": error,
                        "goodput_mbit": c["goodput_mbit"], "seconds": c["seconds"],
                        "gap_s": round(longest_stall([(e["t_ms"] / 1000, e["acked"]) for e in c["timeline"]]), 3),
                        "timeline_of": "client data-acked bytes", "subflows_max": c["subflows_max"],
                        "blackout_t": blackout_at, "path_packets": relay_packets(stats_before, t.relay.stats())})
            record(out, rep, "mptcp", "kernel", "upload", blackout_at, run)


# ---- bookkeeping ----
def relay_packets(before, after):
    """Packets kwik-relay passed per path and direction between two stats answers."""
    return {p: {d: after[p][d]["packets_out"] - before[p][d]["packets_out"] for d in ("up", "down")} for p in after}


def blackouts(args):
    return [None] if args.no_blackout else [None, args.blackout_at]


def record(out, rep, system, driver, mode, blackout_at, run):
    run.update({"rep": rep, "system": system, "driver": driver, "mode": mode,
                "blackout": blackout_at is not None})
    out["runs"].append(run)
    log("rep %d %-5s %-9s %-6s %-8s %s goodput %s Mbit/s, gap %s s, cpu %s, machine busy %s, load %.1f%s" % (
        rep, system, driver, mode, "blackout" if blackout_at else "clean", "ok  " if run["ok"] else "FAIL",
        fmt(run.get("goodput_mbit")), run.get("gap_s"), run.get("cpu_s"), run.get("machine_busy"),
        run.get("load_before", 0), "" if run["ok"] else ": " + str(run.get("error"))))


def fmt(x, digits=1):
    return "-" if x is None else "%.*f" % (digits, x)


def spread(values, digits=1):
    v = [x for x in values if x is not None]
    if not v:
        return "-"
    return "%s (%s-%s)" % (fmt(statistics.median(v), digits), fmt(min(v), digits), fmt(max(v), digits))


def summarise(out):
    groups = {}
    for r in out["runs"]:
        groups.setdefault((r["system"], r["driver"], r["mode"], r["blackout"]), []).append(r)
    summary = []
    for (system, driver, mode, blackout), runs in groups.items():
        good = [r for r in runs if r["ok"]]

        def med(f):
            v = [f(r) for r in good if f(r) is not None]
            return {"median": statistics.median(v), "min": min(v), "max": max(v)} if v else None
        summary.append({"system": system, "driver": driver, "mode": mode, "blackout": blackout,
                        "runs": len(runs), "ok": len(good),
                        "goodput_mbit": med(lambda r: r.get("goodput_mbit")), "gap_s": med(lambda r: r.get("gap_s")),
                        "cpu_s": {k: med(lambda r, k=k: r["cpu_s"].get(k)) for k in (good[0]["cpu_s"] if good else {})},
                        "machine_busy": med(lambda r: r.get("machine_busy")), "timeline_of": runs[0].get("timeline_of")})
    return summary


def markdown(out):
    a = out["settings"]
    lines = ["| system | transfer | ok | goodput Mbit/s | failover gap s | CPU s: client / server / relay | machine busy |",
             "| --- | --- | ---: | ---: | ---: | ---: | ---: |"]
    for s in out["summary"]:
        name = "Kwik, kwikd %s" % s["driver"] if s["system"] == "kwik" else "Linux MPTCP"
        what = "%s%s" % (s["mode"], ", path 1 blacked out at %g s" % a["blackout_at"] if s["blackout"] else "")
        cpu = s["cpu_s"]

        def c(k):
            return fmt(cpu[k]["median"], 2) if cpu.get(k) else "-"
        client = c("client") if s["system"] == "kwik" else c("client+server")
        server = c("kwikd") if s["system"] == "kwik" else "(in client)"
        gap = "%s" % spread([r.get("gap_s") for r in out["runs"] if match(r, s) and r["ok"]], 2) if s["blackout"] else "-"
        lines.append("| %s | %s | %d/%d | %s | %s | %s / %s / %s | %s |" % (
            name, what, s["ok"], s["runs"], spread([r.get("goodput_mbit") for r in out["runs"] if match(r, s) and r["ok"]]),
            gap, client, server, c("relay"), fmt(s["machine_busy"]["median"], 2) if s["machine_busy"] else "-"))
    return "\n".join(lines) + "\n"


def match(r, s):
    return all(r[k] == s[k] for k in ("system", "driver", "mode", "blackout"))


def machine():
    model = next((x.split(":", 1)[1].strip() for x in open("/proc/cpuinfo") if x.startswith("model name")), "?")
    return {"kernel": os.uname().release, "cpus": os.cpu_count(), "cpu_model": model,
            "date_utc": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime()), "load_start": os.getloadavg()}


def main(argv=None):
    args = parse_args(argv)
    netns_topology.sweep()
    work = tempfile.mkdtemp(prefix="kwik-vs-mptcp-")
    out = {"settings": {k: v for k, v in vars(args).items() if k not in ("json", "markdown", "keep")},
           "command": shlex.join([sys.executable] + sys.argv), "machine": machine(), "configs": {},
           "commands": [], "runs": []}
    out["settings"]["blackout_at"] = None if args.no_blackout else args.blackout_at
    try:
        for rep in range(1, args.repeat + 1):
            # Alternate the order of the systems between repetitions: the machine's other load
            # drifts, and neither side should always run first.
            order = list(args.systems) if rep % 2 else list(reversed(args.systems))
            for system in order:
                if system == "kwik":
                    for driver in args.drivers:
                        kwik_repetition(args, rep, driver, work, out)
                else:
                    mptcp_repetition(args, rep, work, out)
    finally:
        out["machine"]["load_end"] = os.getloadavg()
        out["summary"] = summarise(out)
        table = markdown(out)
        print(table, end="")
        if args.json:
            with open(args.json, "w") as f:
                json.dump(out, f, indent=1)
        if args.markdown:
            with open(args.markdown, "w") as f:
                f.write(table)
        if args.keep:
            log("work directory kept: %s" % work)
        else:
            shutil.rmtree(work, ignore_errors=True)
    return 0 if all(r["ok"] for r in out["runs"]) else 1


if __name__ == "__main__":
    sys.exit(main())
