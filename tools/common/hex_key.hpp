// The 32-byte AES-256-GCM keys of ENCRYPTED frames as the tools take them on the command line:
// 64 hex digits, either case. Header-only (kwikd-cmd, kwik-pcapgen, kwik-dump); any thread.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string_view>

namespace kwik::tools {

inline std::optional<std::array<std::uint8_t, 32>> parse_key_hex(std::string_view text) noexcept {
    std::array<std::uint8_t, 32> key{};
    if (text.size() != 2 * key.size()) {
        return std::nullopt;
    }
    auto nibble = [](char ch) -> int {
        if (ch >= '0' && ch <= '9') {
            return ch - '0';
        }
        if (ch >= 'a' && ch <= 'f') {
            return ch - 'a' + 10;
        }
        if (ch >= 'A' && ch <= 'F') {
            return ch - 'A' + 10;
        }
        return -1;
    };
    for (std::size_t i = 0; i < key.size(); ++i) {
        const int hi = nibble(text[2 * i]);
        const int lo = nibble(text[2 * i + 1]);
        if (hi < 0 || lo < 0) {
            return std::nullopt;
        }
        key[i] = static_cast<std::uint8_t>(hi << 4 | lo);
    }
    return key;
}

} // namespace kwik::tools
