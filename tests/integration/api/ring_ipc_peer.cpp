// The kwikd side of tests/integration/api/ring_ipc_test.cpp: starts EAL (no hugepages, no PCI,
// one lcore), creates the shared-memory region and initialises its rings, then answers every
// command with a command_result (a validation failure with its reason), answers
// request_counters with counters_ready after publishing its counters, and on SIGTERM marks the
// region stopping, publishes final counters and exits 0.
// Usage: api_ring_ipc_peer <region name> <lock directory>
#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_lcore.h>

#include <csignal>
#include <span>
#include <cstdio>
#include <ctime>
#include <string>
#include <vector>

#include "dataplane/api/command_ring.hpp"
#include "dataplane/api/commands.hpp"
#include "dataplane/api/counters.hpp"
#include "dataplane/api/shm_region.hpp"
#include "dataplane/kdp/drop_reason.hpp"

namespace {

namespace api = kwik::api;

volatile std::sig_atomic_t g_stop = 0;

void on_signal(int) {
    g_stop = 1;
}

std::uint64_t now_ns() {
    timespec ts{};
    ::clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<std::uint64_t>(ts.tv_sec) * 1000000000ull + static_cast<std::uint64_t>(ts.tv_nsec);
}

} // namespace

int main(int argc, char** argv) {
    if (argc != 3) {
        std::fprintf(stderr, "usage: %s <region name> <lock directory>\n", argv[0]);
        return 2;
    }
    const std::string name = argv[1];
    // One fixed prefix (the test runs alone): EAL leaves a runtime directory per prefix behind.
    const std::string prefix = "--file-prefix=kwik_api_ring_ipc_peer";
    std::vector<std::string> eal_args = {
        argv[0], "--no-huge", "--no-pci", "-m", "64", "--no-shconf", prefix, "--no-telemetry", "--log-level=*:warning",
        "-l",    "0"};
    std::vector<char*> eal_argv;
    for (std::string& a : eal_args) {
        eal_argv.push_back(a.data());
    }
    if (rte_eal_init(static_cast<int>(eal_argv.size()), eal_argv.data()) < 0) {
        std::fprintf(stderr, "rte_eal_init: %s\n", rte_strerror(rte_errno));
        return 3;
    }
    std::signal(SIGTERM, on_signal);
    std::signal(SIGINT, on_signal);

    int rc = 0;
    {
        api::region_config config;
        config.name = name;
        config.lock_directory = argv[2];
        config.command_ring_slots = 1024;
        config.event_ring_slots = 1024;
        config.counters.workers = 1;
        config.counters.ports = 1;
        config.counters.max_connections = 64;
        config.counters.max_paths = 64;
        auto region = api::shm_region::create(config);
        if (!region) {
            std::fprintf(stderr, "%s\n", region.message().c_str());
            rte_eal_cleanup();
            return 4;
        }
        auto channel = api::dataplane_channel::create(*region);
        if (!channel) {
            std::fprintf(stderr, "%s\n", channel.message().c_str());
            rte_eal_cleanup();
            return 5;
        }
        auto counters = api::counters_writer::attach(*region, 0, rte_lcore_id());
        if (!counters) {
            std::fprintf(stderr, "%s\n", counters.message().c_str());
            rte_eal_cleanup();
            return 6;
        }
        api::worker_counters totals{};
        std::vector<std::uint64_t> drops(kwik::kdp::drop_reason_count, 0);
        auto publish = [&] {
            counters->begin_publish();
            counters->store_worker(totals);
            counters->store_drops(drops);
            counters->end_publish(now_ns());
        };
        std::printf("ready pid %d eal lcore %u\n", static_cast<int>(::getpid()), rte_lcore_id());
        std::fflush(stdout);

        // The main lcore's housekeeping pass: take up to a burst of commands, act on each, send
        // the results in one burst.
        constexpr std::size_t burst = 32;
        std::vector<api::command> commands(burst);
        std::vector<api::event> results(burst);
        std::uint64_t idle = 0;
        while (g_stop == 0) {
            const unsigned n = channel->receive_burst(commands);
            if (n == 0) {
                if ((++idle & 0xFFFFF) == 0) {
                    region->heartbeat(now_ns());
                }
                continue;
            }
            for (unsigned i = 0; i < n; ++i) {
                const api::command& c = commands[i];
                ++totals.commands_applied;
                const api::validation v = api::validate(c);
                if (!v) {
                    results[i] = api::make_rejection(c, v);
                } else if (c.header.type == api::message_type::request_counters) {
                    publish();
                    const std::uint64_t epoch = api::advance_epoch(*region, now_ns());
                    results[i] = api::make_counters_ready(c.header.sequence, epoch, 1);
                } else {
                    results[i] = api::make_command_result(c, api::result_status::ok);
                }
            }
            // kwikd proper counts a refused event and drops it; the test wants every one.
            std::span<api::event> pending(results.data(), n);
            while (!pending.empty() && g_stop == 0) {
                pending = pending.subspan(channel->send_burst(pending));
            }
        }
        region->set_state(api::region_state::stopping);
        publish();
        std::printf("stopping after %llu commands\n", static_cast<unsigned long long>(totals.commands_applied));
        std::fflush(stdout);
    } // the region is marked stopped and unlinked here
    if (rte_eal_cleanup() != 0) {
        rc = 7;
    }
    return rc;
}
