// Read-only views of a received datagram that the codec parses without copying payload:
// one contiguous buffer, or a chain of segments (an rte_mbuf chain, an iovec array).
// A view is used by one thread at a time (the chained view keeps a sequential-access hint).
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>

#include "dataplane/kdp/crc32c.hpp"

namespace kwik::kdp {

// One contiguous buffer.
class contiguous_bytes {
public:
    contiguous_bytes(const std::uint8_t* data, std::size_t len) noexcept : _data(data), _len(len) {}
    explicit contiguous_bytes(std::span<const std::uint8_t> s) noexcept
        : _data(s.data()), _len(s.size()) {}

    std::size_t size() const noexcept { return _len; }

    // n contiguous bytes at pos; the caller has checked pos + n <= size(). Never copies.
    const std::uint8_t* view(std::size_t pos, std::size_t /*n*/, std::uint8_t* /*scratch*/) const noexcept {
        return _data + pos;
    }

    std::uint32_t crc(std::size_t pos, std::size_t n, std::uint32_t crc) const noexcept {
        return crc32c(_data + pos, n, crc);
    }

    // Calls fn(ptr, len) for each contiguous piece of [pos, pos + n): here exactly one.
    template <class Fn>
    void for_each_piece(std::size_t pos, std::size_t n, Fn&& fn) const noexcept {
        fn(_data + pos, n);
    }

private:
    const std::uint8_t* _data;
    std::size_t _len;
};

// One piece of a chained buffer.
struct segment {
    const std::uint8_t* data;
    std::uint32_t len;
};

// A chain of segments read as one byte sequence. Header bytes that straddle two segments are
// copied into the caller's scratch (at most a header's worth); payload is never copied.
class chained_bytes {
public:
    explicit chained_bytes(std::span<const segment> segs) noexcept : _segs(segs) {
        for (const segment& s : segs) {
            _len += s.len;
        }
    }

    std::size_t size() const noexcept { return _len; }

    const std::uint8_t* view(std::size_t pos, std::size_t n, std::uint8_t* scratch) const noexcept {
        seek(pos);
        const segment& s = _segs[_seg];
        const std::size_t in_seg = pos - _seg_start;
        if (in_seg + n <= s.len) [[likely]] {
            return s.data + in_seg;
        }
        copy_out(pos, n, scratch);
        return scratch;
    }

    std::uint32_t crc(std::size_t pos, std::size_t n, std::uint32_t crc) const noexcept {
        for_each_piece(pos, n, [&crc](const std::uint8_t* p, std::size_t len) {
            crc = crc32c(p, len, crc);
        });
        return crc;
    }

    template <class Fn>
    void for_each_piece(std::size_t pos, std::size_t n, Fn&& fn) const noexcept {
        if (n == 0) {
            return;
        }
        seek(pos);
        std::size_t idx = _seg;
        std::size_t off = pos - _seg_start;
        while (n > 0 && idx < _segs.size()) {
            const segment& s = _segs[idx];
            const std::size_t take = (s.len - off < n) ? s.len - off : n;
            if (take > 0) {
                fn(s.data + off, take);
            }
            n -= take;
            off = 0;
            ++idx;
        }
    }

private:
    // Positions the hint on the segment holding pos (pos < size()). Parsing moves forward,
    // so this is O(1) amortised; a backward seek restarts from the head.
    void seek(std::size_t pos) const noexcept {
        if (pos < _seg_start) {
            _seg = 0;
            _seg_start = 0;
        }
        while (_seg + 1 < _segs.size() && pos >= _seg_start + _segs[_seg].len) {
            _seg_start += _segs[_seg].len;
            ++_seg;
        }
    }

    void copy_out(std::size_t pos, std::size_t n, std::uint8_t* out) const noexcept {
        for_each_piece(pos, n, [&out](const std::uint8_t* p, std::size_t len) {
            std::memcpy(out, p, len);
            out += len;
        });
    }

    std::span<const segment> _segs;
    std::size_t _len = 0;
    mutable std::size_t _seg = 0;
    mutable std::size_t _seg_start = 0;
};

} // namespace kwik::kdp
