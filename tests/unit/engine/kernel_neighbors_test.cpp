// The rtnetlink neighbour codec of dataplane/engine/kernel_neighbors: requests checked byte for
// byte against the kernel's layout (little-endian x86-64), and datagrams as the kernel sends
// them (dump parts, notifications, acknowledgements, refusals, malformed input) parsed.
#include "dataplane/engine/kernel_neighbors.hpp"

#include <gtest/gtest.h>

#include <array>
#include <cstdint>
#include <initializer_list>
#include <vector>

namespace {

using kwik::engine::build_neighbor_dump;
using kwik::engine::build_neighbor_use;
using kwik::engine::ip_address;
using kwik::engine::kernel_neighbor;
using kwik::engine::mac_address;
using kwik::engine::parse_neighbor_messages;

// Values from linux/rtnetlink.h, linux/neighbour.h and linux/netlink.h, spelt out so the test
// does not borrow the code's constants.
constexpr std::uint16_t rtm_newneigh = 28, rtm_delneigh = 29, rtm_getneigh = 30;
constexpr std::uint16_t nlmsg_error = 2, nlmsg_done = 3;
constexpr std::uint16_t nda_dst = 1, nda_lladdr = 2, nda_probes = 4;
constexpr std::uint16_t nud_incomplete = 0x01, nud_reachable = 0x02, nud_stale = 0x04, nud_failed = 0x20,
                        nud_noarp = 0x40, nud_permanent = 0x80;

struct bytes {
    std::vector<std::uint8_t> b;
    void u8(std::uint8_t v) { b.push_back(v); }
    void u16(std::uint16_t v) { b.insert(b.end(), {std::uint8_t(v), std::uint8_t(v >> 8)}); }
    void u32(std::uint32_t v) {
        b.insert(b.end(), {std::uint8_t(v), std::uint8_t(v >> 8), std::uint8_t(v >> 16), std::uint8_t(v >> 24)});
    }
    void raw(std::initializer_list<std::uint8_t> v) { b.insert(b.end(), v); }
    void pad() {
        while (b.size() % 4 != 0) {
            b.push_back(0);
        }
    }
};

// One netlink message: header, then body (already padded by the caller where it matters).
void message(bytes& out, std::uint16_t type, std::uint32_t seq, const std::vector<std::uint8_t>& body) {
    out.u32(static_cast<std::uint32_t>(16 + body.size()));
    out.u16(type);
    out.u16(0);
    out.u32(seq);
    out.u32(0);
    out.b.insert(out.b.end(), body.begin(), body.end());
    out.pad();
}

// ndmsg: family, 3 pad, ifindex (s32), state (u16), flags, type; then attributes.
std::vector<std::uint8_t> neigh(std::uint8_t family, std::uint32_t ifindex, std::uint16_t state,
                                std::initializer_list<std::pair<std::uint16_t, std::vector<std::uint8_t>>> attrs) {
    bytes b;
    b.u8(family);
    b.raw({0, 0, 0});
    b.u32(ifindex);
    b.u16(state);
    b.u8(0);
    b.u8(1);
    for (const auto& [type, payload] : attrs) {
        b.u16(static_cast<std::uint16_t>(4 + payload.size()));
        b.u16(type);
        b.b.insert(b.b.end(), payload.begin(), payload.end());
        b.pad();
    }
    return b.b;
}

std::vector<std::uint8_t> error_body(std::int32_t err) {
    bytes b;
    b.u32(static_cast<std::uint32_t>(err));
    for (int i = 0; i < 16; ++i) { // the offending request's header
        b.u8(0);
    }
    return b.b;
}

const std::vector<std::uint8_t> v4_peer{10, 79, 0, 3};
const std::vector<std::uint8_t> v6_peer{0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2};
const std::vector<std::uint8_t> mac_a{0x02, 0x11, 0x22, 0x33, 0x44, 0x55};
const std::vector<std::uint8_t> mac_b{0x02, 0xaa, 0xbb, 0xcc, 0xdd, 0xee};

TEST(kernel_neighbors, dump_request_layout) {
    std::array<std::uint8_t, 64> out{};
    ASSERT_EQ(build_neighbor_dump(7, out), 28u);
    const std::array<std::uint8_t, 28> expected{
        28, 0, 0, 0,  rtm_getneigh, 0, 0x01, 0x03, // len, type, NLM_F_REQUEST | NLM_F_ROOT | NLM_F_MATCH
        7,  0, 0, 0,  0, 0, 0, 0,                  // seq, pid
        0,  0, 0, 0,  0, 0, 0, 0, 0, 0, 0, 0};     // ndmsg: AF_UNSPEC, every interface
    EXPECT_TRUE(std::equal(expected.begin(), expected.end(), out.begin()));
    std::array<std::uint8_t, 27> small{};
    EXPECT_EQ(build_neighbor_dump(7, small), 0u);
}

TEST(kernel_neighbors, use_request_ipv4) {
    std::array<std::uint8_t, 64> out{};
    ASSERT_EQ(build_neighbor_use(9, 5, ip_address::v4(v4_peer.data()), out), 36u);
    const std::array<std::uint8_t, 36> expected{
        36, 0, 0, 0,  rtm_newneigh, 0, 0x05, 0x04, // NLM_F_REQUEST | NLM_F_ACK, NLM_F_CREATE
        9,  0, 0, 0,  0, 0, 0, 0,
        2,  0, 0, 0,  5, 0, 0, 0,                  // AF_INET, ifindex 5
        0,  0,        0x01, 0,                     // NUD_NONE, NTF_USE, type 0
        8,  0, nda_dst, 0, 10, 79, 0, 3};
    EXPECT_TRUE(std::equal(expected.begin(), expected.end(), out.begin()));
    std::array<std::uint8_t, 35> small{};
    EXPECT_EQ(build_neighbor_use(9, 5, ip_address::v4(v4_peer.data()), small), 0u);
}

TEST(kernel_neighbors, use_request_ipv6) {
    std::array<std::uint8_t, 64> out{};
    ASSERT_EQ(build_neighbor_use(10, 300, ip_address::v6(v6_peer.data()), out), 48u);
    EXPECT_EQ(out[0], 48);
    EXPECT_EQ(out[16], 10);                   // AF_INET6
    EXPECT_EQ(out[20] | (out[21] << 8), 300); // ifindex
    EXPECT_EQ(out[26], 0x01);                 // NTF_USE
    EXPECT_EQ(out[28], 20);                   // NDA_DST of 16 bytes
    EXPECT_EQ(out[30], nda_dst);
    EXPECT_TRUE(std::equal(v6_peer.begin(), v6_peer.end(), out.begin() + 32));
}

TEST(kernel_neighbors, use_request_parses_back_as_an_unresolved_entry) {
    std::array<std::uint8_t, 64> out{};
    const std::size_t len = build_neighbor_use(1, 4, ip_address::v4(v4_peer.data()), out);
    std::vector<kernel_neighbor> got;
    const auto r = parse_neighbor_messages({out.data(), len}, got);
    ASSERT_EQ(r.neighbors, 1u);
    EXPECT_FALSE(r.malformed);
    EXPECT_EQ(got[0].ifindex, 4u);
    EXPECT_EQ(got[0].ip, ip_address::v4(v4_peer.data()));
    EXPECT_FALSE(got[0].has_mac);
    EXPECT_FALSE(got[0].usable());
}

TEST(kernel_neighbors, parses_a_dump_with_both_families_and_skips_the_rest) {
    bytes d;
    message(d, rtm_newneigh, 1, neigh(2, 3, nud_reachable, {{nda_dst, v4_peer}, {nda_lladdr, mac_a}, {nda_probes, {1, 0, 0, 0}}}));
    message(d, rtm_newneigh, 1, neigh(10, 3, nud_stale, {{nda_dst, v6_peer}, {nda_lladdr, mac_b}}));
    message(d, rtm_newneigh, 1, neigh(2, 3, nud_incomplete, {{nda_dst, {10, 79, 0, 9}}}));
    message(d, rtm_newneigh, 1, neigh(7, 3, nud_permanent, {{nda_lladdr, mac_a}})); // AF_BRIDGE FDB: skipped
    message(d, rtm_newneigh, 1, neigh(2, 3, nud_permanent, {{nda_lladdr, mac_a}})); // no NDA_DST: skipped
    message(d, 24, 1, {0, 0, 0, 0});                                                  // RTM_NEWROUTE: skipped
    message(d, nlmsg_done, 1, {0, 0, 0, 0});
    std::vector<kernel_neighbor> got;
    const auto r = parse_neighbor_messages(d.b, got);
    EXPECT_FALSE(r.malformed);
    EXPECT_TRUE(r.dump_done);
    EXPECT_EQ(r.errors, 0u);
    ASSERT_EQ(r.neighbors, 3u);
    ASSERT_EQ(got.size(), 3u);
    EXPECT_EQ(got[0].ip, ip_address::v4(v4_peer.data()));
    EXPECT_EQ(got[0].mac, mac_address::from(mac_a.data()));
    EXPECT_EQ(got[0].state, nud_reachable);
    EXPECT_TRUE(got[0].usable());
    EXPECT_EQ(got[1].ip, ip_address::v6(v6_peer.data()));
    EXPECT_EQ(got[1].mac, mac_address::from(mac_b.data()));
    EXPECT_TRUE(got[1].usable());
    EXPECT_EQ(got[2].ip, ip_address::v4(std::uint32_t{0x0A4F0009}));
    EXPECT_FALSE(got[2].has_mac);
    EXPECT_FALSE(got[2].usable());
}

TEST(kernel_neighbors, usable_states_only) {
    struct row {
        std::uint16_t type, state;
        std::vector<std::uint8_t> mac;
        bool usable;
    };
    const std::vector<row> rows{
        {rtm_newneigh, nud_reachable, mac_a, true},
        {rtm_newneigh, nud_stale, mac_a, true},
        {rtm_newneigh, 0x08 /* DELAY */, mac_a, true},
        {rtm_newneigh, 0x10 /* PROBE */, mac_a, true},
        {rtm_newneigh, nud_permanent, mac_a, true},
        {rtm_newneigh, nud_failed, mac_a, false},
        {rtm_newneigh, nud_noarp, mac_a, false},
        {rtm_newneigh, nud_reachable, {0, 0, 0, 0, 0, 0}, false}, // a zero MAC
        {rtm_newneigh, nud_reachable, {1, 2, 3, 4}, false},       // not Ethernet: no MAC taken
        {rtm_delneigh, nud_reachable, mac_a, false},
    };
    for (const row& t : rows) {
        bytes d;
        message(d, t.type, 0, neigh(2, 3, t.state, {{nda_dst, v4_peer}, {nda_lladdr, t.mac}}));
        std::vector<kernel_neighbor> got;
        ASSERT_EQ(parse_neighbor_messages(d.b, got).neighbors, 1u);
        EXPECT_EQ(got[0].usable(), t.usable) << "type " << t.type << " state " << t.state;
        EXPECT_EQ(got[0].removed, t.type == rtm_delneigh);
    }
}

TEST(kernel_neighbors, acknowledgements_and_refusals) {
    bytes d;
    message(d, nlmsg_error, 4, error_body(0));   // acknowledged
    message(d, nlmsg_error, 5, error_body(-22)); // EINVAL
    message(d, nlmsg_error, 6, error_body(-19)); // ENODEV
    std::vector<kernel_neighbor> got;
    const auto r = parse_neighbor_messages(d.b, got);
    EXPECT_EQ(r.errors, 2u);
    EXPECT_EQ(r.last_error, 19);
    EXPECT_EQ(r.last_error_seq, 6u);
    EXPECT_FALSE(r.malformed);
    EXPECT_FALSE(r.dump_done);
    EXPECT_TRUE(got.empty());
}

TEST(kernel_neighbors, malformed_input_stops_with_what_came_before) {
    bytes good;
    message(good, rtm_newneigh, 0, neigh(2, 3, nud_reachable, {{nda_dst, v4_peer}, {nda_lladdr, mac_a}}));

    bytes long_header = good; // a second message claiming more bytes than the datagram holds
    long_header.u32(200);
    long_header.u16(rtm_newneigh);
    long_header.raw({0, 0, 0, 0, 0, 0, 0, 0, 0, 0});
    bytes short_header = good; // a header below its own size
    short_header.u32(8);
    short_header.raw({28, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0});
    bytes trailing = good; // bytes that cannot be a message
    trailing.raw({1, 2});
    bytes short_ndmsg; // a neighbour message without its ndmsg
    message(short_ndmsg, rtm_newneigh, 0, {2, 0, 0, 0});
    bytes bad_attr; // an attribute running past its message
    {
        std::vector<std::uint8_t> body = neigh(2, 3, nud_reachable, {{nda_dst, v4_peer}});
        body[12] = 40;
        message(bad_attr, rtm_newneigh, 0, body);
    }
    bytes short_error;
    message(short_error, nlmsg_error, 0, {0, 0});

    const std::vector<std::pair<const char*, const bytes*>> cases{
        {"long header", &long_header}, {"short header", &short_header}, {"trailing bytes", &trailing},
        {"short ndmsg", &short_ndmsg}, {"attribute overrun", &bad_attr},  {"short error", &short_error}};
    for (const auto& [name, d] : cases) {
        std::vector<kernel_neighbor> got;
        const auto r = parse_neighbor_messages(d->b, got);
        EXPECT_TRUE(r.malformed) << name;
        const std::size_t before = d == &long_header || d == &short_header || d == &trailing ? 1 : 0;
        EXPECT_EQ(got.size(), before) << name;
    }
    std::vector<kernel_neighbor> got;
    EXPECT_FALSE(parse_neighbor_messages({}, got).malformed);
    EXPECT_TRUE(got.empty());
}

} // namespace
