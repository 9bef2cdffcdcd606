// Unit tests for dataplane/transport/path_scheduler: the score's normalisation and monotonicity,
// the priority weight sets, the QoS penalty, and each strategy's exact picks on fixed inputs.
#include "dataplane/transport/path_scheduler.hpp"

#include <gtest/gtest.h>

#include <array>
#include <cstddef>
#include <functional>
#include <string>
#include <vector>

namespace kwik::transport {
namespace {

using kdp::priority;

path_metrics metrics(time_ns latency, std::uint64_t bandwidth_bps, float loss = 0) {
    path_metrics m;
    m.latency = latency;
    m.min_rtt = latency;
    m.bandwidth_bps = bandwidth_bps;
    m.packet_loss = loss;
    return m;
}

path_candidate candidate(path_id id, const path_metrics& m, float weight = 1) {
    path_candidate c;
    c.id = id;
    c.metrics = m;
    c.weight = weight;
    return c;
}

std::vector<int> picks(path_scheduler& s, std::span<const path_candidate> c, int n,
                       priority p = priority::normal) {
    std::vector<int> out;
    for (int i = 0; i < n; ++i) {
        out.push_back(s.select(c, p, nullptr).primary);
    }
    return out;
}

// --- score -----------------------------------------------------------------------------------

TEST(path_scheduler_score, single_criterion_ratio_to_best_exact) {
    scheduler_config cfg;
    cfg.normal = score_weights{};
    cfg.normal.latency = 1;
    path_scheduler s(cfg);
    const std::array<path_candidate, 2> all{candidate(1, metrics(10 * ms, 0)),
                                            candidate(2, metrics(20 * ms, 0))};
    EXPECT_FLOAT_EQ(s.score(all[0].metrics, priority::normal, nullptr, all), 1.0f);
    const float expected = static_cast<float>((10.0 * ms + 10.0 * us) / (20.0 * ms + 10.0 * us));
    EXPECT_FLOAT_EQ(s.score(all[1].metrics, priority::normal, nullptr, all), expected);

    cfg.normal = score_weights{};
    cfg.normal.bandwidth = 1;
    path_scheduler b(cfg);
    const std::array<path_candidate, 2> bw{candidate(1, metrics(ms, 99'000'000)),
                                           candidate(2, metrics(ms, 49'000'000))};
    EXPECT_FLOAT_EQ(b.score(bw[1].metrics, priority::normal, nullptr, bw), 50.0f / 100.0f);
}

TEST(path_scheduler_score, scored_path_joins_the_normalisation_set) {
    // A path better than every candidate in the span still scores at most 1.
    path_scheduler s;
    const std::array<path_candidate, 1> all{candidate(1, metrics(50 * ms, 10'000'000, 0.02f))};
    path_metrics m = metrics(5 * ms, 500'000'000, 0);
    m.jitter = 0;
    EXPECT_FLOAT_EQ(s.score(m, priority::normal, nullptr, all), 1.0f);
    // The span's own path, alone, is the best of its set.
    EXPECT_FLOAT_EQ(s.score(all[0].metrics, priority::normal, nullptr, all), 1.0f);
    // Unusable candidates do not set the best values.
    std::array<path_candidate, 2> with_dead{candidate(1, metrics(1 * ms, 0)),
                                            candidate(2, metrics(10 * ms, 0))};
    with_dead[0].usable = false;
    EXPECT_FLOAT_EQ(s.score(with_dead[1].metrics, priority::normal, nullptr, with_dead), 1.0f);
}

// Each criterion, improved step by step on the middle one of three paths, raises its score under
// every priority whose weight set uses that criterion.
TEST(path_scheduler_score, strictly_monotonic_in_each_criterion) {
    struct criterion {
        std::string name;
        std::function<void(path_metrics&, int)> set; // step 0 worst .. 4 best
        float score_weights::*weight;
    };
    const std::vector<criterion> criteria{
        {"latency", [](path_metrics& m, int k) { m.latency = (90 - 10 * k) * ms; },
         &score_weights::latency},
        {"bandwidth", [](path_metrics& m, int k) { m.bandwidth_bps = 20'000'000ull * (k + 1); },
         &score_weights::bandwidth},
        {"loss", [](path_metrics& m, int k) { m.packet_loss = 0.10f - 0.02f * static_cast<float>(k); },
         &score_weights::loss},
        {"jitter", [](path_metrics& m, int k) { m.jitter = (20 - 4 * k) * ms; },
         &score_weights::jitter},
        {"congestion", [](path_metrics& m, int k) { m.congestion = 0.9f - 0.2f * static_cast<float>(k); },
         &score_weights::congestion},
        {"reliability", [](path_metrics& m, int k) { m.reliability = 0.5f + 0.1f * static_cast<float>(k); },
         &score_weights::reliability},
        {"cost", [](path_metrics& m, int k) { m.cost = 0.9f - 0.2f * static_cast<float>(k); },
         &score_weights::cost},
        {"server_load", [](path_metrics& m, int k) { m.server_load = 0.9f - 0.2f * static_cast<float>(k); },
         &score_weights::server_load},
        {"geographic", [](path_metrics& m, int k) { m.geographic_score = 0.5f + 0.1f * static_cast<float>(k); },
         &score_weights::geographic},
    };
    path_scheduler s;
    for (const criterion& c : criteria) {
        for (const priority p : {priority::normal, priority::high, priority::critical, priority::control}) {
            const score_weights& w = p == priority::normal   ? s.config().normal
                                     : p == priority::high     ? s.config().high
                                     : p == priority::critical ? s.config().critical
                                                               : s.config().control;
            // Neighbours bracket the middle path in every criterion, so it is never the best.
            path_metrics best = metrics(5 * ms, 1'000'000'000, 0.001f);
            best.jitter = 100 * us;
            path_metrics worst = metrics(200 * ms, 1'000'000, 0.3f);
            worst.jitter = 50 * ms;
            std::array<path_candidate, 3> all{candidate(1, best), candidate(2, metrics(50 * ms, 100'000'000, 0.01f)),
                                              candidate(3, worst)};
            all[1].metrics.jitter = 5 * ms;
            float previous = -1;
            for (int k = 0; k < 5; ++k) {
                c.set(all[1].metrics, k);
                const float now = s.score(all[1].metrics, p, nullptr, all);
                if (w.*c.weight > 0) {
                    EXPECT_GT(now, previous) << c.name << " step " << k << " priority "
                                             << static_cast<int>(p);
                } else {
                    EXPECT_TRUE(k == 0 || now == previous) << c.name << " has no weight";
                }
                previous = now;
            }
        }
    }
}

TEST(path_scheduler_score, non_decreasing_once_best) {
    path_scheduler s;
    std::array<path_candidate, 2> all{candidate(1, metrics(40 * ms, 100'000'000)),
                                      candidate(2, metrics(50 * ms, 100'000'000))};
    float previous = -1;
    for (time_ns lat : {60 * ms, 50 * ms, 40 * ms, 30 * ms, 10 * ms, 1 * ms}) {
        all[0].metrics.latency = lat;
        const float now = s.score(all[0].metrics, priority::normal, nullptr, all);
        EXPECT_GE(now, previous);
        previous = now;
    }
    EXPECT_FLOAT_EQ(previous, 1.0f);
}

// A low-latency lossy, thin path against a slow, clean, fat one.
std::array<path_candidate, 2> fast_lossy_vs_fat_clean() {
    return {candidate(10, metrics(10 * ms, 10'000'000, 0.01f)),
            candidate(20, metrics(50 * ms, 100'000'000, 0.0f))};
}

TEST(path_scheduler_score, priority_weight_sets_change_the_winner) {
    const auto all = fast_lossy_vs_fat_clean();
    path_scheduler s;
    // Hand-computed with the documented defaults and normalisation:
    //   fast: latency 1, bandwidth 11/101, loss 0.005/0.015, everything else 1
    //   fat:  latency 10.01/50.01, bandwidth 1, loss 1, everything else 1
    const double bw_fast = 11.0 / 101.0;
    const double loss_fast = 0.005 / 0.015;
    const double lat_fat = 10.01 / 50.01;
    const double critical_fast = 0.35 + 0.05 * bw_fast + 0.25 * loss_fast + 0.35;
    const double critical_fat = 0.35 * lat_fat + 0.05 + 0.25 + 0.35;
    const double normal_fast = 0.15 + 0.35 * bw_fast + 0.15 * loss_fast + 0.35;
    const double normal_fat = 0.15 * lat_fat + 0.35 + 0.15 + 0.35;
    EXPECT_NEAR(s.score(all[0].metrics, priority::critical, nullptr, all), critical_fast, 1e-5);
    EXPECT_NEAR(s.score(all[1].metrics, priority::critical, nullptr, all), critical_fat, 1e-5);
    EXPECT_NEAR(s.score(all[0].metrics, priority::normal, nullptr, all), normal_fast, 1e-5);
    EXPECT_NEAR(s.score(all[1].metrics, priority::normal, nullptr, all), normal_fat, 1e-5);

    EXPECT_EQ(s.select(all, priority::normal, nullptr).primary, 1);
    EXPECT_EQ(s.select(all, priority::high, nullptr).primary, 1);
    EXPECT_EQ(s.select(all, priority::critical, nullptr).primary, 0);
    EXPECT_EQ(s.select(all, priority::control, nullptr).primary, 0);
}

TEST(path_scheduler_score, qos_bound_penalty) {
    path_scheduler s;
    std::array<path_candidate, 2> all{candidate(1, metrics(80 * ms, 1'000'000'000, 0.0f)),
                                      candidate(2, metrics(40 * ms, 10'000'000, 0.02f))};
    qos_policy qos;
    qos.max_latency_ms = 50;
    const float plain = s.score(all[0].metrics, priority::normal, nullptr, all);
    EXPECT_FLOAT_EQ(s.score(all[0].metrics, priority::normal, &qos, all), plain - qos_violation_penalty);
    EXPECT_FLOAT_EQ(s.score(all[1].metrics, priority::normal, &qos, all),
                    s.score(all[1].metrics, priority::normal, nullptr, all));
    EXPECT_EQ(s.select(all, priority::normal, nullptr).primary, 0); // fat path wins unbounded
    EXPECT_EQ(s.select(all, priority::normal, &qos).primary, 1);    // bound keeps it off

    // Loss bound: now path 1 (2% loss) violates, path 0 violates latency: each penalised once.
    qos.loss_threshold = 0.01f;
    EXPECT_FLOAT_EQ(s.score(all[1].metrics, priority::normal, &qos, all),
                    s.score(all[1].metrics, priority::normal, nullptr, all) - qos_violation_penalty);
    // Nobody meets the bounds: not excluded, the best of them is used.
    EXPECT_EQ(s.select(all, priority::normal, &qos).primary, 0);
    // Two bounds violated cost twice.
    qos.max_jitter_ms = 1;
    all[0].metrics.jitter = 5 * ms;
    EXPECT_FLOAT_EQ(s.score(all[0].metrics, priority::normal, &qos, all),
                    s.score(all[0].metrics, priority::normal, nullptr, all) - 2 * qos_violation_penalty);
    // The bound is "exceeds": exactly at the bound is compliant.
    qos = qos_policy{};
    qos.max_latency_ms = 80;
    EXPECT_FLOAT_EQ(s.score(all[0].metrics, priority::normal, &qos, all),
                    s.score(all[0].metrics, priority::normal, nullptr, all));
}

// --- min_rtt -------------------------------------------------------------------------------------

TEST(path_scheduler_min_rtt, picks_best_eligible_and_respects_can_send) {
    path_scheduler s;
    std::array<path_candidate, 3> all{candidate(1, metrics(30 * ms, 100'000'000)),
                                      candidate(2, metrics(10 * ms, 100'000'000)),
                                      candidate(3, metrics(20 * ms, 100'000'000))};
    EXPECT_EQ(picks(s, all, 4), (std::vector<int>{1, 1, 1, 1}));
    all[1].can_send = false; // cwnd full: the next best
    EXPECT_EQ(s.select(all, priority::normal, nullptr).primary, 2);
    all[2].usable = false;
    EXPECT_EQ(s.select(all, priority::normal, nullptr).primary, 0);
    all[0].can_send = false;
    const path_selection none = s.select(all, priority::normal, nullptr);
    EXPECT_EQ(none.primary, -1);
    EXPECT_EQ(none.secondary, -1);
    EXPECT_EQ(s.select(std::span<const path_candidate>{}, priority::normal, nullptr).primary, -1);
}

TEST(path_scheduler_min_rtt, ties_go_to_lower_latency_then_lower_index) {
    scheduler_config cfg;
    cfg.normal = score_weights{};
    cfg.normal.bandwidth = 1; // latency does not enter the score
    path_scheduler s(cfg);
    const std::array<path_candidate, 3> all{candidate(1, metrics(30 * ms, 100'000'000)),
                                            candidate(2, metrics(20 * ms, 100'000'000)),
                                            candidate(3, metrics(20 * ms, 100'000'000))};
    EXPECT_EQ(s.select(all, priority::normal, nullptr).primary, 1);
}

// --- weighted ------------------------------------------------------------------------------------

TEST(path_scheduler_weighted, three_to_one_is_exact_and_smooth) {
    path_scheduler s({.strategy = schedule_strategy::weighted});
    const std::array<path_candidate, 2> all{candidate(1, metrics(ms, 0), 3.0f),
                                            candidate(2, metrics(ms, 0), 1.0f)};
    const std::vector<int> seq = picks(s, all, 400);
    EXPECT_EQ(std::vector<int>(seq.begin(), seq.begin() + 8), (std::vector<int>{0, 0, 1, 0, 0, 0, 1, 0}));
    int count[2] = {0, 0};
    for (std::size_t i = 0; i < seq.size(); ++i) {
        ++count[seq[i]];
        if (i % 4 == 3) {
            EXPECT_EQ(count[1] * 3, count[0]) << "after " << i + 1 << " picks";
        }
    }
    EXPECT_EQ(count[0], 300);
    EXPECT_EQ(count[1], 100);
}

TEST(path_scheduler_weighted, nginx_reference_sequence_and_fractional_weights) {
    // nginx's documented smooth WRR sequence for weights {5, 1, 1}: a a b a c a a.
    path_scheduler s({.strategy = schedule_strategy::weighted});
    const std::array<path_candidate, 3> all{candidate(1, metrics(ms, 0), 5.0f),
                                            candidate(2, metrics(ms, 0), 1.0f),
                                            candidate(3, metrics(ms, 0), 1.0f)};
    EXPECT_EQ(picks(s, all, 14), (std::vector<int>{0, 0, 1, 0, 2, 0, 0, 0, 0, 1, 0, 2, 0, 0}));

    // Load-balancer weights are fractions: 0.75 / 0.25 behaves as 3 / 1.
    path_scheduler f({.strategy = schedule_strategy::weighted});
    const std::array<path_candidate, 2> frac{candidate(1, metrics(ms, 0), 0.75f),
                                             candidate(2, metrics(ms, 0), 0.25f)};
    EXPECT_EQ(picks(f, frac, 8), (std::vector<int>{0, 0, 1, 0, 0, 0, 1, 0}));
}

TEST(path_scheduler_weighted, skips_ineligible_and_zero_weights) {
    path_scheduler s({.strategy = schedule_strategy::weighted});
    std::array<path_candidate, 3> all{candidate(1, metrics(ms, 0), 1.0f),
                                      candidate(2, metrics(ms, 0), 1.0f),
                                      candidate(3, metrics(ms, 0), 0.0f)};
    all[1].can_send = false;
    EXPECT_EQ(picks(s, all, 3), (std::vector<int>{0, 0, 0}));
    // Every eligible weight zero: they share equally.
    path_scheduler z({.strategy = schedule_strategy::weighted});
    std::array<path_candidate, 2> zero{candidate(1, metrics(ms, 0), 0.0f), candidate(2, metrics(ms, 0), 0.0f)};
    EXPECT_EQ(picks(z, zero, 4), (std::vector<int>{0, 1, 0, 1}));
    zero[0].usable = false;
    zero[1].can_send = false;
    EXPECT_EQ(z.select(zero, priority::normal, nullptr).primary, -1);
}

TEST(path_scheduler_weighted, qos_filters_only_when_a_path_complies) {
    path_scheduler s({.strategy = schedule_strategy::weighted});
    std::array<path_candidate, 2> all{candidate(1, metrics(100 * ms, 0), 1.0f),
                                      candidate(2, metrics(10 * ms, 0), 1.0f)};
    qos_policy qos;
    qos.max_latency_ms = 20;
    for (int i = 0; i < 4; ++i) {
        EXPECT_EQ(s.select(all, priority::normal, &qos).primary, 1);
    }
    all[1].can_send = false; // the compliant path is blocked: the other one is all there is
    EXPECT_EQ(s.select(all, priority::normal, &qos).primary, 0);
}

// --- round robin ---------------------------------------------------------------------------------

TEST(path_scheduler_round_robin, rotates_and_skips_unusable_and_blocked) {
    path_scheduler s({.strategy = schedule_strategy::round_robin});
    std::array<path_candidate, 4> all{candidate(1, metrics(ms, 0)), candidate(2, metrics(ms, 0)),
                                      candidate(3, metrics(ms, 0)), candidate(4, metrics(ms, 0))};
    EXPECT_EQ(picks(s, all, 6), (std::vector<int>{0, 1, 2, 3, 0, 1}));
    all[2].usable = false;
    all[3].can_send = false;
    EXPECT_EQ(picks(s, all, 4), (std::vector<int>{0, 1, 0, 1}));
    all[3].can_send = true;
    EXPECT_EQ(picks(s, all, 4), (std::vector<int>{3, 0, 1, 3}));
    qos_policy qos;
    qos.loss_threshold = 0.05f;
    all[0].metrics.packet_loss = 0.2f;
    EXPECT_EQ(s.select(all, priority::normal, &qos).primary, 1);
    EXPECT_EQ(s.select(all, priority::normal, &qos).primary, 3);
    EXPECT_EQ(s.select(all, priority::normal, &qos).primary, 1);
}

// --- redundant -----------------------------------------------------------------------------------

TEST(path_scheduler_redundant, two_best_for_critical_one_for_normal) {
    path_scheduler s({.strategy = schedule_strategy::redundant});
    std::array<path_candidate, 4> all{candidate(1, metrics(40 * ms, 100'000'000)),
                                      candidate(2, metrics(10 * ms, 100'000'000)),
                                      candidate(3, metrics(90 * ms, 100'000'000)),
                                      candidate(4, metrics(20 * ms, 100'000'000))};
    path_selection c = s.select(all, priority::critical, nullptr);
    EXPECT_EQ(c.primary, 1);
    EXPECT_EQ(c.secondary, 3);
    path_selection ctl = s.select(all, priority::control, nullptr);
    EXPECT_EQ(ctl.primary, 1);
    EXPECT_EQ(ctl.secondary, 3);
    for (const priority p : {priority::normal, priority::high}) {
        path_selection n = s.select(all, p, nullptr);
        EXPECT_EQ(n.primary, 1);
        EXPECT_EQ(n.secondary, -1);
    }
    // The second best is found wherever it sits relative to the best.
    all[0].metrics.latency = 15 * ms;
    c = s.select(all, priority::critical, nullptr);
    EXPECT_EQ(c.primary, 1);
    EXPECT_EQ(c.secondary, 0);
    all[1].metrics.latency = 100 * ms;
    c = s.select(all, priority::critical, nullptr);
    EXPECT_EQ(c.primary, 0);
    EXPECT_EQ(c.secondary, 3);
    // Only one path can send: no duplicate.
    all[1].can_send = false;
    all[2].usable = false;
    all[3].can_send = false;
    c = s.select(all, priority::critical, nullptr);
    EXPECT_EQ(c.primary, 0);
    EXPECT_EQ(c.secondary, -1);
}

TEST(path_scheduler, set_strategy) {
    path_scheduler s;
    EXPECT_EQ(s.strategy(), schedule_strategy::min_rtt);
    s.set_strategy(schedule_strategy::round_robin);
    EXPECT_EQ(s.strategy(), schedule_strategy::round_robin);
    const std::array<path_candidate, 2> all{candidate(1, metrics(10 * ms, 0)), candidate(2, metrics(90 * ms, 0))};
    EXPECT_EQ(picks(s, all, 3), (std::vector<int>{0, 1, 0}));
}

} // namespace
} // namespace kwik::transport
