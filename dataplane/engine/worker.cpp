// The worker's loop and its per-burst pipeline. The order of work in poll() is the order a
// packet travels: ports' rx bursts, hand-offs from other workers, the exception interface,
// connection timers, endpoints, tx bursts, then housekeeping (a slice of the neighbour tables
// every millisecond, counters) and one RCU quiescent state.
#include "dataplane/engine/worker.hpp"

#include <rte_cycles.h>
#include <rte_hash_crc.h>
#include <rte_ip.h>
#include <rte_prefetch.h>

#include <sys/prctl.h>
#include <time.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <filesystem>

#include "dataplane/engine/idle_backoff.hpp"
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

} // namespace

transport::time_ns now_ns() noexcept {
    static const double ns_per_cycle = 1e9 / double(rte_get_tsc_hz());
    return static_cast<transport::time_ns>(double(rte_get_tsc_cycles()) * ns_per_cycle);
}

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
    _unsent.reserve(1024);
    _counters_requests.reserve(16);
    _unknown_budget = _config.unknown_path_events_per_sec;
    _publish_cursor = _conns.size();
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
    c->conn = std::make_unique<transport::connection>(tc, cb, now_ns());
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

bool worker::install(connection_ptr& c, std::string* error) {
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
        publish_connection(*c, now_ns());
    }
    _conns[index] = std::move(c);
    return true;
}

bool worker::add_connection(const connection_spec& spec, std::string* error) {
    connection_ptr c = build_connection(spec, error);
    return c != nullptr && install(c, error);
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
    if (apply_add_path(*_conns[spec.connection], wc, now_ns(), error) != api::result_status::ok) {
        return false;
    }
    path_binding b{static_cast<std::uint16_t>(_config.id), spec.connection, spec.id, spec.tuple};
    if (!_config.paths->add(b, error)) {
        remove_route(*_conns[spec.connection], spec.id, now_ns());
        return false;
    }
    return true;
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
    if (_config.idle_sleep_max == 0) {
        while (!stop.load(std::memory_order_relaxed)) {
            poll(now_ns());
        }
    } else {
        run_adaptive(stop);
    }
    flush_tx();
    _config.paths->offline(_config.id);
    _rcu_registered = false;
}

// Adaptive polling: the busy loop's passes, with a sleep after a run of empty ones
// (idle_backoff). A pass did work when it received, took hand-offs or exception packets (all
// counted in busy_loops) or applied a command. A sleep ends by the worker's next due work and
// by idle_sleep_max, which bounds how late a command or a packet is seen, and how long an RCU
// grace period (path_table's synchronize on a full table) waits for this worker; the time the
// kernel takes to wake the thread comes on top (timer slack set to 1 us below, from 50 us).
void worker::run_adaptive(const std::atomic<bool>& stop) noexcept {
    ::prctl(PR_SET_TIMERSLACK, 1000UL, 0UL, 0UL, 0UL);
    idle_backoff backoff(_config.idle_sleep_max);
    while (!stop.load(std::memory_order_relaxed)) {
        const std::uint64_t busy = _counters.busy_loops;
        const std::uint64_t commands = _counters.commands_applied;
        poll(now_ns());
        const bool worked = _counters.busy_loops != busy || _counters.commands_applied != commands;
        const transport::time_ns now = now_ns();
        const transport::time_ns sleep = backoff.after_pass(worked, now, next_due(now));
        if (sleep == 0) {
            continue;
        }
        const timespec ts{static_cast<time_t>(sleep / transport::sec), static_cast<long>(sleep % transport::sec)};
        ::clock_nanosleep(CLOCK_MONOTONIC, 0, &ts, nullptr);
        ++_counters.idle_sleeps;
        _counters.idle_sleep_ns += now_ns() - now;
    }
}

transport::time_ns worker::next_due(transport::time_ns now) const noexcept {
    if ((_config.counters != nullptr && (_publish_cursor < _conns.size() || !_counters_requests.empty()))) {
        return now; // a publish in slices goes on every pass
    }
    transport::time_ns due = std::min(_wheel.next_expiry(), _next_sweep);
    if (_config.counters != nullptr) {
        due = std::min(due, _next_publish);
    }
    if (!_draining.empty()) {
        due = std::min(due, _next_drain_check);
    }
    return due;
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
            // Re-classify on the port it came in on (its index here: the sender wrote it into
            // m->port, which holds the ethdev id until then): cheap, and keeps no other metadata.
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
    for (connection_state* c : _touched) {
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
    if (_config.counters != nullptr) {
        if (now >= _next_publish) {
            publish_counters(now);
        }
        if (_publish_cursor < _conns.size()) {
            publish_slice(now);
        }
        if (!_counters_requests.empty() && _publish_cursor >= _conns.size()) {
            answer_counters_requests();
        }
    }
    if (_rcu_registered) {
        _config.paths->quiescent(_config.id);
    }
}

template <bool RxOffload>
void worker::process_burst(std::size_t port, std::span<rte_mbuf*> pkts, transport::time_ns now,
                           bool handed_off) noexcept {
    // A member, not a local: a local array of 64 packet_meta would be zeroed every burst
    // (4 KiB, about 140 instructions per packet) though classify() writes every entry it uses.
    std::array<packet_meta, max_burst>& meta = _meta;
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
                m->port = static_cast<std::uint16_t>(port); // the owner's index of the port, not the ethdev id
                if (b->owner_worker < _config.handoff.size() && _config.handoff[b->owner_worker] != nullptr &&
                    rte_ring_enqueue(_config.handoff[b->owner_worker], m) == 0) {
                    ++_counters.handed_off;
                } else {
                    drop_rx(port, m, kdp::drop_reason::handoff_ring_full);
                }
            } else if (b->connection >= _conns.size() || !_conns[b->connection]) {
                drop_rx(port, m, kdp::drop_reason::unknown_path);
            } else {
                deliver(port, *_conns[b->connection], *b, m, meta[i], now, handed_off);
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

void worker::deliver(std::size_t port, connection_state& c, const path_binding& b, rte_mbuf* m, const packet_meta& meta,
                     transport::time_ns now, bool handed_off) noexcept {
    if (c.conn->closed()) [[unlikely]] { // bound until the control plane removes it
        drop_rx(port, m, kdp::drop_reason::connection_closed);
        return;
    }
    if (!contiguous(m, meta)) [[unlikely]] {
        // A jumbo frame the port scattered over several segments: the transport takes one
        // contiguous datagram, so it is copied once into an application buffer (16 KiB room).
        std::uint8_t* flat = nullptr;
        auto* copy = static_cast<rte_mbuf*>(mbuf_allocate(_config.app_pool, meta.payload_length, &flat));
        if (copy == nullptr) {
            drop_rx(port, m, kdp::drop_reason::payload_chained);
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
        deliver(port, c, b, m, flat_meta, now, handed_off);
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
bool worker::transmit(connection_state& c, transport::path_id path, std::span<const std::uint8_t> packet) noexcept {
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
        if (_config.ports[port].kernel_neighbors) {
            // Rate-limited by the table (once per request_interval per next hop); a full ring
            // loses this one and the next interval asks again.
            if (_config.mailbox.want({res.request_target, static_cast<std::uint32_t>(port)})) {
                ++_counters.neighbor_wants;
            } else {
                ++_counters.neighbor_wants_lost;
            }
        } else {
            send_neighbor_request(port, res.request_target);
        }
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
// Connection callbacks (ctx is the connection_state)

void worker::cb_transmit(void* ctx, transport::path_id path, std::span<const std::uint8_t> packet) {
    auto* c = static_cast<connection_state*>(ctx);
    c->owner->transmit(*c, path, packet);
}

void* worker::cb_allocate(void* ctx, std::size_t size, std::uint8_t** data) {
    auto* c = static_cast<connection_state*>(ctx);
    return mbuf_allocate(c->owner->_config.app_pool, size, data);
}

void worker::cb_data(void* ctx, transport::stream_id id, std::uint64_t offset, std::span<const std::uint8_t> data) {
    static_cast<connection_state*>(ctx)->ep->on_data(id, offset, data);
}

void worker::cb_readable(void* ctx, transport::stream_id id) { static_cast<connection_state*>(ctx)->ep->on_readable(id); }

void worker::cb_finished(void* ctx, transport::stream_id id) { static_cast<connection_state*>(ctx)->ep->on_finished(id); }

void worker::cb_opened(void* ctx, transport::stream_id id) { static_cast<connection_state*>(ctx)->ep->on_stream_opened(id); }

void worker::cb_reset(void* ctx, transport::stream_id id, std::uint64_t code) {
    static_cast<connection_state*>(ctx)->ep->on_reset(id, code);
}

} // namespace kwik::engine
