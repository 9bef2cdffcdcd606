// Where a command goes: kwikd's main lcore takes the control process's commands off the
// shared-memory ring (api::dataplane_channel), checks each (api::validate, then against its
// directory of connections and paths), resolves what only it knows (the owning worker, the
// connection's slot there, the port a path's local address is on) and posts a worker_command
// to the owner's mailbox. When the worker answers, it finishes the command: publishes or removes
// path bindings (path_table, RCU), installs or removes rte_flow rules, frees removed
// connections, and answers the control process. Workers' events (path up/down, unknown path,
// connection closed) are forwarded as they come. One action function per command, as VPP does.
// Main lcore only; nothing here is on the packet path.
#pragma once

#include <array>
#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "dataplane/api/command_ring.hpp"
#include "dataplane/api/commands.hpp"
#include "dataplane/engine/path_table.hpp"
#include "dataplane/engine/worker.hpp"
#include "dataplane/engine/worker_mailbox.hpp"
#include "drivers/flow_steering.hpp"

namespace kwik::engine {

// A port as the handler needs it: which local addresses and UDP ports are Kwik's there, and the
// device for rte_flow rules (null: no steering, as in tests without ports).
struct handler_port {
    drivers::port* device = nullptr;
    std::uint16_t rx_queues = 1;
    std::vector<ip_address> addresses;
    std::vector<std::uint16_t> kwik_ports;
};

struct handler_config {
    api::dataplane_channel* channel = nullptr; // null: no control process (tests)
    api::shm_region* region = nullptr;         // counters epoch; null: none
    path_table* paths = nullptr;
    std::vector<handler_port> ports;
    std::vector<worker*> workers;              // the owners; build_connection() runs here
    std::vector<worker_mailbox> mailboxes;     // mailboxes[w] is workers[w]'s
    std::uint32_t slots_per_worker = 1024;     // connection slots on each worker
    std::uint32_t max_bindings = 262144;       // path table capacity
    transport::connection_config transport;    // what new connections start with
    std::uint32_t commands_per_poll = 64;
    std::size_t max_outbox = 65536; // events held while the control process does not read
};

struct handler_counters {
    std::uint64_t commands = 0, rejected = 0, completed = 0;
    std::uint64_t events_forwarded = 0;
    std::uint64_t events_lost = 0; // unsolicited events beyond max_outbox (answers never are)
    std::uint64_t flow_rules = 0, handoff_paths = 0; // paths steered by rte_flow / by hand-off
    std::uint64_t worker_queue_full = 0;             // answered no_capacity: a worker lagged
};

class command_handler {
public:
    explicit command_handler(handler_config config);
    ~command_handler();
    command_handler(const command_handler&) = delete;
    command_handler& operator=(const command_handler&) = delete;

    // Before the workers are launched: apply one command now (the worker applies it on this
    // thread). The configuration's static connections are bound this way, through the same
    // checks as the control process's. False with *error: the result's reason.
    bool apply_before_launch(const api::command& command, std::string* error);

    // One housekeeping pass: the workers' answers and events, then up to commands_per_poll new
    // commands, then whatever the event ring could not take last time.
    void poll(transport::time_ns now);
    // After the workers stopped (and applied what was in their mailboxes): take their last
    // answers, answer every command still waiting with result_status::stopped "kwikd stopped" (those
    // still on the command ring included), and stop taking commands. poll() afterwards only
    // sends what the event ring could not take yet (unsent_events()).
    void shutdown(transport::time_ns now);

    const handler_counters& counters() const noexcept { return _counters; }
    // Events and answers waiting for room on the event ring.
    std::size_t unsent_events() const noexcept { return _outbox.size(); }
    std::size_t connections() const noexcept { return _connections.size(); }
    std::size_t path_count() const noexcept { return _tuples.size(); }
    // The KCP name of a connection ("#<id>" if there is none).
    std::string name_of(std::uint64_t id) const;

private:
    struct path_record {
        std::uint64_t id = 0;
        five_tuple tuple{};      // as received: src = remote
        api::five_tuple api_tuple{};
        std::uint16_t port = 0;
        float weight = 1;
        std::uint32_t max_bandwidth_mbps = 0;
        bool standby = false;
        bool bound = false;    // published in the path table
        bool removing = false; // remove_path posted
        std::optional<drivers::flow_rule> rule;
    };
    enum class conn_state : std::uint8_t { installing, active, removing };
    struct connection_record {
        std::uint64_t id = 0;
        std::string name;
        unsigned worker = 0;
        std::uint32_t slot = 0;
        api::connection_role role = api::connection_role::server;
        api::endpoint_kind endpoint = api::endpoint_kind::discard;
        std::uint64_t endpoint_length = 0;
        std::string endpoint_path;
        // set_connection_keys the worker accepted: how many phases it holds (at most 2), the
        // newest phase, and the last require_encryption. Never the key.
        std::uint8_t live_keys = 0;
        std::uint8_t key_phase = 0;
        std::uint8_t older_key_phase = 0; // the other phase held when live_keys is 2
        bool require_encryption = false;
        conn_state state = conn_state::installing;
        std::vector<path_record> paths;
    };
    // A command posted to workers and not answered yet, by the token the workers echo.
    struct pending {
        api::command cmd;
        unsigned workers_left = 1;
    };
    // list_state answered over several passes when the event ring is short of room.
    struct listing {
        api::command cmd;
        std::vector<std::uint64_t> ids; // connections to describe, in order
        std::size_t next = 0;
        std::size_t connections_sent = 0;
        std::size_t paths_sent = 0;
    };
    using tuple_key = std::array<std::uint8_t, path_key_bytes>;

    void dispatch(const api::command& c, transport::time_ns now);
    // The action functions: each checks state and posts, or answers at once.
    void on_add_connection(const api::command& c);
    void on_remove_connection(const api::command& c);
    void on_add_path(const api::command& c);
    void on_remove_path(const api::command& c);
    void on_connection_setting(const api::command& c, worker_op op);
    void on_request_counters(const api::command& c);
    void on_list_state(const api::command& c);
    // Completions, when the owner answered.
    void on_reply(const worker_reply& r, transport::time_ns now);
    void complete(const pending& p, const worker_reply& r, transport::time_ns now);
    void continue_listing();

    // Posts wc with a fresh token and remembers it; false (answered no_capacity) when full.
    bool post(unsigned worker, worker_command wc);
    void answer(const api::command& c, api::result_status status, std::string_view reason);
    // answers (command results, counters_ready, list_state's infos) are never dropped: they
    // are bounded by the commands taken. Unsolicited events are, beyond max_outbox (counted).
    void send(const api::event& e, bool is_answer);
    void flush_outbox();
    void take_replies(transport::time_ns now);

    connection_record* find(std::uint64_t id);
    path_record* find_path(connection_record& c, std::uint64_t path_id);
    std::optional<std::uint16_t> port_of(const five_tuple& t) const;
    void bind(connection_record& c, path_record& p);
    void unbind(path_record& p);
    void forget(connection_record& c);
    void drop_path(connection_record& c, std::uint64_t path_id);
    static tuple_key key_of(const five_tuple& t) noexcept;

    handler_config _config;
    handler_counters _counters;
    std::unordered_map<std::uint64_t, connection_record> _connections;
    std::map<std::string, std::uint64_t, std::less<>> _names;
    std::map<tuple_key, std::pair<std::uint64_t, std::uint64_t>> _tuples; // -> (connection, path)
    std::vector<std::vector<std::uint32_t>> _free_slots;                  // per worker, a stack
    std::vector<std::uint32_t> _load;                                     // connections per worker
    std::unordered_map<std::uint64_t, pending> _pending;                  // by token
    std::uint64_t _next_token = 1;
    bool _stopped = false;
    std::deque<api::event> _outbox;
    std::deque<listing> _listings;
    bool _before_launch = false;
    std::optional<api::event> _sync_result; // apply_before_launch's answer
};

} // namespace kwik::engine
