// Unit tests for controlplane/server/planning/traffic_planner: basis-point shares that sum to
// exactly 10000 on awkward inputs (largest remainder), scores with loss and RTT penalties,
// failed and standby paths at 0, the weight bounds, generations, validity and the weight steps
// for kwikd's set_weights.
#include "controlplane/server/planning/traffic_planner.hpp"

#include <gtest/gtest.h>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace kwik::cp {
namespace {

using plan_msg = kcp::v3::TrafficDistributionPlan;

struct path_spec {
    std::string server;
    std::uint64_t rate_mbps = 100;
    float loss = 0;
    std::uint32_t srtt_us = 10'000;
    path_status status = path_status::up;
    bool standby = false;
};

std::vector<path_metrics> make_paths(const std::vector<path_spec>& specs, std::string connection = "c") {
    std::vector<path_metrics> out;
    std::uint64_t id = 1;
    for (const path_spec& s : specs) {
        path_metrics m;
        m.connection_id = connection;
        m.path_id = id++;
        m.server_id = s.server;
        m.delivery_rate_bps = s.rate_mbps * 1'000'000;
        m.loss_rate = s.loss;
        m.smoothed_rtt_us = s.srtt_us;
        m.status = s.status;
        m.standby = s.standby;
        out.push_back(m);
    }
    return out;
}

// Shares by path id (1..n) and their sum.
std::vector<std::uint32_t> shares(const plan_msg& p, std::size_t n) {
    std::vector<std::uint32_t> out;
    for (std::uint64_t id = 1; id <= n; ++id) {
        auto it = p.path_share_bp().find(id);
        EXPECT_NE(it, p.path_share_bp().end()) << "path " << id << " not listed";
        out.push_back(it == p.path_share_bp().end() ? 99999 : it->second);
    }
    return out;
}

std::uint32_t sum(const google::protobuf::Map<std::uint64_t, std::uint32_t>& m) {
    std::uint32_t s = 0;
    for (const auto& [k, v] : m) {
        s += v;
    }
    return s;
}

std::uint32_t sum(const google::protobuf::Map<std::string, std::uint32_t>& m) {
    std::uint32_t s = 0;
    for (const auto& [k, v] : m) {
        s += v;
    }
    return s;
}

struct share_case {
    const char* description;
    std::vector<path_spec> paths;
    planner_config config;
    std::vector<std::uint32_t> expected_bp; // by path id
};

const planner_config unbounded{.min_weight = 0.0f, .max_weight = 1.0f};
const planner_config round_robin{.strategy = plan_msg::ROUND_ROBIN};

const std::vector<share_case> share_cases{
    {"3 equal paths: the odd basis point goes to the lowest id", {{"S1"}, {"S1"}, {"S2"}}, {}, {3334, 3333, 3333}},
    {"7 equal paths: four get 1429, three 1428", {{"S"}, {"S"}, {"S"}, {"S"}, {"S"}, {"S"}, {"S"}}, {},
     {1429, 1429, 1429, 1429, 1428, 1428, 1428}},
    // 10000 * i / 28: 357.14, 714.29, 1071.43, 1428.57, 1785.71, 2142.86, 2500: floors sum to 9997,
    // the three largest fractions (.86, .71, .57) take one each.
    {"7 paths at 1..7 Mbit/s, unbounded",
     {{"S", 1}, {"S", 2}, {"S", 3}, {"S", 4}, {"S", 5}, {"S", 6}, {"S", 7}}, unbounded,
     {357, 714, 1071, 1429, 1786, 2143, 2500}},
    {"zero-rate paths keep min_weight, the rest is capped at max_weight", {{"S", 100}, {"S", 0}, {"S", 0}}, {},
     {9000, 500, 500}},
    {"all rates zero: equal", {{"S", 0}, {"S", 0}, {"S", 0}}, {}, {3334, 3333, 3333}},
    {"min bound lifts the small paths, the big one takes the rest", {{"S", 97}, {"S", 1}, {"S", 1}, {"S", 1}}, {},
     {8500, 500, 500, 500}},
    {"max bound caps the big path", {{"S", 100}, {"S", 1}}, {}, {9000, 1000}},
    {"max_weight 0.3 on 2 paths widens to 1/2", {{"S", 100}, {"S", 1}}, {.min_weight = 0.0f, .max_weight = 0.3f},
     {5000, 5000}},
    {"5% loss halves the score (penalty 20)", {{"S", 100, 0.05f}, {"S", 100}}, unbounded, {3333, 6667}},
    {"twice the best RTT halves the score", {{"S", 100, 0, 20'000}, {"S", 100, 0, 10'000}}, unbounded,
     {3333, 6667}},
    {"failed, suspect and standby paths get 0",
     {{"S1", 60}, {"S1", 500, 0, 10'000, path_status::failed}, {"S2", 40},
      {"S2", 500, 0, 10'000, path_status::suspect}, {"S3", 500, 0, 10'000, path_status::up, true}},
     unbounded, {6000, 0, 4000, 0, 0}},
    {"no other path usable: the standby paths carry it",
     {{"S1", 60, 0, 10'000, path_status::failed}, {"S2", 10, 0, 10'000, path_status::up, true},
      {"S3", 30, 0, 10'000, path_status::up, true}},
     unbounded, {0, 2500, 7500}},
    {"ROUND_ROBIN: equal shares whatever the rates", {{"S", 100}, {"S", 1}, {"S", 7}}, round_robin,
     {3334, 3333, 3333}},
};

TEST(traffic_planner, shares_sum_to_10000_exactly) {
    for (const share_case& c : share_cases) {
        SCOPED_TRACE(c.description);
        traffic_planner planner(c.config);
        const std::vector<path_metrics> paths = make_paths(c.paths);
        const result<traffic_plan> r = planner.plan(paths, 0);
        ASSERT_TRUE(r.ok()) << r.message();
        const plan_msg& p = r->plan;
        EXPECT_EQ(shares(p, c.paths.size()), c.expected_bp);
        EXPECT_EQ(p.path_share_bp_size(), static_cast<int>(c.paths.size()));
        EXPECT_EQ(sum(p.path_share_bp()), total_bp);
        EXPECT_EQ(sum(p.server_share_bp()), total_bp);
        EXPECT_EQ(p.strategy(), c.config.strategy);
        // The weights are the shares over 10000, inside the bounds unless 0.
        const kcp::v3::LoadBalancingUpdate& u = r->update;
        ASSERT_EQ(u.path_weights_size(), static_cast<int>(c.paths.size()));
        for (std::uint64_t id = 1; id <= c.paths.size(); ++id) {
            const float w = u.path_weights().at(id);
            EXPECT_EQ(w, static_cast<float>(c.expected_bp[id - 1] / 10000.0)) << "path " << id;
        }
    }
}

TEST(traffic_planner, server_shares_add_up_the_paths_of_each_server) {
    traffic_planner planner;
    const std::vector<path_metrics> paths =
        make_paths({{"S1"}, {"S1"}, {"S2"}, {"S3", 100, 0, 10'000, path_status::failed}});
    const result<traffic_plan> r = planner.plan(paths, 0);
    ASSERT_TRUE(r.ok()) << r.message();
    const auto& servers = r->plan.server_share_bp();
    ASSERT_EQ(servers.size(), 3u);
    EXPECT_EQ(servers.at("S1"), 6667u);
    EXPECT_EQ(servers.at("S2"), 3333u);
    EXPECT_EQ(servers.at("S3"), 0u);
}

TEST(traffic_planner, generation_increases_per_connection_and_names_the_plan) {
    traffic_planner planner({.validity_ms = 5000});
    const std::vector<path_metrics> a = make_paths({{"S1"}, {"S2"}}, "a");
    const std::vector<path_metrics> b = make_paths({{"S1"}}, "b");
    const time_us now = 1'700'000'000'123'456;
    EXPECT_EQ(planner.next_generation("a"), 1u);
    for (std::uint64_t g = 1; g <= 3; ++g) {
        const result<traffic_plan> r = planner.plan(a, now + g);
        ASSERT_TRUE(r.ok());
        EXPECT_EQ(r->update.generation(), g);
        EXPECT_EQ(r->plan.plan_id(), "a/" + std::to_string(g));
    }
    const result<traffic_plan> rb = planner.plan(b, now);
    ASSERT_TRUE(rb.ok());
    EXPECT_EQ(rb->update.generation(), 1u);
    EXPECT_EQ(rb->plan.connection_id(), "b");
    EXPECT_EQ(rb->update.connection_id(), "b");
    EXPECT_EQ(rb->plan.valid_from_ms(), 1'700'000'000'123u);
    EXPECT_EQ(rb->plan.valid_until_ms(), 1'700'000'005'123u);
    EXPECT_EQ(rb->update.min_weight(), 0.05f);
    EXPECT_EQ(rb->update.max_weight(), 0.9f);
    EXPECT_EQ(rb->update.adaptation_rate(), 0.2f);

    // A failed plan takes no generation; forgetting the connection starts over.
    EXPECT_FALSE(planner.plan(make_paths({{"S1", 1, 0, 1, path_status::failed}}, "a"), now).ok());
    EXPECT_EQ(planner.next_generation("a"), 4u);
    planner.forget_connection("a");
    EXPECT_EQ(planner.next_generation("a"), 1u);

    traffic_planner forever({.validity_ms = 0});
    EXPECT_EQ(forever.plan(b, now)->plan.valid_until_ms(), 0u);
}

TEST(traffic_planner, errors_name_the_problem) {
    traffic_planner planner;
    std::vector<path_metrics> paths = make_paths({{"S1"}, {"S2"}});
    EXPECT_EQ(planner.plan({}, 0).message(), "no paths to plan");
    paths[1].connection_id = "other";
    EXPECT_EQ(planner.plan(paths, 0).message(), "paths of two connections in one plan: 'c' and 'other'");
    paths[1].connection_id = "c";
    paths[1].path_id = 1;
    EXPECT_EQ(planner.plan(paths, 0).message(), "connection 'c': path 1 listed twice");
    paths[1].path_id = 0;
    EXPECT_EQ(planner.plan(paths, 0).message(), "connection 'c': path id 0 names no path");
    const std::vector<path_metrics> dead =
        make_paths({{"S1", 1, 0, 1, path_status::failed}, {"S2", 1, 0, 1, path_status::removed}});
    EXPECT_EQ(planner.plan(dead, 0).message(),
              "connection 'c' has no usable path (every one is failed, suspect or removed)");
    traffic_planner bad({.min_weight = 0.5f, .max_weight = 0.4f});
    EXPECT_FALSE(bad.plan(make_paths({{"S1"}}), 0).ok());
}

TEST(largest_remainder, splits_proportionally_and_exactly) {
    const std::vector<double> thirds{1, 1, 1};
    EXPECT_EQ(largest_remainder(thirds, 10000), (std::vector<std::uint32_t>{3334, 3333, 3333}));
    const std::vector<double> zeros{0, 0};
    EXPECT_EQ(largest_remainder(zeros, 7), (std::vector<std::uint32_t>{4, 3}));
    const std::vector<double> mixed{0.5, 0, 2.5}; // quotas 1666.67, 0, 8333.33
    EXPECT_EQ(largest_remainder(mixed, 10000), (std::vector<std::uint32_t>{1667, 0, 8333}));
    EXPECT_TRUE(largest_remainder({}, 10000).empty());
}

TEST(step_weights, moves_by_the_adaptation_rate_and_stops_at_once) {
    kcp::v3::LoadBalancingUpdate u;
    u.set_adaptation_rate(0.25f);
    (*u.mutable_path_weights())[2] = 0.1f;
    (*u.mutable_path_weights())[1] = 0.9f;
    (*u.mutable_path_weights())[3] = 0.0f; // failed: stop now
    (*u.mutable_path_weights())[4] = 0.5f; // new to kwikd: the target at once
    const std::map<std::uint64_t, float> current{{1, 0.5f}, {2, 0.5f}, {3, 0.4f}};
    const std::vector<weight_step> steps = step_weights(u, current);
    ASSERT_EQ(steps.size(), 4u);
    EXPECT_EQ(steps[0].path_id, 1u);
    EXPECT_FLOAT_EQ(steps[0].weight, 0.6f);
    EXPECT_EQ(steps[1].path_id, 2u);
    EXPECT_FLOAT_EQ(steps[1].weight, 0.4f);
    EXPECT_EQ(steps[2].path_id, 3u);
    EXPECT_EQ(steps[2].weight, 0.0f);
    EXPECT_EQ(steps[3].path_id, 4u);
    EXPECT_EQ(steps[3].weight, 0.5f);

    u.set_adaptation_rate(1.0f);
    EXPECT_EQ(step_weights(u, current)[0].weight, 0.9f);
}

} // namespace
} // namespace kwik::cp
