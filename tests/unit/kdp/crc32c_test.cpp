// Unit tests for dataplane/kdp/crc32c: RFC 3720 known answers, agreement of every back end with
// the bit-at-a-time reference, start alignment, chaining, and crc32c_zeros.
#include "dataplane/kdp/crc32c.hpp"

#include <gtest/gtest.h>

#include <sys/mman.h>

#include <array>
#include <climits>
#include <cstddef>
#include <cstdint>
#include <random>
#include <string_view>
#include <vector>

namespace kwik::kdp {
namespace {

using crc_fn = std::uint32_t (*)(const void*, std::size_t, std::uint32_t) noexcept;

struct named_crc_fn {
    const char* name;
    crc_fn fn;
};

// Every function that must compute the standard CRC32C, the reference included.
constexpr std::array<named_crc_fn, 4> all_fns{{
    {"crc32c", crc32c},
    {"crc32c_isal", crc32c_isal},
    {"crc32c_sse42", crc32c_sse42},
    {"crc32c_bitwise", crc32c_bitwise},
}};

std::vector<unsigned char> random_bytes(std::size_t n, std::uint32_t seed) {
    std::mt19937 rng(seed);
    std::uniform_int_distribution<int> byte(0, 255);
    std::vector<unsigned char> out(n);
    for (auto& b : out) {
        b = static_cast<unsigned char>(byte(rng));
    }
    return out;
}

struct known_answer {
    const char* description;
    std::vector<unsigned char> input;
    std::uint32_t expected;
};

TEST(crc32c, known_answers) {
    constexpr std::string_view check = "123456789";
    std::vector<unsigned char> ascending(32);
    std::vector<unsigned char> descending(32);
    for (std::size_t i = 0; i < 32; ++i) {
        ascending[i] = static_cast<unsigned char>(i);
        descending[i] = static_cast<unsigned char>(31 - i);
    }
    const std::vector<known_answer> cases{
        {"check string \"123456789\"", {check.begin(), check.end()}, 0xE3069283u},
        {"empty", {}, 0x00000000u},
        {"32 zero bytes (RFC 3720 B.4)", std::vector<unsigned char>(32, 0x00), 0x8A9136AAu},
        {"32 0xFF bytes (RFC 3720 B.4)", std::vector<unsigned char>(32, 0xFF), 0x62A8AB43u},
        {"32 ascending bytes (RFC 3720 B.4)", ascending, 0x46DD794Eu},
        {"32 descending bytes (RFC 3720 B.4)", descending, 0x113FDB5Cu},
    };
    for (const auto& c : cases) {
        for (const auto& f : all_fns) {
            EXPECT_EQ(f.fn(c.input.data(), c.input.size(), 0), c.expected)
                << f.name << ": " << c.description;
        }
    }
}

TEST(crc32c, empty_input_returns_initial_crc) {
    for (const auto& f : all_fns) {
        EXPECT_EQ(f.fn(nullptr, 0, 0), 0u) << f.name;
        EXPECT_EQ(f.fn(nullptr, 0, 0xDEADBEEFu), 0xDEADBEEFu) << f.name;
    }
}

// Every length from 0 to 4096 crosses the dispatch threshold and every tail length of the
// 8-byte loop and of ISA-L's block loops; a random initial crc checks the carried-in value.
TEST(crc32c, all_back_ends_agree_with_reference_for_every_length) {
    constexpr std::size_t max_len = 4096;
    const auto buf = random_bytes(max_len, 0xC0FFEEu);
    std::mt19937 rng(42);
    for (std::size_t len = 0; len <= max_len; ++len) {
        const std::uint32_t init = (len % 2 == 0) ? 0u : static_cast<std::uint32_t>(rng());
        const std::uint32_t expected = crc32c_bitwise(buf.data(), len, init);
        for (const auto& f : all_fns) {
            ASSERT_EQ(f.fn(buf.data(), len, init), expected)
                << f.name << " len " << len << " init " << init;
        }
    }
}

TEST(crc32c, every_start_alignment) {
    constexpr std::array<std::size_t, 9> lengths{1, 3, 7, 8, 15, 64, 255, 1500, 4099};
    const auto buf = random_bytes(4099 + 8, 7u);
    for (const std::size_t len : lengths) {
        for (std::size_t offset = 0; offset < 8; ++offset) {
            const std::uint32_t expected = crc32c_bitwise(buf.data() + offset, len, 0);
            for (const auto& f : all_fns) {
                EXPECT_EQ(f.fn(buf.data() + offset, len, 0), expected)
                    << f.name << " len " << len << " offset " << offset;
            }
        }
    }
}

TEST(crc32c, chaining_equals_crc_of_concatenation) {
    constexpr std::size_t max_len = 9000;
    const auto buf = random_bytes(max_len, 99u);
    std::mt19937 rng(1234);
    for (int trial = 0; trial < 500; ++trial) {
        const std::size_t len = std::uniform_int_distribution<std::size_t>(0, max_len)(rng);
        const std::size_t split = std::uniform_int_distribution<std::size_t>(0, len)(rng);
        const std::uint32_t whole = crc32c_sse42(buf.data(), len, 0);
        for (const auto& f : all_fns) {
            const std::uint32_t head = f.fn(buf.data(), split, 0);
            EXPECT_EQ(f.fn(buf.data() + split, len - split, head), whole)
                << f.name << " len " << len << " split " << split;
        }
        // Mixed back ends must chain too: the dispatcher may pick a different one per piece.
        EXPECT_EQ(crc32c_isal(buf.data() + split, len - split, crc32c_sse42(buf.data(), split, 0)),
                  whole)
            << "sse42 then isal, len " << len << " split " << split;
    }
}

TEST(crc32c, zeros_matches_crc_of_zero_buffer) {
    const std::vector<unsigned char> zeros(256, 0);
    std::mt19937 rng(5);
    for (std::size_t len = 0; len <= zeros.size(); ++len) {
        for (const std::uint32_t init : {0u, 0xFFFFFFFFu, static_cast<std::uint32_t>(rng())}) {
            EXPECT_EQ(crc32c_zeros(len, init), crc32c_bitwise(zeros.data(), len, init))
                << "len " << len << " init " << init;
        }
    }
}

// The KDP use: a header whose 4-byte checksum field is skipped and counted as zeros must give
// the CRC of the header with that field zeroed.
TEST(crc32c, zeros_stand_in_for_a_skipped_checksum_field) {
    auto header = random_bytes(40, 11u);
    constexpr std::size_t field = 12;
    std::uint32_t crc = crc32c(header.data(), field);
    crc = crc32c_zeros(4, crc);
    crc = crc32c(header.data() + field + 4, header.size() - field - 4, crc);
    for (std::size_t i = field; i < field + 4; ++i) {
        header[i] = 0;
    }
    EXPECT_EQ(crc, crc32c_bitwise(header.data(), header.size(), 0));
}

// crc32_iscsi takes an int length, so crc32c_isal must split buffers over INT_MAX bytes. Above
// 4 GiB a length truncated to 32 bits gives a wrong CRC (checked: passing a truncated int fails
// here). A read-only anonymous mapping reads as zeros without committing memory; MADV_HUGEPAGE
// lets the kernel back it with the huge zero page, cutting the page faults.
TEST(crc32c, isal_handles_length_over_int_max) {
    constexpr std::size_t len = (std::size_t{1} << 32) + 13;
    static_assert(len > std::size_t{INT_MAX});
    void* map = mmap(nullptr, len, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (map == MAP_FAILED) {
        GTEST_SKIP() << "cannot map " << len << " bytes of address space";
    }
    madvise(map, len, MADV_HUGEPAGE); // only a speed-up; failure is harmless
    const std::uint32_t init = 0x12345678u;
    const std::uint32_t expected = crc32c_zeros(len, init);
    EXPECT_EQ(crc32c_isal(map, len, init), expected);
    EXPECT_EQ(crc32c(map, len, init), expected);
    munmap(map, len);
}

} // namespace
} // namespace kwik::kdp
