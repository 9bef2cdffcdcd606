// kwik-cp's event loop and its action functions; see control_server.hpp.
#include "controlplane/server/kwik_cp/control_server.hpp"
#include "controlplane/server/kwik_cp/session.hpp"
#include "controlplane/server/kwik_cp/log.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <utility>
#include <vector>

namespace kwik::cp {

using kcp::KCPMessage;
using kcp::clock_sample;
namespace v3 = kcp::v3;

namespace {

time_ns to_ns(std::chrono::steady_clock::time_point t) {
    return static_cast<time_ns>(
        std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count());
}

error system_error(const std::string& what) {
    const int e = errno;
    return error{what + ": " + std::strerror(e), e};
}

} // namespace

result<api::five_tuple> to_tuple(const v3::UdpPath& p, std::string_view field) {
    const std::string f(field);
    api::ip_version lv{};
    api::ip_version rv{};
    api::ip_address l{};
    api::ip_address r{};
    if (!api::parse_address(p.local_address(), lv, l)) {
        return error{f + ".local_address: \"" + p.local_address() + "\" is not an IP address"};
    }
    if (!api::parse_address(p.remote_address(), rv, r)) {
        return error{f + ".remote_address: \"" + p.remote_address() + "\" is not an IP address"};
    }
    if (lv != rv) {
        return error{f + ": local and remote addresses are of different IP versions"};
    }
    if (p.local_port() == 0 || p.local_port() > 65535) {
        return error{f + ".local_port: " + std::to_string(p.local_port()) + " is not in 1..65535"};
    }
    if (p.remote_port() == 0 || p.remote_port() > 65535) {
        return error{f + ".remote_port: " + std::to_string(p.remote_port()) + " is not in 1..65535"};
    }
    return api::make_tuple(lv, l, static_cast<std::uint16_t>(p.local_port()), r,
                           static_cast<std::uint16_t>(p.remote_port()));
}

std::string kwikd_error(const api::event& e) {
    if (e.header.type != api::message_type::command_result || e.command_result.status == api::result_status::ok) {
        return {};
    }
    const std::string_view reason = api::get_text(e.command_result.reason);
    return reason.empty() ? std::string(api::to_string(e.command_result.status)) : std::string(reason);
}

namespace {

std::string payload_name(const KCPMessage& m) {
    const auto* f = KCPMessage::descriptor()->FindFieldByNumber(static_cast<int>(m.payload_case()));
    return f != nullptr ? f->name() : std::string("an empty message");
}

KCPMessage path_status_update(const std::string& connection_id, std::uint64_t path_id, v3::PathStatusUpdate::Status status,
                       std::string reason) {
    KCPMessage m;
    auto* u = m.mutable_path_status();
    u->set_connection_id(connection_id);
    u->set_path_id(path_id);
    u->set_status(status);
    u->set_reason(std::move(reason));
    return m;
}

} // namespace

bool needs_client_role(const KCPMessage& m) noexcept {
    switch (m.payload_case()) {
    case KCPMessage::kAddPath:
    case KCPMessage::kRemovePath:
    case KCPMessage::kTransportCommand:
    case KCPMessage::kScalingRequest:
    case KCPMessage::kPerformanceMetrics:
        return true;
    default:
        return false; // discovery, capabilities and health checks (the keep-alive) are for every role
    }
}

std::optional<KCPMessage> error_answer(const KCPMessage& m, const std::string& reason) {
    KCPMessage out;
    const std::uint64_t id = m.header().message_id();
    switch (m.payload_case()) {
    case KCPMessage::kServerDiscoveryReq:
        out.mutable_server_discovery_resp()->set_recommendation_reason(reason);
        return out;
    case KCPMessage::kCapabilityQuery:
        out.mutable_capability_response()->set_in_reply_to(id);
        out.mutable_capability_response()->set_server_id(m.capability_query().server_id());
        out.mutable_capability_response()->set_error_reason(reason);
        return out;
    case KCPMessage::kAddPath:
        return path_status_update(m.add_path().connection_id(), m.add_path().path_id(), v3::PathStatusUpdate::REMOVED,
                           reason);
    case KCPMessage::kRemovePath:
        return path_status_update(m.remove_path().connection_id(), m.remove_path().path_id(),
                           v3::PathStatusUpdate::REMOVED, reason);
    case KCPMessage::kHealthCheckReq: {
        const auto& q = m.health_check_req();
        auto* r = out.mutable_health_check_resp();
        r->set_sequence(q.sequence());
        r->set_connection_id(q.connection_id());
        r->set_request_sent_at_us(q.sent_at_us());
        r->set_status(v3::HealthCheckResponse::UNHEALTHY);
        r->set_reason(reason);
        return out;
    }
    case KCPMessage::kTransportCommand:
        out.mutable_transport_response()->set_command_id(m.transport_command().command_id());
        out.mutable_transport_response()->set_status(v3::TransportResponse::FAILURE);
        out.mutable_transport_response()->set_error_message(reason);
        return out;
    case KCPMessage::kScalingRequest:
        out.mutable_scaling_response()->set_in_reply_to(id);
        out.mutable_scaling_response()->set_connection_id(m.scaling_request().connection_id());
        out.mutable_scaling_response()->set_decision(v3::BandwidthScalingResponse::REJECTED);
        out.mutable_scaling_response()->set_reason(reason);
        return out;
    case KCPMessage::kServerRegistration:
    case KCPMessage::kServerHeartbeat:
    case KCPMessage::kServerDeregistration: {
        auto* r = out.mutable_registration_response();
        r->set_in_reply_to(id);
        r->set_server_id(m.has_server_registration() ? m.server_registration().server_id()
                         : m.has_server_heartbeat()  ? m.server_heartbeat().server_id()
                                                     : m.server_deregistration().server_id());
        r->set_accepted(false);
        r->set_error_reason(reason);
        return out;
    }
    case KCPMessage::kOperatorRequest:
        out.mutable_operator_response()->set_in_reply_to(id);
        out.mutable_operator_response()->set_ok(false);
        out.mutable_operator_response()->set_error(reason);
        return out;
    default:
        return std::nullopt;
    }
}

namespace {

registry_config with_self_id(registry_config r, const std::string& server_id) {
    if (r.self_server_id.empty()) {
        r.self_server_id = server_id;
    }
    return r;
}

} // namespace

// Events for a session's connection become PathStatusUpdates pushed to it; `this` is stable
// (create() hands out a unique_ptr and the class neither copies nor moves).
control_server::control_server(control_server_config config)
    : _config(std::move(config)), _hello(_config.hello, _config.keys),
      _registry(with_self_id(_config.registry, _config.hello.server_id)),
      _link(_config.link, link_callbacks{
                              .on_path_up = [this](const api::path_up_body& b) { on_kwikd_path_up(b); },
                              .on_path_down = [this](const api::path_down_body& b) { on_kwikd_path_down(b); },
                              .on_unknown_path = {},
                              .on_connection_closed =
                                  [this](const api::connection_closed_body& b) { on_kwikd_connection_closed(b); },
                              .on_attach_change =
                                  [this, restarts = std::uint64_t{0}](bool attached) mutable {
                                      const bool restarted = _link.counters().kwikd_restarts > restarts;
                                      restarts = _link.counters().kwikd_restarts;
                                      log_kwikd_attach(attached, restarted,
                                                       _config.link.shm_directory + "/" + _config.link.region_name,
                                                       _link.counters().attaches, restarts);
                                  },
                              .on_attach_failed =
                                  [](const std::string& reason) {
                                      log_line(log_level::warning, "kwikd not attached (retrying): " + reason);
                                  },
                              .on_kwikd_restarted = [this] { on_kwikd_restarted(); },
                              .on_connection_renumbered =
                                  [this](std::uint64_t from, std::uint64_t to) {
                                      if (session* s = session_of_connection(from)) {
                                          s->kwikd_connection = to;
                                      }
                                  },
                          }),
      _planning(_config.planning, _config.hello.server_id) {}

control_server::~control_server() {
    _sessions.clear();
    if (_listener >= 0) {
        ::close(_listener);
    }
    if (_epoll >= 0) {
        ::close(_epoll);
    }
}

result<std::unique_ptr<control_server>> control_server::create(control_server_config config) {
    std::unique_ptr<control_server> s(new control_server(std::move(config)));
    if (s->_config.tls) {
        auto ctx = kcp::tls_context::server(*s->_config.tls);
        if (!ctx) {
            return ctx.failure();
        }
        s->_tls = std::move(ctx.value());
    }
    if (auto r = s->listen(); !r) {
        return r.failure();
    }
    if (!s->_config.self.server_id.empty()) {
        // After listen(), so that a configured port 0 is advertised as the one bound.
        auto& address = *s->_config.self.server.mutable_address();
        if (address.empty() || address.ends_with(":0")) {
            const bool v6 = s->_config.listen_address.find(':') != std::string::npos;
            address = (v6 ? "[" + s->_config.listen_address + "]" : s->_config.listen_address) + ":" +
                      std::to_string(s->_port);
        }
        if (auto r = s->_registry.register_server(s->_config.self, clock_sample::now().wall_ms); !r) {
            return error{"self registration: " + r.message()};
        }
    }
    if (s->_config.upstream) { // after the address above: the registration carries it
        auto u = upstream_registration::create(*s->_config.upstream, s->_config.self);
        if (!u) {
            return u.failure();
        }
        s->_upstream = std::move(u.value());
        epoll_event ev{};
        ev.events = EPOLLIN;
        ev.data.fd = s->_upstream->fd();
        if (::epoll_ctl(s->_epoll, EPOLL_CTL_ADD, ev.data.fd, &ev) != 0) {
            return system_error("epoll_ctl (upstream)");
        }
    }
    return s;
}

result<void> control_server::listen() {
    _epoll = ::epoll_create1(EPOLL_CLOEXEC);
    if (_epoll < 0) {
        return system_error("epoll_create1");
    }
    sockaddr_storage ss{};
    socklen_t len = 0;
    auto* v4 = reinterpret_cast<sockaddr_in*>(&ss);
    auto* v6 = reinterpret_cast<sockaddr_in6*>(&ss);
    if (::inet_pton(AF_INET, _config.listen_address.c_str(), &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons(_config.listen_port);
        len = sizeof(sockaddr_in);
    } else if (::inet_pton(AF_INET6, _config.listen_address.c_str(), &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons(_config.listen_port);
        len = sizeof(sockaddr_in6);
    } else {
        return error{"listen address: \"" + _config.listen_address + "\" is not a numeric IPv4 or IPv6 address",
                     EINVAL};
    }
    _listener = ::socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (_listener < 0) {
        return system_error("socket");
    }
    const int one = 1;
    ::setsockopt(_listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    const std::string where = _config.listen_address + ":" + std::to_string(_config.listen_port);
    if (::bind(_listener, reinterpret_cast<sockaddr*>(&ss), len) != 0) {
        return system_error("bind " + where);
    }
    if (::listen(_listener, 128) != 0) {
        return system_error("listen " + where);
    }
    sockaddr_storage bound{};
    socklen_t blen = sizeof(bound);
    ::getsockname(_listener, reinterpret_cast<sockaddr*>(&bound), &blen);
    _port = ntohs(bound.ss_family == AF_INET ? reinterpret_cast<sockaddr_in*>(&bound)->sin_port
                                             : reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port);
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.fd = _listener;
    if (::epoll_ctl(_epoll, EPOLL_CTL_ADD, _listener, &ev) != 0) {
        return system_error("epoll_ctl");
    }
    return {};
}

void control_server::run_once(int timeout_ms) {
    const auto before = std::chrono::steady_clock::now();
    for (const auto& [fd, s] : _sessions) {
        const auto d = s->ch.next_deadline();
        if (d != std::chrono::steady_clock::time_point::max()) {
            const auto left = std::chrono::ceil<std::chrono::milliseconds>(d - before).count(); // no spin on a fraction
            timeout_ms = static_cast<int>(std::clamp<long long>(left, 0, timeout_ms));
        }
    }
    // kwikd answers and raises events through shared memory, not a socket: the wait ends when
    // the link wants a poll (a command waiting: 1 ms; live connections: 10 ms; an attach
    // attempt), a planning pass or a registry sweep is due.
    auto bound = [&](std::chrono::steady_clock::time_point due) {
        const auto left = std::chrono::ceil<std::chrono::milliseconds>(due - before).count(); // no spin on a fraction
        timeout_ms = static_cast<int>(std::clamp<long long>(left, 0, timeout_ms));
    };
    bound(std::chrono::steady_clock::time_point(std::chrono::nanoseconds(_link.next_poll(to_ns(before)))));
    if (_upstream) {
        bound(_upstream->next_deadline());
    }
    if (_planning.config().enabled) {
        bound(_planning.next_due());
    }
    bound(_next_sweep);
    if (_listener_paused_until) {
        bound(*_listener_paused_until);
    }
    std::array<epoll_event, 64> events{};
    const int n = ::epoll_wait(_epoll, events.data(), static_cast<int>(events.size()), timeout_ms);
    const clock_sample now = clock_sample::now();
    resume_listener(now);
    for (int i = 0; i < n; ++i) {
        const int fd = events[static_cast<std::size_t>(i)].data.fd;
        if (fd == _listener) {
            accept_all(now);
            continue;
        }
        auto it = _sessions.find(fd);
        if (it == _sessions.end()) {
            continue;
        }
        const auto e = events[static_cast<std::size_t>(i)].events;
        if ((e & (EPOLLIN | EPOLLERR | EPOLLHUP)) != 0) {
            it->second->ch.on_readable(now);
        }
        if ((e & EPOLLOUT) != 0 && !it->second->ch.closed()) {
            it->second->ch.on_writable(now);
        }
    }
    _link.poll(to_ns(now.steady));
    if (_upstream) {
        _upstream->poll(now, [&] { return measure_figures(now); });
    }
    for (auto it = _sessions.begin(); it != _sessions.end();) {
        session& s = *it->second;
        serve(s, now);
        if (s.ch.closed()) {
            log_session_closed(s.peer, s.hello.accepted() ? s.hello.accepted()->client_id : "", s.ch.close_reason());
            if (s.kwikd_connection != 0 && _link.find(s.kwikd_connection) != nullptr) {
                (void)_link.remove_connection(s.kwikd_connection, 0);
            }
            ::epoll_ctl(_epoll, EPOLL_CTL_DEL, it->first, nullptr);
            it = _sessions.erase(it);
        } else {
            update_interest(s);
            ++it;
        }
    }
    run_planning(now);
    if (now.steady >= _next_sweep) {
        (void)_registry.sweep(now.wall_ms);
        _hello.challenges().sweep(now.wall_ms);
        _next_sweep = now.steady + _config.registry_sweep_interval;
    }
}

void control_server::accept_all(clock_sample now) {
    for (;;) {
        const int fd = ::accept4(_listener, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EMFILE || errno == ENFILE) {
                pause_listener(now, errno);
            }
            return;
        }
        ++_counters.accepted_sockets;
        if (_config.max_sessions != 0 && _sessions.size() >= _config.max_sessions) {
            ++_counters.refused_sessions;
            if (now.steady - _last_accept_log >= std::chrono::seconds(1)) {
                _last_accept_log = now.steady;
                log_line(log_level::warning, "session refused: peer " + peer_of(fd) + ": " +
                                                 std::to_string(_sessions.size()) + " sessions open, max_sessions " +
                                                 std::to_string(_config.max_sessions) + " (" +
                                                 std::to_string(_counters.refused_sessions) + " refused so far)");
            }
            ::close(fd);
            continue;
        }
        auto ch = _tls ? kcp::channel::tls(fd, *_tls, _config.channel, now)
                       : kcp::channel::plain(fd, _config.channel, now);
        if (!ch) {
            continue; // the channel closed fd
        }
        auto s = std::make_unique<session>(std::move(ch.value()), _hello);
        epoll_event ev{};
        ev.events = EPOLLIN;
        ev.data.fd = fd;
        if (::epoll_ctl(_epoll, EPOLL_CTL_ADD, fd, &ev) != 0) {
            continue;
        }
        s->interest = EPOLLIN;
        s->peer = peer_of(fd);
        log_session_opened(s->peer, s->ch.is_tls());
        _sessions.emplace(fd, std::move(s));
    }
}

void control_server::pause_listener(clock_sample now, int error) {
    ::epoll_ctl(_epoll, EPOLL_CTL_DEL, _listener, nullptr);
    _listener_paused_until = now.steady + _config.accept_backoff;
    ++_counters.accept_backoffs;
    if (now.steady - _last_accept_log >= std::chrono::seconds(1)) {
        _last_accept_log = now.steady;
        log_line(log_level::warning, std::string("accept: ") + std::strerror(error) + "; not accepting for " +
                                         std::to_string(_config.accept_backoff.count()) + " ms (" +
                                         std::to_string(_counters.accept_backoffs) + " times so far)");
    }
}

void control_server::resume_listener(clock_sample now) {
    if (!_listener_paused_until || now.steady < *_listener_paused_until) {
        return;
    }
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.fd = _listener;
    if (::epoll_ctl(_epoll, EPOLL_CTL_ADD, _listener, &ev) == 0) {
        _listener_paused_until.reset();
    } else {
        _listener_paused_until = now.steady + _config.accept_backoff; // try again later
    }
}

void control_server::update_interest(session& s) {
    // Not reading while the session's answers pile up unsent (channel_options.max_unsent_bytes).
    const std::uint32_t want = (s.ch.wants_read() ? EPOLLIN : 0u) | (s.ch.wants_write() ? EPOLLOUT : 0u);
    if (want != s.interest) {
        epoll_event ev{};
        ev.events = want;
        ev.data.fd = s.ch.fd();
        ::epoll_ctl(_epoll, EPOLL_CTL_MOD, s.ch.fd(), &ev);
        s.interest = want;
    }
}

void control_server::serve(session& s, clock_sample now) {
    KCPMessage m;
    while (!s.ch.closed() && s.ch.receive(m)) {
        handle(s, m, now);
    }
    s.ch.poll(now);
    if (s.ch.wants_write()) {
        s.ch.on_writable(now); // write at once; EPOLLOUT covers what the socket does not take
    }
}

void control_server::reply(session& s, KCPMessage m, clock_sample now) {
    (void)s.ch.send(std::move(m), now); // refused only when the channel is closing
}

void control_server::handle(session& s, const KCPMessage& m, clock_sample now) {
    if (m.has_client_hello()) {
        handle_hello(s, m, now);
        return;
    }
    if (s.hello.current() != hello_session::state::accepted) {
        ++_counters.refused_before_hello;
        const std::string reason = "refused: " + payload_name(m) + " before the session's hello was accepted";
        if (auto answer = error_answer(m, reason)) {
            reply(s, std::move(*answer), now);
        }
        s.ch.close_when_sent(reason, now);
        return;
    }
    if (needs_client_role(m) && (s.hello.accepted()->roles & role_bit(role::client)) == 0) {
        ++_counters.refused_for_role;
        const accepted_hello& a = *s.hello.accepted();
        if (auto answer = error_answer(m, payload_name(m) + ": this session's key \"" + a.key_id +
                                              "\" lacks the client role (it has: " + role_names(a.roles) + ")")) {
            reply(s, std::move(*answer), now);
        }
        return; // one-way messages (PerformanceMetrics) are counted and dropped
    }
    switch (m.payload_case()) {
    case KCPMessage::kServerDiscoveryReq:
        on_discovery(s, m, now);
        return;
    case KCPMessage::kCapabilityQuery:
        on_capability_query(s, m, now);
        return;
    case KCPMessage::kAddPath:
        on_add_path(s, m, now);
        return;
    case KCPMessage::kRemovePath:
        on_remove_path(s, m, now);
        return;
    case KCPMessage::kHealthCheckReq:
        on_health_check(s, m, now);
        return;
    case KCPMessage::kServerRegistration:
        on_server_registration(s, m, now);
        return;
    case KCPMessage::kServerHeartbeat:
        on_server_heartbeat(s, m, now);
        return;
    case KCPMessage::kServerDeregistration:
        on_server_deregistration(s, m, now);
        return;
    case KCPMessage::kOperatorRequest:
        on_operator_request(s, m, now);
        return;
    case KCPMessage::kTransportCommand:
        on_transport_command(s, m, now);
        return;
    case KCPMessage::kScalingRequest:
        on_scaling_request(s, m, now);
        return;
    case KCPMessage::kPerformanceMetrics:
        on_performance_metrics(s, m, now);
        return;
    default:
        break;
    }
    if (auto answer = error_answer(m, "not handled yet: kwik-cp does not serve " + payload_name(m) + " in this version")) {
        ++_counters.not_handled;
        reply(s, std::move(*answer), now);
    } else {
        ++_counters.ignored_messages;
    }
}

void control_server::handle_hello(session& s, const KCPMessage& m, clock_sample now) {
    KCPMessage out;
    *out.mutable_server_hello() = s.hello.handle_client_hello(m.client_hello(), now.wall_ms, s.ch.is_tls());
    out.mutable_server_hello()->set_in_reply_to(m.header().message_id());
    const auto result = out.server_hello().auth_result();
    if (result == v3::ServerHello::ACCEPTED) {
        const auto& a = *s.hello.accepted();
        s.ch.set_connection_id(a.connection_id);
        // Only a client carries data: an operator's or a server's session gets no kwikd connection.
        if ((a.roles & role_bit(role::client)) != 0) {
            desired_connection c;
            c.id = _link.next_connection_id();
            c.name = a.connection_id;
            c.endpoint = _config.endpoint;
            c.endpoint_length = _config.endpoint == api::endpoint_kind::pattern_source ? _config.endpoint_length : 0;
            c.endpoint_path = _config.endpoint == api::endpoint_kind::file_store ? _config.endpoint_directory : "";
            c.data_key.emplace(a.key_phase, a.data_key, a.valid_until_ms, a.max_frames, false); // kwikd encrypts when the client does
            if (_link.add_connection(c)) {
                s.kwikd_connection = c.id;
            }
        }
        reply(s, std::move(out), now);
        return;
    }
    const std::string reason = out.server_hello().error_reason();
    reply(s, std::move(out), now);
    if (result != v3::ServerHello::CHALLENGE) {
        log_hello_refused(s.peer, m.client_hello().client_id(), v3::ServerHello::AuthResult_Name(result), reason);
        s.ch.close_when_sent("hello rejected: " + reason, now);
    }
}

void control_server::on_discovery(session& s, const KCPMessage& m, clock_sample now) {
    KCPMessage out;
    *out.mutable_server_discovery_resp() = _registry.discover(m.server_discovery_req(), now.wall_ms);
    reply(s, std::move(out), now);
}

void control_server::on_capability_query(session& s, const KCPMessage& m, clock_sample now) {
    KCPMessage out;
    *out.mutable_capability_response() = _registry.capabilities(m.capability_query(), now.wall_ms);
    out.mutable_capability_response()->set_in_reply_to(m.header().message_id());
    reply(s, std::move(out), now);
}

void control_server::on_add_path(session& s, const KCPMessage& m, clock_sample now) {
    const auto& q = m.add_path();
    const std::string& conn = s.hello.accepted()->connection_id;
    auto refuse = [&](std::string reason) {
        reply(s, path_status_update(q.connection_id(), q.path_id(), v3::PathStatusUpdate::REMOVED, std::move(reason)), now);
    };
    if (q.connection_id() != conn) {
        refuse("add_path.connection_id: \"" + q.connection_id() + "\" is not this session's connection (\"" + conn +
               "\")");
        return;
    }
    if (s.kwikd_connection == 0) {
        refuse("this session has no connection in kwikd");
        return;
    }
    auto tuple = to_tuple(q.path(), "add_path.path");
    if (!tuple) {
        refuse(tuple.message());
        return;
    }
    desired_path p;
    p.path_id = q.path_id();
    p.tuple = tuple.value();
    p.weight = q.initial_weight() > 0 ? q.initial_weight() : 1.0f;
    p.max_bandwidth_mbps = q.max_bandwidth_mbps();
    p.standby = q.standby();
    const int fd = s.ch.fd();
    const bool standby = q.standby();
    auto r = _link.add_path(s.kwikd_connection, p, [this, fd, conn, id = q.path_id(), standby](const api::event& e) {
        session* to = live_session(fd, conn);
        if (to == nullptr) {
            return;
        }
        const std::string refused = kwikd_error(e);
        reply(*to,
              path_status_update(conn, id,
                          refused.empty() ? (standby ? v3::PathStatusUpdate::STANDBY : v3::PathStatusUpdate::UP)
                                          : v3::PathStatusUpdate::REMOVED,
                          refused.empty() ? std::string() : "kwikd refused the path: " + refused),
              clock_sample::now());
    });
    if (!r) {
        refuse(r.message());
    }
}

void control_server::on_remove_path(session& s, const KCPMessage& m, clock_sample now) {
    const auto& q = m.remove_path();
    const std::string& conn = s.hello.accepted()->connection_id;
    auto answer = [&](std::string reason) {
        reply(s, path_status_update(q.connection_id(), q.path_id(), v3::PathStatusUpdate::REMOVED, std::move(reason)), now);
    };
    if (q.connection_id() != conn || s.kwikd_connection == 0) {
        answer("remove_path.connection_id: \"" + q.connection_id() + "\" is not this session's connection");
        return;
    }
    const int fd = s.ch.fd();
    std::string why = q.reason().empty() ? std::string("removed by the client") : q.reason();
    auto r = _link.remove_path(s.kwikd_connection, q.path_id(), q.drain_timeout_ms(),
                               [this, fd, conn, id = q.path_id(), why](const api::event& e) {
                                   session* to = live_session(fd, conn);
                                   if (to == nullptr) {
                                       return;
                                   }
                                   const std::string refused = kwikd_error(e);
                                   reply(*to,
                                         path_status_update(conn, id, v3::PathStatusUpdate::REMOVED,
                                                     refused.empty() ? why : "kwikd: " + refused),
                                         clock_sample::now());
                               });
    if (!r) {
        answer(r.message());
    }
}

void control_server::on_health_check(session& s, const KCPMessage& m, clock_sample now) {
    KCPMessage out;
    *out.mutable_health_check_resp() = health_of(m.health_check_req(), now);
    reply(s, std::move(out), now);
}

kcp::v3::HealthCheckResponse control_server::health_of(const kcp::v3::HealthCheckRequest& q, clock_sample now) {
    v3::HealthCheckResponse out;
    auto* r = &out;
    r->set_sequence(q.sequence());
    r->set_connection_id(q.connection_id());
    r->set_request_sent_at_us(q.sent_at_us());
    r->set_responded_at_us(now.wall_ms * 1000);
    using H = v3::HealthCheckResponse;
    auto add = [&](std::string name, H::Status st, std::string detail) {
        auto* c = r->add_components();
        c->set_component(std::move(name));
        c->set_status(st);
        c->set_detail(std::move(detail));
    };
    if (q.has_server_id()) {
        r->set_server_id(q.server_id());
        if (q.server_id() != _hello.config().server_id) {
            r->set_status(H::UNKNOWN_TARGET);
            r->set_reason("server_id \"" + q.server_id() + "\" is not this server (\"" + _hello.config().server_id +
                          "\")");
            return out;
        }
        add("kwikd", _link.attached() ? H::HEALTHY : H::UNHEALTHY,
            _link.attached() ? "attached to kwikd's shared memory" : "kwikd is not attached");
    } else if (q.has_path_id()) {
        r->set_path_id(q.path_id());
        const desired_connection* c = _link.find(q.connection_id());
        if (c == nullptr || c->paths.count(q.path_id()) == 0) {
            r->set_status(H::UNKNOWN_TARGET);
            r->set_reason("no path " + std::to_string(q.path_id()) + " on connection \"" + q.connection_id() + "\"");
            return out;
        }
        add("kwikd", _link.attached() ? H::HEALTHY : H::UNHEALTHY,
            _link.attached() ? "attached" : "kwikd is not attached");
        const auto totals = _link.read_counters();
        const api::path_counters* pc = nullptr;
        if (totals) {
            for (const auto& p : totals->paths) {
                if (p.connection_id == c->id && p.path_id == q.path_id()) {
                    pc = &p;
                }
            }
        }
        if (pc == nullptr) {
            add("path_counters", H::UNHEALTHY, "the path is not in kwikd's counters");
        } else {
            static constexpr std::array<const char*, 4> names{"up", "suspect", "failed", "removed"};
            const H::Status st = pc->status == 0 ? H::HEALTHY : pc->status == 1 ? H::DEGRADED : H::UNHEALTHY;
            add("path_counters", st,
                std::string("status ") + (pc->status < names.size() ? names[pc->status] : "unknown") + ", rx " +
                    std::to_string(pc->rx_packets) + " packets, tx " + std::to_string(pc->tx_packets) + " packets");
        }
    } else {
        r->set_status(H::UNKNOWN_TARGET);
        r->set_reason("health_check_req: neither path_id nor server_id is set");
        return out;
    }
    H::Status worst = H::HEALTHY;
    for (const auto& c : r->components()) {
        worst = std::max(worst, c.status());
    }
    r->set_status(worst);
    if (worst != H::HEALTHY) {
        for (const auto& c : r->components()) {
            if (c.status() != H::HEALTHY) {
                r->set_reason(c.component() + ": " + c.detail());
                break;
            }
        }
    }
    return out;
}

control_server::session* control_server::live_session(int fd, const std::string& connection_id) {
    auto it = _sessions.find(fd);
    if (it == _sessions.end() || it->second->ch.closed() || !it->second->hello.accepted() ||
        it->second->hello.accepted()->connection_id != connection_id) {
        return nullptr; // closed, or the socket number now belongs to another session
    }
    return it->second.get();
}

control_server::session* control_server::session_of_connection(std::uint64_t kwikd_connection) {
    for (auto& [fd, s] : _sessions) {
        if (s->kwikd_connection == kwikd_connection) {
            return s.get();
        }
    }
    return nullptr;
}

void control_server::push_path_status(std::uint64_t kwikd_connection, std::uint64_t path_id,
                                      v3::PathStatusUpdate::Status status, std::string reason) {
    session* s = session_of_connection(kwikd_connection);
    if (s == nullptr || s->ch.closed() || !s->hello.accepted()) {
        return;
    }
    ++_counters.path_updates_pushed;
    reply(*s, path_status_update(s->hello.accepted()->connection_id, path_id, status, std::move(reason)),
          clock_sample::now());
}

} // namespace kwik::cp
