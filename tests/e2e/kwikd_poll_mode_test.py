#!/usr/bin/env python3
"""kwikd's [kwikd] poll_mode on an idle port (net_pcap reading an empty capture): the worker
lcore's CPU time, from /proc/<pid>/task/<tid>/stat (utime + stime) over 2 s, is what the core
gives in busy mode (about all of it on a quiet machine; more than 3 times adaptive's here) and
under 20 % of one in adaptive mode, whose worker counts its sleeps
(DPDK telemetry /kwik/workers idle_sleeps). Packets still flowing in adaptive mode is
kwikd_run_adaptive (kwikd_run_test.py with --set kwikd.poll_mode=adaptive).
Usage: kwikd_poll_mode_test.py <kwikd>"""
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

kwikd = sys.argv[1]
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from kwik_e2e import check, failures, telemetry, worker_thread  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid, tid):
    with open("/proc/%d/task/%d/stat" % (pid, tid)) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK  # utime, stime (fields 14 and 15)


def measure(work, mode):
    """(share of a core used by the worker over 2 s, its telemetry) for one kwikd run."""
    name = "kwpm%d%s" % (os.getpid() % 100000, mode[0])  # kwikd derives ring names from it
    empty = os.path.join(work, "empty.pcap")
    with open(empty, "wb") as f:  # a pcap global header and no packet: rx returns nothing
        f.write(bytes.fromhex("d4c3b2a1020004000000000000000000ffff000001000000"))
    config = os.path.join(work, mode + ".toml")
    with open(config, "w") as f:
        f.write('[kwikd]\nname = "%s"\nworker_lcores = [1]\nhugepages = false\nmemory_mb = 256\n'
                'stats_interval_ms = 0\npoll_mode = "%s"\n\n[[port]]\nname = "p0"\n'
                'device = "net_pcap0,rx_pcap=%s,tx_pcap=%s"\naddresses = ["10.9.0.1/24"]\nkwik_ports = [7707]\n'
                % (name, mode, empty, os.path.join(work, mode + "-out.pcap")))
    log = open(os.path.join(work, mode + ".log"), "w+")
    proc = subprocess.Popen([kwikd, "--config", config], stdout=log, stderr=subprocess.STDOUT)
    try:
        tid = None
        deadline = time.time() + 30
        while tid is None and time.time() < deadline and proc.poll() is None:
            time.sleep(0.2)
            tid = worker_thread(proc.pid)
        if tid is None:
            log.seek(0)
            print(log.read())
            return None, None
        time.sleep(1.0)  # past start-up
        try:
            before, t0 = cpu_seconds(proc.pid, tid), time.monotonic()
            time.sleep(2.0)
            share = (cpu_seconds(proc.pid, tid) - before) / (time.monotonic() - t0)
        except OSError as e:  # kwikd ended early: its log says why
            log.seek(0)
            print("%s: %s\n%s" % (mode, e, log.read()))
            return None, None
        answers = telemetry(name, "/kwik/workers")
        return share, answers[0] if answers else None
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


work = tempfile.mkdtemp(prefix="kwik-poll-mode-test-")
try:
    busy, busy_tel = measure(work, "busy")
    adaptive, adaptive_tel = measure(work, "adaptive")
    print("idle worker CPU over 2 s: busy %s, adaptive %s (share of one core)" % (busy, adaptive))
    # Busy polling takes all of the core it is given: about 1.0 on a quiet machine, less where
    # other work shares the core (the test machines' builds), so it is compared with adaptive.
    check(busy is not None and adaptive is not None and busy > 3 * adaptive,
          "busy mode: the idle worker polls without pause (%s of a core, adaptive %s)" % (busy, adaptive))
    check(busy_tel is not None and busy_tel.get("idle_sleeps") == 0, "busy mode never sleeps: %s" % busy_tel)
    check(adaptive is not None and adaptive < 0.2,
          "adaptive mode: the idle worker uses under 20 %% of a core (%s)" % adaptive)
    check(adaptive_tel is not None and adaptive_tel.get("idle_sleeps", 0) > 1000,
          "adaptive mode: the worker counts its sleeps: %s" % adaptive_tel)
finally:
    shutil.rmtree(work, ignore_errors=True)

print("%d passed, %d failed" % (0 if failures else 1, 1 if failures else 0))
sys.exit(1 if failures else 0)
