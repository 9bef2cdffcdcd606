// CRC32C (Castagnoli, reflected polynomial 0x82F63B78, init and xor-out 0xFFFFFFFF): the
// checksum of every KDP path packet and frame. Pure functions; any thread.
//
// crc32c(p, n) is the standard CRC32C of n bytes ("123456789" -> 0xE3069283). Chaining:
// crc32c(b, nb, crc32c(a, na)) == CRC32C of a followed by b, so a checksum over several
// non-contiguous pieces (an mbuf chain, a header with its checksum field skipped) needs no copy.
#pragma once

#include <cstddef>
#include <cstdint>

namespace kwik::kdp {

// Dispatching CRC32C: the SSE4.2 crc32 instruction loop below crc32c_isal_threshold bytes,
// ISA-L's crc32_iscsi above it (see perf/RESULTS.md for the measured crossover).
std::uint32_t crc32c(const void* data, std::size_t len, std::uint32_t crc = 0) noexcept;

// The two back ends, exposed for the benchmark and the agreement tests.
std::uint32_t crc32c_isal(const void* data, std::size_t len, std::uint32_t crc = 0) noexcept;
std::uint32_t crc32c_sse42(const void* data, std::size_t len, std::uint32_t crc = 0) noexcept;
// Bit-at-a-time reference, for tests only.
std::uint32_t crc32c_bitwise(const void* data, std::size_t len, std::uint32_t crc = 0) noexcept;

// CRC32C of n zero bytes continuing from crc (used for the zeroed checksum field).
std::uint32_t crc32c_zeros(std::size_t len, std::uint32_t crc) noexcept;

} // namespace kwik::kdp
