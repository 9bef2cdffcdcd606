// Cost of one path-scheduling decision (path_scheduler::select) with 2, 8 and 32 paths for each
// strategy, of one load-balancer step, and of raw-DEFLATE compression (ns per byte) at 1.5, 16
// and 64 KiB chunks, to choose the chunk size compressed before framing. Single-threaded.
// BENCHMARK_MAIN comes from another file of the benchmark executable.
#include "dataplane/transport/compressor.hpp"
#include "dataplane/transport/load_balancer.hpp"
#include "dataplane/transport/path_scheduler.hpp"

#include <benchmark/benchmark.h>

#include <cstddef>
#include <cstdint>
#include <random>
#include <string_view>
#include <vector>

namespace {

using namespace kwik::transport;

std::vector<path_candidate> make_paths(std::size_t n) {
    std::mt19937 rng(42);
    std::vector<path_candidate> paths(n);
    for (std::size_t i = 0; i < n; ++i) {
        path_candidate& c = paths[i];
        c.id = i;
        c.metrics.latency = (5 + rng() % 100) * ms;
        c.metrics.min_rtt = c.metrics.latency;
        c.metrics.bandwidth_bps = (10 + rng() % 990) * 1'000'000ull;
        c.metrics.packet_loss = static_cast<float>(rng() % 50) / 1000.0f;
        c.metrics.jitter = (rng() % 10) * ms;
        c.metrics.congestion = static_cast<float>(rng() % 100) / 100.0f;
        c.weight = static_cast<float>(1 + rng() % 10);
    }
    return paths;
}

template <schedule_strategy Strategy, kwik::kdp::priority Priority>
void bm_select(benchmark::State& state) {
    const std::vector<path_candidate> paths = make_paths(static_cast<std::size_t>(state.range(0)));
    path_scheduler s({.strategy = Strategy});
    qos_policy qos;
    for (auto _ : state) {
        const path_selection sel = s.select(paths, Priority, &qos);
        benchmark::DoNotOptimize(sel);
    }
}

using kwik::kdp::priority;
BENCHMARK(bm_select<schedule_strategy::min_rtt, priority::normal>)->Arg(2)->Arg(8)->Arg(32);
BENCHMARK(bm_select<schedule_strategy::weighted, priority::normal>)->Arg(2)->Arg(8)->Arg(32);
BENCHMARK(bm_select<schedule_strategy::round_robin, priority::normal>)->Arg(2)->Arg(8)->Arg(32);
BENCHMARK(bm_select<schedule_strategy::redundant, priority::critical>)->Arg(2)->Arg(8)->Arg(32);

void bm_load_balancer_adapt(benchmark::State& state) {
    std::vector<path_candidate> paths = make_paths(static_cast<std::size_t>(state.range(0)));
    adaptive_load_balancer lb;
    for (auto _ : state) {
        lb.adapt(paths);
        benchmark::ClobberMemory();
    }
}
BENCHMARK(bm_load_balancer_adapt)->Arg(2)->Arg(8)->Arg(32);

// English-like text (a 20-word vocabulary): compresses to about a fifth at level 1.
const std::vector<std::uint8_t>& text_input() {
    static const std::vector<std::uint8_t> buf = [] {
        static constexpr std::string_view words[] = {
            "the ", "path ", "packet ", "stream ", "scheduler ", "window ", "congestion ", "of ",
            "and ", "a ", "multipath ", "frame ", "acknowledgement ", "retransmit ", "to ", "in ",
            "latency ", "bandwidth ", "loss ", "\n"};
        std::mt19937 rng(1);
        std::vector<std::uint8_t> out;
        while (out.size() < 65536) {
            for (char c : words[rng() % std::size(words)]) {
                out.push_back(static_cast<std::uint8_t>(c));
            }
        }
        out.resize(65536);
        return out;
    }();
    return buf;
}

void set_byte_counters(benchmark::State& state, std::size_t size, std::size_t compressed) {
    const double bytes = static_cast<double>(state.iterations()) * static_cast<double>(size);
    state.SetBytesProcessed(static_cast<std::int64_t>(bytes));
    // Inverted rate: seconds per byte, printed with an SI prefix (e.g. "1.7n" = 1.7 ns/byte).
    state.counters["per_byte"] =
        benchmark::Counter(bytes, benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
    state.counters["ratio"] = static_cast<double>(compressed) / static_cast<double>(size);
}

void bm_deflate(benchmark::State& state) {
    const auto size = static_cast<std::size_t>(state.range(0));
    const int level = static_cast<int>(state.range(1));
    const std::vector<std::uint8_t>& in = text_input();
    std::vector<std::uint8_t> out(size + deflate_out_slack);
    deflate_compressor c(level);
    std::size_t z = 0;
    for (auto _ : state) {
        z = c.compress({in.data(), size}, out);
        benchmark::DoNotOptimize(z);
    }
    if (z == 0) {
        state.SkipWithError("did not compress");
    }
    set_byte_counters(state, size, z);
}
BENCHMARK(bm_deflate)->ArgNames({"bytes", "level"})
    ->Args({1536, 1})->Args({16384, 1})->Args({65536, 1})
    ->Args({1536, 0})->Args({16384, 0})->Args({65536, 0});

// Incompressible input: what a wasted attempt costs (the caller then sends it uncompressed).
void bm_deflate_random(benchmark::State& state) {
    const auto size = static_cast<std::size_t>(state.range(0));
    std::mt19937 rng(2);
    std::vector<std::uint8_t> in(size);
    for (auto& b : in) {
        b = static_cast<std::uint8_t>(rng());
    }
    std::vector<std::uint8_t> out(size + deflate_out_slack);
    deflate_compressor c(1);
    for (auto _ : state) {
        benchmark::DoNotOptimize(c.compress(in, out));
    }
    set_byte_counters(state, size, size);
}
BENCHMARK(bm_deflate_random)->Arg(1536)->Arg(16384)->Arg(65536);

void bm_inflate(benchmark::State& state) {
    const auto size = static_cast<std::size_t>(state.range(0));
    const std::vector<std::uint8_t>& in = text_input();
    std::vector<std::uint8_t> z(size + deflate_out_slack);
    deflate_compressor c(1);
    const std::size_t zn = c.compress({in.data(), size}, z);
    std::vector<std::uint8_t> out(size);
    deflate_decompressor d;
    for (auto _ : state) {
        const bool ok = d.decompress({z.data(), zn}, out, size);
        benchmark::DoNotOptimize(ok);
    }
    set_byte_counters(state, size, zn);
}
BENCHMARK(bm_inflate)->Arg(1536)->Arg(16384)->Arg(65536);

} // namespace
