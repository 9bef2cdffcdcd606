// RFC 2544 throughput search for kwik-gen: the highest offered rate whose trial loses no more
// than the tolerated fraction, by binary search between a minimum and a maximum rate. Pure logic,
// driven by the main lcore: next_rate() names the next trial, record() takes its outcome.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <vector>

namespace kwik::gen {

struct trial_result {
    double rate_pps = 0;
    std::uint64_t offered = 0;   // attempted sends, tx refusals included
    std::uint64_t delivered = 0; // acknowledged / reflected / echoed
    std::uint64_t lost() const noexcept { return offered > delivered ? offered - delivered : 0; }
    double loss_fraction() const noexcept {
        return offered == 0 ? 1.0 : static_cast<double>(lost()) / static_cast<double>(offered);
    }
};

class rate_search {
public:
    // Halvings from 10 Mpps down to 1 % take about 20; more means the generator kept falling short.
    static constexpr std::size_t max_trials = 40;

    // min_pps < max_pps; resolution: stop when (failed - passed) <= resolution * failed.
    rate_search(double min_pps, double max_pps, double loss_tolerance, double resolution) noexcept
        : _min(min_pps), _max(max_pps), _tolerance(loss_tolerance), _resolution(resolution) {}

    // The rate of the next trial, or nullopt when the search is over.
    std::optional<double> next_rate() const noexcept;
    // A trial passes when it offered something and its loss fraction is within the tolerance.
    bool passes(const trial_result& t) const noexcept;
    void record(const trial_result& t);

    // The highest rate that passed (0 when none did, even the minimum).
    double zero_loss_pps() const noexcept { return _passed; }
    const std::vector<trial_result>& trials() const noexcept { return _trials; }

private:
    double _min, _max, _tolerance, _resolution;
    double _passed = 0; // highest passing rate so far
    double _failed = 0; // lowest failing rate so far (0: none yet)
    bool _tried_max = false;
    bool _tried_min = false;
    bool _done = false;
    std::vector<trial_result> _trials;
};

} // namespace kwik::gen
