// Every rejection reason of the parser, reached by a crafted packet that breaks exactly one
// rule (Katran-style table: description, input, expected verdict), over contiguous and chained
// sources alike.
#include <gtest/gtest.h>

#include <set>
#include <string>

#include "dataplane/kdp/packet.hpp"
#include "tests/unit/kdp/raw_packet.hpp"

namespace kwik::kdp {
namespace {

using testing::bytes;
using testing::control;
using testing::raw_frame;
using testing::raw_packet;

struct rejection_case {
    std::string description;
    bytes input;
    drop_reason expected;
};

raw_packet with_frame(raw_frame f, std::uint8_t type = 0, std::uint8_t compression = 0) {
    raw_packet p;
    p.type = type;
    p.compression = compression;
    p.frames = {std::move(f)};
    return p;
}

raw_frame flagged(std::uint8_t flags, std::uint8_t priority = 0) {
    raw_frame f;
    f.flags = flags;
    f.priority = priority;
    return f;
}

bytes uncompressed_length_ext(std::uint64_t v) {
    bytes e{0x01};
    bytes value;
    testing::put_varint(value, v);
    e.push_back(static_cast<std::uint8_t>(value.size()));
    e.insert(e.end(), value.begin(), value.end());
    return e;
}

bytes aead_ext() {
    bytes e{0x02, 13, 0x01};
    for (int i = 0; i < 12; ++i) {
        e.push_back(static_cast<std::uint8_t>(i));
    }
    return e;
}

std::vector<rejection_case> cases() {
    std::vector<rejection_case> c;
    c.push_back({"valid data packet", raw_packet{}.encode(), drop_reason::none});
    c.push_back({"15 bytes", bytes(15, 0), drop_reason::packet_too_short});
    {
        raw_frame f;
        f.data = bytes(max_packet_size, 'x');
        c.push_back({"16 KiB payload frame", with_frame(f).encode(), drop_reason::packet_too_large});
    }
    {
        bytes b(8, 0);
        b.push_back(0);                                       // type
        testing::put_varint(b, std::uint64_t{1} << 31);       // frame count, 8-byte varint
        c.push_back({"total length varint cut off", b, drop_reason::header_truncated});
    }
    {
        raw_packet p;
        p.frame_count_width = 2;
        c.push_back({"frame count in 2 bytes", p.encode(), drop_reason::varint_non_minimal});
    }
    {
        raw_frame f;
        f.stream_id_width = 4;
        c.push_back({"stream id in 4 bytes", with_frame(f).encode(), drop_reason::varint_non_minimal});
    }
    {
        raw_packet p;
        p.seq = std::uint64_t{1} << 62;
        c.push_back({"sequence number 2^62", p.encode(), drop_reason::sequence_too_large});
    }
    {
        raw_frame f = flagged(frame_flag::compressed | frame_flag::encrypted);
        f.ext = uncompressed_length_ext(10);
        const bytes aead = aead_ext();
        f.ext.insert(f.ext.end(), aead.begin(), aead.end());
        f.data = bytes(aead_tag_len, 0x11); // a tag and no compressed byte
        c.push_back({"compressed and encrypted, nothing compressed", with_frame(f, 0, 1).encode(),
                     drop_reason::extension_malformed});
        f.data.push_back(0x22);
        c.push_back({"compressed and encrypted, one compressed byte", with_frame(f, 0, 1).encode(),
                     drop_reason::none});
    }
    {
        raw_frame f = flagged(frame_flag::compressed | frame_flag::encrypted);
        f.ext = aead_ext();
        const bytes ul = uncompressed_length_ext(10);
        f.ext.insert(f.ext.end(), ul.begin(), ul.end());
        f.data = bytes(aead_tag_len + 1, 0x11);
        c.push_back({"extensions out of order", with_frame(f, 0, 1).encode(),
                     drop_reason::extension_malformed});
    }
    {
        raw_frame f;
        f.ext = {0x07, 0x00, 0x07, 0x00};
        c.push_back({"unknown extension twice", with_frame(f).encode(), drop_reason::extension_duplicate});
        f.ext = {0x07, 0x01, 0xAA, 0x09, 0x00};
        c.push_back({"unknown extensions skipped", with_frame(f).encode(), drop_reason::none});
    }
    c.push_back({"packet type 6", with_frame({}, 6).encode(), drop_reason::unknown_packet_type});
    c.push_back({"compression 2", with_frame({}, 0, 2).encode(), drop_reason::unknown_compression});
    {
        raw_packet p;
        p.total_length = 30;
        c.push_back({"total length one too many", p.encode(), drop_reason::total_length_mismatch});
    }
    {
        raw_packet p;
        p.frames.clear();
        c.push_back({"no frames", p.encode(), drop_reason::frame_count_zero});
    }
    {
        raw_packet p;
        p.frame_count = 65;
        c.push_back({"frame count 65", p.encode(), drop_reason::frame_count_exceeded});
    }
    {
        raw_packet p;
        p.frame_count = 2;
        c.push_back({"count 2, one frame", p.encode(), drop_reason::frame_count_mismatch});
        raw_packet q;
        q.frames.push_back(raw_frame{});
        q.frame_count = 1;
        c.push_back({"count 1, two frames", q.encode(), drop_reason::frame_count_mismatch});
    }
    {
        raw_packet p;
        p.frame_count = 2;
        p.trailer = {0x04, 0x00, 0x00};
        c.push_back({"second frame header cut off", p.encode(), drop_reason::frame_truncated});
    }
    {
        raw_frame f;
        f.data_length = 14;
        c.push_back({"data length past the end", with_frame(f).encode(),
                     drop_reason::frame_length_beyond_packet});
    }
    c.push_back({"flag bit 6", with_frame(flagged(0x40)).encode(), drop_reason::reserved_flags_set});
    c.push_back({"flag bit 7", with_frame(flagged(0x80)).encode(), drop_reason::reserved_flags_set});
    c.push_back({"priority 3", with_frame(flagged(0, 3)).encode(), drop_reason::unknown_priority});
    c.push_back({"high priority, no PRIORITY flag", with_frame(flagged(0, 1)).encode(),
                 drop_reason::priority_flag_mismatch});
    c.push_back({"PRIORITY flag, normal priority", with_frame(flagged(frame_flag::priority, 0)).encode(),
                 drop_reason::priority_flag_mismatch});
    {
        raw_frame f;
        f.offset = max_stream_offset - 3; // + 4 bytes of data
        c.push_back({"offset + length = 2^62 + 1", with_frame(f).encode(), drop_reason::offset_overflow});
        f.offset = ~std::uint64_t{0};
        c.push_back({"offset 2^64 - 1", with_frame(f).encode(), drop_reason::offset_overflow});
    }
    {
        raw_frame f;
        f.data.clear();
        c.push_back({"empty frame without FIN", with_frame(f).encode(), drop_reason::empty_stream_frame});
    }
    {
        raw_frame f;
        f.stream_id = 0;
        c.push_back({"data on stream 0", with_frame(f).encode(), drop_reason::stream_id_zero});
    }
    {
        raw_frame f;
        f.ext = {0x01, 0x05, 0x01};
        c.push_back({"TLV longer than the area", with_frame(f).encode(), drop_reason::extension_malformed});
    }
    {
        raw_frame f = flagged(frame_flag::compressed);
        f.ext = uncompressed_length_ext(10);
        const bytes again = uncompressed_length_ext(10);
        f.ext.insert(f.ext.end(), again.begin(), again.end());
        c.push_back({"uncompressed length twice", with_frame(f, 0, 1).encode(),
                     drop_reason::extension_duplicate});
    }
    c.push_back({"COMPRESSED without its extension",
                 with_frame(flagged(frame_flag::compressed), 0, 1).encode(),
                 drop_reason::extension_missing});
    {
        raw_frame f;
        f.ext = uncompressed_length_ext(10);
        c.push_back({"uncompressed length without COMPRESSED", with_frame(f).encode(),
                     drop_reason::extension_unexpected});
    }
    {
        raw_frame f;
        f.ext_length = 256;
        c.push_back({"extension length 256", with_frame(f).encode(), drop_reason::extension_too_long});
    }
    {
        raw_frame f = flagged(frame_flag::compressed);
        f.ext = uncompressed_length_ext(10);
        c.push_back({"COMPRESSED in a packet with compression none", with_frame(f).encode(),
                     drop_reason::compression_not_announced});
    }
    {
        raw_frame f = flagged(frame_flag::compressed);
        f.ext = uncompressed_length_ext(max_uncompressed_length + 1);
        c.push_back({"inflates to 16385 bytes", with_frame(f, 0, 1).encode(), drop_reason::uncompressed_too_large});
    }
    c.push_back({"stream frame in a control packet", with_frame({}, 1).encode(),
                 drop_reason::frame_not_allowed});
    {
        raw_frame f = control({0x05, 1, 2, 3, 4, 5, 6, 7, 8});
        f.flags = frame_flag::fin;
        c.push_back({"control frame with FIN", with_frame(f, 1).encode(), drop_reason::control_flags_set});
    }
    c.push_back({"control type 0x0A", with_frame(control({0x0A}), 1).encode(),
                 drop_reason::control_type_unknown});
    c.push_back({"MAX_DATA with a trailing byte", with_frame(control({0x02, 0x00}), 1).encode(),
                 drop_reason::control_malformed});
    c.push_back({"MAX_DATA on stream 4", with_frame(control({0x02}, 4), 1).encode(),
                 drop_reason::control_stream_invalid});
    c.push_back({"MAX_STREAM_DATA on stream 0", with_frame(control({0x03}, 0), 1).encode(),
                 drop_reason::control_stream_invalid});
    c.push_back({"PATH_CHALLENGE with offset 1",
                 with_frame(control({0x05, 1, 2, 3, 4, 5, 6, 7, 8}, 0, 1), 3).encode(),
                 drop_reason::control_offset_invalid});
    c.push_back({"MAX_DATA limit above 2^62",
                 with_frame(control({0x02}, 0, max_stream_offset + 1), 1).encode(),
                 drop_reason::control_offset_invalid});
    // ACK: path 0, largest 5, delay 0, ecn 0, 0 extra ranges, first range 6 (> largest).
    c.push_back({"ACK first range below zero", with_frame(control({0x01, 0, 5, 0, 0, 0, 6}), 2).encode(),
                 drop_reason::ack_range_invalid});
    // Largest 10, first range 0 -> smallest 10; gap 9 needs smallest >= 11.
    c.push_back({"ACK gap below zero", with_frame(control({0x01, 0, 10, 0, 0, 1, 0, 9, 0}), 2).encode(),
                 drop_reason::ack_range_invalid});
    c.push_back({"ACK with 33 extra ranges", with_frame(control({0x01, 0, 60, 0, 0, 33, 0}), 2).encode(),
                 drop_reason::ack_too_many_ranges});
    c.push_back({"ACK cut off", with_frame(control({0x01, 0, 60, 0}), 2).encode(),
                 drop_reason::control_malformed});
    {
        raw_frame f = flagged(frame_flag::encrypted);
        f.ext = aead_ext();
        c.push_back({"ENCRYPTED data of 4 bytes", with_frame(f).encode(), drop_reason::aead_data_too_short});
    }
    {
        raw_packet p;
        p.checksum = 0x12345678;
        c.push_back({"packet checksum wrong", p.encode(), drop_reason::bad_packet_checksum});
    }
    {
        raw_frame f;
        f.checksum = 0;
        c.push_back({"frame checksum zero (never 'absent')", with_frame(f).encode(),
                     drop_reason::bad_frame_checksum});
    }
    // Packet-type rules for control frames.
    c.push_back({"MAX_DATA in an ACK packet", with_frame(control({0x02}), 2).encode(),
                 drop_reason::frame_not_allowed});
    c.push_back({"MAX_DATA in a keepalive packet", with_frame(control({0x02}), 3).encode(),
                 drop_reason::frame_not_allowed});
    c.push_back({"normal stream frame in a priority packet", with_frame({}, 4).encode(),
                 drop_reason::frame_not_allowed});
    c.push_back({"frame without RETRANSMIT in a retransmission packet", with_frame({}, 5).encode(),
                 drop_reason::frame_not_allowed});
    return c;
}

class rejection : public ::testing::TestWithParam<rejection_case> {};

TEST_P(rejection, contiguous_and_chained_agree) {
    const rejection_case& rc = GetParam();
    packet_view view;
    EXPECT_EQ(parse_packet(contiguous_bytes(rc.input), view), rc.expected)
        << rc.description << ": got " << to_string(parse_packet(contiguous_bytes(rc.input), view));
    // The same bytes as a chain cut at every position give the same verdict.
    for (std::size_t cut = 1; cut < rc.input.size() && rc.input.size() <= 256; ++cut) {
        const segment segs[2] = {{rc.input.data(), static_cast<std::uint32_t>(cut)},
                                 {rc.input.data() + cut, static_cast<std::uint32_t>(rc.input.size() - cut)}};
        packet_view chained;
        ASSERT_EQ(parse_packet(chained_bytes(segs), chained), rc.expected)
            << rc.description << " cut at " << cut;
    }
}

INSTANTIATE_TEST_SUITE_P(all, rejection, ::testing::ValuesIn(cases()),
                         [](const ::testing::TestParamInfo<rejection_case>& info) {
                             std::string name;
                             for (char ch : info.param.description) {
                                 name += std::isalnum(static_cast<unsigned char>(ch)) ? ch : '_';
                             }
                             return std::to_string(info.index) + "_" + name;
                         });

TEST(rejection_table, reaches_every_parser_reason) {
    std::set<drop_reason> seen;
    for (const rejection_case& rc : cases()) {
        seen.insert(rc.expected);
    }
    for (std::size_t i = 0; i < drop_reason_count; ++i) {
        const auto r = static_cast<drop_reason>(i);
        if (r == drop_reason::value_too_large || is_engine_drop_reason(r)) {
            continue; // the serialiser's own reason, and the engine's (tested in tests/*/engine)
        }
        EXPECT_TRUE(seen.count(r)) << "no crafted input for " << to_string(r);
    }
}

TEST(rejection_table, every_reason_has_a_name_and_description) {
    std::set<std::string_view> names;
    for (std::size_t i = 0; i < drop_reason_count; ++i) {
        const auto r = static_cast<drop_reason>(i);
        EXPECT_NE(to_string(r), "invalid");
        EXPECT_FALSE(describe(r).empty());
        EXPECT_TRUE(names.insert(to_string(r)).second) << to_string(r);
    }
}

} // namespace
} // namespace kwik::kdp
