// kwik-peer's output: the progress line's format and the JSON report's fields.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "tools/peer/report.hpp"

namespace {

using namespace kwik::peer;

TEST(PeerReport, ProgressLine) {
    timeline_sample s;
    s.t = 3.0;
    s.bytes_sent = static_cast<std::uint64_t>(48.2 * (1 << 20));
    s.bytes_received = static_cast<std::uint64_t>(47.9 * (1 << 20));
    s.goodput_mbps = 128.44;
    s.path_mbps = {{1, 52.1}, {2, 50.3}, {3, 26.0}};
    s.path_states = {"active", "active", "suspect"};
    EXPECT_EQ(progress_line(s), "t=3.0s up 48.2 MiB down 47.9 MiB 128.4 Mbit/s | p1 52.1 p2 50.3 p3 26.0 (suspect)");
}

TEST(PeerReport, JsonFields) {
    run_report r;
    r.mode = "echo";
    r.error = "stream 2: 5 bytes came back, 6 were sent";
    r.bytes_sent = 6;
    r.bytes_received = 5;
    path_report p;
    p.id = 1;
    p.local = "127.0.0.1:40000";
    p.remote = "127.0.0.2:7707";
    p.state = "failed";
    p.standby = true;
    p.packets_lost = 7;
    p.socket.kernel_drops = 3;
    r.paths.push_back(p);
    r.events.push_back({1.5, 1, "failed", "transport", ""});
    timeline_sample s;
    s.t = 1;
    s.path_mbps = {{1, 9.5}};
    r.timeline.push_back(s);
    r.drops["crc_mismatch"] = 2;
    r.kcp_json = R"({"connection_id":"abc"})";
    const auto j = nlohmann::json::parse(report_json(r));
    EXPECT_EQ(j["result"], "error");
    EXPECT_EQ(j["error"], r.error);
    EXPECT_EQ(j["mode"], "echo");
    EXPECT_EQ(j["verified"], false);
    EXPECT_EQ(j["bytes_received"], 5);
    EXPECT_EQ(j["paths"][0]["local"], "127.0.0.1:40000");
    EXPECT_EQ(j["paths"][0]["standby"], true);
    EXPECT_EQ(j["paths"][0]["state"], "failed");
    EXPECT_EQ(j["paths"][0]["packets_lost"], 7);
    EXPECT_EQ(j["paths"][0]["socket"]["kernel_drops"], 3);
    EXPECT_EQ(j["events"][0]["source"], "transport");
    EXPECT_DOUBLE_EQ(j["timeline"][0]["paths"]["1"].get<double>(), 9.5);
    EXPECT_EQ(j["drops"]["crc_mismatch"], 2);
    EXPECT_EQ(j["kcp"]["connection_id"], "abc");
    // A KCP part that is not JSON is kept as text, never dropped.
    r.kcp_json = "not json";
    EXPECT_EQ(nlohmann::json::parse(report_json(r))["kcp"]["raw"], "not json");
    r.error.clear();
    EXPECT_EQ(nlohmann::json::parse(report_json(r))["result"], "ok");
}

} // namespace
