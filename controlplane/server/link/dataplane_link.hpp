// kwik-cp's end of kwikd's shared-memory interface (dataplane/api/). It keeps the connections
// and paths kwik-cp wants (the desired state) and makes kwikd hold them: it attaches to the
// region (retrying while kwikd is absent), sends commands and matches their answers, turns
// kwikd's events into callbacks, and reads the counters. When kwik-cp starts it adopts what
// kwikd already holds (list_state), so a restarted control process disturbs nothing; when kwikd
// restarts (its region is replaced) it pushes the desired state again, less what the owner
// forgot in on_kwikd_restarted (kwik-cp: client connections, whose transport state is lost;
// docs/KCP_SERVER.md 7.2). One thread: kwik-cp's
// event loop calls poll(); nothing here blocks.
#pragma once

#include <array>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "common/result.hpp"
#include "dataplane/api/command_ring.hpp"
#include "dataplane/api/commands.hpp"
#include "dataplane/api/counters.hpp"
#include "dataplane/api/shm_region.hpp"

namespace kwik::cp {

using time_ns = std::uint64_t;

struct desired_path {
    std::uint64_t path_id = 0;
    api::five_tuple tuple{};
    float weight = 1.0f; // 1: the load balancer's; other values pinned
    std::uint32_t max_bandwidth_mbps = 0;
    bool standby = false;
};

// A stream's QoS as kwik-cp last set it (set_stream_qos); kwikd applies it to the stream when it
// opens if it is not open yet.
struct desired_stream_qos {
    api::stream_priority priority = api::stream_priority::normal;
    std::uint32_t min_bandwidth_mbps = 0;
};

// The key of a connection's ENCRYPTED frames, as the session's hello agreed it (auth.hpp
// accepted_hello): installed with set_connection_keys after add_connection, and again with it
// after a kwikd restart. Cleansed when destroyed; never logged.
struct desired_key {
    std::uint8_t phase = 0;
    std::array<std::uint8_t, api::aead_key_size> key{};
    std::uint64_t valid_until_unix_ms = 0; // 0: no limit
    std::uint64_t max_frames = 0;          // 0: no limit
    bool require_encryption = false;       // false: kwikd encrypts once the client does

    desired_key() = default;
    desired_key(std::uint8_t phase_, const std::array<std::uint8_t, api::aead_key_size>& key_,
                std::uint64_t valid_until_unix_ms_, std::uint64_t max_frames_, bool require_encryption_) noexcept
        : phase(phase_), key(key_), valid_until_unix_ms(valid_until_unix_ms_), max_frames(max_frames_),
          require_encryption(require_encryption_) {}
    desired_key(const desired_key&) = default;
    desired_key& operator=(const desired_key&) = default;
    ~desired_key();
};

struct desired_connection {
    std::uint64_t id = 0;
    std::string name; // the KCP connection id
    api::connection_role role = api::connection_role::server;
    api::endpoint_kind endpoint = api::endpoint_kind::discard;
    std::uint64_t endpoint_length = 0;
    std::string endpoint_path;
    std::uint16_t owner_hint = api::any_worker;
    std::map<std::uint64_t, desired_path> paths;
    std::optional<api::scheduler_strategy> scheduler; // none: kwikd's default
    std::map<std::uint64_t, desired_stream_qos> streams; // by stream id
    std::optional<desired_key> data_key; // none: the connection carries no ENCRYPTED frames
};

struct link_config {
    std::string region_name = "kwik";
    std::string shm_directory = "/dev/shm"; // kwikd's [kwikd] shm_directory: region and lock files
    time_ns retry_interval = 500'000'000;   // between attach attempts while kwikd is absent
    time_ns command_timeout = 5'000'000'000; // an unanswered command fails with this
    std::size_t max_queued = 65536;          // commands waiting for ring room
    std::size_t max_paths_per_connection = 8; // desired paths one connection may hold (kwikd's transport.max_paths)
};

struct link_counters {
    std::uint64_t attaches = 0, kwikd_restarts = 0, adopted_connections = 0;
    std::uint64_t commands_sent = 0, commands_failed = 0, commands_timed_out = 0;
    std::uint64_t events = 0, resync_commands = 0;
};

// What the owner hears about (all optional). Events arrive as kwikd raised them.
struct link_callbacks {
    std::function<void(const api::path_up_body&)> on_path_up;
    std::function<void(const api::path_down_body&)> on_path_down;
    std::function<void(const api::unknown_path_body&)> on_unknown_path;
    std::function<void(const api::connection_closed_body&)> on_connection_closed;
    // attached: a (new) kwikd is there and the desired state is being applied; detached: gone.
    std::function<void(bool attached)> on_attach_change;
    // An attach attempt failed for a reason other than the last attempt's (kwikd not running,
    // permission denied naming the file and the fix, another control process holding the lock):
    // said once per change of reason, not once per retry.
    std::function<void(const std::string& reason)> on_attach_failed;
    // A new kwikd instance replaced the one this link had attached to (not the first attach,
    // and not a restarted control process adopting kwikd's state): called before list_state is
    // sent, so what the owner forgets here (forget_connection) is not pushed again.
    std::function<void()> on_kwikd_restarted;
    // A connection added while kwikd was not adopted yet took an id that kwikd's list_state
    // shows for a connection of another name (one an earlier control process added): ours was
    // re-numbered before any command about it was sent, and is known by `to` from now on.
    std::function<void(std::uint64_t from, std::uint64_t to)> on_connection_renumbered;
};

class dataplane_link {
public:
    // The result of one command: kwikd's command_result (or counters_ready), or a failure
    // made here (timeout, detached) with status internal_error and a reason.
    using done = std::function<void(const api::event&)>;

    dataplane_link(link_config config, link_callbacks callbacks);

    // One pass of kwik-cp's loop: attach or notice a new kwikd, send queued commands, take
    // events, time out commands. now: a monotonic clock (CLOCK_MONOTONIC ns).
    void poll(time_ns now);

    bool attached() const noexcept { return _region.valid(); }
    bool adopted() const noexcept { return _adopted; } // list_state answered since attaching
    // When the owner should call poll() next (CLOCK_MONOTONIC ns): at once plus 1 ms while a
    // command waits, 10 ms while attached with connections (their events), the next attach
    // attempt while detached, else 100 ms (a kwikd restart is noticed then).
    time_ns next_poll(time_ns now) const noexcept;
    // Commands not answered yet (queued for ring room, or sent).
    std::size_t waiting() const noexcept { return _queue.size() + _sent.size(); }
    // Ok when n more commands fit in the queue (max_queued); else why not. The desired-state
    // calls below check it before they change anything, so a full queue refuses them at once
    // (their cb is not called) instead of failing the command after the change.
    result<void> room_for(std::size_t n) const;

    // The desired state. Each call records the change and sends the command; cb (optional)
    // gets kwikd's answer. Refused here at once, with a reason, when it contradicts the
    // desired state (unknown connection, duplicate id...). After a kwikd restart the desired
    // state is sent again without callbacks.
    result<void> add_connection(const desired_connection& c, done cb = {});
    result<void> remove_connection(std::uint64_t id, std::uint32_t drain_timeout_ms, done cb = {});
    // Drops a connection kwikd no longer holds (a restarted kwikd) from the desired state
    // without a command: the resync does not add it again. Its queued commands fail with
    // `reason`. Refused for an unknown connection.
    result<void> forget_connection(std::uint64_t id, const std::string& reason);
    // Whether the connection's add_connection still waits in the queue (kwikd never heard of it).
    bool unsent(std::uint64_t id) const noexcept;
    result<void> add_path(std::uint64_t connection_id, const desired_path& p, done cb = {});
    result<void> remove_path(std::uint64_t connection_id, std::uint64_t path_id, std::uint32_t drain_timeout_ms,
                             done cb = {});
    // Settings of a known connection, kept in the desired state (path weights in its paths) and
    // sent again after a kwikd restart. Refused here for an unknown connection or path.
    result<void> set_scheduler(std::uint64_t connection_id, api::scheduler_strategy strategy, done cb = {});
    result<void> set_stream_qos(std::uint64_t connection_id, std::uint64_t stream_id, const desired_stream_qos& qos,
                                done cb = {});
    // Weights and standby flags of paths of one connection (kwikd's set_weights, in commands of
    // api::max_weights entries; cb gets the last one's answer, or the first failure). Recorded
    // in the desired state, so a restarted kwikd gets the paths with these roles. Refused at
    // once, naming the entry, for an unknown connection or path or a bad weight.
    struct role_change {
        std::uint64_t path_id = 0;
        float weight = 1.0f;
        api::standby_change standby = api::standby_change::keep;
    };
    result<void> set_roles(std::uint64_t connection_id, const std::vector<role_change>& changes, done cb = {});
    // Commands that change settings without being part of the desired state's identity.
    void send(api::command c, done cb = {});

    const std::map<std::uint64_t, desired_connection>& connections() const noexcept { return _desired; }
    const desired_connection* find(std::uint64_t id) const;
    const desired_connection* find(const std::string& name) const;
    // A free id for a connection this control process adds: api::first_dynamic_connection_id
    // or above every such id in use, never one of kwikd's configured connections (1..n).
    std::uint64_t next_connection_id() const;

    // The counters region, read lock-free; empty while detached.
    std::optional<api::counters_totals> read_counters() const;
    // A reader of the counters region (per worker, drop reason names); valid until the next
    // poll(), which may detach. Empty while detached.
    std::optional<api::counters_reader> counters_reader() const;
    const link_counters& counters() const noexcept { return _counters; }

private:
    struct in_flight {
        api::command cmd;
        done cb;
        time_ns deadline = 0;
    };

    void attach(time_ns now);
    void attach_failed(const std::string& reason);
    void detach(const char* why);
    void adopt(const api::event& e);
    void renumber(std::uint64_t from, std::uint64_t to);
    void resync();
    void pump(time_ns now);
    void take_events(time_ns now);
    void fail(in_flight& f, const std::string& reason);
    void enqueue(api::command c, done cb);
    // Fails and drops every queued (unsent) command about connection id.
    void drop_queued(std::uint64_t id, const std::string& reason);

    link_config _config;
    link_callbacks _cb;
    api::shm_region _region;
    api::control_channel _channel;
    std::map<std::uint64_t, desired_connection> _desired;
    std::deque<in_flight> _queue;                        // waiting for ring room
    std::unordered_map<std::uint64_t, in_flight> _sent;  // by command sequence
    std::uint64_t _list_sequence = 0;                    // the adopting list_state's
    std::vector<desired_connection> _listed;             // what kwikd reported while adopting
    bool _adopted = false;
    bool _ever_attached = false;
    std::uint64_t _kwikd_start = 0; // region creator's start time: a new value = a new kwikd
    time_ns _next_attempt = 0;
    std::string _attach_failure; // the last failed attempt's reason; empty once attached
    link_counters _counters;
};

} // namespace kwik::cp
