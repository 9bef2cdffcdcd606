// In-place replies (see responder.hpp). Offsets come from the classifier's metadata, which
// also guarantees the headers rewritten here lie in the first segment.
#include "dataplane/engine/responder.hpp"

#include <rte_ether.h>

#include <cstring>

namespace kwik::engine {

namespace {

// Ethernet addresses of a reply: to `to`, from us. The EtherType and any 802.1Q tag stay.
inline void set_ethernet(std::uint8_t* frame, const mac_address& to, const mac_address& from) noexcept {
    to.store(frame);
    from.store(frame + 6);
}

// Echo replies change only the type byte of the first ICMP word: adjust, do not re-sum the
// (possibly jumbo, possibly chained) payload.
inline void set_icmp_type(std::uint8_t* icmp, std::uint8_t type) noexcept {
    const std::uint16_t old_word = load_ne16(icmp);
    icmp[0] = type;
    store_ne16(icmp + 2, checksum_adjust(load_ne16(icmp + 2), old_word, load_ne16(icmp)));
}

} // namespace

bool responder::respond(rte_mbuf* m, const packet_meta& meta, responder_counters& counters) const noexcept {
    // Writing into a buffer someone else also references would change their packet. A tag the
    // NIC stripped goes back in front of the frame: that needs a direct mbuf with headroom.
    // Everything that can fail is checked here, before the first byte is written.
    const bool stripped = (meta.flags & meta_flag::vlan_stripped) != 0;
    if (rte_mbuf_refcnt_read(m) != 1 || RTE_MBUF_CLONED(m) ||
        (stripped && (!RTE_MBUF_DIRECT(m) || rte_pktmbuf_headroom(m) < vlan_tag_len))) [[unlikely]] {
        ++counters.not_built;
        return false;
    }
    auto* frame = rte_pktmbuf_mtod(m, std::uint8_t*);
    switch (meta.v) {
    case verdict::arp_request_for_us:
        reply_to_arp(frame, meta);
        ++counters.arp_replies;
        break;
    case verdict::icmp_echo_for_us:
        reply_to_echo_v4(frame, meta);
        ++counters.icmp_echo_replies;
        break;
    case verdict::icmpv6_echo_for_us:
        reply_to_echo_v6(frame, meta);
        ++counters.icmpv6_echo_replies;
        break;
    case verdict::neighbor_solicitation_for_us:
        if (!advertise(m, meta)) [[unlikely]] {
            ++counters.not_built;
            return false;
        }
        ++counters.neighbor_advertisements;
        break;
    default:
        ++counters.not_built;
        return false;
    }
    // The rx offload results describe the request, not the reply; keep only what says how the
    // buffer is held.
    m->ol_flags &= RTE_MBUF_F_EXTERNAL;
    if (stripped) [[unlikely]] {
        // Put the tag back in software rather than depend on the port having VLAN insertion
        // enabled. Cannot fail: checked above (direct, not shared, headroom, 60-byte frame).
        m->vlan_tci = meta.vlan_tci;
        rte_mbuf* p = m;
        (void)rte_vlan_insert(&p);
    }
    return true;
}

void responder::reply_to_arp(std::uint8_t* frame, const packet_meta& meta) const noexcept {
    std::uint8_t* arp = frame + meta.l3_offset;
    // Sender and target swap; we become the sender of the address that was asked for.
    std::uint8_t asker_mac[6];
    std::uint8_t asker_ip[4];
    std::uint8_t asked_ip[4];
    std::memcpy(asker_mac, arp + 8, 6);
    std::memcpy(asker_ip, arp + 14, 4);
    std::memcpy(asked_ip, arp + 24, 4);
    store_be16(arp + 6, arp_op_reply);
    _mac.store(arp + 8);
    std::memcpy(arp + 14, asked_ip, 4);
    std::memcpy(arp + 18, asker_mac, 6);
    std::memcpy(arp + 24, asker_ip, 4);
    // RFC 826: the reply goes to the requester's hardware address as the message states it.
    set_ethernet(frame, mac_address::from(asker_mac), _mac);
}

void responder::reply_to_echo_v4(std::uint8_t* frame, const packet_meta& meta) const noexcept {
    std::uint8_t* ip = frame + meta.l3_offset;
    std::uint8_t addr[4];
    std::memcpy(addr, ip + 12, 4);
    std::memcpy(ip + 12, ip + 16, 4);
    std::memcpy(ip + 16, addr, 4);
    ip[8] = reply_hop_limit;
    store_ne16(ip + 10, 0);
    store_ne16(ip + 10, checksum_finish(checksum_add(ip, ipv4_header_len, 0))); // classifier: no options
    set_icmp_type(frame + meta.l4_offset, icmp_echo_reply);
    set_ethernet(frame, meta.src_mac, _mac);
}

void responder::reply_to_echo_v6(std::uint8_t* frame, const packet_meta& meta) const noexcept {
    std::uint8_t* ip = frame + meta.l3_offset;
    std::uint8_t addr[16];
    std::memcpy(addr, ip + 8, 16);
    std::memcpy(ip + 8, ip + 24, 16);
    std::memcpy(ip + 24, addr, 16);
    ip[7] = reply_hop_limit;
    // The pseudo-header sum does not change when source and destination swap.
    set_icmp_type(frame + meta.l4_offset, icmpv6_echo_reply);
    set_ethernet(frame, meta.src_mac, _mac);
}

bool responder::advertise(rte_mbuf* m, const packet_meta& meta) const noexcept {
    // The NA is 24 bytes plus the 8-byte target link-layer address option, whatever options
    // the NS carried: resize the frame to exactly that.
    constexpr std::uint32_t na_len = neighbor_message_len + link_layer_option_len;
    const std::uint32_t frame_len = meta.l4_offset + na_len;
    if (m->nb_segs != 1) [[unlikely]] {
        return false;
    }
    if (m->pkt_len < frame_len) {
        if (rte_pktmbuf_append(m, static_cast<std::uint16_t>(frame_len - m->pkt_len)) == nullptr) [[unlikely]] {
            return false;
        }
    } else if (m->pkt_len > frame_len) {
        if (rte_pktmbuf_trim(m, static_cast<std::uint16_t>(m->pkt_len - frame_len)) != 0) [[unlikely]] {
            return false;
        }
    }
    auto* frame = rte_pktmbuf_mtod(m, std::uint8_t*);
    std::uint8_t* ip = frame + meta.l3_offset;
    std::uint8_t* icmp = frame + meta.l4_offset;
    // RFC 4861 7.2.4: to the solicitation's source with S set; a DAD probe (source ::) is
    // answered to all-nodes with S clear.
    const bool from_unspecified = ip_address::v6(ip + 8).is_zero();
    std::uint8_t flags = na_flag_override;
    if (from_unspecified) {
        static constexpr std::uint8_t all_nodes[16] = {0xFF, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01};
        std::memcpy(ip + 24, all_nodes, 16);
        set_ethernet(frame, ipv6_multicast_mac(ip_address::v6(all_nodes)), _mac);
    } else {
        std::memcpy(ip + 24, ip + 8, 16);
        flags |= na_flag_solicited;
        set_ethernet(frame, meta.src_mac, _mac);
    }
    std::memcpy(ip + 8, icmp + 8, 16); // from the target address itself
    store_be16(ip + 4, static_cast<std::uint16_t>(na_len));
    ip[7] = nd_hop_limit;
    icmp[0] = icmpv6_neighbor_advertisement;
    icmp[1] = 0;
    store_ne16(icmp + 2, 0);
    icmp[4] = flags;
    icmp[5] = 0;
    icmp[6] = 0;
    icmp[7] = 0;
    // icmp + 8: the target, unchanged.
    icmp[24] = nd_option_target_link_layer;
    icmp[25] = 1; // in units of 8 bytes
    _mac.store(icmp + 26);
    const std::uint64_t sum = pseudo_header_v6(ip + 8, ip + 24, ip_proto_icmpv6, na_len);
    store_ne16(icmp + 2, checksum_finish(checksum_add(icmp, na_len, sum)));
    return true;
}

} // namespace kwik::engine
