// The worked examples of docs/PROTOCOL.md section 10, byte for byte: each parses to the fields
// the document states, the serialiser reproduces it from those fields, and the document still
// shows exactly these bytes (so the spec and the code cannot drift apart).
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "dataplane/kdp/packet.hpp"

#ifndef KWIK_SOURCE_ROOT
#error "KWIK_SOURCE_ROOT must name the source tree"
#endif

namespace kwik::kdp {
namespace {

using bytes = std::vector<std::uint8_t>;

bytes from_hex(std::string_view hex) {
    bytes out;
    int nibble = -1;
    for (char c : hex) {
        int v = -1;
        if (c >= '0' && c <= '9') {
            v = c - '0';
        } else if (c >= 'a' && c <= 'f') {
            v = c - 'a' + 10;
        } else if (c >= 'A' && c <= 'F') {
            v = c - 'A' + 10;
        }
        if (v < 0) {
            continue;
        }
        if (nibble < 0) {
            nibble = v;
        } else {
            out.push_back(static_cast<std::uint8_t>(nibble << 4 | v));
            nibble = -1;
        }
    }
    return out;
}

std::span<const std::uint8_t> text(std::string_view s) {
    return {reinterpret_cast<const std::uint8_t*>(s.data()), s.size()};
}

// The hex block that follows "<!-- vector: NAME -->" in PROTOCOL.md.
bytes vector_from_spec(const std::string& name) {
    std::ifstream in(KWIK_SOURCE_ROOT "/docs/PROTOCOL.md");
    std::stringstream ss;
    ss << in.rdbuf();
    const std::string doc = ss.str();
    const std::string marker = "<!-- vector: " + name + " -->";
    const std::size_t at = doc.find(marker);
    if (at == std::string::npos) {
        return {};
    }
    const std::size_t open = doc.find("```", at);
    const std::size_t body = doc.find('\n', open);
    const std::size_t close = doc.find("```", body);
    if (open == std::string::npos || body == std::string::npos || close == std::string::npos) {
        return {};
    }
    return from_hex(std::string_view(doc).substr(body, close - body));
}

const bytes data_two_frames = from_hex(
    "00 00 00 00 00 00 00 01 00 02 2e b6 24 cf 06 00"
    "04 00 00 00 00 00 00 00 00 10 07 47 87 1c 34 00"
    "00 48 65 6c 6c 6f 2c 20 08 00 00 00 00 00 00 04"
    "00 03 05 33 18 71 e9 01 00 4b 77 69 6b 21");
const bytes ack_packet = from_hex(
    "00 00 00 00 00 00 00 07 02 01 1b 71 25 82 b1 00"
    "00 00 00 00 00 00 00 00 00 00 0a 1b b7 b6 f8 ff"
    "00 01 01 0a 40 fa 00 01 02 01 00");
const bytes keepalive_packet = from_hex(
    "00 00 00 00 00 00 00 2a 03 01 1a ee 58 50 94 00"
    "00 00 00 00 00 00 00 00 00 00 09 5b b5 d1 d3 ff"
    "00 05 01 02 03 04 05 06 07 08");
const bytes control_packet = from_hex(
    "00 00 00 00 00 00 01 2c 01 02 2e 84 aa f1 77 00"
    "04 00 00 00 00 00 01 00 00 00 01 41 2d a0 a5 ff"
    "00 03 00 00 00 00 00 00 00 00 00 00 0b 46 e2 b2"
    "d2 ff 00 07 05 62 61 64 20 66 72 61 6d 65");

bytes serialize(std::uint64_t seq, packet_type type, std::span<const frame_desc> frames) {
    bytes out(max_packet_size);
    const write_result w = serialize_packet({seq, type, compression::none, frames}, out);
    out.resize(w.size);
    return out;
}

frame_desc control_desc(const control_frame& c, bytes& storage) {
    storage.assign(max_control_payload, 0);
    storage.resize(encode_control(c, storage));
    frame_desc f;
    f.prio = priority::control;
    f.stream_id = control_stream_id(c);
    f.offset = control_offset(c);
    f.data = storage;
    return f;
}

TEST(protocol_vectors, data_packet_with_two_frames) {
    packet_view v;
    ASSERT_EQ(parse_packet(contiguous_bytes(data_two_frames), v), drop_reason::none);
    EXPECT_EQ(v.seq, 1u);
    EXPECT_EQ(v.type, 0x00);
    EXPECT_EQ(v.frame_count, 2u);
    EXPECT_EQ(v.total_length, 46u);
    EXPECT_EQ(v.header_length, 16u);
    EXPECT_EQ(v.checksum, 0xb624cf06u);
    EXPECT_EQ(v.frames[0].stream_id, 4u);
    EXPECT_EQ(v.frames[0].offset, 0u);
    EXPECT_EQ(v.frames[0].flags, frame_flag::ordered);
    EXPECT_EQ(v.frames[0].data_length, 7u);
    EXPECT_EQ(v.frames[0].checksum, 0x47871c34u); // CRC32C("Hello, ")
    EXPECT_EQ(v.frames[1].stream_id, 8u);
    EXPECT_EQ(v.frames[1].offset, 1024u);
    EXPECT_EQ(v.frames[1].flags, frame_flag::fin | frame_flag::priority);
    EXPECT_EQ(v.frames[1].priority, 0x01);
    EXPECT_EQ(v.frames[1].checksum, 0x331871e9u); // CRC32C("Kwik!")

    frame_desc f[2];
    f[0].stream_id = 4;
    f[0].flags = frame_flag::ordered;
    f[0].data = text("Hello, ");
    f[1].stream_id = 8;
    f[1].offset = 1024;
    f[1].flags = frame_flag::fin | frame_flag::priority;
    f[1].prio = priority::high;
    f[1].data = text("Kwik!");
    EXPECT_EQ(serialize(1, packet_type::data, f), data_two_frames);
    EXPECT_EQ(vector_from_spec("data_two_frames"), data_two_frames);
}

TEST(protocol_vectors, ack_packet) {
    packet_view v;
    ASSERT_EQ(parse_packet(contiguous_bytes(ack_packet), v), drop_reason::none);
    EXPECT_EQ(v.seq, 7u);
    EXPECT_EQ(v.type, 0x02);
    ASSERT_EQ(v.frame_count, 1u);
    const frame_view& fv = v.frames[0];
    control_frame c;
    ASSERT_EQ(decode_control(fv.stream_id, fv.offset, ack_packet.data() + fv.data_pos, fv.data_length, &c),
              drop_reason::none);
    EXPECT_EQ(c.type, control_type::ack);
    EXPECT_EQ(c.ack.path_id, 1u);
    EXPECT_EQ(c.ack.ack_delay_us, 250u);
    ASSERT_EQ(c.ack.range_count, 2u);
    EXPECT_EQ(c.ack.ranges[0].largest, 10u);
    EXPECT_EQ(c.ack.ranges[0].smallest, 8u);
    EXPECT_EQ(c.ack.ranges[1].largest, 5u);
    EXPECT_EQ(c.ack.ranges[1].smallest, 5u);

    control_frame a;
    a.type = control_type::ack;
    a.ack.path_id = 1;
    a.ack.ack_delay_us = 250;
    a.ack.range_count = 2;
    a.ack.ranges[0] = {10, 8};
    a.ack.ranges[1] = {5, 5};
    bytes storage;
    const frame_desc f = control_desc(a, storage);
    EXPECT_EQ(serialize(7, packet_type::ack, {&f, 1}), ack_packet);
    EXPECT_EQ(vector_from_spec("ack"), ack_packet);
}

TEST(protocol_vectors, keepalive_packet) {
    packet_view v;
    ASSERT_EQ(parse_packet(contiguous_bytes(keepalive_packet), v), drop_reason::none);
    EXPECT_EQ(v.seq, 42u);
    EXPECT_EQ(v.type, 0x03);
    EXPECT_EQ(v.frames[0].control, static_cast<std::uint8_t>(control_type::path_challenge));

    control_frame c;
    c.type = control_type::path_challenge;
    c.challenge = {1, 2, 3, 4, 5, 6, 7, 8};
    bytes storage;
    const frame_desc f = control_desc(c, storage);
    EXPECT_EQ(serialize(42, packet_type::keepalive, {&f, 1}), keepalive_packet);
    EXPECT_EQ(vector_from_spec("keepalive"), keepalive_packet);
}

TEST(protocol_vectors, control_packet) {
    packet_view v;
    ASSERT_EQ(parse_packet(contiguous_bytes(control_packet), v), drop_reason::none);
    EXPECT_EQ(v.seq, 300u);
    EXPECT_EQ(v.type, 0x01);
    ASSERT_EQ(v.frame_count, 2u);
    EXPECT_EQ(v.frames[0].stream_id, 4u);
    EXPECT_EQ(v.frames[0].offset, 65536u);
    EXPECT_EQ(v.frames[0].control, static_cast<std::uint8_t>(control_type::max_stream_data));
    EXPECT_EQ(v.frames[1].control, static_cast<std::uint8_t>(control_type::connection_close));

    control_frame m;
    m.type = control_type::max_stream_data;
    m.stream_id = 4;
    m.limit = 65536;
    control_frame cl;
    cl.type = control_type::connection_close;
    cl.error_code = 5;
    cl.reason = text("bad frame");
    bytes s1, s2;
    const frame_desc f[2] = {control_desc(m, s1), control_desc(cl, s2)};
    EXPECT_EQ(serialize(300, packet_type::control, f), control_packet);
    EXPECT_EQ(vector_from_spec("control"), control_packet);
}

} // namespace
} // namespace kwik::kdp
