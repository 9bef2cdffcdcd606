// The tables of kwikctl's `show` views (OperatorRequest.Show, docs/KCP_SERVER.md section 3):
// pure functions from an operator_snapshot (what kwik-cp, its link to kwikd and its registry
// hold at one moment) to kcp::v3::Table rows, so they are tested without sockets or kwikd.
// Any thread; control_server fills the snapshot on its own thread.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/result.hpp"
#include "controlplane/kcp/channel.hpp"
#include "controlplane/server/auth.hpp"
#include "controlplane/server/link/dataplane_link.hpp"
#include "controlplane/server/registry.hpp"
#include "dataplane/api/counters.hpp"
#include "proto/kcp.pb.h"

namespace kwik::cp {

// One KCP session of kwik-cp.
struct session_summary {
    int fd = -1;
    std::string peer;              // "address:port" of the other end
    std::string state;             // awaiting_hello, challenged, accepted, rejected
    std::string client_id, key_id; // empty before the hello
    role_set roles = 0;
    std::string connection_id;     // KCP connection id; empty before the hello
    std::uint64_t kwikd_connection = 0;
    bool tls = false;
    kcp::channel_counters counters{};
};

// kwikd as the counters region shows it; workers empty while detached.
struct kwikd_summary {
    bool attached = false;
    bool adopted = false; // list_state answered since attaching
    std::string region;
    std::vector<api::worker_snapshot> workers;
    std::optional<api::counters_totals> totals;
    std::vector<std::string> drop_names; // drop reason index -> name
    std::size_t commands_waiting = 0;
};

// A named counter of kwik-cp itself.
using named_counter = std::pair<std::string, std::uint64_t>;

struct operator_snapshot {
    std::string server_id;
    std::uint16_t listen_port = 0;
    bool tls = false;
    std::uint64_t uptime_ms = 0;
    std::uint64_t now_ms = 0; // wall clock, for the registry's expiries
    std::vector<session_summary> sessions;
    kwikd_summary kwikd;
    const std::map<std::uint64_t, desired_connection>* connections = nullptr; // the link's desired state
    link_counters link{};
    const server_registry* registry = nullptr;
    std::vector<named_counter> cp_counters; // control_server_counters, in declaration order
    // The upstream registry this kwik-cp registers with; empty when none is configured.
    std::vector<std::pair<std::string, kcp::v3::TableValue>> upstream; // column -> value
};

// Cells.
kcp::v3::TableValue text_cell(std::string_view v);
kcp::v3::TableValue unsigned_cell(std::uint64_t v);
kcp::v3::TableValue real_cell(double v);
kcp::v3::TableValue flag_cell(bool v);

// A connection named by its KCP connection id (or any name kwikd's config gave it) or by
// kwikd's numeric id; `field` names the argument in the error ("show.connection: ...").
result<const desired_connection*> find_connection(const std::map<std::uint64_t, desired_connection>& connections,
                                                  std::string_view name, std::string_view field);

// Who a connection belongs to: the client_id of the session that made it, else "adopted" (a
// 32-hex KCP connection id kwikd held when this kwik-cp attached: an earlier kwik-cp's session)
// or "static" (one of kwikd's configured connections).
std::string connection_owner(const desired_connection& c, const std::vector<session_summary>& sessions);

// "up", "suspect", "failed", "removed" (path_counters.status), "unknown_<n>" otherwise.
std::string path_status_name(std::uint64_t status);
std::string_view endpoint_name(api::endpoint_kind e);
std::string_view priority_name(api::stream_priority p);
std::string_view scheduler_name(api::scheduler_strategy s);
// KCP's priority 0 (highest) .. 7 as kwikd's frame priority: 0 critical, 1..3 high, 4..7 normal.
api::stream_priority stream_priority_of(std::uint32_t kcp_priority);

// One function per view; `only` (PATHS, STREAMS, CONNECTIONS) limits the rows to one connection.
std::vector<kcp::v3::Table> status_tables(const operator_snapshot& s);
kcp::v3::Table ports_table(const operator_snapshot& s);
kcp::v3::Table workers_table(const operator_snapshot& s);
kcp::v3::Table connections_table(const operator_snapshot& s, const desired_connection* only = nullptr);
kcp::v3::Table paths_table(const operator_snapshot& s, const desired_connection* only = nullptr);
std::vector<kcp::v3::Table> streams_tables(const operator_snapshot& s, const desired_connection* only = nullptr);
kcp::v3::Table servers_table(const operator_snapshot& s, std::string_view only_server = {});
std::vector<kcp::v3::Table> counters_tables(const operator_snapshot& s);
kcp::v3::Table sessions_table(const operator_snapshot& s);
kcp::v3::Table health_table(const kcp::v3::HealthCheckResponse& r);

// A Show request answered: its view's tables, or an error naming the field
// ("show.view: VIEW_UNSPECIFIED ...", "show.connection: no connection \"x\" ...").
result<std::vector<kcp::v3::Table>> show_view(const operator_snapshot& s, const kcp::v3::OperatorRequest::Show& show);

} // namespace kwik::cp
