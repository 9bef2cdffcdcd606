// kwik-cp when kwikd loses a client session's connection for good: a restarted kwikd (its
// transport state, stream offsets and reassembly, went with the old process) or kwikd's
// connection_closed event (idle timeout, the peer's CONNECTION_CLOSE). The session hears
// PathStatusUpdate REMOVED for each path with the reason, then closes; docs/KCP_SERVER.md 7.
// The control_server loop's thread only (the link's callbacks).
#include "controlplane/server/kwik_cp/control_server.hpp"
#include "controlplane/server/kwik_cp/log.hpp"
#include "controlplane/server/kwik_cp/session.hpp"

#include <vector>

namespace kwik::cp {

namespace v3 = kcp::v3;

void control_server::end_connection(session& s, const std::string& reason, bool remove_in_kwikd) {
    const std::uint64_t id = s.kwikd_connection;
    if (const desired_connection* c = _link.find(id)) {
        std::vector<std::uint64_t> paths;
        for (const auto& [path_id, p] : c->paths) {
            paths.push_back(path_id);
        }
        for (const std::uint64_t path_id : paths) {
            push_path_status(id, path_id, v3::PathStatusUpdate::REMOVED, reason);
        }
        // A closed connection stays bound in kwikd (dropping its packets) until removed; a lost
        // one is not in the new kwikd at all, so nothing is sent and the resync skips it.
        (void)(remove_in_kwikd ? _link.remove_connection(id, 0) : _link.forget_connection(id, reason));
    }
    s.kwikd_connection = 0;
    ++_counters.connections_lost;
    log_line(log_level::warning, "session " + s.peer + ": " + reason);
    s.ch.close_when_sent(reason, kcp::clock_sample::now());
}

void control_server::on_kwikd_restarted() {
    for (auto& [fd, s] : _sessions) {
        const desired_connection* c = s->kwikd_connection == 0 ? nullptr : _link.find(s->kwikd_connection);
        if (c == nullptr || _link.unsent(c->id)) {
            continue; // no connection, or one added while detached: the new kwikd gets it whole
        }
        end_connection(*s,
                       "kwikd restarted: connection " + c->name +
                           " lost its transport state; say hello again for a new connection",
                       false);
    }
    // Connections adopted from an earlier kwik-cp whose sessions are gone: lost the same way,
    // with nobody to tell. kwikd's own (static) connections are pushed again as before.
    std::vector<std::uint64_t> orphans;
    for (const auto& [id, c] : _link.connections()) {
        if (id >= api::first_dynamic_connection_id && session_of_connection(id) == nullptr && !_link.unsent(id)) {
            orphans.push_back(id);
        }
    }
    for (const std::uint64_t id : orphans) {
        log_line(log_level::warning, "kwikd restarted: connection " + _link.find(id)->name +
                                         " (no session) lost its transport state; dropped");
        (void)_link.forget_connection(id, "kwikd restarted: the connection lost its transport state");
    }
}

void control_server::on_kwikd_connection_closed(const api::connection_closed_body& b) {
    const desired_connection* c = _link.find(b.connection_id);
    if (c == nullptr) {
        return; // removed already (its session closed first)
    }
    const std::string_view why = api::get_text(b.reason);
    const std::string reason = "kwikd closed connection " + c->name + ": " +
                               (why.empty() ? std::string("no reason given") : std::string(why)) + " (close code " +
                               std::to_string(b.close_code) + "); say hello again for a new connection";
    if (session* s = session_of_connection(b.connection_id)) {
        end_connection(*s, reason, true);
        return;
    }
    if (b.connection_id >= api::first_dynamic_connection_id) {
        // Adopted after a kwik-cp restart, its session gone: kept until now, nobody to tell.
        log_line(log_level::info, reason.substr(0, reason.find(';')) + " (no session); removed");
        (void)_link.remove_connection(b.connection_id, 0);
    }
    // kwikd's own connections (its configuration) stay as they are: the operator's to manage.
}

} // namespace kwik::cp
