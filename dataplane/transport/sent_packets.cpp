// Send-side loss recovery of one path: the packet and frame rings, the non-template parts.
#include "dataplane/transport/sent_packets.hpp"

#include <bit>

namespace kwik::transport {

namespace {

constexpr std::uint32_t max_capacity = std::uint32_t{1} << 31;

std::uint32_t round_capacity(std::uint32_t want, std::uint32_t floor) noexcept {
    return std::bit_ceil(std::clamp(want, floor, max_capacity));
}

// Never equal to a real sequence number (those stay below 2^62).
constexpr std::uint64_t no_seq = ~std::uint64_t{0};

} // namespace

sent_packets::sent_packets(const loss_config& config) noexcept
    : _config(config),
      _rtt(config.initial_rtt),
      _packet_cap(round_capacity(config.packet_capacity, 2)),
      _packet_mask(_packet_cap - 1),
      _frame_cap(round_capacity(config.frame_capacity,
                                static_cast<std::uint32_t>(kdp::max_frames_per_packet))),
      _frame_mask(_frame_cap - 1) {
    _config.packet_capacity = static_cast<std::uint32_t>(_packet_cap);
    _config.frame_capacity = _frame_cap;
    _slots = std::make_unique<slot[]>(_packet_cap);
    for (std::uint64_t i = 0; i < _packet_cap; ++i) {
        _slots[i].packet = sent_packet{no_seq, 0, 0, false, false, 0, 0, 0, 0};
        _slots[i].state = slot_state::untracked;
    }
    _frames = std::make_unique<sent_frame[]>(_frame_cap);
}

std::uint32_t sent_packets::frame_capacity_left() const noexcept {
    const std::uint32_t used = _frame_tail - _frame_head;
    if (used == 0) {
        return _frame_cap; // on_sent realigns an empty ring
    }
    const std::uint32_t free = _frame_cap - used;
    const std::uint32_t to_end = _frame_cap - (_frame_tail & _frame_mask);
    if (to_end >= free) {
        return free;
    }
    // The free space wraps: a packet's records go either before the end or, skipping the end,
    // from index 0.
    return std::max(to_end, free - to_end);
}

bool sent_packets::can_send() const noexcept {
    return _next_seq <= kdp::varint_max && _next_seq - _head_seq < _packet_cap &&
           frame_capacity_left() >= kdp::max_frames_per_packet;
}

bool sent_packets::on_sent(time_ns now, std::uint32_t bytes, bool ack_eliciting,
                           std::span<const sent_frame> frames) noexcept {
    if (_next_seq > kdp::varint_max) [[unlikely]] {
        return false;
    }
    const bool slot_free = _next_seq - _head_seq < _packet_cap;
    if (!ack_eliciting) {
        // Keep the send time while the slot is free (RTT samples from ACKs naming it); never
        // in flight, never blocks the ring.
        if (slot_free) {
            slot& s = slot_of(_next_seq);
            s.packet = sent_packet{_next_seq, now, bytes, false, false, _frame_tail, 0,
                                   _delivered, _delivered_time};
            s.state = slot_state::untracked;
        }
        ++_next_seq;
        return true;
    }
    if (!slot_free || frames.size() > frame_capacity_left() ||
        frames.size() > std::numeric_limits<std::uint16_t>::max()) {
        return false;
    }
    const auto n = static_cast<std::uint32_t>(frames.size());
    const std::uint32_t to_end = _frame_cap - (_frame_tail & _frame_mask);
    if (n > to_end) {
        // Skip the ring's end so the packet's records are contiguous. An empty ring moves its
        // head along: no live packet points into it (heads move only past packets with frames).
        if (_frame_tail == _frame_head) {
            _frame_head += to_end;
        }
        _frame_tail += to_end;
    }
    const std::uint32_t first = _frame_tail;
    std::copy(frames.begin(), frames.end(), &_frames[first & _frame_mask]);
    _frame_tail += n;

    if (_packets_in_flight == 0) {
        // Restarting from idle: the idle time is not delivery time.
        _delivered_time = now;
    }
    slot& s = slot_of(_next_seq);
    s.packet = sent_packet{_next_seq, now, bytes, true, true, first,
                           static_cast<std::uint16_t>(n), _delivered, _delivered_time};
    s.state = slot_state::outstanding;
    _bytes_in_flight += bytes;
    ++_packets_in_flight;
    _last_eliciting_sent = now;
    ++_next_seq;
    return true;
}

time_ns sent_packets::pto_deadline() const noexcept {
    if (_packets_in_flight == 0) {
        return never;
    }
    const time_ns base = _rtt.pto_base(_config.granularity, _config.max_ack_delay);
    // Saturate: past 2^30 backoffs (or an overflowing product) the path is dead anyway.
    const std::uint32_t shift = std::min<std::uint32_t>(_pto_count, 62);
    if (base != 0 && base > (never - _last_eliciting_sent) >> shift) {
        return never;
    }
    return _last_eliciting_sent + (base << shift);
}

bool sent_packets::well_formed(const kdp::ack_frame& ack) const noexcept {
    if (ack.range_count == 0 || ack.range_count > ack.ranges.size()) {
        return false;
    }
    if (ack.largest() >= _next_seq) {
        return false;
    }
    for (std::size_t i = 0; i < ack.range_count; ++i) {
        const kdp::ack_range& r = ack.ranges[i];
        if (r.smallest > r.largest) {
            return false;
        }
        // Descending and disjoint, as the decoder guarantees for ACKs from the wire.
        if (i != 0 && r.largest >= ack.ranges[i - 1].smallest) {
            return false;
        }
    }
    return true;
}

void sent_packets::take_out_of_flight(const sent_packet& p) noexcept {
    _bytes_in_flight -= p.bytes;
    --_packets_in_flight;
}

void sent_packets::free_resolved() noexcept {
    while (_head_seq < _next_seq) {
        const slot& s = slot_of(_head_seq);
        if (s.packet.seq == _head_seq) {
            if (s.state == slot_state::outstanding) {
                break;
            }
            if (s.packet.frame_count != 0) {
                _frame_head = s.packet.first_frame + s.packet.frame_count;
            }
        }
        // else: an ACK-only packet whose record was never written (the ring was full).
        ++_head_seq;
    }
}

} // namespace kwik::transport
