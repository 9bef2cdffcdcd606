// IPv4/IPv6 addresses and UDP endpoints as the codec tools read and print them
// ("10.0.1.2:40000", "[fd00::2]:40000"). Pure values and functions; any thread.
#pragma once

#include <array>
#include <compare>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace kwik::tools {

struct ip_address {
    std::uint8_t version = 4;             // 4 or 6
    std::array<std::uint8_t, 16> bytes{}; // network order; IPv4 uses the first 4

    std::size_t size() const noexcept { return version == 4 ? 4 : 16; }
    auto operator<=>(const ip_address&) const = default;
};

struct endpoint {
    ip_address addr;
    std::uint16_t port = 0;

    auto operator<=>(const endpoint&) const = default;
};

// "10.0.0.1" or "fd00::1" (no brackets). nullopt when it is neither.
std::optional<ip_address> parse_ip(std::string_view text);
// "10.0.0.1:7707" or "[fd00::1]:7707"; the port must be 1-65535.
std::optional<endpoint> parse_endpoint(std::string_view text);

// Canonical text (inet_ntop), so that two tools printing the same address agree.
std::string to_string(const ip_address& a);
// "10.0.0.1:7707", "[fd00::1]:7707".
std::string to_string(const endpoint& e);

// a + n, carrying through the low bytes (for address plans: the n-th host after a).
ip_address offset_address(const ip_address& a, std::uint32_t n) noexcept;

} // namespace kwik::tools
