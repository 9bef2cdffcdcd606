#!/usr/bin/env python3
"""kwikd programmed at run time through its shared-memory command interface, by kwikd-cmd (a
control process that attaches for one command and goes): kwikd runs with no connection on a
net_tap port inside a network namespace the test creates; a "peer" in that namespace sends
kwik-pcapgen traffic through the kernel's UDP sockets. Checks: unknown paths are counted and
reported as rate-limited events; connections and paths added by command receive every stream
byte for byte (file store); bad commands are answered with the field or state named; list_state,
per-connection and per-path counters; path removal (path_down, later packets unknown); the
control process killed mid-command and replaced while traffic flows loses nothing; connection
removal; a client-role connection's first packet to a peer that never sent (kwikd ARPs for it
and sends the packet it held to the answer); clean stop.
Usage: kwikd_commands_test.py <kwikd> <kwikd-cmd> <kwik-pcapgen> <source root>"""
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

kwikd, kwikd_cmd, pcapgen, root = sys.argv[1:5]
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from kwik_e2e import check, failures, namespace_peer, stored_streams, udp_payloads  # noqa: E402

seen = []  # every event any kwikd-cmd run printed, in order
NS = "kwc%d" % os.getpid()
TAP = "kwt%d" % (os.getpid() % 100000)
NAME = "kwikcmd%d" % os.getpid()
APPLIANCE, PEER = "10.77.0.1", "10.77.0.2"
FRESH = "10.77.0.3"  # a second peer address on the tap that sends nothing to kwikd

# Runs in the namespace: captures ARP on the tap and waits (8 s at most) for one UDP datagram
# on address:port. Prints "ready", then one JSON line: the ARP requests for the address, and
# the datagram with the KDP header fields the test checks (PROTOCOL.md 4.1).
FIRST_CONTACT = r'''
import json, select, socket, struct, sys, time
iface, address, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
arp = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0806))
arp.bind((iface, 0))
udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
udp.bind((address, port))
print("ready", flush=True)
mac = lambda b: ":".join("%02x" % x for x in b)
def varint(b, at):
    n = 1 << (b[at] >> 6)
    v = b[at] & 0x3F
    for x in b[at + 1:at + n]:
        v = (v << 8) | x
    return v, at + n
out = {"arp_requests": [], "udp": []}
deadline = time.time() + 8
while not out["udp"] and time.time() < deadline:
    r, _, _ = select.select([arp, udp], [], [], max(0, deadline - time.time()))
    if arp in r:
        f = arp.recv(2048)
        if len(f) >= 42 and struct.unpack("!H", f[20:22])[0] == 1 and socket.inet_ntoa(f[38:42]) == address:
            out["arp_requests"].append({"eth_dst": mac(f[0:6]), "eth_src": mac(f[6:12]), "sender_mac": mac(f[22:28]),
                                        "sender_ip": socket.inet_ntoa(f[28:32])})
    if udp in r:
        data, src = udp.recvfrom(65536)
        count, at = varint(data, 9)
        total, at = varint(data, at)
        out["udp"].append({"from": list(src), "seq": struct.unpack("!Q", data[:8])[0], "type": data[8],
                           "length_ok": at + 5 + total == len(data)})
print(json.dumps(out), flush=True)
'''


def sh(*args, check_rc=True):
    r = subprocess.run(list(args), capture_output=True, text=True, timeout=30)
    if check_rc and r.returncode != 0:
        raise RuntimeError("%s: %s" % (" ".join(args), r.stderr.strip()))
    return r


def cmd(*args, timeout=5):
    """Runs kwikd-cmd in the namespace (shared memory is not per namespace, but keep it uniform).
    Returns (exit code, list of JSON lines, stderr)."""
    r = subprocess.run(["ip", "netns", "exec", NS, kwikd_cmd, "--name", NAME, "--timeout", str(timeout)] + list(args),
                       capture_output=True, text=True, timeout=timeout + 30)
    lines = [json.loads(l) for l in r.stdout.splitlines() if l.strip()]
    seen.extend(l for l in lines if "type" in l)
    return r.returncode, lines, r.stderr.strip()


def result_of(lines):
    results = [l for l in lines if l.get("type") == "command_result"]
    return results[-1] if results else {}


def generate(work, tag, seed, ports, streams):
    pcap = os.path.join(work, tag + ".pcap")
    manifest = os.path.join(work, tag + ".json")
    args = [pcapgen, "-o", pcap, "--manifest", manifest, "--seed", str(seed), "--connections", "1",
            "--streams", str(streams), "--stream-size", "20000-80000", "--max-frame-data", "1100",
            "--reorder", "0.03", "--duplicate", "0.02", "--corrupt", "0.01", "--loss", "0.02",
            "--ack-every", "0", "--keepalive-every", "0", "--window-update-every", "0"]
    for p in ports:
        args += ["--path", "%s:%d,%s:7707" % (PEER, p, APPLIANCE)]
    subprocess.run(args, check=True, capture_output=True, timeout=60)
    return udp_payloads(pcap, 7707), json.load(open(manifest))


class peer(namespace_peer):
    """The test's peer: UDP sockets on PEER in the namespace, one per client port."""

    def __init__(self, ports):
        super().__init__(NS, PEER, APPLIANCE, ports)


def wait_stored(directory, manifest, connection_id, seconds=10):
    """Streams stored byte for byte, waiting up to seconds for the last writes."""
    deadline = time.time() + seconds
    while True:
        good, _ = stored_streams(directory, manifest, connection_id)
        if good == len(manifest["streams"]) or time.time() >= deadline:
            return good
        time.sleep(0.2)


def telemetry(command):
    """One DPDK telemetry command to kwikd (what dpdk-telemetry.py sends), its JSON answer."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    try:
        sock.settimeout(5)
        sock.connect("/var/run/dpdk/%s/dpdk_telemetry.v2" % NAME)
        json.loads(sock.recv(16384).decode())  # the greeting
        sock.send(command.encode())
        return json.loads(sock.recv(65536).decode()).get(command)
    finally:
        sock.close()


def counters(connection=None):
    args = ["counters", "--fresh"] + (["--connection", str(connection)] if connection else [])
    rc, lines, err = cmd(*args)
    if rc != 0 or not lines or "error" in lines[-1]:
        raise RuntimeError("kwikd-cmd counters failed (%d): %s" % (rc, err or lines))
    return lines[-1]


work = tempfile.mkdtemp(prefix="kwik-cmd-test-")
proc = None
holders = []
try:
    sh("ip", "netns", "add", NS)
    sh("ip", "netns", "exec", NS, "ip", "link", "set", "lo", "up")
    # kwikd owns the tap's DPDK side; the kernel side (TAP) is the peer's interface.
    config = os.path.join(work, "kwikd.toml")
    with open(config, "w") as f:
        f.write('[kwikd]\nname = "%s"\nworker_lcores = [1]\nstats_interval_ms = 0\nhugepages = false\nmemory_mb = 512\n\n'
                '[[port]]\nname = "tap"\ndevice = "net_tap0,iface=%s"\naddresses = ["%s/24"]\nkwik_ports = [7707]\n'
                % (NAME, TAP, APPLIANCE))
    conf = [kwikd, "--config", config]
    proc = subprocess.Popen(["ip", "netns", "exec", NS] + conf, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    deadline = time.time() + 30
    up = False
    while time.time() < deadline and not up:
        up = sh("ip", "netns", "exec", NS, "ip", "link", "show", TAP, check_rc=False).returncode == 0 and \
            cmd("status")[0] == 0 and cmd("status")[1][0].get("state") == "ready"
        time.sleep(0.2)
    check(up, "kwikd started with no connection; its region is ready")
    sh("ip", "netns", "exec", NS, "ip", "addr", "add", PEER + "/24", "dev", TAP)
    sh("ip", "netns", "exec", NS, "ip", "link", "set", TAP, "up")

    ports1 = [40001, 40002, 40003]
    pkts1, man1 = generate(work, "one", 11, ports1, 6)
    ports2 = [40011, 40012]
    pkts2, man2 = generate(work, "two", 12, ports2, 4)
    p = peer(ports1 + ports2)

    # 1. Before any connection: every Kwik datagram is an unknown path, reported as an event.
    p.send(pkts1[:20])
    rc, lines, err = cmd("events", "--wait", "unknown_path", timeout=5)
    ev = [l for l in lines if l["type"] == "unknown_path"]
    check(rc == 0 and ev and ev[0]["tuple"]["local"] == "%s:7707" % APPLIANCE and
          ev[0]["tuple"]["remote"].startswith(PEER + ":4000") and ev[0]["count"] >= 1,
          "unknown path reported as an event: %s" % (ev[:1] or err))
    before = counters()
    check(before.get("drops", {}).get("unknown_path", 0) >= 20,
          "unknown-path datagrams counted as drops: %s" % before.get("drops"))
    p.send(pkts1[20:40])
    rc, lines, err = cmd("events", timeout=1)
    burst = [l for l in lines if l["type"] == "unknown_path"]
    check(rc == 0 and len(burst) <= 3,
          "unknown-path events are rate-limited per tuple (%d events for 20 more datagrams) %s" % (len(burst), err))

    # 2. Add a connection and its paths by command; refusals name the field or the state.
    store1 = os.path.join(work, "store1")
    rc, lines, err = cmd("add-connection", "--id", "7", "--conn-name", "upload-1", "--endpoint", "file_store",
                         "--dir", store1)
    check(rc == 0 and result_of(lines).get("status") == "ok", "add_connection answered ok: %s" % (err or lines))
    rc, lines, err = cmd("add-connection", "--id", "7", "--conn-name", "other", "--endpoint", "discard")
    check(rc == 2 and "add_connection.connection_id" in err, "a duplicate connection id is refused: " + err)
    rc, lines, err = cmd("add-connection", "--id", "9", "--conn-name", "upload-1", "--endpoint", "discard")
    check(rc == 2 and "add_connection.name" in err, "a duplicate name is refused: " + err)
    rc, lines, err = cmd("add-connection", "--id", "9", "--conn-name", "x", "--endpoint", "file_store", "--dir", "rel/dir")
    check(rc != 0 and "endpoint_path" in err, "a relative file_store directory is refused: " + err)
    for i, port in enumerate(ports1):
        rc, lines, err = cmd("add-path", "--connection", "7", "--path", str(i + 1), "--local", APPLIANCE + ":7707",
                             "--remote", "%s:%d" % (PEER, port))
        check(rc == 0, "add_path %d answered ok %s" % (i + 1, err))
    rc, lines, err = cmd("add-path", "--connection", "7", "--path", "9", "--local", "10.9.9.9:7707", "--remote",
                         PEER + ":40100")
    check(rc == 2 and "add_path.tuple.local" in err, "a local address kwikd does not have is refused: " + err)
    rc, lines, err = cmd("add-path", "--connection", "7", "--path", "9", "--local", APPLIANCE + ":7707", "--remote",
                         "%s:%d" % (PEER, ports1[0]))
    check(rc == 2 and "conflict" in err and "add_path.tuple" in err, "a tuple bound already is refused: " + err)
    rc, lines, err = cmd("add-path", "--connection", "77", "--path", "1", "--local", APPLIANCE + ":7707", "--remote",
                         PEER + ":40100")
    check(rc == 2 and "unknown_connection" in err, "a path for an unknown connection is refused: " + err)
    rc, lines, err = cmd("set-scheduler", "--connection", "7", "--strategy", "weighted")
    check(rc == 0, "set_scheduler answered ok " + err)
    rc, lines, err = cmd("set-weights", "--connection", "7", "--weight", "1=2", "--weight", "5=1")
    check(rc == 2 and "entries[1].path_id" in err, "set_weights names the unknown path: " + err)
    rc, lines, err = cmd("set-weights", "--connection", "7", "--weight", "1=2", "--weight", "2=1")
    check(rc == 0, "set_weights answered ok " + err)
    rc, lines, err = cmd("set-window", "--connection", "7", "--scope", "connection", "--bytes", str(32 << 20))
    check(rc == 0, "set_windows (connection) answered ok " + err)
    rc, lines, err = cmd("set-qos", "--connection", "7", "--stream", "2", "--priority", "high", "--max-latency-ms", "50")
    check(rc == 0, "set_qos for a stream not yet open answered ok " + err)
    # A key for ENCRYPTED frames (plaintext stays accepted: require_encryption is off).
    key = "5c" * 32
    rc, lines, err = cmd("set-keys", "--connection", "7", "--phase", "2", "--key", key, "--max-frames", "8388608")
    check(rc == 0, "set_connection_keys answered ok " + err)
    rc, lines, err = cmd("set-keys", "--connection", "7", "--phase", "2", "--key", "5d" * 32)
    check(rc == 2 and "already_exists" in err and "set_connection_keys.key_phase" in err,
          "another key for the current phase is refused, the field named: " + err)
    rc, lines, err = cmd("set-keys", "--connection", "7", "--phase", "3", "--key", "00" * 32)
    check(rc == 1 and "set_connection_keys.key: all zero" in err,
          "an all-zero key is refused before it is sent (a bad argument): " + err)

    rc, lines, err = cmd("list")
    infos = [l for l in lines if l["type"] in ("connection_info", "path_info")]
    conn_infos = [l for l in infos if l["type"] == "connection_info"]
    check(rc == 0 and len(conn_infos) == 1 and conn_infos[0]["name"] == "upload-1" and
          conn_infos[0]["endpoint"] == "file_store" and
          conn_infos[0]["live_keys"] == 1 and conn_infos[0]["key_phase"] == 2 and
          not conn_infos[0]["require_encryption"] and
          sorted(l["path_id"] for l in infos if l["type"] == "path_info") == [1, 2, 3] and
          "1 connections, 3 paths" in result_of(lines).get("reason", ""),
          "list_state shows the connection and its three paths: %s" % result_of(lines))

    check(key not in json.dumps(seen) and "5c5c5c5c" not in json.dumps(lines), "the key is never printed")

    # 3. Traffic: every stream stored byte for byte; counters per connection and path.
    got = p.send(pkts1, linger=1.0)
    good = wait_stored(store1, man1, 7)
    check(good == len(man1["streams"]), "connection 7: %d of %d streams stored byte for byte" % (good, len(man1["streams"])))
    check(all(got[port] > 0 for port in ports1), "kwikd's ACKs reach the peer on every path: %s" % got)
    c = counters(7)
    conns = c.get("connections", [])
    total = sum(s["final_size"] for s in man1["streams"])
    check(len(conns) == 1 and conns[0]["delivered_bytes"] == total and conns[0]["streams_opened"] == len(man1["streams"]),
          "per-connection counters: delivered %s of %d bytes, %s streams" %
          (conns[0]["delivered_bytes"] if conns else None, total, conns[0]["streams_opened"] if conns else None))
    tel = telemetry("/kwik/connections")
    check(tel is not None and tel.get("7", {}).get("delivered_bytes") == total,
          "DPDK telemetry /kwik/connections shows connection 7: %s" % (tel or {}).get("7"))
    tel_paths = telemetry("/kwik/paths")
    check(tel_paths is not None and sorted(tel_paths) == ["7/1", "7/2", "7/3"],
          "DPDK telemetry /kwik/paths lists its paths: %s" % sorted(tel_paths or {}))
    paths = {x["path_id"]: x for x in c.get("paths", [])}
    check(sorted(paths) == [1, 2, 3] and all(paths[i]["rx_packets"] > 0 and paths[i]["tx_packets"] > 0 for i in paths),
          "per-path counters: rx/tx on every path: %s" %
          {i: (x["rx_packets"], x["tx_packets"], x["status"]) for i, x in paths.items()})
    # The replayed peer never answers kwikd's probes (PATH_CHALLENGE) nor acknowledges what
    # kwikd sends: a path goes suspect once its probe times out, and says so with path_down.
    cmd("events", timeout=0.5)
    downs = {(e["path_id"], e["kind"]) for e in seen if e["type"] == "path_down" and e["connection_id"] == 7}
    suspect = [i for i, x in paths.items() if x["status"] in ("suspect", "failed")]
    check(all((i, "down") in downs or (i, "failed") in downs for i in suspect) and
          all(x["status"] in ("up", "suspect", "failed") for x in paths.values()),
          "each path the unanswering peer left suspect was reported with path_down: %s for %s" % (sorted(downs), suspect))
    corrupted = sum(1 for x in man1["packets"] if x.get("corrupted") and x.get("direction") == "client_to_server")
    bad = sum(v for k, v in c.get("drops", {}).items() if k not in ("unknown_path", "not_for_us"))
    check(corrupted == 0 or bad >= corrupted, "corrupted datagrams counted by reason (%d for %d)" % (bad, corrupted))

    # 4. The control process dies while attached (SIGKILL, no clean detach) and another takes over
    #    while the second connection's traffic flows: kwikd and the transfer are not disturbed.
    holder = subprocess.Popen(["ip", "netns", "exec", NS, kwikd_cmd, "--name", NAME, "--timeout", "60", "events"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    holders.append(holder)
    deadline = time.time() + 10
    attached = False
    while time.time() < deadline and not attached:
        rc, st, err = cmd("status")
        attached = rc == 0 and st and st[0].get("control_pid", 0) != 0
        time.sleep(0.05)
    check(attached, "status readable while a control process holds the rings: %s" % (st[:1] if st else err))
    rc, _, err = cmd("list")
    check(rc != 0 and ("lock" in err or "control" in err), "a second control process is refused while one holds the rings: " + err)
    store2 = os.path.join(work, "store2")
    holder.kill()
    holder.wait(timeout=10)
    rc, lines, err = cmd("add-connection", "--id", "8", "--conn-name", "upload-2", "--endpoint", "file_store", "--dir", store2)
    check(rc == 0, "a new control process attaches after the old one was killed " + (err or ""))
    for i, port in enumerate(ports2):
        cmd("add-path", "--connection", "8", "--path", str(i + 1), "--local", APPLIANCE + ":7707", "--remote",
            "%s:%d" % (PEER, port))
    # The transfer runs in the peer process while control processes come and go: some finish
    # their command, some are killed in the middle of one.
    p.start(pkts2, linger=1.0)
    for i in range(4):
        cmd("counters", "--fresh")
        victim = subprocess.Popen(["ip", "netns", "exec", NS, kwikd_cmd, "--name", NAME, "list"],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(0.01 * i)
        victim.kill()
        victim.wait(timeout=10)
        cmd("list")
    p.done()
    good2 = wait_stored(store2, man2, 8)
    check(good2 == len(man2["streams"]), "connection 8 across control-process restarts: %d of %d streams stored" %
          (good2, len(man2["streams"])))

    # 5. Remove a path: path_down(removed); its tuple is unknown afterwards.
    rc, lines, err = cmd("remove-path", "--connection", "7", "--path", "3")

    def removed_3(events):
        return [l for l in events if l["type"] == "path_down" and l["path_id"] == 3 and l["connection_id"] == 7
                and l["kind"] == "removed"]
    downs = removed_3(lines)
    deadline = time.time() + 5
    while not downs and time.time() < deadline:
        _, more, _ = cmd("events", timeout=0.5)
        downs = removed_3(more)
    check(rc == 0 and downs and downs[0]["kind"] == "removed", "remove_path answered ok with path_down removed: %s" % downs)
    unknown_before = counters().get("drops", {}).get("unknown_path", 0)
    p.send([(port, d) for port, d in pkts1 if port == ports1[2]][:10])
    unknown_after = counters().get("drops", {}).get("unknown_path", 0)
    check(unknown_after - unknown_before == 10, "datagrams on the removed path are unknown (%d)" % (unknown_after - unknown_before))
    rc, lines, _ = cmd("list")
    check(sorted(l["path_id"] for l in lines if l["type"] == "path_info" and l["connection_id"] == 7) == [1, 2],
          "list_state no longer shows the removed path")

    # 6. Remove the connections.
    rc, lines, err = cmd("remove-connection", "--id", "7")
    check(rc == 0, "remove_connection answered ok " + err)
    rc, lines, err = cmd("remove-connection", "--id", "7")
    check(rc == 2 and "unknown_connection" in err, "removing it again is refused: " + err)
    rc, lines, err = cmd("remove-connection", "--id", "8", "--drain-ms", "200")
    check(rc == 0, "remove_connection with a drain time answered ok " + err)
    rc, lines, _ = cmd("list")
    check(rc == 0 and not [l for l in lines if l["type"] == "connection_info"], "no connection listed after removal")
    check(not counters().get("connections"), "no connection counters after removal")
    p.close()

    # 7. A client-role connection speaks first. kwikd has never heard from 10.77.0.3, so the
    #    path's first packet (its PATH_CHALLENGE) waits while kwikd ARPs for it from its own MAC
    #    and address; the kernel answers, and the held packet reaches a UDP socket that never
    #    sent anything.
    sh("ip", "netns", "exec", NS, "ip", "addr", "add", FRESH + "/24", "dev", TAP)
    listener = subprocess.Popen(["ip", "netns", "exec", NS, sys.executable, "-c", FIRST_CONTACT, TAP, FRESH, "40100"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    ready = listener.stdout.readline().strip()
    check(ready == "ready", "ARP capture and UDP socket on %s:40100 ready (%s)" % (FRESH, ready or listener.stderr.read()))
    rc, lines, err = cmd("add-connection", "--id", "20", "--conn-name", "first-contact", "--role", "client",
                         "--endpoint", "discard")
    check(rc == 0, "add_connection with role client answered ok " + err)
    rc, lines, err = cmd("add-path", "--connection", "20", "--path", "1", "--local", APPLIANCE + ":7707",
                         "--remote", FRESH + ":40100")
    check(rc == 0, "add_path to a peer that never sent answered ok " + err)
    seen_first = json.loads(listener.communicate(timeout=30)[0] or "{}")
    requests = seen_first.get("arp_requests", [])
    check(len(requests) >= 1 and all(r["eth_dst"] == "ff:ff:ff:ff:ff:ff" and r["sender_ip"] == APPLIANCE and
                                     r["sender_mac"] == r["eth_src"] for r in requests),
          "kwikd asked who has %s: broadcast ARP requests from %s and its own MAC: %s" % (FRESH, APPLIANCE, requests))
    datagrams = seen_first.get("udp", [])
    first = datagrams[0] if datagrams else {}
    check(first.get("from") == [APPLIANCE, 7707] and first.get("seq") == 0 and first.get("type") == 3 and
          first.get("length_ok"),
          "the held first packet of the path (sequence 0, a keepalive packet with the PATH_CHALLENGE) came from "
          "%s:7707 to the socket that never sent: %s" % (APPLIANCE, datagrams[:2]))
    kwikd_mac = requests[0]["eth_src"] if requests else None
    neigh = sh("ip", "netns", "exec", NS, "ip", "neigh", "show", APPLIANCE, "dev", TAP).stdout
    check(kwikd_mac is not None and ("lladdr " + kwikd_mac) in neigh,
          "the peer's kernel knows 10.77.0.1 at the MAC kwikd asked from (%s): %s" % (kwikd_mac, neigh.strip()))

    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=60)
    check(proc.returncode == 0 and "kwikd: stopped" in out, "kwikd stops cleanly (exit %s)" % proc.returncode)
    proc = None
finally:
    for h in holders:
        if h.poll() is None:
            h.kill()
    if proc is not None:
        proc.kill()
        out, _ = proc.communicate(timeout=30)
        print(out[-4000:])
    subprocess.run(["ip", "netns", "del", NS], capture_output=True)
    shutil.rmtree(work, ignore_errors=True)

print("%d checks failed" % len(failures))
sys.exit(1 if failures else 0)
