// Reference-counted buffers from a free list, for kwik-peer's received datagrams and the stream
// data it writes: the transport keeps references (the reassembler holds received frames until
// they are read, the send buffer holds written data until it is acknowledged), and a buffer
// goes back to its pool's free list when the last one is released. Slabs are allocated as the
// pool grows and freed only with the pool, so the steady state allocates nothing.
// One thread (the peer's data thread): the counts and the free list are not atomic.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <new>
#include <vector>

#include "dataplane/transport/types.hpp"

namespace kwik::peer {

class packet_pool;

// Lives in front of its data; pool is null for an oversized buffer taken from the heap.
struct alignas(16) pooled_buffer {
    std::uint32_t refs;
    std::uint32_t capacity;
    packet_pool* pool;
    pooled_buffer* next_free;

    std::uint8_t* data() noexcept { return reinterpret_cast<std::uint8_t*>(this + 1); }
};
static_assert(sizeof(pooled_buffer) % alignof(std::max_align_t) == 0, "data() stays max-aligned");

struct pool_stats {
    std::uint64_t buffers = 0;   // created, in slabs
    std::uint64_t in_use = 0;    // handed out, not yet released
    std::uint64_t oversized = 0; // requests above the buffer size, served from the heap
    std::uint64_t exhausted = 0; // requests refused: the limit was reached or memory ran out
};

class packet_pool {
public:
    // buffer_size: bytes per buffer; grows by slab_buffers at a time up to max_buffers.
    packet_pool(std::uint32_t buffer_size, std::uint32_t slab_buffers, std::uint64_t max_buffers)
        : _buffer_size(buffer_size), _slab_buffers(slab_buffers), _max_buffers(max_buffers) {}
    ~packet_pool() = default; // every buffer must be released first (the owner orders members so)
    packet_pool(const packet_pool&) = delete;
    packet_pool& operator=(const packet_pool&) = delete;

    // A buffer of at least size bytes with one reference; nullptr when none can be had.
    pooled_buffer* get(std::size_t size) noexcept {
        if (size > _buffer_size) [[unlikely]] {
            return get_oversized(size);
        }
        if (_free == nullptr && !grow()) [[unlikely]] {
            ++_stats.exhausted;
            return nullptr;
        }
        pooled_buffer* b = _free;
        _free = b->next_free;
        b->refs = 1;
        ++_stats.in_use;
        return b;
    }

    std::uint32_t buffer_size() const noexcept { return _buffer_size; }
    const pool_stats& stats() const noexcept { return _stats; }

    static void retain(void* owner) noexcept { ++static_cast<pooled_buffer*>(owner)->refs; }
    static void release(void* owner) noexcept {
        auto* b = static_cast<pooled_buffer*>(owner);
        if (--b->refs != 0) {
            return;
        }
        if (b->pool == nullptr) [[unlikely]] {
            std::free(b);
            return;
        }
        b->next_free = b->pool->_free;
        b->pool->_free = b;
        --b->pool->_stats.in_use;
    }
    // The transport's buffer_ops for buffers of any packet_pool (and its oversized ones).
    static const transport::buffer_ops ops;

private:
    bool grow() noexcept {
        if (_stats.buffers + _slab_buffers > _max_buffers) {
            return false;
        }
        const std::size_t stride = (sizeof(pooled_buffer) + _buffer_size + 63) & ~std::size_t{63};
        auto* slab = static_cast<std::uint8_t*>(std::aligned_alloc(64, stride * _slab_buffers));
        if (slab == nullptr) {
            return false;
        }
        _slabs.emplace_back(slab);
        for (std::uint32_t i = 0; i < _slab_buffers; ++i) {
            auto* b = new (slab + i * stride) pooled_buffer{0, _buffer_size, this, _free};
            _free = b;
        }
        _stats.buffers += _slab_buffers;
        return true;
    }

    pooled_buffer* get_oversized(std::size_t size) noexcept {
        void* p = std::malloc(sizeof(pooled_buffer) + size);
        if (p == nullptr) {
            ++_stats.exhausted;
            return nullptr;
        }
        ++_stats.oversized;
        return new (p) pooled_buffer{1, static_cast<std::uint32_t>(size), nullptr, nullptr};
    }

    struct slab_free {
        void operator()(std::uint8_t* p) const noexcept { std::free(p); }
    };

    std::uint32_t _buffer_size;
    std::uint32_t _slab_buffers;
    std::uint64_t _max_buffers;
    pooled_buffer* _free = nullptr;
    std::vector<std::unique_ptr<std::uint8_t, slab_free>> _slabs;
    pool_stats _stats;
};

inline const transport::buffer_ops packet_pool::ops{&packet_pool::retain, &packet_pool::release};

} // namespace kwik::peer
