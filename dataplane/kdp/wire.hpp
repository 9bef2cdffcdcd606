// KDP wire constants: packet types, frame flags, priorities, control-frame types and limits,
// exactly as docs/PROTOCOL.md specifies them. Pure constants; any thread.
#pragma once

#include <cstddef>
#include <cstdint>

namespace kwik::kdp {

#ifndef KWIK_DEFAULT_UDP_PORT
#define KWIK_DEFAULT_UDP_PORT 7707
#endif
inline constexpr std::uint16_t default_udp_port = KWIK_DEFAULT_UDP_PORT;

// Path packet types (PROTOCOL.md section 4.2).
enum class packet_type : std::uint8_t {
    data = 0x00,
    control = 0x01,
    ack = 0x02,
    keepalive = 0x03,
    priority = 0x04,
    retransmission = 0x05,
};
inline constexpr std::uint8_t packet_type_max = 0x05;

// Frame flag bits (PROTOCOL.md section 5.2). Bits 6-7 are reserved and must be zero.
namespace frame_flag {
inline constexpr std::uint8_t fin = 1u << 0;
inline constexpr std::uint8_t priority = 1u << 1;
inline constexpr std::uint8_t compressed = 1u << 2;
inline constexpr std::uint8_t encrypted = 1u << 3;
inline constexpr std::uint8_t ordered = 1u << 4;
inline constexpr std::uint8_t retransmit = 1u << 5;
inline constexpr std::uint8_t reserved = 0xC0;
} // namespace frame_flag

// Frame priority byte (PROTOCOL.md section 5.3).
enum class priority : std::uint8_t {
    normal = 0x00,
    high = 0x01,
    critical = 0x02,
    control = 0xFF,
};

// Packet header Compression Info byte (PROTOCOL.md section 4.4).
enum class compression : std::uint8_t {
    none = 0x00,
    deflate = 0x01,
};
inline constexpr std::uint8_t compression_max = 0x01;

// Frame extension TLV types (PROTOCOL.md section 5.4).
enum class extension_type : std::uint64_t {
    uncompressed_length = 0x01,
    aead = 0x02,
};
inline constexpr std::size_t aead_nonce_len = 12;
inline constexpr std::size_t aead_extension_len = 1 + aead_nonce_len; // key phase + nonce
inline constexpr std::size_t aead_tag_len = 16;
// The frame flags an ENCRYPTED frame's AAD carries: FIN, COMPRESSED, ENCRYPTED, ORDERED. PRIORITY
// and RETRANSMIT are scheduling hints a sender changes when it resends (PROTOCOL.md 5.4).
inline constexpr std::uint8_t aead_flags_mask = 0x1D;
// The largest AAD: StreamID varint (8) + Offset (8) + flags (1) + the extension area (255).
inline constexpr std::size_t max_aead_aad = 8 + 8 + 1 + 255;

// Control frame types: the first byte of a priority-0xFF frame's data (PROTOCOL.md section 6).
enum class control_type : std::uint8_t {
    ack = 0x01,
    max_data = 0x02,
    max_stream_data = 0x03,
    reset_stream = 0x04,
    path_challenge = 0x05,
    path_response = 0x06,
    connection_close = 0x07,
    data_blocked = 0x08,
    stream_data_blocked = 0x09,
};
inline constexpr std::uint8_t control_type_max = 0x09;
inline constexpr std::size_t path_challenge_len = 8;

// Limits (PROTOCOL.md section 7).
inline constexpr std::uint64_t varint_max = (std::uint64_t{1} << 62) - 1;
inline constexpr std::uint64_t max_stream_offset = std::uint64_t{1} << 62; // offset + length <= this
inline constexpr std::size_t max_packet_size = 16384;
inline constexpr std::size_t max_frames_per_packet = 64;
inline constexpr std::size_t max_ack_ranges = 32;          // gap/range pairs after the first range
inline constexpr std::size_t max_control_payload = 1024;
inline constexpr std::size_t max_extension_bytes = 255;
inline constexpr std::uint64_t max_uncompressed_length = 16384; // stream bytes of one COMPRESSED frame

// Fixed-size parts of the headers, for size arithmetic.
inline constexpr std::size_t packet_header_fixed = 8 + 1 + 4 + 1;  // seq, type, checksum, compression
inline constexpr std::size_t packet_header_min = packet_header_fixed + 2; // + two 1-byte varints
inline constexpr std::size_t frame_header_fixed = 8 + 1 + 4 + 1;  // offset, flags, checksum, priority
inline constexpr std::size_t frame_header_min = frame_header_fixed + 3; // + id, length, ext-length

} // namespace kwik::kdp
