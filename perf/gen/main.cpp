// kwik-gen: a DPDK traffic generator for Kwik (docs/KWIK_GEN.md). The main lcore parses the
// options, writes kwikd's configuration fragment, brings the port up, runs the trials (one run,
// or an RFC 2544 search) through the worker lcores, prints a progress line a second and writes
// the JSON report. Exit 0 ok, 1 a check failed, 2 usage, 3 port or EAL failure.
#include <pcap/pcap.h>
#include <rte_cycles.h>
#include <rte_eal.h>
#include <rte_ethdev.h>
#include <rte_lcore.h>
#include <rte_mbuf.h>
#include <rte_ring.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "drivers/port.hpp"
#include "perf/gen/options.hpp"
#include "perf/gen/rate_search.hpp"
#include "perf/gen/traffic_model.hpp"
#include "perf/gen/worker.hpp"

namespace {

using namespace kwik::gen;
using json = nlohmann::json;

std::atomic<bool> g_interrupted{false};

void on_signal(int) {
    g_interrupted = true;
}

int usage(const std::string& message) {
    std::fprintf(stderr, "kwik-gen: %s\n", message.c_str());
    return 2;
}

kwik::result<pcap_frames> load_pcap(const std::string& file, std::uint32_t max_frame) {
    char errbuf[PCAP_ERRBUF_SIZE] = {};
    pcap_t* p = pcap_open_offline(file.c_str(), errbuf);
    if (p == nullptr) {
        return kwik::error{"--pcap: " + file + ": " + errbuf};
    }
    if (const int link = pcap_datalink(p); link != DLT_EN10MB) {
        pcap_close(p);
        return kwik::error{"--pcap: " + file + ": link type " + std::to_string(link) + " is not Ethernet (DLT_EN10MB)"};
    }
    pcap_frames out;
    pcap_pkthdr* h = nullptr;
    const u_char* data = nullptr;
    int rc = 0;
    std::size_t index = 0;
    while ((rc = pcap_next_ex(p, &h, &data)) == 1) {
        if (h->caplen != h->len) {
            pcap_close(p);
            return kwik::error{"--pcap: " + file + ": frame " + std::to_string(index) + " was cut by the snap length (" +
                               std::to_string(h->caplen) + " of " + std::to_string(h->len) + " bytes)"};
        }
        if (h->caplen < 14 || h->caplen > max_frame) {
            pcap_close(p);
            return kwik::error{"--pcap: " + file + ": frame " + std::to_string(index) + " has " +
                               std::to_string(h->caplen) + " bytes; the port sends 14.." + std::to_string(max_frame) +
                               " (raise --mtu)"};
        }
        out.offset.push_back(static_cast<std::uint32_t>(out.bytes.size()));
        out.bytes.insert(out.bytes.end(), data, data + h->caplen);
        std::uint32_t udp_payload = 0;
        if (h->caplen >= 42 && data[12] == 0x08 && data[13] == 0 && (data[14] >> 4) == 4 && data[23] == 17) {
            const std::uint32_t ihl = (data[14] & 0x0Fu) * 4;
            if (14 + ihl + 8 <= h->caplen) {
                const std::uint32_t ulen = (data[14 + ihl + 4] << 8) | data[14 + ihl + 5];
                udp_payload = ulen >= 8 ? ulen - 8 : 0;
            }
        }
        out.udp_payload.push_back(udp_payload);
        std::array<std::uint8_t, 6> mac;
        std::memcpy(mac.data(), data + 6, 6);
        if (std::find(out.source_macs.begin(), out.source_macs.end(), mac) == out.source_macs.end() &&
            out.source_macs.size() < 16) {
            out.source_macs.push_back(mac);
        }
        ++index;
    }
    const std::string why = rc == -1 ? pcap_geterr(p) : "";
    pcap_close(p);
    if (rc == -1) {
        return kwik::error{"--pcap: " + file + ": " + why};
    }
    if (out.offset.empty()) {
        return kwik::error{"--pcap: " + file + ": no frames"};
    }
    out.offset.push_back(static_cast<std::uint32_t>(out.bytes.size()));
    return out;
}

json latency_json(const histogram_snapshot& h) {
    json j;
    const double us = 1e-3;
    j["samples"] = h.count;
    j["min"] = h.count == 0 ? 0.0 : static_cast<double>(h.min) * us;
    j["mean"] = h.mean() * us;
    j["p50"] = h.quantile(0.5) * us;
    j["p90"] = h.quantile(0.9) * us;
    j["p99"] = h.quantile(0.99) * us;
    j["p999"] = h.quantile(0.999) * us;
    j["max"] = static_cast<double>(h.max) * us;
    json cdf = json::array();
    for (const auto& [v, f] : h.cdf()) {
        cdf.push_back({v * us, f});
    }
    j["cdf"] = cdf;
    return j;
}

struct trial_outcome {
    double rate_pps = 0; // asked (0: unpaced)
    double seconds = 0;  // sending time
    counter_values c;
    std::uint64_t offered = 0;
    std::uint64_t delivered = 0;
    histogram_snapshot latency;
    histogram_snapshot latency_corrected;
};

class generator {
public:
    generator(const gen_options& o, std::vector<worker_stats*> stats, trial_control* control, double tsc_hz)
        : _o(o), _stats(std::move(stats)), _control(control), _tsc_hz(tsc_hz) {}

    counter_values totals() const {
        counter_values v;
        for (const worker_stats* s : _stats) {
            v += counter_values::read(s->counters);
        }
        return v;
    }

    std::uint64_t delivered_of(const counter_values& c) const {
        if (_o.expect == expect_kind::echo) {
            // The accepted packets in the proportion of their stream bytes that came back (a
            // stream's last packet carries less than --payload).
            if (c.sent_payload_bytes == 0 || c.echo_bytes >= c.sent_payload_bytes) {
                return c.sent_payload_bytes == 0 ? 0 : c.sent_packets;
            }
            return static_cast<std::uint64_t>(static_cast<long double>(c.sent_packets) * c.echo_bytes /
                                              c.sent_payload_bytes);
        }
        return _o.expect == expect_kind::none ? 0 : c.delivered;
    }

    // One trial: rate (pps, or Mbit/s when mbps), seconds, packet budget; then the drain.
    trial_outcome run(double rate_pps, double rate_mbps, double seconds, std::uint64_t packets) {
        const std::size_t w = _stats.size();
        trial_outcome t;
        t.rate_pps = rate_pps;
        const counter_values before = totals();
        const std::uint64_t start = rte_rdtsc();
        _control->by_bytes.store(rate_mbps > 0, std::memory_order_relaxed);
        _control->rate_per_worker.store(rate_mbps > 0 ? rate_mbps * 1e6 / 8 / static_cast<double>(w)
                                                      : rate_pps / static_cast<double>(w),
                                        std::memory_order_relaxed);
        _control->send_until_tsc.store(start + static_cast<std::uint64_t>(seconds * _tsc_hz), std::memory_order_relaxed);
        _control->packets.store(packets, std::memory_order_relaxed);
        _control->sending.store(true, std::memory_order_relaxed);
        const std::uint32_t epoch = ++_epoch;
        _control->epoch.store(epoch, std::memory_order_release);
        for (const worker_stats* s : _stats) {
            while (s->epoch_seen.load(std::memory_order_acquire) != epoch) {
                std::this_thread::sleep_for(std::chrono::microseconds(50));
            }
        }
        counter_values last = before;
        std::uint64_t last_tsc = start;
        std::uint64_t next_report = start + static_cast<std::uint64_t>(_tsc_hz);
        for (;;) {
            std::this_thread::sleep_for(std::chrono::milliseconds(10));
            const std::uint64_t now = rte_rdtsc();
            bool all_idle = true;
            for (const worker_stats* s : _stats) {
                all_idle = all_idle && s->idle.load(std::memory_order_relaxed);
            }
            if (g_interrupted) {
                _control->sending.store(false, std::memory_order_relaxed);
            }
            if (all_idle || g_interrupted) {
                break;
            }
            if (now >= next_report && !_o.quiet) {
                const counter_values c = totals();
                const double dt = static_cast<double>(now - last_tsc) / _tsc_hz;
                const counter_values d = c - last;
                const counter_values in_trial = c - before;
                const std::uint64_t offered = in_trial.sent_packets + in_trial.tx_refused;
                const std::uint64_t delivered = _o.expect == expect_kind::none ? offered : delivered_of(in_trial);
                std::fprintf(stderr,
                             "kwik-gen: %6.1f s  offered %.3f Mpps  achieved %.3f Mpps  delivered %llu of %llu"
                             "  loss %.4f %%  rx %llu\n",
                             static_cast<double>(now - start) / _tsc_hz,
                             static_cast<double>(d.sent_packets + d.tx_refused) / dt / 1e6,
                             static_cast<double>(d.sent_packets) / dt / 1e6, (unsigned long long)delivered,
                             (unsigned long long)offered,
                             offered == 0 ? 0.0
                                          : 100.0 * static_cast<double>(offered > delivered ? offered - delivered : 0) /
                                                static_cast<double>(offered),
                             (unsigned long long)d.rx_packets);
                last = c;
                last_tsc = now;
                next_report += static_cast<std::uint64_t>(_tsc_hz);
            }
        }
        const std::uint64_t end = rte_rdtsc();
        _control->sending.store(false, std::memory_order_relaxed);
        t.seconds = static_cast<double>(end - start) / _tsc_hz;
        std::this_thread::sleep_for(std::chrono::milliseconds(_o.drain_ms));
        t.c = totals() - before;
        t.offered = t.c.sent_packets + t.c.tx_refused;
        t.delivered = delivered_of(t.c);
        for (const worker_stats* s : _stats) {
            t.latency.merge(s->latency.snapshot());
            t.latency_corrected.merge(s->latency_corrected.snapshot());
        }
        return t;
    }

private:
    const gen_options& _o;
    std::vector<worker_stats*> _stats;
    trial_control* _control;
    double _tsc_hz;
    std::uint32_t _epoch = 0;
};

json counters_json(const counter_values& c) {
    json j;
#define KWIK_X(name) j[#name] = c.name;
    KWIK_GEN_COUNTERS(KWIK_X)
#undef KWIK_X
    return j;
}

int run(int argc, char** argv) {
    // kwik-gen [EAL args] -- [options]
    int split = argc;
    for (int i = 1; i < argc; ++i) {
        if (std::strcmp(argv[i], "--") == 0) {
            split = i;
            break;
        }
    }
    std::vector<std::string> args{"kwik-gen"};
    for (int i = split + 1; i < argc; ++i) {
        args.emplace_back(argv[i]);
    }
    if (split == argc) {
        for (int i = 1; i < argc; ++i) {
            if (std::strcmp(argv[i], "-h") == 0 || std::strcmp(argv[i], "--help") == 0) {
                args.emplace_back("--help");
                break;
            }
        }
    }
    parse_outcome parsed = parse_options(args);
    if (parsed.help) {
        std::cout << parsed.message << "\nEAL arguments come first, e.g. -l 0-1 --vdev net_null0 --no-huge; the "
                                       "main lcore reports, every other lcore is a worker with its own queue pair.\n";
        return 0;
    }
    if (!parsed.options) {
        return usage(parsed.message);
    }
    const gen_options& o = *parsed.options;
    if (!o.kwikd_config.empty()) {
        std::ofstream f(o.kwikd_config);
        f << kwikd_config_text(o);
        f.close();
        if (!f) {
            return usage("--kwikd-config: cannot write " + o.kwikd_config + ": " + std::strerror(errno));
        }
        if (o.config_only) {
            return 0;
        }
    }

    std::vector<char*> eal_argv{argv[0]};
    for (int i = 1; i < split; ++i) {
        eal_argv.push_back(argv[i]);
    }
    const int eal_ret = rte_eal_init(static_cast<int>(eal_argv.size()), eal_argv.data());
    if (eal_ret < 0) {
        std::fprintf(stderr, "kwik-gen: EAL: %s\n", rte_strerror(rte_errno));
        return 3;
    }
    std::signal(SIGINT, on_signal);
    std::signal(SIGTERM, on_signal);
    int rc = 0;
    {
        std::vector<unsigned> worker_lcores;
        unsigned lc = 0;
        RTE_LCORE_FOREACH_WORKER(lc) {
            worker_lcores.push_back(lc);
        }
        if (worker_lcores.empty()) {
            rte_eal_cleanup();
            return usage("EAL -l: needs at least two lcores (the main one reports; the others send)");
        }
        const std::uint32_t workers = static_cast<std::uint32_t>(worker_lcores.size());
        // The port: by name or id, else the first one EAL probed.
        std::string port_name = o.port;
        if (port_name.empty() || std::all_of(port_name.begin(), port_name.end(), [](unsigned char ch) { return std::isdigit(ch) != 0; })) {
            std::uint16_t id = port_name.empty() ? rte_eth_find_next(0) : static_cast<std::uint16_t>(std::stoul(port_name));
            char name[RTE_ETH_NAME_MAX_LEN] = {};
            if (id >= RTE_MAX_ETHPORTS || rte_eth_dev_get_name_by_port(id, name) != 0) {
                std::fprintf(stderr, "kwik-gen: --port: no ethdev port %s (give EAL a --vdev or a PCI device)\n",
                             port_name.empty() ? "at all" : port_name.c_str());
                rte_eal_cleanup();
                return 3;
            }
            port_name = name;
        }
        const std::uint32_t max_frame = max_udp_payload(o.mtu) + static_cast<std::uint32_t>(eth_ipv4_udp_len);
        const std::uint32_t mbufs = o.mbufs != 0 ? o.mbufs
                                                 : std::max<std::uint32_t>(8192, workers * (o.rx_desc + o.tx_desc + 4 * 512) +
                                                                                     workers * 4096 + 2048);
        const std::uint16_t data_room = static_cast<std::uint16_t>(
            std::max<std::uint32_t>(RTE_MBUF_DEFAULT_BUF_SIZE, RTE_PKTMBUF_HEADROOM + max_frame + 64));
        rte_mempool* pool = rte_pktmbuf_pool_create("kwik_gen", mbufs, 256, 0, data_room, static_cast<int>(rte_socket_id()));
        if (pool == nullptr) {
            std::fprintf(stderr, "kwik-gen: mbuf pool of %u: %s (--mbufs, or EAL -m)\n", mbufs, rte_strerror(rte_errno));
            rte_eal_cleanup();
            return 3;
        }
        kwik::drivers::port_config pc;
        pc.device = port_name;
        pc.rx_queues = static_cast<std::uint16_t>(workers);
        pc.tx_queues = static_cast<std::uint16_t>(workers);
        pc.rx_desc = o.rx_desc;
        pc.tx_desc = o.tx_desc;
        pc.mtu = o.mtu;
        pc.rss = true;
        pc.checksum_offload = false; // kwik-gen writes both checksums itself (from precomputed sums)
        pc.multi_segment = false;
        pc.pool = pool;
        pc.link_wait_ms = 5000;
        auto port = kwik::drivers::open_port(pc);
        if (!port) {
            std::fprintf(stderr, "kwik-gen: port %s: %s\n", port_name.c_str(), port.message().c_str());
            rte_mempool_free(pool);
            rte_eal_cleanup();
            return 3;
        }
        if (!o.quiet) {
            std::fprintf(stderr, "%s", port->report().c_str());
        }
        std::unique_ptr<pcap_frames> frames;
        if (!o.synthesis()) {
            auto loaded = load_pcap(o.pcap, max_frame);
            if (!loaded) {
                (void)port->close();
                rte_eal_cleanup();
                return usage(loaded.message());
            }
            frames = std::make_unique<pcap_frames>(std::move(*loaded));
        }
        const double tsc_hz = static_cast<double>(rte_get_tsc_hz());
        auto content = std::make_unique<payload_content>();
        model_params params;
        params.options = &o;
        params.content = content.get();
        std::memcpy(params.src_mac.data(), port->mac().addr_bytes, 6);
        if (o.dst_mac) {
            params.dst_mac = *o.dst_mac;
        }
        params.tsc_hz = tsc_hz;

        auto control = std::make_unique<trial_control>();
        std::vector<std::unique_ptr<worker_stats>> stats;
        std::vector<std::unique_ptr<traffic_model>> models;
        std::vector<rte_ring*> inboxes;
        std::vector<worker_setup> setups(workers);
        for (std::uint32_t w = 0; w < workers; ++w) {
            stats.push_back(std::make_unique<worker_stats>());
            const std::string ring_name = "kwik_gen_in" + std::to_string(w);
            rte_ring* r = rte_ring_create(ring_name.c_str(), 4096, static_cast<int>(rte_socket_id()), RING_F_SC_DEQ);
            if (r == nullptr) {
                std::fprintf(stderr, "kwik-gen: hand-off ring %s: %s\n", ring_name.c_str(), rte_strerror(rte_errno));
                rc = 3;
                break;
            }
            inboxes.push_back(r);
            if (o.synthesis()) {
                std::vector<std::uint32_t> mine;
                for (std::uint32_t c = w; c < o.connections; c += workers) {
                    mine.push_back(c);
                }
                models.push_back(std::make_unique<traffic_model>(params, std::move(mine), &stats[w]->counters,
                                                                 &stats[w]->latency, &stats[w]->latency_corrected));
            }
        }
        json report;
        if (rc == 0) {
            for (std::uint32_t w = 0; w < workers; ++w) {
                worker_setup& s = setups[w];
                s.index = w;
                s.workers = workers;
                s.port_id = port->id();
                s.queue = static_cast<std::uint16_t>(w);
                s.pool = pool;
                s.options = &o;
                s.params = &params;
                s.model = o.synthesis() ? models[w].get() : nullptr;
                s.pcap = frames.get();
                s.inboxes = inboxes;
                s.control = control.get();
                s.stats = stats[w].get();
                s.tsc_hz = tsc_hz;
                s.idle_sleep_us = o.idle_sleep_us;
                rte_eal_remote_launch(worker_main, &s, worker_lcores[w]);
            }
            std::vector<worker_stats*> sp;
            for (auto& s : stats) {
                sp.push_back(s.get());
            }
            generator gen(o, sp, control.get(), tsc_hz);
            std::vector<std::string> failures;
            json search_json;
            trial_outcome main_trial;
            double total_seconds = 0;
            if (o.search) {
                rate_search search(o.search_min_pps, o.search_max_pps, o.loss_tolerance, o.resolution);
                double found_frame_avg = 0; // average frame of the trial that set zero_loss_pps
                json trials = json::array();
                while (auto rate = search.next_rate()) {
                    if (g_interrupted) {
                        break;
                    }
                    const trial_outcome t = gen.run(*rate, 0, o.trial_s, 0);
                    total_seconds += t.seconds;
                    // A trial counts at the rate it attempted: a worker that could not offer the
                    // asked rate (a slow core, a descheduled one) must not pass that rate.
                    // Within 1 % (the pacer starts from an empty bucket) it is the asked rate.
                    const double attempted = static_cast<double>(t.offered) / o.trial_s;
                    trial_result r{attempted >= 0.99 * *rate ? *rate : attempted, t.offered, t.delivered};
                    search.record(r);
                    const double frame_avg =
                        t.c.sent_packets == 0 ? 0.0 : static_cast<double>(t.c.sent_frame_bytes) / static_cast<double>(t.c.sent_packets);
                    if (search.passes(r) && r.rate_pps >= search.zero_loss_pps()) {
                        found_frame_avg = frame_avg;
                    }
                    trials.push_back({{"rate_pps", r.rate_pps},
                                      {"asked_pps", *rate},
                                      {"frame_bytes_avg", frame_avg},
                                      {"offered", t.offered},
                                      {"delivered", t.delivered},
                                      {"lost", r.lost()},
                                      {"loss_fraction", r.loss_fraction()},
                                      {"passed", search.passes(r)},
                                      {"achieved_pps", t.seconds > 0 ? static_cast<double>(t.c.sent_packets) / t.seconds : 0},
                                      {"tx_refused", t.c.tx_refused}});
                    if (!o.quiet) {
                        std::fprintf(stderr, "kwik-gen: trial at %.0f pps (asked %.0f): offered %llu, delivered %llu, "
                                     "loss %.6f: %s\n", r.rate_pps, *rate, (unsigned long long)t.offered, (unsigned long long)t.delivered,
                                     r.loss_fraction(), search.passes(r) ? "pass" : "fail");
                    }
                }
                const double found = search.zero_loss_pps();
                search_json["trials"] = trials;
                search_json["zero_loss_pps"] = found;
                search_json["zero_loss_gbps_wire"] = found * (found_frame_avg + wire_overhead) * 8 / 1e9;
                if (found > 0 && !g_interrupted) {
                    main_trial = gen.run(found * o.latency_at, 0, o.trial_s, 0);
                    total_seconds += main_trial.seconds;
                    search_json["latency_rate_pps"] = found * o.latency_at;
                    search_json["latency"] = latency_json(main_trial.latency);
                    search_json["latency_trial"] = {{"offered", main_trial.offered}, {"delivered", main_trial.delivered}};
                } else {
                    search_json["latency_rate_pps"] = 0;
                    search_json["latency"] = latency_json(histogram_snapshot{});
                    failures.push_back("search: no rate from --search-min-pps " + std::to_string(o.search_min_pps) +
                                       " passed");
                }
            } else {
                main_trial = gen.run(o.rate_pps, o.rate_mbps, o.duration_s, o.packets);
                total_seconds = main_trial.seconds;
            }
            control->stop.store(true);
            rte_eal_mp_wait_lcore();

            const counter_values all = gen.totals();
            const std::uint64_t offered = all.sent_packets + all.tx_refused;
            const std::uint64_t delivered = gen.delivered_of(all);
            if (o.expect != expect_kind::none && delivered == 0) {
                failures.push_back("--expect " + std::string(to_string(o.expect)) + ": nothing was delivered");
            }
            if (all.connection_closes != 0) {
                std::uint64_t conn = 0, code = 0;
                for (auto& s : stats) {
                    if (s->counters.last_close_connection.load() != 0) {
                        conn = s->counters.last_close_connection.load() - 1;
                        code = s->counters.last_close_code.load();
                    }
                }
                failures.push_back("kwikd closed " + std::to_string(all.connection_closes) +
                                   " connection(s); the last: connection " + std::to_string(conn) + ", error code " +
                                   std::to_string(code));
            }
            if (g_interrupted) {
                failures.push_back("interrupted");
            }
            const double secs = total_seconds > 0 ? total_seconds : 1e-9;
            report["tool"] = "kwik-gen";
            report["format"] = 1;
            report["result"] = failures.empty() ? "ok" : "failed";
            report["failures"] = failures;
            report["parameters"] = to_json(o);
            report["port"] = {{"id", port->id()},
                              {"driver", port->offer().driver},
                              {"mac", kwik::drivers::mac_to_string(port->mac())},
                              {"name", port->name()}};
            report["lcores"] = {{"main", rte_get_main_lcore()}, {"workers", worker_lcores}};
            report["duration_s"] = total_seconds;
            report["sent"] = {{"packets", all.sent_packets},
                              {"frame_bytes", all.sent_frame_bytes},
                              {"payload_bytes", all.sent_payload_bytes},
                              {"tx_refused", all.tx_refused},
                              {"pool_empty_bursts", all.pool_empty},
                              {"control_packets", all.control_sent}};
            const double asked = o.rate_pps != 0 ? o.rate_pps : 0;
            report["rate"] = {{"offered_pps", asked != 0 ? asked : static_cast<double>(offered) / secs},
                              {"offered_mbps", o.rate_mbps},
                              {"attempted_pps", static_cast<double>(offered) / secs},
                              {"achieved_pps", static_cast<double>(all.sent_packets) / secs},
                              {"gbps_wire", static_cast<double>(all.sent_frame_bytes + wire_overhead * all.sent_packets) *
                                                8 / secs / 1e9},
                              {"gbps_payload", static_cast<double>(all.sent_payload_bytes) * 8 / secs / 1e9}};
            report["received"] = {{"packets", all.rx_packets},
                                  {"bytes", all.rx_bytes},
                                  {"acks", all.acks},
                                  {"acked_packets", all.acked_packets},
                                  {"reflected", all.reflected},
                                  {"reflected_duplicates", all.reflected_duplicates},
                                  {"echo_bytes", all.echo_bytes},
                                  {"window_updates", all.window_updates},
                                  {"path_challenges", all.path_challenges},
                                  {"connection_closes", all.connection_closes},
                                  {"control_other", all.control_other},
                                  {"late", all.late},
                                  {"other", all.other},
                                  {"malformed", all.malformed}};
            // With --expect none nothing is counted as delivered, and nothing as lost.
            const std::uint64_t lost = o.expect == expect_kind::none || offered <= delivered ? 0 : offered - delivered;
            report["delivered"] = delivered;
            report["lost"] = lost;
            report["loss_fraction"] = offered == 0 ? 0.0 : static_cast<double>(lost) / static_cast<double>(offered);
            report["flow_control_waits"] = all.flow_control_waits;
            report["stream_limit_waits"] = all.stream_limit_waits;
            report["streams_opened"] = all.streams_opened;
            report["handoff"] = {{"sent", all.handoff_sent}, {"dropped", all.handoff_dropped}};
            report["latency_us"] = latency_json(main_trial.latency);
            report["latency_ack_delay_corrected_us"] = latency_json(main_trial.latency_corrected);
            std::vector<json> per_worker;
            for (auto& s : stats) {
                per_worker.push_back(counters_json(counter_values::read(s->counters)));
            }
            report["workers"] = per_worker;
            if (o.search) {
                report["search"] = search_json;
            }
            if (!failures.empty()) {
                rc = 1;
            }
            if (!o.quiet) {
                std::fprintf(stderr,
                             "kwik-gen: sent %llu packets (%llu refused by the tx queue) in %.2f s: %.3f Mpps, "
                             "%.3f Gbit/s wire; delivered %llu, lost %llu; latency p50 %.1f us p99 %.1f us (%llu "
                             "samples)%s\n",
                             (unsigned long long)all.sent_packets, (unsigned long long)all.tx_refused, total_seconds,
                             static_cast<double>(all.sent_packets) / secs / 1e6,
                             report["rate"]["gbps_wire"].get<double>(), (unsigned long long)delivered,
                             (unsigned long long)report["lost"].get<std::uint64_t>(),
                             main_trial.latency.quantile(0.5) / 1e3, main_trial.latency.quantile(0.99) / 1e3,
                             (unsigned long long)main_trial.latency.count, failures.empty() ? "" : "; FAILED");
                for (const auto& f : failures) {
                    std::fprintf(stderr, "kwik-gen: failed: %s\n", f.c_str());
                }
            }
        } else {
            control->stop.store(true);
        }
        if (!o.json.empty() && rc != 3) {
            const std::string text = report.dump(1) + "\n";
            if (o.json == "-") {
                std::cout << text << std::flush;
            } else {
                std::ofstream f(o.json);
                f << text;
                f.close();
                if (!f) {
                    std::fprintf(stderr, "kwik-gen: --json: cannot write %s: %s\n", o.json.c_str(), std::strerror(errno));
                    rc = rc == 0 ? 1 : rc;
                }
            }
        }
        models.clear();
        for (rte_ring* r : inboxes) {
            rte_ring_free(r);
        }
        (void)port->close();
        rte_mempool_free(pool);
    }
    rte_eal_cleanup();
    return rc;
}

} // namespace

int main(int argc, char** argv) {
    return run(argc, argv);
}
