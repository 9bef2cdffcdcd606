// ring_link: rings from rte_ring_create, ports from rte_eth_from_rings (the ports reference the
// rings and do not own them, so the link frees them after detaching the ports).
#include "drivers/ring_link.hpp"

#include <rte_dev.h>
#include <rte_errno.h>
#include <rte_eth_ring.h>
#include <rte_ethdev.h>
#include <rte_mbuf.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <utility>

namespace kwik::drivers {

namespace {

// Ring names are process-wide and at most RTE_RING_NAMESIZE - 1 bytes: number them.
std::atomic<unsigned> next_link_number{0};

void free_ring(rte_ring* r) noexcept {
    if (r == nullptr) {
        return;
    }
    void* obj = nullptr;
    while (rte_ring_dequeue(r, &obj) == 0) {
        rte_pktmbuf_free(static_cast<rte_mbuf*>(obj));
    }
    rte_ring_free(r);
}

std::string port_name(std::uint16_t port_id, const std::string& asked) {
    char name[RTE_ETH_NAME_MAX_LEN] = {};
    if (rte_eth_dev_get_name_by_port(port_id, name) == 0) {
        return name;
    }
    return "net_ring_" + asked;
}

} // namespace

result<ring_link> ring_link::create(const std::string& name_a, const std::string& name_b, std::uint16_t queues,
                                    std::uint32_t ring_size, int socket) {
    const std::string who = name_a + "<->" + name_b;
    if (queues == 0) {
        return config_error(who, EINVAL, "a ring link needs at least 1 queue");
    }
    if (name_a.empty() || name_b.empty() || name_a == name_b) {
        return config_error(who, EINVAL, "a ring link needs two different, non-empty port names");
    }
    ring_link link;
    link._name_a = "net_ring_" + name_a;
    link._name_b = "net_ring_" + name_b;
    link._queues = queues;
    const unsigned number = next_link_number.fetch_add(1);
    const std::uint32_t slots = rte_align32pow2(ring_size < 2 ? 2 : ring_size);
    for (std::uint16_t q = 0; q < queues; ++q) {
        for (int dir = 0; dir < 2; ++dir) {
            char ring_name[RTE_RING_NAMESIZE];
            std::snprintf(ring_name, sizeof(ring_name), "kwik_link%u_%s%u", number, dir == 0 ? "ab" : "ba",
                          static_cast<unsigned>(q));
            rte_ring* r = rte_ring_create(ring_name, slots, socket, RING_F_SP_ENQ | RING_F_SC_DEQ);
            if (r == nullptr) {
                return dpdk_error(who, std::string("rte_ring_create ") + ring_name, -rte_errno);
            }
            (dir == 0 ? link._a_to_b : link._b_to_a).push_back(r);
        }
    }
    const unsigned numa = socket == SOCKET_ID_ANY ? rte_socket_id() : static_cast<unsigned>(socket);
    // a receives what b sends and transmits what b receives.
    // rte_eth_from_rings names the vdev and its port "net_ring_<name>".
    int ret = rte_eth_from_rings(name_a.c_str(), link._b_to_a.data(), queues, link._a_to_b.data(), queues, numa);
    if (ret < 0) {
        return dpdk_error(name_a, "rte_eth_from_rings", -rte_errno);
    }
    link._made_a = true;
    link._name_a = port_name(static_cast<std::uint16_t>(ret), name_a);
    ret = rte_eth_from_rings(name_b.c_str(), link._a_to_b.data(), queues, link._b_to_a.data(), queues, numa);
    if (ret < 0) {
        return dpdk_error(name_b, "rte_eth_from_rings", -rte_errno);
    }
    link._made_b = true;
    link._name_b = port_name(static_cast<std::uint16_t>(ret), name_b);
    return link;
}

ring_link::ring_link(ring_link&& other) noexcept
    : _name_a(std::move(other._name_a)),
      _name_b(std::move(other._name_b)),
      _queues(other._queues),
      _made_a(std::exchange(other._made_a, false)),
      _made_b(std::exchange(other._made_b, false)),
      _a_to_b(std::move(other._a_to_b)),
      _b_to_a(std::move(other._b_to_a)) {
    other._a_to_b.clear();
    other._b_to_a.clear();
}

ring_link& ring_link::operator=(ring_link&& other) noexcept {
    if (this != &other) {
        release();
        _name_a = std::move(other._name_a);
        _name_b = std::move(other._name_b);
        _queues = other._queues;
        _made_a = std::exchange(other._made_a, false);
        _made_b = std::exchange(other._made_b, false);
        _a_to_b = std::move(other._a_to_b);
        _b_to_a = std::move(other._b_to_a);
        other._a_to_b.clear();
        other._b_to_a.clear();
    }
    return *this;
}

ring_link::~ring_link() {
    release();
}

void ring_link::release() noexcept {
    // The vdev driver's remove closes a port that is still open; then nothing references the rings.
    if (_made_a) {
        (void)rte_eal_hotplug_remove("vdev", _name_a.c_str());
        _made_a = false;
    }
    if (_made_b) {
        (void)rte_eal_hotplug_remove("vdev", _name_b.c_str());
        _made_b = false;
    }
    for (rte_ring* r : _a_to_b) {
        free_ring(r);
    }
    for (rte_ring* r : _b_to_a) {
        free_ring(r);
    }
    _a_to_b.clear();
    _b_to_a.clear();
}

} // namespace kwik::drivers
