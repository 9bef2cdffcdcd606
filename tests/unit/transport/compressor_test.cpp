// Unit tests for dataplane/transport/compressor: round trips on text, random and zero data of many
// sizes at every level, the min_saving budget, known-answer raw-DEFLATE streams (zlib's output,
// hand-built stored and fixed-Huffman blocks), and refusal of corrupt, truncated, trailing and
// wrong-size input.
#include "dataplane/transport/compressor.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <random>
#include <stdexcept>
#include <string_view>
#include <vector>

namespace kwik::transport {
namespace {

using bytes = std::vector<std::uint8_t>;

enum class kind { text, random, zeros };

bytes make(kind k, std::size_t n, std::uint32_t seed = 1) {
    static constexpr std::string_view words[] = {
        "the ", "path ", "packet ", "stream ", "scheduler ", "window ", "congestion ", "of ",
        "and ", "a ", "multipath ", "frame ", "acknowledgement ", "retransmit ", "to ", "in ",
        "latency ", "bandwidth ", "loss ", "\n"};
    bytes out;
    out.reserve(n);
    std::mt19937 rng(seed);
    while (out.size() < n) {
        if (k == kind::zeros) {
            out.push_back(0);
        } else if (k == kind::random) {
            out.push_back(static_cast<std::uint8_t>(rng()));
        } else {
            for (char c : words[rng() % std::size(words)]) {
                if (out.size() < n) {
                    out.push_back(static_cast<std::uint8_t>(c));
                }
            }
        }
    }
    return out;
}

constexpr std::size_t sizes[] = {1, 2, 15, 16, 64, 100, 255, 256, 257, 1000, 1400, 1500, 4096,
                                 9000, 16384, 65535, 65536, 100'000, std::size_t{1} << 20};

TEST(deflate, round_trips_text_random_zeros_at_many_sizes) {
    deflate_compressor c;
    deflate_decompressor d;
    for (const kind k : {kind::text, kind::random, kind::zeros}) {
        for (const std::size_t n : sizes) {
            const bytes in = make(k, n);
            bytes z(n + 1024, 0xAB);
            const std::size_t zn = c.compress(in, z);
            const auto budget = static_cast<std::size_t>(std::floor(static_cast<double>(n) * 0.875));
            // Bytes past the budget and igzip's slack are never touched.
            EXPECT_TRUE(std::all_of(z.begin() + static_cast<std::ptrdiff_t>(budget + deflate_out_slack), z.end(),
                                    [](std::uint8_t b) { return b == 0xAB; }))
                << "n=" << n;
            if (k == kind::random) {
                EXPECT_EQ(zn, 0u) << "random data of " << n << " bytes is incompressible";
                continue;
            }
            if (n >= 256) {
                ASSERT_GT(zn, 0u) << "n=" << n << " kind=" << static_cast<int>(k);
            }
            if (zn == 0) {
                continue;
            }
            EXPECT_LE(zn, budget);
            bytes back(n + 16, 0xCD);
            ASSERT_TRUE(d.decompress({z.data(), zn}, back, n)) << "n=" << n;
            EXPECT_TRUE(std::equal(in.begin(), in.end(), back.begin())) << "n=" << n;
            EXPECT_TRUE(std::all_of(back.begin() + static_cast<std::ptrdiff_t>(n), back.end(),
                                    [](std::uint8_t b) { return b == 0xCD; }));
        }
    }
}

TEST(deflate, every_level_round_trips) {
    deflate_decompressor d;
    const bytes in = make(kind::text, 20'000, 9);
    for (int level = 0; level <= 3; ++level) {
        deflate_compressor c(level);
        EXPECT_EQ(c.level(), level);
        bytes z(in.size());
        const std::size_t zn = c.compress(in, z);
        ASSERT_GT(zn, 0u) << "level " << level;
        EXPECT_LT(zn, in.size() / 2) << "level " << level;
        bytes back(in.size());
        ASSERT_TRUE(d.decompress({z.data(), zn}, back, in.size())) << "level " << level;
        EXPECT_EQ(back, in);
    }
    EXPECT_THROW(deflate_compressor(4), std::invalid_argument);
    EXPECT_THROW(deflate_compressor(-1), std::invalid_argument);
}

TEST(deflate, min_saving_and_output_space) {
    deflate_compressor c;
    const bytes in = make(kind::text, 4000, 3);
    bytes z(in.size());
    const std::size_t full = c.compress(in, z, 0.0);
    ASSERT_GT(full, 0u);
    // Demanding exactly the saving achieved still succeeds; one byte more does not.
    const double achieved = 1.0 - static_cast<double>(full) / static_cast<double>(in.size());
    EXPECT_EQ(c.compress(in, z, achieved - 1e-9), full);
    EXPECT_EQ(c.compress(in, z, 1.0 - static_cast<double>(full - 1) / static_cast<double>(in.size())), 0u);
    EXPECT_EQ(c.compress(in, z, 1.0), 0u);
    // An out span of the result's size plus the slack works; far too short does not.
    bytes exact(full + deflate_out_slack);
    EXPECT_EQ(c.compress(in, exact), full);
    bytes shorter(full / 2);
    EXPECT_EQ(c.compress(in, shorter), 0u);
    EXPECT_EQ(c.compress({}, z), 0u);
    // Random data never pays, even with no saving demanded (stored blocks add 5 bytes per 64 KiB).
    const bytes noise = make(kind::random, 1500, 5);
    bytes nz(2000);
    EXPECT_EQ(c.compress(noise, nz, 0.0), 0u);
}

TEST(deflate, decodes_zlib_output) {
    // Python: zlib.compressobj(9, zlib.DEFLATED, -15) over the text below (raw DEFLATE).
    const bytes z{0xcb, 0x2e, 0xcf, 0xcc, 0x56, 0xc8, 0x86, 0x13, 0xb9, 0xa5, 0x39, 0x25, 0x99, 0x05, 0x89,
                  0x25, 0x19, 0x58, 0xc5, 0x4a, 0x8a, 0x12, 0xf3, 0x8a, 0x0b, 0xf2, 0x8b, 0x4a, 0x00};
    const std::string_view text = "kwik kwik kwik multipath kwik kwik multipath transport";
    deflate_decompressor d;
    bytes out(text.size());
    ASSERT_TRUE(d.decompress(z, out, text.size()));
    EXPECT_EQ(std::string_view(reinterpret_cast<const char*>(out.data()), out.size()), text);
}

// RFC 1951 bit packing: header fields LSB first, Huffman codes MSB first.
struct bit_writer {
    bytes out;
    unsigned used = 0;
    void put(std::uint32_t value, unsigned n) {
        for (unsigned i = 0; i < n; ++i) {
            if (used % 8 == 0) {
                out.push_back(0);
            }
            out.back() |= static_cast<std::uint8_t>(((value >> i) & 1u) << (used % 8));
            ++used;
        }
    }
    void huff(std::uint32_t code, unsigned n) {
        for (unsigned i = n; i-- > 0;) {
            put((code >> i) & 1u, 1);
        }
    }
};

// One final fixed-Huffman block: [literal 'A'], then length 3 at distance 1, then end of block.
bytes fixed_block(bool with_literal) {
    bit_writer w;
    w.put(1, 1); // BFINAL
    w.put(1, 2); // BTYPE 01
    if (with_literal) {
        w.huff(0x30 + 'A', 8); // literals 0-143: 8-bit codes from 00110000
    }
    w.huff(257 - 256, 7); // length 3: 7-bit codes from 0000000
    w.huff(0, 5);         // distance code 0: distance 1
    w.huff(0, 7);         // end of block (256)
    return w.out;
}

TEST(deflate, hand_built_blocks) {
    deflate_decompressor d;
    bytes out(16);
    // Stored block: BFINAL 1, BTYPE 00, LEN 5, NLEN ~5.
    const bytes stored{0x01, 0x05, 0x00, 0xFA, 0xFF, 'h', 'e', 'l', 'l', 'o'};
    ASSERT_TRUE(d.decompress(stored, out, 5));
    EXPECT_EQ(std::string_view(reinterpret_cast<const char*>(out.data()), 5), "hello");
    bytes bad_nlen = stored;
    bad_nlen[3] = 0xFB;
    EXPECT_FALSE(d.decompress(bad_nlen, out, 5));

    ASSERT_TRUE(d.decompress(fixed_block(true), out, 4));
    EXPECT_EQ(std::string_view(reinterpret_cast<const char*>(out.data()), 4), "AAAA");
    // The same match with nothing before it reaches back before the start.
    EXPECT_FALSE(d.decompress(fixed_block(false), out, 3));
    // BTYPE 11 is reserved.
    EXPECT_FALSE(d.decompress(bytes{0x07, 0x00, 0x00}, out, 1));
}

TEST(deflate, refuses_wrong_sizes_truncation_and_trailing_bytes) {
    deflate_compressor c;
    deflate_decompressor d;
    const bytes in = make(kind::text, 3000, 4);
    bytes z(in.size() + 64);
    const std::size_t zn = c.compress(in, z);
    ASSERT_GT(zn, 0u);
    bytes out(in.size() + 64);
    ASSERT_TRUE(d.decompress({z.data(), zn}, out, in.size()));
    EXPECT_FALSE(d.decompress({z.data(), zn}, out, in.size() - 1)); // decodes to more
    EXPECT_FALSE(d.decompress({z.data(), zn}, out, in.size() + 1)); // decodes to less
    EXPECT_FALSE(d.decompress({z.data(), zn}, {out.data(), in.size() - 1}, in.size())); // no room
    for (std::size_t cut = 1; cut <= std::min<std::size_t>(zn, 40); ++cut) {
        EXPECT_FALSE(d.decompress({z.data(), zn - cut}, out, in.size())) << "cut " << cut;
    }
    for (std::size_t extra = 1; extra <= 20; ++extra) {
        z[zn + extra - 1] = static_cast<std::uint8_t>(extra * 37);
        EXPECT_FALSE(d.decompress({z.data(), zn + extra}, out, in.size())) << "extra " << extra;
    }
    EXPECT_FALSE(d.decompress({}, out, 0));
    // The decompressor is reusable after every refusal.
    EXPECT_TRUE(d.decompress({z.data(), zn}, out, in.size()));
    EXPECT_TRUE(std::equal(in.begin(), in.end(), out.begin()));
}

TEST(deflate, corrupt_input_never_overruns_or_lies_about_size) {
    deflate_compressor c;
    deflate_decompressor d;
    const bytes in = make(kind::text, 5000, 6);
    bytes z(in.size());
    const std::size_t zn = c.compress(in, z);
    ASSERT_GT(zn, 0u);
    std::mt19937 rng(11);
    int refused = 0;
    constexpr int trials = 3000;
    for (int i = 0; i < trials; ++i) {
        bytes bad(z.begin(), z.begin() + static_cast<std::ptrdiff_t>(zn));
        const int flips = 1 + static_cast<int>(rng() % 4);
        for (int f = 0; f < flips; ++f) {
            bad[rng() % bad.size()] ^= static_cast<std::uint8_t>(1u << (rng() % 8));
        }
        bytes out(in.size() + 256, 0xEE);
        const bool ok = d.decompress(bad, out, in.size());
        // DEFLATE has no checksum (the frame's CRC32C catches these on the wire), so a flip may
        // still decode to the right length; it must never write past `expected`.
        EXPECT_TRUE(std::all_of(out.begin() + static_cast<std::ptrdiff_t>(in.size()), out.end(),
                                [](std::uint8_t b) { return b == 0xEE; }));
        refused += ok ? 0 : 1;
    }
    EXPECT_GT(refused, trials / 2); // most corruptions change the length or the code structure
    // Pure noise of many lengths.
    for (std::size_t n = 1; n < 600; n += 7) {
        const bytes noise = make(kind::random, n, static_cast<std::uint32_t>(n));
        bytes out(2048 + 64, 0xEE);
        (void)d.decompress(noise, out, 2048);
        EXPECT_TRUE(std::all_of(out.begin() + 2048, out.end(), [](std::uint8_t b) { return b == 0xEE; }));
    }
}

} // namespace
} // namespace kwik::transport
