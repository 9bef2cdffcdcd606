// Hierarchical timing wheel (Varghese and Lauck; Linux's pre-4.8 timer wheel): O(1) schedule and
// cancel of intrusive timers, firing in expiry order at tick granularity, so that an owner with a
// million idle timers (connections' loss, ACK-delay and keep-alive timers) pays nothing per tick.
// One wheel per owner thread (an lcore, the simulator); not thread-safe; no allocation.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>

#include "dataplane/transport/types.hpp"

namespace kwik::transport {

class timer_wheel;

// An intrusive timer: the owner embeds it (in a connection, a path) and keeps it alive while it
// is armed; destroying an armed timer is a bug (cancel it first). Not copyable or movable: the
// wheel links to it by address.
struct timer {
    // Called from timer_wheel::advance with the timer already disarmed; it may schedule or cancel
    // any timer on the same wheel, itself included, but must not call advance.
    using callback = void (*)(timer&, time_ns now) noexcept;

    timer(callback cb, void* ctx) noexcept;
    timer(const timer&) = delete;
    timer& operator=(const timer&) = delete;

    void* context() const noexcept;
    bool armed() const noexcept;
    time_ns expiry() const noexcept; // as last scheduled

private:
    friend class timer_wheel;
    static constexpr std::uint16_t unarmed = 0xFFFF;

    timer* _next = nullptr;
    timer** _pprev = nullptr; // the pointer that points at this timer: O(1) unlink, no list head
    callback _cb;
    void* _ctx;
    time_ns _expiry = 0;
    std::uint64_t _tick = 0;       // expiry rounded up to the wheel's tick
    std::uint16_t _slot = unarmed; // wheel slot (level * 256 + index) or one of the lists
};

// Work counters, for tests and benchmarks (they prove the O(1) claims); never reset.
struct timer_wheel_stats {
    std::uint64_t fired = 0; // callbacks run
    std::uint64_t moved = 0; // timers re-placed by a cascade or an overflow re-examination
    std::uint64_t steps = 0; // ticks at which something was cascaded or fired
};

class timer_wheel {
public:
    static constexpr unsigned level_bits = 8;
    static constexpr std::size_t slots_per_level = std::size_t{1} << level_bits;
    static constexpr std::size_t levels = 4;

    // tick: the granularity (e.g. 100 us); now: the owner's current time. Level L slots span
    // 256^L ticks, so the wheel covers 2^32 ticks (about 5 days at 100 us); farther timers wait in
    // an overflow list that is re-examined each time the top level wraps.
    timer_wheel(time_ns tick, time_ns now) noexcept;
    ~timer_wheel(); // disarms every timer still armed
    timer_wheel(const timer_wheel&) = delete;
    timer_wheel& operator=(const timer_wheel&) = delete;

    // Arms t to fire at the first advance(now) with now >= expiry rounded up to a tick boundary
    // (never early, at most one tick late). Re-arms if armed. An expiry the wheel has already
    // reached (at or before the last advance's now, or, from a callback, in a tick that advance
    // has reached) fires at the next advance, ahead of every timer still in the wheel, so a
    // callback that keeps re-arming its timer for "now" cannot make advance loop. O(1).
    void schedule(timer& t, time_ns expiry) noexcept;
    // Disarms t; no-op if not armed. O(1).
    void cancel(timer& t) noexcept;

    // Fires every timer whose rounded expiry is <= now, in non-decreasing order of rounded expiry
    // (timers due at the same tick in no defined order), and returns how many fired. Skips empty
    // stretches using per-level occupancy bitmaps: the cost is proportional to the ticks at which
    // something is due or cascades, not to elapsed ticks or to armed timers.
    std::size_t advance(time_ns now) noexcept;

    // A lower bound on the next firing, for sleeping: exact when the next due timer already sits
    // in the finest level, else the tick at which its slot cascades. `never` if nothing is armed.
    time_ns next_expiry() const noexcept;

    std::size_t size() const noexcept;
    time_ns tick() const noexcept;
    const timer_wheel_stats& stats() const noexcept;

private:
    static constexpr std::uint16_t overflow_list = levels * slots_per_level;
    static constexpr std::uint16_t expired_list = overflow_list + 1;
    static constexpr std::uint16_t firing_list = overflow_list + 2;
    static constexpr std::uint64_t no_tick = ~std::uint64_t{0};

    void link(timer& t, std::uint16_t slot, timer*& head) noexcept;
    void unlink(timer& t) noexcept;
    void place(timer& t) noexcept;
    void cascade(timer*& head) noexcept;
    void fire_list(timer*& head, time_ns now, std::size_t& fired) noexcept;
    void process_tick(std::uint64_t t, time_ns now, std::size_t& fired) noexcept;
    std::uint64_t next_event_tick() const noexcept;
    std::int32_t first_occupied(std::size_t level, std::size_t from) const noexcept;

    std::array<timer*, levels * slots_per_level> _slots{};
    std::array<std::array<std::uint64_t, slots_per_level / 64>, levels> _occupied{};
    timer* _overflow = nullptr;
    timer* _expired = nullptr;
    timer* _firing = nullptr;
    time_ns _tick;
    std::uint64_t _done; // every tick <= _done has been processed
    time_ns _now;        // the latest time given to the constructor or a finished advance
    std::size_t _size = 0;
    timer_wheel_stats _stats;
};

} // namespace kwik::transport
