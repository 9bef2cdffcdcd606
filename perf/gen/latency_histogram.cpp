// kwik-gen's latency histogram; see latency_histogram.hpp.
#include "perf/gen/latency_histogram.hpp"

#include <algorithm>
#include <cmath>

namespace kwik::gen {

void histogram_snapshot::add(std::uint64_t v) noexcept {
    ++buckets[histogram_bucket(v)];
    ++count;
    sum += v;
    min = std::min(min, v);
    max = std::max(max, v);
}

void histogram_snapshot::merge(const histogram_snapshot& o) noexcept {
    for (std::size_t b = 0; b < histogram_buckets; ++b) {
        buckets[b] += o.buckets[b];
    }
    count += o.count;
    sum += o.sum;
    min = std::min(min, o.min);
    max = std::max(max, o.max);
}

double histogram_snapshot::quantile(double q) const noexcept {
    if (count == 0) {
        return 0;
    }
    const std::uint64_t rank = std::max<std::uint64_t>(
        1, std::min<std::uint64_t>(count, static_cast<std::uint64_t>(std::ceil(q * static_cast<double>(count)))));
    std::uint64_t seen = 0;
    for (std::size_t b = 0; b < histogram_buckets; ++b) {
        seen += buckets[b];
        if (seen >= rank) {
            const auto [low, high] = histogram_bucket_range(b);
            const double mid = (static_cast<double>(low) + static_cast<double>(high)) / 2;
            return std::clamp(mid, static_cast<double>(min), static_cast<double>(max));
        }
    }
    return static_cast<double>(max);
}

std::vector<std::pair<double, double>> histogram_snapshot::cdf() const {
    std::vector<std::pair<double, double>> out;
    std::uint64_t seen = 0;
    for (std::size_t b = 0; b < histogram_buckets && seen < count; ++b) {
        if (buckets[b] == 0) {
            continue;
        }
        seen += buckets[b];
        const double top = std::min(static_cast<double>(histogram_bucket_range(b).second), static_cast<double>(max));
        out.emplace_back(top, static_cast<double>(seen) / static_cast<double>(count));
    }
    return out;
}

void latency_histogram::reset() noexcept {
    for (auto& b : _buckets) {
        b.store(0, std::memory_order_relaxed);
    }
    _count.store(0, std::memory_order_relaxed);
    _sum.store(0, std::memory_order_relaxed);
    _min.store(~std::uint64_t{0}, std::memory_order_relaxed);
    _max.store(0, std::memory_order_relaxed);
}

histogram_snapshot latency_histogram::snapshot() const noexcept {
    histogram_snapshot s;
    for (std::size_t b = 0; b < histogram_buckets; ++b) {
        s.buckets[b] = _buckets[b].load(std::memory_order_relaxed);
    }
    s.count = _count.load(std::memory_order_relaxed);
    s.sum = _sum.load(std::memory_order_relaxed);
    s.min = _min.load(std::memory_order_relaxed);
    s.max = _max.load(std::memory_order_relaxed);
    return s;
}

} // namespace kwik::gen
