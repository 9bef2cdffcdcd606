// Unit tests for controlplane/server/planning/health_monitor: check scheduling and sequence
// numbers, RTT from the echoed send time, failure after N failed checks (timeouts or UNHEALTHY)
// or at once on kwikd's path_down, the failover target order (standby path, another path,
// another server, none), the PathStatusUpdate sequence DOWN -> UP with the actions that restore
// the roles, server failures, and DEGRADED thresholds with hysteresis.
#include "controlplane/server/planning/health_monitor.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <string>
#include <vector>

namespace kwik::cp {
namespace {

using status_msg = kcp::v3::PathStatusUpdate;
using check_status = kcp::v3::HealthCheckResponse;
using action_kind = health_action::kind;

constexpr time_us ms = us_per_ms;

const health_config config{.check_interval_us = 1000 * ms,
                           .check_timeout_us = 500 * ms,
                           .failure_threshold = 3,
                           .recovery_threshold = 2,
                           .degraded_rtt_us = 200'000,
                           .degraded_loss = 0.05f,
                           .clear_fraction = 0.8};

path_metrics path(std::uint64_t id, std::string server, float weight, bool standby = false,
                  std::uint32_t srtt_us = 10'000, std::string connection = "c") {
    path_metrics m;
    m.connection_id = connection;
    m.path_id = id;
    m.server_id = server;
    m.server_address = "addr-" + server;
    m.weight = weight;
    m.standby = standby;
    m.smoothed_rtt_us = srtt_us;
    return m;
}

kcp::v3::HealthCheckResponse answer(const kcp::v3::HealthCheckRequest& req, check_status::Status status,
                                std::string reason = {}) {
    kcp::v3::HealthCheckResponse r;
    r.set_sequence(req.sequence());
    r.set_connection_id(req.connection_id());
    if (req.target_case() == kcp::v3::HealthCheckRequest::kPathId) {
        r.set_path_id(req.path_id());
    } else {
        r.set_server_id(req.server_id());
    }
    r.set_request_sent_at_us(req.sent_at_us());
    r.set_status(status);
    r.set_reason(std::move(reason));
    return r;
}

// A compact form of the actions, for whole-sequence comparisons.
std::vector<std::string> describe(const std::vector<health_action>& actions) {
    std::vector<std::string> out;
    for (const health_action& a : actions) {
        switch (a.what) {
        case action_kind::set_weight: {
            char w[32];
            std::snprintf(w, sizeof w, "%.2f", a.weight);
            out.push_back("weight " + std::to_string(a.path_id) + " " + w);
            break;
        }
        case action_kind::set_standby:
            out.push_back(std::string(a.standby ? "standby " : "active ") + std::to_string(a.path_id));
            break;
        case action_kind::open_path:
            out.push_back("open on " + a.server_id + " for " + std::to_string(a.path_id));
            break;
        }
    }
    return out;
}

std::vector<std::string> describe(const std::vector<status_msg>& updates) {
    std::vector<std::string> out;
    for (const status_msg& u : updates) {
        std::string s = status_msg::Status_Name(u.status()) + " " + std::to_string(u.path_id());
        if (u.failover_path_id() != 0) {
            s += " -> " + std::to_string(u.failover_path_id());
        }
        out.push_back(s);
    }
    return out;
}

// Which checks a run answers (HEALTHY); the others go unanswered and time out.
using responder = std::function<bool(const kcp::v3::HealthCheckRequest&)>;

responder all_but(std::vector<std::uint64_t> silent_paths) {
    return [silent_paths](const kcp::v3::HealthCheckRequest& req) {
        return req.target_case() != kcp::v3::HealthCheckRequest::kPathId ||
               std::find(silent_paths.begin(), silent_paths.end(), req.path_id()) == silent_paths.end();
    };
}

responder only(kcp::v3::HealthCheckRequest::TargetCase kind) {
    return [kind](const kcp::v3::HealthCheckRequest& req) { return req.target_case() == kind; };
}

// Runs the monitor for `seconds` intervals from `start`: tick at each second (sending checks),
// the answers `answers` picks 20 ms later, tick at +500 ms (time-outs). Returns every update
// and action, in order.
health_output run(health_monitor& m, time_us start, int seconds, const responder& answers) {
    health_output all;
    auto take = [&](const health_output& o) {
        all.updates.insert(all.updates.end(), o.updates.begin(), o.updates.end());
        all.actions.insert(all.actions.end(), o.actions.begin(), o.actions.end());
    };
    for (int s = 0; s < seconds; ++s) {
        const time_us t = start + static_cast<time_us>(s) * us_per_s;
        const health_output sent = m.tick(t);
        take(sent);
        for (const kcp::v3::HealthCheckRequest& req : sent.requests) {
            if (answers(req)) {
                take(m.on_response(answer(req, check_status::HEALTHY), t + 20 * ms));
            }
        }
        take(m.tick(t + 500 * ms));
    }
    return all;
}

TEST(health_monitor, schedules_one_check_per_target_per_interval_with_increasing_sequences) {
    health_monitor m(config);
    m.watch_path(path(1, "S1", 0.6f), 0);
    m.watch_path(path(2, "S2", 0.4f), 0);
    m.watch_server("S1", "addr-S1", 0);

    health_output out = m.tick(0);
    ASSERT_EQ(out.requests.size(), 3u);
    EXPECT_EQ(out.requests[0].server_id(), "S1");
    EXPECT_TRUE(out.requests[0].connection_id().empty());
    EXPECT_EQ(out.requests[1].connection_id(), "c");
    EXPECT_EQ(out.requests[1].path_id(), 1u);
    EXPECT_EQ(out.requests[2].path_id(), 2u);
    for (std::size_t i = 0; i < 3; ++i) {
        EXPECT_EQ(out.requests[i].sequence(), i + 1);
        EXPECT_EQ(out.requests[i].sent_at_us(), 0u);
    }
    EXPECT_TRUE(m.tick(0).requests.empty());        // one in flight per target
    EXPECT_TRUE(m.tick(400 * ms).requests.empty()); // not due yet

    // Answered: RTT from the send time; the next check is due one interval after the last.
    EXPECT_TRUE(m.on_response(answer(out.requests[1], check_status::HEALTHY), 30 * ms).updates.empty());
    EXPECT_EQ(m.path("c", 1)->check.last_rtt_us, 30'000u);
    EXPECT_EQ(m.path("c", 1)->check.srtt_us, 30'000u);
    EXPECT_TRUE(m.tick(999 * ms).requests.empty()); // the other two time out here; none is due yet
    EXPECT_EQ(m.stats().timeouts, 2u);
    out = m.tick(1000 * ms);
    ASSERT_EQ(out.requests.size(), 3u);
    for (std::size_t i = 0; i < 3; ++i) {
        EXPECT_EQ(out.requests[i].sequence(), i + 4);
        EXPECT_EQ(out.requests[i].sent_at_us(), 1000 * ms);
    }
    EXPECT_EQ(m.stats().checks_sent, 6u);
    EXPECT_EQ(m.stats().responses, 1u);
}

TEST(health_monitor, path_fails_after_n_missed_checks_and_fails_over_to_the_standby) {
    health_monitor m(config);
    m.watch_path(path(1, "S1", 0.6f), 0);
    m.watch_path(path(2, "S2", 0.4f), 0);
    m.watch_path(path(3, "S3", 1.0f, true), 0);

    // Path 1 stops answering at 0 s; misses at 0.5, 1.5 and 2.5 s: DOWN at the third.
    health_output o = run(m, 0, 2, all_but({1}));
    EXPECT_TRUE(o.updates.empty());
    EXPECT_TRUE(o.actions.empty());
    EXPECT_EQ(m.path("c", 1)->check.failures, 2u);
    EXPECT_EQ(m.path("c", 1)->state, health_state::up);

    o = run(m, 2 * us_per_s, 1, all_but({1}));
    EXPECT_EQ(describe(o.updates), (std::vector<std::string>{"DOWN 1 -> 3", "UP 3"}));
    EXPECT_EQ(describe(o.actions), (std::vector<std::string>{"weight 1 0.00", "active 3", "weight 3 0.60"}));
    EXPECT_EQ(o.updates[0].connection_id(), "c");
    EXPECT_EQ(o.updates[0].reason(),
              "3 failed health checks in a row (last: no answer within 500 ms); standby path 3 takes over");
    EXPECT_EQ(o.updates[1].reason(), "takes over the traffic of path 1");
    EXPECT_EQ(m.path("c", 1)->state, health_state::down);
    EXPECT_EQ(m.path("c", 1)->failover_path_id, 3u);
    EXPECT_EQ(m.path("c", 3)->live.standby, false);
    EXPECT_EQ(m.stats().timeouts, 3u);

    // Back: one healthy check is not enough (M = 2); the second brings it UP and restores roles.
    o = run(m, 3 * us_per_s, 1, all_but({}));
    EXPECT_TRUE(o.updates.empty());
    EXPECT_EQ(m.path("c", 1)->check.healthy, 1u);
    o = run(m, 4 * us_per_s, 1, all_but({}));
    EXPECT_EQ(describe(o.updates), (std::vector<std::string>{"UP 1", "STANDBY 3"}));
    EXPECT_EQ(describe(o.actions),
              (std::vector<std::string>{"weight 1 0.60", "standby 3", "weight 3 1.00"}));
    EXPECT_EQ(o.updates[0].reason(), "recovered: 2 healthy checks in a row");
    EXPECT_EQ(o.updates[1].reason(), "path 1 recovered; back to standby");
    EXPECT_EQ(m.path("c", 1)->failover_path_id, 0u);
    EXPECT_TRUE(m.path("c", 3)->covering.empty());
    EXPECT_EQ(m.path("c", 3)->live.standby, true);
    EXPECT_EQ(m.path("c", 3)->live.weight, 1.0f);
}

TEST(health_monitor, recovery_needs_consecutive_healthy_checks) {
    health_monitor m(config);
    m.watch_path(path(1, "S1", 1.0f), 0);
    m.watch_path(path(2, "S2", 1.0f), 0);
    health_output o = m.on_path_down("c", 1, "probe timeouts exhausted", 0);
    EXPECT_EQ(describe(o.updates), (std::vector<std::string>{"DOWN 1 -> 2"}));
    EXPECT_EQ(o.updates[0].reason(), "data plane: probe timeouts exhausted; path 2 carries its traffic");
    EXPECT_EQ(describe(o.actions), (std::vector<std::string>{"weight 1 0.00"}));
    EXPECT_TRUE(m.on_path_down("c", 1, "again", 0).updates.empty()); // already down

    (void)run(m, 0, 1, all_but({}));         // healthy 1
    (void)run(m, us_per_s, 1, all_but({1})); // a miss: back to 0
    EXPECT_EQ(m.path("c", 1)->check.healthy, 0u);
    EXPECT_EQ(m.path("c", 1)->state, health_state::down);
    o = m.on_path_up("c", 1, 2 * us_per_s); // kwikd's path_up counts as one
    EXPECT_TRUE(o.updates.empty());
    o = run(m, 2 * us_per_s, 1, all_but({}));
    EXPECT_EQ(describe(o.updates), (std::vector<std::string>{"UP 1"}));
    EXPECT_EQ(describe(o.actions), (std::vector<std::string>{"weight 1 1.00"}));
}

TEST(health_monitor, a_suspect_path_is_degraded_not_failed_over) {
    health_monitor m(config);
    m.watch_path(path(1, "S1", 1.0f), 0);
    m.watch_path(path(2, "S2", 1.0f), 0);
    health_output o = m.on_path_suspect("c", 1, "no acknowledgement within a probe timeout", 0);
    EXPECT_EQ(describe(o.updates), (std::vector<std::string>{"DEGRADED 1"}));
    EXPECT_EQ(o.updates[0].reason(), "data plane: no acknowledgement within a probe timeout");
    EXPECT_TRUE(o.actions.empty()) << "a suspect path keeps its weight: no failover";
    EXPECT_EQ(m.path("c", 1)->state, health_state::degraded);
    EXPECT_TRUE(m.on_path_suspect("c", 1, "again", 0).updates.empty());
    // Healthy metrics and checks do not clear what the data plane said; its path_up does.
    (void)run(m, 0, 1, all_but({}));
    EXPECT_EQ(m.path("c", 1)->state, health_state::degraded);
    o = m.on_path_up("c", 1, us_per_s);
    EXPECT_EQ(describe(o.updates), (std::vector<std::string>{"UP 1"}));
    EXPECT_EQ(o.updates[0].reason(), "data plane: acknowledged again");
    // Suspect, then failed: DOWN with failover, as before.
    (void)m.on_path_suspect("c", 2, "no acknowledgement within a probe timeout", 2 * us_per_s);
    o = m.on_path_down("c", 2, "no acknowledgement after the failure threshold of probe timeouts", 2 * us_per_s);
    EXPECT_EQ(describe(o.updates), (std::vector<std::string>{"DOWN 2 -> 1"}));
    EXPECT_EQ(describe(o.actions), (std::vector<std::string>{"weight 2 0.00"}));
}

TEST(health_monitor, unhealthy_answers_count_as_failed_checks) {
    health_monitor m(config);
    m.watch_path(path(1, "S1", 1.0f), 0);
    health_output o;
    for (int i = 0; i < 3; ++i) {
        const health_output sent = m.tick(static_cast<time_us>(i) * us_per_s);
        ASSERT_EQ(sent.requests.size(), 1u);
        o = m.on_response(answer(sent.requests[0], check_status::UNHEALTHY, "port0 link down"),
                          static_cast<time_us>(i) * us_per_s + 10 * ms);
        EXPECT_EQ(o.updates.empty(), i < 2);
    }
    ASSERT_EQ(o.updates.size(), 1u);
    EXPECT_EQ(o.updates[0].status(), status_msg::DOWN);
    EXPECT_EQ(o.updates[0].reason(),
              "3 failed health checks in a row (last: UNHEALTHY: port0 link down); no failover target");
    EXPECT_EQ(m.stats().responses, 3u);
}

struct failover_case {
    const char* description;
    std::vector<path_metrics> others; // besides path 1 (S1, weight 0.5), which fails
    std::vector<server_candidate> servers;
    std::vector<std::string> expected_updates;
    std::vector<std::string> expected_actions;
};

server_candidate candidate(std::string id, std::uint32_t latency_us, std::uint64_t available_bps = 1'000'000'000,
                           bool healthy = true) {
    server_candidate s;
    s.server_id = id;
    s.address = "addr-" + id;
    s.latency_us = latency_us;
    s.available_bps = available_bps;
    s.healthy = healthy;
    return s;
}

const std::vector<failover_case> failover_cases{
    {"a standby path first, even with active paths around",
     {path(2, "S2", 0.5f), path(3, "S3", 1.0f, true)}, {},
     {"DOWN 1 -> 3", "UP 3"}, {"weight 1 0.00", "active 3", "weight 3 0.50"}},
    {"of two standby paths, the lower RTT",
     {path(2, "S2", 1.0f, true, 30'000), path(3, "S3", 1.0f, true, 20'000)}, {},
     {"DOWN 1 -> 3", "UP 3"}, {"weight 1 0.00", "active 3", "weight 3 0.50"}},
    {"no standby: the active path with the lowest RTT",
     {path(2, "S2", 0.3f, false, 30'000), path(4, "S2", 0.2f, false, 10'000)}, {},
     {"DOWN 1 -> 4"}, {"weight 1 0.00"}},
    {"no other path: another server (not its own, healthy, with room, lowest latency)",
     {},
     {candidate("S1", 100), candidate("S2", 200, 1'000'000'000, false), candidate("S3", 5000),
      candidate("S4", 300, 0), candidate("S5", 2000)},
     {"DOWN 1"}, {"weight 1 0.00", "open on S5 for 1"}},
    {"nothing at all", {}, {candidate("S1", 100)}, {"DOWN 1"}, {"weight 1 0.00"}},
};

TEST(health_monitor, failover_target_order) {
    for (const failover_case& c : failover_cases) {
        SCOPED_TRACE(c.description);
        health_monitor m(config);
        m.watch_path(path(1, "S1", 0.5f), 0);
        for (const path_metrics& p : c.others) {
            m.watch_path(p, 0);
        }
        m.set_failover_servers(server_availability{c.servers});
        const health_output o = m.on_path_down("c", 1, "liveness timeout", 0);
        EXPECT_EQ(describe(o.updates), c.expected_updates);
        EXPECT_EQ(describe(o.actions), c.expected_actions);
        ASSERT_FALSE(o.updates.empty());
        EXPECT_FALSE(o.updates[0].reason().empty());
    }
}

TEST(health_monitor, server_failure_takes_its_paths_down_and_avoids_it_for_failover) {
    health_monitor m(config);
    m.watch_server("S1", "addr-S1", 0);
    m.watch_path(path(1, "S1", 0.7f), 0);
    m.watch_path(path(2, "S2", 0.3f), 0);
    m.watch_path(path(3, "S1", 1.0f, true), 0); // a standby on the failing server: no use
    // Paths answer; the server does not.
    const health_output all = run(m, 0, 3, only(kcp::v3::HealthCheckRequest::kPathId));
    EXPECT_EQ(m.server("S1")->state, health_state::down);
    EXPECT_EQ(describe(all.updates), (std::vector<std::string>{"DOWN 1 -> 2", "DOWN 3"}));
    EXPECT_EQ(describe(all.actions), (std::vector<std::string>{"weight 1 0.00", "weight 3 0.00"}));
    EXPECT_EQ(all.updates[0].reason(),
              "server S1 failed: 3 failed health checks in a row (last: no answer within 500 ms); "
              "path 2 carries its traffic");
    EXPECT_EQ(all.updates[1].reason().find("a standby path: no traffic to move") != std::string::npos, true);

    // The server answers again: up after M checks, its paths still recover on their own.
    (void)run(m, 3 * us_per_s, 2, only(kcp::v3::HealthCheckRequest::kServerId));
    EXPECT_EQ(m.server("S1")->state, health_state::up);
    EXPECT_EQ(m.path("c", 1)->state, health_state::down);
}

TEST(health_monitor, degraded_thresholds_with_hysteresis) {
    health_monitor m(config);
    m.watch_path(path(1, "S1", 1.0f), 0);
    path_metrics metrics = path(1, "S1", 1.0f, false, 150'000);
    metrics.delivery_rate_bps = 42'000'000;

    EXPECT_TRUE(m.on_metrics(metrics, 0).updates.empty());
    metrics.smoothed_rtt_us = 250'000;
    health_output o = m.on_metrics(metrics, 0);
    ASSERT_EQ(describe(o.updates), (std::vector<std::string>{"DEGRADED 1"}));
    EXPECT_EQ(o.updates[0].reason(), "smoothed RTT 250.0 ms >= 200.0 ms");
    EXPECT_EQ(o.updates[0].smoothed_rtt_us(), 250'000u);
    EXPECT_EQ(o.updates[0].bandwidth_bps(), 42'000'000u);
    EXPECT_TRUE(o.actions.empty()); // DEGRADED moves nothing: the planner's weights do
    EXPECT_TRUE(m.on_metrics(metrics, 0).updates.empty()); // reported once

    metrics.smoothed_rtt_us = 180'000; // below the threshold, not below 80% of it: still degraded
    EXPECT_TRUE(m.on_metrics(metrics, 0).updates.empty());
    metrics.smoothed_rtt_us = 150'000;
    o = m.on_metrics(metrics, 0);
    EXPECT_EQ(describe(o.updates), (std::vector<std::string>{"UP 1"}));
    EXPECT_EQ(o.updates[0].reason(), "RTT and loss back below 80% of their thresholds");

    metrics.loss_rate = 0.06f;
    o = m.on_metrics(metrics, 0);
    ASSERT_EQ(describe(o.updates), (std::vector<std::string>{"DEGRADED 1"}));
    EXPECT_EQ(o.updates[0].reason(), "loss rate 6.00% >= 5.00%");
    metrics.loss_rate = 0.045f;
    EXPECT_TRUE(m.on_metrics(metrics, 0).updates.empty());
    metrics.loss_rate = 0.03f;
    EXPECT_EQ(describe(m.on_metrics(metrics, 0).updates), (std::vector<std::string>{"UP 1"}));
}

TEST(health_monitor, degraded_answer_marks_the_path_until_a_healthy_one) {
    health_monitor m(config);
    m.watch_path(path(1, "S1", 1.0f), 0);
    health_output sent = m.tick(0);
    health_output o = m.on_response(answer(sent.requests[0], check_status::DEGRADED, "tx_ring 90% full"), 10 * ms);
    ASSERT_EQ(describe(o.updates), (std::vector<std::string>{"DEGRADED 1"}));
    EXPECT_EQ(o.updates[0].reason(), "health check: tx_ring 90% full");
    sent = m.tick(us_per_s);
    o = m.on_response(answer(sent.requests[0], check_status::HEALTHY), us_per_s + 10 * ms);
    EXPECT_EQ(describe(o.updates), (std::vector<std::string>{"UP 1"}));
}

TEST(health_monitor, answers_that_match_nothing_are_counted_and_ignored) {
    health_monitor m(config);
    m.watch_path(path(1, "S1", 1.0f), 0);
    m.watch_path(path(2, "S2", 1.0f), 0);
    const health_output sent = m.tick(0);
    ASSERT_EQ(sent.requests.size(), 2u);

    kcp::v3::HealthCheckResponse wrong_target = answer(sent.requests[0], check_status::UNHEALTHY);
    wrong_target.set_path_id(2);
    EXPECT_TRUE(m.on_response(wrong_target, 10 * ms).updates.empty());
    kcp::v3::HealthCheckResponse unknown = answer(sent.requests[0], check_status::HEALTHY);
    unknown.set_sequence(999);
    EXPECT_TRUE(m.on_response(unknown, 10 * ms).updates.empty());
    EXPECT_EQ(m.stats().unmatched, 2u);
    EXPECT_EQ(m.path("c", 1)->check.failures, 0u);

    // Late: the check timed out first (a failure), the answer after it changes nothing.
    (void)m.tick(500 * ms);
    EXPECT_EQ(m.path("c", 1)->check.failures, 1u);
    (void)m.on_response(answer(sent.requests[0], check_status::HEALTHY), 600 * ms);
    EXPECT_EQ(m.stats().unmatched, 3u);
    EXPECT_EQ(m.path("c", 1)->check.failures, 1u);
}

TEST(health_monitor, roles_set_by_the_caller_are_restored_not_the_failover_ones) {
    health_monitor m(config);
    m.watch_path(path(1, "S1", 0.5f), 0);
    m.watch_path(path(2, "S2", 1.0f, true), 0);
    m.watch_path(path(1, "S1", 0.8f), 0); // the planner moved path 1's weight: taken
    EXPECT_EQ(m.path("c", 1)->original.weight, 0.8f);
    health_output o = m.on_path_down("c", 1, "down", 0);
    EXPECT_EQ(describe(o.actions), (std::vector<std::string>{"weight 1 0.00", "active 2", "weight 2 0.80"}));
    // While the failover holds, new roles for either path are not taken.
    m.watch_path(path(1, "S1", 0.1f), 0);
    m.watch_path(path(2, "S2", 0.3f, false), 0);
    EXPECT_EQ(m.path("c", 2)->original.standby, true);
    o = m.on_path_up("c", 1, 0);
    o = m.on_path_up("c", 1, 0);
    EXPECT_EQ(describe(o.actions), (std::vector<std::string>{"weight 1 0.80", "standby 2", "weight 2 1.00"}));

    // Path 1 removed while path 2 stood in for it: path 2 keeps carrying.
    (void)m.on_path_down("c", 1, "down", 0);
    m.unwatch_path("c", 1);
    EXPECT_EQ(m.path("c", 1), nullptr);
    EXPECT_TRUE(m.path("c", 2)->covering.empty());
    EXPECT_EQ(m.path("c", 2)->original.standby, false);
}

} // namespace
} // namespace kwik::cp
