#include "tests/e2e/relay/impairment.hpp"

#include <charconv>
#include <cmath>
#include <cstdio>

namespace kwik::relay {

namespace {

struct field {
    std::string_view name;
    double impairment::*member;
    double max;
};

// Probabilities in [0, 1]; times up to one minute (a longer hold is a test bug, not a network).
constexpr field fields[] = {
    {"loss", &impairment::loss, 1},
    {"burst_enter", &impairment::burst_enter, 1},
    {"burst_exit", &impairment::burst_exit, 1},
    {"burst_loss", &impairment::burst_loss, 1},
    {"delay_ms", &impairment::delay_ms, 60000},
    {"jitter_ms", &impairment::jitter_ms, 60000},
    {"reorder", &impairment::reorder, 1},
    {"reorder_ms", &impairment::reorder_ms, 60000},
    {"duplicate", &impairment::duplicate, 1},
};

std::string format_bound(double v) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%g", v);
    return buf;
}

std::uint64_t to_ns(double ms) noexcept { return static_cast<std::uint64_t>(std::llround(ms * 1e6)); }

} // namespace

result<void> set_field(impairment& s, std::string_view key, std::string_view value) {
    for (const field& f : fields) {
        if (f.name != key) {
            continue;
        }
        double v = 0;
        auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), v);
        if (ec != std::errc{} || end != value.data() + value.size() || !std::isfinite(v)) {
            return error{std::string(key) + ": '" + std::string(value) + "' is not a number"};
        }
        if (v < 0 || v > f.max) {
            return error{std::string(key) + ": " + std::string(value) + " is not in [0, " + format_bound(f.max) +
                         "]"};
        }
        s.*f.member = v;
        return {};
    }
    return error{std::string(key) + ": no such setting (loss, burst_enter, burst_exit, burst_loss, delay_ms, "
                                    "jitter_ms, reorder, reorder_ms, duplicate)"};
}

std::uint64_t random_source::next() noexcept {
    std::uint64_t z = (_state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

decision direction_state::decide(bool blackout) noexcept {
    decision d;
    if (blackout) {
        d.what = verdict::drop_blackout;
        return d;
    }
    // Without bursts no chain runs: a chain left in the bad state (bursts turned off by set or
    // reset) must not lose the next packet with burst_loss.
    if (settings.burst_enter <= 0) {
        _bad = false;
    }
    // Loss is decided in the state the chain is in, then the chain moves (one step per packet).
    const bool lost = _bad ? _rng.chance(settings.burst_loss) : _rng.chance(settings.loss);
    const bool was_bad = _bad;
    if (settings.burst_enter > 0) {
        _bad = _bad ? !_rng.chance(settings.burst_exit) : _rng.chance(settings.burst_enter);
    } else {
        _bad = false;
    }
    if (lost) {
        d.what = was_bad ? verdict::drop_burst : verdict::drop_loss;
        return d;
    }
    d.copies = _rng.chance(settings.duplicate) ? 2 : 1;
    for (unsigned i = 0; i < d.copies; ++i) {
        double ms = settings.delay_ms;
        if (settings.jitter_ms > 0) {
            ms += _rng.uniform() * settings.jitter_ms;
        }
        d.delay_ns[i] = to_ns(ms);
    }
    if (_rng.chance(settings.reorder)) {
        d.reordered = true;
        d.delay_ns[0] += to_ns(settings.reorder_ms);
    }
    return d;
}

} // namespace kwik::relay
