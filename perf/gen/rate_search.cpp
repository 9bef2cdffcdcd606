// kwik-gen's RFC 2544 search; see rate_search.hpp.
#include "perf/gen/rate_search.hpp"

#include <algorithm>

namespace kwik::gen {

std::optional<double> rate_search::next_rate() const noexcept {
    if (_done) {
        return std::nullopt;
    }
    if (!_tried_max) {
        return _max; // the device may take everything: one trial
    }
    if (!_tried_min) {
        return _min;
    }
    return (_passed + _failed) / 2;
}

bool rate_search::passes(const trial_result& t) const noexcept {
    return t.offered > 0 && t.loss_fraction() <= _tolerance;
}

void rate_search::record(const trial_result& t) {
    _trials.push_back(t);
    const bool ok = passes(t);
    if (!_tried_max) {
        _tried_max = true;
        if (ok) {
            _passed = t.rate_pps;
            _done = true;
        } else {
            _failed = t.rate_pps;
        }
        return;
    }
    if (!_tried_min) {
        _tried_min = true;
        if (!ok) {
            _done = true; // nothing in range passes: zero_loss_pps stays 0
            return;
        }
        _passed = t.rate_pps;
    } else if (ok) {
        _passed = std::max(_passed, t.rate_pps);
    } else {
        _failed = _failed == 0 ? t.rate_pps : std::min(_failed, t.rate_pps);
    }
    // A trial counts at the rate it attempted, which is below the one asked when the generator
    // falls short: a pass can then lie below an earlier one and a failure below an earlier pass.
    // The bounds only ever close in, a failure at or below the best pass ends the search (that
    // pass is the answer), and max_trials bounds it whatever the device and generator do.
    if (_failed <= _passed || _failed - _passed <= _resolution * _failed || _trials.size() >= max_trials) {
        _done = true;
    }
}

} // namespace kwik::gen
