// One kwikd worker lcore: it owns an rx/tx queue pair on every port and runs the KDP pipeline
// on its bursts, lock-free: rx burst -> classify -> path lookup (hand-off to the owning worker
// when RSS delivered elsewhere) -> transport connection (ACKs, reassembly, delivery to the
// connection's endpoint) -> connection timers and scheduling -> tx burst.
// Everything here runs on the worker's own lcore, except build_connection() (the main lcore,
// any time) and install()/add_path() before the worker is launched; at run time connections
// and paths arrive as worker_commands on the worker's mailbox (worker_mailbox.hpp) and the
// worker answers there (command results, path and unknown-path events).
// A path's packets go to the MAC its packets last came from; before any came (a client-role
// connection probing a new path), the port's neighbor_table finds the MAC by ARP / neighbour
// solicitation while it holds the first packets.
#pragma once

#include <rte_mbuf.h>
#include <rte_ring.h>

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "dataplane/api/counters.hpp"
#include "dataplane/engine/classifier.hpp"
#include "dataplane/engine/connection_state.hpp"
#include "dataplane/engine/endpoint.hpp"
#include "dataplane/engine/neighbor_table.hpp"
#include "dataplane/engine/path_table.hpp"
#include "dataplane/engine/responder.hpp"
#include "dataplane/engine/worker_mailbox.hpp"
#include "dataplane/transport/connection_wheel.hpp"
#include "drivers/port.hpp"

namespace kwik::engine {

inline constexpr std::uint32_t max_burst = 64;
inline constexpr std::size_t max_worker_ports = 32; // = the configuration's max_ethdev_ports

// A port as one worker sees it.
struct worker_port {
    drivers::queue_pair queue;
    mac_address mac;
    const classifier* classify = nullptr; // the port's addresses and Kwik ports
    bool rx_checksum_offload = false;     // the classifier trusts the NIC's checksum flags
    bool tx_ipv4_checksum = false;        // the NIC fills IPv4 header checksums
    bool tx_udp_checksum = false;         // the NIC fills UDP checksums
    bool poll_rx = true;                  // false: the port has fewer rx queues than workers and
                                          // this worker only transmits on it (an rx queue has
                                          // exactly one poller)
    // Our MAC, the port's addresses with their prefixes and its gateways: the worker resolves
    // with its own neighbor_table for this port (built by the worker's constructor; the
    // configuration must pass validate()). Null: a path is sent to only once its peer has sent.
    const neighbor_config* neighbors = nullptr;
    // The kernel owns ARP/ND on this port (net_af_xdp: our requests' answers go to it): a next
    // hop with no entry is posted to the main lcore (worker_mailbox::want), which asks the kernel
    // and sends the answer back as learn_neighbor, instead of a request on the wire.
    bool kernel_neighbors = false;
};

struct worker_config {
    unsigned id = 0;
    std::vector<worker_port> ports;
    path_table* paths = nullptr;
    rte_mempool* tx_pool = nullptr;  // packets the worker builds (transport output)
    rte_mempool* app_pool = nullptr; // endpoint data and inflated frames: 16 KiB+ data room
    std::vector<rte_ring*> handoff;  // handoff[w]: worker w's inbound ring (multi-producer)
    std::optional<drivers::queue_pair> exception; // the kernel exception interface, if any: its
                                                  // tx queue is this worker's own
    bool exception_poll_rx = false;               // this worker polls the exception rx queue
                                                  // (one worker does: a queue has one poller)
    std::size_t exception_port = 0;               // the port the exception interface serves
    std::uint32_t burst = 32;
    transport::time_ns timer_tick = 100 * transport::us;
    std::uint32_t max_connections = 1024;          // connection slots (the table is sized once)
    worker_mailbox mailbox;                        // from/to the main lcore; empty: none
    api::counters_writer* counters = nullptr;      // this worker's block; null: not published
    transport::time_ns publish_interval = 100 * transport::ms;
    transport::time_ns unknown_path_interval = 1 * transport::sec; // per tuple, between events
    double unknown_path_events_per_sec = 100;                      // per worker, all tuples
    // Adaptive polling's longest sleep (idle_backoff.hpp); 0: busy polling, never a sleep.
    transport::time_ns idle_sleep_max = 0;
};

struct connection_spec {
    std::uint32_t index = 0;       // the connection's slot on this worker (path bindings name it)
    std::uint64_t connection_id = 0; // the control plane's id (counters and events carry it)
    endpoint_config endpoint;
    // The appliance answers connections by default (add_connection's role says otherwise).
    transport::connection_config transport = [] {
        transport::connection_config c;
        c.side = transport::role::server;
        return c;
    }();
};

struct path_spec {
    std::uint32_t connection = 0;
    transport::path_id id = 0;
    std::size_t port = 0; // index into worker_config::ports
    five_tuple tuple;     // as received: src = the remote end, dst = the appliance
    float weight = -1;    // >= 0: pinned load-balancing weight; < 0: the load balancer's
    std::uint64_t max_rate_bps = 0; // 0: no cap
    bool standby = false;
};

// Single writer: the worker. Read by the main lcore for reports (torn reads of a counter
// being written are possible on 32-bit machines only; this is x86-64).
struct alignas(64) worker_counters {
    std::uint64_t rx_packets = 0, rx_bytes = 0, tx_packets = 0, tx_bytes = 0, tx_dropped = 0;
    std::uint64_t kwik_packets = 0, handed_off = 0, handoffs_received = 0;
    std::uint64_t exception_out = 0, exception_in = 0, replies = 0;
    std::uint64_t loops = 0, busy_loops = 0;
    std::uint64_t commands_applied = 0, events_sent = 0, events_dropped = 0;
    std::uint64_t events_suppressed = 0; // unknown_path events over the per-worker budget
    std::uint64_t neighbor_wants = 0, neighbor_wants_lost = 0; // kernel_neighbors ports: posted / ring full
    std::uint64_t rx_linearized = 0; // multi-segment datagrams copied into one buffer
    std::uint64_t idle_sleeps = 0, idle_sleep_ns = 0; // adaptive polling's sleeps and their time
    std::array<std::uint64_t, kdp::drop_reason_count> drops{};
    struct per_port {
        std::uint64_t rx_packets = 0, rx_bytes = 0, tx_packets = 0, tx_bytes = 0, tx_dropped = 0, rx_dropped = 0;
    };
    std::array<per_port, max_worker_ports> ports{}; // the same counts, by port
    classify_counters classified;
    responder_counters responded;
    neighbor_counters neighbor; // the ports' neighbour tables together (their drops are in drops)
};

// The TSC clock every worker and kwikd's main lcore use for the transport, the counters
// region's timestamps and the heartbeat: nanoseconds from an arbitrary origin. Any thread.
transport::time_ns now_ns() noexcept;

class worker {
public:
    explicit worker(const worker_config& config);
    ~worker();
    worker(const worker&) = delete;
    worker& operator=(const worker&) = delete;

    // ---- set-up (worker.cpp) ----
    // A connection with its endpoint, ready to install on this worker: built by the main lcore
    // (any time; it allocates), installed by the worker (install_connection command) or, before
    // launch, by install(). Null with *error set if the endpoint cannot start.
    connection_ptr build_connection(const connection_spec& spec, std::string* error);
    // Before launch (main lcore): install a built connection (c is left as it was on failure);
    // add a path to it and publish the binding in the path table. At run time the same happen
    // through the mailbox.
    bool install(connection_ptr& c, std::string* error);
    bool add_path(const path_spec& spec, std::string* error);
    // Both, for tests.
    bool add_connection(const connection_spec& spec, std::string* error);

    // ---- the loop (worker.cpp) ----
    // The lcore loop: until stop is set; then transmits what is queued and leaves the RCU set.
    void run(const std::atomic<bool>& stop) noexcept;
    // One iteration at time now (tests drive the worker with virtual time through this).
    void poll(transport::time_ns now) noexcept;
    // When this worker next has work of its own after a pass at `now`: its earliest connection
    // timer, neighbour sweep, counters publish or drain check; `now` while a counters publish
    // or a tx retry is still under way. Adaptive polling never sleeps past it.
    transport::time_ns next_due(transport::time_ns now) const noexcept;

    // ---- control (worker_control.cpp) ----
    // Before launch or after the loop ended (the main lcore, the worker not running): apply
    // every command waiting in the mailbox now, on the calling thread.
    void apply_commands_now(transport::time_ns now) noexcept;
    // Copies this worker's counters into its block of the shared region (if it has one): the
    // worker every publish_interval; the main lcore once more after the loop ended.
    void publish_counters(transport::time_ns now) noexcept;
    // After the loop ended (the main lcore): the fixed part and every connection and path
    // entry at once, since no loop publishes the table slices any more.
    void publish_final_counters(transport::time_ns now) noexcept;

    // ---- observation: the worker's own thread, or the main lcore before launch / after stop ----
    const worker_counters& counters() const noexcept { return _counters; }
    const endpoint* endpoint_of(std::uint32_t connection) const noexcept;
    const transport::connection* connection_of(std::uint32_t connection) const noexcept;
    std::uint64_t connection_id_of(std::uint32_t connection) const noexcept; // 0: free slot
    unsigned id() const noexcept { return _config.id; }

private:
    // run()'s loop in adaptive mode (worker.cpp).
    void run_adaptive(const std::atomic<bool>& stop) noexcept;

    struct unknown_tuple {
        five_tuple tuple;
        transport::time_ns first_seen = 0, last_seen = 0, reported = 0;
        std::uint32_t count = 0; // datagrams since the last event for this slot
        std::uint16_t port = 0;
        bool used = false;
    };
    static constexpr std::size_t unknown_table_size = 256; // direct-mapped by tuple hash
    struct tx_queue {
        std::array<rte_mbuf*, max_burst> pkts;
        std::uint16_t count = 0;
    };

    // The packet side (worker.cpp).
    template <bool RxOffload>
    void process_burst(std::size_t port, std::span<rte_mbuf*> pkts, transport::time_ns now, bool handed_off) noexcept;
    void deliver(std::size_t port, connection_state& c, const path_binding& b, rte_mbuf* m, const packet_meta& meta,
                 transport::time_ns now, bool handed_off) noexcept;
    void enqueue_tx(std::size_t port, rte_mbuf* m) noexcept;
    void flush_tx() noexcept;
    void drop(rte_mbuf* m, kdp::drop_reason r) noexcept;
    void drop_rx(std::size_t port, rte_mbuf* m, kdp::drop_reason r) noexcept;
    bool transmit(connection_state& c, transport::path_id path, std::span<const std::uint8_t> packet) noexcept;

    // The control side (worker_control.cpp): one apply_* per worker_op, between bursts.
    void apply_commands(transport::time_ns now) noexcept;
    void apply(const worker_command& wc, transport::time_ns now) noexcept;
    void apply_install(const worker_command& wc) noexcept;
    void apply_remove_connection(connection_state& c, const worker_command& wc, transport::time_ns now) noexcept;
    api::result_status apply_add_path(connection_state& c, const worker_command& wc, transport::time_ns now,
                                      std::string* why) noexcept;
    void apply_remove_path(connection_state& c, const worker_command& wc, transport::time_ns now) noexcept;
    void apply_set_weights(connection_state& c, const worker_command& wc) noexcept;
    void apply_set_qos(connection_state& c, const worker_command& wc) noexcept;
    void apply_set_windows(connection_state& c, const worker_command& wc, transport::time_ns now) noexcept;
    void apply_set_connection_keys(connection_state& c, const worker_command& wc, transport::time_ns now) noexcept;
    bool remove_route(connection_state& c, transport::path_id id, transport::time_ns now) noexcept;
    void poll_draining(transport::time_ns now) noexcept;
    void finish_removal(connection_state& c, transport::time_ns now) noexcept;
    void touch(connection_state& c) noexcept;
    // Answers go back always (held in _unsent while the reply ring is full); events are
    // dropped, counted, when the ring is half full (room kept for answers).
    void answer(std::uint64_t token, const api::command& answered, api::result_status status,
                std::string_view reason, connection_state* ctx = nullptr) noexcept;
    void answer(const worker_command& wc, api::result_status status, std::string_view reason) noexcept {
        answer(wc.token, wc.cmd, status, reason);
    }
    void flush_unsent() noexcept;
    void raise(const api::event& e) noexcept;
    void note_unknown_path(std::size_t port, const five_tuple& t, transport::time_ns now) noexcept;
    void publish_slice(transport::time_ns now) noexcept;
    void answer_counters_requests() noexcept;
    void publish_connection(const connection_state& c, transport::time_ns now) noexcept;
    // Transmit-side neighbour resolution with the port's neighbor_table: dst's next hop's MAC
    // when known (the caller writes it into m and sends m); otherwise m was held or dropped
    // (counted) and an ARP request / solicitation went out when one was due.
    std::optional<mac_address> resolve_neighbor(std::size_t port, const ip_address& dst, rte_mbuf* m) noexcept;
    void learn_neighbor(std::size_t port, const ip_address& ip, const mac_address& mac,
                        transport::time_ns now) noexcept;
    void send_neighbor_request(std::size_t port, const ip_address& target) noexcept;
    void sweep_neighbors(transport::time_ns now) noexcept;

    static void cb_transmit(void* ctx, transport::path_id path, std::span<const std::uint8_t> packet);
    static void* cb_allocate(void* ctx, std::size_t size, std::uint8_t** data);
    static void cb_data(void* ctx, transport::stream_id id, std::uint64_t offset, std::span<const std::uint8_t> data);
    static void cb_readable(void* ctx, transport::stream_id id);
    static void cb_finished(void* ctx, transport::stream_id id);
    static void cb_opened(void* ctx, transport::stream_id id);
    static void cb_reset(void* ctx, transport::stream_id id, std::uint64_t code);
    static void cb_path_event(void* ctx, transport::path_id path, transport::path_event e);
    static void cb_closed(void* ctx, transport::close_code code, std::string_view reason);

    // Everything below is this worker's alone.
    worker_config _config;
    std::vector<connection_ptr> _conns;          // by connection slot; null = free (sized at start)
    std::vector<responder> _responders;          // one per port
    std::vector<std::unique_ptr<neighbor_table>> _neighbors; // one per port; null: none configured
    std::vector<tx_queue> _tx;                   // one per port
    tx_queue _exception_tx;
    transport::connection_wheel _wheel;
    std::vector<connection_state*> _touched;     // to pump and flush at the end of this loop
    worker_counters _counters;
    std::vector<connection_state*> _draining;    // connections with a removal in progress
    transport::time_ns _next_drain_check = 0;
    std::vector<worker_reply> _unsent;           // answers the full reply ring did not take
    std::vector<std::uint32_t> _free_path_slots; // counters slots for paths
    std::array<unknown_tuple, unknown_table_size> _unknown{};
    double _unknown_budget = 0;                  // unknown_path events allowed now (token bucket)
    transport::time_ns _unknown_refill = 0;
    std::array<std::uint64_t, kdp::drop_reason_count> _retired_drops{}; // of removed connections
    transport::time_ns _next_publish = 0;
    std::size_t _publish_cursor = 0;             // next connection slot to publish
    std::vector<deferred_answer> _counters_requests; // publish_counters: answered after the last slice
    std::array<packet_meta, max_burst> _meta{};  // process_burst()'s, reused (not re-entrant)
    transport::time_ns _next_sweep = 0;          // of the neighbour tables
    transport::time_ns _now = 0;                 // this poll's: transmit() runs in transport callbacks
    bool _rcu_registered = false;
};

} // namespace kwik::engine
