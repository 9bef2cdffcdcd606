// kwikctl doctor's checks over prepared host trees (--root): a good tree where every check is ok,
// and one case per bad state, each with the finding's expected status and its exact fix lines.
#include <gtest/gtest.h>

#include <fcntl.h>
#include <netinet/in.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>

#include "controlplane/kwikctl/doctor.hpp"
#include "dataplane/api/shm_region.hpp"

namespace fs = std::filesystem;
using namespace kwik::ctl;
using namespace kwik::ctl::doctor;

namespace {

// A host tree under a temp directory, prepared in its good state: one vfio-bound NIC in its own
// IOMMU group on node 0, 2M hugepages reserved and mounted, workers 1-2 isolated on a 4-CPU
// machine, kwikd's region and held lock in /dev/shm with mode 0660 and group kwik.
class host_tree {
public:
    host_tree() {
        char pattern[] = "/tmp/kwik-doctor-XXXXXX";
        root = ::mkdtemp(pattern);
        config.name = "kwik";
        config.main_lcore = 0;
        config.worker_lcores = {1, 2};
        config.memory_mb = 512;
        config.shm_mode = 0660;
        config.shm_group = "kwik";
        config.ports = {{"wan", "0000:01:00.0", 2, 1500}};

        write("/sys/kernel/iommu_groups/5/devices/0000:01:00.0/vendor", "0x8086");
        write("/sys/bus/pci/devices/0000:01:00.0/numa_node", "0");
        link("/sys/bus/pci/devices/0000:01:00.0/driver", "../../../../bus/pci/drivers/vfio-pci");
        link("/sys/bus/pci/devices/0000:01:00.0/iommu_group", "../../../../kernel/iommu_groups/5");
        mkdir("/sys/module/vfio_pci");
        write("/sys/module/vfio/parameters/enable_unsafe_noiommu_mode", "N");
        write("/dev/vfio/vfio", "");
        write("/proc/cpuinfo", "processor\t: 0\nvendor_id\t: GenuineIntel\n");
        write("/proc/cmdline", "BOOT_IMAGE=/vmlinuz root=/dev/sda1 isolcpus=1-2 nohz_full=1-2 rcu_nocbs=1-2\n");
        write("/etc/default/grub", "GRUB_DEFAULT=0\nGRUB_CMDLINE_LINUX_DEFAULT=\"quiet\"\nGRUB_CMDLINE_LINUX=\"console=ttyS0\"\n");
        write("/sys/devices/system/cpu/online", "0-3\n");
        write("/sys/devices/system/cpu/isolated", "1-2\n");
        write("/sys/devices/system/cpu/nohz_full", "1-2\n");
        for (int c = 0; c < 4; ++c) {
            const std::string cpu = "/sys/devices/system/cpu/cpu" + std::to_string(c);
            mkdir(cpu + "/node0");
            write(cpu + "/topology/thread_siblings_list", std::to_string(c) + "\n");
        }
        write("/sys/devices/system/node/node0/cpulist", "0-3\n");
        hugepages(0, 512, 512);
        write("/proc/mounts", "sysfs /sys sysfs rw 0 0\nhugetlbfs /dev/hugepages hugetlbfs rw,relatime,pagesize=2M 0 0\n");
        write("/proc/meminfo", "MemTotal:       8000000 kB\nHugepagesize:       2048 kB\n");
        write("/etc/group", "kwik:x:" + std::to_string(::getegid()) + ":\n");

        kwik::api::region_header h{};
        std::memcpy(h.magic, kwik::api::region_magic, sizeof h.magic);
        h.layout_version = kwik::api::region_layout_version;
        h.creator_pid = 4242;
        h.state = static_cast<std::uint32_t>(kwik::api::region_state::ready);
        h.heartbeat_ns = 1000;
        write("/dev/shm/kwik", std::string(reinterpret_cast<const char*>(&h), sizeof h));
        write("/dev/shm/kwik.lock", "4242\n");
        chmod("/dev/shm", 0755);
        chmod("/dev/shm/kwik", 0660);
        chmod("/dev/shm/kwik.lock", 0660);
    }
    ~host_tree() {
        if (_lock_fd >= 0) {
            ::close(_lock_fd);
        }
        fs::remove_all(root);
    }
    host_tree(const host_tree&) = delete;
    host_tree& operator=(const host_tree&) = delete;

    void write(const std::string& path, const std::string& text) const {
        fs::create_directories(fs::path(root + path).parent_path());
        std::ofstream(root + path, std::ios::binary | std::ios::trunc) << text;
    }
    void link(const std::string& path, const std::string& target) const {
        fs::create_directories(fs::path(root + path).parent_path());
        fs::remove(root + path);
        fs::create_symlink(target, root + path);
    }
    void mkdir(const std::string& path) const { fs::create_directories(root + path); }
    void remove(const std::string& path) const { fs::remove_all(root + path); }
    void chmod(const std::string& path, mode_t mode) const { ::chmod((root + path).c_str(), mode); }
    void hugepages(int node, int nr, int free, const std::string& size = "2048kB") const {
        const std::string dir = "/sys/devices/system/node/node" + std::to_string(node) + "/hugepages/hugepages-" + size;
        write(dir + "/nr_hugepages", std::to_string(nr) + "\n");
        write(dir + "/free_hugepages", std::to_string(free) + "\n");
    }
    void set_heartbeat(std::uint64_t ns) const {
        std::fstream f(root + "/dev/shm/kwik", std::ios::binary | std::ios::in | std::ios::out);
        f.seekp(offsetof(kwik::api::region_header, heartbeat_ns));
        f.write(reinterpret_cast<const char*>(&ns), sizeof ns);
    }
    // kwikd exited cleanly: its region and lock file are gone.
    void stop_kwikd() const {
        remove("/dev/shm/kwik");
        remove("/dev/shm/kwik.lock");
    }
    // kwikd's exclusive flock on its lock file, as a running kwikd holds it.
    void hold_lock() {
        _lock_fd = ::open((root + "/dev/shm/kwik.lock").c_str(), O_RDWR | O_CLOEXEC);
        ASSERT_GE(_lock_fd, 0);
        ASSERT_EQ(::flock(_lock_fd, LOCK_EX | LOCK_NB), 0);
    }

    // Every host check, the shm check with the heartbeat advanced (or not) between its reads.
    std::vector<finding> check_all() {
        const host_reader host(root);
        std::vector<finding> out;
        for (auto found : {check_iommu(config, host), check_nics(config, host),
                           check_hugepages(config, host, kwikd_running(config, host)), check_cpus(config, host),
                           check_shm(config, host, [this] {
                               if (heartbeat_advances) {
                                   set_heartbeat(2000);
                               }
                           })}) {
            out.insert(out.end(), found.begin(), found.end());
        }
        return out;
    }

    std::string root;
    kwikd_view config;
    bool heartbeat_advances = true;

private:
    int _lock_fd = -1;
};

struct bad_state {
    const char* description;
    std::function<void(host_tree&)> prepare;
    std::string check;
    status expected;
    std::vector<std::string> fix; // each must be one of the finding's fix lines, exactly
    std::string found = {};       // a part of what the finding says was found
};

void PrintTo(const bad_state& c, std::ostream* os) { *os << c.description; }

const finding* find(const std::vector<finding>& findings, const std::string& check) {
    for (const finding& f : findings) {
        if (f.check == check) {
            return &f;
        }
    }
    return nullptr;
}

std::string describe(const std::vector<finding>& findings) {
    return render_text(findings);
}

TEST(doctor, good_tree_every_check_ok) {
    host_tree t;
    t.hold_lock();
    const auto findings = t.check_all();
    for (const finding& f : findings) {
        EXPECT_EQ(f.state, status::ok) << f.check << ": " << f.found;
        EXPECT_TRUE(f.fix.empty()) << f.check;
    }
    for (const char* id : {"iommu", "vfio_module", "vfio_device", "vfio_noiommu", "nic wan", "iommu_group wan", "numa wan",
                           "hugepages node0", "hugetlbfs", "worker_lcores", "cpu_isolation", "smt", "shm_directory",
                           "shm_files", "kwikd"}) {
        EXPECT_NE(find(findings, id), nullptr) << id << " missing:\n" << describe(findings);
    }
    EXPECT_EQ(exit_code(findings), 0);
}

const bad_state bad_states[] = {
    {"IOMMU off on Intel: the grub line keeps its parameters and adds intel_iommu",
     [](host_tree& t) { t.remove("/sys/kernel/iommu_groups/5"); t.mkdir("/sys/kernel/iommu_groups"); },
     "iommu", status::fail,
     {"/etc/default/grub: GRUB_CMDLINE_LINUX=\"console=ttyS0 intel_iommu=on iommu=pt\"", "update-grub", "reboot"},
     "IOMMU off"},
    {"IOMMU off on AMD",
     [](host_tree& t) {
         t.remove("/sys/kernel/iommu_groups/5");
         t.write("/proc/cpuinfo", "vendor_id\t: AuthenticAMD\n");
     },
     "iommu", status::fail, {"/etc/default/grub: GRUB_CMDLINE_LINUX=\"console=ttyS0 amd_iommu=on iommu=pt\""}},
    {"IOMMU asked for on the command line but off: the firmware",
     [](host_tree& t) {
         t.remove("/sys/kernel/iommu_groups/5");
         t.write("/proc/cmdline", "intel_iommu=on iommu=pt isolcpus=1-2 nohz_full=1-2 rcu_nocbs=1-2\n");
     },
     "iommu", status::fail, {"firmware (BIOS/UEFI) set-up: enable Intel VT-d"}, "turn on VT-d"},
    {"vfio-pci not loaded", [](host_tree& t) { t.remove("/sys/module/vfio_pci"); }, "vfio_module", status::fail,
     {"modprobe vfio-pci", "/etc/modules-load.d/kwik.conf: vfio-pci"}},
    {"/dev/vfio/vfio missing", [](host_tree& t) { t.remove("/dev/vfio"); }, "vfio_device", status::fail,
     {"modprobe vfio-pci"}},
    {"vfio in no-IOMMU mode",
     [](host_tree& t) { t.write("/sys/module/vfio/parameters/enable_unsafe_noiommu_mode", "Y\n"); }, "vfio_noiommu",
     status::warn, {"echo N > /sys/module/vfio/parameters/enable_unsafe_noiommu_mode"}},
    {"NIC on ixgbe: down its interface, bind it to vfio-pci",
     [](host_tree& t) {
         t.link("/sys/bus/pci/devices/0000:01:00.0/driver", "../../../../bus/pci/drivers/ixgbe");
         t.mkdir("/sys/bus/pci/devices/0000:01:00.0/net/enp1s0f0");
     },
     "nic wan", status::fail,
     {"ip link set enp1s0f0 down", "dpdk-devbind.py --bind=vfio-pci 0000:01:00.0",
      "or: kwik-prepare   # binds every PCI port of /etc/kwik/kwikd.toml"},
     "kernel driver ixgbe (enp1s0f0)"},
    {"NIC with no driver",
     [](host_tree& t) { t.remove("/sys/bus/pci/devices/0000:01:00.0/driver"); },
     "nic wan", status::fail, {"dpdk-devbind.py --bind=vfio-pci 0000:01:00.0"}, "has no driver"},
    {"NIC on uio_pci_generic: works without IOMMU protection",
     [](host_tree& t) { t.link("/sys/bus/pci/devices/0000:01:00.0/driver", "../../../../bus/pci/drivers/uio_pci_generic"); },
     "nic wan", status::warn, {"dpdk-devbind.py --bind=vfio-pci 0000:01:00.0"}, "without IOMMU protection"},
    {"NIC on mlx5_core: bifurcated, ok",
     [](host_tree& t) { t.link("/sys/bus/pci/devices/0000:01:00.0/driver", "../../../../bus/pci/drivers/mlx5_core"); },
     "nic wan", status::ok, {}, "bifurcated"},
    {"NIC on mlx5_core: no vfio needed",
     [](host_tree& t) {
         t.link("/sys/bus/pci/devices/0000:01:00.0/driver", "../../../../bus/pci/drivers/mlx5_core");
         t.remove("/sys/module/vfio_pci");
     },
     "iommu", status::skip, {}},
    {"no such PCI device", [](host_tree& t) { t.remove("/sys/bus/pci/devices/0000:01:00.0"); }, "nic wan", status::fail,
     {"lspci -D -d ::0200   # the Ethernet controllers and their addresses"}, "no PCI device 0000:01:00.0"},
    {"NIC on vfio-pci in a group shared with a kernel-bound device",
     [](host_tree& t) {
         t.write("/sys/kernel/iommu_groups/5/devices/0000:01:00.1/vendor", "0x8086");
         t.write("/sys/bus/pci/devices/0000:01:00.1/numa_node", "0");
         t.link("/sys/bus/pci/devices/0000:01:00.1/driver", "../../../../bus/pci/drivers/ixgbe");
     },
     "iommu_group wan", status::fail,
     {"dpdk-devbind.py --bind=vfio-pci 0000:01:00.1   # if that device may leave the kernel"},
     "shared with kernel-bound 0000:01:00.1 (ixgbe)"},
    {"a PCIe bridge in the group is allowed",
     [](host_tree& t) {
         t.write("/sys/kernel/iommu_groups/5/devices/0000:00:01.0/vendor", "0x8086");
         t.link("/sys/bus/pci/devices/0000:00:01.0/driver", "../../../../bus/pci/drivers/pcieport");
     },
     "iommu_group wan", status::ok, {}},
    {"NIC on node 1, workers on node 0",
     [](host_tree& t) {
         t.write("/sys/bus/pci/devices/0000:01:00.0/numa_node", "1\n");
         t.write("/sys/devices/system/node/node1/cpulist", "4-7\n");
         t.hugepages(1, 512, 512);
     },
     "numa wan", status::warn, {"/etc/kwik/kwikd.toml: worker_lcores = [4, 5]   # CPUs of node 1"},
     "worker lcores 1-2 are not"},
    {"no hugepages reserved (before kwikd starts: free pages count)",
     [](host_tree& t) {
         t.hugepages(0, 0, 0);
         t.stop_kwikd();
     }, "hugepages node0", status::fail,
     {"dpdk-hugepages.py --node 0 -p 2M --reserve 512M", "or: kwik-prepare   # reserves them at every boot"},
     "0 2M pages free of 0; memory_mb 512 needs 256"},
    {"too few free: 150 of 200 used by someone else",
     [](host_tree& t) {
         t.hugepages(0, 200, 50);
         t.stop_kwikd();
     },
     "hugepages node0",
     status::fail, {"dpdk-hugepages.py --node 0 -p 2M --reserve 812M"}, "50 2M pages free of 200"},
    {"memory_mb over two nodes: each holds half",
     [](host_tree& t) {
         t.write("/sys/bus/pci/devices/0000:01:00.0/numa_node", "1\n");
         t.hugepages(1, 100, 100);
     },
     "hugepages node1", status::fail, {"dpdk-hugepages.py --node 1 -p 2M --reserve 256M"},
     "memory_mb 512 over 2 nodes needs 128"},
    {"hugetlbfs not mounted", [](host_tree& t) { t.write("/proc/mounts", "sysfs /sys sysfs rw 0 0\n"); }, "hugetlbfs",
     status::fail,
     {"mkdir -p /dev/hugepages && mount -t hugetlbfs -o pagesize=2M nodev /dev/hugepages",
      "/etc/fstab: nodev /dev/hugepages hugetlbfs pagesize=2M 0 0"}},
    {"only a 1G mount when 2M pages are configured",
     [](host_tree& t) { t.write("/proc/mounts", "hugetlbfs /dev/hugepages1G hugetlbfs rw,pagesize=1024M 0 0\n"); },
     "hugetlbfs", status::fail, {"mkdir -p /dev/hugepages && mount -t hugetlbfs -o pagesize=2M nodev /dev/hugepages"}},
    {"1G pages configured, the kernel has none",
     [](host_tree& t) { t.config.hugepage_kb = 1024 * 1024; }, "hugepages node0", status::fail,
     {"/etc/default/grub: GRUB_CMDLINE_LINUX=\"console=ttyS0 hugepagesz=1G\""}},
    {"1G pages too few: command line for the boot",
     [](host_tree& t) {
         t.config.hugepage_kb = 1024 * 1024;
         t.hugepages(0, 0, 0, "1048576kB");
     },
     "hugepages node0", status::fail,
     {"/etc/default/grub: GRUB_CMDLINE_LINUX=\"console=ttyS0 default_hugepagesz=1G hugepagesz=1G hugepages=0:1\""}},
    {"hugepages = false", [](host_tree& t) { t.config.hugepages = false; }, "hugepages", status::warn,
     {"/etc/kwik/kwikd.toml: hugepages = true   # in [kwikd]"}},
    {"workers not isolated",
     [](host_tree& t) {
         t.write("/sys/devices/system/cpu/isolated", "\n");
         t.write("/sys/devices/system/cpu/nohz_full", "\n");
         t.write("/proc/cmdline", "BOOT_IMAGE=/vmlinuz intel_iommu=on\n");
     },
     "cpu_isolation", status::warn,
     {"/etc/default/grub: GRUB_CMDLINE_LINUX=\"console=ttyS0 isolcpus=1-2 nohz_full=1-2 rcu_nocbs=1-2\"",
      "/etc/systemd/system.conf: CPUAffinity=0,3   # in [Manager]: other services keep off the workers", "update-grub",
      "reboot"},
     "isolcpus lacks 1-2; nohz_full lacks 1-2; rcu_nocbs lacks 1-2"},
    {"rcu_nocbs missing only",
     [](host_tree& t) { t.write("/proc/cmdline", "isolcpus=managed_irq,domain,1-2 nohz_full=1-2\n"); },
     "cpu_isolation", status::warn, {}, "rcu_nocbs lacks 1-2"},
    {"two workers on SMT siblings",
     [](host_tree& t) {
         t.write("/sys/devices/system/cpu/cpu1/topology/thread_siblings_list", "1-2\n");
         t.write("/sys/devices/system/cpu/cpu2/topology/thread_siblings_list", "1-2\n");
     },
     "smt", status::warn, {"/etc/kwik/kwikd.toml: worker_lcores = [1, 3]   # one per core"},
     "worker lcores share a core: 1-2"},
    {"a worker offline", [](host_tree& t) { t.write("/sys/devices/system/cpu/online", "0-1,3\n"); }, "worker_lcores",
     status::fail, {"echo 1 > /sys/devices/system/cpu/cpu2/online"}},
    {"a worker that is no CPU here", [](host_tree& t) { t.config.worker_lcores = {1, 9}; }, "worker_lcores",
     status::fail, {"/etc/kwik/kwikd.toml: worker_lcores = [...]   # CPUs from 0-3"}, "9 are not CPUs"},
    {"the main lcore is a worker", [](host_tree& t) { t.config.main_lcore = 1; }, "main_lcore", status::fail, {}},
    {"shm mode wrong", [](host_tree& t) { t.chmod("/dev/shm/kwik", 0644); }, "shm_files", status::fail,
     {"chmod 0660 /dev/shm/kwik", "or: systemctl restart kwikd   # it creates them with shm_mode and shm_group"},
     "/dev/shm/kwik has mode 0644, shm_mode is 0660"},
    {"shm owned by the wrong group",
     [](host_tree& t) { t.write("/etc/group", "wheel:x:" + std::to_string(::getegid()) + ":\nkwik:x:64999:\n"); },
     "shm_files", status::fail, {"chgrp kwik /dev/shm/kwik", "chgrp kwik /dev/shm/kwik.lock"},
     "/dev/shm/kwik has group wheel, shm_group is kwik"},
    {"shm group that does not exist",
     [](host_tree& t) { t.write("/etc/group", "wheel:x:" + std::to_string(::getegid()) + ":\n"); }, "shm_files",
     status::fail, {"groupadd --system kwik"}},
    {"shm directory world-writable", [](host_tree& t) { t.chmod("/dev/shm", 0777); }, "shm_directory", status::fail,
     {"chmod o-w /dev/shm"}},
    {"a sticky world-writable directory (/dev/shm) is fine", [](host_tree& t) { t.chmod("/dev/shm", 01777); },
     "shm_directory", status::ok, {}},
    {"kwikd not running: no region", [](host_tree& t) { t.stop_kwikd(); },
     "kwikd", status::warn, {"systemctl start kwikd", "journalctl -u kwikd"}, "kwikd not running"},
    {"heartbeat stuck", [](host_tree& t) { t.heartbeat_advances = false; }, "kwikd", status::fail,
     {"systemctl restart kwikd"}, "heartbeat does not advance"},
};

class doctor_bad_state : public testing::TestWithParam<bad_state> {};

TEST_P(doctor_bad_state, names_the_fix) {
    const bad_state& c = GetParam();
    host_tree t;
    t.hold_lock();
    c.prepare(t);
    const auto findings = t.check_all();
    const finding* f = find(findings, c.check);
    ASSERT_NE(f, nullptr) << c.description << ": no finding " << c.check << "\n" << describe(findings);
    EXPECT_EQ(f->state, c.expected) << c.description << "\n" << describe(findings);
    for (const std::string& line : c.fix) {
        EXPECT_NE(std::find(f->fix.begin(), f->fix.end(), line), f->fix.end())
            << c.description << ": fix line missing: " << line << "\n" << describe(findings);
    }
    EXPECT_NE(f->found.find(c.found), std::string::npos) << c.description << ": " << f->found;
    EXPECT_EQ(exit_code(findings), c.expected == status::fail ? 1 : 0) << describe(findings);
}

INSTANTIATE_TEST_SUITE_P(cases, doctor_bad_state, testing::ValuesIn(bad_states), [](const auto& info) {
    return "case" + std::to_string(info.index);
});

TEST(doctor, stale_region_without_its_lock_holder) {
    host_tree t; // nobody holds the lock
    const auto findings = t.check_all();
    const finding* f = find(findings, "kwikd");
    ASSERT_NE(f, nullptr);
    EXPECT_EQ(f->state, status::fail);
    EXPECT_NE(f->found.find("left from a kwikd that exited"), std::string::npos) << f->found;
    EXPECT_EQ(f->fix, (std::vector<std::string>{"systemctl restart kwikd", "journalctl -u kwikd"}));
    EXPECT_FALSE(kwikd_running(t.config, host_reader(t.root)));
}

TEST(doctor, running_kwikd_counts_reserved_hugepages) {
    host_tree t;
    t.hold_lock();
    t.hugepages(0, 256, 0); // kwikd holds all of them
    const auto findings = t.check_all();
    const finding* f = find(findings, "hugepages node0");
    ASSERT_NE(f, nullptr);
    EXPECT_EQ(f->state, status::ok) << f->found;
}

TEST(doctor, af_xdp_port) {
    host_tree t;
    t.hold_lock();
    t.config.ports = {{"edge", "net_af_xdp0,iface=eth1,start_queue=0,queue_count=2", 2, 1500}};
    t.write("/sys/class/net/eth1/flags", "0x1003\n");
    t.write("/sys/class/net/eth1/mtu", "1500\n");
    t.mkdir("/sys/class/net/eth1/queues/rx-0");
    t.mkdir("/sys/class/net/eth1/queues/rx-1");
    t.mkdir("/sys/class/net/eth1/queues/tx-0");
    t.link("/sys/class/net/eth1/device/driver", "../../../bus/pci/drivers/i40e");
    auto findings = t.check_all();
    for (const char* id : {"nic edge", "queues edge", "mtu edge"}) {
        const finding* f = find(findings, id);
        ASSERT_NE(f, nullptr) << id;
        EXPECT_EQ(f->state, status::ok) << id << ": " << f->found;
    }
    EXPECT_EQ(find(findings, "iommu")->state, status::skip);

    t.write("/sys/class/net/eth1/flags", "0x1002\n");
    t.remove("/sys/class/net/eth1/queues/rx-1");
    t.write("/sys/class/net/eth1/mtu", "9000\n");
    findings = t.check_all();
    EXPECT_EQ(find(findings, "nic edge")->fix, std::vector<std::string>{"ip link set eth1 up"});
    EXPECT_EQ(find(findings, "queues edge")->fix, std::vector<std::string>{"ethtool -L eth1 combined 2"});
    const finding* mtu = find(findings, "mtu edge");
    EXPECT_EQ(mtu->state, status::fail);
    EXPECT_NE(mtu->found.find("3046, the XDP limit for i40e"), std::string::npos) << mtu->found;
    EXPECT_EQ(mtu->fix.front(), "ip link set eth1 mtu 1500");

    t.remove("/sys/class/net/eth1");
    findings = t.check_all();
    EXPECT_EQ(find(findings, "nic edge")->state, status::fail);
}

TEST(doctor, xdp_program_on_the_interface) {
    EXPECT_EQ(check_xdp_program("edge", "eth1", R"([{"ifname":"eth1","mtu":1500}])", "k.toml").state, status::ok);
    const finding ours =
        check_xdp_program("edge", "eth1", R"([{"ifname":"eth1","xdp":{"mode":1,"prog":{"id":7,"name":"kwik_xdp"}}}])",
                          "k.toml");
    EXPECT_EQ(ours.state, status::ok) << ours.found;
    const finding other = check_xdp_program(
        "edge", "eth1", R"([{"ifname":"eth1","xdp":{"mode":1,"attached":[{"mode":1,"prog":{"id":9,"name":"xdp_fw"}}]}}])", "k.toml");
    EXPECT_EQ(other.state, status::warn);
    EXPECT_NE(other.found.find("xdp_fw"), std::string::npos) << other.found;
    EXPECT_EQ(other.fix, (std::vector<std::string>{"ip link set dev eth1 xdp off   # if it is a leftover",
                                                   "k.toml: device = \"net_af_xdp0,iface=eth1,xdp_prog=/usr/lib/kwik/kwik_xdp.o\""}));
    EXPECT_EQ(check_xdp_program("edge", "eth1", "not json", "k.toml").state, status::skip);
}

TEST(doctor, effective_config) {
    const std::string text = "# kwikd: effective configuration\n\n[kwikd]\nname = \"k1\"\nlog_level = \"info\"\n"
                             "main_lcore = 2\nworker_lcores = [3, 4, 5]\nhugepages = true\nmemory_mb = 2048\n"
                             "eal_args = []\nstats_interval_ms = 1000\nshm_mode = \"0660\"\npoll_mode = \"busy\"\n"
                             "idle_sleep_max_us = 200\n\n[[port]]\nname = \"wan\"\ndevice = \"3B:00.1\"\n"
                             "rx_queues = 3\nmtu = 9000\n\n[[port]]\nname = \"x\"\n"
                             "device = \"net_af_xdp1,iface=ens5,queue_count=4,start_queue=2\"\nrx_queues = 4\n";
    auto v = parse_effective_config(text);
    ASSERT_TRUE(v) << v.message();
    EXPECT_EQ(v->name, "k1");
    EXPECT_EQ(v->main_lcore, 2u);
    EXPECT_EQ(v->worker_lcores, (std::vector<unsigned>{3, 4, 5}));
    EXPECT_EQ(v->memory_mb, 2048u);
    EXPECT_EQ(v->shm_mode, 0660u);
    EXPECT_EQ(v->shm_directory, "/dev/shm"); // absent: today's kwikd
    EXPECT_FALSE(v->shm_group);
    EXPECT_EQ(v->hugepage_kb, 2048u);
    ASSERT_EQ(v->ports.size(), 2u);
    EXPECT_EQ(v->ports[0].mtu, 9000u);
    const port_device pci = classify(v->ports[0]);
    EXPECT_EQ(pci.what, port_device::kind::pci);
    EXPECT_EQ(pci.pci_address, "0000:3b:00.1");
    const port_device xdp = classify(v->ports[1]);
    EXPECT_EQ(xdp.what, port_device::kind::af_xdp);
    EXPECT_EQ(xdp.iface, "ens5");
    EXPECT_EQ(xdp.start_queue, 2u);
    EXPECT_EQ(xdp.queue_count, 4u);
    EXPECT_EQ(classify({"t", "net_tap0,iface=k0", 1, 1500}).what, port_device::kind::vdev);

    auto more = parse_effective_config("[kwikd]\nshm_directory = \"/run/kwik\"\nshm_group = \"kwik\"\n"
                                       "hugepage_size = \"1G\"\n");
    ASSERT_TRUE(more) << more.message();
    EXPECT_EQ(more->shm_directory, "/run/kwik");
    EXPECT_EQ(more->shm_group, "kwik");
    EXPECT_EQ(more->hugepage_kb, 1024u * 1024u);

    auto bad = parse_effective_config("[kwikd]\nhugepage_size = \"4M\"\n");
    ASSERT_FALSE(bad);
    EXPECT_NE(bad.message().find("kwikd.hugepage_size"), std::string::npos) << bad.message();
    auto bad_mode = parse_effective_config("[kwikd]\nshm_mode = \"0999\"\n");
    ASSERT_FALSE(bad_mode);
    EXPECT_NE(bad_mode.message().find("kwikd.shm_mode"), std::string::npos) << bad_mode.message();
    EXPECT_FALSE(parse_effective_config("not toml ["));
}

TEST(doctor, cpu_lists) {
    EXPECT_EQ(parse_cpu_list("0-3,8,10-11\n"), (std::vector<unsigned>{0, 1, 2, 3, 8, 10, 11}));
    EXPECT_EQ(parse_cpu_list(""), std::vector<unsigned>{});
    EXPECT_FALSE(parse_cpu_list("3-1"));
    EXPECT_FALSE(parse_cpu_list("a"));
    EXPECT_EQ(format_cpu_list({8, 0, 1, 2, 3, 10, 11}), "0-3,8,10-11");
}

// A stand-in kwikd: a script printing what kwikd --check-config would.
std::string script(const std::string& dir, const std::string& body) {
    const std::string path = dir + "/kwikd";
    std::ofstream(path) << "#!/bin/sh\n" << body;
    ::chmod(path.c_str(), 0755);
    return path;
}

TEST(doctor, check_config_runs_kwikd) {
    host_tree t;
    std::optional<kwikd_view> view;
    const std::string refuse = script(t.root, "echo \"$2:4: kwikd.worker_lcores: 0 is the main lcore\" >&2\nexit 1\n");
    auto findings = check_config(run_check_config(refuse, "/etc/kwik/kwikd.toml"), view);
    ASSERT_EQ(findings.size(), 1u);
    EXPECT_EQ(findings[0].state, status::fail);
    EXPECT_NE(findings[0].found.find("/etc/kwik/kwikd.toml:4: kwikd.worker_lcores: 0 is the main lcore"),
              std::string::npos)
        << findings[0].found;
    EXPECT_FALSE(view);

    const std::string accept = script(t.root, "[ \"$3\" = --check-config ] || exit 3\n"
                                              "printf '[kwikd]\\nname = \"x\"\\nworker_lcores = [1]\\n'\n");
    findings = check_config(run_check_config(accept, "/etc/kwik/kwikd.toml"), view);
    EXPECT_EQ(findings[0].state, status::ok) << findings[0].found;
    ASSERT_TRUE(view);
    EXPECT_EQ(view->name, "x");
    EXPECT_EQ(view->config_path, "/etc/kwik/kwikd.toml"); // the fix lines name the file doctor was given

    findings = check_config(run_check_config(t.root + "/no-such-kwikd", "/etc/kwik/kwikd.toml"), view);
    EXPECT_EQ(findings[0].state, status::fail);
    EXPECT_NE(findings[0].found.find("cannot run"), std::string::npos) << findings[0].found;

    const std::string hang = script(t.root, "exec sleep 30\n");
    findings = check_config(run_check_config(hang, "/etc/kwik/kwikd.toml", 200), view);
    EXPECT_EQ(findings[0].state, status::fail);
    EXPECT_NE(findings[0].found.find("no answer in 200 ms"), std::string::npos) << findings[0].found;
}

TEST(doctor, kwik_cp_unreachable) {
    // A port nobody listens on: bound, then closed.
    const int s = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(::bind(s, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
    socklen_t len = sizeof a;
    ::getsockname(s, reinterpret_cast<sockaddr*>(&a), &len);
    ::close(s);
    host_tree t;
    const std::string secret = t.root + "/ops.secret";
    std::ofstream(secret) << std::string(64, 'a') << "\n";
    ::chmod(secret.c_str(), 0600);
    settings_flags flags;
    flags.server = "127.0.0.1:" + std::to_string(ntohs(a.sin_port));
    flags.insecure_plain = true;
    flags.key_id = "ops";
    flags.secret_file = secret;
    flags.timeout_ms = "2000";
    const auto none = [](std::string_view) { return std::optional<std::string>(); };
    const auto settings = resolve_settings(flags, none, t.root + "/etc/kwik/kwikctl.toml");
    ASSERT_TRUE(settings) << settings.message();
    auto findings = check_control(settings, "/etc/kwik/kwikctl.toml", nullptr);
    ASSERT_EQ(findings.size(), 1u);
    EXPECT_EQ(findings[0].state, status::fail);
    EXPECT_NE(findings[0].found.find("kwik-cp unreachable at " + *flags.server), std::string::npos) << findings[0].found;
    EXPECT_EQ(findings[0].fix[0], "systemctl status kwik-cp");

    settings_flags no_key;
    const auto unresolved = resolve_settings(no_key, none, t.root + "/etc/kwik/kwikctl.toml");
    ASSERT_FALSE(unresolved);
    findings = check_control(unresolved, "/etc/kwik/kwikctl.toml", nullptr);
    EXPECT_EQ(findings[0].state, status::fail);
    EXPECT_NE(findings[0].found.find("kwikctl's settings"), std::string::npos) << findings[0].found;
}

TEST(doctor, output) {
    const std::vector<finding> findings = {
        {"config", status::ok, "fine", {}},
        {"nic wan", status::fail, "0000:01:00.0 on kernel driver ixgbe", {"dpdk-devbind.py --bind=vfio-pci 0000:01:00.0"}},
        {"smt", status::warn, "shared", {}},
    };
    const std::string text = render_text(findings);
    EXPECT_NE(text.find("CHECK    STATUS  FOUND\n"), std::string::npos) << text;
    EXPECT_NE(text.find("nic wan  fail    0000:01:00.0 on kernel driver ixgbe\n"
                        "                 fix: dpdk-devbind.py --bind=vfio-pci 0000:01:00.0\n"),
              std::string::npos)
        << text;
    EXPECT_NE(text.find("doctor: 1 ok, 1 warn, 1 fail, 0 skip\n"), std::string::npos) << text;
    const auto j = to_json(findings);
    EXPECT_EQ(j["checks"][1]["check"], "nic wan");
    EXPECT_EQ(j["checks"][1]["status"], "fail");
    EXPECT_EQ(j["checks"][1]["fix"][0], "dpdk-devbind.py --bind=vfio-pci 0000:01:00.0");
    EXPECT_EQ(j["summary"]["fail"], 1);
    EXPECT_EQ(j["exit"], 1);
    EXPECT_EQ(exit_code({findings[0], findings[2]}), 0);
}

} // namespace
