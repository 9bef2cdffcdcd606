// Which stream of a connection sends next, by the seed's priority levels: strict priority
// critical > high > normal, round-robin within a level, with an anti-starvation rule. Control
// frames are the connection's own and never pass through here. Owned by the connection's
// thread; storage sized at construction, no allocation afterwards.
//
// Anti-starvation rule. Each level counts the picks that strict priority gave to a higher level
// while it was ready, since it was last picked; the count resets when the level is picked or has
// no ready stream. When a level's count reaches starvation_limit (default 8), that level gets
// the next pick; if several have, the lowest first. Picks made by this rule count against no
// one, so starved levels share the relief equally. With critical (C) and normal (N) streams
// ready and limit L: C x L, N, repeating (normal gets 1 pick in L + 1). With all three levels
// ready: C x L, N, H, repeating (1 in L + 2 each). A limit of 0 turns the rule off (pure strict
// priority). Within a level, the starved pick takes the level's next stream in its round.
#pragma once

#include <cstdint>
#include <memory>

#include "dataplane/kdp/wire.hpp"
#include "dataplane/transport/types.hpp"

namespace kwik::transport {

class stream_scheduler {
public:
    // Returned by next() when nothing is ready; stream 0 is reserved (PROTOCOL.md 5.5).
    static constexpr stream_id no_stream = 0;
    static constexpr std::uint32_t level_count = 3; // normal, high, critical

    // Room for max_streams ready streams at once. Allocation here is nothrow: if it fails the
    // scheduler has no room and set_ready() answers false.
    explicit stream_scheduler(std::uint32_t max_streams) noexcept;
    stream_scheduler(const stream_scheduler&) = delete;
    stream_scheduler& operator=(const stream_scheduler&) = delete;

    // The stream has data to send. Idempotent; a new priority moves it (to the back of its new
    // level's round). kdp::priority::control is treated as critical. false: max_streams are
    // ready already (the stream is not scheduled).
    bool set_ready(stream_id id, kdp::priority p) noexcept;
    void set_idle(stream_id id) noexcept; // no-op if not ready
    bool empty() const noexcept { return _ready == 0; }
    // The stream to serve now (see the rule above); it stays ready, at the back of its level's
    // round. no_stream if empty.
    stream_id next() noexcept;
    void set_starvation_limit(std::uint32_t picks) noexcept { _starvation_limit = picks; }

    bool is_ready(stream_id id) const noexcept { return find(id) != nil; }
    std::uint32_t ready_count() const noexcept { return _ready; }
    std::uint32_t capacity() const noexcept { return _max_streams; }

private:
    static constexpr std::uint32_t nil = 0xFFFFFFFFu;
    struct entry {
        stream_id id;
        std::uint32_t prev; // circular list within the level
        std::uint32_t next; // ditto; the free-list link when unused
        std::uint32_t level;
    };
    static std::uint32_t level_of(kdp::priority p) noexcept;
    std::uint32_t home(stream_id id) const noexcept {
        return static_cast<std::uint32_t>((id * 0x9E3779B97F4A7C15ull) >> _shift);
    }
    std::uint32_t find(stream_id id) const noexcept; // entry index or nil
    void index_erase(stream_id id) noexcept;
    void link(std::uint32_t e, std::uint32_t level) noexcept;
    void unlink(std::uint32_t e) noexcept;

    std::unique_ptr<entry[]> _entries;
    std::unique_ptr<std::uint32_t[]> _index; // open addressing, linear probing: entry + 1, 0 = empty
    std::uint32_t _max_streams = 0;
    std::uint32_t _mask = 0;
    std::uint32_t _shift = 63;
    std::uint32_t _free = nil;
    std::uint32_t _ready = 0;
    std::uint32_t _head[level_count] = {nil, nil, nil}; // next to serve in each level
    std::uint32_t _count[level_count] = {};
    std::uint32_t _waited[level_count] = {}; // picks by higher levels while this one was ready
    std::uint32_t _starvation_limit = 8;
};

} // namespace kwik::transport
