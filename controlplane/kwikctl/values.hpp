// The values kwikctl reads from its flags, its environment and its config file, each parsed
// strictly from text with a reason that quotes it: host:port, address:port of a path end,
// connection names, bounded integers, weights, strategies. Pure; any thread.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "common/result.hpp"
#include "proto/kcp.pb.h"

namespace kwik::ctl {

using kwik::error;
using kwik::result;

// Every reason below reads after "<field>: ", e.g. "--server: \"x\" is not host:port".

// "host:port", "192.0.2.1:7708" or "[2001:db8::1]:7708": a non-empty host and a port 1..65535.
struct host_port {
    std::string host; // without brackets
    std::uint16_t port = 0;
};
result<host_port> parse_host_port(std::string_view text);

// True for "localhost", 127.0.0.0/8 and ::1: where --insecure-plain is allowed.
bool is_loopback_host(std::string_view host);

// A path end: a numeric IPv4 or IPv6 address (IPv6 in brackets) and a port 1..65535, as
// UdpPath carries it (textual address, no zone).
struct path_end {
    std::string address;
    std::uint32_t port = 0;
    bool v6 = false;
};
result<path_end> parse_path_end(std::string_view text);

// A connection as kwik-cp names it (OperatorRequest): its KCP connection id (32 hex digits),
// kwikd's number, or kwikd's name (1-63 letters, digits, '.', '_', ':', '-').
result<std::string> parse_connection(std::string_view text);

// A decimal integer in [min, max]; no sign, no spaces, no leading '+'.
result<std::uint64_t> parse_unsigned(std::string_view text, std::uint64_t min, std::uint64_t max);

// A finite decimal number in [min, max] (max_inclusive false: below max).
result<double> parse_real(std::string_view text, double min, double max);

// "min-rtt", "weighted", "round-robin", "redundant".
result<kcp::v3::TrafficDistributionPlan::Strategy> parse_strategy(std::string_view text);

// "PATH=WEIGHT" of `set weights`: a path id >= 1 and a finite weight >= 0.
struct path_weight {
    std::uint64_t path_id = 0;
    float weight = 0;
};
result<path_weight> parse_path_weight(std::string_view text);

// 1..128 characters with no control characters (ServerRegistration.server_id).
result<std::string> parse_server_id(std::string_view text);

// The largest path id kwikd accepts (a QUIC varint, 2^62 - 1).
inline constexpr std::uint64_t max_path_id = (std::uint64_t{1} << 62) - 1;

} // namespace kwik::ctl
