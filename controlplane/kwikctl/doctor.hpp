// `kwikctl doctor`: checks the host an appliance runs on (kwikd's effective configuration,
// IOMMU and vfio, the ports' NICs, hugepages, worker CPUs, the shared-memory region, kwik-cp)
// and says for every problem the exact command or file line that fixes it. Each check is a
// function of kwikd's configuration and a host_reader (every host path under one root, so the
// tests build fake /sys, /proc, /dev, /run and /etc trees). Reads files, runs kwikd once; one
// thread (the caller's).
#pragma once

#include <sys/types.h>

#include <nlohmann/json.hpp>

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.hpp"
#include "controlplane/kwikctl/settings.hpp"

namespace kwik::ctl::doctor {

using kwik::error;
using kwik::result;

enum class status : std::uint8_t { ok, warn, fail, skip };
std::string_view to_string(status s) noexcept;

// One finding: which check ("iommu", "nic 0000:3b:00.0", "hugepages node0"), its status, what
// was found, and the lines that fix it (shell commands, or "FILE: LINE").
struct finding {
    std::string check;
    status state = status::ok;
    std::string found;
    std::vector<std::string> fix;
};

// ---- the host -----------------------------------------------------------------------------

struct file_info {
    mode_t mode = 0; // permission bits and type (st_mode)
    uid_t uid = 0;
    gid_t gid = 0;
    bool directory = false;
};

enum class lock_state : std::uint8_t { held, free, absent, unreadable };

// Every host path doctor reads, under root ("/" on a real host, a prepared tree in tests).
class host_reader {
public:
    explicit host_reader(std::string root = "/");

    const std::string& root() const noexcept { return _root; }
    // root + host_path ("/sys/kernel/iommu_groups" -> "<root>/sys/kernel/iommu_groups").
    std::string path(std::string_view host_path) const;

    bool exists(std::string_view host_path) const;
    // The whole file; nullopt when it cannot be read.
    std::optional<std::string> read(std::string_view host_path) const;
    // The file's first line without surrounding white space.
    std::optional<std::string> read_line(std::string_view host_path) const;
    // The names in a directory, sorted; empty when it does not exist.
    std::vector<std::string> list(std::string_view host_path) const;
    // The last component of a symbolic link's target ("vfio-pci" of driver -> ../../vfio-pci).
    std::optional<std::string> link_name(std::string_view host_path) const;
    // stat(2), following links.
    std::optional<file_info> stat(std::string_view host_path) const;
    // Whether someone holds a flock(2) on the file: probed with a shared, non-blocking lock that
    // is released at once (kwikd holds an exclusive one on its lock file while it runs).
    lock_state probe_lock(std::string_view host_path) const;
    // The group's name from <root>/etc/group; the number as text when it is not there.
    std::string group_name(gid_t gid) const;
    // Whether the group exists in <root>/etc/group.
    bool group_exists(std::string_view name) const;

private:
    std::string _root;
};

// ---- kwikd's effective configuration (kwikd --check-config) -------------------------------

struct port_config {
    std::string name;
    std::string device;
    std::uint32_t rx_queues = 1;
    std::uint32_t mtu = 1500;
};

struct kwikd_view {
    std::string name = "kwik";
    unsigned main_lcore = 0;
    std::vector<unsigned> worker_lcores;
    bool hugepages = true;
    std::optional<std::uint32_t> memory_mb;
    std::uint32_t shm_mode = 0600;
    std::string shm_directory = "/dev/shm"; // absent key: today's kwikd
    std::optional<std::string> shm_group;
    std::uint64_t hugepage_kb = 2048; // "2M" or "1G"; absent key: 2M
    std::vector<port_config> ports;
    std::string config_path = "/etc/kwik/kwikd.toml"; // the file, for the fix lines
};

// Reads kwikd --check-config's output; errors name the key.
result<kwikd_view> parse_effective_config(std::string_view toml_text);

// A port's device as doctor sees it: a PCI address (normalised 0000:bb:dd.f), an AF_XDP vdev
// with its interface and queues, or another virtual device.
struct port_device {
    enum class kind : std::uint8_t { pci, af_xdp, vdev } what = kind::vdev;
    std::string pci_address;
    std::string iface;
    std::uint32_t start_queue = 0;
    std::uint32_t queue_count = 1;
};
port_device classify(const port_config& port);

// ---- the checks ---------------------------------------------------------------------------

// What running a program gave.
struct program_run {
    int exit_code = -1; // -1: could not run it, killed, or no answer in time
    std::string out, err;
};
// Runs argv (argv[0] a path, or a name looked up on PATH) and collects its output within
// timeout_ms (then kills it).
program_run run_program(const std::vector<std::string>& argv, int timeout_ms);

// What running kwikd --check-config gave.
struct check_config_run : program_run {
    std::string kwikd;       // the program run
    std::string config_path; // the file passed to --config
};
// Runs `kwikd --config FILE --check-config` (kwikd: the program path, or a name looked up on
// PATH) and collects its output within timeout_ms.
check_config_run run_check_config(const std::string& kwikd, const std::string& config_path, int timeout_ms = 10'000);

// 1. The configuration; the view when there is one.
std::vector<finding> check_config(const check_config_run& run, std::optional<kwikd_view>& view);
// 2. IOMMU and vfio (only with a PCI port not on a bifurcated driver).
std::vector<finding> check_iommu(const kwikd_view& config, const host_reader& host);
// 3. Each port's NIC (PCI and AF_XDP).
std::vector<finding> check_nics(const kwikd_view& config, const host_reader& host);
// The XDP program on an AF_XDP port's interface, from `ip -j -d link show dev IF` (ip_json; run
// only on the real host, not under --root): none or Kwik's kwik_xdp ok, another one warn.
finding check_xdp_program(const std::string& port, const std::string& iface, const std::string& ip_json,
                          const std::string& config_path);
// 4. Hugepages per NUMA node hosting a port or worker. kwikd_running: count reserved pages
// (kwikd holds them) rather than free ones.
std::vector<finding> check_hugepages(const kwikd_view& config, const host_reader& host, bool kwikd_running);
// 5. Worker lcores: present, online, isolated, tickless, not SMT siblings, not the main lcore.
std::vector<finding> check_cpus(const kwikd_view& config, const host_reader& host);
// 6. The shared-memory region, its lock file and directory, and kwikd's heartbeat, read twice
// with between_reads() in between (a sleep of a few hundred milliseconds on a real host).
std::vector<finding> check_shm(const kwikd_view& config, const host_reader& host,
                               const std::function<void()>& between_reads);
// Whether kwikd holds its lock file (the region is live).
bool kwikd_running(const kwikd_view& config, const host_reader& host);
// 7. kwik-cp reachable with kwikctl's settings, and attached to kwikd (its status view).
// settings: resolved, or the error resolving them; settings_file names the kwikctl config file
// the fix lines point at; config (when there is one) names kwikd's region.
std::vector<finding> check_control(const result<connection_settings>& settings, const std::string& settings_file,
                                   const kwikd_view* config);

// ---- the command ----------------------------------------------------------------------------

struct options {
    std::string root = "/";
    std::optional<std::string> kwikd_config; // default <root>/etc/kwik/kwikd.toml
    std::optional<std::string> kwikd;        // default /usr/sbin/kwikd, then kwikd on PATH
    std::vector<std::string> skip;           // check groups not to run
    bool json = false;
    settings_flags settings;
};

inline constexpr std::string_view check_groups[] = {"config", "iommu", "nics", "hugepages", "cpus", "shm", "control"};

// Runs every check group in order.
std::vector<finding> run(const options& opts, const environment& env);

// The findings as text: one aligned line per finding, its fix lines indented under it, and a
// summary line.
std::string render_text(const std::vector<finding>& findings);
// {"checks": [{"check", "status", "found", "fix": [...]}], "summary": {"ok", "warn", "fail", "skip"}}
nlohmann::ordered_json to_json(const std::vector<finding>& findings);
// 1 when a finding failed, else 0.
int exit_code(const std::vector<finding>& findings);

// Helpers the checks share, public for the tests.
// "0-3,8,10-11" -> {0,1,2,3,8,10,11}; nullopt on a malformed list.
std::optional<std::vector<unsigned>> parse_cpu_list(std::string_view text);
// {0,1,2,3,8} -> "0-3,8".
std::string format_cpu_list(const std::vector<unsigned>& cpus);
// The /etc/default/grub line with these kernel parameters added (a parameter of the same name
// replaced), from the file's GRUB_CMDLINE_LINUX when it is there.
std::string grub_cmdline_fix(const host_reader& host, const std::vector<std::string>& parameters);

} // namespace kwik::ctl::doctor
