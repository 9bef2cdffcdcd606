// What kwik-relay does to one packet of one path in one direction: the settings a test sets
// (loss, Gilbert-Elliott bursts, delay + jitter, reordering, duplication, blackout), the seeded
// random decisions, and the counters. Pure logic, no I/O; owned by the relay's single thread.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "common/result.hpp"

namespace kwik::relay {

// One direction's impairments. Probabilities are in [0, 1], times in milliseconds.
// Loss: Bernoulli with probability loss in the good state; with burst_enter > 0 a two-state
// Gilbert-Elliott chain runs per packet (good -> bad with burst_enter, bad -> good with
// burst_exit) and a packet in the bad state is lost with burst_loss. Delay: delay_ms plus a
// uniform draw in [0, jitter_ms], so delay_ms is a floor (jitter reorders, as netem's does). A
// reordered packet waits reorder_ms more, so packets sent after it overtake it.
struct impairment {
    double loss = 0;
    double burst_enter = 0;
    double burst_exit = 1;
    double burst_loss = 1;
    double delay_ms = 0;
    double jitter_ms = 0;
    double reorder = 0;
    double reorder_ms = 0;
    double duplicate = 0;
};

// Sets one field from "key=value" text; the error names the key and the accepted range
// ("loss: 1.5 is not in [0, 1]", "colour: no such setting").
result<void> set_field(impairment& s, std::string_view key, std::string_view value);

// Per path and direction. dropped_* add up to every packet taken in and not sent.
struct direction_counters {
    std::uint64_t packets_in = 0;
    std::uint64_t packets_out = 0;
    std::uint64_t dropped_loss = 0;     // Bernoulli loss in the good state
    std::uint64_t dropped_burst = 0;    // lost in the Gilbert-Elliott bad state
    std::uint64_t dropped_blackout = 0;
    std::uint64_t dropped_pool_full = 0; // no buffer left to hold a delayed packet
    std::uint64_t dropped_oversize = 0;  // longer than a pool buffer, and had to wait
    std::uint64_t dropped_write_error = 0;
    std::uint64_t duplicated = 0;
    std::uint64_t reordered = 0;
    std::uint64_t delayed = 0; // packets (copies included) that waited in the queue
    std::uint64_t queue = 0;   // waiting now
    std::uint64_t queue_max = 0;
};

enum class verdict : std::uint8_t { pass, drop_loss, drop_burst, drop_blackout };

// The fate of one packet: dropped, or sent once or twice (copies), each after its delay.
struct decision {
    verdict what = verdict::pass;
    unsigned copies = 1;
    bool reordered = false;
    std::uint64_t delay_ns[2] = {0, 0};
};

// splitmix64: small, fast and the same on every machine, so a seed replays a run exactly.
class random_source {
public:
    explicit random_source(std::uint64_t seed) noexcept : _state(seed) {}
    std::uint64_t next() noexcept;
    double uniform() noexcept { return static_cast<double>(next() >> 11) * 0x1.0p-53; } // [0, 1)
    bool chance(double p) noexcept { return p > 0 && uniform() < p; }

private:
    std::uint64_t _state;
};

// One path's one direction: settings, Gilbert-Elliott state, random stream and counters.
class direction_state {
public:
    explicit direction_state(std::uint64_t seed) noexcept : _rng(seed) {}

    decision decide(bool blackout) noexcept;

    impairment settings;
    direction_counters counters;

private:
    random_source _rng;
    bool _bad = false;
};

} // namespace kwik::relay
