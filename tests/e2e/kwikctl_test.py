#!/usr/bin/env python3
"""kwikctl against the real processes: kwikd on a net_tap port inside a network namespace the
test creates, with one static connection ("e2e-static", path 1); kwik-cp attached to kwikd's
region, serving KCP over TLS on loopback; kwikctl pinned to kwik-cp's certificate
(`kwikctl pin`) with an operator key. A peer in the namespace sends kwik-pcapgen packets on a
second 5-tuple through the kernel's UDP sockets. Checks: before `kwikctl path add` those
packets are counted as drop reason unknown_path; after it they are accepted on the connection
(path 2's rx_packets in `kwikctl show paths`, the connection's in `show connections`) and no
longer dropped; after `kwikctl path remove` the same packets are unknown_path again. Also: every
view answers, the settings (scheduler, weights, QoS), health, scale and the registry commands
are answered by kwik-cp, its refusals exit 1 with the field named, a client-role key is
refused, a wrong pin exits 3, watch repeats a view.
kwikctl runs only once kwik-cp holds kwikd's rings (kwikd-cmd status names its pid): a session
opened while kwik-cp is still detached gets a connection whose id can collide with kwikd's
static ones (reported with this test's branch).
Usage: kwikctl_test.py <kwikd> <kwik-cp> <kwikctl> <kwik-pcapgen> <kwikd-cmd>"""
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

kwikd, kwik_cp, kwikctl, pcapgen, kwikd_cmd = sys.argv[1:6]
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from kwik_e2e import check, failures, namespace_peer, udp_payloads  # noqa: E402

NS = "kwl%d" % os.getpid()
TAP = "kwl%d" % (os.getpid() % 100000)
NAME = "kwikctl%d" % os.getpid()
APPLIANCE, PEER = "10.78.0.1", "10.78.0.2"
CONN = "e2e-static"
SECRET = "5f" * 32
CLIENT_SECRET = "6a" * 32


def sh(*args, check_rc=True):
    r = subprocess.run(list(args), capture_output=True, text=True, timeout=30)
    if check_rc and r.returncode != 0:
        raise RuntimeError("%s: %s" % (" ".join(args), r.stderr.strip()))
    return r


class control:
    """kwikctl with the connection settings of this test."""

    def __init__(self, port, pin, secret_file, key_id="ops"):
        self.base = [kwikctl, "--server", "127.0.0.1:%d" % port, "--pin", pin, "--key-id", key_id,
                     "--secret-file", secret_file, "--timeout-ms", "10000"]

    def run(self, *args):
        """(exit status, stdout, stderr)."""
        r = subprocess.run(self.base + list(args), capture_output=True, text=True, timeout=60)
        return r.returncode, r.stdout, r.stderr

    def json(self, *args):
        """The JSON answer of a show; {} when kwikctl failed."""
        rc, out, err = self.run("--json", *args)
        if rc != 0:
            print("kwikctl %s: exit %d: %s" % (" ".join(args), rc, err.strip()), flush=True)
            return {}
        return json.loads(out)


def table(answer, name):
    for t in answer.get("tables", []):
        if t["name"] == name:
            return t["rows"]
    return []


def unknown_path_drops(ctl):
    return sum(r["packets"] for r in table(ctl.json("show", "counters"), "drops") if r["reason"] == "unknown_path")


def path_rows(ctl):
    return {r["path_id"]: r for r in table(ctl.json("show", "paths", "--connection", CONN), "paths")}


def wait_for(what, seconds=10):
    """Polls what() until it returns something true, or the time is up; returns its last value."""
    deadline = time.time() + seconds
    while True:
        v = what()
        if v or time.time() >= deadline:
            return v
        time.sleep(0.1)


work = tempfile.mkdtemp(prefix="kwikctl-e2e-")
kwikd_proc = cp_proc = None
try:
    sh("ip", "netns", "add", NS)
    sh("ip", "netns", "exec", NS, "ip", "link", "set", "lo", "up")
    kwikd_config = os.path.join(work, "kwikd.toml")
    with open(kwikd_config, "w") as f:
        f.write('[kwikd]\nname = "%s"\nworker_lcores = [1]\nstats_interval_ms = 100\nhugepages = false\n'
                'memory_mb = 512\n\n[[port]]\nname = "tap"\ndevice = "net_tap0,iface=%s"\naddresses = ["%s/24"]\n'
                'kwik_ports = [7707]\n\n[[connection]]\nid = "%s"\nendpoint = "discard"\n[[connection.path]]\n'
                'path_id = 1\nlocal = "%s:7707"\nremote = "%s:40001"\n' % (NAME, TAP, APPLIANCE, CONN, APPLIANCE, PEER))
    kwikd_proc = subprocess.Popen(["ip", "netns", "exec", NS, kwikd, "--config", kwikd_config],
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    # kwik-cp starts once kwikd's region is there, as an operator would start them (README).
    check(wait_for(lambda: os.path.exists("/dev/shm/" + NAME), 30), "kwikd created its region /dev/shm/" + NAME)

    secret_file = os.path.join(work, "ops.secret")
    client_secret_file = os.path.join(work, "client.secret")
    for path, value in ((secret_file, SECRET), (client_secret_file, CLIENT_SECRET)):
        with open(path, "w") as f:
            f.write(value + "\n")
        os.chmod(path, 0o600)
    cp_config = os.path.join(work, "kwik-cp.toml")
    with open(cp_config, "w") as f:
        f.write('[kwik_cp]\nserver_id = "cp-e2e"\nlisten = "127.0.0.1:0"\nkwikd_region = "%s"\n[tls]\n'
                'certificate = "%s"\nprivate_key = "%s"\n[[auth.key]]\nkey_id = "ops"\nsecret = "%s"\n'
                'roles = ["operator"]\n[[auth.key]]\nkey_id = "client-only"\nsecret = "%s"\n'
                % (NAME, os.path.join(work, "cp.crt"), os.path.join(work, "cp.key"), SECRET, CLIENT_SECRET))
    cp_log = open(os.path.join(work, "kwik-cp.log"), "w")  # its event log (stderr); stdout has the port
    cp_proc = subprocess.Popen([kwik_cp, "--config", cp_config], stdout=subprocess.PIPE, stderr=cp_log, text=True)
    line = cp_proc.stdout.readline()
    check(line.startswith("kwik-cp: listening on port "), "kwik-cp started: %s" % line.strip())
    port = int(line.rsplit(" ", 1)[1])

    def kwik_cp_holds_the_rings():
        r = subprocess.run([kwikd_cmd, "--name", NAME, "--timeout", "2", "status"], capture_output=True, text=True,
                           timeout=30)
        lines = [json.loads(x) for x in r.stdout.splitlines() if x.strip()]
        return r.returncode == 0 and lines and lines[0].get("control_pid") == cp_proc.pid
    check(wait_for(kwik_cp_holds_the_rings, 30), "kwik-cp attached to kwikd's rings (kwikd-cmd status)")

    r = subprocess.run([kwikctl, "pin", os.path.join(work, "cp.crt")], capture_output=True, text=True, timeout=10)
    pin = r.stdout.strip()
    check(r.returncode == 0 and len(pin) == 64, "kwikctl pin prints the certificate's pin: %s %s" % (pin, r.stderr))
    ctl = control(port, pin, secret_file)

    def kwikd_ready():
        rows = table(ctl.json("status"), "kwikd")
        return rows and rows[0].get("attached") and rows[0].get("adopted") and \
            sh("ip", "netns", "exec", NS, "ip", "link", "show", TAP, check_rc=False).returncode == 0
    check(wait_for(kwikd_ready, 30), "kwik-cp attached to kwikd and adopted its static connection")
    sh("ip", "netns", "exec", NS, "ip", "addr", "add", PEER + "/24", "dev", TAP)
    sh("ip", "netns", "exec", NS, "ip", "link", "set", TAP, "up")

    # Traffic for the connection over two paths; path 2's datagrams are the ones the test replays.
    pcap = os.path.join(work, "traffic.pcap")
    subprocess.run([pcapgen, "-o", pcap, "--seed", "5", "--connections", "1", "--streams", "4", "--stream-size",
                    "20000", "--max-frame-data", "1100", "--ack-every", "0", "--keepalive-every", "0",
                    "--window-update-every", "0", "--path", "%s:40001,%s:7707" % (PEER, APPLIANCE),
                    "--path", "%s:40002,%s:7707" % (PEER, APPLIANCE)], check=True, capture_output=True, timeout=60)
    on_path_2 = [(p, d) for p, d in udp_payloads(pcap, 7707) if p == 40002][:20]
    check(len(on_path_2) == 20, "20 datagrams generated on %s:40002" % PEER)
    peer = namespace_peer(NS, PEER, APPLIANCE, [40001, 40002])

    # 1. Before the path exists: unknown path.
    rows = path_rows(ctl)
    check(sorted(rows) == [1], "show paths lists the static path only: %s" % sorted(rows))
    base = unknown_path_drops(ctl)
    peer.send(on_path_2)
    before_add = wait_for(lambda: unknown_path_drops(ctl) >= base + 20 and unknown_path_drops(ctl))
    check(before_add == base + 20, "before path add: the 20 datagrams counted as unknown_path (%s -> %s)" %
          (base, before_add))

    # 2. kwikctl path add: the same datagrams are accepted on the connection.
    conn_rx = {r["connection"]: r["rx_packets"] for r in table(ctl.json("show", "connections"), "connections")}
    rc, out, err = ctl.run("path", "add", "--connection", CONN, "--path-id", "2", "--local", APPLIANCE + ":7707",
                           "--remote", "%s:40002" % PEER)
    check(rc == 0 and out.strip() != "", "kwikctl path add exits 0 and prints what it did: %r %s" % (out[:200], err))
    rows = path_rows(ctl)
    check(2 in rows and rows[2]["remote_port"] == 40002 and rows[2]["remote_address"] == PEER,
          "show paths lists path 2 with its remote end: %s" % rows.get(2))
    peer.send(on_path_2)
    rx = wait_for(lambda: path_rows(ctl).get(2, {}).get("rx_packets", 0) >= 20 and path_rows(ctl)[2]["rx_packets"])
    check(rx == 20, "after path add: the 20 datagrams are received on path 2 (rx_packets %s)" % rx)
    conns = {r["connection"]: r for r in table(ctl.json("show", "connections"), "connections")}
    grown = [c for c, r in conns.items() if r["rx_packets"] >= conn_rx.get(c, 0) + 20]
    check(len(grown) == 1, "the connection's rx_packets grew by them: %s -> %s" %
          (conn_rx, {c: r["rx_packets"] for c, r in conns.items()}))
    after_add = unknown_path_drops(ctl)
    check(after_add == before_add, "and none was dropped as unknown_path (%s -> %s)" % (before_add, after_add))
    rc, out, err = ctl.run("show", "paths", "--connection", CONN)
    check(rc == 0 and out.splitlines()[0].split()[:2] == ["CONNECTION", "PATH_ID"] and len(out.splitlines()) == 3,
          "show paths prints an aligned table, one line per path:\n" + out)

    # Settings on the connection while it has two paths, each answered by kwik-cp after kwikd.
    for args, what in ((["set", "scheduler", "--connection", CONN, "weighted"], "set scheduler weighted"),
                       (["set", "weights", "--connection", CONN, "1=3", "2=1"], "set weights 1=3 2=1"),
                       (["set", "qos", "--connection", CONN, "--stream", "4", "--priority", "1"], "set qos"),
                       (["health"], "health of kwik-cp"),
                       (["health", "--connection", CONN, "--path-id", "2"], "health of path 2")):
        rc, out, err = ctl.run(*args)
        check(rc == 0 and out.strip() != "", "kwikctl %s exits 0 with kwik-cp's answer: %s" % (what, err.strip()))
    rc, out, err = ctl.run("set", "weights", "--connection", CONN, "9=1")
    check(rc == 1 and "9" in err, "weights for a path the connection lacks exit 1: %s" % err.strip())
    # Scaling: a standby path (5) is the candidate; a scale-up beyond the data paths' rate activates it,
    # and the cooldown refuses the next one with exit 1 and the manager's reason.
    rc, out, err = ctl.run("path", "add", "--connection", CONN, "--path-id", "5", "--local", APPLIANCE + ":7707",
                           "--remote", "%s:40005" % PEER, "--standby")
    check(rc == 0 and path_rows(ctl)[5]["standby"] is True, "kwikctl path add --standby: %s" % err.strip())
    policy = ["--min-paths", "1", "--max-paths", "4", "--cooldown-s", "60", "--up-threshold", "80",
              "--down-threshold", "30"]
    scaled = ctl.json("scale", "--connection", CONN, "--target-mbps", "1000", *policy)
    decision = table(scaled, "scaling")[0]
    check(decision["decision"] == "SCALE_UP" and decision["paths_added"] == "5",
          "kwikctl scale activates the standby path: %s" % decision)
    check(path_rows(ctl)[5]["standby"] is False, "show paths: path 5 carries data after the scale-up")
    rc, out, err = ctl.run("path", "add", "--connection", CONN, "--path-id", "6", "--local", APPLIANCE + ":7707",
                           "--remote", "%s:40006" % PEER, "--standby")
    check(rc == 0, "a second standby path (6), so that capacity is there: %s" % err.strip())
    rc, out, err = ctl.run("scale", "--connection", CONN, "--target-mbps", "2000", *policy)
    check(rc == 1 and "cooldown" in err, "a second scale within the cooldown exits 1 naming it: %s" % err.strip())
    for standby_path in ("5", "6"):
        rc, out, err = ctl.run("path", "remove", "--connection", CONN, "--path-id", standby_path)
        check(rc == 0, "kwikctl path remove %s: %s" % (standby_path, err.strip()))

    # 3. kwikctl path remove: unknown again.
    rc, out, err = ctl.run("path", "remove", "--connection", CONN, "--path-id", "2")
    check(rc == 0, "kwikctl path remove exits 0: %s" % err)
    check(2 not in path_rows(ctl), "show paths no longer lists path 2")
    peer.send(on_path_2)
    after_remove = wait_for(lambda: unknown_path_drops(ctl) >= after_add + 20 and unknown_path_drops(ctl))
    check(after_remove == after_add + 20, "after path remove: the same 20 datagrams are unknown_path again (%s -> %s)" %
          (after_add, after_remove))
    peer.close()

    # 4. kwik-cp's refusals: exit 1, its error on stderr naming the field.
    rc, out, err = ctl.run("path", "remove", "--connection", CONN, "--path-id", "2")
    check(rc == 1 and err.startswith("kwikctl: remove_path") and "path 2" in err,
          "removing it again exits 1 naming the path: %s" % err.strip())
    rc, out, err = ctl.run("path", "add", "--connection", "nope", "--path-id", "3", "--local", APPLIANCE + ":7707",
                           "--remote", PEER + ":40003")
    check(rc == 1 and err.startswith("kwikctl: add_path.connection"), "an unknown connection exits 1: %s" % err.strip())

    # 5. Every view answers, as a table and as JSON.
    for view in ("ports", "workers", "connections", "paths", "streams", "servers", "counters", "sessions"):
        rc, out, err = ctl.run("show", view)
        answer = ctl.json("show", view)
        check(rc == 0 and answer.get("ok") is True and answer.get("tables"), "show %s answers (%d tables)" %
              (view, len(answer.get("tables", []))))
    rc, out, err = ctl.run("registry", "list")
    check(rc == 0 and "cp-e2e" in out, "registry list shows kwik-cp itself: %s" % (out.strip() or err))
    rc, out, err = ctl.run("registry", "register", "--server-id", "edge-7", "--address", "192.0.2.7:7708",
                           "--bandwidth-mbps", "2500", "--region", "eu-west", "--country", "FR", "--capability", "relay")
    servers = {r["server_id"]: r for r in table(ctl.json("registry", "list"), "servers")}
    check(rc == 0 and servers.get("edge-7", {}).get("available_bandwidth_mbps") == 2500 and
          servers["edge-7"].get("region") == "eu-west", "registry register adds the server: %s %s" %
          (servers.get("edge-7"), err.strip()))
    rc, out, err = ctl.run("registry", "remove", "--server-id", "edge-7", "--reason", "e2e done")
    servers = {r["server_id"] for r in table(ctl.json("registry", "list"), "servers")}
    check(rc == 0 and "edge-7" not in servers, "registry remove takes it out: %s %s" % (sorted(servers), err.strip()))
    rc, out, err = ctl.run("watch", "status", "--interval-ms", "200", "--count", "2")
    check(rc == 0 and out.count("kwikctl watch status") == 2, "watch status --count 2 prints two blocks (%d)" % rc)

    # 6. A key without the operator role, and a wrong pin.
    rc, out, err = control(port, pin, client_secret_file, "client-only").run("status")
    check(rc == 1 and "lacks the operator role" in err, "a client-role key is refused with exit 1: %s" % err.strip())
    rc, out, err = control(port, "00" * 32, secret_file).run("status")
    check(rc == 3 and pin in err, "a wrong pin exits 3 naming kwik-cp's real pin: %s" % err.strip())

    cp_proc.send_signal(signal.SIGTERM)
    cp_proc.wait(timeout=30)
    check(cp_proc.returncode == 0, "kwik-cp stops on SIGTERM (exit %s)" % cp_proc.returncode)
    cp_proc = None
    kwikd_proc.send_signal(signal.SIGTERM)
    out, _ = kwikd_proc.communicate(timeout=60)
    check(kwikd_proc.returncode == 0, "kwikd stops cleanly (exit %s)" % kwikd_proc.returncode)
    kwikd_proc = None
finally:
    for p in (cp_proc, kwikd_proc):
        if p is not None:
            p.kill()
            out, _ = p.communicate(timeout=30)
            print(out[-4000:])
    subprocess.run(["ip", "netns", "del", NS], capture_output=True)
    shutil.rmtree(work, ignore_errors=True)

print("%d checks failed" % len(failures))
sys.exit(1 if failures else 0)
