// perf/gen/rate_search: against a model device with a known zero-loss rate, the binary search
// finds it within the resolution; a device that takes everything needs one trial; one that
// loses even at the minimum gives 0; the loss tolerance moves the answer.
#include <gtest/gtest.h>

#include <algorithm>

#include "perf/gen/rate_search.hpp"

namespace kwik::gen {
namespace {

// Delivers everything up to capacity pps and capacity's worth above it, for a 1 s trial.
trial_result model_dut(double rate, double capacity) {
    trial_result t;
    t.rate_pps = rate;
    t.offered = static_cast<std::uint64_t>(rate);
    t.delivered = static_cast<std::uint64_t>(std::min(rate, capacity));
    return t;
}

double run(rate_search& s, double capacity, int* trials = nullptr) {
    int n = 0;
    while (auto r = s.next_rate()) {
        s.record(model_dut(*r, capacity));
        if (++n >= 100) {
            ADD_FAILURE() << "the search does not end";
            break;
        }
    }
    if (trials != nullptr) {
        *trials = n;
    }
    return s.zero_loss_pps();
}

TEST(rate_search, finds_the_capacity_within_the_resolution) {
    for (const double capacity : {12'345.0, 700'000.0, 1'999'999.0, 10'001.0}) {
        rate_search s(10'000, 2'000'000, 0, 0.01);
        double found = 0;
        int trials = 0;
        [&] { found = run(s, capacity, &trials); }();
        EXPECT_LE(found, capacity) << capacity;
        EXPECT_GE(found, capacity - 0.01 * 2'000'000) << capacity;
        // every trial below the capacity passed, every one above failed
        for (const trial_result& t : s.trials()) {
            EXPECT_EQ(s.passes(t), t.rate_pps <= capacity);
        }
        EXPECT_LE(trials, 2 + 18); // max, min, then halvings down to 1 % of 2 M
    }
}

// The generator falls short of the rate asked on every other trial (it offers 60 % then), and a
// trial counts at the rate it attempted: passes and failures come out of order. The search still
// ends, within max_trials, and never reports a rate that failed or is above the device's capacity.
TEST(rate_search, a_generator_falling_short_cannot_keep_the_search_going) {
    for (const double capacity : {150'000.0, 900'000.0, 1'700'000.0}) {
        rate_search s(10'000, 2'000'000, 0, 0.001);
        int n = 0;
        while (auto r = s.next_rate()) {
            const double attempted = (n % 2 == 1) ? *r * 0.6 : *r;
            s.record(model_dut(attempted, capacity));
            ASSERT_LE(++n, static_cast<int>(rate_search::max_trials)) << capacity;
        }
        EXPECT_GT(s.zero_loss_pps(), 0) << capacity;
        EXPECT_LE(s.zero_loss_pps(), capacity) << capacity;
        for (const trial_result& t : s.trials()) {
            if (!s.passes(t)) {
                EXPECT_GT(t.rate_pps, s.zero_loss_pps()) << "a failed rate is never the answer";
            }
        }
    }
}

TEST(rate_search, a_device_taking_everything_needs_one_trial) {
    rate_search s(1000, 50'000, 0, 0.01);
    int trials = 0;
    double found = 0;
    [&] { found = run(s, 1e9, &trials); }();
    EXPECT_EQ(trials, 1);
    EXPECT_EQ(found, 50'000);
}

TEST(rate_search, loss_at_the_minimum_gives_zero) {
    rate_search s(1000, 50'000, 0, 0.01);
    double found = 1;
    [&] { found = run(s, 500, nullptr); }();
    EXPECT_EQ(found, 0);
    EXPECT_EQ(s.trials().size(), 2u);
}

TEST(rate_search, tolerance_admits_that_much_loss) {
    rate_search s(1000, 100'000, 0.1, 0.001);
    double found = 0;
    [&] { found = run(s, 50'000, nullptr); }();
    // 10 % loss allowed: up to 55,555 pps passes (delivered 50,000)
    EXPECT_GT(found, 55'000);
    EXPECT_LE(found, 55'556);
}

TEST(rate_search, nothing_offered_never_passes) {
    rate_search s(1000, 2000, 0.5, 0.01);
    trial_result t;
    t.rate_pps = 2000;
    EXPECT_FALSE(s.passes(t));
}

} // namespace
} // namespace kwik::gen
