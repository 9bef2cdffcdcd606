// kwik-cp's registration with an upstream registry; see upstream_registration.hpp.
#include "controlplane/server/kwik_cp/upstream_registration.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/epoll.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <utility>

namespace kwik::cp {

using kcp::KCPMessage;
using kcp::clock_sample;
namespace v3 = kcp::v3;
using std::chrono::milliseconds;

namespace {

// A numeric "host:port" (IPv6 as [addr]:port) as a socket address.
result<void> parse_peer(const std::string& text, sockaddr_storage& out, socklen_t& length) {
    const std::size_t colon = text.rfind(':');
    if (colon == std::string::npos || colon == 0 || colon + 1 == text.size()) {
        return error{"upstream.address: \"" + text + "\" is not address:port", EINVAL};
    }
    std::string host = text.substr(0, colon);
    if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
        host = host.substr(1, host.size() - 2);
    }
    const std::string digits = text.substr(colon + 1);
    if (digits.empty() || digits.size() > 5 || !std::all_of(digits.begin(), digits.end(), ::isdigit) ||
        std::stoul(digits) == 0 || std::stoul(digits) > 65535) {
        return error{"upstream.address: \"" + text + "\" has no port in 1..65535 after the last ':'", EINVAL};
    }
    const auto port = static_cast<std::uint16_t>(std::stoul(digits));
    out = {};
    auto* v4 = reinterpret_cast<sockaddr_in*>(&out);
    auto* v6 = reinterpret_cast<sockaddr_in6*>(&out);
    if (::inet_pton(AF_INET, host.c_str(), &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons(port);
        length = sizeof(sockaddr_in);
        return {};
    }
    if (::inet_pton(AF_INET6, host.c_str(), &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons(port);
        length = sizeof(sockaddr_in6);
        return {};
    }
    return error{"upstream.address: \"" + host + "\" is not a numeric IPv4 or IPv6 address", EINVAL};
}

} // namespace

std::string_view to_string(upstream_registration::state s) noexcept {
    switch (s) {
    case upstream_registration::state::waiting:
        return "waiting";
    case upstream_registration::state::connecting:
        return "connecting";
    case upstream_registration::state::hello:
        return "hello";
    case upstream_registration::state::registering:
        return "registering";
    case upstream_registration::state::registered:
        return "registered";
    case upstream_registration::state::stopped:
        return "stopped";
    }
    return "unknown";
}

upstream_registration::upstream_registration(upstream_config config, server_registration self)
    : _config(std::move(config)), _self(std::move(self)), _registration(registration_to_proto(_self)) {}

upstream_registration::~upstream_registration() {
    close_connection();
    if (_epoll >= 0) {
        ::close(_epoll);
    }
}

result<std::unique_ptr<upstream_registration>> upstream_registration::create(upstream_config config,
                                                                            server_registration self) {
    if (config.key_id.empty()) {
        return error{"upstream.key_id: missing", EINVAL};
    }
    if (self.server_id.empty()) {
        return error{"upstream: this server has no server_id to register", EINVAL};
    }
    if (config.client_id.empty()) {
        config.client_id = self.server_id;
    }
    std::unique_ptr<upstream_registration> u(new upstream_registration(std::move(config), std::move(self)));
    if (auto r = parse_peer(u->_config.address, u->_peer, u->_peer_length); !r) {
        return r.failure();
    }
    if (u->_config.pin) {
        auto ctx = kcp::tls_context::client(*u->_config.pin);
        if (!ctx) {
            return error{"upstream.pin: " + ctx.message(), ctx.code()};
        }
        u->_tls = std::move(ctx.value());
    }
    u->_epoll = ::epoll_create1(EPOLL_CLOEXEC);
    if (u->_epoll < 0) {
        return error{std::string("upstream: epoll_create1: ") + std::strerror(errno), errno};
    }
    return u;
}

std::chrono::steady_clock::time_point upstream_registration::next_deadline() const noexcept {
    using tp = std::chrono::steady_clock::time_point;
    switch (_state) {
    case state::stopped:
        return tp::max();
    case state::waiting:
        return _next_attempt;
    case state::connecting:
        return _answer_deadline;
    default:
        break;
    }
    tp next = _channel ? _channel->next_deadline() : tp::max();
    if (_awaiting != 0) {
        next = std::min(next, _answer_deadline);
    } else if (_state == state::registered) {
        next = std::min(next, _next_heartbeat);
    }
    return next;
}

void upstream_registration::watch(int fd, std::uint32_t events) {
    if (events == _watched) {
        return;
    }
    epoll_event ev{};
    ev.events = events;
    ev.data.fd = fd;
    ::epoll_ctl(_epoll, _watched == 0 ? EPOLL_CTL_ADD : EPOLL_CTL_MOD, fd, &ev);
    _watched = events;
}

void upstream_registration::close_connection() {
    const int fd = _socket >= 0 ? _socket : (_channel ? _channel->fd() : -1);
    if (fd >= 0 && _watched != 0 && _epoll >= 0) {
        ::epoll_ctl(_epoll, EPOLL_CTL_DEL, fd, nullptr);
    }
    _watched = 0;
    if (_socket >= 0) {
        ::close(_socket);
        _socket = -1;
    }
    _channel.reset();
    _awaiting = 0;
}

void upstream_registration::fail(std::string why, clock_sample now) {
    _last_error = std::move(why);
    ++_counters.failures;
    close_connection();
    _state = state::waiting;
    _backoff = _backoff.count() == 0 ? _config.reconnect_min : std::min(_backoff * 2, _config.reconnect_max);
    _next_attempt = now.steady + _backoff;
}

void upstream_registration::start_connect(clock_sample now) {
    ++_counters.connects;
    _socket = ::socket(_peer.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (_socket < 0) {
        fail(std::string("socket: ") + std::strerror(errno), now);
        return;
    }
    if (::connect(_socket, reinterpret_cast<const sockaddr*>(&_peer), _peer_length) != 0 && errno != EINPROGRESS) {
        fail("connect to " + _config.address + ": " + std::strerror(errno), now);
        return;
    }
    _state = state::connecting;
    _answer_deadline = now.steady + _config.answer_timeout;
    watch(_socket, EPOLLOUT);
}

void upstream_registration::finish_connect(clock_sample now) {
    int err = 0;
    socklen_t len = sizeof err;
    if (::getsockopt(_socket, SOL_SOCKET, SO_ERROR, &err, &len) != 0) {
        err = errno;
    }
    if (err != 0) {
        fail("connect to " + _config.address + ": " + std::strerror(err), now);
        return;
    }
    ::epoll_ctl(_epoll, EPOLL_CTL_DEL, _socket, nullptr);
    _watched = 0;
    const int fd = _socket;
    _socket = -1; // the channel owns it from here, or closed it
    auto ch = _tls ? kcp::channel::tls(fd, *_tls, _config.channel, now) : kcp::channel::plain(fd, _config.channel, now);
    if (!ch) {
        fail("session with " + _config.address + ": " + ch.message(), now);
        return;
    }
    _channel.emplace(std::move(ch.value()));
    client_credentials cr;
    cr.client_id = _config.client_id;
    cr.key_id = _config.key_id;
    cr.key = _config.secret;
    auto round1 = client_hello_round1(cr);
    if (!round1) {
        fail("hello: " + round1.message(), now);
        return;
    }
    _round1 = round1.value();
    _state = state::hello;
    KCPMessage m;
    *m.mutable_client_hello() = _round1;
    send(std::move(m), now);
}

void upstream_registration::send(KCPMessage m, clock_sample now) {
    auto id = _channel->send(std::move(m), now);
    if (!id) {
        fail("send to " + _config.address + ": " + id.message(), now);
        return;
    }
    _awaiting = id.value();
    _answer_deadline = now.steady + _config.answer_timeout;
    _channel->on_writable(now);
}

void upstream_registration::step(clock_sample now) {
    if (_state == state::stopped) {
        return;
    }
    std::array<epoll_event, 4> events{};
    const int n = ::epoll_wait(_epoll, events.data(), static_cast<int>(events.size()), 0);
    std::uint32_t ready = 0;
    for (int i = 0; i < n; ++i) {
        ready |= events[static_cast<std::size_t>(i)].events;
    }
    if (_state == state::connecting) {
        if (ready != 0) {
            finish_connect(now);
        } else if (now.steady >= _answer_deadline) {
            fail("connect to " + _config.address + ": no answer within " +
                     std::to_string(_config.answer_timeout.count()) + " ms",
                 now);
        }
    } else if (_channel) {
        if ((ready & (EPOLLIN | EPOLLERR | EPOLLHUP)) != 0) {
            _channel->on_readable(now);
        }
        KCPMessage m;
        while (_channel && !_channel->closed() && _channel->receive(m)) {
            on_message(m, now);
        }
        if (_channel) {
            _channel->poll(now);
            if (_channel->wants_write()) {
                _channel->on_writable(now);
            }
            if (_channel->closed()) {
                fail("the session with " + _config.address + " closed: " + _channel->close_reason(), now);
            } else if (_awaiting != 0 && now.steady >= _answer_deadline) {
                fail(_config.address + " did not answer within " + std::to_string(_config.answer_timeout.count()) +
                         " ms (" + std::string(to_string(_state)) + ")",
                     now);
            }
        }
    }
    if (_state == state::waiting && now.steady >= _next_attempt) {
        start_connect(now);
    }
    if (_channel && !_channel->closed()) { // also a channel made just now by finish_connect()
        watch(_channel->fd(), EPOLLIN | (_channel->wants_write() ? EPOLLOUT : 0u));
    }
}

void upstream_registration::on_message(const KCPMessage& m, clock_sample now) {
    if (m.has_server_hello() && _state == state::hello && m.server_hello().in_reply_to() == _awaiting) {
        const v3::ServerHello& h = m.server_hello();
        _awaiting = 0;
        if (h.auth_result() == v3::ServerHello::CHALLENGE) {
            auto round2 = client_hello_round2(_round1, h, _config.secret);
            if (!round2) {
                fail("hello: " + round2.message(), now);
                return;
            }
            KCPMessage r;
            *r.mutable_client_hello() = round2.value();
            send(std::move(r), now);
        } else if (h.auth_result() == v3::ServerHello::ACCEPTED) {
            _state = state::registering;
            KCPMessage r;
            *r.mutable_server_registration() = _registration;
            send(std::move(r), now);
        } else {
            ++_counters.refusals;
            fail("hello refused: " + v3::ServerHello::AuthResult_Name(h.auth_result()) + ": " + h.error_reason(), now);
        }
        return;
    }
    if (!m.has_registration_response() || m.registration_response().in_reply_to() != _awaiting) {
        return; // nothing else is expected; a late answer of a session before is stale
    }
    const v3::ServerRegistrationResponse& r = m.registration_response();
    _awaiting = 0;
    if (!r.accepted()) {
        ++_counters.refusals;
        if (_state == state::registered) { // the registration lapsed (a registry restart): again
            _last_error = "heartbeat refused: " + r.error_reason();
            _state = state::registering;
            KCPMessage again;
            *again.mutable_server_registration() = _registration;
            send(std::move(again), now);
            return;
        }
        fail("registration refused: " + r.error_reason(), now);
        return;
    }
    _expires_at_ms = r.expires_at_ms();
    if (_state == state::registering) {
        ++_counters.registrations;
        _state = state::registered;
        _backoff = milliseconds(0);
        _last_error.clear();
        _interval = _config.heartbeat_interval.count() > 0 ? _config.heartbeat_interval
                    : r.heartbeat_interval_ms() > 0         ? milliseconds(r.heartbeat_interval_ms())
                                                            : milliseconds(10'000);
        _next_heartbeat = now.steady + _interval;
    } else {
        ++_counters.heartbeats;
    }
}

bool upstream_registration::heartbeat_due(clock_sample now) const noexcept {
    return _state == state::registered && _awaiting == 0 && _channel && now.steady >= _next_heartbeat;
}

void upstream_registration::send_heartbeat(const upstream_figures& f, clock_sample now) {
    KCPMessage m;
    auto* h = m.mutable_server_heartbeat();
    h->set_server_id(_self.server_id);
    h->set_available_bandwidth_mbps(f.available_bandwidth_mbps);
    h->set_current_load_percent(std::min<std::uint32_t>(f.current_load_percent, 100));
    auto* metrics = h->mutable_metrics();
    *metrics = _self.server.metrics();
    metrics->set_active_connections(f.active_connections);
    metrics->set_bytes_transferred_total(f.bytes_transferred_total);
    metrics->set_uptime_seconds(f.uptime_seconds);
    _next_heartbeat = now.steady + _interval;
    send(std::move(m), now);
}

void upstream_registration::stop(const std::string& reason, milliseconds grace) {
    if (_state == state::stopped) {
        return;
    }
    if (_state == state::registered && _channel) {
        const clock_sample start = clock_sample::now();
        KCPMessage m;
        m.mutable_server_deregistration()->set_server_id(_self.server_id);
        m.mutable_server_deregistration()->set_reason(reason);
        // An answer still due (a heartbeat's) would be taken for the deregistration's: wait it out.
        const auto end = start.steady + grace;
        bool sent = false;
        while (_channel && !_channel->closed() && std::chrono::steady_clock::now() < end) {
            const clock_sample now = clock_sample::now();
            if (!sent && _awaiting == 0) {
                send(m, now);
                sent = true;
                continue;
            }
            if (sent && _awaiting == 0) {
                break; // answered
            }
            std::array<epoll_event, 4> events{};
            (void)::epoll_wait(_epoll, events.data(), static_cast<int>(events.size()), 10);
            _channel->on_readable(now);
            if (_channel->wants_write()) {
                _channel->on_writable(now);
            }
            KCPMessage in;
            while (_channel && _channel->receive(in)) {
                if (in.has_registration_response() && in.registration_response().in_reply_to() == _awaiting) {
                    _awaiting = 0;
                }
            }
            watch(_channel->fd(), EPOLLIN | (_channel->wants_write() ? EPOLLOUT : 0u));
        }
    }
    close_connection();
    _state = state::stopped;
}

} // namespace kwik::cp
