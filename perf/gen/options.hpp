// kwik-gen's options (the part of the command line after EAL's "--"): what traffic to make or
// replay, how fast, what to count as delivered, the RFC 2544 search, the outputs; and the kwikd
// configuration fragment that matches the synthesised traffic. Set-up only (main thread, before
// and after EAL); no DPDK, so unit-testable.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/result.hpp"

namespace kwik::gen {

enum class expect_kind : std::uint8_t { none, ack, reflect, echo };
enum class endpoint_kind : std::uint8_t { discard, echo };

struct gen_options {
    // port
    std::string port;                 // ethdev name or id; empty: the first port EAL probed
    std::optional<std::array<std::uint8_t, 6>> dst_mac;
    std::uint32_t mtu = 1500;
    std::uint16_t rx_desc = 1024;
    std::uint16_t tx_desc = 1024;
    std::uint32_t mbufs = 0; // 0: sized from the queues
    // synthesis (PROTOCOL.md; the address plan of kwik-pcapgen)
    std::uint32_t connections = 1;
    std::uint32_t paths = 1;
    std::uint32_t streams = 4;            // open at once per connection
    std::uint32_t payload = 1200;         // stream bytes per packet
    std::uint32_t frames_per_packet = 1;
    std::uint64_t stream_size = 64 << 20; // a stream ends (FIN) at this size; a new one opens
    std::uint16_t client_port = 40000;    // connection c sends from client_port + c
    std::uint16_t server_port = 7707;
    // what kwikd was configured with ([transport]); --kwikd-config writes these values
    std::uint64_t stream_window = std::uint64_t{1} << 40;
    std::uint64_t connection_window = std::uint64_t{1} << 40;
    // Streams a connection may ever open: kwikd keeps every stream's state and reserves its tables
    // for max_streams per connection, so this stays in the thousands (4096 x 64 MiB = 256 GiB).
    std::uint32_t max_streams = 4096;
    endpoint_kind endpoint = endpoint_kind::discard;
    std::string kwikd_config;
    std::uint32_t kwikd_workers = 1;
    bool config_only = false;
    // replay
    std::string pcap;
    std::uint64_t loop = 1; // 0: until the duration or packet budget ends
    // rate
    double rate_pps = 0;  // 0: as fast as the port takes them
    double rate_mbps = 0; // wire bits including 24 B per frame (preamble, IFG, FCS)
    std::uint32_t burst = 32;
    double duration_s = 10;
    std::uint64_t packets = 0; // 0: no budget
    std::uint32_t drain_ms = 500;
    // returns
    expect_kind expect = expect_kind::ack;
    std::uint32_t ack_delay_us = 1000; // our ACKs of kwikd's packets (echo, keepalives)
    std::uint32_t track_window = 32768; // send records kept per path (power of two)
    std::uint32_t idle_sleep_us = 0;    // a worker with nothing to do sleeps this long (0: busy polls)
    // search
    bool search = false;
    double search_min_pps = 10000;
    double search_max_pps = 0; // required with --search
    double trial_s = 2;
    double loss_tolerance = 0;
    double resolution = 0.01;
    double latency_at = 0.9;
    // output
    std::string json; // "-" = stdout
    bool quiet = false;

    bool synthesis() const noexcept { return pcap.empty(); }
};

// Parses the options (args[0] is the program name). On failure the error names the flag; the
// caller prints it and exits 2. help is set when --help was asked for (text in help_text).
struct parse_outcome {
    std::optional<gen_options> options;
    std::string message; // the error, or the help text
    bool help = false;
};
parse_outcome parse_options(std::span<const std::string> args);

// The parameters as given, for the JSON report.
nlohmann::json to_json(const gen_options& o);

// The [transport], [[connection]] and [[connection.path]] blocks kwikd needs for this traffic
// (connection c is kwikd's connection c + 1, on kwikd worker c % kwikd_workers).
std::string kwikd_config_text(const gen_options& o);

std::string_view to_string(expect_kind e) noexcept;
std::string_view to_string(endpoint_kind e) noexcept;

// Largest Kwik payload (UDP payload) a packet may have on this MTU.
inline std::uint32_t max_udp_payload(std::uint32_t mtu) noexcept { return mtu - 28; }

} // namespace kwik::gen
