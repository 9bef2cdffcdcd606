// Path scheduler: the multi-criteria score and the four selection strategies. One connection's
// thread; no allocation, O(n) per decision in the number of candidate paths.
#include "dataplane/transport/path_scheduler.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

namespace kwik::transport {

namespace {

constexpr float latency_floor = static_cast<float>(score_latency_floor_ns);
constexpr float bandwidth_floor = static_cast<float>(score_bandwidth_floor_bps);
constexpr float loss_floor = static_cast<float>(score_loss_floor);
constexpr float jitter_floor = static_cast<float>(score_jitter_floor_ns);

// Smooth WRR works on integers so that it never drifts: weights in units of 1/65536, capped so
// that 64 of them cannot overflow the running values.
constexpr float wrr_unit = 65536.0f;
constexpr float wrr_max_weight = 1e9f;

float clamp01(float v) noexcept {
    // std::max(0, v) is (0 < v ? v : 0): NaN maps to 0, so a broken estimator never wins a
    // comparison; the pair compiles to maxss + minss.
    return std::min(std::max(0.0f, v), 1.0f);
}

// Counters and rates are far below 2^63; the signed conversion is one instruction, the unsigned
// one a branchy sequence.
float to_float(std::uint64_t v) noexcept {
    return static_cast<float>(static_cast<std::int64_t>(v));
}

bool eligible(const path_candidate& c) noexcept {
    return c.usable && c.can_send;
}

std::int64_t wrr_units(float weight) noexcept {
    if (!(weight > 0.0f)) {
        return 0;
    }
    const float w = std::min(weight, wrr_max_weight);
    // Rounded by hand: llround is a libm call, a third of the cost of a 32-path decision.
    return std::max<std::int64_t>(1, static_cast<std::int64_t>(w * wrr_unit + 0.5f));
}

// The weight set divided by its sum, so a score is one multiply-add per criterion.
score_weights normalised(const score_weights& w) noexcept {
    const float sum = w.latency + w.bandwidth + w.loss + w.jitter + w.congestion + w.reliability +
                      w.cost + w.server_load + w.geographic;
    if (!(sum > 0.0f)) {
        return score_weights{};
    }
    const float k = 1.0f / sum;
    return {w.latency * k,     w.bandwidth * k, w.loss * k,        w.jitter * k,    w.congestion * k,
            w.reliability * k, w.cost * k,      w.server_load * k, w.geographic * k};
}

} // namespace

path_scheduler::path_scheduler(const scheduler_config& config) noexcept
    : _config(config),
      _weights{normalised(config.normal), normalised(config.high), normalised(config.critical),
               normalised(config.control)} {}

void path_scheduler::set_strategy(schedule_strategy s) noexcept {
    _config.strategy = s;
}

schedule_strategy path_scheduler::strategy() const noexcept {
    return _config.strategy;
}

const scheduler_config& path_scheduler::config() const noexcept {
    return _config;
}

const score_weights& path_scheduler::weights_for(kdp::priority p) const noexcept {
    switch (p) {
    case kdp::priority::high:
        return _weights[1];
    case kdp::priority::critical:
        return _weights[2];
    case kdp::priority::control:
        return _weights[3];
    case kdp::priority::normal:
        break;
    }
    return _weights[0];
}

path_scheduler::score_refs path_scheduler::refs_over(std::span<const path_candidate> all) noexcept {
    score_refs r{std::numeric_limits<float>::infinity(), 0.0f,
                 std::numeric_limits<float>::infinity(), std::numeric_limits<float>::infinity()};
    for (const path_candidate& c : all) {
        if (!c.usable) {
            continue;
        }
        r.min_latency = std::min(r.min_latency, to_float(c.metrics.latency));
        r.max_bandwidth = std::max(r.max_bandwidth, to_float(c.metrics.bandwidth_bps));
        r.min_loss = std::min(r.min_loss, clamp01(c.metrics.packet_loss));
        r.min_jitter = std::min(r.min_jitter, to_float(c.metrics.jitter));
    }
    return r;
}

bool path_scheduler::meets_qos(const path_metrics& m, const qos_policy* qos) noexcept {
    if (qos == nullptr) {
        return true;
    }
    if (qos->max_latency_ms != 0 && m.latency > time_ns{qos->max_latency_ms} * ms) {
        return false;
    }
    if (qos->max_jitter_ms != 0 && m.jitter > time_ns{qos->max_jitter_ms} * ms) {
        return false;
    }
    return !(m.packet_loss > qos->loss_threshold);
}

float path_scheduler::score_with(const path_metrics& m, const score_weights& w,
                                 const score_refs& r, const qos_policy* qos) noexcept {
    // The scored path is part of the normalisation set even if the caller's span lacks it, so
    // every ratio stays in (0, 1].
    const float latency = to_float(m.latency);
    const float bandwidth = to_float(m.bandwidth_bps);
    const float loss = clamp01(m.packet_loss);
    const float jitter = to_float(m.jitter);
    const float best_latency = std::min(r.min_latency, latency);
    const float best_bandwidth = std::max(r.max_bandwidth, bandwidth);
    const float best_loss = std::min(r.min_loss, loss);
    const float best_jitter = std::min(r.min_jitter, jitter);

    const float s_latency = (best_latency + latency_floor) / (latency + latency_floor);
    const float s_bandwidth = (bandwidth + bandwidth_floor) / (best_bandwidth + bandwidth_floor);
    const float s_loss = (best_loss + loss_floor) / (loss + loss_floor);
    const float s_jitter = (best_jitter + jitter_floor) / (jitter + jitter_floor);

    // w is normalised (sums to 1), so this is the weighted mean.
    float s = w.latency * s_latency + w.bandwidth * s_bandwidth + w.loss * s_loss +
              w.jitter * s_jitter + w.congestion * (1.0f - clamp01(m.congestion)) +
              w.reliability * clamp01(m.reliability) + w.cost * (1.0f - clamp01(m.cost)) +
              w.server_load * (1.0f - clamp01(m.server_load)) +
              w.geographic * clamp01(m.geographic_score);

    if (qos != nullptr) {
        if (qos->max_latency_ms != 0 && m.latency > time_ns{qos->max_latency_ms} * ms) {
            s -= qos_violation_penalty;
        }
        if (qos->max_jitter_ms != 0 && m.jitter > time_ns{qos->max_jitter_ms} * ms) {
            s -= qos_violation_penalty;
        }
        if (m.packet_loss > qos->loss_threshold) {
            s -= qos_violation_penalty;
        }
    }
    return s;
}

float path_scheduler::score(const path_metrics& m, kdp::priority p, const qos_policy* qos,
                            std::span<const path_candidate> all) const noexcept {
    return score_with(m, weights_for(p), refs_over(all), qos);
}

path_selection path_scheduler::select_best(std::span<const path_candidate> candidates,
                                           kdp::priority p, const qos_policy* qos,
                                           bool want_second) const noexcept {
    const score_weights& w = weights_for(p);
    const score_refs r = refs_over(candidates);
    path_selection sel;
    float best = 0;
    float second = 0;
    // Orders (score, then lower latency); the lower index wins full ties because it comes first.
    auto better = [&](float s, int i, float than_s, int than_i) {
        if (s != than_s) {
            return s > than_s;
        }
        return candidates[static_cast<std::size_t>(i)].metrics.latency <
               candidates[static_cast<std::size_t>(than_i)].metrics.latency;
    };
    for (std::size_t k = 0; k < candidates.size(); ++k) {
        if (!eligible(candidates[k])) {
            continue;
        }
        const int i = static_cast<int>(k);
        const float s = score_with(candidates[k].metrics, w, r, qos);
        if (sel.primary < 0 || better(s, i, best, sel.primary)) {
            sel.secondary = sel.primary;
            second = best;
            sel.primary = i;
            best = s;
        } else if (sel.secondary < 0 || better(s, i, second, sel.secondary)) {
            sel.secondary = i;
            second = s;
        }
    }
    if (!want_second) {
        sel.secondary = -1;
    }
    return sel;
}

int path_scheduler::select_weighted(std::span<const path_candidate> candidates, bool qos_only,
                                    const qos_policy* qos) noexcept {
    const std::size_t n = std::min(candidates.size(), scheduler_max_paths);
    std::int64_t total = 0;
    for (std::size_t i = 0; i < n; ++i) {
        const path_candidate& c = candidates[i];
        if (_wrr_ids[i] != c.id) {
            _wrr_ids[i] = c.id;
            _wrr_current[i] = 0;
        }
        if (eligible(c) && (!qos_only || meets_qos(c.metrics, qos))) {
            total += wrr_units(c.weight);
        }
    }
    const bool equal = total == 0; // every eligible weight is 0: share equally
    total = 0;
    int best = -1;
    for (std::size_t i = 0; i < n; ++i) {
        const path_candidate& c = candidates[i];
        if (!eligible(c) || (qos_only && !meets_qos(c.metrics, qos))) {
            continue;
        }
        const std::int64_t w = equal ? 1 : wrr_units(c.weight);
        if (w == 0) {
            continue;
        }
        _wrr_current[i] += w;
        total += w;
        if (best < 0 || _wrr_current[i] > _wrr_current[static_cast<std::size_t>(best)]) {
            best = static_cast<int>(i);
        }
    }
    if (best >= 0) {
        _wrr_current[static_cast<std::size_t>(best)] -= total;
    }
    return best;
}

int path_scheduler::select_round_robin(std::span<const path_candidate> candidates, bool qos_only,
                                       const qos_policy* qos) noexcept {
    const std::size_t n = candidates.size();
    if (n == 0) {
        return -1;
    }
    const std::size_t start = _rr_next % n;
    for (std::size_t k = 0; k < n; ++k) {
        const std::size_t i = start + k < n ? start + k : start + k - n;
        const path_candidate& c = candidates[i];
        if (eligible(c) && (!qos_only || meets_qos(c.metrics, qos))) {
            _rr_next = i + 1 < n ? i + 1 : 0;
            return static_cast<int>(i);
        }
    }
    return -1;
}

path_selection path_scheduler::select(std::span<const path_candidate> candidates, kdp::priority p,
                                      const qos_policy* qos) noexcept {
    switch (_config.strategy) {
    case schedule_strategy::min_rtt:
        return select_best(candidates, p, qos, false);
    case schedule_strategy::redundant:
        return select_best(candidates, p, qos,
                           p == kdp::priority::critical || p == kdp::priority::control);
    case schedule_strategy::weighted:
    case schedule_strategy::round_robin:
        break;
    }
    // The score penalty already keeps min_rtt and redundant on compliant paths; the rotating
    // strategies ignore the score, so they filter instead, but only when a compliant path exists.
    bool qos_only = false;
    if (qos != nullptr) {
        for (const path_candidate& c : candidates) {
            if (eligible(c) && meets_qos(c.metrics, qos)) {
                qos_only = true;
                break;
            }
        }
    }
    path_selection sel;
    sel.primary = _config.strategy == schedule_strategy::weighted
                      ? select_weighted(candidates, qos_only, qos)
                      : select_round_robin(candidates, qos_only, qos);
    return sel;
}

} // namespace kwik::transport
