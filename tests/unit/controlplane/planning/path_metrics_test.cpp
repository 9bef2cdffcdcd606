// Unit tests for controlplane/server/planning/path_metrics: rates from cumulative snapshots with
// time-weighted smoothing, restarts, the capacity estimate, and the conversions from and to
// PerformanceMetrics, the data plane's path counters and a discovery answer.
#include "controlplane/server/planning/path_metrics.hpp"

#include <gtest/gtest.h>

#include <cmath>

#include "dataplane/api/counters.hpp"

namespace kwik::cp {
namespace {

path_metrics snapshot(std::uint64_t sent_bytes, std::uint64_t received_bytes, std::uint64_t packets,
                      std::uint64_t lost, std::uint64_t capacity_bps = 100'000'000) {
    path_metrics m;
    m.connection_id = "c";
    m.path_id = 1;
    m.bytes_sent = sent_bytes;
    m.bytes_received = received_bytes;
    m.packets_sent = packets;
    m.packets_lost = lost;
    m.capacity_bps = capacity_bps;
    return m;
}

TEST(metrics_window, first_interval_sets_then_time_weighted_smoothing) {
    metrics_window w({.time_constant_s = 2.0});
    EXPECT_FALSE(w.add(snapshot(0, 0, 0, 0), 0));
    EXPECT_FALSE(w.primed());

    // 1 s: 5 MB sent (40 Mbit/s), 1 MB received, 1000 packets, 10 lost.
    EXPECT_TRUE(w.add(snapshot(5'000'000, 1'000'000, 1000, 10), 1 * us_per_s));
    EXPECT_DOUBLE_EQ(w.rates().tx_bps, 40e6);
    EXPECT_DOUBLE_EQ(w.rates().rx_bps, 8e6);
    EXPECT_DOUBLE_EQ(w.rates().loss_rate, 0.01);
    EXPECT_DOUBLE_EQ(w.rates().utilisation, 0.4);
    EXPECT_EQ(w.rates().intervals, 1u);

    // 2 s later: 20 MB more (80 Mbit/s), 1000 packets, none lost. alpha = 1 - exp(-2/2).
    EXPECT_TRUE(w.add(snapshot(25'000'000, 1'000'000, 2000, 10), 3 * us_per_s));
    const double alpha = 1.0 - std::exp(-1.0);
    EXPECT_DOUBLE_EQ(w.rates().last_tx_bps, 80e6);
    EXPECT_DOUBLE_EQ(w.rates().last_interval_s, 2.0);
    EXPECT_NEAR(w.rates().tx_bps, 40e6 + alpha * 40e6, 1e-3);
    EXPECT_NEAR(w.rates().rx_bps, 8e6 - alpha * 8e6, 1e-3);
    EXPECT_NEAR(w.rates().loss_rate, 0.01 - alpha * 0.01, 1e-12);
    EXPECT_NEAR(w.rates().utilisation, w.rates().tx_bps / 100e6, 1e-12);
}

TEST(metrics_window, idle_interval_keeps_loss_and_losses_without_sends_count_fully) {
    metrics_window w;
    ASSERT_FALSE(w.add(snapshot(0, 0, 0, 0), 0));
    ASSERT_TRUE(w.add(snapshot(1000, 0, 100, 5), us_per_s));
    EXPECT_DOUBLE_EQ(w.rates().loss_rate, 0.05);
    ASSERT_TRUE(w.add(snapshot(1000, 0, 100, 5), 2 * us_per_s)); // nothing sent, nothing lost
    EXPECT_DOUBLE_EQ(w.rates().loss_rate, 0.05);
    EXPECT_NEAR(w.rates().tx_bps, 8000.0 * std::exp(-1.0 / 5.0), 1e-9);
    ASSERT_TRUE(w.add(snapshot(1000, 0, 100, 8), 3 * us_per_s)); // 3 lost, 0 sent: loss 1
    EXPECT_DOUBLE_EQ(w.rates().last_loss_rate, 1.0);
}

TEST(metrics_window, restarts_on_counter_reset_and_on_time_not_advancing) {
    metrics_window w;
    ASSERT_FALSE(w.add(snapshot(1000, 0, 10, 0), 0));
    ASSERT_TRUE(w.add(snapshot(2000, 0, 20, 0), us_per_s));
    EXPECT_FALSE(w.add(snapshot(3000, 0, 30, 0), us_per_s)); // same time
    EXPECT_EQ(w.rates().intervals, 0u);
    ASSERT_TRUE(w.add(snapshot(4000, 0, 40, 0), 2 * us_per_s));
    EXPECT_DOUBLE_EQ(w.rates().tx_bps, 8000.0);
    EXPECT_FALSE(w.add(snapshot(10, 0, 1, 0), 3 * us_per_s)); // kwikd restarted
    EXPECT_EQ(w.rates().tx_bps, 0.0);
    ASSERT_TRUE(w.add(snapshot(1010, 0, 2, 0), 4 * us_per_s));
    EXPECT_DOUBLE_EQ(w.rates().tx_bps, 8000.0); // set directly again after the restart
}

TEST(path_metrics, capacity_estimate_prefers_provisioned_then_window_or_delivery) {
    path_metrics m;
    EXPECT_EQ(capacity_estimate_bps(m), 0.0);
    m.cwnd_bytes = 125'000;
    m.smoothed_rtt_us = 10'000; // 1 Mbit per 10 ms = 100 Mbit/s
    EXPECT_DOUBLE_EQ(capacity_estimate_bps(m), 100e6);
    m.delivery_rate_bps = 150'000'000;
    EXPECT_DOUBLE_EQ(capacity_estimate_bps(m), 150e6);
    m.capacity_bps = 50'000'000;
    EXPECT_DOUBLE_EQ(capacity_estimate_bps(m), 50e6);
}

TEST(path_metrics, performance_metrics_round_trip) {
    path_metrics a;
    a.connection_id = "conn-7";
    a.path_id = 3;
    a.bytes_sent = 1;
    a.bytes_received = 2;
    a.packets_sent = 3;
    a.packets_received = 4;
    a.packets_lost = 5;
    a.packets_retransmitted = 6;
    a.bytes_retransmitted = 7;
    a.smoothed_rtt_us = 8;
    a.min_rtt_us = 9;
    a.rtt_var_us = 10;
    a.cwnd_bytes = 11;
    a.bytes_in_flight = 12;
    a.delivery_rate_bps = 13;
    a.loss_rate = 0.25f;
    path_metrics b = a;
    b.path_id = 4;
    b.bytes_sent = 100;
    b.delivery_rate_bps = 7;
    const std::vector<path_metrics> in{a, b};

    const kcp::v3::PerformanceMetrics report = to_kcp("conn-7", in, 250);
    EXPECT_EQ(report.connection_id(), "conn-7");
    EXPECT_EQ(report.report_interval_ms(), 250u);
    EXPECT_EQ(report.connection().bytes_sent(), 101u);
    EXPECT_EQ(report.connection().packets_lost(), 10u);
    EXPECT_EQ(report.delivery_rate_bps(), 20u);
    ASSERT_EQ(report.paths_size(), 2);

    kcp::v3::PerformanceMetrics parsed;
    ASSERT_TRUE(parsed.ParseFromString(report.SerializeAsString()));
    const std::vector<path_metrics> out = from_kcp(parsed);
    ASSERT_EQ(out.size(), 2u);
    EXPECT_EQ(out[0].connection_id, "conn-7");
    EXPECT_EQ(out[0].path_id, 3u);
    EXPECT_EQ(out[0].bytes_sent, 1u);
    EXPECT_EQ(out[0].bytes_received, 2u);
    EXPECT_EQ(out[0].packets_sent, 3u);
    EXPECT_EQ(out[0].packets_received, 4u);
    EXPECT_EQ(out[0].packets_lost, 5u);
    EXPECT_EQ(out[0].packets_retransmitted, 6u);
    EXPECT_EQ(out[0].bytes_retransmitted, 7u);
    EXPECT_EQ(out[0].smoothed_rtt_us, 8u);
    EXPECT_EQ(out[0].min_rtt_us, 9u);
    EXPECT_EQ(out[0].rtt_var_us, 10u);
    EXPECT_EQ(out[0].cwnd_bytes, 11u);
    EXPECT_EQ(out[0].bytes_in_flight, 12u);
    EXPECT_EQ(out[0].delivery_rate_bps, 13u);
    EXPECT_EQ(out[0].loss_rate, 0.25f);
    EXPECT_EQ(out[1].path_id, 4u);
    EXPECT_EQ(out[1].bytes_sent, 100u);
}

TEST(path_metrics, from_data_plane_counters) {
    api::path_counters c{};
    c.connection_id = 9;
    c.path_id = 2;
    c.status = 1;
    c.rx_packets = 10;
    c.rx_bytes = 11;
    c.tx_packets = 12;
    c.tx_bytes = 13;
    c.lost_packets = 14;
    c.retransmitted_packets = 15;
    c.smoothed_rtt_ns = 12'345'678;
    c.min_rtt_ns = 999;
    c.rtt_var_ns = std::uint64_t{1} << 60; // saturates
    c.cwnd_bytes = 64'000;
    const path_metrics m = from_counters(c, "kcp-9");
    EXPECT_EQ(m.connection_id, "kcp-9");
    EXPECT_EQ(m.path_id, 2u);
    EXPECT_EQ(m.status, path_status::suspect);
    EXPECT_EQ(m.packets_received, 10u);
    EXPECT_EQ(m.bytes_received, 11u);
    EXPECT_EQ(m.packets_sent, 12u);
    EXPECT_EQ(m.bytes_sent, 13u);
    EXPECT_EQ(m.packets_lost, 14u);
    EXPECT_EQ(m.packets_retransmitted, 15u);
    EXPECT_EQ(m.smoothed_rtt_us, 12'345u);
    EXPECT_EQ(m.min_rtt_us, 0u);
    EXPECT_EQ(m.rtt_var_us, 4'294'967'295u);
    EXPECT_EQ(m.cwnd_bytes, 64'000u);
    c.status = 7;
    EXPECT_EQ(from_counters(c, "x").status, path_status::failed);
}

TEST(path_metrics, discovery_answer_as_availability) {
    kcp::v3::ServerDiscoveryResponse r;
    auto* s = r.add_servers();
    s->set_address("198.51.100.7");
    s->set_available_bandwidth_mbps(250);
    s->set_latency_ms(12);
    const server_availability a = from_kcp(r);
    ASSERT_EQ(a.servers.size(), 1u);
    const server_candidate* c = a.find("198.51.100.7");
    ASSERT_NE(c, nullptr);
    EXPECT_EQ(c->address, "198.51.100.7");
    EXPECT_EQ(c->available_bps, 250'000'000u);
    EXPECT_EQ(c->latency_us, 12'000u);
    EXPECT_TRUE(c->healthy);
    EXPECT_EQ(a.find("other"), nullptr);
}

} // namespace
} // namespace kwik::cp
