// The simulated network; see network.hpp.
#include "tests/sim/network.hpp"

#include <algorithm>
#include <stdexcept>
#include <string>

namespace kwik::sim {

void node_handle::send(std::size_t path, std::span<const std::uint8_t> bytes, bool ect) const
{
    _net->send(_id, path, bytes, ect);
}

time_ns node_handle::now() const
{
    return _net->now();
}

network::network(event_loop& loop, std::uint64_t master_seed, bool keep_trace_records)
    : _loop(loop), _seed(master_seed), _trace(keep_trace_records)
{
}

std::uint64_t network::derive_seed(std::uint64_t master, std::uint64_t index) noexcept
{
    // splitmix64 of (master, index): nearby masters and indices give unrelated streams.
    std::uint64_t z = master + 0x9e3779b97f4a7c15ull * (index + 1);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

node_id network::add_node()
{
    _nodes.emplace_back();
    return static_cast<node_id>(_nodes.size() - 1);
}

node_id network::add_node(endpoint& ep)
{
    const node_id n = add_node();
    attach(n, ep);
    return n;
}

void network::attach(node_id n, endpoint& ep)
{
    _nodes.at(n).ep = &ep;
    reschedule(n);
}

std::size_t network::add_link(const link_config& config)
{
    const std::size_t id = _links.size();
    _links.push_back(std::make_unique<link>(_loop, config, derive_seed(_seed, id), static_cast<std::uint32_t>(id),
                                            &_trace));
    _links.back()->set_sink([this](datagram&& d) { forward(std::move(d)); });
    return id;
}

std::size_t network::add_path_via(node_id a, node_id b, std::vector<std::size_t> forward,
                                  std::vector<std::size_t> reverse)
{
    if (a >= _nodes.size() || b >= _nodes.size() || a == b) {
        throw std::invalid_argument("sim::network::add_path_via: bad nodes " + std::to_string(a) + ", " +
                                    std::to_string(b));
    }
    if (forward.empty() || reverse.empty()) {
        throw std::invalid_argument("sim::network::add_path_via: each direction needs at least one link");
    }
    for (const std::size_t l : forward) {
        (void)_links.at(l);
    }
    for (const std::size_t l : reverse) {
        (void)_links.at(l);
    }
    _paths.push_back(path_info{a, b, std::move(forward), std::move(reverse)});
    return _paths.size() - 1;
}

std::size_t network::add_path(node_id a, node_id b, const link_config& forward, const link_config& reverse)
{
    const std::size_t f = add_link(forward);
    const std::size_t r = add_link(reverse);
    return add_path_via(a, b, {f}, {r});
}

void network::blackout_path(std::size_t p, time_ns start, time_ns end)
{
    const path_info& info = _paths.at(p);
    link_at(info.forward.front()).add_blackout(start, end);
    link_at(info.reverse.front()).add_blackout(start, end);
}

const std::vector<std::size_t>& network::chain(const datagram& d) const
{
    const path_info& info = _paths[d.path];
    return d.src == info.a ? info.forward : info.reverse;
}

void network::send(node_id from, std::size_t p, std::span<const std::uint8_t> bytes, bool ect)
{
    const path_info& info = _paths.at(p);
    if (from != info.a && from != info.b) {
        throw std::logic_error("sim::network::send: node " + std::to_string(from) + " is not on path " +
                               std::to_string(p));
    }
    datagram d;
    d.bytes.assign(bytes.begin(), bytes.end());
    d.src = from;
    d.dst = from == info.a ? info.b : info.a;
    d.path = p;
    d.ect = ect;
    _trace.append(trace_record{_loop.now(), trace_kind::send, from, static_cast<std::uint32_t>(p), no_link,
                               static_cast<std::uint32_t>(bytes.size()), trace::hash_bytes(bytes)});
    const std::size_t first = chain(d).front();
    // A link never calls back synchronously, so an endpoint sending from inside its own
    // callback cannot re-enter itself or its peer.
    link_at(first).send(std::move(d));
}

void network::forward(datagram&& d)
{
    const std::vector<std::size_t>& links = chain(d);
    ++d.hop;
    if (d.hop < links.size()) {
        link_at(links[d.hop]).send(std::move(d));
        return;
    }
    deliver(std::move(d));
}

void network::deliver(datagram&& d)
{
    node_state& s = _nodes[d.dst];
    if (s.ep == nullptr) {
        throw std::logic_error("sim::network: datagram for node " + std::to_string(d.dst) + " without endpoint");
    }
    ++s.delivered;
    _trace.append(trace_record{_loop.now(), trace_kind::deliver, d.dst, static_cast<std::uint32_t>(d.path), no_link,
                               static_cast<std::uint32_t>(d.bytes.size()), trace::hash_bytes(d.bytes)});
    s.ep->on_datagram(d.path, d.bytes, d.ecn_ce, _loop.now());
    reschedule(d.dst);
}

void network::poke(node_id n)
{
    reschedule(n);
}

void network::reschedule(node_id n)
{
    node_state& s = _nodes.at(n);
    if (s.ep == nullptr) {
        return;
    }
    time_ns t = s.ep->next_wakeup();
    if (t == never) {
        // Idle: any pending wakeup event becomes stale.
        if (s.wake_at != never) {
            s.wake_at = never;
            ++s.wake_gen;
        }
        return;
    }
    t = std::max(t, _loop.now());
    if (t == s.wake_at) {
        return;
    }
    s.wake_at = t;
    const std::uint64_t gen = ++s.wake_gen;
    // A stale event (superseded by a later reschedule) finds a newer generation and does nothing.
    _loop.schedule(t, [this, n, gen] { fire(n, gen); });
}

void network::fire(node_id n, std::uint64_t gen)
{
    node_state& s = _nodes[n];
    if (gen != s.wake_gen) {
        return;
    }
    s.wake_at = never;
    const time_ns now = _loop.now();
    // Re-check: the endpoint may no longer want this instant.
    if (s.ep->next_wakeup() > now) {
        reschedule(n);
        return;
    }
    if (now == s.last_wake) {
        if (++s.same_instant >= _max_same_instant) {
            throw std::runtime_error("sim::network: node " + std::to_string(n) + " woken " +
                                     std::to_string(s.same_instant) + " times at t=" + std::to_string(now) +
                                     " ns; its next_wakeup() does not advance");
        }
    } else {
        s.last_wake = now;
        s.same_instant = 1;
    }
    ++s.wakeups;
    _trace.append(trace_record{now, trace_kind::wakeup, n, 0, no_link, 0, 0});
    s.ep->on_wakeup(now);
    reschedule(n);
}

} // namespace kwik::sim
