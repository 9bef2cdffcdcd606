// Cost of the KDP path packet codec per packet: parse_packet<verify> over one contiguous buffer
// and over a 2-segment chain (an mbuf chain split in the middle), and serialize_packet, at one
// frame per packet (64 B to 9000 B of payload) and several frames per packet. Each benchmark
// cycles through a burst of 32 distinct pre-built packets, as the data plane sees a burst.
// Names: <op>/<source>/<payload>B_x<frames>, the payload split evenly over the frames.
// Single-threaded. BENCHMARK_MAIN is in crc32c_bench.cpp (same executable).
#include <benchmark/benchmark.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <random>
#include <span>
#include <string>
#include <vector>

#include "dataplane/kdp/bytes.hpp"
#include "dataplane/kdp/crc32c.hpp"
#include "dataplane/kdp/packet.hpp"

namespace {

using namespace kwik::kdp;

constexpr std::size_t burst = 32;

struct shape {
    std::size_t payload; // bytes of frame data in the packet, over all frames
    std::size_t frames;
};

// One packet's description with the storage its spans point into.
struct described_packet {
    std::vector<std::uint8_t> data;
    std::vector<frame_desc> frames;
    packet_desc desc;
};

// A burst of distinct descriptions: different sequence numbers, streams, offsets and bytes,
// the same shape (so every packet has the same wire size).
std::vector<described_packet> make_descriptions(shape s) {
    std::mt19937_64 rng(s.payload * 131 + s.frames);
    std::vector<described_packet> out(burst);
    const std::size_t per_frame = s.payload / s.frames;
    for (std::size_t i = 0; i < burst; ++i) {
        described_packet& p = out[i];
        p.data.resize(per_frame * s.frames);
        for (auto& b : p.data) {
            b = static_cast<std::uint8_t>(rng());
        }
        for (std::size_t f = 0; f < s.frames; ++f) {
            frame_desc fd;
            fd.stream_id = 4 + 4 * (i % 8) + f % 4; // a 1-byte varint
            fd.offset = (std::uint64_t{1} << 20) * i + per_frame * f;
            fd.flags = frame_flag::ordered;
            fd.data = {p.data.data() + per_frame * f, per_frame};
            p.frames.push_back(fd);
        }
        p.desc = {1000000 + i, packet_type::data, compression::none, p.frames};
    }
    return out;
}

// The 32 packets of a burst packed one after another as a mempool lays out mbuf data rooms: each
// slot starts on a cache line, the payload begins after 128 bytes of headroom and 42 bytes of
// Ethernet/IPv4/UDP headers, so the payload starts 42 bytes past a cache line as it does in an mbuf.
class burst_arena {
public:
    static constexpr std::size_t payload_offset = 128 + 42;

    explicit burst_arena(std::size_t payload_size)
        : _stride((payload_offset + payload_size + 63) / 64 * 64), _bytes(burst * _stride + 64) {}

    std::uint8_t* payload(std::size_t i) noexcept {
        return align64(_bytes.data()) + i * _stride + payload_offset;
    }

private:
    static std::uint8_t* align64(std::uint8_t* p) noexcept {
        return p + (64 - reinterpret_cast<std::uintptr_t>(p) % 64) % 64;
    }
    std::size_t _stride;
    std::vector<std::uint8_t> _bytes;
};

// The serialised burst, contiguous and split into two segments in separate arenas.
struct wire_burst {
    std::size_t size = 0; // of every packet
    std::size_t cut = 0;  // bytes in the first segment
    std::unique_ptr<burst_arena> flat;
    std::unique_ptr<burst_arena> first;
    std::unique_ptr<burst_arena> second;
    std::array<std::array<segment, 2>, burst> segments{};
};

wire_burst make_wire(shape s) {
    const std::vector<described_packet> descs = make_descriptions(s);
    wire_burst w;
    w.size = packet_wire_size(descs[0].desc);
    // An mbuf chain's split falls anywhere; the middle puts it inside frame data here.
    w.cut = w.size / 2;
    w.flat = std::make_unique<burst_arena>(w.size);
    w.first = std::make_unique<burst_arena>(w.cut);
    w.second = std::make_unique<burst_arena>(w.size - w.cut);
    for (std::size_t i = 0; i < burst; ++i) {
        std::uint8_t* pkt = w.flat->payload(i);
        const write_result r = serialize_packet(descs[i].desc, std::span<std::uint8_t>(pkt, w.size));
        if (r.size != w.size) {
            std::fprintf(stderr, "codec_bench: cannot build %zu B x%zu: %s\n", s.payload, s.frames,
                         std::string(to_string(r.invalid)).c_str());
            std::abort();
        }
        std::memcpy(w.first->payload(i), pkt, w.cut);
        std::memcpy(w.second->payload(i), pkt + w.cut, w.size - w.cut);
        w.segments[i] = {segment{w.first->payload(i), static_cast<std::uint32_t>(w.cut)},
                         segment{w.second->payload(i), static_cast<std::uint32_t>(w.size - w.cut)}};
    }
    return w;
}

void set_counters(benchmark::State& state, std::size_t packet_size) {
    state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
    state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations()) * static_cast<std::int64_t>(packet_size));
    state.counters["packet_bytes"] = static_cast<double>(packet_size);
}

void bm_parse_contiguous(benchmark::State& state, shape s) {
    const wire_burst w = make_wire(s);
    packet_view view;
    std::size_t i = 0;
    for (auto _ : state) {
        drop_reason r = parse_packet<parse_mode::verify>(contiguous_bytes(w.flat->payload(i), w.size), view);
        benchmark::DoNotOptimize(r);
        benchmark::DoNotOptimize(view);
        i = (i + 1) % burst;
    }
    packet_view check;
    if (parse_packet<parse_mode::verify>(contiguous_bytes(w.flat->payload(0), w.size), check) != drop_reason::none) {
        state.SkipWithError("packet rejected");
    }
    set_counters(state, w.size);
}

void bm_parse_chained2(benchmark::State& state, shape s) {
    const wire_burst w = make_wire(s);
    packet_view view;
    std::size_t i = 0;
    for (auto _ : state) {
        const chained_bytes bytes(w.segments[i]);
        drop_reason r = parse_packet<parse_mode::verify>(bytes, view);
        benchmark::DoNotOptimize(r);
        benchmark::DoNotOptimize(view);
        i = (i + 1) % burst;
    }
    packet_view check;
    if (parse_packet<parse_mode::verify>(chained_bytes(w.segments[0]), check) != drop_reason::none) {
        state.SkipWithError("packet rejected");
    }
    set_counters(state, w.size);
}

// precomputed_crc: the frames carry their data's CRC32C (kept with the send buffer, as on
// retransmission), so only the packet CRC over the headers is computed.
void bm_serialize(benchmark::State& state, shape s, bool precomputed_crc) {
    std::vector<described_packet> descs = make_descriptions(s);
    if (precomputed_crc) {
        for (described_packet& p : descs) {
            for (frame_desc& f : p.frames) {
                f.has_checksum = true;
                f.checksum = crc32c(f.data.data(), f.data.size());
            }
        }
    }
    const std::size_t wire_size = packet_wire_size(descs[0].desc);
    burst_arena out(wire_size);
    std::size_t size = 0;
    std::size_t i = 0;
    for (auto _ : state) {
        write_result r = serialize_packet(descs[i].desc, std::span<std::uint8_t>(out.payload(i), wire_size));
        benchmark::DoNotOptimize(r);
        benchmark::ClobberMemory();
        size = r.size;
        i = (i + 1) % burst;
    }
    if (size == 0) {
        state.SkipWithError("serialize_packet failed");
    }
    set_counters(state, size);
}

constexpr std::array<shape, 8> shapes = {{
    {64, 1},
    {512, 1},
    {1400, 1},
    {9000, 1},
    {1400, 4},  // 4 x 350 B
    {1400, 16}, // 16 x 87 B
    {9000, 4},  // 4 x 2250 B
    {9000, 16}, // 16 x 562 B
}};

std::string name(const char* op, shape s) {
    return std::string(op) + "/" + std::to_string(s.payload) + "B_x" + std::to_string(s.frames);
}

[[maybe_unused]] const bool registered = [] {
    for (const shape s : shapes) {
        benchmark::RegisterBenchmark(name("parse_verify/contiguous", s).c_str(), bm_parse_contiguous, s);
    }
    for (const shape s : shapes) {
        benchmark::RegisterBenchmark(name("parse_verify/chained2", s).c_str(), bm_parse_chained2, s);
    }
    for (const shape s : shapes) {
        benchmark::RegisterBenchmark(name("serialize", s).c_str(), bm_serialize, s, false);
    }
    for (const shape s : shapes) {
        benchmark::RegisterBenchmark(name("serialize/precomputed_crc", s).c_str(), bm_serialize, s, true);
    }
    return true;
}();

} // namespace
