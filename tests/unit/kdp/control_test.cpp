// Control frames: encode -> decode for every type, ACK range arithmetic, encoder refusals.
#include <gtest/gtest.h>

#include <string_view>
#include <vector>

#include "dataplane/kdp/control.hpp"

namespace kwik::kdp {
namespace {

using bytes = std::vector<std::uint8_t>;

control_frame round_trip(const control_frame& c, bytes* wire = nullptr) {
    bytes buf(max_control_payload);
    const std::size_t n = encode_control(c, buf);
    EXPECT_GT(n, 0u);
    buf.resize(n);
    control_frame out;
    EXPECT_EQ(decode_control(control_stream_id(c), control_offset(c), buf.data(), buf.size(), &out),
              drop_reason::none);
    if (wire != nullptr) {
        *wire = buf;
    }
    return out;
}

TEST(control, ack_ranges_round_trip) {
    control_frame c;
    c.type = control_type::ack;
    c.ack.path_id = 3;
    c.ack.ack_delay_us = 1500;
    c.ack.ecn_ce = 2;
    c.ack.range_count = 3;
    c.ack.ranges[0] = {100, 90};
    c.ack.ranges[1] = {80, 80};
    c.ack.ranges[2] = {10, 0};
    bytes wire;
    const control_frame d = round_trip(c, &wire);
    // type, path 3, largest 100 (2 bytes), delay 1500 (2 bytes), ecn 2, 2 extra ranges,
    // first range 10, gap 90-80-2=8, range 0, gap 80-10-2=68 (2 bytes), range 10.
    const bytes expected = {0x01, 0x03, 0x40, 0x64, 0x45, 0xDC, 0x02, 0x02,
                            0x0A, 0x08, 0x00, 0x40, 0x44, 0x0A};
    EXPECT_EQ(wire, expected);
    ASSERT_EQ(d.ack.range_count, 3u);
    EXPECT_EQ(d.ack.path_id, 3u);
    EXPECT_EQ(d.ack.ack_delay_us, 1500u);
    EXPECT_EQ(d.ack.ecn_ce, 2u);
    EXPECT_EQ(d.ack.largest(), 100u);
    for (std::size_t i = 0; i < 3; ++i) {
        EXPECT_EQ(d.ack.ranges[i].largest, c.ack.ranges[i].largest);
        EXPECT_EQ(d.ack.ranges[i].smallest, c.ack.ranges[i].smallest);
    }
}

TEST(control, ack_encoder_refuses_overlapping_or_adjacent_ranges) {
    control_frame c;
    c.type = control_type::ack;
    c.ack.range_count = 2;
    c.ack.ranges[0] = {100, 90};
    c.ack.ranges[1] = {89, 80}; // adjacent: must have been one range
    bytes buf(max_control_payload);
    EXPECT_EQ(encode_control(c, buf), 0u);
    c.ack.ranges[1] = {95, 80}; // overlapping
    EXPECT_EQ(encode_control(c, buf), 0u);
    c.ack.ranges[1] = {88, 80}; // gap of one missing packet (89): fine
    EXPECT_GT(encode_control(c, buf), 0u);
    c.ack.range_count = max_ack_ranges + 2;
    EXPECT_EQ(encode_control(c, buf), 0u);
}

TEST(control, limits_and_resets) {
    control_frame c;
    c.type = control_type::max_stream_data;
    c.stream_id = 6;
    c.limit = 1 << 20;
    control_frame d = round_trip(c);
    EXPECT_EQ(d.stream_id, 6u);
    EXPECT_EQ(d.limit, 1u << 20);

    c.type = control_type::max_data;
    EXPECT_EQ(control_stream_id(c), 0u);
    d = round_trip(c);
    EXPECT_EQ(d.limit, 1u << 20);

    c.type = control_type::reset_stream;
    c.stream_id = 10;
    c.limit = 12345;
    c.error_code = 3;
    d = round_trip(c);
    EXPECT_EQ(d.stream_id, 10u);
    EXPECT_EQ(d.limit, 12345u);
    EXPECT_EQ(d.error_code, 3u);

    for (control_type t : {control_type::data_blocked, control_type::stream_data_blocked}) {
        c.type = t;
        d = round_trip(c);
        EXPECT_EQ(d.type, t);
        EXPECT_EQ(d.limit, 12345u);
    }
}

TEST(control, path_challenge_and_response) {
    for (control_type t : {control_type::path_challenge, control_type::path_response}) {
        control_frame c;
        c.type = t;
        c.challenge = {1, 2, 3, 4, 5, 6, 7, 8};
        bytes wire;
        const control_frame d = round_trip(c, &wire);
        EXPECT_EQ(wire.size(), 9u);
        EXPECT_EQ(d.challenge, c.challenge);
    }
}

TEST(control, connection_close_carries_code_and_reason) {
    const std::string_view why = "idle timeout";
    control_frame c;
    c.type = control_type::connection_close;
    c.error_code = 5;
    c.reason = {reinterpret_cast<const std::uint8_t*>(why.data()), why.size()};
    bytes wire;
    round_trip(c, &wire);
    control_frame d;
    ASSERT_EQ(decode_control(0, 0, wire.data(), wire.size(), &d), drop_reason::none);
    EXPECT_EQ(d.error_code, 5u);
    EXPECT_EQ(d.reason.data(), wire.data() + 2); // points into the payload: no copy
    EXPECT_EQ(std::string_view(reinterpret_cast<const char*>(d.reason.data()), d.reason.size()), why);
}

TEST(control, decode_rejections) {
    const std::uint8_t unknown[] = {0x00};
    EXPECT_EQ(decode_control(0, 0, unknown, 1, nullptr), drop_reason::control_type_unknown);
    const std::uint8_t challenge_short[] = {0x05, 1, 2, 3};
    EXPECT_EQ(decode_control(0, 0, challenge_short, 4, nullptr), drop_reason::control_malformed);
    const std::uint8_t reset_non_minimal[] = {0x04, 0x40, 0x01};
    EXPECT_EQ(decode_control(4, 0, reset_non_minimal, 3, nullptr), drop_reason::varint_non_minimal);
    const std::uint8_t close_truncated[] = {0x07, 0x80};
    EXPECT_EQ(decode_control(0, 0, close_truncated, 2, nullptr), drop_reason::control_malformed);
    EXPECT_EQ(decode_control(0, 0, unknown, 0, nullptr), drop_reason::control_malformed);
}

} // namespace
} // namespace kwik::kdp
