// Per-path round-trip time estimator (RFC 9002 section 5): latest, smoothed and minimum RTT and
// the RTT variance, fed one sample per ACK that newly acknowledges its largest packet.
// Owned by one path's sent_packets; called only by the thread that owns the connection.
#pragma once

#include <algorithm>

#include "dataplane/transport/types.hpp"

namespace kwik::transport {

class rtt_estimator {
public:
    // Until the first sample, smoothed = initial_rtt and variance = initial_rtt / 2 (RFC 9002
    // 5.3), so the first PTO is 3 * initial_rtt + max_ack_delay; min and latest read 0.
    explicit rtt_estimator(time_ns initial_rtt = 100 * ms) noexcept
        : _smoothed(initial_rtt), _variance(initial_rtt / 2) {}

    // latest = ACK arrival - send time of the newly acknowledged largest packet. min ignores
    // ack_delay; ack_delay is capped at max_ack_delay (the peer cannot legitimately hold an ACK
    // longer) and subtracted only when that leaves at least min, so a peer that inflates its
    // delay cannot push the sample below the path's floor.
    void on_sample(time_ns latest, time_ns ack_delay, time_ns max_ack_delay) noexcept {
        _latest = latest;
        if (!_has_sample) {
            _has_sample = true;
            _min = latest;
            _smoothed = latest;
            _variance = latest / 2;
            return;
        }
        _min = std::min(_min, latest);
        const time_ns delay = std::min(ack_delay, max_ack_delay);
        time_ns adjusted = latest;
        if (latest - _min >= delay) {
            adjusted = latest - delay;
        }
        const time_ns deviation = _smoothed > adjusted ? _smoothed - adjusted : adjusted - _smoothed;
        // Integer EWMAs, truncating: rttvar = 3/4 rttvar + 1/4 |srtt - adj|; srtt = 7/8 srtt + 1/8 adj.
        _variance = (3 * _variance + deviation) / 4;
        _smoothed = (7 * _smoothed + adjusted) / 8;
    }

    bool has_sample() const noexcept { return _has_sample; }
    time_ns latest() const noexcept { return _latest; }
    time_ns smoothed() const noexcept { return _smoothed; }
    time_ns variance() const noexcept { return _variance; }
    time_ns min() const noexcept { return _min; }

    // The probe timeout before backoff (RFC 9002 6.2.1).
    time_ns pto_base(time_ns granularity, time_ns max_ack_delay) const noexcept {
        return _smoothed + std::max(4 * _variance, granularity) + max_ack_delay;
    }

private:
    time_ns _latest = 0;
    time_ns _smoothed;
    time_ns _variance;
    time_ns _min = 0;
    bool _has_sample = false;
};

} // namespace kwik::transport
