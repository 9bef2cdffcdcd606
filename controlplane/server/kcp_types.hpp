// Small types that kwik-cp's server parts (auth, registry, ...) share: byte strings of the KCP
// hello, protocol versions, a hash for string-keyed maps. Any thread.
#pragma once

#include <array>
#include <compare>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string_view>

namespace kwik::cp {

// Pre-shared keys, challenges, client nonces, proofs and data keys are all 32 bytes.
inline constexpr std::size_t secret_size = 32;
using bytes32 = std::array<std::uint8_t, secret_size>;

// A KCP version (proto ProtocolVersion) as a value type.
struct protocol_version {
    std::uint32_t major = 0;
    std::uint32_t minor = 0;
    friend auto operator<=>(const protocol_version&, const protocol_version&) = default;
};

// Lets std::unordered_map<std::string, T, string_hash, std::equal_to<>> be searched with a
// std::string_view without building a std::string.
struct string_hash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
};

} // namespace kwik::cp
