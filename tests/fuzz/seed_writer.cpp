// Writes the hand-made seed corpus for packet_fuzz: valid KDP path packets of every packet type,
// serialised with the codec (control frames of every type, COMPRESSED and ENCRYPTED frames,
// one to many frames, varints of every width), one file per packet.
// Usage: kdp_fuzz_seed_writer DIR. Exits non-zero if the codec rejects a packet it should accept.
#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "dataplane/kdp/control.hpp"
#include "dataplane/kdp/crc32c.hpp"
#include "dataplane/kdp/packet.hpp"
#include "dataplane/kdp/wire.hpp"

namespace {

using namespace kwik::kdp;

constexpr int packets_per_type = 20;

// Values at the edges of each varint width.
constexpr std::array<std::uint64_t, 9> varint_edges = {
    1, 63, 64, 16383, 16384, (1ull << 30) - 1, 1ull << 30, varint_max - 1, varint_max};

// Owns the frame data for one packet (frame_desc holds spans).
struct packet_builder {
    std::vector<std::vector<std::uint8_t>> buffers;
    std::vector<frame_desc> frames;
    std::size_t body = 0;

    std::span<const std::uint8_t> keep(std::vector<std::uint8_t> bytes) {
        buffers.push_back(std::move(bytes));
        return buffers.back();
    }
};

class generator {
public:
    explicit generator(std::uint32_t seed) : _rng(seed) {}

    std::uint64_t below(std::uint64_t n) { return std::uniform_int_distribution<std::uint64_t>(0, n - 1)(_rng); }
    bool coin() { return below(2) == 1; }

    std::vector<std::uint8_t> bytes(std::size_t n) {
        std::vector<std::uint8_t> out(n);
        for (auto& b : out) {
            b = static_cast<std::uint8_t>(below(256));
        }
        return out;
    }

    std::uint64_t stream_id() { return coin() ? 1 + below(60) : varint_edges[below(varint_edges.size())]; }

    std::size_t data_size(std::size_t budget) {
        static constexpr std::array<std::size_t, 10> sizes = {1, 2, 16, 17, 63, 64, 200, 1000, 1400, 4000};
        std::size_t n = sizes[below(sizes.size())];
        return n < budget ? n : budget;
    }

    frame_desc stream_frame(packet_builder& b, packet_type t, compression comp, std::size_t budget) {
        frame_desc f;
        f.stream_id = stream_id();
        if (t == packet_type::priority) {
            f.prio = coin() ? priority::high : priority::critical;
        } else {
            static constexpr std::array<priority, 3> prios = {priority::normal, priority::high, priority::critical};
            f.prio = prios[below(prios.size())];
        }
        if (f.prio != priority::normal) {
            f.flags |= frame_flag::priority;
        }
        if (t == packet_type::retransmission || below(4) == 0) {
            f.flags |= frame_flag::retransmit;
        }
        if (coin()) {
            f.flags |= frame_flag::ordered;
        }
        const bool compressed = comp == compression::deflate && coin();
        const bool encrypted = below(3) == 0;
        std::size_t n = data_size(budget);
        if (encrypted) {
            f.flags |= frame_flag::encrypted;
            // The tag, plus at least one byte of compressed data when the frame is compressed.
            const std::size_t min_n = aead_tag_len + (compressed ? 1 : 0);
            n = n < min_n ? min_n : n;
            f.key_phase = static_cast<std::uint8_t>(below(2));
            const std::vector<std::uint8_t> nonce = bytes(aead_nonce_len);
            std::copy(nonce.begin(), nonce.end(), f.nonce.begin());
        }
        if (compressed) {
            f.flags |= frame_flag::compressed;
            // Varint width edges (1, 2 and 4 bytes) that stay within max_uncompressed_length.
            static constexpr std::uint64_t ul_edges[] = {1, 63, 64, 16383, 16384};
            f.uncompressed_length = coin() ? std::min<std::uint64_t>(n * 3, max_uncompressed_length) : ul_edges[below(5)];
        }
        // An empty FIN frame now and then.
        if (!compressed && !encrypted && below(8) == 0) {
            n = 0;
            f.flags |= frame_flag::fin;
        } else if (coin()) {
            f.flags |= frame_flag::fin;
        }
        const std::uint64_t len = compressed ? f.uncompressed_length : encrypted ? n - aead_tag_len : n;
        if (len == 0) {
            f.flags |= frame_flag::fin; // only a FIN frame may cover no stream bytes
        }
        f.offset = coin() ? below(1u << 20) : max_stream_offset - len - below(2);
        f.data = b.keep(bytes(n));
        return f;
    }

    control_frame control(control_type t) {
        control_frame c;
        c.type = t;
        switch (t) {
        case control_type::ack: {
            c.ack.path_id = below(4);
            c.ack.ack_delay_us = varint_edges[below(varint_edges.size() - 1)] / 1024;
            c.ack.ecn_ce = below(3);
            c.ack.range_count = 1 + below(coin() ? 4 : max_ack_ranges + 1);
            // Ranges near packet number 0 (where a gap can run below it), in the middle, at 2^62.
            const std::uint64_t r = below(3);
            std::uint64_t top = r == 0 ? 4 * c.ack.range_count : r == 1 ? 100000 + below(1000) : varint_max;
            for (std::size_t i = 0; i < c.ack.range_count; ++i) {
                const std::uint64_t len = std::min<std::uint64_t>(below(5), top);
                c.ack.ranges[i] = {top, top - len};
                const std::uint64_t gap = below(3);
                // The next range ends gap + 2 below this one's smallest: stop at packet number 0.
                if (i + 1 < c.ack.range_count && c.ack.ranges[i].smallest < gap + 2) {
                    c.ack.range_count = i + 1;
                    break;
                }
                top = c.ack.ranges[i].smallest - gap - 2;
            }
            break;
        }
        case control_type::max_data:
        case control_type::data_blocked:
            c.limit = varint_edges[below(varint_edges.size())];
            break;
        case control_type::max_stream_data:
        case control_type::stream_data_blocked:
            c.stream_id = stream_id();
            c.limit = below(1u << 30);
            break;
        case control_type::reset_stream:
            c.stream_id = stream_id();
            c.limit = below(1u << 20);
            c.error_code = varint_edges[below(varint_edges.size())];
            break;
        case control_type::path_challenge:
        case control_type::path_response:
            for (auto& b : c.challenge) {
                b = static_cast<std::uint8_t>(below(256));
            }
            break;
        case control_type::connection_close: {
            static constexpr char reason[] = "idle timeout";
            c.error_code = below(300);
            c.reason = {reinterpret_cast<const std::uint8_t*>(reason), below(sizeof reason)};
            break;
        }
        }
        return c;
    }

    frame_desc control_frame_desc(packet_builder& b, control_type t) {
        const control_frame c = control(t);
        std::vector<std::uint8_t> payload(max_control_payload);
        const std::size_t n = encode_control(c, payload);
        if (n == 0) {
            std::fprintf(stderr, "seed_writer: encode_control failed for type %u\n", static_cast<unsigned>(t));
            std::exit(1);
        }
        payload.resize(n);
        frame_desc f;
        f.prio = priority::control;
        f.stream_id = control_stream_id(c);
        f.offset = control_offset(c);
        f.data = b.keep(std::move(payload));
        return f;
    }

    control_type control_type_for(packet_type t) {
        if (t == packet_type::ack) {
            return control_type::ack;
        }
        if (t == packet_type::keepalive) {
            return coin() ? control_type::path_challenge : control_type::path_response;
        }
        return static_cast<control_type>(1 + below(control_type_max));
    }

    void fill(packet_builder& b, packet_type t, compression comp, std::size_t frame_count) {
        const bool stream_frames_allowed =
            t == packet_type::data || t == packet_type::priority || t == packet_type::retransmission;
        for (std::size_t i = 0; i < frame_count; ++i) {
            const std::size_t budget = (max_packet_size - 64) / frame_count - 64;
            if (stream_frames_allowed && below(4) != 0) {
                b.frames.push_back(stream_frame(b, t, comp, budget));
            } else {
                b.frames.push_back(control_frame_desc(b, control_type_for(t)));
            }
        }
    }

private:
    std::mt19937_64 _rng;
};

bool write_file(const std::string& path, const std::uint8_t* p, std::size_t n) {
    std::FILE* f = std::fopen(path.c_str(), "wb");
    if (f == nullptr) {
        std::perror(path.c_str());
        return false;
    }
    const bool ok = std::fwrite(p, 1, n, f) == n;
    return std::fclose(f) == 0 && ok;
}

void put_varint(std::vector<std::uint8_t>& out, std::uint64_t v) {
    std::uint8_t buf[8];
    out.insert(out.end(), buf, buf + varint_write(buf, v));
}

// Re-emits an accepted packet with an unknown extension TLV in every stream frame, which a
// receiver skips and the serialiser never writes: type 0 before the known TLVs or a type above
// them after, as the ascending-type rule requires. Empty when the packet has no stream frame.
std::vector<std::uint8_t> with_unknown_extensions(const std::uint8_t* in, const packet_view& v, bool low_type) {
    std::vector<std::uint8_t> body;
    std::vector<std::pair<std::size_t, std::size_t>> covered; // frame header + extensions, in body
    bool added = false;
    for (const frame_view& f : v.frame_span()) {
        const std::size_t start = body.size();
        body.insert(body.end(), in + f.header_pos, in + f.ext_pos - varint_size(f.ext_length));
        std::vector<std::uint8_t> ext(in + f.ext_pos, in + f.data_pos);
        if (!f.is_control()) {
            std::vector<std::uint8_t> tlv;
            put_varint(tlv, low_type ? 0 : 0x4000);
            put_varint(tlv, 3);
            tlv.insert(tlv.end(), {0xAA, 0xBB, 0xCC});
            ext.insert(low_type ? ext.begin() : ext.end(), tlv.begin(), tlv.end());
            added = true;
        }
        put_varint(body, ext.size());
        body.insert(body.end(), ext.begin(), ext.end());
        covered.emplace_back(start, body.size() - start);
        body.insert(body.end(), in + f.data_pos, in + f.data_pos + f.data_length);
    }
    if (!added) {
        return {};
    }
    std::vector<std::uint8_t> out(in, in + 9); // seq, type
    put_varint(out, v.frame_count);
    put_varint(out, body.size());
    const std::size_t checksum_pos = out.size();
    out.insert(out.end(), {0, 0, 0, 0, v.compression});
    const std::size_t header_length = out.size();
    out.insert(out.end(), body.begin(), body.end());
    std::uint32_t crc = crc32c(out.data(), header_length, 0);
    for (const auto& [pos, len] : covered) {
        crc = crc32c(out.data() + header_length + pos, len, crc);
    }
    for (int i = 0; i < 4; ++i) {
        out[checksum_pos + static_cast<std::size_t>(i)] = static_cast<std::uint8_t>(crc >> (24 - 8 * i));
    }
    return out;
}

bool accepted(const std::string& name, const std::uint8_t* p, std::size_t n, packet_view& v) {
    const drop_reason r = parse_packet<parse_mode::verify>(contiguous_bytes(p, n), v);
    if (r != drop_reason::none) {
        std::fprintf(stderr, "seed_writer: %s: codec rejects it: %s\n", name.c_str(), std::string(to_string(r)).c_str());
        return false;
    }
    return true;
}

// Serialises, checks the codec accepts its own output, writes DIR/NAME.bin; for some packets
// also DIR/NAME_unknown_ext.bin. Returns the files written, -1 on failure.
int emit(const std::string& dir, const std::string& name, const packet_desc& p, bool unknown_ext) {
    static std::array<std::uint8_t, max_packet_size> out;
    const write_result w = serialize_packet(p, out);
    if (!w.ok()) {
        std::fprintf(stderr, "seed_writer: %s: serialize_packet failed: %s\n", name.c_str(),
                     std::string(to_string(w.invalid)).c_str());
        return -1;
    }
    packet_view v{};
    if (!accepted(name, out.data(), w.size, v) || !write_file(dir + "/" + name + ".bin", out.data(), w.size)) {
        return -1;
    }
    if (!unknown_ext) {
        return 1;
    }
    const std::vector<std::uint8_t> extended = with_unknown_extensions(out.data(), v, p.seq % 2 == 0);
    if (extended.empty()) {
        return 1;
    }
    const std::string ext_name = name + "_unknown_ext";
    packet_view ev{};
    if (!accepted(ext_name, extended.data(), extended.size(), ev) ||
        !write_file(dir + "/" + ext_name + ".bin", extended.data(), extended.size())) {
        return -1;
    }
    return 2;
}

} // namespace

int main(int argc, char** argv) {
    if (argc != 2) {
        std::fprintf(stderr, "usage: %s DIR\n", argv[0]);
        return 2;
    }
    const std::string dir = argv[1];
    static constexpr std::array<const char*, 6> type_names = {"data", "control", "ack", "keepalive", "priority",
                                                              "retransmission"};
    generator gen(20240611);
    int written = 0;
    for (std::uint8_t t = 0; t <= packet_type_max; ++t) {
        for (int i = 0; i < packets_per_type; ++i) {
            packet_builder b;
            const auto type = static_cast<packet_type>(t);
            const compression comp = gen.coin() ? compression::deflate : compression::none;
            // One frame, a few, or many (up to the per-packet maximum).
            const std::size_t frames = i < 6 ? 1 : i < 16 ? 2 + gen.below(6) : 8 + gen.below(max_frames_per_packet - 7);
            gen.fill(b, type, comp, frames);
            const packet_desc p{(i % 3 == 0) ? gen.below(1u << 16) : varint_max - gen.below(1u << 20), type, comp,
                                b.frames};
            const int n = emit(dir, std::string(type_names[t]) + "_" + std::to_string(i), p, i % 4 == 1);
            if (n < 0) {
                return 1;
            }
            written += n;
        }
    }
    // The size limit from both sides: a packet of exactly max_packet_size bytes, and the same
    // bytes with one more appended (rejected as too large before anything else is read).
    {
        const std::vector<std::uint8_t> filler = gen.bytes(max_packet_size);
        frame_desc f;
        f.stream_id = 1;
        f.flags = frame_flag::fin;
        const packet_desc probe{1, packet_type::data, compression::none, std::span<const frame_desc>(&f, 1)};
        for (std::size_t n = max_packet_size; n > 0; --n) {
            f.data = {filler.data(), n};
            if (packet_wire_size(probe) <= max_packet_size) {
                break;
            }
        }
        if (packet_wire_size(probe) != max_packet_size) {
            std::fprintf(stderr, "seed_writer: no one-frame packet of exactly %zu bytes\n", max_packet_size);
            return 1;
        }
        if (emit(dir, "max_size", probe, false) < 0) {
            return 1;
        }
        std::array<std::uint8_t, max_packet_size + 1> over{};
        const write_result w = serialize_packet(probe, over);
        over[max_packet_size] = 0;
        packet_view v{};
        if (!w.ok() || parse_packet(contiguous_bytes(over.data(), over.size()), v) != drop_reason::packet_too_large ||
            !write_file(dir + "/too_large.bin", over.data(), over.size())) {
            std::fprintf(stderr, "seed_writer: too_large seed failed\n");
            return 1;
        }
        written += 2;
    }
    std::printf("seed_writer: %d packets in %s\n", written, dir.c_str());
    return 0;
}
