"""The appliance as the multipath end-to-end tests and the README's demo run it: kwikd on one
port in the server namespace (net_af_packet on the namespace's veth, or net_tap), kwik-cp next
to it serving KCP over TLS on the management address, kwikctl with an operator key, and
kwik-peer clients in the client namespace. Every process is started with `ip netns exec`;
stop() ends them (SIGTERM, then SIGKILL) and is safe to call twice. Standard library only.

    app = appliance(build, work, ns="kwmp-s", device="net_af_packet0,iface=s0",
                    address="10.9.100.1", prefix=24, gateway="10.9.100.2",
                    kcp_listen="10.9.200.1", endpoint="echo")
    app.start()
    result = app.peer(client_ns, ["--path", "10.9.1.2=10.9.100.1:7707", ...], "--mode", "echo", ...)
"""
import json
import os
import signal
import subprocess
import time

CLIENT_SECRET = "6b" * 32
OPS_SECRET = "5e" * 32


def wait_for(what, seconds=10.0, step=0.1):
    """Polls what() until it returns something true or the time is up; returns its last value."""
    deadline = time.time() + seconds
    while True:
        v = what()
        if v or time.time() >= deadline:
            return v
        time.sleep(step)


def table(answer, name):
    for t in answer.get("tables", []):
        if t["name"] == name:
            return t["rows"]
    return []


class tools:
    """Where the built executables are, from the build directory."""

    def __init__(self, build):
        self.kwikd = os.path.join(build, "dataplane", "kwikd")
        self.kwik_cp = os.path.join(build, "controlplane", "server", "kwik_cp", "kwik-cp")
        self.kwikctl = os.path.join(build, "controlplane", "kwikctl", "kwikctl")
        self.kwikd_cmd = os.path.join(build, "tools", "kwikd-cmd", "kwikd-cmd")
        self.kwik_peer = os.path.join(build, "tools", "peer", "kwik-peer")
        self.kwik_relay = os.path.join(build, "tests", "e2e", "relay", "kwik-relay")
        self.kwik_pcapgen = os.path.join(build, "tools", "pcapgen", "kwik-pcapgen")

    def missing(self):
        return [p for p in (self.kwikd, self.kwik_cp, self.kwikctl, self.kwikd_cmd, self.kwik_peer)
                if not os.access(p, os.X_OK)]


def _stop(proc, seconds=10):
    if proc is None or proc.poll() is not None:
        return proc.returncode if proc is not None else None
    proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(seconds)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait(5)


class appliance:
    def __init__(self, build, work, ns, device, address, prefix, gateway, kcp_listen, endpoint="echo",
                 endpoint_directory=None, name=None, poll_mode="adaptive",
                 on_kwikd_start=None):
        self.t = tools(build)
        self.work, self.ns, self.device = work, ns, device
        self.address, self.prefix, self.gateway, self.kcp_listen = address, prefix, gateway, kcp_listen
        self.endpoint, self.endpoint_directory = endpoint, endpoint_directory
        self.name = name or "kwmp%d" % os.getpid()
        self.poll_mode = poll_mode
        # Called after each kwikd start, restarts included (net_tap: bridge the new TAP device).
        self.on_kwikd_start = on_kwikd_start
        self.kwikd_proc = self.cp_proc = None
        self.kcp_port = None
        self.pin = None
        self.kwikd_starts = 0
        self.cp_starts = 0
        os.makedirs(work, exist_ok=True)
        self.client_key_file = self._secret("client.key", CLIENT_SECRET)
        self.ops_key_file = self._secret("ops.key", OPS_SECRET)

    def _secret(self, name, value):
        path = os.path.join(self.work, name)
        with open(path, "w") as f:
            f.write(value + "\n")
        os.chmod(path, 0o600)
        return path

    def _in_ns(self, argv):
        return ["ip", "netns", "exec", self.ns] + list(argv)

    # ---- kwikd ----
    def kwikd_config(self):
        path = os.path.join(self.work, "kwikd.toml")
        gateway = 'gateway = "%s"\n' % self.gateway if self.gateway else ""
        with open(path, "w") as f:
            f.write('[kwikd]\nname = "%s"\nworker_lcores = [1]\nstats_interval_ms = 100\nhugepages = false\n'
                    'memory_mb = 512\npoll_mode = "%s"\n\n[[port]]\nname = "p0"\ndevice = "%s"\n'
                    'addresses = ["%s/%d"]\nkwik_ports = [7707]\n%s'
                    % (self.name, self.poll_mode, self.device, self.address, self.prefix, gateway))
        return path

    def start_kwikd(self):
        config = self.kwikd_config()
        self.kwikd_starts += 1
        log = open(os.path.join(self.work, "kwikd-%d.log" % self.kwikd_starts), "w")
        self.kwikd_proc = subprocess.Popen(self._in_ns([self.t.kwikd, "--config", config]), stdout=log,
                                           stderr=subprocess.STDOUT)
        if not wait_for(lambda: self.kwikd_status() is not None or self.kwikd_proc.poll() is not None, 60):
            raise RuntimeError("kwikd did not come up; log %s" % log.name)
        if self.kwikd_proc.poll() is not None:
            raise RuntimeError("kwikd exited with %s: %s" % (self.kwikd_proc.returncode, open(log.name).read()[-2000:]))
        if self.on_kwikd_start is not None:
            self.on_kwikd_start()

    def kwikd_status(self):
        """kwikd-cmd status as a dict, or None while kwikd's rings do not answer."""
        try:
            r = subprocess.run([self.t.kwikd_cmd, "--name", self.name, "--timeout", "2", "status"],
                               capture_output=True, text=True, timeout=30)
        except subprocess.TimeoutExpired:
            return None
        lines = [json.loads(x) for x in r.stdout.splitlines() if x.strip().startswith("{")]
        return lines[0] if r.returncode == 0 and lines else None

    def stop_kwikd(self):
        return _stop(self.kwikd_proc)

    # ---- kwik-cp ----
    def cp_config(self):
        path = os.path.join(self.work, "kwik-cp.toml")
        directory = 'endpoint_directory = "%s"\n' % self.endpoint_directory if self.endpoint_directory else ""
        with open(path, "w") as f:
            f.write('[kwik_cp]\nserver_id = "cp-%s"\nlisten = "%s:%d"\nkwikd_region = "%s"\nendpoint = "%s"\n%s\n'
                    '[tls]\ncertificate = "%s"\nprivate_key = "%s"\n'
                    '[[auth.key]]\nkey_id = "ops"\nsecret = "%s"\nroles = ["operator"]\n'
                    '[[auth.key]]\nkey_id = "peer"\nsecret = "%s"\nroles = ["client"]\n'
                    % (self.name, self.kcp_listen, self.kcp_port or 0, self.name, self.endpoint, directory,
                       os.path.join(self.work, "cp.crt"), os.path.join(self.work, "cp.key"),
                       OPS_SECRET, CLIENT_SECRET))
        return path

    def start_cp(self):
        """Starts kwik-cp (on the same port again after a restart) and waits until it holds
        kwikd's rings and adopted its state."""
        config = self.cp_config()
        self.cp_starts += 1
        log = open(os.path.join(self.work, "kwik-cp-%d.log" % self.cp_starts), "w")
        self.cp_proc = subprocess.Popen(self._in_ns([self.t.kwik_cp, "--config", config]), stdout=subprocess.PIPE,
                                        stderr=log, text=True)
        line = self.cp_proc.stdout.readline()
        if not line.startswith("kwik-cp: listening on port "):
            raise RuntimeError("kwik-cp did not start: %r; log %s" % (line, log.name))
        self.kcp_port = int(line.rsplit(" ", 1)[1])
        if self.pin is None:
            r = subprocess.run([self.t.kwikctl, "pin", os.path.join(self.work, "cp.crt")], capture_output=True,
                               text=True, timeout=10)
            self.pin = r.stdout.strip()
        if not wait_for(self.cp_ready, 30):
            raise RuntimeError("kwik-cp did not adopt kwikd's state; log %s" % log.name)

    def cp_ready(self):
        rows = table(self.ctl_json("status"), "kwikd")
        return bool(rows and rows[0].get("attached") and rows[0].get("adopted"))

    def stop_cp(self):
        return _stop(self.cp_proc)

    def start(self):
        self.start_kwikd()
        self.start_cp()

    def stop(self):
        _stop(self.cp_proc)
        _stop(self.kwikd_proc)

    @property
    def kcp_address(self):
        return "%s:%d" % (self.kcp_listen, self.kcp_port)

    # ---- kwikctl ----
    def ctl(self, *args, timeout=60):
        """(exit status, stdout, stderr) of kwikctl run in the server namespace."""
        argv = [self.t.kwikctl, "--server", self.kcp_address, "--pin", self.pin, "--key-id", "ops",
                "--secret-file", self.ops_key_file, "--timeout-ms", "10000"] + list(args)
        r = subprocess.run(self._in_ns(argv), capture_output=True, text=True, timeout=timeout)
        return r.returncode, r.stdout, r.stderr

    def popen_ctl(self, *args):
        """kwikctl in the background (for watch): its stdout is a pipe of text lines."""
        argv = [self.t.kwikctl, "--server", self.kcp_address, "--pin", self.pin, "--key-id", "ops",
                "--secret-file", self.ops_key_file, "--timeout-ms", "10000"] + list(args)
        return subprocess.Popen(self._in_ns(argv), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

    def ctl_json(self, *args):
        """kwikctl's JSON answer, {} when it failed."""
        rc, out, _ = self.ctl("--json", *args)
        if rc != 0:
            return {}
        try:
            return json.loads(out)
        except ValueError:
            return {}

    def drops(self):
        """kwikd's drop counters by reason (kwikctl show counters)."""
        return {r["reason"]: r["packets"] for r in table(self.ctl_json("show", "counters"), "drops")}

    # ---- kwik-peer ----
    def peer_argv(self, client_ns, paths, *args, standby_paths=(), json_file=None):
        """kwik-peer client's command line for a transfer through this appliance. paths:
        client addresses (one path each, to kwikd's address and port 7707)."""
        argv = ["ip", "netns", "exec", client_ns, self.t.kwik_peer, "client", "--server", self.kcp_address,
                "--pin", self.pin, "--key-id", "peer", "--key-file", self.client_key_file, "--client-id",
                "e2e-peer"]
        for p in paths:
            argv += ["--path", "%s=%s:7707" % (p, self.address)]
        for p in standby_paths:
            argv += ["--standby-path", "%s=%s:7707" % (p, self.address)]
        if json_file:
            argv += ["--json", json_file]
        return argv + list(args)


def run_peer(argv, json_file, timeout, log_file=None):
    """Runs kwik-peer to its end: (exit status, its JSON summary or {}, stderr text)."""
    r = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    if log_file:
        with open(log_file, "w") as f:
            f.write(r.stdout + "\n--- stderr ---\n" + r.stderr)
    summary = {}
    if os.path.exists(json_file):
        try:
            summary = json.load(open(json_file))
        except ValueError:
            pass
    return r.returncode, summary, r.stderr
