// The command and event structs (dataplane/api/commands.hpp): their layout is an ABI between two
// processes built separately, so every offset is pinned here; the builders fill what they
// claim; validate() rejects every bad field with a reason naming it.
#include <gtest/gtest.h>

#include <cmath>
#include <cstddef>
#include <cstring>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "dataplane/api/commands.hpp"

namespace {

using namespace kwik::api;

// ---- layout: the offsets another build of the control plane relies on ----

TEST(commands_layout, header_and_message_sizes) {
    EXPECT_EQ(sizeof(message_header), 24u);
    EXPECT_EQ(offsetof(message_header, version), 0u);
    EXPECT_EQ(offsetof(message_header, type), 2u);
    EXPECT_EQ(offsetof(message_header, sequence), 8u);
    EXPECT_EQ(offsetof(message_header, ack_sequence), 16u);
    EXPECT_EQ(sizeof(command), 256u);
    EXPECT_EQ(sizeof(event), 256u);
    EXPECT_EQ(alignof(command), 64u);
    EXPECT_EQ(offsetof(command, add_path), 24u);
    EXPECT_EQ(offsetof(command, body), 24u);
    EXPECT_EQ(offsetof(event, command_result), 24u);
}

TEST(commands_layout, command_bodies) {
    EXPECT_EQ(offsetof(add_connection_body, connection_id), 0u);
    EXPECT_EQ(offsetof(add_connection_body, name), 8u);
    EXPECT_EQ(offsetof(add_connection_body, owner_hint), 72u);
    EXPECT_EQ(offsetof(add_connection_body, role), 74u);
    EXPECT_EQ(offsetof(add_connection_body, endpoint), 75u);
    EXPECT_EQ(offsetof(add_connection_body, endpoint_length), 80u);
    EXPECT_EQ(offsetof(add_connection_body, endpoint_path), 88u);

    EXPECT_EQ(offsetof(add_path_body, path_id), 8u);
    EXPECT_EQ(offsetof(add_path_body, tuple), 16u);
    EXPECT_EQ(offsetof(add_path_body, initial_weight), 56u);
    EXPECT_EQ(offsetof(add_path_body, max_bandwidth_mbps), 60u);
    EXPECT_EQ(offsetof(add_path_body, standby), 64u);

    EXPECT_EQ(offsetof(five_tuple, local_port), 2u);
    EXPECT_EQ(offsetof(five_tuple, remote_port), 4u);
    EXPECT_EQ(offsetof(five_tuple, local), 8u);
    EXPECT_EQ(offsetof(five_tuple, remote), 24u);

    EXPECT_EQ(offsetof(set_weights_body, count), 8u);
    EXPECT_EQ(offsetof(set_weights_body, entries), 16u);
    EXPECT_EQ(sizeof(weight_entry), 16u);
    EXPECT_EQ(offsetof(set_qos_body, stream_id), 8u);
    EXPECT_EQ(offsetof(set_qos_body, loss_threshold), 28u);
    EXPECT_EQ(offsetof(set_qos_body, priority), 32u);
    EXPECT_EQ(offsetof(set_windows_body, window_bytes), 16u);
    EXPECT_EQ(offsetof(set_windows_body, scope), 24u);
}

TEST(commands_layout, event_bodies) {
    EXPECT_EQ(offsetof(command_result_body, status), 0u);
    EXPECT_EQ(offsetof(command_result_body, connection_id), 8u);
    EXPECT_EQ(offsetof(command_result_body, path_id), 16u);
    EXPECT_EQ(offsetof(command_result_body, reason), 24u);
    EXPECT_EQ(offsetof(path_down_body, kind), 16u);
    EXPECT_EQ(offsetof(path_down_body, reason), 24u);
    EXPECT_EQ(offsetof(unknown_path_body, count), 40u);
    EXPECT_EQ(offsetof(unknown_path_body, port_id), 44u);
    EXPECT_EQ(offsetof(unknown_path_body, first_seen_ns), 48u);
    EXPECT_EQ(offsetof(counters_ready_body, workers_published), 8u);
    EXPECT_EQ(offsetof(connection_info_body, live_keys), 216u);
    EXPECT_EQ(offsetof(connection_info_body, key_phase), 217u);
    EXPECT_EQ(offsetof(connection_info_body, require_encryption), 218u);
}

TEST(commands_layout, set_connection_keys_body) {
    EXPECT_EQ(sizeof(set_connection_keys_body), 64u);
    EXPECT_EQ(offsetof(set_connection_keys_body, key), 8u);
    EXPECT_EQ(offsetof(set_connection_keys_body, valid_until_unix_ms), 40u);
    EXPECT_EQ(offsetof(set_connection_keys_body, max_frames), 48u);
    EXPECT_EQ(offsetof(set_connection_keys_body, key_phase), 56u);
    EXPECT_EQ(offsetof(set_connection_keys_body, aead), 57u);
    EXPECT_EQ(offsetof(set_connection_keys_body, require_encryption), 58u);
    EXPECT_EQ(protocol_version, 5);
    EXPECT_EQ(static_cast<int>(message_type::set_connection_keys), 11);
    EXPECT_TRUE(is_command(message_type::set_connection_keys));
    EXPECT_EQ(to_string(message_type::set_connection_keys), "set_connection_keys");
}

TEST(commands_layout, enum_values_are_pinned) {
    EXPECT_EQ(static_cast<int>(message_type::add_connection), 1);
    EXPECT_EQ(static_cast<int>(message_type::request_counters), 9);
    EXPECT_EQ(static_cast<int>(message_type::command_result), 0x101);
    EXPECT_EQ(static_cast<int>(message_type::counters_ready), 0x105);
    EXPECT_EQ(static_cast<int>(stream_priority::control), 0xFF);
    EXPECT_EQ(static_cast<int>(scheduler_strategy::redundant), 3);
    EXPECT_EQ(static_cast<int>(result_status::internal_error), 8);
    EXPECT_EQ(static_cast<int>(result_status::conflict), 9);
    EXPECT_EQ(to_string(result_status::conflict), "conflict");
    EXPECT_EQ(static_cast<int>(result_status::stopped), 10);
    EXPECT_EQ(to_string(result_status::stopped), "stopped");
    EXPECT_TRUE(is_command(message_type::set_windows));
    EXPECT_FALSE(is_command(message_type::path_up));
    EXPECT_TRUE(is_event(message_type::unknown_path));
    EXPECT_FALSE(is_event(message_type::add_path));
}

// ---- builders ----

five_tuple v4_tuple() {
    ip_version v{};
    ip_address local{};
    ip_address remote{};
    EXPECT_TRUE(parse_address("192.0.2.1", v, local));
    EXPECT_TRUE(parse_address("198.51.100.7", v, remote));
    return make_tuple(ip_version::v4, local, 7707, remote, 40000);
}

TEST(commands_builders, parse_address) {
    ip_version v{};
    ip_address a{};
    ASSERT_TRUE(parse_address("192.0.2.1", v, a));
    EXPECT_EQ(v, ip_version::v4);
    EXPECT_EQ(a.bytes[0], 192);
    EXPECT_EQ(a.bytes[3], 1);
    for (int i = 4; i < 16; ++i) {
        EXPECT_EQ(a.bytes[i], 0) << i;
    }
    ASSERT_TRUE(parse_address("2001:db8::1", v, a));
    EXPECT_EQ(v, ip_version::v6);
    EXPECT_EQ(a.bytes[0], 0x20);
    EXPECT_EQ(a.bytes[1], 0x01);
    EXPECT_EQ(a.bytes[15], 1);
    EXPECT_FALSE(parse_address("", v, a));
    EXPECT_FALSE(parse_address("192.0.2.1:80", v, a));
    EXPECT_FALSE(parse_address("fe80::1%eth0", v, a));
    EXPECT_FALSE(parse_address("not an address", v, a));
}

TEST(commands_builders, add_connection_is_valid_and_zero_elsewhere) {
    command c = make_add_connection(42, "conn-abc", endpoint_kind::discard);
    EXPECT_EQ(c.header.version, protocol_version);
    EXPECT_EQ(c.header.type, message_type::add_connection);
    EXPECT_EQ(c.add_connection.connection_id, 42u);
    EXPECT_EQ(get_text(c.add_connection.name), "conn-abc");
    EXPECT_EQ(c.add_connection.owner_hint, any_worker);
    const validation v = validate(c);
    EXPECT_TRUE(v.ok()) << v.reason();
    // Bytes past the body are zero.
    for (std::size_t i = sizeof(add_connection_body); i < message_body_size; ++i) {
        ASSERT_EQ(c.body[i], 0) << i;
    }
}

const std::uint8_t test_key[aead_key_size] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16,
                                               17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32};

TEST(commands_builders, every_builder_validates) {
    command weights = make_command(message_type::set_weights);
    weights.set_weights.connection_id = 1;
    weights.set_weights.count = 2;
    weights.set_weights.entries[0] = {0, 1.0f, standby_change::keep, {}};
    weights.set_weights.entries[1] = {1, 3.0f, standby_change::clear, {}};
    command store = make_add_connection(1, "x", endpoint_kind::file_store);
    set_text(store.add_connection.endpoint_path, "/var/lib/kwik/store");
    command pattern = make_add_connection(1, "x", endpoint_kind::pattern_source);
    pattern.add_connection.endpoint_length = 1 << 20;
    const std::vector<command> all = {
        make_add_connection(1, "x", endpoint_kind::echo),
        store,
        pattern,
        make_remove_connection(1, 100),
        make_add_path(1, max_path_id, v4_tuple(), 2.5f),
        make_remove_path(1, 0),
        make_set_scheduler(1, scheduler_strategy::redundant),
        weights,
        make_set_qos(1, 4, stream_priority::critical),
        make_set_windows(1, window_scope::connection, 0, 1 << 20),
        make_set_windows(1, window_scope::stream, 8, 1 << 16),
        make_request_counters(),
        make_set_connection_keys(1, 0, test_key, 0, 0, false),
        make_set_connection_keys(1, 255, test_key, 1'800'000'000'000, 1 << 23, true),
    };
    for (const command& c : all) {
        const validation v = validate(c);
        EXPECT_TRUE(v.ok()) << to_string(c.header.type) << ": " << v.reason();
    }
}

TEST(commands_builders, command_result_echoes_the_command) {
    command c = make_add_path(7, 3, v4_tuple());
    c.header.sequence = 99;
    const event e = make_command_result(c, result_status::unknown_connection, "connection 7 does not exist");
    EXPECT_EQ(e.header.type, message_type::command_result);
    EXPECT_EQ(e.header.ack_sequence, 99u);
    EXPECT_EQ(e.command_result.status, result_status::unknown_connection);
    EXPECT_EQ(e.command_result.connection_id, 7u);
    EXPECT_EQ(e.command_result.path_id, 3u);
    EXPECT_EQ(get_text(e.command_result.reason), "connection 7 does not exist");
    EXPECT_TRUE(validate(e).ok()) << validate(e).reason();
}

TEST(commands_builders, long_reason_is_cut_to_fit) {
    const std::string longer(300, 'r');
    const event e = make_path_down(1, 2, path_down_kind::failed, longer);
    EXPECT_EQ(get_text(e.path_down.reason).size(), reason_size - 1);
    EXPECT_TRUE(validate(e).ok());
}

TEST(commands_builders, events_validate) {
    const std::vector<event> all = {
        make_path_up(1, 2, 1500000),
        make_path_down(1, 2, path_down_kind::down, "no ACK for 3 x PTO"),
        make_unknown_path(v4_tuple(), 17, 0, 1, 100, 200),
        make_counters_ready(5, 12, 2),
        make_connection_closed(3, 0, "idle timeout"),
        [] {
            event e = make_info(message_type::connection_info, 9);
            e.connection_info.connection_id = 3;
            set_text(e.connection_info.name, "up-1");
            return e;
        }(),
        [] {
            event e = make_info(message_type::path_info, 9);
            e.path_info.connection_id = 3;
            e.path_info.tuple = v4_tuple();
            return e;
        }(),
    };
    for (const event& e : all) {
        const validation v = validate(e);
        EXPECT_TRUE(v.ok()) << to_string(e.header.type) << ": " << v.reason();
    }
    // unknown_path reports what arrived, port 0 and zero addresses included.
    five_tuple odd = v4_tuple();
    odd.remote_port = 0;
    std::memset(odd.remote.bytes, 0, 4);
    EXPECT_TRUE(validate(make_unknown_path(odd, 1, 0, 0, 1, 1)).ok());

    // The new events of protocol version 2 are checked field by field too.
    event nameless = make_info(message_type::connection_info, 9);
    EXPECT_NE(validate(nameless).reason().find("connection_info.name"), std::string_view::npos);
    event bad_endpoint = make_info(message_type::connection_info, 9);
    set_text(bad_endpoint.connection_info.name, "x");
    bad_endpoint.connection_info.endpoint = static_cast<endpoint_kind>(9);
    EXPECT_NE(validate(bad_endpoint).reason().find("connection_info.endpoint"), std::string_view::npos);
    event bad_tail = make_connection_closed(1, 0, "x");
    bad_tail.body[sizeof(connection_closed_body)] = 1;
    EXPECT_FALSE(validate(bad_tail).ok());
    EXPECT_EQ(to_string(message_type::list_state), "list_state");
    EXPECT_TRUE(is_command(message_type::list_state));
    EXPECT_TRUE(is_event(message_type::path_info));
    EXPECT_TRUE(validate(make_list_state()).ok());
    command bad_list = make_list_state();
    bad_list.list_state.reserved[1] = 4;
    EXPECT_NE(validate(bad_list).reason().find("list_state.reserved"), std::string_view::npos);
}

// ---- validation: one row per bad field, the reason must name it ----

struct bad_case {
    const char* description;
    std::function<command()> make;
    const char* reason_contains;
    result_status status = result_status::invalid_command;
};

command good_path() {
    return make_add_path(1, 2, v4_tuple());
}

std::vector<bad_case> bad_commands() {
    return {
        {"wrong version",
         [] {
             command c = make_request_counters();
             c.header.version = protocol_version + 1;
             return c;
         },
         "is not this program's protocol version", result_status::unsupported_version},
        {"event type in a command",
         [] {
             command c = make_request_counters();
             c.header.type = message_type::path_up;
             return c;
         },
         "header.type: 0x102 is not a command"},
        {"type zero", [] { return make_command(message_type::invalid); }, "header.type: 0x0 is not a command"},
        {"header reserved",
         [] {
             command c = make_request_counters();
             c.header.reserved = 1;
             return c;
         },
         "header.reserved"},
        {"ack in a command",
         [] {
             command c = make_request_counters();
             c.header.ack_sequence = 4;
             return c;
         },
         "header.ack_sequence"},
        {"connection id zero", [] { return make_add_connection(0, "x", endpoint_kind::discard); },
         "add_connection.connection_id: must be nonzero"},
        {"empty name", [] { return make_add_connection(1, "", endpoint_kind::discard); }, "add_connection.name: empty"},
        {"name too long for the builder",
         [] { return make_add_connection(1, std::string(64, 'n'), endpoint_kind::discard); },
         "add_connection.name: empty"},
        {"name not terminated",
         [] {
             command c = make_add_connection(1, "x", endpoint_kind::discard);
             std::memset(c.add_connection.name, 'a', sizeof(c.add_connection.name));
             return c;
         },
         "add_connection.name: not NUL-terminated within 64 bytes"},
        {"name control character", [] { return make_add_connection(1, "ab\x07", endpoint_kind::discard); },
         "add_connection.name: byte 2 (0x07) is not printable ASCII"},
        {"garbage after name NUL",
         [] {
             command c = make_add_connection(1, "ab", endpoint_kind::discard);
             c.add_connection.name[10] = 'z';
             return c;
         },
         "add_connection.name: bytes after the terminating NUL"},
        {"role",
         [] {
             command c = make_add_connection(1, "x", endpoint_kind::discard);
             c.add_connection.role = static_cast<connection_role>(7);
             return c;
         },
         "add_connection.role: 7 is not server (0) or client (1)"},
        {"endpoint kind", [] { return make_add_connection(1, "x", static_cast<endpoint_kind>(9)); },
         "add_connection.endpoint: 9 is not discard (0)"},
        {"pattern without length", [] { return make_add_connection(1, "x", endpoint_kind::pattern_source); },
         "add_connection.endpoint_length: must be > 0 for pattern_source"},
        {"length on discard",
         [] {
             command c = make_add_connection(1, "x", endpoint_kind::discard);
             c.add_connection.endpoint_length = 5;
             return c;
         },
         "add_connection.endpoint_length: must be 0 unless"},
        {"file store without path", [] { return make_add_connection(1, "x", endpoint_kind::file_store); },
         "add_connection.endpoint_path: empty"},
        {"file store relative path",
         [] {
             command c = make_add_connection(1, "x", endpoint_kind::file_store);
             set_text(c.add_connection.endpoint_path, "store/here");
             return c;
         },
         "add_connection.endpoint_path: 'store/here' is not an absolute directory"},
        {"file store dot dot",
         [] {
             command c = make_add_connection(1, "x", endpoint_kind::file_store);
             set_text(c.add_connection.endpoint_path, "/srv/../etc");
             return c;
         },
         "add_connection.endpoint_path: '/srv/../etc' contains '..'"},
        {"path on echo",
         [] {
             command c = make_add_connection(1, "x", endpoint_kind::echo);
             set_text(c.add_connection.endpoint_path, "/tmp");
             return c;
         },
         "add_connection.endpoint_path: must be empty unless"},
        {"add_connection reserved",
         [] {
             command c = make_add_connection(1, "x", endpoint_kind::echo);
             c.add_connection.reserved = 1;
             return c;
         },
         "add_connection.reserved"},
        {"byte after body",
         [] {
             command c = make_add_connection(1, "x", endpoint_kind::echo);
             c.body[230] = 1;
             return c;
         },
         "add_connection: bytes 216..231 after the body must be zero"},
        {"remove_connection id", [] { return make_remove_connection(0); }, "remove_connection.connection_id"},
        {"path id too large",
         [] {
             command c = good_path();
             c.add_path.path_id = max_path_id + 1;
             return c;
         },
         "add_path.path_id: 4611686018427387904 is above 2^62-1"},
        {"add_path connection",
         [] {
             command c = good_path();
             c.add_path.connection_id = 0;
             return c;
         },
         "add_path.connection_id: must be nonzero"},
        {"ip version",
         [] {
             command c = good_path();
             c.add_path.tuple.version = static_cast<ip_version>(5);
             return c;
         },
         "add_path.tuple.version: 5 is not 4 or 6"},
        {"local port zero",
         [] {
             command c = good_path();
             c.add_path.tuple.local_port = 0;
             return c;
         },
         "add_path.tuple.local_port: must be 1..65535"},
        {"remote port zero",
         [] {
             command c = good_path();
             c.add_path.tuple.remote_port = 0;
             return c;
         },
         "add_path.tuple.remote_port: must be 1..65535"},
        {"ipv4 with high bytes",
         [] {
             command c = good_path();
             c.add_path.tuple.remote.bytes[9] = 1;
             return c;
         },
         "add_path.tuple.remote: IPv4 address with nonzero bytes 4..15"},
        {"unspecified local",
         [] {
             command c = good_path();
             std::memset(c.add_path.tuple.local.bytes, 0, 16);
             return c;
         },
         "add_path.tuple.local: unspecified address"},
        {"negative weight",
         [] {
             command c = good_path();
             c.add_path.initial_weight = -1.0f;
             return c;
         },
         "add_path.initial_weight: -1 is not a finite weight >= 0"},
        {"nan weight",
         [] {
             command c = good_path();
             c.add_path.initial_weight = std::nanf("");
             return c;
         },
         "add_path.initial_weight: nan"},
        {"standby 2",
         [] {
             command c = good_path();
             c.add_path.standby = 2;
             return c;
         },
         "add_path.standby: 2 is not 0 or 1"},
        {"add_path reserved",
         [] {
             command c = good_path();
             c.add_path.reserved[3] = 1;
             return c;
         },
         "add_path.reserved"},
        {"remove_path id", [] { return make_remove_path(1, max_path_id + 5); }, "remove_path.path_id"},
        {"strategy", [] { return make_set_scheduler(1, static_cast<scheduler_strategy>(4)); },
         "set_scheduler.strategy: 4 is not min_rtt (0)"},
        {"weights count zero",
         [] {
             command c = make_command(message_type::set_weights);
             c.set_weights.connection_id = 1;
             return c;
         },
         "set_weights.count: 0 is not 1..8"},
        {"weights count nine",
         [] {
             command c = make_command(message_type::set_weights);
             c.set_weights.connection_id = 1;
             c.set_weights.count = 9;
             return c;
         },
         "set_weights.count: 9 is not 1..8"},
        {"weight infinite",
         [] {
             command c = make_command(message_type::set_weights);
             c.set_weights.connection_id = 1;
             c.set_weights.count = 2;
             c.set_weights.entries[0] = {1, 1.0f, standby_change::keep, {}};
             c.set_weights.entries[1] = {2, std::numeric_limits<float>::infinity(), standby_change::keep, {}};
             return c;
         },
         "set_weights.entries[1].weight: inf"},
        {"weight path twice",
         [] {
             command c = make_command(message_type::set_weights);
             c.set_weights.connection_id = 1;
             c.set_weights.count = 3;
             c.set_weights.entries[0] = {1, 1.0f, standby_change::keep, {}};
             c.set_weights.entries[1] = {2, 1.0f, standby_change::keep, {}};
             c.set_weights.entries[2] = {1, 1.0f, standby_change::keep, {}};
             return c;
         },
         "set_weights.entries[2].path_id: 1 already given in entries[0]"},
        {"weight path too large",
         [] {
             command c = make_command(message_type::set_weights);
             c.set_weights.connection_id = 1;
             c.set_weights.count = 1;
             c.set_weights.entries[0] = {max_path_id + 1, 1.0f, standby_change::keep, {}};
             return c;
         },
         "set_weights.entries[0].path_id: 4611686018427387904 is above 2^62-1"},
        {"weight standby change out of range",
         [] {
             command c = make_command(message_type::set_weights);
             c.set_weights.connection_id = 1;
             c.set_weights.count = 1;
             c.set_weights.entries[0] = {1, 1.0f, static_cast<standby_change>(3), {}};
             return c;
         },
         "set_weights.entries[0].standby: 3 is not keep (0), set (1) or clear (2)"},
        {"weight entry reserved",
         [] {
             command c = make_command(message_type::set_weights);
             c.set_weights.connection_id = 1;
             c.set_weights.count = 1;
             c.set_weights.entries[0] = {1, 1.0f, standby_change::set, {0, 7, 0}};
             return c;
         },
         "set_weights.entries[0].reserved: must be zero"},
        {"unused weight entry",
         [] {
             command c = make_command(message_type::set_weights);
             c.set_weights.connection_id = 1;
             c.set_weights.count = 1;
             c.set_weights.entries[0] = {1, 1.0f, standby_change::keep, {}};
             c.set_weights.entries[5].path_id = 3;
             return c;
         },
         "set_weights.entries[1..7]: unused entries must be zero"},
        {"qos stream zero", [] { return make_set_qos(1, 0, stream_priority::normal); },
         "set_qos.stream_id: 0 is not a stream id"},
        {"qos loss threshold",
         [] {
             command c = make_set_qos(1, 4, stream_priority::normal);
             c.set_qos.loss_threshold = 1.5f;
             return c;
         },
         "set_qos.loss_threshold: 1.5 is not within 0..1"},
        {"qos priority", [] { return make_set_qos(1, 4, static_cast<stream_priority>(3)); },
         "set_qos.priority: 0x03 is not normal (0x00)"},
        {"window scope", [] { return make_set_windows(1, static_cast<window_scope>(3), 0, 10); },
         "set_windows.scope: 3 is not connection (0)"},
        {"window stream id on connection scope", [] { return make_set_windows(1, window_scope::connection, 4, 10); },
         "set_windows.stream_id: must be 0 unless the scope is stream"},
        {"window stream scope without stream", [] { return make_set_windows(1, window_scope::stream, 0, 10); },
         "set_windows.stream_id: 0 is not a stream id"},
        {"window zero", [] { return make_set_windows(1, window_scope::connection, 0, 0); },
         "set_windows.window_bytes: 0 is not 1..2^62"},
        {"request_counters reserved",
         [] {
             command c = make_request_counters();
             c.request_counters.reserved[1] = 1;
             return c;
         },
         "request_counters.reserved"},
        {"keys connection zero", [] { return make_set_connection_keys(0, 0, test_key, 0, 0, false); },
         "set_connection_keys.connection_id: must be nonzero"},
        {"keys all zero",
         [] {
             const std::uint8_t zero[aead_key_size] = {};
             return make_set_connection_keys(1, 0, zero, 0, 0, false);
         },
         "set_connection_keys.key: all zero"},
        {"keys aead",
         [] {
             command c = make_set_connection_keys(1, 0, test_key, 0, 0, false);
             c.set_connection_keys.aead = static_cast<aead_algorithm>(0);
             return c;
         },
         "set_connection_keys.aead: 0 is not AES-256-GCM (1)"},
        {"keys require_encryption",
         [] {
             command c = make_set_connection_keys(1, 0, test_key, 0, 0, false);
             c.set_connection_keys.require_encryption = 2;
             return c;
         },
         "set_connection_keys.require_encryption: 2 is not 0 or 1"},
        {"keys reserved",
         [] {
             command c = make_set_connection_keys(1, 0, test_key, 0, 0, false);
             c.set_connection_keys.reserved[4] = 1;
             return c;
         },
         "set_connection_keys.reserved: must be zero"},
    };
}

TEST(commands_validation, each_bad_field_is_named) {
    for (const bad_case& row : bad_commands()) {
        const command c = row.make();
        const validation v = validate(c);
        EXPECT_FALSE(v.ok()) << row.description;
        EXPECT_NE(v.reason().find(row.reason_contains), std::string_view::npos)
            << row.description << ": reason was \"" << v.reason() << "\", expected it to contain \""
            << row.reason_contains << "\"";
        EXPECT_EQ(v.status(), row.status) << row.description;
        EXPECT_LT(v.reason().size(), reason_size) << row.description;
        // kwikd's answer carries the same reason and status.
        const event rejection = make_rejection(c, v);
        EXPECT_EQ(get_text(rejection.command_result.reason), v.reason()) << row.description;
        EXPECT_EQ(rejection.command_result.status, row.status) << row.description;
    }
}

TEST(commands_validation, bad_events_are_named) {
    event e = make_command_result(make_request_counters(), result_status::ok);
    e.command_result.status = static_cast<result_status>(77);
    EXPECT_NE(validate(e).reason().find("command_result.status: 77 is not defined"), std::string_view::npos)
        << validate(e).reason();

    event down = make_path_down(1, 2, static_cast<path_down_kind>(3), "x");
    EXPECT_NE(validate(down).reason().find("path_down.kind: 3"), std::string_view::npos) << validate(down).reason();

    event unknown = make_unknown_path(v4_tuple(), 0, 0, 0, 1, 1);
    EXPECT_NE(validate(unknown).reason().find("unknown_path.count: must be nonzero"), std::string_view::npos);

    event as_command = make_path_up(1, 2, 3);
    as_command.header.type = message_type::add_path;
    EXPECT_NE(validate(as_command).reason().find("header.type: 0x3 is not an event"), std::string_view::npos);
}

TEST(commands_validation, ipv6_path_is_valid) {
    ip_version v{};
    ip_address local{};
    ip_address remote{};
    ASSERT_TRUE(parse_address("2001:db8::1", v, local));
    ASSERT_TRUE(parse_address("2001:db8::2", v, remote));
    const command c = make_add_path(1, 9, make_tuple(ip_version::v6, local, 7707, remote, 5000));
    EXPECT_TRUE(validate(c).ok()) << validate(c).reason();
}

TEST(commands_text, set_text_refuses_what_does_not_fit) {
    char field[8];
    EXPECT_TRUE(set_text(field, "1234567"));
    EXPECT_EQ(get_text(field), "1234567");
    EXPECT_FALSE(set_text(field, "12345678"));
    EXPECT_EQ(get_text(field), "");
}

} // namespace
