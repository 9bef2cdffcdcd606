// The worker pipeline on a net_pcap port (EAL --no-huge): kwik-pcapgen traffic for one
// connection over three paths, with reordering, duplication, loss repaired by retransmission
// and corrupted packets, goes in through rx_pcap; the file-store endpoint must write every
// stream byte for byte as the generator's manifest says (CRC32C and size); every corrupted
// packet must be counted under a drop reason; what the worker transmits (tx_pcap) must decode
// with kwik-dump as valid KDP ACKs for the paths. Jumbo frames (9000-byte MTU) arrive as mbuf
// chains through a ring link: datagrams cut inside the UDP payload are joined and stored byte
// for byte; frames cut inside their headers are dropped as headers_split; with no application
// buffer free, chained datagrams are dropped as payload_chained; no mbuf is left behind.
// Usage (meson passes them): worker_test <kwik-pcapgen> <kwik-dump>
#include <gtest/gtest.h>

#include <rte_eal.h>
#include <rte_mbuf.h>

#include <arpa/inet.h>
#include <pcap/pcap.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "dataplane/engine/worker.hpp"
#include "dataplane/kdp/crc32c.hpp"
#include "dataplane/kdp/packet.hpp"
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

using frame_bytes = std::vector<std::uint8_t>;

// The frames of a pcap file in order, as kwik-pcapgen wrote them.
std::vector<frame_bytes> read_frames(const fs::path& file) {
    std::vector<frame_bytes> frames;
    std::array<char, PCAP_ERRBUF_SIZE> why{};
    pcap_t* p = ::pcap_open_offline(file.c_str(), why.data());
    if (p == nullptr) {
        ADD_FAILURE() << file << ": " << why.data();
        return frames;
    }
    pcap_pkthdr* h = nullptr;
    const u_char* data = nullptr;
    while (::pcap_next_ex(p, &h, &data) == 1) {
        frames.emplace_back(data, data + h->caplen);
    }
    ::pcap_close(p);
    return frames;
}

} // namespace

namespace kwik::engine {
namespace {

class worker_pcap : public ::testing::Test {
protected:
    static void SetUpTestSuite() {
        if (pool != nullptr) { // a derived suite shares the pools
            return;
        }
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

// One net_pcap port with worker 0 on it (classifier: 10.100.0.1, Kwik port 7707; its own path
// table) and a file-store connection in slot 0 with paths 1..n from 10.0.<p>.2:40000, as
// kwik-pcapgen's default address plan has them. Built in place: the worker points into it.
struct pcap_rig {
    std::optional<drivers::port> port;
    std::optional<classifier> cls;
    std::unique_ptr<path_table> paths;
    std::unique_ptr<worker> w;
};

void make_rig(pcap_rig& r, const char* device, const char* table, rte_mempool* pool, rte_mempool* app_pool,
              worker_mailbox mailbox, std::uint64_t connection_id, const fs::path& store, std::uint32_t path_count) {
    drivers::port_config pc;
    pc.device = device;
    pc.pool = pool;
    pc.rss = false;
    auto port = drivers::open_port(pc);
    ASSERT_TRUE(port.ok()) << port.message();
    r.port.emplace(std::move(port).value());

    classifier_config cc;
    std::memcpy(cc.mac.bytes.data(), r.port->mac().addr_bytes, 6);
    ASSERT_TRUE(cc.add_kwik_port(7707));
    ASSERT_TRUE(cc.add_address(ip_address::v4(0x0A640001))); // 10.100.0.1
    r.cls.emplace(cc);

    std::string error;
    r.paths.reset(path_table::create(table, 1024, SOCKET_ID_ANY, 1, &error));
    ASSERT_TRUE(r.paths) << error;

    worker_config wc;
    wc.id = 0;
    worker_port wp;
    wp.queue = r.port->queue(0);
    wp.mac = cc.mac;
    wp.classify = &*r.cls;
    wc.ports.push_back(wp);
    wc.paths = r.paths.get();
    wc.tx_pool = pool;
    wc.app_pool = app_pool;
    wc.mailbox = mailbox;
    r.w = std::make_unique<worker>(wc);

    fs::create_directories(store);
    connection_spec cs;
    cs.index = 0;
    cs.connection_id = connection_id;
    cs.endpoint.kind = endpoint_kind::file_store;
    cs.endpoint.directory = store.string();
    ASSERT_TRUE(r.w->add_connection(cs, &error)) << error;
    for (std::uint32_t p = 0; p < path_count; ++p) {
        path_spec ps;
        ps.connection = 0;
        ps.id = p + 1;
        ps.tuple.protocol = 17;
        ps.tuple.src = ip_address::v4(0x0A000002u | ((p + 1) << 8)); // 10.0.<p+1>.2
        ps.tuple.dst = ip_address::v4(0x0A640001);
        ps.tuple.src_port = 40000;
        ps.tuple.dst_port = 7707;
        ASSERT_TRUE(r.w->add_path(ps, &error)) << error;
    }
}

TEST_F(worker_pcap, file_store_receives_every_stream_exactly) {
    pcap_rig rig;
    const fs::path store = g_dir / "store";
    ASSERT_NO_FATAL_FAILURE(make_rig(rig, "net_pcap0", "kwik_wt_paths", pool, app_pool, {}, 0, store, 3));
    worker& w = *rig.w;
    auto& paths = rig.paths;
    auto& port = rig.port;

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

// ENCRYPTED frames on net_pcap: kwik-pcapgen --encrypt-key traffic (loss, reordering,
// duplication, corruption) into a file-store connection whose key arrives as a
// set_connection_keys worker_command on the worker's mailbox, as kwikd's main lcore posts it.
// Every stream is stored byte for byte; every sealed frame opened; nothing failed to verify.
TEST_F(worker_pcap, encrypted_streams_with_a_key_from_the_mailbox_are_stored_exactly) {
    std::string error;
    worker_mailbox mailbox = create_mailbox("kwik_wt_enc", 0, 64, 64, SOCKET_ID_ANY, &error);
    ASSERT_TRUE(mailbox.valid()) << error;
    pcap_rig rig;
    const fs::path store = g_dir / "store_enc";
    ASSERT_NO_FATAL_FAILURE(make_rig(rig, "net_pcap2", "kwik_wt_paths_enc", pool, app_pool, mailbox, 1, store, 2));
    auto& w = rig.w;
    auto& paths = rig.paths;
    std::uint8_t key[api::aead_key_size];
    std::memset(key, 0x5c, sizeof key); // --encrypt-key 5c5c...
    worker_command keys{};
    keys.cmd = api::make_set_connection_keys(1, 9, key, 0, 0, true);
    keys.cmd.header.sequence = 1;
    keys.op = worker_op::set_connection_keys;
    keys.token = 77;
    keys.connection = 0;
    ASSERT_TRUE(mailbox.post(keys));
    transport::time_ns now = 1'000'000'000;
    w->apply_commands_now(now);
    // The answer among the replies (the worker also raises path_up events of its own).
    std::array<worker_reply, 16> replies{};
    const unsigned n = mailbox.take_replies(replies.data(), static_cast<unsigned>(replies.size()));
    const auto answer = std::find_if(replies.begin(), replies.begin() + n, [](const worker_reply& r) { return r.token == 77; });
    ASSERT_NE(answer, replies.begin() + n) << "set_connection_keys answered";
    EXPECT_EQ(answer->ev.header.type, api::message_type::command_result);
    EXPECT_EQ(answer->ev.command_result.status, api::result_status::ok) << api::get_text(answer->ev.command_result.reason);
    EXPECT_EQ(w->connection_of(0)->key_phase(), 9);

    paths->register_worker(0);
    for (int i = 0; i < 20000; ++i) {
        w->poll(now);
        now += 200 * transport::us;
    }
    paths->offline(0);
    EXPECT_EQ(check_store(g_dir / "manifest3.json", store, 1), 3u);
    const transport::connection* conn = w->connection_of(0);
    const auto& drops = conn->counters().drops;
    for (const kdp::drop_reason r : {kdp::drop_reason::aead_auth_failed, kdp::drop_reason::aead_unknown_key_phase,
                                     kdp::drop_reason::aead_wrong_direction, kdp::drop_reason::encryption_required}) {
        EXPECT_EQ(drops[static_cast<std::size_t>(r)], 0u) << kdp::to_string(r);
    }
    EXPECT_GT(conn->counters().encrypted_frames_received, 0u);
    EXPECT_GT(drops[static_cast<std::size_t>(kdp::drop_reason::bad_frame_checksum)] +
                  drops[static_cast<std::size_t>(kdp::drop_reason::bad_packet_checksum)] +
                  w->counters().classified.drops[static_cast<std::size_t>(kdp::drop_reason::bad_udp_checksum)],
              0u) << "corrupted packets are the checksums' (checked before decryption), never the AEAD's";
    w.reset();
    ASSERT_TRUE(rig.port->close().ok());
    free_mailbox(mailbox);
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


// ---- Jumbo frames as mbuf chains ----

// Segments cut from these pools hold 4 KB of frame: a 9000-byte MTU frame takes two or more, as
// a NIC with rx scatter and 4 KB buffers hands it over.
constexpr std::uint32_t segment_room = 4096;
constexpr const char* server_mac = "02:70:63:61:70:00"; // kwik-pcapgen --server-mac

// Where a frame's UDP payload lies, [begin, end) from the frame's start: IPv4 without options or
// IPv6 without extension headers, as kwik-pcapgen writes them.
struct udp_payload {
    std::uint32_t begin = 0;
    std::uint32_t end = 0;
};

udp_payload udp_payload_of(const frame_bytes& f) {
    const bool v4 = load_be16(f.data() + 12) == ethertype_ipv4;
    const std::uint32_t l4 = ethernet_header_len + (v4 ? (f[ethernet_header_len] & 0x0Fu) * 4 : ipv6_header_len);
    return {static_cast<std::uint32_t>(l4 + udp_header_len), l4 + load_be16(f.data() + l4 + 4)};
}

// Segment lengths for a frame of `size` bytes cut at `cuts` (offsets where a segment starts),
// with more cuts where a piece would not fit one segment of segment_room bytes.
std::vector<std::uint32_t> segment_lengths(std::size_t size, std::vector<std::uint32_t> cuts) {
    cuts.push_back(0);
    cuts.push_back(static_cast<std::uint32_t>(size));
    std::sort(cuts.begin(), cuts.end());
    cuts.erase(std::unique(cuts.begin(), cuts.end()), cuts.end());
    std::vector<std::uint32_t> lengths;
    for (std::size_t i = 0; i + 1 < cuts.size(); ++i) {
        const std::uint32_t piece = cuts[i + 1] - cuts[i];
        const std::uint32_t n = (piece + segment_room - 1) / segment_room;
        for (std::uint32_t k = 0; k < n; ++k) {
            lengths.push_back(piece / n + (k < piece % n ? 1 : 0));
        }
    }
    return lengths;
}

// Four ways to cut a frame inside its UDP payload, the headers whole in the first segment (the
// classifier reads them there): the headers alone; one byte into the payload and again at an
// odd offset (the UDP checksum then sums pieces of odd length); once in the middle; in thirds
// with the payload's last byte alone.
std::vector<std::uint32_t> payload_cuts(const frame_bytes& f, std::size_t shape) {
    const udp_payload p = udp_payload_of(f);
    const std::uint32_t n = p.end - p.begin;
    switch (shape % 4) {
    case 0:
        return {p.begin};
    case 1:
        return {p.begin + 1, p.begin + (n / 2 | 1)};
    case 2:
        return {p.begin + n / 2};
    default:
        return {p.begin + n / 3, p.begin + 2 * n / 3 + 1, p.end - 1};
    }
}

// Four cuts inside the headers: in the destination MAC, in the EtherType, in the IP header, in
// the UDP header.
std::vector<std::uint32_t> header_cuts(const frame_bytes& f, std::size_t shape) {
    const udp_payload p = udp_payload_of(f);
    switch (shape % 4) {
    case 0:
        return {3};
    case 1:
        return {13};
    case 2:
        return {ethernet_header_len + 9};
    default:
        return {p.begin - 3};
    }
}

// The frame as an mbuf chain with these segment lengths, every segment from pool, marked as
// received on port_id (what a PMD does).
rte_mbuf* make_chain(rte_mempool* pool, const frame_bytes& f, const std::vector<std::uint32_t>& lengths,
                     std::uint16_t port_id) {
    rte_mbuf* head = nullptr;
    std::uint32_t done = 0;
    for (const std::uint32_t len : lengths) {
        rte_mbuf* seg = rte_pktmbuf_alloc(pool);
        char* room = seg != nullptr ? rte_pktmbuf_append(seg, static_cast<std::uint16_t>(len)) : nullptr;
        if (room == nullptr || (head != nullptr && rte_pktmbuf_chain(head, seg) != 0)) {
            rte_pktmbuf_free(seg);
            rte_pktmbuf_free(head);
            return nullptr;
        }
        std::memcpy(room, f.data() + done, len);
        done += len;
        head = head != nullptr ? head : seg;
    }
    head->port = port_id;
    return head;
}

// Every frame as a chain cut where cuts(frame, its index) says; empty, and a test failure, when
// the pool runs dry.
using cut_plan = std::vector<std::uint32_t> (*)(const frame_bytes&, std::size_t);
std::vector<rte_mbuf*> make_chains(rte_mempool* pool, const std::vector<frame_bytes>& frames, cut_plan cuts,
                                   std::uint16_t port_id) {
    std::vector<rte_mbuf*> chains;
    for (std::size_t i = 0; i < frames.size(); ++i) {
        rte_mbuf* m = make_chain(pool, frames[i], segment_lengths(frames[i].size(), cuts(frames[i], i)), port_id);
        if (m == nullptr) {
            ADD_FAILURE() << "no mbufs left for frame " << i;
            rte_pktmbuf_free_bulk(chains.data(), static_cast<unsigned>(chains.size()));
            return {};
        }
        chains.push_back(m);
    }
    return chains;
}

// "10.0.1.2:40000" or "[fd00:0:0:1::2]:40000", as the manifest writes path ends.
std::pair<ip_address, std::uint16_t> udp_endpoint_of(const std::string& text) {
    const std::size_t colon = text.rfind(':');
    std::string host = text.substr(0, colon);
    if (!host.empty() && host.front() == '[') {
        host = host.substr(1, host.size() - 2);
    }
    std::array<std::uint8_t, 16> b{};
    const bool v4 = ::inet_pton(AF_INET, host.c_str(), b.data()) == 1;
    EXPECT_TRUE(v4 || ::inet_pton(AF_INET6, host.c_str(), b.data()) == 1) << text;
    return {v4 ? ip_address::v4(b.data()) : ip_address::v6(b.data()),
            static_cast<std::uint16_t>(std::stoul(text.substr(colon + 1)))};
}

std::string generate(const fs::path& dir, const std::string& args) {
    fs::create_directories(dir / "store");
    return run(g_pcapgen + " -o " + (dir / "in.pcap").string() + " --manifest " + (dir / "manifest.json").string() +
               " --connections 1 --pattern random --ack-every 0 --keepalive-every 0 --window-update-every 0"
               " --server-mac " + server_mac + " " + args);
}

nlohmann::json read_manifest(const fs::path& dir) {
    std::ifstream in(dir / "manifest.json");
    return nlohmann::json::parse(in);
}

// One worker polling end a of a ring link opened with a 9000-byte MTU on the fixture's 4 KB pool
// (so rx scatter is on), serving one file-store connection over the paths a kwik-pcapgen
// manifest names. The test transmits frames into end b and frees what the worker sends back.
struct jumbo_rig {
    std::optional<drivers::ring_link> link;
    std::optional<drivers::port> a;
    std::optional<drivers::port> b;
    std::unique_ptr<classifier> cls;
    std::unique_ptr<path_table> paths;
    std::unique_ptr<worker> w;
    transport::time_ns now = 1'000'000'000;
    std::uint64_t sent_back = 0;

    void open(const std::string& name, rte_mempool* pool, rte_mempool* app_pool, const nlohmann::json& manifest,
              const fs::path& store) {
        auto made = drivers::ring_link::create(name + "_a", name + "_b", 1);
        ASSERT_TRUE(made.ok()) << made.message();
        link.emplace(std::move(made).value());
        for (std::optional<drivers::port>* end : {&a, &b}) {
            drivers::port_config pc;
            pc.device = end == &a ? link->name_a() : link->name_b();
            pc.pool = pool;
            pc.mtu = 9000;
            pc.rss = false;
            auto opened = drivers::open_port(pc);
            ASSERT_TRUE(opened.ok()) << opened.message();
            ASSERT_TRUE(opened->capabilities().rx_scatter) << opened->report();
            end->emplace(std::move(opened).value());
        }
        const nlohmann::json& path_list = manifest["connections"][0]["paths"];
        classifier_config cc;
        ASSERT_EQ(rte_ether_unformat_addr(server_mac, reinterpret_cast<rte_ether_addr*>(cc.mac.bytes.data())), 0);
        ASSERT_TRUE(cc.add_kwik_port(udp_endpoint_of(path_list[0]["server"]).second));
        ASSERT_TRUE(cc.add_address(udp_endpoint_of(path_list[0]["server"]).first));
        cls = std::make_unique<classifier>(cc);
        std::string error;
        paths.reset(path_table::create(name + "_paths", 1024, SOCKET_ID_ANY, 1, &error));
        ASSERT_TRUE(paths) << error;
        worker_config wc;
        worker_port wp;
        wp.queue = a->queue(0);
        wp.mac = cc.mac;
        wp.classify = cls.get();
        wc.ports.push_back(wp);
        wc.paths = paths.get();
        wc.tx_pool = pool;
        wc.app_pool = app_pool;
        w = std::make_unique<worker>(wc);
        connection_spec cs;
        cs.endpoint.kind = endpoint_kind::file_store;
        cs.endpoint.directory = store.string();
        ASSERT_TRUE(w->add_connection(cs, &error)) << error;
        for (const auto& p : path_list) {
            path_spec ps;
            ps.id = p["path_id"].get<transport::path_id>();
            ps.tuple.protocol = 17;
            std::tie(ps.tuple.src, ps.tuple.src_port) = udp_endpoint_of(p["client"]);
            std::tie(ps.tuple.dst, ps.tuple.dst_port) = udp_endpoint_of(p["server"]);
            ASSERT_TRUE(w->add_path(ps, &error)) << error;
        }
        paths->register_worker(0);
    }

    // A burst of frames into the worker's port, a worker poll, and what it sent freed, every
    // 200 us of virtual time until every frame went in and `idle` polls more passed.
    void send(std::vector<rte_mbuf*>& frames, int idle) {
        constexpr std::size_t burst = 32;
        std::size_t next = 0;
        for (int quiet = 0; quiet < idle;) {
            if (next < frames.size()) {
                const std::size_t n = std::min(burst, frames.size() - next);
                next += b->queue(0).tx_burst({frames.data() + next, n});
            } else {
                ++quiet;
            }
            w->poll(now);
            drain();
            now += 200 * transport::us;
        }
    }

    void drain() {
        std::array<rte_mbuf*, 32> back{};
        for (std::uint16_t n = 0; (n = b->queue(0).rx_burst(back)) != 0;) {
            sent_back += n;
            rte_pktmbuf_free_bulk(back.data(), n);
        }
    }

    // Everything the rig holds goes back to its pool: the worker's connection with the buffers
    // its transport kept, what it still had queued, the ports and the link's rings.
    void close() {
        if (w) {
            paths->offline(0);
            w.reset();
        }
        if (b && b->is_open()) {
            drain();
        }
        for (std::optional<drivers::port>* end : {&a, &b}) {
            if (*end) {
                EXPECT_TRUE((*end)->close().ok());
            }
        }
        link.reset();
        paths.reset();
    }
    ~jumbo_rig() { close(); }
};

std::uint64_t classifier_drops(const worker_counters& c) {
    std::uint64_t n = 0;
    for (const std::uint64_t d : c.classified.drops) {
        n += d;
    }
    return n;
}

// Jumbo Kwik datagrams (frames of about 8100 bytes for a 9000-byte MTU, IPv4 with two 4000-byte
// stream frames a packet, IPv6 with one of 8000), each cut inside its UDP payload into 2 to 4
// segments of a 4 KB pool, go through the ring link: the worker joins every one into one
// application buffer and the file store writes every stream byte for byte (size and CRC32C of
// the manifest). No frame is dropped, the chains are freed as soon as they are joined, and once
// the worker is gone every pool is back where it started.
TEST_F(worker_pcap, jumbo_datagrams_in_mbuf_chains_are_stored_byte_for_byte) {
    rte_mempool* segments = rte_pktmbuf_pool_create("kwik_wt_segs", 2047, 0, 0, segment_room + RTE_PKTMBUF_HEADROOM,
                                                    SOCKET_ID_ANY);
    ASSERT_NE(segments, nullptr);
    struct traffic {
        const char* name;
        const char* args;
    };
    const std::array<traffic, 2> kinds = {{
        {"v4", "--paths 3 --streams 4 --stream-size 100000-300000 --frames-per-packet 2 --max-frame-data 4000"
               " --reorder 0.05 --duplicate 0.03 --loss 0.02 --seed 21"},
        {"v6", "--ipv6 --paths 2 --streams 3 --stream-size 100000-300000 --frames-per-packet 1 --max-frame-data 8000"
               " --reorder 0.05 --duplicate 0.03 --loss 0.02 --seed 22"},
    }};
    std::array<std::uint64_t, 5> by_segments{}; // chains by their number of segments
    for (const traffic& t : kinds) {
        SCOPED_TRACE(t.name);
        const fs::path dir = g_dir / (std::string("jumbo_") + t.name);
        ASSERT_EQ(generate(dir, t.args), "");
        const std::vector<frame_bytes> frames = read_frames(dir / "in.pcap");
        const nlohmann::json manifest = read_manifest(dir);
        ASSERT_GE(frames.size(), 50u);
        std::size_t largest = 0;
        for (const frame_bytes& f : frames) {
            largest = std::max(largest, f.size());
        }
        EXPECT_GT(largest, 8000u) << "jumbo frames";
        EXPECT_LE(largest, 9018u) << "within a 9000-byte MTU";
        const unsigned pool_start = rte_mempool_in_use_count(pool);
        const unsigned app_start = rte_mempool_in_use_count(app_pool);

        jumbo_rig rig;
        ASSERT_NO_FATAL_FAILURE(rig.open(std::string("kwik_wt_j") + t.name, pool, app_pool, manifest, dir / "store"));
        std::vector<rte_mbuf*> chains = make_chains(segments, frames, payload_cuts, rig.a->id());
        ASSERT_EQ(chains.size(), frames.size());
        for (std::size_t i = 0; i < frames.size(); ++i) {
            ASSERT_GE(chains[i]->nb_segs, 2u);
            ASSERT_LE(chains[i]->nb_segs, 4u);
            ASSERT_EQ(chains[i]->pkt_len, frames[i].size());
            ++by_segments[chains[i]->nb_segs];
        }
        rig.send(chains, 2000);

        const worker_counters& c = rig.w->counters();
        EXPECT_EQ(check_store(dir / "manifest.json", dir / "store", 0), manifest["streams"].size());
        EXPECT_EQ(rig.w->endpoint_of(0)->counters().files_written, manifest["streams"].size());
        EXPECT_EQ(c.rx_packets, frames.size());
        EXPECT_EQ(c.classified.count(verdict::kwik), frames.size());
        EXPECT_EQ(classifier_drops(c), 0u) << "UDP checksums verify across the segments";
        EXPECT_EQ(c.kwik_packets, frames.size());
        EXPECT_EQ(c.rx_linearized, frames.size()) << "every chained datagram joined once";
        EXPECT_EQ(c.drops[static_cast<std::size_t>(kdp::drop_reason::payload_chained)], 0u);
        EXPECT_EQ(c.drops[static_cast<std::size_t>(kdp::drop_reason::unknown_path)], 0u);
        EXPECT_EQ(c.ports[0].rx_dropped, 0u);
        EXPECT_GT(rig.sent_back, 0u) << "ACKs";
        EXPECT_EQ(rte_mempool_in_use_count(segments), 0u) << "a chain is freed once joined";
        std::printf("%s: %zu chained datagrams (largest frame %zu bytes) joined and stored; %llu packets sent back\n",
                    t.name, frames.size(), largest, static_cast<unsigned long long>(rig.sent_back));
        rig.close();
        EXPECT_EQ(rte_mempool_in_use_count(pool), pool_start);
        EXPECT_EQ(rte_mempool_in_use_count(app_pool), app_start) << "the joined copies were released";
    }
    EXPECT_GT(by_segments[2], 0u);
    EXPECT_GT(by_segments[3], 0u);
    EXPECT_GT(by_segments[4], 0u);
    rte_mempool_free(segments);
}

// A frame whose headers are cut across segments (in the destination MAC, the EtherType, the IP
// header, the UDP header) is not parsed across the cut: the classifier drops it as
// headers_split, the worker frees it and counts it on its port, and the transport sees none.
TEST_F(worker_pcap, frames_with_headers_across_segments_are_dropped_as_headers_split) {
    rte_mempool* segments = rte_pktmbuf_pool_create("kwik_wt_hsegs", 1023, 0, 0, segment_room + RTE_PKTMBUF_HEADROOM,
                                                    SOCKET_ID_ANY);
    ASSERT_NE(segments, nullptr);
    for (const std::string family : {"v4", "v6"}) {
        SCOPED_TRACE(family);
        const fs::path dir = g_dir / ("split_headers_" + family);
        ASSERT_EQ(generate(dir, std::string(family == "v6" ? "--ipv6 " : "") +
                                    "--paths 2 --streams 2 --stream-size 30000 --frames-per-packet 2"
                                    " --max-frame-data 4000 --seed 23"),
                  "");
        const std::vector<frame_bytes> frames = read_frames(dir / "in.pcap");
        ASSERT_GE(frames.size(), 8u);
        const unsigned pool_start = rte_mempool_in_use_count(pool);
        const unsigned app_start = rte_mempool_in_use_count(app_pool);

        jumbo_rig rig;
        ASSERT_NO_FATAL_FAILURE(rig.open("kwik_wt_h" + family, pool, app_pool, read_manifest(dir), dir / "store"));
        std::vector<rte_mbuf*> chains = make_chains(segments, frames, header_cuts, rig.a->id());
        ASSERT_EQ(chains.size(), frames.size());
        rig.send(chains, 200);

        const worker_counters& c = rig.w->counters();
        EXPECT_EQ(c.rx_packets, frames.size());
        EXPECT_EQ(c.classified.count(kdp::drop_reason::headers_split), frames.size());
        EXPECT_EQ(c.classified.count(verdict::drop), frames.size());
        EXPECT_EQ(classifier_drops(c), frames.size()) << "under no other reason";
        EXPECT_EQ(c.ports[0].rx_dropped, frames.size());
        EXPECT_EQ(c.kwik_packets, 0u);
        EXPECT_EQ(c.rx_linearized, 0u);
        EXPECT_EQ(rig.w->connection_of(0)->counters().stream_bytes_delivered, 0u);
        EXPECT_EQ(rig.w->endpoint_of(0)->counters().streams, 0u);
        EXPECT_EQ(rte_mempool_in_use_count(segments), 0u) << "dropped chains are freed whole";
        rig.close();
        EXPECT_EQ(rte_mempool_in_use_count(pool), pool_start);
        EXPECT_EQ(rte_mempool_in_use_count(app_pool), app_start);
    }
    rte_mempool_free(segments);
}

// With every application buffer taken, a chained Kwik datagram cannot be joined: each one is
// dropped as payload_chained, exactly once, on its port, and freed at once; the transport sees
// none. Nothing leaks: with the worker gone and the buffers given back, every pool is where it
// started.
TEST_F(worker_pcap, chained_datagrams_without_a_free_application_buffer_are_dropped_as_payload_chained) {
    rte_mempool* segments = rte_pktmbuf_pool_create("kwik_wt_csegs", 1023, 0, 0, segment_room + RTE_PKTMBUF_HEADROOM,
                                                    SOCKET_ID_ANY);
    rte_mempool* tiny_app = rte_pktmbuf_pool_create("kwik_wt_tiny_app", 8, 0, 0, 16384 + RTE_PKTMBUF_HEADROOM,
                                                    SOCKET_ID_ANY);
    ASSERT_NE(segments, nullptr);
    ASSERT_NE(tiny_app, nullptr);
    std::vector<rte_mbuf*> taken;
    for (rte_mbuf* m = nullptr; (m = rte_pktmbuf_alloc(tiny_app)) != nullptr;) {
        taken.push_back(m);
    }
    ASSERT_EQ(taken.size(), 8u);
    const fs::path dir = g_dir / "no_app_buffer";
    ASSERT_EQ(generate(dir, "--paths 2 --streams 2 --stream-size 40000-60000 --frames-per-packet 2"
                            " --max-frame-data 4000 --duplicate 0.05 --seed 24"),
              "");
    const std::vector<frame_bytes> frames = read_frames(dir / "in.pcap");
    ASSERT_GE(frames.size(), 10u);
    const unsigned pool_start = rte_mempool_in_use_count(pool);

    jumbo_rig rig;
    ASSERT_NO_FATAL_FAILURE(rig.open("kwik_wt_c", pool, tiny_app, read_manifest(dir), dir / "store"));
    std::vector<rte_mbuf*> chains = make_chains(segments, frames, payload_cuts, rig.a->id());
    ASSERT_EQ(chains.size(), frames.size());
    rig.send(chains, 200);

    const worker_counters& c = rig.w->counters();
    EXPECT_EQ(c.kwik_packets, frames.size());
    EXPECT_EQ(c.drops[static_cast<std::size_t>(kdp::drop_reason::payload_chained)], frames.size());
    EXPECT_EQ(c.ports[0].rx_dropped, frames.size());
    EXPECT_EQ(c.rx_linearized, 0u);
    EXPECT_EQ(classifier_drops(c), 0u);
    EXPECT_EQ(c.drops[static_cast<std::size_t>(kdp::drop_reason::unknown_path)], 0u);
    EXPECT_EQ(rig.w->connection_of(0)->counters().stream_bytes_delivered, 0u);
    EXPECT_EQ(rig.w->endpoint_of(0)->counters().streams, 0u);
    EXPECT_EQ(rte_mempool_in_use_count(segments), 0u) << "dropped chains are freed whole";
    EXPECT_EQ(rte_mempool_in_use_count(tiny_app), taken.size()) << "the worker took no application buffer";
    rig.close();
    rte_pktmbuf_free_bulk(taken.data(), static_cast<unsigned>(taken.size()));
    EXPECT_EQ(rte_mempool_in_use_count(tiny_app), 0u);
    EXPECT_EQ(rte_mempool_in_use_count(pool), pool_start);
    rte_mempool_free(tiny_app);
    rte_mempool_free(segments);
}

// ---------------------------------------------------------------------------------------------
// Transmit-side neighbour resolution: a client-role connection whose path never received a
// packet. The worker's port is one end of a ring link; the test plays the peer (and its
// router) on the other end, reading what the worker sends and answering its ARP requests and
// neighbour solicitations by hand.

constexpr mac_address peer_mac{{0x02, 0xAA, 0xBB, 0xCC, 0xDD, 0x02}};
constexpr mac_address router_mac{{0x02, 0x52, 0x4F, 0x55, 0x54, 0x45}};
const ip_address our4 = ip_address::v4(0x0A000001);    // 10.0.0.1/24
const ip_address peer4 = ip_address::v4(0x0A000002);   // 10.0.0.2
const ip_address router4 = ip_address::v4(0x0A0000FE); // 10.0.0.254
const ip_address remote4 = ip_address::v4(0x0A090002); // 10.9.0.2, off-link

ip_address v6_host(std::uint8_t last) { // fd00::<last>
    std::uint8_t b[16] = {0xFD, 0x00};
    b[15] = last;
    return ip_address::v6(b);
}

transport::time_ns tsc_ns() {
    return static_cast<transport::time_ns>(double(rte_get_tsc_cycles()) * 1e9 / double(rte_get_tsc_hz()));
}

// What the worker sent, as the peer sees it.
struct sent_frame {
    std::vector<std::uint8_t> bytes;
    std::uint16_t ethertype() const { return load_be16(&bytes[12]); }
    mac_address dst() const { return mac_address::from(&bytes[0]); }
    mac_address src() const { return mac_address::from(&bytes[6]); }
    bool is_arp() const { return ethertype() == ethertype_arp; }
    bool is_ns() const { // ICMPv6 neighbour solicitation, no extension headers
        return ethertype() == ethertype_ipv6 && bytes.size() >= 62 && bytes[20] == ip_proto_icmpv6 &&
               bytes[54] == icmpv6_neighbor_solicitation;
    }
    bool is_udp() const {
        return (ethertype() == ethertype_ipv4 && bytes[23] == ip_proto_udp) ||
               (ethertype() == ethertype_ipv6 && bytes[20] == ip_proto_udp);
    }
    std::size_t udp_offset() const { return ethertype() == ethertype_ipv4 ? 34 : 54; }
    ip_address ip_src() const { return ethertype() == ethertype_ipv4 ? ip_address::v4(&bytes[26]) : ip_address::v6(&bytes[22]); }
    ip_address ip_dst() const { return ethertype() == ethertype_ipv4 ? ip_address::v4(&bytes[30]) : ip_address::v6(&bytes[38]); }
    // The control frame types of the KDP packet in the UDP payload (empty when it does not parse).
    std::vector<kdp::control_type> controls() const {
        const std::size_t at = udp_offset() + udp_header_len;
        kdp::packet_view v;
        std::vector<kdp::control_type> out;
        if (kdp::parse_packet(kdp::contiguous_bytes(bytes.data() + at, bytes.size() - at), v) == kdp::drop_reason::none) {
            for (const kdp::frame_view& f : v.frame_span()) {
                if (f.is_control()) {
                    out.push_back(static_cast<kdp::control_type>(f.control));
                }
            }
        }
        return out;
    }
};

class worker_neighbors : public worker_pcap {
protected:
    // One worker on one port (end a of a ring link), with a client-role connection whose path 1
    // goes to `remote`; neighbour resolution per `nc` (its MAC is filled in here).
    void start(const ip_address& remote, neighbor_config nc) {
        static int instance = 0;
        const std::string tag = std::to_string(++instance);
        auto l = drivers::ring_link::create("kwik_wn_a" + tag, "kwik_wn_b" + tag, 1);
        ASSERT_TRUE(l.ok()) << l.message();
        link.emplace(std::move(l).value());
        drivers::port_config pc;
        pc.device = link->name_a();
        pc.pool = pool;
        auto pa = drivers::open_port(pc);
        ASSERT_TRUE(pa.ok()) << pa.message();
        a.emplace(std::move(pa).value());
        pc.device = link->name_b();
        auto pb = drivers::open_port(pc);
        ASSERT_TRUE(pb.ok()) << pb.message();
        b.emplace(std::move(pb).value());

        classifier_config cc;
        cc.mac = our_mac;
        ASSERT_TRUE(cc.add_kwik_port(7707));
        ASSERT_TRUE(cc.add_address(our4));
        ASSERT_TRUE(cc.add_address(v6_host(1)));
        cls.emplace(cc);
        nc.mac = our_mac;
        neighbors = nc;
        ASSERT_EQ(neighbors.validate(), "");
        std::string error;
        paths.reset(path_table::create("kwik_wn_paths" + tag, 64, SOCKET_ID_ANY, 1, &error));
        ASSERT_TRUE(paths) << error;

        worker_config wc;
        worker_port wp;
        wp.queue = a->queue(0);
        wp.mac = our_mac;
        wp.classify = &*cls;
        wp.neighbors = &neighbors;
        wc.ports.push_back(wp);
        wc.paths = paths.get();
        wc.tx_pool = pool;
        wc.app_pool = app_pool;
        w = std::make_unique<worker>(wc);
        connection_spec cs;
        cs.index = 0;
        cs.endpoint.kind = endpoint_kind::discard;
        cs.transport.side = transport::role::client; // it speaks first: nothing came from the path yet
        ASSERT_TRUE(w->add_connection(cs, &error)) << error;
        path_spec ps;
        ps.connection = 0;
        ps.id = 1;
        ps.tuple.protocol = 17;
        ps.tuple.src = remote;
        ps.tuple.dst = remote.is_v4() ? our4 : v6_host(1);
        ps.tuple.src_port = 40000;
        ps.tuple.dst_port = 7707;
        ASSERT_TRUE(w->add_path(ps, &error)) << error;
        now = tsc_ns(); // the transport's clock started at add_path
    }

    void TearDown() override {
        w.reset(); // frees what its neighbour table still holds
        for (auto* p : {&a, &b}) {
            if (p->has_value()) {
                EXPECT_TRUE((*p)->close().ok());
            }
        }
        link.reset();
    }

    // Polls every step until the peer side received something or `limit` passed.
    std::vector<sent_frame> poll_until_sent(transport::time_ns limit, transport::time_ns step = 10 * transport::ms) {
        const transport::time_ns end = now + limit;
        std::vector<sent_frame> got;
        while (got.empty() && now < end) {
            now += step;
            w->poll(now);
            got = received();
        }
        return got;
    }

    std::vector<sent_frame> received() {
        std::array<rte_mbuf*, 32> burst;
        std::vector<sent_frame> out;
        const std::uint16_t n = b->queue(0).rx_burst(burst);
        for (std::uint16_t i = 0; i < n; ++i) {
            sent_frame f;
            f.bytes.resize(rte_pktmbuf_pkt_len(burst[i]));
            // Copies across segments, or points into the one segment holding it all.
            const void* p = rte_pktmbuf_read(burst[i], 0, f.bytes.size(), f.bytes.data());
            if (p != f.bytes.data()) {
                std::memcpy(f.bytes.data(), p, f.bytes.size());
            }
            rte_pktmbuf_free(burst[i]);
            out.push_back(std::move(f));
        }
        return out;
    }

    // The peer (or its router) sends a frame to the worker's port.
    void inject(std::vector<std::uint8_t> frame) {
        frame.resize(std::max<std::size_t>(frame.size(), min_ethernet_frame), 0);
        rte_mbuf* m = rte_pktmbuf_alloc(pool);
        ASSERT_NE(m, nullptr);
        auto* p = reinterpret_cast<std::uint8_t*>(rte_pktmbuf_append(m, static_cast<std::uint16_t>(frame.size())));
        ASSERT_NE(p, nullptr);
        std::memcpy(p, frame.data(), frame.size());
        ASSERT_EQ(b->queue(0).tx_burst({&m, 1}), 1);
    }

    std::vector<std::uint8_t> arp(std::uint16_t op, const mac_address& eth_dst, const mac_address& sha,
                                  const ip_address& spa, const mac_address& tha, const ip_address& tpa) const {
        std::vector<std::uint8_t> f(ethernet_header_len + arp_ipv4_len);
        eth_dst.store(&f[0]);
        sha.store(&f[6]);
        store_be16(&f[12], ethertype_arp);
        std::uint8_t* a = &f[14];
        store_be16(a, arp_hardware_ethernet);
        store_be16(a + 2, ethertype_ipv4);
        a[4] = 6;
        a[5] = 4;
        store_be16(a + 6, op);
        sha.store(a + 8);
        std::memcpy(a + 14, spa.v4_bytes(), 4);
        tha.store(a + 18);
        std::memcpy(a + 24, tpa.v4_bytes(), 4);
        return f;
    }

    // A solicited neighbour advertisement from `target` (at `mac`) to our fd00::1.
    std::vector<std::uint8_t> advertisement(const ip_address& target, const mac_address& mac) const {
        constexpr std::size_t icmp_len = neighbor_message_len + link_layer_option_len;
        std::vector<std::uint8_t> f(ethernet_header_len + ipv6_header_len + icmp_len);
        our_mac.store(&f[0]);
        mac.store(&f[6]);
        store_be16(&f[12], ethertype_ipv6);
        std::uint8_t* ip = &f[14];
        store_be32(ip, 0x60000000u);
        store_be16(ip + 4, icmp_len);
        ip[6] = ip_proto_icmpv6;
        ip[7] = nd_hop_limit;
        std::memcpy(ip + 8, target.bytes.data(), 16);
        std::memcpy(ip + 24, v6_host(1).bytes.data(), 16);
        std::uint8_t* icmp = ip + ipv6_header_len;
        icmp[0] = icmpv6_neighbor_advertisement;
        icmp[4] = na_flag_solicited | na_flag_override;
        std::memcpy(icmp + 8, target.bytes.data(), 16);
        icmp[24] = nd_option_target_link_layer;
        icmp[25] = 1;
        mac.store(icmp + 26);
        const std::uint64_t sum = pseudo_header_v6(ip + 8, ip + 24, ip_proto_icmpv6, icmp_len);
        store_ne16(icmp + 2, checksum_finish(checksum_add(icmp, icmp_len, sum)));
        return f;
    }

    // The broadcast ARP request for `target`, from our MAC and address, byte for byte.
    void expect_arp_request(const sent_frame& f, const ip_address& target) const {
        ASSERT_TRUE(f.is_arp());
        EXPECT_EQ(f.bytes.size(), min_ethernet_frame);
        EXPECT_EQ(f.dst(), broadcast_mac);
        EXPECT_EQ(f.src(), our_mac);
        std::vector<std::uint8_t> want = arp(arp_op_request, broadcast_mac, our_mac, our4, mac_address{}, target);
        want.resize(min_ethernet_frame, 0);
        EXPECT_EQ(f.bytes, want);
    }

    // A Kwik datagram from 10.0.0.1:7707 (or fd00::1) to the path's remote end at `mac`.
    void expect_kwik_to(const sent_frame& f, const mac_address& mac, const ip_address& remote) const {
        ASSERT_TRUE(f.is_udp());
        EXPECT_EQ(f.dst(), mac);
        EXPECT_EQ(f.src(), our_mac);
        EXPECT_EQ(f.ip_src(), remote.is_v4() ? our4 : v6_host(1));
        EXPECT_EQ(f.ip_dst(), remote);
        EXPECT_EQ(load_be16(&f.bytes[f.udp_offset()]), 7707);
        EXPECT_EQ(load_be16(&f.bytes[f.udp_offset() + 2]), 40000);
    }

    std::uint64_t dropped(kdp::drop_reason r) const { return w->counters().drops[static_cast<std::size_t>(r)]; }

    std::optional<drivers::ring_link> link;
    std::optional<drivers::port> a, b;
    std::optional<classifier> cls;
    neighbor_config neighbors;
    std::unique_ptr<path_table> paths;
    std::unique_ptr<worker> w;
    // net_ring ports have no MAC (all zeros) and filter nothing: the worker is given one.
    const mac_address our_mac{{0x02, 0x4B, 0x57, 0x00, 0x00, 0x01}};
    transport::time_ns now = 0;
};

neighbor_config on_link() {
    neighbor_config nc;
    EXPECT_TRUE(nc.add_interface(our4, 24));
    EXPECT_TRUE(nc.add_interface(v6_host(1), 64));
    nc.capacity = 16; // one sweep slice covers it: expiry is seen within a millisecond
    return nc;
}

TEST_F(worker_neighbors, client_path_arps_for_its_peer_and_sends_the_held_challenge_to_the_answer) {
    ASSERT_NO_FATAL_FAILURE(start(peer4, on_link()));
    const transport::time_ns started = now;
    // The transport probes the new path (PATH_CHALLENGE after keepalive_interval); with no MAC
    // for 10.0.0.2 the worker holds it and asks.
    std::vector<sent_frame> got = poll_until_sent(3 * transport::sec);
    const transport::time_ns asked = now;
    ASSERT_EQ(got.size(), 1u) << "one ARP request, nothing else";
    expect_arp_request(got[0], peer4);
    const worker_counters& c = w->counters();
    EXPECT_EQ(c.neighbor.requests, 1u);
    EXPECT_GE(c.neighbor.held, 1u);
    EXPECT_EQ(c.neighbor.released, 0u);
    const std::uint64_t held = c.neighbor.held;

    // The peer answers: the held packets leave at once, to the MAC the answer gave.
    inject(arp(arp_op_reply, our_mac, peer_mac, peer4, our_mac, our4));
    now += transport::ms;
    w->poll(now);
    got = received();
    ASSERT_EQ(got.size(), held);
    for (const sent_frame& f : got) {
        expect_kwik_to(f, peer_mac, peer4);
    }
    const std::vector<kdp::control_type> first = got[0].controls();
    EXPECT_NE(std::find(first.begin(), first.end(), kdp::control_type::path_challenge), first.end())
        << "the held packet is the transport's PATH_CHALLENGE";
    EXPECT_EQ(c.neighbor.resolved, 1u);
    EXPECT_EQ(c.neighbor.released, held);
    EXPECT_EQ(dropped(kdp::drop_reason::neighbor_unresolved), 0u);
    EXPECT_EQ(dropped(kdp::drop_reason::no_exception_path), 1u) << "the reply itself goes on to the kernel's path";

    // From now on the route knows the MAC: later probes go straight out, nothing more is asked.
    std::size_t later = 0;
    for (int i = 0; i < 300; ++i) {
        now += 10 * transport::ms;
        w->poll(now);
        for (const sent_frame& f : received()) {
            expect_kwik_to(f, peer_mac, peer4);
            ++later;
        }
    }
    EXPECT_GT(later, 0u) << "the unanswered challenge is repeated";
    EXPECT_EQ(c.neighbor.requests, 1u);
    EXPECT_EQ(c.neighbor.held, held);
    std::printf("neighbours: first packet after %.0f ms, %llu held until the ARP reply, %zu sent after it\n",
                double(asked - started) / 1e6, (unsigned long long)held, later);
}

TEST_F(worker_neighbors, unanswered_requests_are_repeated_and_held_packets_expire_as_unresolved) {
    ASSERT_NO_FATAL_FAILURE(start(peer4, on_link()));
    std::vector<sent_frame> got = poll_until_sent(3 * transport::sec);
    ASSERT_EQ(got.size(), 1u);
    expect_arp_request(got[0], peer4);
    const transport::time_ns asked = now;
    const worker_counters& c = w->counters();
    std::size_t requests = 1;
    transport::time_ns expired_at = 0;
    while (now < asked + 5 * transport::sec) {
        now += transport::ms;
        w->poll(now);
        for (const sent_frame& f : received()) {
            expect_arp_request(f, peer4); // nothing but requests: nobody to send to
            ++requests;
        }
        if (expired_at == 0 && dropped(kdp::drop_reason::neighbor_unresolved) != 0) {
            expired_at = now;
        }
    }
    // hold_time (3 s) after the entry was made, its held packets were freed and counted.
    ASSERT_NE(expired_at, 0u);
    EXPECT_GE(expired_at, asked + neighbors.hold_time);
    EXPECT_LE(expired_at, asked + neighbors.hold_time + 2 * transport::ms);
    EXPECT_GE(c.neighbor.expired, 1u);
    EXPECT_EQ(c.neighbor.released, 0u);
    // Asked again once per request_interval while packets waited; every request was sent.
    EXPECT_GE(requests, 3u);
    EXPECT_EQ(requests, c.neighbor.requests);
    // Every held packet is accounted for: expired as unresolved, or still waiting (at most
    // max_held, in the entry made after the first expired).
    const std::uint64_t unresolved = dropped(kdp::drop_reason::neighbor_unresolved);
    EXPECT_GE(unresolved, 1u);
    EXPECT_LE(unresolved, c.neighbor.held);
    EXPECT_LE(c.neighbor.held - unresolved, neighbor_table::max_held);
    std::printf("neighbours, unanswered: %zu ARP requests in 5 s, %llu packets held, %llu expired as unresolved "
                "(first %.0f ms after the first request), %llu dropped with the hold queue full\n",
                requests, (unsigned long long)c.neighbor.held, (unsigned long long)unresolved,
                double(expired_at - asked) / 1e6,
                (unsigned long long)dropped(kdp::drop_reason::neighbor_hold_full));
}

TEST_F(worker_neighbors, off_link_peer_is_reached_through_the_gateway) {
    neighbor_config nc = on_link();
    nc.gateway_v4 = router4;
    ASSERT_NO_FATAL_FAILURE(start(remote4, nc));
    std::vector<sent_frame> got = poll_until_sent(3 * transport::sec);
    ASSERT_EQ(got.size(), 1u);
    expect_arp_request(got[0], router4); // the router's MAC is asked for, not 10.9.0.2's
    inject(arp(arp_op_reply, our_mac, router_mac, router4, our_mac, our4));
    now += transport::ms;
    w->poll(now);
    got = received();
    ASSERT_GE(got.size(), 1u);
    for (const sent_frame& f : got) {
        expect_kwik_to(f, router_mac, remote4); // to the router, for 10.9.0.2
    }
    EXPECT_EQ(w->counters().neighbor.released, got.size());
}

TEST_F(worker_neighbors, off_link_peer_without_a_gateway_is_no_route) {
    ASSERT_NO_FATAL_FAILURE(start(remote4, on_link()));
    std::vector<sent_frame> got = poll_until_sent(3 * transport::sec);
    EXPECT_TRUE(got.empty()) << "nothing to ask: no prefix holds 10.9.0.2 and there is no gateway";
    EXPECT_GE(dropped(kdp::drop_reason::no_route), 1u);
    EXPECT_EQ(w->counters().neighbor.requests, 0u);
    EXPECT_EQ(w->counters().neighbor.held, 0u);
}

TEST_F(worker_neighbors, ipv6_peer_is_solicited_and_learned_from_its_advertisement) {
    const ip_address peer6 = v6_host(2);
    ASSERT_NO_FATAL_FAILURE(start(peer6, on_link()));
    std::vector<sent_frame> got = poll_until_sent(3 * transport::sec);
    ASSERT_EQ(got.size(), 1u);
    const sent_frame& ns = got[0];
    ASSERT_TRUE(ns.is_ns());
    // To the solicited-node group ff02::1:ff00:2 and its MAC 33:33:ff:00:00:02, for fd00::2,
    // from fd00::1 with our MAC in the source link-layer option.
    EXPECT_EQ(ns.dst(), (mac_address{{0x33, 0x33, 0xFF, 0x00, 0x00, 0x02}}));
    EXPECT_EQ(ns.src(), our_mac);
    EXPECT_EQ(ns.ip_src(), v6_host(1));
    EXPECT_EQ(ns.ip_dst(), solicited_node_group(peer6));
    EXPECT_EQ(ip_address::v6(&ns.bytes[62]), peer6);
    EXPECT_EQ(ns.bytes[78], nd_option_source_link_layer);
    EXPECT_EQ(mac_address::from(&ns.bytes[80]), our_mac);

    inject(advertisement(peer6, peer_mac));
    now += transport::ms;
    w->poll(now);
    got = received();
    ASSERT_GE(got.size(), 1u);
    for (const sent_frame& f : got) {
        expect_kwik_to(f, peer_mac, peer6);
    }
    const std::vector<kdp::control_type> first = got[0].controls();
    EXPECT_NE(std::find(first.begin(), first.end(), kdp::control_type::path_challenge), first.end());
    EXPECT_EQ(w->counters().neighbor.resolved, 1u);
    EXPECT_EQ(w->counters().neighbor.released, got.size());
}

TEST_F(worker_neighbors, a_peer_that_asked_for_us_is_known_without_asking) {
    ASSERT_NO_FATAL_FAILURE(start(peer4, on_link()));
    // The peer ARPs for 10.0.0.1 first: the worker answers and remembers who asked.
    inject(arp(arp_op_request, broadcast_mac, peer_mac, peer4, mac_address{}, our4));
    now += transport::ms;
    w->poll(now);
    std::vector<sent_frame> got = received();
    ASSERT_EQ(got.size(), 1u);
    ASSERT_TRUE(got[0].is_arp());
    EXPECT_EQ(load_be16(&got[0].bytes[20]), arp_op_reply);
    EXPECT_EQ(w->counters().neighbor.learned, 1u);
    got = poll_until_sent(3 * transport::sec);
    ASSERT_GE(got.size(), 1u);
    expect_kwik_to(got[0], peer_mac, peer4);
    EXPECT_EQ(w->counters().neighbor.requests, 0u);
    EXPECT_EQ(w->counters().neighbor.held, 0u);
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
    // ENCRYPTED traffic (key 5c x 32, phase 9) for the file store: store names use connection 0.
    const std::string gen3 = run(g_pcapgen + " -o " + (g_dir / "in3.pcap").string() + " --manifest " +
                                 (g_dir / "manifest3.json").string() +
                                 " --connections 1 --paths 2 --streams 3 --stream-size 20000-60000 --pattern random"
                                 " --frames-per-packet 2 --max-frame-data 600 --reorder 0.05 --duplicate 0.03"
                                 " --loss 0.02 --corrupt 0.02 --ack-every 0 --keepalive-every 0"
                                 " --window-update-every 0 --seed 13 --server-mac 02:70:63:61:70:02"
                                 " --encrypt-key 5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c"
                                 " --key-phase 9");
    if (!gen3.empty()) {
        std::fprintf(stderr, "kwik-pcapgen failed: %s\n", gen3.c_str());
        return 1;
    }
    const std::string vdev = "--vdev=net_pcap0,rx_pcap=" + (g_dir / "in.pcap").string() + ",tx_pcap=" +
                             (g_dir / "out.pcap").string();
    const std::string vdev2 = "--vdev=net_pcap1,rx_pcap=" + (g_dir / "in2.pcap").string() + ",tx_pcap=" +
                              (g_dir / "out2.pcap").string();
    const std::string vdev3 = "--vdev=net_pcap2,rx_pcap=" + (g_dir / "in3.pcap").string() + ",tx_pcap=" +
                              (g_dir / "out3.pcap").string();
    const char* eal[] = {"worker_test", "--no-huge", "--no-pci", "-m", "512", "--no-shconf",
                         "--file-prefix=kwik_worker_test", "--no-telemetry", "-l", "0", "--log-level=*:warning",
                         vdev.c_str(), vdev2.c_str(), vdev3.c_str()};
    if (rte_eal_init(static_cast<int>(std::size(eal)), const_cast<char**>(eal)) < 0) {
        std::fprintf(stderr, "EAL init failed\n");
        return 1;
    }
    const int rc = RUN_ALL_TESTS();
    rte_eal_cleanup();
    fs::remove_all(g_dir);
    return rc;
}
