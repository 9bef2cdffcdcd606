// Unit tests for controlplane/kcp/correlation: correlation_id() gives every payload type its
// role and key (PROTOCOL.md 11.5), and answers() pairs each reply with exactly its request.
#include "controlplane/kcp/correlation.hpp"

#include <gtest/gtest.h>

#include <map>
#include <string>

#include "tests/unit/proto/kcp_samples.hpp"

namespace kwik::kcp {
namespace {

using role = correlation::role;
using kind = correlation::kind;
using v3::samples::make_kcp_message;
using v3::samples::payload_cases;

// The sample header's message_id (kcp_samples.hpp).
constexpr std::uint64_t sample_id = 0x0123456789ABCDEFull;

// What every payload type of the samples gives, by payload name.
const std::map<std::string, correlation>& expected() {
    static const std::map<std::string, correlation> table{
        {"client_hello", {role::request, kind::message_id, sample_id, ""}},
        {"server_hello", {role::reply, kind::message_id, 77, ""}},
        {"capability_query", {role::request, kind::message_id, sample_id, ""}},
        {"capability_response", {role::reply, kind::message_id, 78, ""}},
        {"scaling_request", {role::request, kind::message_id, sample_id, ""}},
        {"scaling_response", {role::reply, kind::message_id, 79, ""}},
        {"transport_command", {role::request, kind::command_id, 0, "cmd-0001"}},
        {"transport_response", {role::reply, kind::command_id, 0, "cmd-0001"}},
        {"health_check_req", {role::request, kind::health_sequence, 1001, ""}},
        {"health_check_resp", {role::reply, kind::health_sequence, 1001, ""}},
        {"add_path", {role::request, kind::path, 3, "conn-7f3a"}},
        {"remove_path", {role::request, kind::path, 4, "conn-7f3a"}},
        {"path_status", {role::reply, kind::path, 5, "conn-7f3a"}},
        {"server_discovery_req", {role::request, kind::discovery, 0, ""}},
        {"server_discovery_resp", {role::reply, kind::discovery, 0, ""}},
        {"performance_metrics", {}},
        {"load_balancing", {}},
        {"traffic_plan", {}},
        {"server_registration", {role::request, kind::message_id, sample_id, ""}},
        {"server_heartbeat", {role::request, kind::message_id, sample_id, ""}},
        {"server_deregistration", {role::request, kind::message_id, sample_id, ""}},
        {"registration_response", {role::reply, kind::message_id, 77, ""}},
        {"operator_request", {role::request, kind::message_id, sample_id, ""}},
        {"operator_response", {role::reply, kind::message_id, 9, ""}},
    };
    return table;
}

TEST(kcp_correlation, every_payload_type) {
    const auto cases = payload_cases();
    ASSERT_EQ(cases.size(), expected().size());
    for (const auto& c : cases) {
        SCOPED_TRACE(c.name);
        const auto want = expected().find(c.name);
        ASSERT_NE(want, expected().end());
        const correlation got = correlation_id(make_kcp_message(c));
        EXPECT_EQ(got.side, want->second.side);
        EXPECT_EQ(got.key_kind, want->second.key_kind);
        EXPECT_EQ(got.number, want->second.number);
        EXPECT_EQ(got.text, want->second.text);
    }
}

TEST(kcp_correlation, no_payload_has_none) {
    KCPMessage m;
    m.mutable_header()->set_message_id(3);
    EXPECT_EQ(correlation_id(m).side, role::none);
    EXPECT_EQ(correlation_id(m).key_kind, kind::none);
}

KCPMessage with_id(std::uint64_t id, KCPMessage m) {
    m.mutable_header()->set_message_id(id);
    return m;
}

TEST(kcp_correlation, in_reply_to_answers_exactly_that_message_id) {
    KCPMessage hello;
    hello.mutable_client_hello()->set_client_id("c");
    KCPMessage reply;
    reply.mutable_server_hello()->set_in_reply_to(7);
    const correlation r = correlation_id(with_id(99, reply));
    EXPECT_TRUE(answers(r, correlation_id(with_id(7, hello))));
    EXPECT_FALSE(answers(r, correlation_id(with_id(8, hello))));
    // The reply's own message_id plays no part.
    EXPECT_FALSE(answers(correlation_id(with_id(7, reply)), correlation_id(with_id(99, hello))));

    // The key is the message id alone: ids are unique per session, so whatever the request's
    // type, only one request holds it.
    KCPMessage query;
    query.mutable_capability_query();
    EXPECT_TRUE(answers(r, correlation_id(with_id(7, query))));
}

TEST(kcp_correlation, in_reply_to_zero_answers_nothing) {
    KCPMessage m;
    m.mutable_capability_response()->set_in_reply_to(0);
    EXPECT_EQ(correlation_id(m).side, role::none);
    KCPMessage s;
    s.mutable_scaling_response();
    EXPECT_EQ(correlation_id(s).side, role::none);
}

TEST(kcp_correlation, a_request_never_answers_a_request) {
    // Both sides may probe health with the same sequence numbers: a peer's request is not the
    // reply to ours.
    KCPMessage ours;
    ours.mutable_health_check_req()->set_sequence(5);
    KCPMessage theirs = ours;
    KCPMessage reply;
    reply.mutable_health_check_resp()->set_sequence(5);
    EXPECT_FALSE(answers(correlation_id(theirs), correlation_id(ours)));
    EXPECT_TRUE(answers(correlation_id(reply), correlation_id(ours)));
    EXPECT_FALSE(answers(correlation_id(ours), correlation_id(reply)));
    reply.mutable_health_check_resp()->set_sequence(6);
    EXPECT_FALSE(answers(correlation_id(reply), correlation_id(ours)));
}

TEST(kcp_correlation, command_ids_and_paths_compare_whole) {
    KCPMessage cmd;
    cmd.mutable_transport_command()->set_command_id("cmd-1");
    KCPMessage resp;
    resp.mutable_transport_response()->set_command_id("cmd-10");
    EXPECT_FALSE(answers(correlation_id(resp), correlation_id(cmd)));
    resp.mutable_transport_response()->set_command_id("cmd-1");
    EXPECT_TRUE(answers(correlation_id(resp), correlation_id(cmd)));

    KCPMessage add;
    add.mutable_add_path()->set_connection_id("a");
    add.mutable_add_path()->set_path_id(2);
    KCPMessage status;
    status.mutable_path_status()->set_connection_id("a");
    status.mutable_path_status()->set_path_id(2);
    EXPECT_TRUE(answers(correlation_id(status), correlation_id(add)));
    status.mutable_path_status()->set_connection_id("b");
    EXPECT_FALSE(answers(correlation_id(status), correlation_id(add)));
    status.mutable_path_status()->set_connection_id("a");
    status.mutable_path_status()->set_path_id(3);
    EXPECT_FALSE(answers(correlation_id(status), correlation_id(add)));
}

TEST(kcp_correlation, names) {
    KCPMessage m;
    m.mutable_transport_command()->set_command_id("x");
    EXPECT_EQ(to_string(correlation_id(m)), "request command_id \"x\"");
    m.mutable_path_status()->set_connection_id("c");
    m.mutable_path_status()->set_path_id(4);
    EXPECT_EQ(to_string(correlation_id(m)), "reply path c/4");
    EXPECT_EQ(to_string(correlation{}), "no correlation");
}

} // namespace
} // namespace kwik::kcp
