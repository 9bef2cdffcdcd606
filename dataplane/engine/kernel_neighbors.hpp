// The kernel's neighbour table (ARP / ND) feeding the workers' neighbor_tables of the ports whose
// neighbours the kernel owns (net_af_xdp: XDP passes ARP and ND to the kernel, so kwikd's own
// requests are answered to it). Over one non-blocking rtnetlink socket: an RTM_GETNEIGH dump at
// start, RTNLGRP_NEIGH notifications after (both families), and RTM_NEWNEIGH with NTF_USE for a
// next hop a worker wants (the kernel makes the entry and resolves it). In dataplane/engine, not
// drivers/af_xdp, because it speaks to the workers in engine types (worker_mailbox, ip_address).
// The message codec is pure functions (any thread); kernel_neighbors is kwikd's main lcore's.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <map>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "common/result.hpp"
#include "dataplane/engine/net_headers.hpp"
#include "dataplane/engine/worker_mailbox.hpp"

namespace kwik::engine {

// One RTM_NEWNEIGH / RTM_DELNEIGH as the kernel sent it.
struct kernel_neighbor {
    std::uint32_t ifindex = 0;
    ip_address ip;           // IPv4-mapped for AF_INET
    mac_address mac;
    bool has_mac = false;    // NDA_LLADDR of 6 bytes
    std::uint16_t state = 0; // NUD_*
    bool removed = false;    // RTM_DELNEIGH

    // An entry to send to: not removed, with a MAC, in REACHABLE, STALE, DELAY, PROBE or PERMANENT.
    bool usable() const noexcept;
};

struct netlink_parse {
    std::size_t neighbors = 0;  // entries appended
    std::size_t errors = 0;     // NLMSG_ERROR with a non-zero error (a refused request)
    int last_error = 0;         // its errno (positive)
    std::uint32_t last_error_seq = 0;
    bool dump_done = false;     // NLMSG_DONE seen
    bool malformed = false;     // a message or attribute ran past the datagram: the rest was skipped
};

// The request messages, written into out: their length, 0 when out is too small.
std::size_t build_neighbor_dump(std::uint32_t seq, std::span<std::uint8_t> out) noexcept;
// RTM_NEWNEIGH, NLM_F_CREATE | NLM_F_ACK, ndm_flags NTF_USE, NDA_DST ip, on ifindex.
std::size_t build_neighbor_use(std::uint32_t seq, std::uint32_t ifindex, const ip_address& ip,
                               std::span<std::uint8_t> out) noexcept;
// Every neighbour message of one datagram (several netlink messages), IPv4 and IPv6 only,
// appended to out; errors, the end of a dump and malformed input are reported.
netlink_parse parse_neighbor_messages(std::span<const std::uint8_t> datagram, std::vector<kernel_neighbor>& out);

struct kernel_neighbor_counters {
    std::uint64_t seeded = 0;   // usable kernel entries sent to the workers (once per entry, all workers)
    std::uint64_t wants = 0;    // next hops the workers asked for
    std::uint64_t answered = 0; // wants answered from the kernel's table as last read
    std::uint64_t asked = 0;    // RTM_NEWNEIGH NTF_USE sent: the kernel resolves
    std::uint64_t errors = 0;   // netlink: refused requests, failed sends, overruns (then a new dump), malformed
    std::uint64_t lost = 0;     // learn commands dropped: the backlog for a worker was full
};

class kernel_neighbors {
public:
    struct port {
        std::uint16_t index = 0;  // kwikd's port index (worker_command::port)
        std::uint32_t ifindex = 0;
    };

    // Opens the socket, joins RTNLGRP_NEIGH and asks for the dump (answered in poll()).
    // mailboxes: every worker's; each learned entry goes to all of them.
    [[nodiscard]] static result<kernel_neighbors> open(std::vector<port> ports, std::vector<worker_mailbox> mailboxes);
    kernel_neighbors(kernel_neighbors&& o) noexcept;
    kernel_neighbors& operator=(kernel_neighbors&&) = delete;
    kernel_neighbors(const kernel_neighbors&) = delete;
    ~kernel_neighbors();

    // Before the workers run: reads the dump open() asked for, for up to `limit`, so the workers
    // start with the kernel's entries in their mailboxes. False when the dump did not end in time
    // (poll() reads the rest).
    bool read_dump(std::chrono::milliseconds limit);

    // One housekeeping pass: the kernel's messages (learned entries to the workers), the workers'
    // wants (answered from the table, else asked of the kernel), then what the command rings
    // could not take last time. Never blocks.
    void poll();

    const kernel_neighbor_counters& counters() const noexcept { return _counters; }
    // "kernel neighbours: 2 known, seeded 3, ... netlink errors 0 (last: ...)".
    std::string summary() const;

private:
    kernel_neighbors() = default;
    void read_socket();
    void on_neighbor(const kernel_neighbor& n);
    void on_want(unsigned worker, const neighbor_want& w);
    void post(unsigned worker, std::uint16_t port, const ip_address& ip, const mac_address& mac);
    void flush_backlog();
    void send_request(std::span<const std::uint8_t> message, const char* what);
    void request_dump();
    void note_error(std::string what);
    const port* port_of_ifindex(std::uint32_t ifindex) const noexcept;

    using key = std::pair<std::uint16_t, std::array<std::uint8_t, 16>>; // port index, address
    static constexpr std::size_t max_backlog = 65536; // learn commands per worker waiting for room

    int _fd = -1;
    std::uint32_t _seq = 0;
    std::uint32_t _dump_seq = 0; // the dump under way's request
    bool _dumping = false; // a dump is under way (one at a time per socket)
    bool _redump = false;  // notifications were lost or a dump failed: dump again once none is under way
    std::chrono::steady_clock::time_point _next_dump{}; // dumps at most once a second
    std::vector<port> _ports;
    std::vector<worker_mailbox> _mailboxes;
    std::vector<std::vector<worker_command>> _backlog; // per worker
    std::map<key, mac_address> _known;                  // usable entries of our ports
    std::vector<kernel_neighbor> _parsed;                // scratch
    std::vector<std::uint8_t> _buffer;                   // one datagram
    kernel_neighbor_counters _counters;
    std::string _last_error;
};

} // namespace kwik::engine
