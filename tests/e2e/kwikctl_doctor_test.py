#!/usr/bin/env python3
"""kwikctl doctor, the real binary: kwikd (net_null port, no hugepages, adaptive polling) and
kwik-cp run on this machine in a network namespace the test creates (appliance.py), kwikctl
pinned to kwik-cp's certificate.
1. This host as it is: config, shared memory (region, lock held, heartbeat) and the control
   process are ok; the JSON and the exit status agree.
2. A prepared all-good tree (--root): a vfio-bound NIC in its own IOMMU group, hugepages reserved
   and mounted, the worker isolated, dev/shm linking to the running kwikd's region and lock:
   exit 0, every check ok.
3. A bad tree (NIC on ixgbe, IOMMU off, vfio missing, no hugepages, worker not isolated): exit 1,
   the exact fix lines in the text and in --json.
4. Usage errors exit 2 naming the flag; a wrong pin or an unknown key gives the kwikctl.toml
   line to change; with kwikd stopped the shm check says it is not running and the control check
   that kwik-cp is not attached; with kwik-cp stopped too, `systemctl status kwik-cp`.
Usage: kwikctl_doctor_test.py <build directory>"""
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from appliance import appliance, tools  # noqa: E402
from kwik_e2e import check, failures  # noqa: E402

build = sys.argv[1]
kwikd, kwikctl = tools(build).kwikd, tools(build).kwikctl
NS = "kwdoc%d" % os.getpid()
NAME = "doctor%d" % os.getpid()
PCI = "0000:01:00.0"


def on_term(signum, frame):
    raise SystemExit(1)


signal.signal(signal.SIGTERM, on_term)


def write(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)


def link(path, target):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    if os.path.lexists(path):
        os.remove(path)
    os.symlink(target, path)


def good_tree(root):
    """The host as kwik-prepare leaves it, for a kwikd on CPU 1 with one PCI port."""
    write(root + "/sys/kernel/iommu_groups/7/devices/%s/vendor" % PCI, "0x8086\n")
    write(root + "/sys/bus/pci/devices/%s/numa_node" % PCI, "0\n")
    link(root + "/sys/bus/pci/devices/%s/driver" % PCI, "../../../../bus/pci/drivers/vfio-pci")
    link(root + "/sys/bus/pci/devices/%s/iommu_group" % PCI, "../../../../kernel/iommu_groups/7")
    os.makedirs(root + "/sys/module/vfio_pci")
    write(root + "/sys/module/vfio/parameters/enable_unsafe_noiommu_mode", "N\n")
    write(root + "/dev/vfio/vfio", "")
    write(root + "/proc/cpuinfo", "processor\t: 0\nvendor_id\t: GenuineIntel\n")
    write(root + "/proc/cmdline", "BOOT_IMAGE=/vmlinuz intel_iommu=on iommu=pt isolcpus=1 nohz_full=1 rcu_nocbs=1\n")
    write(root + "/etc/default/grub", 'GRUB_DEFAULT=0\nGRUB_CMDLINE_LINUX="console=ttyS0"\n')
    write(root + "/sys/devices/system/cpu/online", "0-1\n")
    write(root + "/sys/devices/system/cpu/isolated", "1\n")
    write(root + "/sys/devices/system/cpu/nohz_full", "1\n")
    for cpu in (0, 1):
        os.makedirs(root + "/sys/devices/system/cpu/cpu%d/node0" % cpu)
        write(root + "/sys/devices/system/cpu/cpu%d/topology/thread_siblings_list" % cpu, "%d\n" % cpu)
    write(root + "/sys/devices/system/node/node0/cpulist", "0-1\n")
    hp = root + "/sys/devices/system/node/node0/hugepages/hugepages-2048kB/"
    write(hp + "nr_hugepages", "512\n")
    write(hp + "free_hugepages", "512\n")
    write(root + "/proc/mounts", "hugetlbfs /dev/hugepages hugetlbfs rw,relatime,pagesize=2M 0 0\n")
    write(root + "/proc/meminfo", "Hugepagesize:       2048 kB\n")
    # The running kwikd's region and lock, seen through a directory of mode 0750.
    os.makedirs(root + "/dev/shm")
    os.chmod(root + "/dev/shm", 0o750)
    for f in (NAME, NAME + ".lock"):
        os.symlink("/dev/shm/" + f, root + "/dev/shm/" + f)


def run(*args):
    """kwikctl without connection settings, on this host."""
    r = subprocess.run([kwikctl] + list(args), capture_output=True, text=True, timeout=120)
    return r.returncode, r.stdout, r.stderr


def by_check(answer):
    return {c["check"]: c for c in answer.get("checks", [])}


work = tempfile.mkdtemp(prefix="kwikctl-doctor-")
app = None
try:
    subprocess.run(["ip", "netns", "add", NS], check=True, capture_output=True, timeout=30)
    subprocess.run(["ip", "netns", "exec", NS, "ip", "link", "set", "lo", "up"], check=True, capture_output=True,
                   timeout=30)
    app = appliance(build, work, ns=NS, device="net_null0", address="10.79.0.1", prefix=24, gateway=None,
                    kcp_listen="127.0.0.1", endpoint="discard", name=NAME)
    app.start()
    real_config = app.kwikd_config()
    ctl = app.ctl

    # 1. This machine as it is.
    rc, out, err = ctl("--json", "doctor", "--kwikd-config", real_config, "--kwikd", kwikd)
    answer = json.loads(out) if out.strip() else {}
    checks = by_check(answer)
    for name in ("config", "shm_directory", "shm_files", "kwikd", "control"):
        check(checks.get(name, {}).get("status") == "ok", "this host: %s ok: %s" % (name, checks.get(name)))
    check(checks.get("hugepages", {}).get("status") == "warn", "this host: hugepages = false is a warning")
    check(rc == answer.get("exit") and rc == (1 if answer["summary"]["fail"] else 0),
          "this host: exit %d agrees with the JSON (%s) %s" % (rc, answer.get("summary"), err.strip()))

    # 2. The all-good tree.
    good = os.path.join(work, "good")
    good_tree(good)
    tree_config = os.path.join(work, "tree.toml")
    write(tree_config, '[kwikd]\nname = "%s"\nmain_lcore = 0\nworker_lcores = [1]\nhugepages = true\nmemory_mb = 512\n'
          '\n[[port]]\nname = "wan"\ndevice = "%s"\naddresses = ["10.79.0.1/24"]\n' % (NAME, PCI))
    rc, out, err = ctl("--json", "doctor", "--root", good, "--kwikd-config", tree_config, "--kwikd", kwikd)
    answer = json.loads(out) if out.strip() else {}
    not_ok = [c for c in answer.get("checks", []) if c["status"] != "ok" or c["fix"]]
    check(rc == 0 and len(answer.get("checks", [])) >= 15 and not not_ok,
          "good tree: exit 0, every one of %d checks ok (exit %d): %s %s" %
          (len(answer.get("checks", [])), rc, not_ok, err.strip()))
    rc, out, err = ctl("doctor", "--root", good, "--kwikd-config", tree_config, "--kwikd", kwikd)
    check(rc == 0 and "fix:" not in out and out.splitlines()[-1].endswith(" ok, 0 warn, 0 fail, 0 skip"),
          "good tree text: no fix line, summary all ok:\n" + out)

    # 3. The bad tree: the same with the NIC on ixgbe, IOMMU off, vfio gone, no hugepages, no isolation.
    bad = os.path.join(work, "bad")
    shutil.copytree(good, bad, symlinks=True)
    link(bad + "/sys/bus/pci/devices/%s/driver" % PCI, "../../../../bus/pci/drivers/ixgbe")
    os.makedirs(bad + "/sys/bus/pci/devices/%s/net/enp1s0f0" % PCI)
    shutil.rmtree(bad + "/sys/kernel/iommu_groups/7")
    shutil.rmtree(bad + "/sys/module/vfio_pci")
    write(bad + "/proc/cmdline", "BOOT_IMAGE=/vmlinuz\n")
    write(bad + "/sys/devices/system/cpu/isolated", "\n")
    write(bad + "/sys/devices/system/cpu/nohz_full", "\n")
    hp = bad + "/sys/devices/system/node/node0/hugepages/hugepages-2048kB/"
    write(hp + "nr_hugepages", "0\n")
    write(hp + "free_hugepages", "0\n")
    expected = {
        "iommu": ['/etc/default/grub: GRUB_CMDLINE_LINUX="console=ttyS0 intel_iommu=on iommu=pt"', "update-grub",
                  "reboot"],
        "vfio_module": ["modprobe vfio-pci", "/etc/modules-load.d/kwik.conf: vfio-pci"],
        "nic wan": ["ip link set enp1s0f0 down", "dpdk-devbind.py --bind=vfio-pci " + PCI],
        "hugepages node0": ["dpdk-hugepages.py --node 0 -p 2M --reserve 512M"],
        "cpu_isolation": ['/etc/default/grub: GRUB_CMDLINE_LINUX="console=ttyS0 isolcpus=1 nohz_full=1 rcu_nocbs=1"',
                          "/etc/systemd/system.conf: CPUAffinity=0   # in [Manager]: other services keep off the workers"],
    }
    rc, out, err = ctl("doctor", "--root", bad, "--kwikd-config", tree_config, "--kwikd", kwikd)
    check(rc == 1, "bad tree: exit 1 (%d) %s" % (rc, err.strip()))
    for name, fixes in expected.items():
        for fix in fixes:
            check(("fix: " + fix + "\n") in out, "bad tree text: %s: fix: %s" % (name, fix))
    rc, out, err = ctl("--json", "doctor", "--root", bad, "--kwikd-config", tree_config, "--kwikd", kwikd)
    checks = by_check(json.loads(out) if out.strip() else {})
    check(rc == 1, "bad tree --json: exit 1 (%d)" % rc)
    for name, fixes in expected.items():
        c = checks.get(name, {})
        check(c.get("status") in ("fail", "warn") and all(f in c.get("fix", []) for f in fixes),
              "bad tree JSON: %s %s with its fix lines: %s" % (name, c.get("status"), c.get("fix")))
    check(checks.get("cpu_isolation", {}).get("status") == "warn" and checks["nic wan"]["status"] == "fail",
          "bad tree JSON: isolation warns, the NIC fails")

    # 4. Usage errors, then the processes stopped one by one.
    for args, flag in ((["--root", os.path.join(work, "nope")], "--root"), (["--skip", "bogus"], "--skip"),
                       (["--kwikd-config", os.path.join(work, "nope.toml")], "--kwikd-config")):
        rc, out, err = run("doctor", *args)
        check(rc == 2 and flag in err, "doctor %s: exit 2 naming the flag (%d): %s" % (" ".join(args), rc, err.strip()))
    rc, out, err = run("doctor", "--kwikd-config", os.path.join(work, "cp.crt"), "--kwikd", kwikd,
                       "--skip", "control")
    check(rc == 1 and out.splitlines()[1].split()[:2] == ["config", "fail"],
          "a file kwikd refuses: check config fails first with kwikd's message:\n" + out)

    # A wrong pin, then a key kwik-cp does not know: the kwikctl.toml line to change.
    def doctor_with(pin, key_id):
        argv = ["ip", "netns", "exec", NS, kwikctl, "--server", app.kcp_address, "--pin", pin, "--key-id", key_id,
                "--secret-file", app.ops_key_file, "--json", "doctor", "--kwikd-config", real_config, "--kwikd", kwikd]
        r = subprocess.run(argv, capture_output=True, text=True, timeout=120)
        return r.returncode, by_check(json.loads(r.stdout) if r.stdout.strip() else {}).get("control", {})
    rc, control = doctor_with("00" * 32, "ops")
    check(rc == 1 and control.get("status") == "fail" and
          '/etc/kwik/kwikctl.toml: pin = "%s"' % app.pin in control.get("fix", []),
          "a wrong pin: control fails with the kwikctl.toml pin line of kwik-cp's real pin: %s" % control)
    rc, control = doctor_with(app.pin, "nobody")
    check(rc == 1 and control.get("status") == "fail" and "nobody" in control.get("found", "") and
          any(f.startswith("/etc/kwik/kwikctl.toml: key_id = ") for f in control.get("fix", [])),
          "an unknown key: control fails with the kwikctl.toml key_id line: %s" % control)

    # kwikd stopped, kwik-cp still up: the shm check says kwikd is not running, the control check
    # that kwik-cp is not attached.
    check(app.stop_kwikd() == 0, "kwikd stops cleanly")
    control = {}
    for _ in range(50):  # kwik-cp notices the region is gone within its next poll
        rc, out, err = ctl("--json", "doctor", "--kwikd-config", real_config, "--kwikd", kwikd)
        checks = by_check(json.loads(out) if out.strip() else {})
        control = checks.get("control", {})
        if "not attached" in control.get("found", ""):
            break
        time.sleep(0.2)
    k = checks.get("kwikd", {})
    check(k.get("status") == "warn" and "kwikd not running" in k.get("found", "") and
          k.get("fix") == ["systemctl start kwikd", "journalctl -u kwikd"], "kwikd stopped: %s" % k)
    check(rc == 1 and control.get("status") == "fail" and "not attached" in control.get("found", "") and
          "systemctl status kwikd" in control.get("fix", []) and
          '/etc/kwik/kwik-cp.toml: kwikd_region = "%s"   # in [kwik_cp]' % NAME in control.get("fix", []),
          "kwikd stopped: control fails, kwik-cp not attached: %s" % control)

    check(app.stop_cp() == 0, "kwik-cp stops on SIGTERM")
    rc, out, err = ctl("--json", "doctor", "--kwikd-config", real_config, "--kwikd", kwikd)
    control = by_check(json.loads(out)).get("control", {})
    check(rc == 1 and control.get("status") == "fail" and "systemctl status kwik-cp" in control.get("fix", []) and
          "unreachable" in control.get("found", ""), "kwik-cp stopped: control fails with its fix: %s" % control)
finally:
    if app is not None:
        app.stop()
    subprocess.run(["ip", "netns", "del", NS], capture_output=True, timeout=30)
    for lock in ("/dev/shm/%s.lock" % NAME, "/dev/shm/%s.ctl.lock" % NAME):  # kwikd and kwik-cp leave them
        if os.path.exists(lock):
            os.remove(lock)
    shutil.rmtree(work, ignore_errors=True)

print("%d checks failed" % len(failures))
sys.exit(1 if failures else 0)
