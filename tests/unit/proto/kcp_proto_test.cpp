// Unit tests for proto/kcp.proto: every message type (nested ones included) survives a
// serialize/parse round trip with every field set, KCPMessage dispatches every payload case,
// and every field, number and enum value that the KCP design spells out is exactly as written.
#include "proto/kcp.pb.h"
#include "tests/unit/proto/kcp_samples.hpp"

#include <google/protobuf/descriptor.h>
#include <google/protobuf/descriptor.pb.h>
#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/io/zero_copy_stream_impl_lite.h>
#include <google/protobuf/util/message_differencer.h>
#include <gtest/gtest.h>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <ostream>
#include <set>
#include <string>
#include <utility>
#include <vector>

namespace kwik::kcp::v3 {
namespace {

using google::protobuf::Descriptor;
using google::protobuf::EnumDescriptor;
using google::protobuf::FieldDescriptor;
using google::protobuf::FileDescriptor;
using google::protobuf::Message;
using google::protobuf::util::MessageDifferencer;

using namespace samples;

constexpr const char* package_prefix = "kwik.kcp.v3.";

// ---- Reflection checks ----------------------------------------------------------------------

// Appends the path of every field of m (recursively) left at its default: a repeated field with
// no elements, a singular field without presence, a oneof with no member set.
void collect_unset(const Message& m, const std::string& prefix, std::vector<std::string>& unset) {
    const Descriptor* d = m.GetDescriptor();
    const auto* r = m.GetReflection();
    for (int i = 0; i < d->oneof_decl_count(); ++i) {
        const auto* oneof = d->oneof_decl(i);
        if (!oneof->is_synthetic() && !r->HasOneof(m, oneof)) {
            unset.push_back(prefix + oneof->name());
        }
    }
    for (int i = 0; i < d->field_count(); ++i) {
        const FieldDescriptor* f = d->field(i);
        const std::string path = prefix + f->name();
        if (f->is_repeated()) {
            const int n = r->FieldSize(m, f);
            if (n == 0) {
                unset.push_back(path);
            } else if (f->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE && !f->is_map()) {
                for (int j = 0; j < n; ++j) {
                    collect_unset(r->GetRepeatedMessage(m, f, j),
                                  path + "[" + std::to_string(j) + "].", unset);
                }
            }
            continue;
        }
        if (!r->HasField(m, f)) {
            // A oneof member may be unset when another one is: the oneof itself is checked above.
            if (f->real_containing_oneof() == nullptr) {
                unset.push_back(path);
            }
            continue;
        }
        if (f->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE) {
            collect_unset(r->GetMessage(m, f), path + ".", unset);
        }
    }
}

// Records the full name of every message type reachable in m and every oneof member set in it.
void collect_coverage(const Message& m, std::set<std::string>& types,
                      std::set<std::string>& oneof_members) {
    const Descriptor* d = m.GetDescriptor();
    const auto* r = m.GetReflection();
    types.insert(d->full_name());
    for (int i = 0; i < d->field_count(); ++i) {
        const FieldDescriptor* f = d->field(i);
        if (f->real_containing_oneof() != nullptr && r->HasField(m, f)) {
            oneof_members.insert(f->full_name());
        }
        if (f->cpp_type() != FieldDescriptor::CPPTYPE_MESSAGE || f->is_map()) {
            continue;
        }
        if (f->is_repeated()) {
            for (int j = 0; j < r->FieldSize(m, f); ++j) {
                collect_coverage(r->GetRepeatedMessage(m, f, j), types, oneof_members);
            }
        } else if (r->HasField(m, f)) {
            collect_coverage(r->GetMessage(m, f), types, oneof_members);
        }
    }
}

void collect_declared(const Descriptor* d, std::set<std::string>& types,
                      std::set<std::string>& oneof_members) {
    if (d->options().map_entry()) {
        return; // synthetic key/value pair of a map field, not a message of the protocol
    }
    types.insert(d->full_name());
    for (int i = 0; i < d->field_count(); ++i) {
        if (d->field(i)->real_containing_oneof() != nullptr) {
            oneof_members.insert(d->field(i)->full_name());
        }
    }
    for (int i = 0; i < d->nested_type_count(); ++i) {
        collect_declared(d->nested_type(i), types, oneof_members);
    }
}

std::string serialize_deterministic(const Message& m) {
    std::string out;
    {
        google::protobuf::io::StringOutputStream stream(&out);
        google::protobuf::io::CodedOutputStream coded(&stream);
        coded.SetSerializationDeterministic(true);
        EXPECT_TRUE(m.SerializeToCodedStream(&coded));
    }
    return out;
}

// ---- Round trip of every message type --------------------------------------------------------

struct message_case {
    std::string name;
    std::function<std::unique_ptr<Message>()> make;
};

template <typename T, typename Fill>
message_case make_case(std::string name, Fill fill_fn) {
    return {std::move(name), [fill_fn]() -> std::unique_ptr<Message> {
                auto m = std::make_unique<T>();
                fill_fn(*m);
                return m;
            }};
}

template <typename T>
message_case make_case(std::string name) {
    return make_case<T>(std::move(name), [](T& m) { fill(m); });
}

std::vector<message_case> round_trip_cases() {
    using available_server = ServerDiscoveryResponse::AvailableServer;
    std::vector<message_case> cases{
        make_case<MessageHeader>("MessageHeader"),
        make_case<ProtocolVersion>("ProtocolVersion"),
        make_case<DataKeyMaterial>("DataKeyMaterial_key"),
        make_case<DataKeyMaterial>("DataKeyMaterial_hkdf_salt",
                                   [](DataKeyMaterial& m) { fill_with_hkdf_salt(m); }),
        make_case<ClientHello>("ClientHello"),
        make_case<ServerHello>("ServerHello"),
        make_case<UdpPath>("UdpPath"),
        make_case<AddPathCommand>("AddPathCommand"),
        make_case<RemovePathCommand>("RemovePathCommand"),
        make_case<PathStatusUpdate>("PathStatusUpdate"),
        make_case<ServerDiscoveryRequest::GeographicPreference>(
            "ServerDiscoveryRequest_GeographicPreference"),
        make_case<ServerDiscoveryRequest::QualityOfServiceRequirements>(
            "ServerDiscoveryRequest_QualityOfServiceRequirements"),
        make_case<ServerDiscoveryRequest>("ServerDiscoveryRequest"),
        make_case<available_server::ServerLocation>(
            "ServerDiscoveryResponse_AvailableServer_ServerLocation"),
        make_case<available_server::ServerMetrics>(
            "ServerDiscoveryResponse_AvailableServer_ServerMetrics"),
        make_case<available_server>("ServerDiscoveryResponse_AvailableServer"),
        make_case<ServerDiscoveryResponse>("ServerDiscoveryResponse"),
        make_case<ServerCapabilityQuery>("ServerCapabilityQuery"),
        make_case<ServerCapabilityResponse>("ServerCapabilityResponse"),
        make_case<TransportCommand::QoSRequirements>("TransportCommand_QoSRequirements"),
        make_case<TransportCommand::TransportOptions>("TransportCommand_TransportOptions"),
        make_case<TransportCommand>("TransportCommand"),
        make_case<TransportResponse::TransportResult::PathContribution>(
            "TransportResponse_TransportResult_PathContribution"),
        make_case<TransportResponse::TransportResult>("TransportResponse_TransportResult"),
        make_case<TransportResponse>("TransportResponse"),
        make_case<BandwidthScalingRequest::ScalingPolicy>("BandwidthScalingRequest_ScalingPolicy"),
        make_case<BandwidthScalingRequest>("BandwidthScalingRequest"),
        make_case<BandwidthScalingResponse>("BandwidthScalingResponse"),
        make_case<PerformanceMetrics::Counters>("PerformanceMetrics_Counters"),
        make_case<PerformanceMetrics::PathMetrics>("PerformanceMetrics_PathMetrics"),
        make_case<PerformanceMetrics>("PerformanceMetrics"),
        make_case<HealthCheckRequest>("HealthCheckRequest_path"),
        make_case<HealthCheckRequest>("HealthCheckRequest_server",
                                      [](HealthCheckRequest& m) { fill_with_server_target(m); }),
        make_case<HealthCheckResponse::ComponentHealth>("HealthCheckResponse_ComponentHealth"),
        make_case<HealthCheckResponse>("HealthCheckResponse_path"),
        make_case<HealthCheckResponse>("HealthCheckResponse_server",
                                       [](HealthCheckResponse& m) { fill_with_server_target(m); }),
        make_case<LoadBalancingUpdate>("LoadBalancingUpdate"),
        make_case<TrafficDistributionPlan>("TrafficDistributionPlan"),
        make_case<ServerRegistration>("ServerRegistration"),
        make_case<ServerHeartbeat>("ServerHeartbeat"),
        make_case<ServerDeregistration>("ServerDeregistration"),
        make_case<ServerRegistrationResponse>("ServerRegistrationResponse"),
        make_case<OperatorRequest::Show>("OperatorRequest_Show"),
        make_case<OperatorRequest::PathChange>("OperatorRequest_PathChange"),
        make_case<OperatorRequest::Scale>("OperatorRequest_Scale"),
        make_case<OperatorRequest::Qos>("OperatorRequest_Qos"),
        make_case<OperatorRequest::Scheduler>("OperatorRequest_Scheduler"),
        make_case<OperatorRequest::Weights>("OperatorRequest_Weights"),
        make_case<OperatorRequest::Health>("OperatorRequest_Health"),
        make_case<OperatorRequest>("OperatorRequest_show",
                                   [](OperatorRequest& m) { fill(*m.mutable_show()); }),
        make_case<OperatorRequest>("OperatorRequest_add_path",
                                   [](OperatorRequest& m) { fill(*m.mutable_add_path()); }),
        make_case<OperatorRequest>("OperatorRequest_remove_path",
                                   [](OperatorRequest& m) { fill(*m.mutable_remove_path()); }),
        make_case<OperatorRequest>("OperatorRequest_scale",
                                   [](OperatorRequest& m) { fill(*m.mutable_scale()); }),
        make_case<OperatorRequest>("OperatorRequest_set_qos",
                                   [](OperatorRequest& m) { fill(*m.mutable_set_qos()); }),
        make_case<OperatorRequest>("OperatorRequest_set_scheduler",
                                   [](OperatorRequest& m) { fill(*m.mutable_set_scheduler()); }),
        make_case<OperatorRequest>("OperatorRequest_set_weights",
                                   [](OperatorRequest& m) { fill(*m.mutable_set_weights()); }),
        make_case<OperatorRequest>("OperatorRequest_health",
                                   [](OperatorRequest& m) { fill(*m.mutable_health()); }),
        make_case<OperatorRequest>("OperatorRequest_register_server",
                                   [](OperatorRequest& m) { fill(*m.mutable_register_server()); }),
        make_case<OperatorRequest>("OperatorRequest_remove_server",
                                   [](OperatorRequest& m) { fill(*m.mutable_remove_server()); }),
        make_case<TableValue>("TableValue_text"),
        make_case<TableValue>("TableValue_unsigned", [](TableValue& m) { m.set_unsigned_value(7); }),
        make_case<TableValue>("TableValue_signed", [](TableValue& m) { m.set_signed_value(-7); }),
        make_case<TableValue>("TableValue_real", [](TableValue& m) { m.set_real(0.5); }),
        make_case<TableValue>("TableValue_flag", [](TableValue& m) { m.set_flag(true); }),
        make_case<Table::Row>("Table_Row"),
        make_case<Table>("Table"),
        make_case<OperatorResponse>("OperatorResponse"),
    };
    for (const payload_case& p : payload_cases()) {
        cases.push_back({"KCPMessage_" + p.name, [p]() -> std::unique_ptr<Message> {
                             return std::make_unique<KCPMessage>(make_kcp_message(p));
                         }});
    }
    return cases;
}

// Names the case in gtest output instead of dumping the struct's bytes.
void PrintTo(const message_case& c, std::ostream* os) {
    *os << c.name;
}

class kcp_round_trip : public testing::TestWithParam<message_case> {};

TEST_P(kcp_round_trip, every_field_survives) {
    const std::unique_ptr<Message> original = GetParam().make();

    std::vector<std::string> unset;
    collect_unset(*original, "", unset);
    std::string unset_list;
    for (const std::string& name : unset) {
        unset_list += " " + name;
    }
    EXPECT_TRUE(unset.empty()) << original->GetTypeName() << " fields left at default:"
                               << unset_list;

    std::string wire;
    ASSERT_TRUE(original->SerializeToString(&wire));
    ASSERT_FALSE(wire.empty());
    EXPECT_EQ(wire.size(), original->ByteSizeLong());

    std::unique_ptr<Message> parsed(original->New());
    ASSERT_TRUE(parsed->ParseFromString(wire));
    EXPECT_TRUE(MessageDifferencer::Equals(*original, *parsed))
        << "sent:   " << original->ShortDebugString() << "\nparsed: "
        << parsed->ShortDebugString();
    EXPECT_EQ(serialize_deterministic(*parsed), serialize_deterministic(*original));

    // The comparison must be able to tell: a default instance differs from the filled one.
    std::unique_ptr<Message> empty(original->New());
    EXPECT_FALSE(MessageDifferencer::Equals(*empty, *parsed));
}

INSTANTIATE_TEST_SUITE_P(all_messages, kcp_round_trip, testing::ValuesIn(round_trip_cases()),
                         [](const testing::TestParamInfo<message_case>& info) {
                             return info.param.name;
                         });

// Every message type of kcp.proto (nested ones included) and every member of every oneof is
// exercised by the round-trip cases above, so a new message or field cannot go untested.
TEST(kcp_round_trip_coverage, every_message_type_and_oneof_member) {
    std::set<std::string> declared_types;
    std::set<std::string> declared_members;
    const FileDescriptor* file = KCPMessage::descriptor()->file();
    for (int i = 0; i < file->message_type_count(); ++i) {
        collect_declared(file->message_type(i), declared_types, declared_members);
    }

    std::set<std::string> covered_types;
    std::set<std::string> covered_members;
    for (const message_case& c : round_trip_cases()) {
        collect_coverage(*c.make(), covered_types, covered_members);
    }

    for (const std::string& name : declared_types) {
        EXPECT_TRUE(covered_types.count(name) == 1) << "no round-trip case fills " << name;
    }
    for (const std::string& name : declared_members) {
        EXPECT_TRUE(covered_members.count(name) == 1) << "no round-trip case sets " << name;
    }
    EXPECT_EQ(covered_types, declared_types);
    // 31 top-level and 21 nested messages (map entries excluded).
    EXPECT_EQ(declared_types.size(), 52u);
}

// ---- KCPMessage oneof dispatch ---------------------------------------------------------------

TEST(kcp_message, payload_case_survives_round_trip_for_every_payload) {
    const std::vector<payload_case> cases = payload_cases();
    const Descriptor* d = KCPMessage::descriptor();
    const auto* payload = d->FindOneofByName("payload");
    ASSERT_NE(payload, nullptr);
    ASSERT_EQ(static_cast<int>(cases.size()), payload->field_count());

    std::set<int> seen;
    for (const payload_case& c : cases) {
        SCOPED_TRACE(c.name);
        const FieldDescriptor* member = d->FindFieldByName(c.name);
        ASSERT_NE(member, nullptr);
        EXPECT_EQ(member->containing_oneof(), payload);
        EXPECT_EQ(static_cast<int>(c.expected), member->number());
        EXPECT_TRUE(seen.insert(member->number()).second);

        const KCPMessage sent = make_kcp_message(c);
        ASSERT_EQ(sent.payload_case(), c.expected);
        std::string wire;
        ASSERT_TRUE(sent.SerializeToString(&wire));

        KCPMessage received;
        ASSERT_TRUE(received.ParseFromString(wire));
        EXPECT_EQ(received.payload_case(), c.expected);
        EXPECT_TRUE(received.GetReflection()->HasField(received, member));
        EXPECT_TRUE(received.has_header());
        EXPECT_TRUE(MessageDifferencer::Equals(sent, received));
        // Only the one member is present.
        for (int i = 0; i < payload->field_count(); ++i) {
            if (payload->field(i) != member) {
                EXPECT_FALSE(received.GetReflection()->HasField(received, payload->field(i)))
                    << payload->field(i)->name();
            }
        }
    }
}

void append_varint(std::string& out, std::uint64_t v) {
    while (v >= 0x80) {
        out.push_back(static_cast<char>((v & 0x7F) | 0x80));
        v >>= 7;
    }
    out.push_back(static_cast<char>(v));
}

// Hand-built wire bytes (tag of field N, length-delimited, empty body) select payload case N:
// the numbers on the wire are the design's, independent of the generated accessors.
TEST(kcp_message, hand_built_tag_selects_payload_case) {
    for (const payload_case& c : payload_cases()) {
        SCOPED_TRACE(c.name);
        const auto number = static_cast<std::uint64_t>(c.expected);
        std::string wire;
        append_varint(wire, (number << 3) | 2); // wire type 2: length-delimited
        append_varint(wire, 0);
        KCPMessage m;
        ASSERT_TRUE(m.ParseFromString(wire));
        EXPECT_EQ(m.payload_case(), c.expected);
        EXPECT_FALSE(m.has_header());
    }
}

TEST(kcp_message, setting_another_payload_replaces_the_first) {
    KCPMessage m;
    fill(*m.mutable_client_hello());
    fill(*m.mutable_add_path());
    EXPECT_EQ(m.payload_case(), KCPMessage::kAddPath);
    EXPECT_FALSE(m.has_client_hello());
    m.clear_payload();
    EXPECT_EQ(m.payload_case(), KCPMessage::PAYLOAD_NOT_SET);
}

TEST(kcp_message, golden_bytes) {
    KCPMessage m;
    m.mutable_header()->set_message_id(1);
    m.mutable_header()->set_priority(HIGH);
    m.mutable_client_hello()->set_client_id("c");
    const std::string expected{
        '\x0a', '\x04', '\x08', '\x01', '\x20', '\x02', // header (1): message_id (1), priority (4)
        '\x52', '\x03', '\x0a', '\x01', 'c',            // client_hello (10): client_id (1)
    };
    EXPECT_EQ(m.SerializeAsString(), expected);
}

// ---- The design's schema, field by field -----------------------------------------------------

struct seed_field {
    const char* message; // relative to the package
    const char* field;
    int number;
    const char* type;    // scalar type name, or message/enum name relative to the package
    bool repeated;
};

// Every field of every message that the KCP design spells out, as written there.
const std::vector<seed_field>& seed_fields() {
    static const std::vector<seed_field> fields{
        {"KCPMessage", "header", 1, "MessageHeader", false},
        {"KCPMessage", "client_hello", 10, "ClientHello", false},
        {"KCPMessage", "server_hello", 11, "ServerHello", false},
        {"KCPMessage", "add_path", 20, "AddPathCommand", false},
        {"KCPMessage", "remove_path", 21, "RemovePathCommand", false},
        {"KCPMessage", "path_status", 22, "PathStatusUpdate", false},
        {"KCPMessage", "server_discovery_req", 30, "ServerDiscoveryRequest", false},
        {"KCPMessage", "server_discovery_resp", 31, "ServerDiscoveryResponse", false},
        {"KCPMessage", "capability_query", 32, "ServerCapabilityQuery", false},
        {"KCPMessage", "capability_response", 33, "ServerCapabilityResponse", false},
        {"KCPMessage", "transport_command", 40, "TransportCommand", false},
        {"KCPMessage", "transport_response", 41, "TransportResponse", false},
        {"KCPMessage", "scaling_request", 50, "BandwidthScalingRequest", false},
        {"KCPMessage", "scaling_response", 51, "BandwidthScalingResponse", false},
        {"KCPMessage", "performance_metrics", 52, "PerformanceMetrics", false},
        {"KCPMessage", "health_check_req", 60, "HealthCheckRequest", false},
        {"KCPMessage", "health_check_resp", 61, "HealthCheckResponse", false},
        {"KCPMessage", "load_balancing", 70, "LoadBalancingUpdate", false},
        {"KCPMessage", "traffic_plan", 71, "TrafficDistributionPlan", false},

        {"MessageHeader", "message_id", 1, "uint64", false},
        {"MessageHeader", "timestamp_ms", 2, "uint64", false},
        {"MessageHeader", "connection_id", 3, "string", false},
        {"MessageHeader", "priority", 4, "MessagePriority", false},
        {"MessageHeader", "ttl_seconds", 5, "uint32", false},

        {"ServerDiscoveryRequest", "client_id", 1, "string", false},
        {"ServerDiscoveryRequest", "required_capabilities", 2, "string", true},
        {"ServerDiscoveryRequest", "desired_bandwidth_mbps", 3, "uint32", false},
        {"ServerDiscoveryRequest", "geo_preference", 4,
         "ServerDiscoveryRequest.GeographicPreference", false},
        {"ServerDiscoveryRequest", "qos_requirements", 5,
         "ServerDiscoveryRequest.QualityOfServiceRequirements", false},
        {"ServerDiscoveryRequest.GeographicPreference", "preferred_regions", 1, "string", true},
        {"ServerDiscoveryRequest.GeographicPreference", "max_latency_ms", 2, "uint32", false},
        {"ServerDiscoveryRequest.GeographicPreference", "require_same_country", 3, "bool", false},
        {"ServerDiscoveryRequest.QualityOfServiceRequirements", "min_bandwidth_mbps", 1, "uint32",
         false},
        {"ServerDiscoveryRequest.QualityOfServiceRequirements", "max_latency_ms", 2, "uint32",
         false},
        {"ServerDiscoveryRequest.QualityOfServiceRequirements", "max_packet_loss_rate", 3, "float",
         false},
        {"ServerDiscoveryRequest.QualityOfServiceRequirements", "require_redundancy", 4, "bool",
         false},

        {"ServerDiscoveryResponse", "servers", 1, "ServerDiscoveryResponse.AvailableServer", true},
        {"ServerDiscoveryResponse", "total_available_bandwidth_mbps", 2, "uint32", false},
        {"ServerDiscoveryResponse", "recommendation_reason", 3, "string", false},
        {"ServerDiscoveryResponse.AvailableServer", "address", 1, "string", false},
        {"ServerDiscoveryResponse.AvailableServer", "tls_pubkey_hash_sha256", 2, "bytes", false},
        {"ServerDiscoveryResponse.AvailableServer", "available_bandwidth_mbps", 3, "uint32", false},
        {"ServerDiscoveryResponse.AvailableServer", "current_load_percent", 4, "uint32", false},
        {"ServerDiscoveryResponse.AvailableServer", "latency_ms", 5, "uint32", false},
        {"ServerDiscoveryResponse.AvailableServer", "capabilities", 6, "string", true},
        {"ServerDiscoveryResponse.AvailableServer", "location", 7,
         "ServerDiscoveryResponse.AvailableServer.ServerLocation", false},
        {"ServerDiscoveryResponse.AvailableServer", "metrics", 8,
         "ServerDiscoveryResponse.AvailableServer.ServerMetrics", false},
        {"ServerDiscoveryResponse.AvailableServer.ServerLocation", "country", 1, "string", false},
        {"ServerDiscoveryResponse.AvailableServer.ServerLocation", "region", 2, "string", false},
        {"ServerDiscoveryResponse.AvailableServer.ServerLocation", "datacenter", 3, "string",
         false},
        {"ServerDiscoveryResponse.AvailableServer.ServerLocation", "latitude", 4, "float", false},
        {"ServerDiscoveryResponse.AvailableServer.ServerLocation", "longitude", 5, "float", false},
        {"ServerDiscoveryResponse.AvailableServer.ServerMetrics", "active_connections", 1, "uint32",
         false},
        {"ServerDiscoveryResponse.AvailableServer.ServerMetrics", "bytes_transferred_total", 2,
         "uint64", false},
        {"ServerDiscoveryResponse.AvailableServer.ServerMetrics", "cpu_usage_percent", 3, "float",
         false},
        {"ServerDiscoveryResponse.AvailableServer.ServerMetrics", "memory_usage_percent", 4,
         "float", false},
        {"ServerDiscoveryResponse.AvailableServer.ServerMetrics", "uptime_seconds", 5, "uint32",
         false},

        {"TransportCommand", "command_id", 1, "string", false},
        {"TransportCommand", "type", 2, "TransportCommand.CommandType", false},
        {"TransportCommand", "connection_id", 3, "string", false},
        {"TransportCommand", "transport_data", 4, "bytes", false},
        {"TransportCommand", "options", 5, "TransportCommand.TransportOptions", false},
        {"TransportCommand.TransportOptions", "max_paths", 1, "uint32", false},
        {"TransportCommand.TransportOptions", "target_bandwidth_mbps", 2, "uint32", false},
        {"TransportCommand.TransportOptions", "timeout_seconds", 3, "uint32", false},
        {"TransportCommand.TransportOptions", "preferred_servers", 4, "string", true},
        {"TransportCommand.TransportOptions", "qos", 5, "TransportCommand.QoSRequirements", false},
        {"TransportCommand.QoSRequirements", "min_bandwidth_mbps", 1, "uint32", false},
        {"TransportCommand.QoSRequirements", "max_latency_ms", 2, "uint32", false},
        {"TransportCommand.QoSRequirements", "max_packet_loss_rate", 3, "float", false},
        {"TransportCommand.QoSRequirements", "require_redundancy", 4, "bool", false},

        {"TransportResponse", "command_id", 1, "string", false},
        {"TransportResponse", "status", 2, "TransportResponse.ResponseStatus", false},
        {"TransportResponse", "error_message", 3, "string", false},
        {"TransportResponse", "result", 4, "TransportResponse.TransportResult", false},
        {"TransportResponse.TransportResult", "active_paths", 1, "uint32", false},
        {"TransportResponse.TransportResult", "total_bandwidth_mbps", 2, "uint32", false},
        {"TransportResponse.TransportResult", "average_latency_ms", 3, "float", false},
        {"TransportResponse.TransportResult", "path_contributions", 4,
         "TransportResponse.TransportResult.PathContribution", true},
        {"TransportResponse.TransportResult.PathContribution", "server_address", 1, "string",
         false},
        {"TransportResponse.TransportResult.PathContribution", "bandwidth_mbps", 2, "uint32",
         false},
        {"TransportResponse.TransportResult.PathContribution", "latency_ms", 3, "float", false},
        {"TransportResponse.TransportResult.PathContribution", "packet_loss_rate", 4, "float",
         false},

        {"BandwidthScalingRequest", "connection_id", 1, "string", false},
        {"BandwidthScalingRequest", "trigger", 2, "BandwidthScalingRequest.ScalingTrigger", false},
        {"BandwidthScalingRequest", "current_bandwidth_mbps", 3, "uint32", false},
        {"BandwidthScalingRequest", "target_bandwidth_mbps", 4, "uint32", false},
        {"BandwidthScalingRequest", "policy", 5, "BandwidthScalingRequest.ScalingPolicy", false},
        {"BandwidthScalingRequest.ScalingPolicy", "scale_up_threshold_percent", 1, "uint32", false},
        {"BandwidthScalingRequest.ScalingPolicy", "scale_down_threshold_percent", 2, "uint32",
         false},
        {"BandwidthScalingRequest.ScalingPolicy", "min_paths", 3, "uint32", false},
        {"BandwidthScalingRequest.ScalingPolicy", "max_paths", 4, "uint32", false},
        {"BandwidthScalingRequest.ScalingPolicy", "cooldown_seconds", 5, "uint32", false},
        {"BandwidthScalingRequest.ScalingPolicy", "aggressive_scaling", 6, "bool", false},
    };
    return fields;
}

struct seed_enum_value {
    const char* enum_name; // relative to the package
    const char* value;
    int number;
};

// Every value of every enum that the KCP design spells out, as written there.
const std::vector<seed_enum_value>& seed_enum_values() {
    static const std::vector<seed_enum_value> values{
        {"MessagePriority", "LOW", 0},
        {"MessagePriority", "NORMAL", 1},
        {"MessagePriority", "HIGH", 2},
        {"MessagePriority", "CRITICAL", 3},
        {"TransportCommand.CommandType", "ESTABLISH_PATH", 0},
        {"TransportCommand.CommandType", "CLOSE_PATH", 1},
        {"TransportCommand.CommandType", "SCALE_BANDWIDTH", 2},
        {"TransportCommand.CommandType", "UPDATE_QOS", 3},
        {"TransportCommand.CommandType", "HEALTH_CHECK", 4},
        {"TransportCommand.CommandType", "SYNC_STATE", 5},
        {"TransportResponse.ResponseStatus", "SUCCESS", 0},
        {"TransportResponse.ResponseStatus", "PARTIAL_SUCCESS", 1},
        {"TransportResponse.ResponseStatus", "FAILURE", 2},
        {"TransportResponse.ResponseStatus", "IN_PROGRESS", 3},
        {"BandwidthScalingRequest.ScalingTrigger", "MANUAL", 0},
        {"BandwidthScalingRequest.ScalingTrigger", "DEMAND_INCREASE", 1},
        {"BandwidthScalingRequest.ScalingTrigger", "DEMAND_DECREASE", 2},
        {"BandwidthScalingRequest.ScalingTrigger", "PERFORMANCE_DEGRADATION", 3},
        {"BandwidthScalingRequest.ScalingTrigger", "SERVER_FAILURE", 4},
        {"BandwidthScalingRequest.ScalingTrigger", "COST_OPTIMIZATION", 5},
    };
    return values;
}

const Descriptor* find_message(const std::string& relative_name) {
    return KCPMessage::descriptor()->file()->pool()->FindMessageTypeByName(package_prefix +
                                                                            relative_name);
}

std::string field_type_name(const FieldDescriptor* f) {
    if (f->message_type() != nullptr) {
        return f->message_type()->full_name();
    }
    if (f->enum_type() != nullptr) {
        return f->enum_type()->full_name();
    }
    return f->type_name(); // "uint64", "string", "float", ...
}

bool is_scalar_name(const std::string& name) {
    static const std::set<std::string> scalars{"uint64", "uint32", "string", "bytes", "bool",
                                               "float"};
    return scalars.count(name) == 1;
}

TEST(kcp_schema, file_is_proto3_in_package_kwik_kcp_v3_without_imports) {
    const FileDescriptor* file = KCPMessage::descriptor()->file();
    EXPECT_EQ(file->package(), "kwik.kcp.v3");
    EXPECT_EQ(file->syntax(), FileDescriptor::SYNTAX_PROTO3);
    EXPECT_EQ(file->dependency_count(), 0);
}

TEST(kcp_schema, seed_fields_have_the_seed_numbers_and_types) {
    for (const seed_field& s : seed_fields()) {
        SCOPED_TRACE(std::string(s.message) + "." + s.field);
        const Descriptor* d = find_message(s.message);
        ASSERT_NE(d, nullptr);
        const FieldDescriptor* f = d->FindFieldByName(s.field);
        ASSERT_NE(f, nullptr);
        EXPECT_EQ(f->number(), s.number);
        const std::string expected_type =
            is_scalar_name(s.type) ? std::string(s.type) : package_prefix + std::string(s.type);
        EXPECT_EQ(field_type_name(f), expected_type);
        EXPECT_EQ(f->is_repeated(), s.repeated);
        EXPECT_FALSE(f->is_map());
    }
}

TEST(kcp_schema, seed_messages_have_no_fields_beyond_the_seed) {
    std::map<std::string, int> counts;
    for (const seed_field& s : seed_fields()) {
        ++counts[s.message];
    }
    EXPECT_EQ(counts.size(), 17u); // messages the design spells out, nested ones included
    // KCPMessage's payload also holds the members designed beyond the seed (PROTOCOL.md 11.7),
    // all numbered from 80 so that the seed's ranges stay free for it.
    const std::map<std::string, int> designed_members{
        {"server_registration", 80}, {"server_heartbeat", 81}, {"server_deregistration", 82},
        {"registration_response", 83}, {"operator_request", 90}, {"operator_response", 91},
    };
    for (const auto& [name, number] : designed_members) {
        const FieldDescriptor* f = KCPMessage::descriptor()->FindFieldByName(name);
        ASSERT_NE(f, nullptr) << name;
        EXPECT_EQ(f->number(), number) << name;
    }
    // Fields designed beyond the seed at the end of a seed message (PROTOCOL.md 11.7).
    const std::map<std::string, std::map<std::string, int>> designed_fields{
        {"TransportResponse.TransportResult.PathContribution", {{"path_id", 5}, {"standby", 6}}},
    };
    for (const auto& [message, fields] : designed_fields) {
        for (const auto& [name, number] : fields) {
            const FieldDescriptor* f = find_message(message)->FindFieldByName(name);
            ASSERT_NE(f, nullptr) << message << "." << name;
            EXPECT_EQ(f->number(), number) << message << "." << name;
        }
    }
    for (const auto& [name, count] : counts) {
        SCOPED_TRACE(name);
        const Descriptor* d = find_message(name);
        ASSERT_NE(d, nullptr);
        int designed = name == "KCPMessage" ? static_cast<int>(designed_members.size()) : 0;
        if (auto it = designed_fields.find(name); it != designed_fields.end()) {
            designed += static_cast<int>(it->second.size());
        }
        EXPECT_EQ(d->field_count(), count + designed);
    }
}

TEST(kcp_schema, kcp_message_payload_oneof_holds_every_member_but_header) {
    const Descriptor* d = KCPMessage::descriptor();
    ASSERT_EQ(d->real_oneof_decl_count(), 1);
    const auto* payload = d->oneof_decl(0);
    EXPECT_EQ(payload->name(), "payload");
    EXPECT_EQ(payload->field_count(), 24); // 18 of the seed, 6 designed (PROTOCOL.md 11.7)
    EXPECT_EQ(d->FindFieldByName("header")->containing_oneof(), nullptr);
    for (int i = 0; i < d->field_count(); ++i) {
        const FieldDescriptor* f = d->field(i);
        if (f->name() != "header") {
            EXPECT_EQ(f->containing_oneof(), payload) << f->name();
        }
    }
    // The examples the design's numbering is easiest to check by eye.
    EXPECT_EQ(d->FindFieldByName("client_hello")->number(), 10);
    EXPECT_EQ(d->FindFieldByName("traffic_plan")->number(), 71);
}

TEST(kcp_schema, seed_enum_values_have_the_seed_numbers) {
    std::map<std::string, int> counts;
    const auto* pool = KCPMessage::descriptor()->file()->pool();
    for (const seed_enum_value& s : seed_enum_values()) {
        SCOPED_TRACE(std::string(s.enum_name) + "." + s.value);
        ++counts[s.enum_name];
        const EnumDescriptor* e = pool->FindEnumTypeByName(package_prefix + std::string(s.enum_name));
        ASSERT_NE(e, nullptr);
        const auto* v = e->FindValueByName(s.value);
        ASSERT_NE(v, nullptr);
        EXPECT_EQ(v->number(), s.number);
    }
    EXPECT_EQ(counts.size(), 4u);
    for (const auto& [name, count] : counts) {
        SCOPED_TRACE(name);
        EXPECT_EQ(pool->FindEnumTypeByName(package_prefix + name)->value_count(), count);
    }
    // The generated C++ constants agree with the descriptor.
    EXPECT_EQ(static_cast<int>(CRITICAL), 3);
    EXPECT_EQ(static_cast<int>(TransportCommand::SYNC_STATE), 5);
    EXPECT_EQ(static_cast<int>(TransportResponse::IN_PROGRESS), 3);
    EXPECT_EQ(static_cast<int>(BandwidthScalingRequest::COST_OPTIMIZATION), 5);
}

// The enums designed here keep 0 for "unspecified" (so an unset field never reads as a real
// state) and carry the values their messages' comments name.
TEST(kcp_schema, designed_enum_values) {
    const auto* pool = KCPMessage::descriptor()->file()->pool();
    using values = std::vector<std::pair<std::string, int>>;
    const std::vector<std::pair<std::string, values>> enums{
        {"AeadAlgorithm", {{"AEAD_ALGORITHM_UNSPECIFIED", 0}, {"AEAD_AES_256_GCM", 1}}},
        {"UdpPath.IpVersion", {{"IP_VERSION_UNSPECIFIED", 0}, {"IPV4", 4}, {"IPV6", 6}}},
        {"PathStatusUpdate.Status",
         {{"STATUS_UNSPECIFIED", 0}, {"UP", 1}, {"DEGRADED", 2}, {"DOWN", 3}, {"STANDBY", 4},
          {"REMOVED", 5}}},
        {"BandwidthScalingResponse.Decision",
         {{"DECISION_UNSPECIFIED", 0}, {"SCALE_UP", 1}, {"SCALE_DOWN", 2}, {"NO_CHANGE", 3},
          {"REJECTED", 4}}},
        {"TrafficDistributionPlan.Strategy",
         {{"STRATEGY_UNSPECIFIED", 0}, {"MIN_RTT", 1}, {"WEIGHTED", 2}, {"ROUND_ROBIN", 3},
          {"REDUNDANT", 4}}},
        {"HealthCheckResponse.Status",
         {{"STATUS_UNSPECIFIED", 0}, {"HEALTHY", 1}, {"DEGRADED", 2}, {"UNHEALTHY", 3},
          {"UNKNOWN_TARGET", 4}}},
        {"ServerHello.AuthResult",
         {{"AUTH_RESULT_UNSPECIFIED", 0}, {"CHALLENGE", 1}, {"ACCEPTED", 2},
          {"REJECTED_UNKNOWN_KEY", 3}, {"REJECTED_BAD_PROOF", 4},
          {"REJECTED_CHALLENGE_EXPIRED", 5}, {"REJECTED_UNSUPPORTED_VERSION", 6},
          {"REJECTED_OVERLOADED", 7}}},
    };
    for (const auto& [name, expected] : enums) {
        SCOPED_TRACE(name);
        const EnumDescriptor* e = pool->FindEnumTypeByName(package_prefix + name);
        ASSERT_NE(e, nullptr);
        ASSERT_EQ(e->value_count(), static_cast<int>(expected.size()));
        for (std::size_t i = 0; i < expected.size(); ++i) {
            EXPECT_EQ(e->value(static_cast<int>(i))->name(), expected[i].first);
            EXPECT_EQ(e->value(static_cast<int>(i))->number(), expected[i].second);
        }
    }
    EXPECT_EQ(static_cast<int>(UdpPath::IPV4), 4);
    EXPECT_EQ(static_cast<int>(UdpPath::IPV6), 6);
}

} // namespace
} // namespace kwik::kcp::v3
