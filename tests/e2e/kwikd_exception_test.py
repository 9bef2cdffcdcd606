#!/usr/bin/env python3
"""kwikd's exception path and its own ARP/ICMP/ND answers, seen from outside: the real kwikd runs
in a network namespace A with two net_tap devices, its port (whose kernel side the test moves
into a namespace B, the peer, holding 10.66.0.2 and fd66::2) and its [exception] interface
(whose kernel side stays in A with the appliance's own addresses, 10.66.0.1 and fd66::1, and
the port's MAC). From B:
  1. ping and ping6 the appliance: answered by kwikd itself (A's kernel ignores echo requests),
     ARP and neighbour discovery resolve to kwikd's port MAC, kwikd counts the replies;
  2. TCP to an echo server in A over IPv4 and IPv6: carried by the exception path both ways
     (kwikd counts packets to and from the kernel; A's kernel resolved B through it);
  3. UDP to a port that is not Kwik's reaches a kernel socket in A;
  4. UDP to the Kwik port is not punted: counted as unknown_path, never on A's socket;
  5. with [exception] device = "none" the TCP attempt fails, counted as no_exception_path.
Needs root, /dev/net/tun and network namespaces; exits 77 (skipped) without them.
Usage: kwikd_exception_test.py <kwikd>"""
import ctypes
import json
import mmap
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time

kwikd = sys.argv[1]
pid = os.getpid()
NS_A = "kwik-exc-a-%d" % pid  # kwikd and the kernel that shares its addresses
NS_B = "kwik-exc-b-%d" % pid  # the peer
PORT_IF = "kwp%d" % pid       # kwikd's port: kernel side, moved into B
EXC_IF = "kwx%d" % pid        # kwikd's exception interface: kernel side, in A
PORT_MAC = "02:66:00:00:00:01"
PEER_MAC = "02:66:00:00:00:02"
US4, PEER4 = "10.66.0.1", "10.66.0.2"
US6, PEER6 = "fd66::1", "fd66::2"
KWIK_PORT, UDP_PORT, TCP_PORT = 7707, 9999, 5001
STEP = 10  # seconds: the bound on every subprocess and socket wait
# What kwikd punts keeps the port's MAC as its destination, so the exception interface's kernel
# side must have that MAC or the kernel drops every unicast frame (PACKET_OTHERHOST), and the
# peer must see the kernel's frames (its ARP requests) come from it or its answers are dropped
# by kwikd as not_for_us. kwikd gives the exception port the served port's MAC (net_tap sets its
# kernel side too); the test asserts it.

failures = []


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what, flush=True)
    if not cond:
        failures.append(what)
    return cond


def run(*cmd, check_rc=True):
    r = subprocess.run(list(cmd), capture_output=True, text=True, timeout=STEP)
    if check_rc and r.returncode != 0:
        raise RuntimeError("`%s` failed (%d): %s" % (" ".join(cmd), r.returncode, r.stderr.strip()))
    return r


def skip(why):
    print("SKIP " + why)
    sys.exit(77)


# ---- sockets inside a namespace: setns(2) moves only the calling thread, and a socket stays in
# the namespace it was created in ----

_libc = ctypes.CDLL(None, use_errno=True)
CLONE_NEWNET = 0x40000000


def _setns(fd):
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        e = ctypes.get_errno()
        raise OSError(e, "setns: " + os.strerror(e))


def socket_in(ns, family, kind, proto=0):
    own = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    target = os.open("/var/run/netns/" + ns, os.O_RDONLY)
    try:
        _setns(target)
        try:
            s = socket.socket(family, kind, proto)
        finally:
            _setns(own)
    finally:
        os.close(own)
        os.close(target)
    s.settimeout(STEP)
    return s


# ---- kwikd's counters: DPDK telemetry (/kwik/workers, /kwik/drops) and the shared region ----


def telemetry(name, command):
    with socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET) as s:
        s.settimeout(STEP)
        s.connect("/var/run/dpdk/%s/dpdk_telemetry.v2" % name)
        json.loads(s.recv(16384).decode())  # the greeting
        s.send(command.encode())
        return json.loads(s.recv(65536).decode())[command]


def counters(name):
    """Worker totals, drops by reason, and port 0's exception counters (api/counters.hpp:
    exception_rx = punted to the kernel, exception_tx = sent out of the port for the kernel)."""
    w = telemetry(name, "/kwik/workers")
    d = telemetry(name, "/kwik/drops")
    with open("/dev/shm/" + name, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as m:
        (counters_offset,) = struct.unpack_from("<Q", m, 96)  # region_header.counters_offset
        h = counters_offset
        if m[h:h + 8] != b"KWIKCNT1":
            raise RuntimeError("/dev/shm/%s: no counters header" % name)
        workers, ports = struct.unpack_from("<II", m, h + 12)
        blocks, stride = struct.unpack_from("<QQ", m, h + 32)
        (ports_offset,) = struct.unpack_from("<Q", m, h + 72)
        exc_rx = exc_tx = 0
        for worker in range(workers):
            block = blocks + worker * stride
            for _ in range(1000):  # the block's seqlock: even and unchanged across the read
                seq = struct.unpack_from("<Q", m, block)[0]
                rx, tx = struct.unpack_from("<QQ", m, block + ports_offset + 48)
                if seq % 2 == 0 and struct.unpack_from("<Q", m, block)[0] == seq:
                    break
                time.sleep(0.001)
            else:
                raise RuntimeError("/dev/shm/%s: worker %d's counters never read consistently" % (name, worker))
            exc_rx += rx
            exc_tx += tx
    return {"workers": w, "drops": d, "exception_rx": exc_rx, "exception_tx": exc_tx}


def settled(name):
    """Counters after the main lcore published what the last exchange did (every 100 ms)."""
    time.sleep(0.4)
    return counters(name)


# ---- kwikd ----


def write_config(path, name, exception):
    with open(path, "w") as f:
        f.write("""[kwikd]
name = "%s"
log_level = "notice"
worker_lcores = [1]
hugepages = false
stats_interval_ms = 100

[[port]]
name = "port0"
device = "net_tap0,iface=%s,mac=%s"
rx_desc = 256
tx_desc = 256
addresses = ["%s/24", "%s/64"]
kwik_ports = [%d]

[exception]
device = "%s"

[limits]
max_connections = 64
max_paths = 256
""" % (name, PORT_IF, PORT_MAC, US4, US6, KWIK_PORT, exception))


class kwikd_process:
    """kwikd in namespace A (added to procs as soon as it runs, for the clean-up); its port's
    kernel side moved into B and addressed there, over IPv6 too if ipv6."""

    def __init__(self, work, name, exception, procs, ipv6=True):
        self.name = name
        self.log_path = os.path.join(work, name + ".log")
        config = os.path.join(work, name + ".toml")
        write_config(config, name, exception)
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen(["ip", "netns", "exec", NS_A, kwikd, "--config", config],
                                     stdout=self.log, stderr=subprocess.STDOUT, text=True)
        procs.append(self)
        deadline = time.monotonic() + 30
        while "running; shared memory" not in self.output():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("kwikd did not start:\n" + self.output())
            time.sleep(0.1)
        # The PMD brought the tap up by name in A; from here on B owns it.
        run("ip", "-n", NS_A, "link", "set", PORT_IF, "netns", NS_B)
        run("ip", "-n", NS_B, "link", "set", PORT_IF, "address", PEER_MAC)
        run("ip", "-n", NS_B, "addr", "add", PEER4 + "/24", "dev", PORT_IF)
        if ipv6:
            run("ip", "-n", NS_B, "-6", "addr", "add", PEER6 + "/64", "dev", PORT_IF, "nodad")
        else:  # no router solicitations or MLD reports: the peer sends only what the test sends
            run("ip", "netns", "exec", NS_B, "sysctl", "-q", "-w", "net.ipv6.conf.%s.disable_ipv6=1" % PORT_IF)
        run("ip", "-n", NS_B, "link", "set", PORT_IF, "up")

    def output(self):
        with open(self.log_path) as f:
            return f.read()

    def port_mac(self):
        for line in self.output().splitlines():
            if line.strip().startswith("mac "):
                return line.split()[1].rstrip(",").lower()  # the first port's report comes first
        return None

    def stop(self):
        """SIGTERM; returns kwikd's exit status and everything it printed."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=STEP)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=STEP)
        self.log.close()
        return self.proc.returncode, self.output()


def final_drops(out, reason):
    """What kwikd's final lines say it dropped for reason, summed over workers."""
    n = 0
    for line in out.splitlines():
        if line.startswith("kwikd: worker ") and line.endswith(": " + reason):
            n += int(line.split("dropped ")[1].split(":")[0])
    return n


def inet_checksum(data):
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def ping(v6, count):
    """ICMP echo requests from B to the appliance over a raw socket (no ping(8) needed): how many
    replies came back from it with the request's identifier, sequence number and data, and a
    valid checksum (ICMPv6: the kernel checks it and computes the request's)."""
    family, proto, request, reply = ((socket.AF_INET6, socket.IPPROTO_ICMPV6, 128, 129) if v6 else
                                     (socket.AF_INET, socket.IPPROTO_ICMP, 8, 0))
    address = US6 if v6 else US4
    ident = pid & 0xFFFF
    answered = 0
    with socket_in(NS_B, family, socket.SOCK_RAW, proto) as s:
        for seq in range(count):
            data = os.urandom(56)
            message = struct.pack("!BBHHH", request, 0, 0, ident, seq) + data
            if not v6:
                message = message[:2] + struct.pack("!H", inet_checksum(message)) + message[4:]
            s.sendto(message, (address, 0))
            deadline = time.monotonic() + 2
            while time.monotonic() < deadline:
                s.settimeout(max(0.01, deadline - time.monotonic()))
                try:
                    packet, source = s.recvfrom(4096)
                except socket.timeout:
                    break
                icmp = packet if v6 else packet[(packet[0] & 0x0F) * 4:]  # IPv4 raw: IP header first
                if (source[0] == address and len(icmp) >= 8 and icmp[0] == reply and icmp[1] == 0 and
                        struct.unpack("!HH", icmp[4:8]) == (ident, seq) and icmp[8:] == data and
                        (v6 or inet_checksum(icmp) == 0)):
                    answered += 1
                    break
            time.sleep(0.1)
    return answered


def link_mac(ns, interface):
    words = run("ip", "-n", ns, "-o", "link", "show", "dev", interface).stdout.split()
    return words[words.index("link/ether") + 1].lower() if "link/ether" in words else None


def neighbour_mac(ns, address):
    r = run("ip", "-n", ns, "neigh", "show", address, check_rc=False)
    words = r.stdout.split()
    return words[words.index("lladdr") + 1].lower() if "lladdr" in words else None


def tcp_echo(family, server_address, payload):
    """An echo server in A on server_address, a client in B: what came back (None on failure)."""
    server = socket_in(NS_A, family, socket.SOCK_STREAM)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind((server_address, TCP_PORT))
    server.listen(1)

    def serve():
        try:
            conn, _ = server.accept()
            with conn:
                conn.settimeout(STEP)
                while True:
                    data = conn.recv(65536)
                    if not data:
                        break
                    conn.sendall(data)
        except OSError:
            pass

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    got = bytearray()
    try:
        with socket_in(NS_B, family, socket.SOCK_STREAM) as client:
            client.connect((server_address, TCP_PORT))
            client.sendall(payload)
            client.shutdown(socket.SHUT_WR)
            while True:
                data = client.recv(65536)
                if not data:
                    break
                got += data
    except OSError as e:
        print("tcp to %s: %r" % (server_address, e))
        return None
    finally:
        t.join(timeout=STEP)
        server.close()
    return bytes(got)


def udp_to(port, payload, wait):
    """Sends payload from B to US4:port; returns what a kernel socket bound there in A got."""
    with socket_in(NS_A, socket.AF_INET, socket.SOCK_DGRAM) as rx, \
            socket_in(NS_B, socket.AF_INET, socket.SOCK_DGRAM) as tx:
        rx.bind((US4, port))
        rx.settimeout(wait)
        tx.sendto(payload, (US4, port))
        try:
            return rx.recvfrom(65536)
        except socket.timeout:
            return None


# ---- the test ----

if os.geteuid() != 0:
    skip("needs root (network namespaces, net_tap)")
if not os.access("/dev/net/tun", os.R_OK | os.W_OK):
    skip("/dev/net/tun is not usable")
work = tempfile.mkdtemp(prefix="kwik-exception-test-")
names = []
procs = []
started = time.monotonic()
try:
    for ns in (NS_A, NS_B):
        if subprocess.run(["ip", "netns", "add", ns], capture_output=True, timeout=STEP).returncode != 0:
            skip("`ip netns add` failed: no network namespaces here")
        run("ip", "-n", ns, "link", "set", "lo", "up")
    # Whatever answers an echo request in A, it is not A's kernel.
    run("ip", "netns", "exec", NS_A, "sysctl", "-q", "-w", "net.ipv4.icmp_echo_ignore_all=1")
    run("ip", "netns", "exec", NS_A, "sysctl", "-q", "-w", "net.ipv6.icmp.echo_ignore_all=1")

    # -- with an exception interface --
    name = "kwikexc%d" % pid
    names.append(name)
    k = kwikd_process(work, name, "net_tap1,iface=%s" % EXC_IF, procs)
    check(k.port_mac() == PORT_MAC, "kwikd's port has the MAC it was given (%s)" % k.port_mac())
    # The kernel shares the appliance's addresses, and its MAC.
    exc_mac = link_mac(NS_A, EXC_IF)
    check(exc_mac == PORT_MAC, "kwikd gave its exception interface the port's MAC (%s)" % exc_mac)
    run("ip", "-n", NS_A, "addr", "add", US4 + "/24", "dev", EXC_IF)
    run("ip", "-n", NS_A, "-6", "addr", "add", US6 + "/64", "dev", EXC_IF, "nodad")
    run("ip", "-n", NS_A, "link", "set", EXC_IF, "up")

    before = settled(name)
    for v6 in (False, True):
        n = ping(v6, 3)
        check(n == 3, "ICMP%s echo to %s from the peer: %d of 3 answered" % ("v6" if v6 else "", US6 if v6 else US4, n))
    after = settled(name)
    replies = after["workers"]["replies"] - before["workers"]["replies"]
    # 3 echo replies each way, at least one ARP reply and one neighbour advertisement.
    check(replies >= 8, "kwikd answered them itself: %d replies counted (at least 8)" % replies)
    check(neighbour_mac(NS_B, US4) == PORT_MAC, "ARP in the peer resolved %s to kwikd's port MAC (%s)"
          % (US4, neighbour_mac(NS_B, US4)))
    check(neighbour_mac(NS_B, US6) == PORT_MAC, "neighbour discovery in the peer resolved %s to kwikd's "
          "port MAC (%s)" % (US6, neighbour_mac(NS_B, US6)))

    payload = os.urandom(8192)
    for family, address in ((socket.AF_INET, US4), (socket.AF_INET6, US6)):
        before = counters(name)
        got = tcp_echo(family, address, payload)
        check(got == payload, "TCP to %s port %d through the exception path: %d bytes echoed back intact (%s)"
              % (address, TCP_PORT, len(payload), "none" if got is None else "%d bytes" % len(got)))
        after = settled(name)
        out_n = after["exception_rx"] - before["exception_rx"]
        in_n = after["exception_tx"] - before["exception_tx"]
        tel_n = after["workers"]["exception_out"] - before["workers"]["exception_out"]
        # 8 KB each way in 1448-byte segments: at least 6 data segments, plus handshake and ACKs.
        check(out_n >= 8 and in_n >= 8 and tel_n >= 8,
              "kwikd counted the TCP exchange over %s: %d packets to the kernel (telemetry %d), %d from it"
              % (address, out_n, tel_n, in_n))
    check(neighbour_mac(NS_A, PEER4) == PEER_MAC and neighbour_mac(NS_A, PEER6) == PEER_MAC,
          "A's kernel resolved the peer through the exception path (%s, %s)"
          % (neighbour_mac(NS_A, PEER4), neighbour_mac(NS_A, PEER6)))

    before = counters(name)
    got = udp_to(UDP_PORT, b"to the kernel", STEP)
    check(got is not None and got[0] == b"to the kernel" and got[1][0] == PEER4,
          "UDP to %s port %d (not Kwik's) reached A's kernel socket: %r" % (US4, UDP_PORT, got))
    junk = b"\xff not a path packet " + os.urandom(32)
    got = udp_to(KWIK_PORT, junk, 1.0)
    check(got is None, "UDP to the Kwik port %d never reached A's kernel socket (%r)" % (KWIK_PORT, got))
    after = settled(name)
    kwik_n = after["workers"]["kwik_packets"] - before["workers"]["kwik_packets"]
    unknown_n = after["drops"].get("unknown_path", 0) - before["drops"].get("unknown_path", 0)
    check(kwik_n == 1 and unknown_n == 1,
          "the Kwik datagram went to the pipeline and was dropped as unknown_path (kwik %d, unknown_path %d)"
          % (kwik_n, unknown_n))
    check(after["drops"].get("no_exception_path", 0) == 0, "nothing dropped for want of an exception path")

    rc, out = k.stop()
    check(rc == 0 and "kwikd: stopped" in out and not os.path.exists("/dev/shm/" + name),
          "kwikd stops cleanly on SIGTERM and removes /dev/shm/%s (exit %s)" % (name, rc))
    check(final_drops(out, "unknown_path") >= 1, "kwikd's final counters name the unknown_path drop")

    # -- without one --
    name = "kwikexcnone%d" % pid
    names.append(name)
    k = kwikd_process(work, name, "none", procs, ipv6=False)
    check(ping(False, 1) == 1, "without an exception interface kwikd still answers ICMP echo")
    before = counters(name)
    try:
        with socket_in(NS_B, socket.AF_INET, socket.SOCK_STREAM) as client:
            client.settimeout(2.0)
            client.connect((US4, TCP_PORT))
        tcp_error = None
    except OSError as e:
        tcp_error = e
    check(isinstance(tcp_error, socket.timeout), "without an exception interface TCP to %s gets no answer (%r)"
          % (US4, tcp_error))
    after = settled(name)
    dropped = after["drops"].get("no_exception_path", 0) - before["drops"].get("no_exception_path", 0)
    # The SYN and its retransmission (1 s later) at least; the peer sends nothing else unanswered.
    check(dropped >= 2, "the SYNs were counted as no_exception_path (%d)" % dropped)
    check(after["workers"]["exception_out"] == 0 and after["exception_tx"] == 0,
          "nothing went to or came from a kernel interface")
    rc, out = k.stop()
    check(rc == 0 and final_drops(out, "no_exception_path") >= 2,
          "kwikd's final counters name the no_exception_path drops (exit %s)" % rc)
except Exception as e:  # noqa: BLE001 - any failure is reported with kwikd's output
    check(False, "the test ran to its end: %r" % e)
    for k in procs:
        print("---- %s ----\n%s" % (k.name, k.output()[-4000:]))
finally:
    for k in procs:
        k.stop()
    for ns in (NS_A, NS_B):
        subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=STEP)
    for name in names:
        for leftover in ("/dev/shm/" + name, "/dev/shm/" + name + ".lock", "/dev/shm/" + name + ".ctl.lock"):
            if os.path.exists(leftover):
                os.unlink(leftover)
        shutil.rmtree("/var/run/dpdk/" + name, ignore_errors=True)
    shutil.rmtree(work, ignore_errors=True)

left = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, timeout=STEP).stdout
check(NS_A not in left and NS_B not in left, "the namespaces are gone")
print("%.1f s; %d failed" % (time.monotonic() - started, len(failures)))
sys.exit(1 if failures else 0)
