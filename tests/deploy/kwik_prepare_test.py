#!/usr/bin/env python3
# deploy/kwik-prepare against prepared sysfs/procfs trees (--root, --dry-run): the exact command
# lines it prints and its exit status for NICs on a kernel driver, already on vfio-pci, on
# mlx5_core, AF_XDP interfaces, a missing device, an interface in use, hugepages short or already
# there, 1G pages the kernel lacks; then one real run on this machine that reserves 2M pages on
# node 0 through dpdk-hugepages.py and puts the previous count back.
#   kwik_prepare_test.py SOURCE_DIR BUILD_DIR [fake|real]
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile

SOURCE, BUILD = sys.argv[1], sys.argv[2]
WHICH = sys.argv[3] if len(sys.argv) > 3 else "fake"
PREPARE = os.path.join(SOURCE, "deploy", "kwik-prepare")
KWIKD = os.path.join(BUILD, "dataplane", "kwikd")
SKIP = 77

CONFIG = """
[kwikd]
name = "kwik-prep-test"
main_lcore = 1
worker_lcores = [2, 3]
{extra}
[[port]]
name = "p0"
device = "0000:3b:00.0"
addresses = ["192.0.2.10/24"]
[[port]]
name = "p1"
device = "0000:3b:00.1"
addresses = ["192.0.3.10/24"]
[[port]]
name = "p2"
device = "0000:5e:00.0"
addresses = ["192.0.4.10/24"]
[[port]]
name = "p3"
device = "net_af_xdp0,iface=ens7,xdp_prog={xdp_prog}"
addresses = ["192.0.5.10/24"]
[[port]]
name = "p4"
device = "net_ring0"
addresses = ["192.0.6.10/24"]
"""

# Devices of the default tree: (address, driver, numa_node, interfaces, iommu group?)
NICS = [
    ("0000:3b:00.0", "ixgbe", "1", ["ens1f0"], True),
    ("0000:3b:00.1", "vfio-pci", "1", [], True),
    ("0000:5e:00.0", "mlx5_core", "-1", ["ens2f0np0"], True),
]


def write(root, path, text):
    full = os.path.join(root, path.lstrip("/"))
    os.makedirs(os.path.dirname(full), exist_ok=True)
    with open(full, "w") as f:
        f.write(text)


def make_tree(root, nics=NICS, pages=(0, 0), page_dirs=("2048",), mounts="", vfio_loaded=False,
              up_ifaces=(), routes_v4=(), routes_v6=(), af_xdp=True, noiommu=False):
    for node, have in enumerate(pages):
        for kb in page_dirs:
            write(root, f"/sys/devices/system/node/node{node}/hugepages/hugepages-{kb}kB/nr_hugepages", f"{have}\n")
    for cpu in range(4):
        os.makedirs(os.path.join(root, f"sys/devices/system/cpu/cpu{cpu}/node0"), exist_ok=True)
    for addr, driver, numa, ifaces, group in nics:
        dev = f"/sys/bus/pci/devices/{addr}"
        write(root, dev + "/numa_node", numa + "\n")
        os.makedirs(os.path.join(root, f"sys/bus/pci/drivers/{driver}"), exist_ok=True)
        os.symlink(f"../../../../bus/pci/drivers/{driver}", os.path.join(root, dev.lstrip("/"), "driver"))
        if group:
            os.makedirs(os.path.join(root, "sys/kernel/iommu_groups/7"), exist_ok=True)
            os.symlink("../../../../kernel/iommu_groups/7", os.path.join(root, dev.lstrip("/"), "iommu_group"))
        for i in ifaces:
            os.makedirs(os.path.join(root, dev.lstrip("/"), "net", i), exist_ok=True)
            write(root, f"/sys/class/net/{i}/flags", "0x1003\n" if i in up_ifaces else "0x1002\n")
    if af_xdp:
        write(root, "/sys/class/net/ens7/flags", "0x1003\n")
    if vfio_loaded:
        os.makedirs(os.path.join(root, "sys/module/vfio_pci"), exist_ok=True)
    write(root, "/sys/module/vfio/parameters/enable_unsafe_noiommu_mode", "Y\n" if noiommu else "N\n")
    write(root, "/proc/mounts", "proc /proc proc rw 0 0\n" + mounts)
    write(root, "/proc/meminfo", "MemTotal: 8000000 kB\nHugepagesize:       2048 kB\n")
    header = "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n"
    write(root, "/proc/net/route", header + "".join(
        f"{i}\t{dest}\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n" for i, dest in routes_v4))
    write(root, "/proc/net/ipv6_route", "".join(
        f"{dest} 40 {'0' * 32} 00 {'0' * 32} 00000100 00000001 00000000 {flags} {i}\n"
        for i, dest, flags in routes_v6))
    os.makedirs(os.path.join(root, "dev/hugepages"), exist_ok=True)


def config_text(kwikd_lines, tmp):
    # kwikd checks that a net_af_xdp port's XDP object is readable (branch af-xdp): any file
    # will do for --check-config.
    xdp = os.path.join(tmp, "kwik_xdp.o")
    open(xdp, "a").close()
    return CONFIG.format(extra=kwikd_lines, xdp_prog=xdp)


def run_prepare(args, text, tmp):
    cfg = os.path.join(tmp, "kwikd.toml")
    with open(cfg, "w") as f:
        f.write(text)
    r = subprocess.run([sys.executable, PREPARE, "--config", cfg, "--kwikd", KWIKD] + args,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=120)
    return r.returncode, r.stdout, r.stderr


RESERVE_BOTH = [
    "dpdk-hugepages.py --pagesize 2M --node 0 --reserve 2048M",
    "dpdk-hugepages.py --pagesize 2M --node 1 --reserve 2048M",
]
MOUNT_2M = ["dpdk-hugepages.py --pagesize 2M --mount --directory /dev/hugepages"]
HUGE_2G = "hugepages = true\nmemory_mb = 2048"
HUGE_MOUNTED = "nodev /dev/hugepages hugetlbfs rw,relatime,pagesize=2M 0 0\n"

# description, tree arguments, extra [kwikd] lines, extra flags, exit, stdout lines, stderr must hold
CASES = [
    ("fresh host: pages on the nodes of the lcores (0) and the ports (1; mlx5's -1 is node 0), "
     "hugetlbfs, vfio-pci, the ixgbe port bound; vfio-pci, mlx5 and AF_XDP ports left alone",
     {}, "", [], 0,
     RESERVE_BOTH + MOUNT_2M + ["modprobe vfio-pci", "dpdk-devbind.py --bind=vfio-pci 0000:3b:00.0"],
     ["0000:3b:00.1: already on vfio-pci", "0000:5e:00.0: mlx5_core, left on its kernel driver",
      "port[3] ens7: AF_XDP, stays on its kernel driver"]),
    ("prepared host: enough pages, mounted, vfio-pci loaded: only the binding",
     {"pages": (1024, 2000), "mounts": HUGE_MOUNTED, "vfio_loaded": True}, "", [], 0,
     ["dpdk-devbind.py --bind=vfio-pci 0000:3b:00.0"],
     ["node 1: 2000 x 2M reserved, 1024 needed", "hugetlbfs for 2M pages mounted on /dev/hugepages"]),
    ("fewer pages than needed on one node: that node is raised, never lowered",
     {"pages": (4096, 100), "mounts": HUGE_MOUNTED, "vfio_loaded": True}, "hugepages = true\nmemory_mb = 1000", [], 0,
     ["dpdk-hugepages.py --pagesize 2M --node 1 --reserve 1000M", "dpdk-devbind.py --bind=vfio-pci 0000:3b:00.0"],
     ["node 0: 4096 x 2M reserved, 500 needed"]),
    ("the ixgbe port's interface is up with an IPv4 route: refused, the rest still done",
     {"mounts": HUGE_MOUNTED, "vfio_loaded": True, "up_ifaces": ["ens1f0"],
      "routes_v4": [("ens1f0", "000200C0")]}, "", [], 1, RESERVE_BOTH,
     ["error: port[0] 0000:3b:00.0: its kernel interface ens1f0 is up with routes",
      "ip link set ens1f0 down`, or run kwik-prepare --force"]),
    ("the same with --force: bound, and dpdk-devbind.py forced too",
     {"mounts": HUGE_MOUNTED, "vfio_loaded": True, "up_ifaces": ["ens1f0"],
      "routes_v4": [("ens1f0", "000200C0")]}, "", ["--force"], 0,
     RESERVE_BOTH + ["dpdk-devbind.py --bind=vfio-pci 0000:3b:00.0 --force"], []),
    ("up with a global IPv6 route only: refused as well",
     {"pages": (1024, 1024), "mounts": HUGE_MOUNTED, "vfio_loaded": True, "up_ifaces": ["ens1f0"],
      "routes_v6": [("ens1f0", "20010db8000000010000000000000000", "00000001")]}, "", [], 1, [],
     ["ens1f0 is up with routes"]),
    ("up with only link-local routes (169.254/16, fe80::/64) and down elsewhere: not in use, bound",
     {"pages": (1024, 1024), "mounts": HUGE_MOUNTED, "vfio_loaded": True, "up_ifaces": ["ens1f0"],
      "routes_v4": [("ens1f0", "0000FEA9")],
      "routes_v6": [("ens1f0", "fe800000000000000000000000000000", "00000001")]}, "", [], 0,
     ["dpdk-devbind.py --bind=vfio-pci 0000:3b:00.0"], []),
    ("a configured PCI port that is not on this machine: named, exit 1",
     {"nics": NICS[1:], "pages": (1024, 1024), "mounts": HUGE_MOUNTED, "vfio_loaded": True}, "", [], 1, [],
     ["error: port[0] 0000:3b:00.0: no such PCI device"]),
    ("no IOMMU group for the ixgbe port (IOMMU off): the kernel command line to fix it",
     {"nics": [("0000:3b:00.0", "ixgbe", "1", ["ens1f0"], False)] + NICS[1:], "pages": (1024, 1024),
      "mounts": HUGE_MOUNTED, "vfio_loaded": True}, "", [], 1, [],
     ["error: port[0] 0000:3b:00.0: no IOMMU group", "intel_iommu=on iommu=pt"]),
    ("no IOMMU group but vfio's no-IOMMU mode on: bound",
     {"nics": [("0000:3b:00.0", "ixgbe", "1", ["ens1f0"], False)] + NICS[1:], "pages": (1024, 1024),
      "mounts": HUGE_MOUNTED, "vfio_loaded": True, "noiommu": True}, "", [], 0,
     ["dpdk-devbind.py --bind=vfio-pci 0000:3b:00.0"], []),
    ("a port already on uio_pci_generic (no IOMMU here) is left there, with a note",
     {"nics": [("0000:3b:00.0", "uio_pci_generic", "1", [], False)] + NICS[1:], "pages": (1024, 1024),
      "mounts": HUGE_MOUNTED, "vfio_loaded": True}, "", [], 0, [],
     ["port[0] 0000:3b:00.0: left on uio_pci_generic, a DPDK driver"]),
    ("the AF_XDP interface does not exist",
     {"pages": (1024, 1024), "mounts": HUGE_MOUNTED, "vfio_loaded": True, "af_xdp": False}, "", [], 1,
     ["dpdk-devbind.py --bind=vfio-pci 0000:3b:00.0"], ["error: port[3] ens7: no such network interface"]),
    ("1G pages the kernel does not offer: the boot-time kernel command line",
     {"mounts": HUGE_MOUNTED, "vfio_loaded": True}, "", ["--hugepage-size", "1G"], 1,
     ["dpdk-devbind.py --bind=vfio-pci 0000:3b:00.0"],
     ["error: hugepages on node 0: the kernel offers no 1G pages", "error: hugepages on node 1",
      "`default_hugepagesz=1G hugepagesz=1G hugepages=4` to GRUB_CMDLINE_LINUX"]),
    ("1G pages where the kernel has them, 2M mounted on /dev/hugepages: a mount of their own",
     {"page_dirs": ("2048", "1048576"), "mounts": HUGE_MOUNTED, "vfio_loaded": True}, "", ["--hugepage-size", "1G"], 0,
     ["dpdk-hugepages.py --pagesize 1G --node 0 --reserve 2048M",
      "dpdk-hugepages.py --pagesize 1G --node 1 --reserve 2048M",
      "mkdir -p /dev/hugepages-1G",
      "dpdk-hugepages.py --pagesize 1G --mount --directory /dev/hugepages-1G",
      "dpdk-devbind.py --bind=vfio-pci 0000:3b:00.0"], []),
    ("hugepages = false: nothing reserved or mounted, NICs still bound",
     {}, "hugepages = false", [], 0, ["modprobe vfio-pci", "dpdk-devbind.py --bind=vfio-pci 0000:3b:00.0"],
     ["hugepages = false: no hugepages reserved"]),
]


def fake_cases():
    failures = 0
    for desc, tree, extra, flags, code, lines, err_parts in CASES:
        with tempfile.TemporaryDirectory(prefix="kwik-prepare-test-") as tmp:
            root = os.path.join(tmp, "root")
            make_tree(root, **tree)
            text = config_text(extra or HUGE_2G, tmp)
            code_got, out, err = run_prepare(["--dry-run", "--root", root] + flags, text, tmp)
            problems = []
            if code_got != code:
                problems.append(f"exit {code_got}, expected {code}")
            if out.splitlines() != lines:
                problems.append("stdout:\n    " + "\n    ".join(out.splitlines()) +
                                "\n  expected:\n    " + "\n    ".join(lines))
            for part in err_parts:
                if part not in err:
                    problems.append(f"stderr lacks {part!r}")
            print(("ok   " if not problems else "FAIL ") + desc)
            for p in problems:
                print("  " + p)
            if problems:
                print("  stderr: " + err.replace("\n", "\n  "))
                failures += 1
    return failures


def usage_cases():
    failures = 0
    with tempfile.TemporaryDirectory(prefix="kwik-prepare-test-") as tmp:
        root = os.path.join(tmp, "root")
        make_tree(root)
        bad_config = config_text(HUGE_2G, tmp).replace("worker_lcores = [2, 3]", "worker_lcores = [2, 2]")
        checks = [
            ("--root without --dry-run is usage", ["--root", root], config_text(HUGE_2G, tmp), 2, "--root: only with --dry-run"),
            ("an unknown flag is usage", ["--dry-run", "--bogus"], config_text(HUGE_2G, tmp), 2, "--bogus"),
            ("a bad --hugepage-size is usage", ["--dry-run", "--hugepage-size", "4M"], config_text(HUGE_2G, tmp), 2,
             "--hugepage-size"),
            ("a configuration kwikd refuses: its message, exit 1", ["--dry-run", "--root", root], bad_config, 1,
             "kwikd --check-config refused it"),
        ]
        for desc, flags, text, code, part in checks:
            got, out, err = run_prepare(flags, text, tmp)
            ok = got == code and part in err and out == ""
            print(("ok   " if ok else "FAIL ") + desc)
            if not ok:
                print(f"  exit {got} (expected {code}); stdout {out!r}; stderr {err!r}")
                failures += 1
        # Without a kwikd binary the file is read itself (lcores as a range string, defaults).
        if any(os.access(p, os.X_OK) for p in ("/usr/sbin/kwikd", "/usr/local/sbin/kwikd")):
            print("skip the file-only case: a kwikd is installed on this machine")
        else:
            cfg = os.path.join(tmp, "plain.toml")
            with open(cfg, "w") as f:
                f.write(config_text(HUGE_2G, tmp).replace("worker_lcores = [2, 3]", 'worker_lcores = "2-3"'))
            env = dict(os.environ, PATH="/usr/bin:/bin")
            r = subprocess.run([sys.executable, PREPARE, "--config", cfg, "--dry-run", "--root", root],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
            want = RESERVE_BOTH + MOUNT_2M + ["modprobe vfio-pci", "dpdk-devbind.py --bind=vfio-pci 0000:3b:00.0"]
            ok = r.returncode == 0 and r.stdout.splitlines() == want and "no kwikd binary" in r.stderr
            print(("ok   " if ok else "FAIL ") + "no kwikd: the file itself, the same commands")
            if not ok:
                print(f"  exit {r.returncode}; stdout {r.stdout!r}; stderr {r.stderr!r}")
                failures += 1
        r = subprocess.run([sys.executable, PREPARE, "--config", os.path.join(tmp, "absent.toml"), "--dry-run"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        ok = r.returncode == 2 and "--config: cannot read" in r.stderr
        print(("ok   " if ok else "FAIL ") + "a missing --config is usage, naming the flag")
        failures += 0 if ok else 1
    return failures


def node0_pages():
    path = "/sys/devices/system/node/node0/hugepages/hugepages-2048kB/nr_hugepages"
    if not os.path.exists(path):
        path = "/sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages"
    return path


def real_case():
    if os.geteuid() != 0:
        print("SKIP: the real run needs root (it writes nr_hugepages)")
        return SKIP
    if shutil.which("dpdk-hugepages.py") is None:
        print("SKIP: dpdk-hugepages.py is not installed (apt-get install dpdk)")
        return SKIP
    path = node0_pages()
    with open(path) as f:
        before = int(f.read())
    mounted_before = open("/proc/mounts").read()
    huge_dir_before = os.path.exists("/dev/hugepages")
    # Two pages more than node 0 has now: kwik-prepare must raise it through dpdk-hugepages.py.
    want = before + 2
    with tempfile.TemporaryDirectory(prefix="kwik-prepare-real-") as tmp:
        text = (f'[kwikd]\nname = "kwik-prep-real"\nmain_lcore = 0\nworker_lcores = [1]\nhugepages = true\n'
                f'memory_mb = {want * 2}\n[[port]]\nname = "p0"\ndevice = "net_null0"\n'
                f'addresses = ["192.0.2.10/24"]\n')
        try:
            code, out, err = run_prepare([], text, tmp)
            with open(path) as f:
                after = int(f.read())
        finally:
            with open(path, "w") as f:
                f.write(f"{before}\n")
            # Undo a mount kwik-prepare made.
            for line in open("/proc/mounts").read().splitlines():
                if line.split()[2:3] == ["hugetlbfs"] and line not in mounted_before:
                    subprocess.run(["umount", line.split()[1]], check=False)
            if not huge_dir_before and os.path.isdir("/dev/hugepages"):
                os.rmdir("/dev/hugepages")
        with open(path) as f:
            restored = int(f.read())
    numa = os.path.exists("/sys/devices/system/node")
    expected = f"+ dpdk-hugepages.py --pagesize 2M {'--node 0 ' if numa else ''}--reserve {want * 2}M"
    problems = []
    if code != 0:
        problems.append(f"exit {code}")
    if expected not in out.splitlines():
        problems.append(f"stdout lacks {expected!r}")
    if after != want:
        problems.append(f"node 0 had {after} 2M pages after the run, expected {want}")
    if restored != before:
        problems.append(f"could not restore node 0's {before} pages (now {restored})")
    print(("ok   " if not problems else "FAIL ") +
          f"real run: node 0 raised from {before} to {after} x 2M through dpdk-hugepages.py, restored to {restored}")
    for p in problems:
        print("  " + p)
    if problems:
        print("  stdout: " + out.replace("\n", "\n  ") + "\n  stderr: " + err.replace("\n", "\n  "))
    return 1 if problems else 0


def main():
    # SIGTERM (meson's timeout) unwinds: the real run's finally puts node 0's pages back, and
    # subprocess.run kills the kwik-prepare it waits on.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if WHICH == "real":
        return real_case()
    failures = fake_cases() + usage_cases()
    print(f"{failures} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
