// kwik-cp's link to kwikd: attach, adopt, resync, commands and events (dataplane_link.hpp).
#include "controlplane/server/link/dataplane_link.hpp"

#include <openssl/crypto.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <memory>

namespace kwik::cp {

namespace {

api::event local_failure(const api::command& c, const std::string& reason) {
    return api::make_command_result(c, api::result_status::internal_error, reason);
}

api::command add_connection_command(const desired_connection& c) {
    api::command cmd = api::make_add_connection(c.id, c.name, c.endpoint);
    cmd.add_connection.role = c.role;
    cmd.add_connection.owner_hint = c.owner_hint;
    cmd.add_connection.endpoint_length = c.endpoint_length;
    (void)api::set_text(cmd.add_connection.endpoint_path, c.endpoint_path); // checked when recorded
    return cmd;
}

api::command set_keys_command(std::uint64_t connection_id, const desired_key& k) {
    std::uint8_t key[api::aead_key_size];
    std::copy(k.key.begin(), k.key.end(), key);
    api::command cmd = api::make_set_connection_keys(connection_id, k.phase, key, k.valid_until_unix_ms, k.max_frames,
                                                     k.require_encryption);
    OPENSSL_cleanse(key, sizeof key);
    return cmd;
}

// A command that carried a key is cleansed once answered (or failed).
void forget_key(api::command& c) {
    if (c.header.type == api::message_type::set_connection_keys) {
        OPENSSL_cleanse(c.set_connection_keys.key, sizeof c.set_connection_keys.key);
    }
}

bool same_tuple(const api::five_tuple& a, const api::five_tuple& b) noexcept {
    return a.version == b.version && a.local_port == b.local_port && a.remote_port == b.remote_port &&
           std::memcmp(a.local.bytes, b.local.bytes, sizeof a.local.bytes) == 0 &&
           std::memcmp(a.remote.bytes, b.remote.bytes, sizeof a.remote.bytes) == 0;
}

api::command add_path_command(std::uint64_t connection_id, const desired_path& p) {
    api::command cmd = api::make_add_path(connection_id, p.path_id, p.tuple, p.weight);
    cmd.add_path.max_bandwidth_mbps = p.max_bandwidth_mbps;
    cmd.add_path.standby = p.standby ? 1 : 0;
    return cmd;
}

api::command set_qos_command(std::uint64_t connection_id, std::uint64_t stream_id, const desired_stream_qos& q) {
    api::command cmd = api::make_set_qos(connection_id, stream_id, q.priority);
    cmd.set_qos.min_bandwidth_mbps = q.min_bandwidth_mbps;
    return cmd;
}

} // namespace

desired_key::~desired_key() {
    OPENSSL_cleanse(key.data(), key.size());
}

dataplane_link::dataplane_link(link_config config, link_callbacks callbacks)
    : _config(std::move(config)), _cb(std::move(callbacks)) {}

// ---------------------------------------------------------------------------------------------
// The pass

void dataplane_link::poll(time_ns now) {
    if (_region.valid() && _region.is_stale()) {
        detach("kwikd stopped or restarted before answering");
        _next_attempt = now; // a new kwikd may be there already
    }
    if (!_region.valid()) {
        if (now >= _next_attempt) {
            attach(now);
        }
        if (!_region.valid()) {
            return;
        }
    }
    if (!_adopted && _list_sequence == 0) { // the list_state did not fit the ring when attaching
        api::command list = api::make_list_state();
        if (_channel.try_send(list)) {
            _list_sequence = list.header.sequence;
        }
    }
    take_events(now);
    pump(now);
    for (auto it = _sent.begin(); it != _sent.end();) {
        if (now >= it->second.deadline) {
            ++_counters.commands_timed_out;
            fail(it->second, "kwikd did not answer within the command timeout");
            it = _sent.erase(it);
        } else {
            ++it;
        }
    }
}

void dataplane_link::attach_failed(const std::string& reason) {
    if (reason != _attach_failure) {
        _attach_failure = reason;
        if (_cb.on_attach_failed) {
            _cb.on_attach_failed(reason);
        }
    }
}

void dataplane_link::attach(time_ns now) {
    _next_attempt = now + _config.retry_interval;
    api::open_options options;
    options.directory = _config.shm_directory;
    options.lock_directory = _config.shm_directory;
    auto region = api::shm_region::open(_config.region_name, options);
    if (!region.ok()) {
        attach_failed(region.message()); // kwikd not running (yet), no access, or another control process
        return;
    }
    auto channel = api::control_channel::attach(*region);
    if (!channel.ok()) {
        attach_failed(channel.message());
        return;
    }
    _attach_failure.clear();
    const std::uint64_t started = region->header().start_time_ns;
    const bool restarted = _ever_attached && started != _kwikd_start;
    if (restarted) {
        ++_counters.kwikd_restarts;
    }
    _kwikd_start = started;
    _ever_attached = true;
    _region = std::move(region).value();
    _channel = std::move(channel).value();
    ++_counters.attaches;
    // Events queued for a control process before this one are stale news: what kwikd holds
    // now comes from list_state.
    api::event drained;
    while (_channel.try_receive(drained)) {
    }
    _adopted = false;
    _listed.clear();
    if (restarted && _cb.on_kwikd_restarted) {
        _cb.on_kwikd_restarted();
    }
    api::command list = api::make_list_state();
    if (_channel.try_send(list)) {
        _list_sequence = list.header.sequence;
    }
    if (_cb.on_attach_change) {
        _cb.on_attach_change(true);
    }
}

void dataplane_link::detach(const char* why) {
    for (auto& [seq, f] : _sent) {
        fail(f, why);
    }
    _sent.clear();
    _region = api::shm_region{};
    _channel = api::control_channel{};
    _adopted = false;
    _list_sequence = 0;
    if (_cb.on_attach_change) {
        _cb.on_attach_change(false);
    }
}

void dataplane_link::pump(time_ns now) {
    while (!_queue.empty() && _adopted) {
        in_flight& f = _queue.front();
        if (!_channel.try_send(f.cmd)) {
            return; // ring full: kwikd catches up, we try next pass
        }
        ++_counters.commands_sent;
        f.deadline = now + _config.command_timeout;
        _sent.emplace(f.cmd.header.sequence, std::move(f));
        _queue.pop_front();
    }
}

void dataplane_link::take_events(time_ns) {
    std::array<api::event, 64> events;
    for (;;) {
        const unsigned n = _channel.receive_burst({events.data(), events.size()});
        for (unsigned i = 0; i < n; ++i) {
            const api::event& e = events[i];
            ++_counters.events;
            if (_list_sequence != 0 && e.header.ack_sequence == _list_sequence) {
                adopt(e);
                continue;
            }
            switch (e.header.type) {
            case api::message_type::command_result:
            case api::message_type::counters_ready: {
                auto it = _sent.find(e.header.ack_sequence);
                if (it == _sent.end()) {
                    break; // a command of a control process before this one
                }
                in_flight f = std::move(it->second);
                _sent.erase(it);
                const bool ok = e.header.type == api::message_type::counters_ready ||
                                e.command_result.status == api::result_status::ok;
                if (!ok) {
                    ++_counters.commands_failed;
                }
                // What kwikd refused is not held (already_exists: the very same object is, e.g. a
                // path with this id and tuple; conflict, a tuple bound elsewhere, is not): the
                // desired state follows. stopped is no refusal: kwikd went away before applying
                // it, and the resync pushes it to the next kwikd.
                if (!ok && e.header.type == api::message_type::command_result &&
                    e.command_result.status != api::result_status::already_exists &&
                    e.command_result.status != api::result_status::stopped) {
                    if (f.cmd.header.type == api::message_type::add_connection) {
                        _desired.erase(f.cmd.add_connection.connection_id);
                    } else if (f.cmd.header.type == api::message_type::add_path) {
                        if (auto c = _desired.find(f.cmd.add_path.connection_id); c != _desired.end()) {
                            c->second.paths.erase(f.cmd.add_path.path_id);
                        }
                    } else if (f.cmd.header.type == api::message_type::set_qos) {
                        if (auto c = _desired.find(f.cmd.set_qos.connection_id); c != _desired.end()) {
                            c->second.streams.erase(f.cmd.set_qos.stream_id);
                        }
                    } else if (f.cmd.header.type == api::message_type::set_connection_keys) {
                        if (auto c = _desired.find(f.cmd.set_connection_keys.connection_id); c != _desired.end()) {
                            c->second.data_key.reset();
                        }
                    }
                }
                forget_key(f.cmd);
                if (f.cb) {
                    f.cb(e);
                }
                break;
            }
            case api::message_type::path_up:
                if (_cb.on_path_up) {
                    _cb.on_path_up(e.path_up);
                }
                break;
            case api::message_type::path_down:
                if (_cb.on_path_down) {
                    _cb.on_path_down(e.path_down);
                }
                break;
            case api::message_type::unknown_path:
                if (_cb.on_unknown_path) {
                    _cb.on_unknown_path(e.unknown_path);
                }
                break;
            case api::message_type::connection_closed:
                if (_cb.on_connection_closed) {
                    _cb.on_connection_closed(e.connection_closed);
                }
                break;
            default:
                break;
            }
        }
        if (n < events.size()) {
            return;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Adopting kwikd's state, and pushing ours

void dataplane_link::adopt(const api::event& e) {
    switch (e.header.type) {
    case api::message_type::connection_info: {
        const api::connection_info_body& b = e.connection_info;
        desired_connection c;
        c.id = b.connection_id;
        c.name = std::string(api::get_text(b.name));
        c.role = b.role;
        c.endpoint = b.endpoint;
        c.endpoint_length = b.endpoint_length;
        c.endpoint_path = std::string(api::get_text(b.endpoint_path));
        c.owner_hint = b.owner_worker;
        _listed.push_back(std::move(c));
        return;
    }
    case api::message_type::path_info: {
        const api::path_info_body& b = e.path_info;
        for (desired_connection& c : _listed) {
            if (c.id == b.connection_id) {
                c.paths[b.path_id] = desired_path{b.path_id, b.tuple, b.weight, b.max_bandwidth_mbps, b.standby != 0};
            }
        }
        return;
    }
    case api::message_type::command_result:
        break;
    default:
        return;
    }
    // The listing is complete: union of what kwikd holds and what we want. A connection of ours
    // whose id kwikd holds under another name was added while detached (nothing about it was
    // sent): it moves to a free id, theirs is adopted as it is.
    _list_sequence = 0;
    for (const desired_connection& listed : _listed) {
        auto it = _desired.find(listed.id);
        if (it != _desired.end() && it->second.name != listed.name) {
            std::uint64_t to = next_connection_id();
            for (const desired_connection& l : _listed) {
                to = std::max(to, l.id + 1);
            }
            renumber(listed.id, to);
        }
    }
    for (desired_connection& listed : _listed) {
        auto it = _desired.find(listed.id);
        if (it == _desired.end()) {
            ++_counters.adopted_connections; // kwik-cp restarted: kwikd kept it
            _desired.emplace(listed.id, listed); // a copy: resync() still reads _listed
            continue;
        }
        for (auto& [pid, p] : listed.paths) {
            it->second.paths.try_emplace(pid, p);
        }
    }
    resync();
    _adopted = true;
}

void dataplane_link::renumber(std::uint64_t from, std::uint64_t to) {
    auto node = _desired.extract(from);
    node.key() = to;
    node.mapped().id = to;
    _desired.insert(std::move(node));
    for (in_flight& f : _queue) {
        if (api::connection_of(f.cmd) == from) {
            api::set_connection_of(f.cmd, to);
        }
    }
    if (_cb.on_connection_renumbered) {
        _cb.on_connection_renumbered(from, to);
    }
}

// Whatever we want that kwikd does not hold (it restarted): sent again, ahead of new commands,
// except what a queued command (made while detached) is about to add anyway.
void dataplane_link::resync() {
    auto queued = [&](api::message_type type, std::uint64_t id, std::uint64_t path) {
        return std::any_of(_queue.begin(), _queue.end(), [&](const in_flight& f) {
            return f.cmd.header.type == type && api::connection_of(f.cmd) == id && api::path_of(f.cmd) == path;
        });
    };
    std::vector<in_flight> again;
    for (const auto& [id, c] : _desired) {
        const auto listed = std::find_if(_listed.begin(), _listed.end(), [&](const desired_connection& l) {
            return l.id == id;
        });
        if (listed == _listed.end() && !queued(api::message_type::add_connection, id, 0)) {
            again.push_back({add_connection_command(c), {}, 0});
            if (c.data_key && !queued(api::message_type::set_connection_keys, id, 0)) {
                again.push_back({set_keys_command(id, *c.data_key), {}, 0}); // the new kwikd has no key
            }
        }
        for (const auto& [pid, p] : c.paths) {
            const bool held = listed != _listed.end() && listed->paths.contains(pid);
            if (!held && !queued(api::message_type::add_path, id, pid)) {
                again.push_back({add_path_command(id, p), {}, 0});
            }
        }
        if (listed == _listed.end()) { // a new kwikd: the connection's settings went with the old one
            if (c.scheduler) {
                again.push_back({api::make_set_scheduler(id, *c.scheduler), {}, 0});
            }
            for (const auto& [sid, q] : c.streams) {
                again.push_back({set_qos_command(id, sid, q), {}, 0});
            }
        }
    }
    _counters.resync_commands += again.size();
    for (auto it = again.rbegin(); it != again.rend(); ++it) {
        _queue.push_front(std::move(*it));
    }
    _listed.clear();
}

// ---------------------------------------------------------------------------------------------
// The desired state

result<void> dataplane_link::add_connection(const desired_connection& c, done cb) {
    if (c.id == 0) {
        return error{"connection id: must be nonzero"};
    }
    if (_desired.contains(c.id)) {
        return error{"connection id " + std::to_string(c.id) + " is in use"};
    }
    if (find(c.name) != nullptr) {
        return error{"connection '" + c.name + "' exists"};
    }
    if (c.name.empty() || c.name.size() >= api::connection_name_size) {
        return error{"connection name: 1.." + std::to_string(api::connection_name_size - 1) + " bytes"};
    }
    if (c.endpoint_path.size() >= api::endpoint_path_size) {
        return error{"endpoint path: longer than " + std::to_string(api::endpoint_path_size - 1) + " bytes"};
    }
    desired_connection d = c;
    d.paths.clear();
    _desired.emplace(c.id, d);
    enqueue(add_connection_command(d), std::move(cb));
    if (d.data_key) {
        enqueue(set_keys_command(d.id, *d.data_key), {});
    }
    for (const auto& [pid, p] : c.paths) {
        if (auto r = add_path(c.id, p); !r.ok()) {
            return r;
        }
    }
    return {};
}

result<void> dataplane_link::remove_connection(std::uint64_t id, std::uint32_t drain_timeout_ms, done cb) {
    const bool never_sent = unsent(id);
    if (_desired.erase(id) == 0) {
        return error{"connection " + std::to_string(id) + " is not known"};
    }
    api::command remove = api::make_remove_connection(id, drain_timeout_ms);
    if (!never_sent) {
        enqueue(remove, std::move(cb));
        return {};
    }
    // kwikd never heard of it (added while detached): its commands are dropped, not sent, so
    // that a connection kwikd holds under this id (an earlier control process's) is untouched.
    drop_queued(id, "connection " + std::to_string(id) + " was removed before it reached kwikd");
    if (cb) {
        cb(api::make_command_result(remove, api::result_status::ok));
    }
    return {};
}

result<void> dataplane_link::forget_connection(std::uint64_t id, const std::string& reason) {
    if (_desired.erase(id) == 0) {
        return error{"connection " + std::to_string(id) + " is not known"};
    }
    drop_queued(id, reason);
    return {};
}

bool dataplane_link::unsent(std::uint64_t id) const noexcept {
    return std::any_of(_queue.begin(), _queue.end(), [&](const in_flight& f) {
        return f.cmd.header.type == api::message_type::add_connection && f.cmd.add_connection.connection_id == id;
    });
}

void dataplane_link::drop_queued(std::uint64_t id, const std::string& reason) {
    for (auto it = _queue.begin(); it != _queue.end();) {
        if (api::connection_of(it->cmd) != id) {
            ++it;
            continue;
        }
        in_flight f = std::move(*it);
        it = _queue.erase(it);
        fail(f, reason);
    }
}

result<void> dataplane_link::add_path(std::uint64_t connection_id, const desired_path& p, done cb) {
    if (auto room = room_for(1); !room) {
        return room;
    }
    auto it = _desired.find(connection_id);
    if (it == _desired.end()) {
        return error{"connection " + std::to_string(connection_id) + " is not known"};
    }
    if (it->second.paths.contains(p.path_id)) {
        return error{"path " + std::to_string(p.path_id) + " exists in connection " + std::to_string(connection_id)};
    }
    if (it->second.paths.size() >= _config.max_paths_per_connection) {
        return error{"connection " + std::to_string(connection_id) + " has its maximum of " +
                     std::to_string(_config.max_paths_per_connection) + " paths"};
    }
    // A tuple another desired path holds is refused here, so that a resync after a kwikd
    // restart never re-adds it ahead of its owner. A scan over every desired path: add_path
    // is a control-plane request, far rarer than the packets those paths carry.
    for (const auto& [cid, c] : _desired) {
        for (const auto& [pid, held] : c.paths) {
            if (same_tuple(held.tuple, p.tuple)) {
                return error{"path.tuple: bound already to connection " + std::to_string(cid) + " path " +
                             std::to_string(pid)};
            }
        }
    }
    it->second.paths.emplace(p.path_id, p);
    enqueue(add_path_command(connection_id, p), std::move(cb));
    return {};
}

result<void> dataplane_link::remove_path(std::uint64_t connection_id, std::uint64_t path_id,
                                         std::uint32_t drain_timeout_ms, done cb) {
    if (auto room = room_for(1); !room) {
        return room;
    }
    auto it = _desired.find(connection_id);
    if (it == _desired.end() || it->second.paths.erase(path_id) == 0) {
        return error{"path " + std::to_string(path_id) + " of connection " + std::to_string(connection_id) +
                     " is not known"};
    }
    enqueue(api::make_remove_path(connection_id, path_id, drain_timeout_ms), std::move(cb));
    return {};
}

result<void> dataplane_link::set_scheduler(std::uint64_t connection_id, api::scheduler_strategy strategy, done cb) {
    if (auto room = room_for(1); !room) {
        return room;
    }
    auto it = _desired.find(connection_id);
    if (it == _desired.end()) {
        return error{"connection " + std::to_string(connection_id) + " is not known"};
    }
    it->second.scheduler = strategy;
    enqueue(api::make_set_scheduler(connection_id, strategy), std::move(cb));
    return {};
}

result<void> dataplane_link::set_stream_qos(std::uint64_t connection_id, std::uint64_t stream_id,
                                            const desired_stream_qos& qos, done cb) {
    if (auto room = room_for(1); !room) {
        return room;
    }
    auto it = _desired.find(connection_id);
    if (it == _desired.end()) {
        return error{"connection " + std::to_string(connection_id) + " is not known"};
    }
    if (stream_id == 0 || stream_id > api::max_stream_id) {
        return error{"stream id " + std::to_string(stream_id) + " is not in 1.." + std::to_string(api::max_stream_id)};
    }
    it->second.streams[stream_id] = qos;
    enqueue(set_qos_command(connection_id, stream_id, qos), std::move(cb));
    return {};
}

result<void> dataplane_link::set_roles(std::uint64_t connection_id, const std::vector<role_change>& changes, done cb) {
    if (auto room = room_for((changes.size() + api::max_weights - 1) / api::max_weights); !room) {
        return room;
    }
    auto it = _desired.find(connection_id);
    if (it == _desired.end()) {
        return error{"connection " + std::to_string(connection_id) + " is not known"};
    }
    if (changes.empty()) {
        return error{"set_roles: no path given"};
    }
    for (std::size_t i = 0; i < changes.size(); ++i) {
        if (!it->second.paths.contains(changes[i].path_id)) {
            return error{"set_roles[" + std::to_string(i) + "].path_id: " + std::to_string(changes[i].path_id) +
                         " is not a path of connection " + std::to_string(connection_id)};
        }
        if (!std::isfinite(changes[i].weight) || changes[i].weight < 0.0f) {
            return error{"set_roles[" + std::to_string(i) + "].weight: must be finite and >= 0"};
        }
    }
    // One answer for the whole change: the first failure, else the last command's result.
    struct batch {
        std::size_t left = 0;
        bool failed = false;
        done cb;
    };
    auto shared = std::make_shared<batch>();
    shared->left = (changes.size() + api::max_weights - 1) / api::max_weights;
    shared->cb = std::move(cb);
    for (std::size_t first = 0; first < changes.size(); first += api::max_weights) {
        api::command c = api::make_command(api::message_type::set_weights);
        c.set_weights.connection_id = connection_id;
        const std::size_t n = std::min(api::max_weights, changes.size() - first);
        c.set_weights.count = static_cast<std::uint32_t>(n);
        for (std::size_t i = 0; i < n; ++i) {
            const role_change& r = changes[first + i];
            c.set_weights.entries[i].path_id = r.path_id;
            c.set_weights.entries[i].weight = r.weight;
            c.set_weights.entries[i].standby = r.standby;
            desired_path& p = it->second.paths.at(r.path_id);
            p.weight = r.weight;
            if (r.standby != api::standby_change::keep) {
                p.standby = r.standby == api::standby_change::set;
            }
        }
        enqueue(c, [shared](const api::event& e) {
            const bool ok = e.command_result.status == api::result_status::ok;
            --shared->left;
            if (shared->failed) {
                return;
            }
            if (!ok || shared->left == 0) {
                shared->failed = !ok;
                if (shared->cb) {
                    shared->cb(e);
                }
            }
        });
    }
    return {};
}

result<void> dataplane_link::room_for(std::size_t n) const {
    if (_queue.size() + n > _config.max_queued) {
        return error{"too many commands waiting for kwikd (" + std::to_string(_queue.size()) + " queued, link max_queued " +
                     std::to_string(_config.max_queued) + ")"};
    }
    return {};
}

void dataplane_link::send(api::command c, done cb) {
    enqueue(c, std::move(cb));
}

void dataplane_link::enqueue(api::command c, done cb) {
    if (_queue.size() >= _config.max_queued) {
        ++_counters.commands_failed;
        if (cb) {
            cb(local_failure(c, "too many commands waiting for kwikd"));
        }
        return;
    }
    _queue.push_back({c, std::move(cb), 0});
}

void dataplane_link::fail(in_flight& f, const std::string& reason) {
    ++_counters.commands_failed;
    forget_key(f.cmd);
    if (f.cb) {
        f.cb(local_failure(f.cmd, reason));
    }
}

time_ns dataplane_link::next_poll(time_ns now) const noexcept {
    constexpr time_ns ms = 1'000'000;
    if (!_region.valid()) {
        return std::max(now, _next_attempt);
    }
    if (waiting() > 0 || !_adopted) {
        return now + 1 * ms;
    }
    return now + (_desired.empty() ? 100 : 10) * ms;
}

const desired_connection* dataplane_link::find(std::uint64_t id) const {
    auto it = _desired.find(id);
    return it == _desired.end() ? nullptr : &it->second;
}

const desired_connection* dataplane_link::find(const std::string& name) const {
    for (const auto& [id, c] : _desired) {
        if (c.name == name) {
            return &c;
        }
    }
    return nullptr;
}

std::uint64_t dataplane_link::next_connection_id() const {
    const std::uint64_t highest = _desired.empty() ? 0 : _desired.rbegin()->first;
    return highest < api::first_dynamic_connection_id ? api::first_dynamic_connection_id : highest + 1;
}

std::optional<api::counters_reader> dataplane_link::counters_reader() const {
    if (!_region.valid()) {
        return std::nullopt;
    }
    auto reader = api::counters_reader::attach(_region);
    if (!reader.ok()) {
        return std::nullopt;
    }
    return std::move(reader).value();
}

std::optional<api::counters_totals> dataplane_link::read_counters() const {
    if (!_region.valid()) {
        return std::nullopt;
    }
    auto reader = api::counters_reader::attach(_region);
    if (!reader.ok()) {
        return std::nullopt;
    }
    return reader->read_totals();
}

} // namespace kwik::cp
