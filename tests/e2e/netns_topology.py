"""The multipath test network (tests/e2e/README.md): a client, a relay and a server network
namespace; N paths client <-> relay, each routed through kwik-relay's TUN device for that path
(impairments) and rate limited by tc tbf on the veths; one link relay <-> server; a management
link client <-> server. Built by topology.__enter__ (or create()), always removed: by __exit__,
by an atexit hook and on SIGTERM; sweep() removes what dead runs left. Standard library only.

Addresses, with k unique per run: path i (1..N) is 10.k.i.0/24, client 10.k.i.2 on ci, relay
10.k.i.1 on rci; relay <-> server 10.k.100.0/24, relay 10.k.100.2 on rs, server (Kwik or kernel)
10.k.100.1 on s0; management 10.k.254.1 (client, m0) <-> 10.k.254.2 (server, m1). With ipv6=True
the same plan in fd00:k:i::/64 and fd00:k:100::/64 on the same devices, routed the same way."""
import atexit
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time

PREFIX = "kwt"
_live = []  # topologies not yet destroyed, for the atexit hook and the SIGTERM handler
_topology_counter = [0]  # topologies this process made: part of each one's name
_name_re = re.compile(r"^%s(\d+)x(\d+)-[crs]$" % PREFIX)


def _sh(argv, input=None, check=True, timeout=30):
    r = subprocess.run(argv, input=input, capture_output=True, text=True, timeout=timeout)
    if check and r.returncode != 0:
        raise RuntimeError("%s: exit %d: %s" % (" ".join(argv), r.returncode, (r.stderr or r.stdout).strip()))
    return r


def _batch(ns, commands):
    """Runs ip commands in namespace ns in one process (ip -batch): tens of times faster than one
    process per command. Commands starting with "-6 " go to a second, IPv6 batch (a batch line
    takes no options)."""
    v4 = [c for c in commands if not c.startswith("-6 ")]
    v6 = [c[3:] for c in commands if c.startswith("-6 ")]
    for family, lines in (([], v4), (["-6"], v6)):
        if lines:
            _sh(["ip"] + family + ["-n", ns, "-batch", "-"], input="\n".join(lines) + "\n")


def _sysctl(ns, settings):
    """Writes /proc/sys values inside ns (one process for all)."""
    script = "".join("echo %s > /proc/sys/%s && " % (v, k.replace(".", "/")) for k, v in settings) + "true"
    _sh(["ip", "netns", "exec", ns, "sh", "-c", script])


def _pid_alive(pid):
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


def _delete_namespace(ns):
    """Kills what still runs in ns, then deletes it: `ip netns del` only unlinks the name, and a
    process left inside (a failed step's kwikd, kwik-peer or probe) would go on running and keep
    the namespace and its devices alive."""
    r = _sh(["ip", "netns", "pids", ns], check=False)
    for pid in r.stdout.split():
        try:
            os.kill(int(pid), signal.SIGKILL)
        except (ProcessLookupError, ValueError):
            pass
    _sh(["ip", "netns", "del", ns], check=False)


def sweep():
    """Removes the namespaces of runs whose process is gone (names carry the creating pid)."""
    removed = []
    for name in os.listdir("/run/netns") if os.path.isdir("/run/netns") else []:
        m = _name_re.match(name)
        if m and not _pid_alive(int(m.group(1))):
            _delete_namespace(name)
            removed.append(name)
    return removed


def _cleanup_all():
    for t in list(_live):
        t.destroy()


def _on_sigterm(signum, frame):
    _cleanup_all()
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)


atexit.register(_cleanup_all)


class relay_control:
    """kwik-relay's control socket: one command line, one JSON answer line."""

    def __init__(self, path):
        self.path = path
        self.sock = None

    def command(self, line):
        """The relay's answer to line, as a dict (ok true, or ok false with error)."""
        if self.sock is None:
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.sock.settimeout(10)
            self.sock.connect(self.path)
            self.file = self.sock.makefile("r")
        self.sock.sendall((line + "\n").encode())
        answer = self.file.readline()
        if not answer:
            raise RuntimeError("kwik-relay closed its control socket after %r" % line)
        return json.loads(answer)

    def _checked(self, line):
        a = self.command(line)
        if not a.get("ok"):
            raise RuntimeError("kwik-relay: %s: %s" % (line, a.get("error")))
        return a

    def set(self, path, direction=None, **settings):
        """set path [up|down] key=value...; settings are impairment fields (loss=0.05, delay_ms=10)."""
        words = ["set", path] + ([direction] if direction else []) + ["%s=%s" % kv for kv in settings.items()]
        return self._checked(" ".join(words))

    def blackout(self, path, on):
        return self._checked("blackout %s %s" % (path, "on" if on else "off"))

    def stats(self, path=None):
        """{path name: {"up": counters, "down": counters, ...}}."""
        return self._checked("stats" + (" " + path if path else ""))["paths"]

    def reset(self, path):
        return self._checked("reset " + path)

    def close(self):
        if self.sock is not None:
            self.file.close()
            self.sock.close()
            self.sock = None


class topology:
    """The client/relay/server namespaces for n paths. server_mode: "kernel" (s0 has 10.k.100.1,
    for kernel servers: kwik-peer, MPTCP, UDP sockets) or "device" (s0 has no address: kwikd takes
    it with net_af_packet iface=s0, or attach_tap() bridges kwikd's net_tap device to it). rates:
    {(path, "up"|"down"): Mbit/s}, or one number for every path and direction; None = unlimited.
    Paths are named "p1".."pN" on the relay's control socket."""

    def __init__(self, relay_exe, paths=3, server_mode="kernel", rates=None, seed=1, workdir=None, ipv6=False):
        if server_mode not in ("kernel", "device"):
            raise ValueError("server_mode: %r is not kernel or device" % server_mode)
        if not 1 <= paths <= 99:
            raise ValueError("paths: %r is not in [1, 99]" % paths)
        _topology_counter[0] += 1
        self.prefix = "%s%dx%d" % (PREFIX, os.getpid(), _topology_counter[0])
        self.k = (os.getpid() + _topology_counter[0]) % 200 + 20  # 10.20.x.x .. 10.219.x.x
        self.client_ns, self.relay_ns, self.server_ns = (self.prefix + s for s in ("-c", "-r", "-s"))
        self.paths = paths
        self.server_mode = server_mode
        self.relay_exe = relay_exe
        self.seed = seed
        self.rates = rates
        self.ipv6 = ipv6
        self.workdir = workdir or "/tmp"
        self.relay_proc = None
        self.relay = None
        self._created = []
        self._tap = None

    # ---- addresses ----
    def client_address(self, i):
        return "10.%d.%d.2" % (self.k, i)

    def relay_address(self, i):
        return "10.%d.%d.1" % (self.k, i)

    def client_address6(self, i):
        return "fd00:%d:%d::2" % (self.k, i)

    def relay_address6(self, i):
        return "fd00:%d:%d::1" % (self.k, i)

    @property
    def server_address6(self):
        return "fd00:%d:100::1" % self.k

    @property
    def server_gateway6(self):
        return "fd00:%d:100::2" % self.k

    @property
    def server_address(self):
        """The server's (Kwik or kernel) address on s0."""
        return "10.%d.100.1" % self.k

    @property
    def server_gateway(self):
        return "10.%d.100.2" % self.k

    @property
    def management_client(self):
        return "10.%d.254.1" % self.k

    @property
    def management_server(self):
        return "10.%d.254.2" % self.k

    def path_name(self, i):
        return "p%d" % i

    # ---- life cycle ----
    def __enter__(self):
        self.create()
        return self

    def __exit__(self, *exc):
        self.destroy()
        return False

    def create(self):
        if signal.getsignal(signal.SIGTERM) in (signal.SIG_DFL, None):
            signal.signal(signal.SIGTERM, _on_sigterm)
        _live.append(self)
        try:
            self._build()
        except BaseException:
            self.destroy()
            raise

    def _build(self):
        k, n = self.k, self.paths
        c, r, s = self.client_ns, self.relay_ns, self.server_ns
        for ns in (c, r, s):
            _sh(["ip", "netns", "add", ns])
            self._created.append(ns)
        # rp_filter off before any device exists (devices copy "default"); forwarding in the relay.
        _sysctl(r, [("net.ipv4.ip_forward", 1), ("net.ipv4.conf.all.rp_filter", 0),
                    ("net.ipv4.conf.default.rp_filter", 0), ("net.ipv4.conf.all.send_redirects", 0),
                    ("net.ipv4.conf.default.send_redirects", 0),
                    # Without IPv6 paths, IPv6 is off; with them, the TUN devices get no IPv6
                    # address (addr_gen_mode 1) so that the relay namespace sends nothing of its own
                    # (router solicitations, MLD reports) into them: the relay's counters count
                    # path traffic only.
                    ("net.ipv6.conf.all.disable_ipv6", 0 if self.ipv6 else 1),
                    ("net.ipv6.conf.default.disable_ipv6", 0 if self.ipv6 else 1),
                    ("net.ipv6.conf.all.forwarding", 1 if self.ipv6 else 0),
                    ("net.ipv6.conf.default.addr_gen_mode", 1)])
        for ns in (c, s):
            _sysctl(ns, [("net.ipv4.conf.all.rp_filter", 0), ("net.ipv4.conf.default.rp_filter", 0)])
        # The relay creates its TUN devices in its namespace before routes name them.
        self.control_path = os.path.join(self.workdir, "%s-relay.sock" % self.prefix)
        argv = [self.relay_exe, "--control", self.control_path, "--seed", str(self.seed)]
        for i in range(1, n + 1):
            argv += ["--path", "%s=tun%d" % (self.path_name(i), i), "--up-from", "10.%d.%d.0/24" % (k, i)]
            if self.ipv6:
                argv += ["--up-from", "fd00:%d:%d::/64" % (k, i)]
        self.relay_proc = subprocess.Popen(["ip", "netns", "exec", r] + argv, stdout=subprocess.PIPE,
                                           stderr=subprocess.PIPE, text=True)
        cmds = {c: ["link set lo up"], r: ["link set lo up"], s: ["link set lo up"]}
        # Root namespace batch: the veth pairs, created straight into their namespaces.
        root = []
        for i in range(1, n + 1):
            root.append("link add c%d netns %s type veth peer name rc%d netns %s" % (i, c, i, r))
        root.append("link add rs netns %s type veth peer name s0 netns %s" % (r, s))
        root.append("link add m0 netns %s type veth peer name m1 netns %s" % (c, s))
        _sh(["ip", "-batch", "-"], input="\n".join(root) + "\n")
        for i in range(1, n + 1):
            cmds[c] += ["addr add %s/24 dev c%d" % (self.client_address(i), i), "link set c%d up" % i,
                        "route add default via %s dev c%d table %d" % (self.relay_address(i), i, 100 + i),
                        "rule add from %s lookup %d pref %d" % (self.client_address(i), 100 + i, 1000 + i)]
            cmds[r] += ["addr add %s/24 dev rc%d" % (self.relay_address(i), i), "link set rc%d up" % i]
        if self.ipv6:
            for i in range(1, n + 1):
                cmds[c] += ["-6 addr add %s/64 dev c%d nodad" % (self.client_address6(i), i),
                            "-6 route add default via %s dev c%d table %d" % (self.relay_address6(i), i, 100 + i),
                            "-6 rule add from %s lookup %d pref %d" % (self.client_address6(i), 100 + i, 1000 + i)]
                # The relay's veths get a link-local address by hand (addr_gen_mode 1 there):
                # neighbour solicitations need one as their source.
                cmds[r] += ["-6 addr add %s/64 dev rc%d nodad" % (self.relay_address6(i), i),
                            "-6 addr add fe80::1/64 dev rc%d nodad" % i]
            cmds[c] += ["-6 route add fd00:%d:100::/64 via %s dev c1" % (k, self.relay_address6(1))]
            cmds[r] += ["-6 addr add %s/64 dev rs nodad" % self.server_gateway6, "-6 addr add fe80::1/64 dev rs nodad"]
            if self.server_mode == "kernel":
                cmds[s] += ["-6 addr add %s/64 dev s0 nodad" % self.server_address6,
                            "-6 route add default via %s dev s0" % self.server_gateway6]
        # An unbound client socket to the server leaves by path 1.
        cmds[c] += ["route add 10.%d.100.0/24 via %s dev c1" % (k, self.relay_address(1)),
                    "addr add %s/24 dev m0" % self.management_client, "link set m0 up"]
        cmds[r] += ["addr add %s/24 dev rs" % self.server_gateway, "link set rs up"]
        cmds[s] += ["addr add %s/24 dev m1" % self.management_server, "link set m1 up", "link set s0 up"]
        if self.server_mode == "kernel":
            cmds[s] += ["addr add %s/24 dev s0" % self.server_address,
                        "route add default via %s dev s0" % self.server_gateway]
        for ns in (c, s):
            _batch(ns, cmds[ns])
        _batch(r, cmds[r])
        line = self.relay_proc.stdout.readline()
        if line.strip() != "kwik-relay: ready":
            self.relay_proc.wait(timeout=10)
            raise RuntimeError("kwik-relay did not start: %r %s" % (line, self.relay_proc.stderr.read().strip()))
        self.relay = relay_control(self.control_path)
        # Policy routing through each path's TUN device, both ways; what the relay writes back
        # arrives with iif tunN and follows the main table (no loop).
        rules = []
        for i in range(1, n + 1):
            rules += ["route add default dev tun%d table %d" % (i, 100 + i),
                      "rule add iif rc%d lookup %d pref %d" % (i, 100 + i, 1000 + i),
                      "rule add iif rs to 10.%d.%d.0/24 lookup %d pref %d" % (k, i, 100 + i, 2000 + i)]
            if self.ipv6:
                rules += ["-6 route add default dev tun%d table %d" % (i, 100 + i),
                          "-6 rule add iif rc%d lookup %d pref %d" % (i, 100 + i, 1000 + i),
                          "-6 rule add iif rs to fd00:%d:%d::/64 lookup %d pref %d" % (k, i, 100 + i, 2000 + i)]
        _batch(r, rules)
        if self.rates is not None:
            for i in range(1, n + 1):
                for d in ("up", "down"):
                    mbit = self.rates if not isinstance(self.rates, dict) else self.rates.get((i, d))
                    if mbit is not None:
                        self.set_rate(i, d, mbit)

    def destroy(self):
        """Stops the relay and removes the namespaces (their devices go with them). Idempotent."""
        if self.relay is not None:
            self.relay.close()
            self.relay = None
        if self.relay_proc is not None:
            if self.relay_proc.poll() is None:
                self.relay_proc.terminate()
                try:
                    self.relay_proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    self.relay_proc.kill()
                    self.relay_proc.wait()
            for f in (self.relay_proc.stdout, self.relay_proc.stderr):
                f.close()
            self.relay_proc = None
        for ns in reversed(self._created):
            _delete_namespace(ns)
        self._created = []
        if os.path.exists(getattr(self, "control_path", "")):
            os.unlink(self.control_path)
        if self in _live:
            _live.remove(self)

    def exists(self):
        """Which of this topology's namespaces exist now."""
        return [ns for ns in (self.client_ns, self.relay_ns, self.server_ns) if os.path.exists("/run/netns/" + ns)]

    # ---- running things ----
    def run_in(self, ns, argv, timeout=60, check=False, **kw):
        """subprocess.run of argv in namespace ns (captured text output unless kw says otherwise)."""
        kw.setdefault("capture_output", True)
        kw.setdefault("text", True)
        return subprocess.run(["ip", "netns", "exec", ns] + list(argv), timeout=timeout, check=check, **kw)

    def popen_in(self, ns, argv, **kw):
        return subprocess.Popen(["ip", "netns", "exec", ns] + list(argv), **kw)

    # ---- impairments ----
    def set_rate(self, path, direction, mbit):
        """tc tbf on the sending veth of path's direction (up: client's ci, down: relay's rci);
        mbit None removes the limit."""
        ns, dev = (self.client_ns, "c%d" % path) if direction == "up" else (self.relay_ns, "rc%d" % path)
        if direction not in ("up", "down"):
            raise ValueError("direction: %r is not up or down" % direction)
        if mbit is None:
            _sh(["ip", "netns", "exec", ns, "tc", "qdisc", "del", "dev", dev, "root"], check=False)
            return
        if not mbit > 0:
            raise ValueError("mbit: %r is not > 0" % mbit)
        # 20 ms of tokens (at least 16 KB, two 64 KB GSO segments never arrive here: the TUN
        # device has no offloads) and 100 ms of queue.
        burst = max(16 * 1024, int(mbit * 1e6 / 8 * 0.02))
        _sh(["ip", "netns", "exec", ns, "tc", "qdisc", "replace", "dev", dev, "root", "tbf", "rate",
             "%gmbit" % mbit, "burst", str(burst), "latency", "100ms"])

    def attach_tap(self, tap):
        """For kwikd on net_tap in the server namespace: bridges its TAP device tap with s0. DPDK's
        tap PMD gives the kernel side of its device the PMD's own MAC address (SIOCSIFHWADDR when
        it creates it); as a bridge port that address becomes a local entry of the bridge's FDB,
        and every unicast frame to kwikd then goes up to the namespace's stack (kbr0, no address)
        instead of out of the TAP device: ARP still resolves (its requests are broadcast) but
        no ping or Kwik packet reaches kwikd. So the TAP device first takes another address, the
        PMD's with the last bit of its last byte flipped (still unicast, locally administered).
        Call it again after every kwikd start: a restarted kwikd makes a new TAP device."""
        link = json.loads(_sh(["ip", "-n", self.server_ns, "-j", "link", "show", "dev", tap]).stdout)[0]
        octets = link["address"].split(":")
        octets[5] = "%02x" % (int(octets[5], 16) ^ 0x01)
        cmds = [] if self._has_bridge() else ["link add kbr0 type bridge", "link set s0 master kbr0", "link set kbr0 up"]
        _batch(self.server_ns, cmds + ["link set %s address %s" % (tap, ":".join(octets)),
                                       "link set %s master kbr0" % tap, "link set %s up" % tap])

    def _has_bridge(self):
        return _sh(["ip", "-n", self.server_ns, "link", "show", "dev", "kbr0"], check=False).returncode == 0



if __name__ == "__main__":
    # For trying things by hand (README): sweep; up KWIK_RELAY [PATHS] builds one and keeps it
    # until Ctrl-C; relay SOCKET COMMAND... sends one control command and prints the answer.
    if len(sys.argv) >= 2 and sys.argv[1] == "sweep":
        print("removed: %s" % " ".join(sweep()))
    elif len(sys.argv) >= 3 and sys.argv[1] == "up":
        with topology(sys.argv[2], paths=int(sys.argv[3]) if len(sys.argv) > 3 else 3) as t:
            print("client %s, relay %s, server %s; relay control %s; server %s; Ctrl-C removes them" %
                  (t.client_ns, t.relay_ns, t.server_ns, t.control_path, t.server_address), flush=True)
            try:
                while True:
                    time.sleep(3600)
            except KeyboardInterrupt:
                pass
    elif len(sys.argv) >= 4 and sys.argv[1] == "relay":
        answer = relay_control(sys.argv[2]).command(" ".join(sys.argv[3:]))
        print(json.dumps(answer, indent=1))
        sys.exit(0 if answer.get("ok") else 1)
    else:
        print("usage: netns_topology.py sweep | up KWIK_RELAY [PATHS] | relay SOCKET COMMAND...", file=sys.stderr)
        sys.exit(2)
