// Send-side stream buffer: chunking, acknowledgement and loss bookkeeping.
#include "dataplane/transport/send_buffer.hpp"

#include <algorithm>
#include <limits>
#include <new>
#include <utility>

namespace kwik::transport {

namespace {

std::uint32_t default_pieces(std::uint64_t max_buffered) noexcept {
    return static_cast<std::uint32_t>(std::clamp<std::uint64_t>(max_buffered / 1024, 16, 1u << 20));
}

std::uint32_t default_ranges(std::uint64_t max_buffered) noexcept {
    return static_cast<std::uint32_t>(std::clamp<std::uint64_t>(max_buffered / 2048, 16, 4096));
}

} // namespace

send_buffer::send_buffer(const buffer_ops* ops, std::uint64_t max_buffered, std::uint32_t max_pieces,
                         std::uint32_t max_ranges) noexcept
    : _ops(ops), _max_buffered(max_buffered),
      _acked(max_ranges != 0 ? max_ranges : default_ranges(max_buffered)),
      _lost(max_ranges != 0 ? max_ranges : default_ranges(max_buffered)) {
    const std::uint32_t n = max_pieces != 0 ? max_pieces : default_pieces(max_buffered);
    _pieces.reset(new (std::nothrow) piece[n]);
    _piece_capacity = _pieces ? n : 0;
}

send_buffer::~send_buffer() { release_all(); }

send_buffer::send_buffer(send_buffer&& other) noexcept
    : _ops(other._ops), _max_buffered(other._max_buffered), _pieces(std::move(other._pieces)),
      _piece_capacity(std::exchange(other._piece_capacity, 0)), _piece_head(std::exchange(other._piece_head, 0)),
      _piece_count(std::exchange(other._piece_count, 0)), _acked(std::move(other._acked)),
      _lost(std::move(other._lost)), _written(other._written), _sent(other._sent),
      _acked_prefix(other._acked_prefix), _finished(other._finished), _fin_sent(other._fin_sent),
      _fin_lost(other._fin_lost), _fin_acked(other._fin_acked) {}

send_buffer& send_buffer::operator=(send_buffer&& other) noexcept {
    if (this != &other) {
        release_all();
        _ops = other._ops;
        _max_buffered = other._max_buffered;
        _pieces = std::move(other._pieces);
        _piece_capacity = std::exchange(other._piece_capacity, 0);
        _piece_head = std::exchange(other._piece_head, 0);
        _piece_count = std::exchange(other._piece_count, 0);
        _acked = std::move(other._acked);
        _lost = std::move(other._lost);
        _written = other._written;
        _sent = other._sent;
        _acked_prefix = other._acked_prefix;
        _finished = other._finished;
        _fin_sent = other._fin_sent;
        _fin_lost = other._fin_lost;
        _fin_acked = other._fin_acked;
    }
    return *this;
}

void send_buffer::release_all() noexcept {
    for (std::uint32_t i = 0; i < _piece_count; ++i) {
        _ops->release(piece_at(i).ref.owner);
    }
    _piece_count = 0;
    _piece_head = 0;
}

bool send_buffer::write(buffer_ref data) noexcept {
    if (_finished) {
        return false;
    }
    if (data.len == 0) {
        return true;
    }
    if (_written + data.len - _acked_prefix > _max_buffered || _piece_count == _piece_capacity) {
        return false;
    }
    std::uint32_t slot = _piece_head + _piece_count;
    if (slot >= _piece_capacity) {
        slot -= _piece_capacity;
    }
    _ops->retain(data.owner);
    _pieces[slot] = piece{_written, data};
    ++_piece_count;
    _written += data.len;
    return true;
}

void send_buffer::finish() noexcept { _finished = true; }

std::uint32_t send_buffer::piece_index(std::uint64_t offset) const noexcept {
    // Last piece with p.offset <= offset.
    std::uint32_t lo = 0;
    std::uint32_t hi = _piece_count;
    while (hi - lo > 1) {
        const std::uint32_t mid = lo + (hi - lo) / 2;
        if (piece_at(mid).offset <= offset) {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    return lo;
}

bool send_buffer::next_chunk(std::uint32_t max_len, std::uint64_t flow_limit, chunk& out) noexcept {
    const bool fin_pending = _finished && !_fin_acked;
    // Lost ranges first. The lost set is kept clear of acknowledged bytes, but an overflowed
    // set may have been widened over some: skip those here. Pruning the front of the lost set
    // changes nothing observable, so it is done in place.
    while (max_len > 0 && !_lost.empty()) {
        const range_set::range r = _lost.front();
        std::uint64_t start = std::max(r.start, _acked_prefix);
        std::uint32_t i = _acked.first_ending_after(start);
        while (i < _acked.size() && _acked[i].start <= start) {
            start = _acked[i].end;
            ++i;
        }
        if (start >= r.end) {
            _lost.pop_front();
            continue;
        }
        if (start > r.start) {
            (void)_lost.remove(r.start, start); // a prefix of the front range: never splits
        }
        std::uint64_t end = r.end;
        if (i < _acked.size()) {
            end = std::min(end, _acked[i].start);
        }
        end = std::min(end, start + max_len);
        out = chunk{start, static_cast<std::uint32_t>(end - start), fin_pending && end == _written, true};
        return true;
    }
    if (max_len > 0 && _sent < _written && _sent < flow_limit) {
        const std::uint64_t end = std::min({_written, flow_limit, _sent + max_len});
        out = chunk{_sent, static_cast<std::uint32_t>(end - _sent), _finished && end == _written, false};
        return true;
    }
    if (fin_pending && _sent == _written && (!_fin_sent || _fin_lost)) {
        out = chunk{_written, 0, true, _fin_sent};
        return true;
    }
    return false;
}

void send_buffer::on_sent(const chunk& c) noexcept {
    const std::uint64_t end = c.offset + c.length;
    if (c.retransmit) {
        (void)_lost.remove(c.offset, end); // if that would split a full set, it stays queued: a duplicate at worst
    } else if (end > _sent) {
        _sent = end;
    }
    if (c.fin) {
        _fin_sent = true;
        _fin_lost = false;
    }
}

void send_buffer::mark_acked(std::uint64_t start, std::uint64_t end) noexcept {
    if (_acked.add(start, end)) {
        return;
    }
    // Full: forget the highest acknowledged range (the new one, if it is the highest) and queue
    // it as lost; it is sent and acknowledged again. Costs bandwidth, loses nothing.
    if (start > _acked.back().start) {
        _lost.add_or_widen(start, end);
        return;
    }
    const range_set::range top = _acked.back();
    _acked.pop_back();
    _lost.add_or_widen(top.start, top.end);
    (void)_acked.add(start, end); // a slot is free now
}

void send_buffer::on_acked(std::uint64_t offset, std::uint32_t length, bool fin) noexcept {
    const std::uint64_t end = std::min(offset + length, _sent);
    const std::uint64_t start = std::max(offset, _acked_prefix);
    if (fin && _fin_sent) {
        _fin_acked = true;
        _fin_lost = false;
    }
    if (start >= end) {
        return;
    }
    (void)_lost.remove(start, end); // best effort; next_chunk skips acknowledged bytes anyway
    if (start == _acked_prefix) {
        _acked_prefix = end;
    } else {
        mark_acked(start, end);
    }
    while (!_acked.empty() && _acked.front().start <= _acked_prefix) {
        _acked_prefix = std::max(_acked_prefix, _acked.front().end);
        _acked.pop_front();
    }
    _lost.remove_below(_acked_prefix);
    while (_piece_count > 0) {
        const piece& p = piece_at(0);
        if (p.offset + p.ref.len > _acked_prefix) {
            break;
        }
        _ops->release(p.ref.owner);
        if (++_piece_head == _piece_capacity) {
            _piece_head = 0;
        }
        --_piece_count;
    }
}

void send_buffer::on_lost(std::uint64_t offset, std::uint32_t length, bool fin) noexcept {
    if (fin && _fin_sent && !_fin_acked) {
        _fin_lost = true;
    }
    const std::uint64_t end = std::min(offset + length, _sent);
    std::uint64_t cur = std::max(offset, _acked_prefix);
    std::uint32_t i = _acked.first_ending_after(cur);
    while (cur < end) {
        if (i < _acked.size() && _acked[i].start <= cur) {
            cur = _acked[i].end;
            ++i;
            continue;
        }
        const std::uint64_t gap_end = i < _acked.size() ? std::min(_acked[i].start, end) : end;
        _lost.add_or_widen(cur, gap_end);
        cur = gap_end;
    }
}

bool send_buffer::has_data_to_send(std::uint64_t flow_limit) const noexcept {
    if (!_lost.empty()) {
        return true;
    }
    if (_sent < _written && _sent < flow_limit) {
        return true;
    }
    return _finished && !_fin_acked && _sent == _written && (!_fin_sent || _fin_lost);
}

bool send_buffer::all_acked() const noexcept { return _finished && _fin_acked && _acked_prefix == _written; }

std::uint64_t send_buffer::lost_bytes() const noexcept {
    std::uint64_t total = 0;
    for (std::uint32_t i = 0; i < _lost.size(); ++i) {
        total += _lost[i].end - _lost[i].start;
    }
    return total;
}

} // namespace kwik::transport
