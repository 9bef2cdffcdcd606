// kwik-peer's data thread: one transport::connection over udp_paths, driven by epoll over the
// path sockets, a timerfd armed at the connection's next wakeup (CLOCK_MONOTONIC, ns) and an
// eventfd that wakes it for actions posted by other threads (the KCP session's events, a
// signal). It owns the connection and either the client's transfer or the server's stream
// endpoint (engine::endpoint, as in kwikd). run() and everything it calls belong to the one
// thread that calls run(); post() and request_stop() may be called from any thread (the latter
// from a signal handler). No lock on the packet path: the action queue's mutex is taken only
// when the eventfd says something was posted.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "common/result.hpp"
#include "dataplane/engine/endpoint.hpp"
#include "dataplane/transport/connection.hpp"
#include "tools/peer/packet_pool.hpp"
#include "tools/peer/report.hpp"
#include "tools/peer/transfer.hpp"
#include "tools/peer/udp_paths.hpp"

namespace kwik::peer {

struct loop_settings {
    transport::role side = transport::role::client;
    std::vector<path_spec> paths; // path ids 1..N in this order
    transport::schedule_strategy strategy = transport::schedule_strategy::min_rtt;
    std::optional<transfer_settings> transfer; // client
    engine::endpoint_config endpoint;          // server
    bool exit_after_connection = false;        // server: stop when the first connection ends
    std::uint64_t timeout_ms = 0;              // client: the whole transfer's deadline; 0 = none
    std::uint32_t progress_interval_ms = 1000; // progress line on stderr; 0 = none
    std::uint32_t timeline_interval_ms = 1000; // timeline samples when the line is off
    bool require_encryption = false;           // set_require_encryption once a key is installed
};

// Something another thread asks the data thread to do.
struct loop_action {
    enum class kind : std::uint8_t {
        set_standby,  // path, flag
        set_weight,   // path, weight (pins it)
        set_strategy, // strategy
        remove_path,  // path
        install_key,  // key
        event,        // record event/reason for path, source "kcp"
        fail,         // the transfer fails with reason (the server said the connection is gone)
        stop,
    };
    kind what = kind::stop;
    transport::path_id path = 0;
    bool flag = false;
    float weight = 0;
    transport::aead_key key{};
    transport::schedule_strategy strategy = transport::schedule_strategy::min_rtt;
    std::string event, reason;
};

class peer_loop {
public:
    static result<std::unique_ptr<peer_loop>> create(const loop_settings& settings);
    ~peer_loop();
    peer_loop(const peer_loop&) = delete;
    peer_loop& operator=(const peer_loop&) = delete;

    // The sockets' bound ends, known after create(): "ip:port" per path (path id = index + 1).
    std::string local_end(std::size_t i) const { return _paths->local_text(i); }
    std::uint16_t local_port(std::size_t i) const;

    // Runs until the transfer is done or failed (client), or until stopped (server). Returns
    // the exit status: 0 done and verified, 1 failed. The report is complete afterwards.
    int run();
    const run_report& report() const noexcept { return _report; }
    void set_kcp_json(std::string json) { _report.kcp_json = std::move(json); }

    // Any thread.
    void post(loop_action a);
    // Async-signal-safe.
    void request_stop() noexcept;

private:
    explicit peer_loop(const loop_settings& settings);
    result<void> open();
    void build_connection(transport::time_ns now);
    void drop_connection();
    void handle_actions(transport::time_ns now);
    void receive(std::size_t i, transport::time_ns now) noexcept;
    void arm(transport::time_ns wake) noexcept;
    void watch_output() noexcept;
    void sample(transport::time_ns now);
    void finish_report(transport::time_ns now);
    void record(transport::path_id path, std::string event, std::string source, std::string reason);
    double seconds(transport::time_ns t) const noexcept;
    std::uint64_t main_bytes() const noexcept;

    static transport::time_ns clock_now() noexcept;
    static void cb_transmit(void* ctx, transport::path_id path, std::span<const std::uint8_t> packet);
    static void* cb_allocate(void* ctx, std::size_t size, std::uint8_t** data);
    static void cb_data(void* ctx, transport::stream_id id, std::uint64_t offset, std::span<const std::uint8_t> data);
    static void cb_readable(void* ctx, transport::stream_id id);
    static void cb_finished(void* ctx, transport::stream_id id);
    static void cb_opened(void* ctx, transport::stream_id id);
    static void cb_reset(void* ctx, transport::stream_id id, std::uint64_t code);
    static void cb_path_event(void* ctx, transport::path_id path, transport::path_event e);
    static void cb_closed(void* ctx, transport::close_code code, std::string_view reason);
    static void on_received(void* ctx, std::size_t path, pooled_buffer* buffer, std::uint32_t length, bool ecn_ce) noexcept;

    loop_settings _settings;
    // Declared before everything that holds their buffers: destroyed last.
    packet_pool _rx_pool;
    packet_pool _tx_pool;
    std::unique_ptr<udp_paths> _paths;
    std::unique_ptr<transport::connection> _conn;
    std::unique_ptr<transfer> _transfer;        // client
    std::unique_ptr<engine::endpoint> _endpoint; // server
    int _epoll = -1, _timer = -1, _wake = -1;
    transport::time_ns _armed = 0;
    std::vector<bool> _watching_output;

    std::mutex _actions_mutex;
    std::vector<loop_action> _actions; // guarded by _actions_mutex
    std::atomic<bool> _stop{false};

    transport::time_ns _now = 0, _start = 0, _next_sample = 0, _deadline = transport::never;
    transport::time_ns _sample_interval = 0;
    bool _connection_done = false; // client: closed after success or failure
    std::string _closed_reason;    // the peer closed the connection, with this reason
    std::uint64_t _connections = 0;
    std::uint64_t _rx_packets_total = 0;
    std::uint64_t _rx_at_build = 0; // _rx_packets_total when the connection was built
    // Per path, the counters at the last sample (for rates).
    std::vector<std::uint64_t> _last_path_bytes;
    std::uint64_t _last_main_bytes = 0;
    transport::time_ns _last_sample = 0;
    run_report _report;
};

} // namespace kwik::peer
