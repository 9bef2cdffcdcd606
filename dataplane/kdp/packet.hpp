// KDP path packets and frames: zero-copy parse with strict validation (one drop_reason per
// rejection) and serialisation into caller-provided buffers (PROTOCOL.md sections 3-7).
// No allocation, no exceptions. A packet_view is owned by the one thread that parses into it.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>

#include "dataplane/kdp/bytes.hpp"
#include "dataplane/kdp/control.hpp"
#include "dataplane/kdp/drop_reason.hpp"
#include "dataplane/kdp/varint.hpp"
#include "dataplane/kdp/wire.hpp"

namespace kwik::kdp {

// One frame as found in a packet. Positions are byte offsets from the start of the datagram, so
// the caller maps them onto its own buffers (an mbuf chain) without the codec copying payload.
struct frame_view {
    std::uint64_t stream_id;
    std::uint64_t offset;
    std::uint64_t stream_length;       // bytes of stream space covered: uncompressed, no AEAD tag
    std::uint32_t header_pos;          // first byte of the frame
    std::uint32_t ext_pos;             // first byte of the extension TLVs
    std::uint32_t data_pos;            // first byte of the transport data
    std::uint32_t data_length;         // bytes of transport data on the wire
    std::uint32_t checksum;            // frame CRC32C as received
    std::uint16_t ext_length;
    std::uint8_t flags;
    std::uint8_t priority;
    std::uint8_t control;   // control_type for priority 0xFF frames, else 0
    std::uint8_t key_phase; // ENCRYPTED frames
    std::uint8_t nonce_pos; // ENCRYPTED frames: nonce offset from ext_pos
    bool checksum_ok;       // meaningful after a successful parse (or in inspect mode)

    bool is_control() const noexcept { return priority == static_cast<std::uint8_t>(priority::control); }
};

struct packet_view {
    std::uint64_t seq;
    std::uint32_t checksum; // as received
    std::uint32_t header_length;
    std::uint32_t total_length; // body bytes after the header
    std::uint32_t frame_count;
    std::uint8_t type;
    std::uint8_t compression;
    bool checksum_ok;
    std::uint32_t frames_parsed; // in inspect mode after a rejection: frames decoded before it
    std::array<frame_view, max_frames_per_packet> frames;

    std::span<const frame_view> frame_span() const noexcept { return {frames.data(), frame_count}; }
};

enum class parse_mode : std::uint8_t {
    verify,  // stop at the first violation; the data-plane fast path
    inspect, // verify every checksum and record each result (kwik-dump); stop only on structure
};

// Parses and verifies one datagram payload (the UDP payload). Returns drop_reason::none when the
// packet is valid. Source is contiguous_bytes or chained_bytes.
template <parse_mode Mode = parse_mode::verify, class Source>
drop_reason parse_packet(const Source& src, packet_view& out) noexcept;

// ---- serialisation ----

// A frame to write. For a control frame set priority to control and data to an encoded control
// payload (encode_control), stream_id and offset from control_stream_id/control_offset.
struct frame_desc {
    std::uint64_t stream_id = 0;
    std::uint64_t offset = 0;
    std::uint8_t flags = 0;
    priority prio = priority::normal;
    std::span<const std::uint8_t> data;
    std::uint64_t uncompressed_length = 0; // written when flags has COMPRESSED
    std::uint8_t key_phase = 0;            // written with nonce when flags has ENCRYPTED
    std::array<std::uint8_t, aead_nonce_len> nonce{};
    bool has_checksum = false; // checksum holds the data's CRC32C already (kept with the send
    std::uint32_t checksum = 0; // buffer, reused on retransmission); else it is computed
};

struct packet_desc {
    std::uint64_t seq = 0;
    packet_type type = packet_type::data;
    compression comp = compression::none;
    std::span<const frame_desc> frames;
};

struct write_result {
    std::size_t size = 0;                   // bytes written; 0 on failure
    drop_reason invalid = drop_reason::none; // the rule the description breaks, if any
    bool ok() const noexcept { return size != 0; }
};

std::size_t frame_wire_size(const frame_desc& f) noexcept;
std::size_t packet_wire_size(const packet_desc& p) noexcept;

// Writes p into out. Fails (size 0) when out is too small or p breaks a rule the parser
// enforces; then invalid names the rule (none means only that out was too small).
write_result serialize_packet(const packet_desc& p, std::span<std::uint8_t> out) noexcept;

// The AAD of an ENCRYPTED frame (PROTOCOL.md 5.4): StreamID varint || Offset (8, BE) ||
// (Flags AND aead_flags_mask) || the extension TLV bytes. The sender's form takes the frame as
// serialize_packet() will write it (flags, key_phase, nonce and uncompressed_length final); the
// receiver's reads the bytes of a parsed frame from the datagram. Both return the AAD's length.
std::size_t frame_aad(const frame_desc& f, std::span<std::uint8_t, max_aead_aad> out) noexcept;
std::size_t frame_aad(std::span<const std::uint8_t> datagram, const frame_view& f,
                      std::span<std::uint8_t, max_aead_aad> out) noexcept;

// The rules a frame's header fields must satisfy, shared by the parser and the serialiser.
struct frame_fields {
    std::uint64_t stream_id;
    std::uint64_t offset;
    std::uint64_t data_length;
    std::uint64_t uncompressed_length;
    std::uint8_t flags;
    std::uint8_t priority;
    std::uint64_t ext_length;
    bool has_uncompressed_length;
    bool has_aead;
};
// On success *stream_length is the stream space the frame covers.
drop_reason check_frame(const frame_fields& f, std::uint8_t packet_type_byte,
                        std::uint8_t compression_byte, std::uint64_t* stream_length) noexcept;
// Which control types a packet type admits, and whether it admits stream frames.
drop_reason check_control_in_packet(control_type t, std::uint8_t packet_type_byte) noexcept;

} // namespace kwik::kdp

#include "dataplane/kdp/packet_parse.hpp"
