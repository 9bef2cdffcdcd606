// Builders and validation for the command and event structs (commands.hpp).
#include "dataplane/api/commands.hpp"

#include <arpa/inet.h>

#include <cinttypes>
#include <cmath>
#include <cstdarg>
#include <cstdio>
#include <string>

namespace kwik::api {

std::string_view to_string(message_type t) noexcept {
    switch (t) {
    case message_type::invalid:
        return "invalid";
    case message_type::add_connection:
        return "add_connection";
    case message_type::remove_connection:
        return "remove_connection";
    case message_type::add_path:
        return "add_path";
    case message_type::remove_path:
        return "remove_path";
    case message_type::set_scheduler:
        return "set_scheduler";
    case message_type::set_weights:
        return "set_weights";
    case message_type::set_qos:
        return "set_qos";
    case message_type::set_windows:
        return "set_windows";
    case message_type::set_connection_keys:
        return "set_connection_keys";
    case message_type::request_counters:
        return "request_counters";
    case message_type::command_result:
        return "command_result";
    case message_type::path_up:
        return "path_up";
    case message_type::path_down:
        return "path_down";
    case message_type::unknown_path:
        return "unknown_path";
    case message_type::counters_ready:
        return "counters_ready";
    case message_type::connection_closed:
        return "connection_closed";
    case message_type::connection_info:
        return "connection_info";
    case message_type::path_info:
        return "path_info";
    case message_type::list_state:
        return "list_state";
    }
    return "unknown";
}

std::string_view to_string(result_status s) noexcept {
    switch (s) {
    case result_status::ok:
        return "ok";
    case result_status::invalid_command:
        return "invalid_command";
    case result_status::unsupported_version:
        return "unsupported_version";
    case result_status::unknown_connection:
        return "unknown_connection";
    case result_status::unknown_path:
        return "unknown_path";
    case result_status::already_exists:
        return "already_exists";
    case result_status::no_capacity:
        return "no_capacity";
    case result_status::not_supported:
        return "not_supported";
    case result_status::internal_error:
        return "internal_error";
    case result_status::conflict:
        return "conflict";
    case result_status::stopped:
        return "stopped";
    }
    return "unknown";
}

bool parse_address(std::string_view text, ip_version& version, ip_address& out) noexcept {
    char buf[INET6_ADDRSTRLEN + 1];
    if (text.empty() || text.size() >= sizeof(buf)) {
        return false;
    }
    std::memcpy(buf, text.data(), text.size());
    buf[text.size()] = '\0';
    ip_address a{};
    if (::inet_pton(AF_INET, buf, a.bytes) == 1) {
        version = ip_version::v4;
        out = a;
        return true;
    }
    if (::inet_pton(AF_INET6, buf, a.bytes) == 1) {
        version = ip_version::v6;
        out = a;
        return true;
    }
    return false;
}

five_tuple make_tuple(ip_version version, const ip_address& local, std::uint16_t local_port, const ip_address& remote,
                      std::uint16_t remote_port) noexcept {
    five_tuple t{};
    t.version = version;
    t.local = local;
    t.local_port = local_port;
    t.remote = remote;
    t.remote_port = remote_port;
    return t;
}

command make_command(message_type type) noexcept {
    command c{};
    std::memset(&c, 0, sizeof(c)); // value-initialising a union zeroes only its first member
    c.header.version = protocol_version;
    c.header.type = type;
    return c;
}

event make_event(message_type type) noexcept {
    event e{};
    std::memset(&e, 0, sizeof(e));
    e.header.version = protocol_version;
    e.header.type = type;
    return e;
}

command make_add_connection(std::uint64_t connection_id, std::string_view name, endpoint_kind endpoint) noexcept {
    command c = make_command(message_type::add_connection);
    c.add_connection.connection_id = connection_id;
    // A name that does not fit stays empty, which validate() reports.
    static_cast<void>(set_text(c.add_connection.name, name));
    c.add_connection.owner_hint = any_worker;
    c.add_connection.role = connection_role::server;
    c.add_connection.endpoint = endpoint;
    return c;
}

command make_remove_connection(std::uint64_t connection_id, std::uint32_t drain_timeout_ms) noexcept {
    command c = make_command(message_type::remove_connection);
    c.remove_connection.connection_id = connection_id;
    c.remove_connection.drain_timeout_ms = drain_timeout_ms;
    return c;
}

command make_add_path(std::uint64_t connection_id, std::uint64_t path_id, const five_tuple& tuple,
                      float initial_weight) noexcept {
    command c = make_command(message_type::add_path);
    c.add_path.connection_id = connection_id;
    c.add_path.path_id = path_id;
    c.add_path.tuple = tuple;
    c.add_path.initial_weight = initial_weight;
    return c;
}

command make_remove_path(std::uint64_t connection_id, std::uint64_t path_id, std::uint32_t drain_timeout_ms) noexcept {
    command c = make_command(message_type::remove_path);
    c.remove_path.connection_id = connection_id;
    c.remove_path.path_id = path_id;
    c.remove_path.drain_timeout_ms = drain_timeout_ms;
    return c;
}

command make_set_scheduler(std::uint64_t connection_id, scheduler_strategy strategy) noexcept {
    command c = make_command(message_type::set_scheduler);
    c.set_scheduler.connection_id = connection_id;
    c.set_scheduler.strategy = strategy;
    return c;
}

command make_set_qos(std::uint64_t connection_id, std::uint64_t stream_id, stream_priority priority) noexcept {
    command c = make_command(message_type::set_qos);
    c.set_qos.connection_id = connection_id;
    c.set_qos.stream_id = stream_id;
    c.set_qos.priority = priority;
    c.set_qos.loss_threshold = 1.0f;
    return c;
}

command make_set_windows(std::uint64_t connection_id, window_scope scope, std::uint64_t stream_id,
                         std::uint64_t window_bytes) noexcept {
    command c = make_command(message_type::set_windows);
    c.set_windows.connection_id = connection_id;
    c.set_windows.scope = scope;
    c.set_windows.stream_id = stream_id;
    c.set_windows.window_bytes = window_bytes;
    return c;
}

command make_request_counters() noexcept {
    return make_command(message_type::request_counters);
}

command make_list_state() noexcept {
    return make_command(message_type::list_state);
}

command make_set_connection_keys(std::uint64_t connection_id, std::uint8_t key_phase,
                                 const std::uint8_t (&key)[aead_key_size], std::uint64_t valid_until_unix_ms,
                                 std::uint64_t max_frames, bool require_encryption) noexcept {
    command c = make_command(message_type::set_connection_keys);
    set_connection_keys_body& b = c.set_connection_keys;
    b.connection_id = connection_id;
    std::memcpy(b.key, key, aead_key_size);
    b.valid_until_unix_ms = valid_until_unix_ms;
    b.max_frames = max_frames;
    b.key_phase = key_phase;
    b.aead = aead_algorithm::aes_256_gcm;
    b.require_encryption = require_encryption ? 1 : 0;
    return c;
}

namespace {

// The connection id field a command carries (const or not, as the command), or null.
template <class Command>
auto connection_field(Command& c) noexcept -> decltype(&c.add_connection.connection_id) {
    switch (c.header.type) {
    case message_type::add_connection:
        return &c.add_connection.connection_id;
    case message_type::remove_connection:
        return &c.remove_connection.connection_id;
    case message_type::add_path:
        return &c.add_path.connection_id;
    case message_type::remove_path:
        return &c.remove_path.connection_id;
    case message_type::set_scheduler:
        return &c.set_scheduler.connection_id;
    case message_type::set_weights:
        return &c.set_weights.connection_id;
    case message_type::set_qos:
        return &c.set_qos.connection_id;
    case message_type::set_windows:
        return &c.set_windows.connection_id;
    case message_type::set_connection_keys:
        return &c.set_connection_keys.connection_id;
    default:
        return nullptr;
    }
}

} // namespace

std::uint64_t connection_of(const command& c) noexcept {
    const std::uint64_t* field = connection_field(c);
    return field != nullptr ? *field : 0;
}

void set_connection_of(command& c, std::uint64_t connection_id) noexcept {
    if (std::uint64_t* field = connection_field(c)) {
        *field = connection_id;
    }
}

std::uint64_t path_of(const command& c) noexcept {
    switch (c.header.type) {
    case message_type::add_path:
        return c.add_path.path_id;
    case message_type::remove_path:
        return c.remove_path.path_id;
    default:
        return 0;
    }
}

event make_command_result(const command& answered, result_status status, std::string_view reason) noexcept {
    event e = make_event(message_type::command_result);
    e.header.ack_sequence = answered.header.sequence;
    e.command_result.status = status;
    e.command_result.connection_id = connection_of(answered);
    e.command_result.path_id = path_of(answered);
    set_text_truncated(e.command_result.reason, reason);
    return e;
}

event make_path_up(std::uint64_t connection_id, std::uint64_t path_id, std::uint64_t smoothed_rtt_ns) noexcept {
    event e = make_event(message_type::path_up);
    e.path_up.connection_id = connection_id;
    e.path_up.path_id = path_id;
    e.path_up.smoothed_rtt_ns = smoothed_rtt_ns;
    return e;
}

event make_path_down(std::uint64_t connection_id, std::uint64_t path_id, path_down_kind kind,
                     std::string_view reason) noexcept {
    event e = make_event(message_type::path_down);
    e.path_down.connection_id = connection_id;
    e.path_down.path_id = path_id;
    e.path_down.kind = kind;
    set_text_truncated(e.path_down.reason, reason);
    return e;
}

event make_unknown_path(const five_tuple& tuple, std::uint32_t count, std::uint16_t port_id, std::uint16_t worker,
                        std::uint64_t first_seen_ns, std::uint64_t last_seen_ns) noexcept {
    event e = make_event(message_type::unknown_path);
    e.unknown_path.tuple = tuple;
    e.unknown_path.count = count;
    e.unknown_path.port_id = port_id;
    e.unknown_path.worker = worker;
    e.unknown_path.first_seen_ns = first_seen_ns;
    e.unknown_path.last_seen_ns = last_seen_ns;
    return e;
}

event make_connection_closed(std::uint64_t connection_id, std::uint64_t close_code, std::string_view reason) noexcept {
    event e = make_event(message_type::connection_closed);
    e.connection_closed.connection_id = connection_id;
    e.connection_closed.close_code = close_code;
    set_text_truncated(e.connection_closed.reason, reason);
    return e;
}

event make_info(message_type type, std::uint64_t request_sequence) noexcept {
    event e = make_event(type);
    e.header.ack_sequence = request_sequence;
    return e;
}

event make_counters_ready(std::uint64_t request_sequence, std::uint64_t epoch,
                          std::uint32_t workers_published) noexcept {
    event e = make_event(message_type::counters_ready);
    e.header.ack_sequence = request_sequence;
    e.counters_ready.epoch = epoch;
    e.counters_ready.workers_published = workers_published;
    return e;
}

validation validation::failure(result_status status, const char* format, ...) noexcept {
    validation v;
    v._status = status;
    va_list args;
    va_start(args, format);
    std::vsnprintf(v._reason, sizeof(v._reason), format, args);
    va_end(args);
    if (v._reason[0] == '\0') {
        set_text(v._reason, "invalid");
    }
    return v;
}

namespace {

constexpr result_status invalid = result_status::invalid_command;

bool all_zero(const void* p, std::size_t n) noexcept {
    const auto* b = static_cast<const std::uint8_t*>(p);
    for (std::size_t i = 0; i < n; ++i) {
        if (b[i] != 0) {
            return false;
        }
    }
    return true;
}

// The bytes of the body union past the live member must be zero.
template <class Message, class Body> validation check_tail(const Message& m, const Body&, const char* what) noexcept {
    constexpr std::size_t used = sizeof(Body);
    if (!all_zero(m.body + used, message_body_size - used)) {
        return validation::failure(invalid, "%s: bytes %zu..%zu after the body must be zero", what, used,
                                   message_body_size - 1);
    }
    return {};
}

// A NUL-terminated text field: terminated, printable ASCII, zero after the NUL.
template <std::size_t N> validation check_text(const char (&field)[N], const char* what, bool may_be_empty) noexcept {
    std::size_t n = 0;
    while (n < N && field[n] != '\0') {
        ++n;
    }
    if (n == N) {
        return validation::failure(invalid, "%s: not NUL-terminated within %zu bytes", what, N);
    }
    if (n == 0 && !may_be_empty) {
        return validation::failure(invalid, "%s: empty", what);
    }
    for (std::size_t i = 0; i < n; ++i) {
        const auto ch = static_cast<unsigned char>(field[i]);
        if (ch < 0x20 || ch > 0x7E) {
            return validation::failure(invalid, "%s: byte %zu (0x%02x) is not printable ASCII", what, i, ch);
        }
    }
    if (!all_zero(field + n, N - n)) {
        return validation::failure(invalid, "%s: bytes after the terminating NUL must be zero", what);
    }
    return {};
}

validation check_connection_id(std::uint64_t id, const char* what) noexcept {
    if (id == 0) {
        return validation::failure(invalid, "%s.connection_id: must be nonzero", what);
    }
    return {};
}

validation check_path_id(std::uint64_t id, const char* what) noexcept {
    if (id > max_path_id) {
        return validation::failure(invalid, "%s.path_id: %" PRIu64 " is above 2^62-1", what, id);
    }
    return {};
}

validation check_weight(float w, const char* what) noexcept {
    if (!std::isfinite(w) || w < 0.0f) {
        return validation::failure(invalid, "%s: %g is not a finite weight >= 0", what, static_cast<double>(w));
    }
    return {};
}

// strict (commands): ports and addresses set. Events report what arrived, port 0 included.
validation check_tuple(const five_tuple& t, const char* what, bool strict) noexcept {
    if (t.version != ip_version::v4 && t.version != ip_version::v6) {
        return validation::failure(invalid, "%s.version: %u is not 4 or 6", what, static_cast<unsigned>(t.version));
    }
    if (t.reserved0 != 0 || t.reserved1 != 0) {
        return validation::failure(invalid, "%s.reserved: must be zero", what);
    }
    if (strict && t.local_port == 0) {
        return validation::failure(invalid, "%s.local_port: must be 1..65535", what);
    }
    if (strict && t.remote_port == 0) {
        return validation::failure(invalid, "%s.remote_port: must be 1..65535", what);
    }
    const struct {
        const ip_address& a;
        const char* name;
    } addresses[] = {{t.local, "local"}, {t.remote, "remote"}};
    for (const auto& [a, name] : addresses) {
        if (t.version == ip_version::v4 && !all_zero(a.bytes + 4, 12)) {
            return validation::failure(invalid, "%s.%s: IPv4 address with nonzero bytes 4..15", what, name);
        }
        if (strict && all_zero(a.bytes, 16)) {
            return validation::failure(invalid, "%s.%s: unspecified address (all zero)", what, name);
        }
    }
    return {};
}

validation check_stream_id(std::uint64_t id, const char* what) noexcept {
    if (id == 0 || id > max_stream_id) {
        return validation::failure(invalid, "%s: %" PRIu64 " is not a stream id (1..2^62-1)", what, id);
    }
    return {};
}

#define KWIK_CHECK(expr)                                                                                               \
    do {                                                                                                               \
        if (validation v_ = (expr); !v_) {                                                                             \
            return v_;                                                                                                 \
        }                                                                                                              \
    } while (false)

validation check_add_connection(const command& c) noexcept {
    const add_connection_body& b = c.add_connection;
    KWIK_CHECK(check_connection_id(b.connection_id, "add_connection"));
    KWIK_CHECK(check_text(b.name, "add_connection.name", false));
    if (b.role != connection_role::server && b.role != connection_role::client) {
        return validation::failure(invalid, "add_connection.role: %u is not server (0) or client (1)",
                                   static_cast<unsigned>(b.role));
    }
    if (static_cast<std::uint8_t>(b.endpoint) > endpoint_kind_max) {
        return validation::failure(invalid,
                                   "add_connection.endpoint: %u is not discard (0), echo (1), pattern_source (2) "
                                   "or file_store (3)",
                                   static_cast<unsigned>(b.endpoint));
    }
    if (b.reserved != 0) {
        return validation::failure(invalid, "add_connection.reserved: must be zero");
    }
    if (b.endpoint == endpoint_kind::pattern_source && b.endpoint_length == 0) {
        return validation::failure(invalid, "add_connection.endpoint_length: must be > 0 for pattern_source");
    }
    if (b.endpoint != endpoint_kind::pattern_source && b.endpoint_length != 0) {
        return validation::failure(invalid,
                                   "add_connection.endpoint_length: must be 0 unless the endpoint is pattern_source");
    }
    const bool store = b.endpoint == endpoint_kind::file_store;
    KWIK_CHECK(check_text(b.endpoint_path, "add_connection.endpoint_path", !store));
    const std::string_view path = get_text(b.endpoint_path);
    if (store) {
        if (path.front() != '/') {
            return validation::failure(invalid, "add_connection.endpoint_path: '%s' is not an absolute directory",
                                       b.endpoint_path);
        }
        const std::string wrapped = std::string(path) + "/";
        if (wrapped.find("/../") != std::string::npos) {
            return validation::failure(invalid, "add_connection.endpoint_path: '%s' contains '..'", b.endpoint_path);
        }
    } else if (!path.empty()) {
        return validation::failure(invalid,
                                   "add_connection.endpoint_path: must be empty unless the endpoint is file_store");
    }
    return check_tail(c, b, "add_connection");
}

validation check_command_body(const command& c) noexcept {
    switch (c.header.type) {
    case message_type::add_connection:
        return check_add_connection(c);
    case message_type::remove_connection: {
        const remove_connection_body& b = c.remove_connection;
        KWIK_CHECK(check_connection_id(b.connection_id, "remove_connection"));
        if (b.reserved != 0) {
            return validation::failure(invalid, "remove_connection.reserved: must be zero");
        }
        return check_tail(c, b, "remove_connection");
    }
    case message_type::add_path: {
        const add_path_body& b = c.add_path;
        KWIK_CHECK(check_connection_id(b.connection_id, "add_path"));
        KWIK_CHECK(check_path_id(b.path_id, "add_path"));
        KWIK_CHECK(check_tuple(b.tuple, "add_path.tuple", true));
        KWIK_CHECK(check_weight(b.initial_weight, "add_path.initial_weight"));
        if (b.standby > 1) {
            return validation::failure(invalid, "add_path.standby: %u is not 0 or 1", static_cast<unsigned>(b.standby));
        }
        if (!all_zero(b.reserved, sizeof(b.reserved))) {
            return validation::failure(invalid, "add_path.reserved: must be zero");
        }
        return check_tail(c, b, "add_path");
    }
    case message_type::remove_path: {
        const remove_path_body& b = c.remove_path;
        KWIK_CHECK(check_connection_id(b.connection_id, "remove_path"));
        KWIK_CHECK(check_path_id(b.path_id, "remove_path"));
        if (b.reserved != 0) {
            return validation::failure(invalid, "remove_path.reserved: must be zero");
        }
        return check_tail(c, b, "remove_path");
    }
    case message_type::set_scheduler: {
        const set_scheduler_body& b = c.set_scheduler;
        KWIK_CHECK(check_connection_id(b.connection_id, "set_scheduler"));
        if (static_cast<std::uint8_t>(b.strategy) > scheduler_strategy_max) {
            return validation::failure(invalid,
                                       "set_scheduler.strategy: %u is not min_rtt (0), weighted (1), round_robin (2) "
                                       "or redundant (3)",
                                       static_cast<unsigned>(b.strategy));
        }
        if (!all_zero(b.reserved, sizeof(b.reserved))) {
            return validation::failure(invalid, "set_scheduler.reserved: must be zero");
        }
        return check_tail(c, b, "set_scheduler");
    }
    case message_type::set_weights: {
        const set_weights_body& b = c.set_weights;
        KWIK_CHECK(check_connection_id(b.connection_id, "set_weights"));
        if (b.count == 0 || b.count > max_weights) {
            return validation::failure(invalid, "set_weights.count: %u is not 1..%zu", b.count, max_weights);
        }
        if (b.reserved != 0) {
            return validation::failure(invalid, "set_weights.reserved: must be zero");
        }
        char what[48];
        for (std::uint32_t i = 0; i < b.count; ++i) {
            const weight_entry& w = b.entries[i];
            std::snprintf(what, sizeof(what), "set_weights.entries[%u]", i);
            if (w.path_id > max_path_id) {
                return validation::failure(invalid, "%s.path_id: %" PRIu64 " is above 2^62-1", what, w.path_id);
            }
            std::snprintf(what, sizeof(what), "set_weights.entries[%u].weight", i);
            KWIK_CHECK(check_weight(w.weight, what));
            if (static_cast<std::uint8_t>(w.standby) > standby_change_max) {
                return validation::failure(invalid, "set_weights.entries[%u].standby: %u is not keep (0), set (1) or clear (2)",
                                           i, static_cast<unsigned>(w.standby));
            }
            if (!all_zero(w.reserved, sizeof(w.reserved))) {
                return validation::failure(invalid, "set_weights.entries[%u].reserved: must be zero", i);
            }
            for (std::uint32_t j = 0; j < i; ++j) {
                if (b.entries[j].path_id == w.path_id) {
                    return validation::failure(
                        invalid, "set_weights.entries[%u].path_id: %" PRIu64 " already given in entries[%u]", i,
                        w.path_id, j);
                }
            }
        }
        if (!all_zero(&b.entries[b.count], sizeof(weight_entry) * (max_weights - b.count))) {
            return validation::failure(invalid, "set_weights.entries[%u..%zu]: unused entries must be zero", b.count,
                                       max_weights - 1);
        }
        return check_tail(c, b, "set_weights");
    }
    case message_type::set_qos: {
        const set_qos_body& b = c.set_qos;
        KWIK_CHECK(check_connection_id(b.connection_id, "set_qos"));
        KWIK_CHECK(check_stream_id(b.stream_id, "set_qos.stream_id"));
        if (!std::isfinite(b.loss_threshold) || b.loss_threshold < 0.0f || b.loss_threshold > 1.0f) {
            return validation::failure(invalid, "set_qos.loss_threshold: %g is not within 0..1",
                                       static_cast<double>(b.loss_threshold));
        }
        switch (b.priority) {
        case stream_priority::normal:
        case stream_priority::high:
        case stream_priority::critical:
        case stream_priority::control:
            break;
        default:
            return validation::failure(invalid,
                                       "set_qos.priority: 0x%02x is not normal (0x00), high (0x01), critical (0x02) "
                                       "or control (0xff)",
                                       static_cast<unsigned>(b.priority));
        }
        if (!all_zero(b.reserved, sizeof(b.reserved))) {
            return validation::failure(invalid, "set_qos.reserved: must be zero");
        }
        return check_tail(c, b, "set_qos");
    }
    case message_type::set_windows: {
        const set_windows_body& b = c.set_windows;
        KWIK_CHECK(check_connection_id(b.connection_id, "set_windows"));
        if (static_cast<std::uint8_t>(b.scope) > window_scope_max) {
            return validation::failure(invalid,
                                       "set_windows.scope: %u is not connection (0), stream (1) or new_streams (2)",
                                       static_cast<unsigned>(b.scope));
        }
        if (b.scope == window_scope::stream) {
            KWIK_CHECK(check_stream_id(b.stream_id, "set_windows.stream_id"));
        } else if (b.stream_id != 0) {
            return validation::failure(invalid, "set_windows.stream_id: must be 0 unless the scope is stream");
        }
        if (b.window_bytes == 0 || b.window_bytes > (std::uint64_t{1} << 62)) {
            return validation::failure(invalid, "set_windows.window_bytes: %" PRIu64 " is not 1..2^62", b.window_bytes);
        }
        if (!all_zero(b.reserved, sizeof(b.reserved))) {
            return validation::failure(invalid, "set_windows.reserved: must be zero");
        }
        return check_tail(c, b, "set_windows");
    }
    case message_type::set_connection_keys: {
        const set_connection_keys_body& b = c.set_connection_keys;
        KWIK_CHECK(check_connection_id(b.connection_id, "set_connection_keys"));
        if (all_zero(b.key, sizeof(b.key))) {
            return validation::failure(invalid, "set_connection_keys.key: all zero (no key given)");
        }
        if (b.aead != aead_algorithm::aes_256_gcm) {
            return validation::failure(invalid, "set_connection_keys.aead: %u is not AES-256-GCM (1)",
                                       static_cast<unsigned>(b.aead));
        }
        if (b.require_encryption > 1) {
            return validation::failure(invalid, "set_connection_keys.require_encryption: %u is not 0 or 1",
                                       static_cast<unsigned>(b.require_encryption));
        }
        if (!all_zero(b.reserved, sizeof(b.reserved))) {
            return validation::failure(invalid, "set_connection_keys.reserved: must be zero");
        }
        return check_tail(c, b, "set_connection_keys");
    }
    case message_type::request_counters: {
        const request_counters_body& b = c.request_counters;
        if (!all_zero(b.reserved, sizeof(b.reserved))) {
            return validation::failure(invalid, "request_counters.reserved: must be zero");
        }
        return check_tail(c, b, "request_counters");
    }
    case message_type::list_state: {
        const list_state_body& b = c.list_state;
        if (!all_zero(b.reserved, sizeof(b.reserved))) {
            return validation::failure(invalid, "list_state.reserved: must be zero");
        }
        return check_tail(c, b, "list_state");
    }
    default:
        break;
    }
    return validation::failure(invalid, "header.type: 0x%x is not a command", static_cast<unsigned>(c.header.type));
}

validation check_header(const message_header& h, bool want_command) noexcept {
    if (h.version != protocol_version) {
        return validation::failure(result_status::unsupported_version,
                                   "header.version: %u is not this program's protocol version %u",
                                   static_cast<unsigned>(h.version), static_cast<unsigned>(protocol_version));
    }
    if (want_command ? !is_command(h.type) : !is_event(h.type)) {
        return validation::failure(invalid, "header.type: 0x%x is not %s", static_cast<unsigned>(h.type),
                                   want_command ? "a command" : "an event");
    }
    if (h.reserved != 0) {
        return validation::failure(invalid, "header.reserved: must be zero");
    }
    if (want_command && h.ack_sequence != 0) {
        return validation::failure(invalid, "header.ack_sequence: must be 0 in a command");
    }
    return {};
}

} // namespace

validation validate(const command& c) noexcept {
    KWIK_CHECK(check_header(c.header, true));
    return check_command_body(c);
}

validation validate(const event& e) noexcept {
    KWIK_CHECK(check_header(e.header, false));
    switch (e.header.type) {
    case message_type::command_result: {
        const command_result_body& b = e.command_result;
        if (static_cast<std::uint16_t>(b.status) > result_status_max) {
            return validation::failure(invalid, "command_result.status: %u is not defined",
                                       static_cast<unsigned>(b.status));
        }
        KWIK_CHECK(check_text(b.reason, "command_result.reason", true));
        return check_tail(e, b, "command_result");
    }
    case message_type::path_up:
        return check_tail(e, e.path_up, "path_up");
    case message_type::path_down: {
        const path_down_body& b = e.path_down;
        if (static_cast<std::uint8_t>(b.kind) > path_down_kind_max) {
            return validation::failure(invalid, "path_down.kind: %u is not down (0), failed (1) or removed (2)",
                                       static_cast<unsigned>(b.kind));
        }
        KWIK_CHECK(check_text(b.reason, "path_down.reason", true));
        return check_tail(e, b, "path_down");
    }
    case message_type::unknown_path: {
        const unknown_path_body& b = e.unknown_path;
        KWIK_CHECK(check_tuple(b.tuple, "unknown_path.tuple", false));
        if (b.count == 0) {
            return validation::failure(invalid, "unknown_path.count: must be nonzero");
        }
        return check_tail(e, b, "unknown_path");
    }
    case message_type::counters_ready:
        return check_tail(e, e.counters_ready, "counters_ready");
    case message_type::connection_closed:
        KWIK_CHECK(check_text(e.connection_closed.reason, "connection_closed.reason", true));
        return check_tail(e, e.connection_closed, "connection_closed");
    case message_type::connection_info: {
        const connection_info_body& b = e.connection_info;
        KWIK_CHECK(check_text(b.name, "connection_info.name", false));
        KWIK_CHECK(check_text(b.endpoint_path, "connection_info.endpoint_path", true));
        if (static_cast<std::uint8_t>(b.endpoint) > endpoint_kind_max) {
            return validation::failure(invalid, "connection_info.endpoint: %u is not defined",
                                       static_cast<unsigned>(b.endpoint));
        }
        if (b.live_keys > 2) {
            return validation::failure(invalid, "connection_info.live_keys: %u is not 0..2",
                                       static_cast<unsigned>(b.live_keys));
        }
        if (b.require_encryption > 1) {
            return validation::failure(invalid, "connection_info.require_encryption: %u is not 0 or 1",
                                       static_cast<unsigned>(b.require_encryption));
        }
        if (!all_zero(b.reserved, sizeof(b.reserved))) {
            return validation::failure(invalid, "connection_info.reserved: must be zero");
        }
        return check_tail(e, b, "connection_info");
    }
    case message_type::path_info:
        KWIK_CHECK(check_tuple(e.path_info.tuple, "path_info.tuple", false));
        return check_tail(e, e.path_info, "path_info");
    default:
        break;
    }
    return validation::failure(invalid, "header.type: 0x%x is not an event", static_cast<unsigned>(e.header.type));
}

#undef KWIK_CHECK

} // namespace kwik::api
