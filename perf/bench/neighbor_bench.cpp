// The neighbour table's costs on a kwikd worker (dataplane/engine/neighbor_table.*): the sweep
// slice each worker runs every millisecond per port (256 slots of a 4096-entry table), a
// resolve() of a known destination (a path's first packet once the MAC is known: later ones
// use the route's MAC and never reach the table) and a learn() that only confirms (what a
// received ARP message or a path's changed source MAC costs). No EAL: mbufs are never touched.
#include <benchmark/benchmark.h>

#include <array>
#include <cstdint>

#include "dataplane/engine/neighbor_table.hpp"

namespace {

using namespace kwik::engine;

constexpr mac_address our_mac{{0x02, 0x00, 0x00, 0x00, 0x00, 0x01}};
constexpr mac_address peer_mac{{0x02, 0xAA, 0xBB, 0xCC, 0xDD, 0x01}};

// A table of the worker's default capacity holding `live` complete entries 10.0.x.y.
neighbor_table& filled(std::size_t live) {
    static neighbor_config c = [] {
        neighbor_config n;
        n.mac = our_mac;
        (void)n.add_interface(ip_address::v4(0x0A000001), 16);
        return n;
    }();
    static neighbor_table t(c);
    std::array<rte_mbuf*, neighbor_table::max_held> released{};
    for (std::size_t i = t.size(); i < live; ++i) {
        t.learn(ip_address::v4(0x0A000002u + static_cast<std::uint32_t>(i)), peer_mac, 0, released);
    }
    return t;
}

void BM_sweep_slice(benchmark::State& state) {
    neighbor_table& t = filled(static_cast<std::size_t>(state.range(0)));
    std::array<rte_mbuf*, 96> expired{};
    for (auto _ : state) {
        // Nothing is stale at 1 s: the slice visits 256 slots and removes nothing.
        benchmark::DoNotOptimize(t.sweep(kwik::transport::sec, expired, 256));
    }
    state.counters["entries"] = static_cast<double>(t.size());
}
BENCHMARK(BM_sweep_slice)->Arg(1)->Arg(1000)->Arg(3000);

void BM_resolve_known(benchmark::State& state) {
    neighbor_table& t = filled(3000);
    std::uint32_t i = 0;
    for (auto _ : state) {
        const resolution r = t.resolve(ip_address::v4(0x0A000002u + (i++ % 3000)), nullptr, 1);
        benchmark::DoNotOptimize(r);
    }
}
BENCHMARK(BM_resolve_known);

void BM_learn_confirm(benchmark::State& state) {
    neighbor_table& t = filled(3000);
    std::array<rte_mbuf*, neighbor_table::max_held> released{};
    std::uint32_t i = 0;
    for (auto _ : state) {
        benchmark::DoNotOptimize(t.learn(ip_address::v4(0x0A000002u + (i++ % 3000)), peer_mac, 1, released));
    }
}
BENCHMARK(BM_learn_confirm);

} // namespace

BENCHMARK_MAIN();
