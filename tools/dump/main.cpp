// kwik-dump: decodes the Kwik (KDP) packets in pcap/pcapng captures, one JSON object per line
// per packet, with an optional summary of every stream's reassembly and a check against a
// kwik-pcapgen manifest. See --help.
#include <pcap/pcap.h>

#include <array>
#include <cstdio>
#include <iostream>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "dataplane/kdp/packet.hpp"
#include "dataplane/transport/frame_protection.hpp"
#include "tools/common/hex_key.hpp"
#include "tools/common/net_headers.hpp"
#include "tools/dump/manifest_expectation.hpp"
#include "tools/dump/packet_report.hpp"
#include "tools/dump/traffic_summary.hpp"

namespace {

using namespace kwik::tools;
using namespace kwik::tools::dump;
namespace kdp = kwik::kdp;

struct dump_options {
    std::vector<std::string> inputs;
    std::vector<std::uint16_t> ports;
    bool hex = false;
    bool summary = false;
    bool summary_only = false;
    std::string expect;
    std::string connection_key = "client-port";
    std::string key_hex;
    std::optional<std::array<std::uint8_t, 32>> key; // --key: opens ENCRYPTED frames
};

// --key: verifies and decrypts every ENCRYPTED stream frame of an accepted packet in plain (a
// copy of the payload), notes the outcome in its report (aead_verified; plaintext_hex with
// --hex), and makes each verified frame plaintext in v (flag cleared, tag dropped), so that
// the summary reassembles and checks the stream bytes. Frames that fail stay opaque.
void open_frames(const std::array<std::uint8_t, 32>& key, std::span<const std::uint8_t> payload,
                 std::vector<std::uint8_t>& plain, kdp::packet_view& v, nlohmann::json& frames, bool hex) {
    plain.assign(payload.begin(), payload.end());
    for (std::uint32_t i = 0; i < v.frame_count; ++i) {
        kdp::frame_view& f = v.frames[i];
        if (f.is_control() || (f.flags & kdp::frame_flag::encrypted) == 0) {
            continue;
        }
        std::array<std::uint8_t, kdp::max_aead_aad> aad;
        const std::size_t aad_len = kdp::frame_aad(payload, f, aad);
        const std::size_t ct = f.data_length - kdp::aead_tag_len;
        const bool ok = kwik::transport::aes256gcm_open(
            key, std::span<const std::uint8_t, kdp::aead_nonce_len>(payload.data() + f.ext_pos + f.nonce_pos, kdp::aead_nonce_len),
            {aad.data(), aad_len}, {plain.data() + f.data_pos, ct},
            std::span<const std::uint8_t, kdp::aead_tag_len>(payload.data() + f.data_pos + ct, kdp::aead_tag_len));
        frames[i]["aead_verified"] = ok;
        if (!ok) {
            continue;
        }
        if (hex) {
            frames[i]["plaintext_hex"] = hex_bytes({plain.data() + f.data_pos, ct});
        }
        f.flags = static_cast<std::uint8_t>(f.flags & ~kdp::frame_flag::encrypted);
        f.data_length = static_cast<std::uint32_t>(ct);
    }
}

std::optional<link_layer> link_layer_of(int dlt) {
    switch (dlt) {
    case DLT_EN10MB:
        return link_layer::ethernet;
    case DLT_RAW:
#ifdef DLT_IPV4
    case DLT_IPV4:
#endif
#ifdef DLT_IPV6
    case DLT_IPV6:
#endif
        return link_layer::raw_ip;
    case DLT_NULL:
    case DLT_LOOP:
        return link_layer::bsd_null;
    case DLT_LINUX_SLL:
        return link_layer::linux_sll;
#ifdef DLT_LINUX_SLL2
    case DLT_LINUX_SLL2:
        return link_layer::linux_sll2;
#endif
    default:
        return std::nullopt;
    }
}

std::string dump_line(const nlohmann::json& j) {
    // Control frames may carry arbitrary bytes (CONNECTION_CLOSE reasons): never throw on them.
    return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

class capture_reader {
public:
    capture_reader(const dump_options& o, traffic_summary& summary)
        : _o(o), _ports(o.ports.begin(), o.ports.end()), _summary(summary) {}

    // Reads one file; returns false (after printing why) when it cannot be read to the end.
    bool read(const std::string& path);

private:
    void packet(const pcap_pkthdr& h, const std::uint8_t* data, link_layer link, const std::string& path);

    const dump_options& _o;
    std::set<std::uint16_t> _ports;
    traffic_summary& _summary;
    std::vector<std::uint8_t> _plain; // --key: the payload with its ENCRYPTED frames opened
    std::uint64_t _index = 0;
};

bool capture_reader::read(const std::string& path) {
    char errbuf[PCAP_ERRBUF_SIZE] = {};
    pcap_t* p = pcap_open_offline_with_tstamp_precision(path.c_str(), PCAP_TSTAMP_PRECISION_NANO, errbuf);
    if (p == nullptr) {
        std::cerr << "kwik-dump: cannot read " << (path == "-" ? "standard input" : path) << ": " << errbuf << "\n";
        return false;
    }
    const int dlt = pcap_datalink(p);
    const std::optional<link_layer> link = link_layer_of(dlt);
    if (!link) {
        const char* name = pcap_datalink_val_to_name(dlt);
        std::cerr << "kwik-dump: " << path << ": link type " << (name != nullptr ? name : std::to_string(dlt))
                  << " not supported (Ethernet, raw IP, BSD loopback, Linux cooked)\n";
        pcap_close(p);
        return false;
    }
    bool ok = true;
    for (;;) {
        pcap_pkthdr* h = nullptr;
        const std::uint8_t* data = nullptr;
        const int r = pcap_next_ex(p, &h, &data);
        if (r == 1) {
            packet(*h, data, *link, path);
        } else if (r == PCAP_ERROR_BREAK) {
            break; // end of file
        } else {
            std::cerr << "kwik-dump: " << path << ": read error after " << _index << " packets: " << pcap_geterr(p) << "\n";
            ok = false;
            break;
        }
    }
    pcap_close(p);
    return ok;
}

void capture_reader::packet(const pcap_pkthdr& h, const std::uint8_t* data, link_layer link,
                            const std::string& path) {
    nlohmann::json j;
    j["index"] = _index++;
    if (_o.inputs.size() > 1) {
        j["file"] = path;
    }
    // Opened with nanosecond precision: tv_usec holds nanoseconds.
    const std::uint64_t ns = static_cast<std::uint64_t>(h.ts.tv_sec) * 1000000000 + static_cast<std::uint64_t>(h.ts.tv_usec);
    j["timestamp"] = static_cast<double>(h.ts.tv_sec) + static_cast<double>(h.ts.tv_usec) * 1e-9;
    j["timestamp_ns"] = ns;
    j["caplen"] = h.caplen;
    j["length"] = h.len;
    _summary.count_packet();

    udp_frame_info info;
    const decap_error e = decode_udp(link, std::span(data, h.caplen), h.len, info);
    if (!info.vlan_ids.empty()) {
        j["vlan"] = info.vlan_ids;
    }
    if (info.ip_version != 0) {
        j["ip_version"] = info.ip_version;
        j["src"] = to_string(info.src);
        j["dst"] = to_string(info.dst);
        j["ip_protocol"] = info.ip_protocol;
        if (info.ipv4_checksum_ok) {
            j["ip_checksum_ok"] = *info.ipv4_checksum_ok;
        }
    }
    if (info.has_udp) {
        j["src_port"] = info.src_port;
        j["dst_port"] = info.dst_port;
        j["udp_length"] = info.udp_length;
        char checksum[7];
        std::snprintf(checksum, sizeof checksum, "0x%04x", info.udp_checksum);
        j["udp_checksum"] = checksum;
        j["udp_checksum_ok"] = info.udp_checksum_ok ? nlohmann::json(*info.udp_checksum_ok) : nlohmann::json(nullptr);
    }
    auto finish = [&](std::string_view verdict, std::string_view reason, std::string_view description) {
        j["verdict"] = verdict;
        j["reason"] = reason;
        j["description"] = description;
        if (!_o.summary_only) {
            std::cout << dump_line(j) << '\n';
        }
    };
    if (e == decap_error::not_ip || e == decap_error::not_udp) {
        _summary.count_not_kwik(to_string(e));
        finish("not_kwik", to_string(e), describe(e));
        return;
    }
    if (e != decap_error::none) {
        _summary.count_malformed(e);
        finish("malformed", to_string(e), describe(e));
        return;
    }
    const bool to_server = _ports.count(info.dst_port) != 0;
    if (!to_server && _ports.count(info.src_port) == 0) {
        _summary.count_not_kwik("not_kwik_port");
        finish("not_kwik", "not_kwik_port", "neither UDP port is a Kwik port (--port)");
        return;
    }
    const endpoint src{info.src, info.src_port};
    const endpoint dst{info.dst, info.dst_port};
    j["direction"] = to_server ? "to_server" : "to_client";

    kdp::packet_view v{};
    const kdp::drop_reason r = kdp::parse_packet<kdp::parse_mode::inspect>(kdp::contiguous_bytes(info.payload), v);
    j["kdp"] = kdp_report(info.payload, v, r, _o.hex);
    if (r == kdp::drop_reason::none) {
        std::span<const std::uint8_t> payload = info.payload;
        if (_o.key) {
            open_frames(*_o.key, info.payload, _plain, v, j["kdp"]["frames"], _o.hex);
            payload = _plain;
        }
        _summary.add_accepted(to_server ? src : dst, to_server ? dst : src, v, payload);
        finish("accept", kdp::to_string(r), kdp::describe(r));
    } else {
        _summary.count_dropped(r);
        finish("drop", kdp::to_string(r), kdp::describe(r));
    }
}

} // namespace

int main(int argc, char** argv) {
    std::ios::sync_with_stdio(false);
    dump_options o;
    CLI::App app{"kwik-dump: decodes the Kwik (KDP) path packets in pcap and pcapng captures and prints one "
                 "JSON object per packet and line: encapsulation, every path-header and frame field, "
                 "decoded control frames, and the verdict the data plane's parser gives (accept, or drop "
                 "with its drop reason); packets that are not Kwik get verdict not_kwik, broken "
                 "Ethernet/IP/UDP gets verdict malformed, each with a reason.",
                 "kwik-dump"};
    app.footer("Summary connections: a KDP packet does not name its connection, so paths are grouped by "
               "--connection-key: client-port (server IP:port and client port; kwik-pcapgen uses one client "
               "port per connection on all its paths), client-ip (server IP:port and client IP) or path (each "
               "5-tuple alone). With --expect the manifest's path table binds paths to connections exactly.\n"
               "Exit status: 0 done (and the capture matches --expect), 1 an input or manifest cannot be read "
               "or the capture does not match --expect, 2 a bad option.");
    app.get_formatter()->column_width(30);
    app.add_option("FILE", o.inputs, "pcap or pcapng capture(s); - reads standard input")->required()->type_name("FILE");
    app.add_option("--port", o.ports, "UDP port carrying Kwik; repeat for several")
        ->check(CLI::Range(1, 65535))
        ->allow_extra_args(false)
        ->type_name("PORT")
        ->default_str(std::to_string(kdp::default_udp_port));
    app.add_flag("--hex", o.hex, "include each stream frame's data as hex (data_hex)");
    app.add_flag("--summary", o.summary, "after the packets, print a summary object: counts per verdict and reason, "
                                         "and per connection and stream the reassembly (bytes, final size, "
                                         "complete, crc32c)");
    app.add_flag("--summary-only", o.summary_only, "print only the summary object");
    app.add_option("--expect", o.expect,
                   "kwik-pcapgen manifest: every stream it lists must be complete with the same final size "
                   "and CRC32C, and no other stream or path may appear; exit 1 with the differences otherwise")
        ->type_name("MANIFEST");
    app.add_option("--key", o.key_hex,
                   "AES-256-GCM key of ENCRYPTED frames (64 hex digits): each is verified and decrypted "
                   "(aead_verified in its report; plaintext_hex with --hex) and the summary checks its plaintext")
        ->type_name("HEX");
    app.add_option("--connection-key", o.connection_key, "how the summary groups paths into connections")
        ->check(CLI::IsMember({"client-port", "client-ip", "path"}))
        ->type_name("KEY")
        ->default_str("client-port");
    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        return app.exit(e) == 0 ? 0 : 2;
    }
    if (o.ports.empty()) {
        o.ports.push_back(kdp::default_udp_port);
    }
    if (!o.key_hex.empty()) {
        o.key = parse_key_hex(o.key_hex);
        if (!o.key) {
            std::cerr << "kwik-dump: --key: '" << o.key_hex << "' is not 64 hex digits (a 32-byte key)\n";
            return 2;
        }
    }

    std::optional<manifest_expectation> expected;
    if (!o.expect.empty()) {
        result<manifest_expectation> m = load_manifest(o.expect);
        if (!m) {
            std::cerr << "kwik-dump: " << m.message() << "\n";
            return 1;
        }
        expected = std::move(*m);
    }
    const connection_key_mode mode = o.connection_key == "client-ip" ? connection_key_mode::client_ip
                                     : o.connection_key == "path"    ? connection_key_mode::path
                                                                     : connection_key_mode::client_port;
    traffic_summary summary(mode, expected ? &expected->paths : nullptr);
    capture_reader reader(o, summary);
    int status = 0;
    for (const std::string& input : o.inputs) {
        if (!reader.read(input)) {
            status = 1;
        }
    }
    if (o.summary || o.summary_only) {
        std::cout << dump_line({{"summary", summary.to_json()}}) << '\n';
    }
    std::cout.flush();
    if (expected) {
        const std::vector<std::string> problems = compare(*expected, summary);
        for (const std::string& p : problems) {
            std::cerr << "kwik-dump: --expect " << o.expect << ": " << p << "\n";
        }
        if (!problems.empty()) {
            std::cerr << "kwik-dump: --expect " << o.expect << ": " << problems.size() << " difference(s)\n";
            return 1;
        }
        std::cerr << "kwik-dump: --expect " << o.expect << ": all " << expected->streams.size()
                  << " streams complete with the manifest's size and CRC32C\n";
    }
    return status;
}
