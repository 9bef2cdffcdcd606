// One KCP session over a socket: see channel.hpp and PROTOCOL.md 11.
#include "controlplane/kcp/channel.hpp"

#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
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

// on_readable() returns after this much, so one busy peer cannot hold the loop (the socket stays
// readable and level-triggered epoll comes back to it).
constexpr std::size_t read_budget = 256 * 1024;
// on_writable() encodes queued messages only while fewer bytes than this wait for the socket,
// so a message queued later with a higher priority still overtakes the backlog.
constexpr std::size_t output_batch = 64 * 1024;
// TLS: queued messages are encoded together and written as one record of up to this much
// plaintext (TLS's maximum), not one record per message. A record costs a cipher set-up, a
// 22-byte header and tag, and an SSL_read at the peer whatever its size: with 16 health checks
// pipelined on a session, one record for all the replies took kwik-cp from 23.8 k to 16.7 k
// instructions per request and the client from 24.7 k to 18.7 k (callgrind, perf/cp_wire_bench,
// perf/RESULTS.md section 9).
constexpr std::size_t tls_record_plaintext = 16 * 1024;
constexpr std::size_t max_drop_records = 64;
constexpr milliseconds default_closing_time{10'000};

std::string errno_text(int err) {
    return std::error_code(err, std::generic_category()).message();
}

std::string duration_text(milliseconds d) {
    if (d.count() % 1000 == 0) {
        return std::to_string(d.count() / 1000) + " s";
    }
    return std::to_string(d.count()) + " ms";
}

template <class T> bool take_front(std::deque<T>& from, T& out) {
    if (from.empty()) {
        return false;
    }
    out = std::move(from.front());
    from.pop_front();
    return true;
}

std::string describe(const KCPMessage& m) {
    return std::string(payload_name(m)) + " message_id " + std::to_string(m.header().message_id());
}

} // namespace

std::string_view to_string(close_cause c) noexcept {
    switch (c) {
    case close_cause::none:
        return "none";
    case close_cause::local:
        return "local";
    case close_cause::peer_closed:
        return "peer_closed";
    case close_cause::frame_error:
        return "frame_error";
    case close_cause::tls_error:
        return "tls_error";
    case close_cause::read_timeout:
        return "read_timeout";
    case close_cause::idle_timeout:
        return "idle_timeout";
    case close_cause::socket_error:
        return "socket_error";
    case close_cause::send_backlog:
        return "send_backlog";
    }
    return "unknown";
}

clock_sample clock_sample::now() noexcept {
    const auto wall = std::chrono::duration_cast<milliseconds>(
        std::chrono::system_clock::now().time_since_epoch());
    return {std::chrono::steady_clock::now(), static_cast<std::uint64_t>(wall.count())};
}

// ---- construction ---------------------------------------------------------------------------

channel::owned_fd::owned_fd(owned_fd&& o) noexcept : fd(std::exchange(o.fd, -1)) {}

channel::owned_fd& channel::owned_fd::operator=(owned_fd&& o) noexcept {
    if (this != &o) {
        if (fd >= 0) {
            ::close(fd);
        }
        fd = std::exchange(o.fd, -1);
    }
    return *this;
}

channel::owned_fd::~owned_fd() {
    if (fd >= 0) {
        ::close(fd);
    }
}

channel::channel(int fd, channel_options options, clock_sample now)
    : _fd(fd), _options(std::move(options)), _reader(_options.max_message_size),
      _last_received(now.steady) {}

channel::channel(channel&&) noexcept = default;
channel& channel::operator=(channel&&) noexcept = default;
channel::~channel() = default;

result<channel> channel::plain(int fd, channel_options options, clock_sample now) {
    if (fd < 0) {
        return error{"no socket (fd " + std::to_string(fd) + ")", EBADF};
    }
    channel ch(fd, std::move(options), now);
    const int flags = ::fcntl(fd, F_GETFL);
    if (flags < 0 || ::fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0) {
        return error{"cannot make socket " + std::to_string(fd) + " non-blocking: " +
                         errno_text(errno),
                     errno};
    }
    // Requests and replies are small: no Nagle delay. Not a TCP socket (tests): nothing to set.
    const int one = 1;
    (void)::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return ch;
}

result<channel> channel::tls(int fd, const tls_context& context, channel_options options,
                             clock_sample now) {
    result<channel> ch = plain(fd, std::move(options), now);
    if (!ch) {
        return ch;
    }
    result<tls_session> session = tls_session::create(context);
    if (!session) {
        return session.failure();
    }
    ch->_tls = std::make_unique<tls_session>(std::move(*session));
    ch->_phase = phase::handshaking;
    ch->_pending_since = now.steady; // the handshake is under read_timeout
    if (!context.is_server()) {
        // The client speaks first: its ClientHello waits in _out for on_writable().
        const tls_session::status st = ch->_tls->handshake();
        ch->_tls->take_ciphertext(ch->_out);
        if (st == tls_session::status::failed) {
            return error{ch->_tls->error()};
        }
    }
    return ch;
}

// ---- sending --------------------------------------------------------------------------------

std::size_t channel::queued() const noexcept {
    std::size_t n = 0;
    for (const auto& q : _queue) {
        n += q.size();
    }
    return n;
}

result<std::uint64_t> channel::send(KCPMessage m, clock_sample now) {
    if (closed()) {
        return error{"the KCP session is closed: " + _close_reason};
    }
    if (_closing) {
        return error{"the KCP session is closing: " + _closing_reason};
    }
    if (m.payload_case() == KCPMessage::PAYLOAD_NOT_SET) {
        return error{"a KCPMessage without a payload cannot be sent"};
    }
    const int priority = m.header().priority();
    if (priority < 0 || static_cast<std::size_t>(priority) >= _queue.size()) {
        return error{"header.priority " + std::to_string(priority) +
                     " is not a MessagePriority (LOW 0 .. CRITICAL 3)"};
    }
    v3::MessageHeader& h = *m.mutable_header();
    h.set_message_id(_next_id);
    if (h.timestamp_ms() == 0) {
        h.set_timestamp_ms(now.wall_ms);
    }
    if (h.connection_id().empty() && !_options.connection_id.empty()) {
        h.set_connection_id(_options.connection_id);
    }
    const std::size_t size = m.ByteSizeLong();
    if (size > _reader.max_message_size()) {
        return error{std::string(payload_name(m)) + " message of " + std::to_string(size) +
                     " bytes is above the maximum of " +
                     std::to_string(_reader.max_message_size()) + " bytes"};
    }
    _queue[static_cast<std::size_t>(priority)].push_back(std::move(m));
    _queued_bytes += size;
    return _next_id++;
}

bool channel::wants_write() const noexcept {
    if (closed()) {
        return false;
    }
    return _out_pos < _out.size() || (_phase == phase::open && queued() > 0);
}

void channel::record_drop(bool outgoing, const KCPMessage& m, std::string reason) {
    if (_drops.size() == max_drop_records) {
        _drops.pop_front();
    }
    _drops.push_back({outgoing, m.header().message_id(), std::string(payload_name(m)),
                      std::move(reason)});
}

bool channel::expired_in_queue(const KCPMessage& m, clock_sample now) {
    const v3::MessageHeader& h = m.header();
    if (h.ttl_seconds() == 0) {
        return false;
    }
    const std::uint64_t expiry = h.timestamp_ms() + std::uint64_t{h.ttl_seconds()} * 1000;
    if (now.wall_ms <= expiry) {
        return false;
    }
    ++_counters.expired_out;
    record_drop(true, m,
                describe(m) + " expired before it was sent: " +
                    std::to_string(now.wall_ms - h.timestamp_ms()) + " ms after its timestamp, ttl " +
                    std::to_string(h.ttl_seconds()) + " s");
    return true;
}

void channel::drop_expired(clock_sample now) {
    for (auto& q : _queue) {
        std::erase_if(q, [&](const KCPMessage& m) {
            if (!expired_in_queue(m, now)) {
                return false;
            }
            _queued_bytes -= m.ByteSizeLong();
            return true;
        });
    }
}

void channel::fill_output(clock_sample now) {
    // What the socket took is dropped here, so a peer that never lets the buffer drain
    // completely does not make it grow.
    if (_out_pos == _out.size() || _out_pos >= output_batch) {
        _out.erase(0, _out_pos);
        _out_pos = 0;
    }
    // TLS: frames gather in _plain (empty between calls) and go out as one record when it is
    // full or the loop ends.
    const auto seal = [this] {
        if (_plain.empty()) {
            return true;
        }
        const bool ok = _tls->write(_plain);
        _plain.clear();
        _tls->take_ciphertext(_out);
        if (!ok) {
            fail(close_cause::tls_error, _tls->error());
        }
        return ok;
    };
    while (_out.size() - _out_pos + _plain.size() < output_batch) {
        auto q = std::find_if(_queue.rbegin(), _queue.rend(),
                              [](const std::deque<KCPMessage>& d) { return !d.empty(); });
        if (q == _queue.rend()) {
            break;
        }
        const KCPMessage m = std::move(q->front());
        q->pop_front();
        _queued_bytes -= m.ByteSizeLong();
        if (expired_in_queue(m, now)) {
            continue;
        }
        if (!append_frame(_tls ? _plain : _out, m)) {
            record_drop(true, m, describe(m) + " could not be serialized");
            continue;
        }
        ++_counters.messages_out;
        if (_tls && _plain.size() >= tls_record_plaintext && !seal()) {
            return;
        }
    }
    if (_tls) {
        (void)seal();
    }
}

bool channel::flush_output() {
    while (_out_pos < _out.size()) {
        const ssize_t n = ::send(_fd.fd, _out.data() + _out_pos, _out.size() - _out_pos,
                                 MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n > 0) {
            _out_pos += static_cast<std::size_t>(n);
            _counters.bytes_out += static_cast<std::uint64_t>(n);
            continue;
        }
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            return false;
        }
        fail(close_cause::socket_error, "send: " + errno_text(errno));
        return false;
    }
    _out.clear();
    _out_pos = 0;
    return true;
}

void channel::on_writable(clock_sample now) {
    while (!closed()) {
        if (_phase == phase::open) {
            fill_output(now);
        }
        if (closed() || _out_pos == _out.size() || !flush_output()) {
            break;
        }
        if (_phase != phase::open || queued() == 0) {
            break;
        }
    }
    if (!closed() && _closing && all_written()) {
        close(_closing_reason);
    }
}

// ---- receiving ------------------------------------------------------------------------------

void channel::deliver(clock_sample now) {
    KCPMessage m;
    bool delivered = false;
    for (;;) {
        const frame_reader::status st = _reader.next(m);
        if (st == frame_reader::status::need_more) {
            break;
        }
        if (st == frame_reader::status::error) {
            ++_counters.frames_rejected[static_cast<std::size_t>(_reader.error())];
            fail(close_cause::frame_error, _reader.reason());
            return;
        }
        delivered = true;
        _last_received = now.steady;
        const v3::MessageHeader& h = m.header();
        const std::uint64_t expiry = h.timestamp_ms() + std::uint64_t{h.ttl_seconds()} * 1000;
        if (h.ttl_seconds() != 0 && h.timestamp_ms() != 0 && now.wall_ms > expiry) {
            ++_counters.expired_in;
            record_drop(false, m,
                        describe(m) + " arrived expired: received " +
                            std::to_string(now.wall_ms - h.timestamp_ms()) +
                            " ms after its timestamp, ttl " + std::to_string(h.ttl_seconds()) +
                            " s");
            continue;
        }
        ++_counters.messages_in;
        _inbox.push_back(std::move(m));
        m = KCPMessage();
    }
    if (_reader.buffered() == 0) {
        _pending_since.reset();
    } else if (delivered || !_pending_since) {
        _pending_since = now.steady; // a new frame has begun
    }
}

void channel::take_plaintext(clock_sample now) {
    if (_phase == phase::handshaking) {
        const tls_session::status st = _tls->handshake();
        _tls->take_ciphertext(_out);
        if (st == tls_session::status::failed) {
            fail(close_cause::tls_error, _tls->error());
            return;
        }
        if (st != tls_session::status::ok) {
            return;
        }
        _phase = phase::open;
        _pending_since.reset();
        _last_received = now.steady;
    }
    _plain.clear();
    const tls_session::status st = _tls->read(_plain);
    _tls->take_ciphertext(_out);
    if (!_plain.empty()) {
        _reader.feed(_plain);
        _plain.clear();
        deliver(now);
    }
    if (closed()) {
        return;
    }
    if (st == tls_session::status::failed) {
        fail(close_cause::tls_error, _tls->error());
    } else if (st == tls_session::status::closed) {
        if (_reader.buffered() > 0) {
            ++_counters.frames_rejected[static_cast<std::size_t>(frame_error::truncated)];
            fail(close_cause::frame_error, "the peer ended TLS inside a frame (" +
                                               std::to_string(_reader.buffered()) +
                                               " bytes of it received)");
        } else {
            fail(close_cause::peer_closed, "the peer closed the session (TLS close_notify)");
        }
    }
}

void channel::on_readable(clock_sample now) {
    char buf[32 * 1024];
    std::size_t budget = read_budget;
    while (!closed() && budget > 0) {
        const ssize_t n = ::recv(_fd.fd, buf, sizeof buf, MSG_DONTWAIT);
        if (n > 0) {
            const auto got = static_cast<std::size_t>(n);
            _counters.bytes_in += got;
            budget -= std::min(budget, got);
            if (_tls) {
                _tls->put_ciphertext(buf, got);
                take_plaintext(now);
            } else {
                _reader.feed(buf, got);
                deliver(now);
            }
            continue;
        }
        if (n == 0) {
            if (_phase == phase::handshaking) {
                fail(close_cause::tls_error,
                     "the peer closed the connection during the TLS handshake");
            } else if (_reader.buffered() > 0) {
                ++_counters.frames_rejected[static_cast<std::size_t>(frame_error::truncated)];
                fail(close_cause::frame_error, "the peer closed the connection inside a frame (" +
                                                   std::to_string(_reader.buffered()) +
                                                   " bytes of it received)");
            } else {
                fail(close_cause::peer_closed, "the peer closed the connection");
            }
            return;
        }
        if (errno == EINTR) {
            continue;
        }
        if (errno != EAGAIN && errno != EWOULDBLOCK) {
            fail(close_cause::socket_error, "recv: " + errno_text(errno));
        }
        return;
    }
}

bool channel::receive(KCPMessage& out) {
    return take_front(_inbox, out);
}

bool channel::next_drop(dropped_message& out) {
    return take_front(_drops, out);
}

// ---- time and closing -----------------------------------------------------------------------

void channel::poll(clock_sample now) {
    if (closed()) {
        return;
    }
    const milliseconds read_timeout = _options.read_timeout;
    if (_pending_since && read_timeout.count() > 0 && now.steady - *_pending_since >= read_timeout) {
        if (_phase == phase::handshaking) {
            fail(close_cause::read_timeout,
                 "the TLS handshake did not complete within " + duration_text(read_timeout));
        } else {
            fail(close_cause::read_timeout, "a frame stayed incomplete for " +
                                                duration_text(read_timeout) + " (" +
                                                std::to_string(_reader.buffered()) +
                                                " bytes of it received)");
        }
        return;
    }
    const milliseconds idle = _options.idle_timeout;
    if (idle.count() > 0 && now.steady - _last_received >= idle) {
        fail(close_cause::idle_timeout, "no message received for " + duration_text(idle));
        return;
    }
    if (_closing && now.steady >= _closing_deadline) {
        close(_closing_reason);
        return;
    }
    drop_expired(now);
    if (wants_read()) {
        _backlog_since.reset();
    } else if (!_backlog_since) {
        _backlog_since = now.steady;
    } else if (now.steady - *_backlog_since >= backlog_time()) {
        fail(close_cause::send_backlog, std::to_string(unsent_bytes()) + " bytes of answers unsent for " +
                                            duration_text(backlog_time()) + " (max_unsent_bytes " +
                                            std::to_string(_options.max_unsent_bytes) + "): the peer does not read them");
    }
}

std::chrono::steady_clock::time_point channel::next_deadline() const noexcept {
    steady_time next = steady_time::max();
    if (closed()) {
        return next;
    }
    if (_pending_since && _options.read_timeout.count() > 0) {
        next = std::min(next, *_pending_since + _options.read_timeout);
    }
    if (_options.idle_timeout.count() > 0) {
        next = std::min(next, _last_received + _options.idle_timeout);
    }
    if (_closing) {
        next = std::min(next, _closing_deadline);
    }
    if (_backlog_since) {
        next = std::min(next, *_backlog_since + backlog_time());
    }
    return next;
}

void channel::finish_close(close_cause cause, std::string reason) {
    _counters.unsent_on_close += queued();
    for (auto& q : _queue) {
        q.clear();
    }
    _queued_bytes = 0;
    _backlog_since.reset();
    // A TLS alert or close_notify, if the socket takes it now; the session ends either way.
    if (_out_pos < _out.size()) {
        (void)::send(_fd.fd, _out.data() + _out_pos, _out.size() - _out_pos,
                     MSG_NOSIGNAL | MSG_DONTWAIT);
    }
    _out.clear();
    _out_pos = 0;
    ::shutdown(_fd.fd, SHUT_RDWR);
    _phase = phase::closed;
    _cause = cause;
    _close_reason = std::move(reason);
    _pending_since.reset();
}

void channel::fail(close_cause cause, std::string reason) {
    if (closed()) {
        return;
    }
    if (_tls) {
        _tls->take_ciphertext(_out); // the alert that tells the peer why
    }
    finish_close(cause, std::move(reason));
}

void channel::close(std::string reason) {
    if (closed()) {
        return;
    }
    if (_tls && _phase == phase::open) {
        _tls->shutdown();
        _tls->take_ciphertext(_out);
    }
    finish_close(close_cause::local, std::move(reason));
}

std::chrono::milliseconds channel::backlog_time() const noexcept {
    return _options.read_timeout.count() > 0 ? _options.read_timeout : default_closing_time;
}

void channel::close_when_sent(std::string reason, clock_sample now) {
    if (closed() || _closing) {
        return;
    }
    _closing = true;
    _closing_reason = std::move(reason);
    const milliseconds limit =
        _options.read_timeout.count() > 0 ? _options.read_timeout : default_closing_time;
    _closing_deadline = now.steady + limit;
    if (all_written()) {
        close(_closing_reason);
    }
}

} // namespace kwik::kcp
