// Hierarchical timing wheel: 4 levels of 256 slots plus an overflow list, singly linked intrusive
// lists with back pointers (O(1) unlink), and one occupancy bitmap per level so that advance()
// jumps straight to the next tick with work. One owner thread; no allocation.
//
// Placement (cur = the next tick to process, e = the timer's tick, e >= cur): the timer goes to
// the lowest level L whose 256-slot window still contains e, i.e. the highest bit in which e and
// cur differ lies in level L's 8 bits; its slot is bits [8L, 8L+8) of e. Level-0 timers are thus
// due exactly at their slot's tick in the current 256-tick block; a level-L timer waits until cur
// reaches e with its low 8L bits cleared, where its slot cascades: each timer is re-placed by the
// same rule against the exact current tick, so it lands directly in its final level (level 0 if
// due now). Farther than 2^32 ticks: the overflow list, re-placed at every 2^32-tick boundary.
#include "dataplane/transport/timer_wheel.hpp"

#include <algorithm>
#include <bit>

namespace kwik::transport {

timer::timer(callback cb, void* ctx) noexcept : _cb(cb), _ctx(ctx) {}

void* timer::context() const noexcept {
    return _ctx;
}

bool timer::armed() const noexcept {
    return _slot != unarmed;
}

time_ns timer::expiry() const noexcept {
    return _expiry;
}

namespace {

constexpr std::uint64_t ticks_covered_mask = (std::uint64_t{1} << 32) - 1;

} // namespace

timer_wheel::timer_wheel(time_ns tick, time_ns now) noexcept
    : _tick(tick == 0 ? 1 : tick), _done(now / _tick), _now(now) {}

timer_wheel::~timer_wheel() {
    auto disarm_all = [](timer* head) {
        while (head != nullptr) {
            timer* next = head->_next;
            head->_next = nullptr;
            head->_pprev = nullptr;
            head->_slot = timer::unarmed;
            head = next;
        }
    };
    for (timer* head : _slots) {
        disarm_all(head);
    }
    disarm_all(_overflow);
    disarm_all(_expired);
    disarm_all(_firing);
}

std::size_t timer_wheel::size() const noexcept {
    return _size;
}

time_ns timer_wheel::tick() const noexcept {
    return _tick;
}

const timer_wheel_stats& timer_wheel::stats() const noexcept {
    return _stats;
}

void timer_wheel::link(timer& t, std::uint16_t slot, timer*& head) noexcept {
    t._next = head;
    if (head != nullptr) {
        head->_pprev = &t._next;
    }
    head = &t;
    t._pprev = &head;
    t._slot = slot;
}

void timer_wheel::unlink(timer& t) noexcept {
    *t._pprev = t._next;
    if (t._next != nullptr) {
        t._next->_pprev = t._pprev;
    }
    // A timer spliced onto the firing list keeps its old slot number; the emptiness test below is
    // still right for that slot whichever list t was on.
    if (t._slot < overflow_list && _slots[t._slot] == nullptr) {
        _occupied[t._slot / slots_per_level][(t._slot % slots_per_level) / 64] &=
            ~(std::uint64_t{1} << (t._slot % 64));
    }
    t._next = nullptr;
    t._pprev = nullptr;
    t._slot = timer::unarmed;
}

void timer_wheel::place(timer& t) noexcept {
    const std::uint64_t e = t._tick;
    if (e <= _done) {
        link(t, expired_list, _expired);
        return;
    }
    const std::uint64_t diff = e ^ (_done + 1);
    if (diff > ticks_covered_mask) {
        link(t, overflow_list, _overflow);
        return;
    }
    const unsigned level = diff == 0 ? 0 : static_cast<unsigned>(std::bit_width(diff) - 1) / level_bits;
    const std::size_t index = (e >> (level * level_bits)) & (slots_per_level - 1);
    const auto slot = static_cast<std::uint16_t>(level * slots_per_level + index);
    link(t, slot, _slots[slot]);
    _occupied[level][index / 64] |= std::uint64_t{1} << (index % 64);
}

void timer_wheel::schedule(timer& t, time_ns expiry) noexcept {
    if (t.armed()) {
        unlink(t);
    } else {
        ++_size;
    }
    t._expiry = expiry;
    t._tick = expiry / _tick + (expiry % _tick != 0 ? 1 : 0);
    if (expiry <= _now) {
        // Already due (even if its rounded tick is not): the next advance fires it.
        link(t, expired_list, _expired);
        return;
    }
    place(t);
}

void timer_wheel::cancel(timer& t) noexcept {
    if (t.armed()) {
        unlink(t);
        --_size;
    }
}

void timer_wheel::cascade(timer*& head) noexcept {
    timer* list = head;
    head = nullptr;
    while (list != nullptr) {
        timer* t = list;
        list = t->_next;
        ++_stats.moved;
        place(*t); // overwrites t's links; lands in a lower level (or back in overflow)
    }
}

void timer_wheel::fire_list(timer*& head, time_ns now, std::size_t& fired) noexcept {
    // The list moves to _firing first: callbacks may schedule into the slot being fired (a tick
    // 256 ahead maps to the same level-0 slot) or cancel timers that have yet to fire here.
    _firing = head;
    head = nullptr;
    if (_firing != nullptr) {
        _firing->_pprev = &_firing;
    }
    while (_firing != nullptr) {
        timer& t = *_firing;
        unlink(t);
        --_size;
        ++fired;
        ++_stats.fired;
        t._cb(t, now);
    }
}

void timer_wheel::process_tick(std::uint64_t t, time_ns now, std::size_t& fired) noexcept {
    ++_stats.steps;
    _done = t - 1; // cascades place relative to cur = t
    if ((t & ticks_covered_mask) == 0 && _overflow != nullptr) {
        cascade(_overflow);
    }
    for (std::size_t level = levels - 1; level >= 1; --level) {
        const unsigned shift = static_cast<unsigned>(level) * level_bits;
        if ((t & ((std::uint64_t{1} << shift) - 1)) != 0) {
            continue;
        }
        const std::size_t index = (t >> shift) & (slots_per_level - 1);
        timer*& head = _slots[level * slots_per_level + index];
        if (head != nullptr) {
            _occupied[level][index / 64] &= ~(std::uint64_t{1} << (index % 64));
            cascade(head);
        }
    }
    _done = t; // from here on, a callback's timer due at or before t goes to the expired list
    const std::size_t index = t & (slots_per_level - 1);
    if (_slots[index] != nullptr) {
        _occupied[0][index / 64] &= ~(std::uint64_t{1} << (index % 64));
        fire_list(_slots[index], now, fired);
    }
}

std::int32_t timer_wheel::first_occupied(std::size_t level, std::size_t from) const noexcept {
    const auto& bits = _occupied[level];
    std::size_t word = from / 64;
    std::uint64_t w = bits[word] & (~std::uint64_t{0} << (from % 64));
    while (true) {
        if (w != 0) {
            return static_cast<std::int32_t>(word * 64 + static_cast<std::size_t>(std::countr_zero(w)));
        }
        if (++word == bits.size()) {
            return -1;
        }
        w = bits[word];
    }
}

std::uint64_t timer_wheel::next_event_tick() const noexcept {
    const std::uint64_t cur = _done + 1;
    std::uint64_t next = no_tick;
    const std::int32_t s0 = first_occupied(0, cur & (slots_per_level - 1));
    if (s0 >= 0) {
        next = (cur & ~std::uint64_t{slots_per_level - 1}) | static_cast<std::uint64_t>(s0);
    }
    for (std::size_t level = 1; level < levels; ++level) {
        const unsigned shift = static_cast<unsigned>(level) * level_bits;
        const std::int32_t s = first_occupied(level, (cur >> shift) & (slots_per_level - 1));
        if (s < 0) {
            continue;
        }
        const unsigned upper = shift + level_bits;
        const std::uint64_t at = ((cur >> upper) << upper) | (static_cast<std::uint64_t>(s) << shift);
        // A slot at cur's own index is only occupied when cur sits on its boundary (at == cur).
        next = std::min(next, std::max(at, cur));
    }
    if (_overflow != nullptr) {
        const std::uint64_t at = (cur & ticks_covered_mask) == 0 ? cur : ((cur >> 32) + 1) << 32;
        next = std::min(next, at);
    }
    return next;
}

std::size_t timer_wheel::advance(time_ns now) noexcept {
    std::size_t fired = 0;
    // Due before the last tick we passed: fire them first; the ones their callbacks add wait for
    // the next advance, so a timer re-arming itself in the past cannot loop here.
    if (_expired != nullptr) {
        fire_list(_expired, now, fired);
    }
    const std::uint64_t target = now / _tick;
    while (_done < target) {
        const std::uint64_t t = next_event_tick();
        if (t > target) {
            break;
        }
        process_tick(t, now, fired);
    }
    if (_done < target) {
        _done = target;
    }
    // Only now: a callback above that scheduled a time this advance has already passed went to
    // the expired list (through its tick, or through _now if that was before this call).
    if (now > _now) {
        _now = now;
    }
    return fired;
}

time_ns timer_wheel::next_expiry() const noexcept {
    if (_expired != nullptr) {
        return _now;
    }
    if (_size == 0) {
        return never;
    }
    const std::uint64_t t = next_event_tick();
    if (t == no_tick || t > never / _tick) {
        return never;
    }
    return t * _tick;
}

} // namespace kwik::transport
