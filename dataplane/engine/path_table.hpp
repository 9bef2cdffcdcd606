// The binding of paths to connections: a path's UDP 5-tuple -> (owning worker, connection,
// path id), docs/PROTOCOL.md section 8. One table for all workers: rte_hash with lock-free
// readers (RTE_HASH_EXTRA_FLAGS_RW_CONCURRENCY_LF). The main lcore is the only writer (it
// applies the control plane's add/remove path commands); workers look paths up in bursts and
// report quiescent states on the table's RCU variable, so a removed entry is freed only after
// every worker has passed one (rte_rcu_qsbr; STYLE.md hot-path rule 8).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>

#include "dataplane/engine/net_headers.hpp"
#include "dataplane/transport/types.hpp"

struct rte_hash;
struct rte_rcu_qsbr;

namespace kwik::engine {

// The key is net_headers.hpp's five_tuple as a received datagram carries it: src = the
// remote end, dst = the appliance. Only its meaningful bytes are hashed and compared (not the
// trailing padding), so a tuple built in place in a reused metadata slot needs no clearing.
inline constexpr std::uint32_t path_key_bytes = offsetof(five_tuple, protocol) + 1;

// What a lookup finds. Written once by the main lcore before it is published; read-only after.
struct path_binding {
    std::uint16_t owner_worker; // the worker that owns the connection (hand-off target)
    std::uint32_t connection;   // the connection's index in its owner's table
    transport::path_id path;
    five_tuple tuple;
};

class path_table {
public:
    // On the main lcore after EAL init. workers: how many lcores report quiescent states.
    static path_table* create(const std::string& name, std::uint32_t capacity, int socket,
                              std::uint32_t workers, std::string* error);
    ~path_table();
    path_table(const path_table&) = delete;
    path_table& operator=(const path_table&) = delete;

    // Main lcore only. add fails if the tuple is bound already or the table is full.
    bool add(const path_binding& b, std::string* error);
    bool remove(const five_tuple& t);
    std::uint32_t size() const noexcept { return _bound; } // bound now (not counting slots awaiting RCU reclaim)

    // Workers: up to 64 keys; out[i] is null where keys[i] is not bound. The bindings stay
    // valid until this worker's next quiescent() call.
    void lookup_bulk(const five_tuple* const* keys, unsigned n, const path_binding** out) const noexcept;
    void register_worker(unsigned worker) noexcept;   // once, on the worker's lcore
    void quiescent(unsigned worker) noexcept;         // once per loop iteration
    void offline(unsigned worker) noexcept;           // before a worker stops

    rte_rcu_qsbr* rcu() noexcept { return _rcu; }

private:
    path_table(rte_hash* h, rte_rcu_qsbr* rcu) noexcept : _hash(h), _rcu(rcu) {}
    rte_hash* _hash;
    rte_rcu_qsbr* _rcu;
    std::uint32_t _bound = 0; // main lcore only
};

} // namespace kwik::engine
