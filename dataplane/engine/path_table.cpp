#include "dataplane/engine/path_table.hpp"

#include <rte_errno.h>
#include <rte_hash.h>
#include <rte_hash_crc.h>
#include <rte_malloc.h>
#include <rte_rcu_qsbr.h>

#include <cstring>

namespace kwik::engine {

namespace {

// Called by rte_hash once every worker has passed a quiescent state after a delete.
void free_binding(void* /*ctx*/, void* data) { rte_free(data); }

} // namespace

path_table* path_table::create(const std::string& name, std::uint32_t capacity, int socket,
                               std::uint32_t workers, std::string* error) {
    const std::size_t rcu_size = rte_rcu_qsbr_get_memsize(workers);
    auto* rcu = static_cast<rte_rcu_qsbr*>(rte_zmalloc_socket((name + "_rcu").c_str(), rcu_size,
                                                              RTE_CACHE_LINE_SIZE, socket));
    if (rcu == nullptr || rte_rcu_qsbr_init(rcu, workers) != 0) {
        *error = "path table " + name + ": no memory for the RCU variable of " + std::to_string(workers) + " workers";
        rte_free(rcu);
        return nullptr;
    }
    rte_hash_parameters p{};
    p.name = name.c_str();
    p.entries = capacity;
    p.key_len = path_key_bytes;
    p.hash_func = rte_hash_crc; // SSE4.2 crc32 on the 40-byte key
    p.hash_func_init_val = 0;
    p.socket_id = socket;
    p.extra_flag = RTE_HASH_EXTRA_FLAGS_RW_CONCURRENCY_LF | RTE_HASH_EXTRA_FLAGS_EXT_TABLE;
    rte_hash* h = rte_hash_create(&p);
    if (h == nullptr) {
        *error = "path table " + name + ": rte_hash_create: " + rte_strerror(rte_errno);
        rte_free(rcu);
        return nullptr;
    }
    rte_hash_rcu_config rc{};
    rc.v = rcu;
    rc.mode = RTE_HASH_QSBR_MODE_DQ;
    rc.free_key_data_func = free_binding;
    if (const int ret = rte_hash_rcu_qsbr_add(h, &rc); ret != 0) {
        *error = "path table " + name + ": rte_hash_rcu_qsbr_add: " + rte_strerror(-ret);
        rte_hash_free(h);
        rte_free(rcu);
        return nullptr;
    }
    return new path_table(h, rcu);
}

path_table::~path_table() {
    // Bindings still in the table are freed here; the defer queue frees the removed ones.
    const void* key = nullptr;
    void* data = nullptr;
    std::uint32_t next = 0;
    while (rte_hash_iterate(_hash, &key, &data, &next) >= 0) {
        rte_free(data);
    }
    rte_hash_free(_hash);
    rte_free(_rcu);
}

bool path_table::add(const path_binding& b, std::string* error) {
    if (rte_hash_lookup(_hash, &b.tuple) >= 0) {
        *error = "path " + std::to_string(b.path) + ": its 5-tuple is bound already";
        return false;
    }
    auto* copy = static_cast<path_binding*>(rte_malloc("kwik_path_binding", sizeof(path_binding), RTE_CACHE_LINE_SIZE));
    if (copy == nullptr) {
        *error = "path " + std::to_string(b.path) + ": out of memory";
        return false;
    }
    std::memcpy(copy, &b, sizeof b);
    int ret = rte_hash_add_key_data(_hash, &copy->tuple, copy);
    if (ret == -ENOSPC) {
        // Slots of removed paths come back only after every worker has passed a quiescent
        // state. The main lcore may wait for that (workers pass one every loop iteration, so
        // microseconds); then the add reclaims them.
        rte_rcu_qsbr_synchronize(_rcu, RTE_QSBR_THRID_INVALID);
        ret = rte_hash_add_key_data(_hash, &copy->tuple, copy);
    }
    if (ret != 0) {
        rte_free(copy);
        *error = "path " + std::to_string(b.path) + ": " + (ret == -ENOSPC ? "path table full" : rte_strerror(-ret));
        return false;
    }
    ++_bound;
    return true;
}

bool path_table::remove(const five_tuple& t) {
    if (rte_hash_del_key(_hash, &t) < 0) {
        return false;
    }
    --_bound;
    return true;
}

void path_table::lookup_bulk(const five_tuple* const* keys, unsigned n, const path_binding** out) const noexcept {
    void* data[RTE_HASH_LOOKUP_BULK_MAX];
    std::uint64_t hits = 0;
    if (n > RTE_HASH_LOOKUP_BULK_MAX) {
        n = RTE_HASH_LOOKUP_BULK_MAX;
    }
    rte_hash_lookup_bulk_data(_hash, reinterpret_cast<const void**>(const_cast<const five_tuple**>(keys)), n, &hits, data);
    for (unsigned i = 0; i < n; ++i) {
        out[i] = (hits >> i) & 1 ? static_cast<const path_binding*>(data[i]) : nullptr;
    }
}

void path_table::register_worker(unsigned worker) noexcept {
    rte_rcu_qsbr_thread_register(_rcu, worker);
    rte_rcu_qsbr_thread_online(_rcu, worker);
}

void path_table::quiescent(unsigned worker) noexcept { rte_rcu_qsbr_quiescent(_rcu, worker); }

void path_table::offline(unsigned worker) noexcept {
    rte_rcu_qsbr_thread_offline(_rcu, worker);
    rte_rcu_qsbr_thread_unregister(_rcu, worker);
}

} // namespace kwik::engine
