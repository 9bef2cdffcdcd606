// Discovery over 10,000 registered servers (controlplane/server/registry.*): requests per second
// on one core, and latency percentiles from a timed loop. Baseline in the same run: the naive
// implementation (each server's strings compared per request, every match costed, all of them
// fully sorted, the top 8 answered), and the sort alone (std::sort of every candidate against the
// bounded heap discover() keeps), so the figures say what interning and the heap each buy.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <ctime>
#include <random>
#include <string>
#include <vector>

#include "controlplane/server/registry.hpp"
#include "perf/bench/cp_fleet.hpp"

namespace {

using namespace kwik::cp;
using kwik::kcp::v3::ServerDiscoveryRequest;
using kwik::kcp::v3::ServerDiscoveryResponse;

constexpr std::uint64_t now_ms = 1'700'000'000'000;
constexpr std::size_t servers = 10'000;
constexpr std::size_t top_n = 8;

struct fixture {
    std::vector<server_registration> registrations;
    std::vector<ServerDiscoveryRequest> requests; // cycled: 64 typical ones
    server_registry registry{registry_config{.max_results = top_n}};

    fixture() {
        kwik::perf::cp_fleet f = kwik::perf::make_cp_fleet(servers);
        registrations = std::move(f.registrations);
        requests = std::move(f.requests);
        for (const server_registration& r : registrations) {
            (void)registry.register_server(r, now_ms);
        }
    }
};

fixture& shared() {
    static fixture f;
    return f;
}

// The naive discovery: strings compared per server, every match costed (same formula) and fully
// sorted. Redundancy is left out, so it does less than discover() for a quarter of the requests.
ServerDiscoveryResponse naive_discover(const std::vector<server_registration>& all, const ServerDiscoveryRequest& r) {
    const auto ppm = [](float rate) { return static_cast<std::uint64_t>(std::lround(static_cast<double>(rate) * 1e6)); };
    std::vector<std::pair<std::uint64_t, std::size_t>> ranked;
    for (std::size_t i = 0; i < all.size(); ++i) {
        const available_server& s = all[i].server;
        bool ok = s.available_bandwidth_mbps() >= r.qos_requirements().min_bandwidth_mbps() &&
                  s.latency_ms() <= r.qos_requirements().max_latency_ms();
        for (const std::string& c : r.required_capabilities()) {
            ok = ok && std::find(s.capabilities().begin(), s.capabilities().end(), c) != s.capabilities().end();
        }
        if (!ok || (all[i].packet_loss_rate && ppm(*all[i].packet_loss_rate) > ppm(r.qos_requirements().max_packet_loss_rate()))) {
            continue;
        }
        std::uint64_t cost = 1000ull * s.latency_ms() + 1000ull * s.current_load_percent();
        const std::uint64_t want = r.desired_bandwidth_mbps();
        cost += 100'000 * (want - std::min<std::uint64_t>(s.available_bandwidth_mbps(), want)) / want;
        cost += all[i].packet_loss_rate ? 10'000 * ppm(*all[i].packet_loss_rate) / 10'000 : 0;
        const auto& preferred = r.geo_preference().preferred_regions();
        const auto at = std::find(preferred.begin(), preferred.end(), s.location().region());
        cost += at == preferred.end() ? 100'000 : 10'000 * static_cast<std::uint64_t>(at - preferred.begin());
        ranked.emplace_back(cost, i);
    }
    std::sort(ranked.begin(), ranked.end(), [&all](const auto& a, const auto& b) {
        return a.first != b.first ? a.first < b.first : all[a.second].server_id < all[b.second].server_id;
    });
    ServerDiscoveryResponse answer;
    std::uint64_t total = 0;
    for (std::size_t i = 0; i < std::min(top_n, ranked.size()); ++i) {
        *answer.add_servers() = all[ranked[i].second].server;
        total += all[ranked[i].second].server.available_bandwidth_mbps();
    }
    answer.set_total_available_bandwidth_mbps(static_cast<std::uint32_t>(total));
    return answer;
}

void BM_discover(benchmark::State& state) {
    fixture& f = shared();
    std::size_t q = 0;
    std::size_t answered = 0;
    for (auto _ : state) {
        const ServerDiscoveryResponse a = f.registry.discover(f.requests[q++ % f.requests.size()], now_ms);
        answered += static_cast<std::size_t>(a.servers_size());
        benchmark::DoNotOptimize(a);
    }
    state.SetItemsProcessed(state.iterations());
    state.counters["servers_per_answer"] = static_cast<double>(answered) / static_cast<double>(state.iterations());
}
BENCHMARK(BM_discover);

void BM_naive_full_sort(benchmark::State& state) {
    fixture& f = shared();
    // Same answers as discover() wherever redundancy is not asked for, or the comparison is void.
    for (const ServerDiscoveryRequest& r : f.requests) {
        if (r.qos_requirements().require_redundancy()) {
            continue;
        }
        const ServerDiscoveryResponse ours = f.registry.discover(r, now_ms);
        const ServerDiscoveryResponse naive = naive_discover(f.registrations, r);
        bool same = ours.servers_size() == naive.servers_size() &&
                    ours.total_available_bandwidth_mbps() == naive.total_available_bandwidth_mbps();
        for (int i = 0; same && i < ours.servers_size(); ++i) {
            same = ours.servers(i).address() == naive.servers(i).address();
        }
        if (!same) {
            state.SkipWithError("naive_discover and discover() disagree");
            return;
        }
    }
    std::size_t q = 0;
    for (auto _ : state) {
        benchmark::DoNotOptimize(naive_discover(f.registrations, f.requests[q++ % f.requests.size()]));
    }
    state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_naive_full_sort);

// The sort alone, on 10,000 random candidates: full std::sort against the bounded heap.
std::vector<std::pair<std::uint64_t, std::uint32_t>> random_candidates() {
    std::mt19937_64 rng(5);
    std::vector<std::pair<std::uint64_t, std::uint32_t>> c(servers);
    for (std::uint32_t i = 0; i < servers; ++i) {
        c[i] = {rng() % 700'000, i};
    }
    return c;
}

void BM_sort_all(benchmark::State& state) {
    const auto input = random_candidates();
    std::vector<std::pair<std::uint64_t, std::uint32_t>> work;
    for (auto _ : state) {
        work = input;
        std::sort(work.begin(), work.end());
        benchmark::DoNotOptimize(work.data());
    }
}
BENCHMARK(BM_sort_all);

void BM_heap_top8(benchmark::State& state) {
    const auto input = random_candidates();
    std::vector<std::pair<std::uint64_t, std::uint32_t>> heap;
    heap.reserve(top_n);
    for (auto _ : state) {
        heap.clear();
        for (const auto& c : input) {
            if (heap.size() < top_n) {
                heap.push_back(c);
                std::push_heap(heap.begin(), heap.end());
            } else if (c < heap.front()) {
                std::pop_heap(heap.begin(), heap.end());
                heap.back() = c;
                std::push_heap(heap.begin(), heap.end());
            }
        }
        std::sort_heap(heap.begin(), heap.end());
        benchmark::DoNotOptimize(heap.data());
    }
}
BENCHMARK(BM_heap_top8);

// Latency percentiles: 20,000 requests timed one by one, cycling the 64 requests. Wall time
// (steady_clock) includes the time this shared VM gives to other processes; the thread's CPU
// time (CLOCK_THREAD_CPUTIME_ID, a system call of about 0.3 us each side) leaves that out, so its
// tail is the requests' own.
double thread_cpu_us() {
    timespec ts{};
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return static_cast<double>(ts.tv_sec) * 1e6 + static_cast<double>(ts.tv_nsec) / 1e3;
}

template <class Discover> void timed_loop(benchmark::State& state, Discover discover) {
    fixture& f = shared();
    constexpr std::size_t rounds = 20'000;
    std::vector<double> wall;
    std::vector<double> cpu;
    wall.reserve(rounds);
    cpu.reserve(rounds);
    for (auto _ : state) {
        wall.clear();
        cpu.clear();
        for (std::size_t i = 0; i < rounds; ++i) {
            const double cpu_start = thread_cpu_us();
            const auto start = std::chrono::steady_clock::now();
            benchmark::DoNotOptimize(discover(f, f.requests[i % f.requests.size()]));
            const auto end = std::chrono::steady_clock::now();
            cpu.push_back(thread_cpu_us() - cpu_start);
            wall.push_back(std::chrono::duration<double, std::micro>(end - start).count());
        }
    }
    for (auto* v : {&wall, &cpu}) {
        std::sort(v->begin(), v->end());
    }
    state.counters["p50_us"] = wall[rounds / 2];
    state.counters["p99_us"] = wall[rounds * 99 / 100];
    state.counters["max_us"] = wall.back();
    state.counters["cpu_p50_us"] = cpu[rounds / 2];
    state.counters["cpu_p99_us"] = cpu[rounds * 99 / 100];
}

void BM_discover_latency(benchmark::State& state) {
    timed_loop(state, [](fixture& f, const ServerDiscoveryRequest& r) { return f.registry.discover(r, now_ms); });
}
BENCHMARK(BM_discover_latency)->Iterations(1)->Unit(benchmark::kMillisecond);

void BM_naive_full_sort_latency(benchmark::State& state) {
    timed_loop(state, [](fixture& f, const ServerDiscoveryRequest& r) { return naive_discover(f.registrations, r); });
}
BENCHMARK(BM_naive_full_sort_latency)->Iterations(1)->Unit(benchmark::kMillisecond);

} // namespace

BENCHMARK_MAIN();
