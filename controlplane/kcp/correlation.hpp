// Which KCP response answers which request (PROTOCOL.md 11.5): correlation_id() reads the one
// id a message carries for that purpose, as a request (what its answer will name) or as a
// reply (what it answers). Pure functions; any thread.
#pragma once

#include <cstdint>
#include <string>

#include "proto/kcp.pb.h"

namespace kwik::kcp {

using v3::KCPMessage;

struct correlation {
    // Which side of an exchange the message is.
    enum class role : std::uint8_t {
        none,    // one-way (metrics, load-balancing updates and plans), or nothing to match
        request, // expects a reply carrying the same key
        reply,   // answers the request with the same key
    };
    // Where the key comes from.
    enum class kind : std::uint8_t {
        none,
        message_id,       // request: header.message_id; reply: in_reply_to
        command_id,       // TransportCommand / TransportResponse .command_id (text)
        health_sequence,  // HealthCheckRequest / HealthCheckResponse .sequence
        path,             // Add/RemovePathCommand -> PathStatusUpdate: connection_id + path_id
        discovery,        // ServerDiscoveryRequest -> ServerDiscoveryResponse, in order
    };

    role side = role::none;
    kind key_kind = kind::none;
    std::uint64_t number = 0; // message_id, sequence or path_id
    std::string text;         // command_id or connection_id

    // Same key, whatever the role.
    bool same_key(const correlation& o) const noexcept {
        return key_kind == o.key_kind && number == o.number && text == o.text;
    }
};

// The correlation of m, from its payload (and, for a request answered by in_reply_to, its
// header.message_id: 0 until the channel assigns one). A reply whose in_reply_to is 0 answers
// nothing (message ids start at 1): role none. A PathStatusUpdate is a reply: it may also come unasked, and then no request
// waits for it.
correlation correlation_id(const KCPMessage& m);

// True when reply answers request: request has role request, reply role reply, same key.
bool answers(const correlation& reply, const correlation& request) noexcept;

// "message_id 7", "command_id \"cmd-1\"", "path conn-1/3", ...: for logs and errors.
std::string to_string(const correlation& c);

} // namespace kwik::kcp
