// The Ethernet/ARP/IPv4/IPv6/UDP/ICMP vocabulary the engine's classifier, responder and
// neighbour table share: addresses (IPv4 held as IPv4-mapped IPv6, so one 16-byte key serves
// both families), header offsets and constants, big-endian loads and stores, and RFC 1071
// one's-complement checksum arithmetic. Pure values and inline functions, no DPDK; any thread.
#pragma once

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>

namespace kwik::engine {

// ---- byte order: header fields are read and written through these, never through casts ----

inline std::uint16_t load_be16(const std::uint8_t* p) noexcept {
    return static_cast<std::uint16_t>((p[0] << 8) | p[1]);
}

inline std::uint32_t load_be32(const std::uint8_t* p) noexcept {
    return (std::uint32_t{p[0]} << 24) | (std::uint32_t{p[1]} << 16) | (std::uint32_t{p[2]} << 8) | p[3];
}

inline void store_be16(std::uint8_t* p, std::uint16_t v) noexcept {
    p[0] = static_cast<std::uint8_t>(v >> 8);
    p[1] = static_cast<std::uint8_t>(v);
}

inline void store_be32(std::uint8_t* p, std::uint32_t v) noexcept {
    p[0] = static_cast<std::uint8_t>(v >> 24);
    p[1] = static_cast<std::uint8_t>(v >> 16);
    p[2] = static_cast<std::uint8_t>(v >> 8);
    p[3] = static_cast<std::uint8_t>(v);
}

// ---- addresses ----

struct mac_address {
    std::array<std::uint8_t, 6> bytes{};

    static mac_address from(const std::uint8_t* p) noexcept {
        mac_address m;
        std::memcpy(m.bytes.data(), p, 6);
        return m;
    }
    void store(std::uint8_t* p) const noexcept { std::memcpy(p, bytes.data(), 6); }
    bool is_multicast() const noexcept { return (bytes[0] & 0x01) != 0; } // broadcast included
    bool is_zero() const noexcept { return (bytes[0] | bytes[1] | bytes[2] | bytes[3] | bytes[4] | bytes[5]) == 0; }
    bool operator==(const mac_address&) const = default;
};

inline constexpr mac_address broadcast_mac{{0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF}};

// An IPv4 or IPv6 address, network order. IPv4 a.b.c.d is held as ::ffff:a.b.c.d (RFC 4291
// 2.5.5.2), so a 5-tuple or a neighbour key is the same 16 bytes whatever the family.
struct alignas(8) ip_address {
    std::array<std::uint8_t, 16> bytes{};

    static ip_address v4(const std::uint8_t* p) noexcept {
        ip_address a;
        a.bytes[10] = 0xFF;
        a.bytes[11] = 0xFF;
        std::memcpy(&a.bytes[12], p, 4);
        return a;
    }
    // From a host-order value: v4(0x0A000001) is 10.0.0.1.
    static ip_address v4(std::uint32_t host_order) noexcept {
        std::uint8_t b[4];
        store_be32(b, host_order);
        return v4(b);
    }
    static ip_address v6(const std::uint8_t* p) noexcept {
        ip_address a;
        std::memcpy(a.bytes.data(), p, 16);
        return a;
    }

    bool is_v4() const noexcept {
        std::uint64_t lo = 0;
        std::memcpy(&lo, bytes.data(), 8);
        return lo == 0 && bytes[8] == 0 && bytes[9] == 0 && bytes[10] == 0xFF && bytes[11] == 0xFF;
    }
    const std::uint8_t* v4_bytes() const noexcept { return &bytes[12]; } // valid when is_v4()
    std::uint32_t v4_host() const noexcept { return load_be32(&bytes[12]); }
    bool is_zero() const noexcept { return words()[0] == 0 && words()[1] == 0; }
    // 0.0.0.0 and :: both count as unspecified.
    bool is_unspecified() const noexcept { return is_zero() || (is_v4() && v4_host() == 0); }

    std::array<std::uint64_t, 2> words() const noexcept {
        std::array<std::uint64_t, 2> w;
        std::memcpy(w.data(), bytes.data(), 16);
        return w;
    }
    bool operator==(const ip_address& o) const noexcept { return words() == o.words(); }
};
static_assert(sizeof(ip_address) == 16);

// True when a lies within prefix/length. An IPv4 prefix length counts IPv4 bits (10.0.0.0/24),
// an IPv6 one IPv6 bits; addresses of different families never match. Shared by the neighbour
// table (on-link or through the gateway) and the configuration's checks of the gateways.
inline bool prefix_holds(const ip_address& prefix, unsigned length, const ip_address& a) noexcept {
    if (prefix.is_v4() != a.is_v4()) {
        return false;
    }
    // IPv4 prefixes count IPv4 bits; in the mapped form they start after 96 bits.
    const unsigned bits = std::min(length + (a.is_v4() ? 96u : 0u), 128u);
    const unsigned whole = bits / 8;
    if (std::memcmp(prefix.bytes.data(), a.bytes.data(), whole) != 0) {
        return false;
    }
    const unsigned rest = bits % 8;
    if (rest == 0) {
        return true;
    }
    const auto mask = static_cast<std::uint8_t>(0xFF00u >> rest);
    return ((prefix.bytes[whole] ^ a.bytes[whole]) & mask) == 0;
}

// The UDP flow a Kwik path is: what the path table is keyed by. Ports in host order.
struct five_tuple {
    ip_address src;
    ip_address dst;
    std::uint16_t src_port = 0;
    std::uint16_t dst_port = 0;
    std::uint8_t protocol = 0; // IPPROTO_UDP for Kwik
    bool operator==(const five_tuple&) const = default;
};
static_assert(sizeof(five_tuple) == 40);

// ---- headers ----

inline constexpr std::size_t ethernet_header_len = 14;
inline constexpr std::size_t vlan_tag_len = 4;
inline constexpr std::size_t arp_ipv4_len = 28; // Ethernet/IPv4 ARP message
inline constexpr std::size_t ipv4_header_len = 20;
inline constexpr std::size_t ipv6_header_len = 40;
inline constexpr std::size_t ipv6_fragment_header_len = 8;
inline constexpr std::size_t udp_header_len = 8;
inline constexpr std::size_t icmp_echo_header_len = 8;  // type, code, checksum, id, sequence
inline constexpr std::size_t neighbor_message_len = 24; // NS/NA: type..reserved + target
inline constexpr std::size_t link_layer_option_len = 8; // type 1/2, length 1 (8 bytes), MAC
inline constexpr std::size_t min_ethernet_frame = 60;   // without FCS: shorter frames are padded

inline constexpr std::uint16_t ethertype_ipv4 = 0x0800;
inline constexpr std::uint16_t ethertype_arp = 0x0806;
inline constexpr std::uint16_t ethertype_vlan = 0x8100;
inline constexpr std::uint16_t ethertype_qinq = 0x88A8;
inline constexpr std::uint16_t ethertype_ipv6 = 0x86DD;

inline constexpr std::uint16_t arp_hardware_ethernet = 1;
inline constexpr std::uint16_t arp_op_request = 1;
inline constexpr std::uint16_t arp_op_reply = 2;

inline constexpr std::uint8_t ip_proto_icmp = 1;
inline constexpr std::uint8_t ip_proto_tcp = 6;
inline constexpr std::uint8_t ip_proto_udp = 17;
inline constexpr std::uint8_t ip_proto_ipv6_fragment = 44;
inline constexpr std::uint8_t ip_proto_icmpv6 = 58;

inline constexpr std::uint8_t icmp_echo_reply = 0;
inline constexpr std::uint8_t icmp_echo_request = 8;
inline constexpr std::uint8_t icmpv6_echo_request = 128;
inline constexpr std::uint8_t icmpv6_echo_reply = 129;
inline constexpr std::uint8_t icmpv6_neighbor_solicitation = 135;
inline constexpr std::uint8_t icmpv6_neighbor_advertisement = 136;
inline constexpr std::uint8_t nd_option_source_link_layer = 1;
inline constexpr std::uint8_t nd_option_target_link_layer = 2;
inline constexpr std::uint8_t nd_hop_limit = 255;         // RFC 4861 7.1: ND messages must carry it
inline constexpr std::uint8_t na_flag_solicited = 0x40;   // first byte after the checksum
inline constexpr std::uint8_t na_flag_override = 0x20;

inline constexpr std::uint16_t ipv4_flag_more_fragments = 0x2000;
inline constexpr std::uint16_t ipv4_fragment_offset_mask = 0x1FFF;

// ff02::1:ffXX:XXXX, the solicited-node group of addr (RFC 4291 2.7.1).
inline ip_address solicited_node_group(const ip_address& addr) noexcept {
    ip_address g;
    g.bytes[0] = 0xFF;
    g.bytes[1] = 0x02;
    g.bytes[11] = 0x01;
    g.bytes[12] = 0xFF;
    g.bytes[13] = addr.bytes[13];
    g.bytes[14] = addr.bytes[14];
    g.bytes[15] = addr.bytes[15];
    return g;
}

inline bool is_solicited_node_group(const std::uint8_t* a) noexcept {
    static constexpr std::uint8_t prefix[13] = {0xFF, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, 0xFF};
    return std::memcmp(a, prefix, sizeof prefix) == 0;
}

// 33:33 followed by the low 32 bits of the IPv6 multicast group (RFC 2464 7).
inline mac_address ipv6_multicast_mac(const ip_address& group) noexcept {
    return {{0x33, 0x33, group.bytes[12], group.bytes[13], group.bytes[14], group.bytes[15]}};
}

// ---- RFC 1071 checksums ----
// Sums are kept in native byte order (words loaded with memcpy): one's-complement addition is
// byte-order independent (RFC 1071 2(B)), so a folded sum stored back with memcpy is the right
// wire value, and a received header verifies when its folded sum, checksum field included, is
// 0xFFFF. This avoids a byte swap per word.

// Adds n bytes at p to sum. An odd last byte counts as the first byte of a word padded with
// zero. Blocks of 32 bytes go through SSE2 (16-bit words widened into 32-bit lanes, flushed
// every 64 KB so no lane can overflow); the rest as 32-bit words into the 64-bit accumulator
// ("deferred carries", RFC 1071 2(C)). The SSE2 blocks took classify<false> of a 1400-byte
// Kwik datagram from 180 to 130 ns (same run, burst of 32, 2-core Xeon VM).
inline std::uint64_t checksum_add(const std::uint8_t* p, std::size_t n, std::uint64_t sum) noexcept {
#if defined(__SSE2__)
    while (n >= 32) {
        const std::size_t block = std::min<std::size_t>(n & ~std::size_t{31}, 65536);
        const __m128i zero = _mm_setzero_si128();
        __m128i lo = zero;
        __m128i hi = zero;
        for (const std::uint8_t* end = p + block; p != end; p += 32) {
            const __m128i a = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
            const __m128i b = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 16));
            lo = _mm_add_epi32(lo, _mm_add_epi32(_mm_unpacklo_epi16(a, zero), _mm_unpacklo_epi16(b, zero)));
            hi = _mm_add_epi32(hi, _mm_add_epi32(_mm_unpackhi_epi16(a, zero), _mm_unpackhi_epi16(b, zero)));
        }
        // Four 32-bit lanes to two 64-bit ones, then out.
        const __m128i wide = _mm_add_epi64(_mm_add_epi64(_mm_unpacklo_epi32(lo, zero), _mm_unpackhi_epi32(lo, zero)),
                                           _mm_add_epi64(_mm_unpacklo_epi32(hi, zero), _mm_unpackhi_epi32(hi, zero)));
        std::uint64_t halves[2];
        _mm_storeu_si128(reinterpret_cast<__m128i*>(halves), wide);
        sum += halves[0] + halves[1];
        n -= block;
    }
#endif
    while (n >= 16) {
        std::uint32_t w[4];
        std::memcpy(w, p, 16);
        sum += std::uint64_t{w[0]} + w[1] + w[2] + w[3];
        p += 16;
        n -= 16;
    }
    while (n >= 4) {
        std::uint32_t w;
        std::memcpy(&w, p, 4);
        sum += w;
        p += 4;
        n -= 4;
    }
    if (n >= 2) {
        std::uint16_t w;
        std::memcpy(&w, p, 2);
        sum += w;
        p += 2;
        n -= 2;
    }
    if (n != 0) {
        std::uint16_t w = 0;
        std::memcpy(&w, p, 1);
        sum += w;
    }
    return sum;
}

// The same sum as checksum_add, for payload-sized buffers: 32 bytes per step with AVX2 where the
// CPU has it (net_headers.cpp), checksum_add otherwise and below 256 bytes.
std::uint64_t checksum_add_wide(const std::uint8_t* p, std::size_t n, std::uint64_t sum) noexcept;

// Adds a 16-bit value given in host order as the big-endian word it is on the wire.
inline std::uint64_t checksum_add_be16(std::uint16_t host_order, std::uint64_t sum) noexcept {
    std::uint8_t b[2];
    store_be16(b, host_order);
    std::uint16_t w;
    std::memcpy(&w, b, 2);
    return sum + w;
}

// Folds to 16 bits with end-around carries: the one's-complement sum, not complemented.
inline std::uint16_t checksum_fold(std::uint64_t sum) noexcept {
    sum = (sum & 0xFFFFFFFF) + (sum >> 32);
    sum = (sum & 0xFFFFFFFF) + (sum >> 32);
    sum = (sum & 0xFFFF) + (sum >> 16);
    sum = (sum & 0xFFFF) + (sum >> 16);
    return static_cast<std::uint16_t>(sum);
}

// A folded sum of bytes that started at an odd offset of the checksummed area, as it counts
// at an even one.
inline std::uint16_t checksum_swap(std::uint16_t folded) noexcept {
    return static_cast<std::uint16_t>((folded << 8) | (folded >> 8));
}

// The pseudo-header (RFC 768 / RFC 8200 8.1) sums; addresses are the IP header's own bytes.
inline std::uint64_t pseudo_header_v4(const std::uint8_t* src, const std::uint8_t* dst, std::uint8_t protocol,
                                      std::uint16_t l4_length) noexcept {
    std::uint64_t sum = checksum_add(src, 4, 0);
    sum = checksum_add(dst, 4, sum);
    sum = checksum_add_be16(protocol, sum);
    return checksum_add_be16(l4_length, sum);
}

inline std::uint64_t pseudo_header_v6(const std::uint8_t* src, const std::uint8_t* dst, std::uint8_t next_header,
                                      std::uint32_t l4_length) noexcept {
    std::uint64_t sum = checksum_add(src, 16, 0);
    sum = checksum_add(dst, 16, sum);
    sum = checksum_add_be16(static_cast<std::uint16_t>(l4_length >> 16), sum);
    sum = checksum_add_be16(static_cast<std::uint16_t>(l4_length), sum);
    return checksum_add_be16(next_header, sum);
}

// The value to put in a zeroed checksum field, in wire order (store it with memcpy).
inline std::uint16_t checksum_finish(std::uint64_t sum) noexcept {
    return static_cast<std::uint16_t>(~checksum_fold(sum));
}

// RFC 1624 eqn. 3: the checksum field after one 16-bit word of the covered data changed from
// old_word to new_word; all three in wire order (as loaded with memcpy).
inline std::uint16_t checksum_adjust(std::uint16_t field, std::uint16_t old_word, std::uint16_t new_word) noexcept {
    const std::uint64_t sum = std::uint64_t{static_cast<std::uint16_t>(~field)} +
                              static_cast<std::uint16_t>(~old_word) + new_word;
    return static_cast<std::uint16_t>(~checksum_fold(sum));
}

inline std::uint16_t load_ne16(const std::uint8_t* p) noexcept {
    std::uint16_t v;
    std::memcpy(&v, p, 2);
    return v;
}

inline void store_ne16(std::uint8_t* p, std::uint16_t v) noexcept {
    std::memcpy(p, &v, 2);
}

} // namespace kwik::engine
