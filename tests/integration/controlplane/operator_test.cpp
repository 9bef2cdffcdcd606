// kwik-cp's operator requests and registry membership, in-process on a real loopback socket with
// kcp::blocking_client over TLS as kwikctl and as servers: a client key is refused; with a kwikd
// on net_null, add_path on another session's connection shows in kwikd's counters and in every
// view, settings and health answer, remove_path takes it away; bad arguments are refused with
// the field named; registration, heartbeats, expiry and deregistration; and a second control
// server registering itself upstream, seen in the first one's SERVERS view until it stops.
// Usage (meson passes it): operator_test <kwikd>
#include <gtest/gtest.h>

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "controlplane/kcp/client.hpp"
#include "controlplane/server/kwik_cp/control_server.hpp"
#include "dataplane/kdp/drop_reason.hpp"
#include "tests/integration/controlplane/kcp_hello.hpp"
#include "tests/integration/controlplane/kwikd_process.hpp"
#include "tests/integration/controlplane/server_loop.hpp"

namespace {

namespace fs = std::filesystem;
using namespace kwik;
using namespace std::chrono_literals;
using kcp::KCPMessage;
namespace v3 = kcp::v3;
using request = v3::OperatorRequest;

std::string g_kwikd;

cp::bytes32 random_key() {
    cp::bytes32 k{};
    EXPECT_TRUE(cp::random_bytes(k).ok());
    return k;
}

constexpr cp::role_set client_role = cp::role_bit(cp::role::client);
constexpr cp::role_set operator_roles = cp::role_bit(cp::role::client) | cp::role_bit(cp::role::operator_);
constexpr cp::role_set server_role = cp::role_bit(cp::role::server);
constexpr cp::role_set operator_only = cp::role_bit(cp::role::operator_);

// A control_server whose loop runs on its own thread; the test touches it only while paused.
struct running_server {
    explicit running_server(std::unique_ptr<cp::control_server> s) : server(std::move(s)), loop(*server) {}
    void pause() { loop.pause(); }
    void resume() { loop.resume(); }
    std::unique_ptr<cp::control_server> server;
    test::server_loop loop; // declared after server: stops before it goes
};

// The value in row `row` under column `column` (a failure when the column is missing).
const v3::TableValue& cell(const v3::Table& t, int row, const std::string& column) {
    for (int c = 0; c < t.columns_size(); ++c) {
        if (t.columns(c) == column) {
            return t.rows(row).values(c);
        }
    }
    ADD_FAILURE() << t.name() << " has no column " << column;
    static const v3::TableValue none;
    return none;
}

std::vector<std::string> columns(const v3::Table& t) {
    return {t.columns().begin(), t.columns().end()};
}

// The row whose `column` is the text `value`, or -1.
int row_with(const v3::Table& t, const std::string& column, const std::string& value) {
    for (int r = 0; r < t.rows_size(); ++r) {
        if (cell(t, r, column).text() == value) {
            return r;
        }
    }
    return -1;
}

class operator_test : public ::testing::Test {
protected:
    void SetUp() override {
        name = "kwikop" + std::to_string(::getpid());
        dir = fs::temp_directory_path() / name;
        fs::create_directories(dir);
        operator_key = random_key();
        client_key = random_key();
        server_key = random_key();
        other_server_key = random_key();
        auto s = cp::control_server::create(config(name));
        ASSERT_TRUE(s.ok()) << s.message();
        a = std::make_unique<running_server>(std::move(s.value()));
    }
    void TearDown() override {
        a.reset();
        if (HasFailure()) {
            test::print_logs(dir);
        }
        fs::remove_all(dir);
    }
    cp::control_server_config config(const std::string& region) {
        cp::control_server_config c;
        c.listen_address = "127.0.0.1";
        c.listen_port = 0;
        auto identity = kcp::generate_self_signed();
        EXPECT_TRUE(identity.ok()) << identity.message();
        auto pinned = kcp::pin_of_pem(identity->certificate_pem);
        EXPECT_TRUE(pinned.ok());
        pin = pinned.value();
        c.tls = identity.value();
        c.hello.server_id = "cp-a";
        c.keys = cp::key_store({cp::key_entry{"op-key", operator_key, {}, false, operator_roles},
                                cp::key_entry{"client-key", client_key, {}, false, client_role},
                                cp::key_entry{"server-key", server_key, {}, false, server_role},
                                cp::key_entry{"ops-key", operator_key, {}, false, operator_only},
                                cp::key_entry{"other-server-key", other_server_key, {}, false, server_role}});
        c.link.region_name = region;
        c.link.retry_interval = 50'000'000;
        c.registry.expiry_ms = 1500;
        c.registry_sweep_interval = 50ms;
        c.self.server_id = "cp-a";
        c.self.server.set_available_bandwidth_mbps(1000);
        return c;
    }
    std::unique_ptr<kcp::blocking_client> connect(std::uint16_t port, std::optional<kcp::key_pin> with_pin) {
        kcp::client_options o;
        o.pin = with_pin;
        auto c = kcp::blocking_client::connect("127.0.0.1:" + std::to_string(port), o);
        EXPECT_TRUE(c.ok()) << c.message();
        return c.ok() ? std::move(c.value()) : nullptr;
    }
    // A session of A after an accepted hello, or null (a test failure).
    std::unique_ptr<kcp::blocking_client> session(const std::string& client_id, const std::string& key_id,
                                                  const cp::bytes32& key, std::string* connection_id = nullptr) {
        auto c = connect(a->server->port(), pin);
        if (!c) {
            return nullptr;
        }
        cp::client_credentials cr;
        cr.client_id = client_id;
        cr.key_id = key_id;
        cr.key = key;
        const auto hello = test::two_round_hello(*c, cr);
        EXPECT_EQ(hello.auth_result(), v3::ServerHello::ACCEPTED) << hello.error_reason();
        if (connection_id != nullptr) {
            *connection_id = hello.connection_id();
        }
        return hello.auth_result() == v3::ServerHello::ACCEPTED ? std::move(c) : nullptr;
    }
    static v3::OperatorResponse ask(kcp::blocking_client& c, const request& q, std::chrono::milliseconds timeout = 10s) {
        KCPMessage m;
        *m.mutable_operator_request() = q;
        auto r = c.request(m, timeout);
        EXPECT_TRUE(r.ok()) << r.message();
        EXPECT_TRUE(!r.ok() || r->has_operator_response()) << r->DebugString();
        return r.ok() ? r->operator_response() : v3::OperatorResponse{};
    }
    static v3::OperatorResponse show(kcp::blocking_client& c, request::View v, const std::string& connection = {}) {
        request q;
        q.mutable_show()->set_view(v);
        q.mutable_show()->set_connection(connection);
        return ask(c, q);
    }
    // The error of a request that must fail.
    static std::string refusal(kcp::blocking_client& c, const request& q) {
        const auto r = ask(c, q);
        EXPECT_FALSE(r.ok()) << q.DebugString();
        return r.error();
    }
    static v3::ServerRegistrationResponse registry_request(kcp::blocking_client& c, const KCPMessage& m) {
        auto r = c.request(m, 10s);
        EXPECT_TRUE(r.ok()) << r.message();
        return r.ok() ? r->registration_response() : v3::ServerRegistrationResponse{};
    }
    static KCPMessage registration(const std::string& server_id, const std::string& address) {
        KCPMessage m;
        m.mutable_server_registration()->set_server_id(server_id);
        m.mutable_server_registration()->mutable_server()->set_address(address);
        m.mutable_server_registration()->mutable_server()->set_available_bandwidth_mbps(500);
        return m;
    }
    static KCPMessage heartbeat(const std::string& server_id, std::uint32_t load) {
        KCPMessage m;
        m.mutable_server_heartbeat()->set_server_id(server_id);
        m.mutable_server_heartbeat()->set_current_load_percent(load);
        return m;
    }
    // Has kwikd publish its counters now (the loop paused meanwhile).
    void publish_counters() {
        a->pause();
        bool published = false;
        a->server->link().send(api::make_request_counters(), [&](const api::event&) { published = true; });
        const auto deadline = std::chrono::steady_clock::now() + 10s;
        while (!published && std::chrono::steady_clock::now() < deadline) {
            a->server->run_once(2);
        }
        EXPECT_TRUE(published);
        a->resume();
    }

    std::string name;
    fs::path dir;
    cp::bytes32 operator_key{}, client_key{}, server_key{}, other_server_key{};
    kcp::key_pin pin{};
    std::unique_ptr<running_server> a;
};

TEST_F(operator_test, a_client_key_is_refused_and_the_session_stays) {
    auto c = session("client-a", "client-key", client_key);
    ASSERT_TRUE(c);
    const auto r = show(*c, request::STATUS);
    EXPECT_FALSE(r.ok());
    EXPECT_EQ(r.error(), "operator_request: this session's key \"client-key\" lacks the operator role (it has: client)");
    EXPECT_EQ(r.tables_size(), 0);

    const auto reg = registry_request(*c, registration("edge-1", "192.0.2.1:7708"));
    EXPECT_FALSE(reg.accepted());
    EXPECT_EQ(reg.error_reason(),
              "server_registration: this session's key \"client-key\" lacks the server or operator role (it has: client)");
    const auto hb = registry_request(*c, heartbeat("edge-1", 1));
    EXPECT_FALSE(hb.accepted());
    EXPECT_EQ(hb.error_reason().rfind("server_heartbeat: this session's key \"client-key\" lacks the server role", 0), 0u);

    KCPMessage d;
    d.mutable_server_discovery_req()->set_client_id("client-a");
    auto da = c->request(d, 5s);
    ASSERT_TRUE(da.ok()) << "the session stays open: " << da.message();
    EXPECT_TRUE(da->has_server_discovery_resp());
}

// A key without the client role cannot act on a connection in kwikd: each request is answered
// in its own reply type naming the missing role; discovery and health checks stay open to it.
TEST_F(operator_test, a_server_key_cannot_act_as_a_client) {
    std::string connection;
    auto c = session("server-b", "server-key", server_key, &connection);
    ASSERT_TRUE(c);
    const std::string lacks = "this session's key \"server-key\" lacks the client role (it has: server)";
    KCPMessage add;
    add.mutable_add_path()->set_connection_id(connection);
    add.mutable_add_path()->set_path_id(1);
    auto a1 = c->request(add, 5s);
    ASSERT_TRUE(a1.ok()) << a1.message();
    EXPECT_EQ(a1->path_status().status(), v3::PathStatusUpdate::REMOVED);
    EXPECT_EQ(a1->path_status().reason(), "add_path: " + lacks);
    KCPMessage t;
    t.mutable_transport_command()->set_command_id("t1");
    t.mutable_transport_command()->set_type(v3::TransportCommand::SYNC_STATE);
    auto a2 = c->request(t, 5s);
    ASSERT_TRUE(a2.ok()) << a2.message();
    EXPECT_EQ(a2->transport_response().status(), v3::TransportResponse::FAILURE);
    EXPECT_EQ(a2->transport_response().error_message(), "transport_command: " + lacks);
    KCPMessage sc;
    sc.mutable_scaling_request()->set_connection_id(connection);
    auto a3 = c->request(sc, 5s);
    ASSERT_TRUE(a3.ok()) << a3.message();
    EXPECT_EQ(a3->scaling_response().decision(), v3::BandwidthScalingResponse::REJECTED);
    KCPMessage h;
    h.mutable_health_check_req()->set_sequence(7);
    h.mutable_health_check_req()->set_server_id("cp-a");
    auto a4 = c->request(h, 5s);
    ASSERT_TRUE(a4.ok()) << "health checks (the keep-alive) are open to every role: " << a4.message();
    EXPECT_TRUE(a4->has_health_check_resp());
    a->pause();
    EXPECT_EQ(a->server->counters().refused_for_role, 3u);
    a->resume();
}

TEST_F(operator_test, views_settings_and_paths_with_kwikd) {
    test::kwikd_process kwikd(g_kwikd, name, dir);
    std::string client_connection;
    auto client = session("client-a", "client-key", client_key, &client_connection);
    auto op = session("op-a", "op-key", operator_key);
    ASSERT_TRUE(client && op);

    // A path on the client's connection, added by the operator (kwikd starts meanwhile).
    request add;
    auto* p = add.mutable_add_path();
    p->set_connection(client_connection);
    p->set_path_id(3);
    p->mutable_path()->set_local_address("10.9.0.1");
    p->mutable_path()->set_local_port(7707);
    p->mutable_path()->set_remote_address("10.9.0.2");
    p->mutable_path()->set_remote_port(5003);
    p->set_weight(1.0f);
    const auto added = ask(*op, add, 30s);
    ASSERT_TRUE(added.ok()) << added.error();
    EXPECT_NE(added.detail().find("path 3 added to connection"), std::string::npos) << added.detail();
    ASSERT_EQ(added.tables_size(), 1);
    EXPECT_EQ(added.tables(0).name(), "paths");

    publish_counters();
    a->pause();
    const cp::desired_connection* dc = a->server->link().find(client_connection);
    ASSERT_NE(dc, nullptr);
    const std::uint64_t number = dc->id;
    auto totals = a->server->link().read_counters();
    ASSERT_TRUE(totals.has_value());
    bool in_kwikd = false;
    for (const auto& pc : totals->paths) {
        in_kwikd = in_kwikd || (pc.connection_id == number && pc.path_id == 3 && pc.status != 3);
    }
    EXPECT_TRUE(in_kwikd) << "path 3 of connection " << number << " in kwikd's counters";
    a->resume();

    // Every view, its columns and its rows.
    const auto paths = show(*op, request::PATHS);
    ASSERT_TRUE(paths.ok()) << paths.error();
    ASSERT_EQ(paths.tables_size(), 1);
    const v3::Table& pt = paths.tables(0);
    EXPECT_EQ(columns(pt), (std::vector<std::string>{"connection", "path_id", "local_address", "local_port",
                                                      "remote_address", "remote_port", "weight", "standby",
                                                      "max_bandwidth_mbps", "status", "rx_packets", "rx_bytes",
                                                      "tx_packets", "tx_bytes", "lost_packets",
                                                      "retransmitted_packets", "srtt_us", "min_rtt_us",
                                                      "cwnd_bytes"}));
    ASSERT_EQ(pt.rows_size(), 1);
    EXPECT_EQ(cell(pt, 0, "connection").unsigned_value(), number);
    EXPECT_EQ(cell(pt, 0, "path_id").unsigned_value(), 3u);
    EXPECT_EQ(cell(pt, 0, "remote_address").text(), "10.9.0.2");
    EXPECT_NE(cell(pt, 0, "status").text(), "pending") << "kwikd's counters have the path";

    const auto conns = show(*op, request::CONNECTIONS);
    ASSERT_TRUE(conns.ok()) << conns.error();
    const v3::Table& ct = conns.tables(0);
    ASSERT_EQ(ct.rows_size(), 2) << "the client's and the operator's sessions";
    const int client_row = row_with(ct, "connection_id", client_connection);
    ASSERT_GE(client_row, 0);
    EXPECT_EQ(cell(ct, client_row, "owner").text(), "client-a");
    EXPECT_EQ(cell(ct, client_row, "paths").unsigned_value(), 1u);
    EXPECT_EQ(cell(ct, client_row, "endpoint").text(), "discard");
    EXPECT_GE(row_with(ct, "owner", "op-a"), 0);
    // By kwikd's number: one row; an unknown connection is named.
    const auto one = show(*op, request::CONNECTIONS, std::to_string(number));
    ASSERT_TRUE(one.ok()) << one.error();
    EXPECT_EQ(one.tables(0).rows_size(), 1);
    const auto unknown = show(*op, request::PATHS, "999");
    EXPECT_FALSE(unknown.ok());
    EXPECT_EQ(unknown.error().rfind("show.connection: no connection \"999\"", 0), 0u) << unknown.error();

    const auto status = show(*op, request::STATUS);
    ASSERT_TRUE(status.ok()) << status.error();
    ASSERT_EQ(status.tables_size(), 3);
    EXPECT_EQ(cell(status.tables(0), 0, "server_id").text(), "cp-a");
    EXPECT_EQ(cell(status.tables(0), 0, "sessions").unsigned_value(), 2u);
    EXPECT_TRUE(cell(status.tables(1), 0, "attached").flag());
    EXPECT_EQ(cell(status.tables(1), 0, "workers").unsigned_value(), 1u);
    EXPECT_EQ(cell(status.tables(1), 0, "ports").unsigned_value(), 1u);

    const auto ports = show(*op, request::PORTS);
    ASSERT_TRUE(ports.ok());
    EXPECT_EQ(ports.tables(0).name(), "ports");
    EXPECT_EQ(ports.tables(0).rows_size(), 1) << "one net_null port";
    const auto workers = show(*op, request::WORKERS);
    ASSERT_TRUE(workers.ok());
    ASSERT_EQ(workers.tables(0).rows_size(), 1) << "worker_lcores = [1]";
    EXPECT_EQ(cell(workers.tables(0), 0, "lcore").unsigned_value(), 1u);
    EXPECT_GT(cell(workers.tables(0), 0, "polls").unsigned_value(), 0u);

    const auto servers = show(*op, request::SERVERS);
    ASSERT_TRUE(servers.ok());
    ASSERT_EQ(servers.tables(0).rows_size(), 1);
    EXPECT_EQ(cell(servers.tables(0), 0, "server_id").text(), "cp-a");
    EXPECT_TRUE(cell(servers.tables(0), 0, "self").flag());

    const auto counters = show(*op, request::COUNTERS);
    ASSERT_TRUE(counters.ok());
    ASSERT_EQ(counters.tables_size(), 3);
    EXPECT_EQ(counters.tables(0).name(), "drops");
    EXPECT_GT(counters.tables(0).rows_size(), 10) << "every drop reason, named";
    EXPECT_EQ(counters.tables(0).rows_size(), static_cast<int>(kdp::drop_reason_count));
    EXPECT_EQ(cell(counters.tables(0), 1, "reason").text(), kdp::to_string(static_cast<kdp::drop_reason>(1)))
        << "named as kwikd's drop_reason";
    EXPECT_GE(row_with(counters.tables(2), "counter", "operator_requests"), 0);

    const auto sessions = show(*op, request::SESSIONS);
    ASSERT_TRUE(sessions.ok());
    const v3::Table& st = sessions.tables(0);
    ASSERT_EQ(st.rows_size(), 2);
    const int op_row = row_with(st, "client_id", "op-a");
    ASSERT_GE(op_row, 0);
    EXPECT_EQ(cell(st, op_row, "roles").text(), "client,operator");
    EXPECT_EQ(cell(st, op_row, "key_id").text(), "op-key");
    EXPECT_TRUE(cell(st, op_row, "tls").flag());
    EXPECT_GE(cell(st, op_row, "messages_in").unsigned_value(), 10u);

    // Settings, answered when kwikd answers.
    request weights;
    weights.mutable_set_weights()->set_connection(client_connection);
    (*weights.mutable_set_weights()->mutable_path_weights())[3] = 2.0f;
    const auto w = ask(*op, weights);
    ASSERT_TRUE(w.ok()) << w.error();
    EXPECT_DOUBLE_EQ(cell(w.tables(0), 0, "weight").real(), 2.0);

    request scheduler;
    scheduler.mutable_set_scheduler()->set_connection(std::to_string(number));
    scheduler.mutable_set_scheduler()->set_strategy(v3::TrafficDistributionPlan::ROUND_ROBIN);
    const auto sch = ask(*op, scheduler);
    ASSERT_TRUE(sch.ok()) << sch.error();
    EXPECT_EQ(cell(sch.tables(0), 0, "scheduler").text(), "round_robin");

    request qos;
    qos.mutable_set_qos()->set_connection(client_connection);
    qos.mutable_set_qos()->set_stream_id(4);
    qos.mutable_set_qos()->set_priority(1);
    qos.mutable_set_qos()->set_min_bandwidth_mbps(10);
    const auto q = ask(*op, qos);
    ASSERT_TRUE(q.ok()) << q.error();
    const auto streams = show(*op, request::STREAMS, client_connection);
    ASSERT_TRUE(streams.ok());
    ASSERT_EQ(streams.tables_size(), 2);
    EXPECT_EQ(streams.tables(0).rows_size(), 1);
    ASSERT_EQ(streams.tables(1).rows_size(), 1);
    EXPECT_EQ(cell(streams.tables(1), 0, "stream_id").unsigned_value(), 4u);
    EXPECT_EQ(cell(streams.tables(1), 0, "priority").text(), "high");

    request health;
    health.mutable_health()->set_connection(client_connection);
    health.mutable_health()->set_path_id(3);
    const auto h = ask(*op, health);
    ASSERT_TRUE(h.ok()) << h.error();
    ASSERT_EQ(h.tables_size(), 1);
    EXPECT_EQ(h.tables(0).rows_size(), 2) << "kwikd and the path's counters";
    EXPECT_GE(row_with(h.tables(0), "component", "path_counters"), 0);
    request server_health;
    server_health.mutable_health();
    const auto sh = ask(*op, server_health);
    ASSERT_TRUE(sh.ok()) << sh.error();
    EXPECT_EQ(sh.detail(), "HEALTHY");

    // Removed: gone from the view and from kwikd.
    request rm;
    rm.mutable_remove_path()->set_connection(client_connection);
    rm.mutable_remove_path()->set_path_id(3);
    const auto removed = ask(*op, rm);
    ASSERT_TRUE(removed.ok()) << removed.error();
    EXPECT_EQ(removed.tables(0).rows_size(), 0);
    publish_counters();
    a->pause();
    totals = a->server->link().read_counters();
    ASSERT_TRUE(totals.has_value());
    for (const auto& pc : totals->paths) {
        EXPECT_FALSE(pc.connection_id == number && pc.path_id == 3 && pc.status != 3)
            << "path 3 still live in kwikd, status " << pc.status;
    }
    a->resume();
    const auto again = ask(*op, rm);
    EXPECT_FALSE(again.ok());
    EXPECT_EQ(again.error(), "remove_path: path 3 of connection " + std::to_string(number) + " is not known");
}

// The regression of sessions accepted before kwik-cp adopted kwikd's state: they used to get
// kwikd id 1, and closing them removed kwikd's static connection 1. Now kwik-cp's ids start at
// api::first_dynamic_connection_id, and a session without the client role gets no connection.
TEST_F(operator_test, sessions_before_kwikd_leave_its_static_connection_alone) {
    {
        auto early = session("op-a", "op-key", operator_key); // kwikctl status, kwikd absent
        ASSERT_TRUE(early);
        const auto status = show(*early, request::STATUS);
        ASSERT_TRUE(status.ok()) << status.error();
    }
    std::string client_connection;
    auto client = session("client-a", "client-key", client_key, &client_connection); // stays open
    auto ops = session("ops-a", "ops-key", operator_key);
    ASSERT_TRUE(client && ops);

    test::kwikd_process kwikd(g_kwikd, name, dir,
                              "\n[[connection]]\nid = \"static-1\"\nendpoint = \"discard\"\n"
                              "path = [{ path_id = 1, local = \"10.9.0.1:7707\", remote = \"10.9.0.2:5001\" }]\n");
    const auto deadline = std::chrono::steady_clock::now() + 30s;
    bool adopted = false;
    while (!adopted && std::chrono::steady_clock::now() < deadline) {
        a->pause();
        adopted = a->server->link().adopted() && a->server->link().waiting() == 0;
        a->resume();
        std::this_thread::sleep_for(10ms);
    }
    ASSERT_TRUE(adopted);
    a->pause();
    const cp::desired_connection* static_1 = a->server->link().find(1);
    ASSERT_NE(static_1, nullptr) << "kwikd's static connection 1 is adopted";
    EXPECT_EQ(static_1->name, "static-1");
    const cp::desired_connection* own = a->server->link().find(client_connection);
    ASSERT_NE(own, nullptr);
    EXPECT_GE(own->id, api::first_dynamic_connection_id);
    EXPECT_EQ(a->server->link().connections().size(), 2u) << "static-1 and the client's: none for ops-a";
    a->resume();

    client.reset(); // its connection goes; static-1 stays
    bool gone = false;
    while (!gone && std::chrono::steady_clock::now() < deadline) {
        a->pause();
        gone = a->server->link().connections().size() == 1 && a->server->link().waiting() == 0;
        a->resume();
        std::this_thread::sleep_for(10ms);
    }
    ASSERT_TRUE(gone) << "the client's connection was removed";
    request add;
    auto* p = add.mutable_add_path();
    p->set_connection("1");
    p->set_path_id(4);
    p->mutable_path()->set_local_address("10.9.0.1");
    p->mutable_path()->set_local_port(7707);
    p->mutable_path()->set_remote_address("10.9.0.2");
    p->mutable_path()->set_remote_port(5004);
    p->set_weight(1.0f);
    const auto added = ask(*ops, add, 30s);
    ASSERT_TRUE(added.ok()) << added.error();
    EXPECT_NE(added.detail().find("path 4 added to connection"), std::string::npos) << added.detail();

    const auto sessions = show(*ops, request::SESSIONS);
    ASSERT_TRUE(sessions.ok()) << sessions.error();
    ASSERT_EQ(sessions.tables(0).rows_size(), 1);
    EXPECT_EQ(cell(sessions.tables(0), 0, "client_id").text(), "ops-a");
    EXPECT_EQ(cell(sessions.tables(0), 0, "connection").unsigned_value(), 0u) << "an operator-only session";
    a->pause();
    ASSERT_NE(a->server->link().find(1), nullptr);
    EXPECT_EQ(a->server->link().find(1)->paths.count(4), 1u);
    a->resume();
}

TEST_F(operator_test, bad_arguments_are_refused_with_the_field_named) {
    std::string own;
    auto op = session("op-a", "op-key", operator_key, &own);
    ASSERT_TRUE(op);
    auto path_change = [&](const std::string& connection, std::uint64_t id, std::uint32_t remote_port) {
        request q;
        auto* p = q.mutable_add_path();
        p->set_connection(connection);
        p->set_path_id(id);
        p->mutable_path()->set_local_address("10.9.0.1");
        p->mutable_path()->set_local_port(7707);
        p->mutable_path()->set_remote_address("10.9.0.2");
        p->mutable_path()->set_remote_port(remote_port);
        return q;
    };
    EXPECT_EQ(refusal(*op, path_change("nope", 1, 5000)).rfind("add_path.connection: no connection \"nope\"", 0), 0u);
    EXPECT_EQ(refusal(*op, path_change("", 1, 5000)).rfind("add_path.connection: missing", 0), 0u);
    EXPECT_EQ(refusal(*op, path_change(own, 1, 0)), "add_path.path.remote_port: 0 is not in 1..65535");
    EXPECT_EQ(refusal(*op, path_change(own, 0, 5000)).rfind("add_path.path_id: 0 is not a path id", 0), 0u);
    request no_path = path_change(own, 1, 5000);
    no_path.mutable_add_path()->clear_path();
    EXPECT_EQ(refusal(*op, no_path).rfind("add_path.path: missing", 0), 0u);
    request bad_address = path_change(own, 1, 5000);
    bad_address.mutable_add_path()->mutable_path()->set_local_address("10.9.0");
    EXPECT_EQ(refusal(*op, bad_address), "add_path.path.local_address: \"10.9.0\" is not an IP address");
    request negative = path_change(own, 1, 5000);
    negative.mutable_add_path()->set_weight(-1.0f);
    EXPECT_EQ(refusal(*op, negative).rfind("add_path.weight: ", 0), 0u);
    request rm;
    rm.mutable_remove_path()->set_connection(own);
    rm.mutable_remove_path()->set_path_id(9);
    EXPECT_EQ(refusal(*op, rm).rfind("remove_path: path 9 of connection", 0), 0u);

    request qos;
    qos.mutable_set_qos()->set_connection(own);
    qos.mutable_set_qos()->set_stream_id(4);
    qos.mutable_set_qos()->set_priority(9);
    EXPECT_EQ(refusal(*op, qos), "set_qos.priority: 9 is not in 0..7");
    qos.mutable_set_qos()->set_priority(2);
    qos.mutable_set_qos()->set_max_bandwidth_mbps(50);
    EXPECT_EQ(refusal(*op, qos).rfind("set_qos.max_bandwidth_mbps: 50", 0), 0u);
    qos.mutable_set_qos()->set_max_bandwidth_mbps(0);
    qos.mutable_set_qos()->set_stream_id(0);
    EXPECT_EQ(refusal(*op, qos).rfind("set_qos.stream_id: 0 is not a stream id", 0), 0u);

    request scheduler;
    scheduler.mutable_set_scheduler()->set_connection(own);
    EXPECT_EQ(refusal(*op, scheduler).rfind("set_scheduler.strategy: 0 is not", 0), 0u);

    request weights;
    weights.mutable_set_weights()->set_connection(own);
    EXPECT_EQ(refusal(*op, weights).rfind("set_weights.path_weights: empty", 0), 0u);
    (*weights.mutable_set_weights()->mutable_path_weights())[5] = 1.0f;
    EXPECT_EQ(refusal(*op, weights).rfind("set_weights.path_weights[5]: connection ", 0), 0u);

    request health;
    health.mutable_health()->set_path_id(2);
    EXPECT_EQ(refusal(*op, health).rfind("health.connection: missing", 0), 0u);
    health.mutable_health()->set_connection(own);
    health.mutable_health()->set_path_id(0);
    EXPECT_EQ(refusal(*op, health).rfind("health.path_id: missing", 0), 0u);
    health.mutable_health()->set_path_id(6);
    EXPECT_EQ(refusal(*op, health).rfind("health: no path 6 on connection", 0), 0u);

    request reg;
    reg.mutable_register_server()->set_server_id("edge-2");
    reg.mutable_register_server()->mutable_server()->set_available_bandwidth_mbps(1);
    EXPECT_EQ(refusal(*op, reg), "register_server.server.address: missing");
    reg.mutable_register_server()->mutable_server()->set_address("192.0.2.2:7708");
    reg.mutable_register_server()->mutable_server()->set_current_load_percent(140);
    EXPECT_EQ(refusal(*op, reg), "register_server.server.current_load_percent: 140 is above 100");
    request rs;
    rs.mutable_remove_server()->set_server_id("edge-2");
    EXPECT_EQ(refusal(*op, rs), "remove_server.server_id: \"edge-2\" is not registered");
    rs.mutable_remove_server()->set_server_id("cp-a");
    EXPECT_EQ(refusal(*op, rs).rfind("remove_server.server_id: \"cp-a\" is this kwik-cp's own registration", 0), 0u);

    request show_bad;
    show_bad.mutable_show();
    EXPECT_EQ(refusal(*op, show_bad).rfind("show.view: 0 is not a view", 0), 0u);
    EXPECT_EQ(refusal(*op, request{}).rfind("operator_request: no request set", 0), 0u);

    // The operator registers and removes a server on its behalf.
    reg.mutable_register_server()->mutable_server()->set_current_load_percent(10);
    const auto registered = ask(*op, reg);
    ASSERT_TRUE(registered.ok()) << registered.error();
    ASSERT_EQ(registered.tables(0).rows_size(), 1);
    EXPECT_EQ(cell(registered.tables(0), 0, "server_id").text(), "edge-2");
    EXPECT_EQ(cell(registered.tables(0), 0, "current_load_percent").unsigned_value(), 10u);
    rs.mutable_remove_server()->set_server_id("edge-2");
    const auto removed = ask(*op, rs);
    ASSERT_TRUE(removed.ok()) << removed.error();
    EXPECT_EQ(row_with(removed.tables(0), "server_id", "edge-2"), -1);
}

TEST_F(operator_test, registration_heartbeat_expiry_and_deregistration) {
    auto srv = session("edge-9", "server-key", server_key);
    auto op = session("op-a", "op-key", operator_key);
    ASSERT_TRUE(srv && op);

    const auto before = kcp::clock_sample::now().wall_ms;
    const auto reg = registry_request(*srv, registration("edge-9", "192.0.2.9:7708"));
    ASSERT_TRUE(reg.accepted()) << reg.error_reason();
    EXPECT_EQ(reg.server_id(), "edge-9");
    EXPECT_EQ(reg.heartbeat_interval_ms(), 500u) << "expiry_ms / 3";
    EXPECT_GE(reg.expires_at_ms(), before + 1500);
    EXPECT_LE(reg.expires_at_ms(), kcp::clock_sample::now().wall_ms + 1500);

    // One more id may be registered on the session; a third, or another's, may not.
    EXPECT_TRUE(registry_request(*srv, registration("edge-9b", "192.0.2.10:7708")).accepted());
    const auto third = registry_request(*srv, registration("edge-9c", "192.0.2.11:7708"));
    EXPECT_FALSE(third.accepted());
    EXPECT_EQ(third.error_reason().rfind("server_registration.server_id: \"edge-9c\" is not this session's server", 0), 0u)
        << third.error_reason();
    auto other = session("edge-8", "server-key", server_key);
    ASSERT_TRUE(other);
    const auto taken = registry_request(*other, registration("edge-9", "192.0.2.12:7708"));
    EXPECT_FALSE(taken.accepted());
    EXPECT_NE(taken.error_reason().find("another open session holds it"), std::string::npos) << taken.error_reason();
    const auto taken_b = registry_request(*other, registration("edge-9b", "192.0.2.12:7708"));
    EXPECT_FALSE(taken_b.accepted()) << "edge-9b is the first session's registration";
    const auto bad = registry_request(*srv, registration("edge-9", ""));
    EXPECT_FALSE(bad.accepted());
    EXPECT_EQ(bad.error_reason(), "server_registration.server.address: missing");

    const auto hb = registry_request(*srv, heartbeat("edge-9", 30));
    ASSERT_TRUE(hb.accepted()) << hb.error_reason();
    EXPECT_EQ(hb.heartbeat_interval_ms(), 500u);
    const auto stranger = registry_request(*srv, heartbeat("stranger", 1));
    EXPECT_FALSE(stranger.accepted());
    EXPECT_EQ(stranger.error_reason().rfind("server_heartbeat.server_id: \"stranger\"", 0), 0u);
    const auto too_loaded = registry_request(*srv, heartbeat("edge-9", 130));
    EXPECT_FALSE(too_loaded.accepted());
    EXPECT_EQ(too_loaded.error_reason(), "server_heartbeat.current_load_percent: 130 is above 100");
    const auto by_operator = registry_request(*op, heartbeat("edge-9", 1));
    EXPECT_FALSE(by_operator.accepted());
    EXPECT_EQ(by_operator.error_reason().rfind("server_heartbeat: this session's key \"op-key\" lacks the server role", 0),
              0u);

    auto servers = show(*op, request::SERVERS);
    ASSERT_TRUE(servers.ok());
    const int row = row_with(servers.tables(0), "server_id", "edge-9");
    ASSERT_GE(row, 0);
    EXPECT_EQ(cell(servers.tables(0), row, "current_load_percent").unsigned_value(), 30u);
    EXPECT_EQ(cell(servers.tables(0), row, "address").text(), "192.0.2.9:7708");

    // No heartbeat for longer than expiry_ms: swept, and a heartbeat is refused.
    std::this_thread::sleep_for(1800ms);
    servers = show(*op, request::SERVERS);
    EXPECT_EQ(row_with(servers.tables(0), "server_id", "edge-9"), -1);
    const auto late = registry_request(*srv, heartbeat("edge-9", 30));
    EXPECT_FALSE(late.accepted());
    EXPECT_NE(late.error_reason().find("register first"), std::string::npos) << late.error_reason();

    ASSERT_TRUE(registry_request(*srv, registration("edge-9", "192.0.2.9:7708")).accepted());
    KCPMessage bye;
    bye.mutable_server_deregistration()->set_server_id("edge-9");
    bye.mutable_server_deregistration()->set_reason("maintenance");
    EXPECT_TRUE(registry_request(*srv, bye).accepted());
    servers = show(*op, request::SERVERS);
    EXPECT_EQ(row_with(servers.tables(0), "server_id", "edge-9"), -1);
    const auto twice = registry_request(*srv, bye);
    EXPECT_FALSE(twice.accepted());
    EXPECT_EQ(twice.error_reason(), "server_deregistration.server_id: \"edge-9\" is not registered");
}

// A registry entry belongs to the key that registered it: a server-role session of another key
// (whose key allows any client_id, so it can take the victim's id as its own) may not replace,
// refresh or remove it, nor an operator's entry, nor kwik-cp's own; the owner's key may, after a
// reconnect too, and so may an operator.
TEST_F(operator_test, a_registry_entry_is_changed_only_by_the_key_that_registered_it) {
    auto op = session("op-a", "op-key", operator_key);
    ASSERT_TRUE(op);
    request reg;
    reg.mutable_register_server()->set_server_id("edge-op");
    reg.mutable_register_server()->mutable_server()->set_address("192.0.2.30:7708");
    ASSERT_TRUE(ask(*op, reg).ok());

    {
        auto owner = session("edge-1", "server-key", server_key);
        ASSERT_TRUE(owner);
        ASSERT_TRUE(registry_request(*owner, registration("edge-1", "192.0.2.31:7708")).accepted());
    } // the owner disconnects: its entry stays until it expires

    const std::string other_key = "is registered under another key than \"other-server-key\"";
    auto thief = session("edge-1", "other-server-key", other_server_key);
    ASSERT_TRUE(thief);
    const auto taken = registry_request(*thief, registration("edge-1", "203.0.113.1:7708"));
    EXPECT_FALSE(taken.accepted());
    EXPECT_EQ(taken.error_reason().rfind("server_registration.server_id: \"edge-1\" " + other_key, 0), 0u)
        << taken.error_reason();
    const auto beat = registry_request(*thief, heartbeat("edge-1", 99));
    EXPECT_FALSE(beat.accepted());
    EXPECT_EQ(beat.error_reason().rfind("server_heartbeat.server_id: \"edge-1\" " + other_key, 0), 0u)
        << beat.error_reason();
    KCPMessage bye;
    bye.mutable_server_deregistration()->set_server_id("edge-1");
    const auto gone = registry_request(*thief, bye);
    EXPECT_FALSE(gone.accepted());
    EXPECT_EQ(gone.error_reason().rfind("server_deregistration.server_id: \"edge-1\" " + other_key, 0), 0u)
        << gone.error_reason();
    const auto op_entry = registry_request(*thief, registration("edge-op", "203.0.113.1:7708"));
    EXPECT_FALSE(op_entry.accepted()) << "the operator's entry, held by no session";
    EXPECT_NE(op_entry.error_reason().find(other_key), std::string::npos) << op_entry.error_reason();
    auto self = session("cp-a", "other-server-key", other_server_key);
    ASSERT_TRUE(self);
    const auto self_beat = registry_request(*self, heartbeat("cp-a", 99));
    EXPECT_FALSE(self_beat.accepted());
    EXPECT_EQ(self_beat.error_reason(),
              "server_heartbeat.server_id: \"cp-a\" is this kwik-cp's own registration, which it keeps itself");

    auto servers = show(*op, request::SERVERS);
    int row = row_with(servers.tables(0), "server_id", "edge-1");
    ASSERT_GE(row, 0);
    EXPECT_EQ(cell(servers.tables(0), row, "address").text(), "192.0.2.31:7708") << "unchanged";
    row = row_with(servers.tables(0), "server_id", "edge-op");
    ASSERT_GE(row, 0);
    EXPECT_EQ(cell(servers.tables(0), row, "address").text(), "192.0.2.30:7708") << "unchanged";

    // The owner's key, reconnected, still may; so may the operator.
    auto back = session("edge-1", "server-key", server_key);
    ASSERT_TRUE(back);
    EXPECT_TRUE(registry_request(*back, heartbeat("edge-1", 5)).accepted());
    request rs;
    rs.mutable_remove_server()->set_server_id("edge-1");
    EXPECT_TRUE(ask(*op, rs).ok());
}

TEST_F(operator_test, a_second_server_registers_itself_upstream_and_leaves_when_it_stops) {
    auto op = session("op-a", "op-key", operator_key);
    ASSERT_TRUE(op);
    const kcp::key_pin a_pin = pin;

    cp::control_server_config bc;
    bc.listen_address = "127.0.0.1";
    bc.listen_port = 0;
    bc.hello.server_id = "cp-b";
    bc.link.region_name = name + "b"; // no kwikd there
    bc.self.server_id = "cp-b";
    bc.self.server.set_available_bandwidth_mbps(800);
    bc.self.server.add_capabilities("multipath");
    cp::upstream_config up;
    up.address = "127.0.0.1:" + std::to_string(a->server->port());
    up.pin = a_pin;
    up.key_id = "server-key";
    up.secret = server_key;
    up.heartbeat_interval = 100ms;
    bc.upstream = up;
    auto created = cp::control_server::create(std::move(bc));
    ASSERT_TRUE(created.ok()) << created.message();
    const std::uint16_t b_port = created.value()->port();
    auto b = std::make_unique<running_server>(std::move(created.value()));

    // B appears in A's registry with its own address, then keeps it alive past A's expiry.
    int row = -1;
    v3::OperatorResponse servers;
    for (const auto deadline = std::chrono::steady_clock::now() + 10s;
         row < 0 && std::chrono::steady_clock::now() < deadline; std::this_thread::sleep_for(50ms)) {
        servers = show(*op, request::SERVERS);
        row = servers.ok() ? row_with(servers.tables(0), "server_id", "cp-b") : -1;
    }
    ASSERT_GE(row, 0) << "cp-b never registered with cp-a";
    EXPECT_EQ(cell(servers.tables(0), row, "address").text(), "127.0.0.1:" + std::to_string(b_port));
    EXPECT_EQ(cell(servers.tables(0), row, "capabilities").text(), "multipath");
    std::this_thread::sleep_for(2000ms); // longer than A's expiry_ms: only heartbeats keep it
    servers = show(*op, request::SERVERS);
    row = row_with(servers.tables(0), "server_id", "cp-b");
    ASSERT_GE(row, 0) << "heartbeats keep cp-b registered";
    EXPECT_EQ(cell(servers.tables(0), row, "available_bandwidth_mbps").unsigned_value(), 800u)
        << "no kwikd at B: nothing used of what it provisions";

    b->pause();
    const cp::upstream_registration* u = b->server->upstream();
    ASSERT_NE(u, nullptr);
    EXPECT_EQ(u->current(), cp::upstream_registration::state::registered) << u->last_error();
    EXPECT_EQ(u->counters().registrations, 1u);
    EXPECT_GE(u->counters().heartbeats, 10u);
    EXPECT_EQ(u->counters().failures, 0u) << u->last_error();
    b->server->shutdown(2s);
    EXPECT_EQ(u->current(), cp::upstream_registration::state::stopped);
    b.reset();
    servers = show(*op, request::SERVERS);
    EXPECT_EQ(row_with(servers.tables(0), "server_id", "cp-b"), -1) << "deregistered at once, not expired";
}

TEST_F(operator_test, an_upstream_that_refuses_is_retried_with_backoff) {
    cp::control_server_config bc;
    bc.listen_address = "127.0.0.1";
    bc.listen_port = 0;
    bc.hello.server_id = "cp-c";
    bc.link.region_name = name + "c";
    bc.self.server_id = "cp-c";
    cp::upstream_config up;
    up.address = "127.0.0.1:" + std::to_string(a->server->port());
    up.pin = pin;
    up.key_id = "client-key"; // accepted by the hello, but without the server role
    up.secret = client_key;
    up.reconnect_min = 50ms;
    bc.upstream = up;
    auto created = cp::control_server::create(std::move(bc));
    ASSERT_TRUE(created.ok()) << created.message();
    auto c = std::make_unique<running_server>(std::move(created.value()));
    std::this_thread::sleep_for(1500ms);
    c->pause();
    const cp::upstream_registration* u = c->server->upstream();
    EXPECT_NE(u->current(), cp::upstream_registration::state::registered);
    EXPECT_GE(u->counters().failures, 2u) << "retried";
    EXPECT_LE(u->counters().failures, 6u) << "with backoff (50, 100, 200, 400, 800 ms)";
    EXPECT_NE(u->last_error().find("lacks the server or operator role"), std::string::npos) << u->last_error();
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
