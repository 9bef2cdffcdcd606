// The operator's show views (controlplane/server/kwik_cp/views.*) on a hand-made snapshot: each
// table's columns, one value per column in every row, the figures joined from kwikd's counters,
// connection lookup by number and by name, owners, filters, and the errors that name the field.
#include <gtest/gtest.h>

#include <map>
#include <string>
#include <vector>

#include "controlplane/server/kwik_cp/views.hpp"

namespace kwik::cp {
namespace {

namespace v3 = kcp::v3;
using request = v3::OperatorRequest;

const std::string kcp_id = "0123456789abcdef0123456789abcdef";

std::vector<std::string> columns(const v3::Table& t) {
    return {t.columns().begin(), t.columns().end()};
}

// Every row has one value per column.
void expect_rectangular(const v3::Table& t) {
    for (int i = 0; i < t.rows_size(); ++i) {
        EXPECT_EQ(t.rows(i).values_size(), t.columns_size()) << t.name() << " row " << i;
    }
}

// The value in row `row` under column `column`.
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

class views_test : public ::testing::Test {
protected:
    void SetUp() override {
        desired_connection a;
        a.id = 1;
        a.name = kcp_id;
        a.endpoint = api::endpoint_kind::echo;
        a.scheduler = api::scheduler_strategy::weighted;
        desired_path p;
        p.path_id = 3;
        api::ip_version v{};
        api::ip_address local{};
        api::ip_address remote{};
        ASSERT_TRUE(api::parse_address("10.9.0.1", v, local));
        ASSERT_TRUE(api::parse_address("10.9.0.2", v, remote));
        p.tuple = api::make_tuple(v, local, 7707, remote, 5003);
        p.weight = 2.5f;
        p.max_bandwidth_mbps = 100;
        a.paths.emplace(3, p);
        a.streams.emplace(4, desired_stream_qos{api::stream_priority::high, 20});
        connections.emplace(1, a);
        desired_connection b;
        b.id = 2;
        b.name = "static-1";
        connections.emplace(2, b);

        api::counters_totals t;
        t.worker.polls = 1000;
        t.worker.busy_polls = 250;
        t.ports.push_back(api::port_counters{10, 1000, 20, 2000, 1, 0, 3, 4});
        t.ports.push_back(api::port_counters{5, 500, 6, 600, 0, 0, 0, 0});
        // kwikd's main block: port 0 a DPDK port, port 1 net_af_xdp.
        t.main_read = true;
        t.main.publish_count = 3;
        t.main.kwikd.flow_rules = 2;
        t.main.kwikd.handoff_paths = 1;
        t.main.kwikd.commands_refused = 4;
        t.main.nic.resize(2);
        t.main.nic[0] = {api::nic_source_ethdev, 0, 12, 1200, 20, 2000, 2, 1, 0, 5, 0, 0, 0, 0, 0, 0, 0, 0, {}};
        t.main.nic[1] = {api::nic_source_ethdev | api::nic_source_xdp, 0, 5, 500, 6, 600, 0, 0, 0, 0,
                         5, 0, 2, 3, 1, 0, 0, 0, {}};
        t.drops = {0, 7, 0};
        api::connection_counters cc{};
        cc.connection_id = 1;
        cc.rx_packets = 11;
        cc.delivered_bytes = 4096;
        cc.streams_opened = 3;
        cc.streams_closed = 1;
        cc.open_streams = 2;
        cc.active_paths = 1;
        t.connections.push_back(cc);
        api::path_counters pc{};
        pc.connection_id = 1;
        pc.path_id = 3;
        pc.status = 1;
        pc.tx_packets = 9;
        pc.smoothed_rtt_ns = 1'500'000;
        pc.cwnd_bytes = 14600;
        t.paths.push_back(pc);
        snap.kwikd.totals = t;
        snap.kwikd.attached = true;
        snap.kwikd.region = "kwik";
        snap.kwikd.drop_names = {"ok_reason", "bad_checksum", "short"};
        api::worker_snapshot w;
        w.worker = 0;
        w.lcore = 1;
        w.worker_totals.polls = 1000;
        w.worker_totals.busy_polls = 250;
        w.worker_totals.idle_sleeps = 9;
        w.worker_totals.idle_sleep_ns = 3'500'000;
        w.ports = t.ports;
        w.drops = t.drops;
        snap.kwikd.workers.push_back(w);

        session_summary s;
        s.fd = 9;
        s.peer = "127.0.0.1:4000";
        s.state = "accepted";
        s.client_id = "client-a";
        s.key_id = "edge-01";
        s.roles = role_bit(role::client) | role_bit(role::operator_);
        s.connection_id = kcp_id;
        s.kwikd_connection = 1;
        s.counters.messages_in = 5;
        s.counters.messages_out = 6;
        snap.sessions.push_back(s);

        server_registration r;
        r.server_id = "edge-7";
        r.server.set_address("192.0.2.7:7708");
        r.server.set_available_bandwidth_mbps(900);
        r.server.add_capabilities("multipath");
        r.server.add_capabilities("fec");
        ASSERT_TRUE(registry.register_server(r, 1000).ok());

        snap.server_id = "cp-1";
        snap.listen_port = 7708;
        snap.now_ms = 1000;
        snap.connections = &connections;
        snap.registry = &registry;
        snap.cp_counters = {{"accepted_sockets", 4}};
    }

    std::map<std::uint64_t, desired_connection> connections;
    server_registry registry;
    operator_snapshot snap;
};

TEST_F(views_test, status_has_one_row_per_part) {
    const auto tables = status_tables(snap);
    ASSERT_EQ(tables.size(), 3u);
    EXPECT_EQ(tables[0].name(), "kwik_cp");
    EXPECT_EQ(tables[1].name(), "kwikd");
    EXPECT_EQ(tables[2].name(), "link");
    for (const auto& t : tables) {
        ASSERT_EQ(t.rows_size(), 1) << t.name();
        expect_rectangular(t);
    }
    EXPECT_EQ(cell(tables[0], 0, "server_id").text(), "cp-1");
    EXPECT_EQ(cell(tables[0], 0, "listen_port").unsigned_value(), 7708u);
    EXPECT_EQ(cell(tables[0], 0, "sessions").unsigned_value(), 1u);
    EXPECT_EQ(cell(tables[0], 0, "registry_servers").unsigned_value(), 1u);
    EXPECT_EQ(cell(tables[0], 0, "connections").unsigned_value(), 2u);
    EXPECT_TRUE(cell(tables[1], 0, "attached").flag());
    EXPECT_EQ(cell(tables[1], 0, "workers").unsigned_value(), 1u);
    EXPECT_EQ(cell(tables[1], 0, "ports").unsigned_value(), 2u);

    snap.upstream = {{"address", text_cell("192.0.2.1:7708")}, {"registrations", unsigned_cell(1)}};
    const auto with = status_tables(snap);
    ASSERT_EQ(with.size(), 4u);
    EXPECT_EQ(columns(with[3]), (std::vector<std::string>{"address", "registrations"}));
    expect_rectangular(with[3]);
}

TEST_F(views_test, ports_and_workers) {
    const v3::Table p = ports_table(snap);
    EXPECT_EQ(columns(p), (std::vector<std::string>{"port", "rx_packets", "rx_bytes", "tx_packets", "tx_bytes",
                                                     "rx_dropped", "tx_dropped", "exception_rx", "exception_tx",
                                                     "nic_rx_packets", "nic_tx_packets", "imissed", "ierrors",
                                                     "oerrors", "rx_nombuf", "xdp_redirected", "xdp_to_kernel"}));
    ASSERT_EQ(p.rows_size(), 2);
    expect_rectangular(p);
    EXPECT_EQ(cell(p, 0, "rx_bytes").unsigned_value(), 1000u);
    EXPECT_EQ(cell(p, 1, "tx_packets").unsigned_value(), 6u);
    EXPECT_EQ(cell(p, 0, "exception_tx").unsigned_value(), 4u);
    EXPECT_EQ(cell(p, 0, "nic_rx_packets").unsigned_value(), 12u);
    EXPECT_EQ(cell(p, 0, "imissed").unsigned_value(), 2u);
    EXPECT_EQ(cell(p, 0, "ierrors").unsigned_value(), 1u);
    EXPECT_EQ(cell(p, 0, "rx_nombuf").unsigned_value(), 5u);
    EXPECT_EQ(cell(p, 0, "xdp_redirected").value_case(), v3::TableValue::VALUE_NOT_SET) << "not an AF_XDP port";
    EXPECT_EQ(cell(p, 1, "xdp_redirected").unsigned_value(), 5u);
    EXPECT_EQ(cell(p, 1, "xdp_to_kernel").unsigned_value(), 6u);
    // Before kwikd's main lcore published: the NIC columns are "-", the workers' still there.
    snap.kwikd.totals->main.nic[0].sources = 0;
    const v3::Table before = ports_table(snap);
    EXPECT_EQ(cell(before, 0, "nic_rx_packets").value_case(), v3::TableValue::VALUE_NOT_SET);
    EXPECT_EQ(cell(before, 0, "rx_nombuf").value_case(), v3::TableValue::VALUE_NOT_SET);
    EXPECT_EQ(cell(before, 0, "rx_packets").unsigned_value(), 10u);

    const v3::Table w = workers_table(snap);
    ASSERT_EQ(w.rows_size(), 1);
    expect_rectangular(w);
    EXPECT_DOUBLE_EQ(cell(w, 0, "busy_percent").real(), 25.0);
    EXPECT_EQ(cell(w, 0, "rx_packets").unsigned_value(), 15u);
    EXPECT_EQ(cell(w, 0, "tx_packets").unsigned_value(), 26u);
    EXPECT_EQ(cell(w, 0, "dropped_packets").unsigned_value(), 7u);
    EXPECT_EQ(cell(w, 0, "idle_sleeps").unsigned_value(), 9u);
    EXPECT_EQ(cell(w, 0, "idle_sleep_ms").unsigned_value(), 3u);
}

TEST_F(views_test, connections_join_the_desired_state_with_kwikd_counters) {
    const v3::Table t = connections_table(snap);
    ASSERT_EQ(t.rows_size(), 2);
    expect_rectangular(t);
    EXPECT_EQ(cell(t, 0, "connection").unsigned_value(), 1u);
    EXPECT_EQ(cell(t, 0, "connection_id").text(), kcp_id);
    EXPECT_EQ(cell(t, 0, "owner").text(), "client-a");
    EXPECT_EQ(cell(t, 0, "endpoint").text(), "echo");
    EXPECT_EQ(cell(t, 0, "scheduler").text(), "weighted");
    EXPECT_EQ(cell(t, 0, "paths").unsigned_value(), 1u);
    EXPECT_EQ(cell(t, 0, "rx_packets").unsigned_value(), 11u);
    EXPECT_EQ(cell(t, 0, "delivered_bytes").unsigned_value(), 4096u);
    EXPECT_EQ(cell(t, 1, "owner").text(), "static");
    EXPECT_EQ(cell(t, 1, "rx_packets").unsigned_value(), 0u) << "not in kwikd's counters";
    EXPECT_EQ(cell(t, 1, "scheduler").text(), "default");

    snap.sessions.clear(); // the session went: a KCP connection id kwikd still holds is "adopted"
    EXPECT_EQ(cell(connections_table(snap), 0, "owner").text(), "adopted");
}

TEST_F(views_test, paths_show_the_tuple_settings_and_counters) {
    const v3::Table t = paths_table(snap);
    EXPECT_EQ(columns(t), (std::vector<std::string>{"connection", "path_id", "local_address", "local_port",
                                                     "remote_address", "remote_port", "weight", "standby",
                                                     "max_bandwidth_mbps", "status", "rx_packets", "rx_bytes",
                                                     "tx_packets", "tx_bytes", "lost_packets",
                                                     "retransmitted_packets", "srtt_us", "min_rtt_us", "cwnd_bytes"}));
    ASSERT_EQ(t.rows_size(), 1);
    expect_rectangular(t);
    EXPECT_EQ(cell(t, 0, "local_address").text(), "10.9.0.1");
    EXPECT_EQ(cell(t, 0, "remote_port").unsigned_value(), 5003u);
    EXPECT_DOUBLE_EQ(cell(t, 0, "weight").real(), 2.5);
    EXPECT_EQ(cell(t, 0, "status").text(), "suspect");
    EXPECT_EQ(cell(t, 0, "srtt_us").unsigned_value(), 1500u);
    EXPECT_EQ(cell(t, 0, "cwnd_bytes").unsigned_value(), 14600u);

    snap.kwikd.totals->paths.clear();
    EXPECT_EQ(cell(paths_table(snap), 0, "status").text(), "pending");
}

TEST_F(views_test, streams_counters_and_qos_set_by_kwik_cp) {
    const auto tables = streams_tables(snap, &connections.at(1));
    ASSERT_EQ(tables.size(), 2u);
    ASSERT_EQ(tables[0].rows_size(), 1);
    expect_rectangular(tables[0]);
    EXPECT_EQ(cell(tables[0], 0, "streams_opened").unsigned_value(), 3u);
    EXPECT_EQ(cell(tables[0], 0, "open_streams").unsigned_value(), 2u);
    ASSERT_EQ(tables[1].rows_size(), 1);
    expect_rectangular(tables[1]);
    EXPECT_EQ(cell(tables[1], 0, "stream_id").unsigned_value(), 4u);
    EXPECT_EQ(cell(tables[1], 0, "priority").text(), "high");
    EXPECT_EQ(cell(tables[1], 0, "min_bandwidth_mbps").unsigned_value(), 20u);
}

TEST_F(views_test, servers_counters_sessions) {
    const v3::Table s = servers_table(snap);
    ASSERT_EQ(s.rows_size(), 1);
    expect_rectangular(s);
    EXPECT_EQ(cell(s, 0, "server_id").text(), "edge-7");
    EXPECT_EQ(cell(s, 0, "pin_sha256").text(), "none");
    EXPECT_EQ(cell(s, 0, "capabilities").text(), "multipath,fec");
    EXPECT_EQ(cell(s, 0, "expires_in_ms").unsigned_value(), registry.config().expiry_ms);
    EXPECT_EQ(servers_table(snap, "nobody").rows_size(), 0);

    const auto counters = counters_tables(snap);
    ASSERT_EQ(counters.size(), 3u);
    EXPECT_EQ(counters[0].name(), "drops");
    ASSERT_EQ(counters[0].rows_size(), 3);
    EXPECT_EQ(cell(counters[0], 1, "reason").text(), "bad_checksum");
    EXPECT_EQ(cell(counters[0], 1, "packets").unsigned_value(), 7u);
    EXPECT_EQ(counters[1].name(), "kwikd");
    EXPECT_EQ(counters[2].name(), "kwik_cp");
    std::map<std::string, std::uint64_t> kwikd;
    for (int i = 0; i < counters[1].rows_size(); ++i) {
        kwikd[cell(counters[1], i, "counter").text()] = cell(counters[1], i, "value").unsigned_value();
    }
    EXPECT_EQ(kwikd["flow_rules"], 2u);
    EXPECT_EQ(kwikd["handoff_paths"], 1u);
    EXPECT_EQ(kwikd["commands_refused"], 4u);
    EXPECT_EQ(kwikd.count("events_lost"), 1u);
    bool found = false;
    for (int i = 0; i < counters[2].rows_size(); ++i) {
        if (cell(counters[2], i, "counter").text() == "sessions_messages_in") {
            EXPECT_EQ(cell(counters[2], i, "value").unsigned_value(), 5u);
            found = true;
        }
    }
    EXPECT_TRUE(found);
    for (const auto& t : counters) {
        expect_rectangular(t);
    }

    const v3::Table x = sessions_table(snap);
    ASSERT_EQ(x.rows_size(), 1);
    expect_rectangular(x);
    EXPECT_EQ(cell(x, 0, "roles").text(), "client,operator");
    EXPECT_EQ(cell(x, 0, "messages_out").unsigned_value(), 6u);
}

TEST_F(views_test, connections_are_found_by_number_or_name) {
    auto by_number = find_connection(connections, "2", "show.connection");
    ASSERT_TRUE(by_number.ok()) << by_number.message();
    EXPECT_EQ(by_number.value()->name, "static-1");
    auto by_name = find_connection(connections, kcp_id, "show.connection");
    ASSERT_TRUE(by_name.ok());
    EXPECT_EQ(by_name.value()->id, 1u);
    auto unknown = find_connection(connections, "77", "add_path.connection");
    ASSERT_FALSE(unknown.ok());
    EXPECT_EQ(unknown.message().rfind("add_path.connection: no connection \"77\"", 0), 0u) << unknown.message();
    auto missing = find_connection(connections, "", "set_qos.connection");
    ASSERT_FALSE(missing.ok());
    EXPECT_EQ(missing.message().rfind("set_qos.connection: missing", 0), 0u);
}

TEST_F(views_test, show_filters_and_refuses_with_the_field_named) {
    request::Show show;
    show.set_view(request::PATHS);
    show.set_connection("2");
    auto none = show_view(snap, show);
    ASSERT_TRUE(none.ok()) << none.message();
    ASSERT_EQ(none->size(), 1u);
    EXPECT_EQ((*none)[0].rows_size(), 0) << "connection 2 has no paths";

    show.set_connection("nope");
    auto bad = show_view(snap, show);
    ASSERT_FALSE(bad.ok());
    EXPECT_NE(bad.message().find("show.connection: no connection \"nope\""), std::string::npos) << bad.message();

    show.set_view(request::PORTS);
    show.set_connection("1");
    auto wrong = show_view(snap, show);
    ASSERT_FALSE(wrong.ok());
    EXPECT_EQ(wrong.message().rfind("show.connection:", 0), 0u);

    request::Show unset;
    auto unspecified = show_view(snap, unset);
    ASSERT_FALSE(unspecified.ok());
    EXPECT_EQ(unspecified.message().rfind("show.view: 0 is not a view", 0), 0u) << unspecified.message();

    for (const auto v : {request::STATUS, request::PORTS, request::WORKERS, request::CONNECTIONS, request::PATHS,
                         request::STREAMS, request::SERVERS, request::COUNTERS, request::SESSIONS}) {
        request::Show each;
        each.set_view(v);
        auto tables = show_view(snap, each);
        ASSERT_TRUE(tables.ok()) << request::View_Name(v) << ": " << tables.message();
        EXPECT_FALSE(tables->empty());
    }
}

TEST(views, kcp_priorities_map_to_kwikd_priorities) {
    EXPECT_EQ(stream_priority_of(0), api::stream_priority::critical);
    EXPECT_EQ(stream_priority_of(1), api::stream_priority::high);
    EXPECT_EQ(stream_priority_of(3), api::stream_priority::high);
    EXPECT_EQ(stream_priority_of(4), api::stream_priority::normal);
    EXPECT_EQ(stream_priority_of(7), api::stream_priority::normal);
    EXPECT_EQ(path_status_name(2), "failed");
    EXPECT_EQ(path_status_name(9), "unknown_9");
}

} // namespace
} // namespace kwik::cp
