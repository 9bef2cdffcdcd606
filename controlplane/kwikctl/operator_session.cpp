// kwikctl's session with kwik-cp; see operator_session.hpp.
#include "controlplane/kwikctl/operator_session.hpp"

#include <cerrno>

#include "controlplane/server/auth.hpp"

namespace kwik::ctl {

namespace {

namespace v3 = kcp::v3;

std::string result_name(v3::ServerHello::AuthResult r) {
    return v3::ServerHello::AuthResult_Name(r);
}

} // namespace

result<std::unique_ptr<operator_session>> operator_session::open(const connection_settings& settings) {
    const auto started = std::chrono::steady_clock::now();
    const auto left = [&] {
        const auto spent = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - started);
        return std::max(std::chrono::milliseconds(1), settings.timeout - spent);
    };
    kcp::client_options o;
    o.pin = settings.pin;
    o.connect_timeout = settings.timeout;
    auto client = kcp::blocking_client::connect(settings.server, o);
    if (!client) {
        return error{"cannot connect to kwik-cp at " + settings.server + ": " + client.message(), client.code()};
    }
    cp::client_credentials cr;
    cr.client_id = settings.client_id;
    cr.key_id = settings.key_id;
    cr.key = settings.secret;
    auto round1 = cp::client_hello_round1(cr);
    if (!round1) {
        return error{"hello: " + round1.message(), round1.code()};
    }
    const auto ask = [&](const v3::ClientHello& hello) -> result<v3::ServerHello> {
        kcp::KCPMessage m;
        *m.mutable_client_hello() = hello;
        auto answer = (*client)->request(m, left());
        if (!answer) {
            const bool timed_out = answer.code() == ETIMEDOUT;
            return error{std::string(timed_out ? "no hello answer from kwik-cp at " : "hello with kwik-cp at ") +
                             settings.server + (timed_out ? " within " + std::to_string(settings.timeout.count()) + " ms"
                                                          : ": " + answer.message()),
                         answer.code()};
        }
        if (!answer->has_server_hello()) {
            return error{"hello with kwik-cp at " + settings.server + ": answered by payload field " +
                         std::to_string(static_cast<int>(answer->payload_case())) + " instead of a ServerHello",
                         EPROTO};
        }
        return answer->server_hello();
    };
    const auto rejected = [&](const v3::ServerHello& h) {
        return error{"hello rejected by kwik-cp at " + settings.server + " (key_id \"" + settings.key_id + "\"): " +
                     result_name(h.auth_result()) + (h.error_reason().empty() ? "" : ": " + h.error_reason())};
    };
    auto first = ask(*round1);
    if (!first) {
        return first.failure();
    }
    if (first->auth_result() != v3::ServerHello::CHALLENGE) {
        return rejected(*first);
    }
    auto round2 = cp::client_hello_round2(*round1, *first, settings.secret);
    if (!round2) {
        return error{"hello with kwik-cp at " + settings.server + ": " + round2.message()};
    }
    auto second = ask(*round2);
    if (!second) {
        return second.failure();
    }
    if (second->auth_result() != v3::ServerHello::ACCEPTED) {
        return rejected(*second);
    }
    std::unique_ptr<operator_session> s(new operator_session(std::move(*client), settings));
    s->_server_id = second->server_id();
    return s;
}

result<kcp::v3::OperatorResponse> operator_session::request(const kcp::v3::OperatorRequest& request) {
    kcp::KCPMessage m;
    *m.mutable_operator_request() = request;
    auto answer = _client->request(m, _timeout);
    if (!answer) {
        if (answer.code() == ETIMEDOUT) {
            return error{"no answer from kwik-cp at " + _server + " within " + std::to_string(_timeout.count()) + " ms",
                         ETIMEDOUT};
        }
        return error{"kwik-cp at " + _server + ": " + answer.message(), answer.code()};
    }
    if (!answer->has_operator_response()) {
        return error{"kwik-cp at " + _server + " answered the OperatorRequest with another message type (payload field " +
                         std::to_string(static_cast<int>(answer->payload_case())) + ")",
                     EPROTO};
    }
    return answer->operator_response();
}

void operator_session::close() {
    if (_client) {
        _client->close();
    }
}

} // namespace kwik::ctl
