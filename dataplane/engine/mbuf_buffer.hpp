// rte_mbuf as the transport core's reference-counted buffer owner: the reassembler and the
// send buffers keep packets alive by reference instead of copying payload. Worker lcores
// only (an mbuf's reference count is updated atomically, so a hand-off to another worker is
// safe too).
#pragma once

#include <rte_mbuf.h>

#include "dataplane/transport/types.hpp"

namespace kwik::engine {

inline void mbuf_retain(void* owner) noexcept {
    rte_mbuf_refcnt_update(static_cast<rte_mbuf*>(owner), 1);
}

// Frees the whole chain when the last reference goes (owner is always a chain's first mbuf).
inline void mbuf_release(void* owner) noexcept {
    rte_pktmbuf_free(static_cast<rte_mbuf*>(owner));
}

inline constexpr transport::buffer_ops mbuf_buffer_ops{mbuf_retain, mbuf_release};

// A buffer of size bytes from pool for data the worker produces itself (endpoint answers,
// inflated COMPRESSED frames): one mbuf, so size must fit its data room.
inline void* mbuf_allocate(rte_mempool* pool, std::size_t size, std::uint8_t** data) noexcept {
    rte_mbuf* m = rte_pktmbuf_alloc(pool);
    if (m == nullptr) {
        return nullptr;
    }
    if (size > rte_pktmbuf_tailroom(m) || rte_pktmbuf_append(m, static_cast<std::uint16_t>(size)) == nullptr) {
        rte_pktmbuf_free(m);
        return nullptr;
    }
    *data = rte_pktmbuf_mtod(m, std::uint8_t*);
    return m;
}

} // namespace kwik::engine
