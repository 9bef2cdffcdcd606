#!/usr/bin/env python3
"""kwik-peer end to end on loopback: a client and a server process over three paths.

Usage: peer_test.py KWIK_PEER. Each case starts its own server (--exit-after-connection) on free
UDP ports of 127.0.0.1, .2 and .3, runs a client, and checks exit codes, the JSON report and the
data itself (hashes computed here, independently of kwik-peer)."""

import hashlib
import json
import os
import resource
import socket
import subprocess
import sys
import tempfile
import time
import unittest

PEER = None
HOSTS = ["127.0.0.1", "127.0.0.2", "127.0.0.3"]
M64 = (1 << 64) - 1


def splitmix64(x):
    x = (x + 0x9E3779B97F4A7C15) & M64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & M64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & M64
    return x ^ (x >> 31)


def generated(seed, size):
    """kwik-peer's generated source (docs/KWIK_PEER.md): little-endian SplitMix64(seed * 2^32 + i)."""
    base = (seed << 32) & M64
    words = (size + 7) // 8
    out = b"".join(splitmix64((base + i) & M64).to_bytes(8, "little") for i in range(words))
    return out[:size]


def pattern(stream, size):
    """kwikd's pattern endpoint (PROTOCOL.md 14): byte i = byte i%8 of SplitMix64(SplitMix64(s) ^ i/8)."""
    s = splitmix64(stream)
    words = (size + 7) // 8
    out = b"".join(splitmix64(s ^ i).to_bytes(8, "little") for i in range(words))
    return out[:size]


def free_ports():
    ports = []
    for host in HOSTS:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind((host, 0))
            ports.append(s.getsockname()[1])
    return ports


class PeerTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.server = None

    def tearDown(self):
        if self.server is not None and self.server.poll() is None:
            self.server.kill()
            self.server.wait()
        self.tmp.cleanup()

    def path(self, name):
        return os.path.join(self.tmp.name, name)

    def start_server(self, *extra):
        ports = free_ports()
        args = [PEER, "server", "--exit-after-connection", "--progress-interval-ms", "0",
                "--json", self.path("server.json")]
        for host, port in zip(HOSTS, ports):
            args += ["--path", f"{host}:{port}={host}:0"]
        self.server = subprocess.Popen(args + list(extra), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(0.2)
        self.assertIsNone(self.server.poll(), "the server exited at start")
        return ports

    def client(self, ports, *extra, timeout=120):
        # A short interval: a 32 MiB echo on loopback can end within 200 ms, before a first line.
        args = [PEER, "client", "--static", "--json", self.path("client.json"), "--progress-interval-ms", "20"]
        for host, port in zip(HOSTS, ports):
            args += ["--path", f"{host}={host}:{port}"]
        started = time.monotonic()
        r = subprocess.run(args + list(extra), capture_output=True, text=True, timeout=timeout)
        r.elapsed = time.monotonic() - started
        with open(self.path("client.json")) as f:
            r.report = json.load(f)
        return r

    def server_done(self):
        out, err = self.server.communicate(timeout=30)
        self.assertEqual(self.server.returncode, 0, err)
        with open(self.path("server.json")) as f:
            return json.load(f)

    def test_echo_32mib_three_paths(self):
        ports = self.start_server("--endpoint", "echo")
        r = self.client(ports, "--mode", "echo", "--size", "32M", "--streams", "2", "--seed", "3")
        self.assertEqual(r.returncode, 0, r.stderr)
        rep = r.report
        self.assertEqual(rep["result"], "ok")
        self.assertTrue(rep["verified"])
        self.assertEqual(rep["bytes_sent"], 32 << 20)
        self.assertEqual(rep["bytes_received"], 32 << 20)
        self.assertEqual(rep["sha256_sent"], rep["sha256_received"])
        # Two streams: the total is SHA-256 over the streams' digests, each over its half.
        data = generated(3, 32 << 20)
        halves = [hashlib.sha256(data[: 16 << 20]).digest(), hashlib.sha256(data[16 << 20:]).digest()]
        self.assertEqual([s["sha256_received"] for s in rep["streams"]], [h.hex() for h in halves])
        self.assertEqual(rep["sha256_received"], hashlib.sha256(b"".join(halves)).hexdigest())
        self.assertEqual(len(rep["paths"]), 3)
        for p in rep["paths"]:
            # Every path carried stream data both ways (the scheduler's split varies with load).
            self.assertGreater(p["bytes_sent"], 256 << 10, p)
            self.assertGreater(p["bytes_received"], 256 << 10, p)
            self.assertNotEqual(p["state"], "failed", p)
            self.assertNotEqual(p["local"].split(":")[1], "0", p)
        self.assertGreater(rep["goodput_mbps"], 0)
        self.assertIn("Mbit/s |", r.stderr)  # the progress line
        self.assertIn("verified: yes", r.stdout)
        srv = self.server_done()
        self.assertEqual(srv["counters"]["endpoint_io_errors"], 0)
        self.assertEqual(srv["bytes_received"], 32 << 20)
        self.assertEqual(srv["bytes_sent"], 32 << 20)

    def test_upload_hash_is_the_generated_data(self):
        ports = self.start_server("--endpoint", "discard")
        r = self.client(ports, "--mode", "upload", "--size", "1M", "--seed", "5")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertTrue(r.report["verified"])
        self.assertEqual(r.report["sha256_sent"], hashlib.sha256(generated(5, 1 << 20)).hexdigest())
        self.assertEqual(self.server_done()["bytes_received"], 1 << 20)

    def test_download_pattern_verified(self):
        ports = self.start_server("--endpoint", "pattern")
        r = self.client(ports, "--mode", "download", "--size", "8M", "--streams", "2")
        self.assertEqual(r.returncode, 0, r.stderr)
        rep = r.report
        self.assertTrue(rep["verified"])
        self.assertEqual(rep["bytes_received"], 8 << 20)
        for s in rep["streams"]:
            self.assertEqual(s["bytes_received"], 4 << 20)
            self.assertEqual(s["mismatched_bytes"], 0)
        first = rep["streams"][0]
        self.assertEqual(first["sha256_received"], hashlib.sha256(pattern(first["id"], 4 << 20)).hexdigest())
        self.server_done()

    def test_wrong_bytes_fail(self):
        ports = self.start_server("--endpoint", "echo")
        want = hashlib.sha256(generated(1, 1 << 20)).hexdigest()
        r = self.client(ports, "--mode", "echo", "--size", "1M", "--seed", "2", "--expect-sha256", want)
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertEqual(r.report["result"], "error")
        self.assertFalse(r.report["verified"])
        self.assertIn("--expect-sha256", r.report["error"])
        self.assertIn(want, r.stderr)
        self.server_done()

    def test_no_server_times_out(self):
        ports = free_ports()
        r = self.client(ports, "--mode", "echo", "--size", "1M", "--timeout-s", "2", timeout=30)
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn("timed out after 2 s", r.report["error"])
        self.assertIn("no packet from the server", r.report["error"])
        self.assertLess(r.elapsed, 10)
        self.assertGreaterEqual(r.elapsed, 2)

    def test_refused_paths_do_not_spin(self):
        # Nothing listens on the ports: each datagram draws an ICMP port unreachable (loopback
        # is not rate limited), which leaves ECONNREFUSED pending on the connected socket. epoll
        # reports that as EPOLLERR without EPOLLIN until a receive or send clears it; the loop
        # must clear it, not spin on it between probes.
        ports = free_ports()
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        r = self.client(ports, "--mode", "echo", "--size", "1M", "--timeout-s", "3", timeout=30)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn("timed out after 3 s", r.report["error"])
        self.assertGreater(sum(p["socket"]["refused"] for p in r.report["paths"]), 0, r.report["paths"])
        cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        # Idle between probes, the client needs milliseconds; a spinning one burns whatever the
        # scheduler gives it for 3 s (a second or more even on a loaded machine).
        self.assertLess(cpu, 0.3, f"{cpu:.2f} s of CPU in {r.elapsed:.1f} s while waiting")

    def test_no_control_plane_exits_3(self):
        key = self.path("key.hex")
        with open(key, "w") as f:
            f.write("ab" * 32 + "\n")
        with socket.socket() as s:  # a TCP port with nothing listening
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        r = subprocess.run([PEER, "client", "--path", "127.0.0.1=127.0.0.1:7707", "--mode", "echo", "--size", "1k",
                            "--server", f"127.0.0.1:{port}", "--plain", "--key-id", "k1", "--key-file", key,
                            "--json", self.path("client.json")], capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode, 3, r.stderr)
        self.assertIn(f"127.0.0.1 port {port}", r.stderr)
        with open(self.path("client.json")) as f:
            rep = json.load(f)
        self.assertEqual(rep["result"], "error")
        self.assertIn("cannot connect", rep["error"])

    def test_get_from_file_store(self):
        store = self.path("store")
        os.mkdir(store)
        content = os.urandom(3 << 20) + b"tail"
        with open(os.path.join(store, "blob.bin"), "wb") as f:
            f.write(content)
        ports = self.start_server("--endpoint", "file_store", "--directory", store)
        out = self.path("got.bin")
        r = self.client(ports, "--mode", "get", "--name", "blob.bin", "--output", out)
        self.assertEqual(r.returncode, 0, r.stderr)
        with open(out, "rb") as f:
            self.assertEqual(f.read(), content)
        self.assertEqual(r.report["sha256_received"], hashlib.sha256(content).hexdigest())
        self.server_done()

    def test_get_missing_file_fails(self):
        store = self.path("store")
        os.mkdir(store)
        ports = self.start_server("--endpoint", "file_store", "--directory", store)
        r = self.client(ports, "--mode", "get", "--name", "nothing.bin", "--output", self.path("x"), "--timeout-s", "20")
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn("reset stream", r.report["error"])
        self.server_done()


if __name__ == "__main__":
    PEER = sys.argv.pop(1)
    unittest.main(verbosity=2)
