// kwik-dump's totals over a capture: verdict counts per reason, and per connection and stream
// the reassembly of the accepted stream frames (distinct bytes, final size from FIN,
// completeness, CRC32C of the content). One thread.
//
// A KDP packet does not name its connection: the control plane binds paths (UDP 5-tuples) to
// connections. So the dump groups paths by a key taken from the 5-tuple, with the server side
// being the endpoint on a Kwik port:
//   client-port (default): server IP:port and client port. kwik-pcapgen gives connection c the
//                          same client port on every path, and the paths different addresses.
//   client-ip:             server IP:port and client IP (paths differing only in client port).
//   path:                  the whole 5-tuple: every path counts as its own connection.
// With a kwik-pcapgen manifest (--expect) its path table binds paths to connections exactly.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "dataplane/kdp/packet.hpp"
#include "tools/common/net_address.hpp"
#include "tools/common/net_headers.hpp"
#include "tools/common/range_set.hpp"

namespace kwik::tools::dump {

enum class connection_key_mode : std::uint8_t { client_port, client_ip, path };

// (client, server) -> manifest connection number.
using path_table = std::map<std::pair<endpoint, endpoint>, std::uint64_t>;

struct stream_record {
    range_set coverage;
    std::vector<std::uint8_t> content;   // while content_kept
    bool content_kept = true;            // false after a COMPRESSED/ENCRYPTED frame or a huge offset
    std::optional<std::uint64_t> final_size;
    bool final_size_conflict = false;
    std::uint64_t frames = 0;
    std::uint64_t bytes_total = 0;       // duplicates counted again
    std::uint64_t conflicting_bytes = 0; // overlapping data that differs from what came first

    bool complete() const;
    std::optional<std::uint32_t> crc32c() const; // when complete and the content was kept
};

struct connection_record {
    std::string key;
    std::optional<std::uint64_t> manifest_connection;
    std::set<std::string> paths; // "client -> server"
    std::map<std::uint64_t, stream_record> streams;
};

class traffic_summary {
public:
    traffic_summary(connection_key_mode mode, const path_table* manifest_paths)
        : _mode(mode), _manifest_paths(manifest_paths) {}

    void count_not_kwik(std::string_view reason) { ++_not_kwik[std::string(reason)]; }
    void count_malformed(decap_error e) { ++_malformed[std::string(to_string(e))]; }
    void count_dropped(kdp::drop_reason r) { ++_dropped[std::string(kdp::to_string(r))]; }
    // An accepted packet: its stream frames go into reassembly.
    void add_accepted(const endpoint& client, const endpoint& server, const kdp::packet_view& v,
                      std::span<const std::uint8_t> payload);
    void count_packet() { ++_packets; }

    nlohmann::json to_json() const;
    const std::map<std::string, connection_record>& connections() const { return _connections; }

private:
    connection_record& connection_for(const endpoint& client, const endpoint& server);

    connection_key_mode _mode;
    const path_table* _manifest_paths;
    std::uint64_t _packets = 0;
    std::uint64_t _accepted = 0;
    std::map<std::string, std::uint64_t> _dropped;
    std::map<std::string, std::uint64_t> _not_kwik;
    std::map<std::string, std::uint64_t> _malformed;
    std::map<std::string, std::uint64_t> _accepted_types;
    std::map<std::string, std::uint64_t> _control_frames;
    std::map<std::string, connection_record> _connections;
};

} // namespace kwik::tools::dump
