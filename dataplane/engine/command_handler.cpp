// The main lcore's command handling: checks, posts to the owning worker, completes on its
// answer. Every command gets exactly one command_result (request_counters: counters_ready),
// whose reason names the field or the state at fault.
#include "dataplane/engine/command_handler.hpp"

#include <algorithm>
#include <cinttypes>
#include <cstdarg>
#include <cstdio>
#include <cstring>

#include "dataplane/api/counters.hpp"

namespace kwik::engine {

using api::result_status;

namespace {

drivers::ip_address to_flow(const ip_address& a) noexcept {
    drivers::ip_address f;
    if (a.is_v4()) {
        f.version = 4;
        std::memcpy(f.bytes.data(), a.v4_bytes(), 4);
    } else {
        f.version = 6;
        f.bytes = a.bytes;
    }
    return f;
}

std::string format(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
std::string format(const char* fmt, ...) {
    char buf[api::reason_size];
    va_list ap;
    va_start(ap, fmt);
    std::vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    return buf;
}

std::string address_text(const ip_address& a) {
    char buf[64];
    if (a.is_v4()) {
        std::snprintf(buf, sizeof buf, "%u.%u.%u.%u", a.v4_bytes()[0], a.v4_bytes()[1], a.v4_bytes()[2],
                      a.v4_bytes()[3]);
    } else {
        std::snprintf(buf, sizeof buf, "%02x%02x:%02x%02x:%02x%02x:%02x%02x:%02x%02x:%02x%02x:%02x%02x:%02x%02x",
                      a.bytes[0], a.bytes[1], a.bytes[2], a.bytes[3], a.bytes[4], a.bytes[5], a.bytes[6], a.bytes[7],
                      a.bytes[8], a.bytes[9], a.bytes[10], a.bytes[11], a.bytes[12], a.bytes[13], a.bytes[14],
                      a.bytes[15]);
    }
    return buf;
}

endpoint_kind to_engine(api::endpoint_kind k) noexcept {
    switch (k) {
    case api::endpoint_kind::echo:
        return endpoint_kind::echo;
    case api::endpoint_kind::pattern_source:
        return endpoint_kind::pattern;
    case api::endpoint_kind::file_store:
        return endpoint_kind::file_store;
    case api::endpoint_kind::discard:
        break;
    }
    return endpoint_kind::discard;
}

} // namespace

command_handler::command_handler(handler_config config) : _config(std::move(config)) {
    _free_slots.resize(_config.workers.size());
    _load.assign(_config.workers.size(), 0);
    for (auto& slots : _free_slots) {
        slots.reserve(_config.slots_per_worker);
        for (std::uint32_t s = _config.slots_per_worker; s > 0; --s) {
            slots.push_back(s - 1); // slot 0 on top: static connections get 0, 1, ...
        }
    }
}

command_handler::~command_handler() {
    // Connections still on workers are freed by the workers' destructors; bindings and flow
    // rules go with the path table and the ports.
}

// ---------------------------------------------------------------------------------------------
// The pass

void command_handler::poll(transport::time_ns now) {
    take_replies(now);
    flush_outbox();
    continue_listing();
    if (_config.channel == nullptr || _stopped) {
        return;
    }
    std::array<api::command, 16> cmds;
    std::uint32_t taken = 0;
    while (taken < _config.commands_per_poll) {
        const unsigned n = _config.channel->receive_burst({cmds.data(), cmds.size()});
        for (unsigned i = 0; i < n; ++i) {
            dispatch(cmds[i], now);
            cleanse_key(cmds[i]);
        }
        taken += n;
        if (n < cmds.size()) {
            break;
        }
    }
    flush_outbox();
}

void command_handler::shutdown(transport::time_ns now) {
    take_replies(now);
    _stopped = true;
    for (const auto& [token, p] : _pending) {
        answer(p.cmd, result_status::stopped, "kwikd stopped before the command finished");
    }
    _pending.clear();
    for (const listing& l : _listings) {
        answer(l.cmd, result_status::stopped, "kwikd stopped before the listing finished");
    }
    _listings.clear();
    // Commands sent before kwikd stopped that it never took off the ring wait for an answer
    // too (they got none: every command gets exactly one).
    if (_config.channel != nullptr) {
        std::array<api::command, 16> cmds;
        for (unsigned n = 0; (n = _config.channel->receive_burst({cmds.data(), cmds.size()})) != 0;) {
            for (unsigned i = 0; i < n; ++i) {
                ++_counters.commands;
                answer(cmds[i], result_status::stopped, "kwikd stopped before it took the command");
            }
        }
    }
    flush_outbox();
}

bool command_handler::apply_before_launch(const api::command& command, std::string* error) {
    static std::uint64_t sequence = 0;
    api::command c = command;
    c.header.version = api::protocol_version;
    c.header.sequence = ++sequence | (std::uint64_t{1} << 63); // never a control process's number
    _before_launch = true;
    _sync_result.reset();
    dispatch(c, 0);
    // The worker is not running: it applies what was posted on this thread.
    for (worker* w : _config.workers) {
        w->apply_commands_now(0);
    }
    take_replies(0);
    _before_launch = false;
    if (!_sync_result) {
        *error = "no answer";
        return false;
    }
    const api::command_result_body& r = _sync_result->command_result;
    if (r.status != result_status::ok) {
        *error = std::string(api::to_string(r.status)) + ": " + std::string(api::get_text(r.reason));
        return false;
    }
    return true;
}

void command_handler::dispatch(const api::command& c, transport::time_ns) {
    ++_counters.commands;
    if (const api::validation v = api::validate(c); !v.ok()) {
        answer(c, v.status(), v.reason());
        return;
    }
    switch (c.header.type) {
    case api::message_type::add_connection:
        return on_add_connection(c);
    case api::message_type::remove_connection:
        return on_remove_connection(c);
    case api::message_type::add_path:
        return on_add_path(c);
    case api::message_type::remove_path:
        return on_remove_path(c);
    case api::message_type::set_scheduler:
        return on_connection_setting(c, worker_op::set_scheduler);
    case api::message_type::set_weights:
        return on_connection_setting(c, worker_op::set_weights);
    case api::message_type::set_qos:
        return on_connection_setting(c, worker_op::set_qos);
    case api::message_type::set_windows:
        return on_connection_setting(c, worker_op::set_windows);
    case api::message_type::set_connection_keys:
        return on_connection_setting(c, worker_op::set_connection_keys);
    case api::message_type::request_counters:
        return on_request_counters(c);
    case api::message_type::list_state:
        return on_list_state(c);
    default:
        answer(c, result_status::invalid_command, "header.type: not a command"); // validate() refuses it first
        return;
    }
}

// ---------------------------------------------------------------------------------------------
// Action functions

void command_handler::on_add_connection(const api::command& c) {
    const api::add_connection_body& b = c.add_connection;
    const std::string_view name = api::get_text(b.name);
    if (_connections.contains(b.connection_id)) {
        answer(c, result_status::already_exists, format("add_connection.connection_id: %" PRIu64 " exists", b.connection_id));
        return;
    }
    if (auto it = _names.find(name); it != _names.end()) {
        answer(c, result_status::already_exists,
               format("add_connection.name: '%.*s' is connection %" PRIu64, static_cast<int>(name.size()), name.data(),
                      it->second));
        return;
    }
    const auto workers = static_cast<unsigned>(_config.workers.size());
    unsigned owner = 0;
    if (b.owner_hint != api::any_worker) {
        if (b.owner_hint >= workers) {
            answer(c, result_status::invalid_command,
                   format("add_connection.owner_hint: worker %u does not exist (kwikd has %u)", b.owner_hint, workers));
            return;
        }
        owner = b.owner_hint;
    } else {
        for (unsigned w = 1; w < workers; ++w) {
            if (_load[w] < _load[owner]) {
                owner = w;
            }
        }
    }
    if (_free_slots[owner].empty()) {
        answer(c, result_status::no_capacity,
               format("add_connection: worker %u has all its %u connection slots in use", owner, _config.slots_per_worker));
        return;
    }
    const std::uint32_t slot = _free_slots[owner].back();

    connection_spec spec;
    spec.index = slot;
    spec.connection_id = b.connection_id;
    spec.transport = _config.transport;
    spec.transport.side = b.role == api::connection_role::client ? transport::role::client : transport::role::server;
    spec.endpoint.kind = to_engine(b.endpoint);
    spec.endpoint.directory = std::string(api::get_text(b.endpoint_path));
    if (b.endpoint == api::endpoint_kind::pattern_source) {
        spec.endpoint.max_pattern_length = b.endpoint_length;
    }
    std::string why;
    connection_ptr built = _config.workers[owner]->build_connection(spec, &why);
    if (built == nullptr) {
        answer(c, result_status::invalid_command, "add_connection.endpoint_path: " + why);
        return;
    }
    worker_command wc{};
    wc.cmd = c;
    wc.op = worker_op::install_connection;
    wc.connection = slot;
    wc.ctx = built.get();
    if (!post(owner, wc)) {
        return; // answered; built is freed here
    }
    built.release(); // the worker owns it now
    _free_slots[owner].pop_back();
    ++_load[owner];
    connection_record r;
    r.id = b.connection_id;
    r.name = std::string(name);
    r.worker = owner;
    r.slot = slot;
    r.role = b.role;
    r.endpoint = b.endpoint;
    r.endpoint_length = b.endpoint_length;
    r.endpoint_path = spec.endpoint.directory;
    r.state = conn_state::installing;
    _names.emplace(r.name, r.id);
    _connections.emplace(r.id, std::move(r));
}

void command_handler::on_remove_connection(const api::command& c) {
    connection_record* r = find(c.remove_connection.connection_id);
    if (r == nullptr || r->state == conn_state::removing) {
        answer(c, result_status::unknown_connection,
               format("remove_connection.connection_id: %" PRIu64 " %s", c.remove_connection.connection_id,
                      r == nullptr ? "does not exist" : "is being removed already"));
        return;
    }
    worker_command wc{};
    wc.cmd = c;
    wc.op = worker_op::remove_connection;
    wc.connection = r->slot;
    if (post(r->worker, wc)) {
        r->state = conn_state::removing; // bindings stay until the worker drained it
    }
}

void command_handler::on_add_path(const api::command& c) {
    const api::add_path_body& b = c.add_path;
    connection_record* r = find(b.connection_id);
    if (r == nullptr || r->state == conn_state::removing) {
        answer(c, result_status::unknown_connection,
               format("add_path.connection_id: %" PRIu64 " %s", b.connection_id,
                      r == nullptr ? "does not exist" : "is being removed"));
        return;
    }
    const five_tuple t = to_engine(b.tuple);
    if (const path_record* held = find_path(*r, b.path_id); held != nullptr) {
        // already_exists only for the very same path (a resync); another tuple is a conflict.
        if (key_of(held->tuple) == key_of(t)) {
            answer(c, result_status::already_exists,
                   format("add_path.path_id: %" PRIu64 " exists in connection %" PRIu64, b.path_id, b.connection_id));
        } else {
            answer(c, result_status::conflict,
                   format("add_path.path_id: %" PRIu64 " exists in connection %" PRIu64 " with another tuple",
                          b.path_id, b.connection_id));
        }
        return;
    }
    if (r->paths.size() >= _config.transport.max_paths) {
        answer(c, result_status::no_capacity,
               format("add_path: connection %" PRIu64 " has its maximum of %u paths (transport.max_paths)",
                      b.connection_id, _config.transport.max_paths));
        return;
    }
    const std::optional<std::uint16_t> port = port_of(t);
    if (!port) {
        answer(c, result_status::invalid_command,
               format("add_path.tuple.local: %s port %u is not a Kwik address and port of any kwikd port",
                      address_text(t.dst).c_str(), t.dst_port));
        return;
    }
    if (auto it = _tuples.find(key_of(t)); it != _tuples.end()) {
        answer(c, result_status::conflict,
               format("add_path.tuple: bound already to connection %" PRIu64 " path %" PRIu64, it->second.first,
                      it->second.second));
        return;
    }
    if (_tuples.size() >= _config.max_bindings) {
        answer(c, result_status::no_capacity,
               format("add_path: the path table holds its maximum of %u paths (limits.max_paths)", _config.max_bindings));
        return;
    }
    worker_command wc{};
    wc.cmd = c;
    wc.op = worker_op::add_path;
    wc.connection = r->slot;
    wc.port = *port;
    wc.tuple = t;
    if (!post(r->worker, wc)) {
        return;
    }
    path_record p;
    p.id = b.path_id;
    p.tuple = t;
    p.api_tuple = b.tuple;
    p.port = *port;
    p.weight = b.initial_weight;
    p.max_bandwidth_mbps = b.max_bandwidth_mbps;
    p.standby = b.standby != 0;
    r->paths.push_back(p);
    _tuples.emplace(key_of(t), std::make_pair(b.connection_id, b.path_id)); // reserved until answered
}

void command_handler::on_remove_path(const api::command& c) {
    const api::remove_path_body& b = c.remove_path;
    connection_record* r = find(b.connection_id);
    if (r == nullptr || r->state == conn_state::removing) {
        answer(c, result_status::unknown_connection,
               format("remove_path.connection_id: %" PRIu64 " %s", b.connection_id,
                      r == nullptr ? "does not exist" : "is being removed"));
        return;
    }
    path_record* p = find_path(*r, b.path_id);
    if (p == nullptr || p->removing) {
        answer(c, result_status::unknown_path,
               format("remove_path.path_id: %" PRIu64 " %s in connection %" PRIu64, b.path_id,
                      p == nullptr ? "does not exist" : "is being removed", b.connection_id));
        return;
    }
    worker_command wc{};
    wc.cmd = c;
    wc.op = worker_op::remove_path;
    wc.connection = r->slot;
    if (post(r->worker, wc)) {
        p->removing = true; // bound until drained: its ACKs still arrive
    }
}

void command_handler::on_connection_setting(const api::command& c, worker_op op) {
    const std::uint64_t id = api::connection_of(c);
    connection_record* r = find(id);
    if (r == nullptr || r->state == conn_state::removing) {
        answer(c, result_status::unknown_connection,
               format("%s.connection_id: %" PRIu64 " %s", std::string(api::to_string(c.header.type)).c_str(), id,
                      r == nullptr ? "does not exist" : "is being removed"));
        return;
    }
    if (op == worker_op::set_weights) {
        for (std::uint32_t i = 0; i < c.set_weights.count; ++i) {
            const path_record* p = find_path(*r, c.set_weights.entries[i].path_id);
            if (p == nullptr || p->removing) {
                answer(c, result_status::unknown_path,
                       format("set_weights.entries[%u].path_id: %" PRIu64 " is not a path of connection %" PRIu64, i,
                              c.set_weights.entries[i].path_id, id));
                return;
            }
        }
    }
    worker_command wc{};
    wc.cmd = c;
    wc.op = op;
    wc.connection = r->slot;
    post(r->worker, wc);
    cleanse_key(wc.cmd);
}

void command_handler::on_request_counters(const api::command& c) {
    if (_config.workers.empty()) {
        const std::uint64_t epoch = _config.region != nullptr ? api::advance_epoch(*_config.region, 0) : 0;
        send(api::make_counters_ready(c.header.sequence, epoch, 0), true);
        return;
    }
    // Every worker publishes, then the epoch advances: one counters_ready for the lot.
    for (unsigned w = 0; w < _config.workers.size(); ++w) {
        if (rte_ring_free_count(_config.mailboxes[w].commands) == 0) {
            ++_counters.worker_queue_full;
            answer(c, result_status::no_capacity,
                   format("request_counters: worker %u's command queue is full (it is not keeping up); retry", w));
            return;
        }
    }
    worker_command wc{};
    wc.cmd = c;
    wc.op = worker_op::publish_counters;
    wc.token = _next_token++;
    for (unsigned w = 0; w < _config.workers.size(); ++w) {
        _config.mailboxes[w].post(wc); // room checked above; this lcore is the only producer
    }
    _pending[wc.token] = pending{c, static_cast<unsigned>(_config.workers.size())};
}

void command_handler::on_list_state(const api::command& c) {
    listing l;
    l.cmd = c;
    l.ids.reserve(_connections.size());
    for (const auto& [id, r] : _connections) {
        if (r.state != conn_state::removing) {
            l.ids.push_back(id);
        }
    }
    std::sort(l.ids.begin(), l.ids.end());
    _listings.push_back(std::move(l));
    continue_listing();
}

// Sends what the event ring has room for; the command_result closes the listing.
void command_handler::continue_listing() {
    while (!_listings.empty()) {
        listing& l = _listings.front();
        while (l.next < l.ids.size()) {
            connection_record* r = find(l.ids[l.next]);
            if (r == nullptr) { // removed while listing
                ++l.next;
                continue;
            }
            if (!_outbox.empty()) {
                return; // the event ring is full: the rest when it has room again (next pass)
            }
            api::event e = api::make_info(api::message_type::connection_info, l.cmd.header.sequence);
            api::connection_info_body& ci = e.connection_info;
            ci.connection_id = r->id;
            api::set_text(ci.name, r->name);
            ci.owner_worker = static_cast<std::uint16_t>(r->worker);
            ci.role = r->role;
            ci.endpoint = r->endpoint;
            ci.paths = static_cast<std::uint32_t>(r->paths.size());
            ci.endpoint_length = r->endpoint_length;
            api::set_text(ci.endpoint_path, r->endpoint_path);
            ci.live_keys = r->live_keys;
            ci.key_phase = r->key_phase;
            ci.require_encryption = r->require_encryption ? 1 : 0;
            send(e, true);
            ++l.connections_sent;
            for (const path_record& p : r->paths) {
                api::event pe = api::make_info(api::message_type::path_info, l.cmd.header.sequence);
                api::path_info_body& pi = pe.path_info;
                pi.connection_id = r->id;
                pi.path_id = p.id;
                pi.tuple = p.api_tuple;
                pi.weight = p.weight;
                pi.max_bandwidth_mbps = p.max_bandwidth_mbps;
                pi.port_id = p.port;
                pi.standby = p.standby ? 1 : 0;
                pi.steered = p.rule ? 1 : 0;
                send(pe, true);
                ++l.paths_sent;
            }
            ++l.next;
        }
        answer(l.cmd, result_status::ok, format("%zu connections, %zu paths", l.connections_sent, l.paths_sent));
        _listings.pop_front();
    }
}

// ---------------------------------------------------------------------------------------------
// Completions

void command_handler::take_replies(transport::time_ns now) {
    std::array<worker_reply, 32> replies;
    for (const worker_mailbox& m : _config.mailboxes) {
        for (;;) {
            const unsigned n = m.take_replies(replies.data(), static_cast<unsigned>(replies.size()));
            for (unsigned i = 0; i < n; ++i) {
                on_reply(replies[i], now);
            }
            if (n < replies.size()) {
                break;
            }
        }
    }
}

void command_handler::on_reply(const worker_reply& r, transport::time_ns now) {
    if (r.ev.header.type != api::message_type::command_result) {
        send(r.ev, false); // an event the worker raised: path up/down, unknown path, connection closed
        return;
    }
    auto it = _pending.find(r.token);
    if (it == _pending.end()) {
        connection_ptr stray(r.ctx); // an answer to a command answered already; free what it carries
        return;
    }
    if (it->second.workers_left > 1) {
        --it->second.workers_left;
        return;
    }
    const pending p = it->second;
    _pending.erase(it);
    complete(p, r, now);
}

void command_handler::complete(const pending& p, const worker_reply& r, transport::time_ns now) {
    const api::command& c = p.cmd;
    const api::command_result_body& res = r.ev.command_result;
    const bool ok = res.status == result_status::ok;
    switch (c.header.type) {
    case api::message_type::add_connection: {
        connection_record* rec = find(c.add_connection.connection_id);
        if (rec == nullptr) {
            break;
        }
        if (ok) {
            if (rec->state == conn_state::installing) { // a remove may be on its way already
                rec->state = conn_state::active;
            }
        } else {
            connection_ptr back(r.ctx);
            forget(*rec);
        }
        break;
    }
    case api::message_type::remove_connection: {
        connection_ptr freed(r.ctx); // the worker handed it back: freed here, off the worker
        connection_record* rec = find(c.remove_connection.connection_id);
        if (rec != nullptr && ok && freed != nullptr) {
            forget(*rec);
        } else if (rec != nullptr && rec->state == conn_state::removing) {
            rec->state = conn_state::active; // the worker refused: it still has it
        }
        break;
    }
    case api::message_type::add_path: {
        connection_record* rec = find(c.add_path.connection_id);
        path_record* path = rec == nullptr ? nullptr : find_path(*rec, c.add_path.path_id);
        if (path == nullptr) {
            break;
        }
        if (ok) {
            bind(*rec, *path);
            if (!path->bound) {
                // The table refused it (full): undo on the worker, answer the failure.
                worker_command undo{};
                undo.cmd = api::make_remove_path(rec->id, path->id);
                undo.op = worker_op::remove_path; // token 0: nobody waits for this answer
                undo.connection = rec->slot;
                if (!_config.mailboxes[rec->worker].post(undo)) {
                    ++_counters.worker_queue_full; // the route stays; its binding never existed
                }
                drop_path(*rec, c.add_path.path_id);
                answer(c, result_status::no_capacity, "add_path: the path table refused the binding (full)");
                ++_counters.completed;
                return;
            }
        } else {
            drop_path(*rec, c.add_path.path_id);
        }
        break;
    }
    case api::message_type::remove_path: {
        connection_record* rec = find(c.remove_path.connection_id);
        path_record* path = rec == nullptr ? nullptr : find_path(*rec, c.remove_path.path_id);
        if (path == nullptr) {
            break;
        }
        if (ok) {
            unbind(*path);
            drop_path(*rec, c.remove_path.path_id);
        } else {
            path->removing = false;
        }
        break;
    }
    case api::message_type::set_weights:
        if (ok) {
            if (connection_record* rec = find(c.set_weights.connection_id); rec != nullptr) {
                for (std::uint32_t i = 0; i < c.set_weights.count; ++i) {
                    if (path_record* path = find_path(*rec, c.set_weights.entries[i].path_id); path != nullptr) {
                        path->weight = c.set_weights.entries[i].weight;
                        if (c.set_weights.entries[i].standby != api::standby_change::keep) {
                            path->standby = c.set_weights.entries[i].standby == api::standby_change::set;
                        }
                    }
                }
            }
        }
        break;
    case api::message_type::set_connection_keys:
        if (connection_record* rec = find(c.set_connection_keys.connection_id); ok && rec != nullptr) {
            // The worker keeps the newest two phases (a resync's repeat of a held one changes nothing).
            const std::uint8_t phase = c.set_connection_keys.key_phase;
            const bool held = (rec->live_keys > 0 && rec->key_phase == phase) ||
                              (rec->live_keys > 1 && rec->older_key_phase == phase);
            if (!held) {
                rec->older_key_phase = rec->key_phase;
                rec->key_phase = phase;
                rec->live_keys = static_cast<std::uint8_t>(rec->live_keys < 2 ? rec->live_keys + 1 : 2);
            }
            rec->require_encryption = c.set_connection_keys.require_encryption != 0;
        }
        break;
    case api::message_type::request_counters: {
        const std::uint64_t epoch =
            _config.region != nullptr ? api::advance_epoch(*_config.region, static_cast<std::uint64_t>(now)) : 0;
        ++_counters.completed;
        send(api::make_counters_ready(c.header.sequence, epoch, static_cast<std::uint32_t>(_config.workers.size())), true);
        return;
    }
    default:
        break;
    }
    ++_counters.completed;
    answer(c, res.status, api::get_text(res.reason));
}

// ---------------------------------------------------------------------------------------------
// Directory

command_handler::connection_record* command_handler::find(std::uint64_t id) {
    auto it = _connections.find(id);
    return it == _connections.end() ? nullptr : &it->second;
}

std::string command_handler::name_of(std::uint64_t id) const {
    auto it = _connections.find(id);
    return it == _connections.end() ? "#" + std::to_string(id) : it->second.name;
}

command_handler::path_record* command_handler::find_path(connection_record& c, std::uint64_t path_id) {
    for (path_record& p : c.paths) {
        if (p.id == path_id) {
            return &p;
        }
    }
    return nullptr;
}

std::optional<std::uint16_t> command_handler::port_of(const five_tuple& t) const {
    for (std::size_t i = 0; i < _config.ports.size(); ++i) {
        const handler_port& p = _config.ports[i];
        const bool has_address = std::find(p.addresses.begin(), p.addresses.end(), t.dst) != p.addresses.end();
        const bool has_port = std::find(p.kwik_ports.begin(), p.kwik_ports.end(), t.dst_port) != p.kwik_ports.end();
        if (has_address && has_port) {
            return static_cast<std::uint16_t>(i);
        }
    }
    return std::nullopt;
}

// Publishes the path in the path table; steers it to the owner's queue by rte_flow where the
// port can (several workers, a real NIC); otherwise the receiving worker hands it over.
void command_handler::bind(connection_record& c, path_record& p) {
    std::string error;
    const path_binding b{static_cast<std::uint16_t>(c.worker), c.slot, p.id, p.tuple};
    if (!_config.paths->add(b, &error)) {
        return;
    }
    p.bound = true;
    const handler_port& port = _config.ports[p.port];
    if (port.device != nullptr && _config.workers.size() > 1 && c.worker < port.rx_queues) {
        const drivers::udp_5tuple t{to_flow(p.tuple.src), to_flow(p.tuple.dst), p.tuple.src_port, p.tuple.dst_port};
        auto rule = drivers::install_5tuple_rule(*port.device, static_cast<std::uint16_t>(c.worker), t);
        if (rule.ok()) {
            p.rule = rule.value();
            ++_counters.flow_rules;
            return;
        }
    }
    ++_counters.handoff_paths;
}

void command_handler::unbind(path_record& p) {
    if (p.rule) {
        const handler_port& port = _config.ports[p.port];
        (void)drivers::remove_rule(*port.device, *p.rule); // the port's rules go with it anyway
        p.rule.reset();
    }
    if (p.bound) {
        _config.paths->remove(p.tuple);
        p.bound = false;
    }
}

// Drops one path from a connection's record and its tuple from the directory (after unbind).
void command_handler::drop_path(connection_record& c, std::uint64_t path_id) {
    if (const path_record* p = find_path(c, path_id); p != nullptr) {
        _tuples.erase(key_of(p->tuple));
    }
    std::erase_if(c.paths, [&](const path_record& x) { return x.id == path_id; });
}

// Drops a connection from the directory: bindings, rules, tuples, its slot and name.
void command_handler::forget(connection_record& c) {
    for (path_record& p : c.paths) {
        unbind(p);
        _tuples.erase(key_of(p.tuple));
    }
    _free_slots[c.worker].push_back(c.slot);
    --_load[c.worker];
    _names.erase(c.name);
    const std::uint64_t id = c.id;
    _connections.erase(id); // c is gone
}

command_handler::tuple_key command_handler::key_of(const five_tuple& t) noexcept {
    tuple_key k;
    std::memcpy(k.data(), &t, k.size());
    return k;
}

// ---------------------------------------------------------------------------------------------
// Posting and answering

bool command_handler::post(unsigned worker, worker_command wc) {
    wc.token = _next_token++;
    if (!_config.mailboxes[worker].post(wc)) {
        ++_counters.worker_queue_full;
        answer(wc.cmd, result_status::no_capacity,
               format("worker %u's command queue is full (it is not keeping up); retry", worker));
        return false;
    }
    pending& p = _pending[wc.token];
    p = pending{wc.cmd, 1};
    cleanse_key(p.cmd); // the worker has its copy; the answer needs only the ids
    cleanse_key(wc.cmd);
    return true;
}

void command_handler::answer(const api::command& c, result_status status, std::string_view reason) {
    if (status != result_status::ok) {
        ++_counters.rejected;
    }
    send(api::make_command_result(c, status, reason), true);
}

void command_handler::send(const api::event& e, bool is_answer) {
    if (_before_launch) {
        if (e.header.type == api::message_type::command_result) {
            _sync_result = e;
        }
        return;
    }
    api::event stamped = e; // try_send stamps the version and sequence
    if (_outbox.empty() && _config.channel != nullptr && _config.channel->try_send(stamped)) {
        ++_counters.events_forwarded;
        return;
    }
    if (!is_answer && _outbox.size() >= _config.max_outbox) {
        ++_counters.events_lost;
        return;
    }
    _outbox.push_back(e);
}

void command_handler::flush_outbox() {
    while (!_outbox.empty() && _config.channel != nullptr && _config.channel->try_send(_outbox.front())) {
        _outbox.pop_front();
        ++_counters.events_forwarded;
    }
}

} // namespace kwik::engine
