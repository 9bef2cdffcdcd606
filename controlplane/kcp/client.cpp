// The blocking KCP client: see client.hpp.
#include "controlplane/kcp/client.hpp"

#include <netdb.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <system_error>
#include <utility>

namespace kwik::kcp {

namespace {

using std::chrono::milliseconds;
using steady_time = std::chrono::steady_clock::time_point;

std::string errno_text(int err) {
    return std::error_code(err, std::generic_category()).message();
}

struct host_port {
    std::string host;
    std::string port;
};

result<host_port> split_address(std::string_view address) {
    const std::size_t colon = address.rfind(':');
    if (colon == std::string_view::npos || colon + 1 == address.size()) {
        return error{"\"" + std::string(address) + "\" is not host:port"};
    }
    std::string_view host = address.substr(0, colon);
    if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
        host = host.substr(1, host.size() - 2);
    } else if (host.find(':') != std::string_view::npos) {
        return error{"\"" + std::string(address) + "\": write an IPv6 address as [addr]:port"};
    }
    if (host.empty()) {
        return error{"\"" + std::string(address) + "\" has no host"};
    }
    return host_port{std::string(host), std::string(address.substr(colon + 1))};
}

int remaining_ms(steady_time deadline) {
    const auto left = deadline - std::chrono::steady_clock::now();
    if (left <= steady_time::duration::zero()) {
        return 0;
    }
    // Rounded up, so a wait never ends just before the deadline and spins.
    const auto ms = std::chrono::ceil<milliseconds>(left).count();
    return static_cast<int>(std::min<std::int64_t>(ms, 60'000));
}

// A connected, non-blocking TCP socket to one of the addresses of host:port.
result<int> connect_tcp(const host_port& where, steady_time deadline) {
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    addrinfo* found = nullptr;
    const int rc = ::getaddrinfo(where.host.c_str(), where.port.c_str(), &hints, &found);
    if (rc != 0) {
        return error{"cannot resolve " + where.host + " port " + where.port + ": " +
                     ::gai_strerror(rc)};
    }
    std::string failures;
    for (const addrinfo* a = found; a != nullptr; a = a->ai_next) {
        char host[NI_MAXHOST] = "?";
        char port[NI_MAXSERV] = "?";
        ::getnameinfo(a->ai_addr, a->ai_addrlen, host, sizeof host, port, sizeof port,
                      NI_NUMERICHOST | NI_NUMERICSERV);
        const int fd = ::socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
                                a->ai_protocol);
        int err = fd < 0 ? errno : 0;
        if (fd >= 0 && ::connect(fd, a->ai_addr, a->ai_addrlen) != 0) {
            err = errno;
            if (err == EINPROGRESS) {
                pollfd p{fd, POLLOUT, 0};
                const int ready = ::poll(&p, 1, remaining_ms(deadline));
                socklen_t len = sizeof err;
                if (ready <= 0) {
                    err = ready == 0 ? ETIMEDOUT : errno;
                } else if (::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) {
                    err = errno;
                }
            }
        }
        if (err == 0) {
            ::freeaddrinfo(found);
            return fd;
        }
        if (fd >= 0) {
            ::close(fd);
        }
        failures += std::string(failures.empty() ? "" : "; ") + host + " port " + port + ": " +
                    errno_text(err);
    }
    ::freeaddrinfo(found);
    return error{"cannot connect to " + where.host + " port " + where.port + ": " + failures};
}

} // namespace

blocking_client::blocking_client(channel ch) : _channel(std::move(ch)) {
    _wake_fd = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
}

blocking_client::~blocking_client() {
    if (_wake_fd >= 0) {
        ::close(_wake_fd);
    }
}

result<std::unique_ptr<blocking_client>> blocking_client::connect(std::string_view address,
                                                                  const client_options& options) {
    const steady_time deadline = std::chrono::steady_clock::now() + options.connect_timeout;
    result<host_port> where = split_address(address);
    if (!where) {
        return where.failure();
    }
    result<int> fd = connect_tcp(*where, deadline);
    if (!fd) {
        return fd.failure();
    }
    const clock_sample now = clock_sample::now();
    result<channel> ch = error{};
    if (options.pin) {
        result<tls_context> context = tls_context::client(*options.pin);
        if (!context) {
            ::close(*fd);
            return context.failure();
        }
        ch = channel::tls(*fd, *context, options.channel, now);
    } else {
        ch = channel::plain(*fd, options.channel, now);
    }
    if (!ch) {
        return ch.failure();
    }
    std::unique_ptr<blocking_client> client(new blocking_client(std::move(*ch)));
    if (client->_wake_fd < 0) {
        return error{"eventfd: " + errno_text(errno), errno};
    }
    std::unique_lock lock(client->_mutex);
    const bool open = client->wait(lock, deadline, [&] {
        return client->_channel.current_phase() == channel::phase::open;
    });
    if (!open) {
        const std::string why = client->_channel.closed()
                                    ? client->_channel.close_reason()
                                    : "the TLS handshake did not complete within " +
                                          std::to_string(options.connect_timeout.count()) + " ms";
        return error{"KCP session with " + std::string(address) + ": " + why};
    }
    lock.unlock();
    return client;
}

error blocking_client::closed_error(std::string_view what) const {
    return error{std::string(what) + ": the KCP session is closed: " + _channel.close_reason()};
}

void blocking_client::wake_driver() {
    if (_driving) {
        const std::uint64_t one = 1;
        (void)!::write(_wake_fd, &one, sizeof one);
    }
}

void blocking_client::dispatch() {
    KCPMessage m;
    while (_channel.receive(m)) {
        const correlation c = correlation_id(m);
        auto w = std::find_if(_waiters.begin(), _waiters.end(), [&](const waiter* x) {
            return !x->reply && answers(c, x->key);
        });
        if (w != _waiters.end()) {
            (*w)->reply = std::move(m);
        } else if (_unsolicited.size() < max_unsolicited) {
            _unsolicited.push_back(std::move(m));
        } else {
            ++_unsolicited_dropped;
        }
        m = KCPMessage();
    }
}

void blocking_client::drive_once(std::unique_lock<std::mutex>& lock, steady_time deadline) {
    pollfd fds[2] = {
        {_channel.fd(), static_cast<short>(POLLIN | (_channel.wants_write() ? POLLOUT : 0)), 0},
        {_wake_fd, POLLIN, 0},
    };
    const int timeout = remaining_ms(std::min(deadline, _channel.next_deadline()));
    lock.unlock();
    const int ready = ::poll(fds, 2, timeout);
    lock.lock();
    if (ready > 0 && (fds[1].revents & POLLIN) != 0) {
        std::uint64_t count = 0;
        (void)!::read(_wake_fd, &count, sizeof count);
    }
    const clock_sample now = clock_sample::now();
    if (ready > 0 && (fds[0].revents & (POLLIN | POLLHUP | POLLERR)) != 0) {
        _channel.on_readable(now);
    }
    if (_channel.wants_write()) {
        _channel.on_writable(now);
    }
    _channel.poll(now);
    dispatch();
}

template <class Done>
bool blocking_client::wait(std::unique_lock<std::mutex>& lock, steady_time deadline, Done done) {
    while (!done()) {
        if (_channel.closed() || std::chrono::steady_clock::now() >= deadline) {
            return false;
        }
        if (_driving) {
            _turn.wait_until(lock, deadline);
            continue;
        }
        _driving = true;
        drive_once(lock, deadline);
        _driving = false;
        _turn.notify_all();
    }
    return true;
}

result<KCPMessage> blocking_client::request(KCPMessage request, milliseconds timeout) {
    const steady_time deadline = std::chrono::steady_clock::now() + timeout;
    std::unique_lock lock(_mutex);
    const std::string what = "request " + std::string(payload_name(request));
    if (correlation_id(request).side != correlation::role::request) {
        return error{what + ": a " + std::string(payload_name(request)) +
                     " gets no reply; use send()"};
    }
    result<std::uint64_t> id = _channel.send(request, clock_sample::now());
    if (!id) {
        return error{what + ": " + id.message()};
    }
    request.mutable_header()->set_message_id(*id);
    waiter w{correlation_id(request), std::nullopt};
    _waiters.push_back(&w);
    wake_driver();
    const bool answered = wait(lock, deadline, [&] { return w.reply.has_value(); });
    _waiters.remove(&w);
    if (answered) {
        return std::move(*w.reply);
    }
    if (_channel.closed()) {
        return closed_error(what);
    }
    return error{what + " (" + to_string(w.key) + "): no reply within " +
                     std::to_string(timeout.count()) + " ms",
                 ETIMEDOUT};
}

result<std::uint64_t> blocking_client::send(KCPMessage message, milliseconds timeout) {
    const steady_time deadline = std::chrono::steady_clock::now() + timeout;
    std::unique_lock lock(_mutex);
    const std::string what = "send " + std::string(payload_name(message));
    result<std::uint64_t> id = _channel.send(std::move(message), clock_sample::now());
    if (!id) {
        return error{what + ": " + id.message()};
    }
    wake_driver();
    if (!wait(lock, deadline, [&] { return !_channel.wants_write(); })) {
        if (_channel.closed()) {
            return closed_error(what);
        }
        return error{what + ": not written within " + std::to_string(timeout.count()) + " ms",
                     ETIMEDOUT};
    }
    return id;
}

result<KCPMessage> blocking_client::receive(milliseconds timeout) {
    const steady_time deadline = std::chrono::steady_clock::now() + timeout;
    std::unique_lock lock(_mutex);
    if (!wait(lock, deadline, [&] { return !_unsolicited.empty(); })) {
        if (_channel.closed()) {
            return closed_error("receive");
        }
        return error{"receive: nothing within " + std::to_string(timeout.count()) + " ms",
                     ETIMEDOUT};
    }
    KCPMessage m = std::move(_unsolicited.front());
    _unsolicited.pop_front();
    return m;
}

void blocking_client::close() {
    std::unique_lock lock(_mutex);
    _channel.close("closed by the client");
    wake_driver();
}

channel_counters blocking_client::counters() const {
    std::unique_lock lock(_mutex);
    return _channel.counters();
}

std::uint64_t blocking_client::unsolicited_dropped() const {
    std::unique_lock lock(_mutex);
    return _unsolicited_dropped;
}

} // namespace kwik::kcp
