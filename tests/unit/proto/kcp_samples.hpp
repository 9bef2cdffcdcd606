// Sample KCP messages for tests: fill() sets every field of each message type to a non-default
// value (values differ between fields of the same type, so a field read back from the wrong
// number shows up as a difference), and payload_cases() gives one KCPMessage per payload member
// of the oneof. Used by the proto round-trip test, the KCP wire tests and the KCP fuzz seeds.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "proto/kcp.pb.h"

namespace kwik::kcp::v3::samples {

inline std::string bytes_of(std::size_t n, unsigned char first) {
    std::string out(n, '\0');
    for (std::size_t i = 0; i < n; ++i) {
        out[i] = static_cast<char>(first + i);
    }
    return out;
}

inline void fill(MessageHeader& m) {
    m.set_message_id(0x0123456789ABCDEFull);
    m.set_timestamp_ms(1'700'000'000'123ull);
    m.set_connection_id("conn-7f3a");
    m.set_priority(CRITICAL);
    m.set_ttl_seconds(30);
}

inline void fill(ProtocolVersion& m) {
    m.set_major(3);
    m.set_minor(1);
}

inline void fill_key_common(DataKeyMaterial& m) {
    m.set_algorithm(AEAD_AES_256_GCM);
    m.set_key_phase(1);
    m.set_valid_until_ms(1'700'003'600'000ull);
    m.set_max_frames(std::uint64_t{1} << 23);
}

inline void fill(DataKeyMaterial& m) {
    fill_key_common(m);
    m.set_key(bytes_of(32, 0x10));
}

inline void fill_with_hkdf_salt(DataKeyMaterial& m) {
    fill_key_common(m);
    m.set_hkdf_salt(bytes_of(32, 0x90));
}

inline void fill(ClientHello& m) {
    m.set_client_id("client-42");
    fill(*m.add_supported_versions());
    ProtocolVersion* older = m.add_supported_versions();
    older->set_major(2);
    older->set_minor(9);
    m.add_capabilities("multipath");
    m.add_capabilities("aead");
    m.set_key_id("key-2024-01");
    m.set_client_nonce(bytes_of(32, 0x20));
    m.set_challenge_echo(bytes_of(32, 0x40));
    m.set_auth_proof(bytes_of(32, 0x60));
    m.add_aead_algorithms(AEAD_AES_256_GCM);
}

inline void fill(ServerHello& m) {
    m.set_in_reply_to(77);
    m.set_server_id("srv-fra-1");
    m.set_challenge(bytes_of(32, 0x80));
    fill(*m.mutable_chosen_version());
    m.add_capabilities("multipath");
    m.set_auth_result(ServerHello::ACCEPTED);
    m.set_error_reason("none");
    m.set_connection_id("conn-7f3a");
    fill(*m.mutable_data_key());
}

inline void fill(UdpPath& m) {
    m.set_ip_version(UdpPath::IPV6);
    m.set_local_address("2001:db8::1");
    m.set_local_port(40000);
    m.set_remote_address("2001:db8::2");
    m.set_remote_port(7707);
}

inline void fill(AddPathCommand& m) {
    m.set_connection_id("conn-7f3a");
    m.set_path_id(3);
    fill(*m.mutable_path());
    m.set_standby(true);
    m.set_initial_weight(0.25f);
    m.set_max_bandwidth_mbps(500);
}

inline void fill(RemovePathCommand& m) {
    m.set_connection_id("conn-7f3a");
    m.set_path_id(4);
    m.set_reason("link maintenance");
    m.set_drain_timeout_ms(250);
}

inline void fill(PathStatusUpdate& m) {
    m.set_connection_id("conn-7f3a");
    m.set_path_id(5);
    m.set_status(PathStatusUpdate::DEGRADED);
    m.set_reason("loss above 5%");
    m.set_smoothed_rtt_us(12'500);
    m.set_loss_rate(0.06f);
    m.set_bandwidth_bps(87'000'000);
    m.set_failover_path_id(6);
}

inline void fill(ServerDiscoveryRequest::GeographicPreference& m) {
    m.add_preferred_regions("eu-central");
    m.add_preferred_regions("eu-west");
    m.set_max_latency_ms(40);
    m.set_require_same_country(true);
}

inline void fill(ServerDiscoveryRequest::QualityOfServiceRequirements& m) {
    m.set_min_bandwidth_mbps(100);
    m.set_max_latency_ms(50);
    m.set_max_packet_loss_rate(0.01f);
    m.set_require_redundancy(true);
}

inline void fill(ServerDiscoveryRequest& m) {
    m.set_client_id("client-42");
    m.add_required_capabilities("multipath");
    m.set_desired_bandwidth_mbps(1000);
    fill(*m.mutable_geo_preference());
    fill(*m.mutable_qos_requirements());
}

inline void fill(ServerDiscoveryResponse::AvailableServer::ServerLocation& m) {
    m.set_country("DE");
    m.set_region("eu-central");
    m.set_datacenter("fra-2");
    m.set_latitude(50.11f);
    m.set_longitude(8.68f);
}

inline void fill(ServerDiscoveryResponse::AvailableServer::ServerMetrics& m) {
    m.set_active_connections(1234);
    m.set_bytes_transferred_total(0xFEDCBA9876543210ull);
    m.set_cpu_usage_percent(37.5f);
    m.set_memory_usage_percent(61.25f);
    m.set_uptime_seconds(86'400);
}

inline void fill(ServerDiscoveryResponse::AvailableServer& m) {
    m.set_address("198.51.100.7:7707");
    m.set_tls_pubkey_hash_sha256(bytes_of(32, 0xA0));
    m.set_available_bandwidth_mbps(9000);
    m.set_current_load_percent(42);
    m.set_latency_ms(11);
    m.add_capabilities("multipath");
    fill(*m.mutable_location());
    fill(*m.mutable_metrics());
}

inline void fill(ServerDiscoveryResponse& m) {
    fill(*m.add_servers());
    fill(*m.add_servers());
    m.mutable_servers(1)->set_address("203.0.113.9:7707");
    m.set_total_available_bandwidth_mbps(18000);
    m.set_recommendation_reason("lowest latency in eu-central");
}

inline void fill(ServerCapabilityQuery& m) {
    m.set_server_id("srv-fra-1");
    m.add_capabilities("aead");
    m.set_include_metrics(true);
}

inline void fill(ServerCapabilityResponse& m) {
    m.set_in_reply_to(78);
    m.set_server_id("srv-fra-1");
    m.add_capabilities("aead");
    m.add_unsupported_capabilities("compression-zstd");
    fill(*m.add_supported_versions());
    m.add_aead_algorithms(AEAD_AES_256_GCM);
    m.set_max_paths_per_connection(16);
    m.set_available_bandwidth_mbps(9000);
    fill(*m.mutable_metrics());
    m.set_error_reason("partial answer");
}

inline void fill(TransportCommand::QoSRequirements& m) {
    m.set_min_bandwidth_mbps(200);
    m.set_max_latency_ms(30);
    m.set_max_packet_loss_rate(0.02f);
    m.set_require_redundancy(true);
}

inline void fill(TransportCommand::TransportOptions& m) {
    m.set_max_paths(8);
    m.set_target_bandwidth_mbps(2000);
    m.set_timeout_seconds(15);
    m.add_preferred_servers("srv-fra-1");
    fill(*m.mutable_qos());
}

inline void fill(TransportCommand& m) {
    m.set_command_id("cmd-0001");
    m.set_type(TransportCommand::SYNC_STATE);
    m.set_connection_id("conn-7f3a");
    m.set_transport_data(bytes_of(16, 0xC0));
    fill(*m.mutable_options());
}

inline void fill(TransportResponse::TransportResult::PathContribution& m) {
    m.set_server_address("198.51.100.7:7707");
    m.set_bandwidth_mbps(750);
    m.set_latency_ms(12.5f);
    m.set_packet_loss_rate(0.001f);
    m.set_path_id(3);
    m.set_standby(true);
}

inline void fill(TransportResponse::TransportResult& m) {
    m.set_active_paths(3);
    m.set_total_bandwidth_mbps(2100);
    m.set_average_latency_ms(14.25f);
    fill(*m.add_path_contributions());
}

inline void fill(TransportResponse& m) {
    m.set_command_id("cmd-0001");
    m.set_status(TransportResponse::IN_PROGRESS);
    m.set_error_message("2 of 3 paths up");
    fill(*m.mutable_result());
}

inline void fill(BandwidthScalingRequest::ScalingPolicy& m) {
    m.set_scale_up_threshold_percent(80);
    m.set_scale_down_threshold_percent(30);
    m.set_min_paths(2);
    m.set_max_paths(12);
    m.set_cooldown_seconds(60);
    m.set_aggressive_scaling(true);
}

inline void fill(BandwidthScalingRequest& m) {
    m.set_connection_id("conn-7f3a");
    m.set_trigger(BandwidthScalingRequest::COST_OPTIMIZATION);
    m.set_current_bandwidth_mbps(1000);
    m.set_target_bandwidth_mbps(3000);
    fill(*m.mutable_policy());
}

inline void fill(BandwidthScalingResponse& m) {
    m.set_in_reply_to(79);
    m.set_connection_id("conn-7f3a");
    m.set_decision(BandwidthScalingResponse::SCALE_UP);
    m.set_reason("demand above 80% for 30 s");
    m.set_old_path_count(2);
    m.set_new_path_count(4);
    m.set_target_bandwidth_mbps(3000);
    m.add_paths_added(7);
    m.add_paths_added(8);
    m.add_paths_removed(2);
    m.set_cooldown_remaining_seconds(45);
}

inline void fill(PerformanceMetrics::Counters& m) {
    m.set_bytes_sent(1'000'001);
    m.set_bytes_received(2'000'002);
    m.set_packets_sent(3003);
    m.set_packets_received(4004);
    m.set_packets_retransmitted(55);
    m.set_bytes_retransmitted(66'066);
    m.set_packets_lost(77);
}

inline void fill(PerformanceMetrics::PathMetrics& m) {
    m.set_path_id(9);
    fill(*m.mutable_counters());
    m.set_smoothed_rtt_us(15'000);
    m.set_min_rtt_us(9'500);
    m.set_rtt_var_us(2'250);
    m.set_loss_rate(0.004f);
    m.set_cwnd_bytes(262'144);
    m.set_bytes_in_flight(131'072);
    m.set_delivery_rate_bps(412'000'000);
}

inline void fill(PerformanceMetrics& m) {
    m.set_connection_id("conn-7f3a");
    fill(*m.mutable_connection());
    fill(*m.add_paths());
    m.set_delivery_rate_bps(820'000'000);
    m.set_report_interval_ms(1000);
}

inline void fill_common(HealthCheckRequest& m) {
    m.set_sequence(1001);
    m.set_connection_id("conn-7f3a");
    m.set_sent_at_us(1'700'000'000'123'456ull);
    m.add_components("port0");
}

inline void fill(HealthCheckRequest& m) {
    fill_common(m);
    m.set_path_id(5);
}

inline void fill_with_server_target(HealthCheckRequest& m) {
    fill_common(m);
    m.set_server_id("srv-fra-1");
}

inline void fill(HealthCheckResponse::ComponentHealth& m) {
    m.set_component("tx_ring");
    m.set_status(HealthCheckResponse::DEGRADED);
    m.set_detail("ring 91% full");
}

inline void fill_common(HealthCheckResponse& m) {
    m.set_sequence(1001);
    m.set_connection_id("conn-7f3a");
    m.set_request_sent_at_us(1'700'000'000'123'456ull);
    m.set_responded_at_us(1'700'000'000'130'000ull);
    m.set_status(HealthCheckResponse::DEGRADED);
    m.set_reason("tx_ring near full");
    fill(*m.add_components());
}

inline void fill(HealthCheckResponse& m) {
    fill_common(m);
    m.set_path_id(5);
}

inline void fill_with_server_target(HealthCheckResponse& m) {
    fill_common(m);
    m.set_server_id("srv-fra-1");
}

inline void fill(LoadBalancingUpdate& m) {
    m.set_connection_id("conn-7f3a");
    (*m.mutable_path_weights())[1] = 0.75f;
    (*m.mutable_path_weights())[2] = 0.25f;
    m.set_min_weight(0.05f);
    m.set_max_weight(0.9f);
    m.set_adaptation_rate(0.2f);
    m.set_generation(12);
}

inline void fill(TrafficDistributionPlan& m) {
    m.set_plan_id("plan-3");
    m.set_connection_id("conn-7f3a");
    m.set_strategy(TrafficDistributionPlan::WEIGHTED);
    (*m.mutable_path_share_bp())[1] = 6000;
    (*m.mutable_path_share_bp())[2] = 4000;
    (*m.mutable_server_share_bp())["srv-fra-1"] = 10000;
    m.set_valid_from_ms(1'700'000'000'000ull);
    m.set_valid_until_ms(1'700'000'060'000ull);
}

inline void fill(ServerRegistration& m) {
    m.set_server_id("srv-fra-1");
    fill(*m.mutable_server());
    m.set_packet_loss_rate(0.002f);
    fill(*m.add_supported_versions());
    m.add_aead_algorithms(AEAD_AES_256_GCM);
    m.set_max_paths_per_connection(16);
}

inline void fill(ServerHeartbeat& m) {
    m.set_server_id("srv-fra-1");
    m.set_available_bandwidth_mbps(8500);
    m.set_current_load_percent(47);
    m.set_latency_ms(12);
    m.set_packet_loss_rate(0.001f);
    fill(*m.mutable_metrics());
}

inline void fill(ServerDeregistration& m) {
    m.set_server_id("srv-fra-1");
    m.set_reason("maintenance");
}

inline void fill(ServerRegistrationResponse& m) {
    m.set_in_reply_to(77);
    m.set_server_id("srv-fra-1");
    m.set_accepted(true);
    m.set_error_reason("not an error, but every field is set");
    m.set_heartbeat_interval_ms(10'000);
    m.set_expires_at_ms(1'700'000'030'000ull);
}

inline void fill(OperatorRequest::Show& m) {
    m.set_view(OperatorRequest::PATHS);
    m.set_connection("0123456789abcdef0123456789abcdef");
}

inline void fill(OperatorRequest::PathChange& m) {
    m.set_connection("0123456789abcdef0123456789abcdef");
    m.set_path_id(3);
    fill(*m.mutable_path());
    m.set_weight(2.5f);
    m.set_standby(true);
    m.set_max_bandwidth_mbps(400);
    m.set_drain_timeout_ms(250);
}

inline void fill(OperatorRequest::Scale& m) {
    m.set_connection("7");
    m.set_target_bandwidth_mbps(2000);
    fill(*m.mutable_policy());
}

inline void fill(OperatorRequest::Qos& m) {
    m.set_connection("7");
    m.set_stream_id(12);
    m.set_priority(2);
    m.set_min_bandwidth_mbps(50);
    m.set_max_bandwidth_mbps(500);
}

inline void fill(OperatorRequest::Scheduler& m) {
    m.set_connection("7");
    m.set_strategy(TrafficDistributionPlan::MIN_RTT);
}

inline void fill(OperatorRequest::Weights& m) {
    m.set_connection("7");
    (*m.mutable_path_weights())[1] = 3.0f;
    (*m.mutable_path_weights())[2] = 1.0f;
}

inline void fill(OperatorRequest::Health& m) {
    m.set_connection("7");
    m.set_path_id(2);
}

inline void fill(TableValue& m) { m.set_text("up"); }

inline void fill(Table::Row& m) {
    m.add_values()->set_text("up");
    m.add_values()->set_unsigned_value(18'446'744'073'709'551'615ull);
    m.add_values()->set_signed_value(-5);
    m.add_values()->set_real(0.25);
    m.add_values()->set_flag(true);
}

inline void fill(Table& m) {
    m.set_name("paths");
    for (const char* c : {"status", "rx_packets", "delta", "loss_rate", "standby"}) {
        m.add_columns(c);
    }
    fill(*m.add_rows());
}

inline void fill(OperatorResponse& m) {
    m.set_in_reply_to(9);
    m.set_ok(true);
    m.set_error("not an error, but every field is set");
    fill(*m.add_tables());
    m.set_detail("path 3 added to connection 7");
}

// One KCPMessage per payload case: header plus that payload, every field set.
struct payload_case {
    std::string name;
    KCPMessage::PayloadCase expected;
    std::function<void(KCPMessage&)> set_payload;
};

inline std::vector<payload_case> payload_cases() {
    return {
        {"client_hello", KCPMessage::kClientHello,
         [](KCPMessage& m) { fill(*m.mutable_client_hello()); }},
        {"server_hello", KCPMessage::kServerHello,
         [](KCPMessage& m) { fill(*m.mutable_server_hello()); }},
        {"add_path", KCPMessage::kAddPath, [](KCPMessage& m) { fill(*m.mutable_add_path()); }},
        {"remove_path", KCPMessage::kRemovePath,
         [](KCPMessage& m) { fill(*m.mutable_remove_path()); }},
        {"path_status", KCPMessage::kPathStatus,
         [](KCPMessage& m) { fill(*m.mutable_path_status()); }},
        {"server_discovery_req", KCPMessage::kServerDiscoveryReq,
         [](KCPMessage& m) { fill(*m.mutable_server_discovery_req()); }},
        {"server_discovery_resp", KCPMessage::kServerDiscoveryResp,
         [](KCPMessage& m) { fill(*m.mutable_server_discovery_resp()); }},
        {"capability_query", KCPMessage::kCapabilityQuery,
         [](KCPMessage& m) { fill(*m.mutable_capability_query()); }},
        {"capability_response", KCPMessage::kCapabilityResponse,
         [](KCPMessage& m) { fill(*m.mutable_capability_response()); }},
        {"transport_command", KCPMessage::kTransportCommand,
         [](KCPMessage& m) { fill(*m.mutable_transport_command()); }},
        {"transport_response", KCPMessage::kTransportResponse,
         [](KCPMessage& m) { fill(*m.mutable_transport_response()); }},
        {"scaling_request", KCPMessage::kScalingRequest,
         [](KCPMessage& m) { fill(*m.mutable_scaling_request()); }},
        {"scaling_response", KCPMessage::kScalingResponse,
         [](KCPMessage& m) { fill(*m.mutable_scaling_response()); }},
        {"performance_metrics", KCPMessage::kPerformanceMetrics,
         [](KCPMessage& m) { fill(*m.mutable_performance_metrics()); }},
        {"health_check_req", KCPMessage::kHealthCheckReq,
         [](KCPMessage& m) { fill(*m.mutable_health_check_req()); }},
        {"health_check_resp", KCPMessage::kHealthCheckResp,
         [](KCPMessage& m) { fill(*m.mutable_health_check_resp()); }},
        {"load_balancing", KCPMessage::kLoadBalancing,
         [](KCPMessage& m) { fill(*m.mutable_load_balancing()); }},
        {"traffic_plan", KCPMessage::kTrafficPlan,
         [](KCPMessage& m) { fill(*m.mutable_traffic_plan()); }},
        {"server_registration", KCPMessage::kServerRegistration,
         [](KCPMessage& m) { fill(*m.mutable_server_registration()); }},
        {"server_heartbeat", KCPMessage::kServerHeartbeat,
         [](KCPMessage& m) { fill(*m.mutable_server_heartbeat()); }},
        {"server_deregistration", KCPMessage::kServerDeregistration,
         [](KCPMessage& m) { fill(*m.mutable_server_deregistration()); }},
        {"registration_response", KCPMessage::kRegistrationResponse,
         [](KCPMessage& m) { fill(*m.mutable_registration_response()); }},
        {"operator_request", KCPMessage::kOperatorRequest,
         [](KCPMessage& m) { fill(*m.mutable_operator_request()->mutable_show()); }},
        {"operator_response", KCPMessage::kOperatorResponse,
         [](KCPMessage& m) { fill(*m.mutable_operator_response()); }},
    };
}

inline KCPMessage make_kcp_message(const payload_case& c) {
    KCPMessage m;
    fill(*m.mutable_header());
    c.set_payload(m);
    return m;
}

} // namespace kwik::kcp::v3::samples
