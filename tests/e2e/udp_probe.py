"""UDP probes the relay and topology tests run inside a namespace (ip netns exec ... python3
udp_probe.py MODE ...). Every datagram starts with a 64-bit sequence number. Standard library only.
  sink ADDR PORT IDLE_S TIMEOUT_S   receive until IDLE_S after the last datagram (or TIMEOUT_S in
                                    all); print {"seqs": [...], "bytes": n, "first": t, "last": t}
                                    (the sink prints "ready" on stderr once bound)
  echo ADDR PORT                    send every datagram back to its sender, until killed
  send BIND DST PORT COUNT SIZE PPS send COUNT datagrams of SIZE bytes at PPS per second
                                    (0: as fast as the socket takes them)
  flood BIND DST PORT SECONDS SIZE  send SIZE-byte datagrams for SECONDS, as fast as possible
  rtt BIND DST PORT COUNT           COUNT request/answer round trips to an echo; print the RTTs
                                    in ms of those answered within 1 s"""
import json
import socket
import struct
import sys
import time


def udp(bind, port=0):
    s = socket.socket(socket.AF_INET6 if ":" in bind else socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 23)
    s.bind((bind, port))
    return s


def sink(addr, port, idle, timeout):
    s = udp(addr, int(port))
    print("ready", file=sys.stderr, flush=True)
    seqs, total, first, last = [], 0, None, None
    end = time.time() + float(timeout)
    while True:
        now = time.time()
        wait = end - now if last is None else min(end - now, last + float(idle) - now)
        if wait <= 0:
            break
        s.settimeout(wait)
        try:
            data = s.recv(65536)
        except socket.timeout:
            break
        last = time.time()
        first = first or last
        total += len(data)
        seqs.append(struct.unpack("!Q", data[:8])[0])
    print(json.dumps({"seqs": seqs, "bytes": total, "first": first, "last": last}), flush=True)


def echo(addr, port):
    s = udp(addr, int(port))
    print("ready", file=sys.stderr, flush=True)
    while True:
        data, peer = s.recvfrom(65536)
        s.sendto(data, peer)


def send(bind, dst, port, count, size, pps):
    s = udp(bind)
    count, size, pps = int(count), max(8, int(size)), float(pps)
    pad = b"k" * (size - 8)
    start = time.time()
    for i in range(count):
        if pps > 0:
            delay = start + i / pps - time.time()
            if delay > 0:
                time.sleep(delay)
        s.sendto(struct.pack("!Q", i) + pad, (dst, int(port)))
    print(json.dumps({"sent": count}), flush=True)


def flood(bind, dst, port, seconds, size):
    s = udp(bind)
    pad = b"f" * (int(size) - 8)
    end = time.time() + float(seconds)
    i = 0
    while time.time() < end:
        for _ in range(64):
            s.sendto(struct.pack("!Q", i) + pad, (dst, int(port)))
            i += 1
    print(json.dumps({"sent": i}), flush=True)


def rtt(bind, dst, port, count):
    s = udp(bind)
    s.settimeout(1.0)
    out = []
    for i in range(int(count)):
        t = time.time()
        s.sendto(struct.pack("!Q", i), (dst, int(port)))
        try:
            while struct.unpack("!Q", s.recv(65536)[:8])[0] != i:
                pass
            out.append((time.time() - t) * 1000)
        except socket.timeout:
            pass
        time.sleep(0.01)
    print(json.dumps({"rtt_ms": out}), flush=True)


if __name__ == "__main__":
    {"sink": sink, "echo": echo, "send": send, "flood": flood, "rtt": rtt}[sys.argv[1]](*sys.argv[2:])
