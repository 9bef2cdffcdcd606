// Append-only log of what the simulator did (sends, deliveries, drops, marks, wakeups) with a
// running 64-bit FNV-1a digest, so a test can assert that one seed replays exactly and another
// does not. Test support only; one thread (the event loop's) appends.
#pragma once

#include <cstdint>
#include <iosfwd>
#include <span>
#include <string>
#include <vector>

#include "tests/sim/event_loop.hpp"

namespace kwik::sim {

enum class trace_kind : std::uint8_t {
    send,          // an endpoint handed a datagram to the network
    deliver,       // the network handed a datagram to an endpoint
    drop_queue,    // drop-tail (or ECN threshold for a non-ECT packet) at a link
    drop_loss,     // random loss on a link
    drop_blackout, // sent or in flight during a link's blackout window
    mark_ce,       // a link set ECN-CE
    duplicate,     // a link made a second copy
    reorder,       // a link held a packet back so later ones overtake it
    wakeup,        // an endpoint's on_wakeup ran
};

[[nodiscard]] const char* to_string(trace_kind k) noexcept;

inline constexpr std::uint32_t no_link = 0xFFFFFFFFu;

struct trace_record {
    time_ns time = 0;
    trace_kind kind = trace_kind::send;
    std::uint32_t node = 0; // deliver/wakeup: the receiving node; otherwise the sender
    std::uint32_t path = 0;
    std::uint32_t link = no_link; // link events only
    std::uint32_t size = 0;       // datagram bytes; 0 for wakeups
    std::uint64_t hash = 0;       // FNV-1a of the datagram bytes; 0 for wakeups

    friend bool operator==(const trace_record&, const trace_record&) = default;
};

class trace {
public:
    // keep_records=false keeps only the digest and per-kind counts (long runs).
    explicit trace(bool keep_records = true) : _keep(keep_records) {}

    void append(const trace_record& r);

    // FNV-1a over every record's fields in little-endian order (not over struct padding).
    [[nodiscard]] std::uint64_t digest() const noexcept { return _digest; }
    [[nodiscard]] std::uint64_t size() const noexcept { return _size; }
    [[nodiscard]] std::uint64_t count(trace_kind k) const noexcept { return _counts[static_cast<std::size_t>(k)]; }
    [[nodiscard]] std::span<const trace_record> records() const noexcept { return _records; }

    // Writes up to max_records records, one a line, for a failing test's message.
    void dump(std::ostream& os, std::size_t max_records = 100) const;

    [[nodiscard]] static std::uint64_t hash_bytes(std::span<const std::uint8_t> bytes) noexcept;

private:
    static constexpr std::uint64_t fnv_offset = 0xcbf29ce484222325ull;
    static constexpr std::uint64_t fnv_prime = 0x100000001b3ull;
    static constexpr std::size_t kind_count = static_cast<std::size_t>(trace_kind::wakeup) + 1;

    bool _keep;
    std::uint64_t _digest = fnv_offset;
    std::uint64_t _size = 0;
    std::uint64_t _counts[kind_count] = {};
    std::vector<trace_record> _records;
};

[[nodiscard]] std::string to_string(const trace_record& r);

} // namespace kwik::sim
