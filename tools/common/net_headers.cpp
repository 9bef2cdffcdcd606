// Encapsulation build and decode for the codec tools.
#include "tools/common/net_headers.hpp"

namespace kwik::tools {

namespace {

void put16(std::vector<std::uint8_t>& out, std::uint16_t v) {
    out.push_back(static_cast<std::uint8_t>(v >> 8));
    out.push_back(static_cast<std::uint8_t>(v));
}

void store16(std::uint8_t* p, std::uint16_t v) noexcept {
    p[0] = static_cast<std::uint8_t>(v >> 8);
    p[1] = static_cast<std::uint8_t>(v);
}

std::uint16_t load16(const std::uint8_t* p) noexcept {
    return static_cast<std::uint16_t>((p[0] << 8) | p[1]);
}

std::uint32_t pseudo_header_sum(const ip_address& src, const ip_address& dst,
                                std::size_t udp_length) noexcept {
    std::uint32_t sum = checksum_accumulate(src.bytes.data(), src.size(), 0);
    sum = checksum_accumulate(dst.bytes.data(), dst.size(), sum);
    // IPv4: zero, protocol, UDP length (16 bits). IPv6: length (32 bits), zeros, next header.
    // Both add up to the same words for lengths below 2^16.
    sum += ip_proto_udp;
    sum += static_cast<std::uint32_t>(udp_length & 0xFFFF) + static_cast<std::uint32_t>(udp_length >> 16);
    return sum;
}

// Extension headers an IPv6 packet may carry before UDP that decode_udp steps over.
constexpr std::uint8_t ipv6_hop_by_hop = 0;
constexpr std::uint8_t ipv6_routing = 43;
constexpr std::uint8_t ipv6_fragment = 44;
constexpr std::uint8_t ipv6_auth = 51;
constexpr std::uint8_t ipv6_dest_opts = 60;

decap_error decode_udp_header(std::span<const std::uint8_t> ip_payload, bool capture_cut,
                              udp_frame_info& out) {
    if (ip_payload.size() < udp_header_len) {
        return capture_cut ? decap_error::capture_truncated : decap_error::udp_truncated;
    }
    const std::uint8_t* u = ip_payload.data();
    out.has_udp = true;
    out.src_port = load16(u);
    out.dst_port = load16(u + 2);
    out.udp_length = load16(u + 4);
    out.udp_checksum = load16(u + 6);
    if (out.udp_length < udp_header_len || out.udp_length > ip_payload.size()) {
        return capture_cut && out.udp_length >= udp_header_len ? decap_error::capture_truncated
                                                               : decap_error::udp_bad_length;
    }
    const std::span<const std::uint8_t> segment = ip_payload.first(out.udp_length);
    if (out.ip_version == 4 && out.udp_checksum == 0) {
        out.udp_checksum_ok.reset(); // IPv4 allows a datagram without a checksum
    } else {
        out.udp_checksum_ok = udp_checksum(out.src, out.dst, segment) == 0;
    }
    out.payload = segment.subspan(udp_header_len);
    return decap_error::none;
}

decap_error decode_ipv4(std::span<const std::uint8_t> ip, bool capture_cut, udp_frame_info& out) {
    if (ip.size() < ipv4_header_len) {
        return capture_cut ? decap_error::capture_truncated : decap_error::ipv4_truncated;
    }
    const std::uint8_t* h = ip.data();
    out.ip_version = 4;
    out.src.version = 4;
    out.dst.version = 4;
    std::copy(h + 12, h + 16, out.src.bytes.begin());
    std::copy(h + 16, h + 20, out.dst.bytes.begin());
    out.ip_protocol = h[9];
    const std::size_t ihl = static_cast<std::size_t>(h[0] & 0x0F) * 4;
    const std::size_t total = load16(h + 2);
    if (ihl < ipv4_header_len || ihl > total) {
        return decap_error::ipv4_bad_header_length;
    }
    if (ihl > ip.size()) {
        return capture_cut ? decap_error::capture_truncated : decap_error::ipv4_truncated;
    }
    out.ipv4_checksum_ok = checksum_fold(checksum_accumulate(h, ihl, 0)) == 0;
    if (total > ip.size()) {
        return capture_cut ? decap_error::capture_truncated : decap_error::ipv4_bad_total_length;
    }
    const std::uint16_t frag = load16(h + 6);
    if ((frag & 0x3FFF) != 0) { // MF set or a non-zero fragment offset
        return decap_error::ip_fragment;
    }
    if (out.ip_protocol != ip_proto_udp) {
        return decap_error::not_udp;
    }
    // Ethernet pads short frames: the IP total length, not the frame, bounds the datagram.
    return decode_udp_header(ip.subspan(ihl, total - ihl), false, out);
}

decap_error decode_ipv6(std::span<const std::uint8_t> ip, bool capture_cut, udp_frame_info& out) {
    if (ip.size() < ipv6_header_len) {
        return capture_cut ? decap_error::capture_truncated : decap_error::ipv6_truncated;
    }
    const std::uint8_t* h = ip.data();
    out.ip_version = 6;
    out.src.version = 6;
    out.dst.version = 6;
    std::copy(h + 8, h + 24, out.src.bytes.begin());
    std::copy(h + 24, h + 40, out.dst.bytes.begin());
    const std::size_t payload_length = load16(h + 4);
    if (payload_length == 0) {
        return decap_error::ipv6_bad_payload_length;
    }
    if (ipv6_header_len + payload_length > ip.size()) {
        return capture_cut ? decap_error::capture_truncated : decap_error::ipv6_bad_payload_length;
    }
    std::span<const std::uint8_t> rest = ip.subspan(ipv6_header_len, payload_length);
    std::uint8_t next = h[6];
    for (;;) {
        out.ip_protocol = next;
        if (next == ip_proto_udp) {
            return decode_udp_header(rest, false, out);
        }
        std::size_t len = 0;
        if (next == ipv6_hop_by_hop || next == ipv6_routing || next == ipv6_dest_opts) {
            if (rest.size() < 2) {
                return decap_error::ipv6_truncated;
            }
            len = (static_cast<std::size_t>(rest[1]) + 1) * 8;
        } else if (next == ipv6_auth) {
            if (rest.size() < 2) {
                return decap_error::ipv6_truncated;
            }
            len = (static_cast<std::size_t>(rest[1]) + 2) * 4;
        } else if (next == ipv6_fragment) {
            if (rest.size() < 8) {
                return decap_error::ipv6_truncated;
            }
            const std::uint16_t frag = load16(rest.data() + 2);
            if ((frag & 0xFFF9) != 0) { // offset or M set: a real fragment, not an atomic one
                return decap_error::ip_fragment;
            }
            len = 8;
        } else {
            return decap_error::not_udp;
        }
        if (len > rest.size()) {
            return decap_error::ipv6_truncated;
        }
        next = rest[0];
        rest = rest.subspan(len);
    }
}

decap_error decode_ip(std::span<const std::uint8_t> ip, bool capture_cut, int expected_version,
                      udp_frame_info& out) {
    if (ip.empty()) {
        return capture_cut ? decap_error::capture_truncated : decap_error::link_truncated;
    }
    const int version = ip[0] >> 4;
    if (expected_version != 0 && version != expected_version) {
        return decap_error::ip_version_mismatch;
    }
    if (version == 4) {
        return decode_ipv4(ip, capture_cut, out);
    }
    if (version == 6) {
        return decode_ipv6(ip, capture_cut, out);
    }
    return decap_error::not_ip;
}

int version_of_ethertype(std::uint16_t type) noexcept {
    return type == ethertype_ipv4 ? 4 : type == ethertype_ipv6 ? 6 : -1;
}

} // namespace

std::uint32_t checksum_accumulate(const std::uint8_t* p, std::size_t n, std::uint32_t sum) noexcept {
    std::uint64_t s = sum;
    for (; n >= 2; n -= 2, p += 2) {
        s += static_cast<std::uint32_t>((p[0] << 8) | p[1]);
    }
    if (n == 1) {
        s += static_cast<std::uint32_t>(p[0] << 8);
    }
    while ((s >> 32) != 0) {
        s = (s & 0xFFFFFFFF) + (s >> 32);
    }
    return static_cast<std::uint32_t>(s);
}

std::uint16_t checksum_fold(std::uint32_t sum) noexcept {
    while ((sum >> 16) != 0) {
        sum = (sum & 0xFFFF) + (sum >> 16);
    }
    return static_cast<std::uint16_t>(~sum);
}

std::uint16_t udp_checksum(const ip_address& src, const ip_address& dst,
                           std::span<const std::uint8_t> segment) noexcept {
    std::uint32_t sum = pseudo_header_sum(src, dst, segment.size());
    sum = checksum_accumulate(segment.data(), segment.size(), sum);
    return checksum_fold(sum);
}

void append_udp_frame(const udp_frame_desc& d, std::span<const std::uint8_t> payload,
                      std::vector<std::uint8_t>& out) {
    const bool v4 = d.src.addr.version == 4;
    out.insert(out.end(), d.dst_mac.bytes.begin(), d.dst_mac.bytes.end());
    out.insert(out.end(), d.src_mac.bytes.begin(), d.src_mac.bytes.end());
    put16(out, v4 ? ethertype_ipv4 : ethertype_ipv6);

    const std::size_t udp_length = udp_header_len + payload.size();
    const std::size_t ip_start = out.size();
    if (v4) {
        out.push_back(0x45); // version 4, IHL 5
        out.push_back(0);    // DSCP/ECN
        put16(out, static_cast<std::uint16_t>(ipv4_header_len + udp_length));
        put16(out, d.ip_id);
        put16(out, 0x4000); // DF, offset 0
        out.push_back(d.hop_limit);
        out.push_back(ip_proto_udp);
        put16(out, 0); // header checksum, below
        out.insert(out.end(), d.src.addr.bytes.begin(), d.src.addr.bytes.begin() + 4);
        out.insert(out.end(), d.dst.addr.bytes.begin(), d.dst.addr.bytes.begin() + 4);
        store16(out.data() + ip_start + 10,
                checksum_fold(checksum_accumulate(out.data() + ip_start, ipv4_header_len, 0)));
    } else {
        out.push_back(0x60); // version 6, traffic class 0, flow label 0
        out.push_back(0);
        out.push_back(0);
        out.push_back(0);
        put16(out, static_cast<std::uint16_t>(udp_length));
        out.push_back(ip_proto_udp);
        out.push_back(d.hop_limit);
        out.insert(out.end(), d.src.addr.bytes.begin(), d.src.addr.bytes.end());
        out.insert(out.end(), d.dst.addr.bytes.begin(), d.dst.addr.bytes.end());
    }
    const std::size_t udp_start = out.size();
    put16(out, d.src.port);
    put16(out, d.dst.port);
    put16(out, static_cast<std::uint16_t>(udp_length));
    put16(out, 0); // checksum, below
    out.insert(out.end(), payload.begin(), payload.end());
    std::uint16_t csum = udp_checksum(d.src.addr, d.dst.addr,
                                      std::span<const std::uint8_t>(out.data() + udp_start, udp_length));
    if (csum == 0) {
        csum = 0xFFFF; // 0 means "no checksum" in IPv4 and is forbidden in IPv6
    }
    store16(out.data() + udp_start + 6, csum);
}

std::string_view to_string(decap_error e) noexcept {
    switch (e) {
#define KWIK_X(name, text)                                                                         \
    case decap_error::name:                                                                        \
        return #name;
        KWIK_DECAP_ERRORS(KWIK_X)
#undef KWIK_X
    }
    return "invalid";
}

std::string_view describe(decap_error e) noexcept {
    switch (e) {
#define KWIK_X(name, text)                                                                         \
    case decap_error::name:                                                                        \
        return text;
        KWIK_DECAP_ERRORS(KWIK_X)
#undef KWIK_X
    }
    return "invalid";
}

decap_error decode_udp(link_layer link, std::span<const std::uint8_t> captured,
                       std::size_t wire_length, udp_frame_info& out) {
    const bool capture_cut = captured.size() < wire_length;
    auto short_link = [&] {
        return capture_cut ? decap_error::capture_truncated : decap_error::link_truncated;
    };
    switch (link) {
    case link_layer::ethernet: {
        if (captured.size() < ethernet_header_len) {
            return short_link();
        }
        std::size_t pos = 12;
        std::uint16_t type = load16(captured.data() + pos);
        // 802.1Q, 802.1ad and the old QinQ type; at most two tags.
        for (int tags = 0; tags < 2 && (type == 0x8100 || type == 0x88A8 || type == 0x9100); ++tags) {
            if (captured.size() < pos + 2 + vlan_tag_len) {
                return short_link();
            }
            out.vlan_ids.push_back(static_cast<std::uint16_t>(load16(captured.data() + pos + 2) & 0x0FFF));
            pos += vlan_tag_len;
            type = load16(captured.data() + pos);
        }
        const int version = version_of_ethertype(type);
        if (version < 0) {
            return decap_error::not_ip;
        }
        return decode_ip(captured.subspan(pos + 2), capture_cut, version, out);
    }
    case link_layer::raw_ip:
        return decode_ip(captured, capture_cut, 0, out);
    case link_layer::bsd_null:
        if (captured.size() < 4) {
            return short_link();
        }
        return decode_ip(captured.subspan(4), capture_cut, 0, out);
    case link_layer::linux_sll: {
        if (captured.size() < 16) {
            return short_link();
        }
        const int version = version_of_ethertype(load16(captured.data() + 14));
        if (version < 0) {
            return decap_error::not_ip;
        }
        return decode_ip(captured.subspan(16), capture_cut, version, out);
    }
    case link_layer::linux_sll2: {
        if (captured.size() < 20) {
            return short_link();
        }
        const int version = version_of_ethertype(load16(captured.data()));
        if (version < 0) {
            return decap_error::not_ip;
        }
        return decode_ip(captured.subspan(20), capture_cut, version, out);
    }
    }
    return decap_error::not_ip;
}

} // namespace kwik::tools
