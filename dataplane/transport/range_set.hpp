// A bounded set of disjoint, non-adjacent half-open ranges [start, end) of stream offsets, kept
// sorted in one array allocated at construction and never again. send_buffer keeps its
// acknowledged and lost ranges in two of these. One owner thread (the connection's); no locks.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <memory>
#include <new>

namespace kwik::transport {

class range_set {
public:
    struct range {
        std::uint64_t start;
        std::uint64_t end;
    };

    // Storage for `capacity` ranges is allocated here (nothrow): if that fails the set has
    // capacity 0 and every add() that needs a slot reports full.
    explicit range_set(std::uint32_t capacity) noexcept
        : _ranges(capacity > 0 ? new (std::nothrow) range[capacity] : nullptr),
          _capacity(_ranges ? capacity : 0) {}
    range_set(range_set&& other) noexcept
        : _ranges(std::move(other._ranges)), _capacity(other._capacity), _begin(other._begin),
          _size(other._size) {
        other._capacity = 0;
        other._begin = 0;
        other._size = 0;
    }
    range_set& operator=(range_set&& other) noexcept {
        if (this != &other) {
            _ranges = std::move(other._ranges);
            _capacity = other._capacity;
            _begin = other._begin;
            _size = other._size;
            other._capacity = 0;
            other._begin = 0;
            other._size = 0;
        }
        return *this;
    }
    range_set(const range_set&) = delete;
    range_set& operator=(const range_set&) = delete;

    std::uint32_t capacity() const noexcept { return _capacity; }
    std::uint32_t size() const noexcept { return _size; }
    bool empty() const noexcept { return _size == 0; }
    bool full() const noexcept { return _size == _capacity; }
    const range& operator[](std::uint32_t i) const noexcept { return _ranges[_begin + i]; }
    const range& front() const noexcept { return _ranges[_begin]; }
    const range& back() const noexcept { return _ranges[_begin + _size - 1]; }
    void clear() noexcept {
        _begin = 0;
        _size = 0;
    }
    void pop_front() noexcept {
        ++_begin;
        --_size;
        if (_size == 0) {
            _begin = 0;
        }
    }
    void pop_back() noexcept {
        --_size;
        if (_size == 0) {
            _begin = 0;
        }
    }

    // Index of the first range whose end is above `offset` (size() if none). Binary search.
    std::uint32_t first_ending_after(std::uint64_t offset) const noexcept {
        std::uint32_t lo = 0;
        std::uint32_t hi = _size;
        while (lo < hi) {
            const std::uint32_t mid = lo + (hi - lo) / 2;
            if ((*this)[mid].end <= offset) {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        return lo;
    }

    bool contains(std::uint64_t offset) const noexcept {
        const std::uint32_t i = first_ending_after(offset);
        return i < _size && (*this)[i].start <= offset;
    }

    // Adds [start, end), merging with every range it overlaps or touches. Returns false, with
    // the set unchanged, when the range needs a slot of its own and the set is full.
    [[nodiscard]] bool add(std::uint64_t start, std::uint64_t end) noexcept {
        if (start >= end) {
            return true;
        }
        // Ranges i..j-1 overlap or touch [start, end).
        const std::uint32_t i = first_ending_after(start == 0 ? 0 : start - 1);
        std::uint32_t j = i;
        while (j < _size && (*this)[j].start <= end) {
            ++j;
        }
        if (i == j) {
            return insert_at(i, range{start, end});
        }
        range& r = at(i);
        r.start = std::min(r.start, start);
        r.end = std::max((*this)[j - 1].end, end);
        erase(i + 1, j);
        return true;
    }

    // As add(), but when the set is full the new range is joined to its nearest neighbour,
    // covering the gap between them: the set then holds a superset of what was added. For sets
    // where over-approximating is safe (bytes to retransmit: sending a byte twice is harmless).
    void add_or_widen(std::uint64_t start, std::uint64_t end) noexcept {
        if (add(start, end) || _size == 0) {
            return;
        }
        const std::uint32_t i = first_ending_after(start); // add() failed: no overlap, no touch
        if (i == _size) {
            at(i - 1).end = end;
        } else if (i == 0) {
            at(0).start = start;
        } else if (start - (*this)[i - 1].end <= (*this)[i].start - end) {
            at(i - 1).end = end;
        } else {
            at(i).start = start;
        }
    }

    // Removes [start, end) from the set. Returns false, with the set unchanged, when that would
    // split one range in two and the set is full.
    [[nodiscard]] bool remove(std::uint64_t start, std::uint64_t end) noexcept {
        if (start >= end) {
            return true;
        }
        std::uint32_t i = first_ending_after(start);
        if (i == _size || (*this)[i].start >= end) {
            return true;
        }
        if ((*this)[i].start < start && (*this)[i].end > end) {
            const range tail{end, (*this)[i].end};
            if (!insert_at(i + 1, tail)) {
                return false;
            }
            at(i).end = start;
            return true;
        }
        if ((*this)[i].start < start) {
            at(i).end = start;
            ++i;
        }
        std::uint32_t j = i;
        while (j < _size && (*this)[j].end <= end) {
            ++j;
        }
        if (j < _size && (*this)[j].start < end) {
            at(j).start = end;
        }
        erase(i, j);
        return true;
    }

    // Removes everything below `offset`; never needs a slot.
    void remove_below(std::uint64_t offset) noexcept {
        const std::uint32_t i = first_ending_after(offset);
        _begin += i;
        _size -= i;
        if (_size == 0) {
            _begin = 0;
        } else if (at(0).start < offset) {
            at(0).start = offset;
        }
    }

private:
    range& at(std::uint32_t i) noexcept { return _ranges[_begin + i]; }

    // Opens a slot at logical index i, shifting whichever side has room (and, where both do,
    // the shorter side: acknowledgements mostly land near the top, removals at the bottom).
    bool insert_at(std::uint32_t i, range r) noexcept {
        if (_size == _capacity) {
            return false;
        }
        const bool room_above = _begin + _size < _capacity;
        if (room_above && (_begin == 0 || i >= _size / 2)) {
            std::memmove(&_ranges[_begin + i + 1], &_ranges[_begin + i], (_size - i) * sizeof(range));
        } else {
            if (_begin == 0) {
                return false; // unreachable: size < capacity leaves room on one side
            }
            std::memmove(&_ranges[_begin - 1], &_ranges[_begin], i * sizeof(range));
            --_begin;
        }
        _ranges[_begin + i] = r;
        ++_size;
        return true;
    }

    // Removes logical indices [i, j).
    void erase(std::uint32_t i, std::uint32_t j) noexcept {
        if (i >= j) {
            return;
        }
        if (i == 0) {
            _begin += j;
        } else {
            std::memmove(&_ranges[_begin + i], &_ranges[_begin + j], (_size - j) * sizeof(range));
        }
        _size -= j - i;
        if (_size == 0) {
            _begin = 0;
        }
    }

    std::unique_ptr<range[]> _ranges;
    std::uint32_t _capacity = 0;
    std::uint32_t _begin = 0; // logical index 0 lives at _ranges[_begin]
    std::uint32_t _size = 0;
};

} // namespace kwik::transport
