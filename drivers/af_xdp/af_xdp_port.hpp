// kwikd's side of one net_af_xdp port (drivers/af_xdp/README.md): before the PMD opens it, a
// kwik_xdp left by a kwikd that died is removed (a foreign program is refused); after the port
// started, the program the PMD loaded is found and its maps filled from the port; its counters
// are read for the summary and telemetry; after the port closed, a program the PMD left is
// detached. kwikd's main lcore only (telemetry reads counters under kwikd's telemetry lock).
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "common/result.hpp"
#include "drivers/af_xdp/xdp_program.hpp"

namespace kwik::drivers {

// The value of device argument key in a device spec ("net_af_xdp0,iface=eth1", "iface" ->
// "eth1"); empty when absent.
std::string device_argument(std::string_view device, std::string_view key);

class af_xdp_port {
public:
    // Before the PMD opens `device` (a net_af_xdp spec with iface=): removes a stale kwik_xdp
    // from the interface (`note` then says which, for the log) and refuses (EBUSY) a program that
    // is not Kwik's. Only once no kwikd of this name runs (kwikd holds its shared region).
    [[nodiscard]] static result<af_xdp_port> prepare(std::string name, std::string_view device, std::string& note);

    // After the port started: the program the PMD attached, its maps filled with the port's
    // Kwik ports and addresses. Returns the log lines (attach mode, what goes where, RSS).
    [[nodiscard]] result<std::string> bind(std::span<const std::uint16_t> kwik_ports,
                                           std::span<const xdp_address> addresses, std::uint16_t rx_queues);

    [[nodiscard]] result<xdp_counters> counters() const;
    // "<name> xdp on <iface>: redirected 12, passed to the kernel 3 (not_ip 1, not_udp 2)".
    std::string summary() const;

    // After the port closed: the PMD detaches what it loaded; a program it left (the one bind()
    // found, and only that one) is detached here.
    [[nodiscard]] result<void> release();

    const std::string& name() const noexcept { return _name; }
    const std::string& iface() const noexcept { return _iface; }

private:
    af_xdp_port() = default;

    std::string _name;  // the [[port]]'s
    std::string _iface; // the kernel interface
    std::optional<xdp_program> _program;
    std::uint32_t _program_id = 0;
};

} // namespace kwik::drivers
