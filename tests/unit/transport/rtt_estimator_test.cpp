// RTT estimator: RFC 9002 section 5 arithmetic with exact numbers (min RTT, ack-delay capping
// and its min-RTT guard, the 1/8 and 1/4 EWMAs, the PTO base and its granularity floor).
#include <gtest/gtest.h>

#include "dataplane/transport/rtt_estimator.hpp"

namespace kwik::transport {
namespace {

TEST(rtt_estimator, before_any_sample_uses_initial_rtt) {
    const rtt_estimator r(100 * ms);
    EXPECT_FALSE(r.has_sample());
    EXPECT_EQ(r.smoothed(), 100 * ms);
    EXPECT_EQ(r.variance(), 50 * ms);
    EXPECT_EQ(r.min(), 0u);
    EXPECT_EQ(r.latest(), 0u);
    // 100 + 4 * 50 + 5
    EXPECT_EQ(r.pto_base(1 * ms, 5 * ms), 305 * ms);
}

TEST(rtt_estimator, rfc9002_sequence_exact) {
    rtt_estimator r(100 * ms);

    // First sample: ack delay ignored entirely; smoothed = latest, variance = latest / 2.
    r.on_sample(80 * ms, 3 * ms, 5 * ms);
    EXPECT_TRUE(r.has_sample());
    EXPECT_EQ(r.latest(), 80 * ms);
    EXPECT_EQ(r.min(), 80 * ms);
    EXPECT_EQ(r.smoothed(), 80 * ms);
    EXPECT_EQ(r.variance(), 40 * ms);

    // 100 - 80 >= 4: adjusted = 96. var = (3*40 + |80-96|) / 4 = 34; srtt = (7*80 + 96) / 8 = 82.
    r.on_sample(100 * ms, 4 * ms, 5 * ms);
    EXPECT_EQ(r.latest(), 100 * ms);
    EXPECT_EQ(r.min(), 80 * ms);
    EXPECT_EQ(r.variance(), 34 * ms);
    EXPECT_EQ(r.smoothed(), 82 * ms);

    // ack delay 10 capped at 5; 84 - 80 = 4 < 5, so not subtracted: adjusted = 84.
    // var = (3*34 + 2) / 4 = 26; srtt = (7*82 + 84) / 8 = 82.25.
    r.on_sample(84 * ms, 10 * ms, 5 * ms);
    EXPECT_EQ(r.variance(), 26 * ms);
    EXPECT_EQ(r.smoothed(), 82'250 * us);

    // A new minimum (ack delay never lowers it): min = 60, adjusted = 60 (60 - 60 < 5).
    // var = (3*26 + 22.25) / 4 = 25.0625; srtt = (7*82.25 + 60) / 8 = 79.46875.
    r.on_sample(60 * ms, 7 * ms, 5 * ms);
    EXPECT_EQ(r.min(), 60 * ms);
    EXPECT_EQ(r.latest(), 60 * ms);
    EXPECT_EQ(r.variance(), 25'062'500u);
    EXPECT_EQ(r.smoothed(), 79'468'750u);

    // 79.46875 + 4 * 25.0625 + 5
    EXPECT_EQ(r.pto_base(1 * ms, 5 * ms), 184'718'750u);
}

TEST(rtt_estimator, ack_delay_subtracted_when_it_keeps_sample_above_min) {
    rtt_estimator r;
    r.on_sample(10 * ms, 0, 25 * ms);
    // 30 - 10 = 20 >= 20: adjusted = 10, exactly min.
    r.on_sample(30 * ms, 20 * ms, 25 * ms);
    // var = (3*5 + 0) / 4 = 3.75; srtt = (70 + 10) / 8 = 10.
    EXPECT_EQ(r.smoothed(), 10 * ms);
    EXPECT_EQ(r.variance(), 3'750 * us);
    EXPECT_EQ(r.min(), 10 * ms);
}

TEST(rtt_estimator, pto_base_floors_variance_term_at_granularity) {
    rtt_estimator r;
    r.on_sample(1000, 0, 0); // 1 µs path: variance 500 ns, 4 * var = 2 µs < 1 ms
    EXPECT_EQ(r.pto_base(1 * ms, 5 * ms), 1000 + 1 * ms + 5 * ms);
    EXPECT_EQ(r.pto_base(1000, 0), 1000u + 2000u);
}

} // namespace
} // namespace kwik::transport
