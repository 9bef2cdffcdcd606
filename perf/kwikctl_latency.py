#!/usr/bin/env python3
"""Command latency from kwikctl to the worker applying it (issue 5 benchmark).

Starts kwikd (one worker, a net_null port with 10.9.0.1/24, one static connection "bench") and
kwik-cp (TLS on loopback, an operator key), then measures
  (a) `path add` and `path remove` round trips over one operator session, in process
      (build/perf/kwikctl_latency, 1000 of each by default): kwikctl's request -> kwik-cp ->
      kwikd's command ring -> the worker applies it -> kwikd's answer -> kwik-cp's
      OperatorResponse;
  (b) whole `kwikctl path add` (and `path remove`) process invocations (100 of each by default):
      exec, settings, TCP + TLS handshake, the two-round hello, the request, exit.
Prints p50/p99/mean per measurement as a Markdown table and JSON. Needs root (EAL), a build
with -Dbenchmarks=enabled (kwikd, kwikd-cmd, kwik-cp, kwikctl, perf/kwikctl_latency).

    python3 perf/kwikctl_latency.py [--build build] [--count 1000] [--invocations 100]"""
import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--build", default="build")
parser.add_argument("--count", type=int, default=1000)
parser.add_argument("--invocations", type=int, default=100)
parser.add_argument("--kwik-cp", help="this kwik-cp binary instead of the build's")
args = parser.parse_args()

kwikd = os.path.join(args.build, "dataplane", "kwikd")
kwikd_cmd = os.path.join(args.build, "tools", "kwikd-cmd", "kwikd-cmd")
kwik_cp = args.kwik_cp or os.path.join(args.build, "controlplane", "server", "kwik_cp", "kwik-cp")
kwikctl = os.path.join(args.build, "controlplane", "kwikctl", "kwikctl")
loop = os.path.join(args.build, "perf", "kwikctl_latency")
NAME = "kwikbench%d" % os.getpid()
SECRET = "3c" * 32
CONN, LOCAL, REMOTE = "bench", "10.9.0.1:7707", "10.9.0.2:40002"


def percentiles(us):
    us = sorted(us)
    at = lambda q: us[min(len(us) - 1, int(q * len(us)))]  # noqa: E731
    return {"n": len(us), "p50_us": at(0.5), "p99_us": at(0.99), "mean_us": statistics.fmean(us), "max_us": us[-1]}


work = tempfile.mkdtemp(prefix="kwikctl-bench-")
procs = []
try:
    with open(os.path.join(work, "kwikd.toml"), "w") as f:
        f.write('[kwikd]\nname = "%s"\nworker_lcores = [1]\nstats_interval_ms = 0\nhugepages = false\nmemory_mb = 256\n'
                '\n[[port]]\nname = "p0"\ndevice = "net_null0"\naddresses = ["10.9.0.1/24"]\nkwik_ports = [7707]\n'
                '\n[[connection]]\nid = "%s"\nendpoint = "discard"\n[[connection.path]]\npath_id = 1\n'
                'local = "%s"\nremote = "10.9.0.2:40001"\n' % (NAME, CONN, LOCAL))
    procs.append(subprocess.Popen([kwikd, "--config", os.path.join(work, "kwikd.toml")],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    deadline = time.time() + 30
    while not os.path.exists("/dev/shm/" + NAME):
        if time.time() > deadline:
            sys.exit("kwikd did not create its region")
        time.sleep(0.1)
    secret_file = os.path.join(work, "ops.secret")
    with open(secret_file, "w") as f:
        f.write(SECRET + "\n")
    os.chmod(secret_file, 0o600)
    with open(os.path.join(work, "kwik-cp.toml"), "w") as f:
        f.write('[kwik_cp]\nserver_id = "cp-bench"\nlisten = "127.0.0.1:0"\nkwikd_region = "%s"\n[tls]\n'
                'certificate = "%s/cp.crt"\nprivate_key = "%s/cp.key"\n[[auth.key]]\nkey_id = "ops"\nsecret = "%s"\n'
                'roles = ["operator"]\n' % (NAME, work, work, SECRET))
    cp = subprocess.Popen([kwik_cp, "--config", os.path.join(work, "kwik-cp.toml")], stdout=subprocess.PIPE,
                          stderr=subprocess.DEVNULL, text=True)
    procs.append(cp)
    port = int(cp.stdout.readline().rsplit(" ", 1)[1])
    pin = subprocess.run([kwikctl, "pin", os.path.join(work, "cp.crt")], capture_output=True, text=True,
                         check=True).stdout.strip()
    base = [kwikctl, "--server", "127.0.0.1:%d" % port, "--pin", pin, "--key-id", "ops", "--secret-file",
            secret_file]
    # The first kwikctl session waits until kwik-cp holds kwikd's rings (a session opened while
    # kwik-cp is detached gets a connection id that can collide with the static connection's).
    deadline = time.time() + 30
    while True:
        r = subprocess.run([kwikd_cmd, "--name", NAME, "--timeout", "2", "status"], capture_output=True, text=True)
        if r.returncode == 0 and r.stdout and json.loads(r.stdout.splitlines()[0]).get("control_pid") == cp.pid:
            break
        if time.time() > deadline:
            sys.exit("kwik-cp did not attach to kwikd: " + r.stdout[-300:] + r.stderr)
        time.sleep(0.1)
    while True:
        r = subprocess.run(base + ["--json", "status"], capture_output=True, text=True)
        rows = [t["rows"] for t in json.loads(r.stdout or "{}").get("tables", []) if t["name"] == "kwikd"]
        if rows and rows[0] and rows[0][0].get("attached") and rows[0][0].get("adopted"):
            break
        if time.time() > deadline:
            sys.exit("kwik-cp did not attach to kwikd: %s %s" % (r.stdout[-500:], r.stderr))
        time.sleep(0.2)

    # (a) one session, in process.
    r = subprocess.run([loop, "--server", "127.0.0.1:%d" % port, "--pin", pin, "--key-id", "ops", "--secret-file",
                        secret_file, "--connection", CONN, "--path-id", "2", "--local", LOCAL, "--remote", REMOTE,
                        "--count", str(args.count)], capture_output=True, text=True, timeout=600)
    if r.returncode != 0:
        sys.exit("kwikctl_latency failed: " + r.stderr)
    session = json.loads(r.stdout)

    # (b) whole processes.
    add_us, remove_us = [], []
    for i in range(args.invocations):
        path_id = str(args.count + 10 + i)  # kwikd never reuses a removed path id
        for cmd, out in ((["path", "add", "--connection", CONN, "--path-id", path_id, "--local", LOCAL, "--remote",
                           REMOTE], add_us),
                         (["path", "remove", "--connection", CONN, "--path-id", path_id], remove_us)):
            t0 = time.perf_counter()
            r = subprocess.run(base + cmd, capture_output=True, text=True)
            out.append((time.perf_counter() - t0) * 1e6)
            if r.returncode != 0:
                sys.exit("kwikctl %s: exit %d: %s" % (" ".join(cmd), r.returncode, r.stderr))
    processes = {"add": percentiles(add_us), "remove": percentiles(remove_us)}

    def row(what, s):
        return "| %s | %d | %.0f µs | %.0f µs | %.0f µs |" % (what, s["n"], s["p50_us"], s["p99_us"], s["mean_us"])
    print("| measurement | n | p50 | p99 | mean |")
    print("| --- | ---: | ---: | ---: | ---: |")
    print(row("`path add`, one session (in process)", session["add"]))
    print(row("`path remove`, one session (in process)", session["remove"]))
    print(row("`kwikctl path add` process", processes["add"]))
    print(row("`kwikctl path remove` process", processes["remove"]))
    print(json.dumps({"session": session, "processes": processes}))
finally:
    for p in reversed(procs):
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(timeout=30)
        except subprocess.TimeoutExpired:
            p.kill()
    shutil.rmtree(work, ignore_errors=True)
