// Virtual-time event queue of the deterministic network simulator (test support only). Events
// run in (time, insertion order), so equal-time events keep the order they were scheduled in and
// a run depends on nothing but its inputs; no clock is ever read. One thread owns a loop.
#pragma once

#include <cstdint>
#include <functional>
#include <set>
#include <vector>

#include "dataplane/transport/types.hpp"

namespace kwik::sim {

using time_ns = transport::time_ns;
inline constexpr time_ns never = transport::never;
using transport::ms;
using transport::sec;
using transport::us;

class event_loop {
public:
    using event_id = std::uint64_t;

    [[nodiscard]] time_ns now() const noexcept { return _now; }

    // Runs fn at virtual time `at` (>= now(); an earlier time is a test bug and throws
    // std::logic_error rather than silently reordering history).
    event_id schedule(time_ns at, std::function<void()> fn);
    event_id schedule_in(time_ns delay, std::function<void()> fn) { return schedule(_now + delay, std::move(fn)); }

    // The event will not run. Cancelling one that already ran or was cancelled is harmless.
    void cancel(event_id id);

    // Runs the earliest event; false when none is pending.
    bool run_one();

    // Runs every event at or before t, then sets now() to t. With t == never it runs until no
    // event is left and leaves now() at the last one.
    void run_until(time_ns t);

    // Runs events while pred() holds and the next event is at or before `limit`. Returns true
    // when pred() became false (the condition the caller waits for was reached), false when the
    // limit or the end of events came first; then now() is `limit` (unless limit == never).
    bool run_while(const std::function<bool()>& pred, time_ns limit);

    [[nodiscard]] std::size_t pending() const noexcept { return _heap.size() - _cancelled.size(); }
    [[nodiscard]] std::uint64_t events_run() const noexcept { return _events_run; }
    // Time of the next pending event, never if none.
    [[nodiscard]] time_ns next_time();

private:
    struct entry {
        time_ns at;
        event_id seq;
        std::function<void()> fn;
    };
    // Min-heap on (at, seq): std::push_heap builds a max-heap, so "less" means "later".
    static bool later(const entry& a, const entry& b) noexcept
    {
        return a.at != b.at ? a.at > b.at : a.seq > b.seq;
    }
    void drop_cancelled_top();

    time_ns _now = 0;
    event_id _next_seq = 0;
    std::uint64_t _events_run = 0;
    std::vector<entry> _heap;
    std::set<event_id> _cancelled; // only ids still in the heap
};

} // namespace kwik::sim
