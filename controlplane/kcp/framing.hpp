// KCP framing (PROTOCOL.md 11.1): on a TCP or TLS byte stream every KCPMessage is one frame, a
// protobuf base-128 varint length (1..5 bytes, minimal) followed by that many bytes of the
// serialized message. encode() builds a frame; frame_reader takes the stream in pieces of any
// size and gives back whole messages or the one error that ends the session. Pure code, no I/O;
// one frame_reader per session, owned by one thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "proto/kcp.pb.h"

namespace kwik::kcp {

using v3::KCPMessage;

// A KCPMessage above this size is refused by default (PROTOCOL.md 11.1, decision 3).
inline constexpr std::size_t default_max_message_size = std::size_t{1} << 20;
// The length prefix is a varint32: at most 5 bytes, values up to 2^32 - 1.
inline constexpr std::size_t max_length_prefix_size = 5;
// No KCPMessage can be serialized above protobuf's own 2 GiB limit.
inline constexpr std::size_t max_encodable_size = 0x7FFFFFFF;

// Why a frame was refused. Every one of them ends the session (PROTOCOL.md 11.1).
enum class frame_error : std::uint8_t {
    none = 0,
    length_too_long,    // the length varint goes on past 5 bytes
    length_overflow,    // a 5-byte length varint above 2^32 - 1
    length_non_minimal, // the length varint has a redundant trailing 0x00 group
    length_zero,        // a frame of length 0 (no message is empty: the header is required)
    message_too_large,  // the length is above the session's max_message_size
    payload_invalid,    // the bytes are not a KCPMessage (protobuf wire format or UTF-8)
    payload_missing,    // a KCPMessage with no payload member set (or one this build lacks)
    header_missing,     // a KCPMessage without its MessageHeader
    truncated,          // the stream ended inside a frame (reported by the session, not here)
};
inline constexpr std::size_t frame_error_count = 10;
static_assert(static_cast<std::size_t>(frame_error::truncated) + 1 == frame_error_count);

// "length_non_minimal", ...: the identifier, for counters and logs.
std::string_view to_string(frame_error e) noexcept;

// Bytes of the minimal varint encoding of n (1..5 for a 32-bit n, up to 10 for 64 bits).
std::size_t varint_size(std::uint64_t n) noexcept;

// Appends one frame holding m to out. The payload is serialized deterministically (map entries
// in key order), so equal messages give equal frames. Returns false and leaves out as it was
// when m is larger than max_encodable_size; the caller checks its own limit first.
[[nodiscard]] bool append_frame(std::string& out, const KCPMessage& m);

// One frame holding m; empty when m is larger than max_encodable_size.
std::string encode(const KCPMessage& m);

// Reassembles frames from a byte stream. feed() takes bytes as they come; next() hands out the
// complete messages in order. The first bad frame stops the reader for good: error() and
// reason() say what was wrong (reason names the sizes and bytes at fault, for a person).
//
//     reader.feed(bytes);
//     while (reader.next(msg) == frame_reader::status::message) { handle(msg); }
//     if (reader.failed()) { close the session with reader.reason(); }
class frame_reader {
public:
    enum class status : std::uint8_t { message, need_more, error };

    explicit frame_reader(std::size_t max_message_size = default_max_message_size);

    // Appends bytes of the stream. Ignored once the reader has failed.
    void feed(std::string_view bytes);
    void feed(const void* data, std::size_t size) {
        feed(std::string_view(static_cast<const char*>(data), size));
    }

    // The next complete message into out (replacing its contents), need_more when the buffered
    // bytes end inside a frame (or there are none), error once a frame is refused. A refused
    // length is reported as soon as its varint is complete, before its payload arrives.
    status next(KCPMessage& out);

    bool failed() const noexcept { return _error != frame_error::none; }
    frame_error error() const noexcept { return _error; }
    const std::string& reason() const noexcept { return _reason; }

    // Bytes fed but not yet handed out as messages: > 0 means a frame has started.
    std::size_t buffered() const noexcept { return _buf.size() - _pos; }
    std::size_t max_message_size() const noexcept { return _max; }
    // Frames handed out so far.
    std::uint64_t frames() const noexcept { return _frames; }

private:
    status fail(frame_error e, std::string reason);

    std::string _buf;
    std::size_t _pos = 0; // start of the first frame not yet handed out
    std::size_t _max;
    std::uint64_t _frames = 0;
    std::uint64_t _offset = 0; // stream offset of _buf[0], so reasons can name where
    frame_error _error = frame_error::none;
    std::string _reason;
};

// The name of m's payload member ("client_hello", ...), or "none".
std::string_view payload_name(const KCPMessage& m) noexcept;

} // namespace kwik::kcp
