// kwik-peer's command line: the client and server subcommands (CLI11), every value checked
// with an answer that names its flag, made into the data loop's settings and the KCP options.
// Pure apart from reading --key-file; one thread (the caller's).
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.hpp"
#include "tools/peer/peer_loop.hpp"

namespace kwik::peer {

// kwik-peer's exit statuses.
enum exit_status : int {
    exit_ok = 0,          // transfer done and verified (server: stopped cleanly)
    exit_failed = 1,      // verification mismatch, connection closed, timeout, server said it is gone
    exit_usage = 2,       // a bad flag or value (the message names the flag)
    exit_unreachable = 3, // could not connect to or authenticate with kwik-cp, or open the sockets
};

// How the client reaches kwik-cp (without --static).
struct kcp_options {
    std::string server;                          // host:port
    std::optional<std::array<std::uint8_t, 32>> pin; // --pin; none with --plain
    bool plain = false;
    std::string key_id;
    std::array<std::uint8_t, 32> key{};          // from --key-file
    std::string client_id = "kwik-peer";
    bool discover = false;
    bool encrypt = true;
    double scale_at_s = -1;                      // < 0: no scaling request
    std::uint32_t scale_target_mbps = 0;
};

struct peer_options {
    loop_settings loop;
    std::string json_path; // empty: no JSON report
    bool static_paths = false; // client --static: no control plane
    kcp_options kcp;
};

struct parse_outcome {
    int exit_code = exit_ok; // when parsed is empty: exit_ok (--help) or exit_usage
    std::string out;         // help (stdout)
    std::string err;         // "kwik-peer: --flag: reason" (stderr)
    std::optional<peer_options> parsed;
};

// args: without the program name.
parse_outcome parse_command_line(const std::vector<std::string>& args);

// "1048576", "64k", "256M", "2G" (binary multiples); 1 .. 2^40.
result<std::uint64_t> parse_size(std::string_view text);
// 64 hex digits.
std::optional<std::array<std::uint8_t, 32>> parse_hex32(std::string_view text);

} // namespace kwik::peer
