// The seed's Load Balancer: from one connection's path metrics, a TrafficDistributionPlan
// (integer basis-point shares per path and per server, summing to exactly 10000) and the
// matching LoadBalancingUpdate (path weights within bounds, a generation that increases per
// connection). Pure logic, time passed in; docs/CONTROL_PLANE.md section 3 has the formulas and
// how the weights reach kwikd's set_weights. One owner thread (kwik-cp's planning loop).
#pragma once

#include <cstdint>
#include <map>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.hpp"
#include "controlplane/server/planning/path_metrics.hpp"

namespace kwik::cp {

using kwik::error;
using kwik::result;

inline constexpr std::uint32_t total_bp = 10000;

// Splits `total` into integers proportional to `values` (each >= 0; all 0 splits equally) by
// the largest-remainder method: each gets floor(total * v / sum), and the units left over go
// one each to the largest fractional parts, ties to the lower index. The result sums to total.
std::vector<std::uint32_t> largest_remainder(std::span<const double> values, std::uint32_t total);

struct planner_config {
    kcp::v3::TrafficDistributionPlan::Strategy strategy = kcp::v3::TrafficDistributionPlan::WEIGHTED;
    // score = delivery rate / (1 + loss_penalty * loss) / (1 + rtt_penalty * (srtt - min srtt) / min srtt)
    double loss_penalty = 20.0; // 5% loss halves a path's share
    double rtt_penalty = 1.0;   // twice the best path's RTT halves it
    float min_weight = 0.05f;   // every usable path keeps probing traffic
    float max_weight = 0.9f;    // no usable path takes everything
    float adaptation_rate = 0.2f; // LoadBalancingUpdate.adaptation_rate
    std::uint64_t validity_ms = 10'000; // valid_until = valid_from + this; 0: until replaced
};

struct traffic_plan {
    kcp::v3::TrafficDistributionPlan plan;
    kcp::v3::LoadBalancingUpdate update;
};

// A path's weight as kwikd's set_weights takes it (api::weight_entry): >= 0, finite.
struct weight_step {
    std::uint64_t path_id = 0;
    float weight = 0;
};

class traffic_planner {
public:
    explicit traffic_planner(const planner_config& config = {});

    // The plan for one connection's open paths (all of the same connection_id, each path once).
    // Usable: status up and not standby; while none is, the standby paths that are up (the data
    // plane's failover uses them then). Every other path is listed with share and weight 0.
    // An error names the problem: no paths, mixed connections, a duplicate id, none usable.
    result<traffic_plan> plan(std::span<const path_metrics> paths, time_us now);

    // The generation the next plan of the connection will carry (1 for a new one).
    std::uint64_t next_generation(std::string_view connection_id) const;
    void forget_connection(std::string_view connection_id);

    const planner_config& config() const noexcept { return _config; }

private:
    planner_config _config;
    std::map<std::string, std::uint64_t, std::less<>> _generation; // last one sent, per connection
};

// kwikd's set_weights has no adaptation rate and pins what it is given, so kwik-cp moves the
// weights itself: per plan period, w = current + rate * (target - current) for each path in
// the update (current: `current`'s entry, or the target when there is none; a target of 0 is
// applied at once, since 0 means stop). Sorted by path id; send in batches of
// api::max_weights (8) entries.
std::vector<weight_step> step_weights(const kcp::v3::LoadBalancingUpdate& update,
                                      const std::map<std::uint64_t, float>& current);

} // namespace kwik::cp
