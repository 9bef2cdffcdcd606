// The worker's loop and its per-burst pipeline. The order of work in poll() is the order a
// packet travels: ports' rx bursts, hand-offs from other workers, the exception interface,
// connection timers, endpoints, tx bursts, then housekeeping (a slice of the neighbour tables
// every millisecond, counters) and one RCU quiescent state.
#include "dataplane/engine/worker.hpp"

#include <rte_cycles.h>
#include <rte_hash_crc.h>
#include <rte_ip.h>
#include <rte_prefetch.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <filesystem>

#include "dataplane/engine/mbuf_buffer.hpp"

namespace kwik::engine {

namespace {

constexpr std::size_t prefetch_ahead = 3;

// Neighbour-table housekeeping: a slice of each table every millisecond (a 4096-entry table in
// 16 ms), so that unanswered destinations free their held packets soon after hold_time. A
// slice costs about 0.4 us of CPU with the table in cache (perf/neighbor_bench, 2.3 GHz Xeon
// VM): under 0.05 % of a core per port; tables with no entry are skipped.
constexpr transport::time_ns neighbor_sweep_interval = 1 * transport::ms;
constexpr std::size_t neighbor_sweep_slots = 256;
// Room for the longest request write_request() builds: a tagged solicitation, 90 bytes.
constexpr std::uint16_t neighbor_request_room = 128;

// A UDP payload is contiguous when the whole frame sits in the first segment, which the
// worker's pools guarantee for frames up to the port's MTU (data room >= max frame).
bool contiguous(const rte_mbuf* m, const packet_meta& meta) noexcept {
    return std::uint32_t{meta.payload_offset} + meta.payload_length <= rte_pktmbuf_data_len(m);
}

transport::time_ns tsc_now() noexcept {
    static const double ns_per_cycle = 1e9 / double(rte_get_tsc_hz());
    return static_cast<transport::time_ns>(double(rte_get_tsc_cycles()) * ns_per_cycle);
}

} // namespace

// A connection on its worker: the transport connection, its endpoint, and the routes of its
// paths (what transmit() needs to build frames). Built by the main lcore, owned by the worker
// from install until removal, handed back to the main lcore to be freed.
struct connection_state {
    struct route {
        transport::path_id id = 0;
        std::size_t port = 0;
        five_tuple tuple{};
        mac_address remote_mac{};
        bool mac_known = false;
        std::uint32_t counters_slot = no_counters_slot;
        std::uint64_t handoff_packets = 0;
        // remove_path in progress: the command to answer once the path drained
        bool removing = false;
        transport::time_ns drain_deadline = 0;
        api::command remove_command{};
    };
    static constexpr std::uint32_t no_counters_slot = ~std::uint32_t{0};

    worker* owner = nullptr;
    std::uint32_t index = 0;
    std::uint64_t id = 0; // the control plane's connection id
    std::unique_ptr<transport::connection> conn;
    std::unique_ptr<endpoint> ep;
    std::vector<route> routes; // capacity reserved at build: add_path never allocates
    bool touched = false;
    bool installed = false;
    // remove_connection in progress
    bool removing = false;
    bool draining = false; // on the worker's _draining list
    transport::time_ns drain_deadline = 0;
    api::command remove_command{};
};

void connection_state_deleter::operator()(connection_state* c) const noexcept {
    delete c;
}

worker::worker(const worker_config& config)
    : _config(config), _tx(config.ports.size()), _wheel(config.timer_tick, 0) {
    _responders.reserve(config.ports.size());
    _neighbors.reserve(config.ports.size());
    for (const worker_port& p : config.ports) {
        _responders.emplace_back(p.mac);
        // The caller validated it (kwikd at start-up); an invalid one here is a bug.
        if (p.neighbors != nullptr && !p.neighbors->validate().empty()) {
            std::abort();
        }
        _neighbors.push_back(p.neighbors != nullptr ? std::make_unique<neighbor_table>(*p.neighbors, &_counters.neighbor)
                                                    : nullptr);
    }
    _conns.resize(_config.max_connections);
    _touched.reserve(_config.max_connections);
    _draining.reserve(_config.max_connections);
    // kwikd's configuration refuses more ports (max_ethdev_ports); a caller that passes more
    // is a bug, not a configuration to shrink silently.
    if (_config.ports.size() > max_worker_ports) {
        std::abort();
    }
    if (_config.burst == 0 || _config.burst > max_burst) {
        _config.burst = max_burst;
    }
    if (_config.counters != nullptr) {
        const std::uint32_t slots = _config.counters->max_paths();
        _free_path_slots.reserve(slots);
        for (std::uint32_t s = slots; s > 0; --s) {
            _free_path_slots.push_back(s - 1);
        }
    }
}

worker::~worker() {
    flush_tx();
    // Packets still waiting for a neighbour: everything is stale at the end of time.
    std::array<rte_mbuf*, 3 * neighbor_table::max_held> held;
    for (auto& t : _neighbors) {
        while (t && t->size() != 0) {
            const std::size_t n = t->sweep(transport::never, held, t->capacity());
            for (std::size_t i = 0; i < n; ++i) {
                rte_pktmbuf_free(held[i]);
            }
        }
    }
    for (auto& c : _conns) {
        if (c) {
            _wheel.remove(*c->conn);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Set-up

connection_ptr worker::build_connection(const connection_spec& spec, std::string* error) {
    connection_ptr c(new connection_state);
    c->owner = this;
    c->index = spec.index;
    c->id = spec.connection_id;
    transport::connection_config tc = spec.transport;
    tc.tx_ops = &mbuf_buffer_ops;
    tc.rx_ops = &mbuf_buffer_ops;
    c->routes.reserve(tc.max_paths);
    transport::connection_callbacks cb;
    cb.ctx = c.get();
    cb.transmit = cb_transmit;
    cb.allocate = cb_allocate;
    cb.on_data = cb_data;
    cb.on_readable = cb_readable;
    cb.on_stream_finished = cb_finished;
    cb.on_stream_opened = cb_opened;
    cb.on_stream_reset = cb_reset;
    cb.on_path_event = cb_path_event;
    cb.on_closed = cb_closed;
    c->conn = std::make_unique<transport::connection>(tc, cb, tsc_now());
    endpoint_config ec = spec.endpoint;
    ec.connection_id = spec.connection_id != 0 ? spec.connection_id : spec.index;
    if (ec.kind == endpoint_kind::file_store) {
        std::error_code ec_dir;
        std::filesystem::create_directories(ec.directory, ec_dir);
        if (ec_dir || !std::filesystem::is_directory(ec.directory)) {
            *error = "file_store directory " + ec.directory + ": " +
                     (ec_dir ? ec_dir.message() : std::string("not a directory"));
            return nullptr;
        }
    }
    c->ep = std::make_unique<endpoint>(ec, *c->conn, tx_allocator{c.get(), cb_allocate, &mbuf_buffer_ops});
    return c;
}

bool worker::install(connection_ptr c, std::string* error) {
    if (c == nullptr) {
        *error = "no connection to install";
        return false;
    }
    const std::uint32_t index = c->index;
    if (index < _conns.size() && _conns[index]) {
        *error = "connection slot " + std::to_string(index) + " is taken on worker " + std::to_string(_config.id);
        return false;
    }
    if (index >= _conns.size()) {
        *error = "connection slot " + std::to_string(index) + " is beyond the worker's " +
                 std::to_string(_conns.size()) + " slots";
        return false;
    }
    c->installed = true;
    _wheel.add(*c->conn);
    if (_config.counters != nullptr && index < _config.counters->max_connections()) {
        publish_connection(*c, tsc_now());
    }
    _conns[index] = std::move(c);
    return true;
}

bool worker::add_connection(const connection_spec& spec, std::string* error) {
    connection_ptr c = build_connection(spec, error);
    return c != nullptr && install(std::move(c), error);
}

bool worker::add_path(const path_spec& spec, std::string* error) {
    if (spec.connection >= _conns.size() || !_conns[spec.connection]) {
        *error = "path " + std::to_string(spec.id) + ": connection " + std::to_string(spec.connection) +
                 " does not exist on worker " + std::to_string(_config.id);
        return false;
    }
    worker_command wc{};
    wc.op = worker_op::add_path;
    wc.connection = spec.connection;
    wc.port = static_cast<std::uint16_t>(spec.port);
    wc.tuple = spec.tuple;
    wc.cmd.add_path.path_id = spec.id;
    wc.cmd.add_path.initial_weight = spec.weight;
    wc.cmd.add_path.max_bandwidth_mbps = static_cast<std::uint32_t>(spec.max_rate_bps / 1000000);
    wc.cmd.add_path.standby = spec.standby ? 1 : 0;
    if (!apply_add_path(*_conns[spec.connection], wc, error)) {
        return false;
    }
    path_binding b{static_cast<std::uint16_t>(_config.id), spec.connection, spec.id, spec.tuple};
    if (!_config.paths->add(b, error)) {
        remove_route(*_conns[spec.connection], spec.id, tsc_now());
        return false;
    }
    return true;
}

// The worker's half of add_path: the transport learns the path, transmit() its route. The
// binding in the path table is the main lcore's half (it publishes it after this answered).
bool worker::apply_add_path(conn_ctx& c, const worker_command& wc, std::string* why) noexcept {
    const api::add_path_body& a = wc.cmd.add_path;
    if (wc.port >= _config.ports.size()) {
        *why = "add_path: port " + std::to_string(wc.port) + " does not exist";
        return false;
    }
    if (c.routes.size() == c.routes.capacity()) {
        *why = "add_path.path_id: the connection has its maximum of " + std::to_string(c.routes.capacity()) + " paths";
        return false;
    }
    for (const auto& r : c.routes) {
        if (r.id == a.path_id) {
            *why = "add_path.path_id: " + std::to_string(a.path_id) + " exists in the connection";
            return false;
        }
    }
    const transport::time_ns now = tsc_now();
    if (!c.conn->add_path(a.path_id, now)) {
        *why = "add_path.path_id: the transport refused " + std::to_string(a.path_id);
        return false;
    }
    // 1 is where the load balancer starts every path; another weight is pinned like set_weights.
    if (a.initial_weight >= 0 && a.initial_weight != 1.0f) {
        c.conn->set_path_weight(a.path_id, a.initial_weight);
    }
    if (a.max_bandwidth_mbps != 0) {
        c.conn->set_path_max_rate(a.path_id, std::uint64_t{a.max_bandwidth_mbps} * 1000000);
    }
    if (a.standby != 0) {
        c.conn->set_path_standby(a.path_id, true);
    }
    connection_state::route r;
    r.id = a.path_id;
    r.port = wc.port;
    r.tuple = wc.tuple;
    if (!_free_path_slots.empty()) {
        r.counters_slot = _free_path_slots.back();
        _free_path_slots.pop_back();
    }
    c.routes.push_back(r);
    if (!c.touched) { // the first flush probes the new path
        c.touched = true;
        _touched.push_back(&c);
    }
    return true;
}

bool worker::remove_route(conn_ctx& c, transport::path_id id, transport::time_ns now) noexcept {
    for (std::size_t i = 0; i < c.routes.size(); ++i) {
        if (c.routes[i].id != id) {
            continue;
        }
        c.conn->remove_path(id, now);
        if (c.routes[i].counters_slot != connection_state::no_counters_slot) {
            _config.counters->clear_path(c.routes[i].counters_slot);
            _free_path_slots.push_back(c.routes[i].counters_slot);
        }
        c.routes.erase(c.routes.begin() + static_cast<std::ptrdiff_t>(i));
        return true;
    }
    return false;
}

const endpoint* worker::endpoint_of(std::uint32_t connection) const noexcept {
    return connection < _conns.size() && _conns[connection] ? _conns[connection]->ep.get() : nullptr;
}

std::uint64_t worker::connection_id_of(std::uint32_t connection) const noexcept {
    return connection < _conns.size() && _conns[connection] ? _conns[connection]->id : 0;
}

const transport::connection* worker::connection_of(std::uint32_t connection) const noexcept {
    return connection < _conns.size() && _conns[connection] ? _conns[connection]->conn.get() : nullptr;
}

// ---------------------------------------------------------------------------------------------
// The loop

void worker::run(const std::atomic<bool>& stop) noexcept {
    _config.paths->register_worker(_config.id);
    _rcu_registered = true;
    while (!stop.load(std::memory_order_relaxed)) {
        poll(tsc_now());
    }
    flush_tx();
    _config.paths->offline(_config.id);
    _rcu_registered = false;
}

void worker::poll(transport::time_ns now) noexcept {
    std::array<rte_mbuf*, max_burst> pkts;
    bool busy = false;
    _now = now;
    ++_counters.loops;
    // Commands first: a path added now receives this loop's packets. An empty ring costs two
    // loads (its head and tail).
    if (_config.mailbox.valid()) {
        apply_commands(now);
    }
    for (std::size_t port = 0; port < _config.ports.size(); ++port) {
        worker_port& wp = _config.ports[port];
        if (!wp.poll_rx) {
            continue;
        }
        const std::uint16_t n = wp.queue.rx_burst({pkts.data(), _config.burst});
        if (n == 0) {
            continue;
        }
        busy = true;
        if (wp.rx_checksum_offload) {
            process_burst<true>(port, {pkts.data(), n}, now, false);
        } else {
            process_burst<false>(port, {pkts.data(), n}, now, false);
        }
    }
    // Packets other workers received for connections this one owns (no rte_flow steering).
    if (_config.id < _config.handoff.size() && _config.handoff[_config.id] != nullptr) {
        const unsigned n = rte_ring_dequeue_burst(_config.handoff[_config.id], reinterpret_cast<void**>(pkts.data()),
                                                  _config.burst, nullptr);
        for (unsigned i = 0; i < n; ++i) {
            // Re-classify on the port it came in on: cheap, and keeps mbuf metadata free.
            const std::size_t port = pkts[i]->port < _config.ports.size() ? pkts[i]->port : 0;
            ++_counters.handoffs_received;
            process_burst<false>(port, {&pkts[i], 1}, now, true);
        }
        busy = busy || n > 0;
    }
    // What the kernel sends out through the exception interface leaves by the port it serves.
    if (_config.exception && _config.exception_poll_rx && _config.exception_port < _config.ports.size()) {
        const std::uint16_t n = _config.exception->rx_burst({pkts.data(), _config.burst});
        for (std::uint16_t i = 0; i < n; ++i) {
            ++_counters.exception_in;
            enqueue_tx(_config.exception_port, pkts[i]);
        }
        busy = busy || n > 0;
    }
    _wheel.poll(now);
    for (conn_ctx* c : _touched) {
        c->ep->pump();
        c->conn->flush(now);
        _wheel.touch(*c->conn);
        c->touched = false;
    }
    _touched.clear();
    if (!_draining.empty()) {
        poll_draining(now);
    }
    flush_tx();
    if (now >= _next_sweep) {
        sweep_neighbors(now);
    }
    if (busy) {
        ++_counters.busy_loops;
    }
    if (_config.counters != nullptr && now >= _next_publish) {
        publish_counters(now);
    }
    if (_rcu_registered) {
        _config.paths->quiescent(_config.id);
    }
}

template <bool RxOffload>
void worker::process_burst(std::size_t port, std::span<rte_mbuf*> pkts, transport::time_ns now,
                           bool handed_off) noexcept {
    std::array<packet_meta, max_burst> meta;
    const worker_port& wp = _config.ports[port];
    if (!handed_off) { // counted as received by the worker whose queue it came from
        for (rte_mbuf* m : pkts) {
            ++_counters.rx_packets;
            _counters.rx_bytes += rte_pktmbuf_pkt_len(m);
            ++_counters.ports[port].rx_packets;
            _counters.ports[port].rx_bytes += rte_pktmbuf_pkt_len(m);
        }
    }
    wp.classify->classify<RxOffload>(pkts, {meta.data(), pkts.size()}, _counters.classified);

    // Kwik datagrams: one bulk lookup of their paths.
    std::array<const five_tuple*, max_burst> keys;
    std::array<std::uint8_t, max_burst> which;
    unsigned nk = 0;
    for (std::size_t i = 0; i < pkts.size(); ++i) {
        if (meta[i].v == verdict::kwik) {
            keys[nk] = &meta[i].tuple;
            which[nk] = static_cast<std::uint8_t>(i);
            ++nk;
        }
    }
    std::array<const path_binding*, max_burst> found{};
    if (nk > 0) {
        _config.paths->lookup_bulk(keys.data(), nk, found.data());
    }
    unsigned k = 0;
    for (std::size_t i = 0; i < pkts.size(); ++i) {
        if (i + prefetch_ahead < pkts.size()) {
            rte_prefetch0(rte_pktmbuf_mtod(pkts[i + prefetch_ahead], void*));
        }
        rte_mbuf* m = pkts[i];
        switch (meta[i].v) {
        case verdict::kwik: {
            const path_binding* b = found[k++];
            ++_counters.kwik_packets;
            if (b == nullptr) {
                note_unknown_path(port, meta[i].tuple, now);
                drop_rx(port, m, kdp::drop_reason::unknown_path);
            } else if (b->owner_worker != _config.id) {
                if (b->owner_worker < _config.handoff.size() && _config.handoff[b->owner_worker] != nullptr &&
                    rte_ring_enqueue(_config.handoff[b->owner_worker], m) == 0) {
                    ++_counters.handed_off;
                } else {
                    drop_rx(port, m, kdp::drop_reason::handoff_ring_full);
                }
            } else if (b->connection >= _conns.size() || !_conns[b->connection]) {
                drop_rx(port, m, kdp::drop_reason::unknown_path);
            } else {
                deliver(*_conns[b->connection], *b, m, meta[i], now, handed_off);
            }
            break;
        }
        case verdict::arp_request_for_us:
        case verdict::neighbor_solicitation_for_us:
            // Who asks for us is about to talk to us (RFC 826, RFC 4861 7.2.3): learn them. An
            // NS is never routed, so its Ethernet source is the soliciting host's.
            learn_neighbor(port, meta[i].tuple.src, meta[i].src_mac, now);
            [[fallthrough]];
        case verdict::icmp_echo_for_us:
        case verdict::icmpv6_echo_for_us:
            if (_responders[port].respond(m, meta[i], _counters.responded)) {
                ++_counters.replies;
                enqueue_tx(port, m);
            } else {
                drop_rx(port, m, kdp::drop_reason::reply_not_built);
            }
            break;
        case verdict::exception:
            // ARP replies and learnable NAs answer the neighbour table's requests; the kernel
            // (which keeps its own cache) gets them too.
            if (meta[i].arp_op == arp_op_reply || (meta[i].flags & meta_flag::neighbor_advertisement) != 0) {
                learn_neighbor(port, meta[i].tuple.src, meta[i].src_mac, now);
            }
            // Only the served port's traffic goes to the kernel: it shares that port's addresses.
            if (_config.exception && port == _config.exception_port) {
                ++_counters.exception_out;
                if (_exception_tx.count == _exception_tx.pkts.size()) {
                    const std::uint16_t sent = _config.exception->tx_burst({_exception_tx.pkts.data(), _exception_tx.count});
                    for (std::uint16_t j = sent; j < _exception_tx.count; ++j) {
                        drop(_exception_tx.pkts[j], kdp::drop_reason::tx_queue_full);
                    }
                    _exception_tx.count = 0;
                }
                _exception_tx.pkts[_exception_tx.count++] = m;
            } else {
                drop_rx(port, m, kdp::drop_reason::no_exception_path);
            }
            break;
        default:
            ++_counters.ports[port].rx_dropped;
            rte_pktmbuf_free(m); // counted by the classifier under its reason
            break;
        }
    }
}

void worker::deliver(conn_ctx& c, const path_binding& b, rte_mbuf* m, const packet_meta& meta,
                     transport::time_ns now, bool handed_off) noexcept {
    if (!contiguous(m, meta)) [[unlikely]] {
        // A jumbo frame the port scattered over several segments: the transport takes one
        // contiguous datagram, so it is copied once into an application buffer (16 KiB room).
        std::uint8_t* flat = nullptr;
        auto* copy = static_cast<rte_mbuf*>(mbuf_allocate(_config.app_pool, meta.payload_length, &flat));
        if (copy == nullptr) {
            drop_rx(m->port < _config.ports.size() ? m->port : 0, m, kdp::drop_reason::payload_chained);
            return;
        }
        // rte_pktmbuf_read copies across segments, or points into the one segment holding it all.
        const void* src = rte_pktmbuf_read(m, meta.payload_offset, meta.payload_length, flat);
        if (src != flat) {
            std::memcpy(flat, src, meta.payload_length);
        }
        ++_counters.rx_linearized;
        rte_pktmbuf_free(m);
        m = copy;
        packet_meta flat_meta = meta;
        flat_meta.payload_offset = 0;
        deliver(c, b, m, flat_meta, now, handed_off);
        return;
    }
    for (auto& r : c.routes) {
        if (r.id == b.path) {
            // Reply to the sender's MAC (the next hop it came through). The neighbour table
            // hears of it only when that is news: packets held for this peer go out now.
            if (!r.mac_known || !(r.remote_mac == meta.src_mac)) [[unlikely]] {
                learn_neighbor(r.port, r.tuple.src, meta.src_mac, now);
            }
            r.remote_mac = meta.src_mac;
            r.mac_known = true;
            r.handoff_packets += handed_off ? 1 : 0;
            break;
        }
    }
    const std::uint8_t* payload = rte_pktmbuf_mtod_offset(m, const std::uint8_t*, meta.payload_offset);
    // The connection takes references to the frames it keeps (mbuf_buffer_ops): no copy.
    c.conn->on_datagram(b.path, {payload, meta.payload_length}, m, false, now);
    rte_pktmbuf_free(m);
    if (!c.touched) {
        c.touched = true;
        _touched.push_back(&c);
    }
}

void worker::drop_rx(std::size_t port, rte_mbuf* m, kdp::drop_reason r) noexcept {
    ++_counters.ports[port].rx_dropped;
    drop(m, r);
}

void worker::drop(rte_mbuf* m, kdp::drop_reason r) noexcept {
    ++_counters.drops[static_cast<std::size_t>(r)];
    rte_pktmbuf_free(m);
}

void worker::enqueue_tx(std::size_t port, rte_mbuf* m) noexcept {
    tx_queue& q = _tx[port];
    if (q.count == q.pkts.size()) {
        const std::uint16_t sent = _config.ports[port].queue.tx_burst({q.pkts.data(), q.count});
        for (std::uint16_t j = sent; j < q.count; ++j) {
            drop(q.pkts[j], kdp::drop_reason::tx_queue_full);
            ++_counters.tx_dropped;
        }
        q.count = 0;
    }
    q.pkts[q.count++] = m;
}

void worker::flush_tx() noexcept {
    for (std::size_t port = 0; port < _tx.size(); ++port) {
        tx_queue& q = _tx[port];
        if (q.count == 0) {
            continue;
        }
        const std::uint16_t sent = _config.ports[port].queue.tx_burst({q.pkts.data(), q.count});
        for (std::uint16_t j = 0; j < sent; ++j) {
            ++_counters.tx_packets;
            _counters.tx_bytes += rte_pktmbuf_pkt_len(q.pkts[j]);
            ++_counters.ports[port].tx_packets;
            _counters.ports[port].tx_bytes += rte_pktmbuf_pkt_len(q.pkts[j]);
        }
        for (std::uint16_t j = sent; j < q.count; ++j) {
            ++_counters.tx_dropped;
            ++_counters.ports[port].tx_dropped;
            drop(q.pkts[j], kdp::drop_reason::tx_queue_full);
        }
        q.count = 0;
    }
    if (_exception_tx.count > 0 && _config.exception) {
        const std::uint16_t sent = _config.exception->tx_burst({_exception_tx.pkts.data(), _exception_tx.count});
        for (std::uint16_t j = sent; j < _exception_tx.count; ++j) {
            drop(_exception_tx.pkts[j], kdp::drop_reason::tx_queue_full);
        }
        _exception_tx.count = 0;
    }
}

// Builds Ethernet + IPv4/IPv6 + UDP around a path packet from the transport and queues it on
// the path's port. The path packet is copied once into the mbuf (the transport serialises into
// its own buffer); checksums go to the NIC where it offers them.
bool worker::transmit(conn_ctx& c, transport::path_id path, std::span<const std::uint8_t> packet) noexcept {
    connection_state::route* r = nullptr;
    for (auto& x : c.routes) {
        if (x.id == path) {
            r = &x;
            break;
        }
    }
    if (r == nullptr) {
        ++_counters.drops[static_cast<std::size_t>(kdp::drop_reason::unknown_path)];
        return false;
    }
    if (!r->mac_known && _neighbors[r->port] == nullptr) {
        ++_counters.drops[static_cast<std::size_t>(kdp::drop_reason::neighbor_unresolved)];
        return false;
    }
    const worker_port& wp = _config.ports[r->port];
    const bool v4 = r->tuple.src.is_v4();
    const std::size_t l3 = v4 ? ipv4_header_len : ipv6_header_len;
    const std::size_t total = ethernet_header_len + l3 + udp_header_len + packet.size();
    rte_mbuf* m = rte_pktmbuf_alloc(_config.tx_pool);
    if (m == nullptr) {
        ++_counters.drops[static_cast<std::size_t>(kdp::drop_reason::tx_pool_empty)];
        return false;
    }
    auto* f = reinterpret_cast<std::uint8_t*>(rte_pktmbuf_append(m, static_cast<std::uint16_t>(total)));
    if (f == nullptr) {
        rte_pktmbuf_free(m);
        ++_counters.drops[static_cast<std::size_t>(kdp::drop_reason::tx_pool_empty)];
        return false;
    }
    // Ethernet: to the MAC the path's packets come from (written below when not yet known),
    // from the port's.
    r->remote_mac.store(f);
    wp.mac.store(f + 6);
    store_be16(f + 12, v4 ? ethertype_ipv4 : ethertype_ipv6);
    std::uint8_t* ip = f + ethernet_header_len;
    std::uint8_t* udp = ip + l3;
    const auto udp_len = static_cast<std::uint16_t>(udp_header_len + packet.size());
    // Our address and port are the received tuple's destination.
    std::uint64_t pseudo = 0;
    if (v4) {
        ip[0] = 0x45;
        ip[1] = 0;
        store_be16(ip + 2, static_cast<std::uint16_t>(l3 + udp_len));
        store_be16(ip + 4, 0);
        store_be16(ip + 6, 0x4000); // DF: KDP never fragments (PROTOCOL.md 2)
        ip[8] = 64;
        ip[9] = ip_proto_udp;
        store_be16(ip + 10, 0);
        std::memcpy(ip + 12, r->tuple.dst.v4_bytes(), 4);
        std::memcpy(ip + 16, r->tuple.src.v4_bytes(), 4);
        if (!wp.tx_ipv4_checksum) {
            const std::uint16_t ck = checksum_finish(checksum_add(ip, ipv4_header_len, 0));
            std::memcpy(ip + 10, &ck, 2);
        }
        pseudo = pseudo_header_v4(ip + 12, ip + 16, ip_proto_udp, udp_len);
    } else {
        store_be32(ip, 0x60000000);
        store_be16(ip + 4, udp_len);
        ip[6] = ip_proto_udp;
        ip[7] = 64;
        std::memcpy(ip + 8, r->tuple.dst.bytes.data(), 16);
        std::memcpy(ip + 24, r->tuple.src.bytes.data(), 16);
        pseudo = pseudo_header_v6(ip + 8, ip + 24, ip_proto_udp, udp_len);
    }
    store_be16(udp, r->tuple.dst_port);
    store_be16(udp + 2, r->tuple.src_port);
    store_be16(udp + 4, udp_len);
    store_be16(udp + 6, 0);
    std::memcpy(udp + udp_header_len, packet.data(), packet.size());
    m->l2_len = ethernet_header_len;
    m->l3_len = static_cast<std::uint16_t>(l3);
    if (wp.tx_udp_checksum) {
        // The NIC finishes it from the pseudo-header sum (DPDK's contract for UDP offload).
        const std::uint16_t ph = checksum_fold(pseudo);
        std::memcpy(udp + 6, &ph, 2);
        m->ol_flags |= RTE_MBUF_F_TX_UDP_CKSUM;
    } else {
        std::uint16_t ck = checksum_finish(checksum_add(udp, udp_len, pseudo));
        if (ck == 0) {
            ck = 0xFFFF; // RFC 768: a computed zero is sent as all ones
        }
        std::memcpy(udp + 6, &ck, 2);
    }
    if (v4) {
        m->ol_flags |= RTE_MBUF_F_TX_IPV4 | (wp.tx_ipv4_checksum ? RTE_MBUF_F_TX_IP_CKSUM : 0);
    } else {
        m->ol_flags |= RTE_MBUF_F_TX_IPV6;
    }
    if (!r->mac_known) [[unlikely]] {
        const std::optional<mac_address> mac = resolve_neighbor(r->port, r->tuple.src, m);
        if (!mac) {
            return false; // held until the answer, or dropped and counted
        }
        // Known from now on: later packets take the fast path above.
        r->remote_mac = *mac;
        r->mac_known = true;
        mac->store(f);
    }
    enqueue_tx(r->port, m);
    return true;
}

// ---------------------------------------------------------------------------------------------
// Neighbours: who is at a path's remote address before its packets told us

std::optional<mac_address> worker::resolve_neighbor(std::size_t port, const ip_address& dst, rte_mbuf* m) noexcept {
    neighbor_table& t = *_neighbors[port];
    const resolution res = t.resolve(dst, m, _now);
    if (res.request_due) {
        send_neighbor_request(port, res.request_target);
    }
    switch (res.status) {
    case resolve_status::resolved:
        return res.mac;
    case resolve_status::held:
        return std::nullopt;
    case resolve_status::dropped:
        break;
    }
    drop(m, res.reason);
    return std::nullopt;
}

void worker::send_neighbor_request(std::size_t port, const ip_address& target) noexcept {
    rte_mbuf* m = rte_pktmbuf_alloc(_config.tx_pool);
    if (m == nullptr) {
        ++_counters.drops[static_cast<std::size_t>(kdp::drop_reason::tx_pool_empty)];
        return;
    }
    auto* p = reinterpret_cast<std::uint8_t*>(rte_pktmbuf_append(m, neighbor_request_room));
    if (p == nullptr) {
        drop(m, kdp::drop_reason::tx_pool_empty);
        return;
    }
    const std::size_t len = _neighbors[port]->write_request(target, {p, neighbor_request_room});
    if (len == 0) { // no address of target's family: resolve() found no next hop either
        drop(m, kdp::drop_reason::no_route);
        return;
    }
    rte_pktmbuf_trim(m, static_cast<std::uint16_t>(neighbor_request_room - len));
    enqueue_tx(port, m);
}

// Completing an entry hands back the packets it held: they have every header but the
// destination MAC, which is the first thing in the frame.
void worker::learn_neighbor(std::size_t port, const ip_address& ip, const mac_address& mac,
                            transport::time_ns now) noexcept {
    neighbor_table* t = _neighbors[port].get();
    if (t == nullptr) {
        return;
    }
    std::array<rte_mbuf*, neighbor_table::max_held> released;
    const std::size_t n = t->learn(ip, mac, now, released);
    for (std::size_t i = 0; i < n; ++i) {
        mac.store(rte_pktmbuf_mtod(released[i], std::uint8_t*));
        enqueue_tx(port, released[i]);
    }
}

void worker::sweep_neighbors(transport::time_ns now) noexcept {
    _next_sweep = now + neighbor_sweep_interval;
    std::array<rte_mbuf*, 32 * neighbor_table::max_held> expired;
    for (auto& t : _neighbors) {
        if (!t || t->size() == 0) {
            continue;
        }
        const std::size_t n = t->sweep(now, expired, neighbor_sweep_slots);
        for (std::size_t i = 0; i < n; ++i) {
            drop(expired[i], kdp::drop_reason::neighbor_unresolved);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Connection callbacks (ctx is the conn_ctx)

void worker::cb_transmit(void* ctx, transport::path_id path, std::span<const std::uint8_t> packet) {
    auto* c = static_cast<conn_ctx*>(ctx);
    c->owner->transmit(*c, path, packet);
}

void* worker::cb_allocate(void* ctx, std::size_t size, std::uint8_t** data) {
    auto* c = static_cast<conn_ctx*>(ctx);
    return mbuf_allocate(c->owner->_config.app_pool, size, data);
}

void worker::cb_data(void* ctx, transport::stream_id id, std::uint64_t offset, std::span<const std::uint8_t> data) {
    static_cast<conn_ctx*>(ctx)->ep->on_data(id, offset, data);
}

void worker::cb_readable(void* ctx, transport::stream_id id) { static_cast<conn_ctx*>(ctx)->ep->on_readable(id); }

void worker::cb_finished(void* ctx, transport::stream_id id) { static_cast<conn_ctx*>(ctx)->ep->on_finished(id); }

void worker::cb_opened(void* ctx, transport::stream_id id) { static_cast<conn_ctx*>(ctx)->ep->on_stream_opened(id); }

void worker::cb_reset(void* ctx, transport::stream_id id, std::uint64_t code) {
    static_cast<conn_ctx*>(ctx)->ep->on_reset(id, code);
}

// Path liveness, as the control plane sees it: up and recovered -> path_up; suspect (no
// acknowledgement within a PTO: its data was re-sent elsewhere) -> path_down "down"; failed
// (fail_after_ptos PTOs) -> path_down "failed".
void worker::cb_path_event(void* ctx, transport::path_id path, transport::path_event e) {
    auto* c = static_cast<conn_ctx*>(ctx);
    if (!c->installed) {
        return;
    }
    switch (e) {
    case transport::path_event::up:
    case transport::path_event::recovered: {
        transport::path_info info;
        std::uint64_t srtt = 0;
        for (std::size_t i = 0; c->conn->path_info_at(i, info); ++i) {
            if (info.id == path) {
                srtt = static_cast<std::uint64_t>(info.srtt);
                break;
            }
        }
        c->owner->raise(api::make_path_up(c->id, path, srtt));
        break;
    }
    case transport::path_event::suspect:
        c->owner->raise(api::make_path_down(c->id, path, api::path_down_kind::down,
                                            "no acknowledgement within a probe timeout; its data was sent on other paths"));
        break;
    case transport::path_event::failed:
        c->owner->raise(api::make_path_down(c->id, path, api::path_down_kind::failed,
                                            "no acknowledgement after the failure threshold of probe timeouts"));
        break;
    }
}

void worker::cb_closed(void* ctx, transport::close_code code, std::string_view reason) {
    auto* c = static_cast<conn_ctx*>(ctx);
    if (!c->installed || c->removing) { // a removal answers for itself
        return;
    }
    c->owner->raise(api::make_connection_closed(c->id, static_cast<std::uint64_t>(code), reason));
}

// ---------------------------------------------------------------------------------------------
// The mailbox: commands from the main lcore, answers and events back

void worker::apply_commands(transport::time_ns now) noexcept {
    // A few per loop: a burst of commands must not stall the packets behind them.
    constexpr unsigned per_loop = 8;
    std::array<worker_command, per_loop> cmds;
    const unsigned n = _config.mailbox.take_commands(cmds.data(), per_loop);
    for (unsigned i = 0; i < n; ++i) {
        apply(cmds[i], now);
        ++_counters.commands_applied;
    }
}

void worker::apply(const worker_command& wc, transport::time_ns now) noexcept {
    using api::result_status;
    if (wc.op == worker_op::install_connection) {
        connection_ptr c(wc.ctx);
        std::string why;
        if (c == nullptr || c->index != wc.connection || !install(std::move(c), &why)) {
            // The main lcore allocates the slots: a taken one is its bug; answer, do not crash.
            // The built connection is handed back to be freed off this lcore.
            worker_reply r{};
            r.ev = api::make_command_result(wc.cmd, result_status::internal_error, why);
            r.worker = _config.id;
            r.connection = wc.connection;
            r.ctx = c.release();
            if (!_config.mailbox.answer(r)) {
                ++_counters.events_dropped;
            }
            return;
        }
        reply(wc.cmd, result_status::ok, {});
        return;
    }
    if (wc.op == worker_op::publish_counters) {
        if (_config.counters != nullptr) {
            publish_counters(now);
        }
        reply(wc.cmd, result_status::ok, {});
        return;
    }
    if (wc.connection >= _conns.size() || !_conns[wc.connection] || _conns[wc.connection]->removing) {
        reply(wc.cmd, result_status::unknown_connection, "the connection is not on this worker (removed meanwhile?)");
        return;
    }
    conn_ctx& c = *_conns[wc.connection];
    std::string why;
    switch (wc.op) {
    case worker_op::add_path:
        if (apply_add_path(c, wc, &why)) {
            reply(wc.cmd, result_status::ok, {});
        } else {
            reply(wc.cmd, result_status::no_capacity, why);
        }
        return;
    case worker_op::remove_path: {
        for (auto& r : c.routes) {
            if (r.id == wc.cmd.remove_path.path_id && !r.removing) {
                r.removing = true;
                r.remove_command = wc.cmd;
                r.drain_deadline = now + transport::time_ns{wc.cmd.remove_path.drain_timeout_ms} * transport::ms;
                // No new stream data on it while it drains; ACKs and retransmissions elsewhere.
                c.conn->set_path_standby(r.id, true);
                if (!c.draining) {
                    c.draining = true;
                    _draining.push_back(&c);
                }
                return;
            }
        }
        reply(wc.cmd, result_status::unknown_path, "remove_path.path_id: not in the connection");
        return;
    }
    case worker_op::remove_connection:
        c.removing = true;
        c.remove_command = wc.cmd;
        c.drain_deadline = now + transport::time_ns{wc.cmd.remove_connection.drain_timeout_ms} * transport::ms;
        if (!c.draining) {
            c.draining = true;
            _draining.push_back(&c);
        }
        return;
    case worker_op::set_scheduler:
        c.conn->set_strategy(static_cast<transport::schedule_strategy>(wc.cmd.set_scheduler.strategy));
        reply(wc.cmd, result_status::ok, {});
        return;
    case worker_op::set_weights: {
        const api::set_weights_body& b = wc.cmd.set_weights;
        // All or nothing: every path must exist before any weight changes.
        for (std::uint32_t i = 0; i < b.count; ++i) {
            bool found = false;
            for (const auto& r : c.routes) {
                found = found || r.id == b.entries[i].path_id;
            }
            if (!found) {
                char reason[api::reason_size];
                std::snprintf(reason, sizeof reason, "set_weights.entries[%u].path_id: %llu is not in the connection", i,
                              static_cast<unsigned long long>(b.entries[i].path_id));
                reply(wc.cmd, result_status::unknown_path, reason);
                return;
            }
        }
        for (std::uint32_t i = 0; i < b.count; ++i) {
            c.conn->set_path_weight(b.entries[i].path_id, b.entries[i].weight);
        }
        reply(wc.cmd, result_status::ok, {});
        return;
    }
    case worker_op::set_qos: {
        const api::set_qos_body& b = wc.cmd.set_qos;
        transport::qos_policy q;
        q.min_bandwidth_mbps = b.min_bandwidth_mbps;
        q.max_latency_ms = b.max_latency_ms;
        q.max_jitter_ms = b.max_jitter_ms;
        q.loss_threshold = b.loss_threshold;
        q.priority = static_cast<kdp::priority>(b.priority);
        if (c.conn->set_stream_qos(b.stream_id, q)) {
            reply(wc.cmd, result_status::ok, {});
        } else {
            reply(wc.cmd, result_status::no_capacity,
                  "set_qos.stream_id: the stream is not open and the table of pending policies is full");
        }
        return;
    }
    case worker_op::set_windows: {
        const api::set_windows_body& b = wc.cmd.set_windows;
        bool ok = false;
        switch (b.scope) {
        case api::window_scope::connection:
            ok = c.conn->set_connection_window(b.window_bytes, now);
            break;
        case api::window_scope::stream:
            ok = c.conn->set_stream_window(b.stream_id, b.window_bytes, now);
            break;
        case api::window_scope::new_streams:
            ok = c.conn->set_initial_stream_window(b.window_bytes);
            break;
        }
        if (ok) {
            if (!c.touched) { // a grown window goes out on the next flush
                c.touched = true;
                _touched.push_back(&c);
            }
            reply(wc.cmd, result_status::ok, {});
        } else {
            reply(wc.cmd, b.scope == api::window_scope::stream ? result_status::unknown_connection
                                                                : result_status::invalid_command,
                  b.scope == api::window_scope::stream ? "set_windows.stream_id: the stream is not open"
                                                       : "set_windows.window_bytes: refused by the transport");
        }
        return;
    }
    case worker_op::install_connection:
    case worker_op::publish_counters:
        return; // handled above
    }
}

// Paths and connections being removed: done when drained (nothing in flight, the endpoint
// idle) or at their deadline, whichever comes first.
void worker::poll_draining(transport::time_ns now) noexcept {
    std::size_t keep = 0;
    for (std::size_t i = 0; i < _draining.size(); ++i) {
        conn_ctx& c = *_draining[i];
        bool still = false;
        for (std::size_t r = 0; r < c.routes.size();) {
            auto& route = c.routes[r];
            if (!route.removing) {
                ++r;
                continue;
            }
            transport::path_info info;
            std::uint64_t in_flight = 0;
            for (std::size_t k = 0; c.conn->path_info_at(k, info); ++k) {
                if (info.id == route.id) {
                    in_flight = info.bytes_in_flight;
                    break;
                }
            }
            if (in_flight != 0 && now < route.drain_deadline) {
                still = true;
                ++r;
                continue;
            }
            const api::command answered = route.remove_command;
            const transport::path_id id = route.id;
            remove_route(c, id, now); // erases c.routes[r]
            reply(answered, api::result_status::ok, in_flight == 0 ? std::string_view{} : "drain timeout: in-flight data re-sent on other paths");
            raise(api::make_path_down(c.id, id, api::path_down_kind::removed, "removed by the control plane"));
        }
        if (c.removing) {
            std::uint64_t in_flight = 0;
            transport::path_info info;
            for (std::size_t k = 0; c.conn->path_info_at(k, info); ++k) {
                in_flight += info.bytes_in_flight;
            }
            if ((in_flight == 0 && c.ep->idle()) || now >= c.drain_deadline || c.conn->closed()) {
                finish_removal(c, now); // c is gone after this
                continue;
            }
            still = true;
        }
        if (still) {
            _draining[keep++] = &c;
        } else {
            c.draining = false;
        }
    }
    _draining.resize(keep);
}

// Closes the connection (CONNECTION_CLOSE on its paths), takes it off this worker and hands it
// back to the main lcore, which removes its bindings and frees it.
void worker::finish_removal(conn_ctx& c, transport::time_ns now) noexcept {
    if (!c.conn->closed()) {
        c.conn->close(transport::close_code::no_error, "removed by the control plane", now);
        c.conn->flush(now);
    }
    for (auto& r : c.routes) {
        if (r.counters_slot != connection_state::no_counters_slot) {
            _config.counters->clear_path(r.counters_slot);
            _free_path_slots.push_back(r.counters_slot);
            r.counters_slot = connection_state::no_counters_slot;
        }
        raise(api::make_path_down(c.id, r.id, api::path_down_kind::removed, "connection removed by the control plane"));
    }
    if (_config.counters != nullptr && c.index < _config.counters->max_connections()) {
        _config.counters->clear_connection(c.index);
    }
    _wheel.remove(*c.conn);
    if (c.touched) {
        std::erase(_touched, &c);
        c.touched = false;
    }
    c.installed = false;
    const std::uint32_t index = c.index;
    const api::command answered = c.remove_command;
    connection_ptr owned = std::move(_conns[index]);
    reply(answered, api::result_status::ok, {}, owned.release());
}

void worker::reply(const api::command& answered, api::result_status status, std::string_view reason,
                   connection_state* ctx) noexcept {
    worker_reply r{};
    r.ev = api::make_command_result(answered, status, reason);
    r.worker = _config.id;
    r.connection = ctx != nullptr ? ctx->index : 0;
    r.ctx = ctx;
    // The reply ring holds twice the command ring, and events leave half of it to answers:
    // an answer always fits (kwikd.cpp sizes them).
    if (!_config.mailbox.answer(r)) {
        ++_counters.events_dropped;
        delete ctx; // not reachable with the sizes above; never leak
    }
}

void worker::raise(const api::event& e) noexcept {
    if (!_config.mailbox.valid()) {
        return;
    }
    // Leave room for command answers (see reply()).
    if (rte_ring_free_count(_config.mailbox.replies) <= rte_ring_get_capacity(_config.mailbox.replies) / 2) {
        ++_counters.events_dropped;
        return;
    }
    worker_reply r{};
    r.ev = e;
    r.worker = _config.id;
    if (_config.mailbox.answer(r)) {
        ++_counters.events_sent;
    } else {
        ++_counters.events_dropped;
    }
}

// At most one event per tuple per unknown_path_interval, counting the datagrams between them.
// A direct-mapped table: a new tuple on a busy slot takes it over (the old tuple's pending count
// goes with the next event for it). The drop itself is always counted (drop_reason::unknown_path).
void worker::note_unknown_path(std::size_t port, const five_tuple& t, transport::time_ns now) noexcept {
    if (!_config.mailbox.valid()) {
        return;
    }
    const std::uint32_t h = rte_hash_crc(&t, path_key_bytes, 0);
    unknown_tuple& u = _unknown[h % unknown_table_size];
    if (!u.used || !(u.tuple == t)) {
        u = unknown_tuple{};
        u.used = true;
        u.tuple = t;
        u.first_seen = now;
        u.port = static_cast<std::uint16_t>(port);
    }
    ++u.count;
    u.last_seen = now;
    if (u.reported != 0 && now - u.reported < _config.unknown_path_interval) {
        return;
    }
    const api::five_tuple at = to_api(t);
    raise(api::make_unknown_path(at, u.count, u.port, static_cast<std::uint16_t>(_config.id),
                                 static_cast<std::uint64_t>(u.first_seen), static_cast<std::uint64_t>(u.last_seen)));
    u.reported = now;
    u.count = 0;
    u.first_seen = now;
}

// ---------------------------------------------------------------------------------------------
// Counters into the shared region (this worker's block; it is its only writer)

void worker::publish_counters(transport::time_ns now) noexcept {
    api::counters_writer& w = *_config.counters;
    _next_publish = now + _config.publish_interval;
    api::worker_counters wc{};
    wc.polls = _counters.loops;
    wc.busy_polls = _counters.busy_loops;
    wc.handoff_sent = _counters.handed_off;
    wc.handoff_received = _counters.handoffs_received;
    wc.handoff_dropped = _counters.drops[static_cast<std::size_t>(kdp::drop_reason::handoff_ring_full)];
    wc.events_dropped = _counters.events_dropped;
    wc.commands_applied = _counters.commands_applied;
    w.begin_publish();
    w.store_worker(wc);
    for (std::size_t p = 0; p < _config.ports.size() && p < w.ports(); ++p) {
        api::port_counters pc{};
        const auto& c = _counters.ports[p];
        pc.rx_packets = c.rx_packets;
        pc.rx_bytes = c.rx_bytes;
        pc.tx_packets = c.tx_packets;
        pc.tx_bytes = c.tx_bytes;
        pc.rx_dropped = c.rx_dropped;
        pc.tx_dropped = c.tx_dropped;
        if (p == _config.exception_port) { // the exception interface is bridged to this port
            pc.exception_rx = _counters.exception_out;
            pc.exception_tx = _counters.exception_in;
        }
        w.store_port(static_cast<std::uint32_t>(p), pc);
    }
    std::array<std::uint64_t, kdp::drop_reason_count> by_reason{};
    for (std::size_t r = 0; r < kdp::drop_reason_count; ++r) {
        by_reason[r] = _counters.drops[r] + _counters.classified.drops[r];
    }
    for (const auto& c : _conns) {
        if (c) {
            for (std::size_t r = 0; r < kdp::drop_reason_count; ++r) {
                by_reason[r] += c->conn->counters().drops[r];
            }
        }
    }
    w.store_drops(by_reason);
    w.end_publish(static_cast<std::uint64_t>(now));
    for (const auto& c : _conns) {
        if (c && c->index < w.max_connections()) {
            publish_connection(*c, now);
        }
    }
}

void worker::publish_connection(const conn_ctx& c, transport::time_ns now) noexcept {
    api::counters_writer& w = *_config.counters;
    api::connection_counters cc{};
    cc.connection_id = c.id;
    const transport::connection_counters& t = c.conn->counters();
    cc.delivered_bytes = t.stream_bytes_delivered;
    cc.retransmitted_bytes = t.stream_bytes_retransmitted;
    cc.flow_control_blocked = t.flow_blocked;
    cc.streams_opened = t.streams_opened;
    cc.streams_closed = t.streams_closed;
    cc.open_streams = c.conn->open_streams();
    cc.updated_ns = static_cast<std::uint64_t>(now);
    transport::path_info info;
    for (std::size_t k = 0; c.conn->path_info_at(k, info); ++k) {
        cc.rx_packets += info.counters.packets_received;
        cc.rx_bytes += info.counters.bytes_received;
        cc.tx_packets += info.counters.packets_sent;
        cc.tx_bytes += info.counters.bytes_sent;
        cc.retransmitted_packets += info.counters.retransmitted_frames;
        cc.active_paths += info.status == transport::path_status::active ? 1 : 0;
        for (const auto& r : c.routes) {
            if (r.id != info.id || r.counters_slot == connection_state::no_counters_slot) {
                continue;
            }
            api::path_counters pc{};
            pc.connection_id = c.id;
            pc.path_id = info.id;
            pc.status = static_cast<std::uint64_t>(info.status);
            pc.rx_packets = info.counters.packets_received;
            pc.rx_bytes = info.counters.bytes_received;
            pc.tx_packets = info.counters.packets_sent;
            pc.tx_bytes = info.counters.bytes_sent;
            pc.lost_packets = info.counters.packets_lost;
            pc.retransmitted_packets = info.counters.retransmitted_frames;
            pc.handoff_packets = r.handoff_packets;
            pc.smoothed_rtt_ns = static_cast<std::uint64_t>(info.srtt);
            pc.min_rtt_ns = static_cast<std::uint64_t>(info.min_rtt);
            pc.rtt_var_ns = static_cast<std::uint64_t>(info.rttvar);
            pc.cwnd_bytes = info.cwnd;
            pc.updated_ns = static_cast<std::uint64_t>(now);
            w.store_path(r.counters_slot, pc);
        }
    }
    w.store_connection(c.index, cc);
}

} // namespace kwik::engine
