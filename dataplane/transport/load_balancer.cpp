// Adaptive load balancer: EMA of per-path performance shares, projected into the weight bounds.
// One connection's thread; no allocation.
#include "dataplane/transport/load_balancer.hpp"

#include <algorithm>
#include <cstddef>
#include <limits>

namespace kwik::transport {

namespace {

constexpr double rtt_floor_ns = 1.0 * us;

double clamp01(double v) noexcept {
    return v > 0.0 ? (v < 1.0 ? v : 1.0) : 0.0; // NaN -> 0
}

double clamp_to(double v, double lo, double hi) noexcept {
    return v < lo ? lo : (v > hi ? hi : v);
}

} // namespace

adaptive_load_balancer::adaptive_load_balancer(const load_balancer_config& config) noexcept
    : _config(config) {}

void adaptive_load_balancer::set_config(const load_balancer_config& config) noexcept {
    _config = config;
}

const load_balancer_config& adaptive_load_balancer::config() const noexcept {
    return _config;
}

void adaptive_load_balancer::adapt(std::span<path_candidate> paths) noexcept {
    std::size_t n = 0;
    double max_bandwidth = 0;
    double min_rtt = std::numeric_limits<double>::infinity();
    double old_sum = 0;
    for (const path_candidate& c : paths) {
        if (!c.usable) {
            continue;
        }
        ++n;
        max_bandwidth = std::max(max_bandwidth, static_cast<double>(c.metrics.bandwidth_bps));
        min_rtt = std::min(min_rtt, std::max(static_cast<double>(c.metrics.latency), rtt_floor_ns));
        if (c.weight > 0.0f) {
            old_sum += c.weight;
        }
    }
    if (n == 0) {
        for (path_candidate& c : paths) {
            c.weight = 0;
        }
        return;
    }

    // Step 1: performance, summed for step 2.
    auto performance = [&](const path_metrics& m) {
        const double bw = max_bandwidth > 0.0 ? static_cast<double>(m.bandwidth_bps) / max_bandwidth
                                              : 1.0;
        const double rtt = std::max(static_cast<double>(m.latency), rtt_floor_ns);
        return bw * (1.0 - clamp01(m.packet_loss)) * (1.0 - clamp01(m.congestion)) * (min_rtt / rtt);
    };
    double perf_sum = 0;
    for (const path_candidate& c : paths) {
        if (c.usable) {
            perf_sum += performance(c.metrics);
        }
    }

    // Steps 2-4, leaving the EMA in each weight field (the step-5 scratch space).
    const double equal = 1.0 / static_cast<double>(n);
    const double rate = clamp01(_config.adaptation_rate);
    for (path_candidate& c : paths) {
        if (!c.usable) {
            c.weight = 0;
            continue;
        }
        const double target = perf_sum > 0.0 ? performance(c.metrics) / perf_sum : equal;
        const double old = old_sum > 0.0 ? (c.weight > 0.0f ? c.weight / old_sum : 0.0) : equal;
        c.weight = static_cast<float>((1.0 - rate) * old + rate * target);
    }

    // Step 5: f(c) = sum clamp(c * ema_i, lo, hi) is continuous and non-decreasing, piecewise
    // linear with breaks at lo/ema_i and hi/ema_i; find the piece where it crosses 1 and solve.
    // lo <= 1/n <= hi, so f(0+) = n * lo <= 1 and a solution exists whenever f(inf) >= 1.
    const double lo = std::min(static_cast<double>(_config.min_weight), equal);
    const double hi = std::max(static_cast<double>(_config.max_weight), equal);
    auto clamped = [&](double c, float w) { return w > 0.0f ? clamp_to(c * w, lo, hi) : lo; };
    auto f = [&](double c) {
        double sum = 0;
        for (const path_candidate& p : paths) {
            if (p.usable) {
                sum += clamped(c, p.weight);
            }
        }
        return sum;
    };
    double below = 0; // largest breakpoint with f < 1
    double above = std::numeric_limits<double>::infinity(); // smallest with f >= 1
    std::size_t positive = 0;
    for (const path_candidate& p : paths) {
        if (!p.usable || !(p.weight > 0.0f)) {
            continue;
        }
        ++positive;
        for (const double b : {lo / p.weight, hi / p.weight}) {
            if (f(b) < 1.0) {
                below = std::max(below, b);
            } else {
                above = std::min(above, b);
            }
        }
    }
    if (above == std::numeric_limits<double>::infinity()) {
        // Every positive path at hi still leaves weight over: paths whose EMA is exactly 0
        // share the remainder, which lies within [lo, hi]. With none, only rounding got here
        // (n * hi == 1), and hi is the answer.
        const double rest = positive < n ? (1.0 - static_cast<double>(positive) * hi) /
                                               static_cast<double>(n - positive)
                                         : hi;
        for (path_candidate& p : paths) {
            if (p.usable) {
                p.weight = static_cast<float>(p.weight > 0.0f ? hi : rest);
            }
        }
        return;
    }
    // On (below, above) f is linear: f(c) = fixed + c * slope.
    const double mid = below + (above - below) / 2.0;
    double fixed = 0;
    double slope = 0;
    for (const path_candidate& p : paths) {
        if (!p.usable) {
            continue;
        }
        const double x = static_cast<double>(p.weight) * mid;
        if (!(p.weight > 0.0f) || x <= lo) {
            fixed += lo;
        } else if (x >= hi) {
            fixed += hi;
        } else {
            slope += p.weight;
        }
    }
    const double c = slope > 0.0 ? (1.0 - fixed) / slope : above;
    for (path_candidate& p : paths) {
        if (p.usable) {
            p.weight = static_cast<float>(clamped(c, p.weight));
        }
    }
}

} // namespace kwik::transport
