#!/usr/bin/env python3
"""Tests of perf/pktgen/ (meson: pktgen_scripts in suite unit, pktgen_kwikd in suite integration).

  pktgen_test.py scripts LUA            luac -p on every script; the real kwik_rfc2544.lua,
                                        kwik_rate.lua and run_rfc2544.sh against pktgen_model.lua
                                        (a model of Pktgen 23.06.1's Lua API over a simulated DUT
                                        with a known zero-loss rate) and fake-kwikd-cmd; the
                                        binary search's every step, the counts, the output files,
                                        and bad settings stopping with the setting named
  pktgen_test.py kwikd LUA BUILD_DIR    make_pcaps.sh's captures and connection blocks fed to a
                                        real kwikd (net_pcap, no hugepages): every packet taken
                                        as new data, none dropped; the real kwikd-cmd's output
                                        has the fake's exact format, and the scripts' parser
                                        reads it

Exit: 0 passed, 1 failed, 77 skipped (no Lua interpreter: Debian's lua5.4, deploy/setup.sh).
Every process started is killed on the way out. Python 3 stdlib only."""
import json
import os
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
PKTGEN_DIR = os.path.dirname(HERE)
ROOT = os.path.dirname(os.path.dirname(PKTGEN_DIR))
MODEL = os.path.join(HERE, "pktgen_model.lua")
FAKE_DIR = os.path.join(HERE, "fake-kwikd-cmd")
LINK_MBPS = 10000

failures = []
_live = []


def check(cond, what):
    if not cond:
        failures.append(what)
        print("FAIL: " + what, flush=True)
    return cond


def write_pcap(path, packets, frame):
    with open(path, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        for i in range(packets):
            f.write(struct.pack("<IIII", 1700000000, i, frame, frame))
            f.write(bytes(frame))


def line_pps(frame):
    size = max(64, min(1518, frame + 4))
    return LINK_MBPS * 1e6 / ((size + 20) * 8)


class lua_run:
    """One pktgen_model.lua run of a script: its exit status, output and trace."""

    def __init__(self, lua, work, script, env, pcap=None, extra_args=()):
        self.trace = os.path.join(work, "trace-%d" % time.monotonic_ns())
        e = dict(os.environ)
        e["PATH"] = FAKE_DIR + os.pathsep + e.get("PATH", "")
        e["KWIK_MODEL_STATE"] = os.path.join(work, "state")
        e["KWIK_MODEL_TRACE"] = self.trace
        e["KWIK_MODEL_LINK_MBPS"] = str(LINK_MBPS)
        e.update(env)
        argv = [lua, MODEL, "-l", "0-2", "--", "-P", "-m", "[1:2].0"]
        if pcap:
            argv += ["-s", "0:" + pcap]
        argv += list(extra_args) + ["-f", os.path.join(PKTGEN_DIR, script)]
        p = subprocess.run(argv, env={k: v for k, v in e.items() if v is not None}, capture_output=True, text=True,
                           timeout=300)
        self.rc = p.returncode
        self.out = p.stdout
        self.err = p.stderr
        self.trace_lines = open(self.trace).read().splitlines() if os.path.exists(self.trace) else []

    def called(self, what):
        return any(l.split(" ", 1)[1].startswith(what) for l in self.trace_lines)


# ---------------------------------------------------------------------------------------------

def syntax(lua):
    luac = shutil.which(os.path.basename(lua).replace("lua", "luac", 1)) or shutil.which("luac")
    if not check(luac is not None, "luac for %s not found" % lua):
        return
    files = [os.path.join(PKTGEN_DIR, f) for f in sorted(os.listdir(PKTGEN_DIR)) if f.endswith(".lua")]
    files.append(MODEL)
    for f in files:  # one file per luac: Debian's luac5.4 5.4.4 double-frees on several
        p = subprocess.run([luac, "-p", f], capture_output=True, text=True)
        check(p.returncode == 0, "luac -p %s: %s" % (f, p.stderr.strip()))
    print("syntax: %d files parse" % len(files), flush=True)


def search_cases(lua, work):
    """kwik_rfc2544.lua's binary search against DUTs of known zero-loss rate."""
    frame = 141
    pcap = os.path.join(work, "kwik-64.pcap")
    write_pcap(pcap, 512, frame)
    lp = line_pps(frame)
    cases = [
        # description, capacity pps, drop ppm, min, max, resolution, tolerance %, expected result
        ("2 Mpps DUT", 2.0e6, 0, 1, 100, 0.5, 0, "ok"),
        ("6 Mpps DUT, finer resolution", 6.0e6, 0, 1, 100, 0.25, 0, "ok"),
        ("narrow range around 40 %", 0.4 * lp, 0, 30, 45, 0.1, 0, "ok"),
        ("line rate", 1e12, 0, 1, 100, 0.5, 0, "no loss at KWIK_MAX_RATE"),
        ("below the lowest rate", 5000, 0, 1, 100, 0.5, 0, "loss at KWIK_MIN_RATE"),
        ("kwikd drops 0.1 %, zero loss asked", 2.0e6, 1000, 1, 100, 0.5, 0, "loss at KWIK_MIN_RATE"),
        ("kwikd drops 0.1 %, 0.3 % tolerated", 2.0e6, 1000, 1, 100, 0.5, 0.3, "ok"),
    ]
    for desc, cap, ppm, lo, hi, res, tol, expect in cases:
        results = os.path.join(work, "res-%d" % len(failures) + desc.replace(" ", "_").replace("%", "pct")
                               .replace(",", ""))
        env = {"KWIK_PCAP": pcap, "KWIK_RESULTS": results, "KWIK_TRIAL_S": "2", "KWIK_MIN_RATE": str(lo),
               "KWIK_MAX_RATE": str(hi), "KWIK_RESOLUTION": str(res), "KWIK_LOSS_TOLERANCE": str(tol),
               "KWIK_MODEL_CAPACITY_PPS": str(cap), "KWIK_MODEL_DROP_PPM": str(ppm)}
        r = lua_run(lua, work, "kwik_rfc2544.lua", env, pcap)
        if not check(r.rc == 0, "%s: rc %d: %s %s" % (desc, r.rc, r.err, r.out[-2000:])):
            continue
        check(r.called("quit"), "%s: the script did not quit pktgen" % desc)
        rows = open(results + ".csv").read().splitlines()
        check(rows[0].split(",")[:5] == ["label", "pcap", "frame_bytes", "packets_in_pcap", "zero_loss_rate_pct"],
              "%s: CSV header %s" % (desc, rows[0]))
        check(len(rows) == 2, "%s: CSV has %d lines, expected header + 1" % (desc, len(rows)))
        row = dict(zip(rows[0].split(","), rows[1].split(",")))
        j = [json.loads(l) for l in open(results + ".jsonl")]
        check(len(j) == 1, "%s: JSONL has %d objects" % (desc, len(j)))
        j = j[0]
        trials = j["trials"]
        check(row["result"] == expect and j["result"] == expect,
              "%s: result '%s' (json '%s'), expected '%s'" % (desc, row["result"], j["result"], expect))
        check(row["label"] == "kwik-64" and row["frame_bytes"] == "141.0" and row["packets_in_pcap"] == "512",
              "%s: row %s" % (desc, row))
        check(int(row["trials"]) == len(trials), "%s: %s trials in the CSV, %d in the JSONL" % (desc, row["trials"],
                                                                                                   len(trials)))
        # The threshold the DUT model has, as a rate: loss <= tolerance iff offered <= this.
        d, t = ppm / 1e6, tol / 100.0
        true_rate = 100.0 * cap * (1 - d) / (1 - t) / lp if d <= t else 0.0
        # Every trial: counted right, judged right, and at the rate the search must pick next.
        best = failing = None
        for i, tr in enumerate(trials):
            if i == 0:
                want = hi
            elif i == 1:
                want = lo
            else:
                want = (best + failing) / 2
            check(abs(tr["rate"] - want) < 1e-6, "%s: trial %d at %g%%, the search should try %g%%" %
                  (desc, i + 1, tr["rate"], want))
            sent = tr["rate"] / 100 * lp * 2
            check(abs(tr["tx"] - sent) <= 2, "%s: trial %d: pktgen sent %d, the model sent %.0f (counts read too "
                  "early?)" % (desc, i + 1, tr["tx"], sent))
            taken = min(tr["tx"], round(cap * 2))
            check(tr["kwikd_rx"] == taken, "%s: trial %d: kwikd received %d, expected %d" % (desc, i + 1,
                                                                                            tr["kwikd_rx"], taken))
            check(tr["loss"] == tr["tx"] - (tr["kwikd_rx"] - tr["kwikd_dropped"]),
                  "%s: trial %d: loss %d != sent - (received - dropped)" % (desc, i + 1, tr["loss"]))
            if ppm:
                check(tr["drops"].get("bad_udp_checksum", 0) == tr["kwikd_dropped"] > 0,
                      "%s: trial %d: drops %s" % (desc, i + 1, tr["drops"]))
            check(tr["pass"] == (tr["loss"] <= tol / 100 * tr["tx"]), "%s: trial %d judged %s with loss %d of %d" %
                  (desc, i + 1, tr["pass"], tr["loss"], tr["tx"]))
            if tr["pass"]:
                best = tr["rate"]
            else:
                failing = tr["rate"]
        if expect == "ok":
            zl = float(row["zero_loss_rate_pct"])
            fl = float(row["failing_rate_pct"])
            check(zl <= true_rate + 0.01 and true_rate - zl <= res + 0.01,
                  "%s: zero-loss rate %.3f%%, the DUT's is %.3f%% (resolution %g)" % (desc, zl, true_rate, res))
            check(fl > true_rate - 0.01 and fl - zl <= res + 0.001,
                  "%s: failing rate %.3f%% against %.3f%%" % (desc, fl, true_rate))
            exact = j["zero_loss_rate_pct"]
            check(abs(exact - zl) < 0.0006 and abs(float(row["zero_loss_pps"]) - exact / 100 * lp) <= 2,
                  "%s: %s pps at %g%% (%s%% in the CSV)" % (desc, row["zero_loss_pps"], exact, zl))
            check(abs(float(row["zero_loss_wire_mbps"]) - float(row["zero_loss_pps"]) * (frame + 24) * 8 / 1e6) < 0.11,
                  "%s: wire Mbit/s %s" % (desc, row["zero_loss_wire_mbps"]))
        elif expect == "no loss at KWIK_MAX_RATE":
            check(len(trials) == 1 and row["zero_loss_rate_pct"] == "%.3f" % hi and row["failing_rate_pct"] == "-",
                  "%s: %s" % (desc, row))
        else:
            check(len(trials) == 2 and row["zero_loss_rate_pct"] == "-", "%s: %s" % (desc, row))
        check("zero-loss %" in r.out and "\nkwik_rfc2544: kwik-64 " in r.out, "%s: no result table:\n%s" %
              (desc, r.out[-1500:]))
        print("rfc2544 %-40s %-26s %2d trials, found %s%% (DUT %.3f%%)" % (desc, row["result"], len(trials),
              row["zero_loss_rate_pct"], true_rate), flush=True)


def driver_case(lua, work):
    """run_rfc2544.sh: one pktgen run per capture, one table of every size at the end."""
    d = os.path.join(work, "pcaps")
    os.makedirs(d)
    with open(os.path.join(d, "pcaps.tsv"), "w") as f:
        f.write("size\tfile\tpackets\tframe_bytes\n")
        for size, frame in ((64, 141), (1400, 1477)):
            p = os.path.join(d, "kwik-%d.pcap" % size)
            write_pcap(p, 128, frame)
            f.write("%d\t%s\t128\t%d\n" % (size, p, frame))
    env = dict(os.environ)
    env.update({"PATH": FAKE_DIR + os.pathsep + env["PATH"], "KWIK_MODEL_STATE": os.path.join(work, "dstate"),
                "KWIK_MODEL_CAPACITY_PPS": "1500000", "KWIK_TRIAL_S": "1", "KWIK_RESOLUTION": "1"})
    argv = [os.path.join(PKTGEN_DIR, "run_rfc2544.sh"), "--pktgen", "%s %s" % (lua, MODEL), d, "--", "-l", "0-2",
            "--", "-P", "-m", "[1:2].0"]
    p = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=300)
    check(p.returncode == 0, "run_rfc2544.sh: rc %d: %s %s" % (p.returncode, p.stderr, p.stdout[-2000:]))
    rows = open(os.path.join(d, "rfc2544.csv")).read().splitlines()
    check(len(rows) == 3 and rows[1].startswith("kwik-64,") and rows[2].startswith("kwik-1400,"),
          "run_rfc2544.sh: CSV %s" % rows)
    check(len(open(os.path.join(d, "rfc2544.jsonl")).read().splitlines()) == 2, "run_rfc2544.sh: JSONL lines")
    table = [l for l in p.stdout.splitlines() if l.startswith("kwik_rfc2544: kwik-")]
    check(any(l.startswith("kwik_rfc2544: kwik-64 ") for l in table[-2:]) and table[-1].startswith(
        "kwik_rfc2544: kwik-1400 "), "run_rfc2544.sh: the last table misses a size:\n%s" % "\n".join(table))
    r64 = dict(zip(rows[0].split(","), rows[1].split(",")))
    want = 100 * 1.5e6 / line_pps(141)
    check(abs(float(r64["zero_loss_rate_pct"]) - want) <= 1.01, "run_rfc2544.sh: 64 B at %s%%, DUT %.2f%%" %
          (r64["zero_loss_rate_pct"], want))
    for args, name in (([d], "PKTGEN_ARGUMENTS"), (["--port", "x", d, "--", "-l", "0"], "--port"),
                       ([os.path.join(work, "nowhere"), "--", "-l", "0"], "PCAP_DIR"),
                       ([d, "--", "-l", "0", "--", "-s", "0:x"], "PKTGEN_ARGUMENTS")):
        p = subprocess.run([os.path.join(PKTGEN_DIR, "run_rfc2544.sh"), "--pktgen", "%s %s" % (lua, MODEL)] + args,
                           env=env, capture_output=True, text=True, timeout=60)
        check(p.returncode == 2 and name in p.stderr, "run_rfc2544.sh %s: rc %d, stderr %r" % (args, p.returncode,
                                                                                              p.stderr))
    print("run_rfc2544.sh: 2 sizes, one table; bad arguments named", flush=True)


def rate_cases(lua, work):
    pcap = os.path.join(work, "kwik-rate.pcap")
    write_pcap(pcap, 1000, 141)
    lp = line_pps(141)
    for rate, cap in ((20, 2.0e6), (50, 2.0e6)):
        res = os.path.join(work, "rate-%d.json" % rate)
        r = lua_run(lua, work, "kwik_rate.lua", {"KWIK_PCAP": pcap, "KWIK_RATE": str(rate), "KWIK_SECONDS": "3",
                                                 "KWIK_RESULTS": res, "KWIK_MODEL_CAPACITY_PPS": str(cap)}, pcap)
        if not check(r.rc == 0, "kwik_rate %d%%: rc %d: %s" % (rate, r.rc, r.err)):
            continue
        j = json.load(open(res))
        sent = rate / 100 * lp * 3
        taken = min(j["tx"], round(cap * 3))
        check(abs(j["tx"] - sent) <= 2 and j["kwikd_rx"] == taken and j["loss"] == j["tx"] - taken,
              "kwik_rate %d%%: %s" % (rate, j))
        check(j["pass"] == (taken == j["tx"]), "kwik_rate %d%%: pass %s" % (rate, j["pass"]))
        check(j["kwikd_new"] == 1000, "kwik_rate %d%%: %d new-data packets, the capture has 1000" % (rate,
                                                                                                   j["kwikd_new"]))
        seconds = [l for l in r.out.splitlines() if " s  tx " in l]
        check(len(seconds) == 3, "kwik_rate %d%%: %d per-second lines" % (rate, len(seconds)))
        verdict = "PASS" if j["pass"] else "FAIL"
        check(("loss %s of" % "{:,}".format(j["loss"])) in r.out and verdict in r.out and "kwikd port 0: received "
              + "{:,}".format(j["kwikd_rx"]) in r.out, "kwik_rate %d%%: output:\n%s" % (rate, r.out))
        print("kwik_rate at %d%%: sent %d, kwikd %d, %s" % (rate, j["tx"], j["kwikd_rx"], verdict), flush=True)


def bad_settings(lua, work):
    pcap = os.path.join(work, "kwik-bad.pcap")
    write_pcap(pcap, 16, 141)
    text = os.path.join(work, "not-a.pcap")
    with open(text, "w") as f:
        f.write("this is no capture, but long enough to hold a header\n")
    base = {"KWIK_PCAP": pcap, "KWIK_RESULTS": os.path.join(work, "bad")}
    cases = [
        ("kwik_rfc2544.lua", {"KWIK_MIN_RATE": "50", "KWIK_MAX_RATE": "10"}, "KWIK_MIN_RATE: 50 is above KWIK_MAX_RATE"),
        ("kwik_rfc2544.lua", {"KWIK_PCAP": os.path.join(work, "missing.pcap")}, "KWIK_PCAP: cannot open"),
        ("kwik_rfc2544.lua", {"KWIK_PCAP": None}, "KWIK_PCAP: required"),
        ("kwik_rfc2544.lua", {"KWIK_PCAP": text}, "KWIK_PCAP: " + text + " is not a classic pcap"),
        ("kwik_rfc2544.lua", {"KWIK_TRIAL_S": "ten"}, "KWIK_TRIAL_S: 'ten' is not a number"),
        ("kwik_rfc2544.lua", {"KWIK_RESOLUTION": "0"}, "KWIK_RESOLUTION: 0 is below"),
        ("kwik_rfc2544.lua", {"KWIK_SETTLE_MS": "500"}, "KWIK_SETTLE_MS: 500 is below 1100"),
        ("kwik_rfc2544.lua", {"KWIK_LOSS_FROM": "nic"}, "KWIK_LOSS_FROM: 'nic' is not one of kwikd, pktgen"),
        ("kwik_rfc2544.lua", {"KWIK_MAX_TRIALS": "2.5"}, "KWIK_MAX_TRIALS: '2.5' is not a whole number"),
        ("kwik_rfc2544.lua", {"KWIK_DUT_PORT": "2"}, "KWIK_DUT_PORT: kwikd has 1 port(s)"),
        ("kwik_rfc2544.lua", {"KWIK_MODEL_KWIKD_DOWN": "1"}, "KWIK_KWIKD_CMD: 'kwikd-cmd --name kwik counters --fresh' exited 1"),
        ("kwik_rfc2544.lua", {"KWIK_RESULTS": os.path.join(work, "no/such/dir/r")}, "KWIK_RESULTS: cannot write"),
        ("kwik_rfc2544.lua", {"KWIK_RX_PORT": "5"}, "KWIK_RX_PORT: pktgen has no port 5"),
        ("kwik_rate.lua", {"KWIK_TX_PORT": "1"}, "KWIK_TX_PORT: pktgen has no port 1"),
        ("kwik_rate.lua", {"KWIK_RATE": "150"}, "KWIK_RATE: 150 is above 100"),
        ("kwik_rate.lua", {"KWIK_QUIT": "maybe"}, "KWIK_QUIT: 'maybe' is not"),
        ("kwik_rate.lua", {"KWIK_PCAP": os.path.join(work, "missing.pcap")}, "KWIK_PCAP: cannot open"),
    ]
    for script, env, message in cases:
        e = dict(base)
        e.update(env)
        r = lua_run(lua, work, script, e, pcap)
        check(r.rc == 1 and message in r.err, "%s %s: rc %d, expected 1 and '%s' in:\n%s" % (script, env, r.rc,
                                                                                           message, r.err))
        check(r.called("quit"), "%s %s: pktgen was not asked to quit" % (script, env))
        check(not r.called("start"), "%s %s: pktgen sent before the settings were checked" % (script, env))
    print("bad settings: %d cases stop with the setting named" % len(cases), flush=True)


def scripts(lua):
    work = tempfile.mkdtemp(prefix="kwik-pktgen-test-")
    try:
        syntax(lua)
        search_cases(lua, work)
        driver_case(lua, work)
        rate_cases(lua, work)
        bad_settings(lua, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)


# ---------------------------------------------------------------------------------------------
# The real kwikd

def structure(v):
    """The shape of a JSON value: objects as ordered (key, shape) lists, arrays by their first
    element, numbers as 'n'. Drop reasons are names of counted drops: compared as an object."""
    if isinstance(v, dict):
        return [(k, "drops" if k == "drops" else structure(x)) for k, x in v.items()]
    if isinstance(v, list):
        return ["array", structure(v[0]) if v else None]
    if isinstance(v, bool):
        return "b"
    if isinstance(v, (int, float)):
        return "n"
    return "s"


def kwikd(lua, build):
    work = tempfile.mkdtemp(prefix="kwik-pktgen-kwikd-")
    name = "kwpg%d" % os.getpid()
    kwikd_cmd = os.path.join(build, "tools/kwikd-cmd/kwikd-cmd")
    proc = None
    try:
        out = os.path.join(work, "pcaps")
        mac = "02:70:63:61:70:00"  # net_pcap0's MAC in DPDK 22.11
        p = subprocess.run([os.path.join(PKTGEN_DIR, "make_pcaps.sh"), "--server-mac", mac, "--sizes", "64,1400",
                            "--packets", "256", "--streams", "4", "--paths", "2", build, out],
                           capture_output=True, text=True, timeout=120)
        if not check(p.returncode == 0, "make_pcaps.sh: rc %d: %s" % (p.returncode, p.stderr)):
            return
        tsv = [l.split("\t") for l in open(os.path.join(out, "pcaps.tsv")).read().splitlines()]
        check([r[0] for r in tsv] == ["size", "64", "1400"] and all(r[2] == "256" for r in tsv[1:]),
              "pcaps.tsv: %s" % tsv)
        for i, (size, path, _, frame) in enumerate(tsv[1:]):
            with open(path, "rb") as f:
                data = f.read()
            pos, n, ports = 24, 0, set()
            while pos < len(data):
                incl = struct.unpack_from("<IIII", data, pos)[2]
                pkt = data[pos + 16:pos + 16 + incl]
                pos += 16 + incl
                n += 1
                check(len(pkt) == int(frame) and pkt[:6] == bytes.fromhex(mac.replace(":", "")) and
                      pkt[12:14] == b"\x08\x00" and pkt[30:34] == bytes([10, 100, 0, 1]),
                      "%s packet %d: not an IPv4 frame of %s bytes to %s / 10.100.0.1" % (path, n, frame, mac))
                sport, dport = struct.unpack_from(">HH", pkt, 34)
                check(dport == 7707 and sport == 40000 + i, "%s packet %d: ports %d -> %d" % (path, n, sport, dport))
                ports.add(pkt[26:30])
            check(n == 256 and len(ports) == 2, "%s: %d packets from %d clients" % (path, n, len(ports)))
        blocks = open(os.path.join(out, "connections.toml")).read()
        lines = blocks.splitlines()
        check(lines.count("[[connection]]") == 2 and lines.count("[[connection.path]]") == 4 and
              'remote = "10.0.2.2:40001"' in blocks, "connections.toml:\n" + blocks)
        p = subprocess.run([os.path.join(PKTGEN_DIR, "make_pcaps.sh"), "--sizes", "64", build, out],
                           capture_output=True, text=True)
        check(p.returncode == 2 and "--server-mac" in p.stderr, "make_pcaps.sh without --server-mac: %r" % p.stderr)
        p = subprocess.run([os.path.join(PKTGEN_DIR, "make_pcaps.sh"), "--server-mac", mac, "--packets", "10",
                            build, out], capture_output=True, text=True)
        check(p.returncode == 2 and "--packets" in p.stderr, "make_pcaps.sh --packets 10: %r" % p.stderr)
        print("make_pcaps.sh: 2 captures of 256 packets, their connection blocks", flush=True)

        # kwikd-pktgen.toml with the blocks just written, on net_pcap reading the 64-byte capture once.
        sample = open(os.path.join(PKTGEN_DIR, "kwikd-pktgen.toml")).read()
        config = os.path.join(work, "kwikd.toml")
        with open(config, "w") as f:
            f.write(sample.split("# The connections:")[0] + blocks)
        argv = [os.path.join(build, "dataplane/kwikd"), "--config", config, "--name", name, "--no-huge",
                "--memory-mb", "256", "--main-lcore", "0", "--worker-lcores", "1",
                "--set", "kwikd.poll_mode=adaptive",
                "--set", "port[0].device=net_pcap0,rx_pcap=%s" % tsv[1][1]]
        log_path = os.path.join(work, "kwikd.log")
        log = open(log_path, "w")
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        _live.append(proc)

        def counters(fresh=True):
            a = [kwikd_cmd, "--name", name, "counters"] + (["--fresh"] if fresh else [])
            r = subprocess.run(a, capture_output=True, text=True, timeout=30)
            return r.returncode, r.stdout

        deadline = time.monotonic() + 60
        real = None
        while time.monotonic() < deadline and proc.poll() is None:
            rc, text = counters()
            if rc == 0:
                real = text
                c = json.loads(text.splitlines()[-1])
                if c["ports"][0]["rx_packets"] >= 256 and c["connections"] and c["connections"][0]["rx_packets"] >= 256:
                    break
            time.sleep(0.2)
        if not check(real is not None, "kwikd never answered kwikd-cmd (exit %s):\n%s" % (
                proc.poll(), open(log_path).read()[-3000:])):
            return
        lines = real.splitlines()
        c = json.loads(lines[-1])
        check(c["ports"][0]["rx_packets"] == 256 and c["ports"][0]["rx_dropped"] == 0 and not c["drops"],
              "kwikd took the capture with drops: port %s, drops %s" % (c["ports"][0], c["drops"]))
        conn = c["connections"][0]
        check(conn["rx_packets"] == 256 and conn["delivered_bytes"] == 256 * 64,
              "kwikd's connection 1: %d packets, %d bytes delivered; expected 256 and %d" %
              (conn["rx_packets"], conn["delivered_bytes"], 256 * 64))
        print("kwikd: the 64-byte capture's 256 packets all new data, delivered, no drops", flush=True)

        # The fake prints what the real one prints.
        state = os.path.join(work, "state")
        with open(state, "w") as f:
            f.write("epoch 3\n")
            for which in ("cur", "pub"):
                for k in ("rx", "rx_bytes", "tx", "tx_bytes", "rx_dropped", "new", "delivered"):
                    f.write("%s_%s 7\n" % (which, k))
        fake_env = dict(os.environ, KWIK_MODEL_STATE=state)
        for fresh in (True, False):
            fake = subprocess.run([os.path.join(FAKE_DIR, "kwikd-cmd"), "--name", name, "counters"] +
                                  (["--fresh"] if fresh else []), env=fake_env, capture_output=True, text=True)
            _, text = counters(fresh)
            # Events that arrived before the answer come first (kwikd-cmd prints them all): the
            # answer and the counters are the last two lines, or the one line without --fresh.
            r_lines = text.splitlines()[-2:] if fresh else text.splitlines()
            f_lines = fake.stdout.splitlines()
            if fresh:
                check(json.loads(r_lines[0]).get("type") == "counters_ready", "--fresh: %r" % text)
            check(len(r_lines) == len(f_lines), "--fresh %s: kwikd-cmd printed %d lines, the fake %d" %
                  (fresh, len(r_lines), len(f_lines)))
            for rl, fl in zip(r_lines, f_lines):
                rs, fs = structure(json.loads(rl)), structure(json.loads(fl))
                check(rs == fs, "--fresh %s: the fake's format differs from kwikd-cmd's:\n real %s\n fake %s" %
                      (fresh, rs, fs))
                check(" " not in rl and " " not in fl, "--fresh %s: not compact JSON" % fresh)
        print("kwikd-cmd: the fake's output has the real one's format, with and without --fresh", flush=True)

        # The scripts' own parser on the real output.
        snippet = ('package.path = %r .. "/?.lua;" .. package.path; local kp = require("kwik_pktgen"); '
                   'local t = kp.kwikd_totals("X", kp.kwikd_counters("X", %r), 0); '
                   'print(t.rx, t.rx_dropped, t.new_packets, t.delivered, math.type(t.rx))'
                   % (PKTGEN_DIR, "%s --name %s counters --fresh" % (kwikd_cmd, name)))
        p = subprocess.run([lua, "-e", snippet], capture_output=True, text=True, timeout=60)
        check(p.stdout.split() == ["256", "0", "256", str(256 * 64), "integer"],
              "kwik_pktgen.lua read kwikd-cmd's counters as %r %r" % (p.stdout, p.stderr))
        print("kwik_pktgen.lua reads the real kwikd-cmd's counters", flush=True)
    finally:
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)
        shutil.rmtree("/var/run/dpdk/" + name, ignore_errors=True)
        for f in (name, name + ".lock"):
            try:
                os.unlink("/dev/shm/" + f)
            except FileNotFoundError:
                pass
        shutil.rmtree(work, ignore_errors=True)


def kill_all():
    for p in _live:
        if p.poll() is None:
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            p.wait(10)


def main(argv):
    if len(argv) < 2 or argv[0] not in ("scripts", "kwikd") or (argv[0] == "kwikd" and len(argv) != 3):
        print(__doc__, file=sys.stderr)
        return 2
    lua = argv[1]
    if not shutil.which(lua):
        print("pktgen_test: %s not found: install Debian's lua5.4 (deploy/setup.sh deps); skipped" % lua)
        return 77

    def on_term(sig, _):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    try:
        if argv[0] == "scripts":
            scripts(lua)
        else:
            kwikd(lua, os.path.abspath(argv[2]))
    except KeyboardInterrupt:
        failures.append("interrupted")
    finally:
        kill_all()
    if failures:
        print("pktgen_test %s: %d failure(s)" % (argv[0], len(failures)))
        return 1
    print("pktgen_test %s: passed" % argv[0])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
