// The commands the control process sends kwikd and the events kwikd sends back, as fixed-size
// plain structs that travel by value through the shared-memory rings (command_ring.hpp). This is
// the header the control plane includes; change a struct and you bump protocol_version. Plain
// data and pure functions; any thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string_view>
#include <type_traits>

namespace kwik::api {

// Checked twice: the region header carries it (the control process refuses to attach to a
// kwikd speaking another version) and every message header carries it (kwikd answers a message
// of another version with result_status::unsupported_version).
inline constexpr std::uint16_t protocol_version = 5; // 2: list_state, connection_closed, *_info;
                                                     // 3: set_connection_keys, connection_info's key state;
                                                     // 4: result_status::conflict;
                                                     // 5: result_status::stopped

inline constexpr std::size_t message_size = 256;
inline constexpr std::size_t message_header_size = 24;
inline constexpr std::size_t message_body_size = message_size - message_header_size;

inline constexpr std::size_t connection_name_size = 64; // KCP connection id, NUL-terminated
inline constexpr std::size_t endpoint_path_size = 128;
inline constexpr std::size_t reason_size = 128;
inline constexpr std::size_t max_weights = 8;
inline constexpr std::uint64_t max_path_id = (std::uint64_t{1} << 62) - 1; // a KDP varint
inline constexpr std::uint64_t max_stream_id = (std::uint64_t{1} << 62) - 1;
inline constexpr std::uint16_t any_worker = 0xFFFF;

enum class message_type : std::uint16_t {
    invalid = 0,
    // commands: control process -> kwikd
    add_connection = 1,
    remove_connection = 2,
    add_path = 3,
    remove_path = 4,
    set_scheduler = 5,
    set_weights = 6,
    set_qos = 7,
    set_windows = 8,
    request_counters = 9,
    list_state = 10, // kwikd answers with connection_info and path_info events, then the result
    set_connection_keys = 11, // key material for ENCRYPTED frames (docs/PROTOCOL.md 5.4, 13.8)
    // events: kwikd -> control process
    command_result = 0x101,
    path_up = 0x102,
    path_down = 0x103,
    unknown_path = 0x104,
    counters_ready = 0x105,
    connection_closed = 0x106, // the transport closed it (idle timeout, the peer's close, an error)
    connection_info = 0x107,   // list_state: one per connection
    path_info = 0x108,         // list_state: one per path
};
std::string_view to_string(message_type t) noexcept;
constexpr bool is_command(message_type t) noexcept {
    return t >= message_type::add_connection && t <= message_type::set_connection_keys;
}
constexpr bool is_event(message_type t) noexcept {
    return t >= message_type::command_result && t <= message_type::path_info;
}

// First 24 bytes of every command and event.
struct message_header {
    std::uint16_t version; // protocol_version of the sender
    message_type type;
    std::uint32_t reserved;     // zero
    std::uint64_t sequence;     // per direction, from 1; stamped by the channel's try_send
    std::uint64_t ack_sequence; // events: the command sequence this answers (command_result,
                                // counters_ready) or 0; commands: 0
};
static_assert(sizeof(message_header) == message_header_size);

// ---- field types --------------------------------------------------------------------------

enum class endpoint_kind : std::uint8_t {
    discard = 0,        // received stream data is counted and dropped
    echo = 1,           // received stream data is sent back on the same stream
    pattern_source = 2, // sends endpoint_length deterministic bytes per stream the peer opens
    file_store = 3,     // received streams are written under endpoint_path; named files served
};
inline constexpr std::uint8_t endpoint_kind_max = 3;

enum class connection_role : std::uint8_t { server = 0, client = 1 };

// The transport core's schedule_strategy, by value (the engine static_asserts the match).
enum class scheduler_strategy : std::uint8_t { min_rtt = 0, weighted = 1, round_robin = 2, redundant = 3 };
inline constexpr std::uint8_t scheduler_strategy_max = 3;

// KDP frame priority byte values (kdp::priority).
enum class stream_priority : std::uint8_t { normal = 0x00, high = 0x01, critical = 0x02, control = 0xFF };

enum class window_scope : std::uint8_t {
    connection = 0,  // the connection's receive window (MAX_DATA)
    stream = 1,      // one stream's receive window (MAX_STREAM_DATA)
    new_streams = 2, // the initial window of streams opened from now on
};
inline constexpr std::uint8_t window_scope_max = 2;

enum class ip_version : std::uint8_t { v4 = 4, v6 = 6 };

// KCP's AeadAlgorithm, by value (proto/kcp.proto).
enum class aead_algorithm : std::uint8_t { aes_256_gcm = 1 };
inline constexpr std::size_t aead_key_size = 32;

// An IPv4 or IPv6 address in network byte order: IPv4 in bytes 0-3, bytes 4-15 zero.
struct ip_address {
    std::uint8_t bytes[16];
};

// A path's UDP 5-tuple as seen by kwikd: local = the appliance's side, remote = the peer's.
// Ports in host byte order.
struct five_tuple {
    ip_version version;
    std::uint8_t reserved0;
    std::uint16_t local_port;
    std::uint16_t remote_port;
    std::uint16_t reserved1;
    ip_address local;
    ip_address remote;
};
static_assert(sizeof(five_tuple) == 40);

// ---- command bodies -----------------------------------------------------------------------

// Connection ids are split in two ranges so that the two sources never collide: kwikd numbers
// the connections of its configuration file 1..n (n <= limits.max_connections <= 2^24), and a
// control process numbers the connections it adds from first_dynamic_connection_id up.
inline constexpr std::uint64_t first_dynamic_connection_id = std::uint64_t{1} << 32;

struct add_connection_body {
    std::uint64_t connection_id;     // nonzero, unused among live connections
    char name[connection_name_size]; // the KCP connection id, 1..63 bytes + NUL
    std::uint16_t owner_hint;        // worker index to own it, or any_worker
    connection_role role;
    endpoint_kind endpoint;
    std::uint32_t reserved;
    std::uint64_t endpoint_length;          // pattern_source: the largest request answered, in
                                            // bytes (> 0; docs/PROTOCOL.md 14); others 0
    char endpoint_path[endpoint_path_size]; // file_store: absolute directory; others empty
};

struct remove_connection_body {
    std::uint64_t connection_id;
    std::uint32_t drain_timeout_ms; // time to finish in-flight data; 0: close at once
    std::uint32_t reserved;
};

struct add_path_body {
    std::uint64_t connection_id;
    std::uint64_t path_id; // <= max_path_id, unused in the connection
    five_tuple tuple;
    float initial_weight;             // load-balancing weight, >= 0, finite; 1 (where the load
                                      // balancer starts every path) leaves it adaptive, any
                                      // other value pins it as set_weights does
    std::uint32_t max_bandwidth_mbps; // 0: no cap
    std::uint8_t standby;             // 1: kept alive, carries data only after a failover
    std::uint8_t reserved[7];
};

struct remove_path_body {
    std::uint64_t connection_id;
    std::uint64_t path_id;
    std::uint32_t drain_timeout_ms;
    std::uint32_t reserved;
};

struct set_scheduler_body {
    std::uint64_t connection_id;
    scheduler_strategy strategy;
    std::uint8_t reserved[7];
};

// standby: what happens to the path's standby flag (add_path.standby) with this entry; the
// control plane's scaling and failover activate a standby path or put one back this way.
enum class standby_change : std::uint8_t { keep = 0, set = 1, clear = 2 };
inline constexpr std::uint8_t standby_change_max = 2;

struct weight_entry {
    std::uint64_t path_id;
    float weight; // >= 0, finite
    standby_change standby;
    std::uint8_t reserved[3];
};
static_assert(sizeof(weight_entry) == 16);

struct set_weights_body {
    std::uint64_t connection_id;
    std::uint32_t count; // 1..max_weights entries used
    std::uint32_t reserved;
    weight_entry entries[max_weights];
};

// The transport core's qos_policy for one stream.
struct set_qos_body {
    std::uint64_t connection_id;
    std::uint64_t stream_id;          // 1..max_stream_id
    std::uint32_t min_bandwidth_mbps; // 0: none
    std::uint32_t max_latency_ms;     // 0: no bound
    std::uint32_t max_jitter_ms;      // 0: no bound
    float loss_threshold;             // 0..1
    stream_priority priority;
    std::uint8_t reserved[7];
};

struct set_windows_body {
    std::uint64_t connection_id;
    std::uint64_t stream_id;    // scope stream: 1..max_stream_id; otherwise 0
    std::uint64_t window_bytes; // > 0, <= 2^62
    window_scope scope;
    std::uint8_t reserved[7];
};

// A key for the connection's ENCRYPTED frames, as kwik-cp's hello agreed it (DataKeyMaterial).
// The owning worker installs it beside at most one other phase (the current key, or the next one
// while rekeying). The key never appears in an answer, a log line or the counters region.
struct set_connection_keys_body {
    std::uint64_t connection_id;
    std::uint8_t key[aead_key_size];  // the AES-256 key; not all zero
    std::uint64_t valid_until_unix_ms; // wall clock (ms since the Unix epoch, KCP's valid_until_ms);
                                       // 0: no limit; otherwise still in the future when applied
    std::uint64_t max_frames;          // frames each side may seal under it; 0: no limit
    std::uint8_t key_phase;            // the AEAD extension's Key Phase byte naming this key
    aead_algorithm aead;               // aes_256_gcm
    std::uint8_t require_encryption;   // 1: send only ENCRYPTED stream frames and drop plaintext
                                       // ones; 0: encrypt once the peer does. Applies from now.
    std::uint8_t reserved[5];
};

struct request_counters_body {
    std::uint64_t reserved[2]; // zero; kwikd answers with counters_ready
};

struct list_state_body {
    std::uint64_t reserved[2]; // zero; kwikd answers with *_info events, then command_result
};

// ---- event bodies -------------------------------------------------------------------------

enum class result_status : std::uint16_t {
    ok = 0,
    invalid_command = 1,     // a field failed validate(); reason names it
    unsupported_version = 2, // header.version != protocol_version
    unknown_connection = 3,
    unknown_path = 4,
    already_exists = 5,
    no_capacity = 6,   // a table (connections, paths, flow rules) is full
    not_supported = 7, // valid, but this kwikd cannot do it (e.g. an endpoint not built)
    internal_error = 8,
    // What the command names is held by something else (add_path: the tuple is bound to another
    // connection or path, or the path id holds another tuple); already_exists means the very
    // same object is there, so a control process may treat it as applied.
    conflict = 9,
    // kwikd stopped before it applied (or answered) the command: whatever it held went with it.
    // Not a refusal: a control process keeps the command's object in its desired state and
    // pushes it to the next kwikd.
    stopped = 10,
};
inline constexpr std::uint16_t result_status_max = 10;
std::string_view to_string(result_status s) noexcept;

struct command_result_body {
    result_status status;
    std::uint16_t reserved0;
    std::uint32_t reserved1;
    std::uint64_t connection_id; // echoed from the command (0 if it has none)
    std::uint64_t path_id;       // echoed from the command (0 if it has none)
    char reason[reason_size];    // empty on ok; otherwise a sentence for a person
};

struct path_up_body {
    std::uint64_t connection_id;
    std::uint64_t path_id;
    std::uint64_t smoothed_rtt_ns; // 0 if not measured yet
};

enum class path_down_kind : std::uint8_t {
    down = 0,    // unreachable now (liveness timeout); may come back with path_up
    failed = 1,  // given up by the transport (probe timeouts exhausted)
    removed = 2, // closed for good after remove_path or remove_connection
};
inline constexpr std::uint8_t path_down_kind_max = 2;

struct path_down_body {
    std::uint64_t connection_id;
    std::uint64_t path_id;
    path_down_kind kind;
    std::uint8_t reserved[7];
    char reason[reason_size];
};

// Sent at most once per tuple per rate-limit interval by kwikd; count says how many datagrams
// arrived on the tuple since the last event for it.
struct unknown_path_body {
    five_tuple tuple; // local = the datagram's destination
    std::uint32_t count;
    std::uint16_t port_id;
    std::uint16_t worker;
    std::uint64_t first_seen_ns; // kwikd's monotonic clock
    std::uint64_t last_seen_ns;
};

struct connection_closed_body {
    std::uint64_t connection_id;
    std::uint64_t close_code; // the transport's close_code (docs/PROTOCOL.md 6.7)
    char reason[reason_size];
};

// list_state answers. Sent in one burst between the command and its command_result, whose
// reason gives the counts ("3 connections, 7 paths").
struct connection_info_body {
    std::uint64_t connection_id;
    char name[connection_name_size];
    std::uint16_t owner_worker;
    connection_role role;
    endpoint_kind endpoint;
    std::uint32_t paths;
    std::uint64_t endpoint_length;
    char endpoint_path[endpoint_path_size];
    // set_connection_keys accepted for it (never the keys): how many phases the worker holds
    // (0..2), the newest phase installed, and the last require_encryption (0 or 1).
    std::uint8_t live_keys;
    std::uint8_t key_phase;
    std::uint8_t require_encryption;
    std::uint8_t reserved[5];
};

struct path_info_body {
    std::uint64_t connection_id;
    std::uint64_t path_id;
    five_tuple tuple;
    float weight; // as added or last set (pinned), 1 = the load balancer's
    std::uint32_t max_bandwidth_mbps;
    std::uint16_t port_id; // the kwikd port the local address is on
    std::uint8_t standby;
    std::uint8_t steered; // 1: an rte_flow rule steers it to the owner's queue; 0: hand-off ring
    std::uint8_t reserved[4];
};

struct counters_ready_body {
    std::uint64_t epoch; // counters_header.epoch after every worker published
    std::uint32_t workers_published;
    std::uint32_t reserved;
};

// ---- the two message structs --------------------------------------------------------------

// One command: the header's type says which body member is live. Value-initialise (command{})
// or use the make_* helpers so that reserved bytes are zero.
struct alignas(64) command {
    message_header header;
    union {
        add_connection_body add_connection;
        remove_connection_body remove_connection;
        add_path_body add_path;
        remove_path_body remove_path;
        set_scheduler_body set_scheduler;
        set_weights_body set_weights;
        set_qos_body set_qos;
        set_windows_body set_windows;
        request_counters_body request_counters;
        list_state_body list_state;
        set_connection_keys_body set_connection_keys;
        std::uint8_t body[message_body_size];
    };
};

struct alignas(64) event {
    message_header header;
    union {
        command_result_body command_result;
        path_up_body path_up;
        path_down_body path_down;
        unknown_path_body unknown_path;
        counters_ready_body counters_ready;
        connection_closed_body connection_closed;
        connection_info_body connection_info;
        path_info_body path_info;
        std::uint8_t body[message_body_size];
    };
};

static_assert(sizeof(command) == message_size && alignof(command) == 64);
static_assert(sizeof(event) == message_size && alignof(event) == 64);
static_assert(std::is_trivially_copyable_v<command> && std::is_standard_layout_v<command>);
static_assert(std::is_trivially_copyable_v<event> && std::is_standard_layout_v<event>);
static_assert(message_size % 16 == 0); // rte_ring copies 16-byte elements at a time
static_assert(sizeof(add_connection_body) == 216);
static_assert(sizeof(add_path_body) == 72);
static_assert(sizeof(set_weights_body) == 144);
static_assert(sizeof(set_qos_body) == 40);
static_assert(sizeof(command_result_body) == 152);
static_assert(sizeof(path_down_body) == 152);
static_assert(sizeof(unknown_path_body) == 64);
static_assert(sizeof(connection_closed_body) == 144);
static_assert(sizeof(connection_info_body) == 224);
static_assert(sizeof(set_connection_keys_body) == 64);
static_assert(sizeof(path_info_body) == 72);
static_assert(sizeof(add_connection_body) <= message_body_size && sizeof(set_weights_body) <= message_body_size);

// ---- helpers ------------------------------------------------------------------------------

// Copies text into a NUL-terminated fixed field; false (field left empty) if it does not fit.
template <std::size_t N> bool set_text(char (&field)[N], std::string_view text) noexcept {
    std::memset(field, 0, N);
    if (text.size() >= N) {
        return false;
    }
    if (!text.empty()) { // an empty view may have a null data()
        std::memcpy(field, text.data(), text.size());
    }
    return true;
}
// Copies as much of text as fits (for reasons, which may be cut).
template <std::size_t N> void set_text_truncated(char (&field)[N], std::string_view text) noexcept {
    std::memset(field, 0, N);
    const std::size_t n = text.size() < N ? text.size() : N - 1;
    if (n != 0) {
        std::memcpy(field, text.data(), n);
    }
}
// The text up to the first NUL (or all N bytes if there is none).
template <std::size_t N> std::string_view get_text(const char (&field)[N]) noexcept {
    std::size_t n = 0;
    while (n < N && field[n] != '\0') {
        ++n;
    }
    return {field, n};
}

// Parses a textual IPv4 or IPv6 address (no port, no zone); false on anything else.
bool parse_address(std::string_view text, ip_version& version, ip_address& out) noexcept;
five_tuple make_tuple(ip_version version, const ip_address& local, std::uint16_t local_port, const ip_address& remote,
                      std::uint16_t remote_port) noexcept;

// A zeroed command or event of the given type with the header's version set.
command make_command(message_type type) noexcept;
event make_event(message_type type) noexcept;

// Commands with their required fields; the rest zero (set them on the result).
command make_add_connection(std::uint64_t connection_id, std::string_view name, endpoint_kind endpoint) noexcept;
command make_remove_connection(std::uint64_t connection_id, std::uint32_t drain_timeout_ms = 0) noexcept;
command make_add_path(std::uint64_t connection_id, std::uint64_t path_id, const five_tuple& tuple,
                      float initial_weight = 1.0f) noexcept;
command make_remove_path(std::uint64_t connection_id, std::uint64_t path_id,
                         std::uint32_t drain_timeout_ms = 0) noexcept;
command make_set_scheduler(std::uint64_t connection_id, scheduler_strategy strategy) noexcept;
command make_set_qos(std::uint64_t connection_id, std::uint64_t stream_id, stream_priority priority) noexcept;
command make_set_windows(std::uint64_t connection_id, window_scope scope, std::uint64_t stream_id,
                         std::uint64_t window_bytes) noexcept;
command make_request_counters() noexcept;
command make_list_state() noexcept;
command make_set_connection_keys(std::uint64_t connection_id, std::uint8_t key_phase,
                                 const std::uint8_t (&key)[aead_key_size], std::uint64_t valid_until_unix_ms,
                                 std::uint64_t max_frames, bool require_encryption) noexcept;

// Events. make_command_result echoes the command's sequence, connection id and path id.
event make_command_result(const command& answered, result_status status, std::string_view reason = {}) noexcept;
event make_path_up(std::uint64_t connection_id, std::uint64_t path_id, std::uint64_t smoothed_rtt_ns) noexcept;
event make_path_down(std::uint64_t connection_id, std::uint64_t path_id, path_down_kind kind,
                     std::string_view reason) noexcept;
event make_unknown_path(const five_tuple& tuple, std::uint32_t count, std::uint16_t port_id, std::uint16_t worker,
                        std::uint64_t first_seen_ns, std::uint64_t last_seen_ns) noexcept;
event make_counters_ready(std::uint64_t request_sequence, std::uint64_t epoch,
                          std::uint32_t workers_published) noexcept;
event make_connection_closed(std::uint64_t connection_id, std::uint64_t close_code, std::string_view reason) noexcept;
// connection_info / path_info: the body filled by the caller; ack_sequence = the list_state's.
event make_info(message_type type, std::uint64_t request_sequence) noexcept;

// The connection id and path id a command names (0 where it names none).
std::uint64_t connection_of(const command& c) noexcept;
// Makes a command that names a connection name `connection_id` instead (no effect on one that
// names none): a control process re-numbering a connection it has not sent yet.
void set_connection_of(command& c, std::uint64_t connection_id) noexcept;
std::uint64_t path_of(const command& c) noexcept;

// The outcome of validate(): valid, or a reason naming the message and field at fault, e.g.
// "add_path.path_id: 4611686018427387904 is above 2^62-1". The reason fits command_result.reason.
class [[nodiscard]] validation {
public:
    validation() noexcept = default;
    static validation failure(result_status status, const char* format, ...) noexcept
        __attribute__((format(printf, 2, 3)));

    bool ok() const noexcept { return _reason[0] == '\0'; }
    explicit operator bool() const noexcept { return ok(); }
    std::string_view reason() const noexcept { return get_text(_reason); }
    result_status status() const noexcept { return _status; }

private:
    char _reason[reason_size] = {};
    result_status _status = result_status::ok;
};

// Checks the version, the type and every field of the live body, and that reserved bytes and
// the bytes after the body are zero (so that a later protocol version can give them meaning).
// Does not check state (whether the connection exists): kwikd's action functions do.
validation validate(const command& c) noexcept;
validation validate(const event& e) noexcept;

// The command_result kwikd sends for a command that failed validation.
inline event make_rejection(const command& c, const validation& v) noexcept {
    return make_command_result(c, v.status(), v.reason());
}

} // namespace kwik::api
