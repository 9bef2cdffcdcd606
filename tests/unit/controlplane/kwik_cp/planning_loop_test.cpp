// kwik-cp's planning loop without kwikd: synthetic counters (api::counters_totals) and desired
// state drive it pass by pass. Failover and recovery sequences from kwikd's path status and
// from a path that stops receiving, weights pushed only past the threshold, client metrics as
// differences of cumulative counters with unknown paths counted, and the standby candidates
// that scaling activates.
#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <vector>

#include "controlplane/server/kwik_cp/planning_loop.hpp"

namespace {

using namespace kwik;
using cp::time_us;
namespace v3 = kcp::v3;

constexpr time_us second = cp::us_per_s;
constexpr time_us t0 = 1'700'000'000ull * second;

cp::planning_config config() {
    cp::planning_config c;
    c.interval = std::chrono::milliseconds(1000);
    c.health.check_interval_us = second;
    c.health.failure_threshold = 2;
    c.health.recovery_threshold = 2;
    return c;
}

api::five_tuple tuple(std::uint16_t remote_port) {
    api::ip_version v{};
    api::ip_address l{};
    api::ip_address r{};
    EXPECT_TRUE(api::parse_address("10.9.0.1", v, l));
    EXPECT_TRUE(api::parse_address("10.9.0.2", v, r));
    return api::make_tuple(v, l, 7707, r, remote_port);
}

// Connection 7 ("conn-a") with the given paths: {id, standby}.
std::map<std::uint64_t, cp::desired_connection> connection(std::vector<std::pair<std::uint64_t, bool>> paths) {
    cp::desired_connection c;
    c.id = 7;
    c.name = "conn-a";
    for (auto [id, standby] : paths) {
        cp::desired_path p;
        p.path_id = id;
        p.tuple = tuple(static_cast<std::uint16_t>(5000 + id));
        p.max_bandwidth_mbps = 100;
        p.standby = standby;
        c.paths.emplace(id, p);
    }
    return {{7, c}};
}

api::path_counters counters(std::uint64_t path, std::uint64_t status, std::uint64_t rx_packets) {
    api::path_counters p{};
    p.connection_id = 7;
    p.path_id = path;
    p.status = status;
    p.rx_packets = rx_packets;
    p.rx_bytes = rx_packets * 1000;
    p.tx_packets = rx_packets;
    p.tx_bytes = rx_packets * 1000;
    p.smoothed_rtt_ns = 10'000'000;
    return p;
}

struct pass_result {
    std::vector<std::string> updates; // "DOWN 1 -> 2", "UP 2"...
    cp::planning_output out;
};

std::string describe(const v3::PathStatusUpdate& u) {
    std::string s = v3::PathStatusUpdate::Status_Name(u.status()) + " " + std::to_string(u.path_id());
    if (u.failover_path_id() != 0) {
        s += " -> " + std::to_string(u.failover_path_id());
    }
    return s;
}

class planning_loop_test : public ::testing::Test {
protected:
    pass_result pass(const std::map<std::uint64_t, cp::desired_connection>& conns, std::vector<api::path_counters> paths) {
        api::counters_totals t;
        t.paths = std::move(paths);
        now += second;
        steady += std::chrono::seconds(1);
        pass_result r;
        r.out = loop.step(conns, t, now, steady);
        for (const auto& u : r.out.updates) {
            EXPECT_EQ(u.connection, 7u);
            r.updates.push_back(describe(u.update));
        }
        return r;
    }
    // The role change of `path` in a pass's output, if any.
    static const cp::dataplane_link::role_change* role(const cp::planning_output& out, std::uint64_t path) {
        for (const auto& g : out.roles) {
            for (const auto& c : g.changes) {
                if (c.path_id == path) {
                    return &c;
                }
            }
        }
        return nullptr;
    }

    cp::planning_loop loop{config(), "cp-test"};
    time_us now = t0;
    std::chrono::steady_clock::time_point steady{};
};

TEST_F(planning_loop_test, kwikd_failed_status_fails_over_to_the_standby_and_recovery_restores_it) {
    auto conns = connection({{1, false}, {2, true}});
    // Both up: the first pass plans path 1 alone (the standby is not usable) and pushes it.
    auto first = pass(conns, {counters(1, 0, 10), counters(2, 0, 1)});
    EXPECT_TRUE(first.updates.empty());
    ASSERT_EQ(first.out.plans.size(), 1u);
    EXPECT_EQ(first.out.plans[0].plan.plan.path_share_bp().at(1), 10000u);
    EXPECT_EQ(first.out.plans[0].plan.plan.path_share_bp().at(2), 0u);
    // Nothing changed: no weights, no plan.
    auto same = pass(conns, {counters(1, 0, 20), counters(2, 0, 2)});
    EXPECT_TRUE(same.out.plans.empty());
    EXPECT_TRUE(same.out.roles.empty());

    // kwikd fails path 1: two failed checks (failure_threshold 2), then DOWN with the standby
    // taking over, which becomes a data path.
    auto f1 = pass(conns, {counters(1, 2, 20), counters(2, 0, 3)});
    EXPECT_TRUE(f1.updates.empty()) << "one failed check is not enough";
    auto f2 = pass(conns, {counters(1, 2, 20), counters(2, 0, 4)});
    ASSERT_EQ(f2.updates, (std::vector<std::string>{"DOWN 1 -> 2", "UP 2"}));
    EXPECT_NE(f2.out.updates[0].update.reason().find("kwikd declared the path failed"), std::string::npos)
        << f2.out.updates[0].update.reason();
    const auto* r1 = role(f2.out, 1);
    const auto* r2 = role(f2.out, 2);
    ASSERT_NE(r1, nullptr);
    ASSERT_NE(r2, nullptr);
    EXPECT_EQ(r1->weight, 0.0f);
    EXPECT_EQ(r2->standby, api::standby_change::clear);
    EXPECT_GT(r2->weight, 0.0f);
    ASSERT_EQ(f2.out.plans.size(), 1u) << "the weights moved: a new plan";
    EXPECT_EQ(f2.out.plans[0].plan.plan.path_share_bp().at(2), 10000u);
    EXPECT_EQ(f2.out.plans[0].plan.plan.path_share_bp().at(1), 0u);

    // The link applies the roles; kwikd brings path 1 back: UP after two healthy checks, and
    // the standby goes back to standby.
    conns.at(7).paths.at(2).standby = false;
    auto g1 = pass(conns, {counters(1, 0, 30), counters(2, 0, 50)});
    EXPECT_TRUE(g1.updates.empty());
    auto g2 = pass(conns, {counters(1, 0, 40), counters(2, 0, 60)});
    ASSERT_EQ(g2.updates, (std::vector<std::string>{"UP 1", "STANDBY 2"}));
    const auto* back = role(g2.out, 2);
    ASSERT_NE(back, nullptr);
    EXPECT_EQ(back->standby, api::standby_change::set);
    ASSERT_EQ(g2.out.plans.size(), 1u);
    EXPECT_EQ(g2.out.plans[0].plan.plan.path_share_bp().at(1), 10000u);
}

TEST_F(planning_loop_test, a_path_that_stops_receiving_while_another_receives_goes_down) {
    auto conns = connection({{1, false}, {3, false}});
    (void)pass(conns, {counters(1, 0, 10), counters(3, 0, 10)});
    (void)pass(conns, {counters(1, 0, 20), counters(3, 0, 20)});
    // Path 3 receives nothing from now on; path 1 keeps receiving. A check a whole interval
    // after path 3's last packet fails; the second in a row (failure_threshold 2) takes it down.
    auto a = pass(conns, {counters(1, 0, 30), counters(3, 0, 20)});
    EXPECT_TRUE(a.updates.empty()) << "first failed check";
    auto c = pass(conns, {counters(1, 0, 40), counters(3, 0, 20)});
    ASSERT_EQ(c.updates, (std::vector<std::string>{"DOWN 3 -> 1"}));
    EXPECT_NE(c.out.updates[0].update.reason().find("while path 1 received"), std::string::npos)
        << c.out.updates[0].update.reason();
    // When both stop (the client went quiet), nothing more goes down: silence alone is no failure.
    auto d = pass(conns, {counters(1, 0, 50), counters(3, 0, 20)});
    auto e = pass(conns, {counters(1, 0, 50), counters(3, 0, 20)});
    EXPECT_TRUE(d.updates.empty());
    EXPECT_TRUE(e.updates.empty());
}

TEST_F(planning_loop_test, kwikd_path_down_event_is_one_down_and_removed_ends_the_watch) {
    auto conns = connection({{1, false}, {2, false}});
    (void)pass(conns, {counters(1, 0, 10), counters(2, 0, 10)});
    api::path_down_body b{};
    b.connection_id = 7;
    b.path_id = 2;
    b.kind = api::path_down_kind::failed;
    (void)api::set_text(b.reason, "no acknowledgement after the failure threshold of probe timeouts");
    auto out = loop.on_path_down(conns.at(7), b, now);
    ASSERT_EQ(out.updates.size(), 1u);
    EXPECT_EQ(describe(out.updates[0].update), "DOWN 2 -> 1");
    EXPECT_NE(out.updates[0].update.reason().find("probe timeouts"), std::string::npos);
    // The same event again changes nothing (already down): no duplicate push.
    EXPECT_TRUE(loop.on_path_down(conns.at(7), b, now).updates.empty());
    b.kind = api::path_down_kind::removed;
    EXPECT_TRUE(loop.on_path_down(conns.at(7), b, now).updates.empty());
    EXPECT_EQ(loop.health().path("conn-a", 2), nullptr);
}

TEST_F(planning_loop_test, kwikd_suspect_event_is_degraded_and_path_up_clears_it) {
    auto conns = connection({{1, false}, {2, false}});
    (void)pass(conns, {counters(1, 0, 10), counters(2, 0, 10)});
    api::path_down_body b{};
    b.connection_id = 7;
    b.path_id = 2;
    b.kind = api::path_down_kind::down;
    (void)api::set_text(b.reason, "no acknowledgement within a probe timeout; its data was sent on other paths");
    auto out = loop.on_path_down(conns.at(7), b, now);
    ASSERT_EQ(out.updates.size(), 1u);
    EXPECT_EQ(describe(out.updates[0].update), "DEGRADED 2");
    EXPECT_EQ(loop.health().path("conn-a", 2)->live.weight, 1.0f) << "no failover on a suspect path";
    auto up = loop.on_path_up(conns.at(7), 2, now);
    ASSERT_EQ(up.updates.size(), 1u);
    EXPECT_EQ(describe(up.updates[0].update), "UP 2");
}

TEST_F(planning_loop_test, weights_go_out_only_past_the_threshold) {
    auto conns = connection({{1, false}, {2, false}});
    auto first = pass(conns, {counters(1, 0, 0), counters(2, 0, 0)});
    ASSERT_EQ(first.out.plans.size(), 1u);
    const auto* w1 = role(first.out, 1);
    ASSERT_NE(w1, nullptr);
    EXPECT_FLOAT_EQ(w1->weight, 0.5f);
    // Equal traffic on both: the same split, nothing sent.
    auto same = pass(conns, {counters(1, 0, 1000), counters(2, 0, 1000)});
    EXPECT_TRUE(same.out.plans.empty());
    // Path 2 carries three times as much for a while: the target moves past 5%, weights step
    // toward it (adaptation_rate 0.2 of the way per plan).
    std::uint64_t a = 1000;
    std::uint64_t b = 1000;
    bool pushed = false;
    for (int i = 0; i < 10 && !pushed; ++i) {
        a += 1000;
        b += 3000;
        auto r = pass(conns, {counters(1, 0, a), counters(2, 0, b)});
        if (!r.out.plans.empty()) {
            pushed = true;
            const auto* step = role(r.out, 2);
            ASSERT_NE(step, nullptr);
            EXPECT_GT(step->weight, 0.5f);
            EXPECT_LT(step->weight, r.out.plans[0].plan.update.path_weights().at(2));
            EXPECT_GT(r.out.plans[0].plan.update.generation(), first.out.plans[0].plan.update.generation());
        }
    }
    EXPECT_TRUE(pushed);
}

TEST_F(planning_loop_test, client_metrics_are_differences_and_unknown_paths_are_counted) {
    auto conns = connection({{1, false}});
    v3::PerformanceMetrics m;
    m.set_connection_id("conn-a");
    auto* p = m.add_paths();
    p->set_path_id(1);
    p->mutable_counters()->set_packets_sent(1000);
    p->mutable_counters()->set_packets_lost(0);
    p->set_delivery_rate_bps(40'000'000);
    p->set_smoothed_rtt_us(12'000);
    auto* unknown = m.add_paths();
    unknown->set_path_id(9);
    auto v1 = loop.on_client_metrics(conns.at(7), m, now);
    EXPECT_EQ(v1.paths_taken, 1u);
    EXPECT_EQ(v1.unknown_paths, std::vector<std::uint64_t>{9});
    EXPECT_TRUE(v1.first_unknown);
    // Second report: 1000 more sent, 100 of them lost: 10% over the interval (the totals, 100 of
    // 2000, would say 5%).
    p->mutable_counters()->set_packets_sent(2000);
    p->mutable_counters()->set_packets_lost(100);
    auto v2 = loop.on_client_metrics(conns.at(7), m, now + second);
    EXPECT_FALSE(v2.first_unknown) << "logged once per connection";
    EXPECT_EQ(loop.counters().client_unknown_paths, 2u);
    now += second;
    auto r = pass(conns, {counters(1, 0, 0)});
    (void)r;
    const auto figures = loop.figures(conns.at(7));
    ASSERT_EQ(figures.size(), 1u);
    EXPECT_NEAR(figures[0].loss_rate, 0.10, 1e-6);
    EXPECT_DOUBLE_EQ(figures[0].rate_bps, 40e6) << "the client's delivery rate, kwikd saw nothing";
    EXPECT_EQ(figures[0].server_address, "10.9.0.1:7707");
    EXPECT_DOUBLE_EQ(figures[0].capacity_bps, 100e6);
}

TEST_F(planning_loop_test, standby_paths_are_scaling_candidates_and_activation_counts_at_once) {
    auto conns = connection({{1, false}, {2, true}, {3, true}});
    conns.at(7).paths.at(3).max_bandwidth_mbps = 0; // unknown: offered like the data paths
    (void)pass(conns, {counters(1, 0, 10), counters(2, 0, 1), counters(3, 0, 1)});
    const auto a = loop.standby_candidates(conns.at(7));
    ASSERT_EQ(a.servers.size(), 2u);
    EXPECT_EQ(a.servers[0].server_id, "standby:2");
    EXPECT_EQ(a.servers[0].available_bps, 100'000'000u);
    EXPECT_EQ(a.servers[1].server_id, "standby:3");
    EXPECT_EQ(a.servers[1].available_bps, 100'000'000u);
    EXPECT_EQ(cp::planning_loop::standby_path_of("standby:3"), 3u);
    EXPECT_EQ(cp::planning_loop::standby_path_of("cp-test"), 0u);
    EXPECT_EQ(cp::planning_loop::standby_path_of("standby:x"), 0u);

    v3::BandwidthScalingRequest q;
    q.set_connection_id("conn-a");
    q.set_trigger(v3::BandwidthScalingRequest::MANUAL);
    q.set_target_bandwidth_mbps(150);
    auto d = loop.bandwidth().decide(q, a, now);
    ASSERT_EQ(d.response.decision(), v3::BandwidthScalingResponse::SCALE_UP) << d.response.reason();
    ASSERT_EQ(d.added.size(), 1u);
    EXPECT_EQ(cp::planning_loop::standby_path_of(d.added[0].server_id), 2u);
    loop.bandwidth().activate_instead("conn-a", d.added[0].path_id, 2);
    // The same request right away: path 2 counts already (150 <= 200), nothing to add.
    q.mutable_policy()->set_scale_up_threshold_percent(80);
    q.mutable_policy()->set_scale_down_threshold_percent(30);
    q.mutable_policy()->set_min_paths(1);
    q.mutable_policy()->set_max_paths(8);
    q.mutable_policy()->set_cooldown_seconds(0);
    auto again = loop.bandwidth().decide(q, loop.standby_candidates(conns.at(7)), now + second);
    EXPECT_NE(again.response.decision(), v3::BandwidthScalingResponse::SCALE_UP) << again.response.reason();

    // A standby path no report showed yet (it came after the last pass): the planned entry
    // stands for it, so it counts at once as well.
    cp::bandwidth_manager fresh;
    cp::path_metrics one;
    one.connection_id = "conn-b";
    one.path_id = 1;
    one.server_id = "cp-test";
    one.capacity_bps = 100'000'000;
    fresh.observe("conn-b", std::span<const cp::path_metrics>(&one, 1), now);
    cp::server_availability spare;
    spare.servers.push_back({cp::planning_loop::standby_server(4), "10.9.0.1:7707", 100'000'000, 100'000'000, 0, 1.0, true});
    q.set_connection_id("conn-b");
    auto up = fresh.decide(q, spare, now);
    ASSERT_EQ(up.response.decision(), v3::BandwidthScalingResponse::SCALE_UP) << up.response.reason();
    ASSERT_EQ(up.added.size(), 1u);
    fresh.activate_instead("conn-b", up.added[0].path_id, 4);
    q.set_target_bandwidth_mbps(50);
    auto down = fresh.decide(q, {}, now + second);
    ASSERT_EQ(down.response.decision(), v3::BandwidthScalingResponse::SCALE_DOWN) << down.response.reason();
    EXPECT_EQ(down.response.old_path_count(), 2u) << "path 4 counts before any report";
}

TEST_F(planning_loop_test, a_plan_never_takes_the_id_of_a_path_added_since_the_last_pass) {
    (void)pass(connection({{1, false}}), {counters(1, 0, 10)});
    auto later = connection({{1, false}, {2, true}}); // path 2 came after the pass
    loop.ensure_observed(later.at(7), now);
    v3::BandwidthScalingRequest q;
    q.set_connection_id("conn-a");
    q.set_trigger(v3::BandwidthScalingRequest::MANUAL);
    q.set_target_bandwidth_mbps(150);
    auto d = loop.bandwidth().decide(q, loop.standby_candidates(later.at(7)), now);
    ASSERT_EQ(d.response.decision(), v3::BandwidthScalingResponse::SCALE_UP) << d.response.reason();
    ASSERT_EQ(d.added.size(), 1u);
    EXPECT_GT(d.added[0].path_id, 2u);
    loop.bandwidth().activate_instead("conn-a", d.added[0].path_id, 2);
    q.set_target_bandwidth_mbps(50);
    q.mutable_policy()->set_scale_up_threshold_percent(80);
    q.mutable_policy()->set_scale_down_threshold_percent(30);
    q.mutable_policy()->set_min_paths(1);
    q.mutable_policy()->set_max_paths(8);
    q.mutable_policy()->set_cooldown_seconds(0);
    auto down = loop.bandwidth().decide(q, {}, now + second);
    ASSERT_EQ(down.response.decision(), v3::BandwidthScalingResponse::SCALE_DOWN) << down.response.reason();
    EXPECT_EQ(down.response.old_path_count(), 2u);
}

} // namespace
