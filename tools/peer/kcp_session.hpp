// kwik-peer's control half: one KCP session with kwik-cp (docs/KCP_SERVER.md 1.7).
// open() connects and says hello; add_path()/remove_path()/request_scaling() are blocking
// requests, called from the peer's control thread (any thread: the client underneath is
// thread-safe); start_events() runs a receive thread that calls session_events and keeps the
// session alive. The data thread never calls in here: it gets actions posted by the callbacks.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "common/result.hpp"
#include "controlplane/kcp/client.hpp"
#include "controlplane/kcp/tls.hpp"
#include "proto/kcp.pb.h"

namespace kwik::peer {

using kwik::error;
using kwik::result;

struct kcp_settings {
    std::string address;               // kwik-cp's "host:port" ("[v6]:port")
    std::optional<kcp::key_pin> pin;   // TLS 1.3 with this server key; none: plain TCP
    std::string key_id;
    std::array<std::uint8_t, 32> key{}; // the pre-shared key of key_id (the session wipes its copy after the hello)
    std::string client_id;
    bool discover = false; // a ServerDiscoveryRequest right after the hello
    // Connect + TLS, and each request's wait for its answer.
    std::chrono::milliseconds timeout{5000};
    // The events thread sends a HealthCheckRequest when nothing was received for this long:
    // kwik-cp ends sessions idle for 120 s (PROTOCOL.md 11.3). 0: never.
    std::chrono::milliseconds keepalive{30'000};
};

// One path as the client sees it: local is this host's end, remote the appliance's (kwikd's
// address and Kwik port). add_path() writes it from kwik-cp's view on the wire.
struct path_request {
    std::uint64_t path_id = 0;
    std::string local_address;
    std::uint16_t local_port = 0; // the bound port (kwik-cp refuses 0)
    std::string remote_address;
    std::uint16_t remote_port = 0;
    bool standby = false;
    float weight = 1;
    std::uint32_t max_mbps = 0; // 0: no cap
};

// Called on the session's events thread (start_events()), never two at once. Unset ones are
// skipped (the message is still counted). A callback may call close() (it then does not wait
// for the thread it runs on) but must not destroy the session.
struct session_events {
    std::function<void(const kcp::v3::PathStatusUpdate&)> on_path_status;
    std::function<void(const kcp::v3::LoadBalancingUpdate&)> on_load_balancing;
    std::function<void(const kcp::v3::TrafficDistributionPlan&)> on_plan;
    std::function<void(const kcp::v3::BandwidthScalingResponse&)> on_scaling; // unsolicited ones
    // Once, when the session ends other than by close(): kwik-cp closed it, the socket failed,
    // or a keep-alive went unanswered. The events thread ends after it.
    std::function<void(std::string reason)> on_session_lost;
};

// The hello's data key for the connection's ENCRYPTED frames (docs/KCP_SERVER.md 1.4).
struct session_key {
    std::uint8_t phase = 0;
    std::array<std::uint8_t, 32> key{};
    std::uint64_t valid_until_ms = 0; // wall clock; 0: none
    std::uint64_t max_frames = 0;
};

class kcp_session {
public:
    // Connects (TLS with the pin, or plain), runs both hello rounds and derives the data key;
    // with discover, asks for servers next. Every refusal names the field or the server's
    // AuthResult and error_reason ("kwik-cp 127.0.0.1:7708 rejected the hello:
    // REJECTED_BAD_PROOF: auth_proof does not verify with key_id \"k1\""), code EACCES.
    static result<std::unique_ptr<kcp_session>> open(const kcp_settings& settings, session_events events);
    ~kcp_session(); // close()
    kcp_session(const kcp_session&) = delete;
    kcp_session& operator=(const kcp_session&) = delete;

    const std::string& connection_id() const noexcept { return _connection_id; }
    const std::string& server_id() const noexcept { return _server_id; }
    const session_key& data_key() const noexcept { return _key; }
    // A few lines on the ranking kwik-cp answered; empty unless settings.discover.
    const std::string& discovery_report() const noexcept { return _discovery_report; }
    const kcp::v3::ServerDiscoveryResponse& discovery() const noexcept { return _discovery; }

    // AddPathCommand on this connection; waits for the PathStatusUpdate answering it. UP or
    // STANDBY: that update. REMOVED (kwik-cp's or kwikd's refusal), another status or no answer:
    // an error quoting the reason.
    result<kcp::v3::PathStatusUpdate> add_path(const path_request& path);
    // RemovePathCommand; ok when kwik-cp answers REMOVED with our own reason, else an error with
    // the reason it gave.
    result<void> remove_path(std::uint64_t path_id);
    // BandwidthScalingRequest (trigger MANUAL). Any decision, REJECTED included, is a value;
    // an error only when no answer came.
    result<kcp::v3::BandwidthScalingResponse> request_scaling(std::uint32_t target_mbps,
                                                              std::uint32_t current_mbps = 0);
    // One-way PerformanceMetrics (connection_id filled in); ok once written to the socket.
    result<void> report_metrics(kcp::v3::PerformanceMetrics metrics);

    // Starts the events thread (once; later calls do nothing).
    void start_events();
    // Ends the session and joins the events thread; on_session_lost is not called. Returns within
    // about one events poll (200 ms). Idempotent.
    void close();
    // {"connection_id", "server_id", "sent": {type: n}, "received": {type: n}, "last_error",
    //  "session_lost", "keepalives", "unsolicited_dropped", "channel": {...}}
    std::string counters_json() const;

private:
    kcp_session(const kcp_settings& settings, session_events events,
                std::unique_ptr<kcp::blocking_client> client);
    result<void> hello();
    result<void> discover();
    // request() with the counters kept; errors are remembered as last_error.
    result<kcp::KCPMessage> request(kcp::KCPMessage m);
    result<void> send(kcp::KCPMessage m);
    error fail(error e);
    void count_received(const kcp::KCPMessage& m);
    void events_loop();
    void dispatch(const kcp::KCPMessage& m);
    void lose(const std::string& reason);

    kcp_settings _settings;
    session_events _events;
    std::unique_ptr<kcp::blocking_client> _client;
    std::string _connection_id;
    std::string _server_id;
    session_key _key;
    kcp::v3::ServerDiscoveryResponse _discovery;
    std::string _discovery_report;

    std::thread _events_thread;
    std::atomic<bool> _stopping{false};
    std::atomic<bool> _lost{false};
    std::once_flag _events_once;
    std::uint64_t _health_sequence = 0; // events thread only

    mutable std::mutex _counters_mutex; // the fields below
    std::map<std::string, std::uint64_t, std::less<>> _sent;
    std::map<std::string, std::uint64_t, std::less<>> _received;
    std::string _last_error;
    std::string _lost_reason;
    std::uint64_t _keepalives = 0;
};

// The UdpPath of an AddPathCommand for path as kwik-cp reads it (local = the appliance's end);
// ip_version from the addresses (unspecified when they do not parse: kwik-cp names the field).
kcp::v3::UdpPath wire_path(const path_request& path);

} // namespace kwik::peer
