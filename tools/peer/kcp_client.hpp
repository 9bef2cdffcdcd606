// kwik-peer's client with a control plane: opens the KCP session (kcp_session), registers every
// path with kwik-cp, installs the hello's data key, runs the data loop on its own thread while
// this (the main) thread sends the scaling request when due, and turns kwik-cp's pushes into
// loop actions. Called once from main().
#pragma once

#include <string>

#include "tools/peer/command_line.hpp"
#include "tools/peer/peer_loop.hpp"

namespace kwik::peer {

// Returns the exit status: 0 verified, 1 transfer failed, 3 the session could not be opened
// or a path was refused (then failure says why).
int run_kcp_client(const peer_options& options, peer_loop& loop, std::string& failure);

} // namespace kwik::peer
