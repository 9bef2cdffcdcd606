// kwik-cp's answers to kwikctl: OperatorRequest -> OperatorResponse (docs/KCP_SERVER.md
// section 3). Shows are answered at once from an operator_snapshot (views.hpp); path changes and
// settings go through the dataplane_link and are answered when kwikd answers. Only sessions whose
// key has the operator role; they act on every connection the link knows. The control_server
// loop's thread only.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "controlplane/server/kwik_cp/control_server.hpp"
#include "controlplane/server/kwik_cp/session.hpp"
#include "controlplane/server/kwik_cp/views.hpp"

namespace kwik::cp {

using kcp::KCPMessage;
using kcp::clock_sample;
namespace v3 = kcp::v3;
using request = v3::OperatorRequest;

namespace {

// The start of an operator's answer when kwikd did not apply an action. A command kwikd answered
// `stopped` (it shut down first) is no refusal: the link keeps it desired and the resync pushes
// it to the next kwikd, and the operator is told so.
std::string not_applied(const api::event& e, const std::string& what) {
    if (e.header.type == api::message_type::command_result && e.command_result.status == api::result_status::stopped) {
        return "kwikd stopped before it applied " + what +
               "; kwik-cp keeps it and sends it to kwikd when kwikd is back: ";
    }
    return "kwikd refused " + what + ": ";
}

std::string peer_of(int fd) {
    sockaddr_storage ss{};
    socklen_t len = sizeof ss;
    if (::getpeername(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) {
        return "unknown";
    }
    char host[INET6_ADDRSTRLEN] = "";
    if (ss.ss_family == AF_INET) {
        const auto* a = reinterpret_cast<const sockaddr_in*>(&ss);
        ::inet_ntop(AF_INET, &a->sin_addr, host, sizeof host);
        return std::string(host) + ":" + std::to_string(ntohs(a->sin_port));
    }
    const auto* a = reinterpret_cast<const sockaddr_in6*>(&ss);
    ::inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof host);
    return "[" + std::string(host) + "]:" + std::to_string(ntohs(a->sin6_port));
}

std::string_view hello_state_name(hello_session::state s) {
    switch (s) {
    case hello_session::state::awaiting_hello:
        return "awaiting_hello";
    case hello_session::state::challenged:
        return "challenged";
    case hello_session::state::accepted:
        return "accepted";
    case hello_session::state::rejected:
        return "rejected";
    }
    return "unknown";
}

v3::OperatorResponse failed(std::string why) {
    v3::OperatorResponse r;
    r.set_ok(false);
    r.set_error(std::move(why));
    return r;
}

std::string path_id_problem(std::uint64_t path_id, const std::string& field) {
    if (path_id == 0 || path_id > api::max_path_id) {
        return field + ".path_id: " + std::to_string(path_id) + " is not a path id (1.." +
               std::to_string(api::max_path_id) + ")";
    }
    return {};
}

} // namespace

void control_server::fill_snapshot(operator_snapshot& out, clock_sample now) {
    out.server_id = _hello.config().server_id;
    out.listen_port = _port;
    out.tls = _tls.has_value();
    out.uptime_ms = static_cast<std::uint64_t>(
        std::chrono::duration_cast<std::chrono::milliseconds>(now.steady - _started).count());
    out.now_ms = now.wall_ms;
    for (const auto& [fd, s] : _sessions) {
        session_summary x;
        x.fd = fd;
        x.peer = peer_of(fd);
        x.state = hello_state_name(s->hello.current());
        if (const auto& a = s->hello.accepted()) {
            x.client_id = a->client_id;
            x.key_id = a->key_id;
            x.roles = a->roles;
            x.connection_id = a->connection_id;
        }
        x.kwikd_connection = s->kwikd_connection;
        x.tls = s->ch.is_tls();
        x.counters = s->ch.counters();
        out.sessions.push_back(std::move(x));
    }
    std::sort(out.sessions.begin(), out.sessions.end(),
              [](const session_summary& a, const session_summary& b) { return a.fd < b.fd; });
    out.kwikd.attached = _link.attached();
    out.kwikd.adopted = _link.adopted();
    out.kwikd.region = _config.link.region_name;
    out.kwikd.commands_waiting = _link.waiting();
    if (const auto reader = _link.counters_reader()) {
        for (std::uint32_t w = 0; w < reader->workers(); ++w) {
            api::worker_snapshot snap;
            if (reader->read_worker(w, snap)) {
                out.kwikd.workers.push_back(std::move(snap));
            }
        }
        for (std::uint32_t i = 0; i < reader->drop_reasons(); ++i) {
            out.kwikd.drop_names.push_back(reader->drop_reason_name(i));
        }
        out.kwikd.totals = reader->read_totals();
    }
    out.connections = &_link.connections();
    out.link = _link.counters();
    out.registry = &_registry;
    const control_server_counters& c = _counters;
    out.cp_counters = {{"accepted_sockets", c.accepted_sockets},
                       {"refused_before_hello", c.refused_before_hello},
                       {"not_handled", c.not_handled},
                       {"ignored_messages", c.ignored_messages},
                       {"path_updates_pushed", c.path_updates_pushed},
                       {"operator_requests", c.operator_requests},
                       {"operator_errors", c.operator_errors},
                       {"registry_requests", c.registry_requests},
                       {"registry_refusals", c.registry_refusals},
                       {"refused_for_role", c.refused_for_role},
                       {"transport_commands", c.transport_commands},
                       {"scaling_requests", c.scaling_requests},
                       {"metrics_refused", c.metrics_refused},
                       {"plans_pushed", c.plans_pushed},
                       {"role_changes_failed", c.role_changes_failed}};
    if (_upstream) {
        const upstream_registration& u = *_upstream;
        const auto& n = u.counters();
        out.upstream = {{"address", text_cell(u.config().address)},
                        {"tls", flag_cell(u.config().pin.has_value())},
                        {"state", text_cell(to_string(u.current()))},
                        {"expires_at_ms", unsigned_cell(u.expires_at_ms())},
                        {"connects", unsigned_cell(n.connects)},
                        {"registrations", unsigned_cell(n.registrations)},
                        {"heartbeats", unsigned_cell(n.heartbeats)},
                        {"failures", unsigned_cell(n.failures)},
                        {"last_error", text_cell(u.last_error())}};
    }
}

void control_server::answer_operator(session& s, std::uint64_t in_reply_to, v3::OperatorResponse r, clock_sample now) {
    if (!r.ok()) {
        ++_counters.operator_errors;
    }
    r.set_in_reply_to(in_reply_to);
    KCPMessage out;
    *out.mutable_operator_response() = std::move(r);
    reply(s, std::move(out), now);
}

void control_server::on_operator_request(session& s, const KCPMessage& m, clock_sample now) {
    ++_counters.operator_requests;
    const accepted_hello& a = *s.hello.accepted();
    const std::uint64_t id = m.header().message_id();
    if ((a.roles & role_bit(role::operator_)) == 0) {
        answer_operator(s, id,
                        failed("operator_request: this session's key \"" + a.key_id +
                               "\" lacks the operator role (it has: " + role_names(a.roles) + ")"),
                        now);
        return;
    }
    const request& q = m.operator_request();
    switch (q.request_case()) {
    case request::kShow: {
        operator_snapshot snap;
        fill_snapshot(snap, now);
        auto tables = show_view(snap, q.show());
        if (!tables) {
            answer_operator(s, id, failed(tables.message()), now);
            return;
        }
        v3::OperatorResponse r;
        r.set_ok(true);
        for (auto& t : tables.value()) {
            *r.add_tables() = std::move(t);
        }
        answer_operator(s, id, std::move(r), now);
        return;
    }
    case request::kAddPath:
        operator_path_change(s, m, true, now);
        return;
    case request::kRemovePath:
        operator_path_change(s, m, false, now);
        return;
    case request::kScale:
        on_operator_scale(s, m, now);
        return;
    case request::kSetQos:
    case request::kSetScheduler:
    case request::kSetWeights:
        operator_setting(s, m, now);
        return;
    case request::kHealth: {
        const request::Health& h = q.health();
        v3::HealthCheckRequest hq;
        hq.set_sequence(id);
        if (h.connection().empty()) {
            if (h.path_id() != 0) {
                answer_operator(s, id, failed("health.connection: missing (health.path_id names a path of a connection)"),
                                now);
                return;
            }
            hq.set_server_id(_hello.config().server_id);
        } else {
            auto c = find_connection(_link.connections(), h.connection(), "health.connection");
            if (!c) {
                answer_operator(s, id, failed(c.message()), now);
                return;
            }
            if (h.path_id() == 0) {
                answer_operator(s, id,
                                failed("health.path_id: missing (which path of connection " +
                                       std::to_string(c.value()->id) + ")"),
                                now);
                return;
            }
            hq.set_connection_id(c.value()->name);
            hq.set_path_id(h.path_id());
        }
        const v3::HealthCheckResponse hr = health_of(hq, now);
        if (hr.status() == v3::HealthCheckResponse::UNKNOWN_TARGET) {
            answer_operator(s, id, failed("health: " + hr.reason()), now);
            return;
        }
        v3::OperatorResponse r;
        r.set_ok(true);
        r.set_detail(v3::HealthCheckResponse::Status_Name(hr.status()) +
                     (hr.reason().empty() ? std::string() : ": " + hr.reason()));
        *r.add_tables() = health_table(hr);
        answer_operator(s, id, std::move(r), now);
        return;
    }
    case request::kRegisterServer:
    case request::kRemoveServer:
        operator_registry(s, m, now);
        return;
    case request::REQUEST_NOT_SET:
        break;
    }
    answer_operator(s, id,
                    failed("operator_request: no request set (show, add_path, remove_path, scale, set_qos, "
                           "set_scheduler, set_weights, health, register_server, remove_server)"),
                    now);
}

void control_server::operator_path_change(session& s, const KCPMessage& m, bool add, clock_sample now) {
    const std::uint64_t id = m.header().message_id();
    const request::PathChange& q = add ? m.operator_request().add_path() : m.operator_request().remove_path();
    const std::string field = add ? "add_path" : "remove_path";
    auto c = find_connection(_link.connections(), q.connection(), field + ".connection");
    if (!c) {
        answer_operator(s, id, failed(c.message()), now);
        return;
    }
    const std::uint64_t connection = c.value()->id;
    if (std::string why = path_id_problem(q.path_id(), field); !why.empty()) {
        answer_operator(s, id, failed(std::move(why)), now);
        return;
    }
    const int fd = s.ch.fd();
    const std::string session_connection = s.hello.accepted()->connection_id;
    const std::uint64_t path_id = q.path_id();
    // kwikd's answer becomes the operator's, with the connection's paths as the action left them.
    auto answered = [this, fd, session_connection, id, connection, path_id, field, add](const api::event& e) {
        session* to = live_session(fd, session_connection);
        if (to == nullptr) {
            return;
        }
        const std::string refused = kwikd_error(e);
        if (!refused.empty()) {
            answer_operator(*to, id, failed(not_applied(e, field + " of path " + std::to_string(path_id)) + refused),
                            clock_sample::now());
            return;
        }
        const clock_sample at = clock_sample::now();
        v3::OperatorResponse r;
        r.set_ok(true);
        r.set_detail("path " + std::to_string(path_id) + (add ? " added to" : " removed from") + " connection " +
                     std::to_string(connection));
        if (const desired_connection* dc = _link.find(connection)) {
            operator_snapshot snap;
            fill_snapshot(snap, at);
            *r.add_tables() = paths_table(snap, dc);
        }
        answer_operator(*to, id, std::move(r), at);
    };
    result<void> sent;
    if (add) {
        if (!q.has_path()) {
            answer_operator(s, id, failed("add_path.path: missing (the path's UDP 5-tuple)"), now);
            return;
        }
        auto tuple = to_tuple(q.path(), "add_path.path");
        if (!tuple) {
            answer_operator(s, id, failed(tuple.message()), now);
            return;
        }
        if (!std::isfinite(q.weight()) || q.weight() < 0.0f) {
            answer_operator(s, id, failed("add_path.weight: " + std::to_string(q.weight()) + " is not a weight >= 0"),
                            now);
            return;
        }
        desired_path p;
        p.path_id = path_id;
        p.tuple = tuple.value();
        p.weight = q.weight() > 0.0f ? q.weight() : 1.0f;
        p.standby = q.standby();
        p.max_bandwidth_mbps = q.max_bandwidth_mbps();
        sent = _link.add_path(connection, p, answered);
    } else {
        sent = _link.remove_path(connection, path_id, q.drain_timeout_ms(), answered);
    }
    if (!sent) {
        answer_operator(s, id, failed(field + ": " + sent.message()), now);
    }
}

void control_server::operator_setting(session& s, const KCPMessage& m, clock_sample now) {
    const std::uint64_t id = m.header().message_id();
    const request& q = m.operator_request();
    const std::string field = q.has_set_qos() ? "set_qos" : q.has_set_scheduler() ? "set_scheduler" : "set_weights";
    const std::string& name = q.has_set_qos()         ? q.set_qos().connection()
                              : q.has_set_scheduler() ? q.set_scheduler().connection()
                                                      : q.set_weights().connection();
    auto c = find_connection(_link.connections(), name, field + ".connection");
    if (!c) {
        answer_operator(s, id, failed(c.message()), now);
        return;
    }
    const std::uint64_t connection = c.value()->id;
    const int fd = s.ch.fd();
    const std::string session_connection = s.hello.accepted()->connection_id;
    auto answered = [this, fd, session_connection, id, connection, field](std::string detail) {
        return [this, fd, session_connection, id, connection, field, detail](const api::event& e) {
            session* to = live_session(fd, session_connection);
            if (to == nullptr) {
                return;
            }
            const std::string refused = kwikd_error(e);
            if (!refused.empty()) {
                answer_operator(*to, id, failed(not_applied(e, field) + refused), clock_sample::now());
                return;
            }
            const clock_sample at = clock_sample::now();
            v3::OperatorResponse r;
            r.set_ok(true);
            r.set_detail(detail);
            if (const desired_connection* dc = _link.find(connection)) {
                operator_snapshot snap;
                fill_snapshot(snap, at);
                if (field == "set_qos") {
                    for (auto& t : streams_tables(snap, dc)) {
                        *r.add_tables() = std::move(t);
                    }
                } else if (field == "set_scheduler") {
                    *r.add_tables() = connections_table(snap, dc);
                } else {
                    *r.add_tables() = paths_table(snap, dc);
                }
            }
            answer_operator(*to, id, std::move(r), at);
        };
    };
    result<void> sent;
    if (q.has_set_qos()) {
        const request::Qos& x = q.set_qos();
        if (x.stream_id() == 0 || x.stream_id() > api::max_stream_id) {
            answer_operator(s, id,
                            failed("set_qos.stream_id: " + std::to_string(x.stream_id()) + " is not a stream id (1.." +
                                   std::to_string(api::max_stream_id) + ")"),
                            now);
            return;
        }
        if (x.priority() > 7) {
            answer_operator(s, id, failed("set_qos.priority: " + std::to_string(x.priority()) + " is not in 0..7"), now);
            return;
        }
        if (x.max_bandwidth_mbps() != 0) {
            answer_operator(s, id,
                            failed("set_qos.max_bandwidth_mbps: " + std::to_string(x.max_bandwidth_mbps()) +
                                   ": kwikd has no per-stream rate cap (it takes priority and min_bandwidth_mbps); "
                                   "cap the paths with max_bandwidth_mbps instead"),
                            now);
            return;
        }
        const desired_stream_qos qos{stream_priority_of(x.priority()), x.min_bandwidth_mbps()};
        sent = _link.set_stream_qos(connection, x.stream_id(), qos,
                                    answered("stream " + std::to_string(x.stream_id()) + " of connection " +
                                             std::to_string(connection) + ": priority " +
                                             std::string(priority_name(qos.priority)) + ", min " +
                                             std::to_string(qos.min_bandwidth_mbps) + " Mbit/s"));
    } else if (q.has_set_scheduler()) {
        api::scheduler_strategy strategy{};
        switch (q.set_scheduler().strategy()) {
        case v3::TrafficDistributionPlan::MIN_RTT:
            strategy = api::scheduler_strategy::min_rtt;
            break;
        case v3::TrafficDistributionPlan::WEIGHTED:
            strategy = api::scheduler_strategy::weighted;
            break;
        case v3::TrafficDistributionPlan::ROUND_ROBIN:
            strategy = api::scheduler_strategy::round_robin;
            break;
        case v3::TrafficDistributionPlan::REDUNDANT:
            strategy = api::scheduler_strategy::redundant;
            break;
        default:
            answer_operator(s, id,
                            failed("set_scheduler.strategy: " + std::to_string(q.set_scheduler().strategy()) +
                                   " is not MIN_RTT, WEIGHTED, ROUND_ROBIN or REDUNDANT"),
                            now);
            return;
        }
        sent = _link.set_scheduler(connection, strategy,
                                   answered("connection " + std::to_string(connection) + " schedules " +
                                            std::string(scheduler_name(strategy))));
    } else {
        const auto& map = q.set_weights().path_weights();
        if (map.empty()) {
            answer_operator(s, id, failed("set_weights.path_weights: empty (path id -> weight)"), now);
            return;
        }
        std::vector<dataplane_link::role_change> weights; // standby flags kept as they are
        for (const auto& [pid, w] : map) {
            weights.push_back({.path_id = pid, .weight = w, .standby = api::standby_change::keep});
        }
        std::sort(weights.begin(), weights.end(),
                  [](const auto& a, const auto& b) { return a.path_id < b.path_id; });
        for (const auto& w : weights) {
            const std::string at = "set_weights.path_weights[" + std::to_string(w.path_id) + "]";
            if (!c.value()->paths.contains(w.path_id)) {
                answer_operator(s, id,
                                failed(at + ": connection " + std::to_string(connection) + " has no path " +
                                       std::to_string(w.path_id)),
                                now);
                return;
            }
            if (!std::isfinite(w.weight) || w.weight < 0.0f) {
                answer_operator(s, id, failed(at + ": " + std::to_string(w.weight) + " is not a weight >= 0"), now);
                return;
            }
        }
        // More than api::max_weights entries go to kwikd as several set_weights commands.
        sent = _link.set_roles(connection, weights,
                               answered(std::to_string(weights.size()) + " path weights of connection " +
                                        std::to_string(connection) + " set"));
    }
    if (!sent) {
        answer_operator(s, id, failed(field + ": " + sent.message()), now);
    }
}

void control_server::operator_registry(session& s, const KCPMessage& m, clock_sample now) {
    const std::uint64_t id = m.header().message_id();
    const request& q = m.operator_request();
    const bool add = q.has_register_server();
    const v3::ServerRegistrationResponse rr = add ? register_in_registry(q.register_server(), "register_server", now,
                                                                         s.hello.accepted()->key_id)
                                                  : deregister_from_registry(q.remove_server(), "remove_server");
    if (!rr.accepted()) {
        answer_operator(s, id, failed(rr.error_reason()), now);
        return;
    }
    v3::OperatorResponse r;
    r.set_ok(true);
    operator_snapshot snap;
    fill_snapshot(snap, now);
    if (add) {
        r.set_detail("server \"" + rr.server_id() + "\" registered; it lapses at " + std::to_string(rr.expires_at_ms()) +
                     " ms (Unix time) unless it sends heartbeats");
        *r.add_tables() = servers_table(snap, rr.server_id());
    } else {
        r.set_detail("server \"" + rr.server_id() + "\" removed from the registry");
        *r.add_tables() = servers_table(snap);
    }
    answer_operator(s, id, std::move(r), now);
}

} // namespace kwik::cp

namespace kwik::cp {

// OperatorRequest.scale: a MANUAL BandwidthScalingRequest for the named connection through the
// same bandwidth manager as a client's (scale_connection in transport_actions.cpp). ok unless
// the decision is REJECTED; the answer has the decision as a table and the connection's paths.
void control_server::on_operator_scale(session& s, const KCPMessage& m, clock_sample now) {
    const std::uint64_t id = m.header().message_id();
    const request::Scale& q = m.operator_request().scale();
    auto c = find_connection(_link.connections(), q.connection(), "scale.connection");
    if (!c) {
        answer_operator(s, id, failed(c.message()), now);
        return;
    }
    if (q.target_bandwidth_mbps() == 0) {
        answer_operator(s, id, failed("scale.target_bandwidth_mbps: missing (the rate to scale the connection to)"),
                        now);
        return;
    }
    const std::uint64_t connection = c.value()->id;
    v3::BandwidthScalingRequest r;
    r.set_connection_id(c.value()->name);
    r.set_trigger(v3::BandwidthScalingRequest::MANUAL);
    r.set_target_bandwidth_mbps(q.target_bandwidth_mbps());
    if (q.has_policy()) {
        *r.mutable_policy() = q.policy();
    }
    const int fd = s.ch.fd();
    const std::string session_connection = s.hello.accepted()->connection_id;
    scale_connection(connection, r, id, [this, fd, session_connection, id, connection](v3::BandwidthScalingResponse d) {
        session* to = live_session(fd, session_connection);
        if (to == nullptr) {
            return;
        }
        const clock_sample at = clock_sample::now();
        if (d.decision() == v3::BandwidthScalingResponse::REJECTED) {
            answer_operator(*to, id, failed("scale: " + d.reason()), at);
            return;
        }
        v3::OperatorResponse out;
        out.set_ok(true);
        out.set_detail(d.reason());
        v3::Table& t = *out.add_tables();
        t.set_name("scaling");
        for (const char* col : {"connection", "decision", "old_path_count", "new_path_count", "target_bandwidth_mbps",
                                "paths_added", "paths_removed", "cooldown_remaining_s", "reason"}) {
            t.add_columns(col);
        }
        auto ids = [](const auto& list) {
            std::string out;
            for (const std::uint64_t p : list) {
                out += (out.empty() ? "" : ",") + std::to_string(p);
            }
            return out.empty() ? std::string("-") : out;
        };
        auto& row = *t.add_rows();
        *row.add_values() = unsigned_cell(connection);
        *row.add_values() = text_cell(v3::BandwidthScalingResponse::Decision_Name(d.decision()));
        *row.add_values() = unsigned_cell(d.old_path_count());
        *row.add_values() = unsigned_cell(d.new_path_count());
        *row.add_values() = unsigned_cell(d.target_bandwidth_mbps());
        *row.add_values() = text_cell(ids(d.paths_added()));
        *row.add_values() = text_cell(ids(d.paths_removed()));
        *row.add_values() = unsigned_cell(d.cooldown_remaining_seconds());
        *row.add_values() = text_cell(d.reason());
        if (const desired_connection* dc = _link.find(connection)) {
            operator_snapshot snap;
            fill_snapshot(snap, at);
            *out.add_tables() = paths_table(snap, dc);
        }
        answer_operator(*to, id, std::move(out), at);
    });
}

} // namespace kwik::cp
