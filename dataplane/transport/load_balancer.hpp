// Adaptive load balancer (the seed's AdaptiveLoadBalancer): moves each path's scheduling weight
// toward its share of the connection's measured performance, by an exponential moving average
// within configured bounds. The weights feed the path scheduler's weighted strategy. Called by the
// connection's thread at its own cadence (about once per RTT), not per packet.
#pragma once

#include <span>

#include "dataplane/transport/path_scheduler.hpp"

namespace kwik::transport {

struct load_balancer_config {
    float adaptation_rate = 0.2f; // EMA gain per adapt() call, 0..1
    float min_weight = 0.05f;     // every usable path keeps probing traffic
    float max_weight = 0.9f;      // no usable path takes everything
};

class adaptive_load_balancer {
public:
    explicit adaptive_load_balancer(const load_balancer_config& config = {}) noexcept;

    // Writes each candidate's weight. Over the usable paths (n of them), in this order:
    //  1. performance_i = (bandwidth_i / max bandwidth) * (1 - loss_i) * (1 - congestion_i)
    //                     * (min RTT / RTT_i)
    //     with bandwidth the delivery-rate estimate (metrics.bandwidth_bps; the term is 1 for all
    //     if no path has one yet), RTT the smoothed RTT (metrics.latency, floored at 1 us), loss
    //     and congestion clamped to 0..1; max and min over the usable paths;
    //  2. target_i = performance_i / sum(performance), or 1/n each if the sum is 0;
    //  3. old_i = the candidate's current weight / sum of the usable paths' weights (negative
    //     counts as 0; 1/n each if the sum is 0), so the caller may start from any positive values;
    //  4. ema_i = (1 - adaptation_rate) * old_i + adaptation_rate * target_i;
    //  5. weight_i = clamp(c * ema_i, lo, hi) with the one c > 0 that makes the weights sum to 1,
    //     where lo = min(min_weight, 1/n) and hi = max(max_weight, 1/n) (the bounds widen only when
    //     n paths could not otherwise sum to 1). Unlike clamping and then renormalising, this
    //     keeps every weight inside [lo, hi] and keeps the paths' order. When nothing is out of
    //     bounds c = 1 and the weights are exactly the EMA.
    // Unusable paths get weight 0 and take no part in any sum. O(n^2): about 50 ns for 2 paths,
    // 270 ns for 8, 2.7 us for 32 (perf/bench/transport_bench_scheduler.cpp, CPU time, this VM).
    void adapt(std::span<path_candidate> paths) noexcept;

    void set_config(const load_balancer_config& config) noexcept;
    const load_balancer_config& config() const noexcept;

private:
    load_balancer_config _config;
};

} // namespace kwik::transport
