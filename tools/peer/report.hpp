// What kwik-peer tells its user: the progress line on stderr while it runs, the summary on
// stdout at the end and the JSON report (--json). Plain data filled by the data thread at each
// progress interval and at the end; formatting and writing happen on the thread that calls
// these functions (the main thread after the loop, or the data thread for the progress line).
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "common/result.hpp"
#include "tools/peer/transfer.hpp"
#include "tools/peer/udp_paths.hpp"

namespace kwik::peer {

struct path_report {
    std::uint64_t id = 0;
    std::string local, remote;
    bool standby = false;
    std::string state; // active, suspect, failed, removed
    std::uint64_t bytes_sent = 0, bytes_received = 0, packets_lost = 0, retransmitted_frames = 0;
    std::uint64_t srtt_us = 0, cwnd = 0;
    socket_counters socket;
};

struct event_record {
    double t = 0;
    std::uint64_t path = 0;
    std::string event;  // up, suspect, failed, recovered, closed, ...
    std::string source; // transport, kcp
    std::string reason;
};

struct timeline_sample {
    double t = 0;
    std::uint64_t bytes_received = 0, bytes_sent = 0;
    double goodput_mbps = 0; // over the interval, in the transfer's main direction
    std::vector<std::pair<std::uint64_t, double>> path_mbps; // path id, Mbit/s over the interval
    std::vector<std::string> path_states;                    // same order
};

struct run_report {
    std::string role = "client"; // client, server
    std::string error;           // empty: ok
    std::string mode;            // echo, upload, download, get; server: its endpoint
    std::uint64_t bytes_sent = 0, bytes_received = 0;
    std::string sha256_sent, sha256_received;
    bool verified = false;
    double seconds = 0, goodput_mbps = 0;
    std::vector<stream_result> streams;
    std::vector<path_report> paths;
    std::vector<event_record> events;
    std::vector<timeline_sample> timeline;
    std::map<std::string, std::uint64_t> drops; // transport drop reasons and socket losses, non-zero only
    std::map<std::string, std::uint64_t> counters; // connection, pool and socket totals
    std::string kcp_json = "{}"; // the KCP session's counters and answers (a JSON object)
};

// "t=3.0s up 48.2 MiB down 47.9 MiB 128.4 Mbit/s | p1 52.1 p2 50.3 p3 26.0 (suspect)".
std::string progress_line(const timeline_sample& s);
// The human summary printed on stdout at the end.
std::string summary_text(const run_report& r);
// The JSON report (docs/KWIK_PEER.md lists the fields).
std::string report_json(const run_report& r);
result<void> write_report(const std::string& path, const run_report& r);

} // namespace kwik::peer
