// Load-balancing plans: scores, the projection into the weight bounds, largest-remainder
// rounding to basis points. One owner thread.
#include "controlplane/server/planning/traffic_planner.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <set>

namespace kwik::cp {

namespace {

// Rounds `values` (each in [lo, hi], summing to `total` up to rounding error) to integers that
// sum to exactly `total`: floors first, then one unit each to the largest fractional parts
// (ties: lower index), never past hi.
std::vector<std::uint32_t> round_to_total(std::span<const double> values, std::uint32_t total, double hi) {
    std::vector<std::uint32_t> out(values.size());
    std::uint64_t sum = 0;
    for (std::size_t i = 0; i < values.size(); ++i) {
        const double v = std::max(values[i], 0.0);
        out[i] = static_cast<std::uint32_t>(std::floor(v));
        sum += out[i];
    }
    if (sum >= total || values.empty()) {
        return out; // never more than total: each floor <= its value
    }
    std::vector<std::size_t> order(values.size());
    std::iota(order.begin(), order.end(), std::size_t{0});
    std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) {
        return values[a] - std::floor(values[a]) > values[b] - std::floor(values[b]);
    });
    std::uint64_t left = total - sum;
    // The first round never takes a value past hi (then values with no fraction, but below hi,
    // take what rounding error left over); the second only runs when every value is at hi,
    // which inputs within the bounds (total <= n * hi) never are.
    for (int round = 0; round < 2 && left > 0; ++round) {
        for (std::size_t i : order) {
            if (left == 0) {
                break;
            }
            if (out[i] + 1 > hi && round == 0) {
                continue;
            }
            ++out[i];
            --left;
        }
    }
    return out;
}

// The one c > 0 with sum clamp(c * x_i, lo, hi) == total (x_i >= 0), by bisection; or, when
// even c -> infinity leaves the sum short (zero scores at lo, the rest at hi), the zero-score
// entries share what is left equally. Requires n * lo <= total <= n * hi.
std::vector<double> project(std::span<const double> x, double lo, double hi, double total) {
    const std::size_t n = x.size();
    std::vector<double> out(n, total / static_cast<double>(n));
    double min_positive = std::numeric_limits<double>::infinity();
    std::size_t positive = 0;
    for (double v : x) {
        if (v > 0) {
            ++positive;
            min_positive = std::min(min_positive, v);
        }
    }
    if (positive == 0) {
        return out;
    }
    auto value = [&](double c, double v) { return std::clamp(c * v, lo, hi); };
    const double at_infinity = static_cast<double>(positive) * hi + static_cast<double>(n - positive) * lo;
    if (at_infinity <= total) {
        const double rest = (total - static_cast<double>(positive) * hi) / static_cast<double>(n - positive);
        for (std::size_t i = 0; i < n; ++i) {
            out[i] = x[i] > 0 ? hi : rest;
        }
        return out;
    }
    double c_low = 0;
    double c_high = hi / min_positive;
    for (int k = 0; k < 200; ++k) {
        const double c = (c_low + c_high) / 2;
        double sum = 0;
        for (double v : x) {
            sum += value(c, v);
        }
        (sum < total ? c_low : c_high) = c;
    }
    for (std::size_t i = 0; i < n; ++i) {
        out[i] = value(c_high, x[i]);
    }
    return out;
}

bool usable_role(const path_metrics& p, bool standby_phase) {
    return p.status == path_status::up && p.standby == standby_phase;
}

} // namespace

std::vector<std::uint32_t> largest_remainder(std::span<const double> values, std::uint32_t total) {
    double sum = 0;
    for (double v : values) {
        sum += std::max(v, 0.0);
    }
    std::vector<double> quota(values.size());
    for (std::size_t i = 0; i < values.size(); ++i) {
        quota[i] = sum > 0 ? static_cast<double>(total) * std::max(values[i], 0.0) / sum
                           : static_cast<double>(total) / static_cast<double>(values.size());
    }
    return round_to_total(quota, total, static_cast<double>(total));
}

traffic_planner::traffic_planner(const planner_config& config) : _config(config) {}

std::uint64_t traffic_planner::next_generation(std::string_view connection_id) const {
    auto it = _generation.find(connection_id);
    return it == _generation.end() ? 1 : it->second + 1;
}

void traffic_planner::forget_connection(std::string_view connection_id) {
    auto it = _generation.find(connection_id);
    if (it != _generation.end()) {
        _generation.erase(it);
    }
}

result<traffic_plan> traffic_planner::plan(std::span<const path_metrics> paths, time_us now) {
    if (paths.empty()) {
        return error{"no paths to plan"};
    }
    if (!(_config.min_weight >= 0.0f) || !(_config.max_weight <= 1.0f) || _config.min_weight > _config.max_weight) {
        return error{"planner_config: min_weight and max_weight must satisfy 0 <= min_weight <= max_weight <= 1"};
    }
    if (!(_config.adaptation_rate > 0.0f) || _config.adaptation_rate > 1.0f) {
        return error{"planner_config: adaptation_rate must be in (0, 1]"};
    }
    const std::string& connection = paths.front().connection_id;
    std::set<std::uint64_t> ids;
    for (const path_metrics& p : paths) {
        if (p.connection_id != connection) {
            return error{"paths of two connections in one plan: '" + connection + "' and '" + p.connection_id + "'"};
        }
        if (p.path_id == 0) {
            return error{"connection '" + connection + "': path id 0 names no path"};
        }
        if (!ids.insert(p.path_id).second) {
            return error{"connection '" + connection + "': path " + std::to_string(p.path_id) + " listed twice"};
        }
    }

    // Usable paths: up and not standby; while none is, the standby paths that are up.
    bool standby_phase = false;
    std::vector<std::size_t> usable;
    for (int phase = 0; phase < 2 && usable.empty(); ++phase) {
        standby_phase = phase == 1;
        for (std::size_t i = 0; i < paths.size(); ++i) {
            if (usable_role(paths[i], standby_phase)) {
                usable.push_back(i);
            }
        }
    }
    if (usable.empty()) {
        return error{"connection '" + connection + "' has no usable path (every one is failed, suspect or removed)"};
    }
    const std::size_t n = usable.size();

    // Scores (WEIGHTED); the other strategies list the usable paths with equal shares.
    std::vector<double> score(n, 1.0);
    if (_config.strategy == kcp::v3::TrafficDistributionPlan::WEIGHTED) {
        double min_srtt = std::numeric_limits<double>::infinity();
        for (std::size_t i : usable) {
            if (paths[i].smoothed_rtt_us > 0) {
                min_srtt = std::min(min_srtt, static_cast<double>(paths[i].smoothed_rtt_us));
            }
        }
        for (std::size_t k = 0; k < n; ++k) {
            const path_metrics& p = paths[usable[k]];
            const double loss = std::clamp(static_cast<double>(p.loss_rate), 0.0, 1.0);
            double rtt_excess = 0;
            if (p.smoothed_rtt_us > 0 && std::isfinite(min_srtt)) {
                rtt_excess = (p.smoothed_rtt_us - min_srtt) / min_srtt;
            }
            score[k] = static_cast<double>(p.delivery_rate_bps) / (1.0 + _config.loss_penalty * loss) /
                       (1.0 + _config.rtt_penalty * rtt_excess);
        }
    }
    double score_sum = 0;
    for (double s : score) {
        score_sum += s;
    }
    std::vector<double> share(n);
    for (std::size_t k = 0; k < n; ++k) {
        share[k] = score_sum > 0 ? score[k] / score_sum : 0.0;
    }

    // Weight bounds in basis points, widened when n paths could not otherwise sum to 10000.
    const double total = total_bp;
    double lo = std::ceil(_config.min_weight * total - 1e-3);
    double hi = std::floor(_config.max_weight * total + 1e-3);
    lo = std::min(lo, std::floor(total / static_cast<double>(n)));
    hi = std::max(hi, std::ceil(total / static_cast<double>(n)));
    const std::vector<double> projected = project(share, lo, hi, total);
    const std::vector<std::uint32_t> bp = round_to_total(projected, total_bp, hi);

    const std::uint64_t generation = next_generation(connection);
    traffic_plan out;
    kcp::v3::TrafficDistributionPlan& plan = out.plan;
    plan.set_plan_id(connection + "/" + std::to_string(generation));
    plan.set_connection_id(connection);
    plan.set_strategy(_config.strategy);
    const std::uint64_t from_ms = now / us_per_ms;
    plan.set_valid_from_ms(from_ms);
    plan.set_valid_until_ms(_config.validity_ms > 0 ? from_ms + _config.validity_ms : 0);
    kcp::v3::LoadBalancingUpdate& update = out.update;
    update.set_connection_id(connection);
    update.set_min_weight(_config.min_weight);
    update.set_max_weight(_config.max_weight);
    update.set_adaptation_rate(_config.adaptation_rate);
    update.set_generation(generation);

    auto& path_share = *plan.mutable_path_share_bp();
    auto& server_share = *plan.mutable_server_share_bp();
    auto& weights = *update.mutable_path_weights();
    for (const path_metrics& p : paths) {
        path_share[p.path_id] = 0;
        weights[p.path_id] = 0.0f;
        server_share[p.server_id.empty() ? p.server_address : p.server_id] += 0;
    }
    for (std::size_t k = 0; k < n; ++k) {
        const path_metrics& p = paths[usable[k]];
        path_share[p.path_id] = bp[k];
        weights[p.path_id] = static_cast<float>(bp[k] / total);
        server_share[p.server_id.empty() ? p.server_address : p.server_id] += bp[k];
    }
    _generation[connection] = generation;
    return out;
}

std::vector<weight_step> step_weights(const kcp::v3::LoadBalancingUpdate& update,
                                      const std::map<std::uint64_t, float>& current) {
    std::vector<weight_step> out;
    out.reserve(static_cast<std::size_t>(update.path_weights_size()));
    const float rate = std::clamp(update.adaptation_rate(), 0.0f, 1.0f);
    for (const auto& [id, target_raw] : update.path_weights()) {
        const float target = std::isfinite(target_raw) && target_raw > 0.0f ? target_raw : 0.0f;
        float w = target;
        auto it = current.find(id);
        if (target > 0.0f && rate < 1.0f && it != current.end() && std::isfinite(it->second) && it->second >= 0.0f) {
            w = it->second + rate * (target - it->second);
        }
        out.push_back({id, w});
    }
    std::sort(out.begin(), out.end(), [](const weight_step& a, const weight_step& b) { return a.path_id < b.path_id; });
    return out;
}

} // namespace kwik::cp
