// Virtual-time event queue; see event_loop.hpp.
#include "tests/sim/event_loop.hpp"

#include <algorithm>
#include <stdexcept>
#include <string>

namespace kwik::sim {

event_loop::event_id event_loop::schedule(time_ns at, std::function<void()> fn)
{
    if (at < _now) {
        throw std::logic_error("event_loop::schedule: time " + std::to_string(at) + " is before now " +
                               std::to_string(_now));
    }
    if (!fn) {
        throw std::logic_error("event_loop::schedule: empty function");
    }
    const event_id id = _next_seq++;
    _heap.push_back(entry{at, id, std::move(fn)});
    std::push_heap(_heap.begin(), _heap.end(), later);
    return id;
}

void event_loop::cancel(event_id id)
{
    // Only remember ids that are still queued, so the set cannot grow without bound.
    for (const entry& e : _heap) {
        if (e.seq == id) {
            _cancelled.insert(id);
            return;
        }
    }
}

void event_loop::drop_cancelled_top()
{
    while (!_heap.empty() && !_cancelled.empty()) {
        const auto it = _cancelled.find(_heap.front().seq);
        if (it == _cancelled.end()) {
            return;
        }
        _cancelled.erase(it);
        std::pop_heap(_heap.begin(), _heap.end(), later);
        _heap.pop_back();
    }
}

time_ns event_loop::next_time()
{
    drop_cancelled_top();
    return _heap.empty() ? never : _heap.front().at;
}

bool event_loop::run_one()
{
    drop_cancelled_top();
    if (_heap.empty()) {
        return false;
    }
    std::pop_heap(_heap.begin(), _heap.end(), later);
    entry e = std::move(_heap.back());
    _heap.pop_back();
    _now = e.at;
    ++_events_run;
    // Popped before running: an event may schedule more, or throw, and the queue stays sound.
    e.fn();
    return true;
}

void event_loop::run_until(time_ns t)
{
    if (t == never) {
        while (run_one()) {
        }
        return;
    }
    while (next_time() <= t) {
        run_one();
    }
    _now = std::max(_now, t);
}

bool event_loop::run_while(const std::function<bool()>& pred, time_ns limit)
{
    while (pred()) {
        const time_ns next = next_time();
        if (next == never || next > limit) {
            if (limit != never) {
                _now = std::max(_now, limit);
            }
            return false;
        }
        run_one();
    }
    return true;
}

} // namespace kwik::sim
