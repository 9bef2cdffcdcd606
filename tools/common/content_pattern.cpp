// Bulk generation of the content patterns (the generator fills whole frames at a time).
#include "tools/common/content_pattern.hpp"

#include <cstring>

namespace kwik::tools {

std::optional<pattern> parse_pattern(std::string_view name) noexcept {
    for (pattern p : {pattern::counter, pattern::random, pattern::zero, pattern::text}) {
        if (name == to_string(p)) {
            return p;
        }
    }
    return std::nullopt;
}

std::string_view to_string(pattern p) noexcept {
    switch (p) {
    case pattern::counter:
        return "counter";
    case pattern::random:
        return "random";
    case pattern::zero:
        return "zero";
    case pattern::text:
        return "text";
    }
    return "invalid";
}

void fill_pattern(pattern kind, std::uint64_t seed, std::uint64_t connection,
                  std::uint64_t stream_id, std::uint64_t offset, std::span<std::uint8_t> out) noexcept {
    switch (kind) {
    case pattern::zero:
        std::memset(out.data(), 0, out.size());
        return;
    case pattern::random: {
        std::size_t i = 0;
        while (i < out.size()) {
            const std::uint64_t pos = offset + i;
            const std::uint64_t word = pattern_word(seed, connection, stream_id, pos / 8);
            for (std::uint64_t b = pos % 8; b < 8 && i < out.size(); ++b, ++i) {
                out[i] = static_cast<std::uint8_t>(word >> (8 * b));
            }
        }
        return;
    }
    case pattern::counter:
    case pattern::text:
        for (std::size_t i = 0; i < out.size(); ++i) {
            out[i] = pattern_byte(kind, seed, connection, stream_id, offset + i);
        }
        return;
    }
}

} // namespace kwik::tools
