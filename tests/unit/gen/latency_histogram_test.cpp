// perf/gen/latency_histogram: buckets are contiguous and at most 1/32 wide; percentiles of a
// histogram agree with a sorted reference within a bucket; the CDF ends at 1.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

#include "perf/gen/latency_histogram.hpp"

namespace kwik::gen {
namespace {

TEST(latency_histogram, buckets_cover_every_value_once) {
    std::uint64_t expected_low = 0;
    for (std::size_t b = 0; b < histogram_bucket(std::uint64_t{1} << 39) + 1; ++b) {
        const auto [low, high] = histogram_bucket_range(b);
        ASSERT_EQ(low, expected_low) << "bucket " << b;
        ASSERT_GE(high, low);
        ASSERT_EQ(histogram_bucket(low), b);
        ASSERT_EQ(histogram_bucket(high), b);
        ASSERT_LE(static_cast<double>(high - low), static_cast<double>(low) / 32 + 1);
        expected_low = high + 1;
    }
    EXPECT_LT(histogram_bucket(~std::uint64_t{0}), histogram_buckets);
}

TEST(latency_histogram, percentiles_match_a_sorted_reference) {
    std::mt19937_64 rng(7);
    std::lognormal_distribution<double> dist(std::log(20'000.0), 0.8); // around 20 us
    latency_histogram h;
    std::vector<std::uint64_t> ref;
    for (int i = 0; i < 100'000; ++i) {
        const auto v = static_cast<std::uint64_t>(dist(rng));
        h.record(v);
        ref.push_back(v);
    }
    std::sort(ref.begin(), ref.end());
    const histogram_snapshot s = h.snapshot();
    EXPECT_EQ(s.count, ref.size());
    EXPECT_EQ(s.min, ref.front());
    EXPECT_EQ(s.max, ref.back());
    for (const double q : {0.5, 0.9, 0.99, 0.999}) {
        const double exact = static_cast<double>(ref[static_cast<std::size_t>(std::ceil(q * ref.size())) - 1]);
        EXPECT_NEAR(s.quantile(q), exact, exact / 32 + 1) << "q " << q;
    }
    double mean = 0;
    for (auto v : ref) {
        mean += static_cast<double>(v);
    }
    EXPECT_NEAR(s.mean(), mean / ref.size(), 1e-6 * mean / ref.size());
    const auto cdf = s.cdf();
    ASSERT_FALSE(cdf.empty());
    EXPECT_DOUBLE_EQ(cdf.back().second, 1.0);
    for (std::size_t i = 1; i < cdf.size(); ++i) {
        EXPECT_GT(cdf[i].first, cdf[i - 1].first);
        EXPECT_GT(cdf[i].second, cdf[i - 1].second);
    }
    // half of the samples lie at or below the median's bucket
    const auto at = std::find_if(cdf.begin(), cdf.end(), [&](const auto& p) { return p.first >= s.quantile(0.5); });
    ASSERT_NE(at, cdf.end());
    EXPECT_GE(at->second, 0.5);
}

TEST(latency_histogram, merge_and_reset) {
    latency_histogram a;
    latency_histogram b;
    a.record(10);
    b.record(1'000'000);
    histogram_snapshot m = a.snapshot();
    m.merge(b.snapshot());
    EXPECT_EQ(m.count, 2u);
    EXPECT_EQ(m.min, 10u);
    EXPECT_EQ(m.max, 1'000'000u);
    EXPECT_DOUBLE_EQ(m.quantile(0.5), 10);
    a.reset();
    EXPECT_EQ(a.snapshot().count, 0u);
    EXPECT_EQ(a.snapshot().quantile(0.5), 0);
}

} // namespace
} // namespace kwik::gen
