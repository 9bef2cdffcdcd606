// kwik-peer's KCP session (tools/peer/kcp_session) against a real kwik-cp in-process on a
// loopback socket over TLS with the pin, and a kwikd on net_null: the hello and its data key
// (the same key kwik-cp hands kwikd), discovery, paths added from the client's view (kwik-cp
// and kwikd hold them the other way round), standby, kwikd's and kwik-cp's refusals quoted,
// a scale-up through the standby path, pushes on the events thread (LoadBalancingUpdate, a path
// kwikd fails pushed DOWN), keep-alives, a lost session reported once, close() promptly.
// Usage (meson passes it): kcp_session_test <kwikd>
#include <gtest/gtest.h>

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "controlplane/server/kwik_cp/control_server.hpp"
#include "tests/integration/controlplane/kwikd_process.hpp"
#include "tests/integration/controlplane/server_loop.hpp"
#include "tools/peer/kcp_session.hpp"

namespace {

namespace fs = std::filesystem;
using namespace kwik;
using namespace std::chrono_literals;
namespace v3 = kcp::v3;
using peer::kcp_session;
using peer::path_request;

std::string g_kwikd;

// What the events thread delivered, for the test thread to wait on.
class event_log {
public:
    peer::session_events callbacks() {
        peer::session_events e;
        e.on_path_status = [this](const v3::PathStatusUpdate& u) { add([&] { statuses.push_back(u); }); };
        e.on_load_balancing = [this](const v3::LoadBalancingUpdate& u) { add([&] { balancing.push_back(u); }); };
        e.on_plan = [this](const v3::TrafficDistributionPlan& p) { add([&] { plans.push_back(p); }); };
        e.on_scaling = [this](const v3::BandwidthScalingResponse& r) { add([&] { scaling.push_back(r); }); };
        e.on_session_lost = [this](std::string reason) { add([&] { lost.push_back(std::move(reason)); }); };
        return e;
    }
    // Waits until pred (called under the lock) holds.
    bool wait(std::chrono::milliseconds timeout, const std::function<bool()>& pred) {
        std::unique_lock lock(mutex);
        return changed.wait_for(lock, timeout, pred);
    }

    std::mutex mutex;
    std::condition_variable changed;
    std::vector<v3::PathStatusUpdate> statuses;
    std::vector<v3::LoadBalancingUpdate> balancing;
    std::vector<v3::TrafficDistributionPlan> plans;
    std::vector<v3::BandwidthScalingResponse> scaling;
    std::vector<std::string> lost;

private:
    void add(const std::function<void()>& f) {
        {
            std::lock_guard lock(mutex);
            f();
        }
        changed.notify_all();
    }
};

class kcp_session_test : public ::testing::Test {
protected:
    void SetUp() override {
        name = "kwikpk" + std::to_string(::getpid());
        dir = fs::temp_directory_path() / name;
        fs::create_directories(dir);
        ASSERT_TRUE(cp::random_bytes(key).ok());
        auto id = kcp::generate_self_signed();
        ASSERT_TRUE(id.ok()) << id.message();
        auto pinned = kcp::pin_of_pem(id->certificate_pem);
        ASSERT_TRUE(pinned.ok()) << pinned.message();
        pin = pinned.value();
        identity = id.value();
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
        c.tls = identity;
        c.hello.server_id = "cp-test";
        c.keys = cp::key_store({cp::key_entry{"edge-01", key, {}, false}});
        c.link.region_name = name;
        c.link.retry_interval = 50'000'000;
        c.self.server_id = "cp-test";
        c.self.server.set_address("127.0.0.1:7708");
        c.self.server.set_available_bandwidth_mbps(1000);
        c.self.server.set_latency_ms(3);
        c.planning.interval = 100ms;
        c.planning.health.check_interval_us = 100'000;
        c.planning.health.failure_threshold = 2;
        c.planning.health.recovery_threshold = 2;
        auto s = cp::control_server::create(std::move(c));
        ASSERT_TRUE(s.ok()) << s.message();
        server = std::move(s.value());
        loop.emplace(*server);
    }
    peer::kcp_settings settings() const {
        peer::kcp_settings s;
        s.address = "127.0.0.1:" + std::to_string(server->port());
        s.pin = pin;
        s.key_id = "edge-01";
        s.key = key;
        s.client_id = "peer-a";
        s.timeout = 30s; // the first path waits for kwikd's EAL start
        return s;
    }
    // This host's end 10.9.0.2:(5000 + id), the appliance's 10.9.0.1:7707 (kwikd_process's port).
    static path_request path(std::uint64_t id, bool standby = false) {
        path_request p;
        p.path_id = id;
        p.local_address = "10.9.0.2";
        p.local_port = static_cast<std::uint16_t>(5000 + id);
        p.remote_address = "10.9.0.1";
        p.remote_port = 7707;
        p.standby = standby;
        p.max_mbps = 100;
        return p;
    }
    // kwikd's counters region, once its workers published after a request.
    std::optional<api::counters_totals> kwikd_counters() {
        bool published = false;
        server->link().send(api::make_request_counters(), [&](const api::event&) { published = true; });
        const auto deadline = std::chrono::steady_clock::now() + 10s;
        while (!published && std::chrono::steady_clock::now() < deadline) {
            server->run_once(2);
        }
        if (!published) {
            return std::nullopt;
        }
        return server->link().read_counters();
    }

    std::string name;
    fs::path dir;
    cp::bytes32 key{};
    kcp::key_pin pin{};
    kcp::tls_identity identity;
    std::unique_ptr<cp::control_server> server;
    std::optional<test::server_loop> loop; // declared after server: stops before it goes
};

// The exact five-tuple kwik-cp must hold for path(id): kwikd's address as local.
api::five_tuple appliance_view(std::uint64_t id) {
    v3::UdpPath p;
    p.set_local_address("10.9.0.1");
    p.set_local_port(7707);
    p.set_remote_address("10.9.0.2");
    p.set_remote_port(static_cast<std::uint32_t>(5000 + id));
    auto t = cp::to_tuple(p, "expected");
    EXPECT_TRUE(t.ok()) << t.message();
    return t.ok() ? t.value() : api::five_tuple{};
}

TEST_F(kcp_session_test, open_adds_paths_kwikd_holds_them_and_a_scale_up_activates_the_standby) {
    test::kwikd_process kwikd(g_kwikd, name, dir);
    event_log events;
    peer::kcp_settings s = settings();
    s.discover = true;
    auto opened = kcp_session::open(s, events.callbacks());
    ASSERT_TRUE(opened.ok()) << opened.message();
    kcp_session& session = *opened.value();
    EXPECT_EQ(session.connection_id().size(), 32u);
    EXPECT_EQ(session.server_id(), "cp-test");
    EXPECT_EQ(session.data_key().phase, 0);
    EXPECT_EQ(session.data_key().max_frames, std::uint64_t{1} << 23);
    EXPECT_GT(session.data_key().valid_until_ms, kcp::clock_sample::now().wall_ms);
    ASSERT_EQ(session.discovery().servers_size(), 1);
    EXPECT_EQ(session.discovery().servers(0).address(), "127.0.0.1:7708");
    EXPECT_NE(session.discovery_report().find("1. 127.0.0.1:7708: latency 3 ms"), std::string::npos)
        << session.discovery_report();
    session.start_events();

    for (std::uint64_t id : {1, 2}) {
        auto up = session.add_path(path(id));
        ASSERT_TRUE(up.ok()) << up.message();
        EXPECT_EQ(up->status(), v3::PathStatusUpdate::UP);
        EXPECT_EQ(up->path_id(), id);
        EXPECT_EQ(up->connection_id(), session.connection_id());
    }
    auto standby = session.add_path(path(3, true));
    ASSERT_TRUE(standby.ok()) << standby.message();
    EXPECT_EQ(standby->status(), v3::PathStatusUpdate::STANDBY);

    // kwikd refuses a path whose appliance end is not one of its addresses; the error quotes it.
    path_request foreign = path(4);
    foreign.remote_address = "10.9.0.99";
    auto refused = session.add_path(foreign);
    ASSERT_FALSE(refused.ok());
    EXPECT_NE(refused.message().find("path 4 (local 10.9.0.2:5004, remote 10.9.0.99:7707): kwik-cp answered "
                                     "REMOVED: kwikd refused the path"),
              std::string::npos)
        << refused.message();

    // kwik-cp's desired state holds the paths from the appliance's side, with the hello's key;
    // kwikd's counters region lists all three.
    loop->pause();
    const cp::desired_connection* dc = server->link().find(session.connection_id());
    ASSERT_NE(dc, nullptr);
    ASSERT_EQ(dc->paths.size(), 3u);
    for (std::uint64_t id : {1, 2, 3}) {
        const api::five_tuple want = appliance_view(id);
        EXPECT_EQ(std::memcmp(&dc->paths.at(id).tuple, &want, sizeof want), 0) << "path " << id;
        EXPECT_EQ(dc->paths.at(id).standby, id == 3);
        EXPECT_EQ(dc->paths.at(id).max_bandwidth_mbps, 100u);
    }
    ASSERT_TRUE(dc->data_key.has_value());
    EXPECT_EQ(dc->data_key->key, session.data_key().key) << "kwikd got the key the session derived";
    const std::uint64_t kwikd_connection = dc->id;
    const auto totals = kwikd_counters();
    ASSERT_TRUE(totals.has_value());
    std::vector<std::uint64_t> in_kwikd;
    for (const auto& p : totals->paths) {
        if (p.connection_id == kwikd_connection) {
            in_kwikd.push_back(p.path_id);
        }
    }
    std::sort(in_kwikd.begin(), in_kwikd.end());
    EXPECT_EQ(in_kwikd, (std::vector<std::uint64_t>{1, 2, 3}));
    loop->resume();

    // The planning loop pushes weights for the three paths (the standby at 0) to the events thread.
    ASSERT_TRUE(events.wait(10s, [&] {
        for (const auto& u : events.balancing) {
            if (u.path_weights().size() == 3 && u.path_weights().at(3) == 0.0f) {
                return true;
            }
        }
        return false;
    }));

    // 250 Mbit/s asked of 2 x 100: the standby path joins.
    auto scaled = session.request_scaling(250);
    ASSERT_TRUE(scaled.ok()) << scaled.message();
    ASSERT_EQ(scaled->decision(), v3::BandwidthScalingResponse::SCALE_UP) << scaled->reason();
    ASSERT_EQ(scaled->paths_added_size(), 1);
    EXPECT_EQ(scaled->paths_added(0), 3u);
    EXPECT_EQ(scaled->connection_id(), session.connection_id());
    // No standby path is left for more: a REJECTED decision is a value, not an error.
    auto again = session.request_scaling(400);
    ASSERT_TRUE(again.ok()) << again.message();
    EXPECT_EQ(again->decision(), v3::BandwidthScalingResponse::REJECTED);
    EXPECT_NE(again->reason().find("no server has capacity for another path"), std::string::npos) << again->reason();

    ASSERT_TRUE(session.remove_path(2).ok());
    auto unknown = session.remove_path(99);
    ASSERT_FALSE(unknown.ok());
    EXPECT_NE(unknown.message().find("remove path 99: kwik-cp answered REMOVED: "), std::string::npos)
        << unknown.message();

    const auto j = nlohmann::json::parse(session.counters_json());
    EXPECT_EQ(j["connection_id"], session.connection_id());
    EXPECT_EQ(j["sent"]["client_hello"], 2);
    EXPECT_EQ(j["sent"]["server_discovery_req"], 1);
    EXPECT_EQ(j["sent"]["add_path"], 4);
    EXPECT_EQ(j["sent"]["scaling_request"], 2);
    EXPECT_EQ(j["sent"]["remove_path"], 2);
    EXPECT_EQ(j["received"]["server_hello"], 2);
    EXPECT_EQ(j["received"]["scaling_response"], 2);
    EXPECT_GE(j["received"]["load_balancing"].get<int>(), 1);
    EXPECT_NE(j["last_error"].get<std::string>().find("remove path 99"), std::string::npos);
    EXPECT_GE(j["channel"]["messages_out"].get<int>(), 11);

    loop->pause();
    dc = server->link().find(session.connection_id());
    ASSERT_NE(dc, nullptr);
    EXPECT_FALSE(dc->paths.contains(2));
    EXPECT_FALSE(dc->paths.at(3).standby) << "the scale-up activated path 3";
    loop->resume();
    session.close();
    std::lock_guard lock(events.mutex);
    EXPECT_TRUE(events.lost.empty()) << "close() is not a lost session: " << events.lost.front();
}

TEST_F(kcp_session_test, hello_refusals_name_the_result_and_the_reason) {
    peer::kcp_settings wrong_key = settings();
    wrong_key.key[0] ^= 1;
    auto bad_proof = kcp_session::open(wrong_key, {});
    ASSERT_FALSE(bad_proof.ok());
    EXPECT_EQ(bad_proof.message(), "kwik-cp " + wrong_key.address +
                                       " rejected the hello: REJECTED_BAD_PROOF: auth_proof does not verify with "
                                       "key_id \"edge-01\"");
    EXPECT_EQ(bad_proof.code(), EACCES);

    peer::kcp_settings unknown = settings();
    unknown.key_id = "nobody";
    auto unknown_key = kcp_session::open(unknown, {});
    ASSERT_FALSE(unknown_key.ok());
    EXPECT_EQ(unknown_key.message(),
              "kwik-cp " + unknown.address + " rejected the hello: REJECTED_UNKNOWN_KEY: unknown key_id \"nobody\"");

    peer::kcp_settings other_pin = settings();
    other_pin.pin->at(0) ^= 1;
    auto pin_mismatch = kcp_session::open(other_pin, {});
    ASSERT_FALSE(pin_mismatch.ok());
    EXPECT_NE(pin_mismatch.message().find("does not match the pin"), std::string::npos) << pin_mismatch.message();

    peer::kcp_settings plain = settings();
    plain.pin.reset();
    plain.timeout = 1s;
    auto no_tls = kcp_session::open(plain, {});
    ASSERT_FALSE(no_tls.ok()) << "a plain client against a TLS server gets no ServerHello";

    peer::kcp_settings nobody = settings();
    nobody.client_id.clear();
    auto empty = kcp_session::open(nobody, {});
    ASSERT_FALSE(empty.ok());
    EXPECT_EQ(empty.message(), "kcp_settings.client_id: empty");
    EXPECT_EQ(empty.code(), EINVAL);
}

// No kwikd needed: kwik-cp checks the tuple before it asks kwikd.
TEST_F(kcp_session_test, a_bad_tuple_is_refused_with_kwik_cps_reason) {
    auto opened = kcp_session::open(settings(), {});
    ASSERT_TRUE(opened.ok()) << opened.message();
    path_request no_port = path(1);
    no_port.local_port = 0;
    auto r = opened.value()->add_path(no_port);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.message(), "path 1 (local 10.9.0.2:0, remote 10.9.0.1:7707): kwik-cp answered REMOVED: "
                           "add_path.path.remote_port: 0 is not in 1..65535 (on the wire local_* is the server's "
                           "end, this path's remote; remote_* is this host's)");
    path_request mixed = path(2);
    mixed.local_address = "::1";
    auto m = opened.value()->add_path(mixed);
    ASSERT_FALSE(m.ok());
    EXPECT_NE(m.message().find("REMOVED: add_path.path: local and remote addresses are of different IP versions"),
              std::string::npos)
        << m.message();
}

TEST_F(kcp_session_test, events_get_a_pushed_down_and_the_session_lost_once_when_kwik_cp_goes) {
    test::kwikd_process kwikd(g_kwikd, name, dir);
    event_log events;
    auto opened = kcp_session::open(settings(), events.callbacks());
    ASSERT_TRUE(opened.ok()) << opened.message();
    kcp_session& session = *opened.value();
    session.start_events();
    session.start_events(); // a second call does nothing
    ASSERT_TRUE(session.add_path(path(1)).ok());
    // Nobody answers on net_null: kwikd fails path 1 and kwik-cp pushes DOWN, unasked, with the
    // standby (added a little later, so that it is still up then) taking over.
    std::this_thread::sleep_for(300ms);
    ASSERT_TRUE(session.add_path(path(2, true)).ok());
    ASSERT_TRUE(events.wait(20s, [&] {
        for (const auto& u : events.statuses) {
            if (u.path_id() == 1 && u.status() == v3::PathStatusUpdate::DOWN) {
                EXPECT_EQ(u.failover_path_id(), 2u) << u.reason();
                return true;
            }
        }
        return false;
    }));
    {
        std::lock_guard lock(events.mutex);
        EXPECT_TRUE(events.lost.empty());
    }

    // kwik-cp goes away: the events thread reports it once and ends.
    loop.reset();
    server.reset();
    ASSERT_TRUE(events.wait(5s, [&] { return !events.lost.empty(); }));
    std::this_thread::sleep_for(500ms);
    const auto before = std::chrono::steady_clock::now();
    session.close();
    EXPECT_LT(std::chrono::steady_clock::now() - before, 300ms);
    std::lock_guard lock(events.mutex);
    ASSERT_EQ(events.lost.size(), 1u);
    EXPECT_NE(events.lost[0].find("the KCP session is closed"), std::string::npos) << events.lost[0];
    const auto j = nlohmann::json::parse(session.counters_json());
    EXPECT_EQ(j["session_lost"], events.lost[0]);
    EXPECT_GE(j["received"]["path_status"].get<int>(), 3); // UP and STANDBY answering add_path, then DOWN
}

TEST_F(kcp_session_test, keepalives_are_answered_and_close_returns_promptly) {
    event_log events;
    peer::kcp_settings s = settings();
    s.keepalive = 100ms;
    s.timeout = 2s;
    auto opened = kcp_session::open(s, events.callbacks());
    ASSERT_TRUE(opened.ok()) << opened.message();
    kcp_session& session = *opened.value();
    session.start_events();
    std::this_thread::sleep_for(1500ms);
    auto j = nlohmann::json::parse(session.counters_json());
    EXPECT_GE(j["keepalives"].get<int>(), 3) << j.dump();
    EXPECT_GE(j["received"]["health_check_resp"].get<int>(), j["keepalives"].get<int>() - 1) << j.dump();
    const auto before = std::chrono::steady_clock::now();
    session.close();
    const auto took = std::chrono::steady_clock::now() - before;
    EXPECT_LT(took, 300ms);
    session.close(); // idempotent
    std::lock_guard lock(events.mutex);
    EXPECT_TRUE(events.lost.empty());
    std::printf("close() took %lld us\n",
                static_cast<long long>(std::chrono::duration_cast<std::chrono::microseconds>(took).count()));
}

// kwik-cp stops reading (its loop paused): the keep-alive goes unanswered, the session is lost
// once with that reason and closed.
TEST_F(kcp_session_test, an_unanswered_keepalive_loses_the_session) {
    event_log events;
    peer::kcp_settings s = settings();
    s.keepalive = 100ms;
    s.timeout = 500ms;
    auto opened = kcp_session::open(s, events.callbacks());
    ASSERT_TRUE(opened.ok()) << opened.message();
    kcp_session& session = *opened.value();
    loop->pause();
    session.start_events();
    ASSERT_TRUE(events.wait(3s, [&] { return !events.lost.empty(); }));
    loop->resume();
    session.close();
    std::lock_guard lock(events.mutex);
    ASSERT_EQ(events.lost.size(), 1u);
    EXPECT_EQ(events.lost[0], "kwik-cp did not answer a keep-alive within 500 ms");
    const auto j = nlohmann::json::parse(session.counters_json());
    EXPECT_EQ(j["keepalives"], 1);
    EXPECT_EQ(j["last_error"], events.lost[0]);
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
