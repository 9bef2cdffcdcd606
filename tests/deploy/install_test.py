#!/usr/bin/env python3
# meson install into a DESTDIR, then checks of what landed there:
#   tree     every file the appliance installs, at its path with its mode, and nothing outside
#            the places the layout names
#   units    systemd-analyze verify --root on the installed units (ExecStart resolved inside the
#            staged tree, which gets the host's own units for the targets they order against),
#            systemd-analyze security --offline with a highest exposure per unit, and the lines
#            the layout depends on
#   system   sysusers.d and tmpfiles.d files applied to a scratch root by systemd-sysusers and
#            systemd-tmpfiles (user/group kwik, /run/dpdk)
#   samples  the installed /etc/kwik samples checked by the binaries that read them: kwikd
#            --check-config (the effective values), kwik-cp --check-config (refused until the
#            operator secret is set, then accepted), kwikctl reading kwikctl.toml
#   install_test.py SOURCE_DIR BUILD_DIR {tree|units|system|samples}
import grp
import os
import re
import shutil
import stat
import subprocess
import sys
import tempfile
import tomllib

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from checklist import checklist  # noqa: E402

SOURCE, BUILD, WHICH = sys.argv[1], sys.argv[2], sys.argv[3]
SKIP = 77
UNIT_DIR = "lib/systemd/system"

# path in the DESTDIR -> mode
EXPECTED = {
    "usr/sbin/kwikd": 0o755,
    "usr/sbin/kwik-cp": 0o755,
    "usr/sbin/kwik-prepare": 0o755,
    "usr/sbin/kwik-xdp": 0o755,
    "usr/lib/kwik/kwik_xdp.o": 0o644,
    "usr/share/doc/kwik/DEPLOY.md": 0o644,
    "usr/bin/kwikctl": 0o755,
    "usr/bin/kwikd-cmd": 0o755,
    "usr/bin/kwik-pcapgen": 0o755,
    "usr/bin/kwik-dump": 0o755,
    "usr/bin/kwik-peer": 0o755,
    "usr/bin/kwik-gen": 0o755,
    "etc/kwik/kwikd.toml": 0o644,
    "etc/kwik/kwik-cp.toml": 0o640,
    "etc/kwik/kwikctl.toml": 0o644,
    "etc/modules-load.d/kwik.conf": 0o644,
    f"{UNIT_DIR}/kwikd.service": 0o644,
    f"{UNIT_DIR}/kwik-cp.service": 0o644,
    f"{UNIT_DIR}/kwik-prepare.service": 0o644,
    "usr/lib/sysusers.d/kwik.conf": 0o644,
    "usr/lib/tmpfiles.d/kwik.conf": 0o644,
}
# Other files may be installed (more tools, the XDP object, docs) only under these.
ALLOWED_PREFIXES = ("usr/bin/", "usr/sbin/", "usr/lib/kwik/", "usr/share/doc/kwik/", "etc/kwik/")
# Highest `systemd-analyze security --offline` exposure per unit (0 best, 10 worst).
MAX_EXPOSURE = {"kwik-cp.service": 2.0, "kwikd.service": 4.5, "kwik-prepare.service": 4.5}


def install(dest):
    r = subprocess.run(["meson", "install", "-C", BUILD, "--no-rebuild", "--quiet", "--destdir", dest],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if r.returncode != 0:
        sys.exit(f"FAIL meson install --destdir {dest}:\n{r.stdout}")


def files_under(root):
    out = {}
    for d, _, names in os.walk(root):
        for n in names:
            p = os.path.join(d, n)
            out[os.path.relpath(p, root)] = stat.S_IMODE(os.lstat(p).st_mode)
    return out


def check_tree(dest, c):
    found = files_under(dest)
    for path, mode in EXPECTED.items():
        if path not in found:
            c.expect(False, f"{path} installed")
        else:
            c.expect(found[path] == mode, f"{path} mode {mode:04o}", f"found {found[path]:04o}")
    stray = sorted(p for p in found if p not in EXPECTED and not p.startswith(ALLOWED_PREFIXES))
    c.expect(not stray, "nothing installed outside the layout", "\n".join(stray))
    # Executables in the bin directories are executables (ELF or a script with a shebang).
    for p in sorted(found):
        if p.startswith(("usr/bin/", "usr/sbin/")):
            with open(os.path.join(dest, p), "rb") as f:
                head = f.read(4)
            if not (head == b"\x7fELF" or head[:2] == b"#!") or not found[p] & 0o111:
                c.expect(False, f"{p} is an executable")
    with open(os.path.join(dest, "usr/sbin/kwik-prepare")) as f:
        c.expect(f.readline().strip() == "#!/usr/bin/python3", "kwik-prepare runs with Debian's python3")


def unit_text(dest, unit):
    with open(os.path.join(dest, UNIT_DIR, unit)) as f:
        return f.read()


def check_units(dest, c):
    # The staged tree plus the host's own units (sysinit.target, network-pre.target, ...): verify
    # then resolves every unit name and ExecStart inside the staged tree (--root).
    subprocess.run(["cp", "-rn", "/lib/systemd/system/.", os.path.join(dest, UNIT_DIR) + "/"], check=True)
    units = ["kwik-prepare.service", "kwikd.service", "kwik-cp.service"]
    r = subprocess.run(["systemd-analyze", "verify", f"--root={dest}"] + units,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    c.expect(r.returncode == 0 and r.stdout.strip() == "", "systemd-analyze verify --root: no complaint",
             r.stdout)
    # A unit whose ExecStart is missing from the tree must fail the same verification.
    os.rename(os.path.join(dest, "usr/sbin/kwik-cp"), os.path.join(dest, "usr/sbin/kwik-cp.away"))
    r = subprocess.run(["systemd-analyze", "verify", f"--root={dest}", "kwik-cp.service"],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    os.rename(os.path.join(dest, "usr/sbin/kwik-cp.away"), os.path.join(dest, "usr/sbin/kwik-cp"))
    c.expect(r.returncode != 0 and "/usr/sbin/kwik-cp" in r.stdout,
             "verify --root fails when an ExecStart binary is missing from the tree", r.stdout)
    for unit in units:
        r = subprocess.run(["systemd-analyze", "security", "--offline=true", f"--root={dest}", unit],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        m = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", r.stdout)
        if not c.expect(m is not None, f"{unit}: security --offline gives an exposure", r.stdout[-2000:]):
            continue
        level = float(m.group(1))
        c.expect(level <= MAX_EXPOSURE[unit], f"{unit}: exposure {level} <= {MAX_EXPOSURE[unit]}")

    kwikd = unit_text(dest, "kwikd.service")
    cp = unit_text(dest, "kwik-cp.service")
    prep = unit_text(dest, "kwik-prepare.service")
    wanted = [
        (kwikd, "kwikd.service", ["Type=notify", "ExecStart=/usr/sbin/kwikd --config /etc/kwik/kwikd.toml",
                                  "Requires=kwik-prepare.service", "After=kwik-prepare.service network-pre.target",
                                  "Group=kwik", "RuntimeDirectory=kwik", "RuntimeDirectoryMode=0750",
                                  "RuntimeDirectoryPreserve=yes", "ReadWritePaths=/run/dpdk -/dev/hugepages -/srv/kwik",
                                  "LimitMEMLOCK=infinity", "Restart=on-failure", "WatchdogSec=10s",
                                  "NoNewPrivileges=yes", "ProtectSystem=strict", "SyslogIdentifier=kwikd"]),
        (cp, "kwik-cp.service", ["Type=notify", "ExecStart=/usr/sbin/kwik-cp --config /etc/kwik/kwik-cp.toml",
                                 "User=kwik", "Group=kwik", "StateDirectory=kwik", "StateDirectoryMode=0700",
                                 "Wants=kwikd.service", "After=kwikd.service network-online.target", "ReadWritePaths=/run/kwik",
                                 "CapabilityBoundingSet=", "PrivateDevices=yes", "SystemCallFilter=@system-service",
                                 "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX", "SyslogIdentifier=kwik-cp"]),
        (prep, "kwik-prepare.service", ["Type=oneshot", "RemainAfterExit=yes",
                                        "ExecStart=/usr/sbin/kwik-prepare --config /etc/kwik/kwikd.toml "
                                        "--kwikd /usr/sbin/kwikd",
                                        "Before=network-pre.target kwikd.service shutdown.target",
                                        "WantedBy=multi-user.target"]),
    ]
    for text, unit, lines in wanted:
        have = set(text.splitlines())
        missing = [l for l in lines if l not in have]
        c.expect(not missing, f"{unit}: the lines the layout depends on", "missing: " + "; ".join(missing))
    namespaced = [o for o in ("ProtectSystem=", "ProtectHome=", "PrivateTmp=", "PrivateDevices=", "PrivateMounts=",
                              "ProtectKernelTunables=", "ProtectKernelModules=", "ProtectKernelLogs=",
                              "ProtectControlGroups=", "ProtectHostname=", "ProtectProc=", "ReadWritePaths=",
                              "ReadOnlyPaths=", "InaccessiblePaths=", "TemporaryFileSystem=", "BindPaths=")
                  if re.search(rf"^{o}", prep, re.M)]
    c.expect(not namespaced, "kwik-prepare.service has no mount namespace (its hugetlbfs mount must reach the host)",
             " ".join(namespaced))
    caps = re.search(r"^CapabilityBoundingSet=(.*)$", kwikd, re.M).group(1).split()
    c.expect(caps == ["CAP_IPC_LOCK", "CAP_SYS_ADMIN", "CAP_SYS_RAWIO", "CAP_NET_ADMIN", "CAP_NET_RAW",
                      "CAP_BPF", "CAP_DAC_OVERRIDE"], "kwikd.service: the capability bounding set", " ".join(caps))
    for cap in caps:
        c.expect(re.search(rf"^#\s+{cap}\s+\S", kwikd, re.M) is not None, f"kwikd.service: {cap} says what it is for")
    c.expect(re.search(r"@[A-Z_]+@", kwikd + cp + prep) is None, "no @VARIABLE@ left unsubstituted")


def check_system(dest, c):
    with tempfile.TemporaryDirectory(prefix="kwik-sysroot-") as root:
        os.makedirs(os.path.join(root, "etc"))
        os.makedirs(os.path.join(root, "usr/lib/sysusers.d"))
        shutil.copy(os.path.join(dest, "usr/lib/sysusers.d/kwik.conf"), os.path.join(root, "usr/lib/sysusers.d"))
        r = subprocess.run(["systemd-sysusers", f"--root={root}", "kwik.conf"], stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True)
        c.expect(r.returncode == 0, "systemd-sysusers applies kwik.conf", r.stdout)
        passwd = open(os.path.join(root, "etc/passwd")).read() if os.path.exists(os.path.join(root, "etc/passwd")) else ""
        group = open(os.path.join(root, "etc/group")).read() if os.path.exists(os.path.join(root, "etc/group")) else ""
        user = [l.split(":") for l in passwd.splitlines() if l.startswith("kwik:")]
        grp = [l.split(":") for l in group.splitlines() if l.startswith("kwik:")]
        ok = len(user) == 1 and len(grp) == 1 and user[0][3] == grp[0][2] and 0 < int(user[0][2]) < 1000 \
            and user[0][5] == "/var/lib/kwik" and user[0][6].endswith("nologin")
        c.expect(ok, "user kwik: a system user in group kwik, home /var/lib/kwik, no login shell",
                 f"passwd {user}, group {grp}")
        # tmpfiles in the same root, where group kwik now exists.
        r = subprocess.run(["systemd-tmpfiles", f"--root={root}", "--create",
                            os.path.join(dest, "usr/lib/tmpfiles.d/kwik.conf")],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        c.expect(r.returncode == 0, "systemd-tmpfiles applies kwik.conf", r.stdout)
        gid = int(grp[0][2]) if grp else -1
        for d, mode, group_id in (("run/dpdk", 0o700, 0), ("run/kwik", 0o750, gid)):
            p = os.path.join(root, d)
            st = os.stat(p) if os.path.isdir(p) else None
            c.expect(st is not None and stat.S_IMODE(st.st_mode) == mode and st.st_uid == 0 and st.st_gid == group_id,
                     f"systemd-tmpfiles creates /{d} {mode:04o} root:{'kwik' if group_id else 'root'}",
                     st and (oct(st.st_mode), st.st_uid, st.st_gid))
    with open(os.path.join(dest, "etc/modules-load.d/kwik.conf")) as f:
        mods = [l.strip() for l in f if l.strip() and not l.startswith("#")]
    c.expect(mods == ["vfio-pci"], "modules-load.d/kwik.conf loads vfio-pci", repr(mods))


def run(argv, env=None):
    return subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=60, env=env)


def check_samples(dest, c):
    kwikd = os.path.join(BUILD, "dataplane", "kwikd")
    cp = os.path.join(BUILD, "controlplane", "server", "kwik_cp", "kwik-cp")
    ctl = os.path.join(BUILD, "controlplane", "kwikctl", "kwikctl")
    conf = os.path.join(dest, "etc", "kwik")
    sample = os.path.join(conf, "kwikd.toml")
    # The file as written: the regions in kwikd.service's /run/kwik, group kwik.
    with open(sample, "rb") as f:
        raw = tomllib.load(f)["kwikd"]
    c.expect(raw.get("shm_directory") == "/run/kwik" and raw.get("shm_group") == "kwik",
             'kwikd.toml: shm_directory = "/run/kwik", shm_group = "kwik"', raw)
    # kwikd checks that the directory and the group exist; this machine need not have them (no
    # package installed, no systemd): they are overridden with ones it has, the rest is the sample.
    with tempfile.TemporaryDirectory(prefix="kwik-shm-") as shm:
        r = run([kwikd, "--config", sample, "--set", f"kwikd.shm_directory={shm}", "--set",
                 f"kwikd.shm_group={grp.getgrgid(os.getgid()).gr_name}", "--check-config"])
    pending = [k for k in ("shm_directory", "shm_group") if f"kwikd.{k}: unknown key" in r.stderr]
    if r.returncode != 0 and pending and r.stderr.count("unknown key") == len(pending):
        print(f"SKIP: this kwikd does not know [kwikd] {', '.join(pending)} yet (branch runtime); "
              f"its answer:\n  {r.stderr.strip()}")
        return SKIP
    if c.expect(r.returncode == 0, "kwikd --check-config accepts the installed kwikd.toml", r.stderr):
        effective = r.stdout
        for line in ['hugepages = true', 'memory_mb = 2048', 'main_lcore = 1', 'worker_lcores = [2, 3]',
                     'shm_mode = "0660"', 'poll_mode = "busy"', 'device = "0000:3b:00.0"',
                     'device = "net_tap0,iface=kwik0"']:
            c.expect(line in effective.splitlines(), f"effective kwikd configuration: {line}")

    with tempfile.TemporaryDirectory(prefix="kwik-samples-") as tmp:
        sample = open(os.path.join(conf, "kwik-cp.toml")).read()
        state = os.path.join(tmp, "state")
        os.makedirs(state)
        sample = sample.replace("/var/lib/kwik/", state + "/")
        unset = os.path.join(tmp, "kwik-cp.toml")
        open(unset, "w").write(sample)
        r = run([cp, "--check-config", unset])
        c.expect(r.returncode != 0 and "auth.key[0].secret" in r.stdout + r.stderr,
                 "kwik-cp refuses the sample until the operator secret is set, naming auth.key[0].secret",
                 r.stdout + r.stderr)
        filled = os.path.join(tmp, "kwik-cp-filled.toml")
        open(filled, "w").write(sample.replace('"KWIK_OPERATOR_SECRET"', '"' + "5c" * 32 + '"'))
        r = run([cp, "--check-config", filled])
        c.expect(r.returncode == 0, "kwik-cp --check-config accepts the sample with a secret (as postinst writes it)",
                 r.stdout + r.stderr)

        # kwikctl reads every key of the sample: without a pin it stops at the pin; with one, at
        # the secret file the sample names.
        env = {k: v for k, v in os.environ.items() if not k.startswith("KWIKCTL_")}
        ctl_conf = os.path.join(conf, "kwikctl.toml")
        r = run([ctl, "--config", ctl_conf, "status"], env=env)
        c.expect(r.returncode == 2 and "no server pin" in r.stderr, "kwikctl reads kwikctl.toml (no pin yet)",
                 r.stderr)
        env["KWIKCTL_PIN"] = "ab" * 32
        r = run([ctl, "--config", ctl_conf, "status"], env=env)
        c.expect(r.returncode != 0 and "/etc/kwik/operator.key" in r.stderr,
                 "kwikctl.toml's secret_file is /etc/kwik/operator.key", r.stderr)
    return 0


def main():
    with tempfile.TemporaryDirectory(prefix="kwik-destdir-") as dest:
        install(dest)
        c = checklist()
        rc = {"tree": check_tree, "units": check_units, "system": check_system, "samples": check_samples}[WHICH](dest, c)
        if rc == SKIP:
            return SKIP
        print(f"{c.failures} failed")
        return 1 if c.failures else 0


if __name__ == "__main__":
    sys.exit(main())
