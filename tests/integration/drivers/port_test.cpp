// Port bring-up on virtual devices (drivers/port.hpp, drivers/flow_steering.hpp,
// drivers/ring_link.hpp): net_ring loopback and back-to-back pairs carry bursts byte for byte on
// the queue they were sent on; net_pcap reads its rx file whole (never flushed unless asked) and
// writes exactly what was sent; net_null's RSS and offload offer shows in the capabilities and the
// report; flow rules on vdevs say "not supported" naming the port; bad specs and configs fail
// naming the device and field; a 9000-byte MTU turns rx scatter on where the device offers it and
// is refused, naming the port and MTU, where not. Starts EAL once, no hugepages, no PCI.
#include <gtest/gtest.h>

#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_ethdev.h>
#include <rte_mbuf.h>
#include <rte_mempool.h>

#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <string>
#include <utility>
#include <vector>

#include "drivers/flow_steering.hpp"
#include "drivers/port.hpp"
#include "drivers/ring_link.hpp"

namespace {

namespace drivers = kwik::drivers;
using bytes = std::vector<std::uint8_t>;

rte_mempool* g_pool = nullptr;

class eal_environment : public ::testing::Environment {
public:
    void SetUp() override {
        // --in-memory refuses --no-huge; a file prefix of its own and no shared config keep this
        // process apart from other EAL tests instead.
        std::vector<std::string> args = {"drivers_port_test", "--no-huge", "--no-pci", "-m", "512", "--no-shconf",
                                         "--file-prefix=kwik_drivers_test", "--no-telemetry",
                                         "--log-level=*:warning", "-l", "0"};
        std::vector<char*> argv;
        for (std::string& a : args) {
            argv.push_back(a.data());
        }
        const int rc = rte_eal_init(static_cast<int>(argv.size()), argv.data());
        ASSERT_GE(rc, 0) << "rte_eal_init: " << rte_strerror(rte_errno);
        g_pool = rte_pktmbuf_pool_create("kwik_drivers_test", 8191, 256, 0, RTE_MBUF_DEFAULT_BUF_SIZE,
                                         static_cast<int>(rte_socket_id()));
        ASSERT_NE(g_pool, nullptr) << "rte_pktmbuf_pool_create: " << rte_strerror(rte_errno);
    }

    void TearDown() override {
        if (g_pool != nullptr) {
            EXPECT_EQ(rte_mempool_in_use_count(g_pool), 0u) << "a test leaked mbufs";
            rte_mempool_free(g_pool);
            g_pool = nullptr;
        }
        rte_eal_cleanup();
    }
};

// A deterministic Ethernet frame of len bytes: MACs, IPv4 ethertype, then a pattern from seed.
bytes make_frame(std::size_t len, std::uint32_t seed) {
    bytes f(len);
    const std::array<std::uint8_t, 14> eth = {0x02, 0, 0, 0, 0, 0x02, 0x02, 0, 0, 0, 0, 0x01, 0x08, 0x00};
    for (std::size_t i = 0; i < len; ++i) {
        f[i] = i < eth.size() ? eth[i] : static_cast<std::uint8_t>((i * 131u + seed * 7919u + (i >> 8)) & 0xff);
    }
    return f;
}

// An mbuf (chained when longer than one data room) holding b.
rte_mbuf* make_mbuf(const bytes& b) {
    rte_mbuf* head = nullptr;
    std::size_t off = 0;
    do {
        rte_mbuf* seg = rte_pktmbuf_alloc(g_pool);
        if (seg == nullptr) {
            rte_pktmbuf_free(head);
            return nullptr;
        }
        const std::size_t n = std::min<std::size_t>(b.size() - off, rte_pktmbuf_tailroom(seg));
        char* dst = rte_pktmbuf_append(seg, static_cast<std::uint16_t>(n));
        std::memcpy(dst, b.data() + off, n);
        off += n;
        if (head == nullptr) {
            head = seg;
        } else if (rte_pktmbuf_chain(head, seg) != 0) {
            rte_pktmbuf_free(seg);
            rte_pktmbuf_free(head);
            return nullptr;
        }
    } while (off < b.size());
    return head;
}

bytes mbuf_bytes(const rte_mbuf* m) {
    bytes out(m->pkt_len);
    const void* p = rte_pktmbuf_read(m, 0, m->pkt_len, out.data());
    if (p != out.data()) {
        std::memcpy(out.data(), p, m->pkt_len);
    }
    return out;
}

drivers::port_config config_for(std::string device, std::uint16_t queues) {
    drivers::port_config c;
    c.device = std::move(device);
    c.rx_queues = queues;
    c.tx_queues = queues;
    c.socket_id = drivers::socket_of_port;
    c.pool = g_pool;
    return c;
}

// Sends frames on tx (queue q) and expects exactly them, in order, on rx (queue q).
void expect_carried(drivers::port& tx, drivers::port& rx, std::uint16_t q, const std::vector<bytes>& frames) {
    std::vector<rte_mbuf*> burst;
    for (const bytes& f : frames) {
        rte_mbuf* m = make_mbuf(f);
        ASSERT_NE(m, nullptr);
        burst.push_back(m);
    }
    const std::uint16_t sent = tx.tx_burst(q, burst);
    ASSERT_EQ(sent, frames.size());
    std::array<rte_mbuf*, 64> got{};
    const std::uint16_t n = rx.rx_burst(q, got);
    ASSERT_EQ(n, frames.size()) << "on rx queue " << q;
    for (std::size_t i = 0; i < n; ++i) {
        EXPECT_EQ(mbuf_bytes(got[i]), frames[i]) << "frame " << i << " on queue " << q;
        rte_pktmbuf_free(got[i]);
    }
}

// The other queues of rx hold nothing.
void expect_quiet(drivers::port& rx, std::uint16_t except) {
    for (std::uint16_t q = 0; q < rx.rx_queues(); ++q) {
        if (q == except) {
            continue;
        }
        std::array<rte_mbuf*, 8> got{};
        const std::uint16_t n = rx.rx_burst(q, got);
        EXPECT_EQ(n, 0) << "rx queue " << q << " of " << rx.name();
        rte_pktmbuf_free_bulk(got.data(), n);
    }
}

bool contains(const std::string& hay, const std::string& needle) {
    return hay.find(needle) != std::string::npos;
}

// ---- pcap files, by hand: 24-byte global header, 16-byte record headers, little-endian ----

void put32(std::ofstream& f, std::uint32_t v) {
    const std::array<char, 4> b = {static_cast<char>(v), static_cast<char>(v >> 8), static_cast<char>(v >> 16),
                                   static_cast<char>(v >> 24)};
    f.write(b.data(), 4);
}

void write_pcap(const std::string& path, const std::vector<bytes>& frames) {
    std::ofstream f(path, std::ios::binary | std::ios::trunc);
    put32(f, 0xa1b2c3d4); // microsecond timestamps
    put32(f, 2 | (4u << 16)); // version 2.4
    put32(f, 0);          // thiszone
    put32(f, 0);          // sigfigs
    put32(f, 65535);      // snaplen
    put32(f, 1);          // LINKTYPE_ETHERNET
    std::uint32_t t = 1'700'000'000;
    for (const bytes& fr : frames) {
        put32(f, t++);
        put32(f, 0);
        put32(f, static_cast<std::uint32_t>(fr.size()));
        put32(f, static_cast<std::uint32_t>(fr.size()));
        f.write(reinterpret_cast<const char*>(fr.data()), static_cast<std::streamsize>(fr.size()));
    }
}

std::uint32_t get32(const bytes& b, std::size_t off) {
    return static_cast<std::uint32_t>(b[off]) | static_cast<std::uint32_t>(b[off + 1]) << 8 |
           static_cast<std::uint32_t>(b[off + 2]) << 16 | static_cast<std::uint32_t>(b[off + 3]) << 24;
}

// The frames of a little-endian pcap (micro- or nanosecond); fails the test on a malformed file.
std::vector<bytes> read_pcap(const std::string& path) {
    std::ifstream f(path, std::ios::binary);
    const bytes b((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    std::vector<bytes> frames;
    EXPECT_GE(b.size(), 24u) << path;
    if (b.size() < 24) {
        return frames;
    }
    const std::uint32_t magic = get32(b, 0);
    EXPECT_TRUE(magic == 0xa1b2c3d4 || magic == 0xa1b23c4d) << std::hex << magic;
    EXPECT_EQ(get32(b, 20), 1u) << "link type";
    std::size_t off = 24;
    while (off + 16 <= b.size()) {
        const std::uint32_t incl = get32(b, off + 8);
        const std::uint32_t orig = get32(b, off + 12);
        EXPECT_EQ(incl, orig) << "record at " << off << " was truncated";
        off += 16;
        if (off + incl > b.size()) {
            ADD_FAILURE() << "record at " << off << " runs past the end of " << path;
            break;
        }
        frames.emplace_back(b.begin() + static_cast<std::ptrdiff_t>(off),
                            b.begin() + static_cast<std::ptrdiff_t>(off + incl));
        off += incl;
    }
    EXPECT_EQ(off, b.size()) << "trailing bytes in " << path;
    return frames;
}

class scratch_dir {
public:
    scratch_dir() {
        _path = std::filesystem::temp_directory_path() / ("kwik_drivers_test_" + std::to_string(::getpid()));
        std::filesystem::create_directories(_path);
    }
    ~scratch_dir() {
        std::error_code ec;
        std::filesystem::remove_all(_path, ec);
    }
    std::string file(const std::string& name) const { return (_path / name).string(); }

private:
    std::filesystem::path _path;
};

// ---- net_ring ----

TEST(port, ring_vdev_loopback_two_queues) {
    auto p = drivers::open_port(config_for("net_ring0", 2));
    ASSERT_TRUE(p.ok()) << p.message();
    std::cout << p->report();
    EXPECT_EQ(p->rx_queues(), 2);
    EXPECT_EQ(p->tx_queues(), 2);
    EXPECT_EQ(p->name(), "net_ring0");
    EXPECT_EQ(p->offer().driver, "net_ring");
    const std::string r = p->report();
    EXPECT_TRUE(contains(r, "driver net_ring")) << r;
    EXPECT_TRUE(contains(r, "queues: rx 2 of max")) << r;
    EXPECT_TRUE(contains(r, ", tx 2 of max")) << r;
    EXPECT_TRUE(contains(r, "attached at start-up")) << r;

    // A net_ring vdev made from a bare name loops each tx queue back to the rx queue of the same
    // number.
    const std::vector<bytes> frames = {make_frame(60, 1), make_frame(1514, 2), make_frame(3000, 3)};
    expect_carried(*p, *p, 1, frames);
    expect_quiet(*p, 1);
    expect_carried(*p, *p, 0, {make_frame(64, 4)});

    ASSERT_TRUE(p->close().ok());
    std::uint16_t id = 0;
    EXPECT_NE(rte_eth_dev_get_port_by_name("net_ring0", &id), 0) << "close() left the vdev attached";
    // Closed twice is fine; reopening the same spec attaches it afresh. (net_ring 22.11 frees only
    // the rings of configured queues on close, so the re-attach logs "RING: Cannot reserve memory"
    // for a leftover ring and then attaches to the leftovers: its own fallback, harmless.)
    EXPECT_TRUE(p->close().ok());
    auto again = drivers::open_port(config_for("net_ring0", 1));
    ASSERT_TRUE(again.ok()) << again.message();
}

TEST(port, ring_link_carries_each_queue_to_the_peer) {
    auto link = drivers::ring_link::create("kwik_link_a", "kwik_link_b", 2);
    ASSERT_TRUE(link.ok()) << link.message();
    {
        auto a = drivers::open_port(config_for(link->name_a(), 2));
        ASSERT_TRUE(a.ok()) << a.message();
        auto b = drivers::open_port(config_for(link->name_b(), 2));
        ASSERT_TRUE(b.ok()) << b.message();
        std::cout << a->report();
        EXPECT_NE(a->id(), b->id());
        EXPECT_FALSE(contains(a->report(), "attached at start-up")) << "the link made it, not open_port";

        for (std::uint16_t q = 0; q < 2; ++q) {
            std::vector<bytes> frames;
            for (std::uint32_t i = 0; i < 32; ++i) {
                frames.push_back(make_frame(60 + i * 45, q * 100 + i));
            }
            expect_carried(*a, *b, q, frames);
            expect_quiet(*b, q);
            expect_quiet(*a, 99);
            expect_carried(*b, *a, q, {make_frame(100, 7 + q)});
        }
        // A worker's queue_pair reaches the same queue.
        drivers::queue_pair qa = a->queue(1);
        drivers::queue_pair qb = b->queue(1);
        rte_mbuf* m = make_mbuf(make_frame(128, 55));
        ASSERT_NE(m, nullptr);
        std::array<rte_mbuf*, 1> one = {m};
        ASSERT_EQ(qa.tx_burst(one), 1);
        std::array<rte_mbuf*, 4> got{};
        ASSERT_EQ(qb.rx_burst(got), 1);
        EXPECT_EQ(mbuf_bytes(got[0]), make_frame(128, 55));
        rte_pktmbuf_free(got[0]);

        const auto s = a->stats();
        ASSERT_TRUE(s.ok()) << s.message();
        EXPECT_EQ(s->basic.opackets, 2u * 32u + 1u);
        EXPECT_EQ(s->basic.ipackets, 2u);
        std::cout << drivers::format_stats(*s);
    }
}

// ---- net_pcap ----

TEST(port, pcap_reads_the_rx_file_whole_and_writes_what_was_sent) {
    scratch_dir dir;
    const std::string in = dir.file("in.pcap");
    const std::string out = dir.file("out.pcap");
    // A 4000-byte frame outgrows one 2 KB mbuf: net_pcap hands it over as a chain.
    const std::vector<bytes> frames = {make_frame(60, 10), make_frame(1514, 11), make_frame(4000, 12),
                                       make_frame(98, 13), make_frame(1000, 14)};
    write_pcap(in, frames);

    auto p = drivers::open_port(config_for("net_pcap0,rx_pcap=" + in + ",tx_pcap=" + out, 1));
    ASSERT_TRUE(p.ok()) << p.message();
    std::cout << p->report();
    EXPECT_EQ(p->offer().driver, "net_pcap");
    EXPECT_EQ(p->name(), "net_pcap0");

    std::vector<bytes> received;
    std::array<rte_mbuf*, 32> burst{};
    for (int i = 0; i < 100 && received.size() < frames.size(); ++i) {
        const std::uint16_t n = p->rx_burst(0, burst);
        for (std::uint16_t k = 0; k < n; ++k) {
            received.push_back(mbuf_bytes(burst[k]));
            rte_pktmbuf_free(burst[k]);
        }
    }
    ASSERT_EQ(received.size(), frames.size()) << "the rx file was not read whole (flushed at start?)";
    for (std::size_t i = 0; i < frames.size(); ++i) {
        EXPECT_EQ(received[i], frames[i]) << "frame " << i;
    }
    EXPECT_EQ(p->rx_burst(0, burst), 0) << "more packets than the file holds";

    const std::vector<bytes> sent = {make_frame(64, 20), make_frame(1400, 21), make_frame(3500, 22)};
    std::vector<rte_mbuf*> tx;
    for (const bytes& f : sent) {
        tx.push_back(make_mbuf(f));
        ASSERT_NE(tx.back(), nullptr);
    }
    ASSERT_EQ(p->tx_burst(0, tx), sent.size());
    const auto s = p->stats();
    ASSERT_TRUE(s.ok()) << s.message();
    EXPECT_EQ(s->basic.ipackets, frames.size());
    EXPECT_EQ(s->basic.opackets, sent.size());
    ASSERT_TRUE(p->close().ok());

    const std::vector<bytes> written = read_pcap(out);
    ASSERT_EQ(written.size(), sent.size());
    for (std::size_t i = 0; i < sent.size(); ++i) {
        EXPECT_EQ(written[i], sent[i]) << "frame " << i << " of out.pcap";
    }
}

TEST(port, pcap_rx_is_flushed_only_when_asked) {
    scratch_dir dir;
    const std::string in = dir.file("flush.pcap");
    write_pcap(in, {make_frame(60, 1), make_frame(70, 2), make_frame(80, 3)});
    auto c = config_for("net_pcap1,rx_pcap=" + in + ",tx_pcap=" + dir.file("flush_out.pcap"), 1);
    c.flush_rx_at_start = true;
    auto p = drivers::open_port(c);
    ASSERT_TRUE(p.ok()) << p.message();
    std::array<rte_mbuf*, 8> burst{};
    EXPECT_EQ(p->rx_burst(0, burst), 0) << "flush_rx_at_start left packets behind";
    EXPECT_EQ(rte_mempool_in_use_count(g_pool), 0u) << "flushed packets were not freed";
}

TEST(port, pcap_refuses_more_rx_queues_than_rx_files) {
    scratch_dir dir;
    const std::string in = dir.file("q.pcap");
    write_pcap(in, {make_frame(60, 1)});
    auto p = drivers::open_port(config_for("net_pcap2,rx_pcap=" + in + ",tx_pcap=" + dir.file("q_out.pcap"), 4));
    ASSERT_FALSE(p.ok());
    EXPECT_EQ(p.code(), EINVAL);
    EXPECT_TRUE(contains(p.message(), "net_pcap2")) << p.message();
    EXPECT_TRUE(contains(p.message(), "rx_queues 4 exceeds the device's maximum of 1")) << p.message();
    std::uint16_t id = 0;
    EXPECT_NE(rte_eth_dev_get_port_by_name("net_pcap2", &id), 0) << "a failed open left the vdev attached";
}

// ---- net_null ----

TEST(port, null_reports_rss_and_offloads_as_offered) {
    auto p = drivers::open_port(config_for("net_null0", 2));
    ASSERT_TRUE(p.ok()) << p.message();
    std::cout << p->report();
    const drivers::device_offer& o = p->offer();
    const drivers::port_capabilities& c = p->capabilities();
    EXPECT_EQ(o.driver, "net_null");
    // net_null offers every RSS protocol, so both UDP hashes are enabled.
    EXPECT_TRUE(c.rss);
    EXPECT_EQ(c.rss_hash_functions, drivers::wanted_rss_hash_functions);
    // Enabled = asked for and offered, nothing more.
    EXPECT_EQ(c.rx_ipv4_checksum, (o.rx_offloads & RTE_ETH_RX_OFFLOAD_IPV4_CKSUM) != 0);
    EXPECT_EQ(c.rx_udp_checksum, (o.rx_offloads & RTE_ETH_RX_OFFLOAD_UDP_CKSUM) != 0);
    EXPECT_EQ(c.tx_ipv4_checksum, (o.tx_offloads & RTE_ETH_TX_OFFLOAD_IPV4_CKSUM) != 0);
    EXPECT_EQ(c.tx_udp_checksum, (o.tx_offloads & RTE_ETH_TX_OFFLOAD_UDP_CKSUM) != 0);
    EXPECT_EQ(c.tx_multi_segment, (o.tx_offloads & RTE_ETH_TX_OFFLOAD_MULTI_SEGS) != 0);
    EXPECT_EQ(c.mtu, 1500u);
    EXPECT_FALSE(c.rx_scatter) << "a 1518-byte frame fits one 2 KB mbuf";
    const std::string r = p->report();
    EXPECT_TRUE(contains(r, "rss on: enabled ipv4-udp ipv6-udp")) << r;
    EXPECT_TRUE(contains(r, "driver net_null")) << r;

    // net_null generates 64-byte packets on every queue and drops what it is given.
    std::array<rte_mbuf*, 32> burst{};
    const std::uint16_t n = p->rx_burst(1, burst);
    ASSERT_GT(n, 0);
    EXPECT_EQ(burst[0]->pkt_len, 64u);
    EXPECT_EQ(p->tx_burst(0, std::span<rte_mbuf*>(burst.data(), n)), n);
    const auto s = p->stats();
    ASSERT_TRUE(s.ok()) << s.message();
    EXPECT_EQ(s->basic.ipackets, n);
    EXPECT_EQ(s->basic.opackets, n);
    ASSERT_TRUE(p->reset_stats().ok());
    const auto z = p->stats();
    ASSERT_TRUE(z.ok());
    EXPECT_EQ(z->basic.ipackets, 0u);
}

TEST(port, ring_without_rss_notes_that_queue_0_takes_everything) {
    auto p = drivers::open_port(config_for("net_ring1", 2));
    ASSERT_TRUE(p.ok()) << p.message();
    EXPECT_FALSE(p->capabilities().rss);
    ASSERT_FALSE(p->notes().empty());
    EXPECT_TRUE(contains(p->report(), "note: device offers no UDP RSS hash")) << p->report();
}

// A 9000-byte MTU outgrows the 2 KB mbufs of g_pool: net_ring offers rx scatter, so it is
// enabled and reported; net_null offers none, so the port is refused, naming it and the MTU.
TEST(port, jumbo_mtu_9000_turns_scatter_on_where_offered_and_is_refused_where_not) {
    auto c = config_for("net_ring2", 1);
    c.mtu = 9000;
    c.multi_segment = true;
    auto p = drivers::open_port(c);
    ASSERT_TRUE(p.ok()) << p.message();
    std::cout << p->report();
    ASSERT_NE(p->offer().rx_offloads & RTE_ETH_RX_OFFLOAD_SCATTER, 0u) << "net_ring offers rx scatter";
    const drivers::port_capabilities& caps = p->capabilities();
    EXPECT_EQ(caps.mtu, 9000u);
    EXPECT_EQ(caps.max_frame, 9018u);
    EXPECT_EQ(caps.mbuf_data_room, RTE_MBUF_DEFAULT_DATAROOM);
    EXPECT_TRUE(caps.rx_scatter);
    std::uint16_t mtu = 0;
    ASSERT_EQ(rte_eth_dev_get_mtu(p->id(), &mtu), 0);
    EXPECT_EQ(mtu, 9000u);
    const std::string r = p->report();
    EXPECT_TRUE(contains(r, "mtu 9000")) << r;
    EXPECT_TRUE(contains(r, "rx scatter on")) << r;
    EXPECT_TRUE(contains(r, "rx offloads enabled: scatter")) << r;
    EXPECT_TRUE(contains(r, "note: frames of up to 9018 bytes outgrow one mbuf (2048 bytes of data room): rx "
                            "scatter on"))
        << r;
    ASSERT_TRUE(p->close().ok());

    // The same MTU on a device without scatter: refused before anything is configured.
    {
        auto n = config_for("net_null1", 1);
        n.mtu = 9000;
        auto refused = drivers::open_port(n);
        ASSERT_FALSE(refused.ok()) << refused->report();
        std::cout << refused.message() << '\n';
        EXPECT_EQ(refused.code(), EINVAL);
        EXPECT_TRUE(contains(refused.message(), "device 'net_null1'")) << refused.message();
        EXPECT_TRUE(contains(refused.message(), "port_config.mtu 9000 needs rx scatter")) << refused.message();
        EXPECT_TRUE(contains(refused.message(), "frames of up to 9018 bytes outgrow one mbuf (2048 bytes"))
            << refused.message();
        EXPECT_TRUE(contains(refused.message(), "does not offer RTE_ETH_RX_OFFLOAD_SCATTER")) << refused.message();
        EXPECT_TRUE(contains(refused.message(), "or an mtu of at most 2030")) << refused.message();
        std::uint16_t id = 0;
        EXPECT_NE(rte_eth_dev_get_port_by_name("net_null1", &id), 0) << "a refused port left the vdev attached";
        // What the refusal suggests works: the largest MTU whose frames fit one mbuf.
        n.mtu = 2030;
        auto fits = drivers::open_port(n);
        ASSERT_TRUE(fits.ok()) << fits.message();
        EXPECT_FALSE(fits->capabilities().rx_scatter);
        EXPECT_EQ(fits->capabilities().max_frame, 2048u);
    }

    // Without multi-segment mbufs: opened, scatter off, and the report says what that costs.
    auto off = config_for("net_null2", 1);
    off.mtu = 9000;
    off.multi_segment = false;
    auto q = drivers::open_port(off);
    ASSERT_TRUE(q.ok()) << q.message();
    EXPECT_FALSE(q->capabilities().rx_scatter);
    EXPECT_FALSE(q->capabilities().tx_multi_segment);
    EXPECT_TRUE(contains(q->report(), "rx scatter is off (multi_segment = false)")) << q->report();
}

TEST(port, jumbo_frames_cross_a_ring_link_as_chains) {
    auto link = drivers::ring_link::create("kwik_jumbo_a", "kwik_jumbo_b", 1);
    ASSERT_TRUE(link.ok()) << link.message();
    auto ca = config_for(link->name_a(), 1);
    ca.mtu = 9000;
    auto a = drivers::open_port(ca);
    ASSERT_TRUE(a.ok()) << a.message();
    auto cb = ca;
    cb.device = link->name_b();
    auto b = drivers::open_port(cb);
    ASSERT_TRUE(b.ok()) << b.message();
    expect_carried(*a, *b, 0, {make_frame(9018, 1), make_frame(9000, 2)});
}

// ---- flow steering ----

drivers::udp_5tuple v4_tuple() {
    drivers::udp_5tuple t;
    t.src.bytes = {10, 0, 0, 1};
    t.dst.bytes = {10, 0, 0, 2};
    t.src_port = 40000;
    t.dst_port = 7707;
    return t;
}

TEST(flow_steering, vdevs_say_not_supported_naming_the_port) {
    for (const std::string dev : {"net_ring3", "net_null3"}) {
        auto p = drivers::open_port(config_for(dev, 2));
        ASSERT_TRUE(p.ok()) << p.message();
        auto rule = drivers::install_5tuple_rule(*p, 1, v4_tuple());
        ASSERT_FALSE(rule.ok()) << dev << " accepted a flow rule";
        EXPECT_TRUE(drivers::not_supported(rule.failure())) << rule.message();
        EXPECT_TRUE(contains(rule.message(), dev)) << rule.message();
        EXPECT_TRUE(contains(rule.message(), "10.0.0.1:40000 -> 10.0.0.2:7707")) << rule.message();
        EXPECT_TRUE(contains(rule.message(), "not supported by this port")) << rule.message();
        std::cout << rule.message() << '\n';

        drivers::udp_5tuple v6;
        v6.src.version = 6;
        v6.dst.version = 6;
        v6.src.bytes = {0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
        v6.dst.bytes = {0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2};
        v6.src_port = 1;
        v6.dst_port = 2;
        auto rule6 = drivers::install_5tuple_rule(*p, 0, v6);
        ASSERT_FALSE(rule6.ok());
        EXPECT_TRUE(drivers::not_supported(rule6.failure())) << rule6.message();
        EXPECT_TRUE(contains(rule6.message(), "[fd00::1]:1 -> [fd00::2]:2")) << rule6.message();

        const auto probe = drivers::probe_flow_steering(*p);
        EXPECT_FALSE(probe.ok());
        EXPECT_TRUE(drivers::not_supported(probe.failure())) << probe.message();
        EXPECT_TRUE(drivers::flush_rules(*p).ok()) << "nothing to flush on a port without rte_flow";
    }
}

TEST(flow_steering, bad_requests_are_errors_not_unsupported) {
    auto p = drivers::open_port(config_for("net_null4", 2));
    ASSERT_TRUE(p.ok()) << p.message();
    auto rule = drivers::install_5tuple_rule(*p, 2, v4_tuple());
    ASSERT_FALSE(rule.ok());
    EXPECT_EQ(rule.code(), EINVAL);
    EXPECT_FALSE(drivers::not_supported(rule.failure()));
    EXPECT_TRUE(contains(rule.message(), "has 2 rx queues")) << rule.message();
    drivers::udp_5tuple mixed = v4_tuple();
    mixed.dst.version = 6;
    auto rule2 = drivers::install_5tuple_rule(*p, 0, mixed);
    ASSERT_FALSE(rule2.ok());
    EXPECT_EQ(rule2.code(), EINVAL);
    drivers::flow_rule none;
    EXPECT_TRUE(drivers::remove_rule(*p, none).ok()) << "an empty handle removes nothing";
}

// ---- bad specs and configs ----

TEST(port, bad_device_specs_name_the_device) {
    {
        auto p = drivers::open_port(config_for("net_nosuchpmd0", 1));
        ASSERT_FALSE(p.ok());
        EXPECT_TRUE(contains(p.message(), "net_nosuchpmd0")) << p.message();
        EXPECT_TRUE(contains(p.message(), "rte_dev_probe")) << p.message();
        std::cout << p.message() << '\n';
    }
    {
        auto p = drivers::open_port(config_for("0000:ff:1f.7", 1));
        ASSERT_FALSE(p.ok());
        EXPECT_TRUE(contains(p.message(), "0000:ff:1f.7")) << p.message();
        std::cout << p.message() << '\n';
    }
    {
        auto p = drivers::open_port(config_for("net_pcap9,rx_pcap=/nonexistent/kwik.pcap", 1));
        ASSERT_FALSE(p.ok());
        EXPECT_TRUE(contains(p.message(), "net_pcap9,rx_pcap=/nonexistent/kwik.pcap")) << p.message();
        std::cout << p.message() << '\n';
    }
    {
        auto c = config_for("net_null5", 1);
        c.pool = nullptr;
        auto p = drivers::open_port(c);
        ASSERT_FALSE(p.ok());
        EXPECT_TRUE(contains(p.message(), "net_null5")) << p.message();
        EXPECT_TRUE(contains(p.message(), "port_config.pool")) << p.message();
    }
    {
        auto c = config_for("net_null6", 0);
        auto p = drivers::open_port(c);
        ASSERT_FALSE(p.ok());
        EXPECT_TRUE(contains(p.message(), "rx_queues")) << p.message();
    }
    {
        auto c = config_for("net_null7", 1);
        c.mtu = 70000;
        auto p = drivers::open_port(c);
        ASSERT_FALSE(p.ok());
        EXPECT_TRUE(contains(p.message(), "port_config.mtu 70000")) << p.message();
    }
    {
        auto p = drivers::open_port(config_for("", 1));
        ASSERT_FALSE(p.ok());
        EXPECT_TRUE(contains(p.message(), "port_config.device is empty")) << p.message();
    }
}

TEST(port, an_open_port_moves_and_closes_once) {
    auto p = drivers::open_port(config_for("net_null8", 1));
    ASSERT_TRUE(p.ok()) << p.message();
    const std::uint16_t id = p->id();
    drivers::port moved = std::move(*p);
    EXPECT_FALSE(p->is_open());
    EXPECT_TRUE(moved.is_open());
    EXPECT_EQ(moved.id(), id);
    EXPECT_TRUE(p->close().ok()) << "closing the moved-from port does nothing";
    EXPECT_TRUE(rte_eth_dev_is_valid_port(id));
    ASSERT_TRUE(moved.stop().ok());
    EXPECT_FALSE(moved.is_started());
    ASSERT_TRUE(moved.start().ok());
    const auto l = moved.link();
    ASSERT_TRUE(l.ok()) << l.message();
    EXPECT_TRUE(l->up);
    ASSERT_TRUE(moved.close().ok());
    EXPECT_FALSE(rte_eth_dev_is_valid_port(id));
    const auto s = moved.stats();
    ASSERT_FALSE(s.ok());
    EXPECT_TRUE(contains(s.message(), "closed")) << s.message();
}

TEST(port, a_port_open_elsewhere_is_refused_and_left_running) {
    auto first = drivers::open_port(config_for("net_null9", 1));
    ASSERT_TRUE(first.ok()) << first.message();
    auto second = drivers::open_port(config_for("net_null9,size=128", 1));
    ASSERT_FALSE(second.ok());
    EXPECT_EQ(second.code(), EBUSY);
    EXPECT_TRUE(contains(second.message(), "net_null9")) << second.message();
    EXPECT_TRUE(contains(second.message(), "already open")) << second.message();
    EXPECT_TRUE(first->is_started());
    std::array<rte_mbuf*, 4> burst{};
    const std::uint16_t n = first->rx_burst(0, burst);
    EXPECT_GT(n, 0) << "the refused second open stopped the first owner's port";
    rte_pktmbuf_free_bulk(burst.data(), n);
    ASSERT_TRUE(first->close().ok());
    // Once closed and detached, the name can be opened again, with the new arguments applied.
    auto third = drivers::open_port(config_for("net_null9,size=128", 1));
    ASSERT_TRUE(third.ok()) << third.message();
    EXPECT_TRUE(third->notes().empty()) << third->report();
    const std::uint16_t m = third->rx_burst(0, burst);
    ASSERT_GT(m, 0);
    EXPECT_EQ(burst[0]->pkt_len, 128u);
    rte_pktmbuf_free_bulk(burst.data(), m);
}

// net_tap needs CAP_NET_ADMIN and /dev/net/tun; it is the one vdev here with rte_flow (through
// the kernel's TC). Skipped where it cannot be created.
TEST(port, tap_capabilities_and_flow_steering_if_available) {
    auto p = drivers::open_port(config_for("net_tap_kwikdt,iface=kwikdt0", 2));
    if (!p.ok()) {
        GTEST_SKIP() << "net_tap not available here: " << p.message();
    }
    std::cout << p->report();
    EXPECT_EQ(p->offer().driver, "net_tap");
    auto rule = drivers::install_5tuple_rule(*p, 1, v4_tuple());
    if (rule.ok()) {
        std::cout << "net_tap accepted a 5-tuple rule to queue 1\n";
        EXPECT_TRUE(drivers::remove_rule(*p, *rule).ok());
        EXPECT_EQ(rule->flow, nullptr);
    } else {
        std::cout << rule.message() << '\n';
        EXPECT_TRUE(contains(rule.message(), "net_tap_kwikdt")) << rule.message();
    }
    EXPECT_TRUE(drivers::flush_rules(*p).ok());
}

} // namespace

int main(int argc, char** argv) {
    ::testing::InitGoogleTest(&argc, argv);
    ::testing::AddGlobalTestEnvironment(new eal_environment); // gtest owns it
    return RUN_ALL_TESTS();
}
