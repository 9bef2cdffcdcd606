// The channel between kwikd's main lcore and one worker lcore. The main lcore takes the control
// process's commands off the shared-memory ring, checks them against its directory of
// connections and paths (command_handler.hpp), resolves what only it knows (which worker owns the
// connection, its slot there, the port a path's local address belongs to) and posts a
// worker_command to the owner; the worker applies it between bursts and answers with a
// worker_reply, on which it also raises its own events (path up/down, unknown path, connection
// closed). Two single-producer single-consumer rte_rings per worker, created by the main lcore:
//   commands: main lcore enqueues, the worker dequeues;
//   replies:  the worker enqueues, the main lcore dequeues.
// A third, neighbour_wants, carries next hops a worker cannot resolve on a port whose neighbours
// the kernel owns (net_af_xdp): the main lcore asks the kernel (kernel_neighbors.hpp) and
// answers with learn_neighbor commands.
// Memory the main lcore allocated for a connection travels by pointer (install) and comes back
// the same way (remove) to be freed off the worker: no allocation or free on the worker for it.
#pragma once

#include <openssl/crypto.h>
#include <rte_ring.h>
#include <rte_ring_elem.h>

#include <cstdint>
#include <memory>
#include <string>

#include "dataplane/api/commands.hpp"
#include "dataplane/engine/net_headers.hpp"

namespace kwik::engine {

// A connection with its endpoint and routes, built on the main lcore (worker.cpp defines it).
struct connection_state;
struct connection_state_deleter {
    void operator()(connection_state* c) const noexcept;
};
using connection_ptr = std::unique_ptr<connection_state, connection_state_deleter>;

enum class worker_op : std::uint8_t {
    install_connection, // ctx: the built connection; answer: ok, or no_capacity (slot taken)
    remove_connection,  // connection; cmd.remove_connection.drain_timeout_ms; answer carries ctx back
    add_path,           // connection, port, tuple, cmd.add_path
    remove_path,        // connection, cmd.remove_path (drain_timeout_ms)
    set_scheduler,      // connection, cmd.set_scheduler
    set_weights,        // connection, cmd.set_weights
    set_qos,            // connection, cmd.set_qos
    set_windows,        // connection, cmd.set_windows
    set_connection_keys, // connection, cmd.set_connection_keys (holds the key: cleansed after use)
    publish_counters,   // cmd.request_counters: publish now, then answer
    learn_neighbor,     // port, tuple.src is at mac (from the kernel's table); no answer
};

// Main lcore -> worker. cmd is the control process's command as validated; the worker answers
// with a command_result whose ack_sequence is cmd.header.sequence.
struct alignas(64) worker_command {
    api::command cmd;
    std::uint64_t token = 0; // the main lcore's; echoed in the answer (0: nobody waits for it)
    worker_op op = worker_op::publish_counters;
    std::uint8_t reserved0 = 0;
    std::uint16_t port = 0;      // add_path: index of the port the path's local address is on
    std::uint32_t connection = 0; // the connection's slot on the worker
    five_tuple tuple{};           // add_path: as received (src = the remote end)
    connection_state* ctx = nullptr; // install_connection: ownership passes to the worker
    mac_address mac{};               // learn_neighbor: tuple.src's Ethernet address
};

// Worker -> main lcore: a command_result answering a worker_command, or an event the worker
// raised on its own (path_up, path_down, unknown_path, connection_closed).
struct alignas(64) worker_reply {
    api::event ev;
    std::uint64_t token = 0; // the answered worker_command's; 0 for an event
    std::uint32_t worker = 0;
    std::uint32_t connection = 0;    // the slot the answer or event concerns
    connection_state* ctx = nullptr; // remove_connection's answer: the main lcore frees it
};

// Worker -> main lcore: the next hop `ip` on port `port` has no neighbour entry; at most one per
// next hop per neighbor_config::request_interval (the table decides when a request is due).
struct neighbor_want {
    ip_address ip;
    std::uint32_t port = 0;
};

static_assert(sizeof(worker_command) % 4 == 0 && sizeof(worker_reply) % 4 == 0 && sizeof(neighbor_want) % 4 == 0);

// Zeroes the key a set_connection_keys command carries (any other command is left alone): every
// copy is cleansed once used, so keys do not linger in freed or reused memory.
inline void cleanse_key(api::command& c) noexcept {
    if (c.header.type == api::message_type::set_connection_keys) {
        OPENSSL_cleanse(c.set_connection_keys.key, sizeof c.set_connection_keys.key);
    }
}
static_assert(std::is_trivially_copyable_v<worker_command> && std::is_trivially_copyable_v<worker_reply>);

struct worker_mailbox {
    rte_ring* commands = nullptr;
    rte_ring* replies = nullptr;
    rte_ring* neighbor_wants = nullptr; // the worker enqueues, the main lcore dequeues

    bool valid() const noexcept { return commands != nullptr && replies != nullptr; }

    // Main lcore. false: the worker's queue is full (it is not keeping up); nothing was sent.
    bool post(const worker_command& c) const noexcept {
        return rte_ring_sp_enqueue_elem(commands, const_cast<worker_command*>(&c), sizeof(worker_command)) == 0;
    }
    unsigned take_replies(worker_reply* out, unsigned n) const noexcept {
        return rte_ring_sc_dequeue_burst_elem(replies, out, sizeof(worker_reply), n, nullptr);
    }
    // Worker.
    unsigned take_commands(worker_command* out, unsigned n) const noexcept {
        return rte_ring_sc_dequeue_burst_elem(commands, out, sizeof(worker_command), n, nullptr);
    }
    bool answer(const worker_reply& r) const noexcept {
        return rte_ring_sp_enqueue_elem(replies, const_cast<worker_reply*>(&r), sizeof(worker_reply)) == 0;
    }
    // false: the ring is full (the main lcore is behind) or absent; the worker counts it.
    bool want(const neighbor_want& w) const noexcept {
        return neighbor_wants != nullptr &&
               rte_ring_sp_enqueue_elem(neighbor_wants, const_cast<neighbor_want*>(&w), sizeof(neighbor_want)) == 0;
    }
    // Main lcore.
    unsigned take_wants(neighbor_want* out, unsigned n) const noexcept {
        return neighbor_wants == nullptr
                   ? 0
                   : rte_ring_sc_dequeue_burst_elem(neighbor_wants, out, sizeof(neighbor_want), n, nullptr);
    }
};

// Conversions between the command interface's tuple (local/remote, IPv4 in 4 bytes) and the
// engine's (src = remote, dst = local, IPv4-mapped).
five_tuple to_engine(const api::five_tuple& t) noexcept;
api::five_tuple to_api(const five_tuple& t) noexcept;

// Main lcore, after EAL init: the two rings of worker `worker` ("<prefix>_wc<worker>", "_wr").
// commands: command_slots (a power of two); replies: reply_slots; neighbour wants ("_wn"):
// command_slots. Empty with *error on failure.
worker_mailbox create_mailbox(const std::string& prefix, unsigned worker, unsigned command_slots,
                              unsigned reply_slots, int socket, std::string* error);
void free_mailbox(worker_mailbox& m) noexcept;

} // namespace kwik::engine
