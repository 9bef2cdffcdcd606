// The tables of the operator's show views; see views.hpp.
#include "controlplane/server/kwik_cp/views.hpp"

#include <arpa/inet.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <initializer_list>

#include "controlplane/kcp/tls.hpp"

namespace kwik::cp {

namespace v3 = kcp::v3;

kcp::v3::TableValue text_cell(std::string_view v) {
    v3::TableValue c;
    c.set_text(std::string(v));
    return c;
}

kcp::v3::TableValue unsigned_cell(std::uint64_t v) {
    v3::TableValue c;
    c.set_unsigned_value(v);
    return c;
}

kcp::v3::TableValue real_cell(double v) {
    v3::TableValue c;
    c.set_real(v);
    return c;
}

kcp::v3::TableValue flag_cell(bool v) {
    v3::TableValue c;
    c.set_flag(v);
    return c;
}

namespace {

v3::Table make_table(std::string_view name, std::initializer_list<const char*> columns) {
    v3::Table t;
    t.set_name(std::string(name));
    for (const char* c : columns) {
        t.add_columns(c);
    }
    return t;
}

void add_row(v3::Table& t, std::initializer_list<v3::TableValue> values) {
    auto* row = t.add_rows();
    for (const auto& v : values) {
        *row->add_values() = v;
    }
}

// A "counter, value" table from named counters.
v3::Table name_value_table(std::string_view name, const std::vector<named_counter>& counters) {
    v3::Table t = make_table(name, {"counter", "value"});
    for (const auto& [n, v] : counters) {
        add_row(t, {text_cell(n), unsigned_cell(v)});
    }
    return t;
}

std::string address_text(const api::ip_address& a, api::ip_version v) {
    char buf[INET6_ADDRSTRLEN] = "";
    ::inet_ntop(v == api::ip_version::v4 ? AF_INET : AF_INET6, a.bytes, buf, sizeof buf);
    return buf;
}

const api::connection_counters* counters_of(const operator_snapshot& s, std::uint64_t id) {
    if (!s.kwikd.totals) {
        return nullptr;
    }
    for (const auto& c : s.kwikd.totals->connections) {
        if (c.connection_id == id) {
            return &c;
        }
    }
    return nullptr;
}

const api::path_counters* counters_of(const operator_snapshot& s, std::uint64_t connection, std::uint64_t path) {
    if (!s.kwikd.totals) {
        return nullptr;
    }
    for (const auto& p : s.kwikd.totals->paths) {
        if (p.connection_id == connection && p.path_id == path) {
            return &p;
        }
    }
    return nullptr;
}

bool is_kcp_connection_id(std::string_view name) {
    return name.size() == 32 && std::all_of(name.begin(), name.end(), [](char ch) {
               return (ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f');
           });
}

// The connections a view lists: one, or all of the link's.
std::vector<const desired_connection*> listed(const operator_snapshot& s, const desired_connection* only) {
    std::vector<const desired_connection*> out;
    if (only != nullptr) {
        out.push_back(only);
    } else if (s.connections != nullptr) {
        for (const auto& [id, c] : *s.connections) {
            out.push_back(&c);
        }
    }
    return out;
}

// The registry keeps it as 32 raw bytes or none (checked at registration).
std::string pin_text(std::string_view bytes) {
    auto pin = kcp::pin_from_bytes(bytes);
    return pin ? kcp::to_hex(pin.value()) : std::string("none");
}

} // namespace

result<const desired_connection*> find_connection(const std::map<std::uint64_t, desired_connection>& connections,
                                                  std::string_view name, std::string_view field) {
    const std::string f(field);
    if (name.empty()) {
        return error{f + ": missing (a KCP connection id or kwikd's connection number)"};
    }
    std::uint64_t number = 0;
    const auto [end, ec] = std::from_chars(name.data(), name.data() + name.size(), number);
    if (ec == std::errc{} && end == name.data() + name.size()) {
        if (auto it = connections.find(number); it != connections.end()) {
            return &it->second;
        }
    }
    for (const auto& [id, c] : connections) {
        if (c.name == name) {
            return &c;
        }
    }
    return error{f + ": no connection \"" + std::string(name) + "\" (kwik-cp's link holds " +
                 std::to_string(connections.size()) + " connections; `show connections` lists them)"};
}

std::string connection_owner(const desired_connection& c, const std::vector<session_summary>& sessions) {
    for (const auto& s : sessions) {
        if (s.kwikd_connection == c.id && s.connection_id == c.name) {
            return s.client_id;
        }
    }
    return is_kcp_connection_id(c.name) ? "adopted" : "static";
}

std::string path_status_name(std::uint64_t status) {
    static constexpr std::array<const char*, 4> names{"up", "suspect", "failed", "removed"};
    return status < names.size() ? names[status] : "unknown_" + std::to_string(status);
}

std::string_view endpoint_name(api::endpoint_kind e) {
    switch (e) {
    case api::endpoint_kind::discard:
        return "discard";
    case api::endpoint_kind::echo:
        return "echo";
    case api::endpoint_kind::pattern_source:
        return "pattern_source";
    case api::endpoint_kind::file_store:
        return "file_store";
    }
    return "unknown";
}

std::string_view priority_name(api::stream_priority p) {
    switch (p) {
    case api::stream_priority::normal:
        return "normal";
    case api::stream_priority::high:
        return "high";
    case api::stream_priority::critical:
        return "critical";
    case api::stream_priority::control:
        return "control";
    }
    return "unknown";
}

std::string_view scheduler_name(api::scheduler_strategy s) {
    switch (s) {
    case api::scheduler_strategy::min_rtt:
        return "min_rtt";
    case api::scheduler_strategy::weighted:
        return "weighted";
    case api::scheduler_strategy::round_robin:
        return "round_robin";
    case api::scheduler_strategy::redundant:
        return "redundant";
    }
    return "unknown";
}

api::stream_priority stream_priority_of(std::uint32_t kcp_priority) {
    if (kcp_priority == 0) {
        return api::stream_priority::critical;
    }
    return kcp_priority <= 3 ? api::stream_priority::high : api::stream_priority::normal;
}

std::vector<kcp::v3::Table> status_tables(const operator_snapshot& s) {
    std::vector<v3::Table> out;
    v3::Table cp = make_table("kwik_cp", {"server_id", "listen_port", "tls", "uptime_ms", "sessions", "registry_servers",
                                          "connections"});
    add_row(cp, {text_cell(s.server_id), unsigned_cell(s.listen_port), flag_cell(s.tls), unsigned_cell(s.uptime_ms),
                 unsigned_cell(s.sessions.size()), unsigned_cell(s.registry != nullptr ? s.registry->size() : 0),
                 unsigned_cell(s.connections != nullptr ? s.connections->size() : 0)});
    out.push_back(std::move(cp));

    v3::Table k = make_table("kwikd", {"region", "attached", "adopted", "workers", "ports", "connections_in_counters",
                                       "paths_in_counters", "commands_waiting"});
    const auto& t = s.kwikd.totals;
    add_row(k, {text_cell(s.kwikd.region), flag_cell(s.kwikd.attached), flag_cell(s.kwikd.adopted),
                unsigned_cell(s.kwikd.workers.size()), unsigned_cell(t ? t->ports.size() : 0),
                unsigned_cell(t ? t->connections.size() : 0), unsigned_cell(t ? t->paths.size() : 0),
                unsigned_cell(s.kwikd.commands_waiting)});
    out.push_back(std::move(k));

    v3::Table l = make_table("link", {"attaches", "kwikd_restarts", "adopted_connections", "commands_sent",
                                      "commands_failed", "commands_timed_out", "events", "resync_commands"});
    add_row(l, {unsigned_cell(s.link.attaches), unsigned_cell(s.link.kwikd_restarts),
                unsigned_cell(s.link.adopted_connections), unsigned_cell(s.link.commands_sent),
                unsigned_cell(s.link.commands_failed), unsigned_cell(s.link.commands_timed_out),
                unsigned_cell(s.link.events), unsigned_cell(s.link.resync_commands)});
    out.push_back(std::move(l));

    if (!s.upstream.empty()) {
        v3::Table u;
        u.set_name("upstream");
        auto* row = u.add_rows();
        for (const auto& [field, value] : s.upstream) {
            u.add_columns(field);
            *row->add_values() = value;
        }
        out.push_back(std::move(u));
    }
    return out;
}

kcp::v3::Table ports_table(const operator_snapshot& s) {
    // The workers' sums, then what the NIC and (net_af_xdp) the XDP program counted, from kwikd's
    // main block: "-" where kwikd has not published them or the port has no XDP program.
    v3::Table t = make_table("ports", {"port", "rx_packets", "rx_bytes", "tx_packets", "tx_bytes", "rx_dropped",
                                       "tx_dropped", "exception_rx", "exception_tx", "nic_rx_packets",
                                       "nic_tx_packets", "imissed", "ierrors", "oerrors", "rx_nombuf",
                                       "xdp_redirected", "xdp_to_kernel"});
    if (s.kwikd.totals) {
        const api::counters_totals& totals = *s.kwikd.totals;
        for (std::size_t i = 0; i < totals.ports.size(); ++i) {
            const api::port_counters& p = totals.ports[i];
            const api::nic_port_counters* n = totals.main_read && i < totals.main.nic.size() ? &totals.main.nic[i] : nullptr;
            const bool nic = n != nullptr && (n->sources & api::nic_source_ethdev) != 0;
            const bool xdp = n != nullptr && (n->sources & api::nic_source_xdp) != 0;
            auto nic_cell = [&](std::uint64_t v) { return nic ? unsigned_cell(v) : v3::TableValue{}; };
            const std::uint64_t to_kernel = xdp ? n->xdp_no_socket + n->xdp_not_ip + n->xdp_not_udp +
                                                      n->xdp_not_kwik_port + n->xdp_not_kwik_address +
                                                      n->xdp_fragment + n->xdp_truncated
                                                : 0;
            add_row(t, {unsigned_cell(i), unsigned_cell(p.rx_packets), unsigned_cell(p.rx_bytes),
                        unsigned_cell(p.tx_packets), unsigned_cell(p.tx_bytes), unsigned_cell(p.rx_dropped),
                        unsigned_cell(p.tx_dropped), unsigned_cell(p.exception_rx), unsigned_cell(p.exception_tx),
                        nic_cell(n != nullptr ? n->rx_packets : 0), nic_cell(n != nullptr ? n->tx_packets : 0),
                        nic_cell(n != nullptr ? n->imissed : 0), nic_cell(n != nullptr ? n->ierrors : 0),
                        nic_cell(n != nullptr ? n->oerrors : 0), nic_cell(n != nullptr ? n->rx_nombuf : 0),
                        xdp ? unsigned_cell(n->xdp_redirected) : v3::TableValue{},
                        xdp ? unsigned_cell(to_kernel) : v3::TableValue{}});
        }
    }
    return t;
}

kcp::v3::Table workers_table(const operator_snapshot& s) {
    v3::Table t = make_table("workers", {"worker", "lcore", "polls", "busy_polls", "busy_percent", "rx_packets",
                                         "tx_packets", "dropped_packets", "handoff_sent", "handoff_received",
                                         "handoff_dropped", "commands_applied", "events_dropped", "events_suppressed",
                                         "publish_count", "idle_sleeps", "idle_sleep_ms"});
    for (const api::worker_snapshot& w : s.kwikd.workers) {
        std::uint64_t rx = 0;
        std::uint64_t tx = 0;
        std::uint64_t dropped = 0;
        for (const auto& p : w.ports) {
            rx += p.rx_packets;
            tx += p.tx_packets;
        }
        for (const std::uint64_t d : w.drops) {
            dropped += d;
        }
        const auto& c = w.worker_totals;
        const double busy = c.polls == 0 ? 0.0 : 100.0 * static_cast<double>(c.busy_polls) / static_cast<double>(c.polls);
        add_row(t, {unsigned_cell(w.worker), unsigned_cell(w.lcore), unsigned_cell(c.polls), unsigned_cell(c.busy_polls),
                    real_cell(busy), unsigned_cell(rx), unsigned_cell(tx), unsigned_cell(dropped),
                    unsigned_cell(c.handoff_sent), unsigned_cell(c.handoff_received), unsigned_cell(c.handoff_dropped),
                    unsigned_cell(c.commands_applied), unsigned_cell(c.events_dropped),
                    unsigned_cell(c.events_suppressed), unsigned_cell(w.publish_count), unsigned_cell(c.idle_sleeps),
                    unsigned_cell(c.idle_sleep_ns / 1'000'000)});
    }
    return t;
}

kcp::v3::Table connections_table(const operator_snapshot& s, const desired_connection* only) {
    v3::Table t = make_table("connections",
                             {"connection", "connection_id", "owner", "endpoint", "scheduler", "paths", "active_paths",
                              "open_streams", "rx_packets", "rx_bytes", "tx_packets", "tx_bytes", "delivered_bytes",
                              "retransmitted_packets", "retransmitted_bytes", "flow_control_blocked"});
    for (const desired_connection* c : listed(s, only)) {
        const api::connection_counters* k = counters_of(s, c->id);
        const api::connection_counters zero{};
        const api::connection_counters& n = k != nullptr ? *k : zero;
        add_row(t, {unsigned_cell(c->id), text_cell(c->name), text_cell(connection_owner(*c, s.sessions)),
                    text_cell(endpoint_name(c->endpoint)),
                    text_cell(c->scheduler ? scheduler_name(*c->scheduler) : std::string_view("default")),
                    unsigned_cell(c->paths.size()), unsigned_cell(n.active_paths), unsigned_cell(n.open_streams),
                    unsigned_cell(n.rx_packets), unsigned_cell(n.rx_bytes), unsigned_cell(n.tx_packets),
                    unsigned_cell(n.tx_bytes), unsigned_cell(n.delivered_bytes), unsigned_cell(n.retransmitted_packets),
                    unsigned_cell(n.retransmitted_bytes), unsigned_cell(n.flow_control_blocked)});
    }
    return t;
}

kcp::v3::Table paths_table(const operator_snapshot& s, const desired_connection* only) {
    v3::Table t = make_table("paths", {"connection", "path_id", "local_address", "local_port", "remote_address",
                                       "remote_port", "weight", "standby", "max_bandwidth_mbps", "status", "rx_packets",
                                       "rx_bytes", "tx_packets", "tx_bytes", "lost_packets", "retransmitted_packets",
                                       "srtt_us", "min_rtt_us", "cwnd_bytes"});
    for (const desired_connection* c : listed(s, only)) {
        for (const auto& [pid, p] : c->paths) {
            const api::path_counters* k = counters_of(s, c->id, pid);
            const api::path_counters zero{};
            const api::path_counters& n = k != nullptr ? *k : zero;
            // Not in the counters yet: kwikd has not published it (or not answered add_path).
            const std::string status = k != nullptr ? path_status_name(k->status) : "pending";
            add_row(t, {unsigned_cell(c->id), unsigned_cell(pid), text_cell(address_text(p.tuple.local, p.tuple.version)),
                        unsigned_cell(p.tuple.local_port), text_cell(address_text(p.tuple.remote, p.tuple.version)),
                        unsigned_cell(p.tuple.remote_port), real_cell(p.weight), flag_cell(p.standby),
                        unsigned_cell(p.max_bandwidth_mbps), text_cell(status), unsigned_cell(n.rx_packets),
                        unsigned_cell(n.rx_bytes), unsigned_cell(n.tx_packets), unsigned_cell(n.tx_bytes),
                        unsigned_cell(n.lost_packets), unsigned_cell(n.retransmitted_packets),
                        unsigned_cell(n.smoothed_rtt_ns / 1000), unsigned_cell(n.min_rtt_ns / 1000),
                        unsigned_cell(n.cwnd_bytes)});
        }
    }
    return t;
}

std::vector<kcp::v3::Table> streams_tables(const operator_snapshot& s, const desired_connection* only) {
    v3::Table streams = make_table("streams", {"connection", "connection_id", "streams_opened", "streams_closed",
                                               "open_streams", "delivered_bytes", "flow_control_blocked"});
    v3::Table qos = make_table("stream_qos", {"connection", "stream_id", "priority", "min_bandwidth_mbps"});
    for (const desired_connection* c : listed(s, only)) {
        const api::connection_counters* k = counters_of(s, c->id);
        const api::connection_counters zero{};
        const api::connection_counters& n = k != nullptr ? *k : zero;
        add_row(streams, {unsigned_cell(c->id), text_cell(c->name), unsigned_cell(n.streams_opened),
                          unsigned_cell(n.streams_closed), unsigned_cell(n.open_streams),
                          unsigned_cell(n.delivered_bytes), unsigned_cell(n.flow_control_blocked)});
        for (const auto& [sid, q] : c->streams) {
            add_row(qos, {unsigned_cell(c->id), unsigned_cell(sid), text_cell(priority_name(q.priority)),
                          unsigned_cell(q.min_bandwidth_mbps)});
        }
    }
    std::vector<v3::Table> out;
    out.push_back(std::move(streams));
    out.push_back(std::move(qos));
    return out;
}

kcp::v3::Table servers_table(const operator_snapshot& s, std::string_view only_server) {
    v3::Table t = make_table("servers", {"server_id", "address", "pin_sha256", "available_bandwidth_mbps",
                                         "current_load_percent", "latency_ms", "active_connections", "capabilities",
                                         "country", "region", "datacenter", "expires_in_ms", "self"});
    if (s.registry == nullptr) {
        return t;
    }
    std::vector<const registered_server*> rows;
    for (const registered_server& r : s.registry->entries()) {
        if (only_server.empty() || r.registration.server_id == only_server) {
            rows.push_back(&r);
        }
    }
    std::sort(rows.begin(), rows.end(), [](const registered_server* a, const registered_server* b) {
        return a->registration.server_id < b->registration.server_id;
    });
    for (const registered_server* r : rows) {
        const available_server& a = r->registration.server;
        std::string capabilities;
        for (const auto& c : a.capabilities()) {
            capabilities += (capabilities.empty() ? "" : ",") + c;
        }
        const std::uint64_t left = r->expires_at_ms > s.now_ms ? r->expires_at_ms - s.now_ms : 0;
        add_row(t, {text_cell(r->registration.server_id), text_cell(a.address()),
                    text_cell(pin_text(a.tls_pubkey_hash_sha256())),
                    unsigned_cell(a.available_bandwidth_mbps()), unsigned_cell(a.current_load_percent()),
                    unsigned_cell(a.latency_ms()), unsigned_cell(a.metrics().active_connections()),
                    text_cell(capabilities), text_cell(a.location().country()), text_cell(a.location().region()),
                    text_cell(a.location().datacenter()), unsigned_cell(left),
                    flag_cell(r->registration.server_id == s.registry->config().self_server_id)});
    }
    return t;
}

std::vector<kcp::v3::Table> counters_tables(const operator_snapshot& s) {
    std::vector<v3::Table> out;
    v3::Table drops = make_table("drops", {"reason", "packets"});
    if (s.kwikd.totals) {
        for (std::size_t i = 0; i < s.kwikd.totals->drops.size(); ++i) {
            const std::string name = i < s.kwikd.drop_names.size() ? s.kwikd.drop_names[i] : "reason_" + std::to_string(i);
            add_row(drops, {text_cell(name), unsigned_cell(s.kwikd.totals->drops[i])});
        }
    }
    out.push_back(std::move(drops));

    std::vector<named_counter> kwikd;
    if (s.kwikd.totals) {
        const api::worker_counters& w = s.kwikd.totals->worker;
        kwikd = {{"polls", w.polls},
                 {"busy_polls", w.busy_polls},
                 {"handoff_sent", w.handoff_sent},
                 {"handoff_received", w.handoff_received},
                 {"handoff_dropped", w.handoff_dropped},
                 {"events_dropped", w.events_dropped},
                 {"commands_applied", w.commands_applied},
                 {"events_suppressed", w.events_suppressed},
                 {"idle_sleeps", w.idle_sleeps},
                 {"idle_sleep_ns", w.idle_sleep_ns}};
        api::port_counters ports{};
        for (const auto& p : s.kwikd.totals->ports) {
            api::accumulate(ports, p);
        }
        kwikd.insert(kwikd.end(), {{"rx_packets", ports.rx_packets},
                                   {"rx_bytes", ports.rx_bytes},
                                   {"tx_packets", ports.tx_packets},
                                   {"tx_bytes", ports.tx_bytes},
                                   {"rx_dropped", ports.rx_dropped},
                                   {"tx_dropped", ports.tx_dropped},
                                   {"exception_rx", ports.exception_rx},
                                   {"exception_tx", ports.exception_tx},
                                   {"counter_read_retries", s.kwikd.totals->stats.retries},
                                   {"counter_reads_given_up", s.kwikd.totals->stats.gave_up}});
        if (s.kwikd.totals->main_read && s.kwikd.totals->main.publish_count != 0) {
            // kwikd's main lcore: path steering and its command handler.
            const api::kwikd_counters& k = s.kwikd.totals->main.kwikd;
            kwikd.insert(kwikd.end(), {{"flow_rules", k.flow_rules},
                                       {"handoff_paths", k.handoff_paths},
                                       {"commands", k.commands},
                                       {"commands_refused", k.commands_refused},
                                       {"events_forwarded", k.events_forwarded},
                                       {"events_lost", k.events_lost}});
        }
    }
    out.push_back(name_value_table("kwikd", kwikd));

    std::vector<named_counter> cp = s.cp_counters;
    cp.insert(cp.end(), {{"link_attaches", s.link.attaches},
                         {"link_kwikd_restarts", s.link.kwikd_restarts},
                         {"link_adopted_connections", s.link.adopted_connections},
                         {"link_commands_sent", s.link.commands_sent},
                         {"link_commands_failed", s.link.commands_failed},
                         {"link_commands_timed_out", s.link.commands_timed_out},
                         {"link_events", s.link.events},
                         {"link_resync_commands", s.link.resync_commands}});
    kcp::channel_counters sum{};
    std::uint64_t rejected = 0;
    for (const auto& session : s.sessions) {
        const auto& c = session.counters;
        sum.messages_in += c.messages_in;
        sum.messages_out += c.messages_out;
        sum.bytes_in += c.bytes_in;
        sum.bytes_out += c.bytes_out;
        sum.expired_in += c.expired_in;
        sum.expired_out += c.expired_out;
        for (const std::uint64_t r : c.frames_rejected) {
            rejected += r;
        }
    }
    cp.insert(cp.end(), {{"sessions_messages_in", sum.messages_in},
                         {"sessions_messages_out", sum.messages_out},
                         {"sessions_bytes_in", sum.bytes_in},
                         {"sessions_bytes_out", sum.bytes_out},
                         {"sessions_expired_in", sum.expired_in},
                         {"sessions_expired_out", sum.expired_out},
                         {"sessions_frames_rejected", rejected}});
    out.push_back(name_value_table("kwik_cp", cp));
    return out;
}

kcp::v3::Table sessions_table(const operator_snapshot& s) {
    v3::Table t = make_table("sessions", {"fd", "peer", "state", "tls", "client_id", "key_id", "roles", "connection_id",
                                          "connection", "messages_in", "messages_out", "bytes_in", "bytes_out"});
    for (const session_summary& x : s.sessions) {
        add_row(t, {unsigned_cell(static_cast<std::uint64_t>(x.fd)), text_cell(x.peer), text_cell(x.state),
                    flag_cell(x.tls), text_cell(x.client_id), text_cell(x.key_id),
                    text_cell(x.roles == 0 ? std::string() : role_names(x.roles)), text_cell(x.connection_id),
                    unsigned_cell(x.kwikd_connection), unsigned_cell(x.counters.messages_in),
                    unsigned_cell(x.counters.messages_out), unsigned_cell(x.counters.bytes_in),
                    unsigned_cell(x.counters.bytes_out)});
    }
    return t;
}

kcp::v3::Table health_table(const kcp::v3::HealthCheckResponse& r) {
    v3::Table t = make_table("health", {"component", "status", "detail"});
    for (const auto& c : r.components()) {
        add_row(t, {text_cell(c.component()), text_cell(v3::HealthCheckResponse::Status_Name(c.status())),
                    text_cell(c.detail())});
    }
    return t;
}

result<std::vector<kcp::v3::Table>> show_view(const operator_snapshot& s, const kcp::v3::OperatorRequest::Show& show) {
    using R = v3::OperatorRequest;
    const desired_connection* only = nullptr;
    if (!show.connection().empty()) {
        if (show.view() != R::PATHS && show.view() != R::STREAMS && show.view() != R::CONNECTIONS) {
            return error{"show.connection: only the connections, paths and streams views take a connection (this is " +
                         R::View_Name(show.view()) + ")"};
        }
        static const std::map<std::uint64_t, desired_connection> none;
        auto c = find_connection(s.connections != nullptr ? *s.connections : none, show.connection(), "show.connection");
        if (!c) {
            return c.failure();
        }
        only = c.value();
    }
    std::vector<v3::Table> out;
    switch (show.view()) {
    case R::STATUS:
        return status_tables(s);
    case R::PORTS:
        out.push_back(ports_table(s));
        return out;
    case R::WORKERS:
        out.push_back(workers_table(s));
        return out;
    case R::CONNECTIONS:
        out.push_back(connections_table(s, only));
        return out;
    case R::PATHS:
        out.push_back(paths_table(s, only));
        return out;
    case R::STREAMS:
        return streams_tables(s, only);
    case R::SERVERS:
        out.push_back(servers_table(s));
        return out;
    case R::COUNTERS:
        return counters_tables(s);
    case R::SESSIONS:
        out.push_back(sessions_table(s));
        return out;
    default:
        return error{"show.view: " + std::to_string(static_cast<int>(show.view())) +
                     " is not a view (STATUS, PORTS, WORKERS, CONNECTIONS, PATHS, STREAMS, SERVERS, COUNTERS, "
                     "SESSIONS)"};
    }
}

} // namespace kwik::cp
