// kwikd: the Kwik data plane process. Reads its configuration (deploy/kwikd.toml documents
// it), starts EAL, claims its shared-memory region (a second kwikd on the same name is
// refused), brings the ports up, binds the configured connections and paths, launches one
// worker per worker lcore and keeps the main lcore for housekeeping: counters into the shared
// region and a summary line on stdout every stats interval. SIGINT/SIGTERM stop it cleanly:
// workers finish their burst and transmit what is queued, then final counters are printed.
// Under systemd (common/sd_daemon.hpp): every line, DPDK's too, carries its journal priority;
// READY=1 once workers run, WATCHDOG=1 while every worker goes round its loop, STOPPING=1.
#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_ethdev.h>
#include <rte_lcore.h>
#include <rte_log.h>
#include <rte_mbuf.h>
#include <rte_ring.h>
#include <rte_telemetry.h>

#include <net/if.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <thread>
#include <vector>

#include "common/sd_daemon.hpp"
#include "dataplane/api/command_ring.hpp"
#include "dataplane/api/counters.hpp"
#include "dataplane/api/shm_region.hpp"
#include "dataplane/engine/command_handler.hpp"
#include "dataplane/engine/config.hpp"
#include "dataplane/engine/kernel_neighbors.hpp"
#include "dataplane/engine/worker.hpp"
#include "drivers/af_xdp/af_xdp_port.hpp"

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
    std::uint64_t sleeps = 0, slept_ns = 0, wants = 0, wants_lost = 0;
    engine::neighbor_counters nb;
    for (const engine::worker* w : g_workers) {
        const engine::worker_counters& c = w->counters();
        nb.requests += c.neighbor.requests;
        nb.learned += c.neighbor.learned;
        nb.resolved += c.neighbor.resolved;
        nb.held += c.neighbor.held;
        nb.released += c.neighbor.released;
        nb.expired += c.neighbor.expired;
        wants += c.neighbor_wants;
        wants_lost += c.neighbor_wants_lost;
        rx += c.rx_packets;
        tx += c.tx_packets;
        kwik += c.kwik_packets;
        handed += c.handed_off;
        polls += c.loops;
        busy += c.busy_loops;
        sleeps += c.idle_sleeps;
        slept_ns += c.idle_sleep_ns;
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
    rte_tel_data_add_dict_u64(d, "idle_sleeps", sleeps); // adaptive polling (kwikd.poll_mode)
    rte_tel_data_add_dict_u64(d, "idle_sleep_ns", slept_ns);
    rte_tel_data_add_dict_u64(d, "replies", replies);
    rte_tel_data_add_dict_u64(d, "exception_out", exc);
    // Transmit-side neighbour resolution: ARP requests / solicitations asked for, entries
    // learned and completed, packets held for an answer, released by one, entries expired.
    rte_tel_data_add_dict_u64(d, "neighbor_requests", nb.requests);
    rte_tel_data_add_dict_u64(d, "neighbor_learned", nb.learned);
    rte_tel_data_add_dict_u64(d, "neighbor_resolved", nb.resolved);
    rte_tel_data_add_dict_u64(d, "neighbor_held", nb.held);
    rte_tel_data_add_dict_u64(d, "neighbor_released", nb.released);
    rte_tel_data_add_dict_u64(d, "neighbor_expired", nb.expired);
    // Ports whose neighbours the kernel owns (net_af_xdp): next hops posted to the main lcore
    // instead of a request on the wire, and those its full ring lost (asked again a second on).
    rte_tel_data_add_dict_u64(d, "neighbor_kernel_wants", wants);
    rte_tel_data_add_dict_u64(d, "neighbor_kernel_wants_lost", wants_lost);
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

// Per-connection and per-path counters, read from the shared region as any other process reads
// them (seqlocks: no lock against the workers). Telemetry dicts hold up to
// RTE_TEL_MAX_DICT_ENTRIES entries; past that, "truncated" says how many were left out.
const api::shm_region* g_region = nullptr;

template <class Entry, class Fill>
int telemetry_table(rte_tel_data* d, const std::vector<Entry>& entries, Fill fill) {
    rte_tel_data_start_dict(d);
    std::size_t shown = 0;
    for (const Entry& e : entries) {
        if (shown + 1 >= RTE_TEL_MAX_DICT_ENTRIES) {
            rte_tel_data_add_dict_u64(d, "truncated", entries.size() - shown);
            break;
        }
        rte_tel_data* c = rte_tel_data_alloc();
        if (c == nullptr) {
            return -ENOMEM;
        }
        rte_tel_data_start_dict(c);
        const std::string key = fill(e, c);
        rte_tel_data_add_dict_container(d, key.c_str(), c, 0);
        ++shown;
    }
    return 0;
}

// The totals of the counters region, or a negative errno for telemetry. Caller holds the lock.
int read_totals(api::counters_totals& out) {
    if (g_region == nullptr) {
        return -ENODEV;
    }
    auto reader = api::counters_reader::attach(*g_region);
    if (!reader.ok()) {
        return -EIO;
    }
    out = reader->read_totals();
    return 0;
}

int telemetry_connections(const char*, const char*, rte_tel_data* d) {
    const std::lock_guard<std::mutex> hold(g_telemetry_lock);
    api::counters_totals totals;
    if (const int rc = read_totals(totals); rc != 0) {
        return rc;
    }
    return telemetry_table(d, totals.connections, [](const api::connection_counters& c, rte_tel_data* t) {
        rte_tel_data_add_dict_u64(t, "rx_packets", c.rx_packets);
        rte_tel_data_add_dict_u64(t, "rx_bytes", c.rx_bytes);
        rte_tel_data_add_dict_u64(t, "tx_packets", c.tx_packets);
        rte_tel_data_add_dict_u64(t, "tx_bytes", c.tx_bytes);
        rte_tel_data_add_dict_u64(t, "delivered_bytes", c.delivered_bytes);
        rte_tel_data_add_dict_u64(t, "streams_opened", c.streams_opened);
        rte_tel_data_add_dict_u64(t, "open_streams", c.open_streams);
        rte_tel_data_add_dict_u64(t, "retransmitted_bytes", c.retransmitted_bytes);
        rte_tel_data_add_dict_u64(t, "active_paths", c.active_paths);
        return std::to_string(c.connection_id);
    });
}

int telemetry_paths(const char*, const char*, rte_tel_data* d) {
    const std::lock_guard<std::mutex> hold(g_telemetry_lock);
    api::counters_totals totals;
    if (const int rc = read_totals(totals); rc != 0) {
        return rc;
    }
    return telemetry_table(d, totals.paths, [](const api::path_counters& p, rte_tel_data* t) {
        static const char* status[] = {"up", "suspect", "failed", "removed"};
        rte_tel_data_add_dict_string(t, "status", p.status <= 3 ? status[p.status] : "unknown");
        rte_tel_data_add_dict_u64(t, "rx_packets", p.rx_packets);
        rte_tel_data_add_dict_u64(t, "tx_packets", p.tx_packets);
        rte_tel_data_add_dict_u64(t, "lost_packets", p.lost_packets);
        rte_tel_data_add_dict_u64(t, "handoff_packets", p.handoff_packets);
        rte_tel_data_add_dict_u64(t, "smoothed_rtt_ns", p.smoothed_rtt_ns);
        rte_tel_data_add_dict_u64(t, "cwnd_bytes", p.cwnd_bytes);
        return std::to_string(p.connection_id) + "/" + std::to_string(p.path_id);
    });
}

// net_af_xdp ports (drivers/af_xdp): per-verdict counters of each one's XDP program.
std::vector<const drivers::af_xdp_port*> g_xdp_ports;

int telemetry_xdp(const char*, const char*, rte_tel_data* d) {
    const std::lock_guard<std::mutex> hold(g_telemetry_lock);
    rte_tel_data_start_dict(d);
    for (const drivers::af_xdp_port* x : g_xdp_ports) {
        auto c = x->counters();
        if (!c.ok()) {
            return -EIO;
        }
        rte_tel_data* t = rte_tel_data_alloc();
        if (t == nullptr) {
            return -ENOMEM;
        }
        rte_tel_data_start_dict(t);
        for (std::size_t v = 0; v < c->by_verdict.size(); ++v) {
            rte_tel_data_add_dict_u64(t, std::string(drivers::verdict_name(v)).c_str(), c->by_verdict[v]);
        }
        rte_tel_data_add_dict_container(d, x->name().c_str(), t, 0);
    }
    return 0;
}

// The counters region's main block (api/counters.hpp): what each port's NIC counted
// (rte_eth_stats), what its XDP program decided (net_af_xdp ports) and how paths were steered.
// The main lcore, every stats interval and once more before the ports close. A read that fails
// keeps the port's last values and counts in read_errors.
class main_counters_publisher {
public:
    main_counters_publisher(api::main_counters_writer writer, std::span<const drivers::port> ports,
                            std::span<const engine::port_settings> settings,
                            std::span<const drivers::af_xdp_port> xdp_ports)
        : _writer(writer), _ports(ports), _nic(ports.size()), _xdp(ports.size(), nullptr) {
        for (std::size_t p = 0; p < ports.size(); ++p) {
            for (const auto& x : xdp_ports) {
                if (x.name() == settings[p].name) {
                    _xdp[p] = &x;
                }
            }
        }
    }

    void publish(const engine::command_handler& handler, std::uint64_t now_ns) {
        static_assert(KWIK_XDP_VERDICTS == 8, "nic_port_counters holds eight XDP verdicts");
        for (std::size_t p = 0; p < _ports.size(); ++p) {
            api::nic_port_counters& n = _nic[p];
            if (auto st = _ports[p].stats(); st.ok()) {
                const rte_eth_stats& b = st->basic;
                n.sources |= api::nic_source_ethdev;
                n.rx_packets = b.ipackets;
                n.rx_bytes = b.ibytes;
                n.tx_packets = b.opackets;
                n.tx_bytes = b.obytes;
                n.imissed = b.imissed;
                n.ierrors = b.ierrors;
                n.oerrors = b.oerrors;
                n.rx_nombuf = b.rx_nombuf;
            } else {
                ++n.read_errors;
            }
            if (_xdp[p] == nullptr) {
                continue;
            }
            if (auto c = _xdp[p]->counters(); c.ok()) {
                const auto& v = c->by_verdict;
                n.sources |= api::nic_source_xdp;
                n.xdp_redirected = v[KWIK_XDP_REDIRECTED];
                n.xdp_no_socket = v[KWIK_XDP_NO_SOCKET];
                n.xdp_not_ip = v[KWIK_XDP_NOT_IP];
                n.xdp_not_udp = v[KWIK_XDP_NOT_UDP];
                n.xdp_not_kwik_port = v[KWIK_XDP_NOT_KWIK_PORT];
                n.xdp_not_kwik_address = v[KWIK_XDP_NOT_KWIK_ADDRESS];
                n.xdp_fragment = v[KWIK_XDP_FRAGMENT];
                n.xdp_truncated = v[KWIK_XDP_TRUNCATED];
            } else {
                ++n.read_errors;
            }
        }
        const engine::handler_counters& hc = handler.counters();
        const api::kwikd_counters k{hc.flow_rules,    hc.handoff_paths, handler.connections(),   handler.path_count(),
                                    hc.commands,      hc.rejected,      hc.events_forwarded,       hc.events_lost};
        _writer.publish(k, _nic, now_ns);
    }

private:
    api::main_counters_writer _writer;
    std::span<const drivers::port> _ports;
    std::vector<api::nic_port_counters> _nic;
    std::vector<const drivers::af_xdp_port*> _xdp; // by port; null: not net_af_xdp
};

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

api::endpoint_kind endpoint_of(engine::stream_endpoint e) {
    switch (e) {
    case engine::stream_endpoint::echo:
        return api::endpoint_kind::echo;
    case engine::stream_endpoint::pattern:
        return api::endpoint_kind::pattern_source;
    case engine::stream_endpoint::file_store:
        return api::endpoint_kind::file_store;
    default:
        return api::endpoint_kind::discard;
    }
}

// The workers' clock (TSC): the handler, the heartbeat and the counters' timestamps share it.
std::uint64_t monotonic_ns() {
    return static_cast<std::uint64_t>(engine::now_ns());
}

int fail(const std::string& what) {
    std::fprintf(stderr, "kwikd: %s\n", what.c_str());
    return 1;
}

// ---- systemd ----

// DPDK's log levels are syslog's priorities plus one (RTE_LOG_EMERG = 1 .. RTE_LOG_DEBUG = 8);
// rte_vlog sets the level of the message it is writing before it writes it, on this thread.
int dpdk_line_priority(void*) {
    const int level = rte_log_cur_msg_loglevel();
    return level >= 1 ? level - 1 : static_cast<int>(sd::priority::info);
}

// Every kwikd line in the journal with a priority: printf's (stdout, info), fprintf(stderr)'s
// (error) and DPDK's own (by their level; EAL otherwise writes them to stdout and, again, to
// syslog). Nothing changes where neither stream is the journal. Before rte_eal_init.
void prefix_journal_lines() {
    const unsigned journal = sd::prefix_standard_streams(sd::priority::info, sd::priority::error);
    if (journal == 0) {
        return;
    }
    const int fd = (journal & 2u) != 0 ? STDERR_FILENO : STDOUT_FILENO;
    if (FILE* f = sd::open_priority_stream(fd, dpdk_line_priority, nullptr); f != nullptr) {
        rte_openlog_stream(f);
    }
}

void notify(const std::string& state) {
    if (auto sent = sd::notify(state); !sent.ok()) {
        std::fprintf(stderr, "kwikd: telling systemd '%s': %s\n", state.substr(0, state.find('\n')).c_str(),
                     sent.message().c_str());
    }
}

// systemd's watchdog (WatchdogSec=, WATCHDOG_USEC): WATCHDOG=1 every half interval, sent only
// while every worker has gone round its loop since the last ping (worker_counters::loops, which
// each worker bumps once per loop, sleeps of adaptive polling included). A worker stuck inside
// its loop withholds the pings, and systemd restarts kwikd. An interval under about 50 ms could
// take adaptive polling's longest sleep (idle_sleep_max_us) for a stall.
class worker_watchdog {
public:
    worker_watchdog(std::chrono::microseconds interval, std::vector<const std::uint64_t*> loops,
                    std::vector<unsigned> lcores)
        : _period(interval / 2), _loops(std::move(loops)), _lcores(std::move(lcores)), _seen(_loops.size()),
          _stalled(_loops.size(), false) {
        for (std::size_t w = 0; w < _loops.size(); ++w) {
            _seen[w] = load(w);
        }
        _next = std::chrono::steady_clock::now();
    }

    // The main lcore, every housekeeping pass.
    void poll(std::chrono::steady_clock::time_point now) {
        if (now < _next) {
            return;
        }
        _next = now + _period;
        bool all = true;
        for (std::size_t w = 0; w < _loops.size(); ++w) {
            const std::uint64_t loops = load(w);
            const bool moved = loops != _seen[w];
            _seen[w] = loops;
            if (moved && _stalled[w]) {
                std::printf("kwikd: worker %zu (lcore %u) is going round its loop again: watchdog pings resume\n",
                            w, _lcores[w]);
                std::fflush(stdout);
            } else if (!moved && !_stalled[w]) {
                std::fprintf(stderr, "kwikd: worker %zu (lcore %u) has not gone round its loop for %lld ms: "
                                     "watchdog pings withheld\n",
                             w, _lcores[w],
                             static_cast<long long>(std::chrono::duration_cast<std::chrono::milliseconds>(_period).count()));
            }
            _stalled[w] = !moved;
            all = all && moved;
        }
        if (all) {
            notify("WATCHDOG=1");
        }
    }

private:
    std::uint64_t load(std::size_t w) const noexcept { return __atomic_load_n(_loops[w], __ATOMIC_RELAXED); }

    std::chrono::microseconds _period;
    std::vector<const std::uint64_t*> _loops; // each worker's own counter (it is the only writer)
    std::vector<unsigned> _lcores;
    std::vector<std::uint64_t> _seen;
    std::vector<bool> _stalled;
    std::chrono::steady_clock::time_point _next;
};

} // namespace

int main(int argc, char** argv) {
    prefix_journal_lines();
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
    rc.directory = cfg.kwikd.shm_directory;
    rc.lock_directory = cfg.kwikd.shm_directory;
    if (!cfg.kwikd.shm_group.empty()) {
        const std::optional<unsigned> gid = engine::group_id(cfg.kwikd.shm_group);
        if (!gid) {
            rte_eal_cleanup();
            return fail("kwikd.shm_group: '" + cfg.kwikd.shm_group + "' is not a group on this system");
        }
        rc.group = static_cast<gid_t>(*gid);
    }
    rc.counters.workers = static_cast<std::uint32_t>(workers);
    rc.counters.ports = static_cast<std::uint32_t>(cfg.ports.size());
    rc.counters.max_connections = std::min<std::uint32_t>(cfg.limits.max_connections, 4096);
    rc.counters.max_paths = std::min<std::uint32_t>(cfg.limits.max_paths, 16384);
    auto region = api::shm_region::create(rc);
    if (!region.ok()) {
        rte_eal_cleanup();
        return fail(region.message());
    }

    // net_af_xdp ports: the PMD attaches the XDP program only where none is, so a kwik_xdp left
    // by a kwikd that died (SIGKILL, crash) is removed now; the shared region above proves no
    // kwikd of this name still runs. A program that is not ours is refused, never removed.
    std::vector<drivers::af_xdp_port> xdp_ports;
    for (const auto& ps : cfg.ports) {
        if (ps.xdp_program.empty()) {
            continue;
        }
        std::string note;
        auto x = drivers::af_xdp_port::prepare(ps.name, ps.device, note);
        if (!x.ok()) {
            rte_eal_cleanup();
            return fail(ps.name + ": " + x.message());
        }
        if (!note.empty()) {
            std::printf("kwikd: %s: %s\n", ps.name.c_str(), note.c_str());
        }
        xdp_ports.push_back(std::move(x).value());
    }

    // Pools: packets (one segment holds a whole frame of the largest MTU), endpoint data.
    std::uint32_t max_mtu = 1500;
    for (const auto& p : cfg.ports) {
        max_mtu = std::max<std::uint32_t>(max_mtu, p.mtu);
    }
    // Room for the largest frame with two VLAN tags, rounded up to 1 KiB: NICs count their own
    // overhead (26 bytes on i40e/ixgbe/ice, 30 on virtio) and some round rx buffers down to
    // 1 KiB, and a frame that outgrows one mbuf costs a copy in the worker (9344 for MTU 9000).
    const std::uint32_t frame = max_mtu + RTE_ETHER_HDR_LEN + RTE_ETHER_CRC_LEN + 2 * RTE_VLAN_HLEN;
    const auto room = static_cast<std::uint16_t>(std::max<std::uint32_t>(
        RTE_MBUF_DEFAULT_BUF_SIZE, RTE_ALIGN_CEIL(frame, 1024) + RTE_PKTMBUF_HEADROOM));
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
        if (!ps.xdp_program.empty()) { // the PMD loaded and attached the program: fill its maps
            std::vector<drivers::xdp_address> addresses(ps.addresses.size());
            for (std::size_t a = 0; a < addresses.size(); ++a) {
                std::memcpy(addresses[a].data(), ps.addresses[a].address.bytes.data(), addresses[a].size());
            }
            auto x = std::find_if(xdp_ports.begin(), xdp_ports.end(), [&](const auto& e) { return e.name() == ps.name; });
            auto bound = x->bind(ps.kwik_ports, addresses, ps.rx_queues);
            if (!bound.ok()) {
                return fail(ps.name + ": " + bound.message());
            }
            std::printf("kwikd: %s", bound->c_str());
        }
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
        pc.rx_queues = 1;                                      // polled by worker 0
        pc.tx_queues = static_cast<std::uint16_t>(workers); // every worker punts on its own queue
        pc.mtu = cfg.ports[cfg.exception.port_index].mtu;
        auto opened = drivers::open_port(pc);
        if (!opened.ok()) {
            return fail("exception: " + opened.message());
        }
        exception = std::move(opened).value();
        // The kernel shares the served port's addresses, so it must own its MAC too: punted
        // frames are addressed to it, and peers answer the kernel's ARP requests to it.
        rte_ether_addr mac = ports[cfg.exception.port_index].mac();
        if (const int r = rte_eth_dev_default_mac_addr_set(exception->id(), &mac); r != 0) {
            return fail("exception: cannot give " + cfg.exception.device + " the MAC of " +
                        cfg.ports[cfg.exception.port_index].name + ": " + rte_strerror(-r));
        }
    }

    std::string error;
    std::unique_ptr<engine::path_table> paths(engine::path_table::create(
        cfg.kwikd.name + "_paths", std::max<std::uint32_t>(cfg.limits.max_paths, 64), static_cast<int>(rte_socket_id()),
        static_cast<std::uint32_t>(workers), &error));
    if (!paths) {
        return fail(error);
    }
    std::vector<rte_ring*> handoff;
    std::vector<engine::worker_mailbox> mailboxes;
    for (std::size_t w = 0; w < workers; ++w) {
        const std::string name = cfg.kwikd.name + "_handoff" + std::to_string(w);
        handoff.push_back(rte_ring_create(name.c_str(), 4096, static_cast<int>(rte_socket_id()), RING_F_SC_DEQ));
        if (handoff.back() == nullptr) {
            return fail(name + ": " + rte_strerror(rte_errno));
        }
        // Replies hold twice the commands: a worker's answers always fit (worker::reply()).
        mailboxes.push_back(engine::create_mailbox(cfg.kwikd.name, static_cast<unsigned>(w), 1024, 2048,
                                                   static_cast<int>(rte_socket_id()), &error));
        if (!mailboxes.back().valid()) {
            return fail(error);
        }
    }
    std::vector<api::counters_writer> writers;
    for (std::size_t w = 0; w < workers; ++w) {
        auto cw = api::counters_writer::attach(*region, static_cast<std::uint32_t>(w), cfg.kwikd.worker_lcores[w]);
        if (!cw.ok()) {
            return fail(cw.message());
        }
        writers.push_back(std::move(cw).value());
    }

    // Transmit-side neighbour resolution per port: our MAC, addresses with prefixes, gateways.
    // Each worker builds its own table from these.
    static_assert(engine::max_port_addresses == engine::max_interface_addresses);
    std::vector<std::optional<engine::neighbor_config>> neighbors(ports.size());
    for (std::size_t p = 0; p < ports.size(); ++p) {
        engine::neighbor_config& nc = neighbors[p].emplace();
        std::memcpy(nc.mac.bytes.data(), ports[p].mac().addr_bytes, 6);
        if (nc.mac.is_zero()) { // net_ring: no address to ask from, so nobody to ask
            std::printf("kwikd: %s has no MAC address: its paths are sent to once their peer has sent\n",
                        cfg.ports[p].name.c_str());
            neighbors[p].reset();
            continue;
        }
        for (const auto& a : cfg.ports[p].addresses) {
            if (!nc.add_interface(a.address, a.length)) {
                return fail(cfg.ports[p].name + ".addresses: " + engine::to_string(a) + " refused by the neighbour table");
            }
        }
        nc.gateway_v4 = cfg.ports[p].gateway.value_or(engine::ip_address{});
        nc.gateway_v6 = cfg.ports[p].gateway6.value_or(engine::ip_address{});
        if (const std::string_view why = nc.validate(); !why.empty()) {
            return fail(cfg.ports[p].name + ": neighbour table: " + std::string(why));
        }
    }

    // net_af_xdp ports: the kernel owns ARP/ND there (our requests' answers go to it), so the
    // main lcore feeds the workers' tables from the kernel's and asks it to resolve what they
    // want (kernel_neighbors.hpp); their workers put no request on the wire.
    std::vector<bool> kernel_owned(ports.size(), false);
    std::optional<engine::kernel_neighbors> kernel_neighbors;
    {
        std::vector<engine::kernel_neighbors::port> owned;
        for (const auto& x : xdp_ports) {
            const auto p = static_cast<std::size_t>(
                std::find_if(cfg.ports.begin(), cfg.ports.end(), [&](const auto& ps) { return ps.name == x.name(); }) -
                cfg.ports.begin());
            if (!neighbors[p]) {
                continue;
            }
            const unsigned ifindex = if_nametoindex(x.iface().c_str());
            if (ifindex == 0) {
                return fail(x.name() + ": interface " + x.iface() + ": " + std::strerror(errno));
            }
            owned.push_back({static_cast<std::uint16_t>(p), ifindex});
            kernel_owned[p] = true;
        }
        if (!owned.empty()) {
            auto opened = engine::kernel_neighbors::open(std::move(owned), mailboxes);
            if (!opened.ok()) {
                return fail(opened.message());
            }
            kernel_neighbors.emplace(std::move(opened).value());
            if (!kernel_neighbors->read_dump(std::chrono::seconds(1))) {
                std::fprintf(stderr, "kwikd: the kernel's neighbour table was not read within 1 s: the rest follows\n");
            }
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
            wp.neighbors = neighbors[p] ? &*neighbors[p] : nullptr;
            wp.kernel_neighbors = kernel_owned[p];
            wc.ports.push_back(wp);
        }
        wc.paths = paths.get();
        wc.tx_pool = pool;
        wc.app_pool = app_pool;
        wc.handoff = handoff;
        wc.burst = cfg.limits.burst;
        wc.idle_sleep_max = cfg.kwikd.polling == engine::poll_mode::adaptive
                                ? transport::time_ns{cfg.kwikd.idle_sleep_max_us} * transport::us
                                : 0;
        wc.max_connections = rc.counters.max_connections;
        wc.mailbox = mailboxes[w];
        wc.counters = &writers[w];
        if (exception) {
            wc.exception = exception->queue(static_cast<std::uint16_t>(w)); // rx queue 0, tx queue w
            wc.exception_poll_rx = w == 0;
            wc.exception_port = cfg.exception.port_index;
        }
        ws.push_back(std::make_unique<engine::worker>(wc));
    }

    // The command interface: the control process's rings in the shared region, handled on this
    // (the main) lcore. Until now the region was initialising and refused openers.
    auto channel = api::dataplane_channel::create(*region);
    if (!channel.ok()) {
        return fail(channel.message());
    }
    engine::handler_config hc;
    hc.channel = &channel.value();
    hc.region = &region.value();
    hc.paths = paths.get();
    for (std::size_t p = 0; p < ports.size(); ++p) {
        engine::handler_port hp;
        hp.device = &ports[p];
        hp.rx_queues = ports[p].rx_queues();
        for (const auto& a : cfg.ports[p].addresses) {
            hp.addresses.push_back(a.address);
        }
        hp.kwik_ports.assign(cfg.ports[p].kwik_ports.begin(), cfg.ports[p].kwik_ports.end());
        hc.ports.push_back(std::move(hp));
    }
    for (auto& w : ws) {
        hc.workers.push_back(w.get());
    }
    hc.mailboxes = mailboxes;
    hc.slots_per_worker = rc.counters.max_connections;
    hc.max_bindings = std::max<std::uint32_t>(cfg.limits.max_paths, 64);
    engine::apply_transport_defaults(cfg.transport, hc.transport);
    engine::command_handler handler(std::move(hc));
    auto main_writer = api::main_counters_writer::attach(*region);
    if (!main_writer.ok()) {
        return fail(main_writer.message());
    }
    main_counters_publisher main_counters(*main_writer, ports, cfg.ports, xdp_ports);

    // Connections from the configuration: connection i gets id i + 1 and goes through the same
    // checks and actions as a control process's add_connection and add_path, applied now.
    for (std::size_t ci = 0; ci < cfg.connections.size(); ++ci) {
        const auto& sc = cfg.connections[ci];
        api::command add = api::make_add_connection(ci + 1, sc.id, endpoint_of(sc.endpoint));
        add.add_connection.owner_hint = static_cast<std::uint16_t>(ci % workers);
        add.add_connection.role = sc.role == transport::role::client ? api::connection_role::client : api::connection_role::server;
        if (sc.endpoint == engine::stream_endpoint::file_store && !api::set_text(add.add_connection.endpoint_path, sc.directory)) {
            return fail("connection[" + std::to_string(ci) + "].endpoint_arg: longer than " +
                        std::to_string(api::endpoint_path_size - 1) + " bytes");
        }
        if (sc.endpoint == engine::stream_endpoint::pattern) {
            add.add_connection.endpoint_length = sc.pattern_length;
        }
        if (!handler.apply_before_launch(add, &error)) {
            return fail("connection[" + std::to_string(ci) + "] " + sc.id + ": " + error);
        }
        for (const auto& sp : sc.paths) {
            engine::five_tuple t;
            t.src = sp.remote.address;
            t.src_port = sp.remote.port;
            t.dst = sp.local.address;
            t.dst_port = sp.local.port;
            t.protocol = 17;
            if (!handler.apply_before_launch(api::make_add_path(ci + 1, sp.path_id, engine::to_api(t)), &error)) {
                return fail("connection[" + std::to_string(ci) + "] " + sc.id + " path " + std::to_string(sp.path_id) +
                            ": " + error);
            }
        }
    }

    {
        const std::lock_guard<std::mutex> hold(g_telemetry_lock);
        for (auto& w : ws) {
            g_workers.push_back(w.get());
        }
        g_region = &region.value();
        for (auto& x : xdp_ports) {
            g_xdp_ports.push_back(&x);
        }
    }
    rte_telemetry_register_cmd("/kwik/workers", telemetry_workers,
                               "kwikd worker counters summed over the workers. Takes no parameters");
    rte_telemetry_register_cmd("/kwik/drops", telemetry_drops,
                               "kwikd drops by reason, summed over the workers. Takes no parameters");
    rte_telemetry_register_cmd("/kwik/connections", telemetry_connections,
                               "kwikd connection counters by connection id. Takes no parameters");
    rte_telemetry_register_cmd("/kwik/paths", telemetry_paths,
                               "kwikd path counters by connection/path id. Takes no parameters");
    rte_telemetry_register_cmd("/kwik/xdp", telemetry_xdp,
                               "kwikd XDP program verdicts by net_af_xdp port. Takes no parameters");
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
    std::printf("kwikd: %zu worker(s), %zu port(s), %zu connection(s) running; shared memory %s\n", workers,
                ports.size(), cfg.connections.size(), region->path().c_str());
    std::printf("kwikd: paths steered to their owner's queue by rte_flow: %llu; by the hand-off ring or a single "
                "worker: %llu\n", (unsigned long long)handler.counters().flow_rules,
                (unsigned long long)handler.counters().handoff_paths);
    std::fflush(stdout);
    main_counters.publish(handler, monotonic_ns()); // steering and NIC counters readable from the start
    notify("READY=1\nSTATUS=" + std::to_string(workers) + " worker(s), " + std::to_string(ports.size()) +
           " port(s), " + std::to_string(cfg.connections.size()) + " connection(s); shared memory " + region->path());
    std::optional<worker_watchdog> watchdog;
    if (const auto interval = sd::watchdog_interval()) {
        std::vector<const std::uint64_t*> loops;
        for (auto& w : ws) {
            loops.push_back(&w->counters().loops);
        }
        watchdog.emplace(*interval, std::move(loops), cfg.kwikd.worker_lcores);
    }

    // Housekeeping: commands from the control process (the workers publish their own counters),
    // a heartbeat the control process watches, and a summary line every stats interval.
    auto summary = [&]() {
        std::uint64_t rx = 0, tx = 0, drops = 0, kwik_pkts = 0;
        for (std::size_t w = 0; w < workers; ++w) {
            const engine::worker_counters& c = ws[w]->counters();
            rx += c.rx_packets;
            tx += c.tx_packets;
            kwik_pkts += c.kwik_packets;
            for (std::size_t r = 0; r < kdp::drop_reason_count; ++r) {
                drops += c.drops[r] + c.classified.drops[r];
            }
        }
        const engine::handler_counters& hc = handler.counters();
        std::printf("kwikd: rx %llu packets (%llu Kwik), tx %llu, dropped %llu; %zu connection(s), %zu path(s); "
                    "commands %llu (%llu refused), events %llu forwarded, %llu lost\n",
                    (unsigned long long)rx, (unsigned long long)kwik_pkts, (unsigned long long)tx,
                    (unsigned long long)drops, handler.connections(), handler.path_count(),
                    (unsigned long long)hc.commands, (unsigned long long)hc.rejected,
                    (unsigned long long)hc.events_forwarded, (unsigned long long)hc.events_lost);
        for (const auto& x : xdp_ports) {
            std::printf("kwikd: %s\n", x.summary().c_str());
        }
        if (kernel_neighbors) {
            std::printf("kwikd: %s\n", kernel_neighbors->summary().c_str());
        }
        std::fflush(stdout);
        main_counters.publish(handler, monotonic_ns());
    };
    const auto interval = std::chrono::milliseconds(std::max<std::uint32_t>(cfg.kwikd.stats_interval_ms, 10));
    auto next = std::chrono::steady_clock::now() + interval;
    while (!g_stop.load()) {
        // 100 us between passes: a command's round trip stays well under a millisecond while
        // the main lcore stays almost idle.
        std::this_thread::sleep_for(std::chrono::microseconds(100));
        const std::uint64_t now = monotonic_ns();
        handler.poll(static_cast<transport::time_ns>(now));
        if (kernel_neighbors) {
            kernel_neighbors->poll();
        }
        region->heartbeat(now);
        if (watchdog) {
            watchdog->poll(std::chrono::steady_clock::now());
        }
        if (cfg.kwikd.stats_interval_ms != 0 && std::chrono::steady_clock::now() >= next) {
            summary();
            next += interval;
        }
    }
    notify("STOPPING=1\nSTATUS=stopping: draining the workers");
    region->set_state(api::region_state::stopping);
    rte_eal_mp_wait_lcore();
    // The workers have stopped: what was still in their mailboxes is applied here (installs
    // are freed, removals answered), every command still waiting is answered, and their final
    // counters are published from here (each block still has one writer at a time).
    for (auto& w : ws) {
        w->apply_commands_now(static_cast<transport::time_ns>(monotonic_ns()));
    }
    handler.shutdown(static_cast<transport::time_ns>(monotonic_ns()));
    // Answers the event ring had no room for (a listing under way, a control process behind)
    // go out as the control process reads, for up to a second; they were dropped here before.
    const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(1);
    while (handler.unsent_events() != 0 && std::chrono::steady_clock::now() < give_up) {
        std::this_thread::sleep_for(std::chrono::microseconds(100));
        handler.poll(static_cast<transport::time_ns>(monotonic_ns()));
    }
    for (auto& w : ws) {
        w->publish_final_counters(static_cast<transport::time_ns>(monotonic_ns()));
    }
    summary();
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
        for (std::uint32_t slot = 0; slot < rc.counters.max_connections; ++slot) {
            const transport::connection* conn = ws[w]->connection_of(slot);
            const engine::endpoint* ep = ws[w]->endpoint_of(slot);
            if (conn == nullptr || ep == nullptr) {
                continue;
            }
            const std::string name = handler.name_of(ws[w]->connection_id_of(slot));
            std::printf("kwikd: connection %s: %llu streams, %llu bytes received, %llu sent, %llu files written\n",
                        name.c_str(), (unsigned long long)ep->counters().streams,
                        (unsigned long long)ep->counters().bytes_received, (unsigned long long)ep->counters().bytes_sent,
                        (unsigned long long)ep->counters().files_written);
            for (std::size_t r = 0; r < kdp::drop_reason_count; ++r) {
                if (conn->counters().drops[r] != 0) {
                    std::printf("kwikd: connection %s dropped %llu: %s\n", name.c_str(),
                                (unsigned long long)conn->counters().drops[r],
                                std::string(kdp::to_string(static_cast<kdp::drop_reason>(r))).c_str());
                }
            }
        }
    }
    {
        const std::lock_guard<std::mutex> hold(g_telemetry_lock);
        g_workers.clear(); // telemetry reads nothing from here on
        g_region = nullptr;
        g_xdp_ports.clear();
    }
    ws.clear();        // flushes what the workers still had queued
    main_counters.publish(handler, monotonic_ns()); // final NIC counters, that flush included
    for (auto& p : ports) {
        if (auto r = p.close(); !r.ok()) {
            std::fprintf(stderr, "kwikd: %s\n", r.message().c_str());
        }
    }
    for (auto& x : xdp_ports) { // after the ports closed: a program the PMD left is detached
        if (auto r = x.release(); !r.ok()) {
            std::fprintf(stderr, "kwikd: %s: %s\n", x.name().c_str(), r.message().c_str());
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
    for (engine::worker_mailbox& m : mailboxes) {
        engine::free_mailbox(m);
    }
    rte_eal_cleanup();
    std::printf("kwikd: stopped\n");
    return 0;
}
