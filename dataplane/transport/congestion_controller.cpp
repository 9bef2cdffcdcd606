// Per-path congestion control (NewReno, CUBIC, LIA coupling). See congestion_controller.hpp for
// the rules and the RFC sections they come from.
#include "dataplane/transport/congestion_controller.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

namespace kwik::transport {

namespace {

constexpr double ns_per_sec = 1e9;

double seconds(time_ns t) noexcept {
    return static_cast<double>(t) / ns_per_sec;
}

} // namespace

void lia_coupling::update(std::span<const path_state> paths) noexcept {
    double max_term = 0;  // max_i cwnd_i / rtt_i^2
    double sum_term = 0;  // sum_i cwnd_i / rtt_i
    std::uint64_t total = 0;
    std::uint32_t active = 0;
    for (const path_state& p : paths) {
        if (!p.active || p.srtt == 0 || p.cwnd == 0) {
            continue;
        }
        const double rtt = seconds(p.srtt);
        const double cwnd = static_cast<double>(p.cwnd);
        max_term = std::max(max_term, cwnd / (rtt * rtt));
        sum_term += cwnd / rtt;
        total += p.cwnd;
        ++active;
    }
    _active_paths = active;
    _total_cwnd = total;
    _alpha = active == 0 ? 1.0 : static_cast<double>(total) * max_term / (sum_term * sum_term);
}

congestion_controller::congestion_controller(const cc_config& config) noexcept
    : _config(config),
      _min_window(static_cast<std::uint64_t>(config.min_window_packets) * std::max(config.mss, config.packet_size)),
      _cwnd(std::max<std::uint64_t>(
          static_cast<std::uint64_t>(config.initial_window_packets) * config.mss, _min_window)),
      _ssthresh(std::numeric_limits<std::uint64_t>::max()),
      _coupled_mode(config.coupled) {}

void congestion_controller::on_packet_sent(std::uint32_t bytes, time_ns now) noexcept {
    // Restarting after idle: move CUBIC's epoch by the idle time so that W_cubic(t) does not
    // jump by the growth it would have had while nothing was sent (Linux CA_EVENT_TX_START).
    if (_bytes_in_flight == 0 && _epoch_valid && now > _last_sent_time) {
        _epoch_start = std::min(now, _epoch_start + (now - _last_sent_time));
    }
    _last_sent_time = now;
    _bytes_in_flight += bytes;
    _round_peak = std::max(_round_peak, _bytes_in_flight);
}

bool congestion_controller::cwnd_limited() const noexcept {
    return 2 * std::max(_round_peak, _prev_round_peak) >= _cwnd;
}

void congestion_controller::on_packet_acked(std::uint32_t bytes, time_ns time_sent, time_ns now,
                                            time_ns srtt, time_ns min_rtt,
                                            const lia_coupling* coupling) noexcept {
    const std::uint64_t prior_in_flight = _bytes_in_flight;
    _bytes_in_flight -= std::min<std::uint64_t>(bytes, _bytes_in_flight);

    // A packet sent after the round began closes the round: one round trip has passed.
    if (time_sent >= _round_start) {
        _prev_round_peak = _round_peak;
        _round_peak = prior_in_flight;
        _round_start = now;
    }

    _coupled_mode = _config.coupled && coupling != nullptr;

    if (_recovery_valid && time_sent <= _recovery_start) {
        return; // still in the recovery period: no growth (RFC 9002 7.3.2)
    }
    _in_recovery = false;
    if (!cwnd_limited()) {
        return;
    }

    std::uint64_t rest = bytes;
    if (_cwnd < _ssthresh) {
        const std::uint64_t room = _ssthresh - _cwnd;
        if (rest <= room) {
            _cwnd += rest;
            return;
        }
        _cwnd = _ssthresh;
        rest -= room;
    }
    // srtt may not exist yet when the first losses come before any sample; min_rtt is then the
    // best stand-in for CUBIC's "t + RTT".
    avoid_congestion(rest, now, srtt != 0 ? srtt : min_rtt, coupling);
}

void congestion_controller::avoid_congestion(std::uint64_t bytes, time_ns now, time_ns srtt,
                                             const lia_coupling* coupling) noexcept {
    if (_coupled_mode) {
        // The CUBIC epoch is meaningless while LIA drives the window; restart it if we leave.
        _epoch_valid = false;
        lia_increase(bytes, *coupling);
        return;
    }
    if (_config.algorithm == cc_algorithm::newreno) {
        newreno_increase(bytes);
    } else {
        cubic_increase(bytes, now, srtt);
    }
}

void congestion_controller::newreno_increase(std::uint64_t bytes) noexcept {
    // Appropriate byte counting: exactly one MSS per cwnd of acknowledged bytes.
    _bytes_acked_in_ca += bytes;
    if (_bytes_acked_in_ca >= _cwnd) {
        _bytes_acked_in_ca -= _cwnd;
        _cwnd += _config.mss;
    }
}

void congestion_controller::lia_increase(std::uint64_t bytes, const lia_coupling& coupling) noexcept {
    const double b = static_cast<double>(bytes);
    const double mss = _config.mss;
    const double reno = b * mss / static_cast<double>(_cwnd);
    double increase = reno;
    if (coupling.total_cwnd() != 0) {
        increase = std::min(coupling.alpha() * b * mss / static_cast<double>(coupling.total_cwnd()), reno);
    }
    add_fraction(increase);
}

void congestion_controller::cubic_increase(std::uint64_t bytes, time_ns now, time_ns srtt) noexcept {
    const double mss = _config.mss;
    const double cwnd = static_cast<double>(_cwnd);
    if (!_epoch_valid) {
        _epoch_valid = true;
        _epoch_start = now;
        _w_est = cwnd;
        _increase_remainder = 0;
        if (_w_max <= cwnd) {
            _origin = cwnd;
            _k = 0;
        } else {
            _origin = _w_max;
            _k = std::cbrt((_w_max - cwnd) / mss / cubic_c);
        }
    }
    const double t = seconds(now - _epoch_start);
    auto w_cubic = [&](double at) noexcept {
        const double d = at - _k;
        return _origin + cubic_c * mss * d * d * d;
    };

    // Reno-friendly estimate (RFC 9438 4.3).
    const double alpha_cubic = _w_est >= _cwnd_prior ? 1.0 : 3.0 * (1.0 - cubic_beta) / (1.0 + cubic_beta);
    _w_est += alpha_cubic * mss * static_cast<double>(bytes) / cwnd;
    if (w_cubic(t) < _w_est) {
        if (_w_est > cwnd) {
            _cwnd = static_cast<std::uint64_t>(_w_est);
            _increase_remainder = 0;
        }
        return;
    }

    const double target = std::clamp(w_cubic(t + seconds(srtt)), cwnd, 1.5 * cwnd);
    add_fraction((target - cwnd) * static_cast<double>(bytes) / cwnd);
}

void congestion_controller::add_fraction(double bytes) noexcept {
    _increase_remainder += bytes;
    if (_increase_remainder >= 1.0) {
        const double whole = std::floor(_increase_remainder);
        _cwnd += static_cast<std::uint64_t>(whole);
        _increase_remainder -= whole;
    }
}

void congestion_controller::congestion_event(time_ns time_sent, time_ns now) noexcept {
    if (_recovery_valid && time_sent <= _recovery_start) {
        return; // already reduced for this window of data
    }
    _recovery_valid = true;
    _in_recovery = true;
    _recovery_start = now;

    const double cwnd = static_cast<double>(_cwnd);
    // CUBIC bookkeeping is kept whatever the mode, so that leaving LIA finds a sane W_max.
    _cwnd_prior = cwnd;
    const bool cubic = !_coupled_mode && _config.algorithm == cc_algorithm::cubic;
    if (cubic && _config.fast_convergence && cwnd < _w_max) {
        _w_max = cwnd * (1.0 + cubic_beta) / 2.0;
    } else {
        _w_max = cwnd;
    }
    const double beta = cubic ? cubic_beta : reno_beta;
    _ssthresh = std::max(static_cast<std::uint64_t>(cwnd * beta), _min_window);
    _cwnd = _ssthresh;
    _epoch_valid = false;
    _bytes_acked_in_ca = 0;
    _increase_remainder = 0;
}

void congestion_controller::on_packets_lost(std::uint64_t bytes, time_ns largest_lost_time_sent,
                                            time_ns now) noexcept {
    _bytes_in_flight -= std::min(bytes, _bytes_in_flight);
    congestion_event(largest_lost_time_sent, now);
}

void congestion_controller::on_ecn_ce(time_ns largest_acked_time_sent, time_ns now) noexcept {
    congestion_event(largest_acked_time_sent, now);
}

void congestion_controller::on_persistent_congestion() noexcept {
    _cwnd = _min_window;
    _recovery_valid = false;
    _in_recovery = false;
    _epoch_valid = false;
    _w_max = 0; // next CUBIC epoch: K = 0, W_max = cwnd at its start (RFC 9438 4.8)
    _bytes_acked_in_ca = 0;
    _increase_remainder = 0;
}

void congestion_controller::on_packets_discarded(std::uint64_t bytes) noexcept {
    _bytes_in_flight -= std::min(bytes, _bytes_in_flight);
}

std::uint64_t congestion_controller::pacing_rate_bps(time_ns srtt) const noexcept {
    if (srtt == 0) {
        return 0;
    }
    const double gain = in_slow_start() ? 2.0 : 1.25;
    const double rate = gain * static_cast<double>(_cwnd) * 8.0 * ns_per_sec / static_cast<double>(srtt);
    if (rate >= static_cast<double>(std::numeric_limits<std::uint64_t>::max())) {
        return std::numeric_limits<std::uint64_t>::max();
    }
    return static_cast<std::uint64_t>(rate);
}

} // namespace kwik::transport
