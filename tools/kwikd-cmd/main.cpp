// kwikd-cmd: drives a running kwikd through its shared-memory command interface directly, as
// the control process does (dataplane/api/): one command per invocation, its answer (and every
// event that arrived meanwhile) printed as JSON lines; counters read lock-free from the region.
// For operators debugging a data plane without kwik-cp, and for the end-to-end tests. Each run
// attaches, takes the control lock, and detaches: a control process that comes and goes.
//
//   kwikd-cmd --name kwik add-connection --id 7 --conn-name up-1 --endpoint file_store --dir /srv/in
//   kwikd-cmd add-path --connection 7 --path 1 --local 10.0.0.1:7707 --remote 10.0.1.2:40000
//   kwikd-cmd counters --connection 7        kwikd-cmd events --wait path_up --timeout 5
//
// Exit codes: 0 answered ok; 2 kwikd answered with an error (its reason is printed); 3 no answer
// within --timeout; 1 bad arguments or no kwikd to attach to.
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>
#include <openssl/crypto.h>

#include <chrono>
#include <map>
#include <optional>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "dataplane/api/command_ring.hpp"
#include "dataplane/api/commands.hpp"
#include "dataplane/api/counters.hpp"
#include "dataplane/api/shm_region.hpp"
#include "tools/common/hex_key.hpp"

namespace {

using namespace kwik;
using json = nlohmann::ordered_json;

std::string address_text(api::ip_version v, const api::ip_address& a) {
    char buf[64];
    if (v == api::ip_version::v4) {
        std::snprintf(buf, sizeof buf, "%u.%u.%u.%u", a.bytes[0], a.bytes[1], a.bytes[2], a.bytes[3]);
        return buf;
    }
    std::string s;
    for (int i = 0; i < 16; i += 2) {
        std::snprintf(buf, sizeof buf, "%s%x", i == 0 ? "" : ":", (a.bytes[i] << 8) | a.bytes[i + 1]);
        s += buf;
    }
    return s;
}

json tuple_json(const api::five_tuple& t) {
    const bool v6 = t.version == api::ip_version::v6;
    auto ep = [&](const api::ip_address& a, std::uint16_t port) {
        return v6 ? "[" + address_text(t.version, a) + "]:" + std::to_string(port)
                  : address_text(t.version, a) + ":" + std::to_string(port);
    };
    return json{{"local", ep(t.local, t.local_port)}, {"remote", ep(t.remote, t.remote_port)}};
}

json event_json(const api::event& e) {
    json j{{"type", std::string(api::to_string(e.header.type))}, {"sequence", e.header.sequence}};
    if (e.header.ack_sequence != 0) {
        j["answers"] = e.header.ack_sequence;
    }
    switch (e.header.type) {
    case api::message_type::command_result:
        j["status"] = std::string(api::to_string(e.command_result.status));
        j["reason"] = std::string(api::get_text(e.command_result.reason));
        j["connection_id"] = e.command_result.connection_id;
        j["path_id"] = e.command_result.path_id;
        break;
    case api::message_type::path_up:
        j["connection_id"] = e.path_up.connection_id;
        j["path_id"] = e.path_up.path_id;
        j["smoothed_rtt_ns"] = e.path_up.smoothed_rtt_ns;
        break;
    case api::message_type::path_down: {
        static const char* kinds[] = {"down", "failed", "removed"};
        j["connection_id"] = e.path_down.connection_id;
        j["path_id"] = e.path_down.path_id;
        j["kind"] = static_cast<unsigned>(e.path_down.kind) <= api::path_down_kind_max
                        ? kinds[static_cast<unsigned>(e.path_down.kind)]
                        : "?";
        j["reason"] = std::string(api::get_text(e.path_down.reason));
        break;
    }
    case api::message_type::unknown_path:
        j["tuple"] = tuple_json(e.unknown_path.tuple);
        j["count"] = e.unknown_path.count;
        j["port"] = e.unknown_path.port_id;
        j["worker"] = e.unknown_path.worker;
        break;
    case api::message_type::counters_ready:
        j["epoch"] = e.counters_ready.epoch;
        j["workers_published"] = e.counters_ready.workers_published;
        break;
    case api::message_type::connection_closed:
        j["connection_id"] = e.connection_closed.connection_id;
        j["close_code"] = e.connection_closed.close_code;
        j["reason"] = std::string(api::get_text(e.connection_closed.reason));
        break;
    case api::message_type::connection_info: {
        static const char* endpoints[] = {"discard", "echo", "pattern_source", "file_store"};
        const auto& c = e.connection_info;
        j["connection_id"] = c.connection_id;
        j["name"] = std::string(api::get_text(c.name));
        j["worker"] = c.owner_worker;
        j["role"] = c.role == api::connection_role::client ? "client" : "server";
        j["endpoint"] = static_cast<unsigned>(c.endpoint) <= api::endpoint_kind_max
                            ? endpoints[static_cast<unsigned>(c.endpoint)]
                            : "?";
        j["endpoint_path"] = std::string(api::get_text(c.endpoint_path));
        j["endpoint_length"] = c.endpoint_length;
        j["paths"] = c.paths;
        j["live_keys"] = c.live_keys; // the keys themselves never leave kwik-cp and kwikd's workers
        if (c.live_keys != 0) {
            j["key_phase"] = c.key_phase;
        }
        j["require_encryption"] = c.require_encryption != 0;
        break;
    }
    case api::message_type::path_info: {
        const auto& p = e.path_info;
        j["connection_id"] = p.connection_id;
        j["path_id"] = p.path_id;
        j["tuple"] = tuple_json(p.tuple);
        j["weight"] = p.weight;
        j["max_bandwidth_mbps"] = p.max_bandwidth_mbps;
        j["port"] = p.port_id;
        j["standby"] = p.standby != 0;
        j["steered"] = p.steered != 0;
        break;
    }
    default:
        break;
    }
    return j;
}

void print(const json& j) {
    std::printf("%s\n", j.dump().c_str());
    std::fflush(stdout);
}

// "10.0.0.1:7707" or "[fd00::1]:7707".
bool parse_endpoint(const std::string& text, api::ip_version& v, api::ip_address& a, std::uint16_t& port) {
    std::string host;
    std::string p;
    if (!text.empty() && text.front() == '[') {
        const auto close = text.find(']');
        if (close == std::string::npos || close + 1 >= text.size() || text[close + 1] != ':') {
            return false;
        }
        host = text.substr(1, close - 1);
        p = text.substr(close + 2);
    } else {
        const auto colon = text.rfind(':');
        if (colon == std::string::npos) {
            return false;
        }
        host = text.substr(0, colon);
        p = text.substr(colon + 1);
    }
    if (p.empty() || p.size() > 5 || p.find_first_not_of("0123456789") != std::string::npos) {
        return false;
    }
    const unsigned long n = std::stoul(p);
    if (n == 0 || n > 65535) {
        return false;
    }
    port = static_cast<std::uint16_t>(n);
    return api::parse_address(host, v, a);
}

struct session {
    api::shm_region region;
    api::control_channel channel;
};

// The region and lock files in kwikd's [kwikd] shm_directory (--shm-directory).
api::open_options options_in(const std::string& directory, api::access mode) {
    api::open_options o;
    o.mode = mode;
    o.directory = directory;
    o.lock_directory = directory;
    return o;
}

int attach(const std::string& name, const std::string& directory, session& s) {
    auto region = api::shm_region::open(name, options_in(directory, api::access::read_write));
    if (!region.ok()) {
        std::fprintf(stderr, "kwikd-cmd: %s\n", region.message().c_str());
        return 1;
    }
    s.region = std::move(region).value();
    auto channel = api::control_channel::attach(s.region);
    if (!channel.ok()) {
        std::fprintf(stderr, "kwikd-cmd: %s\n", channel.message().c_str());
        return 1;
    }
    s.channel = std::move(channel).value();
    return 0;
}

// Sends c and prints events until the one that answers it (command_result, or counters_ready
// for request_counters) arrives or timeout passes.
int send_and_wait(session& s, api::command c, double timeout_s) {
    if (const api::validation v = api::validate(c); !v.ok()) {
        // Checked here too, so a bad argument is named before anything is sent; kwikd checks again.
        std::fprintf(stderr, "kwikd-cmd: %s\n", std::string(v.reason()).c_str());
        return 1;
    }
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_s);
    while (!s.channel.try_send(c)) {
        if (std::chrono::steady_clock::now() >= deadline) {
            std::fprintf(stderr, "kwikd-cmd: the command ring stayed full for %.1f s (is kwikd running?)\n", timeout_s);
            return 3;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    api::event e;
    auto checked = std::chrono::steady_clock::now();
    while (std::chrono::steady_clock::now() < deadline) {
        if (!s.channel.try_receive(e)) {
            // kwikd stopping or gone will never answer: say so instead of waiting out the timeout.
            if (std::chrono::steady_clock::now() - checked > std::chrono::milliseconds(100)) {
                checked = std::chrono::steady_clock::now();
                if (s.region.state() != api::region_state::ready || s.region.is_stale()) {
                    std::fprintf(stderr, "kwikd-cmd: kwikd is %s; command %" PRIu64 " got no answer\n",
                                 std::string(api::to_string(s.region.state())).c_str(), c.header.sequence);
                    return 3;
                }
            }
            std::this_thread::sleep_for(std::chrono::microseconds(200));
            continue;
        }
        print(event_json(e));
        if (e.header.ack_sequence == c.header.sequence) {
            if (e.header.type == api::message_type::counters_ready) {
                return 0;
            }
            if (e.header.type == api::message_type::command_result) {
                if (e.command_result.status != api::result_status::ok) {
                    std::fprintf(stderr, "kwikd-cmd: %s: %s\n", std::string(api::to_string(e.command_result.status)).c_str(),
                                 std::string(api::get_text(e.command_result.reason)).c_str());
                    return 2;
                }
                return 0;
            }
        }
    }
    std::fprintf(stderr, "kwikd-cmd: no answer to command %" PRIu64 " within %.1f s\n", c.header.sequence, timeout_s);
    return 3;
}

// The four traffic counts ports, connections and paths all have.
template <class Counters> json traffic_json(const Counters& c, json j) {
    j["rx_packets"] = c.rx_packets;
    j["rx_bytes"] = c.rx_bytes;
    j["tx_packets"] = c.tx_packets;
    j["tx_bytes"] = c.tx_bytes;
    return j;
}

json counters_json(const api::shm_region& region, std::uint64_t only_connection) {
    auto reader = api::counters_reader::attach(region);
    if (!reader.ok()) {
        return json{{"error", reader.message()}};
    }
    const api::counters_totals t = reader->read_totals();
    json j;
    j["epoch"] = reader->epoch();
    j["workers"] = t.workers_read;
    const auto& w = t.worker;
    j["worker"] = {{"polls", w.polls},
                   {"busy_polls", w.busy_polls},
                   {"handoff_sent", w.handoff_sent},
                   {"handoff_received", w.handoff_received},
                   {"handoff_dropped", w.handoff_dropped},
                   {"events_dropped", w.events_dropped},
                   {"commands_applied", w.commands_applied}};
    // kwikd's main lcore: steering and the command handler (absent before its first publish).
    if (t.main_read && t.main.publish_count != 0) {
        const api::kwikd_counters& k = t.main.kwikd;
        j["kwikd"] = {{"flow_rules", k.flow_rules},
                      {"handoff_paths", k.handoff_paths},
                      {"connections", k.connections},
                      {"paths", k.paths},
                      {"commands", k.commands},
                      {"commands_refused", k.commands_refused},
                      {"events_forwarded", k.events_forwarded},
                      {"events_lost", k.events_lost},
                      {"publish_count", t.main.publish_count},
                      {"publish_ns", t.main.publish_ns}};
    }
    json ports = json::array();
    for (std::size_t i = 0; i < t.ports.size(); ++i) {
        const api::port_counters& p = t.ports[i];
        json port = traffic_json(p, {{"rx_dropped", p.rx_dropped},
                                     {"tx_dropped", p.tx_dropped},
                                     {"exception_rx", p.exception_rx},
                                     {"exception_tx", p.exception_tx}});
        // What the NIC and, on net_af_xdp, the XDP program counted (the main block).
        const api::nic_port_counters* n = t.main_read && i < t.main.nic.size() ? &t.main.nic[i] : nullptr;
        if (n != nullptr && (n->sources & api::nic_source_ethdev) != 0) {
            port["nic"] = traffic_json(*n, {{"imissed", n->imissed},
                                            {"ierrors", n->ierrors},
                                            {"oerrors", n->oerrors},
                                            {"rx_nombuf", n->rx_nombuf}});
        }
        if (n != nullptr && (n->sources & api::nic_source_xdp) != 0) {
            port["xdp"] = {{"redirected", n->xdp_redirected},
                           {"no_socket", n->xdp_no_socket},
                           {"not_ip", n->xdp_not_ip},
                           {"not_udp", n->xdp_not_udp},
                           {"not_kwik_port", n->xdp_not_kwik_port},
                           {"not_kwik_address", n->xdp_not_kwik_address},
                           {"fragment", n->xdp_fragment},
                           {"truncated", n->xdp_truncated}};
        }
        if (n != nullptr && n->read_errors != 0) {
            port["nic_read_errors"] = n->read_errors;
        }
        ports.push_back(std::move(port));
    }
    j["ports"] = ports;
    json drops = json::object();
    for (std::size_t r = 0; r < t.drops.size(); ++r) {
        if (t.drops[r] != 0) {
            drops[reader->drop_reason_name(static_cast<std::uint32_t>(r))] = t.drops[r];
        }
    }
    j["drops"] = drops;
    json conns = json::array();
    for (const auto& c : t.connections) {
        if (only_connection != 0 && c.connection_id != only_connection) {
            continue;
        }
        conns.push_back(traffic_json(c, {{"connection_id", c.connection_id},
                         {"delivered_bytes", c.delivered_bytes},
                         {"streams_opened", c.streams_opened},
                         {"streams_closed", c.streams_closed},
                         {"retransmitted_packets", c.retransmitted_packets},
                         {"retransmitted_bytes", c.retransmitted_bytes},
                         {"flow_control_blocked", c.flow_control_blocked},
                         {"active_paths", c.active_paths},
                         {"open_streams", c.open_streams}}));
    }
    j["connections"] = conns;
    json paths = json::array();
    static const char* status[] = {"up", "suspect", "failed", "removed"};
    for (const auto& p : t.paths) {
        if (only_connection != 0 && p.connection_id != only_connection) {
            continue;
        }
        paths.push_back(traffic_json(p, {{"connection_id", p.connection_id},
                         {"path_id", p.path_id},
                         {"status", p.status <= 3 ? status[p.status] : "?"},
                         {"lost_packets", p.lost_packets},
                         {"retransmitted_packets", p.retransmitted_packets},
                         {"handoff_packets", p.handoff_packets},
                         {"smoothed_rtt_ns", p.smoothed_rtt_ns},
                         {"min_rtt_ns", p.min_rtt_ns},
                         {"cwnd_bytes", p.cwnd_bytes}}));
    }
    j["paths"] = paths;
    j["read_retries"] = t.stats.retries;
    return j;
}

} // namespace

int main(int argc, char** argv) {
    CLI::App app{"kwikd-cmd: send one command to a running kwikd over its shared-memory rings, or read its "
                 "counters; prints JSON lines"};
    app.require_subcommand(1);
    std::string name = "kwik";
    double timeout_s = 5.0;
    app.add_option("--name", name, "kwikd's shared-memory name ([kwikd] name)")->capture_default_str();
    std::string shm_directory = "/dev/shm";
    app.add_option("--shm-directory", shm_directory,
                   "where kwikd keeps its region and lock files ([kwikd] shm_directory; /run/kwik under systemd)")
        ->check([](const std::string& v) {
            return !v.empty() && v.front() == '/' ? std::string() : "'" + v + "' is not an absolute path";
        })
        ->capture_default_str();
    app.add_option("--timeout", timeout_s, "seconds to wait for the answer")->check(CLI::Range(0.01, 3600.0))->capture_default_str();

    std::uint64_t conn_id = 0, path_id = 0, stream_id = 0, length = 0, window = 0;
    std::uint32_t drain_ms = 0, max_mbps = 0, min_mbps = 0, max_latency = 0, max_jitter = 0;
    std::uint16_t owner = api::any_worker;
    std::string conn_name, dir, local, remote;
    std::string endpoint = "discard", role = "server", strategy = "min_rtt", scope = "connection", priority = "normal";
    const std::map<std::string, api::endpoint_kind> endpoints{{"discard", api::endpoint_kind::discard},
                                                              {"echo", api::endpoint_kind::echo},
                                                              {"pattern_source", api::endpoint_kind::pattern_source},
                                                              {"file_store", api::endpoint_kind::file_store}};
    const std::map<std::string, api::connection_role> roles{{"server", api::connection_role::server},
                                                            {"client", api::connection_role::client}};
    const std::map<std::string, api::scheduler_strategy> strategies{
        {"min_rtt", api::scheduler_strategy::min_rtt},
        {"weighted", api::scheduler_strategy::weighted},
        {"round_robin", api::scheduler_strategy::round_robin},
        {"redundant", api::scheduler_strategy::redundant}};
    const std::map<std::string, api::window_scope> scopes{{"connection", api::window_scope::connection},
                                                          {"stream", api::window_scope::stream},
                                                          {"new_streams", api::window_scope::new_streams}};
    const std::map<std::string, api::stream_priority> priorities{{"normal", api::stream_priority::normal},
                                                                 {"high", api::stream_priority::high},
                                                                 {"critical", api::stream_priority::critical},
                                                                 {"control", api::stream_priority::control}};
    float weight = 1.0f, loss = 1.0f;
    bool standby = false;
    std::vector<std::string> weights;

    auto* add_conn = app.add_subcommand("add-connection", "add a connection with its stream endpoint");
    add_conn->add_option("--id", conn_id, "connection id (nonzero)")->required()->check(CLI::PositiveNumber);
    add_conn->add_option("--conn-name", conn_name, "the KCP connection name")->required();
    add_conn->add_option("--endpoint", endpoint, "stream endpoint (discard, echo, pattern_source, file_store)")
        ->check(CLI::IsMember(endpoints))->capture_default_str();
    add_conn->add_option("--dir", dir, "file_store: absolute directory for received streams");
    add_conn->add_option("--pattern-max", length, "pattern_source: largest request answered, bytes");
    add_conn->add_option("--worker", owner, "owning worker index (default: the least loaded)");
    add_conn->add_option("--role", role, "transport role (server, client)")->check(CLI::IsMember(roles))->capture_default_str();

    auto* rm_conn = app.add_subcommand("remove-connection", "remove a connection and its paths");
    rm_conn->add_option("--id", conn_id, "connection id")->required();
    rm_conn->add_option("--drain-ms", drain_ms, "time to finish in-flight data");

    auto* add_path = app.add_subcommand("add-path", "add a path (UDP 5-tuple) to a connection");
    add_path->add_option("--connection", conn_id, "connection id")->required();
    add_path->add_option("--path", path_id, "path id, unique in the connection")->required();
    add_path->add_option("--local", local, "the appliance's address:port (one of a port's addresses and kwik_ports)")->required();
    add_path->add_option("--remote", remote, "the peer's address:port")->required();
    add_path->add_option("--weight", weight, "load-balancing weight (1: adaptive; other values pin it)")->capture_default_str();
    add_path->add_option("--max-mbps", max_mbps, "rate cap, Mbit/s (0: none)");
    add_path->add_flag("--standby", standby, "carry data only when no other path is up");

    auto* rm_path = app.add_subcommand("remove-path", "remove a path from a connection");
    rm_path->add_option("--connection", conn_id, "connection id")->required();
    rm_path->add_option("--path", path_id, "path id")->required();
    rm_path->add_option("--drain-ms", drain_ms, "time to finish in-flight data on it");

    auto* set_sched = app.add_subcommand("set-scheduler", "choose a connection's path scheduler");
    set_sched->add_option("--connection", conn_id, "connection id")->required();
    set_sched->add_option("--strategy", strategy, "scheduler")->required()->check(CLI::IsMember(strategies));

    auto* set_w = app.add_subcommand("set-weights", "pin load-balancing weights of a connection's paths");
    set_w->add_option("--connection", conn_id, "connection id")->required();
    set_w->add_option("--weight", weights, "PATH=WEIGHT, repeated (up to 8)")->required();

    auto* set_q = app.add_subcommand("set-qos", "set one stream's QoS policy and priority");
    set_q->add_option("--connection", conn_id, "connection id")->required();
    set_q->add_option("--stream", stream_id, "stream id")->required();
    set_q->add_option("--priority", priority, "priority")->check(CLI::IsMember(priorities))->capture_default_str();
    set_q->add_option("--min-mbps", min_mbps, "guaranteed bandwidth, Mbit/s");
    set_q->add_option("--max-latency-ms", max_latency, "latency bound, ms");
    set_q->add_option("--max-jitter-ms", max_jitter, "jitter bound, ms");
    set_q->add_option("--loss", loss, "loss threshold, 0..1")->capture_default_str();

    auto* set_win = app.add_subcommand("set-window", "set a receive window");
    set_win->add_option("--connection", conn_id, "connection id")->required();
    set_win->add_option("--scope", scope, "which window")->required()->check(CLI::IsMember(scopes));
    set_win->add_option("--stream", stream_id, "stream id (scope stream)");
    set_win->add_option("--bytes", window, "window size in bytes")->required();

    auto* set_keys = app.add_subcommand("set-keys", "install an AES-256-GCM key for a connection's ENCRYPTED frames");
    std::string key_hex;
    unsigned key_phase = 0;
    std::uint64_t valid_until_ms = 0, max_frames = 0;
    bool require_encryption = false;
    set_keys->add_option("--connection", conn_id, "connection id")->required();
    set_keys->add_option("--phase", key_phase, "key phase byte, 0..255")->required()->check(CLI::Range(0u, 255u));
    set_keys->add_option("--key", key_hex, "the 32-byte key as 64 hex digits")->required();
    set_keys->add_option("--valid-until-ms", valid_until_ms, "wall clock, ms since the Unix epoch (0: no limit)");
    set_keys->add_option("--max-frames", max_frames, "frames each side may seal under it (0: no limit)");
    set_keys->add_flag("--require-encryption", require_encryption,
                       "send only ENCRYPTED stream frames and drop plaintext ones (else: encrypt once the peer does)");

    auto* list = app.add_subcommand("list", "list connections and paths (list_state)");
    auto* counters = app.add_subcommand("counters", "read the counters region (lock-free), as one JSON object");
    bool fresh = false;
    counters->add_flag("--fresh", fresh, "ask every worker to publish first (request_counters)");
    counters->add_option("--connection", conn_id, "only this connection's entries");
    auto* status = app.add_subcommand("status", "the region's state and kwikd's heartbeat");
    auto* events = app.add_subcommand("events", "print events as they arrive");
    std::string wait_for;
    unsigned max_events = 0;
    events->add_option("--wait", wait_for, "stop after the first event of this type")
        ->check(CLI::IsMember({"command_result", "path_up", "path_down", "unknown_path", "counters_ready",
                               "connection_closed", "connection_info", "path_info"}));
    events->add_option("--count", max_events, "stop after this many events");

    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        return app.exit(e) == 0 ? 0 : 1; // --help: 0; a bad argument (named by CLI11): 1
    }

    session s;
    if (status->parsed()) {
        api::open_options o = options_in(shm_directory, api::access::read_only);
        o.require_ready = false;
        auto region = api::shm_region::open(name, o);
        if (!region.ok()) {
            std::fprintf(stderr, "kwikd-cmd: %s\n", region.message().c_str());
            return 1;
        }
        const api::region_header& h = region->header();
        print(json{{"name", name},
                   {"path", region->path()},
                   {"state", std::string(api::to_string(region->state()))},
                   {"kwikd_pid", h.creator_pid},
                   {"control_pid", h.control_pid},
                   {"control_attach_count", h.control_attach_count},
                   {"heartbeat_ns", h.heartbeat_ns},
                   {"last_command_sequence", h.last_command_sequence},
                   {"next_command_sequence", h.next_command_sequence}});
        return 0;
    }
    if (counters->parsed() && !fresh) {
        const api::open_options o = options_in(shm_directory, api::access::read_only);
        auto region = api::shm_region::open(name, o);
        if (!region.ok()) {
            std::fprintf(stderr, "kwikd-cmd: %s\n", region.message().c_str());
            return 1;
        }
        const json j = counters_json(*region, conn_id);
        print(j);
        return j.contains("error") ? 1 : 0;
    }
    // Every argument is checked before kwikd is touched.
    api::command c{};
    if (add_conn->parsed()) {
        c = api::make_add_connection(conn_id, conn_name, endpoints.at(endpoint));
        if (conn_name.size() >= api::connection_name_size) {
            std::fprintf(stderr, "kwikd-cmd: --conn-name: longer than %zu bytes\n", api::connection_name_size - 1);
            return 1;
        }
        if (!api::set_text(c.add_connection.endpoint_path, dir)) {
            std::fprintf(stderr, "kwikd-cmd: --dir: longer than %zu bytes\n", api::endpoint_path_size - 1);
            return 1;
        }
        c.add_connection.endpoint_length = length;
        c.add_connection.owner_hint = owner;
        c.add_connection.role = roles.at(role);
    } else if (rm_conn->parsed()) {
        c = api::make_remove_connection(conn_id, drain_ms);
    } else if (add_path->parsed()) {
        api::ip_version lv{}, rv{};
        api::ip_address la{}, ra{};
        std::uint16_t lp = 0, rp = 0;
        if (!parse_endpoint(local, lv, la, lp)) {
            std::fprintf(stderr, "kwikd-cmd: --local: '%s' is not ADDRESS:PORT\n", local.c_str());
            return 1;
        }
        if (!parse_endpoint(remote, rv, ra, rp)) {
            std::fprintf(stderr, "kwikd-cmd: --remote: '%s' is not ADDRESS:PORT\n", remote.c_str());
            return 1;
        }
        if (lv != rv) {
            std::fprintf(stderr, "kwikd-cmd: --remote: not the same IP version as --local\n");
            return 1;
        }
        c = api::make_add_path(conn_id, path_id, api::make_tuple(lv, la, lp, ra, rp), weight);
        c.add_path.max_bandwidth_mbps = max_mbps;
        c.add_path.standby = standby ? 1 : 0;
    } else if (rm_path->parsed()) {
        c = api::make_remove_path(conn_id, path_id, drain_ms);
    } else if (set_sched->parsed()) {
        c = api::make_set_scheduler(conn_id, strategies.at(strategy));
    } else if (set_w->parsed()) {
        c = api::make_command(api::message_type::set_weights);
        c.set_weights.connection_id = conn_id;
        if (weights.size() > api::max_weights) {
            std::fprintf(stderr, "kwikd-cmd: --weight: at most %zu\n", api::max_weights);
            return 1;
        }
        for (std::size_t i = 0; i < weights.size(); ++i) {
            const auto eq = weights[i].find('=');
            try {
                if (eq == std::string::npos) {
                    throw std::invalid_argument("no =");
                }
                const std::string id = weights[i].substr(0, eq);
                const std::string w = weights[i].substr(eq + 1);
                std::size_t used_id = 0;
                std::size_t used_w = 0;
                c.set_weights.entries[i].path_id = std::stoull(id, &used_id);
                c.set_weights.entries[i].weight = std::stof(w, &used_w);
                if (used_id != id.size() || used_w != w.size() || id.find('-') != std::string::npos) {
                    throw std::invalid_argument("trailing characters");
                }
            } catch (const std::exception&) {
                std::fprintf(stderr, "kwikd-cmd: --weight: '%s' is not PATH=WEIGHT\n", weights[i].c_str());
                return 1;
            }
        }
        c.set_weights.count = static_cast<std::uint32_t>(weights.size());
    } else if (set_q->parsed()) {
        c = api::make_set_qos(conn_id, stream_id, priorities.at(priority));
        c.set_qos.min_bandwidth_mbps = min_mbps;
        c.set_qos.max_latency_ms = max_latency;
        c.set_qos.max_jitter_ms = max_jitter;
        c.set_qos.loss_threshold = loss;
    } else if (set_win->parsed()) {
        c = api::make_set_windows(conn_id, scopes.at(scope), stream_id, window);
    } else if (set_keys->parsed()) {
        std::optional<std::array<std::uint8_t, api::aead_key_size>> parsed = tools::parse_key_hex(key_hex);
        if (!parsed) {
            std::fprintf(stderr, "kwikd-cmd: --key: not %zu hex digits\n", 2 * api::aead_key_size);
            return 1;
        }
        std::uint8_t key[api::aead_key_size];
        std::memcpy(key, parsed->data(), sizeof key);
        OPENSSL_cleanse(parsed->data(), parsed->size());
        c = api::make_set_connection_keys(conn_id, static_cast<std::uint8_t>(key_phase), key, valid_until_ms, max_frames,
                                          require_encryption);
        OPENSSL_cleanse(key, sizeof key);
        OPENSSL_cleanse(key_hex.data(), key_hex.size());
    } else if (list->parsed()) {
        c = api::make_list_state();
    } else if (counters->parsed()) {
        if (const int rc = attach(name, shm_directory, s); rc != 0) {
            return rc;
        }
        const int rc = send_and_wait(s, api::make_request_counters(), timeout_s);
        if (rc != 0) {
            return rc;
        }
        const json j = counters_json(s.region, conn_id);
        print(j);
        return j.contains("error") ? 1 : 0;
    } else if (events->parsed()) {
        if (const int rc = attach(name, shm_directory, s); rc != 0) {
            return rc;
        }
        const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_s);
        unsigned seen = 0;
        api::event e;
        while (std::chrono::steady_clock::now() < deadline) {
            if (!s.channel.try_receive(e)) {
                std::this_thread::sleep_for(std::chrono::microseconds(200));
                continue;
            }
            print(event_json(e));
            ++seen;
            if ((!wait_for.empty() && api::to_string(e.header.type) == wait_for) || (max_events != 0 && seen >= max_events)) {
                return 0;
            }
        }
        return wait_for.empty() && max_events == 0 ? 0 : 3;
    }
    if (const int rc = attach(name, shm_directory, s); rc != 0) {
        OPENSSL_cleanse(c.body, sizeof c.body);
        return rc;
    }
    const int rc = send_and_wait(s, c, timeout_s);
    OPENSSL_cleanse(c.body, sizeof c.body); // set-keys: the key
    return rc;
}
