// KDP control frames (priority 0xFF): ACK, flow-control limits, stream reset, path
// challenge/response, connection close, blocked signals (PROTOCOL.md section 6).
// Decoding and encoding of the control payload, the frame data that starts with the type byte.
// Pure functions; any thread; no allocation.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>

#include "dataplane/kdp/drop_reason.hpp"
#include "dataplane/kdp/wire.hpp"

namespace kwik::kdp {

// An inclusive range of acknowledged path sequence numbers.
struct ack_range {
    std::uint64_t largest;
    std::uint64_t smallest;
};

// The ACK body, with its ranges expanded (largest first, disjoint, descending).
struct ack_frame {
    std::uint64_t path_id = 0;
    std::uint64_t ack_delay_us = 0;
    std::uint64_t ecn_ce = 0;
    std::size_t range_count = 0; // entries used in ranges (>= 1)
    std::array<ack_range, max_ack_ranges + 1> ranges{};

    std::uint64_t largest() const noexcept { return ranges[0].largest; }
};

// A decoded control frame. Which members mean something depends on type (PROTOCOL.md 6.x).
struct control_frame {
    control_type type = control_type::max_data;
    std::uint64_t stream_id = 0;  // max_stream_data, reset_stream, stream_data_blocked
    std::uint64_t limit = 0;      // max_data, max_stream_data, *_blocked: the Offset field;
                                  // reset_stream: the final size (also the Offset field)
    std::uint64_t error_code = 0; // reset_stream, connection_close
    std::array<std::uint8_t, path_challenge_len> challenge{}; // path_challenge, path_response
    std::span<const std::uint8_t> reason; // connection_close, points into the payload
    ack_frame ack;                        // ack
};

// Which stream id and offset a control frame of this type must carry in its frame header.
struct control_header_rule {
    bool stream_must_be_zero;
    bool offset_used; // the Offset field carries a limit or final size; otherwise it must be 0
};
constexpr control_header_rule header_rule(control_type t) noexcept {
    switch (t) {
    case control_type::max_stream_data:
    case control_type::reset_stream:
    case control_type::stream_data_blocked:
        return {false, true};
    case control_type::max_data:
    case control_type::data_blocked:
        return {true, true};
    default:
        return {true, false};
    }
}

// Validates a control frame: its header fields (stream id, offset) and its payload (type byte
// first). Returns drop_reason::none when valid. out may be null (validate only).
drop_reason decode_control(std::uint64_t stream_id, std::uint64_t offset,
                           const std::uint8_t* payload, std::size_t len,
                           control_frame* out) noexcept;

// Encodes the payload of c into out; returns the bytes written, 0 if out is too small or c is
// not encodable (ack ranges not descending and disjoint, too many ranges, values above 2^62).
std::size_t encode_control(const control_frame& c, std::span<std::uint8_t> out) noexcept;

// The stream id and offset the frame header carries for c.
std::uint64_t control_stream_id(const control_frame& c) noexcept;
std::uint64_t control_offset(const control_frame& c) noexcept;

} // namespace kwik::kdp
