// Tests for dataplane/transport/flow_control.hpp: receive credit (limits, violation, update
// timing) and send credit (available, never-decreasing limits, blocked reporting).
#include "dataplane/transport/flow_control.hpp"

#include <gtest/gtest.h>

namespace kwik::transport {
namespace {

TEST(receive_credit_test, limit_and_violation) {
    receive_credit c(100);
    EXPECT_EQ(c.limit(), 100u);
    EXPECT_TRUE(c.on_received(60));
    EXPECT_TRUE(c.on_received(100)); // exactly at the limit is allowed
    EXPECT_FALSE(c.on_received(101));
    EXPECT_EQ(c.received(), 100u); // the violation recorded nothing
    EXPECT_TRUE(c.on_received(40)); // an older, lower offset is fine
    EXPECT_EQ(c.received(), 100u);
}

TEST(receive_credit_test, update_due_after_half_a_window) {
    receive_credit c(100);
    EXPECT_FALSE(c.update_due());
    c.on_consumed(49);
    EXPECT_FALSE(c.update_due());
    EXPECT_EQ(c.next_limit(), 149u);
    c.on_consumed(1);
    EXPECT_TRUE(c.update_due());
    EXPECT_EQ(c.next_limit(), 150u);
    c.on_update_sent(c.next_limit());
    EXPECT_EQ(c.limit(), 150u);
    EXPECT_FALSE(c.update_due());
    EXPECT_TRUE(c.on_received(150));
    EXPECT_FALSE(c.on_received(151));
    // Half a window more since that update.
    c.on_consumed(49);
    EXPECT_FALSE(c.update_due());
    c.on_consumed(1);
    EXPECT_TRUE(c.update_due());
    EXPECT_EQ(c.next_limit(), 200u);
    // Limits never go down.
    c.on_update_sent(120);
    EXPECT_EQ(c.limit(), 150u);
    c.on_update_sent(200);
    EXPECT_EQ(c.limit(), 200u);
    EXPECT_EQ(c.consumed(), 100u);
}

TEST(receive_credit_test, new_window_applies_from_the_next_update) {
    receive_credit c(100);
    c.set_window(1000);
    EXPECT_EQ(c.limit(), 100u);
    EXPECT_TRUE(c.update_due()); // next limit 1000: 900 past the current one
    EXPECT_EQ(c.next_limit(), 1000u);
    c.on_update_sent(c.next_limit());
    EXPECT_FALSE(c.update_due());
    EXPECT_TRUE(c.on_received(1000));
}

TEST(receive_credit_test, smaller_window_never_lowers_the_next_limit) {
    receive_credit c(100);
    c.on_consumed(60);
    c.on_update_sent(c.next_limit());
    EXPECT_EQ(c.limit(), 160u);
    c.set_window(20);
    EXPECT_EQ(c.limit(), 160u);
    EXPECT_EQ(c.next_limit(), 160u); // what a resent MAX_DATA would carry: not 80
    EXPECT_FALSE(c.update_due());
    EXPECT_FALSE(c.on_received(161));
    c.on_consumed(100); // consumed 160: the small window applies from here
    EXPECT_EQ(c.next_limit(), 180u);
    EXPECT_TRUE(c.update_due());
}

TEST(receive_credit_test, zero_window_never_asks_for_an_update) {
    receive_credit c(0);
    EXPECT_FALSE(c.update_due());
    EXPECT_FALSE(c.on_received(1));
    EXPECT_TRUE(c.on_received(0));
}

TEST(send_credit_test, arithmetic) {
    send_credit c(100);
    EXPECT_EQ(c.available(), 100u);
    c.on_sent(60);
    EXPECT_EQ(c.used(), 60u);
    EXPECT_EQ(c.available(), 40u);
    EXPECT_FALSE(c.blocked());
    c.on_limit(80); // never decreases
    EXPECT_EQ(c.limit(), 100u);
    c.on_limit(200);
    EXPECT_EQ(c.limit(), 200u);
    EXPECT_EQ(c.available(), 140u);
    c.on_sent(140);
    EXPECT_EQ(c.available(), 0u);
    EXPECT_TRUE(c.blocked());
}

TEST(send_credit_test, blocked_reported_once_per_limit) {
    send_credit c(10);
    EXPECT_FALSE(c.blocked_report_due());
    c.on_sent(10);
    EXPECT_TRUE(c.blocked_report_due());
    c.on_blocked_sent();
    EXPECT_FALSE(c.blocked_report_due());
    EXPECT_TRUE(c.blocked());
    c.on_limit(10); // the same limit again: still reported
    EXPECT_FALSE(c.blocked_report_due());
    c.on_limit(20);
    EXPECT_FALSE(c.blocked_report_due()); // not blocked
    c.on_sent(10);
    EXPECT_TRUE(c.blocked_report_due()); // blocked at a new limit
    c.on_blocked_sent();
    EXPECT_FALSE(c.blocked_report_due());
}

TEST(send_credit_test, zero_initial_limit_is_blocked_and_reportable) {
    send_credit c(0);
    EXPECT_TRUE(c.blocked());
    EXPECT_TRUE(c.blocked_report_due());
    c.on_blocked_sent();
    EXPECT_FALSE(c.blocked_report_due());
}

} // namespace
} // namespace kwik::transport
