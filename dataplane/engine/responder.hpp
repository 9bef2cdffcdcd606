// Answers, in the received mbuf itself, the requests the engine does not hand to the kernel:
// ARP requests for the appliance's IPv4 addresses (-> ARP reply), ICMP echo (-> echo reply),
// ICMPv6 echo (-> echo reply) and neighbour solicitations for its IPv6 addresses (-> solicited
// neighbour advertisement with the target link-layer address option). The reply goes back out
// of the port the request came in on. Immutable after construction: any lcore may share one,
// each with its own counters; an mbuf is rewritten by the lcore that owns it.
#pragma once

#include <rte_mbuf.h>

#include <cstdint>

#include "dataplane/engine/classifier.hpp"
#include "dataplane/engine/net_headers.hpp"

namespace kwik::engine {

// Per-lcore. A failure is also a drop: the caller counts it under
// kdp::drop_reason::reply_not_built when respond() returns false.
struct responder_counters {
    std::uint64_t arp_replies = 0;
    std::uint64_t icmp_echo_replies = 0;
    std::uint64_t icmpv6_echo_replies = 0;
    std::uint64_t neighbor_advertisements = 0;
    std::uint64_t not_built = 0; // shared or indirect mbuf, chained NS, no room to grow an NA
};

// Hop limit / TTL of echo replies (Linux's default).
inline constexpr std::uint8_t reply_hop_limit = 64;

class responder {
public:
    // mac: the port's address, the source of every reply (and the ARP/NA link-layer address).
    explicit responder(const mac_address& mac) noexcept : _mac(mac) {}

    // Rewrites m, which classify() put in meta with verdict arp_request_for_us,
    // icmp_echo_for_us, icmpv6_echo_for_us or neighbor_solicitation_for_us, into its reply.
    // True: m (the same mbuf) is ready for rte_eth_tx_burst on the port it arrived on, its rx
    // offload flags cleared and a NIC-stripped VLAN tag put back into the frame. False (any
    // other verdict, or an mbuf that cannot be written in place): m is untouched and the caller
    // frees it. Checksums: IPv4 header recomputed (20 bytes), echo checksums adjusted
    // incrementally (RFC 1624: only the type changes), the NA's computed over its 32 bytes.
    [[nodiscard]] bool respond(rte_mbuf* m, const packet_meta& meta, responder_counters& counters) const noexcept;

    const mac_address& mac() const noexcept { return _mac; }

private:
    void reply_to_arp(std::uint8_t* frame, const packet_meta& meta) const noexcept;
    void reply_to_echo_v4(std::uint8_t* frame, const packet_meta& meta) const noexcept;
    void reply_to_echo_v6(std::uint8_t* frame, const packet_meta& meta) const noexcept;
    bool advertise(rte_mbuf* m, const packet_meta& meta) const noexcept;

    mac_address _mac;
};

} // namespace kwik::engine
