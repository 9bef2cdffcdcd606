// Simulator trace and digest; see trace.hpp.
#include "tests/sim/trace.hpp"

#include <ostream>

namespace kwik::sim {

namespace {

// Folds `n` bytes of v, least significant first, so the digest is the same on any host.
std::uint64_t fold(std::uint64_t h, std::uint64_t v, int n) noexcept
{
    for (int i = 0; i < n; ++i) {
        h ^= (v >> (8 * i)) & 0xFFu;
        h *= 0x100000001b3ull;
    }
    return h;
}

} // namespace

const char* to_string(trace_kind k) noexcept
{
    switch (k) {
    case trace_kind::send:
        return "send";
    case trace_kind::deliver:
        return "deliver";
    case trace_kind::drop_queue:
        return "drop_queue";
    case trace_kind::drop_loss:
        return "drop_loss";
    case trace_kind::drop_blackout:
        return "drop_blackout";
    case trace_kind::mark_ce:
        return "mark_ce";
    case trace_kind::duplicate:
        return "duplicate";
    case trace_kind::reorder:
        return "reorder";
    case trace_kind::wakeup:
        return "wakeup";
    }
    return "?";
}

std::uint64_t trace::hash_bytes(std::span<const std::uint8_t> bytes) noexcept
{
    std::uint64_t h = fnv_offset;
    for (const std::uint8_t b : bytes) {
        h ^= b;
        h *= fnv_prime;
    }
    return h;
}

void trace::append(const trace_record& r)
{
    std::uint64_t h = _digest;
    h = fold(h, r.time, 8);
    h = fold(h, static_cast<std::uint8_t>(r.kind), 1);
    h = fold(h, r.node, 4);
    h = fold(h, r.path, 4);
    h = fold(h, r.link, 4);
    h = fold(h, r.size, 4);
    h = fold(h, r.hash, 8);
    _digest = h;
    ++_size;
    ++_counts[static_cast<std::size_t>(r.kind)];
    if (_keep) {
        _records.push_back(r);
    }
}

std::string to_string(const trace_record& r)
{
    std::string s = std::to_string(r.time) + " " + to_string(r.kind) + " node=" + std::to_string(r.node) +
                    " path=" + std::to_string(r.path);
    if (r.link != no_link) {
        s += " link=" + std::to_string(r.link);
    }
    s += " size=" + std::to_string(r.size) + " hash=" + std::to_string(r.hash);
    return s;
}

void trace::dump(std::ostream& os, std::size_t max_records) const
{
    std::size_t n = 0;
    for (const trace_record& r : _records) {
        if (n++ == max_records) {
            os << "... (" << (_records.size() - max_records) << " more)\n";
            return;
        }
        os << to_string(r) << '\n';
    }
}

} // namespace kwik::sim
