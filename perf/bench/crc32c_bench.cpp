// Throughput of the CRC32C dispatcher and its two back ends (ISA-L, SSE4.2 crc32 loop) at packet
// and buffer sizes, all in one run so the ratios are comparable. Single-threaded.
#include "dataplane/kdp/crc32c.hpp"

#include <benchmark/benchmark.h>

#include <cstddef>
#include <cstdint>
#include <random>
#include <vector>

namespace {

using crc_fn = std::uint32_t (*)(const void*, std::size_t, std::uint32_t) noexcept;

constexpr std::size_t max_size = 65536;

const std::vector<unsigned char>& input() {
    static const std::vector<unsigned char> buf = [] {
        std::mt19937 rng(1);
        std::vector<unsigned char> out(max_size);
        for (auto& b : out) {
            b = static_cast<unsigned char>(rng());
        }
        return out;
    }();
    return buf;
}

// Calls are independent, as they are for different packets in a burst, so the CPU may overlap
// the tail of one with the start of the next; that is the throughput a burst loop sees.
template <crc_fn Fn>
void bm_crc32c(benchmark::State& state) {
    const auto size = static_cast<std::size_t>(state.range(0));
    const unsigned char* data = input().data();
    for (auto _ : state) {
        benchmark::DoNotOptimize(data);
        std::uint32_t crc = Fn(data, size, 0);
        benchmark::DoNotOptimize(crc);
    }
    state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations()) *
                            static_cast<std::int64_t>(size));
}

void packet_sizes(benchmark::internal::Benchmark* b) {
    for (const std::int64_t size : {16, 64, 256, 512, 1024, 1500, 4096, 9000, 65536}) {
        b->Arg(size);
    }
}

BENCHMARK(bm_crc32c<kwik::kdp::crc32c>)->Name("crc32c")->Apply(packet_sizes);
BENCHMARK(bm_crc32c<kwik::kdp::crc32c_isal>)->Name("crc32c_isal")->Apply(packet_sizes);
BENCHMARK(bm_crc32c<kwik::kdp::crc32c_sse42>)->Name("crc32c_sse42")->Apply(packet_sizes);

} // namespace

BENCHMARK_MAIN();
