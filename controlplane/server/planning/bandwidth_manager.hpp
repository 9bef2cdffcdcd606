// The seed's Bandwidth Manager: decides, per BandwidthScalingRequest, whether a connection gets
// more paths, fewer, other ones, or none (monitor traffic -> analyse utilisation -> predict
// demand -> check server availability -> calculate optimal paths -> generate plan -> apply
// policy -> decision). Pure logic: the caller feeds metrics and server availability, passes the
// time, and turns the decision into AddPathCommand / RemovePathCommand. docs/CONTROL_PLANE.md
// section 2 has the whole flow. One owner thread (kwik-cp's planning loop).
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "controlplane/server/planning/path_metrics.hpp"

namespace kwik::cp {

// Holt's linear method (double exponential smoothing) for samples at irregular times; the
// trend is kept per second, so a constant sampling interval gives exactly the textbook method.
// For a sample y at time t, dt seconds after the previous one:
//   level  L_t = a * y + (1 - a) * (L_prev + B_prev * dt)
//   trend  B_t = b * (L_t - L_prev) / dt + (1 - b) * B_prev
//   forecast(h seconds ahead) = max(0, L_t + B_t * h)
// with a = level_gain, b = trend_gain in (0, 1]. Start: the first sample sets L = y, B = 0; the
// second sets L = y and B = (y - y_first) / dt. So a linear series is forecast exactly from the
// second sample on, and a step is followed by a = the share of the jump taken per sample.
// A sample whose time does not advance is ignored.
class demand_predictor {
public:
    explicit demand_predictor(double level_gain = 0.5, double trend_gain = 0.3) noexcept;

    void add(double value, time_us t) noexcept;
    double predict(double horizon_s) const noexcept;

    double level() const noexcept { return _level; }
    double trend_per_s() const noexcept { return _trend; }
    std::size_t samples() const noexcept { return _samples; }

private:
    double _level_gain;
    double _trend_gain;
    double _level = 0;
    double _trend = 0;
    time_us _last = 0;
    std::size_t _samples = 0;
};

// ScalingPolicy, checked. A request without a policy gets bandwidth_manager_config's.
struct scaling_policy {
    std::uint32_t scale_up_threshold_percent = 80;
    std::uint32_t scale_down_threshold_percent = 30;
    std::uint32_t min_paths = 1;
    std::uint32_t max_paths = 8;
    std::uint32_t cooldown_seconds = 60;
    bool aggressive_scaling = false;
};
scaling_policy from_kcp(const kcp::v3::BandwidthScalingRequest::ScalingPolicy& in) noexcept;
// Empty if usable, else a sentence naming the field: 0 < down < up <= 100, 1 <= min <= max.
std::string check_policy(const scaling_policy& p);

struct bandwidth_manager_config {
    scaling_policy default_policy;
    double level_gain = 0.5;  // Holt's a
    double trend_gain = 0.3;  // Holt's b
    double horizon_s = 10.0;  // how far ahead demand is predicted
    window_config window;     // each path's rates
    // PERFORMANCE_DEGRADATION replaces a path that is suspect, loses at least degraded_loss of
    // its packets (smoothed), or whose smoothed RTT is at least degraded_rtt_ratio x its min RTT.
    double degraded_loss = 0.05;
    double degraded_rtt_ratio = 3.0;
};

// A path the plan opens: the caller allocates nothing, the id is already reserved.
struct planned_path {
    std::uint64_t path_id = 0;
    std::string server_id;
    std::string server_address;
    std::uint64_t capacity_bps = 0;     // what the plan counts on (AddPathCommand.max_bandwidth_mbps)
    std::uint64_t replaces_path_id = 0; // the failed, degraded or dearer path it stands in for; 0: none
};

// What the analysis found; for logs, kwikctl and tests.
struct scaling_analysis {
    double demand_bps = 0;           // Holt's level (or the request's current_bandwidth_mbps)
    double predicted_demand_bps = 0; // the demand the plan is sized for
    double capacity_bps = 0;         // usable capacity of the counted paths before the plan
    double utilisation_percent = 0;  // predicted demand / capacity before the plan
    double planned_capacity_bps = 0; // after the plan
    double planned_utilisation_percent = 0;
};

struct scaling_decision {
    kcp::v3::BandwidthScalingResponse response; // paths_added / paths_removed list the ids below
    std::vector<planned_path> added;        // one AddPathCommand each
    scaling_analysis analysis;
};

// One decision engine for every connection of this kwik-cp.
class bandwidth_manager {
public:
    explicit bandwidth_manager(const bandwidth_manager_config& config = {});

    // Monitor traffic: one report of a connection's open paths at `now` (identity and roles from
    // kwik-cp's path table, counters from PerformanceMetrics or the counters region). A path of an
    // earlier report or plan that is missing now has left the connection; its id stays retired.
    // A report of a retired id is ignored (a removed path's last counters may still come in).
    // The connection's demand sample is max(sum of tx rates, sum of rx rates) over the paths'
    // latest intervals, fed to its demand_predictor.
    void observe(std::string_view connection_id, std::span<const path_metrics> paths, time_us now);

    // The decision for one request, made against the latest observations and `servers`.
    // SCALE_UP / SCALE_DOWN are committed at once: the added paths count (with their planned
    // capacity) until a report shows them, the removed ones are retired, and the cooldown starts.
    // NO_CHANGE and REJECTED change nothing. The response's reason is always set.
    scaling_decision decide(const kcp::v3::BandwidthScalingRequest& request, const server_availability& servers,
                            time_us now, std::uint64_t in_reply_to = 0);

    // A new path id for the connection: one more than any id it ever had (path ids are retired
    // in the data plane, docs/PROTOCOL.md 13.4), reserved at once. For path changes made
    // outside decide(), e.g. a failover path the health monitor asks for.
    std::uint64_t allocate_path_id(std::string_view connection_id);
    // Ids up to `highest` are taken (paths opened since the last observe): allocate_path_id and
    // plans give higher ones.
    void reserve_path_ids(std::string_view connection_id, std::uint64_t highest);
    // A planned path that will not come (its AddPathCommand failed): it stops counting.
    void forget_path(std::string_view connection_id, std::uint64_t path_id);
    // A planned path that opens as another, already reported path: kwik-cp activates a standby
    // path the client announced instead of opening a new one (docs/CONTROL_PLANE.md 5.3).
    // planned_id is retired; path_id counts from now on as a non-standby path, with the planned
    // capacity while its own is unknown (or, when no report showed path_id yet, as the planned
    // path itself until one does).
    void activate_instead(std::string_view connection_id, std::uint64_t planned_id, std::uint64_t path_id);
    // A path the plan removed that stays open as a standby path (kwik-cp puts a client's path
    // back to standby rather than closing it): its id is no longer retired, so its next report
    // counts again (as standby, so not in the capacity).
    void keep_as_standby(std::string_view connection_id, std::uint64_t path_id);
    // The connection is gone: its state (and its id space) goes with it.
    void forget_connection(std::string_view connection_id);

    const demand_predictor* predictor(std::string_view connection_id) const;
    std::size_t connections() const noexcept { return _connections.size(); }
    const bandwidth_manager_config& config() const noexcept { return _config; }

private:
    struct tracked_path {
        path_metrics latest;
        metrics_window window;
        bool planned = false;              // added by a plan, not reported yet
        std::uint64_t provisioned_bps = 0; // the plan's capacity; stands in for a report's 0
    };
    struct connection_state {
        demand_predictor predictor;
        std::map<std::uint64_t, tracked_path> paths; // open paths, by id
        std::set<std::uint64_t> retired;             // ids that left the connection
        std::uint64_t max_path_id = 0;               // highest id ever seen or allocated
        bool scaled = false;                         // a change was granted, at last_change
        time_us last_change = 0;
    };

    connection_state& state_of(std::string_view connection_id);

    bandwidth_manager_config _config;
    std::map<std::string, connection_state, std::less<>> _connections;
};

} // namespace kwik::cp
