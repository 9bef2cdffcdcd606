// One KCP session of control_server (an accepted socket): its channel, its hello and what it
// holds in kwikd and the registry. Shared by control_server's action files; the control_server
// loop's thread only.
#pragma once

#include <cstdint>
#include <string>
#include <utility>

#include "controlplane/server/kwik_cp/control_server.hpp"

namespace kwik::cp {

struct control_server::session {
    session(kcp::channel c, hello_server& hello) : ch(std::move(c)), hello(hello) {}
    kcp::channel ch;
    hello_session hello;
    std::uint64_t kwikd_connection = 0; // set at ACCEPTED
    std::uint32_t interest = 0;         // registered epoll events
    // The server_id a server-role session registered (registry_actions.cpp); empty: none yet.
    std::string registered_server_id;
};

} // namespace kwik::cp
