// kwikd: the Kwik data plane process. Reads its configuration (deploy/kwikd.toml documents
// it), starts EAL, claims its shared-memory region (a second kwikd on the same name is
// refused), brings the ports up, binds the configured connections and paths, launches one
// worker per worker lcore and keeps the main lcore for housekeeping: counters into the shared
// region and a summary line on stdout every stats interval. SIGINT/SIGTERM stop it cleanly:
// workers finish their burst and transmit what is queued, then final counters are printed.
#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_lcore.h>
#include <rte_mbuf.h>
#include <rte_ring.h>
#include <rte_telemetry.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "dataplane/api/counters.hpp"
#include "dataplane/api/shm_region.hpp"
#include "dataplane/engine/config.hpp"
#include "dataplane/engine/worker.hpp"
#include "drivers/flow_steering.hpp"

namespace {

using namespace kwik;

std::atomic<bool> g_stop{false};

// What DPDK telemetry (dpdk-telemetry.py, or any client of the telemetry socket) reads: the
// workers' own counters, read like the main lcore reads them (single writer per counter).
// The mutex keeps shutdown from destroying workers under a telemetry request (the telemetry
// thread is not a worker: a lock here costs the data plane nothing).
std::mutex g_telemetry_lock;
std::vector<engine::worker*> g_workers;

int telemetry_workers(const char*, const char*, rte_tel_data* d) {
    const std::lock_guard<std::mutex> hold(g_telemetry_lock);
    rte_tel_data_start_dict(d);
    std::uint64_t rx = 0, tx = 0, kwik = 0, handed = 0, polls = 0, busy = 0, replies = 0, exc = 0;
    for (const engine::worker* w : g_workers) {
        const engine::worker_counters& c = w->counters();
        rx += c.rx_packets;
        tx += c.tx_packets;
        kwik += c.kwik_packets;
        handed += c.handed_off;
        polls += c.loops;
        busy += c.busy_loops;
        replies += c.replies;
        exc += c.exception_out;
    }
    rte_tel_data_add_dict_u64(d, "workers", g_workers.size());
    rte_tel_data_add_dict_u64(d, "rx_packets", rx);
    rte_tel_data_add_dict_u64(d, "tx_packets", tx);
    rte_tel_data_add_dict_u64(d, "kwik_packets", kwik);
    rte_tel_data_add_dict_u64(d, "handed_off", handed);
    rte_tel_data_add_dict_u64(d, "polls", polls);
    rte_tel_data_add_dict_u64(d, "busy_polls", busy);
    rte_tel_data_add_dict_u64(d, "replies", replies);
    rte_tel_data_add_dict_u64(d, "exception_out", exc);
    return 0;
}

// Every drop reason with a non-zero count, summed over the workers (classifier and engine).
int telemetry_drops(const char*, const char*, rte_tel_data* d) {
    const std::lock_guard<std::mutex> hold(g_telemetry_lock);
    rte_tel_data_start_dict(d);
    for (std::size_t r = 0; r < kdp::drop_reason_count; ++r) {
        std::uint64_t n = 0;
        for (const engine::worker* w : g_workers) {
            n += w->counters().drops[r] + w->counters().classified.drops[r];
        }
        if (n != 0) {
            rte_tel_data_add_dict_u64(d, std::string(kdp::to_string(static_cast<kdp::drop_reason>(r))).c_str(), n);
        }
    }
    return 0;
}

extern "C" void on_signal(int) { g_stop.store(true); }

struct launch {
    engine::worker* w;
    const std::atomic<bool>* stop;
};

int worker_main(void* arg) {
    auto* l = static_cast<launch*>(arg);
    l->w->run(*l->stop);
    return 0;
}

engine::endpoint_kind endpoint_of(engine::stream_endpoint e) {
    switch (e) {
    case engine::stream_endpoint::echo:
        return engine::endpoint_kind::echo;
    case engine::stream_endpoint::pattern:
        return engine::endpoint_kind::pattern;
    case engine::stream_endpoint::file_store:
        return engine::endpoint_kind::file_store;
    default:
        return engine::endpoint_kind::discard;
    }
}

std::uint64_t total_drops(const engine::worker_counters& c, const transport::connection* const* conns, std::size_t n) {
    std::uint64_t d = 0;
    for (auto x : c.drops) {
        d += x;
    }
    for (auto x : c.classified.drops) {
        d += x;
    }
    for (std::size_t i = 0; i < n; ++i) {
        if (conns[i] != nullptr) {
            for (auto x : conns[i]->counters().drops) {
                d += x;
            }
        }
    }
    return d;
}

int fail(const std::string& what) {
    std::fprintf(stderr, "kwikd: %s\n", what.c_str());
    return 1;
}

} // namespace

int main(int argc, char** argv) {
    engine::config_result loaded = engine::load_config(argc, argv);
    if (!loaded.ok()) {
        std::fprintf(loaded.error().exit_code == 0 ? stdout : stderr, "%s\n", loaded.message().c_str());
        return loaded.error().exit_code;
    }
    const engine::kwikd_config cfg = std::move(loaded).value();
    const std::vector<std::string> eal_args = engine::eal_arguments(cfg);
    if (cfg.check_only) {
        std::printf("%s\n# EAL arguments:", engine::to_toml(cfg).c_str());
        for (const auto& a : eal_args) {
            std::printf(" %s", a.c_str());
        }
        std::printf("\n");
        return 0;
    }
    std::vector<char*> eal_argv;
    for (const auto& a : eal_args) {
        eal_argv.push_back(const_cast<char*>(a.c_str()));
    }
    if (rte_eal_init(static_cast<int>(eal_argv.size()), eal_argv.data()) < 0) {
        return fail(std::string("EAL initialisation failed: ") + rte_strerror(rte_errno));
    }
    const std::size_t workers = cfg.kwikd.worker_lcores.size();

    // The shared region first: a second kwikd on the same name stops here, before any port.
    api::region_config rc;
    rc.name = cfg.kwikd.name;
    rc.mode = static_cast<mode_t>(cfg.kwikd.shm_mode);
    rc.counters.workers = static_cast<std::uint32_t>(workers);
    rc.counters.ports = static_cast<std::uint32_t>(cfg.ports.size());
    rc.counters.max_connections = std::min<std::uint32_t>(cfg.limits.max_connections, 4096);
    rc.counters.max_paths = std::min<std::uint32_t>(cfg.limits.max_paths, 16384);
    auto region = api::shm_region::create(rc);
    if (!region.ok()) {
        rte_eal_cleanup();
        return fail(region.message());
    }

    // Pools: packets (one segment holds a whole frame of the largest MTU), endpoint data.
    std::uint32_t max_mtu = 1500;
    for (const auto& p : cfg.ports) {
        max_mtu = std::max<std::uint32_t>(max_mtu, p.mtu);
    }
    const auto room = static_cast<std::uint16_t>(std::max<std::uint32_t>(RTE_MBUF_DEFAULT_BUF_SIZE,
                                                                          max_mtu + 18 + 4 + RTE_PKTMBUF_HEADROOM));
    rte_mempool* pool = rte_pktmbuf_pool_create("kwik_pkts", cfg.limits.mbufs, cfg.limits.mbuf_cache, 0, room,
                                                static_cast<int>(rte_socket_id()));
    rte_mempool* app_pool = rte_pktmbuf_pool_create("kwik_app", 4095, 64, 0, 16384 + RTE_PKTMBUF_HEADROOM,
                                                    static_cast<int>(rte_socket_id()));
    if (pool == nullptr || app_pool == nullptr) {
        return fail(std::string("mbuf pools: ") + rte_strerror(rte_errno) + " (raise kwikd.memory_mb or lower limits.mbufs)");
    }

    // Ports, each with one queue pair per worker.
    std::vector<drivers::port> ports;
    std::vector<std::unique_ptr<engine::classifier>> classifiers;
    for (const auto& ps : cfg.ports) {
        drivers::port_config pc;
        pc.device = std::string(engine::device_name(ps.device));
        pc.rx_queues = ps.rx_queues;
        pc.tx_queues = static_cast<std::uint16_t>(workers);
        pc.rx_desc = ps.rx_desc;
        pc.tx_desc = ps.tx_desc;
        pc.mtu = ps.mtu;
        pc.rss = ps.rss;
        pc.checksum_offload = ps.checksum_offload;
        pc.promiscuous = ps.promiscuous;
        pc.pool = pool;
        auto opened = drivers::open_port(pc);
        if (!opened.ok()) {
            return fail(ps.name + ": " + opened.message());
        }
        std::printf("%s", opened->report().c_str());
        engine::classifier_config cc;
        std::memcpy(cc.mac.bytes.data(), opened->mac().addr_bytes, 6);
        for (auto kp : ps.kwik_ports) {
            if (!cc.add_kwik_port(kp)) {
                return fail(ps.name + ".kwik_ports: more than the classifier holds");
            }
        }
        for (const auto& a : ps.addresses) {
            if (!cc.add_address(a.address)) {
                return fail(ps.name + ".addresses: more than the classifier holds");
            }
        }
        classifiers.push_back(std::make_unique<engine::classifier>(cc));
        ports.push_back(std::move(opened).value());
    }
    std::optional<drivers::port> exception;
    if (cfg.exception.enabled()) {
        drivers::port_config pc;
        pc.device = std::string(engine::device_name(cfg.exception.device));
        pc.pool = pool;
        pc.rss = false;
        pc.tx_queues = static_cast<std::uint16_t>(workers);
        auto opened = drivers::open_port(pc);
        if (!opened.ok()) {
            return fail("exception: " + opened.message());
        }
        exception = std::move(opened).value();
    }

    std::string error;
    std::unique_ptr<engine::path_table> paths(engine::path_table::create(
        cfg.kwikd.name + "_paths", std::max<std::uint32_t>(cfg.limits.max_paths, 64), static_cast<int>(rte_socket_id()),
        static_cast<std::uint32_t>(workers), &error));
    if (!paths) {
        return fail(error);
    }
    std::vector<rte_ring*> handoff;
    for (std::size_t w = 0; w < workers; ++w) {
        const std::string name = cfg.kwikd.name + "_handoff" + std::to_string(w);
        handoff.push_back(rte_ring_create(name.c_str(), 4096, static_cast<int>(rte_socket_id()), RING_F_SC_DEQ));
        if (handoff.back() == nullptr) {
            return fail(name + ": " + rte_strerror(rte_errno));
        }
    }

    // Workers: worker w polls queue w of every port (RSS spreads paths over the queues).
    std::vector<std::unique_ptr<engine::worker>> ws;
    for (std::size_t w = 0; w < workers; ++w) {
        engine::worker_config wc;
        wc.id = static_cast<unsigned>(w);
        for (std::size_t p = 0; p < ports.size(); ++p) {
            engine::worker_port wp;
            wp.queue = ports[p].queue(static_cast<std::uint16_t>(w)); // tx queue w; rx queue w if it exists
            wp.poll_rx = w < ports[p].rx_queues();
            std::memcpy(wp.mac.bytes.data(), ports[p].mac().addr_bytes, 6);
            wp.classify = classifiers[p].get();
            wp.rx_checksum_offload = ports[p].capabilities().rx_ipv4_checksum && ports[p].capabilities().rx_udp_checksum;
            wp.tx_ipv4_checksum = ports[p].capabilities().tx_ipv4_checksum;
            wp.tx_udp_checksum = ports[p].capabilities().tx_udp_checksum;
            wc.ports.push_back(wp);
        }
        wc.paths = paths.get();
        wc.tx_pool = pool;
        wc.app_pool = app_pool;
        wc.handoff = handoff;
        wc.burst = cfg.limits.burst;
        if (exception && w == 0) {
            wc.exception = exception->queue(0);
        }
        ws.push_back(std::make_unique<engine::worker>(wc));
    }

    // Connections from the configuration, spread over the workers. Each path is steered to its
    // owner's queue by rte_flow where the port can; elsewhere the worker that receives it hands
    // it to the owner over the hand-off ring. Both are counted and reported here.
    std::size_t steered = 0, handed = 0;
    auto to_flow = [](const engine::ip_address& a) {
        drivers::ip_address f;
        if (a.is_v4()) {
            f.version = 4;
            std::memcpy(f.bytes.data(), a.v4_bytes(), 4);
        } else {
            f.version = 6;
            f.bytes = a.bytes;
        }
        return f;
    };
    for (std::size_t ci = 0; ci < cfg.connections.size(); ++ci) {
        const auto& sc = cfg.connections[ci];
        engine::worker& owner = *ws[ci % workers];
        engine::connection_spec spec;
        spec.index = static_cast<std::uint32_t>(ci);
        spec.endpoint.kind = endpoint_of(sc.endpoint);
        spec.endpoint.directory = sc.directory;
        engine::apply_transport_defaults(cfg.transport, spec.transport);
        if (!owner.add_connection(spec, &error)) {
            return fail("connection[" + std::to_string(ci) + "] " + sc.id + ": " + error);
        }
        for (const auto& sp : sc.paths) {
            engine::path_spec ps;
            ps.connection = spec.index;
            ps.id = sp.path_id;
            ps.port = sp.port_index;
            ps.tuple.protocol = 17;
            ps.tuple.src = sp.remote.address;
            ps.tuple.src_port = sp.remote.port;
            ps.tuple.dst = sp.local.address;
            ps.tuple.dst_port = sp.local.port;
            if (!owner.add_path(ps, &error)) {
                return fail("connection[" + std::to_string(ci) + "] " + sc.id + ": " + error);
            }
            drivers::port& port = ports[sp.port_index];
            const auto queue = static_cast<std::uint16_t>(ci % workers);
            if (workers > 1 && queue < port.rx_queues()) {
                drivers::udp_5tuple t{to_flow(sp.remote.address), to_flow(sp.local.address), sp.remote.port,
                                      sp.local.port};
                auto rule = drivers::install_5tuple_rule(port, queue, t);
                rule.ok() ? ++steered : ++handed;
            } else {
                ++handed; // one worker: every queue is the owner's
            }
        }
    }

    std::vector<api::counters_writer> writers;
    for (std::size_t w = 0; w < workers; ++w) {
        auto cw = api::counters_writer::attach(*region, static_cast<std::uint32_t>(w));
        if (!cw.ok()) {
            return fail(cw.message());
        }
        writers.push_back(std::move(cw).value());
    }

    {
        const std::lock_guard<std::mutex> hold(g_telemetry_lock);
        for (auto& w : ws) {
            g_workers.push_back(w.get());
        }
    }
    rte_telemetry_register_cmd("/kwik/workers", telemetry_workers,
                               "kwikd worker counters summed over the workers. Takes no parameters");
    rte_telemetry_register_cmd("/kwik/drops", telemetry_drops,
                               "kwikd drops by reason, summed over the workers. Takes no parameters");
    std::signal(SIGINT, on_signal);
    std::signal(SIGTERM, on_signal);
    std::vector<launch> launches(workers);
    for (std::size_t w = 0; w < workers; ++w) {
        launches[w] = {ws[w].get(), &g_stop};
        const int ret = rte_eal_remote_launch(worker_main, &launches[w], cfg.kwikd.worker_lcores[w]);
        if (ret != 0) {
            g_stop = true;
            rte_eal_mp_wait_lcore();
            return fail("worker lcore " + std::to_string(cfg.kwikd.worker_lcores[w]) + ": " + rte_strerror(-ret));
        }
    }
    std::printf("kwikd: %zu worker(s), %zu port(s), %zu connection(s) running; shared memory /%s\n", workers,
                ports.size(), cfg.connections.size(), cfg.kwikd.name.c_str());
    std::printf("kwikd: paths steered to their owner's queue by rte_flow: %zu; by the hand-off ring or a single "
                "worker: %zu\n", steered, handed);
    std::fflush(stdout);

    // Housekeeping: counters into the shared region (the main lcore is their only writer: the
    // workers count on their own cache lines and are read here).
    auto publish = [&](bool print) {
        std::uint64_t rx = 0, tx = 0, drops = 0, kwik_pkts = 0;
        for (std::size_t w = 0; w < workers; ++w) {
            const engine::worker_counters& c = ws[w]->counters();
            api::worker_counters wc{};
            wc.polls = c.loops;
            wc.busy_polls = c.busy_loops;
            wc.handoff_sent = c.handed_off;
            wc.handoff_received = c.handoffs_received;
            writers[w].begin_publish();
            writers[w].store_worker(wc);
            for (std::size_t p = 0; p < ports.size() && p < engine::max_worker_ports; ++p) {
                api::port_counters pc{};
                pc.rx_packets = c.ports[p].rx_packets;
                pc.rx_bytes = c.ports[p].rx_bytes;
                pc.tx_packets = c.ports[p].tx_packets;
                pc.tx_bytes = c.ports[p].tx_bytes;
                pc.tx_dropped = c.ports[p].tx_dropped;
                if (p == 0) { // the exception interface is bridged to the first port
                    pc.exception_rx = c.exception_out;
                    pc.exception_tx = c.exception_in;
                }
                writers[w].store_port(static_cast<std::uint32_t>(p), pc);
            }
            std::array<std::uint64_t, kdp::drop_reason_count> by_reason{};
            for (std::size_t r = 0; r < kdp::drop_reason_count; ++r) {
                by_reason[r] = c.drops[r] + c.classified.drops[r];
            }
            writers[w].store_drops(by_reason);
            writers[w].end_publish(static_cast<std::uint64_t>(
                std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch()).count()));
            std::vector<const transport::connection*> conns;
            for (std::size_t ci = w; ci < cfg.connections.size(); ci += workers) {
                conns.push_back(ws[w]->connection_of(static_cast<std::uint32_t>(ci)));
            }
            rx += c.rx_packets;
            tx += c.tx_packets;
            kwik_pkts += c.kwik_packets;
            drops += total_drops(c, conns.data(), conns.size());
        }
        if (print) {
            std::printf("kwikd: rx %llu packets (%llu Kwik), tx %llu, dropped %llu\n", (unsigned long long)rx,
                        (unsigned long long)kwik_pkts, (unsigned long long)tx, (unsigned long long)drops);
            std::fflush(stdout);
        }
    };
    const auto interval = std::chrono::milliseconds(std::max<std::uint32_t>(cfg.kwikd.stats_interval_ms, 10));
    auto next = std::chrono::steady_clock::now() + interval;
    while (!g_stop.load()) {
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
        if (cfg.kwikd.stats_interval_ms != 0 && std::chrono::steady_clock::now() >= next) {
            publish(true);
            next += interval;
        }
    }
    rte_eal_mp_wait_lcore();
    publish(true);
    // Final per-reason drops, so a run's losses are accounted for by name.
    for (std::size_t w = 0; w < workers; ++w) {
        const engine::worker_counters& c = ws[w]->counters();
        for (std::size_t r = 0; r < kdp::drop_reason_count; ++r) {
            const std::uint64_t n = c.drops[r] + c.classified.drops[r];
            if (n != 0) {
                std::printf("kwikd: worker %zu dropped %llu: %s\n", w, (unsigned long long)n,
                            std::string(kdp::to_string(static_cast<kdp::drop_reason>(r))).c_str());
            }
        }
        for (std::size_t ci = w; ci < cfg.connections.size(); ci += workers) {
            const transport::connection* conn = ws[w]->connection_of(static_cast<std::uint32_t>(ci));
            const engine::endpoint* ep = ws[w]->endpoint_of(static_cast<std::uint32_t>(ci));
            if (conn == nullptr || ep == nullptr) {
                continue;
            }
            std::printf("kwikd: connection %s: %llu streams, %llu bytes received, %llu sent, %llu files written\n",
                        cfg.connections[ci].id.c_str(), (unsigned long long)ep->counters().streams,
                        (unsigned long long)ep->counters().bytes_received, (unsigned long long)ep->counters().bytes_sent,
                        (unsigned long long)ep->counters().files_written);
            for (std::size_t r = 0; r < kdp::drop_reason_count; ++r) {
                if (conn->counters().drops[r] != 0) {
                    std::printf("kwikd: connection %s dropped %llu: %s\n", cfg.connections[ci].id.c_str(),
                                (unsigned long long)conn->counters().drops[r],
                                std::string(kdp::to_string(static_cast<kdp::drop_reason>(r))).c_str());
                }
            }
        }
    }
    {
        const std::lock_guard<std::mutex> hold(g_telemetry_lock);
        g_workers.clear(); // telemetry reads nothing from here on
    }
    ws.clear();        // flushes what the workers still had queued
    for (auto& p : ports) {
        if (auto r = p.close(); !r.ok()) {
            std::fprintf(stderr, "kwikd: %s\n", r.message().c_str());
        }
    }
    if (exception) {
        if (auto r = exception->close(); !r.ok()) {
            std::fprintf(stderr, "kwikd: exception: %s\n", r.message().c_str());
        }
    }
    paths.reset();
    for (rte_ring* r : handoff) {
        rte_ring_free(r);
    }
    rte_eal_cleanup();
    std::printf("kwikd: stopped\n");
    return 0;
}
