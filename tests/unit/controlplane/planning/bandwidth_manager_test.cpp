// Unit tests for controlplane/server/planning/bandwidth_manager: Holt's forecast on a linear
// trend and a step, then scaling decisions over synthetic demand traces, one table row per
// case with the expected decision, path ids and reason; then the cooldown, path id retirement
// and request checks as sequences.
#include "controlplane/server/planning/bandwidth_manager.hpp"

#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <vector>

namespace kwik::cp {
namespace {

using request = kcp::v3::BandwidthScalingRequest;
using response = kcp::v3::BandwidthScalingResponse;

constexpr std::uint64_t path_bps = 100'000'000; // every test path and new path: 100 Mbit/s

// ---- demand_predictor -----------------------------------------------------------------------

TEST(demand_predictor, linear_trend_is_forecast_exactly_from_the_second_sample) {
    demand_predictor p(0.5, 0.3);
    // y = 5 + 2 t at irregular times: the per-second trend makes the spacing irrelevant.
    const double times[] = {0, 1, 3, 3.5, 7, 8, 12.25};
    for (std::size_t i = 0; i < std::size(times); ++i) {
        const double t = times[i];
        p.add(5 + 2 * t, static_cast<time_us>(t * 1e6));
        if (i == 0) {
            EXPECT_DOUBLE_EQ(p.predict(10), 5.0); // no trend yet
            continue;
        }
        EXPECT_NEAR(p.level(), 5 + 2 * t, 1e-9) << "t=" << t;
        EXPECT_NEAR(p.trend_per_s(), 2.0, 1e-9) << "t=" << t;
        EXPECT_NEAR(p.predict(10), 5 + 2 * (t + 10), 1e-9) << "t=" << t;
    }
    EXPECT_EQ(p.samples(), std::size(times));
}

TEST(demand_predictor, step_is_followed_by_the_level_gain_and_settles) {
    demand_predictor p(0.5, 0.3);
    time_us t = 0;
    for (int i = 0; i < 5; ++i) {
        p.add(10, t);
        t += us_per_s;
    }
    EXPECT_DOUBLE_EQ(p.level(), 10);
    EXPECT_DOUBLE_EQ(p.trend_per_s(), 0);
    // First sample after the step: L = 0.5*20 + 0.5*(10 + 0) = 15; B = 0.3*(15 - 10) = 1.5.
    p.add(20, t);
    t += us_per_s;
    EXPECT_DOUBLE_EQ(p.level(), 15);
    EXPECT_DOUBLE_EQ(p.trend_per_s(), 1.5);
    EXPECT_DOUBLE_EQ(p.predict(10), 30);
    // Second: L = 0.5*20 + 0.5*(15 + 1.5) = 18.25; B = 0.3*3.25 + 0.7*1.5 = 2.025.
    p.add(20, t);
    t += us_per_s;
    EXPECT_DOUBLE_EQ(p.level(), 18.25);
    EXPECT_NEAR(p.trend_per_s(), 2.025, 1e-12);
    EXPECT_NEAR(p.predict(10), 38.5, 1e-12);
    for (int i = 0; i < 80; ++i) {
        p.add(20, t);
        t += us_per_s;
    }
    EXPECT_NEAR(p.level(), 20, 1e-3);
    EXPECT_NEAR(p.trend_per_s(), 0, 1e-3);
}

TEST(demand_predictor, ignores_samples_that_do_not_advance_and_never_forecasts_below_zero) {
    demand_predictor p;
    p.add(100, 10 * us_per_s);
    p.add(50, 10 * us_per_s);
    p.add(50, 9 * us_per_s);
    EXPECT_EQ(p.samples(), 1u);
    EXPECT_DOUBLE_EQ(p.level(), 100);
    p.add(90, 11 * us_per_s); // trend -10/s
    EXPECT_DOUBLE_EQ(p.predict(5), 40);
    EXPECT_DOUBLE_EQ(p.predict(20), 0);
}

// ---- scaling decisions over traces ----------------------------------------------------------

struct path_spec {
    std::string server;
    std::uint32_t srtt_us = 10'000;
    std::uint32_t min_rtt_us = 10'000;
};

server_candidate server(std::string id, std::uint32_t latency_us, double cost = 1.0, bool healthy = true,
                        std::uint64_t available_bps = 1'000'000'000) {
    server_candidate s;
    s.server_id = id;
    s.address = "addr-" + id;
    s.available_bps = available_bps;
    s.path_bps = path_bps;
    s.latency_us = latency_us;
    s.cost_per_gbps = cost;
    s.healthy = healthy;
    return s;
}

const std::vector<server_candidate> three_servers{server("S1", 1000), server("S2", 2000), server("S3", 3000)};

struct scaling_case {
    const char* description;
    std::vector<path_spec> paths;           // ids 1.., path_bps each
    std::vector<std::uint64_t> demand_mbps; // one per 1 s interval, split evenly over the paths
    std::vector<server_candidate> servers;
    request::ScalingTrigger trigger;
    scaling_policy policy;
    std::uint32_t target_mbps;
    // expected
    response::Decision decision;
    std::vector<std::uint64_t> added;
    std::vector<std::string> added_servers;
    std::vector<std::uint64_t> removed;
    std::uint32_t new_paths;
    std::uint32_t target_bandwidth_mbps;
    const char* reason_has;
};

const scaling_policy defaults{};
const scaling_policy max4{.max_paths = 4};
const scaling_policy aggressive{.aggressive_scaling = true};
const scaling_policy min2{.min_paths = 2};
const scaling_policy min2_aggressive{.min_paths = 2, .aggressive_scaling = true};

// With the defaults (up 80%, down 30%, Holt a = 0.5, b = 0.3, horizon 10 s), capacity is sized
// for 55% utilisation (42.5% when aggressive, 100% for MANUAL).
const std::vector<scaling_case> scaling_cases{
    {"ramp up 100..140 Mbit/s on 200: forecast 240 (120%), sized for 55% -> 3 paths added",
     {{"S1"}, {"S2"}}, {100, 110, 120, 130, 140}, three_servers, request::DEMAND_INCREASE, defaults, 0,
     response::SCALE_UP, {3, 4, 5}, {"S3", "S1", "S2"}, {}, 5, 500, "planned utilisation 48%"},
    {"ramp up within max_paths 4: 2 added, limited",
     {{"S1"}, {"S2"}}, {100, 110, 120, 130, 140}, three_servers, request::DEMAND_INCREASE, max4, 0,
     response::SCALE_UP, {3, 4}, {"S3", "S1"}, {}, 4, 400, "limited by max_paths (4)"},
    {"aggressive ramp up sized for 42.5%: 4 added",
     {{"S1"}, {"S2"}}, {100, 110, 120, 130, 140}, three_servers, request::DEMAND_INCREASE, aggressive, 0,
     response::SCALE_UP, {3, 4, 5, 6}, {"S3", "S1", "S2", "S3"}, {}, 6, 600, "planned utilisation 40%"},
    {"ramp up at max_paths: rejected",
     {{"S1"}, {"S2"}, {"S1"}, {"S2"}}, {200, 220, 240, 260, 280}, three_servers, request::DEMAND_INCREASE, max4, 0,
     response::REJECTED, {}, {}, {}, 4, 400, "at max_paths (4)"},
    {"ramp up with no server capacity: rejected",
     {{"S1"}, {"S2"}}, {100, 110, 120, 130, 140},
     {server("S1", 1000, 1.0, true, 0), server("S2", 1000, 1.0, true, 0)}, request::DEMAND_INCREASE, defaults, 0,
     response::REJECTED, {}, {}, {}, 2, 200, "no server has capacity for another path"},
    {"ramp down 100..60 on 400: forecast 0, one path removed (the newest)",
     {{"S1"}, {"S2"}, {"S1"}, {"S2"}}, {100, 90, 80, 70, 60}, three_servers, request::DEMAND_DECREASE, min2, 0,
     response::SCALE_DOWN, {}, {}, {4}, 3, 300, "0 paths added, 1 path removed"},
    {"ramp down, the longest RTT goes first",
     {{"S1"}, {"S2", 30'000}, {"S1"}, {"S2"}}, {100, 90, 80, 70, 60}, three_servers, request::DEMAND_DECREASE, min2,
     0, response::SCALE_DOWN, {}, {}, {2}, 3, 300, "1 path removed"},
    {"aggressive ramp down stops at min_paths 2",
     {{"S1"}, {"S2"}, {"S1"}, {"S2"}}, {100, 90, 80, 70, 60}, three_servers, request::DEMAND_DECREASE,
     min2_aggressive, 0, response::SCALE_DOWN, {}, {}, {4, 3}, 2, 200, "limited by min_paths (2)"},
    {"ramp down at min_paths: rejected",
     {{"S1"}, {"S2"}}, {100, 90, 80, 70, 60}, three_servers, request::DEMAND_DECREASE, min2, 0,
     response::REJECTED, {}, {}, {}, 2, 200, "at min_paths (2)"},
    {"oscillation 100/110 on 200 (forecast 59%): no change on DEMAND_INCREASE",
     {{"S1"}, {"S2"}}, {100, 110, 100, 110, 100, 110, 100, 110}, three_servers, request::DEMAND_INCREASE, defaults,
     0, response::NO_CHANGE, {}, {}, {}, 2, 200, "within the thresholds (30% to 80%)"},
    {"oscillation 100/110 on 200: no change on DEMAND_DECREASE",
     {{"S1"}, {"S2"}}, {100, 110, 100, 110, 100, 110, 100, 110}, three_servers, request::DEMAND_DECREASE, defaults,
     0, response::NO_CHANGE, {}, {}, {}, 2, 200, "within the thresholds"},
    {"DEMAND_INCREASE with the requester's target 300 on 200 (150%): sized for 55%",
     {{"S1"}, {"S2"}}, {60, 60, 60}, three_servers, request::DEMAND_INCREASE, defaults, 300,
     response::SCALE_UP, {3, 4, 5, 6}, {"S3", "S1", "S2", "S3"}, {}, 6, 600,
     "requested bandwidth 300.0 Mbit/s is 150%"},
    {"SERVER_FAILURE: the failed server's paths are replaced on the others",
     {{"S1"}, {"S1"}, {"S2"}}, {60, 60, 60},
     {server("S1", 1000, 1.0, false), server("S2", 2000), server("S3", 3000)}, request::SERVER_FAILURE, defaults, 0,
     response::SCALE_UP, {4, 5}, {"S3", "S2"}, {1, 2}, 3, 300, "2 failed paths replaced by 2"},
    {"SERVER_FAILURE with no failed path: no change",
     {{"S1"}, {"S2"}}, {60, 60, 60}, three_servers, request::SERVER_FAILURE, defaults, 0,
     response::NO_CHANGE, {}, {}, {}, 2, 200, "no path of the connection is failed"},
    {"SERVER_FAILURE with no healthy server to take a replacement: rejected",
     {{"S1"}, {"S2"}}, {60, 60, 60}, {server("S1", 1000, 1.0, false), server("S2", 1000, 1.0, true, 0)},
     request::SERVER_FAILURE, defaults, 0, response::REJECTED, {}, {}, {}, 2, 100,
     "SERVER_FAILURE: no healthy server has capacity to replace 1 failed path"},
    {"COST_OPTIMIZATION moves both paths to the cheaper server",
     {{"S1"}, {"S1"}}, {60, 60, 60}, {server("S1", 1000, 2.0), server("S2", 5000, 1.0)}, request::COST_OPTIMIZATION,
     defaults, 0, response::SCALE_DOWN, {3, 4}, {"S2", "S2"}, {1, 2}, 2, 200, "cost 0.400 -> 0.200"},
    {"COST_OPTIMIZATION drops a surplus path",
     {{"S1"}, {"S1"}, {"S1"}}, {60, 60, 60}, {server("S1", 1000, 1.0)}, request::COST_OPTIMIZATION, defaults, 0,
     response::SCALE_DOWN, {}, {}, {3}, 2, 200, "cost 0.300 -> 0.200"},
    {"COST_OPTIMIZATION when already cheapest: no change",
     {{"S2"}, {"S2"}}, {60, 60, 60}, {server("S1", 1000, 2.0), server("S2", 5000, 1.0)}, request::COST_OPTIMIZATION,
     defaults, 0, response::NO_CHANGE, {}, {}, {}, 2, 200, "already the cheapest"},
    {"PERFORMANCE_DEGRADATION replaces the path at 4x its min RTT",
     {{"S1"}, {"S2", 40'000, 10'000}}, {60, 60, 60}, three_servers, request::PERFORMANCE_DEGRADATION, defaults, 0,
     response::SCALE_UP, {3}, {"S3"}, {2}, 2, 200, "1 degraded or failed path replaced by 1"},
    {"PERFORMANCE_DEGRADATION with nothing degraded: no change",
     {{"S1"}, {"S2"}}, {60, 60, 60}, three_servers, request::PERFORMANCE_DEGRADATION, defaults, 0,
     response::NO_CHANGE, {}, {}, {}, 2, 200, "no path is degraded or failed"},
    {"MANUAL 450 Mbit/s on 200: capacity to cover it",
     {{"S1"}, {"S2"}}, {60, 60, 60}, three_servers, request::MANUAL, defaults, 450,
     response::SCALE_UP, {3, 4, 5}, {"S3", "S1", "S2"}, {}, 5, 500, "3 paths added"},
    {"MANUAL 150 Mbit/s on 400: two removed, 200 left",
     {{"S1"}, {"S2"}, {"S1"}, {"S2"}}, {60, 60, 60}, three_servers, request::MANUAL, defaults, 150,
     response::SCALE_DOWN, {}, {}, {4, 3}, 2, 200, "2 paths removed"},
    {"MANUAL without a target: rejected",
     {{"S1"}}, {60, 60, 60}, three_servers, request::MANUAL, defaults, 0,
     response::REJECTED, {}, {}, {}, 0, 0, "MANUAL needs target_bandwidth_mbps"},
    {"below min_paths: repaired whatever the demand",
     {{"S1"}}, {20, 20, 20}, three_servers, request::DEMAND_DECREASE, min2, 0,
     response::SCALE_UP, {2}, {"S2"}, {}, 2, 200, "1 path added for min_paths (2)"},
    {"policy with max_paths below min_paths: rejected, the field named",
     {{"S1"}}, {20, 20, 20}, three_servers, request::DEMAND_INCREASE, {.min_paths = 3, .max_paths = 2}, 0,
     response::REJECTED, {}, {}, {}, 0, 0, "policy.max_paths: 2 is below min_paths (3)"},
    {"policy with scale_down >= scale_up: rejected",
     {{"S1"}}, {20, 20, 20}, three_servers, request::DEMAND_INCREASE,
     {.scale_up_threshold_percent = 50, .scale_down_threshold_percent = 50}, 0, response::REJECTED, {}, {}, {}, 0, 0,
     "policy.scale_down_threshold_percent: 50"},
};

std::vector<path_metrics> make_paths(const std::vector<path_spec>& specs) {
    std::vector<path_metrics> out;
    std::uint64_t id = 1;
    for (const path_spec& s : specs) {
        path_metrics m;
        m.connection_id = "conn";
        m.path_id = id++;
        m.server_id = s.server;
        m.server_address = "addr-" + s.server;
        m.capacity_bps = path_bps;
        m.smoothed_rtt_us = s.srtt_us;
        m.min_rtt_us = s.min_rtt_us;
        out.push_back(m);
    }
    return out;
}

// Observes the paths at `start`, then once per second with each interval's demand split
// evenly over them; returns the time of the last report.
time_us feed(bandwidth_manager& m, std::vector<path_metrics>& paths, const std::vector<std::uint64_t>& demand_mbps,
             time_us start) {
    m.observe("conn", paths, start);
    time_us t = start;
    for (std::uint64_t d : demand_mbps) {
        const std::uint64_t bytes = d * 125'000; // Mbit/s for 1 s
        EXPECT_EQ(bytes % paths.size(), 0u) << "the harness splits bytes evenly";
        for (path_metrics& p : paths) {
            p.bytes_sent += bytes / paths.size();
            p.packets_sent += 100;
        }
        t += us_per_s;
        m.observe("conn", paths, t);
    }
    return t;
}

request make_request(request::ScalingTrigger trigger, const scaling_policy& policy, std::uint32_t target_mbps = 0) {
    request r;
    r.set_connection_id("conn");
    r.set_trigger(trigger);
    r.set_target_bandwidth_mbps(target_mbps);
    request::ScalingPolicy* p = r.mutable_policy();
    p->set_scale_up_threshold_percent(policy.scale_up_threshold_percent);
    p->set_scale_down_threshold_percent(policy.scale_down_threshold_percent);
    p->set_min_paths(policy.min_paths);
    p->set_max_paths(policy.max_paths);
    p->set_cooldown_seconds(policy.cooldown_seconds);
    p->set_aggressive_scaling(policy.aggressive_scaling);
    return r;
}

std::vector<std::uint64_t> ids(const google::protobuf::RepeatedField<std::uint64_t>& f) {
    return {f.begin(), f.end()};
}

TEST(bandwidth_manager, decisions_over_traces) {
    for (const scaling_case& c : scaling_cases) {
        SCOPED_TRACE(c.description);
        bandwidth_manager m;
        std::vector<path_metrics> paths = make_paths(c.paths);
        const time_us t = feed(m, paths, c.demand_mbps, 1'700'000'000 * us_per_s);
        const scaling_decision d =
            m.decide(make_request(c.trigger, c.policy, c.target_mbps), server_availability{c.servers}, t, 42);
        const response& r = d.response;
        EXPECT_EQ(r.in_reply_to(), 42u);
        EXPECT_EQ(r.connection_id(), "conn");
        EXPECT_EQ(response::Decision_Name(r.decision()), response::Decision_Name(c.decision)) << r.reason();
        EXPECT_EQ(ids(r.paths_added()), c.added) << r.reason();
        EXPECT_EQ(ids(r.paths_removed()), c.removed) << r.reason();
        EXPECT_EQ(r.new_path_count(), c.new_paths) << r.reason();
        EXPECT_EQ(r.target_bandwidth_mbps(), c.target_bandwidth_mbps) << r.reason();
        EXPECT_NE(r.reason().find(c.reason_has), std::string::npos) << r.reason();
        EXPECT_FALSE(r.reason().empty());
        std::vector<std::string> servers;
        for (const planned_path& p : d.added) {
            servers.push_back(p.server_id);
            EXPECT_EQ(p.server_address, "addr-" + p.server_id);
            EXPECT_EQ(p.capacity_bps, path_bps);
        }
        EXPECT_EQ(servers, c.added_servers);
        if (r.decision() == response::SCALE_UP || r.decision() == response::SCALE_DOWN) {
            EXPECT_EQ(r.old_path_count(), c.paths.size());
            EXPECT_EQ(r.new_path_count(), c.paths.size() + c.added.size() - c.removed.size());
            EXPECT_EQ(r.cooldown_remaining_seconds(), c.policy.cooldown_seconds);
        }
    }
}

TEST(bandwidth_manager, replacement_records_what_it_stands_in_for) {
    bandwidth_manager m;
    std::vector<path_metrics> paths = make_paths({{"S1"}, {"S1"}, {"S2"}});
    const time_us t = feed(m, paths, {60, 60}, 0);
    const scaling_decision d =
        m.decide(make_request(request::SERVER_FAILURE, defaults),
                 server_availability{{server("S1", 1000, 1.0, false), server("S2", 2000), server("S3", 3000)}}, t);
    ASSERT_EQ(d.added.size(), 2u);
    EXPECT_EQ(d.added[0].replaces_path_id, 1u);
    EXPECT_EQ(d.added[1].replaces_path_id, 2u);
    EXPECT_DOUBLE_EQ(d.analysis.capacity_bps, 100e6); // the failed server's paths count for nothing
    EXPECT_DOUBLE_EQ(d.analysis.planned_capacity_bps, 300e6);
    EXPECT_NEAR(d.analysis.predicted_demand_bps, 60e6, 1e-3);
}

// ---- sequences ------------------------------------------------------------------------------

TEST(bandwidth_manager, cooldown_remaining_is_exact_and_a_server_failure_does_not_wait) {
    bandwidth_manager m;
    std::vector<path_metrics> paths = make_paths({{"S1"}, {"S2"}});
    const time_us t0 = feed(m, paths, {60, 60, 60}, 0);
    const server_availability servers{three_servers};

    scaling_decision d = m.decide(make_request(request::MANUAL, defaults, 300), servers, t0);
    ASSERT_EQ(d.response.decision(), response::SCALE_UP) << d.response.reason();
    EXPECT_EQ(ids(d.response.paths_added()), (std::vector<std::uint64_t>{3}));
    EXPECT_EQ(d.response.cooldown_remaining_seconds(), 60u);

    // 20 s later: 40 s left. 20.5 s later: 39.5 s, reported as 40 (rounded up). 59.999999 s: 1.
    const struct {
        time_us after;
        std::uint32_t left;
    } waits[] = {{20 * us_per_s, 40}, {20 * us_per_s + us_per_s / 2, 40}, {21 * us_per_s, 39},
                 {60 * us_per_s - 1, 1}};
    for (const auto& w : waits) {
        d = m.decide(make_request(request::MANUAL, defaults, 500), servers, t0 + w.after);
        EXPECT_EQ(d.response.decision(), response::REJECTED);
        EXPECT_EQ(d.response.cooldown_remaining_seconds(), w.left);
        EXPECT_NE(d.response.reason().find("cooldown: " + std::to_string(w.left) + " s of 60 s left"),
                  std::string::npos)
            << d.response.reason();
        EXPECT_EQ(d.response.paths_added_size(), 0);
        EXPECT_EQ(d.response.new_path_count(), d.response.old_path_count());
    }
    // A NO_CHANGE reports the cooldown too.
    d = m.decide(make_request(request::DEMAND_INCREASE, defaults), servers, t0 + 30 * us_per_s);
    EXPECT_EQ(d.response.decision(), response::NO_CHANGE) << d.response.reason();
    EXPECT_EQ(d.response.cooldown_remaining_seconds(), 30u);

    // A server failure inside the cooldown is repaired at once.
    const server_availability s1_failed{{server("S1", 1000, 1.0, false), server("S2", 2000), server("S3", 3000)}};
    d = m.decide(make_request(request::SERVER_FAILURE, defaults), s1_failed, t0 + 30 * us_per_s);
    EXPECT_EQ(d.response.decision(), response::SCALE_UP) << d.response.reason();
    EXPECT_EQ(ids(d.response.paths_removed()), (std::vector<std::uint64_t>{1}));
    EXPECT_EQ(d.response.cooldown_remaining_seconds(), 60u); // and the cooldown starts again

    // At exactly 60 s after that, the cooldown is over.
    d = m.decide(make_request(request::MANUAL, defaults, 500), servers, t0 + 90 * us_per_s);
    EXPECT_EQ(d.response.decision(), response::SCALE_UP) << d.response.reason();
}

TEST(bandwidth_manager, path_ids_are_never_reused_and_retired_reports_are_ignored) {
    bandwidth_manager m;
    std::vector<path_metrics> paths = make_paths({{"S1"}, {"S2"}, {"S1"}, {"S2"}});
    time_us t = feed(m, paths, {100, 90, 80, 70, 60}, 0);
    const server_availability servers{three_servers};
    scaling_decision d = m.decide(make_request(request::DEMAND_DECREASE, min2), servers, t);
    ASSERT_EQ(ids(d.response.paths_removed()), (std::vector<std::uint64_t>{4}));

    // Path 4's last counters still come in while it drains: ignored.
    t += us_per_s;
    m.observe("conn", paths, t);
    t += 61 * us_per_s;
    d = m.decide(make_request(request::MANUAL, min2, 350), servers, t);
    ASSERT_EQ(d.response.decision(), response::SCALE_UP) << d.response.reason();
    EXPECT_EQ(d.response.old_path_count(), 3u);
    EXPECT_EQ(ids(d.response.paths_added()), (std::vector<std::uint64_t>{5}));
    EXPECT_EQ(m.allocate_path_id("conn"), 6u);

    // A path that left the reports (removed elsewhere) is retired too; the next id is past it.
    paths.erase(paths.begin()); // path 1
    m.observe("conn", paths, t + us_per_s);
    EXPECT_EQ(m.allocate_path_id("conn"), 7u);
}

TEST(bandwidth_manager, planned_paths_count_until_reported_and_can_be_forgotten) {
    bandwidth_manager m;
    std::vector<path_metrics> paths = make_paths({{"S1"}, {"S2"}});
    const time_us t = feed(m, paths, {60, 60, 60}, 0);
    const server_availability servers{three_servers};
    scaling_decision d = m.decide(make_request(request::MANUAL, defaults, 300), servers, t);
    ASSERT_EQ(ids(d.response.paths_added()), (std::vector<std::uint64_t>{3}));

    // Reports without path 3 yet: it still counts (300 Mbit/s), so nothing is added again.
    m.observe("conn", paths, t + us_per_s);
    d = m.decide(make_request(request::MANUAL, defaults, 300), servers, t + 61 * us_per_s);
    EXPECT_EQ(d.response.decision(), response::NO_CHANGE) << d.response.reason();
    EXPECT_EQ(d.response.old_path_count(), 3u);
    EXPECT_EQ(d.response.target_bandwidth_mbps(), 300u);

    // Its AddPathCommand failed: forgotten, and its id stays retired.
    m.forget_path("conn", 3);
    d = m.decide(make_request(request::MANUAL, defaults, 300), servers, t + 62 * us_per_s);
    EXPECT_EQ(d.response.decision(), response::SCALE_UP) << d.response.reason();
    EXPECT_EQ(ids(d.response.paths_added()), (std::vector<std::uint64_t>{4}));
}

TEST(bandwidth_manager, standby_paths_are_neither_counted_nor_removed) {
    bandwidth_manager m;
    std::vector<path_metrics> paths = make_paths({{"S1"}, {"S2"}, {"S3"}});
    paths[2].standby = true;
    const time_us t = feed(m, paths, {0, 0, 0}, 0);
    const scaling_decision d = m.decide(make_request(request::DEMAND_DECREASE, defaults), server_availability{}, t);
    EXPECT_EQ(d.response.decision(), response::SCALE_DOWN) << d.response.reason();
    EXPECT_EQ(d.response.old_path_count(), 2u);
    EXPECT_EQ(ids(d.response.paths_removed()), (std::vector<std::uint64_t>{2}));
}

TEST(bandwidth_manager, bad_requests_are_rejected_with_a_reason) {
    bandwidth_manager m;
    const server_availability servers{three_servers};
    request r = make_request(request::DEMAND_INCREASE, defaults);
    scaling_decision d = m.decide(r, servers, 0);
    EXPECT_EQ(d.response.decision(), response::REJECTED);
    EXPECT_EQ(d.response.reason(), "connection 'conn' is unknown: no metrics observed for it yet");

    r.set_connection_id("");
    d = m.decide(r, servers, 0);
    EXPECT_EQ(d.response.reason(), "connection_id is empty");

    std::vector<path_metrics> paths = make_paths({{"S1"}});
    feed(m, paths, {10}, 0);
    r = make_request(request::DEMAND_INCREASE, defaults);
    r.set_trigger(static_cast<request::ScalingTrigger>(17));
    d = m.decide(r, servers, 0);
    EXPECT_EQ(d.response.decision(), response::REJECTED);
    EXPECT_EQ(d.response.reason(), "trigger 17 is not a ScalingTrigger");
}

TEST(bandwidth_manager, request_without_policy_uses_the_configured_one_and_current_bandwidth_without_metrics) {
    bandwidth_manager_config config;
    config.default_policy.max_paths = 3;
    bandwidth_manager m(config);
    std::vector<path_metrics> paths = make_paths({{"S1"}});
    m.observe("conn", paths, 0); // one report: no interval, no demand sample yet
    request r;
    r.set_connection_id("conn");
    r.set_trigger(request::DEMAND_INCREASE);
    r.set_current_bandwidth_mbps(95); // 95% of 100
    const scaling_decision d = m.decide(r, server_availability{three_servers}, 0);
    EXPECT_EQ(d.response.decision(), response::SCALE_UP) << d.response.reason();
    EXPECT_EQ(d.response.new_path_count(), 2u); // 95 / 0.55 = 173 Mbit/s: 2 paths
    EXPECT_DOUBLE_EQ(d.analysis.demand_bps, 95e6);
}

} // namespace
} // namespace kwik::cp
