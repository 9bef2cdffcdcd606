// rte_flow rules for per-path steering. The PMD's reasons are kept in the message; ENOSYS (no
// rte_flow at all) and ENOTSUP/EOPNOTSUPP (not this pattern or action) become ENOTSUP, the code
// the caller branches on.
#include "drivers/flow_steering.hpp"

#include <arpa/inet.h>
#include <rte_byteorder.h>
#include <rte_errno.h>

#include <array>
#include <cerrno>
#include <cstring>

namespace kwik::drivers {

namespace {

std::string address_text(const ip_address& a) {
    std::array<char, INET6_ADDRSTRLEN> buf{};
    const int family = a.version == 6 ? AF_INET6 : AF_INET;
    if (inet_ntop(family, a.bytes.data(), buf.data(), static_cast<socklen_t>(buf.size())) == nullptr) {
        return "?";
    }
    return buf.data();
}

std::string endpoint_text(const ip_address& a, std::uint16_t port) {
    if (a.version == 6) {
        return "[" + address_text(a) + "]:" + std::to_string(port);
    }
    return address_text(a) + ":" + std::to_string(port);
}

std::string port_label(const port& p) {
    return "port " + std::to_string(p.id()) + " (" + p.name() + ")";
}

// The error for a failed rte_flow call: names the port and what was asked, with the PMD's reason.
error flow_error(const port& p, const std::string& what, int ret, const rte_flow_error& fe) {
    int code = ret < 0 ? -ret : ret;
    if (code == 0) {
        code = rte_errno != 0 ? rte_errno : EIO;
    }
    const bool unsupported = code == ENOSYS || code == ENOTSUP || code == EOPNOTSUPP;
    std::string m = port_label(p) + ": " + what + ": ";
    m += unsupported ? "not supported by this port" : "failed";
    m += " (";
    m += rte_strerror(code);
    if (fe.message != nullptr && fe.message[0] != '\0') {
        m += "; driver says: ";
        m += fe.message;
    }
    m += ")";
    return {std::move(m), unsupported ? ENOTSUP : code};
}

// The pattern and action of one rule, kept together so the pointers stay valid for the call.
struct rule_spec {
    rte_flow_attr attr{};
    rte_flow_item_ipv4 ipv4_spec{};
    rte_flow_item_ipv4 ipv4_mask{};
    rte_flow_item_ipv6 ipv6_spec{};
    rte_flow_item_ipv6 ipv6_mask{};
    rte_flow_item_udp udp_spec{};
    rte_flow_item_udp udp_mask{};
    rte_flow_action_queue queue{};
    std::array<rte_flow_item, 4> pattern{};
    std::array<rte_flow_action, 2> actions{};

    rule_spec(std::uint16_t q, const udp_5tuple& t) {
        attr.ingress = 1;
        pattern[0].type = RTE_FLOW_ITEM_TYPE_ETH; // any Ethernet header
        if (t.dst.version == 6) {
            std::memcpy(ipv6_spec.hdr.src_addr, t.src.bytes.data(), 16);
            std::memcpy(ipv6_spec.hdr.dst_addr, t.dst.bytes.data(), 16);
            std::memset(ipv6_mask.hdr.src_addr, 0xff, 16);
            std::memset(ipv6_mask.hdr.dst_addr, 0xff, 16);
            pattern[1].type = RTE_FLOW_ITEM_TYPE_IPV6;
            pattern[1].spec = &ipv6_spec;
            pattern[1].mask = &ipv6_mask;
        } else {
            std::memcpy(&ipv4_spec.hdr.src_addr, t.src.bytes.data(), 4);
            std::memcpy(&ipv4_spec.hdr.dst_addr, t.dst.bytes.data(), 4);
            ipv4_mask.hdr.src_addr = UINT32_MAX;
            ipv4_mask.hdr.dst_addr = UINT32_MAX;
            pattern[1].type = RTE_FLOW_ITEM_TYPE_IPV4;
            pattern[1].spec = &ipv4_spec;
            pattern[1].mask = &ipv4_mask;
        }
        udp_spec.hdr.src_port = rte_cpu_to_be_16(t.src_port);
        udp_spec.hdr.dst_port = rte_cpu_to_be_16(t.dst_port);
        udp_mask.hdr.src_port = UINT16_MAX;
        udp_mask.hdr.dst_port = UINT16_MAX;
        pattern[2].type = RTE_FLOW_ITEM_TYPE_UDP;
        pattern[2].spec = &udp_spec;
        pattern[2].mask = &udp_mask;
        pattern[3].type = RTE_FLOW_ITEM_TYPE_END;
        queue.index = q;
        actions[0].type = RTE_FLOW_ACTION_TYPE_QUEUE;
        actions[0].conf = &queue;
        actions[1].type = RTE_FLOW_ACTION_TYPE_END;
    }
    rule_spec(const rule_spec&) = delete;
    rule_spec& operator=(const rule_spec&) = delete;
};

} // namespace

std::string to_string(const udp_5tuple& t) {
    return endpoint_text(t.src, t.src_port) + " -> " + endpoint_text(t.dst, t.dst_port);
}

result<flow_rule> install_5tuple_rule(port& p, std::uint16_t queue, const udp_5tuple& tuple) {
    const std::string what = "steering UDP " + to_string(tuple) + " to rx queue " + std::to_string(queue);
    if (!p.is_open()) {
        return error{port_label(p) + ": " + what + ": the port is closed", EBADF};
    }
    if (queue >= p.rx_queues()) {
        return error{port_label(p) + ": " + what + ": the port has " + std::to_string(p.rx_queues()) + " rx queues",
                     EINVAL};
    }
    if ((tuple.src.version != 4 && tuple.src.version != 6) || tuple.src.version != tuple.dst.version) {
        return error{port_label(p) + ": " + what + ": source and destination must both be IPv4 or both IPv6", EINVAL};
    }
    const rule_spec spec(queue, tuple);
    rte_flow_error fe{};
    rte_errno = 0;
    const int ret = rte_flow_validate(p.id(), &spec.attr, spec.pattern.data(), spec.actions.data(), &fe);
    if (ret != 0) {
        return flow_error(p, what, ret, fe);
    }
    fe = {};
    rte_errno = 0;
    rte_flow* flow = rte_flow_create(p.id(), &spec.attr, spec.pattern.data(), spec.actions.data(), &fe);
    if (flow == nullptr) {
        return flow_error(p, what, -rte_errno, fe);
    }
    return flow_rule{p.id(), queue, flow};
}

result<void> remove_rule(port& p, flow_rule& rule) {
    if (rule.flow == nullptr) {
        return {};
    }
    if (rule.port_id != p.id()) {
        return error{port_label(p) + ": removing a flow rule of port " + std::to_string(rule.port_id), EINVAL};
    }
    rte_flow_error fe{};
    rte_errno = 0;
    const int ret = rte_flow_destroy(p.id(), rule.flow, &fe);
    if (ret != 0) {
        return flow_error(p, "removing the rule to rx queue " + std::to_string(rule.queue), ret, fe);
    }
    rule.flow = nullptr;
    return {};
}

result<void> flush_rules(port& p) {
    rte_flow_error fe{};
    rte_errno = 0;
    const int ret = rte_flow_flush(p.id(), &fe);
    if (ret != 0) {
        error e = flow_error(p, "flushing flow rules", ret, fe);
        if (not_supported(e)) {
            return {}; // a port without rte_flow holds no rules
        }
        return e;
    }
    return {};
}

result<void> probe_flow_steering(port& p) {
    udp_5tuple t;
    t.src.bytes = {192, 0, 2, 1};  // TEST-NET-1: never a real peer
    t.dst.bytes = {192, 0, 2, 2};
    t.src_port = 40000;
    t.dst_port = 7707;
    const rule_spec spec(0, t);
    rte_flow_error fe{};
    rte_errno = 0;
    const int ret = rte_flow_validate(p.id(), &spec.attr, spec.pattern.data(), spec.actions.data(), &fe);
    if (ret != 0) {
        return flow_error(p, "probing flow steering (UDP " + to_string(t) + " to rx queue 0)", ret, fe);
    }
    return {};
}

} // namespace kwik::drivers
