// The seed's Health Monitor: schedules HealthCheckRequests for paths and servers, records the
// answers, declares a path DOWN after failure_threshold failed checks in a row (or at once on
// the data plane's path_down), moves its traffic to a failover target, and brings it back UP
// after recovery_threshold healthy checks, restoring the roles it changed. It says what to send
// (requests, PathStatusUpdates) and what to apply to kwikd (health_action); it sends nothing.
// docs/CONTROL_PLANE.md section 4. Pure logic, time passed in; one owner thread.
#pragma once

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "controlplane/server/planning/path_metrics.hpp"

namespace kwik::cp {

struct health_config {
    time_us check_interval_us = 1 * us_per_s; // one check per target per interval
    time_us check_timeout_us = 1 * us_per_s;  // no answer by then: a failed check
    std::uint32_t failure_threshold = 3;      // N: failed checks in a row before DOWN
    std::uint32_t recovery_threshold = 3;     // M: healthy checks in a row before UP again
    // DEGRADED from metrics: smoothed RTT or loss rate at or past a threshold; cleared when both
    // are below clear_fraction of their thresholds (hysteresis, so a value on the line does not
    // flap).
    std::uint32_t degraded_rtt_us = 200'000;
    float degraded_loss = 0.05f;
    double clear_fraction = 0.8;
};

// What the caller applies to kwikd for a failover or a recovery (kwikd's set_weights, and
// add_path's standby flag re-sent by kwik-cp), or asks the bandwidth manager for (open_path:
// allocate_path_id, then AddPathCommand).
struct health_action {
    enum class kind : std::uint8_t {
        set_weight,  // path_id's weight := weight (0: no new data on it)
        set_standby, // path_id's standby flag := standby
        open_path,   // open a path on server_id for connection_id, standing in for path_id
    };
    kind what = kind::set_weight;
    std::string connection_id;
    std::uint64_t path_id = 0;
    float weight = 0;
    bool standby = false;
    std::string server_id;
    std::string server_address;
};

struct health_output {
    std::vector<kcp::v3::HealthCheckRequest> requests;
    std::vector<kcp::v3::PathStatusUpdate> updates;
    std::vector<health_action> actions;
};

enum class health_state : std::uint8_t { up, degraded, down };
std::string_view to_string(health_state s) noexcept;

// The check bookkeeping of one target (a path or a server).
struct check_record {
    time_us next_due = 0;
    std::uint64_t outstanding = 0; // sequence of the check in flight; 0: none
    time_us sent_at = 0;
    std::uint32_t failures = 0; // failed checks in a row
    std::uint32_t healthy = 0;  // healthy observations in a row (counted while down)
    std::uint32_t last_rtt_us = 0;
    std::uint32_t srtt_us = 0; // 7/8 old + 1/8 new, the first sample as it is
    std::string last_problem;
};

// The roles health actions touch.
struct path_roles {
    bool standby = false;
    float weight = 1;
};

struct path_health {
    path_metrics latest;  // identity, and the metrics PathStatusUpdates quote
    path_roles original;  // as the caller set them: what recovery restores
    path_roles live;      // as this monitor's actions left them
    health_state state = health_state::up;
    bool degraded_by_metrics = false;
    bool degraded_by_check = false;
    bool degraded_by_dataplane = false; // kwikd holds the path suspect (until its path_up)
    check_record check;
    // While down: the path that took over (0: none, or a server was asked for), and the weight
    // it was given for this path.
    std::uint64_t failover_path_id = 0;
    float handed_over = 0;
    std::set<std::uint64_t> covering; // failed paths whose traffic this path carries now
};

struct server_health {
    std::string server_id;
    std::string address;
    health_state state = health_state::up;
    check_record check;
};

struct health_stats {
    std::uint64_t checks_sent = 0;
    std::uint64_t responses = 0;
    std::uint64_t timeouts = 0;
    std::uint64_t unmatched = 0; // unknown or late sequence, or a target that does not match
};

class health_monitor {
public:
    explicit health_monitor(const health_config& config = {});

    // Starts checking a path (the first check is due at `now`), or takes new identity, metrics
    // and roles for a watched one. Roles given while the path or one it covers for is in a
    // failover are not taken: recovery restores the roles from before the failure.
    void watch_path(const path_metrics& path, time_us now);
    void unwatch_path(std::string_view connection_id, std::uint64_t path_id);
    void watch_server(std::string_view server_id, std::string_view address, time_us now);
    void unwatch_server(std::string_view server_id);
    // Servers to open a path on when a connection has no other path to fail over to.
    void set_failover_servers(server_availability servers);

    // Times out checks unanswered for check_timeout_us (each a failed check), then issues the
    // checks that are due (one in flight per target).
    health_output tick(time_us now);
    // An answer: HEALTHY or DEGRADED is a healthy check (DEGRADED also marks the path
    // degraded), anything else a failed one. RTT = now - the request's sent time.
    health_output on_response(const kcp::v3::HealthCheckResponse& response, time_us now);
    // kwikd's path_down of kind failed (removed is unwatch_path): DOWN at once, and failover.
    health_output on_path_down(std::string_view connection_id, std::uint64_t path_id, std::string_view reason,
                               time_us now);
    // kwikd's path_down of kind down: the path is suspect (a probe timeout passed without an
    // acknowledgement; kwikd already sent its in-flight data on other paths). DEGRADED, no
    // failover: one late acknowledgement on a queued path is not a failure; kwikd's `failed`
    // (after its failure threshold of probe timeouts) is. Cleared by kwikd's path_up.
    health_output on_path_suspect(std::string_view connection_id, std::uint64_t path_id, std::string_view reason,
                                  time_us now);
    // kwikd's path_up: clears a suspect path's DEGRADED; while DOWN, one healthy observation
    // (recovery still needs recovery_threshold).
    health_output on_path_up(std::string_view connection_id, std::uint64_t path_id, time_us now);
    // Latest metrics of a watched path: DEGRADED past the thresholds, UP again below them.
    health_output on_metrics(const path_metrics& metrics, time_us now);

    const path_health* path(std::string_view connection_id, std::uint64_t path_id) const;
    const server_health* server(std::string_view server_id) const;
    const health_stats& stats() const noexcept { return _stats; }

private:
    struct target {
        bool is_server = false;
        std::string name; // connection id or server id
        std::uint64_t path_id = 0;
    };
    using connection_paths = std::map<std::uint64_t, path_health>;

    path_health* find_path(std::string_view connection_id, std::uint64_t path_id);
    server_health* find_server(std::string_view server_id);
    check_record* record_of(const target& t);
    void healthy_check(const target& t, bool degraded, std::string_view detail, health_output& out);
    void failed_check(const target& t, std::string_view why, health_output& out);
    void path_healthy(const std::string& connection_id, path_health& p, bool degraded, std::string_view detail,
                      health_output& out);
    void go_down(const std::string& connection_id, path_health& p, const std::string& reason, health_output& out);
    void recover(const std::string& connection_id, path_health& p, health_output& out);
    void set_degraded(const std::string& connection_id, path_health& p, const std::string& reason,
                      health_output& out);
    void apply_roles(const std::string& connection_id, path_health& p, path_roles roles, health_output& out);
    kcp::v3::PathStatusUpdate& status_update(const std::string& connection_id, const path_health& p,
                                         kcp::v3::PathStatusUpdate::Status status, std::string reason,
                                         health_output& out);
    void send_check(check_record& c, const target& t, time_us now, health_output& out);

    health_config _config;
    std::map<std::string, connection_paths, std::less<>> _paths;
    std::map<std::string, server_health, std::less<>> _servers;
    server_availability _failover_servers;
    std::map<std::uint64_t, target> _in_flight; // by sequence
    std::uint64_t _sequence = 0;
    health_stats _stats;
};

} // namespace kwik::cp
