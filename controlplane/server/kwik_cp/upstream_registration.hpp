// kwik-cp registering itself with an upstream registry (another kwik-cp, docs/KCP_SERVER.md
// section 5): a non-blocking KCP client on kcp::channel that connects (plain TCP or TLS with a
// pinned key), says hello with a key that has the server role, sends ServerRegistration of this
// server, then ServerHeartbeats with live figures, reconnects with backoff after any failure and
// sends ServerDeregistration on stop(). One thread: the control_server loop that calls poll();
// fd() is an epoll descriptor that becomes readable when poll() has socket work.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include <sys/socket.h>

#include "common/result.hpp"
#include "controlplane/kcp/channel.hpp"
#include "controlplane/kcp/tls.hpp"
#include "controlplane/server/auth.hpp"
#include "controlplane/server/registry.hpp"

namespace kwik::cp {

struct upstream_config {
    std::string address;                     // numeric "host:port", IPv6 as [addr]:port
    std::optional<kcp::key_pin> pin;         // the registry's TLS key; none: plain TCP
    std::string key_id;                      // a key with the server role in the registry's store
    bytes32 secret{};
    std::string client_id;                   // the hello's client_id; empty: this server's id
    std::chrono::milliseconds heartbeat_interval{0}; // 0: what the registry answers
    std::chrono::milliseconds reconnect_min{500};    // backoff doubles from this ...
    std::chrono::milliseconds reconnect_max{30'000}; // ... up to this
    std::chrono::milliseconds answer_timeout{10'000}; // for each answer of the registry
    kcp::channel_options channel{};
};

// What the heartbeats carry; control_server measures them before each one.
struct upstream_figures {
    std::uint32_t available_bandwidth_mbps = 0;
    std::uint32_t current_load_percent = 0;
    std::uint32_t active_connections = 0;
    std::uint64_t bytes_transferred_total = 0;
    std::uint32_t uptime_seconds = 0;
};

struct upstream_counters {
    std::uint64_t connects = 0;      // TCP connections begun
    std::uint64_t failures = 0;      // connections ended by an error or a refusal
    std::uint64_t registrations = 0; // accepted ServerRegistrations
    std::uint64_t heartbeats = 0;    // accepted ServerHeartbeats
    std::uint64_t refusals = 0;      // answers with accepted = false
};

class upstream_registration {
public:
    enum class state : std::uint8_t { waiting, connecting, hello, registering, registered, stopped };

    // self: this server's registration as it is sent (its id, address, pin, capabilities...).
    static result<std::unique_ptr<upstream_registration>> create(upstream_config config, server_registration self);
    ~upstream_registration();
    upstream_registration(const upstream_registration&) = delete;
    upstream_registration& operator=(const upstream_registration&) = delete;

    int fd() const noexcept { return _epoll; }
    // Connects, answers, registers and heartbeats as due. figures: asked for only when a
    // heartbeat is about to go.
    template <class Figures> void poll(kcp::clock_sample now, Figures&& figures) {
        step(now);
        if (heartbeat_due(now)) {
            send_heartbeat(figures(), now);
        }
    }
    // When poll() has something to do next (a retry, a heartbeat, a timeout).
    std::chrono::steady_clock::time_point next_deadline() const noexcept;
    // Sends ServerDeregistration when registered and waits for its answer (blocking, up to
    // grace), then closes; poll() does nothing afterwards.
    void stop(const std::string& reason, std::chrono::milliseconds grace);

    state current() const noexcept { return _state; }
    const std::string& last_error() const noexcept { return _last_error; }
    std::uint64_t expires_at_ms() const noexcept { return _expires_at_ms; }
    const upstream_config& config() const noexcept { return _config; }
    const upstream_counters& counters() const noexcept { return _counters; }

private:
    upstream_registration(upstream_config config, server_registration self);
    void close_connection();
    void step(kcp::clock_sample now);
    void start_connect(kcp::clock_sample now);
    void finish_connect(kcp::clock_sample now);
    void on_message(const kcp::KCPMessage& m, kcp::clock_sample now);
    bool heartbeat_due(kcp::clock_sample now) const noexcept;
    void send_heartbeat(const upstream_figures& f, kcp::clock_sample now);
    void send(kcp::KCPMessage m, kcp::clock_sample now);
    void fail(std::string why, kcp::clock_sample now);
    void watch(int fd, std::uint32_t events);

    upstream_config _config;
    sockaddr_storage _peer{};
    socklen_t _peer_length = 0;
    server_registration _self;
    kcp::v3::ServerRegistration _registration; // _self as sent
    std::optional<kcp::tls_context> _tls;
    int _epoll = -1;
    int _socket = -1;                       // while connecting; then the channel owns it
    std::optional<kcp::channel> _channel;
    std::uint32_t _watched = 0;             // epoll events registered for the socket
    state _state = state::waiting;
    kcp::v3::ClientHello _round1;
    std::uint64_t _awaiting = 0;            // message_id of the request whose answer is due
    std::chrono::steady_clock::time_point _answer_deadline{};
    std::chrono::steady_clock::time_point _next_attempt{};
    std::chrono::steady_clock::time_point _next_heartbeat{};
    std::chrono::milliseconds _backoff{0};
    std::chrono::milliseconds _interval{0};
    std::uint64_t _expires_at_ms = 0;
    std::string _last_error;
    upstream_counters _counters;
};

std::string_view to_string(upstream_registration::state s) noexcept;

} // namespace kwik::cp
