// kwik-cp's planning loop (planning_loop.hpp) and control_server's part of it: running a pass
// when due and applying what it decided.
#include "controlplane/server/kwik_cp/planning_loop.hpp"

#include "controlplane/server/kwik_cp/control_server.hpp"
#include "controlplane/server/kwik_cp/log.hpp"
#include "controlplane/server/kwik_cp/session.hpp"

#include <arpa/inet.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <set>
#include <utility>

namespace kwik::cp {

namespace v3 = kcp::v3;

time_us wall_clock_us() noexcept {
    return static_cast<time_us>(
        std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::system_clock::now().time_since_epoch())
            .count());
}

std::string local_address_of(const api::five_tuple& t) {
    char text[INET6_ADDRSTRLEN] = {};
    const bool v6 = t.version == api::ip_version::v6;
    ::inet_ntop(v6 ? AF_INET6 : AF_INET, t.local.bytes, text, sizeof text);
    return v6 ? "[" + std::string(text) + "]:" + std::to_string(t.local_port)
              : std::string(text) + ":" + std::to_string(t.local_port);
}

planning_loop::planning_loop(planning_config config, std::string server_id)
    : _config(std::move(config)), _server_id(std::move(server_id)), _health(_config.health),
      _bandwidth(_config.bandwidth), _planner(_config.planner) {}

std::string planning_loop::standby_server(std::uint64_t path_id) {
    return "standby:" + std::to_string(path_id);
}

std::uint64_t planning_loop::standby_path_of(std::string_view server_id) {
    constexpr std::string_view prefix = "standby:";
    if (!server_id.starts_with(prefix) || server_id.size() == prefix.size()) {
        return 0;
    }
    std::uint64_t id = 0;
    for (const char c : server_id.substr(prefix.size())) {
        if (c < '0' || c > '9' || id > (api::max_path_id - 9) / 10) {
            return 0;
        }
        id = id * 10 + static_cast<std::uint64_t>(c - '0');
    }
    return id;
}

// kwikd's counters with the client's latest report folded in: the larger delivery rate and
// loss of the two views (each side sees what the other cannot: kwikd its own sends, the client
// what arrived), kwikd's RTT unless it has none.
path_metrics planning_loop::metrics_of(const connection_state&, const path_state& ps, time_us now) const {
    path_metrics m = ps.latest;
    const path_rates& k = ps.kwikd.rates();
    double rate = std::max(k.tx_bps, k.rx_bps);
    double loss = k.loss_rate;
    const time_us fresh = time_us{_config.client_report_intervals} *
                          static_cast<time_us>(std::chrono::duration_cast<std::chrono::microseconds>(_config.interval).count());
    if (ps.client_at != 0 && now - ps.client_at <= fresh) {
        rate = std::max(rate, static_cast<double>(ps.client_delivery_bps));
        loss = std::max(loss, ps.client.rates().loss_rate);
        if (m.smoothed_rtt_us == 0) {
            m.smoothed_rtt_us = ps.client_srtt_us;
        }
    }
    m.delivery_rate_bps = static_cast<std::uint64_t>(rate);
    m.loss_rate = static_cast<float>(loss);
    return m;
}

// A path check, answered here from kwikd's counters (the path's far end is the client, which
// kwik-cp does not probe): failed or removed in kwikd, or silent for a check interval while
// another data path of the connection received, is a failed check; suspect is DEGRADED.
v3::HealthCheckResponse planning_loop::answer_check(const v3::HealthCheckRequest& q, time_us now) const {
    using H = v3::HealthCheckResponse;
    H r;
    r.set_sequence(q.sequence());
    r.set_connection_id(q.connection_id());
    r.set_request_sent_at_us(q.sent_at_us());
    r.set_responded_at_us(now);
    if (!q.has_path_id()) {
        r.set_server_id(q.server_id());
        r.set_status(H::UNKNOWN_TARGET);
        r.set_reason("kwik-cp checks paths only");
        return r;
    }
    r.set_path_id(q.path_id());
    auto c = _connections.find(q.connection_id());
    const path_state* ps = nullptr;
    if (c != _connections.end()) {
        if (auto p = c->second.paths.find(q.path_id()); p != c->second.paths.end()) {
            ps = &p->second;
        }
    }
    if (ps == nullptr) {
        r.set_status(H::UNKNOWN_TARGET);
        r.set_reason("no path " + std::to_string(q.path_id()) + " on connection \"" + q.connection_id() + "\"");
        return r;
    }
    if (!ps->in_counters) {
        r.set_status(H::UNHEALTHY);
        r.set_reason("the path is not in kwikd's counters");
        return r;
    }
    switch (ps->latest.status) {
    case path_status::failed:
        r.set_status(H::UNHEALTHY);
        r.set_reason("kwikd declared the path failed (no acknowledgement after its probe timeouts)");
        return r;
    case path_status::removed:
        r.set_status(H::UNHEALTHY);
        r.set_reason("kwikd removed the path");
        return r;
    default:
        break;
    }
    const time_us window = _config.health.check_interval_us;
    if (!ps->latest.standby && now - ps->rx_changed_at >= window) {
        for (const auto& [id, other] : c->second.paths) {
            if (id != q.path_id() && other.in_counters && !other.latest.standby &&
                other.latest.status == path_status::up && now - other.rx_changed_at < window) {
                r.set_status(H::UNHEALTHY);
                r.set_reason("received nothing for " + std::to_string((now - ps->rx_changed_at) / us_per_ms) +
                             " ms while path " + std::to_string(id) + " received");
                return r;
            }
        }
    }
    if (ps->latest.status == path_status::suspect) {
        r.set_status(H::DEGRADED);
        r.set_reason("kwikd holds the path suspect (no acknowledgement within a probe timeout)");
        return r;
    }
    r.set_status(H::HEALTHY);
    return r;
}

// Health output into control_server's terms: updates to push, and role changes grouped per
// connection (a standby change keeps the path's current weight unless a weight comes with it).
void planning_loop::collect(const health_output& h, planning_output& out) {
    for (const auto& u : h.updates) {
        auto c = _connections.find(u.connection_id());
        if (c != _connections.end()) {
            out.updates.push_back({c->second.kwikd_id, u});
        }
    }
    for (const health_action& a : h.actions) {
        auto c = _connections.find(a.connection_id);
        if (c == _connections.end() || a.what == health_action::kind::open_path) {
            continue; // open_path needs failover servers, which kwik-cp does not give the monitor
        }
        auto p = c->second.paths.find(a.path_id);
        if (p == c->second.paths.end()) {
            continue;
        }
        auto group = std::find_if(out.roles.begin(), out.roles.end(),
                                  [&](const planning_output::roles_push& r) { return r.connection == c->second.kwikd_id; });
        if (group == out.roles.end()) {
            out.roles.push_back({c->second.kwikd_id, {}});
            group = std::prev(out.roles.end());
        }
        auto entry = std::find_if(group->changes.begin(), group->changes.end(),
                                  [&](const dataplane_link::role_change& r) { return r.path_id == a.path_id; });
        if (entry == group->changes.end()) {
            group->changes.push_back({a.path_id, p->second.latest.weight, api::standby_change::keep});
            entry = std::prev(group->changes.end());
        }
        if (a.what == health_action::kind::set_weight) {
            entry->weight = a.weight;
        } else {
            entry->standby = a.standby ? api::standby_change::set : api::standby_change::clear;
        }
    }
}

planning_output planning_loop::step(const std::map<std::uint64_t, desired_connection>& connections,
                                    const std::optional<api::counters_totals>& totals, time_us now,
                                    std::chrono::steady_clock::time_point steady_now) {
    _next_due = steady_now + _config.interval;
    ++_counters.passes;
    planning_output out;
    if (!totals) {
        return out;
    }
    std::map<std::pair<std::uint64_t, std::uint64_t>, const api::path_counters*> index;
    for (const api::path_counters& p : totals->paths) {
        index[{p.connection_id, p.path_id}] = &p;
    }
    std::set<std::string, std::less<>> live;
    for (const auto& [id, dc] : connections) {
        live.insert(dc.name);
    }
    for (auto it = _connections.begin(); it != _connections.end();) {
        const std::string name = it->first;
        ++it;
        if (!live.contains(name)) {
            forget_connection(name);
        }
    }
    for (const auto& [id, dc] : connections) {
        connection_state& cs = _connections[dc.name];
        cs.kwikd_id = id;
        for (auto it = cs.paths.begin(); it != cs.paths.end();) {
            if (!dc.paths.contains(it->first)) {
                _health.unwatch_path(dc.name, it->first);
                cs.pushed.erase(it->first);
                it = cs.paths.erase(it);
            } else {
                ++it;
            }
        }
        std::vector<path_metrics> observed;
        for (const auto& [pid, dp] : dc.paths) {
            auto [at, fresh] = cs.paths.try_emplace(pid, _config.bandwidth.window);
            path_state& ps = at->second;
            const auto pc = index.find({id, pid});
            path_metrics m;
            if (pc != index.end()) {
                m = from_counters(*pc->second, dc.name);
                if (!ps.in_counters || pc->second->rx_packets != ps.rx_at_check) {
                    ps.rx_at_check = pc->second->rx_packets;
                    ps.rx_changed_at = now;
                }
                ps.in_counters = true;
            } else {
                m.connection_id = dc.name;
                m.path_id = pid;
                ps.in_counters = false;
            }
            if (fresh) {
                ps.rx_changed_at = now;
            }
            m.server_id = _server_id;
            m.server_address = local_address_of(dp.tuple);
            m.capacity_bps = std::uint64_t{dp.max_bandwidth_mbps} * 1'000'000;
            m.standby = dp.standby;
            m.weight = dp.weight;
            if (ps.in_counters) {
                (void)ps.kwikd.add(m, now); // false: the window (re)starts here
            }
            ps.latest = m;
            if (m.status == path_status::removed) {
                continue; // draining out: kwikd's path_down "removed" ends the watch
            }
            const path_metrics full = metrics_of(cs, ps, now);
            if (ps.in_counters) {
                // Checked from its first appearance in the counters (a path kwikd has just
                // added is published within a worker's publish interval, 100 ms).
                _health.watch_path(full, now);
                collect(_health.on_metrics(full, now), out);
            }
            observed.push_back(full);
        }
        _bandwidth.observe(dc.name, observed, now);
    }
    const health_output checks = _health.tick(now);
    collect(checks, out);
    for (const v3::HealthCheckRequest& q : checks.requests) {
        ++_counters.health_checks;
        collect(_health.on_response(answer_check(q, now), now), out);
    }
    for (auto& [name, cs] : _connections) {
        plan_connection(name, cs, now, out);
    }
    return out;
}

// The planner over the connection's open paths as the health monitor and this pass left them
// (a DOWN path counts as failed, a role change decided in this pass as made). New weights go
// out only when one moved by more than weight_threshold, or the paths changed.
void planning_loop::plan_connection(const std::string& name, connection_state& cs, time_us now,
                                    planning_output& out) {
    const planning_output::roles_push* pending = nullptr;
    for (const auto& r : out.roles) {
        if (r.connection == cs.kwikd_id) {
            pending = &r;
        }
    }
    std::vector<path_metrics> paths;
    for (const auto& [pid, ps] : cs.paths) {
        if (ps.latest.status == path_status::removed) {
            continue;
        }
        path_metrics m = metrics_of(cs, ps, now);
        if (const path_health* h = _health.path(name, pid); h != nullptr && h->state == health_state::down) {
            m.status = path_status::failed;
        }
        if (pending != nullptr) {
            for (const auto& c : pending->changes) {
                if (c.path_id == pid && c.standby != api::standby_change::keep) {
                    m.standby = c.standby == api::standby_change::set;
                }
            }
        }
        paths.push_back(std::move(m));
    }
    if (paths.empty()) {
        return;
    }
    auto planned = _planner.plan(paths, now);
    if (!planned) {
        ++_counters.plan_errors; // no usable path: the health monitor's updates said why
        return;
    }
    bool changed = cs.pushed.size() != planned->update.path_weights().size();
    for (const auto& [pid, target] : planned->update.path_weights()) {
        auto it = cs.pushed.find(pid);
        changed = changed || it == cs.pushed.end() || std::fabs(it->second - target) > _config.weight_threshold;
    }
    if (!changed) {
        return; // the generation this plan took is skipped: receivers only need it to increase
    }
    std::vector<dataplane_link::role_change> changes;
    for (const weight_step& w : step_weights(planned->update, cs.pushed)) {
        changes.push_back({w.path_id, w.weight, api::standby_change::keep});
        cs.pushed[w.path_id] = w.weight;
    }
    auto group = std::find_if(out.roles.begin(), out.roles.end(),
                              [&](const planning_output::roles_push& r) { return r.connection == cs.kwikd_id; });
    if (group == out.roles.end()) {
        out.roles.push_back({cs.kwikd_id, std::move(changes)});
    } else {
        for (const auto& c : changes) {
            auto e = std::find_if(group->changes.begin(), group->changes.end(),
                                  [&](const dataplane_link::role_change& r) { return r.path_id == c.path_id; });
            if (e == group->changes.end()) {
                group->changes.push_back(c);
            } else {
                e->weight = c.weight; // the planner's weight; the failover's standby change stays
            }
        }
    }
    ++_counters.weight_pushes;
    ++_counters.plans_pushed;
    out.plans.push_back({cs.kwikd_id, std::move(planned.value())});
}

planning_output planning_loop::on_path_down(const desired_connection& c, const api::path_down_body& b, time_us now) {
    planning_output out;
    auto cs = _connections.find(c.name);
    if (b.kind == api::path_down_kind::removed) {
        _health.unwatch_path(c.name, b.path_id);
        if (cs != _connections.end()) {
            cs->second.paths.erase(b.path_id);
            cs->second.pushed.erase(b.path_id);
        }
        return out;
    }
    if (_health.path(c.name, b.path_id) == nullptr) {
        // Down before a pass saw it: watched now with what kwik-cp holds, so the DOWN is not lost.
        auto p = c.paths.find(b.path_id);
        if (p == c.paths.end()) {
            return out;
        }
        connection_state& st = _connections[c.name];
        st.kwikd_id = c.id;
        path_metrics m;
        m.connection_id = c.name;
        m.path_id = b.path_id;
        m.server_id = _server_id;
        m.server_address = local_address_of(p->second.tuple);
        m.standby = p->second.standby;
        m.weight = p->second.weight;
        st.paths.try_emplace(b.path_id, _config.bandwidth.window).first->second.latest = m;
        _health.watch_path(m, now);
    }
    if (b.kind == api::path_down_kind::down) {
        collect(_health.on_path_suspect(c.name, b.path_id, api::get_text(b.reason), now), out);
    } else {
        collect(_health.on_path_down(c.name, b.path_id, api::get_text(b.reason), now), out);
    }
    return out;
}

planning_output planning_loop::on_path_up(const desired_connection& c, std::uint64_t path_id, time_us now) {
    planning_output out;
    collect(_health.on_path_up(c.name, path_id, now), out);
    return out;
}

metrics_verdict planning_loop::on_client_metrics(const desired_connection& c, const v3::PerformanceMetrics& m,
                                                 time_us now) {
    metrics_verdict v;
    ++_counters.client_reports;
    connection_state& cs = _connections[c.name];
    cs.kwikd_id = c.id;
    for (const auto& pm : m.paths()) {
        if (!c.paths.contains(pm.path_id())) {
            v.unknown_paths.push_back(pm.path_id());
            continue;
        }
        auto [at, fresh] = cs.paths.try_emplace(pm.path_id(), _config.bandwidth.window);
        path_state& ps = at->second;
        if (fresh) {
            ps.rx_changed_at = now;
        }
        (void)ps.client.add(from_kcp(pm, c.name), now); // differences of the cumulative counters
        ps.client_at = now;
        ps.client_delivery_bps = pm.delivery_rate_bps();
        ps.client_srtt_us = pm.smoothed_rtt_us();
        ++v.paths_taken;
    }
    if (!v.unknown_paths.empty()) {
        _counters.client_unknown_paths += v.unknown_paths.size();
        v.first_unknown = !cs.unknown_logged;
        cs.unknown_logged = true;
    }
    return v;
}

std::vector<path_figures> planning_loop::figures(const desired_connection& c) const {
    std::vector<path_figures> out;
    auto cs = _connections.find(c.name);
    for (const auto& [pid, dp] : c.paths) {
        path_figures f;
        f.path_id = pid;
        f.server_address = local_address_of(dp.tuple);
        f.standby = dp.standby;
        f.capacity_bps = static_cast<double>(dp.max_bandwidth_mbps) * 1e6;
        if (cs != _connections.end()) {
            if (auto p = cs->second.paths.find(pid); p != cs->second.paths.end()) {
                const path_metrics m = metrics_of(cs->second, p->second, p->second.client_at);
                const path_rates& r = p->second.kwikd.rates();
                f.rate_bps = std::max({r.tx_bps, r.rx_bps, static_cast<double>(m.delivery_rate_bps)});
                f.srtt_us = m.smoothed_rtt_us;
                f.loss_rate = m.loss_rate;
                f.down = m.status == path_status::failed || m.status == path_status::removed;
                if (f.capacity_bps == 0) {
                    f.capacity_bps = std::max(r.capacity_bps, capacity_estimate_bps(m));
                }
            }
        }
        if (const path_health* h = _health.path(c.name, pid); h != nullptr && h->state == health_state::down) {
            f.down = true;
        }
        out.push_back(std::move(f));
    }
    return out;
}

server_availability planning_loop::standby_candidates(const desired_connection& c) const {
    server_availability a;
    double counted_bps = 0;
    std::size_t counted = 0;
    const auto all = figures(c);
    for (const path_figures& f : all) {
        if (!f.standby && !f.down && f.capacity_bps > 0) {
            counted_bps += f.capacity_bps;
            ++counted;
        }
    }
    for (const path_figures& f : all) {
        if (!f.standby || f.down) {
            continue;
        }
        server_candidate s;
        s.server_id = standby_server(f.path_id);
        s.address = f.server_address;
        double bps = f.capacity_bps;
        if (bps <= 0) {
            bps = counted > 0 ? counted_bps / static_cast<double>(counted) : static_cast<double>(_config.default_path_mbps) * 1e6;
        }
        s.available_bps = static_cast<std::uint64_t>(bps);
        s.path_bps = s.available_bps;
        s.latency_us = static_cast<std::uint32_t>(f.srtt_us);
        a.servers.push_back(std::move(s));
    }
    return a;
}

void planning_loop::ensure_observed(const desired_connection& c, time_us now) {
    if (_bandwidth.predictor(c.name) != nullptr) {
        if (!c.paths.empty()) {
            // Paths added since the last pass are not the manager's yet: a plan's new ids must
            // not be theirs.
            _bandwidth.reserve_path_ids(c.name, c.paths.rbegin()->first);
        }
        return;
    }
    std::vector<path_metrics> paths;
    for (const auto& [pid, dp] : c.paths) {
        path_metrics m;
        m.connection_id = c.name;
        m.path_id = pid;
        m.server_id = _server_id;
        m.server_address = local_address_of(dp.tuple);
        m.capacity_bps = std::uint64_t{dp.max_bandwidth_mbps} * 1'000'000;
        m.standby = dp.standby;
        m.weight = dp.weight;
        if (const path_health* h = _health.path(c.name, pid); h != nullptr && h->state == health_state::down) {
            m.status = path_status::failed;
        }
        paths.push_back(std::move(m));
    }
    _bandwidth.observe(c.name, paths, now);
}

void planning_loop::forget_connection(const std::string& name) {
    auto it = _connections.find(name);
    if (it != _connections.end()) {
        for (const auto& [pid, ps] : it->second.paths) {
            _health.unwatch_path(name, pid);
        }
        _connections.erase(it);
    }
    _bandwidth.forget_connection(name);
    _planner.forget_connection(name);
}

// ---------------------------------------------------------------------------------------------
// control_server's side: when to run a pass, and applying what it decided

void control_server::run_planning(kcp::clock_sample now) {
    if (!_planning.due(now.steady)) {
        return;
    }
    apply(_planning.step(_link.connections(), _link.read_counters(), wall_clock_us(), now.steady), now);
    std::erase_if(_qos, [this](const auto& q) { return _link.find(q.first) == nullptr; }); // closed connections
}

// With the planning loop on, kwikd's path events go through the health monitor, which says what
// to push (one source of PathStatusUpdates); without it they are pushed as they come.
void control_server::on_kwikd_path_up(const api::path_up_body& b) {
    const desired_connection* c = _link.find(b.connection_id);
    if (!_planning.config().enabled || c == nullptr) {
        push_path_status(b.connection_id, b.path_id, v3::PathStatusUpdate::UP, "");
        return;
    }
    apply(_planning.on_path_up(*c, b.path_id, wall_clock_us()), kcp::clock_sample::now());
}

void control_server::on_kwikd_path_down(const api::path_down_body& b) {
    const desired_connection* c = _link.find(b.connection_id);
    if (!_planning.config().enabled || c == nullptr) {
        push_path_status(b.connection_id, b.path_id,
                         b.kind == api::path_down_kind::down ? v3::PathStatusUpdate::DEGRADED
                                                             : v3::PathStatusUpdate::DOWN,
                         std::string(api::get_text(b.reason)));
        return;
    }
    apply(_planning.on_path_down(*c, b, wall_clock_us()), kcp::clock_sample::now());
}

bool control_server::push(std::uint64_t kwikd_connection, kcp::KCPMessage m, kcp::clock_sample now) {
    session* s = session_of_connection(kwikd_connection);
    if (s == nullptr || s->ch.closed() || !s->hello.accepted()) {
        return false;
    }
    m.mutable_header()->set_priority(v3::HIGH);
    reply(*s, std::move(m), now);
    return true;
}

void control_server::apply(planning_output out, kcp::clock_sample now) {
    // Roles first: the pushes below describe the state these commands make.
    for (auto& r : out.roles) {
        const std::uint64_t conn = r.connection;
        auto done = [this, conn](const api::event& e) {
            if (e.command_result.status != api::result_status::ok) {
                ++_counters.role_changes_failed;
                log_line(log_level::warning, "connection " + std::to_string(conn) +
                                                 ": kwikd refused new path weights: " + kwikd_error(e));
            }
        };
        if (auto result = _link.set_roles(conn, r.changes, done); !result) {
            ++_counters.role_changes_failed;
            log_line(log_level::warning,
                     "connection " + std::to_string(conn) + ": path weights not sent: " + result.message());
        }
    }
    for (auto& u : out.updates) {
        kcp::KCPMessage m;
        *m.mutable_path_status() = std::move(u.update);
        if (push(u.connection, std::move(m), now)) {
            ++_counters.path_updates_pushed;
        }
    }
    for (auto& p : out.plans) {
        kcp::KCPMessage lb;
        *lb.mutable_load_balancing() = std::move(p.plan.update);
        kcp::KCPMessage plan;
        *plan.mutable_traffic_plan() = std::move(p.plan.plan);
        if (push(p.connection, std::move(lb), now) && push(p.connection, std::move(plan), now)) {
            ++_counters.plans_pushed;
        }
    }
}

} // namespace kwik::cp
