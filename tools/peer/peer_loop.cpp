// kwik-peer's data thread; see peer_loop.hpp.
#include "tools/peer/peer_loop.hpp"

#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>

namespace kwik::peer {

namespace {

using transport::time_ns;

// epoll tags: sockets are 0..N-1.
constexpr std::uint64_t tag_timer = ~std::uint64_t{0};
constexpr std::uint64_t tag_wake = ~std::uint64_t{0} - 1;

// Batches read from one socket before the loop flushes (ACKs and new data go out between them):
// 8 x 32 datagrams.
constexpr int rx_batches_per_event = 8;

// Receive buffers: 2 KiB holds a 1,400-byte path packet; the pool grows 1,024 at a time up to
// 64 Ki buffers (128 MiB), enough for the reassembler's 16 Ki segments, the batches in flight,
// a full window and the echo endpoint's copies. Transmit buffers: 16 KiB chunks of stream data
// (11 packets each; engine::endpoint's answer chunk), up to 16 Ki (256 MiB); a writer that
// finds the pool empty waits for ACKs to free buffers.
constexpr std::uint32_t rx_buffer_size = 2048;
constexpr std::uint32_t tx_buffer_size = 16 * 1024;

const char* event_name(transport::path_event e) {
    switch (e) {
    case transport::path_event::up:
        return "up";
    case transport::path_event::suspect:
        return "suspect";
    case transport::path_event::failed:
        return "failed";
    case transport::path_event::recovered:
        return "recovered";
    }
    return "unknown";
}

const char* status_name(transport::path_status s) {
    switch (s) {
    case transport::path_status::active:
        return "active";
    case transport::path_status::suspect:
        return "suspect";
    case transport::path_status::failed:
        return "failed";
    case transport::path_status::removed:
        return "removed";
    }
    return "unknown";
}

} // namespace

peer_loop::peer_loop(const loop_settings& settings)
    : _settings(settings), _rx_pool(rx_buffer_size, 1024, 64 * 1024), _tx_pool(tx_buffer_size, 64, 16 * 1024) {}

peer_loop::~peer_loop() {
    // The endpoint and the transfer hold tx buffers and refer to the connection: first.
    _endpoint.reset();
    _transfer.reset();
    _conn.reset();
    _paths.reset();
    for (int fd : {_epoll, _timer, _wake}) {
        if (fd >= 0) {
            ::close(fd);
        }
    }
}

time_ns peer_loop::clock_now() noexcept {
    timespec ts{};
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<time_ns>(ts.tv_sec) * transport::sec + static_cast<time_ns>(ts.tv_nsec);
}

result<std::unique_ptr<peer_loop>> peer_loop::create(const loop_settings& settings) {
    std::unique_ptr<peer_loop> loop(new peer_loop(settings));
    auto opened = loop->open();
    if (!opened) {
        return opened.failure();
    }
    return loop;
}

result<void> peer_loop::open() {
    auto paths = udp_paths::open(_settings.paths, _rx_pool);
    if (!paths) {
        return paths.failure();
    }
    _paths = std::move(*paths);
    _epoll = epoll_create1(EPOLL_CLOEXEC);
    _timer = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    _wake = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (_epoll < 0 || _timer < 0 || _wake < 0) {
        return error{std::string("epoll/timerfd/eventfd: ") + std::strerror(errno), errno};
    }
    auto watch = [this](int fd, std::uint64_t tag) {
        epoll_event ev{};
        ev.events = EPOLLIN;
        ev.data.u64 = tag;
        return epoll_ctl(_epoll, EPOLL_CTL_ADD, fd, &ev) == 0;
    };
    bool ok = watch(_timer, tag_timer) && watch(_wake, tag_wake);
    for (std::size_t i = 0; i < _paths->count(); ++i) {
        ok = ok && watch(_paths->fd(i), i);
    }
    if (!ok) {
        return error{std::string("epoll_ctl: ") + std::strerror(errno), errno};
    }
    _watching_output.assign(_paths->count(), false);
    _last_path_bytes.assign(_paths->count(), 0);
    if (_settings.side == transport::role::client) {
        auto t = transfer::create(*_settings.transfer, _tx_pool);
        if (!t) {
            return t.failure();
        }
        _transfer = std::move(*t);
        _report.mode = std::string(to_string(_settings.transfer->mode));
    } else {
        _report.role = "server";
        _report.mode = std::string(engine::to_string(_settings.endpoint.kind));
    }
    _start = clock_now(); // events (the paths' "up") count from here
    build_connection(_start);
    return {};
}

std::uint16_t peer_loop::local_port(std::size_t i) const {
    const std::string text = _paths->local_text(i);
    return static_cast<std::uint16_t>(std::stoul(text.substr(text.rfind(':') + 1)));
}

void peer_loop::build_connection(time_ns now) {
    transport::connection_config c;
    c.side = _settings.side;
    c.scheduler.strategy = _settings.strategy;
    c.tx_ops = &packet_pool::ops;
    c.rx_ops = &packet_pool::ops;
    transport::connection_callbacks cb;
    cb.ctx = this;
    cb.transmit = cb_transmit;
    cb.allocate = cb_allocate;
    cb.on_data = cb_data;
    cb.on_readable = cb_readable;
    cb.on_stream_finished = cb_finished;
    cb.on_stream_opened = cb_opened;
    cb.on_stream_reset = cb_reset;
    cb.on_path_event = cb_path_event;
    cb.on_closed = cb_closed;
    _conn = std::make_unique<transport::connection>(c, cb, now);
    _rx_at_build = _rx_packets_total;
    for (std::size_t i = 0; i < _settings.paths.size(); ++i) {
        _conn->add_path(i + 1, now);
        if (_settings.paths[i].standby) {
            _conn->set_path_standby(i + 1, true);
        }
    }
    if (_settings.side == transport::role::server) {
        engine::endpoint_config ec = _settings.endpoint;
        ec.connection_id = ++_connections;
        _endpoint = std::make_unique<engine::endpoint>(ec, *_conn, engine::tx_allocator{this, cb_allocate, &packet_pool::ops});
    } else {
        ++_connections;
    }
}

// Server: the connection ended; the next client gets a fresh one on the same sockets.
void peer_loop::drop_connection() {
    _endpoint.reset();
    _conn.reset();
    for (std::size_t i = 0; i < _paths->count(); ++i) {
        _paths->forget_remote(i);
    }
}

double peer_loop::seconds(time_ns t) const noexcept { return t > _start ? static_cast<double>(t - _start) / 1e9 : 0.0; }

void peer_loop::record(transport::path_id path, std::string event, std::string source, std::string reason) {
    _report.events.push_back({seconds(clock_now()), path, std::move(event), std::move(source), std::move(reason)});
}

// ---- callbacks (data thread, inside on_datagram/flush) ----

void peer_loop::cb_transmit(void* ctx, transport::path_id path, std::span<const std::uint8_t> packet) {
    auto* self = static_cast<peer_loop*>(ctx);
    if (path >= 1 && path <= self->_paths->count()) {
        self->_paths->queue(path - 1, packet);
    }
}

// Data the server's endpoint sends (echo copies the delivered pieces, about one packet each;
// pattern and file answers come in 16 KiB chunks) and inflated frames: a piece that fits a
// receive buffer takes one, so a 1.4 KB echo copy does not hold a 16 KiB buffer.
void* peer_loop::cb_allocate(void* ctx, std::size_t size, std::uint8_t** data) {
    auto* self = static_cast<peer_loop*>(ctx);
    pooled_buffer* b = size <= rx_buffer_size ? self->_rx_pool.get(size) : self->_tx_pool.get(size);
    if (b == nullptr) {
        return nullptr;
    }
    *data = b->data();
    return b;
}

void peer_loop::cb_data(void* ctx, transport::stream_id id, std::uint64_t offset, std::span<const std::uint8_t> data) {
    auto* self = static_cast<peer_loop*>(ctx);
    if (self->_endpoint) {
        self->_endpoint->on_data(id, offset, data);
    }
}

void peer_loop::cb_readable(void* ctx, transport::stream_id id) {
    auto* self = static_cast<peer_loop*>(ctx);
    if (self->_endpoint) {
        self->_endpoint->on_readable(id);
    } else if (self->_transfer) {
        self->_transfer->on_readable(*self->_conn, id);
    }
}

void peer_loop::cb_finished(void* ctx, transport::stream_id id) {
    auto* self = static_cast<peer_loop*>(ctx);
    if (self->_endpoint) {
        self->_endpoint->on_finished(id);
    } else if (self->_transfer) {
        self->_transfer->on_finished(*self->_conn, id);
    }
}

void peer_loop::cb_opened(void* ctx, transport::stream_id id) {
    auto* self = static_cast<peer_loop*>(ctx);
    if (self->_endpoint) {
        self->_endpoint->on_stream_opened(id);
    }
}

void peer_loop::cb_reset(void* ctx, transport::stream_id id, std::uint64_t code) {
    auto* self = static_cast<peer_loop*>(ctx);
    if (self->_endpoint) {
        self->_endpoint->on_reset(id, code);
    } else if (self->_transfer) {
        self->_transfer->on_reset(id, code);
    }
}

void peer_loop::cb_path_event(void* ctx, transport::path_id path, transport::path_event e) {
    static_cast<peer_loop*>(ctx)->record(path, event_name(e), "transport", "");
}

void peer_loop::cb_closed(void* ctx, transport::close_code code, std::string_view reason) {
    auto* self = static_cast<peer_loop*>(ctx);
    std::string why = std::string(reason.empty() ? "no reason given" : reason) + " (code " +
                      std::to_string(static_cast<std::uint64_t>(code)) + ")";
    self->_closed_reason = why;
    self->record(0, "closed", "transport", why);
}

void peer_loop::on_received(void* ctx, std::size_t path, pooled_buffer* buffer, std::uint32_t length,
                            bool ecn_ce) noexcept {
    auto* self = static_cast<peer_loop*>(ctx);
    ++self->_rx_packets_total;
    if (self->_conn) {
        self->_conn->on_datagram(path + 1, {buffer->data(), length}, buffer, ecn_ce, self->_now);
    }
    packet_pool::release(buffer); // the reassembler took its own references
}

// ---- actions from other threads ----

void peer_loop::post(loop_action a) {
    {
        std::lock_guard lock(_actions_mutex);
        _actions.push_back(std::move(a));
    }
    const std::uint64_t one = 1;
    (void)!::write(_wake, &one, sizeof one);
}

void peer_loop::request_stop() noexcept {
    _stop.store(true, std::memory_order_relaxed);
    const std::uint64_t one = 1;
    (void)!::write(_wake, &one, sizeof one);
}

void peer_loop::handle_actions(time_ns now) {
    std::uint64_t count = 0;
    (void)!::read(_wake, &count, sizeof count);
    std::vector<loop_action> actions;
    {
        std::lock_guard lock(_actions_mutex);
        actions.swap(_actions);
    }
    for (loop_action& a : actions) {
        switch (a.what) {
        case loop_action::kind::set_standby:
            if (_conn) {
                _conn->set_path_standby(a.path, a.flag);
            }
            break;
        case loop_action::kind::set_weight:
            if (_conn) {
                _conn->set_path_weight(a.path, a.weight);
            }
            break;
        case loop_action::kind::set_strategy:
            if (_conn) {
                _conn->set_strategy(a.strategy);
            }
            break;
        case loop_action::kind::remove_path:
            if (_conn) {
                _conn->remove_path(a.path, now);
            }
            break;
        case loop_action::kind::install_key:
            if (_conn) {
                (void)_conn->install_key(a.key);
                if (_settings.require_encryption) {
                    _conn->set_require_encryption(true);
                }
            }
            break;
        case loop_action::kind::event:
            record(a.path, a.event, "kcp", a.reason);
            break;
        case loop_action::kind::fail:
            if (_transfer) {
                _transfer->fail(a.reason);
            }
            break;
        case loop_action::kind::stop:
            _stop.store(true, std::memory_order_relaxed);
            break;
        }
    }
}

// ---- the loop ----

void peer_loop::receive(std::size_t i, time_ns now) noexcept {
    _now = now;
    for (int b = 0; b < rx_batches_per_event; ++b) {
        if (_paths->receive(i, &peer_loop::on_received, this) < udp_paths::batch) {
            break;
        }
    }
}

// One timerfd, armed at the earliest of the connection's wakeup, the next sample and the
// deadline; re-armed only when that time changes. A time already due is handled by polling
// epoll without waiting (run()).
void peer_loop::arm(time_ns wake) noexcept {
    if (wake == _armed) {
        return;
    }
    _armed = wake;
    itimerspec its{};
    if (wake != transport::never) {
        its.it_value.tv_sec = static_cast<time_t>(wake / transport::sec);
        its.it_value.tv_nsec = static_cast<long>(wake % transport::sec);
    }
    (void)timerfd_settime(_timer, TFD_TIMER_ABSTIME, &its, nullptr);
}

void peer_loop::watch_output() noexcept {
    for (std::size_t i = 0; i < _paths->count(); ++i) {
        const bool want = _paths->blocked(i);
        if (want == _watching_output[i]) {
            continue;
        }
        epoll_event ev{};
        ev.events = EPOLLIN | (want ? EPOLLOUT : 0u);
        ev.data.u64 = i;
        (void)epoll_ctl(_epoll, EPOLL_CTL_MOD, _paths->fd(i), &ev);
        _watching_output[i] = want;
    }
}

// The transfer's main direction: what the client receives (echo, download, get), what it
// sends (upload), what the server receives.
std::uint64_t peer_loop::main_bytes() const noexcept {
    if (_transfer) {
        return _transfer->mode() == transfer_mode::upload ? (_conn ? _conn->counters().stream_bytes_sent : 0)
                                                          : _transfer->bytes_received();
    }
    return _endpoint ? _endpoint->counters().bytes_received : 0;
}

void peer_loop::sample(time_ns now) {
    timeline_sample s;
    s.t = seconds(now);
    const double dt = static_cast<double>(now - _last_sample) / 1e9;
    if (_transfer) {
        s.bytes_received = _transfer->bytes_received();
        s.bytes_sent = _transfer->bytes_sent();
    } else if (_endpoint) {
        s.bytes_received = _endpoint->counters().bytes_received;
        s.bytes_sent = _endpoint->counters().bytes_sent;
    }
    const std::uint64_t main = main_bytes();
    s.goodput_mbps = dt > 0 ? static_cast<double>(main - std::min(main, _last_main_bytes)) * 8 / dt / 1e6 : 0;
    _last_main_bytes = main;
    const bool upload = _transfer && _transfer->mode() == transfer_mode::upload;
    for (std::size_t i = 0; i < _paths->count(); ++i) {
        transport::path_info info;
        std::uint64_t bytes = _last_path_bytes[i];
        std::string state = "removed";
        if (_conn) {
            for (std::size_t k = 0; _conn->path_info_at(k, info); ++k) {
                if (info.id == i + 1) {
                    bytes = upload ? info.counters.bytes_sent : info.counters.bytes_received;
                    state = status_name(info.status);
                    if (info.standby) {
                        state = info.status == transport::path_status::active ? "standby" : state + ", standby";
                    }
                    break;
                }
            }
        }
        const std::uint64_t delta = bytes - std::min(bytes, _last_path_bytes[i]);
        s.path_mbps.emplace_back(i + 1, dt > 0 ? static_cast<double>(delta) * 8 / dt / 1e6 : 0);
        s.path_states.push_back(state);
        _last_path_bytes[i] = bytes;
    }
    _last_sample = now;
    if (_settings.progress_interval_ms != 0) {
        const std::string line = progress_line(s) + "\n";
        std::fputs(line.c_str(), stderr);
    }
    _report.timeline.push_back(std::move(s));
}

int peer_loop::run() {
    _now = clock_now();
    _last_sample = _start;
    _sample_interval = static_cast<time_ns>(_settings.progress_interval_ms != 0 ? _settings.progress_interval_ms
                                                                                : _settings.timeline_interval_ms) *
                       transport::ms;
    _next_sample = _start + _sample_interval;
    if (_settings.timeout_ms != 0) {
        _deadline = _start + _settings.timeout_ms * transport::ms;
    }
    if (_transfer && !_transfer->start(*_conn)) {
        finish_report(_start);
        return 1;
    }
    std::array<epoll_event, 32> events{};
    bool due = true;
    for (;;) {
        const int n = epoll_wait(_epoll, events.data(), static_cast<int>(events.size()), due ? 0 : -1);
        const time_ns now = clock_now();
        _now = now;
        for (int k = 0; k < n; ++k) {
            const std::uint64_t tag = events[k].data.u64;
            if (tag == tag_timer) {
                std::uint64_t expirations = 0;
                (void)!::read(_timer, &expirations, sizeof expirations);
                _armed = 0;
            } else if (tag == tag_wake) {
                handle_actions(now);
            } else if ((events[k].events & (EPOLLIN | EPOLLERR)) != 0) {
                // EPOLLERR alone is a pending socket error (ECONNREFUSED: an ICMP port
                // unreachable from the remote); epoll reports it on every call until a receive
                // (or send) takes it, so it is read here, or the loop would spin on it.
                receive(static_cast<std::size_t>(tag), now);
            }
        }
        if (_stop.load(std::memory_order_relaxed)) {
            if (_transfer) {
                _transfer->fail("stopped by a signal before the transfer completed");
            }
            break;
        }
        if (_transfer) {
            _transfer->pump(*_conn);
        } else if (_endpoint) {
            _endpoint->pump();
        }
        _conn->flush(now);
        _paths->send_all();
        watch_output();
        if (now >= _next_sample) {
            sample(now);
            _next_sample = std::max(_next_sample + _sample_interval, now + 1);
        }
        if (_transfer) {
            const bool complete = _transfer->complete(*_conn);
            if (!complete && !_transfer->failed()) {
                if (_conn->closed()) {
                    _transfer->fail("the server closed the connection: " + _closed_reason);
                } else if (now >= _deadline) {
                    _transfer->fail("timed out after " + std::to_string(_settings.timeout_ms / 1000) + " s (--timeout-s)" +
                                    (_rx_packets_total == 0 ? ": no packet from the server on any path"
                                                            : ": the transfer did not complete"));
                }
            }
            if (complete || _transfer->failed()) {
                if (!_conn->closed()) {
                    _conn->close(transport::close_code::no_error,
                                 _transfer->failed() ? "kwik-peer: transfer failed" : "kwik-peer: transfer complete", now);
                    _conn->flush(now);
                    _paths->send_all();
                }
                break;
            }
        } else if (_conn->closed()) {
            const bool served = _rx_packets_total != _rx_at_build;
            if (served && _settings.exit_after_connection) {
                break;
            }
            if (served) {
                finish_report(now); // the report describes the last connection
            } else {
                // Idle timeout before any client came: not a connection; wait on a fresh one.
                --_connections;
                _report.events.pop_back(); // its "closed" record
            }
            drop_connection();
            build_connection(now);
        }
        const time_ns wake = std::min({_conn->next_wakeup(), _next_sample, _deadline});
        due = wake <= clock_now();
        if (!due) {
            arm(wake);
        }
    }
    finish_report(clock_now());
    return _transfer && !_transfer->verified() ? 1 : 0;
}

void peer_loop::finish_report(time_ns now) {
    run_report& r = _report;
    r.seconds = seconds(now);
    if (_transfer) {
        r.error = _transfer->failure();
        r.bytes_sent = _transfer->bytes_sent();
        r.bytes_received = _transfer->bytes_received();
        r.sha256_sent = _transfer->sha256_sent();
        r.sha256_received = _transfer->sha256_received();
        r.verified = _transfer->verified();
        r.streams = _transfer->streams();
        const std::uint64_t main = _transfer->mode() == transfer_mode::upload ? r.bytes_sent : r.bytes_received;
        r.goodput_mbps = r.seconds > 0 ? static_cast<double>(main) * 8 / r.seconds / 1e6 : 0;
    } else if (_endpoint) {
        r.bytes_sent = _endpoint->counters().bytes_sent;
        r.bytes_received = _endpoint->counters().bytes_received;
        r.goodput_mbps = r.seconds > 0 ? static_cast<double>(r.bytes_received) * 8 / r.seconds / 1e6 : 0;
    }
    r.paths.clear();
    r.drops.clear();
    for (std::size_t i = 0; i < _paths->count(); ++i) {
        path_report p;
        p.id = i + 1;
        p.local = _paths->local_text(i);
        p.remote = _paths->remote_text(i);
        p.standby = _settings.paths[i].standby;
        p.state = "removed";
        p.socket = _paths->counters(i);
        transport::path_info info;
        for (std::size_t k = 0; _conn && _conn->path_info_at(k, info); ++k) {
            if (info.id == p.id) {
                p.standby = info.standby;
                p.state = status_name(info.status);
                p.bytes_sent = info.counters.bytes_sent;
                p.bytes_received = info.counters.bytes_received;
                p.packets_lost = info.counters.packets_lost;
                p.retransmitted_frames = info.counters.retransmitted_frames;
                p.srtt_us = info.srtt / transport::us;
                p.cwnd = info.cwnd;
            }
        }
        const auto add = [&r](const char* name, std::uint64_t v) {
            if (v != 0) {
                r.drops[name] += v;
            }
        };
        add("socket_kernel_overflow", p.socket.kernel_drops);
        add("socket_rx_truncated", p.socket.rx_truncated);
        add("socket_rx_foreign", p.socket.rx_foreign);
        add("socket_tx_dropped", p.socket.tx_dropped);
        add("socket_tx_errors", p.socket.tx_errors);
        r.paths.push_back(std::move(p));
    }
    if (_conn) {
        const transport::connection_counters& c = _conn->counters();
        for (std::size_t k = 0; k < kdp::drop_reason_count; ++k) {
            if (c.drops[k] != 0) {
                r.drops[std::string(kdp::to_string(static_cast<kdp::drop_reason>(k)))] += c.drops[k];
            }
        }
        r.counters["stream_bytes_sent"] = c.stream_bytes_sent;
        r.counters["stream_bytes_retransmitted"] = c.stream_bytes_retransmitted;
        r.counters["stream_bytes_delivered"] = c.stream_bytes_delivered;
        r.counters["duplicate_packets"] = c.duplicate_packets;
        r.counters["flow_blocked"] = c.flow_blocked;
        r.counters["encrypted_frames_sent"] = c.encrypted_frames_sent;
        r.counters["encrypted_frames_received"] = c.encrypted_frames_received;
    }
    if (_endpoint) {
        const engine::endpoint_counters& e = _endpoint->counters();
        r.counters["endpoint_streams"] = e.streams;
        r.counters["endpoint_requests"] = e.requests;
        r.counters["endpoint_rejected"] = e.rejected;
        r.counters["endpoint_io_errors"] = e.io_errors; // a buffer could not be had: data lost
    }
    r.counters["connections"] = _connections;
    r.counters["rx_pool_buffers"] = _rx_pool.stats().buffers;
    r.counters["rx_pool_exhausted"] = _rx_pool.stats().exhausted;
    r.counters["tx_pool_buffers"] = _tx_pool.stats().buffers;
    r.counters["tx_pool_oversized"] = _tx_pool.stats().oversized;
}

} // namespace kwik::peer
