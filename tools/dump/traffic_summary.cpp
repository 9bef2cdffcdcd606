// Reassembly accounting for kwik-dump --summary.
#include "tools/dump/traffic_summary.hpp"

#include <cstring>

#include "dataplane/kdp/crc32c.hpp"
#include "tools/dump/packet_report.hpp"

namespace kwik::tools::dump {

namespace {

// Stream content is kept for the CRC up to this offset; beyond it only coverage is counted, so
// a forged offset near 2^62 cannot make the dump allocate without bound.
constexpr std::uint64_t max_kept_offset = std::uint64_t{256} << 20;

std::uint64_t total(const std::map<std::string, std::uint64_t>& m) {
    std::uint64_t n = 0;
    for (const auto& [k, v] : m) {
        n += v;
    }
    return n;
}

nlohmann::json counts(const std::map<std::string, std::uint64_t>& m) {
    nlohmann::json j = nlohmann::json::object();
    for (const auto& [k, v] : m) {
        j[k] = v;
    }
    return j;
}

} // namespace

bool stream_record::complete() const {
    return final_size && !final_size_conflict && !coverage.first_gap(*final_size) &&
           coverage.end() <= *final_size;
}

std::optional<std::uint32_t> stream_record::crc32c() const {
    if (!complete() || !content_kept) {
        return std::nullopt;
    }
    return kdp::crc32c(content.data(), static_cast<std::size_t>(*final_size));
}

connection_record& traffic_summary::connection_for(const endpoint& client, const endpoint& server) {
    std::string key;
    std::optional<std::uint64_t> manifest_connection;
    if (_manifest_paths != nullptr) {
        const auto it = _manifest_paths->find({client, server});
        if (it != _manifest_paths->end()) {
            manifest_connection = it->second;
            key = "manifest connection " + std::to_string(it->second);
        }
    }
    if (key.empty()) {
        switch (_mode) {
        case connection_key_mode::client_port:
            key = to_string(server) + " client port " + std::to_string(client.port);
            break;
        case connection_key_mode::client_ip:
            key = to_string(server) + " client " + to_string(client.addr);
            break;
        case connection_key_mode::path:
            key = to_string(server) + " client " + to_string(client);
            break;
        }
    }
    connection_record& c = _connections[key];
    c.key = key;
    c.manifest_connection = manifest_connection;
    c.paths.insert(to_string(client) + " -> " + to_string(server));
    return c;
}

void traffic_summary::add_accepted(const endpoint& client, const endpoint& server, const kdp::packet_view& v,
                                   std::span<const std::uint8_t> payload) {
    ++_accepted;
    ++_accepted_types[std::string(packet_type_name(v.type))];
    connection_record& c = connection_for(client, server);
    for (const kdp::frame_view& f : v.frame_span()) {
        if (f.is_control()) {
            ++_control_frames[std::string(control_type_name(f.control))];
            continue;
        }
        stream_record& s = c.streams[f.stream_id];
        ++s.frames;
        s.bytes_total += f.stream_length;
        const std::uint64_t begin = f.offset;
        const std::uint64_t end = f.offset + f.stream_length;
        if ((f.flags & kdp::frame_flag::fin) != 0) {
            if (s.final_size && *s.final_size != end) {
                s.final_size_conflict = true;
            }
            s.final_size = end;
        }
        const bool opaque = (f.flags & (kdp::frame_flag::compressed | kdp::frame_flag::encrypted)) != 0;
        if (opaque || end > max_kept_offset) {
            s.content_kept = false;
            s.content.clear();
            s.content.shrink_to_fit();
        }
        if (s.content_kept && begin < end) {
            const std::uint8_t* data = payload.data() + f.data_pos;
            if (s.content.size() < end) {
                s.content.resize(static_cast<std::size_t>(end));
            }
            // Compare what overlaps earlier data; keep the first copy, fill only the holes.
            std::uint64_t pos = begin;
            s.coverage.for_each_overlap(begin, end, [&](std::uint64_t b, std::uint64_t e) {
                if (pos < b) {
                    std::memcpy(s.content.data() + pos, data + (pos - begin), static_cast<std::size_t>(b - pos));
                }
                for (std::uint64_t i = b; i < e; ++i) {
                    if (s.content[static_cast<std::size_t>(i)] != data[i - begin]) {
                        ++s.conflicting_bytes;
                    }
                }
                pos = e;
            });
            if (pos < end) {
                std::memcpy(s.content.data() + pos, data + (pos - begin), static_cast<std::size_t>(end - pos));
            }
        }
        s.coverage.add(begin, end);
    }
}

nlohmann::json traffic_summary::to_json() const {
    nlohmann::json connections = nlohmann::json::array();
    for (const auto& [key, c] : _connections) {
        nlohmann::json streams = nlohmann::json::array();
        for (const auto& [id, s] : c.streams) {
            nlohmann::json js = {
                {"stream_id", id},
                {"frames", s.frames},
                {"bytes_received", s.coverage.covered()},
                {"bytes_total", s.bytes_total},
                {"final_size", s.final_size ? nlohmann::json(*s.final_size) : nlohmann::json(nullptr)},
                {"complete", s.complete()},
            };
            const std::optional<std::uint32_t> crc = s.crc32c();
            js["crc32c"] = crc ? nlohmann::json(hex32(*crc)) : nlohmann::json(nullptr);
            if (!s.complete() && s.final_size) {
                if (const auto gap = s.coverage.first_gap(*s.final_size)) {
                    js["first_gap"] = {gap->first, gap->second};
                }
            }
            if (s.final_size_conflict) {
                js["final_size_conflict"] = true;
            }
            if (s.final_size && s.coverage.end() > *s.final_size) {
                js["data_beyond_final_size"] = true;
            }
            if (s.conflicting_bytes != 0) {
                js["conflicting_bytes"] = s.conflicting_bytes;
            }
            if (!s.content_kept) {
                js["content_kept"] = false;
            }
            streams.push_back(std::move(js));
        }
        nlohmann::json jc = {{"key", key}, {"paths", c.paths}, {"streams", std::move(streams)}};
        if (c.manifest_connection) {
            jc["manifest_connection"] = *c.manifest_connection;
        }
        connections.push_back(std::move(jc));
    }
    nlohmann::json dropped = counts(_dropped);
    nlohmann::json malformed = counts(_malformed);
    nlohmann::json not_kwik = counts(_not_kwik);
    return {
        {"packets", _packets},
        {"accepted", _accepted},
        {"accepted_by_type", counts(_accepted_types)},
        {"control_frames", counts(_control_frames)},
        {"dropped", total(_dropped)},
        {"dropped_by_reason", dropped},
        {"not_kwik", total(_not_kwik)},
        {"not_kwik_by_reason", not_kwik},
        {"malformed", total(_malformed)},
        {"malformed_by_reason", malformed},
        {"connections", std::move(connections)},
    };
}

} // namespace kwik::tools::dump
