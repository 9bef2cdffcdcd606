// QUIC varints: sizes at every boundary, round trips, truncation and the minimal-encoding rule.
#include <gtest/gtest.h>

#include <random>

#include "dataplane/kdp/varint.hpp"

namespace kwik::kdp {
namespace {

struct boundary {
    std::uint64_t value;
    std::size_t size;
};

TEST(varint, size_at_every_boundary) {
    const boundary cases[] = {{0, 1},          {63, 1},          {64, 2},
                              {16383, 2},      {16384, 4},       {(1u << 30) - 1, 4},
                              {1u << 30, 8},   {varint_max, 8},  {varint_max + 1, 0},
                              {~std::uint64_t{0}, 0}};
    for (const boundary& b : cases) {
        EXPECT_EQ(varint_size(b.value), b.size) << b.value;
    }
}

TEST(varint, rfc9000_examples) {
    // RFC 9000 appendix A.1 sample encodings.
    struct example {
        std::vector<std::uint8_t> bytes;
        std::uint64_t value;
    };
    const example examples[] = {
        {{0xc2, 0x19, 0x7c, 0x5e, 0xff, 0x14, 0xe8, 0x8c}, 151288809941952652ull},
        {{0x9d, 0x7f, 0x3e, 0x7d}, 494878333},
        {{0x7b, 0xbd}, 15293},
        {{0x25}, 37},
    };
    for (const example& e : examples) {
        std::uint64_t v = 0;
        std::size_t used = 0;
        ASSERT_EQ(varint_read(e.bytes.data(), e.bytes.size(), &v, &used), varint_status::ok);
        EXPECT_EQ(v, e.value);
        EXPECT_EQ(used, e.bytes.size());
        std::uint8_t out[8];
        ASSERT_EQ(varint_write(out, e.value), e.bytes.size());
        EXPECT_TRUE(std::equal(e.bytes.begin(), e.bytes.end(), out));
    }
}

TEST(varint, non_minimal_is_rejected) {
    // RFC 9000 notes 37 may also be sent as 0x40 0x25; KDP accepts only the shortest form.
    const std::uint8_t two[] = {0x40, 0x25};
    const std::uint8_t four[] = {0x80, 0x00, 0x00, 0x25};
    const std::uint8_t eight[] = {0xC0, 0, 0, 0, 0, 0, 0x40, 0x00};
    std::uint64_t v = 0;
    std::size_t used = 0;
    EXPECT_EQ(varint_read(two, 2, &v, &used), varint_status::non_minimal);
    EXPECT_EQ(varint_read(four, 4, &v, &used), varint_status::non_minimal);
    EXPECT_EQ(varint_read(eight, 8, &v, &used), varint_status::non_minimal);
}

TEST(varint, truncated) {
    const std::uint8_t eight[] = {0xC0, 0, 0, 0, 0, 0, 0, 0};
    std::uint64_t v = 0;
    std::size_t used = 0;
    for (std::size_t n = 0; n < 8; ++n) {
        EXPECT_EQ(varint_read(eight, n, &v, &used), varint_status::truncated) << n;
    }
}

TEST(varint, random_round_trips) {
    std::mt19937_64 rng(42);
    for (int i = 0; i < 100000; ++i) {
        const int bits = static_cast<int>(rng() % 63);
        const std::uint64_t v = rng() & ((std::uint64_t{1} << bits) - 1);
        std::uint8_t buf[8];
        const std::size_t n = varint_write(buf, v);
        ASSERT_EQ(n, varint_size(v));
        ASSERT_EQ(varint_length(buf[0]), n);
        std::uint64_t back = 0;
        std::size_t used = 0;
        ASSERT_EQ(varint_read(buf, n, &back, &used), varint_status::ok);
        ASSERT_EQ(back, v);
        ASSERT_EQ(used, n);
    }
}

TEST(varint, too_large_writes_nothing) {
    std::uint8_t buf[8] = {0xAA, 0xAA, 0xAA, 0xAA, 0xAA, 0xAA, 0xAA, 0xAA};
    EXPECT_EQ(varint_write(buf, varint_max + 1), 0u);
    EXPECT_EQ(buf[0], 0xAA);
}

} // namespace
} // namespace kwik::kdp
