// kwik-cp's refusal and "not handled yet" answers (control_server.hpp's error_answer): each
// request gets its own response type with the reason in the field that has one; one-way
// messages and responses get none.
#include <gtest/gtest.h>

#include <string>

#include "controlplane/server/kwik_cp/control_server.hpp"

namespace {

using namespace kwik;
using kcp::KCPMessage;
namespace v3 = kcp::v3;

TEST(kwik_cp_error_answer, each_request_gets_its_response_type) {
    const std::string why = "refused: because";
    KCPMessage m;
    m.mutable_header()->set_message_id(7);

    m.mutable_server_discovery_req();
    auto a = cp::error_answer(m, why);
    ASSERT_TRUE(a && a->has_server_discovery_resp());
    EXPECT_EQ(a->server_discovery_resp().recommendation_reason(), why);
    EXPECT_EQ(a->server_discovery_resp().servers_size(), 0);

    m.mutable_capability_query()->set_server_id("s");
    a = cp::error_answer(m, why);
    ASSERT_TRUE(a && a->has_capability_response());
    EXPECT_EQ(a->capability_response().in_reply_to(), 7u);
    EXPECT_EQ(a->capability_response().error_reason(), why);

    m.mutable_add_path()->set_connection_id("c");
    m.mutable_add_path()->set_path_id(3);
    a = cp::error_answer(m, why);
    ASSERT_TRUE(a && a->has_path_status());
    EXPECT_EQ(a->path_status().status(), v3::PathStatusUpdate::REMOVED);
    EXPECT_EQ(a->path_status().connection_id(), "c");
    EXPECT_EQ(a->path_status().path_id(), 3u);
    EXPECT_EQ(a->path_status().reason(), why);

    m.mutable_remove_path()->set_path_id(4);
    a = cp::error_answer(m, why);
    ASSERT_TRUE(a && a->has_path_status());
    EXPECT_EQ(a->path_status().path_id(), 4u);
    EXPECT_EQ(a->path_status().status(), v3::PathStatusUpdate::REMOVED);

    m.mutable_health_check_req()->set_sequence(11);
    m.mutable_health_check_req()->set_sent_at_us(99);
    a = cp::error_answer(m, why);
    ASSERT_TRUE(a && a->has_health_check_resp());
    EXPECT_EQ(a->health_check_resp().sequence(), 11u);
    EXPECT_EQ(a->health_check_resp().request_sent_at_us(), 99u);
    EXPECT_EQ(a->health_check_resp().status(), v3::HealthCheckResponse::UNHEALTHY);
    EXPECT_EQ(a->health_check_resp().reason(), why);

    m.mutable_transport_command()->set_command_id("cmd");
    a = cp::error_answer(m, why);
    ASSERT_TRUE(a && a->has_transport_response());
    EXPECT_EQ(a->transport_response().command_id(), "cmd");
    EXPECT_EQ(a->transport_response().status(), v3::TransportResponse::FAILURE);
    EXPECT_EQ(a->transport_response().error_message(), why);

    m.mutable_scaling_request()->set_connection_id("c");
    a = cp::error_answer(m, why);
    ASSERT_TRUE(a && a->has_scaling_response());
    EXPECT_EQ(a->scaling_response().in_reply_to(), 7u);
    EXPECT_EQ(a->scaling_response().decision(), v3::BandwidthScalingResponse::REJECTED);
    EXPECT_EQ(a->scaling_response().reason(), why);

    m.mutable_server_registration()->set_server_id("srv-a");
    a = cp::error_answer(m, why);
    ASSERT_TRUE(a && a->has_registration_response());
    EXPECT_EQ(a->registration_response().in_reply_to(), 7u);
    EXPECT_EQ(a->registration_response().server_id(), "srv-a");
    EXPECT_FALSE(a->registration_response().accepted());
    EXPECT_EQ(a->registration_response().error_reason(), why);

    m.mutable_server_heartbeat()->set_server_id("srv-b");
    a = cp::error_answer(m, why);
    ASSERT_TRUE(a && a->has_registration_response());
    EXPECT_EQ(a->registration_response().server_id(), "srv-b");

    m.mutable_server_deregistration()->set_server_id("srv-c");
    a = cp::error_answer(m, why);
    ASSERT_TRUE(a && a->has_registration_response());
    EXPECT_EQ(a->registration_response().server_id(), "srv-c");
    EXPECT_FALSE(a->registration_response().accepted());

    m.mutable_operator_request()->mutable_show()->set_view(v3::OperatorRequest::PATHS);
    a = cp::error_answer(m, why);
    ASSERT_TRUE(a && a->has_operator_response());
    EXPECT_EQ(a->operator_response().in_reply_to(), 7u);
    EXPECT_FALSE(a->operator_response().ok());
    EXPECT_EQ(a->operator_response().error(), why);
}

TEST(kwik_cp_error_answer, one_way_messages_and_responses_get_none) {
    KCPMessage m;
    EXPECT_FALSE(cp::error_answer(m, "x")) << "no payload";
    m.mutable_performance_metrics();
    EXPECT_FALSE(cp::error_answer(m, "x"));
    m.mutable_load_balancing();
    EXPECT_FALSE(cp::error_answer(m, "x"));
    m.mutable_traffic_plan();
    EXPECT_FALSE(cp::error_answer(m, "x"));
    m.mutable_registration_response();
    EXPECT_FALSE(cp::error_answer(m, "x"));
    m.mutable_operator_response();
    EXPECT_FALSE(cp::error_answer(m, "x"));
    m.mutable_path_status();
    EXPECT_FALSE(cp::error_answer(m, "x"));
    m.mutable_server_hello();
    EXPECT_FALSE(cp::error_answer(m, "x"));
}

} // namespace
