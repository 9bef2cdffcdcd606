// The worker pipeline on a net_pcap port (EAL --no-huge): kwik-pcapgen traffic for one
// connection over three paths, with reordering, duplication, loss repaired by retransmission
// and corrupted packets, goes in through rx_pcap; the file-store endpoint must write every
// stream byte for byte as the generator's manifest says (CRC32C and size); every corrupted
// packet must be counted under a drop reason; what the worker transmits (tx_pcap) must decode
// with kwik-dump as valid KDP ACKs for the paths.
// Usage (meson passes them): worker_test <kwik-pcapgen> <kwik-dump>
#include <gtest/gtest.h>

#include <rte_eal.h>
#include <rte_mbuf.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <unistd.h>

#include "dataplane/engine/worker.hpp"
#include "dataplane/kdp/crc32c.hpp"
#include "drivers/ring_link.hpp"

namespace fs = std::filesystem;

namespace {

std::string g_pcapgen;
std::string g_dump;
fs::path g_dir;

std::string run(const std::string& cmd) {
    std::string out;
    FILE* p = ::popen(cmd.c_str(), "r");
    if (p == nullptr) {
        return out;
    }
    char buf[4096];
    std::size_t n = 0;
    while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) {
        out.append(buf, n);
    }
    const int rc = ::pclose(p);
    if (rc != 0) {
        out = "exit " + std::to_string(rc) + ": " + out;
    }
    return out;
}

} // namespace

namespace kwik::engine {
namespace {

class worker_pcap : public ::testing::Test {
protected:
    static void SetUpTestSuite() {
        pool = rte_pktmbuf_pool_create("kwik_wt_pool", 8191, 256, 0, 4096, SOCKET_ID_ANY);
        app_pool = rte_pktmbuf_pool_create("kwik_wt_app", 1023, 32, 0, 16384 + RTE_PKTMBUF_HEADROOM, SOCKET_ID_ANY);
        ASSERT_NE(pool, nullptr);
        ASSERT_NE(app_pool, nullptr);
    }
    static rte_mempool* pool;
    static rte_mempool* app_pool;
};
rte_mempool* worker_pcap::pool = nullptr;
rte_mempool* worker_pcap::app_pool = nullptr;

TEST_F(worker_pcap, file_store_receives_every_stream_exactly) {
    drivers::port_config pc;
    pc.device = "net_pcap0";
    pc.pool = pool;
    pc.rss = false;
    auto port = drivers::open_port(pc);
    ASSERT_TRUE(port.ok()) << port.message();

    classifier_config cc;
    std::memcpy(cc.mac.bytes.data(), port->mac().addr_bytes, 6);
    ASSERT_TRUE(cc.add_kwik_port(7707));
    ASSERT_TRUE(cc.add_address(ip_address::v4(0x0A640001))); // 10.100.0.1
    classifier cls(cc);

    std::string error;
    std::unique_ptr<path_table> paths(path_table::create("kwik_wt_paths", 1024, SOCKET_ID_ANY, 1, &error));
    ASSERT_TRUE(paths) << error;

    worker_config wc;
    wc.id = 0;
    worker_port wp;
    wp.queue = port->queue(0);
    wp.mac = cc.mac;
    wp.classify = &cls;
    wc.ports.push_back(wp);
    wc.paths = paths.get();
    wc.tx_pool = pool;
    wc.app_pool = app_pool;
    worker w(wc);

    const fs::path store = g_dir / "store";
    fs::create_directories(store);
    connection_spec cs;
    cs.index = 0;
    cs.endpoint.kind = endpoint_kind::file_store;
    cs.endpoint.directory = store.string();
    ASSERT_TRUE(w.add_connection(cs, &error)) << error;
    for (std::uint32_t p = 0; p < 3; ++p) {
        path_spec ps;
        ps.connection = 0;
        ps.id = p + 1;
        ps.tuple.protocol = 17;
        ps.tuple.src = ip_address::v4(0x0A000002u | ((p + 1) << 8)); // 10.0.<p+1>.2
        ps.tuple.dst = ip_address::v4(0x0A640001);
        ps.tuple.src_port = 40000;
        ps.tuple.dst_port = 7707;
        ASSERT_TRUE(w.add_path(ps, &error)) << error;
    }

    paths->register_worker(0);
    transport::time_ns now = 1'000'000'000;
    for (int i = 0; i < 20000; ++i) {
        w.poll(now);
        now += 200 * transport::us;
    }
    paths->offline(0);
    const worker_counters& c = w.counters();

    // Every stream of the manifest is on disk, byte for byte (size and CRC32C).
    std::ifstream mf(g_dir / "manifest.json");
    const nlohmann::json manifest = nlohmann::json::parse(mf);
    std::size_t streams = 0;
    for (const auto& s : manifest["streams"]) {
        const fs::path file = store / ("c0-s" + std::to_string(s["stream_id"].get<std::uint64_t>()) + ".bin");
        ASSERT_TRUE(fs::exists(file)) << file;
        std::ifstream in(file, std::ios::binary);
        const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
        EXPECT_EQ(bytes.size(), s["final_size"].get<std::uint64_t>()) << file;
        char want[16];
        std::snprintf(want, sizeof want, "0x%08x", kdp::crc32c(bytes.data(), bytes.size()));
        EXPECT_EQ(want, s["crc32c"].get<std::string>()) << file;
        ++streams;
    }
    EXPECT_EQ(streams, 4u);
    EXPECT_EQ(w.endpoint_of(0)->counters().files_written, 4u);

    // Every corrupted packet was counted as a drop, by the classifier or by the codec.
    std::uint64_t corrupted = 0;
    for (const auto& p : manifest["packets"]) {
        corrupted += p.value("corrupted", false) ? 1 : 0;
    }
    std::uint64_t dropped = 0;
    for (auto d : c.classified.drops) {
        dropped += d;
    }
    for (auto d : w.connection_of(0)->counters().drops) {
        dropped += d;
    }
    EXPECT_GT(corrupted, 0u);
    EXPECT_GE(dropped, corrupted);
    EXPECT_EQ(c.drops[static_cast<std::size_t>(kdp::drop_reason::unknown_path)], 0u);
    EXPECT_GT(c.tx_packets, 0u);

    // What the worker sent decodes as KDP: ACKs (and window updates) on the three paths.
    ASSERT_TRUE(port->close().ok()); // flushes tx_pcap
    const std::string out = run(g_dump + " --summary-only " + (g_dir / "out.pcap").string());
    ASSERT_EQ(out.rfind("exit", 0), std::string::npos) << out;
    const nlohmann::json summary = nlohmann::json::parse(out)["summary"];
    EXPECT_GT(summary["accepted"].get<std::uint64_t>(), 0u);
    EXPECT_EQ(summary["dropped"].get<std::uint64_t>(), 0u) << out;
    EXPECT_GT(summary["accepted_by_type"].value("ack", 0u) + summary["accepted_by_type"].value("control", 0u), 0u);
    std::printf("worker: rx %llu, kwik %llu, tx %llu, drops (classifier+codec) %llu for %llu corrupted; out.pcap: %s\n",
                (unsigned long long)c.rx_packets, (unsigned long long)c.kwik_packets, (unsigned long long)c.tx_packets,
                (unsigned long long)dropped, (unsigned long long)corrupted, summary["accepted_by_type"].dump().c_str());
}


// Every stream of a manifest on disk in dir/c<connection>-s<stream>.bin with its size and CRC32C.
std::size_t check_store(const fs::path& manifest_file, const fs::path& dir, std::uint32_t connection) {
    std::ifstream mf(manifest_file);
    const nlohmann::json manifest = nlohmann::json::parse(mf);
    std::size_t good = 0;
    for (const auto& s : manifest["streams"]) {
        const fs::path file = dir / ("c" + std::to_string(connection) + "-s" +
                                     std::to_string(s["stream_id"].get<std::uint64_t>()) + ".bin");
        std::ifstream in(file, std::ios::binary);
        const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
        char crc[16];
        std::snprintf(crc, sizeof crc, "0x%08x", kdp::crc32c(bytes.data(), bytes.size()));
        const bool ok = fs::exists(file) && bytes.size() == s["final_size"].get<std::uint64_t>() &&
                        crc == s["crc32c"].get<std::string>();
        EXPECT_TRUE(ok) << file;
        good += ok ? 1 : 0;
    }
    return good;
}

// Two workers, one port with two queues (a ring link standing in for a NIC without rte_flow):
// every packet of the connection arrives on worker 0's queue, the connection belongs to worker
// 1, so worker 0 hands each one over the hand-off ring and worker 1 reassembles the streams.
TEST_F(worker_pcap, second_worker_owns_the_connection_through_the_hand_off_ring) {
    drivers::port_config src_cfg;
    src_cfg.device = "net_pcap1";
    src_cfg.pool = pool;
    src_cfg.rss = false;
    auto src = drivers::open_port(src_cfg);
    ASSERT_TRUE(src.ok()) << src.message();
    auto link = drivers::ring_link::create("kwik_wt_a", "kwik_wt_b", 2);
    ASSERT_TRUE(link.ok()) << link.message();
    drivers::port_config ac;
    ac.device = link->name_a();
    ac.pool = pool;
    ac.rx_queues = 2;
    ac.tx_queues = 2;
    auto a = drivers::open_port(ac);
    ASSERT_TRUE(a.ok()) << a.message();
    drivers::port_config bc = ac;
    bc.device = link->name_b();
    auto b = drivers::open_port(bc);
    ASSERT_TRUE(b.ok()) << b.message();

    classifier_config cc;
    std::memcpy(cc.mac.bytes.data(), a->mac().addr_bytes, 6);
    ASSERT_TRUE(cc.add_kwik_port(7707));
    ASSERT_TRUE(cc.add_address(ip_address::v4(0x0A640001)));
    classifier cls(cc);
    std::string error;
    std::unique_ptr<path_table> paths(path_table::create("kwik_wt_paths2", 1024, SOCKET_ID_ANY, 2, &error));
    ASSERT_TRUE(paths) << error;
    std::vector<rte_ring*> rings;
    for (int i = 0; i < 2; ++i) {
        rings.push_back(rte_ring_create(("kwik_wt_handoff" + std::to_string(i)).c_str(), 1024, SOCKET_ID_ANY, RING_F_SC_DEQ));
        ASSERT_NE(rings.back(), nullptr);
    }
    std::vector<std::unique_ptr<worker>> ws;
    for (unsigned i = 0; i < 2; ++i) {
        worker_config wc;
        wc.id = i;
        worker_port wp;
        wp.queue = a->queue(static_cast<std::uint16_t>(i));
        wp.mac = cc.mac;
        wp.classify = &cls;
        wc.ports.push_back(wp);
        wc.paths = paths.get();
        wc.tx_pool = pool;
        wc.app_pool = app_pool;
        wc.handoff = rings;
        ws.push_back(std::make_unique<worker>(wc));
    }
    const fs::path store = g_dir / "store2";
    fs::create_directories(store);
    connection_spec cs;
    cs.index = 7;
    cs.endpoint.kind = endpoint_kind::file_store;
    cs.endpoint.directory = store.string();
    ASSERT_TRUE(ws[1]->add_connection(cs, &error)) << error;
    for (std::uint32_t p = 0; p < 3; ++p) {
        path_spec ps;
        ps.connection = 7;
        ps.id = p + 1;
        ps.tuple.protocol = 17;
        ps.tuple.src = ip_address::v4(0x0A000002u | ((p + 1) << 8));
        ps.tuple.dst = ip_address::v4(0x0A640001);
        ps.tuple.src_port = 40000;
        ps.tuple.dst_port = 7707;
        ASSERT_TRUE(ws[1]->add_path(ps, &error)) << error;
    }
    std::array<rte_mbuf*, 32> burst;
    std::uint64_t returned = 0;
    transport::time_ns now = 1'000'000'000;
    for (int i = 0; i < 20000; ++i) {
        // The generator side: pcap packets into the link, all on queue 0.
        const std::uint16_t n = src->queue(0).rx_burst(burst);
        const std::uint16_t sent = b->queue(0).tx_burst({burst.data(), n});
        for (std::uint16_t j = sent; j < n; ++j) {
            rte_pktmbuf_free(burst[j]);
        }
        ws[0]->poll(now);
        ws[1]->poll(now);
        for (std::uint16_t q = 0; q < 2; ++q) {
            const std::uint16_t r = b->queue(q).rx_burst(burst);
            returned += r;
            for (std::uint16_t j = 0; j < r; ++j) {
                rte_pktmbuf_free(burst[j]);
            }
        }
        now += 200 * transport::us;
    }
    EXPECT_EQ(check_store(g_dir / "manifest2.json", store, 7), 4u);
    EXPECT_GT(ws[0]->counters().handed_off, 0u);
    EXPECT_EQ(ws[0]->counters().handed_off, ws[1]->counters().handoffs_received);
    EXPECT_EQ(ws[1]->counters().rx_packets, 0u); // nothing arrived on its own queue
    EXPECT_GT(returned, 0u);                     // its ACKs left through its own tx queue
    std::printf("hand-off: worker 0 received %llu and handed %llu to worker 1; %llu packets came back\n",
                (unsigned long long)ws[0]->counters().rx_packets, (unsigned long long)ws[0]->counters().handed_off,
                (unsigned long long)returned);
    ws.clear();
    ASSERT_TRUE(a->close().ok());
    ASSERT_TRUE(b->close().ok());
    ASSERT_TRUE(src->close().ok());
    for (rte_ring* r : rings) {
        rte_ring_free(r);
    }
}

} // namespace
} // namespace kwik::engine

int main(int argc, char** argv) {
    ::testing::InitGoogleTest(&argc, argv);
    if (argc < 3) {
        std::fprintf(stderr, "usage: %s <kwik-pcapgen> <kwik-dump>\n", argv[0]);
        return 2;
    }
    g_pcapgen = argv[1];
    g_dump = argv[2];
    g_dir = fs::temp_directory_path() / ("kwik-worker-test-" + std::to_string(::getpid()));
    fs::create_directories(g_dir);
    // The traffic exists before EAL starts: net_pcap opens its rx file at probe time.
    const std::string gen = run(g_pcapgen + " -o " + (g_dir / "in.pcap").string() + " --manifest " +
                                (g_dir / "manifest.json").string() +
                                " --connections 1 --paths 3 --streams 4 --stream-size 20000-120000 --pattern random"
                                " --frames-per-packet 2 --max-frame-data 600 --reorder 0.05 --duplicate 0.03"
                                " --loss 0.02 --corrupt 0.02 --ack-every 0 --keepalive-every 0"
                                " --window-update-every 0 --seed 11 --server-mac 02:70:63:61:70:00");
    if (!gen.empty()) {
        std::fprintf(stderr, "kwik-pcapgen failed: %s\n", gen.c_str());
        return 1;
    }
    const std::string gen2 = run(g_pcapgen + " -o " + (g_dir / "in2.pcap").string() + " --manifest " +
                                 (g_dir / "manifest2.json").string() +
                                 " --connections 1 --paths 3 --streams 4 --stream-size 20000-80000 --pattern random"
                                 " --reorder 0.05 --duplicate 0.03 --loss 0.02 --ack-every 0 --keepalive-every 0"
                                 " --window-update-every 0 --seed 12 --server-mac 00:00:00:00:00:00");
    if (!gen2.empty()) {
        std::fprintf(stderr, "kwik-pcapgen failed: %s\n", gen2.c_str());
        return 1;
    }
    const std::string vdev = "--vdev=net_pcap0,rx_pcap=" + (g_dir / "in.pcap").string() + ",tx_pcap=" +
                             (g_dir / "out.pcap").string();
    const std::string vdev2 = "--vdev=net_pcap1,rx_pcap=" + (g_dir / "in2.pcap").string() + ",tx_pcap=" +
                              (g_dir / "out2.pcap").string();
    const char* eal[] = {"worker_test", "--no-huge", "--no-pci", "-m", "512", "--no-shconf",
                         "--file-prefix=kwik_worker_test", "--no-telemetry", "-l", "0", "--log-level=*:warning",
                         vdev.c_str(), vdev2.c_str()};
    if (rte_eal_init(static_cast<int>(std::size(eal)), const_cast<char**>(eal)) < 0) {
        std::fprintf(stderr, "EAL init failed\n");
        return 1;
    }
    const int rc = RUN_ALL_TESTS();
    rte_eal_cleanup();
    fs::remove_all(g_dir);
    return rc;
}
