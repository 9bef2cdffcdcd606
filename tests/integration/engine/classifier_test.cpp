// The engine's classifier, responder and exception path on real mbufs
// (dataplane/engine/classifier.*, responder.*, neighbor_table.*):
//  - a Katran-style table of frames built here byte by byte (description, frame, rx offload
//    flags, expected verdict, drop reason and checksum counters) covering every verdict and
//    every classifier drop reason, VLAN tags, IPv6, chains and the offload flags;
//  - the same frames as bursts (prefetching, counters summed);
//  - replies built by the responder compared byte for byte with replies built here from
//    scratch (so every checksum is recomputed independently);
//  - the exception path end to end: a net_tap port whose kernel side is moved into a network
//    namespace this test creates; from inside it the kernel pings the appliance over IPv4 and
//    IPv6 (so it ARPs and solicits first) and opens a TCP connection, while this test's loop
//    (rx, classify, respond, tx) answers and classifies the SYN as exception; the neighbour
//    table resolves the namespace's address with an ARP request of its own.
// Starts EAL once (no hugepages, no PCI, no shared config).
#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <net/if.h>
#include <net/if_arp.h>
#include <netinet/icmp6.h>
#include <netinet/in.h>
#include <netinet/ip.h>
#include <netinet/ip_icmp.h>
#include <poll.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_ethdev.h>
#include <rte_mbuf.h>
#include <rte_mempool.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <iostream>
#include <optional>
#include <ostream>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "dataplane/engine/classifier.hpp"
#include "dataplane/engine/neighbor_table.hpp"
#include "dataplane/engine/net_headers.hpp"
#include "dataplane/engine/responder.hpp"
#include "dataplane/kdp/drop_reason.hpp"

namespace {

namespace engine = kwik::engine;
namespace kdp = kwik::kdp;
using engine::verdict;
using kdp::drop_reason;
using bytes = std::vector<std::uint8_t>;
using v6addr = std::array<std::uint8_t, 16>;

constexpr std::size_t segment_room = 2048;
rte_mempool* g_pool = nullptr;

class eal_environment : public ::testing::Environment {
public:
    void SetUp() override {
        // clang-format off
        std::vector<std::string> args = {"engine_classifier_test", "--no-huge", "--no-pci", "-m", "256", "--no-shconf",
                                         "--file-prefix=kwik_engine_classifier", "--log-level=*:warning",
                                         "--no-telemetry", "-l", "0"};
        // clang-format on
        std::vector<char*> argv;
        for (std::string& a : args) {
            argv.push_back(a.data());
        }
        const int rc = rte_eal_init(static_cast<int>(argv.size()), argv.data());
        ASSERT_GE(rc, 0) << "rte_eal_init: " << rte_strerror(rte_errno);
        g_pool = rte_pktmbuf_pool_create("kwik_classifier", 8191, 0, 0,
                                         static_cast<std::uint16_t>(RTE_PKTMBUF_HEADROOM + segment_room),
                                         static_cast<int>(rte_socket_id()));
        ASSERT_NE(g_pool, nullptr) << "rte_pktmbuf_pool_create: " << rte_strerror(rte_errno);
    }

    void TearDown() override {
        if (g_pool != nullptr) {
            EXPECT_EQ(rte_mempool_in_use_count(g_pool), 0u) << "a test leaked mbufs";
            rte_mempool_free(g_pool);
            g_pool = nullptr;
        }
        rte_eal_cleanup();
    }
};

struct mbuf_free {
    void operator()(rte_mbuf* m) const noexcept { rte_pktmbuf_free(m); }
};
using mbuf_ptr = std::unique_ptr<rte_mbuf, mbuf_free>;

// A chain holding frame, cut at the given positions (ascending); pieces longer than a data
// room are cut further.
mbuf_ptr make_mbuf(const bytes& frame, const std::vector<std::size_t>& cuts = {}, std::uint64_t ol_flags = 0,
                   std::uint16_t vlan_tci = 0) {
    std::vector<std::size_t> ends = cuts;
    ends.push_back(frame.size());
    mbuf_ptr head;
    rte_mbuf* tail = nullptr;
    std::size_t pos = 0;
    for (const std::size_t end : ends) {
        do {
            rte_mbuf* seg = rte_pktmbuf_alloc(g_pool);
            if (seg == nullptr) {
                ADD_FAILURE() << "mbuf pool empty";
                return nullptr;
            }
            const std::size_t n = std::min(end - pos, segment_room);
            auto* data = reinterpret_cast<std::uint8_t*>(rte_pktmbuf_append(seg, static_cast<std::uint16_t>(n)));
            if (n != 0) {
                std::memcpy(data, frame.data() + pos, n);
            }
            pos += n;
            if (!head) {
                head.reset(seg);
            } else {
                tail->next = seg;
                head->nb_segs = static_cast<std::uint16_t>(head->nb_segs + 1);
                head->pkt_len += seg->data_len;
            }
            tail = seg;
        } while (pos < end);
    }
    head->ol_flags = ol_flags;
    head->vlan_tci = vlan_tci;
    return head;
}

bytes flatten(const rte_mbuf* m) {
    bytes out;
    for (const rte_mbuf* s = m; s != nullptr; s = s->next) {
        const auto* p = rte_pktmbuf_mtod(s, const std::uint8_t*);
        out.insert(out.end(), p, p + s->data_len);
    }
    return out;
}

// ---- frames, built from scratch with a checksum written independently of the engine's ----

std::uint32_t be_sum(const std::uint8_t* p, std::size_t n, std::uint32_t sum = 0) {
    for (std::size_t i = 0; i + 1 < n; i += 2) {
        sum += static_cast<std::uint32_t>(p[i] << 8 | p[i + 1]);
    }
    if (n % 2 != 0) {
        sum += static_cast<std::uint32_t>(p[n - 1] << 8);
    }
    return sum;
}

std::uint32_t be_sum(const bytes& b, std::uint32_t sum = 0) {
    return be_sum(b.data(), b.size(), sum);
}

std::uint16_t complement(std::uint32_t sum) {
    while ((sum >> 16) != 0) {
        sum = (sum & 0xFFFF) + (sum >> 16);
    }
    return static_cast<std::uint16_t>(~sum);
}

void put16(bytes& b, std::size_t at, std::uint16_t v) {
    b[at] = static_cast<std::uint8_t>(v >> 8);
    b[at + 1] = static_cast<std::uint8_t>(v);
}

void put32(bytes& b, std::size_t at, std::uint32_t v) {
    put16(b, at, static_cast<std::uint16_t>(v >> 16));
    put16(b, at + 2, static_cast<std::uint16_t>(v));
}

bytes concat(std::initializer_list<bytes> parts) {
    bytes out;
    for (const bytes& p : parts) {
        out.insert(out.end(), p.begin(), p.end());
    }
    return out;
}

bytes mac_bytes(const engine::mac_address& m) {
    return {m.bytes.begin(), m.bytes.end()};
}

std::uint32_t ip4(const char* text) {
    in_addr a{};
    EXPECT_EQ(inet_pton(AF_INET, text, &a), 1) << text;
    return ntohl(a.s_addr);
}

v6addr ip6(const char* text) {
    v6addr a{};
    EXPECT_EQ(inet_pton(AF_INET6, text, a.data()), 1) << text;
    return a;
}

bytes v4_bytes(std::uint32_t a) {
    bytes b(4);
    put32(b, 0, a);
    return b;
}

const engine::mac_address our_mac{{0x02, 0x4B, 0x57, 0x00, 0x00, 0x01}};
const engine::mac_address peer_mac{{0x02, 0xAA, 0xBB, 0xCC, 0xDD, 0x01}};
const engine::mac_address stranger_mac{{0x02, 0x99, 0x99, 0x99, 0x99, 0x99}};
const std::uint32_t us4 = ip4("10.0.0.1");
const std::uint32_t us4b = ip4("10.0.0.2");
const std::uint32_t peer4 = ip4("10.0.0.9");
const std::uint32_t other4 = ip4("10.0.0.77");
const v6addr us6 = ip6("fd00::1");
const v6addr peer6 = ip6("fd00::9");
const v6addr other6 = ip6("fd00::77");
constexpr std::uint16_t kwik_port = 7707;
constexpr std::uint16_t kwik_port_b = 7708;

// Ethernet with an optional 802.1Q tag, padded to 60 bytes as a NIC delivers it (FCS removed).
bytes ether(const engine::mac_address& dst, const engine::mac_address& src, std::uint16_t type, const bytes& payload,
            std::optional<std::uint16_t> vlan = {}, bool pad = true) {
    bytes f = concat({mac_bytes(dst), mac_bytes(src)});
    if (vlan) {
        f.resize(f.size() + 4);
        put16(f, 12, engine::ethertype_vlan);
        put16(f, 14, *vlan);
    }
    f.resize(f.size() + 2);
    put16(f, f.size() - 2, type);
    f.insert(f.end(), payload.begin(), payload.end());
    if (pad && f.size() < 60) {
        f.resize(60, 0);
    }
    return f;
}

struct ipv4_options {
    std::uint8_t ttl = 64;
    std::uint16_t id = 0x1234;
    std::uint16_t fragment = 0x4000; // DF
    bytes options{};
    std::uint8_t version = 4;
    std::optional<std::uint8_t> ihl{};
    std::optional<std::uint16_t> total_length{};
    bool corrupt_checksum = false;
};

bytes ipv4(std::uint32_t src, std::uint32_t dst, std::uint8_t protocol, const bytes& l4, const ipv4_options& o = {}) {
    const std::size_t header_len = 20 + o.options.size();
    bytes h(header_len, 0);
    h[0] = static_cast<std::uint8_t>(o.version << 4 | o.ihl.value_or(static_cast<std::uint8_t>(header_len / 4)));
    put16(h, 2, o.total_length.value_or(static_cast<std::uint16_t>(header_len + l4.size())));
    put16(h, 4, o.id);
    put16(h, 6, o.fragment);
    h[8] = o.ttl;
    h[9] = protocol;
    put32(h, 12, src);
    put32(h, 16, dst);
    std::copy(o.options.begin(), o.options.end(), h.begin() + 20);
    std::uint16_t sum = complement(be_sum(h));
    if (o.corrupt_checksum) {
        sum ^= 0x00FF;
    }
    put16(h, 10, sum);
    return concat({h, l4});
}

struct ipv6_options {
    std::uint8_t hop_limit = 64;
    std::optional<std::uint16_t> payload_length{};
    std::uint8_t version = 6;
};

bytes ipv6(const v6addr& src, const v6addr& dst, std::uint8_t next_header, const bytes& payload,
           const ipv6_options& o = {}) {
    bytes h(40, 0);
    put32(h, 0, static_cast<std::uint32_t>(o.version) << 28);
    put16(h, 4, o.payload_length.value_or(static_cast<std::uint16_t>(payload.size())));
    h[6] = next_header;
    h[7] = o.hop_limit;
    std::copy(src.begin(), src.end(), h.begin() + 8);
    std::copy(dst.begin(), dst.end(), h.begin() + 24);
    return concat({h, payload});
}

enum class checksum_mode { correct, zero, corrupt };

// The pseudo-header sums, written out as RFC 768 / RFC 8200 8.1 draw them.
std::uint32_t pseudo4(std::uint32_t src, std::uint32_t dst, std::uint8_t protocol, std::size_t len) {
    bytes p = concat({v4_bytes(src), v4_bytes(dst), {0, protocol, 0, 0}});
    put16(p, 10, static_cast<std::uint16_t>(len));
    return be_sum(p);
}

std::uint32_t pseudo6(const v6addr& src, const v6addr& dst, std::uint8_t next_header, std::size_t len) {
    bytes p(src.begin(), src.end());
    p.insert(p.end(), dst.begin(), dst.end());
    p.resize(40, 0);
    put32(p, 32, static_cast<std::uint32_t>(len));
    p[39] = next_header;
    return be_sum(p);
}

bytes udp_segment(std::uint32_t pseudo_sum, std::uint16_t sport, std::uint16_t dport, const bytes& payload,
                  checksum_mode mode, std::optional<std::uint16_t> length_field) {
    bytes s(8, 0);
    put16(s, 0, sport);
    put16(s, 2, dport);
    put16(s, 4, length_field.value_or(static_cast<std::uint16_t>(8 + payload.size())));
    s.insert(s.end(), payload.begin(), payload.end());
    if (mode != checksum_mode::zero) {
        std::uint16_t sum = complement(be_sum(s, pseudo_sum));
        if (sum == 0) {
            sum = 0xFFFF;
        }
        if (mode == checksum_mode::corrupt) {
            sum ^= 0x5A5A;
        }
        put16(s, 6, sum);
    }
    return s;
}

bytes udp4(std::uint32_t src, std::uint32_t dst, std::uint16_t sport, std::uint16_t dport, const bytes& payload,
           checksum_mode mode = checksum_mode::correct, std::optional<std::uint16_t> length_field = {}) {
    return udp_segment(pseudo4(src, dst, 17, 8 + payload.size()), sport, dport, payload, mode, length_field);
}

bytes udp6(const v6addr& src, const v6addr& dst, std::uint16_t sport, std::uint16_t dport, const bytes& payload,
           checksum_mode mode = checksum_mode::correct) {
    return udp_segment(pseudo6(src, dst, 17, 8 + payload.size()), sport, dport, payload, mode, {});
}

bytes icmp4(std::uint8_t type, std::uint8_t code, std::uint16_t id, std::uint16_t seq, const bytes& data,
            bool corrupt = false) {
    bytes m(8, 0);
    m[0] = type;
    m[1] = code;
    put16(m, 4, id);
    put16(m, 6, seq);
    m.insert(m.end(), data.begin(), data.end());
    std::uint16_t sum = complement(be_sum(m));
    if (corrupt) {
        sum ^= 0x0F0F;
    }
    put16(m, 2, sum);
    return m;
}

// ICMPv6: type, code, checksum, then body.
bytes icmp6(const v6addr& src, const v6addr& dst, std::uint8_t type, std::uint8_t code, const bytes& body,
            bool corrupt = false) {
    bytes m = {type, code, 0, 0};
    m.insert(m.end(), body.begin(), body.end());
    std::uint16_t sum = complement(be_sum(m, pseudo6(src, dst, 58, m.size())));
    if (corrupt) {
        sum ^= 0x0F0F;
    }
    put16(m, 2, sum);
    return m;
}

bytes echo6(const v6addr& src, const v6addr& dst, std::uint8_t type, std::uint16_t id, std::uint16_t seq,
            const bytes& data, bool corrupt = false) {
    bytes body(4, 0);
    put16(body, 0, id);
    put16(body, 2, seq);
    body.insert(body.end(), data.begin(), data.end());
    return icmp6(src, dst, type, 0, body, corrupt);
}

bytes link_layer_option(std::uint8_t type, const engine::mac_address& mac) {
    return concat({{type, 1}, mac_bytes(mac)});
}

// Neighbour solicitation or advertisement: flags byte, 3 reserved, target, options.
bytes nd_message(const v6addr& src, const v6addr& dst, std::uint8_t type, std::uint8_t flags, const v6addr& target,
                 const bytes& options, std::uint8_t code = 0, bool corrupt = false) {
    bytes body = {flags, 0, 0, 0};
    body.insert(body.end(), target.begin(), target.end());
    body.insert(body.end(), options.begin(), options.end());
    return icmp6(src, dst, type, code, body, corrupt);
}

v6addr solicited(const v6addr& a) {
    v6addr g = ip6("ff02::1:ff00:0");
    g[13] = a[13];
    g[14] = a[14];
    g[15] = a[15];
    return g;
}

engine::mac_address multicast_mac(const v6addr& group) {
    return {{0x33, 0x33, group[12], group[13], group[14], group[15]}};
}

bytes arp(std::uint16_t op, const engine::mac_address& sha, std::uint32_t spa, const engine::mac_address& tha,
          std::uint32_t tpa) {
    bytes a = {0, 1, 0x08, 0x00, 6, 4, 0, 0};
    put16(a, 6, op);
    return concat({a, mac_bytes(sha), v4_bytes(spa), mac_bytes(tha), v4_bytes(tpa)});
}

bytes pattern(std::size_t n, std::uint8_t seed = 1) {
    bytes b(n);
    for (std::size_t i = 0; i < n; ++i) {
        b[i] = static_cast<std::uint8_t>(seed + i * 7);
    }
    return b;
}

bytes tcp_syn(std::uint16_t sport, std::uint16_t dport) {
    bytes t(20, 0);
    put16(t, 0, sport);
    put16(t, 2, dport);
    put32(t, 4, 1000);
    t[12] = 5 << 4;
    t[13] = 0x02;
    put16(t, 14, 64240);
    return t; // checksum left zero: the classifier does not verify what goes to the kernel
}

// The frames most cases start from.
bytes kwik4_frame(std::size_t payload = 100, std::optional<std::uint16_t> vlan = {},
                  checksum_mode mode = checksum_mode::correct, std::uint32_t dst = us4,
                  std::uint16_t dport = kwik_port) {
    return ether(our_mac, peer_mac, engine::ethertype_ipv4,
                 ipv4(peer4, dst, 17, udp4(peer4, dst, 40000, dport, pattern(payload), mode)), vlan);
}

bytes kwik6_frame(std::size_t payload = 100, std::optional<std::uint16_t> vlan = {},
                  checksum_mode mode = checksum_mode::correct) {
    return ether(our_mac, peer_mac, engine::ethertype_ipv6,
                 ipv6(peer6, us6, 17, udp6(peer6, us6, 40000, kwik_port, pattern(payload), mode)), vlan);
}

// ---- the classifier table ----

struct expected_counters {
    std::uint64_t ipv4_software = 0;
    std::uint64_t ipv4_offloaded = 0;
    std::uint64_t l4_software = 0;
    std::uint64_t l4_offloaded = 0;
    std::uint64_t udp_absent = 0;
};

struct classify_case {
    std::string description;
    bytes frame;
    verdict v = verdict::drop;
    drop_reason reason = drop_reason::none;
    expected_counters counters;
    bool offload = false; // classify<true>
    std::uint64_t ol_flags = 0;
    std::vector<std::size_t> cuts;
    std::uint16_t mbuf_vlan_tci = 0;
    // kwik: where the payload is and how long
    std::uint16_t payload_offset = 0;
    std::uint16_t payload_length = 0;

    classify_case& with_offload(std::uint64_t flags) {
        offload = true;
        ol_flags = flags;
        return *this;
    }
    classify_case& with_cuts(std::vector<std::size_t> c) {
        cuts = std::move(c);
        return *this;
    }
    classify_case& with_payload(std::uint16_t offset, std::uint16_t length) {
        payload_offset = offset;
        payload_length = length;
        return *this;
    }
};

void PrintTo(const classify_case& c, std::ostream* os) {
    *os << c.description;
}

engine::classifier_config appliance_config() {
    engine::classifier_config c;
    c.mac = our_mac;
    EXPECT_TRUE(c.add_kwik_port(kwik_port));
    EXPECT_TRUE(c.add_kwik_port(kwik_port_b));
    EXPECT_TRUE(c.add_address(engine::ip_address::v4(us4)));
    EXPECT_TRUE(c.add_address(engine::ip_address::v4(us4b)));
    EXPECT_TRUE(c.add_address(engine::ip_address::v6(us6.data())));
    return c;
}

const std::vector<classify_case>& cases() {
    static const std::vector<classify_case> all = [] {
        std::vector<classify_case> c;
        auto add = [&c](std::string description, bytes frame, verdict v, drop_reason r,
                        expected_counters k) -> classify_case& {
            classify_case cc;
            cc.description = std::move(description);
            cc.frame = std::move(frame);
            cc.v = v;
            cc.reason = r;
            cc.counters = k;
            c.push_back(std::move(cc));
            return c.back();
        };
        const drop_reason none = drop_reason::none;
        const expected_counters ip_sw{.ipv4_software = 1};
        const expected_counters ip_l4_sw{.ipv4_software = 1, .l4_software = 1};
        const expected_counters l4_sw{.l4_software = 1};
        const expected_counters nothing{};
        const std::uint64_t ip_good = RTE_MBUF_F_RX_IP_CKSUM_GOOD;
        const std::uint64_t l4_good = RTE_MBUF_F_RX_L4_CKSUM_GOOD;

        // ---- kwik ----
        add("kwik IPv4 UDP, software checksums", kwik4_frame(), verdict::kwik, none, ip_l4_sw).with_payload(42, 100);
        add("kwik IPv4 to the second port and address", kwik4_frame(100, {}, checksum_mode::correct, us4b, kwik_port_b),
            verdict::kwik, none, ip_l4_sw)
            .with_payload(42, 100);
        add("kwik IPv4 with UDP checksum 0 (allowed over IPv4)", kwik4_frame(100, {}, checksum_mode::zero),
            verdict::kwik, none, {.ipv4_software = 1, .udp_absent = 1})
            .with_payload(42, 100);
        add("kwik IPv4 in an 802.1Q tag", kwik4_frame(100, 0x2064), verdict::kwik, none, ip_l4_sw)
            .with_payload(46, 100);
        add("kwik IPv4, 1-byte payload in a padded 60-byte frame", kwik4_frame(1), verdict::kwik, none, ip_l4_sw)
            .with_payload(42, 1);
        add(
            "kwik IPv4, broadcast destination MAC",
            [] {
                bytes f = kwik4_frame();
                std::fill(f.begin(), f.begin() + 6, 0xFF);
                return f;
            }(),
            verdict::kwik, none, ip_l4_sw)
            .with_payload(42, 100);
        add("kwik IPv4 jumbo 8000 bytes in a chain cut at odd offsets", kwik4_frame(8000), verdict::kwik, none,
            ip_l4_sw)
            .with_cuts({101, 1999, 2000, 4097})
            .with_payload(42, 8000);
        add("kwik IPv4, payload starting in the second segment", kwik4_frame(300), verdict::kwik, none, ip_l4_sw)
            .with_cuts({42})
            .with_payload(42, 300);
        add("kwik IPv6 UDP", kwik6_frame(), verdict::kwik, none, l4_sw).with_payload(62, 100);
        add("kwik IPv6 in an 802.1Q tag", kwik6_frame(100, 7), verdict::kwik, none, l4_sw).with_payload(66, 100);
        add("kwik IPv6 chained, odd cut", kwik6_frame(3001), verdict::kwik, none, l4_sw)
            .with_cuts({63, 1500})
            .with_payload(62, 3001);
        add(
            "kwik IPv4, UDP length shorter than the IP payload",
            [] {
                // 100 bytes of UDP payload in the IP packet, UDP says 58: the datagram is the first 50.
                const bytes seg =
                    udp_segment(pseudo4(peer4, us4, 17, 58), 40000, kwik_port, pattern(50), checksum_mode::correct, {});
                bytes l4 = seg;
                l4.resize(108, 0xAB);
                return ether(our_mac, peer_mac, engine::ethertype_ipv4, ipv4(peer4, us4, 17, l4));
            }(),
            verdict::kwik, none, ip_l4_sw)
            .with_payload(42, 50);

        // ---- offloads ----
        add("offload: IP and L4 good, checksums in the frame wrong, not looked at",
            [] {
                bytes f = kwik4_frame(100, {}, checksum_mode::corrupt);
                f[24] ^= 0xFF; // IPv4 header checksum
                return f;
            }(),
            verdict::kwik, none, {.ipv4_offloaded = 1, .l4_offloaded = 1})
            .with_offload(ip_good | l4_good)
            .with_payload(42, 100);
        add("offload: NONE (virtio: data verified) counts as good", kwik4_frame(100, {}, checksum_mode::corrupt),
            verdict::kwik, none, {.ipv4_offloaded = 1, .l4_offloaded = 1})
            .with_offload(RTE_MBUF_F_RX_IP_CKSUM_NONE | RTE_MBUF_F_RX_L4_CKSUM_NONE)
            .with_payload(42, 100);
        add("offload: IP bad, though the header is right", kwik4_frame(), verdict::drop, drop_reason::bad_ipv4_checksum,
            {.ipv4_offloaded = 1})
            .with_offload(RTE_MBUF_F_RX_IP_CKSUM_BAD | l4_good);
        add("offload: L4 bad, though the datagram is right", kwik4_frame(), verdict::drop,
            drop_reason::bad_udp_checksum, {.ipv4_offloaded = 1, .l4_offloaded = 1})
            .with_offload(ip_good | RTE_MBUF_F_RX_L4_CKSUM_BAD);
        add("offload: unknown falls back to software and catches a bad UDP checksum",
            kwik4_frame(100, {}, checksum_mode::corrupt), verdict::drop, drop_reason::bad_udp_checksum, ip_l4_sw)
            .with_offload(0);
        add("offload: IPv6 L4 good", kwik6_frame(100, {}, checksum_mode::corrupt), verdict::kwik, none,
            {.l4_offloaded = 1})
            .with_offload(l4_good)
            .with_payload(62, 100);
        add("offload: zero UDP checksum over IPv6 is refused whatever the NIC says",
            kwik6_frame(100, {}, checksum_mode::zero), verdict::drop, drop_reason::bad_udp_checksum, nothing)
            .with_offload(l4_good);
        {
            classify_case& k = add(
                "no offload: good flags are ignored, software finds the bad IPv4 checksum",
                [] {
                    bytes f = kwik4_frame();
                    f[24] ^= 0xFF;
                    return f;
                }(),
                verdict::drop, drop_reason::bad_ipv4_checksum, ip_sw);
            k.ol_flags = ip_good | l4_good; // but classify<false>
        }
        {
            classify_case& k = add("VLAN stripped by the NIC", kwik4_frame(), verdict::kwik, none, ip_l4_sw);
            k.ol_flags = RTE_MBUF_F_RX_VLAN | RTE_MBUF_F_RX_VLAN_STRIPPED;
            k.mbuf_vlan_tci = 0x0123;
            k.with_payload(42, 100);
        }
        {
            classify_case& k = add("VLAN stripped and another tag in the frame (QinQ)", kwik4_frame(100, 5),
                                   verdict::drop, drop_reason::not_ip, nothing);
            k.ol_flags = RTE_MBUF_F_RX_VLAN | RTE_MBUF_F_RX_VLAN_STRIPPED;
            k.mbuf_vlan_tci = 0x0123;
        }

        // ---- answered ----
        add("ARP request for us",
            ether(engine::broadcast_mac, peer_mac, engine::ethertype_arp, arp(1, peer_mac, peer4, {}, us4)),
            verdict::arp_request_for_us, none, nothing);
        add("ARP request for our second address, tagged",
            ether(engine::broadcast_mac, peer_mac, engine::ethertype_arp, arp(1, peer_mac, peer4, {}, us4b), 100),
            verdict::arp_request_for_us, none, nothing);
        add("ARP probe (sender 0.0.0.0) for us: defended",
            ether(engine::broadcast_mac, peer_mac, engine::ethertype_arp, arp(1, peer_mac, 0, {}, us4)),
            verdict::arp_request_for_us, none, nothing);
        add("ICMP echo request to us",
            ether(our_mac, peer_mac, engine::ethertype_ipv4, ipv4(peer4, us4, 1, icmp4(8, 0, 77, 1, pattern(56)))),
            verdict::icmp_echo_for_us, none, ip_l4_sw);
        add("ICMP echo request to us, 5000 bytes chained",
            ether(our_mac, peer_mac, engine::ethertype_ipv4, ipv4(peer4, us4, 1, icmp4(8, 0, 77, 1, pattern(5000)))),
            verdict::icmp_echo_for_us, none, ip_l4_sw)
            .with_cuts({43, 2001});
        add("ICMPv6 echo request to us",
            ether(our_mac, peer_mac, engine::ethertype_ipv6,
                  ipv6(peer6, us6, 58, echo6(peer6, us6, 128, 9, 3, pattern(56)))),
            verdict::icmpv6_echo_for_us, none, l4_sw);
        add("neighbour solicitation for us, to the solicited-node group",
            ether(multicast_mac(solicited(us6)), peer_mac, engine::ethertype_ipv6,
                  ipv6(peer6, solicited(us6), 58,
                       nd_message(peer6, solicited(us6), 135, 0, us6, link_layer_option(1, peer_mac)), {255})),
            verdict::neighbor_solicitation_for_us, none, l4_sw);
        add("neighbour solicitation for us, unicast (reachability check)",
            ether(our_mac, peer_mac, engine::ethertype_ipv6,
                  ipv6(peer6, us6, 58, nd_message(peer6, us6, 135, 0, us6, {}), {255})),
            verdict::neighbor_solicitation_for_us, none, l4_sw);

        // ---- exception ----
        add("TCP SYN to us", ether(our_mac, peer_mac, engine::ethertype_ipv4, ipv4(peer4, us4, 6, tcp_syn(5555, 22))),
            verdict::exception, none, ip_sw);
        add("TCP over IPv6 to us",
            ether(our_mac, peer_mac, engine::ethertype_ipv6, ipv6(peer6, us6, 6, tcp_syn(5555, 22))),
            verdict::exception, none, nothing);
        add("UDP to us, not a Kwik port (DNS)",
            ether(our_mac, peer_mac, engine::ethertype_ipv4,
                  ipv4(peer4, us4, 17, udp4(peer4, us4, 5353, 53, pattern(30)))),
            verdict::exception, none, ip_sw);
        add("UDP to a Kwik port at another address", kwik4_frame(100, {}, checksum_mode::correct, other4),
            verdict::exception, none, ip_sw);
        add("UDP broadcast (DHCP)",
            ether(engine::broadcast_mac, peer_mac, engine::ethertype_ipv4,
                  ipv4(0, 0xFFFFFFFF, 17, udp4(0, 0xFFFFFFFF, 68, 67, pattern(40)))),
            verdict::exception, none, ip_sw);
        add("ARP reply to us (the kernel resolves too; meta carries the sender)",
            ether(our_mac, peer_mac, engine::ethertype_arp, arp(2, peer_mac, peer4, our_mac, us4)), verdict::exception,
            none, nothing);
        add("ARP request for another host",
            ether(engine::broadcast_mac, peer_mac, engine::ethertype_arp, arp(1, peer_mac, peer4, {}, other4)),
            verdict::exception, none, nothing);
        add("gratuitous ARP",
            ether(engine::broadcast_mac, peer_mac, engine::ethertype_arp, arp(1, peer_mac, peer4, {}, peer4)),
            verdict::exception, none, nothing);
        add("IPv4 with options, UDP to a Kwik port",
            ether(our_mac, peer_mac, engine::ethertype_ipv4,
                  ipv4(peer4, us4, 17, udp4(peer4, us4, 40000, kwik_port, pattern(20)), {.options = {1, 1, 1, 0}})),
            verdict::exception, none, ip_sw);
        add("ICMP echo to another address",
            ether(our_mac, peer_mac, engine::ethertype_ipv4, ipv4(peer4, other4, 1, icmp4(8, 0, 1, 1, pattern(8)))),
            verdict::exception, none, ip_sw);
        add("ICMP destination unreachable to us",
            ether(our_mac, peer_mac, engine::ethertype_ipv4, ipv4(peer4, us4, 1, icmp4(3, 3, 0, 0, pattern(28)))),
            verdict::exception, none, ip_sw);
        add(
            "IPv4 non-first fragment to us",
            [] {
                ipv4_options o;
                o.fragment = 0x0010; // offset 128 bytes
                return ether(our_mac, peer_mac, engine::ethertype_ipv4, ipv4(peer4, us4, 17, pattern(40), o));
            }(),
            verdict::exception, none, ip_sw);
        add(
            "IPv4 first fragment of TCP",
            [] {
                ipv4_options o;
                o.fragment = 0x2000;
                return ether(our_mac, peer_mac, engine::ethertype_ipv4, ipv4(peer4, us4, 6, tcp_syn(1, 22), o));
            }(),
            verdict::exception, none, ip_sw);
        add("IPv6 hop-by-hop header",
            ether(our_mac, peer_mac, engine::ethertype_ipv6,
                  ipv6(peer6, us6, 0, concat({{17, 0, 5, 2, 0, 0, 0, 0}, udp6(peer6, us6, 1, kwik_port, pattern(8))}))),
            verdict::exception, none, nothing);
        add("IPv6 non-first fragment",
            ether(our_mac, peer_mac, engine::ethertype_ipv6,
                  ipv6(peer6, us6, 44, concat({{17, 0, 0x05, 0x01, 0, 0, 0, 1}, pattern(40)}))),
            verdict::exception, none, nothing);
        add("IPv6 to another address",
            ether(our_mac, peer_mac, engine::ethertype_ipv6,
                  ipv6(peer6, other6, 17, udp6(peer6, other6, 1, kwik_port, pattern(8)))),
            verdict::exception, none, nothing);
        add("ICMPv6 echo to all-nodes",
            ether(multicast_mac(ip6("ff02::1")), peer_mac, engine::ethertype_ipv6,
                  ipv6(peer6, ip6("ff02::1"), 58, echo6(peer6, ip6("ff02::1"), 128, 1, 1, pattern(8)))),
            verdict::exception, none, nothing);
        add("neighbour solicitation for another address (the kernel's link-local)",
            ether(multicast_mac(solicited(other6)), peer_mac, engine::ethertype_ipv6,
                  ipv6(peer6, solicited(other6), 58, nd_message(peer6, solicited(other6), 135, 0, other6, {}), {255})),
            verdict::exception, none, nothing);
        add("neighbour advertisement to us",
            ether(
                our_mac, peer_mac, engine::ethertype_ipv6,
                ipv6(peer6, us6, 58, nd_message(peer6, us6, 136, 0x60, peer6, link_layer_option(2, peer_mac)), {255})),
            verdict::exception, none, l4_sw);

        // ---- drops, one or more per engine reason the classifier gives ----
        add("runt: 10 bytes", pattern(10), verdict::drop, drop_reason::truncated_ethernet, nothing);
        add("802.1Q tag cut off", ether(our_mac, peer_mac, engine::ethertype_vlan, {0x00}, {}, false), verdict::drop,
            drop_reason::truncated_ethernet, nothing);
        add(
            "unicast to another MAC",
            [] {
                bytes f = kwik4_frame();
                std::copy(stranger_mac.bytes.begin(), stranger_mac.bytes.end(), f.begin());
                return f;
            }(),
            verdict::drop, drop_reason::not_for_us, nothing);
        add("LLDP", ether(engine::mac_address{{0x01, 0x80, 0xC2, 0, 0, 0x0E}}, peer_mac, 0x88CC, pattern(40)),
            verdict::drop, drop_reason::not_ip, nothing);
        add("802.1ad outer tag", ether(our_mac, peer_mac, engine::ethertype_qinq, pattern(60)), verdict::drop,
            drop_reason::not_ip, nothing);
        add("two 802.1Q tags",
            ether(our_mac, peer_mac, engine::ethertype_vlan, concat({{0x00, 0x07, 0x08, 0x00}, pattern(60)}), 5),
            verdict::drop, drop_reason::not_ip, nothing);
        add("IPv4 header split across segments", kwik4_frame(), verdict::drop, drop_reason::headers_split, nothing)
            .with_cuts({20});
        add("UDP header split across segments", kwik4_frame(), verdict::drop, drop_reason::headers_split, ip_sw)
            .with_cuts({38});
        add("ARP message cut short",
            ether(engine::broadcast_mac, peer_mac, engine::ethertype_arp, pattern(20), {}, false), verdict::drop,
            drop_reason::bad_arp, nothing);
        add(
            "ARP with 8-byte hardware addresses",
            [] {
                bytes a = arp(1, peer_mac, peer4, {}, us4);
                a[4] = 8;
                return ether(engine::broadcast_mac, peer_mac, engine::ethertype_arp, a);
            }(),
            verdict::drop, drop_reason::bad_arp, nothing);
        add("IPv4 header cut short", ether(our_mac, peer_mac, engine::ethertype_ipv4, pattern(12), {}, false),
            verdict::drop, drop_reason::truncated_ipv4, nothing);
        add("IPv4 total length beyond the frame",
            ether(our_mac, peer_mac, engine::ethertype_ipv4,
                  ipv4(peer4, us4, 17, udp4(peer4, us4, 1, kwik_port, pattern(30)), {.total_length = 200})),
            verdict::drop, drop_reason::truncated_ipv4, nothing);
        add("IPv4 version 5",
            ether(our_mac, peer_mac, engine::ethertype_ipv4,
                  ipv4(peer4, us4, 17, udp4(peer4, us4, 1, kwik_port, pattern(30)), {.version = 5})),
            verdict::drop, drop_reason::bad_ipv4_header, nothing);
        add("IPv4 IHL 4",
            ether(our_mac, peer_mac, engine::ethertype_ipv4,
                  ipv4(peer4, us4, 17, udp4(peer4, us4, 1, kwik_port, pattern(30)), {.ihl = 4})),
            verdict::drop, drop_reason::bad_ipv4_header, nothing);
        add("IPv4 total length below the header",
            ether(our_mac, peer_mac, engine::ethertype_ipv4,
                  ipv4(peer4, us4, 17, udp4(peer4, us4, 1, kwik_port, pattern(30)), {.total_length = 19})),
            verdict::drop, drop_reason::bad_ipv4_header, nothing);
        add("IPv4 header checksum wrong",
            ether(our_mac, peer_mac, engine::ethertype_ipv4,
                  ipv4(peer4, us4, 17, udp4(peer4, us4, 1, kwik_port, pattern(30)), {.corrupt_checksum = true})),
            verdict::drop, drop_reason::bad_ipv4_checksum, ip_sw);
        add("IPv6 header cut short", ether(our_mac, peer_mac, engine::ethertype_ipv6, pattern(30), {}, false),
            verdict::drop, drop_reason::truncated_ipv6, nothing);
        add("IPv6 payload length beyond the frame",
            ether(our_mac, peer_mac, engine::ethertype_ipv6,
                  ipv6(peer6, us6, 17, udp6(peer6, us6, 1, kwik_port, pattern(30)), {.payload_length = 500})),
            verdict::drop, drop_reason::truncated_ipv6, nothing);
        add("IPv6 version 4 under the IPv6 EtherType",
            ether(our_mac, peer_mac, engine::ethertype_ipv6,
                  ipv6(peer6, us6, 17, udp6(peer6, us6, 1, kwik_port, pattern(30)), {.version = 4})),
            verdict::drop, drop_reason::bad_ipv6_header, nothing);
        add(
            "IPv4 first fragment of a Kwik datagram",
            [] {
                ipv4_options o;
                o.fragment = 0x2000; // MF, offset 0
                return ether(our_mac, peer_mac, engine::ethertype_ipv4,
                             ipv4(peer4, us4, 17, udp4(peer4, us4, 40000, kwik_port, pattern(100)), o));
            }(),
            verdict::drop, drop_reason::ip_fragment, ip_sw);
        add("IPv6 first fragment of a Kwik datagram",
            ether(our_mac, peer_mac, engine::ethertype_ipv6,
                  ipv6(peer6, us6, 44,
                       concat({{17, 0, 0x00, 0x01, 0, 0, 0, 1}, udp6(peer6, us6, 40000, kwik_port, pattern(100))}))),
            verdict::drop, drop_reason::ip_fragment, nothing);
        add("UDP length 7",
            ether(our_mac, peer_mac, engine::ethertype_ipv4,
                  ipv4(peer4, us4, 17, udp4(peer4, us4, 1, kwik_port, pattern(30), checksum_mode::correct, 7))),
            verdict::drop, drop_reason::bad_udp_length, ip_sw);
        add("UDP length beyond the IP payload",
            ether(our_mac, peer_mac, engine::ethertype_ipv4,
                  ipv4(peer4, us4, 17, udp4(peer4, us4, 1, kwik_port, pattern(30), checksum_mode::correct, 39))),
            verdict::drop, drop_reason::bad_udp_length, ip_sw);
        add("IPv4 payload too short for a UDP header",
            ether(our_mac, peer_mac, engine::ethertype_ipv4, ipv4(peer4, us4, 17, pattern(4))), verdict::drop,
            drop_reason::bad_udp_length, ip_sw);
        add("UDP checksum wrong (IPv4)", kwik4_frame(100, {}, checksum_mode::corrupt), verdict::drop,
            drop_reason::bad_udp_checksum, ip_l4_sw);
        add("UDP checksum wrong in a chain (IPv6)", kwik6_frame(5000, {}, checksum_mode::corrupt), verdict::drop,
            drop_reason::bad_udp_checksum, l4_sw)
            .with_cuts({77, 2100});
        add("UDP checksum 0 over IPv6", kwik6_frame(100, {}, checksum_mode::zero), verdict::drop,
            drop_reason::bad_udp_checksum, nothing);
        add("ICMP echo cut to 4 bytes",
            ether(our_mac, peer_mac, engine::ethertype_ipv4, ipv4(peer4, us4, 1, {8, 0, 0, 0})), verdict::drop,
            drop_reason::truncated_icmp, ip_sw);
        add("ICMPv6 echo cut to 6 bytes",
            ether(our_mac, peer_mac, engine::ethertype_ipv6, ipv6(peer6, us6, 58, {128, 0, 0, 0, 0, 1})), verdict::drop,
            drop_reason::truncated_icmp, nothing);
        add("neighbour solicitation without its target",
            ether(multicast_mac(solicited(us6)), peer_mac, engine::ethertype_ipv6,
                  ipv6(peer6, solicited(us6), 58, bytes{135, 0, 0, 0, 0, 0, 0, 0, 0xFD, 0}, {255})),
            verdict::drop, drop_reason::truncated_icmp, nothing);
        add("ICMP echo checksum wrong",
            ether(our_mac, peer_mac, engine::ethertype_ipv4,
                  ipv4(peer4, us4, 1, icmp4(8, 0, 77, 1, pattern(56), true))),
            verdict::drop, drop_reason::bad_icmp_checksum, ip_l4_sw);
        add("ICMPv6 echo checksum wrong",
            ether(our_mac, peer_mac, engine::ethertype_ipv6,
                  ipv6(peer6, us6, 58, echo6(peer6, us6, 128, 9, 3, pattern(56), true))),
            verdict::drop, drop_reason::bad_icmp_checksum, l4_sw);
        add("neighbour solicitation checksum wrong",
            ether(our_mac, peer_mac, engine::ethertype_ipv6,
                  ipv6(peer6, us6, 58, nd_message(peer6, us6, 135, 0, us6, {}, 0, true), {255})),
            verdict::drop, drop_reason::bad_icmp_checksum, l4_sw);
        add("neighbour solicitation with hop limit 64 (routed: forged)",
            ether(our_mac, peer_mac, engine::ethertype_ipv6,
                  ipv6(peer6, us6, 58, nd_message(peer6, us6, 135, 0, us6, {}), {64})),
            verdict::drop, drop_reason::bad_neighbor_discovery, nothing);
        add("neighbour solicitation with code 1",
            ether(our_mac, peer_mac, engine::ethertype_ipv6,
                  ipv6(peer6, us6, 58, nd_message(peer6, us6, 135, 0, us6, {}, 1), {255})),
            verdict::drop, drop_reason::bad_neighbor_discovery, nothing);
        return c;
    }();
    return all;
}

// The engine reasons the classifier gives (reply_not_built is the responder's, tested below;
// no_route and the neighbor_* reasons the neighbour table's, in its unit test).
const std::set<drop_reason>& classifier_reasons() {
    static const std::set<drop_reason> r = {
        drop_reason::truncated_ethernet,     drop_reason::not_for_us,        drop_reason::not_ip,
        drop_reason::headers_split,          drop_reason::bad_arp,           drop_reason::truncated_ipv4,
        drop_reason::bad_ipv4_header,        drop_reason::bad_ipv4_checksum, drop_reason::truncated_ipv6,
        drop_reason::bad_ipv6_header,        drop_reason::ip_fragment,       drop_reason::bad_udp_length,
        drop_reason::bad_udp_checksum,       drop_reason::truncated_icmp,    drop_reason::bad_icmp_checksum,
        drop_reason::bad_neighbor_discovery,
    };
    return r;
}

TEST(classifier_table, covers_every_verdict_and_classifier_reason) {
    std::set<verdict> verdicts;
    std::set<drop_reason> reasons;
    for (const classify_case& c : cases()) {
        verdicts.insert(c.v);
        if (c.v == verdict::drop) {
            reasons.insert(c.reason);
        }
    }
    for (std::size_t i = 0; i < engine::verdict_count; ++i) {
        EXPECT_TRUE(verdicts.count(static_cast<verdict>(i)))
            << "no case for " << engine::to_string(static_cast<verdict>(i));
    }
    for (const drop_reason r : classifier_reasons()) {
        EXPECT_TRUE(reasons.count(r)) << "no case for " << kdp::to_string(r);
    }
    EXPECT_EQ(reasons, classifier_reasons()) << "a case drops for a reason the classifier should not give";
}

TEST(classifier_names, every_verdict_has_a_name_and_description) {
    std::set<std::string_view> names;
    for (std::size_t i = 0; i < engine::verdict_count; ++i) {
        const auto v = static_cast<verdict>(i);
        EXPECT_NE(engine::to_string(v), "invalid");
        EXPECT_FALSE(engine::describe(v).empty());
        EXPECT_TRUE(names.insert(engine::to_string(v)).second);
    }
    EXPECT_EQ(engine::to_string(verdict::count_), "invalid");
}

TEST(classifier_config, validate_and_limits) {
    engine::classifier_config c;
    EXPECT_NE(c.validate().find("mac"), std::string_view::npos);
    c.mac = our_mac;
    EXPECT_NE(c.validate().find("kwik_ports"), std::string_view::npos);
    EXPECT_FALSE(c.add_kwik_port(0));
    for (std::uint16_t p = 1; p <= engine::max_kwik_ports; ++p) {
        EXPECT_TRUE(c.add_kwik_port(p));
    }
    EXPECT_TRUE(c.add_kwik_port(3)) << "a duplicate is accepted, not stored twice";
    EXPECT_FALSE(c.add_kwik_port(100)) << "full";
    EXPECT_NE(c.validate().find("addresses"), std::string_view::npos);
    EXPECT_FALSE(c.add_address(engine::ip_address::v4(0u)));
    EXPECT_FALSE(c.add_address(engine::ip_address::v4(ip4("224.0.0.1"))));
    EXPECT_FALSE(c.add_address(engine::ip_address::v4(0xFFFFFFFFu)));
    EXPECT_FALSE(c.add_address(engine::ip_address::v6(ip6("ff02::1").data())));
    EXPECT_FALSE(c.add_address(engine::ip_address{}));
    EXPECT_TRUE(c.add_address(engine::ip_address::v4(us4)));
    EXPECT_EQ(c.validate(), "");
    c.mac = engine::broadcast_mac;
    EXPECT_NE(c.validate().find("mac"), std::string_view::npos);
}

void run_classify(bool offload, const engine::classifier& cl, std::span<rte_mbuf* const> burst,
                  std::span<engine::packet_meta> meta, engine::classify_counters& counters) {
    if (offload) {
        cl.classify<true>(burst, meta, counters);
    } else {
        cl.classify<false>(burst, meta, counters);
    }
}

class classify : public ::testing::TestWithParam<classify_case> {};

TEST_P(classify, verdict_reason_counters_and_metadata) {
    const classify_case& c = GetParam();
    const engine::classifier cl(appliance_config());
    const mbuf_ptr m = make_mbuf(c.frame, c.cuts, c.ol_flags, c.mbuf_vlan_tci);
    ASSERT_NE(m, nullptr);
    const bytes before = flatten(m.get());
    std::array<rte_mbuf*, 1> burst{m.get()};
    std::array<engine::packet_meta, 1> meta{};
    engine::classify_counters k;
    run_classify(c.offload, cl, burst, meta, k);
    const engine::packet_meta& out = meta[0];

    EXPECT_EQ(engine::to_string(out.v), engine::to_string(c.v));
    EXPECT_EQ(kdp::to_string(out.reason), kdp::to_string(c.reason));
    EXPECT_EQ(k.count(c.v), 1u);
    std::uint64_t verdicts = 0;
    for (const std::uint64_t n : k.verdicts) {
        verdicts += n;
    }
    EXPECT_EQ(verdicts, 1u);
    std::uint64_t drops = 0;
    for (const std::uint64_t n : k.drops) {
        drops += n;
    }
    EXPECT_EQ(drops, c.v == verdict::drop ? 1u : 0u);
    if (c.v == verdict::drop) {
        EXPECT_EQ(k.count(c.reason), 1u);
    }
    EXPECT_EQ(k.ipv4_checksum_software, c.counters.ipv4_software);
    EXPECT_EQ(k.ipv4_checksum_offloaded, c.counters.ipv4_offloaded);
    EXPECT_EQ(k.l4_checksum_software, c.counters.l4_software);
    EXPECT_EQ(k.l4_checksum_offloaded, c.counters.l4_offloaded);
    EXPECT_EQ(k.udp_checksum_absent, c.counters.udp_absent);
    EXPECT_EQ(flatten(m.get()), before) << "the classifier must not write to the packet";

    if (c.v == verdict::kwik) {
        EXPECT_EQ(out.payload_offset, c.payload_offset);
        EXPECT_EQ(out.payload_length, c.payload_length);
        EXPECT_EQ(out.tuple.protocol, 17);
        EXPECT_EQ(out.tuple.src_port, 40000);
        EXPECT_TRUE(out.tuple.dst_port == kwik_port || out.tuple.dst_port == kwik_port_b);
        EXPECT_TRUE(cl.is_our_address(out.tuple.dst));
        EXPECT_EQ(out.tuple.src,
                  out.ip_version == 4 ? engine::ip_address::v4(peer4) : engine::ip_address::v6(peer6.data()));
        EXPECT_EQ(out.src_mac, peer_mac);
        // The payload is where the metadata says: the KDP parser starts there.
        const bytes flat = flatten(m.get());
        ASSERT_LE(std::size_t{out.payload_offset} + out.payload_length, flat.size());
        EXPECT_EQ(bytes(flat.begin() + out.payload_offset, flat.begin() + out.payload_offset + out.payload_length),
                  pattern(out.payload_length));
    }
    if (c.v == verdict::arp_request_for_us) {
        EXPECT_EQ(out.arp_op, 1);
        EXPECT_EQ(out.src_mac, peer_mac);
        EXPECT_EQ(out.ip_version, 0);
        EXPECT_TRUE(cl.is_our_address(out.tuple.dst));
    }
    if ((out.flags & engine::meta_flag::vlan_tagged) != 0) {
        EXPECT_EQ(out.l3_offset, 18);
    }
    if ((out.flags & engine::meta_flag::vlan_stripped) != 0) {
        EXPECT_EQ(out.vlan_tci, c.mbuf_vlan_tci);
    }
}

INSTANTIATE_TEST_SUITE_P(table, classify, ::testing::ValuesIn(cases()),
                         [](const ::testing::TestParamInfo<classify_case>& info) {
                             std::string name = std::to_string(info.index) + "_";
                             for (const char ch : info.param.description) {
                                 name += std::isalnum(static_cast<unsigned char>(ch)) ? ch : '_';
                             }
                             return name;
                         });

TEST(classify_meta, arp_reply_carries_the_sender_for_learning) {
    const engine::classifier cl(appliance_config());
    const mbuf_ptr m =
        make_mbuf(ether(our_mac, stranger_mac, engine::ethertype_arp, arp(2, peer_mac, peer4, our_mac, us4)));
    std::array<rte_mbuf*, 1> burst{m.get()};
    std::array<engine::packet_meta, 1> meta{};
    engine::classify_counters k;
    cl.classify<false>(burst, meta, k);
    EXPECT_EQ(meta[0].v, verdict::exception);
    EXPECT_EQ(meta[0].arp_op, 2);
    EXPECT_EQ(meta[0].src_mac, peer_mac) << "the ARP sender hardware address, not the Ethernet source";
    EXPECT_EQ(meta[0].tuple.src, engine::ip_address::v4(peer4));
    EXPECT_EQ(meta[0].tuple.dst, engine::ip_address::v4(us4));
}

// Neighbour advertisements to us answer the neighbour table's solicitations: valid ones are
// punted (the kernel keeps its own cache) and, when they carry the target's link-layer address,
// marked learnable with the target and that address in the metadata; invalid ones are dropped
// as RFC 4861 7.1.2 says.
TEST(classify_meta, neighbor_advertisement_carries_the_target_for_learning) {
    struct na_case {
        const char* description;
        bytes frame;
        verdict v;
        drop_reason reason;
        bool learnable;
        engine::mac_address mac; // when learnable
    };
    const engine::mac_address tlla{{0x02, 0x11, 0x22, 0x33, 0x44, 0x55}};
    const bytes nonce_option = {14, 1, 1, 2, 3, 4, 5, 6}; // RFC 3971 nonce, 8 bytes
    auto na = [&](const bytes& options, std::uint8_t hop_limit = 255, std::uint8_t code = 0, bool corrupt = false,
                  const v6addr& target = peer6) {
        return ether(our_mac, peer_mac, engine::ethertype_ipv6,
                     ipv6(peer6, us6, 58, nd_message(peer6, us6, 136, 0x60, target, options, code, corrupt),
                          {.hop_limit = hop_limit}));
    };
    const std::vector<na_case> cases = {
        {"solicited NA with the target's address", na(link_layer_option(2, tlla)), verdict::exception,
         drop_reason::none, true, tlla},
        {"the address after another option", na(concat({nonce_option, link_layer_option(2, tlla)})),
         verdict::exception, drop_reason::none, true, tlla},
        {"no target link-layer option (nothing to learn)", na({}), verdict::exception, drop_reason::none, false, {}},
        {"only a source link-layer option", na(link_layer_option(1, tlla)), verdict::exception, drop_reason::none,
         false, {}},
        {"an option of length 0", na(concat({{14, 0, 0, 0, 0, 0, 0, 0}, link_layer_option(2, tlla)})),
         verdict::exception, drop_reason::none, false, {}},
        {"a multicast link-layer address", na(link_layer_option(2, multicast_mac(ip6("ff02::1")))), verdict::exception,
         drop_reason::none, false, {}},
        {"a multicast target", na(link_layer_option(2, tlla), 255, 0, false, ip6("ff02::1")), verdict::exception,
         drop_reason::none, false, {}},
        {"hop limit below 255 (not from the link)", na(link_layer_option(2, tlla), 64), verdict::drop,
         drop_reason::bad_neighbor_discovery, false, {}},
        {"code 1", na(link_layer_option(2, tlla), 255, 1), verdict::drop, drop_reason::bad_neighbor_discovery, false,
         {}},
        {"bad checksum", na(link_layer_option(2, tlla), 255, 0, true), verdict::drop, drop_reason::bad_icmp_checksum,
         false, {}},
    };
    const engine::classifier cl(appliance_config());
    for (const na_case& c : cases) {
        const mbuf_ptr m = make_mbuf(c.frame);
        std::array<rte_mbuf*, 1> burst{m.get()};
        std::array<engine::packet_meta, 1> meta{};
        engine::classify_counters k;
        cl.classify<false>(burst, meta, k);
        EXPECT_EQ(meta[0].v, c.v) << c.description;
        EXPECT_EQ(meta[0].reason, c.reason) << c.description;
        EXPECT_EQ((meta[0].flags & engine::meta_flag::neighbor_advertisement) != 0, c.learnable) << c.description;
        if (c.learnable) {
            EXPECT_EQ(meta[0].src_mac, c.mac) << c.description << ": the target link-layer address";
            EXPECT_EQ(meta[0].tuple.src, engine::ip_address::v6(peer6.data())) << c.description << ": the target";
        }
    }
}

TEST(classify_meta, tcp_syn_has_its_tuple_for_the_exception_path) {
    const engine::classifier cl(appliance_config());
    const mbuf_ptr m =
        make_mbuf(ether(our_mac, peer_mac, engine::ethertype_ipv4, ipv4(peer4, us4, 6, tcp_syn(5555, 22)), 0x0042));
    std::array<rte_mbuf*, 1> burst{m.get()};
    std::array<engine::packet_meta, 1> meta{};
    engine::classify_counters k;
    cl.classify<false>(burst, meta, k);
    EXPECT_EQ(meta[0].v, verdict::exception);
    EXPECT_EQ(meta[0].ip_version, 4);
    EXPECT_EQ(meta[0].tuple.protocol, 6);
    EXPECT_EQ(meta[0].l3_offset, 18);
    EXPECT_EQ(meta[0].l4_offset, 38);
    EXPECT_EQ(meta[0].vlan_tci, 0x0042);
    EXPECT_EQ(meta[0].flags, engine::meta_flag::vlan_tagged);
}

// All cases of one variant as bursts of up to 32: the same metadata as one at a time, the
// counters summed.
TEST(classify_burst, matches_single_packets) {
    const engine::classifier cl(appliance_config());
    for (const bool offload : {false, true}) {
        std::vector<const classify_case*> selected;
        for (const classify_case& c : cases()) {
            if (c.offload == offload) {
                selected.push_back(&c);
            }
        }
        ASSERT_GT(selected.size(), 5u);
        std::vector<mbuf_ptr> mbufs;
        std::vector<rte_mbuf*> raw;
        for (const classify_case* c : selected) {
            mbufs.push_back(make_mbuf(c->frame, c->cuts, c->ol_flags, c->mbuf_vlan_tci));
            raw.push_back(mbufs.back().get());
        }
        std::vector<engine::packet_meta> meta(raw.size());
        engine::classify_counters burst_counters;
        for (std::size_t at = 0; at < raw.size(); at += 32) {
            const std::size_t n = std::min<std::size_t>(32, raw.size() - at);
            run_classify(offload, cl, std::span(raw).subspan(at, n), std::span(meta).subspan(at, n), burst_counters);
        }
        engine::classify_counters single_counters;
        for (std::size_t i = 0; i < raw.size(); ++i) {
            std::array<engine::packet_meta, 1> one{};
            run_classify(offload, cl, std::span(raw).subspan(i, 1), one, single_counters);
            EXPECT_EQ(std::memcmp(&one[0], &meta[i], sizeof(engine::packet_meta)), 0) << selected[i]->description;
            EXPECT_EQ(meta[i].v, selected[i]->v) << selected[i]->description;
        }
        EXPECT_EQ(burst_counters.verdicts, single_counters.verdicts);
        EXPECT_EQ(burst_counters.drops, single_counters.drops);
        EXPECT_EQ(burst_counters.l4_checksum_software, single_counters.l4_checksum_software);
        EXPECT_EQ(burst_counters.ipv4_checksum_offloaded, single_counters.ipv4_checksum_offloaded);
        std::uint64_t total = 0;
        for (const std::uint64_t n : burst_counters.verdicts) {
            total += n;
        }
        EXPECT_EQ(total, raw.size());
    }
}

// A meta array shorter than the burst: only as many packets as it holds are classified.
TEST(classify_burst, meta_shorter_than_burst) {
    const engine::classifier cl(appliance_config());
    const mbuf_ptr a = make_mbuf(kwik4_frame());
    const mbuf_ptr b = make_mbuf(kwik4_frame());
    std::array<rte_mbuf*, 2> burst{a.get(), b.get()};
    std::array<engine::packet_meta, 1> meta{};
    engine::classify_counters k;
    cl.classify<false>(burst, meta, k);
    EXPECT_EQ(k.count(verdict::kwik), 1u);
}

TEST(checksum_mbuf, equals_the_flat_sum_for_any_cut) {
    const bytes data = pattern(301, 9);
    const std::uint16_t flat = engine::checksum_fold(engine::checksum_add(data.data(), data.size(), 0));
    for (std::size_t a = 0; a <= data.size(); a += 7) {
        for (std::size_t b = a; b <= data.size(); b += 13) {
            const mbuf_ptr m = make_mbuf(data, {a, b});
            ASSERT_NE(m, nullptr);
            for (const std::uint32_t off : {0u, 1u, 2u, 5u}) {
                const std::uint16_t want =
                    engine::checksum_fold(engine::checksum_add(data.data() + off, data.size() - off, 0));
                const std::uint16_t got = engine::checksum_fold(
                    engine::checksum_mbuf(m.get(), off, static_cast<std::uint32_t>(data.size() - off), 0));
                // Equal as one's-complement values (0 and 0xFFFF are the same number).
                EXPECT_TRUE(got == want || (got % 0xFFFF) == (want % 0xFFFF))
                    << "cuts " << a << "," << b << " off " << off << ": " << got << " vs " << want;
            }
        }
    }
    // The native-order sum, stored as it is, gives the bytes of the big-endian reference.
    const std::uint16_t native = engine::checksum_finish(engine::checksum_add(data.data(), data.size(), 0));
    std::uint8_t stored[2];
    std::memcpy(stored, &native, 2);
    EXPECT_EQ(static_cast<std::uint16_t>(stored[0] << 8 | stored[1]), complement(be_sum(data)));
    EXPECT_NE(flat, 0u);
}

// ---- responder ----

struct responded {
    bool ok = false;
    bytes frame;
    engine::responder_counters counters;
    engine::packet_meta meta;
    std::uint64_t ol_flags = 0;
};

responded classify_and_respond(const bytes& request, const std::vector<std::size_t>& cuts = {},
                               std::uint64_t ol_flags = 0, std::uint16_t vlan_tci = 0) {
    responded r;
    const engine::classifier cl(appliance_config());
    const engine::responder resp(our_mac);
    mbuf_ptr m = make_mbuf(request, cuts, ol_flags, vlan_tci);
    std::array<rte_mbuf*, 1> burst{m.get()};
    std::array<engine::packet_meta, 1> meta{};
    engine::classify_counters k;
    cl.classify<false>(burst, meta, k);
    r.meta = meta[0];
    r.ok = resp.respond(m.get(), meta[0], r.counters);
    r.frame = flatten(m.get());
    r.ol_flags = m->ol_flags;
    return r;
}

TEST(responder, arp_reply) {
    const responded r = classify_and_respond(
        ether(engine::broadcast_mac, peer_mac, engine::ethertype_arp, arp(1, peer_mac, peer4, {}, us4b)));
    ASSERT_EQ(r.meta.v, verdict::arp_request_for_us);
    ASSERT_TRUE(r.ok);
    EXPECT_EQ(r.frame, ether(peer_mac, our_mac, engine::ethertype_arp, arp(2, our_mac, us4b, peer_mac, peer4)));
    EXPECT_EQ(r.counters.arp_replies, 1u);
    EXPECT_EQ(r.counters.not_built, 0u);
}

TEST(responder, arp_reply_keeps_the_vlan_tag) {
    const responded r = classify_and_respond(
        ether(engine::broadcast_mac, peer_mac, engine::ethertype_arp, arp(1, peer_mac, peer4, {}, us4), 0x3005));
    ASSERT_TRUE(r.ok);
    EXPECT_EQ(r.frame, ether(peer_mac, our_mac, engine::ethertype_arp, arp(2, our_mac, us4, peer_mac, peer4), 0x3005));
}

TEST(responder, arp_probe_is_answered_to_the_prober) {
    const responded r = classify_and_respond(
        ether(engine::broadcast_mac, peer_mac, engine::ethertype_arp, arp(1, peer_mac, 0, {}, us4)));
    ASSERT_TRUE(r.ok);
    EXPECT_EQ(r.frame, ether(peer_mac, our_mac, engine::ethertype_arp, arp(2, our_mac, us4, peer_mac, 0)));
}

TEST(responder, icmp_echo_reply) {
    ipv4_options req;
    req.ttl = 50;
    req.id = 0x4242;
    ipv4_options rep = req;
    rep.ttl = engine::reply_hop_limit;
    for (const std::size_t size : {std::size_t{0}, std::size_t{1}, std::size_t{56}, std::size_t{1472}}) {
        const responded r =
            classify_and_respond(ether(our_mac, peer_mac, engine::ethertype_ipv4,
                                       ipv4(peer4, us4, 1, icmp4(8, 0, 0x1D1D, 7, pattern(size)), req)));
        ASSERT_EQ(r.meta.v, verdict::icmp_echo_for_us) << size;
        ASSERT_TRUE(r.ok);
        EXPECT_EQ(r.frame, ether(peer_mac, our_mac, engine::ethertype_ipv4,
                                 ipv4(us4, peer4, 1, icmp4(0, 0, 0x1D1D, 7, pattern(size)), rep)))
            << size << " bytes";
        EXPECT_EQ(r.counters.icmp_echo_replies, 1u);
    }
}

TEST(responder, icmp_echo_reply_over_a_chain) {
    ipv4_options rep;
    rep.ttl = engine::reply_hop_limit;
    const responded r = classify_and_respond(
        ether(our_mac, peer_mac, engine::ethertype_ipv4, ipv4(peer4, us4, 1, icmp4(8, 0, 1, 2, pattern(6000)))),
        {45, 2047, 4001});
    ASSERT_EQ(r.meta.v, verdict::icmp_echo_for_us);
    ASSERT_TRUE(r.ok);
    EXPECT_EQ(r.frame, ether(peer_mac, our_mac, engine::ethertype_ipv4,
                             ipv4(us4, peer4, 1, icmp4(0, 0, 1, 2, pattern(6000)), rep)));
}

TEST(responder, icmp_echo_reply_checksum_wraps) {
    // A request whose checksum field is 0x0000 or 0xF7FF: the incremental update crosses the
    // one's-complement wrap. Find payloads giving those checksums by search.
    ipv4_options rep;
    rep.ttl = engine::reply_hop_limit;
    int tried = 0;
    for (std::uint16_t seq = 0; seq < 60000 && tried < 2; ++seq) {
        const bytes req = icmp4(8, 0, 0x0101, seq, pattern(4));
        const std::uint16_t sum = static_cast<std::uint16_t>(req[2] << 8 | req[3]);
        if (sum != 0x0000 && sum != 0xF7FF && sum != 0xFFFF && sum != 0x0800) {
            continue;
        }
        ++tried;
        const responded r =
            classify_and_respond(ether(our_mac, peer_mac, engine::ethertype_ipv4, ipv4(peer4, us4, 1, req)));
        ASSERT_TRUE(r.ok);
        const bytes reply = bytes(r.frame.begin() + 34, r.frame.begin() + 34 + 12);
        EXPECT_EQ(complement(be_sum(reply)), 0u) << "seq " << seq << " request checksum " << sum;
    }
    EXPECT_EQ(tried, 2);
}

TEST(responder, icmpv6_echo_reply) {
    const responded r = classify_and_respond(
        ether(our_mac, peer_mac, engine::ethertype_ipv6,
              ipv6(peer6, us6, 58, echo6(peer6, us6, 128, 9, 3, pattern(56)), {.hop_limit = 33}), 0x0007));
    ASSERT_EQ(r.meta.v, verdict::icmpv6_echo_for_us);
    ASSERT_TRUE(r.ok);
    EXPECT_EQ(r.frame, ether(peer_mac, our_mac, engine::ethertype_ipv6,
                             ipv6(us6, peer6, 58, echo6(us6, peer6, 129, 9, 3, pattern(56)),
                                  {.hop_limit = engine::reply_hop_limit}),
                             0x0007));
    EXPECT_EQ(r.counters.icmpv6_echo_replies, 1u);
}

bytes expected_na(const v6addr& to, const engine::mac_address& to_mac, std::uint8_t flags) {
    return ether(to_mac, our_mac, engine::ethertype_ipv6,
                 ipv6(us6, to, 58, nd_message(us6, to, 136, flags, us6, link_layer_option(2, our_mac)), {255}));
}

TEST(responder, neighbor_advertisement_whatever_the_solicitation_carried) {
    const v6addr group = solicited(us6);
    struct variant {
        const char* name;
        bytes options;
    };
    const std::vector<variant> variants = {
        {"source link-layer option (32 bytes, same size)", link_layer_option(1, peer_mac)},
        {"no option (24 bytes: the frame grows)", {}},
        {"two options (40 bytes: the frame shrinks)",
         concat({link_layer_option(1, peer_mac), {14, 1, 1, 2, 3, 4, 5, 6}})},
    };
    for (const variant& v : variants) {
        const responded r = classify_and_respond(
            ether(multicast_mac(group), peer_mac, engine::ethertype_ipv6,
                  ipv6(peer6, group, 58, nd_message(peer6, group, 135, 0, us6, v.options), {255})));
        ASSERT_EQ(r.meta.v, verdict::neighbor_solicitation_for_us) << v.name;
        ASSERT_TRUE(r.ok) << v.name;
        EXPECT_EQ(r.frame, expected_na(peer6, peer_mac, engine::na_flag_solicited | engine::na_flag_override))
            << v.name;
        EXPECT_EQ(r.counters.neighbor_advertisements, 1u);
    }
}

TEST(responder, duplicate_address_detection_is_answered_to_all_nodes) {
    const v6addr group = solicited(us6);
    const v6addr unspecified{};
    const responded r = classify_and_respond(
        ether(multicast_mac(group), peer_mac, engine::ethertype_ipv6,
              ipv6(unspecified, group, 58, nd_message(unspecified, group, 135, 0, us6, {}), {255})));
    ASSERT_EQ(r.meta.v, verdict::neighbor_solicitation_for_us);
    ASSERT_TRUE(r.ok);
    const v6addr all_nodes = ip6("ff02::1");
    EXPECT_EQ(r.frame, expected_na(all_nodes, multicast_mac(all_nodes), engine::na_flag_override));
}

TEST(responder, stripped_vlan_tag_goes_back_into_the_frame) {
    const responded r = classify_and_respond(
        ether(engine::broadcast_mac, peer_mac, engine::ethertype_arp, arp(1, peer_mac, peer4, {}, us4)), {},
        RTE_MBUF_F_RX_VLAN | RTE_MBUF_F_RX_VLAN_STRIPPED | RTE_MBUF_F_RX_IP_CKSUM_GOOD, 0x0064);
    ASSERT_EQ(r.meta.v, verdict::arp_request_for_us);
    ASSERT_TRUE(r.ok);
    bytes want = ether(peer_mac, our_mac, engine::ethertype_arp, arp(2, our_mac, us4, peer_mac, peer4), 0x0064, false);
    want.resize(64, 0); // the request's 60 bytes (18 of padding) plus the tag
    EXPECT_EQ(r.frame, want);
    EXPECT_EQ(r.ol_flags, 0u) << "rx flags cleared, no tx offload asked for";
}

TEST(responder, rx_offload_flags_are_cleared) {
    const responded r = classify_and_respond(
        ether(our_mac, peer_mac, engine::ethertype_ipv4, ipv4(peer4, us4, 1, icmp4(8, 0, 1, 1, pattern(10)))), {},
        RTE_MBUF_F_RX_IP_CKSUM_GOOD | RTE_MBUF_F_RX_L4_CKSUM_GOOD | RTE_MBUF_F_RX_RSS_HASH);
    ASSERT_TRUE(r.ok);
    EXPECT_EQ(r.ol_flags, 0u);
}

TEST(responder, refuses_what_it_cannot_write_in_place) {
    const engine::classifier cl(appliance_config());
    const engine::responder resp(our_mac);
    engine::responder_counters counters;
    // A shared mbuf: someone else holds a reference.
    {
        const bytes frame =
            ether(engine::broadcast_mac, peer_mac, engine::ethertype_arp, arp(1, peer_mac, peer4, {}, us4));
        const mbuf_ptr m = make_mbuf(frame);
        rte_mbuf_refcnt_update(m.get(), 1);
        std::array<rte_mbuf*, 1> burst{m.get()};
        std::array<engine::packet_meta, 1> meta{};
        engine::classify_counters k;
        cl.classify<false>(burst, meta, k);
        ASSERT_EQ(meta[0].v, verdict::arp_request_for_us);
        EXPECT_FALSE(resp.respond(m.get(), meta[0], counters));
        EXPECT_EQ(flatten(m.get()), frame) << "untouched";
        rte_mbuf_refcnt_update(m.get(), -1);
    }
    // A solicitation in a chain (the NA is rebuilt to a new length: single segments only).
    {
        const v6addr group = solicited(us6);
        const bytes frame =
            ether(multicast_mac(group), peer_mac, engine::ethertype_ipv6,
                  ipv6(peer6, group, 58, nd_message(peer6, group, 135, 0, us6, link_layer_option(1, peer_mac)), {255}));
        const mbuf_ptr m = make_mbuf(frame, {80});
        std::array<rte_mbuf*, 1> burst{m.get()};
        std::array<engine::packet_meta, 1> meta{};
        engine::classify_counters k;
        cl.classify<false>(burst, meta, k);
        ASSERT_EQ(meta[0].v, verdict::neighbor_solicitation_for_us);
        EXPECT_FALSE(resp.respond(m.get(), meta[0], counters));
        EXPECT_EQ(flatten(m.get()), frame);
    }
    // A stripped tag to put back, and no headroom for it.
    {
        const bytes frame =
            ether(engine::broadcast_mac, peer_mac, engine::ethertype_arp, arp(1, peer_mac, peer4, {}, us4));
        const mbuf_ptr m(rte_pktmbuf_alloc(g_pool));
        ASSERT_NE(m, nullptr);
        m->data_off = 2;
        std::memcpy(rte_pktmbuf_append(m.get(), static_cast<std::uint16_t>(frame.size())), frame.data(), frame.size());
        m->ol_flags = RTE_MBUF_F_RX_VLAN | RTE_MBUF_F_RX_VLAN_STRIPPED;
        m->vlan_tci = 9;
        std::array<rte_mbuf*, 1> burst{m.get()};
        std::array<engine::packet_meta, 1> meta{};
        engine::classify_counters k;
        cl.classify<false>(burst, meta, k);
        ASSERT_EQ(meta[0].v, verdict::arp_request_for_us);
        EXPECT_FALSE(resp.respond(m.get(), meta[0], counters));
        EXPECT_EQ(flatten(m.get()), frame) << "untouched";
    }
    // Not a request it answers.
    {
        const mbuf_ptr m = make_mbuf(kwik4_frame());
        std::array<rte_mbuf*, 1> burst{m.get()};
        std::array<engine::packet_meta, 1> meta{};
        engine::classify_counters k;
        cl.classify<false>(burst, meta, k);
        ASSERT_EQ(meta[0].v, verdict::kwik);
        EXPECT_FALSE(resp.respond(m.get(), meta[0], counters));
    }
    EXPECT_EQ(counters.not_built, 4u);
    EXPECT_EQ(counters.arp_replies + counters.neighbor_advertisements, 0u);
}

// ---- the exception path through net_tap in a network namespace ----

engine::time_ns now_ns() {
    return static_cast<engine::time_ns>(
        std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
            .count());
}

// Runs a command through the shell; the exit status, or -1.
int shell(const std::string& command) {
    const int rc = std::system((command + " >/dev/null 2>&1").c_str());
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

std::string g_namespace_to_remove; // for atexit: a failed assertion does not skip cleanup
void remove_namespace_at_exit() {
    if (!g_namespace_to_remove.empty()) {
        shell("ip netns del " + g_namespace_to_remove);
    }
}

// What the namespace side saw; written by the client thread, read after it joined.
struct client_report {
    std::vector<std::string> failures;
    bool ping4_ok = false;
    bool ping6_ok = false;
    bool syn_sent = false;
    engine::mac_address kernel_mac;               // the namespace interface's, by SIOCGIFHWADDR
    std::optional<engine::mac_address> arp_of_us; // the namespace's ARP entry for the appliance
};

// Checksummed ICMP echo over a raw socket; true when the matching reply came back.
bool ping4(int fd, std::uint32_t dst, std::uint16_t id, std::uint16_t seq, std::string& why) {
    const bytes msg = icmp4(8, 0, id, seq, pattern(56, 3));
    sockaddr_in to{};
    to.sin_family = AF_INET;
    to.sin_addr.s_addr = htonl(dst);
    if (sendto(fd, msg.data(), msg.size(), 0, reinterpret_cast<sockaddr*>(&to), sizeof to) < 0) {
        why = std::string("sendto: ") + std::strerror(errno);
        return false;
    }
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(2);
    std::array<std::uint8_t, 2048> buf{};
    while (std::chrono::steady_clock::now() < deadline) {
        pollfd p{fd, POLLIN, 0};
        if (poll(&p, 1, 100) <= 0) {
            continue;
        }
        const ssize_t n = recv(fd, buf.data(), buf.size(), 0);
        if (n < 20) {
            continue;
        }
        const std::size_t ihl = (buf[0] & 0x0F) * 4u;
        const bytes ip_src(buf.begin() + 12, buf.begin() + 16);
        if (static_cast<std::size_t>(n) < ihl + 8 || ip_src != v4_bytes(dst) || buf[ihl] != 0) {
            continue;
        }
        const bytes reply(buf.begin() + static_cast<std::ptrdiff_t>(ihl), buf.begin() + n);
        if (reply.size() == msg.size() && complement(be_sum(reply)) == 0 && reply[4] == msg[4] && reply[5] == msg[5] &&
            reply[6] == msg[6] && reply[7] == msg[7] && std::equal(reply.begin() + 8, reply.end(), msg.begin() + 8)) {
            return true;
        }
    }
    why = "no echo reply from the appliance within 2 s";
    return false;
}

bool ping6(int fd, const v6addr& dst, std::uint16_t id, std::uint16_t seq, std::string& why) {
    // The kernel computes the checksum of raw ICMPv6 (RFC 3542 3.1).
    bytes msg = {128, 0, 0, 0, 0, 0, 0, 0};
    put16(msg, 4, id);
    put16(msg, 6, seq);
    const bytes data = pattern(40, 5);
    msg.insert(msg.end(), data.begin(), data.end());
    sockaddr_in6 to{};
    to.sin6_family = AF_INET6;
    std::memcpy(&to.sin6_addr, dst.data(), 16);
    if (sendto(fd, msg.data(), msg.size(), 0, reinterpret_cast<sockaddr*>(&to), sizeof to) < 0) {
        why = std::string("sendto: ") + std::strerror(errno);
        return false;
    }
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(3);
    std::array<std::uint8_t, 2048> buf{};
    while (std::chrono::steady_clock::now() < deadline) {
        pollfd p{fd, POLLIN, 0};
        if (poll(&p, 1, 100) <= 0) {
            continue;
        }
        sockaddr_in6 from{};
        socklen_t len = sizeof from;
        const ssize_t n = recvfrom(fd, buf.data(), buf.size(), 0, reinterpret_cast<sockaddr*>(&from), &len);
        if (n != static_cast<ssize_t>(msg.size()) || std::memcmp(&from.sin6_addr, dst.data(), 16) != 0 ||
            buf[0] != 129) {
            continue;
        }
        if (std::equal(msg.begin() + 4, msg.end(), buf.begin() + 4)) {
            return true;
        }
    }
    why = "no ICMPv6 echo reply from the appliance within 3 s";
    return false;
}

class exception_path : public ::testing::Test {
protected:
    void SetUp() override {
        _ns = "kwik-test-" + std::to_string(getpid());
        _iface = "kwiktap" + std::to_string(getpid() % 10000000);
        _vdev = "net_tap_kwikcls";
        if (access("/dev/net/tun", R_OK | W_OK) != 0) {
            GTEST_SKIP() << "/dev/net/tun not usable: " << std::strerror(errno);
        }
        const int rc = rte_eal_hotplug_add("vdev", _vdev.c_str(), ("iface=" + _iface).c_str());
        if (rc != 0) {
            GTEST_SKIP() << "net_tap could not be created: rte_eal_hotplug_add(vdev, " << _vdev << ", iface=" << _iface
                         << ") = " << rc << " (" << rte_strerror(-rc) << ")";
        }
        _vdev_made = true;
        ASSERT_EQ(rte_eth_dev_get_port_by_name(_vdev.c_str(), &_port), 0);
        rte_eth_conf conf{};
        ASSERT_EQ(rte_eth_dev_configure(_port, 1, 1, &conf), 0);
        ASSERT_EQ(rte_eth_rx_queue_setup(_port, 0, 256, rte_eth_dev_socket_id(_port), nullptr, g_pool), 0);
        ASSERT_EQ(rte_eth_tx_queue_setup(_port, 0, 256, rte_eth_dev_socket_id(_port), nullptr), 0);
        // Started while the interface is still in this namespace: the PMD brings it up by name.
        ASSERT_EQ(rte_eth_dev_start(_port), 0);
        _started = true;

        if (shell("ip netns add " + _ns) != 0) {
            GTEST_SKIP() << "`ip netns add " << _ns << "` failed: no network namespaces here";
        }
        g_namespace_to_remove = _ns;
        static bool registered = false;
        if (!registered) {
            std::atexit(remove_namespace_at_exit);
            registered = true;
        }
        const std::string in_ns = "ip -n " + _ns + " ";
        for (const std::string& cmd :
             {"ip link set " + _iface + " netns " + _ns, in_ns + "link set lo up",
              in_ns + "addr add 10.99.0.2/24 dev " + _iface, in_ns + "-6 addr add fd99::2/64 dev " + _iface + " nodad",
              in_ns + "link set " + _iface + " up"}) {
            if (shell(cmd) != 0) {
                GTEST_SKIP() << "`" << cmd << "` failed: cannot set up the namespace side of the tap";
            }
        }
    }

    void TearDown() override {
        if (_started) {
            // The interface now lives in the namespace, so the PMD's own link-down by name
            // fails; that is expected and harmless.
            (void)rte_eth_dev_stop(_port);
            (void)rte_eth_dev_close(_port);
        }
        if (_vdev_made) {
            (void)rte_eal_hotplug_remove("vdev", _vdev.c_str());
        }
        if (!g_namespace_to_remove.empty()) {
            EXPECT_EQ(shell("ip netns del " + _ns), 0);
            g_namespace_to_remove.clear();
        }
        EXPECT_NE(shell("ip netns list | grep -q '^" + _ns + "\\b'"), 0) << "namespace left behind";
    }

    // Runs fn on a thread that has entered the namespace (setns changes only the calling
    // thread's network namespace).
    template <typename Fn>
    std::thread in_namespace(Fn fn, client_report& report) {
        const std::string path = "/var/run/netns/" + _ns;
        return std::thread([path, fn, &report] {
            const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
            if (fd < 0 || setns(fd, CLONE_NEWNET) != 0) {
                report.failures.push_back("setns(" + path + "): " + std::strerror(errno));
                if (fd >= 0) {
                    close(fd);
                }
                return;
            }
            close(fd);
            fn(report);
        });
    }

    std::string _ns;
    std::string _iface;
    std::string _vdev;
    std::uint16_t _port = 0;
    bool _vdev_made = false;
    bool _started = false;
};

TEST_F(exception_path, arp_ping_and_tcp_through_a_tap_in_a_namespace) {
    const std::uint32_t appliance4 = ip4("10.99.0.1");
    const std::uint32_t kernel4 = ip4("10.99.0.2");
    const v6addr appliance6 = ip6("fd99::1");
    engine::classifier_config cc;
    cc.mac = our_mac;
    ASSERT_TRUE(cc.add_kwik_port(kwik_port));
    ASSERT_TRUE(cc.add_address(engine::ip_address::v4(appliance4)));
    ASSERT_TRUE(cc.add_address(engine::ip_address::v6(appliance6.data())));
    const engine::classifier cl(cc);
    const engine::responder resp(our_mac);
    engine::neighbor_config nc;
    nc.mac = our_mac;
    ASSERT_TRUE(nc.add_interface(engine::ip_address::v4(appliance4), 24));
    ASSERT_TRUE(nc.add_interface(engine::ip_address::v6(appliance6.data()), 64));
    nc.capacity = 64;
    ASSERT_EQ(nc.validate(), "");
    engine::neighbor_table neighbors(nc);

    std::atomic<bool> client_done{false};
    std::atomic<bool> stop_after_syn{false};
    client_report report;
    const std::string iface = _iface;
    std::thread client = in_namespace(
        [&, iface](client_report& rep) {
            // The namespace interface's MAC, and the kernel's view of the appliance afterwards.
            const int ctl = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
            ifreq ifr{};
            std::strncpy(ifr.ifr_name, iface.c_str(), IFNAMSIZ - 1);
            if (ioctl(ctl, SIOCGIFHWADDR, &ifr) == 0) {
                std::memcpy(rep.kernel_mac.bytes.data(), ifr.ifr_hwaddr.sa_data, 6);
            } else {
                rep.failures.push_back(std::string("SIOCGIFHWADDR: ") + std::strerror(errno));
            }
            const int icmp = socket(AF_INET, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_ICMP);
            const int icmpv6 = socket(AF_INET6, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_ICMPV6);
            if (icmp < 0 || icmpv6 < 0) {
                rep.failures.push_back(std::string("raw socket: ") + std::strerror(errno));
            } else {
                std::string why;
                // The first echo waits in the kernel's ARP queue until our reply resolves us.
                for (std::uint16_t seq = 1; seq <= 3 && !rep.ping4_ok; ++seq) {
                    rep.ping4_ok = ping4(icmp, appliance4, 0x4B57, seq, why);
                }
                if (!rep.ping4_ok) {
                    rep.failures.push_back("ping 10.99.0.1: " + why);
                }
                for (std::uint16_t seq = 1; seq <= 3 && !rep.ping6_ok; ++seq) {
                    rep.ping6_ok = ping6(icmpv6, appliance6, 0x4B58, seq, why);
                }
                if (!rep.ping6_ok) {
                    rep.failures.push_back("ping fd99::1: " + why);
                }
            }
            arpreq req{};
            auto* pa = reinterpret_cast<sockaddr_in*>(&req.arp_pa);
            pa->sin_family = AF_INET;
            pa->sin_addr.s_addr = htonl(appliance4);
            std::strncpy(req.arp_dev, iface.c_str(), sizeof req.arp_dev - 1);
            if (ioctl(ctl, SIOCGARP, &req) == 0 && (req.arp_flags & ATF_COM) != 0) {
                engine::mac_address m;
                std::memcpy(m.bytes.data(), req.arp_ha.sa_data, 6);
                rep.arp_of_us = m;
            }
            // A TCP connection to the appliance's SSH port: the SYN must reach the exception
            // verdict. Nothing answers it here (the kernel behind the exception port is not part
            // of this test), so the connect stays pending until we close it.
            const int tcp = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
            sockaddr_in to{};
            to.sin_family = AF_INET;
            to.sin_port = htons(22);
            to.sin_addr.s_addr = htonl(appliance4);
            const int c = connect(tcp, reinterpret_cast<sockaddr*>(&to), sizeof to);
            rep.syn_sent = c == 0 || errno == EINPROGRESS;
            if (!rep.syn_sent) {
                rep.failures.push_back(std::string("connect: ") + std::strerror(errno));
            }
            const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(3);
            while (!stop_after_syn.load() && std::chrono::steady_clock::now() < deadline) {
                std::this_thread::sleep_for(std::chrono::milliseconds(10));
            }
            close(tcp);
            close(icmp);
            close(icmpv6);
            close(ctl);
            client_done = true;
        },
        report);

    // The appliance: this thread polls the tap, classifies, answers, and records exceptions.
    engine::classify_counters counters;
    engine::responder_counters replies;
    std::uint64_t syns = 0;
    std::uint64_t tx_failed = 0;
    std::array<rte_mbuf*, 32> burst{};
    std::array<engine::packet_meta, 32> meta{};
    std::array<rte_mbuf*, engine::neighbor_table::max_held> released{};
    auto serve = [&](std::chrono::milliseconds for_how_long, auto until) {
        const auto deadline = std::chrono::steady_clock::now() + for_how_long;
        while (std::chrono::steady_clock::now() < deadline && !until()) {
            const std::uint16_t n = rte_eth_rx_burst(_port, 0, burst.data(), burst.size());
            if (n == 0) {
                std::this_thread::sleep_for(std::chrono::microseconds(200));
                continue;
            }
            cl.classify<false>(std::span(burst.data(), n), meta, counters);
            std::array<rte_mbuf*, 32> tx{};
            std::uint16_t ntx = 0;
            for (std::uint16_t i = 0; i < n; ++i) {
                const engine::packet_meta& pm = meta[i];
                if (pm.v == verdict::arp_request_for_us || (pm.v == verdict::exception && pm.arp_op == 2)) {
                    neighbors.learn(pm.tuple.src, pm.src_mac, now_ns(), released);
                }
                if (pm.v == verdict::exception && pm.ip_version == 4 && pm.tuple.protocol == 6) {
                    const auto* f = rte_pktmbuf_mtod(burst[i], const std::uint8_t*);
                    if (engine::load_be16(f + pm.l4_offset + 2) == 22 && (f[pm.l4_offset + 13] & 0x12) == 0x02 &&
                        pm.tuple.src == engine::ip_address::v4(kernel4)) {
                        ++syns;
                        stop_after_syn = true;
                    }
                }
                switch (pm.v) {
                case verdict::arp_request_for_us:
                case verdict::icmp_echo_for_us:
                case verdict::icmpv6_echo_for_us:
                case verdict::neighbor_solicitation_for_us:
                    if (resp.respond(burst[i], pm, replies)) {
                        tx[ntx++] = burst[i];
                    } else {
                        rte_pktmbuf_free(burst[i]);
                    }
                    break;
                default:
                    // A worker would send exceptions to the exception port; here they end.
                    rte_pktmbuf_free(burst[i]);
                    break;
                }
            }
            const std::uint16_t sent = rte_eth_tx_burst(_port, 0, tx.data(), ntx);
            tx_failed += ntx - sent;
            for (std::uint16_t i = sent; i < ntx; ++i) {
                rte_pktmbuf_free(tx[i]);
            }
        }
    };
    serve(std::chrono::seconds(15), [&] { return client_done.load(); });
    client.join();

    std::cout << "appliance loop: " << replies.arp_replies << " ARP replies, " << replies.icmp_echo_replies
              << " echo replies, " << replies.neighbor_advertisements << " neighbour advertisements, "
              << replies.icmpv6_echo_replies << " ICMPv6 echo replies, " << counters.count(verdict::exception)
              << " exceptions (" << syns << " the SYN to port 22)\n";
    for (const std::string& f : report.failures) {
        ADD_FAILURE() << "namespace side: " << f;
    }
    EXPECT_TRUE(report.ping4_ok);
    EXPECT_TRUE(report.ping6_ok);
    EXPECT_GE(replies.arp_replies, 1u) << "the kernel had to ARP for 10.99.0.1";
    EXPECT_GE(replies.icmp_echo_replies, 1u);
    EXPECT_GE(replies.neighbor_advertisements, 1u) << "the kernel had to solicit fd99::1";
    EXPECT_GE(replies.icmpv6_echo_replies, 1u);
    EXPECT_EQ(replies.not_built, 0u);
    EXPECT_EQ(tx_failed, 0u);
    ASSERT_TRUE(report.arp_of_us.has_value()) << "the namespace has no complete ARP entry for 10.99.0.1";
    EXPECT_EQ(*report.arp_of_us, our_mac);
    EXPECT_TRUE(report.syn_sent);
    EXPECT_GE(syns, 1u) << "the SYN to 10.99.0.1:22 was not classified as exception";
    EXPECT_GE(counters.count(verdict::exception), syns);
    EXPECT_EQ(counters.count(verdict::kwik), 0u);
    // What the kernel sends on its own (MLD reports, router solicitations, DAD for its
    // link-local address) is punted, not dropped: nothing here is malformed.
    EXPECT_EQ(counters.count(verdict::drop), 0u) << [&] {
        std::string s;
        for (std::size_t i = 0; i < kdp::drop_reason_count; ++i) {
            if (counters.drops[i] != 0) {
                s += std::string(kdp::to_string(static_cast<drop_reason>(i))) + "=" +
                     std::to_string(counters.drops[i]) + " ";
            }
        }
        return s;
    }();
    // The ARP request the kernel sent taught the neighbour table the kernel's MAC.
    EXPECT_EQ(neighbors.lookup(engine::ip_address::v4(kernel4)), report.kernel_mac);

    // Now the other way: the neighbour table asks, the namespace answers with an ARP reply,
    // which is an exception (for the kernel) that the worker also learns from.
    engine::neighbor_table fresh(nc);
    rte_mbuf* pending = rte_pktmbuf_alloc(g_pool);
    ASSERT_NE(pending, nullptr);
    const engine::resolution r = fresh.resolve(engine::ip_address::v4(kernel4), pending, now_ns());
    ASSERT_EQ(r.status, engine::resolve_status::held);
    ASSERT_TRUE(r.request_due);
    rte_mbuf* request = rte_pktmbuf_alloc(g_pool);
    ASSERT_NE(request, nullptr);
    auto* out = reinterpret_cast<std::uint8_t*>(rte_pktmbuf_append(request, 60));
    ASSERT_EQ(fresh.write_request(r.request_target, std::span(out, 60)), 60u);
    ASSERT_EQ(rte_eth_tx_burst(_port, 0, &request, 1), 1);
    std::size_t got = 0;
    rte_mbuf* released_pending = nullptr;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (got == 0 && std::chrono::steady_clock::now() < deadline) {
        const std::uint16_t n = rte_eth_rx_burst(_port, 0, burst.data(), burst.size());
        cl.classify<false>(std::span(burst.data(), n), meta, counters);
        for (std::uint16_t i = 0; i < n; ++i) {
            if (meta[i].v == verdict::exception && meta[i].arp_op == 2 && got == 0) {
                std::array<rte_mbuf*, engine::neighbor_table::max_held> rel{};
                got = fresh.learn(meta[i].tuple.src, meta[i].src_mac, now_ns(), rel);
                released_pending = rel[0];
            }
            rte_pktmbuf_free(burst[i]);
        }
        if (n == 0) {
            std::this_thread::sleep_for(std::chrono::microseconds(200));
        }
    }
    ASSERT_EQ(got, 1u) << "no ARP reply from the namespace to the neighbour table's request";
    EXPECT_EQ(released_pending, pending) << "the held packet comes back to be sent";
    rte_pktmbuf_free(released_pending);
    EXPECT_EQ(fresh.lookup(engine::ip_address::v4(kernel4)), report.kernel_mac);
}

} // namespace

int main(int argc, char** argv) {
    ::testing::InitGoogleTest(&argc, argv);
    ::testing::AddGlobalTestEnvironment(new eal_environment); // gtest owns it
    return RUN_ALL_TESTS();
}
