// The rings of a worker's mailbox (worker_mailbox.hpp). Main lcore, after EAL init.
#include "dataplane/engine/worker_mailbox.hpp"

#include <rte_errno.h>

#include <cstring>

namespace kwik::engine {

five_tuple to_engine(const api::five_tuple& t) noexcept {
    five_tuple e;
    if (t.version == api::ip_version::v4) {
        e.src = ip_address::v4(t.remote.bytes);
        e.dst = ip_address::v4(t.local.bytes);
    } else {
        e.src = ip_address::v6(t.remote.bytes);
        e.dst = ip_address::v6(t.local.bytes);
    }
    e.src_port = t.remote_port;
    e.dst_port = t.local_port;
    e.protocol = ip_proto_udp;
    return e;
}

api::five_tuple to_api(const five_tuple& t) noexcept {
    api::five_tuple a{};
    const bool v4 = t.src.is_v4();
    a.version = v4 ? api::ip_version::v4 : api::ip_version::v6;
    a.local_port = t.dst_port;
    a.remote_port = t.src_port;
    if (v4) {
        std::memcpy(a.local.bytes, t.dst.v4_bytes(), 4);
        std::memcpy(a.remote.bytes, t.src.v4_bytes(), 4);
    } else {
        std::memcpy(a.local.bytes, t.dst.bytes.data(), 16);
        std::memcpy(a.remote.bytes, t.src.bytes.data(), 16);
    }
    return a;
}

worker_mailbox create_mailbox(const std::string& prefix, unsigned worker, unsigned command_slots,
                              unsigned reply_slots, int socket, std::string* error) {
    worker_mailbox m;
    const std::string base = prefix + "_w" + std::to_string(worker);
    m.commands = rte_ring_create_elem((base + "c").c_str(), sizeof(worker_command), command_slots, socket,
                                      RING_F_SP_ENQ | RING_F_SC_DEQ);
    if (m.commands == nullptr) {
        *error = "worker " + std::to_string(worker) + " command ring: " + rte_strerror(rte_errno);
        return {};
    }
    m.replies = rte_ring_create_elem((base + "r").c_str(), sizeof(worker_reply), reply_slots, socket,
                                     RING_F_SP_ENQ | RING_F_SC_DEQ);
    if (m.replies == nullptr) {
        *error = "worker " + std::to_string(worker) + " reply ring: " + rte_strerror(rte_errno);
        rte_ring_free(m.commands);
        return {};
    }
    m.neighbor_wants = rte_ring_create_elem((base + "n").c_str(), sizeof(neighbor_want), command_slots, socket,
                                            RING_F_SP_ENQ | RING_F_SC_DEQ);
    if (m.neighbor_wants == nullptr) {
        *error = "worker " + std::to_string(worker) + " neighbour ring: " + rte_strerror(rte_errno);
        rte_ring_free(m.commands);
        rte_ring_free(m.replies);
        return {};
    }
    return m;
}

void free_mailbox(worker_mailbox& m) noexcept {
    rte_ring_free(m.commands);
    rte_ring_free(m.replies);
    rte_ring_free(m.neighbor_wants);
    m = {};
}

} // namespace kwik::engine
