// Adaptive polling's back-off (dataplane/engine/idle_backoff.hpp): no sleep before `patience`
// empty passes, then sleeps doubling from first_sleep to the maximum, cut at the next due work,
// and any pass with work starting over.
#include <gtest/gtest.h>

#include <vector>

#include "dataplane/engine/idle_backoff.hpp"

namespace {

using namespace kwik;
using engine::idle_backoff;
using transport::time_ns;
using transport::us;

constexpr time_ns never = transport::never;

TEST(idle_backoff, sleeps_only_after_patience_then_doubles_to_the_maximum) {
    idle_backoff b(40 * us, 3);
    std::vector<time_ns> sleeps;
    for (int i = 0; i < 9; ++i) {
        sleeps.push_back(b.after_pass(false, 1000 * us, never));
    }
    EXPECT_EQ(sleeps, (std::vector<time_ns>{0, 0, 0, 4 * us, 8 * us, 16 * us, 32 * us, 40 * us, 40 * us}));
}

TEST(idle_backoff, work_starts_over) {
    idle_backoff b(200 * us, 2);
    (void)b.after_pass(false, 0, never);
    (void)b.after_pass(false, 0, never);
    EXPECT_EQ(b.after_pass(false, 0, never), 4 * us);
    EXPECT_EQ(b.after_pass(false, 0, never), 8 * us);
    EXPECT_EQ(b.after_pass(true, 0, never), 0u) << "a received packet";
    EXPECT_EQ(b.after_pass(false, 0, never), 0u) << "patience again";
    EXPECT_EQ(b.after_pass(false, 0, never), 0u);
    EXPECT_EQ(b.after_pass(false, 0, never), 4 * us) << "from the first step again";
}

TEST(idle_backoff, never_sleeps_past_the_next_due_work) {
    idle_backoff b(200 * us, 0);
    const time_ns now = 5'000 * us;
    EXPECT_EQ(b.after_pass(false, now, now + 3 * us), 3 * us) << "a timer due in 3 us cuts the 4 us step";
    for (int i = 0; i < 10; ++i) {
        (void)b.after_pass(false, now, never); // the step grows to the maximum
    }
    EXPECT_EQ(b.after_pass(false, now, now + 50 * us), 50 * us);
    EXPECT_EQ(b.after_pass(false, now, now), 0u) << "due now: poll at once";
    EXPECT_EQ(b.after_pass(false, now, now - 1), 0u) << "overdue";
    EXPECT_EQ(b.after_pass(false, now, never), 200 * us);
}

TEST(idle_backoff, a_maximum_below_the_first_step_is_raised_to_it) {
    idle_backoff b(1 * us, 0);
    EXPECT_EQ(b.max_sleep(), idle_backoff::first_sleep);
    EXPECT_EQ(b.after_pass(false, 0, never), idle_backoff::first_sleep);
    EXPECT_EQ(b.after_pass(false, 0, never), idle_backoff::first_sleep);
}

} // namespace
