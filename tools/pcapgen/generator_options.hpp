// What kwik-pcapgen generates: connections, paths, streams, content, packet shapes, the
// receiver's ACK / keepalive / window-update behaviour and the impairments, from the command
// line and an optional TOML description file (command-line options override the file).
// Set-up only; one thread.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "dataplane/kdp/wire.hpp"
#include "tools/common/content_pattern.hpp"
#include "tools/common/net_address.hpp"
#include "tools/common/net_headers.hpp"

namespace kwik::tools::pcapgen {

struct path_spec {
    endpoint client; // for connection c the client port is this port + c
    endpoint server;
};

enum class ordered_mode : std::uint8_t { none, all, alternate };
enum class spread_mode : std::uint8_t {
    packet, // every packet goes to the next path by weighted round robin
    stream, // every stream is pinned to a path by weighted round robin over the streams
};

struct generator_options {
    std::string output;
    std::string manifest;
    std::string config;
    std::uint64_t seed = 1;
    std::uint32_t connections = 1;
    std::vector<path_spec> paths; // always filled after parsing (default plan or --path)
    bool ipv6 = false;
    std::uint16_t client_port = 40000;
    std::uint16_t server_port = kdp::default_udp_port;
    std::optional<mac_address> server_mac; // one MAC for the server on every path (else 02:00:00:00:pp:02)
    std::uint32_t streams = 4;
    std::uint64_t stream_size_min = 16384;
    std::uint64_t stream_size_max = 16384;
    pattern content = pattern::counter;
    std::uint32_t max_frame_data = 1200;
    std::uint32_t frames_per_packet = 1;
    std::vector<kdp::priority> priorities{kdp::priority::normal}; // stream i: priorities[i % n]
    ordered_mode ordered = ordered_mode::none;
    spread_mode spread = spread_mode::packet;
    std::vector<std::uint32_t> weights; // one per path
    std::uint32_t ack_every = 4;
    std::uint32_t keepalive_every = 16;
    std::uint32_t window_update_every = 8;
    std::uint64_t window = 65536;
    double loss = 0;
    double reorder = 0;
    double duplicate = 0;
    double corrupt = 0;
    std::uint32_t reorder_depth = 3;
    std::uint32_t retransmit_delay = 4;
    std::uint64_t interval_us = 10;
    std::uint64_t start_time = 1700000000;
    std::uint64_t first_sequence = 0; // every path's first sequence number, both directions
    // --encrypt-key: every stream frame is sealed as an ENCRYPTED frame (PROTOCOL.md 5.4, 13.8)
    // under this AES-256-GCM key and key_phase, with the client's nonces (prefix "KCLI", a
    // counter per connection from 0). The manifest records that it was used, never the key.
    std::optional<std::array<std::uint8_t, 32>> encrypt_key;
    std::uint8_t key_phase = 0;
};

// Parses argv and the --config file. On success exit_code is unset and options are set;
// otherwise the message is already printed and the process should exit with exit_code
// (0 after --help, 2 for a bad option or description value, 1 for an unreadable file).
struct parsed_options {
    std::optional<generator_options> options;
    int exit_code = 0;
};
parsed_options parse_options(int argc, char** argv);

// The parameters as the manifest records them.
nlohmann::json to_json(const generator_options& o);

std::string_view to_string(ordered_mode m) noexcept;
std::string_view to_string(spread_mode m) noexcept;
std::string_view priority_name(kdp::priority p) noexcept;

} // namespace kwik::tools::pcapgen
