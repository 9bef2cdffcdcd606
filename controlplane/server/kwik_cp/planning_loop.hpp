// kwik-cp's planning loop: every interval it reads kwikd's path counters (and the clients'
// PerformanceMetrics), turns them into path_metrics, runs the health monitor (failover and
// recovery), feeds the bandwidth manager and asks the traffic planner for weights. It decides;
// control_server applies what it returns (set_weights through the link, pushes to sessions).
// docs/CONTROL_PLANE.md section 5. One thread: control_server's (run_once); nothing is locked.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "controlplane/server/link/dataplane_link.hpp"
#include "controlplane/server/planning/bandwidth_manager.hpp"
#include "controlplane/server/planning/health_monitor.hpp"
#include "controlplane/server/planning/path_metrics.hpp"
#include "controlplane/server/planning/traffic_planner.hpp"

namespace kwik::cp {

// config.cpp's [planning] section.
struct planning_config {
    bool enabled = true;
    std::chrono::milliseconds interval{1000}; // one pass per interval
    // The planner's weights go to kwikd (and the plan to the session) only when some path's
    // weight moves by more than this, or the set of paths changed.
    float weight_threshold = 0.05f;
    // The capacity a standby path is offered with for scaling when it has no max_bandwidth_mbps
    // and nothing was measured on it, in Mbit/s.
    std::uint32_t default_path_mbps = 100;
    // A client report older than this many intervals no longer counts (delivery rate, loss).
    std::uint32_t client_report_intervals = 3;
    health_config health;              // failover: check interval, failure/recovery thresholds
    bandwidth_manager_config bandwidth; // scaling: default policy, Holt gains
    planner_config planner;            // weights
};

// One path's figures as a TransportResult or kwikctl shows them.
struct path_figures {
    std::uint64_t path_id = 0;
    std::string server_address; // kwikd's side of the path (its local address:port)
    bool standby = false;
    bool down = false;          // the health monitor declared it DOWN (or kwikd failed it)
    double capacity_bps = 0;    // provisioned (max_bandwidth_mbps) or estimated
    double rate_bps = 0;        // smoothed max(tx, rx)
    double srtt_us = 0;
    double loss_rate = 0;
};

// What a pass (or an event) asks control_server to do, per kwikd connection.
struct planning_output {
    struct status_push {
        std::uint64_t connection = 0; // kwikd's id
        kcp::v3::PathStatusUpdate update;
    };
    struct roles_push {
        std::uint64_t connection = 0;
        std::vector<dataplane_link::role_change> changes;
    };
    struct plan_push {
        std::uint64_t connection = 0;
        traffic_plan plan;
    };
    std::vector<status_push> updates;
    std::vector<roles_push> roles;
    std::vector<plan_push> plans;
    bool empty() const noexcept { return updates.empty() && roles.empty() && plans.empty(); }
};

// How a client's PerformanceMetrics was taken.
struct metrics_verdict {
    std::size_t paths_taken = 0;
    std::vector<std::uint64_t> unknown_paths; // reported ids the connection does not have
    bool first_unknown = false;               // the first report with unknown ids on this connection
};

struct planning_counters {
    std::uint64_t passes = 0;
    std::uint64_t health_checks = 0;
    std::uint64_t weight_pushes = 0;
    std::uint64_t plans_pushed = 0;
    std::uint64_t plan_errors = 0;
    std::uint64_t client_reports = 0;
    std::uint64_t client_unknown_paths = 0;
};

class planning_loop {
public:
    // server_id: this kwik-cp's id (the server of every path kwikd holds).
    planning_loop(planning_config config, std::string server_id);

    const planning_config& config() const noexcept { return _config; }
    // When the next pass is due; run_once waits no longer than this.
    std::chrono::steady_clock::time_point next_due() const noexcept { return _next_due; }
    bool due(std::chrono::steady_clock::time_point now) const noexcept { return _config.enabled && now >= _next_due; }

    // One pass over every connection kwik-cp holds: kwikd's counters -> path_metrics -> health
    // monitor (checks answered from the counters) -> bandwidth manager (observe) -> traffic
    // planner -> weights and plans. `totals` empty: kwikd is detached, nothing is decided.
    planning_output step(const std::map<std::uint64_t, desired_connection>& connections,
                         const std::optional<api::counters_totals>& totals, time_us now,
                         std::chrono::steady_clock::time_point steady_now);

    // kwikd's events for a connection's path (down/failed; up). removed ends the watch.
    planning_output on_path_down(const desired_connection& c, const api::path_down_body& b, time_us now);
    planning_output on_path_up(const desired_connection& c, std::uint64_t path_id, time_us now);

    // A client's report: per path, its cumulative counters make intervals (differences) in the
    // path's client window; its gauges are kept. Paths the connection does not have are counted
    // and ignored.
    metrics_verdict on_client_metrics(const desired_connection& c, const kcp::v3::PerformanceMetrics& m, time_us now);

    // The figures of a connection's paths, by id (kwikd's view, merged with the client's).
    std::vector<path_figures> figures(const desired_connection& c) const;
    // Candidates for a scale-up: the connection's standby paths that are not down, one server
    // each ("standby:<path id>"), offering max_bandwidth_mbps, else what was measured, else
    // default_path_mbps.
    server_availability standby_candidates(const desired_connection& c) const;
    static std::string standby_server(std::uint64_t path_id);
    // The path id of a standby_server name; 0 if it is not one.
    static std::uint64_t standby_path_of(std::string_view server_id);

    // Before a scaling decision: a connection no pass has observed yet (just opened) is given
    // to the bandwidth manager as kwik-cp holds it (provisioned capacities, roles, no rates),
    // and the ids of paths added since the last pass are reserved.
    void ensure_observed(const desired_connection& c, time_us now);

    // The connection closed: its state goes (health watches, windows, the manager's ids).
    void forget_connection(const std::string& name);

    bandwidth_manager& bandwidth() noexcept { return _bandwidth; }
    const health_monitor& health() const noexcept { return _health; }
    const planning_counters& counters() const noexcept { return _counters; }

private:
    struct path_state {
        explicit path_state(const window_config& w) : kwikd(w), client(w) {}
        metrics_window kwikd;  // from kwikd's counters
        metrics_window client; // from the client's reports
        path_metrics latest;   // kwikd's counters, identity and roles of the last pass
        bool in_counters = false;
        // the health check's "stops receiving" test
        std::uint64_t rx_at_check = 0;
        time_us rx_changed_at = 0;
        // the client's latest report
        time_us client_at = 0;
        std::uint64_t client_delivery_bps = 0;
        std::uint32_t client_srtt_us = 0;
    };
    struct connection_state {
        std::uint64_t kwikd_id = 0;
        std::map<std::uint64_t, path_state> paths;
        std::map<std::uint64_t, float> pushed; // weights last sent to kwikd
        bool unknown_logged = false;
    };

    path_metrics metrics_of(const connection_state& cs, const path_state& ps, time_us now) const;
    kcp::v3::HealthCheckResponse answer_check(const kcp::v3::HealthCheckRequest& q, time_us now) const;
    void collect(const health_output& h, planning_output& out);
    void plan_connection(const std::string& name, connection_state& cs, time_us now, planning_output& out);

    planning_config _config;
    std::string _server_id;
    health_monitor _health;
    bandwidth_manager _bandwidth;
    traffic_planner _planner;
    std::map<std::string, connection_state, std::less<>> _connections; // by KCP connection id
    std::chrono::steady_clock::time_point _next_due{};
    planning_counters _counters;
};

// The wall clock in microseconds since the Unix epoch (the planning components' time_us).
time_us wall_clock_us() noexcept;

// "addr:port" of kwikd's side of a path (IPv6 in brackets).
std::string local_address_of(const api::five_tuple& t);

} // namespace kwik::cp
