// Adaptive polling's back-off ([kwikd] poll_mode = "adaptive"): after `patience` empty loop
// passes an idle worker sleeps, first `first_sleep`, doubling on each further empty pass up to
// the configured maximum, and never past its next due work (timers, neighbour sweep, counters);
// any pass that did work starts over. Pure logic, no clock of its own: the worker's lcore only.
#pragma once

#include <algorithm>
#include <cstdint>

#include "dataplane/transport/types.hpp"

namespace kwik::engine {

class idle_backoff {
public:
    // About 64 empty passes take 5 to 20 us on a 2-3 GHz core: a packet train that pauses
    // shorter than that never pays a wake-up.
    static constexpr std::uint32_t default_patience = 64;
    static constexpr transport::time_ns first_sleep = 4 * transport::us;

    explicit idle_backoff(transport::time_ns max_sleep, std::uint32_t patience = default_patience) noexcept
        : _max(std::max(max_sleep, first_sleep)), _patience(patience), _step(first_sleep) {}

    // One loop pass ended at `now`; worked: it received, handed off or applied something.
    // next_due: when the worker has work of its own to do (its earliest timer). Returns how
    // long to sleep now, 0 to poll again at once.
    transport::time_ns after_pass(bool worked, transport::time_ns now, transport::time_ns next_due) noexcept {
        if (worked) {
            _empty = 0;
            _step = first_sleep;
            return 0;
        }
        if (_empty < _patience) {
            ++_empty;
            return 0;
        }
        if (next_due <= now) {
            return 0; // due now: the next pass runs it, and the sleep is not lengthened
        }
        const transport::time_ns sleep = std::min(_step, next_due - now);
        _step = std::min(_step * 2, _max);
        return sleep;
    }

    transport::time_ns max_sleep() const noexcept { return _max; }

private:
    transport::time_ns _max;
    std::uint32_t _patience;
    std::uint32_t _empty = 0;
    transport::time_ns _step;
};

} // namespace kwik::engine
