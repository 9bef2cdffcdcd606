// kwik-cp's registry membership actions (ServerRegistration, ServerHeartbeat,
// ServerDeregistration, docs/KCP_SERVER.md section 4) and the figures and shutdown of its own
// upstream registration (section 5). The control_server loop's thread only.
//
// Who may name which server_id: a session whose key has the operator role, any server but this
// kwik-cp's own registration. A session with the server role (and not operator): the server_id
// equal to its hello's client_id, or the one it registered first on this session (which no other
// open session holds, as its registration or as its client_id); heartbeats and deregistrations
// name one of those two. And, whatever the id, a server-role session may not replace, refresh
// or remove an entry another key registered (an operator's, or a server's between reconnects):
// a key whose client_ids allow any id could otherwise take over a victim's entry by naming its
// id as client_id. kwik-cp's own registration is never touched by a session.
#include <algorithm>
#include <string>

#include "controlplane/server/kwik_cp/control_server.hpp"
#include "controlplane/server/kwik_cp/session.hpp"

namespace kwik::cp {

using kcp::KCPMessage;
using kcp::clock_sample;
namespace v3 = kcp::v3;

namespace {

bool has_role(const accepted_hello& a, role r) {
    return (a.roles & role_bit(r)) != 0;
}

// The registry names fields under its own words ("server_registration.", "server_status."); a
// request's answer names them under the request's field.
std::string renamed(const std::string& message, std::string_view own, std::string_view field) {
    return message.starts_with(own) ? std::string(field) + message.substr(own.size()) : message;
}

} // namespace

v3::ServerRegistrationResponse control_server::register_in_registry(const v3::ServerRegistration& m,
                                                                     std::string_view field, clock_sample now,
                                                                     const std::string& owner_key_id) {
    v3::ServerRegistrationResponse r;
    r.set_server_id(m.server_id());
    auto refuse = [&](std::string why) {
        r.set_accepted(false);
        r.set_error_reason(std::move(why));
        return r;
    };
    auto registration = registration_from_proto(m, field);
    if (!registration) {
        return refuse(registration.message());
    }
    if (m.server_id() == _hello.config().server_id) {
        return refuse(std::string(field) + ".server_id: \"" + m.server_id() +
                      "\" is this kwik-cp's own registration, which it keeps itself");
    }
    if (auto ok = _registry.register_server(std::move(registration.value()), now.wall_ms, owner_key_id); !ok) {
        return refuse(renamed(ok.message(), "server_registration", field));
    }
    const registered_server* held = _registry.find(m.server_id());
    r.set_accepted(true);
    r.set_heartbeat_interval_ms(static_cast<std::uint32_t>(
        _config.heartbeat_interval.count() > 0 ? _config.heartbeat_interval.count() : _registry.config().expiry_ms / 3));
    r.set_expires_at_ms(held != nullptr ? held->expires_at_ms : 0);
    return r;
}

v3::ServerRegistrationResponse control_server::deregister_from_registry(const v3::ServerDeregistration& m,
                                                                        std::string_view field) {
    v3::ServerRegistrationResponse r;
    r.set_server_id(m.server_id());
    if (m.server_id() == _hello.config().server_id) {
        r.set_error_reason(std::string(field) + ".server_id: \"" + m.server_id() +
                           "\" is this kwik-cp's own registration, which it keeps itself");
    } else if (m.server_id().empty()) {
        r.set_error_reason(std::string(field) + ".server_id: missing");
    } else if (!_registry.remove(m.server_id())) {
        r.set_error_reason(std::string(field) + ".server_id: \"" + m.server_id() + "\" is not registered");
    } else {
        r.set_accepted(true);
    }
    return r;
}

namespace {

// Why a server-role session may not name server_id (empty: it may). registering: it may take a
// new id when it holds none yet.
std::string server_may_name(const std::string& server_id, const accepted_hello& a,
                            const std::string& registered, bool registering, bool held_elsewhere,
                            std::string_view field) {
    if (server_id == a.client_id || (!registered.empty() && server_id == registered)) {
        return {};
    }
    if (registering && registered.empty() && !held_elsewhere) {
        return {};
    }
    std::string why = std::string(field) + ".server_id: \"" + server_id + "\" is not this session's server (its client_id \"" +
                      a.client_id + "\"";
    if (!registered.empty()) {
        why += " or \"" + registered + "\", registered on this session";
    }
    if (registering && held_elsewhere) {
        why += "; another open session holds it";
    }
    return why + ")";
}

// Why a (non-operator) session of key a.key_id may not change server_id's entry (empty: it may):
// another key registered it, or it is this kwik-cp's own.
std::string owned_elsewhere(const server_registry& registry, const std::string& self_id, const std::string& server_id,
                            const accepted_hello& a, std::string_view field) {
    if (server_id == self_id) {
        return std::string(field) + ".server_id: \"" + server_id +
               "\" is this kwik-cp's own registration, which it keeps itself";
    }
    const registered_server* held = registry.find(server_id);
    if (held == nullptr || held->owner_key_id == a.key_id) {
        return {};
    }
    return std::string(field) + ".server_id: \"" + server_id + "\" is registered under another key than \"" +
           a.key_id + "\" (only that key or an operator may change it)";
}

} // namespace

void control_server::on_server_registration(session& s, const KCPMessage& m, clock_sample now) {
    ++_counters.registry_requests;
    const accepted_hello& a = *s.hello.accepted();
    const v3::ServerRegistration& q = m.server_registration();
    const bool as_operator = has_role(a, role::operator_);
    v3::ServerRegistrationResponse r;
    if (!as_operator && !has_role(a, role::server)) {
        r.set_server_id(q.server_id());
        r.set_error_reason("server_registration: this session's key \"" + a.key_id +
                           "\" lacks the server or operator role (it has: " + role_names(a.roles) + ")");
    } else {
        std::string why;
        if (!as_operator) {
            // Another open session's: registered there, or its own server id (its client_id).
            const bool held_elsewhere = std::any_of(_sessions.begin(), _sessions.end(), [&](const auto& other) {
                const auto& o = *other.second;
                return &o != &s && (o.registered_server_id == q.server_id() ||
                                    (o.hello.accepted() && has_role(*o.hello.accepted(), role::server) &&
                                     o.hello.accepted()->client_id == q.server_id()));
            });
            why = server_may_name(q.server_id(), a, s.registered_server_id, true, held_elsewhere,
                                  "server_registration");
            if (why.empty()) {
                why = owned_elsewhere(_registry, _hello.config().server_id, q.server_id(), a, "server_registration");
            }
        }
        if (!why.empty()) {
            r.set_server_id(q.server_id());
            r.set_error_reason(std::move(why));
        } else {
            r = register_in_registry(q, "server_registration", now, a.key_id);
            if (r.accepted() && !as_operator && q.server_id() != a.client_id) {
                s.registered_server_id = q.server_id();
            }
        }
    }
    if (!r.accepted()) {
        ++_counters.registry_refusals;
    }
    r.set_in_reply_to(m.header().message_id());
    KCPMessage out;
    *out.mutable_registration_response() = std::move(r);
    reply(s, std::move(out), now);
}

void control_server::on_server_heartbeat(session& s, const KCPMessage& m, clock_sample now) {
    ++_counters.registry_requests;
    const accepted_hello& a = *s.hello.accepted();
    const v3::ServerHeartbeat& q = m.server_heartbeat();
    v3::ServerRegistrationResponse r;
    r.set_server_id(q.server_id());
    std::string why;
    if (!has_role(a, role::server)) {
        why = "server_heartbeat: this session's key \"" + a.key_id + "\" lacks the server role (it has: " +
              role_names(a.roles) + ")";
    } else {
        why = server_may_name(q.server_id(), a, s.registered_server_id, false, false, "server_heartbeat");
        if (why.empty() && !has_role(a, role::operator_)) {
            why = owned_elsewhere(_registry, _hello.config().server_id, q.server_id(), a, "server_heartbeat");
        }
    }
    if (why.empty()) {
        if (auto ok = _registry.heartbeat(q.server_id(), now.wall_ms, status_from_heartbeat(q)); !ok) {
            why = renamed(ok.message(), "server_status", "server_heartbeat");
        }
    }
    if (why.empty()) {
        r.set_accepted(true);
        r.set_heartbeat_interval_ms(static_cast<std::uint32_t>(_config.heartbeat_interval.count() > 0
                                                                   ? _config.heartbeat_interval.count()
                                                                   : _registry.config().expiry_ms / 3));
        r.set_expires_at_ms(_registry.find(q.server_id())->expires_at_ms);
    } else {
        ++_counters.registry_refusals;
        r.set_error_reason(std::move(why));
    }
    r.set_in_reply_to(m.header().message_id());
    KCPMessage out;
    *out.mutable_registration_response() = std::move(r);
    reply(s, std::move(out), now);
}

// Why a server-role (not operator) session may not deregister server_id; empty: it may.
std::string control_server::deregistration_refusal(const session& s, const std::string& server_id) const {
    const accepted_hello& a = *s.hello.accepted();
    std::string why = server_may_name(server_id, a, s.registered_server_id, false, false, "server_deregistration");
    return why.empty() ? owned_elsewhere(_registry, _hello.config().server_id, server_id, a, "server_deregistration")
                       : why;
}

void control_server::on_server_deregistration(session& s, const KCPMessage& m, clock_sample now) {
    ++_counters.registry_requests;
    const accepted_hello& a = *s.hello.accepted();
    const v3::ServerDeregistration& q = m.server_deregistration();
    const bool as_operator = has_role(a, role::operator_);
    v3::ServerRegistrationResponse r;
    r.set_server_id(q.server_id());
    if (!as_operator && !has_role(a, role::server)) {
        r.set_error_reason("server_deregistration: this session's key \"" + a.key_id +
                           "\" lacks the server or operator role (it has: " + role_names(a.roles) + ")");
    } else if (std::string why = as_operator ? std::string() : deregistration_refusal(s, q.server_id());
               !why.empty()) {
        r.set_error_reason(std::move(why));
    } else {
        r = deregister_from_registry(q, "server_deregistration");
        if (r.accepted() && q.server_id() == s.registered_server_id) {
            s.registered_server_id.clear();
        }
    }
    if (!r.accepted()) {
        ++_counters.registry_refusals;
    }
    r.set_in_reply_to(m.header().message_id());
    KCPMessage out;
    *out.mutable_registration_response() = std::move(r);
    reply(s, std::move(out), now);
}

upstream_figures control_server::measure_figures(clock_sample now) {
    upstream_figures f;
    f.active_connections = static_cast<std::uint32_t>(_link.connections().size());
    f.uptime_seconds = static_cast<std::uint32_t>(
        std::chrono::duration_cast<std::chrono::seconds>(now.steady - _started).count());
    std::uint64_t used_mbps = 0;
    if (const auto totals = _link.read_counters()) {
        std::uint64_t tx_bytes = 0;
        std::uint64_t rx_bytes = 0;
        for (const auto& p : totals->ports) {
            tx_bytes += p.tx_bytes;
            rx_bytes += p.rx_bytes;
        }
        f.bytes_transferred_total = tx_bytes + rx_bytes;
        const auto since = std::chrono::duration_cast<std::chrono::microseconds>(now.steady - _figures_at).count();
        // Differences since the last sample; a kwikd restart (counters went down) starts over.
        if (_figures_at != std::chrono::steady_clock::time_point{} && since > 0 && totals->worker.polls >= _figures_polls &&
            tx_bytes >= _figures_tx_bytes) {
            const std::uint64_t polls = totals->worker.polls - _figures_polls;
            const std::uint64_t busy = totals->worker.busy_polls - std::min(_figures_busy, totals->worker.busy_polls);
            f.current_load_percent = polls == 0 ? 0 : static_cast<std::uint32_t>(std::min<std::uint64_t>(100, 100 * busy / polls));
            used_mbps = (tx_bytes - _figures_tx_bytes) * 8 / static_cast<std::uint64_t>(since); // bits per us = Mbit/s
        }
        _figures_polls = totals->worker.polls;
        _figures_busy = totals->worker.busy_polls;
        _figures_tx_bytes = tx_bytes;
        _figures_at = now.steady;
    }
    const std::uint64_t provisioned = _config.self.server.available_bandwidth_mbps();
    f.available_bandwidth_mbps = static_cast<std::uint32_t>(provisioned > used_mbps ? provisioned - used_mbps : 0);
    return f;
}

void control_server::shutdown(std::chrono::milliseconds grace) {
    if (_upstream) {
        _upstream->stop("kwik-cp \"" + _hello.config().server_id + "\" is stopping", grace);
    }
}

} // namespace kwik::cp
