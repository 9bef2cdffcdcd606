// The simulated network (test support only): nodes hosting endpoints, paths between two nodes
// made of chains of links (a link may sit on several paths: a shared bottleneck), delivery of
// datagrams at computed virtual times, and endpoint wakeups for timers and pacing. Everything
// runs on one event loop on one thread; a master seed fixes every link's generator.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "tests/sim/event_loop.hpp"
#include "tests/sim/link.hpp"
#include "tests/sim/trace.hpp"

namespace kwik::sim {

// What a simulated transport endpoint implements (the lead's adapter around a connection).
struct endpoint {
    virtual ~endpoint() = default;
    virtual void on_datagram(std::size_t path, std::span<const std::uint8_t> bytes, bool ecn_ce, time_ns now) = 0;
    virtual time_ns next_wakeup() const = 0; // when it wants on_wakeup; never = idle
    virtual void on_wakeup(time_ns now) = 0; // timers, pacing, sending
};

class network;

// An endpoint's way back into the network: cheap to copy, valid as long as the network.
class node_handle {
public:
    node_handle() = default;
    node_handle(network* net, node_id id) : _net(net), _id(id) {}

    // `ect`: the datagram is sent ECN-capable (links may then mark CE instead of dropping).
    void send(std::size_t path, std::span<const std::uint8_t> bytes, bool ect = false) const;
    [[nodiscard]] time_ns now() const;
    [[nodiscard]] node_id id() const noexcept { return _id; }

private:
    network* _net = nullptr;
    node_id _id = 0;
};

struct path_info {
    node_id a = 0;
    node_id b = 0;
    std::vector<std::size_t> forward; // link ids, a -> b, in order
    std::vector<std::size_t> reverse; // link ids, b -> a, in order
};

// Links and wakeups schedule events that point back here: the network must outlive any
// running of its loop (declare the loop first, the network after it).
class network {
public:
    network(event_loop& loop, std::uint64_t master_seed, bool keep_trace_records = true);
    network(const network&) = delete;
    network& operator=(const network&) = delete;

    [[nodiscard]] event_loop& loop() noexcept { return _loop; }
    [[nodiscard]] time_ns now() const noexcept { return _loop.now(); }
    [[nodiscard]] trace& log() noexcept { return _trace; }
    [[nodiscard]] const trace& log() const noexcept { return _trace; }

    // A node may be created first and given its endpoint later (an endpoint usually needs its
    // handle at construction). attach() asks the endpoint for its first wakeup.
    node_id add_node();
    node_id add_node(endpoint& ep);
    void attach(node_id n, endpoint& ep);
    [[nodiscard]] node_handle handle(node_id n) { return node_handle(this, n); }

    // Links get seeds derived from the master seed and their id (the order of creation), so
    // adding a link later in a test's set-up does not change the earlier links' randomness.
    std::size_t add_link(const link_config& config);
    [[nodiscard]] link& link_at(std::size_t id) { return *_links.at(id); }
    [[nodiscard]] std::size_t link_count() const noexcept { return _links.size(); }

    // Paths are numbered globally in creation order; both nodes use the same number. A path
    // through chains of links (ids from add_link; a link may be on several paths):
    std::size_t add_path_via(node_id a, node_id b, std::vector<std::size_t> forward, std::vector<std::size_t> reverse);
    // A path of one private link each way.
    std::size_t add_path(node_id a, node_id b, const link_config& forward, const link_config& reverse);
    [[nodiscard]] const path_info& path(std::size_t p) const { return _paths.at(p); }
    [[nodiscard]] std::size_t path_count() const noexcept { return _paths.size(); }

    // Blacks out the first link of each direction of path p (the path's own access link in the
    // usual set-up; a shared link would black out every path on it, so do that by hand).
    void blackout_path(std::size_t p, time_ns start, time_ns end);

    // Sends a copy of `bytes` from node `from` along path p to the path's other node.
    void send(node_id from, std::size_t p, std::span<const std::uint8_t> bytes, bool ect = false);

    // Re-asks n's endpoint for next_wakeup(); call after changing an endpoint from outside an
    // event (a test writing to a stream). Deliveries and wakeups re-ask by themselves.
    void poke(node_id n);

    // An endpoint woken this many times at one virtual instant is spinning: throw.
    void set_max_wakeups_per_instant(std::uint64_t n) noexcept { _max_same_instant = n; }

    [[nodiscard]] std::uint64_t datagrams_delivered(node_id n) const { return _nodes.at(n).delivered; }
    [[nodiscard]] std::uint64_t wakeups(node_id n) const { return _nodes.at(n).wakeups; }

    [[nodiscard]] static std::uint64_t derive_seed(std::uint64_t master, std::uint64_t index) noexcept;

private:
    struct node_state {
        endpoint* ep = nullptr;
        time_ns wake_at = never;   // time of the live wakeup event, never if none
        std::uint64_t wake_gen = 0; // wakeup events carry the generation they were made in
        time_ns last_wake = never;
        std::uint64_t same_instant = 0;
        std::uint64_t delivered = 0;
        std::uint64_t wakeups = 0;
    };

    void forward(datagram&& d);
    void deliver(datagram&& d);
    void reschedule(node_id n);
    void fire(node_id n, std::uint64_t gen);
    [[nodiscard]] const std::vector<std::size_t>& chain(const datagram& d) const;

    event_loop& _loop;
    std::uint64_t _seed;
    trace _trace;
    std::vector<node_state> _nodes;
    std::vector<std::unique_ptr<link>> _links; // stable addresses: events point at links
    std::vector<path_info> _paths;
    std::uint64_t _max_same_instant = 10000;
};

} // namespace kwik::sim
