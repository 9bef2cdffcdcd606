// Reference-counted heap buffers: the buffer_ops for owners that are not DPDK (kwik-peer on
// kernel sockets, the simulator, tests). One thread per buffer at a time: the count is not
// atomic, as every connection lives on one thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <new>

#include "dataplane/transport/types.hpp"

namespace kwik::transport {

struct heap_buffer {
    std::uint32_t refs;
    std::uint32_t size;
    // data follows

    std::uint8_t* data() noexcept { return reinterpret_cast<std::uint8_t*>(this + 1); }

    // A buffer of size bytes with one reference; nullptr if memory is exhausted.
    static heap_buffer* make(std::size_t size) noexcept {
        void* p = std::malloc(sizeof(heap_buffer) + size);
        if (p == nullptr) {
            return nullptr;
        }
        return new (p) heap_buffer{1, static_cast<std::uint32_t>(size)};
    }
};

inline void heap_buffer_retain(void* owner) noexcept {
    ++static_cast<heap_buffer*>(owner)->refs;
}

inline void heap_buffer_release(void* owner) noexcept {
    auto* b = static_cast<heap_buffer*>(owner);
    if (--b->refs == 0) {
        std::free(b);
    }
}

inline constexpr buffer_ops heap_buffer_ops{heap_buffer_retain, heap_buffer_release};

} // namespace kwik::transport
