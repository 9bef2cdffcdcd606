// The receive side of one path's loss recovery: which Path Sequence Numbers arrived (duplicate
// detection), when an ACK is owed (RFC 9000 13.2.1 style), and the ACK frame that reports them.
// Owned by one path of one connection; called only by the thread that owns the connection.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>

#include "dataplane/kdp/control.hpp"
#include "dataplane/transport/types.hpp"

namespace kwik::transport {

struct ack_policy {
    std::uint32_t ack_eliciting_threshold = 2; // ACK at once after this many ack-eliciting packets
    time_ns max_ack_delay = 5 * ms;            // otherwise at the latest this long after the first unacked one
};

class ack_tracker {
public:
    // Received numbers are kept as at most this many disjoint ranges. Every lost packet leaves a
    // permanent gap (numbers are never reused), so the set is bounded by forgetting the lowest
    // range; only the top 1 + kdp::max_ack_ranges go into an ACK, the rest serve duplicate
    // detection for late, reordered copies.
    static constexpr std::size_t range_capacity = 64;

    explicit ack_tracker(const ack_policy& policy = {}) noexcept;

    enum class verdict : std::uint8_t { fresh, duplicate, too_old };

    // Records a received sequence number (< 2^62: the codec drops larger ones). duplicate: seen
    // before; too_old: at or below a forgotten range, or below every range while the set is
    // full, so it cannot be told from a duplicate (the caller drops it; the sender will have
    // declared it lost). An ack-eliciting packet that arrives out of order (below the largest
    // seen, or above it with a gap) makes an ACK due at once, so the sender detects loss fast.
    verdict on_packet(std::uint64_t seq, bool ack_eliciting, bool ecn_ce, time_ns now) noexcept;
    // What on_packet would answer, recording nothing: duplicate or too_old when the number is
    // already known as such, else fresh (on_packet may still find it too_old when the set is
    // full). Lets the receiver skip work, such as opening ENCRYPTED frames, for a replay.
    verdict lookup(std::uint64_t seq) const noexcept;

    // An ack-eliciting packet has arrived since the last ACK was sent. Packets that are not
    // ack-eliciting are reported in the next ACK but never make one owed (PROTOCOL.md 4.2).
    bool ack_pending() const noexcept { return _unacked_eliciting != 0; }
    // When the ACK must go out at the latest; never if none is owed.
    time_ns ack_deadline() const noexcept { return _unacked_eliciting != 0 ? _deadline : never; }

    // The ACK for this path: up to 1 + kdp::max_ack_ranges ranges, largest first, disjoint and
    // non-adjacent (kdp::encode_control accepts it); ack_delay_us = now - arrival of the largest;
    // ecn_ce = total CE-marked packets seen. range_count = 0 (not encodable) if nothing arrived.
    void build(kdp::ack_frame& out, path_id path, time_ns now) const noexcept;

    // An ACK carrying the current state was sent: nothing is owed until the next
    // ack-eliciting packet.
    void on_ack_sent(time_ns now) noexcept;

    // The largest sequence number received; 0 if none.
    std::uint64_t largest() const noexcept { return _count != 0 ? _ranges[_count - 1].largest : 0; }

    // Ranges held (for tests and counters).
    std::size_t range_count() const noexcept { return _count; }
    std::uint64_t ecn_ce_count() const noexcept { return _ecn_ce; }
    time_ns last_ack_sent() const noexcept { return _last_ack_sent; }

private:
    // pos: _ranges[pos - 1] starts at or below seq, _ranges[pos] starts above it.
    std::size_t position(std::uint64_t seq) const noexcept;
    void insert_range(std::size_t at, std::uint64_t seq) noexcept;
    void erase_range(std::size_t at) noexcept;

    ack_policy _policy;
    // Ascending: _ranges[0] is the lowest, _ranges[_count - 1] the highest. In-order arrival
    // extends the top range; a loss appends a range; both O(1). A reordered packet scans down
    // from the top, usually a step or two.
    std::array<kdp::ack_range, range_capacity> _ranges{};
    std::size_t _count = 0;
    std::uint64_t _floor = 0; // numbers below this are too_old
    time_ns _largest_time = 0;
    std::uint64_t _ecn_ce = 0;
    std::uint32_t _unacked_eliciting = 0;
    time_ns _deadline = never;
    time_ns _last_ack_sent = 0;
};

} // namespace kwik::transport
