// One kwikd worker lcore: it owns an rx/tx queue pair on every port and runs the KDP pipeline
// on its bursts, lock-free: rx burst -> classify -> path lookup (hand-off to the owning worker
// when RSS delivered elsewhere) -> transport connection (ACKs, reassembly, delivery to the
// connection's endpoint) -> connection timers and scheduling -> tx burst.
// Everything here runs on the worker's own lcore, except add_connection/add_path, which the
// main lcore calls before the worker is launched (at run time they arrive as commands).
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

#include "dataplane/engine/classifier.hpp"
#include "dataplane/engine/endpoint.hpp"
#include "dataplane/engine/path_table.hpp"
#include "dataplane/engine/responder.hpp"
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
};

struct worker_config {
    unsigned id = 0;
    std::vector<worker_port> ports;
    path_table* paths = nullptr;
    rte_mempool* tx_pool = nullptr;  // packets the worker builds (transport output)
    rte_mempool* app_pool = nullptr; // endpoint data and inflated frames: 16 KiB+ data room
    std::vector<rte_ring*> handoff;  // handoff[w]: worker w's inbound ring (multi-producer)
    std::optional<drivers::queue_pair> exception; // the kernel exception interface, if any
    std::uint32_t burst = 32;
    transport::time_ns timer_tick = 100 * transport::us;
};

struct connection_spec {
    std::uint32_t index = 0; // the connection's slot on this worker (path bindings name it)
    endpoint_config endpoint;
    transport::connection_config transport;
};

struct path_spec {
    std::uint32_t connection = 0;
    transport::path_id id = 0;
    std::size_t port = 0; // index into worker_config::ports
    five_tuple tuple;     // as received: src = the remote end, dst = the appliance
};

// Single writer: the worker. Read by the main lcore for reports (torn reads of a counter
// being written are possible on 32-bit machines only; this is x86-64).
struct alignas(64) worker_counters {
    std::uint64_t rx_packets = 0, rx_bytes = 0, tx_packets = 0, tx_bytes = 0, tx_dropped = 0;
    std::uint64_t kwik_packets = 0, handed_off = 0, handoffs_received = 0;
    std::uint64_t exception_out = 0, exception_in = 0, replies = 0;
    std::uint64_t loops = 0, busy_loops = 0;
    std::array<std::uint64_t, kdp::drop_reason_count> drops{};
    struct per_port {
        std::uint64_t rx_packets = 0, rx_bytes = 0, tx_packets = 0, tx_bytes = 0, tx_dropped = 0;
    };
    std::array<per_port, max_worker_ports> ports{}; // the same counts, by port
    classify_counters classified;
    responder_counters responded;
};

class worker {
public:
    explicit worker(const worker_config& config);
    ~worker();
    worker(const worker&) = delete;
    worker& operator=(const worker&) = delete;

    // Set-up (main lcore, before launch). add_path also publishes the binding in the path table.
    bool add_connection(const connection_spec& spec, std::string* error);
    bool add_path(const path_spec& spec, std::string* error);

    // The lcore loop: until stop is set; then transmits what is queued and leaves the RCU set.
    void run(const std::atomic<bool>& stop) noexcept;
    // One iteration at time now (tests drive the worker with virtual time through this).
    void poll(transport::time_ns now) noexcept;

    const worker_counters& counters() const noexcept { return _counters; }
    const endpoint* endpoint_of(std::uint32_t connection) const noexcept;
    const transport::connection* connection_of(std::uint32_t connection) const noexcept;
    unsigned id() const noexcept { return _config.id; }

private:
    struct route {
        transport::path_id id;
        std::size_t port;
        five_tuple tuple;
        mac_address remote_mac;
        bool mac_known = false;
    };
    struct conn_ctx {
        worker* owner = nullptr;
        std::uint32_t index = 0;
        std::unique_ptr<transport::connection> conn;
        std::unique_ptr<endpoint> ep;
        std::vector<route> routes;
        bool touched = false;
    };
    struct tx_queue {
        std::array<rte_mbuf*, max_burst> pkts;
        std::uint16_t count = 0;
    };

    template <bool RxOffload>
    void process_burst(std::size_t port, std::span<rte_mbuf*> pkts, transport::time_ns now, bool handed_off) noexcept;
    void deliver(conn_ctx& c, const path_binding& b, rte_mbuf* m, const packet_meta& meta,
                 transport::time_ns now) noexcept;
    void enqueue_tx(std::size_t port, rte_mbuf* m) noexcept;
    void flush_tx() noexcept;
    void drop(rte_mbuf* m, kdp::drop_reason r) noexcept;
    bool transmit(conn_ctx& c, transport::path_id path, std::span<const std::uint8_t> packet) noexcept;

    static void cb_transmit(void* ctx, transport::path_id path, std::span<const std::uint8_t> packet);
    static void* cb_allocate(void* ctx, std::size_t size, std::uint8_t** data);
    static void cb_data(void* ctx, transport::stream_id id, std::uint64_t offset, std::span<const std::uint8_t> data);
    static void cb_readable(void* ctx, transport::stream_id id);
    static void cb_finished(void* ctx, transport::stream_id id);
    static void cb_opened(void* ctx, transport::stream_id id);
    static void cb_reset(void* ctx, transport::stream_id id, std::uint64_t code);

    worker_config _config;
    std::vector<std::unique_ptr<conn_ctx>> _conns; // by connection index; null = free slot
    std::vector<responder> _responders;            // one per port
    std::vector<tx_queue> _tx;                     // one per port
    tx_queue _exception_tx;
    transport::connection_wheel _wheel;
    std::vector<conn_ctx*> _touched;
    worker_counters _counters;
    bool _rcu_registered = false;
};

} // namespace kwik::engine
