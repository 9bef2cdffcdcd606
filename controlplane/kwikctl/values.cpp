// kwikctl's value parsers; see values.hpp.
#include "controlplane/kwikctl/values.hpp"

#include <arpa/inet.h>

#include <cerrno>
#include <charconv>
#include <cmath>

namespace kwik::ctl {

namespace {

std::string quoted(std::string_view text) {
    std::string q = "\"";
    for (const char c : text) {
        if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {
            static constexpr char digits[] = "0123456789abcdef";
            q += "\\x";
            q += digits[static_cast<unsigned char>(c) >> 4];
            q += digits[static_cast<unsigned char>(c) & 15];
        } else {
            if (c == '"' || c == '\\') {
                q += '\\';
            }
            q += c;
        }
    }
    return q + "\"";
}

error bad(std::string_view text, std::string_view why) {
    return error{quoted(text) + " " + std::string(why), EINVAL};
}

bool is_v4(const std::string& a) {
    in_addr x{};
    return ::inet_pton(AF_INET, a.c_str(), &x) == 1;
}

bool is_v6(const std::string& a) {
    in6_addr x{};
    return ::inet_pton(AF_INET6, a.c_str(), &x) == 1;
}

// Splits "host:port" / "[v6]:port"; the reasons name what is missing.
result<std::pair<std::string, std::uint16_t>> split_port(std::string_view text, std::string_view what) {
    const std::size_t colon = text.rfind(':');
    if (colon == std::string_view::npos) {
        return bad(text, "is not " + std::string(what));
    }
    std::string_view host = text.substr(0, colon);
    if (!host.empty() && host.front() == '[') {
        if (host.size() < 2 || host.back() != ']') {
            return bad(text, "has an unclosed '['");
        }
        host = host.substr(1, host.size() - 2);
    } else if (host.find(':') != std::string_view::npos) {
        return bad(text, "is not " + std::string(what) + ": write an IPv6 address as [addr]:port");
    }
    if (host.empty()) {
        return bad(text, "is not " + std::string(what) + ": no host before the ':'");
    }
    const std::string_view digits = text.substr(colon + 1);
    unsigned port = 0;
    const auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), port);
    if (digits.empty() || ec != std::errc{} || end != digits.data() + digits.size() || port == 0 || port > 65535) {
        return bad(text, "is not " + std::string(what) + ": no port in 1..65535 after the last ':'");
    }
    return std::pair{std::string(host), static_cast<std::uint16_t>(port)};
}

} // namespace

result<host_port> parse_host_port(std::string_view text) {
    auto s = split_port(text, "host:port");
    if (!s) {
        return s.failure();
    }
    for (const char c : s->first) {
        if (static_cast<unsigned char>(c) <= 0x20 || c == 0x7f) {
            return bad(text, "is not host:port: the host has a space or control character");
        }
    }
    return host_port{s->first, s->second};
}

bool is_loopback_host(std::string_view host) {
    if (host == "localhost") {
        return true;
    }
    const std::string h(host);
    in_addr a{};
    if (::inet_pton(AF_INET, h.c_str(), &a) == 1) {
        return (ntohl(a.s_addr) >> 24) == 127;
    }
    in6_addr a6{};
    return ::inet_pton(AF_INET6, h.c_str(), &a6) == 1 && IN6_IS_ADDR_LOOPBACK(&a6);
}

result<path_end> parse_path_end(std::string_view text) {
    auto s = split_port(text, "address:port");
    if (!s) {
        return s.failure();
    }
    const bool bracketed = text.front() == '[';
    if (!bracketed && is_v4(s->first)) {
        return path_end{s->first, s->second, false};
    }
    if (bracketed && is_v6(s->first)) {
        return path_end{s->first, s->second, true};
    }
    return bad(text, "is not address:port: " + quoted(s->first) + " is not a numeric IPv4 address or a bracketed IPv6 one");
}

result<std::string> parse_connection(std::string_view text) {
    const auto why = "is not a connection: give its KCP connection id (32 hex digits), kwikd's number or "
                     "kwikd's name (1-63 letters, digits, '.', '_', ':', '-')";
    if (text.empty()) {
        return bad(text, why);
    }
    bool all_hex = text.size() == 32;
    for (const char c : text) {
        const bool alnum = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
        if (!alnum && c != '.' && c != '_' && c != ':' && c != '-') {
            return bad(text, why);
        }
        all_hex = all_hex && ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'));
    }
    if (all_hex) {
        // KCP connection ids are lowercase (auth.hpp accepted_hello); accept either case.
        std::string lower(text);
        for (char& c : lower) {
            c = (c >= 'A' && c <= 'F') ? static_cast<char>(c - 'A' + 'a') : c;
        }
        return lower;
    }
    if (text.size() > 63) {
        return bad(text, why);
    }
    return std::string(text);
}

result<std::uint64_t> parse_unsigned(std::string_view text, std::uint64_t min, std::uint64_t max) {
    const std::string range = std::to_string(min) + ".." + std::to_string(max);
    std::uint64_t v = 0;
    const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
    if (text.empty() || ec == std::errc::invalid_argument || end != text.data() + text.size()) {
        return bad(text, "is not a whole number in " + range);
    }
    if (ec == std::errc::result_out_of_range || v < min || v > max) {
        return bad(text, "is outside " + range);
    }
    return v;
}

result<double> parse_real(std::string_view text, double min, double max) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%g..%g", min, max);
    double v = 0;
    const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
    if (text.empty() || ec != std::errc{} || end != text.data() + text.size() || !std::isfinite(v)) {
        return bad(text, std::string("is not a number in ") + buf);
    }
    if (v < min || v > max) {
        return bad(text, std::string("is outside ") + buf);
    }
    return v;
}

result<kcp::v3::TrafficDistributionPlan::Strategy> parse_strategy(std::string_view text) {
    using plan = kcp::v3::TrafficDistributionPlan;
    if (text == "min-rtt") {
        return plan::MIN_RTT;
    }
    if (text == "weighted") {
        return plan::WEIGHTED;
    }
    if (text == "round-robin") {
        return plan::ROUND_ROBIN;
    }
    if (text == "redundant") {
        return plan::REDUNDANT;
    }
    return bad(text, "is not min-rtt, weighted, round-robin or redundant");
}

result<path_weight> parse_path_weight(std::string_view text) {
    const std::size_t eq = text.find('=');
    if (eq == std::string_view::npos) {
        return bad(text, "is not PATH=WEIGHT (e.g. 1=3)");
    }
    auto id = parse_unsigned(text.substr(0, eq), 1, max_path_id);
    if (!id) {
        return bad(text, "is not PATH=WEIGHT: the path id " + id.message());
    }
    auto w = parse_real(text.substr(eq + 1), 0, 1e9);
    if (!w) {
        return bad(text, "is not PATH=WEIGHT: the weight " + w.message());
    }
    return path_weight{*id, static_cast<float>(*w)};
}

result<std::string> parse_server_id(std::string_view text) {
    if (text.empty() || text.size() > 128) {
        return bad(text, "is not a server id: 1..128 characters");
    }
    for (const char c : text) {
        if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {
            return bad(text, "is not a server id: it has a control character");
        }
    }
    return std::string(text);
}

} // namespace kwik::ctl
