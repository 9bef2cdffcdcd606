// Unit tests for dataplane/transport/timer_wheel: rounding, past expiries, ordering against a
// reference ordered set over 100k random timers spanning every level and the overflow list (with
// scheduling and cancelling from callbacks), and the O(1) claims via the wheel's work counters.
#include "dataplane/transport/timer_wheel.hpp"

#include <gtest/gtest.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <random>
#include <set>
#include <utility>
#include <vector>

namespace kwik::transport {
namespace {

// Records firings in a shared log: (timer index, now).
struct recorder {
    std::vector<std::pair<int, time_ns>> log;
};

struct tagged {
    recorder* rec;
    int index;
};

void record(timer& t, time_ns now) noexcept {
    auto* tag = static_cast<tagged*>(t.context());
    tag->rec->log.emplace_back(tag->index, now);
}

struct recorded_timers {
    recorder rec;
    std::vector<tagged> tags;
    std::vector<std::unique_ptr<timer>> timers;
    explicit recorded_timers(int n) : tags(static_cast<std::size_t>(n)) {
        for (int i = 0; i < n; ++i) {
            tags[static_cast<std::size_t>(i)] = {&rec, i};
            timers.push_back(std::make_unique<timer>(record, &tags[static_cast<std::size_t>(i)]));
        }
    }
    timer& operator[](int i) { return *timers[static_cast<std::size_t>(i)]; }
};

TEST(timer_wheel, fires_at_the_tick_boundary_never_early) {
    const time_ns tick = 100 * us;
    timer_wheel w(tick, 1 * sec);
    recorded_timers t(3);
    w.schedule(t[0], 1 * sec + 250 * us); // rounds up to 1 s + 300 us
    w.schedule(t[1], 1 * sec + 300 * us); // on a boundary
    w.schedule(t[2], 1 * sec + 301 * us); // rounds up to 1 s + 400 us
    EXPECT_EQ(w.size(), 3u);
    EXPECT_TRUE(t[0].armed());
    EXPECT_EQ(t[0].expiry(), 1 * sec + 250 * us);
    EXPECT_EQ(w.advance(1 * sec + 299 * us), 0u);
    EXPECT_EQ(w.advance(1 * sec + 300 * us), 2u);
    EXPECT_FALSE(t[0].armed());
    EXPECT_TRUE(t[2].armed());
    EXPECT_EQ(w.advance(1 * sec + 399 * us), 0u);
    EXPECT_EQ(w.advance(1 * sec + 450 * us), 1u);
    ASSERT_EQ(t.rec.log.size(), 3u);
    EXPECT_EQ(t.rec.log[2], std::make_pair(2, 1 * sec + 450 * us));
    EXPECT_EQ(w.size(), 0u);
    EXPECT_EQ(w.next_expiry(), never);
}

TEST(timer_wheel, past_expiry_fires_at_the_next_advance) {
    timer_wheel w(100 * us, 10 * ms);
    recorded_timers t(3);
    w.schedule(t[0], 5 * ms);
    w.schedule(t[1], 10 * ms);         // == now
    w.schedule(t[2], 10 * ms - 1 * us); // in the past but its tick is not
    EXPECT_EQ(w.next_expiry(), 10 * ms);
    EXPECT_EQ(w.advance(10 * ms), 3u); // same now: still fires
    EXPECT_EQ(w.size(), 0u);
}

TEST(timer_wheel, reschedule_and_cancel) {
    timer_wheel w(1 * ms, 0);
    recorded_timers t(2);
    w.schedule(t[0], 5 * ms);
    w.schedule(t[0], 50 * ms); // re-arm moves it
    w.schedule(t[1], 7 * ms);
    w.cancel(t[1]);
    w.cancel(t[1]); // no-op
    EXPECT_EQ(w.size(), 1u);
    EXPECT_EQ(w.advance(49 * ms), 0u);
    EXPECT_EQ(w.advance(50 * ms), 1u);
    EXPECT_EQ(t.rec.log, (std::vector<std::pair<int, time_ns>>{{0, 50 * ms}}));
}

TEST(timer_wheel, order_across_levels_within_one_advance) {
    timer_wheel w(1, 0); // 1 ns ticks: level boundaries at 2^8, 2^16, 2^24, 2^32
    recorded_timers t(6);
    const time_ns at[6] = {(1ull << 33) + 5, (1ull << 24) + 3, 300, 7, (1ull << 16) + 1, (1ull << 32)};
    for (int i = 0; i < 6; ++i) {
        w.schedule(t[i], at[i]);
    }
    EXPECT_EQ(w.advance(1ull << 34), 6u);
    std::vector<int> order;
    for (const auto& [i, now] : t.rec.log) {
        order.push_back(i);
    }
    EXPECT_EQ(order, (std::vector<int>{3, 2, 4, 1, 5, 0}));
}

// --- callbacks that schedule and cancel ------------------------------------------------------------

struct chain {
    timer_wheel* wheel;
    timer* other = nullptr;
    int fired = 0;
    time_ns period = 0;
    int stop_after = 0;
};

void periodic(timer& t, time_ns now) noexcept {
    auto* c = static_cast<chain*>(t.context());
    ++c->fired;
    if (c->fired < c->stop_after) {
        c->wheel->schedule(t, now + c->period);
    }
}

void cancels_other(timer& t, time_ns) noexcept {
    auto* c = static_cast<chain*>(t.context());
    ++c->fired;
    c->wheel->cancel(*c->other);
}

void postpones_other(timer& t, time_ns now) noexcept {
    auto* c = static_cast<chain*>(t.context());
    ++c->fired;
    c->wheel->schedule(*c->other, now + 10 * ms);
}

void counts(timer& t, time_ns) noexcept {
    ++static_cast<chain*>(t.context())->fired;
}

void rearms_now(timer& t, time_ns now) noexcept {
    auto* c = static_cast<chain*>(t.context());
    ++c->fired;
    c->wheel->schedule(t, now); // already due: must wait for the next advance, not loop
}

TEST(timer_wheel_callbacks, periodic_self_rearm) {
    timer_wheel w(1 * ms, 0);
    chain c{&w, nullptr, 0, 10 * ms, 5};
    timer t(periodic, &c);
    w.schedule(t, 10 * ms);
    for (time_ns now = 0; now <= 100 * ms; now += 1 * ms) {
        w.advance(now);
    }
    EXPECT_EQ(c.fired, 5);
    EXPECT_FALSE(t.armed());
    // One advance over the whole span fires it once: the re-arm lands after that advance's now.
    chain d{&w, nullptr, 0, 10 * ms, 5};
    timer u(periodic, &d);
    w.schedule(u, 110 * ms);
    EXPECT_EQ(w.advance(500 * ms), 1u);
    EXPECT_EQ(d.fired, 1);
    EXPECT_EQ(u.expiry(), 510 * ms);
}

TEST(timer_wheel_callbacks, cancel_a_timer_due_in_the_same_tick) {
    timer_wheel w(1 * ms, 0);
    chain other{&w};
    timer victim(counts, &other);
    chain killer_state{&w, &victim};
    timer killer(cancels_other, &killer_state);
    // Same tick; whichever fires first, at most one of them runs. Schedule the victim first so
    // that LIFO slot order runs the killer first.
    w.schedule(victim, 5 * ms);
    w.schedule(killer, 5 * ms);
    EXPECT_EQ(w.advance(5 * ms), 1u);
    EXPECT_EQ(killer_state.fired, 1);
    EXPECT_EQ(other.fired, 0);
    EXPECT_FALSE(victim.armed());
    EXPECT_EQ(w.size(), 0u);
}

TEST(timer_wheel_callbacks, postpone_a_timer_due_in_the_same_advance) {
    timer_wheel w(1 * ms, 0);
    chain other{&w};
    timer later(counts, &other);
    chain first_state{&w, &later};
    timer first(postpones_other, &first_state);
    w.schedule(first, 3 * ms);
    w.schedule(later, 4 * ms);
    EXPECT_EQ(w.advance(6 * ms), 1u);
    EXPECT_TRUE(later.armed());
    EXPECT_EQ(later.expiry(), 16 * ms);
    EXPECT_EQ(w.advance(15 * ms), 0u);
    EXPECT_EQ(w.advance(16 * ms), 1u);
    EXPECT_EQ(other.fired, 1);
}

TEST(timer_wheel_callbacks, rearm_at_now_waits_for_the_next_advance) {
    timer_wheel w(1 * ms, 0);
    chain c{&w};
    timer t(rearms_now, &c);
    w.schedule(t, 2 * ms);
    EXPECT_EQ(w.advance(2 * ms), 1u);
    EXPECT_TRUE(t.armed());
    EXPECT_EQ(w.advance(2 * ms), 1u);
    // The expired copy fires first and re-arms for 3 ms, which is still ahead of the wheel's
    // position (tick 2), so it fires again in this advance at tick 3; that re-arm is behind it.
    EXPECT_EQ(w.advance(3 * ms), 2u);
    EXPECT_EQ(c.fired, 4);
    EXPECT_TRUE(t.armed());
    w.cancel(t);
    EXPECT_EQ(w.advance(4 * ms), 0u);
}

// --- random, against a reference -------------------------------------------------------------------

struct reference_run {
    timer_wheel* wheel = nullptr;
    time_ns tick = 1;
    std::mt19937_64 rng{12345};
    std::set<std::pair<std::uint64_t, int>> pending; // (rounded tick, index)
    std::vector<std::uint64_t> tick_of;              // by index; 0 = not armed in the reference
    std::vector<std::unique_ptr<timer>> timers;
    std::vector<std::pair<reference_run*, int>> contexts; // each timer's (run, index)
    time_ns advancing_to = 0;
    std::uint64_t fired = 0;
    std::uint64_t errors = 0;

    std::uint64_t rounded(time_ns e) const { return e / tick + (e % tick != 0 ? 1 : 0); }

    void arm(int i, time_ns e) {
        auto k = static_cast<std::size_t>(i);
        if (tick_of[k] != 0) {
            pending.erase({tick_of[k], i});
        }
        tick_of[k] = rounded(e);
        pending.insert({tick_of[k], i});
        wheel->schedule(*timers[k], e);
    }
    void disarm(int i) {
        auto k = static_cast<std::size_t>(i);
        if (tick_of[k] != 0) {
            pending.erase({tick_of[k], i});
            tick_of[k] = 0;
        }
        wheel->cancel(*timers[k]);
    }
    // A delay spread over every level and the overflow list, in ticks.
    std::uint64_t random_delay() {
        const unsigned band = static_cast<unsigned>(rng() % 5); // levels 0-3, overflow
        const unsigned lo_bits = band == 0 ? 0 : 8 * band;
        const unsigned hi_bits = band == 4 ? 35 : 8 * (band + 1);
        const std::uint64_t lo = std::uint64_t{1} << lo_bits;
        const std::uint64_t hi = std::uint64_t{1} << hi_bits;
        return lo + rng() % (hi - lo);
    }
};

void reference_fire(timer& t, time_ns now) noexcept {
    const auto [run, index] = *static_cast<std::pair<reference_run*, int>*>(t.context());
    const auto k = static_cast<std::size_t>(index);
    const std::uint64_t my_tick = run->tick_of[k];
    // In order: nothing still pending is due before this one; never early; right now.
    if (my_tick == 0 || run->timers[k].get() != &t || run->pending.begin()->first != my_tick ||
        my_tick * run->tick > now || now != run->advancing_to || t.armed()) {
        ++run->errors;
    }
    run->pending.erase({my_tick, index});
    run->tick_of[k] = 0;
    ++run->fired;
    // Callbacks exercise the wheel: re-arm self, cancel or re-arm a random other timer.
    const std::uint64_t dice = run->rng() % 8;
    const time_ns base = my_tick * run->tick; // a tick after this one is still ahead of the wheel
    if (dice == 0) {
        run->arm(index, base + 1 + run->random_delay() * run->tick);
    } else if (dice == 1) {
        run->disarm(static_cast<int>(run->rng() % run->timers.size()));
    } else if (dice == 2) {
        const int other = static_cast<int>(run->rng() % run->timers.size());
        if (other != index || !t.armed()) {
            run->arm(other, base + 1 + (run->rng() % 600) * run->tick);
        }
    }
}

void run_against_reference(time_ns tick, int count) {
    reference_run run;
    run.tick = tick;
    const time_ns start = 12345 * tick + tick / 3;
    timer_wheel w(tick, start);
    run.wheel = &w;
    run.tick_of.assign(static_cast<std::size_t>(count), 0);
    run.contexts.reserve(static_cast<std::size_t>(count));
    for (int i = 0; i < count; ++i) {
        run.contexts.emplace_back(&run, i);
        run.timers.push_back(std::make_unique<timer>(reference_fire, &run.contexts.back()));
    }
    for (int i = 0; i < count; ++i) {
        run.arm(i, start + 1 + run.random_delay() * tick + run.rng() % tick);
    }
    ASSERT_EQ(w.size(), static_cast<std::size_t>(count));
    time_ns now = start;
    std::uint64_t calls = 0;
    while (!run.pending.empty() && calls < 2'000'000) {
        // Steps from one tick to 2^33 ticks, log-uniform, so every level wraps many times.
        const unsigned bits = static_cast<unsigned>(run.rng() % 34);
        now += (run.rng() % (std::uint64_t{1} << bits) + 1) * tick;
        run.advancing_to = now;
        const std::uint64_t before = run.fired;
        const std::size_t n = w.advance(now);
        ++calls;
        ASSERT_EQ(n, run.fired - before);
        ASSERT_EQ(run.errors, 0u) << "out of order or early, advance to " << now;
        // Complete: nothing due is left behind.
        if (!run.pending.empty()) {
            ASSERT_GT(run.pending.begin()->first * tick, now);
            ASSERT_LE(w.next_expiry(), run.pending.begin()->first * tick);
        }
        ASSERT_EQ(w.size(), run.pending.size());
        // Now and then, new timers from outside callbacks.
        if (calls % 16 == 0) {
            const int i = static_cast<int>(run.rng() % static_cast<std::uint64_t>(count));
            run.arm(i, now + 1 + run.random_delay() * tick);
        }
    }
    EXPECT_TRUE(run.pending.empty());
    EXPECT_GE(run.fired, static_cast<std::uint64_t>(count));
    EXPECT_EQ(w.size(), 0u);
    // Each firing costs O(1) cascades: a timer moves at most once per level it passes through,
    // plus once per 2^32-tick overflow re-examination (at most 8 here: delays < 2^35 ticks).
    EXPECT_LE(w.stats().moved, w.stats().fired * (timer_wheel::levels - 1 + 8));
}

TEST(timer_wheel_reference, random_100k_one_ns_ticks) {
    run_against_reference(1, 100'000);
}

TEST(timer_wheel_reference, random_100k_odd_tick_rounding) {
    run_against_reference(7, 100'000);
}

// --- O(1) ------------------------------------------------------------------------------------------

TEST(timer_wheel_cost, a_million_idle_timers_cost_nothing_per_tick) {
    const time_ns tick = 100 * us;
    timer_wheel w(tick, 0);
    std::vector<std::unique_ptr<timer>> timers;
    timers.reserve(1'000'000);
    chain c{&w};
    std::mt19937_64 rng(7);
    // Keep-alive style timers 30 s to 3 days out: levels 2 and 3 and the overflow list.
    for (int i = 0; i < 1'000'000; ++i) {
        timers.push_back(std::make_unique<timer>(counts, &c));
        const time_ns at = 30 * sec + rng() % (3ull * 24 * 3600 * sec);
        w.schedule(*timers.back(), at);
    }
    EXPECT_EQ(w.size(), 1'000'000u);
    // 20 000 ticks (2 s), one advance per tick, as an lcore's poll loop would.
    for (time_ns now = 0; now <= 2 * sec; now += tick) {
        EXPECT_EQ(w.advance(now), 0u);
    }
    EXPECT_EQ(w.stats().moved, 0u);
    EXPECT_EQ(w.stats().fired, 0u);
    EXPECT_EQ(w.stats().steps, 0u);
    // One due timer among them costs one step and one firing.
    timer busy(counts, &c);
    w.schedule(busy, 2 * sec + 5 * ms);
    EXPECT_EQ(w.next_expiry(), 2 * sec + 5 * ms);
    EXPECT_EQ(w.advance(2 * sec + 10 * ms), 1u);
    EXPECT_EQ(w.stats().steps, 1u);
    EXPECT_EQ(w.stats().moved, 0u);
    // Cancelling them all is O(1) each and leaves nothing.
    for (auto& t : timers) {
        w.cancel(*t);
    }
    EXPECT_EQ(w.size(), 0u);
    EXPECT_EQ(w.next_expiry(), never);
    EXPECT_EQ(w.advance(4 * 24 * 3600 * sec), 0u);
    EXPECT_EQ(w.stats().moved, 0u);
}

TEST(timer_wheel_cost, long_sleep_skips_empty_ticks) {
    timer_wheel w(1 * us, 0);
    chain c{&w};
    timer a(counts, &c);
    timer b(counts, &c);
    w.schedule(a, 3600 * sec);      // 3.6e9 ticks out: level 3
    w.schedule(b, 10 * 3600 * sec); // 3.6e10 ticks out: overflow
    // A lower bound, and the work to get there is a handful of steps, not 3.6e9 ticks.
    EXPECT_LE(w.next_expiry(), 3600 * sec);
    EXPECT_EQ(w.advance(3600 * sec - 1), 0u);
    EXPECT_EQ(w.advance(3600 * sec), 1u);
    EXPECT_EQ(w.advance(10 * 3600 * sec), 1u);
    EXPECT_EQ(c.fired, 2);
    EXPECT_LE(w.stats().steps, 40u);
    EXPECT_LE(w.stats().moved, 40u);
}

TEST(timer_wheel_cost, next_expiry_is_exact_in_level_zero_and_a_lower_bound_above) {
    timer_wheel w(1 * ms, 0);
    chain c{&w};
    timer a(counts, &c);
    EXPECT_EQ(w.next_expiry(), never);
    w.schedule(a, 100 * ms + 300 * us);
    EXPECT_EQ(w.next_expiry(), 101 * ms);
    w.schedule(a, 1000 * ms); // level 1: its slot cascades at tick 768 (3 * 256)
    EXPECT_EQ(w.next_expiry(), 768 * ms);
    w.advance(768 * ms);
    EXPECT_EQ(w.next_expiry(), 1000 * ms);
    w.cancel(a);
    EXPECT_EQ(w.next_expiry(), never);
}

TEST(timer_wheel, destructor_disarms) {
    chain c{nullptr};
    timer a(counts, &c);
    {
        timer_wheel w(1 * ms, 0);
        w.schedule(a, 5 * ms);
        EXPECT_TRUE(a.armed());
    }
    EXPECT_FALSE(a.armed());
}

} // namespace
} // namespace kwik::transport
