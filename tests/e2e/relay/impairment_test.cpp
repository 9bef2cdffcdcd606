// kwik-relay's pure parts: the settings parser, the seeded decisions (loss, Gilbert-Elliott
// bursts, duplication, delay + jitter, reordering, blackout) and the --up-from prefixes.
#include <gtest/gtest.h>

#include "tests/e2e/relay/impairment.hpp"
#include "tests/e2e/relay/relay.hpp"

namespace kwik::relay {
namespace {

TEST(relay_settings, set_field_accepts_and_names_the_field_it_refuses) {
    impairment s;
    ASSERT_TRUE(set_field(s, "loss", "0.05").ok());
    EXPECT_DOUBLE_EQ(s.loss, 0.05);
    ASSERT_TRUE(set_field(s, "delay_ms", "20").ok());
    EXPECT_DOUBLE_EQ(s.delay_ms, 20);
    struct bad_case {
        const char* key;
        const char* value;
        const char* message;
    };
    for (const bad_case& c : {bad_case{"loss", "1.5", "loss: 1.5 is not in [0, 1]"},
                              bad_case{"duplicate", "-0.1", "duplicate: -0.1 is not in [0, 1]"},
                              bad_case{"delay_ms", "60001", "delay_ms: 60001 is not in [0, 60000]"},
                              bad_case{"jitter_ms", "5ms", "jitter_ms: '5ms' is not a number"},
                              bad_case{"reorder", "", "reorder: '' is not a number"},
                              bad_case{"loss", "nan", "loss: 'nan' is not a number"}}) {
        auto r = set_field(s, c.key, c.value);
        ASSERT_FALSE(r.ok()) << c.key << "=" << c.value;
        EXPECT_EQ(r.message(), c.message);
    }
    auto r = set_field(s, "colour", "1");
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.message().rfind("colour: no such setting", 0), 0u) << r.message();
    EXPECT_DOUBLE_EQ(s.loss, 0.05) << "a refused value leaves the setting as it was";
}

TEST(relay_decisions, no_impairment_passes_every_packet_at_once) {
    direction_state d(1);
    for (int i = 0; i < 1000; ++i) {
        const decision x = d.decide(false);
        ASSERT_EQ(x.what, verdict::pass);
        ASSERT_EQ(x.copies, 1u);
        ASSERT_EQ(x.delay_ns[0], 0u);
        ASSERT_FALSE(x.reordered);
    }
}

TEST(relay_decisions, blackout_drops_everything) {
    direction_state d(1);
    EXPECT_EQ(d.decide(true).what, verdict::drop_blackout);
}

TEST(relay_decisions, the_same_seed_replays_and_another_differs) {
    auto run = [](std::uint64_t seed) {
        direction_state d(seed);
        d.settings.loss = 0.3;
        std::vector<int> out;
        for (int i = 0; i < 200; ++i) {
            out.push_back(static_cast<int>(d.decide(false).what));
        }
        return out;
    };
    EXPECT_EQ(run(7), run(7));
    EXPECT_NE(run(7), run(8));
}

TEST(relay_decisions, bernoulli_loss_rate_is_within_five_sigma) {
    direction_state d(3);
    d.settings.loss = 0.1;
    int lost = 0;
    for (int i = 0; i < 100000; ++i) {
        lost += d.decide(false).what == verdict::drop_loss;
    }
    EXPECT_NEAR(lost, 10000, 5 * 95); // sigma = sqrt(100000 * 0.1 * 0.9) = 94.9
}

TEST(relay_decisions, gilbert_elliott_losses_come_in_runs_of_mean_one_over_exit) {
    direction_state d(5);
    d.settings.burst_enter = 0.01;
    d.settings.burst_exit = 0.2;
    int lost = 0, runs = 0;
    bool in_run = false;
    for (int i = 0; i < 200000; ++i) {
        const verdict v = d.decide(false).what;
        ASSERT_NE(v, verdict::drop_loss) << "loss is 0: only the bad state loses";
        if (v == verdict::drop_burst) {
            ++lost;
            runs += !in_run;
            in_run = true;
        } else {
            in_run = false;
        }
    }
    ASSERT_GT(runs, 100);
    EXPECT_NEAR(static_cast<double>(lost) / runs, 5.0, 0.5); // geometric, mean 1 / burst_exit
    // Stationary share of the bad state: enter / (enter + exit) = 0.01 / 0.21.
    EXPECT_NEAR(static_cast<double>(lost) / 200000, 0.01 / 0.21, 0.006);
}

TEST(relay_decisions, turning_bursts_off_leaves_the_bad_state_at_once) {
    // A chain that entered the bad state and stays there (exit 0) while bursts are on...
    direction_state d(9);
    d.settings.burst_enter = 1;
    d.settings.burst_exit = 0;
    (void)d.decide(false); // good -> bad
    ASSERT_EQ(d.decide(false).what, verdict::drop_burst);
    // ...then the settings go back to none (the relay's reset, or set burst_enter=0): no
    // chain runs, so no packet may be lost to the state it was left in.
    d.settings = impairment{};
    for (int i = 0; i < 10; ++i) {
        EXPECT_EQ(d.decide(false).what, verdict::pass) << "packet " << i;
    }
}

TEST(relay_decisions, delay_jitter_duplicate_and_reorder) {
    direction_state d(9);
    d.settings.delay_ms = 10;
    d.settings.jitter_ms = 5;
    d.settings.duplicate = 1;
    std::uint64_t low = ~0ull, high = 0;
    for (int i = 0; i < 2000; ++i) {
        const decision x = d.decide(false);
        ASSERT_EQ(x.copies, 2u);
        for (unsigned c = 0; c < 2; ++c) {
            low = std::min(low, x.delay_ns[c]);
            high = std::max(high, x.delay_ns[c]);
        }
    }
    EXPECT_GE(low, 10000000u);
    EXPECT_LE(high, 15000000u);
    EXPECT_LT(low, 10100000u) << "jitter draws reach near the floor";
    EXPECT_GT(high, 14900000u) << "and near the top";

    direction_state r(9);
    r.settings.reorder = 1;
    r.settings.reorder_ms = 5;
    const decision x = r.decide(false);
    EXPECT_TRUE(x.reordered);
    EXPECT_EQ(x.delay_ns[0], 5000000u);
}

TEST(relay_prefixes, parse_prefix) {
    auto v4 = parse_prefix("10.1.2.0/24");
    ASSERT_TRUE(v4.ok());
    EXPECT_EQ(v4->length, 24u);
    EXPECT_EQ(v4->address.version, 4);
    auto host = parse_prefix("fd00::1");
    ASSERT_TRUE(host.ok());
    EXPECT_EQ(host->length, 128u);
    for (const char* bad : {"10.1.2.0/33", "fd00::/129", "10.1.2.0/", "10.1.2.0/x", "10.1.2/24", "host/8"}) {
        EXPECT_FALSE(parse_prefix(bad).ok()) << bad;
    }
}

} // namespace
} // namespace kwik::relay
