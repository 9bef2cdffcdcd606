// perf/gen/pacer: tokens over a simulated TSC give the configured rate, a burst at most, and
// pace by wire bytes for --rate-mbps.
#include <gtest/gtest.h>

#include "perf/gen/pacer.hpp"

namespace kwik::gen {
namespace {

TEST(pacer, packets_per_second_over_a_simulated_second) {
    pacer p;
    const double hz = 2e9; // 2 GHz TSC
    p.configure(1000, hz, 32, 0);
    std::uint64_t granted = 0;
    for (std::uint64_t now = 0; now <= 2'000'000'000; now += 250'000) { // every 125 us
        const std::uint32_t n = p.grant(now, 1, 32);
        p.spend(n);
        granted += n;
    }
    EXPECT_GE(granted, 999u);
    EXPECT_LE(granted, 1001u);
}

TEST(pacer, an_idle_gap_gives_one_burst_not_the_backlog) {
    pacer p;
    p.configure(1e6, 1e9, 32, 0);
    EXPECT_EQ(p.grant(1'000'000'000, 1, 32), 32u); // a second idle: 32, not a million
    p.spend(32);
    EXPECT_EQ(p.grant(1'000'000'000, 1, 32), 0u);
    EXPECT_EQ(p.grant(1'000'010'500, 1, 32), 10u); // 10.5 us at 1 Mpps
}

TEST(pacer, wire_bytes_for_mbps) {
    pacer p;
    const double bytes_per_s = 100e6 / 8; // 100 Mbit/s
    p.configure(bytes_per_s, 1e9, 32 * 1524.0, 0);
    std::uint64_t bytes = 0;
    for (std::uint64_t now = 0; now <= 1'000'000'000; now += 100'000) {
        const std::uint32_t n = p.grant(now, 1524, 32);
        p.spend(n * 1524.0);
        bytes += n * 1524ull;
    }
    EXPECT_NEAR(static_cast<double>(bytes), bytes_per_s, 1524 * 2);
}

TEST(pacer, unpaced_grants_the_whole_burst) {
    pacer p;
    p.configure(0, 1e9, 32, 0);
    EXPECT_TRUE(p.unpaced());
    EXPECT_EQ(p.grant(0, 1, 64), 64u);
}

} // namespace
} // namespace kwik::gen
