// RFC 1071 sums of dataplane/engine/net_headers.*: checksum_add (SSE2 blocks) and
// checksum_add_wide (AVX2 where the CPU has it) against a word-at-a-time reference, over every
// length around their block sizes, every alignment, extreme data and a carried-in sum. No EAL.
#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <random>
#include <vector>

#include "dataplane/engine/net_headers.hpp"

namespace kwik::engine {
namespace {

// The definition: 16-bit words in native order (as the engine loads them), an odd last byte
// padded with zero, end-around carries at the end.
std::uint16_t reference(const std::uint8_t* p, std::size_t n, std::uint64_t sum) {
    for (; n >= 2; p += 2, n -= 2) {
        std::uint16_t w;
        std::memcpy(&w, p, 2);
        sum += w;
    }
    if (n == 1) {
        std::uint16_t w = 0;
        std::memcpy(&w, p, 1);
        sum += w;
    }
    return checksum_fold(sum);
}

// Equal as one's-complement numbers (0 and 0xFFFF are both zero).
bool same(std::uint16_t a, std::uint16_t b) { return a % 0xFFFF == b % 0xFFFF; }

std::vector<std::uint8_t> random_bytes(std::size_t n, std::uint64_t seed) {
    std::mt19937_64 rng(seed);
    std::vector<std::uint8_t> v(n);
    for (auto& b : v) {
        b = static_cast<std::uint8_t>(rng());
    }
    return v;
}

TEST(checksum, both_sums_equal_the_reference_at_every_length_and_alignment) {
    const std::vector<std::uint8_t> data = random_bytes(4096 + 8, 7);
    for (std::size_t off = 0; off < 4; ++off) {
        for (std::size_t n = 0; n <= 4096; n += (n < 600 ? 1 : 61)) {
            const std::uint8_t* p = data.data() + off;
            const std::uint16_t want = reference(p, n, 0x1234);
            ASSERT_TRUE(same(checksum_fold(checksum_add(p, n, 0x1234)), want)) << "checksum_add n " << n << " off " << off;
            ASSERT_TRUE(same(checksum_fold(checksum_add_wide(p, n, 0x1234)), want))
                << "checksum_add_wide n " << n << " off " << off;
        }
    }
}

TEST(checksum, extreme_words_and_blocks_beyond_64_KiB) {
    // All-ones words are the largest the signed VPMADDWD lanes see (0xFFFF ^ 0x8000 = 32767),
    // zero words the smallest (-32768); 200 KiB crosses the 64 KiB block flushes.
    for (const std::uint8_t fill : {std::uint8_t{0xFF}, std::uint8_t{0x00}, std::uint8_t{0x80}, std::uint8_t{0x7F}}) {
        const std::vector<std::uint8_t> data(200 * 1024 + 3, fill);
        for (const std::size_t n : {std::size_t{256}, std::size_t{1443}, std::size_t{65536}, std::size_t{65600},
                                    data.size()}) {
            const std::uint16_t want = reference(data.data(), n, 0);
            EXPECT_TRUE(same(checksum_fold(checksum_add_wide(data.data(), n, 0)), want))
                << "fill " << int(fill) << " n " << n;
        }
    }
    const std::vector<std::uint8_t> data = random_bytes(300 * 1024 + 1, 11);
    EXPECT_TRUE(same(checksum_fold(checksum_add_wide(data.data(), data.size(), ~std::uint64_t{0} >> 20)),
                     reference(data.data(), data.size(), ~std::uint64_t{0} >> 20)));
}

TEST(checksum, a_verified_udp_payload_folds_to_all_ones) {
    // A checksum field filled from the sum makes the whole verify to 0xFFFF, as the
    // classifier checks it.
    std::vector<std::uint8_t> data = random_bytes(1443, 3);
    data[6] = data[7] = 0;
    const std::uint16_t field = checksum_finish(checksum_add_wide(data.data(), data.size(), 0));
    std::memcpy(&data[6], &field, 2);
    EXPECT_EQ(checksum_fold(checksum_add_wide(data.data(), data.size(), 0)), 0xFFFF);
}

} // namespace
} // namespace kwik::engine
