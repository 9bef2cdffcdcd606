// The shared metrics model: conversions from and to KCP and the data plane's counters, and the
// smoothing window. One owner thread.
#include "controlplane/server/planning/path_metrics.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

#include "dataplane/api/counters.hpp"

namespace kwik::cp {

namespace {

std::uint32_t saturate_us(std::uint64_t ns) noexcept {
    const std::uint64_t us = ns / 1000;
    return us > std::numeric_limits<std::uint32_t>::max() ? std::numeric_limits<std::uint32_t>::max()
                                                          : static_cast<std::uint32_t>(us);
}

double smooth(double old_value, double sample, double alpha, bool first) noexcept {
    return first ? sample : old_value + alpha * (sample - old_value);
}

} // namespace

std::string_view to_string(path_status s) noexcept {
    switch (s) {
    case path_status::up:
        return "up";
    case path_status::suspect:
        return "suspect";
    case path_status::failed:
        return "failed";
    case path_status::removed:
        return "removed";
    }
    return "unknown";
}

double capacity_estimate_bps(const path_metrics& m) noexcept {
    if (m.capacity_bps > 0) {
        return static_cast<double>(m.capacity_bps);
    }
    double window_rate = 0;
    if (m.smoothed_rtt_us > 0) {
        window_rate = static_cast<double>(m.cwnd_bytes) * 8.0 * 1e6 / static_cast<double>(m.smoothed_rtt_us);
    }
    return std::max(window_rate, static_cast<double>(m.delivery_rate_bps));
}

path_metrics from_kcp(const kcp::v3::PerformanceMetrics::PathMetrics& in, std::string_view connection_id) {
    path_metrics m;
    m.connection_id = std::string(connection_id);
    m.path_id = in.path_id();
    const kcp::v3::PerformanceMetrics::Counters& c = in.counters();
    m.bytes_sent = c.bytes_sent();
    m.bytes_received = c.bytes_received();
    m.packets_sent = c.packets_sent();
    m.packets_received = c.packets_received();
    m.packets_lost = c.packets_lost();
    m.packets_retransmitted = c.packets_retransmitted();
    m.bytes_retransmitted = c.bytes_retransmitted();
    m.smoothed_rtt_us = in.smoothed_rtt_us();
    m.min_rtt_us = in.min_rtt_us();
    m.rtt_var_us = in.rtt_var_us();
    m.cwnd_bytes = in.cwnd_bytes();
    m.bytes_in_flight = in.bytes_in_flight();
    m.delivery_rate_bps = in.delivery_rate_bps();
    m.loss_rate = in.loss_rate();
    return m;
}

std::vector<path_metrics> from_kcp(const kcp::v3::PerformanceMetrics& in) {
    std::vector<path_metrics> out;
    out.reserve(static_cast<std::size_t>(in.paths_size()));
    for (const kcp::v3::PerformanceMetrics::PathMetrics& p : in.paths()) {
        out.push_back(from_kcp(p, in.connection_id()));
    }
    return out;
}

void to_kcp(const path_metrics& in, kcp::v3::PerformanceMetrics::PathMetrics& out) {
    out.set_path_id(in.path_id);
    kcp::v3::PerformanceMetrics::Counters* c = out.mutable_counters();
    c->set_bytes_sent(in.bytes_sent);
    c->set_bytes_received(in.bytes_received);
    c->set_packets_sent(in.packets_sent);
    c->set_packets_received(in.packets_received);
    c->set_packets_lost(in.packets_lost);
    c->set_packets_retransmitted(in.packets_retransmitted);
    c->set_bytes_retransmitted(in.bytes_retransmitted);
    out.set_smoothed_rtt_us(in.smoothed_rtt_us);
    out.set_min_rtt_us(in.min_rtt_us);
    out.set_rtt_var_us(in.rtt_var_us);
    out.set_loss_rate(in.loss_rate);
    out.set_cwnd_bytes(in.cwnd_bytes);
    out.set_bytes_in_flight(in.bytes_in_flight);
    out.set_delivery_rate_bps(in.delivery_rate_bps);
}

kcp::v3::PerformanceMetrics to_kcp(std::string_view connection_id, std::span<const path_metrics> paths,
                               std::uint32_t report_interval_ms) {
    kcp::v3::PerformanceMetrics out;
    out.set_connection_id(std::string(connection_id));
    out.set_report_interval_ms(report_interval_ms);
    kcp::v3::PerformanceMetrics::Counters* total = out.mutable_connection();
    std::uint64_t delivery = 0;
    for (const path_metrics& p : paths) {
        to_kcp(p, *out.add_paths());
        total->set_bytes_sent(total->bytes_sent() + p.bytes_sent);
        total->set_bytes_received(total->bytes_received() + p.bytes_received);
        total->set_packets_sent(total->packets_sent() + p.packets_sent);
        total->set_packets_received(total->packets_received() + p.packets_received);
        total->set_packets_lost(total->packets_lost() + p.packets_lost);
        total->set_packets_retransmitted(total->packets_retransmitted() + p.packets_retransmitted);
        total->set_bytes_retransmitted(total->bytes_retransmitted() + p.bytes_retransmitted);
        delivery += p.delivery_rate_bps;
    }
    out.set_delivery_rate_bps(delivery);
    return out;
}

path_metrics from_counters(const api::path_counters& in, std::string_view connection_id) {
    path_metrics m;
    m.connection_id = std::string(connection_id);
    m.path_id = in.path_id;
    m.bytes_sent = in.tx_bytes;
    m.bytes_received = in.rx_bytes;
    m.packets_sent = in.tx_packets;
    m.packets_received = in.rx_packets;
    m.packets_lost = in.lost_packets;
    m.packets_retransmitted = in.retransmitted_packets;
    m.smoothed_rtt_us = saturate_us(in.smoothed_rtt_ns);
    m.min_rtt_us = saturate_us(in.min_rtt_ns);
    m.rtt_var_us = saturate_us(in.rtt_var_ns);
    m.cwnd_bytes = in.cwnd_bytes;
    m.status = in.status <= static_cast<std::uint64_t>(path_status::removed) ? static_cast<path_status>(in.status)
                                                                            : path_status::failed;
    return m;
}

metrics_window::metrics_window(const window_config& config) noexcept : _config(config) {}

bool metrics_window::add(const path_metrics& s, time_us now) noexcept {
    const bool comparable = _has_last && now > _last_time && s.bytes_sent >= _last.bytes_sent &&
                            s.bytes_received >= _last.bytes_received && s.packets_sent >= _last.packets_sent &&
                            s.packets_lost >= _last.packets_lost;
    if (!comparable) {
        _rates = path_rates{};
        _rates.capacity_bps = capacity_estimate_bps(s);
        _loss_seen = false;
        _last = s;
        _last_time = now;
        _has_last = true;
        return false;
    }
    const double dt = static_cast<double>(now - _last_time) / 1e6;
    const double tx = 8.0 * static_cast<double>(s.bytes_sent - _last.bytes_sent) / dt;
    const double rx = 8.0 * static_cast<double>(s.bytes_received - _last.bytes_received) / dt;
    const std::uint64_t sent = s.packets_sent - _last.packets_sent;
    const std::uint64_t lost = s.packets_lost - _last.packets_lost;
    const double tau = _config.time_constant_s > 0 ? _config.time_constant_s : 1e-9;
    const double alpha = 1.0 - std::exp(-dt / tau);
    const bool first = _rates.intervals == 0;

    _rates.last_tx_bps = tx;
    _rates.last_rx_bps = rx;
    _rates.last_interval_s = dt;
    _rates.tx_bps = smooth(_rates.tx_bps, tx, alpha, first);
    _rates.rx_bps = smooth(_rates.rx_bps, rx, alpha, first);
    if (sent > 0 || lost > 0) {
        _rates.last_loss_rate = static_cast<double>(lost) / static_cast<double>(std::max(sent, lost));
        _rates.loss_rate = smooth(_rates.loss_rate, _rates.last_loss_rate, alpha, !_loss_seen);
        _loss_seen = true;
    }
    _rates.capacity_bps = capacity_estimate_bps(s);
    _rates.utilisation =
        _rates.capacity_bps > 0 ? std::max(_rates.tx_bps, _rates.rx_bps) / _rates.capacity_bps : 0.0;
    ++_rates.intervals;
    _last = s;
    _last_time = now;
    return true;
}

const server_candidate* server_availability::find(std::string_view server_id) const noexcept {
    for (const server_candidate& s : servers) {
        if (s.server_id == server_id) {
            return &s;
        }
    }
    return nullptr;
}

server_availability from_kcp(const kcp::v3::ServerDiscoveryResponse& in) {
    server_availability out;
    for (const kcp::v3::ServerDiscoveryResponse::AvailableServer& s : in.servers()) {
        server_candidate c;
        c.server_id = s.address();
        c.address = s.address();
        c.available_bps = std::uint64_t{s.available_bandwidth_mbps()} * 1'000'000;
        c.latency_us = s.latency_ms() > std::numeric_limits<std::uint32_t>::max() / 1000
                           ? std::numeric_limits<std::uint32_t>::max()
                           : s.latency_ms() * 1000;
        out.servers.push_back(std::move(c));
    }
    return out;
}

} // namespace kwik::cp
