// Latency histogram of kwik-gen: log-linear buckets (32 per power of two, so a bucket is at most
// 1/32 = 3 % wide), exact min, max and sum. record() is written by one worker lcore (relaxed
// atomic stores, no read-modify-write), read by the main lcore at any time (snapshot()); no
// allocation after construction. Percentiles and CDF points come from a merged snapshot.
#pragma once

#include <array>
#include <atomic>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <utility>
#include <vector>

namespace kwik::gen {

inline constexpr unsigned histogram_sub_bits = 5; // 32 buckets per power of two
inline constexpr std::size_t histogram_sub = std::size_t{1} << histogram_sub_bits;
// Values are capped at 2^40 ns (18 minutes): the largest bucket index is below this.
inline constexpr unsigned histogram_max_log2 = 40;
inline constexpr std::size_t histogram_buckets = (histogram_max_log2 - histogram_sub_bits + 2) * histogram_sub;

// The bucket of value v: v itself below 32, else (msb - 4) * 32 + the 5 bits after the msb.
constexpr std::size_t histogram_bucket(std::uint64_t v) noexcept {
    if (v >= (std::uint64_t{1} << histogram_max_log2)) {
        v = (std::uint64_t{1} << histogram_max_log2) - 1;
    }
    if (v < histogram_sub) {
        return static_cast<std::size_t>(v);
    }
    const unsigned msb = 63u - static_cast<unsigned>(std::countl_zero(v));
    const unsigned shift = msb - histogram_sub_bits;
    return (shift + 1) * histogram_sub + static_cast<std::size_t>((v >> shift) - histogram_sub);
}

// The smallest and largest value of bucket b.
constexpr std::pair<std::uint64_t, std::uint64_t> histogram_bucket_range(std::size_t b) noexcept {
    if (b < histogram_sub) {
        return {b, b};
    }
    const std::size_t shift = b / histogram_sub - 1;
    const std::uint64_t low = (histogram_sub + b % histogram_sub) << shift;
    return {low, low + (std::uint64_t{1} << shift) - 1};
}

// A plain copy of a histogram (or the merge of several), for the main lcore's arithmetic.
struct histogram_snapshot {
    std::array<std::uint64_t, histogram_buckets> buckets{};
    std::uint64_t count = 0;
    std::uint64_t sum = 0;
    std::uint64_t min = ~std::uint64_t{0};
    std::uint64_t max = 0;

    void add(std::uint64_t v) noexcept; // for tests and merges of plain values
    void merge(const histogram_snapshot& o) noexcept;
    // The value at quantile q (0..1): the midpoint of the bucket holding the ceil(q * count)-th
    // smallest sample, clamped to [min, max]. 0 when empty.
    double quantile(double q) const noexcept;
    double mean() const noexcept { return count == 0 ? 0.0 : static_cast<double>(sum) / static_cast<double>(count); }
    // (value, fraction of samples <= value) at each non-empty bucket's upper end, ascending.
    std::vector<std::pair<double, double>> cdf() const;
};

class latency_histogram {
public:
    void record(std::uint64_t v) noexcept {
        bump(_buckets[histogram_bucket(v)], 1);
        bump(_count, 1);
        bump(_sum, v);
        if (v < _min.load(std::memory_order_relaxed)) {
            _min.store(v, std::memory_order_relaxed);
        }
        if (v > _max.load(std::memory_order_relaxed)) {
            _max.store(v, std::memory_order_relaxed);
        }
    }
    // By the writer only (between trials).
    void reset() noexcept;
    histogram_snapshot snapshot() const noexcept;

private:
    static void bump(std::atomic<std::uint64_t>& a, std::uint64_t n) noexcept {
        a.store(a.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
    }
    std::array<std::atomic<std::uint64_t>, histogram_buckets> _buckets{};
    std::atomic<std::uint64_t> _count{0};
    std::atomic<std::uint64_t> _sum{0};
    std::atomic<std::uint64_t> _min{~std::uint64_t{0}};
    std::atomic<std::uint64_t> _max{0};
};

} // namespace kwik::gen
