// Token-bucket pacer, one per path: a burst of at most burst_bytes, then bytes at the path's
// pacing rate (congestion_controller::pacing_rate_bps). Owned and called only by the thread that
// owns the connection. Header-only: two short functions on the send path.
#pragma once

#include <algorithm>
#include <cstdint>

#include "dataplane/transport/types.hpp"

namespace kwik::transport {

// Tokens are kept exactly, in "bit-nanoseconds" (bytes * 8e9): a rate in bit/s times an elapsed
// time in ns adds exactly that many, so 1200 B at 96 Mbit/s is exactly 100 us and spacing does
// not drift by rounding. The bucket starts full. Tokens may go negative when a sender ignores
// next_send_time (or sends a packet larger than the bucket); the debt is paid back before the
// next send. The rate is passed on each call because it changes with every ACK; tokens already
// in the bucket are bytes and do not depend on it, and the time since the last on_sent refills
// at the rate passed now. rate_bps == 0 means "no rate known" (no RTT estimate yet): not paced,
// and the bucket refills to full. Uses the GCC/Clang __int128 extension for the exact products.
class pacer {
public:
    explicit pacer(std::uint32_t burst_bytes = 10 * 1200) noexcept
        : _burst(static_cast<scaled>(burst_bytes) * scale), _tokens(_burst) {}

    // <= now means send now. A packet larger than the bucket waits for a full bucket. The answer
    // is the absolute time at which the bucket will hold the packet (at this rate), or now when it
    // already does; it does not otherwise depend on now, so next_send_time(bytes, 0, rate) is the
    // earliest send time, for arming a timer.
    time_ns next_send_time(std::uint32_t bytes, time_ns now, std::uint64_t rate_bps) const noexcept {
        if (rate_bps == 0) {
            return now;
        }
        const scaled need = std::min(static_cast<scaled>(bytes) * scale, _burst);
        if (_tokens >= need) {
            return now;
        }
        const scaled rate = static_cast<scaled>(rate_bps);
        const scaled wait = (need - _tokens + rate - 1) / rate; // round up: never early
        if (wait > static_cast<scaled>(never - _last)) {
            return never;
        }
        return std::max(now, _last + static_cast<time_ns>(wait));
    }

    void on_sent(std::uint32_t bytes, time_ns now, std::uint64_t rate_bps) noexcept {
        if (rate_bps == 0) {
            _tokens = _burst;
        } else {
            _tokens = tokens_at(now, rate_bps) - static_cast<scaled>(bytes) * scale;
        }
        _last = std::max(_last, now);
    }

    std::uint32_t burst_bytes() const noexcept { return static_cast<std::uint32_t>(_burst / scale); }

private:
    __extension__ using scaled = __int128; // bytes * 8e9 overflows 64 bits above 1 GB
    static constexpr scaled scale = 8 * static_cast<scaled>(1'000'000'000);

    scaled tokens_at(time_ns now, std::uint64_t rate_bps) const noexcept {
        if (now <= _last || _tokens >= _burst) {
            return std::min(_tokens, _burst);
        }
        // Cap the elapsed time at what fills the bucket so the product cannot overflow.
        const scaled rate = static_cast<scaled>(rate_bps);
        const scaled fill_ns = (_burst - _tokens + rate - 1) / rate;
        const scaled elapsed = static_cast<scaled>(now - _last);
        if (elapsed >= fill_ns) {
            return _burst;
        }
        return _tokens + elapsed * rate;
    }

    scaled _burst;
    scaled _tokens;
    time_ns _last = 0;
};

} // namespace kwik::transport
