// The worker's control side, between bursts: commands from the main lcore's mailbox, one
// apply_* per worker_op; removals that drain before they finish; answers and events back
// (path up/down, unknown path, connection closed); the worker's counters into its block of the
// shared region. The packet side is worker.cpp. Everything here runs on the worker's lcore
// (or on the main lcore while the worker is not running: apply_commands_now, publish_counters).
#include <rte_hash_crc.h>

#include <openssl/crypto.h>

#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <ctime>

#include "dataplane/engine/worker.hpp"

namespace kwik::engine {

namespace {

// Removals in progress are looked at this often, not every loop: each look copies path state.
constexpr transport::time_ns drain_check_interval = 1 * transport::ms;
// Connections whose counters one loop publishes: a table of thousands is spread over loops.
constexpr std::size_t publish_slice_size = 64;

static_assert(static_cast<int>(transport::path_status::active) == 0 && static_cast<int>(transport::path_status::suspect) == 1 &&
              static_cast<int>(transport::path_status::failed) == 2 && static_cast<int>(transport::path_status::removed) == 3,
              "api::path_counters.status uses the transport's numbering");
static_assert(static_cast<int>(api::scheduler_strategy::min_rtt) == static_cast<int>(transport::schedule_strategy::min_rtt) &&
              static_cast<int>(api::scheduler_strategy::weighted) == static_cast<int>(transport::schedule_strategy::weighted) &&
              static_cast<int>(api::scheduler_strategy::round_robin) == static_cast<int>(transport::schedule_strategy::round_robin) &&
              static_cast<int>(api::scheduler_strategy::redundant) == static_cast<int>(transport::schedule_strategy::redundant));
static_assert(static_cast<std::uint8_t>(api::stream_priority::normal) == static_cast<std::uint8_t>(kdp::priority::normal) &&
              static_cast<std::uint8_t>(api::stream_priority::high) == static_cast<std::uint8_t>(kdp::priority::high) &&
              static_cast<std::uint8_t>(api::stream_priority::critical) == static_cast<std::uint8_t>(kdp::priority::critical) &&
              static_cast<std::uint8_t>(api::stream_priority::control) == static_cast<std::uint8_t>(kdp::priority::control));

// Bytes in flight on one path, or on all of them (id 0).
std::uint64_t in_flight(const transport::connection& c, transport::path_id id) noexcept {
    std::uint64_t n = 0;
    transport::path_info info;
    for (std::size_t k = 0; c.path_info_at(k, info); ++k) {
        if (id == 0 || info.id == id) {
            n += info.bytes_in_flight;
        }
    }
    return n;
}

} // namespace

// ---------------------------------------------------------------------------------------------
// The mailbox

void worker::apply_commands(transport::time_ns now) noexcept {
    if (!_unsent.empty()) {
        flush_unsent();
    }
    // A few per loop: a burst of commands must not stall the packets behind them.
    constexpr unsigned per_loop = 8;
    std::array<worker_command, per_loop> cmds;
    const unsigned n = _config.mailbox.take_commands(cmds.data(), per_loop);
    for (unsigned i = 0; i < n; ++i) {
        apply(cmds[i], now);
        cleanse_key(cmds[i].cmd);
        ++_counters.commands_applied;
    }
}

void worker::apply_commands_now(transport::time_ns now) noexcept {
    while (_config.mailbox.valid() && rte_ring_count(_config.mailbox.commands) != 0) {
        apply_commands(now);
    }
    // No loop will publish the rest of the tables: all of it now, then the answers.
    if (_config.counters != nullptr) {
        while (_publish_cursor < _conns.size()) {
            publish_slice(now);
        }
        answer_counters_requests();
    }
    flush_unsent();
}

void worker::apply(const worker_command& wc, transport::time_ns now) noexcept {
    using api::result_status;
    if (wc.op == worker_op::install_connection) {
        apply_install(wc);
        return;
    }
    if (wc.op == worker_op::publish_counters) {
        if (_config.counters == nullptr) {
            answer(wc, result_status::ok, {});
            return;
        }
        // counters_ready promises the region as of the request, the connection and path tables
        // included, and those follow publish_counters a slice per loop (poll()): answered
        // after the last slice. (It was answered at once, so a worker with more connections
        // than one slice answered while the rest of its table was still as last published.)
        publish_counters(now);
        _counters_requests.push_back({wc.cmd, wc.token});
        return;
    }
    if (wc.op == worker_op::learn_neighbor) { // from the kernel's table: no connection, no answer
        if (wc.port < _neighbors.size()) {
            learn_neighbor(wc.port, wc.tuple.src, wc.mac, now);
        }
        return;
    }
    // The slot must hold the connection the command names: the main lcore reuses a slot only
    // after the worker handed its connection back, and this check keeps a late command from
    // touching a successor.
    connection_state* c = wc.connection < _conns.size() ? _conns[wc.connection].get() : nullptr;
    if (c == nullptr || c->id != api::connection_of(wc.cmd) || c->removing) {
        answer(wc, result_status::unknown_connection,
               c != nullptr && c->removing ? "the connection is being removed" : "the connection is not on this worker");
        return;
    }
    switch (wc.op) {
    case worker_op::remove_connection:
        return apply_remove_connection(*c, wc, now);
    case worker_op::add_path: {
        std::string why;
        const result_status s = apply_add_path(*c, wc, now, &why);
        answer(wc, s, why);
        return;
    }
    case worker_op::remove_path:
        return apply_remove_path(*c, wc, now);
    case worker_op::set_scheduler:
        c->conn->set_strategy(static_cast<transport::schedule_strategy>(wc.cmd.set_scheduler.strategy));
        answer(wc, result_status::ok, {});
        return;
    case worker_op::set_weights:
        return apply_set_weights(*c, wc);
    case worker_op::set_qos:
        return apply_set_qos(*c, wc);
    case worker_op::set_windows:
        return apply_set_windows(*c, wc, now);
    case worker_op::set_connection_keys:
        return apply_set_connection_keys(*c, wc, now);
    case worker_op::install_connection:
    case worker_op::publish_counters:
    case worker_op::learn_neighbor:
        return; // above
    }
}

// The connection was built on the main lcore; the worker takes ownership by storing the pointer.
void worker::apply_install(const worker_command& wc) noexcept {
    connection_ptr c(wc.ctx);
    std::string why;
    if (c == nullptr || c->index != wc.connection) {
        why = "install: the connection does not match its slot";
    } else if (install(c, &why)) {
        answer(wc, api::result_status::ok, {});
        return;
    }
    // The main lcore allocates slots, so a taken one is its bug: answer it, and hand the
    // connection back to be freed off this lcore.
    answer(wc.token, wc.cmd, api::result_status::internal_error, why, c.release());
}

void worker::apply_remove_connection(connection_state& c, const worker_command& wc, transport::time_ns now) noexcept {
    c.removing = true;
    c.removal = {wc.cmd, wc.token};
    c.drain_deadline = now + transport::time_ns{wc.cmd.remove_connection.drain_timeout_ms} * transport::ms;
    if (!c.draining) {
        c.draining = true;
        _draining.push_back(&c);
    }
    _next_drain_check = now; // look at once: drain_timeout_ms 0 finishes in this loop
}

// The worker's half of add_path: the transport learns the path, transmit() its route. The
// binding in the path table is the main lcore's half (it publishes it after this answered).
api::result_status worker::apply_add_path(connection_state& c, const worker_command& wc, transport::time_ns now,
                                          std::string* why) noexcept {
    using api::result_status;
    const api::add_path_body& a = wc.cmd.add_path;
    if (wc.port >= _config.ports.size()) {
        *why = "add_path: port " + std::to_string(wc.port) + " does not exist";
        return result_status::internal_error;
    }
    for (const auto& r : c.routes) {
        if (r.id == a.path_id) {
            *why = "add_path.path_id: " + std::to_string(a.path_id) + " exists in the connection";
            return result_status::already_exists;
        }
    }
    if (c.routes.size() == c.routes.capacity()) {
        *why = "add_path: the connection has its maximum of " + std::to_string(c.routes.capacity()) + " paths";
        return result_status::no_capacity;
    }
    // The loop's clock, as for every other call into the transport (it was the TSC read here,
    // which put a new path's timers on another clock than its connection's under a test's
    // virtual time).
    if (!c.conn->add_path(a.path_id, now)) {
        // Open paths are below the maximum and the id is not open: it was removed before.
        *why = "add_path.path_id: " + std::to_string(a.path_id) +
               " was removed from this connection; path ids are not reused (PROTOCOL.md 13.4)";
        return result_status::invalid_command;
    }
    // 1 is where the load balancer starts every path; another weight is pinned like set_weights.
    if (a.initial_weight >= 0 && a.initial_weight != 1.0f) {
        c.conn->set_path_weight(a.path_id, a.initial_weight);
    }
    if (a.max_bandwidth_mbps != 0) {
        c.conn->set_path_max_rate(a.path_id, std::uint64_t{a.max_bandwidth_mbps} * 1000000);
    }
    if (a.standby != 0) {
        c.conn->set_path_standby(a.path_id, true);
    }
    connection_state::route r;
    r.id = a.path_id;
    r.port = wc.port;
    r.tuple = wc.tuple;
    if (!_free_path_slots.empty()) {
        r.counters_slot = _free_path_slots.back();
        _free_path_slots.pop_back();
    }
    c.routes.push_back(r);
    touch(c); // the next flush probes the new path
    return result_status::ok;
}

void worker::apply_remove_path(connection_state& c, const worker_command& wc, transport::time_ns now) noexcept {
    for (auto& r : c.routes) {
        if (r.id == wc.cmd.remove_path.path_id && !r.removing) {
            r.removing = true;
            r.removal = {wc.cmd, wc.token};
            r.drain_deadline = now + transport::time_ns{wc.cmd.remove_path.drain_timeout_ms} * transport::ms;
            // No new stream data on it while it drains; its ACKs still arrive (still bound).
            c.conn->set_path_standby(r.id, true);
            if (!c.draining) {
                c.draining = true;
                _draining.push_back(&c);
            }
            _next_drain_check = now;
            return;
        }
    }
    answer(wc, api::result_status::unknown_path, "remove_path.path_id: not a path of the connection");
}

void worker::apply_set_weights(connection_state& c, const worker_command& wc) noexcept {
    const api::set_weights_body& b = wc.cmd.set_weights;
    // All or nothing: every path must exist before any weight changes.
    for (std::uint32_t i = 0; i < b.count; ++i) {
        bool found = false;
        for (const auto& r : c.routes) {
            found = found || (r.id == b.entries[i].path_id && !r.removing);
        }
        if (!found) {
            char reason[api::reason_size];
            std::snprintf(reason, sizeof reason, "set_weights.entries[%u].path_id: %llu is not in the connection", i,
                          static_cast<unsigned long long>(b.entries[i].path_id));
            answer(wc, api::result_status::unknown_path, reason);
            return;
        }
    }
    for (std::uint32_t i = 0; i < b.count; ++i) {
        c.conn->set_path_weight(b.entries[i].path_id, b.entries[i].weight);
        if (b.entries[i].standby != api::standby_change::keep) {
            c.conn->set_path_standby(b.entries[i].path_id, b.entries[i].standby == api::standby_change::set);
        }
    }
    answer(wc, api::result_status::ok, {});
}

void worker::apply_set_qos(connection_state& c, const worker_command& wc) noexcept {
    const api::set_qos_body& b = wc.cmd.set_qos;
    transport::qos_policy q;
    q.min_bandwidth_mbps = b.min_bandwidth_mbps;
    q.max_latency_ms = b.max_latency_ms;
    q.max_jitter_ms = b.max_jitter_ms;
    q.loss_threshold = b.loss_threshold;
    q.priority = static_cast<kdp::priority>(b.priority);
    if (c.conn->set_stream_qos(b.stream_id, q)) {
        answer(wc, api::result_status::ok, {});
    } else {
        answer(wc, api::result_status::no_capacity,
               "set_qos.stream_id: the stream is not open and the table of pending policies is full");
    }
}

void worker::apply_set_windows(connection_state& c, const worker_command& wc, transport::time_ns now) noexcept {
    const api::set_windows_body& b = wc.cmd.set_windows;
    bool ok = false;
    switch (b.scope) {
    case api::window_scope::connection:
        ok = c.conn->set_connection_window(b.window_bytes, now);
        break;
    case api::window_scope::stream:
        ok = c.conn->set_stream_window(b.stream_id, b.window_bytes, now);
        break;
    case api::window_scope::new_streams:
        ok = c.conn->set_initial_stream_window(b.window_bytes);
        break;
    }
    if (!ok) {
        answer(wc, api::result_status::invalid_command,
               b.scope == api::window_scope::stream ? "set_windows.stream_id: the stream is not open"
                                                    : "set_windows.window_bytes: refused by the transport");
        return;
    }
    touch(c); // a grown window goes out on the next flush
    answer(wc, api::result_status::ok, {});
}

// valid_until arrives as wall-clock time (KCP's valid_until_ms); the transport keeps time on the
// worker's monotonic clock, so the remaining lifetime is carried over once, here. A later step of
// the wall clock does not move the expiry.
void worker::apply_set_connection_keys(connection_state& c, const worker_command& wc, transport::time_ns now) noexcept {
    const api::set_connection_keys_body& b = wc.cmd.set_connection_keys;
    transport::aead_key k;
    k.phase = b.key_phase;
    k.max_frames = b.max_frames;
    timespec ts{};
    clock_gettime(CLOCK_REALTIME, &ts);
    // Nonces under this key start at the wall clock in ns (frame_protection.hpp aead_key): a
    // resync that installs the same key into a restarted kwikd cannot repeat a nonce.
    k.nonce_base = std::uint64_t(ts.tv_sec) * 1'000'000'000u + std::uint64_t(ts.tv_nsec);
    if (b.valid_until_unix_ms != 0) {
        const std::uint64_t wall_ms = std::uint64_t(ts.tv_sec) * 1000 + std::uint64_t(ts.tv_nsec) / 1'000'000;
        constexpr std::uint64_t max_lifetime_ms = 366ull * 24 * 3600 * 1000; // keeps the ns arithmetic exact
        if (b.valid_until_unix_ms > wall_ms && b.valid_until_unix_ms - wall_ms > max_lifetime_ms) {
            char reason[api::reason_size];
            std::snprintf(reason, sizeof reason,
                          "set_connection_keys.valid_until_unix_ms: %" PRIu64 " is more than 366 days after now (%" PRIu64
                          ")",
                          b.valid_until_unix_ms, wall_ms);
            answer(wc, api::result_status::invalid_command, reason);
            return;
        }
        if (b.valid_until_unix_ms <= wall_ms) {
            char reason[api::reason_size];
            std::snprintf(reason, sizeof reason,
                          "set_connection_keys.valid_until_unix_ms: %" PRIu64 " is not after now (%" PRIu64 ")",
                          b.valid_until_unix_ms, wall_ms);
            answer(wc, api::result_status::invalid_command, reason);
            return;
        }
        k.valid_until = now + (b.valid_until_unix_ms - wall_ms) * transport::ms;
    }
    std::memcpy(k.key.data(), b.key, k.key.size());
    const transport::key_install r = c.conn->install_key(k);
    OPENSSL_cleanse(k.key.data(), k.key.size());
    switch (r) {
    case transport::key_install::installed:
    case transport::key_install::unchanged:
        c.conn->set_require_encryption(b.require_encryption != 0);
        touch(c); // data held back for want of a key goes out on the next flush
        answer(wc, api::result_status::ok, {});
        return;
    case transport::key_install::phase_conflict: {
        char reason[api::reason_size];
        std::snprintf(reason, sizeof reason,
                      "set_connection_keys.key_phase: phase %u is the current key, with another key; use a new phase",
                      static_cast<unsigned>(b.key_phase));
        answer(wc, api::result_status::already_exists, reason);
        return;
    }
    case transport::key_install::no_memory:
        answer(wc, api::result_status::internal_error, "set_connection_keys: OpenSSL could not allocate a cipher context");
        return;
    }
}

bool worker::remove_route(connection_state& c, transport::path_id id, transport::time_ns now) noexcept {
    for (std::size_t i = 0; i < c.routes.size(); ++i) {
        if (c.routes[i].id != id) {
            continue;
        }
        c.conn->remove_path(id, now);
        if (c.routes[i].counters_slot != connection_state::no_counters_slot) {
            _config.counters->clear_path(c.routes[i].counters_slot);
            _free_path_slots.push_back(c.routes[i].counters_slot);
        }
        c.routes.erase(c.routes.begin() + static_cast<std::ptrdiff_t>(i));
        return true;
    }
    return false;
}

void worker::touch(connection_state& c) noexcept {
    if (!c.touched) {
        c.touched = true;
        _touched.push_back(&c);
    }
}

// ---------------------------------------------------------------------------------------------
// Removals in progress: a path or connection is done when nothing of it is in flight (and the
// endpoint is idle), when the transport closed the connection, or at its deadline.

void worker::poll_draining(transport::time_ns now) noexcept {
    if (now < _next_drain_check) {
        return;
    }
    _next_drain_check = now + drain_check_interval;
    std::size_t keep = 0;
    for (std::size_t i = 0; i < _draining.size(); ++i) {
        connection_state& c = *_draining[i];
        const bool closed = c.conn->closed();
        bool still = false;
        for (std::size_t r = 0; r < c.routes.size();) {
            auto& route = c.routes[r];
            if (!route.removing) {
                ++r;
                continue;
            }
            const bool drained = closed || in_flight(*c.conn, route.id) == 0;
            if (!drained && now < route.drain_deadline) {
                still = true;
                ++r;
                continue;
            }
            const deferred_answer removal = route.removal;
            const transport::path_id id = route.id;
            remove_route(c, id, now); // erases c.routes[r]
            answer(removal.token, removal.cmd, api::result_status::ok, {});
            raise(api::make_path_down(c.id, id, api::path_down_kind::removed,
                                      drained ? "removed by the control plane"
                                              : "removed by the control plane at its drain timeout; what was in "
                                                "flight on it is sent again on the other paths"));
        }
        if (c.removing) {
            if (closed || (in_flight(*c.conn, 0) == 0 && c.ep->idle()) || now >= c.drain_deadline) {
                finish_removal(c, now); // c is gone after this
                continue;
            }
            still = true;
        }
        if (still) {
            _draining[keep++] = &c;
        } else {
            c.draining = false;
        }
    }
    _draining.resize(keep);
}

// Closes the connection (CONNECTION_CLOSE on its paths), takes it off this worker and hands it
// back to the main lcore, which removes its bindings and frees it. Path removals still
// draining are answered first: the main lcore completes them while it still knows the paths.
void worker::finish_removal(connection_state& c, transport::time_ns now) noexcept {
    if (!c.conn->closed()) {
        c.conn->close(transport::close_code::no_error, "removed by the control plane", now);
        c.conn->flush(now);
    }
    for (auto& r : c.routes) {
        if (r.removing) {
            answer(r.removal.token, r.removal.cmd, api::result_status::ok, {});
        }
        if (r.counters_slot != connection_state::no_counters_slot) {
            _config.counters->clear_path(r.counters_slot);
            _free_path_slots.push_back(r.counters_slot);
            r.counters_slot = connection_state::no_counters_slot;
        }
        raise(api::make_path_down(c.id, r.id, api::path_down_kind::removed, "connection removed by the control plane"));
    }
    // Its drops stay in the worker's totals: published counts only go up.
    for (std::size_t d = 0; d < kdp::drop_reason_count; ++d) {
        _retired_drops[d] += c.conn->counters().drops[d];
    }
    if (_config.counters != nullptr && c.index < _config.counters->max_connections()) {
        _config.counters->clear_connection(c.index);
    }
    _wheel.remove(*c.conn);
    if (c.touched) {
        std::erase(_touched, &c);
        c.touched = false;
    }
    c.installed = false;
    const deferred_answer removal = c.removal;
    connection_ptr owned = std::move(_conns[c.index]);
    answer(removal.token, removal.cmd, api::result_status::ok, {}, owned.release());
}

// ---------------------------------------------------------------------------------------------
// Answers and events

void worker::answer(std::uint64_t token, const api::command& answered, api::result_status status,
                    std::string_view reason, connection_state* ctx) noexcept {
    worker_reply r{};
    r.ev = api::make_command_result(answered, status, reason);
    r.token = token;
    r.worker = _config.id;
    r.connection = ctx != nullptr ? ctx->index : 0;
    r.ctx = ctx;
    if (!_unsent.empty() || !_config.mailbox.answer(r)) {
        // The main lcore is behind (removals finishing in bulk, flow rules being destroyed):
        // the answer waits here; it is never dropped. Allocates only past the reserve.
        _unsent.push_back(r);
    }
}

void worker::flush_unsent() noexcept {
    std::size_t sent = 0;
    while (sent < _unsent.size() && _config.mailbox.answer(_unsent[sent])) {
        ++sent;
    }
    _unsent.erase(_unsent.begin(), _unsent.begin() + static_cast<std::ptrdiff_t>(sent));
}

void worker::raise(const api::event& e) noexcept {
    if (!_config.mailbox.valid()) {
        return;
    }
    // Half the ring stays free for answers.
    if (rte_ring_free_count(_config.mailbox.replies) <= rte_ring_get_capacity(_config.mailbox.replies) / 2) {
        ++_counters.events_dropped;
        return;
    }
    worker_reply r{};
    r.ev = e;
    r.worker = _config.id;
    if (_config.mailbox.answer(r)) {
        ++_counters.events_sent;
    } else {
        ++_counters.events_dropped;
    }
}

// Path liveness, as the control plane sees it: up and recovered -> path_up; suspect (no
// acknowledgement within a PTO: its data was re-sent elsewhere) -> path_down "down"; failed
// (fail_after_ptos PTOs) -> path_down "failed".
void worker::cb_path_event(void* ctx, transport::path_id path, transport::path_event e) {
    auto* c = static_cast<connection_state*>(ctx);
    if (!c->installed) {
        return;
    }
    switch (e) {
    case transport::path_event::up:
    case transport::path_event::recovered: {
        transport::path_info info;
        std::uint64_t srtt = 0;
        for (std::size_t i = 0; c->conn->path_info_at(i, info); ++i) {
            if (info.id == path) {
                srtt = static_cast<std::uint64_t>(info.srtt);
                break;
            }
        }
        c->owner->raise(api::make_path_up(c->id, path, srtt));
        break;
    }
    case transport::path_event::suspect:
        c->owner->raise(api::make_path_down(c->id, path, api::path_down_kind::down,
                                            "no acknowledgement within a probe timeout; its data was sent on other paths"));
        break;
    case transport::path_event::failed:
        c->owner->raise(api::make_path_down(c->id, path, api::path_down_kind::failed,
                                            "no acknowledgement after the failure threshold of probe timeouts"));
        break;
    }
}

// The transport closed the connection itself (idle timeout, the peer's CONNECTION_CLOSE, a
// protocol error). The reason may come from the peer: only printable ASCII goes on.
void worker::cb_closed(void* ctx, transport::close_code code, std::string_view reason) {
    auto* c = static_cast<connection_state*>(ctx);
    if (!c->installed || c->removing) { // a removal answers for itself
        return;
    }
    char clean[api::reason_size];
    std::size_t n = 0;
    for (const char ch : reason) {
        if (ch == '\0' || n + 1 >= sizeof clean) {
            break;
        }
        clean[n++] = ch >= 0x20 && ch <= 0x7E ? ch : '?';
    }
    c->owner->raise(api::make_connection_closed(c->id, static_cast<std::uint64_t>(code), {clean, n}));
}

// At most one event per slot of a direct-mapped table per unknown_path_interval, counting the
// datagrams between them, and at most unknown_path_events_per_sec events per worker in all
// (anyone can send UDP to a Kwik port: a scan over source ports must not flood the control
// process). The drop itself is always counted (drop_reason::unknown_path).
void worker::note_unknown_path(std::size_t port, const five_tuple& t, transport::time_ns now) noexcept {
    if (!_config.mailbox.valid()) {
        return;
    }
    const std::uint32_t h = rte_hash_crc(&t, path_key_bytes, 0);
    unknown_tuple& u = _unknown[h % unknown_table_size];
    if (!u.used || !(u.tuple == t)) {
        // Another tuple takes the slot; its rate limit stays with the slot.
        u.used = true;
        u.tuple = t;
        u.count = 0;
        u.port = static_cast<std::uint16_t>(port);
    }
    // first_seen is the first datagram the next event counts (it was the one the last event
    // reported, which that event had counted already).
    if (u.count == 0) {
        u.first_seen = now;
    }
    ++u.count;
    u.last_seen = now;
    if (u.reported != 0 && now - u.reported < _config.unknown_path_interval) {
        return;
    }
    const double per_ns = _config.unknown_path_events_per_sec / 1e9;
    _unknown_budget = std::min(_config.unknown_path_events_per_sec,
                               _unknown_budget + per_ns * static_cast<double>(now - _unknown_refill));
    _unknown_refill = now;
    if (_unknown_budget < 1.0) {
        ++_counters.events_suppressed;
        return;
    }
    _unknown_budget -= 1.0;
    raise(api::make_unknown_path(to_api(t), u.count, u.port, static_cast<std::uint16_t>(_config.id),
                                 static_cast<std::uint64_t>(u.first_seen), static_cast<std::uint64_t>(u.last_seen)));
    u.reported = now;
    u.count = 0;
}

// ---------------------------------------------------------------------------------------------
// Counters into the shared region (this worker's block; it is its only writer)

void worker::publish_counters(transport::time_ns now) noexcept {
    api::counters_writer& w = *_config.counters;
    _next_publish = now + _config.publish_interval;
    api::worker_counters wc{};
    wc.polls = _counters.loops;
    wc.busy_polls = _counters.busy_loops;
    wc.handoff_sent = _counters.handed_off;
    wc.handoff_received = _counters.handoffs_received;
    wc.handoff_dropped = _counters.drops[static_cast<std::size_t>(kdp::drop_reason::handoff_ring_full)];
    wc.events_dropped = _counters.events_dropped;
    wc.commands_applied = _counters.commands_applied;
    wc.events_suppressed = _counters.events_suppressed;
    wc.idle_sleeps = _counters.idle_sleeps;
    wc.idle_sleep_ns = _counters.idle_sleep_ns;
    w.begin_publish();
    w.store_worker(wc);
    for (std::size_t p = 0; p < _config.ports.size() && p < w.ports(); ++p) {
        api::port_counters pc{};
        const auto& c = _counters.ports[p];
        pc.rx_packets = c.rx_packets;
        pc.rx_bytes = c.rx_bytes;
        pc.tx_packets = c.tx_packets;
        pc.tx_bytes = c.tx_bytes;
        pc.rx_dropped = c.rx_dropped;
        pc.tx_dropped = c.tx_dropped;
        if (_config.exception && p == _config.exception_port) { // bridged to this port
            pc.exception_rx = _counters.exception_out;
            pc.exception_tx = _counters.exception_in;
        }
        w.store_port(static_cast<std::uint32_t>(p), pc);
    }
    std::array<std::uint64_t, kdp::drop_reason_count> by_reason{};
    for (std::size_t r = 0; r < kdp::drop_reason_count; ++r) {
        by_reason[r] = _counters.drops[r] + _counters.classified.drops[r] + _retired_drops[r];
    }
    for (const auto& c : _conns) {
        if (c) {
            for (std::size_t r = 0; r < kdp::drop_reason_count; ++r) {
                by_reason[r] += c->conn->counters().drops[r];
            }
        }
    }
    w.store_drops(by_reason);
    w.end_publish(static_cast<std::uint64_t>(now));
    _publish_cursor = 0; // the connection tables follow, a slice per loop (poll())
}

void worker::publish_final_counters(transport::time_ns now) noexcept {
    if (_config.counters == nullptr) {
        return;
    }
    publish_counters(now);
    while (_publish_cursor < _conns.size()) {
        publish_slice(now);
    }
}

// The next slice of the connection table (each entry has its own seqlock).
void worker::publish_slice(transport::time_ns now) noexcept {
    const std::size_t limit = std::min<std::size_t>(_conns.size(), _config.counters->max_connections());
    const std::size_t end = std::min(limit, _publish_cursor + publish_slice_size);
    for (; _publish_cursor < end; ++_publish_cursor) {
        if (const connection_state* c = _conns[_publish_cursor].get(); c != nullptr) {
            publish_connection(*c, now);
        }
    }
    if (_publish_cursor >= limit) {
        _publish_cursor = _conns.size(); // done, slots beyond the region's table included
    }
}

void worker::answer_counters_requests() noexcept {
    for (const deferred_answer& r : _counters_requests) {
        answer(r.token, r.cmd, api::result_status::ok, {});
    }
    _counters_requests.clear();
}

void worker::publish_connection(const connection_state& c, transport::time_ns now) noexcept {
    api::counters_writer& w = *_config.counters;
    api::connection_counters cc{};
    cc.connection_id = c.id;
    const transport::connection_counters& t = c.conn->counters();
    const transport::path_counters& retired = c.conn->retired_path_counters();
    cc.delivered_bytes = t.stream_bytes_delivered;
    cc.retransmitted_bytes = t.stream_bytes_retransmitted;
    cc.flow_control_blocked = t.flow_blocked;
    cc.streams_opened = t.streams_opened;
    cc.streams_closed = t.streams_closed;
    cc.open_streams = c.conn->open_streams();
    cc.updated_ns = static_cast<std::uint64_t>(now);
    cc.rx_packets = retired.packets_received;
    cc.rx_bytes = retired.bytes_received;
    cc.tx_packets = retired.packets_sent;
    cc.tx_bytes = retired.bytes_sent;
    cc.retransmitted_packets = retired.retransmitted_frames;
    transport::path_info info;
    for (std::size_t k = 0; c.conn->path_info_at(k, info); ++k) {
        cc.rx_packets += info.counters.packets_received;
        cc.rx_bytes += info.counters.bytes_received;
        cc.tx_packets += info.counters.packets_sent;
        cc.tx_bytes += info.counters.bytes_sent;
        cc.retransmitted_packets += info.counters.retransmitted_frames;
        cc.active_paths += info.status == transport::path_status::active ? 1 : 0;
        for (const auto& r : c.routes) {
            if (r.id != info.id || r.counters_slot == connection_state::no_counters_slot) {
                continue;
            }
            api::path_counters pc{};
            pc.connection_id = c.id;
            pc.path_id = info.id;
            pc.status = static_cast<std::uint64_t>(info.status);
            pc.rx_packets = info.counters.packets_received;
            pc.rx_bytes = info.counters.bytes_received;
            pc.tx_packets = info.counters.packets_sent;
            pc.tx_bytes = info.counters.bytes_sent;
            pc.lost_packets = info.counters.packets_lost;
            pc.retransmitted_packets = info.counters.retransmitted_frames;
            pc.handoff_packets = r.handoff_packets;
            pc.smoothed_rtt_ns = static_cast<std::uint64_t>(info.srtt);
            pc.min_rtt_ns = static_cast<std::uint64_t>(info.min_rtt);
            pc.rtt_var_ns = static_cast<std::uint64_t>(info.rttvar);
            pc.cwnd_bytes = info.cwnd;
            pc.updated_ns = static_cast<std::uint64_t>(now);
            w.store_path(r.counters_slot, pc);
        }
    }
    w.store_connection(c.index, cc);
}

} // namespace kwik::engine
