// Path packets: random valid packets of every type survive serialise -> parse (contiguous and
// chained) field for field and re-serialise to the same bytes; serialiser refusals; inspect mode.
#include <gtest/gtest.h>

#include <array>
#include <random>
#include <vector>

#include "dataplane/kdp/packet.hpp"

namespace kwik::kdp {
namespace {

using bytes = std::vector<std::uint8_t>;

// A random valid packet description, with storage for its payloads.
struct random_packet {
    packet_desc desc;
    std::vector<frame_desc> frames;
    std::vector<bytes> payloads;
    std::vector<control_frame> controls;
};

control_type random_control(std::mt19937_64& rng, packet_type t) {
    if (t == packet_type::ack) {
        return control_type::ack;
    }
    if (t == packet_type::keepalive) {
        return rng() % 2 ? control_type::path_challenge : control_type::path_response;
    }
    return static_cast<control_type>(1 + rng() % control_type_max);
}

control_frame make_control(std::mt19937_64& rng, control_type type, std::string& reason_storage) {
    control_frame c;
    c.type = type;
    c.stream_id = 1 + rng() % 1000;
    c.limit = rng() % (max_stream_offset + 1);
    c.error_code = rng() % 100000;
    for (auto& b : c.challenge) {
        b = static_cast<std::uint8_t>(rng());
    }
    reason_storage = "reason " + std::to_string(rng() % 1000);
    c.reason = {reinterpret_cast<const std::uint8_t*>(reason_storage.data()), reason_storage.size()};
    ack_frame& a = c.ack;
    a.path_id = rng() % 16;
    a.ack_delay_us = rng() % 100000;
    a.ecn_ce = rng() % 10;
    a.range_count = 1 + rng() % (max_ack_ranges + 1);
    std::uint64_t hi = 100000 + rng() % (std::uint64_t{1} << 40);
    for (std::size_t i = 0; i < a.range_count; ++i) {
        const std::uint64_t len = rng() % 50;
        a.ranges[i] = {hi, hi - len};
        hi = hi - len - 2 - rng() % 20;
    }
    return c;
}

random_packet make_random(std::mt19937_64& rng, std::vector<std::string>& reasons) {
    static constexpr packet_type types[] = {packet_type::data,      packet_type::control,
                                            packet_type::ack,       packet_type::keepalive,
                                            packet_type::priority,  packet_type::retransmission};
    random_packet p;
    p.desc.seq = rng() >> 2;
    p.desc.type = types[rng() % 6];
    p.desc.comp = rng() % 2 ? compression::deflate : compression::none;
    const bool stream_frames_allowed = p.desc.type == packet_type::data ||
                                       p.desc.type == packet_type::priority ||
                                       p.desc.type == packet_type::retransmission;
    const std::size_t n = 1 + rng() % 8;
    p.payloads.reserve(n);
    p.controls.reserve(n);
    reasons.reserve(reasons.size() + n);
    for (std::size_t i = 0; i < n; ++i) {
        frame_desc f;
        if (stream_frames_allowed && rng() % 4 != 0) {
            f.stream_id = 1 + (rng() >> (2 + rng() % 60));
            std::size_t len = rng() % 1200;
            f.flags = static_cast<std::uint8_t>(rng() % 2 ? frame_flag::ordered : 0);
            if (p.desc.type == packet_type::priority) {
                f.prio = rng() % 2 ? priority::high : priority::critical;
            } else {
                f.prio = static_cast<priority>(rng() % 3);
            }
            if (f.prio != priority::normal) {
                f.flags |= frame_flag::priority;
            }
            if (p.desc.type == packet_type::retransmission || rng() % 5 == 0) {
                f.flags |= frame_flag::retransmit;
            }
            if (p.desc.comp == compression::deflate && rng() % 3 == 0) {
                f.flags |= frame_flag::compressed;
                f.uncompressed_length = 1 + rng() % max_uncompressed_length;
                len = 1 + len;
            }
            if (rng() % 5 == 0) {
                f.flags |= frame_flag::encrypted;
                f.key_phase = static_cast<std::uint8_t>(rng());
                for (auto& b : f.nonce) {
                    b = static_cast<std::uint8_t>(rng());
                }
                len += aead_tag_len;
            }
            std::uint64_t stream_len = len;
            if (f.flags & frame_flag::compressed) {
                stream_len = f.uncompressed_length;
            } else if (f.flags & frame_flag::encrypted) {
                stream_len = len - aead_tag_len;
            }
            if (stream_len == 0 || rng() % 4 == 0) {
                f.flags |= frame_flag::fin;
            }
            f.offset = rng() % (max_stream_offset - stream_len + 1);
            bytes data(len);
            for (auto& b : data) {
                b = static_cast<std::uint8_t>(rng());
            }
            p.payloads.push_back(std::move(data));
            f.data = p.payloads.back();
        } else {
            reasons.emplace_back();
            p.controls.push_back(make_control(rng, random_control(rng, p.desc.type), reasons.back()));
            const control_frame& c = p.controls.back();
            bytes payload(max_control_payload);
            const std::size_t len = encode_control(c, payload);
            EXPECT_GT(len, 0u);
            payload.resize(len);
            p.payloads.push_back(std::move(payload));
            f.prio = priority::control;
            f.stream_id = control_stream_id(c);
            f.offset = control_offset(c);
            f.data = p.payloads.back();
        }
        p.frames.push_back(f);
    }
    p.desc.frames = p.frames;
    return p;
}

void expect_matches(const packet_view& v, const random_packet& p, const bytes& wire) {
    ASSERT_EQ(v.seq, p.desc.seq);
    ASSERT_EQ(v.type, static_cast<std::uint8_t>(p.desc.type));
    ASSERT_EQ(v.compression, static_cast<std::uint8_t>(p.desc.comp));
    ASSERT_EQ(v.frame_count, p.frames.size());
    ASSERT_TRUE(v.checksum_ok);
    for (std::size_t i = 0; i < p.frames.size(); ++i) {
        const frame_view& fv = v.frames[i];
        const frame_desc& fd = p.frames[i];
        ASSERT_EQ(fv.stream_id, fd.stream_id);
        ASSERT_EQ(fv.offset, fd.offset);
        ASSERT_EQ(fv.flags, fd.flags);
        ASSERT_EQ(fv.priority, static_cast<std::uint8_t>(fd.prio));
        ASSERT_EQ(fv.data_length, fd.data.size());
        ASSERT_TRUE(fv.checksum_ok);
        ASSERT_TRUE(std::equal(fd.data.begin(), fd.data.end(), wire.begin() + fv.data_pos));
        if (fd.flags & frame_flag::compressed) {
            ASSERT_EQ(fv.stream_length, fd.uncompressed_length);
        }
        if (fd.flags & frame_flag::encrypted) {
            ASSERT_EQ(fv.key_phase, fd.key_phase);
            ASSERT_TRUE(std::equal(fd.nonce.begin(), fd.nonce.end(),
                                   wire.begin() + fv.ext_pos + fv.nonce_pos));
        }
        if (fv.is_control()) {
            ASSERT_EQ(fv.control, fd.data[0]);
        }
    }
}

// Rebuilds a description from a parsed view: parse -> serialise must be the identity.
bytes reserialize(const packet_view& v, const bytes& wire) {
    std::vector<frame_desc> frames;
    for (const frame_view& fv : v.frame_span()) {
        frame_desc f;
        f.stream_id = fv.stream_id;
        f.offset = fv.offset;
        f.flags = fv.flags;
        f.prio = static_cast<priority>(fv.priority);
        f.data = {wire.data() + fv.data_pos, fv.data_length};
        f.uncompressed_length = fv.stream_length;
        f.key_phase = fv.key_phase;
        if (fv.flags & frame_flag::encrypted) {
            std::copy_n(wire.begin() + fv.ext_pos + fv.nonce_pos, aead_nonce_len, f.nonce.begin());
        }
        frames.push_back(f);
    }
    packet_desc d{v.seq, static_cast<packet_type>(v.type), static_cast<compression>(v.compression), frames};
    bytes out(max_packet_size);
    const write_result r = serialize_packet(d, out);
    out.resize(r.size);
    return out;
}

TEST(packet, random_round_trips_every_type) {
    std::mt19937_64 rng(20261121);
    bytes wire(max_packet_size);
    for (int iter = 0; iter < 3000; ++iter) {
        std::vector<std::string> reasons;
        const random_packet p = make_random(rng, reasons);
        const write_result w = serialize_packet(p.desc, wire);
        ASSERT_TRUE(w.ok()) << "iteration " << iter << ": " << to_string(w.invalid);
        ASSERT_EQ(w.size, packet_wire_size(p.desc));
        const bytes packet(wire.begin(), wire.begin() + static_cast<std::ptrdiff_t>(w.size));

        packet_view v;
        ASSERT_EQ(parse_packet(contiguous_bytes(packet), v), drop_reason::none) << iter;
        expect_matches(v, p, packet);
        ASSERT_EQ(reserialize(v, packet), packet);

        // The same packet as a chain of random segments (as an mbuf chain would be).
        std::vector<segment> segs;
        std::size_t pos = 0;
        while (pos < packet.size()) {
            const std::size_t len = std::min<std::size_t>(1 + rng() % 300, packet.size() - pos);
            segs.push_back({packet.data() + pos, static_cast<std::uint32_t>(len)});
            pos += len;
        }
        packet_view cv;
        ASSERT_EQ(parse_packet(chained_bytes(segs), cv), drop_reason::none) << iter;
        expect_matches(cv, p, packet);

        // Any single flipped bit is caught (CRC32C detects every 1-bit error).
        bytes bad = packet;
        bad[rng() % bad.size()] ^= static_cast<std::uint8_t>(1u << (rng() % 8));
        packet_view bv;
        ASSERT_NE(parse_packet(contiguous_bytes(bad), bv), drop_reason::none) << iter;
    }
}

TEST(packet, sixty_four_frames_fit_sixty_five_do_not) {
    std::vector<frame_desc> frames(max_frames_per_packet);
    const bytes data(10, 0x5A);
    for (std::size_t i = 0; i < frames.size(); ++i) {
        frames[i].stream_id = 4 + i;
        frames[i].data = data;
    }
    bytes wire(max_packet_size);
    packet_desc d{7, packet_type::data, compression::none, frames};
    const write_result w = serialize_packet(d, wire);
    ASSERT_TRUE(w.ok());
    packet_view v;
    EXPECT_EQ(parse_packet(contiguous_bytes(wire.data(), w.size), v), drop_reason::none);
    EXPECT_EQ(v.frame_count, 64u);
    frames.push_back(frames.back());
    d.frames = frames;
    EXPECT_EQ(serialize_packet(d, wire).invalid, drop_reason::frame_count_exceeded);
}

TEST(packet, serialiser_refuses_what_the_parser_rejects) {
    const bytes data(8, 1);
    bytes wire(max_packet_size);
    struct refusal {
        frame_desc frame;
        packet_type type;
        drop_reason expected;
    };
    frame_desc base;
    base.stream_id = 4;
    base.data = data;
    std::vector<refusal> cases;
    {
        frame_desc f = base;
        f.flags = 0x80;
        cases.push_back({f, packet_type::data, drop_reason::reserved_flags_set});
    }
    {
        frame_desc f = base;
        f.prio = priority::high;
        cases.push_back({f, packet_type::data, drop_reason::priority_flag_mismatch});
    }
    {
        frame_desc f = base;
        f.stream_id = varint_max + 1;
        cases.push_back({f, packet_type::data, drop_reason::value_too_large});
    }
    {
        frame_desc f = base;
        f.offset = max_stream_offset;
        cases.push_back({f, packet_type::data, drop_reason::offset_overflow});
    }
    cases.push_back({base, packet_type::ack, drop_reason::frame_not_allowed});
    {
        frame_desc f = base;
        f.flags = frame_flag::compressed;
        f.uncompressed_length = 100;
        cases.push_back({f, packet_type::data, drop_reason::compression_not_announced});
    }
    {
        frame_desc f = base;
        f.prio = priority::control;
        f.stream_id = 0;
        cases.push_back({f, packet_type::control, drop_reason::control_malformed}); // 8 x 0x01
    }
    for (const refusal& r : cases) {
        packet_desc d{1, r.type, compression::none, {&r.frame, 1}};
        const write_result w = serialize_packet(d, wire);
        EXPECT_FALSE(w.ok());
        EXPECT_EQ(w.invalid, r.expected) << to_string(w.invalid);
    }
}

TEST(packet, serialiser_never_writes_past_a_short_buffer) {
    const bytes data(100, 7);
    frame_desc f;
    f.stream_id = 8;
    f.data = data;
    packet_desc d{1, packet_type::data, compression::none, {&f, 1}};
    const std::size_t need = packet_wire_size(d);
    bytes wire(need + 16, 0xEE);
    for (std::size_t cap = 0; cap < need; ++cap) {
        const write_result w = serialize_packet(d, std::span<std::uint8_t>(wire.data(), cap));
        EXPECT_FALSE(w.ok());
        EXPECT_EQ(w.invalid, drop_reason::none); // only the space was short
    }
    EXPECT_TRUE(std::all_of(wire.begin(), wire.end(), [](std::uint8_t b) { return b == 0xEE; }));
    EXPECT_EQ(serialize_packet(d, wire).size, need);
}

TEST(packet, precomputed_frame_checksum_is_used_as_given) {
    const bytes data(64, 3);
    frame_desc f;
    f.stream_id = 8;
    f.data = data;
    f.has_checksum = true;
    f.checksum = crc32c(data.data(), data.size());
    bytes wire(max_packet_size);
    packet_desc d{1, packet_type::data, compression::none, {&f, 1}};
    write_result w = serialize_packet(d, wire);
    packet_view v;
    EXPECT_EQ(parse_packet(contiguous_bytes(wire.data(), w.size), v), drop_reason::none);
    f.checksum ^= 1; // a stale stored checksum is sent as given, and the receiver catches it
    w = serialize_packet(d, wire);
    EXPECT_EQ(parse_packet(contiguous_bytes(wire.data(), w.size), v), drop_reason::bad_frame_checksum);
}

// The AAD of an ENCRYPTED frame (PROTOCOL.md 5.4), from the description a sender seals with
// and from the parsed wire bytes a receiver opens with: the same bytes, laid out as specified,
// and the scheduling hints (PRIORITY, RETRANSMIT, Priority byte) left out.
TEST(packet, aead_aad_is_the_same_from_the_description_and_the_wire) {
    const bytes data(300 + aead_tag_len, 0x55);
    frame_desc f;
    f.stream_id = 300; // a two-byte varint
    f.offset = 0x0102030405060708;
    f.flags = frame_flag::fin | frame_flag::compressed | frame_flag::encrypted | frame_flag::ordered |
              frame_flag::retransmit | frame_flag::priority;
    f.prio = priority::high;
    f.uncompressed_length = 1000;
    f.key_phase = 7;
    for (std::size_t i = 0; i < f.nonce.size(); ++i) {
        f.nonce[i] = static_cast<std::uint8_t>(0xA0 + i);
    }
    f.data = data;
    std::array<std::uint8_t, max_aead_aad> from_desc{};
    const std::size_t n = frame_aad(f, from_desc);
    const bytes expected = {0x41, 0x2C,                                     // StreamID 300
                            0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, // Offset
                            0x1D,                                           // FIN|CMP|ENC|ORD
                            0x01, 0x02, 0x43, 0xE8,                         // UNCOMPRESSED_LENGTH 1000
                            0x02, 0x0D, 0x07,                               // AEAD, 13 bytes, phase 7
                            0xA0, 0xA1, 0xA2, 0xA3, 0xA4, 0xA5, 0xA6, 0xA7, 0xA8, 0xA9, 0xAA, 0xAB};
    EXPECT_EQ(bytes(from_desc.begin(), from_desc.begin() + static_cast<std::ptrdiff_t>(n)), expected);

    bytes wire(max_packet_size);
    const packet_desc d{5, packet_type::retransmission, compression::deflate, {&f, 1}};
    const write_result w = serialize_packet(d, wire);
    ASSERT_TRUE(w.ok()) << to_string(w.invalid);
    packet_view v;
    ASSERT_EQ(parse_packet(contiguous_bytes(wire.data(), w.size), v), drop_reason::none);
    std::array<std::uint8_t, max_aead_aad> from_wire{};
    ASSERT_EQ(frame_aad({wire.data(), w.size}, v.frames[0], from_wire), n);
    EXPECT_EQ(bytes(from_wire.begin(), from_wire.begin() + static_cast<std::ptrdiff_t>(n)), expected);
}

TEST(packet, inspect_mode_reports_each_checksum) {
    const bytes a(32, 1), b(32, 2), c(32, 3);
    frame_desc frames[3];
    const bytes* datas[3] = {&a, &b, &c};
    for (int i = 0; i < 3; ++i) {
        frames[i].stream_id = 4 + 4 * static_cast<std::uint64_t>(i);
        frames[i].data = *datas[i];
    }
    bytes wire(max_packet_size);
    const write_result w = serialize_packet({9, packet_type::data, compression::none, frames}, wire);
    wire.resize(w.size);
    packet_view v;
    ASSERT_EQ(parse_packet(contiguous_bytes(wire), v), drop_reason::none);
    wire[v.frames[1].data_pos + 5] ^= 0xFF; // corrupt the second frame's data only

    EXPECT_EQ(parse_packet<parse_mode::verify>(contiguous_bytes(wire), v), drop_reason::bad_frame_checksum);
    EXPECT_EQ(parse_packet<parse_mode::inspect>(contiguous_bytes(wire), v), drop_reason::bad_frame_checksum);
    EXPECT_TRUE(v.checksum_ok); // the packet CRC does not cover frame data
    EXPECT_TRUE(v.frames[0].checksum_ok);
    EXPECT_FALSE(v.frames[1].checksum_ok);
    EXPECT_TRUE(v.frames[2].checksum_ok);

    wire[v.frames[2].header_pos + 2] ^= 0x01; // now an offset byte of the third frame header
    EXPECT_EQ(parse_packet<parse_mode::inspect>(contiguous_bytes(wire), v), drop_reason::bad_packet_checksum);
    EXPECT_FALSE(v.checksum_ok);
    EXPECT_EQ(v.frames_parsed, 3u);
}

} // namespace
} // namespace kwik::kdp
