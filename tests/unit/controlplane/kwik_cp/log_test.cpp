// kwik-cp's log (controlplane/server/kwik_cp/log.hpp): level names, the line format, the level
// filter, and protobuf's own messages (a string field with invalid UTF-8) routed through it.
#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <vector>

#include "controlplane/server/kwik_cp/log.hpp"
#include "proto/kcp.pb.h"

namespace {

using namespace kwik;
using cp::log_level;

struct captured {
    std::vector<std::pair<log_level, std::string>> lines;
};

void capture(log_level level, std::string_view line, void* context) {
    static_cast<captured*>(context)->lines.emplace_back(level, std::string(line));
}

class kwik_cp_log : public ::testing::Test {
protected:
    void SetUp() override {
        cp::set_log_sink(&capture, &got);
        cp::set_log_level(log_level::info);
    }
    void TearDown() override {
        cp::set_log_sink(nullptr, nullptr);
        cp::set_log_level(log_level::info);
    }
    captured got;
};

// 2026-11-21T11:40:05.042Z
std::chrono::system_clock::time_point sample_time() {
    return std::chrono::system_clock::time_point(std::chrono::milliseconds(1'795'261'205'042));
}

TEST(kwik_cp_log_levels, names_round_trip_and_unknown_names_are_refused) {
    const std::vector<std::pair<std::string, log_level>> all = {
        {"emergency", log_level::emergency}, {"alert", log_level::alert}, {"critical", log_level::critical},
        {"error", log_level::error},         {"warning", log_level::warning}, {"notice", log_level::notice},
        {"info", log_level::info},           {"debug", log_level::debug}};
    for (const auto& [name, level] : all) {
        EXPECT_EQ(cp::to_string(level), name);
        ASSERT_TRUE(cp::parse_log_level(name).has_value()) << name;
        EXPECT_EQ(*cp::parse_log_level(name), level);
    }
    EXPECT_FALSE(cp::parse_log_level("warn").has_value());
    EXPECT_FALSE(cp::parse_log_level("INFO").has_value());
    EXPECT_FALSE(cp::parse_log_level("").has_value());
    EXPECT_EQ(cp::log_level_names(), "emergency, alert, critical, error, warning, notice, info, debug");
    // syslog's priorities: journald reads them from a "<N>" prefix.
    EXPECT_EQ(static_cast<int>(log_level::error), 3);
    EXPECT_EQ(static_cast<int>(log_level::debug), 7);
}

TEST(kwik_cp_log_format, one_line_with_utc_time_process_and_level) {
    EXPECT_EQ(cp::format_log_line(log_level::info, "session opened: peer 127.0.0.1:4000, TLS", sample_time(), false),
              "2026-11-21T11:40:05.042Z kwik-cp info: session opened: peer 127.0.0.1:4000, TLS\n");
    EXPECT_EQ(cp::format_log_line(log_level::warning, "x", sample_time(), true),
              "<4>2026-11-21T11:40:05.042Z kwik-cp warning: x\n");
    // A newline inside the text (a client id, a protobuf message) never starts a second line.
    EXPECT_EQ(cp::format_log_line(log_level::error, "a\nb\rc", sample_time(), false),
              "2026-11-21T11:40:05.042Z kwik-cp error: a b c\n");
}

TEST_F(kwik_cp_log, lines_below_the_level_are_not_written) {
    cp::set_log_level(log_level::warning);
    EXPECT_FALSE(cp::log_enabled(log_level::info));
    EXPECT_TRUE(cp::log_enabled(log_level::error));
    cp::log_line(log_level::info, "dropped");
    cp::log_line(log_level::notice, "dropped too");
    cp::log_line(log_level::warning, "kept");
    cp::log_line(log_level::critical, "kept too");
    ASSERT_EQ(got.lines.size(), 2u);
    EXPECT_EQ(got.lines[0].first, log_level::warning);
    EXPECT_NE(got.lines[0].second.find(" kwik-cp warning: kept\n"), std::string::npos) << got.lines[0].second;
    EXPECT_NE(got.lines[1].second.find(" kwik-cp critical: kept too\n"), std::string::npos) << got.lines[1].second;

    cp::set_log_level(log_level::debug);
    cp::log_line(log_level::debug, "now kept");
    ASSERT_EQ(got.lines.size(), 3u);
    EXPECT_EQ(got.lines[2].first, log_level::debug);
}

TEST_F(kwik_cp_log, session_and_hello_events) {
    cp::log_session_opened("127.0.0.1:4000", true);
    cp::log_session_closed("127.0.0.1:4000", "", "peer closed the connection");
    cp::log_session_closed("[::1]:4001", "client-a", "");
    cp::log_hello_refused("127.0.0.1:4002", "client-b", "REJECTED_BAD_PROOF", "the proof does not match");
    ASSERT_EQ(got.lines.size(), 4u);
    EXPECT_NE(got.lines[0].second.find("info: session opened: peer 127.0.0.1:4000, TLS\n"), std::string::npos);
    EXPECT_NE(got.lines[1].second.find(
                  "info: session closed: peer 127.0.0.1:4000, client (no hello accepted): peer closed the connection\n"),
              std::string::npos)
        << got.lines[1].second;
    EXPECT_NE(got.lines[2].second.find("session closed: peer [::1]:4001, client \"client-a\": no reason given\n"),
              std::string::npos)
        << got.lines[2].second;
    EXPECT_EQ(got.lines[3].first, log_level::warning);
    EXPECT_NE(got.lines[3].second.find("warning: hello refused: peer 127.0.0.1:4002, client \"client-b\": "
                                       "REJECTED_BAD_PROOF: the proof does not match\n"),
              std::string::npos)
        << got.lines[3].second;
    // Session events are info: at warning only the refusal is written.
    cp::set_log_level(log_level::warning);
    cp::log_session_opened("127.0.0.1:4003", false);
    EXPECT_EQ(got.lines.size(), 4u);
}

TEST_F(kwik_cp_log, kwikd_attach_detach_and_restart) {
    cp::log_kwikd_attach(true, false, "/dev/shm/kwik-a", 1, 0);
    cp::log_kwikd_attach(false, false, "/dev/shm/kwik-a", 1, 0);
    cp::log_kwikd_attach(true, true, "/dev/shm/kwik-a", 2, 1);
    ASSERT_EQ(got.lines.size(), 3u);
    EXPECT_EQ(got.lines[0].first, log_level::notice);
    EXPECT_NE(got.lines[0].second.find("kwikd attached: shared memory /dev/shm/kwik-a (attach 1, kwikd restarts 0)"),
              std::string::npos)
        << got.lines[0].second;
    EXPECT_EQ(got.lines[1].first, log_level::warning);
    EXPECT_NE(got.lines[1].second.find("kwikd detached (shared memory /dev/shm/kwik-a)"), std::string::npos);
    EXPECT_EQ(got.lines[2].first, log_level::warning);
    EXPECT_NE(got.lines[2].second.find("kwikd restarted: attached to its new shared memory /dev/shm/kwik-a (attach 2, "
                                       "kwikd restarts 1)"),
              std::string::npos)
        << got.lines[2].second;
}

TEST_F(kwik_cp_log, protobuf_messages_come_through_the_log_with_a_level) {
    cp::install_protobuf_log_handler();
    // A ClientHello whose client_id (a proto3 string) is not UTF-8: protobuf refuses the parse
    // and says why through its log.
    kcp::v3::KCPMessage m;
    m.mutable_client_hello()->set_client_id("edge");
    std::string wire = m.SerializeAsString();
    const std::size_t at = wire.find("edge");
    ASSERT_NE(at, std::string::npos);
    wire[at] = static_cast<char>(0xff);
    kcp::v3::KCPMessage parsed;
    EXPECT_FALSE(parsed.ParseFromString(wire));
    ASSERT_EQ(got.lines.size(), 1u);
    EXPECT_EQ(got.lines[0].first, log_level::error);
    const std::string& line = got.lines[0].second;
    EXPECT_NE(line.find(" kwik-cp error: protobuf: "), std::string::npos) << line;
    EXPECT_NE(line.find("invalid UTF-8"), std::string::npos) << line;
    EXPECT_NE(line.find("kwik.kcp.v3.ClientHello.client_id"), std::string::npos) << line;
    EXPECT_NE(line.find("raw bytes. (google/protobuf/"), std::string::npos) << line << " (its trailing spaces trimmed)";
    EXPECT_EQ(line.back(), '\n');
    EXPECT_EQ(line.find('\n'), line.size() - 1) << "one line";

    // Below the level it is filtered like any other line.
    cp::set_log_level(log_level::critical);
    EXPECT_FALSE(parsed.ParseFromString(wire));
    EXPECT_EQ(got.lines.size(), 1u);
}

} // namespace
