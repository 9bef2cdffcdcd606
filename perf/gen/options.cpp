// kwik-gen's options; see options.hpp.
#include "perf/gen/options.hpp"

#include <CLI/CLI.hpp>

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <cmath>
#include <sstream>

namespace kwik::gen {

namespace {

// Bytes of KDP around the stream data of one packet at most: an 18-byte packet header and, per
// frame, a stream id of up to 4 bytes (ids stay below 2^30), offset, flags, a 2-byte length,
// checksum, priority and extension length (PROTOCOL.md 4.1, 5.1).
constexpr std::uint32_t kdp_overhead(std::uint32_t frames) { return 18 + frames * 21; }

result<std::uint64_t> parse_uint(std::string_view flag, const std::string& text, std::uint64_t min,
                                 std::uint64_t max) {
    std::uint64_t scale = 1;
    std::string_view digits = text;
    if (!digits.empty()) {
        switch (digits.back()) {
        case 'K': case 'k': scale = 1ull << 10; break;
        case 'M': case 'm': scale = 1ull << 20; break;
        case 'G': case 'g': scale = 1ull << 30; break;
        case 'T': case 't': scale = 1ull << 40; break;
        default: break;
        }
        if (scale != 1) {
            digits.remove_suffix(1);
        }
    }
    std::uint64_t v = 0;
    const auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), v);
    if (digits.empty() || ec != std::errc{} || end != digits.data() + digits.size() || v > max / scale ||
        v * scale < min) {
        return error{std::string(flag) + ": \"" + text + "\" is not a whole number in " + std::to_string(min) + ".." +
                     std::to_string(max) + " (suffixes K, M, G, T: powers of 1024)"};
    }
    return v * scale;
}

result<double> parse_real(std::string_view flag, const std::string& text, double min, double max) {
    double v = 0;
    const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
    if (text.empty() || ec != std::errc{} || end != text.data() + text.size() || !std::isfinite(v) || v < min ||
        v > max) {
        std::ostringstream m;
        m << flag << ": \"" << text << "\" is not a number in " << min << ".." << max;
        return error{m.str()};
    }
    return v;
}

std::optional<std::array<std::uint8_t, 6>> parse_mac(const std::string& text) {
    std::array<std::uint8_t, 6> m{};
    if (text.size() != 17) {
        return std::nullopt;
    }
    for (std::size_t i = 0; i < 6; ++i) {
        if (i > 0 && text[i * 3 - 1] != ':') {
            return std::nullopt;
        }
        unsigned v = 0;
        const auto [end, ec] = std::from_chars(text.data() + i * 3, text.data() + i * 3 + 2, v, 16);
        if (ec != std::errc{} || end != text.data() + i * 3 + 2) {
            return std::nullopt;
        }
        m[i] = static_cast<std::uint8_t>(v);
    }
    return m;
}

struct texts {
    std::string port, dst_mac, mtu = "1500", rx_desc = "1024", tx_desc = "1024", mbufs = "0";
    std::string connections = "1", paths = "1", streams = "4", payload = "1200", frames = "1", stream_size = "64M";
    std::string client_port = "40000", server_port = "7707";
    std::string stream_window = "1T", connection_window = "1T", max_streams = "4096";
    std::string endpoint = "discard", kwikd_config, kwikd_workers = "1";
    std::string pcap, loop = "1";
    std::string rate_pps, rate_mbps, burst = "32", duration_s = "10", packets = "0", drain_ms = "500";
    std::string expect, ack_delay_us = "1000", track_window = "32768", idle_sleep_us = "0";
    std::string search_min = "10000", search_max, trial_s = "2", loss_tolerance = "0", resolution = "0.01",
                latency_at = "0.9";
    std::string json;
    bool config_only = false, search = false, quiet = false;
};

result<void> fill(const texts& t, const CLI::App& app, gen_options& o) {
    auto given = [&app](const char* name) { return app.get_option(name)->count() > 0; };
#define KWIK_UINT(field, flag, text, min, max)                                                                     \
    if (auto v = parse_uint(flag, text, min, max); !v) {                                                           \
        return v.failure();                                                                                        \
    } else {                                                                                                       \
        o.field = static_cast<decltype(o.field)>(*v);                                                              \
    }
#define KWIK_REAL(field, flag, text, min, max)                                                                     \
    if (auto v = parse_real(flag, text, min, max); !v) {                                                           \
        return v.failure();                                                                                        \
    } else {                                                                                                       \
        o.field = *v;                                                                                              \
    }
    o.port = t.port;
    if (!t.dst_mac.empty()) {
        o.dst_mac = parse_mac(t.dst_mac);
        if (!o.dst_mac) {
            return error{"--dst-mac: \"" + t.dst_mac + "\" is not a MAC address like 02:00:00:00:00:01"};
        }
    }
    KWIK_UINT(mtu, "--mtu", t.mtu, 68, 9600)
    KWIK_UINT(rx_desc, "--rx-desc", t.rx_desc, 32, 32768)
    KWIK_UINT(tx_desc, "--tx-desc", t.tx_desc, 32, 32768)
    KWIK_UINT(mbufs, "--mbufs", t.mbufs, 0, 1u << 24)
    if (o.mbufs != 0 && o.mbufs < 1024) {
        return error{"--mbufs: " + t.mbufs + " is below 1024 (0 sizes the pool from the queues)"};
    }
    KWIK_UINT(connections, "--connections", t.connections, 1, 4096)
    KWIK_UINT(paths, "--paths", t.paths, 1, 64) // transport::scheduler_max_paths
    KWIK_UINT(streams, "--streams", t.streams, 1, 64)
    KWIK_UINT(payload, "--payload", t.payload, 1, 16000)
    KWIK_UINT(frames_per_packet, "--frames-per-packet", t.frames, 1, 64)
    KWIK_UINT(stream_size, "--stream-size", t.stream_size, 1, std::uint64_t{1} << 40)
    KWIK_UINT(client_port, "--client-port", t.client_port, 1, 65535)
    KWIK_UINT(server_port, "--server-port", t.server_port, 1, 65535)
    KWIK_UINT(stream_window, "--stream-window", t.stream_window, 1024, std::uint64_t{1} << 40)
    KWIK_UINT(connection_window, "--connection-window", t.connection_window, 1024, std::uint64_t{1} << 40)
    KWIK_UINT(max_streams, "--max-streams", t.max_streams, 1, 1 << 20)
    KWIK_UINT(kwikd_workers, "--kwikd-workers", t.kwikd_workers, 1, 128)
    KWIK_UINT(loop, "--loop", t.loop, 0, std::uint64_t{1} << 40)
    KWIK_UINT(burst, "--burst", t.burst, 1, 512)
    KWIK_REAL(duration_s, "--duration-s", t.duration_s, 0.01, 86400)
    KWIK_UINT(packets, "--packets", t.packets, 0, std::uint64_t{1} << 48)
    KWIK_UINT(drain_ms, "--drain-ms", t.drain_ms, 0, 60000)
    KWIK_UINT(ack_delay_us, "--ack-delay-us", t.ack_delay_us, 1, 1000000)
    KWIK_UINT(track_window, "--track-window", t.track_window, 64, 1u << 22)
    KWIK_UINT(idle_sleep_us, "--idle-sleep-us", t.idle_sleep_us, 0, 100000)
    if ((o.track_window & (o.track_window - 1)) != 0) {
        return error{"--track-window: " + t.track_window + " is not a power of two"};
    }
    if (!t.rate_pps.empty() && !t.rate_mbps.empty()) {
        return error{"--rate-mbps: give either --rate-pps or --rate-mbps, not both"};
    }
    if (!t.rate_pps.empty()) {
        KWIK_REAL(rate_pps, "--rate-pps", t.rate_pps, 1, 1e9)
    }
    if (!t.rate_mbps.empty()) {
        KWIK_REAL(rate_mbps, "--rate-mbps", t.rate_mbps, 0.001, 1e7)
    }
    o.search = t.search;
    KWIK_REAL(search_min_pps, "--search-min-pps", t.search_min, 1, 1e9)
    KWIK_REAL(trial_s, "--trial-s", t.trial_s, 0.01, 3600)
    KWIK_REAL(loss_tolerance, "--loss-tolerance", t.loss_tolerance, 0, 1)
    KWIK_REAL(resolution, "--resolution", t.resolution, 1e-6, 0.5)
    KWIK_REAL(latency_at, "--latency-at", t.latency_at, 0.01, 1)
    if (o.search) {
        if (t.search_max.empty()) {
            return error{"--search-max-pps: required with --search"};
        }
        KWIK_REAL(search_max_pps, "--search-max-pps", t.search_max, 1, 1e9)
        if (o.search_max_pps <= o.search_min_pps) {
            return error{"--search-max-pps: " + t.search_max + " is not above --search-min-pps " + t.search_min};
        }
        if (o.rate_pps != 0 || o.rate_mbps != 0) {
            return error{std::string(o.rate_pps != 0 ? "--rate-pps" : "--rate-mbps") +
                         ": the search sets the rate of each trial; leave it out with --search"};
        }
        if (given("--packets")) {
            return error{"--packets: a search trial lasts --trial-s; leave --packets out with --search"};
        }
    } else {
        for (const char* f : {"--search-max-pps", "--search-min-pps", "--trial-s", "--loss-tolerance", "--resolution",
                              "--latency-at"}) {
            if (given(f)) {
                return error{std::string(f) + ": only with --search"};
            }
        }
    }
    if (t.endpoint == "discard") {
        o.endpoint = endpoint_kind::discard;
    } else if (t.endpoint == "echo") {
        o.endpoint = endpoint_kind::echo;
    } else {
        return error{"--endpoint: \"" + t.endpoint + "\" is not discard or echo"};
    }
    o.pcap = t.pcap;
    if (t.expect.empty()) {
        o.expect = !o.synthesis() ? expect_kind::reflect : o.endpoint == endpoint_kind::echo ? expect_kind::echo
                                                                                           : expect_kind::ack;
    } else if (t.expect == "ack") {
        o.expect = expect_kind::ack;
    } else if (t.expect == "reflect") {
        o.expect = expect_kind::reflect;
    } else if (t.expect == "echo") {
        o.expect = expect_kind::echo;
    } else if (t.expect == "none") {
        o.expect = expect_kind::none;
    } else {
        return error{"--expect: \"" + t.expect + "\" is not ack, reflect, echo or none"};
    }
    if (o.search && o.expect == expect_kind::none) {
        return error{"--expect: none counts nothing as delivered, so no --search trial could pass"};
    }
    o.kwikd_config = t.kwikd_config;
    o.config_only = t.config_only;
    o.json = t.json;
    o.quiet = t.quiet;

    // Cross-checks.
    if (o.synthesis()) {
        if (!o.dst_mac && !o.config_only) {
            return error{"--dst-mac: required when synthesising traffic (kwikd's port MAC, from its start-up log)"};
        }
        if (o.frames_per_packet > o.payload) {
            return error{"--frames-per-packet: " + t.frames + " frames cannot share " + t.payload +
                         " payload bytes (each frame carries at least one)"};
        }
        if (o.frames_per_packet > o.streams) {
            return error{"--frames-per-packet: " + t.frames + " is above --streams " + t.streams +
                         " (each frame of a packet belongs to another stream)"};
        }
        const std::uint32_t room = std::min<std::uint32_t>(max_udp_payload(o.mtu), 16384);
        if (o.payload + kdp_overhead(o.frames_per_packet) > room) {
            return error{"--payload: " + t.payload + " bytes in " + t.frames + " frame(s) need a " +
                         std::to_string(o.payload + kdp_overhead(o.frames_per_packet)) +
                         "-byte UDP payload; --mtu " + t.mtu + " allows " + std::to_string(room)};
        }
        if (std::uint64_t{o.client_port} + o.connections - 1 > 65535) {
            return error{"--connections: client port " + t.client_port + " + " + std::to_string(o.connections - 1) +
                         " (one port per connection) is above 65535"};
        }
        if (o.stream_size > o.stream_window) {
            return error{"--stream-size: " + t.stream_size + " is above --stream-window " + t.stream_window +
                         " (a stream would wait for MAX_STREAM_DATA; raise the window)"};
        }
        if (o.connection_window < o.stream_window) {
            return error{"--connection-window: " + t.connection_window + " is below --stream-window " +
                         t.stream_window + " (kwikd refuses that configuration)"};
        }
        if (o.expect == expect_kind::echo && o.endpoint != endpoint_kind::echo) {
            return error{"--expect: echo needs --endpoint echo (what --kwikd-config writes and kwik-gen assumes)"};
        }
    } else {
        for (const char* f : {"--connections", "--paths", "--streams", "--payload", "--frames-per-packet",
                              "--stream-size", "--kwikd-config", "--endpoint"}) {
            if (given(f)) {
                return error{std::string(f) + ": synthesis only; --pcap replays the file as it is"};
            }
        }
        if (o.expect == expect_kind::ack || o.expect == expect_kind::echo) {
            return error{"--expect: " + t.expect + " needs synthesised traffic (kwik-gen's own sequence numbers); "
                         "with --pcap use reflect or none"};
        }
    }
    if (o.config_only && o.kwikd_config.empty()) {
        return error{"--config-only: needs --kwikd-config FILE"};
    }
    if (given("--kwikd-workers") && o.kwikd_config.empty()) {
        return error{"--kwikd-workers: only with --kwikd-config"};
    }
#undef KWIK_UINT
#undef KWIK_REAL
    return {};
}

} // namespace

parse_outcome parse_options(std::span<const std::string> args) {
    CLI::App app{"kwik-gen: a DPDK traffic generator for Kwik (docs/KWIK_GEN.md).\n"
                 "Usage: kwik-gen [EAL arguments] -- [options]"};
    app.set_help_flag("-h,--help", "print this help and exit");
    texts t;
    app.add_option("--port", t.port, "ethdev port name or id (default: the first port EAL probed)");
    app.add_option("--dst-mac", t.dst_mac, "destination MAC of synthesised packets (kwikd's port MAC); required");
    app.add_option("--mtu", t.mtu, "port MTU (default 1500)");
    app.add_option("--rx-desc", t.rx_desc, "rx descriptors per queue (default 1024)");
    app.add_option("--tx-desc", t.tx_desc, "tx descriptors per queue (default 1024)");
    app.add_option("--mbufs", t.mbufs, "mbufs in the pool (default: sized from the queues)");
    app.add_option("--connections", t.connections, "Kwik connections (default 1), client port 40000 + c");
    app.add_option("--paths", t.paths, "paths per connection (default 1), client 10.0.<p>.2, path id p");
    app.add_option("--streams", t.streams, "streams open at once per connection (default 4)");
    app.add_option("--payload", t.payload, "stream bytes per packet (default 1200)");
    app.add_option("--frames-per-packet", t.frames, "STREAM frames per packet, each another stream (default 1)");
    app.add_option("--stream-size", t.stream_size, "bytes of a stream before its FIN (default 64M)");
    app.add_option("--client-port", t.client_port, "first client UDP port (default 40000)");
    app.add_option("--server-port", t.server_port, "kwikd's UDP port (default 7707); server 10.100.0.1");
    app.add_option("--stream-window", t.stream_window, "kwikd's transport.stream_window (default 1T)");
    app.add_option("--connection-window", t.connection_window, "kwikd's transport.connection_window (default 1T)");
    app.add_option("--max-streams", t.max_streams, "kwikd's transport.max_streams: streams a connection ever opens (default 4096)");
    app.add_option("--endpoint", t.endpoint, "kwikd's stream endpoint for --kwikd-config: discard or echo");
    app.add_option("--kwikd-config", t.kwikd_config, "write kwikd's [transport] and [[connection]] blocks here");
    app.add_option("--kwikd-workers", t.kwikd_workers, "kwikd's worker count: connection c on kwikd worker c % W");
    app.add_flag("--config-only", t.config_only, "write --kwikd-config and exit without starting EAL");
    app.add_option("--pcap", t.pcap, "replay this pcap instead of synthesising");
    app.add_option("--loop", t.loop, "times to replay the pcap (default 1; 0: until the duration ends)");
    app.add_option("--rate-pps", t.rate_pps, "packets per second over all workers (default: as fast as possible)");
    app.add_option("--rate-mbps", t.rate_mbps, "wire Mbit/s over all workers, 24 B per frame added");
    app.add_option("--burst", t.burst, "packets per tx burst (default 32)");
    app.add_option("--duration-s", t.duration_s, "seconds of sending (default 10)");
    app.add_option("--packets", t.packets, "stop after this many packets (default: no limit)");
    app.add_option("--drain-ms", t.drain_ms, "wait for returns after the last send (default 500)");
    app.add_option("--expect", t.expect, "what counts as delivered: ack, reflect, echo or none");
    app.add_option("--ack-delay-us", t.ack_delay_us, "longest wait before acknowledging kwikd's packets (default 1000)");
    app.add_option("--track-window", t.track_window, "send records kept per path, a power of two (default 32768)");
    app.add_option("--idle-sleep-us", t.idle_sleep_us, "an idle worker sleeps this long (default 0: busy polls; "
                   "for machines whose cores are shared)");
    app.add_flag("--search", t.search, "RFC 2544: binary search of the highest rate without loss");
    app.add_option("--search-min-pps", t.search_min, "lowest rate tried (default 10000)");
    app.add_option("--search-max-pps", t.search_max, "highest rate tried (required with --search)");
    app.add_option("--trial-s", t.trial_s, "seconds per trial (default 2)");
    app.add_option("--loss-tolerance", t.loss_tolerance, "loss fraction a trial may have and pass (default 0)");
    app.add_option("--resolution", t.resolution, "stop when the interval is this fraction of its top (default 0.01)");
    app.add_option("--latency-at", t.latency_at, "latency trial at this fraction of the found rate (default 0.9)");
    app.add_option("--json", t.json, "write the report here ('-': stdout)");
    app.add_flag("--quiet", t.quiet, "no progress line on stderr");

    std::vector<const char*> argv;
    for (const std::string& a : args) {
        argv.push_back(a.c_str());
    }
    parse_outcome out;
    try {
        app.parse(static_cast<int>(argv.size()), argv.data());
    } catch (const CLI::CallForHelp&) {
        out.help = true;
        out.message = app.help();
        return out;
    } catch (const CLI::ParseError& e) {
        out.message = e.what();
        return out;
    }
    gen_options o;
    if (auto r = fill(t, app, o); !r) {
        out.message = r.message();
        return out;
    }
    out.options = std::move(o);
    return out;
}

std::string_view to_string(expect_kind e) noexcept {
    switch (e) {
    case expect_kind::none: return "none";
    case expect_kind::ack: return "ack";
    case expect_kind::reflect: return "reflect";
    case expect_kind::echo: return "echo";
    }
    return "?";
}

std::string_view to_string(endpoint_kind e) noexcept {
    return e == endpoint_kind::echo ? "echo" : "discard";
}

nlohmann::json to_json(const gen_options& o) {
    nlohmann::json j;
    j["port"] = o.port;
    if (o.dst_mac) {
        char mac[18];
        std::snprintf(mac, sizeof mac, "%02x:%02x:%02x:%02x:%02x:%02x", (*o.dst_mac)[0], (*o.dst_mac)[1],
                      (*o.dst_mac)[2], (*o.dst_mac)[3], (*o.dst_mac)[4], (*o.dst_mac)[5]);
        j["dst_mac"] = mac;
    }
    j["mtu"] = o.mtu;
    j["mode"] = o.synthesis() ? "synthesis" : "pcap";
    if (o.synthesis()) {
        j["connections"] = o.connections;
        j["paths"] = o.paths;
        j["streams"] = o.streams;
        j["payload"] = o.payload;
        j["frames_per_packet"] = o.frames_per_packet;
        j["stream_size"] = o.stream_size;
        j["client_port"] = o.client_port;
        j["server_port"] = o.server_port;
        j["stream_window"] = o.stream_window;
        j["connection_window"] = o.connection_window;
        j["max_streams"] = o.max_streams;
        j["endpoint"] = to_string(o.endpoint);
    } else {
        j["pcap"] = o.pcap;
        j["loop"] = o.loop;
    }
    j["rate_pps"] = o.rate_pps;
    j["rate_mbps"] = o.rate_mbps;
    j["burst"] = o.burst;
    j["duration_s"] = o.duration_s;
    j["packets"] = o.packets;
    j["drain_ms"] = o.drain_ms;
    j["expect"] = to_string(o.expect);
    j["ack_delay_us"] = o.ack_delay_us;
    j["track_window"] = o.track_window;
    j["idle_sleep_us"] = o.idle_sleep_us;
    j["search"] = o.search;
    if (o.search) {
        j["search_min_pps"] = o.search_min_pps;
        j["search_max_pps"] = o.search_max_pps;
        j["trial_s"] = o.trial_s;
        j["loss_tolerance"] = o.loss_tolerance;
        j["resolution"] = o.resolution;
        j["latency_at"] = o.latency_at;
    }
    return j;
}

std::string kwikd_config_text(const gen_options& o) {
    std::ostringstream s;
    s << "# Written by kwik-gen for " << o.connections << " connection(s) x " << o.paths
      << " path(s); append to a configuration whose [[port]] has address 10.100.0.1 and kwik_ports = ["
      << o.server_port << "] and no [[connection]] of its own.\n# kwikd puts its n-th [[connection]] on worker "
      << "n % workers: connection c here is on kwikd worker c % " << o.kwikd_workers
      << " (kwik-gen's connection c is kwikd's connection c + 1).\n"
      << "[transport]\nstream_window = " << o.stream_window << "\nconnection_window = " << o.connection_window
      << "\nmax_streams = " << o.max_streams << "\nmax_paths = " << std::max<std::uint32_t>(o.paths, 8)
      << "\nidle_timeout_ms = 600000\n";
    for (std::uint32_t c = 0; c < o.connections; ++c) {
        s << "\n[[connection]]\nid = \"gen-" << c << "\"\nrole = \"server\"\nendpoint = \"" << to_string(o.endpoint)
          << "\"\n";
        for (std::uint32_t p = 0; p < o.paths; ++p) {
            s << "[[connection.path]]\npath_id = " << p + 1 << "\nlocal = \"10.100.0.1:" << o.server_port
              << "\"\nremote = \"10.0." << p + 1 << ".2:" << o.client_port + c << "\"\n";
        }
    }
    return s.str();
}

} // namespace kwik::gen
