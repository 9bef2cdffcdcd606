// The transport core end to end in the deterministic simulator: two endpoints built from
// dataplane/transport over simulated paths (issue 3, tests a-g).
#include <gtest/gtest.h>

#include <algorithm>
#include <memory>
#include <numeric>

#include "tests/sim/kwik_endpoint.hpp"

namespace kwik::sim {
namespace {

using transport::connection_config;
using transport::stream_options;

// Two nodes, client (sender) and server (receiver), and the paths between them.
class scenario {
public:
    explicit scenario(std::uint64_t seed, bool keep_trace = false) : net(loop, seed, keep_trace) {
        a = net.add_node();
        b = net.add_node();
    }

    std::size_t add_path(const link_config& forward, const link_config& reverse) {
        paths.push_back(net.add_path(a, b, forward, reverse));
        return paths.back();
    }

    void start(connection_config client_config = {}, connection_config server_config = {}) {
        client_config.side = transport::role::client;
        server_config.side = transport::role::server;
        client = std::make_unique<kwik_endpoint>(net, a, client_config, paths);
        server = std::make_unique<kwik_endpoint>(net, b, server_config, paths);
    }

    // Runs until every source of the client is written, finished and acknowledged, or limit.
    bool run_to_completion(time_ns limit) {
        return loop.run_while([this] { return !client->sources_done(); }, limit);
    }

    event_loop loop;
    network net;
    node_id a = 0;
    node_id b = 0;
    std::vector<std::size_t> paths;
    std::unique_ptr<kwik_endpoint> client;
    std::unique_ptr<kwik_endpoint> server;
};

link_config make_link(std::uint64_t mbps, time_ns delay, std::uint64_t queue_bytes = 256 * 1024) {
    link_config c;
    c.rate_bps = mbps * 1000 * 1000;
    c.delay = delay;
    c.queue_limit_bytes = queue_bytes;
    return c;
}

void expect_exact_delivery(const kwik_endpoint& receiver, transport::stream_id id, std::uint64_t size) {
    const auto it = receiver.received().find(id);
    ASSERT_NE(it, receiver.received().end()) << "stream " << id << " never arrived";
    const received_stream& r = it->second;
    EXPECT_TRUE(r.finished) << "stream " << id;
    EXPECT_EQ(r.bytes, size) << "stream " << id;
    EXPECT_EQ(r.duplicate_bytes, 0u) << "stream " << id;
    EXPECT_EQ(r.corrupt_bytes, 0u) << "stream " << id;
    EXPECT_EQ(r.out_of_order, 0u) << "stream " << id;
    if (!r.seen.empty()) {
        EXPECT_EQ(static_cast<std::uint64_t>(std::count(r.seen.begin(), r.seen.end(), true)), size);
    }
}

// (a) Every byte of every stream exactly once, in order for ORDERED streams, under 0-20% loss
// with reordering and duplication, over 1 to 4 paths.
struct impairment_case {
    std::size_t paths;
    double loss;
    double reorder;
    double duplicate;
};

class exactly_once : public ::testing::TestWithParam<impairment_case> {};

TEST_P(exactly_once, every_byte_once) {
    const impairment_case ic = GetParam();
    scenario s(1000 + ic.paths * 100 + static_cast<std::uint64_t>(ic.loss * 100));
    for (std::size_t i = 0; i < ic.paths; ++i) {
        link_config f = make_link(50, (10 + 5 * i) * ms);
        f.loss = ic.loss;
        f.reorder = ic.reorder;
        f.reorder_delay = 3 * ms;
        f.duplicate = ic.duplicate;
        link_config r = f;
        s.add_path(f, r);
    }
    s.start();
    stream_options ordered;
    stream_options unordered;
    unordered.ordered = false;
    stream_options high;
    high.priority = kdp::priority::high;
    const std::uint64_t size = 300 * 1000;
    const auto s1 = s.client->add_bulk(ordered, size);
    const auto s2 = s.client->add_bulk(unordered, size);
    const auto s3 = s.client->add_bulk(high, size / 3);
    const auto s4 = s.client->add_bulk(ordered, 1); // one byte and FIN
    ASSERT_TRUE(s.run_to_completion(120 * sec)) << "transfer did not complete";
    expect_exact_delivery(*s.server, s1, size);
    expect_exact_delivery(*s.server, s2, size);
    expect_exact_delivery(*s.server, s3, size / 3);
    expect_exact_delivery(*s.server, s4, 1);
    EXPECT_FALSE(s.client->conn().closed());
}

INSTANTIATE_TEST_SUITE_P(
    transport, exactly_once,
    ::testing::Values(impairment_case{1, 0.0, 0.0, 0.0}, impairment_case{1, 0.05, 0.05, 0.02},
                      impairment_case{2, 0.10, 0.05, 0.05}, impairment_case{3, 0.20, 0.10, 0.05},
                      impairment_case{4, 0.20, 0.20, 0.10}, impairment_case{4, 0.02, 0.0, 0.0}),
    [](const ::testing::TestParamInfo<impairment_case>& info) {
        return std::to_string(info.param.paths) + "paths_loss" + std::to_string(int(info.param.loss * 100)) +
               "_reorder" + std::to_string(int(info.param.reorder * 100)) + "_dup" +
               std::to_string(int(info.param.duplicate * 100));
    });

// COMPRESSED frames end to end: a text stream is deflated in chunks of up to 16 KiB and arrives
// exactly; a random stream on the same connection is sent uncompressed after its first tries.
TEST(transport_sim, compressed_stream_round_trip) {
    scenario s(23);
    link_config l = make_link(20, 10 * ms);
    l.loss = 0.02;
    s.add_path(l, l);
    s.start();
    stream_options text;
    text.compress = true;
    const std::uint64_t size = 2 << 20;
    const auto t = s.client->add_bulk(text, size);
    const auto r = s.client->add_bulk({}, size / 4);
    ASSERT_TRUE(s.run_to_completion(60 * sec));
    expect_exact_delivery(*s.server, t, size);
    expect_exact_delivery(*s.server, r, size / 4);
    const auto& c = s.client->conn().counters();
    const std::uint64_t wire = s.client->conn().paths()[0].counters.bytes_sent;
    std::printf("compressed frames %llu, fallbacks %llu, %llu stream bytes in %llu wire bytes\n",
                (unsigned long long)c.compressed_frames, (unsigned long long)c.uncompressed_fallbacks,
                (unsigned long long)(size + size / 4), (unsigned long long)wire);
    EXPECT_GT(c.compressed_frames, 0u);
    EXPECT_LT(wire, size / 2 + size / 4 * 11 / 10); // the text went at less than half its size
}

// (b) 50 + 100 Mbit/s paths carry a bulk transfer at >= 90% of the 150 Mbit/s aggregate.
TEST(transport_sim, aggregate_goodput_two_paths) {
    scenario s(7);
    s.add_path(make_link(50, 10 * ms, 128 * 1024), make_link(50, 10 * ms));
    s.add_path(make_link(100, 10 * ms, 256 * 1024), make_link(100, 10 * ms));
    connection_config c;
    c.stream_window = 8 << 20;
    c.connection_window = 32 << 20;
    c.send_buffer_per_stream = 16 << 20;
    c.scheduler.strategy = transport::schedule_strategy::min_rtt;
    s.start(c, c);
    const auto id = s.client->add_bulk({}, 200ull << 20);
    // Steady state: from 2 s to 6 s of the transfer.
    s.loop.run_until(2 * sec);
    const std::uint64_t at2 = s.server->bytes_delivered();
    s.loop.run_until(6 * sec);
    const std::uint64_t at6 = s.server->bytes_delivered();
    const double mbps = double(at6 - at2) * 8 / 4.0 / 1e6;
    RecordProperty("goodput_mbps", std::to_string(mbps));
    std::printf("aggregate goodput %.1f Mbit/s of 150 (%.1f%%)\n", mbps, mbps / 1.5);
    for (const auto& p : s.client->conn().paths()) {
        std::printf("  path %llu: srtt %.2f ms cwnd %llu sent %llu lost %llu\n", (unsigned long long)p.id,
                    double(p.srtt) / 1e6, (unsigned long long)p.cwnd, (unsigned long long)p.counters.packets_sent,
                    (unsigned long long)p.counters.packets_lost);
    }
    EXPECT_GE(mbps, 0.90 * 150) << "goodput below 90% of the aggregate";
    (void)id;
}

// (c) A path blackout mid-transfer: traffic moves to the surviving paths within 3 x the failed
// path's smoothed RTT, and no data is lost.
TEST(transport_sim, blackout_failover) {
    scenario s(11);
    s.add_path(make_link(40, 20 * ms), make_link(40, 20 * ms));
    s.add_path(make_link(40, 15 * ms), make_link(40, 15 * ms));
    s.add_path(make_link(40, 25 * ms), make_link(40, 25 * ms));
    const time_ns blackout = 3 * sec;
    s.net.blackout_path(s.paths[0], blackout, never);
    s.start();
    s.client->set_time_arrivals(false);
    const std::uint64_t size = 60ull << 20;
    const auto id = s.client->add_bulk({}, size);
    s.loop.run_until(blackout);
    const time_ns srtt = s.client->conn().paths()[0].srtt;
    ASSERT_GT(srtt, 0u);
    // Delivery must go on: measure the longest stall in delivered bytes after the blackout.
    std::uint64_t last_bytes = s.server->bytes_delivered();
    time_ns last_progress = blackout;
    time_ns longest_stall = 0;
    const time_ns step = 1 * ms;
    for (time_ns t = blackout + step; t <= blackout + 2 * sec; t += step) {
        s.loop.run_until(t);
        const std::uint64_t bytes = s.server->bytes_delivered();
        if (bytes != last_bytes) {
            longest_stall = std::max(longest_stall, t - last_progress);
            last_progress = t;
            last_bytes = bytes;
        }
    }
    // The failed path's share moved: its in-flight data was sent again elsewhere.
    bool suspect_seen = false;
    time_ns suspect_at = 0;
    for (const auto& e : s.client->path_events()) {
        if (e.path == 1 && (e.event == transport::path_event::suspect || e.event == transport::path_event::failed)) {
            suspect_seen = true;
            suspect_at = e.at;
            break;
        }
    }
    std::printf("failed path srtt %.1f ms, moved after %.1f ms, longest delivery stall %.1f ms\n", double(srtt) / 1e6,
                double(suspect_at - blackout) / 1e6, double(longest_stall) / 1e6);
    ASSERT_TRUE(suspect_seen);
    EXPECT_LE(suspect_at - blackout, 3 * srtt);
    EXPECT_LE(longest_stall, 3 * srtt);
    ASSERT_TRUE(s.run_to_completion(120 * sec));
    expect_exact_delivery(*s.server, id, size);
    bool failed = false;
    for (const auto& e : s.client->path_events()) {
        failed = failed || (e.path == 1 && e.event == transport::path_event::failed);
    }
    EXPECT_TRUE(failed) << "the blacked-out path was never declared failed";
}

// A standby path (control-plane setting) carries no stream data while the primary is up,
// takes the transfer while the primary is blacked out, and gives it back once the primary
// answers again; every byte arrives exactly once.
TEST(transport_sim, standby_failover) {
    scenario s(31);
    s.add_path(make_link(20, 10 * ms), make_link(20, 10 * ms)); // primary (transport path 1)
    s.add_path(make_link(20, 15 * ms), make_link(20, 15 * ms)); // standby (transport path 2)
    s.net.blackout_path(s.paths[0], 2 * sec, 4 * sec);
    s.start();
    ASSERT_TRUE(s.client->conn().set_path_standby(2, true));
    const std::uint64_t size = 16ull << 20;
    const auto id = s.client->add_bulk({}, size);
    const link& standby_link = s.net.link_at(s.net.path(s.paths[1]).forward[0]);
    const link& primary_link = s.net.link_at(s.net.path(s.paths[0]).forward[0]);

    s.loop.run_until(2 * sec);
    const std::uint64_t before = standby_link.counters().bytes_sent;
    EXPECT_LT(before, 2000u) << "only keep-alives and ACKs on the standby path";
    EXPECT_GT(primary_link.counters().bytes_sent, 2000000u);

    s.loop.run_until(4 * sec);
    const std::uint64_t during = standby_link.counters().bytes_sent - before;
    EXPECT_GT(during, 2000000u) << "the standby path took the transfer"; // of at most 5 MB

    time_ns recovered = 0;
    ASSERT_TRUE(s.loop.run_while([&] {
        for (const auto& e : s.client->path_events()) {
            if (e.path == 1 && e.event == transport::path_event::recovered && e.at >= 4 * sec) {
                recovered = e.at;
                return false;
            }
        }
        return true;
    }, 6 * sec)) << "the primary never recovered";
    s.loop.run_until(recovered + 300 * ms); // what was in flight on the standby path settles
    const std::uint64_t after = standby_link.counters().bytes_sent;
    const std::uint64_t primary_after = primary_link.counters().bytes_sent;
    s.loop.run_until(recovered + 1300 * ms);
    std::printf("standby path: %llu bytes before the blackout, %llu during, %llu in the second after recovery "
                "(recovered %.0f ms after the blackout ended)\n",
                (unsigned long long)before, (unsigned long long)during,
                (unsigned long long)(standby_link.counters().bytes_sent - after), double(recovered - 4 * sec) / 1e6);
    EXPECT_LT(standby_link.counters().bytes_sent - after, 1000u);
    EXPECT_GT(primary_link.counters().bytes_sent - primary_after, 1000000u);
    ASSERT_TRUE(s.run_to_completion(60 * sec));
    expect_exact_delivery(*s.server, id, size);
}

// (d) A CRITICAL stream's latency stays within its QoS bound while a bulk stream saturates.
TEST(transport_sim, critical_latency_under_bulk_load) {
    scenario s(13);
    s.add_path(make_link(20, 10 * ms, 512 * 1024), make_link(20, 10 * ms));
    s.add_path(make_link(20, 30 * ms, 512 * 1024), make_link(20, 30 * ms));
    connection_config c;
    c.scheduler.strategy = transport::schedule_strategy::redundant;
    s.start(c, c);
    s.server->set_time_arrivals(true);
    stream_options bulk;
    s.client->add_bulk(bulk, 100ull << 20);
    stream_options critical;
    critical.priority = kdp::priority::critical;
    critical.qos.max_latency_ms = 100;
    critical.qos.priority = kdp::priority::critical;
    const auto id = s.client->add_messages(critical, 1000, 20 * ms, 200, 1 * sec);
    s.loop.run_until(6 * sec);
    const std::vector<time_ns> lat = s.client->message_latencies(*s.server, id);
    ASSERT_GE(lat.size(), 190u);
    std::vector<time_ns> sorted = lat;
    std::sort(sorted.begin(), sorted.end());
    std::printf("critical messages: %zu, p50 %.1f ms, p99 %.1f ms, max %.1f ms (bound 100 ms)\n", sorted.size(),
                double(sorted[sorted.size() / 2]) / 1e6, double(sorted[sorted.size() * 99 / 100]) / 1e6,
                double(sorted.back()) / 1e6);
    EXPECT_LE(sorted.back(), 100 * ms);
}

// QoS min_bandwidth: a normal-priority stream with a guaranteed 8 Mbit/s keeps it beside a
// high-priority bulk stream that would otherwise take all but the anti-starvation share.
TEST(transport_sim, min_bandwidth_guarantee) {
    scenario s(29);
    s.add_path(make_link(20, 10 * ms, 128 * 1024), make_link(20, 10 * ms));
    connection_config c;
    c.stream_window = 4 << 20;
    c.connection_window = 16 << 20;
    s.start(c, c);
    stream_options high;
    high.priority = kdp::priority::high;
    const auto bulk = s.client->add_bulk(high, 1ull << 30);
    stream_options guaranteed;
    guaranteed.qos.min_bandwidth_mbps = 8;
    const auto g = s.client->add_bulk(guaranteed, 1ull << 30);
    stream_options plain;
    const auto p = s.client->add_bulk(plain, 1ull << 30);
    s.loop.run_until(2 * sec);
    auto bytes = [&](transport::stream_id id) {
        const auto it = s.server->received().find(id);
        return it == s.server->received().end() ? std::uint64_t{0} : it->second.bytes;
    };
    const std::uint64_t b0 = bytes(bulk), g0 = bytes(g), p0 = bytes(p);
    s.loop.run_until(6 * sec);
    const double bulk_mbps = double(bytes(bulk) - b0) * 8 / 4 / 1e6;
    const double g_mbps = double(bytes(g) - g0) * 8 / 4 / 1e6;
    const double p_mbps = double(bytes(p) - p0) * 8 / 4 / 1e6;
    std::printf("20 Mbit/s path: high bulk %.1f, normal with 8 Mbit/s guarantee %.1f, plain normal %.1f Mbit/s\n",
                bulk_mbps, g_mbps, p_mbps);
    EXPECT_GE(g_mbps, 0.9 * 8);
    EXPECT_LT(p_mbps, g_mbps / 2); // the same level without a guarantee gets the leftovers
    EXPECT_GE(bulk_mbps, 6.0);
}

// (e) Coupled congestion control: a two-path connection whose paths share one bottleneck with a
// single-path flow takes no more than that flow's share, within 20%.
TEST(transport_sim, coupled_fairness_at_shared_bottleneck) {
    event_loop loop;
    network net(loop, 17, false);
    const node_id a = net.add_node();
    const node_id b = net.add_node();
    const node_id c = net.add_node();
    const node_id d = net.add_node();
    const std::size_t bottleneck = net.add_link(make_link(60, 5 * ms, 150 * 1024));
    const std::size_t access1 = net.add_link(make_link(1000, 5 * ms));
    const std::size_t access2 = net.add_link(make_link(1000, 5 * ms));
    const std::size_t access3 = net.add_link(make_link(1000, 5 * ms));
    const std::size_t back1 = net.add_link(make_link(1000, 10 * ms));
    const std::size_t back2 = net.add_link(make_link(1000, 10 * ms));
    const std::size_t back3 = net.add_link(make_link(1000, 10 * ms));
    const std::size_t mp1 = net.add_path_via(a, b, {access1, bottleneck}, {back1});
    const std::size_t mp2 = net.add_path_via(a, b, {access2, bottleneck}, {back2});
    const std::size_t sp = net.add_path_via(c, d, {access3, bottleneck}, {back3});
    connection_config cfg;
    cfg.stream_window = 8 << 20;
    cfg.connection_window = 32 << 20;
    cfg.send_buffer_per_stream = 16 << 20;
    cfg.cc.algorithm = transport::cc_algorithm::newreno;
    cfg.scheduler.strategy = transport::schedule_strategy::round_robin;
    connection_config single = cfg;
    single.cc.coupled = false;
    cfg.side = transport::role::client;
    single.side = transport::role::client;
    kwik_endpoint mp_client(net, a, cfg, {mp1, mp2});
    kwik_endpoint sp_client(net, c, single, {sp});
    cfg.side = transport::role::server;
    single.side = transport::role::server;
    kwik_endpoint mp_server(net, b, cfg, {mp1, mp2});
    kwik_endpoint sp_server(net, d, single, {sp});
    mp_client.add_bulk({}, 1ull << 32);
    sp_client.add_bulk({}, 1ull << 32);
    loop.run_until(5 * sec);
    const std::uint64_t mp0 = mp_server.bytes_delivered();
    const std::uint64_t sp0 = sp_server.bytes_delivered();
    loop.run_until(25 * sec);
    const double mp_rate = double(mp_server.bytes_delivered() - mp0) * 8 / 20 / 1e6;
    const double sp_rate = double(sp_server.bytes_delivered() - sp0) * 8 / 20 / 1e6;
    std::printf("shared 60 Mbit/s bottleneck: two-path %.1f Mbit/s, single-path %.1f Mbit/s (ratio %.2f)\n",
                mp_rate, sp_rate, mp_rate / sp_rate);
    EXPECT_LE(mp_rate, 1.2 * sp_rate);
    EXPECT_GE(mp_rate + sp_rate, 0.8 * 60);
}

// (f) A slow receiver never makes the sender buffer more than the window.
TEST(transport_sim, slow_receiver_bounded_by_window) {
    scenario s(19);
    s.add_path(make_link(100, 5 * ms), make_link(100, 5 * ms));
    s.add_path(make_link(100, 8 * ms), make_link(100, 8 * ms));
    connection_config c;
    c.stream_window = 256 * 1024;
    c.connection_window = 512 * 1024;
    s.start(c, c);
    s.server->set_read_interval(50 * ms); // drains at most a window every 50 ms: ~40 Mbit/s
    const std::uint64_t size = 20ull << 20;
    const auto id = s.client->add_bulk({}, size);
    std::uint64_t max_ahead = 0;
    for (time_ns t = 10 * ms; t <= 20 * sec && !s.client->sources_done(); t += 10 * ms) {
        s.loop.run_until(t);
        const std::uint64_t buffered = s.server->conn().stream_buffered_bytes(id);
        EXPECT_LE(buffered, c.stream_window) << "at " << t / ms << " ms";
        const auto it = s.server->received().find(id);
        const std::uint64_t consumed = it == s.server->received().end() ? 0 : it->second.bytes;
        const std::uint64_t sent = s.client->conn().counters().stream_bytes_sent;
        max_ahead = std::max(max_ahead, sent - std::min(sent, consumed));
    }
    ASSERT_TRUE(s.run_to_completion(60 * sec));
    s.loop.run_until(s.loop.now() + 200 * ms); // the reader's last drains
    std::printf("receiver buffered at most %llu bytes; sender ahead of the reader at most %llu (window %llu)\n",
                (unsigned long long)s.server->max_receive_buffered(), (unsigned long long)max_ahead,
                (unsigned long long)c.stream_window);
    EXPECT_LE(max_ahead, c.stream_window);
    EXPECT_LE(s.server->max_receive_buffered(), c.stream_window);
    expect_exact_delivery(*s.server, id, size);
}

// (g) The same seed gives the same trace; another seed another.
std::uint64_t run_digest(std::uint64_t seed) {
    scenario s(seed, false);
    for (int i = 0; i < 2; ++i) {
        link_config f = make_link(30, (10 + 7 * i) * ms);
        f.loss = 0.05;
        f.reorder = 0.05;
        f.reorder_delay = 2 * ms;
        f.jitter = 1 * ms;
        s.add_path(f, f);
    }
    s.start();
    s.client->add_bulk({}, 2ull << 20);
    EXPECT_TRUE(s.run_to_completion(60 * sec));
    return s.net.log().digest();
}

TEST(transport_sim, same_seed_same_trace) {
    const std::uint64_t first = run_digest(42);
    EXPECT_EQ(first, run_digest(42));
    EXPECT_NE(first, run_digest(43));
}

} // namespace
} // namespace kwik::sim
