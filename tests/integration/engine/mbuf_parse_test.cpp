// Parsing KDP packets in place from rte_mbuf chains (dataplane/engine/mbuf_bytes.hpp): packets
// serialised by the codec are written into chains cut at every byte, inside every header field,
// varint, extension TLV and control payload, and into 1-byte segments; the parse must give the
// verdict and view the contiguous parse gives, and frame positions must lead back to the right
// bytes of the chain. Starts EAL once (no hugepages, no PCI, no shared config) for its mbuf pool.
#include <gtest/gtest.h>

#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_mbuf.h>
#include <rte_mempool.h>

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <optional>
#include <random>
#include <set>
#include <span>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "dataplane/engine/mbuf_bytes.hpp"
#include "dataplane/kdp/bytes.hpp"
#include "dataplane/kdp/control.hpp"
#include "dataplane/kdp/packet.hpp"
#include "dataplane/kdp/wire.hpp"

namespace {

namespace kdp = kwik::kdp;
namespace engine = kwik::engine;

// Bytes of Ethernet + IPv4 + UDP before the KDP payload in the first segment.
constexpr std::uint32_t udp_payload_offset = 42;
// Data room used per segment; chains longer than this per piece are cut further.
constexpr std::size_t max_segment_data = 2048;

rte_mempool* g_pool = nullptr;

class eal_environment : public ::testing::Environment {
public:
    void SetUp() override {
        const std::string prefix = "--file-prefix=kwik_engine_mbuf_parse";
        // --in-memory refuses --no-huge (which implies legacy memory); a prefix of its own and no
        // shared config keep this process apart from other EAL tests instead.
        std::vector<std::string> args = {"engine_mbuf_parse_test", "--no-huge", "--no-pci", "-m", "256",
                                         "--no-shconf", prefix, "--log-level=*:warning", "--no-telemetry",
                                         "-l", "0"};
        std::vector<char*> argv;
        for (std::string& a : args) {
            argv.push_back(a.data());
        }
        const int rc = rte_eal_init(static_cast<int>(argv.size()), argv.data());
        ASSERT_GE(rc, 0) << "rte_eal_init: " << rte_strerror(rte_errno);
        // 2 KB data rooms as a PMD's rx pool has; enough mbufs for a 16 KB packet in 1-byte segments.
        g_pool = rte_pktmbuf_pool_create("kwik_mbuf_parse", 32767, 0, 0,
                                         static_cast<std::uint16_t>(RTE_PKTMBUF_HEADROOM + max_segment_data),
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

struct mbuf_free {
    void operator()(rte_mbuf* m) const noexcept { rte_pktmbuf_free(m); }
};
using mbuf_ptr = std::unique_ptr<rte_mbuf, mbuf_free>;

// A chain holding `prefix` filler bytes (the L2-L4 headers) and then payload, cut at the given
// payload positions (ascending, duplicates give empty segments). Pieces longer than a data room
// are cut further.
mbuf_ptr make_chain(std::span<const std::uint8_t> payload, const std::vector<std::size_t>& cuts,
                    std::uint32_t prefix = udp_payload_offset) {
    std::vector<std::size_t> ends = cuts;
    ends.push_back(payload.size());
    mbuf_ptr head;
    rte_mbuf* tail = nullptr;
    std::size_t pos = 0;
    bool first = true;
    for (const std::size_t end : ends) {
        do {
            rte_mbuf* seg = rte_pktmbuf_alloc(g_pool);
            if (seg == nullptr) {
                ADD_FAILURE() << "mbuf pool empty";
                return nullptr;
            }
            const std::size_t room = max_segment_data - (first ? prefix : 0);
            const std::size_t n = std::min(end - pos, room);
            const auto total = static_cast<std::uint16_t>(n + (first ? prefix : 0));
            auto* data = reinterpret_cast<std::uint8_t*>(rte_pktmbuf_append(seg, total));
            if (data == nullptr) {
                rte_pktmbuf_free(seg);
                ADD_FAILURE() << "rte_pktmbuf_append failed";
                return nullptr;
            }
            if (first) {
                std::memset(data, 0xEE, prefix);
                data += prefix;
            }
            if (n != 0) {
                std::memcpy(data, payload.data() + pos, n);
            }
            pos += n;
            if (first) {
                head.reset(seg);
                first = false;
            } else {
                // rte_pktmbuf_chain() walks to the last segment on every call; this keeps the tail.
                tail->next = seg;
                head->nb_segs = static_cast<std::uint16_t>(head->nb_segs + 1);
                head->pkt_len += seg->data_len;
            }
            tail = seg;
        } while (pos < end);
    }
    return head;
}

std::string describe_cuts(const std::vector<std::size_t>& cuts) {
    std::ostringstream out;
    out << "cuts at {";
    for (std::size_t i = 0; i < cuts.size() && i < 20; ++i) {
        out << (i == 0 ? "" : ", ") << cuts[i];
    }
    out << (cuts.size() > 20 ? ", ...}" : "}");
    return out.str();
}

// ---- packets ----

// One serialised packet with the frames it was made from.
struct test_packet {
    std::string name;
    std::vector<std::uint8_t> bytes;
    std::vector<std::vector<std::uint8_t>> frame_data; // what each frame's data must be
};

struct packet_maker {
    std::vector<std::vector<std::uint8_t>> storage;
    std::vector<kdp::frame_desc> frames;
    std::mt19937 rng{7};

    std::span<const std::uint8_t> bytes(std::size_t n) {
        std::vector<std::uint8_t> b(n);
        for (auto& x : b) {
            x = static_cast<std::uint8_t>(rng());
        }
        storage.push_back(std::move(b));
        return storage.back();
    }

    void stream(std::uint64_t stream_id, std::uint64_t offset, std::size_t n, std::uint8_t flags = 0,
                kdp::priority prio = kdp::priority::normal) {
        kdp::frame_desc f;
        f.stream_id = stream_id;
        f.offset = offset;
        f.flags = flags;
        f.prio = prio;
        if (prio != kdp::priority::normal) {
            f.flags |= kdp::frame_flag::priority;
        }
        f.data = bytes(n);
        if ((flags & kdp::frame_flag::compressed) != 0) {
            f.uncompressed_length = 16384; // 4-byte varint, the largest allowed
        }
        if ((flags & kdp::frame_flag::encrypted) != 0) {
            f.key_phase = 1;
            for (std::size_t i = 0; i < f.nonce.size(); ++i) {
                f.nonce[i] = static_cast<std::uint8_t>(0xA0 + i);
            }
        }
        frames.push_back(f);
    }

    void control(const kdp::control_frame& c) {
        std::vector<std::uint8_t> payload(kdp::max_control_payload);
        const std::size_t n = kdp::encode_control(c, payload);
        ASSERT_NE(n, 0u);
        payload.resize(n);
        storage.push_back(std::move(payload));
        kdp::frame_desc f;
        f.prio = kdp::priority::control;
        f.stream_id = kdp::control_stream_id(c);
        f.offset = kdp::control_offset(c);
        f.data = storage.back();
        frames.push_back(f);
    }

    test_packet make(std::string name, std::uint64_t seq, kdp::packet_type type,
                     kdp::compression comp = kdp::compression::none) {
        test_packet p;
        p.name = std::move(name);
        const kdp::packet_desc desc{seq, type, comp, frames};
        p.bytes.resize(kdp::max_packet_size);
        const kdp::write_result w = kdp::serialize_packet(desc, p.bytes);
        EXPECT_TRUE(w.ok()) << p.name << ": " << kdp::to_string(w.invalid);
        p.bytes.resize(w.size);
        for (const kdp::frame_desc& f : frames) {
            p.frame_data.emplace_back(f.data.begin(), f.data.end());
        }
        return p;
    }
};

kdp::control_frame ack_with_ranges() {
    kdp::control_frame c;
    c.type = kdp::control_type::ack;
    c.ack.path_id = 3;
    c.ack.ack_delay_us = 25000; // 4-byte varint
    c.ack.ecn_ce = 1;
    c.ack.range_count = 4;
    c.ack.ranges[0] = {1000000, 999000};
    c.ack.ranges[1] = {998000, 997990};
    c.ack.ranges[2] = {900000, 800000};
    c.ack.ranges[3] = {70, 0};
    return c;
}

kdp::control_frame connection_close() {
    static constexpr char reason[] = "peer went away: path validation failed three times";
    kdp::control_frame c;
    c.type = kdp::control_type::connection_close;
    c.error_code = 0x1234;
    c.reason = {reinterpret_cast<const std::uint8_t*>(reason), sizeof reason - 1};
    return c;
}

const std::vector<test_packet>& packets() {
    static const std::vector<test_packet> all = [] {
        std::vector<test_packet> out;
        {
            packet_maker m;
            m.stream(1000, 123456789, 300); // 2-byte stream id and data length varints
            out.push_back(m.make("one stream frame", 42, kdp::packet_type::data));
        }
        {
            packet_maker m;
            m.control(ack_with_ranges());
            m.control(connection_close());
            kdp::control_frame msd;
            msd.type = kdp::control_type::max_stream_data;
            msd.stream_id = 20000;
            msd.limit = 1ull << 40;
            m.control(msd);
            out.push_back(m.make("control frames", 7, kdp::packet_type::control));
        }
        {
            packet_maker m;
            m.stream(5, 0, 200, kdp::frame_flag::compressed | kdp::frame_flag::encrypted);
            m.stream(9, 4096, 64, kdp::frame_flag::encrypted | kdp::frame_flag::fin);
            m.stream(13, 1ull << 33, 90, kdp::frame_flag::compressed);
            out.push_back(m.make("compressed and encrypted frames", 9000, kdp::packet_type::data,
                                 kdp::compression::deflate));
        }
        {
            packet_maker m;
            for (std::uint64_t i = 0; i < 24; ++i) {
                if (i % 5 == 4) {
                    kdp::control_frame md;
                    md.type = kdp::control_type::max_data;
                    md.limit = 1000000 * i;
                    m.control(md);
                } else {
                    m.stream(4 * i + 1, 100 * i, 1 + 7 * i, i % 3 == 0 ? kdp::frame_flag::ordered : 0,
                             i % 2 == 0 ? kdp::priority::high : kdp::priority::critical);
                }
            }
            out.push_back(m.make("24 frames", 1ull << 40, kdp::packet_type::priority));
        }
        {
            packet_maker m;
            m.stream(kdp::varint_max, kdp::max_stream_offset - 100, 100,
                     kdp::frame_flag::retransmit | kdp::frame_flag::fin);
            out.push_back(m.make("8-byte varints", kdp::varint_max, kdp::packet_type::retransmission));
        }
        {
            packet_maker m;
            kdp::control_frame pc;
            pc.type = kdp::control_type::path_challenge;
            pc.challenge = {1, 2, 3, 4, 5, 6, 7, 8};
            m.control(pc);
            out.push_back(m.make("keepalive", 1, kdp::packet_type::keepalive));
        }
        {
            packet_maker m;
            m.control(ack_with_ranges());
            out.push_back(m.make("ack", 2, kdp::packet_type::ack));
        }
        {
            packet_maker m;
            m.stream(77, 0, 1700);
            out.push_back(m.make("1700-byte frame", 3, kdp::packet_type::data));
        }
        {
            packet_maker m;
            m.stream(77, 0, 6000);
            m.stream(78, 0, 3000);
            out.push_back(m.make("9000-byte jumbo", 4, kdp::packet_type::data));
        }
        return out;
    }();
    return all;
}

// ---- comparison ----

::testing::AssertionResult same_view(const kdp::packet_view& a, const kdp::packet_view& b) {
    if (a.seq != b.seq || a.checksum != b.checksum || a.header_length != b.header_length ||
        a.total_length != b.total_length || a.frame_count != b.frame_count || a.type != b.type ||
        a.compression != b.compression || a.checksum_ok != b.checksum_ok || a.frames_parsed != b.frames_parsed) {
        return ::testing::AssertionFailure() << "packet fields differ";
    }
    for (std::size_t i = 0; i < a.frame_count; ++i) {
        const kdp::frame_view& x = a.frames[i];
        const kdp::frame_view& y = b.frames[i];
        if (x.stream_id != y.stream_id || x.offset != y.offset || x.stream_length != y.stream_length ||
            x.header_pos != y.header_pos || x.ext_pos != y.ext_pos || x.data_pos != y.data_pos ||
            x.data_length != y.data_length || x.checksum != y.checksum || x.ext_length != y.ext_length ||
            x.flags != y.flags || x.priority != y.priority || x.control != y.control ||
            x.key_phase != y.key_phase || x.nonce_pos != y.nonce_pos || x.checksum_ok != y.checksum_ok) {
            return ::testing::AssertionFailure() << "frame " << i << " differs";
        }
    }
    return ::testing::AssertionSuccess();
}

// The data areas of a chain's segments, sorted by address, to tell whether a pointer the codec
// hands out lies in one of them (it did not copy).
class chain_areas {
public:
    explicit chain_areas(const rte_mbuf* m) {
        for (const rte_mbuf* s = m; s != nullptr; s = s->next) {
            const auto* begin = rte_pktmbuf_mtod(s, const std::uint8_t*);
            _areas.emplace_back(begin, begin + s->data_len);
        }
        std::sort(_areas.begin(), _areas.end());
    }

    bool contains(const std::uint8_t* p, std::size_t n) const {
        // Segments do not overlap: only the last non-empty area starting at or before p can hold it.
        auto it = std::upper_bound(_areas.begin(), _areas.end(), p,
                                   [](const std::uint8_t* q, const auto& area) { return q < area.first; });
        while (it != _areas.begin()) {
            --it;
            if (it->first != it->second) {
                return p + n <= it->second;
            }
        }
        return false;
    }

private:
    std::vector<std::pair<const std::uint8_t*, const std::uint8_t*>> _areas;
};

// Parses the chain and checks it against the contiguous parse of the same payload.
::testing::AssertionResult check_chain(const test_packet& pkt, const rte_mbuf* m, std::uint32_t offset) {
    kdp::packet_view ref{};
    const kdp::drop_reason ref_verdict =
        kdp::parse_packet<kdp::parse_mode::verify>(kdp::contiguous_bytes(pkt.bytes), ref);
    if (ref_verdict != kdp::drop_reason::none) {
        return ::testing::AssertionFailure() << "contiguous parse rejects: " << kdp::to_string(ref_verdict);
    }
    std::vector<kdp::segment> storage(m->nb_segs);
    kdp::packet_view v{};
    const std::optional<kdp::drop_reason> verdict = engine::parse_mbuf(m, offset, storage, v);
    if (!verdict) {
        return ::testing::AssertionFailure() << "the adapter refused the chain";
    }
    if (*verdict != ref_verdict) {
        return ::testing::AssertionFailure() << "verdict " << kdp::to_string(*verdict);
    }
    if (auto r = same_view(v, ref); !r) {
        return r;
    }
    kdp::packet_view iv{};
    if (engine::parse_mbuf<kdp::parse_mode::inspect>(m, offset, storage, iv) != kdp::drop_reason::none) {
        return ::testing::AssertionFailure() << "inspect mode rejects";
    }
    if (auto r = same_view(iv, ref); !r) {
        return r << " (inspect)";
    }

    // Frame positions lead back to the frame's bytes: read from the mbufs by DPDK, and through
    // the codec's source, whose pieces must point into the segments themselves.
    const std::optional<kdp::chained_bytes> bytes = engine::mbuf_chained_bytes(m, offset, storage);
    if (!bytes || bytes->size() != pkt.bytes.size()) {
        return ::testing::AssertionFailure() << "mbuf_chained_bytes size";
    }
    const chain_areas areas(m);
    for (std::size_t i = 0; i < v.frame_count; ++i) {
        const kdp::frame_view& f = v.frames[i];
        const std::vector<std::uint8_t>& want = pkt.frame_data[i];
        std::vector<std::uint8_t> buf(f.data_length + 1);
        const auto* read = static_cast<const std::uint8_t*>(
            rte_pktmbuf_read(m, offset + f.data_pos, f.data_length, buf.data()));
        if (f.data_length != want.size() || read == nullptr ||
            (f.data_length != 0 && std::memcmp(read, want.data(), want.size()) != 0)) {
            return ::testing::AssertionFailure() << "frame " << i << ": rte_pktmbuf_read differs";
        }
        std::vector<std::uint8_t> gathered;
        bool in_place = true;
        bytes->for_each_piece(f.data_pos, f.data_length, [&](const std::uint8_t* p, std::size_t n) {
            in_place = in_place && areas.contains(p, n);
            gathered.insert(gathered.end(), p, p + n);
        });
        if (gathered != want) {
            return ::testing::AssertionFailure() << "frame " << i << ": pieces differ";
        }
        if (!in_place) {
            return ::testing::AssertionFailure() << "frame " << i << ": a piece points outside the chain";
        }
        if (f.is_control()) {
            kdp::control_frame c;
            const kdp::drop_reason cr =
                kdp::decode_control(f.stream_id, f.offset, gathered.data(), gathered.size(), &c);
            if (cr != kdp::drop_reason::none || static_cast<std::uint8_t>(c.type) != f.control) {
                return ::testing::AssertionFailure() << "frame " << i << ": control payload does not decode";
            }
        }
    }
    return ::testing::AssertionSuccess();
}

void expect_chain_parses(const test_packet& pkt, const std::vector<std::size_t>& cuts,
                         std::uint32_t prefix = udp_payload_offset) {
    const mbuf_ptr m = make_chain(pkt.bytes, cuts, prefix);
    ASSERT_NE(m, nullptr);
    EXPECT_TRUE(check_chain(pkt, m.get(), prefix)) << pkt.name << ", " << describe_cuts(cuts)
                                                   << ", payload offset " << prefix;
}

// Positions where a field of the packet starts, plus the bytes just inside each.
std::vector<std::size_t> field_edges(const test_packet& pkt) {
    kdp::packet_view v{};
    EXPECT_EQ(kdp::parse_packet(kdp::contiguous_bytes(pkt.bytes), v), kdp::drop_reason::none);
    std::set<std::size_t> edges = {1, 8, 9, 10, 11, v.header_length - 5, v.header_length - 1, v.header_length};
    for (const kdp::frame_view& f : v.frame_span()) {
        const std::size_t sid = kdp::varint_size(f.stream_id);
        const std::size_t len_pos = f.header_pos + sid + 9;
        const std::size_t crc_pos = len_pos + kdp::varint_size(f.data_length);
        for (const std::size_t p : {std::size_t{f.header_pos}, f.header_pos + sid, len_pos, crc_pos, crc_pos + 4,
                                    crc_pos + 5, std::size_t{f.ext_pos}, std::size_t{f.data_pos},
                                    std::size_t{f.data_pos} + f.data_length}) {
            edges.insert(p);
            edges.insert(p + 1);
            if (p > 0) {
                edges.insert(p - 1);
            }
        }
    }
    std::vector<std::size_t> out;
    for (const std::size_t e : edges) {
        if (e > 0 && e < pkt.bytes.size()) {
            out.push_back(e);
        }
    }
    return out;
}

// ---- tests ----

TEST(mbuf_parse, single_segment_uses_contiguous_fast_path) {
    for (const test_packet& pkt : packets()) {
        if (pkt.bytes.size() + udp_payload_offset > max_segment_data) {
            continue;
        }
        const mbuf_ptr m = make_chain(pkt.bytes, {});
        ASSERT_NE(m, nullptr);
        EXPECT_TRUE(engine::mbuf_is_contiguous(m.get()));
        const kdp::contiguous_bytes bytes = engine::mbuf_contiguous_bytes(m.get(), udp_payload_offset);
        EXPECT_EQ(bytes.size(), pkt.bytes.size());
        EXPECT_EQ(bytes.view(0, 1, nullptr), rte_pktmbuf_mtod_offset(m.get(), const std::uint8_t*, udp_payload_offset));
        EXPECT_TRUE(check_chain(pkt, m.get(), udp_payload_offset)) << pkt.name;
    }
}

// Every 2-segment cut of every packet: each header field, varint, TLV and payload byte gets a
// boundary inside or just before it.
TEST(mbuf_parse, every_two_segment_split) {
    for (const test_packet& pkt : packets()) {
        if (pkt.bytes.size() > 2 * (max_segment_data - udp_payload_offset)) {
            continue; // the jumbo packet: see random_splits
        }
        for (std::size_t cut = 0; cut <= pkt.bytes.size(); ++cut) {
            expect_chain_parses(pkt, {cut});
            if (HasFailure()) {
                return;
            }
        }
    }
}

// Three segments, both cuts at field edges: a field cut twice, two fields cut at once.
TEST(mbuf_parse, three_segment_splits_at_field_edges) {
    for (const test_packet& pkt : packets()) {
        const std::vector<std::size_t> edges = field_edges(pkt);
        for (std::size_t i = 0; i < edges.size(); ++i) {
            for (std::size_t j = i; j < edges.size() && j < i + 12; ++j) {
                expect_chain_parses(pkt, {edges[i], edges[j]});
                if (HasFailure()) {
                    return;
                }
            }
        }
    }
}

// Named cuts in the places the parser copies a straddling field into scratch.
TEST(mbuf_parse, cuts_inside_named_fields) {
    const test_packet& ext = packets()[2]; // compressed and encrypted frames
    const test_packet& ctl = packets()[1]; // control frames
    kdp::packet_view ev{};
    kdp::packet_view cv{};
    ASSERT_EQ(kdp::parse_packet(kdp::contiguous_bytes(ext.bytes), ev), kdp::drop_reason::none);
    ASSERT_EQ(kdp::parse_packet(kdp::contiguous_bytes(ctl.bytes), cv), kdp::drop_reason::none);
    const kdp::frame_view& f0 = ev.frames[0];
    ASSERT_EQ(f0.ext_length, 2 + 4 + 2 + kdp::aead_extension_len); // uncompressed length (4-byte varint), AEAD
    ASSERT_GE(ext.bytes[10], 0x40);                                 // total length: a 2-byte varint
    const kdp::frame_view& ack = cv.frames[0];
    const kdp::frame_view& close = cv.frames[1];
    ASSERT_EQ(ack.control, static_cast<std::uint8_t>(kdp::control_type::ack));
    ASSERT_EQ(close.control, static_cast<std::uint8_t>(kdp::control_type::connection_close));
    ASSERT_EQ(kdp::varint_size(ack_with_ranges().ack.ranges[0].largest), 4u);
    ASSERT_EQ(kdp::varint_size(ack_with_ranges().ack.ack_delay_us), 4u);
    ASSERT_EQ(kdp::varint_size(cv.frames[2].stream_id), 4u);

    struct named_cut {
        const char* what;
        const test_packet* pkt;
        std::vector<std::size_t> cuts;
    };
    const std::vector<named_cut> cases = {
        {"inside the sequence number", &ext, {3}},
        {"inside the total-length varint", &ext, {11}},
        {"inside the packet checksum", &ext, {ev.header_length - 3}},
        {"inside a frame offset", &ext, {f0.header_pos + 4}},
        {"inside a frame's data-length varint", &ext, {f0.header_pos + 1 + 9 + 1}},
        {"inside a frame checksum", &ext, {f0.ext_pos - 4}},
        {"inside the uncompressed-length TLV's varint", &ext, {f0.ext_pos + 3}},
        {"between the two TLVs", &ext, {f0.ext_pos + 6}},
        {"inside the AEAD nonce", &ext, {f0.ext_pos + f0.nonce_pos + 5}},
        {"every byte of the extension area", &ext, {}},
        {"inside an ACK payload's varints", &ctl, {ack.data_pos + 3, ack.data_pos + 7}},
        {"after an ACK payload's type byte", &ctl, {ack.data_pos + 1}},
        {"inside a CONNECTION_CLOSE reason", &ctl, {close.data_pos + 10}},
        {"inside a control frame's 4-byte stream-id varint", &ctl, {cv.frames[2].header_pos + 2}},
    };
    for (const named_cut& c : cases) {
        std::vector<std::size_t> cuts = c.cuts;
        if (cuts.empty()) {
            for (std::size_t p = f0.ext_pos; p <= f0.data_pos; ++p) {
                cuts.push_back(p);
            }
        }
        SCOPED_TRACE(c.what);
        expect_chain_parses(*c.pkt, cuts);
    }
}

TEST(mbuf_parse, one_byte_segments) {
    for (const test_packet& pkt : packets()) {
        std::vector<std::size_t> cuts;
        for (std::size_t p = 1; p < pkt.bytes.size(); ++p) {
            cuts.push_back(p);
        }
        const mbuf_ptr m = make_chain(pkt.bytes, cuts);
        ASSERT_NE(m, nullptr);
        ASSERT_EQ(m->nb_segs, pkt.bytes.size()) << pkt.name; // the first holds the headers and byte 0
        EXPECT_TRUE(check_chain(pkt, m.get(), udp_payload_offset)) << pkt.name << ", 1-byte segments";
    }
}

TEST(mbuf_parse, random_splits_and_payload_offsets) {
    std::mt19937 rng(1234);
    for (const test_packet& pkt : packets()) {
        for (int round = 0; round < 300; ++round) {
            std::vector<std::size_t> cuts(1 + rng() % 12);
            for (auto& c : cuts) {
                c = rng() % (pkt.bytes.size() + 1);
            }
            std::sort(cuts.begin(), cuts.end());
            static constexpr std::array<std::uint32_t, 4> offsets = {0, 42, 46, 66}; // raw, IPv4, VLAN, IPv6+VLAN
            expect_chain_parses(pkt, cuts, offsets[static_cast<std::size_t>(round) % offsets.size()]);
            if (HasFailure()) {
                return;
            }
        }
    }
}

TEST(mbuf_parse, truncated_chain_gives_contiguous_verdict) {
    const test_packet& pkt = packets()[3]; // 24 frames
    for (std::size_t len = 0; len < pkt.bytes.size(); ++len) {
        const std::span<const std::uint8_t> prefix(pkt.bytes.data(), len);
        kdp::packet_view ref{};
        const kdp::drop_reason want = kdp::parse_packet(kdp::contiguous_bytes(prefix), ref);
        ASSERT_NE(want, kdp::drop_reason::none);
        const mbuf_ptr m = make_chain(prefix, {len / 3, len / 2});
        ASSERT_NE(m, nullptr);
        engine::mbuf_segment_array storage;
        kdp::packet_view v{};
        const std::optional<kdp::drop_reason> got = engine::parse_mbuf(m.get(), udp_payload_offset, storage, v);
        ASSERT_TRUE(got.has_value());
        EXPECT_EQ(*got, want) << "payload cut to " << len << " bytes";
    }
}

TEST(mbuf_parse, corrupt_byte_in_later_segment) {
    const test_packet& pkt = packets()[3]; // 24 frames
    kdp::packet_view ref{};
    ASSERT_EQ(kdp::parse_packet(kdp::contiguous_bytes(pkt.bytes), ref), kdp::drop_reason::none);
    const kdp::frame_view& last = ref.frames[ref.frame_count - 1];
    ASSERT_FALSE(last.is_control());
    ASSERT_GE(last.data_length, 2u);
    const std::vector<std::size_t> cuts = {pkt.bytes.size() / 4, pkt.bytes.size() / 2, last.data_pos};

    // A data byte of the last frame, in the last segment: only that frame's CRC fails.
    {
        const mbuf_ptr m = make_chain(pkt.bytes, cuts);
        ASSERT_NE(m, nullptr);
        rte_mbuf* tail = rte_pktmbuf_lastseg(m.get());
        ASSERT_NE(tail, m.get());
        ASSERT_EQ(tail->data_len, pkt.bytes.size() - last.data_pos);
        rte_pktmbuf_mtod(tail, std::uint8_t*)[1] ^= 0x01;

        std::vector<kdp::segment> storage(m->nb_segs);
        kdp::packet_view v{};
        EXPECT_EQ(engine::parse_mbuf(m.get(), udp_payload_offset, storage, v), kdp::drop_reason::bad_frame_checksum);
        kdp::packet_view iv{};
        EXPECT_EQ(engine::parse_mbuf<kdp::parse_mode::inspect>(m.get(), udp_payload_offset, storage, iv),
                  kdp::drop_reason::bad_frame_checksum);
        EXPECT_TRUE(iv.checksum_ok);
        for (std::size_t i = 0; i < iv.frame_count; ++i) {
            EXPECT_EQ(iv.frames[i].checksum_ok, i + 1 != iv.frame_count) << "frame " << i;
        }
    }
    // A frame-header byte (the low byte of the last frame's offset) in a later segment: the
    // packet CRC, which covers frame headers, fails.
    {
        const mbuf_ptr m = make_chain(pkt.bytes, cuts);
        ASSERT_NE(m, nullptr);
        const std::size_t pos = last.header_pos + kdp::varint_size(last.stream_id) + 7;
        ASSERT_GT(pos, pkt.bytes.size() / 2);
        const rte_mbuf* seg = m.get();
        std::size_t at = pos + udp_payload_offset;
        while (at >= seg->data_len) {
            at -= seg->data_len;
            seg = seg->next;
        }
        ASSERT_NE(seg, m.get());
        rte_pktmbuf_mtod(seg, std::uint8_t*)[at] ^= 0x01;
        std::vector<kdp::segment> storage(m->nb_segs);
        kdp::packet_view v{};
        EXPECT_EQ(engine::parse_mbuf(m.get(), udp_payload_offset, storage, v), kdp::drop_reason::bad_packet_checksum);
    }
}

TEST(mbuf_parse, adapter_segment_limit) {
    const test_packet& pkt = packets()[0];
    engine::mbuf_segment_array storage;
    auto cuts_for = [&](std::size_t segments) {
        std::vector<std::size_t> cuts;
        for (std::size_t i = 1; i < segments; ++i) {
            cuts.push_back(i * 10);
        }
        return cuts;
    };
    {
        const mbuf_ptr m = make_chain(pkt.bytes, cuts_for(engine::max_mbuf_segments));
        ASSERT_NE(m, nullptr);
        ASSERT_EQ(m->nb_segs, engine::max_mbuf_segments);
        const std::optional<std::size_t> n = engine::mbuf_segments(m.get(), udp_payload_offset, storage);
        ASSERT_TRUE(n.has_value());
        EXPECT_EQ(*n, engine::max_mbuf_segments);
        EXPECT_EQ(storage[0].len, 10u);
        EXPECT_EQ(storage[0].data, rte_pktmbuf_mtod_offset(m.get(), const std::uint8_t*, udp_payload_offset));
        kdp::packet_view v{};
        EXPECT_EQ(engine::parse_mbuf(m.get(), udp_payload_offset, storage, v), kdp::drop_reason::none);
    }
    {
        const mbuf_ptr m = make_chain(pkt.bytes, cuts_for(engine::max_mbuf_segments + 1));
        ASSERT_NE(m, nullptr);
        EXPECT_FALSE(engine::mbuf_segments(m.get(), udp_payload_offset, storage).has_value());
        EXPECT_FALSE(engine::mbuf_chained_bytes(m.get(), udp_payload_offset, storage).has_value());
        kdp::packet_view v{};
        EXPECT_FALSE(engine::parse_mbuf(m.get(), udp_payload_offset, storage, v).has_value());
    }
    // Empty segments take no slot: 16 non-empty ones among 4 empty ones still fit.
    {
        std::vector<std::size_t> cuts = cuts_for(engine::max_mbuf_segments);
        cuts.insert(cuts.begin() + 3, cuts[2]);
        cuts.insert(cuts.begin() + 8, cuts[7]);
        cuts.push_back(pkt.bytes.size());
        cuts.push_back(pkt.bytes.size());
        const mbuf_ptr m = make_chain(pkt.bytes, cuts);
        ASSERT_NE(m, nullptr);
        ASSERT_EQ(m->nb_segs, engine::max_mbuf_segments + 4);
        const std::optional<std::size_t> n = engine::mbuf_segments(m.get(), udp_payload_offset, storage);
        ASSERT_TRUE(n.has_value());
        EXPECT_EQ(*n, engine::max_mbuf_segments);
        EXPECT_TRUE(check_chain(pkt, m.get(), udp_payload_offset));
    }
}

TEST(mbuf_parse, payload_offset_at_and_past_first_segment_end) {
    const test_packet& pkt = packets()[0];
    // The first segment holds only the headers: the payload starts in the second.
    {
        const mbuf_ptr m = make_chain(pkt.bytes, {0});
        ASSERT_NE(m, nullptr);
        ASSERT_EQ(m->data_len, udp_payload_offset);
        EXPECT_TRUE(check_chain(pkt, m.get(), udp_payload_offset));
    }
    // An offset past the first segment is refused, not read out of bounds.
    {
        const mbuf_ptr m = make_chain(pkt.bytes, {0});
        ASSERT_NE(m, nullptr);
        engine::mbuf_segment_array storage;
        kdp::packet_view v{};
        EXPECT_FALSE(engine::parse_mbuf(m.get(), udp_payload_offset + 1, storage, v).has_value());
        const mbuf_ptr single = make_chain(pkt.bytes, {});
        ASSERT_NE(single, nullptr);
        EXPECT_FALSE(engine::parse_mbuf(single.get(), single->data_len + 1, storage, v).has_value());
        EXPECT_EQ(engine::parse_mbuf(single.get(), single->data_len, storage, v), kdp::drop_reason::packet_too_short);
    }
}

} // namespace

int main(int argc, char** argv) {
    ::testing::InitGoogleTest(&argc, argv);
    ::testing::AddGlobalTestEnvironment(new eal_environment); // gtest owns it
    return RUN_ALL_TESTS();
}
