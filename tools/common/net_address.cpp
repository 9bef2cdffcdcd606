// Address text conversion through inet_pton/inet_ntop, so both tools print the canonical form.
#include "tools/common/net_address.hpp"

#include <arpa/inet.h>

#include <charconv>

namespace kwik::tools {

std::optional<ip_address> parse_ip(std::string_view text) {
    const std::string s(text);
    ip_address a;
    if (inet_pton(AF_INET, s.c_str(), a.bytes.data()) == 1) {
        a.version = 4;
        return a;
    }
    if (inet_pton(AF_INET6, s.c_str(), a.bytes.data()) == 1) {
        a.version = 6;
        return a;
    }
    return std::nullopt;
}

std::optional<endpoint> parse_endpoint(std::string_view text) {
    std::string_view host;
    std::string_view port;
    if (!text.empty() && text.front() == '[') {
        const std::size_t close = text.find(']');
        if (close == std::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':') {
            return std::nullopt;
        }
        host = text.substr(1, close - 1);
        port = text.substr(close + 2);
    } else {
        const std::size_t colon = text.rfind(':');
        if (colon == std::string_view::npos) {
            return std::nullopt;
        }
        host = text.substr(0, colon);
        port = text.substr(colon + 1);
        if (host.find(':') != std::string_view::npos) {
            return std::nullopt; // an IPv6 address needs brackets before its port
        }
    }
    unsigned value = 0;
    const auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
    if (ec != std::errc{} || end != port.data() + port.size() || value == 0 || value > 65535) {
        return std::nullopt;
    }
    const std::optional<ip_address> addr = parse_ip(host);
    if (!addr) {
        return std::nullopt;
    }
    return endpoint{*addr, static_cast<std::uint16_t>(value)};
}

std::string to_string(const ip_address& a) {
    char buf[INET6_ADDRSTRLEN] = {};
    inet_ntop(a.version == 4 ? AF_INET : AF_INET6, a.bytes.data(), buf, sizeof buf);
    return buf;
}

std::string to_string(const endpoint& e) {
    if (e.addr.version == 6) {
        return "[" + to_string(e.addr) + "]:" + std::to_string(e.port);
    }
    return to_string(e.addr) + ":" + std::to_string(e.port);
}

ip_address offset_address(const ip_address& a, std::uint32_t n) noexcept {
    ip_address out = a;
    std::uint32_t carry = n;
    for (std::size_t i = a.size(); i-- > 0 && carry != 0;) {
        const std::uint32_t sum = out.bytes[i] + (carry & 0xFF);
        out.bytes[i] = static_cast<std::uint8_t>(sum);
        carry = (carry >> 8) + (sum >> 8);
    }
    return out;
}

} // namespace kwik::tools
