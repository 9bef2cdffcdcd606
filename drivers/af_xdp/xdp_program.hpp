// Kwik's XDP program (kwik_xdp.bpf.c) from user space, with libbpf: find the program attached
// to an interface and tell whether it is ours, fill its Kwik port and address maps, read its
// per-CPU counters, detach a stale one, or load and attach it directly (kwik-xdp, tests).
// Set-up and housekeeping threads only (kwikd's main lcore, tools); never a worker. Errors name
// the interface, the map or object and the libbpf/kernel errno.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.hpp"
#include "drivers/af_xdp/kwik_xdp_maps.h"

struct bpf_object;

namespace kwik::drivers {

// The program's name as the kernel reports it (bpf_prog_info.name): how "ours" is told apart.
inline constexpr std::string_view kwik_xdp_program_name = "kwik_xdp";

// How a program is attached: in the driver's rx path (native), in the stack after the skb is
// built (generic, any interface, slower), or on the NIC (offload, never ours).
enum class xdp_mode : std::uint8_t { native, generic, offload };
std::string_view to_string(xdp_mode mode) noexcept;

// What is attached to an interface.
struct xdp_attachment {
    std::uint32_t program_id = 0;
    std::string name; // the kernel's name of the program (15 characters at most)
    xdp_mode mode = xdp_mode::native;
    bool ours() const noexcept { return name == kwik_xdp_program_name; }
};

// Per-verdict totals over every CPU, indexed by kwik_xdp_verdict.
struct xdp_counters {
    std::array<std::uint64_t, KWIK_XDP_VERDICTS> by_verdict{};

    std::uint64_t redirected() const noexcept { return by_verdict[KWIK_XDP_REDIRECTED]; }
    std::uint64_t passed() const noexcept; // every verdict but redirected
};
// "redirected", "no_socket", "not_ip", "not_udp", "not_kwik_port", "not_kwik_address",
// "fragment", "truncated".
std::string_view verdict_name(std::size_t verdict) noexcept;

// 16 bytes, network order; IPv4 as IPv4-mapped IPv6.
using xdp_address = std::array<std::uint8_t, 16>;
// "10.0.0.1" / "fd00::1" -> xdp_address; nullopt if neither.
std::optional<xdp_address> parse_xdp_address(std::string_view text);
std::string to_string(const xdp_address& address);

// The interface's index, or an error naming it (ENODEV).
[[nodiscard]] result<unsigned> interface_index(const std::string& iface);

// What is attached to iface; nullopt when nothing is.
[[nodiscard]] result<std::optional<xdp_attachment>> query_xdp(const std::string& iface);

// Detaches the program attached to iface, provided it is still `expected` (an atomic replace
// of that program by none: one attached meanwhile by someone else stays). Refuses (EPERM) a
// program that is not ours unless force.
[[nodiscard]] result<void> detach_xdp(const std::string& iface, const xdp_attachment& expected, bool force = false);

// Before a port whose PMD loads the program itself: a kwik_xdp left attached to iface by a
// kwikd that died is detached (returned, for the log); a program that is not ours is refused
// (EBUSY) and left alone. Nothing attached: nullopt.
[[nodiscard]] result<std::optional<xdp_attachment>> remove_stale_xdp(const std::string& iface);

// A handle on our program's maps: either the program attached to an interface (found by id,
// maps by name) or one this process loaded from the object file (load_xdp_object), which it may
// then attach. Move-only; closes its file descriptors (a program loaded here and attached stays
// attached: the interface holds it).
class xdp_program {
public:
    xdp_program(const xdp_program&) = delete;
    xdp_program& operator=(const xdp_program&) = delete;
    xdp_program(xdp_program&& other) noexcept;
    xdp_program& operator=(xdp_program&& other) noexcept;
    ~xdp_program();

    // The program attached to iface; refused (ENOENT) when there is none, (EPERM) when it is not
    // ours or lacks one of our maps.
    [[nodiscard]] static result<xdp_program> open_attached(const std::string& iface);

    int program_fd() const noexcept { return _prog_fd; }
    std::uint32_t program_id() const noexcept { return _prog_id; }

    // Replace the map contents: kwik_ports (1 to KWIK_XDP_MAX_PORTS, host order) and
    // kwik_addresses (0 to KWIK_XDP_MAX_ADDRESSES; none: any destination address).
    [[nodiscard]] result<void> set_kwik_ports(std::span<const std::uint16_t> ports);
    [[nodiscard]] result<void> set_addresses(std::span<const xdp_address> addresses);
    [[nodiscard]] result<std::vector<std::uint16_t>> kwik_ports() const;
    [[nodiscard]] result<std::vector<xdp_address>> addresses() const;
    [[nodiscard]] result<xdp_counters> counters() const;
    // Puts an AF_XDP socket on rx queue `queue` (the PMD does this for its own sockets).
    [[nodiscard]] result<void> set_socket(std::uint32_t queue, int xsk_fd);

    // Direct use (no PMD): attach this program to iface in mode (the interface must have none:
    // EBUSY otherwise, naming what is there).
    [[nodiscard]] result<void> attach(const std::string& iface, xdp_mode mode);

private:
    friend result<xdp_program> load_xdp_object(const std::string& path);
    xdp_program() = default;
    [[nodiscard]] result<void> find_maps(std::string_view where);
    void close_all() noexcept;

    bpf_object* _object = nullptr; // when loaded by this process
    int _prog_fd = -1;
    std::uint32_t _prog_id = 0;
    int _xsks_fd = -1;
    int _ports_fd = -1;
    int _addresses_fd = -1;
    int _config_fd = -1;
    int _counters_fd = -1;
};

// Opens and loads the object file (kwik_xdp.o) into the kernel, unattached; errors name the file.
[[nodiscard]] result<xdp_program> load_xdp_object(const std::string& path);

} // namespace kwik::drivers
