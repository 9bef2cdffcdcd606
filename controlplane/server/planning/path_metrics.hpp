// The metrics model that kwik-cp's decision logic shares (bandwidth_manager, traffic_planner,
// health_monitor): one path's identity, cumulative counters, gauges and roles; metrics_window,
// which turns successive cumulative snapshots into smoothed rates; and the servers the registry
// offers. Pure values, time passed in. One owner thread (kwik-cp's planning loop); no locks.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "proto/kcp.pb.h"

namespace kwik::api {
struct path_counters;
} // namespace kwik::api

namespace kwik::cp {

// Wall clock in microseconds since the Unix epoch: the clock of HealthCheckRequest.sent_at_us;
// TrafficDistributionPlan's *_ms fields are this divided by 1000.
using time_us = std::uint64_t;
inline constexpr time_us us_per_ms = 1000;
inline constexpr time_us us_per_s = 1'000'000;

// The data plane's path state, by value (api::path_counters::status).
enum class path_status : std::uint8_t { up = 0, suspect = 1, failed = 2, removed = 3 };
std::string_view to_string(path_status s) noexcept;

// One path at one moment, as the control plane knows it. The counters count up from the path's
// opening (PerformanceMetrics.Counters, api::path_counters); the gauges are current values; the
// identity beyond the ids and the roles come from kwik-cp's own path table, not from a report.
struct path_metrics {
    // identity
    std::string connection_id; // the KCP connection id
    std::uint64_t path_id = 0;
    std::string server_id;
    std::string server_address;
    // cumulative counters
    std::uint64_t bytes_sent = 0;
    std::uint64_t bytes_received = 0;
    std::uint64_t packets_sent = 0;
    std::uint64_t packets_received = 0;
    std::uint64_t packets_lost = 0; // declared lost by loss recovery
    std::uint64_t packets_retransmitted = 0;
    std::uint64_t bytes_retransmitted = 0;
    // gauges
    std::uint32_t smoothed_rtt_us = 0;
    std::uint32_t min_rtt_us = 0;
    std::uint32_t rtt_var_us = 0;
    std::uint64_t cwnd_bytes = 0;
    std::uint64_t bytes_in_flight = 0;
    std::uint64_t delivery_rate_bps = 0;
    float loss_rate = 0;           // fraction over the last interval, as reported (or a window's)
    std::uint64_t capacity_bps = 0; // provisioned: AddPathCommand.max_bandwidth_mbps or what the
                                    // server offered for the path; 0: unknown (estimated)
    // roles
    path_status status = path_status::up;
    bool standby = false;
    float weight = 1; // the load-balancing weight last set (kwikd's set_weights value)
};

// The path's capacity in bit/s, for utilisation: capacity_bps when provisioned, else the larger
// of the delivery rate and the congestion window's rate cwnd * 8 / srtt (a path can carry at
// least what it delivered and what its window allows per RTT); 0 when nothing is known.
double capacity_estimate_bps(const path_metrics& m) noexcept;

// ---- conversions ----------------------------------------------------------------------------

// A PerformanceMetrics path entry: counters, gauges and loss_rate; roles keep their defaults.
path_metrics from_kcp(const kcp::v3::PerformanceMetrics::PathMetrics& in, std::string_view connection_id);
// Every path of a report (the connection's own counters are not per path: not used here).
std::vector<path_metrics> from_kcp(const kcp::v3::PerformanceMetrics& in);
void to_kcp(const path_metrics& in, kcp::v3::PerformanceMetrics::PathMetrics& out);
// A report for `paths` (all of one connection). `connection` totals are the sum over `paths`;
// a caller with the data plane's connection counters (which include removed paths) overwrites it.
kcp::v3::PerformanceMetrics to_kcp(std::string_view connection_id, std::span<const path_metrics> paths,
                               std::uint32_t report_interval_ms);
// The data plane's per-path counters (dataplane/api/counters.hpp): tx -> sent, rx -> received,
// RTTs from ns to us (saturating), status by value (an unknown value reads as failed). kwikd
// knows connections by number; connection_id is the KCP id kwik-cp maps it to.
path_metrics from_counters(const api::path_counters& in, std::string_view connection_id);

// ---- rates from cumulative snapshots --------------------------------------------------------

struct window_config {
    // Time constant of the exponential smoothing: each interval of dt seconds moves a smoothed
    // value by alpha = 1 - exp(-dt / time_constant_s) of the way to the interval's own value,
    // so irregular report intervals weigh by their length.
    double time_constant_s = 5.0;
};

struct path_rates {
    // Smoothed over intervals.
    double tx_bps = 0;
    double rx_bps = 0;
    double loss_rate = 0;   // packets lost / packets sent per interval
    double utilisation = 0; // max(tx_bps, rx_bps) / capacity_bps; 0 when the capacity is unknown
    double capacity_bps = 0; // capacity_estimate_bps of the latest snapshot
    // The latest interval alone.
    double last_tx_bps = 0;
    double last_rx_bps = 0;
    double last_loss_rate = 0;
    double last_interval_s = 0;
    std::uint32_t intervals = 0; // intervals seen since the last (re)start
};

// One path's rates. add() takes a cumulative snapshot; the differences to the previous one make
// an interval: rate = 8 * delta bytes / dt, loss = delta lost / max(delta sent, delta lost)
// (an interval that sent nothing and lost nothing leaves the loss estimate alone). The first
// interval after a (re)start (for loss: the first that sent or lost packets) sets the smoothed
// values directly instead of smoothing from 0.
class metrics_window {
public:
    explicit metrics_window(const window_config& config = {}) noexcept;

    // False, and the window starts over from this snapshot, when it cannot be compared with the
    // previous one: the first snapshot, a time that did not advance, or a counter that went
    // backwards (the data plane restarted and its counters with it).
    bool add(const path_metrics& snapshot, time_us now) noexcept;

    const path_rates& rates() const noexcept { return _rates; }
    bool primed() const noexcept { return _rates.intervals > 0; }

private:
    window_config _config;
    path_rates _rates;
    path_metrics _last; // counters only are compared
    time_us _last_time = 0;
    bool _has_last = false;
    bool _loss_seen = false; // an interval that sent or lost packets was seen
};

// ---- servers --------------------------------------------------------------------------------

// One server the registry can place paths on, with what it has to spare now. The bandwidth
// manager adds paths there; the health monitor fails over to it when a connection has no path
// left. cost_per_gbps has no unit: it is only compared between servers (COST_OPTIMIZATION).
struct server_candidate {
    std::string server_id;
    std::string address;
    std::uint64_t available_bps = 0; // spare capacity (the registry's available_bandwidth_mbps)
    std::uint64_t path_bps = 0;      // what one new path there may carry; 0: up to available_bps
    std::uint32_t latency_us = 0;
    double cost_per_gbps = 1.0;
    bool healthy = true; // false: the server failed; its paths count as failed
};

// What the registry knows at one decision. The registry (or a test) fills it; a server not
// listed offers nothing and is not known to have failed.
struct server_availability {
    std::vector<server_candidate> servers;

    const server_candidate* find(std::string_view server_id) const noexcept;
};

// A discovery answer as availability: the address doubles as the server id (AvailableServer has
// no other), Mbit/s and ms become bit/s and us, every listed server counts as healthy.
server_availability from_kcp(const kcp::v3::ServerDiscoveryResponse& in);

} // namespace kwik::cp
