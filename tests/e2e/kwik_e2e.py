"""What the end-to-end tests share: the check() report, CRC32C (the manifest's checksum), the
comparison of stored streams with a kwik-pcapgen manifest, the UDP payloads of a pcap, a
peer that sends them from a network namespace, kwikd's DPDK telemetry and worker thread, and a
polling wait. Standard library only."""
import json
import os
import socket
import struct
import subprocess
import sys
import time

failures = []


def worker_thread(pid):
    """The tid of kwikd's (first) worker lcore thread (DPDK names it lcore-worker-<id>), or None."""
    for tid in sorted(os.listdir("/proc/%d/task" % pid), key=int):
        try:
            with open("/proc/%d/task/%s/comm" % (pid, tid)) as f:
                if "worker" in f.read():
                    return int(tid)
        except OSError:
            pass
    return None


def poll_until(found, seconds, step=0.05):
    """found()'s first truthy answer within seconds, else None."""
    deadline = time.monotonic() + seconds
    while True:
        got = found()
        if got or time.monotonic() >= deadline:
            return got or None
        time.sleep(step)


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what, flush=True)
    if not cond:
        failures.append(what)


_table = []
for _i in range(256):
    _c = _i
    for _ in range(8):
        _c = (_c >> 1) ^ (0x82F63B78 if _c & 1 else 0)
    _table.append(_c)


def telemetry(name, *commands):
    """kwikd's answers to DPDK telemetry commands ("/kwik/workers", ...), through the socket EAL
    opens under its runtime directory (file prefix = kwikd's name); None if it cannot be read."""
    try:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        sock.connect("/var/run/dpdk/%s/dpdk_telemetry.v2" % name)
        json.loads(sock.recv(16384).decode())  # the greeting
        answers = []
        for c in commands:
            sock.send(c.encode())
            answers.append(json.loads(sock.recv(16384).decode())[c])
        sock.close()
        return answers
    except (OSError, ValueError, KeyError) as e:
        print("telemetry: %r" % e)
        return None


def crc32c(data):
    c = 0xFFFFFFFF
    for b in data:
        c = _table[(c ^ b) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFF


def stream_file(directory, connection_id, stream_id):
    """Where kwikd's file-store endpoint writes a stream (docs/PROTOCOL.md 14)."""
    return os.path.join(directory, "c%d-s%d.bin" % (connection_id, stream_id))


def stored_streams(directory, manifest, connection_id, streams=None):
    """(streams stored with the manifest's size and CRC32C, mismatches as text) for the manifest's
    streams (or the given subset)."""
    good, bad = 0, []
    for s in streams if streams is not None else manifest["streams"]:
        path = stream_file(directory, connection_id, s["stream_id"])
        if not os.path.exists(path):
            bad.append("%s missing" % path)
            continue
        data = open(path, "rb").read()
        if len(data) == s["final_size"] and "0x%08x" % crc32c(data) == s["crc32c"]:
            good += 1
        else:
            bad.append("%s: size %d crc 0x%08x, manifest %d %s" % (path, len(data), crc32c(data), s["final_size"],
                                                                   s["crc32c"]))
    return good, bad


def udp_payloads(pcap, dst_port):
    """(src port, payload) of each UDP datagram to dst_port in a classic Ethernet pcap, in order."""
    data = open(pcap, "rb").read()
    magic = struct.unpack("<I", data[:4])[0]
    endian = "<" if magic in (0xA1B2C3D4, 0xA1B23C4D) else ">"
    off = 24
    out = []
    while off + 16 <= len(data):
        _, _, incl, _ = struct.unpack(endian + "IIII", data[off:off + 16])
        pkt = data[off + 16:off + 16 + incl]
        off += 16 + incl
        if len(pkt) < 42 or struct.unpack("!H", pkt[12:14])[0] != 0x0800 or pkt[23] != 17:
            continue
        ihl = (pkt[14] & 0x0F) * 4
        udp = 14 + ihl
        sport, dport, ulen = struct.unpack("!HHH", pkt[udp:udp + 6])
        if dport == dst_port:
            out.append((sport, pkt[udp + 8:udp + ulen]))
    return out


class namespace_peer:
    """UDP sockets in network namespace ns, one per client port on address, via a helper process
    (sockets must live in the namespace; the test runs outside it). Sends (port, payload) lists to
    appliance:7707 with pacing and counts what comes back."""

    def __init__(self, ns, address, appliance, ports):
        code = r'''
import socket, sys, json, time, select
ports = json.loads(sys.argv[1])
socks = {}
for p in ports:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 22)
    s.bind(("PEER_ADDRESS", p))
    socks[p] = s
got = {p: 0 for p in ports}
for line in sys.stdin:
    req = json.loads(line)
    if req["op"] == "send":
        for i, (p, hexdata) in enumerate(req["packets"]):
            socks[p].sendto(bytes.fromhex(hexdata), ("APPLIANCE_ADDRESS", 7707))
            if i % 8 == 7:
                time.sleep(0.001)
    deadline = time.time() + req.get("linger", 0.2)
    while True:
        r, _, _ = select.select(list(socks.values()), [], [], max(0, deadline - time.time()))
        if not r:
            break
        for s in r:
            s.recv(65536)
            got[s.getsockname()[1]] += 1
    print(json.dumps(got), flush=True)
'''.replace("PEER_ADDRESS", address).replace("APPLIANCE_ADDRESS", appliance)
        self.proc = subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, "-c", code, json.dumps(ports)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

    def start(self, packets, linger=0.5):
        """Starts sending in the helper process and returns at once (see done())."""
        self.proc.stdin.write(json.dumps({"op": "send", "packets": [(p, d.hex()) for p, d in packets],
                                          "linger": linger}) + "\n")
        self.proc.stdin.flush()

    def done(self):
        """Waits for the send start() began; datagrams kwikd sent back, by local port."""
        return {int(k): v for k, v in json.loads(self.proc.stdout.readline()).items()}

    def send(self, packets, linger=0.5):
        self.start(packets, linger)
        return self.done()

    def close(self):
        self.proc.stdin.close()
        self.proc.wait(timeout=10)
