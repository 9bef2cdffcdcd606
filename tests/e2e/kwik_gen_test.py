#!/usr/bin/env python3
"""kwik-gen against kwikd, two DPDK processes over a veth pair between two network namespaces,
both on net_af_packet (no hugepages): (a) discard endpoint, 2 paths, a modest rate: every packet
sent is acknowledged, kwikd's counters show the same packets and stream bytes, latency samples
exist; (b) echo endpoint: the echoed bytes equal the bytes sent; (c) a short RFC 2544 search
finishes with a rate above 0; (r) on a net_ring loopback with two workers, every packet comes
back reflected and counts as delivered once; (p) a pcap replayed twice on it comes back frame
for frame; (d) when 2 MiB hugepages can be reserved, (a) over net_memif
(kwikd role=server, kwik-gen role=client), the hugepage count restored afterwards.
Usage: kwik_gen_test.py <kwikd> <kwik-gen> <kwikd-cmd>"""
import json
import struct
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

kwikd, kwik_gen, kwikd_cmd = sys.argv[1:4]
PID = os.getpid()
NS_D, NS_G = "kgd%d" % PID, "kgg%d" % PID  # kwikd's and kwik-gen's namespaces
IF_D, IF_G = "kgd0", "kgg0"
STEP = 20  # seconds: the bound on every set-up command
HUGEPAGES = "/sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages"

failures = []
procs = []
names = []
work = tempfile.mkdtemp(prefix="kwik-gen-test-")
hugepages_before = None
huge_dir = None  # the memif case's own hugetlbfs mount


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what, flush=True)
    if not cond:
        failures.append(what)
    return cond


def run(*cmd):
    r = subprocess.run(list(cmd), capture_output=True, text=True, timeout=STEP)
    if r.returncode != 0:
        raise RuntimeError("`%s` failed (%d): %s" % (" ".join(cmd), r.returncode, r.stderr.strip()))
    return r


def stop(p):
    if p.poll() is None:
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(15)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(5)


def cleanup():
    for p in procs:
        stop(p)
    for ns in (NS_D, NS_G):
        subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=STEP)
    for name in names:
        for leftover in ("/dev/shm/" + name, "/dev/shm/" + name + ".lock", "/dev/shm/" + name + ".ctl.lock"):
            if os.path.exists(leftover):
                os.unlink(leftover)
        shutil.rmtree("/var/run/dpdk/" + name, ignore_errors=True)
    if huge_dir is not None:
        if subprocess.run(["umount", huge_dir], capture_output=True, timeout=STEP).returncode != 0:
            subprocess.run(["umount", "-l", huge_dir], capture_output=True, timeout=STEP)
    if hugepages_before is not None:
        with open(HUGEPAGES, "w") as f:
            f.write(str(hugepages_before))
    shutil.rmtree(work, ignore_errors=True)


def on_term(signum, frame):
    cleanup()
    sys.exit(1)


signal.signal(signal.SIGTERM, on_term)


def in_ns(ns, argv):
    return ["ip", "netns", "exec", ns] + argv if ns else argv


class kwikd_process:
    def __init__(self, case, device, fragment, hugepages=False, ns=NS_D):
        self.name = "kg%d%s" % (PID, case)
        names.append(self.name)
        self.config = os.path.join(work, case + ".toml")
        eal_args = '["--huge-dir", "%s"]' % huge_dir if hugepages and huge_dir else "[]"
        base = ('[kwikd]\nname = "%s"\nworker_lcores = [1]\nstats_interval_ms = 100\nhugepages = %s\n'
                'memory_mb = 256\npoll_mode = "adaptive"\neal_args = %s\n\n[[port]]\nname = "p0"\ndevice = "%s"\n'
                'addresses = ["10.100.0.1/24"]\nkwik_ports = [7707]\n\n'
                % (self.name, "true" if hugepages else "false", eal_args, device))
        with open(self.config, "w") as f:
            f.write(base + open(fragment).read())
        self.log = os.path.join(work, case + "-kwikd.log")
        self.proc = subprocess.Popen(in_ns(ns, [kwikd, "--config", self.config]), stdout=open(self.log, "w"),
                                     stderr=subprocess.STDOUT)
        procs.append(self.proc)
        deadline = time.time() + 60
        while time.time() < deadline and self.proc.poll() is None and "running" not in self.output():
            time.sleep(0.2)
        if self.proc.poll() is not None or "running" not in self.output():
            raise RuntimeError("kwikd did not start: " + self.output()[-3000:])

    def output(self):
        return open(self.log).read()

    def counters(self):
        r = subprocess.run([kwikd_cmd, "--name", self.name, "--timeout", "5", "counters", "--fresh"],
                           capture_output=True, text=True, timeout=STEP)
        lines = [json.loads(x) for x in r.stdout.splitlines() if x.startswith("{") and '"connections"' in x]
        return lines[-1] if lines else {}

    def stop(self):
        stop(self.proc)


def gen(case, ns, vdev, args, timeout=120, eal_cores=None):
    """Runs kwik-gen to its end; (exit status, its JSON report or {}, its stderr)."""
    report = os.path.join(work, case + ".json")
    prefix = "kgg%d%s" % (PID, case)
    names.append(prefix)
    # kwik-gen's worker on core 0, beside kwikd's main lcore (mostly asleep); kwikd's worker has core 1
    eal = (eal_cores or ["-l", "0,1", "--main-lcore", "1"]) + ["--file-prefix", prefix, "--vdev", vdev, "--no-pci", "--log-level", "lib.eal:warning"]
    if "memif" not in vdev:
        eal += ["--no-huge", "-m", "256"]
    else:
        eal += ["-m", "256"] + (["--huge-dir", huge_dir] if huge_dir else [])
    p = subprocess.Popen(in_ns(ns, [kwik_gen] + eal + ["--", "--json", report, "--idle-sleep-us", "20"] + args),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    procs.append(p)
    try:
        _, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        stop(p)
        _, err = p.communicate()
    data = {}
    if os.path.exists(report):
        try:
            data = json.load(open(report))
        except ValueError:
            pass
    print(err[-1500:])
    return p.returncode, data, err


def fragment(case, args):
    path = os.path.join(work, case + "-fragment.toml")
    r = subprocess.run([kwik_gen, "--", "--kwikd-config", path, "--config-only"] + args, capture_output=True,
                       text=True, timeout=STEP)
    if r.returncode != 0:
        raise RuntimeError("kwik-gen --config-only: " + r.stderr)
    return path


def link_mac(ns, interface):
    out = run("ip", "-n", ns, "-j", "link", "show", interface).stdout
    return json.loads(out)[0]["address"]


def check_discard(case, k, code, rep, paths):
    sent = rep.get("sent", {})
    check(code == 0 and rep.get("result") == "ok", "%s: kwik-gen exits 0 with result ok (%s, %s)"
          % (case, code, rep.get("failures")))
    check(sent.get("packets", 0) > 0 and sent.get("tx_refused", 1) == 0,
          "%s: packets sent, none refused by the tx queue (%s)" % (case, sent))
    check(rep.get("delivered") == sent.get("packets") and rep.get("lost") == 0,
          "%s: every packet acknowledged: delivered %s of %s" % (case, rep.get("delivered"), sent.get("packets")))
    check(rep.get("received", {}).get("acks", 0) > 0 and rep.get("received", {}).get("malformed", 1) == 0,
          "%s: kwikd's ACKs parsed, nothing malformed (%s)" % (case, rep.get("received")))
    check(rep.get("latency_us", {}).get("samples", 0) > 0 and rep["latency_us"]["p50"] > 0,
          "%s: latency samples (%s, p50 %s us)" % (case, rep.get("latency_us", {}).get("samples"),
                                                   rep.get("latency_us", {}).get("p50")))
    c = k.counters()
    conns = c.get("connections", [])
    rx = sum(x["rx_packets"] for x in conns)
    delivered_bytes = sum(x["delivered_bytes"] for x in conns)
    check(rx == sent.get("packets", -1) + sent.get("control_packets", 0),
          "%s: kwikd received the same packets: %d = %s data + %s ACK/PATH_RESPONSE"
          % (case, rx, sent.get("packets"), sent.get("control_packets")))
    check(delivered_bytes == sent.get("payload_bytes", -1),
          "%s: kwikd delivered the stream bytes sent: %d = %s" % (case, delivered_bytes, sent.get("payload_bytes")))
    check(len({x["path_id"] for x in c.get("paths", [])}) == paths and
          all(x["rx_packets"] > 0 for x in c.get("paths", [])), "%s: every path carried packets" % case)


def veth_case():
    for ns in (NS_D, NS_G):
        run("ip", "netns", "add", ns)
        run("ip", "-n", ns, "link", "set", "lo", "up")
    run("ip", "link", "add", IF_D, "netns", NS_D, "type", "veth", "peer", "name", IF_G, "netns", NS_G)
    for ns, i in ((NS_D, IF_D), (NS_G, IF_G)):
        run("ip", "netns", "exec", ns, "sysctl", "-q", "-w", "net.ipv6.conf.%s.disable_ipv6=1" % i)
        run("ip", "-n", ns, "link", "set", i, "up")
    mac = link_mac(NS_D, IF_D)

    # (a) discard, 2 paths, 2000 packets/s for 2 s
    common = ["--paths", "2", "--connections", "1", "--payload", "1000", "--stream-size", "64K"]
    k = kwikd_process("a", "net_af_packet0,iface=" + IF_D, fragment("a", common + ["--endpoint", "discard"]))
    code, rep, _ = gen("a", NS_G, "net_af_packet0,iface=" + IF_G,
                       common + ["--dst-mac", mac, "--rate-pps", "2000", "--duration-s", "2", "--drain-ms", "1500"])
    check(rep.get("streams_opened", 0) > 1, "a: streams rolled over at --stream-size (%s opened)" % rep.get("streams_opened"))
    check_discard("a", k, code, rep, 2)
    k.stop()

    # (b) echo: what kwikd sends back is every byte sent
    common = ["--paths", "2", "--payload", "800", "--stream-size", "256K"]
    k = kwikd_process("b", "net_af_packet0,iface=" + IF_D, fragment("b", common + ["--endpoint", "echo"]))
    code, rep, _ = gen("b", NS_G, "net_af_packet0,iface=" + IF_G,
                       common + ["--endpoint", "echo", "--dst-mac", mac, "--rate-pps", "1000", "--duration-s", "2",
                                 "--drain-ms", "3000"])
    sent = rep.get("sent", {})
    check(code == 0 and rep.get("result") == "ok", "b: kwik-gen exits 0 (%s, %s)" % (code, rep.get("failures")))
    check(sent.get("payload_bytes", 0) > 0 and rep.get("received", {}).get("echo_bytes") == sent.get("payload_bytes"),
          "b: echoed bytes %s == sent bytes %s" % (rep.get("received", {}).get("echo_bytes"), sent.get("payload_bytes")))
    check(rep.get("delivered") == sent.get("packets") and rep.get("lost") == 0,
          "b: every packet's bytes came back: delivered %s of %s" % (rep.get("delivered"), sent.get("packets")))
    check(sent.get("control_packets", 0) > 0, "b: kwik-gen acknowledged kwikd's packets (%s ACK packets)"
          % sent.get("control_packets"))
    k.stop()

    # (c) a short search against kwikd
    common = ["--paths", "2", "--payload", "1000"]
    k = kwikd_process("c", "net_af_packet0,iface=" + IF_D, fragment("c", common))
    code, rep, _ = gen("c", NS_G, "net_af_packet0,iface=" + IF_G,
                       common + ["--dst-mac", mac, "--search", "--search-min-pps", "500", "--search-max-pps", "200000",
                                 "--trial-s", "0.5", "--resolution", "0.25", "--loss-tolerance", "0.01",
                                 "--drain-ms", "300"], timeout=150)
    s = rep.get("search", {})
    check(code == 0 and s.get("zero_loss_pps", 0) > 0 and len(s.get("trials", [])) >= 1,
          "c: the search finished: %s pps after %d trials (exit %s)" % (s.get("zero_loss_pps"), len(s.get("trials", [])), code))
    check(s.get("latency", {}).get("samples", 0) > 0, "c: the latency trial has samples")
    k.stop()


def reflect_case():
    code, rep, _ = gen("r", None, "net_ring0",
                       ["--dst-mac", "02:00:00:00:00:01", "--expect", "reflect", "--connections", "3", "--paths", "2",
                        "--rate-pps", "4000", "--duration-s", "1", "--drain-ms", "300"],
                       eal_cores=["--lcores", "0@0,1@1,2@1"])
    sent = rep.get("sent", {})
    check(code == 0 and rep.get("lcores", {}).get("workers") == [1, 2], "r: kwik-gen ran two workers (exit %s, %s)"
          % (code, rep.get("lcores")))
    check(sent.get("packets", 0) > 0 and rep.get("delivered") == sent.get("packets") and
          rep.get("received", {}).get("reflected") == sent.get("packets") and rep.get("lost") == 0,
          "r: every packet reflected once: %s of %s" % (rep.get("delivered"), sent.get("packets")))
    check(all(w["sent_packets"] > 0 for w in rep.get("workers", [])), "r: both workers sent")
    check(rep.get("latency_us", {}).get("samples") == sent.get("packets"), "r: a latency sample per reflected packet")


def pcap_case():
    frames = []
    for i in range(7):
        udp = struct.pack("!HHHH", 40000, 7707, 8 + 10 + i, 0) + bytes([i]) * (10 + i)
        ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0x4000, 64, 17, 0, bytes([10, 0, 1, 2]),
                         bytes([10, 100, 0, 1]))
        frames.append(bytes.fromhex("02000000aa01" "02000000bb0%d" % (i % 2)) + b"\x08\x00" + ip + udp)
    path = os.path.join(work, "replay.pcap")
    with open(path, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        for i, fr in enumerate(frames):
            f.write(struct.pack("<IIII", 1, i, len(fr), len(fr)) + fr)
    code, rep, _ = gen("p", None, "net_ring0", ["--pcap", path, "--loop", "2", "--rate-pps", "1000", "--drain-ms", "200"])
    sent = rep.get("sent", {})
    check(code == 0 and sent.get("packets") == 14 and sent.get("frame_bytes") == 2 * sum(len(x) for x in frames),
          "p: the pcap went out twice, byte for byte counted (%s, exit %s)" % (sent, code))
    check(rep.get("delivered") == 14 and rep.get("received", {}).get("reflected") == 14,
          "p: every replayed frame came back (%s)" % rep.get("received"))


def memif_case():
    global hugepages_before, huge_dir
    if not os.path.exists(HUGEPAGES):
        print("SKIP memif: no 2 MiB hugepage pool in this kernel")
        return
    hugepages_before = int(open(HUGEPAGES).read())
    want = hugepages_before + 400  # 800 MiB: kwikd's and kwik-gen's 256 MiB each, and their pools
    with open(HUGEPAGES, "w") as f:
        f.write(str(want))
    if int(open(HUGEPAGES).read()) < want:
        print("SKIP memif: could not reserve 400 more 2 MiB hugepages (have %s)" % open(HUGEPAGES).read().strip())
        return
    # A hugetlbfs of our own, so that the case runs where none is mounted (no systemd) and
    # never shares one with another DPDK program; both EALs are pointed at it.
    huge_dir = os.path.join(work, "huge")
    os.makedirs(huge_dir, exist_ok=True)
    subprocess.run(["mount", "-t", "hugetlbfs", "-o", "pagesize=2M", "nodev", huge_dir], check=True, timeout=STEP)
    sock = os.path.join(work, "memif.sock")
    mac = "02:6b:77:00:00:01"
    common = ["--paths", "2", "--payload", "1000", "--stream-size", "64K"]
    k = kwikd_process("d", "net_memif0,role=server,id=0,socket=%s,mac=%s" % (sock, mac),
                      fragment("d", common), hugepages=True, ns=None)
    code, rep, _ = gen("d", None, "net_memif0,role=client,id=0,socket=%s,mac=02:6b:77:00:00:02" % sock,
                       common + ["--dst-mac", mac, "--rate-pps", "2000", "--duration-s", "2", "--drain-ms", "1500"])
    check(rep.get("port", {}).get("driver") == "net_memif", "d: kwik-gen drove a net_memif port (%s)" % rep.get("port"))
    check_discard("d", k, code, rep, 2)
    k.stop()


if os.geteuid() != 0:
    print("SKIP needs root (network namespaces)")
    sys.exit(77)
started = time.monotonic()
try:
    reflect_case()
    pcap_case()
    veth_case()
    memif_case()
except Exception as e:  # noqa: BLE001 - any failure is reported with kwikd's output
    check(False, "the test ran to its end: %r" % e)
    for f in sorted(os.listdir(work)):
        if f.endswith(".log"):
            print("---- %s ----\n%s" % (f, open(os.path.join(work, f)).read()[-3000:]))
finally:
    cleanup()
print("%.1f s; %d failed" % (time.monotonic() - started, len(failures)))
sys.exit(1 if failures else 0)
