// The first step of a worker's burst: says, for each received frame, whether it is Kwik UDP for
// the KDP pipeline, an ARP/ICMP/ND request the engine answers itself (responder.hpp), traffic
// for the kernel's exception interface, or a drop with its kdp::drop_reason. Parses Ethernet
// (one optional 802.1Q tag), ARP, IPv4, IPv6 and UDP and verifies the checksums that matter.
// The classifier is immutable after construction: any number of lcores may share one; each
// passes its own counters and metadata array.
#pragma once

#include <rte_mbuf.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

#include "dataplane/engine/net_headers.hpp"
#include "dataplane/kdp/drop_reason.hpp"

namespace kwik::engine {

#define KWIK_VERDICTS(X)                                                                           \
    X(kwik, "UDP to a Kwik port at one of the appliance's addresses: to the KDP pipeline")         \
    X(arp_request_for_us, "ARP request for an appliance IPv4 address: answered")                   \
    X(icmp_echo_for_us, "ICMP echo request to an appliance IPv4 address: answered")                \
    X(icmpv6_echo_for_us, "ICMPv6 echo request to an appliance IPv6 address: answered")            \
    X(neighbor_solicitation_for_us, "solicitation for an appliance IPv6 address: answered")        \
    X(exception, "anything else IP or ARP: to the kernel's exception interface")                   \
    X(drop, "malformed or not ours: freed, counted under its drop reason")

enum class verdict : std::uint8_t {
#define KWIK_X(name, text) name,
    KWIK_VERDICTS(KWIK_X)
#undef KWIK_X
        count_
};

inline constexpr std::size_t verdict_count = static_cast<std::size_t>(verdict::count_);

std::string_view to_string(verdict v) noexcept;
std::string_view describe(verdict v) noexcept;

// What classify() found about one frame. Kept in a caller-provided array parallel to the burst
// (one cache line per packet, 2 KB for a burst of 32, which stays in L1) rather than in the
// mbuf: the mbuf's dynamic-field area (36 bytes in DPDK 22.11) cannot hold an IPv6 5-tuple,
// and a plain array needs no rte_mbuf_dynfield_register() before use.
// Fields are filled as far as parsing got; which are meaningful per verdict:
//   all:            v, reason, vlan_tci/flags, src_mac (the Ethernet source), l3_offset
//   IPv4/IPv6:      ip_version, tuple.src/dst/protocol, l4_offset; ports for UDP
//   ARP:            ip_version 0, tuple.src/dst = sender/target IPv4 (mapped), src_mac = the
//                   sender hardware address, arp_op; learn neighbours from it (ARP replies go
//                   to the kernel as exception but carry what neighbor_table::learn needs)
//   NA (exception with meta_flag::neighbor_advertisement: a valid neighbour advertisement to
//                   one of our addresses with a target link-layer address option): tuple.src =
//                   the target address, src_mac = its link-layer address (what
//                   neighbor_table::learn needs, as for ARP)
//   kwik:           tuple (ports in host order, protocol 17), payload_offset/payload_length:
//                   the UDP payload from the start of the frame (what engine::parse_mbuf takes)
struct alignas(64) packet_meta {
    five_tuple tuple;
    verdict v = verdict::drop;
    kdp::drop_reason reason = kdp::drop_reason::none; // none unless v is drop
    std::uint8_t ip_version = 0;                      // 4, 6, or 0 (ARP, or not parsed that far)
    std::uint8_t flags = 0;                           // meta_flag
    std::uint16_t vlan_tci = 0;                       // host order, when tagged or stripped
    std::uint16_t l3_offset = 0;                      // bytes from the frame start to ARP/IP
    std::uint16_t l4_offset = 0;                      // to UDP/ICMP/ICMPv6
    std::uint16_t payload_offset = 0;                 // to the UDP payload (kwik)
    std::uint16_t payload_length = 0;                 // UDP length - 8 (kwik)
    std::uint16_t arp_op = 0;                         // host order (ARP)
    mac_address src_mac;
};
static_assert(sizeof(packet_meta) == 64);

namespace meta_flag {
inline constexpr std::uint8_t vlan_tagged = 0x01;   // an 802.1Q tag is in the frame
inline constexpr std::uint8_t vlan_stripped = 0x02; // the NIC removed the tag (in mbuf->vlan_tci)
inline constexpr std::uint8_t neighbor_advertisement = 0x04; // a learnable NA (see packet_meta)
} // namespace meta_flag

// Per-lcore counters. Every packet passed to classify() counts once in verdicts and, when
// dropped, once in drops under its reason; the caller frees drops and must not count them
// again. The checksum counters say where the checksum work went.
struct classify_counters {
    std::array<std::uint64_t, verdict_count> verdicts{};
    std::array<std::uint64_t, kdp::drop_reason_count> drops{};
    std::uint64_t ipv4_checksum_offloaded = 0; // NIC said good or bad: no software pass
    std::uint64_t ipv4_checksum_software = 0;
    std::uint64_t l4_checksum_offloaded = 0;   // UDP (kwik) only: ICMP is always in software
    std::uint64_t l4_checksum_software = 0;    // UDP, ICMP and ICMPv6 verified in software
    std::uint64_t udp_checksum_absent = 0;     // IPv4 kwik datagrams sent with checksum 0

    std::uint64_t count(verdict v) const noexcept { return verdicts[static_cast<std::size_t>(v)]; }
    std::uint64_t count(kdp::drop_reason r) const noexcept { return drops[static_cast<std::size_t>(r)]; }
};

inline constexpr std::size_t max_kwik_ports = 8;
inline constexpr std::size_t max_appliance_addresses = 16; // IPv4 and IPv6 together

// What the appliance is. Filled at start-up from kwikd's configuration.
struct classifier_config {
    mac_address mac; // the port's: unicast frames to another MAC are dropped (not_for_us)
    std::array<std::uint16_t, max_kwik_ports> kwik_ports{};
    std::size_t kwik_port_count = 0;
    std::array<ip_address, max_appliance_addresses> addresses{};
    std::size_t address_count = 0;

    // False when full, or for port 0 / an unspecified or multicast address; duplicates are
    // accepted and ignored.
    [[nodiscard]] bool add_kwik_port(std::uint16_t port) noexcept;
    [[nodiscard]] bool add_address(const ip_address& a) noexcept;
    // Empty when usable, else what is wrong, naming the field.
    [[nodiscard]] std::string_view validate() const noexcept;
};

class classifier {
public:
    // Precondition: config.validate() is empty.
    explicit classifier(const classifier_config& config) noexcept;

    // Classifies burst[i] into meta[i] (meta.size() >= burst.size()) and counts. Reads the
    // mbufs, never modifies or frees them. No allocation, no locks.
    // RxChecksumOffload: the port was configured with RTE_ETH_RX_OFFLOAD_IPV4_CKSUM and
    // UDP_CKSUM, so ol_flags carry RTE_MBUF_F_RX_IP_CKSUM_* / RTE_MBUF_F_RX_L4_CKSUM_*: GOOD
    // (or NONE: "not correct in the packet, but the data's integrity was verified", virtio)
    // skips the software pass, BAD drops, UNKNOWN falls back to software. Without it, ol_flags
    // are not looked at and every checksum is verified in software.
    // Cost per 1400-byte Kwik datagram, burst of 32, 2-core Xeon VM, headers in L2: software
    // checksums about 980 instructions (callgrind) and 95-130 ns, nearly all of it the UDP
    // checksum; with both offloaded 226 instructions and 32 ns.
    template <bool RxChecksumOffload>
    void classify(std::span<rte_mbuf* const> burst, std::span<packet_meta> meta,
                  classify_counters& counters) const noexcept;

    bool is_kwik_port(std::uint16_t port) const noexcept;
    bool is_our_address(const ip_address& a) const noexcept;
    const mac_address& mac() const noexcept { return _mac; }

private:
    template <bool RxChecksumOffload>
    void classify_one(const rte_mbuf* m, packet_meta& meta, classify_counters& counters) const noexcept;
    template <bool RxChecksumOffload>
    void classify_ipv4(const rte_mbuf* m, const std::uint8_t* frame, std::uint32_t l3, packet_meta& meta,
                       classify_counters& counters) const noexcept;
    template <bool RxChecksumOffload>
    void classify_ipv6(const rte_mbuf* m, const std::uint8_t* frame, std::uint32_t l3, packet_meta& meta,
                       classify_counters& counters) const noexcept;
    void classify_arp(const rte_mbuf* m, const std::uint8_t* frame, std::uint32_t l3,
                      packet_meta& meta) const noexcept;
    void classify_advertisement(const rte_mbuf* m, const std::uint8_t* frame, const std::uint8_t* ip, std::uint32_t l4,
                                std::uint32_t payload_len, std::uint64_t pseudo, packet_meta& meta,
                                classify_counters& counters) const noexcept;
    bool is_our_v4(const std::uint8_t* a) const noexcept;
    bool is_our_v6(const std::uint8_t* a) const noexcept;

    mac_address _mac;
    std::uint8_t _port_count = 0;
    std::uint8_t _v4_count = 0;
    std::uint8_t _v6_count = 0;
    std::array<std::uint16_t, max_kwik_ports> _ports{};
    std::array<std::uint32_t, max_appliance_addresses> _v4{}; // as loaded from the wire (memcpy)
    std::array<ip_address, max_appliance_addresses> _v6{};
};

extern template void classifier::classify<false>(std::span<rte_mbuf* const>, std::span<packet_meta>,
                                                 classify_counters&) const noexcept;
extern template void classifier::classify<true>(std::span<rte_mbuf* const>, std::span<packet_meta>,
                                                classify_counters&) const noexcept;

// The one's-complement sum of len bytes of m's packet from offset off, across segments; the
// caller checked off + len <= pkt_len. For checksums over data that may span a chain.
std::uint64_t checksum_mbuf(const rte_mbuf* m, std::uint32_t off, std::uint32_t len, std::uint64_t sum) noexcept;

} // namespace kwik::engine
