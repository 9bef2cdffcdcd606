// A connection as one worker holds it: the transport connection, its stream endpoint, and the
// routes of its paths (what worker::transmit() needs to frame a packet), plus the removals in
// progress. Built by the main lcore (worker::build_connection), owned by the worker from
// install until removal, then handed back to the main lcore to be freed. Engine-internal:
// worker.cpp (the packet side) and worker_control.cpp (commands, events, counters) share it.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "dataplane/api/commands.hpp"
#include "dataplane/engine/endpoint.hpp"
#include "dataplane/engine/net_headers.hpp"
#include "dataplane/transport/connection.hpp"

namespace kwik::engine {

class worker;

// A command the worker answers later (a drain in progress): what it answers and the main
// lcore's token for it (worker_mailbox.hpp).
struct deferred_answer {
    api::command cmd{};
    std::uint64_t token = 0;
};

struct connection_state {
    static constexpr std::uint32_t no_counters_slot = ~std::uint32_t{0};

    struct route {
        transport::path_id id = 0;
        std::size_t port = 0;
        five_tuple tuple{};      // as received: src = the remote end
        mac_address remote_mac{};
        bool mac_known = false;  // remote_mac is where the path's packets come from
        std::uint32_t counters_slot = no_counters_slot;
        std::uint64_t handoff_packets = 0;
        // remove_path in progress: answered once the path drained or at the deadline
        bool removing = false;
        transport::time_ns drain_deadline = 0;
        deferred_answer removal;
    };

    worker* owner = nullptr;
    std::uint32_t index = 0; // the slot on the worker
    std::uint64_t id = 0;    // the control plane's connection id
    std::unique_ptr<transport::connection> conn;
    std::unique_ptr<endpoint> ep;
    std::vector<route> routes; // capacity reserved at build: add_path never allocates
    bool touched = false;      // on the worker's list of connections to flush this loop
    bool installed = false;
    // remove_connection in progress
    bool removing = false;
    bool draining = false; // on the worker's list of removals in progress
    transport::time_ns drain_deadline = 0;
    deferred_answer removal;
};

} // namespace kwik::engine
