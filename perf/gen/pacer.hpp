// Token-bucket pacing over the TSC for one worker lcore's transmit loop: a rate in units per
// second (packets, or wire bytes for --rate-mbps) and a bucket of one burst. grant() is asked
// before each burst how many packets it may send now. Owned by one lcore; no allocation.
#pragma once

#include <algorithm>
#include <cstdint>

namespace kwik::gen {

class pacer {
public:
    // rate_per_s: 0 means unpaced (grant() always allows the whole burst). tsc_hz: the TSC's rate.
    // burst_cost: what a full burst costs (packets, or bytes), the most the bucket holds.
    void configure(double rate_per_s, double tsc_hz, double burst_cost, std::uint64_t now_tsc) noexcept {
        _per_cycle = rate_per_s / tsc_hz;
        _cap = std::max(burst_cost, 1.0);
        _tokens = 0;
        _last = now_tsc;
    }
    bool unpaced() const noexcept { return _per_cycle <= 0; }

    // Refills the bucket up to now; returns the tokens available.
    double refill(std::uint64_t now_tsc) noexcept {
        if (now_tsc > _last) {
            _tokens = std::min(_cap, _tokens + static_cast<double>(now_tsc - _last) * _per_cycle);
            _last = now_tsc;
        }
        return _tokens;
    }
    // How many packets of unit_cost each may go now (at most max).
    std::uint32_t grant(std::uint64_t now_tsc, double unit_cost, std::uint32_t max) noexcept {
        if (unpaced()) {
            return max;
        }
        const double t = refill(now_tsc);
        const double n = t / unit_cost;
        return n >= max ? max : static_cast<std::uint32_t>(n);
    }
    // Takes the cost of what was actually offered.
    void spend(double cost) noexcept {
        if (!unpaced()) {
            _tokens -= cost;
        }
    }
    double tokens() const noexcept { return _tokens; }

private:
    double _per_cycle = 0;
    double _cap = 1;
    double _tokens = 0;
    std::uint64_t _last = 0;
};

} // namespace kwik::gen
