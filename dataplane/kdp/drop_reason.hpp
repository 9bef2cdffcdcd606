// Every reason the data plane drops a packet, one enum for the whole pipeline: the codec's
// rejections first, then the engine's. Counters are indexed by it. Any thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace kwik::kdp {

#define KWIK_DROP_REASONS(X)                                                                       \
    X(none, "accepted")                                                                            \
    X(packet_too_short, "packet shorter than the smallest path packet header")                     \
    X(packet_too_large, "packet larger than the maximum path packet size")                         \
    X(header_truncated, "path packet header runs past the end of the datagram")                    \
    X(varint_non_minimal, "varint not in its shortest encoding")                                   \
    X(sequence_too_large, "path sequence number at or above 2^62")                                 \
    X(unknown_packet_type, "packet type not defined")                                              \
    X(unknown_compression, "compression info byte not defined")                                    \
    X(total_length_mismatch, "total length differs from the bytes after the header")               \
    X(frame_count_zero, "packet carries no frame")                                                 \
    X(frame_count_exceeded, "frame count above the per-packet maximum")                            \
    X(frame_count_mismatch, "frames found differ from the frame count")                            \
    X(frame_truncated, "frame header runs past the end of the packet")                             \
    X(frame_length_beyond_packet, "frame data length runs past the end of the packet")             \
    X(reserved_flags_set, "reserved frame flag bits 6-7 set")                                      \
    X(unknown_priority, "frame priority byte not defined")                                         \
    X(priority_flag_mismatch, "PRIORITY flag disagrees with the priority byte")                    \
    X(offset_overflow, "offset plus length beyond 2^62")                                           \
    X(empty_stream_frame, "stream frame with no data and no FIN")                                  \
    X(stream_id_zero, "stream frame on stream 0")                                                  \
    X(extension_malformed, "extension TLV runs past the extension area")                           \
    X(extension_duplicate, "extension type appears twice")                                         \
    X(extension_missing, "flag requires an extension that is absent")                              \
    X(extension_unexpected, "extension present without the flag that uses it")                    \
    X(extension_too_long, "extension area longer than the maximum")                                \
    X(compression_not_announced, "COMPRESSED frame in a packet whose compression info is none")    \
    X(uncompressed_too_large, "COMPRESSED frame inflates to more than 16384 bytes")                \
    X(frame_not_allowed, "frame kind not permitted in this packet type")                           \
    X(control_flags_set, "control frame with flags set")                                           \
    X(control_type_unknown, "control frame type not defined")                                      \
    X(control_malformed, "control frame payload malformed")                                        \
    X(control_stream_invalid, "control frame stream id not valid for its type")                    \
    X(control_offset_invalid, "control frame offset not valid for its type")                       \
    X(ack_range_invalid, "ACK range below packet number zero")                                     \
    X(ack_too_many_ranges, "ACK range count above the maximum")                                    \
    X(aead_data_too_short, "ENCRYPTED frame shorter than the AEAD tag")                            \
    X(bad_packet_checksum, "path packet CRC32C mismatch")                                          \
    X(bad_frame_checksum, "frame CRC32C mismatch")                                                 \
    X(value_too_large, "value above 2^62 - 1 cannot be encoded (serialiser only)")

enum class drop_reason : std::uint8_t {
#define KWIK_X(name, text) name,
    KWIK_DROP_REASONS(KWIK_X)
#undef KWIK_X
        count_
};

inline constexpr std::size_t drop_reason_count = static_cast<std::size_t>(drop_reason::count_);

// Stable snake_case identifier, used in counters, JSON and logs.
constexpr std::string_view to_string(drop_reason r) noexcept {
    switch (r) {
#define KWIK_X(name, text)                                                                         \
    case drop_reason::name:                                                                        \
        return #name;
        KWIK_DROP_REASONS(KWIK_X)
#undef KWIK_X
    case drop_reason::count_:
        break;
    }
    return "invalid";
}

// One-line human description.
constexpr std::string_view describe(drop_reason r) noexcept {
    switch (r) {
#define KWIK_X(name, text)                                                                         \
    case drop_reason::name:                                                                        \
        return text;
        KWIK_DROP_REASONS(KWIK_X)
#undef KWIK_X
    case drop_reason::count_:
        break;
    }
    return "invalid";
}

} // namespace kwik::kdp
