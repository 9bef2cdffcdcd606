// The send side of one path's loss recovery (RFC 9002): every packet sent with what it carried,
// ACK processing, loss detection by packet and time threshold, the probe timeout, the RTT
// estimator and a BBR-style delivery-rate sample. Owned by one path of one connection; called
// only by the thread that owns the connection. All storage is allocated by the constructor.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <memory>
#include <span>

#include "dataplane/kdp/control.hpp"
#include "dataplane/kdp/wire.hpp"
#include "dataplane/transport/rtt_estimator.hpp"
#include "dataplane/transport/types.hpp"

namespace kwik::transport {

struct sent_frame {              // what a sent packet carried, to act on when acked or lost
    enum class kind : std::uint8_t { stream, control };
    kind what = kind::stream;
    kdp::control_type control = kdp::control_type::max_data; // when what == control
    bool fin = false;
    stream_id stream = 0;        // stream frames and stream-scoped control frames
    std::uint64_t offset = 0;    // stream frames: offset; control frames: the limit they carried
    std::uint32_t length = 0;    // stream frames: stream bytes covered
};

struct sent_packet {
    std::uint64_t seq;
    time_ns time_sent;
    std::uint32_t bytes;
    bool ack_eliciting;
    bool in_flight;
    std::uint32_t first_frame; // into the tracker's frame ring (a wrapping counter)
    std::uint16_t frame_count;
    std::uint64_t delivered_at_send;      // bytes delivered (acked) when this packet was sent
    time_ns delivered_time_at_send;       // when that count was last raised
};

struct loss_config {
    std::uint32_t packet_threshold = 3;
    double time_threshold = 9.0 / 8;
    time_ns granularity = 1 * ms;
    time_ns max_ack_delay = 5 * ms;       // the peer's
    time_ns initial_rtt = 100 * ms;
    std::uint32_t packet_capacity = 8192; // packets in flight at most (power of two)
    std::uint32_t frame_capacity = 65536; // frame records in flight at most (power of two)
};

struct ack_outcome {
    bool new_largest = false;       // the ACK's largest is above every number acknowledged before
    bool rtt_sampled = false;       // an RTT sample was taken
    std::uint64_t bytes_acked = 0, packets_acked = 0;
    std::uint64_t bytes_lost = 0, packets_lost = 0;
    time_ns largest_lost_time_sent = 0; // for one-reduction-per-recovery-period
    std::uint64_t ecn_ce_delta = 0;     // increase of the peer's CE count
    bool invalid = false;               // acknowledged a sequence number never sent: protocol violation
};

// Packets live in a ring indexed by seq & (packet_capacity - 1); their frames in a second ring,
// contiguous per packet. Both free their oldest records as the oldest packets are resolved
// (acked or lost), so a record and its frames stay valid until the packet is resolved.
//
// Packets that are not ack-eliciting (ACK-only) are numbered and their send time is kept while
// their slot is not reused (an ACK naming one as largest still gives an RTT sample), but they
// are never in flight, carry no frame records, are never reported acked or lost, and never
// hold ring space: a receiver that only sends ACKs cannot fill the ring, and an ACK can always
// be sent, even when the ring is full of packets in flight.
//
// Listener callbacks run inside on_ack / on_loss_timer / declare_all_lost, with the packet and
// its frames valid for the call; a listener queues frames for retransmission but must not call
// back into this sent_packets.
class sent_packets {
public:
    // All storage is allocated here, never later (capacities are rounded up to powers of two;
    // frame_capacity to at least kdp::max_frames_per_packet). Allocation failure at start-up
    // terminates (noexcept constructor).
    explicit sent_packets(const loss_config& config = {}) noexcept;

    std::uint64_t next_seq() const noexcept { return _next_seq; } // starts at 0

    // An ack-eliciting packet with up to kdp::max_frames_per_packet frames can be recorded now.
    // (on_sent accepts more frames when frame_capacity_left() says they fit.)
    bool can_send() const noexcept;
    // The most frame records the next on_sent can take (a packet's records are contiguous, so
    // this allows for the ring's wrap).
    std::uint32_t frame_capacity_left() const noexcept;

    // Records the packet with seq = next_seq() (then next_seq advances); frames are copied (and
    // ignored when !ack_eliciting). False, with nothing recorded and next_seq unchanged, when an
    // ack-eliciting packet does not fit (packet ring full or frames > frame_capacity_left()) or
    // the path's numbers are exhausted (2^62): the caller must not send it.
    bool on_sent(time_ns now, std::uint32_t bytes, bool ack_eliciting,
                 std::span<const sent_frame> frames) noexcept;

    // Listener: void on_acked(const sent_packet&, std::span<const sent_frame>);
    //           void on_lost(const sent_packet&, std::span<const sent_frame>)
    // Acked packets are reported in ascending seq order, then newly lost ones. An RTT sample is
    // taken when the ACK's largest is new and some newly acked packet is ack-eliciting (RFC 9002
    // 5.1; the largest itself may be ACK-only). Any ACK that acknowledges something new (a
    // packet, or a new largest) resets pto_count and sets last_ack_time. invalid (largest >=
    // next_seq, or ranges not descending and disjoint): nothing is applied.
    template <class Listener>
    ack_outcome on_ack(const kdp::ack_frame& ack, time_ns now, Listener& l) noexcept;
    // Time-threshold losses due by now (call at loss_time()).
    template <class Listener>
    ack_outcome on_loss_timer(time_ns now, Listener& l) noexcept;
    // The path failed: everything in flight is lost.
    template <class Listener>
    ack_outcome declare_all_lost(Listener& l) noexcept;

    time_ns loss_time() const noexcept { return _loss_time; } // earliest time-threshold loss deadline
    // Last ack-eliciting send + pto_base * 2^pto_count; never if nothing is in flight.
    time_ns pto_deadline() const noexcept;
    void on_pto() noexcept { ++_pto_count; } // the caller sends 1-2 probes
    std::uint32_t pto_count() const noexcept { return _pto_count; }

    std::uint64_t bytes_in_flight() const noexcept { return _bytes_in_flight; }
    std::uint64_t packets_in_flight() const noexcept { return _packets_in_flight; }
    time_ns last_ack_time() const noexcept { return _last_ack_time; } // 0 if never
    // Bits per second: bytes delivered between the newest acked packet's send and its ACK, over
    // the time between the ACK that preceded its send and this one (BBR's ack_elapsed; a send
    // after an idle period restarts the clock, so idle time is not counted). 0 until measured.
    std::uint64_t delivery_rate_bps() const noexcept { return _delivery_rate_bps; }
    const rtt_estimator& rtt() const noexcept { return _rtt; }

    // The largest sequence number ever acknowledged (valid when any_acked()).
    std::uint64_t largest_acked() const noexcept { return _largest_acked; }
    bool any_acked() const noexcept { return _any_acked; }
    const loss_config& config() const noexcept { return _config; }

private:
    enum class slot_state : std::uint8_t { outstanding, acked, lost, untracked };
    struct slot {
        sent_packet packet;
        slot_state state;
    };

    slot& slot_of(std::uint64_t seq) noexcept { return _slots[seq & _packet_mask]; }
    // The slot holding seq's record while it is outstanding, else null.
    slot* outstanding(std::uint64_t seq) noexcept {
        slot& s = slot_of(seq);
        return s.packet.seq == seq && s.state == slot_state::outstanding ? &s : nullptr;
    }
    // Outstanding packets all lie in [_head_seq, tracked_end()): one is recorded only while
    // next_seq - head < capacity, and head never moves back. Loops stop there, so ACK-only
    // packets sent past a full ring cannot lengthen them.
    std::uint64_t tracked_end() const noexcept {
        return std::min(_next_seq, _head_seq + _packet_cap);
    }
    std::span<const sent_frame> frames_of(const sent_packet& p) const noexcept {
        return {&_frames[p.first_frame & _frame_mask], p.frame_count};
    }
    bool well_formed(const kdp::ack_frame& ack) const noexcept;
    void take_out_of_flight(const sent_packet& p) noexcept;
    template <class Listener>
    void mark_lost(slot& s, ack_outcome& out, Listener& l) noexcept;
    template <class Listener>
    void detect_lost(time_ns now, ack_outcome& out, Listener& l) noexcept;
    void free_resolved() noexcept;

    loss_config _config;
    rtt_estimator _rtt;
    std::unique_ptr<slot[]> _slots;
    std::uint64_t _packet_cap;
    std::uint64_t _packet_mask;
    std::unique_ptr<sent_frame[]> _frames;
    std::uint32_t _frame_cap;
    std::uint32_t _frame_mask;
    // Wrapping counters (the capacity divides 2^32): records in use = _frame_tail - _frame_head.
    std::uint32_t _frame_head = 0;
    std::uint32_t _frame_tail = 0;
    std::uint64_t _head_seq = 0; // every packet below is resolved and its slot free
    std::uint64_t _next_seq = 0;
    std::uint64_t _largest_acked = 0;
    bool _any_acked = false;
    std::uint32_t _pto_count = 0;
    time_ns _loss_time = never;
    time_ns _last_eliciting_sent = 0;
    time_ns _last_ack_time = 0;
    std::uint64_t _bytes_in_flight = 0;
    std::uint64_t _packets_in_flight = 0;
    std::uint64_t _peer_ecn_ce = 0;
    std::uint64_t _delivered = 0;      // bytes of in-flight packets acked so far
    time_ns _delivered_time = 0;       // when _delivered last rose (or the flow restarted)
    std::uint64_t _delivery_rate_bps = 0;
};

// ---- templates -------------------------------------------------------------------------

template <class Listener>
void sent_packets::mark_lost(slot& s, ack_outcome& out, Listener& l) noexcept {
    s.state = slot_state::lost;
    take_out_of_flight(s.packet);
    out.bytes_lost += s.packet.bytes;
    ++out.packets_lost;
    out.largest_lost_time_sent = std::max(out.largest_lost_time_sent, s.packet.time_sent);
    l.on_lost(s.packet, frames_of(s.packet));
}

// RFC 9002 6.1 (DetectAndRemoveLostPackets): among outstanding packets at or below the largest
// acknowledged, lost when packet_threshold newer ones were acked or sent loss_delay before now;
// the earliest time the others would become lost is the loss timer. Scans from the oldest
// unresolved packet; everything more than packet_threshold below the largest acked is resolved
// after each pass, so the scan stays a few packets long.
template <class Listener>
void sent_packets::detect_lost(time_ns now, ack_outcome& out, Listener& l) noexcept {
    _loss_time = never;
    if (!_any_acked) {
        return;
    }
    const time_ns rtt = std::max(_rtt.latest(), _rtt.smoothed());
    const time_ns loss_delay = std::max(
        static_cast<time_ns>(_config.time_threshold * static_cast<double>(rtt)), _config.granularity);
    const std::uint64_t last = std::min(_largest_acked, tracked_end() - 1);
    for (std::uint64_t seq = _head_seq; seq <= last && _packets_in_flight != 0; ++seq) {
        slot* s = outstanding(seq);
        if (s == nullptr) {
            continue;
        }
        if (s->packet.time_sent + loss_delay <= now ||
            _largest_acked >= seq + _config.packet_threshold) {
            mark_lost(*s, out, l);
        } else {
            _loss_time = std::min(_loss_time, s->packet.time_sent + loss_delay);
        }
    }
}

template <class Listener>
ack_outcome sent_packets::on_ack(const kdp::ack_frame& ack, time_ns now, Listener& l) noexcept {
    ack_outcome out;
    if (!well_formed(ack)) [[unlikely]] {
        out.invalid = true;
        return out;
    }
    const std::uint64_t largest = ack.largest();
    const slot& largest_slot = slot_of(largest);
    // The record is still there (not overwritten by a later packet): its send time is usable.
    const bool largest_known = largest_slot.packet.seq == largest;
    const time_ns largest_sent = largest_slot.packet.time_sent;

    bool eliciting_acked = false;
    const sent_packet* newest = nullptr; // the most recently sent newly acked packet
    // Lowest range first, so packets are reported in ascending order.
    for (std::size_t r = ack.range_count; r-- > 0;) {
        const std::uint64_t hi = std::min(ack.ranges[r].largest, tracked_end() - 1);
        const std::uint64_t lo = std::max(ack.ranges[r].smallest, _head_seq);
        for (std::uint64_t seq = lo; seq <= hi; ++seq) {
            slot* s = outstanding(seq);
            if (s == nullptr) {
                continue; // resolved before (duplicate or spurious-loss ACK), or ACK-only
            }
            s->state = slot_state::acked;
            take_out_of_flight(s->packet);
            out.bytes_acked += s->packet.bytes;
            ++out.packets_acked;
            _delivered += s->packet.bytes;
            eliciting_acked = eliciting_acked || s->packet.ack_eliciting;
            newest = &s->packet;
            l.on_acked(s->packet, frames_of(s->packet));
        }
    }

    out.new_largest = !_any_acked || largest > _largest_acked;
    if (out.new_largest) {
        _largest_acked = largest;
        _any_acked = true;
        if (eliciting_acked && largest_known) {
            // The peer's delay is in µs; anything past max_ack_delay is capped by the estimator.
            const time_ns delay =
                ack.ack_delay_us > never / us ? never : ack.ack_delay_us * us;
            _rtt.on_sample(now > largest_sent ? now - largest_sent : 0, delay,
                           _config.max_ack_delay);
            out.rtt_sampled = true;
        }
    }
    if (newest != nullptr) {
        _delivered_time = now;
        // ack_elapsed is at least the newest packet's own round trip, never below min RTT, so
        // BBR's discard of samples shorter than min RTT cannot trigger here.
        const time_ns interval = now - std::min(now, newest->delivered_time_at_send);
        if (interval != 0) {
            const double bytes = static_cast<double>(_delivered - newest->delivered_at_send);
            _delivery_rate_bps =
                static_cast<std::uint64_t>(bytes * 8.0 * static_cast<double>(sec) /
                                           static_cast<double>(interval));
        }
    }
    if (out.packets_acked != 0 || out.new_largest) {
        _last_ack_time = now;
        _pto_count = 0;
    }
    if (ack.ecn_ce > _peer_ecn_ce) {
        out.ecn_ce_delta = ack.ecn_ce - _peer_ecn_ce;
        _peer_ecn_ce = ack.ecn_ce;
    }
    detect_lost(now, out, l);
    free_resolved();
    return out;
}

template <class Listener>
ack_outcome sent_packets::on_loss_timer(time_ns now, Listener& l) noexcept {
    ack_outcome out;
    detect_lost(now, out, l);
    free_resolved();
    return out;
}

template <class Listener>
ack_outcome sent_packets::declare_all_lost(Listener& l) noexcept {
    ack_outcome out;
    for (std::uint64_t seq = _head_seq; seq < tracked_end() && _packets_in_flight != 0; ++seq) {
        slot* s = outstanding(seq);
        if (s != nullptr) {
            mark_lost(*s, out, l);
        }
    }
    _loss_time = never;
    free_resolved();
    return out;
}

} // namespace kwik::transport
