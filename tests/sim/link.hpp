// One direction of a simulated link (test support only): serialisation at a rate, a drop-tail
// FIFO with optional ECN marking, propagation delay, jitter, Bernoulli loss, reordering,
// duplication and blackout windows, each driven by the link's own seeded generator so a run is
// reproducible. Links chain into paths and may be shared by several paths (a common bottleneck).
// Called only from the event loop's thread.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <limits>
#include <random>
#include <vector>

#include "tests/sim/event_loop.hpp"
#include "tests/sim/trace.hpp"

namespace kwik::sim {

using node_id = std::uint32_t;

struct datagram {
    std::vector<std::uint8_t> bytes;
    node_id src = 0;
    node_id dst = 0;
    std::size_t path = 0;
    bool ect = false;    // the sender declared ECN-capable transport; only these get CE marks
    bool ecn_ce = false; // congestion experienced, set by a link, delivered to the endpoint
    std::uint32_t hop = 0; // position in the path's chain of links; the network's business
};

struct blackout_window {
    time_ns start = 0;
    time_ns end = never; // exclusive
};

struct link_config {
    std::uint64_t rate_bps = 0; // 0 = unlimited: no serialisation delay and no queue
    time_ns delay = 0;          // propagation
    // Uniform in [-jitter, +jitter] added to delay (total clamped at 0). Without reordering a
    // packet never arrives before the one ahead of it, so when jitter is much larger than the
    // packet spacing the delays bunch towards delay + jitter (as in a real FIFO).
    time_ns jitter = 0;
    std::uint64_t queue_limit_bytes = std::numeric_limits<std::uint64_t>::max(); // drop-tail
    // When > 0: a packet arriving while the queue holds >= this many bytes is CE-marked if ECT,
    // dropped if not (an AQM marks instead of dropping, it does not let non-ECT traffic through).
    std::uint64_t ecn_threshold_bytes = 0;
    double loss = 0;      // Bernoulli per packet, after it used the link (it still took capacity)
    double reorder = 0;   // probability a packet is held back reorder_delay so later ones overtake
    time_ns reorder_delay = 0;
    double duplicate = 0; // probability a second copy arrives (right after the first)
    std::vector<blackout_window> blackouts;
};

struct link_counters {
    std::uint64_t sent = 0;      // packets offered to the link
    std::uint64_t delivered = 0; // packets handed on at the far end, duplicates included
    std::uint64_t dropped_queue = 0;
    std::uint64_t dropped_loss = 0;
    std::uint64_t dropped_blackout = 0;
    std::uint64_t marked_ce = 0;
    std::uint64_t duplicated = 0;
    std::uint64_t reordered = 0;
    std::uint64_t bytes_sent = 0;
    std::uint64_t bytes_delivered = 0;
    std::uint64_t queue_max_bytes = 0; // including the packet being serialised

    [[nodiscard]] std::uint64_t dropped() const noexcept { return dropped_queue + dropped_loss + dropped_blackout; }
};

class link {
public:
    using sink = std::function<void(datagram&&)>;

    // `id` only labels trace records; `log` may be null.
    link(event_loop& loop, link_config config, std::uint64_t seed, std::uint32_t id = 0, trace* log = nullptr);
    link(const link&) = delete;
    link& operator=(const link&) = delete;

    // Where datagrams go when they reach the far end (called from an event, never from send()).
    void set_sink(sink s) { _sink = std::move(s); }

    // The datagram enters the link at the loop's now().
    void send(datagram d);

    // Packets sent or in flight during [start, end) are dropped; may be added while running.
    void add_blackout(time_ns start, time_ns end) { _config.blackouts.push_back({start, end}); }

    // Changes apply to packets sent from now on (a rate change does not re-time the queue).
    [[nodiscard]] link_config& config() noexcept { return _config; }
    [[nodiscard]] const link_config& config() const noexcept { return _config; }
    [[nodiscard]] const link_counters& counters() const noexcept { return _counters; }
    [[nodiscard]] std::uint32_t id() const noexcept { return _id; }

    // Bytes queued or being serialised at the loop's now().
    [[nodiscard]] std::uint64_t queue_bytes();

    // Serialisation time of `bytes` at `rate_bps`, rounded down (the link carries the remainder
    // to the next packet, so a long busy period loses no time to rounding).
    [[nodiscard]] static time_ns serialisation(std::uint64_t bytes, std::uint64_t rate_bps) noexcept;

private:
    struct queued {
        time_ns tx_end;
        std::uint64_t size;
    };

    [[nodiscard]] double uniform() noexcept; // [0, 1), 53 bits, no std:: distribution (portable)
    [[nodiscard]] bool in_blackout(time_ns enter, time_ns leave) const noexcept;
    void drain(time_ns now);
    void record(trace_kind k, const datagram& d, time_ns at);
    void arrive(datagram&& d, time_ns entered);

    event_loop& _loop;
    link_config _config;
    std::mt19937_64 _rng;
    std::uint32_t _id;
    trace* _log;
    sink _sink;
    link_counters _counters;

    std::deque<queued> _queue; // accepted, not yet fully serialised
    std::uint64_t _queue_bytes = 0;
    time_ns _busy_until = 0;      // when the last accepted packet finishes serialisation
    std::uint64_t _busy_rem = 0;  // carried remainder of bits*1e9 / rate
    time_ns _last_arrival = 0;    // FIFO floor for packets not chosen for reordering
};

} // namespace kwik::sim
