// kwikctl's command line (controlplane/kwikctl/command_line.*): every command's arguments made
// into the OperatorRequest it sends, and every bad argument refused with exit status 2 and a
// message naming the flag or positional at fault. No sockets.
#include <google/protobuf/text_format.h>
#include <google/protobuf/util/message_differencer.h>
#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include "controlplane/kcp/tls.hpp"
#include "controlplane/kwikctl/command_line.hpp"

namespace kwik::ctl {
namespace {

namespace v3 = kcp::v3;
using google::protobuf::util::MessageDifferencer;

parse_outcome parse(std::vector<std::string> args) {
    command_line cl;
    return cl.parse(args);
}

v3::OperatorRequest text_request(const std::string& text) {
    v3::OperatorRequest r;
    EXPECT_TRUE(google::protobuf::TextFormat::ParseFromString(text, &r)) << text;
    return r;
}

struct request_case {
    std::string name;
    std::vector<std::string> args;
    std::string expected; // OperatorRequest in protobuf text format
};

class arguments_to_request : public testing::TestWithParam<request_case> {};

TEST_P(arguments_to_request, builds_the_request) {
    const request_case& c = GetParam();
    const parse_outcome o = parse(c.args);
    ASSERT_TRUE(o.parsed.has_value()) << o.err;
    EXPECT_EQ(o.exit_code, exit_ok);
    EXPECT_TRUE(o.err.empty()) << o.err;
    const v3::OperatorRequest expected = text_request(c.expected);
    std::string diff;
    MessageDifferencer d;
    d.ReportDifferencesToString(&diff);
    EXPECT_TRUE(d.Compare(expected, o.parsed->request)) << diff << "\ngot: " << o.parsed->request.DebugString();
}

const std::string hex32 = "0123456789abcdef0123456789ABCDEF";

INSTANTIATE_TEST_SUITE_P(
    every_command, arguments_to_request,
    testing::Values(
        request_case{"status", {"status"}, "show { view: STATUS }"},
        request_case{"show_ports", {"show", "ports"}, "show { view: PORTS }"},
        request_case{"show_workers", {"show", "workers"}, "show { view: WORKERS }"},
        request_case{"show_connections", {"show", "connections"}, "show { view: CONNECTIONS }"},
        request_case{"show_paths", {"show", "paths"}, "show { view: PATHS }"},
        request_case{"show_connections_of_one", {"show", "connections", "--connection", "7"},
                     "show { view: CONNECTIONS connection: '7' }"},
        request_case{"show_paths_of_one", {"show", "paths", "--connection", "demo-0"},
                     "show { view: PATHS connection: 'demo-0' }"},
        request_case{"show_streams_by_kcp_id", {"show", "streams", "--connection", hex32},
                     "show { view: STREAMS connection: '0123456789abcdef0123456789abcdef' }"},
        request_case{"show_servers", {"show", "servers"}, "show { view: SERVERS }"},
        request_case{"show_counters", {"show", "counters"}, "show { view: COUNTERS }"},
        request_case{"show_sessions", {"show", "sessions"}, "show { view: SESSIONS }"},
        request_case{"path_add_minimal",
                     {"path", "add", "--connection", "7", "--path-id", "2", "--local", "10.0.0.1:7707", "--remote",
                      "10.0.1.2:40000"},
                     "add_path { connection: '7' path_id: 2 path { ip_version: IPV4 local_address: '10.0.0.1' "
                     "local_port: 7707 remote_address: '10.0.1.2' remote_port: 40000 } }"},
        request_case{"path_add_everything",
                     {"path", "add", "--connection", "up-1", "--path-id", "9", "--local", "[fd00::1]:7707", "--remote",
                      "[2001:db8::2]:5000", "--weight", "2.5", "--standby", "--max-mbps", "800"},
                     "add_path { connection: 'up-1' path_id: 9 path { ip_version: IPV6 local_address: 'fd00::1' "
                     "local_port: 7707 remote_address: '2001:db8::2' remote_port: 5000 } weight: 2.5 standby: true "
                     "max_bandwidth_mbps: 800 }"},
        request_case{"path_remove", {"path", "remove", "--connection", "7", "--path-id", "2"},
                     "remove_path { connection: '7' path_id: 2 }"},
        request_case{"path_remove_drain", {"path", "remove", "--connection", "7", "--path-id", "2", "--drain-ms", "250"},
                     "remove_path { connection: '7' path_id: 2 drain_timeout_ms: 250 }"},
        request_case{"scale_target_only", {"scale", "--connection", "7", "--target-mbps", "2000"},
                     "scale { connection: '7' target_bandwidth_mbps: 2000 }"},
        request_case{"scale_with_policy",
                     {"scale", "--connection", "7", "--target-mbps", "2000", "--min-paths", "2", "--max-paths", "6",
                      "--cooldown-s", "30", "--up-threshold", "80", "--down-threshold", "30", "--aggressive"},
                     "scale { connection: '7' target_bandwidth_mbps: 2000 policy { scale_up_threshold_percent: 80 "
                     "scale_down_threshold_percent: 30 min_paths: 2 max_paths: 6 cooldown_seconds: 30 "
                     "aggressive_scaling: true } }"},
        request_case{"set_qos", {"set", "qos", "--connection", "7", "--stream", "4", "--priority", "1"},
                     "set_qos { connection: '7' stream_id: 4 priority: 1 }"},
        request_case{"set_qos_rates",
                     {"set", "qos", "--connection", "7", "--stream", "4", "--priority", "0", "--min-mbps", "10",
                      "--max-mbps", "100"},
                     "set_qos { connection: '7' stream_id: 4 priority: 0 min_bandwidth_mbps: 10 max_bandwidth_mbps: 100 }"},
        request_case{"set_scheduler_min_rtt", {"set", "scheduler", "--connection", "7", "min-rtt"},
                     "set_scheduler { connection: '7' strategy: MIN_RTT }"},
        request_case{"set_scheduler_weighted", {"set", "scheduler", "--connection", "7", "weighted"},
                     "set_scheduler { connection: '7' strategy: WEIGHTED }"},
        request_case{"set_scheduler_round_robin", {"set", "scheduler", "--connection", "7", "round-robin"},
                     "set_scheduler { connection: '7' strategy: ROUND_ROBIN }"},
        request_case{"set_scheduler_redundant", {"set", "scheduler", "--connection", "7", "redundant"},
                     "set_scheduler { connection: '7' strategy: REDUNDANT }"},
        request_case{"set_weights", {"set", "weights", "--connection", "7", "1=3", "2=1", "5=0"},
                     "set_weights { connection: '7' path_weights { key: 1 value: 3 } path_weights { key: 2 value: 1 } "
                     "path_weights { key: 5 value: 0 } }"},
        request_case{"health_server", {"health"}, "health { }"},
        request_case{"health_path", {"health", "--connection", "7", "--path-id", "3"},
                     "health { connection: '7' path_id: 3 }"},
        request_case{"registry_list", {"registry", "list"}, "show { view: SERVERS }"},
        request_case{"registry_register_minimal",
                     {"registry", "register", "--server-id", "srv-a", "--address", "192.0.2.10:7708"},
                     "register_server { server_id: 'srv-a' server { address: '192.0.2.10:7708' } }"},
        request_case{"registry_register_everything",
                     {"registry", "register", "--server-id", "srv-a", "--address", "edge.example:7708", "--pin",
                      std::string(64, 'a'), "--bandwidth-mbps", "10000", "--region", "eu-west", "--country", "FR",
                      "--datacenter", "par1", "--capability", "encryption", "--capability", "compression"},
                     "register_server { server_id: 'srv-a' server { address: 'edge.example:7708' "
                     "tls_pubkey_hash_sha256: '\\xaa\\xaa\\xaa\\xaa\\xaa\\xaa\\xaa\\xaa\\xaa\\xaa\\xaa\\xaa\\xaa\\xaa"
                     "\\xaa\\xaa\\xaa\\xaa\\xaa\\xaa\\xaa\\xaa\\xaa\\xaa\\xaa\\xaa\\xaa\\xaa\\xaa\\xaa\\xaa\\xaa' "
                     "available_bandwidth_mbps: 10000 capabilities: 'encryption' capabilities: 'compression' "
                     "location { country: 'FR' region: 'eu-west' datacenter: 'par1' } } }"},
        request_case{"registry_remove", {"registry", "remove", "--server-id", "srv-a"},
                     "remove_server { server_id: 'srv-a' }"},
        request_case{"registry_remove_reason", {"registry", "remove", "--server-id", "srv-a", "--reason", "retired"},
                     "remove_server { server_id: 'srv-a' reason: 'retired' }"},
        request_case{"watch_default", {"watch"}, "show { view: STATUS }"},
        request_case{"watch_paths", {"watch", "paths", "--connection", "7"}, "show { view: PATHS connection: '7' }"}),
    [](const testing::TestParamInfo<request_case>& i) { return i.param.name; });

TEST(command_line, global_settings_and_json_are_taken_before_and_after_the_command) {
    const parse_outcome o = parse({"--server", "cp.example:7708", "--pin", std::string(64, 'b'), "--key-id", "ops",
                                   "show", "paths", "--json", "--secret-file", "/k", "--client-id", "me",
                                   "--timeout-ms", "250", "--config", "/c.toml"});
    ASSERT_TRUE(o.parsed) << o.err;
    EXPECT_TRUE(o.parsed->json);
    EXPECT_EQ(o.parsed->command, "show paths");
    EXPECT_EQ(o.parsed->settings.server, "cp.example:7708");
    EXPECT_EQ(o.parsed->settings.pin, std::string(64, 'b'));
    EXPECT_EQ(o.parsed->settings.key_id, "ops");
    EXPECT_EQ(o.parsed->settings.secret_file, "/k");
    EXPECT_EQ(o.parsed->settings.client_id, "me");
    EXPECT_EQ(o.parsed->settings.timeout_ms, "250");
    EXPECT_EQ(o.parsed->settings.config, "/c.toml");
    EXPECT_FALSE(o.parsed->settings.insecure_plain);
    const parse_outcome none = parse({"status"});
    ASSERT_TRUE(none.parsed);
    EXPECT_FALSE(none.parsed->settings.server.has_value());
    EXPECT_FALSE(none.parsed->settings.pin.has_value());
    EXPECT_FALSE(none.parsed->json);
}

TEST(command_line, registry_register_pin_is_the_servers_and_the_global_pin_goes_before) {
    const parse_outcome o = parse({"--pin", std::string(64, 'c'), "registry", "register", "--server-id", "s", "--address",
                                   "h:1", "--pin", std::string(64, 'd')});
    ASSERT_TRUE(o.parsed) << o.err;
    EXPECT_EQ(o.parsed->settings.pin, std::string(64, 'c'));
    EXPECT_EQ(o.parsed->request.register_server().server().tls_pubkey_hash_sha256(), std::string(32, '\xdd'));
}

TEST(command_line, watch_takes_its_interval_and_count) {
    const parse_outcome o = parse({"watch", "counters", "--interval-ms", "250", "--count", "3"});
    ASSERT_TRUE(o.parsed) << o.err;
    EXPECT_EQ(o.parsed->what, invocation::kind::watch);
    EXPECT_EQ(o.parsed->interval_ms, 250u);
    EXPECT_EQ(o.parsed->count, 3u);
    const parse_outcome d = parse({"watch"});
    ASSERT_TRUE(d.parsed);
    EXPECT_EQ(d.parsed->interval_ms, 1000u);
    EXPECT_EQ(d.parsed->count, 0u);
}

TEST(command_line, doctor_takes_its_flags_and_the_connection_settings) {
    const parse_outcome o = parse({"--json", "--key-id", "ops", "doctor", "--root", "/", "--kwikd-config", "/etc/hostname",
                                   "--kwikd", "kwikd", "--skip", "control", "--skip", "shm"});
    ASSERT_TRUE(o.parsed) << o.err;
    EXPECT_EQ(o.parsed->what, invocation::kind::doctor);
    const doctor::options& d = o.parsed->doctor;
    EXPECT_EQ(d.root, "/");
    EXPECT_EQ(d.kwikd_config, "/etc/hostname");
    EXPECT_EQ(d.kwikd, "kwikd");
    EXPECT_EQ(d.skip, (std::vector<std::string>{"control", "shm"}));
    EXPECT_TRUE(d.json);
    EXPECT_EQ(d.settings.key_id, "ops");
    const parse_outcome plain = parse({"doctor"});
    ASSERT_TRUE(plain.parsed) << plain.err;
    EXPECT_EQ(plain.parsed->doctor.root, "/");
    EXPECT_FALSE(plain.parsed->doctor.kwikd_config);
    EXPECT_FALSE(plain.parsed->doctor.kwikd);
    EXPECT_TRUE(plain.parsed->doctor.skip.empty());
}

TEST(command_line, insecure_plain_is_a_flag) {
    const parse_outcome o = parse({"--insecure-plain", "status"});
    ASSERT_TRUE(o.parsed) << o.err;
    EXPECT_TRUE(o.parsed->settings.insecure_plain);
}

struct bad_case {
    std::string name;
    std::vector<std::string> args;
    std::vector<std::string> says; // each must appear in the message
};

class bad_arguments : public testing::TestWithParam<bad_case> {};

TEST_P(bad_arguments, exit_2_naming_the_argument) {
    const bad_case& c = GetParam();
    const parse_outcome o = parse(c.args);
    EXPECT_FALSE(o.parsed.has_value());
    EXPECT_EQ(o.exit_code, exit_bad_arguments);
    EXPECT_EQ(o.err.rfind("kwikctl: ", 0), 0u) << o.err;
    for (const std::string& s : c.says) {
        EXPECT_NE(o.err.find(s), std::string::npos) << "\"" << s << "\" not in: " << o.err;
    }
    EXPECT_NE(o.err.find("--help"), std::string::npos) << o.err;
}

const std::vector<std::string> add_base = {"path", "add", "--connection", "7", "--path-id", "1",
                                           "--local", "10.0.0.1:7707", "--remote", "10.0.0.2:9"};
std::vector<std::string> add_with(std::vector<std::string> extra) {
    std::vector<std::string> a = add_base;
    a.insert(a.end(), extra.begin(), extra.end());
    return a;
}

INSTANTIATE_TEST_SUITE_P(
    every_check, bad_arguments,
    testing::Values(
        bad_case{"no_command", {}, {"a command is required", "status, show, path"}},
        bad_case{"unknown_command", {"frobnicate"}, {"\"frobnicate\" is not a command", "status, show"}},
        bad_case{"show_without_view", {"show"}, {"a command is required after 'kwikctl show'", "ports, workers"}},
        bad_case{"show_unknown_view", {"show", "routes"}, {"\"routes\" is not a command after 'kwikctl show'"}},
        bad_case{"show_ports_takes_no_connection", {"show", "ports", "--connection", "7"}, {"--connection"}},
        bad_case{"bad_connection_characters", {"show", "paths", "--connection", "a b"}, {"--connection", "\"a b\""}},
        bad_case{"connection_too_long", {"show", "paths", "--connection", std::string(64, 'x')}, {"--connection"}},
        bad_case{"server_not_host_port", {"--server", "x", "status"}, {"--server", "\"x\" is not host:port"}},
        bad_case{"server_port_zero", {"--server", "h:0", "status"}, {"--server", "1..65535"}},
        bad_case{"server_v6_without_brackets", {"--server", "::1:7708", "status"}, {"--server", "[addr]:port"}},
        bad_case{"pin_not_hex", {"--pin", "xyz", "status"}, {"--pin", "64 hex digits"}},
        bad_case{"timeout_zero", {"--timeout-ms", "0", "status"}, {"--timeout-ms", "\"0\""}},
        bad_case{"timeout_text", {"--timeout-ms", "soon", "status"}, {"--timeout-ms", "\"soon\""}},
        bad_case{"add_without_connection",
                 {"path", "add", "--path-id", "1", "--local", "10.0.0.1:7707", "--remote", "10.0.0.2:9"},
                 {"--connection", "required"}},
        bad_case{"add_without_path_id",
                 {"path", "add", "--connection", "7", "--local", "10.0.0.1:7707", "--remote", "10.0.0.2:9"},
                 {"--path-id", "required"}},
        bad_case{"add_without_local", {"path", "add", "--connection", "7", "--path-id", "1", "--remote", "10.0.0.2:9"},
                 {"--local", "required"}},
        bad_case{"add_without_remote", {"path", "add", "--connection", "7", "--path-id", "1", "--local", "10.0.0.1:1"},
                 {"--remote", "required"}},
        bad_case{"add_path_id_zero",
                 {"path", "add", "--connection", "7", "--path-id", "0", "--local", "10.0.0.1:7707", "--remote",
                  "10.0.0.2:9"},
                 {"--path-id", "\"0\" is outside 1..4611686018427387903"}},
        bad_case{"add_path_id_negative",
                 {"path", "add", "--connection", "7", "--path-id", "-3", "--local", "10.0.0.1:7707", "--remote",
                  "10.0.0.2:9"},
                 {"--path-id"}},
        bad_case{"add_path_id_huge",
                 {"path", "add", "--connection", "7", "--path-id", "4611686018427387904", "--local", "10.0.0.1:7707",
                  "--remote", "10.0.0.2:9"},
                 {"--path-id", "outside"}},
        bad_case{"add_local_hostname",
                 {"path", "add", "--connection", "7", "--path-id", "1", "--local", "host:7707", "--remote",
                  "10.0.0.2:9"},
                 {"--local", "\"host\" is not a numeric IPv4 address"}},
        bad_case{"add_remote_no_port",
                 {"path", "add", "--connection", "7", "--path-id", "1", "--local", "10.0.0.1:7707", "--remote",
                  "10.0.0.2"},
                 {"--remote", "\"10.0.0.2\""}},
        bad_case{"add_remote_port_too_big",
                 {"path", "add", "--connection", "7", "--path-id", "1", "--local", "10.0.0.1:7707", "--remote",
                  "10.0.0.2:70000"},
                 {"--remote", "1..65535"}},
        bad_case{"add_mixed_families",
                 {"path", "add", "--connection", "7", "--path-id", "1", "--local", "10.0.0.1:7707", "--remote",
                  "[fd00::2]:9"},
                 {"--remote", "IPv6", "--local", "IPv4"}},
        bad_case{"add_weight_zero", add_with({"--weight", "0"}), {"--weight", "\"0\" is not above 0", "--standby"}},
        bad_case{"add_weight_text", add_with({"--weight", "heavy"}), {"--weight", "\"heavy\""}},
        bad_case{"add_weight_nan", add_with({"--weight", "nan"}), {"--weight", "\"nan\""}},
        bad_case{"add_max_mbps_negative", add_with({"--max-mbps", "-1"}), {"--max-mbps"}},
        bad_case{"add_max_mbps_too_big", add_with({"--max-mbps", "4294967296"}), {"--max-mbps", "outside"}},
        bad_case{"add_standby_is_a_flag", add_with({"--standby=maybe"}), {"--standby", "maybe"}},
        bad_case{"remove_without_path_id", {"path", "remove", "--connection", "7"}, {"--path-id", "required"}},
        bad_case{"remove_drain_text", {"path", "remove", "--connection", "7", "--path-id", "1", "--drain-ms", "1s"},
                 {"--drain-ms", "\"1s\""}},
        bad_case{"path_without_verb", {"path"}, {"after 'kwikctl path'", "add, remove"}},
        bad_case{"scale_without_target", {"scale", "--connection", "7"}, {"--target-mbps", "required"}},
        bad_case{"scale_target_zero", {"scale", "--connection", "7", "--target-mbps", "0"}, {"--target-mbps"}},
        bad_case{"scale_min_above_max",
                 {"scale", "--connection", "7", "--target-mbps", "10", "--min-paths", "5", "--max-paths", "2"},
                 {"--min-paths", "--max-paths"}},
        bad_case{"scale_max_paths_65", {"scale", "--connection", "7", "--target-mbps", "10", "--max-paths", "65"},
                 {"--max-paths", "1..64"}},
        bad_case{"scale_thresholds_crossed",
                 {"scale", "--connection", "7", "--target-mbps", "10", "--up-threshold", "40", "--down-threshold",
                  "60"},
                 {"--down-threshold", "--up-threshold"}},
        bad_case{"scale_up_threshold_101", {"scale", "--connection", "7", "--target-mbps", "10", "--up-threshold", "101"},
                 {"--up-threshold", "1..100"}},
        bad_case{"scale_cooldown_text", {"scale", "--connection", "7", "--target-mbps", "10", "--cooldown-s", "x"},
                 {"--cooldown-s"}},
        bad_case{"qos_priority_8", {"set", "qos", "--connection", "7", "--stream", "4", "--priority", "8"},
                 {"--priority", "0..7"}},
        bad_case{"qos_without_stream", {"set", "qos", "--connection", "7", "--priority", "1"}, {"--stream", "required"}},
        bad_case{"qos_stream_zero", {"set", "qos", "--connection", "7", "--stream", "0", "--priority", "1"},
                 {"--stream"}},
        bad_case{"qos_min_above_max",
                 {"set", "qos", "--connection", "7", "--stream", "4", "--priority", "1", "--min-mbps", "50",
                  "--max-mbps", "10"},
                 {"--min-mbps", "--max-mbps"}},
        bad_case{"scheduler_unknown", {"set", "scheduler", "--connection", "7", "fastest"},
                 {"strategy", "\"fastest\"", "min-rtt"}},
        bad_case{"scheduler_missing", {"set", "scheduler", "--connection", "7"}, {"strategy", "required"}},
        bad_case{"weights_missing", {"set", "weights", "--connection", "7"}, {"weights", "required"}},
        bad_case{"weights_no_equals", {"set", "weights", "--connection", "7", "13"}, {"weights", "\"13\"", "PATH=WEIGHT"}},
        bad_case{"weights_path_zero", {"set", "weights", "--connection", "7", "0=1"}, {"weights", "path id"}},
        bad_case{"weights_negative", {"set", "weights", "--connection", "7", "1=-2"}, {"weights", "weight"}},
        bad_case{"weights_twice", {"set", "weights", "--connection", "7", "1=2", "1=3"}, {"weights", "path 1", "twice"}},
        bad_case{"health_connection_alone", {"health", "--connection", "7"}, {"--connection", "--path-id"}},
        bad_case{"health_path_alone", {"health", "--path-id", "3"}, {"--path-id", "--connection"}},
        bad_case{"register_without_address", {"registry", "register", "--server-id", "s"}, {"--address", "required"}},
        bad_case{"register_bad_address", {"registry", "register", "--server-id", "s", "--address", "nowhere"},
                 {"--address", "\"nowhere\""}},
        bad_case{"register_bad_pin", {"registry", "register", "--server-id", "s", "--address", "h:1", "--pin", "ab"},
                 {"--pin", "\"ab\""}},
        bad_case{"register_long_id", {"registry", "register", "--server-id", std::string(129, 's'), "--address", "h:1"},
                 {"--server-id", "1..128"}},
        bad_case{"register_capability_twice",
                 {"registry", "register", "--server-id", "s", "--address", "h:1", "--capability", "x", "--capability",
                  "x"},
                 {"--capability", "\"x\"", "twice"}},
        bad_case{"register_region_with_space",
                 {"registry", "register", "--server-id", "s", "--address", "h:1", "--region", "eu west"},
                 {"--region", "\"eu west\""}},
        bad_case{"remove_server_without_id", {"registry", "remove"}, {"--server-id", "required"}},
        bad_case{"watch_unknown_view", {"watch", "routes"}, {"view", "\"routes\""}},
        bad_case{"watch_connection_on_ports", {"watch", "ports", "--connection", "7"}, {"--connection", "ports"}},
        bad_case{"watch_interval_too_short", {"watch", "--interval-ms", "10"}, {"--interval-ms", "100.."}},
        bad_case{"watch_count_zero", {"watch", "--count", "0"}, {"--count"}},
        bad_case{"pin_missing_file", {"pin", "/nonexistent/cp.crt"}, {"file", "/nonexistent/cp.crt"}},
        bad_case{"pin_without_file", {"pin"}, {"file", "required"}},
        bad_case{"completion_unknown_shell", {"completion", "fish"}, {"shell", "\"fish\"", "bash"}},
        bad_case{"completion_without_shell", {"completion"}, {"shell", "required"}},
        bad_case{"doctor_root_not_a_directory", {"doctor", "--root", "/nonexistent/tree"}, {"--root", "/nonexistent/tree"}},
        bad_case{"doctor_kwikd_config_missing", {"doctor", "--kwikd-config", "/nonexistent/kwikd.toml"},
                 {"--kwikd-config", "not a file"}},
        bad_case{"doctor_kwikd_not_executable", {"doctor", "--kwikd", "/etc/passwd"}, {"--kwikd", "not an executable"}},
        bad_case{"doctor_skip_unknown_group", {"doctor", "--skip", "disks"}, {"--skip", "\"disks\"", "hugepages"}},
        bad_case{"doctor_skip_config", {"doctor", "--skip", "config"}, {"--skip", "\"config\""}},
        bad_case{"unknown_flag", {"status", "--verbose"}, {"--verbose"}}),
    [](const testing::TestParamInfo<bad_case>& i) { return i.param.name; });

TEST(command_line, help_exits_0_with_the_commands_usage) {
    for (const std::vector<std::string>& args :
         std::vector<std::vector<std::string>>{{"--help"}, {"path", "add", "--help"}, {"show", "paths", "--help"},
                                               {"registry", "register", "--help"}, {"watch", "--help"}}) {
        const parse_outcome o = parse(args);
        EXPECT_FALSE(o.parsed.has_value());
        EXPECT_EQ(o.exit_code, exit_ok);
        EXPECT_TRUE(o.err.empty()) << o.err;
        EXPECT_NE(o.out.find("Usage"), std::string::npos) << o.out;
    }
    EXPECT_NE(parse({"path", "add", "--help"}).out.find("--remote"), std::string::npos);
    EXPECT_NE(parse({"--help"}).out.find("registry"), std::string::npos);
    EXPECT_NE(parse({"show", "paths", "--help"}).out.find("--connection"), std::string::npos);
}

TEST(command_line, completion_prints_the_script_and_exits_0) {
    const parse_outcome o = parse({"completion", "bash"});
    EXPECT_FALSE(o.parsed.has_value());
    EXPECT_EQ(o.exit_code, exit_ok);
    EXPECT_NE(o.out.find("complete -F _kwikctl kwikctl"), std::string::npos);
}

TEST(command_line, pin_prints_the_pin_of_a_certificate_file) {
    auto id = kcp::generate_self_signed();
    ASSERT_TRUE(id.ok()) << id.message();
    const std::string file = testing::TempDir() + "kwikctl-pin-test.crt";
    std::ofstream(file) << id->certificate_pem;
    const parse_outcome o = parse({"pin", file});
    EXPECT_EQ(o.exit_code, exit_ok) << o.err;
    EXPECT_FALSE(o.parsed.has_value());
    auto expected = kcp::pin_of_pem(id->certificate_pem);
    ASSERT_TRUE(expected.ok());
    EXPECT_EQ(o.out, kcp::to_hex(*expected) + "\n");
    auto server = kcp::tls_context::server(*id);
    ASSERT_TRUE(server.ok());
    EXPECT_EQ(o.out, kcp::to_hex(server->pin()) + "\n") << "the pin a TLS client checks";
    std::remove(file.c_str());
}

TEST(command_line, view_names_round_trip) {
    for (const char* v : {"status", "ports", "workers", "connections", "paths", "streams", "servers", "counters",
                          "sessions"}) {
        EXPECT_EQ(view_name(view_of(v)), v);
    }
    EXPECT_EQ(view_of("routes"), v3::OperatorRequest::VIEW_UNSPECIFIED);
}

} // namespace
} // namespace kwik::ctl
