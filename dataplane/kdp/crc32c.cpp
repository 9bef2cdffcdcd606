// CRC32C back ends: the SSE4.2 crc32 instruction for small buffers, ISA-L for large ones, and a
// bit-at-a-time reference for the tests. Pure functions; any thread.
#include "dataplane/kdp/crc32c.hpp"

#include <climits>
#include <cstring>

#include <immintrin.h>
#include <isa-l/crc.h>
#include <nmmintrin.h>

namespace kwik::kdp {

namespace {

// Reflected Castagnoli polynomial.
constexpr std::uint32_t crc32c_poly = 0x82F63B78u;

// Buffers shorter than this go to the crc32 loop, longer ones to ISA-L. ISA-L's AVX-512 kernel
// folds 256-byte blocks and runs anything shorter (and each block's remainder) through a slow
// per-16-byte path, so the crossover sits exactly at its block size. Measured on this 2-core
// x86-64 VM (Xeon with AVX-512 VPCLMULQDQ, perf/bench/crc32c_bench, medians of independent calls):
//   bytes    sse42    isal
//      64   7.0 ns  10.4 ns
//     128  11.3 ns  12.8 ns
//     240  13.3 ns  17.9 ns
//     256  13.9 ns   8.0 ns
//     736  48.3 ns  33.0 ns   (isal's worst in the sweep: a 224-byte remainder)
// ISA-L won at every length swept from 256 up (48-byte steps to 1600), sse42 at every length swept
// below (16, then 32 to 240 in 16-byte steps). On a CPU without VPCLMULQDQ ISA-L picks another
// kernel: re-run the benchmark there.
constexpr std::size_t crc32c_isal_threshold = 256;

// crc32_iscsi takes an int length; larger buffers go in pieces of this size (a multiple of 256 so
// every piece but the last stays on ISA-L's 256-byte block path).
constexpr std::size_t isal_max_piece = std::size_t{1} << 30;
static_assert(isal_max_piece <= static_cast<std::size_t>(INT_MAX));

// ISA-L 2.30's AVX-512 kernel (crc32_iscsi_by16_10) returns without VZEROUPPER. The dirty upper
// register state then made every legacy-SSE instruction after it (this build is -msse4.2, not
// VEX) pay an SSE/AVX transition: parse_packet<verify> of a 547-byte packet took 207 ns instead
// of 50 ns, serialize_packet 211 instead of 50 (perf/bench/codec_bench, this 2-core Xeon VM).
// Only on CPUs with AVX: VZEROUPPER is an invalid instruction without it.
[[gnu::target("avx")]] void zero_upper_state() noexcept {
    _mm256_zeroupper();
}
const bool cpu_has_avx = [] {
    __builtin_cpu_init(); // required when __builtin_cpu_supports runs in a static initialiser
    return __builtin_cpu_supports("avx") != 0;
}();

} // namespace

// ISA-L's crc32_iscsi neither inverts its initial value nor its result: it returns the raw CRC
// register (crc32_iscsi("123456789", 9, 0xFFFFFFFF) == ~0xE3069283). Inverting on the way in and
// out gives the standard CRC32C and makes the raw register carry across pieces unchanged.
// Kept out of line: inlined into crc32c, its piece loop made the small-buffer path save and
// restore three registers: crc32c took 5.0 ns on 16 bytes against 4.3 ns for crc32c_sse42;
// out of line, 4.4 against 4.1 ns.
[[gnu::noinline]] std::uint32_t crc32c_isal(const void* data, std::size_t len,
                                            std::uint32_t crc) noexcept {
    // crc32_iscsi only reads the buffer; its prototype just lacks the const.
    auto* p = const_cast<unsigned char*>(static_cast<const unsigned char*>(data));
    unsigned int reg = ~crc;
    while (len > isal_max_piece) [[unlikely]] {
        reg = crc32_iscsi(p, static_cast<int>(isal_max_piece), reg);
        p += isal_max_piece;
        len -= isal_max_piece;
    }
    if (len != 0) {
        reg = crc32_iscsi(p, static_cast<int>(len), reg);
    }
    if (cpu_has_avx) {
        zero_upper_state();
    }
    return ~reg;
}

// One dependent chain of crc32 instructions: 8 bytes per instruction latency (3 cycles on
// Intel since Nehalem), with no set-up cost, which is what wins on short buffers. Three
// interleaved streams combined with pclmul were tried for 96..255 bytes: on independent calls
// (the burst case) 6.5 vs 9.1 ns at 96 bytes, even at 192..224 and 14.6 vs 13.1 ns at 255, so
// not worth the code; they only pay (about 2x) when each call waits on the previous one.
std::uint32_t crc32c_sse42(const void* data, std::size_t len, std::uint32_t crc) noexcept {
    const auto* p = static_cast<const unsigned char*>(data);
    std::uint64_t reg = ~crc;
    while (len >= 8) {
        std::uint64_t word;
        std::memcpy(&word, p, sizeof(word)); // unaligned load; compiles to one mov
        reg = _mm_crc32_u64(reg, word);
        p += 8;
        len -= 8;
    }
    auto reg32 = static_cast<std::uint32_t>(reg);
    if (len & 4) {
        std::uint32_t word;
        std::memcpy(&word, p, sizeof(word));
        reg32 = _mm_crc32_u32(reg32, word);
        p += 4;
    }
    if (len & 2) {
        std::uint16_t word;
        std::memcpy(&word, p, sizeof(word));
        reg32 = _mm_crc32_u16(reg32, word);
        p += 2;
    }
    if (len & 1) {
        reg32 = _mm_crc32_u8(reg32, *p);
    }
    return ~reg32;
}

std::uint32_t crc32c_bitwise(const void* data, std::size_t len, std::uint32_t crc) noexcept {
    const auto* p = static_cast<const unsigned char*>(data);
    std::uint32_t reg = ~crc;
    for (std::size_t i = 0; i < len; ++i) {
        reg ^= p[i];
        for (int bit = 0; bit < 8; ++bit) {
            reg = (reg >> 1) ^ (crc32c_poly & (0u - (reg & 1u)));
        }
    }
    return ~reg;
}

// Zero bytes need no buffer: feed the crc32 instruction a zero operand.
std::uint32_t crc32c_zeros(std::size_t len, std::uint32_t crc) noexcept {
    std::uint64_t reg = ~crc;
    for (; len >= 8; len -= 8) {
        reg = _mm_crc32_u64(reg, 0);
    }
    auto reg32 = static_cast<std::uint32_t>(reg);
    for (; len != 0; --len) {
        reg32 = _mm_crc32_u8(reg32, 0);
    }
    return ~reg32;
}

std::uint32_t crc32c(const void* data, std::size_t len, std::uint32_t crc) noexcept {
    if (len < crc32c_isal_threshold) {
        return crc32c_sse42(data, len, crc);
    }
    return crc32c_isal(data, len, crc);
}

} // namespace kwik::kdp
