// The KDP codec's byte sources over a received rte_mbuf: the UDP payload read in place, as
// kdp::contiguous_bytes when it lies in one segment, else as kdp::chained_bytes over the chain.
// Called by the lcore that owns the mbuf; no allocation, the segment array is the caller's.
#pragma once

#include <rte_mbuf.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>

#include "dataplane/kdp/bytes.hpp"
#include "dataplane/kdp/packet.hpp"

namespace kwik::engine {

// Longest chain the data plane parses in place. A 9000-byte jumbo frame in 2 KB mbufs takes 5
// segments; 16 leaves room for small-buffer pools and for PMDs that split headers off.
inline constexpr std::size_t max_mbuf_segments = 16;

// Per-lcore scratch for one chain's segment array (one is enough: a burst parses one packet
// at a time and keeps the packet_view, which holds positions, not pointers into the array).
using mbuf_segment_array = std::array<kdp::segment, max_mbuf_segments>;

// True when the payload lies wholly in the first segment: the common case (1500-byte MTU in
// 2 KB mbufs), which parses through contiguous_bytes. That path is worth keeping: parse_packet
// of a 1435-byte one-frame packet took 66 ns contiguous against 146 ns as a 2-segment chain
// (perf/bench/codec_bench, medians, burst of 32, 2-core Xeon VM).
inline bool mbuf_is_contiguous(const rte_mbuf* m) noexcept {
    return m->next == nullptr;
}

// The fast path: bytes [offset, data_len) of a single-segment mbuf. The caller checked
// mbuf_is_contiguous(m) and offset <= m->data_len.
inline kdp::contiguous_bytes mbuf_contiguous_bytes(const rte_mbuf* m, std::uint32_t offset) noexcept {
    return {rte_pktmbuf_mtod_offset(m, const std::uint8_t*, offset),
            static_cast<std::size_t>(m->data_len) - offset};
}

// Fills storage with the non-empty pieces of the chain from byte offset of the first segment to
// the end of the last one, and returns how many it used. Returns nothing when offset lies past
// the first segment or the chain has more non-empty pieces than storage holds; the caller
// counts that drop. Empty segments (some PMDs leave them) take no slot.
[[nodiscard]] inline std::optional<std::size_t> mbuf_segments(const rte_mbuf* m, std::uint32_t offset,
                                                              std::span<kdp::segment> storage) noexcept {
    if (offset > m->data_len) [[unlikely]] {
        return std::nullopt;
    }
    std::size_t used = 0;
    for (const rte_mbuf* s = m; s != nullptr; s = s->next) {
        const std::uint32_t skip = s == m ? offset : 0;
        const std::uint32_t len = s->data_len - skip;
        if (len == 0) {
            continue;
        }
        if (used == storage.size()) [[unlikely]] {
            return std::nullopt;
        }
        storage[used++] = {rte_pktmbuf_mtod_offset(s, const std::uint8_t*, skip), len};
    }
    return used;
}

// The payload of a chain at offset as one byte sequence, its segment array in storage (which
// must outlive the result). Nothing when mbuf_segments() fails.
[[nodiscard]] inline std::optional<kdp::chained_bytes> mbuf_chained_bytes(
    const rte_mbuf* m, std::uint32_t offset, std::span<kdp::segment> storage) noexcept {
    const std::optional<std::size_t> n = mbuf_segments(m, offset, storage);
    if (!n) [[unlikely]] {
        return std::nullopt;
    }
    return kdp::chained_bytes(storage.first(*n));
}

// Parses the KDP packet at offset of m through the source that fits it. Nothing (and out
// untouched) when the chain cannot be read in place: offset past the first segment or more
// pieces than storage holds; otherwise the codec's verdict.
template <kdp::parse_mode Mode = kdp::parse_mode::verify>
[[nodiscard]] inline std::optional<kdp::drop_reason> parse_mbuf(const rte_mbuf* m, std::uint32_t offset,
                                                                std::span<kdp::segment> storage,
                                                                kdp::packet_view& out) noexcept {
    if (mbuf_is_contiguous(m)) [[likely]] {
        if (offset > m->data_len) [[unlikely]] {
            return std::nullopt;
        }
        return kdp::parse_packet<Mode>(mbuf_contiguous_bytes(m, offset), out);
    }
    const std::optional<kdp::chained_bytes> bytes = mbuf_chained_bytes(m, offset, storage);
    if (!bytes) [[unlikely]] {
        return std::nullopt;
    }
    return kdp::parse_packet<Mode>(*bytes, out);
}

} // namespace kwik::engine
