#!/usr/bin/env python3
# deploy/package/build-deb.sh from the build directory, then the .deb itself: control fields
# (Depends from dpkg-shlibdeps plus dpdk, python3, kmod, systemd), conffiles, md5sums against the
# files, the file list with owners and modes; then dpkg installs it into a scratch root
# (dpkg --root, maintainer scripts chrootless with DPKG_ROOT): user kwik created, the operator key
# generated and written into kwik-cp.toml, permissions set, units not enabled; remove, purge.
#   package_test.py SOURCE_DIR BUILD_DIR
import os
import re
import shutil
import stat
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from checklist import checklist  # noqa: E402

SOURCE, BUILD = sys.argv[1], sys.argv[2]
SKIP = 77
BUILD_DEB = os.path.join(SOURCE, "deploy", "package", "build-deb.sh")

CONFFILES = ["/etc/kwik/kwik-cp.toml", "/etc/kwik/kwikctl.toml", "/etc/kwik/kwikd.toml",
             "/etc/modules-load.d/kwik.conf"]
# path -> (mode string as dpkg-deb -c prints it)
MUST_HOLD = {
    "./usr/sbin/kwikd": "-rwxr-xr-x",
    "./usr/sbin/kwik-cp": "-rwxr-xr-x",
    "./usr/sbin/kwik-prepare": "-rwxr-xr-x",
    "./usr/bin/kwikctl": "-rwxr-xr-x",
    "./usr/bin/kwikd-cmd": "-rwxr-xr-x",
    "./etc/kwik/kwikd.toml": "-rw-r--r--",
    "./etc/kwik/kwik-cp.toml": "-rw-r-----",
    "./etc/kwik/kwikctl.toml": "-rw-r--r--",
    "./etc/modules-load.d/kwik.conf": "-rw-r--r--",
    "./lib/systemd/system/kwikd.service": "-rw-r--r--",
    "./lib/systemd/system/kwik-cp.service": "-rw-r--r--",
    "./lib/systemd/system/kwik-prepare.service": "-rw-r--r--",
    "./usr/lib/sysusers.d/kwik.conf": "-rw-r--r--",
    "./usr/lib/tmpfiles.d/kwik.conf": "-rw-r--r--",
}


def run(argv, **kw):
    return subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kw)


def dpkg_env(root):
    # dpkg --root runs maintainer scripts chrooted unless told otherwise; chrootless, they get
    # DPKG_ROOT and must honour it (ours do). PATH for the scripts' tools.
    env = dict(os.environ)
    env.setdefault("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
    return env


def main():
    for tool in ("dpkg-deb", "dpkg-shlibdeps", "dpkg"):
        if shutil.which(tool) is None:
            print(f"SKIP: {tool} is not installed (apt-get install dpkg-dev)")
            return SKIP
    c = checklist()
    with tempfile.TemporaryDirectory(prefix="kwik-deb-") as tmp:
        out = os.path.join(tmp, "out")
        r = run([BUILD_DEB, BUILD, out])
        if not c.expect(r.returncode == 0, "build-deb.sh builds the package", r.stdout):
            return 1
        deb = r.stdout.strip().splitlines()[-1]
        c.expect(re.fullmatch(r".*/kwik_\d+\.\d+\.\d+-1_[a-z0-9]+\.deb", deb) is not None,
                 "named kwik_<version>-1_<arch>.deb", deb)

        # ---- control
        fields = {}
        for line in run(["dpkg-deb", "-f", deb]).stdout.splitlines():
            if ":" in line and not line.startswith(" "):
                k, v = line.split(":", 1)
                fields[k] = v.strip()
        arch = run(["dpkg", "--print-architecture"]).stdout.strip()
        c.expect(fields.get("Package") == "kwik", "Package: kwik", fields.get("Package"))
        c.expect(fields.get("Architecture") == arch, f"Architecture: {arch}", fields.get("Architecture"))
        c.expect(int(fields.get("Installed-Size", "0")) > 1000, "Installed-Size in kB", fields.get("Installed-Size"))
        deps = [d.strip() for d in fields.get("Depends", "").split(",")]
        names = [d.split()[0] for d in deps if d]
        for need in ("libc6", "libstdc++6", "libssl3", "dpdk", "python3", "kmod", "systemd"):
            c.expect(need in names, f"Depends names {need}", fields.get("Depends"))
        c.expect(any(n.startswith("librte-") for n in names), "Depends has DPDK's libraries (dpkg-shlibdeps)",
                 fields.get("Depends"))
        c.expect("python3 (>= 3.11)" in deps, "Depends: python3 (>= 3.11) (tomllib)", fields.get("Depends"))
        abi = next((n[len("librte-eal"):] for n in names if re.fullmatch(r"librte-eal\d+", n)), None)
        for pmd in ("bus-pci", "bus-vdev", "mempool-ring", "net-ixgbe", "net-i40e", "net-ice", "net-af-xdp",
                    "net-tap"):
            c.expect(f"librte-{pmd}{abi}" in names, f"Depends names the plugin librte-{pmd}{abi}", fields.get("Depends"))
        recommends = [d.strip().split()[0] for d in fields.get("Recommends", "").split(",") if d.strip()]
        c.expect(f"librte-net-mlx5-{abi}" in recommends, f"Recommends librte-net-mlx5-{abi}", recommends)
        # Every package named exists in the archive this machine uses.
        unknown = [n for n in names + recommends
                   if f"Package: {n}\n" not in run(["apt-cache", "show", "--no-all-versions", n]).stdout]
        c.expect(not unknown, "apt-cache knows every Depends and Recommends package", unknown)

        # ---- control members
        ctl = os.path.join(tmp, "control")
        run(["dpkg-deb", "-e", deb, ctl])
        conffiles = open(os.path.join(ctl, "conffiles")).read().split()
        c.expect(sorted(conffiles) == CONFFILES, "conffiles: everything under /etc", conffiles)
        for script in ("postinst", "prerm", "postrm"):
            p = os.path.join(ctl, script)
            ok = os.path.exists(p) and stat.S_IMODE(os.stat(p).st_mode) == 0o755 and open(p).readline().startswith("#!")
            c.expect(ok, f"{script}: an executable script")
            c.expect(ok and run(["sh", "-n", p]).returncode == 0, f"{script}: sh -n passes")

        # ---- data: file list, owners, modes, md5sums
        listing = {}
        for line in run(["dpkg-deb", "-c", deb]).stdout.splitlines():
            f = line.split()
            listing[f[5]] = (f[0], f[1])
        for path, mode in MUST_HOLD.items():
            got = listing.get(path)
            c.expect(got == (mode, "root/root"), f"{path} {mode} root/root", got)
        stray = sorted(p for p in listing if not p.endswith("/") and
                       not p.startswith(("./usr/bin/", "./usr/sbin/", "./usr/lib/kwik/", "./usr/share/doc/kwik/",
                                         "./etc/kwik/", "./lib/systemd/system/kwik")) and p not in MUST_HOLD)
        c.expect(not stray, "no file outside the layout", stray)
        data = os.path.join(tmp, "data")
        run(["dpkg-deb", "-x", deb, data])
        md5 = run(["md5sum", "--check", "--strict", os.path.join(ctl, "md5sums")], cwd=data)
        c.expect(md5.returncode == 0, "md5sums match the files", md5.stdout[-2000:])
        listed = {l.split(None, 1)[1] for l in open(os.path.join(ctl, "md5sums")).read().splitlines()}
        files = {p[2:] for p, (m, _) in listing.items() if m.startswith("-")}
        c.expect(listed == {f for f in files if not ("/" + f) in CONFFILES},
                 "md5sums lists every file but the conffiles", sorted(listed ^ files))
        with open(os.path.join(data, "usr/sbin/kwikd"), "rb") as f:
            elf = f.read()
        c.expect(b".debug_info" not in elf, "binaries are stripped")

        # ---- install into a scratch root
        root = os.path.join(tmp, "root")
        admin = os.path.join(root, "var/lib/dpkg")
        for d in ("info", "updates", "triggers"):
            os.makedirs(os.path.join(admin, d))
        for f in ("status", "available"):
            open(os.path.join(admin, f), "w").close()
        os.makedirs(os.path.join(root, "etc"))
        dpkg = ["dpkg", f"--root={root}", "--force-script-chrootless", "--force-depends", "--force-not-root"]
        r = run(dpkg + ["--install", deb], env=dpkg_env(root))
        if not c.expect(r.returncode == 0, "dpkg --root --install", r.stdout):
            return 1
        status = run(["dpkg-query", f"--root={root}", "-W", "-f=${Status}", "kwik"]).stdout
        c.expect(status == "install ok installed", "dpkg sees kwik installed", status)
        group = [l.split(":") for l in open(os.path.join(root, "etc/group")).read().splitlines()
                 if l.startswith("kwik:")]
        passwd = [l.split(":") for l in open(os.path.join(root, "etc/passwd")).read().splitlines()
                  if l.startswith("kwik:")]
        c.expect(len(group) == 1 and len(passwd) == 1 and passwd[0][3] == group[0][2],
                 "postinst created user and group kwik", (passwd, group))
        gid = int(group[0][2]) if group else -1
        cp_conf = os.path.join(root, "etc/kwik/kwik-cp.toml")
        st = os.stat(cp_conf)
        c.expect(stat.S_IMODE(st.st_mode) == 0o640 and st.st_uid == 0 and st.st_gid == gid,
                 "kwik-cp.toml root:kwik 0640", (oct(st.st_mode), st.st_uid, st.st_gid))
        key_path = os.path.join(root, "etc/kwik/operator.key")
        key = open(key_path).read().strip() if os.path.exists(key_path) else ""
        c.expect(re.fullmatch(r"[0-9a-f]{64}", key) is not None, "operator.key: 64 hex digits", key)
        c.expect(stat.S_IMODE(os.stat(key_path).st_mode) == 0o600 if key else False, "operator.key 0600")
        text = open(cp_conf).read()
        c.expect(f'secret = "{key}"' in text and "KWIK_OPERATOR_SECRET" not in text,
                 "kwik-cp.toml holds the same secret as operator.key")
        wants = os.path.join(root, "etc/systemd/system/multi-user.target.wants")
        c.expect(not os.path.exists(wants) or not any(n.startswith("kwik") for n in os.listdir(wants)),
                 "no unit enabled by the installation")
        c.expect(os.access(os.path.join(root, "usr/sbin/kwikd"), os.X_OK), "kwikd installed under the root")

        # A reinstall (upgrade path) keeps the key and the secret.
        r = run(dpkg + ["--install", deb], env=dpkg_env(root))
        c.expect(r.returncode == 0 and open(key_path).read().strip() == key and f'secret = "{key}"' in open(cp_conf).read(),
                 "reinstalling keeps operator.key and kwik-cp.toml's secret", r.stdout)

        # State kwik-cp would have written, then remove and purge.
        os.makedirs(os.path.join(root, "var/lib/kwik"), exist_ok=True)
        open(os.path.join(root, "var/lib/kwik/cp.key"), "w").write("x")
        r = run(dpkg + ["--remove", "kwik"], env=dpkg_env(root))
        c.expect(r.returncode == 0 and not os.path.exists(os.path.join(root, "usr/sbin/kwikd"))
                 and os.path.exists(cp_conf) and os.path.exists(os.path.join(root, "var/lib/kwik/cp.key")),
                 "remove: binaries gone, configuration and state kept", r.stdout)
        r = run(dpkg + ["--purge", "kwik"], env=dpkg_env(root))
        c.expect(r.returncode == 0 and not os.path.exists(os.path.join(root, "etc/kwik"))
                 and not os.path.exists(os.path.join(root, "var/lib/kwik")),
                 "purge: /etc/kwik (with operator.key) and /var/lib/kwik gone", r.stdout)
    print(f"{c.failures} failed")
    return 1 if c.failures else 0


if __name__ == "__main__":
    sys.exit(main())
