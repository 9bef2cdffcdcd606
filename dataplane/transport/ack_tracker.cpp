// Receive-side ACK state of one path: the received-range set and the ACK timing rules.
#include "dataplane/transport/ack_tracker.hpp"

#include <algorithm>

namespace kwik::transport {

ack_tracker::ack_tracker(const ack_policy& policy) noexcept : _policy(policy) {}

void ack_tracker::insert_range(std::size_t at, std::uint64_t seq) noexcept {
    for (std::size_t i = _count; i > at; --i) {
        _ranges[i] = _ranges[i - 1];
    }
    _ranges[at] = {seq, seq};
    ++_count;
}

void ack_tracker::erase_range(std::size_t at) noexcept {
    for (std::size_t i = at; i + 1 < _count; ++i) {
        _ranges[i] = _ranges[i + 1];
    }
    --_count;
}

std::size_t ack_tracker::position(std::uint64_t seq) const noexcept {
    std::size_t pos = _count;
    while (pos > 0 && _ranges[pos - 1].smallest > seq) {
        --pos;
    }
    return pos;
}

ack_tracker::verdict ack_tracker::lookup(std::uint64_t seq) const noexcept {
    if (seq < _floor) {
        return verdict::too_old;
    }
    const std::size_t pos = position(seq);
    return pos > 0 && _ranges[pos - 1].largest >= seq ? verdict::duplicate : verdict::fresh;
}

ack_tracker::verdict ack_tracker::on_packet(std::uint64_t seq, bool ack_eliciting, bool ecn_ce,
                                            time_ns now) noexcept {
    if (seq < _floor) {
        return verdict::too_old;
    }
    const bool had_any = _count != 0;
    const std::uint64_t expected = had_any ? _ranges[_count - 1].largest + 1 : 0;

    std::size_t pos = position(seq);
    if (pos > 0 && _ranges[pos - 1].largest >= seq) {
        return verdict::duplicate;
    }
    const bool joins_lower = pos > 0 && _ranges[pos - 1].largest + 1 == seq;
    const bool joins_upper = pos < _count && _ranges[pos].smallest == seq + 1;
    if (joins_lower && joins_upper) {
        _ranges[pos - 1].largest = _ranges[pos].largest;
        erase_range(pos);
    } else if (joins_lower) {
        _ranges[pos - 1].largest = seq;
    } else if (joins_upper) {
        _ranges[pos].smallest = seq;
    } else {
        if (_count == range_capacity) {
            if (pos == 0) {
                // Below every range of a full set: indistinguishable from a forgotten one.
                return verdict::too_old;
            }
            _floor = _ranges[0].largest + 1;
            erase_range(0);
            --pos;
        }
        insert_range(pos, seq);
    }

    if (ecn_ce) {
        ++_ecn_ce;
    }
    if (!had_any || seq >= expected) {
        _largest_time = now;
    }
    if (ack_eliciting) {
        if (_unacked_eliciting == 0) {
            _deadline = now + _policy.max_ack_delay;
        }
        ++_unacked_eliciting;
        if (_unacked_eliciting >= _policy.ack_eliciting_threshold || seq != expected) {
            _deadline = std::min(_deadline, now);
        }
    }
    return verdict::fresh;
}

void ack_tracker::build(kdp::ack_frame& out, path_id path, time_ns now) const noexcept {
    out.path_id = path;
    out.ecn_ce = _ecn_ce;
    out.ack_delay_us = now > _largest_time ? (now - _largest_time) / us : 0;
    const std::size_t n = std::min(_count, kdp::max_ack_ranges + 1);
    for (std::size_t i = 0; i < n; ++i) {
        out.ranges[i] = _ranges[_count - 1 - i];
    }
    out.range_count = n;
}

void ack_tracker::on_ack_sent(time_ns now) noexcept {
    _unacked_eliciting = 0;
    _deadline = never;
    _last_ack_sent = now;
}

} // namespace kwik::transport
