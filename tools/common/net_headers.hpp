// Ethernet / IPv4 / IPv6 / UDP encapsulation for the codec tools: kwik-pcapgen builds the
// headers around a KDP path packet (with a correct IPv4 header checksum and UDP checksum over
// the v4 or v6 pseudo-header); kwik-dump takes captured frames apart again and says precisely
// why when it cannot. Pure functions; any thread.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string_view>
#include <vector>

#include "tools/common/net_address.hpp"

namespace kwik::tools {

inline constexpr std::size_t ethernet_header_len = 14;
inline constexpr std::size_t vlan_tag_len = 4;
inline constexpr std::size_t ipv4_header_len = 20; // without options
inline constexpr std::size_t ipv6_header_len = 40;
inline constexpr std::size_t udp_header_len = 8;
inline constexpr std::uint8_t ip_proto_udp = 17;
inline constexpr std::uint16_t ethertype_ipv4 = 0x0800;
inline constexpr std::uint16_t ethertype_ipv6 = 0x86DD;

struct mac_address {
    std::array<std::uint8_t, 6> bytes{};
};

// The headers around one UDP datagram. src and dst have the same IP version.
struct udp_frame_desc {
    mac_address src_mac;
    mac_address dst_mac;
    endpoint src;
    endpoint dst;
    std::uint16_t ip_id = 0;      // IPv4 identification
    std::uint8_t hop_limit = 64;  // IPv4 TTL / IPv6 hop limit
};

// Appends Ethernet + IPv4/IPv6 + UDP headers and payload to out. IPv4 gets DF and a header
// checksum; the UDP checksum covers the pseudo-header, header and payload (0 is sent as 0xFFFF).
void append_udp_frame(const udp_frame_desc& d, std::span<const std::uint8_t> payload,
                      std::vector<std::uint8_t>& out);

// RFC 1071 one's-complement arithmetic: accumulate 16-bit big-endian words, then fold.
std::uint32_t checksum_accumulate(const std::uint8_t* p, std::size_t n, std::uint32_t sum) noexcept;
std::uint16_t checksum_fold(std::uint32_t sum) noexcept; // the complemented 16-bit result

// The UDP checksum over the pseudo-header and the whole segment as it stands (header with its
// checksum field, payload). With the field zeroed this is the value to send; over a received
// segment it is 0 when the checksum is right.
std::uint16_t udp_checksum(const ip_address& src, const ip_address& dst,
                           std::span<const std::uint8_t> segment) noexcept;

// ---- decoding ----

// How the captured frame starts (the pcap link type, mapped by the reader).
enum class link_layer : std::uint8_t {
    ethernet,   // DLT_EN10MB, with up to two 802.1Q/802.1ad tags
    raw_ip,     // DLT_RAW, LINKTYPE_IPV4, LINKTYPE_IPV6
    bsd_null,   // DLT_NULL / DLT_LOOP: 4-byte address family, then IP
    linux_sll,  // DLT_LINUX_SLL: 16-byte cooked header
    linux_sll2, // DLT_LINUX_SLL2: 20-byte cooked header
};

#define KWIK_DECAP_ERRORS(X)                                                                       \
    X(none, "UDP datagram found")                                                                  \
    X(link_truncated, "frame shorter than its link-layer header")                                  \
    X(not_ip, "link layer carries neither IPv4 nor IPv6")                                          \
    X(ipv4_truncated, "IPv4 header runs past the end of the frame")                                \
    X(ipv4_bad_header_length, "IPv4 IHL below 5 or beyond the total length")                       \
    X(ipv4_bad_total_length, "IPv4 total length beyond the frame")                                 \
    X(ipv6_truncated, "IPv6 header or extension header runs past the end of the frame")            \
    X(ipv6_bad_payload_length, "IPv6 payload length zero (jumbogram) or beyond the frame")         \
    X(ip_version_mismatch, "IP version differs from what the link layer announced")                \
    X(ip_fragment, "IP fragment (not reassembled)")                                                \
    X(not_udp, "IP packet is not UDP")                                                             \
    X(udp_truncated, "UDP header runs past the end of the IP packet")                              \
    X(udp_bad_length, "UDP length below 8 or beyond the IP payload")                               \
    X(capture_truncated, "frame cut short by the capture snap length")

enum class decap_error : std::uint8_t {
#define KWIK_X(name, text) name,
    KWIK_DECAP_ERRORS(KWIK_X)
#undef KWIK_X
};

std::string_view to_string(decap_error e) noexcept;
std::string_view describe(decap_error e) noexcept;

// What decode_udp found. Fields are filled as far as decoding got, so a rejected frame can
// still be reported with its addresses.
struct udp_frame_info {
    std::uint8_t ip_version = 0; // 0 until an IP header was read
    ip_address src;
    ip_address dst;
    std::uint8_t ip_protocol = 0;
    std::optional<bool> ipv4_checksum_ok;
    std::vector<std::uint16_t> vlan_ids;
    bool has_udp = false;
    std::uint16_t src_port = 0;
    std::uint16_t dst_port = 0;
    std::uint16_t udp_length = 0; // from the UDP header: header + payload
    std::uint16_t udp_checksum = 0;
    std::optional<bool> udp_checksum_ok; // absent: IPv4 datagram sent without a checksum
    std::span<const std::uint8_t> payload; // the UDP payload (valid when none is returned)
};

// Takes one captured frame apart down to the UDP payload. captured holds the bytes the capture
// kept; wire_length is the frame's length on the wire (larger when the snap length cut it).
decap_error decode_udp(link_layer link, std::span<const std::uint8_t> captured,
                       std::size_t wire_length, udp_frame_info& out);

} // namespace kwik::tools
