// The worker's neighbour table (dataplane/engine/neighbor_table.*): learning and MAC changes,
// resolution through on-link prefixes and gateways, holding packets and the per-destination
// request rate limit, eviction of the least recently confirmed entry, sweeping of stale and
// unanswered entries (backward-shift deletion checked against a model), and the exact bytes of
// the ARP requests and neighbour solicitations it writes. No EAL: mbufs are opaque pointers.
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <map>
#include <random>
#include <set>
#include <vector>

#include "dataplane/engine/neighbor_table.hpp"

namespace kwik::engine {
namespace {

using transport::ms;
using transport::sec;

constexpr mac_address our_mac{{0x02, 0x00, 0x00, 0x00, 0x00, 0x01}};
constexpr mac_address peer_mac{{0x02, 0xAA, 0xBB, 0xCC, 0xDD, 0x01}};
constexpr mac_address other_mac{{0x02, 0xAA, 0xBB, 0xCC, 0xDD, 0x02}};
constexpr mac_address router_mac{{0x02, 0x52, 0x4F, 0x55, 0x54, 0x45}};

ip_address v4(std::uint8_t a, std::uint8_t b, std::uint8_t c, std::uint8_t d) {
    return ip_address::v4((std::uint32_t{a} << 24) | (std::uint32_t{b} << 16) | (std::uint32_t{c} << 8) | d);
}

// All eight groups, as written: v6({0xfd00, 0, 0, 0, 0, 0, 0, 1}) is fd00::1.
ip_address v6(std::initializer_list<std::uint16_t> groups) {
    EXPECT_EQ(groups.size(), 8u);
    ip_address a;
    std::size_t i = 0;
    for (const std::uint16_t g : groups) {
        store_be16(&a.bytes[2 * i++], g);
    }
    return a;
}

// Fake mbufs: distinct addresses the table stores and hands back but never dereferences.
struct fake_mbufs {
    std::array<std::uint64_t, 256> storage{};
    rte_mbuf* operator[](std::size_t i) { return reinterpret_cast<rte_mbuf*>(&storage[i]); }
};

neighbor_config base_config() {
    neighbor_config c;
    c.mac = our_mac;
    EXPECT_TRUE(c.add_interface(v4(10, 0, 0, 1), 24));
    EXPECT_TRUE(c.add_interface(v4(192, 168, 7, 1), 24));
    EXPECT_TRUE(c.add_interface(v6({0xfd00, 0, 0, 0, 0, 0, 0, 1}), 64));
    c.gateway_v4 = v4(10, 0, 0, 254);
    c.gateway_v6 = v6({0xfd00, 0, 0, 0, 0, 0, 0, 0xfe});
    c.capacity = 64;
    return c;
}

// ---- configuration ----

TEST(neighbor_config, validate_names_the_field) {
    neighbor_config c = base_config();
    EXPECT_EQ(c.validate(), "");
    neighbor_config bad = c;
    bad.mac = mac_address{};
    EXPECT_NE(bad.validate().find("mac"), std::string_view::npos);
    bad = c;
    bad.mac = broadcast_mac;
    EXPECT_NE(bad.validate().find("mac"), std::string_view::npos);
    bad = c;
    bad.interface_count = 0;
    EXPECT_NE(bad.validate().find("interfaces"), std::string_view::npos);
    bad = c;
    bad.capacity = 4;
    EXPECT_NE(bad.validate().find("capacity"), std::string_view::npos);
    bad = c;
    bad.gateway_v4 = v6({0xfd00, 0, 0, 0, 0, 0, 0, 9});
    EXPECT_NE(bad.validate().find("gateway_v4"), std::string_view::npos);
    bad = c;
    bad.gateway_v6 = v4(1, 2, 3, 4);
    EXPECT_NE(bad.validate().find("gateway_v6"), std::string_view::npos);
    bad = c;
    bad.request_interval = 0;
    EXPECT_NE(bad.validate().find("request_interval"), std::string_view::npos);

    neighbor_config add;
    EXPECT_FALSE(add.add_interface(v4(10, 0, 0, 1), 33));
    EXPECT_FALSE(add.add_interface(v6({0xfd00, 0, 0, 0, 0, 0, 0, 1}), 129));
    EXPECT_FALSE(add.add_interface(v4(0, 0, 0, 0), 8));
    for (std::size_t i = 0; i < max_interface_addresses; ++i) {
        EXPECT_TRUE(add.add_interface(v4(10, 0, static_cast<std::uint8_t>(i), 1), 24));
    }
    EXPECT_FALSE(add.add_interface(v4(10, 1, 0, 1), 24));
}

TEST(neighbor_table, capacity_rounds_up_to_a_power_of_two) {
    neighbor_config c = base_config();
    c.capacity = 100;
    const neighbor_table t(c);
    EXPECT_EQ(t.capacity(), 128u);
    EXPECT_EQ(t.size(), 0u);
}

TEST(prefix, contains) {
    EXPECT_TRUE(prefix_contains({v4(10, 0, 0, 1), 24}, v4(10, 0, 0, 200)));
    EXPECT_FALSE(prefix_contains({v4(10, 0, 0, 1), 24}, v4(10, 0, 1, 1)));
    EXPECT_TRUE(prefix_contains({v4(10, 0, 0, 1), 23}, v4(10, 0, 1, 1)));
    EXPECT_FALSE(prefix_contains({v4(10, 0, 0, 1), 25}, v4(10, 0, 0, 129)));
    EXPECT_TRUE(prefix_contains({v4(10, 0, 0, 1), 0}, v4(200, 1, 2, 3)));
    EXPECT_FALSE(prefix_contains({v4(10, 0, 0, 1), 0}, v6({0xfd00, 0, 0, 0, 0, 0, 0, 1})));
    EXPECT_TRUE(prefix_contains({v4(10, 0, 0, 1), 32}, v4(10, 0, 0, 1)));
    EXPECT_FALSE(prefix_contains({v4(10, 0, 0, 1), 32}, v4(10, 0, 0, 2)));
    EXPECT_TRUE(prefix_contains({v6({0xfd00, 0, 0, 0, 0, 0, 0, 1}), 64}, v6({0xfd00, 0, 0, 0, 9, 9, 9, 9})));
    EXPECT_FALSE(prefix_contains({v6({0xfd00, 0, 0, 0, 0, 0, 0, 1}), 64}, v6({0xfd00, 0, 0, 1, 0, 0, 0, 1})));
    EXPECT_FALSE(prefix_contains({v6({0xfd00, 0, 0, 0, 0, 0, 0, 1}), 64}, v4(10, 0, 0, 1)));
}

// ---- learning ----

TEST(neighbor_table, learn_lookup_confirm_and_mac_change) {
    neighbor_table t(base_config());
    std::array<rte_mbuf*, neighbor_table::max_held> released{};
    EXPECT_FALSE(t.lookup(v4(10, 0, 0, 5)).has_value());
    EXPECT_EQ(t.learn(v4(10, 0, 0, 5), peer_mac, 1 * sec, released), 0u);
    ASSERT_TRUE(t.lookup(v4(10, 0, 0, 5)).has_value());
    EXPECT_EQ(*t.lookup(v4(10, 0, 0, 5)), peer_mac);
    EXPECT_EQ(t.size(), 1u);
    EXPECT_EQ(t.counters().learned, 1u);

    EXPECT_EQ(t.learn(v4(10, 0, 0, 5), peer_mac, 2 * sec, released), 0u);
    EXPECT_EQ(t.counters().confirmed, 1u);
    EXPECT_EQ(t.learn(v4(10, 0, 0, 5), other_mac, 3 * sec, released), 0u);
    EXPECT_EQ(t.counters().mac_changed, 1u);
    EXPECT_EQ(*t.lookup(v4(10, 0, 0, 5)), other_mac);
    EXPECT_EQ(t.size(), 1u);

    // IPv4 and IPv6 keys do not collide: ::a00:5 is not 10.0.0.5.
    ip_address compat;
    compat.bytes[12] = 10;
    compat.bytes[15] = 5;
    EXPECT_FALSE(t.lookup(compat).has_value());
}

TEST(neighbor_table, learn_ignores_what_cannot_be_a_neighbour) {
    neighbor_table t(base_config());
    std::array<rte_mbuf*, neighbor_table::max_held> released{};
    t.learn(v4(10, 0, 0, 5), broadcast_mac, 1, released);
    t.learn(v4(10, 0, 0, 5), mac_address{{0x01, 0x00, 0x5E, 0, 0, 1}}, 1, released);
    t.learn(v4(10, 0, 0, 5), mac_address{}, 1, released);
    t.learn(v4(0, 0, 0, 0), peer_mac, 1, released);
    t.learn(ip_address{}, peer_mac, 1, released);
    EXPECT_EQ(t.counters().ignored, 5u);
    EXPECT_EQ(t.size(), 0u);
}

// ---- resolution ----

TEST(neighbor_table, resolve_known_destination) {
    neighbor_table t(base_config());
    std::array<rte_mbuf*, neighbor_table::max_held> released{};
    fake_mbufs m;
    t.learn(v4(10, 0, 0, 9), peer_mac, 0, released);
    const resolution r = t.resolve(v4(10, 0, 0, 9), m[0], 1);
    EXPECT_EQ(r.status, resolve_status::resolved);
    EXPECT_EQ(r.mac, peer_mac);
    EXPECT_FALSE(r.request_due);
    EXPECT_EQ(t.counters().held, 0u);
}

// A worker counts all its ports' tables in one place (its worker_counters).
TEST(neighbor_table, tables_can_count_into_one_shared_block) {
    neighbor_counters shared;
    neighbor_table a(base_config(), &shared);
    neighbor_table b(base_config(), &shared);
    std::array<rte_mbuf*, neighbor_table::max_held> released{};
    fake_mbufs m;
    a.learn(v4(10, 0, 0, 9), peer_mac, 0, released);
    b.learn(v4(10, 0, 0, 9), peer_mac, 0, released);
    EXPECT_EQ(b.resolve(v4(10, 0, 0, 10), m[0], 1).status, resolve_status::held);
    EXPECT_EQ(shared.learned, 2u);
    EXPECT_EQ(shared.held, 1u);
    EXPECT_EQ(shared.requests, 1u);
    EXPECT_EQ(&a.counters(), &shared);
    EXPECT_EQ(&b.counters(), &shared);
    neighbor_table own(base_config());
    own.learn(v4(10, 0, 0, 9), peer_mac, 0, released);
    EXPECT_EQ(own.counters().learned, 1u);
    EXPECT_EQ(shared.learned, 2u) << "a table without a shared block counts in its own";
    std::array<rte_mbuf*, 8> expired{};
    EXPECT_EQ(b.sweep(10 * sec, expired), 1u); // frees nothing: fake mbufs
}

TEST(neighbor_table, unresolved_destination_holds_packets_and_rate_limits_requests) {
    neighbor_table t(base_config());
    fake_mbufs m;
    const ip_address dst = v4(10, 0, 0, 9);
    const time_ns t0 = 5 * sec;

    resolution r = t.resolve(dst, m[0], t0);
    EXPECT_EQ(r.status, resolve_status::held);
    EXPECT_TRUE(r.request_due);
    EXPECT_EQ(r.request_target, dst);
    r = t.resolve(dst, m[1], t0 + 10 * ms);
    EXPECT_EQ(r.status, resolve_status::held);
    EXPECT_FALSE(r.request_due) << "a second request within the interval";
    r = t.resolve(dst, m[2], t0 + 999 * ms);
    EXPECT_EQ(r.status, resolve_status::held);
    EXPECT_FALSE(r.request_due);
    // The hold queue is full: dropped and counted by the caller under neighbor_hold_full.
    r = t.resolve(dst, m[3], t0 + 999 * ms);
    EXPECT_EQ(r.status, resolve_status::dropped);
    EXPECT_EQ(r.reason, kdp::drop_reason::neighbor_hold_full);
    EXPECT_FALSE(r.request_due);
    // One interval after the first request, the next packet asks again, held or not.
    r = t.resolve(dst, m[4], t0 + 1 * sec);
    EXPECT_EQ(r.status, resolve_status::dropped);
    EXPECT_TRUE(r.request_due);
    EXPECT_EQ(r.request_target, dst);
    r = t.resolve(dst, m[5], t0 + 1500 * ms);
    EXPECT_FALSE(r.request_due);
    r = t.resolve(dst, m[6], t0 + 2 * sec);
    EXPECT_TRUE(r.request_due);
    EXPECT_EQ(t.counters().requests, 3u);
    EXPECT_EQ(t.counters().held, 3u);
    EXPECT_FALSE(t.lookup(dst).has_value()) << "an incomplete entry has no MAC";

    // The answer releases the held packets in the order they came.
    std::array<rte_mbuf*, neighbor_table::max_held> released{};
    ASSERT_EQ(t.learn(dst, peer_mac, t0 + 2100 * ms, released), 3u);
    EXPECT_EQ(released[0], m[0]);
    EXPECT_EQ(released[1], m[1]);
    EXPECT_EQ(released[2], m[2]);
    EXPECT_EQ(t.counters().resolved, 1u);
    EXPECT_EQ(t.counters().released, 3u);
    EXPECT_EQ(t.counters().learned, 0u) << "completing an entry is not a new one";
    r = t.resolve(dst, m[7], t0 + 2200 * ms);
    EXPECT_EQ(r.status, resolve_status::resolved);
    EXPECT_EQ(r.mac, peer_mac);
}

TEST(neighbor_table, rate_limit_is_per_destination) {
    neighbor_table t(base_config());
    fake_mbufs m;
    EXPECT_TRUE(t.resolve(v4(10, 0, 0, 9), m[0], sec).request_due);
    EXPECT_TRUE(t.resolve(v4(10, 0, 0, 10), m[1], sec).request_due);
    EXPECT_TRUE(t.resolve(v6({0xfd00, 0, 0, 0, 0, 0, 0, 9}), m[2], sec).request_due);
    EXPECT_FALSE(t.resolve(v4(10, 0, 0, 9), m[3], sec + 1).request_due);
    EXPECT_EQ(t.counters().requests, 3u);
}

TEST(neighbor_table, off_link_destinations_go_through_the_gateway) {
    neighbor_table t(base_config());
    fake_mbufs m;
    std::array<rte_mbuf*, neighbor_table::max_held> released{};
    const ip_address remote = v4(203, 0, 113, 7);
    EXPECT_EQ(t.next_hop(remote), v4(10, 0, 0, 254));
    EXPECT_EQ(t.next_hop(v4(192, 168, 7, 33)), v4(192, 168, 7, 33));

    resolution r = t.resolve(remote, m[0], sec);
    EXPECT_EQ(r.status, resolve_status::held);
    EXPECT_TRUE(r.request_due);
    EXPECT_EQ(r.request_target, v4(10, 0, 0, 254)) << "ARP for the gateway, not the remote host";
    r = t.resolve(v4(198, 51, 100, 1), m[1], sec);
    EXPECT_EQ(r.status, resolve_status::held);
    EXPECT_FALSE(r.request_due) << "another remote host waits on the same gateway entry";

    ASSERT_EQ(t.learn(v4(10, 0, 0, 254), router_mac, sec + 1, released), 2u);
    EXPECT_EQ(released[0], m[0]);
    EXPECT_EQ(released[1], m[1]);
    r = t.resolve(remote, m[2], sec + 2);
    EXPECT_EQ(r.status, resolve_status::resolved);
    EXPECT_EQ(r.mac, router_mac);

    // An entry for the host itself, learned from its packets, wins over the gateway's.
    t.learn(remote, other_mac, sec + 3, released);
    r = t.resolve(remote, m[3], sec + 4);
    EXPECT_EQ(r.status, resolve_status::resolved);
    EXPECT_EQ(r.mac, other_mac);

    const ip_address remote6 = v6({0x2001, 0xdb8, 0, 0, 0, 0, 0, 1});
    r = t.resolve(remote6, m[4], sec);
    EXPECT_EQ(r.request_target, v6({0xfd00, 0, 0, 0, 0, 0, 0, 0xfe}));
}

TEST(neighbor_table, no_route_without_a_gateway) {
    neighbor_config c = base_config();
    c.gateway_v4 = ip_address{};
    c.gateway_v6 = ip_address{};
    neighbor_table t(c);
    fake_mbufs m;
    const resolution r = t.resolve(v4(203, 0, 113, 7), m[0], sec);
    EXPECT_EQ(r.status, resolve_status::dropped);
    EXPECT_EQ(r.reason, kdp::drop_reason::no_route);
    EXPECT_FALSE(r.request_due);
    EXPECT_EQ(t.resolve(v6({0x2001, 0xdb8, 0, 0, 0, 0, 0, 1}), m[1], sec).reason, kdp::drop_reason::no_route);
    EXPECT_FALSE(t.next_hop(v4(203, 0, 113, 7)).has_value());
    EXPECT_EQ(t.size(), 0u);
}

// ---- eviction ----

TEST(neighbor_table, full_table_evicts_the_least_recently_confirmed) {
    neighbor_config c = base_config();
    c.capacity = 16; // = max_probe: every window is the whole table, so eviction is global LRU
    neighbor_table t(c);
    std::array<rte_mbuf*, neighbor_table::max_held> released{};
    for (std::uint8_t i = 1; i <= 16; ++i) {
        t.learn(v4(10, 0, 0, i), peer_mac, i * sec, released);
    }
    EXPECT_EQ(t.size(), 16u);
    EXPECT_EQ(t.counters().evicted, 0u);
    t.learn(v4(10, 0, 0, 3), peer_mac, 100 * sec, released); // confirmed: now the youngest

    t.learn(v4(10, 0, 0, 101), peer_mac, 101 * sec, released);
    EXPECT_FALSE(t.lookup(v4(10, 0, 0, 1)).has_value());
    t.learn(v4(10, 0, 0, 102), peer_mac, 102 * sec, released);
    EXPECT_FALSE(t.lookup(v4(10, 0, 0, 2)).has_value());
    t.learn(v4(10, 0, 0, 103), peer_mac, 103 * sec, released);
    EXPECT_TRUE(t.lookup(v4(10, 0, 0, 3)).has_value()) << "refreshed entries survive";
    EXPECT_FALSE(t.lookup(v4(10, 0, 0, 4)).has_value());
    EXPECT_EQ(t.size(), 16u);
    EXPECT_EQ(t.counters().evicted, 3u);
    for (std::uint8_t i = 101; i <= 103; ++i) {
        EXPECT_EQ(t.lookup(v4(10, 0, 0, i)), peer_mac);
    }
    for (std::uint8_t i = 5; i <= 16; ++i) {
        EXPECT_EQ(t.lookup(v4(10, 0, 0, i)), peer_mac) << int{i};
    }
}

TEST(neighbor_table, entries_holding_packets_are_never_evicted) {
    neighbor_config c = base_config();
    c.capacity = 16;
    neighbor_table t(c);
    fake_mbufs m;
    for (std::uint8_t i = 0; i < 16; ++i) {
        ASSERT_EQ(t.resolve(v4(10, 0, 0, static_cast<std::uint8_t>(i + 1)), m[i], sec).status,
                  resolve_status::held);
    }
    const resolution r = t.resolve(v4(10, 0, 0, 99), m[16], sec);
    EXPECT_EQ(r.status, resolve_status::dropped);
    EXPECT_EQ(r.reason, kdp::drop_reason::neighbor_table_full);
    std::array<rte_mbuf*, neighbor_table::max_held> released{};
    EXPECT_EQ(t.learn(v4(10, 0, 0, 99), peer_mac, sec, released), 0u);
    EXPECT_FALSE(t.lookup(v4(10, 0, 0, 99)).has_value());
    EXPECT_EQ(t.counters().evicted, 0u);

    // Unanswered: the sweep after hold_time gives back every held packet exactly once.
    std::array<rte_mbuf*, 64> expired{};
    std::size_t n = 0;
    for (int pass = 0; pass < 4; ++pass) {
        n += t.sweep(sec + c.hold_time, std::span(expired).subspan(n), 16);
    }
    ASSERT_EQ(n, 16u);
    std::set<rte_mbuf*> seen(expired.begin(), expired.begin() + 16);
    EXPECT_EQ(seen.size(), 16u);
    for (std::size_t i = 0; i < 16; ++i) {
        EXPECT_TRUE(seen.count(m[i])) << i;
    }
    EXPECT_EQ(t.size(), 0u);
    EXPECT_EQ(t.counters().expired, 16u);
}

// ---- sweeping ----

TEST(neighbor_table, sweep_removes_stale_and_unanswered_entries_only) {
    neighbor_config c = base_config();
    neighbor_table t(c);
    fake_mbufs m;
    std::array<rte_mbuf*, neighbor_table::max_held> released{};
    t.learn(v4(10, 0, 0, 1), peer_mac, 0, released);                  // goes stale
    t.learn(v4(10, 0, 0, 2), peer_mac, 250 * sec, released);          // stays
    t.resolve(v4(10, 0, 0, 3), m[0], 301 * sec - c.hold_time);        // unanswered, expires
    t.resolve(v4(10, 0, 0, 3), m[1], 301 * sec - c.hold_time + 1);
    t.resolve(v4(10, 0, 0, 4), m[2], 300 * sec);                      // young, stays
    ASSERT_EQ(t.size(), 4u);

    std::array<rte_mbuf*, 8> expired{};
    const std::size_t n = t.sweep(301 * sec, expired, t.capacity());
    ASSERT_EQ(n, 2u);
    EXPECT_EQ(expired[0], m[0]);
    EXPECT_EQ(expired[1], m[1]);
    EXPECT_FALSE(t.lookup(v4(10, 0, 0, 1)).has_value());
    EXPECT_TRUE(t.lookup(v4(10, 0, 0, 2)).has_value());
    EXPECT_EQ(t.size(), 2u);
    EXPECT_EQ(t.counters().expired, 2u);
    // The young incomplete entry still holds its packet; a new request for the expired
    // destination is due at once (its entry, and its rate-limit time, went with it).
    EXPECT_EQ(t.learn(v4(10, 0, 0, 4), peer_mac, 301 * sec, released), 1u);
    EXPECT_EQ(released[0], m[2]);
    EXPECT_TRUE(t.resolve(v4(10, 0, 0, 3), m[3], 301 * sec).request_due);
}

TEST(neighbor_table, sweep_stops_when_the_output_is_full_and_resumes) {
    neighbor_table t(base_config());
    fake_mbufs m;
    for (std::size_t i = 0; i < 3; ++i) {
        t.resolve(v4(10, 0, 0, 50), m[i], 0);
    }
    std::array<rte_mbuf*, 2> small{};
    EXPECT_EQ(t.sweep(10 * sec, small, t.capacity()), 0u) << "three packets do not fit in two";
    EXPECT_EQ(t.size(), 1u);
    std::array<rte_mbuf*, 3> enough{};
    EXPECT_EQ(t.sweep(10 * sec, enough, t.capacity()), 3u);
    EXPECT_EQ(t.size(), 0u);
}

TEST(neighbor_table, sweep_slices_are_bounded) {
    neighbor_config c = base_config();
    c.capacity = 256;
    neighbor_table t(c);
    std::array<rte_mbuf*, neighbor_table::max_held> released{};
    for (std::uint32_t i = 0; i < 100; ++i) {
        t.learn(ip_address::v4(0x0A000100u + i), peer_mac, 0, released);
    }
    std::array<rte_mbuf*, 4> expired{};
    std::size_t slices = 0;
    while (t.size() != 0 && slices < 100) {
        t.sweep(c.stale_time, expired, 16);
        ++slices;
    }
    EXPECT_EQ(t.size(), 0u);
    // 256 slots at 16 visits a slice, removals counted as visits: at most (256 + 100) / 16 + 1.
    EXPECT_LE(slices, 23u);
    EXPECT_GE(slices, 7u) << "a slice visits at most 16 slots";
}

// Random learning, refreshing and sweeping against a map: backward-shift deletion must keep
// every remaining entry reachable.
TEST(neighbor_table, randomised_against_a_model) {
    neighbor_config c = base_config();
    c.capacity = 256;
    c.stale_time = 50 * sec;
    neighbor_table t(c);
    std::map<std::uint32_t, std::pair<mac_address, time_ns>> model;
    std::mt19937 rng(42);
    std::array<rte_mbuf*, neighbor_table::max_held> released{};
    std::array<rte_mbuf*, 4> expired{};
    time_ns now = 0;
    for (int step = 0; step < 20000; ++step) {
        now += sec / 10;
        // 120 keys at most for 256 slots: eviction is possible only if a window of 16 fills.
        const std::uint32_t key = 0x0A000000u + static_cast<std::uint32_t>(rng() % 120) * 7919u;
        const mac_address mac{{0x02, 0, 0, 0, static_cast<std::uint8_t>(rng() % 3), 1}};
        t.learn(ip_address::v4(key), mac, now, released);
        model[key] = {mac, now};
        if (step % 97 == 0) {
            EXPECT_EQ(t.sweep(now, expired, t.capacity()), 0u);
            for (auto it = model.begin(); it != model.end();) {
                it = now - it->second.second >= c.stale_time ? model.erase(it) : std::next(it);
            }
        }
        if (step % 1000 == 999) {
            ASSERT_EQ(t.counters().evicted, 0u) << "the model assumes no eviction";
            ASSERT_EQ(t.size(), model.size()) << "step " << step;
            for (const auto& [k, v] : model) {
                ASSERT_EQ(t.lookup(ip_address::v4(k)), v.first) << "step " << step << " key " << k;
            }
        }
    }
    EXPECT_GT(t.counters().expired, 100u) << "the test must exercise deletion";
}

// ---- requests on the wire ----

std::uint16_t reference_checksum(const std::vector<std::uint8_t>& data) {
    std::uint32_t sum = 0;
    for (std::size_t i = 0; i + 1 < data.size(); i += 2) {
        sum += static_cast<std::uint32_t>(data[i] << 8 | data[i + 1]);
    }
    if (data.size() % 2 != 0) {
        sum += static_cast<std::uint32_t>(data.back() << 8);
    }
    while (sum >> 16) {
        sum = (sum & 0xFFFF) + (sum >> 16);
    }
    return static_cast<std::uint16_t>(~sum);
}

TEST(neighbor_table, arp_request_bytes) {
    neighbor_table t(base_config());
    std::array<std::uint8_t, 128> out{};
    out.fill(0xEE);
    ASSERT_EQ(t.write_request(v4(192, 168, 7, 20), out), 60u);
    const std::vector<std::uint8_t> expected = {
        0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x02, 0x00, 0x00, 0x00, 0x00, 0x01, 0x08, 0x06, // Ethernet
        0x00, 0x01, 0x08, 0x00, 0x06, 0x04, 0x00, 0x01,                                     // Ethernet/IPv4, request
        0x02, 0x00, 0x00, 0x00, 0x00, 0x01, 192, 168, 7, 1,                                 // us, on that prefix
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 192, 168, 7, 20,                                // who has 192.168.7.20
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};                              // padding to 60
    EXPECT_EQ(std::vector<std::uint8_t>(out.begin(), out.begin() + 60), expected);
    EXPECT_EQ(out[60], 0xEE) << "nothing written past the frame";
    // A target on no prefix (the gateway can be anywhere) uses our first IPv4 address.
    ASSERT_EQ(t.write_request(v4(172, 16, 0, 1), out), 60u);
    EXPECT_EQ(out[28], 10);
    EXPECT_EQ(out[31], 1);
    std::array<std::uint8_t, 59> tiny{};
    EXPECT_EQ(t.write_request(v4(10, 0, 0, 2), tiny), 0u);
}

TEST(neighbor_table, arp_request_with_vlan_tag) {
    neighbor_config c = base_config();
    c.vlan_tagged = true;
    c.vlan_tci = 0x2064; // priority 1, VLAN 100
    neighbor_table t(c);
    std::array<std::uint8_t, 128> out{};
    ASSERT_EQ(t.write_request(v4(10, 0, 0, 2), out), 60u);
    EXPECT_EQ(out[12], 0x81);
    EXPECT_EQ(out[13], 0x00);
    EXPECT_EQ(out[14], 0x20);
    EXPECT_EQ(out[15], 0x64);
    EXPECT_EQ(out[16], 0x08);
    EXPECT_EQ(out[17], 0x06);
    EXPECT_EQ(out[18 + 7], 0x01) << "ARP op after the tag";
    EXPECT_EQ(out[18 + 27], 2) << "target 10.0.0.2";
}

TEST(neighbor_table, neighbor_solicitation_bytes) {
    neighbor_table t(base_config());
    std::array<std::uint8_t, 128> out{};
    const ip_address target = v6({0xfd00, 0, 0, 0, 0, 0, 0x1234, 0x5678});
    ASSERT_EQ(t.write_request(target, out), 86u);
    std::vector<std::uint8_t> expected = {
        0x33, 0x33, 0xFF, 0x34, 0x56, 0x78, 0x02, 0x00, 0x00, 0x00, 0x00, 0x01, 0x86, 0xDD, // to ff02::1:ff34:5678
        0x60, 0x00, 0x00, 0x00, 0x00, 0x20, 58, 255,                                       // 32 bytes of ICMPv6
        0xFD, 0x00, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01,                           // from fd00::1
        0xFF, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, 0xFF, 0x34, 0x56, 0x78,               // solicited-node group
        135, 0, 0, 0, 0, 0, 0, 0,                                                          // NS, checksum below
        0xFD, 0x00, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x12, 0x34, 0x56, 0x78,                  // target
        1, 1, 0x02, 0x00, 0x00, 0x00, 0x00, 0x01};                                         // source link-layer
    // The checksum, recomputed here over pseudo-header + message.
    std::vector<std::uint8_t> pseudo(expected.begin() + 22, expected.begin() + 54);
    for (const std::uint8_t b : {0, 0, 0, 32, 0, 0, 0, 58}) {
        pseudo.push_back(b);
    }
    pseudo.insert(pseudo.end(), expected.begin() + 54, expected.end());
    const std::uint16_t sum = reference_checksum(pseudo);
    expected[56] = static_cast<std::uint8_t>(sum >> 8);
    expected[57] = static_cast<std::uint8_t>(sum);
    EXPECT_EQ(std::vector<std::uint8_t>(out.begin(), out.begin() + 86), expected);
}

TEST(neighbor_table, no_request_without_an_address_of_the_family) {
    neighbor_config c;
    c.mac = our_mac;
    ASSERT_TRUE(c.add_interface(v4(10, 0, 0, 1), 24));
    neighbor_table t(c);
    std::array<std::uint8_t, 128> out{};
    EXPECT_EQ(t.write_request(v6({0xfd00, 0, 0, 0, 0, 0, 0, 2}), out), 0u);
}

} // namespace
} // namespace kwik::engine
