// The send side of one stream: the application's data as retained buffer_refs, kept until
// acknowledged, and which ranges are new, in flight, lost or acknowledged. Hands the connection
// the next chunk to frame (lost ranges first), never copies payload. Owned by the connection's
// thread; no locks. All storage is sized at construction.
//
// Bookkeeping: pieces (one per write) live in a ring in stream order, found by binary search;
// acknowledged ranges above the acked prefix and lost ranges waiting for retransmission are two
// range_sets. Both are bounded, and an overflow degrades to extra retransmission, never to a
// lost byte: a full lost set widens a range over its neighbour's gap (bytes in that gap are
// sent or acknowledged already, so resending them is harmless), and a full acked set forgets
// its highest range and queues it as lost (sent again, acknowledged again).
#pragma once

#include <cassert>
#include <cstdint>
#include <memory>

#include "dataplane/transport/range_set.hpp"
#include "dataplane/transport/types.hpp"

namespace kwik::transport {

class send_buffer {
public:
    // max_buffered: bytes written but not yet acknowledged, at most. max_pieces: writes held at
    // once (0: max_buffered / 1024, at least 16); max_ranges: capacity of each range set (0:
    // max_buffered / 2048, at least 16, at most 4096). Allocation here is nothrow: if it fails the
    // buffer has no room and every write() answers false.
    send_buffer(const buffer_ops* ops, std::uint64_t max_buffered, std::uint32_t max_pieces = 0,
                std::uint32_t max_ranges = 0) noexcept;
    ~send_buffer(); // releases every held reference
    send_buffer(send_buffer&& other) noexcept;
    send_buffer& operator=(send_buffer&& other) noexcept;
    send_buffer(const send_buffer&) = delete;
    send_buffer& operator=(const send_buffer&) = delete;

    // Appends at the end, taking its own reference (ops->retain; the caller keeps and releases
    // its own). false, nothing taken: max_buffered or max_pieces would be exceeded, or finish()
    // was called. An empty write is accepted and takes nothing.
    bool write(buffer_ref data) noexcept;
    void finish() noexcept; // FIN after the data written so far; idempotent

    struct chunk {
        std::uint64_t offset;
        std::uint32_t length;
        bool fin;
        bool retransmit;
    };
    // The next chunk to send: lost ranges first (retransmit = true), then new data, at most
    // max_len bytes and, for new data, never beyond flow_limit (the peer's stream limit). A
    // FIN-only chunk (length 0) when everything is sent and the FIN is pending (retransmit set
    // if the FIN went out before). fin is set on any chunk ending at the end of finished data.
    // Returns false if nothing to send. Nothing changes until on_sent(), so a chunk that does
    // not fit may be asked for again with a smaller max_len.
    bool next_chunk(std::uint32_t max_len, std::uint64_t flow_limit, chunk& out) noexcept;
    // The chunk went into a packet. The caller may have shortened length (then clear fin).
    void on_sent(const chunk& c) noexcept;
    // fn(const std::uint8_t*, std::uint32_t) over the bytes of [offset, offset + length), for
    // serialisation; the range must be written and not yet freed (at or above the acked prefix).
    template <class Fn>
    void for_each_piece(std::uint64_t offset, std::uint32_t length, Fn&& fn) const noexcept;
    // Frees the fully acknowledged prefix (releasing pieces wholly below it).
    void on_acked(std::uint64_t offset, std::uint32_t length, bool fin) noexcept;
    // Queued for retransmission, minus whatever was acknowledged meanwhile.
    void on_lost(std::uint64_t offset, std::uint32_t length, bool fin) noexcept;
    bool has_data_to_send(std::uint64_t flow_limit) const noexcept;
    bool all_acked() const noexcept; // fin written, every byte and the FIN acknowledged

    std::uint64_t written() const noexcept { return _written; }
    std::uint64_t sent_offset() const noexcept { return _sent; } // new data sent below this
    std::uint64_t acked_prefix() const noexcept { return _acked_prefix; }
    std::uint64_t buffered_bytes() const noexcept { return _written - _acked_prefix; } // not yet acknowledged
    bool finished() const noexcept { return _finished; }
    std::uint32_t pieces_held() const noexcept { return _piece_count; }
    std::uint64_t lost_bytes() const noexcept; // queued for retransmission (tests, counters)
    const range_set& lost_ranges() const noexcept { return _lost; }
    const range_set& acked_ranges() const noexcept { return _acked; } // above the acked prefix

private:
    struct piece {
        std::uint64_t offset;
        buffer_ref ref;
    };
    const piece& piece_at(std::uint32_t i) const noexcept {
        std::uint32_t slot = _piece_head + i;
        if (slot >= _piece_capacity) {
            slot -= _piece_capacity;
        }
        return _pieces[slot];
    }
    std::uint32_t piece_index(std::uint64_t offset) const noexcept; // last piece starting at or below
    void mark_acked(std::uint64_t start, std::uint64_t end) noexcept;
    void release_all() noexcept;

    const buffer_ops* _ops;
    std::uint64_t _max_buffered;
    std::unique_ptr<piece[]> _pieces;
    std::uint32_t _piece_capacity = 0;
    std::uint32_t _piece_head = 0;
    std::uint32_t _piece_count = 0;
    range_set _acked; // above _acked_prefix
    range_set _lost;  // at or above _acked_prefix, below _sent
    std::uint64_t _written = 0;
    std::uint64_t _sent = 0;
    std::uint64_t _acked_prefix = 0;
    bool _finished = false;
    bool _fin_sent = false;
    bool _fin_lost = false;
    bool _fin_acked = false;
};

template <class Fn>
void send_buffer::for_each_piece(std::uint64_t offset, std::uint32_t length, Fn&& fn) const noexcept {
    if (length == 0 || _piece_count == 0) {
        return;
    }
    assert(offset >= piece_at(0).offset && offset + length <= _written);
    const std::uint64_t end = offset + length;
    for (std::uint32_t i = piece_index(offset); i < _piece_count && offset < end; ++i) {
        const piece& p = piece_at(i);
        const std::uint64_t skip = offset - p.offset;
        const std::uint64_t piece_end = p.offset + p.ref.len;
        const std::uint64_t take = (end < piece_end ? end : piece_end) - offset;
        fn(p.ref.data + skip, static_cast<std::uint32_t>(take));
        offset += take;
    }
}

} // namespace kwik::transport
