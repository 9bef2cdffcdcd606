#!/usr/bin/env python3
"""kwikd on net_af_xdp with Kwik's XDP program (drivers/af_xdp), on a veth pair between two
network namespaces the test creates and removes: A holds kwikd's interface, whose kernel keeps
the same address; B is the peer. Checks: kwik-pcapgen streams sent from B's kernel UDP sockets
reach kwikd and are stored byte for byte (file store), with kwikd-cmd's connection counters
agreeing; the kernel in A still answers ping (ICMP echo from a raw socket), accepts a TCP
connection and receives a UDP datagram to a non-Kwik port; the XDP counters (kwik-xdp status
--json, telemetry /kwik/xdp, kwikd-cmd counters' ports[0].xdp) agree with what was sent, and
the PMD's rx count (ports[0].nic) is what XDP redirected; after kwikd stops the program is gone;
a kwik_xdp left by a SIGKILLed kwikd is removed by the next kwikd, which then works. Neighbours
(drivers/af_xdp/README.md): a client-role path to a peer that never sent reaches it, through the
kernel's neighbour entry kwikd asked for (NTF_USE) and was told about (rtnetlink); one to a peer
with a permanent entry made before kwikd started reaches it through the table's dump.
Runs with --no-huge. Needs root.
Usage: af_xdp_test.py <kwikd> <kwikd-cmd> <kwik-pcapgen> <kwik-xdp> <kwik_xdp.o>"""
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

kwikd, kwikd_cmd, pcapgen, kwik_xdp, xdp_object = sys.argv[1:6]
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from kwik_e2e import check, failures, namespace_peer, poll_until, stored_streams, telemetry, udp_payloads  # noqa: E402

TAG = "%d" % (os.getpid() % 100000)
NS_A, NS_B = "kxa" + TAG, "kxb" + TAG
IF_A, IF_B = "kxa" + TAG, "kxb" + TAG
NAME = "kwxdp" + TAG
APPLIANCE, PEER = "10.79.0.1", "10.79.0.2"
FRESH = "10.79.0.3"  # a second address of B that never sends to kwikd
STATIC = "10.79.0.4"  # a third, with a permanent neighbour entry in A made before kwikd starts
PEER_PORTS = [40001, 40002]

# Runs in a namespace: answers one line of JSON per request (ping, tcp, udp_listen / udp_got).
KERNEL_PROBE = r'''
import json, os, select, socket, struct, sys, time
target = sys.argv[1]
fresh = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); fresh.bind((sys.argv[2], 40100)); fresh.setblocking(False)
fresh_got = 0
static = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); static.bind((sys.argv[3], 40101)); static.setblocking(False)
static_got = 0
def csum(b):
    if len(b) % 2: b += b"\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b)); s = (s >> 16) + (s & 0xffff); s += s >> 16
    return ~s & 0xffff
def ping(n):
    s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP); s.settimeout(1.0); got = 0
    for seq in range(n):
        body = struct.pack("!BBHHH", 8, 0, 0, 0x4b57, seq) + b"kwik-xdp-ping"
        body = body[:2] + struct.pack("!H", csum(body)) + body[4:]
        s.sendto(body, (target, 0))
        try:
            while True:
                d = s.recv(2048); ihl = (d[0] & 15) * 4
                if d[ihl] == 0 and struct.unpack("!H", d[ihl + 4:ihl + 6])[0] == 0x4b57: got += 1; break
        except socket.timeout: pass
    return got
for line in sys.stdin:
    req = json.loads(line); out = {}
    if req["op"] == "ping": out["replies"] = ping(req["count"])
    elif req["op"] == "tcp":
        try:
            c = socket.create_connection((target, req["port"]), timeout=3); c.sendall(b"hello kernel"); out["echo"] = c.recv(100).decode(); c.close()
        except OSError as e: out["error"] = str(e)
    elif req["op"] == "fresh":
        while True:
            try: fresh.recv(2048); fresh_got += 1
            except BlockingIOError: break
        out["datagrams"] = fresh_got
    elif req["op"] == "static":
        while True:
            try: static.recv(2048); static_got += 1
            except BlockingIOError: break
        out["datagrams"] = static_got
    elif req["op"] == "udp":
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.sendto(req["data"].encode(), (target, req["port"])); out["sent"] = True
    print(json.dumps(out), flush=True)
'''

# Runs in A: a TCP echo listener and a UDP socket; prints "ready", then what the UDP socket got.
KERNEL_SERVER = r'''
import select, socket, sys
t = socket.socket(); t.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); t.bind((sys.argv[1], 8080)); t.listen(4)
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.bind((sys.argv[1], 9999))
print("ready", flush=True)
while True:
    r, _, _ = select.select([t, u], [], [], 30)
    if not r: break
    for s in r:
        if s is t:
            c, _ = t.accept(); c.sendall(c.recv(100)); c.close()
        else:
            print(u.recv(100).decode(), flush=True)
'''

procs = []


def sh(*args, check_rc=True):
    r = subprocess.run(list(args), capture_output=True, text=True, timeout=30)
    if check_rc and r.returncode != 0:
        raise RuntimeError("%s: %s" % (" ".join(args), r.stderr.strip()))
    return r


def in_ns(ns, argv, **kw):
    p = subprocess.Popen(["ip", "netns", "exec", ns] + argv, **kw)
    procs.append(p)
    return p


def stop(p, sig=signal.SIGTERM, seconds=30):
    if p.poll() is None:
        p.send_signal(sig)
        try:
            p.wait(timeout=seconds)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
    return p.returncode


def xdp_status():
    r = sh("ip", "netns", "exec", NS_A, kwik_xdp, "status", IF_A, "--json", check_rc=False)
    return json.loads(r.stdout) if r.returncode == 0 else {"error": r.stderr}


def start_kwikd(work, log_name):
    log = open(os.path.join(work, log_name), "w+")
    p = in_ns(NS_A, [kwikd, "--config", os.path.join(work, "kwikd.toml")], stdout=log, stderr=subprocess.STDOUT)
    deadline = time.time() + 30
    text = ""
    while time.time() < deadline and p.poll() is None:
        log.seek(0)
        text = log.read()
        if "running" in text:
            break
        time.sleep(0.2)
    return p, log, text


def log_text(log):
    log.seek(0)
    return log.read()


def wait_stored(directory, manifest, seconds=15):
    deadline = time.time() + seconds
    while True:
        good, bad = stored_streams(directory, manifest, 1)
        if good == len(manifest["streams"]) or time.time() >= deadline:
            return good, bad
        time.sleep(0.2)


work = tempfile.mkdtemp(prefix="kwik-af-xdp-test-")
try:
    for ns in (NS_A, NS_B):
        sh("ip", "netns", "add", ns)
        sh("ip", "-n", ns, "link", "set", "lo", "up")
    sh("ip", "link", "add", IF_A, "netns", NS_A, "type", "veth", "peer", "name", IF_B, "netns", NS_B)
    sh("ip", "-n", NS_A, "addr", "add", APPLIANCE + "/24", "dev", IF_A)
    sh("ip", "-n", NS_B, "addr", "add", PEER + "/24", "dev", IF_B)
    sh("ip", "-n", NS_B, "addr", "add", FRESH + "/24", "dev", IF_B)
    sh("ip", "-n", NS_B, "addr", "add", STATIC + "/24", "dev", IF_B)
    sh("ip", "-n", NS_A, "link", "set", IF_A, "up")
    sh("ip", "-n", NS_B, "link", "set", IF_B, "up")
    # B's veth would leave UDP checksums to an offload that never runs on the XDP path.
    sh("ip", "netns", "exec", NS_B, "ethtool", "-K", IF_B, "tx", "off")
    b_mac = json.loads(sh("ip", "-j", "-n", NS_B, "link", "show", IF_B).stdout)[0]["address"]
    sh("ip", "-n", NS_A, "neigh", "replace", STATIC, "lladdr", b_mac, "dev", IF_A, "nud", "permanent")

    streams = os.path.join(work, "streams")
    os.makedirs(streams)
    pcap, manifest_file = os.path.join(work, "in.pcap"), os.path.join(work, "manifest.json")
    args = [pcapgen, "-o", pcap, "--manifest", manifest_file, "--seed", "8", "--connections", "1", "--streams", "4",
            "--stream-size", "20000-60000", "--max-frame-data", "1100", "--ack-every", "0", "--keepalive-every", "0",
            "--window-update-every", "0"]
    for p in PEER_PORTS:
        args += ["--path", "%s:%d,%s:7707" % (PEER, p, APPLIANCE)]
    subprocess.run(args, check=True, capture_output=True, timeout=60)
    packets = udp_payloads(pcap, 7707)
    manifest = json.load(open(manifest_file))
    paths = "".join('[[connection.path]]\npath_id = %d\nlocal = "%s:7707"\nremote = "%s:%d"\n' % (i + 1, APPLIANCE, PEER, p)
                    for i, p in enumerate(PEER_PORTS))
    with open(os.path.join(work, "kwikd.toml"), "w") as f:
        f.write('[kwikd]\nname = "%s"\nworker_lcores = [1]\nhugepages = false\nmemory_mb = 256\n'
                'stats_interval_ms = 500\npoll_mode = "adaptive"\n\n'
                '[[port]]\nname = "x0"\ndevice = "net_af_xdp0,iface=%s"\nxdp_program = "%s"\n'
                'addresses = ["%s/24"]\nkwik_ports = [7707]\n\n'
                '[[connection]]\nid = "xdp-upload"\nendpoint = "file_store"\nendpoint_arg = "%s"\n%s\n'
                '[[connection]]\nid = "first-contact"\nrole = "client"\nendpoint = "discard"\n'
                '[[connection.path]]\npath_id = 1\nlocal = "%s:7707"\nremote = "%s:40100"\n\n'
                '[[connection]]\nid = "static-neighbour"\nrole = "client"\nendpoint = "discard"\n'
                '[[connection.path]]\npath_id = 1\nlocal = "%s:7707"\nremote = "%s:40101"\n'
                % (NAME, IF_A, xdp_object, APPLIANCE, streams, paths, APPLIANCE, FRESH, APPLIANCE, STATIC))

    r = sh(kwikd, "--config", os.path.join(work, "kwikd.toml"), "--check-config")
    check(",xdp_prog=%s,start_queue=0,queue_count=1" % xdp_object in r.stdout,
          "--check-config: the device gets xdp_prog, start_queue and queue_count")

    kernel = in_ns(NS_A, [sys.executable, "-c", KERNEL_SERVER, APPLIANCE], stdout=subprocess.PIPE, text=True)
    check(kernel.stdout.readline().strip() == "ready", "kernel TCP and UDP listeners in A")
    kd, log, text = start_kwikd(work, "kwikd1.log")
    check("running" in text, "kwikd runs on net_af_xdp over %s" % IF_A)
    check("kwik_xdp" in text and "attached to %s" % IF_A in text, "kwikd logs the program and its attach mode")
    st = xdp_status()
    check(st.get("ours") is True and st.get("kwik_ports") == [7707] and st.get("addresses") == [APPLIANCE],
          "kwik-xdp status: ours, Kwik port 7707, address %s: %s" % (APPLIANCE, st))
    before = st.get("counters", {})

    probe = in_ns(NS_B, [sys.executable, "-c", KERNEL_PROBE, APPLIANCE, FRESH, STATIC], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                  text=True)

    def ask(req):
        probe.stdin.write(json.dumps(req) + "\n")
        probe.stdin.flush()
        return json.loads(probe.stdout.readline())

    got = ask({"op": "ping", "count": 3})
    check(got.get("replies") == 3, "ping from B: the kernel in A answers 3 of 3: %s" % got)
    got = ask({"op": "tcp", "port": 8080})
    check(got.get("echo") == "hello kernel", "TCP from B reaches the kernel listener in A: %s" % got)
    ask({"op": "udp", "port": 9999, "data": "not kwik"})
    check(kernel.stdout.readline().strip() == "not kwik", "UDP to port 9999 reaches the kernel socket in A")

    peer = namespace_peer(NS_B, PEER, APPLIANCE, PEER_PORTS)
    peer.send(packets, linger=1.0)
    good, bad = wait_stored(streams, manifest)
    check(good == len(manifest["streams"]) and good > 0,
          "all %d streams stored byte for byte through AF_XDP (%d) %s" % (len(manifest["streams"]), good, bad[:3]))
    r = sh("ip", "netns", "exec", NS_A, kwikd_cmd, "--name", NAME, "counters", "--fresh", check_rc=False)
    lines = [json.loads(l) for l in r.stdout.splitlines() if l.strip()]
    conns = [c for c in (lines[-1].get("connections", []) if lines else []) if c["connection_id"] == 1]
    total = sum(s["final_size"] for s in manifest["streams"])
    check(len(conns) == 1 and conns[0]["delivered_bytes"] == total,
          "kwikd-cmd: the connection delivered %s of %d bytes" % (conns[0]["delivered_bytes"] if conns else None, total))

    # The client-role path to FRESH, which never sent to kwikd: its next hop was wanted from the
    # main lcore, which asked A's kernel (RTM_NEWNEIGH, NTF_USE); the kernel's ARP answer came
    # back as a notification and released the held packets, so FRESH's kernel socket gets them.
    deadline = time.time() + 15
    got = {}
    while time.time() < deadline:
        got = ask({"op": "fresh"})
        if got.get("datagrams", 0) > 0:
            break
        time.sleep(0.5)
    check(got.get("datagrams", 0) > 0,
          "a client path to a peer that never sent reaches %s:40100 in B (%s)" % (FRESH, got))
    entry = json.loads(sh("ip", "-j", "-n", NS_A, "neigh", "show", FRESH, "dev", IF_A).stdout or "[]")
    check(len(entry) == 1 and entry[0].get("lladdr") == b_mac,
          "A's kernel holds the neighbour entry NTF_USE made: %s at %s (%s)" % (FRESH, b_mac, entry))
    # STATIC's entry is PERMANENT: NTF_USE would change nothing and no notification would come,
    # so its datagrams arriving show that the table dump at start seeded the workers (kwikd reads
    # it before they run).
    got = ask({"op": "static"})
    check(got.get("datagrams", 0) > 0,
          "a client path to a peer with a permanent kernel entry reaches %s:40101 in B (%s)" % (STATIC, got))
    r = sh("ip", "netns", "exec", NS_A, kwikd_cmd, "--name", NAME, "counters", "--fresh", check_rc=False)
    lines = [json.loads(l) for l in r.stdout.splitlines() if l.strip()]
    drops = lines[-1].get("drops", {}) if lines else {}
    check(drops.get("neighbor_unresolved", 0) == 0, "no packet waited in vain for a neighbour (%s)" % drops)
    time.sleep(1.2)  # two summary lines (stats_interval_ms 500) past the answer
    summary_line = ([l for l in log_text(log).splitlines() if "kernel neighbours:" in l] or [""])[-1]
    check("netlink errors 0" in summary_line and "seeded 0" not in summary_line and "asked the kernel 0" not in summary_line,
          "kwikd's summary: the kernel was asked and its entries seeded, no netlink error (%s)" % summary_line)

    st = xdp_status()
    after = st.get("counters", {})
    redirected = after.get("redirected", 0) - before.get("redirected", 0)
    check(redirected >= len(packets), "XDP redirected %d frames to kwikd (%d Kwik datagrams sent)" % (redirected, len(packets)))
    check(after.get("not_udp", 0) - before.get("not_udp", 0) >= 3 + 3,
          "XDP passed ICMP and TCP to the kernel (not_udp %s)" % after.get("not_udp"))
    check(after.get("not_kwik_port", 0) - before.get("not_kwik_port", 0) >= 1,
          "XDP passed UDP to port 9999 to the kernel (not_kwik_port %s)" % after.get("not_kwik_port"))
    check(after.get("no_socket", 0) == 0, "no Kwik frame found its queue without a socket")
    tel = telemetry(NAME, "/kwik/xdp")
    check(tel is not None and tel[0].get("x0", {}).get("redirected", -1) >= redirected,
          "telemetry /kwik/xdp: %s" % (tel[0] if tel else None))
    # kwikd-cmd counters: the main lcore's copy of the same verdicts (published every 500 ms)
    # equals what kwik-xdp reads from the map once traffic stopped, and the PMD's own rx count
    # is what XDP redirected to the socket.
    def counters_agree():
        r = sh("ip", "netns", "exec", NS_A, kwikd_cmd, "--name", NAME, "counters", check_rc=False)
        lines = [json.loads(l) for l in r.stdout.splitlines() if l.strip()]
        port = lines[-1]["ports"][0] if lines and lines[-1].get("ports") else {}
        now = xdp_status().get("counters", {})
        mine = port.get("xdp") or {}
        same = len(mine) == 8 and all(now.get(k) == v for k, v in mine.items())
        return port if same and mine["redirected"] >= redirected else None

    port = poll_until(counters_agree, 10, step=0.2) or {}
    check(port.get("xdp") is not None,
          "kwikd-cmd counters: ports[0].xdp equals kwik-xdp status (%s)" % port.get("xdp"))
    xdp, nic = port.get("xdp", {}), port.get("nic", {})
    check(xdp.get("not_udp", 0) - before.get("not_udp", 0) >= 6 and
          xdp.get("not_kwik_port", 0) - before.get("not_kwik_port", 0) >= 1 and xdp.get("no_socket", -1) == 0,
          "kwikd-cmd counters: ICMP and TCP not_udp, UDP 9999 not_kwik_port, no no_socket: %s" % xdp)
    check(nic.get("rx_packets", -1) == xdp.get("redirected") and nic.get("imissed") == 0 and nic.get("rx_nombuf") == 0,
          "kwikd-cmd counters: the PMD received what XDP redirected, none missed: nic %s" % nic)
    peer.close()

    stop(kd)
    text = log_text(log)
    check(kd.returncode == 0 and "kwikd: stopped" in text, "kwikd stops cleanly (rc %s)" % kd.returncode)
    check("xdp on %s: redirected" % IF_A in text, "the summary line carries the XDP counters")
    check(xdp_status().get("attached") is False, "after kwikd stops, no XDP program is attached to %s" % IF_A)

    # A kwikd that dies leaves its program attached; the next one removes it and starts.
    kd, log, text = start_kwikd(work, "kwikd2.log")
    check("running" in text, "kwikd starts again")
    stop(kd, signal.SIGKILL)
    st = xdp_status()
    check(st.get("ours") is True, "after SIGKILL, kwik_xdp is still attached (stale): %s" % st.get("program_id"))
    kd, log, text = start_kwikd(work, "kwikd3.log")
    check("running" in text and "removed a stale kwik_xdp (id %s" % st.get("program_id") in text,
          "the next kwikd removes the stale program and runs")
    got = ask({"op": "ping", "count": 1})
    check(got.get("replies") == 1, "ping still answered by the kernel with the new program")
    check(xdp_status().get("program_id") not in (None, st.get("program_id")), "a new program is attached")
    stop(kd)
    check(kd.returncode == 0 and xdp_status().get("attached") is False, "stopped again: nothing attached")
    probe.stdin.close()
except Exception as e:  # noqa: BLE001 - any failure is reported with the logs
    check(False, "test raised %r" % e)
finally:
    for p in procs:
        stop(p, signal.SIGKILL, 5)
    if failures:
        for name in sorted(os.listdir(work)):
            if name.endswith(".log"):
                print("---- %s\n%s" % (name, open(os.path.join(work, name)).read()[-3000:]))
    for ns in (NS_A, NS_B):
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)
    shutil.rmtree(work, ignore_errors=True)

print("%d passed, %d failed" % (0 if failures else 1, 1 if failures else 0))
sys.exit(1 if failures else 0)
