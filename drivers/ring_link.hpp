// Two ethdev ports joined back to back by rte_rings (net_ring's rte_eth_from_rings): what one port
// transmits on queue q, the other receives on queue q. Real multi-queue ports on a machine with no
// NIC, for integration tests and benchmarks; open them with open_port({.device = name_a(), ...}).
// Main lcore only.
#pragma once

#include <rte_memory.h>
#include <rte_ring.h>

#include <cstdint>
#include <string>
#include <vector>

#include "drivers/result.hpp"

namespace kwik::drivers {

class ring_link {
public:
    // Makes ports "net_ring_<name_a>" and "net_ring_<name_b>" (net_ring's naming) with `queues`
    // rx and tx queues each, every queue a single-producer single-consumer ring of ring_size
    // (rounded up to a power of two) slots.
    [[nodiscard]] static result<ring_link> create(const std::string& name_a, const std::string& name_b,
                                                  std::uint16_t queues, std::uint32_t ring_size = 1024,
                                                  int socket = SOCKET_ID_ANY);

    ring_link(const ring_link&) = delete;
    ring_link& operator=(const ring_link&) = delete;
    ring_link(ring_link&& other) noexcept;
    ring_link& operator=(ring_link&& other) noexcept;
    // Detaches both devices (closing their ports if still open; close the port objects first)
    // and frees the rings, with whatever mbufs are still in them.
    ~ring_link();

    // The ports' ethdev names, as open_port takes them: "net_ring_<name_a>", "net_ring_<name_b>".
    const std::string& name_a() const noexcept { return _name_a; }
    const std::string& name_b() const noexcept { return _name_b; }
    std::uint16_t queues() const noexcept { return _queues; }

private:
    ring_link() = default;
    void release() noexcept;

    std::string _name_a;
    std::string _name_b;
    std::uint16_t _queues = 0;
    bool _made_a = false;
    bool _made_b = false;
    std::vector<rte_ring*> _a_to_b; // a's tx queue q = b's rx queue q
    std::vector<rte_ring*> _b_to_a;
};

} // namespace kwik::drivers
