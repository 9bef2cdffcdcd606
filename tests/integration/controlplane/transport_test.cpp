// kwik-cp's TransportCommand, BandwidthScalingRequest and planning loop in-process on a real
// loopback socket (plain TCP), against a kwikd on net_null: every command type with its
// TransportResponse (FAILURE naming the field, IN_PROGRESS then the outcome), a scale-up that
// activates a standby path (kwikd's own state, read back by a fresh kwik-cp, shows it), the
// cooldown refusing the next one, a path kwikd fails (nobody answers on net_null) pushed DOWN
// with the standby taking over, a kwikd restart ending the session's connection (REMOVED, the
// session closed) while static connections are pushed again, kwikd closing a connection (idle
// timeout), LoadBalancingUpdates after weights change, and PerformanceMetrics
// for unknown paths or another connection counted and ignored.
// Usage (meson passes it): transport_test <kwikd>
#include <gtest/gtest.h>

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "controlplane/kcp/client.hpp"
#include "controlplane/server/kwik_cp/control_server.hpp"
#include "tests/integration/controlplane/kcp_hello.hpp"
#include "tests/integration/controlplane/kwikd_process.hpp"
#include "tests/integration/controlplane/server_loop.hpp"

namespace {

namespace fs = std::filesystem;
using namespace kwik;
using namespace std::chrono_literals;
using kcp::KCPMessage;
namespace v3 = kcp::v3;
using command = v3::TransportCommand;
using response = v3::TransportResponse;

std::string g_kwikd;

class transport_test : public ::testing::Test {
protected:
    void SetUp() override {
        name = "kwiktr" + std::to_string(::getpid());
        dir = fs::temp_directory_path() / name;
        fs::create_directories(dir);
        EXPECT_TRUE(cp::random_bytes(key).ok());
        start_server();
    }
    void TearDown() override {
        loop.reset();
        server.reset();
        if (HasFailure()) {
            test::print_logs(dir);
        }
        fs::remove_all(dir);
    }
    void start_server() {
        cp::control_server_config c;
        c.listen_address = "127.0.0.1";
        c.listen_port = 0;
        c.hello.server_id = "cp-test";
        c.keys = cp::key_store({cp::key_entry{"edge-01", key, {}, false}});
        c.link.region_name = name;
        c.link.retry_interval = 50'000'000;
        c.link.max_queued = max_queued;
        c.self.server_id = "cp-test";
        c.self.server.set_address("127.0.0.1:7708");
        c.planning.interval = 100ms;
        c.planning.health.check_interval_us = 100'000;
        c.planning.health.failure_threshold = 2;
        c.planning.health.recovery_threshold = 2;
        if (configure) {
            configure(c);
        }
        auto s = cp::control_server::create(std::move(c));
        ASSERT_TRUE(s.ok()) << s.message();
        server = std::move(s.value());
        loop.emplace(*server);
    }
    // A client session with an accepted hello; conn is its connection id.
    std::size_t max_queued = 65536; // the link's, for start_server
    std::function<void(cp::control_server_config&)> configure; // more settings, for start_server
    std::unique_ptr<kcp::blocking_client> session() {
        auto c = kcp::blocking_client::connect("127.0.0.1:" + std::to_string(server->port()), {});
        EXPECT_TRUE(c.ok()) << c.message();
        if (!c.ok()) {
            return nullptr;
        }
        cp::client_credentials cr;
        cr.client_id = "client-a";
        cr.key_id = "edge-01";
        cr.key = key;
        const auto accepted = test::two_round_hello(**c, cr);
        EXPECT_EQ(accepted.auth_result(), v3::ServerHello::ACCEPTED) << accepted.error_reason();
        conn = accepted.connection_id();
        return std::move(c.value());
    }
    KCPMessage transport(const std::string& id, command::CommandType type, std::string data = {}) const {
        KCPMessage m;
        auto* t = m.mutable_transport_command();
        t->set_command_id(id);
        t->set_type(type);
        t->set_connection_id(conn);
        t->set_transport_data(std::move(data));
        return m;
    }
    std::string add_path(std::uint64_t id, bool standby, const std::string& local = "10.9.0.1") const {
        v3::AddPathCommand a;
        a.set_path_id(id);
        a.set_standby(standby);
        a.set_max_bandwidth_mbps(100);
        a.mutable_path()->set_ip_version(v3::UdpPath::IPV4);
        a.mutable_path()->set_local_address(local);
        a.mutable_path()->set_local_port(7707);
        a.mutable_path()->set_remote_address("10.9.0.2");
        a.mutable_path()->set_remote_port(static_cast<std::uint32_t>(5000 + id));
        return a.SerializeAsString();
    }
    // The first reply of a command (asserted IN_PROGRESS when `in_progress`), then its outcome.
    response run(kcp::blocking_client& c, const KCPMessage& m, bool in_progress = true) {
        auto first = c.request(m, 30s); // the first command waits for kwikd's EAL start
        EXPECT_TRUE(first.ok()) << first.message();
        if (!first.ok()) {
            return {};
        }
        EXPECT_EQ(first->transport_response().command_id(), m.transport_command().command_id());
        if (!in_progress) {
            return first->transport_response();
        }
        EXPECT_EQ(first->transport_response().status(), response::IN_PROGRESS)
            << first->transport_response().error_message();
        const KCPMessage* last = wait_for(c, 20s, [&](const KCPMessage& x) {
            return x.has_transport_response() &&
                   x.transport_response().command_id() == m.transport_command().command_id();
        });
        return last != nullptr ? last->transport_response() : response{};
    }
    // Receives until pred holds for a message (kept in `pushed` with every other one).
    const KCPMessage* wait_for(kcp::blocking_client& c, std::chrono::milliseconds timeout,
                               const std::function<bool(const KCPMessage&)>& pred) {
        for (std::size_t i = seen; i < pushed.size(); ++i) {
            if (pred(pushed[i])) {
                seen = i + 1;
                return &pushed[i];
            }
        }
        seen = pushed.size();
        const auto deadline = std::chrono::steady_clock::now() + timeout;
        while (std::chrono::steady_clock::now() < deadline) {
            auto m = c.receive(100ms);
            if (!m.ok()) {
                continue;
            }
            pushed.push_back(std::move(m.value()));
            seen = pushed.size();
            if (pred(pushed.back())) {
                return &pushed.back();
            }
        }
        return nullptr;
    }
    // What kwikd holds, by list_state from a link of its own (kwik-cp stopped first: one control
    // process at a time); check adopted().
    std::unique_ptr<cp::dataplane_link> kwikd_state() const {
        cp::link_config lc;
        lc.region_name = name;
        lc.retry_interval = 50'000'000;
        auto link = std::make_unique<cp::dataplane_link>(lc, cp::link_callbacks{});
        const auto deadline = std::chrono::steady_clock::now() + 10s;
        while (!link->adopted() && std::chrono::steady_clock::now() < deadline) {
            link->poll(static_cast<cp::time_ns>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                                    std::chrono::steady_clock::now().time_since_epoch())
                                                    .count()));
            std::this_thread::sleep_for(1ms);
        }
        return link;
    }
    bool status_update(const KCPMessage& m, std::uint64_t path, v3::PathStatusUpdate::Status st) const {
        return m.has_path_status() && m.path_status().path_id() == path && m.path_status().status() == st;
    }

    std::string name;
    fs::path dir;
    cp::bytes32 key{};
    std::string conn;
    std::unique_ptr<cp::control_server> server;
    std::optional<test::server_loop> loop; // declared after server: stops before it goes
    std::vector<KCPMessage> pushed;
    std::size_t seen = 0;
};

// No kwikd, and a link queue of one command (the hello's add_connection fills it): a command
// that cannot be queued is answered FAILURE alone (no IN_PROGRESS before or after it), and the
// desired state keeps nothing of it.
TEST_F(transport_test, a_full_link_queue_fails_the_command_at_once_and_records_nothing) {
    loop.reset();
    server.reset();
    max_queued = 1;
    start_server();
    auto c = session();
    ASSERT_TRUE(c);
    for (const auto& [id, m] : {std::pair{"e", transport("e", command::ESTABLISH_PATH, add_path(1, false))},
                                std::pair{"q", [&] {
                                              KCPMessage u = transport("q", command::UPDATE_QOS);
                                              u.mutable_transport_command()->mutable_options()->mutable_qos();
                                              return u;
                                          }()}}) {
        SCOPED_TRACE(id);
        const response r = run(*c, m, false);
        EXPECT_EQ(r.status(), response::FAILURE);
        EXPECT_EQ(r.error_message(),
                  "kwik-cp cannot send it now: too many commands waiting for kwikd (1 queued, link max_queued 1)");
        const auto later = c->receive(300ms);
        EXPECT_FALSE(later.ok()) << "nothing follows the answer: " << later->DebugString();
    }
    loop->pause();
    const auto& connections = server->link().connections();
    ASSERT_EQ(connections.size(), 1u);
    EXPECT_TRUE(connections.begin()->second.paths.empty()) << "the refused path is not desired";
    loop->resume();
}

TEST_F(transport_test, bad_commands_fail_naming_the_field) {
    auto c = session();
    ASSERT_TRUE(c);
    struct bad_case {
        const char* what;
        KCPMessage m;
        const char* reason;
    };
    std::vector<bad_case> cases;
    cases.push_back({"no command id", transport("", command::SYNC_STATE), "transport_command.command_id"});
    cases.push_back({"unknown type", transport("t", static_cast<command::CommandType>(17)), "transport_command.type"});
    KCPMessage other = transport("o", command::SYNC_STATE);
    other.mutable_transport_command()->set_connection_id("someone-else");
    cases.push_back({"another connection", other, "transport_command.connection_id"});
    cases.push_back({"establish without data", transport("e1", command::ESTABLISH_PATH),
                     "transport_command.transport_data: ESTABLISH_PATH carries a serialized AddPathCommand; it is empty"});
    cases.push_back({"establish with garbage", transport("e2", command::ESTABLISH_PATH, std::string("\x0a\x05" "ab", 4)),
                     "it does not parse as one"});
    cases.push_back({"establish path 0", transport("e3", command::ESTABLISH_PATH, add_path(0, false)),
                     "transport_data.path_id: 0"});
    cases.push_back({"establish on a bad address", transport("e4", command::ESTABLISH_PATH, add_path(1, false, "10.9.0")),
                     "transport_data.path.local_address"});
    KCPMessage elsewhere = transport("e5", command::ESTABLISH_PATH, add_path(1, false));
    elsewhere.mutable_transport_command()->mutable_options()->add_preferred_servers("cp-elsewhere");
    cases.push_back({"preferred servers without this one", elsewhere, "options.preferred_servers"});
    v3::RemovePathCommand rm;
    rm.set_path_id(42);
    cases.push_back({"close an unknown path", transport("c1", command::CLOSE_PATH, rm.SerializeAsString()),
                     "transport_data.path_id: 42 is not a path of this connection"});
    cases.push_back({"scale without a target", transport("s1", command::SCALE_BANDWIDTH), "options.target_bandwidth_mbps"});
    cases.push_back({"qos without qos", transport("q1", command::UPDATE_QOS), "options.qos: required"});
    KCPMessage loss = transport("q2", command::UPDATE_QOS);
    loss.mutable_transport_command()->mutable_options()->mutable_qos()->set_max_packet_loss_rate(2.0f);
    cases.push_back({"qos loss above 1", loss, "options.qos.max_packet_loss_rate"});
    cases.push_back({"sync without kwikd", transport("y1", command::SYNC_STATE), "kwikd is not attached"});
    for (const auto& k : cases) {
        auto a = c->request(k.m, 5s);
        ASSERT_TRUE(a.ok()) << k.what << ": " << a.message();
        EXPECT_EQ(a->transport_response().command_id(), k.m.transport_command().command_id()) << k.what;
        EXPECT_EQ(a->transport_response().status(), response::FAILURE) << k.what;
        EXPECT_NE(a->transport_response().error_message().find(k.reason), std::string::npos)
            << k.what << ": " << a->transport_response().error_message();
    }

    // PerformanceMetrics is one-way: a path the connection lacks, and a report for another
    // connection, are counted and ignored. The reply to the request after them says they were read.
    KCPMessage report;
    report.mutable_performance_metrics()->set_connection_id(conn);
    report.mutable_performance_metrics()->add_paths()->set_path_id(9);
    ASSERT_TRUE(c->send(report, 5s).ok());
    report.mutable_performance_metrics()->set_connection_id("someone-else");
    ASSERT_TRUE(c->send(report, 5s).ok());
    ASSERT_TRUE(c->request(transport("after-metrics", command::SYNC_STATE), 5s).ok());
    loop->pause();
    EXPECT_EQ(server->planning().counters().client_reports, 1u);
    EXPECT_EQ(server->planning().counters().client_unknown_paths, 1u);
    EXPECT_EQ(server->counters().metrics_refused, 1u);
    loop->resume();

    KCPMessage scale;
    scale.mutable_scaling_request()->set_connection_id("someone-else");
    auto sa = c->request(scale, 5s);
    ASSERT_TRUE(sa.ok()) << sa.message();
    EXPECT_EQ(sa->scaling_response().decision(), v3::BandwidthScalingResponse::REJECTED);
    EXPECT_NE(sa->scaling_response().reason().find("scaling_request.connection_id"), std::string::npos)
        << sa->scaling_response().reason();
    scale.mutable_scaling_request()->set_connection_id(conn);
    sa = c->request(scale, 5s);
    ASSERT_TRUE(sa.ok()) << sa.message();
    EXPECT_EQ(sa->scaling_response().decision(), v3::BandwidthScalingResponse::REJECTED);
    EXPECT_NE(sa->scaling_response().reason().find("kwikd is not attached"), std::string::npos)
        << sa->scaling_response().reason();
}

TEST_F(transport_test, every_command_type_against_kwikd) {
    test::kwikd_process kwikd(g_kwikd, name, dir);
    auto c = session();
    ASSERT_TRUE(c);

    const response up = run(*c, transport("est-1", command::ESTABLISH_PATH, add_path(1, false)));
    ASSERT_EQ(up.status(), response::SUCCESS) << up.error_message();
    EXPECT_EQ(up.result().active_paths(), 1u);
    EXPECT_EQ(up.result().total_bandwidth_mbps(), 100u);
    ASSERT_EQ(up.result().path_contributions_size(), 1);
    EXPECT_EQ(up.result().path_contributions(0).server_address(), "10.9.0.1:7707");
    EXPECT_EQ(up.result().path_contributions(0).path_id(), 1u);
    EXPECT_EQ(up.result().path_contributions(0).bandwidth_mbps(), 100u);

    const response standby = run(*c, transport("est-2", command::ESTABLISH_PATH, add_path(2, true)));
    ASSERT_EQ(standby.status(), response::SUCCESS) << standby.error_message();
    EXPECT_EQ(standby.result().active_paths(), 1u) << "a standby path carries nothing";
    ASSERT_EQ(standby.result().path_contributions_size(), 2);
    EXPECT_TRUE(standby.result().path_contributions(1).standby());
    EXPECT_EQ(standby.result().path_contributions(1).bandwidth_mbps(), 0u);

    // kwikd refuses a local address it does not have: IN_PROGRESS, then FAILURE with its reason.
    const response refused = run(*c, transport("est-3", command::ESTABLISH_PATH, add_path(5, false, "10.9.0.99")));
    EXPECT_EQ(refused.status(), response::FAILURE);
    EXPECT_NE(refused.error_message().find("kwikd refused path 5"), std::string::npos) << refused.error_message();

    KCPMessage capped = transport("est-4", command::ESTABLISH_PATH, add_path(6, false));
    capped.mutable_transport_command()->mutable_options()->set_max_paths(1);
    const response over = run(*c, capped, false);
    EXPECT_EQ(over.status(), response::FAILURE);
    EXPECT_NE(over.error_message().find("options.max_paths: 1"), std::string::npos) << over.error_message();

    // Redundancy wanted with one data path: kwikd takes the scheduler, the QoS is not met yet.
    KCPMessage qos = transport("qos-1", command::UPDATE_QOS);
    qos.mutable_transport_command()->mutable_options()->mutable_qos()->set_require_redundancy(true);
    const response partial = run(*c, qos);
    EXPECT_EQ(partial.status(), response::PARTIAL_SUCCESS) << partial.error_message();
    EXPECT_NE(partial.error_message().find("options.qos.require_redundancy"), std::string::npos)
        << partial.error_message();

    // Requirements without redundancy: the weighted scheduler again, and nothing left unmet.
    KCPMessage relaxed = transport("qos-2", command::UPDATE_QOS);
    relaxed.mutable_transport_command()->mutable_options()->mutable_qos()->set_max_packet_loss_rate(0.5f);
    const response met = run(*c, relaxed);
    EXPECT_EQ(met.status(), response::SUCCESS) << met.error_message();

    const response sync = run(*c, transport("sync-1", command::SYNC_STATE), false);
    EXPECT_EQ(sync.status(), response::SUCCESS) << sync.error_message();
    EXPECT_EQ(sync.result().path_contributions_size(), 2);

    const response health = run(*c, transport("health-1", command::HEALTH_CHECK), false);
    EXPECT_NE(health.status(), response::IN_PROGRESS);
    EXPECT_EQ(health.result().path_contributions_size(), 2);
    if (health.status() != response::SUCCESS) {
        EXPECT_NE(health.error_message().find("down: path"), std::string::npos) << health.error_message();
    }

    // Scale to 150 Mbit/s: the standby path (100) joins path 1 (100).
    KCPMessage scale = transport("scale-1", command::SCALE_BANDWIDTH);
    scale.mutable_transport_command()->mutable_options()->set_target_bandwidth_mbps(150);
    const response scaled = run(*c, scale);
    ASSERT_EQ(scaled.status(), response::SUCCESS) << scaled.error_message();
    ASSERT_EQ(scaled.result().path_contributions_size(), 2);
    EXPECT_FALSE(scaled.result().path_contributions(1).standby());

    // Down to 50 Mbit/s with a policy of its own (no cooldown): one path goes back to standby.
    v3::BandwidthScalingRequest::ScalingPolicy policy;
    policy.set_scale_up_threshold_percent(80);
    policy.set_scale_down_threshold_percent(30);
    policy.set_min_paths(1);
    policy.set_max_paths(8);
    policy.set_cooldown_seconds(0);
    KCPMessage down = transport("scale-2", command::SCALE_BANDWIDTH, policy.SerializeAsString());
    down.mutable_transport_command()->mutable_options()->set_target_bandwidth_mbps(50);
    const response lower = run(*c, down);
    ASSERT_EQ(lower.status(), response::SUCCESS) << lower.error_message();
    ASSERT_EQ(lower.result().path_contributions_size(), 2);
    EXPECT_EQ(lower.result().path_contributions(0).standby() + lower.result().path_contributions(1).standby(), 1);
    KCPMessage garbage = transport("scale-3", command::SCALE_BANDWIDTH, std::string("\x0a\x05" "ab", 4));
    garbage.mutable_transport_command()->mutable_options()->set_target_bandwidth_mbps(50);
    const response unparsed = run(*c, garbage, false);
    EXPECT_EQ(unparsed.status(), response::FAILURE);
    EXPECT_NE(unparsed.error_message().find("ScalingPolicy"), std::string::npos) << unparsed.error_message();

    v3::RemovePathCommand rm;
    rm.set_path_id(2);
    const response closed = run(*c, transport("close-1", command::CLOSE_PATH, rm.SerializeAsString()));
    EXPECT_EQ(closed.status(), response::SUCCESS) << closed.error_message();
    EXPECT_EQ(closed.result().path_contributions_size(), 1);
}

TEST_F(transport_test, scale_up_activates_a_standby_path_in_kwikd_and_the_cooldown_refuses_the_next) {
    test::kwikd_process kwikd(g_kwikd, name, dir);
    auto c = session();
    ASSERT_TRUE(c);
    ASSERT_EQ(run(*c, transport("a1", command::ESTABLISH_PATH, add_path(1, false))).status(), response::SUCCESS);
    ASSERT_EQ(run(*c, transport("a2", command::ESTABLISH_PATH, add_path(2, true))).status(), response::SUCCESS);
    ASSERT_EQ(run(*c, transport("a3", command::ESTABLISH_PATH, add_path(3, true))).status(), response::SUCCESS);
    // The planning loop has seen the paths once it pushed a plan for them (priority HIGH).
    const KCPMessage* lb = wait_for(*c, 5s, [](const KCPMessage& m) {
        return m.has_load_balancing() && m.load_balancing().path_weights().size() == 3;
    });
    ASSERT_NE(lb, nullptr);
    EXPECT_EQ(lb->header().priority(), v3::HIGH);
    EXPECT_FLOAT_EQ(lb->load_balancing().path_weights().at(1), 1.0f);
    EXPECT_FLOAT_EQ(lb->load_balancing().path_weights().at(2), 0.0f);

    KCPMessage q;
    auto* r = q.mutable_scaling_request();
    r->set_connection_id(conn);
    r->set_trigger(v3::BandwidthScalingRequest::MANUAL);
    r->set_target_bandwidth_mbps(150);
    r->mutable_policy()->set_scale_up_threshold_percent(80);
    r->mutable_policy()->set_scale_down_threshold_percent(30);
    r->mutable_policy()->set_min_paths(1);
    r->mutable_policy()->set_max_paths(4);
    r->mutable_policy()->set_cooldown_seconds(60);
    auto a = c->request(q, 10s);
    ASSERT_TRUE(a.ok()) << a.message();
    const auto& up = a->scaling_response();
    ASSERT_EQ(up.decision(), v3::BandwidthScalingResponse::SCALE_UP) << up.reason();
    EXPECT_NE(up.in_reply_to(), 0u) << "the request's message_id (ids start at 1)";
    ASSERT_EQ(up.paths_added_size(), 1);
    EXPECT_EQ(up.paths_added(0), 2u);
    EXPECT_EQ(up.old_path_count(), 1u);
    EXPECT_EQ(up.new_path_count(), 2u);
    EXPECT_FALSE(up.reason().empty());

    r->set_target_bandwidth_mbps(250);
    auto b = c->request(q, 10s);
    ASSERT_TRUE(b.ok()) << b.message();
    EXPECT_EQ(b->scaling_response().decision(), v3::BandwidthScalingResponse::REJECTED);
    EXPECT_NE(b->scaling_response().reason().find("cooldown"), std::string::npos) << b->scaling_response().reason();
    EXPECT_GT(b->scaling_response().cooldown_remaining_seconds(), 50u);

    // kwikd holds path 2 as a data path now: a fresh kwik-cp adopts kwikd's state (list_state)
    // and reads the flags from kwikd itself. The session closes only after the first kwik-cp
    // stopped, so kwikd keeps the connection (as when kwik-cp restarts).
    loop.reset();
    server.reset();
    c->close();
    start_server();
    loop->pause();
    const cp::desired_connection* adopted = nullptr;
    const auto deadline = std::chrono::steady_clock::now() + 10s;
    while (std::chrono::steady_clock::now() < deadline && !server->link().adopted()) {
        server->run_once(5);
    }
    ASSERT_TRUE(server->link().adopted());
    adopted = server->link().find(conn);
    ASSERT_NE(adopted, nullptr);
    ASSERT_TRUE(adopted->paths.contains(2));
    EXPECT_FALSE(adopted->paths.at(2).standby) << "kwikd activated the standby path";
    EXPECT_TRUE(adopted->paths.at(3).standby);
    loop->resume();
}

TEST_F(transport_test, a_path_kwikd_fails_goes_down_and_the_standby_takes_over) {
    test::kwikd_process kwikd(g_kwikd, name, dir);
    auto c = session();
    ASSERT_TRUE(c);
    const auto start = std::chrono::steady_clock::now();
    ASSERT_EQ(run(*c, transport("a1", command::ESTABLISH_PATH, add_path(1, false))).status(), response::SUCCESS);
    // Nobody answers on net_null: path 1's first keep-alive goes at 1 s, and kwikd fails the path
    // after 3 probe timeouts (0.33, 0.65, 1.3 s: at about 3.3 s), which kwik-cp pushes as DOWN.
    // The standby is added 1.5 s after path 1, so that it is up when path 1 fails and for about
    // 1.5 s after (it fails the same way, 3.3 s after it was added).
    std::this_thread::sleep_for(1500ms);
    ASSERT_EQ(run(*c, transport("a2", command::ESTABLISH_PATH, add_path(2, true))).status(), response::SUCCESS);
    const KCPMessage* down = wait_for(*c, 20s, [&](const KCPMessage& m) {
        return status_update(m, 1, v3::PathStatusUpdate::DOWN);
    });
    ASSERT_NE(down, nullptr);
    std::printf("path 1 DOWN after %lld ms: %s\n",
                static_cast<long long>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                           std::chrono::steady_clock::now() - start)
                                           .count()),
                down->path_status().reason().c_str());
    EXPECT_EQ(down->header().priority(), v3::HIGH);
    EXPECT_EQ(down->path_status().failover_path_id(), 2u) << down->path_status().reason();
    EXPECT_FALSE(down->path_status().reason().empty());
    ASSERT_NE(wait_for(*c, 5s, [&](const KCPMessage& m) { return status_update(m, 2, v3::PathStatusUpdate::UP); }),
              nullptr);
    // The planner moves everything to path 2 and says so.
    const KCPMessage* lb = wait_for(*c, 5s, [](const KCPMessage& m) {
        return m.has_load_balancing() && m.load_balancing().path_weights().contains(2) &&
               m.load_balancing().path_weights().at(2) == 1.0f;
    });
    ASSERT_NE(lb, nullptr);
    EXPECT_FLOAT_EQ(lb->load_balancing().path_weights().at(1), 0.0f);
    const KCPMessage* plan = wait_for(*c, 5s, [](const KCPMessage& m) { return m.has_traffic_plan(); });
    ASSERT_NE(plan, nullptr);
    EXPECT_EQ(plan->traffic_plan().path_share_bp().at(2), 10000u);
    // Exactly one DOWN for path 1: kwikd's events and the health checks do not both push.
    int downs = 0;
    for (const auto& m : pushed) {
        downs += status_update(m, 1, v3::PathStatusUpdate::DOWN) ? 1 : 0;
    }
    EXPECT_EQ(downs, 1);
    loop->pause();
    const cp::desired_connection* dc = server->link().find(conn);
    ASSERT_NE(dc, nullptr);
    EXPECT_FALSE(dc->paths.at(2).standby);
    EXPECT_EQ(dc->paths.at(1).weight, 0.0f);
    loop->resume();
}

// kwikd restarted (docs/KCP_SERVER.md 7): the session's connection lost its transport state,
// so the client hears REMOVED for each path with a reason starting "kwikd restarted" and the
// session closes; the new kwikd never gets the connection (a fresh link's list_state shows it),
// while kwikd's static connection and the path the operator added to it are pushed again.
TEST_F(transport_test, a_kwikd_restart_ends_the_sessions_connection_and_keeps_static_ones) {
    const std::string static_connection = "\n[[connection]]\nid = \"static-1\"\nendpoint = \"discard\"\n"
                                          "path = [{ path_id = 1, local = \"10.9.0.1:7707\", remote = \"10.9.0.2:6001\" }]\n";
    auto kwikd = std::make_unique<test::kwikd_process>(g_kwikd, name, dir, static_connection);
    auto c = session();
    ASSERT_TRUE(c);
    ASSERT_EQ(run(*c, transport("a1", command::ESTABLISH_PATH, add_path(1, false))).status(), response::SUCCESS);
    ASSERT_EQ(run(*c, transport("a2", command::ESTABLISH_PATH, add_path(2, true))).status(), response::SUCCESS);
    loop->pause();
    const cp::desired_connection* own = server->link().find(conn);
    ASSERT_NE(own, nullptr);
    ASSERT_EQ(own->paths.size(), 2u);
    ASSERT_NE(server->link().find(1), nullptr) << "kwikd's static connection is adopted";
    cp::desired_path operator_path{7, {}, 1.0f, 0, false}; // what kwikctl add-path does through the link
    operator_path.tuple = server->link().find(1)->paths.at(1).tuple;
    operator_path.tuple.remote_port = 6007;
    ASSERT_TRUE(server->link().add_path(1, operator_path).ok());
    loop->resume();

    kwikd.reset();
    kwikd = std::make_unique<test::kwikd_process>(g_kwikd, name, dir, static_connection);
    std::vector<const KCPMessage*> removed;
    for (std::uint64_t path : {1u, 2u}) {
        const KCPMessage* m = wait_for(*c, 60s, [&](const KCPMessage& x) {
            return status_update(x, path, v3::PathStatusUpdate::REMOVED);
        });
        ASSERT_NE(m, nullptr) << "REMOVED for path " << path;
        EXPECT_EQ(m->path_status().connection_id(), conn);
        EXPECT_EQ(m->path_status().reason().rfind("kwikd restarted: connection " + conn + " lost its transport state", 0),
                  0u)
            << m->path_status().reason();
    }
    // Then the session closes: the channel ends after those notices.
    bool closed = false;
    const auto until = std::chrono::steady_clock::now() + 10s;
    while (!closed && std::chrono::steady_clock::now() < until) {
        auto m = c->receive(100ms);
        closed = !m.ok() && m.message().find("the KCP session is closed") != std::string::npos;
    }
    EXPECT_TRUE(closed) << "the session closes after the REMOVED notices";

    const auto deadline = std::chrono::steady_clock::now() + 30s;
    bool settled = false;
    while (!settled && std::chrono::steady_clock::now() < deadline) {
        loop->pause();
        settled = server->link().adopted() && server->link().waiting() == 0 && server->sessions() == 0;
        loop->resume();
        std::this_thread::sleep_for(10ms);
    }
    ASSERT_TRUE(settled);
    loop->pause();
    EXPECT_EQ(server->link().find(conn), nullptr) << "out of the desired state";
    EXPECT_EQ(server->link().counters().kwikd_restarts, 1u);
    EXPECT_EQ(server->counters().connections_lost, 1u);
    loop->resume();

    loop.reset();
    server.reset();
    const auto listed = kwikd_state();
    ASSERT_TRUE(listed && listed->adopted());
    const cp::dataplane_link& fresh = *listed;
    EXPECT_EQ(fresh.find(conn), nullptr) << "the new kwikd never got the lost connection";
    ASSERT_NE(fresh.find(1), nullptr);
    EXPECT_EQ(fresh.find(1)->paths.count(7), 1u) << "the operator's path on the static connection is pushed again";
    EXPECT_EQ(fresh.connections().size(), 1u);
}

// kwikd closes a connection itself (here its idle timeout: nobody answers on net_null): the
// session hears REMOVED for its path with kwikd's reason and closes, and the connection leaves
// the desired state and kwikd. A connection adopted after a kwik-cp restart, its session gone,
// is kept until kwikd closes it, then removed the same way.
TEST_F(transport_test, connections_kwikd_closes_are_reported_and_removed) {
    test::kwikd_process kwikd(g_kwikd, name, dir, "\n[transport]\nkeepalive_ms = 200\nidle_timeout_ms = 3000\n");
    auto wait_gone = [&](const std::string& connection) {
        const auto deadline = std::chrono::steady_clock::now() + 20s;
        bool gone = false;
        while (!gone && std::chrono::steady_clock::now() < deadline) {
            loop->pause();
            gone = server->link().adopted() && server->link().find(connection) == nullptr &&
                   server->link().waiting() == 0;
            loop->resume();
            std::this_thread::sleep_for(10ms);
        }
        return gone;
    };
    {
        auto c = session();
        ASSERT_TRUE(c);
        ASSERT_EQ(run(*c, transport("a1", command::ESTABLISH_PATH, add_path(1, false))).status(), response::SUCCESS);
        const KCPMessage* removed = wait_for(*c, 20s, [&](const KCPMessage& m) {
            return status_update(m, 1, v3::PathStatusUpdate::REMOVED);
        });
        ASSERT_NE(removed, nullptr);
        EXPECT_EQ(removed->path_status().reason().rfind("kwikd closed connection " + conn + ": ", 0), 0u)
            << removed->path_status().reason();
        EXPECT_NE(removed->path_status().reason().find("(close code "), std::string::npos);
        ASSERT_TRUE(wait_gone(conn));
        loop->pause();
        EXPECT_EQ(server->counters().connections_lost, 1u);
        loop->resume();
    }

    // kwik-cp restarts while a client's connection lives: the new one adopts it (no session).
    auto c = session();
    ASSERT_TRUE(c);
    ASSERT_EQ(run(*c, transport("b1", command::ESTABLISH_PATH, add_path(2, false))).status(), response::SUCCESS);
    loop.reset();
    server.reset();
    c->close();
    start_server();
    const auto deadline = std::chrono::steady_clock::now() + 10s;
    bool adopted = false;
    while (!adopted && std::chrono::steady_clock::now() < deadline) {
        loop->pause();
        adopted = server->link().adopted() && server->link().find(conn) != nullptr;
        loop->resume();
        std::this_thread::sleep_for(5ms);
    }
    ASSERT_TRUE(adopted) << "the connection outlives the kwik-cp that added it";
    ASSERT_TRUE(wait_gone(conn)) << "removed once kwikd closed it";
    loop->pause();
    EXPECT_EQ(server->link().counters().commands_failed, 0u) << "kwikd held it until the remove";
    loop->resume();
}

// [kwik_cp] endpoint reaches kwikd through the command ring: a session's connection is a
// file_store one with the configured directory, then (another kwik-cp) a pattern one with its
// maximum; kwikd accepts both (their paths come UP) and lists them as configured.
TEST_F(transport_test, the_configured_endpoint_reaches_kwikd) {
    test::kwikd_process kwikd(g_kwikd, name, dir);
    const fs::path store = dir / "store";
    fs::create_directories(store);
    auto restart_with = [&](api::endpoint_kind kind) {
        loop.reset();
        server.reset();
        configure = [&, kind](cp::control_server_config& c) {
            c.endpoint = kind;
            c.endpoint_directory = store.string();
            c.endpoint_length = 1 << 20;
        };
        start_server();
    };
    restart_with(api::endpoint_kind::file_store);
    auto a = session();
    ASSERT_TRUE(a);
    const std::string stored = conn;
    ASSERT_EQ(run(*a, transport("a1", command::ESTABLISH_PATH, add_path(1, false))).status(), response::SUCCESS);
    restart_with(api::endpoint_kind::pattern_source); // kwikd keeps the first connection
    auto b = session();
    ASSERT_TRUE(b);
    const std::string patterned = conn;
    ASSERT_EQ(run(*b, transport("b1", command::ESTABLISH_PATH, add_path(2, false))).status(), response::SUCCESS);
    loop.reset();
    server.reset();

    const auto listed = kwikd_state();
    ASSERT_TRUE(listed && listed->adopted());
    const cp::dataplane_link& fresh = *listed;
    const cp::desired_connection* s1 = fresh.find(stored);
    ASSERT_NE(s1, nullptr);
    EXPECT_EQ(s1->endpoint, api::endpoint_kind::file_store);
    EXPECT_EQ(s1->endpoint_path, store.string());
    EXPECT_EQ(s1->endpoint_length, 0u);
    const cp::desired_connection* s2 = fresh.find(patterned);
    ASSERT_NE(s2, nullptr);
    EXPECT_EQ(s2->endpoint, api::endpoint_kind::pattern_source);
    EXPECT_EQ(s2->endpoint_length, 1u << 20);
    EXPECT_TRUE(s2->endpoint_path.empty());
}

} // namespace

int main(int argc, char** argv) {
    ::testing::InitGoogleTest(&argc, argv);
    if (argc < 2) {
        std::fprintf(stderr, "usage: %s <kwikd>\n", argv[0]);
        return 2;
    }
    g_kwikd = argv[1];
    return RUN_ALL_TESTS();
}
