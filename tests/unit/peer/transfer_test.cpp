// kwik-peer's transfer pieces: generated data, SHA-256, the pattern check and the buffer pool.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "dataplane/engine/endpoint.hpp"
#include "tools/peer/packet_pool.hpp"
#include "tools/peer/transfer.hpp"

namespace {

using namespace kwik::peer;

std::vector<std::uint8_t> gen(std::uint64_t seed, std::uint64_t offset, std::size_t n) {
    std::vector<std::uint8_t> v(n);
    generate_data(seed, offset, v);
    return v;
}

TEST(PeerGenerate, DeterministicAndSeekable) {
    const auto a = gen(7, 0, 4096);
    EXPECT_EQ(a, gen(7, 0, 4096));
    // Any range equals the same bytes of a longer run, whatever its alignment.
    for (std::uint64_t off : {1u, 3u, 8u, 13u, 1000u}) {
        const auto part = gen(7, off, 301);
        EXPECT_TRUE(std::equal(part.begin(), part.end(), a.begin() + static_cast<std::ptrdiff_t>(off))) << off;
    }
    EXPECT_NE(a, gen(8, 0, 4096));
    // Not trivially periodic: the first two words differ, and bytes vary.
    EXPECT_FALSE(std::equal(a.begin(), a.begin() + 8, a.begin() + 8));
    std::size_t zeros = std::count(a.begin(), a.end(), 0);
    EXPECT_LT(zeros, 64u);
}

TEST(PeerSha256, KnownVectors) {
    {
        sha256 h;
        const std::string abc = "abc";
        h.update({reinterpret_cast<const std::uint8_t*>(abc.data()), abc.size()});
        EXPECT_EQ(sha256::hex(h.finish()), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    }
    {
        sha256 h; // empty input
        EXPECT_EQ(sha256::hex(h.finish()), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    }
    {
        // Incremental updates equal one update.
        const auto data = gen(1, 0, 10000);
        sha256 one, parts;
        one.update(data);
        for (std::size_t i = 0; i < data.size(); i += 777) {
            parts.update({data.data() + i, std::min<std::size_t>(777, data.size() - i)});
        }
        EXPECT_EQ(one.finish(), parts.finish());
    }
}

TEST(PeerPattern, FlippedByteIsCaught) {
    const kwik::transport::stream_id id = 6;
    std::vector<std::uint8_t> data(5000);
    for (std::size_t i = 0; i < data.size(); ++i) {
        data[i] = kwik::engine::pattern_byte(id, 100 + i);
    }
    std::uint64_t first = 0;
    EXPECT_EQ(pattern_mismatches(id, 100, data, &first), 0u);
    data[1234] ^= 0x01;
    EXPECT_EQ(pattern_mismatches(id, 100, data, &first), 1u);
    EXPECT_EQ(first, 100u + 1234u);
    data[4000] ^= 0x80;
    EXPECT_EQ(pattern_mismatches(id, 100, data, &first), 2u);
    EXPECT_EQ(first, 1334u);
    // The same bytes checked as another stream's, or at another offset, do not pass.
    data[1234] ^= 0x01;
    data[4000] ^= 0x80;
    EXPECT_GT(pattern_mismatches(id + 2, 100, data, nullptr), 4000u);
    EXPECT_GT(pattern_mismatches(id, 101, data, nullptr), 4000u);
}

TEST(PeerPool, BuffersReturnToTheFreeList) {
    packet_pool pool(2048, 4, 8);
    std::vector<pooled_buffer*> held;
    for (int i = 0; i < 8; ++i) {
        pooled_buffer* b = pool.get(1500);
        ASSERT_NE(b, nullptr);
        held.push_back(b);
    }
    EXPECT_EQ(pool.stats().buffers, 8u);
    EXPECT_EQ(pool.stats().in_use, 8u);
    EXPECT_EQ(pool.get(100), nullptr); // the limit
    EXPECT_EQ(pool.stats().exhausted, 1u);
    // A retained buffer survives one release; the second returns it.
    packet_pool::ops.retain(held[0]);
    packet_pool::ops.release(held[0]);
    EXPECT_EQ(pool.stats().in_use, 8u);
    packet_pool::ops.release(held[0]);
    EXPECT_EQ(pool.stats().in_use, 7u);
    pooled_buffer* again = pool.get(10);
    EXPECT_EQ(again, held[0]); // reused, not allocated
    held[0] = again;
    // Oversized requests come from the heap and go back to it.
    pooled_buffer* big = pool.get(100000);
    ASSERT_NE(big, nullptr);
    EXPECT_EQ(big->pool, nullptr);
    EXPECT_EQ(pool.stats().oversized, 1u);
    packet_pool::release(big);
    for (pooled_buffer* b : held) {
        packet_pool::release(b);
    }
    EXPECT_EQ(pool.stats().in_use, 0u);
    EXPECT_EQ(pool.stats().buffers, 8u);
}

} // namespace
