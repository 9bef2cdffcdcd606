// kwikd's configuration: the TOML file (--config), command-line overrides (--set KEY=VALUE and
// a few named shortcuts), validation whose every message names the field as written in the file
// with its file and line, and the EAL argument vector built from the result. Start-up only: the
// main thread calls it before rte_eal_init. No DPDK dependency (pure parsing), so unit-testable.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "dataplane/engine/net_headers.hpp"
#include "dataplane/kdp/wire.hpp"
#include "dataplane/transport/connection.hpp"

namespace kwik::engine {

// Build limits of Debian's DPDK 22.11 (rte_build_config.h, rte_config.h), repeated here so that
// the configuration is checked without including DPDK; the engine static_asserts they agree.
inline constexpr unsigned max_lcores = 128;                // RTE_MAX_LCORE
inline constexpr std::size_t max_ethdev_ports = 32;        // RTE_MAX_ETHPORTS
inline constexpr std::uint32_t max_mempool_cache = 512;    // RTE_MEMPOOL_CACHE_MAX_SIZE
inline constexpr std::uint32_t max_queues_per_port = 1024; // RTE_MAX_QUEUES_PER_PORT

// Per-port limits of the classifier (classifier.hpp max_kwik_ports, max_appliance_addresses) and
// the neighbour table (max_interface_addresses); the engine static_asserts they agree.
inline constexpr std::size_t max_port_kwik_ports = 8;
inline constexpr std::size_t max_port_addresses = 16;
// Longest connection id and file_store directory, so that they fit the command interface's
// text fields with their NUL (api/commands.hpp: 64 and 128 bytes).
inline constexpr std::size_t max_connection_id_length = 63;
inline constexpr std::size_t max_endpoint_path_length = 127;

// Memory EAL gets with hugepages = false when kwikd.memory_mb is not set (the integration tests
// run with the same -m 256).
inline constexpr std::uint32_t default_no_huge_memory_mb = 256;

// How worker lcores wait for packets ([kwikd] poll_mode): busy polls without pause (production:
// the lowest latency, one core per worker); adaptive sleeps when idle, for machines whose
// cores are shared (tests, demos; worker.cpp run_adaptive).
enum class poll_mode : std::uint8_t { busy, adaptive };

// The hugepage size the host is prepared with ([kwikd] hugepage_size): kwik-prepare reserves pages
// of this size on the NUMA nodes kwikd uses and kwikctl doctor checks them. EAL itself takes every
// hugetlbfs mount it finds.
enum class hugepage_size : std::uint8_t { size_2m, size_1g };
inline constexpr std::uint32_t max_idle_sleep_us = 100'000;

// Values equal to DPDK's RTE_LOG_EMERG .. RTE_LOG_DEBUG, so rte_log_set_level takes them as they are.
enum class log_level : std::uint8_t {
    emergency = 1,
    alert = 2,
    critical = 3,
    error = 4,
    warning = 5,
    notice = 6,
    info = 7,
    debug = 8,
};

// An address of a port with its on-link prefix: 10.0.0.1/24 is {v4(10.0.0.1), 24} (an IPv4
// prefix counts IPv4 bits, as neighbor_table's interface_address does). ip_address is the
// engine's (net_headers.hpp: IPv4 held as IPv4-mapped IPv6).
struct ip_prefix {
    ip_address address;
    std::uint8_t length = 0;

    bool operator==(const ip_prefix&) const = default;
};

// 10.0.0.1:7707, [fd00::1]:7707. Port in host order.
struct udp_endpoint {
    ip_address address;
    std::uint16_t port = 0;

    bool operator==(const udp_endpoint&) const = default;
};

// How EAL finds a port's device: a PCI address goes to -a, anything else is a virtual device
// created with --vdev.
enum class device_kind : std::uint8_t { pci, vdev };

// [kwikd]
struct daemon_settings {
    std::string name = "kwik"; // shared-memory name (/<name>) and EAL --file-prefix
    log_level level = log_level::info;
    unsigned main_lcore = 0;
    std::vector<unsigned> worker_lcores{1}; // worker i polls rx queue i of every port
    bool hugepages = true;                  // false: EAL --no-huge -m <memory_mb>
    std::optional<std::uint32_t> memory_mb; // EAL -m; unset: EAL's default, or 256 without hugepages
    hugepage_size page_size = hugepage_size::size_2m; // what kwik-prepare reserves, doctor checks
    std::vector<std::string> eal_args;      // extra EAL arguments, passed through verbatim
    std::uint32_t stats_interval_ms = 1000; // main lcore's counter publication; 0 = never
    std::uint32_t shm_mode = 0600;          // file mode of the shared-memory regions
    std::string shm_directory = "/dev/shm"; // the regions and lock files; absolute, must exist
    std::string shm_group;                  // group given the regions and lock files; "": kwikd's
    poll_mode polling = poll_mode::busy;    // poll_mode: how workers wait for packets
    std::uint32_t idle_sleep_max_us = 200; // adaptive: the longest sleep of an idle worker

    bool operator==(const daemon_settings&) const = default;
};

// [[port]]
struct port_settings {
    std::string name;   // default "port<index>"
    std::string device; // "0000:3b:00.0", "net_pcap0,rx_pcap=in.pcap", "net_ring0", ...
    device_kind kind = device_kind::vdev;
    std::uint16_t rx_queues = 0; // resolved: defaults to the number of worker lcores
    std::uint16_t rx_desc = 1024;
    std::uint16_t tx_desc = 1024;
    std::uint16_t mtu = 1500;
    bool rss = true;
    bool checksum_offload = true; // used where the port has it; software otherwise
    bool promiscuous = false;
    std::vector<ip_prefix> addresses;                             // 1 to 16
    std::vector<std::uint16_t> kwik_ports{kdp::default_udp_port}; // 1 to 8
    // The routers off-link destinations are sent through (their MAC found by ARP / neighbour
    // solicitation); each on one of the port's prefixes of its family. Unset: a path whose
    // remote end is off-link is answered only once the peer has sent on it (to the MAC its
    // packets came from).
    std::optional<ip_address> gateway;  // IPv4
    std::optional<ip_address> gateway6; // IPv6
    // net_af_xdp devices only: the XDP object the PMD loads (xdp_prog=); default the installed
    // kwik_xdp.o. Empty for every other device.
    std::string xdp_program;

    bool operator==(const port_settings&) const = default;
};

// [exception]: the kernel interface non-Kwik traffic of one port is punted to.
struct exception_settings {
    std::string device;         // net_tap or virtio_user spec; empty = none
    std::string port;           // name of the [[port]] it serves; default the first port
    std::size_t port_index = 0; // resolved from port

    bool enabled() const noexcept { return !device.empty(); }
    bool operator==(const exception_settings&) const = default;
};

// [transport]: what new connections start with (transport::connection_config).
struct transport_defaults {
    std::uint64_t stream_window = 1 << 20;
    std::uint64_t connection_window = 16 << 20;
    std::uint32_t max_streams = 1024;
    std::uint32_t max_paths = 8;          // per connection
    std::uint32_t max_packet_size = 1400; // UDP payload bytes of one path packet
    std::uint32_t keepalive_ms = 1000;
    std::uint32_t idle_timeout_ms = 30000;
    transport::cc_algorithm cc = transport::cc_algorithm::cubic;
    bool coupled = true;
    transport::schedule_strategy scheduler = transport::schedule_strategy::min_rtt;

    bool operator==(const transport_defaults&) const = default;
};

enum class stream_endpoint : std::uint8_t { discard, echo, pattern, file_store };

// [[connection.path]]
struct static_path {
    std::uint64_t path_id = 0; // 1 .. 2^62-1, unique in its connection
    udp_endpoint local;        // one of a port's addresses and kwik_ports
    udp_endpoint remote;
    std::size_t port_index = 0; // resolved: the port that owns local's address

    bool operator==(const static_path&) const = default;
};

// [[connection]]: a connection bound at start-up, for tests and the demo before a control
// process exists.
struct static_connection {
    std::string id; // as KCP names connections (api add_connection_body.name)
    transport::role role = transport::role::server;
    stream_endpoint endpoint = stream_endpoint::discard;
    std::uint64_t pattern_length = 0; // endpoint = pattern: the largest request answered, bytes
    std::string directory;            // endpoint = file_store: an absolute path
    std::vector<static_path> paths;

    bool operator==(const static_connection&) const = default;
};

// [limits]: sizes of the tables and pools, fixed at start-up.
struct limits_settings {
    std::uint32_t max_connections = 65536;
    std::uint32_t max_paths = 262144; // path bindings across all connections
    std::uint32_t mbufs = 0;          // resolved: default sized from the rings and caches
    std::uint32_t mbuf_cache = 256;
    std::uint32_t burst = 32;

    bool operator==(const limits_settings&) const = default;
};

struct kwikd_config {
    daemon_settings kwikd;
    std::vector<port_settings> ports;
    exception_settings exception;
    transport_defaults transport;
    std::vector<static_connection> connections;
    limits_settings limits;

    std::string source;                       // the configuration file, or the built-in name; "" if none
    bool check_only = false;                  // --check-config: validate, print, exit
    std::vector<std::string> eal_passthrough; // the arguments after "--", verbatim

    bool operator==(const kwikd_config&) const = default;
};

// exit_code: 1 for a bad configuration or command line (message: one problem per line, each
// "FILE:LINE: FIELD: what is wrong"); 0 for --help (message: the help text, for stdout).
struct config_error {
    std::string message;
    int exit_code = 1;
};

class [[nodiscard]] config_result {
public:
    config_result(kwikd_config value) : _v(std::in_place_index<0>, std::move(value)) {}
    config_result(config_error e) : _v(std::in_place_index<1>, std::move(e)) {}

    bool ok() const noexcept { return _v.index() == 0; }
    explicit operator bool() const noexcept { return ok(); }

    kwikd_config& value() & { return std::get<0>(_v); }
    const kwikd_config& value() const& { return std::get<0>(_v); }
    kwikd_config&& value() && { return std::get<0>(std::move(_v)); }
    kwikd_config& operator*() & { return value(); }
    const kwikd_config& operator*() const& { return value(); }
    kwikd_config* operator->() { return &value(); }
    const kwikd_config* operator->() const { return &value(); }

    const config_error& error() const { return std::get<1>(_v); }
    const std::string& message() const { return error().message; }

private:
    std::variant<kwikd_config, config_error> _v;
};

// One command-line override: key as the file would name it ("port[0].mtu", "kwikd.worker_lcores"),
// value as TOML ("9000", "[\"10.0.0.1/24\"]") or, when it is not valid TOML, as a string
// ("net_ring0", "1-3"). origin is what error messages cite ("--set", "--worker-lcores").
struct config_override {
    std::string key;
    std::string value;
    std::string origin;
};

// Parses and validates a configuration text. source_name is what messages cite before the line
// ("deploy/kwikd.toml:12: ..."). Overrides apply after the text, in order (later ones win).
config_result parse_config(std::string_view toml_text, std::string_view source_name,
                           std::span<const config_override> overrides = {});

// kwikd's command line:
//   kwikd [--config FILE] [--set KEY=VALUE]... [--name N] [--log-level L] [--main-lcore N]
//         [--worker-lcores LIST] [--no-huge] [--memory-mb N] [--check-config] [-- EAL ARGS...]
// Precedence: built-in defaults < the file (--config, else builtin_text when not empty) < the
// command-line overrides, in the order given. Everything after "--" is kept verbatim for
// rte_eal_init. argv[0] is the program name.
config_result load_config(int argc, const char* const* argv, std::string_view builtin_text = {},
                          std::string_view builtin_name = "built-in default");

// The argv for rte_eal_init, argv[0] = "kwikd": -l <main and workers> --main-lcore N
// --file-prefix <name>, --no-huge -m N (hugepages = false) or -m N (memory_mb set), -a for each
// PCI port or --no-pci when there is none, --vdev for each virtual port and the exception
// device, then kwikd.eal_args, then the arguments after "--".
std::vector<std::string> eal_arguments(const kwikd_config& config);

// The effective configuration as a TOML document that parse_config reads back unchanged
// (--check-config prints it). The "--" arguments appear as a comment.
std::string to_toml(const kwikd_config& config);

// What new connections start with, from [transport]; the rest of connection_config is left as is.
void apply_transport_defaults(const transport_defaults& defaults, transport::connection_config& config) noexcept;

// The id of group `name` ([kwikd] shm_group, checked when the file is read); nullopt if unknown.
std::optional<unsigned> group_id(std::string_view name);

// The device's name: the spec up to its first comma ("net_pcap0" of "net_pcap0,rx_pcap=a.pcap").
std::string_view device_name(std::string_view device) noexcept;

std::string_view to_string(log_level level) noexcept;
std::string_view to_string(stream_endpoint endpoint) noexcept;
std::string_view to_string(poll_mode mode) noexcept;
std::string_view to_string(hugepage_size size) noexcept;
std::string to_string(const ip_address& address); // "10.0.0.1", "fd00::1"
std::string to_string(const ip_prefix& prefix);
std::string to_string(const udp_endpoint& endpoint);

} // namespace kwik::engine
