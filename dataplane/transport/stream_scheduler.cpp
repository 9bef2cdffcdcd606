// Stream scheduler: per-level round-robin rings over a fixed entry table, an open-addressing
// index from stream id to entry, and the anti-starvation counters.
#include "dataplane/transport/stream_scheduler.hpp"

#include <new>

namespace kwik::transport {

stream_scheduler::stream_scheduler(std::uint32_t max_streams) noexcept {
    if (max_streams > (1u << 30)) {
        max_streams = 1u << 30;
    }
    // Index at most half full: short probe sequences.
    std::uint32_t bits = 1;
    while (bits < 31 && (1u << bits) < 2ull * max_streams) {
        ++bits;
    }
    const std::uint32_t slots = 1u << bits;
    _entries.reset(max_streams > 0 ? new (std::nothrow) entry[max_streams] : nullptr);
    _index.reset(new (std::nothrow) std::uint32_t[slots]());
    if (!_entries || !_index) {
        _entries.reset();
        _index.reset();
        return; // no room: _free stays nil, find() sees _max_streams 0
    }
    _max_streams = max_streams;
    _mask = (1u << bits) - 1;
    _shift = 64 - bits;
    for (std::uint32_t i = max_streams; i > 0; --i) {
        _entries[i - 1].next = _free;
        _free = i - 1;
    }
}

std::uint32_t stream_scheduler::level_of(kdp::priority p) noexcept {
    switch (p) {
    case kdp::priority::high:
        return 1;
    case kdp::priority::critical:
    case kdp::priority::control:
        return 2;
    default:
        return 0;
    }
}

std::uint32_t stream_scheduler::find(stream_id id) const noexcept {
    if (_max_streams == 0) {
        return nil;
    }
    for (std::uint32_t i = home(id);; i = (i + 1) & _mask) {
        const std::uint32_t v = _index[i];
        if (v == 0) {
            return nil;
        }
        if (_entries[v - 1].id == id) {
            return v - 1;
        }
    }
}

// Linear-probing delete with backward shift: no tombstones, probe lengths stay short.
void stream_scheduler::index_erase(stream_id id) noexcept {
    std::uint32_t i = home(id);
    while (_entries[_index[i] - 1].id != id) {
        i = (i + 1) & _mask;
    }
    _index[i] = 0;
    for (std::uint32_t j = (i + 1) & _mask; _index[j] != 0; j = (j + 1) & _mask) {
        const std::uint32_t k = home(_entries[_index[j] - 1].id);
        // Move j's key into the hole at i unless its home lies cyclically in (i, j].
        const bool home_between = i <= j ? (i < k && k <= j) : (i < k || k <= j);
        if (!home_between) {
            _index[i] = _index[j];
            _index[j] = 0;
            i = j;
        }
    }
}

void stream_scheduler::link(std::uint32_t e, std::uint32_t level) noexcept {
    entry& n = _entries[e];
    n.level = level;
    const std::uint32_t h = _head[level];
    if (h == nil) {
        n.prev = e;
        n.next = e;
        _head[level] = e;
    } else {
        // At the tail: just before the head, so it is served after everyone already waiting.
        const std::uint32_t t = _entries[h].prev;
        n.prev = t;
        n.next = h;
        _entries[t].next = e;
        _entries[h].prev = e;
    }
    ++_count[level];
}

void stream_scheduler::unlink(std::uint32_t e) noexcept {
    entry& n = _entries[e];
    const std::uint32_t level = n.level;
    if (n.next == e) {
        _head[level] = nil;
    } else {
        _entries[n.prev].next = n.next;
        _entries[n.next].prev = n.prev;
        if (_head[level] == e) {
            _head[level] = n.next;
        }
    }
    if (--_count[level] == 0) {
        _waited[level] = 0;
    }
}

bool stream_scheduler::set_ready(stream_id id, kdp::priority p) noexcept {
    const std::uint32_t level = level_of(p);
    std::uint32_t e = find(id);
    if (e != nil) {
        if (_entries[e].level != level) {
            unlink(e);
            link(e, level);
        }
        return true;
    }
    if (_free == nil) {
        return false;
    }
    e = _free;
    _free = _entries[e].next;
    _entries[e].id = id;
    std::uint32_t i = home(id);
    while (_index[i] != 0) {
        i = (i + 1) & _mask;
    }
    _index[i] = e + 1;
    link(e, level);
    ++_ready;
    return true;
}

void stream_scheduler::set_idle(stream_id id) noexcept {
    const std::uint32_t e = find(id);
    if (e == nil) {
        return;
    }
    unlink(e);
    index_erase(id);
    _entries[e].next = _free;
    _free = e;
    --_ready;
}

stream_id stream_scheduler::next() noexcept {
    if (_ready == 0) {
        return no_stream;
    }
    std::uint32_t level = level_count;
    if (_starvation_limit > 0) {
        for (std::uint32_t l = 0; l < level_count; ++l) {
            if (_count[l] > 0 && _waited[l] >= _starvation_limit) {
                level = l;
                break;
            }
        }
    }
    if (level == level_count) {
        level = level_count - 1;
        while (_count[level] == 0) {
            --level;
        }
        // A pick by strict priority: every ready level below waited once more. (Picks made by
        // the rule charge no one, so starved levels share the relief equally.)
        for (std::uint32_t l = 0; l < level; ++l) {
            if (_count[l] > 0) {
                ++_waited[l];
            }
        }
    }
    const std::uint32_t e = _head[level];
    _head[level] = _entries[e].next;
    _waited[level] = 0;
    return _entries[e].id;
}

} // namespace kwik::transport
