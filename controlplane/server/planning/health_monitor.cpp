// Health checks, failure detection, failover and recovery (docs/CONTROL_PLANE.md section 4).
// One owner thread.
#include "controlplane/server/planning/health_monitor.hpp"

#include <algorithm>
#include <cstdio>
#include <limits>
#include <utility>

namespace kwik::cp {

namespace {

using update = kcp::v3::PathStatusUpdate;

std::string format(const char* fmt, double v) {
    char buf[64];
    std::snprintf(buf, sizeof buf, fmt, v);
    return buf;
}

std::string path_name(std::uint64_t id) {
    return "path " + std::to_string(id);
}

// A failover candidate's rank: the lowest smoothed RTT (unknown last), then the lowest id.
bool ranks_before(const path_health& a, const path_health& b) {
    auto rtt = [](const path_health& p) {
        return p.latest.smoothed_rtt_us > 0 ? p.latest.smoothed_rtt_us : std::numeric_limits<std::uint32_t>::max();
    };
    const std::uint32_t ra = rtt(a);
    const std::uint32_t rb = rtt(b);
    if (ra != rb) {
        return ra < rb;
    }
    return a.latest.path_id < b.latest.path_id;
}

health_action action(health_action::kind what, const std::string& connection_id, std::uint64_t path_id) {
    health_action a;
    a.what = what;
    a.connection_id = connection_id;
    a.path_id = path_id;
    return a;
}

} // namespace

std::string_view to_string(health_state s) noexcept {
    switch (s) {
    case health_state::up:
        return "up";
    case health_state::degraded:
        return "degraded";
    case health_state::down:
        return "down";
    }
    return "unknown";
}

health_monitor::health_monitor(const health_config& config) : _config(config) {}

// ---- what is watched ------------------------------------------------------------------------

void health_monitor::watch_path(const path_metrics& path, time_us now) {
    connection_paths& paths = _paths[path.connection_id];
    auto [it, inserted] = paths.try_emplace(path.path_id);
    path_health& p = it->second;
    p.latest = path;
    if (inserted) {
        p.original = p.live = {path.standby, path.weight};
        p.check.next_due = now;
        return;
    }
    if (p.state != health_state::down && p.covering.empty()) {
        p.original = p.live = {path.standby, path.weight};
    }
}

void health_monitor::unwatch_path(std::string_view connection_id, std::uint64_t path_id) {
    auto c = _paths.find(connection_id);
    if (c == _paths.end()) {
        return;
    }
    c->second.erase(path_id);
    // A path that stood in for this one keeps carrying: the one it stood in for is gone for good.
    for (auto& [id, q] : c->second) {
        if (q.covering.erase(path_id) > 0 && q.covering.empty()) {
            q.original = q.live;
        }
        if (q.failover_path_id == path_id) {
            q.failover_path_id = 0;
            q.handed_over = 0;
        }
    }
    if (c->second.empty()) {
        _paths.erase(c);
    }
}

void health_monitor::watch_server(std::string_view server_id, std::string_view address, time_us now) {
    auto [it, inserted] = _servers.try_emplace(std::string(server_id));
    it->second.server_id = std::string(server_id);
    it->second.address = std::string(address);
    if (inserted) {
        it->second.check.next_due = now;
    }
}

void health_monitor::unwatch_server(std::string_view server_id) {
    auto it = _servers.find(server_id);
    if (it != _servers.end()) {
        _servers.erase(it);
    }
}

void health_monitor::set_failover_servers(server_availability servers) {
    _failover_servers = std::move(servers);
}

path_health* health_monitor::find_path(std::string_view connection_id, std::uint64_t path_id) {
    auto c = _paths.find(connection_id);
    if (c == _paths.end()) {
        return nullptr;
    }
    auto p = c->second.find(path_id);
    return p == c->second.end() ? nullptr : &p->second;
}

server_health* health_monitor::find_server(std::string_view server_id) {
    auto it = _servers.find(server_id);
    return it == _servers.end() ? nullptr : &it->second;
}

check_record* health_monitor::record_of(const target& t) {
    if (t.is_server) {
        server_health* s = find_server(t.name);
        return s == nullptr ? nullptr : &s->check;
    }
    path_health* p = find_path(t.name, t.path_id);
    return p == nullptr ? nullptr : &p->check;
}

const path_health* health_monitor::path(std::string_view connection_id, std::uint64_t path_id) const {
    return const_cast<health_monitor*>(this)->find_path(connection_id, path_id);
}

const server_health* health_monitor::server(std::string_view server_id) const {
    return const_cast<health_monitor*>(this)->find_server(server_id);
}

// ---- checks ---------------------------------------------------------------------------------

void health_monitor::send_check(check_record& c, const target& t, time_us now, health_output& out) {
    const std::uint64_t sequence = ++_sequence;
    kcp::v3::HealthCheckRequest& req = out.requests.emplace_back();
    req.set_sequence(sequence);
    if (t.is_server) {
        req.set_server_id(t.name);
    } else {
        req.set_connection_id(t.name);
        req.set_path_id(t.path_id);
    }
    req.set_sent_at_us(now);
    c.outstanding = sequence;
    c.sent_at = now;
    c.next_due = now + _config.check_interval_us;
    _in_flight[sequence] = t;
    ++_stats.checks_sent;
}

health_output health_monitor::tick(time_us now) {
    health_output out;
    std::vector<target> expired;
    for (auto it = _in_flight.begin(); it != _in_flight.end();) {
        check_record* c = record_of(it->second);
        if (c == nullptr || c->outstanding != it->first) {
            it = _in_flight.erase(it); // its target is no longer watched
        } else if (c->sent_at + _config.check_timeout_us <= now) {
            c->outstanding = 0;
            expired.push_back(it->second);
            it = _in_flight.erase(it);
        } else {
            ++it;
        }
    }
    const std::string no_answer = "no answer within " + format("%.0f", _config.check_timeout_us / 1000.0) + " ms";
    for (const target& t : expired) {
        ++_stats.timeouts;
        failed_check(t, no_answer, out);
    }
    for (auto& [id, s] : _servers) {
        if (s.check.outstanding == 0 && s.check.next_due <= now) {
            send_check(s.check, target{true, id, 0}, now, out);
        }
    }
    for (auto& [connection, paths] : _paths) {
        for (auto& [id, p] : paths) {
            if (p.check.outstanding == 0 && p.check.next_due <= now) {
                send_check(p.check, target{false, connection, id}, now, out);
            }
        }
    }
    return out;
}

health_output health_monitor::on_response(const kcp::v3::HealthCheckResponse& response, time_us now) {
    health_output out;
    auto it = _in_flight.find(response.sequence());
    if (it == _in_flight.end()) {
        ++_stats.unmatched;
        return out;
    }
    const target t = it->second;
    using answer = kcp::v3::HealthCheckResponse;
    const bool same_target =
        t.is_server ? response.target_case() == answer::kServerId && response.server_id() == t.name
                    : response.target_case() == answer::kPathId && response.path_id() == t.path_id &&
                          response.connection_id() == t.name;
    check_record* c = record_of(t);
    if (!same_target || c == nullptr || c->outstanding != response.sequence()) {
        ++_stats.unmatched;
        return out;
    }
    _in_flight.erase(it);
    c->outstanding = 0;
    ++_stats.responses;
    const time_us rtt = now > c->sent_at ? now - c->sent_at : 0;
    c->last_rtt_us = rtt > std::numeric_limits<std::uint32_t>::max() ? std::numeric_limits<std::uint32_t>::max()
                                                                     : static_cast<std::uint32_t>(rtt);
    c->srtt_us = c->srtt_us == 0 ? c->last_rtt_us
                                 : static_cast<std::uint32_t>((std::uint64_t{c->srtt_us} * 7 + c->last_rtt_us) / 8);
    const std::string status = answer::Status_Name(response.status());
    switch (response.status()) {
    case answer::HEALTHY:
        healthy_check(t, false, {}, out);
        break;
    case answer::DEGRADED:
        healthy_check(t, true, response.reason().empty() ? status : response.reason(), out);
        break;
    default:
        failed_check(t, response.reason().empty() ? status : status + ": " + response.reason(), out);
        break;
    }
    return out;
}

void health_monitor::healthy_check(const target& t, bool degraded, std::string_view detail, health_output& out) {
    if (t.is_server) {
        server_health* s = find_server(t.name);
        if (s != nullptr) {
            s->check.failures = 0;
            if (s->state == health_state::down && ++s->check.healthy >= _config.recovery_threshold) {
                s->state = health_state::up;
                s->check.healthy = 0;
            }
        }
        return;
    }
    if (path_health* p = find_path(t.name, t.path_id)) {
        path_healthy(t.name, *p, degraded, detail, out);
    }
}

void health_monitor::path_healthy(const std::string& connection_id, path_health& p, bool degraded,
                                  std::string_view detail, health_output& out) {
    p.check.failures = 0;
    p.degraded_by_check = degraded;
    if (p.state == health_state::down) {
        if (++p.check.healthy >= _config.recovery_threshold) {
            recover(connection_id, p, out);
        }
        return;
    }
    if (degraded && p.state == health_state::up) {
        set_degraded(connection_id, p, "health check: " + std::string(detail), out);
    } else if (!degraded && p.state == health_state::degraded && !p.degraded_by_metrics &&
               !p.degraded_by_dataplane) {
        p.state = health_state::up;
        status_update(connection_id, p, update::UP, "health check healthy again", out);
    }
}

void health_monitor::failed_check(const target& t, std::string_view why, health_output& out) {
    const std::string n = std::to_string(_config.failure_threshold);
    if (t.is_server) {
        server_health* s = find_server(t.name);
        if (s == nullptr) {
            return;
        }
        s->check.healthy = 0;
        s->check.last_problem = std::string(why);
        if (++s->check.failures < _config.failure_threshold || s->state == health_state::down) {
            return;
        }
        s->state = health_state::down;
        const std::string reason = "server " + s->server_id + " failed: " + n +
                                   " failed health checks in a row (last: " + std::string(why) + ")";
        for (auto& [connection, paths] : _paths) {
            for (auto& [id, p] : paths) {
                if (p.latest.server_id == s->server_id && p.state != health_state::down) {
                    go_down(connection, p, reason, out);
                }
            }
        }
        return;
    }
    path_health* p = find_path(t.name, t.path_id);
    if (p == nullptr) {
        return;
    }
    p->check.healthy = 0;
    p->check.last_problem = std::string(why);
    if (++p->check.failures >= _config.failure_threshold && p->state != health_state::down) {
        go_down(t.name, *p, n + " failed health checks in a row (last: " + std::string(why) + ")", out);
    }
}

health_output health_monitor::on_path_down(std::string_view connection_id, std::uint64_t path_id,
                                           std::string_view reason, time_us) {
    health_output out;
    path_health* p = find_path(connection_id, path_id);
    if (p == nullptr || p->state == health_state::down) {
        return out;
    }
    p->check.healthy = 0;
    p->check.last_problem = std::string(reason);
    go_down(std::string(connection_id), *p, "data plane: " + std::string(reason), out);
    return out;
}

health_output health_monitor::on_path_suspect(std::string_view connection_id, std::uint64_t path_id,
                                              std::string_view reason, time_us) {
    health_output out;
    path_health* p = find_path(connection_id, path_id);
    if (p == nullptr || p->state == health_state::down || p->degraded_by_dataplane) {
        return out;
    }
    p->degraded_by_dataplane = true;
    p->check.last_problem = std::string(reason);
    if (p->state == health_state::up) {
        set_degraded(std::string(connection_id), *p, "data plane: " + std::string(reason), out);
    }
    return out;
}

health_output health_monitor::on_path_up(std::string_view connection_id, std::uint64_t path_id, time_us) {
    health_output out;
    path_health* p = find_path(connection_id, path_id);
    if (p == nullptr) {
        return out;
    }
    if (p->degraded_by_dataplane) {
        p->degraded_by_dataplane = false;
        if (p->state == health_state::degraded && !p->degraded_by_metrics && !p->degraded_by_check) {
            p->state = health_state::up;
            status_update(std::string(connection_id), *p, update::UP, "data plane: acknowledged again", out);
        }
    }
    p->check.failures = 0;
    if (p->state == health_state::down && ++p->check.healthy >= _config.recovery_threshold) {
        recover(std::string(connection_id), *p, out);
    }
    return out;
}

health_output health_monitor::on_metrics(const path_metrics& m, time_us) {
    health_output out;
    path_health* p = find_path(m.connection_id, m.path_id);
    if (p == nullptr) {
        return out;
    }
    p->latest.smoothed_rtt_us = m.smoothed_rtt_us;
    p->latest.min_rtt_us = m.min_rtt_us;
    p->latest.rtt_var_us = m.rtt_var_us;
    p->latest.loss_rate = m.loss_rate;
    p->latest.delivery_rate_bps = m.delivery_rate_bps;
    const double rtt = m.smoothed_rtt_us;
    const double loss = m.loss_rate;
    const double rtt_limit = _config.degraded_rtt_us;
    const double loss_limit = _config.degraded_loss;
    const bool rtt_past = m.smoothed_rtt_us > 0 && rtt >= rtt_limit;
    const bool loss_past = loss >= loss_limit;
    const bool below = rtt < _config.clear_fraction * rtt_limit && loss < _config.clear_fraction * loss_limit;
    if ((rtt_past || loss_past) && !p->degraded_by_metrics) {
        p->degraded_by_metrics = true;
        if (p->state == health_state::up) {
            std::string reason = rtt_past ? "smoothed RTT " + format("%.1f", rtt / 1000.0) + " ms >= " +
                                                format("%.1f", rtt_limit / 1000.0) + " ms"
                                          : std::string();
            if (loss_past) {
                reason += (reason.empty() ? "" : ", ") + std::string("loss rate ") + format("%.2f", 100.0 * loss) +
                          "% >= " + format("%.2f", 100.0 * loss_limit) + "%";
            }
            set_degraded(m.connection_id, *p, reason, out);
        }
    } else if (p->degraded_by_metrics && below) {
        p->degraded_by_metrics = false;
        if (p->state == health_state::degraded && !p->degraded_by_check && !p->degraded_by_dataplane) {
            p->state = health_state::up;
            status_update(m.connection_id, *p, update::UP,
                          "RTT and loss back below " + format("%.0f", 100.0 * _config.clear_fraction) +
                              "% of their thresholds",
                          out);
        }
    }
    return out;
}

// ---- state changes --------------------------------------------------------------------------

kcp::v3::PathStatusUpdate& health_monitor::status_update(const std::string& connection_id, const path_health& p,
                                                     update::Status status, std::string reason, health_output& out) {
    update& u = out.updates.emplace_back();
    u.set_connection_id(connection_id);
    u.set_path_id(p.latest.path_id);
    u.set_status(status);
    u.set_reason(std::move(reason));
    u.set_smoothed_rtt_us(p.latest.smoothed_rtt_us);
    u.set_loss_rate(p.latest.loss_rate);
    u.set_bandwidth_bps(p.latest.delivery_rate_bps);
    return u;
}

void health_monitor::apply_roles(const std::string& connection_id, path_health& p, path_roles roles,
                                 health_output& out) {
    if (p.live.standby != roles.standby) {
        out.actions.push_back(action(health_action::kind::set_standby, connection_id, p.latest.path_id));
        out.actions.back().standby = roles.standby;
    }
    if (p.live.weight != roles.weight) {
        out.actions.push_back(action(health_action::kind::set_weight, connection_id, p.latest.path_id));
        out.actions.back().weight = roles.weight;
    }
    p.live = roles;
}

void health_monitor::set_degraded(const std::string& connection_id, path_health& p, const std::string& reason,
                                  health_output& out) {
    p.state = health_state::degraded;
    status_update(connection_id, p, update::DEGRADED, reason, out);
}

void health_monitor::go_down(const std::string& connection_id, path_health& p, const std::string& reason,
                             health_output& out) {
    const bool idle_standby = p.live.standby;
    const float carried = idle_standby ? 0.0f : p.live.weight;
    p.state = health_state::down;
    p.check.healthy = 0;
    p.degraded_by_check = false;
    p.degraded_by_metrics = false;
    p.degraded_by_dataplane = false;
    apply_roles(connection_id, p, {p.live.standby, 0.0f}, out);
    if (idle_standby) {
        status_update(connection_id, p, update::DOWN, reason + "; a standby path: no traffic to move", out);
        return;
    }

    // Failover target: a standby path of the connection, else another path carrying data, else
    // a path on another server; never a path that is down or on a server that is.
    auto server_down = [&](const std::string& id) {
        const server_health* s = find_server(id);
        return s != nullptr && s->state == health_state::down;
    };
    path_health* standby = nullptr;
    path_health* active = nullptr;
    for (auto& [id, q] : _paths[connection_id]) {
        if (&q == &p || q.state == health_state::down || server_down(q.latest.server_id)) {
            continue;
        }
        path_health*& best = q.live.standby ? standby : active;
        if (best == nullptr || ranks_before(q, *best)) {
            best = &q;
        }
    }
    const std::uint64_t id = p.latest.path_id;
    if (standby != nullptr) {
        standby->covering.insert(id);
        apply_roles(connection_id, *standby, {false, carried}, out);
        p.failover_path_id = standby->latest.path_id;
        p.handed_over = carried;
        status_update(connection_id, p, update::DOWN,
                      reason + "; standby " + path_name(p.failover_path_id) + " takes over", out)
            .set_failover_path_id(p.failover_path_id);
        status_update(connection_id, *standby, update::UP, "takes over the traffic of " + path_name(id), out);
        return;
    }
    if (active != nullptr) {
        p.failover_path_id = active->latest.path_id;
        p.handed_over = 0;
        status_update(connection_id, p, update::DOWN,
                      reason + "; " + path_name(p.failover_path_id) + " carries its traffic", out)
            .set_failover_path_id(p.failover_path_id);
        return;
    }
    const server_candidate* best = nullptr;
    for (const server_candidate& s : _failover_servers.servers) {
        if (!s.healthy || s.available_bps == 0 || s.server_id == p.latest.server_id || server_down(s.server_id)) {
            continue;
        }
        if (best == nullptr || s.latency_us < best->latency_us ||
            (s.latency_us == best->latency_us && s.available_bps > best->available_bps)) {
            best = &s;
        }
    }
    if (best != nullptr) {
        out.actions.push_back(action(health_action::kind::open_path, connection_id, id));
        out.actions.back().server_id = best->server_id;
        out.actions.back().server_address = best->address;
        status_update(connection_id, p, update::DOWN,
                      reason + "; no other path: a path on server " + best->server_id + " is requested", out);
        return;
    }
    status_update(connection_id, p, update::DOWN, reason + "; no failover target", out);
}

void health_monitor::recover(const std::string& connection_id, path_health& p, health_output& out) {
    p.state = health_state::up;
    p.check.healthy = 0;
    p.check.failures = 0;
    // Its own roles first, so the traffic has somewhere to go before the stand-in steps back.
    path_roles mine = p.original;
    if (!p.covering.empty()) {
        float sum = 0;
        for (std::uint64_t covered : p.covering) {
            if (const path_health* q = find_path(connection_id, covered)) {
                sum += q->handed_over;
            }
        }
        mine = {false, sum};
    }
    apply_roles(connection_id, p, mine, out);
    status_update(connection_id, p, update::UP,
                  "recovered: " + std::to_string(_config.recovery_threshold) + " healthy checks in a row", out);

    path_health* stand_in = p.failover_path_id != 0 ? find_path(connection_id, p.failover_path_id) : nullptr;
    const float handed_over = p.handed_over;
    p.failover_path_id = 0;
    p.handed_over = 0;
    if (stand_in == nullptr || stand_in->covering.erase(p.latest.path_id) == 0 ||
        stand_in->state == health_state::down) {
        return;
    }
    if (!stand_in->covering.empty()) {
        apply_roles(connection_id, *stand_in, {false, stand_in->live.weight - handed_over}, out);
        return;
    }
    apply_roles(connection_id, *stand_in, stand_in->original, out);
    if (stand_in->original.standby) {
        status_update(connection_id, *stand_in, update::STANDBY,
                      path_name(p.latest.path_id) + " recovered; back to standby", out);
    }
}

} // namespace kwik::cp
