// kwik-peer's progress line, summary and JSON report; see report.hpp.
#include "tools/peer/report.hpp"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>

#include <nlohmann/json.hpp>

namespace kwik::peer {

namespace {

std::string fixed(double v, int digits) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.*f", digits, v);
    return buf;
}

std::string mib(std::uint64_t bytes) { return fixed(static_cast<double>(bytes) / (1 << 20), 1) + " MiB"; }

} // namespace

std::string progress_line(const timeline_sample& s) {
    std::string line = "t=" + fixed(s.t, 1) + "s up " + mib(s.bytes_sent) + " down " + mib(s.bytes_received) + " " +
                       fixed(s.goodput_mbps, 1) + " Mbit/s |";
    for (std::size_t i = 0; i < s.path_mbps.size(); ++i) {
        line += " p" + std::to_string(s.path_mbps[i].first) + " " + fixed(s.path_mbps[i].second, 1);
        if (i < s.path_states.size() && s.path_states[i] != "active") {
            line += " (" + s.path_states[i] + ")";
        }
    }
    return line;
}

std::string summary_text(const run_report& r) {
    std::string out = "kwik-peer " + r.role + " " + r.mode + ": " + (r.error.empty() ? "ok" : "FAILED: " + r.error) + "\n";
    out += "  sent " + std::to_string(r.bytes_sent) + " bytes, received " + std::to_string(r.bytes_received) + " bytes in " +
           fixed(r.seconds, 2) + " s, goodput " + fixed(r.goodput_mbps, 1) + " Mbit/s\n";
    if (!r.sha256_sent.empty()) {
        out += "  sha256 sent     " + r.sha256_sent + "\n";
    }
    if (!r.sha256_received.empty()) {
        out += "  sha256 received " + r.sha256_received + "\n";
    }
    if (r.role == "client") {
        out += std::string("  verified: ") + (r.verified ? "yes" : "no") + "\n";
    }
    for (const path_report& p : r.paths) {
        out += "  path " + std::to_string(p.id) + " " + p.local + " -> " + p.remote + " " + p.state +
               (p.standby ? " standby" : "") + ": sent " + mib(p.bytes_sent) + ", received " + mib(p.bytes_received) +
               ", lost " + std::to_string(p.packets_lost) + " packets, srtt " + std::to_string(p.srtt_us) + " us\n";
    }
    if (!r.drops.empty()) {
        out += "  drops:";
        for (const auto& [reason, n] : r.drops) {
            out += " " + reason + "=" + std::to_string(n);
        }
        out += "\n";
    }
    return out;
}

std::string report_json(const run_report& r) {
    using nlohmann::json;
    json j;
    j["result"] = r.error.empty() ? "ok" : "error";
    j["error"] = r.error;
    j["role"] = r.role;
    j["mode"] = r.mode;
    j["bytes_sent"] = r.bytes_sent;
    j["bytes_received"] = r.bytes_received;
    j["sha256_sent"] = r.sha256_sent;
    j["sha256_received"] = r.sha256_received;
    j["verified"] = r.verified;
    j["seconds"] = r.seconds;
    j["goodput_mbps"] = r.goodput_mbps;
    j["streams"] = json::array();
    for (const stream_result& s : r.streams) {
        j["streams"].push_back({{"id", s.id},
                                {"bytes_sent", s.bytes_sent},
                                {"bytes_received", s.bytes_received},
                                {"bytes_expected", s.bytes_expected},
                                {"sha256_sent", s.sha256_sent},
                                {"sha256_received", s.sha256_received},
                                {"mismatched_bytes", s.mismatched_bytes},
                                {"finished", s.finished},
                                {"verified", s.verified}});
    }
    j["paths"] = json::array();
    for (const path_report& p : r.paths) {
        const socket_counters& c = p.socket;
        j["paths"].push_back({{"id", p.id},
                              {"local", p.local},
                              {"remote", p.remote},
                              {"standby", p.standby},
                              {"state", p.state},
                              {"bytes_sent", p.bytes_sent},
                              {"bytes_received", p.bytes_received},
                              {"packets_lost", p.packets_lost},
                              {"retransmitted_frames", p.retransmitted_frames},
                              {"srtt_us", p.srtt_us},
                              {"cwnd", p.cwnd},
                              {"socket",
                               {{"rx_packets", c.rx_packets},
                                {"rx_batches", c.rx_batches},
                                {"tx_packets", c.tx_packets},
                                {"tx_batches", c.tx_batches},
                                {"kernel_drops", c.kernel_drops},
                                {"rx_truncated", c.rx_truncated},
                                {"rx_no_buffer", c.rx_no_buffer},
                                {"rx_foreign", c.rx_foreign},
                                {"rx_ecn_ce", c.rx_ecn_ce},
                                {"tx_would_block", c.tx_would_block},
                                {"tx_dropped", c.tx_dropped},
                                {"tx_no_remote", c.tx_no_remote},
                                {"tx_errors", c.tx_errors},
                                {"refused", c.refused}}}});
    }
    j["events"] = json::array();
    for (const event_record& e : r.events) {
        j["events"].push_back({{"t", e.t}, {"path", e.path}, {"event", e.event}, {"source", e.source}, {"reason", e.reason}});
    }
    j["timeline"] = json::array();
    for (const timeline_sample& s : r.timeline) {
        json paths = json::object();
        for (const auto& [id, mbps] : s.path_mbps) {
            paths[std::to_string(id)] = mbps;
        }
        j["timeline"].push_back({{"t", s.t},
                                 {"bytes_received", s.bytes_received},
                                 {"bytes_sent", s.bytes_sent},
                                 {"goodput_mbps", s.goodput_mbps},
                                 {"paths", paths}});
    }
    j["drops"] = r.drops;
    j["counters"] = r.counters;
    json kcp = json::parse(r.kcp_json, nullptr, false);
    j["kcp"] = kcp.is_discarded() ? json{{"raw", r.kcp_json}} : kcp;
    return j.dump(2) + "\n";
}

result<void> write_report(const std::string& path, const run_report& r) {
    const std::string tmp = path + ".tmp";
    {
        std::ofstream f(tmp, std::ios::trunc);
        if (!f) {
            return error{"--json: " + path + ": " + std::strerror(errno), errno};
        }
        f << report_json(r);
        if (!f.flush()) {
            return error{"--json: " + path + ": write failed", EIO};
        }
    }
    if (std::rename(tmp.c_str(), path.c_str()) != 0) {
        return error{"--json: " + path + ": " + std::strerror(errno), errno};
    }
    return {};
}

} // namespace kwik::peer
