// control_server's action functions for TransportCommand, BandwidthScalingRequest and
// PerformanceMetrics, and scale_connection, the scaling execution they and the operator's
// `scale` share. docs/CONTROL_PLANE.md section 5 has the formats and rules. control_server's
// thread only.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string>
#include <utility>
#include <vector>

#include "controlplane/server/kwik_cp/control_server.hpp"
#include "controlplane/server/kwik_cp/log.hpp"
#include "controlplane/server/kwik_cp/session.hpp"

namespace kwik::cp {

using kcp::KCPMessage;
using kcp::clock_sample;
namespace v3 = kcp::v3;
using command = v3::TransportCommand;
using response = v3::TransportResponse;

namespace {

KCPMessage transport_answer(const std::string& command_id, response::ResponseStatus status, std::string error_message) {
    KCPMessage m;
    auto* r = m.mutable_transport_response();
    r->set_command_id(command_id);
    r->set_status(status);
    r->set_error_message(std::move(error_message));
    return m;
}

std::uint32_t to_mbps(double bps) {
    return static_cast<std::uint32_t>(std::min(bps / 1e6 + 0.5, 4294967295.0));
}

// The connection's figures as a TransportResult: every open path listed (standby and DOWN ones
// with bandwidth 0); active = not standby and not down.
response::TransportResult result_of(const std::vector<path_figures>& figures) {
    response::TransportResult r;
    double total = 0;
    double rtt_sum = 0;
    std::uint32_t rtt_count = 0;
    std::uint32_t active = 0;
    for (const path_figures& f : figures) {
        auto* c = r.add_path_contributions();
        const bool carries = !f.standby && !f.down;
        c->set_server_address(f.server_address);
        c->set_bandwidth_mbps(carries ? to_mbps(f.capacity_bps) : 0);
        c->set_latency_ms(static_cast<float>(f.srtt_us / 1000.0));
        c->set_packet_loss_rate(static_cast<float>(f.loss_rate));
        c->set_path_id(f.path_id);
        c->set_standby(f.standby);
        if (carries) {
            ++active;
            total += f.capacity_bps;
            if (f.srtt_us > 0) {
                rtt_sum += f.srtt_us / 1000.0;
                ++rtt_count;
            }
        }
    }
    r.set_active_paths(active);
    r.set_total_bandwidth_mbps(to_mbps(total));
    r.set_average_latency_ms(rtt_count > 0 ? static_cast<float>(rtt_sum / rtt_count) : 0.0f);
    return r;
}

// The first QoS requirement the result does not meet, as "options.qos.<field>: ..."; empty if
// all are met. The loss bound is checked against every active path.
std::string unmet_qos(const command::QoSRequirements& q, const response::TransportResult& r) {
    if (q.min_bandwidth_mbps() > 0 && r.total_bandwidth_mbps() < q.min_bandwidth_mbps()) {
        return "options.qos.min_bandwidth_mbps: " + std::to_string(q.min_bandwidth_mbps()) +
               " wanted, the active paths carry " + std::to_string(r.total_bandwidth_mbps());
    }
    if (q.max_latency_ms() > 0 && r.average_latency_ms() > static_cast<float>(q.max_latency_ms())) {
        return "options.qos.max_latency_ms: " + std::to_string(q.max_latency_ms()) + " wanted, the average is " +
               std::to_string(r.average_latency_ms());
    }
    if (q.require_redundancy() && r.active_paths() < 2) {
        return "options.qos.require_redundancy: " + std::to_string(r.active_paths()) + " active path(s), 2 needed";
    }
    if (q.max_packet_loss_rate() > 0) {
        for (const auto& c : r.path_contributions()) {
            if (!c.standby() && c.bandwidth_mbps() > 0 && c.packet_loss_rate() > q.max_packet_loss_rate()) {
                return "options.qos.max_packet_loss_rate: path " + std::to_string(c.path_id()) + " loses " +
                       std::to_string(c.packet_loss_rate());
            }
        }
    }
    return {};
}

std::string check_qos(const command::QoSRequirements& q) {
    if (!(q.max_packet_loss_rate() >= 0.0f && q.max_packet_loss_rate() <= 1.0f)) {
        return "options.qos.max_packet_loss_rate: " + std::to_string(q.max_packet_loss_rate()) + " is not in [0, 1]";
    }
    return {};
}

std::string kwikd_reason(const api::event& e) {
    return std::string(api::to_string(e.command_result.status)) + ": " +
           std::string(api::get_text(e.command_result.reason));
}

} // namespace

// ---------------------------------------------------------------------------------------------
// TransportCommand

void control_server::on_transport_command(session& s, const KCPMessage& m, clock_sample now) {
    ++_counters.transport_commands;
    const command& q = m.transport_command();
    const std::string& own_connection = s.hello.accepted()->connection_id; // handle() checked ACCEPTED
    const std::string id = q.command_id();
    auto fail = [&](std::string why) { reply(s, transport_answer(id, response::FAILURE, std::move(why)), now); };
    if (id.empty()) {
        fail("transport_command.command_id: empty; the replies are keyed by it");
        return;
    }
    if (!command::CommandType_IsValid(q.type())) {
        fail("transport_command.type: " + std::to_string(static_cast<int>(q.type())) + " is not a CommandType");
        return;
    }
    if (q.connection_id() != own_connection) {
        fail("transport_command.connection_id: \"" + q.connection_id() + "\" is not this session's connection (\"" +
             own_connection + "\")");
        return;
    }
    const desired_connection* c = s.kwikd_connection != 0 ? _link.find(s.kwikd_connection) : nullptr;
    if (c == nullptr) {
        fail("this session has no connection in kwikd");
        return;
    }
    const std::uint64_t conn = c->id;
    const int fd = s.ch.fd();
    const std::string name = own_connection;
    // The requirements the outcome is held to: the command's own, else UPDATE_QOS's.
    command::QoSRequirements qos;
    if (q.options().has_qos()) {
        qos = q.options().qos();
    } else if (auto it = _qos.find(conn); it != _qos.end()) {
        qos = it->second;
    }
    if (std::string bad = check_qos(qos); !bad.empty()) {
        fail(bad);
        return;
    }
    // The outcome once kwikd answered: FAILURE with kwikd's reason, PARTIAL_SUCCESS when done but
    // a QoS requirement is not met, else SUCCESS; with the figures as they are then.
    auto outcome = [this, fd, name, id, conn, qos](const api::event& e, const std::string& what) {
        session* to = live_session(fd, name);
        if (to == nullptr) {
            return;
        }
        if (e.command_result.status != api::result_status::ok) {
            reply(*to, transport_answer(id, response::FAILURE, "kwikd refused " + what + ": " + kwikd_reason(e)),
                  clock_sample::now());
            return;
        }
        const desired_connection* now_c = _link.find(conn);
        response::TransportResult result = result_of(now_c != nullptr ? _planning.figures(*now_c) : std::vector<path_figures>{});
        std::string unmet = unmet_qos(qos, result);
        KCPMessage a = transport_answer(id, unmet.empty() ? response::SUCCESS : response::PARTIAL_SUCCESS, unmet);
        *a.mutable_transport_response()->mutable_result() = std::move(result);
        reply(*to, std::move(a), clock_sample::now());
    };
    auto in_progress = [&] { reply(s, transport_answer(id, response::IN_PROGRESS, ""), now); };
    // With the link's queue full, the command would fail at once, before IN_PROGRESS: that is
    // the answer, and nothing is recorded (SCALE_BANDWIDTH checks in scale_connection).
    if (q.type() == command::ESTABLISH_PATH || q.type() == command::CLOSE_PATH || q.type() == command::UPDATE_QOS) {
        if (auto room = _link.room_for(1); !room) {
            fail("kwik-cp cannot send it now: " + room.message());
            return;
        }
    }

    switch (q.type()) {
    case command::ESTABLISH_PATH: {
        v3::AddPathCommand add;
        if (q.transport_data().empty() || !add.ParseFromString(q.transport_data())) {
            fail("transport_command.transport_data: ESTABLISH_PATH carries a serialized AddPathCommand; " +
                 std::string(q.transport_data().empty() ? "it is empty" : "it does not parse as one"));
            return;
        }
        if (!add.connection_id().empty() && add.connection_id() != name) {
            fail("transport_data.connection_id: \"" + add.connection_id() + "\" is not this session's connection");
            return;
        }
        if (add.path_id() == 0 || add.path_id() > api::max_path_id) {
            fail("transport_data.path_id: " + std::to_string(add.path_id()) + " is not in 1..2^62-1");
            return;
        }
        auto tuple = to_tuple(add.path(), "transport_data.path");
        if (!tuple) {
            fail(tuple.message());
            return;
        }
        const auto& preferred = q.options().preferred_servers();
        if (!preferred.empty() &&
            std::none_of(preferred.begin(), preferred.end(), [&](const std::string& p) {
                return p == _config.hello.server_id || p == _config.self.server.address();
            })) {
            fail("options.preferred_servers: this server (\"" + _config.hello.server_id + "\", " +
                 _config.self.server.address() + ") is not among them; kwik-cp opens paths on its own kwikd only");
            return;
        }
        const std::size_t data_paths = static_cast<std::size_t>(std::count_if(
            c->paths.begin(), c->paths.end(), [](const auto& p) { return !p.second.standby; }));
        if (q.options().max_paths() > 0 && !add.standby() && data_paths + 1 > q.options().max_paths()) {
            fail("options.max_paths: " + std::to_string(q.options().max_paths()) + "; the connection has " +
                 std::to_string(data_paths) + " data path(s) already");
            return;
        }
        desired_path p;
        p.path_id = add.path_id();
        p.tuple = tuple.value();
        p.weight = add.initial_weight() > 0 ? add.initial_weight() : 1.0f;
        p.max_bandwidth_mbps = add.max_bandwidth_mbps() != 0 ? add.max_bandwidth_mbps() : q.options().target_bandwidth_mbps();
        p.standby = add.standby();
        const std::string what = "path " + std::to_string(p.path_id);
        if (auto r = _link.add_path(conn, p, [outcome, what](const api::event& e) { outcome(e, what); }); !r) {
            fail("transport_data.path_id: " + r.message());
            return;
        }
        in_progress();
        return;
    }
    case command::CLOSE_PATH: {
        v3::RemovePathCommand rm;
        if (q.transport_data().empty() || !rm.ParseFromString(q.transport_data())) {
            fail("transport_command.transport_data: CLOSE_PATH carries a serialized RemovePathCommand; " +
                 std::string(q.transport_data().empty() ? "it is empty" : "it does not parse as one"));
            return;
        }
        if (!rm.connection_id().empty() && rm.connection_id() != name) {
            fail("transport_data.connection_id: \"" + rm.connection_id() + "\" is not this session's connection");
            return;
        }
        if (!c->paths.contains(rm.path_id())) {
            fail("transport_data.path_id: " + std::to_string(rm.path_id()) + " is not a path of this connection");
            return;
        }
        const std::string what = "closing path " + std::to_string(rm.path_id());
        if (auto r = _link.remove_path(conn, rm.path_id(), rm.drain_timeout_ms(),
                                       [outcome, what](const api::event& e) { outcome(e, what); });
            !r) {
            fail("transport_data.path_id: " + r.message());
            return;
        }
        in_progress();
        return;
    }
    case command::SCALE_BANDWIDTH: {
        if (q.options().target_bandwidth_mbps() == 0) {
            fail("options.target_bandwidth_mbps: required for SCALE_BANDWIDTH (the capacity wanted, Mbit/s)");
            return;
        }
        v3::BandwidthScalingRequest req;
        req.set_connection_id(name);
        req.set_trigger(v3::BandwidthScalingRequest::MANUAL);
        req.set_target_bandwidth_mbps(q.options().target_bandwidth_mbps());
        req.set_current_bandwidth_mbps(result_of(_planning.figures(*c)).total_bandwidth_mbps());
        if (!q.transport_data().empty()) {
            if (!req.mutable_policy()->ParseFromString(q.transport_data())) {
                fail("transport_command.transport_data: SCALE_BANDWIDTH carries nothing or a serialized "
                     "BandwidthScalingRequest.ScalingPolicy; it does not parse as one");
                return;
            }
        }
        if (q.options().max_paths() > 0) {
            if (!req.has_policy()) {
                const scaling_policy& d = _planning.bandwidth().config().default_policy;
                auto* p = req.mutable_policy();
                p->set_scale_up_threshold_percent(d.scale_up_threshold_percent);
                p->set_scale_down_threshold_percent(d.scale_down_threshold_percent);
                p->set_min_paths(d.min_paths);
                p->set_cooldown_seconds(d.cooldown_seconds);
                p->set_aggressive_scaling(d.aggressive_scaling);
            }
            req.mutable_policy()->set_max_paths(q.options().max_paths());
        }
        const std::uint32_t target = q.options().target_bandwidth_mbps();
        auto done = [this, fd, name, id, conn, target](v3::BandwidthScalingResponse r) {
            session* to = live_session(fd, name);
            if (to == nullptr) {
                return;
            }
            if (r.decision() == v3::BandwidthScalingResponse::REJECTED) {
                reply(*to, transport_answer(id, response::FAILURE, "scaling rejected: " + r.reason()), clock_sample::now());
                return;
            }
            const desired_connection* now_c = _link.find(conn);
            response::TransportResult result =
                result_of(now_c != nullptr ? _planning.figures(*now_c) : std::vector<path_figures>{});
            const bool short_of = r.target_bandwidth_mbps() < target;
            KCPMessage a = transport_answer(
                id, short_of ? response::PARTIAL_SUCCESS : response::SUCCESS,
                short_of ? "options.target_bandwidth_mbps: " + std::to_string(target) + " wanted, " +
                               std::to_string(r.target_bandwidth_mbps()) + " planned (" + r.reason() + ")"
                         : std::string());
            *a.mutable_transport_response()->mutable_result() = std::move(result);
            reply(*to, std::move(a), clock_sample::now());
        };
        if (scale_connection(conn, req, 0, std::move(done))) {
            in_progress();
        }
        return;
    }
    case command::UPDATE_QOS: {
        if (!q.options().has_qos()) {
            fail("options.qos: required for UPDATE_QOS");
            return;
        }
        // Redundancy: every packet on every path; otherwise the planner's weights decide. The
        // requirements hold for later outcomes once kwikd took the scheduler.
        const auto strategy =
            q.options().qos().require_redundancy() ? api::scheduler_strategy::redundant : api::scheduler_strategy::weighted;
        _link.send(api::make_set_scheduler(conn, strategy), [this, outcome, conn, qos](const api::event& e) {
            if (e.command_result.status == api::result_status::ok) {
                _qos[conn] = qos;
            }
            outcome(e, "the scheduler for the QoS");
        });
        in_progress();
        return;
    }
    case command::HEALTH_CHECK:
    case command::SYNC_STATE: {
        if (!_link.attached()) {
            fail("kwikd is not attached: no current figures");
            return;
        }
        const std::vector<path_figures> figures = _planning.figures(*c);
        response::TransportResult result = result_of(figures);
        response::ResponseStatus status = response::SUCCESS;
        std::string message;
        if (q.type() == command::HEALTH_CHECK) {
            std::string down;
            for (const path_figures& f : figures) {
                if (f.down) {
                    down += (down.empty() ? "" : ", ") + std::to_string(f.path_id);
                }
            }
            if (result.active_paths() == 0) {
                status = response::FAILURE;
                message = figures.empty() ? "the connection has no path" : "no path carries data";
                if (!down.empty()) {
                    message += "; down: path " + down;
                }
            } else if (!down.empty()) {
                status = response::PARTIAL_SUCCESS;
                message = "down: path " + down;
            } else if (std::string unmet = unmet_qos(qos, result); !unmet.empty()) {
                status = response::PARTIAL_SUCCESS;
                message = std::move(unmet);
            }
        }
        KCPMessage a = transport_answer(id, status, std::move(message));
        *a.mutable_transport_response()->mutable_result() = std::move(result);
        reply(s, std::move(a), now);
        return;
    }
    default:
        fail("transport_command.type: not served");
        return;
    }
}

// ---------------------------------------------------------------------------------------------
// BandwidthScalingRequest

void control_server::on_scaling_request(session& s, const KCPMessage& m, clock_sample now) {
    ++_counters.scaling_requests;
    const v3::BandwidthScalingRequest& q = m.scaling_request();
    const std::string& own_connection = s.hello.accepted()->connection_id; // handle() checked ACCEPTED
    auto rejected = [&](std::string reason) {
        KCPMessage out;
        auto* r = out.mutable_scaling_response();
        r->set_in_reply_to(m.header().message_id());
        r->set_connection_id(q.connection_id());
        r->set_decision(v3::BandwidthScalingResponse::REJECTED);
        r->set_reason(std::move(reason));
        reply(s, std::move(out), now);
    };
    if (q.connection_id() != own_connection) {
        rejected("scaling_request.connection_id: \"" + q.connection_id() + "\" is not this session's connection (\"" +
                 own_connection + "\")");
        return;
    }
    if (s.kwikd_connection == 0 || _link.find(s.kwikd_connection) == nullptr) {
        rejected("this session has no connection in kwikd");
        return;
    }
    const int fd = s.ch.fd();
    const std::string name = own_connection;
    scale_connection(s.kwikd_connection, q, m.header().message_id(), [this, fd, name](v3::BandwidthScalingResponse r) {
        session* to = live_session(fd, name);
        if (to == nullptr) {
            return;
        }
        KCPMessage out;
        *out.mutable_scaling_response() = std::move(r);
        reply(*to, std::move(out), clock_sample::now());
    });
}

// Candidates are the connection's standby paths (the client announced them with
// AddPathCommand standby = true): a scale-up activates them, a scale-down puts paths back to
// standby. kwik-cp closes no client path and opens none by itself.
bool control_server::scale_connection(std::uint64_t kwikd_connection, const v3::BandwidthScalingRequest& request,
                                      std::uint64_t in_reply_to, std::function<void(v3::BandwidthScalingResponse)> done) {
    auto refuse = [&](std::string reason) {
        v3::BandwidthScalingResponse r;
        r.set_in_reply_to(in_reply_to);
        r.set_connection_id(request.connection_id());
        r.set_decision(v3::BandwidthScalingResponse::REJECTED);
        r.set_reason(std::move(reason));
        done(std::move(r));
        return false;
    };
    const desired_connection* c = _link.find(kwikd_connection);
    if (c == nullptr) {
        return refuse("connection " + std::to_string(kwikd_connection) + " is not known to kwik-cp");
    }
    if (request.connection_id() != c->name) {
        return refuse("scaling_request.connection_id: \"" + request.connection_id() + "\" is not connection " +
                      std::to_string(kwikd_connection) + " (\"" + c->name + "\")");
    }
    if (!_planning.config().enabled) {
        return refuse("the planning loop is off ([planning] enabled = false): no traffic observed to decide on");
    }
    if (!_link.attached()) {
        return refuse("kwikd is not attached: no path can change");
    }
    // Before the bandwidth manager records a plan that could not be sent.
    if (auto room = _link.room_for(1); !room) {
        return refuse(room.message());
    }
    const time_us now = wall_clock_us();
    _planning.ensure_observed(*c, now);
    scaling_decision d = _planning.bandwidth().decide(request, _planning.standby_candidates(*c), now, in_reply_to);
    v3::BandwidthScalingResponse r = d.response;
    if (r.decision() != v3::BandwidthScalingResponse::SCALE_UP &&
        r.decision() != v3::BandwidthScalingResponse::SCALE_DOWN) {
        done(std::move(r));
        return false;
    }
    // An activated path starts at the mean weight of the data paths; the planner's next pass
    // sets its share.
    float weight_sum = 0;
    std::size_t data_paths = 0;
    for (const auto& [pid, p] : c->paths) {
        if (!p.standby) {
            weight_sum += p.weight;
            ++data_paths;
        }
    }
    const float start_weight = data_paths > 0 && weight_sum > 0 ? weight_sum / static_cast<float>(data_paths) : 1.0f;
    std::vector<dataplane_link::role_change> changes;
    r.clear_paths_added();
    for (const planned_path& p : d.added) {
        const std::uint64_t standby = planning_loop::standby_path_of(p.server_id);
        _planning.bandwidth().activate_instead(c->name, p.path_id, standby);
        changes.push_back({standby, start_weight, api::standby_change::clear});
        r.add_paths_added(standby);
    }
    for (const std::uint64_t removed : r.paths_removed()) {
        _planning.bandwidth().keep_as_standby(c->name, removed);
        changes.push_back({removed, 0.0f, api::standby_change::set});
    }
    auto applied = [done, r](const api::event& e) mutable {
        if (e.command_result.status != api::result_status::ok) {
            r.set_decision(v3::BandwidthScalingResponse::REJECTED);
            r.set_reason("kwikd refused the path changes (" + kwikd_reason(e) + "); the plan was: " + r.reason());
        }
        done(std::move(r));
    };
    if (auto sent = _link.set_roles(kwikd_connection, changes, std::move(applied)); !sent) {
        r.set_decision(v3::BandwidthScalingResponse::REJECTED);
        r.set_reason("path changes not sent to kwikd (" + sent.message() + "); the plan was: " + r.reason());
        done(std::move(r));
        return false;
    }
    return true;
}

// ---------------------------------------------------------------------------------------------
// PerformanceMetrics

void control_server::on_performance_metrics(session& s, const KCPMessage& m, clock_sample) {
    const v3::PerformanceMetrics& q = m.performance_metrics();
    const std::string& own_connection = s.hello.accepted()->connection_id; // handle() checked ACCEPTED
    const desired_connection* c = s.kwikd_connection != 0 ? _link.find(s.kwikd_connection) : nullptr;
    if (q.connection_id() != own_connection || c == nullptr) {
        // One-way: nothing to answer. Logged at the 1st, 2nd, 4th, 8th... refusal.
        const std::uint64_t n = ++_counters.metrics_refused;
        if ((n & (n - 1)) == 0) {
            log_line(log_level::warning,
                     "PerformanceMetrics ignored (" + std::to_string(n) + " so far): " +
                         (c == nullptr ? std::string("the session has no connection in kwikd")
                                       : "performance_metrics.connection_id \"" + q.connection_id() +
                                             "\" is not the session's connection"));
        }
        return;
    }
    const metrics_verdict verdict = _planning.on_client_metrics(*c, q, wall_clock_us());
    if (verdict.first_unknown) {
        std::string ids;
        for (const std::uint64_t id : verdict.unknown_paths) {
            ids += (ids.empty() ? "" : ", ") + std::to_string(id);
        }
        log_line(log_level::warning, "connection " + c->name + ": PerformanceMetrics.paths lists path " + ids +
                                         ", not a path of the connection; ignored and counted (logged once per "
                                         "connection)");
    }
}

} // namespace kwik::cp
