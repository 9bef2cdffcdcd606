// The deterministic stream content of kwik-pcapgen: byte `offset` of stream `stream_id` on
// connection `connection` is a pure function of those and the seed, so a reader (kwik-dump,
// a test, the simulator) can check any byte without the generator's state. Any thread.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string_view>

namespace kwik::tools {

enum class pattern : std::uint8_t {
    counter, // (offset + stream_id) & 0xFF
    random,  // splitmix64 keyed by (seed, connection, stream, offset / 8), byte offset % 8
    zero,    // all zeros
    text,    // a repeating printable sentence, byte offset % its length: compressible
};

std::optional<pattern> parse_pattern(std::string_view name) noexcept;
std::string_view to_string(pattern p) noexcept;

// SplitMix64 (Steele, Lea, Flood 2014): one step of the generator from state x.
constexpr std::uint64_t splitmix64(std::uint64_t x) noexcept {
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

inline constexpr std::string_view pattern_sentence =
    "Kwik carries every stream over every path, and the quick brown fox jumps over the lazy dog. ";

// The random pattern's 8-byte word: splitmix64 chained over the four keys.
constexpr std::uint64_t pattern_word(std::uint64_t seed, std::uint64_t connection,
                                     std::uint64_t stream_id, std::uint64_t word) noexcept {
    return splitmix64(splitmix64(splitmix64(splitmix64(seed) ^ connection) ^ stream_id) ^ word);
}

constexpr std::uint8_t pattern_byte(pattern kind, std::uint64_t seed, std::uint64_t connection,
                                    std::uint64_t stream_id, std::uint64_t offset) noexcept {
    switch (kind) {
    case pattern::counter:
        return static_cast<std::uint8_t>((offset + stream_id) & 0xFF);
    case pattern::random:
        return static_cast<std::uint8_t>(pattern_word(seed, connection, stream_id, offset / 8) >>
                                         (8 * (offset % 8)));
    case pattern::zero:
        return 0;
    case pattern::text:
        return static_cast<std::uint8_t>(pattern_sentence[offset % pattern_sentence.size()]);
    }
    return 0;
}

// out[i] = pattern_byte(kind, seed, connection, stream_id, offset + i), a word at a time.
void fill_pattern(pattern kind, std::uint64_t seed, std::uint64_t connection,
                  std::uint64_t stream_id, std::uint64_t offset, std::span<std::uint8_t> out) noexcept;

} // namespace kwik::tools
