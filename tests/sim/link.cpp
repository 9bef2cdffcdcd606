// One direction of a simulated link; see link.hpp.
#include "tests/sim/link.hpp"

#include <algorithm>
#include <stdexcept>

namespace kwik::sim {

link::link(event_loop& loop, link_config config, std::uint64_t seed, std::uint32_t id, trace* log)
    : _loop(loop), _config(std::move(config)), _rng(seed), _id(id), _log(log)
{
}

time_ns link::serialisation(std::uint64_t bytes, std::uint64_t rate_bps) noexcept
{
    if (rate_bps == 0) {
        return 0;
    }
    return bytes * 8 * sec / rate_bps;
}

double link::uniform() noexcept
{
    return static_cast<double>(_rng() >> 11) * 0x1.0p-53;
}

bool link::in_blackout(time_ns enter, time_ns leave) const noexcept
{
    // In flight over [enter, leave]; a window [start, end) catches it if the two overlap.
    for (const blackout_window& w : _config.blackouts) {
        if (enter < w.end && leave >= w.start) {
            return true;
        }
    }
    return false;
}

void link::drain(time_ns now)
{
    while (!_queue.empty() && _queue.front().tx_end <= now) {
        _queue_bytes -= _queue.front().size;
        _queue.pop_front();
    }
}

std::uint64_t link::queue_bytes()
{
    drain(_loop.now());
    return _queue_bytes;
}

void link::record(trace_kind k, const datagram& d, time_ns at)
{
    if (_log != nullptr) {
        _log->append(trace_record{at, k, d.src, static_cast<std::uint32_t>(d.path), _id,
                                  static_cast<std::uint32_t>(d.bytes.size()), trace::hash_bytes(d.bytes)});
    }
}

void link::send(datagram d)
{
    const time_ns now = _loop.now();
    const std::uint64_t size = d.bytes.size();
    ++_counters.sent;
    _counters.bytes_sent += size;

    // A dark link accepts nothing; the packet never occupies the queue.
    if (in_blackout(now, now)) {
        ++_counters.dropped_blackout;
        record(trace_kind::drop_blackout, d, now);
        return;
    }

    time_ns tx_end = now;
    if (_config.rate_bps != 0) {
        drain(now);
        if (_queue_bytes + size > _config.queue_limit_bytes) {
            ++_counters.dropped_queue;
            record(trace_kind::drop_queue, d, now);
            return;
        }
        if (_config.ecn_threshold_bytes != 0 && _queue_bytes >= _config.ecn_threshold_bytes) {
            if (!d.ect) {
                ++_counters.dropped_queue;
                record(trace_kind::drop_queue, d, now);
                return;
            }
            if (!d.ecn_ce) {
                d.ecn_ce = true;
                ++_counters.marked_ce;
                record(trace_kind::mark_ce, d, now);
            }
        }
        time_ns start = _busy_until;
        if (now >= _busy_until) {
            // The link went idle: the fractional nanosecond carried from the last burst is gone.
            start = now;
            _busy_rem = 0;
        }
        const std::uint64_t num = size * 8 * sec + _busy_rem;
        tx_end = start + num / _config.rate_bps;
        _busy_rem = num % _config.rate_bps;
        _busy_until = tx_end;
        _queue.push_back(queued{tx_end, size});
        _queue_bytes += size;
        _counters.queue_max_bytes = std::max(_counters.queue_max_bytes, _queue_bytes);
    }

    // Draw in a fixed order, and only for enabled impairments, so one seed replays exactly.
    const bool lost = _config.loss > 0 && uniform() < _config.loss;
    std::int64_t jitter = 0;
    if (_config.jitter != 0) {
        const std::uint64_t span = 2 * _config.jitter + 1;
        jitter = static_cast<std::int64_t>(_rng() % span) - static_cast<std::int64_t>(_config.jitter);
    }
    const bool held = _config.reorder > 0 && uniform() < _config.reorder;
    const bool dup = _config.duplicate > 0 && uniform() < _config.duplicate;

    if (lost) {
        // It used its share of the link (queued above) and vanished on the wire.
        ++_counters.dropped_loss;
        record(trace_kind::drop_loss, d, now);
        return;
    }

    time_ns arrival = tx_end + _config.delay;
    if (jitter < 0 && static_cast<time_ns>(-jitter) > _config.delay) {
        arrival = tx_end;
    } else {
        arrival = static_cast<time_ns>(static_cast<std::int64_t>(arrival) + jitter);
    }
    if (held) {
        // Exempt from the FIFO floor, and it does not raise it: later packets overtake this one.
        arrival += _config.reorder_delay;
        ++_counters.reordered;
        record(trace_kind::reorder, d, now);
    } else {
        // Jitter never reorders: a packet does not arrive before the one sent ahead of it.
        arrival = std::max(arrival, _last_arrival);
        _last_arrival = arrival;
    }

    if (dup) {
        ++_counters.duplicated;
        record(trace_kind::duplicate, d, now);
        _loop.schedule(arrival, [this, copy = d, now]() mutable { arrive(std::move(copy), now); });
        // The copy is scheduled first; identical bytes, so which is "the original" is moot.
    }
    _loop.schedule(arrival, [this, d = std::move(d), now]() mutable { arrive(std::move(d), now); });
}

void link::arrive(datagram&& d, time_ns entered)
{
    const time_ns now = _loop.now();
    if (in_blackout(entered, now)) {
        ++_counters.dropped_blackout;
        record(trace_kind::drop_blackout, d, now);
        return;
    }
    ++_counters.delivered;
    _counters.bytes_delivered += d.bytes.size();
    if (!_sink) {
        throw std::logic_error("sim::link " + std::to_string(_id) + ": no sink set");
    }
    _sink(std::move(d));
}

} // namespace kwik::sim
