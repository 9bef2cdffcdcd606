// Unit tests for dataplane/transport/load_balancer: one EMA step computed by hand, the weight
// bounds and their projection, convergence toward the better path, and unusable paths.
#include "dataplane/transport/load_balancer.hpp"

#include <gtest/gtest.h>

#include <array>
#include <cmath>
#include <cstddef>
#include <vector>

namespace kwik::transport {
namespace {

path_candidate path(path_id id, std::uint64_t bandwidth_bps, time_ns rtt, float weight,
                    float loss = 0, float congestion = 0) {
    path_candidate c;
    c.id = id;
    c.metrics.bandwidth_bps = bandwidth_bps;
    c.metrics.latency = rtt;
    c.metrics.packet_loss = loss;
    c.metrics.congestion = congestion;
    c.weight = weight;
    return c;
}

double usable_sum(std::span<const path_candidate> paths) {
    double sum = 0;
    for (const path_candidate& p : paths) {
        sum += p.weight;
    }
    return sum;
}

TEST(load_balancer, one_step_by_hand_bandwidth_only) {
    adaptive_load_balancer lb; // rate 0.2
    std::array<path_candidate, 2> paths{path(1, 100'000'000, 10 * ms, 0.5f),
                                        path(2, 50'000'000, 10 * ms, 0.5f)};
    lb.adapt(paths);
    // performance 1 and 0.5 -> targets 2/3 and 1/3; 0.8 * 0.5 + 0.2 * target.
    EXPECT_NEAR(paths[0].weight, 0.4 + 0.2 * 2.0 / 3.0, 1e-6);
    EXPECT_NEAR(paths[1].weight, 0.4 + 0.2 * 1.0 / 3.0, 1e-6);
}

TEST(load_balancer, one_step_by_hand_every_factor_and_unnormalised_old_weights) {
    adaptive_load_balancer lb;
    // A: bandwidth 1, loss 0.1, congestion 0.2, RTT ratio 1 -> 1 * 0.9 * 0.8 * 1 = 0.72
    // B: bandwidth 0.5, clean, RTT 20 ms against a 10 ms best -> 0.5 * 0.5 = 0.25
    // Old weights 3 and 1 count as 0.75 and 0.25.
    std::array<path_candidate, 2> paths{path(1, 100'000'000, 10 * ms, 3.0f, 0.1f, 0.2f),
                                        path(2, 50'000'000, 20 * ms, 1.0f)};
    lb.adapt(paths);
    const double target_a = 0.72 / 0.97;
    const double target_b = 0.25 / 0.97;
    EXPECT_NEAR(paths[0].weight, 0.8 * 0.75 + 0.2 * target_a, 1e-6);
    EXPECT_NEAR(paths[1].weight, 0.8 * 0.25 + 0.2 * target_b, 1e-6);
    EXPECT_NEAR(usable_sum(paths), 1.0, 1e-6);
}

TEST(load_balancer, max_bound_projects_the_excess_onto_the_others) {
    adaptive_load_balancer lb({.adaptation_rate = 0.5f, .min_weight = 0.1f, .max_weight = 0.6f});
    // Only path 1 delivers anything: targets 1, 0, 0; EMA 2/3, 1/6, 1/6. Path 1 is capped at 0.6
    // and the other two share the rest in their EMA ratio (equal): 0.2 each.
    std::array<path_candidate, 3> paths{path(1, 100'000'000, 10 * ms, 1.0f), path(2, 0, 10 * ms, 1.0f),
                                        path(3, 0, 10 * ms, 1.0f)};
    lb.adapt(paths);
    EXPECT_NEAR(paths[0].weight, 0.6, 1e-6);
    EXPECT_NEAR(paths[1].weight, 0.2, 1e-6);
    EXPECT_NEAR(paths[2].weight, 0.2, 1e-6);

    // Rate 1: EMA 1, 0, 0. The zero paths share what the cap leaves.
    lb.set_config({.adaptation_rate = 1.0f, .min_weight = 0.1f, .max_weight = 0.6f});
    lb.adapt(paths);
    EXPECT_NEAR(paths[0].weight, 0.6, 1e-6);
    EXPECT_NEAR(paths[1].weight, 0.2, 1e-6);
    EXPECT_NEAR(paths[2].weight, 0.2, 1e-6);
}

TEST(load_balancer, min_bound_holds_where_clamp_then_renormalise_would_break_it) {
    adaptive_load_balancer lb({.adaptation_rate = 1.0f, .min_weight = 0.05f, .max_weight = 0.9f});
    // Targets 0.9, 0.07, 0.03. Path 3 is raised to 0.05; the other two scale by 0.95 / 0.97.
    // (Clamping then renormalising would leave path 3 at 0.05 / 1.02 = 0.049, below the floor.)
    std::array<path_candidate, 3> paths{path(1, 90'000'000, 10 * ms, 1.0f), path(2, 7'000'000, 10 * ms, 1.0f),
                                        path(3, 3'000'000, 10 * ms, 1.0f)};
    lb.adapt(paths);
    EXPECT_NEAR(paths[0].weight, 0.9 * 0.95 / 0.97, 1e-6);
    EXPECT_NEAR(paths[1].weight, 0.07 * 0.95 / 0.97, 1e-6);
    EXPECT_NEAR(paths[2].weight, 0.05, 1e-6);
    EXPECT_NEAR(usable_sum(paths), 1.0, 1e-6);
}

TEST(load_balancer, converges_toward_the_better_path) {
    adaptive_load_balancer lb;
    // Targets 0.8 / 0.2 (bandwidth 4:1, same RTT). Each step closes 20% of the gap.
    std::array<path_candidate, 2> paths{path(1, 80'000'000, 10 * ms, 0.5f), path(2, 20'000'000, 10 * ms, 0.5f)};
    double previous = 0.5;
    for (int i = 0; i < 40; ++i) {
        lb.adapt(paths);
        EXPECT_GT(paths[0].weight, previous) << "step " << i;
        EXPECT_NEAR(paths[0].weight - 0.8, (0.5 - 0.8) * std::pow(0.8, i + 1), 1e-5) << "step " << i;
        EXPECT_NEAR(usable_sum(paths), 1.0, 1e-6);
        previous = paths[0].weight;
    }
    EXPECT_NEAR(paths[0].weight, 0.8, 1e-3);
}

TEST(load_balancer, bounds_hold_at_every_step_of_a_lopsided_run) {
    const load_balancer_config cfg{.adaptation_rate = 0.3f, .min_weight = 0.05f, .max_weight = 0.9f};
    adaptive_load_balancer lb(cfg);
    std::array<path_candidate, 3> paths{path(1, 1'000'000'000, 5 * ms, 1.0f),
                                        path(2, 1'000'000, 80 * ms, 1.0f, 0.2f),
                                        path(3, 2'000'000, 60 * ms, 1.0f, 0.0f, 0.5f)};
    for (int i = 0; i < 100; ++i) {
        lb.adapt(paths);
        for (const path_candidate& p : paths) {
            EXPECT_GE(p.weight, cfg.min_weight - 1e-6f);
            EXPECT_LE(p.weight, cfg.max_weight + 1e-6f);
        }
        EXPECT_NEAR(usable_sum(paths), 1.0, 1e-5);
    }
    EXPECT_NEAR(paths[0].weight, 0.9, 1e-5); // pinned at the cap
    EXPECT_GT(paths[2].weight, paths[1].weight);
}

TEST(load_balancer, unusable_paths_get_zero_and_do_not_count) {
    adaptive_load_balancer lb;
    std::array<path_candidate, 3> paths{path(1, 100'000'000, 10 * ms, 0.5f), path(2, 100'000'000, 10 * ms, 0.7f),
                                        path(3, 100'000'000, 10 * ms, 0.5f)};
    paths[1].usable = false;
    lb.adapt(paths);
    EXPECT_EQ(paths[1].weight, 0.0f);
    EXPECT_NEAR(paths[0].weight, 0.5, 1e-6);
    EXPECT_NEAR(paths[2].weight, 0.5, 1e-6);

    // A single usable path takes everything (the 0.9 cap widens to 1/n).
    paths[2].usable = false;
    lb.adapt(paths);
    EXPECT_NEAR(paths[0].weight, 1.0, 1e-6);
    EXPECT_EQ(paths[2].weight, 0.0f);

    paths[0].usable = false;
    lb.adapt(paths);
    for (const path_candidate& p : paths) {
        EXPECT_EQ(p.weight, 0.0f);
    }
}

TEST(load_balancer, floor_narrows_when_n_paths_cannot_all_have_it) {
    // 32 paths with a 0.05 floor: n * floor > 1, so the floor becomes 1/32 and every path holds it.
    adaptive_load_balancer lb;
    std::vector<path_candidate> paths;
    for (path_id i = 0; i < 32; ++i) {
        paths.push_back(path(i, (i + 1) * 1'000'000, 10 * ms, 1.0f));
    }
    lb.adapt(paths);
    for (const path_candidate& p : paths) {
        EXPECT_NEAR(p.weight, 1.0 / 32, 1e-6);
    }
}

TEST(load_balancer, no_bandwidth_estimates_means_rtt_and_loss_decide) {
    adaptive_load_balancer lb({.adaptation_rate = 1.0f, .min_weight = 0.0f, .max_weight = 1.0f});
    std::array<path_candidate, 2> paths{path(1, 0, 10 * ms, 1.0f), path(2, 0, 40 * ms, 1.0f)};
    lb.adapt(paths);
    EXPECT_NEAR(paths[0].weight, 0.8, 1e-6); // 1 : 0.25
    EXPECT_NEAR(paths[1].weight, 0.2, 1e-6);
}

} // namespace
} // namespace kwik::transport
