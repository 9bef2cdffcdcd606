// The counters region (dataplane/api/counters.hpp): its layout, publish and read, sums across
// workers, merging of connections and paths by id, the epoch, and the seqlock: a writer thread
// publishing multi-field snapshots while a reader thread checks that every snapshot it accepts
// is whole (and, as a control, that reading without the seqlock does see torn ones).
#include <gtest/gtest.h>

#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "dataplane/api/command_ring.hpp"
#include "dataplane/api/counters.hpp"
#include "dataplane/api/shm_region.hpp"
#include "dataplane/kdp/drop_reason.hpp"

namespace {

namespace api = kwik::api;
namespace kdp = kwik::kdp;

class counters_test : public ::testing::Test {
protected:
    void SetUp() override {
        char dir[] = "/tmp/kwik_api_locks_XXXXXX";
        ASSERT_NE(::mkdtemp(dir), nullptr);
        _lock_dir = dir;
        static std::atomic<int> counter{0};
        _name = "kwik_cnt_" + std::to_string(::getpid()) + "_" + std::to_string(counter++);
        api::region_config c;
        c.name = _name;
        c.lock_directory = _lock_dir;
        c.command_ring_slots = 16;
        c.event_ring_slots = 16;
        c.counters.workers = 3;
        c.counters.ports = 2;
        c.counters.max_connections = 8;
        c.counters.max_paths = 16;
        auto region = api::shm_region::create(c);
        ASSERT_TRUE(region.ok()) << region.message();
        _region = std::move(*region);
        auto channel = api::dataplane_channel::create(_region);
        ASSERT_TRUE(channel.ok()) << channel.message();
    }
    void TearDown() override {
        _region = api::shm_region{};
        ::shm_unlink(("/" + _name).c_str());
        std::filesystem::remove_all(_lock_dir);
    }
    api::counters_writer writer(std::uint32_t worker) {
        auto w = api::counters_writer::attach(_region, worker, 10 + worker);
        EXPECT_TRUE(w.ok()) << w.message();
        return w ? *w : api::counters_writer{};
    }
    api::counters_reader reader() {
        auto r = api::counters_reader::attach(_region);
        EXPECT_TRUE(r.ok()) << r.message();
        return r ? *r : api::counters_reader{};
    }
    const api::counters_header& header() const {
        return *_region.at<api::counters_header>(_region.header().counters_offset);
    }

    std::string _lock_dir;
    std::string _name;
    api::shm_region _region;
};

TEST_F(counters_test, layout_offsets) {
    const api::counters_header& h = header();
    EXPECT_EQ(std::memcmp(h.magic, "KWIKCNT1", 8), 0);
    EXPECT_EQ(h.layout_version, api::counters_layout_version);
    EXPECT_EQ(h.workers, 3u);
    EXPECT_EQ(h.ports, 2u);
    EXPECT_EQ(h.drop_reasons, kdp::drop_reason_count);
    EXPECT_EQ(h.max_connections, 8u);
    EXPECT_EQ(h.max_paths, 16u);
    // The main block right after the header: its line, kwikd_counters, 2 ports x 192 bytes.
    EXPECT_EQ(h.main_offset, _region.header().counters_offset + 256);
    EXPECT_EQ(h.nic_port_entry_size, 192u);
    EXPECT_EQ(h.blocks_offset, h.main_offset + 512);
    EXPECT_EQ(h.worker_offset, 64u);
    EXPECT_EQ(h.ports_offset, 64u + 128u); // worker_counters: 128 bytes since layout version 2
    EXPECT_EQ(h.drops_offset, 192u + 2 * 64);
    const std::uint64_t drops_end = h.drops_offset + 8 * kdp::drop_reason_count;
    EXPECT_EQ(h.connections_offset, (drops_end + 127) / 128 * 128);
    EXPECT_EQ(h.paths_offset, h.connections_offset + 8 * 128);
    EXPECT_EQ(h.block_stride, h.paths_offset + 16 * 128);
    EXPECT_EQ(h.block_stride % 128, 0u);
    EXPECT_EQ(h.blocks_offset % 128, 0u);
    EXPECT_EQ(h.connection_entry_size, 128u);
    EXPECT_EQ(h.path_entry_size, 128u);
    EXPECT_EQ(_region.header().counters_bytes, 256 + 512 + 3 * h.block_stride);
    EXPECT_EQ(_region.at<api::main_block_header>(h.main_offset)->sequence, 0u);
    // Each block's header knows its worker from creation on.
    for (std::uint32_t w = 0; w < 3; ++w) {
        const auto* bh = _region.at<api::worker_block_header>(h.blocks_offset + w * h.block_stride);
        EXPECT_EQ(bh->worker, w);
        EXPECT_EQ(bh->sequence, 0u);
    }
    const api::counters_layout l = api::compute_counters_layout({3, 2, 8, 16});
    EXPECT_EQ(l.block_stride, h.block_stride);
    EXPECT_EQ(l.main_bytes, 512u);
    // Three ports: 64 + 64 + 576 = 704 bytes, padded to 768 (128-byte units).
    EXPECT_EQ(api::compute_counters_layout({3, 3, 8, 16}).main_bytes, 768u);
    EXPECT_EQ(l.bytes, _region.header().counters_bytes);
}

TEST_F(counters_test, publish_then_read_one_worker) {
    api::counters_writer w = writer(1);
    EXPECT_EQ(w.ports(), 2u);
    EXPECT_EQ(w.drop_reasons(), kdp::drop_reason_count);
    std::array<std::uint64_t, kdp::drop_reason_count> drops{};
    drops[static_cast<std::size_t>(kdp::drop_reason::bad_packet_checksum)] = 7;
    drops[static_cast<std::size_t>(kdp::drop_reason::packet_too_short)] = 2;
    w.begin_publish();
    w.store_worker({100, 40, 3, 4, 5, 6, 7, 0, 12, 34'000, {}});
    w.store_port(0, {10, 1000, 20, 2000, 1, 2, 3, 4});
    w.store_port(1, {11, 1100, 21, 2100, 0, 0, 0, 0});
    w.store_port(2, {99, 99, 99, 99, 99, 99, 99, 99}); // no such port: ignored
    w.store_drops(drops);
    w.end_publish(5555);

    api::counters_reader r = reader();
    api::worker_snapshot s;
    api::read_stats stats;
    ASSERT_TRUE(r.read_worker(1, s, &stats));
    EXPECT_EQ(stats.retries, 0u);
    EXPECT_EQ(s.worker, 1u);
    EXPECT_EQ(s.lcore, 11u);
    EXPECT_EQ(s.publish_ns, 5555u);
    EXPECT_EQ(s.publish_count, 1u);
    EXPECT_EQ(s.worker_totals.polls, 100u);
    EXPECT_EQ(s.worker_totals.commands_applied, 7u);
    EXPECT_EQ(s.worker_totals.idle_sleeps, 12u);
    EXPECT_EQ(s.worker_totals.idle_sleep_ns, 34'000u);
    ASSERT_EQ(s.ports.size(), 2u);
    EXPECT_EQ(s.ports[0].rx_bytes, 1000u);
    EXPECT_EQ(s.ports[0].exception_tx, 4u);
    EXPECT_EQ(s.ports[1].tx_packets, 21u);
    ASSERT_EQ(s.drops.size(), kdp::drop_reason_count);
    EXPECT_EQ(s.drops[static_cast<std::size_t>(kdp::drop_reason::bad_packet_checksum)], 7u);
    EXPECT_EQ(r.drop_reason_name(static_cast<std::uint32_t>(kdp::drop_reason::bad_packet_checksum)),
              "bad_packet_checksum");
    // Worker 0 never published: zeros, and consistent.
    ASSERT_TRUE(r.read_worker(0, s));
    EXPECT_EQ(s.publish_count, 0u);
    EXPECT_EQ(s.ports[0].rx_packets, 0u);
    EXPECT_FALSE(r.read_worker(3, s)) << "no worker 3";
    // The sequence moved by two per publish.
    const auto* bh = _region.at<api::worker_block_header>(header().blocks_offset + header().block_stride);
    EXPECT_EQ(bh->sequence, 2u);
}

TEST_F(counters_test, main_block_publish_then_read) {
    auto w = api::main_counters_writer::attach(_region);
    ASSERT_TRUE(w.ok()) << w.message();
    EXPECT_EQ(w->ports(), 2u);
    api::counters_reader r = reader();
    api::main_snapshot m;
    ASSERT_TRUE(r.read_main(m));
    EXPECT_EQ(m.publish_count, 0u) << "never published: zeros";
    ASSERT_EQ(m.nic.size(), 2u);
    EXPECT_EQ(m.nic[1].sources, 0u);

    api::kwikd_counters k{3, 1, 2, 4, 50, 1, 49, 0};
    std::array<api::nic_port_counters, 3> nic{}; // one more than the region has: ignored
    nic[0] = {api::nic_source_ethdev, 0, 100, 6400, 90, 5760, 7, 1, 2, 3, 0, 0, 0, 0, 0, 0, 0, 0, {}};
    nic[1] = {api::nic_source_ethdev | api::nic_source_xdp, 1, 10, 640, 9, 576, 0, 0, 0, 0, 8, 1, 2, 3, 4, 5, 6, 7, {}};
    nic[2].rx_packets = 999;
    w->publish(k, nic, 1234);
    k.commands = 51;
    nic[0].rx_packets = 101;
    w->publish(k, nic, 2345);

    api::read_stats stats;
    ASSERT_TRUE(r.read_main(m, &stats));
    EXPECT_EQ(stats.retries, 0u);
    EXPECT_EQ(m.publish_count, 2u);
    EXPECT_EQ(m.publish_ns, 2345u);
    EXPECT_EQ(m.kwikd.flow_rules, 3u);
    EXPECT_EQ(m.kwikd.handoff_paths, 1u);
    EXPECT_EQ(m.kwikd.paths, 4u);
    EXPECT_EQ(m.kwikd.commands, 51u);
    EXPECT_EQ(m.kwikd.events_forwarded, 49u);
    EXPECT_EQ(m.nic[0].rx_packets, 101u);
    EXPECT_EQ(m.nic[0].tx_bytes, 5760u);
    EXPECT_EQ(m.nic[0].imissed, 7u);
    EXPECT_EQ(m.nic[0].ierrors, 1u);
    EXPECT_EQ(m.nic[0].oerrors, 2u);
    EXPECT_EQ(m.nic[0].rx_nombuf, 3u);
    EXPECT_EQ(m.nic[0].sources, api::nic_source_ethdev);
    EXPECT_EQ(m.nic[1].sources, api::nic_source_ethdev | api::nic_source_xdp);
    EXPECT_EQ(m.nic[1].read_errors, 1u);
    EXPECT_EQ(m.nic[1].xdp_redirected, 8u);
    EXPECT_EQ(m.nic[1].xdp_no_socket, 1u);
    EXPECT_EQ(m.nic[1].xdp_not_ip, 2u);
    EXPECT_EQ(m.nic[1].xdp_not_udp, 3u);
    EXPECT_EQ(m.nic[1].xdp_not_kwik_port, 4u);
    EXPECT_EQ(m.nic[1].xdp_not_kwik_address, 5u);
    EXPECT_EQ(m.nic[1].xdp_fragment, 6u);
    EXPECT_EQ(m.nic[1].xdp_truncated, 7u);
    // The sequence moved by two per publish, and the workers' blocks were not touched.
    EXPECT_EQ(_region.at<api::main_block_header>(header().main_offset)->sequence, 4u);
    for (std::uint32_t b = 0; b < 3; ++b) {
        EXPECT_EQ(_region.at<api::worker_block_header>(header().blocks_offset + b * header().block_stride)->sequence,
                  0u);
    }
    // read_totals carries the main block as it is.
    const api::counters_totals t = r.read_totals();
    ASSERT_TRUE(t.main_read);
    EXPECT_EQ(t.main.publish_count, 2u);
    EXPECT_EQ(t.main.nic[1].xdp_truncated, 7u);

    // A main lcore stuck mid-publish: readers give up instead of returning a torn block.
    auto* seq = &_region.at<api::main_block_header>(header().main_offset)->sequence;
    *seq = 5;
    EXPECT_FALSE(r.read_main(m, &stats, 10));
    EXPECT_EQ(stats.gave_up, 1u);
    *seq = 4;

    // A read-only mapping cannot host the writer.
    api::open_options o;
    o.mode = api::access::read_only;
    o.lock_directory = _lock_dir;
    auto ro = api::shm_region::open(_name, o);
    ASSERT_TRUE(ro.ok()) << ro.message();
    auto bad = api::main_counters_writer::attach(*ro);
    ASSERT_FALSE(bad.ok());
    EXPECT_NE(bad.message().find("is not mapped read-write"), std::string::npos) << bad.message();
}

TEST_F(counters_test, main_block_header_fields_are_checked) {
    auto& h = const_cast<api::counters_header&>(header());
    const auto& rh = _region.header();
    auto check = [&] { return api::check_counters_region(_region.base(), rh.counters_offset, rh.counters_bytes, _region.size()); };
    ASSERT_EQ(check(), "");
    h.nic_port_entry_size = 128;
    EXPECT_NE(check().find("main block inconsistent"), std::string::npos) << check();
    EXPECT_NE(check().find("entries of 128 bytes, this program reads 192"), std::string::npos) << check();
    h.nic_port_entry_size = 192;
    const std::uint64_t saved = h.main_offset;
    h.main_offset = h.blocks_offset - 64; // its ports would run into worker 0's block
    EXPECT_NE(check().find("main block inconsistent"), std::string::npos) << check();
    h.main_offset = saved + 8;
    EXPECT_NE(check().find("main block inconsistent"), std::string::npos) << check();
    h.main_offset = saved;
    EXPECT_EQ(check(), "");
}

TEST_F(counters_test, totals_sum_across_workers_and_merge_by_id) {
    api::counters_writer w0 = writer(0);
    api::counters_writer w1 = writer(1);
    api::counters_writer w2 = writer(2);
    std::vector<std::uint64_t> drops(kdp::drop_reason_count, 1);
    for (auto* w : {&w0, &w1, &w2}) {
        w->begin_publish();
        w->store_worker({10, 5, 1, 1, 0, 0, 2, 0, 4, 1000, {}});
        w->store_port(0, {100, 10000, 50, 5000, 1, 0, 0, 0});
        w->store_port(1, {1, 1, 1, 1, 1, 1, 1, 1});
        w->store_drops(drops);
        w->end_publish(1);
    }
    // Connection 7 on worker 0 (slot 3), and again on worker 2 (slot 0) after an owner change.
    api::connection_counters c7a{};
    c7a.connection_id = 7;
    c7a.rx_packets = 10;
    c7a.delivered_bytes = 1000;
    c7a.active_paths = 2;
    c7a.updated_ns = 100;
    api::connection_counters c7b = c7a;
    c7b.rx_packets = 5;
    c7b.delivered_bytes = 500;
    c7b.active_paths = 3; // newer gauge wins
    c7b.updated_ns = 200;
    api::connection_counters c9{};
    c9.connection_id = 9;
    c9.tx_bytes = 42;
    w0.store_connection(3, c7a);
    w2.store_connection(0, c7b);
    w1.store_connection(7, c9);
    w1.store_connection(8, c9); // no slot 8: ignored
    api::path_counters p{};
    p.connection_id = 7;
    p.path_id = 0;
    p.rx_packets = 3;
    p.smoothed_rtt_ns = 20000;
    p.updated_ns = 5;
    api::path_counters q = p;
    q.path_id = 1;
    q.rx_packets = 4;
    w0.store_path(0, p);
    w0.store_path(15, q);
    p.rx_packets = 6;
    p.smoothed_rtt_ns = 30000;
    p.updated_ns = 1; // older: its gauge loses
    w2.store_path(4, p);

    api::counters_reader r = reader();
    const api::counters_totals t = r.read_totals();
    EXPECT_EQ(t.workers_read, 3u);
    EXPECT_EQ(t.stats.gave_up, 0u);
    EXPECT_EQ(t.worker.polls, 30u);
    EXPECT_EQ(t.worker.commands_applied, 6u);
    EXPECT_EQ(t.worker.idle_sleeps, 12u) << "summed like the other counts";
    EXPECT_EQ(t.worker.idle_sleep_ns, 3000u);
    ASSERT_EQ(t.ports.size(), 2u);
    EXPECT_EQ(t.ports[0].rx_packets, 300u);
    EXPECT_EQ(t.ports[0].tx_bytes, 15000u);
    EXPECT_EQ(t.ports[1].exception_rx, 3u);
    ASSERT_EQ(t.drops.size(), kdp::drop_reason_count);
    for (std::uint64_t d : t.drops) {
        EXPECT_EQ(d, 3u);
    }
    ASSERT_EQ(t.connections.size(), 2u);
    EXPECT_EQ(t.connections[0].connection_id, 7u);
    EXPECT_EQ(t.connections[0].rx_packets, 15u);
    EXPECT_EQ(t.connections[0].delivered_bytes, 1500u);
    EXPECT_EQ(t.connections[0].active_paths, 3u);
    EXPECT_EQ(t.connections[1].connection_id, 9u);
    EXPECT_EQ(t.connections[1].tx_bytes, 42u);
    ASSERT_EQ(t.paths.size(), 2u);
    EXPECT_EQ(t.paths[0].path_id, 0u);
    EXPECT_EQ(t.paths[0].rx_packets, 9u);
    EXPECT_EQ(t.paths[0].smoothed_rtt_ns, 20000u);
    EXPECT_EQ(t.paths[1].path_id, 1u);
    EXPECT_EQ(t.paths[1].rx_packets, 4u);

    const auto found = r.find_connection(7);
    ASSERT_TRUE(found.has_value());
    EXPECT_EQ(found->rx_packets, 15u);
    EXPECT_FALSE(r.find_connection(8).has_value());
    EXPECT_FALSE(r.find_connection(0).has_value());
    const auto path = r.find_path(7, 1);
    ASSERT_TRUE(path.has_value());
    EXPECT_EQ(path->rx_packets, 4u);
    EXPECT_FALSE(r.find_path(9, 1).has_value());

    // A removed connection disappears.
    w0.clear_connection(3);
    w2.clear_connection(0);
    EXPECT_FALSE(r.find_connection(7).has_value());
    EXPECT_EQ(r.read_totals().connections.size(), 1u);
}

TEST_F(counters_test, epoch_advances) {
    api::counters_reader r = reader();
    EXPECT_EQ(r.epoch(), 0u);
    EXPECT_EQ(api::advance_epoch(_region, 77), 1u);
    EXPECT_EQ(api::advance_epoch(_region, 78), 2u);
    EXPECT_EQ(r.epoch(), 2u);
    EXPECT_EQ(header().epoch_ns, 78u);
}

TEST_F(counters_test, attach_errors_name_the_problem) {
    auto bad = api::counters_writer::attach(_region, 3);
    ASSERT_FALSE(bad.ok());
    EXPECT_NE(bad.message().find("worker 3 is not below the region's 3 workers"), std::string::npos) << bad.message();
    api::open_options o;
    o.mode = api::access::read_only;
    o.lock_directory = _lock_dir;
    auto ro = api::shm_region::open(_name, o);
    ASSERT_TRUE(ro.ok()) << ro.message();
    auto w = api::counters_writer::attach(*ro, 0);
    ASSERT_FALSE(w.ok());
    EXPECT_NE(w.message().find("is not mapped read-write"), std::string::npos) << w.message();
    // Reading from a read-only mapping works.
    auto r = api::counters_reader::attach(*ro);
    ASSERT_TRUE(r.ok()) << r.message();
    api::worker_snapshot s;
    EXPECT_TRUE(r->read_worker(0, s));
}

TEST_F(counters_test, writer_stuck_mid_publish_makes_readers_give_up) {
    api::counters_writer w = writer(0);
    w.begin_publish(); // and never ends, as if the worker died here
    api::counters_reader r = reader();
    api::worker_snapshot s;
    api::read_stats stats;
    EXPECT_FALSE(r.read_worker(0, s, &stats, 100));
    EXPECT_EQ(stats.gave_up, 1u);
    EXPECT_EQ(stats.retries, 100u);
    // Other workers are unaffected; totals report the one they could not read.
    const api::counters_totals t = r.read_totals();
    EXPECT_EQ(t.workers_read, 2u);
    EXPECT_EQ(t.stats.gave_up, 1u);
    // A restarted writer recovers the block.
    w.end_publish(1);
    EXPECT_TRUE(r.read_worker(0, s));
}

// ---- the seqlock under a concurrent writer ----

// Every field of a snapshot published by the writer thread derives from one k; a reader that
// mixes two publishes sees fields from two different k.
api::worker_counters worker_for(std::uint64_t k) {
    return {k, k + 1, k + 2, k + 3, k + 4, k + 5, k + 6, k + 7, k + 8, k + 9, {}};
}
api::port_counters port_for(std::uint64_t k, std::uint32_t p) {
    const std::uint64_t b = k * 16 + p * 8;
    return {b, b + 1, b + 2, b + 3, b + 4, b + 5, b + 6, b + 7};
}

// Checks s against the k its first field implies; returns that k, or ~0 if torn.
std::uint64_t consistent_k(const api::worker_snapshot& s) {
    const std::uint64_t k = s.worker_totals.polls;
    const api::worker_counters want_worker = worker_for(k);
    if (std::memcmp(&s.worker_totals, &want_worker, sizeof(want_worker)) != 0) {
        return ~0ull;
    }
    for (std::uint32_t p = 0; p < s.ports.size(); ++p) {
        const api::port_counters want = port_for(k, p);
        if (std::memcmp(&s.ports[p], &want, sizeof(want)) != 0) {
            return ~0ull;
        }
    }
    for (std::size_t i = 0; i < s.drops.size(); ++i) {
        if (s.drops[i] != k * 3 + i) {
            return ~0ull;
        }
    }
    if (s.publish_ns != k) {
        return ~0ull;
    }
    return k;
}

// Stops and joins a test's writer thread on every way out of the test (an ASSERT included).
struct writer_thread_guard {
    std::atomic<bool>& stop;
    std::thread& thread;
    ~writer_thread_guard() {
        stop = true;
        if (thread.joinable()) {
            thread.join();
        }
    }
};

void spin(int n) {
    for (int i = 0; i < n; ++i) {
        __builtin_ia32_pause();
    }
}

// The writer publishes snapshot k = 1, 2, ... until told to stop, pausing inside each publish
// (between ports and drops) so that a reader often lands in the middle of one, and between
// publishes, as a worker does (it publishes every millisecond or so; one that published back
// to back would leave the sequence odd nearly all the time and starve readers).
void run_writer(api::counters_writer w, std::uint32_t ports, const std::atomic<bool>& stop,
                std::atomic<std::uint64_t>& published) {
    std::vector<std::uint64_t> drops(w.drop_reasons());
    for (std::uint64_t k = 1; !stop.load(std::memory_order_relaxed); ++k) {
        for (std::size_t i = 0; i < drops.size(); ++i) {
            drops[i] = k * 3 + i;
        }
        w.begin_publish();
        w.store_worker(worker_for(k));
        for (std::uint32_t p = 0; p < ports; ++p) {
            w.store_port(p, port_for(k, p));
        }
        spin(200);
        w.store_drops(drops);
        w.end_publish(k);
        published.store(k, std::memory_order_relaxed);
        spin(1000);
    }
}

TEST_F(counters_test, seqlock_reader_never_accepts_a_torn_snapshot) {
    std::atomic<bool> stop{false};
    std::atomic<std::uint64_t> published{0};
    std::thread writer_thread(run_writer, writer(2), 2u, std::cref(stop), std::ref(published));
    writer_thread_guard guard{stop, writer_thread};

    api::counters_reader r = reader();
    api::worker_snapshot s;
    api::read_stats stats;
    std::uint64_t reads = 0;
    std::uint64_t torn = 0;
    std::uint64_t went_back = 0;
    std::uint64_t last_k = 0;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(2);
    while ((reads < 20000 || stats.retries < 100) && std::chrono::steady_clock::now() < deadline) {
        ASSERT_TRUE(r.read_worker(2, s, &stats));
        if (s.publish_count == 0) {
            continue; // the writer thread has not published yet: all zeros
        }
        ++reads;
        const std::uint64_t k = consistent_k(s);
        if (k == ~0ull) {
            ++torn;
            continue;
        }
        went_back += k < last_k ? 1 : 0;
        last_k = k;
    }
    stop = true;
    writer_thread.join();
    std::printf("seqlock: %llu reads, %llu retries, %llu publishes, last k %llu\n",
                static_cast<unsigned long long>(reads), static_cast<unsigned long long>(stats.retries),
                static_cast<unsigned long long>(published.load()), static_cast<unsigned long long>(last_k));
    EXPECT_EQ(torn, 0u) << "the reader accepted a snapshot mixing two publishes";
    EXPECT_EQ(went_back, 0u) << "a later read returned an older snapshot";
    EXPECT_EQ(stats.gave_up, 0u);
    EXPECT_GT(last_k, 0u) << "the reader never saw a publish";
    // The test is only meaningful if readers overlapped publishes and had to retry.
    EXPECT_GT(stats.retries, 0u) << "no read overlapped a publish: the retry path was not exercised";
}

// The control experiment: the same writer, read field by field without the seqlock, does give
// torn snapshots. Without this the test above could pass for lack of overlap.
TEST_F(counters_test, reading_without_the_seqlock_sees_torn_snapshots) {
    std::atomic<bool> stop{false};
    std::atomic<std::uint64_t> published{0};
    std::thread writer_thread(run_writer, writer(0), 2u, std::cref(stop), std::ref(published));
    writer_thread_guard guard{stop, writer_thread};

    const api::counters_header& h = header();
    const std::byte* block = _region.base() + h.blocks_offset;
    api::worker_snapshot s;
    s.ports.resize(2);
    s.drops.resize(h.drop_reasons);
    std::uint64_t torn = 0;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(2);
    auto load = [](const void* p) {
        return std::atomic_ref<std::uint64_t>(*static_cast<std::uint64_t*>(const_cast<void*>(p)))
            .load(std::memory_order_relaxed);
    };
    while (torn < 10 && std::chrono::steady_clock::now() < deadline) {
        if (published.load() == 0) {
            continue; // all zeros until the first publish, which is not a tear
        }
        const auto* bh = reinterpret_cast<const api::worker_block_header*>(block);
        s.publish_ns = load(&bh->publish_ns);
        std::uint64_t w[8];
        for (int i = 0; i < 8; ++i) {
            w[i] = load(block + h.worker_offset + 8 * i);
        }
        std::memcpy(&s.worker_totals, w, sizeof(w));
        for (std::uint32_t p = 0; p < 2; ++p) {
            for (int i = 0; i < 8; ++i) {
                w[i] = load(block + h.ports_offset + 64 * p + 8 * i);
            }
            std::memcpy(&s.ports[p], w, sizeof(w));
        }
        for (std::size_t i = 0; i < s.drops.size(); ++i) {
            s.drops[i] = load(block + h.drops_offset + 8 * i);
        }
        torn += consistent_k(s) == ~0ull ? 1 : 0;
    }
    stop = true;
    writer_thread.join();
    EXPECT_GT(torn, 0u) << "unsynchronised reads never tore: the seqlock test above proves nothing here";
}

TEST_F(counters_test, table_entry_seqlock_under_a_concurrent_writer) {
    std::atomic<bool> stop{false};
    api::counters_writer w = writer(1);
    std::thread writer_thread([&] {
        for (std::uint64_t k = 1; !stop.load(std::memory_order_relaxed); ++k) {
            api::path_counters p{};
            std::uint64_t words[15];
            for (std::uint64_t i = 0; i < 15; ++i) {
                words[i] = k * 100 + i;
            }
            std::memcpy(&p, words, sizeof(words));
            w.store_path(5, p);
            spin(100);
        }
    });
    writer_thread_guard guard{stop, writer_thread};
    api::counters_reader r = reader();
    api::read_stats stats;
    std::uint64_t torn = 0;
    std::uint64_t reads = 0;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(2);
    while ((reads < 200000 || stats.retries == 0) && std::chrono::steady_clock::now() < deadline) {
        api::path_counters p{};
        ASSERT_TRUE(r.read_path(1, 5, p, &stats));
        if (p.connection_id == 0) {
            continue; // not stored yet
        }
        ++reads;
        std::uint64_t words[15];
        std::memcpy(words, &p, sizeof(words));
        const std::uint64_t k = words[0] / 100;
        for (std::uint64_t i = 0; i < 15; ++i) {
            if (words[i] != k * 100 + i) {
                ++torn;
                break;
            }
        }
    }
    stop = true;
    writer_thread.join();
    EXPECT_EQ(torn, 0u);
    EXPECT_GT(stats.retries, 0u) << "no read overlapped a store";
}

TEST_F(counters_test, another_process_reads_what_a_worker_published) {
    api::counters_writer w = writer(0);
    w.begin_publish();
    w.store_port(1, {5, 500, 6, 600, 0, 0, 0, 0});
    w.end_publish(9);
    api::connection_counters c{};
    c.connection_id = 1234;
    c.delivered_bytes = 1 << 20;
    w.store_connection(0, c);

    int fds[2];
    ASSERT_EQ(::pipe(fds), 0);
    const pid_t child = ::fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
        api::open_options o;
        o.mode = api::access::read_only;
        o.lock_directory = _lock_dir;
        std::uint64_t out[3] = {};
        auto region = api::shm_region::open(_name, o);
        if (region) {
            auto r = api::counters_reader::attach(*region);
            if (r) {
                const api::counters_totals t = r->read_totals();
                out[0] = t.ports[1].rx_bytes;
                out[1] = t.connections.empty() ? 0 : t.connections[0].connection_id;
                out[2] = t.connections.empty() ? 0 : t.connections[0].delivered_bytes;
            }
        }
        [[maybe_unused]] auto n = ::write(fds[1], out, sizeof(out));
        ::_exit(0);
    }
    std::uint64_t got[3] = {};
    ASSERT_EQ(::read(fds[0], got, sizeof(got)), static_cast<ssize_t>(sizeof(got)));
    int status = 0;
    ::waitpid(child, &status, 0);
    ::close(fds[0]);
    ::close(fds[1]);
    EXPECT_EQ(got[0], 500u);
    EXPECT_EQ(got[1], 1234u);
    EXPECT_EQ(got[2], 1u << 20);
}

} // namespace
