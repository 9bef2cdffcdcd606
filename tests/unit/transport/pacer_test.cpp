// Token-bucket pacer: burst size, exact spacing at the rate, refill cap, debt, rate 0 = unpaced.
#include <gtest/gtest.h>

#include <cstdint>

#include "dataplane/transport/pacer.hpp"

namespace kwik::transport {
namespace {

constexpr std::uint64_t rate_96m = 96'000'000; // 1200 B every 100 us

TEST(pacer, burst_then_spacing_at_the_rate) {
    pacer p; // 10 * 1200 burst
    EXPECT_EQ(p.burst_bytes(), 12000u);
    time_ns now = 5 * ms;
    for (int i = 0; i < 10; ++i) {
        ASSERT_LE(p.next_send_time(1200, now, rate_96m), now) << "burst packet " << i;
        p.on_sent(1200, now, rate_96m);
    }
    // Bucket empty: each further packet 100 us after the previous one, exactly.
    for (int i = 0; i < 20; ++i) {
        const time_ns next = p.next_send_time(1200, now, rate_96m);
        EXPECT_EQ(next, now + 100 * us) << "packet " << i;
        EXPECT_GT(p.next_send_time(1200, next - 1, rate_96m), next - 1); // not a nanosecond early
        EXPECT_EQ(p.next_send_time(1200, 0, rate_96m), next); // for a timer: the absolute time
        now = next;
        p.on_sent(1200, now, rate_96m);
    }
}

TEST(pacer, partial_refill_waits_only_for_the_rest) {
    pacer p(2400);
    p.on_sent(1200, 0, rate_96m);
    p.on_sent(1200, 0, rate_96m);
    // 40 us later 480 bytes are back: 720 more need 60 us.
    EXPECT_EQ(p.next_send_time(1200, 40 * us, rate_96m), 100 * us);
    // A smaller packet fits already.
    EXPECT_EQ(p.next_send_time(480, 40 * us, rate_96m), 40 * us);
}

TEST(pacer, idle_refills_to_one_burst_only) {
    pacer p(3600);
    time_ns now = 0;
    for (int i = 0; i < 3; ++i) {
        p.on_sent(1200, now, rate_96m);
    }
    now = 10 * sec; // long idle: would be 120 MB of tokens uncapped
    int immediate = 0;
    while (p.next_send_time(1200, now, rate_96m) <= now) {
        p.on_sent(1200, now, rate_96m);
        ++immediate;
        ASSERT_LT(immediate, 100);
    }
    EXPECT_EQ(immediate, 3);
    EXPECT_EQ(p.next_send_time(1200, now, rate_96m), now + 100 * us);
}

TEST(pacer, rate_zero_is_unpaced_and_refills) {
    pacer p(2400);
    for (int i = 0; i < 50; ++i) {
        EXPECT_EQ(p.next_send_time(1200, 7, 0), 7u);
        p.on_sent(1200, 7, 0);
    }
    // Paced again from a full bucket.
    EXPECT_LE(p.next_send_time(1200, 7, rate_96m), 7u);
    p.on_sent(1200, 7, rate_96m);
    p.on_sent(1200, 7, rate_96m);
    EXPECT_EQ(p.next_send_time(1200, 7, rate_96m), 7 + 100 * us);
}

TEST(pacer, a_new_rate_applies_to_the_deficit) {
    pacer p(1200);
    p.on_sent(1200, 0, rate_96m);
    EXPECT_EQ(p.next_send_time(1200, 0, rate_96m), 100 * us);
    EXPECT_EQ(p.next_send_time(1200, 0, 2 * rate_96m), 50 * us);
    EXPECT_EQ(p.next_send_time(1200, 20 * us, rate_96m / 2), 200 * us);
    // A send records the tokens left; the deficit after it is paid at the rate of the moment.
    p.on_sent(0, 50 * us, rate_96m); // 600 B refilled at 96 Mbit/s
    EXPECT_EQ(p.next_send_time(1200, 50 * us, 2 * rate_96m), 75 * us);
}

TEST(pacer, sending_early_is_paid_back) {
    pacer p(1200);
    p.on_sent(1200, 0, rate_96m);
    p.on_sent(1200, 0, rate_96m); // ignored the pacer: 1200 B of debt
    EXPECT_EQ(p.next_send_time(1200, 0, rate_96m), 200 * us);
    // A packet larger than the bucket waits for a full bucket, then leaves a debt.
    pacer q(1200);
    EXPECT_EQ(q.next_send_time(3000, 0, rate_96m), 0u);
    q.on_sent(3000, 0, rate_96m);
    EXPECT_EQ(q.next_send_time(1200, 0, rate_96m), 250 * us); // 1800 B debt + 1200 B
}

TEST(pacer, long_run_never_faster_than_the_rate) {
    // 1200 B at 666,666,666 bit/s take 14400.0000144 ns: waits round up to whole ns, and the
    // surplus stays in the bucket, so the long-run rate is exact and never above the target.
    const std::uint64_t rate = 666'666'666;
    pacer p(2400);
    time_ns now = 0;
    p.on_sent(1200, now, rate);
    p.on_sent(1200, now, rate);
    const int n = 100000;
    for (int i = 0; i < n; ++i) {
        now = std::max(now, p.next_send_time(1200, now, rate));
        p.on_sent(1200, now, rate);
    }
    const double ideal_ns = static_cast<double>(n) * 1200 * 8 * 1e9 / static_cast<double>(rate);
    EXPECT_GE(static_cast<double>(now), ideal_ns - 2400.0 * 8 * 1e9 / static_cast<double>(rate));
    EXPECT_LE(static_cast<double>(now), ideal_ns * 1.0001);
}

TEST(pacer, no_overflow_at_high_rates_and_long_gaps) {
    pacer p(64 * 1024);
    const std::uint64_t rate = 400'000'000'000ull; // 400 Gbit/s
    p.on_sent(64 * 1024, 0, rate);
    EXPECT_LE(p.next_send_time(64 * 1024, 1'000'000 * sec, rate), 1'000'000 * sec);
    const time_ns at = p.next_send_time(64 * 1024, 0, rate);
    EXPECT_EQ(at, (64ull * 1024 * 8 * 1'000'000'000 + rate - 1) / rate); // 1311 ns
}

} // namespace
} // namespace kwik::transport
