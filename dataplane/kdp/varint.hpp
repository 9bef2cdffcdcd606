// KDP variable-length integers: QUIC's encoding (RFC 9000 section 16), 1/2/4/8 bytes, 62-bit
// values, the two high bits of the first byte give the length. Only the shortest encoding of a
// value is valid (PROTOCOL.md section 3.2). Pure functions; any thread.
#pragma once

#include <cstddef>
#include <cstdint>

#include "dataplane/kdp/wire.hpp"

namespace kwik::kdp {

// Bytes the shortest encoding of v takes; 0 when v does not fit in 62 bits.
constexpr std::size_t varint_size(std::uint64_t v) noexcept {
    if (v < (1u << 6)) {
        return 1;
    }
    if (v < (1u << 14)) {
        return 2;
    }
    if (v < (1u << 30)) {
        return 4;
    }
    if (v <= varint_max) {
        return 8;
    }
    return 0;
}

// Length of an encoding, from its first byte.
constexpr std::size_t varint_length(std::uint8_t first) noexcept {
    return std::size_t{1} << (first >> 6);
}

// Writes the shortest encoding of v at out, which has at least varint_size(v) bytes.
// Returns the bytes written (0 when v is above varint_max; nothing is written then).
inline std::size_t varint_write(std::uint8_t* out, std::uint64_t v) noexcept {
    const std::size_t n = varint_size(v);
    switch (n) {
    case 1:
        out[0] = static_cast<std::uint8_t>(v);
        break;
    case 2:
        out[0] = static_cast<std::uint8_t>(0x40 | (v >> 8));
        out[1] = static_cast<std::uint8_t>(v);
        break;
    case 4:
        out[0] = static_cast<std::uint8_t>(0x80 | (v >> 24));
        out[1] = static_cast<std::uint8_t>(v >> 16);
        out[2] = static_cast<std::uint8_t>(v >> 8);
        out[3] = static_cast<std::uint8_t>(v);
        break;
    case 8:
        out[0] = static_cast<std::uint8_t>(0xC0 | (v >> 56));
        for (std::size_t i = 1; i < 8; ++i) {
            out[i] = static_cast<std::uint8_t>(v >> (8 * (7 - i)));
        }
        break;
    default:
        break;
    }
    return n;
}

enum class varint_status : std::uint8_t { ok, truncated, non_minimal };

// Decodes one varint from the n bytes at p. On ok, *value and *used are set.
inline varint_status varint_read(const std::uint8_t* p, std::size_t n, std::uint64_t* value,
                                 std::size_t* used) noexcept {
    if (n == 0) [[unlikely]] {
        return varint_status::truncated;
    }
    const std::size_t len = varint_length(p[0]);
    if (len > n) [[unlikely]] {
        return varint_status::truncated;
    }
    std::uint64_t v = p[0] & 0x3F;
    for (std::size_t i = 1; i < len; ++i) {
        v = (v << 8) | p[i];
    }
    if (len > 1 && varint_size(v) != len) [[unlikely]] {
        return varint_status::non_minimal;
    }
    *value = v;
    *used = len;
    return varint_status::ok;
}

} // namespace kwik::kdp
