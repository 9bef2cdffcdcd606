// Frame classification for the worker's rx burst (see classifier.hpp). The order of checks is
// the order of the headers; the first failure decides the verdict. Headers the classifier
// reads must lie in the first segment (every PMD puts at least the first 128 bytes there);
// payloads it checksums may span the chain.
#include "dataplane/engine/classifier.hpp"

#include <algorithm>
#include <cstring>

namespace kwik::engine {

namespace {

using kdp::drop_reason;

// Frames prefetched ahead of the one being classified: l3fwd's PREFETCH_OFFSET. The mbuf
// header itself is usually still in cache from the PMD's rx; its data is not.
constexpr std::size_t prefetch_ahead = 3;

// Whether bytes [0, end) of the frame can be read from the first segment: none when they can,
// `truncated` when the packet itself is shorter, headers_split when the chain cut them.
inline drop_reason need(const rte_mbuf* m, std::uint32_t end, drop_reason truncated) noexcept {
    if (end <= m->data_len) [[likely]] {
        return drop_reason::none;
    }
    return end > m->pkt_len ? truncated : drop_reason::headers_split;
}

inline void set_drop(packet_meta& meta, drop_reason r) noexcept {
    meta.v = verdict::drop;
    meta.reason = r;
}

// The offload verdict for a checksum: 1 good, -1 bad, 0 not known (verify in software).
template <std::uint64_t Mask, std::uint64_t Good, std::uint64_t Bad, std::uint64_t None>
inline int offload_status(const rte_mbuf* m) noexcept {
    const std::uint64_t f = m->ol_flags & Mask;
    if (f == Good || f == None) {
        return 1;
    }
    return f == Bad ? -1 : 0;
}

inline int ip_checksum_offload(const rte_mbuf* m) noexcept {
    return offload_status<RTE_MBUF_F_RX_IP_CKSUM_MASK, RTE_MBUF_F_RX_IP_CKSUM_GOOD, RTE_MBUF_F_RX_IP_CKSUM_BAD,
                          RTE_MBUF_F_RX_IP_CKSUM_NONE>(m);
}

inline int l4_checksum_offload(const rte_mbuf* m) noexcept {
    return offload_status<RTE_MBUF_F_RX_L4_CKSUM_MASK, RTE_MBUF_F_RX_L4_CKSUM_GOOD, RTE_MBUF_F_RX_L4_CKSUM_BAD,
                          RTE_MBUF_F_RX_L4_CKSUM_NONE>(m);
}

// The UDP part, shared by both families: length checks, the Kwik port test, the checksum.
// ip_payload: the bytes the IP header says follow it.
template <bool RxChecksumOffload>
inline void classify_udp(const classifier& c, const rte_mbuf* m, const std::uint8_t* frame, std::uint32_t l4,
                         std::uint32_t ip_payload, std::uint64_t pseudo_sum_without_length, packet_meta& meta,
                         classify_counters& counters) noexcept {
    if (ip_payload < udp_header_len) [[unlikely]] {
        set_drop(meta, drop_reason::bad_udp_length);
        return;
    }
    if (const drop_reason r = need(m, l4 + udp_header_len, drop_reason::bad_udp_length); r != drop_reason::none)
        [[unlikely]] {
        set_drop(meta, r);
        return;
    }
    const std::uint8_t* udp = frame + l4;
    const std::uint16_t udp_length = load_be16(udp + 4);
    if (udp_length < udp_header_len || udp_length > ip_payload) [[unlikely]] {
        set_drop(meta, drop_reason::bad_udp_length);
        return;
    }
    meta.tuple.src_port = load_be16(udp);
    meta.tuple.dst_port = load_be16(udp + 2);
    if (!c.is_kwik_port(meta.tuple.dst_port)) {
        meta.v = verdict::exception;
        return;
    }
    if (load_ne16(udp + 6) == 0) {
        if (meta.ip_version == 6) [[unlikely]] {
            set_drop(meta, drop_reason::bad_udp_checksum); // RFC 8200 8.1: mandatory over IPv6
            return;
        }
        ++counters.udp_checksum_absent;
    } else {
        int status = 0;
        if constexpr (RxChecksumOffload) {
            status = l4_checksum_offload(m);
        }
        if (status != 0) {
            ++counters.l4_checksum_offloaded;
        } else {
            ++counters.l4_checksum_software;
            // The pseudo-header length is the UDP length for both families (RFC 768, RFC 8200 8.1).
            const std::uint64_t sum =
                checksum_mbuf(m, l4, udp_length, checksum_add_be16(udp_length, pseudo_sum_without_length));
            status = checksum_fold(sum) == 0xFFFF ? 1 : -1;
        }
        if (status < 0) {
            set_drop(meta, drop_reason::bad_udp_checksum);
            return;
        }
    }
    meta.payload_offset = static_cast<std::uint16_t>(l4 + udp_header_len);
    meta.payload_length = static_cast<std::uint16_t>(udp_length - udp_header_len);
    meta.v = verdict::kwik;
}

// ICMP (over IPv4) or ICMPv6 message of len bytes at l4: true when its checksum verifies.
inline bool icmp_checksum_ok(const rte_mbuf* m, std::uint32_t l4, std::uint32_t len, std::uint64_t pseudo_sum,
                             classify_counters& counters) noexcept {
    ++counters.l4_checksum_software;
    return checksum_fold(checksum_mbuf(m, l4, len, pseudo_sum)) == 0xFFFF;
}

// A neighbour solicitation or advertisement long enough for its target, from the link and
// with code 0 (RFC 4861 7.1.1, 7.1.2: others are discarded; a router would lower the hop limit).
inline drop_reason check_neighbor_message(const rte_mbuf* m, const std::uint8_t* frame, const std::uint8_t* ip,
                                          std::uint32_t l4, std::uint32_t payload_len) noexcept {
    if (payload_len < neighbor_message_len) [[unlikely]] {
        return drop_reason::truncated_icmp;
    }
    if (const drop_reason r = need(m, l4 + neighbor_message_len, drop_reason::truncated_icmp); r != drop_reason::none)
        [[unlikely]] {
        return r;
    }
    if (ip[7] != nd_hop_limit || frame[l4 + 1] != 0) [[unlikely]] {
        return drop_reason::bad_neighbor_discovery;
    }
    return drop_reason::none;
}

} // namespace

// ---- names ----

std::string_view to_string(verdict v) noexcept {
    switch (v) {
#define KWIK_X(name, text)                                                                         \
    case verdict::name:                                                                            \
        return #name;
        KWIK_VERDICTS(KWIK_X)
#undef KWIK_X
    case verdict::count_:
        break;
    }
    return "invalid";
}

std::string_view describe(verdict v) noexcept {
    switch (v) {
#define KWIK_X(name, text)                                                                         \
    case verdict::name:                                                                            \
        return text;
        KWIK_VERDICTS(KWIK_X)
#undef KWIK_X
    case verdict::count_:
        break;
    }
    return "invalid";
}

// ---- configuration ----

bool classifier_config::add_kwik_port(std::uint16_t port) noexcept {
    if (port == 0) {
        return false;
    }
    if (std::find(kwik_ports.begin(), kwik_ports.begin() + kwik_port_count, port) !=
        kwik_ports.begin() + kwik_port_count) {
        return true;
    }
    if (kwik_port_count == kwik_ports.size()) {
        return false;
    }
    kwik_ports[kwik_port_count++] = port;
    return true;
}

bool classifier_config::add_address(const ip_address& a) noexcept {
    const bool multicast = a.is_v4() ? (a.v4_bytes()[0] & 0xF0) == 0xE0 || a.v4_host() == 0xFFFFFFFF
                                     : a.bytes[0] == 0xFF;
    if (a.is_unspecified() || multicast) {
        return false;
    }
    if (std::find(addresses.begin(), addresses.begin() + address_count, a) != addresses.begin() + address_count) {
        return true;
    }
    if (address_count == addresses.size()) {
        return false;
    }
    addresses[address_count++] = a;
    return true;
}

std::string_view classifier_config::validate() const noexcept {
    if (mac.is_zero() || mac.is_multicast()) {
        return "mac: the port's MAC address must be a non-zero unicast address";
    }
    if (kwik_port_count == 0) {
        return "kwik_ports: at least one Kwik UDP port is needed";
    }
    if (address_count == 0) {
        return "addresses: at least one appliance address is needed";
    }
    return {};
}

classifier::classifier(const classifier_config& config) noexcept : _mac(config.mac) {
    for (std::size_t i = 0; i < config.kwik_port_count; ++i) {
        _ports[_port_count++] = config.kwik_ports[i];
    }
    for (std::size_t i = 0; i < config.address_count; ++i) {
        const ip_address& a = config.addresses[i];
        if (a.is_v4()) {
            std::memcpy(&_v4[_v4_count++], a.v4_bytes(), 4);
        } else {
            _v6[_v6_count++] = a;
        }
    }
}

bool classifier::is_kwik_port(std::uint16_t port) const noexcept {
    // Linear: one or two ports in practice, so fewer compares than a 8 KB bitmap costs in cache.
    for (std::size_t i = 0; i < _port_count; ++i) {
        if (_ports[i] == port) {
            return true;
        }
    }
    return false;
}

bool classifier::is_our_v4(const std::uint8_t* a) const noexcept {
    std::uint32_t v;
    std::memcpy(&v, a, 4);
    for (std::size_t i = 0; i < _v4_count; ++i) {
        if (_v4[i] == v) {
            return true;
        }
    }
    return false;
}

bool classifier::is_our_v6(const std::uint8_t* a) const noexcept {
    std::uint64_t w[2];
    std::memcpy(w, a, 16);
    for (std::size_t i = 0; i < _v6_count; ++i) {
        const std::array<std::uint64_t, 2> o = _v6[i].words();
        if (o[0] == w[0] && o[1] == w[1]) {
            return true;
        }
    }
    return false;
}

bool classifier::is_our_address(const ip_address& a) const noexcept {
    return a.is_v4() ? is_our_v4(a.v4_bytes()) : is_our_v6(a.bytes.data());
}

// ---- the burst ----

template <bool RxChecksumOffload>
void classifier::classify(std::span<rte_mbuf* const> burst, std::span<packet_meta> meta,
                          classify_counters& counters) const noexcept {
    const std::size_t n = std::min(burst.size(), meta.size());
    for (std::size_t i = 0; i < std::min(n, prefetch_ahead); ++i) {
        __builtin_prefetch(rte_pktmbuf_mtod(burst[i], const void*));
    }
    for (std::size_t i = 0; i < n; ++i) {
        if (i + prefetch_ahead < n) {
            __builtin_prefetch(rte_pktmbuf_mtod(burst[i + prefetch_ahead], const void*));
        }
        packet_meta& out = meta[i];
        classify_one<RxChecksumOffload>(burst[i], out, counters);
        ++counters.verdicts[static_cast<std::size_t>(out.v)];
        if (out.v == verdict::drop) {
            ++counters.drops[static_cast<std::size_t>(out.reason)];
        }
    }
}

template <bool RxChecksumOffload>
void classifier::classify_one(const rte_mbuf* m, packet_meta& meta, classify_counters& counters) const noexcept {
    meta = packet_meta{};
    if (const drop_reason r = need(m, ethernet_header_len, drop_reason::truncated_ethernet); r != drop_reason::none)
        [[unlikely]] {
        set_drop(meta, r);
        return;
    }
    const auto* frame = rte_pktmbuf_mtod(m, const std::uint8_t*);
    if ((frame[0] & 0x01) == 0 && std::memcmp(frame, _mac.bytes.data(), 6) != 0) [[unlikely]] {
        set_drop(meta, drop_reason::not_for_us);
        return;
    }
    std::memcpy(meta.src_mac.bytes.data(), frame + 6, 6);
    std::uint16_t ethertype = load_be16(frame + 12);
    std::uint32_t l3 = ethernet_header_len;
    if (ethertype == ethertype_vlan) {
        if (const drop_reason r = need(m, ethernet_header_len + vlan_tag_len, drop_reason::truncated_ethernet);
            r != drop_reason::none) [[unlikely]] {
            set_drop(meta, r);
            return;
        }
        meta.flags |= meta_flag::vlan_tagged;
        meta.vlan_tci = load_be16(frame + 14);
        ethertype = load_be16(frame + 16);
        l3 += vlan_tag_len;
    }
    meta.l3_offset = static_cast<std::uint16_t>(l3);
    if ((m->ol_flags & RTE_MBUF_F_RX_VLAN_STRIPPED) != 0) [[unlikely]] {
        if ((meta.flags & meta_flag::vlan_tagged) != 0) {
            set_drop(meta, drop_reason::not_ip); // a second tag: one was stripped, one is left
            return;
        }
        meta.flags |= meta_flag::vlan_stripped;
        meta.vlan_tci = m->vlan_tci;
    }
    switch (ethertype) {
    case ethertype_ipv4:
        classify_ipv4<RxChecksumOffload>(m, frame, l3, meta, counters);
        return;
    case ethertype_ipv6:
        classify_ipv6<RxChecksumOffload>(m, frame, l3, meta, counters);
        return;
    case ethertype_arp:
        classify_arp(m, frame, l3, meta);
        return;
    default:
        set_drop(meta, drop_reason::not_ip); // includes a second 802.1Q or an 802.1ad tag
        return;
    }
}

void classifier::classify_arp(const rte_mbuf* m, const std::uint8_t* frame, std::uint32_t l3,
                              packet_meta& meta) const noexcept {
    if (const drop_reason r = need(m, l3 + arp_ipv4_len, drop_reason::bad_arp); r != drop_reason::none) [[unlikely]] {
        set_drop(meta, r);
        return;
    }
    const std::uint8_t* arp = frame + l3;
    if (load_be16(arp) != arp_hardware_ethernet || load_be16(arp + 2) != ethertype_ipv4 || arp[4] != 6 ||
        arp[5] != 4) [[unlikely]] {
        set_drop(meta, drop_reason::bad_arp);
        return;
    }
    meta.arp_op = load_be16(arp + 6);
    meta.src_mac = mac_address::from(arp + 8);
    meta.tuple.src = ip_address::v4(arp + 14);
    meta.tuple.dst = ip_address::v4(arp + 24);
    // A request for one of ours is answered, probes (sender 0.0.0.0) included: that defends the
    // address. Replies, gratuitous ARP and requests for others go to the kernel, which shares
    // the addresses and keeps its own neighbour cache.
    meta.v = meta.arp_op == arp_op_request && is_our_v4(arp + 24) ? verdict::arp_request_for_us : verdict::exception;
}

// A neighbour advertisement to one of our addresses (the answer to the neighbour table's
// solicitation): checked as RFC 4861 7.1.2 says, then punted like any other NA (the kernel
// keeps its own cache), marked learnable when it names the target's link-layer address.
void classifier::classify_advertisement(const rte_mbuf* m, const std::uint8_t* frame, const std::uint8_t* ip,
                                        std::uint32_t l4, std::uint32_t payload_len, std::uint64_t pseudo,
                                        packet_meta& meta, classify_counters& counters) const noexcept {
    if (const drop_reason r = check_neighbor_message(m, frame, ip, l4, payload_len); r != drop_reason::none)
        [[unlikely]] {
        set_drop(meta, r);
        return;
    }
    if (!icmp_checksum_ok(m, l4, payload_len, pseudo, counters)) {
        set_drop(meta, drop_reason::bad_icmp_checksum);
        return;
    }
    meta.v = verdict::exception;
    const std::uint8_t* target = frame + l4 + 8;
    const std::uint32_t end = l4 + payload_len;
    if (target[0] == 0xFF || end > m->data_len) [[unlikely]] {
        return; // a multicast target is invalid; options in a second segment are not looked for
    }
    // The options: type, length in units of 8 bytes (never 0), value.
    for (std::uint32_t at = l4 + neighbor_message_len; at + 2 <= end;) {
        const std::uint32_t len = frame[at + 1] * 8u;
        if (len == 0 || at + len > end) [[unlikely]] {
            return;
        }
        if (frame[at] == nd_option_target_link_layer && len == link_layer_option_len) {
            const mac_address mac = mac_address::from(frame + at + 2);
            if (mac.is_zero() || mac.is_multicast()) [[unlikely]] {
                return;
            }
            meta.flags |= meta_flag::neighbor_advertisement;
            meta.src_mac = mac;
            meta.tuple.src = ip_address::v6(target);
            return;
        }
        at += len;
    }
}

template <bool RxChecksumOffload>
void classifier::classify_ipv4(const rte_mbuf* m, const std::uint8_t* frame, std::uint32_t l3, packet_meta& meta,
                               classify_counters& counters) const noexcept {
    if (const drop_reason r = need(m, l3 + ipv4_header_len, drop_reason::truncated_ipv4); r != drop_reason::none)
        [[unlikely]] {
        set_drop(meta, r);
        return;
    }
    const std::uint8_t* ip = frame + l3;
    const std::uint32_t header_len = (ip[0] & 0x0Fu) * 4;
    const std::uint32_t total_len = load_be16(ip + 2);
    if ((ip[0] >> 4) != 4 || header_len < ipv4_header_len || total_len < header_len) [[unlikely]] {
        set_drop(meta, drop_reason::bad_ipv4_header);
        return;
    }
    if (l3 + total_len > m->pkt_len) [[unlikely]] {
        set_drop(meta, drop_reason::truncated_ipv4);
        return;
    }
    if (l3 + header_len > m->data_len) [[unlikely]] {
        set_drop(meta, drop_reason::headers_split);
        return;
    }
    int status = 0;
    if constexpr (RxChecksumOffload) {
        status = ip_checksum_offload(m);
    }
    if (status != 0) {
        ++counters.ipv4_checksum_offloaded;
    } else {
        ++counters.ipv4_checksum_software;
        status = checksum_fold(checksum_add(ip, header_len, 0)) == 0xFFFF ? 1 : -1;
    }
    if (status < 0) {
        set_drop(meta, drop_reason::bad_ipv4_checksum);
        return;
    }
    const std::uint8_t protocol = ip[9];
    meta.ip_version = 4;
    meta.tuple.protocol = protocol;
    meta.tuple.src = ip_address::v4(ip + 12);
    meta.tuple.dst = ip_address::v4(ip + 16);
    const std::uint32_t l4 = l3 + header_len;
    meta.l4_offset = static_cast<std::uint16_t>(l4);
    if (!is_our_v4(ip + 16)) {
        meta.v = verdict::exception; // broadcast, multicast, another host's: the kernel decides
        return;
    }
    const std::uint32_t ip_payload = total_len - header_len;
    const std::uint16_t fragment = load_be16(ip + 6);
    if ((fragment & (ipv4_flag_more_fragments | ipv4_fragment_offset_mask)) != 0) [[unlikely]] {
        // A first fragment to a Kwik port is dropped: the pipeline cannot reassemble and KDP
        // sends with DF. Later fragments carry no port; they and other protocols' fragments go
        // to the kernel, which reassembles or times them out.
        if (protocol == ip_proto_udp && (fragment & ipv4_fragment_offset_mask) == 0 &&
            ip_payload >= udp_header_len && l4 + udp_header_len <= m->data_len &&
            is_kwik_port(load_be16(frame + l4 + 2))) {
            set_drop(meta, drop_reason::ip_fragment);
        } else {
            meta.v = verdict::exception;
        }
        return;
    }
    if (header_len != ipv4_header_len) [[unlikely]] {
        meta.v = verdict::exception; // options: the kernel's business
        return;
    }
    if (protocol == ip_proto_udp) [[likely]] {
        const std::uint64_t pseudo = checksum_add_be16(ip_proto_udp, checksum_add(ip + 12, 8, 0));
        classify_udp<RxChecksumOffload>(*this, m, frame, l4, ip_payload, pseudo, meta, counters);
        return;
    }
    if (protocol == ip_proto_icmp) {
        if (ip_payload < icmp_echo_header_len) [[unlikely]] {
            set_drop(meta, drop_reason::truncated_icmp);
            return;
        }
        if (const drop_reason r = need(m, l4 + icmp_echo_header_len, drop_reason::truncated_icmp);
            r != drop_reason::none) [[unlikely]] {
            set_drop(meta, r);
            return;
        }
        if (frame[l4] != icmp_echo_request) {
            meta.v = verdict::exception;
            return;
        }
        if (!icmp_checksum_ok(m, l4, ip_payload, 0, counters)) {
            set_drop(meta, drop_reason::bad_icmp_checksum);
            return;
        }
        meta.v = verdict::icmp_echo_for_us;
        return;
    }
    meta.v = verdict::exception; // TCP (the control process, SSH) and the rest
}

template <bool RxChecksumOffload>
void classifier::classify_ipv6(const rte_mbuf* m, const std::uint8_t* frame, std::uint32_t l3, packet_meta& meta,
                               classify_counters& counters) const noexcept {
    if (const drop_reason r = need(m, l3 + ipv6_header_len, drop_reason::truncated_ipv6); r != drop_reason::none)
        [[unlikely]] {
        set_drop(meta, r);
        return;
    }
    const std::uint8_t* ip = frame + l3;
    if ((ip[0] >> 4) != 6) [[unlikely]] {
        set_drop(meta, drop_reason::bad_ipv6_header);
        return;
    }
    const std::uint32_t payload_len = load_be16(ip + 4);
    const std::uint32_t l4 = l3 + ipv6_header_len;
    if (l4 + payload_len > m->pkt_len) [[unlikely]] {
        set_drop(meta, drop_reason::truncated_ipv6);
        return;
    }
    const std::uint8_t next_header = ip[6];
    meta.ip_version = 6;
    meta.tuple.protocol = next_header;
    meta.tuple.src = ip_address::v6(ip + 8);
    meta.tuple.dst = ip_address::v6(ip + 24);
    meta.l4_offset = static_cast<std::uint16_t>(l4);
    const bool for_us = is_our_v6(ip + 24);
    if (!for_us && !(next_header == ip_proto_icmpv6 && is_solicited_node_group(ip + 24))) {
        meta.v = verdict::exception;
        return;
    }
    if (next_header == ip_proto_udp) [[likely]] {
        const std::uint64_t pseudo = checksum_add_be16(ip_proto_udp, checksum_add(ip + 8, 32, 0));
        classify_udp<RxChecksumOffload>(*this, m, frame, l4, payload_len, pseudo, meta, counters);
        return;
    }
    if (next_header == ip_proto_icmpv6) {
        if (payload_len < 4) [[unlikely]] {
            set_drop(meta, drop_reason::truncated_icmp);
            return;
        }
        if (const drop_reason r = need(m, l4 + 4, drop_reason::truncated_icmp); r != drop_reason::none) [[unlikely]] {
            set_drop(meta, r);
            return;
        }
        const std::uint8_t type = frame[l4];
        const std::uint64_t pseudo = pseudo_header_v6(ip + 8, ip + 24, ip_proto_icmpv6, payload_len);
        if (type == icmpv6_echo_request && for_us) {
            if (payload_len < icmp_echo_header_len) [[unlikely]] {
                set_drop(meta, drop_reason::truncated_icmp);
                return;
            }
            if (const drop_reason r = need(m, l4 + icmp_echo_header_len, drop_reason::truncated_icmp);
                r != drop_reason::none) [[unlikely]] {
                set_drop(meta, r);
                return;
            }
            if (!icmp_checksum_ok(m, l4, payload_len, pseudo, counters)) {
                set_drop(meta, drop_reason::bad_icmp_checksum);
                return;
            }
            meta.v = verdict::icmpv6_echo_for_us;
            return;
        }
        if (type == icmpv6_neighbor_solicitation) {
            if (const drop_reason r = check_neighbor_message(m, frame, ip, l4, payload_len); r != drop_reason::none)
                [[unlikely]] {
                set_drop(meta, r);
                return;
            }
            if (!is_our_v6(frame + l4 + 8)) {
                meta.v = verdict::exception; // another address (the kernel's link-local, DAD of others)
                return;
            }
            if (!icmp_checksum_ok(m, l4, payload_len, pseudo, counters)) {
                set_drop(meta, drop_reason::bad_icmp_checksum);
                return;
            }
            meta.v = verdict::neighbor_solicitation_for_us;
            return;
        }
        if (type == icmpv6_neighbor_advertisement && for_us) {
            classify_advertisement(m, frame, ip, l4, payload_len, pseudo, meta, counters);
            return;
        }
        meta.v = verdict::exception; // NA, RS, RA, MLD, errors...
        return;
    }
    if (!for_us) {
        meta.v = verdict::exception;
        return;
    }
    if (next_header == ip_proto_ipv6_fragment) [[unlikely]] {
        // As for IPv4: a first fragment of UDP to a Kwik port is dropped, the rest punted.
        const std::uint32_t udp = l4 + ipv6_fragment_header_len;
        if (payload_len >= ipv6_fragment_header_len + udp_header_len && udp + udp_header_len <= m->data_len &&
            frame[l4] == ip_proto_udp && (load_be16(frame + l4 + 2) & 0xFFF8) == 0 &&
            is_kwik_port(load_be16(frame + udp + 2))) {
            set_drop(meta, drop_reason::ip_fragment);
        } else {
            meta.v = verdict::exception;
        }
        return;
    }
    meta.v = verdict::exception; // TCP, extension headers, the rest
}

template void classifier::classify<false>(std::span<rte_mbuf* const>, std::span<packet_meta>,
                                          classify_counters&) const noexcept;
template void classifier::classify<true>(std::span<rte_mbuf* const>, std::span<packet_meta>,
                                         classify_counters&) const noexcept;

// ---- checksums over chains ----

std::uint64_t checksum_mbuf(const rte_mbuf* m, std::uint32_t off, std::uint32_t len, std::uint64_t sum) noexcept {
    const rte_mbuf* seg = m;
    while (seg != nullptr && off >= seg->data_len) {
        off -= seg->data_len;
        seg = seg->next;
    }
    if (seg != nullptr && off + len <= seg->data_len) [[likely]] {
        return checksum_add_wide(rte_pktmbuf_mtod_offset(seg, const std::uint8_t*, off), len, sum);
    }
    // Pieces after an odd number of bytes start in the middle of a 16-bit word: their folded
    // sum counts byte-swapped.
    std::uint32_t done = 0;
    for (; seg != nullptr && done < len; seg = seg->next) {
        const std::uint32_t n = std::min<std::uint32_t>(seg->data_len - off, len - done);
        const std::uint16_t piece =
            checksum_fold(checksum_add(rte_pktmbuf_mtod_offset(seg, const std::uint8_t*, off), n, 0));
        sum += (done & 1) != 0 ? checksum_swap(piece) : piece;
        done += n;
        off = 0;
    }
    return sum;
}

} // namespace kwik::engine
