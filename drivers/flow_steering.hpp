// Per-path flow steering: an rte_flow rule that sends one UDP 5-tuple (a path) to the rx queue of
// the worker that owns its connection, so RSS need not agree with connection ownership. Where the
// port cannot (vdevs, NICs without rte_flow queue actions) install_5tuple_rule says ENOTSUP and the
// caller falls back to the software hand-off ring between workers.
// Main lcore only (rte_flow calls are not made concurrently with port stop/close).
#pragma once

#include <rte_flow.h>

#include <array>
#include <cerrno>
#include <cstdint>
#include <string>

#include "drivers/port.hpp"
#include "drivers/result.hpp"

namespace kwik::drivers {

struct ip_address {
    std::uint8_t version = 4;             // 4 or 6
    std::array<std::uint8_t, 16> bytes{}; // network order; IPv4 uses the first 4
};

// A received packet's UDP 5-tuple: src is the remote end, dst the appliance. Ports in host order.
struct udp_5tuple {
    ip_address src;
    ip_address dst;
    std::uint16_t src_port = 0;
    std::uint16_t dst_port = 0;
};

// "10.0.0.1:4000 -> 10.0.0.2:7707", "[fd00::1]:4000 -> [fd00::2]:7707".
std::string to_string(const udp_5tuple& t);

// An installed rule. Plain handle: remove_rule or flush_rules frees it; closing the port frees
// every rule the port had, after which the handle must not be used.
struct flow_rule {
    std::uint16_t port_id = 0;
    std::uint16_t queue = 0;
    rte_flow* flow = nullptr;
};

// Validates (rte_flow_validate) then creates ETH / IPV4|IPV6 (exact src and dst) / UDP (exact
// ports) -> QUEUE queue, ingress. Errors name the port, the tuple and the PMD's own reason; a port
// without rte_flow, or whose rte_flow rejects the pattern or action as unsupported, gives code
// ENOTSUP (see not_supported()).
[[nodiscard]] result<flow_rule> install_5tuple_rule(port& p, std::uint16_t queue, const udp_5tuple& tuple);

// Destroys one rule; the handle is cleared.
[[nodiscard]] result<void> remove_rule(port& p, flow_rule& rule);

// Destroys every rule on the port (rte_flow_flush); handles the caller holds become invalid. A
// port without rte_flow has no rules: ok.
[[nodiscard]] result<void> flush_rules(port& p);

// Whether the port can steer a UDP 5-tuple to a queue: validates a representative IPv4 rule to
// queue 0 without creating it. ok() = yes; ENOTSUP = no; other codes = the port would not say.
[[nodiscard]] result<void> probe_flow_steering(port& p);

// True for the "this port cannot do it" outcome (the expected one on vdevs), as against a real
// failure such as a queue out of range.
inline bool not_supported(const error& e) noexcept {
    return e.code == ENOTSUP;
}

} // namespace kwik::drivers
