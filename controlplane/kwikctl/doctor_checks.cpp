// kwikctl doctor's host checks (doctor.hpp): IOMMU and vfio, the ports' NICs, hugepages and the
// worker CPUs, each a function of kwikd's configuration and the host_reader.
#include "controlplane/kwikctl/doctor.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <array>
#include <cctype>
#include <charconv>
#include <cstdio>
#include <map>
#include <set>
#include <sstream>

namespace kwik::ctl::doctor {

namespace {

// What kwik-prepare reads: the kwikd configuration of an installed appliance.
constexpr std::string_view installed_config = "/etc/kwik/kwikd.toml";

std::string join(const std::vector<std::string>& items, std::string_view separator) {
    std::string out;
    for (const std::string& s : items) {
        out += (out.empty() ? "" : std::string(separator)) + s;
    }
    return out;
}

std::optional<long> number_in(const host_reader& host, std::string_view path) {
    const auto line = host.read_line(path);
    if (!line) {
        return std::nullopt;
    }
    long v = 0;
    const auto [p, ec] = std::from_chars(line->data(), line->data() + line->size(), v);
    if (ec != std::errc() || p != line->data() + line->size()) {
        return std::nullopt;
    }
    return v;
}

// The kernel command line's parameters: name -> value ("" for a bare word).
std::map<std::string, std::string> kernel_parameters(const host_reader& host) {
    std::map<std::string, std::string> out;
    std::istringstream in(host.read("/proc/cmdline").value_or(""));
    for (std::string w; in >> w;) {
        const auto eq = w.find('=');
        out[w.substr(0, eq)] = eq == std::string::npos ? "" : w.substr(eq + 1);
    }
    return out;
}

// A CPU list of a kernel parameter, without isolcpus' flags ("domain,managed_irq,2-5" -> 2-5).
std::vector<unsigned> kernel_cpu_list(const std::map<std::string, std::string>& params, const std::string& name) {
    const auto it = params.find(name);
    if (it == params.end()) {
        return {};
    }
    std::string list;
    std::istringstream in(it->second);
    for (std::string item; std::getline(in, item, ',');) {
        if (!item.empty() && std::isdigit(static_cast<unsigned char>(item.front())) != 0) {
            list += (list.empty() ? "" : ",") + item;
        }
    }
    return parse_cpu_list(list).value_or(std::vector<unsigned>{});
}

std::vector<unsigned> sysfs_cpu_list(const host_reader& host, std::string_view path) {
    return parse_cpu_list(host.read_line(path).value_or("")).value_or(std::vector<unsigned>{});
}

bool contains(const std::vector<unsigned>& list, unsigned v) {
    return std::find(list.begin(), list.end(), v) != list.end();
}

std::string cpu_dir(unsigned cpu) { return "/sys/devices/system/cpu/cpu" + std::to_string(cpu); }
std::string pci_dir(const std::string& address) { return "/sys/bus/pci/devices/" + address; }

// The NUMA node of a CPU (its nodeN link), else its package; nullopt when neither is there.
std::optional<int> cpu_node(const host_reader& host, unsigned cpu) {
    for (const std::string& name : host.list(cpu_dir(cpu))) {
        int node = 0;
        if (name.starts_with("node") &&
            std::from_chars(name.data() + 4, name.data() + name.size(), node).ec == std::errc()) {
            return node;
        }
    }
    if (const auto package = number_in(host, cpu_dir(cpu) + "/topology/physical_package_id")) {
        return static_cast<int>(*package);
    }
    return std::nullopt;
}

// The NUMA node of a PCI device; nullopt when the kernel does not know (-1) or it is absent.
std::optional<int> pci_node(const host_reader& host, const std::string& address) {
    const auto node = number_in(host, pci_dir(address) + "/numa_node");
    if (!node || *node < 0) {
        return std::nullopt;
    }
    return static_cast<int>(*node);
}

std::string pci_driver(const host_reader& host, const std::string& address) {
    return host.link_name(pci_dir(address) + "/driver").value_or("");
}

// NICs whose DPDK PMD works next to the kernel driver (no rebinding, no vfio).
bool is_bifurcated(std::string_view driver) { return driver == "mlx5_core" || driver == "mlx4_core"; }

struct pci_port {
    const port_config* port;
    std::string address;
};

std::vector<pci_port> pci_ports(const kwikd_view& config) {
    std::vector<pci_port> out;
    for (const port_config& p : config.ports) {
        const port_device d = classify(p);
        if (d.what == port_device::kind::pci) {
            out.push_back({&p, d.pci_address});
        }
    }
    return out;
}

std::vector<std::string> reboot_with(const host_reader& host, const std::vector<std::string>& parameters) {
    return {grub_cmdline_fix(host, parameters), "update-grub", "reboot"};
}

std::string kb_text(std::uint64_t kb) {
    return kb >= 1024 * 1024 ? std::to_string(kb / (1024 * 1024)) + "G" : std::to_string(kb / 1024) + "M";
}

} // namespace

// ---- 2. IOMMU and vfio ------------------------------------------------------------------------

std::vector<finding> check_iommu(const kwikd_view& config, const host_reader& host) {
    std::vector<std::string> need;
    for (const pci_port& p : pci_ports(config)) {
        if (!is_bifurcated(pci_driver(host, p.address))) {
            need.push_back(p.address);
        }
    }
    if (need.empty()) {
        return {{"iommu", status::skip, "no PCI port that needs vfio (none configured, or only mlx5 ones)", {}}};
    }
    std::vector<finding> out;
    const std::string ports = join(need, ", ");
    const std::size_t groups = host.list("/sys/kernel/iommu_groups").size();
    if (groups > 0) {
        out.push_back({"iommu", status::ok, "IOMMU on: " + std::to_string(groups) + " groups in /sys/kernel/iommu_groups", {}});
    } else {
        const std::string cpuinfo = host.read("/proc/cpuinfo").value_or("");
        const bool amd = cpuinfo.find("AuthenticAMD") != std::string::npos;
        const std::vector<std::string> params = amd ? std::vector<std::string>{"amd_iommu=on", "iommu=pt"}
                                                    : std::vector<std::string>{"intel_iommu=on", "iommu=pt"};
        const auto cmdline = kernel_parameters(host);
        const auto on = cmdline.find(amd ? "amd_iommu" : "intel_iommu");
        finding f{"iommu", status::fail,
                  "IOMMU off (/sys/kernel/iommu_groups is empty); vfio-pci needs it for " + ports, {}};
        if (on != cmdline.end() && on->second == "on") {
            f.found += "; the kernel command line already has " + on->first +
                       "=on: turn on " + (amd ? "AMD-Vi (IOMMU)" : "VT-d") + " in the firmware set-up";
            f.fix.push_back("firmware (BIOS/UEFI) set-up: enable " + std::string(amd ? "AMD-Vi / IOMMU" : "Intel VT-d"));
        } else {
            f.fix = reboot_with(host, params);
        }
        out.push_back(std::move(f));
    }
    if (host.exists("/sys/module/vfio_pci")) {
        out.push_back({"vfio_module", status::ok, "vfio-pci loaded (/sys/module/vfio_pci)", {}});
    } else {
        out.push_back({"vfio_module", status::fail, "vfio-pci not loaded (no /sys/module/vfio_pci)",
                       {"modprobe vfio-pci", "/etc/modules-load.d/kwik.conf: vfio-pci"}});
    }
    if (host.exists("/dev/vfio/vfio")) {
        out.push_back({"vfio_device", status::ok, "/dev/vfio/vfio present", {}});
    } else {
        out.push_back({"vfio_device", status::fail, "/dev/vfio/vfio missing (the vfio module is not loaded)",
                       {"modprobe vfio-pci"}});
    }
    const std::string noiommu = host.read_line("/sys/module/vfio/parameters/enable_unsafe_noiommu_mode").value_or("N");
    if (noiommu == "Y" || noiommu == "1") {
        out.push_back({"vfio_noiommu", status::warn,
                       "vfio in no-IOMMU mode (enable_unsafe_noiommu_mode = Y): the NIC can DMA anywhere in memory",
                       {"echo N > /sys/module/vfio/parameters/enable_unsafe_noiommu_mode",
                        "/etc/modprobe.d/kwik.conf: remove \"options vfio enable_unsafe_noiommu_mode=1\""}});
    } else {
        out.push_back({"vfio_noiommu", status::ok, "vfio keeps IOMMU protection (no-IOMMU mode off)", {}});
    }
    return out;
}

// ---- 3. NICs ----------------------------------------------------------------------------------

namespace {

// The IOMMU group of a vfio-bound NIC: every other device must be on vfio-pci or have no driver.
std::optional<finding> check_group(const host_reader& host, const pci_port& p) {
    const auto group = host.link_name(pci_dir(p.address) + "/iommu_group");
    const std::string id = "iommu_group " + p.port->name;
    if (!group) {
        return finding{id, status::skip, p.address + " has no IOMMU group (IOMMU off: see check iommu)", {}};
    }
    std::vector<std::string> blocking, fix;
    const std::string devices = "/sys/kernel/iommu_groups/" + *group + "/devices";
    for (const std::string& other : host.list(devices)) {
        if (other == p.address) {
            continue;
        }
        const std::string driver = pci_driver(host, other);
        // pcieport: bridges stay with their driver (vfio allows them in a group).
        if (driver.empty() || driver == "vfio-pci" || driver == "pci-stub" || driver == "pcieport") {
            continue;
        }
        blocking.push_back(other + " (" + driver + ")");
        fix.push_back("dpdk-devbind.py --bind=vfio-pci " + other + "   # if that device may leave the kernel");
    }
    if (blocking.empty()) {
        return finding{id, status::ok, "IOMMU group " + *group + " of " + p.address + " holds no kernel-bound device", {}};
    }
    fix.push_back("or move the NIC to a slot with its own IOMMU group (ACS), see: ls /sys/kernel/iommu_groups/" +
                  *group + "/devices");
    return finding{id, status::fail,
                   "IOMMU group " + *group + " of " + p.address + " is shared with kernel-bound " + join(blocking, ", ") +
                       ": vfio cannot open the group",
                   fix};
}

// The worker lcores off the NIC's node, and a suggestion of CPUs on it.
std::optional<finding> check_numa(const kwikd_view& config, const host_reader& host, const pci_port& p) {
    const std::string id = "numa " + p.port->name;
    const auto node = pci_node(host, p.address);
    if (!node) {
        return finding{id, status::skip, p.address + ": the kernel reports no NUMA node (single-node machine)", {}};
    }
    std::vector<unsigned> remote;
    for (unsigned w : config.worker_lcores) {
        const auto n = cpu_node(host, w);
        if (n && *n != *node) {
            remote.push_back(w);
        }
    }
    if (remote.empty()) {
        return finding{id, status::ok, p.address + " on node " + std::to_string(*node) + ", as every worker lcore", {}};
    }
    finding f{id, status::warn,
              p.address + " on node " + std::to_string(*node) + " but worker lcores " + format_cpu_list(remote) +
                  " are not: their packets cross the interconnect",
              {}};
    std::vector<unsigned> local;
    for (unsigned c : sysfs_cpu_list(host, "/sys/devices/system/node/node" + std::to_string(*node) + "/cpulist")) {
        if (c != config.main_lcore && local.size() < config.worker_lcores.size()) {
            local.push_back(c);
        }
    }
    if (local.size() == config.worker_lcores.size()) {
        std::string list;
        for (unsigned c : local) {
            list += (list.empty() ? "" : ", ") + std::to_string(c);
        }
        f.fix.push_back(config.config_path + ": worker_lcores = [" + list + "]   # CPUs of node " +
                        std::to_string(*node));
    } else {
        f.fix.push_back("move the NIC to a slot of the workers' node, or choose worker_lcores on node " +
                        std::to_string(*node) + " in " + config.config_path);
    }
    return f;
}

finding check_pci_port(const kwikd_view& config, const host_reader& host, const pci_port& p) {
    const std::string id = "nic " + p.port->name;
    if (!host.exists(pci_dir(p.address))) {
        return {id, status::fail, "no PCI device " + p.address + " (" + p.port->device + ")",
                {"lspci -D -d ::0200   # the Ethernet controllers and their addresses",
                 config.config_path + ": device = \"<address>\" in the [[port]] named " + p.port->name}};
    }
    const std::string driver = pci_driver(host, p.address);
    if (driver == "vfio-pci") {
        return {id, status::ok, p.address + " bound to vfio-pci", {}};
    }
    if (driver == "uio_pci_generic" || driver == "igb_uio") {
        return {id, status::warn, p.address + " bound to " + driver + ": works, but without IOMMU protection",
                {"dpdk-devbind.py --bind=vfio-pci " + p.address}};
    }
    if (is_bifurcated(driver)) {
        return {id, status::ok, p.address + " on " + driver + ": bifurcated, DPDK's PMD shares it with the kernel", {}};
    }
    std::vector<std::string> fix;
    const auto ifaces = host.list(pci_dir(p.address) + "/net");
    for (const std::string& iface : ifaces) {
        fix.push_back("ip link set " + iface + " down");
    }
    fix.push_back("dpdk-devbind.py --bind=vfio-pci " + p.address);
    fix.push_back("or: kwik-prepare   # binds every PCI port of " + std::string(installed_config));
    if (driver.empty()) {
        return {id, status::fail, p.address + " has no driver", fix};
    }
    return {id, status::fail,
            p.address + " on kernel driver " + driver + (ifaces.empty() ? "" : " (" + join(ifaces, ", ") + ")") +
                ": DPDK cannot drive it",
            fix};
}

// The largest MTU an XDP program accepts on a driver, with 4 KiB pages: one frame per page less
// XDP headroom and skb_shared_info. net_af_xdp's own limit (a 4 KiB UMEM frame less the mbuf
// and XDP headroom) is 3520.
std::uint32_t xdp_mtu_limit(std::string_view driver) {
    if (driver == "mlx5_core") {
        return 3498;
    }
    if (driver == "i40e" || driver == "ice" || driver == "ixgbe" || driver == "igc") {
        return 3046;
    }
    return 3520;
}

std::vector<finding> check_af_xdp_port(const kwikd_view& config, const host_reader& host, const port_config& port,
                                       const port_device& d) {
    const std::string id = "nic " + port.name;
    const std::string dir = "/sys/class/net/" + d.iface;
    if (d.iface.empty()) {
        return {{id, status::fail, port.device + " names no interface",
                 {config.config_path + ": device = \"" + port.device + ",iface=<interface>\""}}};
    }
    if (!host.exists(dir)) {
        return {{id, status::fail, "no interface " + d.iface + " (" + port.device + ")",
                 {"ip -br link   # the interfaces", config.config_path + ": iface= in the [[port]] named " + port.name}}};
    }
    std::vector<finding> out;
    const std::string driver = host.link_name(dir + "/device/driver").value_or("");
    const std::string what = d.iface + (driver.empty() ? " (virtual)" : " (" + driver + ")");
    // IFF_UP in the interface's flags ("0x1003").
    std::string flags = host.read_line(dir + "/flags").value_or("0");
    unsigned long bits = 0;
    const std::size_t digits = flags.starts_with("0x") ? 2 : 0;
    std::from_chars(flags.data() + digits, flags.data() + flags.size(), bits, 16);
    const bool up = (bits & 0x1u) != 0;
    if (!up) {
        out.push_back({id, status::fail, what + " is down", {"ip link set " + d.iface + " up"}});
    } else {
        out.push_back({id, status::ok, what + " is up", {}});
    }
    std::size_t rx = 0;
    for (const std::string& q : host.list(dir + "/queues")) {
        rx += q.starts_with("rx-") ? 1 : 0;
    }
    const std::uint32_t wanted = d.start_queue + std::max(d.queue_count, port.rx_queues);
    if (rx < wanted) {
        out.push_back({"queues " + port.name, status::fail,
                       d.iface + " has " + std::to_string(rx) + " rx queues; the port uses queues " +
                           std::to_string(d.start_queue) + ".." + std::to_string(wanted - 1),
                       {"ethtool -L " + d.iface + " combined " + std::to_string(wanted)}});
    } else {
        out.push_back({"queues " + port.name, status::ok,
                       d.iface + " has " + std::to_string(rx) + " rx queues, " + std::to_string(wanted) + " used", {}});
    }
    const std::uint32_t limit = xdp_mtu_limit(driver);
    const auto mtu = number_in(host, dir + "/mtu");
    const std::uint32_t largest = std::max<std::uint32_t>(port.mtu, mtu ? static_cast<std::uint32_t>(*mtu) : 0);
    if (largest > limit) {
        out.push_back({"mtu " + port.name, status::fail,
                       d.iface + " MTU " + std::to_string(mtu.value_or(0)) + ", port mtu " + std::to_string(port.mtu) +
                           ": above " + std::to_string(limit) + ", the XDP limit for " +
                           (driver.empty() ? "net_af_xdp" : driver),
                       {"ip link set " + d.iface + " mtu " + std::to_string(std::min(limit, port.mtu)),
                        config.config_path + ": mtu = " + std::to_string(std::min(limit, port.mtu)) +
                            " in the [[port]] named " + port.name}});
    } else {
        out.push_back({"mtu " + port.name, status::ok,
                       d.iface + " MTU " + std::to_string(mtu.value_or(0)) + " within the XDP limit " + std::to_string(limit), {}});
    }
    if (host.root() == "/") {
        const program_run ip = run_program({"ip", "-j", "-d", "link", "show", "dev", d.iface}, 5'000);
        if (ip.exit_code == 0) {
            out.push_back(check_xdp_program(port.name, d.iface, ip.out, config.config_path));
        } else {
            out.push_back({"xdp " + port.name, status::skip, "ip -j -d link show dev " + d.iface + " failed: " + ip.err, {}});
        }
    }
    return out;
}

} // namespace

finding check_xdp_program(const std::string& port, const std::string& iface, const std::string& ip_json,
                          const std::string& config_path) {
    const std::string id = "xdp " + port;
    const auto links = nlohmann::json::parse(ip_json, nullptr, false);
    if (links.is_discarded() || !links.is_array() || links.empty() || !links[0].is_object()) {
        return {id, status::skip, "ip printed no link for " + iface, {}};
    }
    const auto xdp = links[0].find("xdp");
    if (xdp == links[0].end() || !xdp->is_object()) {
        return {id, status::ok, "no XDP program on " + iface + ": net_af_xdp attaches Kwik's", {}};
    }
    std::vector<std::string> names;
    const auto name_of = [&](const nlohmann::json& prog) {
        if (prog.is_object() && prog.contains("name") && prog["name"].is_string()) {
            names.push_back(prog["name"].get<std::string>());
        }
    };
    if (xdp->contains("prog")) {
        name_of((*xdp)["prog"]);
    }
    if (xdp->contains("attached") && (*xdp)["attached"].is_array()) {
        for (const auto& a : (*xdp)["attached"]) {
            if (a.contains("prog")) {
                name_of(a["prog"]);
            }
        }
    }
    const bool ours = !names.empty() && std::all_of(names.begin(), names.end(), [](const std::string& n) { return n == "kwik_xdp"; });
    if (ours) {
        return {id, status::ok, iface + " runs Kwik's XDP program kwik_xdp", {}};
    }
    return {id, status::warn,
            iface + " runs XDP program " + (names.empty() ? std::string("(unnamed)") : join(names, ", ")) +
                ", not Kwik's kwik_xdp: the Kwik UDP ports may never reach kwikd's AF_XDP sockets",
            {"ip link set dev " + iface + " xdp off   # if it is a leftover",
             config_path + ": device = \"net_af_xdp0,iface=" + iface +
                 ",xdp_prog=/usr/lib/kwik/kwik_xdp.o\""}};
}

std::vector<finding> check_nics(const kwikd_view& config, const host_reader& host) {
    std::vector<finding> out;
    for (const port_config& port : config.ports) {
        const port_device d = classify(port);
        if (d.what == port_device::kind::pci) {
            const pci_port p{&port, d.pci_address};
            finding nic = check_pci_port(config, host, p);
            const bool present = host.exists(pci_dir(p.address));
            const std::string driver = pci_driver(host, p.address);
            out.push_back(std::move(nic));
            if (present && !is_bifurcated(driver)) {
                out.push_back(*check_group(host, p));
            }
            if (present) {
                out.push_back(*check_numa(config, host, p));
            }
        } else if (d.what == port_device::kind::af_xdp) {
            auto found = check_af_xdp_port(config, host, port, d);
            out.insert(out.end(), found.begin(), found.end());
        }
    }
    if (out.empty()) {
        out.push_back({"nics", status::skip, "no PCI or AF_XDP port (virtual devices only)", {}});
    }
    return out;
}

// ---- 4. hugepages -----------------------------------------------------------------------------

std::vector<finding> check_hugepages(const kwikd_view& config, const host_reader& host, bool running) {
    if (!config.hugepages) {
        return {{"hugepages", status::warn, "hugepages = false: EAL runs on ordinary pages (--no-huge); production runs on hugepages",
                 {config.config_path + ": hugepages = true   # in [kwikd]", "kwik-prepare   # reserves and mounts them"}}};
    }
    const std::uint64_t page_kb = config.hugepage_kb;
    const std::string size = kb_text(page_kb);
    const std::string size_dir = "hugepages-" + std::to_string(page_kb) + "kB";
    // The nodes that host a port or a worker.
    std::set<int> nodes;
    const bool numa = host.exists("/sys/devices/system/node/node0");
    if (numa) {
        for (unsigned w : config.worker_lcores) {
            nodes.insert(cpu_node(host, w).value_or(0));
        }
        for (const pci_port& p : pci_ports(config)) {
            if (const auto n = pci_node(host, p.address)) {
                nodes.insert(*n);
            }
        }
    } else {
        nodes.insert(-1);
    }
    std::vector<finding> out;
    for (int node : nodes) {
        const std::string where = node < 0 ? "/sys/kernel/mm/hugepages/" + size_dir
                                            : "/sys/devices/system/node/node" + std::to_string(node) + "/hugepages/" + size_dir;
        const std::string id = node < 0 ? "hugepages" : "hugepages node" + std::to_string(node);
        const std::string node_arg = node < 0 ? "" : " --node " + std::to_string(node);
        if (!host.exists(where)) {
            out.push_back({id, status::fail, "the kernel offers no " + size + " pages (" + where + " missing)",
                           page_kb > 2048 ? reboot_with(host, {"hugepagesz=1G"})
                                          : std::vector<std::string>{config.config_path + ": hugepage_size = \"2M\""}});
            continue;
        }
        const long nr = number_in(host, where + "/nr_hugepages").value_or(0);
        const long free_pages = number_in(host, where + "/free_hugepages").value_or(0);
        const long have = running ? nr : free_pages;
        const std::string counted = running ? "reserved (kwikd holds them)" : "free";
        const std::string state = std::to_string(have) + " " + size + " pages " + counted + " of " + std::to_string(nr);
        if (!config.memory_mb) {
            if (have > 0) {
                out.push_back({id, status::warn, state + "; memory_mb is unset, so EAL takes them all and the amount cannot be checked",
                               {config.config_path + ": memory_mb = <MB>   # in [kwikd]"}});
            } else {
                out.push_back({id, status::fail, state + ": EAL cannot start",
                               {"dpdk-hugepages.py" + node_arg + " -p " + size + " --reserve 1G", "or: kwik-prepare"}});
            }
            continue;
        }
        // memory_mb is spread over the nodes that host ports and workers.
        const std::uint64_t share_kb = (std::uint64_t{*config.memory_mb} * 1024 + nodes.size() - 1) / nodes.size();
        const long need = static_cast<long>((share_kb + page_kb - 1) / page_kb);
        const std::string share = "memory_mb " + std::to_string(*config.memory_mb) +
                                  (nodes.size() > 1 ? " over " + std::to_string(nodes.size()) + " nodes" : "") + " needs " +
                                  std::to_string(need);
        if (have >= need) {
            out.push_back({id, status::ok, state + "; " + share, {}});
            continue;
        }
        const long total = running ? need : nr + (need - have);
        finding f{id, status::fail, state + "; " + share, {}};
        if (page_kb > 2048) {
            f.fix = {"dpdk-hugepages.py" + node_arg + " -p 1G --reserve " + std::to_string(total) + "G   # may fail once memory is fragmented"};
            auto boot = reboot_with(host, {"default_hugepagesz=1G", "hugepagesz=1G",
                                           "hugepages=" + (node < 0 ? "" : std::to_string(node) + ":") + std::to_string(total)});
            f.fix.insert(f.fix.end(), boot.begin(), boot.end());
        } else {
            f.fix = {"dpdk-hugepages.py" + node_arg + " -p 2M --reserve " + std::to_string(total * 2) + "M",
                     "or: kwik-prepare   # reserves them at every boot"};
        }
        out.push_back(std::move(f));
    }
    // A hugetlbfs mount of the configured size.
    std::uint64_t default_kb = 2048;
    if (const auto meminfo = host.read("/proc/meminfo")) {
        const auto at = meminfo->find("Hugepagesize:");
        if (at != std::string::npos) {
            std::istringstream in(meminfo->substr(at + 13));
            in >> default_kb;
        }
    }
    std::string mount_point;
    std::istringstream mounts(host.read("/proc/mounts").value_or(""));
    for (std::string line; std::getline(mounts, line);) {
        std::istringstream in(line);
        std::string device, dir, type, opts;
        in >> device >> dir >> type >> opts;
        if (type != "hugetlbfs") {
            continue;
        }
        std::uint64_t kb = default_kb;
        const auto at = opts.find("pagesize=");
        if (at != std::string::npos) {
            std::istringstream p(opts.substr(at + 9));
            std::uint64_t v = 0;
            char unit = 'K';
            p >> v >> unit;
            kb = unit == 'G' ? v * 1024 * 1024 : unit == 'M' ? v * 1024 : v;
        }
        if (kb == page_kb) {
            mount_point = dir;
            break;
        }
    }
    if (!mount_point.empty()) {
        out.push_back({"hugetlbfs", status::ok, "hugetlbfs for " + size + " pages mounted at " + mount_point, {}});
    } else {
        const std::string dir = page_kb == default_kb ? "/dev/hugepages" : "/dev/hugepages" + size;
        out.push_back({"hugetlbfs", status::fail, "no hugetlbfs mount for " + size + " pages in /proc/mounts",
                       {"mkdir -p " + dir + " && mount -t hugetlbfs -o pagesize=" + size + " nodev " + dir,
                        "/etc/fstab: nodev " + dir + " hugetlbfs pagesize=" + size + " 0 0", "or: kwik-prepare"}});
    }
    return out;
}

// ---- 5. CPUs ------------------------------------------------------------------------------------

std::vector<finding> check_cpus(const kwikd_view& config, const host_reader& host) {
    std::vector<finding> out;
    const std::vector<unsigned>& workers = config.worker_lcores;
    const std::vector<unsigned> online = sysfs_cpu_list(host, "/sys/devices/system/cpu/online");
    std::vector<unsigned> absent, offline;
    for (unsigned w : workers) {
        if (!host.exists(cpu_dir(w))) {
            absent.push_back(w);
        } else if (!contains(online, w)) {
            offline.push_back(w);
        }
    }
    if (contains(workers, config.main_lcore)) {
        out.push_back({"main_lcore", status::fail,
                       "main_lcore " + std::to_string(config.main_lcore) + " is also a worker lcore",
                       {config.config_path + ": main_lcore = <a CPU that is not a worker>   # in [kwikd]"}});
    }
    if (!absent.empty()) {
        out.push_back({"worker_lcores", status::fail,
                       "worker lcores " + format_cpu_list(absent) + " are not CPUs of this host (online: " +
                           format_cpu_list(online) + ")",
                       {config.config_path + ": worker_lcores = [...]   # CPUs from " + format_cpu_list(online)}});
    } else if (!offline.empty()) {
        std::vector<std::string> fix;
        for (unsigned c : offline) {
            fix.push_back("echo 1 > /sys/devices/system/cpu/cpu" + std::to_string(c) + "/online");
        }
        out.push_back({"worker_lcores", status::fail, "worker lcores " + format_cpu_list(offline) + " are offline", fix});
    } else {
        out.push_back({"worker_lcores", status::ok, "worker lcores " + format_cpu_list(workers) + " online", {}});
    }
    if (!absent.empty()) {
        return out;
    }

    // Isolation: the scheduler, the timer tick and RCU callbacks keep off the workers.
    const auto params = kernel_parameters(host);
    std::vector<unsigned> isolated = sysfs_cpu_list(host, "/sys/devices/system/cpu/isolated");
    for (unsigned c : kernel_cpu_list(params, "isolcpus")) {
        isolated.push_back(c);
    }
    std::vector<unsigned> nohz = sysfs_cpu_list(host, "/sys/devices/system/cpu/nohz_full");
    for (unsigned c : kernel_cpu_list(params, "nohz_full")) {
        nohz.push_back(c);
    }
    std::vector<unsigned> nocbs = kernel_cpu_list(params, "rcu_nocbs");
    std::vector<std::string> missing;
    for (const auto& [name, list] : {std::pair{"isolcpus", &isolated}, std::pair{"nohz_full", &nohz},
                                     std::pair{"rcu_nocbs", &nocbs}}) {
        std::vector<unsigned> uncovered;
        for (unsigned w : workers) {
            if (!contains(*list, w)) {
                uncovered.push_back(w);
            }
        }
        if (!uncovered.empty()) {
            missing.push_back(std::string(name) + " lacks " + format_cpu_list(uncovered));
        }
    }
    if (missing.empty()) {
        out.push_back({"cpu_isolation", status::ok,
                       "worker lcores " + format_cpu_list(workers) + " isolated, nohz_full and rcu_nocbs", {}});
    } else {
        const std::string list = format_cpu_list(workers);
        std::vector<std::string> fix = reboot_with(host, {"isolcpus=" + list, "nohz_full=" + list, "rcu_nocbs=" + list});
        std::vector<unsigned> others;
        for (unsigned c : online) {
            if (!contains(workers, c)) {
                others.push_back(c);
            }
        }
        fix.insert(fix.begin() + 1, "/etc/systemd/system.conf: CPUAffinity=" + format_cpu_list(others) +
                                        "   # in [Manager]: other services keep off the workers");
        out.push_back({"cpu_isolation", status::warn, join(missing, "; ") + ": other tasks and ticks can preempt workers", fix});
    }

    // SMT: two workers on one core share its execution units.
    std::vector<std::string> shared;
    std::set<unsigned> reported;
    for (unsigned w : workers) {
        const auto siblings = parse_cpu_list(host.read_line(cpu_dir(w) + "/topology/thread_siblings_list").value_or(""));
        if (!siblings) {
            continue;
        }
        std::vector<unsigned> on_core;
        for (unsigned v : workers) {
            if (contains(*siblings, v)) {
                on_core.push_back(v);
            }
        }
        if (on_core.size() > 1 && !reported.contains(on_core.front())) {
            reported.insert(on_core.front());
            shared.push_back(format_cpu_list(on_core));
        }
    }
    if (shared.empty()) {
        out.push_back({"smt", status::ok, "no two worker lcores on SMT siblings of one core", {}});
    } else {
        // One CPU per core, keeping off the main lcore's core.
        std::vector<unsigned> pick;
        std::set<std::string> cores;
        cores.insert(host.read_line(cpu_dir(config.main_lcore) + "/topology/thread_siblings_list").value_or(""));
        for (unsigned c : online) {
            const std::string core = host.read_line(cpu_dir(c) + "/topology/thread_siblings_list").value_or(std::to_string(c));
            if (pick.size() < workers.size() && c != config.main_lcore && cores.insert(core).second) {
                pick.push_back(c);
            }
        }
        std::vector<std::string> fix;
        if (pick.size() == workers.size()) {
            std::string list;
            for (unsigned c : pick) {
                list += (list.empty() ? "" : ", ") + std::to_string(c);
            }
            fix.push_back(config.config_path + ": worker_lcores = [" + list + "]   # one per core");
        } else {
            fix.push_back("echo off > /sys/devices/system/cpu/smt/control   # too few cores for one worker each");
        }
        out.push_back({"smt", status::warn, "worker lcores share a core: " + join(shared, "; "), fix});
    }
    return out;
}

} // namespace kwik::ctl::doctor
