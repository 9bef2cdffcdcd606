// kwikctl's KCP session with kwik-cp: connect (TLS pinned, or plain TCP on loopback), the
// two-round hello with the operator key (controlplane/server/auth.hpp, client side), then one
// OperatorRequest -> OperatorResponse at a time. Every failure says which step failed and why
// (unreachable, pin mismatch, hello rejected with kwik-cp's reason, no answer in time); they
// all mean exit status 3. One thread.
#pragma once

#include <memory>
#include <string>

#include "common/result.hpp"
#include "controlplane/kcp/client.hpp"
#include "controlplane/kwikctl/settings.hpp"
#include "proto/kcp.pb.h"

namespace kwik::ctl {

class operator_session {
public:
    // Connects and passes the hello within settings.timeout.
    static result<std::unique_ptr<operator_session>> open(const connection_settings& settings);

    // Sends the request and waits settings.timeout for its OperatorResponse.
    result<kcp::v3::OperatorResponse> request(const kcp::v3::OperatorRequest& request);

    const std::string& server_id() const noexcept { return _server_id; }
    void close();

private:
    operator_session(std::unique_ptr<kcp::blocking_client> client, const connection_settings& settings)
        : _client(std::move(client)), _server(settings.server), _timeout(settings.timeout) {}

    std::unique_ptr<kcp::blocking_client> _client;
    std::string _server;
    std::chrono::milliseconds _timeout;
    std::string _server_id;
};

} // namespace kwik::ctl
