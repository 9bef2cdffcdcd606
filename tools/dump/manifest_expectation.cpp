// Manifest loading and comparison for kwik-dump --expect.
#include "tools/dump/manifest_expectation.hpp"

#include <cerrno>
#include <cstring>
#include <fstream>
#include <map>

#include <nlohmann/json.hpp>

#include "tools/dump/packet_report.hpp"

namespace kwik::tools::dump {

result<manifest_expectation> load_manifest(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) {
        return error{"cannot read manifest " + path + ": " + std::strerror(errno)};
    }
    nlohmann::json j;
    try {
        j = nlohmann::json::parse(in);
    } catch (const nlohmann::json::exception& e) {
        return error{"manifest " + path + " is not valid JSON: " + e.what()};
    }
    manifest_expectation m;
    std::string where;
    try {
        where = "connections";
        for (const nlohmann::json& c : j.at("connections")) {
            const std::uint64_t index = c.at("connection").get<std::uint64_t>();
            for (const nlohmann::json& p : c.at("paths")) {
                where = "connections[" + std::to_string(index) + "].paths";
                const auto client = parse_endpoint(p.at("client").get<std::string>());
                const auto server = parse_endpoint(p.at("server").get<std::string>());
                if (!client || !server) {
                    return error{"manifest " + path + ": " + where + ": '" + p.dump() + "' is not a client/server pair"};
                }
                m.paths[{*client, *server}] = index;
            }
        }
        where = "streams";
        for (const nlohmann::json& s : j.at("streams")) {
            m.streams.push_back({s.at("connection").get<std::uint64_t>(), s.at("stream_id").get<std::uint64_t>(),
                                 s.at("final_size").get<std::uint64_t>(), s.at("crc32c").get<std::string>()});
        }
    } catch (const nlohmann::json::exception& e) {
        return error{"manifest " + path + ": " + where + ": " + e.what()};
    }
    return m;
}

std::vector<std::string> compare(const manifest_expectation& expected, const traffic_summary& summary) {
    std::vector<std::string> problems;
    std::map<std::pair<std::uint64_t, std::uint64_t>, const stream_record*> seen;
    for (const auto& [key, c] : summary.connections()) {
        if (!c.manifest_connection) {
            std::string paths;
            for (const std::string& p : c.paths) {
                paths += (paths.empty() ? "" : ", ") + p;
            }
            problems.push_back("accepted traffic on paths the manifest does not list (" + paths + ")");
            continue;
        }
        for (const auto& [id, s] : c.streams) {
            seen[{*c.manifest_connection, id}] = &s;
        }
    }
    std::map<std::pair<std::uint64_t, std::uint64_t>, bool> listed;
    for (const expected_stream& e : expected.streams) {
        listed[{e.connection, e.stream_id}] = true;
        const std::string name = "connection " + std::to_string(e.connection) + " stream " + std::to_string(e.stream_id);
        const auto it = seen.find({e.connection, e.stream_id});
        if (it == seen.end()) {
            problems.push_back(name + ": no accepted frame (manifest: final size " + std::to_string(e.final_size) + ")");
            continue;
        }
        const stream_record& s = *it->second;
        if (!s.final_size) {
            problems.push_back(name + ": no FIN seen (" + std::to_string(s.coverage.covered()) + " bytes received; manifest: final size " +
                               std::to_string(e.final_size) + ")");
            continue;
        }
        if (s.final_size_conflict) {
            problems.push_back(name + ": FIN frames disagree on the final size");
            continue;
        }
        if (*s.final_size != e.final_size) {
            problems.push_back(name + ": final size " + std::to_string(*s.final_size) + ", manifest says " +
                               std::to_string(e.final_size));
            continue;
        }
        if (!s.complete()) {
            std::string detail = std::to_string(s.coverage.covered()) + " of " + std::to_string(e.final_size) + " bytes";
            if (const auto gap = s.coverage.first_gap(e.final_size)) {
                detail += ", first gap [" + std::to_string(gap->first) + ", " + std::to_string(gap->second) + ")";
            } else {
                detail += ", data beyond the final size";
            }
            problems.push_back(name + ": incomplete: " + detail);
            continue;
        }
        if (s.conflicting_bytes != 0) {
            problems.push_back(name + ": " + std::to_string(s.conflicting_bytes) +
                               " bytes arrived twice with different content");
        }
        const std::optional<std::uint32_t> crc = s.crc32c();
        if (!crc) {
            problems.push_back(name + ": content not kept (compressed, encrypted or too large): CRC32C unknown");
        } else if (hex32(*crc) != e.crc32c) {
            problems.push_back(name + ": crc32c " + hex32(*crc) + ", manifest says " + e.crc32c);
        }
    }
    for (const auto& [key, s] : seen) {
        if (!listed.count(key)) {
            problems.push_back("connection " + std::to_string(key.first) + " stream " + std::to_string(key.second) +
                               ": not in the manifest");
        }
    }
    return problems;
}

} // namespace kwik::tools::dump
