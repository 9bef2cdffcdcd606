// The scaling decision flow of docs/CONTROL_PLANE.md section 2. One owner thread.
#include "controlplane/server/planning/bandwidth_manager.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <utility>

namespace kwik::cp {

namespace {

using request = kcp::v3::BandwidthScalingRequest;
using response = kcp::v3::BandwidthScalingResponse;

std::string format(const char* fmt, double v) {
    char buf[64];
    std::snprintf(buf, sizeof buf, fmt, v);
    return buf;
}

std::string mbps(double bps) {
    return format("%.1f Mbit/s", bps / 1e6);
}

std::string percent(double p) {
    return std::isinf(p) ? std::string("unbounded (no usable capacity)") : format("%.0f%%", p);
}

std::string paths_word(std::size_t n) {
    return std::to_string(n) + (n == 1 ? " path" : " paths");
}

double utilisation_percent(double demand, double capacity) {
    if (capacity > 0) {
        return 100.0 * demand / capacity;
    }
    return demand > 0 ? std::numeric_limits<double>::infinity() : 0.0;
}

std::uint32_t to_mbps(double bps) {
    const double m = std::floor(bps / 1e6);
    return m >= 4294967295.0 ? 4294967295u : static_cast<std::uint32_t>(std::max(m, 0.0));
}

// One counted (open, non-standby) path during planning.
struct entry {
    std::uint64_t id = 0;
    std::string server_id;
    double capacity = 0; // what it carries when usable
    double cost = 1.0;   // its server's cost_per_gbps
    double srtt_us = 0;
    bool failed = false;
    bool degraded = false;
    bool removed = false;

    double usable() const { return failed ? 0.0 : capacity; }
};

// What one new path on `s` may carry when `left` of its spare remains.
double path_capacity(const server_candidate& s, double left) {
    return s.path_bps > 0 ? std::min(static_cast<double>(s.path_bps), left) : left;
}

// The plan being built: the counted paths, what is added and removed, and the servers' spare.
struct plan {
    std::vector<entry> paths;
    std::vector<planned_path> added;
    std::vector<std::uint64_t> removed;
    std::map<std::string, double, std::less<>> spare;  // server -> bit/s left to place paths
    std::map<std::string, int, std::less<>> on_server; // server -> this connection's paths
    double capacity = 0;
    std::size_t count = 0;
    std::uint64_t next_id = 0;
    bool out_of_servers = false; // an add found no server with spare capacity

    void remove(entry& e) {
        e.removed = true;
        capacity -= e.usable();
        --count;
        --on_server[e.server_id];
        removed.push_back(e.id);
    }

    // Calculate optimal paths: the server for one more path is the healthy one with spare
    // capacity, not excluded, that holds the fewest of this connection's paths (spread), then
    // the lowest latency, the lowest cost, the most spare, the smallest id.
    bool add(const server_availability& servers, const std::set<std::string, std::less<>>& excluded,
             std::uint64_t replaces) {
        const server_candidate* best = nullptr;
        auto better = [&](const server_candidate& a, const server_candidate& b) {
            const int pa = on_server[a.server_id];
            const int pb = on_server[b.server_id];
            if (pa != pb) {
                return pa < pb;
            }
            if (a.latency_us != b.latency_us) {
                return a.latency_us < b.latency_us;
            }
            if (a.cost_per_gbps != b.cost_per_gbps) {
                return a.cost_per_gbps < b.cost_per_gbps;
            }
            if (spare[a.server_id] != spare[b.server_id]) {
                return spare[a.server_id] > spare[b.server_id];
            }
            return a.server_id < b.server_id;
        };
        for (const server_candidate& s : servers.servers) {
            if (!s.healthy || excluded.contains(s.server_id) || spare[s.server_id] < 1.0) {
                continue;
            }
            if (best == nullptr || better(s, *best)) {
                best = &s;
            }
        }
        if (best == nullptr) {
            out_of_servers = true;
            return false;
        }
        add_on(*best, path_capacity(*best, spare[best->server_id]), replaces);
        return true;
    }

    // One new path on `s` carrying `cap`, taken from its spare.
    void add_on(const server_candidate& s, double cap, std::uint64_t replaces) {
        spare[s.server_id] -= cap;
        planned_path p;
        p.path_id = next_id++;
        p.server_id = s.server_id;
        p.server_address = s.address;
        p.capacity_bps = static_cast<std::uint64_t>(cap);
        p.replaces_path_id = replaces;
        added.push_back(std::move(p));
        capacity += cap;
        ++count;
        ++on_server[s.server_id];
    }

    // Scale-down order: failed paths first (they carry nothing), then the dearest server, the
    // longest RTT, the newest id.
    std::vector<entry*> removal_order() {
        std::vector<entry*> out;
        for (entry& e : paths) {
            if (!e.removed) {
                out.push_back(&e);
            }
        }
        std::sort(out.begin(), out.end(), [](const entry* a, const entry* b) {
            if (a->failed != b->failed) {
                return a->failed;
            }
            if (a->cost != b->cost) {
                return a->cost > b->cost;
            }
            if (a->srtt_us != b->srtt_us) {
                return a->srtt_us > b->srtt_us;
            }
            return a->id > b->id;
        });
        return out;
    }
};

// COST_OPTIMIZATION: the cheapest set of paths (existing or new) that still covers `need`.
// Options in order of cost per Gbit/s (an existing path first on a tie, so nothing moves for
// nothing) are taken until capacity >= need and min_paths are reached, within max_paths. The
// set replaces the paths in `pl` only if it covers the need and costs less (cost: the sum of
// cost_per_gbps x Gbit/s). True if `pl` changed; `what` says what was found either way.
bool plan_cheapest(plan& pl, const server_availability& servers, const scaling_policy& policy, double need,
                   std::string& what) {
    struct option {
        entry* existing = nullptr;
        const server_candidate* server = nullptr;
        double capacity = 0;
        double cost = 0;
    };
    std::vector<option> options;
    for (entry& e : pl.paths) {
        if (!e.failed) {
            options.push_back({&e, nullptr, e.capacity, e.cost});
        }
    }
    const std::size_t existing = options.size();
    for (const server_candidate& s : servers.servers) {
        double left = pl.spare[s.server_id];
        for (std::uint32_t k = 0; k < policy.max_paths && left >= 1.0; ++k) {
            const double cap = path_capacity(s, left);
            options.push_back({nullptr, &s, cap, s.cost_per_gbps});
            left -= cap;
        }
    }
    std::stable_sort(options.begin(), options.end(), [](const option& x, const option& y) {
        if (x.cost != y.cost) {
            return x.cost < y.cost;
        }
        return (x.existing != nullptr) > (y.existing != nullptr);
    });
    std::vector<const option*> chosen;
    double chosen_capacity = 0;
    double new_cost = 0;
    std::size_t kept = 0;
    for (const option& o : options) {
        if ((chosen_capacity >= need && chosen.size() >= policy.min_paths) || chosen.size() >= policy.max_paths) {
            break;
        }
        chosen.push_back(&o);
        chosen_capacity += o.capacity;
        new_cost += o.capacity * o.cost;
        kept += o.existing != nullptr ? 1 : 0;
    }
    double old_cost = 0;
    for (const entry& e : pl.paths) {
        old_cost += e.usable() * e.cost;
    }
    if (chosen_capacity < need) {
        what = "no set of paths covers the demand more cheaply";
        return false;
    }
    if ((kept == chosen.size() && kept == existing) || new_cost >= old_cost) {
        what = "the paths are already the cheapest that cover the demand";
        return false;
    }
    std::set<const entry*> keep;
    for (const option* o : chosen) {
        if (o->existing != nullptr) {
            keep.insert(o->existing);
        }
    }
    std::vector<std::uint64_t> dropped;
    for (entry& e : pl.paths) {
        if (!e.failed && !keep.contains(&e)) {
            dropped.push_back(e.id);
            pl.remove(e);
        }
    }
    std::size_t next_dropped = 0;
    for (const option* o : chosen) {
        if (o->existing == nullptr) {
            pl.add_on(*o->server, o->capacity, next_dropped < dropped.size() ? dropped[next_dropped++] : 0);
        }
    }
    what = "cost " + format("%.3f", old_cost / 1e9) + " -> " + format("%.3f", new_cost / 1e9) +
           " (cost_per_gbps x Gbit/s)";
    return true;
}

} // namespace

// ---- demand_predictor -------------------------------------------------------------------------

demand_predictor::demand_predictor(double level_gain, double trend_gain) noexcept
    : _level_gain(level_gain), _trend_gain(trend_gain) {}

void demand_predictor::add(double value, time_us t) noexcept {
    if (_samples == 0) {
        _level = value;
        _trend = 0;
        _last = t;
        _samples = 1;
        return;
    }
    if (t <= _last) {
        return;
    }
    const double dt = static_cast<double>(t - _last) / 1e6;
    if (_samples == 1) {
        _trend = (value - _level) / dt;
        _level = value;
    } else {
        const double previous = _level;
        _level = _level_gain * value + (1.0 - _level_gain) * (_level + _trend * dt);
        _trend = _trend_gain * (_level - previous) / dt + (1.0 - _trend_gain) * _trend;
    }
    _last = t;
    ++_samples;
}

double demand_predictor::predict(double horizon_s) const noexcept {
    return std::max(0.0, _level + _trend * horizon_s);
}

// ---- policy -----------------------------------------------------------------------------------

scaling_policy from_kcp(const request::ScalingPolicy& in) noexcept {
    scaling_policy p;
    p.scale_up_threshold_percent = in.scale_up_threshold_percent();
    p.scale_down_threshold_percent = in.scale_down_threshold_percent();
    p.min_paths = in.min_paths();
    p.max_paths = in.max_paths();
    p.cooldown_seconds = in.cooldown_seconds();
    p.aggressive_scaling = in.aggressive_scaling();
    return p;
}

std::string check_policy(const scaling_policy& p) {
    if (p.scale_up_threshold_percent == 0 || p.scale_up_threshold_percent > 100) {
        return "policy.scale_up_threshold_percent: " + std::to_string(p.scale_up_threshold_percent) +
               " is not 1..100";
    }
    if (p.scale_down_threshold_percent == 0 || p.scale_down_threshold_percent >= p.scale_up_threshold_percent) {
        return "policy.scale_down_threshold_percent: " + std::to_string(p.scale_down_threshold_percent) +
               " is not 1..scale_up_threshold_percent - 1 (" +
               std::to_string(p.scale_up_threshold_percent) + " - 1)";
    }
    if (p.min_paths == 0) {
        return "policy.min_paths: 0; a connection needs at least 1 path";
    }
    if (p.max_paths < p.min_paths) {
        return "policy.max_paths: " + std::to_string(p.max_paths) + " is below min_paths (" +
               std::to_string(p.min_paths) + ")";
    }
    return {};
}

// ---- bandwidth_manager ------------------------------------------------------------------------

bandwidth_manager::bandwidth_manager(const bandwidth_manager_config& config) : _config(config) {}

bandwidth_manager::connection_state& bandwidth_manager::state_of(std::string_view connection_id) {
    auto it = _connections.find(connection_id);
    if (it == _connections.end()) {
        it = _connections
                 .emplace(std::string(connection_id),
                          connection_state{demand_predictor(_config.level_gain, _config.trend_gain), {}, {}, 0,
                                           false, 0})
                 .first;
    }
    return it->second;
}

void bandwidth_manager::observe(std::string_view connection_id, std::span<const path_metrics> paths, time_us now) {
    connection_state& st = state_of(connection_id);
    std::set<std::uint64_t> seen;
    double tx = 0;
    double rx = 0;
    bool any = false;
    for (const path_metrics& p : paths) {
        if (p.path_id == 0 || st.retired.contains(p.path_id) || p.status == path_status::removed) {
            continue;
        }
        seen.insert(p.path_id);
        st.max_path_id = std::max(st.max_path_id, p.path_id);
        auto it = st.paths.find(p.path_id);
        if (it == st.paths.end()) {
            it = st.paths.emplace(p.path_id, tracked_path{p, metrics_window(_config.window), false, 0}).first;
        }
        tracked_path& t = it->second;
        t.latest = p;
        if (t.latest.capacity_bps == 0) {
            t.latest.capacity_bps = t.provisioned_bps;
        }
        t.planned = false;
        if (t.window.add(t.latest, now)) {
            tx += t.window.rates().last_tx_bps;
            rx += t.window.rates().last_rx_bps;
            any = true;
        }
    }
    for (auto it = st.paths.begin(); it != st.paths.end();) {
        if (!seen.contains(it->first) && !it->second.planned) {
            st.retired.insert(it->first);
            it = st.paths.erase(it);
        } else {
            ++it;
        }
    }
    if (any) {
        st.predictor.add(std::max(tx, rx), now);
    }
}

std::uint64_t bandwidth_manager::allocate_path_id(std::string_view connection_id) {
    connection_state& st = state_of(connection_id);
    return ++st.max_path_id;
}

void bandwidth_manager::reserve_path_ids(std::string_view connection_id, std::uint64_t highest) {
    connection_state& st = state_of(connection_id);
    st.max_path_id = std::max(st.max_path_id, highest);
}

void bandwidth_manager::forget_path(std::string_view connection_id, std::uint64_t path_id) {
    auto it = _connections.find(connection_id);
    if (it == _connections.end()) {
        return;
    }
    if (it->second.paths.erase(path_id) > 0) {
        it->second.retired.insert(path_id);
    }
}

void bandwidth_manager::activate_instead(std::string_view connection_id, std::uint64_t planned_id,
                                         std::uint64_t path_id) {
    auto c = _connections.find(connection_id);
    if (c == _connections.end()) {
        return;
    }
    connection_state& st = c->second;
    std::uint64_t provisioned = 0;
    auto planned = st.paths.find(planned_id);
    if (planned_id == path_id || planned == st.paths.end() || !planned->second.planned) {
        return; // the same path (or no such plan): nothing to move
    }
    provisioned = planned->second.provisioned_bps;
    auto it = st.paths.find(path_id);
    if (it == st.paths.end()) {
        // Not reported yet: the planned entry stands for it until a report shows it.
        auto node = st.paths.extract(planned);
        node.key() = path_id;
        node.mapped().latest.path_id = path_id;
        st.paths.insert(std::move(node));
        st.retired.insert(planned_id);
        st.retired.erase(path_id);
        st.max_path_id = std::max(st.max_path_id, path_id);
        return;
    }
    st.paths.erase(planned);
    st.retired.insert(planned_id);
    it->second.latest.standby = false;
    if (it->second.latest.capacity_bps == 0) {
        it->second.latest.capacity_bps = provisioned;
    }
    if (it->second.provisioned_bps == 0) {
        it->second.provisioned_bps = provisioned;
    }
}

void bandwidth_manager::keep_as_standby(std::string_view connection_id, std::uint64_t path_id) {
    auto c = _connections.find(connection_id);
    if (c != _connections.end()) {
        c->second.retired.erase(path_id);
    }
}

void bandwidth_manager::forget_connection(std::string_view connection_id) {
    auto it = _connections.find(connection_id);
    if (it != _connections.end()) {
        _connections.erase(it);
    }
}

const demand_predictor* bandwidth_manager::predictor(std::string_view connection_id) const {
    auto it = _connections.find(connection_id);
    return it == _connections.end() ? nullptr : &it->second.predictor;
}

scaling_decision bandwidth_manager::decide(const request& req, const server_availability& servers, time_us now,
                                           std::uint64_t in_reply_to) {
    scaling_decision d;
    response& r = d.response;
    r.set_in_reply_to(in_reply_to);
    r.set_connection_id(req.connection_id());
    auto reject = [&](std::string reason) {
        r.set_decision(response::REJECTED);
        r.set_reason(std::move(reason));
        return d;
    };

    if (req.connection_id().empty()) {
        return reject("connection_id is empty");
    }
    if (!request::ScalingTrigger_IsValid(req.trigger())) {
        return reject("trigger " + std::to_string(static_cast<int>(req.trigger())) + " is not a ScalingTrigger");
    }
    const request::ScalingTrigger trigger = req.trigger();
    const std::string trigger_name = request::ScalingTrigger_Name(trigger);
    const scaling_policy policy = req.has_policy() ? from_kcp(req.policy()) : _config.default_policy;
    if (std::string problem = check_policy(policy); !problem.empty()) {
        return reject(std::move(problem));
    }
    auto found = _connections.find(req.connection_id());
    if (found == _connections.end()) {
        return reject("connection '" + req.connection_id() + "' is unknown: no metrics observed for it yet");
    }
    connection_state& st = found->second;

    // Cooldown: whole seconds left, rounded up, since the last granted change.
    std::uint32_t cooldown_left = 0;
    if (st.scaled) {
        const time_us end = st.last_change + time_us{policy.cooldown_seconds} * us_per_s;
        if (now < end) {
            cooldown_left = static_cast<std::uint32_t>((end - now + us_per_s - 1) / us_per_s);
        }
    }
    r.set_cooldown_remaining_seconds(cooldown_left);

    // Monitor traffic + analyse utilisation: the counted paths (open, not standby) and their
    // usable capacity; failed ones (or on a failed server) count with none.
    plan pl;
    pl.next_id = st.max_path_id + 1;
    for (const server_candidate& s : servers.servers) {
        pl.spare[s.server_id] = s.healthy ? static_cast<double>(s.available_bps) : 0.0;
    }
    for (auto& [id, t] : st.paths) {
        if (t.latest.standby) {
            continue;
        }
        entry e;
        e.id = id;
        e.server_id = t.latest.server_id;
        e.capacity = t.planned ? static_cast<double>(t.provisioned_bps) : t.window.rates().capacity_bps;
        e.srtt_us = t.latest.smoothed_rtt_us;
        const server_candidate* server = servers.find(e.server_id);
        e.cost = server != nullptr ? server->cost_per_gbps : 1.0;
        e.failed = t.latest.status == path_status::failed || (server != nullptr && !server->healthy);
        const double min_rtt = t.latest.min_rtt_us;
        e.degraded = t.latest.status == path_status::suspect ||
                     (t.window.primed() && t.window.rates().loss_rate >= _config.degraded_loss) ||
                     (min_rtt > 0 && e.srtt_us >= _config.degraded_rtt_ratio * min_rtt);
        pl.capacity += e.usable();
        ++pl.count;
        ++pl.on_server[e.server_id];
        pl.paths.push_back(std::move(e));
    }
    const double capacity_before = pl.capacity;
    const std::size_t count_before = pl.count;

    // Predict demand: Holt's forecast over the horizon, or the request's own figures.
    scaling_analysis& a = d.analysis;
    const bool measured = st.predictor.samples() > 0;
    a.demand_bps = measured ? st.predictor.level() : 1e6 * req.current_bandwidth_mbps();
    a.predicted_demand_bps = measured ? st.predictor.predict(_config.horizon_s) : a.demand_bps;
    const bool has_target = req.target_bandwidth_mbps() > 0;
    if (trigger == request::MANUAL && !has_target) {
        return reject("MANUAL needs target_bandwidth_mbps");
    }
    // The requester's own figure takes precedence over the forecast where it names the demand.
    const bool requested = has_target && (trigger == request::MANUAL || trigger == request::DEMAND_INCREASE ||
                                          trigger == request::DEMAND_DECREASE);
    if (requested) {
        a.predicted_demand_bps = 1e6 * req.target_bandwidth_mbps();
    }
    const double demand = a.predicted_demand_bps;
    a.capacity_bps = capacity_before;
    a.utilisation_percent = utilisation_percent(demand, capacity_before);
    const double up = policy.scale_up_threshold_percent;
    const double down = policy.scale_down_threshold_percent;
    const double mid = (up + down) / 2.0;
    // The utilisation a plan sizes capacity for: halfway between the thresholds, a quarter of
    // the way above the scale-down threshold when aggressive (more headroom), 100% for MANUAL
    // (the operator's figure is the capacity wanted).
    const double target = trigger == request::MANUAL ? 100.0
                          : policy.aggressive_scaling ? down + (up - down) / 4.0
                                                      : mid;
    const double need = demand * 100.0 / target;
    const double u = a.utilisation_percent;

    std::string what; // the analysis, for the reason
    bool want_up = false;
    bool want_down = false;
    bool discretionary = false; // a change beyond restoring min_paths / max_paths
    bool limited_by_max = false;
    bool limited_by_min = false;
    bool unplaceable = false; // paths to replace, but no server takes a replacement
    std::string replace_what;
    std::set<std::string, std::less<>> excluded;

    auto grow_to_need = [&] {
        while (pl.capacity < need) {
            if (pl.count >= policy.max_paths) {
                limited_by_max = true;
                return;
            }
            if (!pl.add(servers, excluded, 0)) {
                return;
            }
        }
    };
    auto replace = [&](auto&& pick, const char* kind) {
        std::vector<entry*> victims;
        for (entry& e : pl.paths) {
            if (pick(e)) {
                victims.push_back(&e);
                excluded.insert(e.server_id);
            }
        }
        if (victims.empty()) {
            return false;
        }
        for (entry* e : victims) {
            pl.remove(*e);
        }
        std::size_t replaced = 0;
        for (entry* e : victims) {
            if (pl.count >= policy.max_paths) {
                limited_by_max = true;
                break;
            }
            if (!pl.add(servers, excluded, e->id)) {
                break;
            }
            ++replaced;
        }
        replace_what = std::to_string(victims.size()) + " " + kind + (victims.size() == 1 ? " path" : " paths");
        what = replace_what + " replaced by " + std::to_string(replaced);
        discretionary = true;
        unplaceable = replaced == 0;
        return true;
    };
    auto scale_up_if_needed = [&] {
        const double now_u = utilisation_percent(demand, pl.capacity);
        if (now_u >= up) {
            want_up = true;
            discretionary = true;
            grow_to_need();
        }
    };
    // Removes paths in removal order while the rest still covers the need: one per decision,
    // as many as that allows when aggressive or MANUAL.
    auto scale_down = [&] {
        const std::size_t limit =
            policy.aggressive_scaling || trigger == request::MANUAL ? std::numeric_limits<std::size_t>::max() : 1;
        std::size_t n = 0;
        for (entry* e : pl.removal_order()) {
            if (n >= limit) {
                break;
            }
            if (pl.count <= policy.min_paths) {
                limited_by_min = true;
                break;
            }
            if (pl.capacity - e->usable() >= need) {
                pl.remove(*e);
                discretionary = true;
                ++n;
            }
        }
    };

    const std::string situation = (requested ? "requested bandwidth " : "predicted demand ") + mbps(demand) +
                                  " is " + percent(u) + " of " + mbps(capacity_before) + " over " +
                                  paths_word(count_before);
    bool cost_plan = false;
    switch (trigger) {
    case request::SERVER_FAILURE:
        if (!replace([](const entry& e) { return e.failed; }, "failed")) {
            what = "no path of the connection is failed or on a failed server";
            break;
        }
        scale_up_if_needed();
        break;
    case request::PERFORMANCE_DEGRADATION:
        if (!replace([](const entry& e) { return e.failed || e.degraded; }, "degraded or failed")) {
            what = "no path is degraded or failed";
        }
        scale_up_if_needed();
        break;
    case request::DEMAND_INCREASE:
        scale_up_if_needed();
        break;
    case request::DEMAND_DECREASE:
        if (u <= down) {
            want_down = true;
            scale_down();
        }
        break;
    case request::MANUAL:
        if (pl.capacity < need) {
            want_up = true;
            discretionary = true;
            grow_to_need();
        } else {
            want_down = true;
            scale_down();
        }
        break;
    case request::COST_OPTIMIZATION:
        cost_plan = true;
        if (plan_cheapest(pl, servers, policy, need, what)) {
            discretionary = true;
        }
        break;
    default:
        break;
    }

    // Apply policy bounds: min_paths and max_paths hold whatever the trigger.
    std::string bounds;
    if (pl.count < policy.min_paths) {
        std::size_t n = 0;
        while (pl.count < policy.min_paths && pl.add(servers, excluded, 0)) {
            ++n;
        }
        if (n > 0) {
            bounds = "; " + paths_word(n) + " added for min_paths (" + std::to_string(policy.min_paths) + ")";
        }
    }
    if (pl.count > policy.max_paths) {
        std::size_t n = 0;
        for (entry* e : pl.removal_order()) {
            if (pl.count <= policy.max_paths) {
                break;
            }
            pl.remove(*e);
            ++n;
        }
        bounds = "; " + paths_word(n) + " removed for max_paths (" + std::to_string(policy.max_paths) + ")";
    }

    // Replacing a failed or degraded path with nothing is no plan: it may still recover, and the
    // health monitor has already moved its traffic.
    if (unplaceable) {
        r.set_old_path_count(static_cast<std::uint32_t>(count_before));
        r.set_new_path_count(static_cast<std::uint32_t>(count_before));
        r.set_target_bandwidth_mbps(to_mbps(capacity_before));
        return reject(trigger_name + ": no healthy server has capacity to replace " + replace_what);
    }

    a.planned_capacity_bps = pl.capacity;
    a.planned_utilisation_percent = utilisation_percent(demand, pl.capacity);
    r.set_old_path_count(static_cast<std::uint32_t>(count_before));
    const std::string head = trigger_name + ": " + situation;

    if (pl.added.empty() && pl.removed.empty()) {
        r.set_new_path_count(static_cast<std::uint32_t>(count_before));
        r.set_target_bandwidth_mbps(to_mbps(capacity_before));
        if (want_up) {
            r.set_decision(response::REJECTED);
            r.set_reason(head + " (scale up at " + percent(up) + "), but " +
                         (limited_by_max ? "the connection is at max_paths (" + std::to_string(policy.max_paths) + ")"
                                         : std::string("no server has capacity for another path")));
        } else if (want_down && limited_by_min) {
            r.set_decision(response::REJECTED);
            r.set_reason(head + " (scale down at " + percent(down) + "), but the connection is at min_paths (" +
                         std::to_string(policy.min_paths) + ")");
        } else if (pl.count < policy.min_paths) {
            r.set_decision(response::REJECTED);
            r.set_reason(head + "; below min_paths (" + std::to_string(policy.min_paths) +
                         ") and no server has capacity for another path");
        } else if (cost_plan || trigger == request::SERVER_FAILURE || !what.empty()) {
            r.set_decision(response::NO_CHANGE);
            r.set_reason(head + "; " + (what.empty() ? "nothing to change" : what));
        } else if (want_down) {
            r.set_decision(response::NO_CHANGE);
            r.set_reason(head + " (scale down at " + percent(down) + "), but removing any path would leave " +
                         "utilisation above " + percent(target));
        } else {
            r.set_decision(response::NO_CHANGE);
            r.set_reason(head + ", within the thresholds (" + percent(down) + " to " + percent(up) + ")");
        }
        return d;
    }

    // Cooldown: a discretionary change waits; replacing failed paths and restoring min_paths /
    // max_paths do not.
    const bool exempt = trigger == request::SERVER_FAILURE || !discretionary;
    const std::string change = paths_word(pl.added.size()) + " added, " + paths_word(pl.removed.size()) + " removed";
    if (cooldown_left > 0 && !exempt) {
        r.set_decision(response::REJECTED);
        r.set_new_path_count(static_cast<std::uint32_t>(count_before));
        r.set_target_bandwidth_mbps(to_mbps(capacity_before));
        r.set_reason(head + "; cooldown: " + std::to_string(cooldown_left) + " s of " +
                     std::to_string(policy.cooldown_seconds) + " s left (the plan was: " + change + ")");
        return d;
    }

    // Decision: by the path count; for the same count, by the capacity, and for the same capacity
    // SCALE_UP for a repair (failed or degraded paths replaced), SCALE_DOWN for a cost cut.
    const bool grew = pl.count > count_before ||
                      (pl.count == count_before &&
                       (pl.capacity > capacity_before ||
                        (pl.capacity == capacity_before && trigger != request::COST_OPTIMIZATION)));
    r.set_decision(grew ? response::SCALE_UP : response::SCALE_DOWN);
    r.set_new_path_count(static_cast<std::uint32_t>(pl.count));
    r.set_target_bandwidth_mbps(to_mbps(pl.capacity));
    std::string reason = head;
    if (!what.empty()) {
        reason += "; " + what;
    }
    reason += bounds + "; " + change + ", planned utilisation " + percent(a.planned_utilisation_percent);
    if (limited_by_max) {
        reason += "; limited by max_paths (" + std::to_string(policy.max_paths) + ")";
    } else if (pl.out_of_servers && want_up) {
        reason += "; limited by server capacity";
    }
    if (limited_by_min && want_down && !grew) {
        reason += "; limited by min_paths (" + std::to_string(policy.min_paths) + ")";
    }
    r.set_reason(std::move(reason));
    for (const planned_path& p : pl.added) {
        r.add_paths_added(p.path_id);
    }
    for (std::uint64_t id : pl.removed) {
        r.add_paths_removed(id);
    }
    r.set_cooldown_remaining_seconds(policy.cooldown_seconds);

    // Commit: planned paths count from now on, removed ones are retired.
    for (std::uint64_t id : pl.removed) {
        st.paths.erase(id);
        st.retired.insert(id);
    }
    for (const planned_path& p : pl.added) {
        path_metrics m;
        m.connection_id = req.connection_id();
        m.path_id = p.path_id;
        m.server_id = p.server_id;
        m.server_address = p.server_address;
        m.capacity_bps = p.capacity_bps;
        st.paths.emplace(p.path_id, tracked_path{std::move(m), metrics_window(_config.window), true, p.capacity_bps});
        st.max_path_id = std::max(st.max_path_id, p.path_id);
    }
    st.scaled = true;
    st.last_change = now;
    d.added = std::move(pl.added);
    return d;
}

} // namespace kwik::cp
