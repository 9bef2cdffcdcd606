// Per-path congestion detector; the scoring rules are documented in congestion_detector.hpp.
#include "dataplane/transport/congestion_detector.hpp"

#include <algorithm>

namespace kwik::transport {

namespace {

float ramp(double x, float low, float high) noexcept {
    if (x <= low) {
        return 0.0f;
    }
    if (x >= high) {
        return 1.0f;
    }
    return static_cast<float>((x - low) / (high - low));
}

// Signed seconds from `from` to `t` (negative for older samples).
double seconds_since(time_ns t, time_ns from) noexcept {
    return static_cast<double>(static_cast<std::int64_t>(t - from)) * 1e-9;
}

} // namespace

congestion_detector::congestion_detector(const detector_config& config) noexcept : _config(config) {
    _config.trend_samples = std::clamp<std::uint32_t>(_config.trend_samples, 2, max_trend_samples);
}

void congestion_detector::on_rtt_sample(time_ns smoothed, time_ns min_rtt, time_ns /*now*/) noexcept {
    if (min_rtt == 0) {
        return;
    }
    const time_ns queueing = smoothed > min_rtt ? smoothed - min_rtt : 0;
    _delay_ratio = static_cast<double>(queueing) / static_cast<double>(min_rtt);
}

void congestion_detector::on_ack(std::uint64_t bytes_acked, std::uint64_t bytes_lost,
                                 std::uint64_t ecn_ce_delta, std::uint64_t packets_acked,
                                 std::uint64_t delivery_rate_bps, time_ns now) noexcept {
    const std::uint64_t total = bytes_acked + bytes_lost;
    if (total != 0) {
        const double sample = static_cast<double>(bytes_lost) / static_cast<double>(total);
        const double weight = _config.loss_ewma_bytes == 0
                                  ? 1.0
                                  : std::min(1.0, static_cast<double>(total) /
                                                      static_cast<double>(_config.loss_ewma_bytes));
        _loss_rate += weight * (sample - _loss_rate);
    }
    if (packets_acked != 0) {
        const double sample = std::min(1.0, static_cast<double>(ecn_ce_delta) / static_cast<double>(packets_acked));
        const double weight = _config.ecn_ewma_packets == 0
                                  ? 1.0
                                  : std::min(1.0, static_cast<double>(packets_acked) /
                                                      static_cast<double>(_config.ecn_ewma_packets));
        _ecn_fraction += weight * (sample - _ecn_fraction);
    }
    if (delivery_rate_bps != 0) {
        _last_rate = delivery_rate_bps;
        update_rate_max(delivery_rate_bps, now);
    }
}

void congestion_detector::update_rate_max(std::uint64_t rate, time_ns now) noexcept {
    const time_ns window = _config.rate_max_window;
    const rate_sample sample{now, rate};
    // A new overall max, or the whole window expired: this sample is all three.
    if (rate >= _rate_max[0].value || now - _rate_max[2].time > window) {
        _rate_max.fill(sample);
        return;
    }
    if (rate >= _rate_max[1].value) {
        _rate_max[1] = sample;
        _rate_max[2] = sample;
    } else if (rate >= _rate_max[2].value) {
        _rate_max[2] = sample;
    }
    // Age the best samples out as the window passes them (subwin_update in win_minmax.c).
    const time_ns age = now - _rate_max[0].time;
    if (age > window) {
        _rate_max[0] = _rate_max[1];
        _rate_max[1] = _rate_max[2];
        _rate_max[2] = sample;
        if (now - _rate_max[0].time > window) {
            _rate_max[0] = _rate_max[1];
            _rate_max[1] = _rate_max[2];
            _rate_max[2] = sample;
        }
    } else if (_rate_max[1].time == _rate_max[0].time && age > window / 4) {
        // Quarter of the window gone and no second choice yet: take one.
        _rate_max[1] = sample;
        _rate_max[2] = sample;
    } else if (_rate_max[2].time == _rate_max[1].time && age > window / 2) {
        _rate_max[2] = sample;
    }
}

float congestion_detector::trend() const noexcept {
    const std::uint32_t n = std::min(_history_count, _config.trend_samples);
    if (n < 2) {
        return 0.0f;
    }
    // Times relative to the newest sample, in seconds, keep the sums well conditioned.
    const std::uint32_t newest = (_history_next + max_trend_samples - 1) % max_trend_samples;
    const time_ns t0 = _history[newest].time;
    double sum_t = 0;
    double sum_s = 0;
    for (std::uint32_t i = 0; i < n; ++i) {
        const score_sample& h = _history[(newest + max_trend_samples - i) % max_trend_samples];
        sum_t += seconds_since(h.time, t0);
        sum_s += h.score;
    }
    const double mean_t = sum_t / n;
    const double mean_s = sum_s / n;
    double num = 0;
    double den = 0;
    for (std::uint32_t i = 0; i < n; ++i) {
        const score_sample& h = _history[(newest + max_trend_samples - i) % max_trend_samples];
        const double dt = seconds_since(h.time, t0) - mean_t;
        num += dt * (h.score - mean_s);
        den += dt * dt;
    }
    if (den <= 0) {
        return 0.0f;
    }
    return static_cast<float>(num / den);
}

congestion_report congestion_detector::evaluate(time_ns now) noexcept {
    congestion_report r;
    r.rtt_score = ramp(_delay_ratio, _config.delay_low, _config.delay_high);
    r.loss_score = ramp(_loss_rate, _config.loss_low, _config.loss_high);

    const std::uint64_t max_rate = _rate_max[0].value;
    const double drop = max_rate == 0 || _last_rate >= max_rate
                            ? 0.0
                            : 1.0 - static_cast<double>(_last_rate) / static_cast<double>(max_rate);
    r.queue_score = std::max(ramp(drop, _config.rate_drop_low, _config.rate_drop_high),
                             ramp(_ecn_fraction, _config.ecn_low, _config.ecn_high));
    r.score = std::max({r.rtt_score, r.loss_score, r.queue_score});

    _history[_history_next] = score_sample{now, r.score};
    _history_next = (_history_next + 1) % max_trend_samples;
    _history_count = std::min(_history_count + 1, max_trend_samples);
    r.trend_per_sec = trend();
    r.predicted = std::clamp(r.score + r.trend_per_sec * static_cast<float>(static_cast<double>(_config.horizon) * 1e-9),
                             0.0f, 1.0f);

    const float threshold = _config.congested_threshold;
    if (r.score >= threshold ||
        (_last.level == congestion_report::state::congested && r.score > threshold - _config.clear_hysteresis)) {
        r.level = congestion_report::state::congested;
    } else if (r.predicted >= threshold ||
               (r.trend_per_sec >= _config.rising_trend && r.score >= _config.rising_min_score)) {
        r.level = congestion_report::state::rising;
    } else {
        r.level = congestion_report::state::clear;
    }
    _last = r;
    return r;
}

} // namespace kwik::transport
