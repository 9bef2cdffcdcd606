// A set of byte offsets kept as disjoint half-open ranges: which parts of a stream have
// arrived. Used by kwik-pcapgen (the receiver's flow-control window) and kwik-dump (reassembly
// coverage). One owner thread.
#pragma once

#include <algorithm>
#include <cstdint>
#include <iterator>
#include <map>
#include <optional>
#include <utility>

namespace kwik::tools {

class range_set {
public:
    // Adds [begin, end); returns how many of those bytes were not covered before.
    std::uint64_t add(std::uint64_t begin, std::uint64_t end) {
        if (begin >= end) {
            return 0;
        }
        const std::uint64_t before = _covered;
        auto it = _ranges.upper_bound(begin);
        if (it != _ranges.begin() && std::prev(it)->second >= begin) {
            --it; // the range before touches or overlaps [begin, end)
        }
        std::uint64_t lo = begin;
        std::uint64_t hi = end;
        while (it != _ranges.end() && it->first <= hi) {
            lo = std::min(lo, it->first);
            hi = std::max(hi, it->second);
            _covered -= it->second - it->first;
            it = _ranges.erase(it);
        }
        _ranges.emplace(lo, hi);
        _covered += hi - lo;
        return _covered - before;
    }

    // Calls fn(b, e) for each already covered piece [b, e) inside [begin, end).
    template <class Fn>
    void for_each_overlap(std::uint64_t begin, std::uint64_t end, Fn&& fn) const {
        auto it = _ranges.upper_bound(begin);
        if (it != _ranges.begin()) {
            --it;
        }
        for (; it != _ranges.end() && it->first < end; ++it) {
            const std::uint64_t b = std::max(begin, it->first);
            const std::uint64_t e = std::min(end, it->second);
            if (b < e) {
                fn(b, e);
            }
        }
    }

    std::uint64_t covered() const noexcept { return _covered; }

    // Bytes covered without a hole from offset 0.
    std::uint64_t contiguous_from_zero() const noexcept {
        if (_ranges.empty() || _ranges.begin()->first != 0) {
            return 0;
        }
        return _ranges.begin()->second;
    }

    // The first hole in [0, limit), if any.
    std::optional<std::pair<std::uint64_t, std::uint64_t>> first_gap(std::uint64_t limit) const {
        std::uint64_t pos = 0;
        for (const auto& [b, e] : _ranges) {
            if (pos >= limit) {
                break;
            }
            if (b > pos) {
                return std::pair{pos, std::min(b, limit)};
            }
            pos = std::max(pos, e);
        }
        if (pos < limit) {
            return std::pair{pos, limit};
        }
        return std::nullopt;
    }

    // One past the highest covered byte (0 when empty).
    std::uint64_t end() const noexcept { return _ranges.empty() ? 0 : _ranges.rbegin()->second; }

private:
    std::map<std::uint64_t, std::uint64_t> _ranges; // begin -> end, disjoint, not adjacent
    std::uint64_t _covered = 0;
};

} // namespace kwik::tools
