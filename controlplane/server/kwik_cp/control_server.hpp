// kwik-cp's event loop: a listening TCP socket, one kcp::channel (plain or TLS) per accepted
// connection with its hello_session, the dataplane_link to kwikd and the server_registry, all on
// one epoll loop. After ACCEPTED each message type has one action function (VPP-style); before
// it, everything but ClientHello is refused and the session closed. One thread: the one that
// calls run_once(); nothing here is locked.
//
// Refusals before the hello (and "not handled yet" answers after it) use the request's own
// response type where it has a place for a reason:
//   ServerDiscoveryRequest  -> ServerDiscoveryResponse.recommendation_reason (no servers)
//   ServerCapabilityQuery   -> ServerCapabilityResponse.error_reason
//   AddPath/RemovePathCommand -> PathStatusUpdate REMOVED with reason
//   HealthCheckRequest      -> HealthCheckResponse UNHEALTHY with reason
//   TransportCommand        -> TransportResponse FAILURE with error_message
//   BandwidthScalingRequest -> BandwidthScalingResponse REJECTED with reason
//   ServerRegistration, ServerHeartbeat, ServerDeregistration
//                           -> ServerRegistrationResponse accepted = false with error_reason
//   OperatorRequest         -> OperatorResponse ok = false with error
// One-way messages and responses (PerformanceMetrics, LoadBalancingUpdate, TrafficDistributionPlan,
// ServerHello, PathStatusUpdate, ...) have nothing to answer: before the hello the session is
// closed without a reply; after it they are counted in ignored_messages (PerformanceMetrics,
// served by on_performance_metrics, excepted).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

#include "common/result.hpp"
#include "controlplane/kcp/channel.hpp"
#include "controlplane/kcp/tls.hpp"
#include "controlplane/server/auth.hpp"
#include "controlplane/server/kwik_cp/upstream_registration.hpp"
#include "controlplane/server/kwik_cp/planning_loop.hpp"
#include "controlplane/server/link/dataplane_link.hpp"
#include "controlplane/server/registry.hpp"

namespace kwik::cp {

struct control_server_config {
    std::string listen_address = "127.0.0.1"; // numeric IPv4 or IPv6
    std::uint16_t listen_port = 7708;          // 0: any free port (tests; port() says which)
    std::optional<kcp::tls_identity> tls;      // none: plain TCP
    hello_config hello;                        // hello.server_id is this server's id
    key_store keys;
    registry_config registry;
    link_config link;
    kcp::channel_options channel;
    // This server's own registration, for capability queries naming it (or naming nobody).
    server_registration self;
    // What kwikd connects a session's connection to (desired_connection.endpoint).
    api::endpoint_kind endpoint = api::endpoint_kind::discard;
    std::uint64_t endpoint_length = std::uint64_t{16} << 30; // pattern_source: the largest request
    std::string endpoint_directory;                           // file_store: where streams land
    std::chrono::milliseconds registry_sweep_interval{1000};
    // What ServerRegistrationResponse asks of registered servers; 0: registry.expiry_ms / 3.
    std::chrono::milliseconds heartbeat_interval{0};
    // An upstream registry this server registers itself with ([upstream]); none: it does not.
    std::optional<upstream_config> upstream;
    planning_config planning; // the planning loop ([planning]; planning_loop.hpp)
    // Open sessions at most ([kwik_cp] max_sessions); a connection beyond it is accepted and
    // closed at once (counted in refused_sessions, logged at most once a second). 0: no limit.
    std::size_t max_sessions = 10'000;
    // After accept fails for want of descriptors (EMFILE, ENFILE), the listener leaves epoll for
    // this long: level-triggered, the pending connection would otherwise wake it at once, forever.
    std::chrono::milliseconds accept_backoff{100};
};

struct operator_snapshot; // views.hpp

struct control_server_counters {
    std::uint64_t accepted_sockets = 0;
    std::uint64_t refused_before_hello = 0;
    std::uint64_t not_handled = 0;
    std::uint64_t ignored_messages = 0;
    std::uint64_t path_updates_pushed = 0;
    std::uint64_t refused_for_role = 0;     // a client request from a key without the client role
    std::uint64_t operator_requests = 0;
    std::uint64_t operator_errors = 0;      // answered ok = false
    std::uint64_t registry_requests = 0;    // ServerRegistration, ServerHeartbeat, ServerDeregistration
    std::uint64_t registry_refusals = 0;    // answered accepted = false
    std::uint64_t transport_commands = 0;
    std::uint64_t scaling_requests = 0;
    std::uint64_t metrics_refused = 0; // PerformanceMetrics for another connection
    std::uint64_t plans_pushed = 0;    // LoadBalancingUpdate + TrafficDistributionPlan pairs
    std::uint64_t role_changes_failed = 0;
    std::uint64_t refused_sessions = 0; // accepted and closed: max_sessions open already
    std::uint64_t accept_backoffs = 0;  // accept failed for want of descriptors: listener paused
    std::uint64_t connections_lost = 0; // session connections kwikd lost (restart) or closed
};

class control_server {
public:
    static result<std::unique_ptr<control_server>> create(control_server_config config);
    ~control_server();
    control_server(const control_server&) = delete;
    control_server& operator=(const control_server&) = delete;

    std::uint16_t port() const noexcept { return _port; }
    // One pass: waits for sockets up to timeout_ms (less when a timer is due), then serves them,
    // polls the link, runs channel timeouts and sweeps the registry when due.
    void run_once(int timeout_ms);

    server_registry& registry() noexcept { return _registry; }
    dataplane_link& link() noexcept { return _link; }
    const control_server_counters& counters() const noexcept { return _counters; }
    planning_loop& planning() noexcept { return _planning; }

    // The bandwidth manager's decision for a kwikd connection, executed (transport_actions.cpp;
    // docs/CONTROL_PLANE.md 5.3): scale-up activates standby paths, scale-down puts paths back
    // to standby, both through the link. done gets the response (reason always set) once kwikd
    // answered; returns true when that is later, false when done was called already (no change
    // to make, or refused). request.connection_id must be the connection's KCP id. Used by
    // BandwidthScalingRequest, TransportCommand SCALE_BANDWIDTH and the operator's scale.
    bool scale_connection(std::uint64_t kwikd_connection, const kcp::v3::BandwidthScalingRequest& request,
                          std::uint64_t in_reply_to, std::function<void(kcp::v3::BandwidthScalingResponse)> done);
    std::size_t sessions() const noexcept { return _sessions.size(); }
    // The upstream registration ([upstream]); null when none is configured.
    const upstream_registration* upstream() const noexcept { return _upstream.get(); }
    // Before the server is destroyed: deregisters from the upstream registry (waiting up to grace
    // for its answer). Sessions stay until destruction.
    void shutdown(std::chrono::milliseconds grace);

private:
    struct session;
    explicit control_server(control_server_config config);
    result<void> listen();
    void accept_all(kcp::clock_sample now);
    // Takes the listener out of epoll until now + accept_backoff; resume_listener puts it back
    // once that passed (run_once bounds its wait by it).
    void pause_listener(kcp::clock_sample now, int error);
    void resume_listener(kcp::clock_sample now);
    void serve(session& s, kcp::clock_sample now);
    void handle(session& s, const kcp::KCPMessage& m, kcp::clock_sample now);
    void handle_hello(session& s, const kcp::KCPMessage& m, kcp::clock_sample now);
    void update_interest(session& s);
    void reply(session& s, kcp::KCPMessage m, kcp::clock_sample now);
    session* session_of_connection(std::uint64_t kwikd_connection);
    // The session on fd if it is still open and still the one of connection_id (kwikd's
    // answers arrive after the request; the socket may have closed and its number been reused).
    session* live_session(int fd, const std::string& connection_id);
    void push_path_status(std::uint64_t kwikd_connection, std::uint64_t path_id,
                          kcp::v3::PathStatusUpdate::Status status, std::string reason);
    // A session's connection that kwikd lost or closed (connection_loss.cpp): REMOVED for each
    // path with reason, out of the desired state (remove_connection when kwikd still holds it,
    // forget_connection when a restarted kwikd does not), the session closed once that is sent.
    void end_connection(session& s, const std::string& reason, bool remove_in_kwikd);
    void on_kwikd_restarted();
    void on_kwikd_connection_closed(const api::connection_closed_body& b);

    // The action functions, one per message type, after ACCEPTED.
    void on_discovery(session& s, const kcp::KCPMessage& m, kcp::clock_sample now);
    void on_capability_query(session& s, const kcp::KCPMessage& m, kcp::clock_sample now);
    void on_add_path(session& s, const kcp::KCPMessage& m, kcp::clock_sample now);
    void on_remove_path(session& s, const kcp::KCPMessage& m, kcp::clock_sample now);
    void on_health_check(session& s, const kcp::KCPMessage& m, kcp::clock_sample now);
    // Registry membership (registry_actions.cpp) and operator requests (operator_actions.cpp).
    void on_server_registration(session& s, const kcp::KCPMessage& m, kcp::clock_sample now);
    void on_server_heartbeat(session& s, const kcp::KCPMessage& m, kcp::clock_sample now);
    void on_server_deregistration(session& s, const kcp::KCPMessage& m, kcp::clock_sample now);
    void on_operator_request(session& s, const kcp::KCPMessage& m, kcp::clock_sample now);
    // OperatorRequest.scale: a MANUAL scaling request through scale_connection
    // (operator_actions.cpp).
    void on_operator_scale(session& s, const kcp::KCPMessage& m, kcp::clock_sample now);

    // The answer to a HealthCheckRequest (KCP's and the operator's health).
    kcp::v3::HealthCheckResponse health_of(const kcp::v3::HealthCheckRequest& q, kcp::clock_sample now);
    // Registers, refreshes or removes a server; `field` prefixes the fields named in errors
    // ("server_registration", "register_server"); owner_key_id: the registering session's key.
    // ServerRegistrationResponse without in_reply_to.
    kcp::v3::ServerRegistrationResponse register_in_registry(const kcp::v3::ServerRegistration& m,
                                                             std::string_view field, kcp::clock_sample now,
                                                             const std::string& owner_key_id);
    std::string deregistration_refusal(const session& s, const std::string& server_id) const;
    kcp::v3::ServerRegistrationResponse deregister_from_registry(const kcp::v3::ServerDeregistration& m,
                                                                 std::string_view field);
    // Operator requests: what the views read, and the answer of one request.
    void fill_snapshot(operator_snapshot& out, kcp::clock_sample now);
    void answer_operator(session& s, std::uint64_t in_reply_to, kcp::v3::OperatorResponse r, kcp::clock_sample now);
    void operator_path_change(session& s, const kcp::KCPMessage& m, bool add, kcp::clock_sample now);
    void operator_setting(session& s, const kcp::KCPMessage& m, kcp::clock_sample now);
    void operator_registry(session& s, const kcp::KCPMessage& m, kcp::clock_sample now);
    // The figures upstream heartbeats carry, measured since the previous call.
    upstream_figures measure_figures(kcp::clock_sample now);
    void on_transport_command(session& s, const kcp::KCPMessage& m, kcp::clock_sample now);
    void on_scaling_request(session& s, const kcp::KCPMessage& m, kcp::clock_sample now);
    void on_performance_metrics(session& s, const kcp::KCPMessage& m, kcp::clock_sample now);

    // The planning loop (planning_loop.cpp): a pass when due, kwikd's path events through the
    // health monitor, and what they decided applied (weights to kwikd, pushes to sessions).
    void run_planning(kcp::clock_sample now);
    void on_kwikd_path_up(const api::path_up_body& b);
    void on_kwikd_path_down(const api::path_down_body& b);
    void apply(planning_output out, kcp::clock_sample now);
    // m to the session of a kwikd connection, if it has one; priority HIGH.
    bool push(std::uint64_t kwikd_connection, kcp::KCPMessage m, kcp::clock_sample now);

    control_server_config _config;
    hello_server _hello;
    server_registry _registry;
    dataplane_link _link;
    std::optional<kcp::tls_context> _tls;
    int _epoll = -1;
    int _listener = -1;
    std::optional<std::chrono::steady_clock::time_point> _listener_paused_until; // none: in epoll
    std::chrono::steady_clock::time_point _last_accept_log{};                   // rate limit: 1/s
    std::uint16_t _port = 0;
    std::unordered_map<int, std::unique_ptr<session>> _sessions; // by socket
    std::chrono::steady_clock::time_point _next_sweep{};
    control_server_counters _counters;
    std::chrono::steady_clock::time_point _started = std::chrono::steady_clock::now();
    std::unique_ptr<upstream_registration> _upstream;
    // The previous measure_figures() sample: kwikd's polls, busy polls, tx bytes, and when.
    std::uint64_t _figures_polls = 0, _figures_busy = 0, _figures_tx_bytes = 0;
    std::chrono::steady_clock::time_point _figures_at{};
    planning_loop _planning;
    // UPDATE_QOS's requirements per kwikd connection (transport_actions.cpp).
    std::map<std::uint64_t, kcp::v3::TransportCommand::QoSRequirements> _qos;
};

// The kwikd address of a KCP UdpPath, or the field at fault under `field` ("add_path.path.remote_port:
// 0 is not in 1..65535"). Pure; any thread.
result<api::five_tuple> to_tuple(const kcp::v3::UdpPath& p, std::string_view field);
// kwikd's reason when a command's answer is not ok (or its status when kwikd gave none); empty
// when it is ok.
std::string kwikd_error(const api::event& e);

// The answer to m carrying `reason` in its response type's reason field, as listed above;
// nullopt for a message that has no answer. Pure; any thread.
std::optional<kcp::KCPMessage> error_answer(const kcp::KCPMessage& m, const std::string& reason);
// Whether m acts on the session's own connection in kwikd (paths, transport commands, scaling,
// metrics), which takes a key with the client role. Pure; any thread.
bool needs_client_role(const kcp::KCPMessage& m) noexcept;

} // namespace kwik::cp
