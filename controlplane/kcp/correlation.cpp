// Correlation of KCP requests and replies: see correlation.hpp and PROTOCOL.md 11.5.
#include "controlplane/kcp/correlation.hpp"

#include <utility>

namespace kwik::kcp {

namespace {

using role = correlation::role;
using kind = correlation::kind;

correlation make(role r, kind k, std::uint64_t number, std::string text = {}) {
    return correlation{r, k, number, std::move(text)};
}

correlation reply_to(std::uint64_t in_reply_to) {
    if (in_reply_to == 0) {
        return {};
    }
    return make(role::reply, kind::message_id, in_reply_to);
}

} // namespace

correlation correlation_id(const KCPMessage& m) {
    const std::uint64_t id = m.header().message_id();
    switch (m.payload_case()) {
    // Answered by in_reply_to = the request's header.message_id.
    case KCPMessage::kClientHello:
    case KCPMessage::kCapabilityQuery:
    case KCPMessage::kScalingRequest:
    case KCPMessage::kServerRegistration:
    case KCPMessage::kServerHeartbeat:
    case KCPMessage::kServerDeregistration:
    case KCPMessage::kOperatorRequest:
        return make(role::request, kind::message_id, id);
    case KCPMessage::kRegistrationResponse:
        return reply_to(m.registration_response().in_reply_to());
    case KCPMessage::kOperatorResponse:
        return reply_to(m.operator_response().in_reply_to());
    case KCPMessage::kServerHello:
        return reply_to(m.server_hello().in_reply_to());
    case KCPMessage::kCapabilityResponse:
        return reply_to(m.capability_response().in_reply_to());
    case KCPMessage::kScalingResponse:
        return reply_to(m.scaling_response().in_reply_to());

    // Their own correlation ids.
    case KCPMessage::kTransportCommand:
        return make(role::request, kind::command_id, 0, m.transport_command().command_id());
    case KCPMessage::kTransportResponse:
        return make(role::reply, kind::command_id, 0, m.transport_response().command_id());
    case KCPMessage::kHealthCheckReq:
        return make(role::request, kind::health_sequence, m.health_check_req().sequence());
    case KCPMessage::kHealthCheckResp:
        return make(role::reply, kind::health_sequence, m.health_check_resp().sequence());

    // Path commands are answered by the PathStatusUpdate of the same path.
    case KCPMessage::kAddPath:
        return make(role::request, kind::path, m.add_path().path_id(),
                    m.add_path().connection_id());
    case KCPMessage::kRemovePath:
        return make(role::request, kind::path, m.remove_path().path_id(),
                    m.remove_path().connection_id());
    case KCPMessage::kPathStatus:
        return make(role::reply, kind::path, m.path_status().path_id(),
                    m.path_status().connection_id());

    // ServerDiscoveryResponse has no field naming its request: answered in order.
    case KCPMessage::kServerDiscoveryReq:
        return make(role::request, kind::discovery, 0);
    case KCPMessage::kServerDiscoveryResp:
        return make(role::reply, kind::discovery, 0);

    // One-way.
    case KCPMessage::kPerformanceMetrics:
    case KCPMessage::kLoadBalancing:
    case KCPMessage::kTrafficPlan:
    case KCPMessage::PAYLOAD_NOT_SET:
        return {};
    }
    return {};
}

bool answers(const correlation& reply, const correlation& request) noexcept {
    return reply.side == role::reply && request.side == role::request && reply.same_key(request);
}

std::string to_string(const correlation& c) {
    std::string out = c.side == role::request ? "request " : c.side == role::reply ? "reply " : "";
    switch (c.key_kind) {
    case kind::none:
        return "no correlation";
    case kind::message_id:
        return out + "message_id " + std::to_string(c.number);
    case kind::command_id:
        return out + "command_id \"" + c.text + "\"";
    case kind::health_sequence:
        return out + "health sequence " + std::to_string(c.number);
    case kind::path:
        return out + "path " + c.text + "/" + std::to_string(c.number);
    case kind::discovery:
        return out + "server discovery (in order)";
    }
    return out;
}

} // namespace kwik::kcp
