// Every kwik-pcapgen option is declared once, in option_table: its name (also its key in the
// TOML description), default, help text and the function that checks and applies its value.
// The command line and the description both feed text into the same functions, so a bad value
// gets the same message from either, naming the option.
#include "tools/pcapgen/generator_options.hpp"

#include <cstdio>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <fstream>
#include <iostream>
#include <map>
#include <set>
#include <sstream>

#include <CLI/CLI.hpp>
#include <toml++/toml.h>

#include "dataplane/kdp/packet.hpp"
#include "tools/common/hex_key.hpp"
#include "tools/common/result.hpp"

namespace kwik::tools::pcapgen {

namespace {

using values = std::vector<std::string>;

// Options whose meaning depends on others; resolved once every value is known.
struct option_state {
    generator_options o;
    std::uint32_t path_count = 2;
    std::vector<path_spec> explicit_paths;
    std::string weights_text;
};

result<std::uint64_t> parse_uint(const std::string& s, std::uint64_t min, std::uint64_t max) {
    std::uint64_t v = 0;
    const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (ec == std::errc::result_out_of_range) {
        return error{"'" + s + "' is out of range [" + std::to_string(min) + ", " + std::to_string(max) + "]"};
    }
    if (ec != std::errc{} || end != s.data() + s.size() || s.empty()) {
        return error{"'" + s + "' is not a non-negative whole number"};
    }
    if (v < min || v > max) {
        return error{std::to_string(v) + " is out of range [" + std::to_string(min) + ", " +
                     std::to_string(max) + "]"};
    }
    return v;
}

result<double> parse_rate(const std::string& s) {
    double v = 0;
    const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (ec != std::errc{} || end != s.data() + s.size() || s.empty()) {
        return error{"'" + s + "' is not a number"};
    }
    if (!(v >= 0.0 && v < 1.0)) {
        return error{s + " is not a rate in [0, 1)"};
    }
    return v;
}

result<bool> parse_bool(const std::string& s) {
    if (s == "true" || s == "1" || s == "yes" || s == "on") {
        return true;
    }
    if (s == "false" || s == "0" || s == "no" || s == "off") {
        return false;
    }
    return error{"'" + s + "' is not true or false"};
}

// Splits every value on commas: "a,b" and ["a", "b"] mean the same list.
result<values> split_list(const values& in) {
    values out;
    for (const std::string& v : in) {
        std::stringstream ss(v);
        std::string item;
        while (std::getline(ss, item, ',')) {
            const auto b = item.find_first_not_of(" \t");
            const auto e = item.find_last_not_of(" \t");
            if (b == std::string::npos) {
                return error{"empty item in list '" + v + "'"};
            }
            out.push_back(item.substr(b, e - b + 1));
        }
        if (!v.empty() && v.back() == ',') {
            return error{"empty item in list '" + v + "'"};
        }
    }
    if (out.empty()) {
        return error{"empty list"};
    }
    return out;
}

template <class T>
result<void> set_uint(T& field, const values& v, std::uint64_t min, std::uint64_t max) {
    const result<std::uint64_t> r = parse_uint(v.back(), min, max);
    if (!r) {
        return error{r.message()};
    }
    field = static_cast<T>(*r);
    return {};
}

result<void> set_rate(double& field, const values& v) {
    const result<double> r = parse_rate(v.back());
    if (!r) {
        return error{r.message()};
    }
    field = *r;
    return {};
}

result<path_spec> parse_path(const std::string& s) {
    const std::size_t comma = s.find(',');
    if (comma == std::string::npos) {
        return error{"'" + s + "' is not CLIENT_IP:PORT,SERVER_IP:PORT"};
    }
    const std::optional<endpoint> client = parse_endpoint(s.substr(0, comma));
    const std::optional<endpoint> server = parse_endpoint(s.substr(comma + 1));
    if (!client) {
        return error{"'" + s.substr(0, comma) + "' is not IP:PORT (IPv6 as [ADDR]:PORT, port 1-65535)"};
    }
    if (!server) {
        return error{"'" + s.substr(comma + 1) + "' is not IP:PORT (IPv6 as [ADDR]:PORT, port 1-65535)"};
    }
    if (client->addr.version != server->addr.version) {
        return error{"'" + s + "' mixes IPv4 and IPv6 in one path"};
    }
    return path_spec{*client, *server};
}

enum class option_kind : std::uint8_t {
    single,   // one value
    list,     // one value on the command line ("a,b"); a string or an array in the description
    repeated, // the option may be given several times; an array in the description
    flag,     // no value on the command line; true or false in the description
};

struct option_def {
    const char* name;  // long option, and the key in the TOML description
    const char* flags; // CLI11 name list
    const char* type_name;
    const char* default_text; // "" when there is no default
    const char* help;
    option_kind kind;
    result<void> (*apply)(option_state&, const values&);
};

constexpr std::uint64_t u16_max = 65535;
constexpr std::uint64_t u32_max = 0xFFFFFFFF;

const option_def option_table[] = {
    {"output", "-o,--output", "FILE", "", "pcap file to write (required; '-' for standard output)",
     option_kind::single,
     [](option_state& s, const values& v) -> result<void> {
         if (v.back().empty()) {
             return error{"empty file name"};
         }
         s.o.output = v.back();
         return {};
     }},
    {"manifest", "--manifest", "FILE", "",
     "also write a JSON manifest: parameters, every stream's final size and CRC32C, every packet written",
     option_kind::single,
     [](option_state& s, const values& v) -> result<void> {
         if (v.back().empty()) {
             return error{"empty file name"};
         }
         s.o.manifest = v.back();
         return {};
     }},
    {"seed", "--seed", "N", "1", "seed of the std::mt19937_64 that draws sizes and impairments, "
     "and of the random content pattern: the same seed gives a byte-identical file",
     option_kind::single,
     [](option_state& s, const values& v) { return set_uint(s.o.seed, v, 0, UINT64_MAX); }},
    {"connections", "--connections", "N", "1", "connections (1-4096)", option_kind::single,
     [](option_state& s, const values& v) { return set_uint(s.o.connections, v, 1, 4096); }},
    {"paths", "--paths", "N", "2",
     "paths per connection in the default address plan (1-64): path p runs from client "
     "10.0.<p+1>.2 (fd00:0:0:<p+1>::2 with --ipv6) to server 10.100.0.1 (fd00:0:0:100::1)",
     option_kind::single,
     [](option_state& s, const values& v) { return set_uint(s.path_count, v, 1, 64); }},
    {"path", "--path", "CLIENT,SERVER", "",
     "one path of every connection, e.g. 10.0.1.2:40000,10.100.0.1:7707 or "
     "[fd00::2]:40000,[fd00::1]:7707 (repeat for more paths; replaces the default plan; "
     "connection c uses client port + c)",
     option_kind::repeated,
     [](option_state& s, const values& v) -> result<void> {
         for (const std::string& text : v) {
             result<path_spec> p = parse_path(text);
             if (!p) {
                 return error{p.message()};
             }
             s.explicit_paths.push_back(*p);
         }
         return {};
     }},
    {"ipv6", "--ipv6", "", "false", "use IPv6 addresses in the default address plan", option_kind::flag,
     [](option_state& s, const values& v) -> result<void> {
         const result<bool> b = parse_bool(v.back());
         if (!b) {
             return error{b.message()};
         }
         s.o.ipv6 = *b;
         return {};
     }},
    {"client-port", "--client-port", "PORT", "40000",
     "client UDP port of connection 0 in the default address plan; connection c uses port + c",
     option_kind::single, [](option_state& s, const values& v) { return set_uint(s.o.client_port, v, 1, u16_max); }},
    {"server-port", "--server-port", "PORT", "7707", "server UDP port in the default address plan",
     option_kind::single, [](option_state& s, const values& v) { return set_uint(s.o.server_port, v, 1, u16_max); }},
    {"server-mac", "--server-mac", "MAC", "",
     "the server's Ethernet address on every path, e.g. 02:70:63:61:70:00 (a net_pcap port's); default 02:00:00:00:<path>:02",
     option_kind::single, [](option_state& s, const values& v) -> result<void> {
         mac_address m;
         unsigned b[6];
         char tail = 0;
         if (std::sscanf(v.back().c_str(), "%2x:%2x:%2x:%2x:%2x:%2x%c", &b[0], &b[1], &b[2], &b[3], &b[4], &b[5], &tail) != 6) {
             return error{"'" + v.back() + "' is not a MAC address (six hex bytes with ':')"};
         }
         for (int i = 0; i < 6; ++i) {
             m.bytes[i] = static_cast<std::uint8_t>(b[i]);
         }
         s.o.server_mac = m;
         return {};
     }},
    {"streams", "--streams", "N", "4", "streams per connection (1-100000); stream ids 2, 4, .., 2N: client-initiated (docs/PROTOCOL.md 13.1)",
     option_kind::single, [](option_state& s, const values& v) { return set_uint(s.o.streams, v, 1, 100000); }},
    {"stream-size", "--stream-size", "BYTES|MIN-MAX", "16384",
     "bytes per stream, or a range each stream's size is drawn from (at most 2^40)", option_kind::single,
     [](option_state& s, const values& v) -> result<void> {
         const std::string& text = v.back();
         const std::size_t dash = text.find('-');
         constexpr std::uint64_t max_size = std::uint64_t{1} << 40;
         const result<std::uint64_t> lo = parse_uint(text.substr(0, dash), 0, max_size);
         if (!lo) {
             return error{lo.message()};
         }
         std::uint64_t hi_value = *lo;
         if (dash != std::string::npos) {
             const result<std::uint64_t> hi = parse_uint(text.substr(dash + 1), 0, max_size);
             if (!hi) {
                 return error{hi.message()};
             }
             if (*hi < *lo) {
                 return error{"range '" + text + "' has its maximum below its minimum"};
             }
             hi_value = *hi;
         }
         s.o.stream_size_min = *lo;
         s.o.stream_size_max = hi_value;
         return {};
     }},
    {"pattern", "--pattern", "KIND", "counter",
     "stream content: counter ((offset + stream id) & 0xFF), random (splitmix64 of seed, "
     "connection, stream, offset / 8), zero, text (a repeating sentence)",
     option_kind::single,
     [](option_state& s, const values& v) -> result<void> {
         const std::optional<pattern> p = parse_pattern(v.back());
         if (!p) {
             return error{"'" + v.back() + "' is not one of counter, random, zero, text"};
         }
         s.o.content = *p;
         return {};
     }},
    {"max-frame-data", "--max-frame-data", "BYTES", "1200", "most data bytes in one stream frame",
     option_kind::single,
     [](option_state& s, const values& v) {
         return set_uint(s.o.max_frame_data, v, 1, kdp::max_packet_size);
     }},
    {"frames-per-packet", "--frames-per-packet", "N", "1", "most stream frames in one path packet (1-64)",
     option_kind::single,
     [](option_state& s, const values& v) {
         return set_uint(s.o.frames_per_packet, v, 1, kdp::max_frames_per_packet);
     }},
    {"priorities", "--priorities", "LIST", "normal",
     "frame priorities the streams use in turn (normal, high, critical); frames of high and "
     "critical streams travel in priority packets (type 0x04) with the PRIORITY flag",
     option_kind::list,
     [](option_state& s, const values& v) -> result<void> {
         const result<values> items = split_list(v);
         if (!items) {
             return error{items.message()};
         }
         s.o.priorities.clear();
         for (const std::string& item : *items) {
             if (item == "normal") {
                 s.o.priorities.push_back(kdp::priority::normal);
             } else if (item == "high") {
                 s.o.priorities.push_back(kdp::priority::high);
             } else if (item == "critical") {
                 s.o.priorities.push_back(kdp::priority::critical);
             } else {
                 return error{"'" + item + "' is not one of normal, high, critical"};
             }
         }
         return {};
     }},
    {"ordered", "--ordered", "MODE", "none",
     "which streams set the ORDERED flag: none, all, alternate (the 1st, 3rd, 5th .. stream: ids 2, 6, 10 ..)", option_kind::single,
     [](option_state& s, const values& v) -> result<void> {
         const std::string& m = v.back();
         if (m == "none") {
             s.o.ordered = ordered_mode::none;
         } else if (m == "all") {
             s.o.ordered = ordered_mode::all;
         } else if (m == "alternate") {
             s.o.ordered = ordered_mode::alternate;
         } else {
             return error{"'" + m + "' is not one of none, all, alternate"};
         }
         return {};
     }},
    {"spread", "--spread", "MODE", "packet",
     "how data is spread over the paths by weighted round robin: packet (each packet to the "
     "next path) or stream (each stream pinned to one path)",
     option_kind::single,
     [](option_state& s, const values& v) -> result<void> {
         if (v.back() == "packet") {
             s.o.spread = spread_mode::packet;
         } else if (v.back() == "stream") {
             s.o.spread = spread_mode::stream;
         } else {
             return error{"'" + v.back() + "' is not one of packet, stream"};
         }
         return {};
     }},
    {"weights", "--weights", "LIST", "", "relative path weights, one per path (default: equal, "
     "i.e. round robin), e.g. 3,1,1", option_kind::list,
     [](option_state& s, const values& v) -> result<void> {
         const result<values> items = split_list(v);
         if (!items) {
             return error{items.message()};
         }
         s.o.weights.clear();
         std::uint64_t total = 0;
         for (const std::string& item : *items) {
             const result<std::uint64_t> w = parse_uint(item, 0, 1000000);
             if (!w) {
                 return error{w.message()};
             }
             s.o.weights.push_back(static_cast<std::uint32_t>(*w));
             total += *w;
         }
         if (total == 0) {
             return error{"at least one weight must be above 0"};
         }
         return {};
     }},
    {"ack-every", "--ack-every", "N", "4",
     "the server sends an ACK packet (reverse direction) after every N packets it receives "
     "intact on a path, and a last one at the end; 0: no ACKs",
     option_kind::single, [](option_state& s, const values& v) { return set_uint(s.o.ack_every, v, 0, u32_max); }},
    {"keepalive-every", "--keepalive-every", "N", "16",
     "the client sends a keepalive (PATH_CHALLENGE) after every N packets on a path and the "
     "server answers with PATH_RESPONSE; 0: none",
     option_kind::single,
     [](option_state& s, const values& v) { return set_uint(s.o.keepalive_every, v, 0, u32_max); }},
    {"window-update-every", "--window-update-every", "N", "8",
     "the server sends a control packet (MAX_STREAM_DATA and MAX_DATA) after every N data "
     "packets a connection receives; 0: none",
     option_kind::single,
     [](option_state& s, const values& v) { return set_uint(s.o.window_update_every, v, 0, u32_max); }},
    {"window", "--window", "BYTES", "65536", "flow-control window the window updates grant beyond "
     "the bytes received in order", option_kind::single,
     [](option_state& s, const values& v) { return set_uint(s.o.window, v, 1, std::uint64_t{1} << 40); }},
    {"loss", "--loss", "RATE", "0", "fraction of packets lost (not written; stream data is "
     "retransmitted)", option_kind::single, [](option_state& s, const values& v) { return set_rate(s.o.loss, v); }},
    {"reorder", "--reorder", "RATE", "0", "fraction of packets delivered late, behind up to "
     "--reorder-depth later packets", option_kind::single,
     [](option_state& s, const values& v) { return set_rate(s.o.reorder, v); }},
    {"duplicate", "--duplicate", "RATE", "0", "fraction of packets written twice", option_kind::single,
     [](option_state& s, const values& v) { return set_rate(s.o.duplicate, v); }},
    {"corrupt", "--corrupt", "RATE", "0", "fraction of packets with one UDP payload byte changed "
     "after serialisation (the UDP checksum is computed afterwards, so the KDP CRCs catch it; "
     "stream data is retransmitted)", option_kind::single,
     [](option_state& s, const values& v) { return set_rate(s.o.corrupt, v); }},
    {"reorder-depth", "--reorder-depth", "N", "3", "most packets a reordered or duplicated packet "
     "falls behind (1-1000)", option_kind::single,
     [](option_state& s, const values& v) { return set_uint(s.o.reorder_depth, v, 1, 1000); }},
    {"retransmit-delay", "--retransmit-delay", "N", "4", "send slots between a lost or corrupted "
     "packet and its retransmission (1-100000)", option_kind::single,
     [](option_state& s, const values& v) { return set_uint(s.o.retransmit_delay, v, 1, 100000); }},
    {"interval-us", "--interval-us", "USEC", "10", "time between consecutive pcap records",
     option_kind::single,
     [](option_state& s, const values& v) { return set_uint(s.o.interval_us, v, 0, 1000000000); }},
    {"start-time", "--start-time", "SECONDS", "1700000000", "timestamp of the first record (Unix "
     "seconds)", option_kind::single,
     [](option_state& s, const values& v) { return set_uint(s.o.start_time, v, 0, 4000000000); }},
    {"first-sequence", "--first-sequence", "N", "0", "the path sequence number of each path's first packet in "
     "each direction (0 to 2^61): traffic that continues a connection already under way",
     option_kind::single,
     [](option_state& s, const values& v) { return set_uint(s.o.first_sequence, v, 0, std::uint64_t{1} << 61); }},
    {"encrypt-key", "--encrypt-key", "HEX", "", "seal every stream frame as an ENCRYPTED frame under this "
     "AES-256-GCM key (64 hex digits); the manifest does not record it", option_kind::single,
     [](option_state& s, const values& v) -> result<void> {
         const std::optional<std::array<std::uint8_t, 32>> key = parse_key_hex(v.back());
         if (!key) {
             return error{"'" + v.back() + "' is not 64 hex digits (a 32-byte key)"};
         }
         s.o.encrypt_key = *key;
         return {};
     }},
    {"key-phase", "--key-phase", "N", "0", "the Key Phase byte of ENCRYPTED frames (0-255; needs --encrypt-key)",
     option_kind::single,
     [](option_state& s, const values& v) { return set_uint(s.o.key_phase, v, 0, 255); }},
};

// TOML value -> the text the command line would carry. Arrays become several values; a table
// {client = "...", server = "..."} becomes "client,server" (for path).
result<values> toml_values(const toml::node& node) {
    values out;
    auto scalar = [&out](const toml::node& n) -> bool {
        if (const auto* s = n.as_string()) {
            out.push_back(s->get());
        } else if (const auto* i = n.as_integer()) {
            out.push_back(std::to_string(i->get()));
        } else if (const auto* f = n.as_floating_point()) {
            char buf[64];
            const auto r = std::to_chars(buf, buf + sizeof buf, f->get());
            out.emplace_back(buf, r.ptr);
        } else if (const auto* b = n.as_boolean()) {
            out.push_back(b->get() ? "true" : "false");
        } else if (const auto* t = n.as_table()) {
            const auto* client = t->get_as<std::string>("client");
            const auto* server = t->get_as<std::string>("server");
            if (client == nullptr || server == nullptr || t->size() != 2) {
                return false;
            }
            out.push_back(client->get() + "," + server->get());
        } else {
            return false;
        }
        return true;
    };
    if (const auto* arr = node.as_array()) {
        for (const toml::node& n : *arr) {
            if (!scalar(n)) {
                return error{"unsupported value (expected strings, numbers, booleans, or "
                             "{client = \"IP:PORT\", server = \"IP:PORT\"} tables)"};
            }
        }
        return out;
    }
    if (!scalar(node)) {
        return error{"unsupported value (expected a string, number, boolean or array)"};
    }
    return out;
}

struct description_file {
    std::map<std::string, values> entries;
};

// Reads the TOML description. Sets exit_code 1 (cannot read) or 2 (bad content) on failure.
std::optional<description_file> read_description(const std::string& path, int& exit_code) {
    std::ifstream in(path, std::ios::binary);
    if (!in) {
        std::cerr << "kwik-pcapgen: cannot read description file " << path << ": "
                  << std::strerror(errno) << "\n";
        exit_code = 1;
        return std::nullopt;
    }
    std::stringstream buffer;
    buffer << in.rdbuf();
    if (in.bad()) {
        std::cerr << "kwik-pcapgen: cannot read description file " << path << "\n";
        exit_code = 1;
        return std::nullopt;
    }
    description_file d;
    try {
        const toml::table table = toml::parse(buffer.str(), path);
        for (const auto& [key, node] : table) {
            const std::string name(key.str());
            bool known = false;
            for (const option_def& def : option_table) {
                known = known || name == def.name;
            }
            if (!known) {
                std::cerr << "kwik-pcapgen: " << path << ":" << key.source().begin.line << ": unknown key '"
                          << name << "' (the keys are the long option names, without --)\n";
                exit_code = 2;
                return std::nullopt;
            }
            result<values> v = toml_values(node);
            if (!v) {
                std::cerr << "kwik-pcapgen: " << path << ":" << node.source().begin.line << ": key '"
                          << name << "': " << v.message() << "\n";
                exit_code = 2;
                return std::nullopt;
            }
            d.entries[name] = std::move(*v);
        }
    } catch (const toml::parse_error& e) {
        std::cerr << "kwik-pcapgen: " << path << ":" << e.source().begin.line << ":"
                  << e.source().begin.column << ": " << e.description() << "\n";
        exit_code = 2;
        return std::nullopt;
    }
    return d;
}

// The default address plan, or the explicit paths; and the checks that involve several options.
result<void> resolve(option_state& s, const std::set<std::string>& given) {
    generator_options& o = s.o;
    if (o.output.empty()) {
        return error{"--output: required (the pcap file to write)"};
    }
    if (!s.explicit_paths.empty()) {
        if (given.count("paths") != 0 && s.path_count != s.explicit_paths.size()) {
            return error{"--paths: " + std::to_string(s.path_count) + " differs from the " +
                         std::to_string(s.explicit_paths.size()) + " paths given with --path"};
        }
        if (given.count("ipv6") != 0) {
            return error{"--ipv6: applies to the default address plan only; the --path addresses "
                         "decide the IP version"};
        }
        if (given.count("client-port") != 0 || given.count("server-port") != 0) {
            return error{std::string(given.count("client-port") != 0 ? "--client-port" : "--server-port") +
                         ": applies to the default address plan only; --path gives the ports"};
        }
        o.paths = s.explicit_paths;
    } else {
        o.paths.clear();
        const ip_address server = *parse_ip(o.ipv6 ? "fd00:0:0:100::1" : "10.100.0.1");
        for (std::uint32_t p = 0; p < s.path_count; ++p) {
            ip_address client;
            if (o.ipv6) {
                client = *parse_ip("fd00::2");
                client.bytes[6] = static_cast<std::uint8_t>((p + 1) >> 8);
                client.bytes[7] = static_cast<std::uint8_t>(p + 1);
            } else {
                client = *parse_ip("10.0.0.2");
                client.bytes[2] = static_cast<std::uint8_t>(p + 1);
            }
            o.paths.push_back({endpoint{client, o.client_port}, endpoint{server, o.server_port}});
        }
    }
    for (std::size_t p = 0; p < o.paths.size(); ++p) {
        if (o.paths[p].client.port + std::uint64_t{o.connections} - 1 > 65535) {
            return error{std::string(s.explicit_paths.empty() ? "--client-port" : "--path") + ": client port " +
                         std::to_string(o.paths[p].client.port) + " + " + std::to_string(o.connections - 1) +
                         " (one port per connection) is above 65535"};
        }
        for (std::size_t q = 0; q < p; ++q) {
            if (o.paths[p].client == o.paths[q].client && o.paths[p].server == o.paths[q].server) {
                return error{"--path: path " + std::to_string(p) + " repeats path " + std::to_string(q)};
            }
        }
    }
    if (o.weights.empty()) {
        o.weights.assign(o.paths.size(), 1);
    } else if (o.weights.size() != o.paths.size()) {
        return error{"--weights: " + std::to_string(o.weights.size()) + " weights for " +
                     std::to_string(o.paths.size()) + " paths"};
    }
    // The largest packet: frames_per_packet frames of max_frame_data bytes, each with at most
    // 8 + 14 + 2 + 1 bytes of frame header (stream id, fixed part, length, extension length),
    // behind a header of at most 14 + 1 + 2 bytes.
    // ENCRYPTED frames add the AEAD extension (15 bytes) and the tag (16).
    if (given.count("key-phase") != 0 && !o.encrypt_key) {
        return error{"--key-phase: needs --encrypt-key"};
    }
    const std::uint64_t per_frame = 25 + (o.encrypt_key ? 31 : 0);
    const std::uint64_t largest = std::uint64_t{o.frames_per_packet} * (o.max_frame_data + per_frame) + 17;
    if (largest > kdp::max_packet_size) {
        return error{"--max-frame-data: " + std::to_string(o.frames_per_packet) + " frames (--frames-per-packet) of " +
                     std::to_string(o.max_frame_data) + " bytes do not fit in one " +
                     std::to_string(kdp::max_packet_size) + "-byte path packet"};
    }
    return {};
}

} // namespace

parsed_options parse_options(int argc, char** argv) {
    CLI::App app{"kwik-pcapgen: writes a pcap of Kwik (KDP) traffic over UDP: connections with "
                 "several paths, streams of deterministic content, the receiver's ACKs, "
                 "keepalives and window updates, and loss, reordering, duplication and "
                 "corruption with retransmission, so that every byte of every stream is in the "
                 "file at least once intact.",
                 "kwik-pcapgen"};
    app.footer("Every option may also be set in the TOML description file (--config) under its "
               "long name without the dashes (ack-every = 2, priorities = [\"normal\", \"high\"], "
               "path = [\"10.0.1.2:40000,10.100.0.1:7707\"] or [[path]] tables with client and "
               "server); options on the command line override the file.\n"
               "Exit status: 0 written, 1 a file cannot be read or written, 2 a bad option or "
               "description value.");
    app.get_formatter()->column_width(34);

    std::string config_path;
    app.add_option("--config", config_path, "TOML description file")->type_name("FILE");
    std::map<std::string, values> cli_values;
    std::map<std::string, bool> cli_flags;
    std::map<std::string, CLI::Option*> cli_options;
    for (const option_def& def : option_table) {
        std::string help = def.help;
        CLI::Option* opt = nullptr;
        if (def.kind == option_kind::flag) {
            opt = app.add_flag(def.flags, cli_flags[def.name], help);
        } else {
            opt = app.add_option(def.flags, cli_values[def.name], help)->type_name(def.type_name);
            if (def.kind == option_kind::repeated) {
                opt->allow_extra_args(false);
            } else {
                opt->expected(1);
            }
            if (def.default_text[0] != '\0') {
                opt->default_str(def.default_text);
            }
        }
        cli_options[def.name] = opt;
    }

    parsed_options out;
    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        const int rc = app.exit(e);
        out.exit_code = rc == 0 ? 0 : 2;
        return out;
    }

    std::optional<description_file> description;
    if (!config_path.empty()) {
        description = read_description(config_path, out.exit_code);
        if (!description) {
            return out;
        }
    }

    option_state state;
    std::set<std::string> given;
    for (const option_def& def : option_table) {
        values v;
        std::string source;
        if (cli_options[def.name]->count() > 0) {
            v = def.kind == option_kind::flag ? values{"true"} : cli_values[def.name];
            source = std::string("--") + def.name;
            given.insert(def.name);
        } else if (description && description->entries.count(def.name) != 0) {
            v = description->entries[def.name];
            source = config_path + ": key '" + def.name + "' (option --" + def.name + ")";
            given.insert(def.name);
            if (v.empty()) {
                std::cerr << "kwik-pcapgen: " << source << ": empty array\n";
                out.exit_code = 2;
                return out;
            }
            if ((def.kind == option_kind::single || def.kind == option_kind::flag) && v.size() != 1) {
                std::cerr << "kwik-pcapgen: " << source << ": takes one value, not an array\n";
                out.exit_code = 2;
                return out;
            }
        } else if (def.default_text[0] != '\0') {
            v = {def.default_text};
        } else {
            continue;
        }
        const result<void> r = def.apply(state, v);
        if (!r) {
            std::cerr << "kwik-pcapgen: " << source << ": " << r.message() << "\n";
            out.exit_code = 2;
            return out;
        }
    }
    state.o.config = config_path;
    const result<void> r = resolve(state, given);
    if (!r) {
        std::cerr << "kwik-pcapgen: " << r.message() << "\n";
        out.exit_code = 2;
        return out;
    }
    out.options = std::move(state.o);
    return out;
}

std::string_view to_string(ordered_mode m) noexcept {
    switch (m) {
    case ordered_mode::none:
        return "none";
    case ordered_mode::all:
        return "all";
    case ordered_mode::alternate:
        return "alternate";
    }
    return "invalid";
}

std::string_view to_string(spread_mode m) noexcept {
    return m == spread_mode::packet ? "packet" : "stream";
}

std::string_view priority_name(kdp::priority p) noexcept {
    switch (p) {
    case kdp::priority::normal:
        return "normal";
    case kdp::priority::high:
        return "high";
    case kdp::priority::critical:
        return "critical";
    case kdp::priority::control:
        return "control";
    }
    return "unknown";
}

nlohmann::json to_json(const generator_options& o) {
    nlohmann::json paths = nlohmann::json::array();
    for (const path_spec& p : o.paths) {
        paths.push_back({{"client", to_string(p.client)}, {"server", to_string(p.server)}});
    }
    nlohmann::json priorities = nlohmann::json::array();
    for (kdp::priority p : o.priorities) {
        priorities.push_back(priority_name(p));
    }
    return {
        {"seed", o.seed},
        {"connections", o.connections},
        {"paths", paths},
        {"streams", o.streams},
        {"stream_size_min", o.stream_size_min},
        {"stream_size_max", o.stream_size_max},
        {"pattern", to_string(o.content)},
        {"max_frame_data", o.max_frame_data},
        {"frames_per_packet", o.frames_per_packet},
        {"priorities", priorities},
        {"ordered", to_string(o.ordered)},
        {"spread", to_string(o.spread)},
        {"weights", o.weights},
        {"ack_every", o.ack_every},
        {"keepalive_every", o.keepalive_every},
        {"window_update_every", o.window_update_every},
        {"window", o.window},
        {"loss", o.loss},
        {"reorder", o.reorder},
        {"duplicate", o.duplicate},
        {"corrupt", o.corrupt},
        {"reorder_depth", o.reorder_depth},
        {"retransmit_delay", o.retransmit_delay},
        {"interval_us", o.interval_us},
        {"start_time", o.start_time},
        {"first_sequence", o.first_sequence},
        {"encrypted", o.encrypt_key.has_value()},
        {"key_phase", o.key_phase},
    };
}

} // namespace kwik::tools::pcapgen
